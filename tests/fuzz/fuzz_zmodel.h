/*
 * fuzz_zmodel.h - a model of the compressed records (REC3) of
 * docs/FORMAT.md for the fuzz targets (fuzz_pack_scan, fuzz_zchunk), written
 * here rather than taken from pack.c: where a REC3 frames (its table inside
 * the file, each entry's stored size 1 .. its chunk's length, the record
 * inside the file, the trailer's magic, seq and table CRC), whether each
 * chunk checks out (its CRC32C; then, stored smaller than its length, a zstd
 * frame that decodes to exactly that length, by a decoder of the model's own
 * with the same window cap), and the checks of pack_read_record,
 * pack_read_ztable, zchunk_read and pack_verify_record against it.
 *
 * zstd itself is trusted as the oracle of what a frame decodes to: the
 * point is what blobfs does around it (bounds, lengths, checksums, errors).
 */
#ifndef BLOBFS_FUZZ_ZMODEL_H
#define BLOBFS_FUZZ_ZMODEL_H

#include <errno.h>
#include <inttypes.h>
#include <zstd.h>

#include "fuzz_common.h"
#include "hash.h"
#include "io.h"
#include "pack.h"

/* Content bytes the checks let one record decode: a few bytes of zstd
 * frame can stand for a whole 16 MiB chunk, so a small file can claim a
 * very long blob; beyond this a record's chunks are not decoded (its
 * framing and table still are checked). */
#define FZ_DECODE_BUDGET (UINT64_C(16) << 20)

static inline uint64_t fz_chunk_count(uint64_t length, unsigned shift)
{
	return (length >> shift) + ((length & ((UINT64_C(1) << shift) - 1)) != 0);
}

/* The length of chunk i of a blob of length bytes. */
static inline uint64_t fz_chunk_length(uint64_t length, unsigned shift, uint64_t i)
{
	uint64_t chunk = UINT64_C(1) << shift;

	return length - i * chunk < chunk ? length - i * chunk : chunk;
}

/* Whether a REC3 whose header (decoded into rec, rec->offset < size) is at
 * rec->offset of f frames; *stored and *end get its stored total and end. */
static inline bool fz_zrecord_frames(const uint8_t *f, uint64_t size, const struct record_info *rec,
				     uint64_t *stored, uint64_t *end)
{
	uint64_t off = rec->offset, count = fz_chunk_count(rec->length, rec->chunk_shift);
	uint64_t table = off + 64, sum = 0, trailer;

	if (size - off < 80 || count > (size - off - 80) / 8)
		return false;
	for (uint64_t i = 0; i < count; i++) {
		uint32_t n = fz_le32(f + table + 8 * i);
		if (n == 0 || n > fz_chunk_length(rec->length, rec->chunk_shift, i))
			return false;
		sum += n;
	}
	if (sum > size - off - 80 - 8 * count)
		return false;
	trailer = table + 8 * count + sum;
	if (fz_le32(f + trailer) != TRAILER_MAGIC || fz_le64(f + trailer + 8) != rec->seq ||
	    fz_le32(f + trailer + 4) != fz_crc32c(f + table, 8 * count))
		return false;
	*stored = sum;
	*end = trailer + 16;
	return true;
}

/* The model's own decoder, its window capped as the format says. */
static inline ZSTD_DCtx *fz_dctx(void)
{
	static ZSTD_DCtx *d;

	if (!d) {
		d = ZSTD_createDCtx();
		FUZZ_CHECK(d != NULL);
		FUZZ_CHECK(!ZSTD_isError(ZSTD_DCtx_setParameter(d, ZSTD_d_windowLogMax, CHUNK_SHIFT_MAX)));
	}
	return d;
}

/* Whether src (len bytes) is zstd that decodes to exactly want bytes, into
 * out (room for want + 1: one more tells a longer content). */
static inline bool fz_zstd_decodes(const uint8_t *src, size_t len, uint8_t *out, size_t want)
{
	ZSTD_DCtx *d = fz_dctx();
	unsigned long long content;
	size_t got;

	/* docs/FORMAT.md: exactly one zstd frame (not a skippable one, nothing
	 * after it), declaring no other content size than the chunk's. */
	if (len < 4 || (src[0] | src[1] << 8 | src[2] << 16 | (uint32_t)src[3] << 24) != ZSTD_MAGICNUMBER ||
	    ZSTD_findFrameCompressedSize(src, len) != len)
		return false;
	content = ZSTD_getFrameContentSize(src, len);
	if (content == ZSTD_CONTENTSIZE_ERROR || (content != ZSTD_CONTENTSIZE_UNKNOWN && content != want))
		return false;
	got = ZSTD_decompressDCtx(d, out, want + 1, src, len);

	if (ZSTD_isError(got)) {
		ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
		return false;
	}
	return got == want;
}

