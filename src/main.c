/*
 * main.c - the command line: parses options and calls the store layer, the
 * FUSE front end or the checker. The only place that exits.
 *
 *   blobfs [mount] [-f] [-d] [-o OPT[,OPT...]] DATADIR|memory: MOUNTPOINT
 *   blobfs fsck [--repair] DATADIR
 *   blobfs compact DATADIR
 */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs.h"
#include "fsck.h"
#include "log.h"
#include "store.h"

static void usage(FILE *out)
{
	fprintf(out,
		"usage: blobfs [mount] [options] DATADIR|memory: MOUNTPOINT\n"
		"       blobfs fsck [--repair] DATADIR\n"
		"       blobfs compact DATADIR\n"
		"       blobfs --help | --version\n"
		"\n"
		"Mounts the content-addressed blob store kept in DATADIR on MOUNTPOINT;\n"
		"with memory: instead of DATADIR, the stores live only in the daemon's\n"
		"memory and vanish at unmount.\n"
		"Each directory of the mount is a store; a file written under\n"
		"STORE/incoming/ becomes STORE/<sha256 of its content> when closed.\n"
		"\n"
		"mount options:\n"
		"  -f, --foreground      stay in the foreground, log to stderr\n"
		"                        (otherwise daemonize once mounted, log to syslog)\n"
		"  -d, --debug           log every request (implies -f)\n"
		"  -o OPT[,OPT...]       mount options:\n"
		"       pack_size=SIZE     largest pack small blobs are appended to\n"
		"                          (default 64M; K, M, G suffixes)\n"
		"       large_blob=SIZE    blobs of this size or more get a pack of their\n"
		"                          own, written in place (default 1M, at most 16M)\n"
		"       sync               close() and unlink() return once the change is\n"
		"                          on stable storage (concurrent writers share\n"
		"                          the flushes); otherwise within 1 second\n"
		"       threads=N          requests served at once (default: one per\n"
		"                          CPU, at least 2)\n"
		"       memory_max=SIZE    memory: the most bytes of blobs held; saves\n"
		"                          beyond it fail with ENOSPC (default 25%% of\n"
		"                          the RAM)\n"
		"       receipt_ttl=SECONDS  how long a closed file's name stays in\n"
		"                          incoming/ as a receipt (default 3600)\n"
		"       receipt_max=N      the most names (receipts, files being\n"
		"                          written, directories) in all incoming/\n"
		"                          trees; at the bound the oldest receipt goes\n"
		"                          early (default 100000)\n"
		"       min_free=SIZE      space saves leave free on the disk, kept for\n"
		"                          deletes and compaction (default 1%% of the\n"
		"                          disk, at most 64M; 0 for none)\n"
		"       allow_other, default_permissions, ro, fsname=..., and the other\n"
		"       generic FUSE mount options are passed to the kernel\n"
		"  -h, --help            this text\n"
		"  -V, --version         the version\n"
		"\n"
		"fsck: checks every record of DATADIR offline; exit status 0 when clean,\n"
		"1 when problems were found (one line each), 2 when it could not run.\n"
		"With --repair, damaged packs are rewritten without their damaged records\n"
		"(the originals are moved to DATADIR/quarantine/) and torn tails cut.\n"
		"\n"
		"compact: rewrites packs to give back the space of deleted blobs (the\n"
		"daemon also does this in the background).\n"
		"\n"
		"Unmount with: fusermount3 -u MOUNTPOINT\n");
}

static int parse_size(const char *text, uint64_t *out, bool zero_ok)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text)
		return -EINVAL;
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	default: break;
	}
	if (v > (ULLONG_MAX >> shift))
		return -EINVAL; /* would overflow */
	v <<= shift;
	if (*end || (v == 0 && !zero_ok))
		return -EINVAL;
	*out = v;
	return 0;
}

/* Splits an -o list: our options go to opts, the rest to fuse_args. */
static int parse_mount_options(char *list, struct blobdb_options *opts, struct fs_options *fs_opts,
			       struct fuse_args *args)
{
	char *saveptr = NULL;

	for (char *opt = strtok_r(list, ",", &saveptr); opt; opt = strtok_r(NULL, ",", &saveptr)) {
		if (!strncmp(opt, "pack_size=", 10)) {
			if (parse_size(opt + 10, &opts->pack_size_max, false) < 0)
				goto bad;
		} else if (!strncmp(opt, "large_blob=", 11)) {
			if (parse_size(opt + 11, &opts->large_blob_min, false) < 0)
				goto bad;
		} else if (!strncmp(opt, "memory_max=", 11)) {
			if (parse_size(opt + 11, &opts->memory_max, false) < 0)
				goto bad;
		} else if (!strncmp(opt, "min_free=", 9)) {
			if (parse_size(opt + 9, &opts->min_free, true) < 0)
				goto bad;
		} else if (!strncmp(opt, "threads=", 8)) {
			char *end;
			unsigned long n = strtoul(opt + 8, &end, 10);
			if (*end || n < 1 || n > 256)
				goto bad;
			fs_opts->threads = (unsigned)n;
		} else if (!strncmp(opt, "receipt_ttl=", 12)) {
			char *end;
			unsigned long n = strtoul(opt + 12, &end, 10);
			if (*end || end == opt + 12 || n > 10u * 365 * 86400)
				goto bad;
			fs_opts->receipt_ttl = (unsigned)n;
		} else if (!strncmp(opt, "receipt_max=", 12)) {
			char *end;
			unsigned long n = strtoul(opt + 12, &end, 10);
			if (*end || n < 1 || n > 100000000)
				goto bad;
			fs_opts->receipt_max = n;
		} else if (!strcmp(opt, "sync")) {
			fs_opts->sync = true;
		} else if (!strcmp(opt, "async")) {
			fs_opts->sync = false;
		} else if (fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, opt) < 0) {
			return -ENOMEM;
		}
		continue;
bad:
		fprintf(stderr, "blobfs: bad value in -o %s\n", opt);
		return -EINVAL;
	}
	return 0;
}

