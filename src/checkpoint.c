/*
 * checkpoint.c - encoding, writing and reading of the persisted index
 * (docs/FORMAT.md). Reading treats the file as untrusted: sizes are checked
 * against the file's length before anything is allocated, entries must be in
 * strictly increasing hash order and fit in the packs they name, and a
 * CRC32C over the whole file must match.
 */
#include "checkpoint.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "bytes.h"
#include "crc32c.h"
#include "io.h"
#include "pack.h"

_Static_assert(CHECKPOINT_HEADER_SIZE >= CHECKPOINT_ENTRY_SIZE, "the read buffer holds an entry");

#define CHECKPOINT_TRAILER_MAGIC 0x31584449u /* "IDX1" */
#define BUFFER_SIZE (1u << 20)

void checkpoint_header_encode(const struct checkpoint_header *h,
			      uint8_t out[CHECKPOINT_HEADER_SIZE])
{
	memset(out, 0, CHECKPOINT_HEADER_SIZE);
	memcpy(out, CHECKPOINT_MAGIC, 8);
	put_le32(out + 8, CHECKPOINT_VERSION); /* only the current one is written */
	put_le32(out + 12, h->pack_count);
	put_le64(out + 16, h->entry_count);
	put_le64(out + 24, h->next_seq);
	put_le32(out + 32, h->next_pack_id);
	put_le32(out + 60, crc32c(0, out, 60));
}

int checkpoint_header_decode(const uint8_t buf[CHECKPOINT_HEADER_SIZE],
			     struct checkpoint_header *h)
{
	uint32_t version = get_le32(buf + 8);

	if (memcmp(buf, CHECKPOINT_MAGIC, 8) || (version < 1 || version > CHECKPOINT_VERSION) ||
	    get_le32(buf + 60) != crc32c(0, buf, 60) || !all_zero(buf + 36, 24))
		return -EBADMSG;
	h->version = version;
	h->pack_count = get_le32(buf + 12);
	h->entry_count = get_le64(buf + 16);
	h->next_seq = get_le64(buf + 24);
	h->next_pack_id = get_le32(buf + 32);
	return 0;
}

void checkpoint_pack_encode(const struct checkpoint_pack *p, uint8_t out[CHECKPOINT_PACK_SIZE])
{
	memset(out, 0, CHECKPOINT_PACK_SIZE);
	put_le32(out, p->id);
	out[4] = p->damaged ? 1 : 0;
	out[5] = p->appendable ? 1 : 0;
	put_le64(out + 8, p->size);
	put_le64(out + 16, p->tombstone_count);
	put_le64(out + 24, p->max_seq);
	put_le64(out + 32, p->last_offset);
	put_le64(out + 40, p->last_seq);
}

int checkpoint_pack_decode(const uint8_t buf[CHECKPOINT_PACK_SIZE], struct checkpoint_pack *p)
{
	if (buf[4] > 1 || buf[5] > 1 || !all_zero(buf + 6, 2))
		return -EBADMSG;
	p->id = get_le32(buf);
	p->damaged = buf[4];
	p->appendable = buf[5];
	p->size = get_le64(buf + 8);
	p->tombstone_count = get_le64(buf + 16);
	p->max_seq = get_le64(buf + 24);
	p->last_offset = get_le64(buf + 32);
	p->last_seq = get_le64(buf + 40);
	if (p->id == 0 || p->size < PACK_HEADER_SIZE || p->size > RECORD_LENGTH_MAX ||
	    (p->last_offset && (p->last_offset < PACK_HEADER_SIZE || p->last_offset >= p->size)))
		return -EBADMSG;
	return 0;
}

void checkpoint_entry_encode(const struct index_entry *e, uint8_t out[CHECKPOINT_ENTRY_SIZE])
{
	memset(out, 0, CHECKPOINT_ENTRY_SIZE);
	memcpy(out, e->hash, BLOBFS_HASH_SIZE);
	put_le64(out + 32, e->offset);
	put_le64(out + 40, e->length);
	put_le32(out + 48, e->pack_id);
	put_le32(out + 52, (uint32_t)e->disk); /* at most INDEX_DISK_MAX */
	put_le64(out + 56, (uint64_t)e->saved);
}

