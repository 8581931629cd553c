/*
 * test_store_recovery.c - what survives a close and what a reopen
 * recovers from: random saves / deletes / store destroys against a model of
 * three stores checked before and after each of several reopens (stale
 * staging files removed at open), garbage after the newest pack and a pack
 * cut inside its last record (torn tails), records whose hashes share a
 * long prefix, and an empty or headerless pack file left by a crash. Model
 * and torn-tail tests run with the default options and with small packs.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include "storeutil.h"

static void test_persistence(const char *base, const struct blobdb_options *opts)
{
	char dir[PATH_MAX], label[160], when[64], path[PATH_MAX];
	struct blobdb *db;
	struct pmodel *pm = calloc(1, sizeof(*pm));
	uint32_t max_id;
	size_t most_packs = 0;
	long bad = 0;

	REQUIRE(pm);
	snprintf(label, sizeof(label), "persistence across reopen, against a model (%s)",
		 opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-persist-%" PRIu64, base, opts->large_blob_min);
	for (int i = 0; i < P_POOL; i++) {
		struct pool_item *it = &pm->pool[i];
		it->len = i == 0 ? 0 :
			  i % 10 == 1 ? 4096 + (size_t)tu_rand_below(60000) :
			  i == 2	? (1u << 20) + 17 :
					  1 + (size_t)tu_rand_below(3000);
		it->data = make_content(it->len);
		sha(it->data, it->len, it->hash);
	}
	db = db_open(dir, opts);
	for (int st = 0; st < P_STORES; st++) {
		CHECK_EQ(store_create(db, p_names[st]), 0);
		pm->exists[st] = true;
	}

	/* The classic sequences, checked after the first reopen. */
	{
		struct store *s = st_open(db, "alpha");
		uint8_t h[HS];
		/* saved, deleted, saved: present */
		CHECK_EQ(blob_save(s, pm->pool[3].data, pm->pool[3].len, h), 0);
		CHECK_EQ(blob_delete(s, h), 0);
		CHECK_EQ(blob_save(s, pm->pool[3].data, pm->pool[3].len, h), 0);
		pm->present[0][3] = true;
		/* saved, deleted, saved, deleted: absent */
		CHECK_EQ(blob_save(s, pm->pool[4].data, pm->pool[4].len, h), 0);
		CHECK_EQ(blob_delete(s, h), 0);
		CHECK_EQ(blob_save(s, pm->pool[4].data, pm->pool[4].len, h), 0);
		CHECK_EQ(blob_delete(s, h), 0);
		/* the same with a blob that gets a pack of its own */
		CHECK_EQ(blob_save(s, pm->pool[11].data, pm->pool[11].len, h), 0);
		CHECK_EQ(blob_delete(s, h), 0);
		CHECK_EQ(blob_save(s, pm->pool[11].data, pm->pool[11].len, h), 0);
		pm->present[0][11] = true;
		CHECK_EQ(blob_save(s, pm->pool[21].data, pm->pool[21].len, h), 0);
		CHECK_EQ(blob_delete(s, h), 0);
		CHECK_EQ(blob_save(s, pm->pool[21].data, pm->pool[21].len, h), 0);
		CHECK_EQ(blob_delete(s, h), 0);
		/* saved in one store only */
		CHECK_EQ(blob_save(s, pm->pool[5].data, pm->pool[5].len, h), 0);
		pm->present[0][5] = true;
		store_close(s);
	}

	for (int cycle = 0; cycle < 8 && !bad; cycle++) {
		for (int op = 0; op < 90; op++) {
			int st = (int)tu_rand_below(P_STORES), i = (int)tu_rand_below(P_POOL);
			uint64_t what = tu_rand_below(100);
			struct store *s;
			if (what < 3) {
				/* Destroy or (re)create a store. */
				if (pm->exists[st]) {
					CHECK_EQ(store_destroy(db, p_names[st], false), 0);
					pm->exists[st] = false;
					memset(pm->present[st], 0, sizeof(pm->present[st]));
				} else {
					CHECK_EQ(store_create(db, p_names[st]), 0);
					pm->exists[st] = true;
				}
				continue;
			}
			if (!pm->exists[st])
				continue;
			s = st_open(db, p_names[st]);
			if (what < 65) {
				if (!model_save(pm, s, st, i, what >= 50))
					bad++;
			} else if (!model_delete(pm, s, st, i)) {
				bad++;
			}
			store_close(s);
		}
		snprintf(when, sizeof(when), "before reopen %d", cycle);
		if (!verify_model(db, pm, when))
			bad++;
		for (int st = 0; st < P_STORES; st++) {
			if (pm->exists[st]) {
				size_t n = packs_in_store(dir, p_names[st], &max_id, NULL);
				most_packs = n > most_packs ? n : most_packs;
			}
		}
		blobdb_close(db);
		for (int st = 0; st < P_STORES; st++)
			if (pm->exists[st] && !verify_packs(dir, p_names[st]))
				bad++;

		/* A crash's leftovers: a staging file. */
		for (int st = 0; st < P_STORES; st++) {
			if (!pm->exists[st])
				continue;
			tu_path(path, sizeof(path), "%s/stores/%s/staging-99999-%d.tmp", dir, p_names[st],
				 cycle);
			REQUIRE(tu_write_file(path, "half a blob", 11) == 0);
		}

		db = db_open(dir, opts);
		snprintf(when, sizeof(when), "after reopen %d", cycle);
		if (!verify_model(db, pm, when))
			bad++;
		for (int st = 0; st < P_STORES; st++) {
			if (!pm->exists[st])
				continue;
			tu_path(path, sizeof(path), "%s/stores/%s/staging-99999-%d.tmp", dir, p_names[st],
				 cycle);
			CHECK(!tu_exists(path));
			CHECK_EQ(staging_files(dir, p_names[st]), 0);
		}
	}
	/* Small packs: the stores really did spread over several packs. */
	if (opts->pack_size_max < 1000000)
		CHECK(most_packs >= 3);
	blobdb_close(db);
	for (int i = 0; i < P_POOL; i++)
		free(pm->pool[i].data);
	free(pm);
}

