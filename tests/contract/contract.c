/*
 * contract.c - the blob-db contract: the behaviour of the store API
 * (store.h, docs: ../shared/reference/blob-db.md) written once and run
 * against every backend. The same executable is run as one meson test per
 * backend:
 *
 *   contract local      a fresh temporary directory, removed at exit
 *   contract memory:    the in-memory backend
 *   contract DIR        a local store under DIR (created; not removed)
 *
 * Covered (this file): opening an empty database; store names (valid,
 * invalid -EINVAL, duplicates -EEXIST, missing -ENOENT); store_list order
 * and its `after` cursor; store_destroy (-ENOENT, -EINVAL, only_if_empty
 * -ENOTEMPTY, copies in other stores untouched, a recreated name is empty);
 * blob save / info / count / open+read / delete for sizes from 0 to several
 * MiB and one byte either side of 1 MiB boundaries (hash returned, -EEXIST
 * on a second save, -ENOENT for missing blobs, saving again after a
 * delete); blob_list in hash order with its `after` cursor; readers that
 * keep reading after a delete of their blob; store_sync and blobdb_sync;
 * store_stats (blobs and bytes after saves and deletes, per store; memory:
 * no packs, no dead bytes; -ENOENT once destroyed);
 * what a close does (local: everything is there after a reopen; memory:
 * nothing is) and, for memory, that nothing appears on disk and memory_max
 * (-ENOSPC, earlier blobs intact, a delete makes room).
 * contract_concurrency.c: writers (blob_writer_*), listing while another
 * thread saves, concurrent writers, references to a destroyed store.
 * contract_saved.c: blob_stat's saved time (first save, re-save, delete,
 * reopen).
 * contract_owners.c: stores' owners and modes, store_access and the
 * chmod/chown rules of store_attr_set.
 * contract_backend.c: opening the backend under test.
 * The checks, PRNG, temporary directories and blob helpers are the C tests'
 * fixture library (tests/unit/testutil.h, storeutil.h).
 *
 * TEST_SEED=<n> changes the random content and orders.
 */
#include <unistd.h>

#include "contract.h"

/* ---- stores ---- */

static void ct_empty_database(void)
{
	struct namelist l = { 0 };
	struct blobdb *db;

	TU_TEST("a fresh database is empty; sync and close succeed");
	db = ct_open("empty", NULL);
	CHECK_EQ(store_count(db), 0);
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 0);
	CHECK_EQ(l.n, 0);
	CHECK_EQ(store_list(db, "a", collect_name, &l), 0);
	CHECK_EQ(l.n, 0);
	CHECK_EQ(blobdb_sync(db), 0);
	ct_close(db);
}

