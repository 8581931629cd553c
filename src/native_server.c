/*
 * native_server.c - the native protocol's listener (native.h): a socket
 * (TCP or Unix), an accepting thread, and a thread per connection, at most
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

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

/* nobody and nogroup: who an anonymous (TCP) client is to the stores. */
#define ANONYMOUS_ID 65534

struct native_server {
	struct blobdb *db;
	struct native_options opts;
	int fd;
	dev_t sock_dev; /* the socket file made (Unix): removed at stop if */
	ino_t sock_ino; /* it is still this one */
	int wake[2]; /* a byte ends the accepting thread's poll */
	bool is_unix;
	char address[sizeof(((struct sockaddr_un *)0)->sun_path) + 8];
	pthread_t acceptor;
	bool started;
	pthread_mutex_t lock;
	pthread_cond_t changed; /* a connection ended */
	struct native_conn *conns;
	unsigned count;
	bool stopping;
	unsigned out_of_fds; /* accept failed for want of descriptors (acceptor only) */
};

/* HOST:PORT to a socket address: numeric IPv4, [IPv6], or localhost. */
static int parse_inet(const char *addr, struct sockaddr_storage *ss, socklen_t *len)
{
	char host[64];
	const char *colon = strrchr(addr, ':');
	char *end;
	unsigned long port;
	size_t hl;

	if (!colon || colon == addr)
		return -EINVAL;
	hl = (size_t)(colon - addr);
	if (hl >= sizeof(host))
		return -EINVAL;
	memcpy(host, addr, hl);
	host[hl] = '\0';
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (!colon[1] || *end || errno || port > 65535)
		return -EINVAL;
	memset(ss, 0, sizeof(*ss));
	if (!strcmp(host, "localhost"))
		snprintf(host, sizeof(host), "127.0.0.1");
	if (host[0] == '[' && host[hl - 1] == ']') {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

		host[hl - 1] = '\0';
		if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
			return -EINVAL;
		a->sin6_family = AF_INET6;
		a->sin6_port = htons((uint16_t)port);
		*len = sizeof(*a);
		return 0;
	}
	{
		struct sockaddr_in *a = (struct sockaddr_in *)ss;

		if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
			return -EINVAL;
		a->sin_family = AF_INET;
		a->sin_port = htons((uint16_t)port);
		*len = sizeof(*a);
	}
	return 0;
}

