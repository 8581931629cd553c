/*
 * cli_servers.c - the network front ends of a mount or of `blobfs serve`
 * (cli_servers.h): the native protocol and HTTP on one blob database, and
 * the signals that reload the HTTP tokens.
 */
#include "cli_servers.h"

#include <errno.h>
#include <signal.h>
#include <string.h>
#include <time.h>

#include "http.h"
#include "log.h"
#include "native.h"

bool cli_servers_wanted(const struct cli_servers_config *cfg)
{
	return cfg->native || cfg->http;
}

int cli_servers_listen(struct cli_servers *s, struct blobdb *db,
		       const struct cli_servers_config *cfg)
{
	int ret = 0;

	memset(s, 0, sizeof(*s));
	if (cfg->tokens && !cfg->http)
		log_warning("-o tokens has no effect without -o http");
	if (cfg->native) {
		struct native_options o = { .world = cfg->world, .sync = cfg->sync,
					    .changed = cfg->changed,
					    .changed_arg = cfg->changed_arg };

		ret = native_server_listen(db, cfg->native, &o, &s->native);
	}
	if (ret == 0 && cfg->http) {
		struct http_options o = { .world = cfg->world, .sync = cfg->sync,
					  .public_reads = cfg->http_public, .tokens = cfg->tokens,
					  .changed = cfg->changed,
					  .changed_arg = cfg->changed_arg };

		ret = http_server_listen(db, cfg->http, &o, &s->http);
		s->tokens = ret == 0 && cfg->tokens;
		s->reloading = s->tokens;
	}
	return ret;
}

void cli_servers_block_reload(struct cli_servers *s)
{
	sigset_t set;

	if (!s->reloading)
		return;
	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

static void *reload_main(void *arg)
{
	struct cli_servers *s = arg;
	struct timespec second = { .tv_sec = 1 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGHUP);
	while (!__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE))
		if (sigtimedwait(&set, NULL, &second) == SIGHUP)
			(void)http_server_reload(s->http); /* logged */
	return NULL;
}

int cli_servers_start(struct cli_servers *s, bool mounted)
{
	int ret = 0;

	if (s->native)
		ret = native_server_start(s->native);
	if (ret == 0 && s->http)
		ret = http_server_start(s->http);
	s->reloading = s->reloading && mounted;
	if (ret == 0 && s->reloading) {
		ret = -pthread_create(&s->reloader, NULL, reload_main, s);
		if (ret < 0) {
			log_error("cannot start the thread that reloads the tokens: %s",
				  strerror(-ret));
			s->reloading = false;
		}
	}
	return ret;
}

void cli_servers_block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
}

void cli_servers_wait(struct cli_servers *s)
{
	sigset_t set;
	int sig = 0;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP && s->http && s->tokens) {
			(void)http_server_reload(s->http);
			continue;
		}
		break;
	}
	log_info("signal %d: stopping", sig);
}

void cli_servers_stop(struct cli_servers *s)
{
	__atomic_store_n(&s->stopping, true, __ATOMIC_RELEASE);
	if (s->reloading)
		pthread_join(s->reloader, NULL);
	http_server_stop(s->http);
	native_server_stop(s->native);
	s->http = NULL;
	s->native = NULL;
}
