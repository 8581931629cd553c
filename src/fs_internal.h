/*
 * fs_internal.h - what the files of the FUSE front end share: the node of an
 * inode (struct node), the front end's state (struct fs), and the table of
 * operations each kind of node has (struct node_ops). Not for the storage
 * side: the front end reaches the data only through store.h.
 *
 * The namespace, one kind of node each:
 *
 *   /                 root_ops           fs_root.c      stores
 *   /S/               store_ops          fs_store.c     a store's blobs + incoming
 *   /S/<hex>          blob_ops           fs_blob.c      a blob, read-only
 *   /S/<hex>          file_ops           fs_file.c      a verified write (not yet saved)
 *   /S/incoming/...   incoming_dir_ops   fs_incoming.c  incoming/ and directories in it
 *   /S/incoming/.../NAME  file_ops       fs_file.c      a file being written, or a
 *                                                       receipt of what it saved
 *
 * The lowlevel callbacks (fs_dispatch.c, fs_readdir.c, fs_xattr.c) find the
 * node and call its kind's operation; a kind without the operation gets the
 * errno of the README's namespace table. Names in incoming trees are bounded
 * and expire (fs_expiry.c).
 */
#ifndef BLOBFS_FS_INTERNAL_H
#define BLOBFS_FS_INTERNAL_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "store.h"

#define INCOMING_NAME "incoming"
#define DIR_TIMEOUT 1.0
#define BLOB_TIMEOUT 3600.0
#define INCOMING_TIMEOUT 1.0
#define RENAME_RULE "only names in incoming/ can be renamed, within the store's incoming tree"
/* The largest write the kernel sends, and the st_blksize files show. */
#define FS_IO_SIZE (1u << 20)

#define XATTR_SHA256 "user.blobfs.sha256"
#define XATTR_STAT "user.blobfs.stat"
#define WRITER_TIDS 8

struct node_ops;
struct dir_fill;

/*
 * Every inode the kernel knows is a struct node whose address is its FUSE
 * node id (the root's is FUSE_ROOT_ID). Nodes that can be rebuilt from the
 * store (stores, blobs) are freed when the kernel forgets them; a name in an
 * incoming tree is the only record of itself and lives while it has a name
 * (until rm, expiry or unmount) or an open handle. Fields are guarded by
 * fs->lock unless said otherwise.
 */
struct node {
	const struct node_ops *ops; /* its kind */
	uint64_t nlookup;      /* references held by the kernel */
	unsigned open_count;   /* open handles that refer to the node */
	unsigned child_count;  /* nodes whose parent this is */
	bool attached;         /* reachable by (parent, name) in the node table */
	struct node *parent;   /* NULL for the root */
	char *name;
	struct node *next_in_bucket;
	struct node *all_prev, *all_next; /* every live node, for the unmount */
	uint64_t ino;          /* st_ino */
	struct store *store;   /* counted reference; NULL for the root */

	/* A blob, a receipt, a verified write: the blob (a verified write's
	 * expected hash; a file's last save when `saved`), and its length. */
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint64_t size;
	struct timespec saved_at; /* a blob: its first save */

	/* Attributes kept on the node (incoming names, verified writes). */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec atime, mtime, ctime;

	/* A file (file_ops): see fs_file.c for the rules. */
	struct blob_writer *writer; /* the version being written; NULL when the
				     * content is the blob `hash` (or empty) */
	bool verified;   /* /S/<hex>: the content must hash to the name */
	bool saved;      /* `hash` is the blob of its last save */
	bool dirty;      /* the writer holds content not saved yet */
	bool tentative;  /* its last save created `hash` and may take it back */
	uint64_t tentative_by; /* the open file (fh) whose close made that save */
	bool saving;     /* a save is running (fs->saved wakes waiters) */
	bool discarded;  /* unlinked, or its save failed: never saved again */
	bool writers_unknown;    /* a write came from a process not identified */
	unsigned writer_count;
	pid_t writer_tids[WRITER_TIDS]; /* threads that wrote since the save */
	uint64_t changes;        /* writes and truncates so far */
	uint64_t clean_saves;    /* saves that left nothing unsaved */
	unsigned writes_landing; /* writes counted whose bytes are not in yet */

	/* A name in an incoming tree: its place in its directory's list (in
	 * inode number order, for readdir offsets), and in the idle list of
	 * names that may expire (fs_expiry.c). */
	struct node *next_incoming, *prev_incoming;
	struct node *idle_prev, *idle_next;
	bool idle;
	int64_t expires; /* CLOCK_MONOTONIC milliseconds */

