/*
 * test_store_blobs.c - blobs through the store API: save / info / read (at
 * any offset) / list (hash order, resumable, stoppable) / delete, over sizes
 * from empty to several MiB and after reopen; readers opened before a delete
 * still read the whole blob; a pack holding tombstones outlives the deletes
 * of its own blobs. Each runs with the default options and with small packs
 * (blobs with packs of their own) where it did before.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include "storeutil.h"

/* ---- blobs ---- */

static void test_blob_basics(const char *base, const struct blobdb_options *opts)
{
	static const size_t sizes[] = { 0, 1, 2, 100, 4095, 4096, 4097, 65535, 65536, 65537,
					300 * 1024, (1u << 20) - 1, 1u << 20, (1u << 20) + 1,
					(3u << 20) + 5 };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	char dir[PATH_MAX];
	struct blobdb *db;
	struct store *s;
	uint8_t *data[N], hashes[N][HS], hash[HS], sorted[N][HS];
	struct hashlist l = { 0 };
	char label[128];

	snprintf(label, sizeof(label), "blob save / info / read / list / delete (%s)",
		 opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-basics-%" PRIu64, base, opts->large_blob_min);
	s = new_store(dir, opts, "b", &db);
	for (size_t i = 0; i < N; i++) {
		data[i] = make_content(sizes[i]);
		sha(data[i], sizes[i], hashes[i]);
		memset(hash, 0, HS);
		if (!CHECK_EQ(blob_save(s, data[i], sizes[i], hash), 0))
			fprintf(stderr, "  size %zu\n", sizes[i]);
		CHECK_MEM(hash, hashes[i], HS);
		CHECK_EQ(blob_count(s), i + 1);
	}
	/* The empty blob is named by the empty string's SHA-256. */
	{
		uint8_t empty[HS];
		REQUIRE(hash_from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
				      HASH_HEX_SIZE, empty));
		CHECK_MEM(hashes[0], empty, HS);
	}
	/* Saving again: -EEXIST, hash still filled in. */
	for (size_t i = 0; i < N; i++) {
		memset(hash, 0, HS);
		CHECK_EQ(blob_save(s, data[i], sizes[i], hash), -EEXIST);
		CHECK_MEM(hash, hashes[i], HS);
	}
	CHECK_EQ(blob_count(s), N);
	for (size_t i = 0; i < N; i++)
		CHECK(blob_is(s, data[i], sizes[i]));

	/* Reads at arbitrary offsets. */
	for (size_t i = 0; i < N; i++) {
		struct blob_reader *r;
		if (!CHECK_EQ(blob_open(s, hashes[i], &r), 0))
			continue;
		CHECK_EQ(blob_reader_length(r), sizes[i]);
		for (int k = 0; k < 20; k++) {
			uint64_t off = tu_rand_below(sizes[i] + 10);
			size_t want = (size_t)tu_rand_below(100000), got = 999999;
			size_t expect = off >= sizes[i] ? 0 : sizes[i] - off < want ? sizes[i] - off : want;
			uint8_t *buf = tu_xmalloc(want);
			CHECK_EQ(blob_read(r, buf, want, off, &got), 0);
			if (CHECK_EQ(got, expect))
				CHECK_MEM(buf, data[i] + off, got);
			free(buf);
		}
		blob_close(r);
	}

	/* Listing: hash order, resumable, stoppable. */
	memcpy(sorted, hashes, sizeof(sorted));
	qsort(sorted, N, HS, cmp_hash);
	CHECK_EQ(blob_list(s, NULL, collect_hash, &l), 0);
	if (CHECK_EQ(l.n, N)) {
		CHECK_MEM(l.h, sorted, sizeof(sorted));
		for (size_t i = 0; i < N; i++) {
			uint64_t len;
			CHECK_EQ(blob_info(s, l.h[i], &len), 0);
			CHECK_EQ(l.len[i], len);
		}
	}
	hashlist_free(&l);
	for (size_t k = 0; k < N; k++) {
		CHECK_EQ(blob_list(s, sorted[k], collect_hash, &l), 0);
		if (CHECK_EQ(l.n, N - k - 1))
			CHECK_MEM(l.h, sorted[k + 1], l.n * HS);
		hashlist_free(&l);
		/* After a hash just below / above a listed one (absent). */
		memcpy(hash, sorted[k], HS);
		if (hash[HS - 1] > 0) {
			hash[HS - 1]--;
			CHECK_EQ(blob_list(s, hash, collect_hash, &l), 0);
			if (CHECK_EQ(l.n, N - k))
				CHECK_MEM(l.h, sorted[k], l.n * HS);
			hashlist_free(&l);
			hash[HS - 1]++;
		}
		if (hash[HS - 1] < 0xff) {
			hash[HS - 1]++;
			CHECK_EQ(blob_list(s, hash, collect_hash, &l), 0);
			CHECK_EQ(l.n, N - k - 1);
			hashlist_free(&l);
		}
	}
	memset(hash, 0xff, HS);
	CHECK_EQ(blob_list(s, hash, collect_hash, &l), 0);
	CHECK_EQ(l.n, 0);
	hashlist_free(&l);
	memset(hash, 0, HS);
	CHECK_EQ(blob_list(s, hash, collect_hash, &l), 0);
	CHECK_EQ(l.n, N);
	hashlist_free(&l);
	l.stop_after = 4;
	CHECK_EQ(blob_list(s, NULL, collect_hash, &l), 77);
	CHECK_EQ(l.n, 4);
	hashlist_free(&l);

	/* Absent hashes. */
	tu_fill_random(hash, HS);
	CHECK(blob_absent(s, hash));
	CHECK_EQ(blob_delete(s, hash), -ENOENT);

	/* Delete every other blob. */
	for (size_t i = 0; i < N; i += 2) {
		CHECK_EQ(blob_delete(s, hashes[i]), 0);
		CHECK_EQ(blob_delete(s, hashes[i]), -ENOENT);
		CHECK(blob_absent(s, hashes[i]));
	}
	CHECK_EQ(blob_count(s), N / 2);
	CHECK_EQ(blob_list(s, NULL, collect_hash, &l), 0);
	CHECK_EQ(l.n, N / 2);
	for (size_t i = 0; i < l.n; i++) {
		size_t j = 0;
		while (j < N && memcmp(hashes[j], l.h[i], HS))
			j++;
		CHECK(j < N && j % 2 == 1);
		if (i > 0)
			CHECK(memcmp(l.h[i - 1], l.h[i], HS) < 0);
	}
	hashlist_free(&l);
	for (size_t i = 1; i < N; i += 2)
		CHECK(blob_is(s, data[i], sizes[i]));
	/* Deleted blobs can be saved again (as new). */
	for (size_t i = 0; i < N; i += 4) {
		CHECK_EQ(blob_save(s, data[i], sizes[i], hash), 0);
		CHECK(blob_is(s, data[i], sizes[i]));
	}
	store_close(s);
	blobdb_close(db);

	/* The same after reopening. */
	db = db_open(dir, opts);
	s = st_open(db, "b");
	for (size_t i = 0; i < N; i++) {
		if (i % 2 == 1 || i % 4 == 0)
			CHECK(blob_is(s, data[i], sizes[i]));
		else
			CHECK(blob_absent(s, hashes[i]));
	}
	store_close(s);
	blobdb_close(db);
	CHECK(verify_packs(dir, "b"));
	for (size_t i = 0; i < N; i++)
		free(data[i]);
}

