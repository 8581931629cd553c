/*
 * log.c - one place that decides where messages go, and the one place that
 * writes a log line: every message is escaped here (escape.h), so that a
 * name with a newline or another control character in it (a store is named
 * by its user) can neither split a line nor forge one.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>

#include "escape.h"

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
	char line[1024], escaped[4 * sizeof(line)];
	va_list ap;
	int n;

	if (level > max_level || level < 0)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	/* A line cut at sizeof(line) is still one line. */
	escape_text(line, strlen(line), escaped, sizeof(escaped), 0);
	if (use_syslog)
		syslog(priorities[level], "%s", escaped);
	else
		fprintf(stderr, "blobfs: %s: %s\n", labels[level], escaped);
}
