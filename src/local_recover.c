/*
 * local_recover.c - mount-time recovery of a store: the marker read, the
 * checkpoint or a scan of every pack rebuilds the index, records newer than
 * the durable marker are verified, torn tails are cut (bytes kept in the
 * quarantine), damaged records in the middle are skipped and reported,
 * stale staging files are removed.
 */
#include "local.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "hash.h"
#include "index.h"
#include "io.h"
#include "log.h"
#include "pack.h"
#include "salvage.h"
#include "datadir.h"

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* The seq of the record at offset in a pack of the store. */
static int recover_record_seq(struct local_store *store, uint32_t pack_id, uint64_t offset, uint64_t *seq)
{
	const struct io_ops *io = store->db->io;
	uint8_t header[RECORD_HEADER_SIZE];
	struct record_info rec;
	char path[PATH_SIZE];
	int fd, ret = local_pack_path(store, pack_id, path);

	if (ret < 0)
		return ret;
	fd = io->openat(store->db->stores_fd, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = pread_full(io, fd, header, sizeof(header), offset);
	if (ret == 0)
		ret = record_header_decode(header, offset, &rec);
	io->close(fd);
	if (ret == 0)
		*seq = rec.seq;
	return ret;
}

/* Applies one record to the index being rebuilt: the newest seq wins. */
static int recover_replay_record(struct local_store *store, uint32_t pack_id,
			       const struct record_info *rec)
{
	struct index_entry old, entry;

	packtab_entry(pack_id, rec, &entry);
	if (rec->seq >= store->next_seq)
		store->next_seq = rec->seq + 1;
	/* The index does not keep seq: a hash seen twice (a delete and a new
	 * save, or a copy left by an interrupted compaction) is rare, and then
	 * the seq of the record already indexed is read back. */
	if (index_lookup(store->index, rec->hash, &old) == 0) {
		uint64_t old_seq = 0;
		int ret = recover_record_seq(store, old.pack_id, old.offset, &old_seq);
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
	const struct io_ops *io = store->db->io;
	struct pack_scan scan;
	struct record_info rec;
	int ret = pack_scan_open_headless(io, &scan, fd, pack_id);

	while (ret >= 0 && (ret = pack_scan_next(&scan, &rec)) != 0) {
		if (ret == 1 && rec.seq <= store->durable_seq)
			return 1;
		if (ret == -EBADMSG)
			ret = 0;
	}
	return ret;
}

/* Cuts a pack at `at`, keeping the bytes cut in the quarantine first. */
static int recover_cut(struct local_store *store, int fd, uint32_t pack_id, uint64_t at,
		       uint64_t size, const char *why)
{
	struct quarantine q = { store->db->io, store->db->quarantine_fd, store->base.name };
	char pack[PACK_NAME_SIZE], kept_as[QUARANTINE_NAME_SIZE];
	int ret;

	pack_name(pack_id, pack);
	log_warning("store %s: %s: %s at offset %" PRIu64 " (%" PRIu64 " bytes): cut off",
		    store->base.name, pack, why, at, size - at);
	ret = pack_cut_tail(&q, fd, pack, at, size, kept_as);
	if (ret == 0)
		log_warning("store %s: %s bytes %" PRIu64 "..%" PRIu64 " kept in %s/%s/%s",
			    store->base.name, pack, at, size, store->db->base.location,
			    DATADIR_QUARANTINE, kept_as);
	else
		log_error("store %s: cannot cut %s: %s", store->base.name, pack, strerror(-ret));
	return ret;
}

/* Moves a whole pack of the store into the quarantine. */
static int recover_quarantine_pack(struct local_store *store, uint32_t pack_id)
{
	const struct io_ops *io = store->db->io;
	struct quarantine q = { io, store->db->quarantine_fd, store->base.name };
	char pack[PACK_NAME_SIZE], kept_as[QUARANTINE_NAME_SIZE];
	int store_fd, ret;

	pack_name(pack_id, pack);
	store_fd = io->openat(store->db->stores_fd, store->base.name,
			      O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	ret = store_fd < 0 ? -errno : quarantine_move(&q, store_fd, pack, kept_as);
	if (store_fd >= 0)
		io->close(store_fd);
	if (ret == 0)
		log_warning("store %s: %s moved to %s/%s/%s", store->base.name, pack,
			    store->db->base.location, DATADIR_QUARANTINE, kept_as);
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
static int recover_scan_pack(struct local_store *store, uint32_t pack_id, uint64_t start)
{
	const struct io_ops *io = store->db->io;
	char path[PATH_SIZE], hex[HASH_HEX_SIZE + 1];
	uint64_t tombstones = 0, max_seq = 0, last_offset = 0, last_seq = 0, records = 0;
	uint64_t first_length = 0;
	bool damaged = false;
	struct pack_scan scan;
	struct record_info rec;
	int fd = -1, ret;

	ret = local_pack_path(store, pack_id, path);
	if (ret < 0)
		goto out;
	fd = io->openat(store->db->stores_fd, path, O_RDWR | O_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		log_error("store %s: cannot open %s: %s", store->base.name, path, strerror(-ret));
		goto out;
	}
	ret = pack_scan_open(io, &scan, fd, pack_id);
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
			ret = recover_quarantine_pack(store, pack_id);
			goto out;
		}
		if (ret < 0)
			goto out;
		log_error("store %s: %s has a damaged header; its records are used (run blobfs "
			  "fsck --repair)", store->base.name, path);
		ret = pack_scan_open_headless(io, &scan, fd, pack_id);
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
			ret = recover_cut(store, fd, pack_id, damage_start, scan.file_size,
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
			ret = recover_cut(store, fd, pack_id, damage_start, scan.file_size,
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
			ret = pack_verify_record(io, fd, &rec, NULL, &problem);
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
				ret = recover_cut(store, fd, pack_id, rec.offset, scan.file_size,
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
		ret = recover_replay_record(store, pack_id, &rec);
		if (ret < 0) {
			hash_to_hex(rec.hash, hex);
			log_error("store %s: indexing %s: %s", store->base.name, hex, strerror(-ret));
			goto out;
		}
	}
	struct pack_info *p = packtab_find(store, pack_id); /* from the checkpoint */
	if (!p) {
		ret = packtab_add(store, pack_id, scan.file_size);
		p = ret == 0 ? packtab_find(store, pack_id) : NULL;
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

static bool is_tombstone(const struct index_entry *e, void *arg)
{
	(void)arg;
	return e->kind == RECORD_TOMBSTONE;
}

static int account_entry(const struct index_entry *e, void *arg)
{
	packtab_account(arg, e, +1);
	return 0;
}

struct store_files {
	struct local_store *store;
	int dir_fd;
	uint32_t *ids; /* the packs found */
	size_t count, capacity;
};

/* One name of a store's directory: a pack is noted, a stale staging file
 * (an incoming blob never committed before a crash) removed. */
static int recover_dir_entry(const char *name, unsigned char type, void *arg)
{
	struct store_files *f = arg;
	struct local_store *store = f->store;
	const struct io_ops *io = store->db->io;
	uint32_t id;

	(void)type;
	if (name[0] == '.')
		return 0;
	if (pack_parse_name(name, &id)) {
		if (f->count == f->capacity) {
			size_t capacity = f->capacity ? 2 * f->capacity : 64;
			uint32_t *grown = realloc(f->ids, capacity * sizeof(*f->ids));
			if (!grown)
				return -ENOMEM;
			f->ids = grown;
			f->capacity = capacity;
		}
		f->ids[f->count++] = id;
		/* Even a pack whose header is bad keeps its id taken. */
		if (id >= store->next_pack_id)
			store->next_pack_id = id + 1;
	} else if (!strcmp(name, STORE_MARKER) || !strcmp(name, STORE_CHECKPOINT) ||
		   !strcmp(name, STORE_META)) {
		return 0;
	} else if (datadir_is_store_file(name)) {
		if (io->unlinkat(f->dir_fd, name, 0) < 0)
			log_warning("store %s: cannot remove stale %s: %s", store->base.name, name,
				    strerror(errno));
	} else {
		log_warning("store %s: ignoring unexpected file %s", store->base.name, name);
	}
	return 0;
}

/* Rebuilds the index from every pack and removes stale staging files. */
int recover_store(struct local_store *store)
{
	const struct io_ops *io = store->db->io;
	struct store_files files = { .store = store };
	uint32_t *ids;
	size_t id_count;
	int ret;

	files.dir_fd = io->openat(store->db->stores_fd, store->base.name,
				  O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (files.dir_fd < 0) {
		ret = -errno;
		log_error("store %s: cannot open its directory: %s", store->base.name, strerror(-ret));
		goto out;
	}
	ret = io->listdir(files.dir_fd, ".", recover_dir_entry, &files);
	if (ret < 0) {
		log_error("store %s: reading its directory: %s", store->base.name, strerror(-ret));
		goto out;
	}
	ids = files.ids;
	id_count = files.count;
	if (id_count)
		qsort(ids, id_count, sizeof(*ids), compare_u32);
	durable_marker_read(store);
	ret = ckpt_load(store, files.dir_fd, ids, id_count);
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < id_count; i++) {
		struct pack_info *p = packtab_find(store, ids[i]);
		ret = recover_scan_pack(store, ids[i], p ? p->size : 0);
		if (ret < 0)
			goto out;
	}
	/* Sequence numbers never go back below what the marker vouches for,
	 * even when the newest records are gone (tombstones dropped offline):
	 * a reused number would pass as durable without ever being synced. */
	if (store->next_seq <= store->durable_seq)
		store->next_seq = store->durable_seq + 1;
	ret = index_remove_if(store->index, is_tombstone, NULL);
	if (ret < 0)
		goto out;
	index_foreach(store->index, account_entry, store);
	ret = 0;
	if (store->next_seq - 1 > store->durable_seq) {
		ret = durable_marker_write(store, store->next_seq - 1);
		if (ret == 0)
			store->durable_seq = store->next_seq - 1;
		else
			log_error("store %s: cannot write its durable marker: %s", store->base.name,
				  strerror(-ret));
	}
out:
	if (files.dir_fd >= 0)
		io->close(files.dir_fd);
	free(files.ids);
	return ret;
}
