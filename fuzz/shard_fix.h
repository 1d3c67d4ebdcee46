/*
 * shard_fix.h - recompute the checksums of a (mutated) shard image, format 2.
 *
 * The header, the meta slots and every entry record carry an XXH3-64
 * checksum, and an entry names its blob by the blob's XXH3-128: a
 * byte-level fuzzer practically never gets either right, and without help
 * it would only ever test the comparisons.  An attacker who can write the
 * file computes them as easily as we do, so the fuzzer's custom mutator
 * (shard_mutator.c) repairs them after most mutations, and the corpus
 * generator (gen_corpus.c) uses the same functions to craft bad shards
 * whose damage is *behind* valid checksums.
 *
 * All functions take the image and its size and only touch bytes inside
 * it; nothing in the image is trusted, and work on huge claimed tables is
 * bounded.
 */
#ifndef SC_SHARD_FIX_H
#define SC_SHARD_FIX_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"

enum {
	FIX_HEADER   = 1 << 0,
	FIX_META     = 1 << 1, /* the meta slots in use (last: after what changes them) */
	FIX_RECORD   = 1 << 2, /* entry record checksums */
	FIX_BLOB     = 1 << 3, /* an entry's blob_id := XXH3-128 of its blob's bytes
				* (before its checksum); the blob index slot and
				* the wredo records that named the old id at
				* that offset follow, in place */
	FIX_SLOTHASH = 1 << 4, /* key index slot hash := hash of its entry's key,
				* and a meta's redo_hash likewise */
	FIX_ALL      = 31,
};

/* The meta slots (three; any slot may hold any transaction id) and their
 * offsets. */
#define META_SLOTS  SC_META_SLOTS
#define META_OFF(i) sc_meta_off(i)

/* Copy meta slot @p i out; 0 if the image holds it and it is in use (an
 * all-zero slot, slot 2 of a shard that never needed it, is not). */
int shard_meta_get(const uint8_t *d, size_t n, int i, struct sc_disk_meta *m);
/* Write meta slot @p i back, with a correct checksum. */
void shard_meta_put(uint8_t *d, size_t n, int i, struct sc_disk_meta *m);
/* Slot of the meta with the highest txnid among those the image holds, or -1. */
int shard_newest_meta(const uint8_t *d, size_t n);
/* Recompute the header checksum. */
void shard_fix_header(uint8_t *d, size_t n);
/* The checksum an entry record with these strings must carry. */
uint64_t shard_entry_checksum(const struct sc_disk_entry *r, const uint8_t *strings,
			      size_t len);
/* Recompute what @p what names (FIX_BLOB, FIX_RECORD) of the entry record
 * at @p off. */
void shard_fix_record(uint8_t *d, size_t n, uint64_t off, unsigned what);
/* Everything @p what names: every entry record that a slot of any meta's
 * key index (or any redo record) points at, the slot hashes, the metas in
 * use, the header. */
void shard_fix(uint8_t *d, size_t n, unsigned what);
/* Key index slot @p i of meta @p m (struct sc_disk_slot): pointer into the
 * image or NULL. */
uint8_t *shard_slot(uint8_t *d, size_t n, const struct sc_disk_meta *m, uint64_t i);
/* Blob index slot @p i of meta @p m (struct sc_disk_bslot), likewise. */
uint8_t *shard_bslot(uint8_t *d, size_t n, const struct sc_disk_meta *m, uint64_t i);
/* The blob index slot of meta @p m that holds id @p id, as the writers'
 * probe finds it (wredo records not applied: settle first); -1 if none. */
int64_t shard_bslot_find(uint8_t *d, size_t n, const struct sc_disk_meta *m, const uint64_t id[2]);
/* XXH3-128 of @p len bytes, as format 2 records it (id[0] the low half). */
void shard_blob_id(const void *p, size_t len, uint64_t id[2]);

#endif
