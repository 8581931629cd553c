/*
 * cli_datadir.c - the offline commands on a data directory (none applies to
 * memory:, which keeps nothing on disk):
 *
 *   blobfs fsck [--repair] DATADIR   check (and repair) every record
 *   blobfs compact DATADIR           give back the space of deleted blobs
 *   blobfs stat DATADIR              each store's figures and the totals
 *
 * Each needs the data directory's lock, so none runs while it is mounted.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "fsck.h"
#include "store.h"

/* fsck, compact and stat work on a data directory's files: memory: has
 * none. */
static bool refuse_memory(const char *command, const char *location)
{
	if (strncmp(location, MEMORY_LOCATION, strlen(MEMORY_LOCATION)))
		return false;
	fprintf(stderr, "blobfs %s: %s keeps nothing on disk: there is nothing to %s\n", command,
		location, command);
	return true;
}

static void in_use(const char *command, const char *datadir)
{
	fprintf(stderr, "blobfs %s: %s is in use by a mounted blobfs (pid %ld); unmount it first\n",
		command, datadir, blobdb_lock_holder(datadir));
}

int cli_fsck(int argc, char **argv)
{
	struct fsck_report report;
	bool repair = argc == 3 && !strcmp(argv[1], "--repair");
	const char *datadir = argv[argc - 1];
	int ret;

	if (argc != 2 && !repair) {
		cli_synopsis(stderr);
		return EXIT_USAGE;
	}
	if (refuse_memory("fsck", datadir))
		return EXIT_USAGE;
	ret = fsck_run(datadir, NULL, repair, stdout, isatty(STDERR_FILENO) ? stderr : NULL, &report);
	if (ret == -EBUSY) {
		in_use("fsck", datadir);
		return EXIT_USAGE;
	}
	if (ret < 0) {
		fprintf(stderr, "blobfs fsck: %s: %s\n", datadir, strerror(-ret));
		return EXIT_USAGE;
	}
	fprintf(stderr, "blobfs fsck: %llu stores, %llu packs, %llu blob records (%llu bytes), "
		"%llu tombstones: %llu problems%s\n",
		report.stores, report.packs, report.blobs, report.bytes, report.tombstones,
		report.problems, repair ? ", all repaired" : "");
	if (repair && report.unrepaired) {
		fprintf(stderr, "blobfs fsck: %llu problems could not be repaired\n", report.unrepaired);
		return 1;
	}
	return report.problems && !repair ? 1 : 0;
}

int cli_compact(int argc, char **argv)
{
	struct blobdb_options opts;
	struct blobdb *db = NULL;
	int ret;

	if (argc != 2) {
		cli_synopsis(stderr);
		return EXIT_USAGE;
	}
	if (refuse_memory("compact", argv[1]))
		return EXIT_USAGE;
	blobdb_options_default(&opts);
	opts.min_free = 0;
	if (blobdb_open(argv[1], &opts, &db) < 0)
		return EXIT_USAGE; /* the store layer said why */
	ret = blobdb_compact(db, isatty(STDERR_FILENO) ? stderr : NULL);
	if (blobdb_close(db) < 0 && ret == 0)
		ret = -EIO;
	if (ret < 0) {
		fprintf(stderr, "blobfs compact: %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	return 0;
}

struct stat_walk {
	struct blobdb *db;
	struct store_stats total;
	uint64_t stores;
	int error;
};

static int print_store(const char *name, void *arg)
{
	struct stat_walk *w = arg;
	struct store_stats st;
	struct store *store = NULL;
	char line[STORE_STATS_LINE_MAX];
	int ret = store_open(w->db, name, &store);

	if (ret == 0)
		ret = store_stats(store, &st);
	store_close(store);
	if (ret < 0) {
		w->error = ret;
		return 1; /* stop: the store layer logged why */
	}
	store_stats_format(name, &st, line, sizeof(line));
	fputs(line, stdout);
	store_stats_add(&w->total, &st);
	w->stores++;
	return 0;
}

int cli_stat(int argc, char **argv)
{
	struct blobdb_options opts;
	struct stat_walk walk = { 0 };
	char line[STORE_STATS_LINE_MAX];
	struct stat st;
	int ret, status = 1;

	if (argc != 2) {
		cli_synopsis(stderr);
		return EXIT_USAGE;
	}
	if (refuse_memory("stat", argv[1]))
		return EXIT_USAGE;
	/* Opening would create a missing data directory. */
	ret = stat(argv[1], &st) < 0 ? -errno : S_ISDIR(st.st_mode) ? 0 : -ENOTDIR;
	if (ret < 0) {
		fprintf(stderr, "blobfs stat: %s: %s\n", argv[1], strerror(-ret));
		return EXIT_USAGE;
	}
	/* As fsck: under the lock (nothing changes meanwhile), no pid written
	 * in it, no checkpoint written at close, nothing saved. */
	blobdb_options_default(&opts);
	opts.read_only = true;
	opts.min_free = 0;
	if (blobdb_open(argv[1], &opts, &walk.db) < 0)
		return EXIT_USAGE; /* the store layer said why (in use: by which pid) */
	store_list(walk.db, NULL, print_store, &walk);
	if (walk.error == 0) {
		store_stats_format_total(walk.stores, &walk.total, line, sizeof(line));
		fputs(line, stdout);
		status = 0;
	} else {
		fprintf(stderr, "blobfs stat: %s: %s\n", argv[1], strerror(-walk.error));
	}
	if (blobdb_close(walk.db) < 0)
		status = 1;
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "blobfs stat: write error: %s\n", strerror(errno));
		status = 1;
	}
	return status;
}
