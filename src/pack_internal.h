/*
 * pack_internal.h - what pack.c and pack_zrecord.c share and nothing else
 * uses: pieces of the record framing of docs/FORMAT.md.
 */
#ifndef BLOBFS_PACK_INTERNAL_H
#define BLOBFS_PACK_INTERNAL_H

#include "pack.h"

void record_trailer_encode(uint64_t seq, uint32_t table_crc, uint8_t out[RECORD_TRAILER_SIZE]);
bool record_trailer_matches(const uint8_t trailer[RECORD_TRAILER_SIZE], const struct record_info *rec,
			    const uint8_t *table, uint64_t table_size);
/* Decodes and checks a REC3 chunk table (as on disk) into chunks (when not
 * NULL) and its stored total. */
int zrecord_table_decode(const struct record_info *rec, const uint8_t *table, struct zchunk *chunks,
			 uint64_t *stored);
/* Whether a REC3 could fit in a file of file_size bytes at all (each chunk
 * stores at least a byte): checked before anything is sized from it. */
bool zrecord_may_fit(const struct record_info *rec, uint64_t file_size);
/* pack_verify_record for a REC3. */
int zrecord_verify(const struct io_ops *io, int fd, const struct record_info *rec, struct hasher *hasher,
		   const char **problem);
/* Finishes hasher and compares with the record's hash (-EBADMSG, *problem). */
int record_hash_check(struct hasher *hasher, const struct record_info *rec, const char **problem);

#endif
