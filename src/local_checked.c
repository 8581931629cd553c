/*
 * local_checked.c - the records read whole whose content hashed to their
 * name since the database was opened, so that later readers of them check
 * each chunk's CRC32C and skip the whole-blob SHA-256 (unless the database
 * was opened with rehash).
 *
 * Why remembering is sound: a record is never rewritten in place while the
 * database is open (appends go past it; compaction writes a new pack and
 * pack ids are not reused; a store destroyed and made again gets a new
 * serial), so the bytes a later reader reads are the bytes that were
 * hashed, unless something outside blobfs changes the pack file. Damage
 * since (bit rot, a torn page) is what the chunk CRCs catch; only content
 * changed in place with its CRCs made to agree would pass, as it would pass
 * the kernel's page cache of a blob read once through the mount.
 *
 * The table is direct-mapped by the hash's first bytes: fixed memory
 * (CHECKED_SLOTS entries for the whole database), O(1) under one leaf
 * lock, and a collision only costs the evicted record one more hash.
 */
#include "local.h"

#include <stdlib.h>
#include <string.h>

#include "bytes.h"

struct checked_record {
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint64_t store_serial; /* 0: an empty slot */
	uint64_t offset;
	uint32_t pack_id;
};

static struct checked_record *checked_slot(struct local_db *db, const uint8_t *hash)
{
	return &db->checked[get_le32(hash) % CHECKED_SLOTS];
}

static bool checked_matches(const struct checked_record *c, const struct local_store *store,
			    const uint8_t *hash, uint32_t pack_id, uint64_t offset)
{
	return c->store_serial == store->serial && c->pack_id == pack_id && c->offset == offset &&
	       !memcmp(c->hash, hash, BLOBFS_HASH_SIZE);
}

bool local_checked_find(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			uint32_t pack_id, uint64_t offset, uint64_t length)
{
	struct local_db *db = store->db;
	bool found = false;

	if (db->base.opts.rehash || length < CHECKED_LENGTH_MIN)
		return false;
	pthread_mutex_lock(&db->checked_lock);
	if (db->checked)
		found = checked_matches(checked_slot(db, hash), store, hash, pack_id, offset);
	pthread_mutex_unlock(&db->checked_lock);
	return found;
}

void local_checked_add(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
		       uint32_t pack_id, uint64_t offset, uint64_t length)
{
	struct local_db *db = store->db;
	struct checked_record *c;

	if (db->base.opts.rehash || length < CHECKED_LENGTH_MIN)
		return;
	pthread_mutex_lock(&db->checked_lock);
	/* Allocated at the first large record read: a database that serves
	 * none never pays for the table. Without memory, nothing is
	 * remembered and every reader hashes, as with rehash. */
	if (!db->checked)
		db->checked = calloc(CHECKED_SLOTS, sizeof(*db->checked));
	if (db->checked) {
		c = checked_slot(db, hash);
		memcpy(c->hash, hash, BLOBFS_HASH_SIZE);
		c->store_serial = store->serial;
		c->pack_id = pack_id;
		c->offset = offset;
	}
	pthread_mutex_unlock(&db->checked_lock);
}

void local_checked_forget(struct local_store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			  uint32_t pack_id, uint64_t offset)
{
	struct local_db *db = store->db;
	struct checked_record *c;

	pthread_mutex_lock(&db->checked_lock);
	if (db->checked) {
		c = checked_slot(db, hash);
		if (checked_matches(c, store, hash, pack_id, offset))
			memset(c, 0, sizeof(*c));
	}
	pthread_mutex_unlock(&db->checked_lock);
}

void local_checked_free(struct local_db *db)
{
	free(db->checked);
	db->checked = NULL;
}
