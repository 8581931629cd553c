/*
 * test_memory.c - the memory backend, every call through the public store.h
 * API on blobdb_open("memory:"): stores (create, names, destroy, order,
 * cursors), blobs (save, dedup, info, list, delete, count, the empty blob, a
 * 5 MiB blob), readers that outlive deletes and destroys, writers (random
 * writes against a model, holes, truncates, commits, poison), the budget at
 * its bound, four threads at once, and 200,000 blobs listed in order.
 */
#include "store.h"
#include "hash.h"
#include "testutil.h"

#include <pthread.h>
#include <sys/statvfs.h>

#define MiB (UINT64_C(1) << 20)

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static struct blobdb *open_memory(uint64_t memory_max)
{
	struct blobdb_options opts;
	struct blobdb *db = NULL;

	blobdb_options_default(&opts);
	opts.memory_max = memory_max;
	REQUIRE(blobdb_open("memory:", &opts, &db) == 0);
	REQUIRE(db != NULL);
	return db;
}

static struct store *make_store(struct blobdb *db, const char *name)
{
	struct store *store = NULL;

	REQUIRE(store_create(db, name) == 0);
	REQUIRE(store_open(db, name, &store) == 0);
	return store;
}

/* The whole blob through a reader, in pieces of step bytes; NULL if it
 * cannot be opened. */
static uint8_t *read_blob(struct store *store, const uint8_t *hash, size_t step, uint64_t *len)
{
	struct blob_reader *reader;
	uint8_t *buf;
	uint64_t off = 0;
	size_t got;

	if (blob_open(store, hash, &reader) < 0)
		return NULL;
	*len = blob_reader_length(reader);
	buf = tu_xmalloc((size_t)*len);
	while (off < *len) {
		size_t want = *len - off < step ? (size_t)(*len - off) : step;
		if (!CHECK(blob_read(reader, buf + off, want, off, &got) == 0) || !CHECK(got > 0))
			break;
		off += got;
	}
	CHECK(blob_read(reader, buf, 1, *len, &got) == 0 && got == 0); /* the end */
	blob_close(reader);
	return buf;
}

static bool blob_is(struct store *store, const uint8_t *hash, const void *data, size_t len)
{
	uint64_t got_len = 0;
	uint8_t *got = read_blob(store, hash, 4096, &got_len);
	bool ok = got && got_len == len && (len == 0 || !memcmp(got, data, len));

	free(got);
	return ok;
}

static uint64_t bytes_free(struct blobdb *db)
{
	struct statvfs st;

	REQUIRE(blobdb_statfs(db, &st) == 0);
	return (uint64_t)st.f_bfree * st.f_frsize;
}

/* ---- listing helpers ---- */

struct name_list {
	char names[16][256];
	int count;
};

static int collect_name(const char *name, void *arg)
{
	struct name_list *l = arg;

	if (l->count < 16)
		snprintf(l->names[l->count++], 256, "%s", name);
	return 0;
}

struct hash_list {
	uint8_t (*hashes)[BLOBFS_HASH_SIZE];
	uint64_t *lengths;
	size_t count, capacity, stop_after;
	bool ordered; /* each strictly after the previous */
};

static int collect_hash(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct hash_list *l = arg;

	if (l->count && memcmp(l->hashes[l->count - 1], hash, BLOBFS_HASH_SIZE) >= 0)
		l->ordered = false;
	if (l->count == l->capacity) {
		l->capacity = l->capacity ? 2 * l->capacity : 64;
		l->hashes = realloc(l->hashes, l->capacity * BLOBFS_HASH_SIZE);
		l->lengths = realloc(l->lengths, l->capacity * sizeof(uint64_t));
		REQUIRE(l->hashes && l->lengths);
	}
	memcpy(l->hashes[l->count], hash, BLOBFS_HASH_SIZE);
	l->lengths[l->count++] = length;
	return l->stop_after && l->count == l->stop_after ? 7 : 0;
}

static void hash_list_init(struct hash_list *l)
{
	memset(l, 0, sizeof(*l));
	l->ordered = true;
}

static void hash_list_free(struct hash_list *l)
{
	free(l->hashes);
	free(l->lengths);
}

static int hash_cmp(const void *a, const void *b)
{
	return memcmp(a, b, BLOBFS_HASH_SIZE);
}

/* ---- the tests ---- */

