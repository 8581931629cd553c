/*
 * s3_config.c - the location, endpoint, region and credentials of an S3
 * mount. The shared files are INI text ("[profile]" sections of
 * "key = value" lines, '#' and ';' comments); the credentials file names
 * a section by the profile itself, the config file as "profile NAME"
 * (except "default"), as the AWS tools do. A file that is missing is
 * skipped; one that cannot be read for another reason is an error, so that
 * a typo in a path does not silently sign with other keys.
 */
#include "s3_config.h"

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S3_PREFIX_MAX 512
#define INI_LINE_MAX 4096

static int fail(char *why, size_t why_size, const char *what)
{
	snprintf(why, why_size, "%s", what);
	return -EINVAL;
}

/* What S3 accepts as a bucket name (the DNS-compatible rules): 3-63 bytes
 * of lowercase letters, digits, '-' and '.', starting and ending with a
 * letter or digit. */
static bool bucket_name_ok(const char *b, size_t len)
{
	if (len < 3 || len > 63 || !isalnum((unsigned char)b[0]) ||
	    !isalnum((unsigned char)b[len - 1]))
		return false;
	for (size_t i = 0; i < len; i++)
		if (!(islower((unsigned char)b[i]) || isdigit((unsigned char)b[i]) || b[i] == '-' ||
		      b[i] == '.'))
			return false;
	return true;
}

int s3_location_parse(const char *location, char **bucket, char **prefix, char *why,
		      size_t why_size)
{
	const char *rest, *slash;
	size_t blen;

	*bucket = *prefix = NULL;
	if (strncmp(location, "s3://", 5))
		return fail(why, why_size, "an S3 location starts with s3://");
	rest = location + 5;
	slash = strchr(rest, '/');
	blen = slash ? (size_t)(slash - rest) : strlen(rest);
	if (!bucket_name_ok(rest, blen))
		return fail(why, why_size,
			    "the bucket name must be 3-63 lowercase letters, digits, '-' or '.'");
	if (slash) {
		const char *p = slash + 1;
		size_t plen = strlen(p);

		while (plen && p[plen - 1] == '/')
			plen--; /* s3://b/prefix/ means s3://b/prefix */
		if (plen > S3_PREFIX_MAX)
			return fail(why, why_size, "the prefix is longer than 512 bytes");
		for (size_t i = 0; i < plen; i++)
			if (p[i] == '/' && (i == 0 || p[i - 1] == '/'))
				return fail(why, why_size, "the prefix has an empty segment");
		/* "." and ".." segments: a key is not a path, but many a
		 * client and server would take them for one. */
		for (size_t i = 0; i < plen;) {
			size_t n = strcspn(p + i, "/");

			if (n > plen - i)
				n = plen - i;
			if ((n == 1 && p[i] == '.') || (n == 2 && p[i] == '.' && p[i + 1] == '.'))
				return fail(why, why_size, "the prefix has a \".\" or \"..\" segment");
			for (size_t j = i; j < i + n; j++)
				if ((unsigned char)p[j] < 0x20 || p[j] == 0x7f)
					return fail(why, why_size, "the prefix has a control character");
			i += n + 1;
		}
		*prefix = strndup(p, plen);
	} else {
		*prefix = strdup("");
	}
	*bucket = strndup(rest, blen);
	if (!*bucket || !*prefix) {
		free(*bucket);
		free(*prefix);
		*bucket = *prefix = NULL;
		return -ENOMEM;
	}
	return 0;
}

static char *trim(char *s)
{
	char *end;

	while (isspace((unsigned char)*s))
		s++;
	end = s + strlen(s);
	while (end > s && isspace((unsigned char)end[-1]))
		*--end = '\0';
	return s;
}

/* The value of key in section of the INI file at path, malloc'ed in *out
 * (NULL when the file, the section or the key is absent). */
static int ini_get(const char *path, const char *section, const char *key, char **out)
{
	char line[INI_LINE_MAX];
	bool in_section = false;
	FILE *f;
	int ret = 0;

	*out = NULL;
	if (!path)
		return 0;
	f = fopen(path, "re");
	if (!f)
		return errno == ENOENT ? 0 : -errno;
	while (fgets(line, sizeof(line), f)) {
		char *s = trim(line), *eq;

		if (!*s || *s == '#' || *s == ';')
			continue;
		if (*s == '[') {
			char *close = strchr(s, ']');

			if (close)
				*close = '\0';
			in_section = close && !strcmp(trim(s + 1), section);
			continue;
		}
		eq = strchr(s, '=');
		if (!in_section || !eq)
			continue;
		*eq = '\0';
		if (strcmp(trim(s), key))
			continue;
		free(*out);
		*out = strdup(trim(eq + 1));
		if (!*out) {
			ret = -ENOMEM;
			break;
		}
	}
	if (ret == 0 && ferror(f))
		ret = -EIO;
	fclose(f);
	if (ret < 0) {
		free(*out);
		*out = NULL;
	}
	return ret;
}

static char *home_path(s3_env_fn env, const char *var, const char *rel)
{
	const char *v = env(var), *home;
	char *p;

	if (v && *v)
		return strdup(v);
	home = env("HOME");
	if (!home || !*home)
		return NULL;
	if (asprintf(&p, "%s/%s", home, rel) < 0)
		return NULL;
	return p;
}

