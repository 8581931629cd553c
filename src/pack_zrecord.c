/*
 * pack_zrecord.c - compressed records (REC3, docs/FORMAT.md "Compressed
 * record"): their chunk table, reading and writing them, reading one chunk
 * (checked, then decoded) and verifying a whole record. The framing of every
 * record kind, and the scan, stay in pack.c.
 */
#include "pack.h"
#include "pack_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "chunk_codec.h"
#include "crc32c.h"
#include "hash.h"
#include "io.h"

/* Decodes and checks a REC3 chunk table (table: record_chunk_count entries
 * as on disk) into chunks (when not NULL) and its stored total. */
int zrecord_table_decode(const struct record_info *rec, const uint8_t *table,
			 struct zchunk *chunks, uint64_t *stored)
{
	uint64_t count = record_chunk_count(rec->length, rec->chunk_shift), sum = 0;

	for (uint64_t i = 0; i < count; i++) {
		uint32_t n = get_le32(table + ZCHUNK_ENTRY_SIZE * i);
		if (n == 0 || n > record_chunk_length(rec, i))
			return -EBADMSG;
		sum += n;
		if (chunks) {
			chunks[i].stored = n;
			chunks[i].crc = get_le32(table + ZCHUNK_ENTRY_SIZE * i + 4);
		}
	}
	*stored = sum;
	return 0;
}

bool record_trailer_matches(const uint8_t trailer[RECORD_TRAILER_SIZE], const struct record_info *rec,
			    const uint8_t *table, uint64_t table_size)
{
	return get_le32(trailer) == TRAILER_MAGIC && get_le64(trailer + 8) == rec->seq &&
	       get_le32(trailer + 4) == crc32c(0, table, table_size);
}

/* Whether a REC3 could fit in a file of file_size bytes at all (each chunk
 * stores at least a byte): checked before anything is sized from it. */
bool zrecord_may_fit(const struct record_info *rec, uint64_t file_size)
{
	uint64_t count = record_chunk_count(rec->length, rec->chunk_shift);
	return rec->offset <= file_size &&
	       zrecord_size(rec->length, rec->chunk_shift, count) <= file_size - rec->offset;
}

int pack_read_ztable(const struct io_ops *io, int fd, struct record_info *rec, struct zchunk *chunks)
{
	uint64_t count = record_chunk_count(rec->length, rec->chunk_shift);
	size_t size = (size_t)(ZCHUNK_ENTRY_SIZE * count);
	uint8_t trailer[RECORD_TRAILER_SIZE], *table = NULL;
	struct stat st;
	int ret;

	if (rec->version != 3)
		return -EINVAL;
	if (io->fstat(fd, &st) < 0)
		return -errno;
	/* Sized from the header only once the file could hold the record. */
	ret = -EBADMSG;
	if (!zrecord_may_fit(rec, (uint64_t)st.st_size))
		goto out;
	ret = -ENOMEM;
	table = malloc(size);
	if (!table)
		goto out;
	ret = pread_full(io, fd, table, size, rec->offset + RECORD_HEADER_SIZE);
	if (ret == 0)
		ret = zrecord_table_decode(rec, table, chunks, &rec->stored);
	if (ret == 0 && record_end(rec) > (uint64_t)st.st_size)
		ret = -EBADMSG;
	if (ret == 0)
		ret = pread_full(io, fd, trailer, sizeof(trailer), record_end(rec) - RECORD_TRAILER_SIZE);
	if (ret == 0 && !record_trailer_matches(trailer, rec, table, size))
		ret = -EBADMSG;
out:
	free(table);
	return ret == -EIO ? -EBADMSG : ret;
}

int pack_read_record(const struct io_ops *io, int fd, uint64_t offset, struct record_info *rec)
{
	uint8_t header[RECORD_HEADER_SIZE];
	int ret = pread_full(io, fd, header, sizeof(header), offset);

	if (ret == 0)
		ret = record_header_decode(header, offset, rec);
	/* Only the stored size is wanted: the table is checked, not kept. */
	if (ret == 0 && rec->version == 3)
		ret = pack_read_ztable(io, fd, rec, NULL);
	return ret == -EIO ? -EBADMSG : ret;
}

/* The table of a REC3 as on disk, and its trailer after it. */
static void ztable_encode(const struct record_info *rec, const struct zchunk *chunks, uint8_t *table,
			  uint8_t trailer[RECORD_TRAILER_SIZE])
{
	uint64_t count = record_chunk_count(rec->length, rec->chunk_shift);

	for (uint64_t i = 0; i < count; i++) {
		put_le32(table + ZCHUNK_ENTRY_SIZE * i, chunks[i].stored);
		put_le32(table + ZCHUNK_ENTRY_SIZE * i + 4, chunks[i].crc);
	}
	record_trailer_encode(rec->seq, crc32c(0, table, ZCHUNK_ENTRY_SIZE * count), trailer);
}