static void test_open(void)
{
	struct blobdb_options opts;
	struct blobdb *db = NULL;
	struct statvfs st;

	TU_TEST("open");
	blobdb_options_default(&opts);
	CHECK_EQ(blobdb_open("memory:x", &opts, &db), -EINVAL);
	CHECK(db == NULL);
	/* Anything else is a directory path, for the local backend. */
	CHECK_EQ(blobdb_open("/nonexistent/dir", &opts, &db), -ENOENT);
	CHECK(db == NULL);
	CHECK_EQ(blobdb_open("memory:", NULL, &db), 0); /* the default budget: 25% of RAM */
	REQUIRE(db);
	CHECK(!strcmp(blobdb_backend(db), "memory"));
	CHECK(!strcmp(blobdb_path(db), "memory:"));
	CHECK_EQ(blobdb_start(db), 0);
	blobdb_note_pid(db);
	CHECK_EQ(blobdb_statfs(db, &st), 0);
	CHECK_EQ(st.f_bsize, 4096);
	CHECK_EQ(st.f_namemax, 255);
	CHECK_EQ((uint64_t)st.f_blocks * 4096,
		 (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGE_SIZE) / 100 * 25 /
			 4096 * 4096);
	CHECK_EQ(st.f_bfree, st.f_blocks);
	CHECK_EQ(blobdb_sync(db), 0);
	CHECK_EQ(blobdb_compact(db, NULL), 0);
	CHECK_EQ(blobdb_close(db), 0);
}

static void test_stores(void)
{
	struct blobdb *db = open_memory(16 * MiB);
	struct name_list names = { .count = 0 };
	struct store *store, *held;
	char long_name[300];
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint64_t len;

	TU_TEST("stores");
	CHECK_EQ(store_create(db, "beta"), 0);
	CHECK_EQ(store_create(db, "alpha"), 0);
	CHECK_EQ(store_create(db, "gamma"), 0);
	CHECK_EQ(store_create(db, "alpha"), -EEXIST);
	CHECK_EQ(store_create(db, ""), -EINVAL);
	CHECK_EQ(store_create(db, ".hidden"), -EINVAL);
	CHECK_EQ(store_create(db, "a/b"), -EINVAL);
	memset(long_name, 'n', 256);
	long_name[256] = '\0';
	CHECK_EQ(store_create(db, long_name), -EINVAL);
	long_name[255] = '\0';
	CHECK_EQ(store_create(db, long_name), 0);
	CHECK_EQ(store_count(db), 4);

	CHECK_EQ(store_list(db, NULL, collect_name, &names), 0);
	CHECK_EQ(names.count, 4);
	CHECK(!strcmp(names.names[0], "alpha") && !strcmp(names.names[1], "beta") &&
	      !strcmp(names.names[2], "gamma") && !strcmp(names.names[3], long_name));
	names.count = 0;
	CHECK_EQ(store_list(db, "beta", collect_name, &names), 0);
	CHECK(names.count == 2 && !strcmp(names.names[0], "gamma"));
	names.count = 0;
	CHECK_EQ(store_list(db, "b", collect_name, &names), 0); /* a cursor that is no store */
	CHECK(names.count == 3 && !strcmp(names.names[0], "beta"));

	CHECK_EQ(store_destroy(db, "delta", false), -ENOENT);
	CHECK_EQ(store_destroy(db, long_name, true), 0);
	CHECK_EQ(store_open(db, "nope", &store), -ENOENT);

	/* A store with a blob: ENOTEMPTY, then destroyed under a held reference. */
	held = make_store(db, "full");
	CHECK_EQ(blob_save(held, "abc", 3, hash), 0);
	CHECK_EQ(store_destroy(db, "full", true), -ENOTEMPTY);
	CHECK(!store_destroyed(held));
	CHECK_EQ(blob_count(held), 1);
	CHECK_EQ(store_destroy(db, "full", false), 0);
	CHECK(store_destroyed(held));
	CHECK_EQ(store_open(db, "full", &store), -ENOENT);
	CHECK_EQ(blob_info(held, hash, &len), -ENOENT);
	CHECK_EQ(blob_count(held), 0);
	CHECK_EQ(blob_save(held, "abcd", 4, hash), -ENOENT);
	CHECK_EQ(blob_delete(held, hash), -ENOENT);
	CHECK_EQ(store_sync(held), 0);
	CHECK_EQ(store_compact(held, 50), 0);
	{
		struct hash_list l;
		struct blob_reader *reader;
		hash_list_init(&l);
		CHECK_EQ(blob_list(held, NULL, collect_hash, &l), 0);
		CHECK_EQ(l.count, 0);
		hash_list_free(&l);
		CHECK_EQ(blob_open(held, hash, &reader), -ENOENT);
	}
	/* The same name again is a new, empty store. */
	store = make_store(db, "full");
	CHECK(store != held);
	CHECK_EQ(blob_count(store), 0);
	store_close(store);
	store_close(held);
	CHECK_EQ(bytes_free(db), 16 * MiB); /* the destroyed store's blob came back */
	CHECK_EQ(blobdb_close(db), 0);
}

