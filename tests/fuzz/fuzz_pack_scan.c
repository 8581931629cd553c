/*
 * fuzz_pack_scan.c - a pack file from the fuzzer, walked the way the store
 * and fsck walk packs: pack_scan_open (or pack_scan_open_headless) and
 * pack_scan_next to the end, pack_read_chunk_table and pack_verify_record
 * on every record returned, record_header_guess_hash at every damaged
 * offset. The results are checked against a model of the framing rules of
 * docs/FORMAT.md written here (record headers are judged by
 * record_header_decode, which fuzz_record checks on its own):
 *   - the scan terminates, returns records in increasing offset order, each
 *     inside the file and starting where the previous one (or the damage)
 *     ended;
 *   - a record is returned exactly where one frames;
 *   - damage [bad_start, bad_end) is reported exactly where nothing frames:
 *     bad_start < bad_end <= file size, no offset in between frames, and
 *     bad_end is either the file size or the start of a record;
 *   - the chunk table read back is the one in the file, and verification
 *     passes exactly when every chunk CRC and the SHA-256 agree;
 *   - a compressed record (REC3) frames by its own rules (fuzz_zmodel.h:
 *     the table's stored sizes within their chunks, the stored chunks and
 *     the trailer after the table), ends where its stored size says, and
 *     reads and verifies exactly when each chunk's CRC, each zstd frame's
 *     length and the SHA-256 agree.
 *
 * Input: byte 0 holds flags (below); the rest is the file, or the file
 * after a valid pack header when IN_PREFIX_HEADER is set. The FIX_* flags
 * repair checksums at every record magic in the file before the scan, so
 * that mutated records still frame (libFuzzer cannot solve a CRC) and the
 * scanner's later stages get exercised; for a REC3, FIX_ZSIZES first brings
 * each table entry's stored size within its chunk, and FIX_HASH hashes the
 * decoded content (when every chunk decodes).
 */
#include <errno.h>
#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io.h"
#include "fuzz_common.h"
#include "fuzz_zmodel.h"
#include "hash.h"
#include "pack.h"

#define FUZZ_PACK_ID 7u

enum {
	IN_PREFIX_HEADER = 1 << 0, /* prepend a valid header for FUZZ_PACK_ID */
	IN_HEADLESS = 1 << 1,      /* pack_scan_open_headless, as fsck salvage does */
	FIX_HASH = 1 << 2,         /* SHA-256 of the data into the header */
	FIX_CHUNKS = 1 << 3,       /* chunk CRCs into the chunk table */
	FIX_TRAILER = 1 << 4,      /* trailer magic, table CRC and seq */
	FIX_HEADER_CRC = 1 << 5,   /* header CRC */
	IN_NO_HASHER = 1 << 6,     /* verify without a hasher as well */
	FIX_ZSIZES = 1 << 7,       /* REC3 table entries' stored sizes in bounds */
};

/* Bytes of checksumming the fix-ups may do per input: keeps runs fast. */
#define FIX_BUDGET (4u << 20)

static int memfd = -1;
static struct hasher *hasher, *model_hasher;

static uint64_t chunk_count(uint64_t length, unsigned shift)
{
	return fz_chunk_count(length, shift);
}

/* Whether a record frames at off: its header decodes, it fits in the file,
 * and its trailer has the magic, the header's seq and the table's CRC (a
 * REC3: fz_zrecord_frames). *stored and *end (when out is not NULL) get its
 * stored bytes and its end. */
