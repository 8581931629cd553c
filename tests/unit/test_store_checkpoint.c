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

#include <pthread.h>
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

/*
 * The background checkpoint is written from the live index, batch by batch,
 * while the store changes (local_checkpoint.c, ckpt_walk_next): a thread
 * deletes and saves again a set of blobs all the while, the process ends
 * without a close once the checkpoint is there, and the reopened store must
 * hold exactly what the churn left.
 */
#define CHURN 3000

struct churn {
	struct store *s;
	bool present[CHURN];
	volatile bool stop;
	int error;
};

static void churn_content(unsigned i, char *buf, size_t *len)
{
	*len = (size_t)snprintf(buf, 32, "churn blob %u", i);
}

static void *churn_thread(void *arg)
{
	struct churn *c = arg;
	char buf[32];
	uint8_t h[HS];
	size_t len;

	for (unsigned k = 0; !c->stop && !c->error; k++) {
		unsigned i = (k * 7919u) % CHURN;
		churn_content(i, buf, &len);
		if (c->present[i]) {
			sha(buf, len, h);
			c->error = blob_delete(c->s, h) < 0 ? 1 : 0;
		} else {
			c->error = blob_save(c->s, buf, len, h) < 0 ? 2 : 0;
		}
		c->present[i] = !c->present[i];
	}
	return NULL;
}

static int churn_child(const char *dir, const char *ckpt, struct churn *c)
{
	struct blobdb *db = NULL;
	pthread_t t;
	char buf[32];
	uint8_t h[HS];
	size_t len;

	if (blobdb_open(dir, NULL, &db) < 0 || store_open(db, "s", &c->s) < 0 ||
	    blobdb_start(db) < 0)
		return 2;
	if (pthread_create(&t, NULL, churn_thread, c))
		return 3;
	for (unsigned i = 0; i < SMALL; i++) {
		small_content(i, buf, &len);
		if (blob_save(c->s, buf, len, h) < 0)
			return 4;
	}
	for (int i = 0; i < 300 && access(ckpt, F_OK) < 0; i++)
		usleep(100000);
	usleep(200000);
	c->stop = true;
	pthread_join(t, NULL);
	if (access(ckpt, F_OK) < 0)
		return 5;
	if (c->error)
		return 6;
	if (store_sync(c->s) < 0)
		return 7;
	return 0;
}

static void test_background_checkpoint_while_changing(const char *base)
{
	char dir[PATH_MAX], ckpt[PATH_MAX], buf[32], *log_text;
	static struct churn c; /* shared with the child through a pipe below */
	struct blobdb *db;
	struct store *s;
	size_t len, expect = SMALL;
	int status, fds[2];
	pid_t pid;

	TU_TEST("a background checkpoint written while blobs are deleted and saved again");
	tu_path(dir, sizeof(dir), "%s/db-churn", base);
	tu_path(ckpt, sizeof(ckpt), "%s/stores/s/checkpoint", dir);
	db = db_open(dir, NULL);
	REQUIRE(store_create(db, "s") == 0);
	blobdb_close(db);
	REQUIRE(access(ckpt, F_OK) < 0 || unlink(ckpt) == 0);
	REQUIRE(pipe(fds) == 0);
	pid = fork();
	REQUIRE(pid >= 0);
	if (pid == 0) {
		int ret;
		log_set_level(LOG_LEVEL_WARNING);
		close(fds[0]);
		ret = churn_child(dir, ckpt, &c);
		if (write(fds[1], c.present, sizeof(c.present)) != (ssize_t)sizeof(c.present))
			ret = 8;
		_exit(ret); /* no close: the checkpoint on disk is the background one */
	}
	close(fds[1]);
	{
		size_t got = 0;
		ssize_t n;
		while (got < sizeof(c.present) &&
		       (n = read(fds[0], (char *)c.present + got, sizeof(c.present) - got)) > 0)
			got += (size_t)n;
		CHECK_EQ(got, sizeof(c.present));
	}
	close(fds[0]);
	REQUIRE(waitpid(pid, &status, 0) == pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);

	log_set_level(LOG_LEVEL_DEBUG);
	struct open_args a = { dir, NULL };
	log_text = tu_capture_stderr(open_it, &a);
	log_set_level(LOG_LEVEL_WARNING);
	db = a.db;
	CHECK(!strstr(log_text, "out of date"));
	CHECK(!strstr(log_text, "unusable"));
	free(log_text);
	s = st_open(db, "s");
	for (unsigned i = 0; i < CHURN; i++) {
		churn_content(i, buf, &len);
		if (c.present[i]) {
			expect++;
			CHECK(blob_is(s, buf, len));
		} else {
			uint8_t h[HS];
			sha(buf, len, h);
			CHECK(blob_absent(s, h));
		}
	}
	CHECK_EQ(blob_count(s), expect);
	store_close(s);
	blobdb_close(db);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .once = test_background_checkpoint_after_a_crash },
		{ .once = test_background_checkpoint_while_changing },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