/*
 * A REC3 that frames at rec->offset of f (size bytes, the same as in fd),
 * stored bytes of chunks: pack_read_record and pack_read_ztable give its
 * header, table and stored size, pack_read_chunk_table refuses it; within
 * the decode budget, each chunk through zchunk_read, and pack_verify_record
 * with model_hasher's hash (and without a hasher), pass exactly when the
 * model says. Returns whether the record verified (false beyond the
 * budget).
 */
static inline bool fz_zrecord_check(const uint8_t *f, uint64_t size, int fd, const struct record_info *rec,
				    uint64_t stored, struct hasher *hasher, struct hasher *model_hasher)
{
	uint64_t count = fz_chunk_count(rec->length, rec->chunk_shift);
	uint64_t chunk = UINT64_C(1) << rec->chunk_shift;
	uint64_t buf_size = rec->length < chunk ? rec->length : chunk, at;
	const uint8_t *table = f + rec->offset + 64;
	struct zchunk *chunks = malloc(count * sizeof(*chunks));
	uint8_t *out = NULL, *scratch = NULL, *model_out = NULL;
	uint8_t hash[BLOBFS_HASH_SIZE];
	struct record_info r = *rec;
	bool chunks_ok = true, hash_ok = false;
	const char *problem;
	uint32_t crc;
	int ret;

	FUZZ_CHECK(chunks != NULL && rec->version == 3 && rec->offset + 80 <= size);
	r.stored = 0;
	FUZZ_CHECK(pack_read_ztable(io_system(), fd, &r, chunks) == 0);
	FUZZ_CHECK(r.stored == stored);
	for (uint64_t i = 0; i < count; i++)
		FUZZ_CHECK(chunks[i].stored == fz_le32(table + 8 * i) &&
			   chunks[i].crc == fz_le32(table + 8 * i + 4));
	FUZZ_CHECK(pack_read_record(io_system(), fd, rec->offset, &r) == 0);
	FUZZ_CHECK(r.version == 3 && r.stored == stored && r.length == rec->length &&
		   r.seq == rec->seq && r.chunk_shift == rec->chunk_shift &&
		   record_end(&r) == rec->offset + 80 + 8 * count + stored);
	FUZZ_CHECK(pack_read_chunk_table(io_system(), fd, rec, &crc) == -EINVAL);
	if (rec->length > FZ_DECODE_BUDGET)
		goto out;

	out = malloc(buf_size);
	scratch = malloc(buf_size);
	model_out = malloc(buf_size + 1);
	FUZZ_CHECK(out && scratch && model_out);
	FUZZ_CHECK(hasher_reset(model_hasher) == 0);
	at = rec->offset + 64 + 8 * count;
	for (uint64_t i = 0; i < count; at += chunks[i].stored, i++) {
		uint64_t n = fz_chunk_length(rec->length, rec->chunk_shift, i);
		bool raw = chunks[i].stored == n;
		bool ok = fz_crc32c(f + at, chunks[i].stored) == chunks[i].crc &&
			  (raw || fz_zstd_decodes(f + at, chunks[i].stored, model_out, (size_t)n));
		problem = NULL;
		ret = zchunk_read(io_system(), fd, at, &chunks[i], n, out, scratch, &problem);
		FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
		FUZZ_CHECK((ret == 0) == ok);
		FUZZ_CHECK((ret == 0) == (problem == NULL));
		if (ok) {
			FUZZ_CHECK(!memcmp(out, raw ? f + at : model_out, (size_t)n));
			FUZZ_CHECK(hasher_update(model_hasher, out, (size_t)n) == 0);
		}
		chunks_ok = chunks_ok && ok;
	}
	FUZZ_CHECK(at == rec->offset + 64 + 8 * count + stored);
	if (chunks_ok) {
		FUZZ_CHECK(hasher_final(model_hasher, hash) == 0);
		hash_ok = !memcmp(hash, rec->hash, BLOBFS_HASH_SIZE);
	}
	problem = "unset";
	ret = pack_verify_record(io_system(), fd, rec, hasher, &problem);
	FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
	FUZZ_CHECK((ret == 0) == (chunks_ok && hash_ok));
	FUZZ_CHECK((ret == 0) == (problem == NULL));
	FZ_LOG("  REC3 verify: %s; %" PRIu64 " chunks, %" PRIu64 " bytes stored\n",
	       problem ? problem : "ok", count, stored);
	problem = "unset";
	ret = pack_verify_record(io_system(), fd, rec, NULL, &problem);
	FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
	FUZZ_CHECK((ret == 0) == chunks_ok);
	FUZZ_CHECK((ret == 0) == (problem == NULL));
out:
	free(chunks);
	free(out);
	free(scratch);
	free(model_out);
	return chunks_ok && hash_ok;
}

