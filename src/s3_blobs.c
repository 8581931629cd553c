/*
 * s3_blobs.c - the blobs of an S3 mount's stores.
 *
 * Where a blob is looked for, in order: the outbox (saved here, maybe not
 * uploaded yet: always right), the table of recent answers (s3_known.c),
 * the object store (HEAD; the answer is remembered). The read cache is
 * used for bytes, never for existence while the object store answers: a
 * blob another mount deleted is gone here once the last answer about it is
 * older than remote_ttl_ms. When the object store cannot be reached, a
 * cached blob is still shown and read.
 *
 * A read of a blob in neither local directory fetches it whole into the
 * read cache through a writer that must hash to the blob's name (a verified
 * commit) before any byte of it is returned: an object whose bytes do not
 * match its name is an EIO and a log line. Listings merge a page of the
 * bucket's listing with the outbox's blobs (hash order, no duplicates).
 */
#include "s3.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "log.h"

struct s3_reader {
	struct blob_reader base;
	struct blob_reader *local; /* in the outbox or the read cache */
};

struct s3_writer {
	struct blob_writer base;
	struct blob_writer *local; /* in the outbox */
};

static bool destroyed(struct store *store)
{
	return __atomic_load_n(&store->destroyed, __ATOMIC_ACQUIRE);
}

/* What the object store says of the blob: 0 and its length and time,
 * -ENOENT, or another error when it cannot be asked. An answer of the last
 * remote_ttl_ms is used unless fresh. */
static int remote_info(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE],
		       uint64_t *length, int64_t *mtime, bool fresh)
{
	struct s3_db *db = s3store_db(s);
	struct s3_known_entry k;
	char key[S3_KEY_MAX + 1];
	uint64_t asked;
	int ret;

	if (!fresh && s3_known_get(&db->known, s->id, hash, &k)) {
		*length = k.length;
		*mtime = k.mtime;
		return k.exists ? 0 : -ENOENT;
	}
	s3_blob_key(s, hash, key, sizeof(key));
	asked = s3_now_ms();
	ret = s3_head(db->client, key, length, mtime);
	if (ret == 0 || ret == -ENOENT) {
		s3_log_answered(db);
		s3_known_put(&db->known, s->id, hash, ret == 0, ret == 0 ? *length : 0,
			     ret == 0 ? *mtime : 0, asked);
	} else {
		s3_log_failure(db, "looking up", key, ret);
	}
	return ret;
}

/* Whether the object store has the blob, asked now (a save must not trust
 * an answer another mount's delete may have made stale); false when it
 * cannot be asked: the save then goes to the outbox and is uploaded. */
static bool remote_has(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint64_t len;
	int64_t mtime;

	return remote_info(s, hash, &len, &mtime, true) == 0;
}

/* Keeps the store's count (statfs) right between listings: a save here
 * adds one, a delete here takes one away. */
static void count_change(struct s3_store *s, int delta)
{
	pthread_mutex_lock(&s->lock);
	if (delta > 0 || s->listed_count > 0)
		s->listed_count += (uint64_t)(int64_t)delta;
	pthread_mutex_unlock(&s->lock);
}

/* Drops the read cache's copy of a blob the object store no longer has. */
static void drop_cached(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint64_t len;

	if (blob_info(s->clean, hash, &len) == 0 && blob_delete(s->clean, hash) == 0)
		s3_cache_add(s3store_db(s), false, -(int64_t)len);
}

/* A claim of a blob in the outbox is the outbox's too: a writer that
 * found no room there and is about to take its new copy back must keep it
 * (s3_writer_commit). */
int s3_blob_claim(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct s3_store *s = to_s3store(store);

	if (!destroyed(store) && blob_claim(s->outbox, hash) == 0)
		return 0;
	return s3_blob_info(store, hash, NULL, NULL);
}

int s3_blob_info(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t *length,
		 int64_t *saved)
{
	struct s3_store *s = to_s3store(store);
	struct blob_stat st;
	uint64_t len = 0;
	int64_t mtime = 0;
	int ret;

	if (destroyed(store))
		return -ENOENT;
	ret = blob_stat(s->outbox, hash, &st);
	if (ret == 0) {
		len = st.length;
		mtime = st.saved;
	} else {
		ret = remote_info(s, hash, &len, &mtime, false);
		if (ret == -ENOENT) {
			drop_cached(s, hash); /* deleted elsewhere */
		} else if (ret < 0) {
			/* Unreachable: what the cache holds is still shown. */
			ret = blob_stat(s->clean, hash, &st) == 0 ? 0 : -EIO;
			if (ret == 0) {
				len = st.length;
				mtime = st.saved;
			}
		} else if (blob_stat(s->clean, hash, &st) == 0) {
			len = st.length; /* verified bytes say how many there are */
		}
	}
	if (ret == 0 && length)
		*length = len;
	if (ret == 0 && saved)
		*saved = mtime;
	return ret;
}

