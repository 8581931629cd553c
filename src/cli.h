/*
 * cli.h - the commands of the command line, by concern: mounting
 * (cli_mount.c), the offline commands on a data directory (cli_datadir.c:
 * fsck, compact, stat) and hashing files (cli_hash.c). main.c picks one by
 * the first word. Each takes its own argv (argv[0] is the command word) and
 * returns the process's exit status; main.c is the only place that exits.
 *
 * Exit statuses: 0 success; 1 the command ran and failed (or, for fsck,
 * found problems); 2 the command line was wrong or the command could not
 * run at all.
 */
#ifndef BLOBFS_CLI_H
#define BLOBFS_CLI_H

#include <stdbool.h>
#include <stdio.h>

#define EXIT_USAGE 2

/* plain: called without the word "mount" (blobfs DATADIR MOUNTPOINT, the
 * form mount(8) and /etc/fstab use): the first operand must then be a data
 * directory (an existing directory, a path with a '/', or memory:), else it
 * is taken for a mistyped command. */
int cli_mount(int argc, char **argv, bool plain);
int cli_fsck(int argc, char **argv);
int cli_compact(int argc, char **argv);
int cli_stat(int argc, char **argv);
int cli_hash(int argc, char **argv);
/* blobfs serve [-o OPT,...] LOCATION: the network front ends without a
 * mount (-o native=ADDR), in the foreground, until a signal. */
int cli_serve(int argc, char **argv);

/* The --help text (main.c); the -o part comes from the table of mount
 * options (cli_mount.c). */
void cli_usage(FILE *out);
/* The usage lines and where to read more, after a command-line error. */
void cli_synopsis(FILE *out);
void cli_mount_options_help(FILE *out);

#endif
