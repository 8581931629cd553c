/*
 * fuzz_record.c - the fixed-size decoders of pack.c (record header, pack
 * header, durable marker) and the name parsers, against a model of
 * docs/FORMAT.md written here:
 *   - decode: a decoder accepts exactly what the format allows, and whatever
 *     it accepts encodes back to the very same bytes (anything else means
 *     it accepted garbage);
 *   - encode: whatever the encoder writes decodes back to the same values.
 *
 * Record headers come in three formats: REC2 (written today; bytes 6..7 and
 * 56..59 hold a signed 48-bit time, any value), REC3 (the same header for a
 * blob whose chunks are stored compressed: a blob, never empty) and REC1
 * (still read; those bytes reserved, zero, and the time reads as 0).
 *
 * Input: byte 0 holds fix-up flags that make valid structures reachable
 * (libFuzzer cannot solve a CRC): they set magics and recompute checksums
 * of the copies handed to the decoders. The rest is the structure bytes,
 * zero-padded to 64, followed by field values for the encode direction.
 */
#include <errno.h>

#include "fuzz_common.h"
#include "hash.h"
#include "pack.h"

enum {
	FIX_RECORD_MAGIC = 1 << 0,
	FIX_RECORD_CRC = 1 << 1,
	FIX_PACK_MAGIC = 1 << 2, /* magic and version */
	FIX_PACK_CRC = 1 << 3,
	FIX_MARKER_MAGIC = 1 << 4,
	FIX_MARKER_CRC = 1 << 5,
	FIX_ZERO_RESERVED = 1 << 6,
	/* With FIX_RECORD_MAGIC: REC1 rather than REC2 (or REC3, which the
	 * fix-up writes when byte 3 of the input is odd, as '3' is). */
	FIX_RECORD_V1 = 1 << 7,
};

static bool all_zero(const uint8_t *p, size_t n)
{
	while (n--)
		if (*p++)
			return false;
	return true;
}

/* Compares the meaningful bytes of two encodings: all of them, or in lax
 * mode all but the ranges in skip[] (reserved fields and the CRC that
 * covers them). */
static bool same_encoding(const uint8_t *a, const uint8_t *b, size_t n, const size_t (*skip)[2],
			  size_t nskip)
{
	for (size_t i = 0; i < n; i++) {
		bool skipped = false;
		for (size_t k = 0; fz_lax() && k < nskip; k++)
			skipped |= i >= skip[k][0] && i < skip[k][1];
		if (!skipped && a[i] != b[i])
			return false;
	}
	return true;
}

static void check_record_header(const uint8_t *in, unsigned flags)
{
	static const size_t skip[][2] = { { 6, 8 }, { 56, 64 } };
	uint8_t buf[RECORD_HEADER_SIZE], out[RECORD_HEADER_SIZE];
	struct record_info rec;
	uint64_t offset = fz_le64(in + 8) ^ fz_le64(in + 40);
	bool valid;
	int ret;

	memcpy(buf, in, sizeof(buf));
	if (flags & FIX_ZERO_RESERVED) {
		memset(buf + 6, 0, 2);
		memset(buf + 56, 0, 4);
	}
	if (flags & FIX_RECORD_MAGIC)
		fz_put32(buf, flags & FIX_RECORD_V1 ? RECORD_MAGIC_V1 :
			      in[3] & 1 ? RECORD_MAGIC_Z : RECORD_MAGIC);
	if (flags & FIX_RECORD_CRC)
		fz_put32(buf + 60, fz_crc32c(buf, 60));

	/* The model: docs/FORMAT.md, "Record header". */
	uint8_t kind = buf[4], shift = buf[5];
	uint64_t length = fz_le64(buf + 16);
	bool v1 = fz_le32(buf) == 0x31434552u, v2 = fz_le32(buf) == 0x32434552u;
	bool v3 = fz_le32(buf) == 0x33434552u;
	uint64_t bits = (uint64_t)(buf[6] | buf[7] << 8) << 32 | fz_le32(buf + 56);
	/* Bit 47 is the sign: 2^48 - bits is the magnitude of a negative. */
	int64_t time = v2 || v3 ? (bits >> 47 ? -(int64_t)((UINT64_C(1) << 48) - bits) : (int64_t)bits)
				: 0;
	valid = (v1 || v2 || v3) && fz_le32(buf + 60) == fz_crc32c(buf, 60) &&
		(kind == RECORD_BLOB || kind == RECORD_TOMBSTONE) && shift >= CHUNK_SHIFT_MIN &&
		shift <= CHUNK_SHIFT_MAX && length <= RECORD_LENGTH_MAX &&
		(kind == RECORD_BLOB || length == 0);
	/* Only a blob with content has chunks to compress. */
	if (v3)
		valid = valid && kind == RECORD_BLOB && length > 0;
	if (!fz_lax() && v1)
		valid = valid && all_zero(buf + 6, 2) && all_zero(buf + 56, 4);

	memset(&rec, 0xa5, sizeof(rec));
	ret = record_header_decode(buf, offset, &rec);
	FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
	FUZZ_CHECK(!(ret == 0 && !valid) && "record_header_decode accepted a header the format refuses");
	FUZZ_CHECK(!(ret != 0 && valid) && "record_header_decode refused a valid header");
	if (ret != 0)
		return;
	FUZZ_CHECK(rec.offset == offset);
	FUZZ_CHECK(rec.kind == kind && rec.chunk_shift == shift && rec.length == length);
	FUZZ_CHECK(rec.seq == fz_le64(buf + 8));
	FUZZ_CHECK(!memcmp(rec.hash, buf + 24, BLOBFS_HASH_SIZE));
	FUZZ_CHECK(rec.version == (v1 ? 1u : v3 ? 3u : 2u) && rec.time == time);
	/* A REC3's stored size is in its table, not known from its header. */
	FUZZ_CHECK(rec.stored == (v3 ? 0 : length));
	FUZZ_CHECK(rec.time >= RECORD_TIME_MIN && rec.time <= RECORD_TIME_MAX);
	record_header_encode(&rec, out);
	/* REC2's time bytes are a field, never skipped: it encodes exactly. */
	FUZZ_CHECK(same_encoding(buf, out, sizeof(buf), skip, v1 ? 2 : 0));
}

