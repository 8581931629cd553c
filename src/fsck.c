/*
 * fsck.c - offline check and repair of a data directory: the framing and
 * checksums of every record, that every blob's bytes hash to its name, and
 * that the records of each store make a consistent index (no sequence number
 * used by two different records), and notes (never as damage) record times
 * a clock could not have given. It holds the data directory's lock while
 * it runs so that no daemon changes the packs under it.
 */
#include "fsck.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <time.h>

#include "checkpoint.h"
#include "hash.h"
#include "io.h"
#include "datadir.h"
#include "pack.h"
#include "salvage.h"

struct fsck {
	const struct io_ops *io;
	FILE *out, *progress;
	bool repair;
	struct fsck_report *report;
	struct hasher *hasher;
	int quarantine_fd; /* DATADIR/quarantine */
	const char *store;
	unsigned long long records_seen;
	int64_t now;                      /* when the check started */
	unsigned long long odd_times;     /* in the current store */
};

/* A record time later than this past the check's start is odd (a clock that
 * was wrong when the blob was saved), and so is one before the epoch. */
#define FSCK_TIME_SLACK (INT64_C(24) * 3600)
#define FSCK_ODD_TIMES_SHOWN 5

__attribute__((format(printf, 2, 3)))
static void problem(struct fsck *fsck, const char *fmt, ...)
{
	va_list ap;

	if (fsck->progress && fsck->records_seen >= 1024)
		fprintf(fsck->progress, "\r\033[K");
	fprintf(fsck->out, "store %s: ", fsck->store);
	va_start(ap, fmt);
	vfprintf(fsck->out, fmt, ap);
	va_end(ap);
	fputc('\n', fsck->out);
	fsck->report->problems++;
}

static void show_progress(struct fsck *fsck, const char *pack)
{
	if (fsck->progress && (++fsck->records_seen % 1024) == 0) {
		fprintf(fsck->progress, "\rchecking store %s, %s: %llu records", fsck->store, pack,
			fsck->records_seen);
		fflush(fsck->progress);
	}
}

static uint64_t hash_prefix(const uint8_t hash[BLOBFS_HASH_SIZE])
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = v << 8 | hash[i];
	return v;
}

/* Every record's seq in a store, sorted at the end to find a seq used by
 * two different records. The same record twice (an interrupted compaction
 * leaves both copies) is harmless. */
struct seq_record {
	uint64_t seq, prefix, offset;
	uint32_t pack_id;
	uint8_t kind;
};

struct seq_list {
	struct seq_record *records;
	size_t count, capacity;
};

static int seq_add(struct seq_list *list, uint32_t pack_id, const struct record_info *rec)
{
	if (list->count == list->capacity) {
		size_t capacity = list->capacity ? 2 * list->capacity : 1024;
		struct seq_record *records = realloc(list->records, capacity * sizeof(*records));
		if (!records)
			return -ENOMEM;
		list->records = records;
		list->capacity = capacity;
	}
	list->records[list->count++] = (struct seq_record){ .seq = rec->seq,
		.prefix = hash_prefix(rec->hash), .offset = rec->offset, .pack_id = pack_id,
		.kind = (uint8_t)rec->kind };
	return 0;
}

static int compare_seq(const void *a, const void *b)
{
	const struct seq_record *x = a, *y = b;
	return x->seq < y->seq ? -1 : x->seq > y->seq;
}

static void check_seqs(struct fsck *fsck, struct seq_list *list)
{
	char pack[PACK_NAME_SIZE];

	if (list->count)
		qsort(list->records, list->count, sizeof(*list->records), compare_seq);
	for (size_t i = 1; i < list->count; i++) {
		const struct seq_record *a = &list->records[i - 1], *b = &list->records[i];
		if (a->seq != b->seq || (a->prefix == b->prefix && a->kind == b->kind))
			continue;
		pack_name(b->pack_id, pack);
		problem(fsck, "%s: offset %" PRIu64 ": sequence number %" PRIu64
			" also used by a different record in pack %08x at offset %" PRIu64,
			pack, b->offset, b->seq, a->pack_id, a->offset);
	}
}

