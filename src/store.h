/*
 * store.h - the blob database: named stores, each a set of immutable blobs
 * named by their SHA-256. This is the blob-db API of docs (store
 * list/create/destroy, blob save/load/info/list/delete) as a small C
 * library that knows nothing of FUSE. Where the blobs live is a backend's
 * business (backend.h): packs in a data directory, or memory. Statuses
 * are negative errnos: -ENOENT not-found, -EEXIST already-exists, -EINVAL
 * invalid-argument, -ENOSPC no-space, -EIO internal-error; -EPERM and
 * -EACCES only from the owner and mode checks below (a backend's own EPERM
 * is an internal error).
 *
 * Thread safety: every function may be called from any thread. A struct
 * blob_writer or blob_reader is used by one caller at a time or locks itself
 * (writers do; readers are read-only and need no lock).
 */
#ifndef BLOBFS_STORE_H
#define BLOBFS_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "format.h"

struct blobdb_options {
	uint64_t pack_size_max;  /* small blobs are appended to a pack up to this size */
	uint64_t large_blob_min; /* blobs this size or more get a pack of their own */
	uint64_t min_free;       /* bytes saves leave free on the disk, for deletes and
				  * compaction; MIN_FREE_AUTO: 1% of the disk, <= 64 MiB */
	unsigned flush_interval_ms; /* the longest a saved blob waits to be made durable */
	unsigned compact_percent;   /* a pack is compacted once this share of it is dead */
	bool read_only;          /* open for checking only: no lock-file pid */
	bool rehash;             /* local: hash a blob read whole every time, not
				  * only the first time since the db was opened */
	uint64_t memory_max;     /* memory: the most bytes of blob content held;
				  * 0: MEMORY_MAX_DEFAULT_PERCENT of the RAM */
	uint64_t writer_memory_max; /* local: the most bytes of incoming content all
				     * writers together hold in memory (beyond it a
				     * writer spills to its staging file); 0:
				     * WRITER_MEMORY_DEFAULT */
	size_t store_max;        /* the most stores; creating one more is ENOSPC; 0:
				  * STORE_MAX_DEFAULT */
	unsigned compress;       /* local: enum chunk_codec_kind for new records:
				  * CHUNK_CODEC_NONE (0) or CHUNK_CODEC_ZSTD */
	int compress_level;      /* zstd's level (CHUNK_CODEC_LEVEL_MIN..MAX); 0:
				  * CHUNK_CODEC_LEVEL_DEFAULT */
	const struct io_ops *io; /* local: the file-system calls (io.h); NULL:
				  * the system's */
	/* s3: where and how (docs/FORMAT.md, "Stores in an S3 bucket"). */
	const char *cache_dir;    /* the cache directory; NULL: a default one */
	uint64_t cache_size;      /* bytes of blobs cached; 0: S3_CACHE_SIZE_DEFAULT */
	const char *s3_endpoint;  /* NULL: from the environment */
	unsigned remote_ttl_ms;   /* how long an answer of the object store is
				   * trusted; 0: S3_REMOTE_TTL_MS_DEFAULT */
	bool s3_sync;             /* a save returns once the object store has it */
	unsigned upload_threads;  /* 0: S3_UPLOAD_THREADS_DEFAULT */
};

#define S3_LOCATION_PREFIX "s3://"
#define S3_CACHE_SIZE_DEFAULT (UINT64_C(4) << 30)
#define S3_REMOTE_TTL_MS_DEFAULT 10000
/* Small blobs are bound by the round trip of each PUT, not by bandwidth:
 * 32 at once came within 5% of what radosgw takes on the bench machine (8
 * gave 75%; docs/BENCHMARKS.md, row 9b). */
#define S3_UPLOAD_THREADS_DEFAULT 32

#define PACK_SIZE_MAX_DEFAULT (UINT64_C(64) << 20)
#define LARGE_BLOB_MIN_DEFAULT (UINT64_C(1) << 20)
#define LARGE_BLOB_MIN_MAX (UINT64_C(16) << 20)
#define MIN_FREE_AUTO UINT64_MAX
/* Each store costs the daemon about 11 KB (measured: 3,000 empty stores
 * took a mount from 2.3 to 26 MB). */
#define STORE_MAX_DEFAULT 10000
#define FLUSH_INTERVAL_MS_DEFAULT 1000
#define COMPACT_PERCENT_DEFAULT 50
#define MEMORY_MAX_DEFAULT_PERCENT 25
/* 64 writers of 1 MiB (the most one writer keeps in memory) at once: far
 * more than the request threads serve, small beside any machine's RAM. */
#define WRITER_MEMORY_DEFAULT (UINT64_C(64) << 20)

