/*
 * store.c - the blob database on a data directory.
 *
 * Layout (docs/FORMAT.md): DATADIR/lock, DATADIR/stores/<name>/ holding the
 * store's pack files and the staging files of blobs being written, and
 * DATADIR/trash/ where a destroyed store is moved (atomically) before its
 * files are removed. Each store keeps its index in memory, rebuilt from its
 * packs when the database is opened: the record with the highest sequence
 * number for a hash decides whether the blob exists.
 *
 * Small blobs are appended to the store's active pack; a blob of
 * large_blob_min bytes or more is written straight into a staging file laid
 * out as a one-record pack and renamed into place, so its bytes are written
 * once.
 */
#include "store.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "crc32c.h"
#include "io.h"
#include "hash.h"
#include "index.h"
#include "log.h"
#include "pack.h"

/* Staging files hold the data where a one-record pack would: after the pack
 * header and the record header, both written at commit. */
#define STAGING_DATA_OFFSET (PACK_HEADER_SIZE + RECORD_HEADER_SIZE)
#define COPY_BUFFER_SIZE (1u << 20)
#define PATH_SIZE 512

struct pack_info {
	uint32_t id;
	uint64_t size;       /* bytes in the file */
	uint64_t live_count; /* blob records the index points to */
	uint64_t live_bytes; /* their record sizes */
	uint64_t tombstone_count;
};

struct store {
	struct blobdb *db;
	char *name;
	unsigned refcount; /* guarded by db->lock */
	bool destroyed;    /* guarded by lock */

	pthread_mutex_t lock;
	struct index *index;
	uint64_t next_seq;
	uint32_t next_pack_id;
	struct pack_info *packs; /* sorted by id */
	size_t pack_count, pack_capacity;
	int active_fd; /* the pack small blobs are appended to, or -1 */
	uint32_t active_id;
};

struct blobdb {
	char *path;
	struct blobdb_options opts;
	int dirfd, stores_fd, trash_fd, lock_fd;
	pthread_mutex_t lock;
	struct store **stores; /* sorted by name */
	size_t store_count, store_capacity;
	uint64_t staging_counter;
};

struct blob_reader {
	struct store *store;
	int fd;
	uint64_t data_offset;
	uint64_t length;
	uint32_t pack_id;
	uint8_t hash[BLOBFS_HASH_SIZE];
};

struct blob_writer {
	struct store *store;
	pthread_mutex_t lock;
	int fd; /* staging file, or -1 once it became a pack */
	char staging_name[64];
	uint64_t size;
	bool dirty; /* changed since the last commit */
	bool committed;
	uint8_t committed_hash[BLOBFS_HASH_SIZE];

	/* The digest of [0, digested): SHA-256 and per-chunk CRC32Cs. */
	struct hasher *hasher;
	uint64_t digested;
	uint32_t chunk_crc; /* of the partial chunk at the end */
	uint32_t *crcs;     /* of the complete chunks */
	size_t crc_capacity;
};

/*
 * The blob-db statuses at the API boundary: whatever else the file system
 * said (EPERM from an immutable file, EROFS, EBADF...) is an internal error,
 * already logged with its real cause where it happened.
 */
static int to_status(int ret)
{
	switch (ret) {
	case 0:
	case -ENOENT:
	case -EEXIST:
	case -EINVAL:
	case -ENOSPC:
	case -EIO:
	case -ENOTEMPTY:
	case -EBUSY:
	case -EFBIG:
	case -ENOMEM:
		return ret;
	case -EDQUOT:
		return -ENOSPC;
	default:
		return ret < 0 ? -EIO : ret;
	}
}

void blobdb_options_default(struct blobdb_options *opts)
{
	memset(opts, 0, sizeof(*opts));
	opts->pack_size_max = PACK_SIZE_MAX_DEFAULT;
	opts->large_blob_min = LARGE_BLOB_MIN_DEFAULT;
}

const char *blobdb_path(const struct blobdb *db)
{
	return db->path;
}

int store_name_check(const char *name, size_t len)
{
	if (len == 0 || len > 255 || name[0] == '.' || memchr(name, '/', len) ||
	    memchr(name, '\0', len))
		return -EINVAL;
	return 0;
}

/* "<store>/<file>" relative to stores_fd. */
static int store_path(const struct store *store, const char *file, char out[PATH_SIZE])
{
	int n = snprintf(out, PATH_SIZE, "%s/%s", store->name, file);
	return n < 0 || n >= PATH_SIZE ? -ENAMETOOLONG : 0;
}

static int store_pack_path(const struct store *store, uint32_t pack_id, char out[PATH_SIZE])
{
	char name[PACK_NAME_SIZE];

	pack_name(pack_id, name);
	return store_path(store, name, out);
}

static int fsync_dir_at(int dirfd, const char *path)
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

/* ---- the pack table of a store ---- */

