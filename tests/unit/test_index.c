/*
 * test_index.c - the ordered hash table, against a reference model (a
 * sorted array): random put / replace / remove / lookup / seek sequences,
 * full-order iteration both through index_foreach and through repeated
 * index_seek(after), growth to 200k entries, and adversarial keys that share
 * long prefixes (and so share home slots).
 */
#include "index.h"
#include "testutil.h"

/* Under AddressSanitizer an absurd allocation aborts the process by default;
 * make it fail as it does without the sanitizer (NULL), and quickly, so that
 * what the code does about it is what gets tested. */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=4096";
}

/* ---- the reference model: entries sorted by hash ---- */

struct model {
	struct index_entry *e;
	size_t count, capacity;
};

static int hash_cmp(const uint8_t *a, const uint8_t *b)
{
	return memcmp(a, b, BLOBFS_HASH_SIZE);
}

static int entry_cmp(const void *a, const void *b)
{
	return hash_cmp(((const struct index_entry *)a)->hash, ((const struct index_entry *)b)->hash);
}

/* Index of the first entry >= hash (> hash when after). */
static size_t model_bound(const struct model *m, const uint8_t *hash, bool after)
{
	size_t lo = 0, hi = m->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = hash_cmp(m->e[mid].hash, hash);
		if (c < 0 || (after && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct index_entry *model_find(struct model *m, const uint8_t *hash)
{
	size_t i = model_bound(m, hash, false);

	return i < m->count && !hash_cmp(m->e[i].hash, hash) ? &m->e[i] : NULL;
}

static void model_put(struct model *m, const struct index_entry *e)
{
	size_t i = model_bound(m, e->hash, false);

	if (i < m->count && !hash_cmp(m->e[i].hash, e->hash)) {
		m->e[i] = *e;
		return;
	}
	if (m->count == m->capacity) {
		m->capacity = m->capacity ? 2 * m->capacity : 1024;
		m->e = realloc(m->e, m->capacity * sizeof(*m->e));
		if (!m->e)
			exit(2);
	}
	memmove(&m->e[i + 1], &m->e[i], (m->count - i) * sizeof(*m->e));
	m->e[i] = *e;
	m->count++;
}

static bool model_remove(struct model *m, const uint8_t *hash)
{
	size_t i = model_bound(m, hash, false);

	if (i >= m->count || hash_cmp(m->e[i].hash, hash))
		return false;
	memmove(&m->e[i], &m->e[i + 1], (m->count - i - 1) * sizeof(*m->e));
	m->count--;
	return true;
}

static void model_free(struct model *m)
{
	free(m->e);
	memset(m, 0, sizeof(*m));
}

/* ---- entries and keys ---- */

/* Fields the index keeps, within their ranges: seq and chunk_shift are not
 * kept (they come back 0), so the payload leaves them 0. */
static void random_payload(struct index_entry *e)
{
	e->offset = tu_rand() & INDEX_OFFSET_MAX;
	e->length = (tu_rand() >> (tu_rand() & 63)) & INDEX_LENGTH_MAX;
	e->seq = 0;
	e->pack_id = (uint32_t)tu_rand() | 1;
	/* any time a record can hold: a slot keeps 48 bits */
	e->saved = (int64_t)(tu_rand() % (UINT64_C(1) << 48)) + RECORD_TIME_MIN;
	e->disk = tu_rand_below(2) ? index_disk_round(tu_rand() >> (tu_rand() & 63)) : 0;
	e->kind = tu_rand_below(4) ? RECORD_BLOB : RECORD_TOMBSTONE;
	e->chunk_shift = 0;
	e->reserved = 0;
}

static struct index_entry make_entry(const uint8_t *hash)
{
	struct index_entry e;

	memset(&e, 0, sizeof(e));
	memcpy(e.hash, hash, BLOBFS_HASH_SIZE);
	random_payload(&e);
	return e;
}

static void hex(const uint8_t *hash, char out[2 * BLOBFS_HASH_SIZE + 1])
{
	for (int i = 0; i < BLOBFS_HASH_SIZE; i++)
		snprintf(out + 2 * i, 3, "%02x", hash[i]);
}

/* ---- whole-table comparison ---- */

struct collect {
	const struct model *m;
	size_t i;
	long bad;
};

static int collect_fn(const struct index_entry *e, void *arg)
{
	struct collect *c = arg;

	if (c->i >= c->m->count || memcmp(e, &c->m->e[c->i], sizeof(*e))) {
		if (c->bad++ == 0) {
			char h[2 * BLOBFS_HASH_SIZE + 1];
			hex(e->hash, h);
			fprintf(stderr, "index_foreach: entry %zu is %s, not the model's\n", c->i, h);
		}
	}
	c->i++;
	return 0;
}

/* Compares everything: count, lookups of every key, order through foreach
 * and through a chain of seeks. Returns false at the first kind of mismatch. */
static bool verify_all(const struct index *index, const struct model *m)
{
	struct collect c = { .m = m };
	struct index_entry got;
	const uint8_t *cursor = NULL;
	uint8_t prev[BLOBFS_HASH_SIZE];
	size_t n = 0;
	long bad_lookup = 0, bad_seek = 0;
	bool ok = true;

	ok &= CHECK_EQ(index_count(index), m->count);
	ok &= CHECK_EQ(index_foreach(index, collect_fn, &c), 0);
	ok &= CHECK_EQ(c.bad, 0);
	ok &= CHECK_EQ(c.i, m->count);
	for (size_t i = 0; i < m->count; i++) {
		if (index_lookup(index, m->e[i].hash, &got) != 0 ||
		    memcmp(&got, &m->e[i], sizeof(got)))
			bad_lookup++;
	}
	ok &= CHECK_EQ(bad_lookup, 0);
	/* Seek chain: NULL, then after each returned hash. */
	for (;;) {
		int r = index_seek(index, cursor, true, &got);
		if (r != 1) {
			if (r != 0)
				bad_seek++;
			break;
		}
		if (n >= m->count || memcmp(&got, &m->e[n], sizeof(got))) {
			bad_seek++;
			break;
		}
		memcpy(prev, got.hash, BLOBFS_HASH_SIZE);
		cursor = prev;
		n++;
	}
	ok &= CHECK_EQ(bad_seek, 0);
	ok &= CHECK_EQ(n, m->count);
	return ok;
}

/* One seek against the model; returns false on a mismatch. */
static bool check_seek(const struct index *index, const struct model *m, const uint8_t *from,
		       bool after)
{
	struct index_entry got;
	size_t i = from ? model_bound(m, from, after) : 0;
	int r = index_seek(index, from, after, &got);

	if (i >= m->count)
		return CHECK_EQ(r, 0);
	if (!CHECK_EQ(r, 1))
		return false;
	return CHECK_MEM(&got, &m->e[i], sizeof(got));
}

/* ---- tests ---- */

static int stop_at_third(const struct index_entry *e, void *arg)
{
	int *calls = arg;

	(void)e;
	return ++*calls == 3 ? 42 : 0;
}

static int count_calls(const struct index_entry *e, void *arg)
{
	(void)e;
	++*(int *)arg;
	return 0;
}

static void test_basics(void)
{
	struct index *index;
	struct index_entry e, got;
	uint8_t key[BLOBFS_HASH_SIZE];
	int calls = 0;

	TU_TEST("basics");
	REQUIRE(index_new(&index) == 0 && index);
	memset(key, 0x11, sizeof(key));
	CHECK_EQ(index_count(index), 0);
	CHECK_EQ(index_lookup(index, key, &got), -ENOENT);
	CHECK_EQ(index_remove(index, key), -ENOENT);
	CHECK_EQ(index_seek(index, NULL, false, &got), 0);
	CHECK_EQ(index_seek(index, NULL, true, &got), 0);
	CHECK_EQ(index_seek(index, key, false, &got), 0);
	CHECK_EQ(index_foreach(index, count_calls, &calls), 0);
	CHECK_EQ(calls, 0);

	/* kind 0 marks a free slot: refused. */
	e = make_entry(key);
	e.kind = 0;
	CHECK_EQ(index_put(index, &e), -EINVAL);
	CHECK_EQ(index_count(index), 0);

	/* Put, lookup (every field comes back), replace, remove. */
	e = make_entry(key);
	CHECK_EQ(index_put(index, &e), 0);
	CHECK_EQ(index_count(index), 1);
	CHECK_EQ(index_lookup(index, key, &got), 0);
	CHECK_MEM(&got, &e, sizeof(e));
	e.offset = INDEX_OFFSET_MAX;
	e.length = INDEX_LENGTH_MAX;
	e.pack_id = UINT32_MAX;
	e.kind = RECORD_TOMBSTONE;
	e.saved = RECORD_TIME_MIN;
	e.disk = INDEX_DISK_MAX;
	CHECK_EQ(index_put(index, &e), 0);
	CHECK_EQ(index_count(index), 1);
	CHECK_EQ(index_lookup(index, key, &got), 0);
	CHECK_MEM(&got, &e, sizeof(e));
	/* Out of range for a slot, or pack 0 (free slots): refused, and the
	 * entry there is left alone. */
	got = e;
	got.offset = INDEX_OFFSET_MAX + 1;
	CHECK_EQ(index_put(index, &got), -EINVAL);
	got = e;
	got.length = INDEX_LENGTH_MAX + 1;
	CHECK_EQ(index_put(index, &got), -EINVAL);
	got = e;
	got.pack_id = 0;
	CHECK_EQ(index_put(index, &got), -EINVAL);
	got = e;
	got.saved = RECORD_TIME_MAX + 1;
	CHECK_EQ(index_put(index, &got), -EINVAL);
	got = e;
	got.saved = RECORD_TIME_MIN - 1;
	CHECK_EQ(index_put(index, &got), -EINVAL);
	CHECK_EQ(index_lookup(index, key, &got), 0);
	CHECK_MEM(&got, &e, sizeof(e));
	/* seq and chunk_shift are not kept. */
	got = e;
	got.seq = 77;
	got.chunk_shift = CHUNK_SHIFT_DEFAULT;
	CHECK_EQ(index_put(index, &got), 0);
	CHECK_EQ(index_lookup(index, key, &got), 0);
	CHECK_MEM(&got, &e, sizeof(e));
	/* A failed put (kind 0) of a present key leaves it alone. */
	got = e;
	got.kind = 0;
	CHECK_EQ(index_put(index, &got), -EINVAL);
	CHECK_EQ(index_lookup(index, key, &got), 0);
	CHECK_MEM(&got, &e, sizeof(e));

	/* Seeks around a single entry. */
	CHECK_EQ(index_seek(index, NULL, false, &got), 1);
	CHECK_MEM(got.hash, key, sizeof(key));
	CHECK_EQ(index_seek(index, NULL, true, &got), 1); /* NULL: the very first */
	CHECK_EQ(index_seek(index, key, false, &got), 1);
	CHECK_EQ(index_seek(index, key, true, &got), 0);
	key[31] = 0x10;
	CHECK_EQ(index_seek(index, key, true, &got), 1);
	key[31] = 0x12;
	CHECK_EQ(index_seek(index, key, false, &got), 0);
	key[31] = 0x11;

	CHECK_EQ(index_remove(index, key), 0);
	CHECK_EQ(index_remove(index, key), -ENOENT);
	CHECK_EQ(index_count(index), 0);
	CHECK_EQ(index_lookup(index, key, &got), -ENOENT);

	/* foreach stops at the first non-zero and returns it. */
	for (int i = 0; i < 10; i++) {
		tu_fill_random(key, sizeof(key));
		e = make_entry(key);
		CHECK_EQ(index_put(index, &e), 0);
	}
	calls = 0;
	CHECK_EQ(index_foreach(index, stop_at_third, &calls), 42);
	CHECK_EQ(calls, 3);
	index_free(index);
	index_free(NULL);
}

/* The extreme keys: all zeros, all ones, and their neighbours. */
static void test_extreme_keys(void)
{
	struct index *index;
	struct model m = { 0 };
	uint8_t key[BLOBFS_HASH_SIZE];

	TU_TEST("extreme keys");
	REQUIRE(index_new(&index) == 0);
	for (int v = 0; v < 2; v++) {
		for (int last = 0; last < 3; last++) {
			struct index_entry e;
			memset(key, v ? 0xff : 0x00, sizeof(key));
			key[31] = (uint8_t)(v ? 0xff - last : last);
			e = make_entry(key);
			CHECK_EQ(index_put(index, &e), 0);
			model_put(&m, &e);
		}
	}
	for (int i = 0; i < 500; i++) {
		struct index_entry e;
		tu_fill_random(key, sizeof(key));
		e = make_entry(key);
		CHECK_EQ(index_put(index, &e), 0);
		model_put(&m, &e);
	}
	verify_all(index, &m);
	memset(key, 0, sizeof(key));
	check_seek(index, &m, key, false);
	check_seek(index, &m, key, true);
	memset(key, 0xff, sizeof(key));
	check_seek(index, &m, key, false);
	check_seek(index, &m, key, true);
	/* Remove the extremes and check again. */
	for (int v = 0; v < 2; v++) {
		memset(key, v ? 0xff : 0x00, sizeof(key));
		CHECK_EQ(index_remove(index, key), 0);
		model_remove(&m, key);
	}
	verify_all(index, &m);
	index_free(index);
	model_free(&m);
}

/* A few fixed prefixes that random-operation keys cluster under, so that long
 * runs of equal home slots form and interleave. */
static const uint8_t cluster_prefixes[][8] = {
	{ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 },
	{ 0x40, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01 },
	{ 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
	{ 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 },
	{ 0xa5, 0x5a, 0xa5, 0x5a, 0x00, 0x00, 0x00, 0x00 },
};

/* Picks a key: usually random, often one that is present, sometimes a near
 * neighbour of a present one, sometimes one of a cluster. */
static void pick_key(const struct model *m, uint8_t key[BLOBFS_HASH_SIZE])
{
	uint64_t r = tu_rand_below(100);

	if (r < 35 || m->count == 0) {
		tu_fill_random(key, BLOBFS_HASH_SIZE);
	} else if (r < 65) {
		memcpy(key, m->e[tu_rand_below(m->count)].hash, BLOBFS_HASH_SIZE);
	} else if (r < 85) {
		/* Shares at least 8 bytes with a present key: same home slot. */
		memcpy(key, m->e[tu_rand_below(m->count)].hash, BLOBFS_HASH_SIZE);
		key[8 + tu_rand_below(24)] ^= (uint8_t)(1 + tu_rand_below(255));
	} else {
		size_t c = (size_t)tu_rand_below(sizeof(cluster_prefixes) / 8);
		tu_fill_random(key, BLOBFS_HASH_SIZE);
		memcpy(key, cluster_prefixes[c], 8);
	}
}

static void random_ops(unsigned rounds, unsigned ops_per_round, unsigned put_bias)
{
	struct index *index;
	struct model m = { 0 };
	struct index_entry got;
	uint8_t key[BLOBFS_HASH_SIZE];
	long bad = 0;

	REQUIRE(index_new(&index) == 0);
	for (unsigned round = 0; round < rounds && !bad; round++) {
		for (unsigned op = 0; op < ops_per_round; op++) {
			uint64_t what = tu_rand_below(100);
			pick_key(&m, key);
			if (what < put_bias) {
				struct index_entry e = make_entry(key);
				if (!CHECK_EQ(index_put(index, &e), 0))
					bad++;
				model_put(&m, &e);
			} else if (what < put_bias + 25) {
				bool present = model_remove(&m, key);
				if (!CHECK_EQ(index_remove(index, key), present ? 0 : -ENOENT))
					bad++;
			} else if (what < put_bias + 45) {
				struct index_entry *want = model_find(&m, key);
				int r = index_lookup(index, key, &got);
				if (want) {
					if (!CHECK_EQ(r, 0) || !CHECK_MEM(&got, want, sizeof(got)))
						bad++;
				} else if (!CHECK_EQ(r, -ENOENT)) {
					bad++;
				}
			} else {
				if (!check_seek(index, &m, tu_rand_below(50) ? key : NULL,
						tu_rand_below(2)))
					bad++;
			}
			if (bad > 10)
				break;
		}
		if (!verify_all(index, &m))
			bad++;
	}
	CHECK_EQ(bad, 0);
	/* Drain completely, in random order, checking as we go. */
	while (m.count && !bad) {
		size_t i = (size_t)tu_rand_below(m.count);
		memcpy(key, m.e[i].hash, BLOBFS_HASH_SIZE);
		if (!CHECK_EQ(index_remove(index, key), 0))
			bad++;
		model_remove(&m, key);
		if (m.count % 997 == 0 && !verify_all(index, &m))
			bad++;
	}
	CHECK_EQ(index_count(index), 0);
	CHECK_EQ(index_seek(index, NULL, false, &got), 0);
	index_free(index);
	model_free(&m);
}

static void test_random_ops(void)
{
	TU_TEST("random operations against a model (balanced)");
	random_ops(40, 1000, 35);
	TU_TEST("random operations against a model (growing)");
	random_ops(12, 2000, 55);
}

/* Growth to 200k entries, then shrinking, lookups and order all along. */
static void test_growth(void)
{
	enum { N = 200000 };
	struct index *index;
	struct model m = { 0 };
	struct index_entry got;
	long bad = 0;

	TU_TEST("growth to 200k entries");
	REQUIRE(index_new(&index) == 0);
	m.capacity = N;
	m.e = tu_xmalloc(N * sizeof(*m.e));
	for (size_t i = 0; i < N; i++) {
		uint8_t key[BLOBFS_HASH_SIZE];
		tu_fill_random(key, sizeof(key));
		m.e[i] = make_entry(key);
		if (index_put(index, &m.e[i]) != 0)
			bad++;
		m.count++;
		/* Spot checks while growing: the newest and an old one. */
		if ((i & 1023) == 0) {
			size_t j = (size_t)tu_rand_below(i + 1);
			if (index_lookup(index, m.e[j].hash, &got) != 0 ||
			    memcmp(&got, &m.e[j], sizeof(got)))
				bad++;
			if (index_count(index) != i + 1)
				bad++;
		}
	}
	CHECK_EQ(bad, 0);
	qsort(m.e, m.count, sizeof(*m.e), entry_cmp);
	verify_all(index, &m);
	/* Seeks to absent keys: just below and just above present ones. */
	for (int i = 0; i < 2000; i++) {
		uint8_t key[BLOBFS_HASH_SIZE];
		memcpy(key, m.e[tu_rand_below(m.count)].hash, sizeof(key));
		if (key[31] > 0 && tu_rand_below(2))
			key[31]--;
		else if (key[31] < 0xff)
			key[31]++;
		if (!check_seek(index, &m, key, tu_rand_below(2)))
			break;
		if (!model_find(&m, key) && !CHECK_EQ(index_lookup(index, key, &got), -ENOENT))
			break;
	}
	/* Replace a third in place, remove every other one, re-check. */
	for (size_t i = 0; i < m.count; i += 3) {
		random_payload(&m.e[i]);
		if (index_put(index, &m.e[i]) != 0)
			bad++;
	}
	CHECK_EQ(bad, 0);
	CHECK_EQ(index_count(index), N);
	{
		size_t kept = 0;
		for (size_t i = 0; i < m.count; i++) {
			if (i % 2) {
				if (index_remove(index, m.e[i].hash) != 0)
					bad++;
			} else {
				m.e[kept++] = m.e[i];
			}
		}
		m.count = kept;
	}
	CHECK_EQ(bad, 0);
	verify_all(index, &m);
	index_free(index);
	model_free(&m);
}

/*
 * Keys sharing long prefixes. Runs in a child process with a time limit, so
 * that a table that grows without bound or loops is reported rather than
 * taking the whole test down. Returns the child's verdict.
 */
struct adversarial {
	const char *what;
	uint8_t prefix[BLOBFS_HASH_SIZE];
	size_t prefix_len; /* bytes every key shares */
	size_t keys;       /* how many such keys */
	size_t others;     /* random keys mixed in */
};

static void adversarial_body(const struct adversarial *a)
{
	struct index *index;
	struct model m = { 0 };
	size_t shared = 0;
	long bad = 0;

	size_t total = a->keys + a->others;
	bool *is_shared = tu_xmalloc(total * sizeof(*is_shared));

	/* Which insertions use the shared prefix: a random interleaving. */
	for (size_t i = 0; i < total; i++)
		is_shared[i] = i < a->keys;
	for (size_t i = total; i > 1; i--) {
		size_t j = (size_t)tu_rand_below(i);
		bool t = is_shared[i - 1];
		is_shared[i - 1] = is_shared[j];
		is_shared[j] = t;
	}
	REQUIRE(index_new(&index) == 0);
	for (size_t i = 0; i < total && !bad; i++) {
		uint8_t key[BLOBFS_HASH_SIZE];
		struct index_entry e;
		bool mine = is_shared[i];
		do {
			tu_fill_random(key, sizeof(key));
			if (mine)
				memcpy(key, a->prefix, a->prefix_len);
		} while (model_find(&m, key));
		e = make_entry(key);
		if (!CHECK_EQ(index_put(index, &e), 0)) {
			fprintf(stderr, "  index_put failed with %zu of %zu shared-prefix keys in\n",
				shared, a->keys);
			bad++;
		}
		model_put(&m, &e);
		shared += mine;
		if (i % 2500 == 0 && !verify_all(index, &m))
			bad++;
	}
	if (!bad && verify_all(index, &m)) {
		/* Seeks inside the run, to present and absent keys. */
		for (int i = 0; i < 3000; i++) {
			uint8_t key[BLOBFS_HASH_SIZE];
			tu_fill_random(key, sizeof(key));
			memcpy(key, a->prefix, a->prefix_len);
			if (!check_seek(index, &m, key, tu_rand_below(2)))
				break;
		}
		/* Remove half (random order), check, put them back, check. */
		struct index_entry *removed = tu_xmalloc(m.count * sizeof(*removed));
		size_t n_removed = 0;
		while (n_removed < (a->keys + a->others) / 2) {
			size_t i = (size_t)tu_rand_below(m.count);
			removed[n_removed++] = m.e[i];
			if (!CHECK_EQ(index_remove(index, m.e[i].hash), 0))
				break;
			model_remove(&m, m.e[i].hash);
		}
		if (verify_all(index, &m)) {
			for (size_t i = 0; i < n_removed; i++) {
				if (!CHECK_EQ(index_put(index, &removed[i]), 0))
					break;
				model_put(&m, &removed[i]);
			}
			verify_all(index, &m);
		}
		free(removed);
	}
	free(is_shared);
	index_free(index);
	model_free(&m);
}

static void adversarial_child(void *arg)
{
	adversarial_body(arg);
}

static void run_adversarial(const struct adversarial *a)
{
	TU_TEST(a->what);
	TU_RUN_CHILD(adversarial_child, (void *)a, 10);
}

static void test_adversarial(void)
{
	struct adversarial a;

	memset(&a, 0, sizeof(a));
	a.what = "2000 keys sharing 8 bytes (00..00) among 5000";
	a.prefix_len = 8;
	a.keys = 2000;
	a.others = 5000;
	run_adversarial(&a);

	a.what = "2000 keys sharing 8 random bytes among 5000";
	tu_fill_random(a.prefix, 8);
	run_adversarial(&a);

	a.what = "2000 keys sharing 24 random bytes, alone";
	tu_fill_random(a.prefix, 24);
	a.prefix_len = 24;
	a.others = 0;
	run_adversarial(&a);

	a.what = "256 keys sharing 31 bytes among 5000";
	tu_fill_random(a.prefix, 31);
	a.prefix_len = 31;
	a.keys = 256;
	a.others = 5000;
	run_adversarial(&a);

	a.what = "2000 keys sharing 8 bytes (fe fe..fe) among 5000";
	memset(a.prefix, 0xfe, 8);
	a.prefix_len = 8;
	a.keys = 2000;
	a.others = 5000;
	run_adversarial(&a);

	/* The home slot floor(prefix * capacity / 2^64) of ff..ff is the last
	 * one whatever the capacity, so no growth spreads the run, and only the
	 * 64 spare slots past the end can hold it. */
	a.what = "2000 keys sharing 8 bytes (ff ff..ff) among 5000";
	memset(a.prefix, 0xff, 8);
	run_adversarial(&a);
}

/* index_seek_many gives the same entries, in the same order, as repeated
 * index_seek calls, from any starting key, inclusive or not. */
static void test_seek_many(void)
{
	struct index *index;
	struct index_entry batch[7], one;
	uint8_t key[BLOBFS_HASH_SIZE], from[BLOBFS_HASH_SIZE];

	TU_TEST("seek_many agrees with seek");
	REQUIRE(index_new(&index) == 0);
	for (int i = 0; i < 3000; i++) {
		for (int j = 0; j < BLOBFS_HASH_SIZE; j++)
			key[j] = (uint8_t)(i * 7919 * (j + 1) >> (j % 5));
		struct index_entry e = make_entry(key);
		index_put(index, &e);
	}
	for (int t = 0; t < 400; t++) {
		bool after = t % 2;
		for (int j = 0; j < BLOBFS_HASH_SIZE; j++)
			from[j] = (uint8_t)(t * 31 + j * 17);
		const uint8_t *start = t % 50 == 0 ? NULL : from;
		size_t n = index_seek_many(index, start, after, batch, 7);
		uint8_t cursor[BLOBFS_HASH_SIZE];
		bool first = true;
		for (size_t k = 0; k < 7; k++) {
			int found = first ? index_seek(index, start, after, &one)
					  : index_seek(index, cursor, true, &one);
			if (!found) {
				CHECK_EQ(n, k);
				break;
			}
			if (!CHECK(k < n))
				break;
			CHECK_MEM(batch[k].hash, one.hash, BLOBFS_HASH_SIZE);
			memcpy(cursor, one.hash, BLOBFS_HASH_SIZE);
			first = false;
		}
	}
	index_free(index);
}

static bool pack_id_divisible_by_3(const struct index_entry *e, void *arg)
{
	(void)arg;
	return e->pack_id % 3 == 0;
}

static void test_remove_if(void)
{
	enum { N = 20000 };
	struct index *index;
	struct index_entry *all = tu_xmalloc(N * sizeof(*all)), got;
	size_t kept = 0;

	TU_TEST("remove_if removes exactly what matches");
	REQUIRE(index_new(&index) == 0);
	for (int i = 0; i < N; i++) {
		uint8_t key[BLOBFS_HASH_SIZE];
		tu_fill_random(key, sizeof(key));
		if (i % 100 == 0)
			memset(key, 0x42, 12); /* some long shared prefixes: long runs */
		all[i] = make_entry(key);
		REQUIRE(index_put(index, &all[i]) == 0);
	}
	CHECK_EQ(index_remove_if(index, pack_id_divisible_by_3, NULL), 0);
	for (int i = 0; i < N; i++) {
		bool gone = all[i].pack_id % 3 == 0;
		kept += !gone;
		CHECK_EQ(index_lookup(index, all[i].hash, &got), gone ? -ENOENT : 0);
	}
	CHECK_EQ(index_count(index), kept);
	index_free(index);
	free(all);
}

static int compare_entry_hash(const void *a, const void *b)
{
	return memcmp(((const struct index_entry *)a)->hash, ((const struct index_entry *)b)->hash,
		      BLOBFS_HASH_SIZE);
}

static void test_append(void)
{
	enum { N = 30000 };
	struct index_entry *all = tu_xmalloc(N * sizeof(*all)), got, seek;
	struct index *a, *b;
	size_t n = 0;

	TU_TEST("appends in hash order build the same index as puts; others fall back");
	for (int i = 0; i < N; i++) {
		uint8_t key[BLOBFS_HASH_SIZE];
		tu_fill_random(key, sizeof(key));
		if (i % 50 == 0)
			memset(key, 0x99, 10); /* long runs on one home */
		all[i] = make_entry(key);
	}
	qsort(all, N, sizeof(*all), compare_entry_hash);
	REQUIRE(index_new(&a) == 0);
	REQUIRE(index_new(&b) == 0);
	REQUIRE(index_reserve(a, N / 2) == 0); /* too small: appends must grow */
	for (int i = 0; i < N; i++) {
		CHECK_EQ(index_append(a, &all[i]), 0);
		CHECK_EQ(index_put(b, &all[i]), 0);
	}
	CHECK_EQ(index_count(a), N);
	for (int i = 0; i < N; i++) {
		CHECK_EQ(index_lookup(a, all[i].hash, &got), 0);
		CHECK_MEM(got.hash, all[i].hash, BLOBFS_HASH_SIZE);
		CHECK_EQ(got.offset, all[i].offset);
	}
	/* In order, as a listing sees it. */
	for (int found = index_seek(a, NULL, false, &seek); found;
	     found = index_seek(a, seek.hash, true, &seek))
		CHECK_MEM(seek.hash, all[n++].hash, BLOBFS_HASH_SIZE);
	CHECK_EQ(n, N);
	/* Out of order, and after a remove: index_put's work. */
	CHECK_EQ(index_remove(a, all[N / 2].hash), 0);
	CHECK_EQ(index_append(a, &all[N / 2]), 0);
	CHECK_EQ(index_append(a, &all[3]), 0); /* present: replaced */
	CHECK_EQ(index_count(a), N);
	CHECK_EQ(index_lookup(a, all[N / 2].hash, &got), 0);
	index_free(a);
	index_free(b);
	free(all);
}

/* A compressed record's disk size, as a slot keeps it: never less than it
 * was (a pack's live bytes are never undercounted), within 1/2048 above,
 * exact below 4096, stable, and 0 past INDEX_DISK_MAX. */
static void test_disk_round(void)
{
	TU_TEST("disk sizes");
	CHECK_EQ(index_disk_round(0), 0);
	CHECK_EQ(index_disk_round(1), 1);
	CHECK_EQ(index_disk_round(4095), 4095);
	CHECK_EQ(index_disk_round(4097), 4098);
	CHECK_EQ(index_disk_round(INDEX_DISK_MAX), INDEX_DISK_MAX);
	CHECK_EQ(index_disk_round(INDEX_DISK_MAX + 1), 0);
	for (int i = 0; i < 100000; i++) {
		uint64_t d = (tu_rand() >> (tu_rand() & 63)) % (INDEX_DISK_MAX + 1);
		uint64_t r = index_disk_round(d);
		if (!CHECK(r >= d && r - d <= d / 2048 + 1 && index_disk_round(r) == r))
			break;
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	tu_init(argv[0]);
	test_append();
	test_remove_if();
	test_basics();
	test_extreme_keys();
	test_random_ops();
	test_growth();
	test_adversarial();
	test_seek_many();
	test_disk_round();
	return tu_finish();
}
