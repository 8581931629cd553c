/*
 * s3_xml.c - parsing the object store's XML answers with libxml2.
 *
 * A document with a DTD is refused outright: S3 never sends one, and an
 * internal subset is where entity tricks (billion laughs, external
 * entities) live. The network is off (XML_PARSE_NONET) and entities are
 * never substituted. Elements are matched by local name, whatever their
 * namespace (radosgw and AWS use the 2006-03-01 one; others may use none);
 * unknown elements are skipped.
 */
#include "s3_xml.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/parser.h>
#include <libxml/tree.h>

#include "escape.h"

/* Tokens and upload ids are opaque; none seen is near this long. */
#define S3_TOKEN_MAX 2048

static int doc_read(const char *body, size_t len, const char *root_name, xmlDoc **out)
{
	xmlDoc *doc = NULL;
	xmlNode *root;
	int ret = -EPROTO;

	*out = NULL;
	if (len == 0 || len > S3_XML_BODY_MAX)
		goto out;
	doc = xmlReadMemory(body, (int)len, NULL, NULL,
			    XML_PARSE_NONET | XML_PARSE_NOERROR | XML_PARSE_NOWARNING);
	if (!doc || doc->intSubset || doc->extSubset)
		goto out;
	root = xmlDocGetRootElement(doc);
	if (!root || strcmp((const char *)root->name, root_name))
		goto out;
	*out = doc;
	doc = NULL;
	ret = 0;
out:
	xmlFreeDoc(doc);
	return ret;
}

static bool named(const xmlNode *n, const char *name)
{
	return n->type == XML_ELEMENT_NODE && !strcmp((const char *)n->name, name);
}

/* The text of an element made only of text (no child element, no entity
 * reference), at most max bytes, as a new string; -EPROTO otherwise. */
static int text_dup(const xmlNode *n, size_t max, char **out)
{
	size_t len = 0;
	char *s;

	*out = NULL;
	for (const xmlNode *c = n->children; c; c = c->next) {
		if (c->type != XML_TEXT_NODE && c->type != XML_CDATA_SECTION_NODE)
			return -EPROTO;
		len += strlen((const char *)c->content);
		if (len > max)
			return -EPROTO;
	}
	s = malloc(len + 1);
	if (!s)
		return -ENOMEM;
	s[0] = '\0';
	for (const xmlNode *c = n->children; c; c = c->next)
		strcat(s, (const char *)c->content);
	*out = s;
	return 0;
}

static int parse_u64(const xmlNode *n, uint64_t *out)
{
	char *text, *end;
	int ret = text_dup(n, 20, &text);

	if (ret < 0)
		return ret;
	errno = 0;
	*out = strtoull(text, &end, 10);
	if (!text[0] || *end || errno || text[0] == '-' || text[0] == '+' || text[0] == ' ')
		ret = -EPROTO;
	free(text);
	return ret;
}

int s3_parse_time(const char *text, int64_t *out)
{
	struct tm tm = { 0 };
	int year, mon, day, hour, min, sec, used = 0;
	const char *p;
	time_t t;

	if (sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2d%n", &year, &mon, &day, &hour, &min, &sec,
		   &used) != 6 || used != 19)
		return -EPROTO;
	for (int i = 0; i < 19; i++)
		if ((i == 4 || i == 7) ? text[i] != '-' : i == 10 ? text[i] != 'T' :
		    (i == 13 || i == 16) ? text[i] != ':' : (text[i] < '0' || text[i] > '9'))
			return -EPROTO;
	p = text + 19;
	if (*p == '.') {
		p++;
		if (*p < '0' || *p > '9')
			return -EPROTO;
		while (*p >= '0' && *p <= '9')
			p++;
	}
	if (strcmp(p, "Z") || mon < 1 || mon > 12 || day < 1 || day > 31 || hour > 23 ||
	    min > 59 || sec > 60)
		return -EPROTO;
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EPROTO;
	*out = (int64_t)t;
	return 0;
}

