/*
 * fs.c - the FUSE front end (libfuse low-level API): inodes, names and
 * replies. It maps the namespace of the mount onto the store API of store.h
 * and knows nothing of pack bytes.
 *
 *   /                 stores                  (mkdir, rmdir, readdir)
 *   /S/               a store's blobs + incoming
 *   /S/<hex>          a blob, read-only
 *   /S/incoming/NAME  a file being written; flush (close) saves it
 *
 * Nodes: every inode the kernel knows is a struct node whose address is its
 * FUSE node id. Nodes that can be rebuilt from the store (stores, blobs) are
 * freed when the kernel forgets them; an incoming file's node owns its
 * content and lives while it has a name or an open handle.
 */
#include "fs.h"

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "store.h"

#define INCOMING_NAME "incoming"
#define MAX_WRITE (1u << 20)
#define DIR_TIMEOUT 1.0
#define BLOB_TIMEOUT 3600.0
#define INCOMING_ATTR_TIMEOUT 1.0

enum node_kind { NODE_ROOT, NODE_STORE, NODE_INCOMING_DIR, NODE_BLOB, NODE_INCOMING };

struct node {
	enum node_kind kind;
	uint64_t nlookup;      /* references held by the kernel */
	unsigned open_count;   /* open handles */
	unsigned child_count;  /* nodes whose parent this is */
	bool attached;         /* reachable by (parent, name) in the node table */
	struct node *parent;
	char *name;
	struct node *next_in_bucket;
	struct node *all_prev, *all_next; /* every live node, for the unmount */
	uint64_t ino;          /* st_ino */
	struct store *store;   /* counted reference; NULL for the root */

	/* NODE_BLOB */
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint64_t size;

	/* NODE_INCOMING */
	struct blob_writer *writer;
	struct node *next_incoming, *prev_incoming; /* in the incoming dir, by ino */
	bool discarded;        /* unlinked before it was saved */
	bool created_empty;    /* a flush created the empty blob (see fs_flush) */
	uint64_t empty_saves;  /* fs->empty_saves right after that flush */
	mode_t mode;
	uid_t uid;
	gid_t gid;
	struct timespec atime, mtime, ctime;

	/* NODE_STORE: its incoming directory, if the kernel knows it */
	struct node *incoming_dir;
	/* NODE_INCOMING_DIR: its files, in ino order */
	struct node *incoming_head, *incoming_tail;
};

struct fs {
	struct blobdb *db;
	bool sync; /* -o sync: a save is durable when close() returns */
	struct fuse_session *session;
	pthread_mutex_t lock; /* guards the node table and the node fields above */
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

struct dir_handle {
	off_t next_off;         /* the offset the next readdir call continues from */
	bool have_cursor;
	char store_cursor[256]; /* the last store name returned */
	uint8_t blob_cursor[BLOBFS_HASH_SIZE];
};

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static struct node *node_of(struct fs *fs, fuse_ino_t ino)
{
	return ino == FUSE_ROOT_ID ? &fs->root : (struct node *)(uintptr_t)ino;
}

static fuse_ino_t ino_of(struct fs *fs, struct node *node)
{
	return node == &fs->root ? FUSE_ROOT_ID : (fuse_ino_t)(uintptr_t)node;
}

/* ---- logging of errors: one line, where the reply is made ---- */

static void node_path(const struct node *node, const char *name, char *out, size_t size)
{
	char parent[600];

	if (node->kind == NODE_ROOT) {
		snprintf(out, size, "/%s", name ? name : "");
		return;
	}
	node_path(node->parent, NULL, parent, sizeof(parent));
	snprintf(out, size, "%.300s%s%.255s%s%.255s", parent, strcmp(parent, "/") ? "/" : "", node->name,
		 name ? "/" : "", name ? name : "");
}

static void reply_error(fuse_req_t req, int err, const char *op, const struct node *node,
			const char *name, const char *why)
{
	char path[600];

	node_path(node, name, path, sizeof(path));
	log_msg(err == ENOENT || err == ENODATA ? LOG_LEVEL_DEBUG :
		err == EIO || err == ENOSPC ? LOG_LEVEL_ERROR : LOG_LEVEL_WARNING,
		"%s %s: %s%s%s", op, path, strerror(err), why ? ": " : "", why ? why : "");
	fuse_reply_err(req, err);
}

/* ---- the node table: (parent, name) -> node ---- */

static size_t name_bucket(struct fs *fs, const struct node *parent, const char *name)
{
	uint64_t h = 1469598103934665603u ^ (uintptr_t)parent;

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 1099511628211u;
	return (size_t)(h % fs->bucket_count);
}

static struct node *table_find(struct fs *fs, const struct node *parent, const char *name)
{
	struct node *n = fs->buckets[name_bucket(fs, parent, name)];

