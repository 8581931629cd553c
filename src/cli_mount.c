/*
 * cli_mount.c - `blobfs [mount] [-f] [-d] [-o OPT,...] DATADIR|memory:
 * MOUNTPOINT`: the table of mount options (blobfs's own, and the mount(8)
 * ones it accepts and ignores), the checks of the operands, and running the
 * daemon (open the database, mount, daemonize, serve, unmount).
 *
 * mount(8) runs `mount -t fuse.blobfs DATADIR MNT -o OPTS` (and each
 * /etc/fstab line of that type) through mount.fuse3, which runs
 * `blobfs DATADIR MNT -o OPTS` with the options mount(8) and mount.fuse3
 * leave (rw/ro, dev, suid, sync, noatime, ... and ours); every option they
 * can pass is either ours, libfuse's, or in ignored_options below.
 */
#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <errno.h>
#include <stddef.h>
#include <getopt.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunk_codec.h"
#include "cli.h"
#include "fs.h"
#include "log.h"
#include "cli_servers.h"
#include "store.h"

struct mount_config {
	struct blobdb_options db;
	struct fs_options fs;
	const char *native; /* -o native=ADDR: the native protocol's address */
	const char *http;   /* -o http=ADDR: the HTTP API's address */
	const char *tokens; /* -o tokens=FILE: its bearer tokens */
	bool http_public; /* anonymous HTTP reads from any address */
	bool allow_other; /* other users reach the mount (and the socket) */
};

/* SIZE: a number of bytes with an optional K, M or G (powers of 1024). */
static int parse_size(const char *text, uint64_t *out, bool zero_ok)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	errno = 0;
	v = strtoull(text, &end, 10);
	if (errno || end == text || *text == '-')
		return -EINVAL;
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

static int set_pack_size(struct mount_config *c, const char *v)
{
	return parse_size(v, &c->db.pack_size_max, false);
}

static int set_large_blob(struct mount_config *c, const char *v)
{
	return parse_size(v, &c->db.large_blob_min, false);
}

/* zstd, zstd:LEVEL or none. */
static int set_compress(struct mount_config *c, const char *v)
{
	char *end;
	long level = CHUNK_CODEC_LEVEL_DEFAULT;

	if (!strcmp(v, "none")) {
		c->db.compress = CHUNK_CODEC_NONE;
		return 0;
	}
	if (strncmp(v, "zstd", 4) || (v[4] && v[4] != ':'))
		return -EINVAL;
	if (v[4] == ':') {
		/* Digits only: strtol would take a sign and leading spaces. */
		if (v[5] < '0' || v[5] > '9')
			return -EINVAL;
		errno = 0;
		level = strtol(v + 5, &end, 10);
		if (errno || end == v + 5 || *end || level < CHUNK_CODEC_LEVEL_MIN ||
		    level > CHUNK_CODEC_LEVEL_MAX)
			return -EINVAL;
	}
	c->db.compress = CHUNK_CODEC_ZSTD;
	c->db.compress_level = (int)level;
	return 0;
}

static int set_memory_max(struct mount_config *c, const char *v)
{
	return parse_size(v, &c->db.memory_max, false);
}

static int set_writer_memory(struct mount_config *c, const char *v)
{
	return parse_size(v, &c->db.writer_memory_max, false);
}

static int set_min_free(struct mount_config *c, const char *v)
{
	return parse_size(v, &c->db.min_free, true);
}

static int set_threads(struct mount_config *c, const char *v)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(v, &end, 10);
	if (errno || end == v || *end || *v == '-' || n < 1 || n > 256)
		return -EINVAL;
	c->fs.threads = (unsigned)n;
	return 0;
}

static int parse_count(const char *v, unsigned long min, unsigned long max, unsigned long *out)
{
	char *end;

	errno = 0;
	*out = strtoul(v, &end, 10);
	if (errno || end == v || *end || *v == '-' || *out < min || *out > max)
		return -EINVAL;
	return 0;
}

static int set_receipt_ttl(struct mount_config *c, const char *v)
{
	unsigned long n;
	int ret = parse_count(v, 1, 10ul * 365 * 86400, &n);

	c->fs.receipt_ttl = (unsigned)n;
	return ret;
}

