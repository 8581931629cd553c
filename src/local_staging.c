/*
 * local_staging.c - where an incoming writer's content is held (local_write.c
 * is what a writer does with it): the database's memory budget for the
 * writers' buffers, a writer's buffer in memory, and its staging file
 * (stores/S/staging-*.tmp, laid out as a one-record pack) once it spills.
 *
 * The budget (writer_memory_max, WRITER_MEMORY_DEFAULT unless set) bounds
 * what every writer of the database holds in memory together: each buffer
 * is charged its capacity before it is allocated, and given back when the
 * writer spills or is freed (a commit gives back the buffer's slack; the
 * content itself stays, as the file may be written again). A writer whose
 * buffer would pass the budget, or WRITER_MEMORY_EACH, or that gets a hole
 * (a truncate up, a write past the end), spills to its staging file
 * instead: a sparse file, grown by ftruncate, so a hole costs neither
 * memory nor disk. The budget is an atomic, taken under the writer's lock
 * only (no other lock is involved).
 *
 * Descriptors: a spilled writer holds one (its staging file). When the
 * process has none left, creating the staging file fails with -EMFILE (or
 * -ENFILE), logged here; the write or truncate that needed it fails with
 * that error (the client sees ENFILE) and the daemon goes on.
 */
#include "local.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "datadir.h"
#include "io.h"
#include "log.h"
#include "pack.h"

#define MEM_BLOCK 4096u
#define COPY_BUFFER_SIZE (1u << 20)

/* ---- the budget ---- */

/* Charges bytes to the budget: -ENOSPC (nothing charged) when it has not
 * that much left. */
