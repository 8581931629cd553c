/*
 * test_pack.c - the pack format: names, pack and record header codecs
 * (round trips and every rejection), writing records and scanning them
 * back, and damage: a bad record header in the middle, a bad chunk table or
 * trailer, bad data (only pack_verify_record notices), truncation anywhere
 * inside the last record, garbage after it, resynchronisation across the
 * scanner's window boundary, and files that are not packs at all; the
 * durable marker codec, chunk tables and guessed hashes.
 */
#include <sys/stat.h>

#include "io.h"
#include "bytes.h"
#include "crc32c.h"
#include "hash.h"
#include "pack.h"
#include "testutil.h"

/* Re-seals an edited record header with a correct checksum. */
static void reseal_record_header(uint8_t *buf)
{
	put_le32(buf + 60, crc32c(0, buf, 60));
}

static void reseal_pack_header(uint8_t *buf)
{
	put_le32(buf + 28, crc32c(0, buf, 28));
}

static bool same_record(const struct record_info *a, const struct record_info *b)
{
	return a->offset == b->offset && a->kind == b->kind && a->chunk_shift == b->chunk_shift &&
	       a->seq == b->seq && a->length == b->length &&
	       !memcmp(a->hash, b->hash, BLOBFS_HASH_SIZE);
}

/* ---- names ---- */

static void test_names(void)
{
	static const uint32_t ids[] = { 0, 1, 9, 10, 0xabcdef, 0x7fffffff, 0xdeadbeef, 0xffffffff };
	static const char *const bad[] = {
		"",
		"pack-",
		"pack-.pack",
		"pack-0000000.pack",       /* 7 digits */
		"pack-000000000.pack",     /* 9 digits */
		"pack-0000000A.pack",      /* uppercase */
		"pack-DEADBEEF.pack",
		"pack-0000000g.pack",
		"pack-0x000000.pack",
		"pack-+0000000.pack",
		"pack- 0000000.pack",
		"pack--0000001.pack",
		"pack-00000000.pack.tmp",
		"pack-00000000.pac",
		"pack-00000000.PACK",
		"pack-00000000pack",
		"pack-00000000.packs",
		"Pack-00000000.pack",
		"xpack-00000000.pack",
		" pack-00000000.pack",
		"pack-00000000.pack ",
		"pack_00000000.pack",
		"staging-1-1.tmp",
		"pack-0000\n000.pack",
	};
	char name[PACK_NAME_SIZE];
	uint32_t id;

	TU_TEST("pack names");
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char want[64];
		pack_name(ids[i], name);
		snprintf(want, sizeof(want), "pack-%08x.pack", ids[i]);
		CHECK(!strcmp(name, want));
		CHECK_EQ(strlen(name), 18);
		id = ids[i] ^ 1;
		CHECK(pack_parse_name(name, &id));
		CHECK_EQ(id, ids[i]);
	}
	CHECK(pack_parse_name("pack-0000abcd.pack", &id) && id == 0xabcd);
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		bool ok = pack_parse_name(bad[i], &id);
		if (ok)
			fprintf(stderr, "  accepted \"%s\"\n", bad[i]);
		CHECK(!ok);
	}
}

/* ---- pack header ---- */

static void test_pack_header(void)
{
	uint8_t buf[PACK_HEADER_SIZE], copy[PACK_HEADER_SIZE];
	uint32_t id;
	long accepted = 0;

	TU_TEST("pack header codec");
	pack_header_encode(0x12345678, buf);
	CHECK_MEM(buf, PACK_MAGIC, PACK_MAGIC_SIZE);
	CHECK_EQ(pack_header_decode(buf, &id), 0);
	CHECK_EQ(id, 0x12345678);
	/* Layout: version at 8, id at 12, reserved zero, crc of 0..27 at 28. */
	CHECK_EQ(buf[8], PACK_VERSION);
	CHECK_EQ(buf[12], 0x78);
	CHECK_EQ(buf[15], 0x12);
	for (int i = 16; i < 28; i++)
		CHECK_EQ(buf[i], 0);
	CHECK_EQ(buf[28] | buf[29] << 8 | buf[30] << 16 | (uint32_t)buf[31] << 24,
		 crc32c(0, buf, 28));
	pack_header_encode(0, buf);
	CHECK_EQ(pack_header_decode(buf, &id), 0);
	CHECK_EQ(id, 0);
	pack_header_encode(UINT32_MAX, buf);
	CHECK_EQ(pack_header_decode(buf, &id), 0);
	CHECK_EQ(id, UINT32_MAX);

	/* Every single-bit change is refused. */
	for (size_t bit = 0; bit < 8 * PACK_HEADER_SIZE; bit++) {
		memcpy(copy, buf, sizeof(buf));
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (pack_header_decode(copy, &id) != -EBADMSG)
			accepted++;
	}
	CHECK_EQ(accepted, 0);
	/* A wrong magic or version is refused even with a correct checksum. */
	memcpy(copy, buf, sizeof(buf));
	copy[7] = '2';
	reseal_pack_header(copy);
	CHECK_EQ(pack_header_decode(copy, &id), -EBADMSG);
	memcpy(copy, buf, sizeof(buf));
	put_le32(copy + 8, PACK_VERSION + 1);
	reseal_pack_header(copy);
	CHECK_EQ(pack_header_decode(copy, &id), -EBADMSG);
	memset(copy, 0, sizeof(copy));
	CHECK_EQ(pack_header_decode(copy, &id), -EBADMSG);
	/* Reserved bytes must be zero, even under a correct checksum. */
	for (int i = 16; i < 28; i++) {
		memcpy(copy, buf, sizeof(buf));
		copy[i] = 1;
		reseal_pack_header(copy);
		if (!CHECK_EQ(pack_header_decode(copy, &id), -EBADMSG))
			fprintf(stderr, "  reserved byte %d\n", i);
	}
}

/* ---- record header ---- */