static void test_blobs(void)
{
	enum { N = 300 };
	struct blobdb *db = open_memory(64 * MiB);
	struct store *store = make_store(db, "s");
	static uint8_t hashes[N][BLOBFS_HASH_SIZE], sorted[N][BLOBFS_HASH_SIZE];
	static const char empty_hex[] =
		"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
	uint8_t hash[BLOBFS_HASH_SIZE], expect[BLOBFS_HASH_SIZE];
	char data[64], hex[HASH_HEX_SIZE + 1];
	struct hash_list l;
	uint64_t len;
	uint8_t *big, *back;

	TU_TEST("blobs");
	for (int i = 0; i < N; i++) {
		int n = snprintf(data, sizeof(data), "blob number %d", i);
		CHECK_EQ(blob_save(store, data, (size_t)n, hashes[i]), 0);
		REQUIRE(hash_buffer(data, (size_t)n, expect) == 0);
		CHECK_MEM(hashes[i], expect, BLOBFS_HASH_SIZE);
	}
	/* Dedup: -EEXIST with the hash filled, nothing new. */
	memset(hash, 0, sizeof(hash));
	CHECK_EQ(blob_save(store, "blob number 7", 13, hash), -EEXIST);
	CHECK_MEM(hash, hashes[7], BLOBFS_HASH_SIZE);
	CHECK_EQ(blob_count(store), N);
	CHECK_EQ(blob_info(store, hashes[42], &len), 0);
	CHECK_EQ(len, strlen("blob number 42"));
	CHECK(blob_is(store, hashes[42], "blob number 42", 14));

	/* Hash order, and resuming after a cursor. */
	memcpy(sorted, hashes, sizeof(sorted));
	qsort(sorted, N, BLOBFS_HASH_SIZE, hash_cmp);
	hash_list_init(&l);
	CHECK_EQ(blob_list(store, NULL, collect_hash, &l), 0);
	CHECK_EQ(l.count, N);
	CHECK(l.ordered);
	CHECK(l.count == N && !memcmp(l.hashes, sorted, sizeof(sorted)));
	hash_list_free(&l);
	hash_list_init(&l);
	CHECK_EQ(blob_list(store, sorted[99], collect_hash, &l), 0);
	CHECK(l.count == N - 100 && !memcmp(l.hashes, sorted[100], (N - 100) * BLOBFS_HASH_SIZE));
	hash_list_free(&l);
	/* After a hash that is no blob: from the next one. */
	memcpy(hash, sorted[150], BLOBFS_HASH_SIZE);
	hash[BLOBFS_HASH_SIZE - 1] ^= 1;
	hash_list_init(&l);
	CHECK_EQ(blob_list(store, hash, collect_hash, &l), 0);
	CHECK(l.count >= N - 151 && l.count <= N - 150);
	CHECK(l.count && memcmp(l.hashes[0], hash, BLOBFS_HASH_SIZE) > 0);
	hash_list_free(&l);
	/* fn's non-zero return stops the walk and is returned. */
	hash_list_init(&l);
	l.stop_after = 130;
	CHECK_EQ(blob_list(store, NULL, collect_hash, &l), 7);
	CHECK_EQ(l.count, 130);
	hash_list_free(&l);
	memset(hash, 0xff, sizeof(hash));
	hash_list_init(&l);
	CHECK_EQ(blob_list(store, hash, collect_hash, &l), 0);
	CHECK_EQ(l.count, 0);
	hash_list_free(&l);

	/* Deletes. */
	for (int i = 0; i < N; i += 3)
		CHECK_EQ(blob_delete(store, hashes[i]), 0);
	CHECK_EQ(blob_delete(store, hashes[0]), -ENOENT);
	CHECK_EQ(blob_info(store, hashes[3], &len), -ENOENT);
	CHECK_EQ(blob_count(store), N - (N + 2) / 3);
	hash_list_init(&l);
	CHECK_EQ(blob_list(store, NULL, collect_hash, &l), 0);
	CHECK_EQ(l.count, N - (N + 2) / 3);
	CHECK(l.ordered);
	hash_list_free(&l);
	CHECK(blob_is(store, hashes[4], "blob number 4", 13));

	/* The empty blob. */
	CHECK_EQ(blob_save(store, NULL, 0, hash), 0);
	hash_to_hex(hash, hex);
	CHECK(!strcmp(hex, empty_hex));
	CHECK_EQ(blob_save(store, "", 0, hash), -EEXIST);
	CHECK_EQ(blob_info(store, hash, &len), 0);
	CHECK_EQ(len, 0);
	CHECK(blob_is(store, hash, "", 0));
	CHECK_EQ(blob_delete(store, hash), 0);

	/* 5 MiB, read back in odd pieces. */
	big = tu_random_buffer(5 * MiB);
	CHECK_EQ(blob_save(store, big, 5 * MiB, hash), 0);
	CHECK_EQ(blob_info(store, hash, &len), 0);
	CHECK_EQ(len, 5 * MiB);
	back = read_blob(store, hash, 65521, &len);
	CHECK(back && len == 5 * MiB && !memcmp(back, big, 5 * MiB));
	free(back);
	free(big);
	CHECK_EQ(store_sync(store), 0);
	store_close(store);
	CHECK_EQ(blobdb_close(db), 0); /* frees the blobs still there (ASan: no leak) */
}

