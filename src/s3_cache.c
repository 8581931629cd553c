/*
 * s3_cache.c - the bound on the cache directory (cache_size): the bytes of
 * blobs in the outbox and in the read cache together. The read cache gives
 * way first, oldest fetched first, down to 80% of the bound (so that an
 * eviction pass, a walk over every cached blob, is not made for every
 * fetch); the outbox never does (its blobs are not in the object store yet):
 * when it alone would pass the bound, a save fails with ENOSPC until
 * uploads make room.
 *
 * The figures are blob lengths, not disk usage: the space of an evicted
 * small blob comes back when the read cache's compaction rewrites its pack
 * (the local backend's compact_percent), a large blob's at once.
 */
#include "s3.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

struct cached {
	int64_t saved; /* when it was fetched */
	uint64_t length;
	struct s3_store *store;
	uint8_t hash[BLOBFS_HASH_SIZE];
};

struct walk {
	struct cached *items;
	size_t count, capacity;
	uint64_t bytes;
	struct s3_store *store;
	bool outbox;
	int ret;
	/* The stores the items point into, each held (store_hold) until the
	 * eviction is over: a store may be removed meanwhile. */
	struct s3_store **held;
	size_t held_count;
};

static int add_item(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct walk *w = arg;
	struct blob_stat st;

	w->bytes += length;
	if (w->outbox)
		return 0;
	if (w->count == w->capacity) {
		size_t cap = w->capacity ? w->capacity * 2 : 1024;
		struct cached *p = realloc(w->items, cap * sizeof(*p));

		if (!p) {
			w->ret = -ENOMEM;
			return 1;
		}
		w->items = p;
		w->capacity = cap;
	}
	if (blob_stat(w->store->clean, hash, &st) < 0)
		return 0; /* gone meanwhile */
	w->items[w->count].saved = st.saved;
	w->items[w->count].length = length;
	w->items[w->count].store = w->store;
	memcpy(w->items[w->count].hash, hash, BLOBFS_HASH_SIZE);
	w->count++;
	return 0;
}

static int walk_store(struct store *store, void *arg)
{
	struct walk *w = arg;
	size_t before = w->count;

	w->store = to_s3store(store);
	(void)blob_list(w->outbox ? w->store->outbox : w->store->clean, NULL, add_item, w);
	if (w->count > before) {
		struct s3_store **p = realloc(w->held, (w->held_count + 1) * sizeof(*p));

		if (!p) {
			w->count = before; /* not held: its items cannot stay */
			w->ret = -ENOMEM;
			return w->ret;
		}
		w->held = p;
		w->held[w->held_count++] = to_s3store(store_hold(store));
	}
	return w->ret;
}

/* The read cache's bytes of a store (no items kept). */
static int walk_store_clean_bytes(struct store *store, void *arg)
{
	struct walk *w = arg;

	w->store = to_s3store(store);
	(void)blob_list(w->store->clean, NULL, add_item, w);
	return w->ret;
}

static void walk_release(struct walk *w)
{
	for (size_t i = 0; i < w->held_count; i++)
		store_close(&w->held[i]->base);
	free(w->held);
	free(w->items);
}

static int by_age(const void *a, const void *b)
{
	const struct cached *x = a, *y = b;

	return x->saved < y->saved ? -1 : x->saved > y->saved;
}

int s3_cache_count(struct s3_db *db)
{
	struct walk w = { .outbox = true };
	int ret = blobdb_each_store(&db->base, walk_store, &w);

	__atomic_store_n(&db->outbox_bytes, w.bytes, __ATOMIC_RELAXED);
	walk_release(&w);
	memset(&w, 0, sizeof(w));
	w.outbox = true; /* bytes only: the clean walk's items are not needed here */
	ret = ret ? ret : blobdb_each_store(&db->base, walk_store_clean_bytes, &w);
	__atomic_store_n(&db->clean_bytes, w.bytes, __ATOMIC_RELAXED);
	walk_release(&w);
	return ret;
}

/* Evicts read-cache blobs, oldest first, until the cache holds at most
 * target bytes (or the read cache is empty). The walk's stores stay held
 * until the caller releases it (outside evict_lock: a last store_close
 * frees a store). */
