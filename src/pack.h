/*
 * pack.h - pack files: encoding, decoding and scanning of the records of
 * docs/FORMAT.md. This module knows bytes and file descriptors; it knows
 * nothing of stores, indexes or FUSE. Every decoder treats its input as
 * untrusted and returns -EBADMSG for anything that does not check out.
 */
#ifndef BLOBFS_PACK_H
#define BLOBFS_PACK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

struct io_ops;

struct hasher;

/* A record as the rest of the program sees it. */
struct record_info {
	uint64_t offset; /* of the record header within its pack */
	enum record_kind kind;
	unsigned chunk_shift;
	uint64_t seq;
	uint64_t length; /* data bytes */
	uint8_t hash[BLOBFS_HASH_SIZE];
	/* Seconds since the epoch, RECORD_TIME_MIN..MAX: a blob's first save,
	 * a tombstone's delete; RECORD_TIME_UNKNOWN for a format 1 record. */
	int64_t time;
	/* The header's format, 1 (REC1), 2 (REC2) or 3 (REC3, compressed
	 * chunks), as decoded. The encoder writes REC1 only when asked for 1 (a
	 * REC1 has no time: it must be RECORD_TIME_UNKNOWN), REC3 when asked
	 * for 3, REC2 otherwise (0 included). */
	unsigned version;
	/* Bytes of the stored chunks: the length for REC1 and REC2; for a REC3,
	 * the sum of its table's stored sizes, known once the table was read
	 * (a scan, pack_read_record, pack_read_ztable), 0 before. */
	uint64_t stored;
};

/* One chunk of a REC3 record, as its table says. */
struct zchunk {
	uint32_t stored; /* bytes on disk; the chunk's length when kept raw */
	uint32_t crc;    /* CRC32C of those bytes */
};

/* Where a record's first data (REC1, REC2) or stored chunk (REC3) is. */
static inline uint64_t record_data_offset(const struct record_info *r)
{
	if (r->version == 3)
		return r->offset + RECORD_HEADER_SIZE +
		       ZCHUNK_ENTRY_SIZE * record_chunk_count(r->length, r->chunk_shift);
	return r->offset + RECORD_HEADER_SIZE;
}

static inline uint64_t record_end(const struct record_info *r)
{
	if (r->version == 3)
		return r->offset + zrecord_size(r->length, r->chunk_shift, r->stored);
	return r->offset + record_size(r->length, r->chunk_shift);
}

/* The length of chunk i of a record (the last one may be shorter). */
static inline uint64_t record_chunk_length(const struct record_info *r, uint64_t i)
{
	uint64_t chunk = UINT64_C(1) << r->chunk_shift;
	return r->length - i * chunk < chunk ? r->length - i * chunk : chunk;
}

/* "pack-%08x.pack"; returns false for any other name. */
#define PACK_NAME_SIZE 32
void pack_name(uint32_t pack_id, char out[PACK_NAME_SIZE]);
bool pack_parse_name(const char *name, uint32_t *pack_id);

void pack_header_encode(uint32_t pack_id, uint8_t out[PACK_HEADER_SIZE]);
int pack_header_decode(const uint8_t buf[PACK_HEADER_SIZE], uint32_t *pack_id);

/* The time is clamped to RECORD_TIME_MIN..MAX (a REC1 gets none at all). */
void record_header_encode(const struct record_info *rec, uint8_t out[RECORD_HEADER_SIZE]);
/* Checks magic (REC1, REC2 or REC3), checksum, kind, chunk shift, length
 * bounds and that reserved bytes are zero. Any time is accepted: it is what
 * the writer's clock said, not something a reader can check. A REC3's
 * stored size is not in its header: rec->stored is 0 until its table is
 * read (pack_read_record). */
int record_header_decode(const uint8_t buf[RECORD_HEADER_SIZE], uint64_t offset,
			 struct record_info *rec);

/* Reads and decodes the record header at offset and, for a REC3, its chunk
 * table and trailer (so that rec->stored and record_end are right):
 * -EBADMSG if they do not check out. */
int pack_read_record(const struct io_ops *io, int fd, uint64_t offset, struct record_info *rec);

/* Creates a new pack file named after pack_id in dirfd (O_EXCL), writes its
 * header and returns its descriptor, open for reading and writing. */
int pack_create(const struct io_ops *io, int dirfd, uint32_t pack_id, int *fd_out);

/* Writes a record's frame around data that is already at
 * record_data_offset(rec): the chunk table and trailer after the data, then
 * the header. crcs holds record_chunk_count() checksums. */
int pack_write_frame(const struct io_ops *io, int fd, const struct record_info *rec, const uint32_t *crcs);

/* Writes a whole record (frame and data from memory) at rec->offset, in
 * one write. crcs, if not NULL, holds the chunk checksums already known. For
 * records that fit in memory (small blobs, tombstones). */
int pack_write_record(const struct io_ops *io, int fd, const struct record_info *rec, const void *data,
		      const uint32_t *crcs);

/* Fills crcs[] with the CRC32C of each chunk of len bytes of data. */
void chunk_crcs(const void *data, uint64_t len, unsigned chunk_shift, uint32_t *crcs);