/* Options with text (cache=DIR, s3_endpoint=URL, native=, http=, tokens=):
 * kept for the whole run (freed by serve). */
static int set_string(const char **field, const char *v)
{
	char *copy = *v ? strdup(v) : NULL;

	if (!copy)
		return -EINVAL;
	free((char *)*field);
	*field = copy;
	return 0;
}

static int set_cache(struct mount_config *c, const char *v)
{
	return set_string(&c->db.cache_dir, v);
}

static int set_s3_endpoint(struct mount_config *c, const char *v)
{
	return set_string(&c->db.s3_endpoint, v);
}

static int set_cache_size(struct mount_config *c, const char *v)
{
	return parse_size(v, &c->db.cache_size, false);
}

static int set_remote_ttl(struct mount_config *c, const char *v)
{
	unsigned long n;
	int ret = parse_count(v, 1, 3600, &n);

	c->db.remote_ttl_ms = (unsigned)n * 1000;
	return ret;
}

static int set_upload_threads(struct mount_config *c, const char *v)
{
	unsigned long n;
	int ret = parse_count(v, 1, 64, &n);

	c->db.upload_threads = (unsigned)n;
	return ret;
}

static int set_native(struct mount_config *c, const char *v)
{
	return set_string(&c->native, v);
}

static int set_http(struct mount_config *c, const char *v)
{
	return set_string(&c->http, v);
}

static int set_tokens(struct mount_config *c, const char *v)
{
	return set_string(&c->tokens, v);
}

static int set_http_public(struct mount_config *c, const char *v)
{
	(void)v;
	c->http_public = true;
	return 0;
}

static int set_rehash(struct mount_config *c, const char *v)
{
	(void)v;
	c->db.rehash = true;
	return 0;
}

static int set_sync(struct mount_config *c, const char *v)
{
	(void)v;
	c->fs.sync = true;
	return 0;
}

static int set_async(struct mount_config *c, const char *v)
{
	(void)v;
	c->fs.sync = false;
	return 0;
}

/* The defaults the help text states. */
_Static_assert(PACK_SIZE_MAX_DEFAULT == UINT64_C(64) << 20, "pack_size default: update the help");
_Static_assert(LARGE_BLOB_MIN_DEFAULT == UINT64_C(1) << 20, "large_blob default: update the help");
_Static_assert(LARGE_BLOB_MIN_MAX == UINT64_C(16) << 20, "large_blob maximum: update the help");
_Static_assert(MEMORY_MAX_DEFAULT_PERCENT == 25, "memory_max default: update the help");
_Static_assert(WRITER_MEMORY_DEFAULT == UINT64_C(64) << 20, "writer_memory default: update the help");
_Static_assert(FLUSH_INTERVAL_MS_DEFAULT == 1000, "the flush interval: update the help");
_Static_assert(RECEIPT_TTL_DEFAULT == 3600, "receipt_ttl default: update the help");
_Static_assert(RECEIPT_MAX_DEFAULT == 100000, "receipt_max default: update the help");
_Static_assert(NODE_MAX_DEFAULT == 50000, "node_max default: update the help");
_Static_assert(HANDLE_MAX_DEFAULT == 8192, "handle_max default: update the help");
_Static_assert(STORE_MAX_DEFAULT == 10000, "store_max default: update the help");

#define THREADS_DEFAULT_MIN 2
#define THREADS_DEFAULT_MAX 16

/*
 * blobfs's own -o options. To add one: a setter above (none for a count
 * into a size_t field: its offset and bounds), a line here (the help text
 * says what it does and its default), and the same in the man page
 * (docs/blobfs.1) and the README.
 */
#define COUNT_AT(field, min, max) \
	.count_at = offsetof(struct mount_config, field), .count_min = (min), .count_max = (max)

