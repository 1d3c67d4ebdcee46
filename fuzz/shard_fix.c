/*
 * shard_fix.c - see shard_fix.h.  Everything is read and written with
 * memcpy: a mutated image puts structures at any offset.
 */
#include <string.h>

#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

#include "shard_fix.h"

/* Bounds work on huge claimed tables: the fixer must stay fast. */
#define MAX_FIX_SLOTS 65536u
#define MAX_FIX_BLOB  ((uint64_t)1 << 24)

static int inside(size_t n, uint64_t off, uint64_t len)
{
	return off <= n && len <= n - off;
}

int shard_meta_get(const uint8_t *d, size_t n, int i, struct sc_disk_meta *m)
{
	if (!inside(n, META_OFF(i), sizeof(*m)))
		return -1;
	memcpy(m, d + META_OFF(i), sizeof(*m));
	return 0;
}

void shard_meta_put(uint8_t *d, size_t n, int i, struct sc_disk_meta *m)
{
	m->checksum = XXH3_64bits(m, offsetof(struct sc_disk_meta, checksum));
	if (inside(n, META_OFF(i), sizeof(*m)))
		memcpy(d + META_OFF(i), m, sizeof(*m));
}

int shard_newest_meta(const uint8_t *d, size_t n)
{
	struct sc_disk_meta m[2];
	int ok0 = shard_meta_get(d, n, 0, &m[0]) == 0;
	int ok1 = shard_meta_get(d, n, 1, &m[1]) == 0;

	if (ok0 && ok1)
		return m[1].txnid > m[0].txnid ? 1 : 0;
	return ok0 ? 0 : ok1 ? 1 : -1;
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

void shard_fix_record(uint8_t *d, size_t n, uint64_t off, unsigned what)
{
	struct sc_disk_record r, tmp;
	uint64_t strings;
	XXH3_state_t st;

	if (!inside(n, off, sizeof(r)))
		return;
	memcpy(&r, d + off, sizeof(r));
	if (r.magic != SC_REC_MAGIC)
		return;
	strings = (uint64_t)r.key_len + r.tag_len + r.exe_id_len + r.exe_path_len;
	if (!inside(n, off + sizeof(r), strings))
		return;
	if ((what & FIX_BLOB) && r.blob_len <= MAX_FIX_BLOB && r.blob_off <= n &&
	    inside(n, off, r.blob_off) && inside(n, off + r.blob_off, r.blob_len))
		r.blob_checksum = XXH3_64bits(d + off + r.blob_off, (size_t)r.blob_len);
	if (what & FIX_RECORD) {
		tmp = r;
		tmp.checksum = 0;
		XXH3_64bits_reset(&st);
		XXH3_64bits_update(&st, &tmp, sizeof(tmp));
		XXH3_64bits_update(&st, d + off + sizeof(r), (size_t)strings);
		r.checksum = XXH3_64bits_digest(&st);
	}
	memcpy(d + off, &r, sizeof(r));
}

uint8_t *shard_slot(uint8_t *d, size_t n, const struct sc_disk_meta *m, uint64_t i)
{
	uint64_t at;

	if (i >= m->index_slots || i > UINT64_MAX / 16 || m->index_off > UINT64_MAX - i * 16)
		return NULL;
	at = m->index_off + i * 16;
	return inside(n, at, 16) ? d + at : NULL;
}

/* Hash of the key of the record at @p off, if it is readable. */
static int key_hash(const uint8_t *d, size_t n, uint64_t off, uint64_t *h)
{
	struct sc_disk_record r;

	if (!inside(n, off, sizeof(r)))
		return -1;
	memcpy(&r, d + off, sizeof(r));
	if (r.magic != SC_REC_MAGIC || !inside(n, off + sizeof(r), r.key_len))
		return -1;
	*h = XXH3_64bits(d + off + sizeof(r), r.key_len);
	return 0;
}

void shard_fix(uint8_t *d, size_t n, unsigned what)
{
	struct sc_disk_meta m[2];
	int have[2];

	for (int i = 0; i < 2; i++)
		have[i] = shard_meta_get(d, n, i, &m[i]) == 0;
	for (int i = 0; i < 2; i++) {
		uint64_t slots;

		if (!have[i] || !(what & (FIX_RECORD | FIX_BLOB | FIX_SLOTHASH)))
			continue;
		slots = m[i].index_slots < MAX_FIX_SLOTS ? m[i].index_slots : MAX_FIX_SLOTS;
		for (uint64_t s = 0; s < slots; s++) {
			uint8_t *p = shard_slot(d, n, &m[i], s);
			uint64_t hash, off;

			if (!p)
				break;
			memcpy(&off, p + 8, 8);
			if (off <= SC_SLOT_TOMB)
				continue;
			shard_fix_record(d, n, off, what);
			if ((what & FIX_SLOTHASH) && key_hash(d, n, off, &hash) == 0)
				memcpy(p, &hash, 8);
		}
		if (m[i].redo_off > SC_SLOT_TOMB) {
			uint64_t hash;
			shard_fix_record(d, n, m[i].redo_off, what);
			if ((what & FIX_SLOTHASH) && key_hash(d, n, m[i].redo_off, &hash) == 0)
				m[i].redo_hash = hash;
		}
	}
	if (what & FIX_META)
		for (int i = 0; i < 2; i++)
			if (have[i])
				shard_meta_put(d, n, i, &m[i]);
	if (what & FIX_HEADER)
		shard_fix_header(d, n);
}
