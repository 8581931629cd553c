/*
 * fs_root.c - the root of the mount: the list of stores. mkdir creates a
 * store (the caller's, with the mode asked for), rmdir destroys an empty one
 * (rm -r empties it first), lookup opens one; nothing else can be made here.
 * The root is mode 1777, owned by the mount's user, like /tmp.
 */
#include "fs_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "log.h"

static void root_attr(struct fs *fs, const struct node *node, struct stat *st)
{
	(void)node;
	/* Like /tmp: anyone may make a store, only its owner (or root, or the
	 * mount's user) remove it. */
	st->st_mode = S_IFDIR | 01777;
	st->st_nlink = 2 + store_count(fs->db);
}

/* A destroyed store's node leaves the namespace with its incoming/. */
static void store_node_drop(struct fs *fs, struct node *node)
{
	struct node *top = node->incoming_dir;

	node_detach(fs, node);
	if (top) {
		node_detach(fs, top);
		node_release(fs, top);
	}
}

static int root_lookup(struct fs_call *c, struct node *root, const char *name, struct node **out)
{
	struct fs *fs = c->fs;
	struct store *store = NULL;
	struct node *node;
	int ret;

	if (store_name_check(name, strlen(name)) < 0)
		return -ENOENT;
	ret = store_open(fs->db, name, &store);
	if (ret < 0)
		return ret;
	node = table_find(fs, root, name);
	if (node && node->store != store) {
		store_node_drop(fs, node); /* a store of the same name was re-created */
		node = NULL;
	}
	node = node ? node : node_get(fs, root, name, &store_ops, store_ino(name), &store);
	store_close(store); /* unused when the node already held one */
	if (!node)
		return -ENOMEM;
	*out = node;
	return 0;
}

/* The store is the caller's, with the mode asked for (the kernel has taken
 * the caller's umask off it: blobfs does not ask for FUSE_CAP_DONT_MASK). */
static int root_mkdir(struct fs_call *c, struct node *root, const char *name, mode_t mode)
{
	struct store_attr attr = { .uid = (uint32_t)c->uid, .gid = (uint32_t)c->gid,
				   .mode = (uint32_t)mode & STORE_MODE_MASK };
	int ret = store_create_as(c->fs->db, name, &attr);

	(void)root;
	if (ret == -EINVAL)
		c->why = "a store name is 1-255 bytes and may not start with '.'";
	else if (ret == -ENOSPC && store_count(c->fs->db) >= blobdb_store_max(c->fs->db))
		c->why = "store_max stores exist";
	else if (ret == -EEXIST)
		c->why = "the store exists";
	else if (ret == 0)
		log_info("store %s created", name);
	return ret;
}

static int root_rmdir(struct fs_call *c, struct node *root, const char *name)
{
	struct fs *fs = c->fs;
	struct node *node;
	int ret;

	pthread_mutex_lock(&fs->lock);
	node = table_find(fs, root, name);
	if (node && node->incoming_dir && node->incoming_dir->incoming_head) {
		c->why = "its incoming/ holds files or directories";
		ret = -ENOTEMPTY;
		goto out;
	}
	/* Not under fs->lock: removing a big store's files takes a while. A
	 * file created in its incoming meanwhile cannot be saved (its close()
	 * says EIO). */
	pthread_mutex_unlock(&fs->lock);
	ret = store_destroy(fs->db, name, true);
	pthread_mutex_lock(&fs->lock);
	if (ret == -ENOTEMPTY)
		c->why = "the store has blobs (rm -r removes them)";
	if (ret < 0)
		goto out;
	log_info("store %s destroyed", name);
	/* The name may already be a new store's: only the destroyed one's node
	 * goes. */
	node = table_find(fs, root, name);
	if (node && store_destroyed(node->store))
		store_node_drop(fs, node);
out:
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

static int root_fsync(struct fs_call *c, struct node *root)
{
	(void)root;
	return blobdb_sync(c->fs->db);
}

/* The daemon's figures against its bounds (README, Security), one line of
 * key=value fields like a store's. */
static int root_getxattr(struct fs_call *c, struct node *root, const char *name, char *buf,
			 size_t size, size_t *len)
{
	struct fs *fs = c->fs;
	size_t handles;
	int n;

	(void)root;
	if (strcmp(name, XATTR_STAT))
		return -ENODATA;
	pthread_mutex_lock(&fs->handles_lock);
	handles = fs->handles;
	pthread_mutex_unlock(&fs->handles_lock);
	pthread_mutex_lock(&fs->lock);
	n = snprintf(buf, size,
		     "stores=%zu store_max=%zu nodes=%zu blob_nodes=%zu node_max=%zu "
		     "handles=%zu handle_max=%zu incoming_names=%zu receipt_max=%zu "
		     "writer_memory=%" PRIu64,
		     store_count(fs->db), blobdb_store_max(fs->db), fs->node_count,
		     fs->blob_nodes, fs->node_max, handles, fs->handle_max, fs->incoming_names,
		     fs->receipt_max, blobdb_writer_memory(fs->db));
	pthread_mutex_unlock(&fs->lock);
	*len = n > 0 ? (size_t)n : 0;
	return 0;
}

const struct node_ops root_ops = {
	.attr = root_attr,
	.entry_timeout = dir_timeout,
	.attr_timeout = dir_timeout,
	.fsync = root_fsync,
	.holds = "only stores (directories) can be created here",
	.lookup = root_lookup,
	.mkdir = root_mkdir,
	.rmdir = root_rmdir,
	.getxattr = root_getxattr,
	.readdir = readdir_root,
};
