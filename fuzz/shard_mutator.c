/*
 * shard_mutator.c - a libFuzzer custom mutator that knows the shard layout.
 *
 * Linked only into the libFuzzer builds of fuzz_shard and fuzz_shard_write
 * (fuzz/run.sh).  Each call makes one change:
 *  - libFuzzer's own byte-level mutation (LLVMFuzzerMutate), or
 *  - a field of a meta slot, of an index slot or of a record set to a
 *    value chosen to sit on a boundary (0, 1, file size +- 1, data_end,
 *    another record's offset, 2^63, UINT64_MAX, ...), or
 *  - a structural change: duplicate an index slot, point a redo record at a
 *    record, copy one meta over the other, truncate at a region boundary,
 *    extend the file;
 * and then, 15 times in 16, recomputes the checksums (shard_fix) so that
 * the change reaches the code behind them, which is what a hostile writer
 * of the file would do.  The 16th leaves them as they are.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "scriptcache.h"
#include "shard_fix.h"

size_t LLVMFuzzerMutate(uint8_t *data, size_t size, size_t max_size);
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed);

static uint64_t rng_state;

static uint64_t rnd(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

static uint64_t below(uint64_t n)
{
	return n ? rnd() % n : 0;
}

/* Offsets of records some slot points at (collected per call). */
static uint64_t recs[64];
static size_t n_recs;

static void find_records(uint8_t *d, size_t n)
{
	struct sc_disk_meta m;

	n_recs = 0;
	for (int i = 0; i < 2; i++) {
		if (shard_meta_get(d, n, i, &m) != 0)
			continue;
		for (uint64_t s = 0; s < m.index_slots && s < 65536 && n_recs < 64; s++) {
			uint8_t *p = shard_slot(d, n, &m, s);
			uint64_t off;
			if (!p)
				break;
			memcpy(&off, p + 8, 8);
			if (off > SC_SLOT_TOMB)
				recs[n_recs++] = off;
		}
	}
}

static uint64_t interesting(const uint8_t *d, size_t n, uint64_t cur)
{
	struct sc_disk_meta m;
	int newest = shard_newest_meta(d, n);
	uint64_t end = newest >= 0 && shard_meta_get(d, n, newest, &m) == 0 ? m.data_end : n;

	switch (below(24)) {
	case 0: return 0;
	case 1: return 1;
	case 2: return n;
	case 3: return n - 1;
	case 4: return n + 64;
	case 5: return n & ~(uint64_t)63;
	case 6: return end;
	case 7: return end - 64;
	case 8: return n_recs ? recs[below(n_recs)] : SC_DATA_OFF;
	case 9: return (n_recs ? recs[below(n_recs)] : SC_DATA_OFF) + 64 * (1 + below(4));
	case 10: return (uint64_t)1 << below(64);
	case 11: return ((uint64_t)1 << below(64)) - 1;
	case 12: return UINT64_MAX - below(128);
	case 13: return SC_MAX_BLOB + below(2);
	case 14: return UINT64_MAX / 16 + below(2);
	case 15: return cur + 1;
	case 16: return cur - 1;
	case 17: return cur + 64;
	case 18: return cur - 64;
	case 19: return cur * 2;
	case 20: return cur / 2;
	case 21: return below(SC_DATA_OFF + 1);
	case 22: return SC_DATA_OFF + 64 * below(1024);
	default: return rnd();
	}
}

static void set_u64(uint8_t *d, size_t n, uint64_t at, uint64_t v)
{
	if (at <= n && n - at >= 8)
		memcpy(d + at, &v, 8);
}

static uint64_t get_u64(const uint8_t *d, size_t n, uint64_t at)
{
	uint64_t v = 0;
	if (at <= n && n - at >= 8)
		memcpy(&v, d + at, 8);
	return v;
}

static void mutate_meta(uint8_t *d, size_t n)
{
	int i = (int)below(2);
	uint64_t at = META_OFF(i) + 8 * below(13); /* txnid .. committed_sec */

	set_u64(d, n, at, interesting(d, n, get_u64(d, n, at)));
}

