/*
 * http_server.c - the HTTP server (http.h): libmicrohttpd on our listening
 * socket, a thread per connection (store calls block: on a disk, on an
 * object store), at most HTTP_CONNECTIONS_MAX at once; who each connection
 * and request is (the peer, the bearer token); the path parsed into a route
 * and the request dispatched; the answers every route shares (errors as
 * JSON, each refusal logged).
 */
#include "http_internal.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "escape.h"
#include "hash.h"
#include "log.h"

/* Per connection: its headers and the bytes of a body piece. MHD zeroes it
 * between requests: 64 KiB was the best of 32, 64, 128 and 256 KiB for both
 * small GETs (17,000/s against 11,000 with 256) and uploads (470 MB/s
 * against 280 with 32). Headers beyond it are refused (431). */
#define HTTP_CONNECTION_MEMORY (64 * 1024)
/* A connection's thread: the handlers' frames are a few KiB (blobs and
 * pages live on the heap); not the default 8 MiB each, 1000 times. */
#define HTTP_THREAD_STACK (512 * 1024)

enum MHD_Result http_queue(struct http_request *r, unsigned status, struct MHD_Response *resp)
{
	enum MHD_Result ret;

	if (!resp)
		return MHD_NO;
	ret = MHD_queue_response(r->conn, status, resp);
	MHD_destroy_response(resp);
	return ret;
}

enum MHD_Result http_reply(struct http_request *r, unsigned status, const char *type,
			   const char *body, size_t len)
{
	struct MHD_Response *resp =
		MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);

	if (!resp)
		return MHD_NO;
	if (type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, type);
	return http_queue(r, status, resp);
}

enum MHD_Result http_fail_status(struct http_request *r, unsigned status, const char *error,
				 const char *message)
{
	char body[512];
	struct MHD_Response *resp;
	int n = snprintf(body, sizeof(body), "{\"error\":\"%s\",\"message\":\"%s\"}\n", error,
			 message);

	resp = MHD_create_response_from_buffer((size_t)n < sizeof(body) ? (size_t)n :
					       sizeof(body) - 1, body, MHD_RESPMEM_MUST_COPY);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE,
					"Bearer realm=\"blobfs\"");
	return http_queue(r, status, resp);
}

enum MHD_Result http_fail(struct http_request *r, int err, const char *what)
{
	const char *store = r->store[0] ? r->store : "-";

	switch (err) {
	case -ENOENT:
		return http_fail_status(r, MHD_HTTP_NOT_FOUND, "not-found", "no such store or blob");
	case -EEXIST:
		return http_fail_status(r, MHD_HTTP_CONFLICT, "already-exists", "already there");
	case -EINVAL:
		return http_fail_status(r, MHD_HTTP_BAD_REQUEST, "invalid-argument",
					"invalid argument");
	case -ENOSPC:
		return http_fail_status(r, MHD_HTTP_INSUFFICIENT_STORAGE, "no-space",
					"no space left for the blob");
	case -EFBIG:
		log_warning("http %s: %s of %s: the body is larger than the store takes",
			    r->peer->name, what, store);
		return http_fail_status(r, MHD_HTTP_CONTENT_TOO_LARGE, "too-large",
					"larger than the largest blob the store takes");
	case -EACCES:
	case -EPERM:
		/* An anonymous client that asked for more than reading: a
		 * token would let it (401); anyone else is refused (403). */
		if (r->anonymous && strcmp(r->method, "GET") && strcmp(r->method, "HEAD")) {
			log_warning("http %s: %s of %s refused (anonymous clients only read)",
				    r->peer->name, what, store);
			return http_fail_status(r, MHD_HTTP_UNAUTHORIZED, "unauthorized",
						"a read-write token is needed");
		}
		log_warning("http %s: %s of %s refused (%s)", r->peer->name, what, store,
			    r->token && !r->token->rw && strcmp(r->method, "GET") &&
			    strcmp(r->method, "HEAD") ? "a read-only token" :
			    r->token && r->store[0] && !token_reaches(r->token, r->store) ?
			    "the token does not reach the store" : "the store's owner and mode");
		return http_fail_status(r, MHD_HTTP_FORBIDDEN, "forbidden", "refused");
	default:
		log_error("http %s: %s of %s: %s", r->peer->name, what, store, strerror(-err));
		return http_fail_status(r, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal-error",
					"internal error");
	}
}

