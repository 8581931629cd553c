/*
 * contract_backend.c - the contract suite's backend under test: opening a
 * fresh database on it, closing it, checking that memory: leaves nothing
 * on disk, and the contract's stricter blob_absent (contract.h). The other
 * helpers are the fixture library's (storeutil.h).
 */
#include <dirent.h>
#include <unistd.h>

#include "contract.h"
#include "s3_client.h"

static const char *env_get(const char *name)
{
	return getenv(name);
}

int ct_s3_prepare(void)
{
	struct s3_client *client = NULL;
	struct s3_config config;
	char why[256];
	int ret = s3_config_load(ct_location, NULL, env_get, &config, why, sizeof(why));

	if (ret < 0) {
		fprintf(stderr, "%s: %s (run under eval \"$(scripts/ceph-dev env)\")\n", ct_location,
			why);
		return ret;
	}
	ret = s3_client_new(&config, NULL, &client);
	if (ret == 0)
		ret = s3_bucket_create(client);
	if (ret == -EEXIST)
		ret = 0;
	if (ret < 0)
		fprintf(stderr, "creating the bucket of %s: %s\n", ct_location, s3_last_error());
	s3_client_free(client);
	s3_config_free(&config);
	return ret;
}

bool ct_memory;
bool ct_s3;
const char *ct_location;
static char ct_caches[PATH_MAX]; /* s3: where each label's cache directory goes */
char ct_cwd[PATH_MAX]; /* memory: the directory we run in, must stay empty */

static struct blobdb *open_at(const char *label, const struct blobdb_options *opts, bool fresh)
{
	char path[PATH_MAX], cache[PATH_MAX];
	const char *where = "memory:";
	struct blobdb_options s3_opts;
	struct blobdb *db = NULL;
	int r;

	if (ct_s3) {
		/* A label is a prefix of its own, and a cache kept across a
		 * reopen (what a remount of the same cache directory does). */
		tu_path(path, sizeof(path), "%s/%s", ct_location, label);
		if (!ct_caches[0])
			snprintf(ct_caches, sizeof(ct_caches), "%s", tu_tmpdir());
		tu_path(cache, sizeof(cache), "%s/%s", ct_caches, label);
		if (fresh)
			REQUIRE(access(cache, F_OK) != 0); /* labels are unique */
		if (opts)
			s3_opts = *opts;
		else
			blobdb_options_default(&s3_opts);
		s3_opts.cache_dir = cache;
		opts = &s3_opts;
		where = path;
	} else if (!ct_memory) {
		tu_path(path, sizeof(path), "%s/%s", ct_location, label);
		if (fresh)
			REQUIRE(access(path, F_OK) != 0); /* labels are unique */
		where = path;
	}
	r = blobdb_open(where, opts, &db);
	if (!CHECK_EQ(r, 0) || !CHECK(db != NULL)) {
		fprintf(stderr, "blobdb_open(\"%s\"): %d (%s)\n", where, r, strerror(-r));
		exit(tu_finish());
	}
	if (ct_memory && access("memory:", F_OK) == 0) {
		/* The current engine takes any location as a directory path. */
		tu_report(__FILE__, __LINE__, "blobdb_open(\"memory:\") made a directory "
			  "\"memory:\" in %s: no memory backend (yet)", ct_cwd);
		blobdb_close(db);
		exit(tu_finish());
	}
	return db;
}

struct blobdb *ct_open(const char *label, const struct blobdb_options *opts)
{
	struct blobdb *db = open_at(label, opts, true);

	/* Fresh means empty, whatever the backend. */
	CHECK_EQ(store_count(db), 0);
	return db;
}

struct blobdb *ct_reopen(const char *label, const struct blobdb_options *opts)
{
	return open_at(label, opts, false);
}

/* Entries of a directory besides . and ..; -1 if it cannot be read. */
static int dir_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

void ct_check_nothing_on_disk(void)
{
	CHECK_EQ(dir_entries(ct_cwd), 0);
}

void ct_close(struct blobdb *db)
{
	CHECK_EQ(blobdb_close(db), 0);
	if (ct_memory)
		ct_check_nothing_on_disk();
}

bool ct_blob_absent(struct store *s, const uint8_t *hash)
{
	bool ok = blob_absent(s, hash);

	if (!CHECK_EQ(blob_delete(s, hash), -ENOENT)) {
		fprintf(stderr, "  blob %s should be absent from store %s\n", hexs(hash),
			store_name(s));
		ok = false;
	}
	return ok;
}
