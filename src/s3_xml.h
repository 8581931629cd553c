/*
 * s3_xml.h - the XML answers of an S3 object store, parsed into plain
 * structs: a listing (ListObjectsV2), an error document, the id of a
 * multipart upload, the uploads under way of a key and the parts of one. Bodies are untrusted input (fuzzed by
 * tests/fuzz/fuzz_s3_xml.c): libxml2 parses them with the network and
 * entity substitution off, every string is bounded, and anything that does
 * not check out is -EPROTO, never a partial answer.
 */
#ifndef BLOBFS_S3_XML_H
#define BLOBFS_S3_XML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* The longest key S3 allows, in bytes. */
#define S3_KEY_MAX 1024
/* The largest XML body blobfs accepts (a listing of 1,000 keys is about
 * 300 KB). */
#define S3_XML_BODY_MAX (8u << 20)

struct s3_object {
	char *key;
	uint64_t size;
	int64_t mtime; /* LastModified, seconds since the epoch */
};

struct s3_listing {
	struct s3_object *objects; /* in the order given (S3: key order) */
	size_t object_count;
	char **prefixes; /* CommonPrefixes */
	size_t prefix_count;
	bool truncated;   /* IsTruncated: more follow */
	/* Keys and prefixes are given as they are: when the answer says
	 * EncodingType url (asked for with encoding-type=url, so that keys with
	 * bytes XML cannot carry come through), they were decoded, and any that
	 * did not decode were left out. */
	char *next_token; /* NextContinuationToken, or NULL */
};

/* Parses a ListBucketResult. 0, -EPROTO (not one, or a field out of
 * bounds), -ENOMEM. *out is zeroed first and owns its strings. */
int s3_xml_parse_listing(const char *body, size_t len, struct s3_listing *out);
void s3_listing_free(struct s3_listing *listing);

/* The Code of an Error document, copied into code (truncated to fit,
 * always terminated); -EPROTO when body is not one. */
int s3_xml_parse_error(const char *body, size_t len, char *code, size_t code_size);

/* The UploadId of an InitiateMultipartUploadResult (malloc'ed). */
int s3_xml_parse_upload_id(const char *body, size_t len, char **upload_id);

/* The uploads under way of one key (ListMultipartUploadsResult, asked for
 * with prefix=KEY): entries for other keys are left out. */
struct s3_upload_entry {
	char *upload_id;
	int64_t initiated; /* seconds since the epoch */
};

struct s3_uploads {
	struct s3_upload_entry *uploads;
	size_t count;
	bool truncated;
};

int s3_xml_parse_uploads(const char *body, size_t len, const char *key, struct s3_uploads *out);
void s3_uploads_free(struct s3_uploads *uploads);

/* The parts of a multipart upload (ListPartsResult). */
struct s3_part {
	unsigned number; /* 1 to 10,000 */
	uint64_t size;
	char etag[129];
};

struct s3_parts {
	struct s3_part *parts;
	size_t count;
	bool truncated;
	unsigned next_marker; /* NextPartNumberMarker: where the next page starts */
};

int s3_xml_parse_parts(const char *body, size_t len, struct s3_parts *out);
void s3_parts_free(struct s3_parts *parts);

/* "2026-11-30T07:28:00.000Z" (fractional seconds optional) to seconds
 * since the epoch; -EPROTO for anything else. */
int s3_parse_time(const char *text, int64_t *out);

#endif
