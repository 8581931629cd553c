/*
 * test_store_faults.c - running out of room and failing writes: the min_free
 * reserve refuses saves and allows deletes; saves, deletes and writers
 * whose pwrite fails (ENOSPC, EIO, short) through the io table leave no
 * trace, and the packs still scan clean. The failing writes run with the
 * default options and with small packs.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include "storeutil.h"

/* min_free: saves leave that much of the disk free; deletes still work. */
static void test_min_free(const char *base)
{
	char dir[PATH_MAX];
	struct blobdb_options opts = opts_small();
	struct blobdb *db;
	struct store *s;
	uint8_t *small = make_content(1000), *large = make_content(20000), *kept = make_content(500);
	uint8_t h[HS], hk[HS];
	struct blob_writer *w;

	TU_TEST("min_free: saves refused, deletes allowed");
	tu_path(dir, sizeof(dir), "%s/db-minfree", base);
	s = new_store(dir, &opts, "m", &db);
	CHECK_EQ(blob_save(s, kept, 500, hk), 0);
	store_close(s);
	blobdb_close(db);

	opts.min_free = UINT64_MAX - 1; /* more than any disk has */
	db = db_open(dir, &opts);
	s = st_open(db, "m");
	CHECK_EQ(blob_save(s, small, 1000, h), -ENOSPC);
	CHECK(blob_absent(s, h));
	CHECK_EQ(blob_save(s, large, 20000, h), -ENOSPC);
	CHECK(blob_absent(s, h));
	REQUIRE(blob_writer_new(s, &w) == 0);
	CHECK_EQ(blob_writer_write(w, small, 1000, 0), -ENOSPC);
	CHECK(blob_writer_commit(w, h) < 0);
	blob_writer_free(w);
	CHECK(blob_is(s, kept, 500));
	CHECK_EQ(blob_delete(s, hk), 0);
	CHECK(blob_absent(s, hk));
	CHECK_EQ(staging_files(dir, "m"), 0);
	store_close(s);
	blobdb_close(db);

	opts.min_free = 0;
	db = db_open(dir, &opts);
	s = st_open(db, "m");
	CHECK(blob_absent(s, hk));
	CHECK_EQ(blob_save(s, small, 1000, h), 0);
	CHECK_EQ(blob_save(s, large, 20000, h), 0);
	CHECK(blob_is(s, small, 1000));
	CHECK(blob_is(s, large, 20000));
	store_close(s);
	blobdb_close(db);
	free(small);
	free(large);
	free(kept);
}

/* ---- failing writes (through the io table) ---- */

/* The pwrite calls from now until the armed one succeed; that one fails
 * with fail_errno or, if fail_short, writes half and leaves the next call to
 * fail (a disk that fills up mid-write). */
static long pwrites_left = -1; /* -1: disarmed */
static int fail_errno = ENOSPC;
static bool fail_short;
static long pwrite_failures;

static ssize_t faulty_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	if (pwrites_left >= 0 && pwrites_left-- == 0) {
		if (fail_short && len > 1) {
			fail_short = false;
			pwrites_left = 0;
			return pwrite(fd, buf, len / 2, off);
		}
		pwrite_failures++;
		errno = fail_errno;
		return -1;
	}
	return pwrite(fd, buf, len, off);
}

/* A save that fails half-way leaves no trace: the error comes back, the
 * blob is not there, later saves work, and the packs hold no partial record
 * (they scan clean after close). */
