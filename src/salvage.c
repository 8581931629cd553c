/*
 * salvage.c - the recovery primitives of salvage.h: copying a range of a
 * pack to the quarantine, moving a whole file there, cutting a torn tail,
 * and rewriting a pack with a chosen set of its records (compaction and
 * repair). Shared by the local backend and fsck.
 */
#include "salvage.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <time.h>

#include "datadir.h"
#include "io.h"
#include "pack.h"

static int quarantine_dir(const struct quarantine *q)
{
	if (q->io->mkdirat(q->dirfd, q->store, 0700) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* The new name in quarantine/<store>/ and that directory's own name in
 * quarantine/ both reach the disk. */
static int quarantine_sync(const struct quarantine *q)
{
	int ret = datadir_fsync_dir(q->io, q->dirfd, q->store);

	if (ret == 0 && q->io->fsync(q->dirfd) < 0)
		ret = -errno;
	return ret;
}

int quarantine_copy(const struct quarantine *q, int fd, const char *file, uint64_t from,
		    uint64_t to, char kept_as[QUARANTINE_NAME_SIZE])
{
	const struct io_ops *io = q->io;
	char name[QUARANTINE_NAME_SIZE];
	int out = -1, ret = quarantine_dir(q);

	snprintf(name, sizeof(name), QUARANTINE_RANGE_FMT, q->store, file, from, to,
		 (long)time(NULL));
	if (ret < 0)
		goto out;
	out = io->openat(q->dirfd, name, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	ret = out < 0 ? -errno : copy_file_bytes(io, fd, from, out, 0, to - from);
	if (ret == 0 && io->fsync(out) < 0)
		ret = -errno;
	if (ret == 0)
		ret = quarantine_sync(q);
out:
	if (out >= 0)
		io->close(out);
	if (ret == 0 && kept_as)
		snprintf(kept_as, QUARANTINE_NAME_SIZE, "%s", name);
	return ret;
}

int quarantine_move(const struct quarantine *q, int store_fd, const char *file,
		    char kept_as[QUARANTINE_NAME_SIZE])
{
	const struct io_ops *io = q->io;
	char name[QUARANTINE_NAME_SIZE];
	int ret = quarantine_dir(q);

	snprintf(name, sizeof(name), QUARANTINE_FILE_FMT, q->store, file, (long)time(NULL));
	if (ret == 0 && io->renameat(store_fd, file, q->dirfd, name) < 0)
		ret = -errno;
	if (ret == 0 && io->fsync(store_fd) < 0)
		ret = -errno;
	if (ret == 0)
		ret = quarantine_sync(q);
	if (ret == 0 && kept_as)
		snprintf(kept_as, QUARANTINE_NAME_SIZE, "%s", name);
	return ret;
}

int pack_cut_tail(const struct quarantine *q, int fd, const char *file, uint64_t at,
		  uint64_t size, char kept_as[QUARANTINE_NAME_SIZE])
{
	const struct io_ops *io = q->io;
	int ret = quarantine_copy(q, fd, file, at, size, kept_as);

	if (ret == 0 && io->ftruncate(fd, (off_t)at) < 0)
		ret = -errno;
	if (ret == 0 && io->fsync(fd) < 0)
		ret = -errno;
	return ret;
}

int pack_rewrite(struct pack_rewrite *rw, struct pack_scan *scan)
{
	const struct io_ops *io = rw->io;
	char final_name[PACK_NAME_SIZE];
	uint8_t header[PACK_HEADER_SIZE];
	struct record_info rec;
	int out, ret;

	rw->size = PACK_HEADER_SIZE;
	rw->kept = rw->tombstones = rw->max_seq = 0;
	rw->renamed = false;
	pack_name(rw->new_id, final_name);
	out = io->openat(rw->store_fd, rw->staging_name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC,
			 0600);
	if (out < 0)
		return -errno;
	pack_header_encode(rw->new_id, header);
	ret = pwrite_full(io, out, header, sizeof(header), 0);
	while (ret == 0) {
		int found = pack_scan_next(scan, &rec);
		if (found == 0)
			break;
		if (found == -EBADMSG && rw->skip_damage)
			continue;
		if (found < 0) {
			ret = found;
			break;
		}
		ret = rw->keep(&rec, scan->fd, rw->arg);
		if (ret <= 0)
			continue;
		uint64_t size = record_end(&rec) - rec.offset;
		ret = copy_file_bytes(io, scan->fd, rec.offset, out, rw->size, size);
		rw->size += size;
		rw->kept++;
		if (rec.kind == RECORD_TOMBSTONE)
			rw->tombstones++;
		if (rec.seq > rw->max_seq)
			rw->max_seq = rec.seq;
	}
	if (ret == 0 && io->fsync(out) < 0)
		ret = -errno;
	if (ret == 0 && (rw->kept || rw->keep_if_empty)) {
		if (io->renameat(rw->store_fd, rw->staging_name, rw->store_fd, final_name) < 0)
			ret = -errno;
		rw->renamed = ret == 0;
		if (ret == 0 && io->fsync(rw->store_fd) < 0)
			ret = -errno;
	}
	io->close(out);
	if (ret < 0 || !rw->renamed) {
		io->unlinkat(rw->store_fd, rw->renamed ? final_name : rw->staging_name, 0);
		rw->renamed = false;
	}
	return ret;
}
