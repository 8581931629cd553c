/*
 * local_marker.c - the durable marker of a store (docs/FORMAT.md): the
 * highest record sequence number known to be on stable storage, written in
 * two slots so that a torn rewrite of one never loses both.
 */
#include "local.h"

#include <errno.h>
#include <sys/file.h>

#include "io.h"
#include "log.h"
#include "datadir.h"
#include "pack.h"

/* Writes seq into slot *slot of the marker file at path (relative to dirfd),
 * then fsyncs it; once the file is open, *slot moves to the other slot
 * whatever happens next. */
static int marker_write_slot(const struct io_ops *io, int dirfd, const char *path,
			     unsigned *slot, uint64_t seq)
{
	uint8_t buf[MARKER_SIZE];
	int fd, ret;

	marker_encode(seq, buf);
	fd = io->openat(dirfd, path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = pwrite_full(io, fd, buf, sizeof(buf), (uint64_t)*slot * MARKER_SIZE);
	*slot ^= 1;
	if (ret == 0 && io->fsync(fd) < 0)
		ret = -errno;
	io->close(fd);
	return ret;
}

/* The marker file has two slots written in turn: a write torn by a power cut
 * spoils one, and the other still vouches for what it did. */
int durable_marker_write(struct local_store *store, uint64_t seq)
{
	char path[PATH_SIZE];
	int ret;

	ret = local_store_path(store, STORE_MARKER, path);
	if (ret < 0)
		return ret;
	return marker_write_slot(store->db->io, store->db->stores_fd, path, &store->marker_slot,
				 seq);
}

int durable_marker_create(struct local_store *store, int dir_fd)
{
	store->marker_slot = 0;
	return marker_write_slot(store->db->io, dir_fd, STORE_MARKER, &store->marker_slot, 0);
}

/* Reads the store's durable marker; a missing or damaged one vouches for
 * nothing, so that every record gets its checksums read. */
void durable_marker_read(struct local_store *store)
{
	const struct io_ops *io = store->db->io;
	uint8_t buf[2 * MARKER_SIZE];
	char path[PATH_SIZE];
	ssize_t got = 0;
	int fd;

	store->durable_seq = 0;
	store->marker_lost = true;
	if (local_store_path(store, STORE_MARKER, path) < 0)
		return;
	fd = io->openat(store->db->stores_fd, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd >= 0)
		got = io->pread(fd, buf, sizeof(buf), 0);
	for (unsigned slot = 0; slot < 2; slot++) {
		uint64_t seq;
		if (got >= (ssize_t)((slot + 1) * MARKER_SIZE) &&
		    marker_decode(buf + slot * MARKER_SIZE, &seq) == 0 &&
		    (store->marker_lost || seq > store->durable_seq)) {
			store->durable_seq = seq;
			store->marker_lost = false;
			store->marker_slot = slot ^ 1; /* overwrite the older one next */
		}
	}
	if (store->marker_lost)
		log_warning("store %s: durable marker %s; checking every record, and damage is "
			    "skipped rather than cut", store->base.name, fd < 0 ? "missing" : "unreadable");
	if (fd >= 0)
		io->close(fd);
}
