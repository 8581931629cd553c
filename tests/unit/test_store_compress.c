/*
 * test_store_compress.c - a data directory opened with compress=zstd
 * (blobdb_options.compress): which saves become REC3 records (compressible
 * small blobs, and large ones through a writer's staging file) and which
 * stay REC2 (random content, a byte, nothing, a large blob whose first
 * sixteen chunks do not shrink), each checked in the pack files; every blob
 * read back exactly through a reader at random offsets and sizes (inside a
 * chunk, across chunks, the last partial chunk, backwards) and re-saved as
 * -EEXIST; a writer committed again after a compressed commit; the
 * checkpoint (version 3, each REC3's disk size) against the packs, and a
 * reopen through it and one through a scan (checkpoint removed) giving the
 * same index and statistics; a delete's dead bytes counted exactly (the
 * compressed sizes) by both paths and given back by compaction; a data
 * directory written without compression reopened with it and the reverse,
 * with packs that hold both formats; fsck on each.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include "storeutil.h"

#include "checkpoint.h"
#include "chunk_codec.h"
#include "fsck.h"
#include "index.h"
#include "log.h"

#define CHUNK (UINT64_C(1) << CHUNK_SHIFT_DEFAULT)

static struct blobdb_options opts_zstd(void)
{
	struct blobdb_options o = opts_default();

	o.compress = CHUNK_CODEC_ZSTD;
	return o;
}

/* Large blobs from 128 KiB, packs of at most 512 KiB. */
static struct blobdb_options opts_zstd_small(void)
{
	struct blobdb_options o = opts_zstd();

	o.large_blob_min = 2 * CHUNK;
	o.pack_size_max = 8 * CHUNK;
	return o;
}

/* ---- content ---- */


/* len bytes, chunk i made as pattern[i % strlen(pattern)] says, distinct
 * from every other blob made here (a serial number in the first bytes,
 * spelt in the chunk's own alphabet). */
static uint8_t *make_blob(size_t len, const char *pattern)
{
	static unsigned serial;
	uint8_t *p = tu_xmalloc(len ? len : 1);
	size_t kinds = strlen(pattern);

	for (uint64_t i = 0; i * CHUNK < len; i++)
		tu_fill_kind(p + i * CHUNK, len - i * CHUNK < CHUNK ? len - i * CHUNK : CHUNK,
			   pattern[i % kinds]);
	serial++;
	for (size_t i = 0; i < 8 && i < len; i++)
		p[i] = pattern[0] == 'r' ? (uint8_t)(serial >> (8 * (i % 4))) :
		       pattern[0] == 'z' ? (uint8_t)(i < 4 ? serial >> (8 * i) : 0) :
					   (uint8_t)("etaoin s"[(serial >> (3 * i)) & 7]);
	return p;
}

/* The version of the newest record of a blob in the store's packs (0 when
 * there is none); its record in *rec. */
static unsigned record_version(const char *dir, const char *store, const uint8_t *hash,
			       struct record_info *rec)
{
	uint32_t pack;

	return find_record(dir, store, hash, &pack, rec) ? rec->version : 0;
}

/* Reads a blob through one reader at offsets and sizes chosen to land
 * inside one chunk, across chunk boundaries, in the last (partial) chunk,
 * anywhere and past the end; then each chunk from the last to the first;
 * then in order, small pieces (the whole-blob hash is checked then). */
