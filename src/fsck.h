/*
 * fsck.h - the offline checker: reads every record of every pack of a data
 * directory and reports what does not check out; changes nothing unless
 * asked to repair.
 */
#ifndef BLOBFS_FSCK_H
#define BLOBFS_FSCK_H

#include <stdbool.h>
#include <stdio.h>

struct fsck_report {
	unsigned long long stores, packs, blobs, tombstones, bytes;
	unsigned long long problems;
	unsigned long long unrepaired; /* with repair: problems left */
};

/* Writes one line per problem to out (and progress to progress, if not
 * NULL). Returns 0 when the check ran (problems counted in report), or a
 * negative errno when it could not run (-EBUSY: the data directory is in
 * use by a mounted blobfs).
 *
 * With repair, each pack with a problem is rewritten: every record that
 * frames and verifies is copied into a new pack, made durable, and the
 * damaged pack is then moved to DATADIR/quarantine/<store>/ (never deleted);
 * a torn tail is copied to quarantine and cut off. */
struct io_ops;
/* io: the file-system calls (io.h); NULL for the system's. */
int fsck_run(const char *datadir, const struct io_ops *io, bool repair, FILE *out,
	     FILE *progress, struct fsck_report *report);

#endif
