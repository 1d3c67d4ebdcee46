/*
 * shard_fix.c - see shard_fix.h.  Everything is read and written with
 * memcpy: a mutated image puts structures at any offset.
 */
#include <string.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "shard_fix.h"

/* Bounds work on huge claimed tables and blobs: the fixer must stay fast. */
#define MAX_FIX_SLOTS 65536u
#define MAX_FIX_BLOB  ((uint64_t)1 << 24)

static int inside(size_t n, uint64_t off, uint64_t len)
{
	return off <= n && len <= n - off;
}

static uint64_t meta_sum(const struct sc_disk_meta *m)
{
	return XXH3_64bits(m, offsetof(struct sc_disk_meta, checksum));
}

int shard_meta_get(const uint8_t *d, size_t n, int i, struct sc_disk_meta *m)
{
	if (!inside(n, META_OFF(i), sizeof(*m)))
		return -1;
	memcpy(m, d + META_OFF(i), sizeof(*m));
	return sc_meta_unused(m) ? -1 : 0;
}

void shard_meta_put(uint8_t *d, size_t n, int i, struct sc_disk_meta *m)
{
	m->checksum = meta_sum(m);
	if (inside(n, META_OFF(i), sizeof(*m)))
		memcpy(d + META_OFF(i), m, sizeof(*m));
}

int shard_newest_meta(const uint8_t *d, size_t n)
{
	struct sc_disk_meta m[META_SLOTS];
	int best = -1;

	for (int i = 0; i < META_SLOTS; i++)
		if (shard_meta_get(d, n, i, &m[i]) == 0 && (best < 0 || m[i].txnid > m[best].txnid))
			best = i;
	return best;
}

void shard_fix_header(uint8_t *d, size_t n)
{
	struct sc_disk_header h;

	if (n < sizeof(h))
		return;
	memcpy(&h, d, sizeof(h));
	h.checksum = XXH3_64bits(&h, offsetof(struct sc_disk_header, checksum));
	memcpy(d, &h, sizeof(h));
}

void shard_blob_id(const void *p, size_t len, uint64_t id[2])
{
	XXH128_hash_t h = XXH3_128bits(p, len);

	id[0] = h.low64;
	id[1] = h.high64;
}

uint64_t shard_entry_checksum(const struct sc_disk_entry *r, const uint8_t *strings, size_t len)
{
	struct sc_disk_entry tmp = *r;
	XXH3_state_t st;

	tmp.checksum = 0;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, &tmp, sizeof(tmp));
	XXH3_64bits_update(&st, strings, len);
	return XXH3_64bits_digest(&st);
}

static uint8_t *table_slot(uint8_t *d, size_t n, uint64_t off, uint64_t slots, uint64_t i,
			   uint64_t size)
{
	uint64_t at;

	if (i >= slots || i > UINT64_MAX / size || off > UINT64_MAX - i * size)
		return NULL;
	at = off + i * size;
	return inside(n, at, size) ? d + at : NULL;
}

uint8_t *shard_slot(uint8_t *d, size_t n, const struct sc_disk_meta *m, uint64_t i)
{
	return table_slot(d, n, m->index_off, m->index_slots, i, sizeof(struct sc_disk_slot));
}

uint8_t *shard_bslot(uint8_t *d, size_t n, const struct sc_disk_meta *m, uint64_t i)
{
	return table_slot(d, n, m->blobs_off, m->blob_slots, i, sizeof(struct sc_disk_bslot));
}

/* The probe run of id @p id in meta @p m's blob table: the slot holding it
 * (@p want_free 0), or its first empty or tombstone slot (1); -1 if none
 * within MAX_FIX_SLOTS or the table is not a power of two. */
static int64_t bslot_probe(uint8_t *d, size_t n, const struct sc_disk_meta *m, const uint64_t id[2],
			   int want_free)
{
	uint64_t mask, lim;

	if (m->blob_slots == 0 || (m->blob_slots & (m->blob_slots - 1)))
		return -1;
	mask = m->blob_slots - 1;
	lim = m->blob_slots < MAX_FIX_SLOTS ? m->blob_slots : MAX_FIX_SLOTS;
	for (uint64_t k = 0, i = id[0] & mask; k < lim; k++, i = (i + 1) & mask) {
		struct sc_disk_bslot b;
		uint8_t *p = shard_bslot(d, n, m, i);

		if (!p)
			return -1;
		memcpy(&b, p, sizeof(b));
		if (want_free ? b.off == SC_SLOT_EMPTY || b.off == SC_SLOT_TOMB
			      : b.off != SC_SLOT_TOMB && b.id_lo == id[0] && b.id_hi == id[1])
			return (int64_t)i;
		if (b.off == SC_SLOT_EMPTY)
			return -1;
	}
	return -1;
}

