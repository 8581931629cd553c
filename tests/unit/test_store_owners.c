/*
 * test_store_owners.c - stores' owners and modes in the local engine, and
 * the data directory's safety:
 * - the meta file's bytes: a round trip, every single-byte change refused,
 *   other versions, lengths;
 * - store_create_as / store_create persist owner, group and mode across a
 *   reopen; store_attr_set replaces the file (meta.tmp never left);
 * - a store without a meta file (an earlier blobfs) gets the data
 *   directory's owner and 0755; a damaged one 0700 and a log line;
 * - a crash at every file-system call of a store_attr_set (the simulated
 *   disk, then a power cut) leaves the old or the new attributes, never a
 *   default; the same for a store_create_as: the store is there with its
 *   owner and mode or not at all;
 * - with umask 0 every file blobfs makes is 0600 and every directory 0700;
 * - names never leave the data directory: "..", ".", names with '/', too
 *   long; a symbolic link, a file and a leftover .creating-* in stores/;
 * - blobdb_check_location / blobdb_open refuse a data directory other users
 *   can write, or whose parent they can (unless sticky), with -EPERM.
 * The permission rules themselves (store_access, store_attr_set) run on
 * both backends in the contract suite (tests/contract/contract_owners.c).
 *
 * Fixture: storeutil.h / testutil.h (the fixture library); simdisk.h.
 */
#include <dirent.h>
#include <sys/stat.h>

#include "crc32c.h"
#include "log.h"
#include "meta.h"
#include "simdisk.h"
#include "storeutil.h"

/* ---- helpers ---- */

static struct store_attr attr_of(struct store *s)
{
	struct store_attr a;

	CHECK_EQ(store_attr_get(s, &a), 0);
	return a;
}

static bool attr_is(struct store_attr a, uint32_t uid, uint32_t gid, uint32_t mode)
{
	bool ok = a.uid == uid && a.gid == gid && a.mode == mode;

	if (!ok)
		fprintf(stderr, "  attributes uid %u gid %u mode %04o, expected %u %u %04o\n", a.uid,
			a.gid, a.mode, uid, gid, mode);
	return ok;
}

static const struct caller root_caller = { .uid = 0, .gid = 0 };

/* ---- the bytes ---- */

static void test_meta_codec(const char *base)
{
	struct store_attr in = { .uid = 1000, .gid = 100, .mode = 02750 }, out;
	uint8_t buf[META_SIZE], bad[META_SIZE + 1];

	(void)base;
	TU_TEST("meta file bytes: round trip, every byte checked, versions, lengths");
	meta_encode(&in, buf);
	CHECK(!memcmp(buf, "BLOBMETA", 8));
	CHECK_EQ(meta_decode(buf, sizeof(buf), &out), 0);
	CHECK(attr_is(out, 1000, 100, 02750));
	for (size_t i = 0; i < META_SIZE; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			memcpy(bad, buf, META_SIZE);
			bad[i] ^= (uint8_t)(1u << bit);
			CHECK(meta_decode(bad, META_SIZE, &out) < 0);
		}
	}
	CHECK_EQ(meta_decode(buf, META_SIZE - 1, &out), -EINVAL);
	memcpy(bad, buf, META_SIZE);
	bad[META_SIZE] = 0;
	CHECK_EQ(meta_decode(bad, META_SIZE + 1, &out), -EINVAL);
	CHECK_EQ(meta_decode(buf, 0, &out), -EINVAL);
	/* A well-formed file of another version: not damage, but unknown. */
	memcpy(bad, buf, META_SIZE);
	bad[8] = 2;
	{
		uint32_t crc = crc32c(0, bad, 28);
		bad[28] = (uint8_t)crc;
		bad[29] = (uint8_t)(crc >> 8);
		bad[30] = (uint8_t)(crc >> 16);
		bad[31] = (uint8_t)(crc >> 24);
	}
	CHECK_EQ(meta_decode(bad, META_SIZE, &out), -ENOTSUP);
	/* Mode bits beyond 07777 are masked when written. */
	in.mode = 0170755;
	meta_encode(&in, buf);
	CHECK_EQ(meta_decode(buf, sizeof(buf), &out), 0);
	CHECK_EQ(out.mode, 0755);
}

