/*
 * test_powerloss.c - thousands of simulated power cuts under the store layer.
 *
 * Each iteration runs a random workload (saves of small and large blobs,
 * written in order or shuffled, re-saves, deletes, syncs, online and offline
 * compactions, index checkpoints written the background's way) on a
 * fresh data directory over the simulated disk of simdisk.h, stops the
 * machine at a random file-system call, leaves the files as a power cut
 * could (unsynced writes lost or torn sector by sector, the last one torn at
 * a random byte, a random suffix of unsynced name changes lost), and then
 * checks what a user is promised:
 *   - every blob whose save was followed by a successful store_sync is
 *     present with its exact bytes (unless deleted since), and every synced
 *     delete stays deleted (unless saved again since);
 *   - every blob the store lists reads back whole, and its bytes hash to its
 *     name (no blob is wrong);
 *   - fsck finds nothing to report.
 *
 * With --compress (the meson test powerloss_zstd) the data directory is
 * opened with compress=zstd and the blobs are mostly text (a stretch of
 * random bytes here and there), so that compressed records (REC3, with
 * compressed and raw chunks) are what gets cut; the run fails if no REC3
 * record was ever found on the disk after a cut.
 *
 * BLOBFS_POWERLOSS_ITERATIONS (default 2000, 1000 with --compress) and
 * BLOBFS_POWERLOSS_SEED set the run; a failure prints the seed and
 * iteration that reproduce it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk_codec.h"
#include "fsck.h"
#include "hash.h"
#include "log.h"
#include "simdisk.h"
#include "store.h"
#include "storeutil.h"

#define MAX_BLOBS 64
#define MAX_OPS 48

enum state { UNKNOWN, PRESENT, ABSENT };

struct model_blob {
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint64_t seed;
	size_t len;
	enum state synced; /* as of the last successful sync */
	enum state last;   /* the last acknowledged operation since then */
	bool saved_since, deleted_since; /* any save / delete acknowledged since */
};

static struct {
	unsigned long iterations, crash_points, synced_checked, deletes_checked, listed_checked;
	unsigned long syncs, saves, deletes, compactions, remounts, checkpoints;
	unsigned long zrecords; /* REC3 records found after the cuts */
} stats;

/* The workload's choices: seeded per iteration, so that a seed and an
 * iteration number reproduce it. */
static struct tu_rng workload;
static int failures;
/* The simulated disk's io table. */
static const struct io_ops *sim_io;
/* --compress: compress=zstd, and content that compresses. */
static bool with_compression;

static uint64_t rng(void)
{
	return tu_rng_next(&workload);
}

/* A blob's content, made again from its seed whenever it is needed: random
 * bytes; with --compress, 64 KiB stretches (a chunk each) of text of a small
 * alphabet, about one in three random instead. */
static void fill(uint8_t *buf, size_t len, uint64_t seed)
{
	struct tu_rng content;

	tu_rng_seed(&content, seed);
	if (!with_compression) {
		tu_rng_fill(&content, buf, len);
		return;
	}
	for (size_t at = 0; at < len; at += 65536) {
		size_t n = len - at < 65536 ? len - at : 65536;
		if (tu_rng_below(&content, 3) == 0) {
			tu_rng_fill(&content, buf + at, n);
			continue;
		}
		for (size_t i = 0; i < n; i += 21) {
			uint64_t bits = tu_rng_next(&content);
			for (size_t j = i; j < n && j < i + 21; j++, bits >>= 3)
				buf[at + j] = (uint8_t)"etaoin s"[bits & 7];
		}
	}
}

static void count_zrecord(const struct pack_event *ev, void *arg)
{
	(void)arg;
	if (ev->kind == PACK_RECORD && ev->rec->version == 3)
		stats.zrecords++;
}

__attribute__((format(printf, 3, 4)))
static void fail(uint64_t seed, unsigned long it, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "FAIL (seed %" PRIu64 ", iteration %lu): ", seed, it);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	failures++;
}

static size_t random_length(void)
{
	switch (rng() % 20) {
	case 0:
		return 0;
	case 1: case 2: case 3: case 4: case 5: case 6: case 7: case 8: case 9:
		return 1 + rng() % 3000;
	case 10: case 11: case 12: case 13: case 14: case 15:
		return 3000 + rng() % 70000; /* across chunk boundaries */
	default:
		return 40000 + rng() % 160000; /* a pack of its own (large_blob 32K) */
	}
}

