/*
 * hash.h - blob names: SHA-256 (through OpenSSL's EVP interface) and the
 * 64-digit lowercase hex form used on the mount.
 */
#ifndef BLOBFS_HASH_H
#define BLOBFS_HASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

#define HASH_HEX_SIZE (2 * BLOBFS_HASH_SIZE)

struct hasher; /* an incremental SHA-256 */

int hasher_new(struct hasher **out);
void hasher_free(struct hasher *h);
int hasher_reset(struct hasher *h);
int hasher_update(struct hasher *h, const void *buf, size_t len);
int hasher_final(struct hasher *h, uint8_t out[BLOBFS_HASH_SIZE]);

/* One-shot SHA-256 of a buffer. */
int hash_buffer(const void *buf, size_t len, uint8_t out[BLOBFS_HASH_SIZE]);

/* Writes 64 lowercase hex digits and a NUL into out. */
void hash_to_hex(const uint8_t hash[BLOBFS_HASH_SIZE], char out[HASH_HEX_SIZE + 1]);

/* Parses exactly 64 lowercase hex digits (len must be 64); false otherwise.
 * Uppercase is refused so that each blob has exactly one name. */
bool hash_from_hex(const char *hex, size_t len, uint8_t out[BLOBFS_HASH_SIZE]);

#endif
