/*
 * memory.c - the "memory:" backend (backend.h), the in-memory storage of the
 * Coffer blob server: stores whose blobs live in this process's memory and
 * vanish when the database is closed. Owns the memory budget (memory_max,
 * one for the whole database), each store's blobs in a treap ordered by
 * hash, the blobs' bytes and the content of open writers. Nothing is
 * durable, so every sync is a no-op that returns 0.
 *
 * A blob is one refcounted allocation: a header (treap links, hash, length,
 * the time it was listed: its first save) and its bytes. References: the
 * store's tree while the blob is listed, each open reader, and a writer whose last commit made or found it. A
 * delete unlinks the blob; its bytes stay until the last reference goes.
 *
 * The budget charges every blob held (its length plus MEMORY_BLOB_OVERHEAD,
 * the header: per-blob overhead counts, so that millions of tiny blobs
 * cannot grow memory without bound) and every writer's buffer (its capacity
 * plus the same overhead; at commit the buffer becomes the blob, no copy).
 * Reader and writer structs and stores are not charged. A blob is charged
 * once however many references it has, until the last goes: a deleted blob
 * pinned by a reader still counts. Saving a blob the store has costs
 * nothing (-EEXIST is decided before the budget); the same content in two
 * stores is two blobs, stores being independent as in the local engine.
 * At the bound a save, write or truncate fails with -ENOSPC and changes
 * nothing; a writer larger than memory_max by itself gets -EFBIG. A failed
 * write or truncate poisons the writer: every later write, truncate and
 * commit fails with that error, so a half-written file is never saved.
 *
 * Why a treap and not index.h: index.h slots hold a pack id and a 39-bit
 * offset, not a pointer, and its table grows by rehashing everything. The
 * treap's links live in the blob's header (no allocation per entry), every
 * operation is O(log n) expected whatever the hashes (priorities are random,
 * not taken from client-chosen content) and a cursor walk is O(log n + k).
 *
 * Locking: a mutex per store (its tree and count), one per writer; blob
 * references and the budget are atomics. The store lock is never held while
 * the database's lock is taken (blobdb.c takes them the other way round).
 */
#include "memory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"

/* ---- the database ---- */

static int memory_db_open(const char *location, const struct blobdb_options *opts,
			  struct blobdb **out)
{
	struct memory_db *db = NULL;
	uint64_t seed;
	long pages, page_size;
	int ret = -EINVAL;

	*out = NULL;
	if (*location) {
		log_error("memory backend: \"%s%s\": nothing may follow \"%s\"", MEMORY_LOCATION,
			  location, MEMORY_LOCATION);
		goto out;
	}
	ret = -ENOMEM;
	db = calloc(1, sizeof(*db));
	if (!db)
		goto out;
	ret = blobdb_init(&db->base, &memory_backend, MEMORY_LOCATION, opts);
	if (ret < 0)
		goto out;
	db->memory_max = db->base.opts.memory_max;
	if (db->memory_max == 0) {
		pages = sysconf(_SC_PHYS_PAGES);
		page_size = sysconf(_SC_PAGE_SIZE);
		ret = -EIO;
		if (pages <= 0 || page_size <= 0) {
			log_error("memory backend: cannot tell the size of the RAM for the default "
				  "memory_max; give one");
			goto out;
		}
		db->memory_max = (uint64_t)pages * (uint64_t)page_size / 100 *
				 MEMORY_MAX_DEFAULT_PERCENT;
	}
	db->base.opts.memory_max = db->memory_max;
	db->base.blob_max = db->memory_max > MEMORY_BLOB_OVERHEAD ?
			    db->memory_max - MEMORY_BLOB_OVERHEAD : 0;
	if (getrandom(&seed, sizeof(seed), GRND_NONBLOCK) != (ssize_t)sizeof(seed))
		seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)db; /* balance only */
	db->priority_seq = seed;
	ret = 0;
out:
	if (ret < 0 && db) {
		blobdb_close(&db->base); /* ends in memory_db_free */
		db = NULL;
	}
	*out = db ? &db->base : NULL;
	return ret;
}

/* db_stop and db_sync: no background work, nothing durable to make. */
static int memory_nothing_to_flush(struct blobdb *db)
{
	(void)db;
	return 0;
}

static void memory_db_free(struct blobdb *db)
{
	free(to_db(db));
}

static int memory_db_statfs(struct blobdb *base, struct statvfs *st)
{
	struct memory_db *db = to_db(base);
	uint64_t used = __atomic_load_n(&db->memory_used, __ATOMIC_RELAXED);
	uint64_t left = used < db->memory_max ? db->memory_max - used : 0;
	uint64_t blobs = __atomic_load_n(&db->blob_total, __ATOMIC_RELAXED);

	memset(st, 0, sizeof(*st));
	st->f_bsize = st->f_frsize = MEMORY_BLOCK_SIZE;
	st->f_blocks = db->memory_max / MEMORY_BLOCK_SIZE;
	st->f_bfree = st->f_bavail = left / MEMORY_BLOCK_SIZE;
	/* Each further blob costs at least its header. */
	st->f_ffree = st->f_favail = left / MEMORY_BLOB_OVERHEAD;
	st->f_files = blobs + st->f_ffree;
	st->f_namemax = 255;
	return 0;
}

