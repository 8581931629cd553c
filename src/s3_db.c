/*
 * s3_db.c - the "s3://" backend's database: the configuration, the client,
 * the cache directory (bound to one bucket and prefix by its `bucket` file,
 * holding the outbox and the read cache, two local data directories), open,
 * start, stop, free, syncs, statfs and the table of operations.
 *
 * A save is durable once the outbox has it (the local packs are the
 * journal); the upload threads (s3_upload.c) move it to the object store.
 * Closing waits for nothing remote: what is still in the outbox is uploaded
 * by the next mount of the same cache directory.
 */
#include "s3.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"

/* Slots of the table of remote answers: 64 Ki × 80 bytes, 5 MiB. */
#define S3_KNOWN_SLOTS 65536

void s3_blob_key(const struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE], char *out,
		 size_t size)
{
	char hex[HASH_HEX_SIZE + 1];

	hash_to_hex(hash, hex);
	snprintf(out, size, "%s%s", s->key_prefix, hex);
}

void s3_log_failure(struct s3_db *db, const char *what, const char *key, int err)
{
	if (!s3_transient(err)) {
		log_warning("s3: %s %s: %s (%s)", what, key, s3_last_error(), strerror(-err));
		return;
	}
	if (__atomic_exchange_n(&db->unreachable, true, __ATOMIC_RELAXED)) {
		log_debug("s3: %s %s: %s", what, key, s3_last_error());
		return;
	}
	log_warning("s3: the object store at %s does not answer (%s %s: %s): saves go to the "
		    "outbox and are uploaded when it does; reads of blobs not cached fail with EIO",
		    db->config.endpoint, what, key, s3_last_error());
}

void s3_log_answered(struct s3_db *db)
{
	if (__atomic_load_n(&db->unreachable, __ATOMIC_RELAXED) &&
	    __atomic_exchange_n(&db->unreachable, false, __ATOMIC_RELAXED))
		log_info("s3: the object store at %s answers again", db->config.endpoint);
}

static int mkdir_p(const char *path, mode_t mode)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* $XDG_CACHE_HOME (else ~/.cache) /blobfs/s3-BUCKET-<16 hex digits of the
 * SHA-256 of the location and endpoint>. */
static int default_cache_dir(const struct s3_config *c, const char *location, char **out)
{
	const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
	uint8_t hash[BLOBFS_HASH_SIZE];
	char hex[HASH_HEX_SIZE + 1], *id;
	int ret;

	*out = NULL;
	if (asprintf(&id, "%s %s", location, c->endpoint) < 0)
		return -ENOMEM;
	ret = hash_buffer(id, strlen(id), hash);
	free(id);
	if (ret < 0)
		return ret;
	hash_to_hex(hash, hex);
	hex[16] = '\0';
	if (xdg && *xdg)
		ret = asprintf(out, "%s/blobfs/s3-%s-%s", xdg, c->bucket, hex);
	else if (home && *home)
		ret = asprintf(out, "%s/.cache/blobfs/s3-%s-%s", home, c->bucket, hex);
	else
		return -ENOENT;
	if (ret < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* The cache directory's `bucket` file: written when missing, and must name
 * this location and endpoint when present (a cache of another bucket would
 * upload its outbox to the wrong place). */
static int cache_bind(const char *dir, const char *location, const char *endpoint)
{
	char path[PATH_MAX], tmp[PATH_MAX], want[2048], have[2048];
	ssize_t n;
	int fd, ret = 0;

	snprintf(want, sizeof(want), "%s %s\n", location, endpoint);
	snprintf(path, sizeof(path), "%s/bucket", dir);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd >= 0) {
		n = read(fd, have, sizeof(have) - 1);
		close(fd);
		if (n < 0)
			return -errno;
		have[n] = '\0';
		if (strcmp(have, want)) {
			log_error("s3: the cache directory %s belongs to %.*s, not to %s %s: give "
				  "another with -o cache=DIR", dir, (int)strcspn(have, "\n"), have,
				  location, endpoint);
			return -EINVAL;
		}
		return 0;
	}
	if (errno != ENOENT)
		return -errno;
	snprintf(tmp, sizeof(tmp), "%s/bucket.tmp", dir);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	if (write(fd, want, strlen(want)) != (ssize_t)strlen(want) || fsync(fd) < 0)
		ret = -EIO;
	close(fd);
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret == 0) {
		fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (fd >= 0) {
			fsync(fd);
			close(fd);
		}
	}
	return ret;
}

