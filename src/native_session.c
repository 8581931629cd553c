/*
 * native_session.c - one connection of the native protocol: the opening,
 * then each request answered in order through store.h. Memory per
 * connection is fixed (an input buffer that holds the longest request head,
 * an output buffer) whatever the blobs' sizes: a Blob's bytes stream from
 * the socket into a blob writer (or the hasher), and from a blob reader to
 * the socket. Answers wait in the output buffer while more requests are
 * already there (a client may send several before reading), and go out
 * before the session waits for the client.
 *
 * The rules of the stores are the mount's: list and read need the store's
 * read and search bits, save and delete its write and search bits, store
 * destruction its owner (or root); a refusal is invalarg and a log line.
 */
#include "native_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "hash.h"
#include "log.h"
#include "native_codec.h"
#include "strlist.h"

#define IN_SIZE (NATIVE_HEAD_MAX + 65536)
#define OUT_SIZE 65536
#define CHUNK 65536

struct session {
	struct native_conn *c;
	uint8_t *in;
	size_t start, end; /* the bytes of in not read yet */
	uint8_t *out;
	size_t out_len;
};

static int flush(struct session *s)
{
	size_t done = 0;

	while (done < s->out_len) {
		ssize_t n = send(s->c->fd, s->out + done, s->out_len - done, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) ? -ETIMEDOUT :
			       -ECONNRESET;
		done += (size_t)n;
	}
	s->out_len = 0;
	return 0;
}

static int put(struct session *s, const void *data, size_t len)
{
	const uint8_t *p = data;

	while (len > 0) {
		size_t n = OUT_SIZE - s->out_len < len ? OUT_SIZE - s->out_len : len;
		int ret;

		memcpy(s->out + s->out_len, p, n);
		s->out_len += n;
		p += n;
		len -= n;
		if (s->out_len == OUT_SIZE && (ret = flush(s)) < 0)
			return ret;
	}
	return 0;
}

static int put_code(struct session *s, const char *code)
{
	return put(s, code, NATIVE_CODE_SIZE);
}

static int put_u64(struct session *s, uint64_t v)
{
	uint8_t b[8];

	return put(s, b, native_put_u64(b, v));
}

/* More bytes from the client (answers waiting go out first: the client may
 * be waiting for them before it sends more). 0, or -ECONNRESET at its end,
 * -ETIMEDOUT when it sent nothing for the idle time. */
static int fill(struct session *s)
{
	ssize_t n;
	int ret = flush(s);

	if (ret < 0)
		return ret;
	if (s->start > 0) {
		memmove(s->in, s->in + s->start, s->end - s->start);
		s->end -= s->start;
		s->start = 0;
	}
	do {
		n = recv(s->c->fd, s->in + s->end, IN_SIZE - s->end, 0);
	} while (n < 0 && errno == EINTR);
	if (n == 0)
		return -ECONNRESET;
	if (n < 0)
		return errno == EAGAIN || errno == EWOULDBLOCK ? -ETIMEDOUT : -ECONNRESET;
	s->end += (size_t)n;
	return 0;
}

/* Passes the len bytes of a Blob to fn, piece by piece. fn's first error
 * is kept in *fn_err and the rest of the Blob is read and dropped (the
 * stream stays in step), unless it is -EFBIG: then the rest is not read
 * (0 returned: the caller answers and ends the connection). Returns the
 * connection's error. */
static int read_blob(struct session *s, uint64_t len,
		     int (*fn)(const uint8_t *data, size_t n, uint64_t off, void *arg), void *arg,
		     int *fn_err)
{
	uint64_t off = 0;
	int ret;

	*fn_err = 0;
	while (off < len) {
		size_t n;

		if (s->start == s->end && (ret = fill(s)) < 0)
			return ret;
		n = s->end - s->start;
		if (n > len - off)
			n = (size_t)(len - off);
		if (*fn_err == 0)
			*fn_err = fn(s->in + s->start, n, off, arg);
		s->start += n;
		off += n;
		if (*fn_err == -EFBIG)
			return 0;
	}
	return 0;
}

