/*
 * s3_client.h - the S3 requests blobfs makes, over HTTP with libcurl and
 * signed with libcurl's AWS SigV4: put, get, head, delete, list, and the
 * three calls of a multipart upload. Keys are given as they are (UTF-8);
 * the client encodes them. Path-style URLs: ENDPOINT/BUCKET/KEY.
 *
 * Threads: every call may come from any thread. A client keeps a pool of
 * curl handles (each keeps its connection alive), so calls from several
 * threads run in parallel and later calls reuse connections.
 *
 * Errors: 0 for a 2xx answer, else a negative errno:
 *   -ENOENT     404 (no such key)
 *   -EEXIST     412 (a conditional request's condition failed)
 *   -EACCES     401, 403 (credentials, signature, permissions)
 *   -EBADMSG    400 with XAmzContentSHA256Mismatch or BadDigest: the bytes
 *               that arrived did not hash to what the request said
 *   -EINVAL     another 400, 405, 411, 416
 *   -ENOSPC     507, or an error code saying the store is full (QuotaExceeded)
 *   -EAGAIN     408, 429, 500, 502, 503, 504 (and SlowDown): try again later
 *   -ETIMEDOUT  no answer within the time allowed
 *   -ECONNREFUSED, -EHOSTUNREACH  the endpoint cannot be reached
 *   -EPROTO     an answer that does not parse or makes no sense
 *   -EIO        anything else (the reader's callback's own error passes through)
 * s3_transient() says which of them are worth a retry. Each failed request
 * is logged once, at debug level (the caller decides what is worth a
 * warning: a retried upload is not).
 */
#ifndef BLOBFS_S3_CLIENT_H
#define BLOBFS_S3_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "s3_config.h"
#include "s3_xml.h"

struct s3_client;

struct s3_client_options {
	unsigned connect_timeout_ms; /* 0: 5,000 */
	/* A request that moves fewer than 1,024 bytes a second for this long
	 * is given up (-ETIMEDOUT); 0: 10,000. */
	unsigned stall_timeout_ms;
	/* The longest any request without a body of unbounded size may take
	 * (head, delete, list, small puts); 0: 30,000. */
	unsigned request_timeout_ms;
	unsigned max_handles; /* handles kept for reuse; 0: 16 */
};

/* Receives a GET's bytes in order; a negative return aborts the transfer
 * and is what s3_get returns. */
typedef int (*s3_sink_fn)(const void *data, size_t len, void *arg);
/* Fills buf with up to len bytes of a PUT's body at offset off; returns
 * how many (0 only at the end) or a negative errno. */
typedef int (*s3_source_fn)(void *buf, size_t len, uint64_t off, void *arg);

/* Copies what it needs from config. -ENOMEM, -EIO (libcurl's global
 * setup failed). */
int s3_client_new(const struct s3_config *config, const struct s3_client_options *opts,
		  struct s3_client **out);
void s3_client_free(struct s3_client *client);

bool s3_transient(int err);
/* A short text for an error from this client ("HTTP 503 SlowDown"), for
 * log lines: the last failure of the calling thread. */
const char *s3_last_error(void);

/* A PUT's flags. S3_PUT_IF_ABSENT sends If-None-Match: *, so that an
 * object already under the key stays as it is and the PUT is -EEXIST
 * (AWS since 2024, radosgw; a server that ignores the header replaces the
 * object and answers 0: s3_db.c asks which kind it talks to). */
#define S3_PUT_IF_ABSENT 1u

/* PUT of len bytes from memory. sha256_hex (64 lowercase hex digits; NULL:
 * computed here) is sent as x-amz-content-sha256, so the server checks the
 * body. */
int s3_put(struct s3_client *client, const char *key, const void *data, size_t len,
	   const char *sha256_hex, unsigned flags);
/* PUT of len bytes read from source (no timeout but the stall timeout);
 * sha256_hex is required. */
int s3_put_from(struct s3_client *client, const char *key, uint64_t len, const char *sha256_hex,
		unsigned flags, s3_source_fn source, void *arg);
/* GET of [off, off + len) (len 0: to the end) into sink; *size (may be
 * NULL) gets the object's whole size when the server says it. */
int s3_get(struct s3_client *client, const char *key, uint64_t off, uint64_t len,
	   s3_sink_fn sink, void *arg, uint64_t *size);
/* HEAD: the object's size and LastModified (either may be NULL). */
int s3_head(struct s3_client *client, const char *key, uint64_t *size, int64_t *mtime);
/* DELETE (S3 answers 204 whether or not the key existed). */
int s3_delete(struct s3_client *client, const char *key);
/* One page of ListObjectsV2 under prefix: delimiter, start_after and token
 * may be NULL; max_keys 0 means the server's default (1,000). */
int s3_list(struct s3_client *client, const char *prefix, const char *delimiter,
	    const char *start_after, const char *token, unsigned max_keys,
	    struct s3_listing *out);

/* Multipart upload: start (an upload id, malloc'ed), parts numbered from 1
 * (each with its own SHA-256; its ETag comes back in etag, at most 128
 * bytes), complete with the parts' ETags in order, or abort; and what an
 * upload that did not finish left (find, list its parts). */
int s3_multipart_start(struct s3_client *client, const char *key, char **upload_id);
int s3_multipart_part(struct s3_client *client, const char *key, const char *upload_id,
		      unsigned part, uint64_t len, const char *sha256_hex, s3_source_fn source,
		      void *arg, char etag[129]);
int s3_multipart_complete(struct s3_client *client, const char *key, const char *upload_id,
			  char (*etags)[129], unsigned parts);
int s3_multipart_abort(struct s3_client *client, const char *key, const char *upload_id);
/* The upload of key started last and still under way (its id, malloc'ed),
 * or -ENOENT: what a try that did not finish left to resume. */
int s3_multipart_find(struct s3_client *client, const char *key, char **upload_id);
/* The parts of an upload so far: for part i + 1 (i < parts), sizes[i] and
 * etags[i] ("" when it is not there; parts numbered past `parts` are
 * ignored). -ENOENT when there is no such upload. */
int s3_multipart_list_parts(struct s3_client *client, const char *key, const char *upload_id,
			    unsigned parts, uint64_t *sizes, char (*etags)[129]);

/* For tests and the test cluster: creates the bucket (-EEXIST if it is
 * there and ours). */
int s3_bucket_create(struct s3_client *client);

#endif
