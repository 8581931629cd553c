/*
 * test_tentative.c - the record of tentative saves (tentative.c): entries
 * per (store, hash), claims that make an entry permanent, and the ring that
 * catches a claim made while a tentative save was still running (before its
 * entry existed), including when the ring has wrapped.
 */
#include <string.h>

#include "tentative.h"
#include "testutil.h"

/* Stores are only compared by address. */
static struct store *const S1 = (struct store *)0x1000, *const S2 = (struct store *)0x2000;

static void hash_of(uint8_t h[BLOBFS_HASH_SIZE], unsigned n)
{
	memset(h, 0, BLOBFS_HASH_SIZE);
	memcpy(h, &n, sizeof(n));
}

static void test_entries(struct tentative_table *t)
{
	uint8_t a[BLOBFS_HASH_SIZE], b[BLOBFS_HASH_SIZE];

	TU_TEST("an entry may be taken back once; claimed or absent, not");
	hash_of(a, 1);
	hash_of(b, 2);
	CHECK(tentative_add(t, tentative_begin(t), S1, a));
	CHECK(tentative_remove(t, S1, a));
	CHECK(!tentative_remove(t, S1, a));
	CHECK(tentative_add(t, tentative_begin(t), S1, a));
	tentative_claim(t, S1, a);
	CHECK(!tentative_remove(t, S1, a));
	TU_TEST("entries are per store and per hash");
	CHECK(tentative_add(t, tentative_begin(t), S1, a));
	tentative_claim(t, S2, a);
	tentative_claim(t, S1, b);
	CHECK(tentative_remove(t, S1, a));
	TU_TEST("created twice: kept, and the second creation is not tentative");
	CHECK(tentative_add(t, tentative_begin(t), S1, b));
	CHECK(!tentative_add(t, tentative_begin(t), S1, b));
	CHECK(!tentative_remove(t, S1, b));
}

static void test_claim_before_entry(struct tentative_table *t)
{
	uint8_t a[BLOBFS_HASH_SIZE], other[BLOBFS_HASH_SIZE];
	uint64_t since;

	TU_TEST("a claim between the save and its entry makes it permanent");
	hash_of(a, 7);
	since = tentative_begin(t);
	tentative_claim(t, S1, a); /* another save found the blob first */
	CHECK(!tentative_add(t, since, S1, a));
	CHECK(!tentative_remove(t, S1, a));

	TU_TEST("claims of other content in between do not");
	since = tentative_begin(t);
	for (unsigned i = 0; i < 10; i++) {
		hash_of(other, 100 + i);
		tentative_claim(t, S1, other);
	}
	CHECK(tentative_add(t, since, S1, a));
	CHECK(tentative_remove(t, S1, a));

	TU_TEST("when the ring no longer reaches back, the save is permanent");
	since = tentative_begin(t);
	for (unsigned i = 0; i < 1000; i++) {
		hash_of(other, 1000 + i);
		tentative_claim(t, S1, other);
	}
	CHECK(!tentative_add(t, since, S1, a));
}

int main(int argc, char **argv)
{
	struct tentative_table *t = NULL;

	(void)argc;
	tu_init(argv[0]);
	REQUIRE(tentative_new(&t) == 0);
	test_entries(t);
	test_claim_before_entry(t);
	tentative_free(t);
	return tu_finish();
}
