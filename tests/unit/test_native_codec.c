/*
 * test_native_codec.c - the native protocol's bytes (native_codec.c): the
 * opening; every request's head, decoded whole and from every prefix of it
 * (-EAGAIN until the last byte); names that are refused but stepped over;
 * unknown codes; the status codes and the encoders, byte for byte.
 *
 * Fixture: testutil.h (the fixture library).
 */
#include <errno.h>
#include <string.h>

#include "native_codec.h"
#include "testutil.h"

/* Checks that every proper prefix of buf asks for more, and the whole of
 * it decodes, taking exactly len bytes. */
static void decodes_exactly(const uint8_t *buf, size_t len, struct native_request *r)
{
	size_t used = 1;

	for (size_t n = 0; n < len; n++) {
		if (native_request_decode(buf, n, r, &used) != -EAGAIN || used != 0) {
			CHECK(!"a prefix of a request decoded");
			return;
		}
	}
	CHECK_EQ(native_request_decode(buf, len, r, &used), 0);
	CHECK_EQ(used, len);
}

static void test_opening(void)
{
	uint8_t buf[16];
	uint16_t version = 0;
	size_t used = 0;

	TU_TEST("the opening");
	memcpy(buf, "OpenDoor\x01\x00", 10);
	CHECK_EQ(native_open_decode(buf, 10, &version, &used), 0);
	CHECK(version == 1 && used == 10);
	for (size_t n = 0; n < 10; n++)
		CHECK_EQ(native_open_decode(buf, n, &version, &used), -EAGAIN);
	memcpy(buf, "OpenDoor\x02\x01", 10);
	CHECK_EQ(native_open_decode(buf, 10, &version, &used), 0);
	CHECK_EQ(version, 0x0102);
	CHECK_EQ(native_open_decode("GET / HT", 8, &version, &used), -EPROTO);
	CHECK_EQ(native_open_decode("Op", 2, &version, &used), -EAGAIN);
	CHECK_EQ(native_open_decode("Ox", 2, &version, &used), -EPROTO);
}