/* A reader opened before a delete reads the whole blob afterwards, whether
 * the blob shares a pack or has one of its own (which a delete may unlink). */
static void test_reader_after_delete(const char *base, const struct blobdb_options *opts)
{
	enum { N = 40 };
	char dir[PATH_MAX], label[128];
	struct blobdb *db;
	struct store *s;
	uint8_t *data[N], hashes[N][HS];
	size_t sizes[N];
	struct blob_reader *readers[N];

	snprintf(label, sizeof(label), "readers outlive deletes (%s)", opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-readers-%" PRIu64, base, opts->large_blob_min);
	s = new_store(dir, opts, "r", &db);
	for (size_t i = 0; i < N; i++) {
		sizes[i] = i % 7 == 0 ? 100000 + (size_t)tu_rand_below(100000) :
			   i == 5	? (1u << 20) + 3 :
					  (size_t)tu_rand_below(6000);
		data[i] = make_content(sizes[i]);
		CHECK_EQ(blob_save(s, data[i], sizes[i], hashes[i]), 0);
	}
	for (size_t i = 0; i < N; i++)
		CHECK_EQ(blob_open(s, hashes[i], &readers[i]), 0);
	/* Delete everything: packs whose blobs are all gone may be removed. */
	for (size_t i = 0; i < N; i++)
		CHECK_EQ(blob_delete(s, hashes[i]), 0);
	CHECK_EQ(blob_count(s), 0);
	for (size_t i = 0; i < N; i++) {
		uint8_t *buf;
		size_t got = 0;
		if (!readers[i])
			continue;
		buf = tu_xmalloc(sizes[i] + 1);
		CHECK_EQ(blob_reader_length(readers[i]), sizes[i]);
		CHECK_EQ(blob_read(readers[i], buf, sizes[i] + 1, 0, &got), 0);
		if (CHECK_EQ(got, sizes[i]))
			CHECK_MEM(buf, data[i], sizes[i]);
		free(buf);
	}
	/* Save some again while the old readers are still open. */
	for (size_t i = 0; i < N; i += 3) {
		uint8_t hash[HS];
		CHECK_EQ(blob_save(s, data[i], sizes[i], hash), 0);
	}
	for (size_t i = 0; i < N; i++)
		blob_close(readers[i]);
	for (size_t i = 0; i < N; i++) {
		if (i % 3 == 0)
			CHECK(blob_is(s, data[i], sizes[i]));
		else
			CHECK(blob_absent(s, hashes[i]));
	}
	store_close(s);
	blobdb_close(db);
	db = db_open(dir, opts);
	s = st_open(db, "r");
	CHECK_EQ(blob_count(s), (N + 2) / 3);
	for (size_t i = 0; i < N; i++) {
		if (i % 3 == 0)
			CHECK(blob_is(s, data[i], sizes[i]));
		else
			CHECK(blob_absent(s, hashes[i]));
		free(data[i]);
	}
	store_close(s);
	blobdb_close(db);
}

/* A pack that holds tombstones must outlive the deletes of its own blobs:
 * its tombstones still hide blobs whose records are in other packs. */
static void test_tombstone_packs(const char *base)
{
	enum { A = 24, B = 60 };
	char dir[PATH_MAX];
	struct blobdb_options opts = opts_small();
	struct blobdb *db;
	struct store *s;
	uint8_t *a[A], *b[B], ha[A][HS], hb[B][HS];
	uint32_t newest;

	TU_TEST("tombstones outlive the blobs of their pack");
	tu_path(dir, sizeof(dir), "%s/db-tombstones", base);
	s = new_store(dir, &opts, "t", &db);
	/* a: fill pack 0 and start pack 1. */
	for (int i = 0; i < A; i++) {
		a[i] = make_content(3000);
		CHECK_EQ(blob_save(s, a[i], 3000, ha[i]), 0);
	}
	CHECK(packs_in_store(dir, "t", &newest, NULL) >= 2);
	/* Delete the first few a's: their tombstones go to the newer pack... */
	for (int i = 0; i < 4; i++)
		CHECK_EQ(blob_delete(s, ha[i]), 0);
	/* ...which then fills with b's, and more packs follow. */
	for (int i = 0; i < B; i++) {
		b[i] = make_content(3000);
		CHECK_EQ(blob_save(s, b[i], 3000, hb[i]), 0);
	}
	/* Every b goes: packs holding only b's and tombstones lose all their
	 * live blobs. */
	for (int i = 0; i < B; i++)
		CHECK_EQ(blob_delete(s, hb[i]), 0);
	for (int i = 0; i < A; i++) {
		if (i < 4)
			CHECK(blob_absent(s, ha[i]));
		else
			CHECK(blob_is(s, a[i], 3000));
	}
	store_close(s);
	blobdb_close(db);
	CHECK(verify_packs(dir, "t"));
	db = db_open(dir, &opts);
	s = st_open(db, "t");
	for (int i = 0; i < A; i++) {
		if (i < 4)
			CHECK(blob_absent(s, ha[i]));
		else
			CHECK(blob_is(s, a[i], 3000));
	}
	for (int i = 0; i < B; i++)
		CHECK(blob_absent(s, hb[i]));
	CHECK_EQ(blob_count(s), A - 4);
	store_close(s);
	blobdb_close(db);
	for (int i = 0; i < A; i++)
		free(a[i]);
	for (int i = 0; i < B; i++)
		free(b[i]);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .both = test_blob_basics },
		{ .both = test_reader_after_delete },
		{ .once = test_tombstone_packs },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
