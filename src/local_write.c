/*
 * local_write.c - the incoming writer: content written at any offsets, kept
 * in memory while small, without holes and within the database's budget,
 * and in a (sparse) staging file beyond (local_staging.c holds both), hashed
 * (SHA-256 and chunk CRC32Cs) as it arrives in order. A commit appends a
 * small blob to the active pack, or turns a large blob's staging file (laid
 * out as a one-record pack) into its own pack by a rename, so its bytes are
 * written once.
 */
#include "local.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "crc32c.h"
#include "hash.h"
#include "index.h"
#include "io.h"
#include "log.h"
#include "datadir.h"
#include "pack.h"

/* What the digest reads back at a time: hashing a huge (sparse) file costs
 * this much memory, not its size. */
#define COPY_BUFFER_SIZE (1u << 20)

static int writer_rematerialize(struct local_writer *w);

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

int writer_feed(struct local_writer *w, const uint8_t *buf, size_t len)
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

int writer_digest_reset(struct local_writer *w)
{
	w->digested = 0;
	w->chunk_crc = 0;
	return hasher_reset(w->hasher);
}

/* Makes the content writable where it is for a change of [from, end): in
 * memory (grown to hold end bytes), or in a staging file when the change
 * would leave a hole (from past the end: truncate up, a write further on),
 * pass WRITER_MEMORY_EACH or the budget. */
static int writer_prepare(struct local_writer *w, uint64_t from, uint64_t end)
{
	if (w->in_memory && (from > w->size || end > WRITER_MEMORY_EACH))
		return writer_spill(w);
	if (w->in_memory && end > w->mem_capacity)
		return writer_mem_grow(w, end);
	if (!w->in_memory && w->fd < 0)
		return writer_rematerialize(w);
	return 0;
}

static int writer_content_read(struct local_writer *w, void *buf, size_t size, uint64_t off)
{
	const struct io_ops *io = w->store->db->io;
	if (w->in_memory) {
		memcpy(buf, w->mem + off, size);
		return 0;
	}
	return pread_full(io, w->fd, buf, size, STAGING_DATA_OFFSET + off);
}

/* Hashes what the digest does not cover yet by reading it back: only needed
 * when the writes were not sequential (or the file was grown by truncate). */
