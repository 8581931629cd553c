/*
 * checkpoint.h - the persisted index of a store (docs/FORMAT.md, "Index
 * checkpoint"): every live blob's index entry and, for each pack, how many of
 * its bytes the entries cover. A mount loads it and scans only what was
 * appended after it. The packs stay the source of truth: a checkpoint that
 * does not check out, or that names a pack which no longer matches, is
 * ignored and the packs are scanned whole.
 */
#ifndef BLOBFS_CHECKPOINT_H
#define BLOBFS_CHECKPOINT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "index.h"

struct io_ops;

#define CHECKPOINT_MAGIC "BLOBIDX1"
#define CHECKPOINT_HEADER_SIZE 64
#define CHECKPOINT_PACK_SIZE 48
/* Format 3 entries carry the disk size of a compressed record; format 2
 * ones (read, never written) have none (their records are raw); format 1
 * ones (read) have no saved time either, and their blobs read as
 * RECORD_TIME_UNKNOWN. */
#define CHECKPOINT_VERSION 3
#define CHECKPOINT_ENTRY_SIZE 64
#define CHECKPOINT_ENTRY_SIZE_V1 56
#define CHECKPOINT_TRAILER_SIZE 8

struct checkpoint_pack {
	uint32_t id;
	uint64_t size; /* bytes of the pack the entries account for */
	uint64_t tombstone_count;
	uint64_t max_seq;
	/* The last record the entries account for (offset 0: none): a mount
	 * checks it is still there, with this seq, before trusting the pack. */
	uint64_t last_offset, last_seq;
	uint8_t damaged;
	uint8_t appendable; /* may take appends (not a large blob's own pack) */
};

struct checkpoint_header {
	uint32_t version; /* as read: 1, 2 or 3; checkpoint_write writes 3 */
	uint64_t next_seq;
	uint64_t entry_count;
	uint32_t pack_count;
	uint32_t next_pack_id;
};

/* Header of 64 bytes: magic, version, counts, CRC32C of bytes 0..59. */
void checkpoint_header_encode(const struct checkpoint_header *h,
			      uint8_t out[CHECKPOINT_HEADER_SIZE]);
int checkpoint_header_decode(const uint8_t buf[CHECKPOINT_HEADER_SIZE],
			     struct checkpoint_header *h);
void checkpoint_pack_encode(const struct checkpoint_pack *p, uint8_t out[CHECKPOINT_PACK_SIZE]);
int checkpoint_pack_decode(const uint8_t buf[CHECKPOINT_PACK_SIZE], struct checkpoint_pack *p);
void checkpoint_entry_encode(const struct index_entry *e, uint8_t out[CHECKPOINT_ENTRY_SIZE]);
/* buf holds checkpoint_entry_size(version) bytes. */
int checkpoint_entry_decode(const uint8_t *buf, uint32_t version, struct index_entry *e);
static inline uint64_t checkpoint_entry_size(uint32_t version)
{
	return version == 1 ? CHECKPOINT_ENTRY_SIZE_V1 : CHECKPOINT_ENTRY_SIZE;
}

/*
 * Writes a checkpoint into a new file `name` in dirfd (then fsynced; the
 * caller renames it into place). entries are read from the index in hash
 * order.
 */
int checkpoint_write(const struct io_ops *io, int dirfd, const char *name, const struct checkpoint_header *h,
		     const struct checkpoint_pack *packs, const struct index *index);

/*
 * The same with the entries from next(arg, out, max), which fills out with
 * up to max entries, each after the last in hash order, and returns how
 * many: 0 at the end, a negative errno to stop. For a checkpoint written
 * while the index changes, without a copy of it: h->entry_count is set to
 * the number written. -EINVAL if entries come out of order.
 */
typedef long (*checkpoint_next_fn)(void *arg, struct index_entry *out, size_t max);
int checkpoint_write_batched(const struct io_ops *io, int dirfd, const char *name,
			     struct checkpoint_header *h, const struct checkpoint_pack *packs,
			     checkpoint_next_fn next, void *arg);

/*
 * Reads the checkpoint `name` from dirfd: the header into *h, the packs into
 * a malloc()ed array *packs, and every entry into index (which should be
 * empty). -ENOENT if there is none, -EBADMSG if anything does not check out
 * (the index may then hold part of it: the caller starts over).
 */
int checkpoint_read(const struct io_ops *io, int dirfd, const char *name, struct checkpoint_header *h,
		    struct checkpoint_pack **packs, struct index *index);

/*
 * Whether a mount may trust a checkpoint read from dirfd: every pack it
 * covers must still be there, at least as long, with the record the
 * checkpoint names as its last in place with the same seq.
 */
/* Whether one pack the checkpoint covers is there, at least as long, with its
 * last covered record in place. */
bool checkpoint_pack_matches(const struct io_ops *io, int dirfd, const struct checkpoint_pack *cp);
bool checkpoint_usable(const struct io_ops *io, int dirfd, const struct checkpoint_header *h,
		       const struct checkpoint_pack *packs);

#endif
