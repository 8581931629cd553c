/*
 * check.h - the few test helpers the contract suite needs, self-contained
 * (tests/unit/testutil.h is being reorganised; these may be merged with it
 * later). CHECK macros report file:line and the expression and make the
 * test exit non-zero; they are safe to call from several threads (atomic
 * counters, one fprintf per report). A PRNG whose state the caller owns, so
 * that every thread has its own. A temporary directory removed at exit.
 *
 * Usage: ck_init(argv0) first, CK_GROUP("name") before each group of
 * checks, `return ck_finish();` at the end of main. TEST_SEED=<number> in
 * the environment replaces the default seed.
 */
#ifndef BLOBFS_CONTRACT_CHECK_H
#define BLOBFS_CONTRACT_CHECK_H

#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

extern const char *ck_group_name;
extern atomic_long ck_checks, ck_failures;
extern uint64_t ck_seed;

void ck_init(const char *argv0);
int ck_finish(void);
void ck_report(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool ck_check(bool ok, const char *file, int line, const char *expr);
bool ck_check_eq(intmax_t a, intmax_t b, const char *file, int line, const char *ea,
		 const char *eb);
bool ck_check_mem(const void *a, const void *b, size_t n, const char *file, int line,
		  const char *ea, const char *eb);

/* Each is true when the check passed: `if (!CHECK(x)) break;`. */
#define CHECK(cond) ck_check(!!(cond), __FILE__, __LINE__, #cond)
#define CHECK_EQ(a, b) ck_check_eq((intmax_t)(a), (intmax_t)(b), __FILE__, __LINE__, #a, #b)
#define CHECK_MEM(a, b, n) ck_check_mem((a), (b), (n), __FILE__, __LINE__, #a, #b)
/* A precondition without which the rest cannot run: reports and exits. */
#define REQUIRE(cond)                                                              \
	do {                                                                       \
		if (!CHECK(cond)) {                                                \
			fprintf(stderr, "%s:%d: cannot continue\n", __FILE__, __LINE__); \
			ck_finish();                                               \
			exit(1);                                                   \
		}                                                                  \
	} while (0)

#define CK_GROUP(name)                                                   \
	do {                                                             \
		ck_group_name = (name);                                  \
		fprintf(stderr, "-- %s\n", ck_group_name);               \
	} while (0)

/* splitmix64; the caller owns the state (one per thread). */
static inline uint64_t ck_rand(uint64_t *state)
{
	uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));
	z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
	return z ^ (z >> 31);
}

static inline uint64_t ck_below(uint64_t *state, uint64_t n)
{
	return ck_rand(state) % n;
}

void ck_fill(uint64_t *state, void *buf, size_t len);
void *ck_xmalloc(size_t n);
/* A malloc'd buffer of n random bytes. */
void *ck_random(uint64_t *state, size_t n);

/* A fresh directory under $TMPDIR (or /tmp), removed with everything in it
 * at exit (also on SIGINT/SIGTERM/SIGHUP). At most 8. */
const char *ck_tmpdir(const char *label);
/* Entries of a directory besides . and ..; -1 if it cannot be read. */
int ck_dir_entries(const char *path);

#endif