static void check_pack_header(const uint8_t *in, unsigned flags)
{
	static const size_t skip[][2] = { { 16, 32 } };
	uint8_t buf[PACK_HEADER_SIZE], out[PACK_HEADER_SIZE];
	uint32_t id = 0xdeadbeef;
	bool valid;
	int ret;

	memcpy(buf, in, sizeof(buf));
	if (flags & FIX_ZERO_RESERVED)
		memset(buf + 16, 0, 12);
	if (flags & FIX_PACK_MAGIC) {
		memcpy(buf, PACK_MAGIC, PACK_MAGIC_SIZE);
		fz_put32(buf + 8, PACK_VERSION);
	}
	if (flags & FIX_PACK_CRC)
		fz_put32(buf + 28, fz_crc32c(buf, 28));

	valid = !memcmp(buf, "BLOBPAK1", 8) && fz_le32(buf + 8) == 1 &&
		fz_le32(buf + 28) == fz_crc32c(buf, 28);
	if (!fz_lax())
		valid = valid && all_zero(buf + 16, 12);

	ret = pack_header_decode(buf, &id);
	FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
	FUZZ_CHECK(!(ret == 0 && !valid) && "pack_header_decode accepted a header the format refuses");
	FUZZ_CHECK(!(ret != 0 && valid) && "pack_header_decode refused a valid header");
	if (ret != 0)
		return;
	FUZZ_CHECK(id == fz_le32(buf + 12));
	pack_header_encode(id, out);
	FUZZ_CHECK(same_encoding(buf, out, sizeof(buf), skip, 1));
}

static void check_marker(const uint8_t *in, unsigned flags)
{
	static const size_t skip[][2] = { { 16, 32 } };
	uint8_t buf[MARKER_SIZE], out[MARKER_SIZE];
	uint64_t seq = 0;
	bool valid;
	int ret;

	memcpy(buf, in, sizeof(buf));
	if (flags & FIX_ZERO_RESERVED)
		memset(buf + 16, 0, 12);
	if (flags & FIX_MARKER_MAGIC)
		memcpy(buf, "BLOBSYN1", 8);
	if (flags & FIX_MARKER_CRC)
		fz_put32(buf + 28, fz_crc32c(buf, 28));

	/* FORMAT.md: "BLOBSYN1", u64 seq, 12 reserved bytes, CRC32C of 0..27. */
	valid = !memcmp(buf, "BLOBSYN1", 8) && fz_le32(buf + 28) == fz_crc32c(buf, 28);
	if (!fz_lax())
		valid = valid && all_zero(buf + 16, 12);

	ret = marker_decode(buf, &seq);
	FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
	FUZZ_CHECK(!(ret == 0 && !valid) && "marker_decode accepted a marker the format refuses");
	FUZZ_CHECK(!(ret != 0 && valid) && "marker_decode refused a valid marker");
	if (ret != 0)
		return;
	FUZZ_CHECK(seq == fz_le64(buf + 8));
	marker_encode(seq, out);
	FUZZ_CHECK(same_encoding(buf, out, sizeof(buf), skip, 1));
}

