/*
 * test_tokens.c - the HTTP API's tokens file (tokens.c, docs/FORMAT.md "The
 * tokens file"): token_set_parse on good files (comments, blank lines, CRLF,
 * tabs, ro/rw, user=UID[:GID], several store= with escaped names) and the
 * defaults it fills in; every malformed line refused with -EINVAL and an
 * error naming its line; token_set_find (exact matches only, lengths out of
 * range); token_reaches; the reference counts; token_set_load's checks of
 * the file (mode, owner, symlink, missing, size) and the gid it resolves.
 *
 * Fixture: testutil.h (the fixture library).
 */
#include <pwd.h>

#include "log.h"
#include "testutil.h"
#include "tokens.h"

/* Tokens of the lengths the format allows, used throughout. */
#define TOK_A "AAAAAAAAAAAAAAAA"       /* 16: the shortest */
#define TOK_B "b-._~+/0123456789Zz"    /* every kind of character */
#define TOK_C "cccccccccccccccccccc"

static struct token_set *parse_ok(const char *text, uint32_t uid, uint32_t gid)
{
	struct token_set *set = NULL;
	char err[160] = "untouched";
	int ret = token_set_parse(text, strlen(text), uid, gid, &set, err, sizeof(err));

	if (!CHECK_EQ(ret, 0) || !CHECK(set != NULL))
		fprintf(stderr, "  parse of \"%s\" failed: %s\n", text, err);
	else
		CHECK_EQ(err[0], '\0'); /* no error text on success */
	return set;
}

/* Parses len bytes of text, which must be refused on line `line`. */
static void parse_bad_len(const char *text, size_t len, unsigned line)
{
	struct token_set *set = (struct token_set *)&set; /* must become NULL */
	char err[160] = "", want[32];
	int ret = token_set_parse(text, len, 1000, 1000, &set, err, sizeof(err));

	snprintf(want, sizeof(want), "line %u: ", line);
	if (!CHECK_EQ(ret, -EINVAL) || !CHECK(set == NULL) ||
	    !CHECK(!strncmp(err, want, strlen(want)) && strlen(err) > strlen(want)))
		fprintf(stderr, "  \"%.*s\": ret %d, err \"%s\", want \"%s...\"\n", (int)len, text,
			ret, err, want);
	if (ret == 0)
		token_set_release(set);
}

static void parse_bad(const char *text, unsigned line)
{
	parse_bad_len(text, strlen(text), line);
}

