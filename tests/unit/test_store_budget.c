/*
 * test_store_budget.c - what incoming writers cost the process: the local
 * backend's budget for writers' memory (writer_memory_max: what is charged,
 * never more than the budget, spilling at the budget, given back at spill,
 * commit and free), sparse content (truncated up or written far out: no
 * memory, a sparse staging file, zeros read back, the right hash, a large
 * sparse blob committed without its size in memory and kept sparse on
 * disk), the errors when a spill cannot happen (ENOSPC, and EMFILE answered
 * as ENFILE), the descriptors writers hold, and the memory backend's
 * writers truncated up (charged to memory_max first, or refused).
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include "storeutil.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#define MiB (UINT64_C(1) << 20)

/* ---- what the process holds ---- */

/* A field of /proc/self/status in KiB (VmRSS, VmHWM). */
static long long status_kib(const char *field)
{
	char line[256];
	long long v = -1;
	size_t n = strlen(field);
	FILE *f = fopen("/proc/self/status", "r");

	REQUIRE(f);
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, field, n) && line[n] == ':')
			v = atoll(line + n + 1);
	fclose(f);
	REQUIRE(v >= 0);
	return v;
}

/* Resets VmHWM to the current RSS. */
static void reset_peak(void)
{
	int fd = open("/proc/self/clear_refs", O_WRONLY);

	REQUIRE(fd >= 0);
	REQUIRE(write(fd, "5", 1) == 1);
	close(fd);
}

static size_t open_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	size_t n = 0;

	REQUIRE(d);
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

/* Bytes the store's staging files take on disk (st_blocks), and how many
 * there are. */
static uint64_t staging_disk_bytes(const char *dbdir, const char *store, size_t *count)
{
	char path[PATH_MAX];
	struct dirent *e;
	struct stat st;
	uint64_t total = 0;
	DIR *d;

	tu_path(path, sizeof(path), "%s/stores/%s", dbdir, store);
	d = opendir(path);
	REQUIRE(d);
	*count = 0;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "staging-", 8))
			continue;
		REQUIRE(fstatat(dirfd(d), e->d_name, &st, 0) == 0);
		total += (uint64_t)st.st_blocks * 512;
		(*count)++;
	}
	closedir(d);
	return total;
}

/* SHA-256 of `size` bytes of zeros with tag at offset at. */
static void sparse_hash(uint64_t size, const void *tag, size_t tag_len, uint64_t at,
			uint8_t out[HS])
{
	static uint8_t zeros[1 << 16];
	struct hasher *h;
	uint64_t done = 0;

	REQUIRE(hasher_new(&h) == 0);
	while (done < size) {
		uint64_t n = size - done < sizeof(zeros) ? size - done : sizeof(zeros);
		if (done <= at && at < done + n) {
			n = at - done;
			REQUIRE(hasher_update(h, zeros, (size_t)n) == 0);
			REQUIRE(hasher_update(h, tag, tag_len) == 0);
			done += n + tag_len;
			continue;
		}
		REQUIRE(hasher_update(h, zeros, (size_t)n) == 0);
		done += n;
	}
	REQUIRE(hasher_final(h, out) == 0);
	hasher_free(h);
}

/* ---- the budget ---- */

/* Writers written in order stay in memory until the budget is spent; the
 * next ones spill; the charge never passes the budget and is all given back. */
