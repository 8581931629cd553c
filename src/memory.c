/* memory.c - placeholder until the in-memory backend lands (same day). */
#include "backend.h"

#include <errno.h>

#include "log.h"

static int memory_db_open(const char *location, const struct blobdb_options *opts,
			  struct blobdb **out)
{
	(void)location;
	(void)opts;
	*out = NULL;
	log_error("the memory: backend is not built yet");
	return -EPROTONOSUPPORT;
}

const struct backend_ops memory_backend = {
	.name = "memory",
	.db_open = memory_db_open,
};
