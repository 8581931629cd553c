/*
 * fuzz_zchunk.c - compressed chunks (src/chunk_codec.c) and compressed
 * records (REC3, src/pack.c) from the fuzzer, checked against the model of
 * fuzz_zmodel.h (whose own zstd decoder is the oracle of what a frame
 * decodes to). Byte 0 of the input picks what the rest is (bits 0..1):
 *
 *   0  a stored chunk: bytes 1..3 give the length it must decode to (1 ..
 *      16 MiB), the rest is handed to chunk_decompress, which must return 0
 *      exactly when the bytes are zstd of exactly that length (the same
 *      content as the oracle's), -EBADMSG otherwise, and never write past
 *      that length (a guard after it must stay untouched: libzstd is not
 *      instrumented, so ASan would not see it); nor crash, nor allocate
 *      without bound (-rss_limit_mb catches that). A good frame decoded
 *      afterwards still decodes (a failed one leaves no state behind).
 *   1  content: chunk_compress at level 1 + byte 1 % 6 either declines (0)
 *      or gives fewer bytes than the content that decode back to it, and
 *      to no other length.
 *   2  a REC3 record as bytes, at offset 32 of a pack: bits 2..7 repair what
 *      the fuzzer cannot guess (below), then pack_read_record frames it
 *      exactly when the model does, and one that frames is read and
 *      verified through pack_read_ztable, zchunk_read and
 *      pack_verify_record (fz_zrecord_check).
 *   3  a REC3 made of content: bytes 1..4 pick the chunk shift (12 .. 16),
 *      a byte to damage (its offset in the record, 16 bits) and how (an
 *      XOR mask; 0: none); bit 2 reseals the chunk and table CRCs after the
 *      damage, so that only the decoder (or the hash) can tell. The rest,
 *      compressed chunk by chunk (chunk_compress, level 1), is written with
 *      pack_write_zrecord; undamaged it must frame and verify. The damaged
 *      file goes through the checks of mode 2.
 */
#include <errno.h>
#include <sys/mman.h>
#include <unistd.h>

#include "chunk_codec.h"
#include "crc32c.h"
#include "fuzz_common.h"
#include "fuzz_zmodel.h"
#include "hash.h"
#include "io.h"
#include "pack.h"

#define FUZZ_PACK_ID 9u
#define GUARD 4096
#define GUARD_BYTE 0xa5

/* Mode 2 fix-ups, bits of byte 0. */
enum {
	FIX_HEADER = 1 << 2, /* REC3 magic, a blob; the chunk shift and length in range */
	FIX_ZSIZES = 1 << 3, /* table entries' stored sizes within their chunks */
	FIX_CHUNKS = 1 << 4, /* each entry's CRC32C of its stored bytes */
	FIX_HASH = 1 << 5,   /* the SHA-256 of the decoded content into the header */
	FIX_TRAILER = 1 << 6, /* trailer magic, table CRC, seq */
	FIX_CRC = 1 << 7,    /* the header's CRC */
};

static int memfd = -1;
static struct hasher *hasher, *model_hasher;
/* A frame of known content, to decode after whatever the input did. */
static uint8_t known[5000], known_frame[5000];
static long known_frame_len;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	memfd = memfd_create("fuzz_zchunk", MFD_CLOEXEC);
	if (memfd < 0 || hasher_new(&hasher) < 0 || hasher_new(&model_hasher) < 0) {
		perror("fuzz_zchunk: setup");
		abort();
	}
	for (size_t i = 0; i < sizeof(known); i++)
		known[i] = (uint8_t)"blobfs compresses chunks "[i % 25];
	known_frame_len = chunk_compress(1, known, sizeof(known), known_frame);
	FUZZ_CHECK(known_frame_len > 0);
	return 0;
}

static void write_file(const uint8_t *f, uint64_t size)
{
	uint64_t done = 0;

	FUZZ_CHECK(ftruncate(memfd, 0) == 0);
	while (done < size) {
		ssize_t n = pwrite(memfd, f + done, size - done, (off_t)done);
		FUZZ_CHECK(n > 0);
		done += (uint64_t)n;
	}
}

static void check_known_frame(void)
{
	uint8_t out[sizeof(known)];

	FUZZ_CHECK(chunk_decompress(known_frame, (size_t)known_frame_len, out, sizeof(out)) == 0);
	FUZZ_CHECK(!memcmp(out, known, sizeof(out)));
}