/* ---- persistence ---- */

static void test_persisted(const char *base)
{
	char dir[PATH_MAX], path[PATH_MAX];
	struct store_attr want = { .uid = 4321, .gid = 1234, .mode = 0750 }, now;
	struct blobdb *db;
	struct store *s;

	TU_TEST("owner, group and mode persist across a reopen; chmod replaces the meta file");
	tu_path(dir, sizeof(dir), "%s/db-persist", base);
	db = db_open(dir, NULL);
	CHECK_EQ(store_create_as(db, "a", &want), 0);
	CHECK_EQ(store_create(db, "b"), 0);
	CHECK_EQ(store_create_as(db, "a", &want), -EEXIST);
	s = st_open(db, "b");
	CHECK(attr_is(attr_of(s), (uint32_t)geteuid(), (uint32_t)getegid(), 0755));
	want.mode = 01700;
	CHECK_EQ(store_attr_set(s, &root_caller, STORE_ATTR_MODE | STORE_ATTR_UID, &want, &now), 0);
	CHECK(attr_is(now, 4321, (uint32_t)getegid(), 01700));
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);

	tu_path(path, sizeof(path), "%s/stores/b/meta.tmp", dir);
	CHECK(!tu_exists(path));
	tu_path(path, sizeof(path), "%s/stores/b/meta", dir);
	CHECK_EQ(tu_file_size(path), META_SIZE);

	db = db_open(dir, NULL);
	s = st_open(db, "a");
	CHECK(attr_is(attr_of(s), 4321, 1234, 0750));
	store_close(s);
	s = st_open(db, "b");
	CHECK(attr_is(attr_of(s), 4321, (uint32_t)getegid(), 01700));
	/* A destroyed store has none. */
	CHECK_EQ(store_destroy(db, "b", false), 0);
	CHECK_EQ(store_attr_get(s, &now), -ENOENT);
	CHECK_EQ(store_attr_set(s, &root_caller, STORE_ATTR_MODE, &want, NULL), -ENOENT);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
	tu_rmtree(dir);
}

struct reopen_arg {
	const char *dir;
	struct store_attr attr;
};

static void reopen_and_read(void *arg)
{
	struct reopen_arg *r = arg;
	struct blobdb *db = db_open(r->dir, NULL);
	struct store *s = st_open(db, "s");

	r->attr = attr_of(s);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0);
}

