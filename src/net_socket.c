/*
 * net_socket.c - listening sockets and peers for the network front ends
 * (net_socket.h): the address forms both servers take, a Unix socket's
 * mode and its safe replacement and removal, and who a peer is.
 */
#include "net_socket.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

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

static int listen_unix(struct net_listener *l, const char *name, bool world)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	char cwd[PATH_MAX], path[sizeof(a.sun_path)];
	struct stat st;
	mode_t old;
	int ret = 0;

	/* Made absolute: a daemonized mount runs in /, and removes it there. */
	if (name[0] != '/' && !getcwd(cwd, sizeof(cwd)))
		return -errno;
	if (!name[0] || (size_t)snprintf(path, sizeof(path), "%s%s%s", name[0] == '/' ? "" : cwd,
					 name[0] == '/' ? "" : "/", name) >= sizeof(path))
		return -EINVAL;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	snprintf(l->address, sizeof(l->address), "unix:%s", path);
	l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->fd < 0)
		return -errno;
	/* A socket left by a daemon that died goes (nothing answers on it);
	 * one a live server holds, or anything else, stays. */
	if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode)) {
		if (connect(l->fd, (struct sockaddr *)&a, sizeof(a)) == 0 || errno == EAGAIN)
			return -EADDRINUSE;
		if (errno == ECONNREFUSED)
			(void)unlink(path);
		close(l->fd);
		l->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
		if (l->fd < 0)
			return -errno;
	}
	/* The mode comes from the umask at bind (no chmod that a symlink
	 * could redirect); no thread runs yet, so the umask is ours. */
	old = umask(world ? 0111 : 0177);
	if (bind(l->fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		ret = -errno;
	umask(old);
	if (ret == 0 && lstat(path, &st) == 0) {
		l->is_unix = true; /* made here: removed at close */
		l->sock_dev = st.st_dev;
		l->sock_ino = st.st_ino;
	}
	return ret;
}

/* The text form of a TCP address, "1.2.3.4" or "::1" (host only). */
static void host_text(const struct sockaddr_storage *ss, char *out, size_t size)
{
	if (ss->ss_family == AF_INET6)
		inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)ss)->sin6_addr, out, size);
	else
		inet_ntop(AF_INET, &((const struct sockaddr_in *)ss)->sin_addr, out, size);
}

static int listen_inet(struct net_listener *l, const char *addr)
{
	struct sockaddr_storage ss;
	socklen_t len = 0;
	int one = 1, ret = parse_inet(addr, &ss, &len);
	char host[INET6_ADDRSTRLEN];

	if (ret < 0)
		return ret;
	l->fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (l->fd < 0)
		return -errno;
	(void)setsockopt(l->fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(l->fd, (struct sockaddr *)&ss, len) < 0 ||
	    getsockname(l->fd, (struct sockaddr *)&ss, &len) < 0)
		return -errno;
	host_text(&ss, host, sizeof(host));
	snprintf(l->address, sizeof(l->address), ss.ss_family == AF_INET6 ? "[%s]:%u" : "%s:%u",
		 host, ntohs(((struct sockaddr_in *)&ss)->sin_port));
	return 0;
}

int net_listen(const char *addr, bool world, struct net_listener *out)
{
	int ret;

	memset(out, 0, sizeof(*out));
	out->fd = -1;
	ret = !strncmp(addr, "unix:", 5) ? listen_unix(out, addr + 5, world) :
	      listen_inet(out, addr);
	if (ret == 0 && listen(out->fd, 128) < 0)
		ret = -errno;
	if (ret < 0)
		net_listener_close(out);
	return ret;
}

void net_listener_close(struct net_listener *l)
{
	struct stat st;

	if (l->fd >= 0)
		close(l->fd);
	l->fd = -1;
	/* The socket file goes if it is still the one made here. */
	if (l->is_unix && lstat(l->address + 5, &st) == 0 && st.st_dev == l->sock_dev &&
	    st.st_ino == l->sock_ino)
		(void)unlink(l->address + 5);
	l->is_unix = false;
}

static bool is_loopback(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24) == 127;
	if (ss->ss_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;

		return IN6_IS_ADDR_LOOPBACK(a) ||
		       (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
	}
	return false;
}

/* A Unix peer's supplementary groups: the kernel says how many there are
 * when the buffer is too small (ERANGE); beyond NET_GROUPS_MAX (as on the
 * mount) they are not seen: access they alone would give is refused. */
static void peer_groups(int fd, struct net_peer *p)
{
	gid_t *groups = malloc(NET_GROUPS_MAX * sizeof(gid_t));
	socklen_t glen = NET_GROUPS_MAX * sizeof(gid_t);
	int ret = groups ? getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups, &glen) : -1;

	if (ret < 0 && groups && errno == ERANGE) {
		gid_t *all = malloc(glen);

		if (all && getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, all, &glen) == 0) {
			memcpy(groups, all, NET_GROUPS_MAX * sizeof(gid_t));
			glen = NET_GROUPS_MAX * sizeof(gid_t);
			ret = 0;
		}
		free(all);
	}
	p->groups = ret == 0 ? calloc(NET_GROUPS_MAX, sizeof(uint32_t)) : NULL;
	if (p->groups) {
		p->who.group_count = glen / sizeof(gid_t);
		for (size_t i = 0; i < p->who.group_count; i++)
			p->groups[i] = groups[i];
		p->who.groups = p->groups;
	}
	free(groups);
}

void net_peer_identify(int fd, bool is_unix, struct net_peer *p)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);

	memset(p, 0, sizeof(*p));
	p->anonymous = true;
	p->who.uid = p->who.gid = NET_ANONYMOUS_ID;
	if (!is_unix) {
		struct sockaddr_storage ss;
		char host[INET6_ADDRSTRLEN] = "?";

		len = sizeof(ss);
		if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0) {
			host_text(&ss, host, sizeof(host));
			p->loopback = is_loopback(&ss);
		}
		snprintf(p->name, sizeof(p->name), "%s", host);
		return;
	}
	p->loopback = true;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		snprintf(p->name, sizeof(p->name), "unix client (unknown)");
		return;
	}
	p->anonymous = false;
	p->who.uid = cred.uid;
	p->who.gid = cred.gid;
	peer_groups(fd, p);
	snprintf(p->name, sizeof(p->name), "unix pid %d uid %u", (int)cred.pid, (unsigned)cred.uid);
}

void net_peer_free(struct net_peer *p)
{
	free(p->groups);
	p->groups = NULL;
	p->who.groups = NULL;
	p->who.group_count = 0;
}
