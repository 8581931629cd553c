/*
 * test_store_threads.c - concurrent use: threads saving (directly and
 * through writers), reading, deleting, syncing and listing one store, first
 * without and then (in a child process) with the flusher thread flushing and
 * compacting; and the flusher making a save durable within the flush
 * interval without anyone waiting for it.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include <pthread.h>

#include "storeutil.h"

/* ---- threads ---- */

#define T_THREADS 4
#define T_BLOBS 120

struct thread_arg {
	struct store *store;
	int id;
	uint8_t *data[T_BLOBS];
	size_t sizes[T_BLOBS];
	uint8_t hashes[T_BLOBS][HS];
	long errors;
};

static void *thread_main(void *p)
{
	struct thread_arg *a = p;

	for (int i = 0; i < T_BLOBS; i++) {
		uint8_t h[HS];
		int r = i % 4 == 3 ? save_via_writer(a->store, a->data[i], a->sizes[i], h) :
				     blob_save(a->store, a->data[i], a->sizes[i], h);
		if (r != 0 || memcmp(h, a->hashes[i], HS))
			a->errors++;
		/* Read back one of ours, delete every third. */
		if (i % 3 == 2 && blob_delete(a->store, a->hashes[i - 1]) != 0)
			a->errors++;
		{
			int j = (int)(((unsigned)i * 7919u) % (unsigned)(i + 1));
			struct blob_reader *r2;
			if (blob_open(a->store, a->hashes[j], &r2) == 0) {
				uint8_t *buf = malloc(a->sizes[j] + 1);
				size_t got = 0;
				if (!buf || blob_read(r2, buf, a->sizes[j], 0, &got) || got != a->sizes[j] ||
				    memcmp(buf, a->data[j], got))
					a->errors++;
				free(buf);
				blob_close(r2);
			} else if (!(j % 3 == 1 && j + 1 <= i)) {
				a->errors++; /* absent but never deleted */
			}
		}
		if (i % 25 == 24 && store_sync(a->store) != 0)
			a->errors++;
		/* Listing while others write: must be strictly ordered. */
		if (i % 40 == 0) {
			struct hashlist l = { 0 };
			if (blob_list(a->store, NULL, collect_hash, &l) != 0)
				a->errors++;
			for (size_t k = 1; k < l.n; k++)
				if (memcmp(l.h[k - 1], l.h[k], HS) >= 0)
					a->errors++;
			hashlist_free(&l);
		}
	}
	return NULL;
}

static void threads_body(const char *dir, bool flusher)
{
	struct blobdb_options opts = opts_small();
	struct blobdb *db;
	struct store *s;
	struct thread_arg *args = calloc(T_THREADS, sizeof(*args));
	pthread_t tids[T_THREADS];
	size_t expect = 0;

	REQUIRE(args);
	if (flusher) {
		/* Flushes every 2 ms, compaction of anything 10% dead. */
		opts.flush_interval_ms = 2;
		opts.compact_percent = 10;
	}
	db = db_open(dir, &opts);
	if (flusher)
		CHECK_EQ(blobdb_start(db), 0);
	REQUIRE(store_create(db, "t") == 0);
	s = st_open(db, "t");
	for (int t = 0; t < T_THREADS; t++) {
		args[t].store = s;
		args[t].id = t;
		for (int i = 0; i < T_BLOBS; i++) {
			args[t].sizes[i] = i % 10 == 0 ? 4096 + (size_t)tu_rand_below(20000) :
							 1 + (size_t)tu_rand_below(3000);
			args[t].data[i] = make_content(args[t].sizes[i]);
			sha(args[t].data[i], args[t].sizes[i], args[t].hashes[i]);
		}
	}
	for (int t = 0; t < T_THREADS; t++)
		REQUIRE(pthread_create(&tids[t], NULL, thread_main, &args[t]) == 0);
	for (int t = 0; t < T_THREADS; t++) {
		pthread_join(tids[t], NULL);
		CHECK_EQ(args[t].errors, 0);
	}
	if (flusher) {
		/* Let the background thread flush and compact for a while. */
		CHECK_EQ(store_sync(s), 0);
		usleep(100 * 1000);
	}
	for (int round = 0; round < 2; round++) {
		expect = 0;
		for (int t = 0; t < T_THREADS; t++) {
			for (int i = 0; i < T_BLOBS; i++) {
				bool deleted = i % 3 == 1 && i + 1 < T_BLOBS;
				if (deleted) {
					CHECK(blob_absent(s, args[t].hashes[i]));
				} else {
					CHECK(blob_is(s, args[t].data[i], args[t].sizes[i]));
					expect++;
				}
			}
		}
		CHECK_EQ(blob_count(s), expect);
		store_close(s);
		blobdb_close(db);
		CHECK(verify_packs(dir, "t"));
		if (round == 0) {
			db = db_open(dir, &opts);
			if (flusher) {
				CHECK_EQ(blobdb_start(db), 0);
				usleep(50 * 1000);
			}
			s = st_open(db, "t");
		}
	}
	for (int t = 0; t < T_THREADS; t++)
		for (int i = 0; i < T_BLOBS; i++)
			free(args[t].data[i]);
	free(args);
}

static void test_threads(const char *base)
{
	char dir[PATH_MAX];

	TU_TEST("concurrent saves, reads, deletes and lists");
	tu_path(dir, sizeof(dir), "%s/db-threads", base);
	threads_body(dir, false);
}

static void flusher_child(void *arg)
{
	threads_body(arg, true);
}

static void test_threads_flusher(const char *base)
{
	char dir[PATH_MAX];

	TU_TEST("concurrent use with the flusher thread flushing and compacting");
	tu_path(dir, sizeof(dir), "%s/db-threads-flusher", base);
	TU_RUN_CHILD(flusher_child, dir, 30);
}

/* The highest seq the store's durable marker vouches for (both slots). */
static uint64_t marker_seq(const char *dir, const char *store)
{
	char path[PATH_MAX];
	uint8_t buf[2 * MARKER_SIZE];
	uint64_t best = 0, seq;
	FILE *f;
	size_t n;

	tu_path(path, sizeof(path), "%s/stores/%s/durable", dir, store);
	f = fopen(path, "rb");
	if (!f)
		return 0;
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	for (size_t slot = 0; (slot + 1) * MARKER_SIZE <= n; slot++)
		if (marker_decode(buf + slot * MARKER_SIZE, &seq) == 0 && seq > best)
			best = seq;
	return best;
}

/* README promise 3: without fsync or -o sync a saved blob is made durable
 * within about a second by the background flusher. */
static void test_flush_interval(const char *base)
{
	char dir[PATH_MAX];
	struct blobdb *db;
	struct store *s;
	uint8_t h[HS];

	TU_TEST("the flusher makes a save durable within the flush interval");
	tu_path(dir, sizeof(dir), "%s/db-flush-interval", base);
	s = new_store(dir, NULL, "s", &db);
	REQUIRE(blobdb_start(db) == 0);
	CHECK_EQ(marker_seq(dir, "s"), 0);
	CHECK_EQ(blob_save(s, "durable soon", 12, h), 0);
	/* Nothing waits for it; the marker moves on its own. */
	for (int i = 0; i < 16 && marker_seq(dir, "s") < 1; i++)
		usleep(100000);
	CHECK(marker_seq(dir, "s") >= 1);
	store_close(s);
	blobdb_close(db);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_threads },
		{ .once = test_threads_flusher },
		{ .once = test_flush_interval },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
