/*
 * local_db.c - the local backend's database: opening a data directory
 * (its lock, its subdirectories, the stores found in it), closing it, the
 * stores' creation and removal, the space reserve, and the table of
 * operations that makes all of local_*.c a backend (backend.h).
 *
 * Layout (docs/FORMAT.md, names in datadir.h): DATADIR/lock,
 * DATADIR/stores/<name>/ holding the store's pack files and the staging
 * files of blobs being written, and DATADIR/trash/ where a destroyed store is
 * moved (atomically) before its files are removed. Each store keeps its index
 * in memory, rebuilt from its packs (or its checkpoint) when the database is
 * opened: the record with the highest sequence number for a hash decides
 * whether the blob exists.
 */
#include "local.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <stdio.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "index.h"
#include "io.h"
#include "log.h"
#include "datadir.h"
#include "pack.h"

static void local_db_note_pid(struct blobdb *base);

/* -ENOSPC when writing need more bytes would eat into the reserve that
 * deletes and compaction live on. */
int local_check_space(struct local_db *db, uint64_t need)
{
	struct statvfs st;
	uint64_t avail;

	if (db->min_free == 0 || db->io->fstatvfs(db->stores_fd, &st) < 0)
		return 0;
	avail = (uint64_t)st.f_bavail * st.f_frsize;
	return avail < need || avail - need < db->min_free ? -ENOSPC : 0;
}

/* "<store>/<file>" relative to stores_fd. */
int local_store_path(const struct local_store *store, const char *file, char out[PATH_SIZE])
{
	int n = snprintf(out, PATH_SIZE, "%s/%s", store->base.name, file);
	return n < 0 || n >= PATH_SIZE ? -ENAMETOOLONG : 0;
}

int local_pack_path(const struct local_store *store, uint32_t pack_id, char out[PATH_SIZE])
{
	char name[PACK_NAME_SIZE];

	pack_name(pack_id, name);
	return local_store_path(store, name, out);
}

static int local_store_new(struct local_db *db, const char *name, struct local_store **out)
{
	struct local_store *store = calloc(1, sizeof(*store));
	int ret = -ENOMEM;

	if (!store)
		goto out;
	store->db = db;
	store->serial = __atomic_add_fetch(&db->store_serials, 1, __ATOMIC_RELAXED);
	store->active_fd = -1;
	store->next_seq = 1;
	store->next_pack_id = 1; /* 0 means no pack */
	ret = store_init(&store->base, &db->base, name);
	if (ret < 0)
		goto out;
	ret = index_new(&store->index);
	if (ret < 0)
		goto out;
	pthread_mutex_init(&store->lock, NULL);
	pthread_mutex_init(&store->flush_lock, NULL);
out:
	if (ret < 0 && store) {
		store_fini(&store->base);
		free(store);
		store = NULL;
	}
	*out = store;
	return ret;
}

static void local_store_free(struct store *base)
{
	struct local_store *store = (struct local_store *)base;
	const struct io_ops *io = store->db->io;

	for (size_t i = 0; i < store->sync_fd_count; i++)
		io->close(store->sync_fds[i]);
	free(store->sync_fds);
	if (store->active_fd >= 0)
		io->close(store->active_fd);
	index_free(store->index);
	pthread_mutex_destroy(&store->lock);
	pthread_mutex_destroy(&store->flush_lock);
	free(store->packs);
	store_fini(&store->base);
	free(store);
}

static int empty_trash_entry(const char *name, unsigned char type, void *arg)
{
	struct local_db *db = arg;
	int ret = datadir_remove_flat(db->io, db->trash_fd, name);

	(void)type;
	if (ret < 0)
		log_warning("cannot empty %s/%s: %s", DATADIR_TRASH, name, strerror(-ret));
	return 0;
}

/* What a crash left in the trash (destroyed stores) goes now. */
static void empty_trash(struct local_db *db)
{
	int ret = db->io->listdir(db->trash_fd, ".", empty_trash_entry, db);

	if (ret < 0)
		log_warning("cannot list %s/%s: %s", db->base.location, DATADIR_TRASH,
			    strerror(-ret));
}

