/*
 * test_store_compaction.c - compaction: online compaction of one pack laid
 * out with live and dead blobs in several orders, online and offline
 * (blobdb_compact) compaction against a model with readers open across it,
 * and an online compaction racing with the delete of its pack's last live
 * blob (through the io table, in a child process).
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include "storeutil.h"

/* One pack of a store, with live blobs and dead ones in a chosen order,
 * compacted online: the live blobs stay readable (now and after reopen),
 * the dead bytes go, nothing is left behind. */
static void test_compaction_layouts(const char *base)
{
	/* Per layout, the fill of the first pack: L live, D dead. */
	static const char *const layouts[] = { "LLDDDDDDDDDDDDDDDDDDD", "DDDDDDDDDDDDDDDDDDDLL",
					       "LDLDLDLDLDLDLDLDLDLDL", "DDDDDDDDDLDDDDDDDDDDD" };
	struct blobdb_options opts = opts_small();

	opts.compact_percent = 100;
	for (size_t k = 0; k < sizeof(layouts) / sizeof(layouts[0]); k++) {
		const char *layout = layouts[k];
		size_t n = strlen(layout);
		char dir[PATH_MAX], label[96];
		struct blobdb *db;
		struct store *s;
		uint8_t *data[24], hashes[24][HS], *filler = make_content(3000), hf[HS];
		long long before, after;
		uint32_t pack0, pack;
		struct record_info rec;
		int r;

		snprintf(label, sizeof(label), "online compaction of a pack laid out %s", layout);
		TU_TEST(label);
		tu_path(dir, sizeof(dir), "%s/db-layout-%zu", base, k);
		s = new_store(dir, &opts, "c", &db);
		for (size_t i = 0; i < n; i++) {
			data[i] = make_content(3000);
			CHECK_EQ(blob_save(s, data[i], 3000, hashes[i]), 0);
		}
		/* The next save does not fit: a new pack becomes the active one. */
		CHECK_EQ(blob_save(s, filler, 3000, hf), 0);
		REQUIRE(find_record(dir, "c", hashes[0], &pack0, &rec));
		REQUIRE(find_record(dir, "c", hf, &pack, &rec));
		REQUIRE(pack != pack0);
		for (size_t i = 0; i < n; i++) {
			REQUIRE(find_record(dir, "c", hashes[i], &pack, &rec));
			REQUIRE(pack == pack0);
			if (layout[i] == 'D')
				CHECK_EQ(blob_delete(s, hashes[i]), 0);
		}
		CHECK_EQ(store_sync(s), 0);
		before = packs_bytes(dir, "c");
		r = store_compact(s, 1);
		CHECK_EQ(r, 0);
		after = packs_bytes(dir, "c");
		if (!CHECK(after < before))
			fprintf(stderr, "  pack bytes %lld before compaction, %lld after\n", before, after);
		CHECK_EQ(staging_files(dir, "c"), 0);
		for (size_t i = 0; i < n; i++) {
			if (layout[i] == 'L' && !blob_is(s, data[i], 3000))
				fprintf(stderr, "  live blob %zu lost by the compaction\n", i);
			else if (layout[i] == 'D')
				CHECK(blob_absent(s, hashes[i]));
		}
		CHECK(blob_is(s, filler, 3000));
		store_close(s);
		blobdb_close(db);
		CHECK(verify_packs(dir, "c"));
		db = db_open(dir, &opts);
		s = st_open(db, "c");
		for (size_t i = 0; i < n; i++) {
			if (layout[i] == 'L' && !blob_is(s, data[i], 3000))
				fprintf(stderr, "  live blob %zu lost after compaction and reopen\n", i);
			else if (layout[i] == 'D')
				CHECK(blob_absent(s, hashes[i]));
			free(data[i]);
		}
		CHECK(blob_is(s, filler, 3000));
		store_close(s);
		blobdb_close(db);
		free(filler);
	}
}

