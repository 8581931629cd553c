/*
 * local_compact.c - compaction: picking the packs most worth rewriting,
 * rewriting one with its live records (salvage.c's pack_rewrite) and moving
 * the index to the copy, online in the compactor thread and offline
 * (`blobfs compact`, which also drops tombstones no longer needed).
 */
#include "local.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>

#include "index.h"
#include "io.h"
#include "log.h"
#include "datadir.h"
#include "pack.h"
#include "salvage.h"

/* Compaction may use the reserve saves leave free, but not its last bytes. */
#define COMPACT_MARGIN (UINT64_C(64) << 10)

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

/* The live list is sorted by offset (see compact_pack). */
static bool live_has(const struct live_list *list, const struct record_info *rec)
{
	struct index_entry key = { .offset = rec->offset };
	const struct index_entry *e = list->count ?
		bsearch(&key, list->entries, list->count, sizeof(key), compare_entry_offset) : NULL;

	return e && !memcmp(e->hash, rec->hash, BLOBFS_HASH_SIZE);
}

/* What compaction keeps of a pack: its live blob records (recording where
 * each was, in order, to move the index after the copy) and, unless they are
 * being dropped, its tombstones. */
struct compact_keep {
	const struct live_list *live;
	bool drop_tombstones;
	uint64_t *moved; /* old offsets of the blob records copied, in order */
	size_t moved_count;
};

static int compact_keep_record(const struct record_info *rec, int in, void *arg)
{
	struct compact_keep *k = arg;

	(void)in;
	if (rec->kind == RECORD_TOMBSTONE)
		return !k->drop_tombstones;
	if (!live_has(k->live, rec))
		return 0;
	if (k->moved_count == k->live->count)
		return -EIO; /* more live copies than live entries */
	k->moved[k->moved_count++] = rec->offset;
	return 1;
}

/* Moves the index to the new pack (called with store->lock held); entries
 * deleted or re-saved since the copy are left alone (their copies are dead
 * on arrival). */
static void compact_move_index(struct local_store *store, int out, uint32_t pack_id,
			       uint32_t new_id, const struct compact_keep *k)
{
	struct pack_scan scan;
	struct record_info rec;
	size_t next = 0;

	if (pack_scan_open(store->db->io, &scan, out, new_id) < 0) {
		/* The index keeps pointing at the old pack, which then stays. */
		log_warning("store %s: cannot read back compacted pack %08x", store->base.name,
			    new_id);
		return;
	}
	while (pack_scan_next(&scan, &rec) == 1) {
		struct index_entry e;
		struct pack_info *out_pack = packtab_find(store, new_id);
		out_pack->last_offset = rec.offset;
		out_pack->last_seq = rec.seq;
		if (rec.kind != RECORD_BLOB || next >= k->moved_count)
			continue;
		uint64_t old_offset = k->moved[next++];
		/* Only entries still pointing at the record copied move. */
		if (index_lookup(store->index, rec.hash, &e) < 0 || e.pack_id != pack_id ||
		    e.offset != old_offset)
			continue;
		packtab_account(store, &e, -1);
		e.pack_id = new_id;
		e.offset = rec.offset;
		if (index_put(store->index, &e) == 0)
			packtab_account(store, &e, +1);
	}
}

/*
 * Rewrites one pack with only its live blobs (and, unless drop_tombstones,
 * its tombstones), then retires it. The new pack is written under a staging
 * name, made durable and only then renamed into place (salvage.c's
 * pack_rewrite); the index moves to it and the old pack goes last. A crash
 * at any step leaves either the old pack, or both (the same records twice,
 * same seq: harmless), never neither. Readers holding the old pack open keep
 * reading it.
 */
