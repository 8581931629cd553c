/*
 * crc32c.h - CRC32C (Castagnoli), the checksum of every on-disk structure.
 */
#ifndef BLOBFS_CRC32C_H
#define BLOBFS_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extends crc (start with 0) over len bytes; crc32c(0, "123456789", 9) is
 * 0xe3069283. */
uint32_t crc32c(uint32_t crc, const void *buf, size_t len);

/* The portable table-driven implementation alone (what runs on CPUs
 * without SSE4.2), so that tests can check it against crc32c(). */
uint32_t crc32c_portable(uint32_t crc, const void *buf, size_t len);

#endif
