/*
 * fs_dispatch.c - the libfuse lowlevel callbacks. Each finds the node, calls
 * its kind's operation (struct node_ops) and replies; when the kind has no
 * such operation it replies the errno of the README's namespace table. Every
 * error replied gets one log line, written here (reply_error), within a rate
 * limit that counts the lines it drops.
 */
#include "fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "log.h"


/*
 * The log lines of refused requests are rate limited: a client can make
 * thousands a second (a loop of opens it may not make), and the log must
 * not grow with them. A bucket of LOG_BURST lines refills at LOG_RATE a
 * second; lines beyond are counted, and the next line logged says how many
 * were not.
 */
#define LOG_BURST 100.0
#define LOG_RATE 20.0

static bool log_allowed(unsigned long *dropped)
{
	static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
	static double tokens = LOG_BURST;
	static struct timespec last;
	static unsigned long suppressed;
	struct timespec now;
	bool ok;

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&lock);
	if (last.tv_sec || last.tv_nsec)
		tokens += LOG_RATE * ((double)(now.tv_sec - last.tv_sec) +
				      (double)(now.tv_nsec - last.tv_nsec) / 1e9);
	if (tokens > LOG_BURST)
		tokens = LOG_BURST;
	last = now;
	ok = tokens >= 1.0;
	if (ok) {
		tokens -= 1.0;
		*dropped = suppressed;
		suppressed = 0;
	} else {
		suppressed++;
	}
	pthread_mutex_unlock(&lock);
	return ok;
}

void reply_error(fuse_req_t req, int err, const char *op, const struct node *node,
		 const char *name, const char *why)
{
	/* Answers tools get in the normal course of things (a lookup that
	 * misses, mv's rename across stores, cp -a's ACLs) are not warnings. */
	enum log_level level = err == ENOENT || err == ENODATA || err == EXDEV || err == ENOTSUP ?
				       LOG_LEVEL_DEBUG :
			       err == EIO || err == ENOSPC ? LOG_LEVEL_ERROR : LOG_LEVEL_WARNING;
	unsigned long dropped = 0;
	char path[600];

	if (level == LOG_LEVEL_DEBUG || log_allowed(&dropped)) {
		if (dropped)
			log_warning("%lu lines about refused requests were not logged (more than "
				    "%.0f a second)", dropped, LOG_RATE);
		node_path(node, name, path, sizeof(path));
		log_msg(level, "%s %s: %s%s%s", op, path, strerror(err), why ? ": " : "",
			why ? why : "");
	}
	fuse_reply_err(req, err);
}

struct fs_call call_of(fuse_req_t req, const char *op)
{
	const struct fuse_ctx *ctx = fuse_req_ctx(req);

	return (struct fs_call){ .fs = fs_of(req), .op = op, .uid = ctx->uid, .gid = ctx->gid,
				 .pid = ctx->pid, .req = req };
}

/* A request made through an open file (fi may be NULL: a setattr by name). */
static struct fs_call call_through(fuse_req_t req, const char *op, struct fuse_file_info *fi)
{
	struct fs_call c = call_of(req, op);

	c.fh = handle_fh(fi);
	return c;
}

/* Replies a status: 0, or the error of call c with its log line. */
static void reply_status(fuse_req_t req, const struct fs_call *c, int ret,
			 const struct node *node, const char *name)
{
	if (ret < 0)
		reply_error(req, -ret, c->op, node, name, c->why);
	else
		fuse_reply_err(req, 0);
}

/* Fills the entry of node for a reply and takes the kernel's reference that
 * the reply gives. Lock held. */
static void entry_of(struct fs *fs, struct node *node, struct fuse_entry_param *e)
{
	memset(e, 0, sizeof(*e));
	e->ino = ino_of(fs, node);
	e->entry_timeout = node->ops->entry_timeout(node);
	e->attr_timeout = node->ops->attr_timeout(node);
	node_attr(fs, node, &e->attr);
	node->nlookup++;
}

