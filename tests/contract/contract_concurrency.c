/*
 * contract_concurrency.c - the second half of the blob-db contract (see
 * contract.c): writers (blob_writer_*: writes at random offsets, sparse
 * holes read as zeros, truncation up and down, reading back before the
 * commit, committing twice with changes in between, freeing without a
 * commit saves nothing); a thread listing while another saves (every
 * listed hash is a real blob with its length, nothing listed twice, in hash
 * order, nothing saved before the listing began is missing); 4 threads
 * saving at once, and racing to save the same blob (exactly one is told
 * it saved it); references to a destroyed store (store_destroyed, every
 * operation fails cleanly, a reader opened before keeps its bytes).
 */
#include <pthread.h>
#include <stdatomic.h>

#include "contract.h"

/* ---- writers ---- */

struct model {
	uint8_t *data;
	size_t size;
};

static void model_write(struct model *m, const void *buf, size_t len, size_t off)
{
	if (off + len > m->size) {
		m->data = realloc(m->data, off + len ? off + len : 1);
		REQUIRE(m->data);
		memset(m->data + m->size, 0, off + len - m->size);
		m->size = off + len;
	}
	memcpy(m->data + off, buf, len);
}

static void model_truncate(struct model *m, size_t size)
{
	if (size > m->size) {
		m->data = realloc(m->data, size);
		REQUIRE(m->data);
		memset(m->data + m->size, 0, size - m->size);
	}
	m->size = size;
}

/* The writer's content, read back before any commit, equals the model:
 * a few random ranges, the whole, and a read past the end. */
static bool writer_matches(struct blob_writer *w, const struct model *m,
			   struct tu_rng *rng)
{
	uint8_t *buf = tu_xmalloc(m->size + 100);
	bool ok = CHECK_EQ(blob_writer_size(w), m->size);
	size_t got = SIZE_MAX;

	ok &= CHECK_EQ(blob_writer_read(w, buf, m->size + 100, 0, &got), 0);
	ok &= CHECK_EQ(got, m->size) && CHECK_MEM(buf, m->data, m->size);
	for (int i = 0; i < 8 && m->size; i++) {
		size_t off = (size_t)tu_rng_below(rng, m->size), len = 1 + (size_t)tu_rng_below(rng, 70000);
		size_t want = len < m->size - off ? len : m->size - off;

		ok &= CHECK_EQ(blob_writer_read(w, buf, len, off, &got), 0);
		ok &= CHECK_EQ(got, want) && CHECK_MEM(buf, m->data + off, want);
	}
	got = SIZE_MAX;
	ok &= CHECK_EQ(blob_writer_read(w, buf, 10, m->size + 7, &got), 0);
	ok &= CHECK_EQ(got, 0);
	free(buf);
	return ok;
}

/* Commits and checks the result against the model: the hash, the status
 * (0 or -EEXIST as expected) and the stored blob. */
static void commit_checked(struct store *s, struct blob_writer *w, const struct model *m,
			   int want)
{
	uint8_t hash[HS], expect[HS];

	memset(hash, 0, HS);
	CHECK_EQ(blob_writer_commit(w, hash), want);
	sha(m->data, m->size, expect);
	CHECK_MEM(hash, expect, HS);
	CHECK(blob_is(s, m->data, m->size));
}

