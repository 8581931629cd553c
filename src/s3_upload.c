/*
 * s3_upload.c - moving saved blobs from the outbox to the object store: a
 * queue, a few threads (upload_threads, each with its own connection), and
 * retries with backoff (0.5 s doubling to 60 s) for as long as it takes:
 * a blob leaves the outbox only once the object store acknowledged it, and
 * what is queued when the daemon stops is queued again by the next mount
 * (s3_upload_queue_outbox). A blob is sent in one PUT whose
 * x-amz-content-sha256 is its name, so the object store checks the bytes;
 * one of 64 MiB or more in a multipart upload, each part with its own
 * SHA-256, resumed by the next try (or mount) where a try stopped.
 *
 * Each (store, blob) is queued once: a hash table of every entry (ready,
 * waiting for a retry, or being uploaded) answers "is it queued" in O(1),
 * so a mount that finds a million blobs in the outbox queues them in
 * linear time. Entries to retry wait in a list of their own, moved back to
 * the ready queue when due.
 *
 * Whether an upload created its blob, or found it there (saved by another
 * mount, or by this one before), is known from the PUT itself: it asks
 * If-None-Match: * when the object store keeps what it finds (s3_db.c asks
 * at open), and a HEAD first otherwise, or for a blob of 1 MiB or more
 * (whose bytes are not sent for nothing). Creations are recorded
 * (s3_created.c): a tentative save taken back (s3_blob_retract) deletes the
 * object only if its upload created it.
 *
 * A delete first cancels the blob's upload (s3_upload_cancel): a queued
 * entry goes, one under way is told to stop (its source then fails, which
 * aborts the transfer) and waited for, so no upload lands after the delete;
 * stopping the daemon ends transfers under way the same way. Log lines: a
 * refused upload once per blob, an object store that does not answer once
 * for all (s3_log_failure), one info line when a blob goes through after
 * failing.
 */
#include "s3.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <openssl/evp.h>

#include "hash.h"
#include "log.h"

#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 60000
/* Blobs from 64 MiB on go in parts of 16 MiB (S3 allows 10,000 parts). */
#define S3_MULTIPART_MIN (UINT64_C(64) << 20)
#define S3_PART_SIZE (UINT64_C(16) << 20)
#define S3_PARTS_MAX 10000
/* Buckets of the table of entries: 512 KiB of pointers. */
#define UPLOAD_BUCKETS 65536
/* From this size on, an upload asks whether the blob is there first. */
#define S3_ASK_FIRST_MIN (UINT64_C(1) << 20)

enum upload_state { UPLOAD_READY, UPLOAD_WAITING, UPLOAD_BUSY };

struct s3_upload {
	struct s3_upload *next;  /* in the ready queue or the waiting list */
	struct s3_upload *tnext; /* in its bucket of the table */
	struct s3_store *store;  /* a reference (store_hold) */
	uint64_t store_id;
	uint8_t hash[BLOBFS_HASH_SIZE];
	enum upload_state state;
	bool cancelled;          /* atomic: a delete wants it gone */
	bool again;              /* saved again while under way: once more */
	unsigned attempts;       /* failed so far */
	uint64_t not_before_ms;  /* s3_now_ms() time of the next try */
};

/* ---- the queue ---- */

static struct s3_upload **bucket(struct s3_db *db, uint64_t store_id,
				 const uint8_t hash[BLOBFS_HASH_SIZE])
{
	return &db->up_table[s3_slot_mix(store_id, hash) % UPLOAD_BUCKETS];
}

static struct s3_upload *find(struct s3_db *db, const struct s3_store *s,
			      const uint8_t hash[BLOBFS_HASH_SIZE])
{
	for (struct s3_upload *u = *bucket(db, s->id, hash); u; u = u->tnext)
		if (u->store_id == s->id && !memcmp(u->hash, hash, BLOBFS_HASH_SIZE))
			return u;
	return NULL;
}

static void table_remove(struct s3_db *db, struct s3_upload *u)
{
	struct s3_upload **p = bucket(db, u->store_id, u->hash);

	while (*p && *p != u)
		p = &(*p)->tnext;
	if (*p)
		*p = u->tnext;
}

