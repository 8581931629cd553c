/*
 * fuzz_common.h - helpers shared by the libFuzzer targets of tests/fuzz:
 * little-endian access, an independent CRC32C (the oracle does not use the
 * code under test), a trap that libFuzzer reports as a crash, and the lax
 * switch.
 *
 * BLOBFS_FUZZ_LAX=1 in the environment makes the targets step around the
 * findings already reported (see tests/fuzz/crashers/), so that a long run
 * can look for other problems instead of stopping at the first known one:
 *   - fuzz_record: reserved header bytes are left out of the round-trip
 *     comparison (the decoders accept non-zero reserved fields);
 *   - fuzz_index: keys are kept below f1 00.., out of the region where
 *     index_put grows the table without bound.
 */
#ifndef BLOBFS_FUZZ_COMMON_H
#define BLOBFS_FUZZ_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A broken invariant: say which, then trap so libFuzzer saves the input. */
#define FUZZ_CHECK(cond)                                                                  \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__,     \
				#cond);                                                   \
			__builtin_trap();                                                 \
		}                                                                         \
	} while (0)

static inline uint32_t fz_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static inline uint64_t fz_le64(const uint8_t *p)
{
	return (uint64_t)fz_le32(p) | (uint64_t)fz_le32(p + 4) << 32;
}

static inline void fz_put32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline void fz_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* CRC32C, reflected polynomial 0x82f63b78, one table lookup per byte. */
static inline uint32_t fz_crc32c(const void *buf, size_t len)
{
	static uint32_t table[256];
	static bool ready;
	const uint8_t *p = buf;
	uint32_t crc = 0xffffffffu;

	if (!ready) {
		for (uint32_t i = 0; i < 256; i++) {
			uint32_t c = i;
			for (int k = 0; k < 8; k++)
				c = c & 1 ? c >> 1 ^ 0x82f63b78u : c >> 1;
			table[i] = c;
		}
		ready = true;
	}
	while (len--)
		crc = table[(crc ^ *p++) & 0xff] ^ crc >> 8;
	return crc ^ 0xffffffffu;
}

static inline bool fz_lax(void)
{
	static int lax = -1;

	if (lax < 0) {
		const char *v = getenv("BLOBFS_FUZZ_LAX");
		lax = v && *v && strcmp(v, "0") != 0;
	}
	return lax;
}

/* BLOBFS_FUZZ_VERBOSE=1: the targets describe what they do on stderr (for
 * looking at one input, never while fuzzing). */
static inline bool fz_verbose(void)
{
	static int verbose = -1;

	if (verbose < 0) {
		const char *v = getenv("BLOBFS_FUZZ_VERBOSE");
		verbose = v && *v && strcmp(v, "0") != 0;
	}
	return verbose;
}

#define FZ_LOG(...)                                          \
	do {                                                 \
		if (fz_verbose())                            \
			fprintf(stderr, __VA_ARGS__);        \
	} while (0)

#endif
