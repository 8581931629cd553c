/*
 * simdisk.c - the simulated disk of simdisk.h.
 *
 * Writes go to the real files at once (so reads, sizes and directory
 * listings need no emulation), each recorded with the bytes it replaced.
 * fsync of a file makes its records durable (they are dropped); fsync of a
 * directory does the same for the names changed in it; syncfs for all. A
 * power cut undoes every non-durable write newest first, which restores the
 * durable content, then writes back a random subset of their sectors oldest
 * first, and reverts a random suffix of the non-durable name changes.
 */
#include "simdisk.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "testutil.h"

#define SECTOR 512

enum data_kind { DATA_WRITE, DATA_TRUNCATE };

struct data_op {
	enum data_kind kind;
	ino_t ino;
	int fd;            /* a descriptor of our own on the file */
	uint64_t off, len; /* DATA_WRITE: the range written */
	uint8_t *new_data; /* DATA_WRITE */
	uint64_t old_size; /* the file size before */
	uint8_t *old_data; /* the bytes replaced: [off, min(off + len, old_size)) for
			    * a write, [new_size, old_size) for a shrinking truncate */
	uint64_t new_size; /* DATA_TRUNCATE */
	struct data_op *next;
};

enum name_kind { NAME_CREATE, NAME_MKDIR, NAME_RENAME, NAME_UNLINK };

struct name_op {
	enum name_kind kind;
	ino_t dir, dir2;  /* directories whose fsync makes it durable */
	bool dir_synced, dir2_synced;
	char *path, *path2; /* absolute; RENAME: from, to; UNLINK: path, held copy */
	bool replaced_by_next; /* the old file of a rename over it: the rename
				* (the next op) is kept or reverted with it */
	struct name_op *next;
};

static struct {
	char holding[PATH_MAX];
	uint64_t calls, crash_at, held;
	bool crashed;
	struct data_op *data, *data_tail;
	struct name_op *names, *names_tail;
} sim;

/* The power cut's random choices, seeded by simdisk_power_cut. */
static struct tu_rng cut_rng;

static bool tracing(void)
{
	static int on = -1;
	if (on < 0)
		on = getenv("SIMDISK_TRACE") != NULL;
	return on;
}

#define TRACE(...) do { if (tracing()) fprintf(stderr, "simdisk: " __VA_ARGS__); } while (0)

/* Counts a mutating call; false when the machine has stopped. */
static bool tick(void)
{
	if (sim.crashed)
		return false;
	sim.calls++;
	if (sim.crash_at && sim.calls >= sim.crash_at) {
		sim.crashed = true;
		return false;
	}
	return true;
}

static int fail(void)
{
	errno = EIO;
	return -1;
}

static int absolute_path(int dirfd, const char *path, char out[PATH_MAX])
{
	char link[64], dir[PATH_MAX / 2];
	ssize_t n;

	if (path[0] == '/') {
		snprintf(out, PATH_MAX, "%s", path);
		return 0;
	}
	snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
	n = readlink(link, dir, sizeof(dir) - 1);
	if (n < 0)
		return -1;
	dir[n] = '\0';
	snprintf(out, PATH_MAX, "%.2000s/%.1000s", dir, path);
	return 0;
}

static ino_t parent_ino(const char *abs)
{
	char copy[PATH_MAX];
	struct stat st;

	snprintf(copy, sizeof(copy), "%s", abs);
	return stat(dirname(copy), &st) == 0 ? st.st_ino : 0;
}

static void add_name(enum name_kind kind, const char *a, const char *b)
{
	struct name_op *op = calloc(1, sizeof(*op));

	op->kind = kind;
	op->path = strdup(a);
	op->path2 = b ? strdup(b) : NULL;
	op->dir = parent_ino(a);
	op->dir2 = kind == NAME_RENAME ? parent_ino(b) : op->dir;
	if (sim.names_tail)
		sim.names_tail->next = op;
	else
		sim.names = op;
	sim.names_tail = op;
}

static void add_data(struct data_op *op)
{
	if (sim.data_tail)
		sim.data_tail->next = op;
	else
		sim.data = op;
	sim.data_tail = op;
}

static uint64_t file_size(int fd)
{
	struct stat st;
	return fstat(fd, &st) == 0 ? (uint64_t)st.st_size : 0;
}

static uint8_t *read_range(int fd, uint64_t off, uint64_t len)
{
	uint8_t *buf = malloc(len ? len : 1);
	if (len && pread(fd, buf, len, (off_t)off) != (ssize_t)len)
		memset(buf, 0, len);
	return buf;
}