	while (n && (n->parent != parent || strcmp(n->name, name)))
		n = n->next_in_bucket;
	return n;
}

static void table_insert(struct fs *fs, struct node *node)
{
	if (fs->node_count >= fs->bucket_count) {
		size_t count = fs->bucket_count * 2;
		struct node **buckets = calloc(count, sizeof(*buckets));
		if (buckets) {
			struct node **old = fs->buckets;
			size_t old_count = fs->bucket_count;
			fs->buckets = buckets;
			fs->bucket_count = count;
			for (size_t i = 0; i < old_count; i++) {
				for (struct node *n = old[i], *next; n; n = next) {
					size_t b = name_bucket(fs, n->parent, n->name);
					next = n->next_in_bucket;
					n->next_in_bucket = buckets[b];
					buckets[b] = n;
				}
			}
			free(old);
		}
	}
	size_t b = name_bucket(fs, node->parent, node->name);
	node->next_in_bucket = fs->buckets[b];
	fs->buckets[b] = node;
	node->attached = true;
	fs->node_count++;
}

static void table_remove(struct fs *fs, struct node *node)
{
	struct node **p = &fs->buckets[name_bucket(fs, node->parent, node->name)];

	if (!node->attached)
		return;
	while (*p && *p != node)
		p = &(*p)->next_in_bucket;
	if (*p)
		*p = node->next_in_bucket;
	node->attached = false;
	fs->node_count--;
}

static void incoming_list_remove(struct node *node)
{
	struct node *dir = node->parent;

	if (node->prev_incoming)
		node->prev_incoming->next_incoming = node->next_incoming;
	else if (dir->incoming_head == node)
		dir->incoming_head = node->next_incoming;
	else
		return; /* not on the list */
	if (node->next_incoming)
		node->next_incoming->prev_incoming = node->prev_incoming;
	else
		dir->incoming_tail = node->prev_incoming;
	node->next_incoming = node->prev_incoming = NULL;
}

/* Takes a node out of the namespace (its name is gone); it lives on while
 * the kernel or a handle still refers to it. */
static void node_detach(struct fs *fs, struct node *node)
{
	table_remove(fs, node);
	if (node->kind == NODE_INCOMING)
		incoming_list_remove(node);
	if (node->kind == NODE_INCOMING_DIR && node->parent->incoming_dir == node)
		node->parent->incoming_dir = NULL;
}

/* Frees the node when nothing refers to it any more, then its parent if that
 * was its last reference. Called with fs->lock held. */
static void node_release(struct fs *fs, struct node *node)
{
	/* An incoming file with no name and no open handle can never be
	 * written or saved again: its content goes now, not when the kernel
	 * forgets the inode, so descriptors do not pile up. */
	if (node->kind == NODE_INCOMING && !node->attached && node->open_count == 0 &&
	    node->writer) {
		blob_writer_free(node->writer);
		node->writer = NULL;
	}
	while (node && node != &fs->root && node->nlookup == 0 && node->open_count == 0 &&
	       node->child_count == 0 && !(node->kind == NODE_INCOMING && node->attached)) {
		struct node *parent = node->parent;
		node_detach(fs, node);
		if (node->all_prev)
			node->all_prev->all_next = node->all_next;
		else
			fs->all_nodes = node->all_next;
		if (node->all_next)
			node->all_next->all_prev = node->all_prev;
		blob_writer_free(node->writer);
		store_close(node->store);
		free(node->name);
		free(node);
		parent->child_count--;
		node = parent;
	}
}

static uint64_t fnv64(const void *buf, size_t len)
{
	uint64_t h = 1469598103934665603u;
	const unsigned char *p = buf;

	for (size_t i = 0; i < len; i++)
		h = (h ^ p[i]) * 1099511628211u;
	return h;
}

/* Inode numbers: a class in the top two bits so the classes never collide.
 * Blobs and stores get numbers derived from their names, which readdir can
 * report without creating nodes; equal blob numbers mean equal content. */
#define INO_CLASS_COUNTER (UINT64_C(0) << 62)
#define INO_CLASS_STORE (UINT64_C(1) << 62)
#define INO_CLASS_INCOMING_DIR (UINT64_C(2) << 62)
#define INO_CLASS_BLOB (UINT64_C(3) << 62)
#define INO_MASK ((UINT64_C(1) << 62) - 1)

static uint64_t store_ino(const char *name)
{
	return INO_CLASS_STORE | (fnv64(name, strlen(name)) & INO_MASK);
}

static uint64_t blob_ino(const uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint64_t prefix = 0;

	for (int i = 0; i < 8; i++)
		prefix = prefix << 8 | hash[i];
	return INO_CLASS_BLOB | (prefix & INO_MASK);
}

/* Finds or makes the attached child (parent, name). New nodes come with
 * their store reference taken from *store (which is then consumed). */
static struct node *node_get(struct fs *fs, struct node *parent, const char *name,
			     enum node_kind kind, struct store **store)
{
	struct node *node = table_find(fs, parent, name);

	if (node)
		return node;
	node = calloc(1, sizeof(*node));
	if (!node)
		return NULL;
	node->name = strdup(name);
	if (!node->name) {
		free(node);
		return NULL;
	}
	node->kind = kind;
	node->parent = parent;
	node->all_next = fs->all_nodes;
	if (fs->all_nodes)
		fs->all_nodes->all_prev = node;
	fs->all_nodes = node;
	node->store = *store;
	*store = NULL;
	parent->child_count++;
	table_insert(fs, node);
	switch (kind) {
	case NODE_STORE:
		node->ino = store_ino(name);
		break;
	case NODE_INCOMING_DIR:
		node->ino = INO_CLASS_INCOMING_DIR | (parent->ino & INO_MASK);
		parent->incoming_dir = node;
		break;
	default:
		node->ino = INO_CLASS_COUNTER | (fs->next_ino++ & INO_MASK);
		break;
	}
	return node;
}

/* ---- attributes ---- */

static void node_attr(struct fs *fs, struct node *node, struct stat *st)
{
	memset(st, 0, sizeof(*st));
	st->st_ino = node == &fs->root ? FUSE_ROOT_ID : node->ino;
	st->st_uid = fs->uid;
	st->st_gid = fs->gid;
	st->st_atim = st->st_mtim = st->st_ctim = fs->mount_time;
	st->st_blksize = 1 << 16;
	switch (node->kind) {
	case NODE_ROOT:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2 + store_count(fs->db);
		break;
	case NODE_STORE:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 3;
		break;
	case NODE_INCOMING_DIR:
		st->st_mode = S_IFDIR | 0755;
		st->st_nlink = 2;
		break;
	case NODE_BLOB:
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)node->size;
		break;
	case NODE_INCOMING:
		st->st_mode = S_IFREG | (node->mode & 07777);
		st->st_nlink = node->attached ? 1 : 0;
		st->st_uid = node->uid;
		st->st_gid = node->gid;
		st->st_size = node->writer ? (off_t)blob_writer_size(node->writer) : 0;
		st->st_atim = node->atime;
		st->st_mtim = node->mtime;
		st->st_ctim = node->ctime;
		break;
	}
	st->st_blocks = (st->st_size + 511) / 512;
}

