/*
 * fsck.h - the offline checker: reads every record of every pack of a data
 * directory and reports what does not check out. It changes nothing.
 */
#ifndef BLOBFS_FSCK_H
#define BLOBFS_FSCK_H

#include <stdbool.h>
#include <stdio.h>

struct fsck_report {
	unsigned long long stores, packs, blobs, tombstones, bytes;
	unsigned long long problems;
};

/* Writes one line per problem to out (and progress to progress, if not
 * NULL). Returns 0 when the check ran (problems counted in report), or a
 * negative errno when it could not run (-EBUSY: the data directory is in
 * use by a mounted blobfs). */
int fsck_run(const char *datadir, FILE *out, FILE *progress, struct fsck_report *report);

#endif
