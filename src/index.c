/*
 * index.c - an ordered hash table for uniformly distributed keys.
 *
 * The home slot of a hash is floor(prefix * capacity / 2^64), where prefix
 * is the hash's first 8 bytes read big-endian, so homes are monotone in hash
 * order. Insertion keeps the occupied slots sorted (shifting a run right into
 * the next hole) and deletion shifts a run left (backward-shift deletion), so
 * the table is always a sorted array with holes, every entry at or after its
 * home, and no hole between an entry's home and the entry. There is no
 * wrap-around: spare slots at the end absorb the last runs, and their number
 * grows when a run needs more (keys sharing a long prefix all share a home).
 *
 * A slot is 56 bytes: the hash, the pack id (0 marks a free slot), the
 * offset (39 bits), kind (1 bit) and length (56 bits) packed in 96 bits, and
 * the time the blob was saved (so that a stat reads no pack).
 *
 * The table grows by half when it passes 90% full, and a checkpoint is read
 * into a table 89% full (a million blobs: 63 MB). An ordered table keeps its
 * lookups short at that load (a lookup stops at the first greater hash);
 * what a higher load costs is the shift of an insertion, a few KB of
 * memmove (measured with ten million entries: lookups and inserts cost the
 * same at 85% and 90%, within the noise, and the table is 5% smaller).
 */
#include "index.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#define SPARE_SLOTS_MIN 64
#define MAX_LOAD_PERCENT 90

struct slot {
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint32_t pack_id;   /* 0: free */
	uint32_t offset_lo; /* offset bits 0..31 */
	uint64_t packed;    /* length bits 0..55, offset bits 32..38 at 56..62,
			     * bit 63 set for a tombstone */
	/* The time, 48 bits two's complement (bits 0..31, then 32..47), and
	 * the record's disk size as 12 significant bits (index_disk_code). */
	uint32_t saved_lo;
	uint16_t saved_hi;
	uint16_t disk_code;
};

_Static_assert(sizeof(struct slot) == 56, "an index slot is 56 bytes");

struct index {
	struct slot *slots; /* capacity + spare of them */
	size_t capacity, spare;
	size_t count;
	/* Appends (index_append): the slot after the last entry appended, while
	 * every entry came in by an append (append_ok). */
	size_t append_next;
	bool append_ok;
};

/* m << e, with m in 1..4095 at bits 0..11 and e in 0..15 at 12..15; 0 for
 * nothing (a raw record) or a size beyond INDEX_DISK_MAX. Rounded up, so
 * that the sum over a pack's entries never undercounts its live bytes. */
static uint16_t disk_encode(uint64_t disk)
{
	unsigned e = 0;

	if (disk == 0 || disk > INDEX_DISK_MAX)
		return 0;
	while (((disk + (UINT64_C(1) << e) - 1) >> e) > 4095)
		e++;
	return (uint16_t)(e << 12 | ((disk + (UINT64_C(1) << e) - 1) >> e));
}

static uint64_t disk_decode(uint16_t code)
{
	return (uint64_t)(code & 4095) << (code >> 12);
}

uint64_t index_disk_round(uint64_t disk)
{
	return disk_decode(disk_encode(disk));
}

uint64_t index_entry_disk(const struct index_entry *e)
{
	/* blobfs writes every raw record with the default chunk size; the
	 * index does not keep it. */
	return e->disk ? e->disk : record_size(e->length, CHUNK_SHIFT_DEFAULT);
}

static void slot_pack(const struct index_entry *e, struct slot *s)
{
	memcpy(s->hash, e->hash, BLOBFS_HASH_SIZE);
	s->pack_id = e->pack_id;
	s->offset_lo = (uint32_t)e->offset;
	s->packed = e->length | (e->offset >> 32) << 56 |
		    (uint64_t)(e->kind == RECORD_TOMBSTONE) << 63;
	s->saved_lo = (uint32_t)(uint64_t)e->saved;
	s->saved_hi = (uint16_t)((uint64_t)e->saved >> 32);
	s->disk_code = disk_encode(e->disk);
}

