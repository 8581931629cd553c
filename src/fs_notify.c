/*
 * fs_notify.c - telling the kernel to forget names and attributes it
 * caches, from a thread of its own. A request handler must not do it: the kernel takes the
 * directory's lock for the invalidation, and a lookup holding that lock may
 * be waiting for the very worker that asks. The queue is bounded; when it is
 * full the oldest request is dropped (it only shortens a cache's life, and
 * the kernel revalidates a blob name at the latest after its timeout).
 */
#include "fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

#define QUEUE_MAX 1024

struct forget {
	struct forget *next;
	fuse_ino_t parent; /* or the inode whose attributes or pages go */
	enum { FORGET_NAME, FORGET_ATTR, FORGET_DATA } what;
	char name[];
};

struct fs_notifier {
	pthread_mutex_t lock;
	pthread_cond_t wake;
	pthread_t thread;
	struct forget *head, *tail;
	size_t queued;
	bool stop;
};

static void *notifier_main(void *arg)
{
	struct fs *fs = arg;
	struct fs_notifier *n = fs->notifier;

	pthread_mutex_lock(&n->lock);
	for (;;) {
		struct forget *f = n->head;
		if (!f) {
			if (n->stop)
				break;
			pthread_cond_wait(&n->wake, &n->lock);
			continue;
		}
		n->head = f->next;
		if (!n->head)
			n->tail = NULL;
		n->queued--;
		pthread_mutex_unlock(&n->lock);
		/* -ENOENT: the kernel no longer knows the directory or name. */
		if (fs->se && f->what == FORGET_ATTR)
			fuse_lowlevel_notify_inval_inode(fs->se, f->parent, -1, 0);
		else if (fs->se && f->what == FORGET_DATA)
			fuse_lowlevel_notify_inval_inode(fs->se, f->parent, 0, 0);
		else if (fs->se)
			fuse_lowlevel_notify_inval_entry(fs->se, f->parent, f->name, strlen(f->name));
		free(f);
		pthread_mutex_lock(&n->lock);
	}
	pthread_mutex_unlock(&n->lock);
	return NULL;
}

int fs_notify_start(struct fs *fs)
{
	struct fs_notifier *n = calloc(1, sizeof(*n));
	int ret;

	if (!n)
		return -ENOMEM;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->wake, NULL);
	fs->notifier = n;
	ret = -pthread_create(&n->thread, NULL, notifier_main, fs);
	if (ret < 0) {
		log_error("cannot start the notifier thread: %s", strerror(-ret));
		fs->notifier = NULL;
		pthread_cond_destroy(&n->wake);
		pthread_mutex_destroy(&n->lock);
		free(n);
	}
	return ret;
}

void fs_notify_stop(struct fs *fs)
{
	struct fs_notifier *n = fs->notifier;

	if (!n)
		return;
	pthread_mutex_lock(&n->lock);
	n->stop = true;
	/* Unmounted: what is queued no longer matters. */
	for (struct forget *f = n->head, *next; f; f = next) {
		next = f->next;
		free(f);
	}
	n->head = n->tail = NULL;
	n->queued = 0;
	pthread_cond_signal(&n->wake);
	pthread_mutex_unlock(&n->lock);
	pthread_join(n->thread, NULL);
	pthread_cond_destroy(&n->wake);
	pthread_mutex_destroy(&n->lock);
	free(n);
	fs->notifier = NULL;
}

enum queue_how {
	LAST_MAY_DROP, /* at the end; when the queue is full the oldest goes */
	LAST_IF_ROOM,  /* at the end, only while the queue is less than half full */
	FIRST,         /* next, before what is queued (dropping the oldest if full) */
};

/* false when it was not queued (LAST_IF_ROOM). */
static bool enqueue(struct fs *fs, fuse_ino_t parent, const char *name, int what,
		    enum queue_how how)
{
	struct fs_notifier *n = fs->notifier;
	size_t len = strlen(name);
	struct forget *f;

	if (!n || !(f = malloc(sizeof(*f) + len + 1)))
		return false;
	f->next = NULL;
	f->parent = parent;
	f->what = what;
	memcpy(f->name, name, len + 1);
	pthread_mutex_lock(&n->lock);
	if (n->queued >= QUEUE_MAX / 2 && how == LAST_IF_ROOM) {
		pthread_mutex_unlock(&n->lock);
		free(f);
		return false;
	}
	if (n->queued >= QUEUE_MAX) {
		struct forget *old = n->head;
		n->head = old->next;
		if (!n->head)
			n->tail = NULL;
		n->queued--;
		free(old);
	}
	if (how == FIRST) {
		f->next = n->head;
		n->head = f;
		if (!n->tail)
			n->tail = f;
	} else {
		if (n->tail)
			n->tail->next = f;
		else
			n->head = f;
		n->tail = f;
	}
	n->queued++;
	pthread_cond_signal(&n->wake);
	pthread_mutex_unlock(&n->lock);
	return true;
}

void fs_notify_forget_name(struct fs *fs, fuse_ino_t parent, const char *name)
{
	enqueue(fs, parent, name, FORGET_NAME, LAST_MAY_DROP);
}

bool fs_notify_try_forget_name(struct fs *fs, fuse_ino_t parent, const char *name)
{
	return enqueue(fs, parent, name, FORGET_NAME, LAST_IF_ROOM);
}

void fs_notify_forget_name_first(struct fs *fs, fuse_ino_t parent, const char *name)
{
	enqueue(fs, parent, name, FORGET_NAME, FIRST);
}

void fs_notify_inval_attr(struct fs *fs, fuse_ino_t ino)
{
	enqueue(fs, ino, "", FORGET_ATTR, LAST_MAY_DROP);
}

void fs_notify_inval_data(struct fs *fs, fuse_ino_t ino)
{
	enqueue(fs, ino, "", FORGET_DATA, FIRST);
}
