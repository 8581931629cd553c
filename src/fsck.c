/*
 * fsck.c - offline check of a data directory: the framing and checksums of
 * every record, that every blob's bytes hash to its name, and that the
 * records of each store make a consistent index (no sequence number used
 * twice). It holds the data directory's lock while it runs so that no
 * daemon changes the packs under it, and it writes nothing.
 */
#include "fsck.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include "hash.h"
#include "index.h"
#include "pack.h"
#include "store.h"

struct fsck {
	FILE *out, *progress;
	struct fsck_report *report;
	struct hasher *hasher;
	const char *store;
	unsigned long long records_seen;
};

__attribute__((format(printf, 2, 3)))
static void problem(struct fsck *fsck, const char *fmt, ...)
{
	va_list ap;

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

/* splitmix64's finaliser: a bijection on 64-bit integers. */
static uint64_t seq_mix(uint64_t x)
{
	x = (x ^ (x >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
	x = (x ^ (x >> 27)) * UINT64_C(0x94d049bb133111eb);
	return x ^ (x >> 31);
}

/* seqs: every sequence number seen in the store, to find duplicates. */
static int fsck_pack(struct fsck *fsck, int store_fd, const char *name, uint32_t pack_id,
		     struct index *seqs)
{
	char hex[HASH_HEX_SIZE + 1];
	struct pack_scan scan;
	struct record_info rec;
	int fd, ret;

	fd = openat(store_fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		problem(fsck, "%s: cannot open: %s", name, strerror(errno));
		return 0;
	}
	fsck->report->packs++;
	ret = pack_scan_open(&scan, fd, pack_id);
	if (ret == -EBADMSG) {
		problem(fsck, "%s: bad pack header (not a blobfs pack of this name)", name);
		ret = 0;
		goto out;
	}
	if (ret < 0) {
		problem(fsck, "%s: cannot read: %s", name, strerror(-ret));
		ret = 0;
		goto out;
	}
	while ((ret = pack_scan_next(&scan, &rec)) != 0) {
		struct index_entry seen, entry = { .kind = RECORD_BLOB };
		const char *what;
		if (ret == -EBADMSG) {
			problem(fsck, "%s: offset %" PRIu64 ": %s (%" PRIu64 " bytes)", name,
				scan.bad_start,
				scan.bad_end == scan.file_size ? "torn tail: no complete record"
							       : "damaged record skipped",
				scan.bad_end - scan.bad_start);
			continue;
		}
		if (ret < 0) {
			problem(fsck, "%s: read error: %s", name, strerror(-ret));
			break;
		}
		show_progress(fsck, name);
		hash_to_hex(rec.hash, hex);
		/* The seq table is an index keyed by a bijective mix of the seq,
		 * which spreads sequential numbers evenly over its slots. */
		uint64_t key = seq_mix(rec.seq);
		memset(entry.hash, 0, sizeof(entry.hash));
		for (int i = 0; i < 8; i++)
			entry.hash[i] = (uint8_t)(key >> (56 - 8 * i));
		entry.pack_id = pack_id;
		entry.offset = rec.offset;
		if (index_lookup(seqs, entry.hash, &seen) == 0)
			problem(fsck, "%s: offset %" PRIu64 ": sequence number %" PRIu64
				" also used at pack %08x offset %" PRIu64, name, rec.offset,
				rec.seq, seen.pack_id, seen.offset);
		else if (index_put(seqs, &entry) < 0) {
			ret = -ENOMEM;
			break;
		}
		if (rec.kind == RECORD_TOMBSTONE) {
			fsck->report->tombstones++;
			continue;
		}
		fsck->report->blobs++;
		fsck->report->bytes += rec.length;
		ret = pack_verify_record(fd, &rec, fsck->hasher, &what);
		if (ret == -EBADMSG)
			problem(fsck, "%s: offset %" PRIu64 ": blob %s: %s", name, rec.offset, hex,
				what);
		else if (ret < 0)
			problem(fsck, "%s: offset %" PRIu64 ": blob %s: read error: %s", name,
				rec.offset, hex, strerror(-ret));
	}
	ret = ret == -ENOMEM ? ret : 0;
out:
	close(fd);
	return ret;
}

static int fsck_store(struct fsck *fsck, int stores_fd, const char *name)
{
	struct index *seqs = NULL;
	struct dirent **entries = NULL;
	int store_fd, count = 0, ret;

	fsck->store = name;
	fsck->report->stores++;
	store_fd = openat(stores_fd, name, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (store_fd < 0) {
		problem(fsck, "cannot open its directory: %s", strerror(errno));
		return 0;
	}
	ret = index_new(&seqs);
	if (ret < 0)
		goto out;
	count = scandirat(store_fd, ".", &entries, NULL, alphasort);
	if (count < 0) {
		problem(fsck, "cannot list its directory: %s", strerror(errno));
		count = 0;
		goto out;
	}
	for (int i = 0; i < count && ret == 0; i++) {
		uint32_t pack_id;
		const char *file = entries[i]->d_name;
		if (pack_parse_name(file, &pack_id))
			ret = fsck_pack(fsck, store_fd, file, pack_id, seqs);
		else if (file[0] != '.' && strncmp(file, "staging-", 8))
			fprintf(fsck->out, "store %s: note: unexpected file %s (ignored)\n", name,
				file);
	}
out:
	for (int i = 0; i < count; i++)
		free(entries[i]);
	free(entries);
	index_free(seqs);
	close(store_fd);
	return ret;
}

int fsck_run(const char *datadir, FILE *out, FILE *progress, struct fsck_report *report)
{
	struct fsck fsck = { .out = out, .progress = progress, .report = report };
	struct dirent **entries = NULL;
	int dir_fd = -1, lock_fd = -1, stores_fd = -1, count = 0, ret;

	memset(report, 0, sizeof(*report));
	dir_fd = open(datadir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dir_fd < 0) {
		ret = -errno;
		goto out;
	}
	lock_fd = openat(dir_fd, "lock", O_RDONLY | O_CLOEXEC);
	if (lock_fd >= 0 && flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		ret = errno == EWOULDBLOCK ? -EBUSY : -errno;
		goto out;
	}
	stores_fd = openat(dir_fd, "stores", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (stores_fd < 0) {
		ret = errno == ENOENT ? 0 : -errno; /* never mounted: nothing to check */
		goto out;
	}
	ret = hasher_new(&fsck.hasher);
	if (ret < 0)
		goto out;
	count = scandirat(stores_fd, ".", &entries, NULL, alphasort);
	if (count < 0) {
		ret = -errno;
		count = 0;
		goto out;
	}
	for (int i = 0; i < count && ret == 0; i++) {
		const char *name = entries[i]->d_name;
		if (name[0] == '.')
			continue;
		ret = fsck_store(&fsck, stores_fd, name);
	}
	if (progress && fsck.records_seen >= 1024)
		fprintf(progress, "\r\033[K");
out:
	for (int i = 0; i < count; i++)
		free(entries[i]);
	free(entries);
	hasher_free(fsck.hasher);
	if (stores_fd >= 0)
		close(stores_fd);
	if (lock_fd >= 0)
		close(lock_fd);
	if (dir_fd >= 0)
		close(dir_fd);
	return ret;
}