/* Mode 0: the bytes as a stored chunk that must decode to want bytes. */
static void check_stored_chunk(const uint8_t *in, size_t len, size_t want)
{
	uint8_t *out = malloc(want + GUARD), *model = malloc(want + 1);
	bool decodes;
	int ret;

	FUZZ_CHECK(out && model);
	memset(out + want, GUARD_BYTE, GUARD);
	decodes = fz_zstd_decodes(in, len, model, want);
	ret = chunk_decompress(in, len, out, want);
	FZ_LOG("chunk of %zu bytes, want %zu: %d (model: %s)\n", len, want, ret,
	       decodes ? "decodes" : "does not");
	FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
	FUZZ_CHECK((ret == 0) == decodes);
	if (ret == 0)
		FUZZ_CHECK(!memcmp(out, model, want));
	for (size_t i = 0; i < GUARD; i++)
		FUZZ_CHECK(out[want + i] == GUARD_BYTE);
	check_known_frame();
	free(out);
	free(model);
}

/* Mode 1: a round trip through chunk_compress. */
static void check_compress(const uint8_t *in, size_t n, int level)
{
	uint8_t *frame = malloc(n ? n : 1), *back = malloc(n + GUARD);
	long got;

	FUZZ_CHECK(frame && back);
	got = chunk_compress(level, in, n, frame);
	FZ_LOG("%zu bytes at level %d: %ld\n", n, level, got);
	FUZZ_CHECK(got >= 0 && (got == 0 || (size_t)got < n));
	if (got > 0) {
		memset(back + n, GUARD_BYTE, GUARD);
		FUZZ_CHECK(chunk_decompress(frame, (size_t)got, back, n) == 0);
		FUZZ_CHECK(!memcmp(back, in, n));
		FUZZ_CHECK(chunk_decompress(frame, (size_t)got, back, n + 1) == -EBADMSG);
		FUZZ_CHECK(chunk_decompress(frame, (size_t)got, back, n - 1) == -EBADMSG);
		for (size_t i = 0; i < GUARD; i++)
			FUZZ_CHECK(back[n + i] == GUARD_BYTE);
		FUZZ_CHECK(chunk_decompress(frame, (size_t)got - 1, back, n) == -EBADMSG);
		check_known_frame();
	}
	free(frame);
	free(back);
}

/* The file f (size bytes, a pack header then a record at 32) goes to the
 * memfd; pack_read_record frames the record exactly when the model does,
 * and a REC3 that frames is read and verified (fz_zrecord_check). Returns
 * whether it framed as a REC3 and verified. */
static bool check_record_file(const uint8_t *f, uint64_t size, bool *frames)
{
	struct record_info rec, got;
	uint64_t stored, end;
	int ret;

	write_file(f, size);
	*frames = false;
	ret = pack_read_record(io_system(), memfd, PACK_HEADER_SIZE, &got);
	FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
	if (size < PACK_HEADER_SIZE + 64 ||
	    record_header_decode(f + PACK_HEADER_SIZE, PACK_HEADER_SIZE, &rec) != 0) {
		FUZZ_CHECK(ret == -EBADMSG);
		return false;
	}
	if (rec.version != 3) {
		/* pack_read_record reads only the header of other formats. */
		FUZZ_CHECK(ret == 0 && got.version == rec.version && got.stored == rec.length);
		return false;
	}
	*frames = fz_zrecord_frames(f, size, &rec, &stored, &end);
	FZ_LOG("REC3 of %" PRIu64 " bytes, shift %u: %s\n", rec.length, rec.chunk_shift,
	       *frames ? "frames" : "does not frame");
	FUZZ_CHECK((ret == 0) == *frames);
	if (!*frames)
		return false;
	FUZZ_CHECK(got.stored == stored && record_end(&got) == end);
	return fz_zrecord_check(f, size, memfd, &rec, stored, hasher, model_hasher);
}

/* Mode 2: the input is a REC3 (after fix-ups). */
static void check_raw_record(const uint8_t *in, size_t len, unsigned flags)
{
	uint64_t size = PACK_HEADER_SIZE + len;
	uint8_t *f = malloc(size), *h = f + PACK_HEADER_SIZE;
	bool frames;

	FUZZ_CHECK(f);
	pack_header_encode(FUZZ_PACK_ID, f);
	memcpy(h, in, len);
	if (len >= 80) {
		if (flags & FIX_HEADER) {
			fz_put32(h, RECORD_MAGIC_Z);
			h[4] = RECORD_BLOB;
			if (h[5] < CHUNK_SHIFT_MIN || h[5] > CHUNK_SHIFT_MAX)
				h[5] = (uint8_t)(CHUNK_SHIFT_MIN +
						 h[5] % (CHUNK_SHIFT_MAX - CHUNK_SHIFT_MIN + 1));
			/* Lengths the table can describe in this file are common. */
			if (fz_le64(h + 16) == 0 || fz_le64(h + 16) > RECORD_LENGTH_MAX)
				fz_put64(h + 16, 1 + fz_le64(h + 16) % (UINT64_C(1) << 20));
		}
		{
			/* Enough for the table and stored bytes this input can
			 * hold, and FZ_DECODE_BUDGET of content to hash. */
			uint64_t budget = FZ_DECODE_BUDGET + 2 * len;
			unsigned fix = (flags & FIX_ZSIZES ? FZ_FIX_ZSIZES : 0) |
				       (flags & FIX_CHUNKS ? FZ_FIX_CHUNKS : 0) |
				       (flags & FIX_HASH ? FZ_FIX_HASH : 0) |
				       (flags & FIX_TRAILER ? FZ_FIX_TRAILER : 0);
			fz_fix_up_zrecord(f, size, PACK_HEADER_SIZE, fix, &budget, model_hasher);
		}
		if (flags & FIX_CRC)
			fz_put32(h + 60, fz_crc32c(h, 60));
	}
	check_record_file(f, size, &frames);
	free(f);
}