static void mutate_slot(uint8_t *d, size_t n)
{
	struct sc_disk_meta m;
	int i = shard_newest_meta(d, n);
	uint8_t *p, *q;
	uint64_t v;

	if (i < 0 || shard_meta_get(d, n, below(4) ? i : !i, &m) != 0 || !m.index_slots)
		return;
	p = shard_slot(d, n, &m, below(m.index_slots < 65536 ? m.index_slots : 65536));
	if (!p)
		return;
	switch (below(4)) {
	case 0: /* a copy of another slot: duplicates, or a slot outside its probe run */
		q = shard_slot(d, n, &m, below(m.index_slots < 65536 ? m.index_slots : 65536));
		if (q)
			memmove(p, q, 16);
		break;
	case 1:
		memcpy(&v, p, 8);
		v = interesting(d, n, v);
		memcpy(p, &v, 8);
		break;
	default:
		memcpy(&v, p + 8, 8);
		v = interesting(d, n, v);
		memcpy(p + 8, &v, 8);
		break;
	}
}

static void mutate_record(uint8_t *d, size_t n)
{
	/* field offsets and sizes of struct sc_disk_record */
	static const struct { uint8_t off, size; } f[] = {
		{ 0, 4 }, { 4, 4 }, { 8, 8 }, { 16, 2 }, { 18, 2 }, { 20, 2 }, { 22, 2 },
		{ 24, 4 }, { 28, 4 }, { 32, 8 }, { 40, 8 }, { 48, 8 }, { 56, 8 }, { 64, 8 },
	};
	uint64_t off, v;
	size_t k;

	if (!n_recs)
		return;
	off = recs[below(n_recs)];
	k = (size_t)below(sizeof(f) / sizeof(f[0]));
	if (off > n || n - off < sizeof(struct sc_disk_record))
		return;
	v = 0;
	memcpy(&v, d + off + f[k].off, f[k].size);
	v = below(3) ? interesting(d, n, v) : (below(2) ? v + 1 : v - 1);
	memcpy(d + off + f[k].off, &v, f[k].size); /* little-endian: low bytes */
}

static void mutate_redo(uint8_t *d, size_t n)
{
	struct sc_disk_meta m;
	int i = shard_newest_meta(d, n);

	if (i < 0 || shard_meta_get(d, n, i, &m) != 0)
		return;
	m.redo_slot = below(3) ? below(m.index_slots ? m.index_slots : 1) : interesting(d, n, m.redo_slot);
	m.redo_off = n_recs && below(2) ? recs[below(n_recs)] : interesting(d, n, m.redo_off);
	memcpy(d + META_OFF(i), &m, sizeof(m));
}

static size_t mutate_size(uint8_t *d, size_t n, size_t max)
{
	static const size_t cuts[] = { 0, 7, 8, 255, 256, 511, 512, 648, 1024, 1160, 4095, 4096, 4160 };
	struct sc_disk_meta m;
	int i;

	switch (below(4)) {
	case 0: {
		size_t c = cuts[below(sizeof(cuts) / sizeof(cuts[0]))];
		return c < n ? c : n;
	}
	case 1: /* cut inside the data */
		return n > SC_DATA_OFF ? SC_DATA_OFF + (size_t)below(n - SC_DATA_OFF) : n;
	default: { /* grow by zeros or a copy of an existing record, and commit it */
		size_t add = 64 * (1 + (size_t)below(64));
		if (n + add > max)
			return n;
		if (n_recs && recs[0] < n && n - recs[0] >= add && below(2))
			memcpy(d + n, d + recs[0], add);
		else
			memset(d + n, 0, add);
		i = shard_newest_meta(d, n);
		if (i >= 0 && shard_meta_get(d, n, i, &m) == 0 && below(2)) {
			m.data_end = n + add;
			memcpy(d + META_OFF(i), &m, sizeof(m));
		}
		return n + add;
	}
	}
}

static void mutate_metas(uint8_t *d, size_t n)
{
	struct sc_disk_meta m;
	int i = (int)below(2);

	if (shard_meta_get(d, n, i, &m) != 0)
		return;
	if (below(2))
		m.txnid += 1; /* right parity for the other slot, newer */
	memcpy(d + META_OFF(!i), &m, sizeof(m));
}

size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	rng_state = seed;
	find_records(data, size);
	switch (below(10)) {
	case 0: case 1: case 2:
		size = LLVMFuzzerMutate(data, size, max_size);
		break;
	case 3: case 4:
		mutate_meta(data, size);
		break;
	case 5:
		mutate_slot(data, size);
		break;
	case 6: case 7:
		mutate_record(data, size);
		break;
	case 8:
		if (below(2))
			mutate_redo(data, size);
		else
			mutate_metas(data, size);
		break;
	default:
		size = mutate_size(data, size, max_size);
		break;
	}
	if (below(16)) {
		find_records(data, size);
		shard_fix(data, size, below(4) ? FIX_ALL : FIX_ALL & ~FIX_SLOTHASH);
	}
	return size;
}
