/*
 * datadir.c - small directory operations on a data directory, shared by the
 * engine and fsck: making and opening a subdirectory, fsyncing a directory,
 * removing a flat directory (a destroyed store in the trash).
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

int fsync_dir_at(int dirfd, const char *path)
{
	int fd = io->openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (io->fsync(fd) < 0)
		ret = -errno;
	io->close(fd);
	return ret;
}

/* Removes every file in dir_name (inside parent_fd) and then dir_name. */
int remove_flat_dir(int parent_fd, const char *dir_name)
{
	struct dirent *d;
	DIR *dir = NULL;
	int fd, ret = 0;

	fd = io->openat(parent_fd, dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			io->close(fd);
		goto out;
	}
	while ((errno = 0, d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (io->unlinkat(dirfd(dir), d->d_name, 0) < 0 && errno != ENOENT) {
			ret = -errno;
			goto out;
		}
	}
	if (errno) {
		ret = -errno;
		goto out;
	}
	if (io->unlinkat(parent_fd, dir_name, AT_REMOVEDIR) < 0)
		ret = -errno;
out:
	if (dir)
		closedir(dir);
	return ret;
}

int open_subdir(int dirfd, const char *name, int *out)
{
	if (io->mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	*out = io->openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	return *out < 0 ? -errno : 0;
}
