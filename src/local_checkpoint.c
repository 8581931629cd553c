/*
 * local_checkpoint.c - the index checkpoint of a store: written at a clean
 * close so that the next open reads it instead of scanning every pack, and
 * loaded all-or-nothing (checkpoint.c knows the bytes; this file knows when
 * a checkpoint can be trusted for a store).
 */
#include "local.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "checkpoint.h"
#include "io.h"
#include "log.h"
#include "datadir.h"

static int compare_id(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

struct gone_packs {
	const uint32_t *ids; /* sorted */
	size_t count;
};

static bool in_gone_pack(const struct index_entry *e, void *arg)
{
	const struct gone_packs *g = arg;

	return bsearch(&e->pack_id, g->ids, g->count, sizeof(*g->ids), compare_id) != NULL;
}

/*
 * Loads the store's checkpoint, all or nothing: every pack it covers that is
 * still there must be as long, with its last covered record in place. Then
 * its entries are the index and only what follows each covered prefix is
 * scanned. Otherwise it is ignored and every pack is scanned: a partial use
 * could let a pack scanned whole resurrect a blob whose tombstone only the
 * checkpoint accounted for. A covered pack that is gone was removed whole
 * after the checkpoint was written (every record in it dead: a deleted
 * large blob, a compacted pack), by records the scan reads (the tombstones,
 * the copies, in newer packs or past the covered prefixes): its entries go
 * and the rest is used, as a scan of everything would have it. (A
 * checkpoint written in the background, not at a clean close, meets this
 * often.)
 */
int ckpt_load(struct local_store *store, int dir_fd, const uint32_t *ids,
				 size_t id_count)
{
	const struct io_ops *io = store->db->io;
	struct checkpoint_header h;
	struct checkpoint_pack *packs = NULL;
	int ret = checkpoint_read(io, dir_fd, STORE_CHECKPOINT, &h, &packs, store->index);
	bool usable = ret == 0;
	uint32_t *gone = NULL;
	size_t gone_count = 0;

	if (ret < 0 && ret != -ENOENT)
		log_warning("store %s: index checkpoint unusable (%s); scanning every pack",
			    store->base.name, strerror(-ret));
	if (usable && h.pack_count && !(gone = calloc(h.pack_count, sizeof(*gone))))
		usable = false;
	for (uint32_t i = 0; usable && i < h.pack_count; i++) {
		if (!bsearch(&packs[i].id, ids, id_count, sizeof(*ids), compare_id))
			gone[gone_count++] = packs[i].id;
		else if (!checkpoint_pack_matches(io, dir_fd, &packs[i]))
			usable = false;
	}
	if (usable && gone_count) {
		log_debug("store %s: the index checkpoint names %zu packs removed since; their "
			  "entries go", store->base.name, gone_count);
		qsort(gone, gone_count, sizeof(*gone), compare_id);
		struct gone_packs g = { gone, gone_count };
		if (index_remove_if(store->index, in_gone_pack, &g) < 0)
			usable = false;
	}
	if (!usable) {
		if (ret == 0) {
			log_info("store %s: index checkpoint is out of date; scanning every pack",
				 store->base.name);
			io->unlinkat(dir_fd, STORE_CHECKPOINT, 0);
		}
		index_free(store->index);
		store->index = NULL;
		ret = index_new(&store->index);
		goto out;
	}
	for (uint32_t i = 0; ret == 0 && i < h.pack_count; i++) {
		if (bsearch(&packs[i].id, gone, gone_count, sizeof(*gone), compare_id))
			continue;
		ret = packtab_add(store, packs[i].id, packs[i].size);
		if (ret == 0) {
			struct pack_info *p = packtab_find(store, packs[i].id);
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
	store->ckpt_seq = gone_count ? 0 : h.next_seq; /* a fresh one is due */
	store->ckpt_next_pack_id = h.next_pack_id;
	if (h.next_pack_id > store->next_pack_id)
		store->next_pack_id = h.next_pack_id;
out:
	free(gone);
	free(packs);
	return ret;
}

/* What a checkpoint is written from: taken under store->lock at a moment
 * when everything it covers is, or is about to be made, durable. */
struct ckpt_snapshot {
	struct checkpoint_header h;
	struct checkpoint_pack *packs; /* sorted by id, as the store's */
};

/* Fills snap from the store (lock held). */
static int ckpt_snapshot(struct local_store *store, struct ckpt_snapshot *snap)
{
	int ret = -ENOMEM;

	memset(snap, 0, sizeof(*snap));
	snap->packs = calloc(store->pack_count ? store->pack_count : 1, sizeof(*snap->packs));
	if (!snap->packs)
		goto out;
	for (size_t i = 0; i < store->pack_count; i++) {
		struct pack_info *p = &store->packs[i];
		snap->packs[i] = (struct checkpoint_pack){ .id = p->id, .size = p->size,
			.tombstone_count = p->tombstone_count, .max_seq = p->max_seq,
			.last_offset = p->last_offset, .last_seq = p->last_seq,
			.damaged = p->damaged, .appendable = p->appendable };
	}
	snap->h.pack_count = (uint32_t)store->pack_count;
	snap->h.entry_count = index_count(store->index);
	snap->h.next_seq = store->next_seq;
	snap->h.next_pack_id = store->next_pack_id;
	ret = 0;
out:
	if (ret < 0) {
		free(snap->packs);
		snap->packs = NULL;
	}
	return ret;
}

static void ckpt_snapshot_free(struct ckpt_snapshot *snap)
{
	free(snap->packs);
	memset(snap, 0, sizeof(*snap));
}

/*
 * The entries of a checkpoint written in the background come from the live
 * index, a batch at a time under the store's lock, so that a checkpoint of
 * ten million blobs does not need a second copy of their index (560 MB). The
 * index moves meanwhile; only entries whose record lies in what the snapshot
 * covers are written, which makes the file what a checkpoint taken at the
 * snapshot would have been, give or take changes that the records past the
 * covered prefixes (which a mount scans) replay anyway: a blob deleted since
 * may be in it (its tombstone follows), a blob saved since is not (its
 * record follows), a blob moved by a compaction since is left out or points
 * into a pack that is gone (a mount drops those entries; the new pack is
 * not covered, so it is scanned whole).
 */
struct ckpt_walk {
	struct local_store *store;
	const struct ckpt_snapshot *snap;
	uint8_t last[BLOBFS_HASH_SIZE];
	bool started;
};

static int compare_pack_id(const void *key, const void *pack)
{
	uint32_t id = *(const uint32_t *)key, other = ((const struct checkpoint_pack *)pack)->id;
	return id < other ? -1 : id > other;
}

static long ckpt_walk_next(void *arg, struct index_entry *out, size_t max)
{
	struct ckpt_walk *w = arg;
	struct local_store *store = w->store;
	size_t got, kept = 0;

	/* A batch whose entries all go moves the walk on to the next. */
	do {
		pthread_mutex_lock(&store->lock);
		if (store->base.destroyed) {
			pthread_mutex_unlock(&store->lock);
			return -ENOENT;
		}
		got = index_seek_many(store->index, w->started ? w->last : NULL, w->started, out, max);
		pthread_mutex_unlock(&store->lock);
		if (got == 0)
			return 0;
		memcpy(w->last, out[got - 1].hash, BLOBFS_HASH_SIZE);
		w->started = true;
		for (size_t i = 0; i < got; i++) {
			const struct checkpoint_pack *p = bsearch(&out[i].pack_id, w->snap->packs,
								  w->snap->h.pack_count, sizeof(*p),
								  compare_pack_id);
			if (out[i].kind == RECORD_BLOB && p && out[i].offset < p->size)
				out[kept++] = out[i];
		}
	} while (kept == 0);
	return (long)kept;
}

/* Writes the checkpoint file (from the index itself when the caller holds
 * the lock, else through a walk), renames it over the old one and syncs the
 * directory. */
static int ckpt_snapshot_write(struct local_store *store, struct ckpt_snapshot *snap, bool locked)
{
	const struct io_ops *io = store->db->io;
	struct ckpt_walk walk = { .store = store, .snap = snap };
	int dir_fd, ret;

	dir_fd = io->openat(store->db->stores_fd, store->base.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	ret = dir_fd < 0 ? -errno : 0;
	if (ret == 0 && locked)
		ret = checkpoint_write(io, dir_fd, STORE_CHECKPOINT_STAGING, &snap->h, snap->packs,
				       store->index);
	else if (ret == 0)
		ret = checkpoint_write_batched(io, dir_fd, STORE_CHECKPOINT_STAGING, &snap->h,
					       snap->packs, ckpt_walk_next, &walk);
	if (ret == 0 && io->renameat(dir_fd, STORE_CHECKPOINT_STAGING, dir_fd, STORE_CHECKPOINT) < 0)
		ret = -errno;
	if (ret == 0 && io->fsync(dir_fd) < 0)
		ret = -errno;
	if (ret < 0) {
		log_error("store %s: cannot write its index checkpoint: %s", store->base.name,
			  strerror(-ret));
		if (dir_fd >= 0)
			io->unlinkat(dir_fd, STORE_CHECKPOINT_STAGING, 0);
	}
	if (dir_fd >= 0)
		io->close(dir_fd);
	return ret;
}

/* Writes the index as the store's checkpoint (at a clean close, after the
 * last flush: everything it covers is durable). */
static int ckpt_write(struct local_store *store)
{
	struct ckpt_snapshot snap = { 0 };
	int ret = 0;

	pthread_mutex_lock(&store->lock);
	if (store->base.destroyed || store->flush_failed)
		goto out;
	/* Nothing appended and no pack made since the checkpoint on disk:
	 * it is still right (a million-blob store's takes seconds to write). */
	if (store->ckpt_seq == store->next_seq && store->ckpt_next_pack_id == store->next_pack_id)
		goto out;
	ret = ckpt_snapshot(store, &snap);
	if (ret == 0)
		ret = ckpt_snapshot_write(store, &snap, true);
	if (ret == 0) {
		store->ckpt_seq = snap.h.next_seq;
		store->ckpt_next_pack_id = snap.h.next_pack_id;
	}
out:
	pthread_mutex_unlock(&store->lock);
	ckpt_snapshot_free(&snap);
	return ret;
}

int ckpt_write_one(struct store *base, void *arg)
{
	struct local_store *store = (struct local_store *)base;
	(void)arg;
	return ckpt_write(store);
}

/*
 * Checkpoints in the background. Without them a mount after a crash scans
 * every record appended since the last clean close (about 2.3 s for a
 * million small ones). One is written once the records appended since the
 * last reach half the index (at least CKPT_RECORDS_MIN): a mount after a
 * crash then scans at most a third of the records, and the checkpoints
 * written add up to about three times the last one's size (64 bytes an
 * entry), about 13% more bytes written for blobs of 1 KiB, far less for
 * larger ones.
 */
#define CKPT_RECORDS_MIN (UINT64_C(1) << 17)

struct ckpt_take {
	struct ckpt_snapshot snap;
	int ret;
};

static void ckpt_take(struct local_store *store, void *arg)
{
	struct ckpt_take *t = arg;

	t->ret = ckpt_snapshot(store, &t->snap);
}

/* arg: NULL for the compactor thread's call (only when due), non-NULL to
 * write one now (blobdb_checkpoint); the result goes there. */
int ckpt_background_one(struct store *base, void *arg)
{
	struct local_store *store = (struct local_store *)base;
	struct ckpt_take t = { .ret = -EAGAIN };
	int *result = arg;
	uint64_t since, half;
	bool due, can;
	int ret;

	pthread_mutex_lock(&store->lock);
	since = store->next_seq - store->ckpt_seq;
	half = index_count(store->index) / 2;
	can = !store->base.destroyed && !store->flush_failed && !store->offline;
	due = can && (result || since >= (half > CKPT_RECORDS_MIN ? half : CKPT_RECORDS_MIN));
	pthread_mutex_unlock(&store->lock);
	if (!due)
		return 0;
	ret = flush_store_taking(store, ckpt_take, &t);
	if (ret == 0 && t.ret == 0)
		ret = ckpt_snapshot_write(store, &t.snap, false);
	else if (ret == 0)
		log_warning("store %s: no memory for a checkpoint: %s", store->base.name,
			    strerror(-t.ret));
	if (ret == 0 && t.ret == 0) {
		pthread_mutex_lock(&store->lock);
		if (t.snap.h.next_seq > store->ckpt_seq) {
			store->ckpt_seq = t.snap.h.next_seq;
			store->ckpt_next_pack_id = t.snap.h.next_pack_id;
		}
		pthread_mutex_unlock(&store->lock);
		log_debug("store %s: index checkpoint of %" PRIu64 " entries written",
			  store->base.name, t.snap.h.entry_count);
	}
	ckpt_snapshot_free(&t.snap);
	if (result && *result == 0)
		*result = ret < 0 ? ret : t.ret;
	/* A failure is logged where it happened; the store goes on. */
	return 0;
}

int local_db_checkpoint(struct blobdb *base)
{
	int result = 0;

	blobdb_each_store(base, ckpt_background_one, &result);
	return result;
}