int compact_pack(struct local_store *store, uint32_t pack_id, bool drop_tombstones)
{
	const struct io_ops *io = store->db->io;
	struct live_list live = { .pack_id = pack_id };
	struct compact_keep keep = { .live = &live, .drop_tombstones = drop_tombstones };
	char pack[PACK_NAME_SIZE], new_pack[PACK_NAME_SIZE], staging[64];
	struct pack_rewrite rw = { .io = io };
	uint64_t copied_live = 0;
	struct pack_scan scan;
	uint32_t new_id;
	int in = -1, out = -1, store_fd = -1, ret;
	struct statvfs st;

	pthread_mutex_lock(&store->lock);
	ret = store->base.destroyed ? -ENOENT : index_foreach(store->index, collect_live, &live);
	new_id = store->next_pack_id++;
	struct pack_info *source_info = packtab_find(store, pack_id);
	if (ret == 0 && (!source_info || !packtab_compactable(store, source_info)))
		ret = -ENOENT; /* became active, or went, since it was picked */
	if (ret == 0)
		source_info->compacting = true; /* appends now go elsewhere */
	pthread_mutex_unlock(&store->lock);
	if (ret < 0)
		goto out;
	if (live.count)
		qsort(live.entries, live.count, sizeof(*live.entries), compare_entry_offset);
	pack_name(pack_id, pack);
	pack_name(new_id, new_pack);
	store_fd = io->openat(store->db->stores_fd, store->base.name,
			      O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	in = store_fd < 0 ? -1 : io->openat(store_fd, pack, O_RDONLY | O_CLOEXEC, 0);
	ret = in < 0 ? -errno : pack_scan_open(io, &scan, in, pack_id);
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < live.count; i++)
		copied_live += index_entry_disk(&live.entries[i]);
	/* The reserve saves leave free is there for this: all of it may go,
	 * but for a small margin. */
	if (io->fstatvfs(store->db->stores_fd, &st) == 0 &&
	    (uint64_t)st.f_bavail * st.f_frsize < copied_live + COMPACT_MARGIN) {
		log_warning("store %s: not enough free space to compact pack %08x (%" PRIu64
			    " live bytes)", store->base.name, pack_id, copied_live);
		ret = -ENOSPC;
		goto out;
	}
	keep.moved = malloc((live.count ? live.count : 1) * sizeof(*keep.moved));
	ret = keep.moved ? 0 : -ENOMEM;
	if (ret < 0)
		goto out;
	snprintf(staging, sizeof(staging), STAGING_COMPACT_FMT, new_id);
	rw.store_fd = store_fd;
	rw.staging_name = staging;
	rw.new_id = new_id;
	rw.keep_if_empty = true;
	rw.keep = compact_keep_record;
	rw.arg = &keep;
	/* Damage that appeared since the pack was scanned stops it: left alone. */
	ret = pack_rewrite(&rw, &scan);
	if (ret < 0)
		goto out;
	out = io->openat(store_fd, new_pack, O_RDONLY | O_CLOEXEC, 0);
	if (out < 0) {
		ret = -errno;
		io->unlinkat(store_fd, new_pack, 0);
		goto out;
	}

	pthread_mutex_lock(&store->lock);
	/* Destroyed during the copy: its directory is in the trash now, and
	 * the copy goes with it (or at the next mount, if the purge already
	 * ran). */
	ret = store->base.destroyed ? -ENOENT : packtab_add(store, new_id, rw.size);
	if (ret == 0) {
		struct pack_info *p = packtab_find(store, new_id);
		p->tombstone_count = rw.tombstones;
		p->max_seq = rw.max_seq;
		compact_move_index(store, out, pack_id, new_id, &keep);
	} else {
		io->unlinkat(store_fd, new_pack, 0);
	}
	/* A delete meanwhile may have dropped the old pack already. */
	struct pack_info *source = packtab_find(store, pack_id);
	if (ret == 0 && source && source->live_count == 0) {
		if (io->unlinkat(store_fd, pack, 0) < 0)
			log_warning("store %s: cannot remove compacted %s: %s", store->base.name,
				    pack, strerror(errno));
		packtab_remove(store, pack_id);
		store->dir_dirty = true;
	}
	if (ret == 0)
		packtab_drop_dead(store, new_id); /* all deleted during the copy */
	pthread_mutex_unlock(&store->lock);
	if (ret == 0)
		log_info("store %s: pack %08x compacted into %08x (%" PRIu64 " bytes kept)",
			 store->base.name, pack_id, new_id, rw.size);
out:
	pthread_mutex_lock(&store->lock);
	source_info = packtab_find(store, pack_id);
	if (source_info)
		source_info->compacting = false;
	pthread_mutex_unlock(&store->lock);
	if (ret < 0 && ret != -ENOSPC && ret != -ENOENT) {
		struct pack_info *failed;
		log_error("store %s: compacting pack %08x failed: %s; not retried before the next "
			  "mount", store->base.name, pack_id, strerror(-ret));
		pthread_mutex_lock(&store->lock);
		failed = packtab_find(store, pack_id);
		if (failed)
			failed->no_compact = true;
		pthread_mutex_unlock(&store->lock);
	}
	if (in >= 0)
		io->close(in);
	if (out >= 0)
		io->close(out);
	if (store_fd >= 0)
		io->close(store_fd);
	free(keep.moved);
	free(live.entries);
	return ret;
}

