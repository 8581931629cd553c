/*
 * test_s3_parse.c - what the S3 backend parses without a network: the XML
 * answers (a listing as radosgw writes it, truncated listings, common
 * prefixes, error documents, upload ids; DTDs, entities, oversized and
 * malformed fields refused), LastModified times, and the configuration
 * (s3:// locations; endpoint, region and keys from the environment and
 * from the shared credentials and config files, with profiles).
 *
 * Fixture: testutil.h (the fixture library).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "s3_config.h"
#include "s3_xml.h"
#include "testutil.h"

#define NS "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\""

static const char LISTING[] =
	"<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
	"<ListBucketResult " NS "><Name>b</Name><Prefix>p/s/</Prefix><KeyCount>2</KeyCount>"
	"<MaxKeys>1000</MaxKeys><IsTruncated>true</IsTruncated>"
	"<NextContinuationToken>tok&amp;1</NextContinuationToken>"
	"<Contents><Key>p/s/.blobfs-store</Key><LastModified>2026-11-30T07:28:00.000Z</LastModified>"
	"<ETag>&quot;x&quot;</ETag><Size>32</Size><StorageClass>STANDARD</StorageClass></Contents>"
	"<Contents><Key>p/s/caf\xc3\xa9</Key><LastModified>1970-01-01T00:00:01Z</LastModified>"
	"<Size>18446744073709551615</Size></Contents>"
	"<CommonPrefixes><Prefix>p/s/deeper/</Prefix></CommonPrefixes>"
	"</ListBucketResult>";

static void test_listing(void)
{
	struct s3_listing l;

	TU_TEST("a listing");
	REQUIRE(s3_xml_parse_listing(LISTING, strlen(LISTING), &l) == 0);
	CHECK_EQ(l.object_count, 2);
	CHECK(!strcmp(l.objects[0].key, "p/s/.blobfs-store"));
	CHECK_EQ(l.objects[0].size, 32);
	CHECK_EQ(l.objects[0].mtime, 1796023680);
	CHECK(!strcmp(l.objects[1].key, "p/s/caf\xc3\xa9"));
	CHECK_EQ(l.objects[1].size, UINT64_MAX);
	CHECK_EQ(l.objects[1].mtime, 1);
	CHECK_EQ(l.prefix_count, 1);
	CHECK(!strcmp(l.prefixes[0], "p/s/deeper/"));
	CHECK(l.truncated);
	CHECK(l.next_token && !strcmp(l.next_token, "tok&1"));
	s3_listing_free(&l);
	CHECK(l.objects == NULL && l.object_count == 0);

	/* An empty listing, without a namespace. */
	{
		const char *x = "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>";

		REQUIRE(s3_xml_parse_listing(x, strlen(x), &l) == 0);
		CHECK_EQ(l.object_count, 0);
		CHECK(!l.truncated && !l.next_token);
		s3_listing_free(&l);
	}
}

static void expect_refused(const char *what, const char *x)
{
	struct s3_listing l;
	int ret = s3_xml_parse_listing(x, strlen(x), &l);

	if (!CHECK_EQ(ret, -EPROTO))
		fprintf(stderr, "  accepted: %s\n", what);
	else
		CHECK(l.objects == NULL && l.prefixes == NULL && l.next_token == NULL);
}

