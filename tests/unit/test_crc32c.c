/*
 * test_crc32c.c - CRC32C against published check values and against a
 * bit-at-a-time reference, at every alignment and length class the fast
 * paths distinguish, incremental use, and first use from many threads.
 */
#include <pthread.h>

#include "crc32c.h"
#include "testutil.h"

/* The textbook definition, one bit at a time (reflected, init and final
 * xor 0xffffffff). */
static uint32_t crc32c_reference(uint32_t crc, const void *buf, size_t len)
{
	const unsigned char *p = buf;

	crc = ~crc;
	while (len--) {
		crc ^= *p++;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ 0x82f63b78u : crc >> 1;
	}
	return ~crc;
}

static void test_known_values(void)
{
	unsigned char buf[48];

	TU_TEST("known values");
	CHECK_EQ(crc32c(0, "123456789", 9), 0xe3069283u);
	CHECK_EQ(crc32c_reference(0, "123456789", 9), 0xe3069283u);
	CHECK_EQ(crc32c(0, "", 0), 0);
	CHECK_EQ(crc32c(0, NULL, 0), 0);
	CHECK_EQ(crc32c(0xdeadbeefu, "", 0), 0xdeadbeefu);
	CHECK_EQ(crc32c(0, "a", 1), 0xc1d04330u);

	/* RFC 3720 (iSCSI), appendix B.4. */
	memset(buf, 0, 32);
	CHECK_EQ(crc32c(0, buf, 32), 0x8a9136aau);
	memset(buf, 0xff, 32);
	CHECK_EQ(crc32c(0, buf, 32), 0x62a8ab43u);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)i;
	CHECK_EQ(crc32c(0, buf, 32), 0x46dd794eu);
	for (int i = 0; i < 32; i++)
		buf[i] = (unsigned char)(31 - i);
	CHECK_EQ(crc32c(0, buf, 32), 0x113fdb5cu);
	static const unsigned char iscsi_read[48] = {
		0x01, 0xc0, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x00, 0x00, 0x04, 0x00,
		0x00, 0x00, 0x00, 0x14, 0x00, 0x00, 0x00, 0x18, 0x28, 0x00, 0x00, 0x00,
		0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	};
	CHECK_EQ(crc32c(0, iscsi_read, sizeof(iscsi_read)), 0xd9963a56u);
}

/* Every length 0..600 at every start alignment 0..15, against the reference. */
static void test_alignments_and_lengths(void)
{
	enum { MAXLEN = 600, ALIGN = 16 };
	unsigned char *buf = tu_random_buffer(MAXLEN + ALIGN + 8);
	long bad = 0;

	TU_TEST("all alignments and short lengths");
	for (size_t align = 0; align < ALIGN; align++) {
		for (size_t len = 0; len <= MAXLEN; len++) {
			uint32_t want = crc32c_reference(0, buf + align, len);
			uint32_t got = crc32c(0, buf + align, len);
			if (got != want && bad++ < 5)
				CHECK_EQ(got, want);
			/* And with a non-zero starting crc. */
			want = crc32c_reference(0x12345678u, buf + align, len);
			got = crc32c(0x12345678u, buf + align, len);
			if (got != want && bad++ < 5)
				CHECK_EQ(got, want);
		}
	}
	CHECK_EQ(bad, 0);
	free(buf);
}

