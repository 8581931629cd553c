/*
 * test_text.c - the line-oriented text blobfs writes: escape_text (every
 * control byte escaped, truncation as snprintf) and its inverse
 * unescape_text (every byte round-trips; bad escapes and overflow refused),
 * log lines (log.c: a name
 * with a newline stays on one line, on stderr; levels), and the store
 * statistics' format (store_stats_format, store_stats_format_total: the
 * exact lines, escaping of the name, the length contract).
 *
 * Fixture: testutil.h (the fixture library).
 */
#include <errno.h>
#include <string.h>

#include "escape.h"
#include "log.h"
#include "store.h"
#include "testutil.h"

static void check_escape(const char *in, size_t len, unsigned flags, const char *want)
{
	char out[256];
	size_t n = escape_text(in, len, out, sizeof(out), flags);

	if (!CHECK_EQ(n, strlen(want)) || !CHECK(!strcmp(out, want)))
		fprintf(stderr, "  escape_text gave \"%s\", want \"%s\"\n", out, want);
}

static void test_escape(void)
{
	char all[256], out[8];

	TU_TEST("escape_text");
	check_escape("plain name", 10, 0, "plain name");
	check_escape("plain name", 10, ESCAPE_SPACE, "plain\\x20name");
	check_escape("a\nb", 3, 0, "a\\nb");
	check_escape("a\tb\rc", 5, 0, "a\\tb\\x0dc");
	check_escape("back\\slash", 10, 0, "back\\\\slash");
	check_escape("\x01\x1f\x7f", 3, 0, "\\x01\\x1f\\x7f");
	check_escape("caf\xc3\xa9 \xff", 7, 0, "caf\xc3\xa9 \xff");
	check_escape("", 0, 0, "");
	/* No control byte survives. */
	for (int i = 0; i < 256; i++)
		all[i] = (char)(i + 1);
	{
		char big[1100];
		size_t n = escape_text(all, 255, big, sizeof(big), ESCAPE_SPACE);
		CHECK(n < sizeof(big));
		for (size_t i = 0; i < n; i++)
			CHECK((unsigned char)big[i] >= 0x20 && big[i] != 0x7f && big[i] != ' ');
	}
	/* Truncation: the full length, a NUL-terminated prefix. */
	CHECK_EQ(escape_text("a\nbcdef", 7, out, sizeof(out), 0), 8);
	CHECK(!strcmp(out, "a\\nbcde"));
	CHECK_EQ(escape_text("a\nb", 3, NULL, 0, 0), 4);
}

static void log_some_lines(void *arg)
{
	(void)arg;
	log_error("store %s: cannot do it: %s", "a\nb", "Input/output error");
	log_warning("store %s: tab and bell", "t\tx\a");
	log_info("store %s created", "back\\slash \xc3\xa9");
	log_debug("not shown at the info level");
	log_set_level(LOG_LEVEL_DEBUG);
	log_debug("shown at %s", "debug");
	log_set_level(LOG_LEVEL_INFO);
}

static void test_log_lines(void)
{
	char *text;

	TU_TEST("log lines: control characters escaped, one line per message");
	text = tu_capture_stderr(log_some_lines, NULL);
	if (!CHECK(!strcmp(text, "blobfs: error: store a\\nb: cannot do it: Input/output error\n"
				 "blobfs: warning: store t\\tx\\x07: tab and bell\n"
				 "blobfs: info: store back\\\\slash \xc3\xa9 created\n"
				 "blobfs: debug: shown at debug\n")))
		fprintf(stderr, "  log output:\n%s", text);
	free(text);
}

