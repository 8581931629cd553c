/*
 * http.h - the blob database's HTTP API (docs/FORMAT.md, "The HTTP API"):
 * a front end beside the mount, on the same blob database, as the native
 * protocol is (native.h), in the same steps: listen (before a daemonizing
 * fork), start, stop. libmicrohttpd serves the connections, a thread each.
 *
 * Who asks: a bearer token from the tokens file acts as its user, read-only
 * or read-write, on all stores or the ones it names; a request without one
 * is anonymous (nobody, reads only) and taken only from loopback unless
 * public; on a Unix socket, the peer's credentials. The stores' owners and
 * modes apply as on the mount; every refusal is logged.
 */
#ifndef BLOBFS_HTTP_H
#define BLOBFS_HTTP_H

#include <stdbool.h>
#include <stdint.h>

struct blobdb;
struct http_server;

/* The most connections served at once (more wait in the listen backlog). */
#define HTTP_CONNECTIONS_MAX 1000
/* The most of them from one address over TCP (more are closed as soon as
 * they are accepted), so that one client cannot take every slot. */
#define HTTP_CONNECTIONS_PER_ADDRESS (HTTP_CONNECTIONS_MAX / 4)
/* Seconds a connection may stay silent (or take nothing) before it goes. */
#define HTTP_IDLE_S 300

struct http_options {
	bool world;          /* a Unix socket's mode: 0666 (allow_other) or 0600 */
	bool sync;           /* -o sync: saves and deletes answered once durable */
	bool public_reads;   /* anonymous reads from any address, not loopback only */
	const char *tokens;  /* the tokens file, or NULL (copied) */
	/* As native_options.changed: what a mount beside the server forgets. */
	void (*changed)(void *arg, const char *store, const uint8_t *hash);
	void *changed_arg;
};

/* Listens on addr (net_socket.h's forms) and loads the tokens file: 0 or a
 * negative errno (logged). */
int http_server_listen(struct blobdb *db, const char *addr, const struct http_options *opts,
		       struct http_server **out);
const char *http_server_address(const struct http_server *server);
int http_server_start(struct http_server *server);
/* Reads the tokens file again (SIGHUP): one that fails keeps the tokens
 * loaded before (logged either way). */
int http_server_reload(struct http_server *server);
/* Stops accepting, ends every connection, frees. NULL does nothing. */
void http_server_stop(struct http_server *server);

#endif
