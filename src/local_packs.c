/*
 * local_packs.c - the pack table of a store: which packs it has, their sizes
 * and live/dead accounting (for compaction), and the active pack small blobs
 * are appended to. Everything here is called with store->lock held.
 */
#include "local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "index.h"
#include "io.h"
#include "log.h"
#include "pack.h"

struct pack_info *packtab_find(struct local_store *store, uint32_t id)
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

int packtab_add(struct local_store *store, uint32_t id, uint64_t size)
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

void packtab_remove(struct local_store *store, uint32_t id)
{
	struct pack_info *p = packtab_find(store, id);

	if (!p)
		return;
	memmove(p, p + 1, (size_t)(store->packs + store->pack_count - (p + 1)) * sizeof(*p));
	store->pack_count--;
}

void packtab_account(struct local_store *store, const struct index_entry *e, int sign)
{
	struct pack_info *p = packtab_find(store, e->pack_id);
	uint64_t bytes = index_entry_disk(e);

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

/* Opens the active pack for appending, starting a new one when there is
 * none or when need more bytes would take it past the size cap. Called with
 * store->lock held. */
int packtab_active(struct local_store *store, uint64_t need, struct pack_info **out)
{
	const struct io_ops *io = store->db->io;
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
			ret = local_pack_path(store, p->id, path);
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
		p = packtab_find(store, store->active_id);
		if (p && (p->size + need <= store->db->base.opts.pack_size_max ||
			  p->size == PACK_HEADER_SIZE)) {
			*out = p;
			return 0;
		}
		flush_later(store, store->active_fd); /* full: rotate */
		store->active_fd = -1;
	}
	fd = io->openat(store->db->stores_fd, store->base.name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = pack_create(io, fd, store->next_pack_id, &store->active_fd);
	io->close(fd);
	if (ret < 0)
		return ret;
	store->dir_dirty = true;
	store->active_id = store->next_pack_id;
	ret = packtab_add(store, store->active_id, PACK_HEADER_SIZE);
	if (ret < 0) {
		io->close(store->active_fd);
		store->active_fd = -1;
		return ret;
	}
	*out = packtab_find(store, store->active_id);
	(*out)->appendable = true;
	return 0;
}

/* Unlinks a pack that holds neither a live blob nor a tombstone: each of its
 * records is superseded by a newer one elsewhere, so removing it changes
 * nothing but the space used. A deleted large blob's own pack goes this way
 * at once. Called with store->lock held. */
void packtab_drop_dead(struct local_store *store, uint32_t pack_id)
{
	const struct io_ops *io = store->db->io;
	struct pack_info *p = packtab_find(store, pack_id);
	char path[PATH_SIZE];

	if (!p || p->live_count || p->tombstone_count ||
	    (store->active_fd >= 0 && pack_id == store->active_id))
		return;
	if (local_pack_path(store, pack_id, path) < 0)
		return;
	if (io->unlinkat(store->db->stores_fd, path, 0) < 0) {
		log_warning("store %s: cannot remove dead %s: %s", store->base.name, path,
			    strerror(errno));
		return;
	}
	packtab_remove(store, pack_id);
	store->dir_dirty = true;
}

/* Bytes of a pack no live blob or tombstone uses. */
uint64_t packtab_dead_bytes(const struct pack_info *p)
{
	uint64_t used = PACK_HEADER_SIZE + p->live_bytes + p->tombstone_count * TOMBSTONE_SIZE;
	return p->size > used ? p->size - used : 0;
}

/* A pack compaction may rewrite: not appended to, wholly durable, readable. */
bool packtab_compactable(const struct local_store *store, const struct pack_info *p)
{
	return !(store->active_fd >= 0 && p->id == store->active_id) && !p->no_compact &&
	       !p->compacting &&
	       p->max_seq <= __atomic_load_n(&store->durable_seq, __ATOMIC_ACQUIRE) && !p->damaged;
}

void packtab_entry(uint32_t pack_id, const struct record_info *rec, struct index_entry *e)
{
	memset(e, 0, sizeof(*e));
	e->offset = rec->offset;
	e->length = rec->length;
	e->saved = rec->time;
	e->seq = rec->seq;
	e->pack_id = pack_id;
	e->kind = (uint8_t)rec->kind;
	e->chunk_shift = (uint8_t)rec->chunk_shift;
	e->disk = rec->version == 3 ? index_disk_round(record_end(rec) - rec->offset) : 0;
	memcpy(e->hash, rec->hash, BLOBFS_HASH_SIZE);
}

int packtab_check_absent(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct index_entry e;

	if (store->base.destroyed)
		return -ENOENT;
	return index_lookup(store->index, hash, &e) == 0 ? -EEXIST : 0;
}
