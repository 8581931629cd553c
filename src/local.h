/*
 * local.h - the local backend's internal header: the structs the engine's
 * files share and the functions they call across files. Not for the rest of
 * the program: the front end and the tools use store.h, backends use
 * backend.h.
 *
 * A store's state is guarded by store->lock unless a field says otherwise.
 * Lock order (docs/ARCHITECTURE.md): the catalogue's db->base.lock, then
 * db->flush_lock (never held while a store is flushed), store->flush_lock,
 * store->lock. Nothing here calls store_hold, store_close or
 * blobdb_each_store while holding a store's lock.
 */
#ifndef BLOBFS_LOCAL_H
#define BLOBFS_LOCAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "backend.h"
#include "format.h"

struct index;
struct io_ops;
struct index_entry;
struct hasher;
struct checked_record;
struct record_info;
struct statvfs;

/* Staging files hold the data where a one-record pack would: after the pack
 * header and the record header, both written at commit. */
#define STAGING_DATA_OFFSET (PACK_HEADER_SIZE + RECORD_HEADER_SIZE)
/* "<store>/<file>" paths relative to DATADIR/stores. */
#define PATH_SIZE 512
/* How often the compactor thread looks for a pack worth rewriting. */
#define COMPACT_INTERVAL_MS 2000
#define TOMBSTONE_SIZE (RECORD_HEADER_SIZE + RECORD_TRAILER_SIZE)

/* The time a new record carries (docs/FORMAT.md): the wall clock, seconds. */
static inline int64_t local_record_time(void)
{
	return (int64_t)time(NULL);
}

struct pack_info {
	uint32_t id;
	uint64_t size;       /* bytes in the file */
	uint64_t live_count; /* blob records the index points to */
	uint64_t live_bytes; /* their record sizes */
	uint64_t tombstone_count;
	uint64_t max_seq;    /* of any record in it */
	uint64_t last_offset, last_seq; /* its last record (0: none) */
	bool damaged;        /* has bytes that do not frame (fsck --repair's job) */
	bool appendable;     /* made to take appends (not a large blob's own pack,
			      * not a compaction's output): may become active */
	bool no_compact;     /* compacting it failed: not retried this mount */
	bool compacting;     /* being rewritten: must not become the active pack */
};

struct local_store {
	struct store base; /* base.destroyed: changed under lock */
	struct local_db *db;
	uint64_t serial; /* unique among the db's stores since it was opened */
	char trash_name[64]; /* where store_remove moved it */
	struct store_attr attr; /* owner, group, mode (local_meta.c; under lock) */

	pthread_mutex_t lock;
	/* One flush of the store at a time (the flusher thread, fsync of a
	 * directory and store_sync may all flush): two at once could let one
	 * write a marker for records whose files the other is still syncing. */
	pthread_mutex_t flush_lock;
	struct index *index;
	uint64_t next_seq;
	uint32_t next_pack_id;
	struct pack_info *packs; /* sorted by id */
	size_t pack_count, pack_capacity;
	int active_fd; /* the pack small blobs are appended to, or -1 */
	uint32_t active_id;

	/* Durability: every record with seq <= durable_seq is on stable
	 * storage (read and written with __atomic; changed under lock). */
	uint64_t durable_seq;
	bool marker_lost; /* at open: the marker was missing or damaged */
	unsigned marker_slot; /* the slot the next marker write goes to */
	int *sync_fds; /* written files to fsync and close at the next flush */
	size_t sync_fd_count, sync_fd_capacity;
	bool dir_dirty;      /* names in the store directory changed */
	bool flush_failed;   /* the last flush of this store failed */
	bool appended;       /* something was appended since the last flush */
	bool offline;        /* offline compaction: nothing else appends */
	uint64_t ckpt_seq;   /* next_seq as of the newest checkpoint (0: none) */
	uint32_t ckpt_next_pack_id; /* and next_pack_id */
	/* Records whose content was read and did not hash to their name
	 * (local_read.c): later opens of them fail, though a reader that read
	 * out of order or the kernel's page cache would not notice. The last
	 * BAD_RECORDS_KEPT, under lock. */
#define BAD_RECORDS_KEPT 64
	struct bad_record {
		uint8_t hash[BLOBFS_HASH_SIZE];
		uint32_t pack_id;
		uint64_t offset;
	} bad_records[BAD_RECORDS_KEPT];
	unsigned bad_record_count, bad_record_next;
};