/* Deletes the blob's object (S3 answers the same whether it was there or
 * not) and remembers that it is gone: 0, or -EIO (logged). */
static int remote_delete(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct s3_db *db = s3store_db(s);
	char key[S3_KEY_MAX + 1];
	uint64_t asked = s3_now_ms();
	int ret;

	s3_blob_key(s, hash, key, sizeof(key));
	ret = s3_delete(db->client, key);
	if (ret < 0 && ret != -ENOENT) {
		s3_log_failure(db, "deleting", key, ret);
		return -EIO;
	}
	s3_known_put(&db->known, s->id, hash, false, 0, 0, asked);
	return 0;
}

int s3_blob_delete(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct s3_store *s = to_s3store(store);
	struct s3_db *db = s3store_db(s);
	uint64_t len;
	int64_t mtime;
	bool local;
	int ret;

	if (destroyed(store))
		return -ENOENT;
	/* No upload of it may land after the delete; whoever saves it next
	 * creates it anew, and a retract of a save made before must not
	 * delete that one's blob. */
	s3_upload_cancel(s, hash);
	(void)s3_created_take(&db->created, s->id, hash);
	local = blob_info(s->outbox, hash, &len) == 0 && blob_delete(s->outbox, hash) == 0;
	if (local)
		s3_cache_add(db, true, -(int64_t)len);
	drop_cached(s, hash);
	if (!local) {
		ret = remote_info(s, hash, &len, &mtime, false);
		if (ret < 0)
			return ret == -ENOENT ? ret : -EIO;
	}
	ret = remote_delete(s, hash);
	if (ret == 0)
		count_change(s, -1);
	return ret;
}

/* What a tentative save added: its copy in the outbox when its upload has
 * not happened (cancelled now), or the object its upload created. A blob
 * the upload found there was someone else's save too: it stays. */
int s3_blob_retract(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct s3_store *s = to_s3store(store);
	struct s3_db *db = s3store_db(s);
	bool local, created;
	uint64_t len;
	int ret;

	if (destroyed(store))
		return -ENOENT;
	s3_upload_cancel(s, hash);
	local = blob_info(s->outbox, hash, &len) == 0 && blob_delete(s->outbox, hash) == 0;
	if (local)
		s3_cache_add(db, true, -(int64_t)len);
	created = s3_created_take(&db->created, s->id, hash);
	if (!local && !created)
		return -EEXIST;
	if (created) {
		drop_cached(s, hash);
		ret = remote_delete(s, hash);
		if (ret < 0)
			return ret;
	}
	count_change(s, -1);
	return 0;
}

struct collect {
	struct blob_entry *out;
	size_t n, max;
};

static int collect_one(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct collect *c = arg;

	memcpy(c->out[c->n].hash, hash, BLOBFS_HASH_SIZE);
	c->out[c->n].length = length;
	return ++c->n == c->max;
}

/* Up to max blobs of the bucket's listing of the store after `after`, as
 * many pages as it takes (keys that are not a blob's are skipped), and
 * whether more follow. The first page starts after `after`, the next ones
 * from the continuation token; a page that does not move on is -EPROTO
 * (a server that ignores where to start would otherwise loop forever). */
