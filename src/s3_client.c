/*
 * s3_client.c - S3 requests through libcurl: the handle pool, URLs and
 * query strings, signing (libcurl's CURLOPT_AWS_SIGV4), answers and their
 * errors.
 *
 * Signing. libcurl signs the request it sends; blobfs gives it the
 * payload's SHA-256 as the x-amz-content-sha256 header (libcurl then signs
 * that value instead of hashing the body itself, and the server checks the
 * body against it). For a blob that is its name. libcurl 7.88 signs the
 * path and query as they are written, so they are written canonically
 * here: every byte but A-Z a-z 0-9 - _ . ~ percent-encoded (and '/' kept in
 * the path), parameters in byte order, each with an '='.
 */
#include "s3_client.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <libxml/parser.h>

#include "hash.h"
#include "log.h"
#include "s3_request.h"

#define ERROR_BODY_MAX (64u << 10)

struct s3_client {
	char *endpoint, *bucket, *sigv4, *access_key, *secret_key, *token_header;
	struct s3_client_options opts;
	pthread_mutex_t lock;
	CURL **idle; /* handles kept for reuse (their connections stay open) */
	size_t idle_count;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static int global_ret;
static __thread char last_error[160];

static void global_init(void)
{
	/* libcurl's global state (OpenSSL's) and libxml2's parser, once, before
	 * any thread uses them. */
	global_ret = curl_global_init(CURL_GLOBAL_DEFAULT) == CURLE_OK ? 0 : -EIO;
	xmlInitParser();
}

void s3_set_error(const char *text)
{
	snprintf(last_error, sizeof(last_error), "%s", text);
}

const char *s3_last_error(void)
{
	return last_error[0] ? last_error : "no error";
}

bool s3_transient(int err)
{
	return err == -EAGAIN || err == -ETIMEDOUT || err == -ECONNREFUSED ||
	       err == -EHOSTUNREACH || err == -ECONNRESET;
}

/* ---- the handle pool ---- */

static CURL *handle_get(struct s3_client *c)
{
	CURL *h = NULL;

	pthread_mutex_lock(&c->lock);
	if (c->idle_count)
		h = c->idle[--c->idle_count];
	pthread_mutex_unlock(&c->lock);
	if (h)
		curl_easy_reset(h); /* options go, the connection stays */
	else
		h = curl_easy_init();
	return h;
}

static void handle_put(struct s3_client *c, CURL *h, bool reusable)
{
	if (!h)
		return;
	pthread_mutex_lock(&c->lock);
	if (reusable && c->idle_count < c->opts.max_handles) {
		c->idle[c->idle_count++] = h;
		h = NULL;
	}
	pthread_mutex_unlock(&c->lock);
	if (h)
		curl_easy_cleanup(h);
}

int s3_client_new(const struct s3_config *config, const struct s3_client_options *opts,
		  struct s3_client **out)
{
	struct s3_client *c;
	int ret = -ENOMEM;

	*out = NULL;
	pthread_once(&global_once, global_init);
	if (global_ret < 0)
		return global_ret;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	if (opts)
		c->opts = *opts;
	if (!c->opts.connect_timeout_ms)
		c->opts.connect_timeout_ms = 5000;
	if (!c->opts.stall_timeout_ms)
		c->opts.stall_timeout_ms = 10000;
	if (!c->opts.request_timeout_ms)
		c->opts.request_timeout_ms = 30000;
	if (!c->opts.max_handles)
		c->opts.max_handles = 16;
	pthread_mutex_init(&c->lock, NULL);
	c->endpoint = strdup(config->endpoint);
	c->bucket = strdup(config->bucket);
	c->access_key = strdup(config->access_key);
	c->secret_key = strdup(config->secret_key);
	c->idle = calloc(c->opts.max_handles, sizeof(*c->idle));
	if (asprintf(&c->sigv4, "aws:amz:%s:s3", config->region) < 0)
		c->sigv4 = NULL;
	if (config->session_token &&
	    asprintf(&c->token_header, "x-amz-security-token: %s", config->session_token) < 0) {
		c->token_header = NULL;
		goto out;
	}
	if (!c->endpoint || !c->bucket || !c->access_key || !c->secret_key || !c->idle || !c->sigv4)
		goto out;
	*out = c;
	c = NULL;
	ret = 0;
out:
	s3_client_free(c);
	return ret;
}

void s3_client_free(struct s3_client *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->idle_count; i++)
		curl_easy_cleanup(c->idle[i]);
	free(c->idle);
	pthread_mutex_destroy(&c->lock);
	free(c->endpoint);
	free(c->bucket);
	free(c->sigv4);
	free(c->access_key);
	if (c->secret_key)
		memset(c->secret_key, 0, strlen(c->secret_key));
	free(c->secret_key);
	free(c->token_header);
	free(c);
}

