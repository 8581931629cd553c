/*
 * test_store_digest.c - the background digest of staging writers
 * (local_digest.c), on a started database, so that digest threads hash
 * while writes go on: sequential writes; overwrites behind, inside and just
 * ahead of the digest; truncates down and up mid-stream; pieces in shuffled
 * order; several writers written from several threads at once; a writer
 * freed (never committed) while a digest thread has it; the same content
 * committed twice (the second a dedup). Every commit's hash is checked
 * against SHA-256 of the content the test wrote, and the blob read back.
 * Under ASan a digest thread touching a freed writer shows.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include "storeutil.h"

#include <pthread.h>
#include <unistd.h>

#define MiB ((size_t)1 << 20)

static struct store *started_store(const char *base, const char *name, struct blobdb **db)
{
	char dir[PATH_MAX];
	struct store *s;

	tu_path(dir, sizeof(dir), "%s/db-%s", base, name);
	s = new_store(dir, NULL, "s", db);
	REQUIRE(blobdb_start(*db) == 0);
	return s;
}

/* Writes data[0, len) in pieces of `piece` bytes, in order, pausing now
 * and then so that digest threads catch up in the middle of the stream. */
static void write_in_order(struct blob_writer *w, const uint8_t *data, size_t len, size_t piece)
{
	for (size_t off = 0; off < len; off += piece) {
		size_t n = len - off < piece ? len - off : piece;
		REQUIRE(blob_writer_write(w, data + off, n, off) == 0);
		if (tu_rand_below(8) == 0)
			usleep(200);
	}
}

static void commit_is(struct store *s, struct blob_writer *w, const uint8_t *data, size_t len)
{
	uint8_t want[HS], got[HS];

	sha(data, len, want);
	CHECK_EQ(blob_writer_commit(w, got), 0);
	CHECK_MEM(got, want, HS);
	CHECK(blob_is(s, data, len));
}

static void test_sequential(const char *base)
{
	struct blobdb *db;
	struct store *s = started_store(base, "sequential", &db);

	TU_TEST("sequential writes of 24 MiB in 64 KiB and 1 MiB pieces");
	for (int round = 0; round < 2; round++) {
		size_t len = 24 * MiB + 12345;
		uint8_t *data = tu_random_buffer(len);
		struct blob_writer *w;
		REQUIRE(blob_writer_new(s, &w) == 0);
		write_in_order(w, data, len, round ? MiB : 64 * 1024);
		commit_is(s, w, data, len);
		blob_writer_free(w);
		free(data);
	}
	store_close(s);
	blobdb_close(db);
}

static void test_overwrites(const char *base)
{
	struct blobdb *db;
	struct store *s = started_store(base, "overwrites", &db);

	TU_TEST("overwrites behind, inside and ahead of the digest");
	for (int round = 0; round < 20; round++) {
		size_t len = 8 * MiB + tu_rand_below(MiB);
		uint8_t *data = tu_random_buffer(len);
		struct blob_writer *w;
		size_t written = 0;

		REQUIRE(blob_writer_new(s, &w) == 0);
		while (written < len) {
			size_t n = 1 + tu_rand_below(300 * 1024);
			n = len - written < n ? len - written : n;
			REQUIRE(blob_writer_write(w, data + written, n, written) == 0);
			written += n;
			if (tu_rand_below(4) == 0) {
				/* Change some bytes already written, anywhere. */
				size_t at = tu_rand_below(written), m = 1 + tu_rand_below(70000);
				m = written - at < m ? written - at : m;
				tu_fill_random(data + at, m);
				REQUIRE(blob_writer_write(w, data + at, m, at) == 0);
			}
			if (tu_rand_below(6) == 0)
				usleep(300);
		}
		commit_is(s, w, data, len);
		blob_writer_free(w);
		free(data);
	}
	store_close(s);
	blobdb_close(db);
}

