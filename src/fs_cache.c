/*
 * fs_cache.c - the bound on blob nodes. A blob's node exists only because
 * the kernel looked the name up and has not forgotten it: the kernel keeps
 * names as long as it likes, so `find` or `stat` over a store of millions of
 * blobs would otherwise leave a node per blob in the daemon.
 *
 * Blob nodes are kept on one list, the most recently looked up last. From
 * node_max on, each new blob node asks the kernel (through the notifier
 * thread) to forget the names at the head of the list; the kernel then
 * sends FORGET and the nodes go. Those asked leave the list; a lookup of one
 * puts it back. A name the kernel cannot drop (a blob held open) stays, so
 * past node_max + node_max/4 a lookup that needs a new node fails with
 * ENFILE instead of growing the daemon.
 */
#include "fs_internal.h"

#include <errno.h>

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
	if (node->forget_asked) {
		node->forget_asked = false;
		fs->cache_asked--;
	}
	list_remove(fs, node);
	list_append(fs, node);
}

void cache_drop(struct fs *fs, struct node *node)
{
	if (node->forget_asked) {
		node->forget_asked = false;
		fs->cache_asked--;
	}
	list_remove(fs, node);
}

/* Asks the kernel to forget up to `count` of the least recently looked-up
 * blob names, as many as the notifier's queue has room for. */
static void ask_to_forget(struct fs *fs, size_t count)
{
	while (count-- > 0 && fs->cache_head) {
		struct node *node = fs->cache_head;
		if (!fs_notify_try_forget_name(fs, ino_of(fs, node->parent), node->name))
			break;
		list_remove(fs, node);
		node->forget_asked = true;
		fs->cache_asked++;
	}
}

int cache_reserve(struct fs_call *c)
{
	struct fs *fs = c->fs;
	size_t staying = fs->blob_nodes - fs->cache_asked;

	/* A sixteenth of the bound at a time: the kernel's forgets come in
	 * batches, and a walk of a big store should not ask once per name. */
	if (staying >= fs->node_max)
		ask_to_forget(fs, staying - fs->node_max + fs->node_max / 16 + 1);
	if (fs->blob_nodes < fs->node_max + fs->node_max / 4)
		return 0;
	c->why = "node_max blob names are held by the kernel";
	return -ENFILE;
}