/* Encode, then decode: every value the encoder is given comes back. */
static void check_encoders(const uint8_t *v)
{
	uint8_t buf[RECORD_HEADER_SIZE];
	struct record_info rec, back;
	uint32_t id;
	uint64_t seq;
	bool valid;
	int ret;

	memset(&rec, 0, sizeof(rec));
	rec.offset = fz_le64(v);
	rec.kind = (enum record_kind)v[8];
	rec.chunk_shift = v[9];
	rec.seq = fz_le64(v + 10);
	/* Shifted down by a chosen amount so that small lengths are common. */
	rec.length = fz_le64(v + 18) >> (v[26] & 63);
	memcpy(rec.hash, v + 27, BLOBFS_HASH_SIZE);
	/* v[71]: bit 7 asks for REC1, bit 6 a negative time, bits 0..5 shift
	 * the time down (times beyond 48 bits are clamped by the encoder). */
	/* v[26] bit 6 asks for REC3 (unless REC1 is asked for). */
	rec.version = v[71] & 0x80 ? 1 : v[26] & 0x40 ? 3 : 2;
	{
		uint64_t t = fz_le64(v + 63) >> (v[71] & 63) >> 1;
		rec.time = v[71] & 0x40 ? -(int64_t)t : (int64_t)t;
	}
	int64_t want_time = rec.version == 1 ? 0 : rec.time < RECORD_TIME_MIN ? RECORD_TIME_MIN :
			    rec.time > RECORD_TIME_MAX ? RECORD_TIME_MAX : rec.time;
	valid = (rec.kind == RECORD_BLOB || rec.kind == RECORD_TOMBSTONE) &&
		rec.chunk_shift >= CHUNK_SHIFT_MIN && rec.chunk_shift <= CHUNK_SHIFT_MAX &&
		rec.length <= RECORD_LENGTH_MAX && (rec.kind == RECORD_BLOB || rec.length == 0) &&
		(rec.version != 3 || (rec.kind == RECORD_BLOB && rec.length > 0));
	record_header_encode(&rec, buf);
	FUZZ_CHECK(fz_le32(buf) == (rec.version == 1 ? 0x31434552u :
				    rec.version == 3 ? 0x33434552u : 0x32434552u));
	if (rec.version == 1)
		FUZZ_CHECK(all_zero(buf + 6, 2) && all_zero(buf + 56, 4));
	FUZZ_CHECK(fz_le32(buf + 60) == fz_crc32c(buf, 60));
	ret = record_header_decode(buf, rec.offset, &back);
	FUZZ_CHECK((ret == 0) == valid);
	if (ret == 0)
		FUZZ_CHECK(back.offset == rec.offset && back.kind == rec.kind &&
			   back.chunk_shift == rec.chunk_shift && back.seq == rec.seq &&
			   back.length == rec.length && back.version == rec.version &&
			   back.time == want_time &&
			   !memcmp(back.hash, rec.hash, BLOBFS_HASH_SIZE));

	pack_header_encode(fz_le32(v + 59), buf);
	FUZZ_CHECK(pack_header_decode(buf, &id) == 0 && id == fz_le32(v + 59));
	marker_encode(fz_le64(v + 63), buf);
	FUZZ_CHECK(marker_decode(buf, &seq) == 0 && seq == fz_le64(v + 63));
}

static bool is_lower_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
}

/* pack_parse_name and hash_from_hex accept exactly the names their encoders
 * write. */
static void check_names(const uint8_t *data, size_t size)
{
	char name[64], back[PACK_NAME_SIZE], hex[HASH_HEX_SIZE + 1];
	size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint32_t id;
	bool valid;

	memcpy(name, data, n);
	name[n] = '\0';
	valid = strlen(name) == 18 && !memcmp(name, "pack-", 5) && !strcmp(name + 13, ".pack");
	for (int i = 5; valid && i < 13; i++)
		valid = is_lower_hex(name[i]);
	FUZZ_CHECK(pack_parse_name(name, &id) == valid);
	if (valid) {
		pack_name(id, back);
		FUZZ_CHECK(!strcmp(back, name));
	}

	for (int pass = 0; pass < 2; pass++) {
		size_t len = pass ? size : (size < HASH_HEX_SIZE ? size : HASH_HEX_SIZE);
		const char *s = (const char *)data;
		valid = len == HASH_HEX_SIZE;
		for (size_t i = 0; valid && i < len; i++)
			valid = is_lower_hex(s[i]);
		FUZZ_CHECK(hash_from_hex(s, len, hash) == valid);
		if (valid) {
			hash_to_hex(hash, hex);
			FUZZ_CHECK(!memcmp(hex, s, HASH_HEX_SIZE) && hex[HASH_HEX_SIZE] == '\0');
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t bytes[RECORD_HEADER_SIZE + 72];
	unsigned flags;

	if (size == 0)
		return 0;
	flags = data[0];
	memset(bytes, 0, sizeof(bytes));
	memcpy(bytes, data + 1, size - 1 < sizeof(bytes) ? size - 1 : sizeof(bytes));

	check_record_header(bytes, flags);
	check_pack_header(bytes, flags);
	check_marker(bytes, flags);
	check_encoders(bytes + RECORD_HEADER_SIZE);
	check_names(data + 1, size - 1);
	return 0;
}
