/*
 * testutil.c - the fixture library's general part (see testutil.h): checks
 * and their report (thread-safe), the PRNG, temporary directories, file
 * helpers and the child-process runner.
 */
#include "testutil.h"

#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <sys/resource.h>
#include <sys/wait.h>

/* Failures past this many are counted but not printed one by one. */
#define TU_MAX_REPORTS 1000

static const char *tu_name = "test";
/* Checks may run in several threads at once: the counters and the group's
 * name are atomic, and each report is one write to stderr. */
static _Atomic(const char *) tu_current = "(setup)";
static atomic_long tu_checks, tu_failures;
static long tu_child_checks;
static uint64_t tu_seed_value;
static pid_t tu_owner; /* the process that removes the temporary directories */
static struct tu_rng tu_default_rng;
/* Threaded tests draw from it too: one draw at a time (the sequence of a
 * threaded test then depends on the schedule, not just the seed). */
static pthread_mutex_t tu_default_rng_lock = PTHREAD_MUTEX_INITIALIZER;

/* ---- checks ---- */

void tu_report(const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	long n = atomic_fetch_add(&tu_failures, 1) + 1;

	if (n > TU_MAX_REPORTS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s:%d: FAILED [%s] %s\n%s", file, line, atomic_load(&tu_current), msg,
		n == TU_MAX_REPORTS ? "(further failures are counted but not printed)\n" : "");
}

bool tu_check(bool ok, const char *file, int line, const char *expr)
{
	atomic_fetch_add(&tu_checks, 1);
	if (!ok)
		tu_report(file, line, "CHECK(%s)", expr);
	return ok;
}

/* ", <strerror>" for what looks like a negative errno, else "". */
static const char *errno_hint(intmax_t v)
{
	static _Thread_local char buf[80];

	if (v >= 0 || v <= -4096)
		return "";
	snprintf(buf, sizeof(buf), ", %s", strerror((int)-v));
	return buf;
}

bool tu_check_eq(uintmax_t a, uintmax_t b, const char *file, int line, const char *ea,
		 const char *eb)
{
	atomic_fetch_add(&tu_checks, 1);
	if (a != b)
		tu_report(file, line, "CHECK_EQ(%s, %s): %jd (0x%jx%s) != %jd (0x%jx%s)", ea, eb,
			  (intmax_t)a, a, errno_hint((intmax_t)a), (intmax_t)b, b,
			  errno_hint((intmax_t)b));
	return a == b;
}

bool tu_check_mem(const void *a, const void *b, size_t n, const char *file, int line,
		  const char *ea, const char *eb)
{
	const unsigned char *x = a, *y = b;

	atomic_fetch_add(&tu_checks, 1);
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

void tu_test(const char *name)
{
	atomic_store(&tu_current, name);
	fprintf(stderr, "-- %s\n", name);
}

/* ---- pseudo-random numbers ---- */

void tu_rng_seed(struct tu_rng *rng, uint64_t seed)
{
	rng->state = seed;
}

uint64_t tu_rng_next(struct tu_rng *rng)
{
	uint64_t z = (rng->state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

uint64_t tu_rng_below(struct tu_rng *rng, uint64_t n)
{
	return tu_rng_next(rng) % n;
}

void tu_rng_shuffle(struct tu_rng *rng, size_t *order, size_t n)
{
	for (size_t i = 0; i < n; i++)
		order[i] = i;
	for (size_t i = n; i > 1; i--) {
		size_t j = (size_t)tu_rng_below(rng, i), t = order[i - 1];
		order[i - 1] = order[j];
		order[j] = t;
	}
}

void *tu_rng_buffer(struct tu_rng *rng, size_t n)
{
	void *p = tu_xmalloc(n);

	tu_rng_fill(rng, p, n);
	return p;
}

void tu_rng_fill(struct tu_rng *rng, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len >= 8) {
		uint64_t v = tu_rng_next(rng);
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = tu_rng_next(rng);
		memcpy(p, &v, len);
	}
}

uint64_t tu_rand(void)
{
	uint64_t v;

	pthread_mutex_lock(&tu_default_rng_lock);
	v = tu_rng_next(&tu_default_rng);
	pthread_mutex_unlock(&tu_default_rng_lock);
	return v;
}

uint64_t tu_rand_below(uint64_t n)
{
	uint64_t v;

	pthread_mutex_lock(&tu_default_rng_lock);
	v = tu_rng_below(&tu_default_rng, n);
	pthread_mutex_unlock(&tu_default_rng_lock);
	return v;
}

void tu_fill_kind(uint8_t *p, uint64_t n, char kind)
{
	static const char letters[8] = { 'e', 't', 'a', 'o', 'i', 'n', ' ', 's' };

	if (kind == 'z') {
		memset(p, 0, (size_t)n);
	} else if (kind == 'r') {
		tu_fill_random(p, (size_t)n);
	} else {
		for (uint64_t i = 0; i < n; i += 21) {
			uint64_t bits = tu_rand();
			for (uint64_t j = i; j < n && j < i + 21; j++, bits >>= 3)
				p[j] = (uint8_t)letters[bits & 7];
		}
	}
}

void tu_fill_random(void *buf, size_t len)
{
	pthread_mutex_lock(&tu_default_rng_lock);
	tu_rng_fill(&tu_default_rng, buf, len);
	pthread_mutex_unlock(&tu_default_rng_lock);
}

void tu_shuffle(size_t *order, size_t n)
{
	pthread_mutex_lock(&tu_default_rng_lock);
	tu_rng_shuffle(&tu_default_rng, order, n);
	pthread_mutex_unlock(&tu_default_rng_lock);
}

void *tu_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "out of memory (%zu bytes)\n", n);
		exit(2);
	}
	return p;
}

