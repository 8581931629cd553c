/*
 * test_s3_created.c - the record of which blobs a mount's uploads created
 * (s3_created.c): a record is found once and then gone; one per (store,
 * blob), a store's records apart from another's; the ring keeps the last
 * 65,536 and forgets the oldest first, whatever order keys come in.
 *
 * Fixture: testutil.h (the fixture library).
 */
#include <string.h>

#include "s3.h"
#include "testutil.h"

#define RING 65536

static void key_of(uint32_t n, uint8_t hash[BLOBFS_HASH_SIZE])
{
	memset(hash, 0xa5, BLOBFS_HASH_SIZE);
	/* The leading bytes pick the bucket: vary them, and make many share. */
	memcpy(hash, &n, sizeof(n));
	hash[0] &= 0x0f;
	memcpy(hash + 8, &n, sizeof(n));
}

int main(int argc, char **argv)
{
	struct s3_created c;
	uint8_t h[BLOBFS_HASH_SIZE], other[BLOBFS_HASH_SIZE];

	(void)argc;
	tu_init(argv[0]);
	REQUIRE(s3_created_init(&c) == 0);

	TU_TEST("a record is taken once");
	key_of(1, h);
	CHECK(!s3_created_take(&c, 7, h));
	s3_created_add(&c, 7, h);
	CHECK(!s3_created_take(&c, 8, h)); /* another store's blob */
	CHECK(s3_created_take(&c, 7, h));
	CHECK(!s3_created_take(&c, 7, h));

	TU_TEST("one record per (store, blob), however often it is added");
	s3_created_add(&c, 7, h);
	s3_created_add(&c, 7, h);
	s3_created_add(&c, 8, h);
	CHECK(s3_created_take(&c, 7, h));
	CHECK(!s3_created_take(&c, 7, h));
	CHECK(s3_created_take(&c, 8, h));

	TU_TEST("the ring keeps the last 65,536 records, the oldest go first");
	for (uint32_t i = 0; i < RING + 1000; i++) {
		key_of(i, h);
		s3_created_add(&c, 1, h);
	}
	for (uint32_t i = 0; i < 1000; i++) {
		key_of(i, h);
		CHECK(!s3_created_take(&c, 1, h));
	}
	for (uint32_t i = 1000; i < RING + 1000; i++) {
		key_of(i, h);
		if (!s3_created_take(&c, 1, h)) {
			CHECK(!"a record of the last 65,536 is missing");
			break;
		}
	}
	TU_TEST("a taken slot is reused without losing a newer record");
	key_of(5, h);
	key_of(6, other);
	s3_created_add(&c, 2, h);
	s3_created_add(&c, 2, other);
	CHECK(s3_created_take(&c, 2, h));
	for (uint32_t i = 0; i < RING - 1; i++) { /* replaces every slot but other's */
		uint8_t k[BLOBFS_HASH_SIZE];

		key_of(100000 + i, k);
		s3_created_add(&c, 3, k);
	}
	CHECK(s3_created_take(&c, 2, other));
	s3_created_fini(&c);
	return tu_finish();
}
