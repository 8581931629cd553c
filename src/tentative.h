/*
 * tentative.h - the store layer's record of tentative saves: blobs a save
 * created for content that may still be superseded (a file still open), and
 * that its writer may take back. Internal to blobdb.c; the API is in store.h
 * (blob_writer_commit_tentative, blob_retract, blob_settle).
 */
#ifndef BLOBFS_TENTATIVE_H
#define BLOBFS_TENTATIVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

struct store;
struct tentative_table;

int tentative_new(struct tentative_table **out);
void tentative_free(struct tentative_table *table);
/* The point a tentative save starts from: claims after it count. */
uint64_t tentative_begin(struct tentative_table *table);
/* Records that a tentative save begun at `since` created (store, hash);
 * false when it is not recorded (the save is then permanent): another save
 * of the same content happened since `since`, or no memory. */
bool tentative_add(struct tentative_table *table, uint64_t since, struct store *store,
		   const uint8_t hash[BLOBFS_HASH_SIZE]);
/* Another save found or made (store, hash): the blob is someone else's too
 * and can no longer be taken back. */
void tentative_claim(struct tentative_table *table, struct store *store,
		     const uint8_t hash[BLOBFS_HASH_SIZE]);
/* Removes the record; true when it existed and was not claimed (the blob
 * may be taken back). */
bool tentative_remove(struct tentative_table *table, struct store *store,
		      const uint8_t hash[BLOBFS_HASH_SIZE]);

#endif
