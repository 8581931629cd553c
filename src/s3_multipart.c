/*
 * s3_multipart.c - the calls of an S3 multipart upload (start, a part,
 * complete; abort; and, to resume one, find it and list its parts), over
 * the request layer of s3_client.c (s3_request.h). A part is signed with
 * its own SHA-256; complete's body is the parts' ETags in order, and an
 * Error document in a 200 answer is a failure (S3 may answer so).
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

int s3_multipart_find(struct s3_client *client, const char *key, char **upload_id)
{
	/* In byte order of their names (what make_url wants). */
	const struct param params[] = { { "prefix", key }, { "uploads", "" } };
	struct request r = { .client = client, .method = "GET", .key = NULL, .params = params,
			     .nparams = 2, .bounded = true };
	struct s3_uploads u = { 0 };
	int ret = s3_request_run(&r);
	size_t last = 0;

	*upload_id = NULL;
	if (ret == 0) {
		ret = s3_xml_parse_uploads(r.answer.data, r.answer.len, key, &u);
		if (ret < 0)
			s3_set_error("a list of uploads that does not parse");
	}
	if (ret == 0 && u.count == 0)
		ret = -ENOENT;
	if (ret == 0) {
		for (size_t i = 1; i < u.count; i++)
			if (u.uploads[i].initiated >= u.uploads[last].initiated)
				last = i;
		*upload_id = strdup(u.uploads[last].upload_id);
		if (!*upload_id)
			ret = -ENOMEM;
	}
	s3_uploads_free(&u);
	s3_request_done(&r);
	return ret;
}

int s3_multipart_list_parts(struct s3_client *client, const char *key, const char *upload_id,
			    unsigned parts, uint64_t *sizes, char (*etags)[129])
{
	unsigned marker = 0;
	bool more = true;
	int ret = 0;

	for (unsigned i = 0; i < parts; i++) {
		sizes[i] = 0;
		etags[i][0] = '\0';
	}
	while (more && ret == 0) {
		char m[16];
		const struct param params[] = { { "part-number-marker", marker ? m : NULL },
						{ "uploadId", upload_id } };
		struct request r = { .client = client, .method = "GET", .key = key,
				     .params = params, .nparams = 2, .bounded = true };
		struct s3_parts p = { 0 };

		snprintf(m, sizeof(m), "%u", marker);
		ret = s3_request_run(&r);
		if (ret == 0) {
			ret = s3_xml_parse_parts(r.answer.data, r.answer.len, &p);
			if (ret < 0)
				s3_set_error("a list of parts that does not parse");
		}
		for (size_t i = 0; ret == 0 && i < p.count; i++) {
			if (p.parts[i].number > parts)
				continue;
			sizes[p.parts[i].number - 1] = p.parts[i].size;
			memcpy(etags[p.parts[i].number - 1], p.parts[i].etag, sizeof(p.parts[i].etag));
		}
		more = ret == 0 && p.truncated;
		/* A page that does not move on would be asked for forever. */
		if (more && p.next_marker <= marker) {
			s3_set_error("a list of parts that does not move on");
			ret = -EPROTO;
		}
		marker = p.next_marker;
		s3_parts_free(&p);
		s3_request_done(&r);
	}
	return ret;
}