static int sim_openat(int dirfd, const char *path, int flags, mode_t mode)
{
	char abs[PATH_MAX];
	bool existed, mutating = flags & (O_CREAT | O_TRUNC);
	struct stat st;
	int fd;

	if (mutating && !tick())
		return fail();
	if (sim.crashed)
		return fail();
	existed = fstatat(dirfd, path, &st, 0) == 0;
	if ((flags & O_TRUNC) && existed && S_ISREG(st.st_mode) && st.st_size > 0) {
		/* Record the truncation before it happens. */
		int old = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
		if (old >= 0) {
			struct data_op *op = calloc(1, sizeof(*op));
			op->kind = DATA_TRUNCATE;
			op->ino = st.st_ino;
			op->fd = openat(dirfd, path, O_RDWR | O_CLOEXEC);
			op->old_size = (uint64_t)st.st_size;
			op->new_size = 0;
			op->old_data = read_range(old, 0, op->old_size);
			add_data(op);
			close(old);
		}
	}
	fd = openat(dirfd, path, flags, mode);
	if (fd >= 0 && !existed && (flags & O_CREAT) && absolute_path(dirfd, path, abs) == 0)
		add_name(NAME_CREATE, abs, NULL);
	return fd;
}

static int sim_close(int fd)
{
	return close(fd);
}

static ssize_t sim_pread(int fd, void *buf, size_t len, off_t off)
{
	if (sim.crashed)
		return fail();
	return pread(fd, buf, len, off);
}

static ssize_t sim_pwrite(int fd, const void *buf, size_t len, off_t off)
{
	struct data_op *op;
	struct stat st;
	uint64_t keep;

	if (!tick())
		return fail();
	if (fstat(fd, &st) < 0)
		return -1;
	op = calloc(1, sizeof(*op));
	op->kind = DATA_WRITE;
	op->ino = st.st_ino;
	op->fd = dup(fd);
	op->off = (uint64_t)off;
	op->len = len;
	op->new_data = malloc(len ? len : 1);
	memcpy(op->new_data, buf, len);
	op->old_size = (uint64_t)st.st_size;
	keep = op->old_size > op->off ? op->old_size - op->off : 0;
	op->old_data = read_range(fd, op->off, keep < len ? keep : len);
	add_data(op);
	TRACE("call %llu pwrite ino %lu off %lld len %zu\n", (unsigned long long)sim.calls,
	      (unsigned long)st.st_ino, (long long)off, len);
	return pwrite(fd, buf, len, off);
}

static int sim_ftruncate(int fd, off_t len)
{
	struct data_op *op;
	struct stat st;

	if (!tick())
		return fail();
	if (fstat(fd, &st) < 0)
		return -1;
	op = calloc(1, sizeof(*op));
	op->kind = DATA_TRUNCATE;
	op->ino = st.st_ino;
	op->fd = dup(fd);
	op->old_size = (uint64_t)st.st_size;
	op->new_size = (uint64_t)len;
	if (op->new_size < op->old_size)
		op->old_data = read_range(fd, op->new_size, op->old_size - op->new_size);
	add_data(op);
	return ftruncate(fd, len);
}

static void free_data(struct data_op *op)
{
	close(op->fd);
	free(op->new_data);
	free(op->old_data);
	free(op);
}

static void free_name(struct name_op *op)
{
	free(op->path);
	free(op->path2);
	free(op);
}

/* Everything recorded for this file (or, for a directory, the names in it)
 * is now durable. */
static int sim_fsync(int fd)
{
	struct stat st;

	if (!tick())
		return fail();
	if (fstat(fd, &st) < 0)
		return -1;
	TRACE("call %llu fsync ino %lu%s\n", (unsigned long long)sim.calls, (unsigned long)st.st_ino,
	      S_ISDIR(st.st_mode) ? " (dir)" : "");
	if (S_ISDIR(st.st_mode)) {
		struct name_op **p = &sim.names, *last = NULL;
		while (*p) {
			struct name_op *op = *p;
			op->dir_synced |= op->dir == st.st_ino;
			op->dir2_synced |= op->dir2 == st.st_ino;
			if (op->dir_synced && op->dir2_synced) {
				if (op->kind == NAME_UNLINK)
					unlink(op->path2);
				*p = op->next;
				free_name(op);
			} else {
				last = op;
				p = &op->next;
			}
		}
		sim.names_tail = last;
		return 0;
	}
	struct data_op **p = &sim.data, *last = NULL;
	while (*p) {
		struct data_op *op = *p;
		if (op->ino == st.st_ino) {
			*p = op->next;
			free_data(op);
		} else {
			last = op;
			p = &op->next;
		}
	}
	sim.data_tail = last;
	return 0;
}

