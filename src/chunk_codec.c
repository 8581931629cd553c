/*
 * chunk_codec.c - zstd, one chunk at a time, with per-thread contexts. A
 * stored chunk must be exactly one zstd frame (no skippable frame, nothing
 * after it) that says no other content size than the chunk's; it is decoded
 * in one call straight into the caller's buffer of the chunk's size, which
 * allocates no window buffer whatever window the frame declares, so a
 * hostile frame cannot make the decoder write or allocate past a chunk.
 */
#include "chunk_codec.h"

#include <errno.h>
#include <pthread.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "format.h"

static pthread_key_t cctx_key, dctx_key;
static pthread_once_t keys_once = PTHREAD_ONCE_INIT;
static int keys_error;

static void cctx_free(void *p)
{
	ZSTD_freeCCtx(p);
}

static void dctx_free(void *p)
{
	ZSTD_freeDCtx(p);
}

static void keys_make(void)
{
	if (pthread_key_create(&cctx_key, cctx_free) || pthread_key_create(&dctx_key, dctx_free))
		keys_error = -ENOMEM;
}

static ZSTD_CCtx *thread_cctx(void)
{
	ZSTD_CCtx *c;

	if (pthread_once(&keys_once, keys_make) || keys_error)
		return NULL;
	c = pthread_getspecific(cctx_key);
	if (!c) {
		c = ZSTD_createCCtx();
		if (c && pthread_setspecific(cctx_key, c)) {
			ZSTD_freeCCtx(c);
			c = NULL;
		}
	}
	return c;
}

static ZSTD_DCtx *thread_dctx(void)
{
	ZSTD_DCtx *d;

	if (pthread_once(&keys_once, keys_make) || keys_error)
		return NULL;
	d = pthread_getspecific(dctx_key);
	if (!d) {
		d = ZSTD_createDCtx();
		if (d && pthread_setspecific(dctx_key, d)) {
			ZSTD_freeDCtx(d);
			d = NULL;
		}
	}
	return d;
}

long chunk_compress(int level, const void *src, size_t n, void *dst)
{
	ZSTD_CCtx *c;
	size_t got;

	if (n < 2)
		return 0;
	c = thread_cctx();
	if (!c)
		return -ENOMEM;
	/* Room for n - 1 bytes: zstd stops with an error as soon as the frame
	 * would not shrink the chunk, which is also the cheap way out for
	 * incompressible data. */
	got = ZSTD_compressCCtx(c, dst, n - 1, src, n, level);
	if (ZSTD_isError(got))
		return ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation ? -ENOMEM : 0;
	return (long)got;
}

int chunk_decompress(const void *stored, size_t stored_len, void *dst, size_t want)
{
	ZSTD_DCtx *d = thread_dctx();
	const uint8_t *p = stored;
	unsigned long long content;
	size_t got;

	if (!d)
		return -ENOMEM;
	/* One frame, nothing else: docs/FORMAT.md. */
	if (stored_len < 4 || ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
			       (uint32_t)p[3] << 24) != ZSTD_MAGICNUMBER ||
	    ZSTD_findFrameCompressedSize(stored, stored_len) != stored_len)
		return -EBADMSG;
	content = ZSTD_getFrameContentSize(stored, stored_len);
	if (content == ZSTD_CONTENTSIZE_ERROR ||
	    (content != ZSTD_CONTENTSIZE_UNKNOWN && content != want))
		return -EBADMSG;
	got = ZSTD_decompressDCtx(d, dst, want, stored, stored_len);
	if (ZSTD_isError(got)) {
		/* A failed frame can leave the context mid-stream. */
		ZSTD_DCtx_reset(d, ZSTD_reset_session_only);
		return ZSTD_getErrorCode(got) == ZSTD_error_memory_allocation ? -ENOMEM : -EBADMSG;
	}
	return got == want ? 0 : -EBADMSG;
}