static void ready_append(struct s3_db *db, struct s3_upload *u)
{
	u->state = UPLOAD_READY;
	u->next = NULL;
	if (db->queue_tail)
		db->queue_tail->next = u;
	else
		db->queue_head = u;
	db->queue_tail = u;
}

static void list_unlink(struct s3_upload **head, struct s3_upload **tail, struct s3_upload *u)
{
	struct s3_upload **p = head, *prev = NULL;

	while (*p && *p != u) {
		prev = *p;
		p = &(*p)->next;
	}
	if (!*p)
		return;
	*p = u->next;
	if (tail && *tail == u)
		*tail = prev;
}

/* Takes a queued (ready or waiting) entry out of its list and the table. */
static void dequeue(struct s3_db *db, struct s3_upload *u)
{
	if (u->state == UPLOAD_READY)
		list_unlink(&db->queue_head, &db->queue_tail, u);
	else if (u->state == UPLOAD_WAITING)
		list_unlink(&db->waiting, NULL, u);
	table_remove(db, u);
	db->queued--;
}

static void upload_free(struct s3_upload *u)
{
	store_close(&u->store->base);
	free(u);
}

int s3_upload_queue(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE], struct store **held)
{
	struct s3_db *db = s3store_db(s);
	struct s3_upload *u = calloc(1, sizeof(*u)), *queued, **b;

	if (u) {
		u->store = s;
		u->store_id = s->id;
		memcpy(u->hash, hash, BLOBFS_HASH_SIZE);
	}
	pthread_mutex_lock(&db->up_lock);
	/* An earlier upload's record is not this save's (even when this one
	 * cannot be queued): a retract of this save must find none unless its
	 * own upload creates the blob. */
	(void)s3_created_take(&db->created, s->id, hash);
	queued = find(db, s, hash);
	if (queued || !u) {
		int ret = u ? 0 : -ENOMEM;

		/* Queued and not started: the same content, so that upload is
		 * this save's too. Under way: it may have read (and dropped)
		 * the outbox's copy before this save made a new one, so it goes
		 * once more when it ends. */
		if (queued && queued->state == UPLOAD_BUSY)
			queued->again = true;
		pthread_mutex_unlock(&db->up_lock);
		/* Not upload_free: the reference stays the caller's, whose
		 * locks a store_close must not be taken under. */
		free(u);
		return ret;
	}
	*held = NULL; /* the upload's now */
	b = bucket(db, s->id, hash);
	u->tnext = *b;
	*b = u;
	db->queued++;
	ready_append(db, u);
	pthread_cond_signal(&db->up_wake);
	pthread_mutex_unlock(&db->up_lock);
	return 0;
}

void s3_upload_cancel(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE])
{
	struct s3_db *db = s3store_db(s);
	struct s3_upload *u, *gone = NULL;

	pthread_mutex_lock(&db->up_lock);
	/* Until it is neither queued nor under way: an attempt that fails
	 * after being told to stop is not put back, but one that ended just
	 * before may have been. */
	while ((u = find(db, s, hash))) {
		if (u->state != UPLOAD_BUSY) {
			dequeue(db, u);
			u->next = gone;
			gone = u;
			continue;
		}
		__atomic_store_n(&u->cancelled, true, __ATOMIC_RELAXED);
		pthread_cond_wait(&db->up_done, &db->up_lock);
	}
	pthread_mutex_unlock(&db->up_lock);
	while ((u = gone)) {
		gone = u->next;
		upload_free(u);
	}
}

