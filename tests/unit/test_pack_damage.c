/*
 * test_pack_damage.c - scanning a damaged pack: a bad record header, chunk
 * table or trailer in the middle (and two in a row, and the first record)
 * is reported as one stretch of damage and the scan goes on with the next
 * record; truncation anywhere inside the last record; garbage after it;
 * resynchronisation on the next good record, across the scanner's 64 KiB
 * read window and over a record zeroed but for its end.
 *
 * Fixture: packutil.h / testutil.h (the fixture library).
 */
#include "io.h"
#include "bytes.h"
#include "packutil.h"

static void test_damaged_header(const char *dir)
{
	struct pack_file p;
	struct scan_event ev[64];
	char path[PATH_MAX];
	size_t mid;

	TU_TEST("a damaged record header in the middle");
	pack_file_fixture(&p, dir, 7, 12, 2000);
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
			ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = w->rec.offset,
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
			ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = w->rec.offset,
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
		ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.recs[0].rec.offset,
					  .bad_end = p.recs[1].rec.offset };
		n = add_records(ev, n, 1, 4);
		/* Adjacent damage is one stretch. */
		ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.recs[4].rec.offset,
					  .bad_end = p.recs[6].rec.offset };
		n = add_records(ev, n, 6, p.count);
		CHECK(scan_matches(&p, path, ev, n, true));
	}
out:
	unlink(path);
	pack_file_close(&p);
}

static void test_torn_tail(const char *dir)
{
	struct pack_file p;
	struct scan_event ev[64];
	char path[PATH_MAX];
	const struct written *last;
	long bad = 0;

	TU_TEST("truncation anywhere inside the last record");
	pack_file_fixture(&p, dir, 12, 8, 5000);
	last = &p.recs[p.count - 1];
	tu_path(path, sizeof(path), "%s/torn", dir);
	/* Every cut point near either end of the record, every 7th between. */
	for (uint64_t cut = last->rec.offset; cut <= p.end && bad < 3;
	     cut += cut - last->rec.offset < 300 || p.end - cut < 300 ? 1 : 7) {
		size_t n = add_records(ev, 0, 0, p.count - 1);
		if (cut == p.end)
			n = add_records(ev, n, p.count - 1, p.count);
		else if (cut > last->rec.offset)
			ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = last->rec.offset,
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
	pack_file_close(&p);

	TU_TEST("truncation inside a large last record");
	pack_file_new(&p, dir, 13);
	pack_file_append(&p, RECORD_BLOB, 10, CHUNK_SHIFT_DEFAULT, false);
	pack_file_append(&p, RECORD_BLOB, 65536, CHUNK_SHIFT_DEFAULT, false);
	pack_file_append(&p, RECORD_BLOB, 300 * 1024, CHUNK_SHIFT_DEFAULT, true);
	last = &p.recs[p.count - 1];
	for (int i = 0; i < 60 && bad < 3; i++) {
		uint64_t cut = i < 20 ? last->rec.offset + 1 + (uint64_t)i * 7 :
			       i < 40 ? p.end - 1 - (uint64_t)(i - 20) * 5 :
					last->rec.offset + 1 + tu_rand_below(p.end - last->rec.offset - 1);
		size_t n = add_records(ev, 0, 0, p.count - 1);
		ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = last->rec.offset,
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
			ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.end,
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
			ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.end,
						  .bad_end = p.end + sizeof(header) + 3 };
			CHECK(scan_matches(&p, path, ev, n, true));
		}
	}
	unlink(path);
	pack_file_close(&p);
}

/* Garbage followed by a good record: the scan reports the garbage and
 * resumes exactly at the record, including when the record's magic straddles
 * the scanner's 64 KiB read window. */
static void test_resync(const char *dir)
{
	struct pack_file p;
	struct scan_event ev[16];
	char path[PATH_MAX];

	TU_TEST("resynchronisation on the next good record");
	tu_path(path, sizeof(path), "%s/resync", dir);
	/* Record 1's size is chosen so that record 2 starts d bytes after the
	 * point where resync starts (bad_start + 1), for d around the window. */
	for (uint64_t d = 65528; d <= 65540; d++) {
		uint64_t len = d + 1 - RECORD_HEADER_SIZE - RECORD_TRAILER_SIZE - 4;
		size_t n;
		char name[PACK_NAME_SIZE];
		pack_file_new(&p, dir, 20);
		pack_file_append(&p, RECORD_BLOB, 100, CHUNK_SHIFT_DEFAULT, false);
		pack_file_append(&p, RECORD_BLOB, len, CHUNK_SHIFT_DEFAULT, false);
		pack_file_append(&p, RECORD_BLOB, 100, CHUNK_SHIFT_DEFAULT, false);
		pack_file_append(&p, RECORD_BLOB, 100, CHUNK_SHIFT_DEFAULT, false);
		CHECK_EQ(p.recs[2].rec.offset - (p.recs[1].rec.offset + 1), d);
		tu_copy_file(p.path, path, SIZE_MAX);
		tu_xor_byte(path, p.recs[1].rec.offset + 2, 0x5a);
		n = add_records(ev, 0, 0, 1);
		ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.recs[1].rec.offset,
					  .bad_end = p.recs[2].rec.offset };
		n = add_records(ev, n, 2, p.count);
		if (!scan_matches(&p, path, ev, n, true))
			fprintf(stderr, "  next record %" PRIu64 " bytes after resync start\n", d);
		pack_name(p.id, name);
		pack_file_close(&p);
		unlinkat(AT_FDCWD, path, 0);
		{
			char pack_path[PATH_MAX];
			tu_path(pack_path, sizeof(pack_path), "%s/%s", dir, name);
			unlink(pack_path);
		}
	}

	/* Garbage inserted between two records (a record lost its header and
	 * more): resync lands on the following record. */
	pack_file_new(&p, dir, 21);
	pack_file_append(&p, RECORD_BLOB, 500, CHUNK_SHIFT_MIN, false);
	pack_file_append(&p, RECORD_BLOB, 200000, CHUNK_SHIFT_MIN, false);
	pack_file_append(&p, RECORD_BLOB, 500, CHUNK_SHIFT_MIN, false);
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
		ev[n++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = p.recs[1].rec.offset,
					  .bad_end = p.recs[2].rec.offset };
		n = add_records(ev, n, 2, 3);
		CHECK(scan_matches(&p, path, ev, n, true));
		free(zeros);
	}
	unlink(path);
	pack_file_close(&p);
}

int main(int argc, char **argv)
{
	static const pack_test_fn tests[] = { test_damaged_header, test_torn_tail, test_resync };

	(void)argc;
	return pack_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
