/*
 * test_pack_zrecord.c - compressed records (REC3, format 3) at the pack
 * layer: records written whole (pack_write_zrecord) or as stored chunks
 * then frame (pack_write_zframe) over sizes, chunk shifts and contents
 * (text, zeros, random: chunks compressed and chunks kept raw in one
 * record), scanned back with the right version, stored size and end, read
 * back through pack_read_record, pack_read_ztable and zchunk_read, and
 * verified; what verification refuses (-EBADMSG and a problem) in a record
 * that frames: a flipped byte in a compressed or a raw chunk, a zstd frame
 * that decodes to another length or is no frame (CRCs resealed so only the
 * decode sees it), content that does not hash to the name; what does not
 * frame: a flipped table or trailer byte, a table entry of stored size 0 or
 * larger than its chunk (the rest sealed right), a REC3 cut short anywhere;
 * a scan resynchronising past a damaged REC3 (onto a REC3 too, across the
 * scanner's 64 KiB window); packs mixing REC2, REC3 and tombstones scanned
 * in order.
 *
 * Fixture: packutil.h / testutil.h (the fixture library); the stored
 * chunks come from chunk_codec.h's chunk_compress.
 */
#include "bytes.h"
#include "chunk_codec.h"
#include "crc32c.h"
#include "hash.h"
#include "io.h"
#include "packutil.h"

/* ---- content and records ---- */


/* len bytes whose chunk i (of 1 << shift bytes) is made as pattern[i %
 * strlen(pattern)] says (tu_fill_kind). */
static uint8_t *make_blob(uint64_t len, unsigned shift, const char *pattern)
{
	uint8_t *p = tu_xmalloc((size_t)len);
	uint64_t chunk = UINT64_C(1) << shift;
	size_t kinds = strlen(pattern);

	for (uint64_t i = 0; i * chunk < len; i++)
		tu_fill_kind(p + i * chunk, len - i * chunk < chunk ? len - i * chunk : chunk,
			   pattern[i % kinds]);
	return p;
}

/* A REC3 as it goes to disk: its header fields, its table and its stored
 * chunks back to back; data is its content (owned by the pack_file once
 * appended). */
struct zrec {
	struct record_info rec;
	uint8_t *data;
	struct zchunk *chunks;
	uint8_t *stored;
	uint64_t raw_chunks, packed_chunks;
};

/* Where chunk i's stored bytes start, relative to the first one. */
static uint64_t zchunk_start(const struct zrec *z, uint64_t i)
{
	uint64_t at = 0;

	for (uint64_t k = 0; k < i; k++)
		at += z->chunks[k].stored;
	return at;
}

/* Sets chunk i of z to the given stored bytes (its CRC resealed) and the
 * record's stored total to match. */
static void zrec_set_chunk(struct zrec *z, uint64_t i, const void *bytes, uint32_t n)
{
	uint64_t count = record_chunk_count(z->rec.length, z->rec.chunk_shift);
	uint64_t start = zchunk_start(z, i), old = z->chunks[i].stored;
	uint64_t after = z->rec.stored - start - old;
	uint8_t *stored = tu_xmalloc((size_t)(z->rec.stored - old + n) + 1);

	REQUIRE(i < count);
	memcpy(stored, z->stored, (size_t)start);
	memcpy(stored + start, bytes, n);
	memcpy(stored + start + n, z->stored + start + old, (size_t)after);
	free(z->stored);
	z->stored = stored;
	z->rec.stored = z->rec.stored - old + n;
	z->chunks[i].stored = n;
	z->chunks[i].crc = crc32c(0, bytes, n);
}

/* Builds the REC3 of data (len bytes) with chunk_compress at the default
 * level: a chunk that does not shrink is kept raw. */
static void zrec_build(struct zrec *z, uint8_t *data, uint64_t len, unsigned shift, uint64_t seq)
{
	uint64_t count = record_chunk_count(len, shift);

	memset(z, 0, sizeof(*z));
	z->rec.kind = RECORD_BLOB;
	z->rec.version = 3;
	z->rec.chunk_shift = shift;
	z->rec.seq = seq;
	z->rec.length = len;
	z->rec.time = 1700000000 + (int64_t)seq;
	REQUIRE(hash_buffer(data, (size_t)len, z->rec.hash) == 0);
	z->data = data;
	z->chunks = tu_xmalloc((size_t)count * sizeof(*z->chunks));
	z->stored = tu_xmalloc((size_t)len);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t n = record_chunk_length(&z->rec, i);
		const uint8_t *src = data + (i << shift);
		uint8_t *out = z->stored + z->rec.stored;
		long got = chunk_compress(CHUNK_CODEC_LEVEL_DEFAULT, src, (size_t)n, out);
		REQUIRE(got >= 0 && (uint64_t)got < n + (n < 2));
		if (got == 0) {
			memcpy(out, src, (size_t)n);
			z->chunks[i].stored = (uint32_t)n;
			z->raw_chunks++;
		} else {
			z->chunks[i].stored = (uint32_t)got;
			z->packed_chunks++;
		}
		z->chunks[i].crc = crc32c(0, out, z->chunks[i].stored);
		z->rec.stored += z->chunks[i].stored;
	}
}

/* Frees the table and stored chunks (not the content). */
static void zrec_free(struct zrec *z)
{
	free(z->chunks);
	free(z->stored);
	z->chunks = NULL;
	z->stored = NULL;
}

/* Writes z at the end of p, whole or as stored chunks then frame, and
 * remembers it (with its content) as p's next record. */