static struct pack_info *pack_find(struct store *store, uint32_t id)
{
	size_t lo = 0, hi = store->pack_count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (store->packs[mid].id == id)
			return &store->packs[mid];
		if (store->packs[mid].id < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

static int pack_add(struct store *store, uint32_t id, uint64_t size)
{
	size_t i = store->pack_count;

	if (store->pack_count == store->pack_capacity) {
		size_t capacity = store->pack_capacity ? 2 * store->pack_capacity : 16;
		struct pack_info *packs = realloc(store->packs, capacity * sizeof(*packs));
		if (!packs)
			return -ENOMEM;
		store->packs = packs;
		store->pack_capacity = capacity;
	}
	while (i > 0 && store->packs[i - 1].id > id) {
		store->packs[i] = store->packs[i - 1];
		i--;
	}
	store->packs[i] = (struct pack_info){ .id = id, .size = size };
	store->pack_count++;
	if (id >= store->next_pack_id)
		store->next_pack_id = id + 1;
	return 0;
}

static void pack_remove(struct store *store, uint32_t id)
{
	struct pack_info *p = pack_find(store, id);

	if (!p)
		return;
	memmove(p, p + 1, (size_t)(store->packs + store->pack_count - (p + 1)) * sizeof(*p));
	store->pack_count--;
}

static void pack_account(struct store *store, const struct index_entry *e, int sign)
{
	struct pack_info *p = pack_find(store, e->pack_id);
	uint64_t bytes = record_size(e->length, e->chunk_shift);

	if (!p)
		return;
	if (sign > 0) {
		p->live_count++;
		p->live_bytes += bytes;
	} else {
		p->live_count--;
		p->live_bytes -= bytes;
	}
}

/* ---- loading a store from its packs ---- */

static int compare_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

/* Applies one record to the index being rebuilt: the newest seq wins. */
static int store_replay_record(struct store *store, uint32_t pack_id,
			       const struct record_info *rec)
{
	struct index_entry old, entry = {
		.offset = rec->offset,
		.length = rec->length,
		.seq = rec->seq,
		.pack_id = pack_id,
		.kind = (uint8_t)rec->kind,
		.chunk_shift = (uint8_t)rec->chunk_shift,
	};

	memcpy(entry.hash, rec->hash, BLOBFS_HASH_SIZE);
	if (rec->seq >= store->next_seq)
		store->next_seq = rec->seq + 1;
	if (index_lookup(store->index, rec->hash, &old) == 0 && old.seq >= rec->seq)
		return 0;
	return index_put(store->index, &entry);
}

static int store_scan_pack(struct store *store, uint32_t pack_id, bool newest)
{
	char path[PATH_SIZE], hex[HASH_HEX_SIZE + 1];
	struct pack_scan scan;
	struct record_info rec;
	uint64_t tombstones = 0;
	int fd = -1, ret;

	ret = store_pack_path(store, pack_id, path);
	if (ret < 0)
		goto out;
	fd = io->openat(store->db->stores_fd, path, (newest ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
	if (fd < 0) {
		ret = -errno;
		log_error("store %s: cannot open %s: %s", store->name, path, strerror(-ret));
		goto out;
	}
	ret = pack_scan_open(&scan, fd, pack_id);
	if (ret < 0) {
		/* Without a valid header nothing in the file can be trusted to be
		 * a pack of this store; leave it for fsck and keep going. */
		log_error("store %s: %s has no valid pack header; ignoring it (run blobfs fsck)",
			  store->name, path);
		ret = 0;
		goto out;
	}
	while ((ret = pack_scan_next(&scan, &rec)) != 0) {
		if (ret == -EBADMSG) {
			if (scan.bad_end == scan.file_size && newest) {
				log_warning("store %s: %s: torn tail at offset %" PRIu64
					    " (%" PRIu64 " bytes) cut off",
					    store->name, path, scan.bad_start,
					    scan.file_size - scan.bad_start);
				if (io->ftruncate(fd, (off_t)scan.bad_start) < 0) {
					ret = -errno;
					log_error("store %s: cannot truncate %s: %s", store->name,
						  path, strerror(-ret));
					goto out;
				}
				scan.file_size = scan.bad_start;
			} else {
				log_error("store %s: %s: damaged bytes %" PRIu64 "..%" PRIu64
					  " skipped (run blobfs fsck)",
					  store->name, path, scan.bad_start, scan.bad_end);
			}
			continue;
		}
		if (ret < 0) {
			log_error("store %s: reading %s: %s", store->name, path, strerror(-ret));
			goto out;
		}
		if (rec.kind == RECORD_TOMBSTONE)
			tombstones++;
		ret = store_replay_record(store, pack_id, &rec);
		if (ret < 0) {
			hash_to_hex(rec.hash, hex);
			log_error("store %s: indexing %s: %s", store->name, hex, strerror(-ret));
			goto out;
		}
	}
	ret = pack_add(store, pack_id, scan.file_size);
	if (ret == 0)
		pack_find(store, pack_id)->tombstone_count = tombstones;
out:
	if (fd >= 0)
		io->close(fd);
	return ret;
}

struct tombstone_list {
	uint8_t (*hashes)[BLOBFS_HASH_SIZE];
	size_t count, capacity;
};

static int collect_tombstone(const struct index_entry *e, void *arg)
{
	struct tombstone_list *list = arg;

	if (e->kind != RECORD_TOMBSTONE)
		return 0;
	if (list->count == list->capacity) {
		size_t capacity = list->capacity ? 2 * list->capacity : 64;
		void *hashes = realloc(list->hashes, capacity * BLOBFS_HASH_SIZE);
		if (!hashes)
			return -ENOMEM;
		list->hashes = hashes;
		list->capacity = capacity;
	}
	memcpy(list->hashes[list->count++], e->hash, BLOBFS_HASH_SIZE);
	return 0;
}

static int account_entry(const struct index_entry *e, void *arg)
{
	pack_account(arg, e, +1);
	return 0;
}

/* Rebuilds the index from every pack and removes stale staging files. */
static int store_load(struct store *store)
{
	struct tombstone_list tombstones = { 0 };
	uint32_t *ids = NULL;
	size_t id_count = 0, id_capacity = 0;
	struct dirent *d;
	DIR *dir = NULL;
	int fd, ret;

	fd = io->openat(store->db->stores_fd, store->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			io->close(fd);
		log_error("store %s: cannot open its directory: %s", store->name, strerror(-ret));
		goto out;
	}
	while ((errno = 0, d = readdir(dir))) {
		uint32_t id;
		if (d->d_name[0] == '.')
			continue;
		if (pack_parse_name(d->d_name, &id)) {
			if (id_count == id_capacity) {
				size_t capacity = id_capacity ? 2 * id_capacity : 64;
				uint32_t *grown = realloc(ids, capacity * sizeof(*ids));
				ret = -ENOMEM;
				if (!grown)
					goto out;
				ids = grown;
				id_capacity = capacity;
			}
			ids[id_count++] = id;
			/* Even a pack whose header is bad keeps its id taken. */
			if (id >= store->next_pack_id)
				store->next_pack_id = id + 1;
		} else if (!strncmp(d->d_name, "staging-", 8)) {
			/* An incoming blob that was never committed before a crash. */
			if (io->unlinkat(dirfd(dir), d->d_name, 0) < 0)
				log_warning("store %s: cannot remove stale %s: %s", store->name,
					    d->d_name, strerror(errno));
		} else {
			log_warning("store %s: ignoring unexpected file %s", store->name,
				    d->d_name);
		}
	}
	if (errno) {
		ret = -errno;
		log_error("store %s: reading its directory: %s", store->name, strerror(-ret));
		goto out;
	}
	if (id_count)
		qsort(ids, id_count, sizeof(*ids), compare_u32);
	for (size_t i = 0; i < id_count; i++) {
		ret = store_scan_pack(store, ids[i], i + 1 == id_count);
		if (ret < 0)
			goto out;
	}
	ret = index_foreach(store->index, collect_tombstone, &tombstones);
	if (ret < 0)
		goto out;
	for (size_t i = 0; i < tombstones.count; i++)
		index_remove(store->index, tombstones.hashes[i]);
	index_foreach(store->index, account_entry, store);
	ret = 0;
out:
	if (dir)
		closedir(dir);
	free(ids);
	free(tombstones.hashes);
	return ret;
}

static int store_new(struct blobdb *db, const char *name, struct store **out)
{
	struct store *store = calloc(1, sizeof(*store));
	int ret = -ENOMEM;

	if (!store)
		goto out;
	store->db = db;
	store->active_fd = -1;
	store->next_seq = 1;
	store->refcount = 1; /* the database's own reference */
	store->name = strdup(name);
	if (!store->name)
		goto out;
	ret = index_new(&store->index);
	if (ret < 0)
		goto out;
	pthread_mutex_init(&store->lock, NULL);
out:
	if (ret < 0 && store) {
		free(store->name);
		free(store);
		store = NULL;
	}
	*out = store;
	return ret;
}

static void store_free(struct store *store)
{
	if (store->active_fd >= 0)
		io->close(store->active_fd);
	index_free(store->index);
	pthread_mutex_destroy(&store->lock);
	free(store->packs);
	free(store->name);
	free(store);
}

void store_close(struct store *store)
{
	struct blobdb *db;
	bool last;

	if (!store)
		return;
	db = store->db;
	pthread_mutex_lock(&db->lock);
	last = --store->refcount == 0;
	pthread_mutex_unlock(&db->lock);
	if (last)
		store_free(store);
}

struct store *store_hold(struct store *store)
{
	pthread_mutex_lock(&store->db->lock);
	store->refcount++;
	pthread_mutex_unlock(&store->db->lock);
	return store;
}

const char *store_name(const struct store *store)
{
	return store->name;
}

/* ---- the database ---- */

/* Binary search in the sorted store array: the index of name, or where it
 * would be inserted (with *found false). Called with db->lock held. */
static size_t store_position(struct blobdb *db, const char *name, bool *found)
{
	size_t lo = 0, hi = db->store_count;

	*found = false;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = strcmp(db->stores[mid]->name, name);
		if (c == 0) {
			*found = true;
			return mid;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static int store_insert(struct blobdb *db, struct store *store)
{
	bool found;
	size_t i = store_position(db, store->name, &found);

	if (found)
		return -EEXIST;
	if (db->store_count == db->store_capacity) {
		size_t capacity = db->store_capacity ? 2 * db->store_capacity : 16;
		struct store **stores = realloc(db->stores, capacity * sizeof(*stores));
		if (!stores)
			return -ENOMEM;
		db->stores = stores;
		db->store_capacity = capacity;
	}
	memmove(&db->stores[i + 1], &db->stores[i], (db->store_count - i) * sizeof(*db->stores));
	db->stores[i] = store;
	db->store_count++;
	return 0;
}

/* Removes every file in dir_name (inside parent_fd) and then dir_name. */
static int remove_flat_dir(int parent_fd, const char *dir_name)
{
	struct dirent *d;
	DIR *dir = NULL;
	int fd, ret = 0;

	fd = io->openat(parent_fd, dir_name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			io->close(fd);
		goto out;
	}
	while ((errno = 0, d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		if (io->unlinkat(dirfd(dir), d->d_name, 0) < 0 && errno != ENOENT) {
			ret = -errno;
			goto out;
		}
	}
	if (errno) {
		ret = -errno;
		goto out;
	}
	if (io->unlinkat(parent_fd, dir_name, AT_REMOVEDIR) < 0)
		ret = -errno;
out:
	if (dir)
		closedir(dir);
	return ret;
}

static void empty_trash(struct blobdb *db)
{
	struct dirent *d;
	DIR *dir;
	int fd = dup(db->trash_fd);

	if (fd < 0 || !(dir = fdopendir(fd))) {
		if (fd >= 0)
			io->close(fd);
		return;
	}
	while ((d = readdir(dir))) {
		int ret;
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		ret = remove_flat_dir(db->trash_fd, d->d_name);
		if (ret < 0)
			log_warning("cannot empty trash/%s: %s", d->d_name, strerror(-ret));
	}
	closedir(dir);
}

static int open_subdir(int dirfd, const char *name, int *out)
{
	if (io->mkdirat(dirfd, name, 0700) < 0 && errno != EEXIST)
		return -errno;
	*out = io->openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	return *out < 0 ? -errno : 0;
}

static int blobdb_lock(struct blobdb *db)
{
	db->lock_fd = io->openat(db->dirfd, "lock", O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (db->lock_fd < 0)
		return -errno;
	if (flock(db->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : -errno;
	if (!db->opts.read_only)
		blobdb_note_pid(db);
	return 0;
}

void blobdb_note_pid(struct blobdb *db)
{
	char line[32];
	int n = snprintf(line, sizeof(line), "%ld\n", (long)getpid());

	if (io->ftruncate(db->lock_fd, 0) == 0 && io->pwrite(db->lock_fd, line, (size_t)n, 0) == n)
		return;
	log_warning("cannot record the pid in %s/lock: %s", db->path, strerror(errno));
}

long blobdb_lock_holder(const char *datadir)
{
	char path[PATH_MAX], line[32] = "";
	long pid = 0;
	int fd;

	snprintf(path, sizeof(path), "%s/lock", datadir);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (read(fd, line, sizeof(line) - 1) > 0)
		pid = strtol(line, NULL, 10);
	io->close(fd);
	return pid;
}

static int blobdb_load_stores(struct blobdb *db)
{
	struct dirent *d;
	DIR *dir;
	int ret = 0, fd = dup(db->stores_fd);

	if (fd < 0 || !(dir = fdopendir(fd))) {
		ret = -errno;
		if (fd >= 0)
			io->close(fd);
		return ret;
	}
	while ((errno = 0, d = readdir(dir))) {
		struct store *store;
		if (d->d_name[0] == '.')
			continue;
		if (store_name_check(d->d_name, strlen(d->d_name)) < 0) {
			log_warning("ignoring %s/stores/%s: not a store name", db->path, d->d_name);
			continue;
		}
		if (d->d_type != DT_DIR && d->d_type != DT_UNKNOWN) {
			log_warning("ignoring %s/stores/%s: not a directory", db->path, d->d_name);
			continue;
		}
		ret = store_new(db, d->d_name, &store);
		if (ret < 0)
			break;
		ret = store_load(store);
		if (ret == 0)
			ret = store_insert(db, store);
		if (ret < 0) {
			store_free(store);
			break;
		}
	}
	if (errno && ret == 0)
		ret = -errno;
	closedir(dir);
	return ret;
}

int blobdb_open(const char *datadir, const struct blobdb_options *opts, struct blobdb **out)
{
	struct blobdb *db = calloc(1, sizeof(*db));
	int ret = -ENOMEM;

	if (!db)
		goto out;
	db->dirfd = db->stores_fd = db->trash_fd = db->lock_fd = -1;
	pthread_mutex_init(&db->lock, NULL);
	if (opts)
		db->opts = *opts;
	else
		blobdb_options_default(&db->opts);
	db->path = strdup(datadir);
	if (!db->path)
		goto out;
	if (mkdir(datadir, 0700) < 0 && errno != EEXIST) {
		ret = -errno;
		log_error("cannot create data directory %s: %s", datadir, strerror(-ret));
		goto out;
	}
	db->dirfd = open(datadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (db->dirfd >= 0) {
		/* Messages and the mount's fsname name it absolutely (a daemon's
		 * working directory is /). */
		char *absolute = realpath(datadir, NULL);
		if (absolute) {
			free(db->path);
			db->path = absolute;
		}
	}
	if (db->dirfd < 0) {
		ret = -errno;
		log_error("cannot open data directory %s: %s", datadir, strerror(-ret));
		goto out;
	}
	ret = blobdb_lock(db);
	if (ret < 0) {
		if (ret == -EBUSY)
			log_error("%s is in use by another blobfs (pid %ld holds %s/lock)", datadir,
				  blobdb_lock_holder(datadir), datadir);
		else
			log_error("cannot lock %s: %s", datadir, strerror(-ret));
		goto out;
	}
	ret = open_subdir(db->dirfd, "stores", &db->stores_fd);
	if (ret == 0)
		ret = open_subdir(db->dirfd, "trash", &db->trash_fd);
	if (ret < 0) {
		log_error("cannot set up %s: %s", datadir, strerror(-ret));
		goto out;
	}
	empty_trash(db);
	ret = blobdb_load_stores(db);
	if (ret < 0)
		log_error("cannot load the stores of %s: %s", datadir, strerror(-ret));
out:
	if (ret < 0 && db) {
		blobdb_close(db);
		db = NULL;
	}
	*out = db;
	return ret;
}

int blobdb_statfs(struct blobdb *db, struct statvfs *st)
{
	return fstatvfs(db->dirfd, st) < 0 ? -errno : 0;
}

int blobdb_sync(struct blobdb *db)
{
	int ret = 0;

	pthread_mutex_lock(&db->lock);
	for (size_t i = 0; i < db->store_count; i++) {
		struct store *store = db->stores[i];
		pthread_mutex_lock(&store->lock);
		if (store->active_fd >= 0 && io->fsync(store->active_fd) < 0 && ret == 0)
			ret = -errno;
		pthread_mutex_unlock(&store->lock);
		if (fsync_dir_at(db->stores_fd, store->name) < 0 && ret == 0)
			ret = -errno;
	}
	pthread_mutex_unlock(&db->lock);
	if (ret < 0)
		log_error("%s: sync failed: %s", db->path, strerror(-ret));
	return ret;
}

void blobdb_close(struct blobdb *db)
{
	if (!db)
		return;
	if (db->stores_fd >= 0) {
		blobdb_sync(db);
		/* Large blobs' packs and removed files too: everything we wrote. */
		if (!db->opts.read_only && io->syncfs(db->dirfd) < 0)
			log_error("%s: syncfs: %s", db->path, strerror(errno));
	}
	for (size_t i = 0; i < db->store_count; i++)
		store_close(db->stores[i]);
	free(db->stores);
	if (db->stores_fd >= 0)
		io->close(db->stores_fd);
	if (db->trash_fd >= 0)
		io->close(db->trash_fd);
	if (db->lock_fd >= 0)
		io->close(db->lock_fd); /* releases the flock */
	if (db->dirfd >= 0)
		io->close(db->dirfd);
	pthread_mutex_destroy(&db->lock);
	free(db->path);
	free(db);
}

/* ---- stores ---- */

int store_create(struct blobdb *db, const char *name)
{
	struct store *store = NULL;
	bool found;
	int ret = store_name_check(name, strlen(name));

	if (ret < 0)
		return to_status(ret);
	pthread_mutex_lock(&db->lock);
	store_position(db, name, &found);
	ret = -EEXIST;
	if (found)
		goto out;
	ret = store_new(db, name, &store);
	if (ret < 0)
		goto out;
	if (io->mkdirat(db->stores_fd, name, 0700) < 0) {
		ret = -errno;
		log_error("cannot create store %s: %s", name, strerror(-ret));
		goto out;
	}
	ret = io->fsync(db->stores_fd) < 0 ? -errno : 0;
	if (ret == 0)
		ret = store_insert(db, store);
	if (ret < 0) {
		log_error("cannot create store %s: %s", name, strerror(-ret));
		io->unlinkat(db->stores_fd, name, AT_REMOVEDIR);
	}
out:
	pthread_mutex_unlock(&db->lock);
	if (ret < 0 && store)
		store_free(store);
	return to_status(ret);
}

int store_destroy(struct blobdb *db, const char *name, bool only_if_empty)
{
	char trash_name[64];
	struct store *store = NULL;
	bool found;
	size_t i;
	int ret = store_name_check(name, strlen(name));

	if (ret < 0)
		return to_status(ret);
	pthread_mutex_lock(&db->lock);
	i = store_position(db, name, &found);
	ret = -ENOENT;
	if (!found)
		goto out;
	store = db->stores[i];
	pthread_mutex_lock(&store->lock);
	if (only_if_empty && index_count(store->index) > 0) {
		pthread_mutex_unlock(&store->lock);
		ret = -ENOTEMPTY;
		goto out;
	}
	/* The rename is the commit point: after it the store is gone even if we
	 * crash before its files are removed (the trash is emptied at open). */
	snprintf(trash_name, sizeof(trash_name), "store-%ld-%" PRIu64, (long)getpid(),
		 __atomic_add_fetch(&db->staging_counter, 1, __ATOMIC_RELAXED));
	if (io->renameat(db->stores_fd, name, db->trash_fd, trash_name) < 0) {
		ret = -errno;
		pthread_mutex_unlock(&store->lock);
		log_error("cannot destroy store %s: %s", name, strerror(-ret));
		goto out;
	}
	store->destroyed = true;
	if (store->active_fd >= 0) {
		io->close(store->active_fd);
		store->active_fd = -1;
	}
	pthread_mutex_unlock(&store->lock);
	memmove(&db->stores[i], &db->stores[i + 1], (db->store_count - i - 1) * sizeof(*db->stores));
	db->store_count--;
	if (io->fsync(db->stores_fd) < 0 || io->fsync(db->trash_fd) < 0)
		log_warning("store %s: syncing its removal: %s", name, strerror(errno));
	ret = remove_flat_dir(db->trash_fd, trash_name);
	if (ret < 0)
		log_warning("store %s: its files stay in trash/%s until the next mount: %s",
			    name, trash_name, strerror(-ret));
	ret = 0;
out:
	pthread_mutex_unlock(&db->lock);
	if (ret == 0)
		store_close(store); /* the database's reference */
	return to_status(ret);
}

int store_open(struct blobdb *db, const char *name, struct store **out)
{
	bool found;
	size_t i;
	int ret = -ENOENT;

	*out = NULL;
	pthread_mutex_lock(&db->lock);
	i = store_position(db, name, &found);
	if (found) {
		*out = db->stores[i];
		(*out)->refcount++;
		ret = 0;
	}
	pthread_mutex_unlock(&db->lock);
	return ret;
}

int store_list(struct blobdb *db, const char *after, int (*fn)(const char *name, void *arg),
	       void *arg)
{
	char name[256];
	bool found;
	int ret = 0;

	name[0] = '\0';
	if (after)
		snprintf(name, sizeof(name), "%s", after);
	/* The lock is dropped around each callback so that fn may block; the
	 * name cursor makes the walk correct under concurrent changes. */
	for (;;) {
		size_t i;
		pthread_mutex_lock(&db->lock);
		i = name[0] ? store_position(db, name, &found) : 0;
		if (name[0] && found)
			i++;
		if (i >= db->store_count) {
			pthread_mutex_unlock(&db->lock);
			break;
		}
		snprintf(name, sizeof(name), "%s", db->stores[i]->name);
		pthread_mutex_unlock(&db->lock);
		ret = fn(name, arg);
		if (ret)
			break;
	}
	return ret;
}

size_t store_count(struct blobdb *db)
{
	size_t n;

	pthread_mutex_lock(&db->lock);
	n = db->store_count;
	pthread_mutex_unlock(&db->lock);
	return n;
}

/* ---- blobs ---- */

int blob_info(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t *length)
{
	struct index_entry e;
	int ret;

	pthread_mutex_lock(&store->lock);
	ret = store->destroyed ? -ENOENT : index_lookup(store->index, hash, &e);
	pthread_mutex_unlock(&store->lock);
	if (ret == 0 && length)
		*length = e.length;
	return ret;
}

size_t blob_count(struct store *store)
{
	size_t n;

	pthread_mutex_lock(&store->lock);
	n = store->destroyed ? 0 : index_count(store->index);
	pthread_mutex_unlock(&store->lock);
	return n;
}

int blob_list(struct store *store, const uint8_t *after,
	      int (*fn)(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg),
	      void *arg)
{
	uint8_t cursor[BLOBFS_HASH_SIZE];
	struct index_entry e;
	bool have_cursor = after != NULL;
	int ret = 0;

	if (after)
		memcpy(cursor, after, BLOBFS_HASH_SIZE);
	for (;;) {
		int found;
		pthread_mutex_lock(&store->lock);
		found = store->destroyed ? 0 :
			index_seek(store->index, have_cursor ? cursor : NULL, true, &e);
		pthread_mutex_unlock(&store->lock);
		if (!found)
			break;
		memcpy(cursor, e.hash, BLOBFS_HASH_SIZE);
		have_cursor = true;
		ret = fn(e.hash, e.length, arg);
		if (ret)
			break;
	}
	return ret;
}

/* Opens the active pack for appending, starting a new one when there is
 * none or when need more bytes would take it past the size cap. Called with
 * store->lock held. */
static int store_active_pack(struct store *store, uint64_t need, struct pack_info **out)
{
	struct pack_info *p = NULL;
	char path[PATH_SIZE];
	int ret, fd;

	if (store->active_fd < 0 && store->pack_count > 0) {
		/* Reuse the newest pack when it has room. */
		p = &store->packs[store->pack_count - 1];
		if (p->size + need <= store->db->opts.pack_size_max) {
			ret = store_pack_path(store, p->id, path);
			if (ret < 0)
				return ret;
			fd = io->openat(store->db->stores_fd, path, O_RDWR | O_CLOEXEC, 0);
			if (fd < 0)
				return -errno;
			store->active_fd = fd;
			store->active_id = p->id;
		}
	}
	if (store->active_fd >= 0) {
		p = pack_find(store, store->active_id);
		if (p && (p->size + need <= store->db->opts.pack_size_max ||
			  p->size == PACK_HEADER_SIZE)) {
			*out = p;
			return 0;
		}
		io->close(store->active_fd);
		store->active_fd = -1;
	}
	ret = store_path(store, "", path);
	if (ret < 0)
		return ret;
	fd = io->openat(store->db->stores_fd, store->name, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	ret = pack_create(fd, store->next_pack_id, &store->active_fd);
	if (ret == 0 && io->fsync(fd) < 0)
		ret = -errno;
	io->close(fd);
	if (ret < 0)
		return ret;
	store->active_id = store->next_pack_id;
	ret = pack_add(store, store->active_id, PACK_HEADER_SIZE);
	if (ret < 0) {
		io->close(store->active_fd);
		store->active_fd = -1;
		return ret;
	}
	*out = pack_find(store, store->active_id);
	return 0;
}

static void store_index_record(struct store *store, uint32_t pack_id,
			       const struct record_info *rec)
{
	struct index_entry old, entry = {
		.offset = rec->offset,
		.length = rec->length,
		.seq = rec->seq,
		.pack_id = pack_id,
		.kind = RECORD_BLOB,
		.chunk_shift = (uint8_t)rec->chunk_shift,
	};

	memcpy(entry.hash, rec->hash, BLOBFS_HASH_SIZE);
	if (index_lookup(store->index, rec->hash, &old) == 0)
		pack_account(store, &old, -1);
	if (index_put(store->index, &entry) == 0)
		pack_account(store, &entry, +1);
}

/*
 * Appends one record to the active pack. data may be NULL for a tombstone.
 * crcs may be NULL, in which case they are computed. On failure the pack is
 * cut back so that no partial record stays behind. Called with store->lock.
 */
static int store_append(struct store *store, struct record_info *rec, const void *data,
			const uint32_t *crcs)
{
	uint64_t need = record_size(rec->length, rec->chunk_shift);
	struct pack_info *pack;
	int ret;

	ret = store_active_pack(store, need, &pack);
	if (ret < 0)
		goto out;
	rec->offset = pack->size;
	rec->seq = store->next_seq++;
	if (crcs) {
		ret = pwrite_full(store->active_fd, data, rec->length, record_data_offset(rec));
		if (ret == 0)
			ret = pack_write_frame(store->active_fd, rec, crcs);
	} else {
		ret = pack_write_record(store->active_fd, rec, data);
	}
	if (ret < 0) {
		if (io->ftruncate(store->active_fd, (off_t)pack->size) < 0)
			log_error("store %s: cannot cut back pack %08x after a failed write: %s",
				  store->name, pack->id, strerror(errno));
		goto out;
	}
	pack->size += need;
	if (rec->kind == RECORD_BLOB)
		store_index_record(store, pack->id, rec);
	else
		pack->tombstone_count++;
out:
	return ret;
}

/* Unlinks a pack that holds neither a live blob nor a tombstone: each of its
 * records is superseded by a newer one elsewhere, so removing it changes
 * nothing but the space used. A deleted large blob's own pack goes this way
 * at once. Called with store->lock held. */
static void store_drop_dead_pack(struct store *store, uint32_t pack_id)
{
	struct pack_info *p = pack_find(store, pack_id);
	char path[PATH_SIZE];

	if (!p || p->live_count || p->tombstone_count || pack_id == store->active_id)
		return;
	if (store_pack_path(store, pack_id, path) < 0)
		return;
	if (io->unlinkat(store->db->stores_fd, path, 0) < 0) {
		log_warning("store %s: cannot remove dead %s: %s", store->name, path,
			    strerror(errno));
		return;
	}
	pack_remove(store, pack_id);
}

int blob_delete(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct record_info rec = { .kind = RECORD_TOMBSTONE, .chunk_shift = CHUNK_SHIFT_DEFAULT };
	char hex[HASH_HEX_SIZE + 1];
	struct index_entry e;
	int ret;

	memcpy(rec.hash, hash, BLOBFS_HASH_SIZE);
	pthread_mutex_lock(&store->lock);
	ret = store->destroyed ? -ENOENT : index_lookup(store->index, hash, &e);
	if (ret < 0)
		goto out;
	ret = store_append(store, &rec, NULL, NULL);
	if (ret < 0) {
		hash_to_hex(hash, hex);
		log_error("store %s: cannot record the delete of %s: %s", store->name, hex,
			  strerror(-ret));
		goto out;
	}
	pack_account(store, &e, -1);
	index_remove(store->index, hash);
	store_drop_dead_pack(store, e.pack_id);
out:
	pthread_mutex_unlock(&store->lock);
	return to_status(ret);
}

/* ---- reading ---- */

int blob_open(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
	      struct blob_reader **out)
{
	struct blob_reader *reader = NULL;
	char path[PATH_SIZE];
	struct index_entry e;
	int ret;

	*out = NULL;
	/* The pack is opened under the lock so that it cannot be dropped
	 * between the lookup and the open. */
	pthread_mutex_lock(&store->lock);
	ret = store->destroyed ? -ENOENT : index_lookup(store->index, hash, &e);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	reader = calloc(1, sizeof(*reader));
	if (!reader)
		goto out;
	ret = store_pack_path(store, e.pack_id, path);
	if (ret < 0)
		goto out;
	reader->fd = io->openat(store->db->stores_fd, path, O_RDONLY | O_CLOEXEC, 0);
	if (reader->fd < 0) {
		ret = -errno;
		log_error("store %s: cannot open %s: %s", store->name, path, strerror(-ret));
		ret = -EIO;
		goto out;
	}
	reader->store = store;
	reader->data_offset = e.offset + RECORD_HEADER_SIZE;
	reader->length = e.length;
	reader->pack_id = e.pack_id;
	memcpy(reader->hash, hash, BLOBFS_HASH_SIZE);
	ret = 0;
out:
	pthread_mutex_unlock(&store->lock);
	if (ret < 0) {
		free(reader);
		reader = NULL;
	} else {
		pthread_mutex_lock(&store->db->lock);
		store->refcount++;
		pthread_mutex_unlock(&store->db->lock);
	}
	*out = reader;
	return to_status(ret);
}

uint64_t blob_reader_length(const struct blob_reader *reader)
{
	return reader->length;
}

int blob_read_extent(struct blob_reader *reader, uint64_t off, size_t size, int *fd,
		     uint64_t *pos, size_t *len)
{
	*fd = reader->fd;
	*pos = reader->data_offset + off;
	*len = off >= reader->length ? 0 :
	       reader->length - off < size ? (size_t)(reader->length - off) : size;
	return 0;
}

int blob_read(struct blob_reader *reader, void *buf, size_t size, uint64_t off, size_t *got)
{
	char hex[HASH_HEX_SIZE + 1];
	uint64_t pos;
	size_t len;
	int fd, ret;

	blob_read_extent(reader, off, size, &fd, &pos, &len);
	ret = pread_full(fd, buf, len, pos);
	if (ret < 0) {
		hash_to_hex(reader->hash, hex);
		log_error("store %s: blob %s: reading pack %08x at %" PRIu64 ": %s",
			  reader->store->name, hex, reader->pack_id, pos, strerror(-ret));
		return -EIO;
	}
	*got = len;
	return 0;
}

void blob_close(struct blob_reader *reader)
{
	if (!reader)
		return;
	io->close(reader->fd);
	store_close(reader->store);
	free(reader);
}

/* ---- saving ---- */

/* Saves a blob of at most large_blob_min bytes by appending it to the active
 * pack. crcs may be NULL. */
static int store_save_small(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
			    const void *data, uint64_t len, const uint32_t *crcs)
{
	struct record_info rec = { .kind = RECORD_BLOB, .chunk_shift = CHUNK_SHIFT_DEFAULT,
				   .length = len };
	char hex[HASH_HEX_SIZE + 1];
	struct index_entry e;
	int ret;

	memcpy(rec.hash, hash, BLOBFS_HASH_SIZE);
	pthread_mutex_lock(&store->lock);
	ret = -ENOENT;
	if (store->destroyed)
		goto out;
	ret = -EEXIST;
	if (index_lookup(store->index, hash, &e) == 0)
		goto out;
	ret = store_append(store, &rec, data ? data : "", crcs);
	if (ret < 0) {
		hash_to_hex(hash, hex);
		log_error("store %s: cannot save blob %s (%" PRIu64 " bytes): %s", store->name,
			  hex, len, strerror(-ret));
	}
out:
	pthread_mutex_unlock(&store->lock);
	return ret;
}

static int writer_push_crc(struct blob_writer *w, uint32_t crc)
{
	size_t i = (size_t)((w->digested - 1) >> CHUNK_SHIFT_DEFAULT);

	if (i >= w->crc_capacity) {
		size_t capacity = w->crc_capacity ? 2 * w->crc_capacity : 64;
		uint32_t *crcs = realloc(w->crcs, capacity * sizeof(*crcs));
		if (!crcs)
			return -ENOMEM;
		w->crcs = crcs;
		w->crc_capacity = capacity;
	}
	w->crcs[i] = crc;
	return 0;
}

/* Extends the digest over the next len bytes of content. */
static int writer_feed(struct blob_writer *w, const uint8_t *buf, size_t len)
{
	const uint64_t chunk = UINT64_C(1) << CHUNK_SHIFT_DEFAULT;
	int ret = hasher_update(w->hasher, buf, len);

	while (ret == 0 && len) {
		uint64_t room = chunk - (w->digested & (chunk - 1));
		size_t n = len < room ? len : (size_t)room;
		w->chunk_crc = crc32c(w->chunk_crc, buf, n);
		w->digested += n;
		buf += n;
		len -= n;
		if ((w->digested & (chunk - 1)) == 0) {
			ret = writer_push_crc(w, w->chunk_crc);
			w->chunk_crc = 0;
		}
	}
	return ret;
}

static int writer_digest_reset(struct blob_writer *w)
{
	w->digested = 0;
	w->chunk_crc = 0;
	return hasher_reset(w->hasher);
}

/* Hashes what the digest does not cover yet by reading it back: only needed
 * when the writes were not sequential (or the file was grown by truncate). */
static int writer_digest_finish(struct blob_writer *w, uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint8_t *buf = NULL;
	int ret = 0;

	if (w->digested < w->size) {
		buf = malloc(COPY_BUFFER_SIZE);
		if (!buf)
			return -ENOMEM;
	}
	while (ret == 0 && w->digested < w->size) {
		uint64_t left = w->size - w->digested;
		size_t n = left < COPY_BUFFER_SIZE ? (size_t)left : COPY_BUFFER_SIZE;
		ret = pread_full(w->fd, buf, n, STAGING_DATA_OFFSET + w->digested);
		if (ret == 0)
			ret = writer_feed(w, buf, n);
	}
	free(buf);
	if (ret == 0 && (w->digested & ((UINT64_C(1) << CHUNK_SHIFT_DEFAULT) - 1)))
		ret = writer_push_crc(w, w->chunk_crc);
	if (ret == 0)
		ret = hasher_final(w->hasher, hash);
	return ret;
}

static int writer_create_staging(struct blob_writer *w)
{
	struct store *store = w->store;
	char path[PATH_SIZE];
	int ret;

	snprintf(w->staging_name, sizeof(w->staging_name), "staging-%ld-%" PRIu64 ".tmp",
		 (long)getpid(), __atomic_add_fetch(&store->db->staging_counter, 1, __ATOMIC_RELAXED));
	ret = store_path(store, w->staging_name, path);
	if (ret < 0)
		return ret;
	w->fd = io->openat(store->db->stores_fd, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		ret = -errno;
		log_error("store %s: cannot create staging file: %s", store->name, strerror(-ret));
		return ret;
	}
	return 0;
}

/*
 * Turns the staging file into a one-record pack in place: the data is
 * already where the record wants it, so only the headers, the chunk table
 * and the trailer are written before the rename publishes it.
 */
static int store_adopt_staging(struct store *store, struct blob_writer *w,
			       const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct record_info rec = { .offset = PACK_HEADER_SIZE, .kind = RECORD_BLOB,
				   .chunk_shift = CHUNK_SHIFT_DEFAULT, .length = w->size };
	char from[PATH_SIZE], to[PATH_SIZE], hex[HASH_HEX_SIZE + 1];
	uint8_t header[PACK_HEADER_SIZE];
	struct index_entry e;
	uint32_t pack_id;
	int ret;

	memcpy(rec.hash, hash, BLOBFS_HASH_SIZE);
	pthread_mutex_lock(&store->lock);
	ret = -ENOENT;
	if (store->destroyed)
		goto out;
	ret = -EEXIST;
	if (index_lookup(store->index, hash, &e) == 0)
		goto out;
	pack_id = store->next_pack_id;
	rec.seq = store->next_seq;
	pack_header_encode(pack_id, header);
	ret = store_path(store, w->staging_name, from);
	if (ret == 0)
		ret = store_pack_path(store, pack_id, to);
	if (ret == 0)
		ret = pwrite_full(w->fd, header, sizeof(header), 0);
	if (ret == 0)
		ret = pack_write_frame(w->fd, &rec, w->crcs);
	if (ret == 0 && io->renameat(store->db->stores_fd, from, store->db->stores_fd, to) < 0)
		ret = -errno;
	if (ret == 0) {
		ret = pack_add(store, pack_id, record_end(&rec));
		if (ret < 0)
			io->renameat(store->db->stores_fd, to, store->db->stores_fd, from);
	}
	if (ret < 0) {
		/* Leave the staging file as it was: content only. */
		if (io->ftruncate(w->fd, (off_t)(STAGING_DATA_OFFSET + w->size)) < 0)
			log_warning("store %s: cannot trim staging file: %s", store->name,
				    strerror(errno));
		hash_to_hex(hash, hex);
		log_error("store %s: cannot save blob %s (%" PRIu64 " bytes): %s", store->name,
			  hex, w->size, strerror(-ret));
		goto out;
	}
	store->next_pack_id = pack_id + 1;
	store->next_seq = rec.seq + 1;
	store_index_record(store, pack_id, &rec);
	io->close(w->fd);
	w->fd = -1;
out:
	pthread_mutex_unlock(&store->lock);
	return ret;
}

/* After a large blob's staging file became its pack, a further write needs
 * a staging file again, holding the committed content. */
static int writer_rematerialize(struct blob_writer *w)
{
	struct blob_reader *reader = NULL;
	uint8_t *buf = NULL;
	char hex[HASH_HEX_SIZE + 1];
	uint64_t off = 0;
	int ret;

	ret = blob_open(w->store, w->committed_hash, &reader);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	buf = malloc(COPY_BUFFER_SIZE);
	if (!buf)
		goto out;
	ret = writer_create_staging(w);
	while (ret == 0 && off < reader->length) {
		size_t got;
		ret = blob_read(reader, buf, COPY_BUFFER_SIZE, off, &got);
		if (ret == 0)
			ret = pwrite_full(w->fd, buf, got, STAGING_DATA_OFFSET + off);
		off += got;
	}
	if (ret == 0)
		ret = writer_digest_reset(w);
out:
	if (ret < 0) {
		hash_to_hex(w->committed_hash, hex);
		log_error("store %s: cannot reopen saved blob %s for writing: %s",
			  w->store->name, hex, strerror(-ret));
		if (w->fd >= 0) {
			char path[PATH_SIZE];
			io->close(w->fd);
			w->fd = -1;
			if (store_path(w->store, w->staging_name, path) == 0)
				io->unlinkat(w->store->db->stores_fd, path, 0);
		}
		ret = ret == -ENOSPC ? ret : -EIO;
	}
	free(buf);
	blob_close(reader);
	return ret;
}

int blob_writer_new(struct store *store, struct blob_writer **out)
{
	struct blob_writer *w = calloc(1, sizeof(*w));
	int ret = -ENOMEM;

	*out = NULL;
	if (!w)
		return to_status(ret);
	w->fd = -1;
	w->store = store;
	pthread_mutex_init(&w->lock, NULL);
	ret = hasher_new(&w->hasher);
	if (ret == 0)
		ret = writer_create_staging(w);
	if (ret < 0) {
		w->store = NULL;
		blob_writer_free(w);
		return to_status(ret);
	}
	pthread_mutex_lock(&store->db->lock);
	store->refcount++;
	pthread_mutex_unlock(&store->db->lock);
	w->dirty = true;
	*out = w;
	return 0;
}

void blob_writer_free(struct blob_writer *w)
{
	char path[PATH_SIZE];

	if (!w)
		return;
	if (w->fd >= 0) {
		io->close(w->fd);
		if (store_path(w->store, w->staging_name, path) == 0)
			io->unlinkat(w->store->db->stores_fd, path, 0);
	}
	hasher_free(w->hasher);
	free(w->crcs);
	pthread_mutex_destroy(&w->lock);
	store_close(w->store);
	free(w);
}

int blob_writer_write(struct blob_writer *w, const void *buf, size_t size, uint64_t off)
{
	int ret = 0;

	if (off > RECORD_LENGTH_MAX || size > RECORD_LENGTH_MAX - off)
		return -EFBIG;
	pthread_mutex_lock(&w->lock);
	if (w->fd < 0)
		ret = writer_rematerialize(w);
	if (ret == 0)
		ret = pwrite_full(w->fd, buf, size, STAGING_DATA_OFFSET + off);
	if (ret < 0)
		goto out;
	w->dirty = true;
	if (off + size > w->size)
		w->size = off + size;
	/* Sequential writes extend the digest; an overwrite of digested bytes
	 * restarts it (the commit then reads the file back once). */
	if (off == w->digested)
		ret = writer_feed(w, buf, size);
	else if (off < w->digested)
		ret = writer_digest_reset(w);
out:
	pthread_mutex_unlock(&w->lock);
	return to_status(ret);
}

int blob_writer_read(struct blob_writer *w, void *buf, size_t size, uint64_t off, size_t *got)
{
	int ret = 0;

	pthread_mutex_lock(&w->lock);
	*got = 0;
	if (w->fd < 0)
		ret = writer_rematerialize(w);
	if (ret < 0 || off >= w->size)
		goto out;
	if (w->size - off < size)
		size = (size_t)(w->size - off);
	ret = pread_full(w->fd, buf, size, STAGING_DATA_OFFSET + off);
	if (ret == 0)
		*got = size;
out:
	pthread_mutex_unlock(&w->lock);
	return to_status(ret);
}

int blob_writer_truncate(struct blob_writer *w, uint64_t size)
{
	int ret = 0;

	if (size > RECORD_LENGTH_MAX)
		return -EFBIG;
	pthread_mutex_lock(&w->lock);
	if (w->fd < 0)
		ret = writer_rematerialize(w);
	if (ret == 0 && io->ftruncate(w->fd, (off_t)(STAGING_DATA_OFFSET + size)) < 0)
		ret = -errno;
	if (ret < 0)
		goto out;
	if (size < w->digested)
		ret = writer_digest_reset(w);
	w->size = size;
	w->dirty = true;
out:
	pthread_mutex_unlock(&w->lock);
	return to_status(ret);
}

uint64_t blob_writer_size(struct blob_writer *w)
{
	uint64_t size;

	pthread_mutex_lock(&w->lock);
	size = w->size;
	pthread_mutex_unlock(&w->lock);
	return size;
}

int blob_writer_commit(struct blob_writer *w, uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct store *store = w->store;
	uint8_t *data = NULL;
	int ret = 0;

	pthread_mutex_lock(&w->lock);
	if (w->committed && !w->dirty) {
		memcpy(hash, w->committed_hash, BLOBFS_HASH_SIZE);
		if (blob_info(store, hash, NULL) == 0) {
			ret = -EEXIST;
			goto out;
		}
	}
	if (w->fd < 0)
		ret = writer_rematerialize(w);
	if (ret == 0)
		ret = writer_digest_finish(w, hash);
	if (ret < 0)
		goto out;
	if (w->size >= store->db->opts.large_blob_min) {
		ret = store_adopt_staging(store, w, hash);
	} else {
		ret = -ENOMEM;
		data = malloc(w->size ? (size_t)w->size : 1);
		if (data)
			ret = pread_full(w->fd, data, (size_t)w->size, STAGING_DATA_OFFSET);
		if (ret == 0)
			ret = store_save_small(store, hash, data, w->size, w->crcs);
	}
	if (ret == 0 || ret == -EEXIST) {
		w->committed = true;
		w->dirty = false;
		memcpy(w->committed_hash, hash, BLOBFS_HASH_SIZE);
	}
	/* The digest was finalised; a later change is hashed afresh. */
	if (writer_digest_reset(w) < 0 && ret >= 0)
		ret = -EIO;
out:
	pthread_mutex_unlock(&w->lock);
	free(data);
	return to_status(ret);
}

int blob_save(struct store *store, const void *data, size_t len, uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct blob_writer *w = NULL;
	int ret;

	if (len < store->db->opts.large_blob_min) {
		ret = hash_buffer(data, len, hash);
		if (ret == 0)
			ret = store_save_small(store, hash, data, len, NULL);
		return to_status(ret);
	}
	ret = blob_writer_new(store, &w);
	if (ret == 0)
		ret = blob_writer_write(w, data, len, 0);
	if (ret == 0)
		ret = blob_writer_commit(w, hash);
	blob_writer_free(w);
	return to_status(ret);
}