/* ---- stores ---- */

static int memory_store_create(struct blobdb *db, const char *name,
			       const struct store_attr *attr, struct store **out)
{
	struct memory_store *ms = calloc(1, sizeof(*ms));
	int ret = ms ? store_init(&ms->base, db, name) : -ENOMEM;

	if (ret < 0) {
		if (ms)
			store_fini(&ms->base);
		free(ms);
		ms = NULL;
	} else {
		pthread_mutex_init(&ms->lock, NULL);
		ms->attr = *attr;
	}
	*out = ms ? &ms->base : NULL;
	return ret;
}

static int memory_store_get_attr(struct store *store, struct store_attr *out)
{
	struct memory_store *ms = to_store(store);
	int ret = -ENOENT;

	pthread_mutex_lock(&ms->lock);
	if (!store->destroyed) {
		*out = ms->attr;
		ret = 0;
	}
	pthread_mutex_unlock(&ms->lock);
	return ret;
}

static int memory_store_set_attr(struct store *store, const struct store_attr *attr)
{
	struct memory_store *ms = to_store(store);
	int ret = -ENOENT;

	pthread_mutex_lock(&ms->lock);
	if (!store->destroyed) {
		ms->attr = *attr;
		ret = 0;
	}
	pthread_mutex_unlock(&ms->lock);
	return ret;
}

static int memory_store_remove(struct store *store, bool only_if_empty)
{
	struct memory_store *ms = to_store(store);
	int ret = 0;

	pthread_mutex_lock(&ms->lock);
	if (only_if_empty && ms->count > 0)
		ret = -ENOTEMPTY;
	else
		__atomic_store_n(&store->destroyed, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&ms->lock);
	return ret;
}

/* Detaches the tree under the lock and frees it outside: nothing can be
 * added to a destroyed store, so the tree stays empty afterwards. */
static void memory_store_purge(struct store *store)
{
	struct memory_store *ms = to_store(store);
	struct memory_blob *root;

	pthread_mutex_lock(&ms->lock);
	root = ms->root;
	ms->root = NULL;
	ms->count = 0;
	pthread_mutex_unlock(&ms->lock);
	memtree_release(store_db(store), root);
}

static void memory_store_free(struct store *store)
{
	struct memory_store *ms = to_store(store);

	memtree_release(store_db(store), ms->root); /* a store still listed at close */
	pthread_mutex_destroy(&ms->lock);
	store_fini(store);
	free(ms);
}

static int memory_store_sync(struct store *store)
{
	(void)store;
	return 0; /* nothing is durable */
}

/* Packs and dead bytes stay 0: memory has neither. */
static int memory_store_stats(struct store *store, struct store_stats *out)
{
	struct memory_store *ms = to_store(store);
	int ret = -ENOENT;

	pthread_mutex_lock(&ms->lock);
	if (!store->destroyed) {
		out->blobs = ms->count;
		out->bytes = memtree_bytes(ms->root);
		ret = 0;
	}
	pthread_mutex_unlock(&ms->lock);
	return ret;
}

/* ---- blobs ---- */

static int memory_blob_info(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			    uint64_t *length, int64_t *saved)
{
	struct memory_store *ms = to_store(store);
	struct memory_blob *blob;
	int ret = -ENOENT;

	pthread_mutex_lock(&ms->lock);
	blob = store->destroyed ? NULL : memtree_find(ms->root, hash);
	if (blob) {
		if (length)
			*length = blob->length;
		if (saved)
			*saved = blob->saved;
		ret = 0;
	}
	pthread_mutex_unlock(&ms->lock);
	return ret;
}

static int memory_blob_delete(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct memory_store *ms = to_store(store);
	struct memory_blob *removed = NULL;

	pthread_mutex_lock(&ms->lock);
	if (!store->destroyed)
		ms->root = memtree_remove(ms->root, hash, &removed);
	if (removed)
		ms->count--;
	pthread_mutex_unlock(&ms->lock);
	if (!removed)
		return -ENOENT;
	__atomic_fetch_sub(&store_db(store)->blob_total, 1, __ATOMIC_RELAXED);
	memblob_unref(store_db(store), removed); /* readers may still hold it */
	return 0;
}

static size_t memory_blob_list_batch(struct store *store, const uint8_t *after,
				     struct blob_entry *out, size_t max)
{
	struct memory_store *ms = to_store(store);
	size_t n = 0;

