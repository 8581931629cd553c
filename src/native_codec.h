/*
 * native_codec.h - the blob database's native protocol, version 1
 * (docs/FORMAT.md, "The native protocol"), as bytes: the opening, the head
 * of each request (its code and the arguments before a blob's bytes), and
 * the pieces of a response. No socket here: a server feeds the decoder what
 * has arrived and streams a blob's bytes itself, so memory never grows with
 * a blob's size. What a client sends is untrusted input (fuzzed by
 * tests/fuzz/fuzz_native.c): every length is checked before it is used.
 */
#ifndef BLOBFS_NATIVE_CODEC_H
#define BLOBFS_NATIVE_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

#define NATIVE_VERSION 1
#define NATIVE_CODE_SIZE 8
/* A store name blobfs takes is at most this long (store.h); the wire allows
 * 65,535 bytes, which are read and refused (invalarg). */
#define NATIVE_NAME_MAX 255
/* The longest request head: a code, a name of 65,535 bytes, a hash and a
 * blob's length. A server's input buffer holds at least this much. */
#define NATIVE_HEAD_MAX (NATIVE_CODE_SIZE + 2 + 65535 + BLOBFS_HASH_SIZE + 8)

enum native_op {
	NATIVE_STORE_LIST,    /* storlist */
	NATIVE_STORE_CREATE,  /* storenew StoreName */
	NATIVE_STORE_DESTROY, /* storedel StoreName */
	NATIVE_BLOB_HASH,     /* blobhash Blob */
	NATIVE_BLOB_LIST,     /* bloblist StoreName */
	NATIVE_BLOB_INFO,     /* blobinfo StoreName Hash */
	NATIVE_BLOB_LOAD,     /* blobload StoreName Hash */
	NATIVE_BLOB_SAVE,     /* blobsave StoreName Blob */
	NATIVE_BLOB_DELETE,   /* blobdrop StoreName Hash */
	NATIVE_GOODBYE,       /* Goodbye! : the client is done */
};

struct native_request {
	enum native_op op;
	bool has_name;
	bool name_ok;          /* 1 to NATIVE_NAME_MAX bytes, no NUL */
	size_t name_len;
	char name[NATIVE_NAME_MAX + 1]; /* NUL-terminated when name_ok */
	bool has_hash;
	uint8_t hash[BLOBFS_HASH_SIZE];
	bool has_blob;
	uint64_t blob_len;     /* its bytes follow the head */
};

/* The opening, "OpenDoor" and a uint16 version: 0 and *version, -EAGAIN
 * (more bytes needed) or -EPROTO (not an opening). *used: bytes taken. */
int native_open_decode(const void *buf, size_t len, uint16_t *version, size_t *used);

/* The head of the next request: 0 (filled, *used bytes taken), -EAGAIN
 * (more bytes needed: at most NATIVE_HEAD_MAX in all) or -EPROTO (an
 * unknown code: what follows cannot be read). */
int native_request_decode(const void *buf, size_t len, struct native_request *out,
			  size_t *used);

/* The 8-byte status code that answers a result of store.h (0, -EEXIST,
 * -ENOENT, -ENOSPC, -EINVAL; anything else is "internal"). */
const char *native_status(int result);

/* Encoders: each writes into out (which must have room) and returns the
 * bytes written. */
#define NATIVE_WELCOME "Welcome!"
#define NATIVE_GO_AWAY "Go away!"
size_t native_put_code(uint8_t *out, const char *code);
size_t native_put_u16(uint8_t *out, uint16_t v);
size_t native_put_u64(uint8_t *out, uint64_t v);
/* A StoreName: uint16 length and the bytes (len at most 65,535). */
size_t native_put_name(uint8_t *out, const char *name, size_t len);
size_t native_put_hash(uint8_t *out, const uint8_t hash[BLOBFS_HASH_SIZE]);

#endif
