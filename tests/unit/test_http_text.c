/*
 * test_http_text.c - the text of the HTTP API's names (http_internal.h):
 * http_json_name (JSON strings: quotes and backslashes escaped, control
 * bytes as \u00XX, valid UTF-8 kept, every byte that is not valid UTF-8
 * replaced by U+FFFD; url=true: percent-encoded in quotes; the length
 * returned; the worst case fits HTTP_JSON_NAME_MAX), percent_encode and
 * percent_decode (every byte value round-trips; malformed escapes refused;
 * '+' as a space only when asked).
 *
 * Fixture: testutil.h (the fixture library).
 */
#include "http_internal.h"
#include "testutil.h"

#define FFFD "\xef\xbf\xbd"

/* out is exactly HTTP_JSON_NAME_MAX bytes on the heap: ASan sees a byte
 * written past the bound the header promises. */
static void check_json(const char *name, bool url, const char *want)
{
	char *out = tu_xmalloc(HTTP_JSON_NAME_MAX);
	size_t n = http_json_name(name, url, out);

	if (!CHECK_EQ(n, strlen(want)) || !CHECK(!strcmp(out, want)))
		fprintf(stderr, "  http_json_name(\"%s\", %d) gave [%s] (%zu), want [%s]\n", name,
			url, out, n, want);
	free(out);
}

