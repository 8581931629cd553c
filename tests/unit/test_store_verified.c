/*
 * test_store_verified.c - verified reads of damaged packs: a flipped byte in
 * one chunk fails every read that touches that chunk (and only those), and
 * content re-sealed so that its chunk checksums pass but its SHA-256 does
 * not is refused at the end, and again on every retry.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include <dirent.h>
#include <pthread.h>
#include <unistd.h>

#include "bytes.h"
#include "chunk_codec.h"
#include "crc32c.h"
#include "local.h"
#include "storeutil.h"

/* Reads the whole blob in order in pieces of `piece` bytes; returns the
 * first error (0 if none) and checks that every byte handed out is right. */
static int read_in_order(struct store *s, const uint8_t *hash, const uint8_t *want, size_t len,
			 size_t piece, uint64_t *failed_at, struct blob_reader **keep)
{
	struct blob_reader *r;
	uint8_t *buf = tu_xmalloc(piece);
	uint64_t off = 0;
	int ret;

	REQUIRE(blob_open(s, hash, &r) == 0);
	ret = 0;
	while (off < len) {
		size_t got = 0;
		ret = blob_read(r, buf, piece, off, &got);
		if (ret) {
			*failed_at = off;
			break;
		}
		if (!CHECK(got > 0) || !CHECK_MEM(buf, want + off, got)) {
			ret = -EBADE;
			break;
		}
		off += got;
	}
	free(buf);
	if (keep)
		*keep = r;
	else
		blob_close(r);
	return ret;
}