/*
 * The pack most worth compacting at percent (0: any dead byte) whose live
 * bytes fit in the free space, or 0: on a nearly full disk the packs with the
 * most dead space, which need the least room, go first.
 */
static uint32_t compact_pick_pack(struct local_store *store, unsigned percent, uint32_t after)
{
	uint64_t avail = UINT64_MAX, best_dead = 0;
	struct statvfs st;
	uint32_t id = 0;

	if (store->db->io->fstatvfs(store->db->stores_fd, &st) == 0)
		avail = (uint64_t)st.f_bavail * st.f_frsize;
	pthread_mutex_lock(&store->lock);
	for (size_t i = 0; !store->base.destroyed && i < store->pack_count; i++) {
		struct pack_info *p = &store->packs[i];
		uint64_t dead = packtab_dead_bytes(p), keep = p->size - dead;
		if (p->id <= after || !packtab_compactable(store, p) || dead == 0)
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

int local_store_compact(struct store *base, unsigned percent)
{
	struct local_store *store = (struct local_store *)base;
	int ret = 0;

	/* Each pass visits ascending ids, best first among those not yet
	 * visited; a few passes catch what an earlier choice skipped. Bounded,
	 * so a pack that cannot be retired is not retried forever. */
	for (int pass = 0; pass < 4 && ret == 0; pass++) {
		uint32_t id = 0;
		bool did = false;
		while (ret == 0 && (id = compact_pick_pack(store, percent, id)) != 0) {
			ret = compact_pack(store, id, false);
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
	uint32_t id = compact_pick_pack(store, *(unsigned *)arg, 0);

	/* One pack per store per step keeps each step short. */
	return id ? compact_pack(store, id, false) : 0;
}

void compact_step(struct local_db *db)
{
	unsigned percent = db->base.opts.compact_percent;

	/* Checkpoints first: one written after a compaction step would name
	 * packs the step may have removed (then unusable, not wrong). */
	blobdb_each_store(&db->base, ckpt_background_one, NULL);
	blobdb_each_store(&db->base, compact_step_one, &percent);
}

/* Once no pack holds a dead blob record, no tombstone cancels anything:
 * offline compaction then rewrites the packs that hold tombstones without
 * them. Never online: a save could race with the check. */
static int compact_drop_tombstones(struct local_store *store)
{
	bool clean = true;
	int ret = 0;

	pthread_mutex_lock(&store->lock);
	for (size_t i = 0; i < store->pack_count; i++)
		if (packtab_dead_bytes(&store->packs[i]) || store->packs[i].damaged)
			clean = false;
	pthread_mutex_unlock(&store->lock);
	if (!clean)
		return 0;
	for (uint32_t after = 0;;) {
		uint32_t id = 0;
		pthread_mutex_lock(&store->lock);
		for (size_t i = 0; i < store->pack_count && !id; i++)
			if (store->packs[i].id > after && store->packs[i].tombstone_count &&
			    packtab_compactable(store, &store->packs[i]))
				id = store->packs[i].id;
		pthread_mutex_unlock(&store->lock);
		if (!id)
			break;
		after = id;
		ret = compact_pack(store, id, true);
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
		flush_later(store, store->active_fd);
		store->active_fd = -1;
	}
	store->offline = true;
	pthread_mutex_unlock(&store->lock);
	ret = flush_store(store);
	if (ret == 0)
		ret = local_store_compact(&store->base, 0);
	if (ret == 0)
		ret = compact_drop_tombstones(store);
	if (ret == 0)
		ret = flush_store(store);
	return ret;
}

int local_db_compact(struct blobdb *base, FILE *progress)
{
	struct local_db *db = (struct local_db *)base;
	return blobdb_each_store(&db->base, compact_full, progress);
}