static bool reads_at_random(struct store *s, const uint8_t *data, size_t len)
{
	struct blob_reader *r = NULL;
	uint64_t last_chunk = len ? (len - 1) / CHUNK * CHUNK : 0;
	uint8_t hash[HS], *buf = tu_xmalloc(len + 4 * CHUNK);
	bool ok = true;
	size_t got;

	sha(data, len, hash);
	if (!CHECK_EQ(blob_open(s, hash, &r), 0) || !CHECK_EQ(blob_reader_length(r), len) || !len)
		goto out;
	for (int i = 0; i < 150 && ok; i++) {
		uint64_t off, size, expect;
		switch (i % 5) {
		case 0: /* inside one chunk */
			off = tu_rand_below(len);
			size = 1 + tu_rand_below(CHUNK - off % CHUNK);
			break;
		case 1: /* across one or more boundaries */
			if (len > CHUNK) {
				uint64_t b = CHUNK * (1 + tu_rand_below((len - 1) / CHUNK));
				off = b - 1 - tu_rand_below(3000);
				size = b - off + 1 + tu_rand_below(2 * CHUNK);
			} else {
				off = tu_rand_below(len);
				size = len - off;
			}
			break;
		case 2: /* in the last chunk, to its end or past it */
			off = last_chunk + tu_rand_below(len - last_chunk);
			size = 1 + tu_rand_below(len - off + 100);
			break;
		case 3: /* anywhere */
			off = tu_rand_below(len);
			size = 1 + tu_rand_below(3 * CHUNK);
			break;
		default: /* at or past the end: nothing */
			off = len + tu_rand_below(3);
			size = 1 + tu_rand_below(100);
			break;
		}
		expect = off >= len ? 0 : len - off < size ? len - off : size;
		got = 12345;
		ok &= CHECK_EQ(blob_read(r, buf, (size_t)size, off, &got), 0);
		ok &= CHECK_EQ(got, expect);
		if (ok && expect)
			ok &= CHECK_MEM(buf, data + off, (size_t)expect);
		if (!ok)
			fprintf(stderr, "  read of %" PRIu64 " bytes at %" PRIu64 " of %zu\n", size, off, len);
	}
	for (uint64_t c = last_chunk + CHUNK; c > 0 && ok; c -= CHUNK) {
		uint64_t off = c - CHUNK, n = len - off < CHUNK ? len - off : CHUNK;
		ok &= CHECK_EQ(blob_read(r, buf, CHUNK, off, &got), 0);
		ok &= CHECK_EQ(got, n);
		if (ok)
			ok &= CHECK_MEM(buf, data + off, (size_t)n);
	}
	blob_close(r);
	r = NULL;
	/* A fresh reader, in order: the last read checks the SHA-256. */
	if (ok && CHECK_EQ(blob_open(s, hash, &r), 0)) {
		for (uint64_t off = 0; off < len && ok; off += got) {
			ok &= CHECK_EQ(blob_read(r, buf, 4093, off, &got), 0);
			ok &= CHECK(got > 0 && CHECK_MEM(buf, data + off, got));
		}
	}
out:
	blob_close(r);
	free(buf);
	if (!ok)
		fprintf(stderr, "  blob %s (%zu bytes)\n", hexs(hash), len);
	return ok;
}

/* fsck finds no problem in dir, and counts `blobs` blobs of `bytes` bytes
 * in all. */
static void fsck_clean(const char *dir, unsigned long long blobs, unsigned long long bytes)
{
	struct fsck_report report;
	char *text = NULL;
	size_t text_len = 0;
	FILE *out = open_memstream(&text, &text_len);

	REQUIRE(out);
	CHECK_EQ(fsck_run(dir, NULL, false, out, NULL, &report), 0);
	fclose(out);
	CHECK_EQ(report.problems, 0);
	CHECK_EQ(report.blobs, blobs);
	CHECK_EQ(report.bytes, bytes);
	if (report.problems)
		fprintf(stderr, "%s", text);
	free(text);
}

/* ---- what a compressed save makes ---- */

struct saved {
	uint8_t *data;
	size_t len;
	uint8_t hash[HS];
	unsigned version; /* of its record: 2 raw, 3 compressed */
	bool present;
};

struct case_spec {
	size_t len;
	const char *pattern;
	bool via_writer;
	unsigned version;
};

#define CASES 13

static const struct case_spec cases[CASES] = {
	{ 3000, "t", false, 3 },
	{ 3000, "r", false, 2 },
	{ 1, "t", false, 2 },  /* a byte never shrinks */
	{ 0, "t", false, 2 },  /* nothing to compress */
	{ 70000, "tr", false, 3 },
	{ 200000, "z", true, 3 },
	{ 5 * CHUNK + 77, "trttr", true, 3 },
	{ 3 * CHUNK, "r", true, 2 },
	{ (3 << 20) + 12345, "t", true, 3 },
	{ 2 << 20, "r", true, 2 },
	/* The first 16 chunks decide for a large blob: all raw, it stays raw;
	 * one of them compressed, the rest is tried. */
	{ 24 * CHUNK, "rrrrrrrrrrrrrrrrtttttttt", true, 2 },
	{ 24 * CHUNK, "rrrrrrrrrrrrrrrtttttttttt", true, 3 },
	{ 12 * CHUNK + 5, "zrt", false, 3 },
};

