/*
 * fs_owners.c - the owners and modes of stores as the mount shows and
 * changes them (the rules themselves are the store layer's, store.h):
 *
 *   /S/            the store's owner, group and mode
 *   /S/incoming/   the same (adding to a store is writing it); a chmod or
 *                  chown of incoming/ is one of the store
 *   /S/<hex>       the store's owner and group, its mode without write and
 *                  execute bits (0755 -> 0444, 0750 -> 0440, 0700 -> 0400)
 *
 * With -o allow_other the kernel checks every access against these
 * (default_permissions, which the command line adds). The kernel caches a
 * blob's attributes for an hour, so a chmod or chown of a store asks it to
 * forget those of the store's blobs, and opening a blob checks the store's
 * read permission here as well: a blob never stays readable after its store
 * stopped being. chmod, chown and chgrp of a store are always checked here
 * (store_attr_set), whatever the kernel checked.
 */
#include "fs_internal.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

#define GROUPS_MAX 256

void store_attr_of(struct fs *fs, struct store *store, struct store_attr *out)
{
	if (store_attr_get(store, out) < 0) {
		out->uid = fs->uid;
		out->gid = fs->gid;
		out->mode = 0;
	}
}

/* The caller of c; with_groups: with its supplementary groups (read from
 * /proc by libfuse: only when they may matter). */
static void caller_of(struct fs_call *c, struct caller *who, uint32_t groups[GROUPS_MAX],
		      bool with_groups)
{
	gid_t list[GROUPS_MAX];
	int n;

	*who = (struct caller){ .uid = c->uid, .gid = c->gid };
	if (!with_groups || c->uid == 0 || !c->req)
		return;
	n = fuse_req_getgroups(c->req, GROUPS_MAX, list);
	if (n < 0) {
		log_debug("the groups of uid %u are unknown (%s): only its primary group counts",
			  (unsigned)c->uid, strerror(-n));
		return;
	}
	if (n > GROUPS_MAX)
		n = GROUPS_MAX;
	for (int i = 0; i < n; i++)
		groups[i] = (uint32_t)list[i];
	who->groups = groups;
	who->group_count = (size_t)n;
}

int fs_store_access(struct fs_call *c, struct store *store, int mask)
{
	uint32_t groups[GROUPS_MAX];
	struct store_attr attr;
	struct caller who;
	int ret = store_attr_get(store, &attr);

	if (ret < 0)
		return ret;
	caller_of(c, &who, groups, false);
	ret = store_attr_access(&attr, &who, mask);
	/* Only a supplementary group can still let the caller in. */
	if (ret == -EACCES && c->uid != attr.uid && c->gid != attr.gid &&
	    (((attr.mode >> 3) & (unsigned)mask) == (unsigned)mask)) {
		caller_of(c, &who, groups, true);
		ret = store_attr_access(&attr, &who, mask);
	}
	if (ret == -EACCES)
		c->why = "the store's owner and mode do not allow it";
	return ret;
}

/* The kernel forgets the attributes it keeps of the store's nodes (but
 * except, which the reply to the change updates). Lock held. */
static void forget_attrs(struct fs *fs, struct store *store, const struct node *except)
{
	for (struct node *n = fs->all_nodes; n; n = n->all_next)
		if (n != except && n->store == store && n->nlookup > 0 &&
		    (n->ops == &blob_ops || n->ops == &store_ops || node_is_incoming_top(n)))
			fs_notify_inval_attr(fs, ino_of(fs, n));
}

int fs_store_setattr(struct fs_call *c, struct node *node, const struct stat *attr,
		     int to_set)
{
	struct fs *fs = c->fs;
	struct store_attr want = { .uid = (uint32_t)attr->st_uid, .gid = (uint32_t)attr->st_gid,
				   .mode = (uint32_t)attr->st_mode & STORE_MODE_MASK };
	struct store_attr now;
	uint32_t groups[GROUPS_MAX];
	struct caller who;
	struct store *store;
	int what = 0, ret;

	if (to_set & FUSE_SET_ATTR_MODE)
		what |= STORE_ATTR_MODE;
	if (to_set & FUSE_SET_ATTR_UID)
		what |= STORE_ATTR_UID;
	if (to_set & FUSE_SET_ATTR_GID)
		what |= STORE_ATTR_GID;
	if (!what)
		return 0;
	c->op = what & STORE_ATTR_MODE ? "chmod" : "chown";
	caller_of(c, &who, groups, true);
	store = store_hold(node->store);
	/* The meta file is synced meanwhile: the node is the kernel's (a
	 * setattr holds its inode), the store a counted reference. */
	pthread_mutex_unlock(&fs->lock);
	ret = store_attr_set(store, &who, what, &want, &now);
	pthread_mutex_lock(&fs->lock);
	if (ret == -EPERM)
		c->why = "only root gives a store away; its owner may chmod it and chgrp it to a "
			 "group they are in";
	else if (ret == -ENOENT)
		c->why = "the store was destroyed";
	if (ret == 0) {
		log_info("store %s: owner %u, group %u, mode %04o (set by uid %u)", store_name(store),
			 (unsigned)now.uid, (unsigned)now.gid, (unsigned)now.mode, (unsigned)c->uid);
		forget_attrs(fs, store, node);
	}
	store_close(store);
	return ret;
}
