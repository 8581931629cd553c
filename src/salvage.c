/*
 * salvage.c - the recovery primitives the engine and fsck share: copying a
 * range of a pack to DATADIR/quarantine/<store>/, cutting a torn tail (after
 * keeping it there), moving a whole file there, and rewriting a pack with a
 * chosen set of its records (compaction and repair). Nothing is ever dropped
 * unseen: what leaves a pack goes to the quarantine first.
 */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "crc32c.h"
#include "hash.h"
#include "index.h"
#include "io.h"
#include "log.h"
#include "pack.h"

/* Copies bytes [from, to) of a pack into DATADIR/quarantine/<store>/ before
 * they are cut off, so that nothing is dropped unseen. */
static int quarantine_bytes(struct local_store *store, int fd, uint32_t pack_id, uint64_t from,
			    uint64_t to)
{
	char name[PATH_SIZE], pack[PACK_NAME_SIZE];
	int out = -1, ret;

	if (io->mkdirat(store->db->quarantine_fd, store->base.name, 0700) < 0 && errno != EEXIST)
		return -errno;
	pack_name(pack_id, pack);
	snprintf(name, sizeof(name), "%s/%s.%" PRIu64 "-%" PRIu64 ".%ld", store->base.name, pack,
		 from, to, (long)time(NULL));
	out = io->openat(store->db->quarantine_fd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
			 0600);
	ret = out < 0 ? -errno : copy_file_bytes(fd, from, out, 0, to - from);
	if (ret == 0 && io->fsync(out) < 0)
		ret = -errno;
	if (out >= 0)
		io->close(out);
	if (ret == 0)
		log_warning("store %s: %s bytes %" PRIu64 "..%" PRIu64 " kept in %s/quarantine/%s",
			    store->base.name, pack, from, to, store->db->base.location, name);
	return ret;
}

/* Cuts a pack at `at`, keeping the bytes cut in quarantine first. */
int store_cut_pack(struct local_store *store, int fd, uint32_t pack_id, uint64_t at,
			  uint64_t size, const char *why)
{
	char pack[PACK_NAME_SIZE];
	int ret;

	pack_name(pack_id, pack);
	log_warning("store %s: %s: %s at offset %" PRIu64 " (%" PRIu64 " bytes): cut off",
		    store->base.name, pack, why, at, size - at);
	ret = quarantine_bytes(store, fd, pack_id, at, size);
	if (ret == 0 && io->ftruncate(fd, (off_t)at) < 0)
		ret = -errno;
	if (ret == 0 && io->fsync(fd) < 0)
		ret = -errno;
	if (ret < 0)
		log_error("store %s: cannot cut %s: %s", store->base.name, pack, strerror(-ret));
	return ret;
}

/* Moves a whole file of the store into DATADIR/quarantine/<store>/. */
int quarantine_file(struct local_store *store, const char *path, uint32_t pack_id)
{
	char name[PATH_SIZE], pack[PACK_NAME_SIZE];
	int ret = 0;

	if (io->mkdirat(store->db->quarantine_fd, store->base.name, 0700) < 0 && errno != EEXIST)
		ret = -errno;
	pack_name(pack_id, pack);
	snprintf(name, sizeof(name), "%s/%s.%ld", store->base.name, pack, (long)time(NULL));
	if (ret == 0 && io->renameat(store->db->stores_fd, path, store->db->quarantine_fd, name) < 0)
		ret = -errno;
	if (ret == 0)
		ret = fsync_dir_at(store->db->stores_fd, store->base.name);
	if (ret == 0 && io->fsync(store->db->quarantine_fd) < 0)
		ret = -errno;
	if (ret == 0)
		log_warning("store %s: %s moved to %s/quarantine/%s", store->base.name, pack,
			    store->db->base.location, name);
	else
		log_error("store %s: cannot move %s to quarantine: %s", store->base.name, pack,
			  strerror(-ret));
	return ret;
}