static struct record_info random_record(enum record_kind kind, uint64_t length, unsigned shift)
{
	struct record_info r;

	memset(&r, 0, sizeof(r));
	r.kind = kind;
	r.chunk_shift = shift;
	r.seq = tu_rand();
	r.length = length;
	tu_fill_random(r.hash, sizeof(r.hash));
	return r;
}

static void test_record_header(void)
{
	uint8_t buf[RECORD_HEADER_SIZE], copy[RECORD_HEADER_SIZE];
	struct record_info in, out;
	long accepted = 0;

	TU_TEST("record header codec");
	/* Round trips over kinds, shifts and lengths. */
	for (unsigned shift = CHUNK_SHIFT_MIN; shift <= CHUNK_SHIFT_MAX; shift++) {
		static const uint64_t lengths[] = { 0, 1, 65535, 65536, 65537, UINT64_C(1) << 40,
						    RECORD_LENGTH_MAX };
		for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
			in = random_record(RECORD_BLOB, lengths[i], shift);
			record_header_encode(&in, buf);
			memset(&out, 0xa5, sizeof(out));
			CHECK_EQ(record_header_decode(buf, 4242, &out), 0);
			in.offset = 4242;
			CHECK(same_record(&in, &out));
		}
		in = random_record(RECORD_TOMBSTONE, 0, shift);
		record_header_encode(&in, buf);
		CHECK_EQ(record_header_decode(buf, 32, &out), 0);
		in.offset = 32;
		CHECK(same_record(&in, &out));
	}
	in = random_record(RECORD_BLOB, 1000, CHUNK_SHIFT_DEFAULT);
	in.seq = 0;
	record_header_encode(&in, buf);
	CHECK_EQ(record_header_decode(buf, 0, &out), 0);
	in.seq = UINT64_MAX;
	record_header_encode(&in, buf);
	CHECK_EQ(record_header_decode(buf, 0, &out), 0);
	CHECK_EQ(out.seq, UINT64_MAX);

	/* Layout as docs/FORMAT.md pins it. */
	in = random_record(RECORD_BLOB, 0x0102030405060708u, 16);
	in.seq = 0x1112131415161718u;
	record_header_encode(&in, buf);
	CHECK_EQ(buf[0], 'R');
	CHECK_EQ(buf[3], '1');
	CHECK_EQ(buf[4], RECORD_BLOB);
	CHECK_EQ(buf[5], 16);
	CHECK_EQ(buf[6] | buf[7], 0);
	CHECK_EQ(buf[8], 0x18);
	CHECK_EQ(buf[15], 0x11);
	CHECK_EQ(buf[16], 0x08);
	CHECK_EQ(buf[23], 0x01);
	CHECK_MEM(buf + 24, in.hash, BLOBFS_HASH_SIZE);
	CHECK_EQ(buf[56] | buf[57] | buf[58] | buf[59], 0);

	/* Every single-bit change is refused. */
	in = random_record(RECORD_BLOB, 123456, CHUNK_SHIFT_DEFAULT);
	record_header_encode(&in, buf);
	for (size_t bit = 0; bit < 8 * RECORD_HEADER_SIZE; bit++) {
		memcpy(copy, buf, sizeof(buf));
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (record_header_decode(copy, 0, &out) != -EBADMSG)
			accepted++;
	}
	CHECK_EQ(accepted, 0);

	/* Semantic rejections, each with a valid checksum. */
	memcpy(copy, buf, sizeof(buf));
	put_le32(copy, RECORD_MAGIC ^ 0x100);
	reseal_record_header(copy);
	CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG); /* magic */
	put_le32(copy, TRAILER_MAGIC);
	reseal_record_header(copy);
	CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG);
	for (unsigned kind = 0; kind < 256; kind++) {
		int want = kind == RECORD_BLOB ? 0 : -EBADMSG;
		memcpy(copy, buf, sizeof(buf));
		copy[4] = (uint8_t)kind;
		reseal_record_header(copy);
		if (kind == RECORD_TOMBSTONE)
			continue; /* with a length: checked below */
		if (!CHECK_EQ(record_header_decode(copy, 0, &out), want))
			fprintf(stderr, "  kind %u\n", kind);
	}
	for (unsigned shift = 0; shift < 256; shift++) {
		int want = shift >= CHUNK_SHIFT_MIN && shift <= CHUNK_SHIFT_MAX ? 0 : -EBADMSG;
		memcpy(copy, buf, sizeof(buf));
		copy[5] = (uint8_t)shift;
		reseal_record_header(copy);
		if (!CHECK_EQ(record_header_decode(copy, 0, &out), want))
			fprintf(stderr, "  chunk_shift %u\n", shift);
	}
	memcpy(copy, buf, sizeof(buf));
	put_le64(copy + 16, RECORD_LENGTH_MAX);
	reseal_record_header(copy);
	CHECK_EQ(record_header_decode(copy, 0, &out), 0);
	put_le64(copy + 16, RECORD_LENGTH_MAX + 1);
	reseal_record_header(copy);
	CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG);
	put_le64(copy + 16, UINT64_MAX);
	reseal_record_header(copy);
	CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG);
	/* A tombstone carries no data. */
	for (uint64_t len = 0; len < 3; len++) {
		memcpy(copy, buf, sizeof(buf));
		copy[4] = RECORD_TOMBSTONE;
		put_le64(copy + 16, len);
		reseal_record_header(copy);
		CHECK_EQ(record_header_decode(copy, 0, &out), len ? -EBADMSG : 0);
	}
	memcpy(copy, buf, sizeof(buf));
	copy[4] = RECORD_TOMBSTONE;
	put_le64(copy + 16, UINT64_C(1) << 32);
	reseal_record_header(copy);
	CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG);
	memset(copy, 0, sizeof(copy));
	CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG);
	/* Reserved bytes (6..7 and 56..59) must be zero, even resealed. */
	{
		static const int reserved[] = { 6, 7, 56, 57, 58, 59 };
		for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
			memcpy(copy, buf, sizeof(buf));
			copy[reserved[i]] = 0x80;
			reseal_record_header(copy);
			if (!CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG))
				fprintf(stderr, "  reserved byte %d\n", reserved[i]);
		}
	}
}

