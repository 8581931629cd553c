/*
 * contract.h - what the two halves of the contract suite share: the backend
 * under test (from the command line), opening a fresh database on it, and
 * the groups of contract_concurrency.c. See contract.c for what is covered;
 * contract_backend.c has the helpers. The checks, PRNG, temporary
 * directories and blob helpers (blob_is, sha, collect_hash, ...) are the
 * fixture library's: testutil.h and storeutil.h (tests/unit).
 */
#ifndef BLOBFS_CONTRACT_H
#define BLOBFS_CONTRACT_H

#include "storeutil.h"

#define KiB ((size_t)1 << 10)
#define MiB ((size_t)1 << 20)

/* The backend under test. */
extern bool ct_memory;          /* location "memory:" */
extern bool ct_s3;              /* an s3:// location (the packs are not ours to see) */
extern const char *ct_location; /* "memory:", the local base directory or s3://B/P */
extern char ct_cwd[PATH_MAX];   /* memory: the directory we run in, must stay empty */

/* A fresh, empty database for a group of checks (local: a new directory
 * <base>/<label>; memory: "memory:"; s3: the prefix <location>/<label>,
 * with a cache directory of its own). Ends the test if it cannot open. */
struct blobdb *ct_open(const char *label, const struct blobdb_options *opts);
/* The same database again after blobdb_close (local: same directory). */
struct blobdb *ct_reopen(const char *label, const struct blobdb_options *opts);
/* s3: the bucket exists (made when missing); 0 or a negative errno. */
int ct_s3_prepare(void);
/* Closes; memory: checks that nothing was left in ct_cwd. */
void ct_close(struct blobdb *db);
/* memory: ct_cwd is still empty (a check). */
void ct_check_nothing_on_disk(void);

/* No blob with this hash: blob_absent (info and open say -ENOENT), and
 * delete says -ENOENT too. */
bool ct_blob_absent(struct store *s, const uint8_t *hash);

/* The groups of contract_concurrency.c. */
void ct_writers(uint64_t seed);
void ct_list_while_saving(uint64_t seed);
void ct_concurrent_writers(uint64_t seed);
void ct_destroyed_store_references(uint64_t seed);
/* contract_saved.c: blob_stat's saved time. */
void ct_saved_time(uint64_t seed);
/* contract_tentative.c: verified commits and tentative saves. */
void ct_tentative(uint64_t seed);
/* contract_owners.c: stores' owners and modes, and the permission rules. */
void ct_owners(uint64_t seed);

#endif
