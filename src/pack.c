/*
 * pack.c - the pack file format of docs/FORMAT.md: record framing, its
 * checksums, and a scanner that survives damage by resynchronising on the
 * next record that frames correctly.
 */
#include "pack.h"
#include "pack_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bytes.h"
#include "crc32c.h"
#include "io.h"
#include "hash.h"

void pack_name(uint32_t pack_id, char out[PACK_NAME_SIZE])
{
	snprintf(out, PACK_NAME_SIZE, "pack-%08x.pack", pack_id);
}

bool pack_parse_name(const char *name, uint32_t *pack_id)
{
	uint32_t id = 0;

	if (strlen(name) != 18 || memcmp(name, "pack-", 5) || strcmp(name + 13, ".pack"))
		return false;
	for (int i = 5; i < 13; i++) {
		char c = name[i];
		int digit = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (digit < 0)
			return false;
		id = id << 4 | (uint32_t)digit;
	}
	*pack_id = id;
	return true;
}

void pack_header_encode(uint32_t pack_id, uint8_t out[PACK_HEADER_SIZE])
{
	memset(out, 0, PACK_HEADER_SIZE);
	memcpy(out, PACK_MAGIC, PACK_MAGIC_SIZE);
	put_le32(out + 8, PACK_VERSION);
	put_le32(out + 12, pack_id);
	put_le32(out + 28, crc32c(0, out, 28));
}

int pack_header_decode(const uint8_t buf[PACK_HEADER_SIZE], uint32_t *pack_id)
{
	if (memcmp(buf, PACK_MAGIC, PACK_MAGIC_SIZE) || get_le32(buf + 28) != crc32c(0, buf, 28) ||
	    get_le32(buf + 8) != PACK_VERSION || !all_zero(buf + 16, 12))
		return -EBADMSG;
	*pack_id = get_le32(buf + 12);
	return 0;
}

void record_header_encode(const struct record_info *rec, uint8_t out[RECORD_HEADER_SIZE])
{
	int64_t time = rec->time < RECORD_TIME_MIN ? RECORD_TIME_MIN :
		       rec->time > RECORD_TIME_MAX ? RECORD_TIME_MAX : rec->time;
	/* Two's complement, 48 bits: the high 16 at 6, the low 32 at 56. */
	uint64_t bits = (uint64_t)time;

	memset(out, 0, RECORD_HEADER_SIZE);
	put_le32(out, rec->version == 1 ? RECORD_MAGIC_V1 :
		      rec->version == 3 ? RECORD_MAGIC_Z : RECORD_MAGIC);
	out[4] = (uint8_t)rec->kind;
	out[5] = (uint8_t)rec->chunk_shift;
	put_le64(out + 8, rec->seq);
	put_le64(out + 16, rec->length);
	memcpy(out + 24, rec->hash, BLOBFS_HASH_SIZE);
	if (rec->version != 1) {
		put_le16(out + 6, (uint16_t)(bits >> 32 & 0xffff));
		put_le32(out + 56, (uint32_t)bits);
	}
	put_le32(out + 60, crc32c(0, out, 60));
}

int record_header_decode(const uint8_t buf[RECORD_HEADER_SIZE], uint64_t offset,
			 struct record_info *rec)
{
	uint32_t magic = get_le32(buf);

	if (!record_magic_known(magic) || get_le32(buf + 60) != crc32c(0, buf, 60))
		return -EBADMSG;
	if (magic == RECORD_MAGIC_V1) {
		/* Format 1: these bytes are reserved, and no time was kept. */
		if (!all_zero(buf + 6, 2) || !all_zero(buf + 56, 4))
			return -EBADMSG;
		rec->version = 1;
		rec->time = RECORD_TIME_UNKNOWN;
	} else {
		/* 48 bits, two's complement: sign-extended without a cast
		 * that would be implementation-defined. */
		uint64_t bits = (uint64_t)get_le16(buf + 6) << 32 | get_le32(buf + 56);
		rec->version = magic == RECORD_MAGIC_Z ? 3 : 2;
		rec->time = (int64_t)(bits ^ (UINT64_C(1) << 47)) - (INT64_C(1) << 47);
	}
	rec->offset = offset;
	rec->kind = buf[4];
	rec->chunk_shift = buf[5];
	rec->seq = get_le64(buf + 8);
	rec->length = get_le64(buf + 16);
	memcpy(rec->hash, buf + 24, BLOBFS_HASH_SIZE);
	if (rec->kind != RECORD_BLOB && rec->kind != RECORD_TOMBSTONE)
		return -EBADMSG;
	if (rec->chunk_shift < CHUNK_SHIFT_MIN || rec->chunk_shift > CHUNK_SHIFT_MAX)
		return -EBADMSG;
	if (rec->length > RECORD_LENGTH_MAX || (rec->kind == RECORD_TOMBSTONE && rec->length))
		return -EBADMSG;
	/* Only a blob with content has chunks to compress. */
	if (rec->version == 3 && (rec->kind != RECORD_BLOB || rec->length == 0))
		return -EBADMSG;
	rec->stored = rec->version == 3 ? 0 : rec->length;
	return 0;
}

