/*
 * fs_incoming.c - the directories of a store's incoming tree: incoming/
 * itself and the directories made in it, at any depth. They hold files
 * being written and receipts (fs_file.c) and other directories; every
 * regular file written anywhere in the tree is saved as a blob of the store.
 * Names can be created, linked (another receipt of the same blob), renamed
 * within the store's tree (EXDEV to another store, so mv copies) and
 * removed; symbolic links and device nodes are refused. A directory keeps
 * the mode, owner and times set on it; an empty one expires like a receipt
 * (fs_expiry.c). incoming/ itself always exists, and its owner, group and
 * mode are its store's (fs_owners.c).
 */
#include "fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#define HOLDS "incoming holds regular files and directories (no symbolic links or devices)"

static void touch_now(struct node *node)
{
	clock_gettime(CLOCK_REALTIME, &node->mtime);
	node->ctime = node->mtime;
}

/* Room for one more name in dir: dir itself must not be the idle name that
 * goes to make it. Lock held. */
static int reserve_in(struct fs *fs, struct node *dir)
{
	int ret;

	idle_remove(fs, dir);
	ret = incoming_reserve(fs);
	if (!dir->incoming_head && dir->attached && !node_is_incoming_top(dir))
		idle_add(fs, dir); /* still empty (the caller adds a name now, or not) */
	return ret;
}

static void incoming_dir_attr(struct fs *fs, const struct node *node, struct stat *st)
{
	struct store_attr a = { .uid = node->uid, .gid = node->gid, .mode = node->mode };

	/* incoming/ itself is the store's (fs_owners.c). */
	if (node_is_incoming_top(node))
		store_attr_of(fs, node->store, &a);
	st->st_mode = S_IFDIR | (a.mode & 07777);
	st->st_nlink = 2;
	st->st_uid = a.uid;
	st->st_gid = a.gid;
	st->st_atim = node->atime;
	st->st_mtim = node->mtime;
	st->st_ctim = node->ctime;
}

/* incoming/ lives with its store's node; a directory in it while it has a
 * name. */
static bool incoming_dir_held(const struct node *node)
{
	return node->attached && (!node_is_incoming_top(node) || node->parent->attached);
}

static int incoming_dir_setattr(struct fs_call *c, struct node *node, const struct stat *attr,
				int to_set)
{
	if (to_set & FUSE_SET_ATTR_SIZE) {
		c->op = "truncate";
		return -EISDIR;
	}
	if (node_is_incoming_top(node)) {
		/* Its owner and mode are its store's. */
		int ret = fs_store_setattr(c, node, attr, to_set);
		if (ret < 0)
			return ret;
		to_set &= ~SET_ATTR_OWNERSHIP;
	}
	node_setattr_common(node, attr, to_set);
	return 0;
}

struct node *incoming_dir_new(struct fs *fs, struct node *parent, const char *name,
			      uint64_t ino, mode_t mode, uid_t uid, gid_t gid)
{
	struct store *store = store_hold(parent->store);
	struct node *node = node_get(fs, parent, name, &incoming_dir_ops, ino, &store);

	store_close(store);
	if (!node)
		return NULL;
	node->mode = mode & 07777;
	node->uid = uid;
	node->gid = gid;
	touch_now(node);
	node->atime = node->mtime;
	return node;
}

static int incoming_dir_lookup(struct fs_call *c, struct node *dir, const char *name,
			       struct node **out)
{
	incoming_expire(c->fs);
	*out = table_find(c->fs, dir, name);
	return *out ? 0 : -ENOENT;
}

static int incoming_dir_mkdir(struct fs_call *c, struct node *dir, const char *name, mode_t mode)
{
	struct fs *fs = c->fs;
	struct node *node;
	int ret;

	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&fs->lock);
	ret = !dir->attached ? -ENOENT : table_find(fs, dir, name) ? -EEXIST : reserve_in(fs, dir);
	if (ret == 0) {
		node = incoming_dir_new(fs, dir, name, 0, mode, c->uid, c->gid);
		if (node) {
			idle_add(fs, node); /* empty */
			touch_now(dir);
		} else {
			ret = -ENOMEM;
		}
	}
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