void ct_writers(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	struct model m = { 0 };
	struct blob_writer *w = NULL;
	struct blobdb *db;
	struct store *s;
	size_t total = 3 * MiB + 5, count;
	uint8_t *src = tu_rng_buffer(&rng, total), hash[HS];

	db = ct_open("writers", NULL);
	REQUIRE(store_create(db, "w") == 0);
	s = st_open(db, "w");

	TU_TEST("writer: pieces written at random offsets, read back, committed");
	{
		size_t offs[400], lens[400], n = 0;

		for (size_t off = 0; off < total && n < 400; n++) {
			offs[n] = off;
			lens[n] = 1 + (size_t)tu_rng_below(&rng, 40000);
			if (lens[n] > total - off || n == 399)
				lens[n] = total - off;
			off += lens[n];
		}
		for (size_t i = n; i > 1; i--) { /* shuffled */
			size_t j = (size_t)tu_rng_below(&rng, i), t;

			t = offs[i - 1], offs[i - 1] = offs[j], offs[j] = t;
			t = lens[i - 1], lens[i - 1] = lens[j], lens[j] = t;
		}
		REQUIRE(blob_writer_new(s, &w) == 0);
		CHECK_EQ(blob_writer_size(w), 0);
		for (size_t i = 0; i < n; i++) {
			CHECK_EQ(blob_writer_write(w, src + offs[i], lens[i], offs[i]), 0);
			model_write(&m, src + offs[i], lens[i], offs[i]);
			if (i % 97 == 0)
				CHECK(writer_matches(w, &m, &rng)); /* holes read as zeros */
		}
		CHECK_EQ(m.size, total);
		CHECK_MEM(m.data, src, total);
		CHECK(writer_matches(w, &m, &rng));
		CHECK_EQ(blob_count(s), 0); /* nothing saved before the commit */
		commit_checked(s, w, &m, 0);

		TU_TEST("writer: committed twice with changes in between, then unchanged");
		model_write(&m, "changed", 7, MiB - 3); /* across the 1 MiB boundary */
		CHECK_EQ(blob_writer_write(w, "changed", 7, MiB - 3), 0);
		CHECK(writer_matches(w, &m, &rng));
		commit_checked(s, w, &m, 0);
		CHECK_EQ(blob_count(s), 2);
		CHECK(blob_is(s, src, total)); /* the first commit stays */
		commit_checked(s, w, &m, -EEXIST); /* nothing changed: already there */
		CHECK_EQ(blob_count(s), 2);

		TU_TEST("writer: truncate down and up, then committed");
		CHECK_EQ(blob_writer_truncate(w, 1000), 0);
		model_truncate(&m, 1000);
		CHECK(writer_matches(w, &m, &rng));
		CHECK_EQ(blob_writer_truncate(w, MiB + 1), 0); /* up: zeros */
		model_truncate(&m, MiB + 1);
		CHECK(writer_matches(w, &m, &rng));
		CHECK_EQ(blob_writer_write(w, "tail", 4, MiB + 1), 0);
		model_write(&m, "tail", 4, MiB + 1);
		commit_checked(s, w, &m, 0);
		CHECK_EQ(blob_writer_truncate(w, 0), 0); /* the empty blob */
		model_truncate(&m, 0);
		CHECK(writer_matches(w, &m, &rng));
		commit_checked(s, w, &m, 0);
		CHECK_EQ(blob_count(s), 4);
		blob_writer_free(w);
	}

	TU_TEST("writer: a sparse write far from the start; holes are zeros");
	m.size = 0;
	REQUIRE(blob_writer_new(s, &w) == 0);
	CHECK_EQ(blob_writer_write(w, "far away", 8, 2 * MiB + 5), 0);
	model_write(&m, "far away", 8, 2 * MiB + 5);
	CHECK_EQ(blob_writer_write(w, "x", 1, 100), 0);
	model_write(&m, "x", 1, 100);
	CHECK(writer_matches(w, &m, &rng));
	commit_checked(s, w, &m, 0);
	blob_writer_free(w);

	TU_TEST("writer: content already stored is -EEXIST");
	m.size = 0;
	REQUIRE(blob_writer_new(s, &w) == 0);
	CHECK_EQ(blob_writer_write(w, src, total, 0), 0);
	model_write(&m, src, total, 0);
	commit_checked(s, w, &m, -EEXIST);
	blob_writer_free(w);

	TU_TEST("writer: freed without a commit saves nothing");
	count = blob_count(s);
	REQUIRE(blob_writer_new(s, &w) == 0);
	CHECK_EQ(blob_writer_write(w, src + 1, 500 * KiB, 0), 0);
	blob_writer_free(w);
	sha(src + 1, 500 * KiB, hash);
	CHECK(ct_blob_absent(s, hash));
	/* Committed once, written again, freed: only the commit is kept. */
	REQUIRE(blob_writer_new(s, &w) == 0);
	CHECK_EQ(blob_writer_write(w, src + 2, 4096, 0), 0);
	CHECK_EQ(blob_writer_commit(w, hash), 0);
	CHECK_EQ(blob_writer_write(w, "more", 4, 4096), 0);
	blob_writer_free(w);
	CHECK(blob_is(s, src + 2, 4096));
	memcpy(src + 2 + 4096, "more", 4); /* what was never committed */
	sha(src + 2, 4100, hash);
	CHECK(ct_blob_absent(s, hash));
	CHECK_EQ(blob_count(s), count + 1);
	CHECK_EQ(store_sync(s), 0);
	store_close(s);
	ct_close(db);
	free(m.data);
	free(src);
}

/* ---- a thread listing while another saves ---- */

enum { LW_BLOBS = 400 };

struct lw {
	struct store *s;
	uint8_t *data[LW_BLOBS];
	size_t len[LW_BLOBS];
	uint8_t hash[LW_BLOBS][HS];
	uint8_t sorted[LW_BLOBS][HS + sizeof(size_t)]; /* hash, then its index */
	atomic_size_t done;   /* saves completed, in index order */
	atomic_int listings;
};

