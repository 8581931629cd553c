/*
 * escape.h - one way of writing arbitrary bytes (store names, file names)
 * into line-oriented text: the log and the store statistics. A line written
 * with it never contains a control character, so a name cannot split it or
 * forge another one.
 */
#ifndef BLOBFS_ESCAPE_H
#define BLOBFS_ESCAPE_H

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

#endif
