/*
 * fs_file.c - a regular file being written, and what it leaves behind: in
 * an incoming tree a receipt (/S/incoming/.../NAME), in a store a verified
 * write (/S/<hex>, whose content must hash to its name).
 *
 * The rules, so that an open file ends as one blob:
 * - Content goes into a version (a blob_writer). A version starts at create,
 *   at an open with O_TRUNC, or at the first write, truncate or fallocate of
 *   a saved file (a receipt), which copies its blob first unless it
 *   truncates to zero.
 * - A close() of a writable descriptor (FUSE flush) saves the version when it
 *   holds unsaved content and either nobody has written it yet (create or
 *   O_TRUNC: the empty file is saved, as touch expects) or the closing
 *   process wrote some of it. A close by a reader, or by a process that only
 *   shares the descriptor (a child that inherited a redirect and never
 *   wrote), saves nothing. The blob exists when that close() returns.
 * - While the file is open such a save is tentative: when more is written
 *   and saved, the superseded blob is taken back (unless another save stands
 *   behind it, store.h), so a descriptor shared by many processes ends as
 *   one blob. The last close (release) makes the last save final, and saves
 *   whatever a close did not (nothing written is ever dropped).
 * - Then the name is a receipt: the content is the blob, read from the
 *   store; the version's memory is given back. A verified write's name goes
 *   instead, and /S/<hex> is the blob.
 * Mode, owner and times are kept on the node and never change the blob.
 */
#include "fs_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"

#define COPY_CHUNK (1u << 20)

void set_time(struct timespec *t, const struct timespec *value, bool now)
{
	if (now)
		clock_gettime(CLOCK_REALTIME, t);
	else
		*t = *value;
}

void node_setattr_common(struct node *node, const struct stat *attr, int to_set)
{
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
}

/* ---- who wrote ---- */

/* The process (thread group) of a thread: FUSE names the calling thread,
 * and a process's threads share its descriptors. 0 when unknown. */
static pid_t tgid_of(pid_t tid)
{
	char path[64], buf[1024];
	const char *p;
	ssize_t n;
	int fd;

	if (tid <= 0)
		return 0;
	snprintf(path, sizeof(path), "/proc/%d/status", (int)tid);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return 0;
	buf[n] = '\0';
	p = strstr(buf, "\nTgid:");
	return p ? (pid_t)atoi(p + 6) : 0;
}

/* Notes the thread that wrote (FUSE names threads); processes are looked up
 * only when a close needs them. */
static void writer_note(struct node *node, pid_t tid)
{
	if (tid <= 0) {
		node->writers_unknown = true;
		return;
	}
	for (unsigned i = 0; i < node->writer_count; i++)
		if (node->writer_tids[i] == tid)
			return;
	if (node->writer_count < WRITER_TIDS)
		node->writer_tids[node->writer_count++] = tid;
	else
		node->writers_unknown = true; /* too many to tell: any close saves */
}

/*
 * Whether a close by thread tid should save the unsaved content: nobody
 * wrote it (create or O_TRUNC: the empty file is saved, as touch expects; a
 * verified write's close then fails unless its name is the empty blob's),
 * or the closing process wrote some of it. The common case, the writing
 * thread closing, needs no lookup; otherwise threads are compared by their
 * process (/proc/TID/status), and a writer that cannot be looked up any
 * more counts as the closer's (a save too many is taken back later; a save
 * too few would lose the content of that close). Lock held; dropped while
 * /proc is read.
 */
static bool closer_wrote(struct fs *fs, struct node *node, pid_t tid)
{
	pid_t tids[WRITER_TIDS], tgid;
	unsigned n = node->writer_count;
	bool wrote;

	if (n == 0 && !node->writers_unknown)
		return true;
	if (node->writers_unknown || tid <= 0)
		return true;
	for (unsigned i = 0; i < n; i++)
		if (node->writer_tids[i] == tid)
			return true;
	memcpy(tids, node->writer_tids, n * sizeof(*tids));
	pthread_mutex_unlock(&fs->lock);
	tgid = tgid_of(tid);
	wrote = tgid <= 0;
	for (unsigned i = 0; i < n && !wrote; i++) {
		pid_t other = tgid_of(tids[i]);
		wrote = other <= 0 || other == tgid;
	}
	pthread_mutex_lock(&fs->lock);
	return wrote;
}