/* The name goes; its node lives on while the kernel or a handle refers to
 * it. Lock held. */
static void remove_name(struct fs *fs, struct node *dir, struct node *node)
{
	if (node->ops == &file_ops)
		file_discard(fs, node);
	node_detach(fs, node);
	node_release(fs, node);
	touch_now(dir);
}

/* rmdir (dir: a directory, and empty) and unlink (a file: removing a
 * receipt never removes its blob). */
static int remove_entry(struct fs_call *c, struct node *dir, const char *name, bool want_dir)
{
	struct fs *fs = c->fs;
	struct node *node;
	int ret = 0;

	pthread_mutex_lock(&fs->lock);
	node = table_find(fs, dir, name);
	if (!node)
		ret = -ENOENT;
	else if (node_is_incoming_dir(node) != want_dir)
		ret = want_dir ? -ENOTDIR : -EISDIR;
	else if (want_dir && node->incoming_head)
		ret = -ENOTEMPTY;
	else
		remove_name(fs, dir, node);
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

static int incoming_dir_rmdir(struct fs_call *c, struct node *dir, const char *name)
{
	return remove_entry(c, dir, name, true);
}

static int incoming_dir_unlink(struct fs_call *c, struct node *dir, const char *name)
{
	return remove_entry(c, dir, name, false);
}

static int incoming_dir_create(struct fs_call *c, struct node *dir, const char *name, mode_t mode,
			       struct fuse_file_info *fi, struct node **out)
{
	struct node *node;
	int ret;

	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	if (!S_ISREG(mode)) {
		c->why = HOLDS;
		return -EPERM;
	}
	if (!dir->attached)
		return -ENOENT; /* removed while a process was in it */
	node = table_find(c->fs, dir, name);
	if (node && node_is_incoming_dir(node))
		return -EISDIR;
	if (node && (!fi || (fi->flags & O_EXCL)))
		return -EEXIST;
	if (node) { /* another create of the name came first */
		ret = file_open_locked(c, node, fi);
		goto out;
	}
	ret = reserve_in(c->fs, dir);
	if (ret == 0)
		ret = file_new(c, dir, name, mode, false, fi != NULL, &node);
	if (ret == 0 && fi && (ret = file_open_locked(c, node, fi)) < 0)
		remove_name(c->fs, dir, node); /* nobody has it: it goes */
	if (ret == 0)
		touch_now(dir);
out:
	if (ret == 0)
		*out = node;
	return ret;
}

/* Whether dir is node or inside it. */
static bool is_within(const struct node *dir, const struct node *node)
{
	for (; dir; dir = dir->parent)
		if (dir == node)
			return true;
	return false;
}

/* Checks a rename of node over victim (NULL: none). */
static int rename_check(struct node *node, struct node *victim, struct node *newdir,
			unsigned int flags)
{
	if (victim && (flags & RENAME_NOREPLACE))
		return -EEXIST;
	if (node_is_incoming_dir(node) && is_within(newdir, node))
		return -EINVAL; /* into itself */
	if (!victim || victim == node)
		return 0;
	if (node_is_incoming_dir(victim)) {
		if (!node_is_incoming_dir(node))
			return -EISDIR;
		return victim->incoming_head ? -ENOTEMPTY : 0;
	}
	return node_is_incoming_dir(node) ? -ENOTDIR : 0;
}

static int incoming_dir_rename(struct fs_call *c, struct node *dir, const char *name,
			       struct node *newdir, const char *newname, unsigned int flags)
{
	struct fs *fs = c->fs;
	struct node *node, *victim;
	char *copy = NULL;
	int ret;

	if (newdir->store && newdir->store != dir->store) {
		c->why = "another store: copy, then remove (mv does)";
		return -EXDEV;
	}
	if (!node_is_incoming_dir(newdir) || (flags & RENAME_EXCHANGE)) {
		c->why = RENAME_RULE;
		return -EPERM;
	}
	if (strlen(newname) > 255)
		return -ENAMETOOLONG;
	pthread_mutex_lock(&fs->lock);
	node = table_find(fs, dir, name);
	victim = table_find(fs, newdir, newname);
	ret = node && newdir->attached ? rename_check(node, victim, newdir, flags) : -ENOENT;
	if (ret == 0 && node != victim && !(copy = strdup(newname)))
		ret = -ENOMEM;
	if (ret == 0 && node != victim) {
		if (victim)
			remove_name(fs, newdir, victim);
		node_move(fs, node, newdir, copy);
		clock_gettime(CLOCK_REALTIME, &node->ctime);
		touch_now(dir);
		touch_now(newdir);
	}
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

/* Another receipt of the same blob: of a receipt, or of a blob of the
 * store. A file still being written has no blob yet. */
static int incoming_dir_link(struct fs_call *c, struct node *node, struct node *dir,
			     const char *name, struct node **out)
{
	struct node *copy;
	bool blob = node->ops == &blob_ops;
	int ret;

	if (node->store != dir->store) {
		c->why = "another store";
		return -EXDEV;
	}
	if (!blob && (node->ops != &file_ops || node->verified)) {
		c->why = "only receipts and blobs can be linked into incoming/";
		return -EPERM;
	}
	if (!blob && (!node->saved || node->dirty)) {
		c->why = "its content is not saved yet (it is saved at close)";
		return -EPERM;
	}
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	if (!dir->attached)
		return -ENOENT;
	if (table_find(c->fs, dir, name))
		return -EEXIST;
	/* The blob must outlive a retract by whoever saved it tentatively:
	 * a receipt now stands behind it. */
	ret = blob_claim(dir->store, node->hash);
	if (ret == -ENOENT) {
		c->why = "its blob was deleted";
		ret = -EIO;
	}
	if (ret == 0 && node->ops == &file_ops)
		file_settle(node);
	if (ret == 0)
		ret = reserve_in(c->fs, dir);
	if (ret == 0)
		ret = file_new(c, dir, name, blob ? 0444 : node->mode, false, false, &copy);
	if (ret < 0)
		return ret;
	memcpy(copy->hash, node->hash, BLOBFS_HASH_SIZE);
	copy->size = node->size;
	copy->saved = true;
	if (blob) {
		copy->mtime = copy->atime = node->saved_at;
	} else {
		copy->uid = node->uid;
		copy->gid = node->gid;
		copy->atime = node->atime;
		copy->mtime = node->mtime;
	}
	clock_gettime(CLOCK_REALTIME, &copy->ctime);
	idle_add(c->fs, copy);
	touch_now(dir);
	*out = copy;
	return 0;
}

const struct node_ops incoming_dir_ops = {
	.attr = incoming_dir_attr,
	.entry_timeout = dir_timeout,
	.attr_timeout = dir_timeout,
	.held = incoming_dir_held,
	.setattr = incoming_dir_setattr,
	.fsync = node_store_sync,
	.holds = HOLDS,
	/* A name here only ever appears through a request the kernel itself
	 * makes (create, mkdir, link, rename), which replaces its cached miss:
	 * misses are cached, saving a round trip per file for tools that look
	 * before they create (cp). */
	.miss_timeout = BLOB_TIMEOUT,
	.lookup = incoming_dir_lookup,
	.mkdir = incoming_dir_mkdir,
	.rmdir = incoming_dir_rmdir,
	.unlink = incoming_dir_unlink,
	.create = incoming_dir_create,
	.rename = incoming_dir_rename,
	.link = incoming_dir_link,
	.readdir = readdir_incoming,
};