/* Saves through a writer in pieces, in order or shuffled, or in one call. */
static int save(struct store *store, const uint8_t *data, size_t len, uint8_t hash[32])
{
	struct blob_writer *w;
	size_t pieces, piece;
	int ret;

	if (rng() % 3 == 0)
		return blob_save(store, data, len, hash);
	ret = blob_writer_new(store, &w);
	if (ret < 0)
		return ret;
	pieces = 1 + rng() % 6;
	piece = len / pieces + 1;
	bool shuffled = rng() % 2;
	for (size_t i = 0; i < pieces && ret == 0; i++) {
		size_t k = shuffled ? pieces - 1 - i : i;
		size_t off = k * piece;
		if (off >= len)
			continue;
		size_t n = len - off < piece ? len - off : piece;
		ret = blob_writer_write(w, data + off, n, off);
	}
	if (ret == 0)
		ret = blob_writer_commit(w, hash);
	blob_writer_free(w);
	return ret;
}

struct listed {
	struct store *store;
	uint64_t seed;
	unsigned long it;
	uint8_t *buf;
};

static int check_listed(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct listed *l = arg;
	struct blob_reader *r = NULL;
	uint8_t got[BLOBFS_HASH_SIZE];
	char hex[HASH_HEX_SIZE + 1];
	size_t n = 0;
	int ret;

	hash_to_hex(hash, hex);
	ret = blob_open(l->store, hash, &r);
	if (ret == 0)
		ret = blob_read(r, l->buf, (size_t)length, 0, &n);
	blob_close(r);
	if (ret < 0 || n != length) {
		fail(l->seed, l->it, "listed blob %s cannot be read whole: %s", hex, strerror(-ret));
		return 0;
	}
	hash_buffer(l->buf, n, got);
	if (memcmp(got, hash, BLOBFS_HASH_SIZE))
		fail(l->seed, l->it, "listed blob %s has other bytes", hex);
	stats.listed_checked++;
	return 0;
}