struct local_db {
	struct blobdb base;
	const struct io_ops *io; /* every file-system call goes through it */
	int dirfd, stores_fd, trash_fd, quarantine_fd, lock_fd;
	uint64_t staging_counter;
	uint64_t min_free; /* bytes saves leave free on the disk */
	/* The writers' memory budget (local_staging.c): what every writer's
	 * buffer holds (mem_capacity) together, at most writer_memory_max;
	 * writer_memory_used is an atomic, taken under no lock. */
	uint64_t writer_memory_max;
	uint64_t writer_memory_used;
	unsigned owner_uid, owner_gid; /* of the data directory: the default owner */

	/* The flusher thread and group commit (flush_lock guards these). */
	pthread_mutex_t flush_lock;
	pthread_cond_t flush_wake, flush_done;
	pthread_t flusher, compactor;
	bool flusher_running, compactor_running, flusher_stop, flush_requested;
	pthread_cond_t compact_wake;
	uint64_t cycles_started, cycles_done;

	/* The digest threads and their queue of writers (local_digest.c;
	 * digest_lock guards these and the writers' digest_queued,
	 * digest_claimed, digest_next). */
	pthread_mutex_t digest_lock;
	pthread_cond_t digest_wake, digest_released;
	pthread_t *digesters;
	unsigned digester_count;
	bool digest_stop;
	struct local_writer *digest_head, *digest_tail;

	/* Readers hashing ahead on a thread of their own (local_ahead.c): at
	 * most ahead_max (the CPUs) at once; ahead_running is an atomic. */
	unsigned ahead_max, ahead_running;

	/* Records read whole whose content hashed to their name since the db
	 * was opened (local_checked.c); checked_lock, a leaf, guards them.
	 * store_serials is an atomic. */
	pthread_mutex_t checked_lock;
	struct checked_record *checked; /* CHECKED_SLOTS; NULL until the first */
	uint64_t store_serials;
};

struct local_reader {
	struct blob_reader base;
	struct local_store *store;
	int fd;
	uint64_t record_offset;
	uint64_t data_offset;
	uint32_t pack_id;
	unsigned chunk_shift;
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint32_t *crcs; /* the chunk table, checked against its trailer */
	/* A compressed record (REC3): its table, and where every
	 * ZSTART_EVERY-th stored chunk starts (the rest are summed from
	 * there); id names the reader in each thread's cache of the chunk it
	 * decoded last (local_read.c), which serves reads smaller than a
	 * chunk without a per-reader buffer. */
	struct zchunk *zchunks;
	uint64_t *zstarts;
	uint64_t id;

	/* A reader that reads the blob in order also checks its SHA-256
	 * before it returns the last bytes. */
	pthread_mutex_t lock;
	struct hasher *hasher; /* NULL when checked at open (local_checked.c) */
	uint64_t hashed; /* bytes fed to hasher, in order */
	uint64_t served; /* bytes of checked chunks read, in any order */
	bool corrupt;    /* the hash did not match: every later read fails too */
	bool checked;    /* the whole hash was compared (it matched unless corrupt) */
	bool end_served; /* a read reached the end of the blob */