static void test_parse_good(void)
{
	static const char file[] =
		"# blobfs tokens\n"
		"\n"
		"   \t\n"
		"  # an indented comment\r\n"
		TOK_A " ro\r\n"
		"\t" TOK_B "\trw\tuser=1234 \t store=z store=a\\x20b  store=x\\\\y\r\n"
		TOK_C " rw user=5:6 store=tab\\there store=nl\\nx\n"
		"# the last line has no newline\n"
		"dddddddddddddddddddd ro user=7";
	struct token_set *set;
	const struct token *t;

	TU_TEST("parse: a good file");
	set = parse_ok(file, 1000, 1001);
	if (!set)
		return;
	CHECK_EQ(token_set_count(set), 4);

	t = token_set_find(set, TOK_A, strlen(TOK_A));
	if (CHECK(t != NULL)) {
		/* Defaults: the uid and gid given, every store. */
		CHECK(!t->rw && !t->has_user);
		CHECK_EQ(t->uid, 1000);
		CHECK_EQ(t->gid, 1001);
		CHECK_EQ(t->len, 16);
		CHECK_EQ(t->stores.n, 0);
	}
	t = token_set_find(set, TOK_B, strlen(TOK_B));
	if (CHECK(t != NULL)) {
		/* user=UID alone: the gid is resolved later (token_set_load). */
		CHECK(t->rw && t->has_user);
		CHECK_EQ(t->uid, 1234);
		CHECK_EQ(t->gid, TOKEN_GID_UNSET);
		/* Unescaped and sorted in byte order. */
		if (CHECK_EQ(t->stores.n, 3)) {
			CHECK(!strcmp(t->stores.v[0], "a b"));
			CHECK(!strcmp(t->stores.v[1], "x\\y"));
			CHECK(!strcmp(t->stores.v[2], "z"));
		}
	}
	t = token_set_find(set, TOK_C, strlen(TOK_C));
	if (CHECK(t != NULL)) {
		CHECK(t->rw && t->has_user);
		CHECK_EQ(t->uid, 5);
		CHECK_EQ(t->gid, 6);
		if (CHECK_EQ(t->stores.n, 2)) {
			CHECK(!strcmp(t->stores.v[0], "nl\nx"));
			CHECK(!strcmp(t->stores.v[1], "tab\there"));
		}
	}
	t = token_set_find(set, "dddddddddddddddddddd", 20);
	if (CHECK(t != NULL)) {
		CHECK(!t->rw);
		CHECK_EQ(t->uid, 7);
		CHECK_EQ(t->gid, TOKEN_GID_UNSET);
	}
	token_set_release(set);

	TU_TEST("parse: edge values");
	{
		char line[400];
		const struct token *t2;

		/* The longest token, the largest ids (UINT32_MAX is TOKEN_GID_UNSET). */
		memset(line, 'L', 256);
		snprintf(line + 256, sizeof(line) - 256,
			 " rw user=4294967294:4294967294 store=\\x41\\x7e\\x7E\n");
		set = parse_ok(line, 0, 0);
		if (set) {
			t2 = token_set_find(set, line, 256);
			if (CHECK(t2 != NULL)) {
				CHECK_EQ(t2->len, 256);
				CHECK_EQ(t2->uid, 4294967294u);
				CHECK_EQ(t2->gid, 4294967294u);
				CHECK(t2->stores.n == 1 && !strcmp(t2->stores.v[0], "A~~"));
			}
			token_set_release(set);
		}
		/* Leading zeros, a 255-byte store name. */
		snprintf(line, sizeof(line), TOK_A " ro user=007:000 store=");
		memset(line + strlen(line), 'n', 255);
		line[strlen(TOK_A " ro user=007:000 store=") + 255] = '\0';
		set = parse_ok(line, 0, 0);
		if (set) {
			t2 = token_set_find(set, TOK_A, 16);
			if (CHECK(t2 != NULL)) {
				CHECK(t2->uid == 7 && t2->gid == 0);
				CHECK(t2->stores.n == 1 && strlen(t2->stores.v[0]) == 255);
			}
			token_set_release(set);
		}
	}

	TU_TEST("parse: empty files");
	{
		static const char *const empty[] = { "", "\n", "\n\n\r\n", "# only\n# comments",
						     "   ", "\t\r" };

		for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
			set = parse_ok(empty[i], 0, 0);
			if (set) {
				CHECK_EQ(token_set_count(set), 0);
				CHECK(token_set_find(set, TOK_A, 16) == NULL);
				token_set_release(set);
			}
		}
	}
}