static void slot_unpack(const struct slot *s, struct index_entry *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->hash, s->hash, BLOBFS_HASH_SIZE);
	e->pack_id = s->pack_id;
	e->offset = s->offset_lo | ((s->packed >> 56) & 0x7f) << 32;
	e->length = s->packed & INDEX_LENGTH_MAX;
	e->kind = s->packed >> 63 ? RECORD_TOMBSTONE : RECORD_BLOB;
	{
		uint64_t bits = (uint64_t)s->saved_hi << 32 | s->saved_lo;
		e->saved = (int64_t)(bits ^ (UINT64_C(1) << 47)) - (INT64_C(1) << 47);
	}
	e->disk = disk_decode(s->disk_code);
}

static size_t slot_total(const struct index *index)
{
	return index->capacity + index->spare;
}

static bool occupied(const struct slot *s)
{
	return s->pack_id != 0;
}

static size_t home_slot(const struct index *index, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint64_t prefix = 0;

	for (int i = 0; i < 8; i++)
		prefix = prefix << 8 | hash[i];
	return (size_t)(((unsigned __int128)prefix * index->capacity) >> 64);
}

/* A big table is asked to use huge pages (where the system gives them on
 * request): first touching 10M slots page by page took most of a mount's
 * 3.4 s, in page faults. */
static void advise_huge(void *p, size_t size)
{
	const uintptr_t huge = (uintptr_t)2 << 20;
	uintptr_t start = ((uintptr_t)p + huge - 1) & ~(huge - 1);
	uintptr_t end = ((uintptr_t)p + size) & ~(huge - 1);

	if (end > start)
		madvise((void *)start, end - start, MADV_HUGEPAGE); /* a hint: errors do not matter */
}

static int index_alloc(struct index *index, size_t capacity, size_t spare)
{
	index->slots = calloc(capacity + spare, sizeof(*index->slots));
	if (!index->slots)
		return -ENOMEM;
	advise_huge(index->slots, (capacity + spare) * sizeof(*index->slots));
	index->capacity = capacity;
	index->spare = spare;
	index->count = 0;
	index->append_next = 0;
	index->append_ok = true;
	return 0;
}

/* More spare slots at the end: no entry moves, as homes do not change. */
static int index_grow_spare(struct index *index)
{
	size_t spare = index->spare * 2, total = index->capacity + spare;
	struct slot *slots = realloc(index->slots, total * sizeof(*slots));

	if (!slots)
		return -ENOMEM;
	memset(slots + slot_total(index), 0, (total - slot_total(index)) * sizeof(*slots));
	index->slots = slots;
	index->spare = spare;
	return 0;
}

int index_new(struct index **out)
{
	struct index *index = calloc(1, sizeof(*index));
	int ret = -ENOMEM;

	if (!index)
		goto out;
	ret = index_alloc(index, 64, SPARE_SLOTS_MIN);
out:
	if (ret < 0) {
		free(index);
		index = NULL;
	}
	*out = index;
	return ret;
}

void index_free(struct index *index)
{
	if (!index)
		return;
	free(index->slots);
	free(index);
}

size_t index_count(const struct index *index)
{
	return index->count;
}

/* The slot where hash is, or where it would go. */
static size_t index_position(const struct index *index, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	size_t i = home_slot(index, hash), total = slot_total(index);

	while (i < total && occupied(&index->slots[i]) &&
	       memcmp(index->slots[i].hash, hash, BLOBFS_HASH_SIZE) < 0)
		i++;
	return i;
}

int index_lookup(const struct index *index, const uint8_t hash[BLOBFS_HASH_SIZE],
		 struct index_entry *out)
{
	size_t i = index_position(index, hash);

