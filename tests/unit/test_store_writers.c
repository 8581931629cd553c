/*
 * test_store_writers.c - incoming blobs written through a blob_writer,
 * next to a model of their content: scripted sequences (sequential and
 * backwards writes, overwrites, sparse writes far past the end, truncation
 * down and up, commits and re-commits, -EEXIST), commits right after a
 * truncate, content around 1 MiB (where a writer may spill from memory to a
 * file), writers freed without a commit, zero-byte writes, random operations
 * against the model, and writers whose committed blob is deleted behind
 * them. Each runs with the default options and with small packs.
 *
 * Fixture: storeutil.h / testutil.h (the fixture library).
 */
#include "storeutil.h"

/* ---- writers ---- */

/* A writer next to a model of its content. */
struct wmodel {
	struct blob_writer *w;
	uint8_t *buf;
	size_t size, cap;
};

static void wm_reserve(struct wmodel *m, size_t size)
{
	if (size > m->cap) {
		size_t cap = m->cap ? m->cap : 4096;
		while (cap < size)
			cap *= 2;
		m->buf = realloc(m->buf, cap);
		REQUIRE(m->buf);
		m->cap = cap;
	}
}

static bool wm_write(struct wmodel *m, uint64_t off, size_t len)
{
	uint8_t *src = tu_random_buffer(len);
	bool ok;

	wm_reserve(m, (size_t)off + len);
	if (off > m->size)
		memset(m->buf + m->size, 0, (size_t)off - m->size);
	ok = CHECK_EQ(blob_writer_write(m->w, src, len, off), 0);
	memcpy(m->buf + off, src, len);
	if (off + len > m->size)
		m->size = (size_t)off + len;
	free(src);
	return ok;
}

static bool wm_truncate(struct wmodel *m, size_t size)
{
	wm_reserve(m, size);
	if (size > m->size)
		memset(m->buf + m->size, 0, size - m->size);
	m->size = size;
	return CHECK_EQ(blob_writer_truncate(m->w, size), 0);
}

static bool wm_check_read(struct wmodel *m, uint64_t off, size_t len)
{
	uint8_t *buf = tu_xmalloc(len);
	size_t got = 999999, expect = off >= m->size ? 0 : m->size - off < len ? m->size - off : len;
	bool ok = true;

	ok &= CHECK_EQ(blob_writer_read(m->w, buf, len, off, &got), 0);
	ok &= CHECK_EQ(got, expect);
	if (ok && got)
		ok &= CHECK_MEM(buf, m->buf + off, got);
	free(buf);
	return ok;
}

/* Commits and checks the result against the model. saved_before says
 * whether the store already had this content (-EEXIST expected). */
static bool wm_commit(struct wmodel *m, struct store *s)
{
	uint8_t want[HS], got[HS];
	uint64_t len;
	bool had, ok = true;
	int r;

	sha(m->buf ? m->buf : (uint8_t *)"", m->size, want);
	had = blob_info(s, want, &len) == 0;
	ok &= CHECK_EQ(blob_writer_size(m->w), m->size);
	memset(got, 0, HS);
	r = blob_writer_commit(m->w, got);
	ok &= CHECK_EQ(r, had ? -EEXIST : 0);
	ok &= CHECK_MEM(got, want, HS);
	ok &= blob_is(s, m->buf ? m->buf : (uint8_t *)"", m->size);
	return ok;
}