	/* Hashing ahead (local_ahead.c): a large raw blob read from its start
	 * has its SHA-256 computed by a thread of its own while the reads go
	 * on; until it has finished, that thread alone uses hasher and moves
	 * hashed (lock guards these flags as well). */
	pthread_t ahead_thread;
	pthread_cond_t ahead_wake; /* served grew, or ahead_stop: monotonic clock */
	pthread_cond_t ahead_done; /* ahead_finished */
	bool ahead_tried;          /* a thread was considered (once per reader) */
	bool ahead;                /* the thread exists and is not joined */
	bool ahead_stop, ahead_finished;
};

struct local_writer {
	struct blob_writer base;
	struct local_store *store;
	pthread_mutex_t lock;
	/* The content lives in memory while it is small, has no hole (every
	 * byte of [0, size) was written) and fits the database's budget (mem,
	 * mem_capacity bytes charged to it), then in a staging file (fd),
	 * sparse where the content has holes, which a large blob's commit
	 * turns into its pack (fd -1 again, adopted_fd then reaches that
	 * pack). */
	uint8_t *mem;
	size_t mem_capacity;
	bool in_memory;
	int fd;
	int adopted_fd; /* that pack, kept open so its bytes stay reachable for
			 * a later write even if the blob is deleted meanwhile */
	char staging_name[64];
	uint64_t size;
	bool dirty; /* changed since the last commit */
	int error;  /* a failed write or truncate: the content is not what the
		     * writer wrote, so it must never be saved */
	bool committed;
	uint8_t committed_hash[BLOBFS_HASH_SIZE];

	/* The digest of [0, digested): SHA-256 and per-chunk CRC32Cs. */
	struct hasher *hasher;
	uint64_t digested;
	uint32_t chunk_crc; /* of the partial chunk at the end */
	uint32_t *crcs;     /* of the complete chunks */
	size_t crc_capacity;

	/* The background digest of a staging file (local_digest.c). Under
	 * lock: a digest thread is hashing [digested, digest_busy_end) with
	 * no lock held, and the digest is its meanwhile. */
	bool digest_busy;
	uint64_t digest_busy_end;
	pthread_cond_t digest_idle; /* with lock: digest_busy went false */
	/* Under db->digest_lock: on the queue, and taken by a digest thread
	 * (which the writer's free waits for). */
	bool digest_queued, digest_claimed;
	struct local_writer *digest_next;
};

/* local_write.c */
/* Extends the digest over the next len bytes of content. Lock held, or the
 * digest claimed (digest_busy). */
int writer_feed(struct local_writer *w, const uint8_t *buf, size_t len);
int writer_digest_reset(struct local_writer *w);

/* local_digest.c: hashing staging files off the request path */
int local_digest_start(struct local_db *db);
void local_digest_stop(struct local_db *db);
/* Queues the writer for its digest to catch up (nothing when there are no
 * digest threads: the caller then feeds inline). Lock held. */
void digest_later(struct local_writer *w);
/* Whether digest threads run (else writes hash inline). */
bool digest_enabled(const struct local_db *db);
/* Waits, the lock dropped meanwhile, until no digest thread hashes bytes at
 * from or beyond (0: any). Lock held. */
void digest_wait(struct local_writer *w, uint64_t from);
/* Takes the writer off the queue and waits for a digest thread that has it
 * (before it is freed). Lock not held. */
void digest_forget(struct local_writer *w);

/* local_db.c */
int local_check_space(struct local_db *db, uint64_t need);
int local_store_path(const struct local_store *store, const char *file, char out[PATH_SIZE]);
int local_pack_path(const struct local_store *store, uint32_t pack_id, char out[PATH_SIZE]);

/* local_packs.c */
struct pack_info *packtab_find(struct local_store *store, uint32_t id);
int packtab_add(struct local_store *store, uint32_t id, uint64_t size);
void packtab_remove(struct local_store *store, uint32_t id);
void packtab_account(struct local_store *store, const struct index_entry *e, int sign);
int packtab_active(struct local_store *store, uint64_t need, struct pack_info **out);
void packtab_drop_dead(struct local_store *store, uint32_t pack_id);
uint64_t packtab_dead_bytes(const struct pack_info *p);
bool packtab_compactable(const struct local_store *store, const struct pack_info *p);

