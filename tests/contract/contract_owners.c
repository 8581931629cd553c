/*
 * contract_owners.c - the blob-db contract for stores' owners and modes
 * (store.h): store_create_as keeps what it was given (mode masked to 07777),
 * store_create gives the process's uid and gid and 0755; store_access's
 * Unix rules (root, owner bits, group bits by primary or supplementary
 * group, other bits, every bit asked for); store_attr_set's rules (chmod:
 * owner or root, setgid kept only by a group member; chown: root only, the
 * same uid is a no-op the owner may do; chgrp: root, or the owner to a
 * group they are in) with -EPERM and nothing changed; a destroyed store's
 * -ENOENT; and the attributes after a reopen (local: kept; memory: gone
 * with the stores).
 */
#include <unistd.h>

#include "contract.h"

static struct store_attr get(struct store *s)
{
	struct store_attr a = { 0 };

	CHECK_EQ(store_attr_get(s, &a), 0);
	return a;
}

static bool is(struct store_attr a, uint32_t uid, uint32_t gid, uint32_t mode)
{
	if (a.uid == uid && a.gid == gid && a.mode == mode)
		return true;
	fprintf(stderr, "  got uid %u gid %u mode %04o, expected %u %u %04o\n", a.uid, a.gid,
		a.mode, uid, gid, mode);
	return false;
}

static void ct_access_rules(struct store *s)
{
	const uint32_t extra[] = { 7, 50 };
	const struct caller root = { .uid = 0, .gid = 0 };
	const struct caller owner = { .uid = 1000, .gid = 9 };
	const struct caller member = { .uid = 2000, .gid = 50 };
	const struct caller supp = { .uid = 2001, .gid = 9, .groups = extra, .group_count = 2 };
	const struct caller other = { .uid = 3000, .gid = 9 };
	const struct caller owner_in_group = { .uid = 1000, .gid = 50 };
	struct store_attr a = { .uid = 1000, .gid = 50, .mode = 0 };
	static const struct {
		uint32_t mode;
		int owner, member, other; /* the masks each may have: rwx as 7 */
	} cases[] = {
		{ 0700, 7, 0, 0 }, { 0750, 7, 5, 0 }, { 0755, 7, 5, 5 }, { 0777, 7, 7, 7 },
		{ 0070, 0, 7, 0 }, { 0007, 0, 0, 7 }, { 0000, 0, 0, 0 }, { 0741, 7, 4, 1 },
		{ 01777, 7, 7, 7 },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
		a.mode = cases[i].mode;
		CHECK_EQ(store_attr_set(s, &root, STORE_ATTR_MODE | STORE_ATTR_UID | STORE_ATTR_GID,
					&a, NULL), 0);
		for (int mask = 0; mask <= 7; mask++) {
			int want_owner = (mask & ~cases[i].owner) ? -EACCES : 0;
			int want_member = (mask & ~cases[i].member) ? -EACCES : 0;
			int want_other = (mask & ~cases[i].other) ? -EACCES : 0;
			CHECK_EQ(store_access(s, &root, mask), 0);
			CHECK_EQ(store_access(s, &owner, mask), want_owner);
			/* The owner's bits count even when the owner is in the
			 * group too (and only they). */
			CHECK_EQ(store_access(s, &owner_in_group, mask), want_owner);
			CHECK_EQ(store_access(s, &member, mask), want_member);
			CHECK_EQ(store_access(s, &supp, mask), want_member);
			CHECK_EQ(store_access(s, &other, mask), want_other);
			CHECK_EQ(store_attr_access(&a, &other, mask), want_other);
		}
	}
}