static int drop_bytes(const uint8_t *data, size_t n, uint64_t off, void *arg)
{
	(void)data;
	(void)n;
	(void)off;
	(void)arg;
	return 0;
}

static int hash_bytes(const uint8_t *data, size_t n, uint64_t off, void *arg)
{
	(void)off;
	return hasher_update(arg, data, n);
}

static int write_bytes(const uint8_t *data, size_t n, uint64_t off, void *arg)
{
	return blob_writer_write(arg, data, n, off);
}

/* Tells a mount beside the server what changed (its kernel may cache the
 * name, or its absence). */
static void changed(struct session *s, const char *store, const uint8_t *hash)
{
	if (s->c->opts->changed)
		s->c->opts->changed(s->c->opts->changed_arg, store, hash);
}

/* The status alone (a refusal or an error is logged once, here). */
static int answer(struct session *s, const char *what, const char *name, int result)
{
	if (result == -EACCES || result == -EPERM)
		log_warning("native %s: %s of %s refused (%s)", s->c->peer.name, what, name ? name : "-",
			    s->c->peer.anonymous ? "anonymous clients only read" : "the store's mode");
	else if (result < 0 && result != -ENOENT && result != -EEXIST && result != -EINVAL &&
		 result != -ENOSPC)
		log_error("native %s: %s of %s: %s", s->c->peer.name, what, name ? name : "-",
			  strerror(-result));
	if (result == -EACCES || result == -EPERM || result == -ENOTEMPTY)
		result = -EINVAL;
	return put_code(s, native_status(result));
}

/* Opens the named store for a request that needs mask (R_OK, W_OK, X_OK)
 * on it; writes need a client that may write. */
static int open_store(struct session *s, const char *name, int mask, struct store **out)
{
	int ret;

	*out = NULL;
	if ((mask & W_OK) && s->c->peer.anonymous)
		return -EACCES;
	ret = store_open(s->c->db, name, out);
	if (ret == 0)
		ret = store_access(*out, &s->c->peer.who, mask);
	if (ret < 0 && *out) {
		store_close(*out);
		*out = NULL;
	}
	return ret;
}

static int add_name(const char *name, void *arg)
{
	return strlist_add(arg, name);
}

static int store_list_answer(struct session *s)
{
	struct strlist l = { 0 };
	int ret = store_list(s->c->db, NULL, add_name, &l);

	if (ret < 0) {
		ret = answer(s, "store list", NULL, ret);
	} else {
		uint8_t b[2 + NATIVE_NAME_MAX];

		ret = put_code(s, native_status(0));
		if (ret == 0)
			ret = put_u64(s, l.n);
		for (size_t i = 0; i < l.n && ret == 0; i++)
			ret = put(s, b, native_put_name(b, l.v[i], strlen(l.v[i])));
	}
	strlist_free(&l);
	return ret;
}

struct hashes {
	uint8_t *v;
	size_t n, cap;
};

static int add_hash(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct hashes *l = arg;

	(void)length;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 1024;
		uint8_t *v = realloc(l->v, cap * BLOBFS_HASH_SIZE);

		if (!v)
			return -ENOMEM;
		l->v = v;
		l->cap = cap;
	}
	memcpy(l->v + l->n++ * BLOBFS_HASH_SIZE, hash, BLOBFS_HASH_SIZE);
	return 0;
}

/* The listing is taken whole before its count goes out (the count comes
 * first): 32 bytes a blob while it is sent. */
static int blob_list_answer(struct session *s, const char *name)
{
	struct hashes l = { 0 };
	struct store *st;
	int ret = open_store(s, name, R_OK | X_OK, &st);

	if (ret == 0) {
		ret = blob_list(st, NULL, add_hash, &l);
		store_close(st);
	}
	if (ret < 0) {
		ret = answer(s, "blob list", name, ret);
	} else {
		ret = put_code(s, native_status(0));
		if (ret == 0)
			ret = put_u64(s, l.n);
		if (ret == 0)
			ret = put(s, l.v, l.n * BLOBFS_HASH_SIZE);
	}
	free(l.v);
	return ret;
}