/* How long the kernel may trust a name. */
static double entry_timeout(const struct node *node)
{
	switch (node->kind) {
	case NODE_BLOB:
		/* Immutable; deletes go through the kernel. The empty blob is the
		 * exception: an early close's one may be taken back behind the
		 * kernel's back (see fs_write), so its name is not cached. */
		return node->size ? BLOB_TIMEOUT : 0;
	case NODE_INCOMING:
		return 0; /* the name goes away at flush, behind the kernel's back */
	default:
		return DIR_TIMEOUT;
	}
}

/* How long the kernel may trust attributes. An incoming file's size only
 * changes through writes and truncates the kernel makes itself. */
static double node_timeout(const struct node *node)
{
	return node->kind == NODE_INCOMING ? INCOMING_ATTR_TIMEOUT : entry_timeout(node);
}

/* Replies to a lookup-like request with node, taking a kernel reference.
 * Called with fs->lock held. */
static void reply_entry(fuse_req_t req, struct fs *fs, struct node *node)
{
	struct fuse_entry_param e;

	memset(&e, 0, sizeof(e));
	e.ino = ino_of(fs, node);
	e.entry_timeout = entry_timeout(node);
	e.attr_timeout = node_timeout(node);
	node_attr(fs, node, &e.attr);
	node->nlookup++;
	if (fuse_reply_entry(req, &e) != 0)
		node->nlookup--; /* the kernel did not get it (interrupted) */
}

/* ---- lookup ---- */

static int lookup_store(struct fs *fs, struct node *parent, const char *name,
			struct node **out)
{
	struct store *store = NULL;
	struct node *node;
	int ret;

	if (store_name_check(name, strlen(name)) < 0)
		return -ENOENT;
	ret = store_open(fs->db, name, &store);
	if (ret < 0)
		return ret;
	node = table_find(fs, parent, name);
	if (node && node->store != store) {
		node_detach(fs, node); /* a store of the same name was re-created */
		node = NULL;
	}
	node = node ? node : node_get(fs, parent, name, NODE_STORE, &store);
	store_close(store); /* unused when the node already held one */
	if (!node)
		return -ENOMEM;
	*out = node;
	return 0;
}

static int lookup_in_store(struct fs *fs, struct node *parent, const char *name,
			   struct node **out)
{
	uint8_t hash[BLOBFS_HASH_SIZE];
	struct store *store;
	struct node *node;
	uint64_t size;
	int ret;

	if (!strcmp(name, INCOMING_NAME)) {
		node = parent->incoming_dir;
		if (!node) {
			store = store_hold(parent->store);
			node = node_get(fs, parent, name, NODE_INCOMING_DIR, &store);
			store_close(store);
		}
		*out = node;
		return node ? 0 : -ENOMEM;
	}
	if (!hash_from_hex(name, strlen(name), hash))
		return -ENOENT;
	ret = blob_info(parent->store, hash, &size);
	if (ret < 0)
		return ret;
	node = table_find(fs, parent, name);
	if (!node) {
		store = store_hold(parent->store);
		node = node_get(fs, parent, name, NODE_BLOB, &store);
		store_close(store);
		if (!node)
			return -ENOMEM;
		memcpy(node->hash, hash, BLOBFS_HASH_SIZE);
		node->ino = blob_ino(hash);
	}
	node->size = size;
	*out = node;
	return 0;
}

static int lookup_child(struct fs *fs, struct node *parent, const char *name,
			struct node **out)
{
	switch (parent->kind) {
	case NODE_ROOT:
		return lookup_store(fs, parent, name, out);
	case NODE_STORE:
		return lookup_in_store(fs, parent, name, out);
	case NODE_INCOMING_DIR:
		*out = table_find(fs, parent, name);
		return *out ? 0 : -ENOENT;
	default:
		return -ENOTDIR;
	}
}

static void fs_lookup(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct node *parent, *node;
	int ret;

	pthread_mutex_lock(&fs->lock);
	parent = node_of(fs, parent_ino);
	ret = lookup_child(fs, parent, name, &node);
	if (ret == 0)
		reply_entry(req, fs, node);
	else if (ret == -ENOENT) {
		/* A blob name may appear at any moment (a save), so a miss in a
		 * store is not cached. A name in incoming/ only ever appears
		 * through a create the kernel itself makes, which replaces its
		 * cached miss: there, misses are cached, saving a round trip per
		 * file for tools that look before they create (cp). */
		struct fuse_entry_param e;
		memset(&e, 0, sizeof(e));
		if (parent->kind == NODE_INCOMING_DIR)
			e.entry_timeout = BLOB_TIMEOUT;
		fuse_reply_entry(req, &e);
	} else
		reply_error(req, -ret, "lookup", parent, name, NULL);
	pthread_mutex_unlock(&fs->lock);
}

