/*
 * local_read.c - the verified reader: a blob's record checked at open (it is
 * this blob), each chunk checked against its CRC32C before any of its bytes
 * are returned, and the whole SHA-256 checked before the last bytes when the
 * blob is read in order (for a large raw blob, by a thread hashing ahead of
 * the reads: local_ahead.c), unless the record was checked whole since the
 * db was opened (local_checked.c). A reader keeps its pack open, so it outlives a
 * delete or a compaction of its blob.
 */
#include "local.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>

#include "crc32c.h"
#include "hash.h"
#include "index.h"
#include "io.h"
#include "log.h"
#include "pack.h"

static void reader_free(struct local_reader *reader)
{
	const struct io_ops *io = reader->store->db->io;
	local_ahead_destroy(reader);
	if (reader->fd >= 0)
		io->close(reader->fd);
	hasher_free(reader->hasher);
	free(reader->crcs);
	free(reader->zchunks);
	free(reader->zstarts);
	pthread_mutex_destroy(&reader->lock);
	free(reader);
}

static int reader_hash(struct local_reader *reader, const uint8_t *buf, uint64_t start,
		       uint64_t end);

#define ZSTART_EVERY 64

/* The table of a compressed record, and where every ZSTART_EVERY-th stored
 * chunk starts. */
static int zreader_open(struct local_reader *reader, struct record_info *rec, uint64_t count)
{
	static uint64_t next_id;
	const struct io_ops *io = reader->store->db->io;
	uint64_t at;
	int ret = -ENOMEM;

	reader->id = __atomic_add_fetch(&next_id, 1, __ATOMIC_RELAXED);
	reader->zchunks = malloc((size_t)count * sizeof(*reader->zchunks));
	reader->zstarts = malloc((size_t)(count / ZSTART_EVERY + 1) * sizeof(*reader->zstarts));
	if (!reader->zchunks || !reader->zstarts)
		goto out;
	ret = pack_read_ztable(io, reader->fd, rec, reader->zchunks);
	if (ret < 0)
		goto out;
	at = record_data_offset(rec);
	for (uint64_t i = 0; i < count; at += reader->zchunks[i].stored, i++)
		if (i % ZSTART_EVERY == 0)
			reader->zstarts[i / ZSTART_EVERY] = at;
out:
	return ret;
}

static uint64_t zreader_chunk_offset(const struct local_reader *reader, uint64_t i)
{
	uint64_t at = reader->zstarts[i / ZSTART_EVERY];

	for (uint64_t k = i - i % ZSTART_EVERY; k < i; k++)
		at += reader->zchunks[k].stored;
	return at;
}

/* Each thread's buffers for decoding, and the chunk it decoded last (of
 * reader `reader_id`): bounded by the threads, not by the open blobs. */
struct zcache {
	uint64_t reader_id, chunk;
	size_t size;
	uint8_t *plain, *scratch;
};

static pthread_key_t zcache_key;
static pthread_once_t zcache_once = PTHREAD_ONCE_INIT;
static int zcache_key_error;

static void zcache_free(void *p)
{
	struct zcache *c = p;

	free(c->plain);
	free(c->scratch);
	free(c);
}

static void zcache_key_make(void)
{
	zcache_key_error = pthread_key_create(&zcache_key, zcache_free);
}

static struct zcache *zcache_get(size_t size)
{
	struct zcache *c;

	if (pthread_once(&zcache_once, zcache_key_make) || zcache_key_error)
		return NULL;
	c = pthread_getspecific(zcache_key);
	if (c && c->size >= size)
		return c;
	if (c) {
		pthread_setspecific(zcache_key, NULL);
		zcache_free(c);
	}
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->plain = malloc(size);
	c->scratch = malloc(size);
	c->size = size;
	if (!c->plain || !c->scratch || pthread_setspecific(zcache_key, c)) {
		zcache_free(c);
		return NULL;
	}
	return c;
}

/* local_reader_read for a compressed record: chunk by chunk, each decoded
 * (and checked) whole before any of its bytes go out. */