static void test_json(void)
{
	TU_TEST("json: ASCII, quotes, backslashes, control bytes");
	check_json("plain", false, "\"plain\"");
	check_json("a b~!#$%&'()*+,-./:;<=>?@[]^_`{|}", false,
		   "\"a b~!#$%&'()*+,-./:;<=>?@[]^_`{|}\"");
	check_json("say \"hi\"", false, "\"say \\\"hi\\\"\"");
	check_json("x\\y\\", false, "\"x\\\\y\\\\\"");
	check_json("\x01\x1f", false, "\"\\u0001\\u001f\"");
	check_json("a\tb\nc\rd", false, "\"a\\u0009b\\u000ac\\u000dd\"");
	check_json("\x7f", false, "\"\\u007f\"");
	check_json("\x1b[31m", false, "\"\\u001b[31m\"");
	check_json(" ", false, "\" \"");

	TU_TEST("json: valid UTF-8 kept");
	check_json("caf\xc3\xa9", false, "\"caf\xc3\xa9\"");                   /* U+00E9 */
	check_json("\xc2\x80", false, "\"\xc2\x80\"");                         /* U+0080 */
	check_json("\xdf\xbf", false, "\"\xdf\xbf\"");                         /* U+07FF */
	check_json("\xe0\xa0\x80", false, "\"\xe0\xa0\x80\"");                 /* U+0800 */
	check_json("\xe2\x82\xac", false, "\"\xe2\x82\xac\"");                 /* U+20AC */
	check_json("\xed\x9f\xbf", false, "\"\xed\x9f\xbf\"");                 /* U+D7FF */
	check_json("\xee\x80\x80", false, "\"\xee\x80\x80\"");                 /* U+E000 */
	check_json("\xef\xbf\xbd", false, "\"\xef\xbf\xbd\"");                 /* U+FFFD */
	check_json("\xf0\x90\x80\x80", false, "\"\xf0\x90\x80\x80\"");         /* U+10000 */
	check_json("\xf0\x9d\x84\x9e", false, "\"\xf0\x9d\x84\x9e\"");         /* U+1D11E */
	check_json("\xf4\x8f\xbf\xbf", false, "\"\xf4\x8f\xbf\xbf\"");         /* U+10FFFF */

	TU_TEST("json: each byte that is not UTF-8 becomes U+FFFD");
	check_json("a\xff" "b", false, "\"a" FFFD "b\"");
	check_json("\xfe", false, "\"" FFFD "\"");
	check_json("\x80", false, "\"" FFFD "\"");                 /* a lone continuation */
	check_json("a\xbf" "b", false, "\"a" FFFD "b\"");
	check_json("\xc0\x80", false, "\"" FFFD FFFD "\"");        /* overlong NUL */
	check_json("\xc1\xbf", false, "\"" FFFD FFFD "\"");        /* overlong 2 bytes */
	check_json("\xe0\x80\x80", false, "\"" FFFD FFFD FFFD "\""); /* overlong 3 */
	check_json("\xe0\x9f\xbf", false, "\"" FFFD FFFD FFFD "\"");
	check_json("\xf0\x80\x80\x80", false, "\"" FFFD FFFD FFFD FFFD "\""); /* overlong 4 */
	check_json("\xf0\x8f\xbf\xbf", false, "\"" FFFD FFFD FFFD FFFD "\"");
	check_json("\xed\xa0\x80", false, "\"" FFFD FFFD FFFD "\"");  /* U+D800, a surrogate */
	check_json("\xed\xbf\xbf", false, "\"" FFFD FFFD FFFD "\"");  /* U+DFFF */
	check_json("\xf4\x90\x80\x80", false, "\"" FFFD FFFD FFFD FFFD "\""); /* > U+10FFFF */
	check_json("\xf5\x80\x80\x80", false, "\"" FFFD FFFD FFFD FFFD "\"");
	/* Cut short: at the end, and before an ASCII byte. */
	check_json("a\xe2\x82", false, "\"a" FFFD FFFD "\"");
	check_json("\xf0\x9d\x84", false, "\"" FFFD FFFD FFFD "\"");
	check_json("\xc3", false, "\"" FFFD "\"");
	check_json("\xe2\x82" "A", false, "\"" FFFD FFFD "A\"");
	check_json("\xc3\"", false, "\"" FFFD "\\\"\"");
	/* A valid sequence right after an invalid byte is kept. */
	check_json("\xff\xc3\xa9", false, "\"" FFFD "\xc3\xa9\"");

	TU_TEST("json: url=true percent-encodes, in quotes");
	check_json("plain-name_1.2~", true, "\"plain-name_1.2~\"");
	check_json("a b/c", true, "\"a%20b%2Fc\"");
	check_json("caf\xc3\xa9", true, "\"caf%C3%A9\"");
	check_json("\"\\%+", true, "\"%22%5C%25%2B\"");
	check_json("\x01\x7f\xff", true, "\"%01%7F%FF\"");
	check_json("AZaz09", true, "\"AZaz09\"");

	TU_TEST("json: the worst cases fit HTTP_JSON_NAME_MAX");
	{
		static const char worst[] = { '\x01', '"', '\xff', '\x7f', '\x80' };
		char name[256], *out = tu_xmalloc(HTTP_JSON_NAME_MAX);
		size_t n;

		for (size_t w = 0; w < sizeof(worst); w++) {
			memset(name, worst[w], 255);
			name[255] = '\0';
			n = http_json_name(name, false, out);
			CHECK_EQ(n, strlen(out));
			CHECK(n < HTTP_JSON_NAME_MAX);
			n = http_json_name(name, true, out);
			CHECK_EQ(n, strlen(out));
			CHECK_EQ(n, 3 * 255 + 2);
		}
		/* 255 control bytes: the bound itself (\u00XX each, quotes, NUL). */
		memset(name, '\x01', 255);
		n = http_json_name(name, false, out);
		CHECK_EQ(n + 1, HTTP_JSON_NAME_MAX);
		free(out);
	}
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static void check_unescape(const char *in, bool plus_space, int want_len, const char *want)
{
	char out[64];
	int n;

	memset(out, 'Z', sizeof(out));
	n = percent_decode(in, strlen(in), out, plus_space);
	if (!CHECK_EQ(n, want_len))
		fprintf(stderr, "  percent_decode(\"%s\", %d) gave %d, want %d\n", in, plus_space, n,
			want_len);
	else if (n >= 0)
		CHECK(!memcmp(out, want, (size_t)n + 1)); /* NUL-terminated */
}

static void test_escape(void)
{
	char all[256], esc[3 * 256 + 1], back[256 + 1];
	size_t n;
	int m;

	TU_TEST("escape: every byte value round-trips");
	for (int i = 0; i < 256; i++)
		all[i] = (char)i;
	n = percent_encode(all, sizeof(all), esc);
	CHECK_EQ(n, strlen(esc));
	/* 66 unreserved bytes as they are, the other 190 as %XX. */
	CHECK_EQ(n, 66 + 3 * 190);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)esc[i];

		if (c == '%') {
			/* Uppercase hex. */
			CHECK(i + 2 < n && strchr("0123456789ABCDEF", esc[i + 1]) &&
			      strchr("0123456789ABCDEF", esc[i + 2]));
			i += 2;
		} else if (!CHECK(unreserved(c))) {
			break;
		}
	}
	for (int plus = 0; plus < 2; plus++) {
		memset(back, 'Z', sizeof(back));
		m = percent_decode(esc, n, back, plus);
		CHECK_EQ(m, 256);
		CHECK_MEM(back, all, 256);
		CHECK_EQ(back[256], '\0');
	}
	/* Each byte alone, too: its escaped form is exactly what it should be. */
	for (int i = 0; i < 256; i++) {
		char one = (char)i, e[4], want[4], b[2];

		if (unreserved((unsigned char)i))
			snprintf(want, sizeof(want), "%c", i);
		else
			snprintf(want, sizeof(want), "%%%02X", i);
		n = percent_encode(&one, 1, e);
		if (!CHECK(n == strlen(want) && !strcmp(e, want)))
			break;
		m = percent_decode(e, n, b, false);
		if (!CHECK(m == 1 && b[0] == one && b[1] == '\0'))
			break;
	}
	CHECK_EQ(percent_encode("", 0, esc), 0);
	CHECK_EQ(esc[0], '\0');

	TU_TEST("unescape: malformed escapes refused");
	check_unescape("%", false, -EINVAL, NULL);
	check_unescape("%4", false, -EINVAL, NULL);
	check_unescape("%zz", false, -EINVAL, NULL);
	check_unescape("abc%", false, -EINVAL, NULL);
	check_unescape("abc%4", true, -EINVAL, NULL);
	check_unescape("%4g", false, -EINVAL, NULL);
	check_unescape("%g4", false, -EINVAL, NULL);
	check_unescape("%%41", false, -EINVAL, NULL);
	check_unescape("a%-1b", false, -EINVAL, NULL);
	check_unescape("%41%", false, -EINVAL, NULL);

	TU_TEST("unescape: hex of either case, '+' as asked");
	check_unescape("", false, 0, "");
	check_unescape("plain", false, 5, "plain");
	check_unescape("%41%7e%7E", false, 3, "A~~");
	check_unescape("%c3%A9", false, 2, "\xc3\xa9");
	check_unescape("a+b", false, 3, "a+b");
	check_unescape("a+b", true, 3, "a b");
	check_unescape("%2B+%2b", true, 3, "+ +");
	check_unescape("%20", false, 1, " ");
	check_unescape("a%00b", false, 3, "a\0b"); /* the caller checks for NUL */
	/* Only len bytes are read: a '%' past them does not count. */
	{
		char out[8];

		CHECK_EQ(percent_decode("ab%", 2, out, false), 2);
		CHECK(!strcmp(out, "ab"));
		CHECK_EQ(percent_decode("%41%", 3, out, false), 1);
		CHECK(!strcmp(out, "A"));
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	tu_init(argv[0]);
	test_json();
	test_escape();
	return tu_finish();
}
