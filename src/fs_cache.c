/*
 * fs_cache.c - the bound on blob nodes. A blob's node exists only because
 * the kernel looked the name up and has not forgotten it: the kernel keeps
 * names as long as it likes, so `find` or `stat` over a store of millions of
 * blobs would otherwise leave a node per blob in the daemon.
 *
 * Blob nodes are kept on one list, the most recently looked up last. From
 * node_max on, each new blob node asks the kernel (through the notifier
 * thread) to forget the names at the head of the list; the kernel then
 * sends FORGET and the nodes go.
 *
 * Each invalidation takes the directory's lock in the kernel, which lookups
 * of names not cached hold too, so a fast walk of a big store outruns the
 * forgets for a while (a stat of 60,000 blobs as fast as one process can,
 * with asks alone, peaked at 1.8 times node_max; with the prune below at
 * 1.6 times, and under twice in every run of test_bounds.py). Neither a
 * wait here (the kernel holds that lock through this lookup) nor an entry
 * timeout of 0 (the kernel keeps such names all the same) helps. So past
 * twice node_max the whole store's unused names go at once (prune_store),
 * and the hard bound is four times node_max: a lookup by a user other than
 * root and the mounting user that needs a new node beyond it fails with
 * ENFILE instead of growing the daemon. Only names in use (a blob held
 * open, or by O_PATH, which no handle counts) reach it.
 */
#include "fs_internal.h"

#include <errno.h>

#define PRUNE_INTERVAL_MS 50

static void list_remove(struct fs *fs, struct node *node)
{
	if (!node->cached)
		return;
	if (node->cache_prev)
		node->cache_prev->cache_next = node->cache_next;
	else
		fs->cache_head = node->cache_next;
	if (node->cache_next)
		node->cache_next->cache_prev = node->cache_prev;
	else
		fs->cache_tail = node->cache_prev;
	node->cache_prev = node->cache_next = NULL;
	node->cached = false;
}

static void list_append(struct fs *fs, struct node *node)
{
	node->cache_next = NULL;
	node->cache_prev = fs->cache_tail;
	if (fs->cache_tail)
		fs->cache_tail->cache_next = node;
	else
		fs->cache_head = node;
	fs->cache_tail = node;
	node->cached = true;
}

void cache_touch(struct fs *fs, struct node *node)
{
	list_remove(fs, node);
	list_append(fs, node);
}

void cache_drop(struct fs *fs, struct node *node)
{
	list_remove(fs, node);
}

/* Asks the kernel to forget up to `count` of the least recently looked-up
 * blob names. An asked name goes to the tail, as if just looked up: when
 * the kernel keeps it (in use, or the request was dropped), it is asked
 * again after every other one. */
static void ask_to_forget(struct fs *fs, size_t count)
{
	while (count-- > 0 && fs->cache_head) {
		struct node *node = fs->cache_head;
		if (!fs_notify_try_forget_name(fs, ino_of(fs, node->parent), node->name))
			break;
		list_remove(fs, node);
		list_append(fs, node);
	}
}

/* Past twice node_max the names are asked for a whole store at once: the
 * kernel drops every name under the store's directory that is not in use,
 * with one invalidation in the root (whose lock walks of a store do not
 * hold). A process whose working directory is in the store keeps it (the
 * next lookup of the store reattaches it). At most every PRUNE_INTERVAL_MS. */
static void prune_store(struct fs *fs, struct node *store)
{
	int64_t ms = now_ms();

	if (ms - fs->last_prune_ms < PRUNE_INTERVAL_MS)
		return;
	fs_notify_forget_name_first(fs, FUSE_ROOT_ID, store->name);
	fs->last_prune_ms = ms;
}

void cache_forgotten(struct fs *fs)
{
	/* Each forget past the bound asks for one more, so that the count
	 * falls back to node_max after a walk, with no lookup to drive it. */
	if (fs->blob_nodes > fs->node_max)
		ask_to_forget(fs, 1);
}

int cache_reserve(struct fs_call *c, struct node *store)
{
	struct fs *fs = c->fs;

	/* Two asked for each node made past the bound: the count falls back
	 * as fast as the kernel forgets, and no faster than lookups come. */
	if (fs->blob_nodes >= fs->node_max)
		ask_to_forget(fs, 2);
	if (fs->blob_nodes >= fs->node_max * 2)
		prune_store(fs, store);
	/* No waiting for the forgets here: the kernel holds the directory's
	 * lock through this lookup, and invalidating a name in it takes that
	 * lock (fs_notify.c), so they come after this reply, not before. */
	/* Root and the mounting user are not refused: another user could
	 * hold names in use without any handle (O_PATH), and must not lock
	 * them out. */
	if (fs->blob_nodes < fs->node_max * 4 || c->uid == 0 || c->uid == fs->uid)
		return 0;
	c->why = "node_max blob names are held by the kernel";
	return -ENFILE;
}