static void test_readers(void)
{
	struct blobdb *db = open_memory(16 * MiB);
	struct store *store = make_store(db, "r");
	struct blob_reader *reader, *reader2;
	uint8_t hash[BLOBFS_HASH_SIZE], buf[100];
	uint8_t *data = tu_random_buffer(100000);
	size_t got;

	TU_TEST("readers outlive deletes");
	REQUIRE(blob_save(store, data, 100000, hash) == 0);
	REQUIRE(blob_open(store, hash, &reader) == 0);
	CHECK_EQ(blob_reader_length(reader), 100000);
	CHECK_EQ(blob_delete(store, hash), 0);
	CHECK_EQ(blob_open(store, hash, &reader2), -ENOENT);
	CHECK_EQ(blob_read(reader, buf, 100, 99950, &got), 0);
	CHECK_EQ(got, 50);
	CHECK_MEM(buf, data + 99950, 50);
	CHECK_EQ(blob_read(reader, buf, 100, 200000, &got), 0);
	CHECK_EQ(got, 0);
	/* Saved again while the old copy is pinned: a new blob, both right. */
	CHECK_EQ(blob_save(store, data, 100000, hash), 0);
	CHECK(blob_is(store, hash, data, 100000));
	CHECK_EQ(blob_read(reader, buf, 100, 0, &got), 0);
	CHECK(got == 100 && !memcmp(buf, data, 100));
	blob_close(reader);

	/* A reader outlives the destroy of its store (and the purge). */
	REQUIRE(blob_open(store, hash, &reader) == 0);
	CHECK_EQ(store_destroy(db, "r", false), 0);
	CHECK_EQ(blob_read(reader, buf, 100, 1000, &got), 0);
	CHECK(got == 100 && !memcmp(buf, data + 1000, 100));
	CHECK(bytes_free(db) < 16 * MiB - 100000);
	blob_close(reader);
	CHECK_EQ(bytes_free(db), 16 * MiB);
	store_close(store);
	free(data);
	CHECK_EQ(blobdb_close(db), 0);
}

/* Random writes, truncates and reads against a model buffer. */
static void writer_random_ops(struct blob_writer *w, uint8_t *model, uint64_t *model_size,
			      size_t limit, int ops)
{
	uint8_t chunk[9000], back[9000];

	for (int i = 0; i < ops; i++) {
		unsigned op = (unsigned)tu_rand_below(10);
		size_t got;
		if (op < 6) {
			size_t size = 1 + (size_t)tu_rand_below(sizeof(chunk));
			uint64_t off = tu_rand_below(limit - size);
			tu_fill_random(chunk, size);
			if (!CHECK_EQ(blob_writer_write(w, chunk, size, off), 0))
				return;
			if (off > *model_size)
				memset(model + *model_size, 0, (size_t)(off - *model_size));
			memcpy(model + off, chunk, size);
			if (off + size > *model_size)
				*model_size = off + size;
		} else if (op < 8) {
			uint64_t size = tu_rand_below(limit);
			if (!CHECK_EQ(blob_writer_truncate(w, size), 0))
				return;
			if (size > *model_size)
				memset(model + *model_size, 0, (size_t)(size - *model_size));
			*model_size = size;
		} else {
			uint64_t off = tu_rand_below(limit);
			size_t size = (size_t)tu_rand_below(sizeof(back));
			size_t expect = off >= *model_size ? 0 :
				*model_size - off < size ? (size_t)(*model_size - off) : size;
			CHECK_EQ(blob_writer_read(w, back, size, off, &got), 0);
			CHECK_EQ(got, expect);
			CHECK_MEM(back, model + off, got == expect ? got : 0);
		}
		CHECK_EQ(blob_writer_size(w), *model_size);
	}
}

