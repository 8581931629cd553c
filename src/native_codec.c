/*
 * native_codec.c - the native protocol's bytes (native_codec.h): codes are
 * 8 ASCII bytes (compared as bytes, the same as reading them as one
 * little-endian uint64), integers little-endian, a StoreName a uint16
 * length and its bytes, a Hash 32 raw bytes, a Blob a uint64 length and
 * its bytes.
 */
#include "native_codec.h"

#include <errno.h>
#include <string.h>

#include "bytes.h"

static const struct {
	char code[NATIVE_CODE_SIZE + 1];
	enum native_op op;
	bool name, hash, blob; /* its arguments, in this order */
} requests[] = {
	{ "storlist", NATIVE_STORE_LIST, false, false, false },
	{ "storenew", NATIVE_STORE_CREATE, true, false, false },
	{ "storedel", NATIVE_STORE_DESTROY, true, false, false },
	{ "blobhash", NATIVE_BLOB_HASH, false, false, true },
	{ "bloblist", NATIVE_BLOB_LIST, true, false, false },
	{ "blobinfo", NATIVE_BLOB_INFO, true, true, false },
	{ "blobload", NATIVE_BLOB_LOAD, true, true, false },
	{ "blobsave", NATIVE_BLOB_SAVE, true, false, true },
	{ "blobdrop", NATIVE_BLOB_DELETE, true, true, false },
	{ "Goodbye!", NATIVE_GOODBYE, false, false, false },
};

int native_open_decode(const void *buf, size_t len, uint16_t *version, size_t *used)
{
	const uint8_t *p = buf;

	*used = 0;
	if (len >= NATIVE_CODE_SIZE && memcmp(p, "OpenDoor", NATIVE_CODE_SIZE))
		return -EPROTO;
	if (len < NATIVE_CODE_SIZE + 2)
		return len < NATIVE_CODE_SIZE && memcmp(p, "OpenDoor", len) ? -EPROTO : -EAGAIN;
	*version = get_le16(p + NATIVE_CODE_SIZE);
	*used = NATIVE_CODE_SIZE + 2;
	return 0;
}

int native_request_decode(const void *buf, size_t len, struct native_request *out,
			  size_t *used)
{
	const uint8_t *p = buf;
	size_t at = NATIVE_CODE_SIZE, i, n = sizeof(requests) / sizeof(*requests);

	*used = 0;
	out->has_name = out->name_ok = out->has_hash = out->has_blob = false;
	out->name_len = 0;
	out->blob_len = 0;
	out->name[0] = '\0';
	if (len < NATIVE_CODE_SIZE)
		return -EAGAIN;
	for (i = 0; i < n && memcmp(p, requests[i].code, NATIVE_CODE_SIZE); i++)
		;
	if (i == n)
		return -EPROTO;
	out->op = requests[i].op;
	if (requests[i].name) {
		if (len - at < 2)
			return -EAGAIN;
		out->has_name = true;
		out->name_len = get_le16(p + at);
		at += 2;
		if (len - at < out->name_len)
			return -EAGAIN;
		out->name_ok = out->name_len >= 1 && out->name_len <= NATIVE_NAME_MAX &&
			       !memchr(p + at, '\0', out->name_len);
		if (out->name_ok) {
			memcpy(out->name, p + at, out->name_len);
			out->name[out->name_len] = '\0';
		}
		at += out->name_len;
	}
	if (requests[i].hash) {
		if (len - at < BLOBFS_HASH_SIZE)
			return -EAGAIN;
		out->has_hash = true;
		memcpy(out->hash, p + at, BLOBFS_HASH_SIZE);
		at += BLOBFS_HASH_SIZE;
	}
	if (requests[i].blob) {
		if (len - at < 8)
			return -EAGAIN;
		out->has_blob = true;
		out->blob_len = get_le64(p + at);
		at += 8;
	}
	*used = at;
	return 0;
}

const char *native_status(int result)
{
	switch (result) {
	case 0:
		return "okeydoke";
	case -EEXIST:
		return "itexists";
	case -ENOENT:
		return "notfound";
	case -ENOSPC:
		return "no-space";
	case -EINVAL:
		return "invalarg";
	default:
		return "internal";
	}
}

size_t native_put_code(uint8_t *out, const char *code)
{
	memcpy(out, code, NATIVE_CODE_SIZE);
	return NATIVE_CODE_SIZE;
}

size_t native_put_u16(uint8_t *out, uint16_t v)
{
	put_le16(out, v);
	return 2;
}

size_t native_put_u64(uint8_t *out, uint64_t v)
{
	put_le64(out, v);
	return 8;
}

size_t native_put_name(uint8_t *out, const char *name, size_t len)
{
	put_le16(out, (uint16_t)len);
	memcpy(out + 2, name, len);
	return 2 + len;
}

size_t native_put_hash(uint8_t *out, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	memcpy(out, hash, BLOBFS_HASH_SIZE);
	return BLOBFS_HASH_SIZE;
}
