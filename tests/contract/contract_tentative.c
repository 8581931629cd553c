/*
 * contract_tentative.c - the blob-db contract for verified commits and
 * tentative saves (store.h): a commit with an expected hash stores only
 * matching content; a tentative save that created its blob can be taken
 * back (blob_retract) until blob_settle, and never once another save of the
 * same content happened, even one racing with it.
 */
#include <pthread.h>

#include "contract.h"

static struct blob_writer *writer_of(struct store *s, const uint8_t *data, size_t len)
{
	struct blob_writer *w = NULL;

	REQUIRE(blob_writer_new(s, &w) == 0);
	REQUIRE(blob_writer_write(w, data, len, 0) == 0);
	return w;
}

static void ct_expect(struct store *s)
{
	uint8_t *a = make_content(5000), *b = make_content(7000), ha[HS], hb[HS], got[HS];
	struct blob_writer *w = writer_of(s, a, 5000);
	bool tentative = true;

	sha(a, 5000, ha);
	sha(b, 7000, hb);
	TU_TEST("verified commit: content that does not hash to the name is not stored");
	CHECK_EQ(blob_writer_commit_tentative(w, hb, got, &tentative), -EINVAL);
	CHECK(!tentative);
	CHECK(ct_blob_absent(s, ha));
	CHECK(ct_blob_absent(s, hb));
	TU_TEST("verified commit: the writer keeps its content and can still be saved");
	CHECK_EQ(blob_writer_commit_tentative(w, ha, got, &tentative), 0);
	CHECK_MEM(got, ha, HS);
	CHECK(tentative);
	CHECK(blob_is(s, a, 5000));
	blob_settle(s, ha);
	blob_writer_free(w);
	free(a);
	free(b);
}

static void ct_retract(struct store *s)
{
	uint8_t *a = make_content(3000), ha[HS], got[HS];
	struct blob_writer *w, *w2;
	bool tentative;

	sha(a, 3000, ha);
	TU_TEST("tentative save: retract takes back the blob it created");
	w = writer_of(s, a, 3000);
	CHECK_EQ(blob_writer_commit_tentative(w, NULL, got, &tentative), 0);
	CHECK(tentative);
	CHECK_EQ(blob_retract(s, ha), 0);
	CHECK(ct_blob_absent(s, ha));
	CHECK_EQ(blob_retract(s, ha), -EEXIST); /* nothing tentative any more */

	TU_TEST("tentative save: another save of the same content keeps it");
	CHECK_EQ(blob_writer_commit_tentative(w, NULL, got, &tentative), 0);
	CHECK(tentative);
	CHECK_EQ(blob_save(s, a, 3000, got), -EEXIST);
	CHECK_EQ(blob_retract(s, ha), -EEXIST);
	CHECK(blob_is(s, a, 3000));
	CHECK_EQ(blob_delete(s, ha), 0);

	TU_TEST("tentative save: a second writer's commit keeps it too");
	CHECK_EQ(blob_writer_commit_tentative(w, NULL, got, &tentative), 0);
	w2 = writer_of(s, a, 3000);
	CHECK_EQ(blob_writer_commit(w2, got), -EEXIST);
	CHECK_EQ(blob_retract(s, ha), -EEXIST);
	CHECK(blob_is(s, a, 3000));
	CHECK_EQ(blob_delete(s, ha), 0);

	TU_TEST("tentative save: settled, it stays");
	CHECK_EQ(blob_writer_commit_tentative(w, NULL, got, &tentative), 0);
	blob_settle(s, ha);
	CHECK_EQ(blob_retract(s, ha), -EEXIST);
	CHECK(blob_is(s, a, 3000));

	TU_TEST("tentative save: content already stored is not tentative");
	CHECK_EQ(blob_writer_commit_tentative(w2, NULL, got, &tentative), -EEXIST);
	CHECK(!tentative);
	CHECK_EQ(blob_retract(s, ha), -EEXIST);
	CHECK(blob_is(s, a, 3000));
	CHECK_EQ(blob_delete(s, ha), 0);
	blob_writer_free(w);
	blob_writer_free(w2);
	free(a);
}

struct racer {
	struct store *s;
	const uint8_t *data;
	size_t len;
	int ret;
	pthread_barrier_t *go;
};

static void *race_save(void *arg)
{
	struct racer *r = arg;
	uint8_t got[HS];

	pthread_barrier_wait(r->go);
	r->ret = blob_save(r->s, r->data, r->len, got);
	return NULL;
}

/* The point of the claim record: whoever was told "saved" (0 or -EEXIST)
 * keeps the blob, whatever the order of the racing calls. */
static void ct_retract_race(struct store *s, uint64_t seed)
{
	enum { ROUNDS = 200 };
	pthread_barrier_t go;
	unsigned lost = 0;

	TU_TEST("tentative save racing another save: a retract never loses the other's blob");
	pthread_barrier_init(&go, NULL, 2);
	for (unsigned i = 0; i < ROUNDS; i++) {
		size_t len = 100 + (size_t)((seed + i) % 3000);
		uint8_t *a = make_content(len), ha[HS], got[HS];
		struct racer r = { .s = s, .data = a, .len = len, .go = &go };
		struct blob_writer *w = writer_of(s, a, len);
		bool tentative = false;
		pthread_t t;
		int ret;

		sha(a, len, ha);
		REQUIRE(pthread_create(&t, NULL, race_save, &r) == 0);
		pthread_barrier_wait(&go);
		ret = blob_writer_commit_tentative(w, NULL, got, &tentative);
		pthread_join(t, NULL);
		CHECK(ret == 0 || ret == -EEXIST);
		CHECK(r.ret == 0 || r.ret == -EEXIST);
		if (tentative)
			blob_retract(s, ha);
		if (blob_info(s, ha, NULL) != 0)
			lost++;
		blob_writer_free(w);
		blob_delete(s, ha);
		free(a);
	}
	CHECK_EQ(lost, 0);
	pthread_barrier_destroy(&go);
}

void ct_tentative(uint64_t seed)
{
	struct blobdb *db = ct_open("tentative", NULL);
	struct store *s;

	REQUIRE(store_create(db, "t") == 0);
	s = st_open(db, "t");
	ct_expect(s);
	ct_retract(s);
	ct_retract_race(s, seed);
	store_close(s);
	ct_close(db);
}
