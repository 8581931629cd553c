/*
 * fs.h - the FUSE front end: runs a mounted session over a blob database.
 */
#ifndef BLOBFS_FS_H
#define BLOBFS_FS_H

#include <stdbool.h>

struct blobdb;
struct fuse_args;

struct fs_options {
	bool foreground;
	bool debug;
	bool sync; /* -o sync: close() returns once the blob is durable */
	unsigned threads; /* the most requests served at once */
};

/* Mounts, serves until unmounted or signalled, and unmounts. Returns 0 on a
 * clean unmount. args holds the FUSE options (-o ...). */
int fs_run(struct blobdb *db, const char *mountpoint, struct fuse_args *args,
	   const struct fs_options *opts);

#endif