/* The saves of cases[] in a new store "z" of dir, each checked on disk
 * and read back; re-saves say -EEXIST and write nothing. */
static void save_cases(const char *dir, const struct blobdb_options *opts, struct saved *sv)
{
	struct blobdb *db;
	struct store *s = new_store(dir, opts, "z", &db);
	size_t blobs_before, blobs_after, tombstones;
	uint64_t raw_total = 0, stored_total = 0;

	for (size_t i = 0; i < CASES; i++) {
		struct saved *b = &sv[i];
		struct record_info rec;
		uint8_t h[HS];
		b->len = cases[i].len;
		b->data = make_blob(b->len, cases[i].pattern);
		sha(b->data, b->len, b->hash);
		CHECK_EQ(cases[i].via_writer ? save_via_writer(s, b->data, b->len, h) :
					       blob_save(s, b->data, b->len, h),
			 0);
		CHECK_MEM(h, b->hash, HS);
		b->present = true;
		b->version = record_version(dir, "z", b->hash, &rec);
		if (!CHECK_EQ(b->version, cases[i].version))
			fprintf(stderr, "  case %zu: %zu bytes \"%s\"%s\n", i, b->len, cases[i].pattern,
				cases[i].via_writer ? " through a writer" : "");
		CHECK_EQ(rec.length, b->len);
		if (b->version == 3) {
			/* Smaller than a raw record would be. */
			CHECK(record_end(&rec) - rec.offset < record_size(rec.length, CHUNK_SHIFT_DEFAULT));
			raw_total += rec.length;
			stored_total += rec.stored;
		}
	}
	/* Text compresses 2.5 to 1, zeros far more (some chunks are random). */
	if (!CHECK(stored_total * 4 < raw_total * 3))
		fprintf(stderr, "  %" PRIu64 " bytes stored for %" PRIu64 "\n", stored_total, raw_total);
	CHECK_EQ(store_sync(s), 0);
	for (size_t i = 0; i < CASES; i++) {
		struct blob_stat st;
		CHECK(blob_is(s, sv[i].data, sv[i].len));
		CHECK(reads_at_random(s, sv[i].data, sv[i].len));
		CHECK_EQ(blob_stat(s, sv[i].hash, &st), 0);
		CHECK_EQ(st.length, sv[i].len);
	}
	/* The same content again: nothing new is written. */
	count_records(dir, "z", &blobs_before, &tombstones);
	for (size_t i = 0; i < CASES; i++) {
		uint8_t h[HS];
		CHECK_EQ(blob_save(s, sv[i].data, sv[i].len, h), -EEXIST);
		CHECK_EQ(save_via_writer(s, sv[i].data, sv[i].len, h), -EEXIST);
	}
	count_records(dir, "z", &blobs_after, &tombstones);
	CHECK_EQ(blobs_after, blobs_before);
	CHECK_EQ(blobs_after, CASES);
	CHECK(verify_packs(dir, "z"));
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	{
		unsigned long long bytes = 0;
		for (size_t i = 0; i < CASES; i++)
			bytes += sv[i].len;
		fsck_clean(dir, CASES, bytes);
	}
}

/* After a compressed commit the writer is written again and committed:
 * both blobs are there. (A large blob's content then comes back from the
 * raw staging file the writer kept, not from its compressed pack.) */
static void test_writer_again(const char *dir, const struct blobdb_options *opts)
{
	struct blobdb *db;
	struct store *s = new_store(dir, opts, "w", &db);
	size_t len = 6 * CHUNK + 999;
	uint8_t *data = make_blob(len + 100, "tz"), h1[HS], h2[HS], *back = tu_xmalloc(len);
	struct blob_writer *w;
	struct record_info rec;
	size_t got = 0;

	REQUIRE(blob_writer_new(s, &w) == 0);
	CHECK_EQ(blob_writer_write(w, data, len, 0), 0);
	CHECK_EQ(blob_writer_commit(w, h1), 0);
	CHECK_EQ(record_version(dir, "w", h1, &rec), 3);
	CHECK_EQ(blob_writer_read(w, back, len, 0, &got), 0);
	CHECK_EQ(got, len);
	CHECK_MEM(back, data, len);
	CHECK_EQ(blob_writer_write(w, data + len, 100, len), 0);
	CHECK_EQ(blob_writer_commit(w, h2), 0);
	blob_writer_free(w);
	CHECK_EQ(record_version(dir, "w", h2, &rec), 3);
	CHECK(blob_is(s, data, len));
	CHECK(blob_is(s, data, len + 100));
	/* A deleted blob that had a pack of its own (a large one): the pack
	 * goes at once. */
	{
		char path[PATH_MAX];
		uint32_t pack;
		REQUIRE(find_record(dir, "w", h1, &pack, &rec));
		path_of_pack(dir, "w", pack, path);
		CHECK_EQ(blob_delete(s, h1), 0);
		CHECK(blob_absent(s, h1));
		CHECK(blob_is(s, data, len + 100));
		if (len >= opts->large_blob_min)
			CHECK(!tu_exists(path));
	}
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	free(data);
	free(back);
}

