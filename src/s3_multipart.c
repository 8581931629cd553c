/*
 * s3_multipart.c - the three calls of an S3 multipart upload (start, a part,
 * complete; and abort), over the request layer of s3_client.c
 * (s3_request.h). A part is signed with its own SHA-256; complete's body is
 * the parts' ETags in order, and an Error document in a 200 answer is a
 * failure (S3 may answer so).
 */
#include "s3_request.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"

int s3_multipart_start(struct s3_client *client, const char *key, char **upload_id)
{
	const struct param params[] = { { "uploads", "" } };
	struct request r = { .client = client, .method = "POST", .key = key, .params = params,
			     .nparams = 1, .bounded = true };
	int ret = s3_request_run(&r);

	*upload_id = NULL;
	if (ret == 0) {
		ret = s3_xml_parse_upload_id(r.answer.data, r.answer.len, upload_id);
		if (ret < 0)
			s3_set_error("an upload id that does not parse");
	}
	s3_request_done(&r);
	return ret;
}

int s3_multipart_part(struct s3_client *client, const char *key, const char *upload_id,
		      unsigned part, uint64_t len, const char *sha256_hex, s3_source_fn source,
		      void *arg, char etag[129])
{
	char number[16];
	const struct param params[] = { { "partNumber", number }, { "uploadId", upload_id } };
	struct request r = { .client = client, .method = "PUT", .key = key, .params = params,
			     .nparams = 2, .sha256_hex = sha256_hex, .source = source,
			     .source_arg = arg, .body_len = len };
	int ret;

	if (!s3_hex_ok(sha256_hex) || part < 1 || part > 10000)
		return -EINVAL;
	snprintf(number, sizeof(number), "%u", part);
	ret = s3_request_run(&r);
	if (ret == 0 && !r.etag[0]) {
		s3_set_error("a part's answer without an ETag");
		ret = -EPROTO;
	}
	if (ret == 0)
		memcpy(etag, r.etag, sizeof(r.etag));
	s3_request_done(&r);
	return ret;
}

int s3_multipart_complete(struct s3_client *client, const char *key, const char *upload_id,
			  char (*etags)[129], unsigned parts)
{
	const struct param params[] = { { "uploadId", upload_id } };
	/* A server may take minutes to put a large object together. */
	struct request r = { .client = client, .method = "POST", .key = key, .params = params,
			     .nparams = 1, .patient = true };
	struct buf body = { .max = (size_t)parts * 200 + 128 };
	uint8_t hash[BLOBFS_HASH_SIZE];
	char hex[HASH_HEX_SIZE + 1], line[200], code[64];
	int ret = s3_buf_add_str(&body, "<CompleteMultipartUpload>");

	for (unsigned i = 0; i < parts && ret == 0; i++) {
		/* An ETag goes back as it came; one that would need escaping
		 * is not one S3 sends. */
		if (strpbrk(etags[i], "<>&") || !etags[i][0]) {
			ret = -EPROTO;
			break;
		}
		snprintf(line, sizeof(line), "<Part><PartNumber>%u</PartNumber><ETag>%s</ETag></Part>",
			 i + 1, etags[i]);
		ret = s3_buf_add_str(&body, line);
	}
	if (ret == 0)
		ret = s3_buf_add_str(&body, "</CompleteMultipartUpload>");
	if (ret == 0)
		ret = hash_buffer(body.data, body.len, hash);
	if (ret < 0)
		goto out;
	hash_to_hex(hash, hex);
	r.body = body.data;
	r.body_len = body.len;
	r.sha256_hex = hex;
	ret = s3_request_run(&r);
	/* S3 may answer 200 and then an Error document: the upload failed. */
	if (ret == 0 && r.answer.len &&
	    s3_xml_parse_error(r.answer.data, r.answer.len, code, sizeof(code)) == 0) {
		{
		char text[96];

		snprintf(text, sizeof(text), "HTTP 200 then error %s", code);
		s3_set_error(text);
	}
		ret = s3_status_errno(500, code);
	}
out:
	free(body.data);
	s3_request_done(&r);
	return ret;
}

int s3_multipart_abort(struct s3_client *client, const char *key, const char *upload_id)
{
	const struct param params[] = { { "uploadId", upload_id } };
	struct request r = { .client = client, .method = "DELETE", .key = key, .params = params,
			     .nparams = 1, .bounded = true };
	int ret = s3_request_run(&r);

	s3_request_done(&r);
	return ret;
}
