/*
 * cli_servers.h - the network front ends a mount or `blobfs serve` runs
 * beside the blob database (-o native=, -o http=): listening before the
 * daemonizing fork, starting after it, the signals (SIGHUP reloads the
 * HTTP tokens), stopping. The CLI's glue, kept out of cli_mount.c.
 */
#ifndef BLOBFS_CLI_SERVERS_H
#define BLOBFS_CLI_SERVERS_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

struct blobdb;
struct native_server;
struct http_server;

struct cli_servers_config {
	const char *native; /* -o native=ADDR, or NULL */
	const char *http;   /* -o http=ADDR, or NULL */
	const char *tokens; /* -o tokens=FILE, or NULL */
	bool http_public;   /* -o http_public */
	bool world;         /* allow_other: Unix sockets for every user */
	bool sync;          /* -o sync */
	/* What a mount beside the servers forgets of a change. */
	void (*changed)(void *arg, const char *store, const uint8_t *hash);
	void *changed_arg;
};

struct cli_servers {
	struct native_server *native;
	struct http_server *http;
	pthread_t reloader;
	bool tokens;    /* HTTP has a tokens file to reload */
	bool reloading; /* the reloader thread runs (beside a mount) */
	bool stopping; /* atomic */
};

/* Whether any server is asked for. */
bool cli_servers_wanted(const struct cli_servers_config *cfg);
/* Listens (and loads the tokens): 0 or a negative errno (logged). Call
 * before any thread starts. */
int cli_servers_listen(struct cli_servers *s, struct blobdb *db,
		       const struct cli_servers_config *cfg);
/* Beside a mount: blocks SIGHUP in this thread (and so in every thread
 * made after) when there are tokens to reload, so that it reloads them
 * instead of unmounting. Call before any thread starts. */
void cli_servers_block_reload(struct cli_servers *s);
/* Starts the servers, and beside a mount (mounted) with tokens a thread
 * that reloads them on SIGHUP (after a daemonizing fork: it keeps only the
 * calling thread). */
int cli_servers_start(struct cli_servers *s, bool mounted);
/* Without a mount: blocks SIGINT, SIGTERM and SIGHUP (call before any
 * thread starts) ... */
void cli_servers_block_signals(void);
/* ... then serves until SIGINT or SIGTERM (SIGHUP reloads the tokens, or
 * stops when there are none). */
void cli_servers_wait(struct cli_servers *s);
void cli_servers_stop(struct cli_servers *s);

#endif
