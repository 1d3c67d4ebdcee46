/*
 * entry.c - an entry record as the API shows it (sc_entry_info), and whether
 * it can still hit: its source unchanged, its writer not rebuilt.  Used by
 * lookups and by the eviction of stale entries alike.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sc_int.h"

void sc_fill_info(const struct sc_snap *s, uint64_t off, const struct sc_rec_view *v,
		  sc_entry_info *e)
{
	const struct sc_disk_entry *r = v->r;

	memset(e, 0, sizeof(*e));
	e->key = v->key;
	e->key_len = r->key_len;
	e->has_source = !(r->flags & SC_ENT_NO_SOURCE);
	e->source_mtime_sec = r->src_mtime_sec;
	e->source_mtime_nsec = r->src_mtime_nsec;
	e->source_size = r->src_size;
	e->has_source_hash = !!(r->flags & SC_ENT_SRC_HASH);
	if (e->has_source_hash)
		memcpy(e->source_hash, r->src_hash, sizeof(e->source_hash));
	e->tag = v->tag;
	e->tag_len = r->tag_len;
	e->exe_id = v->exe_id;
	e->exe_id_len = r->exe_id_len;
	e->exe_path = v->exe_path;
	e->exe_path_len = r->exe_path_len;
	e->cached_sec = r->cached_sec;
	e->cached_nsec = r->cached_nsec;
	e->blob = v->blob;
	e->blob_size = r->blob_len;
	memcpy(e->blob_id, r->blob_id, sizeof(e->blob_id));
	e->shard_id = s->shard_id;
	e->offset = off;
}

int sc_entry_source_fresh(const sc_entry_info *e, int *by_content)
{
	char path[2 * SC_MAX_KEY + 2];
	size_t at = 0;

	if (by_content)
		*by_content = 0;
	if (!e->has_source)
		return 1;
	/* A relocated entry's source is its key under the base in use. */
	if (e->key_base) {
		if (e->key_base_len > SC_MAX_KEY)
			return 0;
		memcpy(path, e->key_base, e->key_base_len);
		path[e->key_base_len] = '/';
		at = e->key_base_len + 1;
	}
	if (e->key_len > SC_MAX_KEY)
		return 0;
	memcpy(path + at, e->key, e->key_len);
	path[at + e->key_len] = '\0';
	return sc_source_fresh(path, e->source_mtime_sec, e->source_mtime_nsec, e->source_size,
			       e->has_source_hash ? e->source_hash : NULL, by_content);
}

int sc_entry_status(const sc_entry_info *e)
{
	char path[4096], id[SC_IDENTITY_MAX];

	if (!sc_entry_source_fresh(e, NULL))
		return SC_ESTALE;
	if (e->exe_path_len == 0 || e->exe_path_len >= sizeof(path))
		return SC_EWRITERGONE;
	memcpy(path, e->exe_path, e->exe_path_len);
	path[e->exe_path_len] = '\0';
	if (sc_file_identity(path, id, sizeof(id)) != 0 || strlen(id) != e->exe_id_len ||
	    memcmp(id, e->exe_id, e->exe_id_len) != 0)
		return SC_EWRITERGONE;
	return 0;
}

int sc_live_add_whiteout(struct sc_live *l, const sc_entry_info *e, int whiteout)
{
	if (l->n == l->cap) {
		uint64_t cap = l->cap ? l->cap * 2 : 64;
		sc_entry_info *bigger = realloc(l->e, cap * sizeof(*bigger));
		unsigned char *wo;
		if (!bigger)
			return -ENOMEM;
		l->e = bigger;
		if (!(wo = realloc(l->wo, cap)))
			return -ENOMEM;
		l->wo = wo;
		l->cap = cap;
	}
	l->wo[l->n] = !!whiteout;
	l->e[l->n++] = *e;
	return 0;
}

int sc_live_add(struct sc_live *l, const sc_entry_info *e)
{
	return sc_live_add_whiteout(l, e, 0);
}

void sc_live_free(struct sc_live *l)
{
	free(l->e);
	free(l->wo);
	l->e = NULL;
	l->wo = NULL;
	l->n = l->cap = 0;
}
