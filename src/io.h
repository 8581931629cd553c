/*
 * io.h - the file-system calls the local backend (its store, pack, checkpoint
 * and recovery code) and fsck make, behind one table of function pointers.
 * Production uses the system calls (io_system()); a test can hand a database
 * a simulated disk (one that loses unsynced writes and tears the last one, as
 * after a power cut) through blobdb_options.io, without changing the code
 * above it. The table is per database: there is no process-wide one.
 *
 * Each function returns what the system call returns (-1 and errno on
 * failure), so call sites read like the plain calls they replace. No entry
 * is ever NULL: a table that only changes some calls starts from a copy of
 * io_system()'s.
 */
#ifndef BLOBFS_IO_H
#define BLOBFS_IO_H

#include <sys/stat.h>
#include <sys/types.h>

struct statvfs;

/* Called once per entry of a directory (not "." or ".."); type is a DT_*
 * value (DT_UNKNOWN when the file system does not say). A non-zero return
 * stops the listing and is returned by listdir. */
typedef int (*io_listdir_fn)(const char *name, unsigned char type, void *arg);

struct io_ops {
	int (*openat)(int dirfd, const char *path, int flags, mode_t mode);
	int (*close)(int fd);
	int (*dup)(int fd);
	ssize_t (*pread)(int fd, void *buf, size_t len, off_t off);
	ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
	int (*fsync)(int fd);
	int (*ftruncate)(int fd, off_t len);
	int (*fstat)(int fd, struct stat *st);
	int (*fstatvfs)(int fd, struct statvfs *st);
	int (*flock)(int fd, int operation);
	int (*renameat)(int olddirfd, const char *oldpath, int newdirfd, const char *newpath);
	int (*unlinkat)(int dirfd, const char *path, int flags);
	int (*mkdirat)(int dirfd, const char *path, mode_t mode);
	int (*syncfs)(int fd);
	/* Lists the directory path (relative to dirfd; "." for dirfd itself).
	 * Returns 0 at the end, fn's non-zero return, or a negative errno (the
	 * one call here that does not answer like a system call). */
	int (*listdir)(int dirfd, const char *path, io_listdir_fn fn, void *arg);
};

/* The system calls themselves. */
const struct io_ops *io_system(void);

#endif
