/*
 * log.c - one place that decides where messages go.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <syslog.h>

static bool use_syslog;
static enum log_level max_level = LOG_LEVEL_INFO;

void log_to_syslog(bool on)
{
	if (on && !use_syslog)
		openlog("blobfs", LOG_PID, LOG_DAEMON);
	use_syslog = on;
}

void log_set_level(enum log_level level)
{
	max_level = level;
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	static const int priorities[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };
	static const char *const labels[] = { "error", "warning", "info", "debug" };
	char line[1024];
	va_list ap;

	if (level > max_level || level < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (use_syslog)
		syslog(priorities[level], "%s", line);
	else
		fprintf(stderr, "blobfs: %s: %s\n", labels[level], line);
}
