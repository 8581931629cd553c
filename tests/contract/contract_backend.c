/*
 * contract_backend.c - the contract suite's backend under test (opening a
 * fresh database on it, checking that memory: leaves nothing on disk) and
 * the blob helpers both halves use (contract.h).
 */
#include <unistd.h>

#include "contract.h"

bool ct_memory;
const char *ct_location;
char ct_cwd[PATH_MAX]; /* memory: the directory we run in, must stay empty */

/* ---- the backend ---- */

static struct blobdb *open_at(const char *label, const struct blobdb_options *opts, bool fresh)
{
	char path[PATH_MAX];
	const char *where = "memory:";
	struct blobdb *db = NULL;
	int r;

	if (!ct_memory) {
		snprintf(path, sizeof(path), "%s/%s", ct_location, label);
		if (fresh)
			REQUIRE(access(path, F_OK) != 0); /* labels are unique */
		where = path;
	}
	r = blobdb_open(where, opts, &db);
	if (!CHECK_EQ(r, 0) || !CHECK(db != NULL)) {
		fprintf(stderr, "blobdb_open(\"%s\"): %d (%s)\n", where, r, strerror(-r));
		ck_finish();
		exit(1);
	}
	if (ct_memory && access("memory:", F_OK) == 0) {
		/* The current engine takes any location as a directory path. */
		ck_report(__FILE__, __LINE__, "blobdb_open(\"memory:\") made a directory "
			  "\"memory:\" in %s: no memory backend (yet)", ct_cwd);
		blobdb_close(db);
		ck_finish();
		exit(1);
	}
	return db;
}

struct blobdb *ct_open(const char *label, const struct blobdb_options *opts)
{
	struct blobdb *db = open_at(label, opts, true);

	/* Fresh means empty, whatever the backend. */
	CHECK_EQ(store_count(db), 0);
	return db;
}

struct blobdb *ct_reopen(const char *label, const struct blobdb_options *opts)
{
	return open_at(label, opts, false);
}

void ct_close(struct blobdb *db)
{
	CHECK_EQ(blobdb_close(db), 0);
	if (ct_memory)
		CHECK_EQ(ck_dir_entries(ct_cwd), 0); /* nothing on disk */
}

struct store *ct_store(struct blobdb *db, const char *name)
{
	struct store *s = NULL;
	int r = store_open(db, name, &s);

	if (!CHECK_EQ(r, 0) || !s) {
		fprintf(stderr, "store_open(%s): %d\n", name, r);
		ck_finish();
		exit(1);
	}
	return s;
}

/* ---- blob helpers ---- */

void ct_sha(const void *data, size_t len, uint8_t out[HS])
{
	REQUIRE(hash_buffer(data, len, out) == 0);
}

const char *ct_hex(const uint8_t *hash)
{
	static _Thread_local char buf[8][HASH_HEX_SIZE + 1];
	static _Thread_local int next;
	char *out = buf[next++ % 8];

	hash_to_hex(hash, out);
	return out;
}

uint8_t *ct_read_all(struct store *s, const uint8_t *hash, uint64_t *rng, uint64_t *len,
		     int *err)
{
	struct blob_reader *r = NULL;
	uint8_t *buf;
	uint64_t off = 0;
	size_t got;

	*err = blob_open(s, hash, &r);
	if (*err)
		return NULL;
	*len = blob_reader_length(r);
	buf = ck_xmalloc((size_t)*len);
	while (off < *len) {
		size_t want = rng ? 1 + (size_t)ck_below(rng, ck_below(rng, 4) ? 300000 : 5000)
				  : 64 * KiB;
		size_t expect = *len - off < want ? (size_t)(*len - off) : want;

		got = SIZE_MAX;
		*err = blob_read(r, buf + off, want, off, &got);
		if (*err || !CHECK_EQ(got, expect)) {
			if (!*err)
				*err = -EIO;
			free(buf);
			blob_close(r);
			return NULL;
		}
		off += got;
	}
	got = 12345;
	CHECK_EQ(blob_read(r, buf, 10, *len, &got), 0);
	CHECK_EQ(got, 0);
	got = 12345;
	CHECK_EQ(blob_read(r, buf, 10, *len + 4096, &got), 0);
	CHECK_EQ(got, 0);
	blob_close(r);
	return buf;
}

bool ct_blob_is(struct store *s, const void *data, size_t len)
{
	uint8_t hash[HS];
	uint64_t length = UINT64_MAX, got_len = 0, rng = len ^ ck_seed;
	uint8_t *got;
	int err = 0;
	bool ok = true;

	ct_sha(data, len, hash);
	ok &= CHECK_EQ(blob_info(s, hash, &length), 0);
	ok &= CHECK_EQ(length, len);
	ok &= CHECK_EQ(blob_info(s, hash, NULL), 0);
	got = ct_read_all(s, hash, &rng, &got_len, &err);
	ok &= CHECK_EQ(err, 0);
	if (got) {
		ok &= CHECK_EQ(got_len, len);
		if (got_len == len)
			ok &= CHECK_MEM(got, data, len);
	}
	free(got);
	if (!ok)
		fprintf(stderr, "  blob %s (%zu bytes) in store %s\n", ct_hex(hash), len,
			store_name(s));
	return ok;
}

bool ct_blob_absent(struct store *s, const uint8_t *hash)
{
	struct blob_reader *r = (struct blob_reader *)1;
	uint64_t length;
	bool ok = true;

	ok &= CHECK_EQ(blob_info(s, hash, &length), -ENOENT);
	ok &= CHECK_EQ(blob_open(s, hash, &r), -ENOENT);
	ok &= CHECK(r == NULL);
	ok &= CHECK_EQ(blob_delete(s, hash), -ENOENT);
	if (!ok)
		fprintf(stderr, "  blob %s should be absent from store %s\n", ct_hex(hash),
			store_name(s));
	return ok;
}

int ct_collect_hash(const uint8_t hash[HS], uint64_t length, void *arg)
{
	struct hashlist *l = arg;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 64;
		l->h = realloc(l->h, l->cap * HS);
		l->len = realloc(l->len, l->cap * sizeof(*l->len));
		REQUIRE(l->h && l->len);
	}
	memcpy(l->h[l->n], hash, HS);
	l->len[l->n++] = length;
	return l->stop_after && l->n == l->stop_after ? 77 : 0;
}

void ct_hashlist_free(struct hashlist *l)
{
	free(l->h);
	free(l->len);
	memset(l, 0, sizeof(*l));
}

int ct_cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, HS);
}