static int writer_digest_finish(struct local_writer *w, uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint8_t *buf = NULL;
	int ret = 0;

	if (w->digested < w->size && w->in_memory)
		ret = writer_feed(w, w->mem + w->digested, (size_t)(w->size - w->digested));
	if (ret == 0 && w->digested < w->size) {
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

/*
 * With -o compress=zstd: compresses the staging file into a second one
 * (local_compress.c), outside the store's lock, once the blob is known to be
 * new (a save of content already there compresses nothing). 1 with *z
 * ready, 0 to keep the blob raw.
 */
static int writer_compress_staging(struct local_store *store, struct local_writer *w,
				   const uint8_t hash[BLOBFS_HASH_SIZE], struct zstaging *z)
{
	char hex[HASH_HEX_SIZE + 1];
	int ret;

	if (!zbuild_wanted(store->db, w->size))
		return 0;
	pthread_mutex_lock(&store->lock);
	ret = packtab_check_absent(store, hash);
	pthread_mutex_unlock(&store->lock);
	if (ret < 0)
		return 0; /* the commit says so */
	ret = zstaging_make(store, w->fd, w->size, z);
	if (ret < 0) {
		/* Raw is always an option: the blob is saved, uncompressed. */
		hash_to_hex(hash, hex);
		log_warning("store %s: blob %s is saved uncompressed: compressing it failed: %s",
			    store->base.name, hex, strerror(-ret));
		ret = 0;
	}
	return ret;
}

/*
 * Turns the staging file into a one-record pack in place: the data is
 * already where the record wants it, so only the headers, the chunk table
 * and the trailer are written before the rename publishes it. Compressed, the
 * second staging file becomes the pack instead, and the first stays open
 * (unnamed) as the adopted content.
 */
static int writer_adopt_staging(struct local_store *store, struct local_writer *w,
			       const uint8_t hash[BLOBFS_HASH_SIZE])
{
	const struct io_ops *io = store->db->io;
	struct record_info rec = { .offset = PACK_HEADER_SIZE, .kind = RECORD_BLOB,
				   .chunk_shift = CHUNK_SHIFT_DEFAULT, .length = w->size,
				   .time = local_record_time() };
	char from[PATH_SIZE], to[PATH_SIZE], hex[HASH_HEX_SIZE + 1];
	uint8_t header[PACK_HEADER_SIZE];
	struct zstaging z = { .fd = -1 };
	bool compressed = writer_compress_staging(store, w, hash, &z) > 0;
	int fd = compressed ? z.fd : w->fd;
	uint32_t pack_id;
	int ret;

	memcpy(rec.hash, hash, BLOBFS_HASH_SIZE);
	if (compressed) {
		rec.version = 3;
		rec.stored = z.stored;
	}
	pthread_mutex_lock(&store->lock);
	ret = packtab_check_absent(store, hash);
	if (ret < 0)
		goto out;
	pack_id = store->next_pack_id;
	rec.seq = store->next_seq;
	pack_header_encode(pack_id, header);
	ret = local_store_path(store, compressed ? z.name : w->staging_name, from);
	if (ret == 0)
		ret = local_pack_path(store, pack_id, to);
	if (ret == 0)
		ret = pwrite_full(io, fd, header, sizeof(header), 0);
	if (ret == 0)
		ret = compressed ? pack_write_zframe(io, fd, &rec, z.chunks) :
				   pack_write_frame(io, fd, &rec, w->crcs);
	if (ret == 0 && io->renameat(store->db->stores_fd, from, store->db->stores_fd, to) < 0)
		ret = -errno;
	if (ret == 0) {
		ret = packtab_add(store, pack_id, record_end(&rec));
		if (ret < 0)
			io->renameat(store->db->stores_fd, to, store->db->stores_fd, from);
	}
	if (ret < 0) {
		/* Leave the staging file as it was: content only. */
		if (!compressed && io->ftruncate(w->fd, (off_t)(STAGING_DATA_OFFSET + w->size)) < 0)
			log_warning("store %s: cannot trim staging file: %s", store->base.name,
				    strerror(errno));
		hash_to_hex(hash, hex);
		log_error("store %s: cannot save blob %s (%" PRIu64 " bytes): %s", store->base.name,
			  hex, w->size, strerror(-ret));
		goto out;
	}
	store->next_pack_id = pack_id + 1;
	store->next_seq = rec.seq + 1;
	struct pack_info *adopted = packtab_find(store, pack_id);
	adopted->max_seq = adopted->last_seq = rec.seq;
	adopted->last_offset = rec.offset;
	if (append_index_record(store, pack_id, &rec) < 0)
		log_error("store %s: out of memory indexing a saved blob; it shows after the next mount",
			  store->base.name);
	store->dir_dirty = true;
	if (compressed) {
		/* The raw content stays reachable for a rewrite (rematerialize
		 * copies it from here), under no name. */
		if (local_store_path(store, w->staging_name, from) == 0)
			io->unlinkat(store->db->stores_fd, from, 0);
		w->adopted_fd = w->fd;
		z.fd = -1;
	} else {
		w->adopted_fd = io->dup(w->fd);
	}
	flush_later(store, fd); /* the next flush makes it durable */
	w->fd = -1;
out:
	pthread_mutex_unlock(&store->lock);
	zstaging_discard(store, &z);
	return ret;
}

/* After a large blob's staging file became its pack, a further write needs
 * a staging file again, holding the committed content: copied from that
 * pack, which the writer keeps open (so a delete of the blob meanwhile does
 * not take the bytes away). */
static int writer_rematerialize(struct local_writer *w)
{
	const struct io_ops *io = w->store->db->io;
	char hex[HASH_HEX_SIZE + 1];
	int ret = w->adopted_fd < 0 ? -EIO : 0;

	if (ret == 0)
		ret = staging_create(w);
	if (ret == 0 && io->ftruncate(w->fd, (off_t)(STAGING_DATA_OFFSET + w->size)) < 0)
		ret = -errno;
	if (ret == 0)
		ret = staging_copy_sparse(io, w->adopted_fd, STAGING_DATA_OFFSET, w->fd,
					  STAGING_DATA_OFFSET, w->size);
	if (ret == 0)
		ret = writer_digest_reset(w);
	if (ret == 0) {
		io->close(w->adopted_fd);
		w->adopted_fd = -1;
	} else {
		hash_to_hex(w->committed_hash, hex);
		log_error("store %s: cannot reopen saved blob %s for writing: %s",
			  w->store->base.name, hex, strerror(-ret));
		staging_discard(w);
		ret = ret == -ENOSPC || ret == -EMFILE || ret == -ENFILE ? ret : -EIO;
	}
	return ret;
}

int local_writer_new(struct store *base, struct blob_writer **out)
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
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->digest_idle, NULL);
	w->dirty = true;
	ret = hasher_new(&w->hasher);
	if (ret < 0) {
		local_writer_free(&w->base);
		return ret;
	}
	*out = &w->base;
	return 0;
}

