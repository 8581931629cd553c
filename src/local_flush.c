/*
 * local_flush.c - durability: the files written since the last flush, one
 * flush of a store (fsyncs, then the durable marker), group commit for
 * store_sync, and the two background threads (the flusher, every
 * flush_interval_ms, and the compactor).
 *
 * Lock order: db->flush_lock, then store->flush_lock, then store->lock.
 */
#include "local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "io.h"
#include "log.h"
#include "datadir.h"

/*
 * One flush of a store: fsyncs every file written since the last flush and
 * the store directory if names changed, then writes the durable marker. The
 * work happens outside store->lock; records written meanwhile wait for the
 * next flush. A failure is sticky: after a failed fsync the kernel may have
 * dropped the dirty pages, so the marker never moves again in this mount.
 */
static int flush_store_locked(struct local_store *store,
			      void (*take)(struct local_store *store, void *arg), void *arg);

/* Hands a written file to the next flush, which fsyncs and closes it.
 * Called with store->lock held. On failure the file is synced here. */
void flush_later(struct local_store *store, int fd)
{
	const struct io_ops *io = store->db->io;
	if (store->sync_fd_count == store->sync_fd_capacity) {
		size_t capacity = store->sync_fd_capacity ? 2 * store->sync_fd_capacity : 8;
		int *fds = realloc(store->sync_fds, capacity * sizeof(*fds));
		if (!fds) {
			if (io->fsync(fd) < 0)
				log_error("store %s: fsync: %s", store->base.name, strerror(errno));
			io->close(fd);
			return;
		}
		store->sync_fds = fds;
		store->sync_fd_capacity = capacity;
	}
	store->sync_fds[store->sync_fd_count++] = fd;
}

int flush_store(struct local_store *store)
{
	int ret;

	pthread_mutex_lock(&store->flush_lock);
	ret = flush_store_locked(store, NULL, NULL);
	pthread_mutex_unlock(&store->flush_lock);
	return ret;
}

int flush_store_taking(struct local_store *store,
		       void (*take)(struct local_store *store, void *arg), void *arg)
{
	int ret;

	pthread_mutex_lock(&store->flush_lock);
	ret = flush_store_locked(store, take, arg);
	pthread_mutex_unlock(&store->flush_lock);
	return ret;
}

static int flush_store_locked(struct local_store *store,
			      void (*take)(struct local_store *store, void *arg), void *arg)
{
	const struct io_ops *io = store->db->io;
	uint64_t target, durable = __atomic_load_n(&store->durable_seq, __ATOMIC_ACQUIRE);
	int *fds = NULL, active = -1, ret = 0;
	size_t count = 0;
	bool dir_dirty;

	pthread_mutex_lock(&store->lock);
	target = store->next_seq - 1;
	/* Everything up to target is durable once this flush succeeds: what
	 * take sees now can be vouched for then. */
	if (take && !store->base.destroyed && !store->flush_failed)
		take(store, arg);
	if (store->base.destroyed || store->flush_failed ||
	    (target <= durable && !store->sync_fd_count && !store->dir_dirty)) {
		ret = store->flush_failed && !store->base.destroyed ? -EIO : 0;
		if (ret == 0 && store->active_fd >= 0 && !store->appended && target <= durable) {
			/* Nothing appended since a flush synced it: let it go. */
			io->close(store->active_fd);
			store->active_fd = -1;
		}
		pthread_mutex_unlock(&store->lock);
		return ret;
	}
	fds = store->sync_fds;
	count = store->sync_fd_count;
	store->sync_fds = NULL;
	store->sync_fd_count = store->sync_fd_capacity = 0;
	if (store->active_fd >= 0 && !store->appended) {
		/* Idle since the last flush: give its descriptor back (the next
		 * append reopens the pack), so that open descriptors follow the
		 * stores being written, not all stores. */
		active = store->active_fd;
		store->active_fd = -1;
	} else if (store->active_fd >= 0) {
		/* Without a descriptor to sync it, the active pack's records
		 * would be vouched for unsynced: the flush fails instead. */
		active = io->dup(store->active_fd);
		if (active < 0)
			ret = -errno;
	}
	store->appended = false;
	dir_dirty = store->dir_dirty;
	store->dir_dirty = false;
	pthread_mutex_unlock(&store->lock);

	for (size_t i = 0; i < count; i++) {
		if (io->fsync(fds[i]) < 0 && ret == 0)
			ret = -errno;
		io->close(fds[i]);
	}
	if (active >= 0) {
		if (io->fsync(active) < 0 && ret == 0)
			ret = -errno;
		io->close(active);
	}
	if (ret == 0 && dir_dirty)
		ret = datadir_fsync_dir(io, store->db->stores_fd, store->base.name);
	if (ret == 0 && target > durable)
		ret = durable_marker_write(store, target);

	pthread_mutex_lock(&store->lock);
	if (ret == 0 && target > durable)
		__atomic_store_n(&store->durable_seq, target, __ATOMIC_RELEASE);
	if (ret < 0 && !store->base.destroyed) {
		store->flush_failed = true;
		log_error("store %s: flushing to stable storage failed: %s; saves in this store "
			  "are no longer made durable until it is mounted again",
			  store->base.name, strerror(-ret));
	}
	pthread_mutex_unlock(&store->lock);
	free(fds);
	return ret;
}