static void ct_store_names(void)
{
	static const char *invalid[] = { "", ".", "..", ".x", ".hidden", "a/b", "/", "abc/",
					 "/abc" };
	const char *valid[] = { "a", "incoming", "x.y", "a b", "-dash", "\x01", "\xff\xfe",
				"tab\tnew\nline", "back\\slash", NULL /* 255 bytes */ };
	char n255[256], n256[257];
	struct blobdb *db;
	struct store *s;
	size_t nvalid = sizeof(valid) / sizeof(valid[0]);

	TU_TEST("store names: valid, invalid, duplicate, missing");
	memset(n255, 'n', 255);
	n255[255] = '\0';
	memset(n256, 'n', 256);
	n256[256] = '\0';
	valid[nvalid - 1] = n255;
	db = ct_open("names", NULL);
	if (ct_s3) {
		/* S3 keys are UTF-8 and XML carries no control characters: such
		 * store names are refused there (docs/FORMAT.md); others take
		 * their places. */
		CHECK_EQ(store_create(db, "\xff\xfe"), -EINVAL);
		CHECK_EQ(store_create(db, "\x01"), -EINVAL);
		CHECK_EQ(store_create(db, "tab\tnew\nline"), -EINVAL);
		valid[5] = "\xe2\x82\xac";
		valid[6] = "caf\xc3\xa9";
		valid[7] = "tab new line";
	}
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		if (!CHECK_EQ(store_create(db, invalid[i]), -EINVAL))
			fprintf(stderr, "  store_create(\"%s\")\n", invalid[i]);
		CHECK_EQ(store_name_check(invalid[i], strlen(invalid[i])), -EINVAL);
	}
	CHECK_EQ(store_create(db, n256), -EINVAL);
	CHECK_EQ(store_name_check("a\0b", 3), -EINVAL);
	CHECK_EQ(store_name_check("ab", 2), 0);
	CHECK_EQ(store_count(db), 0);
	for (size_t i = 0; i < nvalid; i++) {
		if (!CHECK_EQ(store_create(db, valid[i]), 0))
			fprintf(stderr, "  store_create(\"%s\")\n", valid[i]);
		CHECK_EQ(store_create(db, valid[i]), -EEXIST);
		CHECK_EQ(store_count(db), i + 1);
	}
	for (size_t i = 0; i < nvalid; i++) {
		s = st_open(db, valid[i]);
		CHECK(!strcmp(store_name(s), valid[i]));
		CHECK_EQ(blob_count(s), 0);
		CHECK(!store_destroyed(s));
		store_close(s);
	}
	/* Names are compared as bytes: no case folding, no trimming. */
	s = (struct store *)1;
	CHECK_EQ(store_open(db, "A", &s), -ENOENT);
	CHECK(s == NULL);
	CHECK_EQ(store_open(db, "nope", &s), -ENOENT);
	CHECK_EQ(store_open(db, "a ", &s), -ENOENT);
	CHECK_EQ(store_open(db, n256, &s) < 0, 1);
	/* store_hold: one more reference, usable after the first is closed. */
	s = st_open(db, "a");
	{
		struct store *h = store_hold(s);
		uint8_t hash[HS];

		CHECK(h == s);
		store_close(s);
		CHECK_EQ(blob_save(h, "held", 4, hash), 0);
		CHECK_EQ(blob_count(h), 1);
		store_close(h);
	}
	ct_close(db);
}

static void ct_store_list(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	const char *names[] = { "b", "a", "B", "A", "aa", "ab", "a b", "a\x01", "z", "\x01",
				"\x7f", "\x80", "\xff", "\xff\xff", "0", "9", "-", "_", "~",
				"incoming", NULL /* 255 bytes */ };
	const char *absent[] = { "aa0", "\x02", "\xfe", "zzz", "Ab", "a c", "1", "\xff\xff\xff" };
	enum { N = sizeof(names) / sizeof(names[0]) };
	char longest[256], *sorted[N];
	size_t order[N];
	struct namelist l = { 0 };
	struct blobdb *db;

	TU_TEST("store_list: byte order, the after cursor, stopping early");
	memset(longest, 'a', 255);
	longest[255] = '\0';
	names[N - 1] = longest;
	if (ct_s3) {
		/* UTF-8 without control characters (store names on S3), in byte
		 * order as far apart as the others. */
		names[7] = "a!";
		names[9] = " ";
		names[10] = "\xc2\x80";
		names[11] = "\xc3\xa9";
		names[12] = "\xef\xbf\xbd";
		names[13] = "\xf0\x9f\x98\x80";
	}
	db = ct_open("list", NULL);
	tu_rng_shuffle(&rng, order, N);
	for (size_t i = 0; i < N; i++)
		CHECK_EQ(store_create(db, names[order[i]]), 0);
	for (size_t i = 0; i < N; i++)
		sorted[i] = (char *)names[i];
	qsort(sorted, N, sizeof(sorted[0]), cmp_str);
	CHECK_EQ(store_count(db), N);
	check_store_listing(db, sorted, N, absent, sizeof(absent) / sizeof(absent[0]));
	/* A destroyed store leaves the listing; the rest keep their order. */
	CHECK_EQ(store_destroy(db, sorted[4], false), 0);
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 0);
	if (CHECK_EQ(l.n, N - 1))
		for (size_t i = 0, j = 0; i < N; i++)
			if (i != 4)
				CHECK(!strcmp(l.names[j++], sorted[i]));
	namelist_free(&l);
	ct_close(db);
}