static int zreader_read(struct local_reader *reader, uint8_t *buf, uint64_t off, uint64_t end)
{
	const struct io_ops *io = reader->store->db->io;
	const uint64_t chunk = UINT64_C(1) << reader->chunk_shift;
	struct record_info r = { .length = reader->base.length, .chunk_shift = reader->chunk_shift };
	struct zcache *c = zcache_get((size_t)chunk);
	char hex[HASH_HEX_SIZE + 1];
	const char *problem = NULL;
	int ret = c ? 0 : -ENOMEM;

	for (uint64_t i = off >> reader->chunk_shift; ret == 0 && i * chunk < end; i++) {
		uint64_t start = i * chunk, n = record_chunk_length(&r, i);
		uint64_t from = off > start ? off - start : 0, to = end - start < n ? end - start : n;
		if (c->reader_id != reader->id || c->chunk != i) {
			uint64_t at = zreader_chunk_offset(reader, i);
			c->reader_id = 0;
			ret = zchunk_read(io, reader->fd, at, &reader->zchunks[i], n, c->plain, c->scratch,
					  &problem);
			if (ret < 0) {
				hash_to_hex(reader->hash, hex);
				log_error("store %s: blob %s: pack %08x offset %" PRIu64
					  ": chunk %" PRIu64 ": %s; read refused", reader->store->base.name, hex,
					  reader->pack_id, at, i, problem ? problem : strerror(-ret));
				ret = -EIO;
				break;
			}
			c->reader_id = reader->id;
			c->chunk = i;
		}
		/* A chunk read in order continues the whole-blob hash. */
		ret = reader_hash(reader, c->plain, start, start + n);
		if (ret < 0) {
			hash_to_hex(reader->hash, hex);
			log_error("store %s: blob %s: pack %08x record at %" PRIu64
				  ": content does not hash to the blob's name; read refused",
				  reader->store->base.name, hex, reader->pack_id, reader->record_offset);
			ret = -EIO;
			break;
		}
		memcpy(buf + (start + from - off), c->plain + from, (size_t)(to - from));
	}
	return ret;
}

/* Whether this record of hash was found corrupt (store->lock held). */
static bool bad_record_known(const struct local_store *store, const uint8_t *hash, uint32_t pack_id,
			     uint64_t offset)
{
	for (unsigned i = 0; i < store->bad_record_count; i++) {
		const struct bad_record *b = &store->bad_records[i];
		if (b->pack_id == pack_id && b->offset == offset && !memcmp(b->hash, hash, BLOBFS_HASH_SIZE))
			return true;
	}
	return false;
}

static void bad_record_add(struct local_reader *reader)
{
	struct local_store *store = reader->store;
	struct bad_record *b;

	pthread_mutex_lock(&store->lock);
	if (!bad_record_known(store, reader->hash, reader->pack_id, reader->record_offset)) {
		b = &store->bad_records[store->bad_record_next];
		memcpy(b->hash, reader->hash, BLOBFS_HASH_SIZE);
		b->pack_id = reader->pack_id;
		b->offset = reader->record_offset;
		store->bad_record_next = (store->bad_record_next + 1) % BAD_RECORDS_KEPT;
		if (store->bad_record_count < BAD_RECORDS_KEPT)
			store->bad_record_count++;
	}
	pthread_mutex_unlock(&store->lock);
	local_checked_forget(store, reader->hash, reader->pack_id, reader->record_offset);
}

