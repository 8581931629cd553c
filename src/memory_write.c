/*
 * memory_write.c - the memory backend's writers: content in one growable
 * buffer charged to the budget (holes read as zeros), which a commit turns
 * into the blob itself without a copy; a later change copies it first. A
 * failed write or truncate poisons the writer.
 *
 * Holes are not tracked: a truncate up, or a write past the end, allocates
 * (and zero-fills) the whole new size, charged to memory_max before it is
 * allocated. At the bound it fails with -ENOSPC, beyond memory_max itself
 * with -EFBIG; so a sparse file costs its size here, within the budget
 * (tests/unit/test_store_budget.c).
 */
#include "memory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

/* ---- writers ---- */

int memory_writer_new(struct store *store, struct blob_writer **out)
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
static int memwriter_reserve(struct memory_writer *w, uint64_t need)
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
		ret = membudget_take(db, capacity - w->capacity);
		if (ret == -ENOSPC && capacity > need) {
			capacity = need;
			ret = membudget_take(db, capacity - w->capacity);
		}
		if (ret < 0)
			goto out;
		buf = realloc(w->content, (size_t)(capacity + MEMORY_BLOB_OVERHEAD));
		if (!buf) {
			membudget_give(db, capacity + MEMORY_BLOB_OVERHEAD - charged);
			ret = -ENOMEM;
			goto out;
		}
	} else {
		/* Empty, or the committed blob: a fresh buffer (a copy of it). */
		ret = memblob_alloc(db, capacity, &buf);
		if (ret < 0)
			goto out;
		if (keep)
			memcpy(buf->data, w->content->data, (size_t)keep);
		if (w->content)
			memblob_unref(db, w->content);
		w->shared = false;
	}
	w->content = buf;
	w->capacity = capacity;
	ret = 0;
out:
	return ret;
}

int memory_writer_write(struct blob_writer *base, const void *buf, size_t size,
			       uint64_t off)
{
	struct memory_writer *w = (struct memory_writer *)base;
	uint64_t end;
	int ret;

	if (off > UINT64_MAX - size)
		return -EFBIG; /* nothing changed: not a reason to refuse the file */
	if (size == 0)
		return 0; /* as write(2): nothing written, nothing changes */
	pthread_mutex_lock(&w->lock);
	ret = w->error;
	if (ret < 0)
		goto out;
	end = off + size;
	ret = memwriter_reserve(w, end > w->size ? end : w->size);
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

int memory_writer_read(struct blob_writer *base, void *buf, size_t size, uint64_t off,
			      size_t *got)
{
	struct memory_writer *w = (struct memory_writer *)base;

	pthread_mutex_lock(&w->lock);
	*got = w->content ? memory_copy_out(w->content->data, w->size, buf, size, off) : 0;
	pthread_mutex_unlock(&w->lock);
	return 0;
}

int memory_writer_truncate(struct blob_writer *base, uint64_t size)
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
		ret = memwriter_reserve(w, size);
		if (ret < 0)
			goto out;
		if (size > w->size)
			memset(w->content->data + w->size, 0, (size_t)(size - w->size));
	} else if (w->capacity > size) {
		/* Shrinking gives the bytes back; a failed shrink keeps the
		 * larger buffer, still charged, and is not an error. */
		smaller = realloc(w->content, (size_t)(size + MEMORY_BLOB_OVERHEAD));
		if (smaller) {
			membudget_give(db, w->capacity - size);
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

uint64_t memory_writer_size(struct blob_writer *base)
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
int memory_writer_commit(struct blob_writer *base, const uint8_t *expect,
			 uint8_t hash[BLOBFS_HASH_SIZE])
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
		ret = memwriter_reserve(w, 0); /* the empty blob is a blob too */
		if (ret < 0)
			goto out;
	}
	if (!w->shared) {
		blob = realloc(w->content, (size_t)(w->size + MEMORY_BLOB_OVERHEAD));
		ret = -ENOMEM;
		if (!blob)
			goto out;
		membudget_give(db, w->capacity - w->size);
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
	if (expect && memcmp(hash, expect, BLOBFS_HASH_SIZE)) {
		ret = -EINVAL; /* the writer keeps it, shared: a change copies it */
		goto out;
	}
	ret = memstore_insert(ms, w->content, &existing);
	if (existing) {
		/* Keep the blob that is there and let ours go. */
		memblob_unref(db, w->content);
		w->content = existing;
	}
out:
	pthread_mutex_unlock(&w->lock);
	return ret;
}

void memory_writer_free(struct blob_writer *base)
{
	struct memory_writer *w = (struct memory_writer *)base;

	if (w->content && w->shared) {
		memblob_unref(store_db(base->store), w->content);
	} else if (w->content) { /* uncommitted: its charge back */
		membudget_give(store_db(base->store), w->capacity + MEMORY_BLOB_OVERHEAD);
		free(w->content);
	}
	pthread_mutex_destroy(&w->lock);
	free(w);
}