static void forget_one(struct fs *fs, fuse_ino_t ino, uint64_t nlookup)
{
	struct node *node = node_of(fs, ino);

	if (node == &fs->root)
		return;
	node->nlookup = node->nlookup > nlookup ? node->nlookup - nlookup : 0;
	node_release(fs, node);
}

static void fs_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	forget_one(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
}

static void fs_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	struct fs *fs = fs_of(req);

	pthread_mutex_lock(&fs->lock);
	for (size_t i = 0; i < count; i++)
		forget_one(fs, forgets[i].ino, forgets[i].nlookup);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_none(req);
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
	fuse_reply_attr(req, &st, node_timeout(node));
}

static void set_time(struct timespec *t, const struct timespec *value, bool now)
{
	if (now)
		clock_gettime(CLOCK_REALTIME, t);
	else
		*t = *value;
}

static void fs_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *node = node_of(fs, ino);
	struct stat st;
	int ret = 0;

	(void)fi;
	if (node->kind == NODE_BLOB) {
		reply_error(req, to_set & FUSE_SET_ATTR_SIZE ? EACCES : EPERM, "setattr", node,
			    NULL, "blobs are immutable");
		return;
	}
	if (node->kind != NODE_INCOMING) {
		reply_error(req, EPERM, "setattr", node, NULL,
			    "directories of the mount have fixed attributes");
		return;
	}
	/* Under the lock: a last release elsewhere may free the writer. */
	pthread_mutex_lock(&fs->lock);
	if (!node->writer)
		ret = -ENOENT; /* saved or discarded, and closed: it has no content */
	else if (to_set & FUSE_SET_ATTR_SIZE)
		ret = blob_writer_truncate(node->writer, (uint64_t)attr->st_size);
	if (ret < 0) {
		pthread_mutex_unlock(&fs->lock);
		reply_error(req, -ret, "truncate", node, NULL, NULL);
		return;
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
	node_attr(fs, node, &st);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_attr(req, &st, 0);
}

/* ---- stores: mkdir and rmdir at the root ---- */

static void fs_mkdir(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);
	struct node *parent = node_of(fs, parent_ino), *node;
	int ret;

	(void)mode;
	if (parent->kind != NODE_ROOT) {
		reply_error(req, EPERM, "mkdir", parent, name,
			    parent->kind == NODE_STORE ? "a store holds only blobs and incoming"
						       : "incoming holds only files");
		return;
	}
	ret = store_create(fs->db, name);
	if (ret < 0) {
		reply_error(req, -ret, "mkdir", parent, name,
			    ret == -EINVAL ? "a store name is 1-255 bytes and may not start with '.'"
			    : ret == -EEXIST ? "the store exists" : NULL);
		return;
	}
	log_info("store %s created", name);
	pthread_mutex_lock(&fs->lock);
	ret = lookup_store(fs, parent, name, &node);
	if (ret == 0)
		reply_entry(req, fs, node);
	else
		reply_error(req, -ret, "mkdir", parent, name, NULL);
	pthread_mutex_unlock(&fs->lock);
}

static void fs_rmdir(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct node *parent = node_of(fs, parent_ino), *node;
	const char *why = NULL;
	int ret = 0;

	pthread_mutex_lock(&fs->lock);
	if (parent->kind == NODE_ROOT) {
		node = table_find(fs, parent, name);
		if (node && node->incoming_dir && node->incoming_dir->incoming_head) {
			ret = -ENOTEMPTY;
			why = "files are being written in its incoming";
		} else {
			/* Not under fs->lock: removing a big store's files takes a
			 * while. A file created in its incoming meanwhile cannot be
			 * saved (its close() says EIO). */
			pthread_mutex_unlock(&fs->lock);
			ret = store_destroy(fs->db, name, true);
			pthread_mutex_lock(&fs->lock);
			if (ret == -ENOTEMPTY)
				why = "the store has blobs (rm -r removes them)";
			/* The name may already be a new store's: only the
			 * destroyed one's node goes. */
			node = table_find(fs, parent, name);
			if (node && !store_destroyed(node->store))
				node = NULL;
		}
		if (ret == 0) {
			log_info("store %s destroyed", name);
			if (node)
				node_detach(fs, node);
		}
	} else if (parent->kind == NODE_STORE && !strcmp(name, INCOMING_NAME)) {
		/* incoming always exists; removing it when empty succeeds so that
		 * rm -r can remove a store, and it comes back at the next lookup. */
		node = parent->incoming_dir;
		if (node && node->incoming_head) {
			ret = -ENOTEMPTY;
			why = "files are being written in it";
		} else if (node) {
			node_detach(fs, node);
		}
	} else if (parent->kind == NODE_STORE) {
		uint8_t hash[BLOBFS_HASH_SIZE];
		ret = hash_from_hex(name, strlen(name), hash) && blob_info(parent->store, hash, NULL) == 0
			      ? -ENOTDIR : -ENOENT;
	} else {
		ret = parent->kind == NODE_INCOMING_DIR && table_find(fs, parent, name) ? -ENOTDIR
											: -ENOENT;
	}
	pthread_mutex_unlock(&fs->lock);
	if (ret < 0)
		reply_error(req, -ret, "rmdir", parent, name, why);
	else
		fuse_reply_err(req, 0);
}

/* ---- names in a store and in incoming ---- */