static void test_missing_and_damaged(const char *base)
{
	struct store_attr want = { .uid = 77, .gid = 88, .mode = 0700 };
	char dir[PATH_MAX], path[PATH_MAX];
	struct reopen_arg r;
	struct blobdb *db;
	struct stat st;
	char *text;

	TU_TEST("no meta file: the data directory's owner, 0755; a damaged one: 0700 and a log line");
	tu_path(dir, sizeof(dir), "%s/db-default", base);
	db = db_open(dir, NULL);
	CHECK_EQ(store_create_as(db, "s", &want), 0);
	CHECK_EQ(blobdb_close(db), 0);
	REQUIRE(stat(dir, &st) == 0);
	r.dir = dir;

	/* As a data directory of an earlier blobfs left it. */
	tu_path(path, sizeof(path), "%s/stores/s/meta", dir);
	REQUIRE(unlink(path) == 0);
	text = tu_capture_stderr(reopen_and_read, &r);
	CHECK(attr_is(r.attr, (uint32_t)st.st_uid, (uint32_t)st.st_gid, 0755));
	CHECK(!strstr(text, "meta"));
	free(text);

	/* Damaged: a flipped bit, a short file, garbage, a directory. */
	for (int how = 0; how < 4; how++) {
		uint8_t buf[META_SIZE];
		meta_encode(&want, buf);
		unlink(path);
		if (how == 0) {
			buf[13] ^= 4;
			REQUIRE(tu_write_file(path, buf, sizeof(buf)) == 0);
		} else if (how == 1) {
			REQUIRE(tu_write_file(path, buf, 20) == 0);
		} else if (how == 2) {
			REQUIRE(tu_write_file(path, "not a meta file at all, no no no", 32) == 0);
		} else {
			REQUIRE(mkdir(path, 0700) == 0);
		}
		text = tu_capture_stderr(reopen_and_read, &r);
		CHECK(attr_is(r.attr, (uint32_t)st.st_uid, (uint32_t)st.st_gid, 0700));
		if (!CHECK(strstr(text, "warning: store s: its meta file is") != NULL))
			fprintf(stderr, "  log: %s\n", text);
		free(text);
		if (how == 3)
			rmdir(path);
	}
	/* Set again by root: the file is whole again. */
	{
		struct blobdb *db2 = db_open(dir, NULL);
		struct store *s = st_open(db2, "s");
		CHECK_EQ(store_attr_set(s, &root_caller, STORE_ATTR_MODE, &want, NULL), 0);
		store_close(s);
		CHECK_EQ(blobdb_close(db2), 0);
	}
	text = tu_capture_stderr(reopen_and_read, &r);
	CHECK(attr_is(r.attr, (uint32_t)st.st_uid, (uint32_t)st.st_gid, 0700));
	CHECK(!strstr(text, "meta"));
	free(text);
	tu_rmtree(dir);
}

/* ---- crashes ---- */

/* Every call of a store_attr_set, then of a store_create_as, crashes in
 * turn, eight times with different power cuts; after the cut the store
 * reads as before or as after. */
static void test_crash_points(const char *base)
{
	struct store_attr before = { .uid = 10, .gid = 20, .mode = 0700 };
	struct store_attr after = { .uid = 30, .gid = 40, .mode = 0755 };
	char root[PATH_MAX], holding[PATH_MAX], dir[PATH_MAX], path[PATH_MAX];
	const struct io_ops *sim;
	struct blobdb_options opts = opts_default();
	unsigned points = 0, old_seen = 0, new_seen = 0, created = 0, absent = 0;

	TU_TEST("a crash at any call of a chmod or a store creation: old or new, never a default");
	tu_path(root, sizeof(root), "%s/crash", base);
	REQUIRE(mkdir(root, 0700) == 0);
	tu_path(holding, sizeof(holding), "%s/holding", root);
	REQUIRE(mkdir(holding, 0700) == 0);
	log_set_level(LOG_LEVEL_OFF);
	sim = simdisk_install(holding);
	opts.io = sim;
	for (int round = 0; round < 8 * 2; round++) {
		int phase = round % 2; /* 0: chmod and chown; 1: create */
		for (uint64_t at = 1; at < 200; at++) {
			struct blobdb *db = NULL;
			struct store *s = NULL;
			struct store_attr got;
			bool crashed;
			int ret;

			tu_path(dir, sizeof(dir), "%s/db-%d-%" PRIu64, root, round, at);
			simdisk_arm(0);
			REQUIRE(blobdb_open(dir, &opts, &db) == 0);
			if (phase == 0) {
				REQUIRE(store_create_as(db, "s", &before) == 0);
				REQUIRE(store_open(db, "s", &s) == 0);
			}
			REQUIRE(blobdb_sync(db) == 0);
			simdisk_reset();
			simdisk_arm(simdisk_calls() + at);
			if (phase == 0)
				ret = store_attr_set(s, &root_caller,
						     STORE_ATTR_MODE | STORE_ATTR_UID | STORE_ATTR_GID,
						     &after, NULL);
			else
				ret = store_create_as(db, "s", &after);
			crashed = simdisk_crashed();
			if (!crashed) {
				/* Past the last call: done with this phase. */
				CHECK_EQ(ret, 0);
				store_close(s);
				blobdb_close(db);
				simdisk_reset();
				tu_rmtree(dir);
				break;
			}
			points++;
			simdisk_power_cut(tu_rand());
			store_close(s);
			blobdb_close(db);
			simdisk_reset();
			simdisk_arm(0);
			db = NULL;
			REQUIRE(blobdb_open(dir, &opts, &db) == 0);
			if (store_open(db, "s", &s) == 0) {
				CHECK_EQ(store_attr_get(s, &got), 0);
				if (got.uid == before.uid && phase == 0 &&
				    attr_is(got, before.uid, before.gid, before.mode))
					old_seen++;
				else if (CHECK(attr_is(got, after.uid, after.gid, after.mode)))
					phase == 0 ? new_seen++ : created++;
				store_close(s);
			} else {
				CHECK_EQ(phase, 1); /* a chmod never loses the store */
				absent++;
			}
			/* Nothing of a half-made store stays behind. */
			tu_path(path, sizeof(path), "%s/stores", dir);
			{
				DIR *d = opendir(path);
				struct dirent *e;
				while (d && (e = readdir(d)))
					CHECK(strncmp(e->d_name, ".creating-", 10) != 0);
				if (d)
					closedir(d);
			}
			CHECK_EQ(blobdb_close(db), 0);
			simdisk_reset();
			tu_rmtree(dir);
		}
	}
	simdisk_uninstall();
	log_set_level(LOG_LEVEL_INFO);
	printf("  %u crash points: chmod old %u / new %u; create there %u / absent %u\n", points,
	       old_seen, new_seen, created, absent);
	CHECK(points > 5);
	CHECK(old_seen > 0 && new_seen > 0 && created > 0 && absent > 0);
	tu_rmtree(root);
}

