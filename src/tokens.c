/*
 * tokens.c - the tokens file (tokens.h): one token a line, "TOKEN ro|rw
 * [user=UID[:GID]] [store=NAME]...", parsed as untrusted text; lookups in
 * constant time; counted, immutable sets.
 */
#include "tokens.h"

#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "escape.h"
#include "log.h"
#include "store.h"

/* The file is small; a bigger one is a mistake, not a configuration. */
#define TOKENS_FILE_MAX (1 << 20)

struct token_set {
	struct token *v;
	size_t n;
	int refs; /* atomic */
};

static void token_free(struct token *t)
{
	free(t->value);
	strlist_free(&t->stores);
}

static void set_free(struct token_set *set)
{
	for (size_t i = 0; i < set->n; i++)
		token_free(&set->v[i]);
	free(set->v);
	free(set);
}

static bool token_char(char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

/* A store name as the stats line escapes it (\\, \n, \t, \xNN) into out
 * (room for 256 bytes): -EINVAL unless it is a store's name. */
static int unescape_name(const char *in, size_t len, char *out)
{
	int n = unescape_text(in, len, out, 256);

	return n < 0 ? n : store_name_check(out, (size_t)n);
}

/* A decimal uint32 of [p, end). */
static int parse_id(const char *p, const char *end, uint32_t *out)
{
	uint64_t v = 0;

	if (p == end)
		return -EINVAL;
	for (; p < end; p++) {
		if (*p < '0' || *p > '9')
			return -EINVAL;
		v = v * 10 + (uint64_t)(*p - '0');
		if (v >= UINT32_MAX)
			return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

/* One field after the mode: user=UID[:GID] or store=NAME. */
static int parse_field(struct token *t, const char *f, size_t len, const char **why)
{
	if (len > 5 && !memcmp(f, "user=", 5)) {
		const char *end = f + len, *colon = memchr(f + 5, ':', len - 5);

		if (t->has_user) {
			*why = "user= given twice";
			return -EINVAL;
		}
		t->has_user = true;
		t->gid = TOKEN_GID_UNSET;
		if (parse_id(f + 5, colon ? colon : end, &t->uid) < 0 ||
		    (colon && parse_id(colon + 1, end, &t->gid) < 0)) {
			*why = "user= wants UID or UID:GID (decimal)";
			return -EINVAL;
		}
		return 0;
	}
	if (len > 6 && !memcmp(f, "store=", 6)) {
		char name[256];

		if (unescape_name(f + 6, len - 6, name) < 0) {
			*why = "store= wants a store's name (escaped: \\\\, \\xNN)";
			return -EINVAL;
		}
		return strlist_add(&t->stores, name);
	}
	*why = "unknown field (user=UID[:GID], store=NAME)";
	return -EINVAL;
}

/* The fields of one line (no newline in it): 0 with *t filled, 1 for a
 * line with nothing to say, -EINVAL with *why, -ENOMEM. */
static int parse_line(const char *line, size_t len, struct token *t, const char **why)
{
	const char *p = line, *end = line + len;
	int field = 0, ret = 0;

	while (p < end && ret == 0) {
		const char *f;

		while (p < end && (*p == ' ' || *p == '\t' || *p == '\r'))
			p++;
		if (p == end)
			break;
		if (field == 0 && *p == '#')
			return 1;
		f = p;
		while (p < end && *p != ' ' && *p != '\t' && *p != '\r')
			p++;
		if (field == 0) {
			size_t n = (size_t)(p - f);

			for (size_t i = 0; i < n; i++)
				if (!token_char(f[i]))
					n = 0;
			if (n < TOKEN_LEN_MIN || n > TOKEN_LEN_MAX) {
				*why = "a token is 16 to 256 of A-Z a-z 0-9 - . _ ~ + /";
				return -EINVAL;
			}
			t->value = strndup(f, n);
			t->len = n;
			if (!t->value)
				return -ENOMEM;
		} else if (field == 1) {
			if (p - f == 2 && (!memcmp(f, "ro", 2) || !memcmp(f, "rw", 2))) {
				t->rw = f[1] == 'w';
			} else {
				*why = "the token's mode is ro or rw";
				return -EINVAL;
			}
		} else {
			ret = parse_field(t, f, (size_t)(p - f), why);
		}
		field++;
	}
	if (ret == 0 && field == 0)
		return 1;
	if (ret == 0 && field == 1) {
		*why = "the token's mode (ro or rw) is missing";
		return -EINVAL;
	}
	strlist_sort(&t->stores);
	return ret;
}

static int by_value(const void *a, const void *b)
{
	const struct token *x = *(const struct token *const *)a, *y = *(const struct token *const *)b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->value, y->value, n);

	return c ? c : (x->len > y->len) - (x->len < y->len);
}

int token_set_parse(const char *text, size_t len, uint32_t default_uid, uint32_t default_gid,
		    struct token_set **out, char *err, size_t err_size)
{
	struct token_set *set = calloc(1, sizeof(*set));
	size_t cap = 0, lineno = 0;
	const char *p = text, *end = text + len;
	int ret = set ? 0 : -ENOMEM;

	*out = NULL;
	if (err_size)
		err[0] = '\0';
	while (ret == 0 && p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
		struct token t = { .uid = default_uid, .gid = default_gid };
		const char *why = NULL;

		lineno++;
		if (memchr(p, '\0', n)) {
			ret = -EINVAL;
			why = "a NUL byte";
		} else {
			ret = parse_line(p, n, &t, &why);
		}
		p += n + (nl ? 1 : 0);
		if (ret == 1) {
			ret = 0;
			token_free(&t);
			continue;
		}
		if (ret == 0 && set->n == cap) {
			struct token *v = realloc(set->v, (cap ? 2 * cap : 8) * sizeof(*v));

			if (!v)
				ret = -ENOMEM;
			else
				set->v = v, cap = cap ? 2 * cap : 8;
		}
		if (ret < 0) {
			if (ret == -EINVAL && err_size)
				snprintf(err, err_size, "line %zu: %s", lineno, why ? why : "malformed");
			token_free(&t);
			break;
		}
		t.line = lineno;
		set->v[set->n++] = t;
	}
	if (ret == 0 && set->n > 1) {
		/* The same token twice (sorted: neighbours), O(n log n). */
		struct token **by = malloc(set->n * sizeof(*by));

		ret = by ? 0 : -ENOMEM;
		for (size_t i = 0; by && i < set->n; i++)
			by[i] = &set->v[i];
		if (by)
			qsort(by, set->n, sizeof(*by), by_value);
		for (size_t i = 1; by && i < set->n && ret == 0; i++)
			if (!by_value(&by[i - 1], &by[i])) {
				ret = -EINVAL;
				if (err_size)
					snprintf(err, err_size, "line %zu: the same token as line %zu",
						 by[i - 1]->line > by[i]->line ? by[i - 1]->line :
						 by[i]->line,
						 by[i - 1]->line < by[i]->line ? by[i - 1]->line :
						 by[i]->line);
			}
		free(by);
	}
	if (ret < 0) {
		if (set)
			set_free(set);
		return ret;
	}
	set->refs = 1;
	*out = set;
	return 0;
}

/* Reads the whole file through fd (at most TOKENS_FILE_MAX bytes). */
static int read_all(int fd, char **out, size_t *len)
{
	size_t cap = 4096, n = 0;
	char *buf = malloc(cap);
	int ret = 0;

	while (buf) {
		ssize_t got;

		if (n == cap) {
			/* One byte past the bound tells a file of exactly
			 * TOKENS_FILE_MAX bytes from a longer one. */
			char *b = cap > TOKENS_FILE_MAX ? NULL : realloc(buf, 2 * cap);

			if (!b) {
				ret = cap > TOKENS_FILE_MAX ? -EFBIG : -ENOMEM;
				goto out;
			}
			buf = b;
			cap *= 2;
		}
		got = read(fd, buf + n, cap - n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			ret = -errno;
			goto out;
		}
		if (got == 0)
			break;
		n += (size_t)got;
	}
	if (buf && n > TOKENS_FILE_MAX) {
		ret = -EFBIG;
		goto out;
	}
	if (!buf)
		return -ENOMEM;
	*out = buf;
	*len = n;
	return 0;
out:
	free(buf);
	return ret;
}

int token_set_load(const char *path, struct token_set **out)
{
	struct stat st;
	char *text = NULL, err[160];
	size_t len = 0;
	/* O_NONBLOCK: a FIFO there must not hang the start or a reload (it
	 * is refused below: not a regular file). */
	int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK), ret;

	*out = NULL;
	if (fd < 0) {
		ret = -errno;
		log_error("tokens %s: %s", path, strerror(-ret));
		return ret;
	}
	ret = fstat(fd, &st) < 0 ? -errno : 0;
	if (ret == 0 && (!S_ISREG(st.st_mode) || (st.st_mode & 077) ||
			 (st.st_uid != geteuid() && st.st_uid != 0))) {
		log_error("tokens %s: must be a regular file of the daemon's user (or root) that "
			  "no one else may read or write (mode 0600 or 0400)", path);
		ret = -EPERM;
		goto out;
	}
	if (ret == 0)
		ret = read_all(fd, &text, &len);
	if (ret < 0) {
		log_error("tokens %s: %s", path, strerror(-ret));
		goto out;
	}
	ret = token_set_parse(text, len, geteuid(), getegid(), out, err, sizeof(err));
	if (ret == -EINVAL)
		log_error("tokens %s: %s", path, err);
	else if (ret < 0)
		log_error("tokens %s: %s", path, strerror(-ret));
	for (size_t i = 0; ret == 0 && i < (*out)->n; i++) {
		struct token *t = &(*out)->v[i];

		if (t->gid == TOKEN_GID_UNSET) {
			struct passwd pw, *found = NULL;
			char buf[4096];

			t->gid = getpwuid_r(t->uid, &pw, buf, sizeof(buf), &found) == 0 && found ?
				 pw.pw_gid : t->uid;
		}
	}
out:
	free(text);
	close(fd);
	return ret;
}

const struct token *token_set_find(const struct token_set *set, const char *value, size_t len)
{
	const struct token *found = NULL;

	if (!set || len < TOKEN_LEN_MIN || len > TOKEN_LEN_MAX)
		return NULL;
	/* Every token is compared, each in time that depends only on the
	 * lengths: no early answer tells how much of a guess was right. */
	for (size_t i = 0; i < set->n; i++) {
		const struct token *t = &set->v[i];
		bool same = t->len == len && CRYPTO_memcmp(t->value, value, len) == 0;

		if (same)
			found = t;
	}
	return found;
}

size_t token_set_count(const struct token_set *set)
{
	return set ? set->n : 0;
}

bool token_reaches(const struct token *t, const char *store)
{
	return t->stores.n == 0 || strlist_has(&t->stores, store);
}

struct token_set *token_set_hold(struct token_set *set)
{
	if (set)
		__atomic_add_fetch(&set->refs, 1, __ATOMIC_RELAXED);
	return set;
}

void token_set_release(struct token_set *set)
{
	if (set && __atomic_sub_fetch(&set->refs, 1, __ATOMIC_ACQ_REL) == 0)
		set_free(set);
}
