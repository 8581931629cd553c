/*
 * http_list.c - the listings of the HTTP API: GET /stores and GET
 * /stores/{s}/blobs as JSON lists, streamed a page at a time (memory does
 * not grow with the store), or one page of them (?after=&limit=) with a
 * Link to the next; names as JSON strings, or percent-encoded.
 */
#include "http_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "escape.h"
#include "hash.h"
#include "log.h"
#include "strlist.h"

/* Items fetched from the store at a time while a listing streams. */
#define PAGE_ITEMS 512
#define LIMIT_MAX 100000

/* The length of the valid UTF-8 sequence at s (n bytes left), or 0. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	size_t len;
	uint32_t cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4, cp = s[0] & 0x07;
	else
		return 0;
	if (n < len)
		return 0;
	for (size_t i = 1; i < len; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = cp << 6 | (s[i] & 0x3f);
	}
	/* No overlong forms, no surrogates, nothing past U+10FFFF. */
	if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return len;
}

size_t http_json_name(const char *name, bool url, char *out)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)name;
	size_t n = strlen(name), o = 0;

	out[o++] = '"';
	if (url) {
		o += percent_encode(name, n, out + o);
		out[o++] = '"';
		out[o] = '\0';
		return o;
	}
	for (size_t i = 0; i < n;) {
		size_t len = utf8_len(s + i, n - i);

		if (len == 0) { /* not UTF-8: U+FFFD */
			memcpy(out + o, "\xef\xbf\xbd", 3);
			o += 3;
			i++;
		} else if (len > 1) {
			memcpy(out + o, s + i, len);
			o += len;
			i += len;
		} else if (s[i] == '"' || s[i] == '\\') {
			out[o++] = '\\';
			out[o++] = (char)s[i++];
		} else if (s[i] < 0x20 || s[i] == 0x7f) {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[s[i] >> 4];
			out[o + 5] = hex[s[i] & 15];
			o += 6;
			i++;
		} else {
			out[o++] = (char)s[i++];
		}
	}
	out[o++] = '"';
	out[o] = '\0';
	return o;
}

/* A listing being streamed: the items after `after`, up to and with
 * `last` when paged. */
struct listing {
	struct blobdb *db;
	struct store *st;       /* blobs; NULL: stores */
	const struct token *token; /* stores: only those it reaches */
	struct token_set *tokens;  /* held for token */
	bool url;
	bool has_after, has_last, started, done;
	uint8_t after[BLOBFS_HASH_SIZE], last[BLOBFS_HASH_SIZE];
	char after_name[256], last_name[256];
	char *buf;
	size_t len, pos, cap;
};

struct page {
	struct listing *l;
	size_t count;
};

static int append(struct listing *l, const char *s, size_t n)
{
	if (l->len + n > l->cap) {
		size_t cap = l->cap ? l->cap : 16384;
		char *b;

		while (cap < l->len + n)
			cap *= 2;
		b = realloc(l->buf, cap);
		if (!b)
			return -ENOMEM;
		l->buf = b;
		l->cap = cap;
	}
	memcpy(l->buf + l->len, s, n);
	l->len += n;
	return 0;
}

static int item(struct listing *l, const char *json, size_t n)
{
	int ret = append(l, l->started ? "," : "[", 1);

	l->started = true;
	return ret < 0 ? ret : append(l, json, n);
}

static int add_blob(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct page *p = arg;
	char json[BLOBFS_HASH_SIZE * 2 + 3];
	int ret;

	(void)length;
	if (p->l->has_last && memcmp(hash, p->l->last, BLOBFS_HASH_SIZE) > 0) {
		p->l->done = true;
		return 1;
	}
	json[0] = '"';
	hash_to_hex(hash, json + 1);
	json[BLOBFS_HASH_SIZE * 2 + 1] = '"';
	ret = item(p->l, json, sizeof(json) - 1);
	memcpy(p->l->after, hash, BLOBFS_HASH_SIZE);
	p->l->has_after = true;
	return ret < 0 ? ret : ++p->count == PAGE_ITEMS ? 1 : 0;
}

static int add_store(const char *name, void *arg)
{
	struct page *p = arg;
	char json[HTTP_JSON_NAME_MAX];
	int ret = 0;

	if (p->l->has_last && strcmp(name, p->l->last_name) > 0) {
		p->l->done = true;
		return 1;
	}
	if (!p->l->token || token_reaches(p->l->token, name))
		ret = item(p->l, json, http_json_name(name, p->l->url, json));
	snprintf(p->l->after_name, sizeof(p->l->after_name), "%s", name);
	p->l->has_after = true;
	return ret < 0 ? ret : ++p->count == PAGE_ITEMS ? 1 : 0;
}

/* The next page of items into the buffer (the closing bracket after the
 * last). */
static int refill(struct listing *l)
{
	struct page p = { .l = l };
	int ret;

	l->len = l->pos = 0;
	ret = l->st ? blob_list(l->st, l->has_after ? l->after : NULL, add_blob, &p) :
	      store_list(l->db, l->has_after ? l->after_name : NULL, add_store, &p);
	if (ret < 0)
		return ret;
	if (p.count < PAGE_ITEMS)
		l->done = true;
	if (l->done)
		ret = append(l, l->started ? "]\n" : "[]\n", l->started ? 2 : 3);
	return ret;
}

static ssize_t listing_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct listing *l = cls;
	size_t n;

	(void)pos;
	while (l->pos == l->len) {
		int ret;

		if (l->done)
			return MHD_CONTENT_READER_END_OF_STREAM;
		ret = refill(l);
		if (ret < 0) {
			log_error("http: listing %s: %s: the connection ends",
				  l->st ? store_name(l->st) : "of stores", strerror(-ret));
			return MHD_CONTENT_READER_END_WITH_ERROR;
		}
	}
	n = l->len - l->pos < max ? l->len - l->pos : max;
	memcpy(buf, l->buf + l->pos, n);
	l->pos += n;
	return (ssize_t)n;
}

