/*
 * test_pack_write.c - writing packs and reading them back: pack_create
 * (refuses an id that exists), records written whole (pack_write_record)
 * or as data then frame (pack_write_frame) over kinds, sizes and chunk
 * shifts, scanned back and read back exactly; and what pack_scan_open
 * takes: only its own id, a header alone as an empty pack, and no file
 * that is not a pack (empty, short, a bad header byte, text, a header and
 * too few bytes after it).
 *
 * Fixture: packutil.h / testutil.h (the fixture library).
 */
#include "io.h"
#include "packutil.h"

static void test_create_and_scan(const char *dir)
{
	static const uint64_t sizes[] = { 0, 1, 2, 63, 64, 4095, 4096, 4097, 65535, 65536, 65537,
					  131072, 300 * 1024 + 7, 1000 };
	struct pack_file p;
	struct scan_event ev[64];
	size_t n = 0;
	int fd;

	TU_TEST("write records and scan them back");
	pack_file_new(&p, dir, 0x2a);
	/* A second pack of the same id is refused. */
	CHECK_EQ(pack_create(io_system(), p.dirfd, 0x2a, &fd), -EEXIST);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++)
		pack_file_append(&p, RECORD_BLOB, sizes[i], CHUNK_SHIFT_DEFAULT, i % 2);
	pack_file_append(&p, RECORD_TOMBSTONE, 0, CHUNK_SHIFT_DEFAULT, false);
	pack_file_append(&p, RECORD_BLOB, 70000, CHUNK_SHIFT_MIN, false);
	pack_file_append(&p, RECORD_BLOB, 70000, CHUNK_SHIFT_MAX, true);
	pack_file_append(&p, RECORD_BLOB, 0, CHUNK_SHIFT_MAX, true);
	pack_file_append(&p, RECORD_TOMBSTONE, 0, CHUNK_SHIFT_MIN, true);
	for (int i = 0; i < 10; i++)
		pack_file_append(&p, RECORD_BLOB, tu_rand_below(20000), 12 + (unsigned)tu_rand_below(13),
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
	pack_file_close(&p);

	/* A pack holding only its header scans as empty. */
	{
		struct pack_scan scan;
		struct record_info rec;
		pack_file_new(&p, dir, 0);
		CHECK_EQ(pack_scan_open(io_system(), &scan, p.fd, 0), 0);
		CHECK_EQ(pack_scan_next(&scan, &rec), 0);
		pack_file_close(&p);
	}
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
	static const pack_test_fn tests[] = { test_create_and_scan, test_not_a_pack };

	(void)argc;
	return pack_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
