/*
 * crc32c.c - CRC32C with the SSE4.2 instruction where the CPU has it (three
 * lanes at once, joined by a table) and a slicing-by-8 table otherwise. The
 * choice is made once, at first use.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define POLY 0x82f63b78u /* reflected Castagnoli polynomial */

static uint32_t table[8][256];
static int have_sse42;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static uint32_t crc32c_software(uint32_t crc, const unsigned char *p, size_t len);

/* The crc32 instruction takes three cycles and can start one a cycle, so
 * the hardware path runs three lanes of LANE bytes side by side and joins
 * them: the CRC of A then B is the CRC of A moved past |B| zero bytes,
 * xored with B's CRC from zero. lane_shift moves a CRC past LANE zero bytes
 * (it is linear, so four byte tables do it). */
#if defined(__x86_64__)
#define LANE 1024
static uint32_t lane_shift[4][256];

static void lane_shift_init(void)
{
	static const unsigned char zeros[LANE];
	uint32_t basis[32];

	for (int bit = 0; bit < 32; bit++)
		basis[bit] = crc32c_software(UINT32_C(1) << bit, zeros, LANE);
	for (int k = 0; k < 4; k++)
		for (uint32_t b = 0; b < 256; b++) {
			uint32_t v = 0;
			for (int bit = 0; bit < 8; bit++)
				if (b & (1u << bit))
					v ^= basis[8 * k + bit];
			lane_shift[k][b] = v;
		}
}

static uint32_t crc32c_lane_shift(uint32_t crc)
{
	return lane_shift[0][crc & 0xff] ^ lane_shift[1][(crc >> 8) & 0xff] ^
	       lane_shift[2][(crc >> 16) & 0xff] ^ lane_shift[3][crc >> 24];
}
#endif

static void crc32c_init(void)
{
	for (uint32_t n = 0; n < 256; n++) {
		uint32_t crc = n;
		for (int k = 0; k < 8; k++)
			crc = crc & 1 ? (crc >> 1) ^ POLY : crc >> 1;
		table[0][n] = crc;
	}
	for (uint32_t n = 0; n < 256; n++)
		for (int k = 1; k < 8; k++)
			table[k][n] = (table[k - 1][n] >> 8) ^ table[0][table[k - 1][n] & 0xff];
#if defined(__x86_64__)
	__builtin_cpu_init();
	have_sse42 = __builtin_cpu_supports("sse4.2");
	if (have_sse42)
		lane_shift_init();
#endif
}

static uint32_t crc32c_software(uint32_t crc, const unsigned char *p, size_t len)
{
	while (len && ((uintptr_t)p & 7)) {
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
		len--;
	}
	while (len >= 8) {
		uint64_t word;
		memcpy(&word, p, 8);
		word ^= crc; /* little-endian hosts only, as asserted in hash.c */
		crc = table[7][word & 0xff] ^ table[6][(word >> 8) & 0xff] ^
		      table[5][(word >> 16) & 0xff] ^ table[4][(word >> 24) & 0xff] ^
		      table[3][(word >> 32) & 0xff] ^ table[2][(word >> 40) & 0xff] ^
		      table[1][(word >> 48) & 0xff] ^ table[0][word >> 56];
		p += 8;
		len -= 8;
	}
	while (len--)
		crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xff];
	return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hardware(uint32_t crc, const unsigned char *p, size_t len)
{
	uint64_t crc64 = crc;
	while (len && ((uintptr_t)p & 7)) {
		crc64 = __builtin_ia32_crc32qi((uint32_t)crc64, *p++);
		len--;
	}
	while (len >= 3 * LANE) {
		uint64_t c0 = crc64, c1 = 0, c2 = 0, w0, w1, w2;
		for (size_t i = 0; i < LANE; i += 8) {
			memcpy(&w0, p + i, 8);
			memcpy(&w1, p + LANE + i, 8);
			memcpy(&w2, p + 2 * LANE + i, 8);
			c0 = __builtin_ia32_crc32di(c0, w0);
			c1 = __builtin_ia32_crc32di(c1, w1);
			c2 = __builtin_ia32_crc32di(c2, w2);
		}
		crc64 = crc32c_lane_shift(crc32c_lane_shift((uint32_t)c0) ^ (uint32_t)c1) ^ (uint32_t)c2;
		p += 3 * LANE;
		len -= 3 * LANE;
	}
	while (len >= 8) {
		uint64_t word;
		memcpy(&word, p, 8);
		crc64 = __builtin_ia32_crc32di(crc64, word);
		p += 8;
		len -= 8;
	}
	while (len--)
		crc64 = __builtin_ia32_crc32qi((uint32_t)crc64, *p++);
	return (uint32_t)crc64;
}
#endif

uint32_t crc32c(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&init_once, crc32c_init);
	crc = ~crc;
#if defined(__x86_64__)
	if (have_sse42)
		return ~crc32c_hardware(crc, buf, len);
#endif
	return ~crc32c_software(crc, buf, len);
}

uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len)
{
	pthread_once(&init_once, crc32c_init);
	return ~crc32c_software(~crc, buf, len);
}