static void test_budget_spill(const char *base)
{
	enum { N = 12, LEN = 600 * 1024 };
	char dir[PATH_MAX];
	struct blobdb_options opts = opts_default();
	struct blob_writer *w[N];
	uint8_t *data[N], h[HS];
	struct blobdb *db;
	struct store *s;
	size_t staged = 0;

	TU_TEST("writers stay in memory up to the budget, then spill");
	tu_path(dir, sizeof(dir), "%s/db-budget", base);
	opts.writer_memory_max = 4 * MiB;
	s = new_store(dir, &opts, "b", &db);
	CHECK_EQ(blobdb_writer_memory(db), 0);
	for (int i = 0; i < N; i++) {
		data[i] = make_content(LEN);
		REQUIRE(blob_writer_new(s, &w[i]) == 0);
		/* In pieces, as FUSE writes arrive. */
		for (size_t off = 0; off < LEN; off += 128 * 1024) {
			size_t n = LEN - off < 128 * 1024 ? LEN - off : 128 * 1024;
			CHECK_EQ(blob_writer_write(w[i], data[i] + off, n, off), 0);
		}
		CHECK(blobdb_writer_memory(db) <= opts.writer_memory_max);
	}
	/* Each holds 1 MiB (600 KiB doubled up from 4 KiB): four fit. */
	CHECK_EQ(blobdb_writer_memory(db), 4 * MiB);
	CHECK_EQ(staging_files(dir, "b"), N - 4);
	for (int i = 0; i < N; i++) {
		CHECK_EQ(blob_writer_commit(w[i], h), 0);
		CHECK(blob_is(s, data[i], LEN));
	}
	/* A commit gives back the slack: what stays is the content. */
	CHECK_EQ(blobdb_writer_memory(db), 4 * (uint64_t)LEN);
	for (int i = 0; i < N; i++) {
		blob_writer_free(w[i]);
		free(data[i]);
	}
	CHECK_EQ(blobdb_writer_memory(db), 0);
	staging_disk_bytes(dir, "b", &staged);
	CHECK_EQ(staged, 0);
	store_close(s);
	blobdb_close(db);
}

/* A small file written in order (the common case, scripts/bench's small
 * files) is held in memory and costs no staging file; the default budget is
 * WRITER_MEMORY_DEFAULT and shows in the options. */
static void test_small_stays_in_memory(const char *base)
{
	char dir[PATH_MAX];
	struct blobdb_options opts = opts_default();
	uint8_t *data = make_content(100000), h[HS];
	struct blob_writer *w;
	struct blobdb *db;
	struct store *s;

	TU_TEST("a small file written in order stays in memory");
	tu_path(dir, sizeof(dir), "%s/db-smallmem", base);
	s = new_store(dir, &opts, "m", &db);
	REQUIRE(blob_writer_new(s, &w) == 0);
	CHECK_EQ(blob_writer_write(w, data, 60000, 0), 0);
	CHECK_EQ(blob_writer_write(w, data + 60000, 40000, 60000), 0);
	CHECK_EQ(staging_files(dir, "m"), 0);
	CHECK_EQ(blobdb_writer_memory(db), 128 * 1024);
	CHECK_EQ(blob_writer_commit(w, h), 0);
	CHECK(blob_is(s, data, 100000));
	CHECK_EQ(staging_files(dir, "m"), 0);
	blob_writer_free(w);
	CHECK_EQ(blobdb_writer_memory(db), 0);
	store_close(s);
	blobdb_close(db);
	free(data);
}

/* ---- sparse content ---- */

/* Many writers truncated up to just under large_blob_min cost neither memory
 * nor disk; a little written to each, they read back as zeros around it and
 * commit to the right hash. */
