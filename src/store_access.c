/*
 * store_access.c - the owner and mode rules of store.h: who may read a store
 * and add to it (store_access, store_attr_access), and who may change its
 * owner, group and mode (store_attr_set: chmod, chown, chgrp as Linux has
 * them), for every backend and every front end (the mount, and later the
 * network). The attributes themselves are the backend's (store_get_attr,
 * store_set_attr in backend.h).
 */
#include "backend.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

#define S_ISGID_BIT 02000

bool caller_in_group(const struct caller *who, uint32_t gid)
{
	if (who->gid == gid)
		return true;
	for (size_t i = 0; i < who->group_count; i++)
		if (who->groups[i] == gid)
			return true;
	return false;
}

int store_attr_access(const struct store_attr *attr, const struct caller *who, int mask)
{
	unsigned bits;

	mask &= R_OK | W_OK | X_OK;
	if (who->uid == 0)
		return 0;
	if (who->uid == attr->uid)
		bits = (attr->mode >> 6) & 7;
	else if (caller_in_group(who, attr->gid))
		bits = (attr->mode >> 3) & 7;
	else
		bits = attr->mode & 7;
	/* R_OK, W_OK, X_OK are 4, 2, 1: the same bits as rwx. */
	return ((unsigned)mask & ~bits) ? -EACCES : 0;
}

int store_attr_get(struct store *store, struct store_attr *out)
{
	memset(out, 0, sizeof(*out));
	return blobdb_to_status(store->db->ops->store_get_attr(store, out));
}

int store_access(struct store *store, const struct caller *who, int mask)
{
	struct store_attr attr;
	int ret = store_attr_get(store, &attr);

	return ret < 0 ? ret : store_attr_access(&attr, who, mask);
}

/* The chmod/chown rules: fills *next from cur and want, or -EPERM. */
static int attr_change(const struct store_attr *cur, const struct caller *who, int what,
		       const struct store_attr *want, struct store_attr *next)
{
	bool root = who->uid == 0, owner = who->uid == cur->uid;

	*next = *cur;
	if (what & STORE_ATTR_UID) {
		if (!root && !(owner && want->uid == cur->uid))
			return -EPERM;
		next->uid = want->uid;
	}
	if (what & STORE_ATTR_GID) {
		if (!root && !(owner && (want->gid == cur->gid || caller_in_group(who, want->gid))))
			return -EPERM;
		next->gid = want->gid;
	}
	if (what & STORE_ATTR_MODE) {
		if (!root && !owner)
			return -EPERM;
		next->mode = want->mode & STORE_MODE_MASK;
		/* As Linux: only a member of the directory's group keeps setgid. */
		if (!root && !caller_in_group(who, next->gid))
			next->mode &= ~(uint32_t)S_ISGID_BIT;
	}
	return 0;
}

int store_attr_set(struct store *store, const struct caller *who, int what,
		   const struct store_attr *want, struct store_attr *now)
{
	const struct backend_ops *ops = store->db->ops;
	struct store_attr cur, next;
	int ret;

	if (!who || !want || (what & ~(STORE_ATTR_MODE | STORE_ATTR_UID | STORE_ATTR_GID)))
		return -EINVAL;
	pthread_mutex_lock(&store->attr_lock);
	memset(&cur, 0, sizeof(cur));
	ret = blobdb_to_status(ops->store_get_attr(store, &cur));
	if (ret == 0)
		ret = attr_change(&cur, who, what, want, &next); /* -EPERM as it is */
	/* Written even when nothing changes: a chmod also rewrites a damaged
	 * meta file. */
	if (ret == 0)
		ret = blobdb_to_status(ops->store_set_attr(store, &next));
	if (ret == 0 && now)
		*now = next;
	pthread_mutex_unlock(&store->attr_lock);
	return ret;
}