	if (i >= slot_total(index) || !occupied(&index->slots[i]) ||
	    memcmp(index->slots[i].hash, hash, BLOBFS_HASH_SIZE))
		return -ENOENT;
	slot_unpack(&index->slots[i], out);
	return 0;
}

/* Places entry, which must not be present; -ENOSPC when the run would have to
 * spill past the last spare slot (the caller grows the table). */
static int index_place(struct index *index, const struct slot *entry)
{
	size_t total = slot_total(index);
	size_t i = index_position(index, entry->hash), hole = i;

	while (hole < total && occupied(&index->slots[hole]))
		hole++;
	if (hole == total)
		return -ENOSPC;
	memmove(&index->slots[i + 1], &index->slots[i], (hole - i) * sizeof(*index->slots));
	index->slots[i] = *entry;
	index->count++;
	return 0;
}

static int index_grow(struct index *index, size_t capacity)
{
	struct index old = *index;
	int ret = index_alloc(index, capacity, old.spare);

	if (ret < 0) {
		*index = old;
		return ret;
	}
	for (size_t i = 0; i < slot_total(&old) && ret == 0; i++) {
		if (!occupied(&old.slots[i]))
			continue;
		while ((ret = index_place(index, &old.slots[i])) == -ENOSPC)
			if ((ret = index_grow_spare(index)) < 0)
				break;
	}
	if (ret < 0) {
		free(index->slots);
		*index = old;
		return ret;
	}
	free(old.slots);
	/* Placed anew: appends (if they were all) can no longer continue. */
	index->append_ok = index->count == 0;
	return 0;
}

int index_reserve(struct index *index, size_t count)
{
	/* Close to the maximum load: a store that is loaded is mostly read. */
	size_t capacity = count / (MAX_LOAD_PERCENT - 1) * 100 + 64;

	if (count * 100 <= index->capacity * MAX_LOAD_PERCENT || capacity <= index->capacity)
		return 0;
	return index_grow(index, capacity);
}

int index_put(struct index *index, const struct index_entry *entry)
{
	size_t i = index_position(index, entry->hash);
	struct slot packed;
	int ret;

	index->append_ok = false;
	if ((entry->kind != RECORD_BLOB && entry->kind != RECORD_TOMBSTONE) || !entry->pack_id ||
	    entry->offset > INDEX_OFFSET_MAX || entry->length > INDEX_LENGTH_MAX ||
	    entry->saved < RECORD_TIME_MIN || entry->saved > RECORD_TIME_MAX)
		return -EINVAL;
	slot_pack(entry, &packed);
	if (i < slot_total(index) && occupied(&index->slots[i]) &&
	    !memcmp(index->slots[i].hash, entry->hash, BLOBFS_HASH_SIZE)) {
		index->slots[i] = packed;
		return 0;
	}
	if ((index->count + 1) * 100 > index->capacity * MAX_LOAD_PERCENT) {
		ret = index_grow(index, index->capacity + index->capacity / 2);
		if (ret < 0)
			return ret;
	}
	while ((ret = index_place(index, &packed)) == -ENOSPC) {
		ret = index_grow_spare(index);
		if (ret < 0)
			return ret;
	}
	return ret;
}

int index_append(struct index *index, const struct index_entry *entry)
{
	struct slot packed;
	size_t i;
	int ret;

	if (!index->append_ok || (index->count + 1) * 100 > index->capacity * MAX_LOAD_PERCENT ||
	    (index->count &&
	     memcmp(index->slots[index->append_next - 1].hash, entry->hash, BLOBFS_HASH_SIZE) >= 0))
		return index_put(index, entry);
	if ((entry->kind != RECORD_BLOB && entry->kind != RECORD_TOMBSTONE) || !entry->pack_id ||
	    entry->offset > INDEX_OFFSET_MAX || entry->length > INDEX_LENGTH_MAX ||
	    entry->saved < RECORD_TIME_MIN || entry->saved > RECORD_TIME_MAX)
		return -EINVAL;
	/* Homes are monotone in hash order and every slot from the start of
	 * the run to append_next - 1 is taken: the entry goes at its home, or
	 * right after the last one. */
	i = home_slot(index, entry->hash);
	if (i < index->append_next)
		i = index->append_next;
	while (i >= slot_total(index)) {
		ret = index_grow_spare(index);
		if (ret < 0)
			return ret;
	}
	slot_pack(entry, &packed);
	index->slots[i] = packed;
	index->append_next = i + 1;
	index->count++;
	return 0;
}