static void test_verified_reads(const char *base)
{
	enum { LA = 200000, LB = 1000, LC = 150000 };
	char dir[PATH_MAX], path[PATH_MAX];
	struct blobdb *db;
	struct store *s;
	uint8_t *a = make_content(LA), *b = make_content(LB), *c = make_content(LC);
	uint8_t ha[HS], hb[HS], hc[HS];
	struct record_info ra, rc;
	uint32_t pa, pc;
	uint64_t failed_at = 0;
	int r;

	TU_TEST("verified reads: a damaged chunk is never handed out");
	tu_path(dir, sizeof(dir), "%s/db-verify", base);
	s = new_store(dir, NULL, "v", &db);
	CHECK_EQ(blob_save(s, a, LA, ha), 0);
	CHECK_EQ(blob_save(s, b, LB, hb), 0);
	CHECK_EQ(blob_save(s, c, LC, hc), 0);
	CHECK_EQ(store_sync(s), 0);
	store_close(s);
	blobdb_close(db);
	REQUIRE(find_record(dir, "v", ha, &pa, &ra));
	REQUIRE(find_record(dir, "v", hc, &pc, &rc));

	/* One flipped byte in the third chunk of a. */
	path_of_pack(dir, "v", pa, path);
	tu_xor_byte(path, record_data_offset(&ra) + 2 * 65536 + 5, 0x40);
	db = db_open(dir, NULL);
	s = st_open(db, "v");
	CHECK(blob_is(s, b, LB));
	CHECK(blob_is(s, c, LC));
	r = read_in_order(s, ha, a, LA, 10000, &failed_at, NULL);
	CHECK_EQ(r, -EIO);
	CHECK(failed_at >= 2 * 65536 - 10000 && failed_at <= 3 * 65536);
	{
		struct blob_reader *rd;
		uint8_t buf[300];
		size_t got = 0;
		REQUIRE(blob_open(s, ha, &rd) == 0);
		/* Other chunks read fine, in any order. */
		CHECK_EQ(blob_read(rd, buf, sizeof(buf), 3 * 65536 + 100, &got), 0);
		if (CHECK_EQ(got, sizeof(buf)))
			CHECK_MEM(buf, a + 3 * 65536 + 100, sizeof(buf));
		CHECK_EQ(blob_read(rd, buf, sizeof(buf), 100, &got), 0);
		if (CHECK_EQ(got, sizeof(buf)))
			CHECK_MEM(buf, a + 100, sizeof(buf));
		/* Any read touching the damaged chunk fails, every time. */
		for (int i = 0; i < 3; i++) {
			got = 12345;
			CHECK_EQ(blob_read(rd, buf, 10, 2 * 65536 + 5, &got), -EIO);
			CHECK_EQ(got, 0);
		}
		CHECK_EQ(blob_read(rd, buf, sizeof(buf), 2 * 65536 - 100, &got), -EIO);
		blob_close(rd);
	}
	store_close(s);
	blobdb_close(db);
	tu_xor_byte(path, record_data_offset(&ra) + 2 * 65536 + 5, 0x40);

	TU_TEST("verified reads: content that passes its chunk checksums but not its hash");
	/* Change a byte of c's last chunk and re-seal that chunk's checksum and
	 * the table's: only the SHA-256 can tell. */
	{
		uint64_t pos = record_data_offset(&rc) + 2 * 65536 + 7;
		uint64_t table = record_data_offset(&rc) + LC;
		uint8_t chunk[LC - 2 * 65536], tbl[12], trailer_crc[4];
		path_of_pack(dir, "v", pc, path);
		tu_xor_byte(path, pos, 0x01);
		tu_read_at(path, record_data_offset(&rc) + 2 * 65536, chunk, sizeof(chunk));
		tu_read_at(path, table, tbl, sizeof(tbl));
		put_le32(tbl + 8, crc32c(0, chunk, sizeof(chunk)));
		tu_patch_file(path, table, tbl, sizeof(tbl));
		put_le32(trailer_crc, crc32c(0, tbl, sizeof(tbl)));
		tu_patch_file(path, table + sizeof(tbl) + 4, trailer_crc, 4);
	}
	db = db_open(dir, NULL);
	s = st_open(db, "v");
	CHECK(blob_is(s, a, LA));
	CHECK(blob_is(s, b, LB));
	{
		struct blob_reader *rd = NULL;
		uint8_t buf[LC];
		size_t got = 0;
		r = read_in_order(s, hc, c, LC, 4096, &failed_at, &rd);
		CHECK_EQ(r, -EIO);
		/* Refused at the end, where the hash completes. */
		CHECK(failed_at >= 2 * 65536);
		/* Asking again must not hand out the bytes either. */
		r = blob_read(rd, buf, 4096, failed_at, &got);
		if (!CHECK_EQ(r, -EIO))
			fprintf(stderr, "  the read refused for a bad hash succeeded when retried (%zu bytes)\n",
				got);
		r = blob_read(rd, buf, LC, 0, &got);
		if (!CHECK_EQ(r, -EIO))
			fprintf(stderr, "  a whole-blob read after the refused one succeeded (%zu bytes)\n",
				got);
		blob_close(rd);
		/* Found corrupt: a later open is refused. */
		rd = NULL;
		CHECK_EQ(blob_open(s, hc, &rd), -EIO);
		if (rd)
			blob_close(rd);
	}
	store_close(s);
	blobdb_close(db);
	/* After a reopen (which forgets that), a fresh reader reading it all
	 * in one go: refused. */
	db = db_open(dir, NULL);
	s = st_open(db, "v");
	{
		struct blob_reader *rd = NULL;
		uint8_t buf[LC];
		size_t got = 0;
		REQUIRE(blob_open(s, hc, &rd) == 0);
		CHECK_EQ(blob_read(rd, buf, LC, 0, &got), -EIO);
		blob_close(rd);
		/* Read out of order, whole: the read that reaches the end hashes
		 * what the others skipped first, and is refused. */
		CHECK_EQ(blob_open(s, hc, &rd), -EIO);
	}
	store_close(s);
	blobdb_close(db);
	db = db_open(dir, NULL);
	s = st_open(db, "v");
	{
		struct blob_reader *rd = NULL;
		uint8_t buf[LC];
		size_t got = 0;
		REQUIRE(blob_open(s, hc, &rd) == 0);
		CHECK_EQ(blob_read(rd, buf, 65536, 65536, &got), 0);
		CHECK_EQ(blob_read(rd, buf, 65536, 0, &got), 0);
		CHECK_EQ(blob_read(rd, buf, LC - 2 * 65536, 2 * 65536, &got), -EIO);
		blob_close(rd);
	}
	store_close(s);
	blobdb_close(db);
	free(a);
	free(b);
	free(c);
}

