/*
 * storeutil.c - the blob-database part of the fixture library (see
 * storeutil.h).
 */
#include "io.h"
#include "storeutil.h"

#include <dirent.h>

/* Under AddressSanitizer an absurd allocation aborts the process by default;
 * make it fail as it does without the sanitizer (NULL), and quickly, so that
 * what the code does about it is what gets tested. (Every program that uses
 * this part of the library gets it.) */
const char *__asan_default_options(void);
const char *__asan_default_options(void)
{
	return "allocator_may_return_null=1:max_allocation_size_mb=4096";
}

/* ---- options ---- */

struct blobdb_options opts_default(void)
{
	struct blobdb_options o;

	blobdb_options_default(&o);
	return o;
}

struct blobdb_options opts_small(void)
{
	struct blobdb_options o;

	blobdb_options_default(&o);
	o.large_blob_min = 4096;
	o.pack_size_max = 64 * 1024;
	return o;
}

const char *opts_label(const struct blobdb_options *o)
{
	return o->large_blob_min == LARGE_BLOB_MIN_DEFAULT ? "default options" :
							     "small packs, large_blob_min 4096";
}

int store_tests_main(const char *argv0, const struct store_test *tests, size_t n)
{
	struct blobdb_options def = opts_default(), small = opts_small();
	const char *base;

	tu_init(argv0);
	base = tu_tmpdir();
	for (size_t i = 0; i < n; i++) {
		if (tests[i].both) {
			tests[i].both(base, &def);
			tests[i].both(base, &small);
		} else {
			tests[i].once(base);
		}
	}
	return tu_finish();
}

/* ---- databases, stores, blobs ---- */

struct blobdb *db_open(const char *dir, const struct blobdb_options *opts)
{
	struct blobdb *db = (struct blobdb *)1;
	int r = blobdb_open(dir, opts, &db);

	if (!CHECK_EQ(r, 0) || !db) {
		fprintf(stderr, "blobdb_open(%s): %d\n", dir, r);
		exit(tu_finish());
	}
	return db;
}

struct store *st_open(struct blobdb *db, const char *name)
{
	struct store *s = NULL;
	int r = store_open(db, name, &s);

	if (!CHECK_EQ(r, 0) || !s) {
		fprintf(stderr, "store_open(%s): %d\n", name, r);
		exit(tu_finish());
	}
	return s;
}

struct store *new_store(const char *dir, const struct blobdb_options *opts, const char *name,
			struct blobdb **db)
{
	*db = db_open(dir, opts);
	REQUIRE(store_create(*db, name) == 0);
	return st_open(*db, name);
}

void sha(const void *data, size_t len, uint8_t out[HS])
{
	REQUIRE(hash_buffer(data, len, out) == 0);
}

const char *hexs(const uint8_t *hash)
{
	static _Thread_local char buf[8][HASH_HEX_SIZE + 1];
	static _Thread_local int next;
	char *out = buf[next++ % 8];

	hash_to_hex(hash, out);
	return out;
}

/* Reads a whole blob through a reader in random-sized pieces, checking that
 * reads are short only at the end. Returns a malloc'd buffer or NULL (with
 * *err set). */
