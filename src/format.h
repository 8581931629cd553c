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
 * a torn tail is recognisable. */
#define RECORD_MAGIC 0x31434552u  /* "REC1" as little-endian bytes */
#define TRAILER_MAGIC 0x31444e45u /* "END1" as little-endian bytes */

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

struct record_header {
	uint32_t magic;       /* RECORD_MAGIC */
	uint8_t kind;         /* enum record_kind */
	uint8_t chunk_shift;  /* log2 of the chunk size */
	uint16_t reserved0;   /* zero */
	uint64_t seq;         /* store-wide sequence number: newest record wins */
	uint64_t length;      /* data bytes (0 for a tombstone) */
	uint8_t hash[BLOBFS_HASH_SIZE]; /* SHA-256 of the data */
	uint32_t reserved1;   /* zero */
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

/* Bytes a record occupies in its pack, header to trailer inclusive. */
static inline uint64_t record_size(uint64_t length, unsigned chunk_shift)
{
	return RECORD_HEADER_SIZE + length + 4 * record_chunk_count(length, chunk_shift) +
	       RECORD_TRAILER_SIZE;
}

#endif