static void ct_change_rules(struct store *s)
{
	const uint32_t groups[] = { 60, 70 };
	const struct caller root = { .uid = 0, .gid = 0 };
	const struct caller owner = { .uid = 1000, .gid = 50, .groups = groups, .group_count = 2 };
	const struct caller other = { .uid = 3000, .gid = 50 };
	struct store_attr start = { .uid = 1000, .gid = 50, .mode = 0750 }, want, now;

	CHECK_EQ(store_attr_set(s, &root, STORE_ATTR_MODE | STORE_ATTR_UID | STORE_ATTR_GID, &start,
				&now), 0);
	CHECK(is(now, 1000, 50, 0750));

	/* chmod: the owner, root; nobody else. */
	want = (struct store_attr){ .mode = 0700 };
	CHECK_EQ(store_attr_set(s, &other, STORE_ATTR_MODE, &want, NULL), -EPERM);
	CHECK(is(get(s), 1000, 50, 0750));
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_MODE, &want, &now), 0);
	CHECK(is(now, 1000, 50, 0700));
	want.mode = 0755;
	CHECK_EQ(store_attr_set(s, &root, STORE_ATTR_MODE, &want, NULL), 0);
	CHECK(is(get(s), 1000, 50, 0755));
	/* Bits beyond 07777 are dropped. */
	want.mode = 0170775;
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_MODE, &want, NULL), 0);
	CHECK(is(get(s), 1000, 50, 0775));

	/* chown: root only; the owner may "change" it to itself. */
	want = (struct store_attr){ .uid = 3000 };
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_UID, &want, NULL), -EPERM);
	CHECK_EQ(store_attr_set(s, &other, STORE_ATTR_UID, &want, NULL), -EPERM);
	want.uid = 1000;
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_UID, &want, NULL), 0);
	CHECK_EQ(store_attr_set(s, &other, STORE_ATTR_UID, &want, NULL), -EPERM);
	CHECK(is(get(s), 1000, 50, 0775));

	/* chgrp: the owner to a group they are in (primary or supplementary),
	 * not another; root to any. A refused change changes nothing, even
	 * the part that was allowed. */
	want = (struct store_attr){ .uid = 1000, .gid = 70, .mode = 0700 };
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_GID, &want, &now), 0);
	CHECK(is(now, 1000, 70, 0775));
	want.gid = 50;
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_GID, &want, NULL), 0);
	want.gid = 80;
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_GID | STORE_ATTR_MODE, &want, NULL), -EPERM);
	CHECK(is(get(s), 1000, 50, 0775));
	CHECK_EQ(store_attr_set(s, &other, STORE_ATTR_GID, &want, NULL), -EPERM);
	CHECK_EQ(store_attr_set(s, &root, STORE_ATTR_GID, &want, NULL), 0);
	CHECK(is(get(s), 1000, 80, 0775));
	/* The owner may set the group it already has, even not being in it. */
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_GID, &want, NULL), 0);

	/* setgid: kept by a member of the store's group (and root). */
	want = (struct store_attr){ .mode = 02770 };
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_MODE, &want, &now), 0);
	CHECK(is(now, 1000, 80, 0770)); /* not in group 80 */
	CHECK_EQ(store_attr_set(s, &root, STORE_ATTR_MODE, &want, &now), 0);
	CHECK(is(now, 1000, 80, 02770));
	want.gid = 60;
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_GID, &want, NULL), 0);
	want.mode = 02750;
	CHECK_EQ(store_attr_set(s, &owner, STORE_ATTR_MODE, &want, &now), 0);
	CHECK(is(now, 1000, 60, 02750));

	/* Arguments. */
	CHECK_EQ(store_attr_set(s, &root, 64, &want, NULL), -EINVAL);
	CHECK_EQ(store_attr_set(s, NULL, STORE_ATTR_MODE, &want, NULL), -EINVAL);
}

void ct_owners(uint64_t seed)
{
	struct store_attr a = { .uid = 1234, .gid = 5678, .mode = 0170750 }, got;
	const struct caller root = { .uid = 0, .gid = 0 };
	struct blobdb *db;
	struct store *s;

	(void)seed;
	TU_TEST("owners and modes: created, access rules, chmod/chown/chgrp rules, reopen");
	db = ct_open("owners", NULL);
	CHECK_EQ(store_create_as(db, "a", &a), 0);
	CHECK_EQ(store_create_as(db, "a", &a), -EEXIST);
	CHECK_EQ(store_create_as(db, "..", &a), -EINVAL);
	CHECK_EQ(store_create_as(db, "x/y", &a), -EINVAL);
	CHECK_EQ(store_create(db, "b"), 0);
	s = st_open(db, "a");
	CHECK(is(get(s), 1234, 5678, 0750));
	store_close(s);
	s = st_open(db, "b");
	CHECK(is(get(s), (uint32_t)geteuid(), (uint32_t)getegid(), 0755));
	ct_access_rules(s);
	ct_change_rules(s);
	/* Blobs do not care. */
	{
		uint8_t hash[HS];
		CHECK_EQ(blob_save(s, "x", 1, hash), 0);
		CHECK(blob_is(s, "x", 1));
	}
	store_close(s);
	ct_close(db);

	db = ct_reopen("owners", NULL);
	if (ct_memory) {
		CHECK_EQ(store_count(db), 0);
	} else {
		s = st_open(db, "b");
		CHECK(is(get(s), 1000, 60, 02750));
		CHECK_EQ(store_destroy(db, "b", false), 0);
		CHECK_EQ(store_attr_get(s, &got), -ENOENT);
		CHECK_EQ(store_access(s, &root, R_OK), -ENOENT);
		CHECK_EQ(store_attr_set(s, &root, STORE_ATTR_MODE, &a, NULL), -ENOENT);
		store_close(s);
		s = st_open(db, "a");
		CHECK(is(get(s), 1234, 5678, 0750));
		store_close(s);
	}
	if (ct_memory) {
		CHECK_EQ(store_create_as(db, "c", &a), 0);
		s = st_open(db, "c");
		CHECK_EQ(store_destroy(db, "c", false), 0);
		CHECK_EQ(store_attr_get(s, &got), -ENOENT);
		CHECK_EQ(store_attr_set(s, &root, STORE_ATTR_MODE, &a, NULL), -ENOENT);
		store_close(s);
	}
	ct_close(db);
}