static const struct mount_option {
	const char *name;
	const char *arg; /* "SIZE" for name=SIZE; NULL for a flag */
	int (*set)(struct mount_config *c, const char *value);
	const char *help; /* lines of --help */
	/* name=N where N is a count into a size_t field (set is NULL): the
	 * field's offset in struct mount_config and the bounds of N. */
	size_t count_at;
	unsigned long count_min, count_max;
} mount_options[] = {
	{ .name = "pack_size", .arg = "SIZE", .set = set_pack_size,
	  .help = "largest pack small blobs are appended to\n(default 64M; K, M, G suffixes)" },
	{ .name = "large_blob", .arg = "SIZE", .set = set_large_blob,
	  .help = "blobs of this size or more get a pack of their\nown, written in place "
	  "(default 1M, at most 16M)" },
	{ .name = "compress", .arg = "zstd[:LEVEL]|none", .set = set_compress,
	  .help = "compress new blobs chunk by chunk with zstd at\nLEVEL 1-19 (default 3); a chunk that does "
	  "not\nshrink is stored raw (default: none)" },
	{ .name = "sync", .arg = NULL, .set = set_sync,
	  .help = "close() and unlink() return once the change is\non stable storage (concurrent "
	  "writers share\nthe flushes); default: within 1 second" },
	{ .name = "async", .arg = NULL, .set = set_async, .help = "the default: undoes sync" },
	{ .name = "rehash", .arg = NULL, .set = set_rehash,
	  .help = "check the SHA-256 of a blob of 1 MiB or more\nread whole every time, not only the first "
	  "time\nsince the mount (each chunk's CRC32C is\nchecked on every read either way; local and\n"
	  "s3:// stores)" },
	{ .name = "threads", .arg = "N", .set = set_threads,
	  .help = "requests served at once, 1 to 256 (default: one\nper CPU, at least 2, at most 16)" },
	{ .name = "memory_max", .arg = "SIZE", .set = set_memory_max,
	  .help = "memory: the most bytes of blobs held; saves\nbeyond it fail with ENOSPC "
	  "(default 25% of\nthe RAM)" },
	{ .name = "writer_memory", .arg = "SIZE", .set = set_writer_memory,
	  .help = "the most bytes of files being written that the\ndaemon holds in memory, all "
	  "files together;\nbeyond it a file goes to its staging file on\nthe disk "
	  "(default 64M)" },
	{ .name = "receipt_ttl", .arg = "SECONDS", .set = set_receipt_ttl,
	  .help = "how long a closed file's name stays in\nincoming/ as a receipt (default 3600)" },
	{ .name = "receipt_max", .arg = "N",
	  .help = "the most names (receipts, files being written,\ndirectories) in all incoming/ "
	  "trees; at the\nbound the oldest receipt goes early (default\n100000)",
	  COUNT_AT(fs.receipt_max, 1, 100000000) },
	{ .name = "node_max", .arg = "N",
	  .help = "blob names the kernel may hold before it is\nasked to forget the least recently "
	  "used; at\nfour times as many, lookups of others fail\nwith ENFILE (default 50000)",
	  COUNT_AT(fs.node_max, 16, 100000000) },
	{ .name = "handle_max", .arg = "N",
	  .help = "open files and directories at once (beyond:\nENFILE); a user other than root and "
	  "the\nmounting user holds at most a quarter (beyond:\nEMFILE) (default 8192)",
	  COUNT_AT(fs.handle_max, 16, 1000000) },
	{ .name = "store_max", .arg = "N",
	  .help = "the most stores; creating one more fails with\nENOSPC (default 10000)",
	  COUNT_AT(db.store_max, 1, 100000000) },
	{ .name = "cache", .arg = "DIR", .set = set_cache,
	  .help = "s3://: the cache directory (the outbox of\nblobs not yet uploaded, and blobs read);\n"
	  "default ~/.cache/blobfs/s3-BUCKET-ID" },
	{ .name = "cache_size", .arg = "SIZE", .set = set_cache_size,
	  .help = "s3://: the most bytes of blobs the cache holds\n(default 4G)" },
	{ .name = "s3_endpoint", .arg = "URL", .set = set_s3_endpoint,
	  .help = "s3://: the object store's http(s)://HOST[:PORT]\n(default: AWS_ENDPOINT_URL)" },
	{ .name = "remote_ttl", .arg = "SECONDS", .set = set_remote_ttl,
	  .help = "s3://: how long an answer of the object store\nis trusted: a blob deleted or saved "
	  "through\nanother mount shows here within it (default 10)" },
	{ .name = "upload_threads", .arg = "N", .set = set_upload_threads,
	  .help = "s3://: uploads at once, 1 to 64 (default 32)" },
	{ .name = "native", .arg = "ADDR", .set = set_native,
	  .help = "also serve the native protocol on ADDR:\nunix:PATH (clients act as their own "
	  "user) or\nHOST:PORT (anonymous clients: read only)\n(default: none)" },
	{ .name = "http", .arg = "ADDR", .set = set_http,
	  .help = "also serve the HTTP API on ADDR: HOST:PORT\n(clients with a token act as it "
	  "says, others\nread only, from loopback only) or unix:PATH\n(default: none)" },
	{ .name = "tokens", .arg = "FILE", .set = set_tokens,
	  .help = "the HTTP API's bearer tokens (mode 0600; read\nagain on SIGHUP)" },
	{ .name = "http_public", .arg = NULL, .set = set_http_public,
	  .help = "HTTP clients without a token may read from any\naddress, not only loopback" },
	{ .name = "min_free", .arg = "SIZE", .set = set_min_free,
	  .help = "space saves leave free on the disk, kept for\ndeletes and compaction "
	  "(default 1% of the\ndisk, at most 64M; 0 for none)" },
};