static int open_local(const char *dir, const char *name, const struct blobdb_options *opts,
		      struct blobdb **out)
{
	struct blobdb_options local = *opts;
	char path[PATH_MAX];

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	local.io = NULL;
	local.cache_dir = NULL;
	local.s3_endpoint = NULL;
	return blobdb_open(path, &local, out);
}

struct small {
	char buf[64];
	size_t len;
};

static int small_sink(const void *data, size_t len, void *arg)
{
	struct small *s = arg;

	if (s->len + len >= sizeof(s->buf))
		return -EPROTO;
	memcpy(s->buf + s->len, data, len);
	s->len += len;
	s->buf[s->len] = '\0';
	return 0;
}

/* The bucket must be there and answer: a listing of one key. The layout
 * object is written when the prefix has none, and must be this blobfs's
 * layout when it has one (a later layout is not read as this one). */
static int check_bucket(struct s3_db *db)
{
	struct s3_listing l;
	char key[S3_KEY_MAX + 1];
	int ret;

	snprintf(key, sizeof(key), "%s%s%s", db->config.prefix, db->config.prefix[0] ? "/" : "",
		 S3_LAYOUT_NAME);
	ret = s3_list(db->client, key, NULL, NULL, NULL, 1, &l);
	if (ret < 0) {
		log_error("s3: bucket %s at %s: %s (%s)", db->config.bucket, db->config.endpoint,
			  s3_last_error(), strerror(-ret));
		return ret;
	}
	if (l.object_count == 0 || strcmp(l.objects[0].key, key)) {
		ret = s3_put(db->client, key, S3_LAYOUT_TEXT, strlen(S3_LAYOUT_TEXT), NULL, 0);
		if (ret < 0)
			s3_log_failure(db, "writing", key, ret);
	} else {
		struct small text = { .len = 0 };

		ret = s3_get(db->client, key, 0, 0, small_sink, &text, NULL);
		if (ret < 0) {
			s3_log_failure(db, "reading", key, ret);
		} else if (strcmp(text.buf, S3_LAYOUT_TEXT)) {
			log_error("s3: %s says \"%.*s\": not a layout this blobfs knows "
				  "(\"%.*s\"); refusing to mount", key, (int)strcspn(text.buf, "\n"),
				  text.buf, (int)strlen(S3_LAYOUT_TEXT) - 1, S3_LAYOUT_TEXT);
			ret = -EINVAL;
		}
	}
	s3_listing_free(&l);
	return ret;
}

/* Whether the object store honours If-None-Match: * on a PUT, asked with
 * the layout object (there, with exactly this text): one that keeps it
 * answers 412; one that ignores the header rewrites the same bytes. Any
 * other answer (a read-only key: 403) counts as no. */
static void check_put_if_absent(struct s3_db *db)
{
	char key[S3_KEY_MAX + 1];
	int ret;

	snprintf(key, sizeof(key), "%s%s%s", db->config.prefix, db->config.prefix[0] ? "/" : "",
		 S3_LAYOUT_NAME);
	ret = s3_put(db->client, key, S3_LAYOUT_TEXT, strlen(S3_LAYOUT_TEXT), NULL,
		     S3_PUT_IF_ABSENT);
	db->put_if_absent = ret == -EEXIST;
	if (ret == 0)
		log_info("s3: the object store ignores If-None-Match on a PUT: each upload asks "
			 "first (HEAD) whether the blob is there");
	else if (!db->put_if_absent)
		log_warning("s3: could not tell whether the object store honours If-None-Match "
			    "(%s: %s): each upload asks first (HEAD) whether the blob is there",
			    s3_last_error(), strerror(-ret));
}

static const char *env_get(const char *name)
{
	return getenv(name);
}

static int s3_db_open(const char *location, const struct blobdb_options *opts,
		      struct blobdb **out)
{
	struct s3_db *db = calloc(1, sizeof(*db));
	struct blobdb_options defaults;
	char why[256] = "";
	int ret = -ENOMEM;

