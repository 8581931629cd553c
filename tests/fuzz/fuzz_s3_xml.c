/*
 * fuzz_s3_xml.c - the parsers of the object store's answers (src/s3_xml.c),
 * which read what the network sends: ListObjectsV2 listings, error
 * documents, multipart upload ids, LastModified times. Invariants:
 *   - a listing either parses (every key a non-empty string of at most
 *     S3_KEY_MAX bytes, every common prefix too, a token whenever it is
 *     truncated) or fails with -EPROTO/-ENOMEM and leaves nothing allocated
 *     behind (the struct zeroed);
 *   - an error code is always terminated within its buffer;
 *   - an upload id is a non-empty string or NULL with an error;
 *   - a time that parses is a 19- to 20+-character ISO 8601 UTC text;
 *   - a list of uploads keeps only non-empty ids (of the key asked for), a
 *     list of parts only numbers 1 to 10,000 with an ETag, and a truncated
 *     one says where to go on; a failure leaves nothing allocated.
 *
 * Input: byte 0 picks the parser (0-5; 3, 6 and 7: times), the rest is the
 * body (for times, a NUL-terminated copy of it).
 */
#include <errno.h>

#include "fuzz_common.h"
#include "s3_xml.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *body = (const char *)data + 1;
	size_t len;

	if (size < 1 || size - 1 > S3_XML_BODY_MAX)
		return 0;
	len = size - 1;
	switch (data[0] & 7) {
	case 0: {
		struct s3_listing l;
		int ret = s3_xml_parse_listing(body, len, &l);

		if (ret == 0) {
			for (size_t i = 0; i < l.object_count; i++) {
				size_t k = strlen(l.objects[i].key);

				FUZZ_CHECK(k > 0 && k <= S3_KEY_MAX);
			}
			for (size_t i = 0; i < l.prefix_count; i++)
				FUZZ_CHECK(strlen(l.prefixes[i]) <= S3_KEY_MAX);
			FUZZ_CHECK(!l.truncated || (l.next_token && l.next_token[0]));
			s3_listing_free(&l);
		} else {
			FUZZ_CHECK(ret == -EPROTO || ret == -ENOMEM);
			FUZZ_CHECK(!l.objects && !l.prefixes && !l.next_token && !l.object_count);
		}
		break;
	}
	case 1: {
		char code[16];
		int ret;

		memset(code, 'x', sizeof(code));
		ret = s3_xml_parse_error(body, len, code, sizeof(code));
		FUZZ_CHECK(ret == 0 || ret == -EPROTO || ret == -ENOMEM);
		if (ret == 0)
			FUZZ_CHECK(memchr(code, '\0', sizeof(code)) != NULL);
		break;
	}
	case 2: {
		char *id = NULL;
		int ret = s3_xml_parse_upload_id(body, len, &id);

		FUZZ_CHECK(ret == 0 ? id && id[0] : id == NULL);
		free(id);
		break;
	}
	case 4: {
		struct s3_uploads u;
		int ret = s3_xml_parse_uploads(body, len, "s/k", &u);

		if (ret == 0) {
			for (size_t i = 0; i < u.count; i++)
				FUZZ_CHECK(u.uploads[i].upload_id && u.uploads[i].upload_id[0]);
			s3_uploads_free(&u);
		} else {
			FUZZ_CHECK(ret == -EPROTO || ret == -ENOMEM);
			FUZZ_CHECK(!u.uploads && !u.count);
		}
		break;
	}
	case 5: {
		struct s3_parts p;
		int ret = s3_xml_parse_parts(body, len, &p);

		if (ret == 0) {
			for (size_t i = 0; i < p.count; i++)
				FUZZ_CHECK(p.parts[i].number >= 1 && p.parts[i].number <= 10000 &&
					   p.parts[i].etag[0] &&
					   memchr(p.parts[i].etag, '\0', sizeof(p.parts[i].etag)));
			FUZZ_CHECK(!p.truncated || (p.next_marker >= 1 && p.next_marker < 10000));
			s3_parts_free(&p);
		} else {
			FUZZ_CHECK(ret == -EPROTO || ret == -ENOMEM);
			FUZZ_CHECK(!p.parts && !p.count);
		}
		break;
	}
	default: {
		char *text = malloc(len + 1);
		int64_t t;

		if (!text)
			return 0;
		memcpy(text, body, len);
		text[len] = '\0';
		if (s3_parse_time(text, &t) == 0)
			FUZZ_CHECK(strlen(text) >= 20 && text[4] == '-' && text[10] == 'T' &&
				   text[strlen(text) - 1] == 'Z');
		free(text);
		break;
	}
	}
	return 0;
}