int checkpoint_entry_decode(const uint8_t *buf, uint32_t version, struct index_entry *e)
{
	memset(e, 0, sizeof(*e));
	memcpy(e->hash, buf, BLOBFS_HASH_SIZE);
	e->offset = get_le64(buf + 32);
	e->length = get_le64(buf + 40);
	e->pack_id = get_le32(buf + 48);
	e->kind = RECORD_BLOB;
	/* A format 1 checkpoint was written by a blobfs that wrote only REC1
	 * records, which have no time. */
	e->saved = version == 1 ? RECORD_TIME_UNKNOWN : (int64_t)get_le64(buf + 56);
	/* Format 3 keeps a compressed record's disk size where format 2 has
	 * zeros (it wrote none). */
	e->disk = version >= 3 ? get_le32(buf + 52) : 0;
	if ((version < 3 && !all_zero(buf + 52, 4)) || e->disk != index_disk_round(e->disk) ||
	    e->pack_id == 0 || e->length > RECORD_LENGTH_MAX ||
	    e->offset < PACK_HEADER_SIZE || e->offset > INDEX_OFFSET_MAX ||
	    e->saved < RECORD_TIME_MIN || e->saved > RECORD_TIME_MAX)
		return -EBADMSG;
	return 0;
}

/* A buffered writer that checksums everything it writes. */
struct out {
	const struct io_ops *io;
	int fd;
	uint8_t *buf;
	size_t used;
	uint64_t pos;
	uint32_t crc;
	int error;
};

static void out_flush(struct out *o)
{
	if (o->error == 0 && o->used)
		o->error = pwrite_full(o->io, o->fd, o->buf, o->used, o->pos);
	o->pos += o->used;
	o->used = 0;
}

static void out_put(struct out *o, const uint8_t *p, size_t n)
{
	o->crc = crc32c(o->crc, p, n);
	if (o->used + n > BUFFER_SIZE)
		out_flush(o);
	memcpy(o->buf + o->used, p, n);
	o->used += n;
}

/*
 * Writes the file: header, packs, the entries next() hands out (in hash
 * order, blobs only), trailer, then fsync. With count_known the header is
 * final from the start (h->entry_count must come out right) and the CRC is
 * taken as the bytes go; otherwise the count is known only at the end, so
 * the header is written then and the CRC taken by reading the file back
 * (from the page cache).
 */