static void fs_unlink(fuse_req_t req, fuse_ino_t parent_ino, const char *name)
{
	struct fs *fs = fs_of(req);
	struct node *parent = node_of(fs, parent_ino), *node;
	uint8_t hash[BLOBFS_HASH_SIZE];
	int ret = -ENOENT;

	pthread_mutex_lock(&fs->lock);
	if (parent->kind == NODE_STORE && hash_from_hex(name, strlen(name), hash)) {
		ret = blob_delete(parent->store, hash);
		node = table_find(fs, parent, name);
		if (ret == 0 && node)
			node_detach(fs, node);
	} else if (parent->kind == NODE_INCOMING_DIR) {
		node = table_find(fs, parent, name);
		if (node) {
			/* The writer gave up on this file: it is not saved. */
			node->discarded = true;
			node_detach(fs, node);
			node_release(fs, node);
			ret = 0;
		}
	} else if (parent->kind == NODE_ROOT) {
		ret = -ENOENT;
	}
	pthread_mutex_unlock(&fs->lock);
	if (ret == 0 && fs->sync && parent->kind == NODE_STORE && store_sync(parent->store) < 0)
		ret = -EIO;
	if (ret < 0)
		reply_error(req, -ret, "unlink", parent, name, NULL);
	else
		fuse_reply_err(req, 0);
}

static int incoming_create(struct fs *fs, struct node *dir, const char *name, mode_t mode,
			   uid_t uid, gid_t gid, struct node **out)
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
	node = node_get(fs, dir, name, NODE_INCOMING, &store);
	if (!node)
		goto out;
	node->writer = writer;
	writer = NULL;
	node->mode = mode & 07777;
	node->uid = uid;
	node->gid = gid;
	clock_gettime(CLOCK_REALTIME, &node->mtime);
	node->atime = node->ctime = node->mtime;
	node->prev_incoming = dir->incoming_tail;
	if (dir->incoming_tail)
		dir->incoming_tail->next_incoming = node;
	else
		dir->incoming_head = node;
	dir->incoming_tail = node;
	*out = node;
	ret = 0;
out:
	blob_writer_free(writer);
	store_close(store);
	return ret;
}

static int check_create(struct node *parent, const char *name, const char **why)
{
	*why = parent->kind == NODE_ROOT    ? "only stores (directories) can be created here"
	       : parent->kind == NODE_STORE ? "blobs are saved through incoming/"
					    : "incoming holds only regular files";
	if (parent->kind != NODE_INCOMING_DIR)
		return -EPERM;
	if (strlen(name) > 255)
		return -ENAMETOOLONG;
	return 0;
}

static void fs_mknod(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		     dev_t rdev)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct node *parent = node_of(fs, parent_ino), *node;
	const char *why;
	int ret = check_create(parent, name, &why);

	(void)rdev;
	if (ret == 0 && !S_ISREG(mode))
		ret = -EPERM;
	pthread_mutex_lock(&fs->lock);
	if (ret == 0 && table_find(fs, parent, name))
		ret = -EEXIST, why = NULL;
	if (ret == 0)
		ret = incoming_create(fs, parent, name, mode, ctx->uid, ctx->gid, &node);
	if (ret == 0)
		reply_entry(req, fs, node);
	else
		reply_error(req, -ret, "mknod", parent, name, why);
	pthread_mutex_unlock(&fs->lock);
}

static void fs_symlink(fuse_req_t req, const char *link, fuse_ino_t parent_ino, const char *name)
{
	(void)link;
	reply_error(req, EPERM, "symlink", node_of(fs_of(req), parent_ino), name,
		    "blobfs holds no symbolic links");
}

static void fs_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t parent_ino, const char *name)
{
	(void)ino;
	reply_error(req, EPERM, "link", node_of(fs_of(req), parent_ino), name,
		    "blobfs holds no hard links");
}

static void fs_rename(fuse_req_t req, fuse_ino_t parent_ino, const char *name,
		      fuse_ino_t newparent_ino, const char *newname, unsigned int flags)
{
	struct fs *fs = fs_of(req);
	struct node *parent = node_of(fs, parent_ino), *newparent = node_of(fs, newparent_ino);
	struct node *node, *victim;
	char *copy;
	int ret = 0;

	if (parent->kind != NODE_INCOMING_DIR || newparent != parent || (flags & RENAME_EXCHANGE)) {
		reply_error(req, EPERM, "rename", parent, name,
			    "only files being written in incoming/ can be renamed, within it");
		return;
	}
	pthread_mutex_lock(&fs->lock);
	node = table_find(fs, parent, name);
	victim = table_find(fs, parent, newname);
	if (!node)
		ret = -ENOENT;
	else if (victim && (flags & RENAME_NOREPLACE))
		ret = -EEXIST;
	else if (node != victim && !(copy = strdup(newname)))
		ret = -ENOMEM;
	if (ret == 0 && node != victim) {
		if (victim) {
			victim->discarded = true;
			node_detach(fs, victim);
			node_release(fs, victim);
		}
		table_remove(fs, node);
		free(node->name);
		node->name = copy;
		table_insert(fs, node);
	}
	pthread_mutex_unlock(&fs->lock);
	if (ret < 0)
		reply_error(req, -ret, "rename", parent, name, NULL);
	else
		fuse_reply_err(req, 0);
}

/* ---- files ---- */