static void test_sparse_truncate(const char *base)
{
	enum { N = 300 };
	const uint64_t size = LARGE_BLOB_MIN_DEFAULT - 1;
	char dir[PATH_MAX], tag[32];
	struct blobdb_options opts = opts_default();
	struct blob_writer **w = tu_xmalloc(N * sizeof(*w));
	uint8_t h[HS], want[HS], buf[8192];
	struct blobdb *db;
	struct store *s;
	long long rss0, rss1;
	size_t fds0, staged, got;
	uint64_t disk;

	TU_TEST("writers truncated up cost what they hold, not their size");
	tu_path(dir, sizeof(dir), "%s/db-sparse", base);
	s = new_store(dir, &opts, "s", &db);
	fds0 = open_fds();
	rss0 = status_kib("VmRSS");
	for (int i = 0; i < N; i++) {
		REQUIRE(blob_writer_new(s, &w[i]) == 0);
		CHECK_EQ(blob_writer_truncate(w[i], size), 0);
		CHECK_EQ(blob_writer_size(w[i]), size);
	}
	rss1 = status_kib("VmRSS");
	/* Before: 300 MiB of zeros in memory. */
	CHECK(rss1 - rss0 < 16 * 1024);
	CHECK_EQ(blobdb_writer_memory(db), 0);
	/* One descriptor each, nothing else. */
	CHECK_EQ(open_fds(), fds0 + N);
	disk = staging_disk_bytes(dir, "s", &staged);
	CHECK_EQ(staged, N);
	CHECK(disk < N * UINT64_C(16384));
	fprintf(stderr, "  %d writers of %" PRIu64 " bytes: RSS +%lld KiB, %zu fds, staging "
		"files %" PRIu64 " bytes on disk\n", N, size, rss1 - rss0, open_fds() - fds0, disk);

	for (int i = 0; i < N; i++) {
		int n = snprintf(tag, sizeof(tag), "file %d", i % 7);
		uint64_t at = (uint64_t)(i % 3) * 300000;
		CHECK_EQ(blob_writer_write(w[i], tag, (size_t)n, at), 0);
		if (i % 50 == 0) {
			/* Zeros around the tag, the tag itself. */
			CHECK_EQ(blob_writer_read(w[i], buf, sizeof(buf), size - sizeof(buf), &got), 0);
			CHECK_EQ(got, sizeof(buf));
			CHECK(buf[0] == 0 && !memcmp(buf, buf + 1, sizeof(buf) - 1));
			CHECK_EQ(blob_writer_read(w[i], buf, (size_t)n + 2, at, &got), 0);
			CHECK_MEM(buf, tag, (size_t)n);
		}
		sparse_hash(size, tag, (size_t)n, at, want);
		int r = blob_writer_commit(w[i], h);
		CHECK(r == 0 || r == -EEXIST);
		CHECK_MEM(h, want, HS);
	}
	CHECK_EQ(blobdb_writer_memory(db), 0);
	for (int i = 0; i < N; i++)
		blob_writer_free(w[i]);
	CHECK(open_fds() <= fds0 + 1); /* the store's active pack */
	staging_disk_bytes(dir, "s", &staged);
	CHECK_EQ(staged, 0);
	store_close(s);
	blobdb_close(db);
	/* Reopened: the blobs are there (7 tags at 3 offsets). */
	db = db_open(dir, &opts);
	s = st_open(db, "s");
	CHECK_EQ(blob_count(s), 7 * 3);
	store_close(s);
	blobdb_close(db);
	free(w);
}

/* A write far past the end and a truncate up of a writer that holds
 * content: both spill, the hole stays a hole on disk (staging file, then
 * the large blob's pack), and hashing the committed blob reads it in
 * bounded pieces: the peak RSS does not grow with its size. */
