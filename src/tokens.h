/*
 * tokens.h - the HTTP API's bearer tokens (docs/FORMAT.md, "The tokens
 * file"): parsing the file (untrusted text: fuzzed), finding a token in
 * constant time, and what a token may reach. A set is immutable once made
 * and counted, so that a reload (SIGHUP) swaps sets while requests still use
 * the old one.
 */
#ifndef BLOBFS_TOKENS_H
#define BLOBFS_TOKENS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "strlist.h"

#define TOKEN_LEN_MIN 16
#define TOKEN_LEN_MAX 256
/* A gid not given in the file: the user's primary group (token_set_load). */
#define TOKEN_GID_UNSET UINT32_MAX

struct token {
	char *value;
	size_t len;
	bool rw;
	bool has_user;
	uint32_t uid, gid;
	struct strlist stores; /* sorted; empty: every store */
	size_t line;           /* in the file, for messages */
};

struct token_set;

/* Parses the file's text (len bytes, any bytes). Tokens without user= act
 * as default_uid:default_gid; a gid omitted is TOKEN_GID_UNSET. On a
 * malformed line, -EINVAL and err says which line and why. 0, -EINVAL or
 * -ENOMEM. */
int token_set_parse(const char *text, size_t len, uint32_t default_uid, uint32_t default_gid,
		    struct token_set **out, char *err, size_t err_size);
/* Reads and parses path: it must be a regular file owned by the process's
 * user (or root) that group and others cannot read or write (-EPERM
 * otherwise); a gid omitted becomes the user's primary group (or the uid).
 * Errors are logged. */
int token_set_load(const char *path, struct token_set **out);
/* The token whose value is value[0..len), or NULL; the time taken does not
 * depend on where the values differ. */
const struct token *token_set_find(const struct token_set *set, const char *value, size_t len);
size_t token_set_count(const struct token_set *set);
/* Whether the token reaches the named store. */
bool token_reaches(const struct token *t, const char *store);
/* Counted references (any thread). */
struct token_set *token_set_hold(struct token_set *set);
void token_set_release(struct token_set *set);

#endif
