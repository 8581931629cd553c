/*
 * fs_expiry.c - the bound and the lifetime of names in incoming trees. A
 * closed file (a receipt) and an empty directory are idle: they are kept on
 * one list in the order they became idle and expire receipt_ttl seconds
 * later. The number of names in all incoming trees is at most receipt_max;
 * at the bound a new name makes the longest idle one expire early, and when
 * no name is idle (every one is open or holds names) the new one is refused
 * with ENOSPC. Expiry is lazy: due names go when the next incoming
 * operation comes, so memory is bounded by receipt_max, not by time.
 */
#include "fs_internal.h"

#include <errno.h>

#include "log.h"

int64_t now_ms(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

void idle_add(struct fs *fs, struct node *node)
{
	if (node->idle)
		return;
	node->idle = true;
	node->expires = now_ms() + (int64_t)fs->receipt_ttl * 1000;
	node->idle_next = NULL;
	node->idle_prev = fs->idle_tail;
	if (fs->idle_tail)
		fs->idle_tail->idle_next = node;
	else
		fs->idle_head = node;
	fs->idle_tail = node;
}

void idle_remove(struct fs *fs, struct node *node)
{
	if (!node->idle)
		return;
	if (node->idle_prev)
		node->idle_prev->idle_next = node->idle_next;
	else
		fs->idle_head = node->idle_next;
	if (node->idle_next)
		node->idle_next->idle_prev = node->idle_prev;
	else
		fs->idle_tail = node->idle_prev;
	node->idle = false;
	node->idle_prev = node->idle_next = NULL;
}

/* The name goes (its node lives on while the kernel refers to it). An
 * empty parent becomes idle in turn. */
static void expire(struct fs *fs, struct node *node)
{
	if (node->ops == &file_ops)
		file_discard(fs, node);
	node_detach(fs, node);
	node_release(fs, node);
}

void incoming_expire(struct fs *fs)
{
	int64_t now = now_ms();

	while (fs->idle_head && fs->idle_head->expires <= now)
		expire(fs, fs->idle_head);
}

int incoming_reserve(struct fs *fs)
{
	incoming_expire(fs);
	while (fs->incoming_names >= fs->receipt_max) {
		if (!fs->idle_head) {
			log_warning("incoming names: all %zu that receipt_max allows are in use",
				    fs->incoming_names);
			return -ENOSPC;
		}
		log_debug("incoming names at receipt_max (%zu): %s expires early",
			  fs->receipt_max, fs->idle_head->name);
		expire(fs, fs->idle_head);
	}
	return 0;
}