/* ---- writing and scanning ---- */

struct written {
	struct record_info rec;
	uint8_t *data; /* NULL for a tombstone */
};

struct pack_file {
	char path[PATH_MAX];
	int dirfd, fd;
	uint32_t id;
	uint64_t end; /* where the next record goes */
	struct written *recs;
	size_t count;
};

static void pack_open_new(struct pack_file *p, const char *dir, uint32_t id)
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

static void pack_close(struct pack_file *p)
{
	for (size_t i = 0; i < p->count; i++)
		free(p->recs[i].data);
	free(p->recs);
	if (p->fd >= 0)
		close(p->fd);
	close(p->dirfd);
	memset(p, 0, sizeof(*p));
}

/* Appends a record; data random (NULL length-0 tombstone when kind says so).
 * With via_frame, the data is written first and pack_write_frame adds the
 * rest, as the store does for staged blobs. */
static void pack_append(struct pack_file *p, enum record_kind kind, uint64_t length,
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

/* What a scan is expected to produce: records `first`..`last` (inclusive),
 * with the damage reports in between. */
enum event_kind { EV_RECORD, EV_DAMAGE };
struct event {
	enum event_kind kind;
	size_t rec;                   /* EV_RECORD: index in p->recs */
	uint64_t bad_start, bad_end;  /* EV_DAMAGE */
};

/* Scans path as pack `id` and compares with the expected events; verifies
 * each blob's data too when verify is set. */
static bool scan_matches(const struct pack_file *p, const char *path, const struct event *ev,
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

/* Events for records [from, to) in order. */
static size_t add_records(struct event *ev, size_t n, size_t from, size_t to)
{
	for (size_t i = from; i < to; i++)
		ev[n++] = (struct event){ .kind = EV_RECORD, .rec = i };
	return n;
}

static void test_create_and_scan(const char *dir)
{
	static const uint64_t sizes[] = { 0, 1, 2, 63, 64, 4095, 4096, 4097, 65535, 65536, 65537,
					  131072, 300 * 1024 + 7, 1000 };
	struct pack_file p;
	struct event ev[64];
	size_t n = 0;
	int fd;

	TU_TEST("write records and scan them back");
	pack_open_new(&p, dir, 0x2a);
	/* A second pack of the same id is refused. */
	CHECK_EQ(pack_create(io_system(), p.dirfd, 0x2a, &fd), -EEXIST);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		pack_append(&p, RECORD_BLOB, sizes[i], CHUNK_SHIFT_DEFAULT, i % 2);
	pack_append(&p, RECORD_TOMBSTONE, 0, CHUNK_SHIFT_DEFAULT, false);
	pack_append(&p, RECORD_BLOB, 70000, CHUNK_SHIFT_MIN, false);
	pack_append(&p, RECORD_BLOB, 70000, CHUNK_SHIFT_MAX, true);
	pack_append(&p, RECORD_BLOB, 0, CHUNK_SHIFT_MAX, true);
	pack_append(&p, RECORD_TOMBSTONE, 0, CHUNK_SHIFT_MIN, true);
	for (int i = 0; i < 10; i++)
		pack_append(&p, RECORD_BLOB, tu_rand_below(20000), 12 + (unsigned)tu_rand_below(13),
			    tu_rand_below(2));
	CHECK_EQ(tu_file_size(p.path), p.end);
	n = add_records(ev, 0, 0, p.count);
	CHECK(scan_matches(&p, p.path, ev, n, true));

	/* The data read back directly is the data written. */
	for (size_t i = 0; i < p.count; i++) {
		const struct written *w = &p.recs[i];
		uint8_t *buf = tu_xmalloc((size_t)w->rec.length);
		CHECK_EQ(pread_full(io_system(), p.fd, buf, (size_t)w->rec.length, record_data_offset(&w->rec)), 0);
		if (w->data)
			CHECK_MEM(buf, w->data, (size_t)w->rec.length);
		free(buf);
	}
	/* pread_full past the end is a short read. */
	{
		uint8_t b[8];
		CHECK_EQ(pread_full(io_system(), p.fd, b, sizeof(b), p.end - 4), -EIO);
	}
	/* The scanner takes only its own id. */
	{
		struct pack_scan scan;
		CHECK_EQ(pack_scan_open(io_system(), &scan, p.fd, 0x2b), -EBADMSG);
		CHECK_EQ(pack_scan_open(io_system(), &scan, p.fd, 0), -EBADMSG);
		CHECK_EQ(pack_scan_open(io_system(), &scan, p.fd, 0x2a), 0);
		CHECK_EQ(scan.pos, PACK_HEADER_SIZE);
	}
	pack_close(&p);

	/* A pack holding only its header scans as empty. */
	{
		struct pack_scan scan;
		struct record_info rec;
		pack_open_new(&p, dir, 0);
		CHECK_EQ(pack_scan_open(io_system(), &scan, p.fd, 0), 0);
		CHECK_EQ(pack_scan_next(&scan, &rec), 0);
		pack_close(&p);
	}
}

/* A small pack whose records are all small: the fixture for damage tests. */
static void build_fixture(struct pack_file *p, const char *dir, uint32_t id, size_t count,
			  uint64_t last_size)
{
	pack_open_new(p, dir, id);
	for (size_t i = 0; i + 1 < count; i++)
		pack_append(p, i % 5 == 3 ? RECORD_TOMBSTONE : RECORD_BLOB,
			    1 + tu_rand_below(3000), i % 3 ? CHUNK_SHIFT_MIN : CHUNK_SHIFT_DEFAULT,
			    i % 2);
	pack_append(p, RECORD_BLOB, last_size, CHUNK_SHIFT_MIN, false);
}

static void test_damaged_header(const char *dir)
{
	struct pack_file p;
	struct event ev[64];
	char path[PATH_MAX];
	size_t mid;

	TU_TEST("a damaged record header in the middle");
	build_fixture(&p, dir, 7, 12, 2000);
	tu_path(path, sizeof(path), "%s/damaged", dir);
	for (mid = 1; mid + 1 < p.count; mid++) {
		const struct written *w = &p.recs[mid];
		/* Magic, kind, shift, seq, length (low and high), hash, reserved, crc. */
		static const unsigned offsets[] = { 0, 3, 4, 5, 6, 8, 16, 22, 24, 55, 56, 60, 63 };
		for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
			size_t n = 0;
			tu_copy_file(p.path, path, SIZE_MAX);
			tu_xor_byte(path, w->rec.offset + offsets[k], 0x5a);
			n = add_records(ev, 0, 0, mid);
			ev[n++] = (struct event){ .kind = EV_DAMAGE, .bad_start = w->rec.offset,
						  .bad_end = p.recs[mid + 1].rec.offset };
			n = add_records(ev, n, mid + 1, p.count);
			if (!scan_matches(&p, path, ev, n, true)) {
				fprintf(stderr, "  record %zu, header byte %u flipped\n", mid, offsets[k]);
				goto out;
			}
		}
	}

	TU_TEST("a damaged chunk table or trailer in the middle");
	for (mid = 1; mid + 1 < p.count; mid++) {
		const struct written *w = &p.recs[mid];
		uint64_t table = record_data_offset(&w->rec) + w->rec.length;
		uint64_t trailer = record_end(&w->rec) - RECORD_TRAILER_SIZE;
		uint64_t spots[] = { trailer, trailer + 4, trailer + 8, trailer + 15, table };
		for (size_t k = 0; k < sizeof(spots) / sizeof(spots[0]); k++) {
			size_t n;
			if (spots[k] == trailer && k == 4)
				continue; /* no table (a tombstone): already covered */
			tu_copy_file(p.path, path, SIZE_MAX);
			tu_xor_byte(path, spots[k], 0x5a);
			n = add_records(ev, 0, 0, mid);
			ev[n++] = (struct event){ .kind = EV_DAMAGE, .bad_start = w->rec.offset,
						  .bad_end = p.recs[mid + 1].rec.offset };
			n = add_records(ev, n, mid + 1, p.count);
			if (!scan_matches(&p, path, ev, n, true)) {
				fprintf(stderr, "  record %zu, byte %" PRIu64 " after its start flipped\n",
					mid, spots[k] - w->rec.offset);
				goto out;
			}
		}
	}

	TU_TEST("two damaged records in a row, and the first record");
	{
		size_t n = 0;
		tu_copy_file(p.path, path, SIZE_MAX);
		tu_xor_byte(path, p.recs[0].rec.offset + 10, 0x5a);
		tu_xor_byte(path, p.recs[4].rec.offset + 30, 0x5a);
		tu_xor_byte(path, p.recs[5].rec.offset + 1, 0x5a);
		ev[n++] = (struct event){ .kind = EV_DAMAGE, .bad_start = p.recs[0].rec.offset,
					  .bad_end = p.recs[1].rec.offset };
		n = add_records(ev, n, 1, 4);
		/* Adjacent damage is one stretch. */
		ev[n++] = (struct event){ .kind = EV_DAMAGE, .bad_start = p.recs[4].rec.offset,
					  .bad_end = p.recs[6].rec.offset };
		n = add_records(ev, n, 6, p.count);
		CHECK(scan_matches(&p, path, ev, n, true));
	}
out:
	unlink(path);
	pack_close(&p);
}

static void test_damaged_data(const char *dir)
{
	struct pack_file p;
	struct event ev[64];
	char path[PATH_MAX];
	struct hasher *hasher;
	size_t n;

	TU_TEST("damaged data: the frame scans, verification fails");
	REQUIRE(hasher_new(&hasher) == 0);
	pack_open_new(&p, dir, 9);
	pack_append(&p, RECORD_BLOB, 5000, CHUNK_SHIFT_MIN, false);
	pack_append(&p, RECORD_BLOB, 200000, CHUNK_SHIFT_DEFAULT, true);
	pack_append(&p, RECORD_BLOB, 1, CHUNK_SHIFT_DEFAULT, false);
	pack_append(&p, RECORD_BLOB, 70000, CHUNK_SHIFT_MIN, false);
	tu_path(path, sizeof(path), "%s/data-damaged", dir);
	n = add_records(ev, 0, 0, p.count);
	for (size_t victim = 0; victim < p.count; victim++) {
		const struct written *w = &p.recs[victim];
		uint64_t spots[] = { 0, w->rec.length / 2, w->rec.length - 1 };
		for (size_t k = 0; k < 3; k++) {
			struct pack_scan scan;
			struct record_info rec;
			size_t seen = 0;
			int fd, r;
			tu_copy_file(p.path, path, SIZE_MAX);
			tu_xor_byte(path, record_data_offset(&w->rec) + spots[k], 0x5a);
			CHECK(scan_matches(&p, path, ev, n, false));
			fd = open(path, O_RDONLY | O_CLOEXEC);
			REQUIRE(fd >= 0);
			CHECK_EQ(pack_scan_open(io_system(), &scan, fd, p.id), 0);
			while ((r = pack_scan_next(&scan, &rec)) == 1) {
				const char *problem = NULL;
				int want = seen == victim ? -EBADMSG : 0;
				CHECK_EQ(pack_verify_record(io_system(), fd, &rec, hasher, &problem), want);
				if (want)
					CHECK(problem && strstr(problem, "checksum"));
				else
					CHECK(problem == NULL);
				seen++;
			}
			CHECK_EQ(r, 0);
			CHECK_EQ(seen, p.count);
			close(fd);
		}
	}

	TU_TEST("content that does not hash to the record's name");
	{
		struct pack_file q;
		struct record_info rec;
		struct pack_scan scan;
		const char *problem = NULL;
		uint8_t data[3000];

		pack_open_new(&q, dir, 10);
		memset(&rec, 0, sizeof(rec));
		rec.kind = RECORD_BLOB;
		rec.chunk_shift = CHUNK_SHIFT_MIN;
		rec.offset = PACK_HEADER_SIZE;
		rec.length = sizeof(data);
		rec.seq = 1;
		tu_fill_random(data, sizeof(data));
		REQUIRE(hash_buffer(data, sizeof(data), rec.hash) == 0);
		rec.hash[5] ^= 1;
		CHECK_EQ(pack_write_record(io_system(), q.fd, &rec, data, NULL), 0);
		CHECK_EQ(pack_scan_open(io_system(), &scan, q.fd, q.id), 0);
		CHECK_EQ(pack_scan_next(&scan, &rec), 1);
		CHECK_EQ(pack_verify_record(io_system(), q.fd, &rec, hasher, &problem), -EBADMSG);
		CHECK(problem && strstr(problem, "hash"));
		CHECK_EQ(pack_scan_next(&scan, &rec), 0);

		/* An empty blob verifies against the empty string's SHA-256. */
		rec.offset = record_end(&rec);
		rec.length = 0;
		rec.seq = 2;
		REQUIRE(hash_buffer("", 0, rec.hash) == 0);
		CHECK_EQ(pack_write_record(io_system(), q.fd, &rec, "", NULL), 0);
		CHECK_EQ(pack_verify_record(io_system(), q.fd, &rec, hasher, &problem), 0);
		rec.hash[0] ^= 1;
		CHECK_EQ(pack_verify_record(io_system(), q.fd, &rec, hasher, &problem), -EBADMSG);

		/* A record cut short is damage, not an I/O error. */
		rec.hash[0] ^= 1;
		rec.offset = record_end(&rec);
		rec.length = 10000;
		rec.seq = 3;
		{
			uint8_t *big = tu_random_buffer(10000);
			REQUIRE(hash_buffer(big, 10000, rec.hash) == 0);
			CHECK_EQ(pack_write_record(io_system(), q.fd, &rec, big, NULL), 0);
			CHECK_EQ(pack_verify_record(io_system(), q.fd, &rec, hasher, &problem), 0);
			CHECK_EQ(ftruncate(q.fd, (off_t)(record_data_offset(&rec) + 5000)), 0);
			CHECK_EQ(pack_verify_record(io_system(), q.fd, &rec, hasher, &problem), -EBADMSG);
			CHECK(problem != NULL);
			free(big);
		}
		pack_close(&q);
	}

	TU_TEST("header and trailer that disagree on seq");
	{
		struct pack_file q;
		struct event e1[4];
		uint8_t header[RECORD_HEADER_SIZE];
		struct record_info r;
		size_t m;

		pack_open_new(&q, dir, 11);
		pack_append(&q, RECORD_BLOB, 100, CHUNK_SHIFT_MIN, false);
		pack_append(&q, RECORD_BLOB, 100, CHUNK_SHIFT_MIN, false);
		pack_append(&q, RECORD_BLOB, 100, CHUNK_SHIFT_MIN, false);
		r = q.recs[1].rec;
		r.seq += 1000;
		record_header_encode(&r, header);
		CHECK_EQ(pwrite_full(io_system(), q.fd, header, sizeof(header), r.offset), 0);
		m = add_records(e1, 0, 0, 1);
		e1[m++] = (struct event){ .kind = EV_DAMAGE, .bad_start = r.offset,
					  .bad_end = q.recs[2].rec.offset };
		m = add_records(e1, m, 2, 3);
		CHECK(scan_matches(&q, q.path, e1, m, true));
		pack_close(&q);
	}
	unlink(path);
	hasher_free(hasher);
	pack_close(&p);
}

static void test_torn_tail(const char *dir)
{
	struct pack_file p;
	struct event ev[64];
	char path[PATH_MAX];
	const struct written *last;
	long bad = 0;

	TU_TEST("truncation anywhere inside the last record");
	build_fixture(&p, dir, 12, 8, 5000);
	last = &p.recs[p.count - 1];
	tu_path(path, sizeof(path), "%s/torn", dir);
	/* Every cut point near either end of the record, every 7th between. */
	for (uint64_t cut = last->rec.offset; cut <= p.end && bad < 3;
	     cut += cut - last->rec.offset < 300 || p.end - cut < 300 ? 1 : 7) {
		size_t n = add_records(ev, 0, 0, p.count - 1);
		if (cut == p.end)
			n = add_records(ev, n, p.count - 1, p.count);
		else if (cut > last->rec.offset)
			ev[n++] = (struct event){ .kind = EV_DAMAGE, .bad_start = last->rec.offset,
						  .bad_end = cut };
		/* cut == offset: a clean end after the earlier records. */
		tu_copy_file(p.path, path, (size_t)cut);
		if (!scan_matches(&p, path, ev, n, true)) {
			fprintf(stderr, "  cut at %" PRIu64 " (record at %" PRIu64 ", ends at %" PRIu64
					")\n",
				cut, last->rec.offset, p.end);
			bad++;
		}
	}
	pack_close(&p);

	TU_TEST("truncation inside a large last record");
	pack_open_new(&p, dir, 13);
	pack_append(&p, RECORD_BLOB, 10, CHUNK_SHIFT_DEFAULT, false);
	pack_append(&p, RECORD_BLOB, 65536, CHUNK_SHIFT_DEFAULT, false);
	pack_append(&p, RECORD_BLOB, 300 * 1024, CHUNK_SHIFT_DEFAULT, true);
	last = &p.recs[p.count - 1];
	for (int i = 0; i < 60 && bad < 3; i++) {
		uint64_t cut = i < 20 ? last->rec.offset + 1 + (uint64_t)i * 7 :
			       i < 40 ? p.end - 1 - (uint64_t)(i - 20) * 5 :
					last->rec.offset + 1 + tu_rand_below(p.end - last->rec.offset - 1);
		size_t n = add_records(ev, 0, 0, p.count - 1);
		ev[n++] = (struct event){ .kind = EV_DAMAGE, .bad_start = last->rec.offset,
					  .bad_end = cut };
		tu_copy_file(p.path, path, (size_t)cut);
		if (!scan_matches(&p, path, ev, n, true)) {
			fprintf(stderr, "  cut at %" PRIu64 "\n", cut);
			bad++;
		}
	}

	TU_TEST("garbage after the last record");
	{
		static const size_t lens[] = { 1, 3, 4, 15, 63, 64, 79, 80, 81, 1000, 70000 };
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]) * 3; i++) {
			size_t len = lens[i % (sizeof(lens) / sizeof(lens[0]))];
			uint8_t *junk = tu_random_buffer(len);
			size_t n;
			if (i / (sizeof(lens) / sizeof(lens[0])) == 1)
				memset(junk, 0, len); /* zeros, as after a crash on some file systems */
			else if (i / (sizeof(lens) / sizeof(lens[0])) == 2 && len >= 4)
				put_le32(junk, RECORD_MAGIC); /* looks like the start of a record */
			tu_copy_file(p.path, path, SIZE_MAX);
			REQUIRE(tu_append_file(path, junk, len) == 0);
			n = add_records(ev, 0, 0, p.count);
			ev[n++] = (struct event){ .kind = EV_DAMAGE, .bad_start = p.end,
						  .bad_end = p.end + len };
			if (!scan_matches(&p, path, ev, n, false))
				fprintf(stderr, "  %zu bytes of garbage (variant %zu)\n", len, i);
			free(junk);
		}
		/* The header of a real record, torn after it. */
		{
			uint8_t header[RECORD_HEADER_SIZE];
			struct record_info r = p.recs[0].rec;
			size_t n;
			r.offset = p.end;
			r.seq = 99;
			record_header_encode(&r, header);
			tu_copy_file(p.path, path, SIZE_MAX);
			REQUIRE(tu_append_file(path, header, sizeof(header)) == 0);
			REQUIRE(tu_append_file(path, "abc", 3) == 0);
			n = add_records(ev, 0, 0, p.count);
			ev[n++] = (struct event){ .kind = EV_DAMAGE, .bad_start = p.end,
						  .bad_end = p.end + sizeof(header) + 3 };
			CHECK(scan_matches(&p, path, ev, n, true));
		}
	}
	unlink(path);
	pack_close(&p);
}

