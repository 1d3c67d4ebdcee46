/*
 * vset.c - the set of records a handle has already checked (sc_int.h
 * explains why it exists).  Lock-free: lookups consult and extend it while
 * holding nothing but a snapshot.
 */
#include "sc_int.h"

#define VSET_PROBES 32

static uint64_t vset_pos(uint64_t off)
{
	return (off >> 3) * 0x9e3779b97f4a7c15ull;
}

int sc_vset_has(const struct sc_vset *vs, uint64_t off)
{
	uint64_t mask, i;
	uint32_t want = (uint32_t)(off / SC_ENT_ALIGN);

	/* Entry offsets are SC_ENT_ALIGN-aligned, so the quotient is exact; 32 bits
	 * of it keep the set small enough to stay in cache (shards past
	 * 32 GiB are simply checked every time). */
	if (!vs || off / SC_ENT_ALIGN > UINT32_MAX)
		return 0;
	mask = vs->cap - 1;
	i = vset_pos(off) & mask;
	for (int n = 0; n < VSET_PROBES; n++, i = (i + 1) & mask) {
		uint32_t v = __atomic_load_n(&vs->slot[i], __ATOMIC_ACQUIRE);
		if (v == want)
			return 1;
		if (v == 0)
			return 0;
	}
	return 0;
}

void sc_vset_add(struct sc_vset *vs, uint64_t off)
{
	uint64_t mask, i;
	uint32_t val = (uint32_t)(off / SC_ENT_ALIGN);

	if (!vs || off / SC_ENT_ALIGN > UINT32_MAX)
		return;
	mask = vs->cap - 1;
	i = vset_pos(off) & mask;
	for (int n = 0; n < VSET_PROBES; n++, i = (i + 1) & mask) {
		uint32_t expected = 0;
		if (__atomic_compare_exchange_n(&vs->slot[i], &expected, val, 0,
						__ATOMIC_RELEASE, __ATOMIC_ACQUIRE) ||
		    expected == val)
			return;
	}
	/* Crowded: the record is simply checked again next time. */
}