static uint8_t *read_blob(struct store *s, const uint8_t *hash, uint64_t *len, int *err)
{
	struct blob_reader *r = NULL;
	uint8_t *buf;
	uint64_t off = 0;
	size_t got;

	*err = blob_open(s, hash, &r);
	if (*err)
		return NULL;
	*len = blob_reader_length(r);
	buf = tu_xmalloc((size_t)*len);
	while (off < *len) {
		size_t want = 1 + (size_t)tu_rand_below(tu_rand_below(4) ? 70000 : 300);
		size_t expect = *len - off < want ? (size_t)(*len - off) : want;
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
	/* At and past the end: nothing. */
	got = 12345;
	CHECK_EQ(blob_read(r, buf, 10, *len, &got), 0);
	CHECK_EQ(got, 0);
	got = 12345;
	CHECK_EQ(blob_read(r, buf, 10, *len + 1000, &got), 0);
	CHECK_EQ(got, 0);
	blob_close(r);
	return buf;
}

/* The blob with this content is in the store, whole and exact. */
bool blob_is(struct store *s, const void *data, size_t len)
{
	uint8_t hash[HS];
	uint64_t length = UINT64_MAX, got_len = 0;
	uint8_t *got;
	int err = 0;
	bool ok = true;

	sha(data, len, hash);
	ok &= CHECK_EQ(blob_info(s, hash, &length), 0);
	ok &= CHECK_EQ(length, len);
	ok &= CHECK_EQ(blob_info(s, hash, NULL), 0);
	got = read_blob(s, hash, &got_len, &err);
	ok &= CHECK_EQ(err, 0);
	if (got) {
		ok &= CHECK_EQ(got_len, len);
		if (got_len == len)
			ok &= CHECK_MEM(got, data, len);
	}
	free(got);
	if (!ok)
		fprintf(stderr, "  blob %s (%zu bytes) in store %s\n", hexs(hash), len, store_name(s));
	return ok;
}

bool blob_absent(struct store *s, const uint8_t *hash)
{
	struct blob_reader *r = (struct blob_reader *)1;
	uint64_t length;
	bool ok = true;

	ok &= CHECK_EQ(blob_info(s, hash, &length), -ENOENT);
	ok &= CHECK_EQ(blob_open(s, hash, &r), -ENOENT);
	ok &= CHECK(r == NULL);
	if (!ok)
		fprintf(stderr, "  blob %s should be absent from store %s\n", hexs(hash), store_name(s));
	return ok;
}

/* Distinct random contents: the first bytes carry a serial number. */
uint8_t *make_content(size_t len)
{
	static uint32_t serial;
	uint8_t *p = tu_random_buffer(len);

	serial++;
	memcpy(p, &serial, len < 4 ? len : 4);
	return p;
}

/* Saves through a writer, in shuffled pieces. */
int save_via_writer(struct store *s, const uint8_t *data, size_t len, uint8_t hash[HS])
{
	struct blob_writer *w;
	size_t pieces = 1 + (size_t)tu_rand_below(6), piece = len / pieces + 1;
	size_t order[8];
	int r;

	r = blob_writer_new(s, &w);
	if (r)
		return r;
	tu_shuffle(order, pieces);
	for (size_t i = 0; i < pieces && r == 0; i++) {
		size_t off = order[i] * piece;
		if (off < len)
			r = blob_writer_write(w, data + off, len - off < piece ? len - off : piece, off);
	}
	if (r == 0)
		r = blob_writer_commit(w, hash);
	blob_writer_free(w);
	return r;
}

void check_blobs(struct store *s, size_t n, uint8_t *const *data, const size_t *sizes,
		 const uint8_t (*hashes)[HS], const bool *present)
{
	for (size_t i = 0; i < n; i++) {
		if (present[i])
			CHECK(blob_is(s, data[i], sizes[i]));
		else
			CHECK(blob_absent(s, hashes[i]));
	}
}

/* ---- listings ---- */

int collect_hash(const uint8_t hash[HS], uint64_t length, void *arg)
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

void hashlist_free(struct hashlist *l)
{
	free(l->h);
	free(l->len);
	memset(l, 0, sizeof(*l));
}

int cmp_hash(const void *a, const void *b)
{
	return memcmp(a, b, HS);
}

int collect_name(const char *name, void *arg)
{
	struct namelist *l = arg;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->names = realloc(l->names, l->cap * sizeof(*l->names));
		REQUIRE(l->names);
	}
	l->names[l->n] = strdup(name);
	REQUIRE(l->names[l->n]);
	l->n++;
	return l->stop_after && l->n == l->stop_after ? 55 : 0;
}

void namelist_free(struct namelist *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b); /* unsigned bytes */
}

