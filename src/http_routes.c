/*
 * http_routes.c - the routes of stores and blobs (docs/FORMAT.md, "The HTTP
 * API"), each through store.h under the rules of who asks: making and
 * destroying stores, a blob's bytes (verified, streamed, ranges, validators)
 * and its deletion, and the three bodies (a save, a verified save, a hash),
 * streamed into a blob writer or a hasher as they arrive.
 */
#include "http_internal.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "escape.h"
#include "hash.h"
#include "log.h"

/* Bytes up to this are read whole before the answer goes out. */
#define SMALL_BODY (64 * 1024)
/* How much of a blob one read moves to the socket: 64 KiB gave 400 MB/s for
 * a cached 128 MiB blob, 256 KiB 700-800 (fewer polls, reads and sends a
 * byte); a buffer this size is held by each response that sends a blob. */
#define BLOB_BLOCK (256 * 1024)

enum MHD_Result http_store_create(struct http_request *r)
{
	struct store_attr attr = { .uid = r->who.uid, .gid = r->who.gid,
				   .mode = STORE_MODE_DEFAULT };
	int ret = !r->may_write || !http_reaches(r, r->store) ? -EACCES :
		  store_create_as(r->server->db, r->store, &attr);

	if (ret < 0)
		return http_fail(r, ret, "store create");
	log_info("http %s: store %s created", r->peer->name, r->store);
	http_changed(r, NULL);
	return http_reply(r, MHD_HTTP_CREATED, NULL, "", 0);
}

enum MHD_Result http_store_destroy(struct http_request *r)
{
	struct store_attr attr;
	struct store *st;
	int ret = !r->may_write || !http_reaches(r, r->store) ? -EACCES :
		  store_open(r->server->db, r->store, &st);

	/* The root of the mount is sticky: a store goes by its owner or root. */
	if (ret == 0) {
		ret = store_attr_get(st, &attr);
		if (ret == 0 && r->who.uid != 0 && r->who.uid != attr.uid)
			ret = -EACCES;
		store_close(st);
	}
	if (ret == 0)
		ret = store_destroy(r->server->db, r->store, false);
	if (ret < 0)
		return http_fail(r, ret, "store destroy");
	log_info("http %s: store %s destroyed", r->peer->name, r->store);
	http_changed(r, NULL);
	return http_reply(r, MHD_HTTP_NO_CONTENT, NULL, "", 0);
}

struct blob_body {
	struct blob_reader *reader; /* NULL for HEAD: nothing is read */
	uint64_t start;             /* the range's first byte */
	char peer[96], store[256];  /* for the log */
};

/* MHD asks for the bytes at pos of the range: they come verified from the
 * reader; damage found now ends the connection (the headers are out). */
static ssize_t blob_body_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct blob_body *b = cls;
	size_t got = 0;
	int ret = b->reader ? blob_read(b->reader, buf, max, b->start + pos, &got) : -EIO;

	if (ret == 0 && got == 0)
		ret = -EIO; /* shorter than it said */
	if (ret < 0) {
		log_error("http %s: reading a blob of %s: %s: the connection ends", b->peer,
			  b->store, strerror(-ret));
		return MHD_CONTENT_READER_END_WITH_ERROR;
	}
	return (ssize_t)got;
}

static void blob_body_free(void *cls)
{
	struct blob_body *b = cls;

	if (b->reader)
		blob_close(b->reader);
	free(b);
}

/* A response of the len bytes at off, read (verified) now. */
static int read_small(struct blob_reader *reader, uint64_t off, size_t len,
		      struct MHD_Response **out)
{
	char *buf = malloc(len ? len : 1);
	size_t done = 0;
	int ret = buf ? 0 : -ENOMEM;

