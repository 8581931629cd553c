/*
 * fs_handles.c - the bound on open handles, files and directories alike.
 * Each costs the daemon memory (a readdir cursor, an open file's state) and
 * may hold a descriptor (a blob being read, a staging file), and the kernel
 * opens as many as its clients ask for. So there are at most handle_max in
 * all (beyond: ENFILE), and a user other than root and the mounting user
 * holds at most a quarter of them (beyond: EMFILE), so that one user cannot
 * take every handle from the others.
 *
 * The handle the kernel gets (fi->fh) is a struct fs_handle, which keeps
 * who opened it (a release does not say) and the kind's own handle.
 */
#include "fs_internal.h"

#include <errno.h>
#include <stdlib.h>

struct fs_handle {
	uint64_t fh; /* the kind's handle */
	uid_t uid;   /* who opened it */
	bool counted_for_user;
	/* Once attached: on fs->handle_list, and how to free the kind's
	 * handle if the kernel never releases it. */
	bool attached;
	struct fs_handle *prev, *next;
	struct node *node;
	void (*drop)(struct node *node, uint64_t fh);
};

struct handle_user {
	uid_t uid;
	size_t count;
};

static bool has_share(const struct fs *fs, uid_t uid)
{
	return uid != 0 && uid != fs->uid;
}

/* The user's entry, made when missing; NULL without memory. */
static struct handle_user *user_entry(struct fs *fs, uid_t uid)
{
	struct handle_user *users;
	size_t capacity;

	for (size_t i = 0; i < fs->handle_user_count; i++)
		if (fs->handle_users[i].uid == uid)
			return &fs->handle_users[i];
	if (fs->handle_user_count == fs->handle_user_capacity) {
		capacity = fs->handle_user_capacity ? fs->handle_user_capacity * 2 : 8;
		users = realloc(fs->handle_users, capacity * sizeof(*users));
		if (!users)
			return NULL;
		fs->handle_users = users;
		fs->handle_user_capacity = capacity;
	}
	fs->handle_users[fs->handle_user_count] = (struct handle_user){ .uid = uid };
	return &fs->handle_users[fs->handle_user_count++];
}

static void user_put(struct fs *fs, uid_t uid)
{
	for (size_t i = 0; i < fs->handle_user_count; i++) {
		if (fs->handle_users[i].uid != uid)
			continue;
		if (--fs->handle_users[i].count == 0)
			fs->handle_users[i] = fs->handle_users[--fs->handle_user_count];
		return;
	}
}

int handle_reserve(struct fs_call *c, struct fs_handle **out)
{
	struct fs *fs = c->fs;
	struct fs_handle *h = calloc(1, sizeof(*h));
	struct handle_user *user = NULL;
	int ret = -ENOMEM;

	if (!h)
		goto out;
	h->uid = c->uid;
	pthread_mutex_lock(&fs->handles_lock);
	if (fs->handles >= fs->handle_max) {
		c->why = "handle_max files and directories are open";
		ret = -ENFILE;
	} else if (has_share(fs, c->uid) && !(user = user_entry(fs, c->uid))) {
		ret = -ENOMEM;
	} else if (user && user->count >= fs->handle_max / 4) {
		c->why = "this user holds a quarter of handle_max open";
		ret = -EMFILE;
	} else {
		fs->handles++;
		if (user) {
			user->count++;
			h->counted_for_user = true;
		}
		ret = 0;
	}
	/* Refused with an entry just made for it (the last one): it goes. */
	if (user && user->count == 0)
		fs->handle_user_count--;
	pthread_mutex_unlock(&fs->handles_lock);
out:
	if (ret < 0) {
		free(h);
		h = NULL;
	}
	*out = h;
	return ret;
}

void handle_attach(struct fs *fs, struct fs_handle *h, struct fuse_file_info *fi,
		   struct node *node, void (*drop)(struct node *node, uint64_t fh))
{
	h->fh = fi->fh;
	h->node = node;
	h->drop = drop;
	fi->fh = (uintptr_t)h;
	pthread_mutex_lock(&fs->handles_lock);
	h->attached = true;
	h->prev = NULL;
	h->next = fs->handle_list;
	if (h->next)
		h->next->prev = h;
	fs->handle_list = h;
	pthread_mutex_unlock(&fs->handles_lock);
}

void handle_cancel(struct fs *fs, struct fs_handle *h)
{
	if (!h)
		return;
	pthread_mutex_lock(&fs->handles_lock);
	fs->handles--;
	if (h->counted_for_user)
		user_put(fs, h->uid);
	if (h->attached) {
		if (h->prev)
			h->prev->next = h->next;
		else
			fs->handle_list = h->next;
		if (h->next)
			h->next->prev = h->prev;
	}
	pthread_mutex_unlock(&fs->handles_lock);
	free(h);
}

/* At unmount the kernel drops the open files of a mount that went away
 * (a lazy unmount, a killed connection) without releasing them. */
void handle_drop_all(struct fs *fs)
{
	while (fs->handle_list) {
		struct fs_handle *h = fs->handle_list;
		uint64_t fh = h->fh;
		struct node *node = h->node;
		void (*drop)(struct node *, uint64_t) = h->drop;

		handle_cancel(fs, h);
		if (drop)
			drop(node, fh);
	}
}

uint64_t handle_fh(const struct fuse_file_info *fi)
{
	return fi ? ((const struct fs_handle *)(uintptr_t)fi->fh)->fh : 0;
}

uint64_t handle_close(struct fs *fs, struct fuse_file_info *fi)
{
	struct fs_handle *h = (struct fs_handle *)(uintptr_t)fi->fh;
	uint64_t fh = h->fh;

	handle_cancel(fs, h);
	return fh;
}
