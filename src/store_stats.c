/*
 * store_stats.c - the text form of store statistics (store.h): one line of
 * key=value fields per store and one for the totals, the same for
 * `blobfs stat` and the mount's user.blobfs.stat attribute.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "escape.h"
#include "store.h"

void store_stats_add(struct store_stats *sum, const struct store_stats *add)
{
	sum->blobs += add->blobs;
	sum->bytes += add->bytes;
	sum->packs += add->packs;
	sum->dead_bytes += add->dead_bytes;
}

/* snprintf at buf + at, for a line built in pieces with snprintf's
 * contract: returns where the line now ends, whether it fit or not. */
static size_t append_figures(char *buf, size_t size, size_t at, const struct store_stats *st)
{
	int n = snprintf(at < size ? buf + at : NULL, at < size ? size - at : 0,
			 " blobs=%" PRIu64 " bytes=%" PRIu64 " packs=%" PRIu64
			 " dead_bytes=%" PRIu64 "\n",
			 st->blobs, st->bytes, st->packs, st->dead_bytes);
	return at + (n > 0 ? (size_t)n : 0);
}

size_t store_stats_format(const char *store_name, const struct store_stats *st, char *buf,
			  size_t size)
{
	size_t at = 0;

	if (size > 0)
		at = (size_t)snprintf(buf, size, "store=");
	else
		at = strlen("store=");
	at += escape_text(store_name, strlen(store_name), at < size ? buf + at : NULL,
			  at < size ? size - at : 0, ESCAPE_SPACE);
	return append_figures(buf, size, at, st);
}

size_t store_stats_format_total(uint64_t stores, const struct store_stats *sum, char *buf,
				size_t size)
{
	int n = snprintf(buf, size, "stores=%" PRIu64, stores);

	return append_figures(buf, size, n > 0 ? (size_t)n : 0, sum);
}