/* The number of threads of this process. */
static int thread_count(void)
{
	DIR *d = opendir("/proc/self/task");
	struct dirent *e;
	int n = 0;

	REQUIRE(d);
	while ((e = readdir(d)))
		n += e->d_name[0] != '.';
	closedir(d);
	return n;
}

/* Reads [off, off + len) in pieces of `piece`, in order; the first error,
 * or 0, and where it came. Bytes are not compared: a chunk re-sealed to
 * pass its CRC32C is handed out until the hash completes. */
static int read_span(struct blob_reader *r, uint64_t off, uint64_t len, size_t piece,
		     uint64_t *failed_at)
{
	uint8_t *buf = tu_xmalloc(piece);
	uint64_t end = off + len;
	int ret = 0;

	while (off < end) {
		size_t got = 0;
		ret = blob_read(r, buf, end - off < piece ? (size_t)(end - off) : piece, off, &got);
		if (ret == 0 && got == 0)
			ret = -EBADE;
		if (ret) {
			*failed_at = off;
			break;
		}
		off += got;
	}
	free(buf);
	return ret;
}

/* Waits up to a second for the thread count to come down to n (a joined
 * thread leaves /proc a moment after pthread_join returns). */
static int thread_count_settles(int n)
{
	int now = thread_count();

	for (int i = 0; i < 100 && now > n; i++) {
		usleep(10000);
		now = thread_count();
	}
	return now;
}

static void reseal_chunk(const char *path, const struct record_info *rec, uint64_t len,
			 uint64_t k)
{
	uint64_t table = record_data_offset(rec) + len;
	uint64_t at = record_data_offset(rec) + k * 65536;
	size_t tbl_len = 4 * (size_t)((len + 65535) / 65536); /* a CRC32C per chunk */
	uint8_t *chunk = tu_xmalloc(65536), *tbl = tu_xmalloc(tbl_len), crc[4];

	tu_read_at(path, at, chunk, 65536);
	put_le32(crc, crc32c(0, chunk, 65536));
	tu_patch_file(path, table + 4 * k, crc, 4);
	tu_read_at(path, table, tbl, tbl_len);
	put_le32(crc, crc32c(0, tbl, tbl_len));
	tu_patch_file(path, table + tbl_len + 4, crc, 4); /* the trailer's table_crc */
	free(chunk);
	free(tbl);
}

struct tail_reader {
	struct blob_reader *r;
	uint64_t from, len;
	int ret;
};

static void *read_tail(void *arg)
{
	struct tail_reader *t = arg;
	uint64_t failed_at = 0;

	t->ret = read_span(t->r, t->from, t->len, 1 << 20, &failed_at);
	return NULL;
}

/* Several reads completing the blob at once on one reader (the kernel
 * sends a FUSE file's reads on several threads): they all wait for the
 * thread, and it is joined once. */
static void read_ends_at_once(struct store *s, const uint8_t *h, uint64_t len)
{
	enum { THREADS = 4 };
	struct tail_reader t[THREADS];
	pthread_t tid[THREADS];
	struct blob_reader *r;
	uint64_t failed_at = 0;

	REQUIRE(blob_open(s, h, &r) == 0);
	CHECK_EQ(read_span(r, 0, 1 << 20, 1 << 20, &failed_at), 0);
	for (int i = 0; i < THREADS; i++) {
		t[i] = (struct tail_reader){ .r = r, .from = 1 << 20, .len = len - (1 << 20) };
		REQUIRE(pthread_create(&tid[i], NULL, read_tail, &t[i]) == 0);
	}
	for (int i = 0; i < THREADS; i++) {
		pthread_join(tid[i], NULL);
		CHECK_EQ(t[i].ret, 0);
	}
	blob_close(r);
}