static void evict_to(struct s3_db *db, uint64_t target, struct walk *w)
{
	uint64_t outbox = __atomic_load_n(&db->outbox_bytes, __ATOMIC_RELAXED), clean, freed = 0;
	size_t evicted = 0;

	w->outbox = false;
	if (blobdb_each_store(&db->base, walk_store, w) < 0)
		return;
	/* The walk's own count is the truth: the running figure drifts when
	 * blobs change under it. */
	clean = w->bytes;
	if (w->count)
		qsort(w->items, w->count, sizeof(*w->items), by_age);
	for (size_t i = 0; i < w->count && outbox + clean - freed > target; i++) {
		if (blob_delete(w->items[i].store->clean, w->items[i].hash) < 0)
			continue;
		freed += w->items[i].length;
		evicted++;
	}
	__atomic_store_n(&db->clean_bytes, clean - freed, __ATOMIC_RELAXED);
	if (evicted)
		log_info("s3: cache: evicted %zu blobs (%llu bytes), fetched longest ago", evicted,
			 (unsigned long long)freed);
}

int s3_cache_make_room(struct s3_db *db, uint64_t bytes, bool for_outbox)
{
	struct walk w = { .outbox = false };
	uint64_t outbox, clean, target;
	int ret = 0;

	/* evict_lock comes before the catalogue's lock (the walk takes it). */
	pthread_mutex_lock(&db->evict_lock);
	outbox = __atomic_load_n(&db->outbox_bytes, __ATOMIC_RELAXED) + db->outbox_reserved;
	clean = __atomic_load_n(&db->clean_bytes, __ATOMIC_RELAXED);
	if (bytes > db->cache_size || outbox + clean > db->cache_size - bytes) {
		target = db->cache_size / 5 * 4;
		evict_to(db, target > bytes ? target - bytes : 0, &w);
	}
	outbox = __atomic_load_n(&db->outbox_bytes, __ATOMIC_RELAXED) + db->outbox_reserved;
	if (for_outbox && (bytes > db->cache_size || outbox > db->cache_size - bytes)) {
		/* Before refusing, the outbox's true size (a removed store's
		 * blobs went without being counted out). */
		pthread_mutex_unlock(&db->evict_lock);
		walk_release(&w);
		memset(&w, 0, sizeof(w));
		(void)s3_cache_count(db);
		pthread_mutex_lock(&db->evict_lock);
		outbox = __atomic_load_n(&db->outbox_bytes, __ATOMIC_RELAXED) + db->outbox_reserved;
		if (bytes > db->cache_size || outbox > db->cache_size - bytes)
			ret = -ENOSPC;
	}
	pthread_mutex_unlock(&db->evict_lock);
	walk_release(&w);
	return ret;
}

int s3_cache_reserve(struct s3_db *db, uint64_t bytes)
{
	int ret;

	/* make_room decides under evict_lock and lets go of it (its walk
	 * takes the catalogue's lock); the room is checked again here, under
	 * the lock, so that of saves passing at once only those that fit
	 * reserve. bytes <= cache_size once make_room said yes. */
	ret = s3_cache_make_room(db, bytes, true);
	if (ret < 0)
		return ret;
	pthread_mutex_lock(&db->evict_lock);
	if (__atomic_load_n(&db->outbox_bytes, __ATOMIC_RELAXED) + db->outbox_reserved >
	    db->cache_size - bytes)
		ret = -ENOSPC;
	else
		db->outbox_reserved += bytes;
	pthread_mutex_unlock(&db->evict_lock);
	return ret;
}

void s3_cache_reserve_end(struct s3_db *db, uint64_t bytes, bool used)
{
	pthread_mutex_lock(&db->evict_lock);
	db->outbox_reserved -= bytes < db->outbox_reserved ? bytes : db->outbox_reserved;
	if (used)
		__atomic_add_fetch(&db->outbox_bytes, bytes, __ATOMIC_RELAXED);
	pthread_mutex_unlock(&db->evict_lock);
}

void s3_cache_add(struct s3_db *db, bool outbox, int64_t bytes)
{
	uint64_t *field = outbox ? &db->outbox_bytes : &db->clean_bytes;

	if (bytes >= 0) {
		__atomic_add_fetch(field, (uint64_t)bytes, __ATOMIC_RELAXED);
		return;
	}
	/* Never below zero: a figure that drifted stays a bound's estimate. */
	for (uint64_t old = __atomic_load_n(field, __ATOMIC_RELAXED), new;;) {
		new = old > (uint64_t)-bytes ? old - (uint64_t)-bytes : 0;
		if (__atomic_compare_exchange_n(field, &old, new, false, __ATOMIC_RELAXED,
						__ATOMIC_RELAXED))
			break;
	}
}
