/*
 * test_store_saved.c - a blob's saved time in the local engine (format 2,
 * docs/FORMAT.md): set at the first save, kept by a re-save, new after a
 * delete; the same after a clean reopen (checkpoint), a reopen without a
 * checkpoint (pack scan), a crash (no checkpoint, records replayed), online
 * and offline compaction and fsck; and a data directory of format 1 (REC1
 * records, a version 1 checkpoint, written here byte for byte from a format 2
 * one) mounts, reads, shows the fallback time 0, takes new saves with real
 * times, and keeps both kinds through reopen and compaction.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include "bytes.h"
#include "checkpoint.h"
#include "crc32c.h"
#include "fsck.h"
#include "index.h"
#include "io.h"
#include "storeutil.h"

enum { SMALL = 6, N = SMALL + 1 };

struct blobs {
	uint8_t *data[N];
	size_t size[N];
	uint8_t hash[N][HS];
	int64_t saved[N];
};

/* Small blobs share a pack; the last one is large (a pack of its own). */
static void make_blobs(struct blobs *b, size_t large)
{
	for (size_t i = 0; i < N; i++) {
		b->size[i] = i < SMALL ? 100 + 997 * i : large;
		b->data[i] = make_content(b->size[i]);
		sha(b->data[i], b->size[i], b->hash[i]);
	}
}

static void free_blobs(struct blobs *b)
{
	for (size_t i = 0; i < N; i++)
		free(b->data[i]);
}

static int64_t saved_of(struct store *s, const uint8_t *hash)
{
	struct blob_stat st = { .saved = -42 };

	if (!CHECK_EQ(blob_stat(s, hash, &st), 0))
		return -42;
	return st.saved;
}

/* Every blob shows the time recorded in b (and reads back whole). */
static bool times_are(struct store *s, const struct blobs *b, const char *when)
{
	bool ok = true;

	for (size_t i = 0; i < N; i++) {
		struct blob_stat st = { 0 };
		ok &= CHECK_EQ(blob_stat(s, b->hash[i], &st), 0);
		ok &= CHECK_EQ(st.length, b->size[i]);
		if (!CHECK_EQ(st.saved, b->saved[i]))
			fprintf(stderr, "  blob %zu, %s\n", i, when);
		ok &= st.saved == b->saved[i];
		ok &= blob_is(s, b->data[i], b->size[i]);
	}
	return ok;
}

static void wait_next_second(int64_t after)
{
	while ((int64_t)time(NULL) <= after)
		usleep(20 * 1000);
}

static void check_fsck_clean(const char *dir)
{
	struct fsck_report report;
	FILE *out = tmpfile();

	REQUIRE(out != NULL);
	CHECK_EQ(fsck_run(dir, NULL, false, out, NULL, &report), 0);
	if (!CHECK_EQ(report.problems, 0)) {
		char line[512];
		rewind(out);
		while (fgets(line, sizeof(line), out))
			fputs(line, stderr);
	}
	fclose(out);
}

/* ---- format 2: first save, re-save, delete, reopen, crash, compaction ---- */

struct crash_arg {
	const char *dir;
	const struct blobdb_options *opts;
	struct blobs *b;
	const char *times_file;
};

/* In a child: saves the blobs, syncs, writes their times to a file and
 * ends without closing (no checkpoint, no clean stop: like a SIGKILL after
 * the data reached the disk). */
static void crash_after_saving(void *arg)
{
	struct crash_arg *c = arg;
	struct blobdb *db = db_open(c->dir, c->opts);
	struct store *s = st_open(db, "t");
	uint8_t hash[HS];

	for (size_t i = 0; i < N; i++) {
		CHECK_EQ(blob_save(s, c->b->data[i], c->b->size[i], hash), 0);
		c->b->saved[i] = saved_of(s, hash);
	}
	CHECK_EQ(store_sync(s), 0);
	CHECK_EQ(tu_write_file(c->times_file, c->b->saved, sizeof(c->b->saved)), 0);
	/* Returns without a close: the runner ends the child with _exit. */
	(void)db;
}

