/*
 * salvage.h - the recovery primitives the local backend and fsck share.
 * Nothing leaves a pack unseen: bytes that recovery takes out go to
 * DATADIR/quarantine/<store>/ first (datadir.h names them).
 *
 * Each call returns 0 or a negative errno and logs nothing: the caller knows
 * whom to tell (the daemon's log, or fsck's report).
 */
#ifndef BLOBFS_SALVAGE_H
#define BLOBFS_SALVAGE_H

#include <stdbool.h>
#include <stdint.h>

struct io_ops;
struct pack_scan;
struct record_info;

#define QUARANTINE_NAME_SIZE 600

/* The quarantine of one store. */
struct quarantine {
	const struct io_ops *io;
	int dirfd;         /* DATADIR/quarantine */
	const char *store; /* files go to quarantine/<store>/ */
};

/* Copies bytes [from, to) of fd, a file called file, into the quarantine,
 * durably. kept_as (may be NULL) gets the copy's path within quarantine/. */
int quarantine_copy(const struct quarantine *q, int fd, const char *file, uint64_t from,
		    uint64_t to, char kept_as[QUARANTINE_NAME_SIZE]);

/* Moves the file `file` of the store directory store_fd into the
 * quarantine, and makes both directories durable. */
int quarantine_move(const struct quarantine *q, int store_fd, const char *file,
		    char kept_as[QUARANTINE_NAME_SIZE]);

/* Keeps bytes [at, size) of fd in the quarantine, then cuts the file at
 * `at` and makes the cut durable. */
int pack_cut_tail(const struct quarantine *q, int fd, const char *file, uint64_t at,
		  uint64_t size, char kept_as[QUARANTINE_NAME_SIZE]);

/*
 * Rewrites the pack scanned by scan (a pack_scan_open or _headless on it)
 * as a new pack new_id holding only the records keep() accepts, copied byte
 * for byte (their checksums travel with them, and they keep their seq). The
 * copy is written under staging_name in the store directory store_fd, made
 * durable, renamed to its pack name and the directory synced; on any failure
 * the copy is removed, whatever its name by then. The source is not touched.
 */
struct pack_rewrite {
	const struct io_ops *io;
	int store_fd;
	const char *staging_name;
	uint32_t new_id;
	/* Damage in the source: skipped (repair), or the rewrite stops with
	 * -EBADMSG (compaction, which only rewrites packs that scanned clean). */
	bool skip_damage;
	/* With no record kept: still renamed (compaction retires the source
	 * by it) or removed (repair). */
	bool keep_if_empty;
	/* 1 to copy rec, 0 to leave it, a negative errno to stop. in is the
	 * source's descriptor (to verify the record's bytes). */
	int (*keep)(const struct record_info *rec, int in, void *arg);
	void *arg;

	/* Results. */
	uint64_t size;       /* of the new pack */
	uint64_t kept;       /* records copied */
	uint64_t tombstones; /* of them */
	uint64_t max_seq;
	bool renamed;        /* the new pack exists under its name */
};
int pack_rewrite(struct pack_rewrite *rw, struct pack_scan *scan);

#endif