static int parse_object(const xmlNode *n, struct s3_object *o)
{
	bool have_size = false, have_time = false;
	char *text;
	int ret = 0;

	for (const xmlNode *c = n->children; c && ret == 0; c = c->next) {
		if (named(c, "Key")) {
			if (o->key)
				return -EPROTO;
			ret = text_dup(c, S3_KEY_MAX, &o->key);
			if (ret == 0 && !o->key[0])
				ret = -EPROTO;
		} else if (named(c, "Size")) {
			ret = have_size ? -EPROTO : parse_u64(c, &o->size);
			have_size = true;
		} else if (named(c, "LastModified")) {
			if (have_time)
				return -EPROTO;
			have_time = true;
			ret = text_dup(c, 64, &text);
			if (ret == 0)
				ret = s3_parse_time(text, &o->mtime);
			free(text);
		}
	}
	if (ret == 0 && (!o->key || !have_size || !have_time))
		ret = -EPROTO;
	return ret;
}

static int parse_prefix(const xmlNode *n, char **out)
{
	int ret = -EPROTO;

	for (const xmlNode *c = n->children; c; c = c->next) {
		if (!named(c, "Prefix"))
			continue;
		if (*out)
			return -EPROTO;
		ret = text_dup(c, S3_KEY_MAX, out);
		if (ret < 0)
			return ret;
	}
	return ret;
}

/* Decodes in place what encoding-type=url encoded: %XX, and '+' for a
 * space (a '+' itself comes as %2B). false for a bad escape or a NUL. */
static bool url_decode(char *s)
{
	size_t len = strlen(s);
	int n = percent_decode(s, len, s, true);

	return n >= 0 && strlen(s) == (size_t)n;
}

/* Keys and prefixes of a listing sent with encoding-type=url: decoded; an
 * entry that does not decode (a NUL, a bad escape) is left out. */
static void listing_decode(struct s3_listing *l)
{
	size_t n = 0;

	for (size_t i = 0; i < l->object_count; i++) {
		if (url_decode(l->objects[i].key) && l->objects[i].key[0])
			l->objects[n++] = l->objects[i];
		else
			free(l->objects[i].key);
	}
	l->object_count = n;
	n = 0;
	for (size_t i = 0; i < l->prefix_count; i++) {
		if (url_decode(l->prefixes[i]))
			l->prefixes[n++] = l->prefixes[i];
		else
			free(l->prefixes[i]);
	}
	l->prefix_count = n;
}

void s3_listing_free(struct s3_listing *listing)
{
	for (size_t i = 0; i < listing->object_count; i++)
		free(listing->objects[i].key);
	for (size_t i = 0; i < listing->prefix_count; i++)
		free(listing->prefixes[i]);
	free(listing->objects);
	free(listing->prefixes);
	free(listing->next_token);
	memset(listing, 0, sizeof(*listing));
}

int s3_xml_parse_listing(const char *body, size_t len, struct s3_listing *out)
{
	size_t objects = 0, prefixes = 0;
	bool have_truncated = false, url_encoded = false;
	xmlDoc *doc;
	xmlNode *root;
	char *text = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = doc_read(body, len, "ListBucketResult", &doc);
	if (ret < 0)
		return ret;
	root = xmlDocGetRootElement(doc);
	for (const xmlNode *c = root->children; c; c = c->next) {
		objects += named(c, "Contents");
		prefixes += named(c, "CommonPrefixes");
	}
	out->objects = calloc(objects ? objects : 1, sizeof(*out->objects));
	out->prefixes = calloc(prefixes ? prefixes : 1, sizeof(*out->prefixes));
	if (!out->objects || !out->prefixes) {
		ret = -ENOMEM;
		goto out;
	}
	for (const xmlNode *c = root->children; c && ret == 0; c = c->next) {
		if (named(c, "Contents")) {
			ret = parse_object(c, &out->objects[out->object_count++]);
		} else if (named(c, "CommonPrefixes")) {
			ret = parse_prefix(c, &out->prefixes[out->prefix_count++]);
		} else if (named(c, "IsTruncated")) {
			if (have_truncated) {
				ret = -EPROTO;
				break;
			}
			have_truncated = true;
			ret = text_dup(c, 8, &text);
			if (ret == 0 && (strcmp(text, "true") && strcmp(text, "false")))
				ret = -EPROTO;
			if (ret == 0)
				out->truncated = !strcmp(text, "true");
			free(text);
			text = NULL;
		} else if (named(c, "NextContinuationToken")) {
			ret = out->next_token ? -EPROTO : text_dup(c, S3_TOKEN_MAX, &out->next_token);
		} else if (named(c, "EncodingType")) {
			ret = text_dup(c, 16, &text);
			if (ret == 0)
				url_encoded = !strcmp(text, "url");
			free(text);
			text = NULL;
		}
	}
	if (ret == 0 && url_encoded)
		listing_decode(out);
	/* A truncated listing is only useful with where to go on from. */
	if (ret == 0 && out->truncated && (!out->next_token || !out->next_token[0]))
		ret = -EPROTO;
out:
	xmlFreeDoc(doc);
	if (ret < 0)
		s3_listing_free(out);
	return ret;
}

