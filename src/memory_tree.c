/*
 * memory_tree.c - the memory backend's bookkeeping of bytes: the budget
 * (memory_max, charged as memory.c's header says), blob buffers with their
 * reference counts, and each store's treap of blobs ordered by hash (links
 * in the blob's own header; random priorities, so that client-chosen hashes
 * cannot unbalance it). The treap calls are made with the store's lock held.
 */
#include "memory.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- the budget ---- */

int membudget_take(struct memory_db *db, uint64_t bytes)
{
	uint64_t used = __atomic_load_n(&db->memory_used, __ATOMIC_RELAXED);

	do {
		if (bytes > db->memory_max || used > db->memory_max - bytes)
			return -ENOSPC;
	} while (!__atomic_compare_exchange_n(&db->memory_used, &used, used + bytes, true,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return 0;
}

void membudget_give(struct memory_db *db, uint64_t bytes)
{
	__atomic_fetch_sub(&db->memory_used, bytes, __ATOMIC_RELAXED);
}

/* ---- blobs ---- */

/* Random, so that no choice of contents can unbalance a tree: splitmix64
 * over a counter seeded from getrandom at open. */
static uint32_t memblob_priority(struct memory_db *db)
{
	uint64_t z = __atomic_add_fetch(&db->priority_seq, UINT64_C(0x9e3779b97f4a7c15),
					__ATOMIC_RELAXED);

	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* An unshared buffer for capacity bytes of content, charged. */
int memblob_alloc(struct memory_db *db, uint64_t capacity, struct memory_blob **out)
{
	struct memory_blob *blob = NULL;
	int ret = -EFBIG;

	if (capacity > SIZE_MAX - MEMORY_BLOB_OVERHEAD)
		goto out;
	ret = membudget_take(db, capacity + MEMORY_BLOB_OVERHEAD);
	if (ret < 0)
		goto out;
	blob = malloc((size_t)(capacity + MEMORY_BLOB_OVERHEAD));
	if (!blob) {
		membudget_give(db, capacity + MEMORY_BLOB_OVERHEAD);
		ret = -ENOMEM;
		goto out;
	}
	memset(blob, 0, sizeof(*blob));
out:
	*out = blob;
	return ret;
}

struct memory_blob *memblob_ref(struct memory_blob *blob)
{
	__atomic_add_fetch(&blob->refs, 1, __ATOMIC_RELAXED);
	return blob;
}

/* Drops a reference; the last one frees the bytes and gives them back. */
void memblob_unref(struct memory_db *db, struct memory_blob *blob)
{
	if (__atomic_sub_fetch(&blob->refs, 1, __ATOMIC_ACQ_REL) != 0)
		return;
	membudget_give(db, blob->length + MEMORY_BLOB_OVERHEAD);
	free(blob);
}

/* ---- the treap (called with the store's lock held) ---- */

static int memtree_hash_cmp(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, BLOBFS_HASH_SIZE);
}

struct memory_blob *memtree_find(struct memory_blob *node, const uint8_t *hash)
{
	while (node) {
		int c = memtree_hash_cmp(hash, node->hash);
		if (c == 0)
			return node;
		node = c < 0 ? node->left : node->right;
	}
	return NULL;
}

/* Inserts blob (whose hash is not in the tree); returns the new root. The
 * recursion is as deep as the tree: O(log n) with random priorities. */
static struct memory_blob *memtree_insert(struct memory_blob *node, struct memory_blob *blob)
{
	struct memory_blob *child;

	if (!node)
		return blob;
	if (memtree_hash_cmp(blob->hash, node->hash) < 0) {
		node->left = memtree_insert(node->left, blob);
		if (node->left->priority > node->priority) { /* rotate right */
			child = node->left;
			node->left = child->right;
			child->right = node;
			return child;
		}
	} else {
		node->right = memtree_insert(node->right, blob);
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
static struct memory_blob *memtree_merge(struct memory_blob *low, struct memory_blob *high)
{
	if (!low)
		return high;
	if (!high)
		return low;
	if (low->priority > high->priority) {
		low->right = memtree_merge(low->right, high);
		return low;
	}
	high->left = memtree_merge(low, high->left);
	return high;
}

/* Unlinks the node for hash into *removed (NULL when absent); returns the
 * new root. */
struct memory_blob *memtree_remove(struct memory_blob *node, const uint8_t *hash,
				       struct memory_blob **removed)
{
	int c;

	if (!node)
		return NULL;
	c = memtree_hash_cmp(hash, node->hash);
	if (c < 0) {
		node->left = memtree_remove(node->left, hash, removed);
	} else if (c > 0) {
		node->right = memtree_remove(node->right, hash, removed);
	} else {
		*removed = node;
		return memtree_merge(node->left, node->right);
	}
	return node;
}

/* Copies up to max entries after `after` (NULL: from the first), in hash
 * order, into out[*n...]; skips every subtree at or before the cursor, so a
 * batch costs O(log n + max). */
void memtree_collect(const struct memory_blob *node, const uint8_t *after,
			 struct blob_entry *out, size_t *n, size_t max)
{
	while (node && *n < max) {
		if (after && memtree_hash_cmp(node->hash, after) <= 0) {
			node = node->right;
			continue;
		}
		memtree_collect(node->left, after, out, n, max);
		if (*n >= max)
			return;
		memcpy(out[*n].hash, node->hash, BLOBFS_HASH_SIZE);
		out[*n].length = node->length;
		(*n)++;
		after = NULL; /* everything right of a listed node is after it */
		node = node->right;
	}
}

/* The sum of the lengths of the tree's blobs (recursion as deep as the
 * treap: O(log n) expected). */
uint64_t memtree_bytes(const struct memory_blob *node)
{
	uint64_t bytes = 0;

	for (; node; node = node->right)
		bytes += node->length + memtree_bytes(node->left);
	return bytes;
}

/* Drops the tree's reference to every blob of a detached tree, without
 * recursion: rotating left children up turns the tree into a list. */
void memtree_release(struct memory_db *db, struct memory_blob *node)
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
		memblob_unref(db, node);
		dropped++;
		node = next;
	}
	__atomic_fetch_sub(&db->blob_total, dropped, __ATOMIC_RELAXED);
}

/* Lists blob in the store, taking the tree's reference, and stamps it with
 * the time of the save; -EEXIST when the store has its hash (its time is
 * left alone), -ENOENT when the store was destroyed. On -EEXIST,
 * *existing (if not NULL) gets a reference to the blob that is there. */
int memstore_insert(struct memory_store *ms, struct memory_blob *blob,
			struct memory_blob **existing)
{
	struct memory_blob *found;
	int ret = -ENOENT;

	pthread_mutex_lock(&ms->lock);
	if (ms->base.destroyed)
		goto out;
	found = memtree_find(ms->root, blob->hash);
	ret = -EEXIST;
	if (found) {
		if (existing)
			*existing = memblob_ref(found);
		goto out;
	}
	blob->left = blob->right = NULL;
	blob->priority = memblob_priority(store_db(&ms->base));
	/* Its first save: a blob already listed was refused above, and one
	 * listed again after a delete (a writer's committed content) is a new
	 * save. */
	blob->saved = (int64_t)time(NULL);
	ms->root = memtree_insert(ms->root, memblob_ref(blob));
	ms->count++;
	__atomic_fetch_add(&store_db(&ms->base)->blob_total, 1, __ATOMIC_RELAXED);
	ret = 0;
out:
	pthread_mutex_unlock(&ms->lock);
	return ret;
}