static void ct_store_destroy(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	struct blobdb *db;
	struct store *s, *keep;
	uint8_t *data = tu_rng_buffer(&rng, 300 * KiB), hash[HS];

	TU_TEST("store_destroy: statuses, only_if_empty, other stores untouched");
	db = ct_open("destroy", NULL);
	CHECK_EQ(store_destroy(db, "nope", false), -ENOENT);
	CHECK_EQ(store_destroy(db, "nope", true), -ENOENT);
	CHECK_EQ(store_destroy(db, "", false), -EINVAL);
	CHECK_EQ(store_destroy(db, ".x", true), -EINVAL);
	CHECK_EQ(store_destroy(db, "a/b", false), -EINVAL);
	REQUIRE(store_create(db, "s") == 0);
	REQUIRE(store_create(db, "keep") == 0);
	s = st_open(db, "s");
	keep = st_open(db, "keep");
	CHECK_EQ(blob_save(s, data, 300 * KiB, hash), 0);
	CHECK_EQ(blob_save(keep, data, 300 * KiB, hash), 0); /* the same blob, elsewhere */
	CHECK_EQ(blob_save(s, "x", 1, hash), 0);
	CHECK_EQ(store_destroy(db, "s", true), -ENOTEMPTY);
	CHECK(!store_destroyed(s));
	CHECK_EQ(blob_count(s), 2);
	CHECK(blob_is(s, data, 300 * KiB));
	/* Emptied by deletes, only_if_empty succeeds. */
	CHECK_EQ(blob_delete(s, hash), 0);
	sha(data, 300 * KiB, hash);
	CHECK_EQ(blob_delete(s, hash), 0);
	CHECK_EQ(blob_count(s), 0);
	CHECK_EQ(store_destroy(db, "s", true), 0);
	CHECK(store_destroyed(s));
	store_close(s);
	CHECK_EQ(store_destroy(db, "s", true), -ENOENT);
	/* Destroying a store with blobs, without only_if_empty. */
	REQUIRE(store_create(db, "s") == 0);
	s = st_open(db, "s");
	CHECK_EQ(blob_count(s), 0); /* recreated: empty */
	CHECK(ct_blob_absent(s, hash));
	CHECK_EQ(blob_save(s, data, 300 * KiB, hash), 0);
	store_close(s);
	CHECK_EQ(store_destroy(db, "s", false), 0);
	check_only_store_left(db, "s", "keep");
	/* The copy in the other store is untouched. */
	CHECK(blob_is(keep, data, 300 * KiB));
	CHECK_EQ(blob_count(keep), 1);
	REQUIRE(store_create(db, "s") == 0);
	s = st_open(db, "s");
	CHECK_EQ(blob_count(s), 0);
	CHECK(ct_blob_absent(s, hash));
	store_close(s);
	store_close(keep);
	ct_close(db);
	free(data);
}

/* ---- blobs ---- */