/* The index entry of a record of pack pack_id. */
void packtab_entry(uint32_t pack_id, const struct record_info *rec, struct index_entry *e);
/* Before a save (store->lock held): -ENOENT for a destroyed store, -EEXIST
 * when the blob is already there, else 0. */
int packtab_check_absent(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE]);

/* local_meta.c: the store's meta file. Without one a store gets the data
 * directory's owner and group and STORE_MODE_MISSING; with a damaged one,
 * STORE_MODE_DAMAGED (docs/FORMAT.md). */
#define STORE_MODE_MISSING 0755
#define STORE_MODE_DAMAGED 0700
void local_meta_default(const struct local_db *db, bool damaged, struct store_attr *out);
/* Reads dir_fd's meta file into *out (the default, logged, when it is
 * missing or bad); 0. */
int local_meta_read(struct local_db *db, int dir_fd, const char *name, struct store_attr *out);
/* Replaces dir_fd's meta file atomically (meta.tmp, fsync, rename, fsync
 * of the directory). */
int local_meta_write(const struct io_ops *io, int dir_fd, const struct store_attr *attr);
int local_store_get_attr(struct store *base, struct store_attr *out);
int local_store_set_attr(struct store *base, const struct store_attr *attr);

/* local_recover.c */
int recover_store(struct local_store *store);

/* local_marker.c */
int durable_marker_write(struct local_store *store, uint64_t seq);
/* A new store's marker (seq 0, slot 0) in its directory dir_fd. */
int durable_marker_create(struct local_store *store, int dir_fd);
void durable_marker_read(struct local_store *store);

/* local_checkpoint.c */
int ckpt_load(struct local_store *store, int dir_fd, const uint32_t *ids,
				 size_t id_count);
int ckpt_write_one(struct store *base, void *arg);
/* A checkpoint in the background when enough was appended since the last
 * (the compactor thread calls it for each store); 0 when none was due. */
int ckpt_background_one(struct store *base, void *arg);
int local_db_checkpoint(struct blobdb *base);

/* local_flush.c */
void flush_later(struct local_store *store, int fd);
int flush_store(struct local_store *store);
/* The same, calling take(store, arg) under store->lock at the moment the
 * flush covers: when it returns 0, everything take saw is durable. */
int flush_store_taking(struct local_store *store,
		       void (*take)(struct local_store *store, void *arg), void *arg);
int local_db_sync(struct blobdb *base);
int local_db_start(struct blobdb *base);
void local_threads_stop(struct local_db *db);
int local_store_sync(struct store *base);

/* local_blobs.c */
int local_blob_info(struct store *base, const uint8_t hash[BLOBFS_HASH_SIZE],
			   uint64_t *length, int64_t *saved);
size_t local_blob_count(struct store *base);
size_t local_blob_list_batch(struct store *base, const uint8_t *after, struct blob_entry *out,
			     size_t max);
int append_index_record(struct local_store *store, uint32_t pack_id,
			      const struct record_info *rec);
int local_blob_delete(struct store *base, const uint8_t hash[BLOBFS_HASH_SIZE]);
int append_small_blob(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			    const void *data, uint64_t len, const uint32_t *crcs);

/* local_read.c */
int local_reader_open(struct store *base, const uint8_t hash[BLOBFS_HASH_SIZE],
			     struct blob_reader **out);
int local_reader_read(struct blob_reader *base, void *buf, size_t size, uint64_t off,
			     size_t *got);
void local_reader_close(struct blob_reader *base);

/* Records checked whole since the db was opened (local_checked.c): only
 * records of CHECKED_LENGTH_MIN bytes or more (below it, hashing costs less
 * than the request around it), never with opts.rehash. */
