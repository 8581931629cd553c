/*
 * test_store_checkpoint.c - index checkpoints written in the background
 * (local_checkpoint.c, from the compactor thread) and what a mount after a
 * crash makes of them: a child process saves more blobs than
 * CKPT_RECORDS_MIN on a started database, waits for the checkpoint file,
 * then deletes a large blob (whose pack then goes: the checkpoint names a
 * pack that is gone), saves and deletes more, syncs and ends without
 * closing (a crash). The reopened store uses the checkpoint (no "out of
 * date" line), drops the gone pack's entries, scans what followed, and has
 * exactly the blobs it should; fsck before it finds no problem and notes the
 * gone pack.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include "storeutil.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "fsck.h"
#include "log.h"

#define SMALL 140000 /* more than CKPT_RECORDS_MIN (131072) */
#define MORE 1000

static void small_content(unsigned i, char *buf, size_t *len)
{
	*len = (size_t)snprintf(buf, 32, "small blob %u", i);
}

/* The child's work; the exit status says whether it all went through. */
static int crash_child(const char *dir, const char *ckpt, const uint8_t *large, size_t large_len)
{
	struct blobdb *db = NULL;
	struct store *s = NULL;
	uint8_t h[HS];
	char buf[32];
	size_t len;

	if (blobdb_open(dir, NULL, &db) < 0 || store_open(db, "s", &s) < 0 ||
	    blobdb_start(db) < 0)
		return 2;
	if (blob_save(s, large, large_len, h) < 0)
		return 3;
	for (unsigned i = 0; i < SMALL; i++) {
		small_content(i, buf, &len);
		if (blob_save(s, buf, len, h) < 0)
			return 4;
	}
	/* The compactor thread looks every 2 s. */
	for (int i = 0; i < 300 && access(ckpt, F_OK) < 0; i++)
		usleep(100000);
	if (access(ckpt, F_OK) < 0)
		return 5;
	sha(large, large_len, h);
	if (blob_delete(s, h) < 0)
		return 6;
	for (unsigned i = SMALL; i < SMALL + MORE; i++) {
		small_content(i, buf, &len);
		if (blob_save(s, buf, len, h) < 0)
			return 7;
	}
	small_content(7, buf, &len);
	sha(buf, len, h);
	if (blob_delete(s, h) < 0)
		return 8;
	if (store_sync(s) < 0)
		return 9;
	_exit(0); /* no close: the checkpoint on disk is the background one */
}

struct open_args {
	const char *dir;
	struct blobdb *db;
};

static void open_it(void *arg)
{
	struct open_args *o = arg;

	REQUIRE(blobdb_open(o->dir, NULL, &o->db) == 0);
}

static void test_background_checkpoint_after_a_crash(const char *base)
{
	char dir[PATH_MAX], ckpt[PATH_MAX], buf[32], *log_text;
	size_t large_len = 3 << 20, len;
	uint8_t *large = tu_random_buffer(large_len), h[HS];
	struct blobdb *db;
	struct store *s;
	struct timespec t0, t1;
	int status;
	pid_t pid;

	TU_TEST("a checkpoint written in the background, a removed pack, then a crash");
	tu_path(dir, sizeof(dir), "%s/db-background", base);
	tu_path(ckpt, sizeof(ckpt), "%s/stores/s/checkpoint", dir);
	db = db_open(dir, NULL);
	REQUIRE(store_create(db, "s") == 0);
	blobdb_close(db);
	REQUIRE(access(ckpt, F_OK) < 0 || unlink(ckpt) == 0);

	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		log_set_level(LOG_LEVEL_WARNING);
		_exit(crash_child(dir, ckpt, large, large_len));
	}
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	CHECK(access(ckpt, F_OK) == 0);

	/* fsck of the crashed directory: no problem; the gone pack is a note. */
	{
		struct fsck_report report;
		char *text = NULL;
		size_t text_len = 0;
		FILE *out = open_memstream(&text, &text_len);
		REQUIRE(out);
		CHECK_EQ(fsck_run(dir, NULL, false, out, NULL, &report), 0);
		fclose(out);
		CHECK_EQ(report.problems, 0);
		CHECK(strstr(text, "names 1 packs removed since"));
		if (report.problems)
			fprintf(stderr, "%s", text);
		free(text);
	}

	/* The mount after the crash: the checkpoint is used. */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	log_set_level(LOG_LEVEL_DEBUG);
	struct open_args a = { dir, NULL };
	log_text = tu_capture_stderr(open_it, &a);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	log_set_level(LOG_LEVEL_WARNING);
	db = a.db;
	CHECK(!strstr(log_text, "out of date"));
	CHECK(!strstr(log_text, "unusable"));
	CHECK(strstr(log_text, "names 1 packs removed since"));
	if (strstr(log_text, "out of date") || strstr(log_text, "unusable"))
		fprintf(stderr, "%s", log_text);
	free(log_text);
	printf("  open after the crash: %.3f s\n",
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);

	s = st_open(db, "s");
	CHECK_EQ(blob_count(s), SMALL + MORE - 1);
	sha(large, large_len, h);
	CHECK(blob_absent(s, h));
	for (unsigned i = 0; i < SMALL + MORE; i += 997) {
		small_content(i, buf, &len);
		if (i == 7)
			continue;
		CHECK(blob_is(s, buf, len));
	}
	small_content(7, buf, &len);
	sha(buf, len, h);
	CHECK(blob_absent(s, h));
	small_content(SMALL + MORE - 1, buf, &len);
	CHECK(blob_is(s, buf, len));
	store_close(s);
	blobdb_close(db);
	free(large);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_background_checkpoint_after_a_crash },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