/* Garbage followed by a good record: the scan reports the garbage and
 * resumes exactly at the record, including when the record's magic straddles
 * the scanner's 64 KiB read window. */
static void test_resync(const char *dir)
{
	struct pack_file p;
	struct event ev[16];
	char path[PATH_MAX];

	TU_TEST("resynchronisation on the next good record");
	tu_path(path, sizeof(path), "%s/resync", dir);
	/* Record 1's size is chosen so that record 2 starts d bytes after the
	 * point where resync starts (bad_start + 1), for d around the window. */
	for (uint64_t d = 65528; d <= 65540; d++) {
		uint64_t len = d + 1 - RECORD_HEADER_SIZE - RECORD_TRAILER_SIZE - 4;
		size_t n;
		char name[PACK_NAME_SIZE];
		pack_open_new(&p, dir, 20);
		pack_append(&p, RECORD_BLOB, 100, CHUNK_SHIFT_DEFAULT, false);
		pack_append(&p, RECORD_BLOB, len, CHUNK_SHIFT_DEFAULT, false);
		pack_append(&p, RECORD_BLOB, 100, CHUNK_SHIFT_DEFAULT, false);
		pack_append(&p, RECORD_BLOB, 100, CHUNK_SHIFT_DEFAULT, false);
		CHECK_EQ(p.recs[2].rec.offset - (p.recs[1].rec.offset + 1), d);
		tu_copy_file(p.path, path, SIZE_MAX);
		tu_xor_byte(path, p.recs[1].rec.offset + 2, 0x5a);
		n = add_records(ev, 0, 0, 1);
		ev[n++] = (struct event){ .kind = EV_DAMAGE, .bad_start = p.recs[1].rec.offset,
					  .bad_end = p.recs[2].rec.offset };
		n = add_records(ev, n, 2, p.count);
		if (!scan_matches(&p, path, ev, n, true))
			fprintf(stderr, "  next record %" PRIu64 " bytes after resync start\n", d);
		pack_name(p.id, name);
		pack_close(&p);
		unlinkat(AT_FDCWD, path, 0);
		{
			char pack_path[PATH_MAX];
			tu_path(pack_path, sizeof(pack_path), "%s/%s", dir, name);
			unlink(pack_path);
		}
	}

	/* Garbage inserted between two records (a record lost its header and
	 * more): resync lands on the following record. */
	pack_open_new(&p, dir, 21);
	pack_append(&p, RECORD_BLOB, 500, CHUNK_SHIFT_MIN, false);
	pack_append(&p, RECORD_BLOB, 200000, CHUNK_SHIFT_MIN, false);
	pack_append(&p, RECORD_BLOB, 500, CHUNK_SHIFT_MIN, false);
	{
		/* Overwrite all of record 1 but its last 10 bytes with zeros. */
		size_t span = (size_t)(p.recs[2].rec.offset - p.recs[1].rec.offset - 10);
		uint8_t *zeros = calloc(1, span);
		size_t n;
		REQUIRE(zeros);
		tu_copy_file(p.path, path, SIZE_MAX);
		{
			int fd = open(path, O_RDWR | O_CLOEXEC);
			REQUIRE(fd >= 0);
			CHECK_EQ(pwrite_full(io_system(), fd, zeros, span, p.recs[1].rec.offset), 0);
			close(fd);
		}
		n = add_records(ev, 0, 0, 1);
		ev[n++] = (struct event){ .kind = EV_DAMAGE, .bad_start = p.recs[1].rec.offset,
					  .bad_end = p.recs[2].rec.offset };
		n = add_records(ev, n, 2, 3);
		CHECK(scan_matches(&p, path, ev, n, true));
		free(zeros);
	}
	unlink(path);
	pack_close(&p);
}

