/*
 * fuzz_checkpoint.c - the index checkpoint reader (src/checkpoint.c) on
 * arbitrary files. Byte 0 of the input holds flags that repair what a
 * fuzzer cannot guess (the magic, counts that add up to the length, the
 * header and trailer checksums) so that inputs reach the entry decoding.
 * Whatever the reader accepts must be written back to the very same bytes
 * by checkpoint_write (the format has one encoding per index), when it is
 * of the version written today (3); one of an older version is written as
 * version 3 with the same content, which reads back the same: from version
 * 1 (entries without a time) with times 0, from versions 1 and 2 with no
 * disk size (their records are raw). Flag 8 makes the fix-ups produce
 * version 1, flag 16 version 2.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "io.h"
#include "bytes.h"
#include "checkpoint.h"
#include "crc32c.h"
#include "index.h"

static char dir[] = "/tmp/fuzz-checkpoint-XXXXXX";
static int dir_fd = -1;

static void remove_dir(void)
{
	unlinkat(dir_fd, "checkpoint", 0);
	unlinkat(dir_fd, "again", 0);
	rmdir(dir);
}

static int write_file(const char *name, const uint8_t *data, size_t size)
{
	int fd = openat(dir_fd, name, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, size) != (ssize_t)size)
		__builtin_trap();
	close(fd);
	return 0;
}

struct other_index {
	struct index *index;
	uint32_t version; /* of the checkpoint the entries came from */
};

/* e is in the other index, the same in every field, with time 0 when it
 * came from version 1 and no disk size when from version 1 or 2. */
static int same_in_other(const struct index_entry *e, void *arg)
{
	const struct other_index *o = arg;
	struct index_entry other;

	return index_lookup(o->index, e->hash, &other) != 0 || memcmp(&other, e, sizeof(other)) ||
	       (o->version == 1 && e->saved != 0) || e->disk != 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct checkpoint_header h;
	struct checkpoint_pack *packs = NULL;
	struct index *index = NULL;
	uint8_t *file, *again;
	size_t len;
	unsigned flags;
	int ret;

	if (size < 1)
		return 0;
	if (dir_fd < 0) {
		if (!mkdtemp(dir))
			__builtin_trap();
		dir_fd = open(dir, O_RDONLY | O_DIRECTORY);
		atexit(remove_dir);
	}
	flags = data[0];
	len = size - 1;
	const uint32_t version = flags & 8 ? 1 : flags & 16 ? 2 : CHECKPOINT_VERSION;
	const size_t entry_size = (size_t)checkpoint_entry_size(version);
	if ((flags & 4) && len >= CHECKPOINT_HEADER_SIZE + CHECKPOINT_TRAILER_SIZE) {
		/* Counts that fit the length: a few packs, then whole entries. */
		size_t body = len - CHECKPOINT_HEADER_SIZE - CHECKPOINT_TRAILER_SIZE;
		uint32_t pack_count = (uint32_t)(data[1 + 12] % 4);
		if (body < (size_t)pack_count * CHECKPOINT_PACK_SIZE)
			pack_count = 0;
		body -= (size_t)pack_count * CHECKPOINT_PACK_SIZE;
		len = CHECKPOINT_HEADER_SIZE + (size_t)pack_count * CHECKPOINT_PACK_SIZE +
		      body / entry_size * entry_size + CHECKPOINT_TRAILER_SIZE;
	}
	file = malloc(len ? len : 1);
	memcpy(file, data + 1, len);
	if ((flags & 1) && len >= CHECKPOINT_HEADER_SIZE) {
		memcpy(file, CHECKPOINT_MAGIC, 8);
		put_le32(file + 8, version);
		if (flags & 4) {
			size_t packs_size = len - CHECKPOINT_HEADER_SIZE - CHECKPOINT_TRAILER_SIZE;
			uint32_t pack_count = (uint32_t)(data[1 + 12] % 4);
			if (packs_size < (size_t)pack_count * CHECKPOINT_PACK_SIZE)
				pack_count = 0;
			put_le32(file + 12, pack_count);
			put_le64(file + 16, (packs_size - (size_t)pack_count * CHECKPOINT_PACK_SIZE) /
						    entry_size);
		}
		memset(file + 36, 0, 24);
		put_le32(file + 60, crc32c(0, file, 60));
	}
	if ((flags & 2) && len >= CHECKPOINT_HEADER_SIZE + CHECKPOINT_TRAILER_SIZE) {
		put_le32(file + len - 8, 0x31584449u);
		put_le32(file + len - 4, crc32c(0, file, len - 8));
	}
	write_file("checkpoint", file, len);
	if (index_new(&index) < 0)
		__builtin_trap();
	ret = checkpoint_read(io_system(), dir_fd, "checkpoint", &h, &packs, index);
	if (ret == 0 && h.version < CHECKPOINT_VERSION) {
		/* Accepted, of an older version: written as today's, it reads
		 * back as the same index (format 1 kept no times, formats 1 and
		 * 2 no disk sizes). */
		struct checkpoint_header h2;
		struct checkpoint_pack *packs2 = NULL;
		struct index *index2 = NULL;
		if (checkpoint_write(io_system(), dir_fd, "again", &h, packs, index) != 0 ||
		    index_new(&index2) < 0 ||
		    checkpoint_read(io_system(), dir_fd, "again", &h2, &packs2, index2) != 0)
			__builtin_trap();
		if (h2.version != CHECKPOINT_VERSION || h2.pack_count != h.pack_count ||
		    h2.entry_count != h.entry_count || h2.next_seq != h.next_seq ||
		    h2.next_pack_id != h.next_pack_id ||
		    (h.pack_count && memcmp(packs2, packs, h.pack_count * sizeof(*packs))) ||
		    index_count(index2) != index_count(index) ||
		    index_foreach(index, same_in_other,
				  &(struct other_index){ .index = index2, .version = h.version }) != 0)
			__builtin_trap();
		free(packs2);
		index_free(index2);
	} else if (ret == 0) {
		/* Accepted: writing it again gives the same bytes. */
		struct stat st;
		if (checkpoint_write(io_system(), dir_fd, "again", &h, packs, index) != 0)
			__builtin_trap();
		int fd = openat(dir_fd, "again", O_RDONLY);
		if (fd < 0 || fstat(fd, &st) < 0 || (size_t)st.st_size != len)
			__builtin_trap();
		again = malloc(len ? len : 1);
		if (read(fd, again, len) != (ssize_t)len || memcmp(again, file, len))
			__builtin_trap();
		free(again);
		close(fd);
		/* The packs are not there: a mount would not use it. */
		if (h.pack_count && checkpoint_usable(io_system(), dir_fd, &h, packs))
			__builtin_trap();
	} else if (ret != -EBADMSG && ret != -ENOMEM) {
		__builtin_trap();
	}
	free(packs);
	index_free(index);
	free(file);
	return 0;
}