/* ---- versions and saves ---- */

/* Copies the file's blob into a new version. */
static int copy_blob(struct node *node, struct blob_writer *writer)
{
	struct blob_reader *reader = NULL;
	uint64_t off = 0;
	char *buf = NULL;
	size_t got;
	int ret;

	ret = blob_open(node->store, node->hash, &reader);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	buf = malloc(COPY_CHUNK);
	if (!buf)
		goto out;
	ret = 0;
	while (ret == 0 && off < node->size) {
		ret = blob_read(reader, buf, COPY_CHUNK, off, &got);
		if (ret == 0 && got == 0)
			ret = -EIO; /* shorter than it said */
		if (ret == 0)
			ret = blob_writer_write(writer, buf, got, off);
		off += got;
	}
out:
	free(buf);
	blob_close(reader);
	return ret;
}

/* The open file changed the content: its release saves it if no save
 * covered it by then. Lock held. */
static void note_change(struct open_file *h, const struct node *node)
{
	h->changed = true;
	h->changed_at = node->clean_saves;
}

/* Waits until no save or copy of the node is running. Lock held. */
static void wait_idle(struct fs *fs, struct node *node)
{
	while (node->saving)
		pthread_cond_wait(&fs->saved, &fs->lock);
}

/* Makes sure a version is being written (keep: starting from the current
 * content; otherwise empty). Lock held; dropped while a receipt's blob is
 * copied into the new version (node->saving keeps others out meanwhile). */
static int version_start(struct fs_call *c, struct node *node, bool keep)
{
	struct fs *fs = c->fs;
	struct blob_writer *writer = NULL;
	int ret = 0;

	wait_idle(fs, node);
	/* A change through another open file (or none: truncate by name) is a
	 * new version: the last save of the one before is final, even if that
	 * open file's release (which comes after its close() returned) is
	 * still on its way. */
	if (node->tentative && node->tentative_by != c->fh)
		file_settle(node);
	if (!node->writer) {
		ret = blob_writer_new(node->store, &writer);
		if (ret == 0 && keep && node->saved && node->size > 0) {
			node->saving = true;
			pthread_mutex_unlock(&fs->lock);
			ret = copy_blob(node, writer);
			pthread_mutex_lock(&fs->lock);
			node->saving = false;
			pthread_cond_broadcast(&fs->saved);
		}
		if (ret < 0) {
			if (ret == -ENOENT) {
				c->why = "the blob of this receipt was deleted";
				ret = -EIO;
			}
			blob_writer_free(writer);
			return ret;
		}
		node->writer = writer;
	} else if (!keep) {
		ret = blob_writer_truncate(node->writer, 0);
		if (ret < 0)
			return ret;
	}
	if (!node->dirty) {
		node->dirty = true;
		node->writer_count = 0;
		node->writers_unknown = false;
	}
	node->changes++;
	if (c->fh)
		note_change((struct open_file *)(uintptr_t)c->fh, node);
	return 0;
}

/* Tells the kernel a blob name it may have cached is gone (through the
 * notifier thread: from a request handler it could deadlock). */
static void forget_blob_name(struct fs *fs, struct node *node, const uint8_t hash[])
{
	char hex[HASH_HEX_SIZE + 1];
	struct node *store = node->parent;

	hash_to_hex(hash, hex);
	pthread_mutex_lock(&fs->lock);
	while (store && store->ops != &store_ops)
		store = store->parent;
	if (store)
		fs_notify_forget_name(fs, ino_of(fs, store), hex);
	pthread_mutex_unlock(&fs->lock);
}