static int blob_info_answer(struct session *s, const char *name,
			    const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct store *st;
	uint64_t len = 0;
	int ret = open_store(s, name, X_OK, &st);

	if (ret == 0) {
		ret = blob_info(st, hash, &len);
		store_close(st);
	}
	if (ret < 0)
		return answer(s, "blob info", name, ret);
	ret = put_code(s, native_status(0));
	return ret < 0 ? ret : put_u64(s, len);
}

/* The bytes go out as they are read (verified): a read that fails after
 * the length went out ends the connection (-EIO), so that the client sees a
 * short Blob and never wrong bytes. */
static int blob_load_answer(struct session *s, const char *name,
			    const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct blob_reader *r = NULL;
	struct store *st;
	uint64_t len, off = 0;
	int ret = open_store(s, name, R_OK | X_OK, &st);

	if (ret == 0) {
		ret = blob_open(st, hash, &r);
		store_close(st);
	}
	if (ret < 0)
		return answer(s, "blob load", name, ret);
	len = blob_reader_length(r);
	ret = put_code(s, native_status(0));
	if (ret == 0)
		ret = put_u64(s, len);
	while (ret == 0 && off < len) {
		size_t got = 0, room;

		if (s->out_len == OUT_SIZE && (ret = flush(s)) < 0)
			break;
		room = OUT_SIZE - s->out_len;
		ret = blob_read(r, s->out + s->out_len, len - off < room ? (size_t)(len - off) : room,
				off, &got);
		if (ret == 0 && got == 0)
			ret = -EIO; /* shorter than it said */
		if (ret < 0) {
			log_error("native %s: reading blob of %s: %s: the connection ends", s->c->peer.name,
				  name, strerror(-ret));
			ret = -EIO;
			break;
		}
		s->out_len += got;
		off += got;
	}
	blob_close(r);
	return ret;
}

static int blob_hash_answer(struct session *s, uint64_t len)
{
	struct hasher *h = NULL;
	uint8_t hash[BLOBFS_HASH_SIZE];
	int fn_err = 0, ret = hasher_new(&h);

	if (ret < 0) {
		ret = read_blob(s, len, drop_bytes, NULL, &fn_err);
		fn_err = -ENOMEM;
	} else {
		ret = read_blob(s, len, hash_bytes, h, &fn_err);
	}
	if (ret == 0 && fn_err == 0)
		fn_err = hasher_final(h, hash);
	hasher_free(h);
	if (ret < 0)
		return ret;
	if (fn_err < 0)
		return answer(s, "hash", NULL, fn_err);
	ret = put_code(s, native_status(0));
	return ret < 0 ? ret : put(s, hash, BLOBFS_HASH_SIZE);
}

/* A Blob too large for the store is answered and ends the connection (its
 * bytes are not read: -EPIPE to the caller); running out of space reads the
 * rest and answers no-space. */