int pack_write_zrecord(const struct io_ops *io, int fd, const struct record_info *rec,
		       const struct zchunk *chunks, const void *stored)
{
	uint64_t size = record_end(rec) - rec->offset;
	uint64_t table_size = record_data_offset(rec) - rec->offset - RECORD_HEADER_SIZE;
	uint8_t *buf = malloc((size_t)size);
	int ret = -ENOMEM;

	if (!buf)
		goto out;
	record_header_encode(rec, buf);
	memcpy(buf + RECORD_HEADER_SIZE + table_size, stored, (size_t)rec->stored);
	ztable_encode(rec, chunks, buf + RECORD_HEADER_SIZE, buf + size - RECORD_TRAILER_SIZE);
	ret = pwrite_full(io, fd, buf, (size_t)size, rec->offset);
out:
	free(buf);
	return ret;
}

int pack_write_zframe(const struct io_ops *io, int fd, const struct record_info *rec,
		      const struct zchunk *chunks)
{
	uint64_t table_size = record_data_offset(rec) - rec->offset - RECORD_HEADER_SIZE;
	uint8_t *buf = malloc((size_t)(RECORD_HEADER_SIZE + table_size));
	uint8_t trailer[RECORD_TRAILER_SIZE];
	int ret = -ENOMEM;

	if (!buf)
		goto out;
	ztable_encode(rec, chunks, buf + RECORD_HEADER_SIZE, trailer);
	ret = pwrite_full(io, fd, trailer, sizeof(trailer), record_end(rec) - RECORD_TRAILER_SIZE);
	if (ret < 0)
		goto out;
	/* The header last, as for a raw record: until it is there, the
	 * record does not frame. */
	record_header_encode(rec, buf);
	ret = pwrite_full(io, fd, buf + RECORD_HEADER_SIZE, (size_t)table_size,
			  rec->offset + RECORD_HEADER_SIZE);
	if (ret == 0)
		ret = pwrite_full(io, fd, buf, RECORD_HEADER_SIZE, rec->offset);
out:
	free(buf);
	return ret;
}

int zchunk_read(const struct io_ops *io, int fd, uint64_t at, const struct zchunk *chunk, uint64_t length,
		void *out, void *scratch, const char **problem)
{
	bool raw = chunk->stored == length;
	uint8_t *into = raw ? out : scratch;
	int ret = pread_full(io, fd, into, chunk->stored, at);

	if (ret == -EIO) {
		*problem = "record cut short";
		return -EBADMSG;
	}
	if (ret < 0)
		return ret;
	if (crc32c(0, into, chunk->stored) != chunk->crc) {
		*problem = "chunk checksum mismatch";
		return -EBADMSG;
	}
	if (raw)
		return 0;
	ret = chunk_decompress(scratch, chunk->stored, out, (size_t)length);
	if (ret == -EBADMSG)
		*problem = "compressed chunk does not decode to its length";
	return ret;
}

/* pack_verify_record for a REC3: each stored chunk checked, decoded and
 * hashed in turn. */
int zrecord_verify(const struct io_ops *io, int fd, const struct record_info *rec,
			  struct hasher *hasher, const char **problem)
{
	uint64_t chunk = UINT64_C(1) << rec->chunk_shift;
	uint64_t count = record_chunk_count(rec->length, rec->chunk_shift);
	struct record_info r = *rec;
	struct zchunk *chunks = NULL;
	uint8_t *buf = NULL, *scratch = NULL;
	uint64_t at;
	struct stat st;
	int ret = io->fstat(fd, &st) < 0 ? -errno : 0;

	if (ret == 0 && !zrecord_may_fit(&r, (uint64_t)st.st_size)) {
		*problem = "record cut short";
		ret = -EBADMSG;
	}
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	chunks = malloc((size_t)count * sizeof(*chunks));
	buf = malloc(rec->length < chunk ? (size_t)rec->length : chunk);
	scratch = malloc(rec->length < chunk ? (size_t)rec->length : chunk);
	if (!chunks || !buf || !scratch)
		goto out;
	ret = pack_read_ztable(io, fd, &r, chunks);
	/* The table decoded (r.stored is its sum) but the file ends first. */
	if (ret == -EBADMSG && r.stored && record_end(&r) > (uint64_t)st.st_size)
		*problem = "record cut short";
	else if (ret == -EBADMSG)
		*problem = "chunk table does not match its trailer";
	if (ret < 0)
		goto out;
	ret = hasher ? hasher_reset(hasher) : 0;
	at = record_data_offset(&r);
	for (uint64_t i = 0; ret == 0 && i < count; at += chunks[i].stored, i++) {
		uint64_t n = record_chunk_length(&r, i);
		ret = zchunk_read(io, fd, at, &chunks[i], n, buf, scratch, problem);
		if (ret == 0 && hasher)
			ret = hasher_update(hasher, buf, n);
	}
	if (ret < 0 || !hasher)
		goto out;
	ret = record_hash_check(hasher, rec, problem);
out:
	free(chunks);
	free(buf);
	free(scratch);
	return ret;
}