static void test_compaction(const char *base)
{
	char dir[PATH_MAX], when[80];
	struct blobdb_options opts = opts_small();
	struct blobdb *db;
	struct pmodel *pm = calloc(1, sizeof(*pm));
	long bad = 0;

	TU_TEST("compaction: online and offline, against a model");
	REQUIRE(pm);
	tu_path(dir, sizeof(dir), "%s/db-compact", base);
	for (int i = 0; i < P_POOL; i++) {
		struct pool_item *it = &pm->pool[i];
		it->len = i % 8 == 1 ? 4096 + (size_t)tu_rand_below(30000) : (size_t)tu_rand_below(3000);
		it->data = make_content(it->len);
		sha(it->data, it->len, it->hash);
	}
	db = db_open(dir, &opts);
	for (int st = 0; st < 2; st++) {
		CHECK_EQ(store_create(db, p_names[st]), 0);
		pm->exists[st] = true;
	}
	for (int cycle = 0; cycle < 6 && !bad; cycle++) {
		struct blob_reader *readers[4] = { 0 };
		int reader_item[4];
		size_t n_readers = 0;
		for (int op = 0; op < 150; op++) {
			int st = (int)tu_rand_below(2), i = (int)tu_rand_below(P_POOL);
			struct store *s = st_open(db, p_names[st]);
			if (tu_rand_below(100) < 50) {
				if (!model_save(pm, s, st, i, tu_rand_below(5) == 0))
					bad++;
			} else if (!model_delete(pm, s, st, i)) {
				bad++;
			}
			store_close(s);
		}
		/* Readers opened before compaction. */
		for (int i = 0; i < P_POOL && n_readers < 4; i++) {
			if (pm->present[0][i] && pm->pool[i].len > 0) {
				struct store *s = st_open(db, p_names[0]);
				if (CHECK_EQ(blob_open(s, pm->pool[i].hash, &readers[n_readers]), 0))
					reader_item[n_readers++] = i;
				store_close(s);
			}
		}
		for (int st = 0; st < 2; st++) {
			static const unsigned percents[] = { 0, 1, 25, 50, 100 };
			struct store *s = st_open(db, p_names[st]);
			CHECK_EQ(store_sync(s), 0);
			CHECK_EQ(store_compact(s, percents[tu_rand_below(5)]), 0);
			store_close(s);
		}
		for (size_t k = 0; k < n_readers; k++) {
			const struct pool_item *it = &pm->pool[reader_item[k]];
			uint8_t *buf = tu_xmalloc(it->len);
			size_t got = 0;
			CHECK_EQ(blob_read(readers[k], buf, it->len, 0, &got), 0);
			if (CHECK_EQ(got, it->len))
				CHECK_MEM(buf, it->data, it->len);
			free(buf);
			blob_close(readers[k]);
		}
		snprintf(when, sizeof(when), "after online compaction %d", cycle);
		if (!verify_model(db, pm, when))
			bad++;
		blobdb_close(db);
		for (int st = 0; st < 2; st++)
			if (!verify_packs(dir, p_names[st]))
				bad++;

		/* Offline compaction, as `blobfs compact` does it, every other cycle. */
		db = db_open(dir, &opts);
		if (cycle % 2) {
			CHECK_EQ(blobdb_compact(db, NULL), 0);
			snprintf(when, sizeof(when), "after offline compaction %d", cycle);
			if (!verify_model(db, pm, when))
				bad++;
			blobdb_close(db);
			for (int st = 0; st < 2; st++) {
				size_t blobs, tombstones, live = 0;
				for (int i = 0; i < P_POOL; i++)
					live += pm->present[st][i];
				count_records(dir, p_names[st], &blobs, &tombstones);
				/* Nothing dead is left: each record a live blob, once. */
				if (!CHECK_EQ(blobs, live) || !CHECK_EQ(tombstones, 0))
					fprintf(stderr, "  store %s after blobdb_compact: %zu blob records "
							"for %zu blobs, %zu tombstones\n",
						p_names[st], blobs, live, tombstones);
				if (!verify_packs(dir, p_names[st]))
					bad++;
			}
			db = db_open(dir, &opts);
		}
		snprintf(when, sizeof(when), "after reopen %d", cycle);
		if (!verify_model(db, pm, when))
			bad++;
	}
	blobdb_close(db);
	for (int i = 0; i < P_POOL; i++)
		free(pm->pool[i].data);
	free(pm);
}