static void log_long_line(void *arg)
{
	(void)arg;
	char name[3000];

	memset(name, '\n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	log_error("store %s: long", name);
}

static void test_log_long_line(void)
{
	char *text;
	size_t newlines = 0;

	TU_TEST("log lines: a cut message is still one line");
	text = tu_capture_stderr(log_long_line, NULL);
	for (char *p = text; *p; p++)
		newlines += *p == '\n';
	CHECK_EQ(newlines, 1);
	CHECK(strlen(text) > 1000 && text[strlen(text) - 1] == '\n');
	free(text);
}

static void test_stats_format(void)
{
	struct store_stats st = { .blobs = 3, .bytes = 12345, .packs = 2, .dead_bytes = 77 };
	struct store_stats sum = { 0 };
	char line[STORE_STATS_LINE_MAX], name[256], small[10];
	size_t n;

	TU_TEST("store statistics: the text form");
	n = store_stats_format("photos", &st, line, sizeof(line));
	CHECK(!strcmp(line, "store=photos blobs=3 bytes=12345 packs=2 dead_bytes=77\n"));
	CHECK_EQ(n, strlen(line));
	n = store_stats_format("a b\nc\\d=e", &st, line, sizeof(line));
	CHECK(!strcmp(line, "store=a\\x20b\\nc\\\\d=e blobs=3 bytes=12345 packs=2 dead_bytes=77\n"));
	CHECK_EQ(n, strlen(line));
	/* The longest name (255 bytes, all escaped) fits the maximum line, with
	 * the largest figures. */
	memset(name, '\x01', 255);
	name[255] = '\0';
	st = (struct store_stats){ UINT64_MAX, UINT64_MAX, UINT64_MAX, UINT64_MAX };
	n = store_stats_format(name, &st, line, sizeof(line));
	CHECK(n < sizeof(line));
	CHECK_EQ(n, strlen(line));
	/* Too small a buffer: the full length, a NUL-terminated prefix. */
	st = (struct store_stats){ 3, 12345, 2, 77 };
	n = store_stats_format("photos", &st, small, sizeof(small));
	CHECK_EQ(n, strlen("store=photos blobs=3 bytes=12345 packs=2 dead_bytes=77\n"));
	CHECK(!strcmp(small, "store=pho"));
	CHECK_EQ(store_stats_format("photos", &st, NULL, 0), n);
	/* Totals. */
	store_stats_add(&sum, &st);
	store_stats_add(&sum, &st);
	n = store_stats_format_total(2, &sum, line, sizeof(line));
	CHECK(!strcmp(line, "stores=2 blobs=6 bytes=24690 packs=4 dead_bytes=154\n"));
	CHECK_EQ(n, strlen(line));
}

static void test_unescape(void)
{
	char in[256], text[4 * 256 + 1], back[257];
	int n;

	TU_TEST("unescape_text");
	for (int i = 0; i < 256; i++)
		in[i] = (char)i;
	for (unsigned flags = 0; flags <= ESCAPE_SPACE; flags += ESCAPE_SPACE) {
		size_t len = escape_text(in, 256, text, sizeof(text), flags);

		n = unescape_text(text, len, back, sizeof(back));
		CHECK_EQ(n, 256);
		CHECK(n == 256 && !memcmp(back, in, 256));
	}
	n = unescape_text("a\\\\b\\x2F\\x2f\\n\\t", 16, back, sizeof(back));
	CHECK_EQ(n, 7);
	CHECK(!memcmp(back, "a\\b//\n\t", 8));
	for (const char *bad = "\\q\0\\\0\\x\0\\x4\0\\xg0\0\\\0"; *bad; bad += strlen(bad) + 1)
		CHECK_EQ(unescape_text(bad, strlen(bad), back, sizeof(back)), -EINVAL);
	CHECK_EQ(unescape_text("abc", 3, back, 4), 3);
	CHECK_EQ(unescape_text("abcd", 4, back, 4), -EINVAL); /* no room for the NUL */
	CHECK_EQ(unescape_text("", 0, back, 0), -EINVAL);
}

int main(int argc, char **argv)
{
	(void)argc;
	tu_init(argv[0]);
	test_escape();
	test_unescape();
	test_log_lines();
	test_log_long_line();
	test_stats_format();
	return tu_finish();
}
