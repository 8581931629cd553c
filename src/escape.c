/*
 * escape.c - bytes written as text and read back (escape.h): the escapes of
 * line-oriented text and percent-encoding.
 */
#include "escape.h"

#include <errno.h>

static int hex_value(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 :
	       c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* The byte of the two hex digits at in[i + 1] and in[i + 2] (len bytes in
 * all), or -1. */
static int hex_byte(const char *in, size_t len, size_t i)
{
	int hi = i + 2 < len ? hex_value(in[i + 1]) : -1;
	int lo = hi < 0 ? -1 : hex_value(in[i + 2]);

	return lo < 0 ? -1 : hi << 4 | lo;
}

static size_t put(char *out, size_t size, size_t at, const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++, at++)
		if (at + 1 < size)
			out[at] = s[i];
	return at;
}

size_t escape_text(const char *in, size_t len, char *out, size_t size, unsigned flags)
{
	static const char hex[] = "0123456789abcdef";
	size_t at = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];
		char seq[4] = { '\\', 'x', hex[c >> 4], hex[c & 15] };

		if (c == '\\')
			at = put(out, size, at, "\\\\", 2);
		else if (c == '\n')
			at = put(out, size, at, "\\n", 2);
		else if (c == '\t')
			at = put(out, size, at, "\\t", 2);
		else if (c < 0x20 || c == 0x7f || (c == ' ' && (flags & ESCAPE_SPACE)))
			at = put(out, size, at, seq, 4);
		else
			at = put(out, size, at, (const char *)&c, 1);
	}
	if (size > 0)
		out[at < size ? at : size - 1] = '\0';
	return at;
}

int unescape_text(const char *in, size_t len, char *out, size_t size)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)in[i];

		if (c == '\\') {
			c = i + 1 < len ? in[++i] : -1;
			if (c == 'n') {
				c = '\n';
			} else if (c == 't') {
				c = '\t';
			} else if (c == 'x') {
				c = hex_byte(in, len, i);
				i += 2;
			} else if (c != '\\') {
				c = -1;
			}
		}
		if (c < 0 || n + 1 >= size)
			return -EINVAL;
		out[n++] = (char)c;
	}
	if (size == 0)
		return -EINVAL;
	out[n] = '\0';
	return (int)n;
}

size_t percent_encode(const char *in, size_t len, char *out)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)in[i];

		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
		    c == '-' || c == '.' || c == '_' || c == '~') {
			out[n++] = (char)c;
		} else {
			out[n++] = '%';
			out[n++] = hex[c >> 4];
			out[n++] = hex[c & 15];
		}
	}
	out[n] = '\0';
	return n;
}

int percent_decode(const char *in, size_t len, char *out, bool plus_space)
{
	size_t n = 0;

	for (size_t i = 0; i < len; i++) {
		int c = (unsigned char)in[i];

		if (c == '%') {
			c = hex_byte(in, len, i);
			if (c < 0)
				return -EINVAL;
			i += 2;
		} else if (c == '+' && plus_space) {
			c = ' ';
		}
		out[n++] = (char)c;
	}
	out[n] = '\0';
	return (int)n;
}
