/*
 * local_compress.c - compressed records (REC3, docs/FORMAT.md) for the
 * writers of a data directory mounted with -o compress=zstd: a small blob's
 * chunks compressed in memory, a large blob's staging file compressed into
 * a second staging file that becomes its pack. A chunk that does not shrink
 * is kept raw; a blob whose first ZGIVEUP_CHUNKS chunks all stay raw is not
 * tried further (incompressible data then costs a megabyte's attempt), and
 * a blob that would not take fewer bytes than a raw record is written raw.
 */
#include "local.h"

#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "chunk_codec.h"
#include "crc32c.h"
#include "datadir.h"
#include "io.h"
#include "log.h"
#include "pack.h"
#include <fcntl.h>
#include <stdio.h>
#include <unistd.h>

/* 16 chunks of 64 KiB: a megabyte. */
#define ZGIVEUP_CHUNKS 16

bool zbuild_wanted(const struct local_db *db, uint64_t len)
{
	return db->base.opts.compress == CHUNK_CODEC_ZSTD && len > 0;
}

static int zlevel(const struct local_db *db)
{
	return db->base.opts.compress_level ? db->base.opts.compress_level : CHUNK_CODEC_LEVEL_DEFAULT;
}

void zbuild_free(struct zbuild *zb)
{
	free(zb->chunks);
	free(zb->stored);
	memset(zb, 0, sizeof(*zb));
}

/* Compresses chunk i of a blob (n bytes at src) into out (room for n
 * bytes), filling its table entry; returns whether it shrank. */
static int zchunk_make(int level, const uint8_t *src, uint64_t n, uint8_t *out, struct zchunk *c)
{
	long got = chunk_compress(level, src, (size_t)n, out);

	if (got < 0)
		return (int)got;
	if (got == 0)
		memcpy(out, src, (size_t)n);
	c->stored = got ? (uint32_t)got : (uint32_t)n;
	c->crc = crc32c(0, out, c->stored);
	return got > 0;
}

int zbuild_make(const struct local_db *db, const void *data, uint64_t len, struct zbuild *zb)
{
	const uint64_t chunk = UINT64_C(1) << CHUNK_SHIFT_DEFAULT;
	uint64_t count = record_chunk_count(len, CHUNK_SHIFT_DEFAULT), shrunk = 0;
	const uint8_t *src = data;
	int ret = -ENOMEM;

	memset(zb, 0, sizeof(*zb));
	zb->chunks = malloc((size_t)count * sizeof(*zb->chunks));
	zb->stored = malloc((size_t)len);
	if (!zb->chunks || !zb->stored)
		goto out;
	for (uint64_t i = 0; i < count; i++) {
		uint64_t n = len - i * chunk < chunk ? len - i * chunk : chunk;
		ret = zchunk_make(zlevel(db), src + i * chunk, n, zb->stored + zb->stored_len, &zb->chunks[i]);
		if (ret < 0)
			goto out;
		shrunk += (uint64_t)ret;
		zb->stored_len += zb->chunks[i].stored;
		if (i + 1 == ZGIVEUP_CHUNKS && shrunk == 0)
			break;
	}
	/* Worth it only when the record is smaller than a raw one. */
	ret = shrunk && zrecord_size(len, CHUNK_SHIFT_DEFAULT, zb->stored_len) <
				record_size(len, CHUNK_SHIFT_DEFAULT);
out:
	if (ret <= 0)
		zbuild_free(zb);
	return ret;
}

void zstaging_discard(struct local_store *store, struct zstaging *z)
{
	const struct io_ops *io = store->db->io;
	char path[PATH_SIZE];

	if (z->fd >= 0) {
		io->close(z->fd);
		if (local_store_path(store, z->name, path) == 0)
			io->unlinkat(store->db->stores_fd, path, 0);
	}
	free(z->chunks);
	memset(z, 0, sizeof(*z));
	z->fd = -1;
}

/*
 * The compression of one staging file, shared by the threads doing it: each
 * claims the next block of BLOCK chunks, compresses it on its own, and
 * writes it when every block before it is written (stored chunks lie back to
 * back, so a block's place is known only then).
 */
#define BLOCK 16

struct zjob {
	struct local_store *store;
	int in;
	uint64_t len, count, data_off;
	struct zstaging *z;
	pthread_mutex_t lock;
	pthread_cond_t written;
	uint64_t next_claim, next_write; /* blocks */
	uint64_t stored, shrunk;
	bool stop; /* the first megabyte did not shrink: not worth going on */
	int error;
};