static void *lw_saver(void *arg)
{
	struct lw *lw = arg;

	for (size_t i = 0; i < LW_BLOBS; i++) {
		uint8_t h[HS];

		CHECK_EQ(blob_save(lw->s, lw->data[i], lw->len[i], h), 0);
		atomic_store(&lw->done, i + 1);
		if (i % 50 == 0) /* give the lister time to list partial states */
			usleep(2000);
	}
	return NULL;
}

/* One listing, whole or in pages of 7 through the after cursor. */
static void lw_check_listing(struct lw *lw, bool paged)
{
	size_t before = atomic_load(&lw->done);
	struct hashlist l = { 0 };
	bool ok = true;

	if (!paged) {
		ok &= CHECK_EQ(blob_list(lw->s, NULL, collect_hash, &l), 0);
	} else {
		uint8_t cursor[HS];

		for (bool first = true;; first = false) {
			size_t had = l.n;
			int r;

			l.stop_after = had + 7;
			r = blob_list(lw->s, first ? NULL : cursor, collect_hash, &l);
			ok &= CHECK(r == 0 || r == 77);
			if (r == 0 || l.n == had)
				break;
			memcpy(cursor, l.h[l.n - 1], HS);
		}
	}
	for (size_t i = 0; i < l.n && ok; i++) {
		uint8_t *hit = bsearch(l.h[i], lw->sorted, LW_BLOBS, sizeof(lw->sorted[0]),
				       cmp_hash);
		size_t idx;
		uint64_t length = UINT64_MAX;

		if (i > 0) /* sorted, and nothing twice */
			ok &= CHECK(memcmp(l.h[i - 1], l.h[i], HS) < 0);
		ok &= CHECK(hit != NULL); /* one of the blobs being saved */
		if (!hit)
			break;
		memcpy(&idx, hit + HS, sizeof(idx));
		ok &= CHECK_EQ(l.len[i], lw->len[idx]);
		ok &= CHECK_EQ(blob_info(lw->s, l.h[i], &length), 0); /* a real blob */
		ok &= CHECK_EQ(length, lw->len[idx]);
	}
	/* Every save that had completed before the listing began is in it. */
	ok &= CHECK(l.n >= before);
	for (size_t i = 0; i < before && ok; i++)
		ok &= CHECK(bsearch(lw->hash[i], l.h, l.n, HS, cmp_hash) != NULL);
	if (!ok)
		fprintf(stderr, "  listing %d (%s) of %zu blobs, %zu saved before it\n",
			atomic_load(&lw->listings), paged ? "paged" : "whole", l.n, before);
	atomic_fetch_add(&lw->listings, 1);
	hashlist_free(&l);
}

static void *lw_lister(void *arg)
{
	struct lw *lw = arg;
	bool paged = false;

	while (atomic_load(&lw->done) < LW_BLOBS) {
		lw_check_listing(lw, paged);
		paged = !paged;
		usleep(200); /* the machine is shared */
	}
	lw_check_listing(lw, false);
	lw_check_listing(lw, true);
	return NULL;
}

void ct_list_while_saving(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	struct lw *lw = calloc(1, sizeof(*lw));
	struct blobdb *db;
	pthread_t saver, lister;
	struct hashlist l = { 0 };

	TU_TEST("listing while another thread saves");
	REQUIRE(lw);
	db = ct_open("listsave", NULL);
	CHECK_EQ(blobdb_start(db), 0);
	REQUIRE(store_create(db, "l") == 0);
	lw->s = st_open(db, "l");
	for (size_t i = 0; i < LW_BLOBS; i++) {
		lw->len[i] = (size_t)tu_rng_below(&rng, i % 40 == 39 ? 1500000 : 20000);
		lw->data[i] = tu_rng_buffer(&rng, lw->len[i]);
		memcpy(lw->data[i], &i, lw->len[i] < sizeof(i) ? lw->len[i] : sizeof(i));
		sha(lw->data[i], lw->len[i], lw->hash[i]);
		memcpy(lw->sorted[i], lw->hash[i], HS);
		memcpy(lw->sorted[i] + HS, &i, sizeof(i));
	}
	qsort(lw->sorted, LW_BLOBS, sizeof(lw->sorted[0]), cmp_hash);
	for (size_t i = 1; i < LW_BLOBS; i++)
		REQUIRE(memcmp(lw->sorted[i - 1], lw->sorted[i], HS) != 0); /* distinct */
	REQUIRE(pthread_create(&lister, NULL, lw_lister, lw) == 0);
	REQUIRE(pthread_create(&saver, NULL, lw_saver, lw) == 0);
	pthread_join(saver, NULL);
	pthread_join(lister, NULL);
	CHECK(atomic_load(&lw->listings) >= 3);
	fprintf(stderr, "  %d listings while %d blobs were saved\n", atomic_load(&lw->listings),
		LW_BLOBS);
	CHECK_EQ(blob_count(lw->s), LW_BLOBS);
	CHECK_EQ(blob_list(lw->s, NULL, collect_hash, &l), 0);
	if (CHECK_EQ(l.n, LW_BLOBS))
		for (size_t i = 0; i < LW_BLOBS; i++)
			CHECK_MEM(l.h[i], lw->sorted[i], HS);
	hashlist_free(&l);
	for (size_t i = 0; i < LW_BLOBS; i += 37)
		CHECK(blob_is(lw->s, lw->data[i], lw->len[i]));
	for (size_t i = 0; i < LW_BLOBS; i++)
		free(lw->data[i]);
	store_close(lw->s);
	ct_close(db);
	free(lw);
}