static void test_writers(void)
{
	enum { LIMIT = 300000 };
	struct blobdb *db = open_memory(64 * MiB);
	struct store *store = make_store(db, "w");
	struct blob_writer *w, *w2;
	uint8_t *model = tu_xmalloc(LIMIT);
	uint8_t hash[BLOBFS_HASH_SIZE], hash2[BLOBFS_HASH_SIZE], expect[BLOBFS_HASH_SIZE];
	uint8_t buf[16];
	uint64_t model_size = 0, len;
	size_t got;

	TU_TEST("writers");
	for (int round = 0; round < 20; round++) {
		model_size = 0;
		REQUIRE(blob_writer_new(store, &w) == 0);
		writer_random_ops(w, model, &model_size, LIMIT, 200);
		CHECK_EQ(blob_writer_commit(w, hash), 0);
		REQUIRE(hash_buffer(model, (size_t)model_size, expect) == 0);
		CHECK_MEM(hash, expect, BLOBFS_HASH_SIZE);
		CHECK(blob_is(store, hash, model, (size_t)model_size));
		/* Committed twice: already there, same name. */
		CHECK_EQ(blob_writer_commit(w, hash2), -EEXIST);
		CHECK_MEM(hash2, hash, BLOBFS_HASH_SIZE);
		/* Written on after a commit: a new blob; the first one stays. */
		writer_random_ops(w, model, &model_size, LIMIT, 20);
		CHECK_EQ(blob_writer_commit(w, hash2), 0);
		REQUIRE(hash_buffer(model, (size_t)model_size, expect) == 0);
		CHECK_MEM(hash2, expect, BLOBFS_HASH_SIZE);
		CHECK(blob_is(store, hash2, model, (size_t)model_size));
		CHECK_EQ(blob_info(store, hash, &len), 0);
		/* A commit after the blob was deleted saves it again. */
		CHECK_EQ(blob_delete(store, hash2), 0);
		CHECK_EQ(blob_writer_commit(w, hash2), 0);
		CHECK(blob_is(store, hash2, model, (size_t)model_size));
		blob_writer_free(w);
		CHECK(blob_is(store, hash2, model, (size_t)model_size));
	}

	/* A hole reads as zeros, before and after the commit. */
	REQUIRE(blob_writer_new(store, &w) == 0);
	CHECK_EQ(blob_writer_write(w, "end", 3, 1000000), 0);
	CHECK_EQ(blob_writer_read(w, buf, 16, 999990, &got), 0);
	CHECK(got == 13 && !memcmp(buf, "\0\0\0\0\0\0\0\0\0\0end", 13));
	CHECK_EQ(blob_writer_truncate(w, 1000001), 0);
	CHECK_EQ(blob_writer_truncate(w, 1000010), 0); /* regrown: zeros, not the old "nd" */
	CHECK_EQ(blob_writer_read(w, buf, 16, 999998, &got), 0);
	CHECK(got == 12 && !memcmp(buf, "\0\0e\0\0\0\0\0\0\0\0\0", 12));
	CHECK_EQ(blob_writer_commit(w, hash), 0);
	CHECK_EQ(blob_info(store, hash, &len), 0);
	CHECK_EQ(len, 1000010);
	blob_writer_free(w);

	/* An empty writer commits the empty blob; -EEXIST the second time. */
	REQUIRE(blob_writer_new(store, &w) == 0);
	CHECK_EQ(blob_writer_size(w), 0);
	CHECK_EQ(blob_writer_commit(w, hash), 0);
	REQUIRE(hash_buffer("", 0, expect) == 0);
	CHECK_MEM(hash, expect, BLOBFS_HASH_SIZE);
	blob_writer_free(w);
	REQUIRE(blob_writer_new(store, &w) == 0);
	CHECK_EQ(blob_writer_write(w, "x", 1, 0), 0);
	CHECK_EQ(blob_writer_truncate(w, 0), 0);
	CHECK_EQ(blob_writer_commit(w, hash), -EEXIST);
	CHECK_MEM(hash, expect, BLOBFS_HASH_SIZE);
	blob_writer_free(w);

	/* Freed without a commit: nothing saved, its budget back. */
	{
		size_t before = blob_count(store);
		uint64_t free_before = bytes_free(db);
		REQUIRE(blob_writer_new(store, &w) == 0);
		CHECK_EQ(blob_writer_write(w, model, 200000, 0), 0);
		CHECK(bytes_free(db) < free_before);
		blob_writer_free(w);
		CHECK_EQ(blob_count(store), before);
		CHECK_EQ(bytes_free(db), free_before);
	}

	/* The writer's reference keeps its store: commit after a destroy
	 * fails cleanly, and the caller's close may come first. */
	REQUIRE(blob_writer_new(store, &w) == 0);
	REQUIRE(blob_writer_new(store, &w2) == 0);
	CHECK_EQ(blob_writer_write(w, "late", 4, 0), 0);
	CHECK_EQ(store_destroy(db, "w", false), 0);
	store_close(store);
	CHECK_EQ(blob_writer_commit(w, hash), -ENOENT);
	CHECK_EQ(blob_writer_write(w2, "later", 5, 0), 0);
	blob_writer_free(w);
	blob_writer_free(w2);
	CHECK_EQ(bytes_free(db), 64 * MiB);
	free(model);
	CHECK_EQ(blobdb_close(db), 0);
}

