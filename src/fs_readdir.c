/*
 * fs_readdir.c - directory listings: opendir, readdir, releasedir, and the
 * listing of each kind of directory (the root's stores, a store's blobs, the
 * names of an incoming tree), which the kinds' tables point to.
 *
 * Offsets: 1 and 2 follow "." and ".."; in a store 3 follows "incoming".
 * After that, stores and blobs are numbered in listing order and resumed
 * from the handle's cursor (the last name returned), so entries added or
 * removed between calls neither repeat nor hide the others. Names in
 * incoming trees are listed in inode number order with offsets derived from
 * those numbers, which never repeat.
 */
#include "fs_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

struct dir_handle {
	off_t next_off;         /* the offset the next readdir call continues from */
	bool have_cursor;
	char store_cursor[256]; /* the last store name returned */
	uint8_t blob_cursor[BLOBFS_HASH_SIZE];
};

/* One readdir reply being filled. */
struct dir_fill {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	struct dir_handle *dh;
	const struct node *dir; /* the directory listed */
	bool full;
};

/* Adds one entry whose successor is at offset next_off; false when the
 * reply buffer is full. */
static bool dir_add(struct dir_fill *f, const char *name, uint64_t ino, mode_t type,
		    off_t next_off)
{
	struct stat st;
	size_t n;

	memset(&st, 0, sizeof(st));
	st.st_ino = ino;
	st.st_mode = type;
	n = fuse_add_direntry(f->req, f->buf + f->used, f->size - f->used, name, &st, next_off);
	if (n > f->size - f->used) {
		f->full = true;
		return false;
	}
	f->used += n;
	f->dh->next_off = next_off;
	return true;
}

/*
 * The start of every listing. When the kernel asks for an offset this
 * handle did not just return (a seekdir), the cursor is dropped and the
 * number of listed entries to skip is returned: the caller rebuilds the
 * cursor by counting them from the start. `fixed` is the offset after the
 * entries that precede the listed ones. Then "." and "..".
 */
static off_t dir_begin(struct dir_fill *f, struct node *dir, off_t off, off_t fixed)
{
	struct dir_handle *dh = f->dh;
	off_t skip = 0;

	if (off != dh->next_off || off <= fixed) {
		dh->have_cursor = false;
		skip = off - fixed;
	}
	dh->next_off = off;
	if (off < 1)
		dir_add(f, ".", dir->ino, S_IFDIR, 1);
	if (off < 2 && !f->full)
		dir_add(f, "..", FUSE_ROOT_ID, S_IFDIR, 2);
	return skip;
}

/* ---- the root: stores ---- */

struct dir_skip {
	struct dir_handle *dh;
	off_t left;
};

static void cursor_set_store(struct dir_handle *dh, const char *name)
{
	snprintf(dh->store_cursor, sizeof(dh->store_cursor), "%s", name);
	dh->have_cursor = true;
}

static int dir_skip_store(const char *name, void *arg)
{
	struct dir_skip *s = arg;

	cursor_set_store(s->dh, name);
	return --s->left <= 0;
}

static int dir_add_store(const char *name, void *arg)
{
	struct dir_fill *f = arg;

	if (!dir_add(f, name, store_ino(name), S_IFDIR, f->dh->next_off + 1))
		return 1;
	cursor_set_store(f->dh, name);
	return 0;
}

void readdir_root(struct fs *fs, struct node *dir, struct dir_fill *f, off_t off)
{
	struct dir_skip skip = { .dh = f->dh, .left = dir_begin(f, dir, off, 2) };

	if (skip.left > 0)
		store_list(fs->db, NULL, dir_skip_store, &skip);
	if (!f->full)
		store_list(fs->db, f->dh->have_cursor ? f->dh->store_cursor : NULL, dir_add_store, f);
}

/* ---- a store: incoming, then blobs ---- */

static void cursor_set_blob(struct dir_handle *dh, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	memcpy(dh->blob_cursor, hash, BLOBFS_HASH_SIZE);
	dh->have_cursor = true;
}

static int dir_skip_blob(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct dir_skip *s = arg;

	(void)length;
	cursor_set_blob(s->dh, hash);
	return --s->left <= 0;
}

static int dir_add_blob(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct dir_fill *f = arg;
	char hex[HASH_HEX_SIZE + 1];

	(void)length;
	hash_to_hex(hash, hex);
	if (!dir_add(f, hex, blob_ino(f->dir, hash), S_IFREG, f->dh->next_off + 1))
		return 1;
	cursor_set_blob(f->dh, hash);
	return 0;
}

void readdir_store(struct fs *fs, struct node *dir, struct dir_fill *f, off_t off)
{
	struct dir_skip skip = { .dh = f->dh, .left = dir_begin(f, dir, off, 3) };

	(void)fs;
	if (skip.left > 0)
		blob_list(dir->store, NULL, dir_skip_blob, &skip);
	if (off < 3 && !f->full)
		dir_add(f, INCOMING_NAME, incoming_dir_ino(dir), S_IFDIR, 3);
	if (!f->full)
		blob_list(dir->store, f->dh->have_cursor ? f->dh->blob_cursor : NULL, dir_add_blob, f);
}

/* ---- a directory of an incoming tree: its files and directories ---- */

void readdir_incoming(struct fs *fs, struct node *dir, struct dir_fill *f, off_t off)
{
	dir_begin(f, dir, off, 2); /* offsets come from inode numbers: no cursor */
	if (f->full)
		return;
	pthread_mutex_lock(&fs->lock);
	incoming_expire(fs);
	for (struct node *n = dir->incoming_head; n && !f->full; n = n->next_incoming) {
		off_t next = (off_t)(n->ino & INO_MASK) + 3;
		if (next > off)
			dir_add(f, n->name, n->ino, node_is_incoming_dir(n) ? S_IFDIR : S_IFREG,
				next);
	}
	pthread_mutex_unlock(&fs->lock);
}

/* ---- the lowlevel callbacks ---- */

void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_call c = call_of(req, "opendir");
	struct node *node = node_of(c.fs, ino);
	struct dir_handle *dh = NULL;
	struct fs_handle *h = NULL;
	int ret = node->ops->readdir ? handle_reserve(&c, &h) : -ENOTDIR;

	if (ret == 0 && !(dh = calloc(1, sizeof(*dh))))
		ret = -ENOMEM;
	if (ret < 0) {
		handle_cancel(c.fs, h);
		reply_error(req, -ret, c.op, node, NULL, c.why);
		return;
	}
	fi->fh = (uintptr_t)dh;
	handle_attach(c.fs, h, fi, node, readdir_drop);
	if (fuse_reply_open(req, fi) != 0)
		free((void *)(uintptr_t)handle_close(c.fs, fi));
}

void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *node = node_of(fs, ino);
	struct dir_fill f = { .req = req, .size = size, .dh = (struct dir_handle *)(uintptr_t)handle_fh(fi),
			      .dir = node };

	f.buf = malloc(size);
	if (!f.buf) {
		reply_error(req, ENOMEM, "readdir", node, NULL, NULL);
		return;
	}
	node->ops->readdir(fs, node, &f, off);
	fuse_reply_buf(req, f.buf, f.used);
	free(f.buf);
}

void readdir_drop(struct node *node, uint64_t fh)
{
	(void)node;
	free((void *)(uintptr_t)fh);
}

void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	free((void *)(uintptr_t)handle_close(fs_of(req), fi));
	fuse_reply_err(req, 0);
}