static void test_parse_bad(void)
{
	char line[600];

	TU_TEST("parse: the token");
	parse_bad("AAAAAAAAAAAAAAA ro\n", 1); /* 15 */
	memset(line, 'L', 257);
	strcpy(line + 257, " ro\n");
	parse_bad(line, 1);
	parse_bad("AAAAAAAAAAAAAAAA= ro\n", 1); /* '=' is not allowed */
	parse_bad("AAAAAAAAAA,AAAAAAA ro\n", 1);
	parse_bad("AAAAAAAAAAAAAAAA\xc3\xa9 ro\n", 1);
	parse_bad("AAAAAAAAAA\x01" "AAAAAA ro\n", 1);
	parse_bad("AAAAAAAAAA\vAAAAAA ro\n", 1);

	TU_TEST("parse: the mode");
	parse_bad(TOK_A "\n", 1);
	parse_bad(TOK_A "  \r\n", 1);
	parse_bad("# c\n\n" TOK_A, 3);
	parse_bad(TOK_A " RW\n", 1);
	parse_bad(TOK_A " r\n", 1);
	parse_bad(TOK_A " rwx\n", 1);
	parse_bad(TOK_A " wr\n", 1);
	parse_bad(TOK_A " # a comment is not a mode\n", 1);
	parse_bad(TOK_A " user=5 ro\n", 1);

	TU_TEST("parse: the fields");
	parse_bad(TOK_A " ro owner=5\n", 1);
	parse_bad(TOK_A " ro user\n", 1);
	parse_bad(TOK_A " ro user=\n", 1);
	parse_bad(TOK_A " ro USER=5\n", 1);
	parse_bad(TOK_A " ro user=5 user=5\n", 1);
	parse_bad(TOK_A " ro user=5:6 user=7\n", 1);
	parse_bad(TOK_A " ro user=-1\n", 1);
	parse_bad(TOK_A " ro user=+1\n", 1);
	parse_bad(TOK_A " ro user=1x\n", 1);
	parse_bad(TOK_A " ro user=0x10\n", 1);
	parse_bad(TOK_A " ro user=5:\n", 1);
	parse_bad(TOK_A " ro user=:5\n", 1);
	parse_bad(TOK_A " ro user=5:6:7\n", 1);
	parse_bad(TOK_A " ro user=4294967295\n", 1);   /* UINT32_MAX: reserved */
	parse_bad(TOK_A " ro user=4294967296\n", 1);   /* overflow */
	parse_bad(TOK_A " ro user=5:4294967295\n", 1); /* would read as "unset" */
	parse_bad(TOK_A " ro user=99999999999999999999999\n", 1);

	TU_TEST("parse: store names");
	parse_bad(TOK_A " ro store=\n", 1);
	parse_bad(TOK_A " ro store=.x\n", 1);
	parse_bad(TOK_A " ro store=.\n", 1);
	parse_bad(TOK_A " ro store=a/b\n", 1);
	parse_bad(TOK_A " ro store=a\\x2fb\n", 1);
	parse_bad(TOK_A " ro store=\\x2ex\n", 1);
	parse_bad(TOK_A " ro store=a\\x00b\n", 1);
	parse_bad(TOK_A " ro store=a\\\n", 1);     /* a lone backslash at the end */
	parse_bad(TOK_A " ro store=a\\q\n", 1);    /* an unknown escape */
	parse_bad(TOK_A " ro store=a\\x4\n", 1);   /* \x cut short */
	parse_bad(TOK_A " ro store=a\\x\n", 1);
	parse_bad(TOK_A " ro store=a\\xg0\n", 1);
	parse_bad(TOK_A " ro store=a\\x0g\n", 1);
	parse_bad(TOK_A " ro store=ok store=a/b\n", 1);
	snprintf(line, sizeof(line), TOK_A " ro store=");
	memset(line + strlen(line), 'n', 256); /* one byte too long */
	line[strlen(TOK_A " ro store=") + 256] = '\0';
	parse_bad(line, 1);

	TU_TEST("parse: NUL bytes and duplicates");
	parse_bad_len(TOK_A " ro\n" TOK_C " ro\0\n", strlen(TOK_A " ro\n" TOK_C " ro") + 2, 2);
	parse_bad_len("\0", 1, 1);
	parse_bad_len("# a comment \0 still counts\n", 27, 1);
	parse_bad(TOK_A " ro\n" TOK_A " rw\n", 2);
	parse_bad(TOK_A " ro\n" TOK_C " ro\n\n# x\n" TOK_C " ro user=1\n", 5);

	TU_TEST("parse: the first bad line is the one named");
	parse_bad(TOK_A " ro\n" TOK_C " ro\nbad\nworse ro\n", 3);

	TU_TEST("parse: err may be absent or small");
	{
		struct token_set *set = NULL;
		char small[8];

		CHECK_EQ(token_set_parse("x", 1, 0, 0, &set, NULL, 0), -EINVAL);
		CHECK(set == NULL);
		memset(small, 'x', sizeof(small));
		CHECK_EQ(token_set_parse("x", 1, 0, 0, &set, small, sizeof(small)), -EINVAL);
		CHECK(!strcmp(small, "line 1:")); /* cut as snprintf cuts */
		CHECK_EQ(token_set_parse(TOK_A " ro", 19, 0, 0, &set, NULL, 0), 0);
		CHECK_EQ(token_set_count(set), 1);
		token_set_release(set);
	}
}

static void test_find(void)
{
	struct token_set *set;
	char buf[300];

	TU_TEST("find: exact matches only");
	set = parse_ok(TOK_A "B ro\n" TOK_C " rw\n", 0, 0);
	if (!set)
		return;
	CHECK(token_set_find(set, TOK_A "B", 17) != NULL);
	CHECK(token_set_find(set, TOK_A, 16) == NULL);          /* a prefix */
	CHECK(token_set_find(set, TOK_A "BC", 18) == NULL);     /* longer */
	CHECK(token_set_find(set, TOK_A "C", 17) == NULL);      /* the last byte differs */
	CHECK(token_set_find(set, "B" TOK_A, 17) == NULL);      /* the first */
	CHECK(token_set_find(set, "aaaaaaaaaaaaaaaaB", 17) == NULL); /* case matters */
	/* Only len bytes count: the value need not be NUL-terminated. */
	memcpy(buf, TOK_C "garbage", 27);
	CHECK(token_set_find(set, buf, 20) != NULL);
	CHECK(token_set_find(set, buf, 19) == NULL);            /* shorter */
	CHECK(token_set_find(set, buf, 21) == NULL);

	TU_TEST("find: lengths out of range, no set");
	CHECK(token_set_find(set, NULL, 0) == NULL);
	CHECK(token_set_find(set, buf, 15) == NULL);
	memset(buf, 'c', sizeof(buf));
	CHECK(token_set_find(set, buf, 257) == NULL);
	CHECK(token_set_find(set, buf, sizeof(buf)) == NULL);
	CHECK(token_set_find(NULL, TOK_C, 20) == NULL);
	CHECK_EQ(token_set_count(NULL), 0);
	token_set_release(set);
}