void local_writer_free(struct blob_writer *base)
{
	struct local_writer *w = (struct local_writer *)base;
	const struct io_ops *io = w->store->db->io;

	digest_forget(w);
	staging_discard(w);
	if (w->adopted_fd >= 0)
		io->close(w->adopted_fd);
	writer_mem_free(w);
	hasher_free(w->hasher);
	free(w->crcs);
	pthread_cond_destroy(&w->digest_idle);
	pthread_mutex_destroy(&w->lock);
	free(w);
}

int local_writer_write(struct blob_writer *base, const void *buf, size_t size,
			      uint64_t off)
{
	struct local_writer *w = (struct local_writer *)base;
	const struct io_ops *io = w->store->db->io;
	int ret = 0;

	if (off > RECORD_LENGTH_MAX || size > RECORD_LENGTH_MAX - off)
		return -EFBIG;
	if (size == 0)
		return 0; /* as write(2): nothing written, nothing changes */
	pthread_mutex_lock(&w->lock);
	digest_wait(w, off); /* a digest thread may be reading these bytes */
	ret = w->error;
	if (ret == 0)
		ret = writer_prepare(w, off, off + size);
	/* The reserve is checked as the content grows, in memory too, so that
	 * a full disk shows at write() already. */
	if (ret == 0 && off + size > w->size)
		ret = local_check_space(w->store->db, off + size - w->size);
	if (ret == 0 && w->in_memory)
		memcpy(w->mem + off, buf, size);
	else if (ret == 0)
		ret = pwrite_full(io, w->fd, buf, size, STAGING_DATA_OFFSET + off);
	if (ret < 0) {
		/* A write that failed may have written part of its bytes: this
		 * content is not what its writer meant, and is never saved. */
		w->error = ret;
		goto out;
	}
	w->dirty = true;
	if (off + size > w->size)
		w->size = off + size;
	/* Sequential writes extend the digest: inline in memory, by a digest
	 * thread in a staging file (local_digest.c); an overwrite of digested
	 * bytes restarts it (the commit then reads the file back once). While
	 * a digest thread hashes, the digest is its own, and this write lies
	 * past what it hashes (digest_wait): it goes on to it afterwards. */
	if (w->digest_busy)
		;
	else if (off < w->digested)
		ret = writer_digest_reset(w);
	else if (!w->in_memory && digest_enabled(w->store->db))
		digest_later(w);
	else if (off == w->digested)
		ret = writer_feed(w, buf, size);
out:
	pthread_mutex_unlock(&w->lock);
	return ret;
}