struct index_check {
	const char *dir;
	size_t entries, compressed;
	bool ok;
};

/* A checkpoint entry against its record: same place, disk size kept for a
 * REC3 only, rounded as an index slot keeps it. */
static int check_entry(const struct index_entry *e, void *arg)
{
	struct index_check *c = arg;
	struct record_info rec;
	uint32_t pack;

	c->entries++;
	if (!CHECK(find_record(c->dir, "z", e->hash, &pack, &rec))) {
		c->ok = false;
		return 0;
	}
	c->ok &= CHECK_EQ(e->pack_id, pack);
	c->ok &= CHECK_EQ(e->offset, rec.offset);
	c->ok &= CHECK_EQ(e->length, rec.length);
	c->ok &= CHECK_EQ(e->disk, rec.version == 3 ? index_disk_round(record_end(&rec) - rec.offset) : 0);
	c->compressed += rec.version == 3;
	return 0;
}

/* The store's listing, statistics and saved times. */
struct snapshot {
	struct hashlist list;
	struct store_stats stats;
	int64_t saved[CASES];
};

static void take_snapshot(struct store *s, const struct saved *sv, struct snapshot *snap)
{
	memset(snap, 0, sizeof(*snap));
	CHECK_EQ(blob_list(s, NULL, collect_hash, &snap->list), 0);
	CHECK_EQ(store_stats(s, &snap->stats), 0);
	for (size_t i = 0; i < CASES; i++) {
		struct blob_stat st = { 0 };
		if (sv[i].present && CHECK_EQ(blob_stat(s, sv[i].hash, &st), 0))
			snap->saved[i] = st.saved;
	}
}

static bool same_snapshot(const struct snapshot *a, const struct snapshot *b)
{
	bool ok = CHECK_EQ(a->list.n, b->list.n);

	if (ok) {
		ok &= CHECK_MEM(a->list.h, b->list.h, a->list.n * HS);
		ok &= CHECK_MEM(a->list.len, b->list.len, a->list.n * sizeof(*a->list.len));
	}
	ok &= CHECK_EQ(a->stats.blobs, b->stats.blobs);
	ok &= CHECK_EQ(a->stats.bytes, b->stats.bytes);
	ok &= CHECK_EQ(a->stats.packs, b->stats.packs);
	ok &= CHECK_EQ(a->stats.dead_bytes, b->stats.dead_bytes);
	ok &= CHECK_MEM(a->saved, b->saved, sizeof(a->saved));
	return ok;
}

struct open_args {
	const char *dir;
	struct blobdb *db;
};

static void open_zstd(void *arg)
{
	struct open_args *o = arg;
	struct blobdb_options opts = opts_zstd();

	o->db = db_open(o->dir, &opts);
}

/* Opens dir (compression on), capturing what it logs: the checkpoint was
 * used (or, with want_scan, not there to use). */
static struct blobdb *reopen(const char *dir, bool want_scan)
{
	struct open_args o = { .dir = dir };
	char *text;

	log_set_level(LOG_LEVEL_INFO);
	text = tu_capture_stderr(open_zstd, &o);
	log_set_level(LOG_LEVEL_WARNING);
	CHECK(!strstr(text, "unusable"));
	if (!want_scan)
		CHECK(!strstr(text, "out of date"));
	if (strstr(text, "unusable") || (!want_scan && strstr(text, "out of date")))
		fprintf(stderr, "%s", text);
	free(text);
	return o.db;
}

