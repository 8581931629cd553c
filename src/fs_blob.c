/*
 * fs_blob.c - a blob, /S/<hex>: an immutable regular file whose name is the
 * SHA-256 of its content, owned as its store and with its store's read bits
 * (fs_owners.c). It can be read and deleted (through
 * its store's unlink); writing, truncating and changing its attributes are
 * refused. An open handle is a blob_reader, which keeps the bytes readable
 * even if the blob is deleted meanwhile.
 */
#include "fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"

/* The store's owner and group, its read bits (fs_owners.c). */
static void blob_attr(struct fs *fs, const struct node *node, struct stat *st)
{
	struct store_attr a;

	store_attr_of(fs, node->store, &a);
	st->st_mode = S_IFREG | (a.mode & 0444);
	st->st_uid = a.uid;
	st->st_gid = a.gid;
	st->st_nlink = 1;
	st->st_size = (off_t)node->size;
	st->st_atim = st->st_mtim = st->st_ctim = node->saved_at;
}

/* Immutable, and deletes go through the kernel; a blob taken back by its
 * writer (fs_file.c) is invalidated in the kernel's cache. Where others
 * delete blobs too (another mount of an S3 bucket), no longer than what the
 * store says may be out of date. */
static double blob_timeout(const struct node *node)
{
	unsigned ttl_ms = store_remote_ttl_ms(node->store);

	return ttl_ms ? ttl_ms / 1000.0 : BLOB_TIMEOUT;
}

static int blob_setattr(struct fs_call *c, struct node *node, const struct stat *attr, int to_set)
{
	(void)node;
	(void)attr;
	c->why = "blobs are immutable";
	return to_set & FUSE_SET_ATTR_SIZE ? -EACCES : -EPERM;
}

static int blob_open_file(struct fs_call *c, struct node *node, struct fuse_file_info *fi)
{
	struct blob_reader *reader;
	int ret;

	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
		c->why = "blobs are read-only; write new content to incoming/";
		return -EACCES;
	}
	/* The kernel may still hold attributes from before a chmod. */
	ret = fs_store_access(c, node->store, R_OK);
	if (ret == 0)
		ret = blob_open(node->store, node->hash, &reader);
	if (ret < 0)
		return ret;
	fi->fh = (uintptr_t)reader;
	fi->keep_cache = 1; /* immutable: cached pages never go stale */
	return 0;
}

/* The bytes are checked against their checksums on the way, so they are read
 * into the daemon rather than spliced from the pack. */
static int blob_read_file(struct fs_call *c, struct node *node, uint64_t fh, void *buf,
			  size_t size, uint64_t off, size_t *got)
{
	int ret = blob_read((struct blob_reader *)(uintptr_t)fh, buf, size, off, got);

	/* Damage found (EIO): the pages read before it are dropped, so that a
	 * later read asks again (and a later open is refused). */
	if (ret == -EIO)
		fs_notify_inval_data(c->fs, ino_of(c->fs, node));
	return ret;
}

static void blob_release(struct fs_call *c, struct node *node, uint64_t fh)
{
	(void)c;
	(void)node;
	blob_close((struct blob_reader *)(uintptr_t)fh);
}

static void blob_drop(struct node *node, uint64_t fh)
{
	(void)node;
	blob_close((struct blob_reader *)(uintptr_t)fh);
}

static int blob_getxattr(struct fs_call *c, struct node *node, const char *name, char *buf,
			 size_t size, size_t *len)
{
	(void)c;
	if (strcmp(name, XATTR_SHA256))
		return -ENODATA;
	*len = HASH_HEX_SIZE;
	/* The name is the value. */
	memcpy(buf, node->name, size < HASH_HEX_SIZE ? size : HASH_HEX_SIZE);
	return 0;
}

const struct node_ops blob_ops = {
	.attr = blob_attr,
	.entry_timeout = blob_timeout,
	.attr_timeout = blob_timeout,
	.setattr = blob_setattr,
	.open = blob_open_file,
	.read = blob_read_file,
	.release = blob_release,
	.drop = blob_drop,
	.getxattr = blob_getxattr,
};
