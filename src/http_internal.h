/*
 * http_internal.h - what the HTTP server's files share: http_server.c (the
 * daemon, who asks, the dispatch), http_routes.c (the routes of stores and
 * blobs), http_list.c (listings, JSON), http_page.c (the HTML pages).
 */
#ifndef BLOBFS_HTTP_INTERNAL_H
#define BLOBFS_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "escape.h"
#include "format.h"
#include "http.h"
#include "net_socket.h"
#include "store.h"
#include "tokens.h"

struct http_server {
	struct blobdb *db;
	struct http_options opts;
	char *tokens_path;
	struct net_listener listener;
	struct MHD_Daemon *daemon;
	pthread_mutex_t tokens_lock;
	struct token_set *tokens; /* under tokens_lock; NULL: no tokens file */
};

enum http_route {
	ROUTE_NONE,
	ROUTE_PAGE,        /* GET / */
	ROUTE_STORES,      /* /stores */
	ROUTE_STORE,       /* /stores/{s} */
	ROUTE_STORE_PAGE,  /* /stores/{s}/ */
	ROUTE_HASH,        /* /blob_hash */
	ROUTE_BLOBS,       /* /stores/{s}/blobs */
	ROUTE_BLOB,        /* /stores/{s}/blobs/{hex} */
};

/* One request, from its headers to its completion. */
struct http_request {
	struct http_server *server;
	struct MHD_Connection *conn;
	const struct net_peer *peer;
	const char *method;
	enum http_route route;
	bool dispatched;
	char store[256];
	uint8_t hash[BLOBFS_HASH_SIZE];
	/* Who asks. */
	struct token_set *tokens; /* held while the request lives */
	const struct token *token; /* in tokens, or NULL */
	struct caller who;
	bool may_write;
	bool anonymous;
	/* A body being received. */
	bool has_body;
	uint64_t received;
	int body_err;
	struct store *st;
	struct blob_writer *writer;
	struct hasher *hasher;
};

/* Queues resp (NULL: out of memory, MHD_NO) with status, and drops this
 * reference to it. */
enum MHD_Result http_queue(struct http_request *r, unsigned status, struct MHD_Response *resp);
/* Queues a response with status, an optional Content-Type and body (copied). */
enum MHD_Result http_reply(struct http_request *r, unsigned status, const char *type,
			   const char *body, size_t len);
/* An error answer: status from a negative errno (404, 409, 400, 507, 403,
 * 413, 500), a JSON body, and a log line for refusals and internal
 * errors. what names the operation for the log. */
enum MHD_Result http_fail(struct http_request *r, int err, const char *what);
/* A refusal or error with an HTTP status of its own (401, 405, 411, 416...). */
enum MHD_Result http_fail_status(struct http_request *r, unsigned status, const char *error,
				 const char *message);
/* Opens the request's store for mask (R_OK, W_OK, X_OK) under the rules of
 * who asks (token, mode). */
int http_open_store(struct http_request *r, int mask, struct store **out);
/* Whether the request's client may reach the store at all (its token). */
bool http_reaches(const struct http_request *r, const char *store);
/* A query argument percent-decoded into out (NUL-terminated): its length,
 * or -ENOENT when absent, -EINVAL when it does not fit or decodes badly. */
int http_query(struct http_request *r, const char *key, char *out, size_t size);
/* Tells a mount beside the server what changed. */
void http_changed(struct http_request *r, const uint8_t *hash);

/* The routes (http_routes.c): each answers the request. */
enum MHD_Result http_store_create(struct http_request *r);
enum MHD_Result http_store_destroy(struct http_request *r);
enum MHD_Result http_blob_get(struct http_request *r, bool head);
enum MHD_Result http_blob_delete(struct http_request *r);
/* A body route: begin (the headers), feed (each piece), end (answers). */
enum MHD_Result http_body_begin(struct http_request *r);
void http_body_feed(struct http_request *r, const char *data, size_t len);
enum MHD_Result http_body_end(struct http_request *r);
/* Frees what a request holds (its completion). */
void http_request_release(struct http_request *r);

/* Listings (http_list.c). */
enum MHD_Result http_store_list(struct http_request *r);
enum MHD_Result http_blob_list(struct http_request *r);
/* A name as a JSON string (quotes included) or, with url, percent-encoded
 * in quotes: the length; out needs HTTP_JSON_NAME_MAX. */
#define HTTP_JSON_NAME_MAX (6 * 255 + 3)
size_t http_json_name(const char *name, bool url, char *out);

/* The pages for people (http_page.c). */
enum MHD_Result http_page_stores(struct http_request *r);
enum MHD_Result http_page_store(struct http_request *r);

#endif