/* Rewrite keeps every record that frames and, for a blob, verifies. */
static int salvage_keep_record(const struct record_info *rec, int in, void *arg)
{
	struct fsck *fsck = arg;
	const char *what;

	return rec->kind != RECORD_BLOB ||
	       pack_verify_record(fsck->io, in, rec, fsck->hasher, &what) == 0;
}

/*
 * Rewrites a damaged pack: every record that frames and verifies goes into
 * a new pack (salvage.c's pack_rewrite), and the damaged file moves to the
 * quarantine. Records keep their seq, so the index rebuilt at the next mount
 * is the same minus the damaged records.
 */
static int salvage_pack(struct fsck *fsck, int store_fd, const char *name, int fd,
			uint32_t *next_id)
{
	struct quarantine q = { fsck->io, fsck->quarantine_fd, fsck->store };
	char staging[64], new_name[PACK_NAME_SIZE], quarantined[QUARANTINE_NAME_SIZE];
	struct pack_rewrite rw = { .io = fsck->io, .store_fd = store_fd, .staging_name = staging,
				   .skip_damage = true, .keep = salvage_keep_record, .arg = fsck };
	struct pack_scan scan;
	int ret;

	rw.new_id = (*next_id)++;
	pack_name(rw.new_id, new_name);
	snprintf(staging, sizeof(staging), STAGING_REPAIR_FMT, rw.new_id);
	/* Records describe themselves: even with a bad pack header the scan
	 * can find them. */
	ret = pack_scan_open_headless(fsck->io, &scan, fd, 0);
	if (ret == 0)
		ret = pack_rewrite(&rw, &scan);
	if (ret == 0)
		ret = quarantine_move(&q, store_fd, name, quarantined);
	if (ret == 0)
		fprintf(fsck->out, "store %s: %s: repaired: %llu good records kept in %s, original "
			"moved to %s/%s\n", fsck->store, name, (unsigned long long)rw.kept,
			rw.kept ? new_name : "(none)", DATADIR_QUARANTINE, quarantined);
	else
		fprintf(fsck->out, "store %s: %s: repair failed: %s\n", fsck->store, name,
			strerror(-ret));
	return ret;
}

static int cut_tail(struct fsck *fsck, const char *name, int fd, uint64_t at, uint64_t size)
{
	struct quarantine q = { fsck->io, fsck->quarantine_fd, fsck->store };
	int ret = pack_cut_tail(&q, fd, name, at, size, NULL);

	fprintf(fsck->out, "store %s: %s: %s\n", fsck->store, name,
		ret == 0 ? "repaired: torn tail kept in quarantine and cut off" : strerror(-ret));
	return ret;
}

/* A blob's saved time far in the future or before the epoch says the clock
 * was wrong when it was saved; its bytes are fine and it stays. Noted, not
 * counted as a problem, and not repaired (the time is what the blob shows). */
static void note_odd_time(struct fsck *fsck, const char *pack, const struct record_info *rec,
			  const char *hex)
{
	if (rec->time >= 0 && rec->time <= fsck->now + FSCK_TIME_SLACK)
		return;
	if (fsck->odd_times++ < FSCK_ODD_TIMES_SHOWN)
		fprintf(fsck->out, "store %s: note: %s: offset %" PRIu64 ": blob %s was saved at "
			"time %" PRId64 ", %s (its clock was wrong; the blob is kept as it is)\n",
			fsck->store, pack, rec->offset, hex, rec->time,
			rec->time < 0 ? "before 1970" : "in the future");
}

static int fsck_pack(struct fsck *fsck, int store_fd, const char *name, uint32_t pack_id,
		     struct seq_list *seqs, uint32_t *next_id)
{
	const struct io_ops *io = fsck->io;
	char hex[HASH_HEX_SIZE + 1];
	uint8_t guess[BLOBFS_HASH_SIZE];
	struct pack_scan scan;
	struct record_info rec;
	unsigned long long before = fsck->report->problems;
	bool torn_only = true;
	uint64_t torn_at = 0, size = 0;
	int fd, ret;