/* A save by a later close superseded a tentative save: its blob goes,
 * unless another save stands behind it. */
static void retract(struct fs *fs, struct node *node, const uint8_t hash[])
{
	char hex[HASH_HEX_SIZE + 1];
	int ret = blob_retract(node->store, hash);

	hash_to_hex(hash, hex);
	if (ret == 0) {
		log_debug("%s/%s: superseded before its file was closed, taken back",
			  store_name(node->store), hex);
		forget_blob_name(fs, node, hash);
	} else if (ret != -EEXIST && ret != -ENOENT) {
		log_warning("%s/%s: superseded before its file was closed, but stays: %s",
			    store_name(node->store), hex, strerror(-ret));
	}
}

/* Saves the unsaved content. Lock held (dropped while the store works).
 * A failed save (for a verified write, content that does not hash to its
 * name) removes the name at once; close() says why. */
static int file_save(struct fs_call *c, struct node *node)
{
	struct fs *fs = c->fs;
	uint8_t hash[BLOBFS_HASH_SIZE], old[BLOBFS_HASH_SIZE];
	bool tentative = false, superseded = false;
	uint64_t changes;
	int ret, synced = 0;

	wait_idle(fs, node);
	if (!node->dirty || node->discarded || !node->writer)
		return 0;
	node->saving = true;
	/* A write whose bytes may land after the commit read the content
	 * leaves the file unsaved. */
	changes = node->writes_landing ? UINT64_MAX : node->changes;
	pthread_mutex_unlock(&fs->lock);
	c->op = "save";
	ret = blob_writer_commit_tentative(node->writer, node->verified ? node->hash : NULL, hash,
					   &tentative);
	if ((ret == 0 || ret == -EEXIST) && fs->sync && store_sync(node->store) < 0)
		synced = -EIO;
	pthread_mutex_lock(&fs->lock);
	node->saving = false;
	pthread_cond_broadcast(&fs->saved);
	if (ret == 0 || ret == -EEXIST) {
		superseded = node->tentative && memcmp(node->hash, hash, BLOBFS_HASH_SIZE);
		if (superseded)
			memcpy(old, node->hash, BLOBFS_HASH_SIZE);
		node->tentative = tentative || (node->tentative && !superseded);
		node->tentative_by = c->fh;
		memcpy(node->hash, hash, BLOBFS_HASH_SIZE);
		node->saved = true;
		node->size = blob_writer_size(node->writer);
		if (node->changes == changes) { /* nothing written meanwhile */
			node->clean_saves++;
			node->dirty = false;
			node->writer_count = 0;
			node->writers_unknown = false;
		}
		{
			char hex[HASH_HEX_SIZE + 1];
			hash_to_hex(hash, hex);
			log_debug("%s saved as %s/%s%s", node->name, store_name(node->store), hex,
				  ret == -EEXIST ? " (already there)" : "");
		}
		ret = 0;
		if (synced < 0) {
			c->why = "could not make it durable";
			ret = synced;
		}
	} else if (ret == -EINVAL && node->verified) {
		/* Nothing is stored under the name; the content stays with the
		 * open descriptors: a later close by a writer may still complete
		 * it (a shell closes its copy of a redirect before the command
		 * writes). */
		c->why = "its content does not hash to its name (nothing saved)";
		ret = -EIO;
		node_detach(fs, node);
	} else {
		/* The name goes as after a save, and the content with the last
		 * close, so that a full disk gets the space back. */
		file_discard(fs, node);
		node_detach(fs, node);
		/* A store destroyed under a still-open file cannot take it: for
		 * the writer that is a failed save, not a missing file. */
		if (ret == -ENOENT) {
			c->why = "its store was destroyed";
			ret = -EIO;
		}
	}
	if (superseded) {
		pthread_mutex_unlock(&fs->lock);
		retract(fs, node, old);
		pthread_mutex_lock(&fs->lock);
	}
	return ret;
}