/* ---- concurrent writers ---- */

enum { CW_THREADS = 4, CW_BLOBS = 40 };

struct cw {
	struct store *s;
	pthread_barrier_t barrier;
	const uint8_t *shared;
	size_t shared_len;
	atomic_int shared_saved, shared_existed, shared_other;
	struct cw_thread {
		struct cw *cw;
		int id;
		struct tu_rng rng;
		uint8_t *data[CW_BLOBS];
		size_t len[CW_BLOBS];
	} t[CW_THREADS];
};

static void *cw_main(void *arg)
{
	struct cw_thread *t = arg;
	struct cw *cw = t->cw;
	static const size_t sizes[] = { 1, 100, 4096, 4097, 65537, 300001, MiB + 1 };
	uint8_t hash[HS], expect[HS];
	int r;

	/* Everyone saves the same blob at the same moment. */
	pthread_barrier_wait(&cw->barrier);
	r = blob_save(cw->s, cw->shared, cw->shared_len, hash);
	atomic_fetch_add(r == 0 ? &cw->shared_saved : r == -EEXIST ? &cw->shared_existed
								  : &cw->shared_other, 1);
	for (int i = 0; i < CW_BLOBS; i++) {
		size_t n = sizes[tu_rng_below(&t->rng, i % 10 == 9 ? 7 : 6)];

		t->len[i] = n;
		t->data[i] = tu_rng_buffer(&t->rng, n);
		t->data[i][0] = (uint8_t)(t->id * CW_BLOBS + i); /* all distinct */
		sha(t->data[i], n, expect);
		if (i % 2) {
			CHECK_EQ(blob_save(cw->s, t->data[i], n, hash), 0);
		} else { /* through a writer, in two pieces, the second first */
			struct blob_writer *w = NULL;

			REQUIRE(blob_writer_new(cw->s, &w) == 0);
			CHECK_EQ(blob_writer_write(w, t->data[i] + n / 2, n - n / 2, n / 2), 0);
			CHECK_EQ(blob_writer_write(w, t->data[i], n / 2, 0), 0);
			CHECK_EQ(blob_writer_commit(w, hash), 0);
			blob_writer_free(w);
		}
		CHECK_MEM(hash, expect, HS);
		if (i % 8 == 0)
			CHECK_EQ(store_sync(cw->s), 0);
	}
	return NULL;
}

void ct_concurrent_writers(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	struct cw *cw = calloc(1, sizeof(*cw));
	uint8_t *shared = tu_rng_buffer(&rng, 700 * KiB);
	struct blobdb *db;
	pthread_t th[CW_THREADS];

	TU_TEST("concurrent writers: 4 threads, all blobs present and exact");
	REQUIRE(cw);
	db = ct_open("concurrent", NULL);
	CHECK_EQ(blobdb_start(db), 0);
	REQUIRE(store_create(db, "c") == 0);
	cw->s = st_open(db, "c");
	cw->shared = shared;
	cw->shared_len = 700 * KiB;
	REQUIRE(pthread_barrier_init(&cw->barrier, NULL, CW_THREADS) == 0);
	for (int i = 0; i < CW_THREADS; i++) {
		cw->t[i].cw = cw;
		cw->t[i].id = i;
		tu_rng_seed(&cw->t[i].rng, rng.state + (uint64_t)i * 1000003);
		REQUIRE(pthread_create(&th[i], NULL, cw_main, &cw->t[i]) == 0);
	}
	for (int i = 0; i < CW_THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&cw->barrier);
	/* The racing saves of one blob: exactly one saved it. */
	CHECK_EQ(atomic_load(&cw->shared_saved), 1);
	CHECK_EQ(atomic_load(&cw->shared_existed), CW_THREADS - 1);
	CHECK_EQ(atomic_load(&cw->shared_other), 0);
	CHECK(blob_is(cw->s, shared, 700 * KiB));
	CHECK_EQ(blob_count(cw->s), CW_THREADS * CW_BLOBS + 1);
	for (int i = 0; i < CW_THREADS; i++)
		for (int j = 0; j < CW_BLOBS; j++) {
			CHECK(blob_is(cw->s, cw->t[i].data[j], cw->t[i].len[j]));
			free(cw->t[i].data[j]);
		}
	CHECK_EQ(store_sync(cw->s), 0);
	CHECK_EQ(blobdb_sync(db), 0);
	store_close(cw->s);
	ct_close(db);
	free(shared);
	free(cw);
}