	*out = NULL;
	if (!db)
		return -ENOMEM;
	if (!opts) {
		blobdb_options_default(&defaults);
		opts = &defaults;
	}
	ret = blobdb_init(&db->base, &s3_backend, location, opts);
	if (ret < 0) {
		free(db);
		return ret;
	}
	pthread_mutex_init(&db->up_lock, NULL);
	pthread_mutex_init(&db->evict_lock, NULL);
	{
		/* The upload threads' deadlines are on the monotonic clock. */
		pthread_condattr_t attr;

		pthread_condattr_init(&attr);
		pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
		pthread_cond_init(&db->up_wake, &attr);
		pthread_cond_init(&db->up_done, &attr);
		pthread_condattr_destroy(&attr);
	}
	ret = s3_config_load(location, opts->s3_endpoint, env_get, &db->config, why, sizeof(why));
	if (ret < 0) {
		log_error("s3: %s: %s", location, why);
		goto out;
	}
	db->cache_size = opts->cache_size ? opts->cache_size : S3_CACHE_SIZE_DEFAULT;
	db->sync_uploads = opts->s3_sync;
	ret = s3_known_init(&db->known, S3_KNOWN_SLOTS,
			    opts->remote_ttl_ms ? opts->remote_ttl_ms : S3_REMOTE_TTL_MS_DEFAULT);
	if (ret < 0)
		goto out;
	db->base.remote_ttl_ms = db->known.ttl_ms;
	/* What the outbox (a local data directory) takes. */
	db->base.blob_max = RECORD_LENGTH_MAX;
	ret = s3_created_init(&db->created);
	if (ret < 0)
		goto out;
	ret = s3_upload_init(db);
	if (ret < 0)
		goto out;
	ret = s3_client_new(&db->config, NULL, &db->client);
	if (ret < 0)
		goto out;
	if (opts->cache_dir)
		db->cache_dir = strdup(opts->cache_dir);
	else if ((ret = default_cache_dir(&db->config, location, &db->cache_dir)) < 0) {
		log_error("s3: no cache directory: give one with -o cache=DIR");
		goto out;
	}
	ret = -ENOMEM;
	if (!db->cache_dir)
		goto out;
	ret = mkdir_p(db->cache_dir, 0700);
	if (ret < 0) {
		log_error("s3: cache directory %s: %s", db->cache_dir, strerror(-ret));
		goto out;
	}
	ret = cache_bind(db->cache_dir, location, db->config.endpoint);
	if (ret < 0) {
		if (ret != -EINVAL)
			log_error("s3: cache directory %s: %s", db->cache_dir, strerror(-ret));
		goto out;
	}
	/* The local data directories log their own failures. */
	ret = open_local(db->cache_dir, "outbox", &db->base.opts, &db->outbox);
	if (ret == 0)
		ret = open_local(db->cache_dir, "clean", &db->base.opts, &db->clean);
	if (ret < 0)
		goto out;
	ret = check_bucket(db);
	if (ret == 0)
		check_put_if_absent(db);
	if (ret == 0)
		ret = s3_stores_load(db);
	if (ret == 0)
		ret = s3_cache_count(db);
	/* The stores were just listed: the next look is due in remote_ttl. */
	db->base.refreshed_ms = s3_now_ms();
	if (ret == 0)
		log_info("s3: %s at %s, cache %s (%llu MiB)", location, db->config.endpoint,
			 db->cache_dir, (unsigned long long)(db->cache_size >> 20));
out:
	if (ret < 0) {
		blobdb_close(&db->base); /* ends in s3_db_free */
		return ret;
	}
	*out = &db->base;
	return 0;
}

static int s3_db_start(struct blobdb *base)
{
	struct s3_db *db = to_s3db(base);
	int ret = blobdb_start(db->outbox);

	if (ret == 0)
		ret = blobdb_start(db->clean);
	if (ret == 0)
		ret = s3_upload_start(db);
	if (ret == 0)
		ret = s3_upload_queue_outbox(db);
	return ret;
}

static int s3_db_stop(struct blobdb *base)
{
	struct s3_db *db = to_s3db(base);
	int ret = 0;

	s3_upload_stop(db);
	if (db->outbox)
		ret = blobdb_sync(db->outbox);
	if (db->clean)
		(void)blobdb_sync(db->clean); /* a cache: what is lost is fetched again */
	return ret;
}