static int child_text(const char *body, size_t len, const char *root_name, const char *child,
		      size_t max, char **out)
{
	xmlDoc *doc;
	int ret;

	*out = NULL;
	ret = doc_read(body, len, root_name, &doc);
	if (ret < 0)
		return ret;
	ret = -EPROTO;
	for (const xmlNode *c = xmlDocGetRootElement(doc)->children; c; c = c->next) {
		if (!named(c, child))
			continue;
		free(*out);
		ret = text_dup(c, max, out);
		break;
	}
	xmlFreeDoc(doc);
	if (ret < 0) {
		free(*out);
		*out = NULL;
	}
	return ret;
}

int s3_xml_parse_error(const char *body, size_t len, char *code, size_t code_size)
{
	char *text;
	int ret = child_text(body, len, "Error", "Code", 256, &text);

	if (ret < 0)
		return ret;
	snprintf(code, code_size, "%s", text);
	free(text);
	return 0;
}

int s3_xml_parse_upload_id(const char *body, size_t len, char **upload_id)
{
	int ret = child_text(body, len, "InitiateMultipartUploadResult", "UploadId", S3_TOKEN_MAX,
			     upload_id);

	if (ret == 0 && !(*upload_id)[0]) {
		free(*upload_id);
		*upload_id = NULL;
		ret = -EPROTO;
	}
	return ret;
}

/* IsTruncated: "true" or "false", at most once (*seen). */
static int parse_truncated(const xmlNode *n, bool *seen, bool *out)
{
	char *text;
	int ret;

	if (*seen)
		return -EPROTO;
	*seen = true;
	ret = text_dup(n, 8, &text);
	if (ret == 0 && strcmp(text, "true") && strcmp(text, "false"))
		ret = -EPROTO;
	if (ret == 0)
		*out = !strcmp(text, "true");
	free(text);
	return ret;
}

static size_t count_named(const xmlNode *root, const char *name)
{
	size_t n = 0;

	for (const xmlNode *c = root->children; c; c = c->next)
		n += named(c, name);
	return n;
}

void s3_uploads_free(struct s3_uploads *uploads)
{
	for (size_t i = 0; i < uploads->count; i++)
		free(uploads->uploads[i].upload_id);
	free(uploads->uploads);
	memset(uploads, 0, sizeof(*uploads));
}

/* One Upload: its UploadId and Initiated when its Key is key; *mine
 * false (and nothing kept) for another key's. */
static int parse_upload(const xmlNode *n, const char *key, struct s3_upload_entry *e, bool *mine)
{
	char *k = NULL, *text = NULL;
	bool have_time = false;
	int ret = 0;

	for (const xmlNode *c = n->children; c && ret == 0; c = c->next) {
		if (named(c, "Key")) {
			ret = k ? -EPROTO : text_dup(c, S3_KEY_MAX, &k);
		} else if (named(c, "UploadId")) {
			ret = e->upload_id ? -EPROTO : text_dup(c, S3_TOKEN_MAX, &e->upload_id);
		} else if (named(c, "Initiated")) {
			ret = have_time ? -EPROTO : text_dup(c, 64, &text);
			if (ret == 0)
				ret = s3_parse_time(text, &e->initiated);
			have_time = true;
			free(text);
			text = NULL;
		}
	}
	if (ret == 0 && (!k || !e->upload_id || !e->upload_id[0] || !have_time))
		ret = -EPROTO;
	*mine = ret == 0 && !strcmp(k, key);
	if (!*mine) {
		free(e->upload_id);
		e->upload_id = NULL;
	}
	free(k);
	return ret;
}

