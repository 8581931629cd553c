/*
 * strlist.h - a growable list of owned strings (names of stores, of
 * directory entries), sortable and searchable once sorted: the one copy of
 * what the data directory's listing, the S3 catalogue's refresh and the
 * native protocol's store list each need.
 */
#ifndef BLOBFS_STRLIST_H
#define BLOBFS_STRLIST_H

#include <stdbool.h>
#include <stddef.h>

struct strlist {
	char **v;
	size_t n, cap;
};

/* Appends a copy of s: 0 or -ENOMEM (the list unchanged). */
int strlist_add(struct strlist *l, const char *s);
/* Sorts in byte order (strcmp). */
void strlist_sort(struct strlist *l);
/* Whether a sorted list holds s. */
bool strlist_has(const struct strlist *l, const char *s);
/* Frees the strings and the array; the list is empty again. */
void strlist_free(struct strlist *l);

#endif