	/* A blob: its place on the list of blob nodes the kernel may be asked
	 * to forget (fs_cache.c). */
	struct node *cache_prev, *cache_next;
	bool cached;       /* on that list */

	/* a store: its incoming directory, if the kernel knows it */
	struct node *incoming_dir;
	/* a directory in an incoming tree: its names, in ino order */
	struct node *incoming_head, *incoming_tail;
};

/* The front end's state: one per mounted session. */
struct fs {
	struct blobdb *db;
	struct fuse_session *se; /* for notifications to the kernel */
	bool sync; /* -o sync: a save is durable when close() returns */
	unsigned receipt_ttl;  /* seconds an idle name in incoming/ lives */
	size_t receipt_max;    /* the most names in all incoming trees */
	pthread_mutex_t lock; /* guards the node table and the node fields */
	pthread_cond_t saved; /* a node's save ended */
	struct node root;
	struct node *all_nodes;
	struct node **buckets;
	size_t bucket_count, node_count;
	uint64_t next_ino;
	size_t incoming_names;   /* names in incoming trees (not incoming/) */
	struct node *idle_head, *idle_tail; /* by expiry time */
	size_t node_max;     /* blob nodes before the kernel is asked to forget */
	size_t blob_nodes;   /* blob nodes alive */
	int64_t last_prune_ms; /* the last store pruned (fs_cache.c) */
	struct node *cache_head, *cache_tail; /* blob nodes, last looked up last */
	pthread_mutex_t handles_lock; /* guards the handle counts (fs_handles.c) */
	size_t handle_max, handles;
	struct handle_user *handle_users; /* open handles by user */
	struct fs_handle *handle_list;    /* every attached handle */
	size_t handle_user_count, handle_user_capacity;
	struct timespec mount_time;
	uid_t uid;
	gid_t gid;
	struct fs_notifier *notifier; /* fs_notify.c */
};

/* An open file: fi->fh of file_ops nodes. */
struct open_file {
	struct blob_reader *reader; /* the blob, while the content is a blob */
	bool writable;
	bool changed;          /* it changed the content (write, truncate)... */
	uint64_t changed_at;   /* ...last when node->clean_saves was this */
};

/*
 * A request as a kind's operation sees it. An operation returns 0 or a
 * negative errno; when it fails it may say why in `why`, and the dispatcher
 * writes the one log line of the error and replies.
 */
struct fs_call {
	struct fs *fs;
	const char *op;  /* the operation the log line names */
	const char *why; /* why it failed, when that helps whoever reads the log */
	uid_t uid;       /* the caller */
	gid_t gid;
	pid_t pid;       /* the calling thread (0: not in our pid namespace) */
	fuse_req_t req;  /* for the caller's supplementary groups */
	uint64_t fh;     /* the open file it came through (0: none) */
};

/*
 * The operations that differ by kind of node. Dispatchers call them without
 * fs->lock unless a field says "lock held". A NULL operation means the kind
 * has no such thing; the dispatcher then replies the README's errno.
 */
struct node_ops {
	/* ---- every kind ---- */

	/* Fills the kind's part of the attributes (mode, links, size...) over
	 * the common ones node_attr sets. Lock held. */
	void (*attr)(struct fs *fs, const struct node *node, struct stat *st);
	/* How long the kernel may trust the node's name, and its attributes. */
	double (*entry_timeout)(const struct node *node);
	double (*attr_timeout)(const struct node *node);
	/* Whether the node is the only record of what it is, so that it lives
	 * while it has a name even when the kernel has forgotten it. Lock
	 * held. NULL: no. */
	bool (*held)(const struct node *node);
	/* chmod, chown, utimes, truncate. Lock held. NULL: EPERM. */
	int (*setattr)(struct fs_call *c, struct node *node, const struct stat *attr, int to_set);
	/* fsync (files) and fsyncdir (directories): makes what the node holds
	 * durable. NULL: nothing to do. */
	int (*fsync)(struct fs_call *c, struct node *node);

	/* ---- directories ---- */

