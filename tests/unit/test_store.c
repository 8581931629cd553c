/*
 * test_store.c - the blob database through its public API (store.h):
 * opening and locking a data directory, store names, listing and
 * destruction, saving / reading / listing / deleting blobs, readers that
 * outlive a delete, incoming-blob writers (random offsets, sparse writes,
 * truncation, commits), persistence across reopen against a model, stale
 * staging files, torn pack tails, verified reads of damaged packs, online and
 * offline compaction (also racing with a delete), the min_free reserve,
 * writes that fail (through the io table), and concurrent use from threads
 * with and without the flusher thread. After most of them every pack of the
 * store is scanned and every record verified (verify_packs).
 *
 * Cases that can crash or hang the process run in a child process
 * (TU_RUN_CHILD) so that they are reported as failures.
 *
 * Most tests run twice: with the default options, and with small
 * large_blob_min / pack_size_max so that blobs get packs of their own
 * (written in place) and a store spreads over several packs.
 */
#include <dirent.h>
#include <pthread.h>
#include <sys/statvfs.h>

#include "crc32c.h"
#include "hash.h"
#include "io.h"
#include "pack.h"
#include "store.h"
#include "testutil.h"

#define HS BLOBFS_HASH_SIZE

/* Under AddressSanitizer an absurd allocation aborts the process by default;
 * make it fail as it does without the sanitizer (NULL), and quickly, so that
 * what the code does about it is what gets tested. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=4096";
}

static struct blobdb_options opts_default(void)
{
	struct blobdb_options o;

	blobdb_options_default(&o);
	return o;
}

static struct blobdb_options opts_small(void)
{
	struct blobdb_options o;

	blobdb_options_default(&o);
	o.large_blob_min = 4096;
	o.pack_size_max = 64 * 1024;
	return o;
}

static const char *opts_label(const struct blobdb_options *o)
{
	return o->large_blob_min == LARGE_BLOB_MIN_DEFAULT ? "default options" :
							     "small packs, large_blob_min 4096";
}

/* ---- helpers ---- */

static struct blobdb *db_open(const char *dir, const struct blobdb_options *opts)
{
	struct blobdb *db = (struct blobdb *)1;
	int r = blobdb_open(dir, opts, &db);

	if (!CHECK_EQ(r, 0) || !db) {
		fprintf(stderr, "blobdb_open(%s): %d\n", dir, r);
		exit(tu_finish());
	}
	return db;
}

static struct store *st_open(struct blobdb *db, const char *name)
{
	struct store *s = NULL;
	int r = store_open(db, name, &s);

	if (!CHECK_EQ(r, 0) || !s) {
		fprintf(stderr, "store_open(%s): %d\n", name, r);
		exit(tu_finish());
	}
	return s;
}

static void sha(const void *data, size_t len, uint8_t out[HS])
{
	REQUIRE(hash_buffer(data, len, out) == 0);
}

static const char *hexs(const uint8_t *hash)
{
	static char buf[4][HASH_HEX_SIZE + 1];
	static int next;
	char *out = buf[next++ % 4];

	hash_to_hex(hash, out);
	return out;
}

/* Reads a whole blob through a reader in random-sized pieces, checking that
 * reads are short only at the end. Returns a malloc'd buffer or NULL (with
 * *err set). */
static uint8_t *read_blob(struct store *s, const uint8_t *hash, uint64_t *len, int *err)
{
	struct blob_reader *r = NULL;
	uint8_t *buf;
	uint64_t off = 0;
	size_t got;

	*err = blob_open(s, hash, &r);
	if (*err)
		return NULL;
	*len = blob_reader_length(r);
	buf = tu_xmalloc((size_t)*len);
	while (off < *len) {
		size_t want = 1 + (size_t)tu_rand_below(tu_rand_below(4) ? 70000 : 300);
		size_t expect = *len - off < want ? (size_t)(*len - off) : want;
		*err = blob_read(r, buf + off, want, off, &got);
		if (*err || !CHECK_EQ(got, expect)) {
			if (!*err)
				*err = -EIO;
			free(buf);
			blob_close(r);
			return NULL;
		}
		off += got;
	}
	/* At and past the end: nothing. */
	got = 12345;
	CHECK_EQ(blob_read(r, buf, 10, *len, &got), 0);
	CHECK_EQ(got, 0);
	got = 12345;
	CHECK_EQ(blob_read(r, buf, 10, *len + 1000, &got), 0);
	CHECK_EQ(got, 0);
	blob_close(r);
	return buf;
}

/* The blob with this content is in the store, whole and exact. */
static bool blob_is(struct store *s, const void *data, size_t len)
{
	uint8_t hash[HS];
	uint64_t length = UINT64_MAX, got_len = 0;
	uint8_t *got;
	int err = 0;
	bool ok = true;

	sha(data, len, hash);
	ok &= CHECK_EQ(blob_info(s, hash, &length), 0);
	ok &= CHECK_EQ(length, len);
	CHECK_EQ(blob_info(s, hash, NULL), 0);
	got = read_blob(s, hash, &got_len, &err);
	ok &= CHECK_EQ(err, 0);
	if (got) {
		ok &= CHECK_EQ(got_len, len);
		if (got_len == len)
			ok &= CHECK_MEM(got, data, len);
	}
	free(got);
	if (!ok)
		fprintf(stderr, "  blob %s (%zu bytes) in store %s\n", hexs(hash), len, store_name(s));
	return ok;
}

static bool blob_absent(struct store *s, const uint8_t *hash)
{
	struct blob_reader *r = (struct blob_reader *)1;
	uint64_t length;
	bool ok = true;

	ok &= CHECK_EQ(blob_info(s, hash, &length), -ENOENT);
	ok &= CHECK_EQ(blob_open(s, hash, &r), -ENOENT);
	ok &= CHECK(r == NULL);
	if (!ok)
		fprintf(stderr, "  blob %s should be absent from store %s\n", hexs(hash), store_name(s));
	return ok;
}

struct hashlist {
	uint8_t (*h)[HS];
	uint64_t *len;
	size_t n, cap;
	size_t stop_after; /* 0: never */
};

static int collect_hash(const uint8_t hash[HS], uint64_t length, void *arg)
{
	struct hashlist *l = arg;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->h = realloc(l->h, l->cap * HS);
		l->len = realloc(l->len, l->cap * sizeof(*l->len));
		REQUIRE(l->h && l->len);
	}
	memcpy(l->h[l->n], hash, HS);
	l->len[l->n++] = length;
	return l->stop_after && l->n == l->stop_after ? 77 : 0;
}

static void hashlist_free(struct hashlist *l)
{
	free(l->h);
	free(l->len);
	memset(l, 0, sizeof(*l));
}

static int cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, HS);
}

struct namelist {
	char **names;
	size_t n, cap;
	size_t stop_after;
};

static int collect_name(const char *name, void *arg)
{
	struct namelist *l = arg;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->names = realloc(l->names, l->cap * sizeof(*l->names));
		REQUIRE(l->names);
	}
	l->names[l->n++] = strdup(name);
	return l->stop_after && l->n == l->stop_after ? 55 : 0;
}