static void test_saved_time(const char *base, const struct blobdb_options *opts)
{
	char dir[PATH_MAX], ckpt[PATH_MAX], label[128], times_file[PATH_MAX];
	struct blobs b;
	struct blobdb *db;
	struct store *s;
	uint8_t hash[HS];
	int64_t before, after;

	snprintf(label, sizeof(label), "saved time: first save, re-save, delete, reopen (%s)",
		 opts_label(opts));
	TU_TEST(label);
	make_blobs(&b, (size_t)opts->large_blob_min + 12345);
	tu_path(dir, sizeof(dir), "%s/saved-%" PRIu64, base, opts->large_blob_min);
	s = new_store(dir, opts, "t", &db);
	before = (int64_t)time(NULL);
	for (size_t i = 0; i < N; i++) {
		CHECK_EQ(i % 2 ? save_via_writer(s, b.data[i], b.size[i], hash)
			       : blob_save(s, b.data[i], b.size[i], hash), 0);
		b.saved[i] = saved_of(s, hash);
	}
	after = (int64_t)time(NULL);
	for (size_t i = 0; i < N; i++)
		CHECK(b.saved[i] >= before && b.saved[i] <= after);
	{
		uint8_t missing[HS] = { 0 };
		struct blob_stat st;
		CHECK_EQ(blob_stat(s, missing, &st), -ENOENT);
	}

	/* A second later: saving the same content changes nothing. */
	wait_next_second(after);
	for (size_t i = 0; i < N; i++) {
		CHECK_EQ(blob_save(s, b.data[i], b.size[i], hash), -EEXIST);
		CHECK_EQ(save_via_writer(s, b.data[i], b.size[i], hash), -EEXIST);
	}
	CHECK(times_are(s, &b, "after re-saves"));
	/* A save after a delete is a new first save. */
	CHECK_EQ(blob_delete(s, b.hash[0]), 0);
	CHECK_EQ(blob_delete(s, b.hash[N - 1]), 0);
	CHECK_EQ(blob_save(s, b.data[0], b.size[0], hash), 0);
	CHECK_EQ(blob_save(s, b.data[N - 1], b.size[N - 1], hash), 0);
	CHECK(saved_of(s, b.hash[0]) > after);
	CHECK(saved_of(s, b.hash[N - 1]) > after);
	b.saved[0] = saved_of(s, b.hash[0]);
	b.saved[N - 1] = saved_of(s, b.hash[N - 1]);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);

	/* Reopened: from the checkpoint, then from the packs alone. */
	db = db_open(dir, opts);
	s = st_open(db, "t");
	CHECK(times_are(s, &b, "after a clean reopen"));
	/* Online compaction: the pack with the deleted records is rewritten. */
	CHECK_EQ(store_sync(s), 0);
	CHECK_EQ(store_compact(s, 0), 0);
	CHECK(times_are(s, &b, "after online compaction"));
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	tu_path(ckpt, sizeof(ckpt), "%s/stores/t/checkpoint", dir);
	CHECK_EQ(unlink(ckpt), 0);
	db = db_open(dir, opts);
	s = st_open(db, "t");
	CHECK(times_are(s, &b, "after a reopen without checkpoint"));
	store_close(s);
	CHECK_EQ(blobdb_compact(db, NULL), 0);
	s = st_open(db, "t");
	CHECK(times_are(s, &b, "after offline compaction"));
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	check_fsck_clean(dir);

	/* A crash after the saves: the times come back from the records. */
	{
		struct blobs c;
		struct crash_arg arg = { .opts = opts, .b = &c, .times_file = times_file };
		char crash_dir[PATH_MAX];
		int64_t *times;
		size_t len = 0;
		tu_path(crash_dir, sizeof(crash_dir), "%s/saved-crash-%" PRIu64, base,
			opts->large_blob_min);
		tu_path(times_file, sizeof(times_file), "%s.times", crash_dir);
		arg.dir = crash_dir;
		make_blobs(&c, (size_t)opts->large_blob_min + 777);
		s = new_store(crash_dir, opts, "t", &db);
		store_close(s);
		CHECK_EQ(blobdb_close(db), 0);
		tu_path(ckpt, sizeof(ckpt), "%s/stores/t/checkpoint", crash_dir);
		unlink(ckpt); /* it would not cover the child's saves anyway */
		CHECK(TU_RUN_CHILD(crash_after_saving, &arg, 60));
		times = tu_read_file(times_file, &len);
		if (CHECK(times != NULL) && CHECK_EQ(len, sizeof(c.saved))) {
			memcpy(c.saved, times, sizeof(c.saved));
			db = db_open(crash_dir, opts);
			s = st_open(db, "t");
			CHECK(times_are(s, &c, "after a crash"));
			store_close(s);
			CHECK_EQ(blobdb_close(db), 0);
		}
		free(times);
		free_blobs(&c);
	}
	free_blobs(&b);
}