static void zrec_append(struct pack_file *p, struct zrec *z, bool via_frame)
{
	struct written w;

	z->rec.offset = p->end;
	if (via_frame) {
		CHECK_EQ(pwrite_full(io_system(), p->fd, z->stored, (size_t)z->rec.stored,
				     record_data_offset(&z->rec)),
			 0);
		CHECK_EQ(pack_write_zframe(io_system(), p->fd, &z->rec, z->chunks), 0);
	} else {
		CHECK_EQ(pack_write_zrecord(io_system(), p->fd, &z->rec, z->chunks, z->stored), 0);
	}
	p->end = record_end(&z->rec);
	CHECK_EQ(tu_file_size(p->path), p->end);
	CHECK_EQ(p->end - z->rec.offset,
		 RECORD_HEADER_SIZE + ZCHUNK_ENTRY_SIZE * record_chunk_count(z->rec.length, z->rec.chunk_shift) +
			 z->rec.stored + RECORD_TRAILER_SIZE);
	w.rec = z->rec;
	w.data = z->data;
	p->recs = realloc(p->recs, (p->count + 1) * sizeof(*p->recs));
	REQUIRE(p->recs);
	p->recs[p->count++] = w;
}

/* Builds and appends a REC3 of new content (make_blob) as p's next record;
 * its table and stored chunks are left in *keep when it is not NULL. */
static void zappend(struct pack_file *p, uint64_t len, unsigned shift, const char *pattern,
		    bool via_frame, struct zrec *keep)
{
	struct zrec z;

	zrec_build(&z, make_blob(len, shift, pattern), len, shift, p->count + 1);
	zrec_append(p, &z, via_frame);
	if (keep)
		*keep = z;
	else
		zrec_free(&z);
}

/* ---- reading back ---- */

/* A REC3 the scan returned reads back as written: its table, each chunk
 * through zchunk_read, verification with and without the hash. */
static bool zrecord_reads_back(int fd, const struct record_info *rec, const struct zrec *z,
			       const uint8_t *data, struct hasher *hasher)
{
	uint64_t count = record_chunk_count(rec->length, rec->chunk_shift);
	uint64_t chunk = UINT64_C(1) << rec->chunk_shift;
	uint64_t buf_size = rec->length < chunk ? rec->length : chunk;
	struct zchunk *chunks = tu_xmalloc((size_t)count * sizeof(*chunks));
	uint8_t *out = tu_xmalloc((size_t)buf_size), *scratch = tu_xmalloc((size_t)buf_size);
	struct record_info r = *rec;
	const char *problem = "unset";
	uint64_t at;
	uint32_t crc;
	bool ok = true;

	r.stored = 0;
	ok &= CHECK_EQ(pack_read_ztable(io_system(), fd, &r, chunks), 0);
	ok &= CHECK_EQ(r.stored, rec->stored);
	for (uint64_t i = 0; i < count; i++) {
		ok &= CHECK_EQ(chunks[i].stored, z->chunks[i].stored);
		ok &= CHECK_EQ(chunks[i].crc, z->chunks[i].crc);
	}
	/* The raw records' table reader is not for it. */
	ok &= CHECK_EQ(pack_read_chunk_table(io_system(), fd, rec, &crc), -EINVAL);
	at = record_data_offset(rec);
	for (uint64_t i = 0; i < count && ok; at += chunks[i].stored, i++) {
		uint64_t n = record_chunk_length(rec, i);
		problem = NULL;
		ok &= CHECK_EQ(zchunk_read(io_system(), fd, at, &chunks[i], n, out, scratch, &problem), 0);
		ok &= CHECK(problem == NULL);
		ok &= CHECK_MEM(out, data + i * chunk, (size_t)n);
	}
	ok &= CHECK_EQ(at, record_end(rec) - RECORD_TRAILER_SIZE);
	problem = "unset";
	ok &= CHECK_EQ(pack_verify_record(io_system(), fd, rec, hasher, &problem), 0);
	ok &= CHECK(problem == NULL);
	problem = "unset";
	ok &= CHECK_EQ(pack_verify_record(io_system(), fd, rec, NULL, &problem), 0);
	ok &= CHECK(problem == NULL);
	free(chunks);
	free(out);
	free(scratch);
	return ok;
}

/* Scans p's file and checks each record against what was written (zs[i]
 * for a REC3, indexed as p->recs): framing, version, stored size, end,
 * pack_read_record, and for a REC3 everything zrecord_reads_back checks. */
