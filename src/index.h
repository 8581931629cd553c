/*
 * index.h - the in-memory blob index of one store: hash -> where the record
 * is. Entries are kept in hash order (a linear-probing table whose home slot
 * is the hash's leading bits, so probing order is hash order), which gives
 * O(1) lookups and a stable, resumable listing for readdir.
 */
#ifndef BLOBFS_INDEX_H
#define BLOBFS_INDEX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

/* An entry as callers see it. The index keeps hash, pack_id, offset,
 * length, kind and saved; seq and chunk_shift are not kept (they come back
 * 0: read them from the record header when needed). */
struct index_entry {
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint64_t offset; /* record offset in its pack, at most INDEX_OFFSET_MAX */
	uint64_t length; /* blob bytes, at most INDEX_LENGTH_MAX */
	int64_t saved;   /* the record's time (a blob's first save), kept so that
			  * a stat reads no pack */
	uint64_t seq;
	uint32_t pack_id; /* not 0 */
	uint8_t kind; /* RECORD_BLOB, or RECORD_TOMBSTONE while rebuilding */
	uint8_t chunk_shift;
	uint16_t reserved;
	/* Bytes the record takes in its pack when that is not what a raw
	 * record of this length takes (a compressed record), rounded up to 12
	 * significant bits (index_disk_round); 0 for a raw record. For the
	 * accounting of live bytes per pack only. */
	uint64_t disk;
};

/* The largest disk figure an entry keeps; a larger record keeps 0. */
#define INDEX_DISK_MAX (UINT64_C(4095) << 15)

/* disk rounded up to what an index slot keeps (12 significant bits), or 0
 * when it is beyond INDEX_DISK_MAX. */
uint64_t index_disk_round(uint64_t disk);

/* Bytes an entry's record takes in its pack, as far as the index knows. */
uint64_t index_entry_disk(const struct index_entry *e);

#define INDEX_OFFSET_MAX ((UINT64_C(1) << 39) - 1)
#define INDEX_LENGTH_MAX ((UINT64_C(1) << 56) - 1)

struct index;

int index_new(struct index **out);
void index_free(struct index *index);
size_t index_count(const struct index *index);

/* Copies the entry for hash into *out; -ENOENT if there is none. */
int index_lookup(const struct index *index, const uint8_t hash[BLOBFS_HASH_SIZE],
		 struct index_entry *out);

/* Makes room for count entries without further growth. */
int index_reserve(struct index *index, size_t count);

/* Inserts the entry, or replaces the one with the same hash. -EINVAL for a
 * kind other than blob or tombstone, pack_id 0, a field too large or a time
 * outside RECORD_TIME_MIN..MAX. disk is kept rounded (index_disk_round). */
int index_put(struct index *index, const struct index_entry *entry);

/* -ENOENT if there is no entry for hash. */
/* index_put for entries given in strictly increasing hash order to an index
 * that no put or remove has touched (a checkpoint's): each goes straight to
 * its place. Anything else is an index_put. */
int index_append(struct index *index, const struct index_entry *entry);
int index_remove(struct index *index, const uint8_t hash[BLOBFS_HASH_SIZE]);
/* Removes every entry match says yes to; -ENOMEM (and nothing removed). */
int index_remove_if(struct index *index, bool (*match)(const struct index_entry *, void *),
		    void *arg);

/* The first entry in hash order whose hash is >= from (or > from when
 * after is set); from NULL means the very first. Returns 1 and fills *out,
 * or 0 when there is none. */
int index_seek(const struct index *index, const uint8_t *from, bool after,
	       struct index_entry *out);

/* Like index_seek, but copies up to max consecutive entries into out and
 * returns how many. */
size_t index_seek_many(const struct index *index, const uint8_t *from, bool after,
		       struct index_entry *out, size_t max);

/* Calls fn for every entry in hash order; stops early and returns fn's value
 * when fn returns non-zero. fn must not modify the index. */
int index_foreach(const struct index *index, int (*fn)(const struct index_entry *, void *),
		  void *arg);

#endif