void check_store_listing(struct blobdb *db, char *const *sorted, size_t n,
			 const char *const *absent, size_t n_absent)
{
	struct namelist l = { 0 };

	CHECK_EQ(store_list(db, NULL, collect_name, &l), 0);
	if (CHECK_EQ(l.n, n))
		for (size_t i = 0; i < n; i++)
			if (!CHECK(!strcmp(l.names[i], sorted[i])))
				fprintf(stderr, "  position %zu: \"%s\", want \"%s\"\n", i,
					l.names[i], sorted[i]);
	namelist_free(&l);
	/* Resuming after each name gives the rest. */
	for (size_t k = 0; k < n; k++) {
		CHECK_EQ(store_list(db, sorted[k], collect_name, &l), 0);
		if (CHECK_EQ(l.n, n - k - 1))
			for (size_t i = 0; i < l.n; i++)
				CHECK(!strcmp(l.names[i], sorted[k + 1 + i]));
		namelist_free(&l);
	}
	/* Resuming after names that are not stores. */
	for (size_t k = 0; k < n_absent; k++) {
		size_t first = 0;

		while (first < n && strcmp(sorted[first], absent[k]) <= 0)
			first++;
		CHECK_EQ(store_list(db, absent[k], collect_name, &l), 0);
		if (CHECK_EQ(l.n, n - first))
			for (size_t i = 0; i < l.n; i++)
				CHECK(!strcmp(l.names[i], sorted[first + i]));
		namelist_free(&l);
	}
	/* Stopping early returns the callback's value. */
	l.stop_after = 3;
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 55);
	CHECK_EQ(l.n, n < 3 ? n : 3);
	namelist_free(&l);
}

void check_only_store_left(struct blobdb *db, const char *gone, const char *only)
{
	struct store *s = (struct store *)1;
	struct namelist l = { 0 };

	CHECK_EQ(store_destroy(db, gone, false), -ENOENT);
	CHECK_EQ(store_open(db, gone, &s), -ENOENT);
	CHECK(s == NULL);
	CHECK_EQ(store_count(db), 1);
	CHECK_EQ(store_list(db, NULL, collect_name, &l), 0);
	CHECK(l.n == 1 && !strcmp(l.names[0], only));
	namelist_free(&l);
}

/* ---- a model of several stores ---- */

const char *const p_names[P_STORES] = { "alpha", "beta", "gamma" };

bool model_save(struct pmodel *pm, struct store *s, int st, int i, bool via_writer)
{
	struct pool_item *it = &pm->pool[i];
	uint8_t h[HS];
	bool ok;
	int r;

	r = via_writer ? save_via_writer(s, it->data, it->len, h) :
			 blob_save(s, it->data, it->len, h);
	ok = CHECK_EQ(r, pm->present[st][i] ? -EEXIST : 0);
	CHECK_MEM(h, it->hash, HS);
	pm->present[st][i] = true;
	return ok;
}

bool model_delete(struct pmodel *pm, struct store *s, int st, int i)
{
	bool ok = CHECK_EQ(blob_delete(s, pm->pool[i].hash), pm->present[st][i] ? 0 : -ENOENT);

	pm->present[st][i] = false;
	return ok;
}

bool verify_model(struct blobdb *db, const struct pmodel *pm, const char *when)
{
	struct namelist nl = { 0 };
	size_t expect_stores = 0, k = 0;
	bool ok = true;

	for (int st = 0; st < P_STORES; st++)
		expect_stores += pm->exists[st];
	ok &= CHECK_EQ(store_list(db, NULL, collect_name, &nl), 0);
	ok &= CHECK_EQ(nl.n, expect_stores);
	for (int st = 0; st < P_STORES; st++) {
		if (!pm->exists[st]) {
			struct store *s = (struct store *)1;
			ok &= CHECK_EQ(store_open(db, p_names[st], &s), -ENOENT);
			continue;
		}
		/* p_names is in byte order. */
		ok &= CHECK(k < nl.n && !strcmp(nl.names[k], p_names[st]));
		k++;
	}
	namelist_free(&nl);
	for (int st = 0; st < P_STORES; st++) {
		struct store *s;
		struct hashlist l = { 0 };
		uint8_t want[P_POOL][HS];
		size_t n = 0;
		if (!pm->exists[st])
			continue;
		s = st_open(db, p_names[st]);
		for (int i = 0; i < P_POOL; i++) {
			if (pm->present[st][i]) {
				memcpy(want[n++], pm->pool[i].hash, HS);
				ok &= blob_is(s, pm->pool[i].data, pm->pool[i].len);
			} else {
				ok &= blob_absent(s, pm->pool[i].hash);
			}
		}
		qsort(want, n, HS, cmp_hash);
		ok &= CHECK_EQ(blob_count(s), n);
		ok &= CHECK_EQ(blob_list(s, NULL, collect_hash, &l), 0);
		if ((ok &= CHECK_EQ(l.n, n)))
			ok &= CHECK_MEM(l.h, want, n * HS);
		hashlist_free(&l);
		store_close(s);
	}
	if (!ok)
		fprintf(stderr, "  model mismatch %s\n", when);
	return ok;
}