static bool scan_reads_back(const struct pack_file *p, const struct zrec *zs)
{
	struct pack_scan scan;
	struct record_info rec, again;
	struct hasher *hasher;
	bool ok = true;

	REQUIRE(hasher_new(&hasher) == 0);
	REQUIRE(pack_scan_open(io_system(), &scan, p->fd, p->id) == 0);
	for (size_t i = 0; i < p->count && ok; i++) {
		const struct written *w = &p->recs[i];
		uint64_t end = i + 1 < p->count ? p->recs[i + 1].rec.offset : p->end;
		if (!CHECK_EQ(pack_scan_next(&scan, &rec), 1)) {
			fprintf(stderr, "  record %zu at %" PRIu64 " did not scan\n", i, w->rec.offset);
			ok = false;
			break;
		}
		ok &= CHECK(same_record(&rec, &w->rec));
		ok &= CHECK_EQ(rec.version, w->rec.version ? w->rec.version : 2);
		ok &= CHECK_EQ(rec.stored, w->rec.version == 3 ? w->rec.stored : w->rec.length);
		ok &= CHECK_EQ(record_end(&rec), end);
		ok &= CHECK_EQ(scan.pos, end);
		ok &= CHECK_EQ(scan.good_end, end);
		ok &= CHECK_EQ(pack_read_record(io_system(), p->fd, rec.offset, &again), 0);
		ok &= CHECK(same_record(&again, &rec));
		ok &= CHECK_EQ(again.version, rec.version);
		ok &= CHECK_EQ(again.stored, rec.stored);
		if (rec.version == 3) {
			ok &= zrecord_reads_back(p->fd, &rec, &zs[i], w->data, hasher);
		} else {
			struct zchunk c;
			const char *problem = "unset";
			ok &= CHECK_EQ(pack_read_ztable(io_system(), p->fd, &again, &c), -EINVAL);
			if (rec.kind == RECORD_BLOB) {
				ok &= CHECK_EQ(pack_verify_record(io_system(), p->fd, &rec, hasher, &problem), 0);
				ok &= CHECK(problem == NULL);
			}
		}
		if (!ok)
			fprintf(stderr, "  record %zu (version %u, length %" PRIu64 ", shift %u)\n", i,
				w->rec.version, w->rec.length, w->rec.chunk_shift);
	}
	if (ok)
		ok &= CHECK_EQ(pack_scan_next(&scan, &rec), 0);
	hasher_free(hasher);
	return ok;
}

/* ---- the tests ---- */

static void test_write_and_read_back(const char *dir)
{
	static const uint64_t sizes[] = { 1, 2, 4095, 4096, 4097, 65535, 65536, 65537, 131072,
					  4 * 65536 + 5000 };
	static const char *const patterns[] = { "t", "z", "r", "tr", "rtz" };
	static const unsigned shifts[] = { CHUNK_SHIFT_MIN, CHUNK_SHIFT_DEFAULT, 17, CHUNK_SHIFT_MAX };
	struct zrec zs[256];
	struct pack_file p;
	uint64_t raw = 0, packed = 0, mixed = 0;
	size_t n = 0;

	TU_TEST("REC3 written whole and as frame: scanned, read and verified back");
	memset(zs, 0, sizeof(zs));
	pack_file_new(&p, dir, 0x33);
	for (size_t s = 0; s < sizeof(shifts) / sizeof(shifts[0]); s++) {
		for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
			const char *pattern = patterns[(s + k) % (sizeof(patterns) / sizeof(patterns[0]))];
			REQUIRE(p.count < sizeof(zs) / sizeof(zs[0]));
			zappend(&p, sizes[k], shifts[s], pattern, (s + k) % 2, &zs[p.count]);
			raw += zs[p.count - 1].raw_chunks;
			packed += zs[p.count - 1].packed_chunks;
			mixed += zs[p.count - 1].raw_chunks && zs[p.count - 1].packed_chunks;
			n++;
		}
	}
	/* A few records made of text with a raw chunk in the middle, at the
	 * default shift, through both writers. */
	for (int i = 0; i < 4; i++) {
		zappend(&p, 5 * 65536 + 1 + tu_rand_below(65535), CHUNK_SHIFT_DEFAULT, "ttrtz", i % 2,
			&zs[p.count]);
		CHECK_EQ(zs[p.count - 1].raw_chunks, 1);
		CHECK_EQ(zs[p.count - 1].packed_chunks, 5);
		mixed++;
	}
	/* The contents made both kinds of chunk, and records with both. */
	CHECK(raw > 0 && packed > 0 && mixed > 4);
	/* A 1-byte chunk never shrinks; zeros always do. */
	CHECK_EQ(zs[0].raw_chunks, 1);
	CHECK(scan_reads_back(&p, zs));
	{
		struct scan_event ev[256];
		CHECK(scan_matches(&p, p.path, ev, add_records(ev, 0, 0, p.count), true));
	}
	printf("  %zu REC3 records: %" PRIu64 " chunks compressed, %" PRIu64 " kept raw\n",
	       p.count, packed, raw);
	for (size_t i = 0; i < p.count; i++)
		zrec_free(&zs[i]);
	pack_file_close(&p);
}

/* REC2, REC3 and tombstones in a random order, each writer of each. */
static void test_mixed_pack(const char *dir)
{
	static const char *const patterns[] = { "t", "r", "tzr", "zt" };
	struct zrec zs[80];
	struct pack_file p;
	size_t versions[4] = { 0 };

	TU_TEST("packs mixing REC2, REC3 and tombstones scan in order");
	memset(zs, 0, sizeof(zs));
	pack_file_new(&p, dir, 0x34);
	for (size_t i = 0; i < sizeof(zs) / sizeof(zs[0]); i++) {
		unsigned shift = CHUNK_SHIFT_MIN + (unsigned)tu_rand_below(6);
		uint64_t len = 1 + tu_rand_below(tu_rand_below(3) ? 9000 : 300000);
		switch (tu_rand_below(5)) {
		case 0:
			pack_file_append(&p, RECORD_TOMBSTONE, 0, CHUNK_SHIFT_DEFAULT, tu_rand_below(2));
			break;
		case 1:
			pack_file_append(&p, RECORD_BLOB, tu_rand_below(3) ? len : 0, shift,
					 tu_rand_below(2));
			break;
		default:
			zappend(&p, len, shift, patterns[tu_rand_below(4)], tu_rand_below(2),
				&zs[p.count]);
			break;
		}
	}
	for (size_t i = 0; i < p.count; i++)
		versions[p.recs[i].rec.version]++;
	CHECK(versions[3] > 0 && versions[0] > 0);
	CHECK(scan_reads_back(&p, zs));
	{
		struct scan_event ev[80];
		CHECK(scan_matches(&p, p.path, ev, add_records(ev, 0, 0, p.count), true));
	}
	for (size_t i = 0; i < p.count; i++)
		zrec_free(&zs[i]);
	pack_file_close(&p);
}