/* ---- the kind's operations ---- */

int file_new(struct fs_call *c, struct node *dir, const char *name, mode_t mode,
	     bool verified, bool with_writer, struct node **out)
{
	struct blob_writer *writer = NULL;
	struct store *store = NULL;
	uint8_t hash[BLOBFS_HASH_SIZE] = { 0 };
	struct node *node;
	int ret = 0;

	if (verified && !hash_from_hex(name, strlen(name), hash))
		return -EINVAL;
	if (with_writer)
		ret = blob_writer_new(dir->store, &writer);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	store = store_hold(dir->store);
	node = node_get(c->fs, dir, name, &file_ops, verified ? blob_ino(dir, hash) : 0, &store);
	if (!node)
		goto out;
	node->writer = writer;
	writer = NULL;
	node->dirty = with_writer;
	node->verified = verified;
	memcpy(node->hash, hash, BLOBFS_HASH_SIZE);
	node->mode = mode & 07777;
	node->uid = c->uid;
	node->gid = c->gid;
	clock_gettime(CLOCK_REALTIME, &node->mtime);
	node->atime = node->ctime = node->mtime;
	if (!with_writer)
		idle_add(c->fs, node); /* mknod, link: closed */
	*out = node;
	ret = 0;
out:
	blob_writer_free(writer);
	store_close(store);
	return ret;
}

void file_settle(struct node *node)
{
	if (node->tentative) {
		blob_settle(node->store, node->hash);
		node->tentative = false;
	}
}

void file_discard(struct fs *fs, struct node *node)
{
	(void)fs;
	node->discarded = true;
	file_settle(node); /* the content of its last save stays */
}

static void file_attr(struct fs *fs, const struct node *node, struct stat *st)
{
	(void)fs;
	st->st_mode = S_IFREG | (node->mode & 07777);
	st->st_nlink = node->attached ? 1 : 0;
	st->st_uid = node->uid;
	st->st_gid = node->gid;
	st->st_size = (off_t)(node->writer ? blob_writer_size(node->writer) : node->size);
	st->st_atim = node->atime;
	st->st_mtim = node->mtime;
	st->st_ctim = node->ctime;
}

/* A verified write's name turns into the blob's (or goes) behind the
 * kernel's back; a name in incoming/ changes only through the kernel but
 * for expiry. */
static double file_timeout(const struct node *node)
{
	return node->verified ? 0 : INCOMING_TIMEOUT;
}

static bool file_held(const struct node *node)
{
	return node->attached;
}

/* The last handle went (or a truncate by name ended): the last save is
 * final, the version's memory goes when everything is saved, and the name
 * becomes a receipt that may expire (a verified write's name goes: it is
 * the blob's now, or nothing). Lock held. */
static void file_closed(struct fs *fs, struct node *node)
{
	file_settle(node);
	if (!node->dirty && node->writer) {
		blob_writer_free(node->writer);
		node->writer = NULL;
	}
	if (node->verified) {
		file_discard(fs, node);
		node_detach(fs, node);
	} else if (node->attached) {
		idle_add(fs, node);
	}
}

/* A truncate of a closed file (truncate(1) by name) is the whole change:
 * it is saved at once, as a close would, and the file is pinned as if open
 * meanwhile (neither expiry nor a release takes its writer). */
static int file_truncate(struct fs_call *c, struct node *node, uint64_t size)
{
	struct fs *fs = c->fs;
	bool closed = node->open_count == 0;
	int ret;

	c->op = "truncate";
	node->open_count++;
	idle_remove(fs, node);
	ret = version_start(c, node, size > 0);
	if (ret == 0)
		ret = blob_writer_truncate(node->writer, size);
	node->changes++;
	if (ret == 0 && closed && !node->discarded)
		ret = file_save(c, node);
	node->open_count--;
	if (node->open_count == 0)
		file_closed(fs, node);
	return ret;
}