/* ---- URLs ---- */

static int buf_add(struct buf *b, const void *data, size_t len)
{
	if (b->len + len > b->max) {
		b->overflow = true;
		return -E2BIG;
	}
	if (b->len + len + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 256;
		char *p;

		while (cap < b->len + len + 1)
			cap *= 2;
		p = realloc(b->data, cap);
		if (!p)
			return -ENOMEM;
		b->data = p;
		b->cap = cap;
	}
	memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int s3_buf_add_str(struct buf *b, const char *s)
{
	return buf_add(b, s, strlen(s));
}

/* Appends s percent-encoded as SigV4 wants it ('/' kept when keep_slash). */
static int buf_add_encoded(struct buf *b, const char *s, bool keep_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	int ret = 0;

	for (const unsigned char *p = (const unsigned char *)s; *p && ret == 0; p++) {
		if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
		    *p == '-' || *p == '_' || *p == '.' || *p == '~' || (keep_slash && *p == '/')) {
			ret = buf_add(b, p, 1);
		} else {
			char esc[3] = { '%', hex[*p >> 4], hex[*p & 15] };

			ret = buf_add(b, esc, 3);
		}
	}
	return ret;
}

/* ENDPOINT/BUCKET[/KEY][?params], the params (given in byte order of their
 * names) each as name=value. */
static int make_url(const struct s3_client *c, const char *key, const struct param *params,
		    size_t nparams, char **out)
{
	struct buf b = { .max = 16384 };
	char sep = '?';
	int ret;

	*out = NULL;
	ret = s3_buf_add_str(&b, c->endpoint);
	if (ret == 0)
		ret = s3_buf_add_str(&b, "/");
	if (ret == 0)
		ret = buf_add_encoded(&b, c->bucket, false);
	if (ret == 0 && key) {
		ret = s3_buf_add_str(&b, "/");
		if (ret == 0)
			ret = buf_add_encoded(&b, key, true);
	}
	for (size_t i = 0; i < nparams && ret == 0; i++) {
		if (!params[i].value)
			continue;
		ret = buf_add(&b, &sep, 1);
		sep = '&';
		if (ret == 0)
			ret = buf_add_encoded(&b, params[i].name, false);
		if (ret == 0)
			ret = s3_buf_add_str(&b, "=");
		if (ret == 0)
			ret = buf_add_encoded(&b, params[i].value, false);
	}
	if (ret < 0) {
		free(b.data);
		return ret == -E2BIG ? -EINVAL : ret;
	}
	*out = b.data;
	return 0;
}

/* ---- one request ---- */

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
	struct request *r = arg;
	size_t len = size * nmemb;
	long status = 0;

	curl_easy_getinfo(r->handle, CURLINFO_RESPONSE_CODE, &status);
	if (status >= 200 && status < 300 && r->sink) {
		r->sink_ret = r->sink(data, len, r->sink_arg);
		return r->sink_ret < 0 ? 0 : len;
	}
	/* An error body past its bound is cut, not failed: the status is
	 * what matters. */
	if (status >= 300 && r->answer.len + len > ERROR_BODY_MAX)
		return len;
	return buf_add(&r->answer, data, len) < 0 ? 0 : len;
}

static size_t on_upload(char *buf, size_t size, size_t nmemb, void *arg)
{
	struct request *r = arg;
	size_t want = size * nmemb;
	uint64_t left = r->body_len - r->source_off;
	int got;

	if (want > left)
		want = (size_t)left;
	if (want == 0)
		return 0;
	if (r->body) {
		memcpy(buf, (const char *)r->body + r->source_off, want);
		r->source_off += want;
		return want;
	}
	got = r->source(buf, want, r->source_off, r->source_arg);
	if (got <= 0) {
		r->source_ret = got < 0 ? got : -EIO; /* short: the source lied about len */
		return CURL_READFUNC_ABORT;
	}
	r->source_off += (size_t)got;
	return (size_t)got;
}

/* libcurl rewinds a body it must send again (a kept-alive connection found
 * closed after the first bytes went): both sources are random-access. */
