/*
 * fs_incoming.c - the drop box, /S/incoming/, and the files being written in
 * it. Any name can be created there and written at any offsets; a file's
 * node owns its content (a blob_writer) and is the only record of it. When
 * the writer closes the file (FUSE flush) the content is saved as a blob and
 * the name goes away; fsync saves too and keeps the name. Unlinking or
 * renaming over a file discards its content.
 */
#include "fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"

/* ---- the directory ---- */

static void incoming_dir_attr(struct fs *fs, const struct node *node, struct stat *st)
{
	(void)fs;
	(void)node;
	st->st_mode = S_IFDIR | 0755;
	st->st_nlink = 2;
}

static int incoming_dir_lookup(struct fs_call *c, struct node *dir, const char *name,
			       struct node **out)
{
	*out = table_find(c->fs, dir, name);
	return *out ? 0 : -ENOENT;
}

static int incoming_dir_rmdir(struct fs_call *c, struct node *dir, const char *name)
{
	struct node *node;

	pthread_mutex_lock(&c->fs->lock);
	node = table_find(c->fs, dir, name);
	pthread_mutex_unlock(&c->fs->lock);
	return node ? -ENOTDIR : -ENOENT;
}

/* The writer gave up on this file: it is not saved. Lock held. */
static void incoming_discard(struct fs *fs, struct node *node)
{
	node->discarded = true;
	node_detach(fs, node);
	node_release(fs, node);
}

static int incoming_dir_unlink(struct fs_call *c, struct node *dir, const char *name)
{
	struct node *node;

	pthread_mutex_lock(&c->fs->lock);
	node = table_find(c->fs, dir, name);
	if (node)
		incoming_discard(c->fs, node);
	pthread_mutex_unlock(&c->fs->lock);
	return node ? 0 : -ENOENT;
}

/* Makes a new file with empty content. Lock held. */
static int incoming_new(struct fs_call *c, struct node *dir, const char *name, mode_t mode,
			struct node **out)
{
	struct blob_writer *writer = NULL;
	struct store *store = NULL;
	struct node *node;
	int ret;

	ret = blob_writer_new(dir->store, &writer);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	store = store_hold(dir->store);
	node = node_get(c->fs, dir, name, &incoming_file_ops, 0, &store);
	if (!node)
		goto out;
	node->writer = writer;
	writer = NULL;
	node->mode = mode & 07777;
	node->uid = c->uid;
	node->gid = c->gid;
	clock_gettime(CLOCK_REALTIME, &node->mtime);
	node->atime = node->ctime = node->mtime;
	incoming_list_append(dir, node);
	*out = node;
	ret = 0;
out:
	blob_writer_free(writer);
	store_close(store);
	return ret;
}

/* One more open handle refers to the file. Lock held: a last release
 * elsewhere may free the writer. */
static int incoming_open_locked(struct node *node, bool truncate, struct fuse_file_info *fi)
{
	int ret = node->writer ? 0 : -ENOENT; /* saved and closed */

	if (ret == 0 && truncate)
		ret = blob_writer_truncate(node->writer, 0);
	if (ret < 0)
		return ret;
	node->open_count++;
	fi->fh = (uintptr_t)node;
	return 0;
}

static int incoming_dir_create(struct fs_call *c, struct node *dir, const char *name, mode_t mode,
			       struct fuse_file_info *fi, struct node **out)
{
	struct node *node;
	int ret;

	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	if (!S_ISREG(mode)) {
		c->why = dir->ops->holds;
		return -EPERM;
	}
	node = table_find(c->fs, dir, name);
	if (node && (!fi || (fi->flags & O_EXCL)))
		return -EEXIST;
	if (!node) {
		ret = incoming_new(c, dir, name, mode, &node);
		if (ret < 0)
			return ret;
	}
	if (fi) {
		ret = incoming_open_locked(node, fi->flags & O_TRUNC, fi);
		if (ret < 0)
			return ret;
	}
	*out = node;
	return 0;
}

static int incoming_dir_rename(struct fs_call *c, struct node *dir, const char *name,
			       struct node *newdir, const char *newname, unsigned int flags)
{
	struct fs *fs = c->fs;
	struct node *node, *victim;
	char *copy = NULL;
	int ret = 0;