static void test_listing_refused(void)
{
	char *big;

	TU_TEST("listings that do not check out");
	expect_refused("not XML", "hello");
	expect_refused("empty", "");
	expect_refused("another root", "<Error><Code>x</Code></Error>");
	expect_refused("truncated without a token",
		       "<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>");
	expect_refused("IsTruncated not a boolean",
		       "<ListBucketResult><IsTruncated>yes</IsTruncated></ListBucketResult>");
	expect_refused("two IsTruncated", "<ListBucketResult><IsTruncated>false</IsTruncated>"
					  "<IsTruncated>false</IsTruncated></ListBucketResult>");
	expect_refused("no Size", "<ListBucketResult><Contents><Key>k</Key><LastModified>"
				  "2026-11-30T07:28:00Z</LastModified></Contents></ListBucketResult>");
	expect_refused("negative Size",
		       "<ListBucketResult><Contents><Key>k</Key><Size>-1</Size><LastModified>"
		       "2026-11-30T07:28:00Z</LastModified></Contents></ListBucketResult>");
	expect_refused("Size too big",
		       "<ListBucketResult><Contents><Key>k</Key><Size>18446744073709551616</Size>"
		       "<LastModified>2026-11-30T07:28:00Z</LastModified></Contents></ListBucketResult>");
	expect_refused("empty key", "<ListBucketResult><Contents><Key></Key><Size>1</Size><LastModified>"
				    "2026-11-30T07:28:00Z</LastModified></Contents></ListBucketResult>");
	expect_refused("a key with an element inside",
		       "<ListBucketResult><Contents><Key>a<b/>c</Key><Size>1</Size><LastModified>"
		       "2026-11-30T07:28:00Z</LastModified></Contents></ListBucketResult>");
	expect_refused("a bad time", "<ListBucketResult><Contents><Key>k</Key><Size>1</Size>"
				     "<LastModified>2026-13-30T07:28:00Z</LastModified></Contents>"
				     "</ListBucketResult>");
	expect_refused("a DTD with entities",
		       "<?xml version=\"1.0\"?><!DOCTYPE l [<!ENTITY a \"aaaaaaaaaa\">"
		       "<!ENTITY b \"&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;\">]>"
		       "<ListBucketResult><Contents><Key>&b;</Key><Size>1</Size><LastModified>"
		       "2026-11-30T07:28:00Z</LastModified></Contents></ListBucketResult>");
	expect_refused("an external entity",
		       "<?xml version=\"1.0\"?><!DOCTYPE l SYSTEM \"file:///etc/passwd\">"
		       "<ListBucketResult></ListBucketResult>");
	/* A key past S3's 1,024 bytes. */
	big = tu_xmalloc(4096);
	strcpy(big, "<ListBucketResult><Contents><Key>");
	memset(big + strlen(big), 'k', 1025);
	strcpy(big + 33 + 1025, "</Key><Size>1</Size><LastModified>2026-11-30T07:28:00Z"
				"</LastModified></Contents></ListBucketResult>");
	expect_refused("a key of 1,025 bytes", big);
	free(big);
}

static void test_error_and_upload(void)
{
	const char *err = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>NoSuchKey</Code>"
			  "<Message>m</Message><RequestId>r</RequestId></Error>";
	const char *up = "<InitiateMultipartUploadResult " NS "><Bucket>b</Bucket><Key>k</Key>"
			 "<UploadId>2~abc</UploadId></InitiateMultipartUploadResult>";
	char code[8], *id;

	TU_TEST("error documents and upload ids");
	CHECK_EQ(s3_xml_parse_error(err, strlen(err), code, sizeof(code)), 0);
	CHECK(!strcmp(code, "NoSuchK")); /* truncated to fit */
	CHECK_EQ(s3_xml_parse_error(up, strlen(up), code, sizeof(code)), -EPROTO);
	CHECK_EQ(s3_xml_parse_error("<Error></Error>", 15, code, sizeof(code)), -EPROTO);
	CHECK_EQ(s3_xml_parse_upload_id(up, strlen(up), &id), 0);
	CHECK(id && !strcmp(id, "2~abc"));
	free(id);
	CHECK_EQ(s3_xml_parse_upload_id(err, strlen(err), &id), -EPROTO);
	CHECK(id == NULL);
	{
		const char *empty = "<InitiateMultipartUploadResult><UploadId></UploadId>"
				    "</InitiateMultipartUploadResult>";

		CHECK_EQ(s3_xml_parse_upload_id(empty, strlen(empty), &id), -EPROTO);
		CHECK(id == NULL);
	}
}

