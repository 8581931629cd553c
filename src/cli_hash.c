/*
 * cli_hash.c - `blobfs hash [FILE...]`: the SHA-256 of files with the
 * project's hash code (hash.h), printed exactly as coreutils' sha256sum
 * prints it (text mode): "<64 hex>  NAME\n", "-" for standard input (also
 * when no FILE is given), and for a NAME containing a backslash, newline or
 * carriage return a leading backslash with those written \\, \n and \r. A
 * file that cannot be read gets sha256sum's message, its name quoted for
 * the shell the way coreutils quotes names in messages (quote_name), and
 * the exit status is 1 if any file failed.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <wchar.h>
#include <wctype.h>

#include "cli.h"
#include "hash.h"

#define READ_SIZE (256 * 1024)

/* ---- names in messages, quoted as coreutils' quotef() does ---- */

/* The length of the character at s (at most len bytes) and whether it is
 * printable in the current locale; an invalid or cut sequence is one
 * unprintable byte. */
static size_t char_at(const char *s, size_t len, bool *printable)
{
	unsigned char c = (unsigned char)*s;
	mbstate_t state;
	wchar_t w;
	size_t n;

	if (c < 0x80 || MB_CUR_MAX == 1) {
		*printable = c < 0x80 && isprint(c);
		return 1;
	}
	memset(&state, 0, sizeof(state));
	n = mbrtowc(&w, s, len, &state);
	if (n == (size_t)-1 || n == (size_t)-2 || n == 0) {
		*printable = false;
		return 1;
	}
	*printable = iswprint((wint_t)w) != 0;
	return n;
}

/* Characters the shell (or a later reading of the message) would take for
 * something else: a name holding any of them is quoted. ':' is among them
 * because messages are "NAME: reason". */
static bool is_special(const char *name, size_t len, size_t i)
{
	unsigned char c = (unsigned char)name[i];

	if ((c == '{' || c == '}') && len == 1)
		return true;
	if ((c == '#' || c == '~') && i == 0)
		return true;
	return c != '\0' && strchr(" !\"$&()*;<=>[^`|'?\\:", c) != NULL;
}

/* Whether every character of the name can go between double quotes as it
 * is (what coreutils calls "c and shell quote compatible"). */
static bool fits_double_quotes(const char *name, size_t len)
{
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)name[i];
		bool printable, ok;
		size_t n = char_at(name + i, len - i, &printable);

		if (c == '#' || c == '~')
			ok = i == 0;
		else if (c == '{' || c == '}')
			ok = len == 1;
		else if (c == ' ' || c == '\'' || c == ':')
			ok = true;
		else
			ok = printable && !strchr("!\"$&()*;<=>[^`|?\\", c);
		if (!ok)
			return false;
		i += n;
	}
	return true;
}

static bool needs_quotes(const char *name, size_t len)
{
	if (len == 0)
		return true;
	for (size_t i = 0; i < len;) {
		bool printable;
		size_t n = char_at(name + i, len - i, &printable);

		if (is_special(name, len, i) || !printable)
			return true;
		i += n;
	}
	return false;
}

static const char *control_escape(unsigned char c)
{
	switch (c) {
	case '\a': return "\\a";
	case '\b': return "\\b";
	case '\f': return "\\f";
	case '\n': return "\\n";
	case '\r': return "\\r";
	case '\t': return "\\t";
	case '\v': return "\\v";
	default: return NULL;
	}
}

/* Writes s[0..n) to out unless out is NULL (a dry run). */
static void put(FILE *out, const char *s, size_t n)
{
	if (out)
		fwrite(s, 1, n, out);
}

/*
 * Single quotes, with $'...' around what cannot be written in them:
 * 'a b', 'no'$'\n''file', 'it'\''s', ''$'\377''x'. in_dollar says whether
 * a $'...' part is open as the name starts; returns whether one is at its
 * end (before the closing quote, which closes it as well).
 */
static bool put_shell_quoted(FILE *out, const char *name, size_t len, bool in_dollar)
{
	put(out, "'", 1);
	for (size_t i = 0; i < len;) {
		unsigned char c = (unsigned char)name[i];
		const char *esc = control_escape(c);
		bool printable;
		size_t n = char_at(name + i, len - i, &printable);
		char octal[5];

		if (esc || !printable) {
			if (!in_dollar)
				put(out, "'$'", 3);
			in_dollar = true;
			if (!esc) {
				snprintf(octal, sizeof(octal), "\\%03o", c);
				esc = octal;
			}
			put(out, esc, strlen(esc));
			i++;
			continue;
		}
		if (c == '\'') {
			put(out, "'\\''", 4); /* also ends a $'...' part */
			in_dollar = false;
			i++;
			continue;
		}
		if (in_dollar)
			put(out, "''", 2);
		in_dollar = false;
		put(out, name + i, n);
		i += n;
	}
	put(out, "'", 1);
	return in_dollar;
}

/* The name as coreutils writes it in a message (quotef): as it is when
 * nothing in it needs quoting; in double quotes when it has a single quote
 * and nothing else double quotes would change; else in single quotes. */