	fd = io->openat(store_fd, name, (fsck->repair ? O_RDWR : O_RDONLY) | O_CLOEXEC, 0);
	if (fd < 0) {
		problem(fsck, "%s: cannot open: %s", name, strerror(errno));
		fsck->report->unrepaired++;
		return 0;
	}
	fsck->report->packs++;
	ret = pack_scan_open(io, &scan, fd, pack_id);
	if (ret < 0) {
		problem(fsck, "%s: %s", name, ret == -EBADMSG ? "bad pack header (not a blobfs pack "
				"of this name)" : strerror(-ret));
		torn_only = false;
		/* Records describe themselves (and a mount uses them): check
		 * them all the same. */
		ret = ret == -EBADMSG ? pack_scan_open_headless(io, &scan, fd, pack_id) : ret;
		if (ret < 0) {
			ret = 0;
			goto repair;
		}
	}
	size = scan.file_size;
	while ((ret = pack_scan_next(&scan, &rec)) != 0) {
		const char *what;
		if (ret == -EBADMSG) {
			bool tail = scan.bad_end == scan.file_size;
			bool named = record_header_guess_hash(io, fd, scan.bad_start, guess);
			if (named)
				hash_to_hex(guess, hex);
			problem(fsck, "%s: offset %" PRIu64 ": %s (%" PRIu64 " bytes)%s%s", name,
				scan.bad_start, tail ? "torn tail: no complete record"
						     : "damaged record skipped",
				scan.bad_end - scan.bad_start, named ? ", probably blob " : "",
				named ? hex : "");
			if (tail)
				torn_at = scan.bad_start;
			else
				torn_only = false;
			continue;
		}
		if (ret < 0) {
			problem(fsck, "%s: read error: %s", name, strerror(-ret));
			torn_only = false;
			ret = 0;
			break;
		}
		show_progress(fsck, name);
		if (seq_add(seqs, pack_id, &rec) < 0) {
			ret = -ENOMEM;
			break;
		}
		if (rec.kind == RECORD_TOMBSTONE) {
			fsck->report->tombstones++;
			continue;
		}
		fsck->report->blobs++;
		fsck->report->bytes += rec.length;
		hash_to_hex(rec.hash, hex);
		note_odd_time(fsck, name, &rec, hex);
		ret = pack_verify_record(io, fd, &rec, fsck->hasher, &what);
		if (ret == -EBADMSG || ret < 0) {
			problem(fsck, "%s: offset %" PRIu64 ": blob %s: %s", name, rec.offset, hex,
				ret == -EBADMSG ? what : strerror(-ret));
			torn_only = false;
		}
	}
	if (ret == -ENOMEM)
		goto out;
	ret = 0;
repair:
	if (fsck->repair && fsck->report->problems > before) {
		if (torn_only && torn_at)
			ret = cut_tail(fsck, name, fd, torn_at, size);
		else
			ret = salvage_pack(fsck, store_fd, name, fd, next_id);
		if (ret < 0)
			fsck->report->unrepaired += fsck->report->problems - before;
		ret = 0;
	}
out:
	io->close(fd);
	return ret;
}

struct checkpoint_check {
	struct fsck *fsck;
	int store_fd;
	int fd;           /* the pack last opened */
	uint32_t pack_id; /* ...and its id */
	bool pack_gone;   /* ...which is not there (removed since: skipped) */
	unsigned long long bad;
};

/* Each entry must point at a blob record with its hash, length and time (a
 * time that differs would show the blob with a time its record does not
 * have until the checkpoint is dropped). */
