/*
 * meta.h - the bytes of a store's meta file (docs/FORMAT.md, "The store's
 * meta file"): its owner, group and mode, in 32 checksummed bytes. Only
 * the encoding: reading and replacing the file is local_meta.c's. The
 * decoder takes untrusted bytes (tests/fuzz/fuzz_meta.c).
 */
#ifndef BLOBFS_META_H
#define BLOBFS_META_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define META_MAGIC "BLOBMETA"
#define META_VERSION 1
#define META_SIZE 32

/* Fills buf with the version-1 encoding of attr (mode masked to 07777). */
void meta_encode(const struct store_attr *attr, uint8_t buf[META_SIZE]);
/* Decodes len bytes: 0 and *out filled; -EINVAL when they are not a meta
 * file (length, magic, checksum, reserved bytes, mode bits beyond 07777);
 * -ENOTSUP for a well-formed file of a version this blobfs does not know
 * (*out untouched either way on failure). */
int meta_decode(const uint8_t *buf, size_t len, struct store_attr *out);

#endif
