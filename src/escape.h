/*
 * escape.h - the ways arbitrary bytes (store names, file names) are written
 * as text, and read back: escape_text for line-oriented text (the log, the
 * store statistics, the tokens file: a line never contains a control
 * character, so a name cannot split it or forge another one), and
 * percent-encoding for URLs (the HTTP API's paths and queries, S3 listings).
 */
#ifndef BLOBFS_ESCAPE_H
#define BLOBFS_ESCAPE_H

#include <stdbool.h>
#include <stddef.h>

/* Escape a space too (for text whose fields are separated by spaces). */
#define ESCAPE_SPACE 1u

/*
 * Copies len bytes of in to out (size bytes, NUL-terminated when size > 0),
 * writing a backslash as \\, a newline as \n, a tab as \t, every other byte
 * below 0x20 and 0x7f as \xNN (two lowercase hex digits), and with
 * ESCAPE_SPACE a space as \x20. Other bytes (UTF-8 included) are copied.
 * Returns the length of the whole escaped text (not counting the NUL), as
 * snprintf does: out holds all of it only when that is below size.
 */
size_t escape_text(const char *in, size_t len, char *out, size_t size, unsigned flags);
/* The inverse of escape_text: \\, \n, \t and \xNN (either case) decoded,
 * every other byte copied, into out (size bytes, NUL-terminated). The length
 * decoded, or -EINVAL for another escape, one cut short, or text that does
 * not fit below size. */
int unescape_text(const char *in, size_t len, char *out, size_t size);

/* Percent-encodes len bytes of in (every byte but A-Z a-z 0-9 - . _ ~ as
 * %XX, uppercase) into out, which needs 3 * len + 1: the length. */
size_t percent_encode(const char *in, size_t len, char *out);
/* Decodes %XX (either case) and, with plus_space, '+' as a space, into out
 * (len + 1 bytes; out may be in: decoding never gets ahead of reading):
 * the length, or -EINVAL for a '%' without two hex digits. A %00 gives a
 * NUL like any byte: callers that want none check the length. */
int percent_decode(const char *in, size_t len, char *out, bool plus_space);

#endif