/* ---- format 1: an old data directory ---- */

/* Rewrites every record header of a store's packs as REC1 (no time), in
 * place: what blobfs format 1 wrote. */
static void to_rec1(const struct pack_event *ev, void *arg)
{
	uint8_t header[RECORD_HEADER_SIZE];
	struct record_info rec;

	(void)arg;
	if (ev->kind != PACK_RECORD)
		return;
	rec = *ev->rec;
	rec.version = 1;
	rec.time = RECORD_TIME_UNKNOWN;
	record_header_encode(&rec, header);
	tu_patch_file(ev->path, rec.offset, header, sizeof(header));
}

static void count_versions(const struct pack_event *ev, void *arg)
{
	size_t *count = arg; /* [0]: REC1, [1]: REC2 */

	if (ev->kind == PACK_RECORD)
		count[ev->rec->version == 1 ? 0 : 1]++;
}

/* Rewrites a format 2 checkpoint as format 1, byte for byte: version 1 in
 * the header, entries without their last 8 bytes (the time), new CRCs. */
static void checkpoint_to_v1(const char *path)
{
	size_t len = 0, out_len, at;
	uint8_t *in = tu_read_file(path, &len), *out;
	uint32_t packs;
	uint64_t entries;

	REQUIRE(in != NULL && len >= CHECKPOINT_HEADER_SIZE + CHECKPOINT_TRAILER_SIZE);
	REQUIRE(get_le32(in + 8) == CHECKPOINT_VERSION); /* raw records only: no disk sizes */
	packs = get_le32(in + 12);
	entries = get_le64(in + 16);
	out_len = len - (size_t)entries * (CHECKPOINT_ENTRY_SIZE - CHECKPOINT_ENTRY_SIZE_V1);
	out = tu_xmalloc(out_len);
	at = CHECKPOINT_HEADER_SIZE + (size_t)packs * CHECKPOINT_PACK_SIZE;
	memcpy(out, in, at);
	put_le32(out + 8, 1);
	put_le32(out + 60, crc32c(0, out, 60));
	for (uint64_t i = 0; i < entries; i++) {
		const uint8_t *e = in + at + i * CHECKPOINT_ENTRY_SIZE;
		REQUIRE(get_le64(e + 56) == 0); /* REC1 records: no time */
		memcpy(out + at + i * CHECKPOINT_ENTRY_SIZE_V1, e, CHECKPOINT_ENTRY_SIZE_V1);
	}
	at += (size_t)entries * CHECKPOINT_ENTRY_SIZE_V1;
	put_le32(out + at, 0x31584449u); /* "IDX1" */
	put_le32(out + at + 4, crc32c(0, out, at));
	REQUIRE(at + CHECKPOINT_TRAILER_SIZE == out_len);
	REQUIRE(tu_write_file(path, out, out_len) == 0);
	free(in);
	free(out);
}

