/*
 * fuzz_meta.c - the decoder of a store's meta file (src/meta.c), the one
 * part of local_meta.c that reads untrusted bytes, against a model of
 * docs/FORMAT.md ("The store's meta file") written here:
 *   - meta_decode accepts exactly 32 bytes with the magic BLOBMETA, version
 *     1, zero reserved bytes, a mode within 07777 and a good CRC32C, and
 *     whatever it accepts encodes back to the very same bytes;
 *   - a well-formed file of another version is -ENOTSUP, anything else it
 *     refuses -EINVAL, and a refusal leaves the output untouched.
 *
 * Input: byte 0 holds fix-up flags that make valid files reachable
 * (libFuzzer cannot solve a CRC): 1 sets the magic, 2 the version to 1,
 * 4 zeroes the reserved bytes and the mode's high bits, 8 recomputes the
 * CRC (last, over the fixed bytes). The rest is the file.
 */
#include <errno.h>

#include "fuzz_common.h"
#include "meta.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t file[64], again[META_SIZE];
	struct store_attr out = { .uid = 0xdead, .gid = 0xbeef, .mode = 0xffffffff }, in;
	unsigned flags;
	size_t len;
	bool framed, known;
	int ret;

	if (size < 1 || size - 1 > sizeof(file))
		return 0;
	flags = data[0];
	len = size - 1;
	memcpy(file, data + 1, len);
	if (len == META_SIZE) {
		if (flags & 1)
			memcpy(file, "BLOBMETA", 8);
		if (flags & 2) {
			file[8] = 1;
			file[9] = file[10] = file[11] = 0;
		}
		if (flags & 4) {
			memset(file + 24, 0, 4);
			file[21] &= 0x0f;
			file[22] = file[23] = 0;
		}
		if (flags & 8) {
			uint32_t crc = fz_crc32c(file, 28);
			file[28] = (uint8_t)crc;
			file[29] = (uint8_t)(crc >> 8);
			file[30] = (uint8_t)(crc >> 16);
			file[31] = (uint8_t)(crc >> 24);
		}
	}
	ret = meta_decode(file, len, &out);

	framed = len == META_SIZE && !memcmp(file, "BLOBMETA", 8) &&
		 fz_le32(file + 28) == fz_crc32c(file, 28);
	known = framed && fz_le32(file + 8) == 1;
	if (!framed) {
		FUZZ_CHECK(ret == -EINVAL);
	} else if (!known) {
		FUZZ_CHECK(ret == -ENOTSUP);
	} else if (fz_le32(file + 24) != 0 || (fz_le32(file + 20) & ~07777u)) {
		FUZZ_CHECK(ret == -EINVAL);
	} else {
		FUZZ_CHECK(ret == 0);
		FUZZ_CHECK(out.uid == fz_le32(file + 12));
		FUZZ_CHECK(out.gid == fz_le32(file + 16));
		FUZZ_CHECK(out.mode == fz_le32(file + 20));
		meta_encode(&out, again);
		FUZZ_CHECK(!memcmp(again, file, META_SIZE));
	}
	if (ret < 0)
		FUZZ_CHECK(out.uid == 0xdead && out.gid == 0xbeef && out.mode == 0xffffffff);
	/* The encoder's side: any values encode to a file that decodes. */
	if (len >= 12) {
		in.uid = fz_le32(file);
		in.gid = fz_le32(file + 4);
		in.mode = fz_le32(file + 8);
		meta_encode(&in, again);
		FUZZ_CHECK(meta_decode(again, META_SIZE, &out) == 0);
		FUZZ_CHECK(out.uid == in.uid && out.gid == in.gid && out.mode == (in.mode & 07777));
	}
	return 0;
}
