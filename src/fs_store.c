/*
 * fs_store.c - a store's directory, /S/: its blobs by their 64-digit hex
 * names, and incoming/. A blob name is looked up in the store each time it
 * is asked for (a save can add one at any moment); unlink deletes the blob.
 * Creating a name that is not stored yet is a verified write (fs_file.c):
 * the content is saved at close only if it hashes to the name. Renames out
 * of the store answer EXDEV (mv then copies), within it EPERM. incoming/
 * always exists; rmdir of it succeeds when it is empty so that rm -r can
 * remove a store. Its owner, group and mode are the store's, changed by
 * chmod and chown (fs_owners.c).
 */
#include "fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "hash.h"

#define HOLDS "a store holds only blobs (named by their SHA-256) and incoming"

/* Its owner, group and mode are the store's (fs_owners.c). */
static void store_attr(struct fs *fs, const struct node *node, struct stat *st)
{
	struct store_attr a;

	store_attr_of(fs, node->store, &a);
	st->st_mode = S_IFDIR | a.mode;
	st->st_uid = a.uid;
	st->st_gid = a.gid;
	st->st_nlink = 3;
}

/* chmod, chown, chgrp; its times are fixed. */
static int store_setattr(struct fs_call *c, struct node *node, const struct stat *attr,
			 int to_set)
{
	if (to_set & FUSE_SET_ATTR_SIZE) {
		c->op = "truncate";
		return -EISDIR;
	}
	if (to_set & SET_ATTR_TIMES) {
		c->why = "a store's times are fixed";
		return -EPERM;
	}
	return fs_store_setattr(c, node, attr, to_set);
}

/* The kernel knows the incoming directory as long as it has a node. */
static struct node *incoming_dir_get(struct fs *fs, struct node *dir)
{
	if (!dir->incoming_dir) {
		dir->incoming_dir = incoming_dir_new(fs, dir, INCOMING_NAME, incoming_dir_ino(dir),
						     0755, fs->uid, fs->gid);
		if (dir->incoming_dir) {
			struct node *n = dir->incoming_dir;
			n->atime = n->mtime = n->ctime = fs->mount_time;
		}
	}
	return dir->incoming_dir;
}

static int blob_get(struct fs_call *c, struct node *dir, const char *name, struct node **out)
{
	struct fs *fs = c->fs;
	uint8_t hash[BLOBFS_HASH_SIZE];
	struct blob_stat st;
	struct store *store;
	struct node *node;
	int ret;

	if (!hash_from_hex(name, strlen(name), hash))
		return -ENOENT;
	node = table_find(fs, dir, name);
	if (node && node->ops == &file_ops) { /* a verified write under way */
		*out = node;
		return 0;
	}
	ret = blob_stat(dir->store, hash, &st);
	if (ret < 0)
		return ret;
	if (!node) {
		ret = cache_reserve(c, dir);
		if (ret < 0)
			return ret;
		store = store_hold(dir->store);
		node = node_get(fs, dir, name, &blob_ops, blob_ino(dir, hash), &store);
		store_close(store);
		if (!node)
			return -ENOMEM;
		memcpy(node->hash, hash, BLOBFS_HASH_SIZE);
		fs->blob_nodes++;
	}
	cache_touch(fs, node);
	node->size = st.length;
	node->saved_at.tv_sec = (time_t)st.saved;
	node->saved_at.tv_nsec = 0;
	*out = node;
	return 0;
}

static int store_lookup(struct fs_call *c, struct node *dir, const char *name, struct node **out)
{
	if (strcmp(name, INCOMING_NAME))
		return blob_get(c, dir, name, out);
	*out = incoming_dir_get(c->fs, dir);
	return *out ? 0 : -ENOMEM;
}

/* A verified write: a name not stored yet whose content must hash to it. */
static int store_create_file(struct fs_call *c, struct node *dir, const char *name, mode_t mode,
			struct fuse_file_info *fi, struct node **out)
{
	uint8_t hash[BLOBFS_HASH_SIZE];
	struct node *node;
	int ret;

