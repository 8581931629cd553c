/*
 * testutil.h - the fixture library every C test links (testutil.c; the unit
 * tests and the backend contract suite): CHECK macros that report every
 * failure (file:line and the expression) and make the test exit non-zero,
 * from any thread (the counts are atomic, each report is written at once);
 * one seedable PRNG, and generators of their own (e.g. one per thread);
 * temporary directories that are removed at exit whatever happened; small
 * file helpers; and a runner for cases that can crash or hang
 * (TU_RUN_CHILD).
 *
 * Usage: call tu_init(argv0) first, wrap groups in TU_TEST("name"), and end
 * main with `return tu_finish();`. TEST_SEED=<number> in the environment
 * replaces the default PRNG seed.
 *
 * The store tests' own fixture (opening databases, checking blobs, scanning
 * packs, the io table) is storeutil.h, in the same library.
 */
#ifndef BLOBFS_TESTUTIL_H
#define BLOBFS_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* ---- checks ---- */

/* Counts a failure and prints it (the first TU_MAX_REPORTS of them). */
void tu_report(const char *file, int line, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
bool tu_check(bool ok, const char *file, int line, const char *expr);
bool tu_check_eq(uintmax_t a, uintmax_t b, const char *file, int line, const char *ea,
		 const char *eb);
bool tu_check_mem(const void *a, const void *b, size_t n, const char *file, int line,
		  const char *ea, const char *eb);

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

/* Names the group of checks that follows (failures are reported with it).
 * Called from the main thread, between groups. */
void tu_test(const char *name);
#define TU_TEST(name) tu_test(name)

/* ---- start and end ---- */

/* Names the test after argv0, seeds the PRNG (TEST_SEED), and removes the
 * temporary directories at exit and on SIGTERM / SIGINT / SIGHUP. */
void tu_init(const char *argv0);
/* Prints the verdict; returns the exit status (0: every check passed). */
int tu_finish(void);
/* The seed tu_init used (for messages that reproduce a run). */
uint64_t tu_seed(void);

/* ---- pseudo-random numbers (splitmix64) ---- */

/* A generator of its own, for a sequence that must depend only on its
 * seed (e.g. a simulation's choices, or content regenerated from a seed),
 * or for a thread (the test's generator below is not for threads). */
struct tu_rng {
	uint64_t state;
};

void tu_rng_seed(struct tu_rng *rng, uint64_t seed);
uint64_t tu_rng_next(struct tu_rng *rng);
/* Uniform in [0, n); n > 0. */
uint64_t tu_rng_below(struct tu_rng *rng, uint64_t n);
void tu_rng_fill(struct tu_rng *rng, void *buf, size_t len);
/* A malloc'd buffer of n random bytes. */
void *tu_rng_buffer(struct tu_rng *rng, size_t n);
/* order[] = 0 .. n-1 in a random order. */
void tu_rng_shuffle(struct tu_rng *rng, size_t *order, size_t n);

/* The same on the test's generator, seeded by tu_init. */
uint64_t tu_rand(void);
uint64_t tu_rand_below(uint64_t n);
void tu_fill_random(void *buf, size_t len);
/* n bytes of one kind of content: 't' text of a small alphabet (zstd takes
 * it about 2.5 to 1), 'z' zeros, 'r' random (does not compress). */
void tu_fill_kind(uint8_t *p, uint64_t n, char kind);

void tu_shuffle(size_t *order, size_t n);
void *tu_random_buffer(size_t n);

/* malloc that ends the test when memory runs out (n may be 0). */
void *tu_xmalloc(size_t n);

/* ---- temporary directories ---- */

/* Makes a fresh directory under $TMPDIR (or /tmp) that is removed at exit;
 * returns its path (valid until exit). */
const char *tu_tmpdir(void);
/* Removes path and everything below it; absent is fine. */
void tu_rmtree(const char *path);

/* ---- small file helpers ---- */

/* snprintf into a path buffer; a path that does not fit ends the test. */
void tu_path(char *out, size_t size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* 0 or -errno. */
int tu_write_file(const char *path, const void *buf, size_t len);
int tu_append_file(const char *path, const void *buf, size_t len);
/* The whole file in a malloc'd buffer (NULL on error); *len gets its size. */
void *tu_read_file(const char *path, size_t *len);
/* Runs fn(arg) with stderr going to a file; returns what it wrote, NUL
 * terminated (free it). */
char *tu_capture_stderr(void (*fn)(void *), void *arg);
long long tu_file_size(const char *path);
bool tu_exists(const char *path);
/* Exactly len bytes at off, read or written in place; anything else ends the
 * test. */
void tu_read_at(const char *path, uint64_t off, void *buf, size_t len);
void tu_patch_file(const char *path, uint64_t off, const void *buf, size_t len);
/* XORs the byte at off with mask (twice restores it). */
void tu_xor_byte(const char *path, uint64_t off, uint8_t mask);
/* Copies the first keep bytes of from (all of them if it is shorter). */
void tu_copy_file(const char *from, const char *to, size_t keep);

/* ---- child processes ---- */

/*
 * Runs fn(arg) in a child process with a time limit, so that a crash, an
 * abort (a sanitizer's too) or a hang is reported as a failure of this
 * check rather than ending the whole test. The child's own CHECK failures
 * are printed by the child, and its checks are added to the count; returns
 * true when it passed.
 */
bool tu_run_child_at(const char *file, int line, void (*fn)(void *), void *arg,
		     unsigned timeout_s);
#define TU_RUN_CHILD(fn, arg, timeout_s) tu_run_child_at(__FILE__, __LINE__, (fn), (arg), (timeout_s))

#endif