static int blob_save_answer(struct session *s, const char *name, bool name_ok, uint64_t len)
{
	struct blob_writer *w = NULL;
	struct store *st = NULL;
	uint8_t hash[BLOBFS_HASH_SIZE];
	int fn_err = 0, ret, result;

	/* The length first: one the database cannot take is refused before
	 * any byte is read (-EFBIG). */
	result = !name_ok ? -EINVAL : len > blobdb_blob_max(s->c->db) ? -EFBIG :
		 open_store(s, name, W_OK | X_OK, &st);
	if (result == 0)
		result = blob_writer_new(st, &w);
	if (result == -EFBIG) {
		ret = 0;
	} else if (result < 0) {
		ret = read_blob(s, len, drop_bytes, NULL, &fn_err);
	} else {
		ret = read_blob(s, len, write_bytes, w, &fn_err);
		result = fn_err;
		if (ret == 0 && fn_err == 0)
			result = blob_writer_commit(w, hash);
		if ((result == 0 || result == -EEXIST) && s->c->opts->sync && store_sync(st) < 0)
			result = -EIO;
	}
	blob_writer_free(w);
	if (st)
		store_close(st);
	if (ret < 0)
		return ret; /* the connection ended: nothing was saved */
	if (result == 0)
		changed(s, name, hash);
	if (result == -EFBIG) {
		log_warning("native %s: a blob of %llu bytes is larger than %s takes: the "
			    "connection ends", s->c->peer.name, (unsigned long long)len, name);
		ret = put_code(s, native_status(-EINVAL));
		return ret < 0 ? ret : -EPIPE;
	}
	if (result == 0 || result == -EEXIST) {
		ret = put_code(s, native_status(result));
		return ret < 0 ? ret : put(s, hash, BLOBFS_HASH_SIZE);
	}
	return answer(s, "blob save", name_ok ? name : NULL, result);
}

static int store_destroy_answer(struct session *s, const char *name)
{
	struct store_attr attr;
	struct store *st;
	int ret = s->c->peer.anonymous ? -EACCES : store_open(s->c->db, name, &st);

	/* The root of the mount is sticky: a store goes by its owner or root. */
	if (ret == 0) {
		ret = store_attr_get(st, &attr);
		if (ret == 0 && s->c->peer.who.uid != 0 && s->c->peer.who.uid != attr.uid)
			ret = -EACCES;
		store_close(st);
	}
	if (ret == 0)
		ret = store_destroy(s->c->db, name, false);
	if (ret == 0) {
		log_info("native %s: store %s destroyed", s->c->peer.name, name);
		changed(s, name, NULL);
	}
	return answer(s, "store destroy", name, ret);
}

static int store_create_answer(struct session *s, const char *name)
{
	struct store_attr attr = { .uid = s->c->peer.who.uid, .gid = s->c->peer.who.gid,
				   .mode = STORE_MODE_DEFAULT };
	int ret = s->c->peer.anonymous ? -EACCES : store_create_as(s->c->db, name, &attr);

	if (ret == 0) {
		log_info("native %s: store %s created", s->c->peer.name, name);
		changed(s, name, NULL);
	}
	return answer(s, "store create", name, ret);
}

static int blob_delete_answer(struct session *s, const char *name,
			      const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct store *st;
	int ret = open_store(s, name, W_OK | X_OK, &st);

	if (ret == 0) {
		ret = blob_delete(st, hash);
		if (ret == 0 && s->c->opts->sync && store_sync(st) < 0)
			ret = -EIO;
		store_close(st);
	}
	if (ret == 0)
		changed(s, name, hash);
	return answer(s, "blob delete", name, ret);
}

/* One request whose head was read: 0, or the connection's end. */
static int handle(struct session *s, const struct native_request *r)
{
	bool name_ok = r->has_name && r->name_ok && store_name_check(r->name, r->name_len) == 0;

	if (r->has_name && !name_ok && r->op != NATIVE_BLOB_SAVE)
		return answer(s, "request", NULL, -EINVAL);
	switch (r->op) {
	case NATIVE_STORE_LIST:
		return store_list_answer(s);
	case NATIVE_STORE_CREATE:
		return store_create_answer(s, r->name);
	case NATIVE_STORE_DESTROY:
		return store_destroy_answer(s, r->name);
	case NATIVE_BLOB_HASH:
		return blob_hash_answer(s, r->blob_len);
	case NATIVE_BLOB_LIST:
		return blob_list_answer(s, r->name);
	case NATIVE_BLOB_INFO:
		return blob_info_answer(s, r->name, r->hash);
	case NATIVE_BLOB_LOAD:
		return blob_load_answer(s, r->name, r->hash);
	case NATIVE_BLOB_SAVE:
		return blob_save_answer(s, r->name, name_ok, r->blob_len);
	case NATIVE_BLOB_DELETE:
		return blob_delete_answer(s, r->name, r->hash);
	case NATIVE_GOODBYE:
		break;
	}
	return -ECONNRESET;
}

