/*
 * test_store_stats.c - store_stats on the local engine: blobs and bytes
 * after saves (small and large, duplicates) and deletes; packs as the pack
 * files on disk; dead bytes as what deletes left in the packs, back to 0
 * after compaction (online and offline) and the same after a reopen;
 * -ENOENT for a destroyed store; statfs counting the blobs as files.
 * The memory backend's figures are in the contract suite (tests/contract).
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include <sys/statvfs.h>

#include "storeutil.h"

static struct store_stats stats_of(struct store *s)
{
	struct store_stats st;

	CHECK_EQ(store_stats(s, &st), 0);
	return st;
}

/* The figures agree with the store (count, listing) and the disk (packs). */
static void check_consistent(const char *dir, struct store *s, uint64_t blobs, uint64_t bytes)
{
	struct store_stats st = stats_of(s);
	size_t staging;
	uint32_t max_id;

	CHECK_EQ(st.blobs, blobs);
	CHECK_EQ(st.blobs, blob_count(s));
	CHECK_EQ(st.bytes, bytes);
	CHECK_EQ(st.packs, packs_in_store(dir, store_name(s), &max_id, &staging));
	CHECK(st.dead_bytes <= (uint64_t)packs_bytes(dir, store_name(s)));
}

static void test_stats(const char *base, const struct blobdb_options *given)
{
	enum { N = 40 };
	struct blobdb_options opts = *given;
	char dir[PATH_MAX], label[128];
	struct blobdb *db;
	struct store *s;
	uint8_t *data[N], hashes[N][HS], hash[HS];
	size_t sizes[N];
	uint64_t bytes = 0, live = 0;
	struct store_stats st;

	snprintf(label, sizeof(label), "store_stats after saves, deletes, compaction (%s)",
		 opts_label(&opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-stats-%s", base,
		opts.large_blob_min == LARGE_BLOB_MIN_DEFAULT ? "default" : "small");
	opts.compact_percent = 1;
	s = new_store(dir, &opts, "s", &db);

	st = stats_of(s);
	CHECK_EQ(st.blobs, 0);
	CHECK_EQ(st.bytes, 0);
	CHECK_EQ(st.dead_bytes, 0);

	for (size_t i = 0; i < N; i++) {
		sizes[i] = i == 0 ? 0 : i % 7 == 0 ? 20000 + i : 100 + 37 * i;
		data[i] = make_content(sizes[i]);
		CHECK_EQ(blob_save(s, data[i], sizes[i], hashes[i]), 0);
		bytes += sizes[i];
	}
	/* A duplicate adds nothing. */
	CHECK_EQ(blob_save(s, data[3], sizes[3], hash), -EEXIST);
	check_consistent(dir, s, N, bytes);
	CHECK_EQ(stats_of(s).dead_bytes, 0);

	/* Deletes: fewer blobs and bytes, dead bytes appear. */
	live = N;
	for (size_t i = 1; i < N; i += 2) {
		CHECK_EQ(blob_delete(s, hashes[i]), 0);
		bytes -= sizes[i];
		live--;
	}
	check_consistent(dir, s, live, bytes);
	CHECK(stats_of(s).dead_bytes > 0);

	/* Saved again after its delete: counted once more. */
	CHECK_EQ(blob_save(s, data[1], sizes[1], hash), 0);
	bytes += sizes[1];
	live++;
	check_consistent(dir, s, live, bytes);

	/* Compaction gives the dead bytes back (all but what the active pack,
	 * which compaction leaves alone, holds). */
	CHECK_EQ(store_sync(s), 0);
	CHECK_EQ(store_compact(s, 1), 0);
	check_consistent(dir, s, live, bytes);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);

	/* Offline compaction and a reopen: no dead bytes left, same figures. */
	db = db_open(dir, &opts);
	CHECK_EQ(blobdb_compact(db, NULL), 0);
	s = st_open(db, "s");
	check_consistent(dir, s, live, bytes);
	CHECK_EQ(stats_of(s).dead_bytes, 0);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	db = db_open(dir, &opts);
	s = st_open(db, "s");
	check_consistent(dir, s, live, bytes);
	CHECK_EQ(stats_of(s).dead_bytes, 0);

	/* A destroyed store has no figures. */
	CHECK_EQ(store_destroy(db, "s", false), 0);
	CHECK_EQ(store_stats(s, &st), -ENOENT);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	for (size_t i = 0; i < N; i++)
		free(data[i]);
}

/* statfs: the blobs of every store are the file system's used files. */
static void test_statfs(const char *base)
{
	char dir[PATH_MAX];
	struct blobdb *db;
	struct store *a, *b;
	struct statvfs st;
	uint8_t hash[HS];
	char content[32];

	TU_TEST("statfs counts the blobs of every store as files");
	tu_path(dir, sizeof(dir), "%s/db-statfs", base);
	a = new_store(dir, NULL, "a", &db);
	CHECK_EQ(store_create(db, "b"), 0);
	b = st_open(db, "b");
	CHECK_EQ(blobdb_statfs(db, &st), 0);
	CHECK_EQ(st.f_files - st.f_ffree, 0);
	for (int i = 0; i < 5; i++) {
		snprintf(content, sizeof(content), "blob %d", i);
		CHECK_EQ(blob_save(i < 3 ? a : b, content, strlen(content), hash), 0);
	}
	CHECK_EQ(blobdb_statfs(db, &st), 0);
	CHECK_EQ(st.f_files - st.f_ffree, 5);
	CHECK_EQ(st.f_favail, st.f_ffree);
	CHECK(st.f_blocks > 0 && st.f_frsize > 0);
	/* At most one blob per smallest record in the free space. */
	CHECK(st.f_ffree <= (uint64_t)st.f_bavail * st.f_frsize / record_size(1, CHUNK_SHIFT_DEFAULT));
	CHECK_EQ(blob_delete(a, hash) == 0 || blob_delete(b, hash) == 0, true);
	CHECK_EQ(blobdb_statfs(db, &st), 0);
	CHECK_EQ(st.f_files - st.f_ffree, 4);
	store_close(a);
	store_close(b);
	CHECK_EQ(blobdb_close(db), 0);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .both = test_stats },
		{ .once = test_statfs },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