/* Replies to a lookup-like request with node. Lock held. */
static void reply_entry(fuse_req_t req, struct fs *fs, struct node *node)
{
	struct fuse_entry_param e;

	entry_of(fs, node, &e);
	if (fuse_reply_entry(req, &e) != 0)
		node->nlookup--; /* the kernel did not get it (interrupted) */
}

/* ---- names ---- */

static void fs_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs_call c = call_of(req, "lookup");
	struct fs *fs = c.fs;
	struct node *parent, *node;
	int ret;

	pthread_mutex_lock(&fs->lock);
	parent = node_of(fs, parent_ino);
	ret = parent->ops->lookup ? parent->ops->lookup(&c, parent, name, &node) : -ENOTDIR;
	if (ret == 0) {
		reply_entry(req, fs, node);
	} else if (ret == -ENOENT) {
		/* A miss: an entry with no inode, cached as long as the kind
		 * allows (a blob name may appear at any moment, by a save). */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		e.entry_timeout = parent->ops->miss_timeout;
		fuse_reply_entry(req, &e);
	} else {
		reply_error(req, -ret, c.op, parent, name, c.why);
	}
	pthread_mutex_unlock(&fs->lock);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	node_forget(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < count; i++)
		node_forget(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode)
{
	struct fs_call c = call_of(req, "mkdir");
	struct node *parent = node_of(c.fs, parent_ino), *node;
	int ret;

	if (!parent->ops->mkdir) {
		reply_error(req, EPERM, c.op, parent, name, parent->ops->holds);
		return;
	}
	ret = parent->ops->mkdir(&c, parent, name, mode);
	if (ret < 0) {
		reply_error(req, -ret, c.op, parent, name, c.why);
		return;
	}
	pthread_mutex_lock(&c.fs->lock);
	ret = parent->ops->lookup(&c, parent, name, &node);
	if (ret == 0)
		reply_entry(req, c.fs, node);
	else
		reply_error(req, -ret, c.op, parent, name, c.why);
	pthread_mutex_unlock(&c.fs->lock);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs_call c = call_of(req, "rmdir");
	struct node *parent = node_of(c.fs, parent_ino);
	int ret = parent->ops->rmdir ? parent->ops->rmdir(&c, parent, name) : -ENOENT;

	reply_status(req, &c, ret, parent, name);
}

static void fs_unlink(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs_call c = call_of(req, "unlink");
	struct node *parent = node_of(c.fs, parent_ino);
	int ret = parent->ops->unlink ? parent->ops->unlink(&c, parent, name) : -ENOENT;

	reply_status(req, &c, ret, parent, name);
}

/* Both mknod and create (fi: also open it). Lock held. */
static int create_in(struct fs_call *c, struct node *parent, const char *name, mode_t mode,
		     struct fuse_file_info *fi, struct node **out)
{
	if (!parent->ops->create) {
		c->why = parent->ops->holds;
		return -EPERM;
	}
	return parent->ops->create(c, parent, name, mode, fi, out);
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct fs_call c = call_of(req, "mknod");
	struct node *parent = node_of(c.fs, parent_ino), *node;
	int ret;

	(void)rdev;
	pthread_mutex_lock(&c.fs->lock);
	ret = create_in(&c, parent, name, mode, NULL, &node);
	if (ret == 0)
		reply_entry(req, c.fs, node);
	else
		reply_error(req, -ret, c.op, parent, name, c.why);
	pthread_mutex_unlock(&c.fs->lock);
}