static void namelist_free(struct namelist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Pack ids in a store directory: how many, and the largest. */
static size_t store_packs(const char *dbdir, const char *store, uint32_t *max_id,
			  size_t *staging)
{
	char path[PATH_MAX];
	struct dirent *d;
	size_t n = 0;
	DIR *dir;

	tu_path(path, sizeof(path), "%s/stores/%s", dbdir, store);
	dir = opendir(path);
	REQUIRE(dir);
	*max_id = 0;
	if (staging)
		*staging = 0;
	while ((d = readdir(dir))) {
		uint32_t id;
		if (pack_parse_name(d->d_name, &id)) {
			if (n == 0 || id > *max_id)
				*max_id = id;
			n++;
		} else if (staging && !strncmp(d->d_name, "staging-", 8)) {
			(*staging)++;
		}
	}
	closedir(dir);
	return n;
}

static void pack_path(const char *dbdir, const char *store, uint32_t id, char out[PATH_MAX])
{
	char name[PACK_NAME_SIZE];

	pack_name(id, name);
	tu_path(out, PATH_MAX, "%s/stores/%s/%s", dbdir, store, name);
}

/* Every pack of a store scans cleanly (no damage, no torn tail) and every
 * blob record in it verifies: chunk checksums and SHA-256. */
static bool verify_packs(const char *dbdir, const char *store)
{
	char path[PATH_MAX];
	struct hasher *hasher;
	struct dirent *d;
	long records = 0, bad = 0;
	DIR *dir;

	tu_path(path, sizeof(path), "%s/stores/%s", dbdir, store);
	dir = opendir(path);
	REQUIRE(dir);
	REQUIRE(hasher_new(&hasher) == 0);
	while ((d = readdir(dir))) {
		struct pack_scan scan;
		struct record_info rec;
		uint32_t id;
		int fd, r;
		if (!pack_parse_name(d->d_name, &id))
			continue;
		fd = openat(dirfd(dir), d->d_name, O_RDONLY | O_CLOEXEC);
		REQUIRE(fd >= 0);
		if (!CHECK_EQ(pack_scan_open(io_system(), &scan, fd, id), 0)) {
			fprintf(stderr, "  %s/%s: bad pack header\n", path, d->d_name);
			bad++;
			close(fd);
			continue;
		}
		while ((r = pack_scan_next(&scan, &rec)) != 0) {
			const char *problem = NULL;
			if (r < 0) {
				fprintf(stderr, "  %s/%s: damage at [%" PRIu64 ", %" PRIu64 "): %d\n", path,
					d->d_name, scan.bad_start, scan.bad_end, r);
				bad++;
				if (r != -EBADMSG)
					break;
				continue;
			}
			records++;
			if (rec.kind == RECORD_BLOB && pack_verify_record(io_system(), fd, &rec, hasher, &problem) != 0) {
				fprintf(stderr, "  %s/%s: record at %" PRIu64 ": %s\n", path, d->d_name,
					rec.offset, problem ? problem : "I/O error");
				bad++;
			}
		}
		close(fd);
	}
	closedir(dir);
	hasher_free(hasher);
	return CHECK_EQ(bad, 0);
}

static size_t staging_files(const char *dbdir, const char *store)
{
	uint32_t id;
	size_t staging;

	store_packs(dbdir, store, &id, &staging);
	return staging;
}

/* Distinct random contents: the first bytes carry a serial number. */
static uint8_t *make_content(size_t len)
{
	static uint32_t serial;
	uint8_t *p = tu_random_buffer(len);

	serial++;
	memcpy(p, &serial, len < 4 ? len : 4);
	return p;
}

/* ---- opening and locking ---- */

static void test_open_and_lock(const char *base)
{
	char dir[PATH_MAX], sub[PATH_MAX];
	struct blobdb *db, *db2 = (struct blobdb *)1;
	struct statvfs sv;
	struct stat st;
	char *real;

	TU_TEST("open creates the data directory and locks it");
	tu_path(dir, sizeof(dir), "%s/db-lock", base);
	db = db_open(dir, NULL);
	CHECK(stat(dir, &st) == 0 && S_ISDIR(st.st_mode));
	CHECK_EQ(st.st_mode & 0777, 0700);
	tu_path(sub, sizeof(sub), "%s/stores", dir);
	CHECK(stat(sub, &st) == 0 && S_ISDIR(st.st_mode));
	tu_path(sub, sizeof(sub), "%s/lock", dir);
	CHECK(tu_exists(sub));
	CHECK_EQ(blobdb_lock_holder(dir), getpid());
	real = realpath(dir, NULL);
	CHECK(real && !strcmp(blobdb_path(db), real));
	free(real);
	CHECK_EQ(store_count(db), 0);
	CHECK_EQ(blobdb_sync(db), 0);
	CHECK_EQ(blobdb_statfs(db, &sv), 0);
	CHECK(sv.f_bsize > 0);

	/* A second open while the first is open: busy, and nothing returned. */
	CHECK_EQ(blobdb_open(dir, NULL, &db2), -EBUSY);
	CHECK(db2 == NULL);
	/* The failed open did not disturb the first. */
	CHECK_EQ(store_create(db, "still-works"), 0);
	blobdb_close(db);

	/* Closed: it opens again, and what was made is there. */
	db = db_open(dir, NULL);
	CHECK_EQ(store_count(db), 1);
	db2 = (struct blobdb *)1;
	CHECK_EQ(blobdb_open(dir, NULL, &db2), -EBUSY);
	CHECK(db2 == NULL);
	blobdb_close(db);
	blobdb_close(NULL);

	TU_TEST("open failures");
	tu_path(dir, sizeof(dir), "%s/no/such/parent", base);
	db2 = (struct blobdb *)1;
	CHECK(blobdb_open(dir, NULL, &db2) < 0);
	CHECK(db2 == NULL);
	tu_path(dir, sizeof(dir), "%s/a-file", base);
	REQUIRE(tu_write_file(dir, "x", 1) == 0);
	db2 = (struct blobdb *)1;
	CHECK(blobdb_open(dir, NULL, &db2) < 0);
	CHECK(db2 == NULL);
	unlink(dir);
}

/* ---- stores ---- */

static void test_store_names(const char *base)
{
	char dir[PATH_MAX], long_name[300];
	struct blobdb *db;
	struct store *s;
	struct namelist l = { 0 };
	const char *names[] = {
		"b", "a", "ab", "B", "Z", "_", "a b", "a.b", "~", "zz", "0", "10", "9", "a-",
		"\xc3\xa9t\xc3\xa9", "\x01" "ctl", "a..", "-", "store with spaces", NULL, /* 255 a's */
	};
	const size_t n_names = sizeof(names) / sizeof(names[0]);
	char *sorted[32];

	TU_TEST("store names");
	tu_path(dir, sizeof(dir), "%s/db-names", base);
	db = db_open(dir, NULL);
	CHECK_EQ(store_create(db, "a"), 0);
	CHECK_EQ(store_create(db, "a"), -EEXIST);
	CHECK_EQ(store_create(db, ""), -EINVAL);
	CHECK_EQ(store_create(db, ".x"), -EINVAL);
	CHECK_EQ(store_create(db, "."), -EINVAL);
	CHECK_EQ(store_create(db, ".."), -EINVAL);
	CHECK_EQ(store_create(db, "a/b"), -EINVAL);
	CHECK_EQ(store_create(db, "/"), -EINVAL);
	CHECK_EQ(store_create(db, "abc/"), -EINVAL);
	CHECK_EQ(store_create(db, "/abc"), -EINVAL);
	memset(long_name, 'n', 256);
	long_name[256] = '\0';
	CHECK_EQ(store_create(db, long_name), -EINVAL);
	long_name[255] = '\0';
	CHECK_EQ(store_create(db, long_name), 0);
	CHECK_EQ(store_create(db, long_name), -EEXIST);
	CHECK_EQ(store_name_check("a\0b", 3), -EINVAL);
	CHECK_EQ(store_name_check("ab", 2), 0);
	CHECK_EQ(store_name_check("ab", 0), -EINVAL);
	CHECK_EQ(store_count(db), 2);
	s = st_open(db, long_name);
	CHECK(!strcmp(store_name(s), long_name));
	CHECK_EQ(blob_count(s), 0);
	store_close(s);
	s = (struct store *)1;
	CHECK_EQ(store_open(db, "nope", &s), -ENOENT);
	CHECK(s == NULL);
	CHECK_EQ(store_open(db, "A", &s), -ENOENT);
	CHECK_EQ(store_destroy(db, long_name, true), 0);
	CHECK_EQ(store_destroy(db, "a", true), 0);
	CHECK_EQ(store_count(db), 0);

	TU_TEST("store_list: byte order, resumable");
	memset(long_name, 'a', 255);
	long_name[255] = '\0';
	names[n_names - 1] = long_name;
	/* Create in a shuffled order. */
	{
		size_t order[32];
		for (size_t i = 0; i < n_names; i++)
			order[i] = i;
		for (size_t i = n_names; i > 1; i--) {
			size_t j = (size_t)tu_rand_below(i), t = order[i - 1];
			order[i - 1] = order[j];
			order[j] = t;
		}
		for (size_t i = 0; i < n_names; i++)
			if (!CHECK_EQ(store_create(db, names[order[i]]), 0))
				fprintf(stderr, "  store_create(\"%s\")\n", names[order[i]]);
	}
	for (size_t i = 0; i < n_names; i++)
		sorted[i] = (char *)names[i];
	qsort(sorted, n_names, sizeof(sorted[0]), cmp_str);
	CHECK_EQ(store_count(db), n_names);
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 0);
	CHECK_EQ(l.n, n_names);
	for (size_t i = 0; i < l.n && i < n_names; i++)
		if (!CHECK(!strcmp(l.names[i], sorted[i])))
			fprintf(stderr, "  position %zu: \"%s\", want \"%s\"\n", i, l.names[i], sorted[i]);
	namelist_free(&l);
	/* Resuming after each name gives the rest. */
	for (size_t k = 0; k < n_names; k++) {
		CHECK_EQ(store_list(db, sorted[k], collect_name, &l), 0);
		if (CHECK_EQ(l.n, n_names - k - 1))
			for (size_t i = 0; i < l.n; i++)
				CHECK(!strcmp(l.names[i], sorted[k + 1 + i]));
		namelist_free(&l);
	}
	/* Resuming after names that are not stores. */
	{
		const char *absent[] = { "aa", "\x01", "\xff", "zzz", "A", "a c", "1" };
		for (size_t k = 0; k < sizeof(absent) / sizeof(absent[0]); k++) {
			size_t first = 0;
			while (first < n_names && strcmp(sorted[first], absent[k]) <= 0)
				first++;
			CHECK_EQ(store_list(db, absent[k], collect_name, &l), 0);
			if (CHECK_EQ(l.n, n_names - first))
				for (size_t i = 0; i < l.n; i++)
					CHECK(!strcmp(l.names[i], sorted[first + i]));
			namelist_free(&l);
		}
	}
	/* Stopping early returns the callback's value. */
	l.stop_after = 3;
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 55);
	CHECK_EQ(l.n, 3);
	namelist_free(&l);
	blobdb_close(db);

	/* The same after reopening. */
	db = db_open(dir, NULL);
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 0);
	CHECK_EQ(l.n, n_names);
	for (size_t i = 0; i < l.n && i < n_names; i++)
		CHECK(!strcmp(l.names[i], sorted[i]));
	namelist_free(&l);
	blobdb_close(db);
}

