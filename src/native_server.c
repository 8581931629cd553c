/*
 * native_server.c - the native protocol's listener (native.h): a socket
 * (net_socket.h), an accepting thread, and a thread per connection, at most
 * NATIVE_CONNECTIONS_MAX of them (the next connections wait in the listen
 * backlog until one ends). A client must open within NATIVE_OPENING_S
 * seconds, and a connection that then sends nothing for NATIVE_IDLE_S
 * seconds is closed, as is one that takes no answer for as long. (A stalled
 * client holds its thread and one of the connections: 256 of them block
 * the others until they time out; no bound per client yet.)
 * Stopping shuts every connection's socket down (its thread then ends)
 * and waits for them.
 */
#include "native_internal.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"

struct native_server {
	struct blobdb *db;
	struct native_options opts;
	struct net_listener listener;
	int wake[2]; /* a byte ends the accepting thread's poll */
	pthread_t acceptor;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t changed; /* a connection ended */
	struct native_conn *conns;
	unsigned count;
	bool stopping;
	unsigned out_of_fds; /* accept failed for want of descriptors (acceptor only) */
};

int native_server_listen(struct blobdb *db, const char *addr, const struct native_options *opts,
			 struct native_server **out)
{
	struct native_server *s = calloc(1, sizeof(*s));
	int ret;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	s->db = db;
	if (opts)
		s->opts = *opts;
	s->listener.fd = s->wake[0] = s->wake[1] = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->changed, NULL);
	ret = net_listen(addr, s->opts.world, &s->listener);
	if (ret == 0 && pipe2(s->wake, O_CLOEXEC) < 0)
		ret = -errno;
	if (ret < 0) {
		log_error("native: cannot listen on %s: %s%s", addr, strerror(-ret),
			  ret == -EINVAL ? " (unix:PATH, IPV4:PORT, [IPV6]:PORT or localhost:PORT)" :
			  ret == -EADDRINUSE ? " (another server answers there)" : "");
		native_server_stop(s);
		return ret;
	}
	log_info("native protocol on %s", s->listener.address);
	*out = s;
	return 0;
}

const char *native_server_address(const struct native_server *server)
{
	return server->listener.address;
}

static void *conn_main(void *arg)
{
	struct native_conn *c = arg;
	struct native_server *s = c->server;

	native_session_run(c);
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&c->done, true, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Joins and frees the connections that ended (under lock). */
static void reap(struct native_server *s)
{
	struct native_conn **p = &s->conns;

	while (*p) {
		struct native_conn *c = *p;

		if (!__atomic_load_n(&c->done, __ATOMIC_ACQUIRE)) {
			p = &c->next;
			continue;
		}
		*p = c->next;
		pthread_join(c->thread, NULL);
		close(c->fd);
		net_peer_free(&c->peer);
		free(c);
		s->count--;
	}
}

static void *accept_main(void *arg)
{
	struct native_server *s = arg;
	struct timeval idle = { .tv_sec = NATIVE_IDLE_S };

	for (;;) {
		struct pollfd p[2] = { { .fd = s->listener.fd, .events = POLLIN },
				       { .fd = s->wake[0], .events = POLLIN } };
		struct native_conn *c;
		int fd, one = 1;

		pthread_mutex_lock(&s->lock);
		reap(s);
		while (!s->stopping && s->count >= NATIVE_CONNECTIONS_MAX) {
			pthread_cond_wait(&s->changed, &s->lock);
			reap(s);
		}
		pthread_mutex_unlock(&s->lock);
		if (poll(p, 2, 1000) < 0 && errno != EINTR) {
			log_error("native: poll: %s: no more connections accepted", strerror(errno));
			break;
		}
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(s->listener.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0 && (errno == EMFILE || errno == ENFILE || errno == ENOMEM ||
			       errno == ENOBUFS)) {
			/* Out of descriptors: the connection waits in the backlog
			 * (once a second, not a busy loop). */
			if (!s->out_of_fds++)
				log_warning("native: cannot accept a connection: %s", strerror(errno));
			sleep(1);
			continue;
		}
		if (fd < 0)
			continue; /* the client went: the next */
		s->out_of_fds = 0;
		/* Blocking from here on, with the timeouts below. */
		(void)fcntl(fd, F_SETFL, 0);
		(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));
		(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &idle, sizeof(idle));
		if (!s->listener.is_unix)
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c) {
			close(fd);
			continue;
		}
		c->server = s;
		c->opts = &s->opts;
		c->db = s->db;
		c->fd = fd;
		net_peer_identify(fd, s->listener.is_unix, &c->peer);
		pthread_mutex_lock(&s->lock);
		if (s->stopping || pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			bool stopping = s->stopping;

			pthread_mutex_unlock(&s->lock);
			if (!stopping)
				log_warning("native %s: no thread for the connection: closed",
					    c->peer.name);
			close(fd);
			net_peer_free(&c->peer);
			free(c);
			continue;
		}
		c->next = s->conns;
		s->conns = c;
		s->count++;
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

int native_server_start(struct native_server *server)
{
	int ret = -pthread_create(&server->acceptor, NULL, accept_main, server);

	server->started = ret == 0;
	if (ret < 0)
		log_error("native: cannot start the accepting thread: %s", strerror(-ret));
	return ret;
}

void native_server_stop(struct native_server *s)
{
	if (!s)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
	if (s->started) {
		(void)!write(s->wake[1], "x", 1);
		pthread_join(s->acceptor, NULL);
	}
	/* Every connection's socket is shut down: its thread's next read or
	 * write fails, and it ends. */
	pthread_mutex_lock(&s->lock);
	for (struct native_conn *c = s->conns; c; c = c->next)
		(void)shutdown(c->fd, SHUT_RDWR);
	while (s->conns) {
		reap(s);
		if (s->conns)
			pthread_cond_wait(&s->changed, &s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	net_listener_close(&s->listener);
	if (s->wake[0] >= 0) {
		close(s->wake[0]);
		close(s->wake[1]);
	}
	pthread_cond_destroy(&s->changed);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
