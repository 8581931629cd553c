/*
 * test_store_verified.c - verified reads of damaged packs: a flipped byte in
 * one chunk fails every read that touches that chunk (and only those), and
 * content re-sealed so that its chunk checksums pass but its SHA-256 does
 * not is refused at the end, and again on every retry.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include "bytes.h"
#include "crc32c.h"
#include "storeutil.h"

/* Reads the whole blob in order in pieces of `piece` bytes; returns the
 * first error (0 if none) and checks that every byte handed out is right. */
static int read_in_order(struct store *s, const uint8_t *hash, const uint8_t *want, size_t len,
			 size_t piece, uint64_t *failed_at, struct blob_reader **keep)
{
	struct blob_reader *r;
	uint8_t *buf = tu_xmalloc(piece);
	uint64_t off = 0;
	int ret;

	REQUIRE(blob_open(s, hash, &r) == 0);
	ret = 0;
	while (off < len) {
		size_t got = 0;
		ret = blob_read(r, buf, piece, off, &got);
		if (ret) {
			*failed_at = off;
			break;
		}
		if (!CHECK(got > 0) || !CHECK_MEM(buf, want + off, got)) {
			ret = -EBADE;
			break;
		}
		off += got;
	}
	free(buf);
	if (keep)
		*keep = r;
	else
		blob_close(r);
	return ret;
}