static void test_uploads_and_parts(void)
{
	const char *ups = "<ListMultipartUploadsResult " NS "><Bucket>b</Bucket>"
			  "<Upload><Key>p/s/k</Key><UploadId>2~old</UploadId>"
			  "<Initiated>2026-11-30T07:00:00.000Z</Initiated></Upload>"
			  "<Upload><Key>p/s/k.other</Key><UploadId>2~not</UploadId>"
			  "<Initiated>2026-11-30T08:00:00.000Z</Initiated></Upload>"
			  "<Upload><Key>p/s/k</Key><UploadId>2~new</UploadId>"
			  "<Initiated>2026-11-30T07:30:00Z</Initiated></Upload>"
			  "<IsTruncated>false</IsTruncated></ListMultipartUploadsResult>";
	const char *parts = "<ListPartsResult " NS "><Part><PartNumber>1</PartNumber>"
			    "<ETag>&quot;0123abcd&quot;</ETag><Size>5242880</Size></Part>"
			    "<Part><PartNumber>3</PartNumber><ETag>\"ef\"</ETag><Size>7</Size></Part>"
			    "<IsTruncated>true</IsTruncated>"
			    "<NextPartNumberMarker>3</NextPartNumberMarker></ListPartsResult>";
	struct s3_uploads u;
	struct s3_parts p;

	TU_TEST("the uploads under way of a key, and the parts of one");
	CHECK_EQ(s3_xml_parse_uploads(ups, strlen(ups), "p/s/k", &u), 0);
	CHECK_EQ(u.count, 2); /* another key's is left out */
	CHECK(!strcmp(u.uploads[0].upload_id, "2~old") && !strcmp(u.uploads[1].upload_id, "2~new"));
	CHECK(u.uploads[1].initiated > u.uploads[0].initiated);
	CHECK(!u.truncated);
	s3_uploads_free(&u);
	CHECK_EQ(s3_xml_parse_uploads(ups, strlen(ups), "nothing", &u), 0);
	CHECK_EQ(u.count, 0);
	s3_uploads_free(&u);
	CHECK_EQ(s3_xml_parse_parts(parts, strlen(parts), &p), 0);
	CHECK_EQ(p.count, 2);
	CHECK(p.parts[0].number == 1 && p.parts[0].size == 5242880 &&
	      !strcmp(p.parts[0].etag, "\"0123abcd\""));
	CHECK(p.parts[1].number == 3 && p.parts[1].size == 7);
	CHECK(p.truncated && p.next_marker == 3);
	s3_parts_free(&p);
	{
		static const char *const bad[] = {
			/* no UploadId; an Initiated that is not a time */
			"<ListMultipartUploadsResult><Upload><Key>k</Key><Initiated>2026-11-30T07:00:00Z"
			"</Initiated></Upload></ListMultipartUploadsResult>",
			"<ListMultipartUploadsResult><Upload><Key>k</Key><UploadId>x</UploadId>"
			"<Initiated>yesterday</Initiated></Upload></ListMultipartUploadsResult>",
		};
		static const char *const bad_parts[] = {
			/* part 0, part 10001, no ETag, truncated without a marker */
			"<ListPartsResult><Part><PartNumber>0</PartNumber><ETag>e</ETag><Size>1</Size>"
			"</Part></ListPartsResult>",
			"<ListPartsResult><Part><PartNumber>10001</PartNumber><ETag>e</ETag><Size>1</Size>"
			"</Part></ListPartsResult>",
			"<ListPartsResult><Part><PartNumber>2</PartNumber><Size>1</Size></Part>"
			"</ListPartsResult>",
			"<ListPartsResult><IsTruncated>true</IsTruncated></ListPartsResult>",
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
			CHECK_EQ(s3_xml_parse_uploads(bad[i], strlen(bad[i]), "k", &u), -EPROTO);
			CHECK(u.uploads == NULL && u.count == 0);
		}
		for (size_t i = 0; i < sizeof(bad_parts) / sizeof(*bad_parts); i++) {
			CHECK_EQ(s3_xml_parse_parts(bad_parts[i], strlen(bad_parts[i]), &p), -EPROTO);
			CHECK(p.parts == NULL && p.count == 0);
		}
	}
}

static void test_times(void)
{
	int64_t t;

	TU_TEST("LastModified times");
	CHECK_EQ(s3_parse_time("1970-01-01T00:00:00Z", &t), 0);
	CHECK_EQ(t, 0);
	CHECK_EQ(s3_parse_time("2026-11-30T07:28:00.123456Z", &t), 0);
	CHECK_EQ(t, 1796023680);
	CHECK_EQ(s3_parse_time("2026-11-30T07:28:00", &t), -EPROTO);
	CHECK_EQ(s3_parse_time("2026-11-30T07:28:00.Z", &t), -EPROTO);
	CHECK_EQ(s3_parse_time("2026-11-30 07:28:00Z", &t), -EPROTO);
	CHECK_EQ(s3_parse_time("2026-1-30T07:28:00Z", &t), -EPROTO);
	CHECK_EQ(s3_parse_time("+026-11-30T07:28:00Z", &t), -EPROTO);
	CHECK_EQ(s3_parse_time("2026-11-30T24:00:00Z", &t), -EPROTO);
	CHECK_EQ(s3_parse_time("", &t), -EPROTO);
}