void blobdb_options_default(struct blobdb_options *opts);

struct blobdb;
struct io_ops;
struct store;
struct blob_reader;
struct blob_writer;

/*
 * Opens the database at location:
 *   "memory:"   stores that live in this process's memory and vanish at close
 *   a path      a data directory of packs: created (mode 0700) if needed, its
 *               lock taken, every store loaded. -EBUSY if another process
 *               holds the lock.
 * opts may be NULL (the defaults). -EINVAL for "memory:" followed by
 * anything.
 */
#define MEMORY_LOCATION "memory:"
int blobdb_open(const char *location, const struct blobdb_options *opts, struct blobdb **out);
/* Makes everything durable and releases the database (local: flushes,
 * writes the index checkpoints and releases the lock); -EIO if the final
 * flush failed (everything is released either way; a checkpoint that cannot
 * be written is only logged). Every store reference, reader and writer must
 * be closed first. */
int blobdb_close(struct blobdb *db);
/* Records the calling process as the lock holder (after a daemonizing fork). */
void blobdb_note_pid(struct blobdb *db);
/* Starts the background thread that makes saves durable within
 * flush_interval_ms and compacts packs. Without it, store_sync flushes in the
 * caller's thread. Call after any fork (daemonizing). */
int blobdb_start(struct blobdb *db);
/* Makes everything written so far in every store durable. */
int blobdb_sync(struct blobdb *db);
/* Compacts every pack with any dead bytes and drops tombstones no longer
 * needed (offline: `blobfs compact`). progress, if not NULL, gets a line per
 * pack. */
int blobdb_compact(struct blobdb *db, FILE *progress);
/* Writes every store's index checkpoint now, as the background does while
 * the database is in use (the local backend; a no-op elsewhere): for tests
 * of that path (the power-loss simulation). */
int blobdb_checkpoint(struct blobdb *db);
struct statvfs;
/* For statfs(2) and df: the size and free space of where the blobs live
 * (local: the file system of the data directory; memory: memory_max), and
 * as files the blobs: f_files - f_ffree is the number of blobs in every
 * store, f_ffree (= f_favail) an estimate of how many more fit (free space
 * over the size of the smallest record), so that df -i shows the blobs as
 * IUsed. */
int blobdb_statfs(struct blobdb *db, struct statvfs *st);
/* Bytes of incoming content the database's writers hold in memory now (the
 * local backend's count against writer_memory_max; 0 for a backend that
 * charges writers elsewhere: memory's are part of memory_max). */
uint64_t blobdb_writer_memory(struct blobdb *db);
/* The most stores the database lets be created (store_max). */
size_t blobdb_store_max(const struct blobdb *db);
/* The pid written in datadir's lock file, or 0 when unknown. */
long blobdb_lock_holder(const char *datadir);
/* Where the database is, for messages: an absolute path, or "memory:". */
const char *blobdb_path(const struct blobdb *db);
/* How long, in ms, what the database says of a blob may be out of date
 * because something else changed it (s3: another mount of the bucket); 0
 * when nothing changes blobs but this database (local, memory). A front end
 * caches no answer longer than this. */
unsigned blobdb_remote_ttl_ms(const struct blobdb *db);
/* The largest blob the database can take: a writer past it fails with
 * -EFBIG (so a front end can refuse a length it is told before reading the
 * bytes). */
uint64_t blobdb_blob_max(const struct blobdb *db);
unsigned store_remote_ttl_ms(const struct store *store);
/* The backend's name: "local", "memory" or "s3". */
const char *blobdb_backend(const struct blobdb *db);

/* -EINVAL unless name is 1..255 bytes, has no '/' or NUL, and does not start
 * with '.'. */
int store_name_check(const char *name, size_t len);

/*
 * Owners and modes. Each store has an owner, a group and a mode (the
 * permission bits of a directory, 07777), kept by the backend (local: the
 * store's meta file, docs/FORMAT.md; memory: in memory) and checked here, so
 * that every front end applies the same rules:
 *
 *   store_access   the usual Unix rules of a directory: uid 0 passes
 *                  (root may read, write and search any directory); the
 *                  owner gets the owner bits, else a member of the group
 *                  (primary or supplementary) the group bits, else the
 *                  other bits; every bit asked for must be there.
 *   store_attr_set chmod: the owner or root (a caller who is neither in the
 *                  store's group nor root loses S_ISGID, as Linux does);
 *                  chown to another uid: root only; chgrp: root, or the
 *                  owner to a group they are in. Setting the value a field
 *                  already has is a no-op the owner may do. -EPERM otherwise.
 */
struct store_attr {
	uint32_t uid;
	uint32_t gid;
	uint32_t mode; /* permission bits only: 07777 */
};

