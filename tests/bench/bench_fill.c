/*
 * bench_fill.c - fills a store with random blobs through the store API,
 * without a mount: scripts/bench uses it to build a store of a million small
 * blobs in seconds (how the store was filled is not what is measured). The
 * content comes from the unit tests' PRNG (tests/unit/testutil.h), seeded
 * with SEED.
 *
 *   bench_fill DATADIR STORE COUNT SIZE [SEED]
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"
#include "testutil.h"

int main(int argc, char **argv)
{
	struct blobdb *db = NULL;
	struct store *store = NULL;
	unsigned long count, size, i;
	struct tu_rng rng;
	uint8_t hash[BLOBFS_HASH_SIZE], *buf;
	int ret;

	if (argc < 5) {
		fprintf(stderr, "usage: bench_fill DATADIR STORE COUNT SIZE [SEED]\n");
		return 2;
	}
	count = strtoul(argv[3], NULL, 10);
	size = strtoul(argv[4], NULL, 10);
	tu_rng_seed(&rng, argc > 5 ? strtoull(argv[5], NULL, 10) : 1);
	buf = malloc(size ? size : 1);
	if (!buf || blobdb_open(argv[1], NULL, &db) < 0)
		return 1;
	ret = store_create(db, argv[2]);
	if ((ret < 0 && ret != -EEXIST) || store_open(db, argv[2], &store) < 0)
		return 1;
	for (i = 0; i < count; i++) {
		tu_rng_fill(&rng, buf, size);
		ret = blob_save(store, buf, size, hash);
		if (ret < 0 && ret != -EEXIST) {
			fprintf(stderr, "bench_fill: save %lu: %s\n", i, strerror(-ret));
			return 1;
		}
	}
	store_close(store);
	blobdb_close(db);
	free(buf);
	return 0;
}
