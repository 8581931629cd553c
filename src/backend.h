/*
 * backend.h - the interface between the blob database API (store.h) and a
 * place blobs live: a backend. blobdb.c implements store.h once (argument
 * checks, the catalogue of stores with its counted references, the mapping
 * of every result to a blob-db status) and calls a backend through the table
 * below for everything that touches blobs.
 *
 * Backends today: "local" (packs in a data directory, local_*.c) and
 * "memory" (blobs in the daemon's memory, memory.c). A location string picks
 * one at blobdb_open: "memory:" or a directory path.
 *
 * Objects. A backend embeds the base structs below as the FIRST member of
 * its own (struct local_store { struct store base; ... }) and converts a
 * base pointer back with a cast. There is no global state: everything a
 * backend needs hangs off its struct blobdb, so two databases with different
 * backends live side by side in one process.
 *
 * Errors. Every call returns 0 or a negative errno. The ones a caller acts
 * on are listed per call; anything else (a failed system call, a damaged
 * record) is logged by the backend where it happened and shows to the user
 * as -EIO (blobdb.c maps it). -ENOMEM may come from any call that allocates.
 *
 * Threads. Every call may come from any thread at any time, except that
 * db_stop/db_free come once, after every other call has returned. The base
 * fields below are owned by blobdb.c; backends only read them (name, db) or
 * set them as documented (destroyed, length).
 *
 * Locks. blobdb.c's db->lock (the catalogue and every reference count) is
 * taken before a backend's own locks (store_create and store_remove are
 * called with it held) and never after: a backend must not call
 * store_hold/store_close/blobdb_each_store while holding a lock of its own.
 */
#ifndef BLOBFS_BACKEND_H
#define BLOBFS_BACKEND_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "store.h"

struct statvfs;
struct backend_ops;

struct blobdb {
	const struct backend_ops *ops;
	struct blobdb_options opts; /* as given; a backend may clamp its copy */
	char *location;             /* for messages; a backend may replace it
				     * with a canonical form (free()able) */
	/* Set by a backend whose blobs others change too (s3: other mounts of
	 * the bucket): how long what it says may be out of date; 0: nothing
	 * changes but through this database. */
	unsigned remote_ttl_ms;
	/* Set by the backend: the largest blob a writer can take (-EFBIG past
	 * it); blobdb_init sets UINT64_MAX. */
	uint64_t blob_max;
	uint64_t refreshed_ms; /* blobdb.c: the last db_refresh (atomic) */
	/* The catalogue: stores sorted by name and their reference counts. */
	pthread_mutex_t lock;
	struct store **stores;
	size_t store_count, store_capacity;
	/* Tentative saves (store.h): every commit holds retract_lock shared,
	 * a retract holds it exclusive, so that a retract never deletes a blob
	 * another save has just found there. */
	pthread_rwlock_t retract_lock;
	struct tentative_table *tentative;
};

struct store {
	struct blobdb *db;
	char *name;
	unsigned refcount; /* under db->lock */
	/* Set (with __atomic, under the backend's own store lock if it has
	 * one) by store_remove; a reference outlives its store. */
	bool destroyed;
	/* Held by store_attr_set around reading, checking and replacing the
	 * owner and mode (taken before any lock of the backend). */
	pthread_mutex_t attr_lock;
};

/* Readers and writers hold a reference to their store, taken and dropped
 * by blobdb.c around reader_open/reader_close and writer_new/writer_free
 * (the backend sets nothing here but length). */
struct blob_reader {
	struct store *store;
	uint64_t length;
};

struct blob_writer {
	struct store *store;
};

typedef int (*blob_list_fn)(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg);

/* One blob of a listing. */
struct blob_entry {
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint64_t length;
};

struct backend_ops {
	const char *name;

	/* ---- the database ---- */