static int check_checkpoint_entry(const struct index_entry *e, void *arg)
{
	struct checkpoint_check *c = arg;
	const struct io_ops *io = c->fsck->io;
	uint8_t header[RECORD_HEADER_SIZE];
	char hex[HASH_HEX_SIZE + 1], pack[PACK_NAME_SIZE];
	struct record_info rec;

	if (c->fd < 0 || c->pack_id != e->pack_id) {
		if (c->fd >= 0)
			io->close(c->fd);
		pack_name(e->pack_id, pack);
		c->fd = io->openat(c->store_fd, pack, O_RDONLY | O_CLOEXEC, 0);
		c->pack_gone = c->fd < 0 && errno == ENOENT;
		c->pack_id = e->pack_id;
	}
	if (c->pack_gone)
		return 0; /* a mount drops these entries (local_checkpoint.c) */
	if (c->fd >= 0 && pread_full(io, c->fd, header, sizeof(header), e->offset) == 0 &&
	    record_header_decode(header, e->offset, &rec) == 0 && rec.kind == RECORD_BLOB &&
	    rec.length == e->length && !memcmp(rec.hash, e->hash, BLOBFS_HASH_SIZE) &&
	    rec.time == e->saved)
		return 0;
	hash_to_hex(e->hash, hex);
	pack_name(e->pack_id, pack);
	if (c->bad++ < 20)
		problem(c->fsck, "index checkpoint: blob %s: %s offset %" PRIu64
			" does not hold its record", hex, pack, e->offset);
	else
		c->fsck->report->problems++;
	return 0;
}

/* The persisted index against the packs. With repair, a checkpoint that
 * does not match (or that a repaired pack made stale) is removed: the next
 * mount scans the packs and the next clean unmount writes a new one. */
static void fsck_checkpoint(struct fsck *fsck, int store_fd, bool packs_repaired)
{
	const struct io_ops *io = fsck->io;
	struct checkpoint_check c = { .fsck = fsck, .store_fd = store_fd, .fd = -1 };
	struct checkpoint_header h;
	struct checkpoint_pack *packs = NULL;
	struct index *entries = NULL;
	bool stale = false;
	int ret = index_new(&entries);

	if (ret == 0)
		ret = checkpoint_read(io, store_fd, STORE_CHECKPOINT, &h, &packs, entries);
	if (ret == -ENOENT)
		goto out;
	if (ret < 0) {
		problem(fsck, "index checkpoint unreadable: %s",
			ret == -EBADMSG ? "does not check out" : strerror(-ret));
		c.bad++;
	} else {
		/* A pack it covers that changed since (compacted into, cut):
		 * a mount ignores it and scans the packs; one that is gone
		 * (removed whole: every record dead) only loses its entries.
		 * Neither is damage. */
		unsigned gone = 0;
		for (uint32_t i = 0; i < h.pack_count && !stale; i++) {
			char name[PACK_NAME_SIZE];
			int fd;
			pack_name(packs[i].id, name);
			fd = io->openat(store_fd, name, O_RDONLY | O_CLOEXEC, 0);
			if (fd < 0 && errno == ENOENT)
				gone++;
			else if (!checkpoint_pack_matches(io, store_fd, &packs[i]))
				stale = true;
			if (fd >= 0)
				io->close(fd);
		}
		if (stale)
			fprintf(fsck->out, "store %s: note: index checkpoint out of date (the next "
				"mount scans the packs)\n", fsck->store);
		else if (gone)
			fprintf(fsck->out, "store %s: note: index checkpoint names %u packs removed "
				"since (the next mount drops their entries)\n", fsck->store, gone);
		if (!stale)
			index_foreach(entries, check_checkpoint_entry, &c);
	}
	if (fsck->repair && (c.bad || stale || packs_repaired)) {
		if (io->unlinkat(store_fd, STORE_CHECKPOINT, 0) == 0 && io->fsync(store_fd) == 0)
			fprintf(fsck->out, "store %s: index checkpoint removed (rebuilt from the packs "
				"at the next mount)\n", fsck->store);
		else
			fsck->report->unrepaired += c.bad;
	}
out:
	if (c.fd >= 0)
		io->close(c.fd);
	free(packs);
	index_free(entries);
}