static void test_large_and_patterns(void)
{
	size_t len = (size_t)3 << 20;
	unsigned char *buf = tu_random_buffer(len + 7);

	TU_TEST("large buffers and patterns");
	CHECK_EQ(crc32c(0, buf, len), crc32c_reference(0, buf, len));
	CHECK_EQ(crc32c(0, buf + 3, len), crc32c_reference(0, buf + 3, len));
	memset(buf, 0, len);
	CHECK_EQ(crc32c(0, buf, len), crc32c_reference(0, buf, len));
	memset(buf, 0xff, len);
	CHECK_EQ(crc32c(0, buf, len), crc32c_reference(0, buf, len));
	/* A single flipped bit anywhere changes the value. */
	for (int i = 0; i < 200; i++) {
		size_t n = 1 + (size_t)tu_rand_below(5000);
		size_t bit = (size_t)tu_rand_below(8 * n);
		uint32_t before;
		tu_fill_random(buf, n);
		before = crc32c(0, buf, n);
		buf[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		if (!CHECK(crc32c(0, buf, n) != before))
			break;
	}
	free(buf);
}

/* crc32c(crc32c(0, a), b) == crc32c(0, a || b), for all kinds of splits. */
static void test_incremental(void)
{
	enum { LEN = 70000 };
	unsigned char *buf = tu_random_buffer(LEN);
	uint32_t whole = crc32c(0, buf, LEN);

	TU_TEST("incremental");
	for (size_t split = 0; split <= 40; split++) {
		uint32_t crc = crc32c(crc32c(0, buf, split), buf + split, LEN - split);
		if (!CHECK_EQ(crc, whole))
			break;
	}
	for (int i = 0; i < 300; i++) {
		size_t split = (size_t)tu_rand_below(LEN + 1);
		uint32_t crc = crc32c(crc32c(0, buf, split), buf + split, LEN - split);
		if (!CHECK_EQ(crc, whole))
			break;
	}
	/* Many pieces of random sizes, including empty ones. */
	for (int round = 0; round < 50; round++) {
		uint32_t crc = 0;
		size_t off = 0;
		while (off < LEN) {
			size_t n = (size_t)tu_rand_below(tu_rand_below(2) ? 17 : 9000);
			if (n > LEN - off)
				n = LEN - off;
			crc = crc32c(crc, buf + off, n);
			off += n;
		}
		if (!CHECK_EQ(crc, whole))
			break;
	}
	/* Byte at a time. */
	{
		uint32_t crc = 0;
		for (size_t i = 0; i < 5000; i++)
			crc = crc32c(crc, buf + i, 1);
		CHECK_EQ(crc, crc32c(0, buf, 5000));
	}
	free(buf);
}

/* The implementation picks its method on first use; many threads racing to
 * be first must all get right answers. Run as the first test. */
struct thread_arg {
	const unsigned char *buf;
	size_t len;
	uint32_t want;
	int bad;
};

static void *thread_main(void *p)
{
	struct thread_arg *arg = p;

	for (int i = 0; i < 200; i++)
		if (crc32c(0, arg->buf, arg->len) != arg->want)
			arg->bad++;
	return NULL;
}

static void test_threads_first_use(void)
{
	enum { THREADS = 8 };
	pthread_t tids[THREADS];
	struct thread_arg args[THREADS];
	unsigned char *buf = tu_random_buffer(4096);
	uint32_t want = crc32c_reference(0, buf, 4096);
	int started = 0;

	TU_TEST("first use from many threads");
	for (int i = 0; i < THREADS; i++) {
		args[i] = (struct thread_arg){ .buf = buf, .len = 4096, .want = want };
		if (pthread_create(&tids[i], NULL, thread_main, &args[i]) == 0)
			started++;
		else
			break;
	}
	CHECK_EQ(started, THREADS);
	for (int i = 0; i < started; i++) {
		pthread_join(tids[i], NULL);
		CHECK_EQ(args[i].bad, 0);
	}
	free(buf);
}

/* The table-driven path runs only on CPUs without SSE4.2: check it here
 * against the bit-at-a-time reference whatever this CPU has. */
static void test_portable_path(void)
{
	uint8_t *buf = malloc(70000);

	TU_TEST("portable (table-driven) path");
	for (size_t i = 0; i < 70000; i++)
		buf[i] = (uint8_t)(i * 131 + (i >> 7));
	for (size_t align = 0; align < 16; align++)
		for (size_t len = 0; len < 600; len += 7)
			CHECK_EQ(crc32c_portable(0, buf + align, len),
				 crc32c_reference(0, buf + align, len));
	CHECK_EQ(crc32c_portable(0, "123456789", 9), 0xe3069283u);
	CHECK_EQ(crc32c_portable(0, buf, 70000), crc32c(0, buf, 70000));
	CHECK_EQ(crc32c_portable(crc32c_portable(0, buf, 1000), buf + 1000, 69000),
		 crc32c(0, buf, 70000));
	free(buf);
}

/* The hardware path runs three lanes of 1 KiB at once and joins them:
 * every length around a multiple of the three lanes, at every alignment and
 * from a running CRC, must give what the bit-at-a-time reference gives. */
static void test_lanes(void)
{
	enum { MAX = 3 * 3 * 1024 + 64 };
	uint8_t *buf = malloc(MAX + 8);
	static const size_t around[] = { 3 * 1024, 6 * 1024, 9 * 1024 };

	TU_TEST("three lanes joined");
	for (size_t i = 0; i < MAX + 8; i++)
		buf[i] = (uint8_t)(i * 197 + (i >> 9) + (i >> 3));
	for (size_t a = 0; a < sizeof(around) / sizeof(around[0]); a++)
		for (size_t align = 0; align < 8; align++)
			for (size_t len = around[a] - 9; len <= around[a] + 9; len++)
				CHECK_EQ(crc32c(0x1234567u, buf + align, len),
					 crc32c_reference(0x1234567u, buf + align, len));
	/* A lane of zeros, and all ones, in the middle of others. */
	memset(buf + 1024, 0, 1024);
	memset(buf + 4096, 0xff, 2048);
	CHECK_EQ(crc32c(0, buf, MAX), crc32c_reference(0, buf, MAX));
	free(buf);
}

int main(int argc, char **argv)
{
	(void)argc;
	tu_init(argv[0]);
	test_threads_first_use();
	test_known_values();
	test_alignments_and_lengths();
	test_large_and_patterns();
	test_incremental();
	test_portable_path();
	test_lanes();
	return tu_finish();
}