	/* Opens the database at location (the part after "memory:" for the
	 * memory backend). Must call blobdb_init() on the base first and load
	 * existing stores with blobdb_catalog_add(). On failure everything is
	 * released (calling blobdb_close on the base is the usual way). */
	int (*db_open)(const char *location, const struct blobdb_options *opts,
		       struct blobdb **out);
	/* Starts background work (flushing, compaction). May be NULL. Called
	 * after any daemonizing fork. */
	int (*db_start)(struct blobdb *db);
	/* Stops background work and makes everything durable. -EIO if the
	 * final flush failed. Called with every store still in the catalogue;
	 * may be called on a database whose db_open failed half-way. */
	int (*db_stop)(struct blobdb *db);
	/* Frees what db_open made, after the catalogue's references are gone. */
	void (*db_free)(struct blobdb *db);
	/* Records the calling process as the holder of the database (after a
	 * daemonizing fork). May be NULL. */
	void (*db_note_pid)(struct blobdb *db);
	/* Makes everything saved so far durable (a no-op where nothing is). */
	int (*db_sync)(struct blobdb *db);
	/* Gives back the space of deleted blobs, offline. May be NULL. */
	int (*db_compact)(struct blobdb *db, FILE *progress);
	/* Writes whatever lets the next open skip work now, as the backend
	 * does in the background while the database is in use (local: every
	 * store's index checkpoint). May be NULL. */
	int (*db_checkpoint)(struct blobdb *db);
	/* Capacity and free space, for statfs(2): f_blocks, f_bfree, f_bavail
	 * in f_frsize units; f_files = the blobs of every store + f_ffree;
	 * f_ffree = f_favail = how many more blobs of the smallest size fit.
	 * blobdb.c adds nothing (the front end sets f_namemax). */
	int (*db_statfs)(struct blobdb *db, struct statvfs *st);
	/* Bytes of incoming content the writers hold in memory (store.h's
	 * blobdb_writer_memory). May be NULL (0). */
	uint64_t (*db_writer_memory)(struct blobdb *db);
	/* Brings the catalogue up to date with stores created or removed
	 * elsewhere (s3: through another mount of the bucket): adds them with
	 * blobdb_catalog_add, drops them with blobdb_catalog_drop. May be NULL.
	 * blobdb.c calls it without any lock, at most once per remote_ttl_ms,
	 * before a listing of the stores and when a store_open misses. Errors
	 * are the backend's to log; the catalogue stays as it was. */
	void (*db_refresh)(struct blobdb *db);

	/* ---- stores (the catalogue itself is blobdb.c's) ---- */

	/* Makes a new, empty, persistent store called name (already checked,
	 * and absent from the catalogue; called with db->lock held, so creates
	 * and removes are serialized), owned as attr says (mode already masked
	 * to 07777). The store exists with its owner and mode or not at all,
	 * even across a crash. Fills *out with refcount 1 (the catalogue's
	 * reference). -ENOSPC, -EIO. */
	int (*store_create)(struct blobdb *db, const char *name, const struct store_attr *attr,
			    struct store **out);
	/* Fills *out with the store's owner, group and mode (from memory: no
	 * file is read; a store found at open without any gets the default
	 * docs/FORMAT.md gives). -ENOENT for a destroyed store. */
	int (*store_get_attr)(struct store *store, struct store_attr *out);
	/* Replaces the store's owner, group and mode with *attr (the rules
	 * were checked by blobdb.c, which serializes the calls per store with
	 * store->attr_lock). Persistent when it returns 0 (local: the meta file
	 * is replaced atomically); on failure nothing changed. -ENOENT for a
	 * destroyed store, -ENOSPC, -EIO. */
	int (*store_set_attr)(struct store *store, const struct store_attr *attr);
	/* Removes the store from where it lives: after a 0 the store is gone
	 * even across a crash. Sets store->destroyed. -ENOTEMPTY with
	 * only_if_empty when it holds blobs. Called with db->lock held. */
	int (*store_remove)(struct store *store, bool only_if_empty);
	/* After a successful store_remove, outside every lock: gives back the
	 * removed store's space (slow for a big store). May be NULL. */
	void (*store_purge)(struct store *store);
	/* Frees a store once its last reference is gone. */
	void (*store_free)(struct store *store);
	/* Waits until everything saved in (or deleted from) the store so far is
	 * durable. -EIO. */
	int (*store_sync)(struct store *store);
	/* One compaction pass over packs at least percent dead. May be NULL. */
	int (*store_compact)(struct store *store, unsigned percent);
	/* Fills *out (zeroed by blobdb.c) with the store's figures, taken under
	 * the store's lock so that they agree with each other (struct
	 * store_stats in store.h says what each is). -ENOENT for a destroyed
	 * store. */
	int (*store_stats)(struct store *store, struct store_stats *out);

	/* ---- blobs ---- */