int writer_memory_take(struct local_db *db, uint64_t bytes)
{
	uint64_t used = __atomic_load_n(&db->writer_memory_used, __ATOMIC_RELAXED);

	do {
		if (bytes > db->writer_memory_max || used > db->writer_memory_max - bytes)
			return -ENOSPC;
	} while (!__atomic_compare_exchange_n(&db->writer_memory_used, &used, used + bytes, true,
					      __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return 0;
}

void writer_memory_give(struct local_db *db, uint64_t bytes)
{
	__atomic_sub_fetch(&db->writer_memory_used, bytes, __ATOMIC_RELAXED);
}

uint64_t local_db_writer_memory(struct blobdb *base)
{
	struct local_db *db = (struct local_db *)base;

	return __atomic_load_n(&db->writer_memory_used, __ATOMIC_RELAXED);
}

/* ---- the buffer ---- */

/* Grows the buffer to hold end bytes (end <= WRITER_MEMORY_EACH): by
 * doubling when the budget allows, else to what end needs; spills when
 * even that does not fit. */
int writer_mem_grow(struct local_writer *w, uint64_t end)
{
	struct local_db *db = w->store->db;
	uint64_t capacity = w->mem_capacity ? w->mem_capacity : MEM_BLOCK;
	uint8_t *mem;

	while (capacity < end)
		capacity *= 2;
	if (capacity > WRITER_MEMORY_EACH)
		capacity = WRITER_MEMORY_EACH;
	if (writer_memory_take(db, capacity - w->mem_capacity) < 0) {
		capacity = (end + MEM_BLOCK - 1) / MEM_BLOCK * MEM_BLOCK;
		if (capacity > WRITER_MEMORY_EACH)
			capacity = end;
		if (writer_memory_take(db, capacity - w->mem_capacity) < 0)
			return writer_spill(w); /* the budget is spent: a file */
	}
	mem = realloc(w->mem, (size_t)capacity);
	if (!mem) {
		writer_memory_give(db, capacity - w->mem_capacity);
		return -ENOMEM;
	}
	w->mem = mem;
	w->mem_capacity = (size_t)capacity;
	return 0;
}

/* Gives back what the buffer holds beyond the content (after a commit). */
void writer_mem_trim(struct local_writer *w)
{
	uint64_t capacity = (w->size + MEM_BLOCK - 1) / MEM_BLOCK * MEM_BLOCK;
	uint8_t *mem;

	if (!w->in_memory || capacity >= w->mem_capacity)
		return;
	if (capacity == 0) {
		writer_mem_free(w);
		return;
	}
	mem = realloc(w->mem, (size_t)capacity);
	if (!mem)
		return; /* keeps the larger buffer, still charged */
	writer_memory_give(w->store->db, w->mem_capacity - capacity);
	w->mem = mem;
	w->mem_capacity = (size_t)capacity;
}

void writer_mem_free(struct local_writer *w)
{
	writer_memory_give(w->store->db, w->mem_capacity);
	free(w->mem);
	w->mem = NULL;
	w->mem_capacity = 0;
}

/* ---- the staging file ---- */

int staging_create(struct local_writer *w)
{
	struct local_store *store = w->store;
	const struct io_ops *io = store->db->io;
	char path[PATH_SIZE];
	int ret;

	if (store_destroyed(&store->base))
		return -ENOENT; /* its directory may be another store's by now */

	snprintf(w->staging_name, sizeof(w->staging_name), STAGING_WRITE_FMT,
		 (long)getpid(), __atomic_add_fetch(&store->db->staging_counter, 1, __ATOMIC_RELAXED));
	ret = local_store_path(store, w->staging_name, path);
	if (ret < 0)
		return ret;
	w->fd = io->openat(store->db->stores_fd, path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (w->fd < 0) {
		ret = -errno;
		log_error("store %s: cannot create staging file: %s%s", store->base.name,
			  strerror(-ret), ret == -EMFILE || ret == -ENFILE ?
			  " (every spilled incoming file holds a descriptor: raise the daemon's "
			  "RLIMIT_NOFILE or close files)" : "");
		return ret;
	}
	return 0;
}

/* Closes and removes the staging file (the writer has none afterwards). */
void staging_discard(struct local_writer *w)
{
	const struct io_ops *io = w->store->db->io;
	char path[PATH_SIZE];

	if (w->fd < 0)
		return;
	io->close(w->fd);
	w->fd = -1;
	if (local_store_path(w->store, w->staging_name, path) == 0)
		io->unlinkat(w->store->db->stores_fd, path, 0);
}

/* Moves in-memory content to a staging file and gives its memory back. On
 * failure (-ENOSPC when the disk or its reserve is full) the content stays
 * in memory. */
int writer_spill(struct local_writer *w)
{
	const struct io_ops *io = w->store->db->io;
	int ret = local_check_space(w->store->db, w->size);

	if (ret == 0)
		ret = staging_create(w);
	if (ret == 0 && w->size)
		ret = pwrite_full(io, w->fd, w->mem, (size_t)w->size, STAGING_DATA_OFFSET);
	if (ret == 0 && io->ftruncate(w->fd, (off_t)(STAGING_DATA_OFFSET + w->size)) < 0)
		ret = -errno;
	if (ret < 0) {
		staging_discard(w); /* the partial file goes */
		return ret;
	}
	writer_mem_free(w);
	w->in_memory = false;
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/*
 * Copies len bytes from in to out, which must already be at least
 * out_off + len long (grown by ftruncate): blocks of zeros are not written,
 * so that they stay holes and a sparse blob stays sparse. Memory: one
 * buffer of COPY_BUFFER_SIZE, whatever len is.
 */
int staging_copy_sparse(const struct io_ops *io, int in, uint64_t in_off, int out,
			uint64_t out_off, uint64_t len)
{
	uint8_t *buf = len ? malloc(len < COPY_BUFFER_SIZE ? (size_t)len : COPY_BUFFER_SIZE) : NULL;
	int ret = len && !buf ? -ENOMEM : 0;

	while (ret == 0 && len) {
		size_t n = len < COPY_BUFFER_SIZE ? (size_t)len : COPY_BUFFER_SIZE, at = 0;
		ret = pread_full(io, in, buf, n, in_off);
		while (ret == 0 && at < n) {
			/* The next run of blocks that are not all zeros. */
			size_t start, end;
			while (at < n && all_zero(buf + at, n - at < MEM_BLOCK ? n - at : MEM_BLOCK))
				at += MEM_BLOCK;
			start = at < n ? at : n;
			end = start;
			while (end < n && !all_zero(buf + end, n - end < MEM_BLOCK ? n - end : MEM_BLOCK))
				end += MEM_BLOCK;
			if (end > n)
				end = n;
			if (end > start)
				ret = pwrite_full(io, out, buf + start, end - start, out_off + start);
			at = end;
		}
		in_off += n;
		out_off += n;
		len -= n;
	}
	free(buf);
	return ret;
}