static int sim_fstat(int fd, struct stat *st)
{
	if (sim.crashed)
		return fail();
	return fstat(fd, st);
}

static int sim_renameat(int olddirfd, const char *oldpath, int newdirfd, const char *newpath)
{
	char from[PATH_MAX], to[PATH_MAX];
	struct name_op *park = NULL;
	struct stat st;
	int ret;

	if (!tick())
		return fail();
	if (absolute_path(olddirfd, oldpath, from) < 0 || absolute_path(newdirfd, newpath, to) < 0)
		return -1;
	/* A rename over an existing name first parks the old file, as an
	 * unlink would, so that both can be undone. */
	if (stat(to, &st) == 0) {
		char held[PATH_MAX];
		snprintf(held, sizeof(held), "%.3000s/held-%llu", sim.holding,
			 (unsigned long long)++sim.held);
		if (rename(to, held) < 0)
			return -1;
		add_name(NAME_UNLINK, to, held);
		park = sim.names_tail;
	}
	ret = rename(from, to);
	if (ret == 0)
		add_name(NAME_RENAME, from, to);
	/* rename(2) replaces atomically, across a crash too (one journal
	 * transaction): a cut never keeps the old file's removal without the
	 * rename. */
	if (ret == 0 && park)
		park->replaced_by_next = true;
	if (ret == 0 && stat(to, &st) == 0)
		TRACE("call %llu rename ino %lu %s -> %s\n", (unsigned long long)sim.calls,
		      (unsigned long)st.st_ino, strrchr(from, '/'), strrchr(to, '/'));
	return ret;
}

static int sim_unlinkat(int dirfd, const char *path, int flags)
{
	char abs[PATH_MAX], held[PATH_MAX];

	if (!tick())
		return fail();
	if (flags & AT_REMOVEDIR)
		return unlinkat(dirfd, path, flags); /* empty directories: durable at once */
	if (absolute_path(dirfd, path, abs) < 0)
		return -1;
	snprintf(held, sizeof(held), "%.3000s/held-%llu", sim.holding, (unsigned long long)++sim.held);
	if (rename(abs, held) < 0)
		return -1;
	add_name(NAME_UNLINK, abs, held);
	return 0;
}

static int sim_mkdirat(int dirfd, const char *path, mode_t mode)
{
	char abs[PATH_MAX];
	int ret;

	if (!tick())
		return fail();
	ret = mkdirat(dirfd, path, mode);
	if (ret == 0 && absolute_path(dirfd, path, abs) == 0)
		add_name(NAME_MKDIR, abs, NULL);
	return ret;
}

static void forget_all(void)
{
	while (sim.data) {
		struct data_op *next = sim.data->next;
		free_data(sim.data);
		sim.data = next;
	}
	sim.data_tail = NULL;
	while (sim.names) {
		struct name_op *next = sim.names->next;
		if (sim.names->kind == NAME_UNLINK)
			unlink(sim.names->path2);
		free_name(sim.names);
		sim.names = next;
	}
	sim.names_tail = NULL;
}

static int sim_syncfs(int fd)
{
	(void)fd;
	if (!tick())
		return fail();
	forget_all();
	return 0;
}

/* The calls the simulation changes; the rest (listings, metadata, locks,
 * dup) are the system's: the files are real. */
static struct io_ops sim_ops;

const struct io_ops *simdisk_install(const char *holding_dir)
{
	memset(&sim, 0, sizeof(sim));
	snprintf(sim.holding, sizeof(sim.holding), "%s", holding_dir);
	sim_ops = *io_system();
	sim_ops.openat = sim_openat;
	sim_ops.close = sim_close;
	sim_ops.pread = sim_pread;
	sim_ops.pwrite = sim_pwrite;
	sim_ops.fsync = sim_fsync;
	sim_ops.ftruncate = sim_ftruncate;
	sim_ops.fstat = sim_fstat;
	sim_ops.renameat = sim_renameat;
	sim_ops.unlinkat = sim_unlinkat;
	sim_ops.mkdirat = sim_mkdirat;
	sim_ops.syncfs = sim_syncfs;
	return &sim_ops;
}

void simdisk_uninstall(void)
{
	forget_all();
}

void simdisk_arm(uint64_t crash_at)
{
	sim.calls = 0;
	sim.crash_at = crash_at;
	sim.crashed = false;
}

uint64_t simdisk_calls(void)
{
	return sim.calls;
}

void simdisk_crash_now(void)
{
	sim.crashed = true;
}