static void put_quoted(FILE *out, const char *name)
{
	size_t len = strlen(name);
	bool in_dollar = false;

	if (!needs_quotes(name, len)) {
		fputs(name, out);
		return;
	}
	if (memchr(name, '\'', len)) {
		if (fits_double_quotes(name, len)) {
			fprintf(out, "\"%s\"", name);
			return;
		}
		/* coreutils (gnulib's quotearg) writes such a name in a second
		 * pass that starts in the $'...' state the first pass ended in:
		 * reproduced, for byte-identical messages. */
		in_dollar = put_shell_quoted(NULL, name, len, false);
	}
	put_shell_quoted(out, name, len, in_dollar);
}

/* ---- hashing ---- */

static int hash_fd(int fd, struct hasher *h, uint8_t *buf, uint8_t out[BLOBFS_HASH_SIZE])
{
	int ret = hasher_reset(h);

	while (ret == 0) {
		ssize_t n = read(fd, buf, READ_SIZE);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			ret = -errno;
			break;
		}
		if (n == 0)
			return hasher_final(h, out);
		ret = hasher_update(h, buf, (size_t)n);
	}
	return ret;
}

static int hash_file(const char *name, struct hasher *h, uint8_t *buf,
		     uint8_t out[BLOBFS_HASH_SIZE])
{
	int fd, ret;

	if (!strcmp(name, "-"))
		return hash_fd(STDIN_FILENO, h, buf, out);
	fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	ret = hash_fd(fd, h, buf, out);
	close(fd);
	return ret;
}

/* "<hex>  NAME\n", or "\<hex>  NAME\n" with \\, \n, \r in NAME. */
static void print_line(const uint8_t hash[BLOBFS_HASH_SIZE], const char *name)
{
	char hex[HASH_HEX_SIZE + 1];
	bool escape = strpbrk(name, "\\\n\r") != NULL;

	hash_to_hex(hash, hex);
	if (escape)
		putchar('\\');
	fputs(hex, stdout);
	fputs("  ", stdout);
	for (const char *p = name; *p; p++) {
		if (escape && *p == '\\')
			fputs("\\\\", stdout);
		else if (escape && *p == '\n')
			fputs("\\n", stdout);
		else if (escape && *p == '\r')
			fputs("\\r", stdout);
		else
			putchar(*p);
	}
	putchar('\n');
}

static void hash_usage(FILE *out)
{
	fputs("usage: blobfs hash [FILE]...\n"
	      "Prints the SHA-256 of each FILE (standard input for - or when no FILE is\n"
	      "given) as sha256sum does: the name a blob of that content has in a store.\n",
	      out);
}

/* Like sha256sum: options anywhere before "--"; a bad one is exit 1. */
static int check_options(int argc, char **argv, bool *help)
{
	for (int i = 1; i < argc && strcmp(argv[i], "--"); i++) {
		const char *a = argv[i];
		if (a[0] != '-' || !a[1])
			continue;
		if (!strcmp(a, "--help")) {
			*help = true;
			return 0;
		}
		if (a[1] == '-')
			fprintf(stderr, "blobfs hash: unrecognized option '%s'\n", a);
		else
			fprintf(stderr, "blobfs hash: invalid option -- '%c'\n", a[1]);
		fputs("Try 'blobfs hash --help' for more information.\n", stderr);
		return -EINVAL;
	}
	return 0;
}

int cli_hash(int argc, char **argv)
{
	uint8_t hash[BLOBFS_HASH_SIZE];
	struct hasher *h = NULL;
	uint8_t *buf = NULL;
	bool help = false, options_done = false, any = false;
	int status = 1, ret;

	/* Names in messages are quoted for the user's locale, as coreutils
	 * does; the hash lines do not depend on it. */
	setlocale(LC_ALL, "");
	if (check_options(argc, argv, &help) < 0)
		goto out;
	if (help) {
		hash_usage(stdout);
		status = 0;
		goto out;
	}
	buf = malloc(READ_SIZE);
	if (!buf || hasher_new(&h) < 0) {
		fprintf(stderr, "blobfs hash: %s\n", strerror(ENOMEM));
		goto out;
	}
	status = 0;
	for (int i = 1; i <= argc; i++) {
		const char *name;
		if (i == argc) {
			if (any)
				break;
			name = "-"; /* no FILE: standard input */
		} else if (!options_done && !strcmp(argv[i], "--")) {
			options_done = true;
			continue;
		} else {
			name = argv[i];
		}
		any = true;
		ret = hash_file(name, h, buf, hash);
		if (ret < 0) {
			fflush(stdout); /* keep the order of lines and messages */
			fputs("blobfs hash: ", stderr);
			put_quoted(stderr, name);
			fprintf(stderr, ": %s\n", strerror(-ret));
			status = 1;
			continue;
		}
		print_line(hash, name);
	}
	if (fflush(stdout) != 0 || ferror(stdout)) {
		fprintf(stderr, "blobfs hash: write error: %s\n", strerror(errno));
		status = 1;
	}
out:
	hasher_free(h);
	free(buf);
	return status;
}