static int flush_one(struct store *base, void *arg)
{
	struct local_store *store = (struct local_store *)base;
	(void)arg;
	return flush_store(store);
}

int local_db_sync(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;
	return blobdb_each_store(&db->base, flush_one, NULL);
}

static void deadline_after(struct timespec *t, unsigned ms)
{
	clock_gettime(CLOCK_REALTIME, t);
	t->tv_sec += ms / 1000;
	t->tv_nsec += (long)(ms % 1000) * 1000000;
	if (t->tv_nsec >= 1000000000) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000;
	}
}

/*
 * The background thread: a flush every flush_interval_ms, or at once when a
 * store_sync asks. Everyone who asked while a flush ran is served by the next
 * one, so concurrent syncs share one set of fsyncs (group commit).
 */
static void *flush_thread_main(void *arg)
{
	struct local_db *db = arg;

	pthread_mutex_lock(&db->flush_lock);
	while (!db->flusher_stop) {
		struct timespec deadline;
		deadline_after(&deadline, db->base.opts.flush_interval_ms);
		while (!db->flush_requested && !db->flusher_stop &&
		       pthread_cond_timedwait(&db->flush_wake, &db->flush_lock, &deadline) == 0)
			;
		if (db->flusher_stop)
			break;
		db->flush_requested = false;
		db->cycles_started++;
		pthread_mutex_unlock(&db->flush_lock);
		local_db_sync(&db->base);
		pthread_mutex_lock(&db->flush_lock);
		db->cycles_done++;
		pthread_cond_broadcast(&db->flush_done);
	}
	pthread_mutex_unlock(&db->flush_lock);
	return NULL;
}

/* Compaction has a thread of its own: rewriting a big pack takes a while,
 * and flushes (and those waiting on them) must not wait for it. */
static void *compact_thread_main(void *arg)
{
	struct local_db *db = arg;

	pthread_mutex_lock(&db->flush_lock);
	while (!db->flusher_stop) {
		struct timespec deadline;
		deadline_after(&deadline, COMPACT_INTERVAL_MS);
		while (!db->flusher_stop &&
		       pthread_cond_timedwait(&db->compact_wake, &db->flush_lock, &deadline) == 0)
			;
		if (db->flusher_stop)
			break;
		pthread_mutex_unlock(&db->flush_lock);
		compact_step(db);
		pthread_mutex_lock(&db->flush_lock);
	}
	pthread_mutex_unlock(&db->flush_lock);
	return NULL;
}

int local_db_start(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;
	int ret;

	pthread_mutex_lock(&db->flush_lock);
	ret = db->flusher_running ? 0 : -pthread_create(&db->flusher, NULL, flush_thread_main, db);
	if (ret == 0)
		db->flusher_running = true;
	if (ret == 0 && !db->compactor_running) {
		ret = -pthread_create(&db->compactor, NULL, compact_thread_main, db);
		db->compactor_running = ret == 0;
	}
	pthread_mutex_unlock(&db->flush_lock);
	if (ret < 0)
		log_error("cannot start the flusher thread: %s", strerror(-ret));
	if (ret == 0)
		ret = local_digest_start(db);
	return ret;
}

void local_threads_stop(struct local_db *db)
{
	bool running;

	bool compacting;

	local_digest_stop(db);
	pthread_mutex_lock(&db->flush_lock);
	running = db->flusher_running;
	compacting = db->compactor_running;
	db->flusher_stop = true;
	pthread_cond_broadcast(&db->flush_wake);
	pthread_cond_broadcast(&db->compact_wake);
	pthread_mutex_unlock(&db->flush_lock);
	if (running)
		pthread_join(db->flusher, NULL);
	if (compacting)
		pthread_join(db->compactor, NULL);
	db->compactor_running = false;
	pthread_mutex_lock(&db->flush_lock);
	db->flusher_running = false;
	pthread_cond_broadcast(&db->flush_done);
	pthread_mutex_unlock(&db->flush_lock);
}

int local_store_sync(struct store *base)
{
	struct local_store *store = (struct local_store *)base;
	struct local_db *db = store->db;
	uint64_t target, my_cycle;
	bool failed;

	pthread_mutex_lock(&store->lock);
	target = store->next_seq - 1;
	failed = store->flush_failed;
	pthread_mutex_unlock(&store->lock);
	if (__atomic_load_n(&store->durable_seq, __ATOMIC_ACQUIRE) >= target)
		return 0;
	if (failed)
		return -EIO;
	pthread_mutex_lock(&db->flush_lock);
	if (!db->flusher_running) {
		pthread_mutex_unlock(&db->flush_lock);
		return flush_store(store) < 0 ? -EIO : 0;
	}
	db->flush_requested = true;
	my_cycle = db->cycles_started + 1;
	pthread_cond_signal(&db->flush_wake);
	while (db->flusher_running && db->cycles_done < my_cycle &&
	       __atomic_load_n(&store->durable_seq, __ATOMIC_ACQUIRE) < target)
		pthread_cond_wait(&db->flush_done, &db->flush_lock);
	pthread_mutex_unlock(&db->flush_lock);
	if (__atomic_load_n(&store->durable_seq, __ATOMIC_ACQUIRE) >= target)
		return 0;
	return flush_store(store) < 0 ? -EIO : 0;
}