/*
 * Options of mount(8), /etc/fstab and mount.fuse3 that mean nothing to
 * blobfs and that libfuse would refuse: accepted and ignored, so that any
 * fstab line works (mount(8) passes the atime and lazytime ones on; the
 * others matter only to mount(8) and mount.fuse3, which normally remove
 * them). blobfs has no symlinks, no atimes, no i_version, no locks.
 * x-* (userspace options such as x-systemd.*) and comment=* too.
 */
static const char *const ignored_options[] = {
	"defaults", "auto", "noauto", "user", "nouser", "users", "owner", "group",
	"nofail", "_netdev", "relatime", "norelatime", "strictatime", "nostrictatime",
	"diratime", "nodiratime", "lazytime", "nolazytime", "iversion", "noiversion",
	"silent", "loud", "mand", "nomand", "symfollow", "nosymfollow",
};

static bool is_ignored(const char *opt)
{
	if (!strncmp(opt, "x-", 2) || !strncmp(opt, "comment=", 8))
		return true;
	for (size_t i = 0; i < sizeof(ignored_options) / sizeof(*ignored_options); i++)
		if (!strcmp(opt, ignored_options[i]))
			return true;
	return false;
}

void cli_mount_options_help(FILE *out)
{
	for (size_t i = 0; i < sizeof(mount_options) / sizeof(*mount_options); i++) {
		const struct mount_option *o = &mount_options[i];
		char left[64];
		const char *line = o->help;

		snprintf(left, sizeof(left), "%s%s%s", o->name, o->arg ? "=" : "",
			 o->arg ? o->arg : "");
		if (strlen(left) > 18) /* too long for the column: help on the next line */
			fprintf(out, "       %s\n%26s", left, "");
		else
			fprintf(out, "       %-18s ", left);
		for (;;) {
			const char *nl = strchr(line, '\n');
			int n = nl ? (int)(nl - line) : (int)strlen(line);
			fprintf(out, "%.*s\n", n, line);
			if (!nl)
				break;
			line = nl + 1;
			fprintf(out, "%26s", "");
		}
	}
}

static int apply_value(const struct mount_option *o, struct mount_config *c, const char *v)
{
	unsigned long n;
	int ret;

	if (o->set)
		return o->set(c, o->arg ? v : NULL);
	ret = parse_count(v, o->count_min, o->count_max, &n);
	if (ret == 0)
		*(size_t *)((char *)c + o->count_at) = n;
	return ret;
}

