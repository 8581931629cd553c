/*
 * local_meta.c - a store's owner, group and mode in the local backend: the
 * meta file in the store's directory (docs/FORMAT.md, "The store's meta
 * file"; bytes in meta.c), read once when the store is loaded and kept in
 * memory (struct local_store.attr), replaced atomically by store_set_attr:
 * written as meta.tmp, fsynced, renamed over meta, and the directory
 * fsynced. The file is untrusted input: a store without one (a data
 * directory of an earlier blobfs) gets the data directory's owner and group
 * and mode 0755; a damaged one, or one of an unknown version, the data
 * directory's owner and group and mode 0700 (it may have been stricter than
 * 0755: what it said is unknown, so nobody else gets in), with a log line.
 */
#include "local.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>

#include "datadir.h"
#include "io.h"
#include "log.h"
#include "meta.h"
#include "pack.h"

void local_meta_default(const struct local_db *db, bool damaged, struct store_attr *out)
{
	out->uid = db->owner_uid;
	out->gid = db->owner_gid;
	out->mode = damaged ? STORE_MODE_DAMAGED : STORE_MODE_MISSING;
}

int local_meta_read(struct local_db *db, int dir_fd, const char *name, struct store_attr *out)
{
	const struct io_ops *io = db->io;
	uint8_t buf[META_SIZE + 1];
	ssize_t got = -1;
	int fd, ret;

	fd = io->openat(dir_fd, STORE_META, O_RDONLY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (fd < 0 && errno == ENOENT) {
		local_meta_default(db, false, out);
		return 0;
	}
	if (fd >= 0) {
		got = io->pread(fd, buf, sizeof(buf), 0);
		ret = got < 0 ? -errno : meta_decode(buf, (size_t)got, out);
		io->close(fd);
	} else {
		ret = -errno;
	}
	if (ret == 0)
		return 0;
	local_meta_default(db, true, out);
	log_warning("store %s: its %s file is %s; the store is the data directory owner's "
		    "(uid %u, gid %u), mode %04o, until its owner or root sets them again "
		    "(chmod, chown)", name, STORE_META,
		    ret == -ENOTSUP ? "of a version this blobfs does not know" :
		    ret == -EINVAL ? "damaged" : strerror(-ret),
		    (unsigned)out->uid, (unsigned)out->gid, (unsigned)out->mode);
	return 0;
}

int local_meta_write(const struct io_ops *io, int dir_fd, const struct store_attr *attr)
{
	uint8_t buf[META_SIZE];
	int fd, ret;

	meta_encode(attr, buf);
	fd = io->openat(dir_fd, STORE_META_STAGING,
			O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	ret = pwrite_full(io, fd, buf, sizeof(buf), 0);
	if (ret == 0 && io->fsync(fd) < 0)
		ret = -errno;
	io->close(fd);
	if (ret == 0 && io->renameat(dir_fd, STORE_META_STAGING, dir_fd, STORE_META) < 0)
		ret = -errno;
	if (ret == 0 && io->fsync(dir_fd) < 0)
		ret = -errno;
	if (ret < 0)
		io->unlinkat(dir_fd, STORE_META_STAGING, 0);
	return ret;
}

int local_store_get_attr(struct store *base, struct store_attr *out)
{
	struct local_store *store = (struct local_store *)base;
	int ret = -ENOENT;

	pthread_mutex_lock(&store->lock);
	if (!store->base.destroyed) {
		*out = store->attr;
		ret = 0;
	}
	pthread_mutex_unlock(&store->lock);
	return ret;
}

/* The file first, then memory: on failure nothing changed. Not under
 * store->lock (saves would wait for the fsyncs); blobdb.c serializes the
 * calls. A store removed meanwhile: its directory is gone (-ENOENT) or in
 * the trash, where the write is harmless. */
int local_store_set_attr(struct store *base, const struct store_attr *attr)
{
	struct local_store *store = (struct local_store *)base;
	const struct io_ops *io = store->db->io;
	int dir_fd, ret;

	if (store_destroyed(base))
		return -ENOENT;
	dir_fd = io->openat(store->db->stores_fd, base->name,
			    O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (dir_fd < 0)
		return errno == ENOENT ? -ENOENT : -errno;
	ret = local_meta_write(io, dir_fd, attr);
	io->close(dir_fd);
	if (ret < 0) {
		log_error("store %s: cannot replace its %s file: %s", base->name, STORE_META,
			  strerror(-ret));
		return ret;
	}
	pthread_mutex_lock(&store->lock);
	store->attr = *attr;
	pthread_mutex_unlock(&store->lock);
	return 0;
}