int index_remove(struct index *index, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	size_t total = slot_total(index);
	size_t i = index_position(index, hash);

	if (i >= total || !occupied(&index->slots[i]) ||
	    memcmp(index->slots[i].hash, hash, BLOBFS_HASH_SIZE))
		return -ENOENT;
	index->append_ok = false;
	while (i + 1 < total && occupied(&index->slots[i + 1]) &&
	       home_slot(index, index->slots[i + 1].hash) <= i) {
		index->slots[i] = index->slots[i + 1];
		i++;
	}
	memset(&index->slots[i], 0, sizeof(index->slots[i]));
	index->count--;
	return 0;
}

int index_remove_if(struct index *index, bool (*match)(const struct index_entry *, void *),
		    void *arg)
{
	uint8_t (*hashes)[BLOBFS_HASH_SIZE] = NULL;
	size_t count = 0, capacity = 0;
	int ret = 0;

	/* Collected first: a removal shifts the entries after it. */
	for (size_t i = 0; i < slot_total(index); i++) {
		struct index_entry e;
		if (!occupied(&index->slots[i]))
			continue;
		slot_unpack(&index->slots[i], &e);
		if (!match(&e, arg))
			continue;
		if (count == capacity) {
			size_t more = capacity ? 2 * capacity : 64;
			void *grown = realloc(hashes, more * BLOBFS_HASH_SIZE);
			ret = -ENOMEM;
			if (!grown)
				goto out;
			hashes = grown;
			capacity = more;
		}
		memcpy(hashes[count++], e.hash, BLOBFS_HASH_SIZE);
	}
	for (size_t i = 0; i < count; i++)
		index_remove(index, hashes[i]);
	ret = 0;
out:
	free(hashes);
	return ret;
}

int index_seek(const struct index *index, const uint8_t *from, bool after,
	       struct index_entry *out)
{
	size_t total = slot_total(index);
	size_t i = from ? index_position(index, from) : 0;

	while (i < total && !occupied(&index->slots[i]))
		i++;
	if (i < total && from && after && !memcmp(index->slots[i].hash, from, BLOBFS_HASH_SIZE))
		for (i++; i < total && !occupied(&index->slots[i]); i++)
			;
	if (i >= total)
		return 0;
	slot_unpack(&index->slots[i], out);
	return 1;
}

size_t index_seek_many(const struct index *index, const uint8_t *from, bool after,
		       struct index_entry *out, size_t max)
{
	size_t total = slot_total(index), n = 0;
	size_t i = from ? index_position(index, from) : 0;

	for (; i < total && n < max; i++) {
		if (!occupied(&index->slots[i]))
			continue;
		if (from && after && n == 0 && !memcmp(index->slots[i].hash, from, BLOBFS_HASH_SIZE))
			continue;
		slot_unpack(&index->slots[i], &out[n++]);
	}
	return n;
}

int index_foreach(const struct index *index, int (*fn)(const struct index_entry *, void *),
		  void *arg)
{
	for (size_t i = 0; i < slot_total(index); i++) {
		if (occupied(&index->slots[i])) {
			struct index_entry e;
			slot_unpack(&index->slots[i], &e);
			int ret = fn(&e, arg);
			if (ret)
				return ret;
		}
	}
	return 0;
}