bool http_reaches(const struct http_request *r, const char *store)
{
	return !r->token || token_reaches(r->token, store);
}

int http_open_store(struct http_request *r, int mask, struct store **out)
{
	int ret;

	*out = NULL;
	if (!http_reaches(r, r->store) || ((mask & W_OK) && !r->may_write))
		return -EACCES;
	ret = store_open(r->server->db, r->store, out);
	if (ret == 0)
		ret = store_access(*out, &r->who, mask);
	if (ret < 0 && *out) {
		store_close(*out);
		*out = NULL;
	}
	return ret;
}

void http_changed(struct http_request *r, const uint8_t *hash)
{
	if (r->server->opts.changed)
		r->server->opts.changed(r->server->opts.changed_arg, r->store, hash);
}

int http_query(struct http_request *r, const char *key, char *out, size_t size)
{
	const char *v = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, key);
	size_t len;
	char *tmp;
	int n;

	if (!v)
		return -ENOENT;
	len = strlen(v);
	tmp = malloc(len + 1);
	if (!tmp)
		return -ENOMEM;
	n = percent_decode(v, len, tmp, true);
	if (n >= 0 && (size_t)n >= size)
		n = -EINVAL;
	if (n >= 0)
		memcpy(out, tmp, (size_t)n + 1);
	free(tmp);
	return n;
}

/* The store name of a path segment [p, end): percent-decoded, and a name a
 * store may have. */
static int take_store(struct http_request *r, const char *p, const char *end)
{
	char name[3 * 255 + 1];
	int n;

	/* Decoded here first: a segment without escapes decodes to as many
	 * bytes as it has, up to 765, and r->store holds 255. */
	if (end - p > 3 * 255)
		return -EINVAL;
	n = percent_decode(p, (size_t)(end - p), name, false);
	if (n < 0 || n >= (int)sizeof(r->store) || store_name_check(name, (size_t)n) < 0 ||
	    strlen(name) != (size_t)n)
		return -EINVAL;
	memcpy(r->store, name, (size_t)n + 1);
	return 0;
}

/* The route of a raw (not decoded) path: 0, -ENOENT (no such path),
 * -EINVAL (a bad store name or hash in it). */
static int parse_route(struct http_request *r, const char *url)
{
	const char *p, *slash;

	if (!strcmp(url, "/")) {
		r->route = ROUTE_PAGE;
		return 0;
	}
	if (!strcmp(url, "/blob_hash")) {
		r->route = ROUTE_HASH;
		return 0;
	}
	if (!strcmp(url, "/stores")) {
		r->route = ROUTE_STORES;
		return 0;
	}
	if (strncmp(url, "/stores/", 8) != 0)
		return -ENOENT;
	p = url + 8;
	slash = strchr(p, '/');
	if (take_store(r, p, slash ? slash : p + strlen(p)) < 0)
		return -EINVAL;
	if (!slash) {
		r->route = ROUTE_STORE;
		return 0;
	}
	if (!strcmp(slash, "/")) {
		r->route = ROUTE_STORE_PAGE;
		return 0;
	}
	if (!strcmp(slash, "/blobs")) {
		r->route = ROUTE_BLOBS;
		return 0;
	}
	if (strncmp(slash, "/blobs/", 7) != 0)
		return -ENOENT;
	if (!hash_from_hex(slash + 7, strlen(slash + 7), r->hash))
		return -EINVAL;
	r->route = ROUTE_BLOB;
	return 0;
}

/* Who asks: the bearer token, a Unix peer, or anonymous. 0, or an HTTP
 * status to refuse with (401). */
static unsigned identify(struct http_request *r)
{
	const char *auth = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
						       MHD_HTTP_HEADER_AUTHORIZATION);

	if (auth) {
		const char *v = auth;

		if (strncasecmp(v, "Bearer ", 7) != 0) {
			log_warning("http %s: an Authorization that is not a bearer token: refused",
				    r->peer->name);
			return MHD_HTTP_UNAUTHORIZED;
		}
		v += 7;
		while (*v == ' ')
			v++;
		pthread_mutex_lock(&r->server->tokens_lock);
		r->tokens = token_set_hold(r->server->tokens);
		pthread_mutex_unlock(&r->server->tokens_lock);
		r->token = token_set_find(r->tokens, v, strlen(v));
		if (!r->token) {
			log_warning("http %s: an unknown token: refused", r->peer->name);
			return MHD_HTTP_UNAUTHORIZED;
		}
		r->who.uid = r->token->uid;
		r->who.gid = r->token->gid;
		r->may_write = r->token->rw;
		return 0;
	}
	if (!r->peer->anonymous) { /* a Unix socket's peer, as on the mount */
		r->who = r->peer->who;
		r->may_write = true;
		return 0;
	}
	r->anonymous = true;
	r->who.uid = r->who.gid = NET_ANONYMOUS_ID;
	if (!r->peer->loopback && !r->server->opts.public_reads) {
		log_warning("http %s: no token, not from loopback: refused", r->peer->name);
		return MHD_HTTP_UNAUTHORIZED;
	}
	return 0;
}