	/* What the directory holds: the reason creating anything else in it is
	 * refused (EPERM). */
	const char *holds;
	/* How long the kernel may cache that a name is absent. */
	double miss_timeout;
	/* Finds or makes the child node; -ENOENT when there is none. Lock held.
	 * NULL: ENOTDIR. */
	int (*lookup)(struct fs_call *c, struct node *dir, const char *name, struct node **out);
	/* Creates the directory name; the dispatcher then looks it up to reply.
	 * NULL: EPERM. */
	int (*mkdir)(struct fs_call *c, struct node *dir, const char *name, mode_t mode);
	/* NULL: ENOENT. */
	int (*rmdir)(struct fs_call *c, struct node *dir, const char *name);
	/* NULL: ENOENT. */
	int (*unlink)(struct fs_call *c, struct node *dir, const char *name);
	/* Creates (or, for an open without O_EXCL, finds) the file name. With
	 * fi (create) it is also opened, as the open operation would; without
	 * (mknod) an existing name is EEXIST. Lock held. NULL: EPERM. */
	int (*create)(struct fs_call *c, struct node *dir, const char *name, mode_t mode,
		      struct fuse_file_info *fi, struct node **out);
	/* NULL: EPERM. */
	int (*rename)(struct fs_call *c, struct node *dir, const char *name, struct node *newdir,
		      const char *newname, unsigned int flags);
	/* Makes name in dir another name of node (a new receipt of its blob).
	 * Lock held. NULL: EPERM. */
	int (*link)(struct fs_call *c, struct node *node, struct node *dir, const char *name,
		    struct node **out);
	/* Lists the directory from offset off (fs_readdir.c). NULL: ENOTDIR
	 * at opendir. */
	void (*readdir)(struct fs *fs, struct node *dir, struct dir_fill *f, off_t off);

	/* ---- files ---- */

	/* Sets fi->fh (and the caching flags). NULL: EISDIR. */
	int (*open)(struct fs_call *c, struct node *node, struct fuse_file_info *fi);
	/* NULL: EISDIR. */
	int (*read)(struct fs_call *c, struct node *node, uint64_t fh, void *buf, size_t size,
		    uint64_t off, size_t *got);
	/* NULL: EACCES. */
	int (*write)(struct fs_call *c, struct node *node, uint64_t fh, const void *buf,
		     size_t size, uint64_t off);
	/* NULL: EOPNOTSUPP. */
	int (*fallocate)(struct fs_call *c, struct node *node, int mode, uint64_t off,
			 uint64_t len);
	/* A close() of a descriptor. NULL: nothing to do. */
	int (*flush)(struct fs_call *c, struct node *node, uint64_t fh);
	/* The last close of an open file (or an open whose reply failed). */
	void (*release)(struct fs_call *c, struct node *node, uint64_t fh);
	/* Frees a handle the kernel never released (the mount went away with
	 * it open): nothing saved, nothing else changed. NULL: nothing held. */
	void (*drop)(struct node *node, uint64_t fh);

	/* ---- extended attributes (fs_xattr.c) ---- */

	/* The value of user.blobfs.NAME into buf (up to size bytes; the full
	 * length in *len); -ENODATA when the node has none. NULL: none. */
	int (*getxattr)(struct fs_call *c, struct node *node, const char *name, char *buf,
			size_t size, size_t *len);
};

extern const struct node_ops root_ops;
extern const struct node_ops store_ops;
extern const struct node_ops blob_ops;
extern const struct node_ops incoming_dir_ops;
extern const struct node_ops file_ops;

static inline struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static inline struct node *node_of(struct fs *fs, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &fs->root : (struct node *)(uintptr_t)ino;
}

static inline fuse_ino_t ino_of(struct fs *fs, struct node *node)
{
	return node == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)node;
}

/* ---- fs_node.c: the node table, node lifetime, inode numbers ---- */

struct fs_options;
int fs_new(struct blobdb *db, const struct fs_options *opts, struct fs **out);
/* Frees every node left (at unmount the kernel drops its references without
 * forgetting each node; files still being written are discarded). */
void fs_free(struct fs *fs);

struct node *table_find(struct fs *fs, const struct node *parent, const char *name);
/* Finds or makes the attached child (parent, name) of the given kind, with
 * inode number ino (0: a fresh one). A new node takes its store reference
 * from *store (which is then NULL). Lock held. */
struct node *node_get(struct fs *fs, struct node *parent, const char *name,
		      const struct node_ops *ops, uint64_t ino, struct store **store);
/* Gives an attached node the name `name` (allocated; now the node's). Lock
 * held. */
