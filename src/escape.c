/*
 * escape.c - escaping bytes for line-oriented text (escape.h).
 */
#include "escape.h"

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
