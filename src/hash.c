/*
 * hash.c - SHA-256 through OpenSSL's EVP API, and hex names.
 */
#include "hash.h"

#include <errno.h>
#include <endian.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

_Static_assert(__BYTE_ORDER == __LITTLE_ENDIAN, "blobfs assumes a little-endian host");

struct hasher {
	EVP_MD_CTX *ctx;
};

int hasher_new(struct hasher **out)
{
	int ret = -ENOMEM;
	struct hasher *h = calloc(1, sizeof(*h));

	if (!h)
		goto out;
	h->ctx = EVP_MD_CTX_new();
	if (!h->ctx)
		goto out;
	ret = hasher_reset(h);
out:
	if (ret < 0) {
		hasher_free(h);
		h = NULL;
	}
	*out = h;
	return ret;
}

void hasher_free(struct hasher *h)
{
	if (!h)
		return;
	EVP_MD_CTX_free(h->ctx);
	free(h);
}

int hasher_reset(struct hasher *h)
{
	return EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

int hasher_update(struct hasher *h, const void *buf, size_t len)
{
	return EVP_DigestUpdate(h->ctx, buf, len) == 1 ? 0 : -EIO;
}

int hasher_final(struct hasher *h, uint8_t out[BLOBFS_HASH_SIZE])
{
	unsigned int len = 0;

	if (EVP_DigestFinal_ex(h->ctx, out, &len) != 1 || len != BLOBFS_HASH_SIZE)
		return -EIO;
	return 0;
}

int hash_buffer(const void *buf, size_t len, uint8_t out[BLOBFS_HASH_SIZE])
{
	unsigned int out_len = 0;

	if (EVP_Digest(buf, len, out, &out_len, EVP_sha256(), NULL) != 1 ||
	    out_len != BLOBFS_HASH_SIZE)
		return -EIO;
	return 0;
}

/* Two digits per byte from one table: listings print millions of names. */
static char hex_pairs[256][2];
static pthread_once_t hex_pairs_once = PTHREAD_ONCE_INIT;

static void hex_pairs_init(void)
{
	static const char digits[] = "0123456789abcdef";

	for (int i = 0; i < 256; i++) {
		hex_pairs[i][0] = digits[i >> 4];
		hex_pairs[i][1] = digits[i & 15];
	}
}

void hash_to_hex(const uint8_t hash[BLOBFS_HASH_SIZE], char out[HASH_HEX_SIZE + 1])
{
	pthread_once(&hex_pairs_once, hex_pairs_init);
	for (int i = 0; i < BLOBFS_HASH_SIZE; i++)
		memcpy(out + 2 * i, hex_pairs[hash[i]], 2);
	out[HASH_HEX_SIZE] = '\0';
}

static int hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

bool hash_from_hex(const char *hex, size_t len, uint8_t out[BLOBFS_HASH_SIZE])
{
	if (len != HASH_HEX_SIZE)
		return false;
	for (int i = 0; i < BLOBFS_HASH_SIZE; i++) {
		int hi = hex_digit(hex[2 * i]), lo = hex_digit(hex[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}