static void *zjob_run(void *arg)
{
	struct zjob *j = arg;
	const struct io_ops *io = j->store->db->io;
	const uint64_t chunk = UINT64_C(1) << CHUNK_SHIFT_DEFAULT;
	uint8_t *src = malloc(BLOCK * chunk), *dst = malloc(BLOCK * chunk);
	int ret = src && dst ? 0 : -ENOMEM;

	while (ret == 0) {
		uint64_t b, first, n, shrunk = 0;
		size_t out_len = 0;
		bool done;
		pthread_mutex_lock(&j->lock);
		b = j->next_claim++;
		done = b * BLOCK >= j->count || j->stop || j->error;
		pthread_mutex_unlock(&j->lock);
		if (done)
			break;
		first = b * BLOCK * chunk;
		n = j->len - first < BLOCK * chunk ? j->len - first : BLOCK * chunk;
		ret = pread_full(io, j->in, src, (size_t)n, STAGING_DATA_OFFSET + first);
		for (uint64_t k = 0; ret >= 0 && k < BLOCK && b * BLOCK + k < j->count; k++) {
			uint64_t m = n - k * chunk < chunk ? n - k * chunk : chunk;
			ret = zchunk_make(zlevel(j->store->db), src + k * chunk, m, dst + out_len,
					  &j->z->chunks[b * BLOCK + k]);
			shrunk += ret > 0;
			out_len += ret >= 0 ? j->z->chunks[b * BLOCK + k].stored : 0;
		}
		ret = ret < 0 ? ret : 0;
		pthread_mutex_lock(&j->lock);
		while (ret == 0 && j->next_write != b && !j->error && !j->stop)
			pthread_cond_wait(&j->written, &j->lock);
		if (ret == 0 && j->next_write == b && !j->error && !j->stop) {
			ret = local_check_space(j->store->db, out_len);
			if (ret == 0)
				ret = pwrite_full(io, j->z->fd, dst, out_len, j->data_off + j->stored);
			j->stored += out_len;
			j->shrunk += shrunk;
			j->next_write++;
			if ((b + 1) * BLOCK >= ZGIVEUP_CHUNKS && j->shrunk == 0)
				j->stop = true;
		}
		if (ret < 0 && !j->error)
			j->error = ret;
		pthread_cond_broadcast(&j->written);
		pthread_mutex_unlock(&j->lock);
	}
	if (ret < 0) {
		pthread_mutex_lock(&j->lock);
		if (!j->error)
			j->error = ret;
		pthread_cond_broadcast(&j->written);
		pthread_mutex_unlock(&j->lock);
	}
	free(src);
	free(dst);
	return NULL;
}

/*
 * Compresses a writer's staging file (len bytes at STAGING_DATA_OFFSET of
 * in) into a new staging file laid out as a pack of one REC3 record whose
 * stored chunks are in place; its header, table and trailer are written at
 * commit (pack_write_zframe). A second thread helps when there is a second
 * CPU (the digest threads' count says) and more than two blocks. Returns 1
 * with *z ready, 0 when the blob is better kept raw (nothing left behind),
 * or a negative errno.
 */
int zstaging_make(struct local_store *store, int in, uint64_t len, struct zstaging *z)
{
	const struct io_ops *io = store->db->io;
	struct zjob j = { .store = store, .in = in, .len = len, .z = z,
			  .count = record_chunk_count(len, CHUNK_SHIFT_DEFAULT) };
	char path[PATH_SIZE];
	pthread_t helper;
	bool helped = false;
	int ret = -ENOMEM;

	j.data_off = PACK_HEADER_SIZE + RECORD_HEADER_SIZE + ZCHUNK_ENTRY_SIZE * j.count;
	pthread_mutex_init(&j.lock, NULL);
	pthread_cond_init(&j.written, NULL);
	memset(z, 0, sizeof(*z));
	z->fd = -1;
	z->chunks = malloc((size_t)j.count * sizeof(*z->chunks));
	if (!z->chunks)
		goto out;
	snprintf(z->name, sizeof(z->name), STAGING_WRITE_FMT, (long)getpid(),
		 __atomic_add_fetch(&store->db->staging_counter, 1, __ATOMIC_RELAXED));
	ret = local_store_path(store, z->name, path);
	if (ret < 0)
		goto out;
	z->fd = io->openat(store->db->stores_fd, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (z->fd < 0) {
		ret = -errno;
		goto out;
	}
	if (store->db->digester_count > 1 && j.count > 2 * BLOCK)
		helped = pthread_create(&helper, NULL, zjob_run, &j) == 0;
	zjob_run(&j);
	if (helped)
		pthread_join(helper, NULL);
	ret = j.error;
	if (ret < 0)
		goto out;
	z->stored = j.stored;
	ret = !j.stop && j.shrunk &&
	      zrecord_size(len, CHUNK_SHIFT_DEFAULT, j.stored) < record_size(len, CHUNK_SHIFT_DEFAULT);
out:
	pthread_cond_destroy(&j.written);
	pthread_mutex_destroy(&j.lock);
	if (ret <= 0)
		zstaging_discard(store, z);
	return ret;
}