static void fs_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs_call c = call_of(req, "create");
	struct node *parent = node_of(c.fs, parent_ino), *node;
	struct fs_handle *h;
	struct fuse_entry_param e;
	int ret = handle_reserve(&c, &h);

	pthread_mutex_lock(&c.fs->lock);
	if (ret == 0)
		ret = create_in(&c, parent, name, mode, fi, &node);
	if (ret == 0)
		entry_of(c.fs, node, &e);
	pthread_mutex_unlock(&c.fs->lock);
	if (ret < 0) {
		handle_cancel(c.fs, h);
		reply_error(req, -ret, c.op, parent, name, c.why);
		return;
	}
	c.fh = fi->fh;
	handle_attach(c.fs, h, fi, node, node->ops->drop);
	if (fuse_reply_create(req, &e, fi) != 0) {
		/* The kernel did not get it (interrupted): it holds neither the
		 * reference nor the handle. The handle keeps the node until the
		 * release. */
		pthread_mutex_lock(&c.fs->lock);
		node->nlookup--;
		pthread_mutex_unlock(&c.fs->lock);
		node->ops->release(&c, node, handle_close(c.fs, fi));
	}
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent_ino, const char *name)
{
	(void)link;
	reply_error(req, EPERM, "symlink", node_of(fs_of(req), parent_ino), name,
		    "blobfs holds no symbolic links");
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent_ino, const char *name)
{
	struct fs_call c = call_of(req, "link");
	struct node *node = node_of(c.fs, ino), *dir = node_of(c.fs, parent_ino), *copy;
	int ret;

	pthread_mutex_lock(&c.fs->lock);
	if (dir->ops->link) {
		ret = dir->ops->link(&c, node, dir, name, &copy);
	} else {
		c.why = "hard links can only be made in incoming/ (another receipt)";
		ret = -EPERM;
	}
	if (ret == 0)
		reply_entry(req, c.fs, copy);
	else
		reply_error(req, -ret, c.op, dir, name, c.why);
	pthread_mutex_unlock(&c.fs->lock);
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent_ino, const char *name,
		      fuse_ino_t newparent_ino, const char *newname, unsigned int flags)
{
	struct fs_call c = call_of(req, "rename");
	struct node *parent = node_of(c.fs, parent_ino), *newparent = node_of(c.fs, newparent_ino);
	int ret;

	if (parent->ops->rename) {
		ret = parent->ops->rename(&c, parent, name, newparent, newname, flags);
	} else {
		c.why = RENAME_RULE;
		ret = -EPERM;
	}
	reply_status(req, &c, ret, parent, name);
}

/* ---- attributes ---- */

static void fs_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *node;
	struct stat st;

	(void)fi;
	pthread_mutex_lock(&fs->lock);
	node = node_of(fs, ino);
	node_attr(fs, node, &st);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_attr(req, &st, node->ops->attr_timeout(node));
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs_call c = call_through(req, "setattr", fi);
	struct node *node = node_of(c.fs, ino);
	struct stat st;
	int ret;

	(void)fi;
	pthread_mutex_lock(&c.fs->lock);
	if (node->ops->setattr) {
		ret = node->ops->setattr(&c, node, attr, to_set);
	} else {
		c.why = "its attributes are fixed";
		ret = -EPERM;
	}
	if (ret == 0)
		node_attr(c.fs, node, &st);
	pthread_mutex_unlock(&c.fs->lock);
	if (ret < 0)
		reply_error(req, -ret, c.op, node, NULL, c.why);
	else
		fuse_reply_attr(req, &st, 0);
}

/* ---- files ---- */

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_call c = call_of(req, "open");
	struct node *node = node_of(c.fs, ino);
	struct fs_handle *h = NULL;
	int ret = node->ops->open ? handle_reserve(&c, &h) : -EISDIR;

	if (ret == 0)
		ret = node->ops->open(&c, node, fi);
	if (ret < 0) {
		handle_cancel(c.fs, h);
		reply_error(req, -ret, c.op, node, NULL, c.why);
		return;
	}
	c.fh = fi->fh;
	handle_attach(c.fs, h, fi, node, node->ops->drop);
	if (fuse_reply_open(req, fi) != 0) {
		uint64_t fh = handle_close(c.fs, fi);
		if (node->ops->release)
			node->ops->release(&c, node, fh); /* the kernel did not get it */
	}
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs_call c = call_of(req, "read");
	struct node *node = node_of(c.fs, ino);
	size_t got = 0;
	char *buf = NULL;
	int ret = -EISDIR;

	if (!node->ops->read)
		goto out;
	ret = -ENOMEM;
	buf = malloc(size ? size : 1);
	if (!buf)
		goto out;
	ret = node->ops->read(&c, node, handle_fh(fi), buf, size, (uint64_t)off, &got);
