/*
 * test_s3_client.c - the S3 client (src/s3_client.c) against a real object
 * store: the one of `scripts/ceph-dev env` (AWS_ENDPOINT_URL and keys in the
 * environment; scripts/test starts it). Without AWS_ENDPOINT_URL the test is
 * skipped (exit 77).
 *
 * Covered: put from memory and from a source, get (whole, ranges, into a
 * sink that refuses), head (size, time), delete, a missing key (-ENOENT), a
 * body that does not match its x-amz-content-sha256 (-EBADMSG, nothing
 * stored), keys that need encoding (spaces, UTF-8, '+', '%'), listings
 * (prefix, delimiter, start-after, paging with max-keys and a continuation
 * token), a multipart upload (three parts, read back), wrong credentials
 * (-EACCES), an endpoint where nothing listens (-ECONNREFUSED, transient).
 *
 * Fixture: testutil.h (the fixture library).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "s3_client.h"
#include "testutil.h"

static const char *env_get(const char *name)
{
	return getenv(name);
}

static char prefix[64];

static void key_of(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", prefix, name);
}

static void hex_of(const void *data, size_t len, char hex[HASH_HEX_SIZE + 1])
{
	uint8_t h[BLOBFS_HASH_SIZE];

	REQUIRE(hash_buffer(data, len, h) == 0);
	hash_to_hex(h, hex);
}

struct collected {
	uint8_t *data;
	size_t len, cap;
	size_t refuse_after; /* 0: never */
};

static int collect(const void *data, size_t len, void *arg)
{
	struct collected *c = arg;

	if (c->refuse_after && c->len + len > c->refuse_after)
		return -EMSGSIZE;
	if (c->len + len > c->cap) {
		c->cap = (c->len + len) * 2;
		c->data = realloc(c->data, c->cap);
		REQUIRE(c->data != NULL);
	}
	memcpy(c->data + c->len, data, len);
	c->len += len;
	return 0;
}

struct mem_source {
	const uint8_t *data;
	size_t len;
};

static int from_memory(void *buf, size_t len, uint64_t off, void *arg)
{
	struct mem_source *m = arg;
	size_t n = off >= m->len ? 0 : m->len - off < len ? m->len - (size_t)off : len;

	memcpy(buf, m->data + off, n);
	return (int)n;
}

static void test_objects(struct s3_client *c)
{
	uint8_t *data = tu_random_buffer(300000);
	char key[256], hex[HASH_HEX_SIZE + 1];
	struct collected got = { 0 };
	struct mem_source src = { data, 300000 };
	uint64_t size = 0;
	int64_t mtime = 0, now = (int64_t)time(NULL);

	TU_TEST("put, get, head, delete");
	key_of(key, sizeof(key), "a");
	hex_of(data, 300000, hex);
	CHECK_EQ(s3_put(c, key, data, 300000, hex, 0), 0);
	CHECK_EQ(s3_head(c, key, &size, &mtime), 0);
	CHECK_EQ(size, 300000);
	CHECK(mtime >= now - 60 && mtime <= now + 60);
	CHECK_EQ(s3_get(c, key, 0, 0, collect, &got, &size), 0);
	CHECK_EQ(got.len, 300000);
	CHECK_EQ(size, 300000);
	CHECK(got.len == 300000 && !memcmp(got.data, data, 300000));
	got.len = 0;
	CHECK_EQ(s3_get(c, key, 1000, 500, collect, &got, &size), 0);
	CHECK(got.len == 500 && !memcmp(got.data, data + 1000, 500));
	CHECK_EQ(size, 300000); /* the whole size, from Content-Range */
	got.len = 0;
	CHECK_EQ(s3_get(c, key, 299990, 0, collect, &got, NULL), 0);
	CHECK(got.len == 10 && !memcmp(got.data, data + 299990, 10));
	/* A sink's error ends the transfer and is what the call returns. */
	got.len = 0;
	got.refuse_after = 100000;
	CHECK_EQ(s3_get(c, key, 0, 0, collect, &got, NULL), -EMSGSIZE);
	got.refuse_after = 0;
	/* The same from a source, and with the hash computed for us. */
	key_of(key, sizeof(key), "b");
	CHECK_EQ(s3_put_from(c, key, 300000, hex, 0, from_memory, &src), 0);
	CHECK_EQ(s3_head(c, key, &size, NULL), 0);
	CHECK_EQ(size, 300000);
	CHECK_EQ(s3_put_from(c, key, 300000, NULL, 0, from_memory, &src), -EINVAL);
	TU_TEST("a PUT if absent does not replace an object");
	CHECK_EQ(s3_put_from(c, key, 300000, hex, S3_PUT_IF_ABSENT, from_memory, &src), -EEXIST);
	CHECK_EQ(s3_put(c, key, "xyz", 3, NULL, S3_PUT_IF_ABSENT), -EEXIST);
	CHECK_EQ(s3_head(c, key, &size, NULL), 0);
	CHECK_EQ(size, 300000);
	key_of(key, sizeof(key), "c");
	CHECK_EQ(s3_put(c, key, "xyz", 3, NULL, S3_PUT_IF_ABSENT), 0);
	CHECK_EQ(s3_put(c, key, "xyz", 3, NULL, 0), 0); /* replaces: same bytes */
	CHECK_EQ(s3_delete(c, key), 0);
	CHECK_EQ(s3_head(c, key, &size, NULL), -ENOENT);
	got.len = 0;
	CHECK_EQ(s3_get(c, key, 0, 0, collect, &got, NULL), -ENOENT);
	CHECK_EQ(got.len, 0); /* the error body is not the object */

	TU_TEST("a body that does not match its hash is refused and not stored");
	key_of(key, sizeof(key), "liar");
	data[0] ^= 1;
	CHECK_EQ(s3_put(c, key, data, 300000, hex, 0), -EBADMSG);
	CHECK(strstr(s3_last_error(), "XAmzContentSHA256Mismatch") != NULL);
	CHECK_EQ(s3_head(c, key, NULL, NULL), -ENOENT);
	CHECK_EQ(s3_put(c, key, data, 300000, "not hex", 0), -EINVAL);
	free(got.data);
	free(data);
}