static void fs_create(fuse_req_t req, fuse_ino_t parent_ino, const char *name, mode_t mode,
		      struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	const struct fuse_ctx *ctx = fuse_req_ctx(req);
	struct node *parent = node_of(fs, parent_ino), *node;
	struct fuse_entry_param e;
	const char *why;
	int ret = check_create(parent, name, &why);

	pthread_mutex_lock(&fs->lock);
	node = ret == 0 ? table_find(fs, parent, name) : NULL;
	if (node && (fi->flags & O_EXCL))
		ret = -EEXIST, why = NULL;
	else if (ret == 0 && !node)
		ret = incoming_create(fs, parent, name, mode, ctx->uid, ctx->gid, &node);
	if (ret == 0 && (fi->flags & O_TRUNC))
		ret = blob_writer_truncate(node->writer, 0);
	if (ret < 0) {
		reply_error(req, -ret, "create", parent, name, why);
		goto out;
	}
	memset(&e, 0, sizeof(e));
	e.ino = ino_of(fs, node);
	e.attr_timeout = node_timeout(node);
	node_attr(fs, node, &e.attr);
	fi->fh = (uintptr_t)node;
	node->nlookup++;
	node->open_count++;
	if (fuse_reply_create(req, &e, fi) != 0) {
		node->nlookup--;
		node->open_count--;
	}
out:
	pthread_mutex_unlock(&fs->lock);
}

static void fs_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *node = node_of(fs, ino);
	struct blob_reader *reader;
	int ret;

	if (node->kind == NODE_BLOB) {
		if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC)) {
			reply_error(req, EACCES, "open", node, NULL,
				    "blobs are read-only; write new content to incoming/");
			return;
		}
		ret = blob_open(node->store, node->hash, &reader);
		if (ret < 0) {
			reply_error(req, -ret, "open", node, NULL, NULL);
			return;
		}
		fi->fh = (uintptr_t)reader;
		fi->keep_cache = 1; /* immutable: cached pages never go stale */
		if (fuse_reply_open(req, fi) != 0)
			blob_close(reader);
		return;
	}
	if (node->kind != NODE_INCOMING) {
		reply_error(req, EISDIR, "open", node, NULL, NULL);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	ret = node->writer ? 0 : -ENOENT; /* saved and closed */
	if (ret == 0 && (fi->flags & O_TRUNC) && (fi->flags & O_ACCMODE) != O_RDONLY)
		ret = blob_writer_truncate(node->writer, 0);
	if (ret < 0) {
		pthread_mutex_unlock(&fs->lock);
		reply_error(req, -ret, "open", node, NULL, NULL);
		return;
	}
	node->open_count++;
	fi->fh = (uintptr_t)node;
	if (fuse_reply_open(req, fi) != 0)
		node->open_count--;
	pthread_mutex_unlock(&fs->lock);
}

static void fs_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *node = node_of(fs, ino);
	size_t got = 0;
	char *buf;
	int ret;

	buf = malloc(size ? size : 1);
	if (!buf) {
		reply_error(req, ENOMEM, "read", node, NULL, NULL);
		return;
	}
	/* Blob bytes are checked against their checksums on the way, so they
	 * are read into the daemon rather than spliced from the pack. */
	if (node->kind == NODE_BLOB)
		ret = blob_read((struct blob_reader *)(uintptr_t)fi->fh, buf, size, (uint64_t)off,
				&got);
	else
		ret = blob_writer_read(node->writer, buf, size, (uint64_t)off, &got);
	if (ret < 0)
		reply_error(req, -ret, "read", node, NULL, NULL);
	else
		fuse_reply_buf(req, buf, got);
	free(buf);
}

/* Called with fs->lock held: a write after a flush that created the empty
 * blob shows that flush was not the writer's last close (a shell's
 * `cmd > file` duplicates the descriptor and closes the first copy), so the
 * empty blob it made is taken back. */
static bool retract_empty_blob(struct fs *fs, struct node *node)
{
	uint8_t empty[BLOBFS_HASH_SIZE];

	node->created_empty = false;
	/* Only if nobody else saved the empty blob since: theirs stays. */
	if (fs->empty_saves != node->empty_saves)
		return false;
	if (hash_buffer("", 0, empty) == 0 && blob_delete(node->parent->store, empty) == 0) {
		log_debug("%s: empty blob of an early close taken back", node->name);
		return true;
	}
	return false;
}

static void fs_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		     struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *node = node_of(fs, ino);
	int ret;

	(void)fi;
	if (node->kind != NODE_INCOMING) {
		reply_error(req, EACCES, "write", node, NULL, "blobs are read-only");
		return;
	}
	if (node->created_empty && size > 0) {
		pthread_mutex_lock(&fs->lock);
		if (node->created_empty)
			retract_empty_blob(fs, node);
		pthread_mutex_unlock(&fs->lock);
	}
	ret = blob_writer_write(node->writer, buf, size, (uint64_t)off);
	if (ret < 0)
		reply_error(req, -ret, "write", node, NULL, NULL);
	else
		fuse_reply_write(req, size);
}

static void fs_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *node = node_of(fs, ino);
	uint8_t hash[BLOBFS_HASH_SIZE];
	char hex[HASH_HEX_SIZE + 1];
	bool empty;
	int ret;

	(void)fi;
	if (node->kind != NODE_INCOMING || node->discarded) {
		fuse_reply_err(req, 0);
		return;
	}
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
		reply_error(req, ret == -ENOENT ? EIO : -ret, "save", node, NULL,
			    ret == -ENOENT ? "its store was destroyed" : NULL);
		return;
	}
	if (fs->sync && store_sync(node->parent->store) < 0) {
		reply_error(req, EIO, "save", node, NULL, "could not make it durable");
		return;
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
	fuse_reply_err(req, 0);
}

