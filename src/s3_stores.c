/*
 * s3_stores.c - the stores of an S3 mount: the common prefixes of the
 * bucket's prefix that hold a meta object (docs/FORMAT.md), found at open;
 * creating one (its meta object, then its local stores in the outbox and
 * the read cache); removing one (the meta object first: from then on no
 * mount lists it; then its blobs); owners and modes (the meta object,
 * replaced by one PUT).
 *
 * Stores made or removed through another mount are found by s3_db_refresh,
 * which blobdb.c calls at most once per remote_ttl (before a listing of the
 * stores, and when a store's name is not in the catalogue).
 */
#include "s3.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"
#include "meta.h"
#include "strlist.h"

/* Whether s is well-formed UTF-8 (S3 keys must be) without control
 * characters (an object store echoes the prefix in its XML answers, and
 * XML 1.0 cannot carry them). */
static bool utf8_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		if (*p < 0x20 || *p == 0x7f)
			return false;
		int n = *p < 0x80 ? 0 : (*p >> 5) == 6 ? 1 : (*p >> 4) == 14 ? 2 : (*p >> 3) == 30 ? 3 : -1;
		uint32_t cp;

		if (n < 0)
			return false;
		cp = n == 0 ? *p : n == 1 ? (*p & 0x1fu) : n == 2 ? (*p & 0x0fu) : (*p & 0x07u);
		p++;
		for (int i = 0; i < n; i++, p++) {
			if ((*p >> 6) != 2)
				return false;
			cp = cp << 6 | (*p & 0x3fu);
		}
		if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
	}
	return true;
}

static int meta_sink(const void *data, size_t len, void *arg)
{
	struct { uint8_t buf[META_SIZE + 1]; size_t len; } *m = arg;

	if (m->len + len > sizeof(m->buf))
		return -EPROTO; /* longer than a meta object: not one */
	memcpy(m->buf + m->len, data, len);
	m->len += len;
	return 0;
}

/* The store's owner and mode from its meta object; -ENOENT when it has
 * none. A damaged one gives the defaults docs/FORMAT.md says (0700). */
static int meta_fetch(struct s3_db *db, const char *key_prefix, struct store_attr *out)
{
	struct { uint8_t buf[META_SIZE + 1]; size_t len; } m = { .len = 0 };
	char key[S3_KEY_MAX + 1];
	int ret;

	snprintf(key, sizeof(key), "%s%s", key_prefix, S3_META_NAME);
	ret = s3_get(db->client, key, 0, 0, meta_sink, &m, NULL);
	if (ret == -ENOENT)
		return ret;
	if (ret == 0 && meta_decode(m.buf, m.len, out) == 0)
		return 0;
	if (ret < 0 && ret != -EPROTO) {
		s3_log_failure(db, "reading", key, ret);
		return ret;
	}
	log_warning("s3: %s does not check out: the store is closed to all but root (mode 0700) "
		    "until its owner or root sets its attributes", key);
	out->uid = 0;
	out->gid = 0;
	out->mode = 0700;
	return 0;
}

static int meta_store(struct s3_db *db, const char *key_prefix, const struct store_attr *attr)
{
	uint8_t buf[META_SIZE];
	char key[S3_KEY_MAX + 1];
	int ret;

	meta_encode(attr, buf);
	snprintf(key, sizeof(key), "%s%s", key_prefix, S3_META_NAME);
	ret = s3_put(db->client, key, buf, sizeof(buf), NULL, 0);
	if (ret < 0)
		s3_log_failure(db, "writing", key, ret);
	return ret;
}

/* The store name's local twin in a local data directory: opened, made if
 * missing. */
static int local_twin(struct blobdb *local, const char *name, const struct store_attr *attr,
		      struct store **out)
{
	int ret = store_open(local, name, out);

	if (ret == -ENOENT) {
		ret = store_create_as(local, name, attr);
		if (ret == 0 || ret == -EEXIST)
			ret = store_open(local, name, out);
	}
	return ret;
}

