/*
 * store.c - the blob database on a data directory.
 *
 * Layout (docs/FORMAT.md): DATADIR/lock, DATADIR/stores/<name>/ holding the
 * store's pack files and the staging files of blobs being written, and
 * DATADIR/trash/ where a destroyed store is moved (atomically) before its
 * files are removed. Each store keeps its index in memory, rebuilt from its
 * packs when the database is opened: the record with the highest sequence
 * number for a hash decides whether the blob exists.
 *
 * Small blobs are appended to the store's active pack; a blob of
 * large_blob_min bytes or more is written straight into a staging file laid
 * out as a one-record pack and renamed into place, so its bytes are written
 * once.
 */
#include "backend.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "crc32c.h"
#include "io.h"
#include "hash.h"
#include "index.h"
#include "log.h"
#include "pack.h"

/* Staging files hold the data where a one-record pack would: after the pack
 * header and the record header, both written at commit. */
#define STAGING_DATA_OFFSET (PACK_HEADER_SIZE + RECORD_HEADER_SIZE)
#define COPY_BUFFER_SIZE (1u << 20)
#define MARKER_NAME "durable"
#define COMPACT_MARGIN (UINT64_C(64) << 10)
#define COMPACT_INTERVAL_MS 2000
#define CHECKPOINT_NAME "checkpoint"
#define CHECKPOINT_STAGING_NAME "checkpoint.tmp"
/* Incoming content up to this size stays in the daemon's memory: a small
 * blob then costs no staging file at all. */
#define WRITER_MEMORY_MAX (UINT64_C(1) << 20)
#define PATH_SIZE 512

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
	char trash_name[64]; /* where store_remove moved it */

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
};

struct local_db {
	struct blobdb base;
	int dirfd, stores_fd, trash_fd, quarantine_fd, lock_fd;
	uint64_t staging_counter;
	uint64_t min_free; /* bytes saves leave free on the disk */

	/* The flusher thread and group commit (flush_lock guards these). */
	pthread_mutex_t flush_lock;
	pthread_cond_t flush_wake, flush_done;
	pthread_t flusher, compactor;
	bool flusher_running, compactor_running, flusher_stop, flush_requested;
	pthread_cond_t compact_wake;
	uint64_t cycles_started, cycles_done;
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

	/* A reader that reads the blob in order also checks its SHA-256
	 * before it returns the last bytes. */
	pthread_mutex_t lock;
	struct hasher *hasher;
	uint64_t hashed; /* bytes fed to hasher, in order */
	bool corrupt;    /* the hash did not match: every later read fails too */
};

struct local_writer {
	struct blob_writer base;
	struct local_store *store;
	pthread_mutex_t lock;
	/* The content lives in memory while it is small (mem, not yet spilled),
	 * then in a staging file (fd), which a large blob's commit turns into
	 * its pack (fd -1 again, adopted_fd then reaches that pack). */
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
};

/* -ENOSPC when writing need more bytes would eat into the reserve that
 * deletes and compaction live on. */
static int check_space(struct local_db *db, uint64_t need)
{
	struct statvfs st;
	uint64_t avail;

	if (db->min_free == 0 || fstatvfs(db->stores_fd, &st) < 0)
		return 0;
	avail = (uint64_t)st.f_bavail * st.f_frsize;
	return avail < need || avail - need < db->min_free ? -ENOSPC : 0;
}

/* Hands a written file to the next flush, which fsyncs and closes it.
 * Called with store->lock held. On failure the file is synced here. */
static void store_sync_later(struct local_store *store, int fd)
{
	if (store->sync_fd_count == store->sync_fd_capacity) {
		size_t capacity = store->sync_fd_capacity ? 2 * store->sync_fd_capacity : 8;
		int *fds = realloc(store->sync_fds, capacity * sizeof(*fds));
		if (!fds) {
			if (io->fsync(fd) < 0)
				log_error("store %s: fsync: %s", store->base.name, strerror(errno));
			io->close(fd);
			return;
		}
		store->sync_fds = fds;
		store->sync_fd_capacity = capacity;
	}
	store->sync_fds[store->sync_fd_count++] = fd;
}

/* Copies bytes [from, to) of a pack into DATADIR/quarantine/<store>/ before
 * they are cut off, so that nothing is dropped unseen. */
static int quarantine_bytes(struct local_store *store, int fd, uint32_t pack_id, uint64_t from,
			    uint64_t to)
{
	char name[PATH_SIZE], pack[PACK_NAME_SIZE];
	int out = -1, ret;

	if (io->mkdirat(store->db->quarantine_fd, store->base.name, 0700) < 0 && errno != EEXIST)
		return -errno;
	pack_name(pack_id, pack);
	snprintf(name, sizeof(name), "%s/%s.%" PRIu64 "-%" PRIu64 ".%ld", store->base.name, pack,
		 from, to, (long)time(NULL));
	out = io->openat(store->db->quarantine_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			 0600);
	ret = out < 0 ? -errno : copy_file_bytes(fd, from, out, 0, to - from);
	if (ret == 0 && io->fsync(out) < 0)
		ret = -errno;
	if (out >= 0)
		io->close(out);
	if (ret == 0)
		log_warning("store %s: %s bytes %" PRIu64 "..%" PRIu64 " kept in %s/quarantine/%s",
			    store->base.name, pack, from, to, store->db->base.location, name);
	return ret;
}

/* Cuts a pack at `at`, keeping the bytes cut in quarantine first. */
static int store_cut_pack(struct local_store *store, int fd, uint32_t pack_id, uint64_t at,
			  uint64_t size, const char *why)
{
	char pack[PACK_NAME_SIZE];
	int ret;

	pack_name(pack_id, pack);
	log_warning("store %s: %s: %s at offset %" PRIu64 " (%" PRIu64 " bytes): cut off",
		    store->base.name, pack, why, at, size - at);
	ret = quarantine_bytes(store, fd, pack_id, at, size);
	if (ret == 0 && io->ftruncate(fd, (off_t)at) < 0)
		ret = -errno;
	if (ret == 0 && io->fsync(fd) < 0)
		ret = -errno;
	if (ret < 0)
		log_error("store %s: cannot cut %s: %s", store->base.name, pack, strerror(-ret));
	return ret;
}

/* "<store>/<file>" relative to stores_fd. */
static int store_path(const struct local_store *store, const char *file, char out[PATH_SIZE])
{
	int n = snprintf(out, PATH_SIZE, "%s/%s", store->base.name, file);
	return n < 0 || n >= PATH_SIZE ? -ENAMETOOLONG : 0;
}

static int store_pack_path(const struct local_store *store, uint32_t pack_id, char out[PATH_SIZE])
{
	char name[PACK_NAME_SIZE];

	pack_name(pack_id, name);
	return store_path(store, name, out);
}

static int fsync_dir_at(int dirfd, const char *path)
{
	int fd = io->openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (io->fsync(fd) < 0)
		ret = -errno;
	io->close(fd);
	return ret;
}

/* ---- the pack table of a store ---- */

