/*
 * legacy.c - reading a version 1 shard (scriptcache 0.1), so that a writer
 * can rebuild it as version 2 with its entries (rewrite.c), and nothing
 * else ever reads it: a v1 file is a miss source for every other purpose.
 *
 * Version 1 kept each record's header, strings and blob together, 64-byte
 * aligned, behind one index of (XXH3-64 of the key, record offset) slots;
 * its layout is frozen here.  As everywhere, the file is untrusted: every
 * offset is bounds-checked and every checksum verified before an entry is
 * carried over.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "sc_int.h"

#define V1_META0_OFF 512u
#define V1_META1_OFF 1024u
#define V1_DATA_OFF  4096u
#define V1_ALIGN     64u
#define V1_REC_MAGIC 0x4e455343u /* "SCEN" */
#define V1_NO_SOURCE 1u

struct v1_meta {
	uint64_t txnid, data_end, index_off, index_slots, entries, tombstones;
	uint64_t live_bytes, dead_bytes, flags, redo_slot, redo_hash, redo_off;
	int64_t  committed_sec;
	char     lib_version[16];
	uint8_t  pad[8];
	uint64_t checksum;
};

struct v1_record {
	uint32_t magic, flags;
	uint64_t rec_len;
	uint16_t key_len, tag_len, exe_id_len, exe_path_len;
	uint32_t src_mtime_nsec, cached_nsec;
	int64_t  src_mtime_sec;
	uint64_t src_size;
	int64_t  cached_sec;
	uint64_t blob_off, blob_len, blob_checksum, checksum;
};

_Static_assert(sizeof(struct v1_meta) == 136, "v1 meta layout");
_Static_assert(sizeof(struct v1_record) == 88, "v1 record layout");

static int v1_meta_ok(const struct v1_meta *m, uint64_t len, int parity)
{
	if (m->checksum != XXH3_64bits(m, offsetof(struct v1_meta, checksum)) ||
	    (m->txnid & 1) != (uint64_t)parity)
		return 0;
	if (m->data_end < V1_DATA_OFF || m->data_end > len || m->index_slots == 0 ||
	    (m->index_slots & (m->index_slots - 1)) || m->index_slots > len / 16)
		return 0;
	return m->index_off >= V1_DATA_OFF && m->index_off <= m->data_end &&
	       m->index_slots * 16 <= m->data_end - m->index_off &&
	       (m->redo_slot == UINT64_MAX || m->redo_slot < m->index_slots);
}

/* A v1 record, checked as 0.1 checked it, as an sc_entry_info. */
static int v1_entry(const unsigned char *map, const struct v1_meta *m, uint64_t off,
		    uint64_t hash, sc_entry_info *e)
{
	const struct v1_record *r;
	struct v1_record tmp;
	XXH3_state_t st;
	uint64_t strings;

	if (off < V1_DATA_OFF || off % V1_ALIGN || off >= m->data_end ||
	    m->data_end - off < sizeof(*r))
		return -1;
	r = (const struct v1_record *)(map + off);
	if (r->magic != V1_REC_MAGIC || r->rec_len > m->data_end - off || r->key_len == 0 ||
	    r->key_len > SC_MAX_KEY)
		return -1;
	strings = (uint64_t)r->key_len + r->tag_len + r->exe_id_len + r->exe_path_len;
	if (r->blob_off % V1_ALIGN || r->blob_off < sizeof(*r) + strings ||
	    r->blob_len > SC_MAX_BLOB || r->blob_off > r->rec_len ||
	    r->blob_len > r->rec_len - r->blob_off)
		return -1;
	tmp = *r;
	tmp.checksum = 0;
	XXH3_64bits_reset(&st);
	XXH3_64bits_update(&st, &tmp, sizeof(tmp));
	XXH3_64bits_update(&st, r + 1, (size_t)strings);
	if (XXH3_64bits_digest(&st) != r->checksum ||
	    XXH3_64bits((const char *)r + sizeof(*r), r->key_len) != hash ||
	    XXH3_64bits((const unsigned char *)r + r->blob_off, (size_t)r->blob_len) !=
		    r->blob_checksum)
		return -1;
	memset(e, 0, sizeof(*e));
	e->key = (const char *)(r + 1);
	e->key_len = r->key_len;
	e->tag = e->key + r->key_len;
	e->tag_len = r->tag_len;
	e->exe_id = e->tag + r->tag_len;
	e->exe_id_len = r->exe_id_len;
	e->exe_path = e->exe_id + r->exe_id_len;
	e->exe_path_len = r->exe_path_len;
	e->has_source = !(r->flags & V1_NO_SOURCE);
	e->source_mtime_sec = r->src_mtime_sec;
	e->source_mtime_nsec = r->src_mtime_nsec;
	e->source_size = r->src_size;
	e->cached_sec = r->cached_sec;
	e->cached_nsec = r->cached_nsec;
	e->blob = (const unsigned char *)r + r->blob_off;
	e->blob_size = r->blob_len;
	sc_blob_id(e->blob, (size_t)e->blob_size, e->blob_id);
	e->offset = off;
	return 0;
}

int sc_v1_collect(const unsigned char *map, uint64_t len, struct sc_live *l, uint64_t *dropped)
{
	struct v1_meta raw[2], m;
	int ok[2];

	if (len < V1_DATA_OFF)
		return SC_ETRUNCATED;
	memcpy(&raw[0], map + V1_META0_OFF, sizeof(raw[0]));
	memcpy(&raw[1], map + V1_META1_OFF, sizeof(raw[1]));
	ok[0] = v1_meta_ok(&raw[0], len, 0);
	ok[1] = v1_meta_ok(&raw[1], len, 1);
	if (!ok[0] && !ok[1])
		return SC_ECORRUPT;
	m = ok[0] && (!ok[1] || raw[0].txnid > raw[1].txnid) ? raw[0] : raw[1];
	for (uint64_t i = 0; i < m.index_slots; i++) {
		const unsigned char *slot = map + m.index_off + i * 16;
		uint64_t h, off;
		sc_entry_info e;
		int rc;

		if (i == m.redo_slot) {
			h = m.redo_hash;
			off = m.redo_off;
		} else {
			memcpy(&h, slot, 8);
			memcpy(&off, slot + 8, 8);
		}
		if (off == 0 || off == 1)
			continue;
		if (v1_entry(map, &m, off, h, &e) != 0) {
			(*dropped)++;
			continue;
		}
		if ((rc = sc_live_add(l, &e)) != 0)
			return rc;
	}
	return 0;
}

int sc_upgrade_locked(sc_cache *c)
{
	struct sc_live l = { 0 };
	uint64_t dropped = 0;
	int rc;

	rc = sc_v1_collect(c->v1_map, c->v1_len, &l, &dropped);
	if (rc == 0)
		rc = sc_build_shard(c, &l);
	else if (sc_heal_wanted(rc))
		rc = sc_set_aside_locked(c); /* a v1 file damaged beyond use */
	if (rc == 0)
		rc = sc_follow(c);
	sc_live_free(&l);
	return rc;
}
