/*
 * http_page.c - the pages for people: GET / lists the stores, GET
 * /stores/{s}/ (or a store's paths with Accept: text/html) its blobs with
 * their sizes, save times and download links; plain HTML and a little CSS,
 * no script, a page of PAGE_ROWS rows at a time with a link to the next.
 */
#include "http_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "escape.h"
#include "hash.h"
#include "log.h"

#define PAGE_ROWS 100

struct html {
	char *buf;
	size_t len, cap;
	int err;
};

static void add(struct html *h, const char *s, size_t n)
{
	if (h->err)
		return;
	if (h->len + n + 1 > h->cap) {
		size_t cap = h->cap ? h->cap : 16384;
		char *b;

		while (cap < h->len + n + 1)
			cap *= 2;
		b = realloc(h->buf, cap);
		if (!b) {
			h->err = -ENOMEM;
			return;
		}
		h->buf = b;
		h->cap = cap;
	}
	memcpy(h->buf + h->len, s, n);
	h->len += n;
	h->buf[h->len] = '\0';
}

static void adds(struct html *h, const char *s)
{
	add(h, s, strlen(s));
}

static void addf(struct html *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void addf(struct html *h, const char *fmt, ...)
{
	char line[2048];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n > 0)
		add(h, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1);
}

/* Text into HTML (names hold any byte but NUL and '/'). */
static void add_text(struct html *h, const char *s)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '<')
			add(h, "&lt;", 4);
		else if (c == '>')
			add(h, "&gt;", 4);
		else if (c == '&')
			add(h, "&amp;", 5);
		else if (c == '"')
			add(h, "&quot;", 6);
		else if (c < 0x20 || c == 0x7f)
			addf(h, "\\x%02x", c);
		else
			add(h, s, 1);
	}
}

static void head(struct html *h, const char *title)
{
	adds(h, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
		"<meta name=\"viewport\" content=\"width=device-width\"><title>");
	add_text(h, title);
	addf(h, "</title><style>"
		"body{font:15px/1.4 system-ui,sans-serif;margin:2em auto;max-width:60em;"
		"padding:0 1em;color:#222}"
		"h1{font-size:1.4em}a{color:#0550ae;text-decoration:none}a:hover{text-decoration:"
		"underline}table{border-collapse:collapse;width:100%%}"
		"th,td{text-align:left;padding:.3em .6em;border-bottom:1px solid #ddd}"
		"td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}"
		"code{font:13px ui-monospace,monospace}.muted{color:#777}"
		"</style></head><body>\n");
}

static enum MHD_Result send_page(struct http_request *r, struct html *h)
{
	struct MHD_Response *resp;

	if (h->err) {
		free(h->buf);
		return http_fail(r, h->err, "page");
	}
	resp = MHD_create_response_from_buffer_with_free_callback(h->len, h->buf, free);
	if (!resp) {
		free(h->buf);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "text/html; charset=utf-8");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_VARY, "Accept");
	return http_queue(r, MHD_HTTP_OK, resp);
}

struct rows {
	struct http_request *r;
	struct html *h;
	unsigned n;
	bool more;
	char last_name[256];
	uint8_t last[BLOBFS_HASH_SIZE];
	struct store *st;
};

static int store_row(const char *name, void *arg)
{
	struct rows *w = arg;
	char link[3 * 255 + 1];
	struct store *st;
	struct store_attr attr = { 0 };

	if (!http_reaches(w->r, name))
		return 0;
	if (w->n == PAGE_ROWS) {
		w->more = true;
		return 1;
	}
	percent_encode(name, strlen(name), link);
	if (store_open(w->r->server->db, name, &st) == 0) {
		char count[32] = "-";

		(void)store_attr_get(st, &attr);
		if (store_attr_access(&attr, &w->r->who, R_OK | X_OK) == 0)
			snprintf(count, sizeof(count), "%zu", blob_count(st));
		addf(w->h, "<tr><td><a href=\"/stores/%s/\">", link);
		add_text(w->h, name);
		addf(w->h, "</a></td><td class=\"n\">%s</td><td><code>%04o</code> %u:%u</td></tr>\n",
		     count, attr.mode, attr.uid, attr.gid);
		store_close(st);
	}
	snprintf(w->last_name, sizeof(w->last_name), "%s", name);
	w->n++;
	return 0;
}