static void test_compressed_saves(const char *base, const struct blobdb_options *opts)
{
	char dir[PATH_MAX], ckpt[PATH_MAX], label[128];
	struct saved sv[CASES];
	struct snapshot first, again;
	struct blobdb *db;
	struct store *s;
	bool small = opts->large_blob_min != LARGE_BLOB_MIN_DEFAULT;

	snprintf(label, sizeof(label), "compress=zstd saves (%s)",
		 small ? "large blobs from 128 KiB, packs of 512 KiB" : "default sizes");
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-saves-%d", base, small);
	tu_path(ckpt, sizeof(ckpt), "%s/stores/z/checkpoint", dir);
	memset(sv, 0, sizeof(sv));
	save_cases(dir, opts, sv);

	TU_TEST("a writer committed again after a compressed commit");
	tu_path(dir, sizeof(dir), "%s/db-writer-%d", base, small);
	test_writer_again(dir, opts);
	tu_path(dir, sizeof(dir), "%s/db-saves-%d", base, small);

	TU_TEST("the checkpoint keeps each REC3's disk size");
	{
		struct checkpoint_header h;
		struct checkpoint_pack *packs = NULL;
		struct index *index;
		struct index_check c = { .dir = dir, .ok = true };
		char store_dir[PATH_MAX];
		int fd;
		size_t want_compressed = 0;
		tu_path(store_dir, sizeof(store_dir), "%s/stores/z", dir);
		fd = open(store_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		REQUIRE(fd >= 0 && index_new(&index) == 0);
		CHECK_EQ(checkpoint_read(io_system(), fd, "checkpoint", &h, &packs, index), 0);
		CHECK_EQ(h.version, 3);
		CHECK_EQ(index_foreach(index, check_entry, &c), 0);
		for (size_t i = 0; i < CASES; i++)
			want_compressed += sv[i].version == 3;
		CHECK(c.ok);
		CHECK_EQ(c.entries, CASES);
		CHECK_EQ(c.compressed, want_compressed);
		free(packs);
		index_free(index);
		close(fd);
	}

	TU_TEST("a reopen through the checkpoint and one through a scan agree");
	db = reopen(dir, false);
	s = st_open(db, "z");
	for (size_t i = 0; i < CASES; i++)
		CHECK(blob_is(s, sv[i].data, sv[i].len));
	/* Deletes of a compressed and a raw small blob, and of a compressed
	 * large one (its pack goes): dead bytes to count. */
	CHECK_EQ(blob_delete(s, sv[0].hash), 0);
	CHECK_EQ(blob_delete(s, sv[1].hash), 0);
	CHECK_EQ(blob_delete(s, sv[8].hash), 0);
	sv[0].present = sv[1].present = sv[8].present = false;
	take_snapshot(s, sv, &first);
	CHECK(first.stats.dead_bytes > 0);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	db = reopen(dir, false);
	s = st_open(db, "z");
	take_snapshot(s, sv, &again);
	CHECK(same_snapshot(&first, &again));
	hashlist_free(&again.list);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	REQUIRE(unlink(ckpt) == 0);
	db = reopen(dir, true);
	s = st_open(db, "z");
	take_snapshot(s, sv, &again);
	CHECK(same_snapshot(&first, &again));
	hashlist_free(&again.list);
	for (size_t i = 0; i < CASES; i++) {
		if (sv[i].present)
			CHECK(reads_at_random(s, sv[i].data, sv[i].len));
		else
			CHECK(blob_absent(s, sv[i].hash));
	}
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	hashlist_free(&first.list);
	CHECK(verify_packs(dir, "z"));
	for (size_t i = 0; i < CASES; i++)
		free(sv[i].data);
}

/* Small compressed blobs (each record under 4096 bytes: an index slot keeps
 * its size exactly) fill a pack; all but three are deleted. The dead bytes
 * are exactly the deleted records' sizes, through the checkpoint and
 * through a scan, and compaction gives exactly them back. */
static void test_compaction_accounting(const char *base)
{
	enum { MAX = 64 };
	struct blobdb_options opts = opts_zstd();
	uint8_t *data[MAX], hashes[MAX][HS];
	uint64_t expect_dead = 0, raw_dead = 0;
	char dir[PATH_MAX], ckpt[PATH_MAX];
	struct store_stats st;
	struct record_info rec;
	struct blobdb *db;
	struct store *s;
	uint32_t pack0 = 0, pack;
	size_t n = 0, in_first = 0;
	long long before, after;

	TU_TEST("dead bytes of compressed records, and compaction");
	opts.pack_size_max = 64 << 10;
	opts.compact_percent = 100; /* no background compaction */
	tu_path(dir, sizeof(dir), "%s/db-compact", base);
	tu_path(ckpt, sizeof(ckpt), "%s/stores/z/checkpoint", dir);
	s = new_store(dir, &opts, "z", &db);
	/* Saves until one lands in a second pack. */
	for (n = 0; n < MAX; n++) {
		data[n] = make_blob(6000, "t");
		CHECK_EQ(blob_save(s, data[n], 6000, hashes[n]), 0);
		REQUIRE(find_record(dir, "z", hashes[n], &pack, &rec));
		REQUIRE(rec.version == 3 && record_end(&rec) - rec.offset < 4096);
		if (n == 0)
			pack0 = pack;
		if (pack != pack0) {
			n++;
			break;
		}
		in_first++;
	}
	REQUIRE(in_first >= 10 && in_first < n);
	CHECK_EQ(store_stats(s, &st), 0);
	CHECK_EQ(st.dead_bytes, 0);
	for (size_t i = 3; i < in_first; i++) {
		REQUIRE(find_record(dir, "z", hashes[i], &pack, &rec) && pack == pack0);
		expect_dead += record_end(&rec) - rec.offset;
		raw_dead += record_size(6000, CHUNK_SHIFT_DEFAULT);
		CHECK_EQ(blob_delete(s, hashes[i]), 0);
	}
	CHECK_EQ(store_stats(s, &st), 0);
	CHECK_EQ(st.dead_bytes, expect_dead);
	CHECK(expect_dead * 2 < raw_dead);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	/* Through the checkpoint, then through a scan. */
	for (int pass = 0; pass < 2; pass++) {
		if (pass == 1)
			REQUIRE(unlink(ckpt) == 0);
		db = reopen(dir, pass == 1);
		s = st_open(db, "z");
		CHECK_EQ(store_stats(s, &st), 0);
		if (!CHECK_EQ(st.dead_bytes, expect_dead))
			fprintf(stderr, "  reopened %s\n", pass ? "by a scan" : "through the checkpoint");
		store_close(s);
		CHECK_EQ(blobdb_close(db), 0);
	}
	db = db_open(dir, &opts);
	s = st_open(db, "z");
	CHECK_EQ(store_sync(s), 0);
	before = packs_bytes(dir, "z");
	CHECK_EQ(store_compact(s, 1), 0);
	after = packs_bytes(dir, "z");
	CHECK_EQ((uint64_t)(before - after), expect_dead);
	CHECK_EQ(store_stats(s, &st), 0);
	CHECK_EQ(st.dead_bytes, 0);
	CHECK_EQ(staging_files(dir, "z"), 0);
	for (size_t i = 0; i < n; i++) {
		if (i < 3 || i >= in_first) {
			CHECK(blob_is(s, data[i], 6000));
			CHECK_EQ(record_version(dir, "z", hashes[i], &rec), 3);
		} else {
			CHECK(blob_absent(s, hashes[i]));
		}
	}
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	CHECK(verify_packs(dir, "z"));
	/* Offline, tombstones go too; the compressed records stay such. */
	db = db_open(dir, &opts);
	CHECK_EQ(blobdb_compact(db, NULL), 0);
	CHECK_EQ(blobdb_close(db), 0);
	{
		size_t blobs, tombstones;
		count_records(dir, "z", &blobs, &tombstones);
		CHECK_EQ(blobs, 3 + n - in_first);
		CHECK_EQ(tombstones, 0);
	}
	fsck_clean(dir, 3 + n - in_first, (3 + n - in_first) * 6000);
	for (size_t i = 0; i < n; i++)
		free(data[i]);
}

/* The versions of the records a pack holds, as a bit set (1 << version). */
struct versions_seen {
	unsigned any_pack_with_both;
	uint32_t pack;
	unsigned mask;
};

static void versions_visit(const struct pack_event *ev, void *arg)
{
	struct versions_seen *v = arg;

	if (ev->kind == PACK_OPEN) {
		v->pack = ev->pack_id;
		v->mask = 0;
	}
	if (ev->kind == PACK_RECORD && ev->rec->kind == RECORD_BLOB) {
		v->mask |= 1u << ev->rec->version;
		if (v->mask == (1u << 2 | 1u << 3))
			v->any_pack_with_both++;
	}
}

/* Saves n new blobs of each kind of content (small text, small random, a
 * large text one through a writer) into sv[at ..]; returns the new at. */
static size_t save_some(struct store *s, struct saved *sv, size_t at, unsigned version_of_text)
{
	static const struct {
		size_t len;
		const char *pattern;
	} kinds[] = { { 5000, "t" }, { 5000, "r" }, { 100000, "tz" }, { (1 << 20) + 3, "t" } };

	for (size_t k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++, at++) {
		uint8_t h[HS];
		sv[at].len = kinds[k].len;
		sv[at].data = make_blob(kinds[k].len, kinds[k].pattern);
		sha(sv[at].data, sv[at].len, sv[at].hash);
		CHECK_EQ(k == 3 ? save_via_writer(s, sv[at].data, sv[at].len, h) :
				  blob_save(s, sv[at].data, sv[at].len, h),
			 0);
		sv[at].present = true;
		sv[at].version = kinds[k].pattern[0] == 't' ? version_of_text : 2;
	}
	return at;
}

static void check_all(const char *dir, struct store *s, const struct saved *sv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct record_info rec;
		CHECK(blob_is(s, sv[i].data, sv[i].len));
		if (!CHECK_EQ(record_version(dir, "m", sv[i].hash, &rec), sv[i].version))
			fprintf(stderr, "  blob %zu (%zu bytes)\n", i, sv[i].len);
	}
}