void record_trailer_encode(uint64_t seq, uint32_t table_crc,
				  uint8_t out[RECORD_TRAILER_SIZE])
{
	put_le32(out, TRAILER_MAGIC);
	put_le32(out + 4, table_crc);
	put_le64(out + 8, seq);
}

int pread_full(const struct io_ops *io, int fd, void *buf, size_t len, uint64_t off)
{
	char *p = buf;

	while (len) {
		ssize_t n = io->pread(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int pwrite_full(const struct io_ops *io, int fd, const void *buf, size_t len, uint64_t off)
{
	const char *p = buf;

	while (len) {
		ssize_t n = io->pwrite(fd, p, len, (off_t)off);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int copy_file_bytes(const struct io_ops *io, int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len)
{
	enum { BUFFER = 1 << 20 };
	uint8_t *buf = len ? malloc(len < BUFFER ? (size_t)len : BUFFER) : NULL;
	int ret = len && !buf ? -ENOMEM : 0;

	while (ret == 0 && len) {
		size_t n = len < BUFFER ? (size_t)len : BUFFER;
		ret = pread_full(io, in, buf, n, in_off);
		if (ret == 0)
			ret = pwrite_full(io, out, buf, n, out_off);
		in_off += n;
		out_off += n;
		len -= n;
	}
	free(buf);
	return ret;
}

int pack_create(const struct io_ops *io, int dirfd, uint32_t pack_id, int *fd_out)
{
	char name[PACK_NAME_SIZE];
	uint8_t header[PACK_HEADER_SIZE];
	int ret, fd;

	pack_name(pack_id, name);
	fd = io->openat(dirfd, name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	pack_header_encode(pack_id, header);
	ret = pwrite_full(io, fd, header, sizeof(header), 0);
	if (ret < 0)
		goto out;
	*fd_out = fd;
out:
	if (ret < 0) {
		io->close(fd);
		io->unlinkat(dirfd, name, 0);
	}
	return ret;
}

void chunk_crcs(const void *data, uint64_t len, unsigned chunk_shift, uint32_t *crcs)
{
	const uint8_t *p = data;
	uint64_t chunk = UINT64_C(1) << chunk_shift;

	for (uint64_t i = 0; len; i++) {
		uint64_t n = len < chunk ? len : chunk;
		crcs[i] = crc32c(0, p, n);
		p += n;
		len -= n;
	}
}

int pack_write_frame(const struct io_ops *io, int fd, const struct record_info *rec, const uint32_t *crcs)
{
	uint64_t count = record_chunk_count(rec->length, rec->chunk_shift);
	size_t tail_size = (size_t)(4 * count + RECORD_TRAILER_SIZE);
	uint8_t header[RECORD_HEADER_SIZE];
	uint8_t *tail = malloc(tail_size);
	int ret = -ENOMEM;

	if (!tail)
		goto out;
	for (uint64_t i = 0; i < count; i++)
		put_le32(tail + 4 * i, crcs[i]);
	record_trailer_encode(rec->seq, crc32c(0, tail, 4 * count), tail + 4 * count);
	ret = pwrite_full(io, fd, tail, tail_size, record_data_offset(rec) + rec->length);
	if (ret < 0)
		goto out;
	record_header_encode(rec, header);
	ret = pwrite_full(io, fd, header, sizeof(header), rec->offset);
out:
	free(tail);
	return ret;
}

int pack_write_record(const struct io_ops *io, int fd, const struct record_info *rec, const void *data,
		      const uint32_t *crcs)
{
	uint64_t count = record_chunk_count(rec->length, rec->chunk_shift);
	uint64_t size = record_size(rec->length, rec->chunk_shift);
	uint8_t *buf = malloc((size_t)size), *table;
	int ret = -ENOMEM;

	if (!buf)
		goto out;
	/* The whole record is composed in memory and written with one call. */
	record_header_encode(rec, buf);
	if (rec->length)
		memcpy(buf + RECORD_HEADER_SIZE, data, rec->length); /* a tombstone has none */
	table = buf + RECORD_HEADER_SIZE + rec->length;
	if (crcs) {
		for (uint64_t i = 0; i < count; i++)
			put_le32(table + 4 * i, crcs[i]);
	} else {
		const uint8_t *p = data;
		uint64_t chunk = UINT64_C(1) << rec->chunk_shift, left = rec->length;
		for (uint64_t i = 0; i < count; i++, p += chunk, left -= chunk)
			put_le32(table + 4 * i, crc32c(0, p, left < chunk ? left : chunk));
	}
	record_trailer_encode(rec->seq, crc32c(0, table, 4 * count), table + 4 * count);
	ret = pwrite_full(io, fd, buf, (size_t)size, rec->offset);
out:
	free(buf);
	return ret;
}

int pack_scan_open(const struct io_ops *io, struct pack_scan *scan, int fd, uint32_t pack_id)
{
	uint8_t header[PACK_HEADER_SIZE];
	struct stat st;
	uint32_t id;
	int ret;

	memset(scan, 0, sizeof(*scan));
	if (io->fstat(fd, &st) < 0)
		return -errno;
	ret = pread_full(io, fd, header, sizeof(header), 0);
	if (ret == -EIO && (uint64_t)st.st_size < PACK_HEADER_SIZE)
		return -EBADMSG;
	if (ret < 0)
		return ret;
	ret = pack_header_decode(header, &id);
	if (ret < 0)
		return ret;
	if (id != pack_id)
		return -EBADMSG;
	scan->io = io;
	scan->fd = fd;
	scan->pack_id = pack_id;
	scan->file_size = (uint64_t)st.st_size;
	scan->pos = PACK_HEADER_SIZE;
	scan->good_end = PACK_HEADER_SIZE;
	return 0;
}

int pack_scan_open_headless(const struct io_ops *io, struct pack_scan *scan, int fd, uint32_t pack_id)
{
	struct stat st;

	memset(scan, 0, sizeof(*scan));
	if (io->fstat(fd, &st) < 0)
		return -errno;
	scan->io = io;
	scan->fd = fd;
	scan->pack_id = pack_id;
	scan->file_size = (uint64_t)st.st_size;
	scan->pos = scan->good_end = PACK_HEADER_SIZE;
	return 0;
}

/* len bytes of the scanned file at off, through the window when they fit
 * in one; -EIO when the file ends before them. */
static int scan_read(struct pack_scan *scan, void *buf, size_t len, uint64_t off)
{
	size_t want;
	int ret;

	if (off >= scan->window_off && len <= scan->window_len &&
	    off - scan->window_off <= scan->window_len - len) {
		memcpy(buf, scan->window + (off - scan->window_off), len);
		return 0;
	}
	if (len > PACK_SCAN_WINDOW || off >= scan->file_size || scan->file_size - off < len)
		return pread_full(scan->io, scan->fd, buf, len, off);
	want = scan->file_size - off < PACK_SCAN_WINDOW ? (size_t)(scan->file_size - off) :
							  PACK_SCAN_WINDOW;
	ret = pread_full(scan->io, scan->fd, scan->window, want, off);
	if (ret < 0) {
		scan->window_len = 0;
		return pread_full(scan->io, scan->fd, buf, len, off);
	}
	scan->window_off = off;
	scan->window_len = want;
	memcpy(buf, scan->window, len);
	return 0;
}

/* Checks that a whole record frames correctly at offset: header checksum,
 * fits in the file, trailer magic and seq, chunk table checksum. */
static int record_check_frame(struct pack_scan *scan, uint64_t offset,
			      struct record_info *rec)
{
	uint8_t header[RECORD_HEADER_SIZE], trailer[RECORD_TRAILER_SIZE];
	uint8_t small_table[256];
	uint8_t *table = small_table;
	uint64_t table_size, table_off;
	int ret;

	if (scan->file_size - offset < RECORD_HEADER_SIZE + RECORD_TRAILER_SIZE)
		return -EBADMSG;
	ret = scan_read(scan, header, sizeof(header), offset);
	if (ret < 0)
		goto out;
	ret = record_header_decode(header, offset, rec);
	if (ret < 0)
		goto out;
	ret = -EBADMSG;
	if (rec->version == 3 ? !zrecord_may_fit(rec, scan->file_size) :
				record_size(rec->length, rec->chunk_shift) > scan->file_size - offset)
		goto out;
	table_size = (rec->version == 3 ? ZCHUNK_ENTRY_SIZE : 4) *
		     record_chunk_count(rec->length, rec->chunk_shift);
	table_off = rec->version == 3 ? offset + RECORD_HEADER_SIZE : record_data_offset(rec) + rec->length;
	if (table_size > sizeof(small_table)) {
		table = malloc(table_size);
		ret = -ENOMEM;
		if (!table)
			goto out;
	}
	ret = scan_read(scan, table, table_size, table_off);
	if (ret < 0)
		goto out;
	if (rec->version == 3) {
		ret = zrecord_table_decode(rec, table, NULL, &rec->stored);
		if (ret < 0 || record_end(rec) > scan->file_size) {
			ret = -EBADMSG;
			goto out;
		}
	}
	ret = scan_read(scan, trailer, sizeof(trailer), record_end(rec) - RECORD_TRAILER_SIZE);
	if (ret < 0)
		goto out;
	ret = record_trailer_matches(trailer, rec, table, table_size) ? 0 : -EBADMSG;
out:
	if (table != small_table)
		free(table);
	/* A short read here means the file is shorter than it claimed: damage. */
	return ret == -EIO ? -EBADMSG : ret;
}

/* Looks for the next offset after from at which a record frames correctly;
 * returns the file size if there is none (the rest is a torn tail). */
static int pack_resync(struct pack_scan *scan, uint64_t from, uint64_t *next)
{
	const struct io_ops *io = scan->io;
	enum { WINDOW = 1 << 16 };
	uint8_t *buf = malloc(WINDOW);
	uint64_t pos = from;
	int ret = -ENOMEM;

	if (!buf)
		goto out;
	while (pos + RECORD_HEADER_SIZE <= scan->file_size) {
		size_t want = scan->file_size - pos < WINDOW ? (size_t)(scan->file_size - pos) : WINDOW;
		ret = pread_full(io, scan->fd, buf, want, pos);
		if (ret < 0)
			goto out;
		for (size_t i = 0; i + 4 <= want; i++) {
			struct record_info rec;
			if (!record_magic_known(get_le32(buf + i)))
				continue;
			ret = record_check_frame(scan, pos + i, &rec);
			if (ret == 0) {
				*next = pos + i;
				goto out;
			}
			if (ret != -EBADMSG)
				goto out;
		}
		/* Overlap by 3 bytes so a magic split across windows is seen. */
		pos += want > 3 ? want - 3 : want;
	}
	*next = scan->file_size;
	ret = 0;
out:
	free(buf);
	return ret;
}

int pack_scan_next(struct pack_scan *scan, struct record_info *rec)
{
	int ret;

	if (scan->pos >= scan->file_size)
		return 0;
	ret = record_check_frame(scan, scan->pos, rec);
	if (ret == 0) {
		scan->pos = record_end(rec);
		scan->good_end = scan->pos;
		return 1;
	}
	if (ret != -EBADMSG)
		return ret;
	scan->bad_start = scan->pos;
	ret = pack_resync(scan, scan->pos + 1, &scan->bad_end);
	if (ret < 0)
		return ret;
	scan->pos = scan->bad_end;
	return -EBADMSG;
}

int pack_read_chunk_table(const struct io_ops *io, int fd, const struct record_info *rec, uint32_t *crcs)
{
	if (rec->version == 3)
		return -EINVAL;
	uint64_t count = record_chunk_count(rec->length, rec->chunk_shift);
	uint64_t table_off = record_data_offset(rec) + rec->length;
	size_t size = (size_t)(4 * count + RECORD_TRAILER_SIZE);
	uint8_t *buf = malloc(size);
	int ret = -ENOMEM;

	if (!buf)
		goto out;
	ret = pread_full(io, fd, buf, size, table_off);
	if (ret < 0)
		goto out;
	ret = -EBADMSG;
	if (get_le32(buf + 4 * count) != TRAILER_MAGIC ||
	    get_le64(buf + 4 * count + 8) != rec->seq ||
	    get_le32(buf + 4 * count + 4) != crc32c(0, buf, 4 * count))
		goto out;
	for (uint64_t i = 0; i < count; i++)
		crcs[i] = get_le32(buf + 4 * i);
	ret = 0;
out:
	free(buf);
	return ret;
}

bool record_header_guess_hash(const struct io_ops *io, int fd, uint64_t offset, uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint8_t header[RECORD_HEADER_SIZE];

	if (pread_full(io, fd, header, sizeof(header), offset) < 0 ||
	    !record_magic_known(get_le32(header)))
		return false;
	memcpy(hash, header + 24, BLOBFS_HASH_SIZE);
	return true;
}

void marker_encode(uint64_t durable_seq, uint8_t out[MARKER_SIZE])
{
	memset(out, 0, MARKER_SIZE);
	memcpy(out, MARKER_MAGIC, 8);
	put_le64(out + 8, durable_seq);
	put_le32(out + 28, crc32c(0, out, 28));
}

int marker_decode(const uint8_t buf[MARKER_SIZE], uint64_t *durable_seq)
{
	if (memcmp(buf, MARKER_MAGIC, 8) || get_le32(buf + 28) != crc32c(0, buf, 28) ||
	    !all_zero(buf + 16, 12))
		return -EBADMSG;
	*durable_seq = get_le64(buf + 8);
	return 0;
}

int record_hash_check(struct hasher *hasher, const struct record_info *rec, const char **problem)
{
	uint8_t hash[BLOBFS_HASH_SIZE];
	int ret = hasher_final(hasher, hash);

	if (ret == 0 && memcmp(hash, rec->hash, BLOBFS_HASH_SIZE)) {
		*problem = "content does not hash to the blob's name";
		ret = -EBADMSG;
	}
	return ret;
}

static int verify_raw_record(const struct io_ops *io, int fd, const struct record_info *rec,
			     struct hasher *hasher, const char **problem)
{
	uint64_t chunk = UINT64_C(1) << rec->chunk_shift;
	uint64_t count = record_chunk_count(rec->length, rec->chunk_shift);
	uint32_t *crcs = malloc(count ? (size_t)count * 4 : 1);
	uint8_t *buf = malloc(rec->length < chunk ? (size_t)rec->length + 1 : chunk);
	int ret = -ENOMEM;

	*problem = NULL;
	if (!buf || !crcs)
		goto out;
	ret = pack_read_chunk_table(io, fd, rec, crcs);
	if (ret == -EBADMSG)
		*problem = "chunk table does not match its trailer";
	if (ret < 0)
		goto out;
	ret = hasher ? hasher_reset(hasher) : 0;
	for (uint64_t i = 0; ret == 0 && i < count; i++) {
		uint64_t n = i + 1 < count ? chunk : rec->length - i * chunk;
		ret = pread_full(io, fd, buf, n, record_data_offset(rec) + i * chunk);
		if (ret == 0 && crc32c(0, buf, n) != crcs[i]) {
			*problem = "chunk checksum mismatch";
			ret = -EBADMSG;
		}
		if (ret == 0 && hasher)
			ret = hasher_update(hasher, buf, n);
	}
	if (ret < 0 || !hasher)
		goto out;
	ret = record_hash_check(hasher, rec, problem);
out:
	free(buf);
	free(crcs);
	if (ret == -EIO && !*problem) {
		*problem = "record cut short";
		ret = -EBADMSG;
	}
	return ret;
}

int pack_verify_record(const struct io_ops *io, int fd, const struct record_info *rec, struct hasher *hasher,
		       const char **problem)
{
	*problem = NULL;
	if (rec->version == 3)
		return zrecord_verify(io, fd, rec, hasher, problem);
	return verify_raw_record(io, fd, rec, hasher, problem);
}