static void test_keys_and_listings(struct s3_client *c)
{
	static const char *const names[] = { "d/x", "d/y y", "d/caf\xc3\xa9", "d/a+b%c", "d/sub/z",
					     "e" };
	char key[256], after[256];
	struct s3_listing l;
	struct collected got = { 0 };
	size_t seen = 0;
	char *token = NULL;

	TU_TEST("keys that need encoding");
	for (size_t i = 0; i < sizeof(names) / sizeof(*names); i++) {
		key_of(key, sizeof(key), names[i]);
		CHECK_EQ(s3_put(c, key, names[i], strlen(names[i]), NULL, 0), 0);
		got.len = 0;
		CHECK_EQ(s3_get(c, key, 0, 0, collect, &got, NULL), 0);
		CHECK(got.len == strlen(names[i]) && !memcmp(got.data, names[i], got.len));
	}

	TU_TEST("listings: prefix, delimiter, start-after, pages");
	key_of(key, sizeof(key), "d/");
	REQUIRE(s3_list(c, key, "/", NULL, NULL, 0, &l) == 0);
	CHECK_EQ(l.object_count, 4);
	CHECK_EQ(l.prefix_count, 1);
	if (l.prefix_count == 1) {
		key_of(after, sizeof(after), "d/sub/");
		CHECK(!strcmp(l.prefixes[0], after));
	}
	for (size_t i = 1; i < l.object_count; i++)
		CHECK(strcmp(l.objects[i - 1].key, l.objects[i].key) < 0);
	CHECK(!l.truncated);
	s3_listing_free(&l);
	key_of(after, sizeof(after), "d/x");
	REQUIRE(s3_list(c, key, NULL, after, NULL, 0, &l) == 0);
	CHECK_EQ(l.object_count, 1); /* "d/y y" */
	s3_listing_free(&l);
	/* Pages of two, by continuation token: every key once. */
	do {
		REQUIRE(s3_list(c, key, NULL, NULL, token, 2, &l) == 0);
		free(token);
		token = NULL;
		CHECK(l.object_count <= 2);
		seen += l.object_count;
		if (l.truncated)
			token = strdup(l.next_token);
		s3_listing_free(&l);
	} while (token);
	CHECK_EQ(seen, 5);
	free(got.data);
}

static int from_pattern(void *buf, size_t len, uint64_t off, void *arg)
{
	uint8_t *p = buf;

	(void)arg;
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)((off + i) * 7 + ((off + i) >> 13));
	return (int)len;
}