static bool model_frames(const uint8_t *f, uint64_t size, uint64_t off, struct record_info *out,
			 uint64_t *stored, uint64_t *end)
{
	struct record_info rec;
	uint64_t count, table, trailer, z_stored, z_end;

	if (off >= size || size - off < 64 + 16)
		return false;
	if (record_header_decode(f + off, off, &rec) != 0)
		return false;
	if (rec.version == 3) {
		if (!fz_zrecord_frames(f, size, &rec, &z_stored, &z_end))
			return false;
		if (out) {
			*out = rec;
			*stored = z_stored;
			*end = z_end;
		}
		return true;
	}
	count = chunk_count(rec.length, rec.chunk_shift);
	if (rec.length > size - off - 80 || 4 * count > size - off - 80 - rec.length)
		return false;
	table = off + 64 + rec.length;
	trailer = table + 4 * count;
	if (fz_le32(f + trailer) != TRAILER_MAGIC || fz_le64(f + trailer + 8) != rec.seq ||
	    fz_le32(f + trailer + 4) != fz_crc32c(f + table, 4 * count))
		return false;
	if (out) {
		*out = rec;
		*stored = rec.length;
		*end = trailer + 16;
	}
	return true;
}

/* The REC3 fix-ups of fuzz_zmodel.h, as this target's flags ask. */
static void fix_up_zrecord(uint8_t *f, uint64_t size, uint64_t off, unsigned flags, uint64_t *budget)
{
	unsigned fix = (flags & FIX_ZSIZES ? FZ_FIX_ZSIZES : 0) | (flags & FIX_CHUNKS ? FZ_FIX_CHUNKS : 0) |
		       (flags & FIX_HASH ? FZ_FIX_HASH : 0) | (flags & FIX_TRAILER ? FZ_FIX_TRAILER : 0);

	fz_fix_up_zrecord(f, size, off, fix, budget, model_hasher);
}

/* Repairs checksums around every record magic, in file order. */
static void fix_up(uint8_t *f, uint64_t size, unsigned flags)
{
	uint64_t budget = FIX_BUDGET;

	for (uint64_t off = 0; off + 64 <= size; off++) {
		uint8_t *h = f + off;
		uint64_t length = fz_le64(h + 16), count, data, table, trailer;
		unsigned shift = h[5];

		if (fz_le32(h) == RECORD_MAGIC_Z) {
			fix_up_zrecord(f, size, off, flags, &budget);
			if (flags & FIX_HEADER_CRC)
				fz_put32(h + 60, fz_crc32c(h, 60));
			continue;
		}
		if (fz_le32(h) != RECORD_MAGIC && fz_le32(h) != RECORD_MAGIC_V1)
			continue;
		if (shift >= CHUNK_SHIFT_MIN && shift <= CHUNK_SHIFT_MAX &&
		    length <= size - off - 64 &&
		    (count = chunk_count(length, shift)) * 4 + 16 <= size - off - 64 - length) {
			data = off + 64;
			table = data + length;
			trailer = table + 4 * count;
			if ((flags & FIX_CHUNKS) && length <= budget) {
				budget -= length;
				for (uint64_t i = 0; i < count; i++) {
					uint64_t start = i << shift;
					uint64_t n = length - start < (UINT64_C(1) << shift) ?
							     length - start : UINT64_C(1) << shift;
					fz_put32(f + table + 4 * i, fz_crc32c(f + data + start, n));
				}
			}
			if ((flags & FIX_HASH) && length <= budget) {
				budget -= length;
				FUZZ_CHECK(hash_buffer(f + data, length, h + 24) == 0);
			}
			if ((flags & FIX_TRAILER) && 4 * count <= budget) {
				budget -= 4 * count;
				fz_put32(f + trailer, TRAILER_MAGIC);
				fz_put32(f + trailer + 4, fz_crc32c(f + table, 4 * count));
				memcpy(f + trailer + 8, h + 8, 8);
			}
		}
		if (flags & FIX_HEADER_CRC)
			fz_put32(h + 60, fz_crc32c(h, 60));
	}
}