static int remote_blobs(struct s3_store *s, const uint8_t *after, struct blob_entry *out,
			size_t max, size_t *n, bool *more)
{
	struct s3_db *db = s3store_db(s);
	size_t plen = strlen(s->key_prefix);
	char start[S3_KEY_MAX + 1] = "", *token = NULL;
	int ret = 0;

	*n = 0;
	*more = true;
	if (after)
		s3_blob_key(s, after, start, sizeof(start));
	while (*more && *n < max) {
		uint64_t asked = s3_now_ms();
		struct s3_listing l;
		bool moved = false;
		size_t i;

		ret = s3_list(db->client, s->key_prefix, "/", !token && start[0] ? start : NULL,
			      token, 1000, &l);
		free(token);
		token = NULL;
		if (ret < 0) {
			s3_log_failure(db, "listing", s->key_prefix, ret);
			break;
		}
		s3_log_answered(db);
		for (i = 0; i < l.object_count && *n < max; i++) {
			const struct s3_object *o = &l.objects[i];
			struct blob_entry *e = &out[*n];

			/* Keys come in order, each after the last: one that
			 * does not is skipped. */
			if (start[0] && strcmp(o->key, start) <= 0)
				continue;
			snprintf(start, sizeof(start), "%s", o->key);
			moved = true;
			if (strlen(o->key) != plen + HASH_HEX_SIZE ||
			    strncmp(o->key, s->key_prefix, plen) ||
			    !hash_from_hex(o->key + plen, HASH_HEX_SIZE, e->hash))
				continue;
			e->length = o->size;
			s3_known_put(&db->known, s->id, e->hash, true, o->size, o->mtime, asked);
			(*n)++;
		}
		if (i < l.object_count) {
			*more = true; /* the batch filled up within this page */
		} else {
			*more = l.truncated;
			/* Common prefixes (other tools' "directories") move the
			 * listing on too. */
			moved = moved || l.prefix_count > 0;
			if (*more && !moved) {
				ret = -EPROTO;
			} else if (*more) {
				token = strdup(l.next_token);
				if (!token)
					ret = -ENOMEM;
			}
		}
		s3_listing_free(&l);
		if (ret < 0) {
			if (ret == -EPROTO)
				log_warning("s3: listing %s: a page that does not move on; the "
					    "listing stops there", s->key_prefix);
			break;
		}
	}
	free(token);
	return ret;
}

size_t s3_blob_list_batch(struct store *store, const uint8_t *after, struct blob_entry *out,
			  size_t max)
{
	struct s3_store *s = to_s3store(store);
	struct blob_entry *remote = NULL, *local = NULL;
	struct collect c;
	size_t nr = 0, nl = 0, i = 0, j = 0, n = 0;
	bool more = false;

	if (destroyed(store) || max == 0)
		return 0;
	remote = calloc(max, sizeof(*remote));
	local = calloc(max, sizeof(*local));
	if (!remote || !local)
		goto out;
	/* The outbox first: a blob leaves it only once the object store has
	 * it, so one uploaded between the two listings is in the second. (The
	 * other order lost it: gone from the outbox, not yet in the bucket's
	 * page.) */
	c = (struct collect){ .out = local, .max = max };
	(void)blob_list(s->outbox, after, collect_one, &c);
	nl = c.n;
	/* A listing that fails shows what is here (the outbox): the bucket's
	 * part missing is logged, not invented. */
	if (remote_blobs(s, after, remote, max, &nr, &more) < 0) {
		nr = 0;
		more = false;
	}
	while (n < max && (i < nr || j < nl)) {
		int cmp = i == nr ? 1 : j == nl ? -1 :
			  memcmp(remote[i].hash, local[j].hash, BLOBFS_HASH_SIZE);

		/* Past the last remote entry while the bucket has more, the
		 * order is not known yet: the next batch goes on from here. */
		if (cmp > 0 && more && i == nr)
			break;
		if (cmp <= 0) {
			out[n++] = remote[i++];
			if (cmp == 0)
				j++;
		} else {
			out[n++] = local[j++];
		}
	}
out:
	free(remote);
	free(local);
	return n;
}

size_t s3_blob_count(struct store *store)
{
	struct store_stats st = { 0 };

	return s3_store_stats(store, &st) == 0 ? (size_t)st.blobs : 0;
}

/* With -o sync, a save returns once the object store has the blob: also
 * one the outbox had already (saved before, not uploaded yet). Outside
 * save_lock, so that a removal does not wait for the object store. */
static int sync_wait(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE], int ret)
{
	if ((ret == 0 || ret == -EEXIST) && s3store_db(s)->sync_uploads &&
	    s3_upload_wait(s, hash, 60000) < 0)
		return -EIO;
	return ret;
}

int s3_blob_save(struct store *store, const void *data, size_t len,
		 uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct s3_store *s = to_s3store(store);
	struct s3_db *db = s3store_db(s);
	struct store *held = NULL;
	bool reserved = false;
	int ret = hash_buffer(data, len, hash);

	if (ret < 0)
		return ret;
	/* The upload's reference and the outbox's room are taken first: both
	 * take the catalogue's lock, which comes before save_lock (a store's
	 * removal holds it while it waits for save_lock). */
	held = store_hold(store);
	reserved = s3_cache_reserve(db, len) == 0;
	pthread_rwlock_rdlock(&s->save_lock);
	if (destroyed(store)) {
		ret = -ENOENT;
	} else if (blob_claim(s->outbox, hash) == 0 || remote_has(s, hash)) {
		/* Claimed: a writer that saved it to the outbox a moment ago
		 * and finds no room does not take it back now. */
		ret = -EEXIST;
	} else if (!reserved) {
		ret = -ENOSPC;
	} else {
		ret = blob_save(s->outbox, data, len, hash);
		if (ret == 0) {
			s3_cache_reserve_end(db, len, true);
			reserved = false;
			count_change(s, 1);
			/* Saved (and durable as the outbox is): a failure to queue
			 * only delays the upload to the next mount. */
			if (s3_upload_queue(s, hash, &held) < 0)
				log_warning("s3: store %s: no memory to queue an upload: it "
					    "waits for the next mount", store->name);
		}
	}
	pthread_rwlock_unlock(&s->save_lock);
	if (reserved)
		s3_cache_reserve_end(db, len, false);
	store_close(held);
	return sync_wait(s, hash, ret);
}

