/*
 * s3_config.h - where an S3 mount's objects are and how to sign for them:
 * the location `s3://BUCKET[/PREFIX]`, the endpoint, the region and the
 * credentials, taken the way S3 tools take them (AWS_* variables, then the
 * shared credentials and config files of the profile). Pure parsing: the
 * environment comes in through a getter, so tests give their own.
 */
#ifndef BLOBFS_S3_CONFIG_H
#define BLOBFS_S3_CONFIG_H

#include <stddef.h>

struct s3_config {
	char *bucket;
	char *prefix;   /* "" or "a/b": no leading or trailing '/' */
	char *endpoint; /* "http://host:port" or "https://host", no trailing '/' */
	char *region;
	char *access_key;
	char *secret_key;
	char *session_token; /* NULL when there is none */
};

/* Returns the value of an environment variable, or NULL (getenv fits). */
typedef const char *(*s3_env_fn)(const char *name);

/* Splits "s3://BUCKET[/PREFIX]" into bucket and prefix. -EINVAL (and a
 * reason in why) for anything else: no bucket, a bucket name S3 would not
 * take, a prefix with an empty segment or longer than 512 bytes. */
int s3_location_parse(const char *location, char **bucket, char **prefix, char *why,
		      size_t why_size);

/* Fills *out for location. The endpoint: endpoint_opt (-o s3_endpoint),
 * else AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's endpoint_url in
 * the config file; there is no default (blobfs talks to S3-compatible
 * stores; for AWS give https://s3.REGION.amazonaws.com). The region:
 * AWS_REGION, AWS_DEFAULT_REGION, the profile's region, else "us-east-1".
 * The keys: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and
 * AWS_SESSION_TOKEN), else the profile (AWS_PROFILE, else "default") of
 * the credentials file (AWS_SHARED_CREDENTIALS_FILE, else
 * $HOME/.aws/credentials); the config file is AWS_CONFIG_FILE, else
 * $HOME/.aws/config. -EINVAL with a reason in why when something is
 * missing or malformed; -ENOMEM. */
int s3_config_load(const char *location, const char *endpoint_opt, s3_env_fn env,
		   struct s3_config *out, char *why, size_t why_size);
void s3_config_free(struct s3_config *config);

#endif