/* One option of an -o list: ours (the table), ignored, or libfuse's. */
static int apply_option(char *opt, struct mount_config *c, struct fuse_args *args)
{
	size_t len = strcspn(opt, "=");

	for (size_t i = 0; i < sizeof(mount_options) / sizeof(*mount_options); i++) {
		const struct mount_option *o = &mount_options[i];
		if (strlen(o->name) != len || strncmp(opt, o->name, len))
			continue;
		if ((o->arg != NULL) != (opt[len] == '=') || apply_value(o, c, opt + len + 1) < 0) {
			fprintf(stderr, "blobfs: bad value in -o %s%s%s\n", opt,
				o->arg ? ": expected " : "", o->arg ? o->arg : "");
			return -EINVAL;
		}
		return 0;
	}
	if (is_ignored(opt))
		return 0;
	if (fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, opt) < 0)
		return -ENOMEM;
	/* Other users reach the mount: the kernel checks their access against
	 * the owners and modes blobfs shows (README, Security). */
	if (!strcmp(opt, "allow_other") &&
	    (fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, "default_permissions") < 0))
		return -ENOMEM;
	if (!strcmp(opt, "allow_other"))
		c->allow_other = true;
	return 0;
}

/* Splits a copy of the list: argv stays as given (ps shows it). */
static int parse_mount_options(const char *list, struct mount_config *c, struct fuse_args *args)
{
	char *copy = strdup(list), *saveptr = NULL;
	int ret = copy ? 0 : -ENOMEM;

	for (char *opt = copy ? strtok_r(copy, ",", &saveptr) : NULL; opt && ret == 0;
	     opt = strtok_r(NULL, ",", &saveptr))
		ret = apply_option(opt, c, args);
	free(copy);
	return ret;
}

/* Without the word "mount", the first operand must look like a data
 * directory; otherwise `blobfs hsah FILE` would mount a new data directory
 * called hsah on FILE. */
static bool looks_like_datadir(const char *word)
{
	struct stat st;

	return !strncmp(word, MEMORY_LOCATION, strlen(MEMORY_LOCATION)) ||
	       !strncmp(word, S3_LOCATION_PREFIX, strlen(S3_LOCATION_PREFIX)) || strchr(word, '/') ||
	       (stat(word, &st) == 0 && S_ISDIR(st.st_mode));
}

/* The mount point must be an existing directory (its absolute path goes to
 * resolved), or /dev/fd/N: mount.fuse3 -o drop_privileges mounts by itself
 * and hands over the FUSE device so, which libfuse takes as it is. */
static int check_mountpoint(const char *arg, char resolved[PATH_MAX])
{
	struct stat st;
	unsigned fd;
	char extra;

	if (sscanf(arg, "/dev/fd/%u%c", &fd, &extra) == 1) {
		snprintf(resolved, PATH_MAX, "%s", arg);
		return 0;
	}
	if (stat(arg, &st) < 0) {
		fprintf(stderr, "blobfs: mount point %s: %s\n", arg, strerror(errno));
		return -ENOENT;
	}
	if (!S_ISDIR(st.st_mode)) {
		fprintf(stderr, "blobfs: mount point %s is not a directory\n", arg);
		return -ENOTDIR;
	}
	if (!realpath(arg, resolved)) {
		fprintf(stderr, "blobfs: mount point %s: %s\n", arg, strerror(errno));
		return -errno;
	}
	return 0;
}

/* Every incoming file that spilled to the disk holds a descriptor: the soft
 * limit on descriptors goes up to the hard one (systemd's default soft limit
 * is 1024, its hard one 524288), so that the bound is the hard limit. An
 * open handle may take two (an open blob, or a file's staging file and its
 * pack), and stores being written one each: a limit below twice handle_max
 * can run out before handle_max does, which is said at mount. */
static void raise_nofile_limit(size_t handle_max)
{
	struct rlimit lim;

	if (getrlimit(RLIMIT_NOFILE, &lim) < 0)
		return;
	if (lim.rlim_cur < lim.rlim_max) {
		lim.rlim_cur = lim.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &lim) < 0) {
			log_warning("cannot raise the limit on open files: %s", strerror(errno));
			getrlimit(RLIMIT_NOFILE, &lim);
		}
	}
	if (lim.rlim_cur != RLIM_INFINITY && lim.rlim_cur < 2 * (rlim_t)handle_max + 1024)
		log_warning("the limit on open files (%llu) is below twice handle_max (%zu) and "
			    "some: opens may fail with ENFILE before handle_max is reached",
			    (unsigned long long)lim.rlim_cur, handle_max);
}