/* Verifies every blob of the pack at path (as p recorded them) but the
 * victim, which must fail with -EBADMSG and a problem containing want (with
 * the hash; and without, when only_with_hash is false). */
static bool verify_all_but(const struct pack_file *p, const char *path, size_t victim,
			   const char *want, bool only_with_hash)
{
	struct hasher *hasher;
	bool ok = true;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	REQUIRE(fd >= 0);
	REQUIRE(hasher_new(&hasher) == 0);
	for (size_t i = 0; i < p->count; i++) {
		const struct record_info *rec = &p->recs[i].rec;
		const char *problem = "unset";
		if (rec->kind != RECORD_BLOB)
			continue;
		if (i != victim) {
			ok &= CHECK_EQ(pack_verify_record(io_system(), fd, rec, hasher, &problem), 0);
			ok &= CHECK(problem == NULL);
			continue;
		}
		ok &= CHECK_EQ(pack_verify_record(io_system(), fd, rec, hasher, &problem), -EBADMSG);
		ok &= CHECK(problem && strstr(problem, want));
		if (problem && !strstr(problem, want))
			fprintf(stderr, "  problem \"%s\", want \"%s\"\n", problem, want);
		problem = "unset";
		ok &= CHECK_EQ(pack_verify_record(io_system(), fd, rec, NULL, &problem),
			       only_with_hash ? 0 : -EBADMSG);
		ok &= only_with_hash ? CHECK(problem == NULL) : CHECK(problem && strstr(problem, want));
	}
	hasher_free(hasher);
	close(fd);
	return ok;
}

/* Damage to the data of a REC3 that still frames: only verification (and
 * zchunk_read) can tell. */
static void test_damaged_chunks(const char *dir)
{
	struct zrec z1, z3;
	struct pack_file p;
	struct scan_event ev[8];
	char path[PATH_MAX];
	size_t n;

	TU_TEST("a flipped byte in a compressed or a raw chunk of a REC3");
	pack_file_new(&p, dir, 0x35);
	pack_file_append(&p, RECORD_BLOB, 3000, CHUNK_SHIFT_MIN, false);
	zappend(&p, 4 * 65536 + 5000, CHUNK_SHIFT_DEFAULT, "trtz", false, &z1);
	pack_file_append(&p, RECORD_TOMBSTONE, 0, CHUNK_SHIFT_DEFAULT, false);
	zappend(&p, 5000, CHUNK_SHIFT_MIN, "t", true, &z3);
	pack_file_append(&p, RECORD_BLOB, 100, CHUNK_SHIFT_DEFAULT, false);
	REQUIRE(z1.raw_chunks == 1 && z1.packed_chunks == 4 && z1.chunks[1].stored == 65536);
	tu_path(path, sizeof(path), "%s/zdamaged", dir);
	n = add_records(ev, 0, 0, p.count);
	{
		/* Chunk 0 (compressed): first, middle, last byte; chunk 1
		 * (raw): first and a middle byte; chunk 4 (the last, partial,
		 * compressed): its last byte. */
		const uint64_t base = record_data_offset(&z1.rec);
		const uint64_t spots[] = { base, base + z1.chunks[0].stored / 2,
					   base + z1.chunks[0].stored - 1, base + zchunk_start(&z1, 1),
					   base + zchunk_start(&z1, 1) + 40000,
					   base + z1.rec.stored - 1 };
		for (size_t k = 0; k < sizeof(spots) / sizeof(spots[0]); k++) {
			tu_copy_file(p.path, path, SIZE_MAX);
			tu_xor_byte(path, spots[k], 0x20);
			/* The frame is intact: the scan sees every record. */
			CHECK(scan_matches(&p, path, ev, n, false));
			if (!verify_all_but(&p, path, 1, "chunk checksum mismatch", false))
				fprintf(stderr, "  byte %" PRIu64 " of the record flipped\n",
					spots[k] - z1.rec.offset);
		}
		/* zchunk_read of the damaged chunk says so too. */
		{
			uint8_t *out = tu_xmalloc(65536), *scratch = tu_xmalloc(65536);
			const char *problem = NULL;
			int fd;
			tu_copy_file(p.path, path, SIZE_MAX);
			tu_xor_byte(path, base + 7, 0x01);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			REQUIRE(fd >= 0);
			CHECK_EQ(zchunk_read(io_system(), fd, base, &z1.chunks[0], 65536, out, scratch,
					     &problem),
				 -EBADMSG);
			CHECK(problem && strstr(problem, "checksum"));
			problem = NULL;
			CHECK_EQ(zchunk_read(io_system(), fd, base + z1.chunks[0].stored, &z1.chunks[1], 65536,
					     out, scratch, &problem),
				 0);
			CHECK(problem == NULL);
			CHECK_MEM(out, z1.data + 65536, 65536);
			close(fd);
			free(out);
			free(scratch);
		}
	}
	/* The small REC3 at shift 12 too. */
	tu_copy_file(p.path, path, SIZE_MAX);
	tu_xor_byte(path, record_data_offset(&z3.rec) + z3.rec.stored - 1, 0x80);
	CHECK(scan_matches(&p, path, ev, n, false));
	CHECK(verify_all_but(&p, path, 3, "chunk checksum mismatch", false));

	TU_TEST("a flipped byte in a REC3's table or trailer");
	{
		const uint64_t table = z1.rec.offset + RECORD_HEADER_SIZE;
		const uint64_t trailer = record_end(&z1.rec) - RECORD_TRAILER_SIZE;
		/* Entry 0's stored size (low and high byte) and CRC, entry 4's
		 * CRC; the trailer's magic, table CRC and seq. */
		const uint64_t spots[] = { table, table + 3, table + 4, table + 4 * 8 + 7,
					   trailer, trailer + 5, trailer + 8, trailer + 15 };
		for (size_t k = 0; k < sizeof(spots) / sizeof(spots[0]); k++) {
			struct record_info r = z1.rec;
			struct zchunk chunks[5];
			const char *problem = NULL;
			size_t m;
			int fd;
			tu_copy_file(p.path, path, SIZE_MAX);
			tu_xor_byte(path, spots[k], 0x04);
			m = add_records(ev, 0, 0, 1);
			ev[m++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = z1.rec.offset,
						       .bad_end = p.recs[2].rec.offset };
			m = add_records(ev, m, 2, p.count);
			if (!scan_matches(&p, path, ev, m, true))
				fprintf(stderr, "  byte %" PRIu64 " of the record flipped\n",
					spots[k] - z1.rec.offset);
			fd = open(path, O_RDONLY | O_CLOEXEC);
			REQUIRE(fd >= 0);
			CHECK_EQ(pack_read_ztable(io_system(), fd, &r, chunks), -EBADMSG);
			CHECK_EQ(pack_read_record(io_system(), fd, z1.rec.offset, &r), -EBADMSG);
			CHECK_EQ(pack_verify_record(io_system(), fd, &z1.rec, NULL, &problem), -EBADMSG);
			CHECK(problem && strstr(problem, "chunk table"));
			close(fd);
		}
	}
	unlink(path);
	zrec_free(&z1);
	zrec_free(&z3);
	pack_file_close(&p);
}