/* The durable marker: round trip, layout, every single-bit change refused. */
static void test_marker(void)
{
	static const uint64_t seqs[] = { 0, 1, 0x0102030405060708u, UINT64_MAX };
	uint8_t buf[MARKER_SIZE], copy[MARKER_SIZE];
	uint64_t seq;
	long accepted = 0;

	TU_TEST("durable marker codec");
	for (size_t i = 0; i < sizeof(seqs) / sizeof(seqs[0]); i++) {
		marker_encode(seqs[i], buf);
		seq = ~seqs[i];
		CHECK_EQ(marker_decode(buf, &seq), 0);
		CHECK_EQ(seq, seqs[i]);
	}
	marker_encode(0x0102030405060708u, buf);
	CHECK_MEM(buf, MARKER_MAGIC, 8);
	CHECK_EQ(buf[8], 0x08);
	CHECK_EQ(buf[15], 0x01);
	for (int i = 16; i < 28; i++)
		CHECK_EQ(buf[i], 0);
	CHECK_EQ(buf[28] | buf[29] << 8 | buf[30] << 16 | (uint32_t)buf[31] << 24,
		 crc32c(0, buf, 28));
	for (size_t bit = 0; bit < 8 * MARKER_SIZE; bit++) {
		memcpy(copy, buf, sizeof(buf));
		copy[bit / 8] ^= (uint8_t)(1u << (bit % 8));
		if (marker_decode(copy, &seq) != -EBADMSG)
			accepted++;
	}
	CHECK_EQ(accepted, 0);
	/* Another structure's bytes are not a marker, checksum or not. */
	pack_header_encode(3, copy);
	CHECK_EQ(marker_decode(copy, &seq), -EBADMSG);
	memcpy(copy, buf, sizeof(buf));
	copy[0] = 'X';
	put_le32(copy + 28, crc32c(0, copy, 28));
	CHECK_EQ(marker_decode(copy, &seq), -EBADMSG);
	memset(copy, 0, sizeof(copy));
	CHECK_EQ(marker_decode(copy, &seq), -EBADMSG);
	for (int i = 16; i < 28; i++) {
		memcpy(copy, buf, sizeof(buf));
		copy[i] = 0x01;
		put_le32(copy + 28, crc32c(0, copy, 28));
		if (!CHECK_EQ(marker_decode(copy, &seq), -EBADMSG))
			fprintf(stderr, "  reserved byte %d\n", i);
	}
}