static void test_old_format(const char *base)
{
	struct blobdb_options opts = opts_default();
	char dir[PATH_MAX], store_dir[PATH_MAX], ckpt[PATH_MAX];
	struct blobs old, fresh;
	size_t versions[2] = { 0 };
	struct blobdb *db;
	struct store *s;
	uint8_t hash[HS];
	int64_t before, after;

	TU_TEST("a format 1 data directory: mounts, reads, time 0, takes new saves");
	make_blobs(&old, (size_t)opts.large_blob_min + 4321);
	make_blobs(&fresh, (size_t)opts.large_blob_min + 8765);
	tu_path(dir, sizeof(dir), "%s/old-format", base);
	tu_path(store_dir, sizeof(store_dir), "%s/stores/old", dir);
	tu_path(ckpt, sizeof(ckpt), "%s/checkpoint", store_dir);

	/* Made by today's code, then its bytes turned into format 1's: REC1
	 * records (a tombstone among them) and a version 1 checkpoint. */
	s = new_store(dir, &opts, "old", &db);
	for (size_t i = 0; i < N; i++)
		CHECK_EQ(blob_save(s, old.data[i], old.size[i], hash), 0);
	{
		uint8_t *gone = make_content(333);
		CHECK_EQ(blob_save(s, gone, 333, hash), 0);
		CHECK_EQ(blob_delete(s, hash), 0);
		free(gone);
	}
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	scan_packs(dir, "old", UINT32_MAX, to_rec1, NULL);
	scan_packs(dir, "old", UINT32_MAX, count_versions, versions);
	CHECK_EQ(versions[0], N + 2);
	CHECK_EQ(versions[1], 0);
	for (size_t i = 0; i < N; i++)
		old.saved[i] = RECORD_TIME_UNKNOWN;
	/* The checkpoint rewritten as version 1 is still read: its entries
	 * have the fallback time. */
	{
		struct index *index = NULL;
		struct checkpoint_header h;
		struct checkpoint_pack *packs = NULL;
		struct index_entry e;
		int dir_fd = open(store_dir, O_RDONLY | O_DIRECTORY);
		/* Written today, it had REC2 times: zero them as format 1 had
		 * none (the entries point at REC1 records now). */
		REQUIRE(dir_fd >= 0 && index_new(&index) == 0);
		{
			size_t len = 0;
			uint8_t *bytes = tu_read_file(ckpt, &len);
			uint64_t entries = get_le64(bytes + 16);
			size_t at = CHECKPOINT_HEADER_SIZE + get_le32(bytes + 12) * CHECKPOINT_PACK_SIZE;
			for (uint64_t i = 0; i < entries; i++)
				memset(bytes + at + i * CHECKPOINT_ENTRY_SIZE + 56, 0, 8);
			put_le32(bytes + len - 4, crc32c(0, bytes, len - 8));
			REQUIRE(tu_write_file(ckpt, bytes, len) == 0);
			free(bytes);
		}
		checkpoint_to_v1(ckpt);
		CHECK_EQ(checkpoint_read(io_system(), dir_fd, "checkpoint", &h, &packs, index), 0);
		CHECK_EQ(h.version, 1);
		CHECK_EQ(h.entry_count, N);
		CHECK(checkpoint_usable(io_system(), dir_fd, &h, packs));
		CHECK_EQ(index_lookup(index, old.hash[0], &e), 0);
		CHECK_EQ(e.saved, RECORD_TIME_UNKNOWN);
		CHECK_EQ(e.length, old.size[0]);
		free(packs);
		index_free(index);
		close(dir_fd);
	}
	check_fsck_clean(dir);

	/* Mounted: everything reads, with the fallback time; saves work. */
	db = db_open(dir, &opts);
	s = st_open(db, "old");
	CHECK_EQ(blob_count(s), N);
	CHECK(times_are(s, &old, "format 1, first mount"));
	before = (int64_t)time(NULL);
	for (size_t i = 0; i < N; i++) {
		CHECK_EQ(blob_save(s, fresh.data[i], fresh.size[i], hash), 0);
		fresh.saved[i] = saved_of(s, hash);
	}
	after = (int64_t)time(NULL);
	for (size_t i = 0; i < N; i++)
		CHECK(fresh.saved[i] >= before && fresh.saved[i] <= after);
	/* Content a format 1 blob has: -EEXIST, and it keeps the fallback. */
	CHECK_EQ(blob_save(s, old.data[1], old.size[1], hash), -EEXIST);
	CHECK_EQ(saved_of(s, old.hash[1]), RECORD_TIME_UNKNOWN);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	/* The packs stay mixed: old records are not rewritten. */
	versions[0] = versions[1] = 0;
	scan_packs(dir, "old", UINT32_MAX, count_versions, versions);
	CHECK_EQ(versions[0], N + 2);
	CHECK_EQ(versions[1], N);
	check_fsck_clean(dir);

	/* Reopened (format 2 checkpoint), without checkpoint, compacted. */
	db = db_open(dir, &opts);
	s = st_open(db, "old");
	CHECK(times_are(s, &old, "format 1 blobs, reopened"));
	CHECK(times_are(s, &fresh, "format 2 blobs in a format 1 directory, reopened"));
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	CHECK_EQ(unlink(ckpt), 0);
	db = db_open(dir, &opts);
	s = st_open(db, "old");
	CHECK(times_are(s, &old, "format 1 blobs, scanned"));
	CHECK(times_are(s, &fresh, "format 2 blobs, scanned"));
	store_close(s);
	CHECK_EQ(blobdb_compact(db, NULL), 0);
	s = st_open(db, "old");
	CHECK(times_are(s, &old, "format 1 blobs, compacted"));
	CHECK(times_are(s, &fresh, "format 2 blobs, compacted"));
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	check_fsck_clean(dir);
	free_blobs(&old);
	free_blobs(&fresh);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .both = test_saved_time },
		{ .once = test_old_format },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