	*out = NULL;
	while (ret == 0 && done < len) {
		size_t got = 0;

		ret = blob_read(reader, buf + done, len - done, off + done, &got);
		if (ret == 0 && got == 0)
			ret = -EIO; /* shorter than it said */
		done += got;
	}
	if (ret == 0) {
		*out = MHD_create_response_from_buffer_with_free_callback(len, buf, free);
		ret = *out ? 0 : -ENOMEM;
	}
	if (ret < 0)
		free(buf);
	return ret;
}

/* The one range of a Range header within size: 1 with [*first, *last], 0
 * when the header is to be ignored (absent, several ranges, not bytes=,
 * malformed), -ERANGE when it is unsatisfiable. */
static int parse_range(const char *h, uint64_t size, uint64_t *first, uint64_t *last)
{
	char *end;
	uint64_t a, b;

	if (!h || strncmp(h, "bytes=", 6) != 0 || strchr(h, ','))
		return 0;
	h += 6;
	while (*h == ' ')
		h++;
	if (*h == '-') { /* the last N bytes */
		if (h[1] < '0' || h[1] > '9')
			return 0;
		errno = 0;
		b = strtoull(h + 1, &end, 10);
		if (errno || *end)
			return 0;
		if (b == 0 || size == 0)
			return -ERANGE;
		*first = b >= size ? 0 : size - b;
		*last = size - 1;
		return 1;
	}
	if (*h < '0' || *h > '9')
		return 0;
	errno = 0;
	a = strtoull(h, &end, 10);
	if (errno || *end != '-')
		return 0;
	h = end + 1;
	if (*h == '\0') {
		b = UINT64_MAX;
	} else {
		if (*h < '0' || *h > '9')
			return 0;
		b = strtoull(h, &end, 10);
		if (errno || *end || b < a)
			return 0;
	}
	if (a >= size)
		return -ERANGE;
	*first = a;
	*last = b >= size ? size - 1 : b;
	return 1;
}

/* Whether an If-None-Match (or If-Range) value names the blob's ETag. */
static bool etag_matches(const char *h, const char *etag)
{
	return h && (strstr(h, etag) || !strcmp(h, "*"));
}

static void blob_headers(struct MHD_Response *resp, const char *etag, int64_t saved)
{
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ETAG, etag);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CACHE_CONTROL,
				"public, max-age=31536000, immutable");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	if (saved > 0) {
		char date[64];
		struct tm tm;
		time_t t = (time_t)saved;

		if (gmtime_r(&t, &tm) &&
		    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) > 0)
			MHD_add_response_header(resp, MHD_HTTP_HEADER_LAST_MODIFIED, date);
	}
}

enum MHD_Result http_blob_get(struct http_request *r, bool head)
{
	struct blob_body *b = NULL;
	struct MHD_Response *resp = NULL;
	struct blob_stat bs = { 0 };
	struct store *st = NULL;
	char etag[BLOBFS_HASH_SIZE * 2 + 3], hex[BLOBFS_HASH_SIZE * 2 + 1], range[80];
	uint64_t first = 0, last = 0;
	unsigned status = MHD_HTTP_OK;
	enum MHD_Result result = MHD_NO;
	/* HEAD is a stat (the search bit, as on the mount); GET reads. */
	int ret = http_open_store(r, head ? X_OK : R_OK | X_OK, &st), ranged = 0;

