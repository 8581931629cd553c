/*
 * memory.c - the "memory:" backend (backend.h), the in-memory storage of the
 * Coffer blob server: stores whose blobs live in this process's memory and
 * vanish when the database is closed. Owns the memory budget (memory_max,
 * one for the whole database), each store's blobs in a treap ordered by
 * hash, the blobs' bytes and the content of open writers. Nothing is
 * durable, so every sync is a no-op that returns 0.
 *
 * A blob is one refcounted allocation: a header (treap links, hash, length)
 * and its bytes. References: the store's tree while the blob is listed,
 * each open reader, and a writer whose last commit made or found it. A
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
#include "backend.h"
#include "hash.h"
#include "log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

struct memory_blob {
	struct memory_blob *left, *right; /* the store's treap, while listed */
	uint32_t priority;                /* treap heap order: random */
	unsigned refs;                    /* atomic */
	uint64_t length;
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint8_t data[];
};

#define MEMORY_BLOB_OVERHEAD ((uint64_t)sizeof(struct memory_blob))
#define MEMORY_BLOCK_SIZE 4096

struct memory_db {
	struct blobdb base;
	uint64_t memory_max;
	uint64_t memory_used;  /* atomic: bytes charged, see the header */
	size_t blob_total;     /* atomic: blobs listed in every store, for statfs */
	uint64_t priority_seq; /* atomic: the treap priorities' generator state */
};

struct memory_store {
	struct store base;
	pthread_mutex_t lock;
	struct memory_blob *root; /* the treap: hash order, max-heap on priority */
	size_t count;
};

struct memory_reader {
	struct blob_reader base;
	struct memory_db *db; /* outlives the reader, unlike the store may */
	struct memory_blob *blob;
};

struct memory_writer {
	struct blob_writer base;
	pthread_mutex_t lock;
	/* The content: a buffer only this writer sees (capacity bytes of data,
	 * charged), or after a commit the saved blob itself (shared, read-only,
	 * copied before any change). NULL while empty and never committed. */
	struct memory_blob *content;
	bool shared;
	uint64_t size;
	uint64_t capacity;
	int error; /* the first failed write or truncate; sticky */
};

/* The base structs are the first members (backend.h). */
#define to_db(base) ((struct memory_db *)(base))
#define to_store(base) ((struct memory_store *)(base))
#define store_db(store) to_db((store)->db)

/* ---- the budget ---- */