int local_reader_open(struct store *base, const uint8_t hash[BLOBFS_HASH_SIZE],
			     struct blob_reader **out)
{
	struct local_store *store = (struct local_store *)base;
	const struct io_ops *io = store->db->io;
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
	reader->store = store;
	reader->fd = -1;
	pthread_mutex_init(&reader->lock, NULL);
	local_ahead_init(reader);
	/* The pack is opened under the lock so that it cannot be dropped or
	 * compacted away between the lookup and the open. */
	pthread_mutex_lock(&store->lock);
	ret = store->base.destroyed ? -ENOENT : index_lookup(store->index, hash, &e);
	if (ret == 0 && bad_record_known(store, hash, e.pack_id, e.offset))
		ret = -EBADMSG;
	if (ret == 0)
		ret = local_pack_path(store, e.pack_id, path);
	if (ret == 0) {
		reader->fd = io->openat(store->db->stores_fd, path, O_RDONLY | O_CLOEXEC, 0);
		if (reader->fd < 0)
			ret = -errno;
	}
	pthread_mutex_unlock(&store->lock);
	hash_to_hex(hash, hex);
	if (ret == -EBADMSG) {
		log_error("store %s: blob %s: refused: its content did not hash to its name when "
			  "it was read (fsck --repair)", store->base.name, hex);
		ret = -EIO;
		goto out;
	}
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
		ret = pread_full(io, reader->fd, header, sizeof(header), e.offset);
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
	/* Checked whole since the db was opened: the chunk CRCs alone are
	 * checked now (local_checked.c says why that is enough). */
	if (local_checked_find(store, hash, e.pack_id, e.offset, e.length)) {
		reader->checked = true;
		reader->hashed = e.length;
	} else {
		ret = hasher_new(&reader->hasher);
		if (ret < 0)
			goto out;
	}
	count = record_chunk_count(e.length, rec.chunk_shift);
	if (rec.version == 3) {
		ret = zreader_open(reader, &rec, count);
		if (ret < 0) {
			log_error("store %s: blob %s: pack %08x offset %" PRIu64
				  ": chunk table damaged (%s); the blob cannot be read",
				  store->base.name, hex, e.pack_id, e.offset,
				  ret == -EBADMSG ? "does not check out" : strerror(-ret));
			ret = -EIO;
		}
		goto out;
	}
	ret = -ENOMEM;
	reader->crcs = malloc(count ? (size_t)count * 4 : 1);
	if (!reader->crcs)
		goto out;
	ret = pack_read_chunk_table(io, reader->fd, &rec, reader->crcs);
	if (ret < 0) {
		log_error("store %s: blob %s: pack %08x offset %" PRIu64
			  ": chunk table damaged (%s); the blob cannot be read",
			  store->base.name, hex, e.pack_id, e.offset,
			  ret == -EBADMSG ? "does not match its trailer" : strerror(-ret));
		ret = -EIO;
		goto out;
	}
	ret = 0;
out:
	if (ret < 0) {
		reader_free(reader);
		reader = NULL;
	}
	*out = reader ? &reader->base : NULL;
	return ret;
}

/* Reads chunk i of the blob, checked (raw or compressed), into out; scratch
 * holds a chunk. */
static int reader_chunk(struct local_reader *reader, uint64_t i, uint8_t *out, uint8_t *scratch)
{
	const struct io_ops *io = reader->store->db->io;
	struct record_info r = { .length = reader->base.length, .chunk_shift = reader->chunk_shift };
	uint64_t n = record_chunk_length(&r, i);
	const char *problem = NULL;
	int ret;

	if (reader->zchunks)
		return zchunk_read(io, reader->fd, zreader_chunk_offset(reader, i), &reader->zchunks[i], n,
				   out, scratch, &problem);
	ret = pread_full(io, reader->fd, out, (size_t)n, reader->data_offset + (i << reader->chunk_shift));
	if (ret == 0 && crc32c(0, out, (size_t)n) != reader->crcs[i])
		ret = -EBADMSG;
	return ret;
}

/* Hashes [hashed, upto) from the pack (reader->lock held). */
static int reader_catch_up(struct local_reader *reader, uint64_t upto)
{
	const uint64_t chunk = UINT64_C(1) << reader->chunk_shift;
	uint8_t *out = malloc(chunk), *scratch = malloc(chunk);
	char hex[HASH_HEX_SIZE + 1];
	int ret = out && scratch ? 0 : -ENOMEM;

	while (ret == 0 && reader->hashed < upto) {
		uint64_t i = reader->hashed >> reader->chunk_shift;
		uint64_t n = upto - reader->hashed < chunk ? upto - reader->hashed : chunk;
		ret = reader_chunk(reader, i, out, scratch);
		if (ret == 0)
			ret = hasher_update(reader->hasher, out, (size_t)n);
		reader->hashed += n;
	}
	if (ret < 0 && ret != -ENOMEM) {
		hash_to_hex(reader->hash, hex);
		log_error("store %s: blob %s: pack %08x record at %" PRIu64
			  ": a chunk failed its check when read again to complete the hash: %s",
			  reader->store->base.name, hex, reader->pack_id, reader->record_offset,
			  strerror(-ret));
		ret = -EIO;
	}
	free(out);
	free(scratch);
	return ret;
}

