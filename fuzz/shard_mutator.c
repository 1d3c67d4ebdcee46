/*
 * shard_mutator.c - a libFuzzer custom mutator that knows the shard layout
 * (format 2, core/format.h).
 *
 * Linked only into the libFuzzer builds of fuzz_shard and fuzz_shard_write
 * (fuzz/run.sh).  Each call makes one change:
 *  - libFuzzer's own byte-level mutation (LLVMFuzzerMutate), or
 *  - a field of a meta slot (the key index, the blob index, the metadata
 *    chunk, the counts, a redo or wredo record), of a key index slot, of a
 *    blob index slot or of an entry record set to a value chosen to sit on
 *    a boundary (0, 1, file size +- 1, data_end, another entry's or blob's
 *    offset, the chunk's free tail, a table, 2^63, UINT64_MAX, ...), or
 *  - a structural change: duplicate a key or blob slot, point a redo
 *    record at an entry, a wredo record at a blob slot, make two entries
 *    share a blob, copy one meta into another slot, truncate at a region
 *    boundary, extend the file;
 * and then, 15 times in 16, recomputes the checksums and blob ids
 * (shard_fix) so that the change reaches the code behind them, which is
 * what a hostile writer of the file would do.  The 16th leaves them as
 * they are.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "pack.h"
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

#define MAX_SEEN 64
#define SCAN_SLOTS 65536u

/* What the image holds (collected per call): entries some key slot
 * points at, blobs some blob slot or entry points at, blob slots in use. */
static uint64_t recs[MAX_SEEN], blobs[MAX_SEEN], bslots[MAX_SEEN];
static size_t n_recs, n_blobs, n_bslots;

static void add(uint64_t *a, size_t *n, uint64_t v)
{
	for (size_t i = 0; i < *n; i++)
		if (a[i] == v)
			return;
	if (*n < MAX_SEEN)
		a[(*n)++] = v;
}

static void find_records(uint8_t *d, size_t n)
{
	struct sc_disk_meta m;

	n_recs = n_blobs = n_bslots = 0;
	for (int i = 0; i < META_SLOTS; i++) {
		if (shard_meta_get(d, n, i, &m) != 0)
			continue;
		for (uint64_t s = 0; s < m.index_slots && s < SCAN_SLOTS && n_recs < MAX_SEEN; s++) {
			uint8_t *p = shard_slot(d, n, &m, s);
			uint64_t off;
			if (!p)
				break;
			memcpy(&off, p + 8, 8);
			if (off > SC_SLOT_TOMB)
				add(recs, &n_recs, off);
		}
		if (m.redo_off > SC_SLOT_TOMB)
			add(recs, &n_recs, m.redo_off);
		for (uint64_t s = 0; s < m.blob_slots && s < SCAN_SLOTS && n_bslots < MAX_SEEN; s++) {
			uint8_t *p = shard_bslot(d, n, &m, s);
			struct sc_disk_bslot b;
			if (!p)
				break;
			memcpy(&b, p, sizeof(b));
			if (b.off > SC_SLOT_TOMB) {
				add(bslots, &n_bslots, (uint64_t)(p - d));
				add(blobs, &n_blobs, b.off);
			}
		}
	}
	for (size_t i = 0; i < n_recs; i++) {
		struct sc_disk_entry r;
		if (recs[i] <= n && n - recs[i] >= sizeof(r)) {
			memcpy(&r, d + recs[i], sizeof(r));
			if (r.magic == SC_ENT_MAGIC)
				add(blobs, &n_blobs, r.blob_off);
		}
	}
}

static uint64_t pick(const uint64_t *a, size_t n, uint64_t dflt)
{
	return n ? a[below(n)] : dflt;
}

