/*
 * simdisk.h - a simulated disk for the store layer's io table: it behaves
 * like the real file system until crash time, then leaves the files as a
 * power cut might: writes not covered by an fsync of their file are undone
 * and a random selection of their 512-byte sectors written back (torn),
 * and a random suffix of the names created, renamed or removed since their
 * directory was last fsynced is reverted (as a journal would lose them; a
 * rename over an existing name stays atomic, as rename(2) is).
 */
#ifndef BLOBFS_SIMDISK_H
#define BLOBFS_SIMDISK_H

#include <stdint.h>

struct io_ops;

/* Sets up the simulated disk and returns its io table, for the databases to
 * use (tu_use_io of storeutil.h). holding_dir is a directory on the same file
 * system where unlinked files wait until they are durable. Uninstall after
 * the last database using it is closed (and stop using the table). */
const struct io_ops *simdisk_install(const char *holding_dir);
void simdisk_uninstall(void);

/* Every mutating call counts one; the call numbered crash_at (1-based; 0:
 * never) fails, and so does every call after it: the machine has stopped. */
void simdisk_arm(uint64_t crash_at);
uint64_t simdisk_calls(void);
/* Stops the machine now: every call from here on fails. */
void simdisk_crash_now(void);
int simdisk_crashed(void);

/* Puts the files in a state a power cut could have left, using seed for the
 * random choices. Call after the crash, before closing the database; then
 * close the database (its calls fail), then simdisk_reset(). */
void simdisk_power_cut(uint64_t seed);
/* Forgets everything (all is durable) and accepts calls again. */
void simdisk_reset(void);

#endif
