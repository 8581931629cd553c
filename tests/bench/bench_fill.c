/*
 * bench_fill.c - fills a store with random blobs through the store API,
 * without a mount: scripts/bench uses it to build a store of a million small
 * blobs in seconds (how the store was filled is not what is measured). The
 * content comes from the unit tests' PRNG (tests/unit/testutil.h), seeded
 * with SEED.
 *
 *   bench_fill DATADIR STORE COUNT SIZE [SEED [crash]]
 *
 * With "crash" it runs as a mounted daemon does (its background threads:
 * flushes, checkpoints) and ends without closing once every save is
 * durable, as a daemon killed with SIGKILL would: what a mount after a
 * crash finds.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "store.h"
#include "testutil.h"

int main(int argc, char **argv)
{
	struct blobdb *db = NULL;
	struct store *store = NULL;
	unsigned long count, size, i;
	bool crash;
	struct tu_rng rng;
	uint8_t hash[BLOBFS_HASH_SIZE], *buf;
	int ret;

	if (argc < 5) {
		fprintf(stderr, "usage: bench_fill DATADIR STORE COUNT SIZE [SEED [crash]]\n");
		return 2;
	}
	count = strtoul(argv[3], NULL, 10);
	size = strtoul(argv[4], NULL, 10);
	tu_rng_seed(&rng, argc > 5 ? strtoull(argv[5], NULL, 10) : 1);
	crash = argc > 6 && !strcmp(argv[6], "crash");
	buf = malloc(size ? size : 1);
	if (!buf || blobdb_open(argv[1], NULL, &db) < 0)
		return 1;
	ret = store_create(db, argv[2]);
	if ((ret < 0 && ret != -EEXIST) || store_open(db, argv[2], &store) < 0)
		return 1;
	if (crash && blobdb_start(db) < 0)
		return 1;
	for (i = 0; i < count; i++) {
		tu_rng_fill(&rng, buf, size);
		ret = blob_save(store, buf, size, hash);
		if (ret < 0 && ret != -EEXIST) {
			fprintf(stderr, "bench_fill: save %lu: %s\n", i, strerror(-ret));
			return 1;
		}
	}
	if (crash) {
		if (store_sync(store) < 0)
			return 1;
		_exit(0);
	}
	store_close(store);
	blobdb_close(db);
	free(buf);
	return 0;
}