void node_set_name(struct fs *fs, struct node *node, char *name);
/* Takes a node out of the namespace (its name is gone); it lives on while
 * the kernel or a handle still refers to it. Lock held. */
void node_detach(struct fs *fs, struct node *node);
/* Frees the node when nothing refers to it any more, then its parent if
 * that was its last reference. Lock held. */
void node_release(struct fs *fs, struct node *node);
/* The kernel dropped nlookup references. Lock held. */
void node_forget(struct fs *fs, fuse_ino_t ino, uint64_t nlookup);
/* Moves an attached node to (dir, name) (name allocated; now the node's).
 * Lock held. */
void node_move(struct fs *fs, struct node *node, struct node *dir, char *name);
/* Whether node is a directory of an incoming tree (incoming/ included), and
 * incoming/ itself. */
bool node_is_incoming_dir(const struct node *node);
bool node_is_incoming_top(const struct node *node);

/* The attributes the kernel sees. Lock held. */
void node_attr(struct fs *fs, const struct node *node, struct stat *st);
/* The timeouts of directories. */
double dir_timeout(const struct node *node);
/* fsync of a node inside a store: the store's saves and deletes. */
int node_store_sync(struct fs_call *c, struct node *node);
/* "/S/incoming/NAME", for log lines. */
void node_path(const struct node *node, const char *name, char *out, size_t size);

/* Inode numbers: a class in the top two bits so the classes never collide.
 * Blobs and stores get numbers derived from their names, which readdir can
 * report without creating nodes; in one store, equal blob numbers mean
 * equal content. */
#define INO_CLASS_COUNTER (UINT64_C(0) << 62)
#define INO_CLASS_STORE (UINT64_C(1) << 62)
#define INO_CLASS_INCOMING_DIR (UINT64_C(2) << 62)
#define INO_CLASS_BLOB (UINT64_C(3) << 62)
#define INO_MASK ((UINT64_C(1) << 62) - 1)

uint64_t store_ino(const char *name);
uint64_t blob_ino(const struct node *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
uint64_t incoming_dir_ino(const struct node *store);

/* ---- fs_owners.c: stores' owners and modes as the front end shows them ---- */

/* The store's owner, group and mode (a destroyed store: mode 0, owned by
 * the mount's user). */
void store_attr_of(struct fs *fs, struct store *store, struct store_attr *out);
/* 0 when the caller of c may access the store as mask says (store.h's
 * rules; the supplementary groups are read only when they decide), else
 * -EACCES (c->why says so). */
int fs_store_access(struct fs_call *c, struct store *store, int mask);
/* chmod, chown, chgrp of the store of node (a store, or its incoming/)
 * on behalf of the caller; other changes in to_set are not looked at. Lock
 * held (dropped while the store works). */
int fs_store_setattr(struct fs_call *c, struct node *node, const struct stat *attr,
		     int to_set);
#define SET_ATTR_OWNERSHIP (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)
#define SET_ATTR_TIMES (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | \
			FUSE_SET_ATTR_MTIME_NOW)

/* ---- fs_expiry.c: the bound and the lifetime of names in incoming trees ---- */

/* Room for one more name: expires what is due and, at receipt_max, the
 * longest idle name; -ENOSPC when nothing can go. Lock held. */
int incoming_reserve(struct fs *fs);
/* CLOCK_MONOTONIC in milliseconds (expiry, fs_cache.c's prune interval). */
int64_t now_ms(void);
/* Names that are due expire. Lock held. */
void incoming_expire(struct fs *fs);
/* The name may expire receipt_ttl from now (a closed file, an empty
 * directory) / may not (open, written, or holding names). Lock held. */
void idle_add(struct fs *fs, struct node *node);
void idle_remove(struct fs *fs, struct node *node);

/* ---- fs_cache.c: the bound on blob nodes ---- */

/* Room for one more blob node: from node_max on, asks the kernel to forget
 * the least recently looked-up blob names; -ENFILE (c->why says so) when
 * the kernel holds four times node_max. Lock held. */
int cache_reserve(struct fs_call *c, struct node *store);
/* A lookup returned the blob node / the node goes. Lock held. */
void cache_touch(struct fs *fs, struct node *node);
void cache_drop(struct fs *fs, struct node *node);
/* A blob node went (after cache_drop and the count). Lock held. */
void cache_forgotten(struct fs *fs);

/* ---- fs_handles.c: the bound on open handles ---- */

