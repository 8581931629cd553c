/*
 * local_ahead.c - hashing ahead of a reader. SHA-256 runs at about 1.6 GB/s
 * on a core here, slower than the rest of a read (pread, CRC32C, the copy to
 * the client) together, so a reader of a large raw blob that starts at its
 * beginning hands its whole-blob hash to a thread of its own. The thread
 * reads the record from the pack, checks each chunk's CRC32C and hashes it
 * while the reads go on; the read that completes the blob waits for it and
 * compares (local_read.c), as the inline hash would.
 *
 * The thread never decides anything about the blob: at the first chunk it
 * cannot read or check, when the reads stop coming for AHEAD_IDLE, or when
 * it is done, it ends, and the reader goes on hashing inline from where it
 * stopped (a damaged chunk is then found, and logged, by the reads as
 * before). It stays within twice the bytes served (at most AHEAD_WINDOW
 * ahead of them), so a reader that stops early costs little more than what
 * it read. At most ahead_max (one per CPU) hash at once; other readers hash
 * inline. Compressed records always hash inline: their chunks are decoded
 * once, by the reads.
 */
#include "local.h"

#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "crc32c.h"
#include "hash.h"
#include "io.h"
#include "pack.h"

#define AHEAD_MIN_LENGTH (UINT64_C(8) << 20)
#define AHEAD_BLOCK (256 * 1024)
#define AHEAD_WINDOW (UINT64_C(64) << 20)
#define AHEAD_STACK (256 * 1024)
#define AHEAD_IDLE_SECONDS 1

/* How many bytes from hashed the thread may hash now: whole chunks (so that
 * each is checked) within the limit, up to AHEAD_BLOCK; 0 to wait
 * (reader->lock held). */
static size_t ahead_next(const struct local_reader *reader)
{
	const uint64_t length = reader->base.length, at = reader->hashed;
	const uint64_t chunk = UINT64_C(1) << reader->chunk_shift;
	uint64_t lead = reader->served < AHEAD_WINDOW ? reader->served : AHEAD_WINDOW;
	uint64_t limit, n;

	if (lead < AHEAD_BLOCK)
		lead = AHEAD_BLOCK;
	/* served counts whole chunk spans, so it can pass the length; once it
	 * has, the read that completes the blob waits for the rest. */
	if (reader->served >= length || length - reader->served < lead)
		limit = length;
	else
		limit = reader->served + lead;
	if (at >= limit)
		return 0;
	n = limit - at < AHEAD_BLOCK ? limit - at : AHEAD_BLOCK;
	if (at + n < length)
		n &= ~(chunk - 1);
	return (size_t)n;
}

/* Reads [at, at + n) of the blob into buf and checks each chunk. */
static int ahead_read(struct local_reader *reader, uint8_t *buf, uint64_t at, size_t n)
{
	const uint64_t chunk = UINT64_C(1) << reader->chunk_shift;
	int ret = pread_full(reader->store->db->io, reader->fd, buf, n, reader->data_offset + at);

	for (uint64_t pos = 0; ret == 0 && pos < n; pos += chunk) {
		size_t len = n - pos < chunk ? (size_t)(n - pos) : (size_t)chunk;
		if (crc32c(0, buf + pos, len) != reader->crcs[(at + pos) >> reader->chunk_shift])
			ret = -EBADMSG;
	}
	return ret;
}

static void *ahead_main(void *arg)
{
	struct local_reader *reader = arg;
	const uint64_t length = reader->base.length;
	uint8_t *buf = malloc(AHEAD_BLOCK);
	int ret = buf ? 0 : -ENOMEM;

	pthread_mutex_lock(&reader->lock);
	while (ret == 0 && !reader->ahead_stop && reader->hashed < length) {
		uint64_t at = reader->hashed;
		size_t n = ahead_next(reader);
		if (n == 0) {
			struct timespec until;
			clock_gettime(CLOCK_MONOTONIC, &until);
			until.tv_sec += AHEAD_IDLE_SECONDS;
			ret = -pthread_cond_timedwait(&reader->ahead_wake, &reader->lock, &until);
			continue;
		}
		pthread_mutex_unlock(&reader->lock);
		ret = ahead_read(reader, buf, at, n);
		if (ret == 0)
			ret = hasher_update(reader->hasher, buf, n);
		pthread_mutex_lock(&reader->lock);
		if (ret == 0)
			reader->hashed = at + n;
	}
	/* The slot is given back now, not at the join: an idle reader must not
	 * keep hashing ahead from the others. */
	__atomic_sub_fetch(&reader->store->db->ahead_running, 1, __ATOMIC_RELAXED);
	reader->ahead_finished = true;
	pthread_cond_broadcast(&reader->ahead_done);
	pthread_mutex_unlock(&reader->lock);
	free(buf);
	return NULL;
}

void local_ahead_start(struct local_reader *reader)
{
	struct local_db *db = reader->store->db;
	pthread_attr_t attr;
	bool started = false;

	if (reader->ahead_tried)
		return;
	reader->ahead_tried = true;
	if (reader->zchunks || reader->base.length < AHEAD_MIN_LENGTH ||
	    (UINT64_C(1) << reader->chunk_shift) > AHEAD_BLOCK)
		return;
	if (__atomic_add_fetch(&db->ahead_running, 1, __ATOMIC_RELAXED) > db->ahead_max)
		goto out;
	if (pthread_attr_init(&attr) != 0)
		goto out;
	if (pthread_attr_setstacksize(&attr, AHEAD_STACK) == 0)
		started = pthread_create(&reader->ahead_thread, &attr, ahead_main, reader) == 0;
	pthread_attr_destroy(&attr);
out:
	if (started)
		reader->ahead = true;
	else
		__atomic_sub_fetch(&db->ahead_running, 1, __ATOMIC_RELAXED);
}

/* Joins a thread that has finished (reader->lock held: it no longer takes
 * the lock once it has said so). */
static void ahead_join(struct local_reader *reader)
{
	pthread_join(reader->ahead_thread, NULL);
	reader->ahead = false;
}

bool local_ahead_active(struct local_reader *reader, bool completes)
{
	if (reader->ahead && !reader->ahead_finished) {
		pthread_cond_signal(&reader->ahead_wake);
		if (!completes)
			return true;
		while (!reader->ahead_finished)
			pthread_cond_wait(&reader->ahead_done, &reader->lock);
	}
	/* Another read may have joined it while this one waited (the wait
	 * lets go of the lock): a thread is joined once. */
	if (reader->ahead)
		ahead_join(reader);
	return false;
}

static void ahead_stop(struct local_reader *reader)
{
	if (!reader->ahead)
		return;
	pthread_mutex_lock(&reader->lock);
	reader->ahead_stop = true;
	pthread_cond_signal(&reader->ahead_wake);
	pthread_mutex_unlock(&reader->lock);
	pthread_join(reader->ahead_thread, NULL);
	reader->ahead = false;
}

void local_ahead_init(struct local_reader *reader)
{
	pthread_condattr_t attr;

	/* The idle wait measures time passing, not the wall clock. (Were the
	 * clock refused, the wait would end at once and the thread with it:
	 * the reader would hash inline, only slower.) */
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&reader->ahead_wake, &attr);
	pthread_condattr_destroy(&attr);
	pthread_cond_init(&reader->ahead_done, NULL);
}

void local_ahead_destroy(struct local_reader *reader)
{
	ahead_stop(reader);
	pthread_cond_destroy(&reader->ahead_wake);
	pthread_cond_destroy(&reader->ahead_done);
}