static void check_guess(const uint8_t *f, uint64_t size, uint64_t off)
{
	uint8_t hash[BLOBFS_HASH_SIZE];
	bool expect = off <= size && size - off >= 64 &&
		      (fz_le32(f + off) == RECORD_MAGIC || fz_le32(f + off) == RECORD_MAGIC_V1 ||
		       fz_le32(f + off) == RECORD_MAGIC_Z);
	bool got;

	memset(hash, 0, sizeof(hash));
	got = record_header_guess_hash(io_system(), memfd, off, hash);
	FUZZ_CHECK(got == expect);
	if (got)
		FUZZ_CHECK(!memcmp(hash, f + off + 24, BLOBFS_HASH_SIZE));
}

/* The chunk table and verification of a record the scan returned (a REC3:
 * fz_zrecord_check). */
static void check_record(const uint8_t *f, uint64_t size, const struct record_info *rec,
			 uint64_t stored, unsigned flags)
{
	uint64_t count = chunk_count(rec->length, rec->chunk_shift);
	uint64_t data = rec->offset + 64, table = data + rec->length;
	uint64_t chunk = UINT64_C(1) << rec->chunk_shift;
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint32_t *crcs = malloc(count ? count * 4 : 1);
	const char *problem = "unset";
	bool chunks_ok = true, hash_ok;
	int ret;

	FUZZ_CHECK(crcs);
	if (rec->version == 3) {
		free(crcs);
		/* Verified with and without a hasher whatever IN_NO_HASHER says. */
		fz_zrecord_check(f, size, memfd, rec, stored, hasher, model_hasher);
		return;
	}
	ret = pack_read_chunk_table(io_system(), memfd, rec, crcs);
	FUZZ_CHECK(ret == 0);
	for (uint64_t i = 0; i < count; i++) {
		uint64_t n = i + 1 < count ? chunk : rec->length - i * chunk;
		FUZZ_CHECK(crcs[i] == fz_le32(f + table + 4 * i));
		chunks_ok = chunks_ok && fz_crc32c(f + data + i * chunk, n) == crcs[i];
	}
	FUZZ_CHECK(hash_buffer(f + data, rec->length, hash) == 0);
	hash_ok = !memcmp(hash, rec->hash, BLOBFS_HASH_SIZE);

	ret = pack_verify_record(io_system(), memfd, rec, hasher, &problem);
	FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
	FUZZ_CHECK((ret == 0) == (chunks_ok && hash_ok));
	FUZZ_CHECK((ret == 0) == (problem == NULL));
	FZ_LOG("  verify: %s; chunk table: %" PRIu64 " entries\n", problem ? problem : "ok",
	       count);
	if (flags & IN_NO_HASHER) {
		problem = "unset";
		ret = pack_verify_record(io_system(), memfd, rec, NULL, &problem);
		FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
		FUZZ_CHECK((ret == 0) == chunks_ok);
		FUZZ_CHECK((ret == 0) == (problem == NULL));
	}
	free(crcs);
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

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	memfd = memfd_create("fuzz_pack_scan", MFD_CLOEXEC);
	if (memfd < 0 || hasher_new(&hasher) < 0 || hasher_new(&model_hasher) < 0) {
		perror("fuzz_pack_scan: setup");
		abort();
	}
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct pack_scan scan;
	struct record_info rec, model;
	uint64_t size, prev_end, steps = 0, model_stored = 0, model_end = 0;
	unsigned flags;
	uint8_t *f;
	uint32_t id;
	bool expect_open;
	int ret;

	if (len == 0)
		return 0;
	flags = data[0];
	size = len - 1 + (flags & IN_PREFIX_HEADER ? PACK_HEADER_SIZE : 0);
	f = malloc(size ? size : 1);
	FUZZ_CHECK(f);
	if (flags & IN_PREFIX_HEADER) {
		pack_header_encode(FUZZ_PACK_ID, f);
		memcpy(f + PACK_HEADER_SIZE, data + 1, len - 1);
	} else {
		memcpy(f, data + 1, len - 1);
	}
	fix_up(f, size, flags);
	write_file(f, size);
	FZ_LOG("file of %" PRIu64 " bytes, flags 0x%02x\n", size, flags);

	if (flags & IN_HEADLESS) {
		ret = pack_scan_open_headless(io_system(), &scan, memfd, FUZZ_PACK_ID);
		FUZZ_CHECK(ret == 0);
	} else {
		expect_open = size >= PACK_HEADER_SIZE && pack_header_decode(f, &id) == 0 &&
			      id == FUZZ_PACK_ID;
		ret = pack_scan_open(io_system(), &scan, memfd, FUZZ_PACK_ID);
		FUZZ_CHECK(ret == 0 || ret == -EBADMSG);
		FUZZ_CHECK((ret == 0) == expect_open);
		FZ_LOG("pack_scan_open: %d\n", ret);
		if (ret != 0)
			goto out;
	}
	FUZZ_CHECK(scan.file_size == size && scan.pos == PACK_HEADER_SIZE &&
		   scan.good_end == PACK_HEADER_SIZE);

	prev_end = PACK_HEADER_SIZE;
	for (;;) {
		uint64_t pos = scan.pos, good_end = scan.good_end;
		bool frames = model_frames(f, size, pos, &model, &model_stored, &model_end);

		/* Every call advances, so size + 1 calls always suffice. */
		FUZZ_CHECK(++steps <= size + 2);
		ret = pack_scan_next(&scan, &rec);
		if (ret == 0) {
			FUZZ_CHECK(pos >= size);
			break;
		}
		FUZZ_CHECK(pos < size);
		FUZZ_CHECK((ret == 1) == frames);
		if (ret == 1) {
			uint64_t end = model_end;
			FUZZ_CHECK(rec.offset == pos && rec.offset >= prev_end);
			FUZZ_CHECK(rec.offset == model.offset && rec.kind == model.kind &&
				   rec.chunk_shift == model.chunk_shift && rec.seq == model.seq &&
				   rec.length == model.length && rec.version == model.version &&
				   !memcmp(rec.hash, model.hash, BLOBFS_HASH_SIZE));
			FUZZ_CHECK(rec.stored == model_stored);
			FUZZ_CHECK(end > rec.offset && end <= size && record_end(&rec) == end);
			FUZZ_CHECK(scan.pos == end && scan.good_end == end);
			FZ_LOG("record at %" PRIu64 ": version %u, kind %d, shift %u, seq %" PRIu64
			       ", length %" PRIu64 ", stored %" PRIu64 "\n",
			       rec.offset, rec.version, rec.kind, rec.chunk_shift, rec.seq, rec.length,
			       rec.stored);
			check_record(f, size, &rec, model_stored, flags);
			prev_end = end;
			continue;
		}
		FUZZ_CHECK(ret == -EBADMSG);
		FZ_LOG("damage %" PRIu64 "..%" PRIu64 "\n", scan.bad_start, scan.bad_end);
		FUZZ_CHECK(scan.bad_start == pos);
		FUZZ_CHECK(scan.bad_start < scan.bad_end && scan.bad_end <= size);
		FUZZ_CHECK(scan.pos == scan.bad_end && scan.good_end == good_end);
		for (uint64_t off = pos + 1; off < scan.bad_end; off++)
			FUZZ_CHECK(!model_frames(f, size, off, NULL, NULL, NULL));
		FUZZ_CHECK(scan.bad_end == size || model_frames(f, size, scan.bad_end, NULL, NULL, NULL));
		check_guess(f, size, scan.bad_start);
	}
	FUZZ_CHECK(scan.pos == size || (size < PACK_HEADER_SIZE && scan.pos == PACK_HEADER_SIZE));

	/* The edges of the file, and offsets no file reaches. */
	check_guess(f, size, size >= 64 ? size - 64 : 0);
	check_guess(f, size, size >= 63 ? size - 63 : 0);
	check_guess(f, size, size);
	check_guess(f, size, size + 1);
	check_guess(f, size, UINT64_MAX - 63);
	check_guess(f, size, UINT64_MAX);
out:
	free(f);
	return 0;
}