/* Feeds the bytes [start, end) of the blob, held in buf, to the whole-blob
 * hash when they continue it, and checks the hash once it is complete.
 *
 * Reads out of order (the kernel's readahead sends requests on several
 * threads) leave the hash behind. Once the end of the blob has been read
 * and reads have served as many bytes as the blob holds, whichever read
 * gets there (not only the one at the end: that one may have finished
 * first, while an earlier one was still being read), what the hash missed
 * is read again from the pack, checked and hashed, so that a blob read
 * whole is always checked whole: the read that completes it fails with EIO
 * when the hash does not match, and every read after it. (Waiting for the
 * end keeps a reader that goes in order from being checked ahead of where
 * it reads: its pieces are counted once per chunk span, so `served` runs
 * ahead of it.) */
static int reader_hash(struct local_reader *reader, const uint8_t *buf, uint64_t start,
		       uint64_t end)
{
	const uint64_t length = reader->base.length;
	bool found = false, remember = false;
	uint8_t hash[BLOBFS_HASH_SIZE];
	int ret = 0;

	pthread_mutex_lock(&reader->lock);
	reader->served += end - start;
	if (end == length)
		reader->end_served = true;
	if (start == 0 && reader->hashed == 0)
		local_ahead_start(reader);
	/* While a thread hashes ahead, it alone feeds the hash; the read that
	 * completes the blob waits for it, then goes on inline from where it
	 * stopped (the end, unless it gave up). */
	if (!local_ahead_active(reader, reader->end_served && reader->served >= length) &&
	    !reader->corrupt && start <= reader->hashed && reader->hashed < end) {
		ret = hasher_update(reader->hasher, buf + (reader->hashed - start),
				    (size_t)(end - reader->hashed));
		reader->hashed = end;
	}
	if (ret == 0 && !reader->corrupt && !reader->ahead && reader->end_served &&
	    reader->hashed < length && reader->served >= length)
		ret = reader_catch_up(reader, length);
	if (ret == 0 && !reader->corrupt && !reader->checked && reader->hashed == length) {
		reader->checked = true;
		ret = hasher_final(reader->hasher, hash);
		if (ret == 0 && memcmp(hash, reader->hash, BLOBFS_HASH_SIZE)) {
			reader->corrupt = true;
			found = true;
		} else if (ret == 0) {
			remember = true;
		}
	}
	if (ret == 0 && reader->corrupt)
		ret = -EBADMSG;
	pthread_mutex_unlock(&reader->lock);
	if (found)
		bad_record_add(reader); /* later opens fail too */
	else if (remember)
		local_checked_add(reader->store, reader->hash, reader->pack_id, reader->record_offset,
				  length);
	return ret;
}

int local_reader_read(struct blob_reader *base, void *buf, size_t size, uint64_t off,
			     size_t *got)
{
	struct local_reader *reader = (struct local_reader *)base;
	const struct io_ops *io = reader->store->db->io;
	const uint64_t chunk = UINT64_C(1) << reader->chunk_shift;
	char hex[HASH_HEX_SIZE + 1];
	uint64_t end, span_start, span_end;
	uint8_t *span = NULL;
	int ret = 0;

	*got = 0;
	if (off >= reader->base.length || size == 0)
		return 0;
	end = reader->base.length - off < size ? reader->base.length : off + size;
	if (reader->zchunks) {
		ret = zreader_read(reader, buf, off, end);
		if (ret == 0)
			*got = (size_t)(end - off);
		return ret;
	}
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
	ret = pread_full(io, reader->fd, span, (size_t)(span_end - span_start),
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

void local_reader_close(struct blob_reader *base)
{
	struct local_reader *reader = (struct local_reader *)base;
	if (reader)
		reader_free(reader);
}
