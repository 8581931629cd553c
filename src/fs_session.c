/*
 * fs_session.c - a FUSE session over a blob database: start (mount), loop
 * (serve the lowlevel callbacks of fs_dispatch.c until unmounted or
 * signalled), stop (unmount and free). What happens between start and loop
 * (daemonizing, the database's background thread) is the caller's.
 */
#include "fs.h"
#include "fs_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"

struct fs_session {
	struct fs *fs;
	struct fuse_session *fuse;
	char *mountpoint;
	unsigned threads;
	bool handlers; /* the signal handlers are this session's */
	bool mounted;
};

int fs_session_start(struct blobdb *db, const char *mountpoint, struct fuse_args *args,
		     const struct fs_options *opts, struct fs_session **out)
{
	struct fs_session *s = calloc(1, sizeof(*s));
	int ret = -ENOMEM;

	if (!s)
		goto out;
	s->threads = opts->threads;
	s->mountpoint = strdup(mountpoint);
	if (!s->mountpoint)
		goto out;
	ret = fs_new(db, opts, &s->fs);
	if (ret < 0)
		goto out;
	ret = -EINVAL; /* libfuse said why: bad options, no /dev/fuse, ... */
	s->fuse = fuse_session_new(args, &fs_lowlevel_ops, sizeof(fs_lowlevel_ops), s->fs);
	if (!s->fuse)
		goto out;
	s->fs->se = s->fuse;
	if (fuse_set_signal_handlers(s->fuse) != 0)
		goto out;
	s->handlers = true;
	if (fuse_session_mount(s->fuse, mountpoint) != 0)
		goto out;
	s->mounted = true;
	*out = s;
	s = NULL;
	ret = 0;
out:
	fs_session_stop(s);
	return ret;
}

int fs_session_loop(struct fs_session *s)
{
	const char *datadir = blobdb_path(s->fs->db);
	struct fuse_loop_config *loop = fuse_loop_cfg_create();
	int ret;

	if (!loop)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_max_threads(loop, s->threads);
	/* Started here, not at start: the caller may fork in between. */
	ret = fs_notify_start(s->fs);
	if (ret < 0) {
		fuse_loop_cfg_destroy(loop);
		return ret;
	}
	log_info("%s mounted on %s", datadir, s->mountpoint);
	ret = fuse_session_loop_mt(s->fuse, loop);
	/* A positive value is the signal that ended the loop: a clean stop. */
	if (ret > 0)
		ret = 0;
	if (ret == 0)
		log_info("%s unmounted from %s", datadir, s->mountpoint);
	else
		log_error("session ended with an error: %s", strerror(-ret));
	fuse_loop_cfg_destroy(loop);
	return ret;
}

void fs_session_stop(struct fs_session *s)
{
	if (!s)
		return;
	if (s->mounted)
		fuse_session_unmount(s->fuse);
	if (s->fs)
		fs_notify_stop(s->fs);
	if (s->handlers)
		fuse_remove_signal_handlers(s->fuse);
	if (s->fuse)
		fuse_session_destroy(s->fuse);
	fs_free(s->fs);
	free(s->mountpoint);
	free(s);
}

void fs_session_forget(struct fs_session *s, const char *store, const uint8_t *hash)
{
	struct fs *fs = s->fs;
	char hex[HASH_HEX_SIZE + 1];
	struct node *node;

	pthread_mutex_lock(&fs->lock);
	if (!hash) {
		fs_notify_forget_name(fs, FUSE_ROOT_ID, store);
	} else if ((node = table_find(fs, &fs->root, store))) {
		/* Not in the table: the kernel holds nothing under it. */
		hash_to_hex(hash, hex);
		fs_notify_forget_name(fs, ino_of(fs, node), hex);
	}
	pthread_mutex_unlock(&fs->lock);
}
