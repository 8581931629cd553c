/*
 * fuzz_tokens.c - the HTTP API's untrusted text: the tokens file's parser
 * (src/tokens.c) and the names of the API (src/http_list.c http_json_name,
 * src/http_server.c percent_encode / percent_decode). Input: byte 0 picks the
 * tokens file (even) or a name (odd); the rest is the file's text or the
 * name. Invariants:
 *   - token_set_parse returns 0, -EINVAL or -ENOMEM, and a set only with 0;
 *     text with a NUL byte is refused;
 *   - on 0: the set has one token per line that is neither blank nor a
 *     comment, each found by token_set_find with its own value (16 to 256
 *     bytes of the token alphabet, NUL-terminated), with the mode of its
 *     line, the defaults when it has no user=, store names that are store
 *     names, sorted, and reached; a value found is the value asked for (a
 *     token's value with its last byte changed finds another or none);
 *   - on -EINVAL: err is "line N: why" with N one of the text's lines;
 *   - percent_decode refuses exactly a '%' without two hex digits after it,
 *     and otherwise decodes to what percent_encode turns back into the same
 *     bytes;
 *   - for a name of 1 to 255 bytes without NUL or '/': http_json_name's
 *     JSON fits HTTP_JSON_NAME_MAX, has no raw control byte and no byte
 *     >= 0x80 outside valid UTF-8, and decodes to the name with each byte
 *     that is not UTF-8 replaced by U+FFFD (this file's own decoder, not
 *     the code under test); its url form is quoted unreserved bytes and
 *     uppercase %XX, and percent_decode gives the name back.
 */
#include <errno.h>

#include "fuzz_common.h"
#include "http_internal.h"
#include "tokens.h"

#define DEFAULT_UID 1000u
#define DEFAULT_GID 1001u

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static bool token_char(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       strchr("-._~+/", c) != NULL;
}

/* The next field of [*p, end) (fields are split by blanks): its start and
 * length, or NULL at the end. */
static const char *next_field(const char **p, const char *end, size_t *len)
{
	const char *f;

	while (*p < end && blank(**p))
		(*p)++;
	if (*p == end)
		return NULL;
	f = *p;
	while (*p < end && !blank(**p))
		(*p)++;
	*len = (size_t)(*p - f);
	return f;
}

static void check_token(const struct token_set *set, const char *value, size_t len,
			const char *mode, size_t mode_len)
{
	const struct token *t = token_set_find(set, value, len);
	char probe[TOKEN_LEN_MAX];

	FUZZ_CHECK(t != NULL);
	FUZZ_CHECK(t->len == len && len >= TOKEN_LEN_MIN && len <= TOKEN_LEN_MAX);
	FUZZ_CHECK(memcmp(t->value, value, len) == 0 && t->value[len] == '\0');
	for (size_t i = 0; i < len; i++)
		FUZZ_CHECK(token_char((unsigned char)value[i]));
	FUZZ_CHECK(mode != NULL && mode_len == 2 && mode[0] == 'r');
	FUZZ_CHECK(t->rw == (mode[1] == 'w'));
	if (!t->has_user)
		FUZZ_CHECK(t->uid == DEFAULT_UID && t->gid == DEFAULT_GID);
	else
		FUZZ_CHECK(t->uid != UINT32_MAX);
	for (size_t i = 0; i < t->stores.n; i++) {
		const char *s = t->stores.v[i];

		FUZZ_CHECK(store_name_check(s, strlen(s)) == 0);
		FUZZ_CHECK(i == 0 || strcmp(t->stores.v[i - 1], s) <= 0);
		FUZZ_CHECK(token_reaches(t, s));
	}
	if (t->stores.n == 0)
		FUZZ_CHECK(token_reaches(t, "any"));
	/* A value found is the value asked for: this one with its last byte
	 * changed is another token or none. */
	memcpy(probe, value, len);
	probe[len - 1] ^= 1;
	t = token_set_find(set, probe, len);
	FUZZ_CHECK(t == NULL || (t->len == len && !memcmp(t->value, probe, len)));
}

