/*
 * check.c - the contract suite's check counters, reports, PRNG fill and
 * temporary directories (see check.h).
 */
#include "check.h"

#include <dirent.h>
#include <stdarg.h>

#define CK_MAX_REPORTS 500
#define CK_MAX_TMPDIRS 8

const char *ck_group_name = "(setup)";
atomic_long ck_checks, ck_failures;
uint64_t ck_seed;
static const char *ck_name = "contract";
static char ck_tmpdirs[CK_MAX_TMPDIRS][PATH_MAX];
static int ck_ntmpdirs;

void ck_report(const char *file, int line, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	long n = atomic_fetch_add(&ck_failures, 1) + 1;

	if (n > CK_MAX_REPORTS)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	fprintf(stderr, "%s:%d: FAILED [%s] %s\n%s", file, line, ck_group_name, msg,
		n == CK_MAX_REPORTS ? "(further failures are counted, not printed)\n" : "");
}

bool ck_check(bool ok, const char *file, int line, const char *expr)
{
	atomic_fetch_add(&ck_checks, 1);
	if (!ok)
		ck_report(file, line, "CHECK(%s)", expr);
	return ok;
}

bool ck_check_eq(intmax_t a, intmax_t b, const char *file, int line, const char *ea,
		 const char *eb)
{
	atomic_fetch_add(&ck_checks, 1);
	if (a != b)
		ck_report(file, line, "CHECK_EQ(%s, %s): %jd (%s) != %jd (%s)", ea, eb, a,
			  a < 0 && a > -4096 ? strerror((int)-a) : "-", b,
			  b < 0 && b > -4096 ? strerror((int)-b) : "-");
	return a == b;
}

bool ck_check_mem(const void *a, const void *b, size_t n, const char *file, int line,
		  const char *ea, const char *eb)
{
	const unsigned char *x = a, *y = b;

	atomic_fetch_add(&ck_checks, 1);
	if (n == 0 || !memcmp(a, b, n))
		return true;
	for (size_t i = 0; i < n; i++) {
		if (x[i] != y[i]) {
			ck_report(file, line,
				  "CHECK_MEM(%s, %s, %zu): first difference at byte %zu: "
				  "0x%02x != 0x%02x", ea, eb, n, i, x[i], y[i]);
			break;
		}
	}
	return false;
}

void ck_fill(uint64_t *state, void *buf, size_t len)
{
	unsigned char *p = buf;

	while (len >= 8) {
		uint64_t v = ck_rand(state);
		memcpy(p, &v, 8);
		p += 8;
		len -= 8;
	}
	if (len) {
		uint64_t v = ck_rand(state);
		memcpy(p, &v, len);
	}
}

void *ck_xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p) {
		fprintf(stderr, "out of memory (%zu bytes)\n", n);
		exit(2);
	}
	return p;
}

void *ck_random(uint64_t *state, size_t n)
{
	void *p = ck_xmalloc(n);

	ck_fill(state, p, n);
	return p;
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	if (remove(path) < 0 && errno != ENOENT)
		fprintf(stderr, "warning: cannot remove %s: %s\n", path, strerror(errno));
	return 0;
}

static void ck_cleanup(void)
{
	while (ck_ntmpdirs > 0) {
		struct stat st;
		const char *dir = ck_tmpdirs[--ck_ntmpdirs];

		if (lstat(dir, &st) == 0)
			nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	}
}

static void ck_on_signal(int sig)
{
	ck_cleanup();
	signal(sig, SIG_DFL);
	raise(sig);
}

const char *ck_tmpdir(const char *label)
{
	const char *base = getenv("TMPDIR");
	char *slot;

	if (!base || !*base)
		base = "/tmp";
	if (ck_ntmpdirs == CK_MAX_TMPDIRS) {
		fprintf(stderr, "too many temporary directories\n");
		exit(2);
	}
	slot = ck_tmpdirs[ck_ntmpdirs];
	snprintf(slot, PATH_MAX, "%s/blobfs-%s-%s-XXXXXX", base, ck_name, label);
	if (!mkdtemp(slot)) {
		fprintf(stderr, "mkdtemp %s: %s\n", slot, strerror(errno));
		exit(2);
	}
	ck_ntmpdirs++;
	return slot;
}

int ck_dir_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *e;
	int n = 0;

	if (!d)
		return -1;
	while ((e = readdir(d)))
		n += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	return n;
}

void ck_init(const char *argv0)
{
	const char *seed = getenv("TEST_SEED");
	const char *slash = strrchr(argv0, '/');

	ck_name = slash ? slash + 1 : argv0;
	ck_seed = seed && *seed ? strtoull(seed, NULL, 0) : UINT64_C(0xc0417ac7);
	setvbuf(stdout, NULL, _IOLBF, 0);
	atexit(ck_cleanup);
	signal(SIGTERM, ck_on_signal);
	signal(SIGINT, ck_on_signal);
	signal(SIGHUP, ck_on_signal);
	fprintf(stderr, "%s: TEST_SEED=%" PRIu64 "\n", ck_name, ck_seed);
}

int ck_finish(void)
{
	long failed = atomic_load(&ck_failures), checks = atomic_load(&ck_checks);

	if (failed) {
		fprintf(stderr, "%s: FAIL: %ld of %ld checks failed (TEST_SEED=%" PRIu64 ")\n",
			ck_name, failed, checks, ck_seed);
		return 1;
	}
	fprintf(stderr, "%s: PASS: %ld checks\n", ck_name, checks);
	return 0;
}