static void test_store_destroy(const char *base)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct blobdb *db;
	struct store *s, *held;
	struct blob_reader *reader = NULL;
	struct blob_writer *writer = NULL;
	uint8_t hash[HS], hash2[HS];
	uint8_t *big = make_content(200000);
	struct namelist l = { 0 };
	int r;

	TU_TEST("store_destroy");
	tu_path(dir, sizeof(dir), "%s/db-destroy", base);
	db = db_open(dir, NULL);
	CHECK_EQ(store_destroy(db, "nope", false), -ENOENT);
	CHECK_EQ(store_destroy(db, "nope", true), -ENOENT);
	CHECK_EQ(store_destroy(db, "", false), -EINVAL);
	CHECK_EQ(store_destroy(db, "a/b", false), -EINVAL);
	CHECK_EQ(store_create(db, "s"), 0);
	CHECK_EQ(store_create(db, "keep"), 0);
	s = st_open(db, "s");
	CHECK_EQ(blob_save(s, big, 200000, hash), 0);
	CHECK_EQ(store_destroy(db, "s", true), -ENOTEMPTY);
	CHECK(blob_is(s, big, 200000));
	CHECK_EQ(blob_count(s), 1);

	/* Destroy with a handle, a reader and a writer still open. */
	held = s;
	REQUIRE(blob_open(held, hash, &reader) == 0);
	REQUIRE(blob_writer_new(held, &writer) == 0);
	CHECK_EQ(blob_writer_write(writer, "pending", 7, 0), 0);
	CHECK_EQ(store_destroy(db, "s", false), 0);
	CHECK_EQ(store_destroy(db, "s", false), -ENOENT);
	s = (struct store *)1;
	CHECK_EQ(store_open(db, "s", &s), -ENOENT);
	CHECK(s == NULL);
	CHECK_EQ(store_count(db), 1);
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 0);
	CHECK(l.n == 1 && !strcmp(l.names[0], "keep"));
	namelist_free(&l);
	tu_path(path, sizeof(path), "%s/stores/s", dir);
	CHECK(!tu_exists(path));
	/* The old handle sees an empty, dead store. */
	CHECK_EQ(blob_info(held, hash, NULL), -ENOENT);
	CHECK_EQ(blob_count(held), 0);
	CHECK_EQ(blob_delete(held, hash), -ENOENT);
	CHECK_EQ(blob_save(held, "x", 1, hash2), -ENOENT);
	{
		struct hashlist hl = { 0 };
		CHECK_EQ(blob_list(held, NULL, collect_hash, &hl), 0);
		CHECK_EQ(hl.n, 0);
		hashlist_free(&hl);
	}
	/* The reader opened before still has the bytes. */
	{
		uint8_t *buf = tu_xmalloc(200000);
		size_t got = 0;
		CHECK_EQ(blob_read(reader, buf, 200000, 0, &got), 0);
		CHECK_EQ(got, 200000);
		CHECK_MEM(buf, big, 200000);
		free(buf);
	}
	blob_close(reader);
	/* The writer cannot save into a destroyed store. */
	r = blob_writer_commit(writer, hash2);
	CHECK(r < 0);
	blob_writer_free(writer);
	store_close(held);

	/* Recreated, the name is a fresh empty store. */
	CHECK_EQ(store_create(db, "s"), 0);
	s = st_open(db, "s");
	CHECK_EQ(blob_count(s), 0);
	CHECK(blob_absent(s, hash));
	store_close(s);
	/* An empty store goes with only_if_empty. */
	CHECK_EQ(store_create(db, "empty"), 0);
	CHECK_EQ(store_destroy(db, "empty", true), 0);
	blobdb_close(db);

	/* A destroy interrupted after its rename: the trash is emptied at open. */
	tu_path(path, sizeof(path), "%s/trash/store-1-1", dir);
	REQUIRE(mkdir(path, 0700) == 0);
	tu_path(path, sizeof(path), "%s/trash/store-1-1/pack-00000000.pack", dir);
	REQUIRE(tu_write_file(path, "leftover", 8) == 0);
	db = db_open(dir, NULL);
	CHECK(!tu_exists(path));
	blobdb_close(db);

	/* Nothing is left in the trash, and reopening agrees. */
	tu_path(path, sizeof(path), "%s/trash", dir);
	{
		DIR *d = opendir(path);
		struct dirent *e;
		int entries = 0;
		REQUIRE(d);
		while ((e = readdir(d)))
			entries += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
		closedir(d);
		CHECK_EQ(entries, 0);
	}
	db = db_open(dir, NULL);
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 0);
	CHECK(l.n == 2 && !strcmp(l.names[0], "keep") && !strcmp(l.names[1], "s"));
	namelist_free(&l);
	s = st_open(db, "s");
	CHECK_EQ(blob_count(s), 0);
	CHECK(blob_absent(s, hash));
	store_close(s);
	blobdb_close(db);
	free(big);
}

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
	db = db_open(dir, opts);
	REQUIRE(store_create(db, "b") == 0);
	s = st_open(db, "b");
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
	db = db_open(dir, opts);
	REQUIRE(store_create(db, "r") == 0);
	s = st_open(db, "r");
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

