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
#include "store.h"

/* Seconds a client has to open, and to send or take anything after. */
#define NATIVE_OPENING_S 10
#define NATIVE_IDLE_S 300
/* The most supplementary groups of a peer taken into account (as the mount). */
#define NATIVE_GROUPS_MAX 256

struct native_conn {
	struct native_server *server;
	const struct native_options *opts; /* the server's */
	struct blobdb *db;
	int fd;
	bool anonymous; /* TCP: nobody, reads only */
	struct caller who;
	uint32_t *groups; /* malloc'ed (SO_PEERGROUPS), or NULL */
	char peer[96];  /* for log lines */
	pthread_t thread;
	struct native_conn *next; /* in the server's list (under its lock) */
	bool done;      /* atomic: the thread has finished with the socket */
};

/* Serves one connection until it ends (the client's Goodbye!, its end, an
 * error, or the server stopping: a shutdown of the socket). Closes nothing:
 * the server closes the socket. */
void native_session_run(struct native_conn *c);

#endif