static void ct_blob_basics(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	static const size_t sizes[] = {
		0, 1, 2, 100, 4095, 4096, 4097, 65535, 65536, 65537, 300 * KiB,
		MiB - 1, MiB, MiB + 1, 2 * MiB - 1, 2 * MiB, 2 * MiB + 1, 5 * MiB + 3,
	};
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };
	uint8_t *data[N], hashes[N][HS], hash[HS], missing[HS];
	struct blobdb *db;
	struct store *s;

	TU_TEST("blob save / info / count / read / delete, 0 B to 5 MiB");
	db = ct_open("blobs", NULL);
	REQUIRE(store_create(db, "b") == 0);
	s = st_open(db, "b");
	memset(missing, 0x5a, HS);
	CHECK(ct_blob_absent(s, missing));
	for (size_t i = 0; i < N; i++) {
		data[i] = tu_rng_buffer(&rng, sizes[i]);
		memset(hash, 0, HS);
		if (!CHECK_EQ(blob_save(s, data[i], sizes[i], hash), 0))
			fprintf(stderr, "  size %zu\n", sizes[i]);
		sha(data[i], sizes[i], hashes[i]);
		CHECK_MEM(hash, hashes[i], HS);
		CHECK_EQ(blob_count(s), i + 1);
		/* A second save is a no-op reported as already-exists, with the hash. */
		memset(hash, 0, HS);
		CHECK_EQ(blob_save(s, data[i], sizes[i], hash), -EEXIST);
		CHECK_MEM(hash, hashes[i], HS);
		CHECK_EQ(blob_count(s), i + 1);
	}
	for (size_t i = 0; i < N; i++)
		if (!CHECK(blob_is(s, data[i], sizes[i])))
			fprintf(stderr, "  size %zu\n", sizes[i]);
	/* The empty blob is the SHA-256 of nothing. */
	hash_from_hex("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855", 64,
		      hash);
	CHECK_MEM(hashes[0], hash, HS);

	TU_TEST("blob reads that cross 1 MiB boundaries by one byte either side");
	{
		size_t big = N - 1; /* 5 MiB + 3 */
		struct blob_reader *r = NULL;
		uint8_t buf[16];
		size_t got;

		REQUIRE(blob_open(s, hashes[big], &r) == 0);
		CHECK_EQ(blob_reader_length(r), sizes[big]);
		for (uint64_t b = MiB; b <= 5 * MiB; b += MiB) {
			for (uint64_t off = b - 2; off <= b + 1 && off + 3 <= sizes[big]; off++) {
				got = 0;
				CHECK_EQ(blob_read(r, buf, 3, off, &got), 0);
				CHECK_EQ(got, 3);
				CHECK_MEM(buf, data[big] + off, 3);
			}
		}
		got = 0; /* the last bytes, asking for more */
		CHECK_EQ(blob_read(r, buf, sizeof(buf), sizes[big] - 2, &got), 0);
		CHECK_EQ(got, 2);
		CHECK_MEM(buf, data[big] + sizes[big] - 2, 2);
		blob_close(r);
	}

	TU_TEST("blob delete: -ENOENT afterwards, count, saving again");
	for (size_t i = 0; i < N; i += 2) {
		CHECK_EQ(blob_delete(s, hashes[i]), 0);
		CHECK(ct_blob_absent(s, hashes[i]));
	}
	CHECK_EQ(blob_count(s), N / 2);
	for (size_t i = 1; i < N; i += 2)
		CHECK(blob_is(s, data[i], sizes[i]));
	for (size_t i = 0; i < N; i += 2) { /* saved again: a new save, not -EEXIST */
		CHECK_EQ(blob_save(s, data[i], sizes[i], hash), 0);
		CHECK_MEM(hash, hashes[i], HS);
		CHECK(blob_is(s, data[i], sizes[i]));
	}
	CHECK_EQ(blob_count(s), N);
	CHECK_EQ(store_sync(s), 0);
	CHECK_EQ(blobdb_sync(db), 0);
	for (size_t i = 0; i < N; i++)
		free(data[i]);
	store_close(s);
	ct_close(db);
}

/* store_stats: what every backend must say (the local engine's packs and
 * dead bytes are tests/unit/test_store_stats.c's). */
