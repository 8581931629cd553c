/*
 * fs.h - the FUSE front end: a mounted session over a blob database, in
 * three steps (start, loop, stop) so that the process can do its own work in
 * between (daemonize, start the database's threads) and, later, run another
 * front end beside it.
 */
#ifndef BLOBFS_FS_H
#define BLOBFS_FS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct blobdb;
struct fuse_args;
struct fs_session;

struct fs_options {
	bool foreground; /* read by main: do not daemonize */
	bool debug;      /* read by main: log every request */
	bool sync; /* -o sync: close() returns once the blob is durable */
	unsigned threads; /* the most requests served at once */
	unsigned receipt_ttl; /* seconds a closed name in incoming/ stays */
	size_t receipt_max;   /* the most names in incoming trees */
	size_t node_max;      /* blob nodes before the kernel is asked to forget */
	size_t handle_max;    /* open files and directories at once */
};

#define RECEIPT_TTL_DEFAULT 3600
#define RECEIPT_MAX_DEFAULT 100000
#define NODE_MAX_DEFAULT 50000
#define HANDLE_MAX_DEFAULT 8192

/* Mounts db on mountpoint and installs the signal handlers that end the
 * loop (SIGINT, SIGTERM, SIGHUP). Starts no thread, so the caller may fork
 * (daemonize) afterwards. args holds the FUSE options (-o ...). Returns 0 or
 * a negative errno (libfuse has logged why). */
int fs_session_start(struct blobdb *db, const char *mountpoint, struct fuse_args *args,
		     const struct fs_options *opts, struct fs_session **out);
/* Serves requests until the mount is unmounted or a signal arrives; 0 on
 * such a clean end, a negative errno otherwise. */
int fs_session_loop(struct fs_session *session);
/* Another front end (the native server) changed a blob (hash) or a store
 * (hash NULL) of the database: the kernel is told to forget the name, which
 * it may cache for up to an hour (the removal may be of a name it has, the
 * creation of one it knows is absent). Not from a request of this session. */
void fs_session_forget(struct fs_session *session, const char *store, const uint8_t *hash);
/* Unmounts (if still mounted), removes the signal handlers and frees the
 * session; files still being written are discarded. NULL does nothing. */
void fs_session_stop(struct fs_session *session);

#endif
