/*
 * chunk_codec.h - compression of one data chunk at a time (zstd), for the
 * compressed records of docs/FORMAT.md (format 3). Compression is a choice
 * of the writer; decompression treats its input as untrusted: it must be
 * exactly one zstd frame, the output is bounded by the caller's buffer (a
 * chunk) and decoded straight into it (no window buffer is allocated), and
 * anything that does not decode to exactly the expected size is damage.
 * Each thread keeps its own zstd contexts (made on first use, freed when the
 * thread ends), so callers need no lock.
 */
#ifndef BLOBFS_CHUNK_CODEC_H
#define BLOBFS_CHUNK_CODEC_H

#include <stddef.h>
#include <stdint.h>

/* The compression a data directory's writers use (-o compress=). */
enum chunk_codec_kind {
	CHUNK_CODEC_NONE = 0,
	CHUNK_CODEC_ZSTD = 1,
};

#define CHUNK_CODEC_LEVEL_DEFAULT 3
#define CHUNK_CODEC_LEVEL_MIN 1
#define CHUNK_CODEC_LEVEL_MAX 19

/*
 * Compresses n bytes of src (one chunk) into dst, which has room for n - 1
 * bytes: returns the compressed size (1 .. n - 1) when the chunk shrinks,
 * 0 when it does not (store it raw), or a negative errno (-ENOMEM).
 */
long chunk_compress(int level, const void *src, size_t n, void *dst);

/*
 * Decompresses stored (a compressed chunk of stored_len bytes) into dst,
 * which must come out exactly want bytes long: 0, or -EBADMSG when the bytes
 * do not decode to that (never more than want bytes are written), or
 * -ENOMEM.
 */
int chunk_decompress(const void *stored, size_t stored_len, void *dst, size_t want);

#endif