/* fsck and compact work on a data directory's files: memory: has none. */
static bool refuse_memory(const char *command, const char *location)
{
	if (strncmp(location, MEMORY_LOCATION, strlen(MEMORY_LOCATION)))
		return false;
	fprintf(stderr, "blobfs %s: %s keeps nothing on disk: there is nothing to %s\n", command,
		location, command);
	return true;
}

static int run_fsck(int argc, char **argv)
{
	struct fsck_report report;
	bool repair = argc == 3 && !strcmp(argv[1], "--repair");
	const char *datadir = argv[argc - 1];
	int ret;

	if (argc != 2 && !repair) {
		usage(stderr);
		return 2;
	}
	if (refuse_memory("fsck", datadir))
		return 2;
	ret = fsck_run(datadir, NULL, repair, stdout, isatty(STDERR_FILENO) ? stderr : NULL, &report);
	if (ret == -EBUSY) {
		fprintf(stderr, "blobfs fsck: %s is in use by a mounted blobfs (pid %ld); unmount it first\n",
			datadir, blobdb_lock_holder(datadir));
		return 2;
	}
	if (ret < 0) {
		fprintf(stderr, "blobfs fsck: %s: %s\n", datadir, strerror(-ret));
		return 2;
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

static int run_compact(int argc, char **argv)
{
	struct blobdb_options opts;
	struct blobdb *db = NULL;
	int ret;

	if (argc != 2) {
		usage(stderr);
		return 2;
	}
	if (refuse_memory("compact", argv[1]))
		return 2;
	blobdb_options_default(&opts);
	opts.min_free = 0;
	if (blobdb_open(argv[1], &opts, &db) < 0)
		return 2; /* the store layer said why */
	ret = blobdb_compact(db, isatty(STDERR_FILENO) ? stderr : NULL);
	if (blobdb_close(db) < 0 && ret == 0)
		ret = -EIO;
	if (ret < 0) {
		fprintf(stderr, "blobfs compact: %s: %s\n", argv[1], strerror(-ret));
		return 1;
	}
	return 0;
}

static int run_mount(int argc, char **argv)
{
	static const struct option long_options[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct fs_options fs_opts = { 0 };
	struct blobdb_options db_opts;
	struct blobdb *db = NULL;
	struct fs_session *session = NULL;
	char mountpoint[PATH_MAX], fsname[PATH_MAX + 16];
	int c, ret = 1;

	blobdb_options_default(&db_opts);
	/* One worker per CPU: more only adds wakeups between threads for each
	 * request (measured: 3000 small files 0.46 s with 2, 1.07 s with 16). */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	fs_opts.threads = cpus < 2 ? 2 : cpus > 16 ? 16 : (unsigned)cpus;
	fs_opts.receipt_ttl = RECEIPT_TTL_DEFAULT;
	fs_opts.receipt_max = RECEIPT_MAX_DEFAULT;
	if (fuse_opt_add_arg(&args, argv[0]) < 0)
		goto out;
	while ((c = getopt_long(argc, argv, "fdo:hV", long_options, NULL)) != -1) {
		switch (c) {
		case 'f':
			fs_opts.foreground = true;
			break;
		case 'd':
			fs_opts.foreground = fs_opts.debug = true;
			break;
		case 'o':
			if (parse_mount_options(optarg, &db_opts, &fs_opts, &args) < 0)
				goto out;
			break;
		case 'h':
			usage(stdout);
			ret = 0;
			goto out;
		case 'V':
			printf("blobfs %s (FUSE %s)\n", BLOBFS_VERSION, fuse_pkgversion());
			ret = 0;
			goto out;
		default:
			usage(stderr);
			goto out;
		}
	}
	if (argc - optind != 2) {
		usage(stderr);
		goto out;
	}
	if (!realpath(argv[optind + 1], mountpoint)) {
		fprintf(stderr, "blobfs: mount point %s: %s\n", argv[optind + 1], strerror(errno));
		goto out;
	}
	if (fs_opts.debug) {
		log_set_level(LOG_LEVEL_DEBUG);
		if (fuse_opt_add_arg(&args, "-d") < 0)
			goto out;
	}
	if (blobdb_open(argv[optind], &db_opts, &db) < 0)
		goto out; /* the store layer said why */
	snprintf(fsname, sizeof(fsname), "fsname=%s,subtype=blobfs", blobdb_path(db));
	if (fuse_opt_add_arg(&args, "-o") < 0 || fuse_opt_add_arg(&args, fsname) < 0)
		goto out;
	if (fs_session_start(db, mountpoint, &args, &fs_opts, &session) < 0)
		goto out;
	/* Daemonize once mounted, so that the mount is ready when the command
	 * returns, and before blobdb_start: a fork keeps only the calling
	 * thread. */
	if (!fs_opts.foreground) {
		if (fuse_daemonize(0) != 0)
			goto out;
		log_to_syslog(true);
		blobdb_note_pid(db);
	}
	if (blobdb_start(db) < 0)
		goto out;
	ret = fs_session_loop(session) == 0 ? 0 : 1;
out:
	fs_session_stop(session);
	/* The last flush happens here: its failure is the daemon's failure
	 * (already logged). */
	if (blobdb_close(db) < 0)
		ret = 1;
	fuse_opt_free_args(&args);
	return ret;
}

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "fsck"))
		return run_fsck(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "compact"))
		return run_compact(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "mount"))
		return run_mount(argc - 1, argv + 1);
	return run_mount(argc, argv);
}