static void ct_store_stats(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	enum { N = 30 };
	uint8_t hashes[N][HS], hash[HS];
	size_t lens[N];
	uint64_t bytes = 0, blobs = 0;
	struct store_stats st, other;
	struct blobdb *db;
	struct store *s, *t;

	TU_TEST("store_stats: blobs and bytes after saves and deletes, per store");
	db = ct_open("stats", NULL);
	REQUIRE(store_create(db, "s") == 0);
	REQUIRE(store_create(db, "t") == 0);
	s = st_open(db, "s");
	t = st_open(db, "t");
	CHECK_EQ(store_stats(s, &st), 0);
	CHECK_EQ(st.blobs, 0);
	CHECK_EQ(st.bytes, 0);
	CHECK_EQ(st.dead_bytes, 0);
	if (ct_memory)
		CHECK_EQ(st.packs, 0);
	for (size_t i = 0; i < N; i++) {
		uint8_t *d;

		lens[i] = i == 0 ? 0 : (size_t)tu_rng_below(&rng, i % 10 ? 5000 : 1200000);
		d = tu_rng_buffer(&rng, lens[i]);
		CHECK_EQ(blob_save(s, d, lens[i], hashes[i]), 0);
		if (i < 3) /* the same content in another store counts there only */
			CHECK_EQ(blob_save(t, d, lens[i], hash), 0);
		if (i == 5)
			CHECK_EQ(blob_save(s, d, lens[i], hash), -EEXIST);
		free(d);
		bytes += lens[i];
		blobs++;
	}
	CHECK_EQ(store_stats(s, &st), 0);
	CHECK_EQ(st.blobs, blobs);
	CHECK_EQ(st.blobs, blob_count(s));
	CHECK_EQ(st.bytes, bytes);
	if (ct_memory || ct_s3)
		CHECK(st.packs == 0 && st.dead_bytes == 0);
	else
		CHECK(st.packs > 0);
	CHECK_EQ(store_stats(t, &other), 0);
	CHECK_EQ(other.blobs, 3);
	CHECK_EQ(other.bytes, lens[0] + lens[1] + lens[2]);
	for (size_t i = 0; i < N; i += 3) {
		CHECK_EQ(blob_delete(s, hashes[i]), 0);
		bytes -= lens[i];
		blobs--;
	}
	CHECK_EQ(store_stats(s, &st), 0);
	CHECK_EQ(st.blobs, blobs);
	CHECK_EQ(st.bytes, bytes);
	if (ct_memory || ct_s3)
		CHECK_EQ(st.dead_bytes, 0);
	else
		CHECK(st.dead_bytes > 0);
	CHECK_EQ(store_destroy(db, "s", false), 0);
	CHECK_EQ(store_stats(s, &st), -ENOENT);
	CHECK_EQ(store_stats(t, &other), 0);
	CHECK_EQ(other.blobs, 3);
	store_close(s);
	store_close(t);
	ct_close(db);
}

