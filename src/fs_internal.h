/*
 * fs_internal.h - what the files of the FUSE front end share: the node of an
 * inode (struct node), the front end's state (struct fs), and the table of
 * operations each kind of node has (struct node_ops). Not for the storage
 * side: the front end reaches the data only through store.h.
 *
 * The namespace, one kind of node each (one file each):
 *
 *   /                 root_ops           fs_root.c      stores
 *   /S/               store_ops          fs_store.c     a store's blobs + incoming
 *   /S/<hex>          blob_ops           fs_blob.c      a blob, read-only
 *   /S/incoming/      incoming_dir_ops   fs_incoming.c  the drop box
 *   /S/incoming/NAME  incoming_file_ops  fs_incoming.c  a file being written
 *
 * The lowlevel callbacks (fs_dispatch.c, fs_readdir.c) find the node and call
 * its kind's operation; a kind without the operation gets the errno of the
 * README's namespace table.
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
#define INCOMING_ATTR_TIMEOUT 1.0
#define RENAME_RULE "only files being written in incoming/ can be renamed, within it"

struct node_ops;
struct dir_fill;

/*
 * Every inode the kernel knows is a struct node whose address is its FUSE
 * node id (the root's is FUSE_ROOT_ID). Nodes that can be rebuilt from the
 * store (stores, blobs) are freed when the kernel forgets them; an incoming
 * file's node owns its content and lives while it has a name or an open
 * handle. Fields are guarded by fs->lock unless said otherwise.
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

	/* a blob */
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint64_t size;

	/* an incoming file */
	struct blob_writer *writer; /* its content; NULL once nothing can save it */
	struct node *next_incoming, *prev_incoming; /* in the incoming dir, by ino */
	bool discarded;        /* unlinked (or its save failed) before it was saved */
	bool created_empty;    /* a flush created the empty blob (see incoming_flush) */
	uint64_t empty_saves;  /* fs->empty_saves right after that flush */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec atime, mtime, ctime;

	/* a store: its incoming directory, if the kernel knows it */
	struct node *incoming_dir;
	/* an incoming directory: its files, in ino order */
	struct node *incoming_head, *incoming_tail;
};

/* The front end's state: one per mounted session. */
struct fs {
	struct blobdb *db;
	bool sync; /* -o sync: a save is durable when close() returns */
	pthread_mutex_t lock; /* guards the node table and the node fields */
	struct node root;
	struct node *all_nodes;
	struct node **buckets;
	size_t bucket_count, node_count;
	uint64_t next_ino;
	uint64_t empty_saves; /* saves of the empty blob, by anyone (under lock) */
	struct timespec mount_time;
	uid_t uid;
	gid_t gid;
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
	/* The node is the only record of what it is: it lives while it has a
	 * name, even when the kernel has forgotten it. */
	bool held_by_name;
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
	int (*mkdir)(struct fs_call *c, struct node *dir, const char *name);
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
	int (*write)(struct fs_call *c, struct node *node, const void *buf, size_t size,
		     uint64_t off);
	/* A close() of a descriptor. NULL: nothing to do. */
	int (*flush)(struct fs_call *c, struct node *node);
	/* The last close of an open file (or an open whose reply failed). */
	void (*release)(struct fs_call *c, struct node *node, uint64_t fh);
};

extern const struct node_ops root_ops;
extern const struct node_ops store_ops;
extern const struct node_ops blob_ops;
extern const struct node_ops incoming_dir_ops;
extern const struct node_ops incoming_file_ops;

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

int fs_new(struct blobdb *db, bool sync, struct fs **out);
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
/* Appends an incoming file to its directory's list (creation order). Lock
 * held. */
void incoming_list_append(struct node *dir, struct node *node);

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
 * report without creating nodes; equal blob numbers mean equal content. */
#define INO_CLASS_COUNTER (UINT64_C(0) << 62)
#define INO_CLASS_STORE (UINT64_C(1) << 62)
#define INO_CLASS_INCOMING_DIR (UINT64_C(2) << 62)
#define INO_CLASS_BLOB (UINT64_C(3) << 62)
#define INO_MASK ((UINT64_C(1) << 62) - 1)

uint64_t store_ino(const char *name);
uint64_t blob_ino(const uint8_t hash[BLOBFS_HASH_SIZE]);
uint64_t incoming_dir_ino(const struct node *store);

/* ---- fs_dispatch.c: replies ---- */

/* Replies err and writes the one log line for it. */
void reply_error(fuse_req_t req, int err, const char *op, const struct node *node,
		 const char *name, const char *why);
extern const struct fuse_lowlevel_ops fs_lowlevel_ops;

/* ---- fs_readdir.c ---- */

void readdir_root(struct fs *fs, struct node *dir, struct dir_fill *f, off_t off);
void readdir_store(struct fs *fs, struct node *dir, struct dir_fill *f, off_t off);
void readdir_incoming(struct fs *fs, struct node *dir, struct dir_fill *f, off_t off);
void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		struct fuse_file_info *fi);
void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

#endif