static void test_budget(void)
{
	enum { BLOB = 64 * 1024, MAX_BLOBS = 64 };
	struct blobdb *db = open_memory(MiB);
	struct store *store = make_store(db, "b");
	static uint8_t data[MAX_BLOBS][BLOB];
	static uint8_t hashes[MAX_BLOBS][BLOBFS_HASH_SIZE];
	struct blob_reader *reader;
	struct blob_writer *w;
	struct statvfs st;
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint8_t *big = tu_random_buffer(MiB);
	int saved = 0, ret = 0;

	TU_TEST("budget");
	CHECK_EQ(blobdb_statfs(db, &st), 0);
	CHECK_EQ(st.f_blocks, MiB / 4096);
	CHECK_EQ(st.f_bfree, MiB / 4096);
	for (int i = 0; i < MAX_BLOBS; i++)
		tu_fill_random(data[i], BLOB);
	for (saved = 0; saved < MAX_BLOBS; saved++) {
		ret = blob_save(store, data[saved], BLOB, hashes[saved]);
		if (ret)
			break;
	}
	CHECK_EQ(ret, -ENOSPC);
	CHECK_EQ(saved, 15); /* 16 x 64 KiB would leave no room for the headers */
	CHECK_EQ(blob_count(store), (size_t)saved);
	for (int i = 0; i < saved; i++)
		CHECK(blob_is(store, hashes[i], data[i], BLOB));
	CHECK_EQ(blob_info(store, hashes[saved], NULL), -ENOENT);
	/* At the bound, what is there is still -EEXIST, not -ENOSPC. */
	CHECK_EQ(blob_save(store, data[0], BLOB, hash), -EEXIST);
	CHECK_EQ(blob_save(store, big, MiB, hash), -ENOSPC); /* more than it all */
	CHECK_EQ(blobdb_statfs(db, &st), 0);
	CHECK(st.f_bfree < BLOB / 4096);
	CHECK(st.f_files >= (fsfilcnt_t)saved);

	/* A delete makes room. */
	CHECK_EQ(blob_delete(store, hashes[0]), 0);
	CHECK_EQ(blob_save(store, data[saved], BLOB, hashes[saved]), 0);
	CHECK_EQ(blob_save(store, data[saved + 1], BLOB, hash), -ENOSPC);

	/* A reader pins a deleted blob's bytes: still counted until closed. */
	REQUIRE(blob_open(store, hashes[1], &reader) == 0);
	CHECK_EQ(blob_delete(store, hashes[1]), 0);
	CHECK_EQ(blob_save(store, data[saved + 1], BLOB, hash), -ENOSPC);
	blob_close(reader);
	CHECK_EQ(blob_save(store, data[saved + 1], BLOB, hashes[saved + 1]), 0);
	for (int i = 2; i <= saved + 1; i++)
		CHECK(blob_is(store, hashes[i], data[i], BLOB));

	/* A writer's content counts; at the bound it is poisoned. */
	CHECK_EQ(blob_delete(store, hashes[2]), 0);
	REQUIRE(blob_writer_new(store, &w) == 0);
	CHECK_EQ(blob_writer_write(w, data[2], BLOB, 0), 0);
	CHECK_EQ(blob_save(store, data[saved + 2], BLOB, hash), -ENOSPC); /* the writer has it */
	CHECK_EQ(blob_writer_write(w, data[3], BLOB, BLOB), -ENOSPC);
	CHECK_EQ(blob_writer_size(w), BLOB); /* nothing changed... */
	CHECK_EQ(blob_writer_commit(w, hash), -ENOSPC); /* ...but it is never saved */
	CHECK_EQ(blob_writer_write(w, "x", 1, 0), -ENOSPC);
	CHECK_EQ(blob_writer_truncate(w, 0), -ENOSPC);
	CHECK_EQ(blob_info(store, hashes[2], NULL), -ENOENT);
	blob_writer_free(w);
	/* A commit costs what the save would: the buffer becomes the blob, so
	 * with the writer still open there is room for one more after a delete. */
	REQUIRE(blob_writer_new(store, &w) == 0);
	for (size_t off = 0; off < BLOB; off += 1000)
		CHECK_EQ(blob_writer_write(w, data[2] + off, BLOB - off < 1000 ? BLOB - off : 1000,
					   off), 0);
	CHECK_EQ(blob_writer_commit(w, hash), 0);
	CHECK_MEM(hash, hashes[2], BLOBFS_HASH_SIZE);
	CHECK_EQ(blob_delete(store, hashes[4]), 0);
	CHECK_EQ(blob_save(store, data[saved + 2], BLOB, hashes[saved + 2]), 0);
	blob_writer_free(w);
	for (int i = 2; i <= saved + 2; i++)
		if (i != 4)
			CHECK(blob_is(store, hashes[i], data[i], BLOB));
	/* Larger than the whole budget: -EFBIG, and poisoned. */
	REQUIRE(blob_writer_new(store, &w) == 0);
	CHECK_EQ(blob_writer_truncate(w, 2 * MiB), -EFBIG);
	CHECK_EQ(blob_writer_commit(w, hash), -EFBIG);
	blob_writer_free(w);

	/* Destroying the store gives everything back. */
	store_close(store);
	CHECK_EQ(store_destroy(db, "b", false), 0);
	CHECK_EQ(bytes_free(db), MiB);
	free(big);
	CHECK_EQ(blobdb_close(db), 0);
}