static int on_seek(void *arg, curl_off_t offset, int origin)
{
	struct request *r = arg;

	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > r->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	r->source_off = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* Keeps the ETag (multipart parts) and the whole size from Content-Range. */
static size_t on_header(char *data, size_t size, size_t nmemb, void *arg)
{
	struct request *r = arg;
	size_t whole = size * nmemb, len = whole;
	char line[256];

	if (len >= sizeof(line))
		return whole;
	memcpy(line, data, len);
	line[len] = '\0';
	while (len && (line[len - 1] == '\r' || line[len - 1] == '\n'))
		line[--len] = '\0';
	if (!strncasecmp(line, "ETag:", 5)) {
		const char *v = line + 5;

		while (*v == ' ')
			v++;
		/* A longer one is not an ETag of S3's: left out, and a part
		 * without one fails. */
		if (strlen(v) < sizeof(r->etag))
			memcpy(r->etag, v, strlen(v) + 1);
	} else if (!strncasecmp(line, "Content-Range:", 14)) {
		const char *slash = strrchr(line, '/');
		unsigned long long total;
		char *end;

		if (slash && slash[1] != '*') {
			errno = 0;
			total = strtoull(slash + 1, &end, 10);
			if (!errno && !*end)
				r->total = total;
		}
	}
	return whole;
}

static int curl_errno(CURLcode code)
{
	switch (code) {
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return -ECONNRESET;
	case CURLE_OUT_OF_MEMORY:
		return -ENOMEM;
	default:
		return -EIO;
	}
}

int s3_status_errno(long status, const char *code)
{
	if (status == 400 && (!strcmp(code, "XAmzContentSHA256Mismatch") || !strcmp(code, "BadDigest")))
		return -EBADMSG;
	if (!strcmp(code, "SlowDown"))
		return -EAGAIN;
	if (!strcmp(code, "QuotaExceeded") || status == 507)
		return -ENOSPC;
	switch (status) {
	case 404:
		return -ENOENT;
	case 412:
		return -EEXIST;
	case 401:
	case 403:
		return -EACCES;
	case 400:
	case 405:
	case 411:
	case 416:
		return -EINVAL;
	case 408:
	case 429:
	case 500:
	case 502:
	case 503:
	case 504:
		return -EAGAIN;
	default:
		return -EIO;
	}
}

int s3_request_run(struct request *r)
{
	struct s3_client *c = r->client;
	struct curl_slist *headers = NULL, *h;
	static const char if_absent_header[] = "If-None-Match: *";
	char sha_header[100], range_header[96], *url = NULL;
	CURLcode code;
	bool reusable = false;
	int ret;

	r->answer.max = S3_XML_BODY_MAX;
	r->status = 0;
	last_error[0] = '\0';
	ret = make_url(c, r->key, r->params, r->nparams, &url);
	if (ret < 0)
		goto out;
	r->handle = handle_get(c);
	if (!r->handle) {
		ret = -ENOMEM;
		goto out;
	}
	snprintf(sha_header, sizeof(sha_header), "x-amz-content-sha256: %s",
		 r->sha256_hex ? r->sha256_hex : EMPTY_SHA256);
	/* Every header given here is signed by libcurl 7.88, even an empty one
	 * that only removes a header ("Expect:"), which then breaks the
	 * signature: only headers that are sent go in. */
	h = curl_slist_append(headers, sha_header);
	if (h && r->range) {
		snprintf(range_header, sizeof(range_header), "Range: %s", r->range);
		h = curl_slist_append(headers = h, range_header);
	}
	if (h && r->if_absent)
		h = curl_slist_append(headers = h, if_absent_header);
	if (h && c->token_header)
		h = curl_slist_append(headers = h, c->token_header);
	if (!h) {
		ret = -ENOMEM;
		goto out;
	}
	headers = h;

	curl_easy_setopt(r->handle, CURLOPT_URL, url);
	curl_easy_setopt(r->handle, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(r->handle, CURLOPT_AWS_SIGV4, c->sigv4);
	curl_easy_setopt(r->handle, CURLOPT_USERNAME, c->access_key);
	curl_easy_setopt(r->handle, CURLOPT_PASSWORD, c->secret_key);
	curl_easy_setopt(r->handle, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(r->handle, CURLOPT_CONNECTTIMEOUT_MS, (long)c->opts.connect_timeout_ms);
	if (!r->patient) {
		curl_easy_setopt(r->handle, CURLOPT_LOW_SPEED_LIMIT, 1024L);
		curl_easy_setopt(r->handle, CURLOPT_LOW_SPEED_TIME,
				 (long)((c->opts.stall_timeout_ms + 999) / 1000));
	}
	/* The path is sent as written: no dot segments are removed (a key is
	 * a name, not a path). */
	curl_easy_setopt(r->handle, CURLOPT_PATH_AS_IS, 1L);
	if (r->bounded)
		curl_easy_setopt(r->handle, CURLOPT_TIMEOUT_MS, (long)c->opts.request_timeout_ms);
	else if (r->patient)
		curl_easy_setopt(r->handle, CURLOPT_TIMEOUT_MS, 15L * 60 * 1000);
	curl_easy_setopt(r->handle, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(r->handle, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(r->handle, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(r->handle, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(r->handle, CURLOPT_FILETIME, 1L);
	curl_easy_setopt(r->handle, CURLOPT_PROTOCOLS_STR, "http,https");
	if (!strcmp(r->method, "HEAD")) {
		curl_easy_setopt(r->handle, CURLOPT_NOBODY, 1L);
	} else if (!strcmp(r->method, "PUT")) {
		curl_easy_setopt(r->handle, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(r->handle, CURLOPT_READFUNCTION, on_upload);
		curl_easy_setopt(r->handle, CURLOPT_READDATA, r);
		curl_easy_setopt(r->handle, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(r->handle, CURLOPT_SEEKDATA, r);
		curl_easy_setopt(r->handle, CURLOPT_INFILESIZE_LARGE, (curl_off_t)r->body_len);
	} else if (!strcmp(r->method, "POST")) {
		curl_easy_setopt(r->handle, CURLOPT_POST, 1L);
		curl_easy_setopt(r->handle, CURLOPT_READFUNCTION, on_upload);
		curl_easy_setopt(r->handle, CURLOPT_READDATA, r);
		curl_easy_setopt(r->handle, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(r->handle, CURLOPT_SEEKDATA, r);
		curl_easy_setopt(r->handle, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	} else if (strcmp(r->method, "GET")) {
		curl_easy_setopt(r->handle, CURLOPT_CUSTOMREQUEST, r->method);
	}

	code = curl_easy_perform(r->handle);
	curl_easy_getinfo(r->handle, CURLINFO_RESPONSE_CODE, &r->status);
	{
		curl_off_t filetime = -1;

		r->content_length = -1;
		curl_easy_getinfo(r->handle, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &r->content_length);
		curl_easy_getinfo(r->handle, CURLINFO_FILETIME_T, &filetime);
		r->filetime = filetime;
	}
	if (r->sink_ret < 0 || r->source_ret < 0) {
		ret = r->sink_ret < 0 ? r->sink_ret : r->source_ret;
		snprintf(last_error, sizeof(last_error), "%s: %s", r->sink_ret < 0 ? "reading" : "sending",
			 strerror(-ret));
	} else if (code != CURLE_OK) {
		ret = curl_errno(code);
		snprintf(last_error, sizeof(last_error), "%s", curl_easy_strerror(code));
	} else if (r->status < 200 || r->status >= 300) {
		char err_code[64] = "";

		if (r->answer.len)
			(void)s3_xml_parse_error(r->answer.data, r->answer.len, err_code,
						 sizeof(err_code));
		ret = s3_status_errno(r->status, err_code);
		snprintf(last_error, sizeof(last_error), "HTTP %ld%s%s", r->status,
			 err_code[0] ? " " : "", err_code);
		reusable = true;
	} else {
		ret = 0;
		reusable = true;
	}
	if (ret < 0)
		log_debug("s3: %s %s: %s", r->method, r->key ? r->key : c->bucket, last_error);
out:
	if (ret < 0 && !last_error[0])
		snprintf(last_error, sizeof(last_error), "%s", strerror(-ret));
	curl_slist_free_all(headers);
	handle_put(c, r->handle, reusable);
	r->handle = NULL;
	free(url);
	return ret;
}

void s3_request_done(struct request *r)
{
	free(r->answer.data);
	r->answer.data = NULL;
}

/* ---- the calls ---- */

bool s3_hex_ok(const char *hex)
{
	uint8_t hash[BLOBFS_HASH_SIZE];

	return !hex || (strlen(hex) == HASH_HEX_SIZE && hash_from_hex(hex, HASH_HEX_SIZE, hash));
}

int s3_put(struct s3_client *client, const char *key, const void *data, size_t len,
	   const char *sha256_hex, unsigned flags)
{
	struct request r = { .client = client, .method = "PUT", .key = key,
			     .sha256_hex = sha256_hex, .body = data, .body_len = len,
			     .bounded = len <= (1u << 20),
			     .if_absent = flags & S3_PUT_IF_ABSENT };
	uint8_t hash[BLOBFS_HASH_SIZE];
	char hex[HASH_HEX_SIZE + 1];
	int ret;

	if (!s3_hex_ok(sha256_hex))
		return -EINVAL;
	if (!sha256_hex) {
		/* The server checks every body against its hash. */
		ret = hash_buffer(data, len, hash);
		if (ret < 0)
			return ret;
		hash_to_hex(hash, hex);
		r.sha256_hex = hex;
	}
	ret = s3_request_run(&r);
	s3_request_done(&r);
	return ret;
}

int s3_put_from(struct s3_client *client, const char *key, uint64_t len, const char *sha256_hex,
		unsigned flags, s3_source_fn source, void *arg)
{
	struct request r = { .client = client, .method = "PUT", .key = key,
			     .sha256_hex = sha256_hex, .source = source, .source_arg = arg,
			     .body_len = len, .if_absent = flags & S3_PUT_IF_ABSENT };
	int ret;

	if (!sha256_hex || !s3_hex_ok(sha256_hex))
		return -EINVAL;
	ret = s3_request_run(&r);
	s3_request_done(&r);
	return ret;
}

int s3_get(struct s3_client *client, const char *key, uint64_t off, uint64_t len,
	   s3_sink_fn sink, void *arg, uint64_t *size)
{
	char range[80];
	struct request r = { .client = client, .method = "GET", .key = key, .sink = sink,
			     .sink_arg = arg };
	int ret;

	if (off || len) {
		if (len)
			snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
				 (unsigned long long)(off + len - 1));
		else
			snprintf(range, sizeof(range), "bytes=%llu-", (unsigned long long)off);
		r.range = range;
	}
	ret = s3_request_run(&r);
	if (ret == 0 && size)
		*size = r.status == 206 ? r.total : r.content_length >= 0 ? (uint64_t)r.content_length : 0;
	s3_request_done(&r);
	return ret;
}

int s3_head(struct s3_client *client, const char *key, uint64_t *size, int64_t *mtime)
{
	struct request r = { .client = client, .method = "HEAD", .key = key, .bounded = true };
	int ret = s3_request_run(&r);

	if (ret == 0 && (r.content_length < 0 || r.filetime < 0)) {
		snprintf(last_error, sizeof(last_error), "HEAD answer without %s",
			 r.content_length < 0 ? "Content-Length" : "Last-Modified");
		ret = -EPROTO;
	}
	if (ret == 0 && size)
		*size = (uint64_t)r.content_length;
	if (ret == 0 && mtime)
		*mtime = r.filetime;
	s3_request_done(&r);
	return ret;
}

int s3_delete(struct s3_client *client, const char *key)
{
	struct request r = { .client = client, .method = "DELETE", .key = key, .bounded = true };
	int ret = s3_request_run(&r);

	s3_request_done(&r);
	return ret;
}

int s3_list(struct s3_client *client, const char *prefix, const char *delimiter,
	    const char *start_after, const char *token, unsigned max_keys,
	    struct s3_listing *out)
{
	char max[16];
	/* In byte order of the names (SigV4's canonical query). */
	const struct param params[] = {
		{ "continuation-token", token },
		{ "delimiter", delimiter },
		/* Keys with bytes XML 1.0 cannot carry (control characters)
		 * come URL-encoded (s3_xml.c decodes them). */
		{ "encoding-type", "url" },
		{ "list-type", "2" },
		{ "max-keys", max_keys ? max : NULL },
		{ "prefix", prefix },
		{ "start-after", start_after },
	};
	struct request r = { .client = client, .method = "GET", .params = params,
			     .nparams = sizeof(params) / sizeof(params[0]), .bounded = true };
	int ret;

	memset(out, 0, sizeof(*out));
	snprintf(max, sizeof(max), "%u", max_keys);
	ret = s3_request_run(&r);
	if (ret == 0) {
		ret = s3_xml_parse_listing(r.answer.data, r.answer.len, out);
		if (ret < 0)
			snprintf(last_error, sizeof(last_error), "a listing that does not parse");
	}
	s3_request_done(&r);
	return ret;
}

int s3_bucket_create(struct s3_client *client)
{
	struct request r = { .client = client, .method = "PUT", .bounded = true };
	int ret = s3_request_run(&r);

	/* BucketAlreadyOwnedByYou is a 409 on AWS; radosgw answers 200. */
	if (ret == -EIO && r.status == 409)
		ret = -EEXIST;
	s3_request_done(&r);
	return ret;
}