static void test_reaches(void)
{
	struct token_set *set;
	const struct token *all, *some;

	TU_TEST("reaches: every store, or only those named");
	set = parse_ok(TOK_A " ro\n" TOK_C " rw store=b store=a\\x20b store=d\n", 0, 0);
	if (!set)
		return;
	all = token_set_find(set, TOK_A, 16);
	some = token_set_find(set, TOK_C, 20);
	if (CHECK(all != NULL && some != NULL)) {
		CHECK(token_reaches(all, "anything"));
		CHECK(token_reaches(all, "a b"));
		CHECK(token_reaches(some, "b"));
		CHECK(token_reaches(some, "a b"));
		CHECK(token_reaches(some, "d"));
		CHECK(!token_reaches(some, "a"));
		CHECK(!token_reaches(some, "c"));
		CHECK(!token_reaches(some, "a\\x20b")); /* the unescaped name, not the text */
		CHECK(!token_reaches(some, "bb"));
		CHECK(!token_reaches(some, ""));
	}
	token_set_release(set);
}

static void test_refs(void)
{
	struct token_set *set;

	TU_TEST("hold and release");
	set = parse_ok(TOK_A " ro store=s\n", 0, 0);
	if (!set)
		return;
	CHECK(token_set_hold(set) == set);
	CHECK(token_set_hold(set) == set);
	token_set_release(set);
	token_set_release(set);
	/* Still held once: usable. */
	CHECK(token_set_find(set, TOK_A, 16) != NULL);
	token_set_release(set); /* the last: freed (ASan reports a leak otherwise) */
	CHECK(token_set_hold(NULL) == NULL);
	token_set_release(NULL);
}

/* A file in the test's temporary directory with len bytes of text (len 0:
 * strlen) and mode: its path. */
static void make_file(char *path, size_t size, const char *text, size_t len, mode_t mode)
{
	int fd;

	if (len == 0)
		len = strlen(text);
	tu_path(path, size, "%s/tokens-XXXXXX", tu_tmpdir());
	fd = mkstemp(path);
	REQUIRE(fd >= 0);
	REQUIRE(write(fd, text, len) == (ssize_t)len);
	REQUIRE(fchmod(fd, mode) == 0);
	close(fd);
}

struct load_call {
	const char *path;
	struct token_set *set;
	int ret;
};

static void load_fn(void *arg)
{
	struct load_call *c = arg;

	c->ret = token_set_load(c->path, &c->set);
}

/* token_set_load with its log captured: the return, and the log in *log. */
static int load(const char *path, struct token_set **out, char **log)
{
	struct load_call c = { .path = path };

	*log = tu_capture_stderr(load_fn, &c);
	*out = c.set;
	return c.ret;
}

