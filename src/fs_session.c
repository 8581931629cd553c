/*
 * fs_session.c - a mounted FUSE session over a blob database: mounts, serves
 * the lowlevel callbacks of fs_dispatch.c until unmounted or signalled, and
 * unmounts.
 */
#include "fs.h"
#include "fs_internal.h"

#include <errno.h>
#include <string.h>

#include "log.h"

int fs_run(struct blobdb *db, const char *mountpoint, struct fuse_args *args,
	   const struct fs_options *opts)
{
	struct fuse_loop_config *loop = NULL;
	struct fuse_session *session = NULL;
	struct fs *fs = NULL;
	bool mounted = false, handlers = false;
	int ret = -1;

	if (fs_new(db, opts->sync, &fs) < 0)
		goto out;
	session = fuse_session_new(args, &fs_lowlevel_ops, sizeof(fs_lowlevel_ops), fs);
	if (!session)
		goto out;
	if (fuse_set_signal_handlers(session) != 0)
		goto out;
	handlers = true;
	if (fuse_session_mount(session, mountpoint) != 0)
		goto out;
	mounted = true;
	if (!opts->foreground) {
		if (fuse_daemonize(0) != 0)
			goto out;
		log_to_syslog(true);
		blobdb_note_pid(db);
	}
	if (blobdb_start(db) < 0)
		goto out;
	log_info("%s mounted on %s", blobdb_path(db), mountpoint);
	loop = fuse_loop_cfg_create();
	if (!loop)
		goto out;
	fuse_loop_cfg_set_clone_fd(loop, 0);
	fuse_loop_cfg_set_max_threads(loop, opts->threads);
	ret = fuse_session_loop_mt(session, loop);
	/* A positive value is the signal that ended the loop: a clean stop. */
	if (ret > 0)
		ret = 0;
	if (ret == 0)
		log_info("%s unmounted from %s", blobdb_path(db), mountpoint);
	else
		log_error("session ended with an error: %s", strerror(-ret));
out:
	if (loop)
		fuse_loop_cfg_destroy(loop);
	if (mounted)
		fuse_session_unmount(session);
	if (handlers)
		fuse_remove_signal_handlers(session);
	if (session)
		fuse_session_destroy(session);
	fs_free(fs);
	return ret;
}