/* ---- modes on disk ---- */

static void check_tree_modes(const char *path, unsigned *files, unsigned *dirs)
{
	struct stat st;
	DIR *d;
	struct dirent *e;

	REQUIRE(lstat(path, &st) == 0);
	if (S_ISDIR(st.st_mode)) {
		(*dirs)++;
		if (!CHECK_EQ(st.st_mode & 07777, 0700))
			fprintf(stderr, "  %s\n", path);
		d = opendir(path);
		REQUIRE(d != NULL);
		while ((e = readdir(d))) {
			char sub[PATH_MAX];
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			tu_path(sub, sizeof(sub), "%s/%s", path, e->d_name);
			check_tree_modes(sub, files, dirs);
		}
		closedir(d);
	} else {
		(*files)++;
		if (!CHECK_EQ(st.st_mode & 07777, 0600))
			fprintf(stderr, "  %s\n", path);
	}
}

static void test_modes_on_disk(const char *base)
{
	struct blobdb_options opts = opts_small();
	char dir[PATH_MAX];
	struct blobdb *db;
	struct store *s;
	struct blob_writer *w;
	uint8_t hash[HS], *big = make_content(300000);
	unsigned files = 0, dirs = 0;
	mode_t old = umask(0);

	TU_TEST("umask 0: the data directory and everything in it 0700 / 0600");
	tu_path(dir, sizeof(dir), "%s/db-modes", base);
	db = db_open(dir, &opts);
	CHECK_EQ(store_create(db, "s"), 0);
	s = st_open(db, "s");
	CHECK_EQ(blob_save(s, "small", 5, hash), 0);
	CHECK_EQ(blob_save(s, big, 300000, hash), 0);
	/* A large blob being written: its staging file. */
	CHECK_EQ(blob_writer_new(s, &w), 0);
	CHECK_EQ(blob_writer_write(w, big, 300000, 0), 0);
	CHECK_EQ(blob_writer_write(w, "x", 1, 300000), 0);
	CHECK_EQ(store_attr_set(s, &root_caller, STORE_ATTR_MODE,
				&(struct store_attr){ .mode = 0777 }, NULL), 0);
	check_tree_modes(dir, &files, &dirs);
	blob_writer_free(w);
	store_close(s);
	CHECK_EQ(blobdb_close(db), 0); /* checkpoints */
	check_tree_modes(dir, &files, &dirs);
	CHECK(files >= 8 && dirs >= 8);
	umask(old);
	free(big);
	tu_rmtree(dir);
}

