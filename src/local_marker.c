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

/* The marker file has two slots written in turn: a write torn by a power cut
 * spoils one, and the other still vouches for what it did. */
int durable_marker_write(struct local_store *store, uint64_t seq)
{
	const struct io_ops *io = store->db->io;
	uint8_t buf[MARKER_SIZE];
	char path[PATH_SIZE];
	int fd, ret;

	marker_encode(seq, buf);
	ret = local_store_path(store, STORE_MARKER, path);
	if (ret < 0)
		return ret;
	fd = io->openat(store->db->stores_fd, path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = pwrite_full(io, fd, buf, sizeof(buf), (uint64_t)store->marker_slot * MARKER_SIZE);
	store->marker_slot ^= 1;
	if (ret == 0 && io->fsync(fd) < 0)
		ret = -errno;
	io->close(fd);
	return ret;
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