static int store_new(struct s3_db *db, const char *name, const struct store_attr *attr,
		     struct s3_store **out)
{
	struct s3_store *s = calloc(1, sizeof(*s));
	const char *p = db->config.prefix;
	int ret = -ENOMEM;

	*out = NULL;
	if (!s)
		return -ENOMEM;
	ret = store_init(&s->base, &db->base, name);
	if (ret < 0) {
		free(s);
		return ret;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_rwlock_init(&s->save_lock, NULL);
	s->attr = *attr;
	s->id = __atomic_add_fetch(&db->next_store_id, 1, __ATOMIC_RELAXED);
	if (asprintf(&s->key_prefix, "%s%s%s/", p, *p ? "/" : "", name) < 0) {
		s->key_prefix = NULL;
		ret = -ENOMEM;
		goto out;
	}
	/* A key is the prefix and 64 hex digits. */
	ret = -ENAMETOOLONG;
	if (strlen(s->key_prefix) + HASH_HEX_SIZE > S3_KEY_MAX)
		goto out;
	ret = local_twin(db->outbox, name, attr, &s->outbox);
	if (ret == 0)
		ret = local_twin(db->clean, name, attr, &s->clean);
out:
	if (ret < 0) {
		s3_store_free(&s->base);
		return ret;
	}
	*out = s;
	return 0;
}

void s3_store_free(struct store *store)
{
	struct s3_store *s = to_s3store(store);

	if (s->outbox)
		store_close(s->outbox);
	if (s->clean)
		store_close(s->clean);
	free(s->key_prefix);
	pthread_mutex_destroy(&s->lock);
	pthread_rwlock_destroy(&s->save_lock);
	store_fini(&s->base);
	free(s);
}

/* An outbox store whose store the bucket no longer has (removed through
 * another mount): its blobs are not uploaded anywhere. Said, not dropped. */
static int check_orphan(const char *name, void *arg)
{
	struct s3_db *db = arg;
	struct store *mine, *local;

	if (store_open(&db->base, name, &mine) == 0) {
		store_close(mine);
		return 0;
	}
	if (store_open(db->outbox, name, &local) == 0) {
		size_t n = blob_count(local);

		if (n)
			log_warning("s3: %zu blobs saved into store %s were not uploaded, and the "
				    "bucket no longer has that store: they stay in %s/outbox", n,
				    name, db->cache_dir);
		store_close(local);
	}
	return 0;
}

/* The names of the catalogue's stores (for a refresh: no store_open, which
 * would refresh again). */
struct catalogue_walk {
	struct strlist names;
	int ret;
};

static int catalogue_name(struct store *store, void *arg)
{
	struct catalogue_walk *w = arg;

	if (w->ret == 0)
		w->ret = strlist_add(&w->names, store->name);
	return 0;
}

/* The stores of the bucket: the names of its prefixes that have a meta
 * object are added to the catalogue unless it has them (known), and
 * gathered in *seen (sorted) when seen is not NULL. */
static int load_stores(struct s3_db *db, const struct strlist *known, struct strlist *seen)
{
	char prefix[S3_KEY_MAX + 1], *token = NULL;
	size_t plen;
	int ret = 0;

	snprintf(prefix, sizeof(prefix), "%s%s", db->config.prefix, db->config.prefix[0] ? "/" : "");
	plen = strlen(prefix);
	do {
		struct s3_listing l;

		ret = s3_list(db->client, prefix, "/", NULL, token, 1000, &l);
		free(token);
		token = NULL;
		if (ret < 0) {
			s3_log_failure(db, "listing", prefix[0] ? prefix : "/", ret);
			break;
		}
		for (size_t i = 0; i < l.prefix_count && ret == 0; i++) {
			const char *cp = l.prefixes[i];
			size_t len = strlen(cp);
			struct store_attr attr;
			struct s3_store *s;
			char *name;

			if (strncmp(cp, prefix, plen) || len < plen + 2 || cp[len - 1] != '/')
				continue;
			name = strndup(cp + plen, len - plen - 1);
			if (!name) {
				ret = -ENOMEM;
				break;
			}
			if (store_name_check(name, strlen(name)) < 0 || !utf8_ok(name)) {
				free(name);
				continue; /* not a name blobfs makes: not a store */
			}
			if (known && strlist_has(known, name)) {
				/* In the catalogue already: seen (its meta object is
				 * checked only when it goes missing). */
				ret = seen ? strlist_add(seen, name) : 0;
				free(name);
				continue;
			}
			ret = meta_fetch(db, cp, &attr);
			if (ret == -ENOENT) {
				ret = 0; /* a prefix without a meta object: not a store */
			} else if (ret == 0) {
				ret = seen ? strlist_add(seen, name) : 0;
				if (ret == 0)
					ret = store_new(db, name, &attr, &s);
				if (ret == 0) {
					ret = blobdb_catalog_add(&db->base, &s->base);
					if (ret < 0)
						s3_store_free(&s->base);
					if (ret == -EEXIST)
						ret = 0; /* listed twice, or made here meanwhile */
					else if (ret == 0 && known)
						log_info("s3: store %s appeared (made through another "
							 "mount)", name);
				}
			}
			free(name);
		}
		if (ret == 0 && l.truncated)
			token = strdup(l.next_token);
		if (ret == 0 && l.truncated && !token)
			ret = -ENOMEM;
		s3_listing_free(&l);
	} while (ret == 0 && token);
	free(token);
	if (seen)
		strlist_sort(seen);
	return ret;
}

int s3_stores_load(struct s3_db *db)
{
	int ret = load_stores(db, NULL, NULL);

	if (ret == 0)
		(void)store_list(db->outbox, NULL, check_orphan, db);
	return ret;
}

struct gone_walk {
	struct s3_db *db;
	const struct strlist *seen;
	struct s3_store **gone;
	size_t n;
};

/* A store of the catalogue that the listing did not show, whose meta object
 * is gone too: removed through another mount. */
static int find_gone(struct store *store, void *arg)
{
	struct gone_walk *w = arg;
	struct s3_store *s = to_s3store(store);
	char key[S3_KEY_MAX + 1];
	struct s3_store **p;

	if (strlist_has(w->seen, store->name) ||
	    __atomic_load_n(&store->destroyed, __ATOMIC_ACQUIRE))
		return 0;
	snprintf(key, sizeof(key), "%s%s", s->key_prefix, S3_META_NAME);
	if (s3_head(w->db->client, key, NULL, NULL) != -ENOENT)
		return 0; /* made here since the listing, or not to be told */
	p = realloc(w->gone, (w->n + 1) * sizeof(*p));
	if (!p)
		return 0;
	w->gone = p;
	w->gone[w->n++] = to_s3store(store_hold(store));
	return 0;
}

void s3_db_refresh(struct blobdb *base)
{
	struct s3_db *db = to_s3db(base);
	struct catalogue_walk known = { .ret = 0 };
	struct strlist seen = { 0 };
	struct gone_walk w = { .db = db, .seen = &seen };

	(void)blobdb_each_store(base, catalogue_name, &known);
	if (known.ret < 0)
		goto out;
	strlist_sort(&known.names);
	if (load_stores(db, &known.names, &seen) < 0)
		goto out;
	(void)blobdb_each_store(base, find_gone, &w);
	for (size_t i = 0; i < w.n; i++) {
		struct s3_store *s = w.gone[i];

		log_info("s3: store %s is gone (removed through another mount)", s->base.name);
		pthread_mutex_lock(&s->lock);
		__atomic_store_n(&s->base.destroyed, true, __ATOMIC_RELEASE);
		pthread_mutex_unlock(&s->lock);
		s3_upload_cancel_store(s);
		(void)store_destroy(db->outbox, s->base.name, false);
		(void)store_destroy(db->clean, s->base.name, false);
		(void)blobdb_catalog_drop(base, &s->base);
		store_close(&s->base);
	}
	if (w.n)
		(void)s3_cache_count(db);
out:
	free(w.gone);
	strlist_free(&known.names);
	strlist_free(&seen);
}

int s3_store_create(struct blobdb *base, const char *name, const struct store_attr *attr,
		    struct store **out)
{
	struct s3_db *db = to_s3db(base);
	char key[S3_KEY_MAX + 1];
	struct s3_store *s;
	int ret;

