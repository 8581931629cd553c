/*
 * packutil.c - the pack-format tests' fixture: see packutil.h.
 */
#include "packutil.h"

#include "io.h"
#include "crc32c.h"
#include "hash.h"

int pack_tests_main(const char *argv0, const pack_test_fn *tests, size_t n)
{
	const char *dir;

	tu_init(argv0);
	dir = tu_tmpdir();
	for (size_t i = 0; i < n; i++)
		tests[i](dir);
	return tu_finish();
}

bool same_record(const struct record_info *a, const struct record_info *b)
{
	return a->offset == b->offset && a->kind == b->kind && a->chunk_shift == b->chunk_shift &&
	       a->seq == b->seq && a->length == b->length && a->time == b->time &&
	       !memcmp(a->hash, b->hash, BLOBFS_HASH_SIZE);
}

/* ---- writing a pack ---- */

void pack_file_new(struct pack_file *p, const char *dir, uint32_t id)
{
	char name[PACK_NAME_SIZE];

	memset(p, 0, sizeof(*p));
	p->id = id;
	p->dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(p->dirfd >= 0);
	REQUIRE(pack_create(io_system(), p->dirfd, id, &p->fd) == 0);
	pack_name(id, name);
	snprintf(p->path, sizeof(p->path), "%s/%s", dir, name);
	p->end = PACK_HEADER_SIZE;
	CHECK_EQ(tu_file_size(p->path), PACK_HEADER_SIZE);
}

void pack_file_close(struct pack_file *p)
{
	for (size_t i = 0; i < p->count; i++)
		free(p->recs[i].data);
	free(p->recs);
	if (p->fd >= 0)
		close(p->fd);
	close(p->dirfd);
	memset(p, 0, sizeof(*p));
}

void pack_file_append(struct pack_file *p, enum record_kind kind, uint64_t length,
		      unsigned shift, bool via_frame)
{
	struct written w;

	memset(&w, 0, sizeof(w));
	w.rec.kind = kind;
	w.rec.chunk_shift = shift;
	w.rec.length = kind == RECORD_TOMBSTONE ? 0 : length;
	w.rec.seq = p->count + 1;
	w.rec.offset = p->end;
	if (kind == RECORD_BLOB) {
		w.data = tu_random_buffer((size_t)w.rec.length);
		REQUIRE(hash_buffer(w.data, (size_t)w.rec.length, w.rec.hash) == 0);
	} else {
		tu_fill_random(w.rec.hash, sizeof(w.rec.hash));
	}
	if (via_frame) {
		uint64_t n = record_chunk_count(w.rec.length, shift);
		uint32_t *crcs = tu_xmalloc((size_t)(n * 4));
		chunk_crcs(w.data, w.rec.length, shift, crcs);
		/* Each crc is the chunk's CRC32C. */
		for (uint64_t i = 0; i < n; i++) {
			uint64_t chunk = UINT64_C(1) << shift, start = i * chunk;
			uint64_t len = w.rec.length - start < chunk ? w.rec.length - start : chunk;
			if (!CHECK_EQ(crcs[i], crc32c(0, w.data + start, (size_t)len)))
				break;
		}
		CHECK_EQ(pwrite_full(io_system(), p->fd, w.data ? (void *)w.data : (void *)"", (size_t)w.rec.length,
				     record_data_offset(&w.rec)),
			 0);
		CHECK_EQ(pack_write_frame(io_system(), p->fd, &w.rec, crcs), 0);
		free(crcs);
	} else {
		CHECK_EQ(pack_write_record(io_system(), p->fd, &w.rec, w.data ? (void *)w.data : (void *)"", NULL), 0);
	}
	p->end = record_end(&w.rec);
	p->recs = realloc(p->recs, (p->count + 1) * sizeof(*p->recs));
	REQUIRE(p->recs);
	p->recs[p->count++] = w;
}

void pack_file_fixture(struct pack_file *p, const char *dir, uint32_t id, size_t count,
		       uint64_t last_size)
{
	pack_file_new(p, dir, id);
	for (size_t i = 0; i + 1 < count; i++)
		pack_file_append(p, i % 5 == 3 ? RECORD_TOMBSTONE : RECORD_BLOB,
			    1 + tu_rand_below(3000), i % 3 ? CHUNK_SHIFT_MIN : CHUNK_SHIFT_DEFAULT,
			    i % 2);
	pack_file_append(p, RECORD_BLOB, last_size, CHUNK_SHIFT_MIN, false);
}

/* ---- scanning it back ---- */

bool scan_matches(const struct pack_file *p, const char *path, const struct scan_event *ev,
		  size_t n_ev, bool verify)
{
	struct pack_scan scan;
	struct record_info rec;
	struct hasher *hasher = NULL;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t i = 0;
	bool ok = true;
	int r;

	REQUIRE(fd >= 0);
	REQUIRE(hasher_new(&hasher) == 0);
	if (!CHECK_EQ(pack_scan_open(io_system(), &scan, fd, p->id), 0)) {
		ok = false;
		goto out;
	}
	CHECK_EQ(scan.file_size, tu_file_size(path));
	for (int guard = 0; guard < 100000; guard++) {
		r = pack_scan_next(&scan, &rec);
		if (r == 0)
			break;
		if (i >= n_ev) {
			ok &= CHECK(!"scan produced more than expected");
			fprintf(stderr, "  extra result %d (offset %" PRIu64 ")\n", r,
				r == 1 ? rec.offset : scan.bad_start);
			break;
		}
		if (ev[i].kind == EV_RECORD) {
			const struct written *w = &p->recs[ev[i].rec];
			if (!CHECK_EQ(r, 1)) {
				fprintf(stderr, "  expected record %zu at %" PRIu64 "; got %d [%" PRIu64
						", %" PRIu64 ")\n",
					ev[i].rec, w->rec.offset, r, scan.bad_start, scan.bad_end);
				ok = false;
				break;
			}
			ok &= CHECK(same_record(&rec, &w->rec));
			if (verify && rec.kind == RECORD_BLOB) {
				const char *problem = "unset";
				ok &= CHECK_EQ(pack_verify_record(io_system(), fd, &rec, hasher, &problem), 0);
				ok &= CHECK(problem == NULL);
			}
		} else {
			if (!CHECK_EQ(r, -EBADMSG)) {
				fprintf(stderr, "  expected damage [%" PRIu64 ", %" PRIu64 "); got %d\n",
					ev[i].bad_start, ev[i].bad_end, r);
				ok = false;
				break;
			}
			ok &= CHECK_EQ(scan.bad_start, ev[i].bad_start);
			ok &= CHECK_EQ(scan.bad_end, ev[i].bad_end);
		}
		i++;
	}
	ok &= CHECK_EQ(i, n_ev);
	/* The clean end stays the clean end. */
	ok &= CHECK_EQ(pack_scan_next(&scan, &rec), 0);
out:
	hasher_free(hasher);
	close(fd);
	return ok;
}

size_t add_records(struct scan_event *ev, size_t n, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		ev[n++] = (struct scan_event){ .kind = EV_RECORD, .rec = i };
	return n;
}
