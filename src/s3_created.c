/*
 * s3_created.c - which blobs this mount's uploads created: the object was
 * not in the bucket before the upload (an upload that finds it there,
 * saved by another mount or by this one before, creates nothing). A save
 * superseded before its file's last close may delete the object from the
 * bucket only if its own upload created it (s3_blob_retract).
 *
 * The last S3_CREATED_MAX records, in a ring whose oldest entry is replaced
 * first, found through chained buckets: memory is fixed (3 MiB), and a
 * record lost to age only makes a retract keep a blob it could have
 * deleted (an extra blob, never a lost one). A retract comes within a
 * file's lifetime, long before 65,536 more uploads.
 */
#include "s3.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define S3_CREATED_MAX 65536
#define S3_CREATED_BUCKETS 16384
#define NONE UINT32_MAX

struct s3_created_entry {
	uint64_t store_id;
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint32_t next; /* in its bucket, NONE at the end */
	bool used;
};

int s3_created_init(struct s3_created *c)
{
	memset(c, 0, sizeof(*c));
	c->entries = calloc(S3_CREATED_MAX, sizeof(*c->entries));
	c->buckets = malloc(S3_CREATED_BUCKETS * sizeof(*c->buckets));
	if (!c->entries || !c->buckets) {
		free(c->entries);
		free(c->buckets);
		c->entries = NULL;
		c->buckets = NULL;
		return -ENOMEM;
	}
	for (size_t i = 0; i < S3_CREATED_BUCKETS; i++)
		c->buckets[i] = NONE;
	pthread_mutex_init(&c->lock, NULL);
	return 0;
}

void s3_created_fini(struct s3_created *c)
{
	if (!c->entries)
		return;
	pthread_mutex_destroy(&c->lock);
	free(c->entries);
	free(c->buckets);
	c->entries = NULL;
	c->buckets = NULL;
}

static uint32_t *bucket_of(struct s3_created *c, uint64_t store_id,
			   const uint8_t hash[BLOBFS_HASH_SIZE])
{
	return &c->buckets[s3_slot_mix(store_id, hash) % S3_CREATED_BUCKETS];
}

/* Unlinks the record of (store_id, hash): whether there was one. */
static bool unlink_record(struct s3_created *c, uint64_t store_id,
			  const uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint32_t *p = bucket_of(c, store_id, hash);

	while (*p != NONE) {
		struct s3_created_entry *e = &c->entries[*p];

		if (e->store_id == store_id && !memcmp(e->hash, hash, BLOBFS_HASH_SIZE)) {
			*p = e->next;
			e->used = false;
			return true;
		}
		p = &e->next;
	}
	return false;
}

void s3_created_add(struct s3_created *c, uint64_t store_id, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint32_t i, *b;
	struct s3_created_entry *e;

	pthread_mutex_lock(&c->lock);
	i = c->next++ % S3_CREATED_MAX;
	e = &c->entries[i];
	if (e->used)
		(void)unlink_record(c, e->store_id, e->hash); /* the oldest goes */
	(void)unlink_record(c, store_id, hash);
	e->store_id = store_id;
	memcpy(e->hash, hash, BLOBFS_HASH_SIZE);
	e->used = true;
	b = bucket_of(c, store_id, hash);
	e->next = *b;
	*b = i;
	pthread_mutex_unlock(&c->lock);
}

bool s3_created_take(struct s3_created *c, uint64_t store_id, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	bool found;

	pthread_mutex_lock(&c->lock);
	found = unlink_record(c, store_id, hash);
	pthread_mutex_unlock(&c->lock);
	return found;
}