/* Mode 3: a REC3 built from content, then perhaps damaged. */
static void check_built_record(const uint8_t *in, size_t len, unsigned shift, uint64_t victim,
			       uint8_t mask, bool reseal)
{
	struct record_info rec = { .kind = RECORD_BLOB, .version = 3, .chunk_shift = shift, .seq = 77,
				   .length = len, .offset = PACK_HEADER_SIZE, .time = 1700000000 };
	uint64_t count = fz_chunk_count(len, shift), size, at = 0;
	struct zchunk *chunks = malloc(count * sizeof(*chunks));
	uint8_t *stored = malloc(len), *f;
	uint8_t header[PACK_HEADER_SIZE];
	bool frames, verified;

	FUZZ_CHECK(chunks && stored);
	FUZZ_CHECK(hash_buffer(in, len, rec.hash) == 0);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t n = fz_chunk_length(len, shift, i);
		long got = chunk_compress(1, in + (i << shift), (size_t)n, stored + at);
		FUZZ_CHECK(got >= 0 && (uint64_t)got < n + (n < 2));
		if (got == 0)
			memcpy(stored + at, in + (i << shift), (size_t)n);
		chunks[i].stored = got ? (uint32_t)got : (uint32_t)n;
		chunks[i].crc = crc32c(0, stored + at, chunks[i].stored);
		at += chunks[i].stored;
	}
	rec.stored = at;
	FUZZ_CHECK(ftruncate(memfd, 0) == 0);
	pack_header_encode(FUZZ_PACK_ID, header);
	FUZZ_CHECK(pwrite(memfd, header, sizeof(header), 0) == (ssize_t)sizeof(header));
	FUZZ_CHECK(pack_write_zrecord(io_system(), memfd, &rec, chunks, stored) == 0);
	size = record_end(&rec);
	f = malloc(size);
	FUZZ_CHECK(f && pread(memfd, f, size, 0) == (ssize_t)size);
	if (mask) {
		uint64_t table = PACK_HEADER_SIZE + 64, data = table + 8 * count;
		victim = PACK_HEADER_SIZE + victim % (size - PACK_HEADER_SIZE);
		f[victim] ^= mask;
		if (reseal && victim >= data && victim < data + rec.stored) {
			/* The chunk's CRC and the table's, as if written so. */
			uint64_t i = 0, start = data;
			while (start + chunks[i].stored <= victim)
				start += chunks[i++].stored;
			fz_put32(f + table + 8 * i + 4, fz_crc32c(f + start, chunks[i].stored));
			fz_put32(f + data + rec.stored + 4, fz_crc32c(f + table, 8 * count));
		}
		FZ_LOG("byte %" PRIu64 " of the record ^= 0x%02x%s\n", victim - PACK_HEADER_SIZE, mask,
		       reseal ? ", resealed" : "");
	}
	verified = check_record_file(f, size, &frames);
	if (!mask)
		FUZZ_CHECK(frames && verified);
	free(f);
	free(chunks);
	free(stored);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	unsigned mode;

	if (len < 5)
		return 0;
	mode = data[0];
	switch (mode & 3) {
	case 0: {
		size_t want = 1 + (size_t)(data[1] | data[2] << 8 | (data[3] & 0xff) << 16);
		check_stored_chunk(data + 4, len - 4, want);
		break;
	}
	case 1:
		check_compress(data + 2, len - 2, 1 + data[1] % 6);
		break;
	case 2:
		check_raw_record(data + 1, len - 1, mode);
		break;
	default:
		if (len == 5)
			break; /* a REC3 holds at least a byte */
		check_built_record(data + 5, len - 5, CHUNK_SHIFT_MIN + data[1] % 5,
				   (uint64_t)(data[2] | data[3] << 8), data[4], mode & 4);
		break;
	}
	return 0;
}