/* ---- four threads ---- */

enum { THREADS = 4, PER_THREAD = 2000 };

struct worker {
	pthread_t thread;
	struct store *store;
	int id;
	bool kept[PER_THREAD];
	int failures;
};

static size_t worker_blob(int id, int i, char *buf)
{
	/* Sizes from 0 to a few KiB; the content names its owner and index. */
	size_t len = (size_t)((i * 37 + id * 11) % 3000);
	int n = snprintf(buf, 64, "thread %d blob %d|", id, i);

	for (size_t j = (size_t)n; j < len; j++)
		buf[j] = (char)(j * 31 + (size_t)i);
	return len < (size_t)n ? (size_t)n : len;
}

static int count_and_check(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct hash_list *l = arg;

	(void)length;
	if (l->count && memcmp(l->hashes[0], hash, BLOBFS_HASH_SIZE) >= 0)
		l->ordered = false;
	if (!l->hashes)
		l->hashes = malloc(BLOBFS_HASH_SIZE);
	if (l->hashes)
		memcpy(l->hashes[0], hash, BLOBFS_HASH_SIZE);
	l->count++;
	return 0;
}

/* blob_is without CHECKs: the counters of testutil.h are not for threads. */
static bool worker_blob_is(struct store *store, const uint8_t *hash, const char *data,
			   size_t len)
{
	struct blob_reader *reader;
	char back[3000];
	size_t got = 0;
	bool ok;

	if (blob_open(store, hash, &reader) != 0)
		return false;
	ok = blob_reader_length(reader) == len && blob_read(reader, back, sizeof(back), 0, &got) == 0 &&
	     got == len && !memcmp(back, data, len);
	blob_close(reader);
	return ok;
}

static void *worker_run(void *arg)
{
	struct worker *wk = arg;
	char buf[3000];
	uint8_t hash[BLOBFS_HASH_SIZE];

	for (int i = 0; i < PER_THREAD; i++) {
		size_t len = worker_blob(wk->id, i, buf);
		if (blob_save(wk->store, buf, len, hash) != 0)
			wk->failures++;
		wk->kept[i] = true;
		if (i % 3 == 1) { /* delete an earlier one of ours */
			int victim = i - 1;
			size_t vlen = worker_blob(wk->id, victim, buf);
			if (hash_buffer(buf, vlen, hash) != 0 || blob_delete(wk->store, hash) != 0)
				wk->failures++;
			wk->kept[victim] = false;
		}
		if (i % 50 == 0 && wk->kept[i]) { /* read one back while others change */
			len = worker_blob(wk->id, i, buf);
			if (hash_buffer(buf, len, hash) != 0 ||
			    !worker_blob_is(wk->store, hash, buf, len))
				wk->failures++;
		}
		if (i % 200 == 0) { /* and list while everyone writes */
			struct hash_list l;
			hash_list_init(&l);
			if (blob_list(wk->store, NULL, count_and_check, &l) != 0 || !l.ordered)
				wk->failures++;
			free(l.hashes);
		}
	}
	return NULL;
}

