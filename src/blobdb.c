/*
 * blobdb.c - the blob database API of store.h, once for every backend: picks
 * the backend from the location, checks arguments, keeps the catalogue of
 * stores (names in byte order, counted references) and maps each result to a
 * blob-db status. Everything that touches blobs is the backend's (backend.h).
 */
#include "backend.h"
#include "tentative.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/*
 * The blob-db statuses at the API boundary: whatever else the backend said
 * (EPERM from an immutable file, EROFS, EBADF, EBADMSG...) is an internal
 * error, already logged with its real cause where it happened.
 */
int blobdb_to_status(int ret)
{
	switch (ret) {
	case 0:
	case -ENOENT:
	case -EEXIST:
	case -EINVAL:
	case -ENOSPC:
	case -EIO:
	case -ENOTEMPTY:
	case -EBUSY:
	case -EFBIG:
	case -ENOMEM:
		return ret;
	case -EDQUOT:
		return -ENOSPC;
	case -EMFILE:
	case -ENFILE:
		/* The daemon is out of descriptors (its own limit or the
		 * system's): "too many open files in system" is what a client
		 * should hear, not its own process's EMFILE. */
		return -ENFILE;
	default:
		return ret < 0 ? -EIO : ret;
	}
}

void blobdb_options_default(struct blobdb_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->pack_size_max = PACK_SIZE_MAX_DEFAULT;
	opts->large_blob_min = LARGE_BLOB_MIN_DEFAULT;
	opts->min_free = MIN_FREE_AUTO;
	opts->flush_interval_ms = FLUSH_INTERVAL_MS_DEFAULT;
	opts->compact_percent = COMPACT_PERCENT_DEFAULT;
	opts->store_max = STORE_MAX_DEFAULT;
}

int store_name_check(const char *name, size_t len)
{
	if (len == 0 || len > 255 || name[0] == '.' || memchr(name, '/', len) ||
	    memchr(name, '\0', len))
		return -EINVAL;
	return 0;
}

/* ---- the database ---- */

int blobdb_init(struct blobdb *db, const struct backend_ops *ops, const char *location,
		const struct blobdb_options *opts)
{
	db->ops = ops;
	db->blob_max = UINT64_MAX;
	if (opts)
		db->opts = *opts;
	else
		blobdb_options_default(&db->opts);
	if (db->opts.store_max == 0)
		db->opts.store_max = STORE_MAX_DEFAULT;
	pthread_mutex_init(&db->lock, NULL);
	{
		/* A retract waits for the commits under way, not for every
		 * commit that comes after it. */
		pthread_rwlockattr_t attr;
		pthread_rwlockattr_init(&attr);
		pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
		pthread_rwlock_init(&db->retract_lock, &attr);
		pthread_rwlockattr_destroy(&attr);
	}
	if (tentative_new(&db->tentative) < 0)
		return -ENOMEM;
	db->location = strdup(location);
	return db->location ? 0 : -ENOMEM;
}

int blobdb_open(const char *location, const struct blobdb_options *opts, struct blobdb **out)
{
	size_t prefix = strlen(MEMORY_LOCATION);

	*out = NULL;
	if (!location || !*location)
		return -EINVAL;
	/* The database-level calls return the backend's own errno (the
	 * command line prints it); only the blob-db operations are mapped to
	 * statuses. */
	if (!strncmp(location, MEMORY_LOCATION, prefix))
		return memory_backend.db_open(location + prefix, opts, out);
	if (!strncmp(location, S3_LOCATION_PREFIX, strlen(S3_LOCATION_PREFIX)))
		return s3_backend.db_open(location, opts, out);
	return local_backend.db_open(location, opts, out);
}

int blobdb_close(struct blobdb *db)
{
	int ret;

	if (!db)
		return 0;
	ret = db->ops->db_stop(db);
	for (size_t i = 0; i < db->store_count; i++)
		store_close(db->stores[i]);
	free(db->stores);
	db->stores = NULL;
	db->store_count = 0;
	pthread_mutex_destroy(&db->lock);
	pthread_rwlock_destroy(&db->retract_lock);
	tentative_free(db->tentative);
	free(db->location);
	db->ops->db_free(db);
	return ret < 0 ? -EIO : 0;
}

void blobdb_note_pid(struct blobdb *db)
{
	if (db->ops->db_note_pid)
		db->ops->db_note_pid(db);
}