/* ---- names ---- */

static void test_names(const char *base)
{
	struct store_attr a = { .uid = 0, .gid = 0, .mode = 0755 };
	char dir[PATH_MAX], path[PATH_MAX], outside[PATH_MAX], name[300];
	const char *bad[] = { "..", ".", "", "a/b", "/", "../x", "x/..", ".hidden",
			      ".creating-1-1", "stores/../../x" };
	struct blobdb *db;
	struct store *s;
	struct namelist l = { 0 };

	TU_TEST("names never leave the data directory");
	tu_path(dir, sizeof(dir), "%s/db-names", base);
	tu_path(outside, sizeof(outside), "%s/outside", base);
	REQUIRE(mkdir(outside, 0700) == 0);
	db = db_open(dir, NULL);
	for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
		CHECK_EQ(store_create(db, bad[i]), -EINVAL);
		CHECK_EQ(store_create_as(db, bad[i], &a), -EINVAL);
		CHECK_EQ(store_destroy(db, bad[i], false), -EINVAL);
		CHECK_EQ(store_open(db, bad[i], &s), -ENOENT);
	}
	memset(name, 'n', 256);
	name[256] = '\0';
	CHECK_EQ(store_create(db, name), -EINVAL);
	name[255] = '\0';
	CHECK_EQ(store_create(db, name), 0); /* 255 bytes: the longest */
	CHECK_EQ(store_create(db, "ok"), 0);
	CHECK_EQ(blobdb_close(db), 0);

	/* Crafted entries in stores/: a symbolic link to a directory outside
	 * (holding what looks like a store), a regular file, a half-made
	 * store. */
	tu_path(path, sizeof(path), "%s/stores/link", dir);
	REQUIRE(symlink(outside, path) == 0);
	tu_path(path, sizeof(path), "%s/durable", outside);
	REQUIRE(tu_write_file(path, "x", 1) == 0);
	tu_path(path, sizeof(path), "%s/stores/file", dir);
	REQUIRE(tu_write_file(path, "x", 1) == 0);
	tu_path(path, sizeof(path), "%s/stores/.creating-1-1", dir);
	REQUIRE(mkdir(path, 0700) == 0);
	tu_path(path, sizeof(path), "%s/stores/.creating-1-1/meta", dir);
	REQUIRE(tu_write_file(path, "x", 1) == 0);

	db = db_open(dir, NULL);
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 0);
	CHECK_EQ(l.n, 2);
	CHECK_EQ(store_open(db, "link", &s), -ENOENT);
	CHECK_EQ(store_open(db, "file", &s), -ENOENT);
	/* Creating over the link fails: nothing is made through it. */
	CHECK(store_create(db, "link") < 0);
	CHECK_EQ(blobdb_close(db), 0);
	namelist_free(&l);
	tu_path(path, sizeof(path), "%s/stores/.creating-1-1", dir);
	CHECK(!tu_exists(path));
	tu_path(path, sizeof(path), "%s/meta", outside);
	CHECK(!tu_exists(path));
	tu_path(path, sizeof(path), "%s/checkpoint", outside);
	CHECK(!tu_exists(path));

	/* stores/ itself a symbolic link: refused, not followed. */
	{
		char dir2[PATH_MAX];
		tu_path(dir2, sizeof(dir2), "%s/db-names-2", base);
		REQUIRE(mkdir(dir2, 0700) == 0);
		tu_path(path, sizeof(path), "%s/stores", dir2);
		REQUIRE(symlink(outside, path) == 0);
		log_set_level(LOG_LEVEL_OFF);
		db = NULL;
		CHECK(blobdb_open(dir2, NULL, &db) < 0);
		log_set_level(LOG_LEVEL_INFO);
		tu_rmtree(dir2);
	}
	tu_rmtree(dir);
	tu_rmtree(outside);
}