int64_t shard_bslot_find(uint8_t *d, size_t n, const struct sc_disk_meta *m, const uint64_t id[2])
{
	return bslot_probe(d, n, m, id, 0);
}

/* Where id @p id goes in meta @p m's blob table. */
static int64_t bslot_free(uint8_t *d, size_t n, const struct sc_disk_meta *m, const uint64_t id[2])
{
	return bslot_probe(d, n, m, id, 1);
}

/* A blob at @p off got a new id: the blob index slot that named it by
 * @p old (in the table the metas share, or in each meta's own) takes the
 * new one and moves to where a probe for it looks, leaving a tombstone
 * where a probe may still pass (the metas' counts follow), and the wredo
 * records that named it follow.  A meta whose checksum was valid stays
 * valid. */
static void retarget_blob(uint8_t *d, size_t n, uint64_t off, const uint64_t old[2],
			  const uint64_t id[2])
{
	struct sc_disk_meta m[META_SLOTS];
	int have[META_SLOTS], valid[META_SLOTS], changed[META_SLOTS] = { 0 };

	for (int i = 0; i < META_SLOTS; i++) {
		have[i] = shard_meta_get(d, n, i, &m[i]) == 0;
		valid[i] = have[i] && m[i].checksum == meta_sum(&m[i]);
		for (uint64_t k = 0; have[i] && k < m[i].wredo_n && k < SC_WREDO_MAX; k++) {
			uint64_t *v = m[i].wredo[k].v;
			if (v[0] == old[0] && v[1] == old[1] && v[2] == off) {
				v[0] = id[0];
				v[1] = id[1];
				changed[i] = 1;
			}
		}
	}
	for (int i = 0; i < META_SLOTS; i++) {
		struct sc_disk_bslot b, nb;
		int64_t s, t;
		uint64_t s_at, t_at, mask;
		uint8_t *p;
		int done = 0;

		if (!have[i])
			continue;
		for (int j = 0; j < i; j++)
			done |= have[j] && m[j].blobs_off == m[i].blobs_off &&
				m[j].blob_slots == m[i].blob_slots;
		if (done)
			continue; /* the same table as an earlier slot's: done */
		if ((s = shard_bslot_find(d, n, &m[i], old)) < 0)
			continue;
		p = shard_bslot(d, n, &m[i], (uint64_t)s);
		memcpy(&b, p, sizeof(b));
		if (b.off != off)
			continue;
		b.id_lo = id[0];
		b.id_hi = id[1];
		t = bslot_free(d, n, &m[i], id);
		if (t < 0 || ((uint64_t)t - (id[0] & (m[i].blob_slots - 1))) % m[i].blob_slots >
				     ((uint64_t)s - (id[0] & (m[i].blob_slots - 1))) % m[i].blob_slots) {
			memcpy(p, &b, sizeof(b)); /* already where a probe finds it first */
			continue;
		}
		mask = m[i].blob_slots - 1;
		s_at = (uint64_t)(p - d);
		t_at = (uint64_t)(shard_bslot(d, n, &m[i], (uint64_t)t) - d);
		memcpy(&nb, d + t_at, sizeof(nb));
		memcpy(d + t_at, &b, sizeof(b));
		{
			/* the old place: empty if no probe runs on past it */
			uint8_t *next = shard_bslot(d, n, &m[i], ((uint64_t)s + 1) & mask);
			struct sc_disk_bslot nx = { 0, 0, SC_SLOT_TOMB, 0 };
			int tomb;
			if (next)
				memcpy(&nx, next, sizeof(nx));
			tomb = nx.off != SC_SLOT_EMPTY;
			memset(&b, 0, sizeof(b));
			b.off = tomb ? SC_SLOT_TOMB : SC_SLOT_EMPTY;
			memcpy(p, &b, sizeof(b));
			for (int j = i; j < META_SLOTS; j++) {
				if (!have[j] || m[j].blobs_off != m[i].blobs_off ||
				    m[j].blob_slots != m[i].blob_slots)
					continue;
				m[j].blob_tombs += (uint64_t)tomb - (nb.off == SC_SLOT_TOMB);
				for (uint64_t k = 0; k < m[j].wredo_n && k < SC_WREDO_MAX; k++)
					if (m[j].wredo[k].at == s_at)
						m[j].wredo[k].at = t_at;
				changed[j] = 1;
			}
		}
	}
	for (int i = 0; i < META_SLOTS; i++) {
		if (!changed[i])
			continue;
		if (valid[i])
			m[i].checksum = meta_sum(&m[i]);
		memcpy(d + META_OFF(i), &m[i], sizeof(m[i]));
	}
}