static int listen_unix(struct native_server *s, const char *name)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char cwd[PATH_MAX], path[sizeof(a.sun_path)];
	struct stat st;
	int ret = 0;

	mode_t old;

	/* Made absolute: a daemonized mount runs in /, and removes it there. */
	if (name[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return -errno;
	if (!name[0] || (size_t)snprintf(path, sizeof(path), "%s%s%s", name[0] == '/' ? "" : cwd,
					 name[0] == '/' ? "" : "/", name) >= sizeof(path))
		return -EINVAL;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	snprintf(s->address, sizeof(s->address), "unix:%s", path);
	s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		return -errno;
	/* A socket left by a daemon that died goes (nothing answers on it);
	 * one a live server holds, or anything else, stays. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		if (connect(s->fd, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EAGAIN)
			return -EADDRINUSE;
		if (errno == ECONNREFUSED)
			(void)unlink(path);
		close(s->fd);
		s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (s->fd < 0)
			return -errno;
	}
	/* The mode comes from the umask at bind (no chmod that a symlink
	 * could redirect); no thread runs yet, so the umask is ours. */
	old = umask(s->opts.world ? 0111 : 0177);
	if (bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		ret = -errno;
	umask(old);
	if (ret == 0 && lstat(path, &st) == 0) {
		s->is_unix = true; /* made here: removed at stop */
		s->sock_dev = st.st_dev;
		s->sock_ino = st.st_ino;
	}
	return ret;
}

static int listen_inet(struct native_server *s, const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int one = 1, ret = parse_inet(addr, &ss, &len);
	char host[INET6_ADDRSTRLEN];

	if (ret < 0)
		return ret;
	s->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (s->fd < 0)
		return -errno;
	(void)setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(s->fd, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(s->fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	if (ss.ss_family == AF_INET6) {
		struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;

		inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof(host));
		snprintf(s->address, sizeof(s->address), "[%s]:%u", host, ntohs(a->sin6_port));
	} else {
		struct sockaddr_in *a = (struct sockaddr_in *)&ss;

		inet_ntop(AF_INET, &a->sin_addr, host, sizeof(host));
		snprintf(s->address, sizeof(s->address), "%s:%u", host, ntohs(a->sin_port));
	}
	return 0;
}

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
	s->fd = s->wake[0] = s->wake[1] = -1;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->changed, NULL);
	ret = !strncmp(addr, "unix:", 5) ? listen_unix(s, addr + 5) : listen_inet(s, addr);
	if (ret == 0 && listen(s->fd, 128) < 0)
		ret = -errno;
	if (ret == 0 && pipe2(s->wake, O_CLOEXEC) < 0)
		ret = -errno;
	if (ret < 0) {
		log_error("native: cannot listen on %s: %s%s", addr, strerror(-ret),
			  ret == -EINVAL ? " (unix:PATH, IPV4:PORT, [IPV6]:PORT or localhost:PORT)" :
			  ret == -EADDRINUSE ? " (another server answers there)" : "");
		native_server_stop(s);
		return ret;
	}
	log_info("native protocol on %s", s->address);
	*out = s;
	return 0;
}

const char *native_server_address(const struct native_server *server)
{
	return server->address;
}

/* Who the client is: a Unix socket's peer, or anonymous. */
static void identify(struct native_conn *c, bool is_unix)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	c->anonymous = true;
	c->who.uid = c->who.gid = ANONYMOUS_ID;
	snprintf(c->peer, sizeof(c->peer), "tcp client");
	if (!is_unix) {
		struct sockaddr_storage ss;
		char host[INET6_ADDRSTRLEN] = "?";

		len = sizeof(ss);
		if (getpeername(c->fd, (struct sockaddr *)&ss, &len) == 0) {
			if (ss.ss_family == AF_INET6)
				inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host,
					  sizeof(host));
			else
				inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host,
					  sizeof(host));
		}
		snprintf(c->peer, sizeof(c->peer), "%s", host);
		return;
	}
	if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		snprintf(c->peer, sizeof(c->peer), "unix client (unknown)");
		return;
	}
	c->anonymous = false;
	c->who.uid = cred.uid;
	c->who.gid = cred.gid;
	{
		/* The kernel says how many there are when the buffer is too
		 * small (ERANGE); beyond NATIVE_GROUPS_MAX (as on the mount)
		 * they are not seen: access they alone would give is refused. */
		gid_t *groups = malloc(NATIVE_GROUPS_MAX * sizeof(gid_t));
		socklen_t glen = NATIVE_GROUPS_MAX * sizeof(gid_t);
		int ret = groups ? getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) : -1;

		if (ret < 0 && groups && errno == ERANGE) {
			gid_t *all = malloc(glen);

			if (all && getsockopt(c->fd, SOL_SOCKET, SO_PEERGROUPS, all, &glen) == 0) {
				memcpy(groups, all, NATIVE_GROUPS_MAX * sizeof(gid_t));
				glen = NATIVE_GROUPS_MAX * sizeof(gid_t);
				ret = 0;
			}
			free(all);
		}
		c->groups = ret == 0 ? (uint32_t *)calloc(NATIVE_GROUPS_MAX, sizeof(uint32_t)) : NULL;
		if (c->groups) {
			c->who.group_count = glen / sizeof(gid_t);
			for (size_t i = 0; i < c->who.group_count; i++)
				c->groups[i] = groups[i];
			c->who.groups = c->groups;
		}
		free(groups);
	}
	snprintf(c->peer, sizeof(c->peer), "unix pid %d uid %u", (int)cred.pid, (unsigned)cred.uid);
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
		free(c->groups);
		free(c);
		s->count--;
	}
}

static void *accept_main(void *arg)
{
	struct native_server *s = arg;
	struct timeval idle = { .tv_sec = NATIVE_IDLE_S };

	for (;;) {
		struct pollfd p[2] = { { .fd = s->fd, .events = POLLIN },
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
		fd = accept4(s->fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
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
		if (!s->is_unix)
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
		identify(c, s->is_unix);
		pthread_mutex_lock(&s->lock);
		if (s->stopping || pthread_create(&c->thread, NULL, conn_main, c) != 0) {
			bool stopping = s->stopping;

			pthread_mutex_unlock(&s->lock);
			if (!stopping)
				log_warning("native %s: no thread for the connection: closed", c->peer);
			close(fd);
			free(c->groups);
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
	if (s->fd >= 0)
		close(s->fd);
	/* The socket file goes if it is still the one made here. */
	if (s->is_unix) {
		struct stat st;

		if (lstat(s->address + 5, &st) == 0 && st.st_dev == s->sock_dev &&
		    st.st_ino == s->sock_ino)
			(void)unlink(s->address + 5);
	}
	if (s->wake[0] >= 0) {
		close(s->wake[0]);
		close(s->wake[1]);
	}
	pthread_cond_destroy(&s->changed);
	pthread_mutex_destroy(&s->lock);
	free(s);
}