/* Online compaction copies a pack without the store lock held. A delete of
 * that pack's last live blob meanwhile (from another thread in real life;
 * here from inside the compaction's own copy write, through the io table)
 * makes the pack dead, and it is dropped under the compaction's feet. */
static struct store *race_store;
static uint8_t race_hash[HS];
static int race_delete_result = 1;
static size_t race_trigger_len; /* 0: disarmed */

/* Fires when the compaction copies the live record (a write of exactly its
 * size): that is while the copy runs, without the store lock. The table is
 * in place from the open on (as a per-database one would be), disarmed until
 * the compaction. */
static ssize_t race_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);

	if (race_trigger_len && len == race_trigger_len && race_delete_result == 1)
		race_delete_result = blob_delete(race_store, race_hash);
	return n;
}

static void race_child(void *arg)
{
	enum { A = 26 };
	const char *dir = arg;
	struct blobdb_options opts = opts_small();
	struct io_ops race_io = *io_system();
	struct blobdb *db;
	struct store *s;
	uint8_t *a[A], ha[A][HS];
	struct record_info rec;
	uint32_t first_pack = 0, pack;
	int r;

	opts.compact_percent = 100; /* no background compaction */
	race_io.pwrite = race_pwrite;
	opts.io = &race_io;
	s = new_store(dir, &opts, "r", &db);
	for (int i = 0; i < A; i++) {
		a[i] = make_content(3000);
		REQUIRE(blob_save(s, a[i], 3000, ha[i]) == 0);
	}
	/* Keep the first blob of the first pack, delete the rest of it
	 * (their tombstones go to the newer, active pack). */
	REQUIRE(find_record(dir, "r", ha[0], &first_pack, &rec));
	for (int i = 1; i < A; i++) {
		REQUIRE(find_record(dir, "r", ha[i], &pack, &rec));
		if (pack == first_pack)
			REQUIRE(blob_delete(s, ha[i]) == 0);
	}
	REQUIRE(store_sync(s) == 0);
	race_store = s;
	memcpy(race_hash, ha[0], HS);
	race_trigger_len = (size_t)record_size(3000, CHUNK_SHIFT_DEFAULT);
	r = store_compact(s, 1);
	race_trigger_len = 0;
	if (race_delete_result == 1)
		fprintf(stderr, "  (the compaction did not copy the live blob)\n");
	CHECK_EQ(r, 0);
	CHECK_EQ(race_delete_result, 0);
	CHECK(blob_absent(s, ha[0]));
	for (int i = 1; i < A; i++)
		if (blob_info(s, ha[i], NULL) == 0)
			CHECK(blob_is(s, a[i], 3000));
	store_close(s);
	blobdb_close(db);
	opts.io = NULL;
	db = db_open(dir, &opts);
	s = st_open(db, "r");
	CHECK(blob_absent(s, ha[0]));
	store_close(s);
	blobdb_close(db);
	for (int i = 0; i < A; i++)
		free(a[i]);
}

static void test_compaction_delete_race(const char *base)
{
	char dir[PATH_MAX];

	TU_TEST("compaction racing with the delete of the pack's last live blob");
	tu_path(dir, sizeof(dir), "%s/db-compact-race", base);
	TU_RUN_CHILD(race_child, dir, 20);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_compaction_layouts },
		{ .once = test_compaction },
		{ .once = test_compaction_delete_race },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