out:
	if (ret < 0)
		reply_error(req, -ret, c.op, node, NULL, c.why);
	else
		fuse_reply_buf(req, buf, got);
	free(buf);
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs_call c = call_through(req, "write", fi);
	struct node *node = node_of(c.fs, ino);
	int ret;

	if (node->ops->write) {
		ret = node->ops->write(&c, node, c.fh, buf, size, (uint64_t)off);
	} else {
		c.why = "it is read-only";
		ret = -EACCES;
	}
	if (ret < 0)
		reply_error(req, -ret, c.op, node, NULL, c.why);
	else
		fuse_reply_write(req, size);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_call c = call_through(req, "flush", fi);
	struct node *node = node_of(c.fs, ino);

	reply_status(req, &c, node->ops->flush ? node->ops->flush(&c, node, c.fh) : 0, node,
		     NULL);
}

static void fs_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t off, off_t len,
			 struct fuse_file_info *fi)
{
	struct fs_call c = call_through(req, "fallocate", fi);
	struct node *node = node_of(c.fs, ino);
	int ret = -EOPNOTSUPP;

	(void)fi;
	if (off < 0 || len <= 0)
		ret = -EINVAL;
	else if (node->ops->fallocate)
		ret = node->ops->fallocate(&c, node, mode, (uint64_t)off, (uint64_t)len);
	reply_status(req, &c, ret, node, NULL);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs_call c = call_through(req, "release", fi);
	struct node *node = node_of(c.fs, ino);

	handle_close(c.fs, fi);
	if (node->ops->release)
		node->ops->release(&c, node, c.fh);
	fuse_reply_err(req, 0);
}

static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_call c = call_through(req, "fsync", fi);
	struct node *node = node_of(c.fs, ino);

	(void)datasync;
	(void)fi;
	reply_status(req, &c, node->ops->fsync ? node->ops->fsync(&c, node) : 0, node, NULL);
}

/* fsync of a directory makes its store's (the root: every store's) saves
 * and deletes durable. */
static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs_call c = call_of(req, "fsync");
	struct node *node = node_of(c.fs, ino);
	int ret = node->ops->fsync ? node->ops->fsync(&c, node) : 0;

	(void)datasync;
	(void)fi;
	reply_status(req, &c, ret < 0 ? -EIO : 0, node, NULL);
}

/* ---- the rest ---- */

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs st;
	int ret = blobdb_statfs(fs->db, &st);

	(void)ino;
	if (ret < 0) {
		reply_error(req, -ret, "statfs", &fs->root, NULL, NULL);
		return;
	}
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = FS_IO_SIZE;
	/* Blobs never change, so cached pages never need checking against the
	 * attributes (on every read, with auto_inval_data). */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
}

const struct fuse_lowlevel_ops fs_lowlevel_ops = {
	.init = fs_init,
	.lookup = fs_lookup,
	.forget = fs_forget,
	.forget_multi = fs_forget_multi,
	.getattr = fs_getattr,
	.setattr = fs_setattr,
	.mknod = fs_mknod,
	.mkdir = fs_mkdir,
	.unlink = fs_unlink,
	.rmdir = fs_rmdir,
	.symlink = fs_symlink,
	.rename = fs_rename,
	.link = fs_link,
	.open = fs_open,
	.read = fs_read,
	.write = fs_write,
	.flush = fs_flush,
	.fallocate = fs_fallocate,
	.release = fs_release,
	.fsync = fs_fsync,
	.fsyncdir = fs_fsyncdir,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.getxattr = fs_getxattr,
	.listxattr = fs_listxattr,
	.removexattr = fs_removexattr,
	.create = fs_create,
};