/* ---- writers ---- */

/* A writer next to a model of its content. */
struct wmodel {
	struct blob_writer *w;
	uint8_t *buf;
	size_t size, cap;
};

static void wm_reserve(struct wmodel *m, size_t size)
{
	if (size > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		while (cap < size)
			cap *= 2;
		m->buf = realloc(m->buf, cap);
		REQUIRE(m->buf);
		m->cap = cap;
	}
}

static bool wm_write(struct wmodel *m, uint64_t off, size_t len)
{
	uint8_t *src = tu_random_buffer(len);
	bool ok;

	wm_reserve(m, (size_t)off + len);
	if (off > m->size)
		memset(m->buf + m->size, 0, (size_t)off - m->size);
	ok = CHECK_EQ(blob_writer_write(m->w, src, len, off), 0);
	memcpy(m->buf + off, src, len);
	if (off + len > m->size)
		m->size = (size_t)off + len;
	free(src);
	return ok;
}

static bool wm_truncate(struct wmodel *m, size_t size)
{
	wm_reserve(m, size);
	if (size > m->size)
		memset(m->buf + m->size, 0, size - m->size);
	m->size = size;
	return CHECK_EQ(blob_writer_truncate(m->w, size), 0);
}

static bool wm_check_read(struct wmodel *m, uint64_t off, size_t len)
{
	uint8_t *buf = tu_xmalloc(len);
	size_t got = 999999, expect = off >= m->size ? 0 : m->size - off < len ? m->size - off : len;
	bool ok = true;

	ok &= CHECK_EQ(blob_writer_read(m->w, buf, len, off, &got), 0);
	ok &= CHECK_EQ(got, expect);
	if (ok && got)
		ok &= CHECK_MEM(buf, m->buf + off, got);
	free(buf);
	return ok;
}

/* Commits and checks the result against the model. saved_before says
 * whether the store already had this content (-EEXIST expected). */
static bool wm_commit(struct wmodel *m, struct store *s)
{
	uint8_t want[HS], got[HS];
	uint64_t len;
	bool had, ok = true;
	int r;

	sha(m->buf ? m->buf : (uint8_t *)"", m->size, want);
	had = blob_info(s, want, &len) == 0;
	ok &= CHECK_EQ(blob_writer_size(m->w), m->size);
	memset(got, 0, HS);
	r = blob_writer_commit(m->w, got);
	ok &= CHECK_EQ(r, had ? -EEXIST : 0);
	ok &= CHECK_MEM(got, want, HS);
	ok &= blob_is(s, m->buf ? m->buf : (uint8_t *)"", m->size);
	return ok;
}

static void test_writer_scripted(const char *base, const struct blobdb_options *opts)
{
	char dir[PATH_MAX], label[128];
	struct blobdb *db;
	struct store *s;
	struct wmodel m = { 0 };
	uint8_t hash[HS], hash2[HS], first[HS], first_content[1005];
	size_t before;

	snprintf(label, sizeof(label), "writer: scripted (%s)", opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-writer-%" PRIu64, base, opts->large_blob_min);
	db = db_open(dir, opts);
	REQUIRE(store_create(db, "w") == 0);
	s = st_open(db, "w");

	/* Empty, committed at once: the empty blob. */
	REQUIRE(blob_writer_new(s, &m.w) == 0);
	CHECK_EQ(blob_writer_size(m.w), 0);
	CHECK(wm_check_read(&m, 0, 10));
	CHECK(wm_commit(&m, s));
	/* Commit again without a change: already there. */
	CHECK_EQ(blob_writer_commit(m.w, hash), -EEXIST);
	sha("", 0, hash2);
	CHECK_MEM(hash, hash2, HS);

	/* Small content, sequential. */
	CHECK(wm_write(&m, 0, 5));
	CHECK(wm_write(&m, 5, 1000));
	CHECK(wm_check_read(&m, 0, 2000));
	CHECK(wm_commit(&m, s));
	sha(m.buf, m.size, first);
	REQUIRE(m.size == sizeof(first_content));
	memcpy(first_content, m.buf, m.size);
	CHECK_EQ(blob_writer_commit(m.w, hash), -EEXIST);
	CHECK_MEM(hash, first, HS);
	/* Deleted behind the writer's back, an unchanged commit saves it again. */
	CHECK_EQ(blob_delete(s, first), 0);
	CHECK_EQ(blob_writer_commit(m.w, hash), 0);
	CHECK_MEM(hash, first, HS);
	CHECK(blob_is(s, m.buf, m.size));

	/* Grow past large_blob_min (in small mode) and commit: written in place. */
	CHECK(wm_write(&m, m.size, 70000));
	CHECK(wm_check_read(&m, 500, 70000));
	CHECK(wm_commit(&m, s));
	CHECK(wm_commit(&m, s)); /* unchanged: -EEXIST */
	/* Both versions are there. */
	CHECK_EQ(blob_info(s, first, NULL), 0);
	/* Keep writing after that commit: overwrite in the middle, sparse write
	 * far past the end, read back, commit. */
	CHECK(wm_write(&m, 100, 50));
	CHECK(wm_check_read(&m, 0, 300));
	CHECK(wm_write(&m, m.size + 100000, 10));
	CHECK(wm_check_read(&m, m.size - 100100, 100200));
	CHECK(wm_commit(&m, s));
	/* Truncate down below large_blob_min, then up (zeros), then commit. */
	CHECK(wm_truncate(&m, 3000));
	CHECK(wm_check_read(&m, 0, 5000));
	CHECK(wm_commit(&m, s));
	CHECK(wm_truncate(&m, 9000));
	CHECK(wm_check_read(&m, 2000, 7000));
	CHECK(wm_commit(&m, s));
	CHECK(wm_truncate(&m, 0));
	CHECK(wm_commit(&m, s));
	/* The same content as an earlier commit: -EEXIST, and the right hash. */
	CHECK_EQ(blob_writer_write(m.w, first_content, sizeof(first_content), 0), 0);
	wm_reserve(&m, sizeof(first_content));
	memcpy(m.buf, first_content, sizeof(first_content));
	m.size = sizeof(first_content);
	CHECK_EQ(blob_info(s, first, NULL), 0);
	CHECK_EQ(blob_writer_commit(m.w, hash), -EEXIST);
	CHECK_MEM(hash, first, HS);
	/* Backwards writes (never sequential). */
	CHECK(wm_truncate(&m, 0));
	for (int i = 9; i >= 0; i--)
		CHECK(wm_write(&m, (uint64_t)i * 1000, 1000));
	CHECK(wm_commit(&m, s));
	blob_writer_free(m.w);
	m.w = NULL;

	TU_TEST("writer: commit right after a truncate");
	/* Sequential writes are hashed as they come; a truncate below what was
	 * hashed must not leave the old bytes in the digest. */
	{
		static const size_t cuts[][2] = { { 10000, 4000 }, { 70000, 65536 }, { 70000, 65535 },
						  { 140000, 1 }, { 5000, 0 }, { 3000, 2999 } };
		for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
			REQUIRE(blob_writer_new(s, &m.w) == 0);
			m.size = 0;
			CHECK(wm_write(&m, 0, cuts[k][0] / 2));
			CHECK(wm_write(&m, cuts[k][0] / 2, cuts[k][0] - cuts[k][0] / 2));
			CHECK(wm_truncate(&m, cuts[k][1]));
			if (!CHECK(wm_commit(&m, s)))
				fprintf(stderr, "  %zu bytes cut to %zu\n", cuts[k][0], cuts[k][1]);
			/* And down then up again (zeros), then commit. */
			CHECK(wm_write(&m, m.size, 3000));
			CHECK(wm_truncate(&m, m.size / 3));
			CHECK(wm_truncate(&m, m.size + 7000));
			CHECK(wm_commit(&m, s));
			blob_writer_free(m.w);
			m.w = NULL;
		}
	}

	TU_TEST("writer: content around 1 MiB");
	/* 1 MiB is LARGE_BLOB_MIN_DEFAULT, and about where a writer may move
	 * its content from memory to a file: cross it every way. */
	{
		const size_t MiB = (size_t)1 << 20;
		for (int k = 0; k < 6; k++) {
			REQUIRE(blob_writer_new(s, &m.w) == 0);
			m.size = 0;
			switch (k) {
			case 0: /* small, then truncated far up (zeros) */
				CHECK(wm_write(&m, 0, 100));
				CHECK(wm_truncate(&m, 3 * MiB));
				break;
			case 1: /* grown by truncate inside the limit, then a sparse write */
				CHECK(wm_write(&m, 0, 100));
				CHECK(wm_truncate(&m, 500000));
				CHECK(wm_write(&m, 900000, 10));
				break;
			case 2: /* just under, then across by two bytes */
				CHECK(wm_write(&m, 0, MiB - 1));
				CHECK(wm_write(&m, MiB - 1, 2));
				break;
			case 3: /* a sparse jump far past the limit */
				CHECK(wm_write(&m, 0, 5000));
				CHECK(wm_truncate(&m, 0));
				CHECK(wm_write(&m, 2 * MiB, 7));
				break;
			case 4: /* across, then truncated back under, then written */
				CHECK(wm_write(&m, 0, MiB + 5));
				CHECK(wm_truncate(&m, 1000));
				CHECK(wm_write(&m, 500, 2000));
				break;
			default: /* exactly the limit */
				CHECK(wm_write(&m, 0, MiB / 2));
				CHECK(wm_write(&m, MiB / 2, MiB / 2));
				break;
			}
			CHECK(wm_check_read(&m, 0, m.size + 10));
			CHECK(wm_check_read(&m, m.size / 2, 4096));
			if (!CHECK(wm_commit(&m, s)))
				fprintf(stderr, "  case %d\n", k);
			/* And more writes after the commit. */
			CHECK(wm_write(&m, m.size / 3, 3000));
			CHECK(wm_commit(&m, s));
			blob_writer_free(m.w);
			m.w = NULL;
		}
	}

	TU_TEST("writer: freed without a commit saves nothing");
	before = blob_count(s);
	REQUIRE(blob_writer_new(s, &m.w) == 0);
	m.size = 0;
	CHECK(wm_write(&m, 0, 50000));
	CHECK(wm_write(&m, 1000, 10));
	sha(m.buf, m.size, hash);
	blob_writer_free(m.w);
	m.w = NULL;
	CHECK(blob_absent(s, hash));
	CHECK_EQ(blob_count(s), before);
	CHECK_EQ(staging_files(dir, "w"), 0);
	/* Committed, then changed, then freed: only the committed version. */
	REQUIRE(blob_writer_new(s, &m.w) == 0);
	m.size = 0;
	CHECK(wm_write(&m, 0, 20000));
	CHECK(wm_commit(&m, s));
	sha(m.buf, m.size, hash2);
	CHECK(wm_write(&m, 20000, 5));
	sha(m.buf, m.size, hash);
	blob_writer_free(m.w);
	m.w = NULL;
	CHECK(blob_absent(s, hash));
	CHECK_EQ(blob_info(s, hash2, NULL), 0);
	CHECK_EQ(staging_files(dir, "w"), 0);
	blob_writer_free(NULL);

	TU_TEST("writer: a zero-byte write past the end");
	/* pwrite(2) of zero bytes changes nothing; whatever size the writer then
	 * reports, its commit must succeed and name that content. */
	REQUIRE(blob_writer_new(s, &m.w) == 0);
	m.size = 0;
	CHECK(wm_write(&m, 0, 100));
	CHECK_EQ(blob_writer_write(m.w, "", 0, 5000), 0);
	{
		uint64_t size = blob_writer_size(m.w);
		uint8_t *expect = calloc(1, (size_t)size + 1);
		int r;
		REQUIRE(expect);
		memcpy(expect, m.buf, 100);
		CHECK_EQ(size, 100); /* as pwrite(2) would leave it */
		r = blob_writer_commit(m.w, hash);
		if (!CHECK(r == 0 || r == -EEXIST))
			fprintf(stderr, "  commit after a zero-byte write at 5000 returned %d (%s)\n", r,
				strerror(-r));
		else
			CHECK(blob_is(s, expect, (size_t)size));
		free(expect);
	}
	blob_writer_free(m.w);
	m.w = NULL;

	store_close(s);
	blobdb_close(db);
	free(m.buf);
}