	*out = NULL;
	if (!utf8_ok(name))
		return -EINVAL;
	ret = store_new(db, name, attr, &s);
	if (ret < 0)
		return ret == -ENAMETOOLONG ? -EINVAL : ret;
	/* Made by another mount since this one looked: it exists. */
	snprintf(key, sizeof(key), "%s%s", s->key_prefix, S3_META_NAME);
	ret = s3_head(db->client, key, NULL, NULL);
	if (ret == 0)
		ret = -EEXIST;
	else if (ret == -ENOENT)
		ret = meta_store(db, s->key_prefix, attr);
	else
		s3_log_failure(db, "looking up", key, ret);
	if (ret < 0) {
		s3_store_free(&s->base);
		return ret == -EEXIST ? ret : ret == -ENOSPC ? ret : -EIO;
	}
	*out = &s->base;
	return 0;
}

int s3_store_get_attr(struct store *store, struct store_attr *out)
{
	struct s3_store *s = to_s3store(store);

	if (__atomic_load_n(&store->destroyed, __ATOMIC_ACQUIRE))
		return -ENOENT;
	pthread_mutex_lock(&s->lock);
	*out = s->attr;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

int s3_store_set_attr(struct store *store, const struct store_attr *attr)
{
	struct s3_store *s = to_s3store(store);
	int ret;

	if (__atomic_load_n(&store->destroyed, __ATOMIC_ACQUIRE))
		return -ENOENT;
	ret = meta_store(s3store_db(s), s->key_prefix, attr);
	if (ret < 0)
		return ret == -ENOSPC ? ret : -EIO;
	pthread_mutex_lock(&s->lock);
	s->attr = *attr;
	pthread_mutex_unlock(&s->lock);
	return 0;
}

/* 1 when the store's prefix holds no blob (other keys do not count), 0
 * when it does, or a negative errno. Pages until a blob or the end. */
static int remote_empty(struct s3_db *db, struct s3_store *s)
{
	size_t plen = strlen(s->key_prefix);
	uint8_t hash[BLOBFS_HASH_SIZE];
	char *token = NULL;
	int ret;

	do {
		struct s3_listing l;

		ret = s3_list(db->client, s->key_prefix, "/", NULL, token, 1000, &l);
		free(token);
		token = NULL;
		if (ret < 0) {
			s3_log_failure(db, "listing", s->key_prefix, ret);
			return ret;
		}
		ret = 1;
		for (size_t i = 0; i < l.object_count && ret == 1; i++)
			if (strlen(l.objects[i].key) == plen + HASH_HEX_SIZE &&
			    hash_from_hex(l.objects[i].key + plen, HASH_HEX_SIZE, hash))
				ret = 0;
		if (ret == 1 && l.truncated && !(token = strdup(l.next_token)))
			ret = -ENOMEM;
		s3_listing_free(&l);
	} while (ret == 1 && token);
	return ret;
}

/* Deletes every blob under the store's prefix, a page at a time (other
 * keys stay: they are not blobfs's). */
static int remote_purge(struct s3_db *db, struct s3_store *s)
{
	size_t plen = strlen(s->key_prefix);
	uint8_t hash[BLOBFS_HASH_SIZE];
	char after[S3_KEY_MAX + 1] = "";
	int ret, failed = 0;

	do {
		struct s3_listing l;

		ret = s3_list(db->client, s->key_prefix, "/", after[0] ? after : NULL, NULL, 1000, &l);
		if (ret < 0) {
			s3_log_failure(db, "listing", s->key_prefix, ret);
			return ret;
		}
		for (size_t i = 0; i < l.object_count; i++) {
			const char *key = l.objects[i].key;

			if (strlen(key) != plen + HASH_HEX_SIZE ||
			    !hash_from_hex(key + plen, HASH_HEX_SIZE, hash))
				continue;
			ret = s3_delete(db->client, key);
			if (ret < 0) {
				s3_log_failure(db, "deleting", key, ret);
				failed = ret;
			}
		}
		/* Going on after the last key: a page of common prefixes only
		 * (other tools' "directories") has no key to go on after. */
		ret = (int)(l.truncated && l.object_count > 0);
		if (l.object_count)
			snprintf(after, sizeof(after), "%s", l.objects[l.object_count - 1].key);
		s3_listing_free(&l);
	} while (ret == 1 && failed == 0);
	return failed;
}

int s3_store_remove(struct store *store, bool only_if_empty)
{
	struct s3_store *s = to_s3store(store);
	struct s3_db *db = s3store_db(s);
	char key[S3_KEY_MAX + 1];
	int ret = 0;

	/* No save may slip in between the emptiness check and the removal:
	 * saves hold save_lock shared. This runs under the catalogue's lock,
	 * with at most two requests (a listing, the meta object's DELETE);
	 * deleting the blobs is store_purge's, outside every lock. */
	pthread_rwlock_wrlock(&s->save_lock);
	if (only_if_empty) {
		ret = blob_count(s->outbox) > 0 ? 0 : remote_empty(db, s);
		if (ret <= 0) {
			ret = ret == 0 ? -ENOTEMPTY : -EIO;
			goto out;
		}
	}
	/* The meta object first: from then on no mount lists the store. */
	snprintf(key, sizeof(key), "%s%s", s->key_prefix, S3_META_NAME);
	ret = s3_delete(db->client, key);
	if (ret < 0) {
		s3_log_failure(db, "deleting", key, ret);
		ret = -EIO;
		goto out;
	}
	pthread_mutex_lock(&s->lock);
	__atomic_store_n(&store->destroyed, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&s->lock);
	/* Blobs not uploaded yet go with the store (local: no request). */
	(void)store_destroy(db->outbox, store->name, false);
	(void)store_destroy(db->clean, store->name, false);
	ret = 0;
out:
	pthread_rwlock_unlock(&s->save_lock);
	return ret;
}

void s3_store_purge(struct store *store)
{
	struct s3_store *s = to_s3store(store);
	struct s3_db *db = s3store_db(s);

	/* Uploads under way end first, so that none lands after the purge. */
	s3_upload_cancel_store(s);
	(void)s3_cache_count(db); /* the local stores went with their bytes */
	if (remote_purge(db, s) < 0)
		log_warning("s3: store %s removed, but some of its blobs were not deleted from "
			    "the bucket (under %s)", store->name, s->key_prefix);
}

int s3_store_stats(struct store *store, struct store_stats *out)
{
	struct s3_store *s = to_s3store(store);
	struct blob_entry batch[256];
	const uint8_t *after = NULL;
	uint8_t last[BLOBFS_HASH_SIZE];
	size_t n;

	if (__atomic_load_n(&store->destroyed, __ATOMIC_ACQUIRE))
		return -ENOENT;
	do {
		n = s3_blob_list_batch(store, after, batch, 256);
		for (size_t i = 0; i < n; i++) {
			out->blobs++;
			out->bytes += batch[i].length;
		}
		if (n) {
			memcpy(last, batch[n - 1].hash, BLOBFS_HASH_SIZE);
			after = last;
		}
	} while (n == 256);
	pthread_mutex_lock(&s->lock);
	s->listed_count = out->blobs;
	s->listed_ms = s3_now_ms();
	pthread_mutex_unlock(&s->lock);
	return 0;
}