static void test_requests(void)
{
	uint8_t buf[NATIVE_HEAD_MAX], hash[BLOBFS_HASH_SIZE];
	struct native_request r;
	size_t n;

	memset(hash, 0x5a, sizeof(hash));
	TU_TEST("each request's head");
	n = native_put_code(buf, "storlist");
	decodes_exactly(buf, n, &r);
	CHECK(r.op == NATIVE_STORE_LIST && !r.has_name && !r.has_hash && !r.has_blob);

	n = native_put_code(buf, "storenew");
	n += native_put_name(buf + n, "photos", 6);
	decodes_exactly(buf, n, &r);
	CHECK(r.op == NATIVE_STORE_CREATE && r.has_name && r.name_ok && !strcmp(r.name, "photos"));

	n = native_put_code(buf, "blobinfo");
	n += native_put_name(buf + n, "s", 1);
	n += native_put_hash(buf + n, hash);
	decodes_exactly(buf, n, &r);
	CHECK(r.op == NATIVE_BLOB_INFO && r.has_hash && !memcmp(r.hash, hash, sizeof(hash)));

	n = native_put_code(buf, "blobsave");
	n += native_put_name(buf + n, "s", 1);
	n += native_put_u64(buf + n, UINT64_MAX);
	decodes_exactly(buf, n, &r);
	CHECK(r.op == NATIVE_BLOB_SAVE && r.has_blob && r.blob_len == UINT64_MAX && !r.has_hash);

	n = native_put_code(buf, "blobhash");
	n += native_put_u64(buf + n, 3);
	decodes_exactly(buf, n, &r);
	CHECK(r.op == NATIVE_BLOB_HASH && r.has_blob && r.blob_len == 3 && !r.has_name);

	static const struct { const char *code; enum native_op op; } named[] = {
		{ "storedel", NATIVE_STORE_DESTROY }, { "bloblist", NATIVE_BLOB_LIST },
	}, hashed[] = {
		{ "blobload", NATIVE_BLOB_LOAD }, { "blobdrop", NATIVE_BLOB_DELETE },
	};
	for (size_t i = 0; i < 2; i++) {
		n = native_put_code(buf, named[i].code);
		n += native_put_name(buf + n, "ab", 2);
		decodes_exactly(buf, n, &r);
		CHECK(r.op == named[i].op && r.name_ok && !r.has_hash);
		n = native_put_code(buf, hashed[i].code);
		n += native_put_name(buf + n, "ab", 2);
		n += native_put_hash(buf + n, hash);
		decodes_exactly(buf, n, &r);
		CHECK(r.op == hashed[i].op && r.name_ok && r.has_hash);
	}
	n = native_put_code(buf, "Goodbye!");
	decodes_exactly(buf, n, &r);
	CHECK_EQ(r.op, NATIVE_GOODBYE);

	TU_TEST("names refused but stepped over; unknown codes");
	{
		static char big[65535];

		memset(big, 'x', sizeof(big));
		n = native_put_code(buf, "storenew");
		n += native_put_name(buf + n, big, sizeof(big));
		CHECK(n == NATIVE_HEAD_MAX - BLOBFS_HASH_SIZE - 8);
		decodes_exactly(buf, n, &r);
		CHECK(r.has_name && !r.name_ok && r.name_len == 65535);
		n = native_put_code(buf, "storenew");
		n += native_put_name(buf + n, big, 256);
		decodes_exactly(buf, n, &r);
		CHECK(!r.name_ok);
		n = native_put_code(buf, "storenew");
		n += native_put_name(buf + n, big, 255);
		decodes_exactly(buf, n, &r);
		CHECK(r.name_ok && strlen(r.name) == 255);
	}
	n = native_put_code(buf, "storenew");
	n += native_put_name(buf + n, "", 0);
	decodes_exactly(buf, n, &r);
	CHECK(r.has_name && !r.name_ok);
	n = native_put_code(buf, "storenew");
	n += native_put_name(buf + n, "a\0b", 3);
	decodes_exactly(buf, n, &r);
	CHECK(!r.name_ok);
	{
		size_t used = 1;

		CHECK_EQ(native_request_decode("STORLIST", 8, &r, &used), -EPROTO);
		CHECK_EQ(native_request_decode("OpenDoor", 8, &r, &used), -EPROTO);
		CHECK_EQ(used, 0);
	}
}

static void test_statuses_and_encoders(void)
{
	uint8_t buf[64];

	TU_TEST("status codes and encoders");
	CHECK(!strcmp(native_status(0), "okeydoke"));
	CHECK(!strcmp(native_status(-EEXIST), "itexists"));
	CHECK(!strcmp(native_status(-ENOENT), "notfound"));
	CHECK(!strcmp(native_status(-ENOSPC), "no-space"));
	CHECK(!strcmp(native_status(-EINVAL), "invalarg"));
	CHECK(!strcmp(native_status(-EIO), "internal"));
	for (int e = 0; e < 200; e++)
		CHECK_EQ(strlen(native_status(-e)), NATIVE_CODE_SIZE);
	CHECK_EQ(native_put_u16(buf, 0x0102), 2);
	CHECK(buf[0] == 2 && buf[1] == 1);
	CHECK_EQ(native_put_u64(buf, 0x0102030405060708u), 8);
	CHECK(buf[0] == 8 && buf[7] == 1);
	CHECK_EQ(native_put_name(buf, "abc", 3), 5);
	CHECK(!memcmp(buf, "\x03\x00" "abc", 5));
	CHECK_EQ(native_put_code(buf, NATIVE_WELCOME), 8);
	CHECK(!memcmp(buf, "Welcome!", 8));
}

int main(int argc, char **argv)
{
	(void)argc;
	tu_init(argv[0]);
	test_opening();
	test_requests();
	test_statuses_and_encoders();
	return tu_finish();
}