int blobdb_start(struct blobdb *db)
{
	return db->ops->db_start ? db->ops->db_start(db) : 0;
}

int blobdb_sync(struct blobdb *db)
{
	return db->ops->db_sync(db);
}

int blobdb_compact(struct blobdb *db, FILE *progress)
{
	return db->ops->db_compact ? db->ops->db_compact(db, progress) : 0;
}

int blobdb_checkpoint(struct blobdb *db)
{
	return db->ops->db_checkpoint ? db->ops->db_checkpoint(db) : 0;
}

int blobdb_statfs(struct blobdb *db, struct statvfs *st)
{
	return db->ops->db_statfs(db, st);
}

const char *blobdb_path(const struct blobdb *db)
{
	return db->location;
}

uint64_t blobdb_blob_max(const struct blobdb *db)
{
	return db->blob_max;
}

unsigned blobdb_remote_ttl_ms(const struct blobdb *db)
{
	return db->remote_ttl_ms;
}

unsigned store_remote_ttl_ms(const struct store *store)
{
	return store->db->remote_ttl_ms;
}

const char *blobdb_backend(const struct blobdb *db)
{
	return db->ops->name;
}

size_t blobdb_store_max(const struct blobdb *db)
{
	return db->opts.store_max;
}

uint64_t blobdb_writer_memory(struct blobdb *db)
{
	return db->ops->db_writer_memory ? db->ops->db_writer_memory(db) : 0;
}

/* ---- the catalogue ---- */

int store_init(struct store *store, struct blobdb *db, const char *name)
{
	store->db = db;
	store->refcount = 1;
	pthread_mutex_init(&store->attr_lock, NULL);
	store->name = strdup(name);
	return store->name ? 0 : -ENOMEM;
}

void store_fini(struct store *store)
{
	free(store->name);
	store->name = NULL;
	pthread_mutex_destroy(&store->attr_lock);
}

/* Binary search in the sorted store array: the index of name, or where it
 * would be inserted (with *found false). Called with db->lock held. */
