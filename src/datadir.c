/*
 * datadir.c - the directory operations of datadir.h, shared by the local
 * backend and fsck.
 */
#include "datadir.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "strlist.h"

bool datadir_is_store_file(const char *name)
{
	return !strcmp(name, STORE_MARKER) || !strcmp(name, STORE_CHECKPOINT) ||
	       !strcmp(name, STORE_CHECKPOINT_STAGING) || !strcmp(name, STORE_META) ||
	       !strcmp(name, STORE_META_STAGING) ||
	       !strncmp(name, STAGING_PREFIX, strlen(STAGING_PREFIX));
}

int datadir_fsync_dir(const struct io_ops *io, int dirfd, const char *path)
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

int datadir_open_subdir(const struct io_ops *io, int dirfd, const char *name, int *out)
{
	if (io->mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	*out = io->openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	return *out < 0 ? -errno : 0;
}

struct remove_ctx {
	const struct io_ops *io;
	int fd;
};

static int remove_one(const char *name, unsigned char type, void *arg)
{
	struct remove_ctx *c = arg;

	(void)type;
	if (c->io->unlinkat(c->fd, name, 0) < 0 && errno != ENOENT)
		return -errno;
	return 0;
}

int datadir_remove_flat(const struct io_ops *io, int parent_fd, const char *dir_name)
{
	struct remove_ctx c = { .io = io };
	int ret;

	c.fd = io->openat(parent_fd, dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (c.fd < 0)
		return -errno;
	ret = io->listdir(c.fd, ".", remove_one, &c);
	io->close(c.fd);
	if (ret == 0 && io->unlinkat(parent_fd, dir_name, AT_REMOVEDIR) < 0)
		ret = -errno;
	return ret;
}

static int collect_name(const char *name, unsigned char type, void *arg)
{
	(void)type;
	return strlist_add(arg, name);
}

int datadir_list_sorted(const struct io_ops *io, int dirfd, const char *path, char ***names,
			size_t *count)
{
	struct strlist l = { 0 };
	int ret = io->listdir(dirfd, path, collect_name, &l);

	if (ret < 0)
		strlist_free(&l);
	else
		strlist_sort(&l);
	*names = l.v;
	*count = l.n;
	return ret;
}

void datadir_names_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}