static void s3_db_free(struct blobdb *base)
{
	struct s3_db *db = to_s3db(base);

	if (db->outbox && blobdb_close(db->outbox) < 0)
		log_error("s3: closing the outbox %s/outbox failed", db->cache_dir);
	if (db->clean)
		(void)blobdb_close(db->clean);
	s3_client_free(db->client);
	s3_known_fini(&db->known);
	s3_created_fini(&db->created);
	s3_config_free(&db->config);
	pthread_mutex_destroy(&db->up_lock);
	pthread_mutex_destroy(&db->evict_lock);
	pthread_cond_destroy(&db->up_wake);
	pthread_cond_destroy(&db->up_done);
	free(db->uploaders);
	free(db->cache_dir);
	free(db);
}

static void s3_db_note_pid(struct blobdb *base)
{
	struct s3_db *db = to_s3db(base);

	blobdb_note_pid(db->outbox);
	blobdb_note_pid(db->clean);
}

static int s3_db_sync(struct blobdb *base)
{
	return blobdb_sync(to_s3db(base)->outbox);
}

static int count_store(struct store *store, void *arg)
{
	struct s3_store *s = to_s3store(store);
	struct s3_db *db = s3store_db(s);
	uint64_t *sum = arg, listed_ms;
	struct store_stats st = { 0 };

	pthread_mutex_lock(&s->lock);
	listed_ms = s->listed_ms;
	pthread_mutex_unlock(&s->lock);
	/* A count older than what the mount trusts is made again (a listing of
	 * the store: a request per 1,000 blobs). */
	if (!listed_ms || s3_now_ms() - listed_ms >= db->known.ttl_ms)
		(void)s3_store_stats(store, &st);
	pthread_mutex_lock(&s->lock);
	*sum += s->listed_count;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* The cache's disk; as files, the blobs of every store, counted by listing
 * them at most once per remote_ttl. */
static int s3_db_statfs(struct blobdb *base, struct statvfs *st)
{
	struct s3_db *db = to_s3db(base);
	uint64_t blobs = 0, ffree;
	int ret = blobdb_statfs(db->outbox, st);

	if (ret < 0)
		return ret;
	ffree = st->f_ffree;
	(void)blobdb_each_store(base, count_store, &blobs);
	st->f_files = blobs + ffree;
	return 0;
}

static uint64_t s3_db_writer_memory(struct blobdb *base)
{
	return blobdb_writer_memory(to_s3db(base)->outbox);
}

/* Durable means durable in the outbox (the journal); with -o sync each
 * commit has also waited for its own upload already. */
static int s3_store_sync(struct store *store)
{
	return store_sync(to_s3store(store)->outbox);
}

const struct backend_ops s3_backend = {
	.name = "s3",
	.db_open = s3_db_open,
	.db_start = s3_db_start,
	.db_stop = s3_db_stop,
	.db_free = s3_db_free,
	.db_note_pid = s3_db_note_pid,
	.db_sync = s3_db_sync,
	.db_statfs = s3_db_statfs,
	.db_writer_memory = s3_db_writer_memory,
	.db_refresh = s3_db_refresh,
	.store_create = s3_store_create,
	.store_get_attr = s3_store_get_attr,
	.store_set_attr = s3_store_set_attr,
	.store_remove = s3_store_remove,
	.store_purge = s3_store_purge,
	.store_free = s3_store_free,
	.store_sync = s3_store_sync,
	.store_stats = s3_store_stats,
	.blob_info = s3_blob_info,
	.blob_delete = s3_blob_delete,
	.blob_retract = s3_blob_retract,
	.blob_claim = s3_blob_claim,
	.blob_list_batch = s3_blob_list_batch,
	.blob_count = s3_blob_count,
	.blob_save = s3_blob_save,
	.reader_open = s3_reader_open,
	.reader_read = s3_reader_read,
	.reader_close = s3_reader_close,
	.writer_new = s3_writer_new,
	.writer_write = s3_writer_write,
	.writer_read = s3_writer_read,
	.writer_truncate = s3_writer_truncate,
	.writer_size = s3_writer_size,
	.writer_commit = s3_writer_commit,
	.writer_free = s3_writer_free,
};