static void fs_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *node = node_of(fs, ino);

	if (node->kind == NODE_BLOB) {
		blob_close((struct blob_reader *)(uintptr_t)fi->fh);
		fuse_reply_err(req, 0);
		return;
	}
	pthread_mutex_lock(&fs->lock);
	node->open_count--;
	node_release(fs, node);
	pthread_mutex_unlock(&fs->lock);
	fuse_reply_err(req, 0);
}

/*
 * fsync of a file being written saves it (as close() would) and waits until
 * the blob is on stable storage: the blob survives a power cut once fsync()
 * returns. The name stays until close(). fsync of a directory makes the
 * store's deletes and saves durable.
 */
static void fs_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct node *node = node_of(fs_of(req), ino);
	uint8_t hash[BLOBFS_HASH_SIZE];
	int ret;

	(void)datasync;
	(void)fi;
	if (node->kind != NODE_INCOMING || node->discarded) {
		fuse_reply_err(req, 0);
		return;
	}
	ret = blob_writer_commit(node->writer, hash);
	if (ret == 0 || ret == -EEXIST)
		ret = store_sync(node->parent->store);
	if (ret < 0)
		reply_error(req, -ret, "fsync", node, NULL, NULL);
	else
		fuse_reply_err(req, 0);
}

static void fs_fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *node = node_of(fs, ino);
	int ret;

	(void)datasync;
	(void)fi;
	ret = node->kind == NODE_ROOT ? blobdb_sync(fs->db) : store_sync(node->store);
	if (ret < 0)
		reply_error(req, EIO, "fsync", node, NULL, NULL);
	else
		fuse_reply_err(req, 0);
}

/* ---- directories ---- */

static void fs_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct node *node = node_of(fs_of(req), ino);
	struct dir_handle *dh;

	if (node->kind == NODE_BLOB || node->kind == NODE_INCOMING) {
		reply_error(req, ENOTDIR, "opendir", node, NULL, NULL);
		return;
	}
	dh = calloc(1, sizeof(*dh));
	if (!dh) {
		reply_error(req, ENOMEM, "opendir", node, NULL, NULL);
		return;
	}
	fi->fh = (uintptr_t)dh;
	if (fuse_reply_open(req, fi) != 0)
		free(dh);
}

static void fs_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	free((void *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

struct dir_fill {
	fuse_req_t req;
	char *buf;
	size_t size, used;
	off_t next_off; /* the offset that follows the entry being added */
	struct dir_handle *dh;
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

static int dir_add_store(const char *name, void *arg)
{
	struct dir_fill *f = arg;

	if (!dir_add(f, name, store_ino(name), S_IFDIR, f->dh->next_off + 1))
		return 1;
	snprintf(f->dh->store_cursor, sizeof(f->dh->store_cursor), "%s", name);
	f->dh->have_cursor = true;
	return 0;
}

static int dir_add_blob(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct dir_fill *f = arg;
	char hex[HASH_HEX_SIZE + 1];

	(void)length;
	hash_to_hex(hash, hex);
	if (!dir_add(f, hex, blob_ino(hash), S_IFREG, f->dh->next_off + 1))
		return 1;
	memcpy(f->dh->blob_cursor, hash, BLOBFS_HASH_SIZE);
	f->dh->have_cursor = true;
	return 0;
}

/* When the kernel asks for an offset this handle did not just return (a
 * seekdir), the cursor is rebuilt by counting entries from the start. */
struct dir_skip {
	struct dir_handle *dh;
	off_t left;
};

static int dir_skip_store(const char *name, void *arg)
{
	struct dir_skip *s = arg;

	snprintf(s->dh->store_cursor, sizeof(s->dh->store_cursor), "%s", name);
	s->dh->have_cursor = true;
	return --s->left <= 0;
}

static int dir_skip_blob(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct dir_skip *s = arg;

	(void)length;
	memcpy(s->dh->blob_cursor, hash, BLOBFS_HASH_SIZE);
	s->dh->have_cursor = true;
	return --s->left <= 0;
}

/*
 * Offsets: 1 and 2 follow "." and ".."; in a store 3 follows "incoming".
 * After that, stores and blobs are numbered in listing order and resumed
 * from the handle's cursor (the last name returned), so entries added or
 * removed between calls neither repeat nor hide the others. Files in
 * incoming/ are listed in creation order with offsets derived from their
 * inode numbers, which never repeat.
 */
static void fs_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct node *node = node_of(fs, ino);
	struct dir_handle *dh = (struct dir_handle *)(uintptr_t)fi->fh;
	struct dir_fill f = { .req = req, .size = size, .dh = dh };
	off_t fixed = node->kind == NODE_STORE ? 3 : 2;

	f.buf = malloc(size);
	if (!f.buf) {
		reply_error(req, ENOMEM, "readdir", node, NULL, NULL);
		return;
	}
	if (off != dh->next_off || off <= fixed) {
		struct dir_skip skip = { .dh = dh, .left = off - fixed };
		dh->have_cursor = false;
		if (skip.left > 0 && node->kind == NODE_ROOT)
			store_list(fs->db, NULL, dir_skip_store, &skip);
		else if (skip.left > 0 && node->kind == NODE_STORE)
			blob_list(node->store, NULL, dir_skip_blob, &skip);
	}
	dh->next_off = off;
	if (off < 1)
		dir_add(&f, ".", node == &fs->root ? FUSE_ROOT_ID : node->ino, S_IFDIR, 1);
	if (off < 2 && !f.full)
		dir_add(&f, "..", FUSE_ROOT_ID, S_IFDIR, 2);
	if (node->kind == NODE_STORE && off < 3 && !f.full)
		dir_add(&f, INCOMING_NAME, INO_CLASS_INCOMING_DIR | (node->ino & INO_MASK), S_IFDIR,
			3);
	if (!f.full && node->kind == NODE_ROOT) {
		store_list(fs->db, dh->have_cursor ? dh->store_cursor : NULL, dir_add_store, &f);
	} else if (!f.full && node->kind == NODE_STORE) {
		blob_list(node->store, dh->have_cursor ? dh->blob_cursor : NULL, dir_add_blob, &f);
	} else if (!f.full && node->kind == NODE_INCOMING_DIR) {
		pthread_mutex_lock(&fs->lock);
		for (struct node *n = node->incoming_head; n && !f.full; n = n->next_incoming) {
			off_t next = (off_t)(n->ino & INO_MASK) + 3;
			if (next > off)
				dir_add(&f, n->name, n->ino, S_IFREG, next);
		}
		pthread_mutex_unlock(&fs->lock);
	}
	fuse_reply_buf(req, f.buf, f.used);
	free(f.buf);
}

/* ---- the rest ---- */

static void fs_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs st;

	(void)ino;
	int ret = blobdb_statfs(fs->db, &st);

	if (ret < 0) {
		reply_error(req, -ret, "statfs", &fs->root, NULL, NULL);
		return;
	}
	st.f_namemax = 255;
	fuse_reply_statfs(req, &st);
}

/*
 * No extended attributes. getxattr and listxattr are left unimplemented on
 * purpose: the kernel then stops asking, where an ENODATA answer would cost
 * a round trip on every write() (the kernel checks security.capability
 * before each one). setxattr answers ENOTSUP explicitly, with a log line.
 */
static void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
			size_t size, int flags)
{
	(void)value;
	(void)size;
	(void)flags;
	reply_error(req, ENOTSUP, "setxattr", node_of(fs_of(req), ino), NULL, name);
}

