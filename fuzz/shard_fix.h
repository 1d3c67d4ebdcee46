/*
 * shard_fix.h - recompute the checksums of a (mutated) shard image.
 *
 * Every structure of a shard carries an XXH3-64 checksum, which a
 * byte-level fuzzer practically never gets right: without help it would
 * only ever test the checksum comparisons.  An attacker who can write the
 * file computes checksums as easily as we do, so the fuzzer's custom
 * mutator (shard_mutator.c) repairs them after most mutations, and the
 * corpus generator (gen_corpus.c) uses the same functions to craft bad
 * shards whose damage is *behind* valid checksums.
 *
 * All functions take the image and its size and only touch bytes inside
 * it; nothing in the image is trusted.
 */
#ifndef SC_SHARD_FIX_H
#define SC_SHARD_FIX_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"

enum {
	FIX_HEADER   = 1 << 0,
	FIX_META     = 1 << 1,
	FIX_RECORD   = 1 << 2, /* record header checksums */
	FIX_BLOB     = 1 << 3, /* blob checksums (before the record's) */
	FIX_SLOTHASH = 1 << 4, /* index slot hash := hash of the record's key */
	FIX_ALL      = 31,
};

/* Offsets of the two meta slots. */
#define META_OFF(i) ((i) ? SC_META1_OFF : SC_META0_OFF)

/* Copy meta slot @p i out; 0 if the image holds it. */
int shard_meta_get(const uint8_t *d, size_t n, int i, struct sc_disk_meta *m);
/* Write meta slot @p i back, with a correct checksum. */
void shard_meta_put(uint8_t *d, size_t n, int i, struct sc_disk_meta *m);
/* Slot of the meta with the higher txnid among those the image holds, or -1. */
int shard_newest_meta(const uint8_t *d, size_t n);
/* Recompute the header checksum. */
void shard_fix_header(uint8_t *d, size_t n);
/* Recompute the checksums of the record at @p off (FIX_RECORD / FIX_BLOB). */
void shard_fix_record(uint8_t *d, size_t n, uint64_t off, unsigned what);
/* Everything @p what names, for every record any slot of either meta's
 * index (and either redo record) points at. */
void shard_fix(uint8_t *d, size_t n, unsigned what);
/* Index slot @p i of meta @p m: pointer into the image or NULL. */
uint8_t *shard_slot(uint8_t *d, size_t n, const struct sc_disk_meta *m, uint64_t i);

#endif