#define CHECKED_SLOTS 4096
#define CHECKED_LENGTH_MIN (UINT64_C(1) << 20)
bool local_checked_find(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			uint32_t pack_id, uint64_t offset, uint64_t length);
void local_checked_add(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
		       uint32_t pack_id, uint64_t offset, uint64_t length);
/* A record found not to hash to its name by a reader that opened it before
 * it was remembered (the pack changed in place since): forgotten, so that
 * it is refused when it has left the list of bad records too. */
void local_checked_forget(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			  uint32_t pack_id, uint64_t offset);
void local_checked_free(struct local_db *db);

/* Hashing ahead of a reader (local_ahead.c). init and destroy go with the
 * reader (destroy stops and joins a thread still running); start (with the
 * reader's lock held, nothing hashed yet) starts a thread when the blob is
 * worth it and a CPU is free; active (lock held) tells whether the thread
 * still owns the hash, and when `completes` (this read completes the blob)
 * first waits for it to finish. A thread that finished is joined there. */
void local_ahead_init(struct local_reader *reader);
void local_ahead_destroy(struct local_reader *reader);
void local_ahead_start(struct local_reader *reader);
bool local_ahead_active(struct local_reader *reader, bool completes);

/* local_write.c */
int local_writer_new(struct store *base, struct blob_writer **out);
void local_writer_free(struct blob_writer *base);
int local_writer_write(struct blob_writer *base, const void *buf, size_t size,
			      uint64_t off);
int local_writer_read(struct blob_writer *base, void *buf, size_t size, uint64_t off,
			     size_t *got);
int local_writer_truncate(struct blob_writer *base, uint64_t size);
uint64_t local_writer_size(struct blob_writer *base);
int local_writer_commit(struct blob_writer *base, const uint8_t *expect,
		uint8_t hash[BLOBFS_HASH_SIZE]);
int local_blob_save(struct store *base, const void *data, size_t len,
			   uint8_t hash[BLOBFS_HASH_SIZE]);

/* local_staging.c */
/* The most one writer keeps in memory; beyond it the content spills. */
#define WRITER_MEMORY_EACH (UINT64_C(1) << 20)
int writer_memory_take(struct local_db *db, uint64_t bytes);
void writer_memory_give(struct local_db *db, uint64_t bytes);
uint64_t local_db_writer_memory(struct blobdb *base);
int staging_create(struct local_writer *w);
void staging_discard(struct local_writer *w);
int writer_spill(struct local_writer *w);
int writer_mem_grow(struct local_writer *w, uint64_t end);
void writer_mem_trim(struct local_writer *w);
void writer_mem_free(struct local_writer *w);
int staging_copy_sparse(const struct io_ops *io, int in, uint64_t in_off, int out,
			uint64_t out_off, uint64_t len);

/* local_compress.c: compressed records (-o compress=zstd) */
struct zbuild {
	struct zchunk *chunks; /* the record's table */
	uint8_t *stored;       /* its stored chunks, back to back */
	uint64_t stored_len;
};
bool zbuild_wanted(const struct local_db *db, uint64_t len);
/* 1 with *zb filled when a REC3 of data is smaller than a raw record, 0
 * when not (nothing kept), or a negative errno. */
int zbuild_make(const struct local_db *db, const void *data, uint64_t len, struct zbuild *zb);
void zbuild_free(struct zbuild *zb);
struct zstaging {
	int fd;
	char name[64];
	struct zchunk *chunks;
	uint64_t stored;
};
int zstaging_make(struct local_store *store, int in, uint64_t len, struct zstaging *z);
void zstaging_discard(struct local_store *store, struct zstaging *z);

/* local_stats.c */
int local_store_stats(struct store *base, struct store_stats *out);
int local_db_statfs(struct blobdb *base, struct statvfs *st);

/* local_compact.c */
int local_store_compact(struct store *base, unsigned percent);
void compact_step(struct local_db *db);
int local_db_compact(struct blobdb *base, FILE *progress);



#endif
