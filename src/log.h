/*
 * log.h - the daemon's log: stderr in the foreground, syslog once daemonized.
 * Every error is logged once, where it is handled.
 */
#ifndef BLOBFS_LOG_H
#define BLOBFS_LOG_H

#include <stdbool.h>

enum log_level { LOG_LEVEL_OFF = -1, LOG_LEVEL_ERROR, LOG_LEVEL_WARNING, LOG_LEVEL_INFO, LOG_LEVEL_DEBUG };

void log_to_syslog(bool on);
void log_set_level(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_info(...) log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)

#endif