/* A REC3 whose table, stored chunks and checksums are all consistent but
 * for one flaw, between two good records: what the scan and the readers
 * make of it. frames says whether it should frame (else it is damage). The
 * pack (and with it z's content) is gone afterwards. */
static void check_flawed(const char *dir, uint32_t id, struct zrec *z, bool frames,
			 const char *want_problem)
{
	struct pack_file p;
	struct scan_event ev[4];
	struct record_info r;
	struct zchunk *chunks = tu_xmalloc(
		(size_t)record_chunk_count(z->rec.length, z->rec.chunk_shift) * sizeof(*chunks));
	const char *problem = NULL;
	size_t n;

	pack_file_new(&p, dir, id);
	pack_file_append(&p, RECORD_BLOB, 500, CHUNK_SHIFT_MIN, false);
	z->rec.seq = 2;
	zrec_append(&p, z, false);
	pack_file_append(&p, RECORD_BLOB, 500, CHUNK_SHIFT_MIN, false);
	if (frames) {
		n = add_records(ev, 0, 0, p.count);
		CHECK(scan_matches(&p, p.path, ev, n, false));
		CHECK(verify_all_but(&p, p.path, 1, want_problem,
				     strstr(want_problem, "hash") != NULL));
		r = z->rec;
		CHECK_EQ(pack_read_ztable(io_system(), p.fd, &r, chunks), 0);
	} else {
		n = add_records(ev, 0, 0, 1);
		ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.recs[1].rec.offset,
					       .bad_end = p.recs[2].rec.offset };
		n = add_records(ev, n, 2, 3);
		CHECK(scan_matches(&p, p.path, ev, n, true));
		r = z->rec;
		CHECK_EQ(pack_read_ztable(io_system(), p.fd, &r, chunks), -EBADMSG);
		CHECK_EQ(pack_read_record(io_system(), p.fd, z->rec.offset, &r), -EBADMSG);
		CHECK_EQ(pack_verify_record(io_system(), p.fd, &z->rec, NULL, &problem), -EBADMSG);
		CHECK(problem && strstr(problem, want_problem));
	}
	free(chunks);
	unlink(p.path);
	pack_file_close(&p);
}