static void test_truncates(const char *base)
{
	struct blobdb *db;
	struct store *s = started_store(base, "truncates", &db);

	TU_TEST("truncates down and up while the digest runs");
	for (int round = 0; round < 10; round++) {
		size_t len = 12 * MiB;
		uint8_t *data = tu_random_buffer(len);
		size_t cut = tu_rand_below(6 * MiB), grow = cut + tu_rand_below(3 * MiB);
		struct blob_writer *w;

		REQUIRE(blob_writer_new(s, &w) == 0);
		write_in_order(w, data, 6 * MiB, 256 * 1024);
		REQUIRE(blob_writer_truncate(w, cut) == 0);
		REQUIRE(blob_writer_truncate(w, grow) == 0);
		memset(data + cut, 0, grow - cut);
		REQUIRE(blob_writer_write(w, data + grow, len - grow, grow) == 0);
		commit_is(s, w, data, len);
		blob_writer_free(w);
		free(data);
	}
	store_close(s);
	blobdb_close(db);
}

static void test_shuffled(const char *base)
{
	struct blobdb *db;
	struct store *s = started_store(base, "shuffled", &db);
	size_t len = 10 * MiB + 777;
	uint8_t *data = tu_random_buffer(len);
	uint8_t h[HS], want[HS];

	TU_TEST("pieces in shuffled order, then the same content again (a dedup)");
	sha(data, len, want);
	CHECK_EQ(save_via_writer(s, data, len, h), 0);
	CHECK_MEM(h, want, HS);
	CHECK_EQ(save_via_writer(s, data, len, h), -EEXIST);
	CHECK(blob_is(s, data, len));
	free(data);
	store_close(s);
	blobdb_close(db);
}

struct parallel_arg {
	struct store *s;
	uint64_t seed;
};

static void *parallel_writer(void *p)
{
	struct parallel_arg *a = p;
	struct tu_rng rng;

	tu_rng_seed(&rng, a->seed);
	for (int round = 0; round < 3; round++) {
		size_t len = 4 * MiB + tu_rng_below(&rng, 4 * MiB);
		uint8_t *data = tu_rng_buffer(&rng, len);
		uint8_t want[HS], got[HS];
		struct blob_writer *w;

		REQUIRE(blob_writer_new(a->s, &w) == 0);
		for (size_t off = 0; off < len; off += 128 * 1024) {
			size_t n = len - off < 128 * 1024 ? len - off : 128 * 1024;
			REQUIRE(blob_writer_write(w, data + off, n, off) == 0);
		}
		sha(data, len, want);
		CHECK_EQ(blob_writer_commit(w, got), 0);
		CHECK_MEM(got, want, HS);
		blob_writer_free(w);
		free(data);
	}
	return NULL;
}

static void test_parallel(const char *base)
{
	struct blobdb *db;
	struct store *s = started_store(base, "parallel", &db);
	pthread_t threads[6];
	struct parallel_arg args[6];

	TU_TEST("six writers written from six threads at once");
	for (int i = 0; i < 6; i++) {
		args[i] = (struct parallel_arg){ .s = s, .seed = tu_rand() };
		REQUIRE(pthread_create(&threads[i], NULL, parallel_writer, &args[i]) == 0);
	}
	for (int i = 0; i < 6; i++)
		pthread_join(threads[i], NULL);
	CHECK_EQ(blob_count(s), 18);
	store_close(s);
	blobdb_close(db);
}

static void test_freed_while_digesting(const char *base)
{
	struct blobdb *db;
	struct store *s = started_store(base, "freed", &db);
	size_t len = 32 * MiB;
	uint8_t *data = tu_random_buffer(len);

	TU_TEST("writers freed, never committed, while digest threads have them");
	for (int round = 0; round < 10; round++) {
		struct blob_writer *w[4];
		/* Several at once, in pieces: the digest threads go round them
		 * a MiB at a time, so a writer being freed is put back on the
		 * queue, behind the others, as the free waits for its claim (a
		 * use after free once). */
		for (int i = 0; i < 4; i++) {
			REQUIRE(blob_writer_new(s, &w[i]) == 0);
			for (size_t off = 0; off < len; off += 4 * MiB)
				REQUIRE(blob_writer_write(w[i], data + off, 4 * MiB, off) == 0);
		}
		for (int i = 0; i < 4; i++) {
			usleep(tu_rand_below(2000));
			blob_writer_free(w[i]);
		}
	}
	CHECK_EQ(blob_count(s), 0);
	free(data);
	store_close(s);
	blobdb_close(db);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_sequential },
		{ .once = test_overwrites },
		{ .once = test_truncates },
		{ .once = test_shuffled },
		{ .once = test_parallel },
		{ .once = test_freed_while_digesting },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