static int file_setattr(struct fs_call *c, struct node *node, const struct stat *attr,
			int to_set)
{
	int ret;

	if (to_set & FUSE_SET_ATTR_SIZE) {
		/* A name that expired while the kernel still trusted it: the
		 * kernel looks it up again. */
		if (!node->attached && node->open_count == 0)
			return -ESTALE;
		ret = file_truncate(c, node, (uint64_t)attr->st_size);
		if (ret < 0)
			return ret;
	}
	node_setattr_common(node, attr, to_set);
	return 0;
}

int file_open_locked(struct fs_call *c, struct node *node, struct fuse_file_info *fi)
{
	struct open_file *h = calloc(1, sizeof(*h));
	int ret = -ENOMEM;

	if (!h)
		goto out;
	h->writable = (fi->flags & O_ACCMODE) != O_RDONLY;
	/* A name that expired while the kernel still trusted it: the kernel
	 * looks it up again (and creates the file afresh for O_CREAT). */
	ret = -ESTALE;
	if (!node->attached)
		goto out;
	ret = 0;
	if (h->writable && (fi->flags & O_TRUNC)) {
		ret = version_start(c, node, false);
		note_change(h, node);
	}
	if (ret == 0 && !node->writer && node->saved && node->size > 0) {
		ret = blob_open(node->store, node->hash, &h->reader);
		if (ret == -ENOENT) {
			c->why = "the blob of this receipt was deleted";
			ret = -EIO;
		}
	}
	if (ret < 0)
		goto out;
	node->open_count++;
	idle_remove(c->fs, node);
	fi->fh = (uintptr_t)h;
	h = NULL;
out:
	free(h);
	return ret;
}

static int file_open(struct fs_call *c, struct node *node, struct fuse_file_info *fi)
{
	int ret;

	pthread_mutex_lock(&c->fs->lock);
	ret = file_open_locked(c, node, fi);
	pthread_mutex_unlock(&c->fs->lock);
	return ret;
}

static int file_read(struct fs_call *c, struct node *node, uint64_t fh, void *buf, size_t size,
		     uint64_t off, size_t *got)
{
	struct open_file *h = (struct open_file *)(uintptr_t)fh;
	struct blob_writer *writer;

	/* The writer lives while a handle is open. */
	pthread_mutex_lock(&c->fs->lock);
	writer = node->writer;
	pthread_mutex_unlock(&c->fs->lock);
	if (writer)
		return blob_writer_read(writer, buf, size, off, got);
	if (h->reader)
		return blob_read(h->reader, buf, size, off, got);
	*got = 0; /* empty (made by mknod), or a version no longer */
	return 0;
}