/* Fix-ups of a REC3 at off of f (its header h), so that fuzzing reaches
 * the later checks: FZ_FIX_ZSIZES brings stored sizes within their chunks,
 * FZ_FIX_CHUNKS sets each entry's CRC, FZ_FIX_HASH hashes the decoded
 * content into the header, FZ_FIX_TRAILER writes the trailer. budget bounds
 * the work (table entries, stored bytes, content hashed) and is spent. */
enum { FZ_FIX_ZSIZES = 1, FZ_FIX_CHUNKS = 2, FZ_FIX_HASH = 4, FZ_FIX_TRAILER = 8 };

static inline void fz_fix_up_zrecord(uint8_t *f, uint64_t size, uint64_t off, unsigned flags,
				     uint64_t *budget, struct hasher *model_hasher)
{
	uint8_t *h = f + off;
	uint64_t length = fz_le64(h + 16), count, table, data, sum = 0;
	unsigned shift = h[5];

	if (shift < CHUNK_SHIFT_MIN || shift > CHUNK_SHIFT_MAX || length == 0 || length > RECORD_LENGTH_MAX ||
	    size - off < 80 || (count = fz_chunk_count(length, shift)) > (size - off - 80) / 8 ||
	    count > *budget)
		return;
	*budget -= count;
	table = off + 64;
	data = table + 8 * count;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t n = fz_chunk_length(length, shift, i);
		uint32_t stored = fz_le32(f + table + 8 * i);
		if ((flags & FZ_FIX_ZSIZES) && (stored == 0 || stored > n))
			fz_put32(f + table + 8 * i, stored = (uint32_t)(1 + stored % n));
		if (stored == 0 || stored > n)
			return;
		sum += stored;
	}
	if (sum > size - off - 80 - 8 * count)
		return;
	if ((flags & FZ_FIX_CHUNKS) && sum <= *budget) {
		*budget -= sum;
		for (uint64_t i = 0, at = data; i < count; at += fz_le32(f + table + 8 * i), i++)
			fz_put32(f + table + 8 * i + 4, fz_crc32c(f + at, fz_le32(f + table + 8 * i)));
	}
	if ((flags & FZ_FIX_HASH) && length <= *budget) {
		uint64_t chunk = UINT64_C(1) << shift, at = data;
		uint8_t *buf = malloc((length < chunk ? length : chunk) + 1);
		bool ok = buf && hasher_reset(model_hasher) == 0;
		*budget -= length;
		for (uint64_t i = 0; ok && i < count; at += fz_le32(f + table + 8 * i), i++) {
			uint64_t n = fz_chunk_length(length, shift, i);
			uint32_t stored = fz_le32(f + table + 8 * i);
			const uint8_t *content = f + at;
			if (stored < n) {
				ok = fz_zstd_decodes(f + at, stored, buf, (size_t)n);
				content = buf;
			}
			ok = ok && hasher_update(model_hasher, content, (size_t)n) == 0;
		}
		if (ok)
			FUZZ_CHECK(hasher_final(model_hasher, h + 24) == 0);
		free(buf);
	}
	if (flags & FZ_FIX_TRAILER) {
		uint64_t trailer = data + sum;
		fz_put32(f + trailer, TRAILER_MAGIC);
		fz_put32(f + trailer + 4, fz_crc32c(f + table, 8 * count));
		memcpy(f + trailer + 8, h + 8, 8);
	}
}


#endif