void *tu_random_buffer(size_t n)
{
	void *p;

	pthread_mutex_lock(&tu_default_rng_lock);
	p = tu_rng_buffer(&tu_default_rng, n);
	pthread_mutex_unlock(&tu_default_rng_lock);
	return p;
}

/* ---- temporary directories ---- */

#define TU_MAX_TMPDIRS 64
static char tu_tmpdirs[TU_MAX_TMPDIRS][PATH_MAX];
static int tu_tmpdir_count;

static int tu_rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0 && errno != ENOENT)
		fprintf(stderr, "warning: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

void tu_rmtree(const char *path)
{
	struct stat st;

	if (lstat(path, &st) < 0)
		return;
	nftw(path, tu_rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void tu_cleanup(void)
{
	if (getpid() != tu_owner)
		return; /* a child process (TU_RUN_CHILD) leaving through exit() */
	while (tu_tmpdir_count > 0)
		tu_rmtree(tu_tmpdirs[--tu_tmpdir_count]);
}

static void tu_on_signal(int sig)
{
	tu_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

const char *tu_tmpdir(void)
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

/* ---- small file helpers ---- */

void tu_path(char *out, size_t size, const char *fmt, ...)
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

int tu_write_file(const char *path, const void *buf, size_t len)
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

int tu_append_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return -errno;
	n = write(fd, buf, len);
	close(fd);
	return n == (ssize_t)len ? 0 : -EIO;
}

void *tu_read_file(const char *path, size_t *len)
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

char *tu_capture_stderr(void (*fn)(void *), void *arg)
{
	char path[PATH_MAX];
	char *text;
	size_t len;
	int fd, saved;

	tu_path(path, sizeof(path), "%s/captured-stderr", tu_tmpdir());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	REQUIRE(fd >= 0);
	fflush(stderr);
	saved = dup(STDERR_FILENO);
	REQUIRE(saved >= 0 && dup2(fd, STDERR_FILENO) >= 0);
	close(fd);
	fn(arg);
	fflush(stderr);
	REQUIRE(dup2(saved, STDERR_FILENO) >= 0);
	close(saved);
	text = tu_read_file(path, &len);
	REQUIRE(text != NULL);
	text = realloc(text, len + 1);
	REQUIRE(text != NULL);
	text[len] = '\0';
	return text;
}

long long tu_file_size(const char *path)
{
	struct stat st;

	return stat(path, &st) < 0 ? -1 : (long long)st.st_size;
}

bool tu_exists(const char *path)
{
	struct stat st;

	return lstat(path, &st) == 0;
}

/* Reads (write false) or writes len bytes at off of path: the file opens,
 * and all of them are transferred (two checks). */
static void tu_io_at(const char *path, bool write, uint64_t off, void *buf, size_t len)
{
	int fd = open(path, (write ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
	size_t done = 0;

	REQUIRE(fd >= 0);
	while (done < len) {
		ssize_t n = write ? pwrite(fd, (char *)buf + done, len - done, (off_t)(off + done)) :
				    pread(fd, (char *)buf + done, len - done, (off_t)(off + done));
		if (n <= 0)
			break;
		done += (size_t)n;
	}
	close(fd);
	REQUIRE(done == len);
}

void tu_read_at(const char *path, uint64_t off, void *buf, size_t len)
{
	tu_io_at(path, false, off, buf, len);
}

void tu_patch_file(const char *path, uint64_t off, const void *buf, size_t len)
{
	tu_io_at(path, true, off, (void *)buf, len);
}

void tu_xor_byte(const char *path, uint64_t off, uint8_t mask)
{
	uint8_t b;

	tu_read_at(path, off, &b, 1);
	b ^= mask;
	tu_patch_file(path, off, &b, 1);
}

void tu_copy_file(const char *from, const char *to, size_t keep)
{
	size_t len;
	uint8_t *buf = tu_read_file(from, &len);

	REQUIRE(buf);
	REQUIRE(tu_write_file(to, buf, keep < len ? keep : len) == 0);
	free(buf);
}

/* ---- child processes ---- */

bool tu_run_child_at(const char *file, int line, void (*fn)(void *), void *arg,
		     unsigned timeout_s)
{
	int status = 0, pipefd[2];
	long child_checks = 0;
	pid_t pid;

	fflush(stdout);
	fflush(stderr);
	if (pipe(pipefd) < 0) {
		tu_report(file, line, "pipe: %s", strerror(errno));
		return false;
	}
	pid = fork();
	if (pid < 0) {
		tu_report(file, line, "fork: %s", strerror(errno));
		close(pipefd[0]);
		close(pipefd[1]);
		return false;
	}
	if (pid == 0) {
		struct rlimit no_core = { 0, 0 };
		close(pipefd[0]);
		setrlimit(RLIMIT_CORE, &no_core);
		alarm(timeout_s);
		atomic_store(&tu_failures, 0);
		atomic_store(&tu_checks, 0);
		fn(arg);
		fflush(stdout);
		fflush(stderr);
		/* The parent counts the child's checks too. */
		child_checks = atomic_load(&tu_checks);
		if (write(pipefd[1], &child_checks, sizeof(child_checks)) != sizeof(child_checks))
			_exit(3);
		/* No atexit: the parent owns the temporary directories. */
		_exit(atomic_load(&tu_failures) ? 1 : 0);
	}
	close(pipefd[1]);
	if (read(pipefd[0], &child_checks, sizeof(child_checks)) == sizeof(child_checks)) {
		atomic_fetch_add(&tu_checks, child_checks);
		tu_child_checks += child_checks;
	}
	close(pipefd[0]);
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	atomic_fetch_add(&tu_checks, 1);
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

/* ---- start and end ---- */

void tu_init(const char *argv0)
{
	const char *seed = getenv("TEST_SEED");
	const char *slash = strrchr(argv0, '/');

	tu_name = slash ? slash + 1 : argv0;
	tu_seed_value = seed && *seed ? strtoull(seed, NULL, 0) : UINT64_C(0x5eedb10bf5);
	tu_rng_seed(&tu_default_rng, tu_seed_value);
	tu_owner = getpid();
	setvbuf(stdout, NULL, _IOLBF, 0);
	atexit(tu_cleanup);
	signal(SIGTERM, tu_on_signal);
	signal(SIGINT, tu_on_signal);
	signal(SIGHUP, tu_on_signal);
	fprintf(stderr, "%s: TEST_SEED=%" PRIu64 "\n", tu_name, tu_seed_value);
}

uint64_t tu_seed(void)
{
	return tu_seed_value;
}

int tu_finish(void)
{
	long failures = atomic_load(&tu_failures), checks = atomic_load(&tu_checks);
	char children[64] = "";

	if (tu_child_checks)
		snprintf(children, sizeof(children), " (%ld of them in child processes)",
			 tu_child_checks);
	if (failures) {
		fprintf(stderr, "%s: FAIL: %ld of %ld checks failed%s (TEST_SEED=%" PRIu64 ")\n",
			tu_name, failures, checks, children, tu_seed_value);
		return 1;
	}
	fprintf(stderr, "%s: PASS: %ld checks%s\n", tu_name, checks, children);
	return 0;
}