static void test_writer_random(const char *base, const struct blobdb_options *opts)
{
	char dir[PATH_MAX], label[128];
	struct blobdb *db;
	struct store *s;
	struct wmodel m = { 0 };
	size_t limit = opts->large_blob_min < 100000 ? 40000 : 1500000;
	long bad = 0;

	snprintf(label, sizeof(label), "writer: random operations against a model (%s)",
		 opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-wrand-%" PRIu64, base, opts->large_blob_min);
	db = db_open(dir, opts);
	REQUIRE(store_create(db, "w") == 0);
	s = st_open(db, "w");
	for (int round = 0; round < 6 && !bad; round++) {
		REQUIRE(blob_writer_new(s, &m.w) == 0);
		m.size = 0;
		for (int op = 0; op < 120 && !bad; op++) {
			uint64_t what = tu_rand_below(100);
			bool ok = true;
			if (what < 30) { /* sequential */
				size_t len = (size_t)tu_rand_below(limit / 8 + 1);
				if (m.size + len <= limit)
					ok = wm_write(&m, m.size, len);
			} else if (what < 45) { /* overwrite inside */
				if (m.size) {
					uint64_t off = tu_rand_below(m.size);
					size_t len = (size_t)tu_rand_below(m.size - off + 1);
					ok = wm_write(&m, off, len ? len : 1);
				}
			} else if (what < 52) { /* sparse, past the end */
				uint64_t off = m.size + 1 + tu_rand_below(limit / 4);
				size_t len = 1 + (size_t)tu_rand_below(5000);
				if (off + len <= limit)
					ok = wm_write(&m, off, len);
			} else if (what < 60) { /* truncate down */
				ok = wm_truncate(&m, (size_t)tu_rand_below(m.size + 1));
			} else if (what < 65) { /* truncate up */
				size_t size = m.size + (size_t)tu_rand_below(limit / 4);
				if (size <= limit)
					ok = wm_truncate(&m, size);
			} else if (what < 85) { /* read back */
				uint64_t off = tu_rand_below(m.size + 100);
				ok = wm_check_read(&m, off, (size_t)tu_rand_below(limit / 2 + 1));
			} else if (what < 87) { /* save the current content independently */
				uint8_t hash[HS];
				int r = blob_save(s, m.buf ? m.buf : (uint8_t *)"", m.size, hash);
				ok = CHECK(r == 0 || r == -EEXIST);
			} else { /* commit */
				ok = wm_commit(&m, s);
			}
			ok &= CHECK_EQ(blob_writer_size(m.w), m.size);
			if (!ok) {
				fprintf(stderr, "  round %d op %d (kind %" PRIu64 "), size %zu\n", round, op,
					what, m.size);
				bad++;
			}
		}
		if (tu_rand_below(2))
			CHECK(wm_commit(&m, s));
		blob_writer_free(m.w);
		m.w = NULL;
		CHECK_EQ(staging_files(dir, "w"), 0);
		CHECK(verify_packs(dir, "w"));
	}
	store_close(s);
	blobdb_close(db);
	free(m.buf);
}

/* ---- persistence against a model ---- */

#define P_STORES 3
#define P_POOL 70

struct pool_item {
	uint8_t *data;
	size_t len;
	uint8_t hash[HS];
};

struct pmodel {
	struct pool_item pool[P_POOL];
	bool exists[P_STORES];
	bool present[P_STORES][P_POOL];
};

static const char *const p_names[P_STORES] = { "alpha", "beta", "gamma" };

/* Saves through a writer, in shuffled pieces. */
static int save_via_writer(struct store *s, const uint8_t *data, size_t len, uint8_t hash[HS])
{
	struct blob_writer *w;
	size_t pieces = 1 + (size_t)tu_rand_below(6), piece = len / pieces + 1;
	size_t order[8];
	int r;

	r = blob_writer_new(s, &w);
	if (r)
		return r;
	for (size_t i = 0; i < pieces; i++)
		order[i] = i;
	for (size_t i = pieces; i > 1; i--) {
		size_t j = (size_t)tu_rand_below(i), t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
	for (size_t i = 0; i < pieces && r == 0; i++) {
		size_t off = order[i] * piece;
		if (off < len)
			r = blob_writer_write(w, data + off, len - off < piece ? len - off : piece, off);
	}
	if (r == 0)
		r = blob_writer_commit(w, hash);
	blob_writer_free(w);
	return r;
}

static bool verify_model(struct blobdb *db, const struct pmodel *pm, const char *when)
{
	struct namelist nl = { 0 };
	size_t expect_stores = 0, k = 0;
	bool ok = true;

	for (int st = 0; st < P_STORES; st++)
		expect_stores += pm->exists[st];
	ok &= CHECK_EQ(store_list(db, NULL, collect_name, &nl), 0);
	ok &= CHECK_EQ(nl.n, expect_stores);
	for (int st = 0; st < P_STORES; st++) {
		if (!pm->exists[st]) {
			struct store *s = (struct store *)1;
			ok &= CHECK_EQ(store_open(db, p_names[st], &s), -ENOENT);
			continue;
		}
		/* p_names is in byte order. */
		ok &= CHECK(k < nl.n && !strcmp(nl.names[k], p_names[st]));
		k++;
	}
	namelist_free(&nl);
	for (int st = 0; st < P_STORES; st++) {
		struct store *s;
		struct hashlist l = { 0 };
		uint8_t want[P_POOL][HS];
		size_t n = 0;
		if (!pm->exists[st])
			continue;
		s = st_open(db, p_names[st]);
		for (int i = 0; i < P_POOL; i++) {
			if (pm->present[st][i]) {
				memcpy(want[n++], pm->pool[i].hash, HS);
				ok &= blob_is(s, pm->pool[i].data, pm->pool[i].len);
			} else {
				ok &= blob_absent(s, pm->pool[i].hash);
			}
		}
		qsort(want, n, HS, cmp_hash);
		ok &= CHECK_EQ(blob_count(s), n);
		ok &= CHECK_EQ(blob_list(s, NULL, collect_hash, &l), 0);
		if ((ok &= CHECK_EQ(l.n, n)))
			ok &= CHECK_MEM(l.h, want, n * HS);
		hashlist_free(&l);
		store_close(s);
	}
	if (!ok)
		fprintf(stderr, "  model mismatch %s\n", when);
	return ok;
}

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
			struct pool_item *it = &pm->pool[i];
			uint64_t what = tu_rand_below(100);
			struct store *s;
			uint8_t h[HS];
			int r;
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
			if (what < 50) {
				r = blob_save(s, it->data, it->len, h);
				if (!CHECK_EQ(r, pm->present[st][i] ? -EEXIST : 0))
					bad++;
				CHECK_MEM(h, it->hash, HS);
				pm->present[st][i] = true;
			} else if (what < 65) {
				r = save_via_writer(s, it->data, it->len, h);
				if (!CHECK_EQ(r, pm->present[st][i] ? -EEXIST : 0))
					bad++;
				CHECK_MEM(h, it->hash, HS);
				pm->present[st][i] = true;
			} else {
				r = blob_delete(s, it->hash);
				if (!CHECK_EQ(r, pm->present[st][i] ? 0 : -ENOENT))
					bad++;
				pm->present[st][i] = false;
			}
			store_close(s);
		}
		snprintf(when, sizeof(when), "before reopen %d", cycle);
		if (!verify_model(db, pm, when))
			bad++;
		for (int st = 0; st < P_STORES; st++) {
			if (pm->exists[st]) {
				size_t n = store_packs(dir, p_names[st], &max_id, NULL);
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

/* The last record of a pack file (scanned with the pack API). */
static bool last_record(const char *path, uint32_t id, struct record_info *last)
{
	struct pack_scan scan;
	struct record_info rec;
	bool any = false;
	int fd = open(path, O_RDONLY | O_CLOEXEC), r;

	REQUIRE(fd >= 0);
	REQUIRE(pack_scan_open(io_system(), &scan, fd, id) == 0);
	while ((r = pack_scan_next(&scan, &rec)) != 0) {
		if (r == 1) {
			*last = rec;
			any = true;
		}
	}
	close(fd);
	return any;
}

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
		sizes[i] = i == 3     ? 0 : /* the empty blob */
			   i % 9 == 4 ? 5000 + (size_t)tu_rand_below(30000) :
					(size_t)tu_rand_below(2500);
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
		CHECK(store_packs(dir, "t", &newest, NULL) >= 4);

	/* Garbage of several kinds, each followed by a reopen. */
	for (int kind = 0; kind < 3; kind++) {
		uint8_t junk[3000];
		size_t junk_len = kind == 2 ? RECORD_HEADER_SIZE + 100 : kind ? 7 : sizeof(junk);
		CHECK(store_packs(dir, "t", &newest, NULL) > 0);
		pack_path(dir, "t", newest, path);
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
		for (size_t i = 0; i < N + 4; i++) {
			if (present[i])
				CHECK(blob_is(s, data[i], sizes[i]));
			else
				CHECK(blob_absent(s, hashes[i]));
		}
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
		for (size_t i = 0; i < N + 4; i++) {
			if (present[i])
				CHECK(blob_is(s, data[i], sizes[i]));
			else
				CHECK(blob_absent(s, hashes[i]));
		}
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
		CHECK(store_packs(dir, "t", &newest, NULL) > 0);
		pack_path(dir, "t", newest, path);
		REQUIRE(last_record(path, newest, &last));
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
		for (size_t i = 0; i < N + 4; i++) {
			if (present[i])
				CHECK(blob_is(s, data[i], sizes[i]));
			else
				CHECK(blob_absent(s, hashes[i]));
		}
		/* The lost blob can be saved again. */
		CHECK_EQ(blob_save(s, data[j], sizes[j], hashes[j]), 0);
		present[j] = true;
		store_close(s);
		blobdb_close(db);
		db = db_open(dir, opts);
		s = st_open(db, "t");
		for (size_t i = 0; i < N + 4; i++) {
			if (present[i])
				CHECK(blob_is(s, data[i], sizes[i]));
			else
				CHECK(blob_absent(s, hashes[i]));
		}
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

/* The system calls, but for pwrite. */
static const struct io_ops *faulty_io(void)
{
	static struct io_ops ops;

	ops = *io_system();
	ops.pwrite = faulty_pwrite;
	return &ops;
}

/* A save that fails half-way leaves no trace: the error comes back, the
 * blob is not there, later saves work, and the packs hold no partial record
 * (they scan clean after close). */
static void test_failed_writes(const char *base, const struct blobdb_options *opts)
{
	enum { N = 16 };
	char dir[PATH_MAX], label[128];
	struct blobdb *db;
	struct store *s;
	uint8_t *data[N], hashes[N][HS];
	size_t sizes[N];
	bool present[N];
	int r;

	snprintf(label, sizeof(label), "saves and deletes whose writes fail (%s)", opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-fail-%" PRIu64, base, opts->large_blob_min);
	struct blobdb_options faulty_opts = *opts;
	faulty_opts.io = faulty_io();
	db = db_open(dir, &faulty_opts);
	REQUIRE(store_create(db, "f") == 0);
	s = st_open(db, "f");
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
	CHECK(verify_packs(dir, "f"));
	db = db_open(dir, opts);
	s = st_open(db, "f");
	for (int i = 0; i < N; i++) {
		if (present[i])
			CHECK(blob_is(s, data[i], sizes[i]));
		else
			CHECK(blob_absent(s, hashes[i]));
		free(data[i]);
	}
	CHECK_EQ(staging_files(dir, "f"), 0);
	store_close(s);
	blobdb_close(db);
}

/* ---- verified reads ---- */

/* Where the (newest) record of a blob is: its pack and record. */
static bool find_record(const char *dbdir, const char *store, const uint8_t *hash,
			uint32_t *pack_id, struct record_info *out)
{
	char path[PATH_MAX];
	struct dirent *d;
	bool found = false;
	DIR *dir;

	tu_path(path, sizeof(path), "%s/stores/%s", dbdir, store);
	dir = opendir(path);
	REQUIRE(dir);
	while ((d = readdir(dir))) {
		struct pack_scan scan;
		struct record_info rec;
		uint32_t id;
		int fd, r;
		if (!pack_parse_name(d->d_name, &id))
			continue;
		fd = openat(dirfd(dir), d->d_name, O_RDONLY | O_CLOEXEC);
		REQUIRE(fd >= 0);
		if (pack_scan_open(io_system(), &scan, fd, id) == 0) {
			while ((r = pack_scan_next(&scan, &rec)) != 0) {
				if (r == 1 && rec.kind == RECORD_BLOB && !memcmp(rec.hash, hash, HS) &&
				    (!found || rec.seq > out->seq)) {
					*out = rec;
					*pack_id = id;
					found = true;
				}
			}
		}
		close(fd);
	}
	closedir(dir);
	return found;
}

static void patch_file(const char *path, uint64_t off, const void *bytes, size_t len)
{
	int fd = open(path, O_RDWR | O_CLOEXEC);

	REQUIRE(fd >= 0);
	REQUIRE(pwrite_full(io_system(), fd, bytes, len, off) == 0);
	close(fd);
}

static void read_file_at(const char *path, uint64_t off, void *bytes, size_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	REQUIRE(fd >= 0);
	REQUIRE(pread_full(io_system(), fd, bytes, len, off) == 0);
	close(fd);
}

static void put_le32_at(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

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
	uint8_t ha[HS], hb[HS], hc[HS], byte;
	struct record_info ra, rc;
	uint32_t pa, pc;
	uint64_t failed_at = 0;
	int r;

	TU_TEST("verified reads: a damaged chunk is never handed out");
	tu_path(dir, sizeof(dir), "%s/db-verify", base);
	db = db_open(dir, NULL);
	REQUIRE(store_create(db, "v") == 0);
	s = st_open(db, "v");
	CHECK_EQ(blob_save(s, a, LA, ha), 0);
	CHECK_EQ(blob_save(s, b, LB, hb), 0);
	CHECK_EQ(blob_save(s, c, LC, hc), 0);
	CHECK_EQ(store_sync(s), 0);
	store_close(s);
	blobdb_close(db);
	REQUIRE(find_record(dir, "v", ha, &pa, &ra));
	REQUIRE(find_record(dir, "v", hc, &pc, &rc));

	/* One flipped byte in the third chunk of a. */
	pack_path(dir, "v", pa, path);
	read_file_at(path, record_data_offset(&ra) + 2 * 65536 + 5, &byte, 1);
	byte ^= 0x40;
	patch_file(path, record_data_offset(&ra) + 2 * 65536 + 5, &byte, 1);
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
	byte ^= 0x40;
	patch_file(path, record_data_offset(&ra) + 2 * 65536 + 5, &byte, 1);

	TU_TEST("verified reads: content that passes its chunk checksums but not its hash");
	/* Change a byte of c's last chunk and re-seal that chunk's checksum and
	 * the table's: only the SHA-256 can tell. */
	{
		uint64_t pos = record_data_offset(&rc) + 2 * 65536 + 7;
		uint64_t table = record_data_offset(&rc) + LC;
		uint8_t chunk[LC - 2 * 65536], tbl[12], trailer_crc[4];
		pack_path(dir, "v", pc, path);
		read_file_at(path, pos, &byte, 1);
		byte ^= 0x01;
		patch_file(path, pos, &byte, 1);
		read_file_at(path, record_data_offset(&rc) + 2 * 65536, chunk, sizeof(chunk));
		read_file_at(path, table, tbl, sizeof(tbl));
		put_le32_at(tbl + 8, crc32c(0, chunk, sizeof(chunk)));
		patch_file(path, table, tbl, sizeof(tbl));
		put_le32_at(trailer_crc, crc32c(0, tbl, sizeof(tbl)));
		patch_file(path, table + sizeof(tbl) + 4, trailer_crc, 4);
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
		/* A fresh reader reading it all in one go: refused. */
		REQUIRE(blob_open(s, hc, &rd) == 0);
		CHECK_EQ(blob_read(rd, buf, LC, 0, &got), -EIO);
		blob_close(rd);
	}
	store_close(s);
	blobdb_close(db);
	free(a);
	free(b);
	free(c);
}

/* ---- compaction ---- */

/* Records in a store's packs: blobs (and how many distinct), tombstones. */
static void count_records(const char *dbdir, const char *store, size_t *blobs,
			  size_t *tombstones)
{
	char path[PATH_MAX];
	struct dirent *d;
	DIR *dir;

	*blobs = *tombstones = 0;
	tu_path(path, sizeof(path), "%s/stores/%s", dbdir, store);
	dir = opendir(path);
	REQUIRE(dir);
	while ((d = readdir(dir))) {
		struct pack_scan scan;
		struct record_info rec;
		uint32_t id;
		int fd;
		if (!pack_parse_name(d->d_name, &id))
			continue;
		fd = openat(dirfd(dir), d->d_name, O_RDONLY | O_CLOEXEC);
		REQUIRE(fd >= 0);
		if (pack_scan_open(io_system(), &scan, fd, id) == 0)
			while (pack_scan_next(&scan, &rec) == 1)
				++*(rec.kind == RECORD_BLOB ? blobs : tombstones);
		close(fd);
	}
	closedir(dir);
}

/* Total bytes of a store's pack files. */
static long long packs_bytes(const char *dbdir, const char *store)
{
	char path[PATH_MAX];
	struct dirent *d;
	long long total = 0;
	DIR *dir;

	tu_path(path, sizeof(path), "%s/stores/%s", dbdir, store);
	dir = opendir(path);
	REQUIRE(dir);
	while ((d = readdir(dir))) {
		uint32_t id;
		struct stat st;
		if (pack_parse_name(d->d_name, &id) && fstatat(dirfd(dir), d->d_name, &st, 0) == 0)
			total += st.st_size;
	}
	closedir(dir);
	return total;
}

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
		db = db_open(dir, &opts);
		REQUIRE(store_create(db, "c") == 0);
		s = st_open(db, "c");
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
			struct pool_item *it = &pm->pool[i];
			struct store *s = st_open(db, p_names[st]);
			uint8_t h[HS];
			int r;
			if (tu_rand_below(100) < 50) {
				r = tu_rand_below(5) ? blob_save(s, it->data, it->len, h) :
						       save_via_writer(s, it->data, it->len, h);
				if (!CHECK_EQ(r, pm->present[st][i] ? -EEXIST : 0))
					bad++;
				pm->present[st][i] = true;
			} else {
				r = blob_delete(s, it->hash);
				if (!CHECK_EQ(r, pm->present[st][i] ? 0 : -ENOENT))
					bad++;
				pm->present[st][i] = false;
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
static size_t race_trigger_len;

/* Fires when the compaction copies the live record (a write of exactly its
 * size): that is while the copy runs, without the store lock. */
static ssize_t race_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	ssize_t n = pwrite(fd, buf, len, off);

	if (race_store && len == race_trigger_len && race_delete_result == 1)
		race_delete_result = blob_delete(race_store, race_hash);
	return n;
}

static const struct io_ops *race_io(void)
{
	static struct io_ops ops;

	ops = *io_system();
	ops.pwrite = race_pwrite;
	return &ops;
}

static void race_child(void *arg)
{
	enum { A = 26 };
	const char *dir = arg;
	struct blobdb_options opts = opts_small();
	struct blobdb *db;
	struct store *s;
	uint8_t *a[A], ha[A][HS];
	struct record_info rec;
	uint32_t first_pack = 0, pack;
	int r;

	opts.compact_percent = 100; /* no background compaction */
	opts.io = race_io(); /* armed below, by race_store */
	db = db_open(dir, &opts);
	REQUIRE(store_create(db, "r") == 0);
	s = st_open(db, "r");
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
	memcpy(race_hash, ha[0], HS);
	race_trigger_len = (size_t)record_size(3000, CHUNK_SHIFT_DEFAULT);
	race_store = s;
	r = store_compact(s, 1);
	race_store = NULL;
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
	db = db_open(dir, &opts);
	REQUIRE(store_create(db, "m") == 0);
	s = st_open(db, "m");
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
	db = db_open(dir, &opts);
	REQUIRE(store_create(db, "t") == 0);
	s = st_open(db, "t");
	/* a: fill pack 0 and start pack 1. */
	for (int i = 0; i < A; i++) {
		a[i] = make_content(3000);
		CHECK_EQ(blob_save(s, a[i], 3000, ha[i]), 0);
	}
	CHECK(store_packs(dir, "t", &newest, NULL) >= 2);
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

/* After a commit the writer "holds the committed content and may be written
 * and committed again" (store.h) - also when the committed blob is deleted
 * from the store meanwhile, whichever way it was saved. */
static void test_writer_after_delete(const char *base, const struct blobdb_options *opts)
{
	char dir[PATH_MAX], label[128];
	struct blobdb *db;
	struct store *s;
	struct wmodel m = { 0 };
	uint8_t hash[HS];
	int r;

	snprintf(label, sizeof(label), "writer: its committed blob deleted, then more writes (%s)",
		 opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-wdel-%" PRIu64, base, opts->large_blob_min);
	db = db_open(dir, opts);
	REQUIRE(store_create(db, "w") == 0);
	s = st_open(db, "w");
	for (int size_class = 0; size_class < 2; size_class++) {
		size_t size = size_class ? 10000 : 1000; /* small vs own pack in small mode */
		REQUIRE(blob_writer_new(s, &m.w) == 0);
		m.size = 0;
		CHECK(wm_write(&m, 0, size));
		CHECK(wm_commit(&m, s));
		sha(m.buf, m.size, hash);
		CHECK_EQ(blob_delete(s, hash), 0);
		/* Read back what the writer holds. */
		if (!wm_check_read(&m, 0, size))
			fprintf(stderr, "  blob_writer_read of a %zu-byte writer after its blob was deleted\n",
				size);
		/* Commit unchanged: saves it again. */
		r = blob_writer_commit(m.w, hash);
		if (!CHECK_EQ(r, 0))
			fprintf(stderr, "  unchanged re-commit of a %zu-byte writer after delete: %d (%s)\n",
				size, r, strerror(-r));
		else if (CHECK(blob_is(s, m.buf, m.size)))
			CHECK_EQ(blob_delete(s, hash), 0); /* and delete it again */
		/* Change it and commit. */
		r = blob_writer_write(m.w, "more", 4, m.size);
		if (CHECK_EQ(r, 0)) {
			wm_reserve(&m, m.size + 4);
			memcpy(m.buf + m.size, "more", 4);
			m.size += 4;
			CHECK(wm_commit(&m, s));
		} else {
			fprintf(stderr, "  write to a %zu-byte writer after its blob was deleted: %d (%s)\n",
				size, r, strerror(-r));
		}
		blob_writer_free(m.w);
		m.w = NULL;
	}
	store_close(s);
	blobdb_close(db);
	free(m.buf);
}

/* read_only: "open for checking only: no lock-file pid". */
static void test_read_only(const char *base)
{
	char dir[PATH_MAX], lock[PATH_MAX];
	struct blobdb_options opts = opts_default();
	struct blobdb *db, *db2 = (struct blobdb *)1;
	struct store *s;
	uint8_t *data = make_content(5000), hash[HS];

	TU_TEST("read_only open");
	tu_path(dir, sizeof(dir), "%s/db-readonly", base);
	db = db_open(dir, NULL);
	REQUIRE(store_create(db, "ro") == 0);
	s = st_open(db, "ro");
	CHECK_EQ(blob_save(s, data, 5000, hash), 0);
	store_close(s);
	blobdb_close(db);
	tu_path(lock, sizeof(lock), "%s/lock", dir);
	REQUIRE(tu_write_file(lock, "4242\n", 5) == 0);

	opts.read_only = true;
	db = db_open(dir, &opts);
	CHECK_EQ(blobdb_lock_holder(dir), 4242);
	/* It still holds the lock. */
	CHECK_EQ(blobdb_open(dir, NULL, &db2), -EBUSY);
	CHECK(db2 == NULL);
	s = st_open(db, "ro");
	CHECK(blob_is(s, data, 5000));
	store_close(s);
	blobdb_close(db);
	CHECK_EQ(blobdb_lock_holder(dir), 4242);
	free(data);
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
	char dir[PATH_MAX], path[PATH_MAX];
	struct blobdb *db;
	int fd;

	TU_TEST("a pack whose records' hashes share a long prefix");
	tu_path(dir, sizeof(dir), "%s/db-crafted", base);
	db = db_open(dir, NULL);
	REQUIRE(store_create(db, "c") == 0);
	blobdb_close(db);
	tu_path(path, sizeof(path), "%s/stores/c", dir);
	{
		int dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		struct record_info rec = { .offset = PACK_HEADER_SIZE, .kind = RECORD_BLOB,
					   .chunk_shift = CHUNK_SHIFT_DEFAULT, .length = 1 };
		REQUIRE(dirfd >= 0);
		REQUIRE(pack_create(io_system(), dirfd, 1, &fd) == 0);
		for (int i = 0; i < 100; i++) {
			memset(rec.hash, 0xff, 8);
			tu_fill_random(rec.hash + 8, HS - 8);
			rec.seq = (uint64_t)i + 1;
			CHECK_EQ(pack_write_record(io_system(), fd, &rec, "?", NULL), 0);
			rec.offset = record_end(&rec);
		}
		close(fd);
		close(dirfd);
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
	pack_path(dir, "first", 0, path);
	REQUIRE(tu_write_file(path, "", 0) == 0);
	/* Store "later" crashed while creating its next pack. */
	{
		uint32_t newest;
		store_packs(dir, "later", &newest, NULL);
		pack_path(dir, "later", newest + 1, path);
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
	db = db_open(dir, NULL);
	REQUIRE(store_create(db, "s") == 0);
	s = st_open(db, "s");
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
	struct blobdb_options def = opts_default(), small = opts_small();
	const char *base;

	(void)argc;
	tu_init(argv[0]);
	base = tu_tmpdir();
	test_open_and_lock(base);
	test_store_names(base);
	test_store_destroy(base);
	test_blob_basics(base, &def);
	test_blob_basics(base, &small);
	test_reader_after_delete(base, &def);
	test_reader_after_delete(base, &small);
	test_writer_scripted(base, &def);
	test_writer_scripted(base, &small);
	test_writer_random(base, &def);
	test_writer_random(base, &small);
	test_persistence(base, &def);
	test_persistence(base, &small);
	test_torn_tail(base, &def);
	test_torn_tail(base, &small);
	test_tombstone_packs(base);
	test_verified_reads(base);
	test_compaction_layouts(base);
	test_compaction(base);
	test_compaction_delete_race(base);
	test_min_free(base);
	test_failed_writes(base, &def);
	test_failed_writes(base, &small);
	test_writer_after_delete(base, &def);
	test_writer_after_delete(base, &small);
	test_read_only(base);
	test_crafted_hashes(base);
	test_headerless_pack(base);
	test_threads(base);
	test_threads_flusher(base);
	test_flush_interval(base);
	return tu_finish();
}