static void ct_blob_list(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	enum { N = 150 };
	uint8_t hashes[N][HS], probe[HS];
	struct hashlist l = { 0 };
	struct blobdb *db;
	struct store *s;
	size_t lens[N];

	TU_TEST("blob_list: hash order, lengths, the after cursor, stopping early");
	db = ct_open("bloblist", NULL);
	REQUIRE(store_create(db, "l") == 0);
	s = st_open(db, "l");
	CHECK_EQ(blob_list(s, NULL, collect_hash, &l), 0);
	CHECK_EQ(l.n, 0);
	for (size_t i = 0; i < N; i++) {
		uint8_t *d;

		lens[i] = i == 0 ? 0 : (size_t)tu_rng_below(&rng, i % 10 ? 5000 : 1200000);
		d = tu_rng_buffer(&rng, lens[i]);
		CHECK_EQ(blob_save(s, d, lens[i], hashes[i]), 0);
		free(d);
	}
	/* The model: hashes sorted, with their lengths. */
	{
		uint8_t sorted[N][HS + sizeof(size_t)];

		for (size_t i = 0; i < N; i++) {
			memcpy(sorted[i], hashes[i], HS);
			memcpy(sorted[i] + HS, &lens[i], sizeof(size_t));
		}
		qsort(sorted, N, sizeof(sorted[0]), cmp_hash);
		CHECK_EQ(blob_count(s), N);
		CHECK_EQ(blob_list(s, NULL, collect_hash, &l), 0);
		if (CHECK_EQ(l.n, N))
			for (size_t i = 0; i < N; i++) {
				size_t len;

				memcpy(&len, sorted[i] + HS, sizeof(len));
				CHECK_MEM(l.h[i], sorted[i], HS);
				CHECK_EQ(l.len[i], len);
			}
		hashlist_free(&l);
		for (size_t k = 0; k < N; k += 7) { /* after each listed hash: the rest */
			CHECK_EQ(blob_list(s, sorted[k], collect_hash, &l), 0);
			if (CHECK_EQ(l.n, N - k - 1))
				for (size_t i = 0; i < l.n; i++)
					CHECK_MEM(l.h[i], sorted[k + 1 + i], HS);
			hashlist_free(&l);
		}
		for (int k = 0; k < 20; k++) { /* after hashes that are not blobs */
			size_t first = 0;

			if (k == 0)
				memset(probe, 0, HS);
			else if (k == 1)
				memset(probe, 0xff, HS);
			else if (k == 2) { /* just above a listed hash */
				memcpy(probe, sorted[N / 2], HS);
				probe[HS - 1] ^= 1;
			} else
				tu_rng_fill(&rng, probe, HS);
			while (first < N && memcmp(sorted[first], probe, HS) <= 0)
				first++;
			CHECK_EQ(blob_list(s, probe, collect_hash, &l), 0);
			if (CHECK_EQ(l.n, N - first))
				for (size_t i = 0; i < l.n; i++)
					CHECK_MEM(l.h[i], sorted[first + i], HS);
			hashlist_free(&l);
		}
		/* Paging with the cursor visits every blob once. */
		{
			size_t seen = 0;
			uint8_t cursor[HS];
			bool first = true;

			for (;;) {
				l.stop_after = 16;
				int r = blob_list(s, first ? NULL : cursor, collect_hash, &l);

				CHECK(r == 0 || r == 77);
				for (size_t i = 0; i < l.n && seen + i < N; i++)
					CHECK_MEM(l.h[i], sorted[seen + i], HS);
				seen += l.n;
				if (l.n == 0 || r == 0) {
					hashlist_free(&l);
					break;
				}
				memcpy(cursor, l.h[l.n - 1], HS);
				first = false;
				hashlist_free(&l);
			}
			CHECK_EQ(seen, N);
		}
		/* Deleted blobs leave the listing. */
		for (size_t i = 0; i < N; i += 3)
			CHECK_EQ(blob_delete(s, sorted[i]), 0);
		CHECK_EQ(blob_list(s, NULL, collect_hash, &l), 0);
		if (CHECK_EQ(l.n, N - (N + 2) / 3))
			for (size_t i = 0, j = 0; i < N; i++)
				if (i % 3)
					CHECK_MEM(l.h[j++], sorted[i], HS);
		CHECK_EQ(blob_count(s), l.n);
		hashlist_free(&l);
	}
	store_close(s);
	ct_close(db);
}

static void ct_readers_after_delete(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	const size_t sizes[] = { 1000, 200 * KiB, 3 * MiB + 17 };
	struct blobdb *db;
	struct store *s;

	TU_TEST("a reader keeps reading after its blob is deleted");
	db = ct_open("readers", NULL);
	REQUIRE(store_create(db, "r") == 0);
	s = st_open(db, "r");
	for (size_t k = 0; k < 3; k++) {
		size_t n = sizes[k], got = 0;
		uint8_t *d = tu_rng_buffer(&rng, n), *buf = tu_xmalloc(n), hash[HS];
		struct blob_reader *r1 = NULL, *r2 = NULL;

		CHECK_EQ(blob_save(s, d, n, hash), 0);
		REQUIRE(blob_open(s, hash, &r1) == 0);
		REQUIRE(blob_open(s, hash, &r2) == 0);
		CHECK_EQ(blob_read(r1, buf, n / 3, 0, &got), 0); /* started before */
		CHECK_EQ(got, n / 3);
		CHECK_EQ(blob_delete(s, hash), 0);
		CHECK(ct_blob_absent(s, hash));
		/* Other blobs come and go meanwhile. */
		for (int j = 0; j < 20; j++) {
			uint8_t *o = tu_rng_buffer(&rng, 70000), h[HS];

			CHECK_EQ(blob_save(s, o, 70000, h), 0);
			CHECK_EQ(blob_delete(s, h), 0);
			free(o);
		}
		CHECK_EQ(blob_read(r1, buf + n / 3, n - n / 3, n / 3, &got), 0);
		CHECK_EQ(got, n - n / 3);
		CHECK_MEM(buf, d, n);
		CHECK_EQ(blob_reader_length(r2), n);
		memset(buf, 0, n);
		CHECK_EQ(blob_read(r2, buf, n, 0, &got), 0);
		CHECK_EQ(got, n);
		CHECK_MEM(buf, d, n);
		blob_close(r1);
		blob_close(r2);
		CHECK(ct_blob_absent(s, hash));
		free(d);
		free(buf);
	}
	CHECK_EQ(blob_count(s), 0);
	store_close(s);
	ct_close(db);
}