static bool is(const struct http_request *r, const char *method)
{
	return !strcmp(r->method, method);
}

static enum MHD_Result not_allowed(struct http_request *r, const char *allow)
{
	struct MHD_Response *resp;
	static const char body[] = "{\"error\":\"method-not-allowed\",\"message\":\"not on this "
				   "path\"}\n";

	resp = MHD_create_response_from_buffer(sizeof(body) - 1, (void *)body,
					       MHD_RESPMEM_PERSISTENT);
	if (!resp)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ALLOW, allow);
	return http_queue(r, MHD_HTTP_METHOD_NOT_ALLOWED, resp);
}

static bool wants_html(struct http_request *r)
{
	const char *accept = MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND,
							 MHD_HTTP_HEADER_ACCEPT);

	return accept && strstr(accept, "text/html");
}

/* The request's first call (its headers are in): answers it, or for a
 * body, begins taking it. */
static enum MHD_Result dispatch(struct http_request *r, const char *url)
{
	bool get = is(r, "GET") || is(r, "HEAD");
	unsigned refusal;
	int ret = parse_route(r, url);

	if (ret == -ENOENT)
		return http_fail_status(r, MHD_HTTP_NOT_FOUND, "not-found", "no such path");
	if (ret < 0)
		return http_fail_status(r, MHD_HTTP_BAD_REQUEST, "invalid-argument",
					r->route == ROUTE_NONE && !r->store[0] ?
					"not a store's name" : "not a blob's hash");
	refusal = identify(r);
	if (refusal)
		return http_fail_status(r, refusal, "unauthorized", "a valid bearer token is needed");
	switch (r->route) {
	case ROUTE_PAGE:
		return get ? http_page_stores(r) : not_allowed(r, "GET, HEAD");
	case ROUTE_STORES:
		return get ? (wants_html(r) ? http_page_stores(r) : http_store_list(r)) :
		       not_allowed(r, "GET, HEAD");
	case ROUTE_STORE:
		if (get && wants_html(r))
			return http_page_store(r);
		return is(r, "PUT") ? http_store_create(r) : is(r, "DELETE") ?
		       http_store_destroy(r) : not_allowed(r, "PUT, DELETE");
	case ROUTE_STORE_PAGE:
		return get ? http_page_store(r) : not_allowed(r, "GET, HEAD");
	case ROUTE_HASH:
		return is(r, "POST") ? http_body_begin(r) : not_allowed(r, "POST");
	case ROUTE_BLOBS:
		return get ? (wants_html(r) ? http_page_store(r) : http_blob_list(r)) :
		       is(r, "POST") ? http_body_begin(r) : not_allowed(r, "GET, HEAD, POST");
	case ROUTE_BLOB:
		return get ? http_blob_get(r, is(r, "HEAD")) :
		       is(r, "PUT") ? http_body_begin(r) :
		       is(r, "DELETE") ? http_blob_delete(r) :
		       not_allowed(r, "GET, HEAD, PUT, DELETE");
	case ROUTE_NONE:
		break;
	}
	return http_fail_status(r, MHD_HTTP_NOT_FOUND, "not-found", "no such path");
}

/* Whether the request is one that takes a body (a save or a hash): its
 * route is dispatched at the first call, so that a refusal comes before
 * the body is read. The others are answered at the last call: answered at
 * the first, MHD would close the connection (it cannot tell that no body
 * follows). */
static bool takes_body(const char *url, const char *method)
{
	if (!strcmp(method, "POST"))
		return !strcmp(url, "/blob_hash") || !strncmp(url, "/stores/", 8);
	return !strcmp(method, "PUT") && !strncmp(url, "/stores/", 8) && strstr(url, "/blobs/");
}

struct lengths {
	const char *first;
	bool conflict;
};