static int file_write(struct fs_call *c, struct node *node, uint64_t fh, const void *buf,
		      size_t size, uint64_t off)
{
	struct fs *fs = c->fs;
	struct blob_writer *writer = NULL;
	int ret;

	(void)fh;
	pthread_mutex_lock(&fs->lock);
	ret = version_start(c, node, true);
	if (ret == 0) {
		writer_note(node, c->pid);
		clock_gettime(CLOCK_REALTIME, &node->mtime);
		node->ctime = node->mtime;
		writer = node->writer;
		node->writes_landing++;
	}
	pthread_mutex_unlock(&fs->lock);
	if (ret < 0)
		return ret;
	ret = blob_writer_write(writer, buf, size, off);
	pthread_mutex_lock(&fs->lock);
	node->writes_landing--;
	node->changes++;
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

static int file_fallocate(struct fs_call *c, struct node *node, int mode, uint64_t off,
			  uint64_t len)
{
	uint64_t size;
	int ret = 0;

	if (mode & ~FALLOC_FL_KEEP_SIZE)
		return -EOPNOTSUPP;
	if (mode & FALLOC_FL_KEEP_SIZE)
		return 0; /* the content does not change; nothing to reserve */
	pthread_mutex_lock(&c->fs->lock);
	size = node->writer ? blob_writer_size(node->writer) : node->size;
	if (off + len > size) {
		ret = version_start(c, node, true);
		if (ret == 0)
			ret = blob_writer_truncate(node->writer, off + len);
		node->changes++;
	}
	pthread_mutex_unlock(&c->fs->lock);
	return ret;
}

static int file_flush(struct fs_call *c, struct node *node, uint64_t fh)
{
	struct open_file *h = (struct open_file *)(uintptr_t)fh;
	struct fs *fs = c->fs;
	int ret = 0;

	if (!h->writable)
		return 0;
	pthread_mutex_lock(&fs->lock);
	if (node->dirty && !node->discarded && closer_wrote(fs, node, c->pid))
		ret = file_save(c, node);
	pthread_mutex_unlock(&fs->lock);
	return ret;
}

static void file_release(struct fs_call *c, struct node *node, uint64_t fh)
{
	struct open_file *h = (struct open_file *)(uintptr_t)fh;
	struct fs *fs = c->fs;

	pthread_mutex_lock(&fs->lock);
	/* What this open file changed and no close saved (its writer never
	 * closed it: mmap, or a process that shared the descriptor wrote last)
	 * is saved now; at the last release, whatever changed it (a truncate by
	 * name made while a reader was open). Not what another open file
	 * changed since: that one's close or release saves it. */
	if (((h->changed && h->changed_at == node->clean_saves) || node->open_count == 1) &&
	    node->dirty && !node->discarded &&
	    (node->writer_count || node->writers_unknown || !node->verified) &&
	    file_save(c, node) < 0)
		log_error("%s: content written but never closed could not be saved%s%s",
			  node->name, c->why ? ": " : "", c->why ? c->why : "");
	/* Its open file is done: what it saved last is final. */
	if (node->tentative && node->tentative_by == fh)
		file_settle(node);
	node->open_count--;
	if (node->open_count == 0)
		file_closed(fs, node);
	node_release(fs, node);
	pthread_mutex_unlock(&fs->lock);
	blob_close(h->reader);
	free(h);
}

static void file_drop(struct node *node, uint64_t fh)
{
	struct open_file *h = (struct open_file *)(uintptr_t)fh;

	(void)node;
	blob_close(h->reader);
	free(h);
}

/* fsync saves the file (as a close by its writer would) and waits until the
 * blob is on stable storage. */
static int file_fsync(struct fs_call *c, struct node *node)
{
	int ret;

	pthread_mutex_lock(&c->fs->lock);
	ret = node->discarded ? 0 : file_save(c, node);
	pthread_mutex_unlock(&c->fs->lock);
	if (ret == 0 && node->saved)
		ret = store_sync(node->store);
	return ret;
}

static int file_getxattr(struct fs_call *c, struct node *node, const char *name, char *buf,
			 size_t size, size_t *len)
{
	char hex[HASH_HEX_SIZE + 1];
	bool saved;

	pthread_mutex_lock(&c->fs->lock);
	saved = node->saved && !node->dirty;
	hash_to_hex(node->hash, hex);
	pthread_mutex_unlock(&c->fs->lock);
	if (strcmp(name, XATTR_SHA256) || !saved)
		return -ENODATA;
	*len = HASH_HEX_SIZE;
	memcpy(buf, hex, size < HASH_HEX_SIZE ? size : HASH_HEX_SIZE);
	return 0;
}

const struct node_ops file_ops = {
	.attr = file_attr,
	.entry_timeout = file_timeout,
	.attr_timeout = file_timeout,
	.held = file_held,
	.setattr = file_setattr,
	.fsync = file_fsync,
	.open = file_open,
	.read = file_read,
	.write = file_write,
	.fallocate = file_fallocate,
	.flush = file_flush,
	.release = file_release,
	.drop = file_drop,
	.getxattr = file_getxattr,
};