/* Reads exactly len bytes at off; -EIO on a short read (the file ended). */
int pread_full(const struct io_ops *io, int fd, void *buf, size_t len, uint64_t off);
int pwrite_full(const struct io_ops *io, int fd, const void *buf, size_t len, uint64_t off);
/* Copies len bytes from in at in_off to out at out_off, through a buffer. */
int copy_file_bytes(const struct io_ops *io, int in, uint64_t in_off, int out, uint64_t out_off, uint64_t len);

/* Walks the records of one pack in file order. */
#define PACK_SCAN_WINDOW (64u << 10)

struct pack_scan {
	const struct io_ops *io;
	int fd;
	uint32_t pack_id;
	uint64_t file_size;
	uint64_t pos;       /* where the next record should start */
	uint64_t good_end;  /* end of the last good record (or of the header) */
	uint64_t bad_start; /* set by a -EBADMSG from pack_scan_next */
	uint64_t bad_end;   /* where the scan resumes after the damage */
	/* The file's bytes [window_off, window_off + window_len): a scan reads
	 * a record's header, chunk table and trailer from it, one read per
	 * window rather than three per record (a million small records took
	 * 8.4 s to scan, mostly in pread). The file must not change under a
	 * scan (writers cut a pack only to end its scan). */
	uint64_t window_off;
	size_t window_len;
	uint8_t window[PACK_SCAN_WINDOW];
};

/* Reads and checks the pack header. -EBADMSG if it is not a pack of this id. */
int pack_scan_open(const struct io_ops *io, struct pack_scan *scan, int fd, uint32_t pack_id);
/* Sets up a scan from the first record offset without trusting the pack
 * header (records describe themselves): for salvage. */
int pack_scan_open_headless(const struct io_ops *io, struct pack_scan *scan, int fd, uint32_t pack_id);

/*
 * Returns 1 with the next well-framed record (header checksum, trailer and
 * chunk table checksum all agree), 0 at the clean end of the file, or
 * -EBADMSG for damage: bytes [bad_start, bad_end) do not frame a record.
 * After -EBADMSG the scan has resynchronised at bad_end, which is the start
 * of the next well-framed record or the end of the file (a torn tail); call
 * again to continue. Other negative errnos are I/O errors.
 */
int pack_scan_next(struct pack_scan *scan, struct record_info *rec);

/*
 * Reads a record's data and checks every chunk against its table and, when
 * hasher is not NULL, the whole against the record's hash. Returns 0 when it all checks out,
 * -EBADMSG when something does not (what is written to *problem, a static
 * string), or another negative errno for an I/O error.
 */
int pack_verify_record(const struct io_ops *io, int fd, const struct record_info *rec, struct hasher *hasher,
		       const char **problem);

/* Reads the chunk table of a raw blob record (record_chunk_count entries)
 * into crcs and checks it against the trailer: -EBADMSG if it does not
 * match. */
int pack_read_chunk_table(const struct io_ops *io, int fd, const struct record_info *rec, uint32_t *crcs);

/* The same for a REC3: fills chunks (record_chunk_count entries; NULL for
 * none) and rec->stored, checking every entry's bounds and the trailer. */
int pack_read_ztable(const struct io_ops *io, int fd, struct record_info *rec, struct zchunk *chunks);

/* Writes a whole REC3 record from memory at rec->offset in one write: its
 * table (chunks) and the stored chunks back to back (stored, rec->stored
 * bytes). */
int pack_write_zrecord(const struct io_ops *io, int fd, const struct record_info *rec,
		       const struct zchunk *chunks, const void *stored);

/* Writes a REC3's header, table and trailer around stored chunks that are
 * already at record_data_offset(rec) (rec->stored bytes). */
int pack_write_zframe(const struct io_ops *io, int fd, const struct record_info *rec,
		      const struct zchunk *chunks);

/* Reads chunk i of a record whose chunk is stored raw or compressed as
 * chunk says, checks its CRC32C and writes its content (record_chunk_length
 * bytes) to out; scratch holds a chunk. -EBADMSG (with *problem) when it
 * does not check out or decode. */
int zchunk_read(const struct io_ops *io, int fd, uint64_t at, const struct zchunk *chunk, uint64_t length,
		void *out, void *scratch, const char **problem);

/* Whether v (a little-endian u32 read at a record's start) is a record
 * header magic of any format version. */
static inline bool record_magic_known(uint32_t v)
{
	return v == RECORD_MAGIC || v == RECORD_MAGIC_V1 || v == RECORD_MAGIC_Z;
}

/* Tries to make sense of a record header that failed its checksum: fills
 * hash and returns true when the bytes at least start with a record magic
 * (for naming the probable victim of damage in a report). */
bool record_header_guess_hash(const struct io_ops *io, int fd, uint64_t offset, uint8_t hash[BLOBFS_HASH_SIZE]);

/* The durable marker of a store (docs/FORMAT.md): every record whose seq is
 * at most the marker's was on stable storage when the marker was written. */
#define MARKER_SIZE 32
void marker_encode(uint64_t durable_seq, uint8_t out[MARKER_SIZE]);
int marker_decode(const uint8_t buf[MARKER_SIZE], uint64_t *durable_seq);

#endif