/* ---- files of a store ---- */

size_t packs_in_store(const char *dbdir, const char *store, uint32_t *max_id, size_t *staging)
{
	char path[PATH_MAX];
	struct dirent *d;
	size_t n = 0;
	DIR *dir;

	tu_path(path, sizeof(path), "%s/stores/%s", dbdir, store);
	dir = opendir(path);
	REQUIRE(dir);
	*max_id = 0;
	if (staging)
		*staging = 0;
	while ((d = readdir(dir))) {
		uint32_t id;
		if (pack_parse_name(d->d_name, &id)) {
			if (n == 0 || id > *max_id)
				*max_id = id;
			n++;
		} else if (staging && !strncmp(d->d_name, "staging-", 8)) {
			(*staging)++;
		}
	}
	closedir(dir);
	return n;
}

size_t staging_files(const char *dbdir, const char *store)
{
	uint32_t id;
	size_t staging;

	packs_in_store(dbdir, store, &id, &staging);
	return staging;
}

void path_of_pack(const char *dbdir, const char *store, uint32_t id, char out[PATH_MAX])
{
	char name[PACK_NAME_SIZE];

	pack_name(id, name);
	tu_path(out, PATH_MAX, "%s/stores/%s/%s", dbdir, store, name);
}

long long packs_bytes(const char *dbdir, const char *store)
{
	char path[PATH_MAX];
	struct dirent *d;
	long long total = 0;
	DIR *dir;

	tu_path(path, sizeof(path), "%s/stores/%s", dbdir, store);
	dir = opendir(path);
	REQUIRE(dir);
	while ((d = readdir(dir))) {
		uint32_t id;
		struct stat st;
		if (pack_parse_name(d->d_name, &id) && fstatat(dirfd(dir), d->d_name, &st, 0) == 0)
			total += st.st_size;
	}
	closedir(dir);
	return total;
}

/* ---- scanning packs ---- */

void scan_packs(const char *dbdir, const char *store, uint32_t only, pack_visitor visit,
		void *arg)
{
	char path[PATH_MAX], file[PATH_MAX];
	struct dirent *d;
	DIR *dir;

	tu_path(path, sizeof(path), "%s/stores/%s", dbdir, store);
	dir = opendir(path);
	REQUIRE(dir);
	while ((d = readdir(dir))) {
		struct pack_scan scan;
		struct record_info rec;
		struct pack_event ev = { .path = file, .rec = &rec };
		uint32_t id;
		int r;
		if (!pack_parse_name(d->d_name, &id) || (only != UINT32_MAX && id != only))
			continue;
		tu_path(file, sizeof(file), "%s/%s", path, d->d_name);
		ev.pack_id = id;
		ev.fd = openat(dirfd(dir), d->d_name, O_RDONLY | O_CLOEXEC);
		REQUIRE(ev.fd >= 0);
		r = pack_scan_open(io_system(), &scan, ev.fd, id);
		ev.kind = PACK_OPEN;
		ev.error = r;
		visit(&ev, arg);
		if (r < 0) {
			close(ev.fd);
			continue;
		}
		while ((r = pack_scan_next(&scan, &rec)) != 0) {
			ev.kind = r == 1 ? PACK_RECORD : r == -EBADMSG ? PACK_DAMAGE : PACK_IO_ERROR;
			ev.error = r < 0 ? r : 0;
			ev.bad_start = scan.bad_start;
			ev.bad_end = scan.bad_end;
			visit(&ev, arg);
			if (ev.kind == PACK_IO_ERROR)
				break;
		}
		close(ev.fd);
	}
	closedir(dir);
}

struct verify_state {
	struct hasher *hasher;
	long bad;
};