	if (!S_ISREG(mode) || !fi || !hash_from_hex(name, strlen(name), hash)) {
		c->why = HOLDS;
		return -EPERM;
	}
	node = table_find(c->fs, dir, name);
	if (!node && blob_info(dir->store, hash, NULL) == 0)
		return -EEXIST;
	if (node && (node->ops != &file_ops || (fi->flags & O_EXCL)))
		return -EEXIST;
	if (node)
		ret = file_open_locked(c, node, fi);
	else if ((ret = file_new(c, dir, name, mode, true, true, &node)) == 0 &&
		 (ret = file_open_locked(c, node, fi)) < 0) {
		file_discard(c->fs, node); /* nobody has it: it goes */
		node_detach(c->fs, node);
		node_release(c->fs, node);
	}
	if (ret < 0)
		return ret;
	*out = node;
	return 0;
}

static int store_rmdir(struct fs_call *c, struct node *dir, const char *name)
{
	uint8_t hash[BLOBFS_HASH_SIZE];
	struct node *node;
	int ret = 0;

	if (strcmp(name, INCOMING_NAME))
		return hash_from_hex(name, strlen(name), hash) && blob_info(dir->store, hash, NULL) == 0
			       ? -ENOTDIR : -ENOENT;
	/* incoming always exists; removing it when empty succeeds so that rm -r
	 * can remove a store, and it comes back at the next lookup. */
	pthread_mutex_lock(&c->fs->lock);
	node = dir->incoming_dir;
	if (node && node->incoming_head) {
		c->why = "it holds files or directories";
		ret = -ENOTEMPTY;
	} else if (node) {
		node_detach(c->fs, node);
		node_release(c->fs, node);
	}
	pthread_mutex_unlock(&c->fs->lock);
	return ret;
}

static int store_unlink(struct fs_call *c, struct node *dir, const char *name)
{
	struct fs *fs = c->fs;
	uint8_t hash[BLOBFS_HASH_SIZE];
	struct node *node;
	int ret;

	if (!hash_from_hex(name, strlen(name), hash))
		return -ENOENT;
	pthread_mutex_lock(&fs->lock);
	ret = blob_delete(dir->store, hash);
	node = table_find(fs, dir, name);
	if (ret == 0 && node && node->ops == &blob_ops)
		node_detach(fs, node);
	pthread_mutex_unlock(&fs->lock);
	if (ret == 0 && fs->sync && store_sync(dir->store) < 0)
		ret = -EIO;
	return ret;
}

/* Blobs are named by their content: the name cannot change, and another
 * store takes a copy. */
static int store_rename(struct fs_call *c, struct node *dir, const char *name,
			struct node *newdir, const char *newname, unsigned int flags)
{
	(void)name;
	(void)newname;
	(void)flags;
	if (newdir->store && newdir->store != dir->store) {
		c->why = "another store: copy, then remove (mv does)";
		return -EXDEV;
	}
	c->why = "a blob's name is its content's hash";
	return -EPERM;
}

/* The store's figures, as `blobfs stat` prints them (one line). */
static int store_getxattr(struct fs_call *c, struct node *node, const char *name, char *buf,
			  size_t size, size_t *len)
{
	struct store_stats st;
	int ret;

	(void)c;
	if (strcmp(name, XATTR_STAT))
		return -ENODATA;
	ret = store_stats(node->store, &st);
	if (ret < 0)
		return ret;
	*len = store_stats_format(store_name(node->store), &st, buf, size);
	return 0;
}

const struct node_ops store_ops = {
	.attr = store_attr,
	.entry_timeout = dir_timeout,
	.attr_timeout = dir_timeout,
	.setattr = store_setattr,
	.fsync = node_store_sync,
	.holds = HOLDS,
	.lookup = store_lookup,
	.rmdir = store_rmdir,
	.unlink = store_unlink,
	.create = store_create_file,
	.rename = store_rename,
	.readdir = readdir_store,
	.getxattr = store_getxattr,
};