static int budget_take(struct memory_db *db, uint64_t bytes)
{
	uint64_t used = __atomic_load_n(&db->memory_used, __ATOMIC_RELAXED);

	do {
		if (bytes > db->memory_max || used > db->memory_max - bytes)
			return -ENOSPC;
	} while (!__atomic_compare_exchange_n(&db->memory_used, &used, used + bytes, true,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return 0;
}

static void budget_give(struct memory_db *db, uint64_t bytes)
{
	__atomic_fetch_sub(&db->memory_used, bytes, __ATOMIC_RELAXED);
}

/* ---- blobs ---- */

/* Random, so that no choice of contents can unbalance a tree: splitmix64
 * over a counter seeded from getrandom at open. */
static uint32_t next_priority(struct memory_db *db)
{
	uint64_t z = __atomic_add_fetch(&db->priority_seq, UINT64_C(0x9e3779b97f4a7c15),
					__ATOMIC_RELAXED);

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* An unshared buffer for capacity bytes of content, charged. */
static int blob_alloc(struct memory_db *db, uint64_t capacity, struct memory_blob **out)
{
	struct memory_blob *blob = NULL;
	int ret = -EFBIG;

	if (capacity > SIZE_MAX - MEMORY_BLOB_OVERHEAD)
		goto out;
	ret = budget_take(db, capacity + MEMORY_BLOB_OVERHEAD);
	if (ret < 0)
		goto out;
	blob = malloc((size_t)(capacity + MEMORY_BLOB_OVERHEAD));
	if (!blob) {
		budget_give(db, capacity + MEMORY_BLOB_OVERHEAD);
		ret = -ENOMEM;
		goto out;
	}
	memset(blob, 0, sizeof(*blob));
out:
	*out = blob;
	return ret;
}

static struct memory_blob *blob_ref(struct memory_blob *blob)
{
	__atomic_add_fetch(&blob->refs, 1, __ATOMIC_RELAXED);
	return blob;
}

/* Drops a reference; the last one frees the bytes and gives them back. */
static void blob_unref(struct memory_db *db, struct memory_blob *blob)
{
	if (__atomic_sub_fetch(&blob->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	budget_give(db, blob->length + MEMORY_BLOB_OVERHEAD);
	free(blob);
}

/* ---- the treap (called with the store's lock held) ---- */

static int hash_cmp(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, BLOBFS_HASH_SIZE);
}

static struct memory_blob *tree_find(struct memory_blob *node, const uint8_t *hash)
{
	while (node) {
		int c = hash_cmp(hash, node->hash);
		if (c == 0)
			return node;
		node = c < 0 ? node->left : node->right;
	}
	return NULL;
}

/* Inserts blob (whose hash is not in the tree); returns the new root. The
 * recursion is as deep as the tree: O(log n) with random priorities. */
static struct memory_blob *tree_insert(struct memory_blob *node, struct memory_blob *blob)
{
	struct memory_blob *child;

	if (!node)
		return blob;
	if (hash_cmp(blob->hash, node->hash) < 0) {
		node->left = tree_insert(node->left, blob);
		if (node->left->priority > node->priority) { /* rotate right */
			child = node->left;
			node->left = child->right;
			child->right = node;
			return child;
		}
	} else {
		node->right = tree_insert(node->right, blob);
		if (node->right->priority > node->priority) { /* rotate left */
			child = node->right;
			node->right = child->left;
			child->left = node;
			return child;
		}
	}
	return node;
}

/* Joins two treaps, every key of low below every key of high. */
static struct memory_blob *tree_merge(struct memory_blob *low, struct memory_blob *high)
{
	if (!low)
		return high;
	if (!high)
		return low;
	if (low->priority > high->priority) {
		low->right = tree_merge(low->right, high);
		return low;
	}
	high->left = tree_merge(low, high->left);
	return high;
}

/* Unlinks the node for hash into *removed (NULL when absent); returns the
 * new root. */
static struct memory_blob *tree_remove(struct memory_blob *node, const uint8_t *hash,
				       struct memory_blob **removed)
{
	int c;

	if (!node)
		return NULL;
	c = hash_cmp(hash, node->hash);
	if (c < 0) {
		node->left = tree_remove(node->left, hash, removed);
	} else if (c > 0) {
		node->right = tree_remove(node->right, hash, removed);
	} else {
		*removed = node;
		return tree_merge(node->left, node->right);
	}
	return node;
}

/* Copies up to max entries after `after` (NULL: from the first), in hash
 * order, into out[*n...]; skips every subtree at or before the cursor, so a
 * batch costs O(log n + max). */
static void tree_collect(const struct memory_blob *node, const uint8_t *after,
			 struct blob_entry *out, size_t *n, size_t max)
{
	while (node && *n < max) {
		if (after && hash_cmp(node->hash, after) <= 0) {
			node = node->right;
			continue;
		}
		tree_collect(node->left, after, out, n, max);
		if (*n >= max)
			return;
		memcpy(out[*n].hash, node->hash, BLOBFS_HASH_SIZE);
		out[*n].length = node->length;
		(*n)++;
		after = NULL; /* everything right of a listed node is after it */
		node = node->right;
	}
}

/* Drops the tree's reference to every blob of a detached tree, without
 * recursion: rotating left children up turns the tree into a list. */
static void tree_release(struct memory_db *db, struct memory_blob *node)
{
	size_t dropped = 0;

	while (node) {
		struct memory_blob *next;
		if (node->left) {
			next = node->left;
			node->left = next->right;
			next->right = node;
			node = next;
			continue;
		}
		next = node->right;
		blob_unref(db, node);
		dropped++;
		node = next;
	}
	__atomic_fetch_sub(&db->blob_total, dropped, __ATOMIC_RELAXED);
}

/* Lists blob in the store, taking the tree's reference; -EEXIST when the
 * store has its hash, -ENOENT when the store was destroyed. On -EEXIST,
 * *existing (if not NULL) gets a reference to the blob that is there. */
static int store_insert(struct memory_store *ms, struct memory_blob *blob,
			struct memory_blob **existing)
{
	struct memory_blob *found;
	int ret = -ENOENT;

	pthread_mutex_lock(&ms->lock);
	if (ms->base.destroyed)
		goto out;
	found = tree_find(ms->root, blob->hash);
	ret = -EEXIST;
	if (found) {
		if (existing)
			*existing = blob_ref(found);
		goto out;
	}
	blob->left = blob->right = NULL;
	blob->priority = next_priority(store_db(&ms->base));
	ms->root = tree_insert(ms->root, blob_ref(blob));
	ms->count++;
	__atomic_fetch_add(&store_db(&ms->base)->blob_total, 1, __ATOMIC_RELAXED);
	ret = 0;
out:
	pthread_mutex_unlock(&ms->lock);
	return ret;
}

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

static int memory_store_create(struct blobdb *db, const char *name, struct store **out)
{
	struct memory_store *ms = calloc(1, sizeof(*ms));
	int ret = ms ? store_init(&ms->base, db, name) : -ENOMEM;

	if (ret < 0) {
		free(ms);
		ms = NULL;
	} else {
		pthread_mutex_init(&ms->lock, NULL);
	}
	*out = ms ? &ms->base : NULL;
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
	tree_release(store_db(store), root);
}

static void memory_store_free(struct store *store)
{
	struct memory_store *ms = to_store(store);

	tree_release(store_db(store), ms->root); /* a store still listed at close */
	pthread_mutex_destroy(&ms->lock);
	store_fini(store);
	free(ms);
}

static int memory_store_sync(struct store *store)
{
	(void)store;
	return 0; /* nothing is durable */
}

/* ---- blobs ---- */

static int memory_blob_info(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			    uint64_t *length)
{
	struct memory_store *ms = to_store(store);
	struct memory_blob *blob;
	int ret = -ENOENT;

	pthread_mutex_lock(&ms->lock);
	blob = store->destroyed ? NULL : tree_find(ms->root, hash);
	if (blob) {
		if (length)
			*length = blob->length;
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
		ms->root = tree_remove(ms->root, hash, &removed);
	if (removed)
		ms->count--;
	pthread_mutex_unlock(&ms->lock);
	if (!removed)
		return -ENOENT;
	__atomic_fetch_sub(&store_db(store)->blob_total, 1, __ATOMIC_RELAXED);
	blob_unref(store_db(store), removed); /* readers may still hold it */
	return 0;
}

static size_t memory_blob_list_batch(struct store *store, const uint8_t *after,
				     struct blob_entry *out, size_t max)
{
	struct memory_store *ms = to_store(store);
	size_t n = 0;

	pthread_mutex_lock(&ms->lock);
	if (!store->destroyed)
		tree_collect(ms->root, after, out, &n, max);
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
	ret = memory_blob_info(store, hash, NULL);
	if (ret == 0)
		ret = -EEXIST;
	if (ret != -ENOENT)
		goto out;
	ret = blob_alloc(store_db(store), len, &blob);
	if (ret == -EFBIG)
		ret = -ENOSPC; /* larger than the whole budget */
	if (ret < 0)
		goto out;
	if (len)
		memcpy(blob->data, data, len);
	blob->length = len;
	memcpy(blob->hash, hash, BLOBFS_HASH_SIZE);
	blob->refs = 1; /* ours, until the tree has taken its own */
	ret = store_insert(to_store(store), blob, NULL);
	blob_unref(store_db(store), blob);
out:
	return ret;
}

/* ---- readers ---- */

/* Up to size bytes of data[0..length) at off; how many. */
static size_t copy_out(const uint8_t *data, uint64_t length, void *buf, size_t size,
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
	blob = store->destroyed ? NULL : tree_find(ms->root, hash);
	if (blob)
		reader->blob = blob_ref(blob); /* the pin that outlives a delete */
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

	*got = copy_out(reader->blob->data, reader->blob->length, buf, size, off);
	return 0; /* memory is not damaged the way a disk is: no check to fail */
}

static void memory_reader_close(struct blob_reader *base)
{
	struct memory_reader *reader = (struct memory_reader *)base;

	blob_unref(reader->db, reader->blob);
	free(reader);
}

/* ---- writers ---- */

static int memory_writer_new(struct store *store, struct blob_writer **out)
{
	struct memory_writer *w = calloc(1, sizeof(*w));

	*out = NULL;
	if (!w)
		return -ENOMEM;
	pthread_mutex_init(&w->lock, NULL);
	w->base.store = store; /* blobdb.c holds a reference for the writer */
	*out = &w->base;
	return 0;
}

/*
 * Makes the content an unshared buffer of at least need bytes, keeping the
 * first min(size, need) bytes. Grows by half again when that fits the
 * budget (appends in small pieces stay linear), else exactly. -EFBIG beyond
 * memory_max, -ENOSPC when the rest of the budget is too small; either way
 * nothing changed.
 */
static int writer_reserve(struct memory_writer *w, uint64_t need)
{
	struct memory_db *db = store_db(w->base.store);
	struct memory_blob *buf = NULL;
	uint64_t capacity = need, charged = 0, keep = w->size < need ? w->size : need;
	int ret = 0;

	if (w->content && !w->shared && need <= w->capacity)
		goto out;
	ret = -EFBIG;
	if (db->memory_max < MEMORY_BLOB_OVERHEAD || need > db->memory_max - MEMORY_BLOB_OVERHEAD)
		goto out;
	if (w->content && !w->shared) {
		uint64_t grow = w->capacity / 2; /* need > w->capacity here */
		charged = w->capacity + MEMORY_BLOB_OVERHEAD;
		if (grow > need - w->capacity &&
		    grow <= db->memory_max - MEMORY_BLOB_OVERHEAD - w->capacity)
			capacity = w->capacity + grow;
		ret = budget_take(db, capacity - w->capacity);
		if (ret == -ENOSPC && capacity > need) {
			capacity = need;
			ret = budget_take(db, capacity - w->capacity);
		}
		if (ret < 0)
			goto out;
		buf = realloc(w->content, (size_t)(capacity + MEMORY_BLOB_OVERHEAD));
		if (!buf) {
			budget_give(db, capacity + MEMORY_BLOB_OVERHEAD - charged);
			ret = -ENOMEM;
			goto out;
		}
	} else {
		/* Empty, or the committed blob: a fresh buffer (a copy of it). */
		ret = blob_alloc(db, capacity, &buf);
		if (ret < 0)
			goto out;
		if (keep)
			memcpy(buf->data, w->content->data, (size_t)keep);
		if (w->content)
			blob_unref(db, w->content);
		w->shared = false;
	}
	w->content = buf;
	w->capacity = capacity;
	ret = 0;
out:
	return ret;
}

static int memory_writer_write(struct blob_writer *base, const void *buf, size_t size,
			       uint64_t off)
{
	struct memory_writer *w = (struct memory_writer *)base;
	uint64_t end;
	int ret;

	pthread_mutex_lock(&w->lock);
	ret = w->error;
	if (ret < 0 || size == 0) /* as write(2): nothing written, nothing changes */
		goto out;
	ret = -EFBIG;
	if (off > UINT64_MAX - size)
		goto out;
	end = off + size;
	ret = writer_reserve(w, end > w->size ? end : w->size);
	if (ret < 0)
		goto out;
	if (off > w->size) /* a hole: reads as zeros */
		memset(w->content->data + w->size, 0, (size_t)(off - w->size));
	memcpy(w->content->data + off, buf, size);
	if (end > w->size)
		w->size = end;
out:
	if (ret < 0 && w->error == 0)
		w->error = ret; /* for good: the content is not what was written */
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static int memory_writer_read(struct blob_writer *base, void *buf, size_t size, uint64_t off,
			      size_t *got)
{
	struct memory_writer *w = (struct memory_writer *)base;

	pthread_mutex_lock(&w->lock);
	*got = w->content ? copy_out(w->content->data, w->size, buf, size, off) : 0;
	pthread_mutex_unlock(&w->lock);
	return 0;
}

static int memory_writer_truncate(struct blob_writer *base, uint64_t size)
{
	struct memory_writer *w = (struct memory_writer *)base;
	struct memory_db *db = store_db(base->store);
	struct memory_blob *smaller;
	int ret;

	pthread_mutex_lock(&w->lock);
	ret = w->error;
	if (ret < 0 || size == w->size)
		goto out;
	if (size > w->size || w->shared) {
		ret = writer_reserve(w, size);
		if (ret < 0)
			goto out;
		if (size > w->size)
			memset(w->content->data + w->size, 0, (size_t)(size - w->size));
	} else if (w->capacity > size) {
		/* Shrinking gives the bytes back; a failed shrink keeps the
		 * larger buffer, still charged, and is not an error. */
		smaller = realloc(w->content, (size_t)(size + MEMORY_BLOB_OVERHEAD));
		if (smaller) {
			budget_give(db, w->capacity - size);
			w->content = smaller;
			w->capacity = size;
		}
	}
	w->size = size;
out:
	if (ret < 0 && w->error == 0)
		w->error = ret; /* for good: the content is not what was written */
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static uint64_t memory_writer_size(struct blob_writer *base)
{
	struct memory_writer *w = (struct memory_writer *)base;
	uint64_t size;

	pthread_mutex_lock(&w->lock);
	size = w->size;
	pthread_mutex_unlock(&w->lock);
	return size;
}

/*
 * The writer's buffer becomes the blob without a copy: trimmed to the
 * content (so it is charged as a blob is), hashed and listed. Afterwards the
 * writer holds a reference to the blob in the store (its own or the one that
 * was already there) and copies it before any further change.
 */
static int memory_writer_commit(struct blob_writer *base, uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct memory_writer *w = (struct memory_writer *)base;
	struct memory_store *ms = to_store(base->store);
	struct memory_db *db = store_db(base->store);
	struct memory_blob *blob, *existing = NULL;
	int ret;

	pthread_mutex_lock(&w->lock);
	ret = w->error;
	if (ret < 0)
		goto out;
	if (!w->content) {
		ret = writer_reserve(w, 0); /* the empty blob is a blob too */
		if (ret < 0)
			goto out;
	}
	if (!w->shared) {
		blob = realloc(w->content, (size_t)(w->size + MEMORY_BLOB_OVERHEAD));
		ret = -ENOMEM;
		if (!blob)
			goto out;
		budget_give(db, w->capacity - w->size);
		w->content = blob;
		w->capacity = w->size;
		blob->length = w->size;
		ret = hash_buffer(blob->data, (size_t)blob->length, blob->hash);
		if (ret < 0)
			goto out;
		blob->refs = 1; /* the writer's */
		w->shared = true;
	}
	/* Listed again even after a delete: the writer's reference kept it. */
	memcpy(hash, w->content->hash, BLOBFS_HASH_SIZE);
	ret = store_insert(ms, w->content, &existing);
	if (existing) {
		/* Keep the blob that is there and let ours go. */
		blob_unref(db, w->content);
		w->content = existing;
	}
out:
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static void memory_writer_free(struct blob_writer *base)
{
	struct memory_writer *w = (struct memory_writer *)base;

	if (w->content && w->shared) {
		blob_unref(store_db(base->store), w->content);
	} else if (w->content) { /* uncommitted: its charge back */
		budget_give(store_db(base->store), w->capacity + MEMORY_BLOB_OVERHEAD);
		free(w->content);
	}
	pthread_mutex_destroy(&w->lock);
	free(w);
}

/* No db_start, db_note_pid, db_compact or store_compact: no background
 * work, no lock file, and freed bytes go back to malloc at once. */
const struct backend_ops memory_backend = {
	.name = "memory",
	.db_open = memory_db_open,
	.db_stop = memory_nothing_to_flush,
	.db_free = memory_db_free,
	.db_sync = memory_nothing_to_flush,
	.db_statfs = memory_db_statfs,
	.store_create = memory_store_create,
	.store_remove = memory_store_remove,
	.store_purge = memory_store_purge,
	.store_free = memory_store_free,
	.store_sync = memory_store_sync,
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