/* local: everything is there after a reopen; memory: nothing is. */
static void ct_after_close(uint64_t seed)
{
	struct tu_rng rng = { .state = seed };
	uint8_t *a = tu_rng_buffer(&rng, 123457), *b = tu_rng_buffer(&rng, 2 * MiB + 1), hb[HS];
	struct namelist l = { 0 };
	struct blobdb *db;
	struct store *s;

	TU_TEST(ct_memory ? "memory: the stores vanish at close"
			   : "local, s3: stores and blobs are there after a reopen");
	db = ct_open("reopen", NULL);
	REQUIRE(store_create(db, "p") == 0);
	REQUIRE(store_create(db, "q") == 0);
	s = st_open(db, "p");
	CHECK_EQ(blob_save(s, a, 123457, hb), 0);
	CHECK_EQ(blob_save(s, b, 2 * MiB + 1, hb), 0);
	CHECK_EQ(blob_delete(s, hb), 0);
	CHECK_EQ(store_sync(s), 0);
	store_close(s);
	ct_close(db);
	db = ct_reopen("reopen", NULL);
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 0);
	if (ct_memory) {
		CHECK_EQ(store_count(db), 0);
		CHECK_EQ(l.n, 0);
		s = (struct store *)1;
		CHECK_EQ(store_open(db, "p", &s), -ENOENT);
		CHECK_EQ(store_create(db, "p"), 0); /* and the name is free again */
	} else {
		CHECK(l.n == 2 && !strcmp(l.names[0], "p") && !strcmp(l.names[1], "q"));
		s = st_open(db, "p");
		CHECK_EQ(blob_count(s), 1);
		CHECK(blob_is(s, a, 123457));
		CHECK(ct_blob_absent(s, hb));
		store_close(s);
	}
	namelist_free(&l);
	ct_close(db);
	free(a);
	free(b);
}

