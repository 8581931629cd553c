/*
 * storeutil.h - the blob-database part of the C tests' fixture library
 * (storeutil.c; the general part is testutil.h; the unit tests and the
 * backend contract suite use it): options for the two ways
 * most store tests run, opening databases and stores that must open, checks
 * that a blob is there whole and exact (or absent), listing collectors, a
 * model of several stores for persistence and compaction tests, and what the
 * tests look at on disk: pack files, staging files, every record verified.
 *
 * The file-system calls of the code under test go through the io table of
 * each database (blobdb_options.io; io_system() is the real one). The
 * pack layer's I/O functions are called from two helpers only: scan_packs()
 * (pack_scan_*; verify_packs adds pack_verify_record) and write_pack()
 * (pack_create / pack_write_record). The pack-format tests
 * (test_pack_*.c), whose subject they are, call them directly and through
 * their own fixture, packutil.h (in the same library).
 */
#ifndef BLOBFS_STOREUTIL_H
#define BLOBFS_STOREUTIL_H

#include "hash.h"
#include "io.h"
#include "pack.h"
#include "store.h"
#include "testutil.h"

#define HS BLOBFS_HASH_SIZE

/* ---- options ---- */

/* Most tests run twice: with the default options, and with small
 * large_blob_min / pack_size_max so that blobs get packs of their own
 * (written in place) and a store spreads over several packs. */
struct blobdb_options opts_default(void);
struct blobdb_options opts_small(void);
/* "default options" or "small packs, ..." for a test's name. */
const char *opts_label(const struct blobdb_options *o);

/* A store test's main: each test of tests[] in order; `both` ones with
 * opts_default() and then opts_small(), `once` ones without options. Each
 * gets the same base directory (a fresh temporary one). Returns the exit
 * status. */
struct store_test {
	void (*both)(const char *base, const struct blobdb_options *opts);
	void (*once)(const char *base);
};
int store_tests_main(const char *argv0, const struct store_test *tests, size_t n);

/* ---- databases, stores, blobs ---- */

/* Open or end the test. */
struct blobdb *db_open(const char *dir, const struct blobdb_options *opts);
struct store *st_open(struct blobdb *db, const char *name);
/* Opens (creating) the database at dir, creates store `name` in it (which
 * must work) and opens it; *db gets the database. */
struct store *new_store(const char *dir, const struct blobdb_options *opts, const char *name,
			struct blobdb **db);

/* SHA-256 of data, which must succeed. */
void sha(const void *data, size_t len, uint8_t out[HS]);
/* A hash in hex, in one of eight rotating buffers (per thread). */
const char *hexs(const uint8_t *hash);

/* Distinct random contents: the first bytes carry a serial number. */
uint8_t *make_content(size_t len);

/* The blob with this content is in the store, whole and exact: info,
 * length, and a read through a reader in random-sized pieces (on the test's
 * generator: from one thread at a time). */
bool blob_is(struct store *s, const void *data, size_t len);
/* The blob is not in the store: info and open say -ENOENT. */
bool blob_absent(struct store *s, const uint8_t *hash);

/* Each blob i of n is in the store (data[i], sizes[i]) when present[i], and
 * absent (hashes[i]) otherwise: a check each. */
void check_blobs(struct store *s, size_t n, uint8_t *const *data, const size_t *sizes,
		 const uint8_t (*hashes)[HS], const bool *present);

/* Saves through a writer, in shuffled pieces. */
int save_via_writer(struct store *s, const uint8_t *data, size_t len, uint8_t hash[HS]);

/* ---- listings ---- */

/* blob_list's callback collect_hash fills one; it stops the listing with 77
 * after stop_after hashes (0: never). */
struct hashlist {
	uint8_t (*h)[HS];
	uint64_t *len;
	size_t n, cap;
	size_t stop_after;
};
int collect_hash(const uint8_t hash[HS], uint64_t length, void *arg);
void hashlist_free(struct hashlist *l);
int cmp_hash(const void *a, const void *b);

/* store_list's callback collect_name fills one; it stops with 55. */
struct namelist {
	char **names;
	size_t n, cap;
	size_t stop_after;
};
int collect_name(const char *name, void *arg);
void namelist_free(struct namelist *l);
int cmp_str(const void *a, const void *b);