void s3_upload_cancel_store(struct s3_store *s)
{
	struct s3_db *db = s3store_db(s);
	struct s3_upload *gone = NULL, *u;
	bool busy;

	pthread_mutex_lock(&db->up_lock);
	do {
		busy = false;
		for (size_t i = 0; i < UPLOAD_BUCKETS; i++) {
			for (struct s3_upload *next, *e = db->up_table[i]; e; e = next) {
				next = e->tnext;
				if (e->store_id != s->id)
					continue;
				if (e->state == UPLOAD_BUSY) {
					__atomic_store_n(&e->cancelled, true, __ATOMIC_RELAXED);
					busy = true;
					continue;
				}
				dequeue(db, e);
				e->next = gone;
				gone = e;
			}
		}
		if (busy)
			pthread_cond_wait(&db->up_done, &db->up_lock);
	} while (busy);
	pthread_mutex_unlock(&db->up_lock);
	while ((u = gone)) {
		gone = u->next;
		upload_free(u);
	}
}

static void deadline_after(struct timespec *ts, unsigned ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

int s3_upload_wait(struct s3_store *s, const uint8_t hash[BLOBFS_HASH_SIZE], unsigned timeout_ms)
{
	struct s3_db *db = s3store_db(s);
	struct timespec deadline;
	int ret = 0;

	deadline_after(&deadline, timeout_ms);
	pthread_mutex_lock(&db->up_lock);
	/* Gone from the table: uploaded (or deleted meanwhile). Failed tries
	 * are retried within the time given. */
	while (find(db, s, hash)) {
		if (pthread_cond_timedwait(&db->up_done, &db->up_lock, &deadline) == ETIMEDOUT) {
			ret = find(db, s, hash) ? -EIO : 0;
			break;
		}
	}
	pthread_mutex_unlock(&db->up_lock);
	if (ret < 0) {
		char hex[HASH_HEX_SIZE + 1];

		hash_to_hex(hash, hex);
		log_warning("s3: store %s: blob %s is saved here but not yet in the object store "
			    "(-o sync): it is uploaded when the object store answers",
			    s->base.name, hex);
	}
	return ret;
}

struct source {
	struct s3_db *db;
	struct s3_upload *upload;
	struct blob_reader *reader;
	uint64_t base; /* where the part being sent starts in the blob */
};

/* A delete of the blob, or the daemon stopping, ends the transfer here
 * (the upload is then given up, or tried again by the next mount). */
static bool stopped(const struct source *src)
{
	return __atomic_load_n(&src->upload->cancelled, __ATOMIC_RELAXED) ||
	       __atomic_load_n(&src->db->up_stop, __ATOMIC_RELAXED);
}

static int read_source(void *buf, size_t len, uint64_t off, void *arg)
{
	struct source *src = arg;
	size_t got = 0;
	int ret;

	if (stopped(src))
		return -ECANCELED;
	ret = blob_read(src->reader, buf, len, src->base + off, &got);
	return ret < 0 ? ret : (int)got;
}

/* The SHA-256 of [off, off + len) of the blob, in hex: a part's
 * x-amz-content-sha256 (the part is read twice, from the page cache, rather
 * than held in memory); and, when etag is not NULL, whether the part's MD5
 * is that ETag (a part a try before this one sent: S3's ETag of a part is
 * the quoted MD5 of its bytes). */
static int part_hash(struct blob_reader *reader, uint64_t off, uint64_t len,
		     char hex[HASH_HEX_SIZE + 1], const char *etag, bool *same)
{
	struct hasher *h = NULL;
	uint8_t *buf = malloc(1u << 20), hash[BLOBFS_HASH_SIZE], md5[EVP_MAX_MD_SIZE];
	EVP_MD_CTX *m = etag ? EVP_MD_CTX_new() : NULL;
	unsigned md5_len = 0;
	char md5_hex[2 * EVP_MAX_MD_SIZE + 3];
	int ret = buf ? hasher_new(&h) : -ENOMEM;

	*same = false;
	/* Without MD5 (no memory, a FIPS provider) the part is sent again. */
	if (m && !EVP_DigestInit_ex(m, EVP_md5(), NULL)) {
		EVP_MD_CTX_free(m);
		m = NULL;
	}
	while (ret == 0 && len > 0) {
		size_t want = len < (1u << 20) ? (size_t)len : (1u << 20), got = 0;

		ret = blob_read(reader, buf, want, off, &got);
		if (ret == 0 && got != want)
			ret = -EIO; /* the blob is shorter than it said */
		if (ret == 0)
			ret = hasher_update(h, buf, got);
		if (ret == 0 && m && !EVP_DigestUpdate(m, buf, got)) {
			EVP_MD_CTX_free(m);
			m = NULL;
		}
		off += got;
		len -= got;
	}
	if (ret == 0)
		ret = hasher_final(h, hash);
	if (ret == 0)
		hash_to_hex(hash, hex);
	if (ret == 0 && m && EVP_DigestFinal_ex(m, md5, &md5_len)) {
		md5_hex[0] = '"';
		for (unsigned i = 0; i < md5_len; i++)
			snprintf(md5_hex + 1 + 2 * i, 3, "%02x", md5[i]);
		snprintf(md5_hex + 1 + 2 * md5_len, 2, "\"");
		*same = !strcasecmp(md5_hex, etag);
	}
	EVP_MD_CTX_free(m);
	hasher_free(h);
	free(buf);
	return ret;
}

/* Aborts the uploads of key still under way (at most a few: each abort
 * ends one): what a killed mount left, or another mount's upload of the
 * same bytes, which then finds the blob there when it tries again. */
static void abort_leftovers(struct s3_db *db, const char *key)
{
	char *id = NULL;

	for (int i = 0; i < 8 && s3_multipart_find(db->client, key, &id) == 0; i++) {
		int ret = s3_multipart_abort(db->client, key, id);

		free(id);
		id = NULL;
		if (ret < 0 && ret != -ENOENT)
			break;
	}
}

/* A large blob in parts of S3_PART_SIZE (more when 10,000 of them would not
 * hold it). An upload left by a daemon that stopped or was killed mid-way
 * is resumed: the upload of the key started last, whose parts with this
 * blob's bytes (the size, and the ETag: the quoted MD5) are kept and the
 * others sent. Any other failure aborts the upload this try started (the
 * retry starts afresh), and one that finishes aborts what else of the key
 * is left: nothing stays behind in the bucket. An upload resumed from
 * another mount is not aborted by this one (it may still be that mount's)
 * until it has failed here three times. */
static int upload_parts(struct s3_db *db, const char *key, struct source *src, uint64_t len)
{
	uint64_t part_size = S3_PART_SIZE, *sizes = NULL, size = 0;
	char (*etags)[129] = NULL, (*had)[129] = NULL, hex[HASH_HEX_SIZE + 1], *upload_id = NULL;
	unsigned parts, kept = 0;
	bool resumed = false;
	int ret = -ENOMEM;

	while ((len + part_size - 1) / part_size > S3_PARTS_MAX)
		part_size *= 2;
	parts = (unsigned)((len + part_size - 1) / part_size);
	etags = calloc(parts, sizeof(*etags));
	had = calloc(parts, sizeof(*had));
	sizes = calloc(parts, sizeof(*sizes));
	if (!etags || !had || !sizes)
		goto out;
	ret = s3_multipart_find(db->client, key, &upload_id);
	if (ret == 0) {
		ret = s3_multipart_list_parts(db->client, key, upload_id, parts, sizes, had);
		resumed = ret == 0;
		if (ret < 0) {
			free(upload_id);
			upload_id = NULL;
		}
	}
	/* Nothing to resume, or what there is cannot be read (finished
	 * meanwhile, or a key without the right to list uploads): a new one. */
	if (ret < 0 && ret != -ENOENT && !s3_transient(ret))
		log_info("s3: %s: cannot look for an upload to resume (%s): starting a new one",
			 key, s3_last_error());
	if (ret == -ENOENT || (ret < 0 && !s3_transient(ret)))
		ret = s3_multipart_start(db->client, key, &upload_id);
	for (unsigned i = 0; i < parts && ret == 0; i++) {
		uint64_t off = (uint64_t)i * part_size;
		uint64_t n = len - off < part_size ? len - off : part_size;
		bool same = false;

		if (stopped(src)) {
			ret = -ECANCELED;
			break;
		}
		ret = part_hash(src->reader, off, n, hex, had[i][0] && sizes[i] == n ? had[i] : NULL,
				&same);
		if (ret == 0 && same) {
			memcpy(etags[i], had[i], sizeof(had[i]));
			kept++;
			continue;
		}
		src->base = off;
		if (ret == 0)
			ret = s3_multipart_part(db->client, key, upload_id, i + 1, n, hex, read_source,
						src, etags[i]);
	}
	if (ret == 0)
		ret = s3_multipart_complete(db->client, key, upload_id, etags, parts);
	/* The object the parts made must be the blob's length before the
	 * outbox's copy goes (servers have lost parts to racing uploads). */
	if (ret == 0 && (ret = s3_head(db->client, key, &size, NULL)) == 0 && size != len) {
		log_error("s3: %s: the upload made an object of %llu bytes, not %llu", key,
			  (unsigned long long)size, (unsigned long long)len);
		ret = -EIO;
	}
	if (ret == 0)
		abort_leftovers(db, key);
	if (ret == 0 && resumed)
		log_info("s3: %s: resumed an upload a try before left, %u of its %u parts "
			 "already there", key, kept, parts);
	if (ret < 0 && upload_id && !__atomic_load_n(&db->up_stop, __ATOMIC_RELAXED) &&
	    (!resumed || src->upload->attempts >= 2))
		(void)s3_multipart_abort(db->client, key, upload_id); /* best effort */
out:
	free(upload_id);
	free(etags);
	free(had);
	free(sizes);
	return ret;
}

/* Sends the blob unless the object store has it: 0 sent (created), -EEXIST
 * there already, or the failure. */
static int send_blob(struct s3_db *db, const char *key, const char *hex, struct source *src,
		     uint64_t len)
{
	uint64_t size = 0;
	int ret = 0;

	if (len >= S3_ASK_FIRST_MIN || !db->put_if_absent) {
		ret = s3_head(db->client, key, &size, NULL);
		ret = ret == 0 ? -EEXIST : ret == -ENOENT ? 0 : ret;
	}
	/* Without If-None-Match (a multipart upload cannot be conditional
	 * everywhere), an upload racing with another mount's upload of the
	 * same blob may take itself for the creator (docs/FORMAT.md). */
	if (ret == 0 && len >= S3_MULTIPART_MIN) {
		ret = upload_parts(db, key, src, len);
	} else if (ret == 0) {
		ret = s3_put_from(db->client, key, len, hex,
				  db->put_if_absent ? S3_PUT_IF_ABSENT : 0, read_source, src);
		/* What is there is looked at before the outbox's copy goes;
		 * gone meanwhile: the next try sends it. */
		if (ret == -EEXIST) {
			ret = s3_head(db->client, key, &size, NULL);
			ret = ret == 0 ? -EEXIST : ret == -ENOENT ? -EAGAIN : ret;
		}
	}
	/* There: an upload of it that a killed mount left is of no use. */
	if (ret == -EEXIST && len >= S3_MULTIPART_MIN && size == len)
		abort_leftovers(db, key);
	if (ret == -EEXIST && size != len) {
		/* Not the blob, its length says: replaced, rather than the
		 * good copy dropped for it (and not this save's to take back). */
		log_warning("s3: %s holds %llu bytes, the blob %llu: replacing it", key,
			    (unsigned long long)size, (unsigned long long)len);
		ret = len >= S3_MULTIPART_MIN ? upload_parts(db, key, src, len) :
		      s3_put_from(db->client, key, len, hex, 0, read_source, src);
		if (ret == 0)
			ret = -EEXIST;
	}
	return ret;
}

/* One try: 0 when the object store has the blob (or the outbox no longer
 * does: deleted meanwhile), -ECANCELED when told to stop. */
static int upload_one(struct s3_db *db, struct s3_upload *u)
{
	struct s3_store *s = u->store;
	struct source src = { .db = db, .upload = u };
	char key[S3_KEY_MAX + 1], hex[HASH_HEX_SIZE + 1];
	uint64_t len, asked;
	bool created;
	int ret;

	if (__atomic_load_n(&s->base.destroyed, __ATOMIC_ACQUIRE))
		return 0;
	ret = blob_open(s->outbox, u->hash, &src.reader);
	if (ret == -ENOENT)
		return 0;
	if (ret < 0)
		return ret;
	len = blob_reader_length(src.reader);
	hash_to_hex(u->hash, hex);
	s3_blob_key(s, u->hash, key, sizeof(key));
	asked = s3_now_ms();
	ret = send_blob(db, key, hex, &src, len);
	blob_close(src.reader);
	if (ret < 0 && ret != -EEXIST && stopped(&src))
		return -ECANCELED;
	created = ret == 0;
	if (ret == -EEXIST)
		ret = 0; /* there already: nothing to send */
	if (ret == 0) {
		s3_known_put(&db->known, s->id, u->hash, true, len, (int64_t)time(NULL), asked);
		if (created)
			s3_created_add(&db->created, s->id, u->hash);
		/* Acknowledged: the outbox's copy has done its job. */
		ret = blob_delete(s->outbox, u->hash);
		if (ret == 0)
			s3_cache_add(db, true, -(int64_t)len);
		if (ret == -ENOENT)
			ret = 0;
	}
	/* One line per blob for a refusal; an object store that does not
	 * answer is one line for all (s3_log_failure). */
	if (ret < 0 && u->attempts == 0)
		s3_log_failure(db, "uploading", key, ret);
	else if (ret == 0 && u->attempts > 0)
		log_info("s3: uploaded %s after %u failed tries", key, u->attempts);
	if (ret == 0)
		s3_log_answered(db);
	return ret;
}

/* Moves the entries whose retry is due to the ready queue (under up_lock);
 * the time of the next one due. */
static void retries_due(struct s3_db *db, uint64_t now)
{
	struct s3_upload **p = &db->waiting;
	uint64_t next = UINT64_MAX;

	if (now < db->waiting_next_ms)
		return;
	while (*p) {
		struct s3_upload *u = *p;

		if (u->not_before_ms <= now) {
			*p = u->next;
			ready_append(db, u);
			continue;
		}
		if (u->not_before_ms < next)
			next = u->not_before_ms;
		p = &u->next;
	}
	db->waiting_next_ms = next;
}

static void *uploader_main(void *arg)
{
	struct s3_db *db = arg;

	pthread_mutex_lock(&db->up_lock);
	while (!db->up_stop) {
		struct s3_upload *u;
		int ret;

		retries_due(db, s3_now_ms());
		u = db->queue_head;
		if (!u) {
			struct timespec ts;

			deadline_after(&ts, BACKOFF_MIN_MS);
			pthread_cond_timedwait(&db->up_wake, &db->up_lock, &ts);
			continue;
		}
		list_unlink(&db->queue_head, &db->queue_tail, u);
		u->state = UPLOAD_BUSY;
		pthread_mutex_unlock(&db->up_lock);

		ret = upload_one(db, u);

		pthread_mutex_lock(&db->up_lock);
		if (ret == 0 && u->again && !__atomic_load_n(&u->cancelled, __ATOMIC_RELAXED)) {
			u->again = false;
			ready_append(db, u);
			pthread_cond_broadcast(&db->up_done);
			continue;
		}
		if (ret == 0 || __atomic_load_n(&u->cancelled, __ATOMIC_RELAXED)) {
			/* Done, or a delete wants it gone: out of the table. */
			table_remove(db, u);
			db->queued--;
			if (ret == 0)
				db->uploaded++;
			pthread_cond_broadcast(&db->up_done);
			pthread_mutex_unlock(&db->up_lock);
			upload_free(u);
			pthread_mutex_lock(&db->up_lock);
			continue;
		}
		if (ret != -ECANCELED) {
			unsigned shift = u->attempts < 7 ? u->attempts : 7;
			uint64_t wait = (uint64_t)BACKOFF_MIN_MS << shift;

			db->upload_failures++;
			u->attempts++;
			u->not_before_ms = s3_now_ms() + (wait < BACKOFF_MAX_MS ? wait : BACKOFF_MAX_MS);
		}
		u->state = UPLOAD_WAITING;
		u->next = db->waiting;
		db->waiting = u;
		if (u->not_before_ms < db->waiting_next_ms)
			db->waiting_next_ms = u->not_before_ms;
		pthread_cond_broadcast(&db->up_done);
	}
	pthread_mutex_unlock(&db->up_lock);
	return NULL;
}

int s3_upload_init(struct s3_db *db)
{
	/* At open: saves queue their uploads before the threads start (or
	 * without them, in a program that never starts the database). */
	db->up_table = calloc(UPLOAD_BUCKETS, sizeof(*db->up_table));
	db->waiting_next_ms = UINT64_MAX;
	return db->up_table ? 0 : -ENOMEM;
}

int s3_upload_start(struct s3_db *db)
{
	unsigned want = db->base.opts.upload_threads ? db->base.opts.upload_threads :
						       S3_UPLOAD_THREADS_DEFAULT;
	int ret = 0;

	db->uploaders = calloc(want, sizeof(*db->uploaders));
	if (!db->uploaders)
		return -ENOMEM;
	pthread_mutex_lock(&db->up_lock);
	__atomic_store_n(&db->up_stop, false, __ATOMIC_RELAXED);
	while (db->uploader_count < want) {
		ret = -pthread_create(&db->uploaders[db->uploader_count], NULL, uploader_main, db);
		if (ret < 0)
			break;
		db->uploader_count++;
	}
	pthread_mutex_unlock(&db->up_lock);
	if (db->uploader_count == 0) {
		log_error("s3: cannot start an upload thread: %s", strerror(-ret));
		return ret;
	}
	return 0;
}

void s3_upload_stop(struct s3_db *db)
{
	struct s3_upload *gone = NULL, *u;
	unsigned count;

	pthread_mutex_lock(&db->up_lock);
	__atomic_store_n(&db->up_stop, true, __ATOMIC_RELAXED);
	count = db->uploader_count;
	pthread_cond_broadcast(&db->up_wake);
	pthread_mutex_unlock(&db->up_lock);
	for (unsigned i = 0; i < count; i++)
		pthread_join(db->uploaders[i], NULL);
	pthread_mutex_lock(&db->up_lock);
	db->uploader_count = 0;
	if (db->queued)
		log_info("s3: %zu blobs not uploaded yet: they stay in %s/outbox for the next mount",
			 db->queued, db->cache_dir);
	for (size_t i = 0; db->up_table && i < UPLOAD_BUCKETS; i++) {
		while ((u = db->up_table[i])) {
			db->up_table[i] = u->tnext;
			u->next = gone;
			gone = u;
		}
	}
	db->queue_head = db->queue_tail = db->waiting = NULL;
	db->queued = 0;
	pthread_mutex_unlock(&db->up_lock);
	while ((u = gone)) {
		gone = u->next;
		upload_free(u);
	}
	free(db->up_table);
	db->up_table = NULL;
}

struct queue_walk {
	struct s3_store *store;
	int ret;
};

static int queue_listed(const uint8_t hash[BLOBFS_HASH_SIZE], uint64_t length, void *arg)
{
	struct queue_walk *w = arg;
	struct store *held = store_hold(&w->store->base);

	(void)length;
	w->ret = s3_upload_queue(w->store, hash, &held);
	if (held)
		store_close(held);
	return w->ret;
}

static int queue_store(struct store *store, void *arg)
{
	struct queue_walk w = { to_s3store(store), 0 };

	(void)arg;
	(void)blob_list(w.store->outbox, NULL, queue_listed, &w);
	return w.ret;
}

int s3_upload_queue_outbox(struct s3_db *db)
{
	int ret = blobdb_each_store(&db->base, queue_store, NULL);

	pthread_mutex_lock(&db->up_lock);
	if (db->queued)
		log_info("s3: %zu blobs saved before and not yet uploaded: uploading them",
			 db->queued);
	pthread_mutex_unlock(&db->up_lock);
	return ret;
}
