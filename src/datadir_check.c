/*
 * datadir_check.c - whether a data directory sits where nobody else can
 * change it (datadir.h, datadir_check_path). Another user who can write the
 * data directory, or any directory above it, could swap a file or a
 * directory of it for a symbolic link or for content of their own, and a
 * daemon running as root would then write where it was pointed, or serve
 * owners and modes someone else wrote. The walk opens each component from /
 * down with O_NOFOLLOW (the path is realpath's, so there is no symbolic link
 * left to follow) and looks at what it opened.
 */
#include "datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include "io.h"

/* Why st (the directory shown as path) is unsafe, into why; 0 when it is
 * safe. The data directory itself gets no exception for the sticky bit. */
static int judge(const struct stat *st, const char *path, bool is_datadir, unsigned euid,
		 char *why, size_t why_size)
{
	bool sticky_ok = !is_datadir && (st->st_mode & S_ISVTX) &&
			 (st->st_uid == 0 || st->st_uid == euid);
	const char *what = is_datadir ? "the data directory" : "its parent directory";

	if (is_datadir && st->st_uid != 0 && st->st_uid != euid) {
		snprintf(why, why_size, "%s %s belongs to uid %u, not to root or to this user "
			 "(uid %u)", what, path, (unsigned)st->st_uid, euid);
		return -EPERM;
	}
	if (sticky_ok)
		return 0;
	if (st->st_mode & S_IWOTH) {
		snprintf(why, why_size, "%s %s is writable by every user (mode %04o)%s", what, path,
			 (unsigned)(st->st_mode & 07777),
			 is_datadir ? "" : " and not sticky with an owner of root or this user");
		return -EPERM;
	}
	if ((st->st_mode & S_IWGRP) && st->st_gid != 0) {
		snprintf(why, why_size, "%s %s is writable by group %u (mode %04o)%s", what, path,
			 (unsigned)st->st_gid, (unsigned)(st->st_mode & 07777),
			 is_datadir ? "" : " and not sticky with an owner of root or this user");
		return -EPERM;
	}
	return 0;
}

int datadir_check_path(const struct io_ops *io, const char *path, unsigned euid, char *why,
		       size_t why_size)
{
	char shown[4096];
	const char *p = path;
	int fd, ret = 0;

	if (path[0] != '/' || strlen(path) >= sizeof(shown))
		return -EINVAL;
	fd = io->openat(AT_FDCWD, "/", O_PATH | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	shown[0] = '/';
	shown[1] = '\0';
	for (;;) {
		struct stat st;
		char name[256];
		size_t len;
		int next;

		while (*p == '/')
			p++;
		len = strcspn(p, "/");
		if (io->fstat(fd, &st) < 0) {
			ret = -errno;
			break;
		}
		ret = judge(&st, shown, len == 0, euid, why, why_size);
		if (ret < 0 || len == 0)
			break;
		if (len >= sizeof(name)) {
			ret = -ENAMETOOLONG;
			break;
		}
		memcpy(name, p, len);
		name[len] = '\0';
		p += len;
		next = io->openat(fd, name, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
		if (next < 0) {
			/* The data directory itself may not exist yet: it is made
			 * (0700, ours) once its parents passed. */
			while (*p == '/')
				p++;
			ret = errno == ENOENT && *p == '\0' ? 0 : -errno;
			break;
		}
		io->close(fd);
		fd = next;
		memcpy(shown, path, (size_t)(p - path));
		shown[p - path] = '\0';
	}
	io->close(fd);
	return ret;
}
