/*
 * index.c - the two open-addressing tables with linear probing, as they lie
 * in the shard: the key index of (hash, entry offset) slots, which readers
 * probe, and the blob index of (XXH3-128, blob offset, length, refs) slots,
 * which only writers read.  A slot is read as the committed state says it is
 * (a meta's redo records override the slots they name), and every entry a
 * key slot points at is validated before it is believed: a torn or hostile
 * slot can cause a miss, never a wrong hit.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "sc_int.h"

uint64_t sc_key_hash(const char *key, size_t len)
{
	return XXH3_64bits(key, len);
}

void sc_slot_read(const struct sc_snap *s, uint64_t i, uint64_t *hash, uint64_t *off)
{
	const uint64_t *slot;

	if (i == s->meta.redo_slot) {
		*hash = s->meta.redo_hash;
		*off = s->meta.redo_off;
		return;
	}
	slot = (const uint64_t *)(s->map + s->meta.index_off + i * sizeof(struct sc_disk_slot));
	/* Each half is one aligned 8-byte load: a concurrent in-place update
	 * can mix old and new halves, which the record check below rejects. */
	*hash = __atomic_load_n(&slot[0], __ATOMIC_RELAXED);
	*off = __atomic_load_n(&slot[1], __ATOMIC_ACQUIRE);
}

int sc_probe(const struct sc_snap *s, const char *key, size_t key_len, uint64_t hash,
	     uint64_t *slot_out, struct sc_rec_view *v)
{
	uint64_t mask = s->meta.index_slots - 1;
	int corrupt = 0, newer = 0, rc;

	for (uint64_t n = 0, i = hash & mask; n < s->meta.index_slots; n++, i = (i + 1) & mask) {
		uint64_t h, off;

		sc_slot_read(s, i, &h, &off);
		if (off == SC_SLOT_EMPTY)
			break;
		if (off == SC_SLOT_TOMB || h != hash)
			continue;
		if (off >= s->meta.data_end) {
			/* Updated in place by a commit newer than our snapshot,
			 * whose record may lie past our mapping too (the file
			 * grew beyond its headroom meanwhile): look again with
			 * a fresh snapshot.  A slot that still points past the
			 * data after that is damage, and a miss. */
			newer = 1;
			continue;
		}
		rc = sc_record_view(s->map, s->meta.data_end, off, sc_vset_has(s->vset, off), v);
		if (rc == -EAGAIN) {
			newer = 1; /* its blob was appended after our snapshot */
			continue;
		}
		if (rc != 0) {
			corrupt = 1;
			continue;
		}
		if (v->r->key_len != key_len || memcmp(v->key, key, key_len) != 0)
			continue;
		if (slot_out)
			*slot_out = i;
		return 0;
	}
	return newer ? -EAGAIN : corrupt ? SC_ECORRUPT : SC_ENOTFOUND;
}

uint64_t sc_table_slots(uint64_t entries)
{
	uint64_t n = SC_MIN_INDEX_SLOTS;
	while (n < entries * 2)
		n <<= 1;
	return n;
}

/* Insert (hash, off) into an in-memory table that has a free slot. */
void sc_table_insert(struct sc_disk_slot *t, uint64_t slots, uint64_t hash, uint64_t off)
{
	uint64_t i = hash & (slots - 1);
	while (t[i].off != SC_SLOT_EMPTY)
		i = (i + 1) & (slots - 1);
	t[i].hash = hash;
	t[i].off = off;
}

/* Build a bigger index from the live slots of @p s plus one new entry.
 * Sized by counting the slots, not by the meta's entry count: the file is
 * untrusted, and a table with no free slot would never end an insert. */
int sc_table_grow(const struct sc_snap *s, uint64_t new_hash, uint64_t new_off,
		      struct sc_disk_slot **out, uint64_t *slots_out)
{
	uint64_t live = 0, slots;
	struct sc_disk_slot *t;

