/*
 * s3.h - the S3 backend's internal header: the structs its files share and
 * the calls between them.
 *
 *   s3_db.c      the database: the location, the cache directory and its two
 *                local data directories, opening and closing, the table of
 *                operations, statfs and syncs
 *   s3_stores.c  stores: the bucket's stores found at open, create, remove,
 *                owner and mode (the meta object)
 *   s3_blobs.c   blobs: info, delete, listings (the bucket's merged with the
 *                outbox), saves and writers (into the outbox), readers (the
 *                outbox, the read cache, or a verified fetch into it)
 *   s3_upload.c  the upload queue and its threads: retries with backoff, the
 *                blobs being uploaded (a delete waits for them), -o sync,
 *                multipart uploads resumed or aborted
 *   s3_created.c which blobs this mount's uploads created (what a retract
 *                may delete from the bucket)
 *   s3_known.c   what the object store said lately about a blob (exists,
 *                length, time, when it said so): answers younger than
 *                remote_ttl_ms are used instead of asking again
 *
 * The layout in the bucket and of the cache directory is docs/FORMAT.md's
 * "Stores in an S3 bucket". The local data directories are used through
 * store.h like any client would: this backend knows nothing of packs.
 *
 * Locks, in this order: evict_lock (an eviction walks the catalogue),
 * blobdb.c's db->lock, a store's save_lock, a store's lock, up_lock, the
 * known table's lock and the created table's (leaves: nothing is taken
 * under them); never the other way. So a save takes its upload's
 * reference to the store (store_hold) and the outbox's room
 * (s3_cache_reserve) before save_lock: a store's removal holds the
 * catalogue's lock while it waits for save_lock. Requests to the object store are made
 * holding none of them but a store's save_lock shared (blob_save's HEAD),
 * and, for store_create and store_remove (at most two requests each), the
 * catalogue's lock that blobdb.c holds around them.
 */
#ifndef BLOBFS_S3_H
#define BLOBFS_S3_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "backend.h"
#include "s3_client.h"
#include "s3_config.h"

/* The name of a store's meta object, under its prefix. */
#define S3_META_NAME ".blobfs-store"
#define S3_LAYOUT_NAME ".blobfs-layout"
#define S3_LAYOUT_TEXT "blobfs bucket layout 1\n"

/* ---- s3_known.c ---- */

struct s3_known_entry {
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint64_t store_id; /* which store it is about (s3_store.id) */
	uint64_t length;
	int64_t mtime;
	uint64_t when_ms; /* when the question was asked; 0: a free slot */
	bool exists;
};

struct s3_known {
	pthread_mutex_t lock;
	struct s3_known_entry *slots; /* direct-mapped by hash */
	size_t slot_count;            /* a power of two */
	unsigned ttl_ms;
};

int s3_known_init(struct s3_known *k, size_t slots, unsigned ttl_ms);
void s3_known_fini(struct s3_known *k);
/* 1 and *out filled when there is an answer younger than the ttl; 0. */
int s3_known_get(struct s3_known *k, uint64_t store_id, const uint8_t hash[BLOBFS_HASH_SIZE],
		 struct s3_known_entry *out);
/* Records an answer to a question asked at asked_ms (s3_now_ms() before the
 * request): an answer to a later question about the same blob is kept. */
void s3_known_put(struct s3_known *k, uint64_t store_id, const uint8_t hash[BLOBFS_HASH_SIZE],
		  bool exists, uint64_t length, int64_t mtime, uint64_t asked_ms);
uint64_t s3_now_ms(void);

/* ---- the database ---- */

struct s3_upload; /* s3_upload.c */

/* s3_created.c: which blobs this mount's uploads created (the object was not
 * there before): the last 65,536, the oldest replaced first. */
struct s3_created_entry;
struct s3_created {
	pthread_mutex_t lock;
	struct s3_created_entry *entries;
	uint32_t *buckets;
	uint32_t next;
};
int s3_created_init(struct s3_created *c);
void s3_created_fini(struct s3_created *c);
void s3_created_add(struct s3_created *c, uint64_t store_id, const uint8_t hash[BLOBFS_HASH_SIZE]);
/* Removes the record of (store_id, hash): whether there was one. */
bool s3_created_take(struct s3_created *c, uint64_t store_id, const uint8_t hash[BLOBFS_HASH_SIZE]);

