/*
 * memory.h - the memory backend's internal header: the structs its files
 * share (memory.c: the database, stores, blobs and readers; memory_tree.c:
 * the budget, blob buffers and each store's treap; memory_write.c: the
 * writers) and the calls between them. memory.c's header says how the
 * budget is charged and how the backend locks.
 */
#ifndef BLOBFS_MEMORY_H
#define BLOBFS_MEMORY_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend.h"

struct memory_blob {
	struct memory_blob *left, *right; /* the store's treap, while listed */
	uint32_t priority;                /* treap heap order: random */
	unsigned refs;                    /* atomic */
	uint64_t length;
	int64_t saved;                    /* set when listed (under the store's lock) */
	uint8_t hash[BLOBFS_HASH_SIZE];
	uint8_t data[];
};

#define MEMORY_BLOB_OVERHEAD ((uint64_t)sizeof(struct memory_blob))
#define MEMORY_BLOCK_SIZE 4096

struct memory_db {
	struct blobdb base;
	uint64_t memory_max;
	uint64_t memory_used;  /* atomic: bytes charged, see the header */
	size_t blob_total;     /* atomic: blobs listed in every store, for statfs */
	uint64_t priority_seq; /* atomic: the treap priorities' generator state */
};

struct memory_store {
	struct store base;
	pthread_mutex_t lock;
	struct memory_blob *root; /* the treap: hash order, max-heap on priority */
	size_t count;
	struct store_attr attr;   /* owner, group, mode (under lock) */
};

struct memory_reader {
	struct blob_reader base;
	struct memory_db *db; /* outlives the reader, unlike the store may */
	struct memory_blob *blob;
};

struct memory_writer {
	struct blob_writer base;
	pthread_mutex_t lock;
	/* The content: a buffer only this writer sees (capacity bytes of data,
	 * charged), or after a commit the saved blob itself (shared, read-only,
	 * copied before any change). NULL while empty and never committed. */
	struct memory_blob *content;
	bool shared;
	uint64_t size;
	uint64_t capacity;
	int error; /* the first failed write or truncate; sticky */
};

/* The base structs are the first members (backend.h). */
#define to_db(base) ((struct memory_db *)(base))
#define to_store(base) ((struct memory_store *)(base))
#define store_db(store) to_db((store)->db)

/* memory_tree.c */
int membudget_take(struct memory_db *db, uint64_t bytes);
void membudget_give(struct memory_db *db, uint64_t bytes);
int memblob_alloc(struct memory_db *db, uint64_t capacity, struct memory_blob **out);
struct memory_blob *memblob_ref(struct memory_blob *blob);
void memblob_unref(struct memory_db *db, struct memory_blob *blob);
struct memory_blob *memtree_find(struct memory_blob *node, const uint8_t *hash);
struct memory_blob *memtree_remove(struct memory_blob *node, const uint8_t *hash,
				       struct memory_blob **removed);
void memtree_collect(const struct memory_blob *node, const uint8_t *after,
			 struct blob_entry *out, size_t *n, size_t max);
uint64_t memtree_bytes(const struct memory_blob *node);
void memtree_release(struct memory_db *db, struct memory_blob *node);
int memstore_insert(struct memory_store *ms, struct memory_blob *blob,
			struct memory_blob **existing);

/* memory.c */
size_t memory_copy_out(const uint8_t *data, uint64_t length, void *buf, size_t size,
		       uint64_t off);

/* memory_write.c */
int memory_writer_new(struct store *store, struct blob_writer **out);
int memory_writer_write(struct blob_writer *base, const void *buf, size_t size,
			       uint64_t off);
int memory_writer_read(struct blob_writer *base, void *buf, size_t size, uint64_t off,
			      size_t *got);
int memory_writer_truncate(struct blob_writer *base, uint64_t size);
uint64_t memory_writer_size(struct blob_writer *base);
int memory_writer_commit(struct blob_writer *base, const uint8_t *expect,
		uint8_t hash[BLOBFS_HASH_SIZE]);
void memory_writer_free(struct blob_writer *base);

#endif
