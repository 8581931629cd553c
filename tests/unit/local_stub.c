/*
 * local_stub.c - test only: stands in for the local engine so that
 * test_memory links blobdb.c without src/store.c (which, until it is moved
 * behind backend.h, defines the same public names). Opening a directory
 * fails with -ENOTSUP, which blobdb.c reports as -EIO.
 */
#include "backend.h"

#include <errno.h>

static int local_stub_open(const char *location, const struct blobdb_options *opts,
			   struct blobdb **out)
{
	(void)location;
	(void)opts;
	*out = NULL;
	return -ENOTSUP;
}

const struct backend_ops local_backend = {
	.name = "local",
	.db_open = local_stub_open,
};