	pthread_mutex_lock(&ms->lock);
	if (!store->destroyed)
		memtree_collect(ms->root, after, out, &n, max);
	pthread_mutex_unlock(&ms->lock);
	return n;
}

static size_t memory_blob_count(struct store *store)
{
	struct memory_store *ms = to_store(store);
	size_t n;

	pthread_mutex_lock(&ms->lock);
	n = store->destroyed ? 0 : ms->count;
	pthread_mutex_unlock(&ms->lock);
	return n;
}

static int memory_blob_save(struct store *store, const void *data, size_t len,
			    uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct memory_blob *blob = NULL;
	int ret = hash_buffer(data, len, hash);

	if (ret < 0)
		goto out;
	/* A blob already there costs nothing, even at the bound: looked up
	 * before anything is charged (and again at insert, for a race). */
	ret = memory_blob_info(store, hash, NULL, NULL);
	if (ret == 0)
		ret = -EEXIST;
	if (ret != -ENOENT)
		goto out;
	ret = memblob_alloc(store_db(store), len, &blob);
	if (ret == -EFBIG)
		ret = -ENOSPC; /* larger than the whole budget */
	if (ret < 0)
		goto out;
	if (len)
		memcpy(blob->data, data, len);
	blob->length = len;
	memcpy(blob->hash, hash, BLOBFS_HASH_SIZE);
	blob->refs = 1; /* ours, until the tree has taken its own */
	ret = memstore_insert(to_store(store), blob, NULL);
	memblob_unref(store_db(store), blob);
out:
	return ret;
}

/* ---- readers ---- */

/* Up to size bytes of data[0..length) at off; how many. */
size_t memory_copy_out(const uint8_t *data, uint64_t length, void *buf, size_t size,
		       uint64_t off)
{
	size_t n = 0;

	if (off < length) {
		n = length - off < size ? (size_t)(length - off) : size;
		memcpy(buf, data + off, n);
	}
	return n;
}

static int memory_reader_open(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			      struct blob_reader **out)
{
	struct memory_store *ms = to_store(store);
	struct memory_reader *reader = calloc(1, sizeof(*reader));
	struct memory_blob *blob;
	int ret = -ENOMEM;

	*out = NULL;
	if (!reader)
		goto out;
	pthread_mutex_lock(&ms->lock);
	blob = store->destroyed ? NULL : memtree_find(ms->root, hash);
	if (blob)
		reader->blob = memblob_ref(blob); /* the pin that outlives a delete */
	pthread_mutex_unlock(&ms->lock);
	ret = -ENOENT;
	if (!blob)
		goto out;
	reader->base.store = store;
	reader->base.length = blob->length;
	reader->db = store_db(store);
	*out = &reader->base;
	ret = 0;
out:
	if (ret < 0)
		free(reader);
	return ret;
}

static int memory_reader_read(struct blob_reader *base, void *buf, size_t size, uint64_t off,
			      size_t *got)
{
	struct memory_reader *reader = (struct memory_reader *)base;

	*got = memory_copy_out(reader->blob->data, reader->blob->length, buf, size, off);
	return 0; /* memory is not damaged the way a disk is: no check to fail */
}

static void memory_reader_close(struct blob_reader *base)
{
	struct memory_reader *reader = (struct memory_reader *)base;

	memblob_unref(reader->db, reader->blob);
	free(reader);
}

/* No db_start, db_note_pid, db_compact, db_checkpoint or store_compact: no background
 * work, no lock file, and freed bytes go back to malloc at once. */
const struct backend_ops memory_backend = {
	.name = "memory",
	.db_open = memory_db_open,
	.db_stop = memory_nothing_to_flush,
	.db_free = memory_db_free,
	.db_sync = memory_nothing_to_flush,
	.db_statfs = memory_db_statfs,
	.store_create = memory_store_create,
	.store_get_attr = memory_store_get_attr,
	.store_set_attr = memory_store_set_attr,
	.store_remove = memory_store_remove,
	.store_purge = memory_store_purge,
	.store_free = memory_store_free,
	.store_sync = memory_store_sync,
	.store_stats = memory_store_stats,
	.blob_info = memory_blob_info,
	.blob_delete = memory_blob_delete,
	.blob_list_batch = memory_blob_list_batch,
	.blob_count = memory_blob_count,
	.blob_save = memory_blob_save,
	.reader_open = memory_reader_open,
	.reader_read = memory_reader_read,
	.reader_close = memory_reader_close,
	.writer_new = memory_writer_new,
	.writer_write = memory_writer_write,
	.writer_read = memory_writer_read,
	.writer_truncate = memory_writer_truncate,
	.writer_size = memory_writer_size,
	.writer_commit = memory_writer_commit,
	.writer_free = memory_writer_free,
};
