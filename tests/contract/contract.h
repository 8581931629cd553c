/*
 * contract.h - what the two halves of the contract suite share: the backend
 * under test (from the command line), opening a fresh database on it, and
 * the blob helpers every group uses. See contract.c for what is covered;
 * contract_backend.c has the helpers.
 */
#ifndef BLOBFS_CONTRACT_H
#define BLOBFS_CONTRACT_H

#include "check.h"
#include "hash.h"
#include "store.h"

#define HS BLOBFS_HASH_SIZE
#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* The backend under test. */
extern bool ct_memory;          /* location "memory:" */
extern const char *ct_location; /* "memory:" or the local base directory */
extern char ct_cwd[PATH_MAX];         /* memory: the directory we run in, must stay empty */

/* A fresh, empty database for a group of checks (local: a new directory
 * <base>/<label>; memory: "memory:"). Ends the test if it cannot open. */
struct blobdb *ct_open(const char *label, const struct blobdb_options *opts);
/* The same database again after blobdb_close (local: same directory). */
struct blobdb *ct_reopen(const char *label, const struct blobdb_options *opts);
void ct_close(struct blobdb *db);
struct store *ct_store(struct blobdb *db, const char *name);

void ct_sha(const void *data, size_t len, uint8_t out[HS]);
const char *ct_hex(const uint8_t *hash); /* one of 8 rotating static buffers */

/* The whole blob through a reader, read in pieces of varied sizes (rng may
 * be NULL: 64 KiB pieces); checks that reads are short only at the end and
 * that reads at and past the end give nothing. malloc'd or NULL (*err set). */
uint8_t *ct_read_all(struct store *s, const uint8_t *hash, uint64_t *rng, uint64_t *len,
		     int *err);
/* The blob with this content is in s: info, length, and exact bytes. */
bool ct_blob_is(struct store *s, const void *data, size_t len);
/* No blob with this hash: info, open and delete say -ENOENT. */
bool ct_blob_absent(struct store *s, const uint8_t *hash);

struct hashlist {
	uint8_t (*h)[HS];
	uint64_t *len;
	size_t n, cap;
	size_t stop_after; /* 0: never; else return 77 after this many */
};
int ct_collect_hash(const uint8_t hash[HS], uint64_t length, void *arg);
void ct_hashlist_free(struct hashlist *l);
int ct_cmp_hash(const void *a, const void *b);

/* The groups of contract_concurrency.c. */
void ct_writers(uint64_t seed);
void ct_list_while_saving(uint64_t seed);
void ct_concurrent_writers(uint64_t seed);
void ct_destroyed_store_references(uint64_t seed);

#endif