int s3_xml_parse_uploads(const char *body, size_t len, const char *key, struct s3_uploads *out)
{
	bool have_truncated = false;
	xmlDoc *doc;
	xmlNode *root;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = doc_read(body, len, "ListMultipartUploadsResult", &doc);
	if (ret < 0)
		return ret;
	root = xmlDocGetRootElement(doc);
	out->uploads = calloc(count_named(root, "Upload") + 1, sizeof(*out->uploads));
	if (!out->uploads)
		ret = -ENOMEM;
	for (const xmlNode *c = root->children; c && ret == 0; c = c->next) {
		bool mine = false;

		if (named(c, "Upload")) {
			ret = parse_upload(c, key, &out->uploads[out->count], &mine);
			out->count += mine;
		} else if (named(c, "IsTruncated")) {
			ret = parse_truncated(c, &have_truncated, &out->truncated);
		}
	}
	xmlFreeDoc(doc);
	if (ret < 0)
		s3_uploads_free(out);
	return ret;
}

void s3_parts_free(struct s3_parts *parts)
{
	free(parts->parts);
	memset(parts, 0, sizeof(*parts));
}

static int parse_part(const xmlNode *n, struct s3_part *p)
{
	bool have_number = false, have_size = false;
	uint64_t number = 0;
	char *etag = NULL;
	int ret = 0;

	for (const xmlNode *c = n->children; c && ret == 0; c = c->next) {
		if (named(c, "PartNumber")) {
			ret = have_number ? -EPROTO : parse_u64(c, &number);
			have_number = true;
		} else if (named(c, "Size")) {
			ret = have_size ? -EPROTO : parse_u64(c, &p->size);
			have_size = true;
		} else if (named(c, "ETag")) {
			ret = etag ? -EPROTO : text_dup(c, sizeof(p->etag) - 1, &etag);
		}
	}
	if (ret == 0 && (!have_number || !have_size || !etag || !etag[0] || number < 1 ||
			 number > 10000))
		ret = -EPROTO;
	if (ret == 0) {
		p->number = (unsigned)number;
		snprintf(p->etag, sizeof(p->etag), "%s", etag);
	}
	free(etag);
	return ret;
}

int s3_xml_parse_parts(const char *body, size_t len, struct s3_parts *out)
{
	bool have_truncated = false, have_marker = false;
	uint64_t marker = 0;
	xmlDoc *doc;
	xmlNode *root;
	int ret;

	memset(out, 0, sizeof(*out));
	ret = doc_read(body, len, "ListPartsResult", &doc);
	if (ret < 0)
		return ret;
	root = xmlDocGetRootElement(doc);
	out->parts = calloc(count_named(root, "Part") + 1, sizeof(*out->parts));
	if (!out->parts)
		ret = -ENOMEM;
	for (const xmlNode *c = root->children; c && ret == 0; c = c->next) {
		if (named(c, "Part")) {
			ret = parse_part(c, &out->parts[out->count++]);
		} else if (named(c, "IsTruncated")) {
			ret = parse_truncated(c, &have_truncated, &out->truncated);
		} else if (named(c, "NextPartNumberMarker")) {
			ret = have_marker ? -EPROTO : parse_u64(c, &marker);
			have_marker = true;
		}
	}
	/* A truncated list is only useful with where to go on from, past the
	 * first part. */
	if (ret == 0 && out->truncated && (marker < 1 || marker >= 10000))
		ret = -EPROTO;
	if (ret == 0)
		out->next_marker = (unsigned)marker;
	xmlFreeDoc(doc);
	if (ret < 0)
		s3_parts_free(out);
	return ret;
}