/* Reading a record's chunk table; verifying with and without the hash;
 * guessing the hash of a record whose header fails its checksum. */
static void test_chunk_table_and_guess(const char *dir)
{
	struct pack_file p;
	struct hasher *hasher;
	const char *problem;
	uint8_t hash[BLOBFS_HASH_SIZE];

	TU_TEST("chunk tables, verification without the hash, guessed hashes");
	REQUIRE(hasher_new(&hasher) == 0);
	pack_open_new(&p, dir, 30);
	pack_append(&p, RECORD_BLOB, 200000, CHUNK_SHIFT_DEFAULT, false);
	pack_append(&p, RECORD_BLOB, 0, CHUNK_SHIFT_DEFAULT, false);
	pack_append(&p, RECORD_BLOB, 10000, CHUNK_SHIFT_MIN, true);
	pack_append(&p, RECORD_TOMBSTONE, 0, CHUNK_SHIFT_DEFAULT, false);
	for (size_t i = 0; i < p.count; i++) {
		const struct written *w = &p.recs[i];
		uint64_t n = record_chunk_count(w->rec.length, w->rec.chunk_shift);
		uint32_t *got = tu_xmalloc((size_t)(n * 4)), *want = tu_xmalloc((size_t)(n * 4));
		chunk_crcs(w->data ? (void *)w->data : (void *)"", w->rec.length, w->rec.chunk_shift,
			   want);
		CHECK_EQ(pack_read_chunk_table(io_system(), p.fd, &w->rec, got), 0);
		CHECK_MEM(got, want, (size_t)(n * 4));
		free(got);
		free(want);
	}
	/* A chunk table that does not match its trailer. */
	{
		const struct written *w = &p.recs[0];
		uint64_t table = record_data_offset(&w->rec) + w->rec.length;
		uint32_t crcs[4];
		struct record_info other = w->rec;
		uint8_t b;
		CHECK_EQ(pread_full(io_system(), p.fd, &b, 1, table + 5), 0);
		b ^= 1;
		CHECK_EQ(pwrite_full(io_system(), p.fd, &b, 1, table + 5), 0);
		CHECK_EQ(pack_read_chunk_table(io_system(), p.fd, &w->rec, crcs), -EBADMSG);
		problem = NULL;
		CHECK_EQ(pack_verify_record(io_system(), p.fd, &w->rec, hasher, &problem), -EBADMSG);
		CHECK(problem != NULL);
		b ^= 1;
		CHECK_EQ(pwrite_full(io_system(), p.fd, &b, 1, table + 5), 0);
		CHECK_EQ(pack_read_chunk_table(io_system(), p.fd, &w->rec, crcs), 0);
		/* The trailer's seq must be the record's. */
		other.seq++;
		CHECK_EQ(pack_read_chunk_table(io_system(), p.fd, &other, crcs), -EBADMSG);
	}
	/* Without a hasher only the chunk checksums are checked. */
	{
		struct record_info wrong = p.recs[2].rec;
		wrong.hash[0] ^= 1;
		CHECK_EQ(pack_verify_record(io_system(), p.fd, &p.recs[2].rec, NULL, &problem), 0);
		CHECK_EQ(pack_verify_record(io_system(), p.fd, &wrong, NULL, &problem), 0);
		CHECK_EQ(pack_verify_record(io_system(), p.fd, &wrong, hasher, &problem), -EBADMSG);
		CHECK_EQ(pack_verify_record(io_system(), p.fd, &p.recs[1].rec, NULL, &problem), 0);
	}
	{
		const struct written *w = &p.recs[2];
		uint8_t b;
		CHECK_EQ(pread_full(io_system(), p.fd, &b, 1, record_data_offset(&w->rec) + 5000), 0);
		b ^= 0x10;
		CHECK_EQ(pwrite_full(io_system(), p.fd, &b, 1, record_data_offset(&w->rec) + 5000), 0);
		problem = NULL;
		CHECK_EQ(pack_verify_record(io_system(), p.fd, &w->rec, NULL, &problem), -EBADMSG);
		CHECK(problem && strstr(problem, "checksum"));
		b ^= 0x10;
		CHECK_EQ(pwrite_full(io_system(), p.fd, &b, 1, record_data_offset(&w->rec) + 5000), 0);
	}
	/* Guessing: a header with a good magic but a bad checksum still names
	 * its blob; anything without the magic does not. */
	{
		const struct written *w = &p.recs[2];
		uint8_t b;
		CHECK(record_header_guess_hash(io_system(), p.fd, w->rec.offset, hash));
		CHECK_MEM(hash, w->rec.hash, sizeof(hash));
		CHECK_EQ(pread_full(io_system(), p.fd, &b, 1, w->rec.offset + 61), 0);
		b ^= 0xff;
		CHECK_EQ(pwrite_full(io_system(), p.fd, &b, 1, w->rec.offset + 61), 0);
		memset(hash, 0, sizeof(hash));
		CHECK(record_header_guess_hash(io_system(), p.fd, w->rec.offset, hash));
		CHECK_MEM(hash, w->rec.hash, sizeof(hash));
		CHECK(!record_header_guess_hash(io_system(), p.fd, w->rec.offset + 1, hash));
		CHECK(!record_header_guess_hash(io_system(), p.fd, 0, hash));
		CHECK(!record_header_guess_hash(io_system(), p.fd, p.end - 10, hash)); /* runs off the end */
	}
	hasher_free(hasher);
	pack_close(&p);
}