static void verify_visit(const struct pack_event *ev, void *arg)
{
	struct verify_state *v = arg;
	const char *problem = NULL;

	switch (ev->kind) {
	case PACK_OPEN:
		if (!CHECK_EQ(ev->error, 0)) {
			fprintf(stderr, "  %s: bad pack header\n", ev->path);
			v->bad++;
		}
		break;
	case PACK_DAMAGE:
	case PACK_IO_ERROR:
		fprintf(stderr, "  %s: damage at [%" PRIu64 ", %" PRIu64 "): %d\n", ev->path,
			ev->bad_start, ev->bad_end, ev->error);
		v->bad++;
		break;
	case PACK_RECORD:
		if (ev->rec->kind == RECORD_BLOB &&
		    pack_verify_record(io_system(), ev->fd, ev->rec, v->hasher, &problem) != 0) {
			fprintf(stderr, "  %s: record at %" PRIu64 ": %s\n", ev->path, ev->rec->offset,
				problem ? problem : "I/O error");
			v->bad++;
		}
		break;
	}
}

bool verify_packs(const char *dbdir, const char *store)
{
	struct verify_state v = { 0 };

	REQUIRE(hasher_new(&v.hasher) == 0);
	scan_packs(dbdir, store, UINT32_MAX, verify_visit, &v);
	hasher_free(v.hasher);
	return CHECK_EQ(v.bad, 0);
}

struct find_state {
	const uint8_t *hash;
	uint32_t *pack_id;
	struct record_info *out;
	bool found;
};

static void find_visit(const struct pack_event *ev, void *arg)
{
	struct find_state *f = arg;

	if (ev->kind == PACK_RECORD && ev->rec->kind == RECORD_BLOB &&
	    !memcmp(ev->rec->hash, f->hash, HS) && (!f->found || ev->rec->seq > f->out->seq)) {
		*f->out = *ev->rec;
		*f->pack_id = ev->pack_id;
		f->found = true;
	}
}

bool find_record(const char *dbdir, const char *store, const uint8_t *hash, uint32_t *pack_id,
		 struct record_info *out)
{
	struct find_state f = { .hash = hash, .pack_id = pack_id, .out = out };

	scan_packs(dbdir, store, UINT32_MAX, find_visit, &f);
	return f.found;
}

struct last_state {
	struct record_info *last;
	bool any;
};

static void last_visit(const struct pack_event *ev, void *arg)
{
	struct last_state *l = arg;

	if (ev->kind == PACK_OPEN)
		REQUIRE(ev->error == 0);
	if (ev->kind == PACK_RECORD) {
		*l->last = *ev->rec;
		l->any = true;
	}
}

bool last_record(const char *dbdir, const char *store, uint32_t id, struct record_info *last)
{
	struct last_state l = { .last = last };

	scan_packs(dbdir, store, id, last_visit, &l);
	return l.any;
}

struct count_state {
	size_t *blobs, *tombstones;
};

static void count_visit(const struct pack_event *ev, void *arg)
{
	struct count_state *c = arg;

	if (ev->kind == PACK_RECORD)
		++*(ev->rec->kind == RECORD_BLOB ? c->blobs : c->tombstones);
}

void count_records(const char *dbdir, const char *store, size_t *blobs, size_t *tombstones)
{
	struct count_state c = { blobs, tombstones };

	*blobs = *tombstones = 0;
	scan_packs(dbdir, store, UINT32_MAX, count_visit, &c);
}

void write_pack(const char *dbdir, const char *store, uint32_t id, struct record_info *recs,
		size_t n, const void *data)
{
	char path[PATH_MAX];
	uint64_t offset = PACK_HEADER_SIZE;
	int dirfd, fd;

	tu_path(path, sizeof(path), "%s/stores/%s", dbdir, store);
	dirfd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	REQUIRE(dirfd >= 0);
	REQUIRE(pack_create(io_system(), dirfd, id, &fd) == 0);
	for (size_t i = 0; i < n; i++) {
		recs[i].offset = offset;
		CHECK_EQ(pack_write_record(io_system(), fd, &recs[i], data, NULL), 0);
		offset = record_end(&recs[i]);
	}
	close(fd);
	close(dirfd);
}