	if (newdir != dir || (flags & RENAME_EXCHANGE)) {
		c->why = RENAME_RULE;
		return -EPERM;
	}
	pthread_mutex_lock(&fs->lock);
	node = table_find(fs, dir, name);
	victim = table_find(fs, dir, newname);
	if (!node)
		ret = -ENOENT;
	else if (victim && (flags & RENAME_NOREPLACE))
		ret = -EEXIST;
	else if (node != victim && !(copy = strdup(newname)))
		ret = -ENOMEM;
	if (ret == 0 && node != victim) {
		if (victim)
			incoming_discard(fs, victim);
		node_set_name(fs, node, copy);
	}
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

const struct node_ops incoming_dir_ops = {
	.attr = incoming_dir_attr,
	.entry_timeout = dir_timeout,
	.attr_timeout = dir_timeout,
	.fsync = node_store_sync,
	.holds = "incoming holds only regular files",
	/* A name here only ever appears through a create the kernel itself
	 * makes, which replaces its cached miss: misses are cached, saving a
	 * round trip per file for tools that look before they create (cp). */
	.miss_timeout = BLOB_TIMEOUT,
	.lookup = incoming_dir_lookup,
	.rmdir = incoming_dir_rmdir,
	.unlink = incoming_dir_unlink,
	.create = incoming_dir_create,
	.rename = incoming_dir_rename,
	.readdir = readdir_incoming,
};

/* ---- a file being written ---- */

static void incoming_attr(struct fs *fs, const struct node *node, struct stat *st)
{
	(void)fs;
	st->st_mode = S_IFREG | (node->mode & 07777);
	st->st_nlink = node->attached ? 1 : 0;
	st->st_uid = node->uid;
	st->st_gid = node->gid;
	st->st_size = node->writer ? (off_t)blob_writer_size(node->writer) : 0;
	st->st_atim = node->atime;
	st->st_mtim = node->mtime;
	st->st_ctim = node->ctime;
}

/* The name goes away at flush, behind the kernel's back. */
static double incoming_entry_timeout(const struct node *node)
{
	(void)node;
	return 0;
}

/* The size only changes through writes and truncates the kernel makes
 * itself. */
static double incoming_attr_timeout(const struct node *node)
{
	(void)node;
	return INCOMING_ATTR_TIMEOUT;
}

static void set_time(struct timespec *t, const struct timespec *value, bool now)
{
	if (now)
		clock_gettime(CLOCK_REALTIME, t);
	else
		*t = *value;
}

static int incoming_setattr(struct fs_call *c, struct node *node, const struct stat *attr,
			    int to_set)
{
	int ret = 0;

	if (!node->writer)
		ret = -ENOENT; /* saved or discarded, and closed: it has no content */
	else if (to_set & FUSE_SET_ATTR_SIZE)
		ret = blob_writer_truncate(node->writer, (uint64_t)attr->st_size);
	if (ret < 0) {
		c->op = "truncate";
		return ret;
	}
	if (to_set & FUSE_SET_ATTR_MODE)
		node->mode = attr->st_mode & 07777;
	if (to_set & FUSE_SET_ATTR_UID)
		node->uid = attr->st_uid;
	if (to_set & FUSE_SET_ATTR_GID)
		node->gid = attr->st_gid;
	if (to_set & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
		set_time(&node->atime, &attr->st_atim, to_set & FUSE_SET_ATTR_ATIME_NOW);
	if (to_set & (FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_MTIME_NOW))
		set_time(&node->mtime, &attr->st_mtim, to_set & FUSE_SET_ATTR_MTIME_NOW);
	clock_gettime(CLOCK_REALTIME, &node->ctime);
	return 0;
}

static int incoming_open(struct fs_call *c, struct node *node, struct fuse_file_info *fi)
{
	int ret;

	pthread_mutex_lock(&c->fs->lock);
	ret = incoming_open_locked(node,
				   (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY, fi);
	pthread_mutex_unlock(&c->fs->lock);
	return ret;
}

static int incoming_read(struct fs_call *c, struct node *node, uint64_t fh, void *buf,
			 size_t size, uint64_t off, size_t *got)
{
	(void)c;
	(void)fh;
	return blob_writer_read(node->writer, buf, size, off, got);
}

/* Lock held: a write after a flush that created the empty blob shows that
 * flush was not the writer's last close (a shell's `cmd > file` duplicates
 * the descriptor and closes the first copy), so the empty blob it made is
 * taken back. */
static void retract_empty_blob(struct fs *fs, struct node *node)
{
	uint8_t empty[BLOBFS_HASH_SIZE];

	node->created_empty = false;
	/* Only if nobody else saved the empty blob since: theirs stays. */
	if (fs->empty_saves != node->empty_saves)
		return;
	if (hash_buffer("", 0, empty) == 0 && blob_delete(node->parent->store, empty) == 0)
		log_debug("%s: empty blob of an early close taken back", node->name);
}

static int incoming_write(struct fs_call *c, struct node *node, const void *buf, size_t size,
			  uint64_t off)
{
	if (node->created_empty && size > 0) {
		pthread_mutex_lock(&c->fs->lock);
		if (node->created_empty)
			retract_empty_blob(c->fs, node);
		pthread_mutex_unlock(&c->fs->lock);
	}
	return blob_writer_write(node->writer, buf, size, off);
}

/* A close() saves the content; the name goes as the save is done. */
static int incoming_flush(struct fs_call *c, struct node *node)
{
	struct fs *fs = c->fs;
	uint8_t hash[BLOBFS_HASH_SIZE];
	char hex[HASH_HEX_SIZE + 1];
	bool empty;
	int ret;

	if (node->discarded)
		return 0;
	c->op = "save";
	empty = blob_writer_size(node->writer) == 0;
	ret = blob_writer_commit(node->writer, hash);
	if (ret < 0 && ret != -EEXIST) {
		/* The save failed and close() says so; the name goes as after a
		 * save, and the content with the last close, so that a full disk
		 * gets the space of the failed save back. */
		pthread_mutex_lock(&fs->lock);
		node->discarded = true;
		node_detach(fs, node);
		pthread_mutex_unlock(&fs->lock);
		/* A store destroyed under a still-open file cannot take it:
		 * for the writer that is a failed save, not a missing file. */
		if (ret == -ENOENT) {
			c->why = "its store was destroyed";
			ret = -EIO;
		}
		return ret;
	}
	if (fs->sync && store_sync(node->parent->store) < 0) {
		c->why = "could not make it durable";
		return -EIO;
	}
	hash_to_hex(hash, hex);
	log_debug("%s saved as %s/%s%s", node->name, store_name(node->parent->store), hex,
		  ret == -EEXIST ? " (already there)" : "");
	pthread_mutex_lock(&fs->lock);
	if (empty)
		fs->empty_saves++;
	node->created_empty = empty && ret == 0;
	node->empty_saves = fs->empty_saves;
	/* Saved: the name is no longer a file being written. */
	node_detach(fs, node);
	pthread_mutex_unlock(&fs->lock);
	return 0;
}

static void incoming_release(struct fs_call *c, struct node *node, uint64_t fh)
{
	(void)fh;
	pthread_mutex_lock(&c->fs->lock);
	node->open_count--;
	node_release(c->fs, node);
	pthread_mutex_unlock(&c->fs->lock);
}

/* fsync saves the file (as close() would) and waits until the blob is on
 * stable storage: the blob survives a power cut once fsync() returns. The
 * name stays until close(). */
static int incoming_fsync(struct fs_call *c, struct node *node)
{
	uint8_t hash[BLOBFS_HASH_SIZE];
	int ret;

	(void)c;
	if (node->discarded)
		return 0;
	ret = blob_writer_commit(node->writer, hash);
	if (ret == 0 || ret == -EEXIST)
		ret = store_sync(node->parent->store);
	return ret;
}

const struct node_ops incoming_file_ops = {
	.attr = incoming_attr,
	.entry_timeout = incoming_entry_timeout,
	.attr_timeout = incoming_attr_timeout,
	.held_by_name = true,
	.setattr = incoming_setattr,
	.fsync = incoming_fsync,
	.open = incoming_open,
	.read = incoming_read,
	.write = incoming_write,
	.flush = incoming_flush,
	.release = incoming_release,
};