static void listing_free(void *cls)
{
	struct listing *l = cls;

	if (l->st)
		store_close(l->st);
	token_set_release(l->tokens);
	free(l->buf);
	free(l);
}

struct counting {
	struct listing *l;
	unsigned long limit, seen;
	bool more;
};

static int count_blob(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct counting *c = arg;

	(void)length;
	if (c->seen == c->limit) {
		c->more = true;
		return 1;
	}
	memcpy(c->l->last, hash, BLOBFS_HASH_SIZE);
	c->seen++;
	return 0;
}

static int count_store(const char *name, void *arg)
{
	struct counting *c = arg;

	if (c->l->token && !token_reaches(c->l->token, name))
		return 0;
	if (c->seen == c->limit) {
		c->more = true;
		return 1;
	}
	snprintf(c->l->last_name, sizeof(c->l->last_name), "%s", name);
	c->seen++;
	return 0;
}

/* The Link to the next page. */
static void add_link(struct http_request *r, struct MHD_Response *resp, struct listing *l,
		     unsigned long limit)
{
	char store[3 * 255 + 1], after[3 * 255 + 1], link[2 * 3 * 255 + 128];

	if (l->st) {
		percent_encode(r->store, strlen(r->store), store);
		hash_to_hex(l->last, after);
		snprintf(link, sizeof(link), "</stores/%s/blobs?after=%s&limit=%lu%s>; rel=\"next\"",
			 store, after, limit, l->url ? "&encoding=url" : "");
	} else {
		percent_encode(l->last_name, strlen(l->last_name), after);
		snprintf(link, sizeof(link), "</stores?after=%s&limit=%lu%s>; rel=\"next\"", after,
			 limit, l->url ? "&encoding=url" : "");
	}
	MHD_add_response_header(resp, "Link", link);
}

/* A listing's answer: the query's after, limit and encoding, the page's
 * end found first when paged (so that the Link is known before the body). */
static enum MHD_Result list(struct http_request *r, struct store *st)
{
	struct listing *l = calloc(1, sizeof(*l));
	struct counting c = { .l = l };
	struct MHD_Response *resp;
	char arg[3 * 256], *end;
	int ret = l ? 0 : -ENOMEM, n;

	if (!l)
		goto fail;
	l->db = r->server->db;
	l->st = st;
	st = NULL;
	l->token = r->token;
	l->tokens = token_set_hold(r->tokens);
	n = http_query(r, "encoding", arg, sizeof(arg));
	l->url = n >= 0 && !strcmp(arg, "url");
	if (n >= 0 && strcmp(arg, "url") != 0)
		ret = -EINVAL;
	/* No store name is longer than after_name holds (a longer one is
	 * -EINVAL), no hash longer than 64 digits. */
	n = http_query(r, "after", arg, sizeof(l->after_name));
	if (ret == 0 && n >= 0) {
		l->has_after = true;
		if (l->st ? !hash_from_hex(arg, (size_t)n, l->after) : (size_t)n != strlen(arg))
			ret = -EINVAL;
		else if (!l->st)
			memcpy(l->after_name, arg, (size_t)n + 1);
	} else if (n != -ENOENT) {
		ret = -EINVAL;
	}
	n = http_query(r, "limit", arg, sizeof(arg));
	if (ret == 0 && n >= 0) {
		c.limit = strtoul(arg, &end, 10);
		if (*end || c.limit == 0 || c.limit > LIMIT_MAX)
			ret = -EINVAL;
	} else if (n != -ENOENT) {
		ret = -EINVAL;
	}
	if (ret == 0 && c.limit) {
		const uint8_t *after = l->has_after ? l->after : NULL;

		ret = l->st ? blob_list(l->st, after, count_blob, &c) :
		      store_list(l->db, l->has_after ? l->after_name : NULL, count_store, &c);
		ret = ret < 0 ? ret : 0;
		l->has_last = true;
		if (c.seen == 0)
			l->done = true, ret = ret < 0 ? ret : append(l, "[]\n", 3);
	}
	if (ret < 0)
		goto fail;
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, listing_read, l,
						 listing_free);
	if (!resp)
		goto fail;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept");
	if (c.more)
		add_link(r, resp, l, c.limit);
	return http_queue(r, MHD_HTTP_OK, resp);
fail:
	if (l)
		listing_free(l);
	if (st)
		store_close(st);
	return ret == -EINVAL ? http_fail_status(r, MHD_HTTP_BAD_REQUEST, "invalid-argument",
						 "after, limit (1..100000) or encoding=url") :
	       http_fail(r, ret ? ret : -ENOMEM, "listing");
}

/* HEAD of a listing: its headers, no body (a chunked answer's last chunk
 * would still go out, and break the next answer on the connection). */
static enum MHD_Result head_only(struct http_request *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"",
								    MHD_RESPMEM_PERSISTENT);

	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept");
	return http_queue(r, MHD_HTTP_OK, resp);
}

enum MHD_Result http_store_list(struct http_request *r)
{
	return strcmp(r->method, "HEAD") ? list(r, NULL) : head_only(r);
}

enum MHD_Result http_blob_list(struct http_request *r)
{
	struct store *st;
	int ret = http_open_store(r, R_OK | X_OK, &st);

	if (ret < 0)
		return http_fail(r, ret, "blob list");
	if (!strcmp(r->method, "HEAD")) {
		store_close(st);
		return head_only(r);
	}
	return list(r, st);
}
