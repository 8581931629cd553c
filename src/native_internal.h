/*
 * native_internal.h - what native_server.c (the listener and the
 * connections' threads) and native_session.c (one connection's requests)
 * share.
 */
#ifndef BLOBFS_NATIVE_INTERNAL_H
#define BLOBFS_NATIVE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "native.h"
#include "net_socket.h"
#include "store.h"

/* Seconds a client has to open, and to send or take anything after. */
#define NATIVE_OPENING_S 10
#define NATIVE_IDLE_S 300

struct native_conn {
	struct native_server *server;
	const struct native_options *opts; /* the server's */
	struct blobdb *db;
	int fd;
	struct net_peer peer; /* TCP: anonymous (nobody), reads only */
	pthread_t thread;
	struct native_conn *next; /* in the server's list (under its lock) */
	bool done;      /* atomic: the thread has finished with the socket */
};

/* Serves one connection until it ends (the client's Goodbye!, its end, an
 * error, or the server stopping: a shutdown of the socket). Closes nothing:
 * the server closes the socket. */
void native_session_run(struct native_conn *c);

#endif