/* A large raw blob read from its start has its hash computed by a thread
 * of its own (local_ahead.c): the reads stay exact, the thread goes with
 * the reader or sooner when the reads stop, more readers than CPUs still
 * read right, a damaged chunk the thread meets is left to the reads (it
 * fails them, not the blob), and a hash that does not match fails the read
 * that completes the blob, as the inline hash does. */
static void test_hashing_ahead(const char *base)
{
	enum { LEN = 9 * 1024 * 1024 + 12345, MB = 1 << 20 };
	const uint64_t bad_chunk = 70, late = LEN - 5000;
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	const int slots = cpus < 1 ? 1 : (int)cpus; /* the database's ahead_max */
	const int readers = slots > 14 ? 16 : slots + 2;
	char dir[PATH_MAX], path[PATH_MAX];
	struct blob_reader *rd[16];
	uint8_t *c = make_content(LEN), h[HS];
	struct record_info rec;
	struct blobdb *db;
	struct store *s;
	uint64_t failed_at = 0;
	uint32_t pack;
	/* Every whole read hashes: a record read whole is not remembered
	 * (test_checked_once), so each read here starts a thread. */
	struct blobdb_options opts = opts_default();
	int before, most;

	TU_TEST("hashing ahead: large blobs read whole, in order, out of order and in part");
	opts.rehash = true;
	tu_path(dir, sizeof(dir), "%s/db-ahead", base);
	s = new_store(dir, &opts, "v", &db);
	CHECK_EQ(blob_save(s, c, LEN, h), 0);
	CHECK_EQ(store_sync(s), 0);
	for (size_t piece = 4096; piece <= MB; piece *= 16)
		CHECK_EQ(read_in_order(s, h, c, LEN, piece, &failed_at, NULL), 0);
	/* Mid-way the thread is there; after the close it is gone. */
	before = thread_count_settles(thread_count());
	REQUIRE(blob_open(s, h, &rd[0]) == 0);
	CHECK_EQ(read_span(rd[0], 0, MB, 65536, &failed_at), 0);
	CHECK_EQ(thread_count(), before + 1);
	blob_close(rd[0]);
	CHECK_EQ(thread_count_settles(before), before);
	/* Out of order after a start at 0: the end first, then the rest. */
	REQUIRE(blob_open(s, h, &rd[0]) == 0);
	CHECK_EQ(read_span(rd[0], 0, 65536, 65536, &failed_at), 0);
	CHECK_EQ(read_span(rd[0], LEN - 3 * 65536, 3 * 65536, 65536, &failed_at), 0);
	CHECK_EQ(read_span(rd[0], 65536, LEN - 4 * 65536, MB, &failed_at), 0);
	blob_close(rd[0]);
	/* More readers than CPUs, interleaved: one thread per CPU at most, the
	 * other readers hash inline. */
	most = before;
	for (int i = 0; i < readers; i++)
		REQUIRE(blob_open(s, h, &rd[i]) == 0);
	for (uint64_t off = 0; off < LEN; off += MB) {
		for (int i = 0; i < readers; i++)
			CHECK_EQ(read_span(rd[i], off, LEN - off < MB ? LEN - off : MB, 1 << 18,
					   &failed_at), 0);
		if (thread_count() > most)
			most = thread_count();
	}
	CHECK(most > before);
	CHECK(most <= before + (slots < readers ? slots : readers));
	for (int i = 0; i < readers; i++)
		blob_close(rd[i]);
	CHECK_EQ(thread_count_settles(before), before);
	/* A reader that stops: its thread ends after a second without reads
	 * (the reader keeps its handle), and the rest is hashed inline. */
	REQUIRE(blob_open(s, h, &rd[0]) == 0);
	CHECK_EQ(read_span(rd[0], 0, MB, MB, &failed_at), 0);
	usleep(1500 * 1000);
	CHECK_EQ(thread_count_settles(before), before);
	CHECK_EQ(read_span(rd[0], MB, LEN - MB, MB, &failed_at), 0);
	blob_close(rd[0]);
	for (int round = 0; round < 10; round++)
		read_ends_at_once(s, h, LEN);
	store_close(s);
	blobdb_close(db);

	/* A flipped byte near the end (its CRC32C fails): a reader that stops
	 * before it reads fine whatever the thread met; one that reads it gets
	 * EIO there; the blob stays readable (only the hash refuses a blob). */
	REQUIRE(find_record(dir, "v", h, &pack, &rec));
	path_of_pack(dir, "v", pack, path);
	tu_xor_byte(path, record_data_offset(&rec) + late, 0x04);
	db = db_open(dir, &opts);
	s = st_open(db, "v");
	REQUIRE(blob_open(s, h, &rd[0]) == 0);
	CHECK_EQ(read_span(rd[0], 0, LEN / 10 * 6, MB, &failed_at), 0);
	usleep(300 * 1000);
	CHECK_EQ(read_span(rd[0], LEN / 10 * 6, LEN / 10, MB, &failed_at), 0);
	blob_close(rd[0]);
	REQUIRE(blob_open(s, h, &rd[0]) == 0);
	CHECK_EQ(read_span(rd[0], 0, LEN, 65536, &failed_at), -EIO);
	CHECK_EQ(failed_at >> 16, late >> 16);
	blob_close(rd[0]);
	rd[0] = NULL;
	CHECK_EQ(blob_open(s, h, &rd[0]), 0);
	if (rd[0])
		blob_close(rd[0]);
	store_close(s);
	blobdb_close(db);
	tu_xor_byte(path, record_data_offset(&rec) + late, 0x04);

	/* A chunk in the middle re-sealed: only the whole hash can tell. */
	tu_xor_byte(path, record_data_offset(&rec) + bad_chunk * 65536 + 999, 0x10);
	reseal_chunk(path, &rec, LEN, bad_chunk);
	db = db_open(dir, &opts);
	s = st_open(db, "v");
	REQUIRE(blob_open(s, h, &rd[0]) == 0);
	CHECK_EQ(read_span(rd[0], 0, LEN, 1 << 18, &failed_at), -EIO);
	/* Refused once the thread has hashed it all: at the end, or earlier
	 * when the thread got there first (not before about half: it stays
	 * within twice the bytes served, this read's included). */
	if (!CHECK(failed_at + (1 << 18) >= LEN / 2))
		fprintf(stderr, "  refused at %" PRIu64 " of %d\n", failed_at, LEN);
	CHECK_EQ(read_span(rd[0], failed_at, LEN - failed_at, 1 << 18, &failed_at), -EIO);
	blob_close(rd[0]);
	rd[0] = NULL;
	CHECK_EQ(blob_open(s, h, &rd[0]), -EIO);
	if (rd[0])
		blob_close(rd[0]);
	store_close(s);
	blobdb_close(db);
	/* After a reopen: a reader that stops half-way is not refused (its
	 * chunks pass); one that reads to the end is, and so is one whose
	 * thread ended while it paused (the rest hashed inline). */
	db = db_open(dir, &opts);
	s = st_open(db, "v");
	REQUIRE(blob_open(s, h, &rd[0]) == 0);
	CHECK_EQ(read_span(rd[0], 0, LEN / 2, MB, &failed_at), 0);
	blob_close(rd[0]);
	REQUIRE(blob_open(s, h, &rd[0]) == 0);
	CHECK_EQ(read_span(rd[0], 0, MB, MB, &failed_at), 0);
	usleep(1500 * 1000);
	CHECK_EQ(read_span(rd[0], MB, LEN - MB, MB, &failed_at), -EIO);
	CHECK(failed_at >= LEN - MB);
	blob_close(rd[0]);
	store_close(s);
	blobdb_close(db);
	free(c);
}