/* Who asks: a front end fills it from its request (FUSE: the caller's uid,
 * gid and supplementary groups). groups may be NULL when group_count is 0. */
struct caller {
	uint32_t uid;
	uint32_t gid;
	const uint32_t *groups;
	size_t group_count;
};

#define STORE_MODE_MASK 07777
/* store_create's owner and mode: the process's effective uid and gid, 0755. */
#define STORE_MODE_DEFAULT 0755

/* What store_attr_set changes. */
#define STORE_ATTR_MODE 1
#define STORE_ATTR_UID 2
#define STORE_ATTR_GID 4

/* Creates a store owned by the process (effective uid and gid), mode 0755. */
int store_create(struct blobdb *db, const char *name);
/* Creates a store with the given owner, group and mode (mode & 07777);
 * -ENOSPC when store_max stores exist. */
int store_create_as(struct blobdb *db, const char *name, const struct store_attr *attr);
/* The store's owner, group and mode; -ENOENT for a destroyed store. */
int store_attr_get(struct store *store, struct store_attr *out);
/* Changes what `what` (STORE_ATTR_*) names to want's values, on behalf of
 * who, with the rules above (-EPERM), persistently (local: the meta file is
 * replaced atomically before this returns; -EIO, -ENOSPC if it could not
 * be, and nothing changed). Fills *now (may be NULL) with the result. */
int store_attr_set(struct store *store, const struct caller *who, int what,
		   const struct store_attr *want, struct store_attr *now);
/* 0 when who may access the store as mask (R_OK, W_OK, X_OK of
 * <unistd.h>, or'ed; F_OK is 0) says, -EACCES otherwise, -ENOENT for a
 * destroyed store. */
int store_access(struct store *store, const struct caller *who, int mask);
/* The same check against attributes already in hand. */
int store_attr_access(const struct store_attr *attr, const struct caller *who, int mask);
/* Whether who is in group gid (primary or supplementary). */
bool caller_in_group(const struct caller *who, uint32_t gid);

/* Checks that location is a safe place for a data directory (memory: always
 * is): the directory, if it exists, and each of its parents must not be
 * writable by other users or by a group other than root's (gid 0), unless
 * (parents only) it is sticky and owned by root or by the process's
 * effective uid; the data directory itself must be owned by root or that
 * uid. Logs which directory and why, and returns -EPERM, when it is not.
 * blobdb_open checks it too. */
int blobdb_check_location(const char *location);
/* Removes the store and its blobs; with only_if_empty, -ENOTEMPTY if it has
 * blobs. */
int store_destroy(struct blobdb *db, const char *name, bool only_if_empty);
/* A counted reference to the store; -ENOENT if there is none. */
int store_open(struct blobdb *db, const char *name, struct store **out);
void store_close(struct store *store);
/* Another counted reference to a store one already holds. */
struct store *store_hold(struct store *store);
const char *store_name(const struct store *store);
/* Whether the store was destroyed (a reference outlives its store). */
bool store_destroyed(struct store *store);
/* Waits until every record written to the store so far is on stable storage
 * (group commit: concurrent callers share the flushes). -EIO if it failed. */
int store_sync(struct store *store);
/* One compaction pass: rewrites the packs whose dead share is at least
 * percent (and whose records are all durable). */
int store_compact(struct store *store, unsigned percent);
/* Calls fn for each store name in byte order, starting after `after` (NULL:
 * from the first); stops when fn returns non-zero and returns that value. */
int store_list(struct blobdb *db, const char *after,
	       int (*fn)(const char *name, void *arg), void *arg);
size_t store_count(struct blobdb *db);