/* store_list of db gives exactly sorted[0 .. n) (the stores' names in byte
 * order): the whole listing; resumed after each name and after each of
 * absent[0 .. n_absent) (names that are not stores); stopped after 3. */
void check_store_listing(struct blobdb *db, char *const *sorted, size_t n,
			 const char *const *absent, size_t n_absent);

/* Store `gone` has just been destroyed and `only` is the one store left:
 * destroying or opening `gone` again says -ENOENT, and store_count and
 * store_list give `only` alone. */
void check_only_store_left(struct blobdb *db, const char *gone, const char *only);

/* ---- a model of several stores (persistence, compaction) ---- */

#define P_STORES 3
#define P_POOL 70

struct pool_item {
	uint8_t *data;
	size_t len;
	uint8_t hash[HS];
};

struct pmodel {
	struct pool_item pool[P_POOL];
	bool exists[P_STORES];
	bool present[P_STORES][P_POOL];
};

/* The stores' names, in byte order. */
extern const char *const p_names[P_STORES];

/* Saves pool item i into store st (s), with blob_save or through a writer:
 * the result must be -EEXIST when the model has it there, else 0 (false
 * when it is not), and the hash the item's. The model has it afterwards. */
bool model_save(struct pmodel *pm, struct store *s, int st, int i, bool via_writer);
/* Deletes pool item i from store st: 0 or -ENOENT as the model says (false
 * when not). The model does not have it afterwards. */
bool model_delete(struct pmodel *pm, struct store *s, int st, int i);

/* The database holds exactly the model: stores, blobs, counts, listings. */
bool verify_model(struct blobdb *db, const struct pmodel *pm, const char *when);

/* ---- files of a store ---- */

/* Pack files in a store directory: how many, and the largest id; staging
 * files counted into *staging when it is not NULL. */
size_t packs_in_store(const char *dbdir, const char *store, uint32_t *max_id, size_t *staging);
size_t staging_files(const char *dbdir, const char *store);
/* The path of pack id of a store. */
void path_of_pack(const char *dbdir, const char *store, uint32_t id, char out[PATH_MAX]);
/* Total bytes of a store's pack files. */
long long packs_bytes(const char *dbdir, const char *store);

/* ---- scanning packs ---- */

/* What scan_packs hands its visitor. */
enum pack_event_kind {
	PACK_OPEN,     /* first for each pack: error is 0, or the file is not a
			* pack of this id (then nothing else comes from it) */
	PACK_RECORD,   /* rec is a well-framed record */
	PACK_DAMAGE,   /* bytes [bad_start, bad_end) frame no record (error) */
	PACK_IO_ERROR, /* the scan of this pack stopped on an I/O error (error) */
};

struct pack_event {
	enum pack_event_kind kind;
	const char *path; /* of the pack file */
	uint32_t pack_id;
	int fd;           /* the pack, open for reading during the call */
	int error;        /* the negative errno, for the error kinds */
	const struct record_info *rec;
	uint64_t bad_start, bad_end;
};

typedef void (*pack_visitor)(const struct pack_event *ev, void *arg);

/* Scans every pack of a store (only pack `only` unless it is UINT32_MAX)
 * in file order, handing each record and each problem to visit. */
void scan_packs(const char *dbdir, const char *store, uint32_t only, pack_visitor visit,
		void *arg);

/* Every pack of a store scans cleanly (no damage, no torn tail) and every
 * blob record in it verifies: chunk checksums and SHA-256. */
bool verify_packs(const char *dbdir, const char *store);
/* Where the (newest) record of a blob is: its pack and record. */
bool find_record(const char *dbdir, const char *store, const uint8_t *hash, uint32_t *pack_id,
		 struct record_info *out);
/* The last record of one pack (whose header must be good). */
bool last_record(const char *dbdir, const char *store, uint32_t id, struct record_info *last);
/* Records in a store's packs: blobs and tombstones. */
void count_records(const char *dbdir, const char *store, size_t *blobs, size_t *tombstones);

/* Creates pack id of a store holding the n records recs (their offsets are
 * set here, one after the other), each with data as its content; each
 * record's write is a check. */
void write_pack(const char *dbdir, const char *store, uint32_t id, struct record_info *recs,
		size_t n, const void *data);

#endif