static void test_flawed_records(const char *dir)
{
	struct zrec z;
	uint8_t *frame = tu_xmalloc(2 * 65536), *other = tu_xmalloc(2 * 65536);
	long got;

	TU_TEST("a table entry of stored size 0, or larger than its chunk");
	/* Entry 1 (a raw chunk) made 0 bytes; entry 2 (compressed) one byte
	 * more than its chunk; the last (partial) entry one more than its
	 * length: each with the rest resealed (trailer CRC, stored total). */
	zrec_build(&z, make_blob(3 * 65536 + 100, CHUNK_SHIFT_DEFAULT, "trt"), 3 * 65536 + 100,
		   CHUNK_SHIFT_DEFAULT, 2);
	REQUIRE(z.chunks[1].stored == 65536 && z.chunks[2].stored < 65536);
	zrec_set_chunk(&z, 1, "", 0);
	check_flawed(dir, 0x40, &z, false, "chunk table");
	zrec_free(&z);
	zrec_build(&z, make_blob(3 * 65536 + 100, CHUNK_SHIFT_DEFAULT, "trt"), 3 * 65536 + 100,
		   CHUNK_SHIFT_DEFAULT, 2);
	tu_fill_kind(frame, 65537, 'r');
	zrec_set_chunk(&z, 2, frame, 65537);
	check_flawed(dir, 0x41, &z, false, "chunk table");
	zrec_free(&z);
	zrec_build(&z, make_blob(3 * 65536 + 100, CHUNK_SHIFT_DEFAULT, "trtr"), 3 * 65536 + 100,
		   CHUNK_SHIFT_DEFAULT, 2);
	REQUIRE(z.chunks[3].stored == 100);
	zrec_set_chunk(&z, 3, frame, 101);
	check_flawed(dir, 0x42, &z, false, "chunk table");
	zrec_free(&z);
	/* The control: a stored size moved from one chunk to the next (the
	 * same total, each in bounds) frames; the CRCs then catch it. */
	zrec_build(&z, make_blob(3 * 65536 + 100, CHUNK_SHIFT_DEFAULT, "rtt"), 3 * 65536 + 100,
		   CHUNK_SHIFT_DEFAULT, 2);
	z.chunks[0].stored -= 10;
	z.chunks[1].stored += 10;
	check_flawed(dir, 0x43, &z, true, "chunk checksum mismatch");
	zrec_free(&z);

	TU_TEST("a zstd frame that decodes to another length, or is no frame");
	/* Chunk 1 of 3 replaced with a frame of other content, CRC resealed:
	 * 100 bytes short, twice the chunk (zeros: a tiny frame), and random
	 * bytes that are no frame at all. */
	{
		static const struct {
			uint64_t len;
			char kind;
		} others[] = { { 65536 - 100, 't' }, { 2 * 65536, 'z' }, { 65537, 't' } };
		for (size_t k = 0; k < sizeof(others) / sizeof(others[0]); k++) {
			zrec_build(&z, make_blob(3 * 65536, CHUNK_SHIFT_DEFAULT, "t"), 3 * 65536,
				   CHUNK_SHIFT_DEFAULT, 2);
			tu_fill_kind(other, others[k].len, others[k].kind);
			got = chunk_compress(CHUNK_CODEC_LEVEL_DEFAULT, other, (size_t)others[k].len, frame);
			REQUIRE(got > 0 && got < 65536);
			zrec_set_chunk(&z, 1, frame, (uint32_t)got);
			check_flawed(dir, 0x44 + (uint32_t)k, &z, true, "does not decode");
			zrec_free(&z);
		}
		zrec_build(&z, make_blob(3 * 65536, CHUNK_SHIFT_DEFAULT, "t"), 3 * 65536,
			   CHUNK_SHIFT_DEFAULT, 2);
		tu_fill_kind(frame, 30000, 'r');
		zrec_set_chunk(&z, 1, frame, 30000);
		check_flawed(dir, 0x48, &z, true, "does not decode");
		zrec_free(&z);
	}

	TU_TEST("a zstd frame of the right length but other content");
	/* Every chunk checks out and decodes: only the hash tells. */
	zrec_build(&z, make_blob(2 * 65536 + 7, CHUNK_SHIFT_DEFAULT, "t"), 2 * 65536 + 7,
		   CHUNK_SHIFT_DEFAULT, 2);
	tu_fill_kind(other, 65536, 't');
	got = chunk_compress(CHUNK_CODEC_LEVEL_DEFAULT, other, 65536, frame);
	REQUIRE(got > 0);
	zrec_set_chunk(&z, 0, frame, (uint32_t)got);
	check_flawed(dir, 0x49, &z, true, "content does not hash to the blob's name");
	zrec_free(&z);

	TU_TEST("chunk_decompress never writes past what it is asked for");
	{
		/* A frame of 2 chunks of zeros into a buffer of one, with a
		 * guard after it; a frame of 65436 bytes asked for 65536. */
		uint8_t *dst = tu_xmalloc(65536 + 4096);
		tu_fill_kind(other, 2 * 65536, 'z');
		got = chunk_compress(CHUNK_CODEC_LEVEL_DEFAULT, other, 2 * 65536, frame);
		REQUIRE(got > 0);
		memset(dst, 0xa5, 65536 + 4096);
		CHECK_EQ(chunk_decompress(frame, (size_t)got, dst, 65536), -EBADMSG);
		for (size_t i = 65536; i < 65536 + 4096; i++)
			if (!CHECK_EQ(dst[i], 0xa5))
				break;
		tu_fill_kind(other, 65436, 't');
		got = chunk_compress(CHUNK_CODEC_LEVEL_DEFAULT, other, 65436, frame);
		REQUIRE(got > 0);
		CHECK_EQ(chunk_decompress(frame, (size_t)got, dst, 65536), -EBADMSG);
		memset(dst, 0xa5, 65536 + 4096);
		CHECK_EQ(chunk_decompress(frame, (size_t)got, dst, 65435), -EBADMSG);
		for (size_t i = 65435; i < 65536 + 4096; i++)
			if (!CHECK_EQ(dst[i], 0xa5))
				break;
		CHECK_EQ(chunk_decompress(frame, (size_t)got, dst, 65436), 0);
		CHECK_MEM(dst, other, 65436);
		/* Cut short, or empty: no frame. */
		CHECK_EQ(chunk_decompress(frame, (size_t)got - 1, dst, 65436), -EBADMSG);
		CHECK_EQ(chunk_decompress(frame, 0, dst, 65436), -EBADMSG);
		/* And the context is fine after the failures. */
		CHECK_EQ(chunk_decompress(frame, (size_t)got, dst, 65436), 0);
		CHECK_MEM(dst, other, 65436);
		free(dst);
	}
	free(frame);
	free(other);

	TU_TEST("REC3 headers a blob with content only may have");
	{
		/* A REC3 tombstone, or a REC3 of an empty blob, does not decode:
		 * written with the raw writer (no table), it does not frame. */
		struct pack_file p;
		struct record_info rec = { .kind = RECORD_TOMBSTONE, .version = 3,
					   .chunk_shift = CHUNK_SHIFT_DEFAULT, .seq = 9 };
		uint8_t header[RECORD_HEADER_SIZE];
		struct record_info out;
		struct scan_event ev[2];
		record_header_encode(&rec, header);
		CHECK_EQ(record_header_decode(header, 0, &out), -EBADMSG);
		rec.kind = RECORD_BLOB;
		record_header_encode(&rec, header);
		CHECK_EQ(record_header_decode(header, 0, &out), -EBADMSG);
		pack_file_new(&p, dir, 0x4a);
		rec.offset = p.end;
		CHECK_EQ(pack_write_record(io_system(), p.fd, &rec, "", NULL), 0);
		ev[0] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.end,
					     .bad_end = record_end(&rec) };
		CHECK(scan_matches(&p, p.path, ev, 1, false));
		CHECK_EQ(pack_read_record(io_system(), p.fd, rec.offset, &out), -EBADMSG);
		unlink(p.path);
		pack_file_close(&p);
	}
}

