/*
 * test_store_lifecycle.c - a data directory and its stores: opening creates
 * and locks the data directory (a second open is busy; bad paths fail),
 * read-only opens, store names (what is refused, the longest), store_list
 * (byte order, resumable, stoppable, after reopen), and store_destroy (only
 * if empty, with handles, readers and writers still open, an interrupted
 * destroy's trash emptied at open).
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include <dirent.h>
#include <sys/statvfs.h>

#include "storeutil.h"

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
		tu_shuffle(order, n_names);
		for (size_t i = 0; i < n_names; i++)
			if (!CHECK_EQ(store_create(db, names[order[i]]), 0))
				fprintf(stderr, "  store_create(\"%s\")\n", names[order[i]]);
	}
	for (size_t i = 0; i < n_names; i++)
		sorted[i] = (char *)names[i];
	qsort(sorted, n_names, sizeof(sorted[0]), cmp_str);
	CHECK_EQ(store_count(db), n_names);
	{
		static const char *const absent[] = { "aa", "\x01", "\xff", "zzz", "A", "a c", "1" };

		check_store_listing(db, sorted, n_names, absent, sizeof(absent) / sizeof(absent[0]));
	}
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
	check_only_store_left(db, "s", "keep");
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
	s = new_store(dir, NULL, "ro", &db);
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

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_open_and_lock },
		{ .once = test_store_names },
		{ .once = test_store_destroy },
		{ .once = test_read_only },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