static void test_sparse_large(const char *base)
{
	const uint64_t far = 256 * MiB;
	char dir[PATH_MAX], path[PATH_MAX];
	struct blobdb_options opts = opts_default();
	uint8_t h[HS], want[HS], buf[4096];
	struct blob_writer *w;
	struct blob_reader *r;
	struct record_info rec;
	struct blobdb *db;
	struct store *s;
	struct stat st;
	uint32_t pack_id;
	long long peak0, peak1;
	size_t staged, got;
	uint64_t disk;

	TU_TEST("a large sparse file: a hole on disk, hashed in bounded memory");
	tu_path(dir, sizeof(dir), "%s/db-sparse-large", base);
	s = new_store(dir, &opts, "l", &db);
	REQUIRE(blob_writer_new(s, &w) == 0);
	CHECK_EQ(blob_writer_write(w, "head", 4, 0), 0);
	CHECK_EQ(staging_files(dir, "l"), 0); /* in memory so far */
	CHECK_EQ(blob_writer_write(w, "tail", 4, far), 0);
	disk = staging_disk_bytes(dir, "l", &staged);
	CHECK_EQ(staged, 1);
	CHECK(disk < 65536);
	CHECK_EQ(blobdb_writer_memory(db), 0);
	CHECK_EQ(blob_writer_read(w, buf, sizeof(buf), far / 2, &got), 0);
	CHECK(got == sizeof(buf) && buf[0] == 0 && !memcmp(buf, buf + 1, sizeof(buf) - 1));

	/* Its hash: "head", zeros, "tail". */
	{
		struct hasher *hh;
		static uint8_t zeros[1 << 16];
		uint64_t left = far - 4;
		REQUIRE(hasher_new(&hh) == 0);
		REQUIRE(hasher_update(hh, "head", 4) == 0);
		while (left) {
			size_t n = left < sizeof(zeros) ? (size_t)left : sizeof(zeros);
			REQUIRE(hasher_update(hh, zeros, n) == 0);
			left -= n;
		}
		REQUIRE(hasher_update(hh, "tail", 4) == 0);
		REQUIRE(hasher_final(hh, want) == 0);
		hasher_free(hh);
	}
	reset_peak();
	peak0 = status_kib("VmHWM");
	CHECK_EQ(blob_writer_commit(w, h), 0);
	peak1 = status_kib("VmHWM");
	CHECK_MEM(h, want, HS);
	fprintf(stderr, "  commit of a %" PRIu64 "-byte sparse file: peak RSS +%lld KiB\n",
		far + 4, peak1 - peak0);
	CHECK(peak1 - peak0 < 16 * 1024);
	/* The pack is sparse too. */
	REQUIRE(find_record(dir, "l", h, &pack_id, &rec));
	path_of_pack(dir, "l", pack_id, path);
	REQUIRE(stat(path, &st) == 0);
	CHECK((uint64_t)st.st_size > far);
	CHECK((uint64_t)st.st_blocks * 512 < 4 * MiB);
	REQUIRE(blob_open(s, h, &r) == 0);
	CHECK_EQ(blob_read(r, buf, 4, far, &got), 0);
	CHECK(got == 4 && !memcmp(buf, "tail", 4));
	CHECK_EQ(blob_read(r, buf, sizeof(buf), far / 3, &got), 0);
	CHECK(got == sizeof(buf) && buf[0] == 0 && !memcmp(buf, buf + 1, sizeof(buf) - 1));
	blob_close(r);

	/* Written again after the commit: the pack is copied back into a
	 * staging file, sparse. */
	CHECK_EQ(blob_writer_write(w, "HEAD", 4, 0), 0);
	disk = staging_disk_bytes(dir, "l", &staged);
	CHECK_EQ(staged, 1);
	CHECK(disk < 4 * MiB);
	CHECK_EQ(blob_writer_read(w, buf, 8, far - 4, &got), 0);
	CHECK(got == 8 && !memcmp(buf, "\0\0\0\0tail", 8));
	blob_writer_free(w);

	/* Truncated up after content was written in memory. */
	REQUIRE(blob_writer_new(s, &w) == 0);
	CHECK_EQ(blob_writer_write(w, "0123456789", 10, 0), 0);
	CHECK_EQ(blob_writer_truncate(w, 5), 0);
	CHECK_EQ(blob_writer_truncate(w, 3 * MiB), 0);
	CHECK_EQ(blobdb_writer_memory(db), 0);
	CHECK_EQ(blob_writer_read(w, buf, 16, 0, &got), 0);
	CHECK(got == 16 && !memcmp(buf, "01234\0\0\0\0\0\0\0\0\0\0\0", 16));
	sparse_hash(3 * MiB, "01234", 5, 0, want);
	CHECK_EQ(blob_writer_commit(w, h), 0);
	CHECK_MEM(h, want, HS);
	blob_writer_free(w);
	store_close(s);
	CHECK(verify_packs(dir, "l"));
	blobdb_close(db);
}

/* ---- when a spill cannot happen ---- */

static int openat_errno; /* 0: staging files open normally */

static int faulty_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	if (openat_errno && strstr(path, "staging-")) {
		errno = openat_errno;
		return -1;
	}
	return openat(dirfd, path, flags, mode);
}

/* At the budget a writer must spill; when its staging file cannot be made
 * the write fails (ENOSPC for a full disk, ENFILE when the process is out
 * of descriptors), that writer is never saved, and the others go on. */
