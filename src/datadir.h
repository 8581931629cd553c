/*
 * datadir.h - a data directory's names, in one place (docs/FORMAT.md has
 * the layout), and the small directory operations the local backend and fsck
 * share. Every call goes through the io table it is given.
 *
 *   DATADIR/lock                      flock'ed by the daemon; holds its pid
 *   DATADIR/stores/<store>/           one directory per store:
 *       pack-XXXXXXXX.pack            packs (pack.h names them)
 *       durable                       the durable marker
 *       checkpoint, checkpoint.tmp    the index checkpoint, and its staging name
 *       meta, meta.tmp                the store's owner, group and mode (local_meta.c)
 *       staging-*                     files being written: leftovers are removed
 *   DATADIR/stores/.creating-*        a store being created (renamed to its name
 *                                     once whole; removed at the next open)
 *   DATADIR/trash/store-*             destroyed stores, removed at the next open
 *   DATADIR/quarantine/<store>/       bytes recovery took out of packs
 */
#ifndef BLOBFS_DATADIR_H
#define BLOBFS_DATADIR_H

#include <stdbool.h>
#include <stddef.h>

struct io_ops;

#define DATADIR_LOCK "lock"
#define DATADIR_STORES "stores"
#define DATADIR_TRASH "trash"
#define DATADIR_QUARANTINE "quarantine"

#define STORE_MARKER "durable"
#define STORE_CHECKPOINT "checkpoint"
#define STORE_CHECKPOINT_STAGING "checkpoint.tmp"
#define STORE_META "meta"
#define STORE_META_STAGING "meta.tmp"
/* In stores/: a store's directory while it is made (its meta file and
 * marker written), before the rename to its name; a leftover is removed. */
#define STORE_CREATING_PREFIX ".creating-"
#define STORE_CREATING_FMT STORE_CREATING_PREFIX "%ld-%" PRIu64 /* pid, counter */
/* Any file of a store whose name starts so is a leftover of an interrupted
 * write, compaction or repair. */
#define STAGING_PREFIX "staging-"
#define STAGING_WRITE_FMT STAGING_PREFIX "%ld-%" PRIu64 ".tmp"      /* pid, counter */
#define STAGING_COMPACT_FMT STAGING_PREFIX "compact-%08x.tmp"        /* new pack id */
#define STAGING_REPAIR_FMT STAGING_PREFIX "repair-%08x.tmp"          /* new pack id */
#define TRASH_STORE_FMT "store-%ld-%" PRIu64                         /* pid, counter */
/* In quarantine/<store>/: a range of a file, and a whole file. */
#define QUARANTINE_RANGE_FMT "%s/%s.%" PRIu64 "-%" PRIu64 ".%ld"    /* store, file, from, to, time */
#define QUARANTINE_FILE_FMT "%s/%s.%ld"                             /* store, file, time */

/* Whether name, in a store's directory, is one of the store's own files
 * other than its packs (marker, checkpoint, meta, staging files). */
bool datadir_is_store_file(const char *name);

/* fsync of the directory path (relative to dirfd). */
int datadir_fsync_dir(const struct io_ops *io, int dirfd, const char *path);
/* Makes (if needed) and opens the subdirectory name of dirfd (never
 * through a symbolic link: -ELOOP or -ENOTDIR). */
int datadir_open_subdir(const struct io_ops *io, int dirfd, const char *name, int *out);
/* Removes every file in dir_name (inside parent_fd), then dir_name. */
int datadir_remove_flat(const struct io_ops *io, int parent_fd, const char *dir_name);
/* The names in directory path (relative to dirfd), sorted bytewise; free
 * with datadir_names_free. */
int datadir_list_sorted(const struct io_ops *io, int dirfd, const char *path, char ***names,
			size_t *count);
void datadir_names_free(char **names, size_t count);

/* Whether the directory path (absolute, with no symbolic links: realpath's)
 * and every parent of it are safe for a data directory run by user euid
 * (datadir_check.c; the rules are blobdb_check_location's in store.h). 0
 * when they are (a path that does not exist yet is checked from its
 * nearest existing parent); -EPERM with why (a sentence naming the
 * directory) when not; another negative errno when a directory could not
 * be examined. */
int datadir_check_path(const struct io_ops *io, const char *path, unsigned euid, char *why,
		       size_t why_size);

#endif