static void fuzz_parse(const char *text, size_t len)
{
	struct token_set *set = NULL;
	char err[160];
	size_t lines = 0, tokens = 0;
	int ret;

	memset(err, 'x', sizeof(err));
	ret = token_set_parse(text, len, DEFAULT_UID, DEFAULT_GID, &set, err, sizeof(err));
	FZ_LOG("token_set_parse: %d, \"%s\"\n", ret, err);
	FUZZ_CHECK(ret == 0 || ret == -EINVAL || ret == -ENOMEM);
	FUZZ_CHECK((ret == 0) == (set != NULL));
	if (memchr(text, '\0', len))
		FUZZ_CHECK(ret != 0);
	for (const char *p = text, *end = text + len; p < end; lines++) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *line_end = nl ? nl : end, *q = p, *value, *mode = NULL;
		size_t vlen = 0, mlen = 0;

		value = next_field(&q, line_end, &vlen);
		if (value && value[0] != '#') {
			mode = next_field(&q, line_end, &mlen);
			if (ret == 0)
				check_token(set, value, vlen, mode, mlen);
			tokens++;
		}
		p = nl ? nl + 1 : end;
	}
	if (ret == 0) {
		FUZZ_CHECK(token_set_count(set) == tokens);
		FUZZ_CHECK(err[0] == '\0');
		token_set_release(set);
	} else if (ret == -EINVAL) {
		unsigned long line;
		char *after;

		FUZZ_CHECK(memchr(err, '\0', sizeof(err)) != NULL);
		FUZZ_CHECK(strncmp(err, "line ", 5) == 0);
		line = strtoul(err + 5, &after, 10);
		FUZZ_CHECK(after != err + 5 && line >= 1 && line <= lines);
		FUZZ_CHECK(after[0] == ':' && after[1] == ' ' && after[2] != '\0');
	}
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Any bytes as a percent-encoded path segment or query value. */
static void fuzz_unescape(const char *in, size_t len)
{
	char *out = malloc(len + 1), *esc = malloc(3 * len + 1), *back = malloc(len + 1);
	bool valid = true;
	size_t e;
	int n;

	if (!out || !esc || !back)
		goto done;
	for (size_t i = 0; i < len; i++)
		if (in[i] == '%' &&
		    (i + 2 >= len || hexval(in[i + 1]) < 0 || hexval(in[i + 2]) < 0))
			valid = false;
	for (int plus = 0; plus < 2; plus++) {
		n = percent_decode(in, len, out, plus);
		FUZZ_CHECK(valid ? n >= 0 && (size_t)n <= len : n == -EINVAL);
		if (n < 0)
			continue;
		FUZZ_CHECK(out[n] == '\0');
		/* With plus_space, a '+' out comes from a %2B only. */
		if (plus && !memchr(in, '%', len))
			FUZZ_CHECK(!memchr(out, '+', (size_t)n));
		e = percent_encode(out, (size_t)n, esc);
		FUZZ_CHECK(e <= 3 * (size_t)n && esc[e] == '\0');
		FUZZ_CHECK(percent_decode(esc, e, back, false) == n);
		FUZZ_CHECK(memcmp(back, out, (size_t)n) == 0);
	}
done:
	free(out);
	free(esc);
	free(back);
}

/* The length of a well-formed UTF-8 sequence at s (n bytes left), or 0,
 * after the Unicode standard's table 3-7 (byte ranges, not code points:
 * an oracle that does not share the code under test's reasoning). */
static size_t utf8_ok(const unsigned char *s, size_t n)
{
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len;

	if (s[0] <= 0x7f)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		len = 2;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		len = 3;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		len = 4;
	else
		return 0;
	if (s[0] == 0xe0)
		lo = 0xa0;
	else if (s[0] == 0xed)
		hi = 0x9f;
	else if (s[0] == 0xf0)
		lo = 0x90;
	else if (s[0] == 0xf4)
		hi = 0x8f;
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (size_t i = 2; i < len; i++)
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	return len;
}

/* Decodes the JSON string json[0..n) (quotes included) into out, checking
 * that it is valid JSON text: the decoded length. */
