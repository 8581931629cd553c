/*
 * local_checkpoint.c - the index checkpoint of a store: written at a clean
 * close so that the next open reads it instead of scanning every pack, and
 * loaded all-or-nothing (checkpoint.c knows the bytes; this file knows when
 * a checkpoint can be trusted for a store).
 */
#include "local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "checkpoint.h"
#include "io.h"
#include "log.h"
#include "datadir.h"

/*
 * Loads the store's checkpoint, all or nothing: every pack it covers must
 * still be there, as long, with its last covered record in place. Then its
 * entries are the index and only what follows each covered prefix is
 * scanned. Otherwise it is ignored and every pack is scanned: a partial use
 * could let a pack scanned whole resurrect a blob whose tombstone only the
 * checkpoint accounted for.
 */
int ckpt_load(struct local_store *store, int dir_fd, const uint32_t *ids,
				 size_t id_count)
{
	const struct io_ops *io = store->db->io;
	struct checkpoint_header h;
	struct checkpoint_pack *packs = NULL;
	int ret = checkpoint_read(io, dir_fd, STORE_CHECKPOINT, &h, &packs, store->index);
	bool usable = ret == 0;

	if (ret < 0 && ret != -ENOENT)
		log_warning("store %s: index checkpoint unusable (%s); scanning every pack",
			    store->base.name, strerror(-ret));
	(void)ids;
	(void)id_count;
	if (usable && !checkpoint_usable(io, dir_fd, &h, packs))
		usable = false;
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
	if (h.next_pack_id > store->next_pack_id)
		store->next_pack_id = h.next_pack_id;
out:
	free(packs);
	return ret;
}

/* Writes the index as the store's checkpoint (at a clean close, after the
 * last flush: everything it covers is durable). */
static int ckpt_write(struct local_store *store)
{
	const struct io_ops *io = store->db->io;
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
		ret = checkpoint_write(io, dir_fd, STORE_CHECKPOINT_STAGING, &h, packs, store->index);
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
out:
	pthread_mutex_unlock(&store->lock);
	if (dir_fd >= 0)
		io->close(dir_fd);
	free(packs);
	return ret;
}

int ckpt_write_one(struct store *base, void *arg)
{
	struct local_store *store = (struct local_store *)base;
	(void)arg;
	return ckpt_write(store);
}