static int local_db_lock(struct local_db *db)
{
	const struct io_ops *io = db->io;
	db->lock_fd = io->openat(db->dirfd, DATADIR_LOCK, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (db->lock_fd < 0)
		return -errno;
	if (io->flock(db->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (!db->base.opts.read_only)
		local_db_note_pid(&db->base);
	return 0;
}

static void local_db_note_pid(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;
	const struct io_ops *io = db->io;
	char line[32];
	int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());

	if (io->ftruncate(db->lock_fd, 0) == 0 && io->pwrite(db->lock_fd, line, (size_t)n, 0) == n)
		return;
	log_warning("cannot record the pid in %s/%s: %s", db->base.location, DATADIR_LOCK,
		    strerror(errno));
}

long blobdb_lock_holder(const char *datadir)
{
	const struct io_ops *io = io_system();
	char path[PATH_MAX], line[32] = "";
	long pid = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/%s", datadir, DATADIR_LOCK);
	fd = io->openat(AT_FDCWD, path, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return 0;
	if (io->pread(fd, line, sizeof(line) - 1, 0) > 0)
		pid = strtol(line, NULL, 10);
	io->close(fd);
	return pid;
}

static int load_store_entry(const char *name, unsigned char type, void *arg)
{
	struct local_db *db = arg;
	const struct io_ops *io = db->io;
	struct local_store *store;
	int ret, dir_fd;

	if (!strncmp(name, STORE_CREATING_PREFIX, strlen(STORE_CREATING_PREFIX))) {
		/* A creation a crash interrupted: the store never existed. */
		ret = datadir_remove_flat(io, db->stores_fd, name);
		if (ret < 0)
			log_warning("cannot remove %s/%s/%s: %s", db->base.location, DATADIR_STORES,
				    name, strerror(-ret));
		return 0;
	}
	if (name[0] == '.')
		return 0;
	if (store_name_check(name, strlen(name)) < 0) {
		log_warning("ignoring %s/%s/%s: not a store name", db->base.location,
			    DATADIR_STORES, name);
		return 0;
	}
	/* Never followed: a symbolic link in stores/ is not a store, whatever
	 * the file system says its type is. */
	dir_fd = type == DT_DIR || type == DT_UNKNOWN ?
			 io->openat(db->stores_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0) :
			 -1;
	if (dir_fd < 0) {
		log_warning("ignoring %s/%s/%s: not a directory", db->base.location, DATADIR_STORES,
			    name);
		return 0;
	}
	ret = local_store_new(db, name, &store);
	if (ret == 0)
		ret = local_meta_read(db, dir_fd, name, &store->attr);
	io->close(dir_fd);
	if (ret < 0) {
		if (store)
			local_store_free(&store->base);
		return ret;
	}
	ret = recover_store(store);
	if (ret == 0)
		ret = blobdb_catalog_add(&db->base, &store->base);
	if (ret < 0)
		local_store_free(&store->base);
	return ret;
}

static int local_db_load_stores(struct local_db *db)
{
	return db->io->listdir(db->stores_fd, ".", load_store_entry, db);
}

/* datadir_check_path on datadir's absolute path (a data directory not made
 * yet: its parent's, and its name). Logs why it refuses. */
static int check_location(const struct io_ops *io, const char *datadir)
{
	char why[PATH_MAX + 160], *path = realpath(datadir, NULL);
	int ret;

	if (!path && errno == ENOENT) {
		/* Not made yet: its parent must exist (it is made without -p). */
		char *copy = strdup(datadir), *slash, *parent;
		const char *dir = ".", *base;
		if (!copy)
			return -ENOMEM;
		while (strlen(copy) > 1 && copy[strlen(copy) - 1] == '/')
			copy[strlen(copy) - 1] = '\0';
		slash = strrchr(copy, '/');
		base = slash ? slash + 1 : copy;
		if (slash == copy) {
			dir = "/";
		} else if (slash) {
			*slash = '\0';
			dir = copy;
		}
		parent = realpath(dir, NULL);
		if (parent) {
			path = malloc(strlen(parent) + strlen(base) + 2);
			if (path)
				sprintf(path, "%s%s%s", parent, strcmp(parent, "/") ? "/" : "", base);
			free(parent);
		}
		free(copy);
	}
	if (!path) {
		ret = -errno;
		log_error("cannot check data directory %s: %s", datadir, strerror(-ret));
		return ret;
	}
	ret = datadir_check_path(io, path, (unsigned)geteuid(), why, sizeof(why));
	if (ret == -EPERM)
		log_error("refusing data directory %s: %s; other users could change what blobfs "
			  "reads and writes there (chmod go-w, or choose another place)", datadir, why);
	else if (ret < 0)
		log_error("cannot check data directory %s: %s", datadir, strerror(-ret));
	free(path);
	return ret;
}

int blobdb_check_location(const char *location)
{
	if (!location || !*location)
		return -EINVAL;
	/* An S3 mount's cache directory is checked when it is opened. */
	if (!strncmp(location, MEMORY_LOCATION, strlen(MEMORY_LOCATION)) ||
	    !strncmp(location, S3_LOCATION_PREFIX, strlen(S3_LOCATION_PREFIX)))
		return 0;
	return check_location(io_system(), location);
}

static int local_db_open(const char *datadir, const struct blobdb_options *opts,
			 struct blobdb **out)
{
	struct local_db *db = calloc(1, sizeof(*db));
	const struct io_ops *io;
	int ret = -ENOMEM;

	if (!db)
		goto out;
	db->dirfd = db->stores_fd = db->trash_fd = db->quarantine_fd = db->lock_fd = -1;
	/* Set first: closing a half-opened database goes through it. */
	db->io = opts && opts->io ? opts->io : io_system();
	io = db->io;
	pthread_mutex_init(&db->flush_lock, NULL);
	pthread_cond_init(&db->flush_wake, NULL);
	pthread_cond_init(&db->flush_done, NULL);
	pthread_cond_init(&db->compact_wake, NULL);
	pthread_mutex_init(&db->digest_lock, NULL);
	pthread_cond_init(&db->digest_wake, NULL);
	pthread_cond_init(&db->digest_released, NULL);
	pthread_mutex_init(&db->checked_lock, NULL);
	{
		long cpus = sysconf(_SC_NPROCESSORS_ONLN);
		db->ahead_max = cpus < 1 ? 1 : (unsigned)cpus;
	}
	ret = blobdb_init(&db->base, &local_backend, datadir, opts);
	db->base.blob_max = RECORD_LENGTH_MAX;
	if (ret < 0)
		goto out;
	ret = check_location(io, datadir);
	if (ret < 0)
		goto out;
	if (io->mkdirat(AT_FDCWD, datadir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		log_error("cannot create data directory %s: %s", datadir, strerror(-ret));
		goto out;
	}
	db->dirfd = io->openat(AT_FDCWD, datadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (db->dirfd >= 0) {
		/* Messages and the mount's fsname name it absolutely (a daemon's
		 * working directory is /). realpath only reads names, for
		 * messages: the one call not made through the io table. */
		char *absolute = realpath(datadir, NULL);
		if (absolute) {
			free(db->base.location);
			db->base.location = absolute;
		}
	}
	if (db->dirfd < 0) {
		ret = -errno;
		log_error("cannot open data directory %s: %s", datadir, strerror(-ret));
		goto out;
	}
	{
		struct stat st;
		if (io->fstat(db->dirfd, &st) < 0) {
			ret = -errno;
			log_error("cannot stat data directory %s: %s", datadir, strerror(-ret));
			goto out;
		}
		db->owner_uid = st.st_uid;
		db->owner_gid = st.st_gid;
	}
	ret = local_db_lock(db);
	if (ret < 0) {
		if (ret == -EBUSY)
			log_error("%s is in use by another blobfs (pid %ld holds %s/lock)", datadir,
				  blobdb_lock_holder(datadir), datadir);
		else
			log_error("cannot lock %s: %s", datadir, strerror(-ret));
		goto out;
	}
	ret = datadir_open_subdir(io, db->dirfd, DATADIR_STORES, &db->stores_fd);
	if (ret == 0)
		ret = datadir_open_subdir(io, db->dirfd, DATADIR_TRASH, &db->trash_fd);
	if (ret == 0)
		ret = datadir_open_subdir(io, db->dirfd, DATADIR_QUARANTINE, &db->quarantine_fd);
	if (ret < 0) {
		log_error("cannot set up %s: %s", datadir, strerror(-ret));
		goto out;
	}
	empty_trash(db);
	/* Offsets in the index have 39 bits. */
	if (db->base.opts.pack_size_max > INDEX_OFFSET_MAX / 2)
		db->base.opts.pack_size_max = INDEX_OFFSET_MAX / 2;
	/* A blob below large_blob_min is saved from memory (read back whole and
	 * framed in one buffer): bounded, so the daemon's memory never grows
	 * with what a user sets. */
	if (db->base.opts.large_blob_min > LARGE_BLOB_MIN_MAX)
		db->base.opts.large_blob_min = LARGE_BLOB_MIN_MAX;
	/* The writers' memory budget (local_staging.c); the effective value
	 * shows in the options. */
	if (db->base.opts.writer_memory_max == 0)
		db->base.opts.writer_memory_max = WRITER_MEMORY_DEFAULT;
	db->writer_memory_max = db->base.opts.writer_memory_max;
	db->min_free = db->base.opts.min_free;
	if (db->min_free == MIN_FREE_AUTO) {
		struct statvfs st;
		uint64_t total = io->fstatvfs(db->stores_fd, &st) == 0 ?
					 (uint64_t)st.f_blocks * st.f_frsize : 0;
		db->min_free = total / 100 < (UINT64_C(64) << 20) ? total / 100 : UINT64_C(64) << 20;
	}
	ret = local_db_load_stores(db);
	if (ret < 0)
		log_error("cannot load the stores of %s: %s", datadir, strerror(-ret));
out:
	if (ret < 0 && db) {
		blobdb_close(&db->base);
		db = NULL;
	}
	*out = db ? &db->base : NULL;
	return ret;
}

static int local_db_stop(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;
	const struct io_ops *io = db->io;
	int ret = 0;

	local_threads_stop(db);
	if (db->stores_fd >= 0) {
		ret = local_db_sync(&db->base);
		/* A checkpoint that cannot be written (a full disk) only makes the
		 * next mount scan the packs: logged, not a failure. */
		if (ret == 0 && !db->base.opts.read_only)
			blobdb_each_store(&db->base, ckpt_write_one, NULL);
		/* Removed files and the trash too: everything we changed. */
		if (!db->base.opts.read_only && io->syncfs(db->dirfd) < 0)
			log_error("%s: syncfs: %s", db->base.location, strerror(errno));
	}
	return ret;
}

static void local_db_free(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;
	const struct io_ops *io = db->io;

	if (db->stores_fd >= 0)
		io->close(db->stores_fd);
	if (db->trash_fd >= 0)
		io->close(db->trash_fd);
	if (db->quarantine_fd >= 0)
		io->close(db->quarantine_fd);
	if (db->lock_fd >= 0)
		io->close(db->lock_fd); /* releases the flock */
	if (db->dirfd >= 0)
		io->close(db->dirfd);
	pthread_mutex_destroy(&db->flush_lock);
	pthread_cond_destroy(&db->flush_wake);
	pthread_cond_destroy(&db->flush_done);
	pthread_cond_destroy(&db->compact_wake);
	pthread_mutex_destroy(&db->digest_lock);
	pthread_cond_destroy(&db->digest_wake);
	pthread_cond_destroy(&db->digest_released);
	local_checked_free(db);
	pthread_mutex_destroy(&db->checked_lock);
	free(db);
}

/* A store is made whole under a name the loader skips (.creating-*): its
 * meta file and durable marker written and synced, then renamed to its name,
 * so that after a crash it exists with its owner and mode or not at all. */
static int local_store_create(struct blobdb *base, const char *name,
			      const struct store_attr *attr, struct store **out)
{
	struct local_db *db = (struct local_db *)base;
	const struct io_ops *io = db->io;
	struct local_store *store = NULL;
	char staging[64];
	bool made = false;
	int dir_fd = -1, ret = local_store_new(db, name, &store);

	if (ret < 0)
		goto out;
	store->attr = *attr;
	snprintf(staging, sizeof(staging), STORE_CREATING_FMT, (long)getpid(),
		 __atomic_add_fetch(&db->staging_counter, 1, __ATOMIC_RELAXED));
	if (io->mkdirat(db->stores_fd, staging, 0700) < 0) {
		ret = -errno;
		goto out;
	}
	made = true;
	dir_fd = io->openat(db->stores_fd, staging, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC,
			    0);
	ret = dir_fd < 0 ? -errno : 0;
	/* A store has a durable marker from its birth: a missing one is then
	 * always damage, never a store that simply has not flushed yet. */
	if (ret == 0)
		ret = local_meta_write(io, dir_fd, attr); /* fsyncs the directory */
	if (ret == 0)
		ret = durable_marker_create(store, dir_fd);
	if (ret == 0 && io->fsync(dir_fd) < 0)
		ret = -errno;
	if (ret == 0 && io->renameat(db->stores_fd, staging, db->stores_fd, name) < 0)
		ret = -errno;
	if (ret == 0) {
		made = false;
		if (io->fsync(db->stores_fd) < 0) {
			/* It may or may not be there after a crash: it goes. */
			ret = -errno;
			datadir_remove_flat(io, db->stores_fd, name);
		}
	}
out:
	if (dir_fd >= 0)
		io->close(dir_fd);
	if (ret < 0)
		log_error("cannot create store %s: %s", name, strerror(-ret));
	if (made)
		datadir_remove_flat(io, db->stores_fd, staging);
	if (ret < 0 && store) {
		local_store_free(&store->base);
		store = NULL;
	}
	*out = store ? &store->base : NULL;
	return ret;
}

static int local_store_remove(struct store *base, bool only_if_empty)
{
	struct local_store *store = (struct local_store *)base;
	struct local_db *db = store->db;
	const struct io_ops *io = db->io;
	int ret = 0;

	pthread_mutex_lock(&store->lock);
	if (only_if_empty && index_count(store->index) > 0) {
		ret = -ENOTEMPTY;
		goto out;
	}
	/* The rename is the commit point: after it the store is gone even if we
	 * crash before its files are removed (the trash is emptied at open). */
	snprintf(store->trash_name, sizeof(store->trash_name), TRASH_STORE_FMT,
		 (long)getpid(), __atomic_add_fetch(&db->staging_counter, 1, __ATOMIC_RELAXED));
	if (io->renameat(db->stores_fd, store->base.name, db->trash_fd, store->trash_name) < 0) {
		ret = -errno;
		log_error("cannot destroy store %s: %s", store->base.name, strerror(-ret));
		goto out;
	}
	__atomic_store_n(&store->base.destroyed, true, __ATOMIC_RELEASE);
	if (store->active_fd >= 0) {
		io->close(store->active_fd);
		store->active_fd = -1;
	}
	if (io->fsync(db->stores_fd) < 0 || io->fsync(db->trash_fd) < 0)
		log_warning("store %s: syncing its removal: %s", store->base.name, strerror(errno));
out:
	pthread_mutex_unlock(&store->lock);
	return ret;
}

static void local_store_purge(struct store *base)
{
	struct local_store *store = (struct local_store *)base;
	const struct io_ops *io = store->db->io;
	int ret = datadir_remove_flat(io, store->db->trash_fd, store->trash_name);

	if (ret < 0)
		log_warning("store %s: its files stay in trash/%s until the next mount: %s",
			    store->base.name, store->trash_name, strerror(-ret));
}

const struct backend_ops local_backend = {
	.name = "local",
	.db_open = local_db_open,
	.db_start = local_db_start,
	.db_stop = local_db_stop,
	.db_free = local_db_free,
	.db_note_pid = local_db_note_pid,
	.db_sync = local_db_sync,
	.db_compact = local_db_compact,
	.db_checkpoint = local_db_checkpoint,
	.db_statfs = local_db_statfs,
	.db_writer_memory = local_db_writer_memory,
	.store_create = local_store_create,
	.store_get_attr = local_store_get_attr,
	.store_set_attr = local_store_set_attr,
	.store_remove = local_store_remove,
	.store_purge = local_store_purge,
	.store_free = local_store_free,
	.store_sync = local_store_sync,
	.store_stats = local_store_stats,
	.store_compact = local_store_compact,
	.blob_info = local_blob_info,
	.blob_delete = local_blob_delete,
	.blob_list_batch = local_blob_list_batch,
	.blob_count = local_blob_count,
	.blob_save = local_blob_save,
	.reader_open = local_reader_open,
	.reader_read = local_reader_read,
	.reader_close = local_reader_close,
	.writer_new = local_writer_new,
	.writer_write = local_writer_write,
	.writer_read = local_writer_read,
	.writer_truncate = local_writer_truncate,
	.writer_size = local_writer_size,
	.writer_commit = local_writer_commit,
	.writer_free = local_writer_free,
};