/* ---- torn tails ---- */

static void test_torn_tail(const char *base, const struct blobdb_options *opts)
{
	enum { N = 30 };
	char dir[PATH_MAX], label[128], path[PATH_MAX];
	struct blobdb *db;
	struct store *s;
	uint8_t *data[N + 4], hashes[N + 4][HS];
	size_t sizes[N + 4];
	bool present[N + 4];
	uint32_t newest;
	long long size_before;

	snprintf(label, sizeof(label), "torn tail: garbage after the newest pack (%s)",
		 opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-torn-%" PRIu64, base, opts->large_blob_min);
	db = db_open(dir, opts);
	REQUIRE(store_create(db, "t") == 0);
	REQUIRE(store_create(db, "other") == 0);
	s = st_open(db, "t");
	for (size_t i = 0; i < N + 4; i++) {
		/* Sizes of at least 4 bytes but for the one empty blob: make_content
		 * makes contents distinct through a 4-byte serial, so a second empty
		 * (or 1..3-byte) blob could repeat one, and its save be -EEXIST. */
		sizes[i] = i == 3     ? 0 : /* the empty blob */
			   i % 9 == 4 ? 5000 + (size_t)tu_rand_below(30000) :
					4 + (size_t)tu_rand_below(2496);
		data[i] = make_content(sizes[i]);
		sha(data[i], sizes[i], hashes[i]);
		present[i] = false;
	}
	for (size_t i = 0; i < N; i++) {
		CHECK_EQ(blob_save(s, data[i], sizes[i], hashes[i]), 0);
		present[i] = true;
	}
	for (size_t i = 0; i < N; i += 5) {
		CHECK_EQ(blob_delete(s, hashes[i]), 0);
		present[i] = false;
	}
	store_close(s);
	blobdb_close(db);

	/* Small packs: the blobs of 5000 bytes and more have packs of their own. */
	if (opts->large_blob_min < 5000)
		CHECK(packs_in_store(dir, "t", &newest, NULL) >= 4);

	/* Garbage of several kinds, each followed by a reopen. */
	for (int kind = 0; kind < 3; kind++) {
		uint8_t junk[3000];
		size_t junk_len = kind == 2 ? RECORD_HEADER_SIZE + 100 : kind ? 7 : sizeof(junk);
		CHECK(packs_in_store(dir, "t", &newest, NULL) > 0);
		path_of_pack(dir, "t", newest, path);
		size_before = tu_file_size(path);
		tu_fill_random(junk, sizeof(junk));
		if (kind == 2) {
			/* A record header that promises more than is there. */
			struct record_info rec = { .kind = RECORD_BLOB, .chunk_shift = CHUNK_SHIFT_DEFAULT,
						   .seq = 1000000, .length = 5000,
						   .offset = (uint64_t)size_before };
			record_header_encode(&rec, junk);
		}
		REQUIRE(tu_append_file(path, junk, junk_len) == 0);
		db = db_open(dir, opts);
		s = st_open(db, "t");
		/* The tail was cut off. */
		CHECK_EQ(tu_file_size(path), size_before);
		check_blobs(s, N + 4, data, sizes, hashes, present);
		/* New saves work (and deletes). */
		CHECK_EQ(blob_save(s, data[N + kind], sizes[N + kind], hashes[N + kind]), 0);
		present[N + kind] = true;
		CHECK_EQ(blob_delete(s, hashes[1 + kind]), 0);
		present[1 + kind] = false;
		store_close(s);
		blobdb_close(db);
		CHECK(verify_packs(dir, "t"));
		db = db_open(dir, opts);
		s = st_open(db, "t");
		check_blobs(s, N + 4, data, sizes, hashes, present);
		store_close(s);
		blobdb_close(db);
	}

	TU_TEST("torn tail: the newest pack cut inside its last record");
	{
		struct record_info last;
		size_t victim = N + 3, j;
		db = db_open(dir, opts);
		s = st_open(db, "t");
		CHECK_EQ(blob_save(s, data[victim], sizes[victim], hashes[victim]), 0);
		present[victim] = true;
		store_close(s);
		blobdb_close(db);
		CHECK(packs_in_store(dir, "t", &newest, NULL) > 0);
		path_of_pack(dir, "t", newest, path);
		REQUIRE(last_record(dir, "t", newest, &last));
		/* The last record of the newest pack is the blob saved last, or (with
		 * own packs) some other blob: cut it in half either way. */
		REQUIRE(last.kind == RECORD_BLOB);
		for (j = 0; j < N + 4 && memcmp(hashes[j], last.hash, HS); j++)
			;
		REQUIRE(j < N + 4);
		REQUIRE(truncate(path, (off_t)(last.offset + (record_end(&last) - last.offset) / 2)) == 0);
		present[j] = false;
		db = db_open(dir, opts);
		s = st_open(db, "t");
		CHECK_EQ(tu_file_size(path), last.offset);
		check_blobs(s, N + 4, data, sizes, hashes, present);
		/* The lost blob can be saved again. */
		CHECK_EQ(blob_save(s, data[j], sizes[j], hashes[j]), 0);
		present[j] = true;
		store_close(s);
		blobdb_close(db);
		db = db_open(dir, opts);
		s = st_open(db, "t");
		check_blobs(s, N + 4, data, sizes, hashes, present);
		store_close(s);
		/* The other store was never touched. */
		s = st_open(db, "other");
		CHECK_EQ(blob_count(s), 0);
		store_close(s);
		blobdb_close(db);
		CHECK(verify_packs(dir, "t"));
	}
	for (size_t i = 0; i < N + 4; i++)
		free(data[i]);
}

/* Records whose hash fields share their first 8 bytes (ff..ff): SHA-256
 * will not produce them, but a pack is untrusted input and opening the data
 * directory must not fail because of them. Runs in a child process with a
 * time limit. */
static void crafted_child(void *arg)
{
	const char *dir = arg;
	struct blobdb *db = NULL;
	struct store *s = NULL;
	int r = blobdb_open(dir, NULL, &db);

	if (!CHECK_EQ(r, 0)) {
		fprintf(stderr, "  blobdb_open: %d (%s)\n", r, strerror(-r));
		return;
	}
	if (CHECK_EQ(store_open(db, "c", &s), 0))
		CHECK_EQ(blob_count(s), 100);
	store_close(s);
	blobdb_close(db);
}

static void test_crafted_hashes(const char *base)
{
	char dir[PATH_MAX];
	struct blobdb *db;

	TU_TEST("a pack whose records' hashes share a long prefix");
	tu_path(dir, sizeof(dir), "%s/db-crafted", base);
	db = db_open(dir, NULL);
	REQUIRE(store_create(db, "c") == 0);
	blobdb_close(db);
	{
		struct record_info recs[100];
		for (int i = 0; i < 100; i++) {
			recs[i] = (struct record_info){ .kind = RECORD_BLOB,
							.chunk_shift = CHUNK_SHIFT_DEFAULT,
							.length = 1, .seq = (uint64_t)i + 1 };
			memset(recs[i].hash, 0xff, 8);
			tu_fill_random(recs[i].hash + 8, HS - 8);
		}
		write_pack(dir, "c", 1, recs, 100, "?");
	}
	TU_RUN_CHILD(crafted_child, dir, 20);
}

/* A pack file without a valid header where the next pack would go: what a
 * crash between creating a pack file and writing its header leaves. The
 * store must still be able to save. */
static void test_headerless_pack(const char *base)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct blobdb_options opts = opts_small();
	struct blobdb *db;
	struct store *s;
	uint8_t *data[30], hashes[30][HS];
	int r;

	TU_TEST("an empty pack file left by a crash");
	tu_path(dir, sizeof(dir), "%s/db-headerless", base);
	db = db_open(dir, &opts);
	REQUIRE(store_create(db, "first") == 0);
	REQUIRE(store_create(db, "later") == 0);
	s = st_open(db, "later");
	/* Fill pack 0 so that the next small blob needs a new pack. */
	for (int i = 0; i < 30; i++) {
		data[i] = make_content(3000);
		CHECK_EQ(blob_save(s, data[i], 3000, hashes[i]), 0);
	}
	store_close(s);
	blobdb_close(db);

	/* Store "first" crashed while creating its very first pack. */
	path_of_pack(dir, "first", 0, path);
	REQUIRE(tu_write_file(path, "", 0) == 0);
	/* Store "later" crashed while creating its next pack. */
	{
		uint32_t newest;
		packs_in_store(dir, "later", &newest, NULL);
		path_of_pack(dir, "later", newest + 1, path);
		REQUIRE(tu_write_file(path, "BLOBPA", 6) == 0);
	}
	db = db_open(dir, &opts);
	s = st_open(db, "first");
	{
		uint8_t h[HS];
		r = blob_save(s, "after the crash", 15, h);
		if (!CHECK_EQ(r, 0))
			fprintf(stderr, "  blob_save into a store with an empty pack-00000000.pack: %d (%s)\n",
				r, strerror(-r));
		else
			CHECK(blob_is(s, "after the crash", 15));
	}
	store_close(s);
	s = st_open(db, "later");
	for (int i = 0; i < 30; i++)
		CHECK(blob_is(s, data[i], 3000));
	{
		uint8_t *more = make_content(3000), h[HS];
		for (int i = 0; i < 40; i++) {
			memcpy(more + 8, &i, sizeof(i));
			r = blob_save(s, more, 3000, h);
			if (!CHECK_EQ(r, 0)) {
				fprintf(stderr,
					"  blob_save %d after a torn pack creation: %d (%s)\n", i, r,
					strerror(-r));
				break;
			}
		}
		free(more);
	}
	store_close(s);
	blobdb_close(db);
	for (int i = 0; i < 30; i++)
		free(data[i]);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .both = test_persistence },
		{ .both = test_torn_tail },
		{ .once = test_crafted_hashes },
		{ .once = test_headerless_pack },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
