/*
 * main.c - the command line's entry: picks the command by its first word
 * (the commands live in cli_*.c, see cli.h), and owns the help text. The
 * only place that exits.
 *
 *   blobfs [mount] [-f] [-d] [-o OPT[,OPT...]] DATADIR|memory: MOUNTPOINT
 *   blobfs fsck [--repair] DATADIR
 *   blobfs compact DATADIR
 *   blobfs stat DATADIR
 *   blobfs hash [FILE...]
 *   blobfs serve [-o OPT[,OPT...]] DATADIR|memory:|s3://...
 *
 * Without a command word the arguments are a mount's (the form mount(8)
 * and mount.fuse3 use); cli_mount then refuses a first word that is not a
 * data directory, so that a mistyped command is an error, not a mount.
 */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <stdio.h>
#include <string.h>

#include "cli.h"

void cli_synopsis(FILE *out)
{
	fputs("usage: blobfs [mount] [-f] [-d] [-o OPT[,OPT...]] DATADIR|memory: MOUNTPOINT\n"
	      "       blobfs fsck [--repair] DATADIR\n"
	      "       blobfs compact DATADIR\n"
	      "       blobfs stat DATADIR\n"
	      "       blobfs hash [FILE...]\n"
	      "       blobfs serve [-o OPT[,OPT...]] DATADIR|memory:|s3://...\n"
	      "       blobfs --help | --version\n"
	      "Try 'blobfs --help' for more information.\n",
	      out);
}

void cli_usage(FILE *out)
{
	fputs("usage: blobfs [mount] [options] DATADIR|memory: MOUNTPOINT\n"
	      "       blobfs fsck [--repair] DATADIR\n"
	      "       blobfs compact DATADIR\n"
	      "       blobfs stat DATADIR\n"
	      "       blobfs hash [FILE...]\n"
	      "       blobfs serve [options] DATADIR|memory:|s3://...\n"
	      "       blobfs --help | --version\n"
	      "\n"
	      "mount: mounts the content-addressed blob store kept in DATADIR (created\n"
	      "if missing) on MOUNTPOINT, an existing directory; with memory: instead\n"
	      "of DATADIR the stores live only in the daemon's memory and vanish at\n"
	      "unmount. Each directory of the mount is a store; a file written under\n"
	      "STORE/incoming/ becomes STORE/<sha256 of its content> when closed.\n"
	      "Without the word mount (the form mount -t fuse.blobfs and /etc/fstab\n"
	      "use), DATADIR must be an existing directory or contain a '/'.\n"
	      "\n"
	      "mount options:\n"
	      "  -f, --foreground      stay in the foreground, log to stderr\n"
	      "                        (default: daemonize once mounted, log to syslog)\n"
	      "  -d, --debug           log every request (implies -f; default off)\n"
	      "  -o OPT[,OPT...]       mount options (SIZE: bytes, or with K, M, G):\n",
	      out);
	cli_mount_options_help(out);
	fputs("       allow_other, default_permissions, ro, fsname=..., and the other\n"
	      "       generic FUSE mount options are passed to libfuse and the kernel;\n"
	      "       defaults, auto, noauto, user, users, owner, group, nofail, _netdev,\n"
	      "       x-*, comment=*, the atime options but atime/noatime, lazytime,\n"
	      "       iversion, silent, loud, mand, symfollow and their no- forms are\n"
	      "       accepted and ignored (mount(8) and /etc/fstab may pass them)\n"
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
	      "stat: prints, offline, one line per store and one of totals:\n"
	      "  store=NAME blobs=N bytes=N packs=N dead_bytes=N\n"
	      "  stores=N blobs=N bytes=N packs=N dead_bytes=N\n"
	      "(NAME escaped: \\\\, \\n, \\t, \\xNN for other control bytes and space).\n"
	      "\n"
	      "serve: the network front ends without a mount, in the foreground until\n"
	      "SIGINT, SIGTERM or SIGHUP: the mount options, and -o native=ADDR to\n"
	      "serve the blob database's native protocol (docs/FORMAT.md).\n"
	      "\n"
	      "hash: prints the SHA-256 of each FILE (standard input for - or when\n"
	      "none is given) exactly as sha256sum does; exit status 1 if any FILE\n"
	      "could not be read.\n"
	      "\n"
	      "fsck, compact and stat need DATADIR unmounted. Exit status: 0 success,\n"
	      "1 failure, 2 a wrong command line or a command that could not run.\n"
	      "Unmount with: fusermount3 -u MOUNTPOINT (or umount MOUNTPOINT as root)\n",
	      out);
}

static int run_mount(int argc, char **argv)
{
	return cli_mount(argc, argv, false);
}

static const struct command {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "mount", run_mount },
	{ "fsck", cli_fsck },
	{ "compact", cli_compact },
	{ "stat", cli_stat },
	{ "hash", cli_hash },
	{ "serve", cli_serve },
};

int main(int argc, char **argv)
{
	if (argc < 2) {
		cli_synopsis(stderr);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(*commands); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	if (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		cli_usage(stdout);
		return 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("blobfs %s (FUSE %s)\n", BLOBFS_VERSION, fuse_pkgversion());
		return 0;
	}
	return cli_mount(argc, argv, true);
}