static void test_verified_reads(const char *base)
{
	enum { LA = 200000, LB = 1000, LC = 150000 };
	char dir[PATH_MAX], path[PATH_MAX];
	struct blobdb *db;
	struct store *s;
	uint8_t *a = make_content(LA), *b = make_content(LB), *c = make_content(LC);
	uint8_t ha[HS], hb[HS], hc[HS];
	struct record_info ra, rc;
	uint32_t pa, pc;
	uint64_t failed_at = 0;
	int r;

	TU_TEST("verified reads: a damaged chunk is never handed out");
	tu_path(dir, sizeof(dir), "%s/db-verify", base);
	s = new_store(dir, NULL, "v", &db);
	CHECK_EQ(blob_save(s, a, LA, ha), 0);
	CHECK_EQ(blob_save(s, b, LB, hb), 0);
	CHECK_EQ(blob_save(s, c, LC, hc), 0);
	CHECK_EQ(store_sync(s), 0);
	store_close(s);
	blobdb_close(db);
	REQUIRE(find_record(dir, "v", ha, &pa, &ra));
	REQUIRE(find_record(dir, "v", hc, &pc, &rc));

	/* One flipped byte in the third chunk of a. */
	path_of_pack(dir, "v", pa, path);
	tu_xor_byte(path, record_data_offset(&ra) + 2 * 65536 + 5, 0x40);
	db = db_open(dir, NULL);
	s = st_open(db, "v");
	CHECK(blob_is(s, b, LB));
	CHECK(blob_is(s, c, LC));
	r = read_in_order(s, ha, a, LA, 10000, &failed_at, NULL);
	CHECK_EQ(r, -EIO);
	CHECK(failed_at >= 2 * 65536 - 10000 && failed_at <= 3 * 65536);
	{
		struct blob_reader *rd;
		uint8_t buf[300];
		size_t got = 0;
		REQUIRE(blob_open(s, ha, &rd) == 0);
		/* Other chunks read fine, in any order. */
		CHECK_EQ(blob_read(rd, buf, sizeof(buf), 3 * 65536 + 100, &got), 0);
		if (CHECK_EQ(got, sizeof(buf)))
			CHECK_MEM(buf, a + 3 * 65536 + 100, sizeof(buf));
		CHECK_EQ(blob_read(rd, buf, sizeof(buf), 100, &got), 0);
		if (CHECK_EQ(got, sizeof(buf)))
			CHECK_MEM(buf, a + 100, sizeof(buf));
		/* Any read touching the damaged chunk fails, every time. */
		for (int i = 0; i < 3; i++) {
			got = 12345;
			CHECK_EQ(blob_read(rd, buf, 10, 2 * 65536 + 5, &got), -EIO);
			CHECK_EQ(got, 0);
		}
		CHECK_EQ(blob_read(rd, buf, sizeof(buf), 2 * 65536 - 100, &got), -EIO);
		blob_close(rd);
	}
	store_close(s);
	blobdb_close(db);
	tu_xor_byte(path, record_data_offset(&ra) + 2 * 65536 + 5, 0x40);

	TU_TEST("verified reads: content that passes its chunk checksums but not its hash");
	/* Change a byte of c's last chunk and re-seal that chunk's checksum and
	 * the table's: only the SHA-256 can tell. */
	{
		uint64_t pos = record_data_offset(&rc) + 2 * 65536 + 7;
		uint64_t table = record_data_offset(&rc) + LC;
		uint8_t chunk[LC - 2 * 65536], tbl[12], trailer_crc[4];
		path_of_pack(dir, "v", pc, path);
		tu_xor_byte(path, pos, 0x01);
		tu_read_at(path, record_data_offset(&rc) + 2 * 65536, chunk, sizeof(chunk));
		tu_read_at(path, table, tbl, sizeof(tbl));
		put_le32(tbl + 8, crc32c(0, chunk, sizeof(chunk)));
		tu_patch_file(path, table, tbl, sizeof(tbl));
		put_le32(trailer_crc, crc32c(0, tbl, sizeof(tbl)));
		tu_patch_file(path, table + sizeof(tbl) + 4, trailer_crc, 4);
	}
	db = db_open(dir, NULL);
	s = st_open(db, "v");
	CHECK(blob_is(s, a, LA));
	CHECK(blob_is(s, b, LB));
	{
		struct blob_reader *rd = NULL;
		uint8_t buf[LC];
		size_t got = 0;
		r = read_in_order(s, hc, c, LC, 4096, &failed_at, &rd);
		CHECK_EQ(r, -EIO);
		/* Refused at the end, where the hash completes. */
		CHECK(failed_at >= 2 * 65536);
		/* Asking again must not hand out the bytes either. */
		r = blob_read(rd, buf, 4096, failed_at, &got);
		if (!CHECK_EQ(r, -EIO))
			fprintf(stderr, "  the read refused for a bad hash succeeded when retried (%zu bytes)\n",
				got);
		r = blob_read(rd, buf, LC, 0, &got);
		if (!CHECK_EQ(r, -EIO))
			fprintf(stderr, "  a whole-blob read after the refused one succeeded (%zu bytes)\n",
				got);
		blob_close(rd);
		/* Found corrupt: a later open is refused. */
		rd = NULL;
		CHECK_EQ(blob_open(s, hc, &rd), -EIO);
		if (rd)
			blob_close(rd);
	}
	store_close(s);
	blobdb_close(db);
	/* After a reopen (which forgets that), a fresh reader reading it all
	 * in one go: refused. */
	db = db_open(dir, NULL);
	s = st_open(db, "v");
	{
		struct blob_reader *rd = NULL;
		uint8_t buf[LC];
		size_t got = 0;
		REQUIRE(blob_open(s, hc, &rd) == 0);
		CHECK_EQ(blob_read(rd, buf, LC, 0, &got), -EIO);
		blob_close(rd);
		/* Read out of order, whole: the read that reaches the end hashes
		 * what the others skipped first, and is refused. */
		CHECK_EQ(blob_open(s, hc, &rd), -EIO);
	}
	store_close(s);
	blobdb_close(db);
	db = db_open(dir, NULL);
	s = st_open(db, "v");
	{
		struct blob_reader *rd = NULL;
		uint8_t buf[LC];
		size_t got = 0;
		REQUIRE(blob_open(s, hc, &rd) == 0);
		CHECK_EQ(blob_read(rd, buf, 65536, 65536, &got), 0);
		CHECK_EQ(blob_read(rd, buf, 65536, 0, &got), 0);
		CHECK_EQ(blob_read(rd, buf, LC - 2 * 65536, 2 * 65536, &got), -EIO);
		blob_close(rd);
	}
	store_close(s);
	blobdb_close(db);
	free(a);
	free(b);
	free(c);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_verified_reads },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