static int fsck_store(struct fsck *fsck, int stores_fd, const char *name)
{
	const struct io_ops *io = fsck->io;
	struct seq_list seqs = { 0 };
	char **entries = NULL;
	uint32_t next_id = 1;
	size_t count = 0;
	int store_fd, ret = 0;

	fsck->store = name;
	fsck->odd_times = 0;
	fsck->report->stores++;
	store_fd = io->openat(stores_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC, 0);
	if (store_fd < 0) {
		problem(fsck, "cannot open its directory: %s", strerror(errno));
		fsck->report->unrepaired++;
		return 0;
	}
	ret = datadir_list_sorted(io, store_fd, ".", &entries, &count);
	if (ret < 0) {
		problem(fsck, "cannot list its directory: %s", strerror(-ret));
		fsck->report->unrepaired++;
		ret = 0;
		goto out;
	}
	for (size_t i = 0; i < count; i++) {
		uint32_t id;
		if (pack_parse_name(entries[i], &id) && id >= next_id)
			next_id = id + 1;
	}
	unsigned long long before = fsck->report->problems;
	for (size_t i = 0; i < count && ret == 0; i++) {
		uint32_t pack_id;
		const char *file = entries[i];
		if (pack_parse_name(file, &pack_id))
			ret = fsck_pack(fsck, store_fd, file, pack_id, &seqs, &next_id);
		else if (file[0] != '.' && !datadir_is_store_file(file))
			fprintf(fsck->out, "store %s: note: unexpected file %s (ignored)\n", name,
				file);
	}
	if (fsck->odd_times > FSCK_ODD_TIMES_SHOWN)
		fprintf(fsck->out, "store %s: note: %llu blobs in all have a saved time in the "
			"future or before 1970\n", name, fsck->odd_times);
	if (ret == 0)
		check_seqs(fsck, &seqs);
	if (ret == 0)
		fsck_checkpoint(fsck, store_fd, fsck->report->problems > before);
out:
	datadir_names_free(entries, count);
	free(seqs.records);
	io->close(store_fd);
	return ret;
}

int fsck_run(const char *datadir, const struct io_ops *io, bool repair, FILE *out,
	     FILE *progress, struct fsck_report *report)
{
	struct fsck fsck = { .out = out, .progress = progress, .report = report, .repair = repair,
			     .quarantine_fd = -1, .now = (int64_t)time(NULL) };
	char **entries = NULL;
	size_t count = 0;
	int dir_fd = -1, lock_fd = -1, stores_fd = -1, ret;

	if (!io)
		io = io_system();
	fsck.io = io;
	memset(report, 0, sizeof(*report));
	dir_fd = io->openat(AT_FDCWD, datadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (dir_fd < 0) {
		ret = -errno;
		goto out;
	}
	lock_fd = io->openat(dir_fd, DATADIR_LOCK, O_RDONLY | O_CLOEXEC, 0);
	if (lock_fd >= 0 && io->flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out;
	}
	stores_fd = io->openat(dir_fd, DATADIR_STORES, O_RDONLY | O_DIRECTORY | O_CLOEXEC, 0);
	if (stores_fd < 0) {
		ret = errno == ENOENT ? 0 : -errno; /* never mounted: nothing to check */
		goto out;
	}
	if (repair) {
		ret = datadir_open_subdir(io, dir_fd, DATADIR_QUARANTINE, &fsck.quarantine_fd);
		if (ret < 0)
			goto out;
	}
	ret = hasher_new(&fsck.hasher);
	if (ret < 0)
		goto out;
	ret = datadir_list_sorted(io, stores_fd, ".", &entries, &count);
	for (size_t i = 0; i < count && ret == 0; i++) {
		if (entries[i][0] == '.')
			continue;
		ret = fsck_store(&fsck, stores_fd, entries[i]);
	}
	if (progress && fsck.records_seen >= 1024)
		fprintf(progress, "\r\033[K");
out:
	datadir_names_free(entries, count);
	hasher_free(fsck.hasher);
	if (fsck.quarantine_fd >= 0)
		io->close(fsck.quarantine_fd);
	if (stores_fd >= 0)
		io->close(stores_fd);
	if (lock_fd >= 0)
		io->close(lock_fd);
	if (dir_fd >= 0)
		io->close(dir_fd);
	return ret;
}