static void test_multipart(struct s3_client *c)
{
	const uint64_t part = 5u << 20, total = 2 * part + 12345;
	uint8_t *whole = tu_xmalloc(total);
	char key[256], hex[HASH_HEX_SIZE + 1], etags[3][129], *id = NULL;
	struct collected got = { 0 };

	TU_TEST("multipart: three parts, each with its hash, read back whole");
	from_pattern(whole, total, 0, NULL);
	key_of(key, sizeof(key), "mp");
	REQUIRE(s3_multipart_start(c, key, &id) == 0);
	for (unsigned i = 0; i < 3; i++) {
		uint64_t off = i * part, n = i < 2 ? part : total - off;
		struct mem_source src = { whole + off, (size_t)n };

		hex_of(whole + off, (size_t)n, hex);
		CHECK_EQ(s3_multipart_part(c, key, id, i + 1, n, hex, from_memory, &src, etags[i]), 0);
		CHECK(etags[i][0] != '\0');
	}
	CHECK_EQ(s3_multipart_complete(c, key, id, etags, 3), 0);
	free(id);
	CHECK_EQ(s3_get(c, key, 0, 0, collect, &got, NULL), 0);
	CHECK(got.len == total && !memcmp(got.data, whole, total));
	/* An upload given up. */
	key_of(key, sizeof(key), "mp-abandoned");
	REQUIRE(s3_multipart_start(c, key, &id) == 0);
	CHECK_EQ(s3_multipart_abort(c, key, id), 0);
	free(id);
	CHECK_EQ(s3_head(c, key, NULL, NULL), -ENOENT);

	TU_TEST("multipart: an upload left unfinished is found with its parts");
	{
		char *found = NULL, had[3][129];
		uint64_t sizes[3];
		struct mem_source src = { whole, (size_t)part };

		key_of(key, sizeof(key), "mp-left");
		CHECK_EQ(s3_multipart_find(c, key, &found), -ENOENT);
		REQUIRE(s3_multipart_start(c, key, &id) == 0);
		hex_of(whole, (size_t)part, hex);
		CHECK_EQ(s3_multipart_part(c, key, id, 2, part, hex, from_memory, &src, etags[1]), 0);
		CHECK_EQ(s3_multipart_find(c, key, &found), 0);
		CHECK(found && !strcmp(found, id));
		CHECK_EQ(s3_multipart_list_parts(c, key, id, 3, sizes, had), 0);
		CHECK(had[0][0] == '\0' && had[2][0] == '\0');
		CHECK(sizes[1] == part && !strcmp(had[1], etags[1]));
		CHECK_EQ(s3_multipart_list_parts(c, key, id, 1, sizes, had), 0); /* part 2 not asked */
		CHECK(had[0][0] == '\0');
		CHECK_EQ(s3_multipart_abort(c, key, id), 0);
		free(found);
		CHECK_EQ(s3_multipart_find(c, key, &found), -ENOENT);
		CHECK(found == NULL);
		free(id);
	}
	free(got.data);
	free(whole);
}

static void test_failures(const struct s3_config *good)
{
	struct s3_config bad = *good;
	struct s3_client *c;
	char key[256];

	TU_TEST("wrong keys, nothing listening");
	key_of(key, sizeof(key), "a");
	bad.secret_key = "not-the-secret";
	REQUIRE(s3_client_new(&bad, NULL, &c) == 0);
	CHECK_EQ(s3_head(c, key, NULL, NULL), -EACCES);
	s3_client_free(c);
	bad = *good;
	bad.endpoint = "http://127.0.0.1:9";
	REQUIRE(s3_client_new(&bad, NULL, &c) == 0);
	{
		int ret = s3_head(c, key, NULL, NULL);

		CHECK_EQ(ret, -ECONNREFUSED);
		CHECK(s3_transient(ret));
	}
	s3_client_free(c);
}

int main(int argc, char **argv)
{
	struct s3_config config;
	struct s3_client *c;
	char why[256];
	int ret;

	(void)argc;
	tu_init(argv[0]);
	if (!getenv("AWS_ENDPOINT_URL")) {
		fprintf(stderr, "AWS_ENDPOINT_URL is not set (eval \"$(scripts/ceph-dev env)\"): "
				"skipped\n");
		return 77;
	}
	snprintf(prefix, sizeof(prefix), "client-%lld-%d", (long long)time(NULL), (int)getpid());
	ret = s3_config_load("s3://blobfs-tests", NULL, env_get, &config, why, sizeof(why));
	if (ret < 0) {
		fprintf(stderr, "%s\n", why);
		return 1;
	}
	REQUIRE(s3_client_new(&config, NULL, &c) == 0);
	ret = s3_bucket_create(c);
	REQUIRE(ret == 0 || ret == -EEXIST);
	test_objects(c);
	test_keys_and_listings(c);
	test_multipart(c);
	test_failures(&config);
	s3_client_free(c);
	s3_config_free(&config);
	return tu_finish();
}
