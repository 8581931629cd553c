/*
 * native.h - the native protocol's server (docs/FORMAT.md, "The native
 * protocol"): a front end beside the mount, on the same blob database, so
 * that a blob saved over the network is at once in the mount and the other
 * way round. Like the mount, in steps: listen (before a daemonizing fork:
 * no thread yet), start (the threads), stop.
 *
 * Who asks: on a Unix socket, the peer's uid, gid and groups
 * (SO_PEERCRED, SO_PEERGROUPS, the first 256) under the stores' owners and
 * modes, as on the mount; on TCP, an anonymous client (nobody) that may read what any
 * user may and write nothing (the protocol carries no credentials). A
 * refusal is answered invalarg (the protocol has no status for it) and
 * logged.
 */
#ifndef BLOBFS_NATIVE_H
#define BLOBFS_NATIVE_H

#include <stdbool.h>
#include <stdint.h>

struct blobdb;
struct native_server;

/* The most connections served at once (more wait in the listen backlog). */
#define NATIVE_CONNECTIONS_MAX 256

struct native_options {
	/* The socket's mode: 0666 (every local user, as a mount with
	 * allow_other) or 0600 (the daemon's user only, as a mount without). */
	bool world;
	/* -o sync: a save or delete is answered once it is durable. */
	bool sync;
	/* Called (from a connection's thread) after a change: a blob saved or
	 * deleted (hash), a store made or destroyed (hash NULL), so that a
	 * mount beside the server drops what its kernel caches of the name. */
	void (*changed)(void *arg, const char *store, const uint8_t *hash);
	void *changed_arg;
};

/* Listens on addr: "unix:PATH" (made absolute; a socket already there is
 * replaced only when nothing answers on it: -EADDRINUSE otherwise), or
 * HOST:PORT (a numeric IPv4 or [IPv6] address, or localhost; port 0 picks
 * one, which native_server_address then tells). opts may be NULL (0600, no
 * sync, no hook). 0 or a negative errno (logged). */
int native_server_listen(struct blobdb *db, const char *addr, const struct native_options *opts,
			 struct native_server **out);
/* Where it listens, for messages and tests ("127.0.0.1:40123",
 * "unix:/run/x.sock"). */
const char *native_server_address(const struct native_server *server);
/* Starts accepting (a thread; one more per connection). */
int native_server_start(struct native_server *server);
/* Stops accepting, ends every connection (a request under way is cut
 * short), waits for their threads, removes a Unix socket, frees. NULL does
 * nothing. */
void native_server_stop(struct native_server *server);

#endif