struct fs_handle;
/* Counts one more handle for the caller of c: -ENFILE at handle_max,
 * -EMFILE past the caller's share (c->why says which), -ENOMEM. */
int handle_reserve(struct fs_call *c, struct fs_handle **out);
/* The kind's handle in fi->fh (of node, freed by drop if the kernel never
 * releases it) becomes h's; fi->fh is now h (what the kernel gets). */
void handle_attach(struct fs *fs, struct fs_handle *h, struct fuse_file_info *fi,
		   struct node *node, void (*drop)(struct node *node, uint64_t fh));
/* Frees the handles the kernel never released (fs_free). */
void handle_drop_all(struct fs *fs);
/* Uncounts and frees a reserved handle (NULL: nothing). */
void handle_cancel(struct fs *fs, struct fs_handle *h);
/* The kind's handle of an attached fi (NULL: 0). */
uint64_t handle_fh(const struct fuse_file_info *fi);
/* The last use of an attached fi: uncounts it, returns the kind's handle. */
uint64_t handle_close(struct fs *fs, struct fuse_file_info *fi);

/* ---- fs_incoming.c ---- */

/* A directory of an incoming tree (ino 0: a fresh number). Lock held. */
struct node *incoming_dir_new(struct fs *fs, struct node *parent, const char *name,
			      uint64_t ino, mode_t mode, uid_t uid, gid_t gid);

/* ---- fs_notify.c: telling the kernel, from a thread of its own ---- */

int fs_notify_start(struct fs *fs);
void fs_notify_stop(struct fs *fs);
/* The kernel forgets the name in directory parent (queued; dropped when too
 * many are queued: it is only a cache). Lock held or not. */
void fs_notify_forget_name(struct fs *fs, fuse_ino_t parent, const char *name);
/* The same, but only while the queue is less than half full (the rest is
 * for the invalidations that must not wait); false otherwise. */
bool fs_notify_try_forget_name(struct fs *fs, fuse_ino_t parent, const char *name);
/* The same, before anything queued (the bound on blob nodes: fs_cache.c). */
void fs_notify_forget_name_first(struct fs *fs, fuse_ino_t parent, const char *name);
/* The kernel forgets the attributes of inode ino (queued the same way). */
void fs_notify_inval_attr(struct fs *fs, fuse_ino_t ino);
/* The kernel's cached pages of ino go (a blob whose content failed its
 * check: what was read of it before must not be served again). */
void fs_notify_inval_data(struct fs *fs, fuse_ino_t ino);

/* ---- fs_file.c ---- */

/* A new file in dir (incoming tree, or a verified write in a store): empty,
 * not saved; with writer, a version is started (create). Lock held. */
int file_new(struct fs_call *c, struct node *dir, const char *name, mode_t mode,
	     bool verified, bool with_writer, struct node **out);
/* Opens an existing file for a create (fi). Lock held. */
int file_open_locked(struct fs_call *c, struct node *node, struct fuse_file_info *fi);
/* Its last save is final (nothing may take it back). Lock held. */
void file_settle(struct node *node);
/* The file's content is gone from its name (unlink, replaced by a rename,
 * expired): it is never saved again. Lock held. */
void file_discard(struct fs *fs, struct node *node);
void set_time(struct timespec *t, const struct timespec *value, bool now);
/* Applies mode, owner and times of a setattr to a node that keeps them. */
void node_setattr_common(struct node *node, const struct stat *attr, int to_set);

/* ---- fs_dispatch.c: replies ---- */

/* The request as the kinds' operations see it. */
struct fs_call call_of(fuse_req_t req, const char *op);
/* Replies err and writes the one log line for it. */
void reply_error(fuse_req_t req, int err, const char *op, const struct node *node,
		 const char *name, const char *why);
extern const struct fuse_lowlevel_ops fs_lowlevel_ops;

/* ---- fs_xattr.c ---- */

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size);
void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size);
void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags);
void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name);

/* ---- fs_readdir.c ---- */

void readdir_root(struct fs *fs, struct node *dir, struct dir_fill *f, off_t off);
void readdir_store(struct fs *fs, struct node *dir, struct dir_fill *f, off_t off);
void readdir_incoming(struct fs *fs, struct node *dir, struct dir_fill *f, off_t off);
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
/* The drop of a directory handle (struct node_ops.drop's form). */
void readdir_drop(struct node *node, uint64_t fh);

#endif