int simdisk_crashed(void)
{
	return sim.crashed;
}

static void undo(struct data_op *op)
{
	if (op->kind == DATA_WRITE) {
		uint64_t kept = op->old_size > op->off ? op->old_size - op->off : 0;
		if (kept > op->len)
			kept = op->len;
		if (kept && pwrite(op->fd, op->old_data, kept, (off_t)op->off) < 0)
			perror("simdisk: undo write");
		if (file_size(op->fd) > op->old_size && ftruncate(op->fd, (off_t)op->old_size) < 0)
			perror("simdisk: undo extend");
	} else {
		if (ftruncate(op->fd, (off_t)op->old_size) < 0)
			perror("simdisk: undo truncate");
		if (op->old_data && pwrite(op->fd, op->old_data, op->old_size - op->new_size,
					   (off_t)op->new_size) < 0)
			perror("simdisk: undo truncate data");
	}
}

/* Writes back a random selection of the op's sectors: the device got some
 * of the cached pages and not others. The newest op may be torn mid-sector. */
static void redo_partly(struct data_op *op, bool newest)
{
	if (op->kind == DATA_TRUNCATE) {
		if (tu_rng_next(&cut_rng) % 2 && ftruncate(op->fd, (off_t)op->new_size) < 0)
			perror("simdisk: redo truncate");
		return;
	}
	uint64_t len = op->len;
	switch (tu_rng_next(&cut_rng) % 4) {
	case 0:
		return; /* nothing reached the disk */
	case 1:
		break; /* all of it did */
	case 2:
		if (newest && len) { /* torn at a random byte */
			len = tu_rng_next(&cut_rng) % len;
			break;
		}
		/* fall through */
	default:
		for (uint64_t s = 0; s < op->len; s += SECTOR) {
			uint64_t n = op->len - s < SECTOR ? op->len - s : SECTOR;
			if (tu_rng_next(&cut_rng) % 2 && pwrite(op->fd, op->new_data + s, n, (off_t)(op->off + s)) < 0)
				perror("simdisk: redo sector");
		}
		return;
	}
	if (len && pwrite(op->fd, op->new_data, len, (off_t)op->off) < 0)
		perror("simdisk: redo write");
}

static void revert_name(struct name_op *op)
{
	switch (op->kind) {
	case NAME_CREATE:
		unlink(op->path);
		break;
	case NAME_MKDIR:
		rmdir(op->path);
		break;
	case NAME_RENAME:
		if (rename(op->path2, op->path) < 0)
			perror("simdisk: revert rename");
		break;
	case NAME_UNLINK:
		if (rename(op->path2, op->path) < 0)
			perror("simdisk: revert unlink");
		break;
	}
}

void simdisk_power_cut(uint64_t seed)
{
	for (struct data_op *op = sim.data; op; op = op->next)
		TRACE("pending %s ino %lu off %llu len %llu\n", op->kind == DATA_WRITE ? "write" : "truncate",
		      (unsigned long)op->ino, (unsigned long long)op->off, (unsigned long long)op->len);
	struct data_op **ops;
	struct name_op **names;
	size_t n = 0, m = 0, k;

	tu_rng_seed(&cut_rng, seed);
	for (struct data_op *op = sim.data; op; op = op->next)
		n++;
	ops = calloc(n ? n : 1, sizeof(*ops));
	n = 0;
	for (struct data_op *op = sim.data; op; op = op->next)
		ops[n++] = op;
	for (size_t i = n; i-- > 0;)
		undo(ops[i]);
	for (size_t i = 0; i < n; i++)
		redo_partly(ops[i], i + 1 == n);
	free(ops);

	for (struct name_op *op = sim.names; op; op = op->next)
		m++;
	names = calloc(m ? m : 1, sizeof(*names));
	m = 0;
	for (struct name_op *op = sim.names; op; op = op->next)
		names[m++] = op;
	/* The journal kept a prefix of the name changes. */
	k = m ? (size_t)(tu_rng_next(&cut_rng) % (m + 1)) : 0;
	if (k > 0 && k < m && names[k - 1]->replaced_by_next)
		k++;
	for (size_t i = m; i-- > k;) {
		TRACE("revert %d %s %s\n", names[i]->kind, names[i]->path, names[i]->path2 ? names[i]->path2 : "");
		revert_name(names[i]);
	}
	free(names);
}

void simdisk_reset(void)
{
	/* Whatever the cut left is now the disk's content: durable. */
	forget_all();
	sim.crashed = false;
	sim.crash_at = 0;
	sim.calls = 0;
}