/* A REC3 as the last record, cut at every point near either end and every
 * 97th byte between: damage from its start to the cut, and what a reader
 * that knows the record makes of it (-EBADMSG and a problem). */
static void test_cut_short(const char *dir)
{
	struct pack_file p;
	struct scan_event ev[8];
	struct zrec z;
	char path[PATH_MAX];
	long bad = 0;

	TU_TEST("a REC3 cut short anywhere");
	pack_file_new(&p, dir, 0x50);
	pack_file_append(&p, RECORD_BLOB, 300, CHUNK_SHIFT_DEFAULT, false);
	zappend(&p, 2 * 65536 + 3000, CHUNK_SHIFT_DEFAULT, "trt", false, &z);
	REQUIRE(z.raw_chunks == 1);
	tu_path(path, sizeof(path), "%s/zcut", dir);
	for (uint64_t cut = z.rec.offset; cut <= p.end && bad < 3;
	     cut += cut - z.rec.offset < 300 || p.end - cut < 300 ? 1 : 97) {
		size_t n = add_records(ev, 0, 0, 1);
		if (cut == p.end)
			n = add_records(ev, n, 1, 2);
		else if (cut > z.rec.offset)
			ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = z.rec.offset,
						       .bad_end = cut };
		tu_copy_file(p.path, path, (size_t)cut);
		if (!scan_matches(&p, path, ev, n, true)) {
			fprintf(stderr, "  cut at %" PRIu64 " (record at %" PRIu64 ", ends at %" PRIu64
					")\n",
				cut, z.rec.offset, p.end);
			bad++;
		}
		/* What a reader holding the record's place makes of it. */
		if (cut > z.rec.offset && cut < p.end) {
			struct record_info r;
			const char *problem = NULL;
			int fd = open(path, O_RDONLY | O_CLOEXEC);
			REQUIRE(fd >= 0);
			CHECK_EQ(pack_read_record(io_system(), fd, z.rec.offset, &r), -EBADMSG);
			CHECK_EQ(pack_verify_record(io_system(), fd, &z.rec, NULL, &problem), -EBADMSG);
			if (!CHECK(problem != NULL))
				bad++;
			close(fd);
		}
	}
	unlink(path);
	zrec_free(&z);
	pack_file_close(&p);
}

/* Damaged REC3s in the middle of a pack: the scan reports each stretch and
 * resumes on the next record, a REC3 as well as any other. */