static void iteration(const char *root, uint64_t seed, unsigned long it, uint8_t *buf,
		      uint8_t *buf2)
{
	struct model_blob blobs[MAX_BLOBS];
	struct blobdb_options opts;
	struct blobdb *db = NULL;
	struct store *store = NULL;
	struct fsck_report report;
	char datadir[512];
	size_t count = 0;
	int ret;

	tu_rng_seed(&workload, seed * 1000003 + it);
	snprintf(datadir, sizeof(datadir), "%s/d%lu", root, it);
	blobdb_options_default(&opts);
	opts.large_blob_min = 32 << 10;
	opts.pack_size_max = 96 << 10;
	opts.min_free = 0;
	opts.io = sim_io;
	opts.compress = with_compression ? CHUNK_CODEC_ZSTD : CHUNK_CODEC_NONE;

	simdisk_arm(0);
	if (blobdb_open(datadir, &opts, &db) < 0 || store_create(db, "s") < 0 ||
	    store_open(db, "s", &store) < 0) {
		fail(seed, it, "setup failed");
		return;
	}
	simdisk_arm(1 + rng() % 400);
	stats.crash_points++;

	for (int op = 0; op < MAX_OPS && !simdisk_crashed(); op++) {
		unsigned r = (unsigned)(rng() % 100);
		if (r < 45 && count < MAX_BLOBS) {
			struct model_blob *b = &blobs[count];
			uint8_t hash[BLOBFS_HASH_SIZE];
			b->seed = rng();
			b->len = random_length();
			fill(buf, b->len, b->seed);
			hash_buffer(buf, b->len, b->hash);
			ret = save(store, buf, b->len, hash);
			if (getenv("SIMDISK_TRACE"))
				fprintf(stderr, "test: save %02x%02x.. %zu bytes -> %d (calls %llu)\n", b->hash[0], b->hash[1], b->len, ret, (unsigned long long)simdisk_calls());
			if (ret == 0 || ret == -EEXIST) {
				if (memcmp(hash, b->hash, BLOBFS_HASH_SIZE))
					fail(seed, it, "save returned the wrong hash");
				/* The same bytes may already be a blob of the model. */
				size_t i;
				for (i = 0; i < count; i++)
					if (!memcmp(blobs[i].hash, b->hash, BLOBFS_HASH_SIZE))
						break;
				if (i == count) {
					blobs[i] = *b;
					blobs[i].synced = blobs[i].last = UNKNOWN;
					blobs[i].saved_since = blobs[i].deleted_since = false;
					count++;
				}
				blobs[i].saved_since = true;
				blobs[i].last = PRESENT;
				stats.saves++;
			}
		} else if (r < 55 && count) {
			struct model_blob *b = &blobs[rng() % count];
			uint8_t hash[BLOBFS_HASH_SIZE];
			fill(buf, b->len, b->seed);
			ret = save(store, buf, b->len, hash);
			if (ret == 0 || ret == -EEXIST) {
				b->saved_since = true;
				b->last = PRESENT;
			}
		} else if (r < 70 && count) {
			struct model_blob *b = &blobs[rng() % count];
			ret = blob_delete(store, b->hash);
			if (getenv("SIMDISK_TRACE"))
				fprintf(stderr, "test: delete %02x%02x.. -> %d (calls %llu)\n", b->hash[0], b->hash[1], ret, (unsigned long long)simdisk_calls());
			if (ret == 0 || ret == -ENOENT) {
				b->deleted_since = true;
				b->last = ABSENT;
				stats.deletes++;
			}
		} else if (r < 86 && r >= 84) {
			/* An index checkpoint written the way the background
			 * writes it (from the live index, batch by batch), which
			 * the recovery after the coming cut may then use. */
			if (blobdb_checkpoint(db) == 0)
				stats.checkpoints++;
		} else if (r < 88) {
			ret = store_sync(store);
			if (getenv("SIMDISK_TRACE"))
				fprintf(stderr, "test: sync -> %d (calls %llu)\n", ret, (unsigned long long)simdisk_calls());
			if (ret == 0) {
				for (size_t i = 0; i < count; i++) {
					if (blobs[i].last != UNKNOWN)
						blobs[i].synced = blobs[i].last;
					blobs[i].last = UNKNOWN;
					blobs[i].saved_since = blobs[i].deleted_since = false;
				}
				stats.syncs++;
			}
		} else if (r < 93) {
			store_compact(store, 30);
			stats.compactions++;
		} else if (r < 95) {
			/* The offline pass: also drops tombstones once nothing
			 * dead is left for them to cancel. */
			blobdb_compact(db, NULL);
			stats.compactions++;
		} else if (r < 97) {
			/* A clean unmount and mount: writes an index checkpoint,
			 * which the recovery after the coming cut may then use. */
			store_close(store);
			store = NULL;
			blobdb_close(db);
			db = NULL;
			if (!simdisk_crashed() && blobdb_open(datadir, &opts, &db) == 0 &&
			    store_open(db, "s", &store) == 0) {
				stats.remounts++;
				/* A clean close syncs everything: now all is synced. */
				for (size_t i = 0; i < count; i++) {
					if (blobs[i].last != UNKNOWN)
						blobs[i].synced = blobs[i].last;
					blobs[i].last = UNKNOWN;
					blobs[i].saved_since = blobs[i].deleted_since = false;
				}
			} else {
				break; /* the crash came during the remount */
			}
		} else if (count) {
			struct model_blob *b = &blobs[rng() % count];
			struct blob_reader *reader;
			size_t n;
			if (blob_open(store, b->hash, &reader) == 0) {
				if (blob_read(reader, buf2, b->len, 0, &n) == 0) {
					fill(buf, b->len, b->seed);
					if (n != b->len || memcmp(buf, buf2, n))
						fail(seed, it, "a read before the crash got other bytes");
				}
				blob_close(reader);
			}
		}
	}

	/* The power goes. */
	simdisk_crash_now();
	simdisk_power_cut(rng());
	store_close(store);
	blobdb_close(db);
	db = NULL;
	simdisk_reset();

	if (blobdb_open(datadir, &opts, &db) < 0 || store_open(db, "s", &store) < 0) {
		fail(seed, it, "the store did not come back after the power cut");
		blobdb_close(db);
		return;
	}
	for (size_t i = 0; i < count; i++) {
		struct model_blob *b = &blobs[i];
		/* Unsynced operations may or may not have reached the disk, in
		 * order: only what no later operation touched is certain. */
		bool must_be = b->synced == PRESENT && !b->deleted_since;
		bool must_not = b->synced == ABSENT && !b->saved_since;
		uint64_t length;
		int found = blob_info(store, b->hash, &length);
		char hex[HASH_HEX_SIZE + 1];
		hash_to_hex(b->hash, hex);
		if (must_be) {
			struct blob_reader *reader = NULL;
			size_t n = 0;
			stats.synced_checked++;
			if (found < 0) {
				fail(seed, it, "synced blob %s (%zu bytes) is missing", hex, b->len);
				continue;
			}
			ret = blob_open(store, b->hash, &reader);
			if (ret == 0)
				ret = blob_read(reader, buf2, b->len, 0, &n);
			blob_close(reader);
			fill(buf, b->len, b->seed);
			if (ret < 0 || n != b->len || memcmp(buf, buf2, n))
				fail(seed, it, "synced blob %s does not read back exactly (%s)", hex,
				     strerror(-ret));
		} else if (must_not) {
			stats.deletes_checked++;
			if (found == 0)
				fail(seed, it, "synced delete of %s came undone", hex);
		}
	}
	struct listed l = { .store = store, .seed = seed, .it = it, .buf = buf2 };
	blob_list(store, NULL, check_listed, &l);
	store_close(store);
	blobdb_close(db);
	if (with_compression)
		scan_packs(datadir, "s", UINT32_MAX, count_zrecord, NULL);

	char *lines = NULL;
	size_t lines_size = 0;
	FILE *out = open_memstream(&lines, &lines_size);
	ret = fsck_run(datadir, sim_io, false, out, NULL, &report);
	fclose(out);
	if (ret < 0 || report.problems)
		fail(seed, it, "fsck after recovery: %s\n%s", ret < 0 ? strerror(-ret) : "problems",
		     lines);
	free(lines);
	stats.iterations++;
	if (!failures)
		tu_rmtree(datadir);
}