/* A slot's number for (store, blob) in a table of either (s3_upload.c,
 * s3_created.c): the hash's leading bits, spread by the store's id. */
static inline uint64_t s3_slot_mix(uint64_t store_id, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint64_t bits;

	memcpy(&bits, hash, sizeof(bits));
	return bits ^ store_id * 0x9e3779b97f4a7c15u;
}

struct s3_db {
	struct blobdb base;
	struct s3_config config;
	struct s3_client *client;
	char *cache_dir;
	/* Blobs saved through this mount and not yet acknowledged by the object
	 * store (the journal), and copies of blobs read (evicted oldest first):
	 * two local data directories, one local store per store. */
	struct blobdb *outbox, *clean;
	uint64_t cache_size;
	bool sync_uploads;
	/* The object store keeps an object a PUT with If-None-Match: * finds
	 * (asked at open, s3_db.c): an upload then learns in the same request
	 * whether it created the blob; otherwise it asks first (HEAD). */
	bool put_if_absent;
	bool unreachable; /* atomic: the last request found no object store */
	struct s3_known known;
	struct s3_created created; /* which blobs the uploads created */
	/* s3_cache.c: bytes of blobs in each local directory (atomics), and
	 * one eviction at a time; outbox_reserved, the room saves took and
	 * have not yet used or given back (s3_cache_reserve), changes only
	 * under evict_lock, so that a recount of outbox_bytes keeps it. */
	uint64_t outbox_bytes, clean_bytes, outbox_reserved;
	pthread_mutex_t evict_lock;
	uint64_t next_store_id; /* atomic */

	/* s3_upload.c: under up_lock. */
	pthread_mutex_t up_lock;
	pthread_cond_t up_wake; /* work for the uploaders */
	pthread_cond_t up_done; /* an upload ended (a delete or a sync waits) */
	struct s3_upload **up_table;              /* every entry, by (store, blob) */
	struct s3_upload *queue_head, *queue_tail; /* ready, in order */
	struct s3_upload *waiting;                 /* to retry, once due */
	uint64_t waiting_next_ms;                  /* the first of them due */
	size_t queued;                             /* entries in the table */
	pthread_t *uploaders;
	unsigned uploader_count;
	bool up_stop; /* atomic: read by transfers under way */
	uint64_t uploaded, upload_failures; /* counts, for the log and tests */
};

struct s3_store {
	struct store base;
	/* Unique in the process (a store made again under the same name, even
	 * at the same address, is another): the key of its known answers. */
	uint64_t id;
	char *key_prefix; /* "[PREFIX/]S/" */
	/* The store of the same name in each local data directory. */
	struct store *outbox, *clean;
	pthread_mutex_t lock;
	/* Saves hold it shared, a removal exclusive: nothing is saved into a
	 * store between its emptiness check and its removal. */
	pthread_rwlock_t save_lock;
	struct store_attr attr; /* under lock */
	uint64_t listed_count;  /* blobs the last full listing found (under lock) */
	uint64_t listed_ms;     /* when (s3_now_ms; 0: never) */
};

#define to_s3db(b) ((struct s3_db *)(b))
#define to_s3store(b) ((struct s3_store *)(b))
#define s3store_db(s) to_s3db((s)->base.db)

/* s3_db.c: the key of a blob, "[PREFIX/]S/<hex>" (S3_KEY_MAX + 1 bytes). */
void s3_blob_key(const struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE], char *out,
		 size_t size);
/* Logs a failed request: a warning with the client's last error, except
 * that while the object store does not answer (s3_transient errors) only
 * the first failure is logged, and s3_log_answered logs when it answers
 * again: one line per event, not one per request. */
void s3_log_failure(struct s3_db *db, const char *what, const char *key, int err);
void s3_log_answered(struct s3_db *db);