static void test_spill_fails(const char *base)
{
	char dir[PATH_MAX];
	struct blobdb_options opts = opts_default();
	struct io_ops io = *io_system();
	uint8_t *data = make_content(300000), h[HS];
	struct blob_writer *a, *b, *c;
	struct blobdb *db;
	struct store *s;

	TU_TEST("a spill that cannot happen: ENOSPC, ENFILE");
	io.openat = faulty_openat;
	opts.io = &io;
	opts.writer_memory_max = 256 * 1024;
	tu_path(dir, sizeof(dir), "%s/db-spillfail", base);
	s = new_store(dir, &opts, "f", &db);
	REQUIRE(blob_writer_new(s, &a) == 0);
	REQUIRE(blob_writer_new(s, &b) == 0);
	REQUIRE(blob_writer_new(s, &c) == 0);
	CHECK_EQ(blob_writer_write(a, data, 200000, 0), 0); /* 256 KiB charged */
	openat_errno = ENOSPC;
	CHECK_EQ(blob_writer_write(b, data, 1000, 0), -ENOSPC);
	CHECK_EQ(blob_writer_commit(b, h), -ENOSPC); /* never saved */
	openat_errno = EMFILE;
	CHECK_EQ(blob_writer_truncate(c, 5000), -ENFILE);
	CHECK_EQ(blob_writer_commit(c, h), -ENFILE);
	CHECK_EQ(blobdb_writer_memory(db), 256 * 1024);
	/* a is fine, and once it is gone another writer fits in memory. */
	CHECK_EQ(blob_writer_commit(a, h), 0);
	CHECK(blob_is(s, data, 200000));
	blob_writer_free(a);
	blob_writer_free(b);
	blob_writer_free(c);
	CHECK_EQ(blobdb_writer_memory(db), 0);
	REQUIRE(blob_writer_new(s, &a) == 0);
	CHECK_EQ(blob_writer_write(a, data + 1, 1000, 0), 0);
	CHECK_EQ(blob_writer_commit(a, h), 0);
	CHECK(blob_is(s, data + 1, 1000));
	blob_writer_free(a);
	openat_errno = 0;
	store_close(s);
	blobdb_close(db);
	free(data);
}

/* ---- the memory backend ---- */

static uint64_t memory_free_bytes(struct blobdb *db)
{
	struct statvfs st;

	REQUIRE(blobdb_statfs(db, &st) == 0);
	return (uint64_t)st.f_bfree * st.f_frsize;
}

/* A memory writer truncated up allocates its size, charged to memory_max
 * before it is allocated: at the budget the truncate fails with ENOSPC
 * (beyond memory_max itself, EFBIG), never a crash, and the charge comes
 * back at free. */
static void test_memory_truncate(const char *base)
{
	struct blobdb_options opts = opts_default();
	struct blob_writer *a, *b;
	struct blobdb *db;
	struct store *s;
	uint8_t h[HS], want[HS];
	uint64_t free0;

	(void)base;
	TU_TEST("memory backend: truncate up is charged first, or refused");
	opts.memory_max = 8 * MiB;
	REQUIRE(blobdb_open(MEMORY_LOCATION, &opts, &db) == 0);
	REQUIRE(store_create(db, "m") == 0);
	s = st_open(db, "m");
	free0 = memory_free_bytes(db);
	REQUIRE(blob_writer_new(s, &a) == 0);
	REQUIRE(blob_writer_new(s, &b) == 0);
	CHECK_EQ(blob_writer_truncate(a, 5 * MiB), 0);
	CHECK(free0 - memory_free_bytes(db) >= 5 * MiB);
	CHECK_EQ(blob_writer_truncate(b, 5 * MiB), -ENOSPC);
	CHECK_EQ(blob_writer_write(b, "x", 1, 4 * MiB), -ENOSPC);
	CHECK_EQ(blob_writer_truncate(a, UINT64_C(1) << 40), -EFBIG); /* a is poisoned now */
	blob_writer_free(b);
	REQUIRE(blob_writer_new(s, &b) == 0);
	CHECK_EQ(blob_writer_truncate(b, UINT64_C(1) << 40), -EFBIG);
	CHECK_EQ(blob_writer_write(b, "x", 1, UINT64_C(1) << 50), -EFBIG);
	blob_writer_free(b);
	REQUIRE(blob_writer_new(s, &b) == 0);
	CHECK_EQ(blob_writer_write(b, "tag", 3, 1000), 0);
	CHECK_EQ(blob_writer_truncate(b, 2 * MiB), 0);
	sparse_hash(2 * MiB, "tag", 3, 1000, want);
	CHECK_EQ(blob_writer_commit(b, h), 0);
	CHECK_MEM(h, want, HS);
	blob_writer_free(a);
	blob_writer_free(b);
	CHECK_EQ(blob_delete(s, h), 0);
	CHECK_EQ(memory_free_bytes(db), free0);
	store_close(s);
	blobdb_close(db);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_budget_spill },
		{ .once = test_small_stays_in_memory },
		{ .once = test_sparse_truncate },
		{ .once = test_sparse_large },
		{ .once = test_spill_fails },
		{ .once = test_memory_truncate },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