static void test_resync(const char *dir)
{
	struct pack_file p;
	struct scan_event ev[16];
	char path[PATH_MAX];
	size_t n;

	TU_TEST("a scan resynchronises past a damaged REC3");
	pack_file_new(&p, dir, 0x60);
	pack_file_append(&p, RECORD_BLOB, 100, CHUNK_SHIFT_DEFAULT, false);   /* 0 */
	zappend(&p, 200000, CHUNK_SHIFT_DEFAULT, "trz", false, NULL);       /* 1 */
	zappend(&p, 3000, CHUNK_SHIFT_MIN, "t", true, NULL);                 /* 2 */
	pack_file_append(&p, RECORD_TOMBSTONE, 0, CHUNK_SHIFT_DEFAULT, false); /* 3 */
	zappend(&p, 70000, CHUNK_SHIFT_MIN, "rt", false, NULL);              /* 4 */
	pack_file_append(&p, RECORD_BLOB, 5000, CHUNK_SHIFT_MIN, true);      /* 5 */
	tu_path(path, sizeof(path), "%s/zresync", dir);
	/* One damaged header at a time: magic, kind, length, hash, crc. */
	for (size_t victim = 1; victim <= 4; victim++) {
		static const unsigned offsets[] = { 0, 3, 4, 16, 30, 61 };
		if (victim == 3)
			continue;
		for (size_t k = 0; k < sizeof(offsets) / sizeof(offsets[0]); k++) {
			tu_copy_file(p.path, path, SIZE_MAX);
			tu_xor_byte(path, p.recs[victim].rec.offset + offsets[k], 0x5a);
			n = add_records(ev, 0, 0, victim);
			ev[n++] = (struct scan_event){ .kind = EV_DAMAGE,
						       .bad_start = p.recs[victim].rec.offset,
						       .bad_end = p.recs[victim + 1].rec.offset };
			n = add_records(ev, n, victim + 1, p.count);
			if (!scan_matches(&p, path, ev, n, true))
				fprintf(stderr, "  record %zu, header byte %u flipped\n", victim,
					offsets[k]);
		}
	}
	/* Two REC3s in a row: one stretch. */
	tu_copy_file(p.path, path, SIZE_MAX);
	tu_xor_byte(path, p.recs[1].rec.offset + 20, 0x5a);
	tu_xor_byte(path, p.recs[2].rec.offset + 70, 0x5a); /* its table */
	n = add_records(ev, 0, 0, 1);
	ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.recs[1].rec.offset,
				       .bad_end = p.recs[3].rec.offset };
	n = add_records(ev, n, 3, p.count);
	CHECK(scan_matches(&p, path, ev, n, true));
	/* A REC3 zeroed but for its last 10 bytes. */
	{
		size_t span = (size_t)(p.recs[2].rec.offset - p.recs[1].rec.offset - 10);
		uint8_t *zeros = calloc(1, span);
		REQUIRE(zeros);
		tu_copy_file(p.path, path, SIZE_MAX);
		tu_patch_file(path, p.recs[1].rec.offset, zeros, span);
		n = add_records(ev, 0, 0, 1);
		ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.recs[1].rec.offset,
					       .bad_end = p.recs[2].rec.offset };
		n = add_records(ev, n, 2, p.count);
		CHECK(scan_matches(&p, path, ev, n, true));
		free(zeros);
	}
	/* Garbage after the last record that looks like a REC3's start, and
	 * a REC3's header torn after its first table bytes. */
	{
		static const size_t lens[] = { 4, 64, 79, 80, 81, 1000, 70000 };
		for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
			uint8_t *junk = tu_random_buffer(lens[i]);
			put_le32(junk, RECORD_MAGIC_Z);
			tu_copy_file(p.path, path, SIZE_MAX);
			REQUIRE(tu_append_file(path, junk, lens[i]) == 0);
			n = add_records(ev, 0, 0, p.count);
			ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.end,
						       .bad_end = p.end + lens[i] };
			if (!scan_matches(&p, path, ev, n, true))
				fprintf(stderr, "  %zu bytes of garbage\n", lens[i]);
			free(junk);
		}
		{
			struct zrec z;
			zrec_build(&z, make_blob(9000, CHUNK_SHIFT_MIN, "t"), 9000, CHUNK_SHIFT_MIN, 99);
			z.rec.offset = p.end;
			tu_copy_file(p.path, path, SIZE_MAX);
			{
				int fd = open(path, O_RDWR | O_CLOEXEC);
				REQUIRE(fd >= 0);
				CHECK_EQ(pack_write_zrecord(io_system(), fd, &z.rec, z.chunks, z.stored), 0);
				CHECK_EQ(ftruncate(fd, (off_t)(p.end + RECORD_HEADER_SIZE + 11)), 0);
				close(fd);
			}
			n = add_records(ev, 0, 0, p.count);
			ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.end,
						       .bad_end = p.end + RECORD_HEADER_SIZE + 11 };
			CHECK(scan_matches(&p, path, ev, n, true));
			zrec_free(&z);
			free(z.data);
		}
	}
	unlink(path);
	pack_file_close(&p);

	TU_TEST("resynchronisation onto a REC3 across the scanner's window");
	/* Record 1 is a REC3 of one raw chunk sized so that record 2, a REC3,
	 * starts d bytes after the point where resync starts. */
	for (uint64_t d = 65528; d <= 65540; d++) {
		uint64_t len = d + 1 - RECORD_HEADER_SIZE - ZCHUNK_ENTRY_SIZE - RECORD_TRAILER_SIZE;
		struct zrec z;
		pack_file_new(&p, dir, 0x61);
		zappend(&p, 100, CHUNK_SHIFT_DEFAULT, "t", false, NULL);
		zappend(&p, len, CHUNK_SHIFT_DEFAULT, "r", false, &z);
		zappend(&p, 5000, CHUNK_SHIFT_DEFAULT, "t", false, NULL);
		zappend(&p, 100, CHUNK_SHIFT_DEFAULT, "t", true, NULL);
		CHECK_EQ(z.raw_chunks, 1);
		CHECK_EQ(p.recs[2].rec.offset - (p.recs[1].rec.offset + 1), d);
		tu_copy_file(p.path, path, SIZE_MAX);
		tu_xor_byte(path, p.recs[1].rec.offset + 2, 0x5a);
		n = add_records(ev, 0, 0, 1);
		ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.recs[1].rec.offset,
					       .bad_end = p.recs[2].rec.offset };
		n = add_records(ev, n, 2, p.count);
		if (!scan_matches(&p, path, ev, n, true))
			fprintf(stderr, "  next record %" PRIu64 " bytes after resync start\n", d);
		zrec_free(&z);
		unlink(p.path);
		pack_file_close(&p);
	}
	unlink(path);
}

int main(int argc, char **argv)
{
	static const pack_test_fn tests[] = { test_write_and_read_back, test_mixed_pack,
					      test_damaged_chunks, test_flawed_records,
					      test_cut_short, test_resync };

	(void)argc;
	return pack_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