static void test_mixed_directory(const char *base)
{
	struct blobdb_options plain = opts_default(), zstd = opts_zstd();
	struct saved sv[12];
	struct versions_seen seen = { 0 };
	char dir[PATH_MAX], ckpt[PATH_MAX];
	struct blobdb *db;
	struct store *s;
	size_t n = 0;
	unsigned long long bytes = 0;

	TU_TEST("written without compression, reopened with it, and the reverse");
	memset(sv, 0, sizeof(sv));
	tu_path(dir, sizeof(dir), "%s/db-mixed", base);
	tu_path(ckpt, sizeof(ckpt), "%s/stores/m/checkpoint", dir);
	s = new_store(dir, &plain, "m", &db);
	n = save_some(s, sv, n, 2);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);

	db = db_open(dir, &zstd);
	s = st_open(db, "m");
	check_all(dir, s, sv, n);
	n = save_some(s, sv, n, 3);
	CHECK_EQ(store_sync(s), 0);
	check_all(dir, s, sv, n);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	/* The small ones went into the pack of the first ones. */
	scan_packs(dir, "m", UINT32_MAX, versions_visit, &seen);
	CHECK(seen.any_pack_with_both > 0);

	db = db_open(dir, &plain);
	s = st_open(db, "m");
	check_all(dir, s, sv, n);
	n = save_some(s, sv, n, 2);
	check_all(dir, s, sv, n);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	CHECK(verify_packs(dir, "m"));
	for (size_t i = 0; i < n; i++)
		bytes += sv[i].len;
	fsck_clean(dir, n, bytes);

	/* By a scan, each way. */
	REQUIRE(unlink(ckpt) == 0);
	db = db_open(dir, &zstd);
	s = st_open(db, "m");
	check_all(dir, s, sv, n);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	REQUIRE(unlink(ckpt) == 0);
	db = db_open(dir, &plain);
	s = st_open(db, "m");
	check_all(dir, s, sv, n);
	for (size_t i = 0; i < n; i++)
		CHECK(reads_at_random(s, sv[i].data, sv[i].len));
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	for (size_t i = 0; i < n; i++)
		free(sv[i].data);
}

static void test_saves_default(const char *base)
{
	struct blobdb_options o = opts_zstd();

	test_compressed_saves(base, &o);
}

static void test_saves_small(const char *base)
{
	struct blobdb_options o = opts_zstd_small();

	test_compressed_saves(base, &o);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_saves_default },
		{ .once = test_saves_small },
		{ .once = test_compaction_accounting },
		{ .once = test_mixed_directory },
	};

	(void)argc;
	log_set_level(LOG_LEVEL_WARNING);
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
