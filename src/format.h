/*
 * format.h - the on-disk pack format, byte for byte (see docs/FORMAT.md).
 *
 * Owns the layout of pack files: the pack header and the record framing
 * (header, data, chunk checksum table, trailer). All integers are
 * little-endian; the structs below have fixed-width fields and no implicit
 * padding, and the static asserts pin their sizes. Encoding and decoding go
 * through pack.c, which treats every byte read from disk as untrusted.
 */
#ifndef BLOBFS_FORMAT_H
#define BLOBFS_FORMAT_H

#include <stdint.h>
#include <stddef.h>

#define BLOBFS_HASH_SIZE 32

/* "BLOBPAK" + format version digit: a new layout gets a new magic. */
#define PACK_MAGIC "BLOBPAK1"
#define PACK_MAGIC_SIZE 8
#define PACK_VERSION 1

/* Records and trailers carry their own magics so a scan can resync and so
 * a torn tail is recognisable. A record header's magic is also its version:
 * REC2 (format 2, written today) carries the time the record was written in
 * what REC1 (format 1, still read) keeps reserved and zero. */
#define RECORD_MAGIC_V1 0x31434552u /* "REC1" as little-endian bytes */
#define RECORD_MAGIC 0x32434552u    /* "REC2" as little-endian bytes */
/* REC3 (format 3): a blob whose chunks are stored compressed (zstd) or raw,
 * each as it came out smaller; a table of (stored size, CRC32C) per chunk
 * sits between the header and the stored chunks. */
#define RECORD_MAGIC_Z 0x33434552u  /* "REC3" as little-endian bytes */
#define TRAILER_MAGIC 0x31444e45u   /* "END1" as little-endian bytes */

enum record_kind {
	RECORD_BLOB = 1,      /* a blob: data follows */
	RECORD_TOMBSTONE = 2, /* a delete of the blob named by hash; no data */
};

/* Data is checksummed in chunks of 1 << chunk_shift bytes (CRC32C each). */
#define CHUNK_SHIFT_DEFAULT 16
#define CHUNK_SHIFT_MIN 12
#define CHUNK_SHIFT_MAX 24

struct pack_header {
	uint8_t magic[PACK_MAGIC_SIZE]; /* PACK_MAGIC */
	uint32_t version;               /* PACK_VERSION */
	uint32_t pack_id;               /* matches the file name */
	uint8_t reserved[12];           /* zero */
	uint32_t crc;                   /* CRC32C of bytes 0..27 */
};

/* REC2 layout; REC1 is the same with time_hi and time_lo reserved (zero). */
struct record_header {
	uint32_t magic;       /* RECORD_MAGIC (REC2) or RECORD_MAGIC_V1 */
	uint8_t kind;         /* enum record_kind */
	uint8_t chunk_shift;  /* log2 of the chunk size */
	int16_t time_hi;      /* bits 32..47 of the record's time (signed) */
	uint64_t seq;         /* store-wide sequence number: newest record wins */
	uint64_t length;      /* data bytes (0 for a tombstone) */
	uint8_t hash[BLOBFS_HASH_SIZE]; /* SHA-256 of the data */
	uint32_t time_lo;     /* bits 0..31 of the record's time */
	uint32_t crc;         /* CRC32C of bytes 0..59 */
};

struct record_trailer {
	uint32_t magic;     /* TRAILER_MAGIC */
	uint32_t table_crc; /* CRC32C of the chunk checksum table */
	uint64_t seq;       /* equals the header's seq: ties the two ends */
};

_Static_assert(sizeof(struct pack_header) == 32, "pack header is 32 bytes");
_Static_assert(sizeof(struct record_header) == 64, "record header is 64 bytes");
_Static_assert(sizeof(struct record_trailer) == 16, "record trailer is 16 bytes");
_Static_assert(offsetof(struct pack_header, crc) == 28, "pack header crc at 28");
_Static_assert(offsetof(struct record_header, hash) == 24, "hash at 24");
_Static_assert(offsetof(struct record_header, crc) == 60, "record crc at 60");

/* A record's time: seconds since the epoch, signed, 48 bits (about 4.4
 * million years either way). For a blob it is when the blob was first saved;
 * for a tombstone, when the delete was made. Records of format 1 (REC1) have
 * none and read as RECORD_TIME_UNKNOWN (docs/FORMAT.md). */
#define RECORD_TIME_MAX ((INT64_C(1) << 47) - 1)
#define RECORD_TIME_MIN (-(INT64_C(1) << 47))
#define RECORD_TIME_UNKNOWN INT64_C(0)

/* The durable marker file of a store: "BLOBSYN1", u64 seq, 12 reserved
 * bytes, u32 CRC32C of bytes 0..27. */
#define MARKER_MAGIC "BLOBSYN1"

#define PACK_HEADER_SIZE ((uint64_t)sizeof(struct pack_header))
#define RECORD_HEADER_SIZE ((uint64_t)sizeof(struct record_header))
#define RECORD_TRAILER_SIZE ((uint64_t)sizeof(struct record_trailer))

/* Largest data length a reader accepts: bounds every size computed from a
 * length field read off disk (2^56 - 1 bytes, far beyond any real disk). */
#define RECORD_LENGTH_MAX ((UINT64_C(1) << 56) - 1)

static inline uint64_t record_chunk_count(uint64_t length, unsigned chunk_shift)
{
	return (length + (UINT64_C(1) << chunk_shift) - 1) >> chunk_shift;
}

/* Bytes a raw record (REC1, REC2) occupies in its pack, header to trailer
 * inclusive. */
static inline uint64_t record_size(uint64_t length, unsigned chunk_shift)
{
	return RECORD_HEADER_SIZE + length + 4 * record_chunk_count(length, chunk_shift) +
	       RECORD_TRAILER_SIZE;
}

/* A REC3 chunk table entry: u32 stored size (1 .. the chunk's length; equal
 * to it for a chunk kept raw, smaller for a zstd frame), u32 CRC32C of the
 * stored bytes. */
#define ZCHUNK_ENTRY_SIZE 8

/* Bytes a REC3 record occupies: stored is the sum of its chunks' stored
 * sizes. */
static inline uint64_t zrecord_size(uint64_t length, unsigned chunk_shift, uint64_t stored)
{
	return RECORD_HEADER_SIZE + ZCHUNK_ENTRY_SIZE * record_chunk_count(length, chunk_shift) +
	       stored + RECORD_TRAILER_SIZE;
}

#endif