static void test_locations(void)
{
	char why[200], *bucket, *prefix;

	TU_TEST("s3:// locations");
	REQUIRE(s3_location_parse("s3://my-bucket", &bucket, &prefix, why, sizeof(why)) == 0);
	CHECK(!strcmp(bucket, "my-bucket") && !strcmp(prefix, ""));
	free(bucket);
	free(prefix);
	REQUIRE(s3_location_parse("s3://b.1/a/b/", &bucket, &prefix, why, sizeof(why)) == 0);
	CHECK(!strcmp(bucket, "b.1") && !strcmp(prefix, "a/b"));
	free(bucket);
	free(prefix);
	CHECK_EQ(s3_location_parse("s3://", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	CHECK_EQ(s3_location_parse("s3://ab", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	CHECK_EQ(s3_location_parse("s3://Upper", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	CHECK_EQ(s3_location_parse("s3://-bad", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	CHECK_EQ(s3_location_parse("s3://bkt//x", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	CHECK_EQ(s3_location_parse("s3://bkt/a//x", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	CHECK_EQ(s3_location_parse("s3://bkt/x/..", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	CHECK_EQ(s3_location_parse("s3://bkt/../x", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	CHECK_EQ(s3_location_parse("s3://bkt/a/./b", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	CHECK_EQ(s3_location_parse("s3://bkt/a\nb", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	REQUIRE(s3_location_parse("s3://bkt/..a/b.", &bucket, &prefix, why, sizeof(why)) == 0);
	CHECK(!strcmp(prefix, "..a/b."));
	free(bucket);
	free(prefix);
	CHECK_EQ(s3_location_parse("http://bkt", &bucket, &prefix, why, sizeof(why)), -EINVAL);
	CHECK(bucket == NULL && prefix == NULL);
	CHECK(strstr(why, "s3://") != NULL);
}

/* The environment of a test: NAME=VALUE pairs. */
static const char *const *test_env;

static const char *env_get(const char *name)
{
	size_t n = strlen(name);

	for (const char *const *e = test_env; *e; e++)
		if (!strncmp(*e, name, n) && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

static int load(const char *const *env, const char *endpoint_opt, struct s3_config *c,
		char *why)
{
	test_env = env;
	return s3_config_load("s3://bkt/pre", endpoint_opt, env_get, c, why, 200);
}

static int write_text(const char *path, const char *text)
{
	return tu_write_file(path, text, strlen(text));
}

static void test_config(void)
{
	char why[200], creds[512], conf[512], home_creds[512], env_creds[600], env_conf[600],
		env_home[600];
	const char *dir = tu_tmpdir();
	struct s3_config c;

	TU_TEST("endpoint, region and keys");
	{
		const char *env[] = { "AWS_ACCESS_KEY_ID=AK", "AWS_SECRET_ACCESS_KEY=SK",
				      "AWS_ENDPOINT_URL=http://127.0.0.1:7480/", "HOME=/nonexistent",
				      NULL };

		REQUIRE(load(env, NULL, &c, why) == 0);
		CHECK(!strcmp(c.bucket, "bkt") && !strcmp(c.prefix, "pre"));
		CHECK(!strcmp(c.endpoint, "http://127.0.0.1:7480"));
		CHECK(!strcmp(c.region, "us-east-1"));
		CHECK(!strcmp(c.access_key, "AK") && !strcmp(c.secret_key, "SK"));
		CHECK(c.session_token == NULL);
		s3_config_free(&c);
		/* -o s3_endpoint wins; AWS_ENDPOINT_URL_S3 over AWS_ENDPOINT_URL. */
		REQUIRE(load(env, "https://s3.example.org", &c, why) == 0);
		CHECK(!strcmp(c.endpoint, "https://s3.example.org"));
		s3_config_free(&c);
	}
	{
		const char *env[] = { "AWS_ACCESS_KEY_ID=AK", "AWS_SECRET_ACCESS_KEY=SK",
				      "AWS_ENDPOINT_URL=http://a:1", "AWS_ENDPOINT_URL_S3=http://b:2",
				      "AWS_DEFAULT_REGION=eu-west-1", "AWS_SESSION_TOKEN=T",
				      "HOME=/nonexistent", NULL };

		REQUIRE(load(env, NULL, &c, why) == 0);
		CHECK(!strcmp(c.endpoint, "http://b:2"));
		CHECK(!strcmp(c.region, "eu-west-1"));
		CHECK(c.session_token && !strcmp(c.session_token, "T"));
		s3_config_free(&c);
	}
	{
		const char *no_endpoint[] = { "AWS_ACCESS_KEY_ID=AK", "AWS_SECRET_ACCESS_KEY=SK",
					      "HOME=/nonexistent", NULL };
		const char *bad_endpoint[] = { "AWS_ACCESS_KEY_ID=AK", "AWS_SECRET_ACCESS_KEY=SK",
					       "AWS_ENDPOINT_URL=ftp://x", "HOME=/nonexistent", NULL };
		const char *path_endpoint[] = { "AWS_ACCESS_KEY_ID=AK", "AWS_SECRET_ACCESS_KEY=SK",
						"AWS_ENDPOINT_URL=http://x/path",
						"HOME=/nonexistent", NULL };
		const char *no_keys[] = { "AWS_ENDPOINT_URL=http://x", "HOME=/nonexistent", NULL };

		CHECK_EQ(load(no_endpoint, NULL, &c, why), -EINVAL);
		CHECK(strstr(why, "AWS_ENDPOINT_URL") != NULL);
		CHECK_EQ(load(bad_endpoint, NULL, &c, why), -EINVAL);
		CHECK_EQ(load(path_endpoint, NULL, &c, why), -EINVAL);
		CHECK_EQ(load(no_keys, NULL, &c, why), -EINVAL);
		CHECK(strstr(why, "credentials") != NULL);
		CHECK(c.bucket == NULL);
	}

	TU_TEST("the shared credentials and config files, with profiles");
	tu_path(creds, sizeof(creds), "%s/credentials", dir);
	tu_path(conf, sizeof(conf), "%s/config", dir);
	REQUIRE(write_text(creds, "# keys\n[default]\naws_access_key_id = DK\n"
				     "aws_secret_access_key=DS\n\n[work]\n ; a comment\n"
				     "aws_access_key_id = WK \naws_secret_access_key = WS\n") == 0);
	REQUIRE(write_text(conf, "[default]\nregion = r-default\nendpoint_url = http://d:1\n"
				    "[profile work]\nregion=r-work\nendpoint_url=http://w:2\n") == 0);
	snprintf(env_creds, sizeof(env_creds), "AWS_SHARED_CREDENTIALS_FILE=%s", creds);
	snprintf(env_conf, sizeof(env_conf), "AWS_CONFIG_FILE=%s", conf);
	{
		const char *env[] = { env_creds, env_conf, NULL };
		const char *work[] = { env_creds, env_conf, "AWS_PROFILE=work", NULL };
		const char *missing[] = { env_creds, env_conf, "AWS_PROFILE=none", NULL };

		REQUIRE(load(env, NULL, &c, why) == 0);
		CHECK(!strcmp(c.access_key, "DK") && !strcmp(c.secret_key, "DS"));
		CHECK(!strcmp(c.region, "r-default") && !strcmp(c.endpoint, "http://d:1"));
		s3_config_free(&c);
		REQUIRE(load(work, NULL, &c, why) == 0);
		CHECK(!strcmp(c.access_key, "WK") && !strcmp(c.secret_key, "WS"));
		CHECK(!strcmp(c.region, "r-work") && !strcmp(c.endpoint, "http://w:2"));
		s3_config_free(&c);
		CHECK_EQ(load(missing, "http://x", &c, why), -EINVAL);
	}
	/* $HOME/.aws/credentials when no variable names a file. */
	tu_path(home_creds, sizeof(home_creds), "%s/.aws", dir);
	REQUIRE(mkdir(home_creds, 0700) == 0);
	tu_path(home_creds, sizeof(home_creds), "%s/.aws/credentials", dir);
	REQUIRE(write_text(home_creds, "[default]\naws_access_key_id=HK\naws_secret_access_key=HS\n") == 0);
	snprintf(env_home, sizeof(env_home), "HOME=%s", dir);
	{
		const char *env[] = { env_home, "AWS_ENDPOINT_URL=http://h:3", NULL };

		REQUIRE(load(env, NULL, &c, why) == 0);
		CHECK(!strcmp(c.access_key, "HK") && !strcmp(c.secret_key, "HS"));
		s3_config_free(&c);
	}
}

int main(int argc, char **argv)
{
	(void)argc;
	tu_init(argv[0]);
	test_listing();
	test_listing_refused();
	test_error_and_upload();
	test_uploads_and_parts();
	test_times();
	test_locations();
	test_config();
	return tu_finish();
}
