/*
 * local_stats.c - the local backend's figures: a store's statistics
 * (store_stats: blobs and their bytes from the index, packs and dead bytes
 * from the pack table) and statfs (the data directory's file system, with
 * the blobs as its files). Reads only; built on the index and pack-table
 * accessors (index.h, local_packs.c).
 */
#include "local.h"

#include <errno.h>
#include <sys/statvfs.h>

#include "index.h"
#include "io.h"

static int add_payload(const struct index_entry *e, void *arg)
{
	uint64_t *bytes = arg;

	if (e->kind == RECORD_BLOB)
		*bytes += e->length;
	return 0;
}

int local_store_stats(struct store *base, struct store_stats *out)
{
	struct local_store *store = (struct local_store *)base;
	int ret = -ENOENT;

	pthread_mutex_lock(&store->lock);
	if (store->base.destroyed)
		goto out;
	out->blobs = index_count(store->index);
	index_foreach(store->index, add_payload, &out->bytes);
	out->packs = store->pack_count;
	for (size_t i = 0; i < store->pack_count; i++)
		out->dead_bytes += packtab_dead_bytes(&store->packs[i]);
	ret = 0;
out:
	pthread_mutex_unlock(&store->lock);
	return ret;
}

static int add_blob_count(struct store *store, void *arg)
{
	uint64_t *blobs = arg;

	*blobs += local_blob_count(store);
	return 0;
}

int local_db_statfs(struct blobdb *base, struct statvfs *st)
{
	struct local_db *db = (struct local_db *)base;
	/* The smallest thing a new blob costs: a one-byte blob's record. */
	uint64_t smallest = record_size(1, CHUNK_SHIFT_DEFAULT);
	uint64_t blobs = 0, fit;
	int ret;

	if (db->io->fstatvfs(db->dirfd, st) < 0)
		return -errno;
	ret = blobdb_each_store(base, add_blob_count, &blobs);
	if (ret < 0)
		return ret;
	fit = (uint64_t)st->f_bavail * st->f_frsize / smallest;
	st->f_ffree = st->f_favail = (fsfilcnt_t)fit;
	st->f_files = (fsfilcnt_t)(blobs + fit);
	return 0;
}
