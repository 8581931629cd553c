/*
 * net_socket.h - what the network front ends (the native protocol, HTTP)
 * share below their protocols: a listening socket made from an address
 * ("unix:PATH" or HOST:PORT), and who is at the other end of a connection
 * (a Unix socket's peer credentials, or an anonymous TCP client and its
 * address).
 */
#ifndef BLOBFS_NET_SOCKET_H
#define BLOBFS_NET_SOCKET_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "store.h"

/* nobody and nogroup: who an anonymous client is to the stores. */
#define NET_ANONYMOUS_ID 65534
/* The most supplementary groups of a peer taken into account (as the mount). */
#define NET_GROUPS_MAX 256
/* Room for "unix:" and the longest Unix socket path, or "[IPV6]:PORT". */
#define NET_ADDRESS_MAX 120

struct net_listener {
	int fd;
	bool is_unix;
	dev_t sock_dev; /* the socket file made (Unix): removed at close if */
	ino_t sock_ino; /* it is still this one */
	char address[NET_ADDRESS_MAX]; /* where it listens, for messages and tests */
};

/* Binds and listens (non-blocking, close-on-exec) on addr: "unix:PATH"
 * (made absolute; mode 0600, or 0666 with world, from the umask at bind; a
 * socket already there is replaced only when nothing answers on it:
 * -EADDRINUSE otherwise), or HOST:PORT (numeric IPv4, [IPv6], or
 * localhost; port 0 picks one). Not thread-safe (the umask): call before
 * any thread starts. 0 or a negative errno (not logged: -EINVAL for an
 * address of neither form). */
int net_listen(const char *addr, bool world, struct net_listener *out);
/* Closes the socket (unless fd is -1: someone else closed it) and removes
 * a Unix socket file if it is still the one made. */
void net_listener_close(struct net_listener *l);

struct net_peer {
	bool anonymous; /* TCP (or credentials unknown): nobody */
	bool loopback;  /* TCP from 127.0.0.0/8 or ::1, or a Unix socket */
	struct caller who;
	uint32_t *groups; /* malloc'ed (SO_PEERGROUPS), or NULL */
	char name[96];    /* for log lines: "unix pid 12 uid 1000", "10.0.0.3" */
};

/* Who is at the other end of a connected socket. */
void net_peer_identify(int fd, bool is_unix, struct net_peer *out);
void net_peer_free(struct net_peer *p);

#endif