static struct pack_info *pack_find(struct local_store *store, uint32_t id)
{
	size_t lo = 0, hi = store->pack_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (store->packs[mid].id == id)
			return &store->packs[mid];
		if (store->packs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int pack_add(struct local_store *store, uint32_t id, uint64_t size)
{
	size_t i = store->pack_count;

	if (store->pack_count == store->pack_capacity) {
		size_t capacity = store->pack_capacity ? 2 * store->pack_capacity : 16;
		struct pack_info *packs = realloc(store->packs, capacity * sizeof(*packs));
		if (!packs)
			return -ENOMEM;
		store->packs = packs;
		store->pack_capacity = capacity;
	}
	while (i > 0 && store->packs[i - 1].id > id) {
		store->packs[i] = store->packs[i - 1];
		i--;
	}
	store->packs[i] = (struct pack_info){ .id = id, .size = size };
	store->pack_count++;
	if (id >= store->next_pack_id)
		store->next_pack_id = id + 1;
	return 0;
}

static void pack_remove(struct local_store *store, uint32_t id)
{
	struct pack_info *p = pack_find(store, id);

	if (!p)
		return;
	memmove(p, p + 1, (size_t)(store->packs + store->pack_count - (p + 1)) * sizeof(*p));
	store->pack_count--;
}

static void pack_account(struct local_store *store, const struct index_entry *e, int sign)
{
	struct pack_info *p = pack_find(store, e->pack_id);
	/* blobfs writes every record with the default chunk size; the index
	 * does not keep it. */
	uint64_t bytes = record_size(e->length, CHUNK_SHIFT_DEFAULT);

	if (!p)
		return;
	if (sign > 0) {
		p->live_count++;
		p->live_bytes += bytes;
	} else {
		p->live_count--;
		p->live_bytes -= bytes;
	}
}

/* ---- loading a store from its packs ---- */

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The seq of the record at offset in a pack of the store. */
static int store_record_seq(struct local_store *store, uint32_t pack_id, uint64_t offset, uint64_t *seq)
{
	uint8_t header[RECORD_HEADER_SIZE];
	struct record_info rec;
	char path[PATH_SIZE];
	int fd, ret = store_pack_path(store, pack_id, path);

	if (ret < 0)
		return ret;
	fd = io->openat(store->db->stores_fd, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = pread_full(fd, header, sizeof(header), offset);
	if (ret == 0)
		ret = record_header_decode(header, offset, &rec);
	io->close(fd);
	if (ret == 0)
		*seq = rec.seq;
	return ret;
}

/* Applies one record to the index being rebuilt: the newest seq wins. */
static int store_replay_record(struct local_store *store, uint32_t pack_id,
			       const struct record_info *rec)
{
	struct index_entry old, entry = {
		.offset = rec->offset,
		.length = rec->length,
		.seq = rec->seq,
		.pack_id = pack_id,
		.kind = (uint8_t)rec->kind,
		.chunk_shift = (uint8_t)rec->chunk_shift,
	};

	memcpy(entry.hash, rec->hash, BLOBFS_HASH_SIZE);
	if (rec->seq >= store->next_seq)
		store->next_seq = rec->seq + 1;
	/* The index does not keep seq: a hash seen twice (a delete and a new
	 * save, or a copy left by an interrupted compaction) is rare, and then
	 * the seq of the record already indexed is read back. */
	if (index_lookup(store->index, rec->hash, &old) == 0) {
		uint64_t old_seq = 0;
		int ret = store_record_seq(store, old.pack_id, old.offset, &old_seq);
		if (ret < 0)
			return ret;
		if (old_seq >= rec->seq)
			return 0;
	}
	if (rec->offset > INDEX_OFFSET_MAX)
		return -EFBIG;
	return index_put(store->index, &entry);
}

/* 1 when a pack whose header is bad holds a record the durable marker
 * vouches for (so its header was synced once and got damaged later), 0 when
 * everything in it is newer than the marker. */
static int headless_pack_vouched(struct local_store *store, int fd, uint32_t pack_id)
{
	struct pack_scan scan;
	struct record_info rec;
	int ret = pack_scan_open_headless(&scan, fd, pack_id);

	while (ret >= 0 && (ret = pack_scan_next(&scan, &rec)) != 0) {
		if (ret == 1 && rec.seq <= store->durable_seq)
			return 1;
		if (ret == -EBADMSG)
			ret = 0;
	}
	return ret;
}

/* Moves a whole file of the store into DATADIR/quarantine/<store>/. */
static int quarantine_file(struct local_store *store, const char *path, uint32_t pack_id)
{
	char name[PATH_SIZE], pack[PACK_NAME_SIZE];
	int ret = 0;

	if (io->mkdirat(store->db->quarantine_fd, store->base.name, 0700) < 0 && errno != EEXIST)
		ret = -errno;
	pack_name(pack_id, pack);
	snprintf(name, sizeof(name), "%s/%s.%ld", store->base.name, pack, (long)time(NULL));
	if (ret == 0 && io->renameat(store->db->stores_fd, path, store->db->quarantine_fd, name) < 0)
		ret = -errno;
	if (ret == 0)
		ret = fsync_dir_at(store->db->stores_fd, store->base.name);
	if (ret == 0 && io->fsync(store->db->quarantine_fd) < 0)
		ret = -errno;
	if (ret == 0)
		log_warning("store %s: %s moved to %s/quarantine/%s", store->base.name, pack,
			    store->db->base.location, name);
	else
		log_error("store %s: cannot move %s to quarantine: %s", store->base.name, pack,
			  strerror(-ret));
	return ret;
}

/*
 * Recovery of one pack at open. Records the durable marker vouches for are
 * taken on their framing; newer ones may have been torn by a power cut, so
 * their chunk checksums are read too, and the first that fails ends the pack
 * (everything after it is newer still, so none of it was synced). A torn
 * tail is cut off; a damaged record in the middle is skipped and reported.
 */
static int store_scan_pack(struct local_store *store, uint32_t pack_id, uint64_t start)
{
	char path[PATH_SIZE], hex[HASH_HEX_SIZE + 1];
	uint64_t tombstones = 0, max_seq = 0, last_offset = 0, last_seq = 0, records = 0;
	uint64_t first_length = 0;
	bool damaged = false;
	struct pack_scan scan;
	struct record_info rec;
	int fd = -1, ret;

	ret = store_pack_path(store, pack_id, path);
	if (ret < 0)
		goto out;
	fd = io->openat(store->db->stores_fd, path, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		log_error("store %s: cannot open %s: %s", store->base.name, path, strerror(-ret));
		goto out;
	}
	ret = pack_scan_open(&scan, fd, pack_id);
	if (ret == -EBADMSG) {
		/* A header that never reached the disk (a power cut right after
		 * the pack was made) or that was damaged later. */
		damaged = true;
		/* Without a marker nothing tells synced from not: use the records
		 * rather than put the whole pack aside. */
		ret = store->marker_lost ? 1 : headless_pack_vouched(store, fd, pack_id);
		if (ret == 0) {
			log_warning("store %s: %s has no valid header and nothing in it was synced",
				    store->base.name, path);
			ret = quarantine_file(store, path, pack_id);
			goto out;
		}
		if (ret < 0)
			goto out;
		log_error("store %s: %s has a damaged header; its records are used (run blobfs "
			  "fsck --repair)", store->base.name, path);
		ret = pack_scan_open_headless(&scan, fd, pack_id);
	}
	if (ret < 0) {
		log_error("store %s: reading %s: %s", store->base.name, path, strerror(-ret));
		goto out;
	}
	if (start > PACK_HEADER_SIZE) /* the checkpoint accounts for what precedes */
		scan.pos = scan.good_end = start;
	/*
	 * A pack is a synced prefix followed by what was appended since the
	 * last flush, whose records all have seq > durable_seq. Damage followed
	 * by such a record, or by nothing, lies in that unsynced part: it is the
	 * torn end of an interrupted append and is cut off with everything after
	 * it. Damage followed by a vouched record is real damage: skipped here,
	 * reported, and left for fsck --repair.
	 */
	bool have_damage = false;
	uint64_t damage_start = 0, damage_end = 0;
	while ((ret = pack_scan_next(&scan, &rec)) != 0) {
		const char *problem;
		if (ret == -EBADMSG && !have_damage) {
			have_damage = true;
			damage_start = scan.bad_start;
		}
		if (ret == -EBADMSG && scan.bad_end == scan.file_size) {
			ret = store_cut_pack(store, fd, pack_id, damage_start, scan.file_size,
					     "torn tail");
			if (ret < 0)
				goto out;
			scan.file_size = damage_start;
			have_damage = false;
			break;
		}
		if (ret == -EBADMSG) {
			damage_end = scan.bad_end;
			continue;
		}
		if (ret < 0) {
			log_error("store %s: reading %s: %s", store->base.name, path, strerror(-ret));
			goto out;
		}
		/* Without a marker nothing tells synced from not: damage is
		 * skipped, never taken for a torn append (a store always has a
		 * marker from its creation, so losing it is itself damage). */
		if (have_damage && rec.seq > store->durable_seq && !store->marker_lost) {
			ret = store_cut_pack(store, fd, pack_id, damage_start, scan.file_size,
					     "torn append");
			if (ret < 0)
				goto out;
			scan.file_size = damage_start;
			have_damage = false;
			break;
		}
		if (have_damage) {
			log_error("store %s: %s: damaged bytes %" PRIu64 "..%" PRIu64
				  " skipped (run blobfs fsck)",
				  store->base.name, path, damage_start, damage_end);
			damaged = true;
			have_damage = false;
		}
		if (rec.seq > store->durable_seq && rec.kind == RECORD_BLOB) {
			ret = pack_verify_record(fd, &rec, NULL, &problem);
			if (ret == -EBADMSG && store->marker_lost) {
				hash_to_hex(rec.hash, hex);
				log_error("store %s: %s: blob %s at offset %" PRIu64 " is damaged (%s); "
					  "skipped (run blobfs fsck)", store->base.name, path, hex,
					  rec.offset, problem);
				damaged = true;
				continue;
			}
			if (ret == -EBADMSG) {
				hash_to_hex(rec.hash, hex);
				log_warning("store %s: blob %s (seq %" PRIu64 ") was not synced before "
					    "the last stop and is incomplete (%s)",
					    store->base.name, hex, rec.seq, problem);
				ret = store_cut_pack(store, fd, pack_id, rec.offset, scan.file_size,
						     "unsynced record");
				if (ret < 0)
					goto out;
				scan.file_size = rec.offset;
				break;
			}
			if (ret < 0)
				goto out;
		}
		if (rec.kind == RECORD_TOMBSTONE)
			tombstones++;
		if (rec.seq > max_seq)
			max_seq = rec.seq;
		last_offset = rec.offset;
		last_seq = rec.seq;
		if (records++ == 0)
			first_length = rec.kind == RECORD_BLOB ? rec.length : 0;
		ret = store_replay_record(store, pack_id, &rec);
		if (ret < 0) {
			hash_to_hex(rec.hash, hex);
			log_error("store %s: indexing %s: %s", store->base.name, hex, strerror(-ret));
			goto out;
		}
	}
	struct pack_info *p = pack_find(store, pack_id); /* from the checkpoint */
	if (!p) {
		ret = pack_add(store, pack_id, scan.file_size);
		p = ret == 0 ? pack_find(store, pack_id) : NULL;
	}
	if (p) {
		p->size = scan.file_size;
		p->tombstone_count += tombstones;
		if (max_seq > p->max_seq)
			p->max_seq = max_seq;
		if (last_offset) {
			p->last_offset = last_offset;
			p->last_seq = last_seq;
		}
		p->damaged |= damaged;
		/* A scan from the start decides; a tail scan keeps what the
		 * checkpoint said. A large blob's own pack holds one record. */
		if (start <= PACK_HEADER_SIZE)
			p->appendable = records != 1 ||
					first_length < store->db->base.opts.large_blob_min;
	}
	/* Records the marker does not vouch for were verified just now; make
	 * them durable before a new marker says so. */
	if (ret == 0 && max_seq > store->durable_seq && io->fsync(fd) < 0) {
		ret = -errno;
		log_error("store %s: fsync %s: %s", store->base.name, path, strerror(-ret));
	}
out:
	if (fd >= 0)
		io->close(fd);
	return ret;
}

/* The marker file has two slots written in turn: a write torn by a power cut
 * spoils one, and the other still vouches for what it did. */
static int store_write_marker(struct local_store *store, uint64_t seq)
{
	uint8_t buf[MARKER_SIZE];
	char path[PATH_SIZE];
	int fd, ret;

	marker_encode(seq, buf);
	ret = store_path(store, MARKER_NAME, path);
	if (ret < 0)
		return ret;
	fd = io->openat(store->db->stores_fd, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = pwrite_full(fd, buf, sizeof(buf), (uint64_t)store->marker_slot * MARKER_SIZE);
	store->marker_slot ^= 1;
	if (ret == 0 && io->fsync(fd) < 0)
		ret = -errno;
	io->close(fd);
	return ret;
}

/* Reads the store's durable marker; a missing or damaged one vouches for
 * nothing, so that every record gets its checksums read. */
static void store_read_marker(struct local_store *store)
{
	uint8_t buf[2 * MARKER_SIZE];
	char path[PATH_SIZE];
	ssize_t got = 0;
	int fd;

	store->durable_seq = 0;
	store->marker_lost = true;
	if (store_path(store, MARKER_NAME, path) < 0)
		return;
	fd = io->openat(store->db->stores_fd, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd >= 0)
		got = io->pread(fd, buf, sizeof(buf), 0);
	for (unsigned slot = 0; slot < 2; slot++) {
		uint64_t seq;
		if (got >= (ssize_t)((slot + 1) * MARKER_SIZE) &&
		    marker_decode(buf + slot * MARKER_SIZE, &seq) == 0 &&
		    (store->marker_lost || seq > store->durable_seq)) {
			store->durable_seq = seq;
			store->marker_lost = false;
			store->marker_slot = slot ^ 1; /* overwrite the older one next */
		}
	}
	if (store->marker_lost)
		log_warning("store %s: durable marker %s; checking every record, and damage is "
			    "skipped rather than cut", store->base.name, fd < 0 ? "missing" : "unreadable");
	if (fd >= 0)
		io->close(fd);
}

/*
 * Loads the store's checkpoint, all or nothing: every pack it covers must
 * still be there, as long, with its last covered record in place. Then its
 * entries are the index and only what follows each covered prefix is
 * scanned. Otherwise it is ignored and every pack is scanned: a partial use
 * could let a pack scanned whole resurrect a blob whose tombstone only the
 * checkpoint accounted for.
 */
static int store_load_checkpoint(struct local_store *store, int dir_fd, const uint32_t *ids,
				 size_t id_count)
{
	struct checkpoint_header h;
	struct checkpoint_pack *packs = NULL;
	int ret = checkpoint_read(dir_fd, CHECKPOINT_NAME, &h, &packs, store->index);
	bool usable = ret == 0;

	if (ret < 0 && ret != -ENOENT)
		log_warning("store %s: index checkpoint unusable (%s); scanning every pack",
			    store->base.name, strerror(-ret));
	(void)ids;
	(void)id_count;
	if (usable && !checkpoint_usable(dir_fd, &h, packs))
		usable = false;
	if (!usable) {
		if (ret == 0) {
			log_info("store %s: index checkpoint is out of date; scanning every pack",
				 store->base.name);
			io->unlinkat(dir_fd, CHECKPOINT_NAME, 0);
		}
		index_free(store->index);
		store->index = NULL;
		ret = index_new(&store->index);
		goto out;
	}
	for (uint32_t i = 0; ret == 0 && i < h.pack_count; i++) {
		ret = pack_add(store, packs[i].id, packs[i].size);
		if (ret == 0) {
			struct pack_info *p = pack_find(store, packs[i].id);
			p->tombstone_count = packs[i].tombstone_count;
			p->max_seq = packs[i].max_seq;
			p->last_offset = packs[i].last_offset;
			p->last_seq = packs[i].last_seq;
			p->damaged = packs[i].damaged;
			p->appendable = packs[i].appendable;
		}
	}
	if (h.next_seq > store->next_seq)
		store->next_seq = h.next_seq;
	if (h.next_pack_id > store->next_pack_id)
		store->next_pack_id = h.next_pack_id;
out:
	free(packs);
	return ret;
}

/* Writes the index as the store's checkpoint (at a clean close, after the
 * last flush: everything it covers is durable). */
static int store_write_checkpoint(struct local_store *store)
{
	struct checkpoint_header h = { 0 };
	struct checkpoint_pack *packs = NULL;
	int dir_fd = -1, ret = 0;

	pthread_mutex_lock(&store->lock);
	if (store->base.destroyed || store->flush_failed)
		goto out;
	ret = -ENOMEM;
	packs = calloc(store->pack_count ? store->pack_count : 1, sizeof(*packs));
	if (!packs)
		goto out;
	for (size_t i = 0; i < store->pack_count; i++) {
		struct pack_info *p = &store->packs[i];
		packs[i] = (struct checkpoint_pack){ .id = p->id, .size = p->size,
			.tombstone_count = p->tombstone_count, .max_seq = p->max_seq,
			.last_offset = p->last_offset, .last_seq = p->last_seq,
			.damaged = p->damaged, .appendable = p->appendable };
	}
	h.pack_count = (uint32_t)store->pack_count;
	h.entry_count = index_count(store->index);
	h.next_seq = store->next_seq;
	h.next_pack_id = store->next_pack_id;
	dir_fd = io->openat(store->db->stores_fd, store->base.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	ret = dir_fd < 0 ? -errno : 0;
	if (ret == 0)
		ret = checkpoint_write(dir_fd, CHECKPOINT_STAGING_NAME, &h, packs, store->index);
	if (ret == 0 && io->renameat(dir_fd, CHECKPOINT_STAGING_NAME, dir_fd, CHECKPOINT_NAME) < 0)
		ret = -errno;
	if (ret == 0 && io->fsync(dir_fd) < 0)
		ret = -errno;
	if (ret < 0) {
		log_error("store %s: cannot write its index checkpoint: %s", store->base.name,
			  strerror(-ret));
		if (dir_fd >= 0)
			io->unlinkat(dir_fd, CHECKPOINT_STAGING_NAME, 0);
	}
out:
	pthread_mutex_unlock(&store->lock);
	if (dir_fd >= 0)
		io->close(dir_fd);
	free(packs);
	return ret;
}

static int checkpoint_one(struct store *base, void *arg)
{
	struct local_store *store = (struct local_store *)base;
	(void)arg;
	return store_write_checkpoint(store);
}

struct tombstone_list {
	uint8_t (*hashes)[BLOBFS_HASH_SIZE];
	size_t count, capacity;
};

static int collect_tombstone(const struct index_entry *e, void *arg)
{
	struct tombstone_list *list = arg;

	if (e->kind != RECORD_TOMBSTONE)
		return 0;
	if (list->count == list->capacity) {
		size_t capacity = list->capacity ? 2 * list->capacity : 64;
		void *hashes = realloc(list->hashes, capacity * BLOBFS_HASH_SIZE);
		if (!hashes)
			return -ENOMEM;
		list->hashes = hashes;
		list->capacity = capacity;
	}
	memcpy(list->hashes[list->count++], e->hash, BLOBFS_HASH_SIZE);
	return 0;
}

static int account_entry(const struct index_entry *e, void *arg)
{
	pack_account(arg, e, +1);
	return 0;
}

/* Rebuilds the index from every pack and removes stale staging files. */
static int store_load(struct local_store *store)
{
	struct tombstone_list tombstones = { 0 };
	uint32_t *ids = NULL;
	size_t id_count = 0, id_capacity = 0;
	struct dirent *d;
	DIR *dir = NULL;
	int fd, ret;

	fd = io->openat(store->db->stores_fd, store->base.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			io->close(fd);
		log_error("store %s: cannot open its directory: %s", store->base.name, strerror(-ret));
		goto out;
	}
	while ((errno = 0, d = readdir(dir))) {
		uint32_t id;
		if (d->d_name[0] == '.')
			continue;
		if (pack_parse_name(d->d_name, &id)) {
			if (id_count == id_capacity) {
				size_t capacity = id_capacity ? 2 * id_capacity : 64;
				uint32_t *grown = realloc(ids, capacity * sizeof(*ids));
				ret = -ENOMEM;
				if (!grown)
					goto out;
				ids = grown;
				id_capacity = capacity;
			}
			ids[id_count++] = id;
			/* Even a pack whose header is bad keeps its id taken. */
			if (id >= store->next_pack_id)
				store->next_pack_id = id + 1;
		} else if (!strcmp(d->d_name, MARKER_NAME) || !strcmp(d->d_name, CHECKPOINT_NAME)) {
			continue;
		} else if (!strcmp(d->d_name, CHECKPOINT_STAGING_NAME)) {
			io->unlinkat(dirfd(dir), d->d_name, 0);
		} else if (!strncmp(d->d_name, "staging-", 8)) {
			/* An incoming blob that was never committed before a crash. */
			if (io->unlinkat(dirfd(dir), d->d_name, 0) < 0)
				log_warning("store %s: cannot remove stale %s: %s", store->base.name,
					    d->d_name, strerror(errno));
		} else {
			log_warning("store %s: ignoring unexpected file %s", store->base.name,
				    d->d_name);
		}
	}
	if (errno) {
		ret = -errno;
		log_error("store %s: reading its directory: %s", store->base.name, strerror(-ret));
		goto out;
	}
	if (id_count)
		qsort(ids, id_count, sizeof(*ids), compare_u32);
	store_read_marker(store);
	ret = store_load_checkpoint(store, dirfd(dir), ids, id_count);
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < id_count; i++) {
		struct pack_info *p = pack_find(store, ids[i]);
		ret = store_scan_pack(store, ids[i], p ? p->size : 0);
		if (ret < 0)
			goto out;
	}
	/* Sequence numbers never go back below what the marker vouches for,
	 * even when the newest records are gone (tombstones dropped offline):
	 * a reused number would pass as durable without ever being synced. */
	if (store->next_seq <= store->durable_seq)
		store->next_seq = store->durable_seq + 1;
	ret = index_foreach(store->index, collect_tombstone, &tombstones);
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < tombstones.count; i++)
		index_remove(store->index, tombstones.hashes[i]);
	index_foreach(store->index, account_entry, store);
	ret = 0;
	if (store->next_seq - 1 > store->durable_seq) {
		ret = store_write_marker(store, store->next_seq - 1);
		if (ret == 0)
			store->durable_seq = store->next_seq - 1;
		else
			log_error("store %s: cannot write its durable marker: %s", store->base.name,
				  strerror(-ret));
	}
out:
	if (dir)
		closedir(dir);
	free(ids);
	free(tombstones.hashes);
	return ret;
}

static int store_new(struct local_db *db, const char *name, struct local_store **out)
{
	struct local_store *store = calloc(1, sizeof(*store));
	int ret = -ENOMEM;

	if (!store)
		goto out;
	store->db = db;
	store->active_fd = -1;
	store->next_seq = 1;
	store->next_pack_id = 1; /* 0 means no pack */
	ret = store_init(&store->base, &db->base, name);
	if (ret < 0)
		goto out;
	ret = index_new(&store->index);
	if (ret < 0)
		goto out;
	pthread_mutex_init(&store->lock, NULL);
	pthread_mutex_init(&store->flush_lock, NULL);
out:
	if (ret < 0 && store) {
		store_fini(&store->base);
		free(store);
		store = NULL;
	}
	*out = store;
	return ret;
}

static void local_store_free(struct store *base)
{
	struct local_store *store = (struct local_store *)base;

	for (size_t i = 0; i < store->sync_fd_count; i++)
		io->close(store->sync_fds[i]);
	free(store->sync_fds);
	if (store->active_fd >= 0)
		io->close(store->active_fd);
	index_free(store->index);
	pthread_mutex_destroy(&store->lock);
	pthread_mutex_destroy(&store->flush_lock);
	free(store->packs);
	store_fini(&store->base);
	free(store);
}

/* Removes every file in dir_name (inside parent_fd) and then dir_name. */
static int remove_flat_dir(int parent_fd, const char *dir_name)
{
	struct dirent *d;
	DIR *dir = NULL;
	int fd, ret = 0;

	fd = io->openat(parent_fd, dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			io->close(fd);
		goto out;
	}
	while ((errno = 0, d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (io->unlinkat(dirfd(dir), d->d_name, 0) < 0 && errno != ENOENT) {
			ret = -errno;
			goto out;
		}
	}
	if (errno) {
		ret = -errno;
		goto out;
	}
	if (io->unlinkat(parent_fd, dir_name, AT_REMOVEDIR) < 0)
		ret = -errno;
out:
	if (dir)
		closedir(dir);
	return ret;
}

static void empty_trash(struct local_db *db)
{
	struct dirent *d;
	DIR *dir;
	int fd = dup(db->trash_fd);

	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			io->close(fd);
		return;
	}
	while ((d = readdir(dir))) {
		int ret;
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		ret = remove_flat_dir(db->trash_fd, d->d_name);
		if (ret < 0)
			log_warning("cannot empty trash/%s: %s", d->d_name, strerror(-ret));
	}
	closedir(dir);
}

static int open_subdir(int dirfd, const char *name, int *out)
{
	if (io->mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	*out = io->openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	return *out < 0 ? -errno : 0;
}

static void local_db_note_pid(struct blobdb *base);

static int blobdb_lock(struct local_db *db)
{
	db->lock_fd = io->openat(db->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (db->lock_fd < 0)
		return -errno;
	if (flock(db->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (!db->base.opts.read_only)
		local_db_note_pid(&db->base);
	return 0;
}

static void local_db_note_pid(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;
	char line[32];
	int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());

	if (io->ftruncate(db->lock_fd, 0) == 0 && io->pwrite(db->lock_fd, line, (size_t)n, 0) == n)
		return;
	log_warning("cannot record the pid in %s/lock: %s", db->base.location, strerror(errno));
}

long blobdb_lock_holder(const char *datadir)
{
	char path[PATH_MAX], line[32] = "";
	long pid = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/lock", datadir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (read(fd, line, sizeof(line) - 1) > 0)
		pid = strtol(line, NULL, 10);
	io->close(fd);
	return pid;
}

static int blobdb_load_stores(struct local_db *db)
{
	struct dirent *d;
	DIR *dir;
	int ret = 0, fd = dup(db->stores_fd);

	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			io->close(fd);
		return ret;
	}
	while ((errno = 0, d = readdir(dir))) {
		struct local_store *store;
		if (d->d_name[0] == '.')
			continue;
		if (store_name_check(d->d_name, strlen(d->d_name)) < 0) {
			log_warning("ignoring %s/stores/%s: not a store name", db->base.location, d->d_name);
			continue;
		}
		if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN) {
			log_warning("ignoring %s/stores/%s: not a directory", db->base.location, d->d_name);
			continue;
		}
		ret = store_new(db, d->d_name, &store);
		if (ret < 0)
			break;
		ret = store_load(store);
		if (ret == 0)
			ret = blobdb_catalog_add(&db->base, &store->base);
		if (ret < 0) {
			local_store_free(&store->base);
			break;
		}
	}
	if (errno && ret == 0)
		ret = -errno;
	closedir(dir);
	return ret;
}

static int local_db_open(const char *datadir, const struct blobdb_options *opts,
			 struct blobdb **out)
{
	struct local_db *db = calloc(1, sizeof(*db));
	int ret = -ENOMEM;

	if (!db)
		goto out;
	db->dirfd = db->stores_fd = db->trash_fd = db->quarantine_fd = db->lock_fd = -1;
	pthread_mutex_init(&db->flush_lock, NULL);
	pthread_cond_init(&db->flush_wake, NULL);
	pthread_cond_init(&db->flush_done, NULL);
	pthread_cond_init(&db->compact_wake, NULL);
	ret = blobdb_init(&db->base, &local_backend, datadir, opts);
	if (ret < 0)
		goto out;
	if (mkdir(datadir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		log_error("cannot create data directory %s: %s", datadir, strerror(-ret));
		goto out;
	}
	db->dirfd = open(datadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (db->dirfd >= 0) {
		/* Messages and the mount's fsname name it absolutely (a daemon's
		 * working directory is /). */
		char *absolute = realpath(datadir, NULL);
		if (absolute) {
			free(db->base.location);
			db->base.location = absolute;
		}
	}
	if (db->dirfd < 0) {
		ret = -errno;
		log_error("cannot open data directory %s: %s", datadir, strerror(-ret));
		goto out;
	}
	ret = blobdb_lock(db);
	if (ret < 0) {
		if (ret == -EBUSY)
			log_error("%s is in use by another blobfs (pid %ld holds %s/lock)", datadir,
				  blobdb_lock_holder(datadir), datadir);
		else
			log_error("cannot lock %s: %s", datadir, strerror(-ret));
		goto out;
	}
	ret = open_subdir(db->dirfd, "stores", &db->stores_fd);
	if (ret == 0)
		ret = open_subdir(db->dirfd, "trash", &db->trash_fd);
	if (ret == 0)
		ret = open_subdir(db->dirfd, "quarantine", &db->quarantine_fd);
	if (ret < 0) {
		log_error("cannot set up %s: %s", datadir, strerror(-ret));
		goto out;
	}
	empty_trash(db);
	/* Offsets in the index have 39 bits. */
	if (db->base.opts.pack_size_max > INDEX_OFFSET_MAX / 2)
		db->base.opts.pack_size_max = INDEX_OFFSET_MAX / 2;
	/* A blob below large_blob_min is saved from memory (read back whole and
	 * framed in one buffer): bounded, so the daemon's memory never grows
	 * with what a user sets. */
	if (db->base.opts.large_blob_min > LARGE_BLOB_MIN_MAX)
		db->base.opts.large_blob_min = LARGE_BLOB_MIN_MAX;
	db->min_free = db->base.opts.min_free;
	if (db->min_free == MIN_FREE_AUTO) {
		struct statvfs st;
		uint64_t total = fstatvfs(db->stores_fd, &st) == 0 ?
					 (uint64_t)st.f_blocks * st.f_frsize : 0;
		db->min_free = total / 100 < (UINT64_C(64) << 20) ? total / 100 : UINT64_C(64) << 20;
	}
	ret = blobdb_load_stores(db);
	if (ret < 0)
		log_error("cannot load the stores of %s: %s", datadir, strerror(-ret));
out:
	if (ret < 0 && db) {
		blobdb_close(&db->base);
		db = NULL;
	}
	*out = db ? &db->base : NULL;
	return ret;
}

static int local_db_statfs(struct blobdb *base, struct statvfs *st)
{
	struct local_db *db = (struct local_db *)base;
	return fstatvfs(db->dirfd, st) < 0 ? -errno : 0;
}

/*
 * One flush of a store: fsyncs every file written since the last flush and
 * the store directory if names changed, then writes the durable marker. The
 * work happens outside store->lock; records written meanwhile wait for the
 * next flush. A failure is sticky: after a failed fsync the kernel may have
 * dropped the dirty pages, so the marker never moves again in this mount.
 */
static int store_flush_locked(struct local_store *store);

static int store_flush(struct local_store *store)
{
	int ret;

	pthread_mutex_lock(&store->flush_lock);
	ret = store_flush_locked(store);
	pthread_mutex_unlock(&store->flush_lock);
	return ret;
}

static int store_flush_locked(struct local_store *store)
{
	uint64_t target, durable = __atomic_load_n(&store->durable_seq, __ATOMIC_ACQUIRE);
	int *fds = NULL, active = -1, ret = 0;
	size_t count = 0;
	bool dir_dirty;

	pthread_mutex_lock(&store->lock);
	target = store->next_seq - 1;
	if (store->base.destroyed || store->flush_failed ||
	    (target <= durable && !store->sync_fd_count && !store->dir_dirty)) {
		ret = store->flush_failed && !store->base.destroyed ? -EIO : 0;
		if (ret == 0 && store->active_fd >= 0 && !store->appended && target <= durable) {
			/* Nothing appended since a flush synced it: let it go. */
			io->close(store->active_fd);
			store->active_fd = -1;
		}
		pthread_mutex_unlock(&store->lock);
		return ret;
	}
	fds = store->sync_fds;
	count = store->sync_fd_count;
	store->sync_fds = NULL;
	store->sync_fd_count = store->sync_fd_capacity = 0;
	if (store->active_fd >= 0 && !store->appended) {
		/* Idle since the last flush: give its descriptor back (the next
		 * append reopens the pack), so that open descriptors follow the
		 * stores being written, not all stores. */
		active = store->active_fd;
		store->active_fd = -1;
	} else if (store->active_fd >= 0) {
		active = dup(store->active_fd);
	}
	store->appended = false;
	dir_dirty = store->dir_dirty;
	store->dir_dirty = false;
	pthread_mutex_unlock(&store->lock);

	for (size_t i = 0; i < count; i++) {
		if (io->fsync(fds[i]) < 0 && ret == 0)
			ret = -errno;
		io->close(fds[i]);
	}
	if (active >= 0) {
		if (io->fsync(active) < 0 && ret == 0)
			ret = -errno;
		close(active);
	}
	if (ret == 0 && dir_dirty)
		ret = fsync_dir_at(store->db->stores_fd, store->base.name);
	if (ret == 0 && target > durable)
		ret = store_write_marker(store, target);

	pthread_mutex_lock(&store->lock);
	if (ret == 0 && target > durable)
		__atomic_store_n(&store->durable_seq, target, __ATOMIC_RELEASE);
	if (ret < 0 && !store->base.destroyed) {
		store->flush_failed = true;
		log_error("store %s: flushing to stable storage failed: %s; saves in this store "
			  "are no longer made durable until it is mounted again",
			  store->base.name, strerror(-ret));
	}
	pthread_mutex_unlock(&store->lock);
	free(fds);
	return ret;
}

static int flush_one(struct store *base, void *arg)
{
	struct local_store *store = (struct local_store *)base;
	(void)arg;
	return store_flush(store);
}

static int local_db_sync(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;
	return blobdb_each_store(&db->base, flush_one, NULL);
}

static void blobdb_compact_step(struct local_db *db);

static void deadline_after(struct timespec *t, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

/*
 * The background thread: a flush every flush_interval_ms, or at once when a
 * store_sync asks. Everyone who asked while a flush ran is served by the next
 * one, so concurrent syncs share one set of fsyncs (group commit).
 */
static void *flusher_main(void *arg)
{
	struct local_db *db = arg;

	pthread_mutex_lock(&db->flush_lock);
	while (!db->flusher_stop) {
		struct timespec deadline;
		deadline_after(&deadline, db->base.opts.flush_interval_ms);
		while (!db->flush_requested && !db->flusher_stop &&
		       pthread_cond_timedwait(&db->flush_wake, &db->flush_lock, &deadline) == 0)
			;
		if (db->flusher_stop)
			break;
		db->flush_requested = false;
		db->cycles_started++;
		pthread_mutex_unlock(&db->flush_lock);
		local_db_sync(&db->base);
		pthread_mutex_lock(&db->flush_lock);
		db->cycles_done++;
		pthread_cond_broadcast(&db->flush_done);
	}
	pthread_mutex_unlock(&db->flush_lock);
	return NULL;
}

/* Compaction has a thread of its own: rewriting a big pack takes a while,
 * and flushes (and those waiting on them) must not wait for it. */
static void *compactor_main(void *arg)
{
	struct local_db *db = arg;

	pthread_mutex_lock(&db->flush_lock);
	while (!db->flusher_stop) {
		struct timespec deadline;
		deadline_after(&deadline, COMPACT_INTERVAL_MS);
		while (!db->flusher_stop &&
		       pthread_cond_timedwait(&db->compact_wake, &db->flush_lock, &deadline) == 0)
			;
		if (db->flusher_stop)
			break;
		pthread_mutex_unlock(&db->flush_lock);
		blobdb_compact_step(db);
		pthread_mutex_lock(&db->flush_lock);
	}
	pthread_mutex_unlock(&db->flush_lock);
	return NULL;
}

static int local_db_start(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;
	int ret;

	pthread_mutex_lock(&db->flush_lock);
	ret = db->flusher_running ? 0 : -pthread_create(&db->flusher, NULL, flusher_main, db);
	if (ret == 0)
		db->flusher_running = true;
	if (ret == 0 && !db->compactor_running) {
		ret = -pthread_create(&db->compactor, NULL, compactor_main, db);
		db->compactor_running = ret == 0;
	}
	pthread_mutex_unlock(&db->flush_lock);
	if (ret < 0)
		log_error("cannot start the flusher thread: %s", strerror(-ret));
	return ret;
}

static void local_threads_stop(struct local_db *db)
{
	bool running;

	bool compacting;

	pthread_mutex_lock(&db->flush_lock);
	running = db->flusher_running;
	compacting = db->compactor_running;
	db->flusher_stop = true;
	pthread_cond_broadcast(&db->flush_wake);
	pthread_cond_broadcast(&db->compact_wake);
	pthread_mutex_unlock(&db->flush_lock);
	if (running)
		pthread_join(db->flusher, NULL);
	if (compacting)
		pthread_join(db->compactor, NULL);
	db->compactor_running = false;
	pthread_mutex_lock(&db->flush_lock);
	db->flusher_running = false;
	pthread_cond_broadcast(&db->flush_done);
	pthread_mutex_unlock(&db->flush_lock);
}

static int local_store_sync(struct store *base)
{
	struct local_store *store = (struct local_store *)base;
	struct local_db *db = store->db;
	uint64_t target, my_cycle;
	bool failed;

	pthread_mutex_lock(&store->lock);
	target = store->next_seq - 1;
	failed = store->flush_failed;
	pthread_mutex_unlock(&store->lock);
	if (__atomic_load_n(&store->durable_seq, __ATOMIC_ACQUIRE) >= target)
		return 0;
	if (failed)
		return -EIO;
	pthread_mutex_lock(&db->flush_lock);
	if (!db->flusher_running) {
		pthread_mutex_unlock(&db->flush_lock);
		return store_flush(store) < 0 ? -EIO : 0;
	}
	db->flush_requested = true;
	my_cycle = db->cycles_started + 1;
	pthread_cond_signal(&db->flush_wake);
	while (db->flusher_running && db->cycles_done < my_cycle &&
	       __atomic_load_n(&store->durable_seq, __ATOMIC_ACQUIRE) < target)
		pthread_cond_wait(&db->flush_done, &db->flush_lock);
	pthread_mutex_unlock(&db->flush_lock);
	if (__atomic_load_n(&store->durable_seq, __ATOMIC_ACQUIRE) >= target)
		return 0;
	return store_flush(store) < 0 ? -EIO : 0;
}

static int local_db_stop(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;
	int ret = 0;

	local_threads_stop(db);
	if (db->stores_fd >= 0) {
		ret = local_db_sync(&db->base);
		/* A checkpoint that cannot be written (a full disk) only makes the
		 * next mount scan the packs: logged, not a failure. */
		if (ret == 0 && !db->base.opts.read_only)
			blobdb_each_store(&db->base, checkpoint_one, NULL);
		/* Removed files and the trash too: everything we changed. */
		if (!db->base.opts.read_only && io->syncfs(db->dirfd) < 0)
			log_error("%s: syncfs: %s", db->base.location, strerror(errno));
	}
	return ret;
}

static void local_db_free(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;

	if (db->stores_fd >= 0)
		io->close(db->stores_fd);
	if (db->trash_fd >= 0)
		io->close(db->trash_fd);
	if (db->quarantine_fd >= 0)
		io->close(db->quarantine_fd);
	if (db->lock_fd >= 0)
		io->close(db->lock_fd); /* releases the flock */
	if (db->dirfd >= 0)
		io->close(db->dirfd);
	pthread_mutex_destroy(&db->flush_lock);
	pthread_cond_destroy(&db->flush_wake);
	pthread_cond_destroy(&db->flush_done);
	pthread_cond_destroy(&db->compact_wake);
	free(db);
}

/* ---- stores ---- */

static int local_store_create(struct blobdb *base, const char *name, struct store **out)
{
	struct local_db *db = (struct local_db *)base;
	struct local_store *store = NULL;
	int ret = store_new(db, name, &store);

	if (ret < 0)
		goto out;
	if (io->mkdirat(db->stores_fd, name, 0700) < 0) {
		ret = -errno;
		log_error("cannot create store %s: %s", name, strerror(-ret));
		goto out;
	}
	/* A store has a durable marker from its birth: a missing one is then
	 * always damage, never a store that simply has not flushed yet. */
	ret = store_write_marker(store, 0);
	if (ret == 0)
		ret = fsync_dir_at(db->stores_fd, name);
	if (ret == 0)
		ret = io->fsync(db->stores_fd) < 0 ? -errno : 0;
	if (ret < 0) {
		log_error("cannot create store %s: %s", name, strerror(-ret));
		remove_flat_dir(db->stores_fd, name);
	}
out:
	if (ret < 0 && store) {
		local_store_free(&store->base);
		store = NULL;
	}
	*out = store ? &store->base : NULL;
	return ret;
}

static int local_store_remove(struct store *base, bool only_if_empty)
{
	struct local_store *store = (struct local_store *)base;
	struct local_db *db = store->db;
	int ret = 0;

	pthread_mutex_lock(&store->lock);
	if (only_if_empty && index_count(store->index) > 0) {
		ret = -ENOTEMPTY;
		goto out;
	}
	/* The rename is the commit point: after it the store is gone even if we
	 * crash before its files are removed (the trash is emptied at open). */
	snprintf(store->trash_name, sizeof(store->trash_name), "store-%ld-%" PRIu64,
		 (long)getpid(), __atomic_add_fetch(&db->staging_counter, 1, __ATOMIC_RELAXED));
	if (io->renameat(db->stores_fd, store->base.name, db->trash_fd, store->trash_name) < 0) {
		ret = -errno;
		log_error("cannot destroy store %s: %s", store->base.name, strerror(-ret));
		goto out;
	}
	__atomic_store_n(&store->base.destroyed, true, __ATOMIC_RELEASE);
	if (store->active_fd >= 0) {
		io->close(store->active_fd);
		store->active_fd = -1;
	}
	if (io->fsync(db->stores_fd) < 0 || io->fsync(db->trash_fd) < 0)
		log_warning("store %s: syncing its removal: %s", store->base.name, strerror(errno));
out:
	pthread_mutex_unlock(&store->lock);
	return ret;
}

static void local_store_purge(struct store *base)
{
	struct local_store *store = (struct local_store *)base;
	int ret = remove_flat_dir(store->db->trash_fd, store->trash_name);

	if (ret < 0)
		log_warning("store %s: its files stay in trash/%s until the next mount: %s",
			    store->base.name, store->trash_name, strerror(-ret));
}

/* ---- blobs ---- */

static int local_blob_info(struct store *base, const uint8_t hash[BLOBFS_HASH_SIZE],
			   uint64_t *length)
{
	struct local_store *store = (struct local_store *)base;
	struct index_entry e;
	int ret;

	pthread_mutex_lock(&store->lock);
	ret = store->base.destroyed ? -ENOENT : index_lookup(store->index, hash, &e);
	pthread_mutex_unlock(&store->lock);
	if (ret == 0 && length)
		*length = e.length;
	return ret;
}

static size_t local_blob_count(struct store *base)
{
	struct local_store *store = (struct local_store *)base;
	size_t n;

	pthread_mutex_lock(&store->lock);
	n = store->base.destroyed ? 0 : index_count(store->index);
	pthread_mutex_unlock(&store->lock);
	return n;
}

static int local_blob_list(struct store *base, const uint8_t *after, blob_list_fn fn, void *arg)
{
	struct local_store *store = (struct local_store *)base;
	enum { BATCH = 128 };
	struct index_entry batch[BATCH];
	uint8_t cursor[BLOBFS_HASH_SIZE];
	bool have_cursor = after != NULL;
	int ret = 0;

	if (after)
		memcpy(cursor, after, BLOBFS_HASH_SIZE);
	/* Entries are copied out a batch at a time so that fn runs without
	 * the lock; the cursor makes the walk right under concurrent change. */
	for (;;) {
		size_t n;
		pthread_mutex_lock(&store->lock);
		n = store->base.destroyed ? 0 :
			index_seek_many(store->index, have_cursor ? cursor : NULL, true, batch, BATCH);
		pthread_mutex_unlock(&store->lock);
		for (size_t i = 0; i < n && ret == 0; i++) {
			memcpy(cursor, batch[i].hash, BLOBFS_HASH_SIZE);
			have_cursor = true;
			ret = fn(batch[i].hash, batch[i].length, arg);
		}
		if (ret || n < BATCH)
			break;
	}
	return ret;
}

/* Opens the active pack for appending, starting a new one when there is
 * none or when need more bytes would take it past the size cap. Called with
 * store->lock held. */
static int store_active_pack(struct local_store *store, uint64_t need, struct pack_info **out)
{
	struct pack_info *p = NULL;
	char path[PATH_SIZE];
	int ret, fd;

	if (store->active_fd < 0 && store->pack_count > 0) {
		/* Reuse the newest pack made for appends, when it has room
		 * (large blobs' own packs and compaction outputs are skipped). */
		size_t i = store->pack_count;
		while (i > 0 && (!store->packs[i - 1].appendable || store->packs[i - 1].compacting))
			i--;
		p = i > 0 ? &store->packs[i - 1] : NULL;
		if (p && p->size + need <= store->db->base.opts.pack_size_max && !p->damaged) {
			ret = store_pack_path(store, p->id, path);
			if (ret < 0)
				return ret;
			fd = io->openat(store->db->stores_fd, path, O_RDWR | O_CLOEXEC, 0);
			if (fd < 0)
				return -errno;
			store->active_fd = fd;
			store->active_id = p->id;
		}
	}
	if (store->active_fd >= 0) {
		p = pack_find(store, store->active_id);
		if (p && (p->size + need <= store->db->base.opts.pack_size_max ||
			  p->size == PACK_HEADER_SIZE)) {
			*out = p;
			return 0;
		}
		store_sync_later(store, store->active_fd); /* full: rotate */
		store->active_fd = -1;
	}
	fd = io->openat(store->db->stores_fd, store->base.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = pack_create(fd, store->next_pack_id, &store->active_fd);
	io->close(fd);
	if (ret < 0)
		return ret;
	store->dir_dirty = true;
	store->active_id = store->next_pack_id;
	ret = pack_add(store, store->active_id, PACK_HEADER_SIZE);
	if (ret < 0) {
		io->close(store->active_fd);
		store->active_fd = -1;
		return ret;
	}
	*out = pack_find(store, store->active_id);
	(*out)->appendable = true;
	return 0;
}

static int store_index_record(struct local_store *store, uint32_t pack_id,
			      const struct record_info *rec)
{
	struct index_entry old, entry = {
		.offset = rec->offset,
		.length = rec->length,
		.seq = rec->seq,
		.pack_id = pack_id,
		.kind = RECORD_BLOB,
		.chunk_shift = (uint8_t)rec->chunk_shift,
	};

	bool had_old = index_lookup(store->index, rec->hash, &old) == 0;
	int ret;

	memcpy(entry.hash, rec->hash, BLOBFS_HASH_SIZE);
	ret = index_put(store->index, &entry);
	if (ret < 0)
		return ret;
	if (had_old)
		pack_account(store, &old, -1);
	pack_account(store, &entry, +1);
	return 0;
}

/*
 * Appends one record to the active pack. data may be NULL for a tombstone.
 * crcs may be NULL, in which case they are computed. On failure the pack is
 * cut back so that no partial record stays behind. Called with store->lock.
 */
static int store_append(struct local_store *store, struct record_info *rec, const void *data,
			const uint32_t *crcs)
{
	uint64_t need = record_size(rec->length, rec->chunk_shift);
	struct pack_info *pack;
	int ret;

	if (rec->kind == RECORD_BLOB) {
		ret = check_space(store->db, need);
		if (ret < 0)
			goto out;
	}
	ret = store_active_pack(store, need, &pack);
	if (ret < 0)
		goto out;
	rec->offset = pack->size;
	rec->seq = store->next_seq++;
	ret = pack_write_record(store->active_fd, rec, data, crcs);
	if (ret < 0) {
		if (io->ftruncate(store->active_fd, (off_t)pack->size) < 0)
			log_error("store %s: cannot cut back pack %08x after a failed write: %s",
				  store->base.name, pack->id, strerror(errno));
		goto out;
	}
	if (rec->kind == RECORD_BLOB) {
		ret = store_index_record(store, pack->id, rec);
		if (ret < 0) {
			/* Not indexed, not kept: the pack is cut back. */
			if (io->ftruncate(store->active_fd, (off_t)pack->size) < 0)
				log_error("store %s: cannot cut back pack %08x: %s", store->base.name,
					  pack->id, strerror(errno));
			goto out;
		}
	}
	pack->size += need;
	store->appended = true;
	pack->max_seq = rec->seq;
	pack->last_offset = rec->offset;
	pack->last_seq = rec->seq;
	if (rec->kind == RECORD_TOMBSTONE)
		pack->tombstone_count++;
out:
	return ret;
}

/* Unlinks a pack that holds neither a live blob nor a tombstone: each of its
 * records is superseded by a newer one elsewhere, so removing it changes
 * nothing but the space used. A deleted large blob's own pack goes this way
 * at once. Called with store->lock held. */
static void store_drop_dead_pack(struct local_store *store, uint32_t pack_id)
{
	struct pack_info *p = pack_find(store, pack_id);
	char path[PATH_SIZE];

	if (!p || p->live_count || p->tombstone_count ||
	    (store->active_fd >= 0 && pack_id == store->active_id))
		return;
	if (store_pack_path(store, pack_id, path) < 0)
		return;
	if (io->unlinkat(store->db->stores_fd, path, 0) < 0) {
		log_warning("store %s: cannot remove dead %s: %s", store->base.name, path,
			    strerror(errno));
		return;
	}
	pack_remove(store, pack_id);
	store->dir_dirty = true;
}

static int local_blob_delete(struct store *base, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct local_store *store = (struct local_store *)base;
	struct record_info rec = { .kind = RECORD_TOMBSTONE, .chunk_shift = CHUNK_SHIFT_DEFAULT };
	char hex[HASH_HEX_SIZE + 1];
	struct index_entry e;
	int ret;

	memcpy(rec.hash, hash, BLOBFS_HASH_SIZE);
	pthread_mutex_lock(&store->lock);
	ret = store->base.destroyed ? -ENOENT : index_lookup(store->index, hash, &e);
	if (ret < 0)
		goto out;
	ret = store_append(store, &rec, NULL, NULL);
	if (ret < 0) {
		hash_to_hex(hash, hex);
		log_error("store %s: cannot record the delete of %s: %s", store->base.name, hex,
			  strerror(-ret));
		goto out;
	}
	pack_account(store, &e, -1);
	index_remove(store->index, hash);
	store_drop_dead_pack(store, e.pack_id);
out:
	pthread_mutex_unlock(&store->lock);
	return ret;
}

/* ---- reading ---- */

static void blob_reader_free(struct local_reader *reader)
{
	if (reader->fd >= 0)
		io->close(reader->fd);
	hasher_free(reader->hasher);
	free(reader->crcs);
	pthread_mutex_destroy(&reader->lock);
	free(reader);
}

static int local_reader_open(struct store *base, const uint8_t hash[BLOBFS_HASH_SIZE],
			     struct blob_reader **out)
{
	struct local_store *store = (struct local_store *)base;
	struct local_reader *reader = NULL;
	char path[PATH_SIZE], hex[HASH_HEX_SIZE + 1];
	struct record_info rec;
	struct index_entry e;
	uint64_t count;
	int ret;

	*out = NULL;
	reader = calloc(1, sizeof(*reader));
	if (!reader)
		return -ENOMEM;
	reader->fd = -1;
	pthread_mutex_init(&reader->lock, NULL);
	ret = hasher_new(&reader->hasher);
	if (ret < 0)
		goto out;
	/* The pack is opened under the lock so that it cannot be dropped or
	 * compacted away between the lookup and the open. */
	pthread_mutex_lock(&store->lock);
	ret = store->base.destroyed ? -ENOENT : index_lookup(store->index, hash, &e);
	if (ret == 0)
		ret = store_pack_path(store, e.pack_id, path);
	if (ret == 0) {
		reader->fd = io->openat(store->db->stores_fd, path, O_RDONLY | O_CLOEXEC, 0);
		if (reader->fd < 0)
			ret = -errno;
	}
	pthread_mutex_unlock(&store->lock);
	hash_to_hex(hash, hex);
	if (ret < 0 && ret != -ENOENT) {
		log_error("store %s: blob %s: cannot open pack %08x: %s", store->base.name, hex,
			  e.pack_id, strerror(-ret));
		ret = -EIO;
	}
	if (ret < 0)
		goto out;
	reader->record_offset = e.offset;
	reader->data_offset = e.offset + RECORD_HEADER_SIZE;
	reader->base.length = e.length;
	reader->pack_id = e.pack_id;
	memcpy(reader->hash, hash, BLOBFS_HASH_SIZE);
	/* The record's own header: it must be this blob (the index is only a
	 * pointer), and it gives the chunk size and the seq the trailer holds. */
	{
		uint8_t header[RECORD_HEADER_SIZE];
		ret = pread_full(reader->fd, header, sizeof(header), e.offset);
		if (ret == 0)
			ret = record_header_decode(header, e.offset, &rec);
		if (ret == 0 && (rec.kind != RECORD_BLOB || rec.length != e.length ||
				 memcmp(rec.hash, hash, BLOBFS_HASH_SIZE)))
			ret = -EBADMSG;
		if (ret < 0) {
			log_error("store %s: blob %s: pack %08x offset %" PRIu64
				  ": record header damaged or not this blob; the blob cannot be read",
				  store->base.name, hex, e.pack_id, e.offset);
			ret = -EIO;
			goto out;
		}
	}
	reader->chunk_shift = rec.chunk_shift;
	count = record_chunk_count(e.length, rec.chunk_shift);
	ret = -ENOMEM;
	reader->crcs = malloc(count ? (size_t)count * 4 : 1);
	if (!reader->crcs)
		goto out;
	ret = pack_read_chunk_table(reader->fd, &rec, reader->crcs);
	if (ret < 0) {
		log_error("store %s: blob %s: pack %08x offset %" PRIu64
			  ": chunk table damaged (%s); the blob cannot be read",
			  store->base.name, hex, e.pack_id, e.offset,
			  ret == -EBADMSG ? "does not match its trailer" : strerror(-ret));
		ret = -EIO;
		goto out;
	}
	reader->store = store;
	reader->base.store = store_hold(&store->base);
	ret = 0;
out:
	if (ret < 0) {
		blob_reader_free(reader);
		reader = NULL;
	}
	*out = reader ? &reader->base : NULL;
	return ret;
}

/* Feeds the bytes [start, end) of the blob, held in buf, to the whole-blob
 * hash when they continue it, and checks the hash once it is complete. */
static int reader_hash(struct local_reader *reader, const uint8_t *buf, uint64_t start,
		       uint64_t end)
{
	uint8_t hash[BLOBFS_HASH_SIZE];
	int ret = 0;

	pthread_mutex_lock(&reader->lock);
	if (reader->corrupt)
		ret = -EBADMSG;
	else if (start <= reader->hashed && reader->hashed < end) {
		ret = hasher_update(reader->hasher, buf + (reader->hashed - start),
				    (size_t)(end - reader->hashed));
		reader->hashed = end;
		if (ret == 0 && end == reader->base.length) {
			ret = hasher_final(reader->hasher, hash);
			if (ret == 0 && memcmp(hash, reader->hash, BLOBFS_HASH_SIZE)) {
				reader->corrupt = true;
				ret = -EBADMSG;
			}
		}
	}
	pthread_mutex_unlock(&reader->lock);
	return ret;
}

static int local_reader_read(struct blob_reader *base, void *buf, size_t size, uint64_t off,
			     size_t *got)
{
	struct local_reader *reader = (struct local_reader *)base;
	const uint64_t chunk = UINT64_C(1) << reader->chunk_shift;
	char hex[HASH_HEX_SIZE + 1];
	uint64_t end, span_start, span_end;
	uint8_t *span = NULL;
	int ret = 0;

	*got = 0;
	if (off >= reader->base.length || size == 0)
		return 0;
	end = reader->base.length - off < size ? reader->base.length : off + size;
	/* Whole chunks are read so that each can be checked before any of its
	 * bytes are handed out. */
	span_start = off & ~(chunk - 1);
	span_end = (end + chunk - 1) & ~(chunk - 1);
	if (span_end > reader->base.length)
		span_end = reader->base.length;
	if (span_start == off && span_end == end) {
		span = buf;
	} else {
		span = malloc((size_t)(span_end - span_start));
		if (!span)
			return -ENOMEM;
	}
	ret = pread_full(reader->fd, span, (size_t)(span_end - span_start),
			 reader->data_offset + span_start);
	hash_to_hex(reader->hash, hex);
	if (ret < 0) {
		log_error("store %s: blob %s: reading pack %08x at offset %" PRIu64 ": %s",
			  reader->store->base.name, hex, reader->pack_id,
			  reader->data_offset + span_start, strerror(-ret));
		ret = -EIO;
		goto out;
	}
	for (uint64_t pos = span_start; pos < span_end; pos += chunk) {
		uint64_t n = span_end - pos < chunk ? span_end - pos : chunk;
		if (crc32c(0, span + (pos - span_start), (size_t)n) != reader->crcs[pos >> reader->chunk_shift]) {
			log_error("store %s: blob %s: pack %08x offset %" PRIu64
				  ": chunk %" PRIu64 " fails its checksum; read refused",
				  reader->store->base.name, hex, reader->pack_id, reader->data_offset + pos,
				  pos >> reader->chunk_shift);
			ret = -EIO;
			goto out;
		}
	}
	ret = reader_hash(reader, span, span_start, span_end);
	if (ret == -EBADMSG)
		log_error("store %s: blob %s: pack %08x record at %" PRIu64
			  ": content does not hash to the blob's name; read refused",
			  reader->store->base.name, hex, reader->pack_id, reader->record_offset);
	if (ret < 0) {
		ret = -EIO;
		goto out;
	}
	if (span != buf)
		memcpy(buf, span + (off - span_start), (size_t)(end - off));
	*got = (size_t)(end - off);
out:
	if (span != buf)
		free(span);
	return ret;
}

static void local_reader_close(struct blob_reader *base)
{
	struct local_reader *reader = (struct local_reader *)base;
	if (!reader)
		return;
	store_close(&reader->store->base);
	reader->store = NULL;
	blob_reader_free(reader);
}

/* ---- saving ---- */

/* Saves a blob of at most large_blob_min bytes by appending it to the active
 * pack. crcs may be NULL. */
static int store_save_small(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			    const void *data, uint64_t len, const uint32_t *crcs)
{
	struct record_info rec = { .kind = RECORD_BLOB, .chunk_shift = CHUNK_SHIFT_DEFAULT,
				   .length = len };
	char hex[HASH_HEX_SIZE + 1];
	struct index_entry e;
	int ret;

	memcpy(rec.hash, hash, BLOBFS_HASH_SIZE);
	pthread_mutex_lock(&store->lock);
	ret = -ENOENT;
	if (store->base.destroyed)
		goto out;
	ret = -EEXIST;
	if (index_lookup(store->index, hash, &e) == 0)
		goto out;
	ret = store_append(store, &rec, data ? data : "", crcs);
	if (ret < 0) {
		hash_to_hex(hash, hex);
		log_error("store %s: cannot save blob %s (%" PRIu64 " bytes): %s", store->base.name,
			  hex, len, strerror(-ret));
	}
out:
	pthread_mutex_unlock(&store->lock);
	return ret;
}

static int writer_push_crc(struct local_writer *w, uint32_t crc)
{
	size_t i = (size_t)((w->digested - 1) >> CHUNK_SHIFT_DEFAULT);

	if (i >= w->crc_capacity) {
		size_t capacity = w->crc_capacity ? 2 * w->crc_capacity : 64;
		uint32_t *crcs = realloc(w->crcs, capacity * sizeof(*crcs));
		if (!crcs)
			return -ENOMEM;
		w->crcs = crcs;
		w->crc_capacity = capacity;
	}
	w->crcs[i] = crc;
	return 0;
}

/* Extends the digest over the next len bytes of content. */
static int writer_feed(struct local_writer *w, const uint8_t *buf, size_t len)
{
	const uint64_t chunk = UINT64_C(1) << CHUNK_SHIFT_DEFAULT;
	int ret = hasher_update(w->hasher, buf, len);

	while (ret == 0 && len) {
		uint64_t room = chunk - (w->digested & (chunk - 1));
		size_t n = len < room ? len : (size_t)room;
		w->chunk_crc = crc32c(w->chunk_crc, buf, n);
		w->digested += n;
		buf += n;
		len -= n;
		if ((w->digested & (chunk - 1)) == 0) {
			ret = writer_push_crc(w, w->chunk_crc);
			w->chunk_crc = 0;
		}
	}
	return ret;
}

static int writer_digest_reset(struct local_writer *w)
{
	w->digested = 0;
	w->chunk_crc = 0;
	return hasher_reset(w->hasher);
}

static int writer_create_staging(struct local_writer *w);
static int writer_rematerialize(struct local_writer *w);

/* Moves in-memory content to a staging file. */
static int writer_spill(struct local_writer *w)
{
	int ret = check_space(w->store->db, w->size);

	if (ret == 0)
		ret = writer_create_staging(w);
	if (ret == 0)
		ret = pwrite_full(w->fd, w->mem, (size_t)w->size, STAGING_DATA_OFFSET);
	if (ret == 0 && io->ftruncate(w->fd, (off_t)(STAGING_DATA_OFFSET + w->size)) < 0)
		ret = -errno;
	if (ret < 0 && w->fd >= 0) {
		/* The content stays in memory; the partial file goes. */
		char path[PATH_SIZE];
		io->close(w->fd);
		w->fd = -1;
		if (store_path(w->store, w->staging_name, path) == 0)
			io->unlinkat(w->store->db->stores_fd, path, 0);
	}
	if (ret < 0)
		return ret;
	free(w->mem);
	w->mem = NULL;
	w->mem_capacity = 0;
	w->in_memory = false;
	return 0;
}

/* Makes the content writable where it is: in memory (grown to hold end
 * bytes) or in a staging file. */
static int writer_prepare(struct local_writer *w, uint64_t end)
{
	if (w->in_memory && end > WRITER_MEMORY_MAX)
		return writer_spill(w);
	if (w->in_memory && end > w->mem_capacity) {
		size_t capacity = w->mem_capacity ? w->mem_capacity : 4096;
		uint8_t *mem;
		while (capacity < end)
			capacity *= 2;
		mem = realloc(w->mem, capacity);
		if (!mem)
			return -ENOMEM;
		memset(mem + w->mem_capacity, 0, capacity - w->mem_capacity);
		w->mem = mem;
		w->mem_capacity = capacity;
	}
	if (!w->in_memory && w->fd < 0)
		return writer_rematerialize(w);
	return 0;
}

static int writer_content_read(struct local_writer *w, void *buf, size_t size, uint64_t off)
{
	if (w->in_memory) {
		memcpy(buf, w->mem + off, size);
		return 0;
	}
	return pread_full(w->fd, buf, size, STAGING_DATA_OFFSET + off);
}

/* Hashes what the digest does not cover yet by reading it back: only needed
 * when the writes were not sequential (or the file was grown by truncate). */
static int writer_digest_finish(struct local_writer *w, uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint8_t *buf = NULL;
	int ret = 0;

	if (w->digested < w->size) {
		buf = malloc(COPY_BUFFER_SIZE);
		if (!buf)
			return -ENOMEM;
	}
	while (ret == 0 && w->digested < w->size) {
		uint64_t left = w->size - w->digested;
		size_t n = left < COPY_BUFFER_SIZE ? (size_t)left : COPY_BUFFER_SIZE;
		ret = writer_content_read(w, buf, n, w->digested);
		if (ret == 0)
			ret = writer_feed(w, buf, n);
	}
	free(buf);
	if (ret == 0 && (w->digested & ((UINT64_C(1) << CHUNK_SHIFT_DEFAULT) - 1)))
		ret = writer_push_crc(w, w->chunk_crc);
	if (ret == 0)
		ret = hasher_final(w->hasher, hash);
	return ret;
}

static int writer_create_staging(struct local_writer *w)
{
	struct local_store *store = w->store;
	char path[PATH_SIZE];
	int ret;

	if (store->base.destroyed)
		return -ENOENT; /* its directory may be another store's by now */

	snprintf(w->staging_name, sizeof(w->staging_name), "staging-%ld-%" PRIu64 ".tmp",
		 (long)getpid(), __atomic_add_fetch(&store->db->staging_counter, 1, __ATOMIC_RELAXED));
	ret = store_path(store, w->staging_name, path);
	if (ret < 0)
		return ret;
	w->fd = io->openat(store->db->stores_fd, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		ret = -errno;
		log_error("store %s: cannot create staging file: %s", store->base.name, strerror(-ret));
		return ret;
	}
	return 0;
}

/*
 * Turns the staging file into a one-record pack in place: the data is
 * already where the record wants it, so only the headers, the chunk table
 * and the trailer are written before the rename publishes it.
 */
static int store_adopt_staging(struct local_store *store, struct local_writer *w,
			       const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct record_info rec = { .offset = PACK_HEADER_SIZE, .kind = RECORD_BLOB,
				   .chunk_shift = CHUNK_SHIFT_DEFAULT, .length = w->size };
	char from[PATH_SIZE], to[PATH_SIZE], hex[HASH_HEX_SIZE + 1];
	uint8_t header[PACK_HEADER_SIZE];
	struct index_entry e;
	uint32_t pack_id;
	int ret;

	memcpy(rec.hash, hash, BLOBFS_HASH_SIZE);
	pthread_mutex_lock(&store->lock);
	ret = -ENOENT;
	if (store->base.destroyed)
		goto out;
	ret = -EEXIST;
	if (index_lookup(store->index, hash, &e) == 0)
		goto out;
	pack_id = store->next_pack_id;
	rec.seq = store->next_seq;
	pack_header_encode(pack_id, header);
	ret = store_path(store, w->staging_name, from);
	if (ret == 0)
		ret = store_pack_path(store, pack_id, to);
	if (ret == 0)
		ret = pwrite_full(w->fd, header, sizeof(header), 0);
	if (ret == 0)
		ret = pack_write_frame(w->fd, &rec, w->crcs);
	if (ret == 0 && io->renameat(store->db->stores_fd, from, store->db->stores_fd, to) < 0)
		ret = -errno;
	if (ret == 0) {
		ret = pack_add(store, pack_id, record_end(&rec));
		if (ret < 0)
			io->renameat(store->db->stores_fd, to, store->db->stores_fd, from);
	}
	if (ret < 0) {
		/* Leave the staging file as it was: content only. */
		if (io->ftruncate(w->fd, (off_t)(STAGING_DATA_OFFSET + w->size)) < 0)
			log_warning("store %s: cannot trim staging file: %s", store->base.name,
				    strerror(errno));
		hash_to_hex(hash, hex);
		log_error("store %s: cannot save blob %s (%" PRIu64 " bytes): %s", store->base.name,
			  hex, w->size, strerror(-ret));
		goto out;
	}
	store->next_pack_id = pack_id + 1;
	store->next_seq = rec.seq + 1;
	struct pack_info *adopted = pack_find(store, pack_id);
	adopted->max_seq = adopted->last_seq = rec.seq;
	adopted->last_offset = rec.offset;
	if (store_index_record(store, pack_id, &rec) < 0)
		log_error("store %s: out of memory indexing a saved blob; it shows after the next mount",
			  store->base.name);
	store->dir_dirty = true;
	w->adopted_fd = dup(w->fd);
	store_sync_later(store, w->fd); /* the next flush makes it durable */
	w->fd = -1;
out:
	pthread_mutex_unlock(&store->lock);
	return ret;
}

/* After a large blob's staging file became its pack, a further write needs
 * a staging file again, holding the committed content: copied from that
 * pack, which the writer keeps open (so a delete of the blob meanwhile does
 * not take the bytes away). */
static int writer_rematerialize(struct local_writer *w)
{
	char hex[HASH_HEX_SIZE + 1];
	int ret = w->adopted_fd < 0 ? -EIO : 0;

	if (ret == 0)
		ret = writer_create_staging(w);
	if (ret == 0)
		ret = copy_file_bytes(w->adopted_fd, STAGING_DATA_OFFSET, w->fd, STAGING_DATA_OFFSET,
				      w->size);
	if (ret == 0)
		ret = writer_digest_reset(w);
	if (ret == 0) {
		close(w->adopted_fd);
		w->adopted_fd = -1;
	} else {
		hash_to_hex(w->committed_hash, hex);
		log_error("store %s: cannot reopen saved blob %s for writing: %s",
			  w->store->base.name, hex, strerror(-ret));
		if (w->fd >= 0) {
			char path[PATH_SIZE];
			io->close(w->fd);
			w->fd = -1;
			if (store_path(w->store, w->staging_name, path) == 0)
				io->unlinkat(w->store->db->stores_fd, path, 0);
		}
		ret = ret == -ENOSPC ? ret : -EIO;
	}
	return ret;
}

static void local_writer_free(struct blob_writer *base);

static int local_writer_new(struct store *base, struct blob_writer **out)
{
	struct local_store *store = (struct local_store *)base;
	struct local_writer *w = calloc(1, sizeof(*w));
	int ret = -ENOMEM;

	*out = NULL;
	if (!w)
		return ret;
	w->fd = w->adopted_fd = -1;
	w->in_memory = true;
	w->store = store;
	w->base.store = store_hold(&store->base);
	pthread_mutex_init(&w->lock, NULL);
	w->dirty = true;
	ret = hasher_new(&w->hasher);
	if (ret < 0) {
		local_writer_free(&w->base);
		return ret;
	}
	*out = &w->base;
	return 0;
}

static void local_writer_free(struct blob_writer *base)
{
	struct local_writer *w = (struct local_writer *)base;
	char path[PATH_SIZE];

	if (!w)
		return;
	if (w->fd >= 0) {
		io->close(w->fd);
		if (store_path(w->store, w->staging_name, path) == 0)
			io->unlinkat(w->store->db->stores_fd, path, 0);
	}
	if (w->adopted_fd >= 0)
		close(w->adopted_fd);
	free(w->mem);
	hasher_free(w->hasher);
	free(w->crcs);
	pthread_mutex_destroy(&w->lock);
	store_close(&w->store->base);
	free(w);
}

static int local_writer_write(struct blob_writer *base, const void *buf, size_t size,
			      uint64_t off)
{
	struct local_writer *w = (struct local_writer *)base;
	int ret = 0;

	if (off > RECORD_LENGTH_MAX || size > RECORD_LENGTH_MAX - off)
		return -EFBIG;
	if (size == 0)
		return 0; /* as write(2): nothing written, nothing changes */
	pthread_mutex_lock(&w->lock);
	ret = w->error;
	if (ret == 0)
		ret = writer_prepare(w, off + size);
	/* The reserve is checked as the content grows, in memory too, so that
	 * a full disk shows at write() already. */
	if (ret == 0 && off + size > w->size)
		ret = check_space(w->store->db, off + size - w->size);
	if (ret == 0 && w->in_memory)
		memcpy(w->mem + off, buf, size);
	else if (ret == 0)
		ret = pwrite_full(w->fd, buf, size, STAGING_DATA_OFFSET + off);
	if (ret < 0) {
		/* A write that failed may have written part of its bytes: this
		 * content is not what its writer meant, and is never saved. */
		w->error = ret;
		goto out;
	}
	w->dirty = true;
	if (off + size > w->size)
		w->size = off + size;
	/* Sequential writes extend the digest; an overwrite of digested bytes
	 * restarts it (the commit then reads the file back once). */
	if (off == w->digested)
		ret = writer_feed(w, buf, size);
	else if (off < w->digested)
		ret = writer_digest_reset(w);
out:
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static int local_writer_read(struct blob_writer *base, void *buf, size_t size, uint64_t off,
			     size_t *got)
{
	struct local_writer *w = (struct local_writer *)base;
	int ret = 0;

	pthread_mutex_lock(&w->lock);
	*got = 0;
	ret = writer_prepare(w, 0);
	if (ret < 0 || off >= w->size)
		goto out;
	if (w->size - off < size)
		size = (size_t)(w->size - off);
	ret = writer_content_read(w, buf, size, off);
	if (ret == 0)
		*got = size;
out:
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static int local_writer_truncate(struct blob_writer *base, uint64_t size)
{
	struct local_writer *w = (struct local_writer *)base;
	int ret = 0;

	if (size > RECORD_LENGTH_MAX)
		return -EFBIG;
	pthread_mutex_lock(&w->lock);
	ret = w->error;
	if (ret == 0)
		ret = writer_prepare(w, size);
	if (ret == 0 && w->in_memory && size < w->size)
		memset(w->mem + size, 0, (size_t)(w->size - size)); /* regrowth reads zeros */
	else if (ret == 0 && !w->in_memory &&
		 io->ftruncate(w->fd, (off_t)(STAGING_DATA_OFFSET + size)) < 0)
		ret = -errno;
	if (ret < 0) {
		w->error = ret;
		goto out;
	}
	if (size < w->digested)
		ret = writer_digest_reset(w);
	w->size = size;
	w->dirty = true;
out:
	pthread_mutex_unlock(&w->lock);
	return ret;
}

static uint64_t local_writer_size(struct blob_writer *base)
{
	struct local_writer *w = (struct local_writer *)base;
	uint64_t size;

	pthread_mutex_lock(&w->lock);
	size = w->size;
	pthread_mutex_unlock(&w->lock);
	return size;
}

static int local_writer_commit(struct blob_writer *base, uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct local_writer *w = (struct local_writer *)base;
	struct local_store *store = w->store;
	uint8_t *data = NULL;
	int ret = 0;

	pthread_mutex_lock(&w->lock);
	ret = w->error;
	if (ret < 0)
		goto out;
	if (w->committed && !w->dirty) {
		memcpy(hash, w->committed_hash, BLOBFS_HASH_SIZE);
		if (local_blob_info(&store->base, hash, NULL) == 0) {
			ret = -EEXIST;
			goto out;
		}
	}
	ret = writer_prepare(w, 0);
	if (ret == 0)
		ret = writer_digest_finish(w, hash);
	if (ret < 0)
		goto out;
	if (w->size >= store->db->base.opts.large_blob_min) {
		if (w->in_memory)
			ret = writer_spill(w);
		if (ret == 0)
			ret = store_adopt_staging(store, w, hash);
	} else if (w->in_memory) {
		ret = store_save_small(store, hash, w->mem ? w->mem : (uint8_t *)"", w->size, w->crcs);
	} else {
		ret = -ENOMEM;
		data = malloc(w->size ? (size_t)w->size : 1);
		if (data)
			ret = pread_full(w->fd, data, (size_t)w->size, STAGING_DATA_OFFSET);
		if (ret == 0)
			ret = store_save_small(store, hash, data, w->size, w->crcs);
	}
	if (ret == 0 || ret == -EEXIST) {
		w->committed = true;
		w->dirty = false;
		memcpy(w->committed_hash, hash, BLOBFS_HASH_SIZE);
	}
	/* The digest was finalised; a later change is hashed afresh. */
	if (writer_digest_reset(w) < 0 && ret >= 0)
		ret = -EIO;
out:
	pthread_mutex_unlock(&w->lock);
	free(data);
	return ret;
}

static int local_blob_save(struct store *base, const void *data, size_t len,
			   uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct local_store *store = (struct local_store *)base;
	struct local_writer *w = NULL;
	int ret;

	if (len < store->db->base.opts.large_blob_min) {
		ret = hash_buffer(data, len, hash);
		if (ret == 0)
			ret = store_save_small(store, hash, data, len, NULL);
		return ret;
	}
	ret = local_writer_new(&store->base, (struct blob_writer **)&w);
	if (ret == 0)
		ret = local_writer_write(&w->base, data, len, 0);
	if (ret == 0)
		ret = local_writer_commit(&w->base, hash);
	if (w)
		local_writer_free(&w->base);
	return ret;
}

/* ---- compaction ---- */

#define TOMBSTONE_SIZE (RECORD_HEADER_SIZE + RECORD_TRAILER_SIZE)

/* Bytes of a pack no live blob or tombstone uses. */
static uint64_t pack_dead_bytes(const struct pack_info *p)
{
	uint64_t used = PACK_HEADER_SIZE + p->live_bytes + p->tombstone_count * TOMBSTONE_SIZE;
	return p->size > used ? p->size - used : 0;
}

/* A pack compaction may rewrite: not appended to, wholly durable, readable. */
static bool pack_compactable(const struct local_store *store, const struct pack_info *p)
{
	return !(store->active_fd >= 0 && p->id == store->active_id) && !p->no_compact &&
	       !p->compacting &&
	       p->max_seq <= __atomic_load_n(&store->durable_seq, __ATOMIC_ACQUIRE) && !p->damaged;
}

struct live_list {
	uint32_t pack_id;
	struct index_entry *entries;
	size_t count, capacity;
};

static int collect_live(const struct index_entry *e, void *arg)
{
	struct live_list *list = arg;

	if (e->pack_id != list->pack_id)
		return 0;
	if (list->count == list->capacity) {
		size_t capacity = list->capacity ? 2 * list->capacity : 64;
		struct index_entry *entries = realloc(list->entries, capacity * sizeof(*entries));
		if (!entries)
			return -ENOMEM;
		list->entries = entries;
		list->capacity = capacity;
	}
	list->entries[list->count++] = *e;
	return 0;
}

static int compare_entry_offset(const void *a, const void *b)
{
	const struct index_entry *x = a, *y = b;
	return x->offset < y->offset ? -1 : x->offset > y->offset;
}

/* The live list is sorted by offset (see store_compact_pack). */
static bool live_has(const struct live_list *list, const struct record_info *rec)
{
	struct index_entry key = { .offset = rec->offset };
	const struct index_entry *e = list->count ?
		bsearch(&key, list->entries, list->count, sizeof(key), compare_entry_offset) : NULL;

	return e && !memcmp(e->hash, rec->hash, BLOBFS_HASH_SIZE);
}

/*
 * Rewrites one pack with only its live blobs (and, unless drop_tombstones,
 * its tombstones), then retires it. The new pack is written under a staging
 * name, made durable and only then renamed into place; the index moves to it
 * and the old pack goes last. A crash at any step leaves either the old pack,
 * or both (the same records twice, same seq: harmless), never neither.
 * Readers holding the old pack open keep reading it.
 */
static int store_compact_pack(struct local_store *store, uint32_t pack_id, bool drop_tombstones)
{
	struct live_list live = { .pack_id = pack_id };
	uint64_t *moved = NULL; /* old offsets of the blob records copied, in order */
	size_t moved_count = 0;
	char from_path[PATH_SIZE], staging[PATH_SIZE], to_path[PATH_SIZE], name[64];
	uint8_t header[PACK_HEADER_SIZE];
	uint64_t out_pos = PACK_HEADER_SIZE, copied_live = 0, tombstones = 0, max_seq = 0;
	struct pack_scan scan;
	struct record_info rec;
	uint32_t new_id;
	int in = -1, out = -1, ret;
	struct statvfs st;

	pthread_mutex_lock(&store->lock);
	ret = store->base.destroyed ? -ENOENT : index_foreach(store->index, collect_live, &live);
	new_id = store->next_pack_id++;
	struct pack_info *source_info = pack_find(store, pack_id);
	if (ret == 0 && (!source_info || !pack_compactable(store, source_info)))
		ret = -ENOENT; /* became active, or went, since it was picked */
	if (ret == 0)
		source_info->compacting = true; /* appends now go elsewhere */
	pthread_mutex_unlock(&store->lock);
	if (ret < 0)
		goto out;
	if (live.count)
		qsort(live.entries, live.count, sizeof(*live.entries), compare_entry_offset);
	ret = store_pack_path(store, pack_id, from_path);
	if (ret < 0)
		goto out;
	in = io->openat(store->db->stores_fd, from_path, O_RDONLY | O_CLOEXEC, 0);
	ret = in < 0 ? -errno : pack_scan_open(&scan, in, pack_id);
	if (ret < 0)
		goto out;
	/* Compaction may use the reserve, but not the last of the disk. */
	for (size_t i = 0; i < live.count; i++)
		copied_live += record_size(live.entries[i].length, CHUNK_SHIFT_DEFAULT);
	/* The reserve saves leave free is there for this: all of it may go,
	 * but for a small margin. */
	if (fstatvfs(store->db->stores_fd, &st) == 0 &&
	    (uint64_t)st.f_bavail * st.f_frsize < copied_live + COMPACT_MARGIN) {
		log_warning("store %s: not enough free space to compact pack %08x (%" PRIu64
			    " live bytes)", store->base.name, pack_id, copied_live);
		ret = -ENOSPC;
		goto out;
	}
	snprintf(name, sizeof(name), "staging-compact-%08x.tmp", new_id);
	ret = store_path(store, name, staging);
	if (ret == 0)
		ret = store_pack_path(store, new_id, to_path);
	if (ret < 0)
		goto out;
	out = io->openat(store->db->stores_fd, staging, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ret = out < 0 ? -errno : 0;
	if (ret == 0 && !(moved = malloc((live.count ? live.count : 1) * sizeof(*moved))))
		ret = -ENOMEM;
	if (ret < 0)
		goto out;
	pack_header_encode(new_id, header);
	ret = pwrite_full(out, header, sizeof(header), 0);
	copied_live = 0;
	while (ret == 0) {
		int found = pack_scan_next(&scan, &rec);
		if (found == 0)
			break;
		if (found < 0) {
			ret = found; /* damage appeared since the pack was scanned: leave it */
			break;
		}
		uint64_t size = record_size(rec.length, rec.chunk_shift);
		if (rec.kind == RECORD_TOMBSTONE ? drop_tombstones : !live_has(&live, &rec))
			continue;
		/* Records are position-independent: copied byte for byte, so
		 * their checksums travel with them. */
		if (rec.kind == RECORD_BLOB) {
			if (moved_count == live.count) {
				ret = -EIO; /* more live copies than live entries */
				break;
			}
			moved[moved_count++] = rec.offset;
		}
		ret = copy_file_bytes(in, rec.offset, out, out_pos, size);
		out_pos += size;
		if (rec.kind == RECORD_TOMBSTONE)
			tombstones++;
		if (rec.seq > max_seq)
			max_seq = rec.seq;
	}
	if (ret == 0 && io->fsync(out) < 0)
		ret = -errno;
	bool renamed = false;
	if (ret == 0 && io->renameat(store->db->stores_fd, staging, store->db->stores_fd, to_path) < 0)
		ret = -errno;
	renamed = ret == 0;
	if (ret == 0)
		ret = fsync_dir_at(store->db->stores_fd, store->base.name);
	if (ret < 0) {
		/* Not kept: whichever name the copy has now goes. */
		io->unlinkat(store->db->stores_fd, renamed ? to_path : staging, 0);
		goto out;
	}

	/* Move the index to the new pack; entries deleted or re-saved since
	 * the copy are left alone (their copies are dead on arrival). */
	pthread_mutex_lock(&store->lock);
	ret = pack_add(store, new_id, out_pos);
	if (ret == 0) {
		struct pack_info *p = pack_find(store, new_id);
		p->tombstone_count = tombstones;
		p->max_seq = max_seq;
	} else {
		io->unlinkat(store->db->stores_fd, to_path, 0);
	}
	pack_scan_open(&scan, out, new_id);
	size_t k = 0;
	while (ret == 0 && pack_scan_next(&scan, &rec) == 1) {
		struct index_entry e;
		struct pack_info *out_pack = pack_find(store, new_id);
		out_pack->last_offset = rec.offset;
		out_pack->last_seq = rec.seq;
		if (rec.kind != RECORD_BLOB || k >= moved_count)
			continue;
		uint64_t old_offset = moved[k++];
		/* Only entries still pointing at the record copied move. */
		if (index_lookup(store->index, rec.hash, &e) < 0 || e.pack_id != pack_id ||
		    e.offset != old_offset)
			continue;
		pack_account(store, &e, -1);
		e.pack_id = new_id;
		e.offset = rec.offset;
		if (index_put(store->index, &e) == 0)
			pack_account(store, &e, +1);
	}
	/* A delete meanwhile may have dropped the old pack already. */
	struct pack_info *source = pack_find(store, pack_id);
	if (ret == 0 && source && source->live_count == 0) {
		if (io->unlinkat(store->db->stores_fd, from_path, 0) < 0)
			log_warning("store %s: cannot remove compacted %s: %s", store->base.name,
				    from_path, strerror(errno));
		pack_remove(store, pack_id);
		store->dir_dirty = true;
	}
	if (ret == 0)
		store_drop_dead_pack(store, new_id); /* all deleted during the copy */
	pthread_mutex_unlock(&store->lock);
	if (ret == 0)
		log_info("store %s: pack %08x compacted into %08x (%" PRIu64 " bytes kept)",
			 store->base.name, pack_id, new_id, out_pos);
out:
	pthread_mutex_lock(&store->lock);
	source_info = pack_find(store, pack_id);
	if (source_info)
		source_info->compacting = false;
	pthread_mutex_unlock(&store->lock);
	if (ret < 0 && ret != -ENOSPC && ret != -ENOENT) {
		struct pack_info *failed;
		log_error("store %s: compacting pack %08x failed: %s; not retried before the next "
			  "mount", store->base.name, pack_id, strerror(-ret));
		pthread_mutex_lock(&store->lock);
		failed = pack_find(store, pack_id);
		if (failed)
			failed->no_compact = true;
		pthread_mutex_unlock(&store->lock);
	}
	if (in >= 0)
		io->close(in);
	if (out >= 0)
		io->close(out);
	free(moved);
	free(live.entries);
	return ret;
}

/*
 * The pack most worth compacting at percent (0: any dead byte) whose live
 * bytes fit in the free space, or 0: on a nearly full disk the packs with the
 * most dead space, which need the least room, go first.
 */
static uint32_t store_pick_pack(struct local_store *store, unsigned percent, uint32_t after)
{
	uint64_t avail = UINT64_MAX, best_dead = 0;
	struct statvfs st;
	uint32_t id = 0;

	if (fstatvfs(store->db->stores_fd, &st) == 0)
		avail = (uint64_t)st.f_bavail * st.f_frsize;
	pthread_mutex_lock(&store->lock);
	for (size_t i = 0; !store->base.destroyed && i < store->pack_count; i++) {
		struct pack_info *p = &store->packs[i];
		uint64_t dead = pack_dead_bytes(p), keep = p->size - dead;
		if (p->id <= after || !pack_compactable(store, p) || dead == 0)
			continue;
		if (dead * 100 < (uint64_t)percent * (p->size - PACK_HEADER_SIZE) ||
		    keep + COMPACT_MARGIN > avail || dead <= best_dead)
			continue;
		id = p->id;
		best_dead = dead;
	}
	pthread_mutex_unlock(&store->lock);
	return id;
}

static int local_store_compact(struct store *base, unsigned percent)
{
	struct local_store *store = (struct local_store *)base;
	int ret = 0;

	/* Each pass visits ascending ids, best first among those not yet
	 * visited; a few passes catch what an earlier choice skipped. Bounded,
	 * so a pack that cannot be retired is not retried forever. */
	for (int pass = 0; pass < 4 && ret == 0; pass++) {
		uint32_t id = 0;
		bool did = false;
		while (ret == 0 && (id = store_pick_pack(store, percent, id)) != 0) {
			ret = store_compact_pack(store, id, false);
			did = true;
		}
		if (!did)
			break;
	}
	return ret == -ENOENT || ret == -ENOSPC ? 0 : ret;
}

static int compact_step_one(struct store *base, void *arg)
{
	struct local_store *store = (struct local_store *)base;
	uint32_t id = store_pick_pack(store, *(unsigned *)arg, 0);

	/* One pack per store per step keeps each step short. */
	return id ? store_compact_pack(store, id, false) : 0;
}

static void blobdb_compact_step(struct local_db *db)
{
	unsigned percent = db->base.opts.compact_percent;

	blobdb_each_store(&db->base, compact_step_one, &percent);
}

/* Once no pack holds a dead blob record, no tombstone cancels anything:
 * offline compaction then rewrites the packs that hold tombstones without
 * them. Never online: a save could race with the check. */
static int store_drop_tombstones(struct local_store *store)
{
	bool clean = true;
	int ret = 0;

	pthread_mutex_lock(&store->lock);
	for (size_t i = 0; i < store->pack_count; i++)
		if (pack_dead_bytes(&store->packs[i]) || store->packs[i].damaged)
			clean = false;
	pthread_mutex_unlock(&store->lock);
	if (!clean)
		return 0;
	for (uint32_t after = 0;;) {
		uint32_t id = 0;
		pthread_mutex_lock(&store->lock);
		for (size_t i = 0; i < store->pack_count && !id; i++)
			if (store->packs[i].id > after && store->packs[i].tombstone_count &&
			    pack_compactable(store, &store->packs[i]))
				id = store->packs[i].id;
		pthread_mutex_unlock(&store->lock);
		if (!id)
			break;
		after = id;
		ret = store_compact_pack(store, id, true);
		if (ret < 0)
			break;
	}
	return ret;
}

static int compact_full(struct store *base, void *arg)
{
	struct local_store *store = (struct local_store *)base;
	FILE *progress = arg;
	int ret;

	if (progress)
		fprintf(progress, "compacting store %s\n", store->base.name);
	/* The newest pack is never rewritten while it might be appended to;
	 * offline nothing is appended, so retire it as the active pack. */
	pthread_mutex_lock(&store->lock);
	if (store->active_fd >= 0) {
		store_sync_later(store, store->active_fd);
		store->active_fd = -1;
	}
	store->offline = true;
	pthread_mutex_unlock(&store->lock);
	ret = store_flush(store);
	if (ret == 0)
		ret = local_store_compact(&store->base, 0);
	if (ret == 0)
		ret = store_drop_tombstones(store);
	if (ret == 0)
		ret = store_flush(store);
	return ret;
}

static int local_db_compact(struct blobdb *base, FILE *progress)
{
	struct local_db *db = (struct local_db *)base;
	return blobdb_each_store(&db->base, compact_full, progress);
}

const struct backend_ops local_backend = {
	.name = "local",
	.db_open = local_db_open,
	.db_start = local_db_start,
	.db_stop = local_db_stop,
	.db_free = local_db_free,
	.db_note_pid = local_db_note_pid,
	.db_sync = local_db_sync,
	.db_compact = local_db_compact,
	.db_statfs = local_db_statfs,
	.store_create = local_store_create,
	.store_remove = local_store_remove,
	.store_purge = local_store_purge,
	.store_free = local_store_free,
	.store_sync = local_store_sync,
	.store_compact = local_store_compact,
	.blob_info = local_blob_info,
	.blob_delete = local_blob_delete,
	.blob_list = local_blob_list,
	.blob_count = local_blob_count,
	.blob_save = local_blob_save,
	.reader_open = local_reader_open,
	.reader_read = local_reader_read,
	.reader_close = local_reader_close,
	.writer_new = local_writer_new,
	.writer_write = local_writer_write,
	.writer_read = local_writer_read,
	.writer_truncate = local_writer_truncate,
	.writer_size = local_writer_size,
	.writer_commit = local_writer_commit,
	.writer_free = local_writer_free,
};