/* The opening: 0 when the client speaks version 1 (answered Welcome!). */
static int opening(struct session *s)
{
	uint16_t version = 0;
	size_t used = 0;
	int ret;

	while ((ret = native_open_decode(s->in + s->start, s->end - s->start, &version, &used)) ==
	       -EAGAIN) {
		ret = fill(s);
		if (ret < 0)
			return ret;
	}
	if (ret < 0) {
		log_warning("native %s: not the native protocol's opening: closed", s->c->peer.name);
		return ret;
	}
	s->start += used;
	if (version != NATIVE_VERSION) {
		uint8_t b[2];

		log_warning("native %s: protocol version %u asked, %u spoken: closed", s->c->peer.name,
			    version, NATIVE_VERSION);
		ret = put_code(s, NATIVE_GO_AWAY);
		if (ret == 0)
			ret = put(s, b, native_put_u16(b, NATIVE_VERSION));
		(void)flush(s);
		return -EPROTO;
	}
	return put_code(s, NATIVE_WELCOME);
}

/* The end of a connection: answers out, then what the client still sends
 * is read and dropped for a moment, so that closing with bytes unread does
 * not reset the connection before the client read the last answer. */
static void linger(struct session *s, bool flush_first)
{
	struct timespec start, now;
	uint64_t dropped = 0;
	ssize_t n = 1;

	if (flush_first)
		(void)flush(s);
	(void)shutdown(s->c->fd, SHUT_WR);
	clock_gettime(CLOCK_MONOTONIC, &start);
	now = start;
	/* 2 seconds in all, however the client trickles. */
	while (n > 0 && dropped < (UINT64_C(64) << 20) && now.tv_sec - start.tv_sec < 2) {
		long left_ms = 2000 - (now.tv_sec - start.tv_sec) * 1000 -
			       (now.tv_nsec - start.tv_nsec) / 1000000;
		struct timeval t = { .tv_sec = 0, .tv_usec = (left_ms > 0 ? left_ms : 1) * 1000 };

		(void)setsockopt(s->c->fd, SOL_SOCKET, SO_RCVTIMEO, &t, sizeof(t));
		n = recv(s->c->fd, s->in, IN_SIZE, 0);
		dropped += n > 0 ? (uint64_t)n : 0;
		clock_gettime(CLOCK_MONOTONIC, &now);
	}
}

void native_session_run(struct native_conn *c)
{
	struct session s = { .c = c, .in = malloc(IN_SIZE), .out = malloc(OUT_SIZE) };
	struct timeval opening_time = { .tv_sec = NATIVE_OPENING_S };
	struct timeval idle = { .tv_sec = NATIVE_IDLE_S };
	int ret;

	/* A client that does not open within seconds goes (it holds one of the
	 * connections); then each wait for the client is bounded by the idle
	 * time. */
	(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &opening_time, sizeof(opening_time));
	ret = s.in && s.out ? opening(&s) : -ENOMEM;
	(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &idle, sizeof(idle));

	while (ret == 0) {
		struct native_request r;
		size_t used = 0;

		ret = native_request_decode(s.in + s.start, s.end - s.start, &r, &used);
		if (ret == -EAGAIN) {
			ret = fill(&s);
			continue;
		}
		if (ret < 0) {
			log_warning("native %s: an unknown request: answered invalarg and closed",
				    c->peer.name);
			(void)put_code(&s, native_status(-EINVAL));
			break;
		}
		s.start += used;
		ret = handle(&s, &r);
	}
	/* After a send that timed out, no second wait to flush. */
	if (s.in && s.out)
		linger(&s, ret != -ETIMEDOUT);
	if (ret == -ENOMEM)
		log_error("native %s: no memory for the connection", c->peer.name);
	free(s.in);
	free(s.out);
}