int blob_info(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t *length);
/* What a stat shows of a blob. */
struct blob_stat {
	uint64_t length;
	int64_t saved; /* first save, seconds since the epoch: unchanged by a
			* re-save of the same content (-EEXIST), new after a
			* delete; kept across remounts by the local backend;
			* 0 for blobs a format 1 data directory holds
			* (docs/FORMAT.md) */
};
/* Fills *out; the same errors as blob_info. */
int blob_stat(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE], struct blob_stat *out);
int blob_delete(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
/* Saves len bytes; fills hash. 0 when saved, -EEXIST when already there. */
int blob_save(struct store *store, const void *data, size_t len,
	      uint8_t hash[BLOBFS_HASH_SIZE]);
/* Calls fn for each blob in hash order after `after` (NULL: from the first). */
int blob_list(struct store *store, const uint8_t *after,
	      int (*fn)(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg),
	      void *arg);
size_t blob_count(struct store *store);

/*
 * Statistics of a store. blobs and bytes count the blobs a listing shows
 * (bytes: the sum of their lengths); packs is how many pack files hold the
 * store (0 in memory); dead_bytes how many bytes of them hold nothing a
 * blob or a delete needs any more (deleted or superseded records, the space
 * compaction gives back; 0 in memory).
 */
struct store_stats {
	uint64_t blobs;
	uint64_t bytes;
	uint64_t packs;
	uint64_t dead_bytes;
};

/* A consistent snapshot of the store's figures; -ENOENT for a destroyed
 * store. The local backend walks the store's index for bytes (O(blobs))
 * under the store's lock: saves to that store wait meanwhile. */
int store_stats(struct store *store, struct store_stats *out);
/* sum += add, field by field. */
void store_stats_add(struct store_stats *sum, const struct store_stats *add);

/*
 * The text form of the statistics (store_stats.c), shared by `blobfs stat`
 * and the mount's user.blobfs.stat attribute; README documents it. One
 * line, ending in a newline, of space-separated key=value fields:
 *
 *   store=NAME blobs=N bytes=N packs=N dead_bytes=N
 *
 * NAME is escaped (escape.h, with spaces: \\, \n, \t, \xNN) so that it is
 * one field; values are decimal. New keys may be added at the end of a line
 * later; readers must ignore keys they do not know.
 * Returns the length of the line (without the NUL), as snprintf does: buf
 * holds all of it only when that is below size (buf may be NULL when size
 * is 0). STORE_STATS_LINE_MAX is always enough.
 */
#define STORE_STATS_LINE_MAX 1536
size_t store_stats_format(const char *store_name, const struct store_stats *st, char *buf,
			  size_t size);
/* The totals line of several stores, in the same form:
 *   stores=N blobs=N bytes=N packs=N dead_bytes=N */
size_t store_stats_format_total(uint64_t stores, const struct store_stats *sum, char *buf,
				size_t size);

/* Reading: a reader pins the blob's bytes (its pack stays readable through
 * the reader even if the blob is deleted meanwhile). */
int blob_open(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
	      struct blob_reader **out);
uint64_t blob_reader_length(const struct blob_reader *reader);
/* Reads up to size bytes at off; *got is short only at the end of the blob.
 * Never returns bytes that do not belong to the blob: damage gives -EIO (the
 * local backend checks each chunk's CRC32C before returning its bytes, and
 * the whole SHA-256 before the last bytes when the blob is read in order). */
int blob_read(struct blob_reader *reader, void *buf, size_t size, uint64_t off, size_t *got);
void blob_close(struct blob_reader *reader);

/*
 * Writing: an incoming blob, written at any offsets, then committed. The
 * content is hashed as it arrives when writes are sequential. After a commit
 * the writer holds the committed content and may be written and committed
 * again.
 */
int blob_writer_new(struct store *store, struct blob_writer **out);
int blob_writer_write(struct blob_writer *writer, const void *buf, size_t size, uint64_t off);
int blob_writer_read(struct blob_writer *writer, void *buf, size_t size, uint64_t off,
		     size_t *got);
int blob_writer_truncate(struct blob_writer *writer, uint64_t size);
uint64_t blob_writer_size(struct blob_writer *writer);
/* Saves the current content: 0 when saved, -EEXIST when the store already
 * had it (both mean the blob is there); fills hash either way. */
int blob_writer_commit(struct blob_writer *writer, uint8_t hash[BLOBFS_HASH_SIZE]);
/*
 * A tentative save, for content that may still be superseded before its
 * writer is done (a file still open that a process sharing its descriptor
 * closed): saves like blob_writer_commit and, when this save created the
 * blob, sets *tentative. Until blob_settle, blob_retract may take such a
 * blob back, unless any other save of the same content happened since (it
 * is then someone else's too, and stays). With expect (not NULL), content
 * that does not hash to expect is not saved: -EINVAL, hash filled.
 */
int blob_writer_commit_tentative(struct blob_writer *writer, const uint8_t *expect,
				 uint8_t hash[BLOBFS_HASH_SIZE], bool *tentative);
/* Deletes a blob a tentative save created: 0 when deleted, -EEXIST when it
 * stays (claimed by another save, or not tentative), -ENOENT when it was
 * deleted meanwhile. */
int blob_retract(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
/* The tentative blob is final. */
void blob_settle(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
/* Something new stands behind the blob (a receipt linked to it): if it is
 * tentative, it can no longer be taken back. -ENOENT if it is not there.
 * (A reader who only saw the blob, by stat or a listing, claims nothing: a
 * tentative blob may go while it is visible.) */
int blob_claim(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
/* Discards whatever was not committed. */
void blob_writer_free(struct blob_writer *writer);

#endif