static int write_checkpoint(const struct io_ops *io, int dirfd, const char *name,
			    struct checkpoint_header *h, const struct checkpoint_pack *packs,
			    checkpoint_next_fn next, void *arg, bool count_known)
{
	enum { BATCH = 4096 };
	struct out o = { .io = io, .fd = -1 };
	struct index_entry *batch = malloc(BATCH * sizeof(*batch));
	uint8_t buf[CHECKPOINT_HEADER_SIZE > CHECKPOINT_PACK_SIZE ? CHECKPOINT_HEADER_SIZE
								     : CHECKPOINT_PACK_SIZE];
	uint8_t prev[BLOBFS_HASH_SIZE];
	uint64_t expect = h->entry_count, written = 0;
	uint32_t crc = 0;
	long got;
	int ret = -ENOMEM;

	o.buf = malloc(BUFFER_SIZE);
	if (!o.buf || !batch)
		goto out;
	o.fd = io->openat(dirfd, name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (o.fd < 0) {
		ret = -errno;
		goto out;
	}
	if (count_known)
		checkpoint_header_encode(h, buf);
	else
		memset(buf, 0, CHECKPOINT_HEADER_SIZE);
	out_put(&o, buf, CHECKPOINT_HEADER_SIZE);
	for (uint32_t i = 0; i < h->pack_count; i++) {
		checkpoint_pack_encode(&packs[i], buf);
		out_put(&o, buf, CHECKPOINT_PACK_SIZE);
	}
	ret = 0;
	while (ret == 0 && (got = next(arg, batch, BATCH)) > 0) {
		for (long i = 0; ret == 0 && i < got; i++) {
			uint8_t entry[CHECKPOINT_ENTRY_SIZE];
			if (batch[i].kind != RECORD_BLOB)
				continue;
			if (written && memcmp(prev, batch[i].hash, BLOBFS_HASH_SIZE) >= 0)
				ret = -EINVAL; /* the entries must come in hash order */
			memcpy(prev, batch[i].hash, BLOBFS_HASH_SIZE);
			checkpoint_entry_encode(&batch[i], entry);
			out_put(&o, entry, sizeof(entry));
			written++;
		}
	}
	if (ret == 0 && got < 0)
		ret = (int)got;
	if (ret == 0 && count_known && written != expect)
		ret = -EINVAL; /* the caller's count must match what is written */
	out_flush(&o);
	if (ret == 0)
		ret = o.error;
	crc = o.crc;
	if (ret == 0 && !count_known) {
		h->entry_count = written;
		checkpoint_header_encode(h, buf);
		ret = pwrite_full(io, o.fd, buf, CHECKPOINT_HEADER_SIZE, 0);
		crc = 0;
		for (uint64_t pos = 0; ret == 0 && pos < o.pos; pos += BUFFER_SIZE) {
			size_t n = o.pos - pos < BUFFER_SIZE ? (size_t)(o.pos - pos) : BUFFER_SIZE;
			ret = pread_full(io, o.fd, o.buf, n, pos);
			if (ret == 0)
				crc = crc32c(crc, o.buf, n);
		}
	}
	put_le32(buf, CHECKPOINT_TRAILER_MAGIC);
	put_le32(buf + 4, crc);
	if (ret == 0)
		ret = pwrite_full(io, o.fd, buf, CHECKPOINT_TRAILER_SIZE, o.pos);
	if (ret == 0 && io->fsync(o.fd) < 0)
		ret = -errno;
out:
	if (o.fd >= 0)
		io->close(o.fd);
	free(o.buf);
	free(batch);
	return ret;
}

/* The whole of an index that does not change meanwhile, a batch at a time. */
struct index_walk {
	const struct index *index;
	uint8_t last[BLOBFS_HASH_SIZE];
	bool started;
};

static long index_walk_next(void *arg, struct index_entry *out, size_t max)
{
	struct index_walk *w = arg;
	size_t got = index_seek_many(w->index, w->started ? w->last : NULL, w->started, out, max);

	if (got) {
		memcpy(w->last, out[got - 1].hash, BLOBFS_HASH_SIZE);
		w->started = true;
	}
	return (long)got;
}

int checkpoint_write(const struct io_ops *io, int dirfd, const char *name, const struct checkpoint_header *h,
		     const struct checkpoint_pack *packs, const struct index *index)
{
	struct checkpoint_header copy = *h;
	struct index_walk walk = { .index = index };

	return write_checkpoint(io, dirfd, name, &copy, packs, index_walk_next, &walk, true);
}

int checkpoint_write_batched(const struct io_ops *io, int dirfd, const char *name,
			     struct checkpoint_header *h, const struct checkpoint_pack *packs,
			     checkpoint_next_fn next, void *arg)
{
	return write_checkpoint(io, dirfd, name, h, packs, next, arg, false);
}

/* A buffered reader that checksums everything it reads. */
struct in {
	const struct io_ops *io;
	int fd;
	uint8_t *buf;
	size_t have, used;
	uint64_t pos;
	uint32_t crc;
};

static int in_get(struct in *r, uint8_t *p, size_t n, bool checksum)
{
	while (n) {
		if (r->used == r->have) {
			ssize_t got = r->io->pread(r->fd, r->buf, BUFFER_SIZE, (off_t)r->pos);
			if (got < 0)
				return -errno;
			if (got == 0)
				return -EBADMSG;
			r->pos += (uint64_t)got;
			r->have = (size_t)got;
			r->used = 0;
		}
		size_t k = r->have - r->used < n ? r->have - r->used : n;
		memcpy(p, r->buf + r->used, k);
		if (checksum)
			r->crc = crc32c(r->crc, p, k);
		r->used += k;
		p += k;
		n -= k;
	}
	return 0;
}

int checkpoint_read(const struct io_ops *io, int dirfd, const char *name, struct checkpoint_header *h,
		    struct checkpoint_pack **packs_out, struct index *index)
{
	struct in r = { .io = io, .fd = -1 };
	struct checkpoint_pack *packs = NULL;
	uint8_t buf[CHECKPOINT_HEADER_SIZE], prev[BLOBFS_HASH_SIZE];
	struct stat st;
	uint64_t entry_size;
	int ret;

	*packs_out = NULL;
	r.fd = io->openat(dirfd, name, O_RDONLY | O_CLOEXEC, 0);
	if (r.fd < 0)
		return -errno;
	ret = io->fstat(r.fd, &st) < 0 ? -errno : 0;
	r.buf = malloc(BUFFER_SIZE);
	if (ret == 0 && !r.buf)
		ret = -ENOMEM;
	if (ret == 0)
		ret = in_get(&r, buf, CHECKPOINT_HEADER_SIZE, true);
	if (ret == 0)
		ret = checkpoint_header_decode(buf, h);
	if (ret < 0)
		goto out;
	/* The counts must add up to the file's length exactly, before they
	 * size anything. */
	ret = -EBADMSG;
	entry_size = checkpoint_entry_size(h->version);
	if (h->pack_count > (uint64_t)st.st_size / CHECKPOINT_PACK_SIZE ||
	    h->entry_count > (uint64_t)st.st_size / entry_size ||
	    (uint64_t)st.st_size != CHECKPOINT_HEADER_SIZE +
					    (uint64_t)h->pack_count * CHECKPOINT_PACK_SIZE +
					    h->entry_count * entry_size +
					    CHECKPOINT_TRAILER_SIZE)
		goto out;
	ret = index_reserve(index, (size_t)h->entry_count);
	if (ret < 0)
		goto out;
	ret = -ENOMEM;
	packs = calloc(h->pack_count ? h->pack_count : 1, sizeof(*packs));
	if (!packs)
		goto out;
	for (uint32_t i = 0; i < h->pack_count; i++) {
		ret = in_get(&r, buf, CHECKPOINT_PACK_SIZE, true);
		if (ret == 0)
			ret = checkpoint_pack_decode(buf, &packs[i]);
		if (ret == 0 && i && packs[i].id <= packs[i - 1].id)
			ret = -EBADMSG; /* sorted, no duplicates */
		if (ret < 0)
			goto out;
	}
	for (uint64_t i = 0; i < h->entry_count; i++) {
		struct index_entry e;
		struct checkpoint_pack *p = NULL;
		size_t lo = 0, hi = h->pack_count;
		ret = in_get(&r, buf, (size_t)entry_size, true);
		if (ret == 0)
			ret = checkpoint_entry_decode(buf, h->version, &e);
		if (ret == 0 && i && memcmp(prev, e.hash, BLOBFS_HASH_SIZE) >= 0)
			ret = -EBADMSG;
		while (ret == 0 && lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (packs[mid].id == e.pack_id) {
				p = &packs[mid];
				break;
			}
			if (packs[mid].id < e.pack_id)
				lo = mid + 1;
			else
				hi = mid;
		}
		/* With the largest chunks a record is smallest: it must fit
		 * (compressed, each chunk stores at least a byte). */
		if (ret == 0 && (!p || e.offset > p->size ||
				 (e.disk ? zrecord_size(e.length, CHUNK_SHIFT_MAX,
							record_chunk_count(e.length, CHUNK_SHIFT_MAX)) :
					   record_size(e.length, CHUNK_SHIFT_MAX)) > p->size - e.offset))
			ret = -EBADMSG;
		if (ret == 0)
			ret = index_append(index, &e); /* in hash order, checked above */
		if (ret < 0)
			goto out;
		memcpy(prev, e.hash, BLOBFS_HASH_SIZE);
	}
	{
		uint32_t crc = r.crc;
		ret = in_get(&r, buf, CHECKPOINT_TRAILER_SIZE, false);
		if (ret == 0 && (get_le32(buf) != CHECKPOINT_TRAILER_MAGIC || get_le32(buf + 4) != crc))
			ret = -EBADMSG;
	}
out:
	if (ret < 0) {
		free(packs);
		packs = NULL;
	}
	*packs_out = packs;
	if (r.fd >= 0)
		io->close(r.fd);
	free(r.buf);
	return ret;
}

bool checkpoint_pack_matches(const struct io_ops *io, int dirfd, const struct checkpoint_pack *cp)
{
	char name[PACK_NAME_SIZE];
	struct record_info rec;
	struct stat st;
	bool ok = false;
	int fd;

	pack_name(cp->id, name);
	fd = io->openat(dirfd, name, O_RDONLY | O_CLOEXEC, 0);
	if (fd < 0)
		return false;
	if (io->fstat(fd, &st) == 0 && (uint64_t)st.st_size >= cp->size)
		ok = !cp->last_offset ||
		     (pack_read_record(io, fd, cp->last_offset, &rec) == 0 &&
		      rec.seq == cp->last_seq && record_end(&rec) <= cp->size);
	io->close(fd);
	return ok;
}

bool checkpoint_usable(const struct io_ops *io, int dirfd, const struct checkpoint_header *h,
		       const struct checkpoint_pack *packs)
{
	for (uint32_t i = 0; i < h->pack_count; i++)
		if (!checkpoint_pack_matches(io, dirfd, &packs[i]))
			return false;
	return true;
}