static enum MHD_Result check_length(void *cls, enum MHD_ValueKind kind, const char *key,
				   const char *value)
{
	struct lengths *l = cls;

	(void)kind;
	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_LENGTH) != 0 || !value)
		return MHD_YES;
	if (l->first && strcmp(l->first, value) != 0)
		l->conflict = true;
	if (!l->first)
		l->first = value;
	return MHD_YES;
}

/* Whether the body's length is ambiguous: two Content-Lengths that differ
 * (MHD reads by the first), a Content-Length beside a Transfer-Encoding
 * (MHD reads by the encoding), or an encoding other than chunked (MHD reads
 * to the connection's end). */
static bool ambiguous_length(struct MHD_Connection *conn)
{
	const char *te = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
						     MHD_HTTP_HEADER_TRANSFER_ENCODING);
	struct lengths l = { 0 };

	MHD_get_connection_values(conn, MHD_HEADER_KIND, check_length, &l);
	return l.conflict || (te && (l.first || strcasecmp(te, "chunked") != 0));
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
				  const char *method, const char *version,
				  const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	struct http_request *r = *req_cls;

	(void)version;
	if (!r) {
		const union MHD_ConnectionInfo *info =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

		r = calloc(1, sizeof(*r));
		if (!r || !info || !info->socket_context) {
			free(r);
			return MHD_NO;
		}
		r->server = cls;
		r->conn = conn;
		r->peer = info->socket_context;
		r->method = method;
		*req_cls = r;
		if (ambiguous_length(conn)) {
			/* Which framing MHD read the body by need not be what
			 * another server on the path used: a request smuggled
			 * in. */
			log_warning("http %s: two different Content-Lengths, or one with a "
				    "Transfer-Encoding, or a Transfer-Encoding other than chunked: "
				    "refused and closed", r->peer->name);
			return http_fail_status(r, MHD_HTTP_BAD_REQUEST, "invalid-argument",
						"ambiguous body length");
		}
		if (!takes_body(url, method))
			return MHD_YES;
		r->dispatched = true;
		return dispatch(r, url);
	}
	if (*upload_data_size > 0) {
		if (r->has_body)
			http_body_feed(r, upload_data, *upload_data_size);
		*upload_data_size = 0; /* a body where none is wanted: dropped */
		if (r->body_err == -EFBIG) {
			/* A chunked body past what the store takes: no answer
			 * can be queued while a body is read (MHD), and reading
			 * it all would be unbounded: the connection is closed. */
			log_warning("http %s: save of %s: a chunked body larger than the store "
				    "takes: the connection is closed", r->peer->name, r->store);
			return MHD_NO;
		}
		return MHD_YES;
	}
	if (r->has_body)
		return http_body_end(r);
	if (!r->dispatched) {
		r->dispatched = true;
		return dispatch(r, url);
	}
	return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
			 enum MHD_RequestTerminationCode toe)
{
	struct http_request *r = *req_cls;

	(void)cls;
	(void)conn;
	(void)toe;
	if (!r)
		return;
	http_request_release(r);
	token_set_release(r->tokens);
	free(r);
	*req_cls = NULL;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode code)
{
	struct http_server *s = cls;

	if (code == MHD_CONNECTION_NOTIFY_STARTED) {
		const union MHD_ConnectionInfo *info =
			MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
		struct net_peer *p = malloc(sizeof(*p));

		if (p && info)
			net_peer_identify(info->connect_fd, s->listener.is_unix, p);
		else if (p)
			free(p), p = NULL;
		*socket_context = p;
	} else if (*socket_context) {
		net_peer_free(*socket_context);
		free(*socket_context);
		*socket_context = NULL;
	}
}

/* Path and query are taken raw: a store's name may hold a %2F that must not
 * become a '/' before the path is split (parse_route decodes). */
