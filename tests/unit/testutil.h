/*
 * testutil.h - the little the unit tests share: CHECK macros that report
 * every failure (file:line and the expression) and make the test exit
 * non-zero, a seeded PRNG, and temporary directories that are removed at
 * exit whatever happened.
 *
 * Usage: call tu_init(argv0) first, wrap groups in TU_TEST("name"), and end
 * main with `return tu_finish();`. TEST_SEED=<number> in the environment
 * replaces the default PRNG seed.
 */
#ifndef BLOBFS_TESTUTIL_H
#define BLOBFS_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* Failures past this many are counted but not printed one by one. */
#define TU_MAX_REPORTS 1000

static const char *tu_name = "test";
static const char *tu_current = "(setup)";
static long tu_checks, tu_failures;
static uint64_t tu_seed_value, tu_rng_state;

static inline void tu_report(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void tu_report(const char *file, int line, const char *fmt, ...)
{
	va_list ap;

	tu_failures++;
	if (tu_failures > TU_MAX_REPORTS)
		return;
	fprintf(stderr, "%s:%d: FAILED [%s] ", file, line, tu_current);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (tu_failures == TU_MAX_REPORTS)
		fprintf(stderr, "(further failures are counted but not printed)\n");
}

static inline bool tu_check(bool ok, const char *file, int line, const char *expr)
{
	tu_checks++;
	if (!ok)
		tu_report(file, line, "CHECK(%s)", expr);
	return ok;
}

static inline bool tu_check_eq(uintmax_t a, uintmax_t b, const char *file, int line,
			       const char *ea, const char *eb)
{
	tu_checks++;
	if (a != b)
		tu_report(file, line, "CHECK_EQ(%s, %s): %jd (0x%jx) != %jd (0x%jx)", ea, eb,
			  (intmax_t)a, a, (intmax_t)b, b);
	return a == b;
}

static inline bool tu_check_mem(const void *a, const void *b, size_t n, const char *file,
				int line, const char *ea, const char *eb)
{
	const unsigned char *x = a, *y = b;

	tu_checks++;
	if (n == 0 || !memcmp(a, b, n))
		return true;
	for (size_t i = 0; i < n; i++) {
		if (x[i] != y[i]) {
			tu_report(file, line,
				  "CHECK_MEM(%s, %s, %zu): first difference at byte %zu: 0x%02x != 0x%02x",
				  ea, eb, n, i, x[i], y[i]);
			break;
		}
	}
	return false;
}

/* Each evaluates to true when the check passed, so loops can stop early:
 * `if (!CHECK(x)) break;`. */
#define CHECK(cond) tu_check(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ(a, b) tu_check_eq((uintmax_t)(a), (uintmax_t)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_MEM(a, b, n) tu_check_mem((a), (b), (n), __FILE__, __LINE__, #a, #b)

/* For preconditions without which the rest cannot run: reports and exits. */
#define REQUIRE(cond)                                                                  \
	do {                                                                           \
		if (!CHECK(cond)) {                                                    \
			fprintf(stderr, "%s:%d: cannot continue\n", __FILE__, __LINE__); \
			exit(tu_finish());                                             \
		}                                                                      \
	} while (0)

#define TU_TEST(name)                                                          \
	do {                                                                   \
		tu_current = (name);                                           \
		fprintf(stderr, "-- %s\n", tu_current);                        \
	} while (0)

/* ---- pseudo-random numbers (splitmix64) ---- */

static inline uint64_t tu_rand(void)
{
	uint64_t z = (tu_rng_state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

/* Uniform in [0, n); n > 0. */
static inline uint64_t tu_rand_below(uint64_t n)
{
	return tu_rand() % n;
}

static inline void tu_fill_random(void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len >= 8) {
		uint64_t v = tu_rand();
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = tu_rand();
		memcpy(p, &v, len);
	}
}

static inline void *tu_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "out of memory (%zu bytes)\n", n);
		exit(2);
	}
	return p;
}

static inline void *tu_random_buffer(size_t n)
{
	void *p = tu_xmalloc(n);
	tu_fill_random(p, n);
	return p;
}

/* ---- temporary directories ---- */

#define TU_MAX_TMPDIRS 64
static char tu_tmpdirs[TU_MAX_TMPDIRS][PATH_MAX];
static int tu_tmpdir_count;