static uint64_t interesting(const uint8_t *d, size_t n, uint64_t cur)
{
	struct sc_disk_meta m;
	int newest = shard_newest_meta(d, n);
	int have = newest >= 0 && shard_meta_get(d, n, newest, &m) == 0;
	uint64_t end = have ? m.data_end : n;

	switch (below(32)) {
	case 0: return 0;
	case 1: return 1;
	case 2: return n;
	case 3: return n - 1;
	case 4: return n + 64;
	case 5: return n & ~(uint64_t)63;
	case 6: return end;
	case 7: return end - 64;
	case 8: return pick(recs, n_recs, SC_DATA_OFF);
	case 9: return pick(recs, n_recs, SC_DATA_OFF) + SC_ENT_ALIGN * (1 + below(16));
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
	case 23: return pick(blobs, n_blobs, SC_DATA_OFF);
	case 24: return pick(blobs, n_blobs, SC_DATA_OFF) + 64 * (1 + below(4));
	case 25: return have ? m.chunk_off + m.chunk_used : cur;   /* the free tail */
	case 26: return have ? m.chunk_off + m.chunk_len : cur;    /* the chunk's end */
	case 27: return have ? m.index_off : cur;
	case 28: return have ? m.blobs_off : cur;
	case 29: return cur + SC_ENT_ALIGN;
	case 30: return UINT32_MAX - below(16);
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

#define MF(f) offsetof(struct sc_disk_meta, f)

/* The 8-byte fields of a meta slot (lib_version and the checksum aside). */
static const uint16_t meta_fields[] = {
	MF(txnid), MF(data_end), MF(index_off), MF(index_slots), MF(entries), MF(tombstones),
	MF(live_bytes), MF(dead_bytes), MF(flags), MF(redo_slot), MF(redo_hash), MF(redo_off),
	MF(committed_sec), MF(blobs_off), MF(blob_slots), MF(blobs), MF(blob_tombs),
	MF(stored_bytes), MF(logical_bytes), MF(chunk_off), MF(chunk_used), MF(chunk_len),
	MF(wredo_n),
	MF(wredo[0].at), MF(wredo[0].v[0]), MF(wredo[0].v[2]), MF(wredo[0].v[3]),
	MF(wredo[1].at), MF(wredo[1].v[2]), MF(wredo[1].v[3]),
	MF(wredo[2].at), MF(wredo[3].at),
};

/* A meta slot other than @p i, at random. */
static int other_slot(int i)
{
	return (i + 1 + (int)below(META_SLOTS - 1)) % META_SLOTS;
}

static void mutate_meta(uint8_t *d, size_t n)
{
	int i = (int)below(META_SLOTS); /* slot 2 too, in use or still zeros */
	uint64_t at = META_OFF(i) + meta_fields[below(sizeof(meta_fields) / sizeof(meta_fields[0]))];

	set_u64(d, n, at, interesting(d, n, get_u64(d, n, at)));
}

static void mutate_slot(uint8_t *d, size_t n)
{
	struct sc_disk_meta m;
	int i = shard_newest_meta(d, n);
	uint8_t *p, *q;
	uint64_t v, lim;

	if (i < 0 || shard_meta_get(d, n, below(4) ? i : other_slot(i), &m) != 0 || !m.index_slots)
		return;
	lim = m.index_slots < SCAN_SLOTS ? m.index_slots : SCAN_SLOTS;
	p = shard_slot(d, n, &m, below(2) ? below(lim) : m.redo_slot);
	if (!p)
		return;
	switch (below(4)) {
	case 0: /* a copy of another slot: duplicates, or a slot outside its probe run */
		q = shard_slot(d, n, &m, below(lim));
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

/* A blob index slot: its id, offset, length or reference count. */
static void mutate_bslot(uint8_t *d, size_t n)
{
	struct sc_disk_meta m;
	int i = shard_newest_meta(d, n);
	struct sc_disk_bslot b;
	uint8_t *p, *q;
	uint64_t lim;

	if (i < 0 || shard_meta_get(d, n, below(4) ? i : other_slot(i), &m) != 0 || !m.blob_slots)
		return;
	lim = m.blob_slots < SCAN_SLOTS ? m.blob_slots : SCAN_SLOTS;
	if (n_bslots && below(3)) {
		uint64_t at = bslots[below(n_bslots)];
		p = at <= n && n - at >= sizeof(b) ? d + at : NULL;
	} else
		p = shard_bslot(d, n, &m, below(lim));
	if (!p)
		return;
	memcpy(&b, p, sizeof(b));
	switch (below(8)) {
	case 0: /* a copy of another slot */
		if ((q = shard_bslot(d, n, &m, below(lim))) != NULL)
			memcpy(&b, q, sizeof(b));
		break;
	case 1:
		b.off = below(2) ? SC_SLOT_TOMB : SC_SLOT_EMPTY;
		break;
	case 2:
		b.off = interesting(d, n, b.off);
		break;
	case 3: /* the reference count */
		b.info = (b.info & SC_BLOB_LEN_MASK) |
			 ((below(2) ? below(4) : SC_BLOB_REFS_MAX - below(2)) << SC_BLOB_LEN_BITS);
		break;
	case 4: /* the length */
		b.info = (b.info & ~SC_BLOB_LEN_MASK) | (interesting(d, n, sc_bslot_len(&b)) & SC_BLOB_LEN_MASK);
		break;
	case 5:
		b.id_lo = below(2) ? interesting(d, n, b.id_lo) : b.id_lo ^ ((uint64_t)1 << below(64));
		break;
	case 6:
		b.id_hi ^= (uint64_t)1 << below(64);
		break;
	default:
		b.info = interesting(d, n, b.info);
		break;
	}
	memcpy(p, &b, sizeof(b));
}

#define EF(f) { offsetof(struct sc_disk_entry, f), sizeof(((struct sc_disk_entry *)0)->f) }

static void mutate_record(uint8_t *d, size_t n)
{
	/* field offsets and sizes of struct sc_disk_entry */
	static const struct { uint8_t off, size; } f[] = {
		EF(magic), EF(flags), EF(rec_len), EF(key_len), EF(tag_len), EF(exe_id_len),
		EF(exe_path_len), EF(src_mtime_nsec), EF(cached_nsec), EF(pad0), EF(src_mtime_sec),
		EF(src_size), EF(cached_sec), EF(blob_off), EF(blob_len), EF(blob_id[0]),
		EF(blob_id[1]), EF(src_hash[0]), EF(src_hash[1]),
		EF(flags), EF(rec_len), EF(blob_off), EF(blob_len), EF(key_len), /* likelier */
	};
	uint64_t off, v;
	size_t k;

	if (!n_recs)
		return;
	off = recs[below(n_recs)];
	if (off > n || n - off < sizeof(struct sc_disk_entry))
		return;
	k = (size_t)below(sizeof(f) / sizeof(f[0]));
	if (f[k].off == offsetof(struct sc_disk_entry, flags) && below(2)) {
		uint32_t fl;
		memcpy(&fl, d + off + f[k].off, 4);
		fl ^= (uint32_t)1 << below(4); /* NO_SOURCE, SRC_HASH, OWN_BLOB, unknown */
		memcpy(d + off + f[k].off, &fl, 4);
		return;
	}
	if (f[k].off == offsetof(struct sc_disk_entry, blob_off) && n_blobs && below(2)) {
		/* share another entry's blob (the fix gives it that blob's id) */
		struct sc_disk_entry r;
		uint64_t other = recs[below(n_recs)];
		memcpy(&r, d + off, sizeof(r));
		if (other <= n && n - other >= sizeof(r)) {
			struct sc_disk_entry o;
			memcpy(&o, d + other, sizeof(o));
			r.blob_off = o.blob_off;
			r.blob_len = o.blob_len;
			memcpy(r.blob_id, o.blob_id, sizeof(r.blob_id));
			memcpy(d + off, &r, sizeof(r));
		}
		return;
	}
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

/* A blob slot redo record: pointed at a slot in use or any slot, its value
 * a copy of a slot with one field changed, or the count of records. */
static void mutate_wredo(uint8_t *d, size_t n)
{
	struct sc_disk_meta m;
	int i = shard_newest_meta(d, n);
	uint64_t k;
	struct sc_disk_bslot b;

	if (i < 0 || shard_meta_get(d, n, i, &m) != 0)
		return;
	if (!below(4)) {
		m.wredo_n = below(4) ? below(SC_WREDO_MAX + 1) : interesting(d, n, m.wredo_n);
		memcpy(d + META_OFF(i), &m, sizeof(m));
		return;
	}
	k = below(SC_WREDO_MAX);
	if (k >= m.wredo_n && m.wredo_n < SC_WREDO_MAX)
		k = m.wredo_n++;
	if (n_bslots && below(2))
		m.wredo[k].at = bslots[below(n_bslots)];
	else if (below(2) && m.blob_slots)
		m.wredo[k].at = m.blobs_off + sizeof(b) * below(m.blob_slots);
	else
		m.wredo[k].at = interesting(d, n, m.wredo[k].at);
	memset(&b, 0, sizeof(b));
	if (m.wredo[k].at <= n && n - m.wredo[k].at >= sizeof(b))
		memcpy(&b, d + m.wredo[k].at, sizeof(b));
	switch (below(4)) {
	case 0: b.off = below(2) ? SC_SLOT_TOMB : interesting(d, n, b.off); break;
	case 1: b.info += (uint64_t)1 << SC_BLOB_LEN_BITS; break;
	case 2: b.info -= (uint64_t)1 << SC_BLOB_LEN_BITS; break;
	default: b.info = interesting(d, n, b.info); break;
	}
	memcpy(m.wredo[k].v, &b, sizeof(b));
	memcpy(d + META_OFF(i), &m, sizeof(m));
}

static size_t mutate_size(uint8_t *d, size_t n, size_t max)
{
	static const size_t cuts[] = {
		0, 7, 8, 255, 256, 511, 512, 512 + sizeof(struct sc_disk_meta) - 1,
		512 + sizeof(struct sc_disk_meta), 1024, 1024 + sizeof(struct sc_disk_meta),
		1536, 1536 + sizeof(struct sc_disk_meta) - 1, 1536 + sizeof(struct sc_disk_meta),
		4095, 4096, 4160,
	};
	struct sc_disk_meta m;
	int i;

	switch (below(5)) {
	case 0: {
		size_t c = cuts[below(sizeof(cuts) / sizeof(cuts[0]))];
		return c < n ? c : n;
	}
	case 1: /* cut inside the data */
		return n > SC_DATA_OFF ? SC_DATA_OFF + (size_t)below(n - SC_DATA_OFF) : n;
	case 2: /* cut at a structure: an entry, a blob, the chunk's free tail */
		i = shard_newest_meta(d, n);
		if (i >= 0 && shard_meta_get(d, n, i, &m) == 0) {
			uint64_t c = below(3) == 0 ? m.chunk_off + m.chunk_used
				     : below(2) ? pick(recs, n_recs, n) : pick(blobs, n_blobs, n);
			c += below(2) ? 0 : below(128);
			return c < n ? (size_t)c : n;
		}
		return n;
	default: { /* grow by zeros or a copy of an entry or blob, and commit it */
		size_t add = 64 * (1 + (size_t)below(64));
		uint64_t from = below(2) ? pick(recs, n_recs, 0) : pick(blobs, n_blobs, 0);
		if (n + add > max)
			return n;
		if (from && from < n && n - from >= add && below(2))
			memcpy(d + n, d + from, add);
		else
			memset(d + n, 0, add);
		i = shard_newest_meta(d, n);
		if (i >= 0 && shard_meta_get(d, n, i, &m) == 0 && below(2)) {
			m.data_end = n + add;
			if (below(2)) { /* the new bytes become the current chunk */
				m.chunk_off = n;
				m.chunk_len = add;
				m.chunk_used = below(2) ? 0 : add / 2 & ~(uint64_t)7;
			}
			memcpy(d + META_OFF(i), &m, sizeof(m));
		}
		return n + add;
	}
	}
}

static void mutate_metas(uint8_t *d, size_t n)
{
	struct sc_disk_meta m;
	int i = (int)below(META_SLOTS);

	if (shard_meta_get(d, n, i, &m) != 0)
		return;
	switch (below(3)) {
	case 0: m.txnid += 1; break; /* newer: it wins */
	case 1: break;               /* the same id in two slots */
	default: m.txnid -= m.txnid ? 1 : 0; break; /* an older fallback */
	}
	memcpy(d + META_OFF(other_slot(i)), &m, sizeof(m));
}

/* One change to the image @p data of @p size bytes (room for @p max_size). */
static size_t mutate_image(uint8_t *data, size_t size, size_t max_size)
{
	find_records(data, size);
	switch (below(12)) {
	case 0: case 1: case 2:
		size = LLVMFuzzerMutate(data, size, max_size);
		break;
	case 3: case 4:
		mutate_meta(data, size);
		break;
	case 5:
		mutate_slot(data, size);
		break;
	case 6:
		mutate_bslot(data, size);
		break;
	case 7: case 8:
		mutate_record(data, size);
		break;
	case 9:
		switch (below(3)) {
		case 0: mutate_redo(data, size); break;
		case 1: mutate_wredo(data, size); break;
		default: mutate_metas(data, size); break;
		}
		break;
	default:
		size = mutate_size(data, size, max_size);
		break;
	}
	if (below(16)) {
		unsigned what = FIX_ALL;
		if (!below(4))
			what &= ~(unsigned)FIX_SLOTHASH;
		if (!below(8))
			what &= ~(unsigned)FIX_BLOB; /* a blob that fails its id, behind a valid entry */
		find_records(data, size);
		shard_fix(data, size, what);
	}
	return size;
}

/* The largest image a mutation makes (the seeds are up to 256 KiB). */
#define IMAGE_MUT_MAX ((size_t)1 << 20)

/* Inputs are mutated as images and handed back packed (pack.h): a raw
 * input (a seed from fuzz/corpus/bad/) comes back packed too.  One time in
 * four a packed input gets libFuzzer's byte-level mutation as it is, which
 * changes literal bytes and the lengths of zero runs. */
size_t LLVMFuzzerCustomMutator(uint8_t *data, size_t size, size_t max_size, unsigned int seed)
{
	static uint8_t *img, *packed;
	size_t n, p;

	rng_state = seed;
	if (fuzz_is_packed(data, size) && size > FUZZ_PACK_MAGIC_LEN && max_size > size && !below(4))
		return FUZZ_PACK_MAGIC_LEN + LLVMFuzzerMutate(data + FUZZ_PACK_MAGIC_LEN,
							      size - FUZZ_PACK_MAGIC_LEN,
							      max_size - FUZZ_PACK_MAGIC_LEN);
	if (!img && !(img = malloc(FUZZ_IMAGE_MAX)))
		abort();
	if (fuzz_is_packed(data, size)) {
		n = fuzz_unpack(data, size, img, FUZZ_IMAGE_MAX);
	} else {
		n = size < FUZZ_IMAGE_MAX ? size : FUZZ_IMAGE_MAX;
		memcpy(img, data, n);
	}
	n = mutate_image(img, n, n > IMAGE_MUT_MAX ? n : IMAGE_MUT_MAX);
	if (!packed && !(packed = malloc(FUZZ_IMAGE_MAX + FUZZ_PACK_MAGIC_LEN)))
		abort();
	/* packed holds FUZZ_IMAGE_MAX + the magic, whatever -max_len says */
	p = fuzz_pack(img, n, packed, max_size < FUZZ_IMAGE_MAX ? max_size : FUZZ_IMAGE_MAX);
	if (p == 0) /* does not fit: keep the input, changed byte by byte */
		return LLVMFuzzerMutate(data, size, max_size);
	memcpy(data, packed, p);
	return p;
}
