/*
 * s3_request.h - the request layer inside the S3 client, shared by
 * s3_client.c (which owns it: the handle pool, URLs, signing, answers and
 * their errors) and s3_multipart.c: one request described by a struct,
 * run with s3_request_run, released with s3_request_done. Not for the
 * backend: it calls s3_client.h.
 */
#ifndef BLOBFS_S3_REQUEST_H
#define BLOBFS_S3_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <curl/curl.h>

#include "s3_client.h"

/* The SHA-256 of nothing: the x-amz-content-sha256 of a request without a
 * body. */
#define EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

struct buf {
	char *data;
	size_t len, cap, max;
	bool overflow;
};

struct param {
	const char *name, *value; /* value NULL: the parameter is absent */
};

/* One request: what to send, and what came back. */
struct request {
	struct s3_client *client;
	const char *method; /* "GET", "PUT", "HEAD", "DELETE", "POST" */
	const char *key;    /* NULL: the bucket itself */
	const struct param *params;
	size_t nparams;
	const char *sha256_hex; /* NULL: EMPTY_SHA256 (no body) */
	const char *range;      /* a Range header's value, or NULL */
	bool if_absent;         /* If-None-Match: * (a PUT that must not
				 * replace an object: -EEXIST when there is one) */
	bool bounded;           /* the whole request under request_timeout_ms */
	bool patient;           /* no stall limit (a server may think for
				 * minutes before it answers: multipart complete) */
	/* The body sent: from memory, or from a source. */
	const void *body;
	uint64_t body_len;
	s3_source_fn source;
	void *source_arg;
	uint64_t source_off;
	int source_ret;
	/* The answer: a 2xx body goes to sink (if any) or to answer. */
	s3_sink_fn sink;
	void *sink_arg;
	int sink_ret;
	struct buf answer; /* a 2xx body without sink, or an error body */
	long status;
	char etag[129];
	uint64_t total; /* from Content-Range, 0 when not said */
	curl_off_t content_length; /* -1 when not said */
	int64_t filetime;          /* Last-Modified; -1 when not said */
	CURL *handle;
};

int s3_buf_add_str(struct buf *b, const char *s);
/* Runs the request: 0 for a 2xx answer, else a negative errno
 * (s3_client.h); the answer's body, status and headers are in *r. */
int s3_request_run(struct request *r);
void s3_request_done(struct request *r);
/* NULL, or 64 lowercase hex digits. */
bool s3_hex_ok(const char *hex);
/* The errno of an HTTP status and S3 error code. */
int s3_status_errno(long status, const char *code);
/* Sets what s3_last_error says for the calling thread. */
void s3_set_error(const char *text);

#endif