static size_t catalog_position(struct blobdb *db, const char *name, bool *found)
{
	size_t lo = 0, hi = db->store_count;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(db->stores[mid]->name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Room for one more store, so that adding one cannot fail after the backend
 * made it. Called with db->lock held. */
static int catalog_reserve(struct blobdb *db)
{
	size_t capacity;
	struct store **stores;

	if (db->store_count < db->store_capacity)
		return 0;
	capacity = db->store_capacity ? 2 * db->store_capacity : 16;
	stores = realloc(db->stores, capacity * sizeof(*stores));
	if (!stores)
		return -ENOMEM;
	db->stores = stores;
	db->store_capacity = capacity;
	return 0;
}

static void catalog_insert_at(struct blobdb *db, size_t i, struct store *store)
{
	memmove(&db->stores[i + 1], &db->stores[i], (db->store_count - i) * sizeof(*db->stores));
	db->stores[i] = store;
	db->store_count++;
}

int blobdb_catalog_add(struct blobdb *db, struct store *store)
{
	bool found;
	size_t i;
	int ret;

	pthread_mutex_lock(&db->lock);
	i = catalog_position(db, store->name, &found);
	ret = found ? -EEXIST : catalog_reserve(db);
	if (ret == 0)
		catalog_insert_at(db, i, store);
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int blobdb_catalog_drop(struct blobdb *db, struct store *store)
{
	bool found;
	size_t i;

	pthread_mutex_lock(&db->lock);
	i = catalog_position(db, store->name, &found);
	found = found && db->stores[i] == store;
	if (found) {
		memmove(&db->stores[i], &db->stores[i + 1],
			(db->store_count - i - 1) * sizeof(*db->stores));
		db->store_count--;
	}
	pthread_mutex_unlock(&db->lock);
	if (!found)
		return -ENOENT;
	store_close(store); /* the catalogue's reference */
	return 0;
}

/* Stores made or removed elsewhere, at most once per remote_ttl_ms. */
static void catalog_refresh(struct blobdb *db)
{
	struct timespec ts;
	uint64_t now, last;

	if (!db->ops->db_refresh || !db->remote_ttl_ms)
		return;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	now = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
	last = __atomic_load_n(&db->refreshed_ms, __ATOMIC_RELAXED);
	if (last && now - last < db->remote_ttl_ms)
		return;
	/* One caller refreshes; the others go on with what is there. */
	if (!__atomic_compare_exchange_n(&db->refreshed_ms, &last, now, false, __ATOMIC_RELAXED,
					 __ATOMIC_RELAXED))
		return;
	db->ops->db_refresh(db);
}

int blobdb_each_store(struct blobdb *db, int (*fn)(struct store *, void *), void *arg)
{
	struct store **list;
	size_t n;
	int ret = 0;

	pthread_mutex_lock(&db->lock);
	n = db->store_count;
	list = malloc((n ? n : 1) * sizeof(*list));
	for (size_t i = 0; list && i < n; i++) {
		list[i] = db->stores[i];
		list[i]->refcount++;
	}
	pthread_mutex_unlock(&db->lock);
	if (!list)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++) {
		int r = fn(list[i], arg);
		if (r < 0 && ret == 0)
			ret = r;
		store_close(list[i]);
	}
	free(list);
	return ret;
}

/* ---- stores ---- */

int store_create(struct blobdb *db, const char *name)
{
	struct store_attr attr = { .uid = (uint32_t)geteuid(), .gid = (uint32_t)getegid(),
				   .mode = STORE_MODE_DEFAULT };

	return store_create_as(db, name, &attr);
}

int store_create_as(struct blobdb *db, const char *name, const struct store_attr *attr)
{
	struct store_attr masked;
	struct store *store = NULL;
	bool found;
	size_t i;
	int ret;

	if (!name || !attr)
		return -EINVAL;
	ret = store_name_check(name, strlen(name));
	if (ret < 0)
		return ret;
	masked = *attr;
	masked.mode &= STORE_MODE_MASK;
	pthread_mutex_lock(&db->lock);
	i = catalog_position(db, name, &found);
	ret = found ? -EEXIST : db->store_count >= db->opts.store_max ? -ENOSPC :
	      catalog_reserve(db);
	if (ret == 0)
		ret = db->ops->store_create(db, name, &masked, &store);
	if (ret == 0)
		catalog_insert_at(db, i, store);
	pthread_mutex_unlock(&db->lock);
	return blobdb_to_status(ret);
}

int store_destroy(struct blobdb *db, const char *name, bool only_if_empty)
{
	struct store *store = NULL;
	bool found;
	size_t i;
	int ret = store_name_check(name, strlen(name));

	if (ret < 0)
		return ret;
	pthread_mutex_lock(&db->lock);
	i = catalog_position(db, name, &found);
	ret = -ENOENT;
	if (found) {
		store = db->stores[i];
		ret = db->ops->store_remove(store, only_if_empty);
	}
	if (ret == 0) {
		memmove(&db->stores[i], &db->stores[i + 1],
			(db->store_count - i - 1) * sizeof(*db->stores));
		db->store_count--;
	}
	pthread_mutex_unlock(&db->lock);
	if (ret == 0) {
		/* The store is gone; its space comes back without any lock held,
		 * so that removing a big store does not stall everyone else. */
		if (db->ops->store_purge)
			db->ops->store_purge(store);
		store_close(store); /* the catalogue's reference */
	}
	return blobdb_to_status(ret);
}

int store_open(struct blobdb *db, const char *name, struct store **out)
{
	bool found;
	size_t i;
	int ret = -ENOENT;

	*out = NULL;
	for (int tries = 0; tries < 2 && ret == -ENOENT; tries++) {
		/* A miss may be a store made elsewhere: look once more after a
		 * refresh (which happens at most once per remote_ttl_ms). */
		if (tries)
			catalog_refresh(db);
		pthread_mutex_lock(&db->lock);
		i = catalog_position(db, name, &found);
		if (found) {
			*out = db->stores[i];
			(*out)->refcount++;
			ret = 0;
		}
		pthread_mutex_unlock(&db->lock);
		if (!db->ops->db_refresh)
			break;
	}
	return ret;
}

void store_close(struct store *store)
{
	struct blobdb *db;
	bool last;

	if (!store)
		return;
	db = store->db;
	pthread_mutex_lock(&db->lock);
	last = --store->refcount == 0;
	pthread_mutex_unlock(&db->lock);
	if (last)
		db->ops->store_free(store);
}

struct store *store_hold(struct store *store)
{
	pthread_mutex_lock(&store->db->lock);
	store->refcount++;
	pthread_mutex_unlock(&store->db->lock);
	return store;
}

bool store_destroyed(struct store *store)
{
	return __atomic_load_n(&store->destroyed, __ATOMIC_ACQUIRE);
}

const char *store_name(const struct store *store)
{
	return store->name;
}

int store_sync(struct store *store)
{
	return blobdb_to_status(store->db->ops->store_sync(store));
}

int store_compact(struct store *store, unsigned percent)
{
	const struct backend_ops *ops = store->db->ops;

	return ops->store_compact ? ops->store_compact(store, percent) : 0;
}

int store_stats(struct store *store, struct store_stats *out)
{
	memset(out, 0, sizeof(*out));
	return blobdb_to_status(store->db->ops->store_stats(store, out));
}

int store_list(struct blobdb *db, const char *after, int (*fn)(const char *name, void *arg),
	       void *arg)
{
	char name[256];
	bool found;
	int ret = 0;

	name[0] = '\0';
	if (after)
		snprintf(name, sizeof(name), "%s", after);
	else
		catalog_refresh(db); /* a listing from the start */
	/* The lock is dropped around each callback so that fn may block; the
	 * name cursor makes the walk correct under concurrent changes. */
	for (;;) {
		size_t i;
		pthread_mutex_lock(&db->lock);
		i = name[0] ? catalog_position(db, name, &found) : 0;
		if (name[0] && found)
			i++;
		if (i >= db->store_count) {
			pthread_mutex_unlock(&db->lock);
			break;
		}
		snprintf(name, sizeof(name), "%s", db->stores[i]->name);
		pthread_mutex_unlock(&db->lock);
		ret = fn(name, arg);
		if (ret)
			break;
	}
	return ret;
}

size_t store_count(struct blobdb *db)
{
	size_t n;

	pthread_mutex_lock(&db->lock);
	n = db->store_count;
	pthread_mutex_unlock(&db->lock);
	return n;
}

/* ---- blobs ---- */

int blob_info(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t *length)
{
	return blobdb_to_status(store->db->ops->blob_info(store, hash, length, NULL));
}

int blob_stat(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE], struct blob_stat *out)
{
	return blobdb_to_status(store->db->ops->blob_info(store, hash, &out->length, &out->saved));
}

int blob_delete(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	return blobdb_to_status(store->db->ops->blob_delete(store, hash));
}

int blob_save(struct store *store, const void *data, size_t len,
	      uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct blobdb *db = store->db;
	int ret;

	if (!data && len)
		return -EINVAL;
	pthread_rwlock_rdlock(&db->retract_lock);
	ret = db->ops->blob_save(store, data, len, hash);
	if (ret == 0 || ret == -EEXIST)
		tentative_claim(db->tentative, store, hash);
	pthread_rwlock_unlock(&db->retract_lock);
	return blobdb_to_status(ret);
}

int blob_list(struct store *store, const uint8_t *after, blob_list_fn fn, void *arg)
{
	enum { BATCH = 128 };
	struct blob_entry batch[BATCH];
	uint8_t cursor[BLOBFS_HASH_SIZE];
	bool have_cursor = after != NULL;
	int ret = 0;

	if (after)
		memcpy(cursor, after, BLOBFS_HASH_SIZE);
	/* fn may block (a readdir reply): it runs between batches, with no lock
	 * held; the cursor (the last hash handed out) keeps the walk right, and
	 * free of repeats, whatever changes between batches. */
	for (;;) {
		size_t n = store->db->ops->blob_list_batch(store, have_cursor ? cursor : NULL,
							   batch, BATCH);
		for (size_t i = 0; i < n && ret == 0; i++) {
			memcpy(cursor, batch[i].hash, BLOBFS_HASH_SIZE);
			have_cursor = true;
			ret = fn(batch[i].hash, batch[i].length, arg);
		}
		if (ret || n < BATCH)
			break;
	}
	return ret;
}

size_t blob_count(struct store *store)
{
	return store->db->ops->blob_count(store);
}

int blob_open(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
	      struct blob_reader **out)
{
	int ret;

	*out = NULL;
	ret = store->db->ops->reader_open(store, hash, out);
	if (ret == 0)
		(*out)->store = store_hold(store);
	return blobdb_to_status(ret);
}

uint64_t blob_reader_length(const struct blob_reader *reader)
{
	return reader->length;
}

int blob_read(struct blob_reader *reader, void *buf, size_t size, uint64_t off, size_t *got)
{
	*got = 0;
	return blobdb_to_status(reader->store->db->ops->reader_read(reader, buf, size, off, got));
}

void blob_close(struct blob_reader *reader)
{
	struct store *store;

	if (!reader)
		return;
	store = reader->store;
	store->db->ops->reader_close(reader);
	store_close(store);
}

int blob_writer_new(struct store *store, struct blob_writer **out)
{
	int ret;

	*out = NULL;
	ret = store->db->ops->writer_new(store, out);
	if (ret == 0)
		(*out)->store = store_hold(store);
	return blobdb_to_status(ret);
}

int blob_writer_write(struct blob_writer *writer, const void *buf, size_t size, uint64_t off)
{
	return blobdb_to_status(writer->store->db->ops->writer_write(writer, buf, size, off));
}

int blob_writer_read(struct blob_writer *writer, void *buf, size_t size, uint64_t off,
		     size_t *got)
{
	*got = 0;
	return blobdb_to_status(writer->store->db->ops->writer_read(writer, buf, size, off, got));
}

int blob_writer_truncate(struct blob_writer *writer, uint64_t size)
{
	return blobdb_to_status(writer->store->db->ops->writer_truncate(writer, size));
}

uint64_t blob_writer_size(struct blob_writer *writer)
{
	return writer->store->db->ops->writer_size(writer);
}

/*
 * Every save claims any tentative record of its content (tentative.h): once
 * two saves stand behind a blob, neither may take it back. Saves hold
 * retract_lock shared until their claim is recorded and a retract holds it
 * exclusive, so a retract sees either the claim or no blob at all.
 */
static int commit(struct blob_writer *writer, const uint8_t *expect,
		  uint8_t hash[BLOBFS_HASH_SIZE], bool *tentative)
{
	struct store *store = writer->store;
	struct blobdb *db = store->db;
	uint64_t since = tentative_begin(db->tentative);
	int ret;

	pthread_rwlock_rdlock(&db->retract_lock);
	ret = db->ops->writer_commit(writer, expect, hash);
	if (ret == 0 && tentative)
		*tentative = tentative_add(db->tentative, since, store, hash);
	else if (ret == 0 || ret == -EEXIST)
		tentative_claim(db->tentative, store, hash);
	pthread_rwlock_unlock(&db->retract_lock);
	return blobdb_to_status(ret);
}

int blob_writer_commit(struct blob_writer *writer, uint8_t hash[BLOBFS_HASH_SIZE])
{
	return commit(writer, NULL, hash, NULL);
}

int blob_writer_commit_tentative(struct blob_writer *writer, const uint8_t *expect,
				 uint8_t hash[BLOBFS_HASH_SIZE], bool *tentative)
{
	*tentative = false;
	return commit(writer, expect, hash, tentative);
}

int blob_retract(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct blobdb *db = store->db;
	int ret = -EEXIST;

	pthread_rwlock_wrlock(&db->retract_lock);
	if (tentative_remove(db->tentative, store, hash))
		ret = db->ops->blob_retract ? db->ops->blob_retract(store, hash) :
					      db->ops->blob_delete(store, hash);
	pthread_rwlock_unlock(&db->retract_lock);
	return blobdb_to_status(ret);
}

int blob_claim(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct blobdb *db = store->db;
	int ret;

	pthread_rwlock_rdlock(&db->retract_lock);
	ret = db->ops->blob_claim ? db->ops->blob_claim(store, hash) :
				    db->ops->blob_info(store, hash, NULL, NULL);
	if (ret == 0)
		tentative_claim(db->tentative, store, hash);
	pthread_rwlock_unlock(&db->retract_lock);
	return blobdb_to_status(ret);
}

/* Forgetting the record only makes the blob permanent: no save can be
 * affected, so no retract_lock. */
void blob_settle(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	tentative_remove(store->db->tentative, store, hash);
}

void blob_writer_free(struct blob_writer *writer)
{
	struct store *store;

	if (!writer)
		return;
	store = writer->store;
	store->db->ops->writer_free(writer);
	store_close(store);
}