/* ---- references to a destroyed store ---- */

void ct_destroyed_store_references(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	uint8_t *big = tu_rng_buffer(&rng, 2 * MiB + 1), hash[HS], small_hash[HS], h2[HS];
	struct blob_reader *reader = NULL;
	struct blob_writer *writer = NULL, *late = NULL;
	struct hashlist l = { 0 };
	struct blobdb *db;
	struct store *s, *held, *fresh;
	int r;

	TU_TEST("a destroyed store's references fail cleanly");
	db = ct_open("destroyed", NULL);
	REQUIRE(store_create(db, "d") == 0);
	s = st_open(db, "d");
	CHECK_EQ(blob_save(s, big, 2 * MiB + 1, hash), 0);
	CHECK_EQ(blob_save(s, "small", 5, small_hash), 0);
	held = store_hold(s);
	REQUIRE(blob_open(s, hash, &reader) == 0);
	REQUIRE(blob_writer_new(s, &writer) == 0);
	CHECK_EQ(blob_writer_write(writer, "pending", 7, 0), 0);
	CHECK(!store_destroyed(s));
	CHECK_EQ(store_destroy(db, "d", false), 0);
	CHECK(store_destroyed(s));
	CHECK(store_destroyed(held));
	CHECK(!strcmp(store_name(s), "d"));
	CHECK_EQ(blob_count(s), 0);
	CHECK_EQ(blob_info(s, hash, NULL), -ENOENT);
	CHECK_EQ(blob_info(s, small_hash, NULL), -ENOENT);
	CHECK_EQ(blob_delete(s, small_hash), -ENOENT);
	CHECK(ct_blob_absent(held, hash));
	CHECK_EQ(blob_save(s, "new", 3, h2), -ENOENT);
	CHECK_EQ(blob_list(s, NULL, collect_hash, &l), 0);
	CHECK_EQ(l.n, 0);
	hashlist_free(&l);
	r = store_sync(s);
	CHECK(r == 0 || r == -ENOENT);
	/* The reader opened before keeps every byte. */
	{
		uint8_t *buf = tu_xmalloc(2 * MiB + 1);
		size_t got = 0;

		CHECK_EQ(blob_read(reader, buf, 2 * MiB + 1, 0, &got), 0);
		CHECK_EQ(got, 2 * MiB + 1);
		CHECK_MEM(buf, big, 2 * MiB + 1);
		free(buf);
	}
	blob_close(reader);
	/* The writer cannot save into it, nor can a writer made now. */
	CHECK(blob_writer_commit(writer, h2) < 0);
	blob_writer_free(writer);
	r = blob_writer_new(held, &late);
	if (r == 0) {
		CHECK_EQ(blob_writer_write(late, "late", 4, 0) <= 0, 1);
		CHECK(blob_writer_commit(late, h2) < 0);
		blob_writer_free(late);
	} else {
		CHECK(r < 0);
	}
	/* A store recreated under the name is another store. */
	REQUIRE(store_create(db, "d") == 0);
	fresh = st_open(db, "d");
	CHECK(!store_destroyed(fresh));
	CHECK_EQ(blob_count(fresh), 0);
	CHECK_EQ(blob_save(fresh, "small", 5, h2), 0);
	CHECK_EQ(blob_info(held, h2, NULL), -ENOENT);
	CHECK(store_destroyed(held));
	CHECK_EQ(blob_count(held), 0);
	store_close(s);
	store_close(held);
	CHECK_EQ(blob_count(fresh), 1);
	store_close(fresh);
	ct_close(db);
	free(big);
}