void shard_fix_record(uint8_t *d, size_t n, uint64_t off, unsigned what)
{
	struct sc_disk_entry r;
	uint64_t strings;

	if (!inside(n, off, sizeof(r)))
		return;
	memcpy(&r, d + off, sizeof(r));
	if (r.magic != SC_ENT_MAGIC)
		return;
	strings = (uint64_t)r.key_len + r.tag_len + r.exe_id_len + r.exe_path_len;
	if (!inside(n, off + sizeof(r), strings))
		return;
	if ((what & FIX_BLOB) && r.blob_len <= MAX_FIX_BLOB && inside(n, r.blob_off, r.blob_len)) {
		uint64_t id[2];
		shard_blob_id(d + r.blob_off, (size_t)r.blob_len, id);
		if (id[0] != r.blob_id[0] || id[1] != r.blob_id[1]) {
			retarget_blob(d, n, r.blob_off, r.blob_id, id);
			r.blob_id[0] = id[0];
			r.blob_id[1] = id[1];
		}
	}
	if (what & FIX_RECORD)
		r.checksum = shard_entry_checksum(&r, d + off + sizeof(r), (size_t)strings);
	memcpy(d + off, &r, sizeof(r));
}

/* Hash of the key of the entry at @p off, if it is readable. */
static int key_hash(const uint8_t *d, size_t n, uint64_t off, uint64_t *h)
{
	struct sc_disk_entry r;

	if (!inside(n, off, sizeof(r)))
		return -1;
	memcpy(&r, d + off, sizeof(r));
	if (r.magic != SC_ENT_MAGIC || !inside(n, off + sizeof(r), r.key_len))
		return -1;
	*h = XXH3_64bits(d + off + sizeof(r), r.key_len);
	return 0;
}

void shard_fix(uint8_t *d, size_t n, unsigned what)
{
	struct sc_disk_meta m[META_SLOTS];
	int have[META_SLOTS];

	/* The entries first: FIX_BLOB may change the metas' wredo records. */
	for (int i = 0; i < META_SLOTS && (what & (FIX_RECORD | FIX_BLOB)); i++) {
		uint64_t slots;

		if (shard_meta_get(d, n, i, &m[i]) != 0)
			continue;
		slots = m[i].index_slots < MAX_FIX_SLOTS ? m[i].index_slots : MAX_FIX_SLOTS;
		for (uint64_t s = 0; s < slots; s++) {
			uint8_t *p = shard_slot(d, n, &m[i], s);
			uint64_t off;

			if (!p)
				break;
			memcpy(&off, p + 8, 8);
			if (off > SC_SLOT_TOMB)
				shard_fix_record(d, n, off, what);
		}
		if (m[i].redo_off > SC_SLOT_TOMB)
			shard_fix_record(d, n, m[i].redo_off, what);
	}
	for (int i = 0; i < META_SLOTS; i++)
		have[i] = shard_meta_get(d, n, i, &m[i]) == 0;
	for (int i = 0; i < META_SLOTS && (what & FIX_SLOTHASH); i++) {
		uint64_t slots, hash;

		if (!have[i])
			continue;
		slots = m[i].index_slots < MAX_FIX_SLOTS ? m[i].index_slots : MAX_FIX_SLOTS;
		for (uint64_t s = 0; s < slots; s++) {
			uint8_t *p = shard_slot(d, n, &m[i], s);
			uint64_t off;

			if (!p)
				break;
			memcpy(&off, p + 8, 8);
			if (off > SC_SLOT_TOMB && key_hash(d, n, off, &hash) == 0)
				memcpy(p, &hash, 8);
		}
		if (m[i].redo_off > SC_SLOT_TOMB && key_hash(d, n, m[i].redo_off, &hash) == 0)
			m[i].redo_hash = hash;
	}
	if (what & FIX_META)
		for (int i = 0; i < META_SLOTS; i++)
			if (have[i])
				shard_meta_put(d, n, i, &m[i]);
	if (what & FIX_HEADER)
		shard_fix_header(d, n);
}