/* A change made over the network: the mount's kernel forgets the name
 * (once the session exists: changes before it have nothing to forget). */
static void network_changed(void *arg, const char *store, const uint8_t *hash)
{
	struct fs_session *session = *(struct fs_session **)arg;

	if (session)
		fs_session_forget(session, store, hash);
}

/* Opens the database, mounts (unless mountpoint is NULL: blobfs serve),
 * starts the native server if asked, daemonizes (a mount without -f) and
 * serves until unmounted or signalled: the exit status. */
static int serve(const char *location, const char *mountpoint, struct mount_config *c,
		 struct fuse_args *args)
{
	struct blobdb *db = NULL;
	struct fs_session *session = NULL;
	struct cli_servers servers = { 0 };
	struct cli_servers_config scfg = {
		.native = c->native, .http = c->http, .tokens = c->tokens,
		.http_public = c->http_public, .world = c->allow_other, .sync = c->fs.sync,
		.changed = network_changed, .changed_arg = &session,
	};
	char fsname[PATH_MAX + 32];
	int ret = 1, checked;

	if (c->fs.debug) {
		log_set_level(LOG_LEVEL_DEBUG);
		if (fuse_opt_add_arg(args, "-d") < 0)
			goto out;
	}
	raise_nofile_limit(c->fs.handle_max);
	/* A data directory other users can change is refused (the store layer
	 * said which directory and why): a wrong command line, status 2. */
	checked = blobdb_check_location(location);
	if (checked < 0) {
		ret = checked == -EPERM ? EXIT_USAGE : 1;
		goto out;
	}
	if (c->db.compress && !strncmp(location, MEMORY_LOCATION, strlen(MEMORY_LOCATION)))
		log_warning("-o compress has no effect on memory: (blobs there are kept as they are)");
	/* On an object store, -o sync means the object store has the blob. */
	if (!strncmp(location, S3_LOCATION_PREFIX, strlen(S3_LOCATION_PREFIX)))
		c->db.s3_sync = c->fs.sync;
	if (blobdb_open(location, &c->db, &db) < 0)
		goto out; /* the store layer said why */
	/* Listening before the fork: an address in use fails the command, and
	 * the socket is ready when it returns. */
	if (cli_servers_listen(&servers, db, &scfg) < 0)
		goto out;
	if (!mountpoint) {
		/* Blocked before any thread starts, so that this one takes them. */
		cli_servers_block_signals();
		if (blobdb_start(db) < 0 || cli_servers_start(&servers, false) < 0)
			goto out;
		cli_servers_wait(&servers);
		ret = 0;
		goto out;
	}
	/* SIGHUP reloads the tokens rather than unmount (libfuse's handler). */
	cli_servers_block_reload(&servers);
	snprintf(fsname, sizeof(fsname), "fsname=%s,subtype=blobfs", blobdb_path(db));
	if (fuse_opt_add_arg(args, "-o") < 0 || fuse_opt_add_arg(args, fsname) < 0)
		goto out;
	if (fs_session_start(db, mountpoint, args, &c->fs, &session) < 0)
		goto out;
	/* Daemonize once mounted, so that the mount is ready when the command
	 * returns, and before blobdb_start: a fork keeps only the calling
	 * thread. */
	if (!c->fs.foreground) {
		if (fuse_daemonize(0) != 0)
			goto out;
		log_to_syslog(true);
		blobdb_note_pid(db);
	}
	if (blobdb_start(db) < 0 || cli_servers_start(&servers, true) < 0)
		goto out;
	ret = fs_session_loop(session) == 0 ? 0 : 1;
out:
	cli_servers_stop(&servers);
	fs_session_stop(session);
	/* The last flush happens here: its failure is the daemon's failure
	 * (already logged). */
	if (blobdb_close(db) < 0)
		ret = 1;
	free((char *)c->db.cache_dir);
	free((char *)c->db.s3_endpoint);
	free((char *)c->native);
	free((char *)c->http);
	free((char *)c->tokens);
	c->db.cache_dir = c->db.s3_endpoint = NULL;
	c->native = c->http = c->tokens = NULL;
	return ret;
}