static size_t json_decode(const char *json, size_t n, char *out)
{
	const unsigned char *s = (const unsigned char *)json;
	size_t o = 0;

	FUZZ_CHECK(n >= 2 && s[0] == '"' && s[n - 1] == '"');
	for (size_t i = 1; i < n - 1;) {
		size_t l;

		FUZZ_CHECK(s[i] >= 0x20 && s[i] != '"'); /* raw: no control byte, no quote */
		if (s[i] == '\\') {
			FUZZ_CHECK(i + 1 < n - 1);
			if (s[i + 1] == 'u') {
				int v = 0;

				FUZZ_CHECK(i + 5 < n - 1);
				for (int k = 2; k < 6; k++) {
					FUZZ_CHECK(hexval((char)s[i + k]) >= 0);
					v = v << 4 | hexval((char)s[i + k]);
				}
				/* Only the bytes JSON requires escaped (and DEL). */
				FUZZ_CHECK(v < 0x20 || v == 0x7f);
				out[o++] = (char)v;
				i += 6;
			} else {
				FUZZ_CHECK(s[i + 1] == '"' || s[i + 1] == '\\');
				out[o++] = (char)s[i + 1];
				i += 2;
			}
			continue;
		}
		l = utf8_ok(s + i, n - 1 - i);
		FUZZ_CHECK(l > 0); /* no raw byte >= 0x80 outside valid UTF-8 */
		memcpy(out + o, s + i, l);
		o += l;
		i += l;
	}
	return o;
}

static void fuzz_name(const char *name, size_t len)
{
	char *json = malloc(HTTP_JSON_NAME_MAX), want[3 * 255], got[HTTP_JSON_NAME_MAX];
	char back[HTTP_JSON_NAME_MAX];
	size_t n, w = 0, g;
	int u;

	if (!json)
		return;
	/* What the JSON must say: the name, U+FFFD for each byte not UTF-8. */
	for (size_t i = 0; i < len;) {
		size_t l = utf8_ok((const unsigned char *)name + i, len - i);

		if (l == 0) {
			memcpy(want + w, "\xef\xbf\xbd", 3);
			w += 3;
			i++;
		} else {
			memcpy(want + w, name + i, l);
			w += l;
			i += l;
		}
	}
	n = http_json_name(name, false, json);
	FZ_LOG("json: %s\n", json);
	FUZZ_CHECK(n < HTTP_JSON_NAME_MAX && strlen(json) == n);
	g = json_decode(json, n, got);
	FUZZ_CHECK(g == w && memcmp(got, want, w) == 0);

	n = http_json_name(name, true, json);
	FZ_LOG("url: %s\n", json);
	FUZZ_CHECK(n < HTTP_JSON_NAME_MAX && strlen(json) == n);
	FUZZ_CHECK(n >= 2 && json[0] == '"' && json[n - 1] == '"');
	for (size_t i = 1; i < n - 1; i++) {
		unsigned char c = (unsigned char)json[i];

		if (c == '%') {
			FUZZ_CHECK(i + 2 < n - 1 && strchr("0123456789ABCDEF", json[i + 1]) &&
				   strchr("0123456789ABCDEF", json[i + 2]));
			i += 2;
		} else {
			FUZZ_CHECK((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
				   (c >= '0' && c <= '9') || (c && strchr("-._~", c)));
		}
	}
	for (int plus = 0; plus < 2; plus++) {
		u = percent_decode(json + 1, n - 2, back, plus);
		FUZZ_CHECK(u >= 0 && (size_t)u == len && memcmp(back, name, len) == 0);
	}
	free(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *p = (const char *)data + 1;
	size_t len;

	if (size < 1)
		return 0;
	len = size - 1;
	if (!(data[0] & 1)) {
		fuzz_parse(p, len);
		return 0;
	}
	fuzz_unescape(p, len);
	if (len >= 1 && len <= 255 && !memchr(p, '\0', len) && !memchr(p, '/', len)) {
		char name[256];

		memcpy(name, p, len);
		name[len] = '\0';
		fuzz_name(name, len);
	}
	return 0;
}