int local_writer_read(struct blob_writer *base, void *buf, size_t size, uint64_t off,
			     size_t *got)
{
	struct local_writer *w = (struct local_writer *)base;
	int ret = 0;

	pthread_mutex_lock(&w->lock);
	*got = 0;
	ret = writer_prepare(w, 0, 0);
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

int local_writer_truncate(struct blob_writer *base, uint64_t size)
{
	struct local_writer *w = (struct local_writer *)base;
	const struct io_ops *io = w->store->db->io;
	int ret = 0;

	if (size > RECORD_LENGTH_MAX)
		return -EFBIG;
	pthread_mutex_lock(&w->lock);
	digest_wait(w, 0);
	ret = w->error;
	/* Growing leaves a hole: the content moves to its (sparse) staging
	 * file first. In memory, a shrink needs nothing: the bytes past the
	 * end are never read, and growing again spills. */
	if (ret == 0)
		ret = writer_prepare(w, size, size);
	if (ret == 0 && !w->in_memory &&
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

uint64_t local_writer_size(struct blob_writer *base)
{
	struct local_writer *w = (struct local_writer *)base;
	uint64_t size;

	pthread_mutex_lock(&w->lock);
	size = w->size;
	pthread_mutex_unlock(&w->lock);
	return size;
}

int local_writer_commit(struct blob_writer *base, const uint8_t *expect,
			uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct local_writer *w = (struct local_writer *)base;
	struct local_store *store = w->store;
	const struct io_ops *io = store->db->io;
	uint8_t *data = NULL;
	int ret = 0;

	pthread_mutex_lock(&w->lock);
	digest_wait(w, 0);
	ret = w->error;
	if (ret < 0)
		goto out;
	if (w->committed && !w->dirty) {
		memcpy(hash, w->committed_hash, BLOBFS_HASH_SIZE);
		if (expect && memcmp(hash, expect, BLOBFS_HASH_SIZE)) {
			ret = -EINVAL;
			goto out;
		}
		if (local_blob_info(&store->base, hash, NULL, NULL) == 0) {
			ret = -EEXIST;
			goto out;
		}
	}
	ret = writer_prepare(w, 0, 0);
	if (ret == 0)
		ret = writer_digest_finish(w, hash);
	if (ret == 0 && expect && memcmp(hash, expect, BLOBFS_HASH_SIZE))
		ret = -EINVAL;
	if (ret < 0) {
		/* The digest was finalised: a later commit hashes afresh. */
		if (writer_digest_reset(w) < 0)
			ret = -EIO;
		goto out;
	}
	if (w->size >= store->db->base.opts.large_blob_min) {
		if (w->in_memory)
			ret = writer_spill(w);
		if (ret == 0)
			ret = writer_adopt_staging(store, w, hash);
	} else if (w->in_memory) {
		ret = append_small_blob(store, hash, w->mem ? w->mem : (uint8_t *)"", w->size, w->crcs);
	} else {
		ret = -ENOMEM;
		data = malloc(w->size ? (size_t)w->size : 1);
		if (data)
			ret = pread_full(io, w->fd, data, (size_t)w->size, STAGING_DATA_OFFSET);
		if (ret == 0)
			ret = append_small_blob(store, hash, data, w->size, w->crcs);
	}
	if (ret == 0 || ret == -EEXIST) {
		w->committed = true;
		w->dirty = false;
		memcpy(w->committed_hash, hash, BLOBFS_HASH_SIZE);
		writer_mem_trim(w);
	}
	/* The digest was finalised; a later change is hashed afresh. */
	if (writer_digest_reset(w) < 0 && ret >= 0)
		ret = -EIO;
out:
	pthread_mutex_unlock(&w->lock);
	free(data);
	return ret;
}

int local_blob_save(struct store *base, const void *data, size_t len,
			   uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct local_store *store = (struct local_store *)base;
	struct blob_writer *writer = NULL;
	int ret;

	if (len < store->db->base.opts.large_blob_min) {
		ret = hash_buffer(data, len, hash);
		if (ret == 0)
			ret = append_small_blob(store, hash, data, len, NULL);
		return ret;
	}
	ret = local_writer_new(&store->base, &writer);
	if (ret == 0)
		ret = local_writer_write(writer, data, len, 0);
	if (ret == 0)
		ret = local_writer_commit(writer, NULL, hash);
	if (writer)
		local_writer_free(writer);
	return ret;
}
