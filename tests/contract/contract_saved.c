/*
 * contract_saved.c - the blob-db contract for a blob's saved time
 * (blob_stat): set at the first save, within the call; unchanged by a save
 * of content the store has (-EEXIST), through blob_save and a writer alike;
 * new after a delete; the same after a reopen where blobs survive one
 * (local, s3). Seconds are the unit, so the checks wait for the clock to
 * move on once. s3: the time is the object's LastModified once the blob is
 * uploaded (docs/FORMAT.md), the save's own time until then: "the same"
 * means not earlier and at most a minute later.
 */
#include <time.h>
#include <unistd.h>

#include "contract.h"

static bool same_saved(int64_t got, int64_t want)
{
	bool ok = ct_s3 ? got >= want && got <= want + 60 : got == want;

	if (!CHECK(ok))
		fprintf(stderr, "  saved time %lld, expected %lld\n", (long long)got,
			(long long)want);
	return ok;
}

static int64_t ct_saved(struct store *s, const uint8_t *hash)
{
	struct blob_stat st = { .saved = -42 };

	CHECK_EQ(blob_stat(s, hash, &st), 0);
	return st.saved;
}

void ct_saved_time(uint64_t seed)
{
	enum { N = 3 };
	const size_t sizes[N] = { 0, 4 * KiB + 3, MiB + 17 }; /* a large one too */
	uint8_t *data[N], hash[N][HS], again[HS], missing[HS] = { 0 };
	int64_t saved[N], before, after;
	struct blob_stat st;
	struct blob_writer *w = NULL;
	uint8_t *kept = make_content(777), kept_hash[HS];
	struct blobdb *db;
	struct store *s;

	TU_TEST("blob_stat: saved at the first save, kept by a re-save, new after a delete");
	(void)seed; /* the content comes from the test's generator */
	db = ct_open("saved", NULL);
	REQUIRE(store_create(db, "t") == 0);
	s = st_open(db, "t");
	before = (int64_t)time(NULL);
	for (size_t i = 0; i < N; i++) {
		data[i] = make_content(sizes[i]);
		CHECK_EQ(i == 1 ? save_via_writer(s, data[i], sizes[i], hash[i])
				: blob_save(s, data[i], sizes[i], hash[i]), 0);
		CHECK_EQ(blob_stat(s, hash[i], &st), 0);
		CHECK_EQ(st.length, sizes[i]);
		saved[i] = st.saved;
	}
	/* A writer that stays open after its commit. */
	REQUIRE(blob_writer_new(s, &w) == 0);
	CHECK_EQ(blob_writer_write(w, kept, 777, 0), 0);
	CHECK_EQ(blob_writer_commit(w, kept_hash), 0);
	after = (int64_t)time(NULL);
	CHECK(ct_saved(s, kept_hash) >= before && ct_saved(s, kept_hash) <= after);
	for (size_t i = 0; i < N; i++)
		CHECK(saved[i] >= before && saved[i] <= after);
	CHECK_EQ(blob_stat(s, missing, &st), -ENOENT);

	while ((int64_t)time(NULL) <= after)
		usleep(20 * 1000);
	for (size_t i = 0; i < N; i++) {
		CHECK_EQ(blob_save(s, data[i], sizes[i], again), -EEXIST);
		CHECK_EQ(save_via_writer(s, data[i], sizes[i], again), -EEXIST);
		same_saved(ct_saved(s, hash[i]), saved[i]);
	}
	CHECK_EQ(blob_delete(s, hash[2]), 0);
	CHECK_EQ(blob_stat(s, hash[2], &st), -ENOENT);
	CHECK_EQ(blob_save(s, data[2], sizes[2], again), 0);
	saved[2] = ct_saved(s, hash[2]);
	CHECK(saved[2] > after && saved[2] <= (int64_t)time(NULL));
	/* The writer's content committed again after a delete: a new save. */
	CHECK_EQ(blob_delete(s, kept_hash), 0);
	CHECK_EQ(blob_writer_commit(w, again), 0);
	CHECK_MEM(again, kept_hash, HS);
	CHECK(ct_saved(s, kept_hash) > after);
	blob_writer_free(w);
	CHECK_EQ(store_sync(s), 0);
	store_close(s);
	ct_close(db);

	if (!ct_memory) {
		db = ct_reopen("saved", NULL);
		s = st_open(db, "t");
		for (size_t i = 0; i < N; i++)
			same_saved(ct_saved(s, hash[i]), saved[i]);
		store_close(s);
		ct_close(db);
	}
	for (size_t i = 0; i < N; i++)
		free(data[i]);
	free(kept);
}
