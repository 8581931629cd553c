/*
 * tentative.c - the record of tentative saves (tentative.h): a small hash
 * table of (store, hash) entries, each marked claimed once another save of
 * the same content happens, and a ring of the latest claims so that a claim
 * made while a tentative save was still running (before its entry existed)
 * is not missed. It holds one entry per open file whose content was saved
 * while it was still open, so it stays small.
 */
#include "tentative.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define BUCKETS 256
#define RING 64

struct tentative {
	struct tentative *next;
	struct store *store;
	uint8_t hash[BLOBFS_HASH_SIZE];
	bool claimed;
};

struct claim {
	struct store *store;
	uint8_t hash[BLOBFS_HASH_SIZE];
};

struct tentative_table {
	pthread_mutex_t lock;
	struct tentative *buckets[BUCKETS];
	struct claim ring[RING]; /* claim number n is at ring[n % RING] */
	uint64_t claims;         /* claims made so far */
};

int tentative_new(struct tentative_table **out)
{
	*out = calloc(1, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	pthread_mutex_init(&(*out)->lock, NULL);
	return 0;
}

void tentative_free(struct tentative_table *table)
{
	if (!table)
		return;
	for (size_t i = 0; i < BUCKETS; i++) {
		for (struct tentative *t = table->buckets[i], *next; t; t = next) {
			next = t->next;
			free(t);
		}
	}
	pthread_mutex_destroy(&table->lock);
	free(table);
}

static struct tentative **slot(struct tentative_table *table, struct store *store,
			       const uint8_t hash[BLOBFS_HASH_SIZE])
{
	/* The hash is uniform already: its first byte picks the bucket. */
	struct tentative **p = &table->buckets[hash[0] % BUCKETS];

	while (*p && ((*p)->store != store || memcmp((*p)->hash, hash, BLOBFS_HASH_SIZE)))
		p = &(*p)->next;
	return p;
}

uint64_t tentative_begin(struct tentative_table *table)
{
	uint64_t n;

	pthread_mutex_lock(&table->lock);
	n = table->claims;
	pthread_mutex_unlock(&table->lock);
	return n;
}

/* Whether (store, hash) was claimed since claim number `since`; when the
 * ring no longer reaches back that far, it may have been. Lock held. */
static bool claimed_since(struct tentative_table *table, uint64_t since, struct store *store,
			  const uint8_t hash[BLOBFS_HASH_SIZE])
{
	if (table->claims - since > RING)
		return true;
	for (uint64_t n = since; n < table->claims; n++) {
		const struct claim *c = &table->ring[n % RING];
		if (c->store == store && !memcmp(c->hash, hash, BLOBFS_HASH_SIZE))
			return true;
	}
	return false;
}

bool tentative_add(struct tentative_table *table, uint64_t since, struct store *store,
		   const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct tentative **p, *t = NULL;

	pthread_mutex_lock(&table->lock);
	p = slot(table, store, hash);
	if (*p) /* created twice since it was recorded: two writers, keep it */
		(*p)->claimed = true;
	else if (!claimed_since(table, since, store, hash) && (t = calloc(1, sizeof(*t)))) {
		t->store = store;
		memcpy(t->hash, hash, BLOBFS_HASH_SIZE);
		*p = t;
	}
	pthread_mutex_unlock(&table->lock);
	return t != NULL;
}

void tentative_claim(struct tentative_table *table, struct store *store,
		     const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct tentative *t;
	struct claim *c;

	pthread_mutex_lock(&table->lock);
	t = *slot(table, store, hash);
	if (t)
		t->claimed = true;
	c = &table->ring[table->claims++ % RING];
	c->store = store;
	memcpy(c->hash, hash, BLOBFS_HASH_SIZE);
	pthread_mutex_unlock(&table->lock);
}

bool tentative_remove(struct tentative_table *table, struct store *store,
		      const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct tentative **p, *t;
	bool unclaimed = false;

	pthread_mutex_lock(&table->lock);
	p = slot(table, store, hash);
	t = *p;
	if (t) {
		unclaimed = !t->claimed;
		*p = t->next;
		free(t);
	}
	pthread_mutex_unlock(&table->lock);
	return unclaimed;
}
