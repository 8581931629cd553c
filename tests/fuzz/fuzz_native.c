/*
 * fuzz_native.c - the native protocol's decoder (src/native_codec.c), which
 * reads what a network client sends. Input: byte 0 picks the opening (odd)
 * or a stream of requests (even); the rest is what arrived. Invariants:
 *   - a decode takes nothing unless it succeeds, and never more than it was
 *     given or than NATIVE_HEAD_MAX;
 *   - a decoded head is exactly as long as its parts (a code, a name, a
 *     hash, a blob's length), and a name it accepts is 1 to 255 bytes
 *     without a NUL, NUL-terminated;
 *   - a head cut short asks for more (-EAGAIN), and decodes the same once
 *     whole.
 */
#include <errno.h>

#include "fuzz_common.h"
#include "native_codec.h"

static size_t head_size(const struct native_request *r)
{
	return NATIVE_CODE_SIZE + (r->has_name ? 2 + r->name_len : 0) +
	       (r->has_hash ? BLOBFS_HASH_SIZE : 0) + (r->has_blob ? 8 : 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *p = data + 1;
	size_t len, used;

	if (size < 1)
		return 0;
	len = size - 1;
	if (data[0] & 1) {
		uint16_t version;
		int ret = native_open_decode(p, len, &version, &used);

		FUZZ_CHECK(ret == 0 ? used == 10 : used == 0);
		FUZZ_CHECK(ret == 0 || ret == -EAGAIN || ret == -EPROTO);
		return 0;
	}
	/* Requests one after another; blobs' bytes are stepped over. */
	while (len > 0) {
		struct native_request r, again;
		int ret = native_request_decode(p, len, &r, &used);

		FUZZ_CHECK(ret == 0 || ret == -EAGAIN || ret == -EPROTO);
		if (ret < 0) {
			FUZZ_CHECK(used == 0);
			break;
		}
		FUZZ_CHECK(used <= len && used <= NATIVE_HEAD_MAX && used == head_size(&r));
		if (r.name_ok)
			FUZZ_CHECK(r.name_len >= 1 && r.name_len <= NATIVE_NAME_MAX &&
				   strlen(r.name) == r.name_len);
		/* Cut short anywhere, the same head asks for more; whole, it
		 * decodes the same. (A few cuts: every one would be quadratic.) */
		{
			size_t cuts[] = { 0, 7, 8, 9, 10, used / 2, used - 1 }, u = 1;

			for (size_t i = 0; i < sizeof(cuts) / sizeof(*cuts); i++) {
				if (cuts[i] >= used)
					continue;
				FUZZ_CHECK(native_request_decode(p, cuts[i], &again, &u) == -EAGAIN);
				FUZZ_CHECK(u == 0);
			}
			FUZZ_CHECK(native_request_decode(p, used, &again, &u) == 0);
			FUZZ_CHECK(u == used && again.op == r.op && again.blob_len == r.blob_len);
		}
		p += used;
		len -= used;
		if (r.has_blob) {
			uint64_t skip = r.blob_len < len ? r.blob_len : len;

			p += skip;
			len -= skip;
		}
	}
	return 0;
}