/* Byte 7 of (whole) chunk k of the raw record rec (len bytes) in the pack
 * at path flipped and re-sealed, in place, as something outside blobfs
 * would: only the SHA-256 can tell. Returns what the blob then reads as. */
static uint8_t *change_and_reseal(const char *path, const struct record_info *rec,
				  const uint8_t *was, size_t len, uint64_t k)
{
	uint8_t *now = tu_xmalloc(len);

	memcpy(now, was, len);
	now[k * 65536 + 7] ^= 0x01;
	tu_xor_byte(path, record_data_offset(rec) + k * 65536 + 7, 0x01);
	reseal_chunk(path, rec, len, k);
	return now;
}

/* A record of 1 MiB or more read whole and found to hash to its name is
 * remembered until the db is closed (local_checked.c): a later reader
 * checks its chunks' CRC32C only. Shown by what only the SHA-256 sees:
 * content re-sealed in place after the first read passes while the db
 * stays open, and is refused by a reopened db, by one opened with rehash,
 * in a record below 1 MiB, and in a store destroyed and made again whose
 * record sits where the remembered one sat. */
static void test_checked_once(const char *base)
{
	enum { BIG = 2 * 1024 * 1024 + 4321, SMALL = 300000 };
	char dir[PATH_MAX], path[PATH_MAX];
	uint8_t *big = make_content(BIG), *small = make_content(SMALL), *now, *now_small, hb[HS],
		hs[HS];
	struct blobdb_options rehash = opts_default();
	struct record_info rb, rs, rb2;
	uint32_t pb, ps, pb2;
	struct blobdb *db;
	struct store *s;
	uint64_t failed_at = 0;

	TU_TEST("records checked whole: remembered until the db closes, unless rehash");
	tu_path(dir, sizeof(dir), "%s/db-checked", base);
	s = new_store(dir, NULL, "v", &db);
	CHECK_EQ(blob_save(s, big, BIG, hb), 0);
	CHECK_EQ(blob_save(s, small, SMALL, hs), 0);
	CHECK_EQ(store_sync(s), 0);
	REQUIRE(find_record(dir, "v", hb, &pb, &rb));
	REQUIRE(find_record(dir, "v", hs, &ps, &rs));
	CHECK_EQ(read_in_order(s, hb, big, BIG, 65536, &failed_at, NULL), 0);
	CHECK_EQ(read_in_order(s, hs, small, SMALL, 65536, &failed_at, NULL), 0);
	path_of_pack(dir, "v", pb, path);
	now = change_and_reseal(path, &rb, big, BIG, 20);
	path_of_pack(dir, "v", ps, path);
	now_small = change_and_reseal(path, &rs, small, SMALL, 2);
	/* The large record was hashed whole: its chunks alone are checked
	 * now, and they agree. */
	CHECK_EQ(read_in_order(s, hb, now, BIG, 65536, &failed_at, NULL), 0);
	CHECK_EQ(read_in_order(s, hb, now, BIG, 1000000, &failed_at, NULL), 0);
	/* The small one is hashed on every whole read. */
	CHECK_EQ(read_in_order(s, hs, now_small, SMALL, 65536, &failed_at, NULL), -EIO);
	/* Damage its CRC can see is refused as ever. */
	path_of_pack(dir, "v", pb, path);
	tu_xor_byte(path, record_data_offset(&rb) + 5 * 65536 + 3, 0x10);
	CHECK_EQ(read_in_order(s, hb, now, BIG, 65536, &failed_at, NULL), -EIO);
	CHECK(failed_at >= 4 * 65536 && failed_at <= 5 * 65536);
	tu_xor_byte(path, record_data_offset(&rb) + 5 * 65536 + 3, 0x10);
	store_close(s);
	blobdb_close(db);

	/* Forgotten with the db. */
	db = db_open(dir, NULL);
	s = st_open(db, "v");
	CHECK_EQ(read_in_order(s, hb, now, BIG, 65536, &failed_at, NULL), -EIO);
	store_close(s);
	blobdb_close(db);

	/* With rehash, a good record read whole twice is hashed twice: the
	 * second read, after the re-seal, is refused. */
	path_of_pack(dir, "v", pb, path);
	free(change_and_reseal(path, &rb, now, BIG, 20)); /* back as saved */
	rehash.rehash = true;
	db = db_open(dir, &rehash);
	s = st_open(db, "v");
	CHECK_EQ(read_in_order(s, hb, big, BIG, 65536, &failed_at, NULL), 0);
	free(change_and_reseal(path, &rb, big, BIG, 20));
	CHECK_EQ(read_in_order(s, hb, now, BIG, 65536, &failed_at, NULL), -EIO);
	store_close(s);
	blobdb_close(db);

	/* A store destroyed and made again: its first pack is numbered as
	 * the old one was, the same content lands where the remembered
	 * record sat, and it is hashed afresh. */
	db = db_open(dir, NULL);
	CHECK_EQ(store_destroy(db, "v", false), 0);
	CHECK_EQ(store_create(db, "v"), 0);
	s = st_open(db, "v");
	CHECK_EQ(blob_save(s, big, BIG, hb), 0);
	CHECK_EQ(store_sync(s), 0);
	REQUIRE(find_record(dir, "v", hb, &pb2, &rb2));
	CHECK_EQ(read_in_order(s, hb, big, BIG, 65536, &failed_at, NULL), 0);
	store_close(s);
	CHECK_EQ(store_destroy(db, "v", false), 0);
	CHECK_EQ(store_create(db, "v"), 0);
	s = st_open(db, "v");
	CHECK_EQ(blob_save(s, big, BIG, hb), 0);
	CHECK_EQ(store_sync(s), 0);
	REQUIRE(find_record(dir, "v", hb, &pb, &rb));
	CHECK_EQ(pb, pb2);
	CHECK_EQ(rb.offset, rb2.offset);
	path_of_pack(dir, "v", pb, path);
	free(change_and_reseal(path, &rb, big, BIG, 20));
	CHECK_EQ(read_in_order(s, hb, now, BIG, 65536, &failed_at, NULL), -EIO);
	store_close(s);
	blobdb_close(db);

	/* A compressed record (REC3) is remembered too, and a remembered
	 * reader reads out of order (the second half first) exactly. */
	{
		struct blobdb_options z = opts_default();
		struct blob_reader *rd;
		struct record_info rz;
		uint8_t *text = tu_xmalloc(BIG), *buf = tu_xmalloc(BIG), hz[HS];
		uint32_t pz;
		size_t got;

		for (size_t i = 0; i < BIG; i++)
			text[i] = (uint8_t)("blobfs remembers "[i % 17] ^ (i >> 16));
		z.compress = CHUNK_CODEC_ZSTD;
		tu_path(dir, sizeof(dir), "%s/db-checked-z", base);
		s = new_store(dir, &z, "z", &db);
		CHECK_EQ(blob_save(s, text, BIG, hz), 0);
		CHECK_EQ(store_sync(s), 0);
		REQUIRE(find_record(dir, "z", hz, &pz, &rz));
		CHECK_EQ(rz.version, 3);
		for (int round = 0; round < 2; round++) {
			REQUIRE(blob_open(s, hz, &rd) == 0);
			/* Remembered from the second open on, not before. */
			CHECK_EQ(((struct local_reader *)rd)->checked, round == 1);
			memset(buf, 0, BIG);
			CHECK_EQ(blob_read(rd, buf + BIG / 2, BIG - BIG / 2, BIG / 2, &got), 0);
			CHECK_EQ(got, BIG - BIG / 2);
			CHECK_EQ(blob_read(rd, buf, BIG / 2, 0, &got), 0);
			CHECK_EQ(got, BIG / 2);
			CHECK_MEM(buf, text, BIG);
			blob_close(rd);
		}
		store_close(s);
		blobdb_close(db);
		free(text);
		free(buf);
	}
	free(now);
	free(now_small);
	free(big);
	free(small);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_verified_reads },
		{ .once = test_hashing_ahead },
		{ .once = test_checked_once },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