/* ---- readers ---- */

struct fetch {
	struct blob_writer *writer;
	uint64_t off;
	uint64_t len; /* what the object store said the blob holds */
};

static int fetch_sink(const void *data, size_t len, void *arg)
{
	struct fetch *f = arg;
	int ret;

	/* More than announced: not the blob (an untrusted server does not
	 * get to fill the cache). */
	if (f->off + len > f->len)
		return -EPROTO;
	ret = blob_writer_write(f->writer, data, len, f->off);
	f->off += len;
	return ret;
}

/* Fetches the blob (len bytes, as the object store said) into the read
 * cache, verified against its name: 0, -ENOENT (gone meanwhile) or -EIO. */
static int fetch(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t len)
{
	struct s3_db *db = s3store_db(s);
	struct fetch f = { .writer = NULL, .len = len };
	uint8_t got[BLOBFS_HASH_SIZE];
	char key[S3_KEY_MAX + 1];
	bool tentative = false;
	uint64_t asked;
	int ret;

	s3_blob_key(s, hash, key, sizeof(key));
	(void)s3_cache_make_room(db, len < db->cache_size ? len : db->cache_size, false);
	ret = blob_writer_new(s->clean, &f.writer);
	if (ret < 0)
		return ret;
	asked = s3_now_ms();
	ret = s3_get(db->client, key, 0, 0, fetch_sink, &f, NULL);
	if (ret == -ENOENT) {
		s3_known_put(&db->known, s->id, hash, false, 0, 0, asked);
		goto out;
	}
	if (ret < 0) {
		s3_log_failure(db, "reading", key, ret);
		ret = -EIO;
		goto out;
	}
	s3_log_answered(db);
	ret = blob_writer_commit_tentative(f.writer, hash, got, &tentative);
	if (ret == -EINVAL) {
		char hex[HASH_HEX_SIZE + 1];

		hash_to_hex(got, hex);
		log_error("s3: %s: its %llu bytes hash to %s, not to its name: not returned",
			  key, (unsigned long long)f.off, hex);
		ret = -EIO;
	} else if (ret == -EEXIST) {
		ret = 0; /* another reader fetched it meanwhile */
	} else if (ret == 0) {
		s3_cache_add(db, false, (int64_t)f.off);
	}
	if (ret == 0 && f.off != len) {
		/* The bytes are the blob: the size said before was wrong. */
		int64_t mtime = 0;
		struct s3_known_entry k;

		if (s3_known_get(&db->known, s->id, hash, &k))
			mtime = k.mtime;
		s3_known_put(&db->known, s->id, hash, true, f.off, mtime, asked);
	}
	if (tentative)
		blob_settle(s->clean, hash);
out:
	blob_writer_free(f.writer);
	return ret;
}

int s3_reader_open(struct store *store, const uint8_t hash[BLOBFS_HASH_SIZE],
		   struct blob_reader **out)
{
	struct s3_store *s = to_s3store(store);
	struct s3_reader *r;
	uint64_t len;
	int64_t mtime;
	int ret;

	*out = NULL;
	if (destroyed(store))
		return -ENOENT;
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	ret = blob_open(s->outbox, hash, &r->local);
	if (ret != -ENOENT)
		goto out;
	ret = remote_info(s, hash, &len, &mtime, false);
	if (ret == -ENOENT) {
		drop_cached(s, hash);
		goto out;
	}
	if (ret < 0) {
		/* Unreachable: a cached copy is still read. */
		ret = blob_open(s->clean, hash, &r->local) == 0 ? 0 : -EIO;
		goto out;
	}
	/* Cached, or fetched now; an eviction between the fetch and the open
	 * costs one more fetch. */
	for (int tries = 0; tries < 2; tries++) {
		ret = blob_open(s->clean, hash, &r->local);
		if (ret != -ENOENT)
			break;
		ret = fetch(s, hash, len);
		if (ret < 0)
			break;
		ret = blob_open(s->clean, hash, &r->local);
		if (ret != -ENOENT)
			break;
	}
out:
	if (ret < 0) {
		free(r);
		return ret;
	}
	r->base.length = blob_reader_length(r->local);
	*out = &r->base;
	return 0;
}