	for (uint64_t i = 0; i < s->meta.index_slots; i++) {
		uint64_t h, off;
		sc_slot_read(s, i, &h, &off);
		live += off != SC_SLOT_EMPTY && off != SC_SLOT_TOMB;
	}
	slots = sc_table_slots(live + 1);
	t = calloc(slots, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (uint64_t i = 0; i < s->meta.index_slots; i++) {
		uint64_t h, off;
		sc_slot_read(s, i, &h, &off);
		if (off != SC_SLOT_EMPTY && off != SC_SLOT_TOMB)
			sc_table_insert(t, slots, h, off);
	}
	sc_table_insert(t, slots, new_hash, new_off);
	*out = t;
	*slots_out = slots;
	return 0;
}

/* Where a new key goes: the first tombstone or empty slot of its probe run. */
int sc_insertion_slot(const struct sc_snap *s, uint64_t hash, uint64_t *slot)
{
	uint64_t mask = s->meta.index_slots - 1;

	for (uint64_t n = 0, i = hash & mask; n < s->meta.index_slots; n++, i = (i + 1) & mask) {
		uint64_t h, off;
		sc_slot_read(s, i, &h, &off);
		if (off == SC_SLOT_EMPTY || off == SC_SLOT_TOMB) {
			*slot = i;
			return 0;
		}
	}
	return SC_ECORRUPT;
}

/* ------------------------------------------------------------------ */
/* The blob index (writers only) */

uint64_t sc_bslot_at(const struct sc_snap *s, uint64_t i)
{
	return s->meta.blobs_off + i * sizeof(struct sc_disk_bslot);
}

void sc_wredo_read(const struct sc_snap *s, uint64_t at, void *out)
{
	for (uint64_t k = s->meta.wredo_n; k-- > 0;) {
		if (s->meta.wredo[k].at == at) {
			memcpy(out, s->meta.wredo[k].v, sizeof(s->meta.wredo[k].v));
			return;
		}
	}
	memcpy(out, s->map + at, sizeof(s->meta.wredo[0].v));
}

void sc_bslot_read(const struct sc_snap *s, uint64_t i, struct sc_disk_bslot *b)
{
	sc_wredo_read(s, sc_bslot_at(s, i), b);
}

int sc_blob_find(const struct sc_snap *s, const uint64_t id[2], uint64_t *slot,
		 struct sc_disk_bslot *b)
{
	uint64_t mask = s->meta.blob_slots - 1, ins = UINT64_MAX;

	for (uint64_t n = 0, i = id[0] & mask; n < s->meta.blob_slots; n++, i = (i + 1) & mask) {
		sc_bslot_read(s, i, b);
		if (b->off == SC_SLOT_EMPTY) {
			*slot = ins != UINT64_MAX ? ins : i;
			return SC_ENOTFOUND;
		}
		if (b->off == SC_SLOT_TOMB) {
			if (ins == UINT64_MAX)
				ins = i;
			continue;
		}
		if (b->id_lo == id[0] && b->id_hi == id[1]) {
			*slot = i;
			return 0;
		}
	}
	if (ins == UINT64_MAX)
		return SC_ECORRUPT; /* no free slot: only a damaged table */
	*slot = ins;
	return SC_ENOTFOUND;
}

uint64_t sc_btable_slots(uint64_t blobs)
{
	uint64_t n = SC_MIN_BLOB_SLOTS;
	while (n < blobs * 2)
		n <<= 1;
	return n;
}

void sc_btable_insert(struct sc_disk_bslot *t, uint64_t slots, const struct sc_disk_bslot *b)
{
	uint64_t i = b->id_lo & (slots - 1);
	while (t[i].off != SC_SLOT_EMPTY)
		i = (i + 1) & (slots - 1);
	t[i] = *b;
}

int sc_btable_grow(const struct sc_snap *s, uint64_t extra, struct sc_disk_bslot **out,
		   uint64_t *slots_out)
{
	struct sc_disk_bslot b, *t;
	uint64_t live = 0, slots;

	for (uint64_t i = 0; i < s->meta.blob_slots; i++) {
		sc_bslot_read(s, i, &b);
		live += b.off != SC_SLOT_EMPTY && b.off != SC_SLOT_TOMB;
	}
	slots = sc_btable_slots(live + extra);
	t = calloc(slots, sizeof(*t));
	if (!t)
		return -ENOMEM;
	for (uint64_t i = 0; i < s->meta.blob_slots; i++) {
		sc_bslot_read(s, i, &b);
		if (b.off != SC_SLOT_EMPTY && b.off != SC_SLOT_TOMB)
			sc_btable_insert(t, slots, &b);
	}
	*out = t;
	*slots_out = slots;
	return 0;
}

uint64_t sc_btable_locate(const struct sc_disk_bslot *t, uint64_t slots, const uint64_t id[2])
{
	uint64_t i = id[0] & (slots - 1);
	while (t[i].off != SC_SLOT_EMPTY && !(t[i].id_lo == id[0] && t[i].id_hi == id[1]))
		i = (i + 1) & (slots - 1);
	return i;
}

/* Remove slot @p i from an in-memory table without tombstones, moving back
 * the slots after it that probed past it (so every probe still ends at the
 * first empty slot). */
void sc_btable_delete(struct sc_disk_bslot *t, uint64_t slots, uint64_t i)
{
	uint64_t mask = slots - 1, j = i;

	for (;;) {
		t[i].off = SC_SLOT_EMPTY;
		for (;;) {
			uint64_t home;
			j = (j + 1) & mask;
			if (t[j].off == SC_SLOT_EMPTY)
				return;
			home = t[j].id_lo & mask;
			/* t[j] may move to i unless its home lies in (i, j] */
			if (i <= j ? (home <= i || home > j) : (home <= i && home > j))
				break;
		}
		t[i] = t[j];
		i = j;
	}
}