static void test_threads(void)
{
	struct blobdb *db = open_memory(256 * MiB);
	struct store *store = make_store(db, "t");
	static struct worker workers[THREADS];
	size_t expect = 0;
	char buf[3000];
	uint8_t hash[BLOBFS_HASH_SIZE];

	TU_TEST("four threads");
	for (int t = 0; t < THREADS; t++) {
		workers[t].store = store;
		workers[t].id = t;
		REQUIRE(pthread_create(&workers[t].thread, NULL, worker_run, &workers[t]) == 0);
	}
	for (int t = 0; t < THREADS; t++) {
		pthread_join(workers[t].thread, NULL);
		CHECK_EQ(workers[t].failures, 0);
	}
	for (int t = 0; t < THREADS; t++) {
		for (int i = 0; i < PER_THREAD; i++) {
			size_t len = worker_blob(t, i, buf);
			REQUIRE(hash_buffer(buf, len, hash) == 0);
			if (workers[t].kept[i]) {
				expect++;
				CHECK(blob_is(store, hash, buf, len));
			} else {
				CHECK_EQ(blob_info(store, hash, NULL), -ENOENT);
			}
		}
	}
	CHECK_EQ(blob_count(store), expect);
	{
		struct hash_list l;
		hash_list_init(&l);
		CHECK_EQ(blob_list(store, NULL, count_and_check, &l), 0);
		CHECK(l.ordered);
		CHECK_EQ(l.count, expect);
		free(l.hashes);
	}
	store_close(store);
	CHECK_EQ(blobdb_close(db), 0);
}

static void test_many(void)
{
	enum { COUNT = 200000 };
	struct blobdb *db = open_memory(512 * MiB);
	struct store *store = make_store(db, "many");
	uint8_t hash[BLOBFS_HASH_SIZE];
	struct hash_list l;
	double t0, t1, t2;
	uint64_t v[2];
	int failed = 0;

	TU_TEST("200,000 blobs");
	t0 = now_seconds();
	for (uint64_t i = 0; i < COUNT; i++) {
		v[0] = i;
		v[1] = i * 0x9e3779b97f4a7c15u;
		failed += blob_save(store, v, sizeof(v), hash) != 0;
	}
	t1 = now_seconds();
	CHECK_EQ(failed, 0);
	CHECK_EQ(blob_count(store), COUNT);
	hash_list_init(&l);
	CHECK_EQ(blob_list(store, NULL, collect_hash, &l), 0);
	t2 = now_seconds();
	CHECK_EQ(l.count, COUNT);
	CHECK(l.ordered);
	for (size_t i = 0; i < l.count; i++)
		if (!CHECK_EQ(l.lengths[i], sizeof(v)))
			break;
	printf("200000 blobs: saved in %.3f s, listed in %.3f s\n", t1 - t0, t2 - t1);
	/* Deleting half and listing again: still ordered, exact count. */
	for (size_t i = 0; i < l.count; i += 2)
		failed += blob_delete(store, l.hashes[i]) != 0;
	CHECK_EQ(failed, 0);
	hash_list_free(&l);
	hash_list_init(&l);
	CHECK_EQ(blob_list(store, NULL, collect_hash, &l), 0);
	CHECK_EQ(l.count, COUNT / 2);
	CHECK(l.ordered);
	hash_list_free(&l);
	t0 = now_seconds();
	store_close(store);
	CHECK_EQ(store_destroy(db, "many", false), 0);
	printf("100000 blobs: store destroyed in %.3f s\n", now_seconds() - t0);
	CHECK_EQ(bytes_free(db), 512 * MiB);
	CHECK_EQ(blobdb_close(db), 0);
}

int main(int argc, char **argv)
{
	(void)argc;
	tu_init(argv[0]);
	test_open();
	test_stores();
	test_blobs();
	test_readers();
	test_writers();
	test_budget();
	test_threads();
	test_many();
	return tu_finish();
}
