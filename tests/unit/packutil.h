/*
 * packutil.h - the pack-format tests' part of the fixture library
 * (packutil.c; used by test_pack_*.c, whose subject the pack layer is, so
 * they call pack.h directly): a pack file written record by record with
 * the records and their data remembered, and a scan of a pack file (or a
 * damaged copy of it) compared with the records and damage reports it
 * should give.
 */
#ifndef BLOBFS_PACKUTIL_H
#define BLOBFS_PACKUTIL_H

#include "pack.h"
#include "testutil.h"

/* A pack test's main: tu_init, then each of tests[] in order, each given
 * the same fresh temporary directory; returns the exit status. */
typedef void (*pack_test_fn)(const char *dir);
int pack_tests_main(const char *argv0, const pack_test_fn *tests, size_t n);

/* The same record (offset, kind, shift, seq, length, hash). */
bool same_record(const struct record_info *a, const struct record_info *b);

/* ---- writing a pack ---- */

struct written {
	struct record_info rec;
	uint8_t *data; /* NULL for a tombstone */
};

struct pack_file {
	char path[PATH_MAX];
	int dirfd, fd;
	uint32_t id;
	uint64_t end; /* where the next record goes */
	struct written *recs;
	size_t count;
};

/* Creates pack id in dir (which must work) and opens it for writing. */
void pack_file_new(struct pack_file *p, const char *dir, uint32_t id);
/* Closes it and frees what it remembers (the file stays). */
void pack_file_close(struct pack_file *p);
/* Appends a record; data random (NULL length-0 tombstone when kind says so).
 * With via_frame, the data is written first and pack_write_frame adds the
 * rest, as the store does for staged blobs. */
void pack_file_append(struct pack_file *p, enum record_kind kind, uint64_t length,
		      unsigned shift, bool via_frame);
/* A small pack whose records are all small but the last (last_size bytes):
 * the fixture for damage tests. */
void pack_file_fixture(struct pack_file *p, const char *dir, uint32_t id, size_t count,
		       uint64_t last_size);

/* ---- scanning it back ---- */

/* What a scan is expected to produce: records `first`..`last` (inclusive),
 * with the damage reports in between. */
enum scan_event_kind { EV_RECORD, EV_DAMAGE };
struct scan_event {
	enum scan_event_kind kind;
	size_t rec;                   /* EV_RECORD: index in p->recs */
	uint64_t bad_start, bad_end;  /* EV_DAMAGE */
};

/* Scans path as pack p->id and compares with the expected events; verifies
 * each blob's data too when verify is set. */
bool scan_matches(const struct pack_file *p, const char *path, const struct scan_event *ev,
		  size_t n_ev, bool verify);
/* Events for records [from, to) in order, appended at ev[n]; the new n. */
size_t add_records(struct scan_event *ev, size_t n, size_t from, size_t to);

#endif
