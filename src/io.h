/*
 * io.h - the file-system calls the store and pack layers make, behind one
 * table of function pointers. Production uses the system calls; a test can
 * install a simulated disk (one that loses unsynced writes and tears the last
 * one, as after a power cut) without changing the code above it.
 *
 * Each function returns what the system call returns (-1 and errno on
 * failure), so call sites read like the plain calls they replace.
 */
#ifndef BLOBFS_IO_H
#define BLOBFS_IO_H

#include <sys/stat.h>
#include <sys/types.h>

struct io_ops {
	int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
	int (*fsync)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*fstat)(int fd, struct stat *st);
	int (*renameat)(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
	int (*unlinkat)(int dirfd, const char *path, int flags);
	int (*mkdirat)(int dirfd, const char *path, mode_t mode);
	int (*syncfs)(int fd);
};

/* The calls in use; never NULL. */
extern const struct io_ops *io;

/* Installs ops (NULL: the system calls again). Not thread-safe: for tests,
 * before any database is opened. */
void io_install(const struct io_ops *ops);

#endif
