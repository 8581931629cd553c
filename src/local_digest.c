/*
 * local_digest.c - hashing staging files off the request path. A write to a
 * writer's staging file returns once its bytes are in the file; SHA-256 and
 * the chunk CRC32Cs of what lies beyond the digest are computed by a pool of
 * digest threads, a MiB at a time, reading the bytes back from the page
 * cache. So a client's next write and the hash of its last one run on two
 * cores instead of one after the other (without this, a large copy ran at
 * the transfer's speed plus the hash's, the client waiting for both). A
 * commit waits for the MiB under way and hashes what is left itself
 * (writer_digest_finish); writers in memory (small files) hash inline.
 *
 * Locks: a writer's lock, then db->digest_lock, never the other way. A
 * digest thread claims a writer under digest_lock (local_writer_free waits
 * for the claim to end), takes the range [digested, digest_busy_end) under
 * the writer's lock, hashes it with no lock held, and gives it back under
 * the writer's lock. Meanwhile the writer's operations that would touch the
 * digest or those bytes wait (digest_wait); writes further on do not.
 */
#include "local.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "pack.h"

#define DIGEST_STEP (1u << 20)
#define DIGESTERS_MAX 8

bool digest_enabled(const struct local_db *db)
{
	return db->digester_count > 0;
}

static void queue_push(struct local_db *db, struct local_writer *w)
{
	w->digest_next = NULL;
	if (db->digest_tail)
		db->digest_tail->digest_next = w;
	else
		db->digest_head = w;
	db->digest_tail = w;
	w->digest_queued = true;
	pthread_cond_signal(&db->digest_wake);
}

static void queue_remove(struct local_db *db, struct local_writer *w)
{
	struct local_writer **p = &db->digest_head, *prev = NULL;

	if (!w->digest_queued)
		return;
	while (*p && *p != w) {
		prev = *p;
		p = &(*p)->digest_next;
	}
	if (*p)
		*p = w->digest_next;
	if (db->digest_tail == w)
		db->digest_tail = prev;
	w->digest_next = NULL;
	w->digest_queued = false;
}

void digest_later(struct local_writer *w)
{
	struct local_db *db = w->store->db;

	if (!digest_enabled(db))
		return;
	pthread_mutex_lock(&db->digest_lock);
	if (!w->digest_queued && !w->digest_claimed)
		queue_push(db, w);
	pthread_mutex_unlock(&db->digest_lock);
}

void digest_wait(struct local_writer *w, uint64_t from)
{
	while (w->digest_busy && from < w->digest_busy_end)
		pthread_cond_wait(&w->digest_idle, &w->lock);
}

void digest_forget(struct local_writer *w)
{
	struct local_db *db = w->store->db;

	if (!digest_enabled(db))
		return;
	pthread_mutex_lock(&db->digest_lock);
	/* The claim ends first: a digest thread that had it puts the writer
	 * back on the queue when there is more to hash. */
	while (w->digest_claimed)
		pthread_cond_wait(&db->digest_released, &db->digest_lock);
	queue_remove(db, w);
	pthread_mutex_unlock(&db->digest_lock);
}

/* Hashes the next MiB of a claimed writer; whether more is left to hash. */
static bool digest_step(struct local_writer *w, uint8_t *buf)
{
	const struct io_ops *io = w->store->db->io;
	uint64_t from;
	size_t n;
	bool more;
	int ret, fd;

	pthread_mutex_lock(&w->lock);
	if (w->error || w->in_memory || w->fd < 0 || w->digested >= w->size) {
		pthread_mutex_unlock(&w->lock);
		return false;
	}
	from = w->digested;
	n = w->size - from < DIGEST_STEP ? (size_t)(w->size - from) : DIGEST_STEP;
	fd = w->fd;
	w->digest_busy = true;
	w->digest_busy_end = from + n;
	pthread_mutex_unlock(&w->lock);

	/* The file and the digest are this thread's until digest_busy goes:
	 * nothing closes fd or touches the digest meanwhile. */
	ret = pread_full(io, fd, buf, n, STAGING_DATA_OFFSET + from);
	if (ret == 0)
		ret = writer_feed(w, buf, n);

	pthread_mutex_lock(&w->lock);
	w->digest_busy = false;
	pthread_cond_broadcast(&w->digest_idle);
	if (ret < 0) {
		/* The commit reads the whole file back instead (and meets the
		 * error again, if it lasts, where it can report it). */
		log_debug("store %s: background digest: %s", w->store->base.name, strerror(-ret));
		writer_digest_reset(w);
	}
	more = ret == 0 && !w->error && !w->in_memory && w->fd >= 0 && w->digested < w->size;
	pthread_mutex_unlock(&w->lock);
	return more;
}

static void *digest_thread_main(void *arg)
{
	struct local_db *db = arg;
	uint8_t *buf = malloc(DIGEST_STEP);

	pthread_mutex_lock(&db->digest_lock);
	while (!db->digest_stop) {
		struct local_writer *w = db->digest_head;
		bool more;

		if (!w) {
			pthread_cond_wait(&db->digest_wake, &db->digest_lock);
			continue;
		}
		queue_remove(db, w);
		w->digest_claimed = true;
		pthread_mutex_unlock(&db->digest_lock);
		/* Without a buffer the commit hashes it all: slower, not wrong. */
		more = buf && digest_step(w, buf);
		pthread_mutex_lock(&db->digest_lock);
		w->digest_claimed = false;
		if (more && !w->digest_queued)
			queue_push(db, w); /* behind the others: one MiB each in turn */
		pthread_cond_broadcast(&db->digest_released);
	}
	pthread_mutex_unlock(&db->digest_lock);
	free(buf);
	return NULL;
}

int local_digest_start(struct local_db *db)
{
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned want = cpus < 1 ? 1 : cpus > DIGESTERS_MAX ? DIGESTERS_MAX : (unsigned)cpus;
	int ret = 0;

	if (db->digester_count)
		return 0;
	db->digesters = calloc(want, sizeof(*db->digesters));
	if (!db->digesters)
		return -ENOMEM;
	pthread_mutex_lock(&db->digest_lock);
	db->digest_stop = false;
	while (db->digester_count < want) {
		ret = -pthread_create(&db->digesters[db->digester_count], NULL, digest_thread_main, db);
		if (ret < 0)
			break;
		db->digester_count++;
	}
	pthread_mutex_unlock(&db->digest_lock);
	/* Fewer threads (or none: writes then hash inline) still work. */
	if (ret < 0)
		log_warning("started %u of %u digest threads: %s", db->digester_count, want,
			    strerror(-ret));
	return 0;
}

void local_digest_stop(struct local_db *db)
{
	unsigned count;

	pthread_mutex_lock(&db->digest_lock);
	db->digest_stop = true;
	count = db->digester_count;
	pthread_cond_broadcast(&db->digest_wake);
	pthread_mutex_unlock(&db->digest_lock);
	for (unsigned i = 0; i < count; i++)
		pthread_join(db->digesters[i], NULL);
	/* Writers still queued (none, once every writer is freed) hash at
	 * their commit. */
	pthread_mutex_lock(&db->digest_lock);
	db->digester_count = 0;
	while (db->digest_head)
		queue_remove(db, db->digest_head);
	pthread_mutex_unlock(&db->digest_lock);
	free(db->digesters);
	db->digesters = NULL;
}