static void fs_init(void *userdata, struct fuse_conn_info *conn)
{
	(void)userdata;
	conn->max_write = MAX_WRITE;
	/* Blobs never change, so cached pages never need checking against the
	 * attributes (on every read, with auto_inval_data). */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	if (conn->capable & FUSE_CAP_SPLICE_WRITE)
		conn->want |= FUSE_CAP_SPLICE_WRITE;
}

static const struct fuse_lowlevel_ops fs_ops = {
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
	.release = fs_release,
	.fsync = fs_fsync,
	.fsyncdir = fs_fsyncdir,
	.opendir = fs_opendir,
	.readdir = fs_readdir,
	.releasedir = fs_releasedir,
	.statfs = fs_statfs,
	.setxattr = fs_setxattr,
	.create = fs_create,
};

static void fs_free_nodes(struct fs *fs)
{
	/* At unmount the kernel drops its references without forgetting each
	 * node; files still being written are discarded, not saved. */
	for (struct node *n = fs->all_nodes, *next; n; n = next) {
		next = n->all_next;
		blob_writer_free(n->writer);
		store_close(n->store);
		free(n->name);
		free(n);
	}
	free(fs->buckets);
}

int fs_run(struct blobdb *db, const char *mountpoint, struct fuse_args *args,
	   const struct fs_options *opts)
{
	struct fuse_loop_config *loop = NULL;
	struct fs fs;
	bool mounted = false, handlers = false;
	int ret = -1;

	memset(&fs, 0, sizeof(fs));
	fs.db = db;
	fs.sync = opts->sync;
	fs.root.kind = NODE_ROOT;
	fs.root.ino = FUSE_ROOT_ID;
	fs.next_ino = 2;
	fs.uid = getuid();
	fs.gid = getgid();
	clock_gettime(CLOCK_REALTIME, &fs.mount_time);
	pthread_mutex_init(&fs.lock, NULL);
	fs.bucket_count = 1024;
	fs.buckets = calloc(fs.bucket_count, sizeof(*fs.buckets));
	if (!fs.buckets)
		goto out;

	fs.session = fuse_session_new(args, &fs_ops, sizeof(fs_ops), &fs);
	if (!fs.session)
		goto out;
	if (fuse_set_signal_handlers(fs.session) != 0)
		goto out;
	handlers = true;
	if (fuse_session_mount(fs.session, mountpoint) != 0)
		goto out;
	mounted = true;
	if (!opts->foreground) {
		if (fuse_daemonize(0) != 0)
			goto out;
		log_to_syslog(true);
		blobdb_note_pid(db);
	}
	if (blobdb_start(db) < 0)
		goto out;
	log_info("%s mounted on %s", blobdb_path(db), mountpoint);
	loop = fuse_loop_cfg_create();
	if (!loop)
		goto out;
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_max_threads(loop, opts->threads);
	ret = fuse_session_loop_mt(fs.session, loop);
	/* A positive value is the signal that ended the loop: a clean stop. */
	if (ret > 0)
		ret = 0;
	if (ret == 0)
		log_info("%s unmounted from %s", blobdb_path(db), mountpoint);
	else
		log_error("session ended with an error: %s", strerror(-ret));
out:
	if (loop)
		fuse_loop_cfg_destroy(loop);
	if (mounted)
		fuse_session_unmount(fs.session);
	if (handlers)
		fuse_remove_signal_handlers(fs.session);
	if (fs.session)
		fuse_session_destroy(fs.session);
	if (fs.buckets)
		fs_free_nodes(&fs);
	pthread_mutex_destroy(&fs.lock);
	return ret;
}