/* ---- the data directory's place ---- */

static int open_rc(const char *dir)
{
	struct blobdb *db = NULL;
	int ret;

	log_set_level(LOG_LEVEL_OFF);
	ret = blobdb_open(dir, NULL, &db);
	log_set_level(LOG_LEVEL_INFO);
	if (ret == 0)
		CHECK_EQ(blobdb_close(db), 0);
	return ret;
}

static void test_location(const char *base)
{
	char top[PATH_MAX], dir[PATH_MAX];

	TU_TEST("data directories other users can write are refused (-EPERM)");
	if (geteuid() != 0) {
		printf("  (not root: chown cases skipped)\n");
	}
	tu_path(top, sizeof(top), "%s/loc", base);
	tu_path(dir, sizeof(dir), "%s/loc/data", base);
	REQUIRE(mkdir(top, 0700) == 0);
	CHECK_EQ(blobdb_check_location("memory:"), 0);

	/* The fixture's own place is fine, existing or not. */
	CHECK_EQ(blobdb_check_location(dir), 0);
	CHECK_EQ(open_rc(dir), 0);

	/* A parent writable by all: refused; sticky and ours: fine. */
	REQUIRE(chmod(top, 0777) == 0);
	CHECK_EQ(open_rc(dir), -EPERM);
	CHECK_EQ(blobdb_check_location(dir), -EPERM);
	REQUIRE(chmod(top, 01777) == 0);
	CHECK_EQ(open_rc(dir), 0);
	/* Group-writable: with root's group fine, with another not. */
	REQUIRE(chmod(top, 0770) == 0);
	if (geteuid() == 0) {
		REQUIRE(chown(top, 0, 0) == 0);
		CHECK_EQ(open_rc(dir), 0);
		REQUIRE(chown(top, 0, 12345) == 0);
		CHECK_EQ(open_rc(dir), -EPERM);
		/* Sticky but owned by another user: refused. */
		REQUIRE(chmod(top, 01777) == 0);
		REQUIRE(chown(top, 12345, 12345) == 0);
		CHECK_EQ(open_rc(dir), -EPERM);
		REQUIRE(chown(top, 0, 0) == 0);
	}
	REQUIRE(chmod(top, 0700) == 0);
	/* The data directory itself: never writable by others, sticky or not. */
	REQUIRE(chmod(dir, 01777) == 0);
	CHECK_EQ(open_rc(dir), -EPERM);
	REQUIRE(chmod(dir, 0700) == 0);
	CHECK_EQ(open_rc(dir), 0);
	if (geteuid() == 0) {
		REQUIRE(chown(dir, 12345, 0) == 0);
		CHECK_EQ(open_rc(dir), -EPERM);
		REQUIRE(chown(dir, 0, 0) == 0);
	}
	/* A missing data directory under an unsafe parent is not made. */
	{
		char fresh[PATH_MAX];
		tu_path(fresh, sizeof(fresh), "%s/loc/new", base);
		REQUIRE(chmod(top, 0777) == 0);
		CHECK_EQ(open_rc(fresh), -EPERM);
		CHECK(!tu_exists(fresh));
		REQUIRE(chmod(top, 0700) == 0);
	}
	tu_rmtree(top);
}

static const struct store_test tests[] = {
	{ .once = test_meta_codec },
	{ .once = test_persisted },
	{ .once = test_missing_and_damaged },
	{ .once = test_crash_points },
	{ .once = test_modes_on_disk },
	{ .once = test_names },
	{ .once = test_location },
};

int main(int argc, char **argv)
{
	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(*tests));
}