static void test_writer_scripted(const char *base, const struct blobdb_options *opts)
{
	char dir[PATH_MAX], label[128];
	struct blobdb *db;
	struct store *s;
	struct wmodel m = { 0 };
	uint8_t hash[HS], hash2[HS], first[HS], first_content[1005];
	size_t before;

	snprintf(label, sizeof(label), "writer: scripted (%s)", opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-writer-%" PRIu64, base, opts->large_blob_min);
	s = new_store(dir, opts, "w", &db);

	/* Empty, committed at once: the empty blob. */
	REQUIRE(blob_writer_new(s, &m.w) == 0);
	CHECK_EQ(blob_writer_size(m.w), 0);
	CHECK(wm_check_read(&m, 0, 10));
	CHECK(wm_commit(&m, s));
	/* Commit again without a change: already there. */
	CHECK_EQ(blob_writer_commit(m.w, hash), -EEXIST);
	sha("", 0, hash2);
	CHECK_MEM(hash, hash2, HS);

	/* Small content, sequential. */
	CHECK(wm_write(&m, 0, 5));
	CHECK(wm_write(&m, 5, 1000));
	CHECK(wm_check_read(&m, 0, 2000));
	CHECK(wm_commit(&m, s));
	sha(m.buf, m.size, first);
	REQUIRE(m.size == sizeof(first_content));
	memcpy(first_content, m.buf, m.size);
	CHECK_EQ(blob_writer_commit(m.w, hash), -EEXIST);
	CHECK_MEM(hash, first, HS);
	/* Deleted behind the writer's back, an unchanged commit saves it again. */
	CHECK_EQ(blob_delete(s, first), 0);
	CHECK_EQ(blob_writer_commit(m.w, hash), 0);
	CHECK_MEM(hash, first, HS);
	CHECK(blob_is(s, m.buf, m.size));

	/* Grow past large_blob_min (in small mode) and commit: written in place. */
	CHECK(wm_write(&m, m.size, 70000));
	CHECK(wm_check_read(&m, 500, 70000));
	CHECK(wm_commit(&m, s));
	CHECK(wm_commit(&m, s)); /* unchanged: -EEXIST */
	/* Both versions are there. */
	CHECK_EQ(blob_info(s, first, NULL), 0);
	/* Keep writing after that commit: overwrite in the middle, sparse write
	 * far past the end, read back, commit. */
	CHECK(wm_write(&m, 100, 50));
	CHECK(wm_check_read(&m, 0, 300));
	CHECK(wm_write(&m, m.size + 100000, 10));
	CHECK(wm_check_read(&m, m.size - 100100, 100200));
	CHECK(wm_commit(&m, s));
	/* Truncate down below large_blob_min, then up (zeros), then commit. */
	CHECK(wm_truncate(&m, 3000));
	CHECK(wm_check_read(&m, 0, 5000));
	CHECK(wm_commit(&m, s));
	CHECK(wm_truncate(&m, 9000));
	CHECK(wm_check_read(&m, 2000, 7000));
	CHECK(wm_commit(&m, s));
	CHECK(wm_truncate(&m, 0));
	CHECK(wm_commit(&m, s));
	/* The same content as an earlier commit: -EEXIST, and the right hash. */
	CHECK_EQ(blob_writer_write(m.w, first_content, sizeof(first_content), 0), 0);
	wm_reserve(&m, sizeof(first_content));
	memcpy(m.buf, first_content, sizeof(first_content));
	m.size = sizeof(first_content);
	CHECK_EQ(blob_info(s, first, NULL), 0);
	CHECK_EQ(blob_writer_commit(m.w, hash), -EEXIST);
	CHECK_MEM(hash, first, HS);
	/* Backwards writes (never sequential). */
	CHECK(wm_truncate(&m, 0));
	for (int i = 9; i >= 0; i--)
		CHECK(wm_write(&m, (uint64_t)i * 1000, 1000));
	CHECK(wm_commit(&m, s));
	blob_writer_free(m.w);
	m.w = NULL;

	TU_TEST("writer: commit right after a truncate");
	/* Sequential writes are hashed as they come; a truncate below what was
	 * hashed must not leave the old bytes in the digest. */
	{
		static const size_t cuts[][2] = { { 10000, 4000 }, { 70000, 65536 }, { 70000, 65535 },
						  { 140000, 1 }, { 5000, 0 }, { 3000, 2999 } };
		for (size_t k = 0; k < sizeof(cuts) / sizeof(cuts[0]); k++) {
			REQUIRE(blob_writer_new(s, &m.w) == 0);
			m.size = 0;
			CHECK(wm_write(&m, 0, cuts[k][0] / 2));
			CHECK(wm_write(&m, cuts[k][0] / 2, cuts[k][0] - cuts[k][0] / 2));
			CHECK(wm_truncate(&m, cuts[k][1]));
			if (!CHECK(wm_commit(&m, s)))
				fprintf(stderr, "  %zu bytes cut to %zu\n", cuts[k][0], cuts[k][1]);
			/* And down then up again (zeros), then commit. */
			CHECK(wm_write(&m, m.size, 3000));
			CHECK(wm_truncate(&m, m.size / 3));
			CHECK(wm_truncate(&m, m.size + 7000));
			CHECK(wm_commit(&m, s));
			blob_writer_free(m.w);
			m.w = NULL;
		}
	}

	TU_TEST("writer: content around 1 MiB");
	/* 1 MiB is LARGE_BLOB_MIN_DEFAULT, and about where a writer may move
	 * its content from memory to a file: cross it every way. */
	{
		const size_t MiB = (size_t)1 << 20;
		for (int k = 0; k < 6; k++) {
			REQUIRE(blob_writer_new(s, &m.w) == 0);
			m.size = 0;
			switch (k) {
			case 0: /* small, then truncated far up (zeros) */
				CHECK(wm_write(&m, 0, 100));
				CHECK(wm_truncate(&m, 3 * MiB));
				break;
			case 1: /* grown by truncate inside the limit, then a sparse write */
				CHECK(wm_write(&m, 0, 100));
				CHECK(wm_truncate(&m, 500000));
				CHECK(wm_write(&m, 900000, 10));
				break;
			case 2: /* just under, then across by two bytes */
				CHECK(wm_write(&m, 0, MiB - 1));
				CHECK(wm_write(&m, MiB - 1, 2));
				break;
			case 3: /* a sparse jump far past the limit */
				CHECK(wm_write(&m, 0, 5000));
				CHECK(wm_truncate(&m, 0));
				CHECK(wm_write(&m, 2 * MiB, 7));
				break;
			case 4: /* across, then truncated back under, then written */
				CHECK(wm_write(&m, 0, MiB + 5));
				CHECK(wm_truncate(&m, 1000));
				CHECK(wm_write(&m, 500, 2000));
				break;
			default: /* exactly the limit */
				CHECK(wm_write(&m, 0, MiB / 2));
				CHECK(wm_write(&m, MiB / 2, MiB / 2));
				break;
			}
			CHECK(wm_check_read(&m, 0, m.size + 10));
			CHECK(wm_check_read(&m, m.size / 2, 4096));
			if (!CHECK(wm_commit(&m, s)))
				fprintf(stderr, "  case %d\n", k);
			/* And more writes after the commit. */
			CHECK(wm_write(&m, m.size / 3, 3000));
			CHECK(wm_commit(&m, s));
			blob_writer_free(m.w);
			m.w = NULL;
		}
	}

	TU_TEST("writer: freed without a commit saves nothing");
	before = blob_count(s);
	REQUIRE(blob_writer_new(s, &m.w) == 0);
	m.size = 0;
	CHECK(wm_write(&m, 0, 50000));
	CHECK(wm_write(&m, 1000, 10));
	sha(m.buf, m.size, hash);
	blob_writer_free(m.w);
	m.w = NULL;
	CHECK(blob_absent(s, hash));
	CHECK_EQ(blob_count(s), before);
	CHECK_EQ(staging_files(dir, "w"), 0);
	/* Committed, then changed, then freed: only the committed version. */
	REQUIRE(blob_writer_new(s, &m.w) == 0);
	m.size = 0;
	CHECK(wm_write(&m, 0, 20000));
	CHECK(wm_commit(&m, s));
	sha(m.buf, m.size, hash2);
	CHECK(wm_write(&m, 20000, 5));
	sha(m.buf, m.size, hash);
	blob_writer_free(m.w);
	m.w = NULL;
	CHECK(blob_absent(s, hash));
	CHECK_EQ(blob_info(s, hash2, NULL), 0);
	CHECK_EQ(staging_files(dir, "w"), 0);
	blob_writer_free(NULL);

	TU_TEST("writer: a zero-byte write past the end");
	/* pwrite(2) of zero bytes changes nothing; whatever size the writer then
	 * reports, its commit must succeed and name that content. */
	REQUIRE(blob_writer_new(s, &m.w) == 0);
	m.size = 0;
	CHECK(wm_write(&m, 0, 100));
	CHECK_EQ(blob_writer_write(m.w, "", 0, 5000), 0);
	{
		uint64_t size = blob_writer_size(m.w);
		uint8_t *expect = calloc(1, (size_t)size + 1);
		int r;
		REQUIRE(expect);
		memcpy(expect, m.buf, 100);
		CHECK_EQ(size, 100); /* as pwrite(2) would leave it */
		r = blob_writer_commit(m.w, hash);
		if (!CHECK(r == 0 || r == -EEXIST))
			fprintf(stderr, "  commit after a zero-byte write at 5000 returned %d (%s)\n", r,
				strerror(-r));
		else
			CHECK(blob_is(s, expect, (size_t)size));
		free(expect);
	}
	blob_writer_free(m.w);
	m.w = NULL;

	store_close(s);
	blobdb_close(db);
	free(m.buf);
}

static void test_writer_random(const char *base, const struct blobdb_options *opts)
{
	char dir[PATH_MAX], label[128];
	struct blobdb *db;
	struct store *s;
	struct wmodel m = { 0 };
	size_t limit = opts->large_blob_min < 100000 ? 40000 : 1500000;
	long bad = 0;

	snprintf(label, sizeof(label), "writer: random operations against a model (%s)",
		 opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-wrand-%" PRIu64, base, opts->large_blob_min);
	s = new_store(dir, opts, "w", &db);
	for (int round = 0; round < 6 && !bad; round++) {
		REQUIRE(blob_writer_new(s, &m.w) == 0);
		m.size = 0;
		for (int op = 0; op < 120 && !bad; op++) {
			uint64_t what = tu_rand_below(100);
			bool ok = true;
			if (what < 30) { /* sequential */
				size_t len = (size_t)tu_rand_below(limit / 8 + 1);
				if (m.size + len <= limit)
					ok = wm_write(&m, m.size, len);
			} else if (what < 45) { /* overwrite inside */
				if (m.size) {
					uint64_t off = tu_rand_below(m.size);
					size_t len = (size_t)tu_rand_below(m.size - off + 1);
					ok = wm_write(&m, off, len ? len : 1);
				}
			} else if (what < 52) { /* sparse, past the end */
				uint64_t off = m.size + 1 + tu_rand_below(limit / 4);
				size_t len = 1 + (size_t)tu_rand_below(5000);
				if (off + len <= limit)
					ok = wm_write(&m, off, len);
			} else if (what < 60) { /* truncate down */
				ok = wm_truncate(&m, (size_t)tu_rand_below(m.size + 1));
			} else if (what < 65) { /* truncate up */
				size_t size = m.size + (size_t)tu_rand_below(limit / 4);
				if (size <= limit)
					ok = wm_truncate(&m, size);
			} else if (what < 85) { /* read back */
				uint64_t off = tu_rand_below(m.size + 100);
				ok = wm_check_read(&m, off, (size_t)tu_rand_below(limit / 2 + 1));
			} else if (what < 87) { /* save the current content independently */
				uint8_t hash[HS];
				int r = blob_save(s, m.buf ? m.buf : (uint8_t *)"", m.size, hash);
				ok = CHECK(r == 0 || r == -EEXIST);
			} else { /* commit */
				ok = wm_commit(&m, s);
			}
			ok &= CHECK_EQ(blob_writer_size(m.w), m.size);
			if (!ok) {
				fprintf(stderr, "  round %d op %d (kind %" PRIu64 "), size %zu\n", round, op,
					what, m.size);
				bad++;
			}
		}
		if (tu_rand_below(2))
			CHECK(wm_commit(&m, s));
		blob_writer_free(m.w);
		m.w = NULL;
		CHECK_EQ(staging_files(dir, "w"), 0);
		CHECK(verify_packs(dir, "w"));
	}
	store_close(s);
	blobdb_close(db);
	free(m.buf);
}

/* After a commit the writer "holds the committed content and may be written
 * and committed again" (store.h) - also when the committed blob is deleted
 * from the store meanwhile, whichever way it was saved. */
static void test_writer_after_delete(const char *base, const struct blobdb_options *opts)
{
	char dir[PATH_MAX], label[128];
	struct blobdb *db;
	struct store *s;
	struct wmodel m = { 0 };
	uint8_t hash[HS];
	int r;

	snprintf(label, sizeof(label), "writer: its committed blob deleted, then more writes (%s)",
		 opts_label(opts));
	TU_TEST(label);
	tu_path(dir, sizeof(dir), "%s/db-wdel-%" PRIu64, base, opts->large_blob_min);
	s = new_store(dir, opts, "w", &db);
	for (int size_class = 0; size_class < 2; size_class++) {
		size_t size = size_class ? 10000 : 1000; /* small vs own pack in small mode */
		REQUIRE(blob_writer_new(s, &m.w) == 0);
		m.size = 0;
		CHECK(wm_write(&m, 0, size));
		CHECK(wm_commit(&m, s));
		sha(m.buf, m.size, hash);
		CHECK_EQ(blob_delete(s, hash), 0);
		/* Read back what the writer holds. */
		if (!wm_check_read(&m, 0, size))
			fprintf(stderr, "  blob_writer_read of a %zu-byte writer after its blob was deleted\n",
				size);
		/* Commit unchanged: saves it again. */
		r = blob_writer_commit(m.w, hash);
		if (!CHECK_EQ(r, 0))
			fprintf(stderr, "  unchanged re-commit of a %zu-byte writer after delete: %d (%s)\n",
				size, r, strerror(-r));
		else if (CHECK(blob_is(s, m.buf, m.size)))
			CHECK_EQ(blob_delete(s, hash), 0); /* and delete it again */
		/* Change it and commit. */
		r = blob_writer_write(m.w, "more", 4, m.size);
		if (CHECK_EQ(r, 0)) {
			wm_reserve(&m, m.size + 4);
			memcpy(m.buf + m.size, "more", 4);
			m.size += 4;
			CHECK(wm_commit(&m, s));
		} else {
			fprintf(stderr, "  write to a %zu-byte writer after its blob was deleted: %d (%s)\n",
				size, r, strerror(-r));
		}
		blob_writer_free(m.w);
		m.w = NULL;
	}
	store_close(s);
	blobdb_close(db);
	free(m.buf);
}

int main(int argc, char **argv)
{
	static const struct store_test tests[] = {
		{ .both = test_writer_scripted },
		{ .both = test_writer_random },
		{ .both = test_writer_after_delete },
	};

	(void)argc;
	return store_tests_main(argv[0], tests, sizeof(tests) / sizeof(tests[0]));
}