enum MHD_Result http_page_stores(struct http_request *r)
{
	struct html h = { 0 };
	struct rows w = { .r = r, .h = &h };
	char after[256], link[3 * 255 + 1];
	int n = http_query(r, "after", after, sizeof(after)), ret;

	head(&h, "blobfs: stores");
	/* Nothing of where the data lives, nor of stores the client cannot
	 * reach or read beyond what `ls -l` of the mount's root shows. */
	adds(&h, "<h1>Stores</h1>\n<table><tr><th>store</th><th class=\"n\">blobs</th><th>mode, owner</th>"
		 "</tr>\n");
	ret = store_list(r->server->db, n >= 0 ? after : NULL, store_row, &w);
	if (ret < 0)
		h.err = ret;
	adds(&h, "</table>\n");
	if (w.more) {
		percent_encode(w.last_name, strlen(w.last_name), link);
		addf(&h, "<p><a rel=\"next\" href=\"/?after=%s\">next %d stores</a></p>\n", link,
		     PAGE_ROWS);
	}
	adds(&h, "</body></html>\n");
	return send_page(r, &h);
}

static int blob_row(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct rows *w = arg;
	char hex[BLOBFS_HASH_SIZE * 2 + 1], link[3 * 255 + 1], when[64] = "";
	struct blob_stat bs = { 0 };

	if (w->n == PAGE_ROWS) {
		w->more = true;
		return 1;
	}
	hash_to_hex(hash, hex);
	percent_encode(w->r->store, strlen(w->r->store), link);
	if (blob_stat(w->st, hash, &bs) == 0 && bs.saved > 0) {
		struct tm tm;
		time_t t = (time_t)bs.saved;

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S UTC", &tm);
	}
	addf(w->h, "<tr><td><code title=\"%s\">%.16s…</code></td><td class=\"n\">%" PRIu64 "</td><td>%s</td>"
		   "<td><a href=\"/stores/%s/blobs/%s\" download=\"%s\">download</a></td></tr>\n",
	     hex, hex, length, when[0] ? when : "-", link, hex, hex);
	memcpy(w->last, hash, BLOBFS_HASH_SIZE);
	w->n++;
	return 0;
}

enum MHD_Result http_page_store(struct http_request *r)
{
	struct html h = { 0 };
	struct rows w = { .r = r, .h = &h };
	char after[3 * 256], link[3 * 255 + 1], hex[BLOBFS_HASH_SIZE * 2 + 1];
	uint8_t from[BLOBFS_HASH_SIZE];
	int n = http_query(r, "after", after, sizeof(after));
	int ret = http_open_store(r, R_OK | X_OK, &w.st);

	if (ret < 0)
		return http_fail(r, ret, "page");
	if (n >= 0 && !hash_from_hex(after, (size_t)n, from)) {
		store_close(w.st);
		return http_fail(r, -EINVAL, "page");
	}
	head(&h, r->store);
	adds(&h, "<p><a href=\"/\">stores</a></p>\n<h1>");
	add_text(&h, r->store);
	addf(&h, "</h1>\n<p class=\"muted\">%zu blobs</p>\n<table><tr><th>blob (SHA-256)</th>"
		 "<th class=\"n\">bytes</th><th>saved</th><th></th></tr>\n", blob_count(w.st));
	ret = blob_list(w.st, n >= 0 ? from : NULL, blob_row, &w);
	if (ret < 0)
		h.err = ret;
	adds(&h, "</table>\n");
	if (w.more) {
		percent_encode(r->store, strlen(r->store), link);
		hash_to_hex(w.last, hex);
		addf(&h, "<p><a rel=\"next\" href=\"/stores/%s/?after=%s\">next %d blobs</a></p>\n",
		     link, hex, PAGE_ROWS);
	}
	adds(&h, "</body></html>\n");
	store_close(w.st);
	return send_page(r, &h);
}
