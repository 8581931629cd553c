/*
 * fs_xattr.c - extended attributes: user.blobfs.sha256 on blobs and saved
 * files (the hash of the content, 64 hex digits), user.blobfs.stat on a
 * store (its figures, the line `blobfs stat` prints), and whatever else a
 * kind answers through its getxattr operation. They are read-only: setting or
 * removing any attribute answers ENOTSUP.
 */
#include "fs_internal.h"

#include <errno.h>
#include <string.h>

#define XATTR_VALUE_MAX 4096

/* Every name some kind may answer. */
static const char *const xattr_names[] = { XATTR_SHA256, XATTR_STAT };

/* The value of name on node into buf (XATTR_VALUE_MAX bytes). */
static int xattr_value(struct fs_call *c, struct node *node, const char *name, char *buf,
		       size_t *len)
{
	int ret;

	if (strncmp(name, "user.blobfs.", 12) || !node->ops->getxattr)
		return -ENODATA;
	ret = node->ops->getxattr(c, node, name, buf, XATTR_VALUE_MAX, len);
	if (ret == 0 && *len > XATTR_VALUE_MAX)
		ret = -E2BIG;
	return ret;
}

void fs_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	struct fs_call c = call_of(req, "getxattr");
	struct node *node = node_of(c.fs, ino);
	char buf[XATTR_VALUE_MAX];
	size_t len = 0;
	int ret = xattr_value(&c, node, name, buf, &len);

	if (ret == -ENODATA)
		fuse_reply_err(req, ENODATA); /* asked of every file by many tools: no log */
	else if (ret < 0)
		reply_error(req, -ret, c.op, node, NULL, c.why);
	else if (size == 0)
		fuse_reply_xattr(req, len);
	else if (size < len)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, buf, len);
}

void fs_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	struct fs_call c = call_of(req, "listxattr");
	struct node *node = node_of(c.fs, ino);
	char list[256], value[XATTR_VALUE_MAX];
	size_t used = 0, len;

	for (size_t i = 0; i < sizeof(xattr_names) / sizeof(xattr_names[0]); i++) {
		size_t n = strlen(xattr_names[i]) + 1;
		if (xattr_value(&c, node, xattr_names[i], value, &len) == 0 &&
		    used + n <= sizeof(list)) {
			memcpy(list + used, xattr_names[i], n);
			used += n;
		}
	}
	if (size == 0)
		fuse_reply_xattr(req, used);
	else if (size < used)
		fuse_reply_err(req, ERANGE);
	else
		fuse_reply_buf(req, list, used);
}

void fs_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
		 size_t size, int flags)
{
	(void)value;
	(void)size;
	(void)flags;
	reply_error(req, ENOTSUP, "setxattr", node_of(fs_of(req), ino), NULL, name);
}

void fs_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	struct node *node = node_of(fs_of(req), ino);
	struct fs_call c = call_of(req, "removexattr");
	char value[XATTR_VALUE_MAX];
	size_t len;

	/* Removing what is not there is ENODATA, as elsewhere. */
	if (xattr_value(&c, node, name, value, &len) < 0)
		fuse_reply_err(req, ENODATA);
	else
		reply_error(req, ENOTSUP, c.op, node, NULL, name);
}
