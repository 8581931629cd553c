/*
 * test_pack_codec.c - the pack format's fixed-size encodings, in memory:
 * pack file names, the pack header, the record header and the durable
 * marker: round trips, the layout docs/FORMAT.md pins, every single-bit
 * change refused, and every semantic rejection (magic, version, kind,
 * chunk shift, length, tombstone length, reserved bytes) under a correct
 * checksum.
 *
 * Fixture: packutil.h / testutil.h (the fixture library).
 */
#include "bytes.h"
#include "crc32c.h"
#include "packutil.h"

/* Re-seals an edited record header with a correct checksum. */
static void reseal_record_header(uint8_t *buf)
{
	put_le32(buf + 60, crc32c(0, buf, 60));
}

static void reseal_pack_header(uint8_t *buf)
{
	put_le32(buf + 28, crc32c(0, buf, 28));
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

	/* Layout as docs/FORMAT.md pins it: REC2, the time's high 16 bits at
	 * 6 and low 32 at 56. */
	in = random_record(RECORD_BLOB, 0x0102030405060708u, 16);
	in.seq = 0x1112131415161718u;
	in.time = INT64_C(0x212223242526);
	record_header_encode(&in, buf);
	CHECK_EQ(buf[0], 'R');
	CHECK_EQ(buf[3], '2');
	CHECK_EQ(buf[4], RECORD_BLOB);
	CHECK_EQ(buf[5], 16);
	CHECK_EQ(buf[6], 0x22);
	CHECK_EQ(buf[7], 0x21);
	CHECK_EQ(buf[8], 0x18);
	CHECK_EQ(buf[15], 0x11);
	CHECK_EQ(buf[16], 0x08);
	CHECK_EQ(buf[23], 0x01);
	CHECK_MEM(buf + 24, in.hash, BLOBFS_HASH_SIZE);
	CHECK_EQ(buf[56], 0x26);
	CHECK_EQ(buf[59], 0x23);
	in.length = 1000; /* one the decoder takes (the one above is too long) */
	record_header_encode(&in, buf);
	CHECK_EQ(record_header_decode(buf, 0, &out), 0);
	CHECK_EQ(out.version, 2);
	CHECK_EQ(out.time, INT64_C(0x212223242526));
	/* ...and REC1, format 1, which has no time: those bytes are zero. */
	in.version = 1;
	in.time = RECORD_TIME_UNKNOWN;
	record_header_encode(&in, buf);
	CHECK_EQ(buf[3], '1');
	CHECK_EQ(buf[6] | buf[7], 0);
	CHECK_EQ(buf[56] | buf[57] | buf[58] | buf[59], 0);
	CHECK_EQ(record_header_decode(buf, 0, &out), 0);
	CHECK_EQ(out.version, 1);
	CHECK_EQ(out.time, RECORD_TIME_UNKNOWN);
	/* A time given to a REC1 is not written (it has no field for it). */
	in.time = 12345;
	record_header_encode(&in, buf);
	CHECK_EQ(record_header_decode(buf, 0, &out), 0);
	CHECK_EQ(out.time, RECORD_TIME_UNKNOWN);

	/* Times round-trip over the whole signed 48-bit range; beyond it they
	 * are clamped, never wrapped. */
	{
		static const int64_t times[] = { 0, 1, -1, 1700000000, INT64_C(4102444800),
						 INT32_MAX, (int64_t)INT32_MAX + 1, INT32_MIN,
						 RECORD_TIME_MAX, RECORD_TIME_MIN };
		for (size_t i = 0; i < sizeof(times) / sizeof(times[0]); i++) {
			in = random_record(RECORD_BLOB, 10, CHUNK_SHIFT_DEFAULT);
			in.time = times[i];
			record_header_encode(&in, buf);
			CHECK_EQ(record_header_decode(buf, 0, &out), 0);
			if (!CHECK_EQ(out.time, times[i]))
				fprintf(stderr, "  time %" PRId64 "\n", times[i]);
		}
		in.time = RECORD_TIME_MAX + 1;
		record_header_encode(&in, buf);
		CHECK_EQ(record_header_decode(buf, 0, &out), 0);
		CHECK_EQ(out.time, RECORD_TIME_MAX);
		in.time = INT64_MIN;
		record_header_encode(&in, buf);
		CHECK_EQ(record_header_decode(buf, 0, &out), 0);
		CHECK_EQ(out.time, RECORD_TIME_MIN);
		/* Any time bytes decode: a time is the writer's clock, not
		 * something a reader can check. */
		memcpy(copy, buf, sizeof(buf));
		memset(copy + 6, 0xff, 2);
		memset(copy + 56, 0xff, 4);
		reseal_record_header(copy);
		CHECK_EQ(record_header_decode(copy, 0, &out), 0);
		CHECK_EQ(out.time, -1);
	}

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
	put_le32(copy, RECORD_MAGIC + 0x02000000); /* "REC4": a format to come */
	reseal_record_header(copy);
	CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG);
	/* "REC3" (compressed chunks): a blob with content only; its stored
	 * size comes from its table, not its header. */
	memcpy(copy, buf, sizeof(buf));
	put_le32(copy, RECORD_MAGIC_Z);
	copy[4] = RECORD_BLOB;
	put_le64(copy + 16, 5000);
	reseal_record_header(copy);
	CHECK_EQ(record_header_decode(copy, 0, &out), 0);
	CHECK_EQ(out.version, 3);
	CHECK_EQ(out.stored, 0);
	CHECK_EQ(out.length, 5000);
	put_le64(copy + 16, 0);
	reseal_record_header(copy);
	CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG);
	put_le64(copy + 16, 5000);
	copy[4] = RECORD_TOMBSTONE;
	reseal_record_header(copy);
	CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG);
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
	/* In a REC1, bytes 6..7 and 56..59 are reserved and must be zero,
	 * even resealed. */
	{
		static const int reserved[] = { 6, 7, 56, 57, 58, 59 };
		in = random_record(RECORD_BLOB, 123456, CHUNK_SHIFT_DEFAULT);
		in.version = 1;
		record_header_encode(&in, buf);
		for (size_t i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
			memcpy(copy, buf, sizeof(buf));
			copy[reserved[i]] = 0x80;
			reseal_record_header(copy);
			if (!CHECK_EQ(record_header_decode(copy, 0, &out), -EBADMSG))
				fprintf(stderr, "  reserved byte %d\n", reserved[i]);
		}
	}
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

int main(int argc, char **argv)
{
	(void)argc;
	tu_init(argv[0]);
	test_names();
	test_pack_header();
	test_record_header();
	test_marker();
	return tu_finish();
}