static size_t no_unescape(void *cls, struct MHD_Connection *c, char *s)
{
	(void)cls;
	(void)c;
	return strlen(s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
	char line[512];
	size_t n;

	(void)cls;
	vsnprintf(line, sizeof(line), fmt, ap);
	n = strlen(line);
	while (n > 0 && line[n - 1] == '\n')
		line[--n] = '\0';
	/* Said when a handler of ours ends a connection: it logged why. */
	if (strstr(line, "Application reported internal error"))
		log_debug("http: %s", line);
	/* MHD says the same for either bound: name both. */
	else if (strstr(line, "reached connection limit"))
		log_warning("http: a connection closed as soon as accepted: at most %d are served at "
			    "once, %d from one address", HTTP_CONNECTIONS_MAX,
			    HTTP_CONNECTIONS_PER_ADDRESS);
	else
		log_warning("http: %s", line);
}

int http_server_listen(struct blobdb *db, const char *addr, const struct http_options *opts,
		       struct http_server **out)
{
	struct http_server *s = calloc(1, sizeof(*s));
	int ret = s ? 0 : -ENOMEM;

	*out = NULL;
	if (!s)
		goto out;
	s->db = db;
	s->listener.fd = -1;
	pthread_mutex_init(&s->tokens_lock, NULL);
	if (opts)
		s->opts = *opts;
	if (s->opts.tokens) {
		/* Absolute: a daemonized mount runs in /, and reloads there. */
		s->tokens_path = realpath(s->opts.tokens, NULL);
		if (!s->tokens_path) {
			ret = -errno;
			log_error("tokens %s: %s", s->opts.tokens, strerror(-ret));
			goto out;
		}
		s->opts.tokens = s->tokens_path;
		ret = token_set_load(s->tokens_path, &s->tokens);
		if (ret < 0)
			goto out; /* logged */
		log_info("http: %zu tokens from %s", token_set_count(s->tokens), s->tokens_path);
	}
	ret = net_listen(addr, s->opts.world, &s->listener);
	if (ret < 0) {
		log_error("http: cannot listen on %s: %s%s", addr, strerror(-ret),
			  ret == -EINVAL ? " (IPV4:PORT, [IPV6]:PORT, localhost:PORT or unix:PATH)" :
			  ret == -EADDRINUSE ? " (another server answers there)" : "");
		goto out;
	}
	log_info("HTTP API on %s", s->listener.address);
	*out = s;
	s = NULL;
out:
	if (s)
		http_server_stop(s);
	return ret;
}

const char *http_server_address(const struct http_server *server)
{
	return server->listener.address;
}

int http_server_start(struct http_server *s)
{
	/* MHD gets a socket of its own: it closes it on some failures, and
	 * ours stays ours to close. */
	int fd = fcntl(s->listener.fd, F_DUPFD_CLOEXEC, 0);

	if (fd < 0) {
		log_error("http: cannot start the server on %s: %s", s->listener.address,
			  strerror(errno));
		return -errno;
	}
	s->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
			MHD_USE_ITC | MHD_USE_ERROR_LOG,
		0, NULL, NULL, on_request, s,
		MHD_OPTION_EXTERNAL_LOGGER, mhd_log, s,
		MHD_OPTION_LISTEN_SOCKET, fd,
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)HTTP_THREAD_STACK,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTP_CONNECTIONS_MAX,
		/* 0 (no bound) on a Unix socket: its peers have no address. */
		MHD_OPTION_PER_IP_CONNECTION_LIMIT,
		s->listener.is_unix ? 0u : (unsigned)HTTP_CONNECTIONS_PER_ADDRESS,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_S,
		MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HTTP_CONNECTION_MEMORY,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, s,
		MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, s,
		MHD_OPTION_END);
	if (!s->daemon) {
		log_error("http: cannot start the server on %s", s->listener.address);
		return -EIO;
	}
	return 0;
}

int http_server_reload(struct http_server *s)
{
	struct token_set *set = NULL, *old;
	int ret;

	if (!s->tokens_path)
		return 0;
	ret = token_set_load(s->tokens_path, &set);
	if (ret < 0) {
		log_warning("http: the tokens loaded before stay");
		return ret;
	}
	pthread_mutex_lock(&s->tokens_lock);
	old = s->tokens;
	s->tokens = set;
	pthread_mutex_unlock(&s->tokens_lock);
	token_set_release(old);
	log_info("http: %zu tokens from %s", token_set_count(set), s->tokens_path);
	return 0;
}

void http_server_stop(struct http_server *s)
{
	if (!s)
		return;
	if (s->daemon) {
		/* MHD's socket back first, closed here (some versions leave it
		 * open once quiesced). */
		int fd = MHD_quiesce_daemon(s->daemon);

		MHD_stop_daemon(s->daemon);
		if (fd >= 0)
			close(fd);
	}
	net_listener_close(&s->listener);
	token_set_release(s->tokens);
	pthread_mutex_destroy(&s->tokens_lock);
	free(s->tokens_path);
	free(s);
}
