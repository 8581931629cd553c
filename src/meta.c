/*
 * meta.c - the encoding of a store's meta file (meta.h, docs/FORMAT.md).
 */
#include "meta.h"

#include <errno.h>
#include <string.h>

#include "bytes.h"
#include "crc32c.h"

void meta_encode(const struct store_attr *attr, uint8_t buf[META_SIZE])
{
	memset(buf, 0, META_SIZE);
	memcpy(buf, META_MAGIC, 8);
	put_le32(buf + 8, META_VERSION);
	put_le32(buf + 12, attr->uid);
	put_le32(buf + 16, attr->gid);
	put_le32(buf + 20, attr->mode & STORE_MODE_MASK);
	/* 24..27 reserved, zero */
	put_le32(buf + 28, crc32c(0, buf, 28));
}

int meta_decode(const uint8_t *buf, size_t len, struct store_attr *out)
{
	struct store_attr attr;

	if (len != META_SIZE || memcmp(buf, META_MAGIC, 8) ||
	    get_le32(buf + 28) != crc32c(0, buf, 28))
		return -EINVAL;
	if (get_le32(buf + 8) != META_VERSION)
		return -ENOTSUP;
	attr.uid = get_le32(buf + 12);
	attr.gid = get_le32(buf + 16);
	attr.mode = get_le32(buf + 20);
	if ((attr.mode & ~(uint32_t)STORE_MODE_MASK) || get_le32(buf + 24) != 0)
		return -EINVAL;
	*out = attr;
	return 0;
}