static void test_load(void)
{
	char path[PATH_MAX], link[PATH_MAX + 8], *log;
	struct token_set *set;
	const struct token *t;
	int ret;

	TU_TEST("load: mode 0600 and 0400");
	make_file(path, sizeof(path), TOK_A " rw user=0\n" TOK_C " ro\n", 0, 0600);
	ret = load(path, &set, &log);
	if (CHECK_EQ(ret, 0) && CHECK(set != NULL)) {
		CHECK_EQ(log[0], '\0');
		CHECK_EQ(token_set_count(set), 2);
		/* user=0 without a gid: root's primary group from passwd. */
		t = token_set_find(set, TOK_A, 16);
		if (CHECK(t != NULL))
			CHECK(t->uid == 0 && t->gid == 0);
		/* No user=: the daemon's own. */
		t = token_set_find(set, TOK_C, 20);
		if (CHECK(t != NULL))
			CHECK(t->uid == geteuid() && t->gid == getegid());
		token_set_release(set);
	}
	free(log);
	CHECK_EQ(chmod(path, 0400), 0);
	ret = load(path, &set, &log);
	CHECK_EQ(ret, 0);
	token_set_release(set);
	free(log);

	TU_TEST("load: a gid resolved from passwd, or the uid");
	{
		/* A uid without a passwd entry keeps itself as gid. */
		uint32_t lonely = 3999999999u;
		char text[128];

		REQUIRE(getpwuid(lonely) == NULL);
		snprintf(text, sizeof(text), TOK_A " ro user=%u\n" TOK_C " ro user=0:77\n", lonely);
		make_file(path, sizeof(path), text, strlen(text), 0600);
		ret = load(path, &set, &log);
		if (CHECK_EQ(ret, 0)) {
			t = token_set_find(set, TOK_A, 16);
			if (CHECK(t != NULL))
				CHECK(t->uid == lonely && t->gid == lonely);
			t = token_set_find(set, TOK_C, 20); /* given: kept */
			if (CHECK(t != NULL))
				CHECK(t->uid == 0 && t->gid == 77);
			token_set_release(set);
		}
		free(log);
	}

	TU_TEST("load: group or others may read or write: -EPERM");
	{
		static const mode_t loose[] = { 0644, 0640, 0604, 0602, 0620, 0601, 0610 };

		for (size_t i = 0; i < sizeof(loose) / sizeof(loose[0]); i++) {
			make_file(path, sizeof(path), TOK_A " ro\n", 0, loose[i]);
			ret = load(path, &set, &log);
			if (!CHECK_EQ(ret, -EPERM) || !CHECK(set == NULL))
				fprintf(stderr, "  mode %04o: %d\n", (unsigned)loose[i], ret);
			CHECK(strstr(log, path) != NULL); /* the log says which file */
			free(log);
		}
	}

	TU_TEST("load: another user's file: -EPERM");
	if (geteuid() == 0) {
		make_file(path, sizeof(path), TOK_A " ro\n", 0, 0600);
		REQUIRE(chown(path, 65534, 65534) == 0);
		ret = load(path, &set, &log);
		CHECK_EQ(ret, -EPERM);
		CHECK(set == NULL);
		free(log);
	} else {
		fprintf(stderr, "  skipped: needs root to give a file away\n");
	}

	TU_TEST("load: a symlink, a directory, a missing file");
	make_file(path, sizeof(path), TOK_A " ro\n", 0, 0600);
	snprintf(link, sizeof(link), "%s.link", path);
	REQUIRE(symlink(path, link) == 0);
	ret = load(link, &set, &log);
	CHECK_EQ(ret, -ELOOP); /* O_NOFOLLOW */
	CHECK(set == NULL);
	CHECK(strstr(log, link) != NULL);
	free(log);
	ret = load(tu_tmpdir(), &set, &log);
	CHECK_EQ(ret, -EPERM); /* not a regular file */
	CHECK(set == NULL);
	free(log);
	snprintf(link, sizeof(link), "%s.missing", path);
	ret = load(link, &set, &log);
	CHECK_EQ(ret, -ENOENT);
	CHECK(set == NULL);
	CHECK(strstr(log, link) != NULL);
	free(log);

	TU_TEST("load: a malformed file is logged with its line");
	make_file(path, sizeof(path), TOK_A " ro\n\n" TOK_A " rw\n", 0, 0600);
	ret = load(path, &set, &log);
	CHECK_EQ(ret, -EINVAL);
	CHECK(set == NULL);
	if (!CHECK(strstr(log, path) != NULL && strstr(log, "line 3: ") != NULL))
		fprintf(stderr, "  log: %s", log);
	free(log);

	TU_TEST("load: size");
	{
		/* Just under the bound (1 MiB) loads; past it is refused. */
		size_t big = (1u << 20) + 1;
		char *text = tu_xmalloc(big);

		memset(text, '\n', big);
		memcpy(text, TOK_A " ro", 19);
		make_file(path, sizeof(path), text, (1u << 20) - 1, 0600);
		ret = load(path, &set, &log);
		if (CHECK_EQ(ret, 0))
			CHECK_EQ(token_set_count(set), 1);
		token_set_release(set);
		free(log);
		make_file(path, sizeof(path), text, big, 0600);
		ret = load(path, &set, &log);
		CHECK_EQ(ret, -EFBIG);
		CHECK(set == NULL);
		free(log);
		free(text);
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	tu_init(argv[0]);
	log_set_level(LOG_LEVEL_ERROR);
	test_parse_good();
	test_parse_bad();
	test_find();
	test_reaches();
	test_refs();
	test_load();
	return tu_finish();
}