static void ct_memory_max(uint64_t seed)
{
#ifdef CONTRACT_HAVE_MEMORY_MAX
	struct tu_rng rng = { .state = seed };
	enum { MAXB = 200, BLOB = 256 * 1024 };
	struct blobdb_options opts;
	uint8_t *saved[MAXB], hashes[MAXB][HS], hash[HS];
	struct blobdb *db;
	struct store *s;
	size_t n = 0;
	int r = 0;

	TU_TEST("memory_max: -ENOSPC, earlier blobs intact, a delete makes room");
	blobdb_options_default(&opts);
	opts.memory_max = 4 * MiB;
	db = ct_open("memmax", &opts);
	REQUIRE(store_create(db, "m") == 0);
	s = st_open(db, "m");
	/* 50 MiB is far past 4 MiB: the saves must fail long before. */
	while (n < MAXB) {
		saved[n] = tu_rng_buffer(&rng, BLOB);
		r = blob_save(s, saved[n], BLOB, hashes[n]);
		if (r != 0)
			break;
		n++;
	}
	CHECK_EQ(r, -ENOSPC);
	CHECK(n >= 4);              /* 1 MiB of 4 fits, whatever the overhead */
	CHECK(n * BLOB <= 4 * MiB); /* content held stays within memory_max */
	if (n < MAXB) {
		sha(saved[n], BLOB, hash);
		CHECK(ct_blob_absent(s, hash));
		CHECK_EQ(blob_save(s, saved[n], BLOB, hash), -ENOSPC); /* still full */
		free(saved[n]);
	}
	CHECK_EQ(blob_count(s), n);
	for (size_t i = 0; i < n; i++)
		CHECK(blob_is(s, saved[i], BLOB));
	/* A writer hits the limit too: at a write or at the commit. */
	{
		struct blob_writer *w = NULL;
		uint8_t *big = tu_rng_buffer(&rng, 5 * MiB);
		int wr = 0;

		REQUIRE(blob_writer_new(s, &w) == 0);
		for (size_t off = 0; off < 5 * MiB && wr == 0; off += 64 * KiB)
			wr = blob_writer_write(w, big + off, 64 * KiB, off);
		if (wr == 0)
			wr = blob_writer_commit(w, hash);
		CHECK_EQ(wr, -ENOSPC);
		blob_writer_free(w);
		sha(big, 5 * MiB, hash);
		CHECK(ct_blob_absent(s, hash));
		free(big);
	}
	CHECK_EQ(blob_count(s), n);
	/* Deleting frees room: the same size fits again. */
	if (n > 0) {
		uint8_t *fresh = tu_rng_buffer(&rng, BLOB);

		CHECK_EQ(blob_delete(s, hashes[n - 1]), 0);
		free(saved[--n]);
		CHECK_EQ(blob_save(s, fresh, BLOB, hash), 0);
		CHECK(blob_is(s, fresh, BLOB));
		free(fresh);
	}
	/* A destroyed store gives its room back as well. */
	store_close(s);
	CHECK_EQ(store_destroy(db, "m", false), 0);
	REQUIRE(store_create(db, "m2") == 0);
	s = st_open(db, "m2");
	for (size_t i = 0; i < n; i++)
		CHECK_EQ(blob_save(s, saved[i], BLOB, hash), 0);
	for (size_t i = 0; i < n; i++)
		free(saved[i]);
	store_close(s);
	ct_close(db);
#else
	(void)seed;
	TU_TEST("memory_max: -ENOSPC, earlier blobs intact, a delete makes room");
	tu_report(__FILE__, __LINE__, "struct blobdb_options has no memory_max: "
		  "the memory backend's API is not there yet");
#endif
}

int main(int argc, char **argv)
{
	uint64_t seed;

	tu_init(argv[0]);
	if (argc != 2) {
		fprintf(stderr, "usage: %s local|memory:|DIR|s3://BUCKET/PREFIX\n", argv[0]);
		return 2;
	}
	seed = tu_seed();
	if (!strcmp(argv[1], "memory:")) {
		ct_memory = true;
		ct_location = "memory:";
		/* Run in an empty directory that must stay empty. */
		snprintf(ct_cwd, sizeof(ct_cwd), "%s", tu_tmpdir());
		REQUIRE(chdir(ct_cwd) == 0);
	} else if (!strcmp(argv[1], "local")) {
		ct_location = tu_tmpdir();
	} else if (!strncmp(argv[1], "s3://", 5)) {
		/* The object store from the environment (scripts/ceph-dev env). */
		ct_s3 = true;
		ct_location = argv[1];
		if (ct_s3_prepare() < 0)
			return 2;
	} else {
		ct_location = argv[1];
		if (mkdir(ct_location, 0700) < 0 && errno != EEXIST) {
			fprintf(stderr, "%s: %s\n", ct_location, strerror(errno));
			return 2;
		}
	}
	fprintf(stderr, "backend: %s (%s)\n", ct_memory ? "memory" : ct_s3 ? "s3" : "local",
		ct_location);

	ct_empty_database();
	ct_store_names();
	ct_store_list(seed + 1);
	ct_store_destroy(seed + 2);
	ct_blob_basics(seed + 3);
	ct_blob_list(seed + 4);
	ct_store_stats(seed + 12);
	ct_readers_after_delete(seed + 5);
	ct_writers(seed + 6);
	ct_list_while_saving(seed + 7);
	ct_concurrent_writers(seed + 8);
	ct_destroyed_store_references(seed + 9);
	ct_after_close(seed + 10);
	ct_saved_time(seed + 12);
	ct_tentative(seed + 13);
	ct_owners(seed + 14);
	if (ct_memory)
		ct_memory_max(seed + 11);
	if (ct_memory)
		ct_check_nothing_on_disk();
	return tu_finish();
}