static inline int tu_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0 && errno != ENOENT)
		fprintf(stderr, "warning: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

/* Removes path and everything below it; absent is fine. */
static inline void tu_rmtree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return;
	nftw(path, tu_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static inline void tu_cleanup(void)
{
	while (tu_tmpdir_count > 0)
		tu_rmtree(tu_tmpdirs[--tu_tmpdir_count]);
}

static inline void tu_on_signal(int sig)
{
	tu_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Makes a fresh directory under $TMPDIR (or /tmp) that is removed at exit;
 * returns its path (valid until exit). */
static inline const char *tu_tmpdir(void)
{
	const char *base = getenv("TMPDIR");
	char *slot;

	if (!base || !*base)
		base = "/tmp";
	if (tu_tmpdir_count == TU_MAX_TMPDIRS) {
		fprintf(stderr, "too many temporary directories\n");
		exit(2);
	}
	slot = tu_tmpdirs[tu_tmpdir_count];
	snprintf(slot, PATH_MAX, "%s/blobfs-%s-XXXXXX", base, tu_name);
	if (!mkdtemp(slot)) {
		fprintf(stderr, "mkdtemp %s: %s\n", slot, strerror(errno));
		exit(2);
	}
	tu_tmpdir_count++;
	return slot;
}

/* Removes a directory made by tu_tmpdir now rather than at exit. */
static inline void tu_tmpdir_remove(const char *path)
{
	for (int i = 0; i < tu_tmpdir_count; i++) {
		if (!strcmp(tu_tmpdirs[i], path)) {
			tu_rmtree(tu_tmpdirs[i]);
			memmove(tu_tmpdirs[i], tu_tmpdirs[i + 1],
				(size_t)(tu_tmpdir_count - i - 1) * sizeof(tu_tmpdirs[0]));
			tu_tmpdir_count--;
			return;
		}
	}
}

/* ---- small file helpers ---- */

/* snprintf into a path buffer; a path that does not fit ends the test. */
static inline void tu_path(char *out, size_t size, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static inline void tu_path(char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, size, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= size) {
		fprintf(stderr, "path too long: %s...\n", out);
		exit(2);
	}
}

static inline int tu_write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	const char *p = buf;

	if (fd < 0)
		return -errno;
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0) {
			int err = errno;
			close(fd);
			return -err;
		}
		p += n;
		len -= (size_t)n;
	}
	return close(fd) < 0 ? -errno : 0;
}

static inline int tu_append_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

/* The whole file in a malloc'd buffer (NULL on error); *len gets its size. */
static inline void *tu_read_file(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	size_t got = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		close(fd);
		return NULL;
	}
	buf = tu_xmalloc((size_t)st.st_size);
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	close(fd);
	*len = got;
	return buf;
}

static inline long long tu_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : (long long)st.st_size;
}

static inline bool tu_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* ---- child processes ---- */

#include <sys/resource.h>
#include <sys/wait.h>

/*
 * Runs fn(arg) in a child process with a time limit, so that a crash, an
 * abort (a sanitizer's too) or a hang is reported as a failure of this
 * check rather than ending the whole test. The child's own CHECK failures
 * are printed by the child; returns true when it passed.
 */
static inline bool tu_run_child_at(const char *file, int line, void (*fn)(void *), void *arg,
				   unsigned timeout_s)
{
	int status = 0;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	pid = fork();
	if (pid < 0) {
		tu_report(file, line, "fork: %s", strerror(errno));
		return false;
	}
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		setrlimit(RLIMIT_CORE, &no_core);
		alarm(timeout_s);
		tu_failures = 0;
		fn(arg);
		fflush(stdout);
		fflush(stderr);
		_exit(tu_failures ? 1 : 0); /* no atexit: the parent owns the temp dirs */
	}
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	tu_checks++;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return true;
	if (WIFSIGNALED(status))
		tu_report(file, line, "child process killed by signal %d (%s)%s", WTERMSIG(status),
			  strsignal(WTERMSIG(status)),
			  WTERMSIG(status) == SIGALRM ? ": time limit reached" : "");
	else
		tu_report(file, line, "child process failed (exit status %d)",
			  WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return false;
}

#define TU_RUN_CHILD(fn, arg, timeout_s) tu_run_child_at(__FILE__, __LINE__, (fn), (arg), (timeout_s))

/* ---- start and end ---- */

static inline void tu_init(const char *argv0)
{
	const char *seed = getenv("TEST_SEED");
	const char *slash = strrchr(argv0, '/');

	tu_name = slash ? slash + 1 : argv0;
	tu_seed_value = seed && *seed ? strtoull(seed, NULL, 0) : UINT64_C(0x5eedb10bf5);
	tu_rng_state = tu_seed_value;
	setvbuf(stdout, NULL, _IOLBF, 0);
	atexit(tu_cleanup);
	signal(SIGTERM, tu_on_signal);
	signal(SIGINT, tu_on_signal);
	signal(SIGHUP, tu_on_signal);
	fprintf(stderr, "%s: TEST_SEED=%" PRIu64 "\n", tu_name, tu_seed_value);
}

static inline int tu_finish(void)
{
	if (tu_failures) {
		fprintf(stderr, "%s: FAIL: %ld of %ld checks failed (TEST_SEED=%" PRIu64 ")\n",
			tu_name, tu_failures, tu_checks, tu_seed_value);
		return 1;
	}
	fprintf(stderr, "%s: PASS: %ld checks\n", tu_name, tu_checks);
	return 0;
}

#endif