int s3_reader_read(struct blob_reader *reader, void *buf, size_t size, uint64_t off,
		   size_t *got)
{
	return blob_read(((struct s3_reader *)reader)->local, buf, size, off, got);
}

void s3_reader_close(struct blob_reader *reader)
{
	struct s3_reader *r = (struct s3_reader *)reader;

	blob_close(r->local);
	free(r);
}

/* ---- writers: the outbox's, and an upload at each commit (whose status
 * does not wait for the object store: see s3_writer_commit) ---- */

int s3_writer_new(struct store *store, struct blob_writer **out)
{
	struct s3_store *s = to_s3store(store);
	struct s3_writer *w = calloc(1, sizeof(*w));
	int ret;

	*out = NULL;
	if (!w)
		return -ENOMEM;
	ret = blob_writer_new(s->outbox, &w->local);
	if (ret < 0) {
		free(w);
		return ret;
	}
	*out = &w->base;
	return 0;
}

#define to_local(writer) (((struct s3_writer *)(writer))->local)

int s3_writer_write(struct blob_writer *writer, const void *buf, size_t size, uint64_t off)
{
	return blob_writer_write(to_local(writer), buf, size, off);
}

int s3_writer_read(struct blob_writer *writer, void *buf, size_t size, uint64_t off,
		   size_t *got)
{
	return blob_writer_read(to_local(writer), buf, size, off, got);
}

int s3_writer_truncate(struct blob_writer *writer, uint64_t size)
{
	return blob_writer_truncate(to_local(writer), size);
}

uint64_t s3_writer_size(struct blob_writer *writer)
{
	return blob_writer_size(to_local(writer));
}

int s3_writer_commit(struct blob_writer *writer, const uint8_t *expect,
		     uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct s3_store *s = to_s3store(writer->store);
	struct s3_db *db = s3store_db(s);
	uint64_t size = blob_writer_size(to_local(writer));
	struct s3_known_entry k;
	struct store *held = NULL;
	bool tentative = false, there, reserved;
	int ret;

	/* First, as in s3_blob_save: locks that come before save_lock. The
	 * room is reserved before the commit, which cannot be undone once
	 * another save may have counted on it. */
	held = store_hold(writer->store);
	reserved = s3_cache_reserve(db, size) == 0;
	pthread_rwlock_rdlock(&s->save_lock);
	if (destroyed(writer->store)) {
		ret = -ENOENT;
		goto out;
	}
	/* The outbox's own save is final once settled: taking a blob back is
	 * blobdb.c's business, through s3_blob_retract. */
	ret = blob_writer_commit_tentative(to_local(writer), expect, hash, &tentative);
	if (ret < 0)
		goto out;
	if (!reserved) {
		/* No room, and new to the outbox (content already there needs
		 * none: -EEXIST above). Taken back unless another save of the
		 * same content counted on it meanwhile (blob_claim, or a
		 * commit's -EEXIST): then it stays, and this save with it. */
		if (tentative && blob_retract(s->outbox, hash) == 0) {
			ret = -ENOSPC;
			goto out;
		}
		s3_cache_add(db, true, (int64_t)size);
	} else {
		s3_cache_reserve_end(db, size, true);
		reserved = false;
	}
	if (tentative)
		blob_settle(s->outbox, hash);
	/* New to the outbox. Whether the object store has it is the upload's
	 * question (asked in the PUT itself): a close does not wait for a
	 * round trip. A recent answer that it is there makes the status
	 * -EEXIST, but it is uploaded all the same: that answer may be stale
	 * (another mount may have deleted it since), and a save must not rest
	 * on it. Otherwise 0, and s3_blob_retract keeps a blob the upload found
	 * there. */
	there = s3_known_get(&db->known, s->id, hash, &k) && k.exists;
	if (!there)
		count_change(s, 1);
	if (s3_upload_queue(s, hash, &held) < 0)
		log_warning("s3: store %s: no memory to queue an upload: it waits for the next "
			    "mount", writer->store->name);
	if (there)
		ret = -EEXIST;
out:
	pthread_rwlock_unlock(&s->save_lock);
	if (reserved)
		s3_cache_reserve_end(db, size, false);
	store_close(held);
	return sync_wait(s, hash, ret);
}

void s3_writer_free(struct blob_writer *writer)
{
	blob_writer_free(to_local(writer));
	free(writer);
}