/* s3_stores.c */
int s3_stores_load(struct s3_db *db);
void s3_db_refresh(struct blobdb *db);
int s3_store_create(struct blobdb *db, const char *name, const struct store_attr *attr,
		    struct store **out);
int s3_store_get_attr(struct store *store, struct store_attr *out);
int s3_store_set_attr(struct store *store, const struct store_attr *attr);
int s3_store_remove(struct store *store, bool only_if_empty);
void s3_store_purge(struct store *store);
void s3_store_free(struct store *store);
int s3_store_stats(struct store *store, struct store_stats *out);

/* s3_blobs.c */
int s3_blob_claim(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
int s3_blob_info(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t *length,
		 int64_t *saved);
int s3_blob_delete(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
int s3_blob_retract(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);
size_t s3_blob_list_batch(struct store *store, const uint8_t *after, struct blob_entry *out,
			  size_t max);
size_t s3_blob_count(struct store *store);
int s3_blob_save(struct store *store, const void *data, size_t len,
		 uint8_t hash[BLOBFS_HASH_SIZE]);
int s3_reader_open(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
		   struct blob_reader **out);
int s3_reader_read(struct blob_reader *reader, void *buf, size_t size, uint64_t off,
		   size_t *got);
void s3_reader_close(struct blob_reader *reader);
int s3_writer_new(struct store *store, struct blob_writer **out);
int s3_writer_write(struct blob_writer *writer, const void *buf, size_t size, uint64_t off);
int s3_writer_read(struct blob_writer *writer, void *buf, size_t size, uint64_t off,
		   size_t *got);
int s3_writer_truncate(struct blob_writer *writer, uint64_t size);
uint64_t s3_writer_size(struct blob_writer *writer);
int s3_writer_commit(struct blob_writer *writer, const uint8_t *expect,
		     uint8_t hash[BLOBFS_HASH_SIZE]);
void s3_writer_free(struct blob_writer *writer);

/* s3_cache.c */
/* Counts what the outbox and the read cache hold (at open). */
int s3_cache_count(struct s3_db *db);
/* Makes room for bytes more: evicts from the read cache when the bound
 * would be passed; -ENOSPC when for_outbox and the outbox alone would pass
 * it. */
int s3_cache_make_room(struct s3_db *db, uint64_t bytes, bool for_outbox);
/* Makes room in the outbox for bytes more and reserves it, in one step (so
 * that saves at once cannot all pass the check): -ENOSPC when the outbox
 * alone would pass the bound. The room is then used (counted in the
 * outbox's bytes) or given back, once. Takes evict_lock and the
 * catalogue's lock: never called holding a store's lock. */
int s3_cache_reserve(struct s3_db *db, uint64_t bytes);
void s3_cache_reserve_end(struct s3_db *db, uint64_t bytes, bool used);
/* Counts bytes in (or, negative, out of) the outbox or the read cache. */
void s3_cache_add(struct s3_db *db, bool outbox, int64_t bytes);

/* s3_upload.c */
int s3_upload_init(struct s3_db *db);
int s3_upload_start(struct s3_db *db);
void s3_upload_stop(struct s3_db *db);
/* Queues the upload of a blob of the store's outbox. *held is a reference
 * to the store that the caller took before any lock of its own (store_hold
 * takes the catalogue's lock, which comes first): the queued upload keeps
 * it until it is done and sets *held to NULL; otherwise (the blob already
 * queued, or -ENOMEM) it is left for the caller to close once it has let
 * go of its locks. */
int s3_upload_queue(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE], struct store **held);
/* Queues every blob of every outbox store (at start: what a killed daemon
 * left). */
int s3_upload_queue_outbox(struct s3_db *db);
/* Takes the blob out of the queue and waits until no upload of it is under
 * way (a delete's first step). */
void s3_upload_cancel(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE]);
/* Cancels every upload of the store (its removal's first step). */
void s3_upload_cancel_store(struct s3_store *s);
/* Waits until the blob is uploaded (0), or timeout_ms passed (-EIO; it
 * stays queued). */
int s3_upload_wait(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE], unsigned timeout_ms);

#endif
