/*
 * test_pack_verify.c - what only verification notices: damaged data in a
 * well-framed record (pack_verify_record fails on its chunk checksum),
 * content that does not hash to the record's name, the empty blob, a
 * record cut short, a header and trailer that disagree on seq; reading
 * chunk tables (and one that does not match its trailer), verifying
 * without the hash, and guessing the hash of a record whose header fails
 * its checksum.
 *
 * Fixture: packutil.h / testutil.h (the fixture library).
 */
#include "io.h"
#include "hash.h"
#include "packutil.h"

static void test_damaged_data(const char *dir)
{
	struct pack_file p;
	struct scan_event ev[64];
	char path[PATH_MAX];
	struct hasher *hasher;
	size_t n;

	TU_TEST("damaged data: the frame scans, verification fails");
	REQUIRE(hasher_new(&hasher) == 0);
	pack_file_new(&p, dir, 9);
	pack_file_append(&p, RECORD_BLOB, 5000, CHUNK_SHIFT_MIN, false);
	pack_file_append(&p, RECORD_BLOB, 200000, CHUNK_SHIFT_DEFAULT, true);
	pack_file_append(&p, RECORD_BLOB, 1, CHUNK_SHIFT_DEFAULT, false);
	pack_file_append(&p, RECORD_BLOB, 70000, CHUNK_SHIFT_MIN, false);
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

		pack_file_new(&q, dir, 10);
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
		pack_file_close(&q);
	}

	TU_TEST("header and trailer that disagree on seq");
	{
		struct pack_file q;
		struct scan_event e1[4];
		uint8_t header[RECORD_HEADER_SIZE];
		struct record_info r;
		size_t m;

		pack_file_new(&q, dir, 11);
		pack_file_append(&q, RECORD_BLOB, 100, CHUNK_SHIFT_MIN, false);
		pack_file_append(&q, RECORD_BLOB, 100, CHUNK_SHIFT_MIN, false);
		pack_file_append(&q, RECORD_BLOB, 100, CHUNK_SHIFT_MIN, false);
		r = q.recs[1].rec;
		r.seq += 1000;
		record_header_encode(&r, header);
		CHECK_EQ(pwrite_full(io_system(), q.fd, header, sizeof(header), r.offset), 0);
		m = add_records(e1, 0, 0, 1);
		e1[m++] = (struct scan_event){ .kind = EV_DAMAGE, .bad_start = r.offset,
					  .bad_end = q.recs[2].rec.offset };
		m = add_records(e1, m, 2, 3);
		CHECK(scan_matches(&q, q.path, e1, m, true));
		pack_file_close(&q);
	}
	unlink(path);
	hasher_free(hasher);
	pack_file_close(&p);
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
	pack_file_new(&p, dir, 30);
	pack_file_append(&p, RECORD_BLOB, 200000, CHUNK_SHIFT_DEFAULT, false);
	pack_file_append(&p, RECORD_BLOB, 0, CHUNK_SHIFT_DEFAULT, false);
	pack_file_append(&p, RECORD_BLOB, 10000, CHUNK_SHIFT_MIN, true);
	pack_file_append(&p, RECORD_TOMBSTONE, 0, CHUNK_SHIFT_DEFAULT, false);
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
	pack_file_close(&p);
}

int main(int argc, char **argv)
{
	static const pack_test_fn tests[] = { test_damaged_data, test_chunk_table_and_guess };

	(void)argc;
	return pack_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
