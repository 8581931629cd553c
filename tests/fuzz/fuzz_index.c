/*
 * fuzz_index.c - the in-memory index (src/index.h) against a reference model
 * (a sorted array): the input is a sequence of put / remove / lookup / seek
 * operations, and any disagreement traps. Keys are built so that many of
 * them share prefixes (and so home slots): each generated key starts with
 * 0..31 bytes of one of a few fixed bases (all zero, all ones, the middle,
 * near the top...), or is a present key, or a near neighbour of one.
 *
 * Input, repeated: an operation byte, a key byte, two seed bytes; at most
 * MAX_OPS of them count. Keys sharing a home slot make every operation on
 * them cost O(size of their run), so long inputs would be slow without
 * finding more.
 */
#include <errno.h>

#include "fuzz_common.h"
#include "index.h"

#define MAX_OPS 2048

struct model {
	struct index_entry *e;
	size_t count, capacity;
};

/* First position whose hash is >= key (> key when after). */
static size_t model_bound(const struct model *m, const uint8_t *key, bool after)
{
	size_t lo = 0, hi = m->count;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int c = memcmp(m->e[mid].hash, key, BLOBFS_HASH_SIZE);
		if (c < 0 || (after && c == 0))
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static struct index_entry *model_find(const struct model *m, const uint8_t *key)
{
	size_t i = model_bound(m, key, false);

	return i < m->count && !memcmp(m->e[i].hash, key, BLOBFS_HASH_SIZE) ? &m->e[i] : NULL;
}

static void model_put(struct model *m, const struct index_entry *e)
{
	size_t i = model_bound(m, e->hash, false);

	if (i < m->count && !memcmp(m->e[i].hash, e->hash, BLOBFS_HASH_SIZE)) {
		m->e[i] = *e;
		return;
	}
	if (m->count == m->capacity) {
		m->capacity = m->capacity ? 2 * m->capacity : 64;
		m->e = realloc(m->e, m->capacity * sizeof(*m->e));
		FUZZ_CHECK(m->e);
	}
	memmove(&m->e[i + 1], &m->e[i], (m->count - i) * sizeof(*m->e));
	m->e[i] = *e;
	m->count++;
}

static void model_remove(struct model *m, const uint8_t *key)
{
	size_t i = model_bound(m, key, false);

	memmove(&m->e[i], &m->e[i + 1], (m->count - i - 1) * sizeof(*m->e));
	m->count--;
}

static const uint8_t bases[7][8] = {
	{ 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 },
	{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
	{ 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff },
	{ 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00 },
	{ 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe, 0xfe },
	{ 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00 },
	{ 0x01, 0x23, 0x45, 0x67, 0x89, 0xab, 0xcd, 0xef },
};

static const unsigned prefix_lengths[8] = { 0, 1, 4, 7, 8, 9, 16, 31 };

/* Deterministic filler: a xorshift generator seeded from the input. */
static uint64_t next_random(uint64_t *state)
{
	uint64_t x = *state;

	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	*state = x;
	return x;
}

/* Key byte: bit 7 set means a present key (bit 6: then changed after its
 * 8th byte, so the home slot stays the same); otherwise bits 0-2 pick a base
 * (7: none) and bits 3-5 how many of its leading bytes the key keeps (the
 * base repeats its 8 bytes). */
static void make_key(const struct model *m, uint8_t spec, uint16_t seed, uint8_t key[32])
{
	uint64_t state = 0x9e3779b97f4a7c15u ^ ((uint64_t)spec << 16 | seed);

	if ((spec & 0x80) && m->count) {
		memcpy(key, m->e[seed % m->count].hash, BLOBFS_HASH_SIZE);
		if (spec & 0x40)
			key[8 + (spec & 0x3f) % 24] ^= (uint8_t)(1 + seed % 255);
	} else {
		unsigned base = spec & 7, keep = base == 7 ? 0 : prefix_lengths[(spec >> 3) & 7];
		for (unsigned i = 0; i < BLOBFS_HASH_SIZE; i++)
			key[i] = i < keep ? bases[base][i % 8] : (uint8_t)next_random(&state);
	}
	/* Lax: stay out of the top of the key space (see fuzz_common.h). */
	if (fz_lax() && key[0] > 0xf0)
		key[0] = 0xf0;
}

struct walk {
	const struct model *m;
	size_t i;
};

static int walk_one(const struct index_entry *e, void *arg)
{
	struct walk *w = arg;

	FUZZ_CHECK(w->i < w->m->count);
	FUZZ_CHECK(!memcmp(e, &w->m->e[w->i], sizeof(*e)));
	w->i++;
	return 0;
}

/* Everything, in order: through index_foreach and through a chain of seeks. */
static void check_all(const struct index *index, const struct model *m)
{
	struct walk w = { m, 0 };
	struct index_entry e;
	size_t i = 0;
	int ret;

	FUZZ_CHECK(index_count(index) == m->count);
	FUZZ_CHECK(index_foreach(index, walk_one, &w) == 0);
	FUZZ_CHECK(w.i == m->count);
	for (ret = index_seek(index, NULL, false, &e); ret == 1;
	     ret = index_seek(index, m->e[i - 1].hash, true, &e)) {
		FUZZ_CHECK(i < m->count);
		FUZZ_CHECK(!memcmp(&e, &m->e[i], sizeof(e)));
		i++;
	}
	FUZZ_CHECK(ret == 0 && i == m->count);
}

static void check_seek(const struct index *index, const struct model *m, const uint8_t *key,
		       bool after)
{
	size_t i = key ? model_bound(m, key, after) : 0;
	struct index_entry e;
	int ret = index_seek(index, key, after, &e);

	FUZZ_CHECK(ret == (i < m->count));
	if (ret == 1)
		FUZZ_CHECK(!memcmp(&e, &m->e[i], sizeof(e)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model m = { 0 };
	struct index *index;
	uint64_t op_no = 0;
	unsigned full_checks = 0;

	FUZZ_CHECK(index_new(&index) == 0 && index);
	for (size_t p = 0; p + 4 <= size && op_no < MAX_OPS; p += 4, op_no++) {
		uint8_t op = data[p], spec = data[p + 1];
		uint16_t seed = (uint16_t)(data[p + 2] | data[p + 3] << 8);
		struct index_entry e, got;
		const struct index_entry *want;
		uint8_t key[BLOBFS_HASH_SIZE];
		int ret;

		make_key(&m, spec, seed, key);
		want = model_find(&m, key);
		switch (op & 7) {
		case 0:
		case 1:
		case 2: /* put: insert or replace */
			memset(&e, 0, sizeof(e));
			memcpy(e.hash, key, sizeof(key));
			/* The fields a slot keeps (seq and chunk_shift are not
			 * kept; saved is); pack 0 is refused, as a free slot. */
			e.offset = (op_no * 97 + op) & INDEX_OFFSET_MAX;
			e.length = seed & INDEX_LENGTH_MAX;
			e.pack_id = (uint32_t)(op >> 3);
			e.kind = op & 0x80 ? RECORD_TOMBSTONE : RECORD_BLOB;
			/* Any time, negative ones too: a slot keeps it whole. */
			e.saved = (int64_t)(op_no * 1000003u) - (int64_t)seed * 65537;
			ret = index_put(index, &e);
			if (e.pack_id == 0) {
				FUZZ_CHECK(ret == -EINVAL);
				break;
			}
			FUZZ_CHECK(ret == 0);
			model_put(&m, &e);
			break;
		case 3: /* remove */
			ret = index_remove(index, key);
			FUZZ_CHECK(ret == (want ? 0 : -ENOENT));
			if (want)
				model_remove(&m, key);
			break;
		case 4: /* lookup */
			memset(&got, 0, sizeof(got));
			ret = index_lookup(index, key, &got);
			FUZZ_CHECK(ret == (want ? 0 : -ENOENT));
			if (want)
				FUZZ_CHECK(!memcmp(&got, want, sizeof(got)));
			break;
		case 5: /* seek */
			check_seek(index, &m, key, op & 0x08);
			break;
		case 6: /* an entry without a kind is refused and changes nothing */
			memset(&e, 0, sizeof(e));
			memcpy(e.hash, key, sizeof(key));
			FUZZ_CHECK(index_put(index, &e) == -EINVAL);
			check_seek(index, &m, NULL, false);
			break;
		case 7: /* everything (a few times per input: it costs O(count)) */
			if (full_checks++ < 16)
				check_all(index, &m);
			break;
		}
		FUZZ_CHECK(index_count(index) == m.count);
	}
	check_all(index, &m);
	index_free(index);
	free(m.e);
	return 0;
}