static void test_failed_writes(const char *base, const struct blobdb_options *opts)
{
	enum { N = 16 };
	char dir[PATH_MAX], label[128];
	struct blobdb_options faulty_opts = *opts;
	struct io_ops faulty_io = *io_system();
	struct blobdb *db;
	struct store *s;
	uint8_t *data[N], hashes[N][HS];
	size_t sizes[N];
	bool present[N];
	int r;

	faulty_io.pwrite = faulty_pwrite;
	snprintf(label, sizeof(label), "saves and deletes whose writes fail (%s)", opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-fail-%" PRIu64, base, opts->large_blob_min);
	faulty_opts.io = &faulty_io;
	s = new_store(dir, &faulty_opts, "f", &db);
	for (int i = 0; i < N; i++) {
		sizes[i] = i % 4 == 3 ? 9000 + (size_t)tu_rand_below(90000) : (size_t)tu_rand_below(3000);
		data[i] = make_content(sizes[i]);
		sha(data[i], sizes[i], hashes[i]);
		present[i] = false;
	}
	for (int i = 0; i < N / 2; i++) {
		CHECK_EQ(blob_save(s, data[i], sizes[i], hashes[i]), 0);
		present[i] = true;
	}
	/* Fail the k-th write of a save, for the first few k; then retry. */
	for (int i = N / 2; i < N; i++) {
		for (long k = 0; k < 4; k++) {
			uint8_t h[HS];
			long before = pwrite_failures;
			fail_errno = k % 2 ? EIO : ENOSPC;
			fail_short = k == 2;
			pwrites_left = k;
			r = blob_save(s, data[i], sizes[i], h);
			pwrites_left = -1;
			if (pwrite_failures == before) {
				/* The save needed fewer writes than k: it went through. */
				CHECK_EQ(r, 0);
				present[i] = true;
				break;
			}
			if (!CHECK_EQ(r, fail_errno == ENOSPC ? -ENOSPC : -EIO))
				fprintf(stderr, "  blob %d (%zu bytes), write %ld failed\n", i, sizes[i], k);
			CHECK(blob_absent(s, hashes[i]));
		}
		if (!present[i]) {
			CHECK_EQ(blob_save(s, data[i], sizes[i], hashes[i]), 0);
			present[i] = true;
		}
		CHECK(blob_is(s, data[i], sizes[i]));
	}
	/* A delete whose tombstone cannot be written has not happened. */
	for (int i = 0; i < N; i += 3) {
		long before = pwrite_failures;
		fail_errno = ENOSPC;
		fail_short = false;
		pwrites_left = 0;
		r = blob_delete(s, hashes[i]);
		pwrites_left = -1;
		if (pwrite_failures > before) {
			CHECK_EQ(r, -ENOSPC);
			CHECK(blob_is(s, data[i], sizes[i]));
		}
		CHECK_EQ(blob_delete(s, hashes[i]), 0);
		present[i] = false;
	}
	/* A writer whose write failed must not save what it holds. (Content
	 * of a few MiB, so that it is on disk whatever a writer keeps in
	 * memory; a write that did not reach the disk has nothing to fail.) */
	{
		enum { HALF = 3 << 20 };
		struct blob_writer *w;
		uint8_t h[HS];
		uint8_t *content = make_content(2 * HALF);
		long before;
		REQUIRE(blob_writer_new(s, &w) == 0);
		CHECK_EQ(blob_writer_write(w, content, HALF, 0), 0);
		fail_errno = EIO;
		fail_short = false;
		before = pwrite_failures;
		pwrites_left = 0;
		r = blob_writer_write(w, content + HALF, HALF, HALF);
		pwrites_left = -1;
		if (pwrite_failures == before) {
			CHECK_EQ(r, 0);
		} else {
			CHECK(r < 0);
			r = blob_writer_commit(w, h);
			if (!CHECK(r < 0 && r != -EEXIST))
				fprintf(stderr, "  commit after a failed write returned %d\n", r);
			sha(content, 2 * HALF, h);
			CHECK(blob_absent(s, h));
			sha(content, HALF, h);
			CHECK(blob_absent(s, h));
		}
		blob_writer_free(w);
		free(content);
	}
	store_close(s);
	blobdb_close(db);
	faulty_opts.io = NULL;
	CHECK(verify_packs(dir, "f"));
	db = db_open(dir, opts);
	s = st_open(db, "f");
	check_blobs(s, N, data, sizes, hashes, present);
	CHECK_EQ(staging_files(dir, "f"), 0);
	store_close(s);
	blobdb_close(db);
	for (int i = 0; i < N; i++)
		free(data[i]);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_min_free },
		{ .both = test_failed_writes },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
