/*
 * index.c - the open-addressing table of (hash, offset) slots with linear
 * probing, as it lies in the shard.  A slot is read as the committed state
 * says it is (a meta's redo record overrides the slot it names), and every
 * record a slot points at is validated before it is believed: a torn or
 * hostile slot can cause a miss, never a wrong hit.
 */
#include <errno.h>
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
	int corrupt = 0, newer = 0;

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
		if (sc_record_view(s->map, s->meta.data_end, off, sc_vset_has(s->vset, off), v) != 0) {
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