/* The first set variable of names (NULL-terminated), duplicated. */
static int env_dup(s3_env_fn env, const char *const *names, char **out)
{
	*out = NULL;
	for (; *names; names++) {
		const char *v = env(*names);

		if (v && *v) {
			*out = strdup(v);
			return *out ? 0 : -ENOMEM;
		}
	}
	return 0;
}

void s3_config_free(struct s3_config *config)
{
	free(config->bucket);
	free(config->prefix);
	free(config->endpoint);
	free(config->region);
	free(config->access_key);
	if (config->secret_key)
		memset(config->secret_key, 0, strlen(config->secret_key));
	free(config->secret_key);
	free(config->session_token);
	memset(config, 0, sizeof(*config));
}

static const char *const ENDPOINT_VARS[] = { "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", NULL };
static const char *const REGION_VARS[] = { "AWS_REGION", "AWS_DEFAULT_REGION", NULL };
static const char *const KEY_VARS[] = { "AWS_ACCESS_KEY_ID", NULL };
static const char *const SECRET_VARS[] = { "AWS_SECRET_ACCESS_KEY", NULL };
static const char *const TOKEN_VARS[] = { "AWS_SESSION_TOKEN", NULL };

static bool endpoint_ok(const char *e)
{
	const char *host = !strncmp(e, "http://", 7) ? e + 7 : !strncmp(e, "https://", 8) ? e + 8 : NULL;

	if (!host || !*host)
		return false;
	for (const char *p = host; *p; p++)
		if (*p == '/' || *p == '?' || *p == '#' || isspace((unsigned char)*p) ||
		    !isprint((unsigned char)*p))
			return false;
	return true;
}

int s3_config_load(const char *location, const char *endpoint_opt, s3_env_fn env,
		   struct s3_config *out, char *why, size_t why_size)
{
	const char *profile = env("AWS_PROFILE");
	char *creds_path = NULL, *config_path = NULL, *config_section = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if (!profile || !*profile)
		profile = "default";
	ret = s3_location_parse(location, &out->bucket, &out->prefix, why, why_size);
	if (ret < 0)
		goto out;
	creds_path = home_path(env, "AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials");
	config_path = home_path(env, "AWS_CONFIG_FILE", ".aws/config");
	if (!strcmp(profile, "default"))
		config_section = strdup("default");
	else if (asprintf(&config_section, "profile %s", profile) < 0)
		config_section = NULL;
	if (!config_section) {
		ret = -ENOMEM;
		goto out;
	}

	if (endpoint_opt && *endpoint_opt)
		out->endpoint = strdup(endpoint_opt);
	else if ((ret = env_dup(env, ENDPOINT_VARS, &out->endpoint)) == 0 && !out->endpoint)
		ret = ini_get(config_path, config_section, "endpoint_url", &out->endpoint);
	if (ret < 0)
		goto files;
	if (!out->endpoint) {
		ret = fail(why, why_size,
			   "no endpoint: set AWS_ENDPOINT_URL or -o s3_endpoint=URL");
		goto out;
	}
	{
		size_t n = strlen(out->endpoint);

		while (n && out->endpoint[n - 1] == '/')
			out->endpoint[--n] = '\0';
	}
	if (!endpoint_ok(out->endpoint)) {
		ret = fail(why, why_size, "the endpoint must be http://HOST[:PORT] or https://HOST[:PORT]");
		goto out;
	}

	if ((ret = env_dup(env, REGION_VARS, &out->region)) == 0 && !out->region)
		ret = ini_get(config_path, config_section, "region", &out->region);
	if (ret < 0)
		goto files;
	if (!out->region && !(out->region = strdup("us-east-1"))) {
		ret = -ENOMEM;
		goto out;
	}

	if ((ret = env_dup(env, KEY_VARS, &out->access_key)) < 0 ||
	    (ret = env_dup(env, SECRET_VARS, &out->secret_key)) < 0 ||
	    (ret = env_dup(env, TOKEN_VARS, &out->session_token)) < 0)
		goto out;
	if (!out->access_key && !out->secret_key) {
		if ((ret = ini_get(creds_path, profile, "aws_access_key_id", &out->access_key)) < 0 ||
		    (ret = ini_get(creds_path, profile, "aws_secret_access_key", &out->secret_key)) < 0 ||
		    (ret = ini_get(creds_path, profile, "aws_session_token", &out->session_token)) < 0)
			goto files;
	}
	if (!out->access_key || !out->secret_key || !*out->access_key || !*out->secret_key) {
		ret = fail(why, why_size,
			   "no credentials: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or give "
			   "the profile's keys in ~/.aws/credentials");
		goto out;
	}
	if (strchr(out->access_key, ':') || strchr(out->access_key, '\n')) {
		ret = fail(why, why_size, "the access key has a ':' or a newline");
		goto out;
	}
	ret = 0;
	goto out;
files:
	if (ret != -ENOMEM) {
		snprintf(why, why_size, "reading %s or %s: %s", creds_path ? creds_path : "-",
			 config_path ? config_path : "-", strerror(-ret));
		ret = -EINVAL;
	}
out:
	free(creds_path);
	free(config_path);
	free(config_section);
	if (ret < 0)
		s3_config_free(out);
	return ret;
}
