/*
 * s3_known.c - what the object store said lately about blobs: a fixed,
 * direct-mapped table (a slot per hash's leading bits; a newer answer
 * replaces whatever was in its slot), so its memory is bounded whatever
 * clients look up. An answer older than the ttl is not used: that is the
 * bound on how long a mount keeps showing a blob another mount deleted, or
 * keeps not showing one another mount saved.
 */
#include "s3.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

uint64_t s3_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	/* + 1: 0 marks a free slot. */
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000 + 1;
}

int s3_known_init(struct s3_known *k, size_t slots, unsigned ttl_ms)
{
	size_t n = 1;

	while (n < slots)
		n *= 2;
	memset(k, 0, sizeof(*k));
	k->slots = calloc(n, sizeof(*k->slots));
	if (!k->slots)
		return -ENOMEM;
	k->slot_count = n;
	k->ttl_ms = ttl_ms;
	pthread_mutex_init(&k->lock, NULL);
	return 0;
}

void s3_known_fini(struct s3_known *k)
{
	if (!k->slots)
		return;
	pthread_mutex_destroy(&k->lock);
	free(k->slots);
	k->slots = NULL;
}

static struct s3_known_entry *slot_of(struct s3_known *k, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint64_t bits;

	memcpy(&bits, hash, sizeof(bits));
	return &k->slots[bits & (k->slot_count - 1)];
}

int s3_known_get(struct s3_known *k, uint64_t store_id, const uint8_t hash[BLOBFS_HASH_SIZE],
		 struct s3_known_entry *out)
{
	uint64_t now = s3_now_ms();
	struct s3_known_entry *e;
	int found = 0;

	pthread_mutex_lock(&k->lock);
	e = slot_of(k, hash);
	if (e->when_ms && e->store_id == store_id && !memcmp(e->hash, hash, BLOBFS_HASH_SIZE) &&
	    now - e->when_ms < k->ttl_ms) {
		*out = *e;
		found = 1;
	}
	pthread_mutex_unlock(&k->lock);
	return found;
}

void s3_known_put(struct s3_known *k, uint64_t store_id, const uint8_t hash[BLOBFS_HASH_SIZE],
		  bool exists, uint64_t length, int64_t mtime, uint64_t asked_ms)
{
	struct s3_known_entry *e;

	pthread_mutex_lock(&k->lock);
	e = slot_of(k, hash);
	/* A listing page asked for before a delete must not bring the blob
	 * back: the later question's answer stays. */
	if (!(e->when_ms > asked_ms && e->store_id == store_id &&
	      !memcmp(e->hash, hash, BLOBFS_HASH_SIZE))) {
		memcpy(e->hash, hash, BLOBFS_HASH_SIZE);
		e->store_id = store_id;
		e->exists = exists;
		e->length = length;
		e->mtime = mtime;
		e->when_ms = asked_ms;
	}
	pthread_mutex_unlock(&k->lock);
}