	hash_to_hex(r->hash, hex);
	snprintf(etag, sizeof(etag), "\"%s\"", hex);
	b = calloc(1, sizeof(*b));
	if (ret == 0 && !b)
		ret = -ENOMEM;
	/* A reader is opened only when bytes go out: on an object store,
	 * opening one fetches the blob, and a 304 or 416 needs no bytes. */
	if (ret == 0)
		ret = blob_stat(st, r->hash, &bs);
	if (ret < 0) {
		result = http_fail(r, ret, head ? "blob info" : "blob load");
		goto out;
	}
	if (etag_matches(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_IF_NONE_MATCH), etag)) {
		resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
		status = MHD_HTTP_NOT_MODIFIED;
	} else {
		const char *if_range = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
								   MHD_HTTP_HEADER_IF_RANGE);

		if (!if_range || !strcmp(if_range, etag))
			ranged = parse_range(MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
									 MHD_HTTP_HEADER_RANGE),
					     bs.length, &first, &last);
		if (ranged < 0) {
			static const char body[] = "{\"error\":\"range-not-satisfiable\",\"message\":"
						   "\"the range is outside the blob\"}\n";

			snprintf(range, sizeof(range), "bytes */%" PRIu64, bs.length);
			resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
							       MHD_RESPMEM_PERSISTENT);
			if (resp) {
				MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, range);
				MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
							"application/json");
			}
			status = MHD_HTTP_RANGE_NOT_SATISFIABLE;
		} else {
			uint64_t len = ranged ? last - first + 1 : bs.length;

			/* (The same hash, the same length: the stat's length
			 * is the reader's.) */
			if (!head) {
				ret = blob_open(st, r->hash, &b->reader);
				if (ret < 0) {
					result = http_fail(r, ret, "blob load");
					goto out;
				}
			}
			if (!head && len <= SMALL_BODY) {
				/* Read whole before the answer: one send for the
				 * headers and the bytes, and damage is a clean 500. */
				ret = read_small(b->reader, first, (size_t)len, &resp);
				if (ret < 0) {
					result = http_fail(r, ret, "blob load");
					goto out;
				}
			} else {
				b->start = first;
				snprintf(b->peer, sizeof(b->peer), "%s", r->peer->name);
				snprintf(b->store, sizeof(b->store), "%s", r->store);
				/* MHD zeroes the block for each response: no bigger
				 * than the bytes it will carry. */
				resp = MHD_create_response_from_callback(
					len, len < BLOB_BLOCK ? (size_t)len + 1 : BLOB_BLOCK,
					blob_body_read, b, blob_body_free);
				if (resp)
					b = NULL; /* the response's now */
			}
		}
	}
	if (!resp)
		goto out;
	if (status != MHD_HTTP_NOT_MODIFIED && status != MHD_HTTP_RANGE_NOT_SATISFIABLE)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/octet-stream");
	if (status == MHD_HTTP_OK && ranged > 0) {
		snprintf(range, sizeof(range), "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, first, last,
			 bs.length);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, range);
		status = MHD_HTTP_PARTIAL_CONTENT;
	}
	blob_headers(resp, etag, bs.saved);
	result = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
out:
	if (b)
		blob_body_free(b);
	if (st)
		store_close(st);
	return result;
}

enum MHD_Result http_blob_delete(struct http_request *r)
{
	struct store *st;
	int ret = http_open_store(r, W_OK | X_OK, &st);

	if (ret == 0) {
		ret = blob_delete(st, r->hash);
		if (ret == 0 && r->server->opts.sync && store_sync(st) < 0)
			ret = -EIO;
		store_close(st);
	}
	if (ret < 0)
		return http_fail(r, ret, "blob delete");
	http_changed(r, r->hash);
	return http_reply(r, MHD_HTTP_NO_CONTENT, NULL, "", 0);
}

/* The length the client announced: 1 with *len, 0 for a chunked body,
 * -1 for neither. */
static int body_length(struct http_request *r, uint64_t *len)
{
	const char *cl = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_CONTENT_LENGTH);
	const char *te = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_TRANSFER_ENCODING);

	if (cl) {
		*len = strtoull(cl, NULL, 10);
		return 1;
	}
	return te && strstr(te, "chunked") ? 0 : -1;
}

enum MHD_Result http_body_begin(struct http_request *r)
{
	uint64_t len = 0;
	int known = body_length(r, &len), ret;

