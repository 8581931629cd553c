/*
 * local_blobs.c - the blobs of a store as the index sees them: lookup,
 * count, listing, appending records (small blobs and tombstones) to the
 * active pack and indexing them, and deletes.
 */
#include "local.h"

#include <errno.h>
#include <inttypes.h>
#include <string.h>

#include "hash.h"
#include "index.h"
#include "io.h"
#include "log.h"
#include "pack.h"

int local_blob_info(struct store *base, const uint8_t hash[BLOBFS_HASH_SIZE],
			   uint64_t *length, int64_t *saved)
{
	struct local_store *store = (struct local_store *)base;
	struct index_entry e;
	int ret;

	pthread_mutex_lock(&store->lock);
	ret = store->base.destroyed ? -ENOENT : index_lookup(store->index, hash, &e);
	pthread_mutex_unlock(&store->lock);
	if (ret == 0 && length)
		*length = e.length;
	if (ret == 0 && saved)
		*saved = e.saved; /* from the index: a stat reads no pack */
	return ret;
}

size_t local_blob_count(struct store *base)
{
	struct local_store *store = (struct local_store *)base;
	size_t n;

	pthread_mutex_lock(&store->lock);
	n = store->base.destroyed ? 0 : index_count(store->index);
	pthread_mutex_unlock(&store->lock);
	return n;
}

size_t local_blob_list_batch(struct store *base, const uint8_t *after, struct blob_entry *out,
			     size_t max)
{
	struct local_store *store = (struct local_store *)base;
	struct index_entry batch[128];
	size_t n = 0, got;

	pthread_mutex_lock(&store->lock);
	while (!store->base.destroyed && n < max) {
		size_t want = max - n < 128 ? max - n : 128;
		got = index_seek_many(store->index, after, true, batch, want);
		for (size_t i = 0; i < got; i++) {
			memcpy(out[n + i].hash, batch[i].hash, BLOBFS_HASH_SIZE);
			out[n + i].length = batch[i].length;
		}
		n += got;
		if (got < want)
			break;
		after = out[n - 1].hash;
	}
	pthread_mutex_unlock(&store->lock);
	return n;
}

int append_index_record(struct local_store *store, uint32_t pack_id,
			      const struct record_info *rec)
{
	struct index_entry old, entry;
	bool had_old = index_lookup(store->index, rec->hash, &old) == 0;
	int ret;

	packtab_entry(pack_id, rec, &entry);
	entry.kind = RECORD_BLOB;
	ret = index_put(store->index, &entry);
	if (ret < 0)
		return ret;
	if (had_old)
		packtab_account(store, &old, -1);
	packtab_account(store, &entry, +1);
	return 0;
}

/*
 * Appends one record to the active pack. data may be NULL for a tombstone.
 * crcs may be NULL, in which case they are computed. zb, when not NULL, is
 * the blob's compressed chunks: the record is a REC3 of them. On failure the
 * pack is cut back so that no partial record stays behind. Called with
 * store->lock.
 */
static int append_record(struct local_store *store, struct record_info *rec, const void *data,
			const uint32_t *crcs, const struct zbuild *zb)
{
	const struct io_ops *io = store->db->io;
	uint64_t need;
	struct pack_info *pack;
	int ret;

	if (zb) {
		rec->version = 3;
		rec->stored = zb->stored_len;
	}
	need = record_end(rec) - rec->offset;
	if (rec->kind == RECORD_BLOB) {
		ret = local_check_space(store->db, need);
		if (ret < 0)
			goto out;
	}
	ret = packtab_active(store, need, &pack);
	if (ret < 0)
		goto out;
	rec->offset = pack->size;
	rec->seq = store->next_seq++;
	ret = zb ? pack_write_zrecord(io, store->active_fd, rec, zb->chunks, zb->stored) :
		   pack_write_record(io, store->active_fd, rec, data, crcs);
	if (ret < 0) {
		if (io->ftruncate(store->active_fd, (off_t)pack->size) < 0)
			log_error("store %s: cannot cut back pack %08x after a failed write: %s",
				  store->base.name, pack->id, strerror(errno));
		goto out;
	}
	if (rec->kind == RECORD_BLOB) {
		ret = append_index_record(store, pack->id, rec);
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

int local_blob_delete(struct store *base, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct local_store *store = (struct local_store *)base;
	struct record_info rec = { .kind = RECORD_TOMBSTONE, .chunk_shift = CHUNK_SHIFT_DEFAULT,
				   .time = local_record_time() };
	char hex[HASH_HEX_SIZE + 1];
	struct index_entry e;
	int ret;

	memcpy(rec.hash, hash, BLOBFS_HASH_SIZE);
	pthread_mutex_lock(&store->lock);
	ret = store->base.destroyed ? -ENOENT : index_lookup(store->index, hash, &e);
	if (ret < 0)
		goto out;
	ret = append_record(store, &rec, NULL, NULL, NULL);
	if (ret < 0) {
		hash_to_hex(hash, hex);
		log_error("store %s: cannot record the delete of %s: %s", store->base.name, hex,
			  strerror(-ret));
		goto out;
	}
	packtab_account(store, &e, -1);
	index_remove(store->index, hash);
	packtab_drop_dead(store, e.pack_id);
out:
	pthread_mutex_unlock(&store->lock);
	return ret;
}

/* Saves a blob of at most large_blob_min bytes by appending it to the active
 * pack. crcs may be NULL. */
int append_small_blob(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			    const void *data, uint64_t len, const uint32_t *crcs)
{
	/* Written only when the blob is not there: a save of content the store
	 * has (-EEXIST) leaves the first save's time alone. */
	struct record_info rec = { .kind = RECORD_BLOB, .chunk_shift = CHUNK_SHIFT_DEFAULT,
				   .length = len, .time = local_record_time() };
	char hex[HASH_HEX_SIZE + 1];
	struct zbuild zb = { 0 };
	bool compressed = false;
	int ret;

	memcpy(rec.hash, hash, BLOBFS_HASH_SIZE);
	if (zbuild_wanted(store->db, len)) {
		/* Compressed outside the lock, once the blob is known to be new
		 * (checked again below: another save may come first). */
		pthread_mutex_lock(&store->lock);
		ret = packtab_check_absent(store, hash);
		pthread_mutex_unlock(&store->lock);
		if (ret < 0)
			return ret;
		ret = zbuild_make(store->db, data, len, &zb);
		if (ret < 0)
			return ret;
		compressed = ret > 0;
	}
	pthread_mutex_lock(&store->lock);
	ret = packtab_check_absent(store, hash);
	if (ret < 0)
		goto out;
	ret = append_record(store, &rec, data ? data : "", crcs, compressed ? &zb : NULL);
	if (ret < 0) {
		hash_to_hex(hash, hex);
		log_error("store %s: cannot save blob %s (%" PRIu64 " bytes): %s", store->base.name,
			  hex, len, strerror(-ret));
	}
out:
	pthread_mutex_unlock(&store->lock);
	zbuild_free(&zb);
	return ret;
}