int main(int argc, char **argv)
{
	const char *env = getenv("BLOBFS_POWERLOSS_ITERATIONS");
	unsigned long iterations;
	uint64_t seed = getenv("BLOBFS_POWERLOSS_SEED") ?
				strtoull(getenv("BLOBFS_POWERLOSS_SEED"), NULL, 10) : 20261121;
	/* tmpfs when there is one: the simulation makes many small files. */
	char root[] = "/dev/shm/blobfs-powerloss-XXXXXX", holding[600];
	uint8_t *buf = malloc(1 << 20), *buf2 = malloc(1 << 20);

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--compress") != 0) {
			fprintf(stderr, "usage: %s [--compress]\n", argv[0]);
			return 2;
		}
		with_compression = true;
	}
	iterations = env ? strtoul(env, NULL, 10) : with_compression ? 1000 : 2000;
	if (access("/dev/shm", W_OK) != 0)
		memcpy(root, "/tmp/", 5), memmove(root + 5, root + 9, strlen(root + 9) + 1);
	if (!mkdtemp(root) || !buf || !buf2) {
		perror("setup");
		return 1;
	}
	snprintf(holding, sizeof(holding), "%s/holding", root);
	mkdir(holding, 0700);
	log_set_level(getenv("BLOBFS_POWERLOSS_LOG") ? LOG_LEVEL_DEBUG : LOG_LEVEL_OFF);
	sim_io = simdisk_install(holding);
	const char *only = getenv("BLOBFS_POWERLOSS_ONLY");
	for (unsigned long it = 0; it < iterations && failures < 5; it++)
		if (!only || strtoul(only, NULL, 10) == it)
			iteration(root, seed, it, buf, buf2);
	simdisk_uninstall();
	if (with_compression && stats.iterations && !stats.zrecords) {
		fprintf(stderr, "FAIL: no compressed record (REC3) was found after any cut\n");
		failures++;
	}
	printf("power-loss simulation%s: %lu iterations (seed %" PRIu64 "), %lu simulated power cuts; "
	       "%lu saves, %lu deletes, %lu syncs, %lu compaction passes, %lu clean remounts, %lu background-style "
	       "checkpoints; checked %lu synced blobs, %lu synced deletes, %lu listed blobs",
	       with_compression ? " (compress=zstd)" : "", stats.iterations, seed, stats.crash_points, stats.saves,
	       stats.deletes, stats.syncs, stats.compactions, stats.remounts, stats.checkpoints, stats.synced_checked,
	       stats.deletes_checked, stats.listed_checked);
	if (with_compression)
		printf("; %lu REC3 records after the cuts", stats.zrecords);
	printf("; %d failures\n", failures);
	if (!failures)
		tu_rmtree(root);
	else
		fprintf(stderr, "data directories left in %s\n", root);
	free(buf);
	free(buf2);
	return failures ? 1 : 0;
}
