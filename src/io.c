/*
 * io.c - the production io table: the system calls themselves.
 */
#include "io.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int sys_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	return openat(dirfd, path, flags, mode);
}

static int sys_listdir(int dirfd, const char *path, io_listdir_fn fn, void *arg)
{
	struct dirent *d;
	DIR *dir = NULL;
	int fd, ret = 0;

	fd = openat(dirfd, path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		goto out;
	}
	while ((errno = 0, d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		ret = fn(d->d_name, d->d_type, arg);
		if (ret)
			goto out;
	}
	if (errno)
		ret = -errno;
out:
	if (dir)
		closedir(dir);
	else if (fd >= 0)
		close(fd);
	return ret;
}

static const struct io_ops system_io = {
	.openat = sys_openat,
	.close = close,
	.dup = dup,
	.pread = pread,
	.pwrite = pwrite,
	.fsync = fsync,
	.ftruncate = ftruncate,
	.fstat = fstat,
	.fstatvfs = fstatvfs,
	.flock = flock,
	.renameat = renameat,
	.unlinkat = unlinkat,
	.mkdirat = mkdirat,
	.syncfs = syncfs,
	.listdir = sys_listdir,
};

const struct io_ops *io_system(void)
{
	return &system_io;
}