/* mount and serve: the same options; serve takes LOCATION alone and needs
 * a server to run (-o http=ADDR or native=ADDR). */
static int run(int argc, char **argv, bool plain, bool serve_only)
{
	static const struct option long_options[] = {
		{ "foreground", no_argument, NULL, 'f' },
		{ "debug", no_argument, NULL, 'd' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct mount_config config = { 0 };
	char mountpoint[PATH_MAX];
	int c, ret = EXIT_USAGE;

	blobdb_options_default(&config.db);
	/* One worker per CPU: more only adds wakeups between threads for each
	 * request (measured: 3000 small files 0.46 s with 2, 1.07 s with 16). */
	long cpus = sysconf(_SC_NPROCESSORS_ONLN);
	config.fs.threads = cpus < THREADS_DEFAULT_MIN ? THREADS_DEFAULT_MIN :
			    cpus > THREADS_DEFAULT_MAX ? THREADS_DEFAULT_MAX : (unsigned)cpus;
	config.fs.receipt_ttl = RECEIPT_TTL_DEFAULT;
	config.fs.receipt_max = RECEIPT_MAX_DEFAULT;
	config.fs.node_max = NODE_MAX_DEFAULT;
	config.fs.handle_max = HANDLE_MAX_DEFAULT;
	if (fuse_opt_add_arg(&args, argv[0]) < 0) {
		ret = 1;
		goto out;
	}
	while ((c = getopt_long(argc, argv, "fdo:hV", long_options, NULL)) != -1) {
		switch (c) {
		case 'f':
			config.fs.foreground = true;
			break;
		case 'd':
			config.fs.foreground = config.fs.debug = true;
			break;
		case 'o':
			if (parse_mount_options(optarg, &config, &args) < 0)
				goto out;
			break;
		case 'h':
			cli_usage(stdout);
			ret = 0;
			goto out;
		case 'V':
			printf("blobfs %s (FUSE %s)\n", BLOBFS_VERSION, fuse_pkgversion());
			ret = 0;
			goto out;
		default:
			cli_synopsis(stderr);
			goto out;
		}
	}
	if (plain && optind < argc && !looks_like_datadir(argv[optind])) {
		fprintf(stderr, "blobfs: unknown command '%s' (commands: mount, serve, fsck, compact, "
			"stat, hash; without the word mount, DATADIR must be an existing "
			"directory or contain a '/')\n", argv[optind]);
		cli_synopsis(stderr);
		goto out;
	}
	if (serve_only) {
		if (argc - optind != 1 || (!config.native && !config.http)) {
			fprintf(stderr, "blobfs serve: %s\n", argc - optind != 1 ?
				"expected one operand, the DATADIR (or memory:, s3://...)" :
				"nothing to serve: give -o http=ADDR or -o native=ADDR");
			cli_synopsis(stderr);
			goto out;
		}
		config.fs.foreground = true;
		ret = serve(argv[optind], NULL, &config, &args);
		goto out;
	}
	if (argc - optind != 2) {
		fprintf(stderr, "blobfs: %s DATADIR and MOUNTPOINT\n",
			argc - optind < 2 ? "missing" : "too many operands: expected");
		cli_synopsis(stderr);
		goto out;
	}
	if (check_mountpoint(argv[optind + 1], mountpoint) < 0)
		goto out;
	ret = serve(argv[optind], mountpoint, &config, &args);
out:
	free((char *)config.native);
	free((char *)config.http);
	free((char *)config.tokens);
	fuse_opt_free_args(&args);
	return ret;
}

int cli_mount(int argc, char **argv, bool plain)
{
	return run(argc, argv, plain, false);
}

int cli_serve(int argc, char **argv)
{
	return run(argc, argv, false, true);
}
