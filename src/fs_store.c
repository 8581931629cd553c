/*
 * fs_store.c - a store's directory, /S/: its blobs by their 64-digit hex
 * names, and incoming/. A blob name is looked up in the store each time it
 * is asked for (a save can add one at any moment); unlink deletes the blob.
 * incoming/ always exists; rmdir of it succeeds when it is empty so that
 * rm -r can remove a store.
 */
#include "fs_internal.h"

#include <errno.h>
#include <string.h>

#include "hash.h"

static void store_attr(struct fs *fs, const struct node *node, struct stat *st)
{
	(void)fs;
	(void)node;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 3;
}

/* The kernel knows the incoming directory as long as it has a node. */
static struct node *incoming_dir_get(struct fs *fs, struct node *dir)
{
	struct store *store;

	if (!dir->incoming_dir) {
		store = store_hold(dir->store);
		dir->incoming_dir = node_get(fs, dir, INCOMING_NAME, &incoming_dir_ops,
					     incoming_dir_ino(dir), &store);
		store_close(store);
	}
	return dir->incoming_dir;
}

static int blob_get(struct fs *fs, struct node *dir, const char *name, struct node **out)
{
	uint8_t hash[BLOBFS_HASH_SIZE];
	struct store *store;
	struct node *node;
	uint64_t size;
	int ret;

	if (!hash_from_hex(name, strlen(name), hash))
		return -ENOENT;
	ret = blob_info(dir->store, hash, &size);
	if (ret < 0)
		return ret;
	node = table_find(fs, dir, name);
	if (!node) {
		store = store_hold(dir->store);
		node = node_get(fs, dir, name, &blob_ops, blob_ino(hash), &store);
		store_close(store);
		if (!node)
			return -ENOMEM;
		memcpy(node->hash, hash, BLOBFS_HASH_SIZE);
	}
	node->size = size;
	*out = node;
	return 0;
}

static int store_lookup(struct fs_call *c, struct node *dir, const char *name, struct node **out)
{
	if (strcmp(name, INCOMING_NAME))
		return blob_get(c->fs, dir, name, out);
	*out = incoming_dir_get(c->fs, dir);
	return *out ? 0 : -ENOMEM;
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
		c->why = "files are being written in it";
		ret = -ENOTEMPTY;
	} else if (node) {
		node_detach(c->fs, node);
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
	if (ret == 0 && node)
		node_detach(fs, node);
	pthread_mutex_unlock(&fs->lock);
	if (ret == 0 && fs->sync && store_sync(dir->store) < 0)
		ret = -EIO;
	return ret;
}

const struct node_ops store_ops = {
	.attr = store_attr,
	.entry_timeout = dir_timeout,
	.attr_timeout = dir_timeout,
	.fsync = node_store_sync,
	.holds = "a store holds only blobs and incoming (blobs are saved through incoming/)",
	.lookup = store_lookup,
	.rmdir = store_rmdir,
	.unlink = store_unlink,
	.readdir = readdir_store,
};