	if (known < 0)
		return http_fail_status(r, MHD_HTTP_LENGTH_REQUIRED, "length-required",
					"a body needs a Content-Length or chunked encoding");
	if (r->route == ROUTE_HASH) {
		ret = hasher_new(&r->hasher);
		if (ret < 0)
			return http_fail(r, ret, "hash");
		r->has_body = true;
		return MHD_YES;
	}
	/* A length the store cannot take is refused before a byte is read. */
	ret = known && len > blobdb_blob_max(r->server->db) ? -EFBIG :
	      http_open_store(r, W_OK | X_OK, &r->st);
	if (ret == 0)
		ret = blob_writer_new(r->st, &r->writer);
	if (ret < 0)
		return http_fail(r, ret, "save");
	r->has_body = true;
	return MHD_YES;
}

void http_body_feed(struct http_request *r, const char *data, size_t len)
{
	/* After an error the rest is read and dropped (the answer waits for
	 * the end of the body), but for -EFBIG: answered at once. */
	if (r->body_err == 0)
		r->body_err = r->hasher ? hasher_update(r->hasher, data, len) :
			      blob_writer_write(r->writer, data, len, r->received);
	r->received += len;
}

/* 201 or 409 with the hash as JSON (and where the blob is). */
static enum MHD_Result saved(struct http_request *r, int ret, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	char hex[BLOBFS_HASH_SIZE * 2 + 1], body[BLOBFS_HASH_SIZE * 2 + 4];
	char location[3 * 255 + BLOBFS_HASH_SIZE * 2 + 32], name[3 * 255 + 1];
	struct MHD_Response *resp;
	int n;

	hash_to_hex(hash, hex);
	n = snprintf(body, sizeof(body), "\"%s\"\n", hex);
	resp = MHD_create_response_from_buffer((size_t)n, body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	percent_encode(r->store, strlen(r->store), name);
	snprintf(location, sizeof(location), "/stores/%s/blobs/%s", name, hex);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_LOCATION, location);
	return http_queue(r, ret == 0 ? MHD_HTTP_CREATED : MHD_HTTP_CONFLICT, resp);
}

enum MHD_Result http_body_end(struct http_request *r)
{
	uint8_t hash[BLOBFS_HASH_SIZE];
	bool tentative = false;
	int ret = r->body_err;

	if (r->hasher) {
		char body[BLOBFS_HASH_SIZE * 2 + 4], hex[BLOBFS_HASH_SIZE * 2 + 1];
		int n;

		if (ret == 0)
			ret = hasher_final(r->hasher, hash);
		if (ret < 0)
			return http_fail(r, ret, "hash");
		hash_to_hex(hash, hex);
		n = snprintf(body, sizeof(body), "\"%s\"\n", hex);
		return http_reply(r, MHD_HTTP_OK, "application/json", body, (size_t)n);
	}
	if (ret == 0 && r->route == ROUTE_BLOB) {
		/* A verified save: content that does not hash to the name in
		 * the path is not saved. */
		ret = blob_writer_commit_tentative(r->writer, r->hash, hash, &tentative);
		if (tentative)
			blob_settle(r->st, hash);
		if (ret == -EINVAL) {
			log_warning("http %s: a body for %s does not hash to its name: not saved",
				    r->peer->name, r->store);
			return http_fail_status(r, MHD_HTTP_BAD_REQUEST, "invalid-argument",
						"the body does not hash to the blob's name");
		}
	} else if (ret == 0) {
		ret = blob_writer_commit(r->writer, hash);
	}
	if ((ret == 0 || ret == -EEXIST) && r->server->opts.sync && store_sync(r->st) < 0)
		ret = -EIO;
	if (ret == 0)
		http_changed(r, hash);
	if (ret == 0 || ret == -EEXIST)
		return saved(r, ret, hash);
	return http_fail(r, ret, "save");
}

void http_request_release(struct http_request *r)
{
	blob_writer_free(r->writer);
	r->writer = NULL;
	hasher_free(r->hasher);
	r->hasher = NULL;
	if (r->st)
		store_close(r->st);
	r->st = NULL;
}