static void test_not_a_pack(const char *dir)
{
	char path[PATH_MAX];
	uint8_t header[PACK_HEADER_SIZE];
	struct pack_scan scan;
	int fd;

	TU_TEST("files that are not packs");
	tu_path(path, sizeof(path), "%s/notapack", dir);
	/* Empty. */
	REQUIRE(tu_write_file(path, "", 0) == 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	CHECK_EQ(pack_scan_open(io_system(), &scan, fd, 0), -EBADMSG);
	close(fd);
	/* Shorter than a header, but a header's prefix. */
	pack_header_encode(5, header);
	for (size_t len = 1; len < PACK_HEADER_SIZE; len += 5) {
		REQUIRE(tu_write_file(path, header, len) == 0);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		REQUIRE(fd >= 0);
		CHECK_EQ(pack_scan_open(io_system(), &scan, fd, 5), -EBADMSG);
		close(fd);
	}
	/* A whole header with one bad byte, anywhere. */
	for (size_t i = 0; i < PACK_HEADER_SIZE; i++) {
		uint8_t copy[PACK_HEADER_SIZE];
		memcpy(copy, header, sizeof(copy));
		copy[i] ^= 0x80;
		REQUIRE(tu_write_file(path, copy, sizeof(copy)) == 0);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		REQUIRE(fd >= 0);
		if (!CHECK_EQ(pack_scan_open(io_system(), &scan, fd, 5), -EBADMSG))
			fprintf(stderr, "  byte %zu\n", i);
		close(fd);
	}
	/* Text. */
	REQUIRE(tu_write_file(path, "hello, this is not a pack file at all!\n", 39) == 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	CHECK_EQ(pack_scan_open(io_system(), &scan, fd, 0), -EBADMSG);
	close(fd);
	/* A good header alone is an empty pack. */
	REQUIRE(tu_write_file(path, header, sizeof(header)) == 0);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	REQUIRE(fd >= 0);
	CHECK_EQ(pack_scan_open(io_system(), &scan, fd, 5), 0);
	{
		struct record_info rec;
		CHECK_EQ(pack_scan_next(&scan, &rec), 0);
	}
	close(fd);
	/* A header followed by fewer bytes than the smallest record: torn. */
	{
		struct record_info rec;
		REQUIRE(tu_append_file(path, "0123456789", 10) == 0);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		REQUIRE(fd >= 0);
		CHECK_EQ(pack_scan_open(io_system(), &scan, fd, 5), 0);
		CHECK_EQ(pack_scan_next(&scan, &rec), -EBADMSG);
		CHECK_EQ(scan.bad_start, PACK_HEADER_SIZE);
		CHECK_EQ(scan.bad_end, PACK_HEADER_SIZE + 10);
		CHECK_EQ(pack_scan_next(&scan, &rec), 0);
		close(fd);
	}
	unlink(path);
}

int main(int argc, char **argv)
{
	const char *dir;

	(void)argc;
	tu_init(argv[0]);
	dir = tu_tmpdir();
	test_names();
	test_pack_header();
	test_record_header();
	test_create_and_scan(dir);
	test_damaged_header(dir);
	test_damaged_data(dir);
	test_torn_tail(dir);
	test_resync(dir);
	test_not_a_pack(dir);
	test_marker();
	test_chunk_table_and_guess(dir);
	return tu_finish();
}