	/* Fills *length and *saved (either may be NULL): the blob's bytes, and
	 * when it was first saved (seconds since the epoch; a re-save of what
	 * is there keeps it, a save after a delete sets a new one; a backend
	 * keeps it across restarts if it keeps blobs, and may report a fixed
	 * time for blobs saved before it kept one, as documented in
	 * docs/FORMAT.md). Must not read blob content: it is every stat's
	 * cost. -ENOENT when the store has no such blob (or was destroyed). */
	int (*blob_info)(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			 uint64_t *length, int64_t *saved);
	/* -ENOENT when there is no such blob. After a 0 the blob is gone for
	 * every later lookup; readers already open keep reading it. */
	int (*blob_delete)(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
	/* Takes back a blob a tentative writer_commit answered 0 for (blobdb.c
	 * calls it only when no other save of that content happened since: the
	 * tentative table): removes what that save added and nothing more. 0
	 * taken back, -EEXIST when the blob stays (it was there before the
	 * save, or the backend cannot tell), -ENOENT when it is gone already.
	 * NULL: blob_delete (for a backend whose 0 always means "created"). */
	int (*blob_retract)(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
	/* blob_info's answer for a save that stands behind a blob already
	 * there (blob_claim: a hard link into incoming/), for a backend that
	 * keeps blobs in stores of its own whose tentative saves must hear of
	 * it too (the s3 outbox). NULL: blob_info. */
	int (*blob_claim)(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
	/* Copies into out up to max blobs in hash order after `after` (NULL:
	 * from the first): how many (fewer than max only at the end; 0 for a
	 * destroyed store). blobdb.c walks a listing a batch at a time, so no
	 * lock of the backend is held while the caller's callback runs. */
	size_t (*blob_list_batch)(struct store *store, const uint8_t *after,
				  struct blob_entry *out, size_t max);
	size_t (*blob_count)(struct store *store);
	/* Saves len bytes from memory; fills hash. 0 saved, -EEXIST already
	 * there (both: the blob exists), -ENOSPC, -EIO. */
	int (*blob_save)(struct store *store, const void *data, size_t len,
			 uint8_t hash[BLOBFS_HASH_SIZE]);

	/* A reader pins the blob's bytes: it keeps reading them after a
	 * delete. -ENOENT when there is no such blob. Fills base length. */
	int (*reader_open)(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			   struct blob_reader **out);
	/* Up to size bytes at off; *got is short only at the end. Never returns
	 * bytes that do not match the blob's name: -EIO instead. */
	int (*reader_read)(struct blob_reader *reader, void *buf, size_t size, uint64_t off,
			   size_t *got);
	void (*reader_close)(struct blob_reader *reader);

	/* An incoming blob, written at any offsets and committed (any number of
	 * times) as a blob. Writes and truncates fail with -ENOSPC, -EFBIG (past
	 * the largest blob: nothing changed), -EMFILE/-ENFILE (the process is out
	 * of file descriptors: blobdb.c answers -ENFILE) or -EIO. A writer's
	 * memory is bounded by the backend's budget (local: writer_memory_max;
	 * memory: memory_max), and a hole (a truncate up, a write past the end)
	 * costs no memory where the backend keeps content in files. After a
	 * failure other than
	 * -EFBIG the content may not be what the caller wrote, so every later
	 * commit must fail too (a backend may also refuse after -EFBIG). */
	int (*writer_new)(struct store *store, struct blob_writer **out);
	int (*writer_write)(struct blob_writer *writer, const void *buf, size_t size,
			    uint64_t off);
	int (*writer_read)(struct blob_writer *writer, void *buf, size_t size, uint64_t off,
			   size_t *got);
	int (*writer_truncate)(struct blob_writer *writer, uint64_t size);
	uint64_t (*writer_size)(struct blob_writer *writer);
	/* 0 saved, -EEXIST already there; fills hash either way. A backend
	 * that would need a round trip to a remote object store to tell may
	 * answer 0 for content stored there by someone else (S3: the upload
	 * finds out); its blob_retract then keeps that blob. With expect
	 * (not NULL), content whose hash is not expect is not saved: -EINVAL,
	 * hash filled, and the writer keeps its content. */
	int (*writer_commit)(struct blob_writer *writer, const uint8_t *expect,
			     uint8_t hash[BLOBFS_HASH_SIZE]);
	void (*writer_free)(struct blob_writer *writer);
};

extern const struct backend_ops local_backend;
extern const struct backend_ops memory_backend;
extern const struct backend_ops s3_backend;

/* ---- for backends: the base objects and the catalogue ---- */

/* Fills the base of a new database (location is copied). */
int blobdb_init(struct blobdb *db, const struct backend_ops *ops, const char *location,
		const struct blobdb_options *opts);
/* blobdb.c's mapping of a backend's result to a blob-db status (store.h):
 * for the files of the API itself (store_access.c). */
int blobdb_to_status(int ret);
/* Fills the base of a new store, refcount 1 (the catalogue's). */
int store_init(struct store *store, struct blobdb *db, const char *name);
/* Releases what store_init made (not the store itself). */
void store_fini(struct store *store);
/* Adds a store found at open to the catalogue (takes its reference).
 * -EEXIST if the name is taken. */
int blobdb_catalog_add(struct blobdb *db, struct store *store);
/* Takes a store removed elsewhere out of the catalogue (db_refresh), after
 * the backend set its destroyed flag; the catalogue's reference is
 * dropped. -ENOENT if it is not there. */
int blobdb_catalog_drop(struct blobdb *db, struct store *store);
/* Calls fn on every store in the catalogue, holding a reference to each but
 * no lock; returns the first error (after visiting all). */
int blobdb_each_store(struct blobdb *db, int (*fn)(struct store *, void *), void *arg);

#endif
