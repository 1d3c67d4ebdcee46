/*
 * get.c - the read path: lookups, listing, statistics.
 *
 * A lookup never takes the writer lock and never makes a system call other
 * than the stat(2) of the source.  Writers update an index slot in place
 * only after the meta that names the new value (its "redo" record) has been
 * committed; a reader applies that redo itself (index.c), so it sees the
 * committed state whether or not the in-place write has happened yet.  The
 * blob is checksummed before it is handed out, once per record per handle
 * (vset.c).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sc_int.h"

/* Snapshot and probe; if the index already points past the snapshot (a
 * commit landed meanwhile), take a fresh snapshot and probe once more. */
static int snap_probe(sc_cache *c, const char *key, size_t key_len, struct sc_snap *s,
		      uint64_t *slot, struct sc_rec_view *v)
{
	uint64_t hash = sc_key_hash(key, key_len), txn = 0;
	int rc;

	for (int tries = 0;; tries++) {
		if ((rc = sc_snapshot(c, s)) != 0)
			return rc;
		rc = sc_probe(s, key, key_len, hash, slot, v);
		if (rc != -EAGAIN)
			return rc;
		/* Still past a snapshot that did not move: damage, not a
		 * commit we have yet to see. */
		if (tries > 0 && s->meta.txnid == txn)
			return SC_ECORRUPT;
		if (tries == 2)
			return SC_ENOTFOUND;
		txn = s->meta.txnid;
		pthread_rwlock_wrlock(&c->rw);
		rc = sc_refresh_locked(c, 0);
		pthread_rwlock_unlock(&c->rw);
		if (rc != 0)
			return rc;
	}
}

static int source_fresh(sc_cache *c, const struct sc_disk_entry *r, const char *key,
			size_t key_len)
{
	char path[SC_MAX_KEY + 1];
	int by_content, fresh;

	if (r->flags & SC_ENT_NO_SOURCE)
		return 1;
	memcpy(path, key, key_len);
	path[key_len] = '\0';
	fresh = sc_source_fresh(path, r->src_mtime_sec, r->src_mtime_nsec, r->src_size,
				(r->flags & SC_ENT_SRC_HASH) ? r->src_hash : NULL, &by_content);
	if (fresh && by_content)
		atomic_fetch_add_explicit(&c->n_content_fresh, 1, memory_order_relaxed);
	return fresh;
}

/* The blob's bytes against its id, once per entry per handle. */
static int blob_sound(const struct sc_snap *s, struct sc_rec_view *v)
{
	uint64_t id[2];

	if (v->verified)
		return 1;
	sc_blob_id(v->blob, (size_t)v->r->blob_len, id);
	if (id[0] != v->r->blob_id[0] || id[1] != v->r->blob_id[1])
		return 0;
	sc_vset_add(s->vset, (uint64_t)((const unsigned char *)v->r - s->map));
	v->verified = 1;
	return 1;
}

static int count_miss(sc_cache *c, int rc)
{
	switch (rc) {
	case SC_ENOTFOUND:
		atomic_fetch_add_explicit(&c->n_absent, 1, memory_order_relaxed);
		break;
	case SC_ESTALE:
		atomic_fetch_add_explicit(&c->n_stale, 1, memory_order_relaxed);
		break;
	case SC_EFINGERPRINT:
	case SC_EWRITERGONE:
		atomic_fetch_add_explicit(&c->n_fingerprint, 1, memory_order_relaxed);
		break;
	case SC_ECORRUPT:
		atomic_fetch_add_explicit(&c->n_corrupt, 1, memory_order_relaxed);
		break;
	default:
		break;
	}
	return rc;
}

/* The common start of a lookup: argument checks, snapshot, probe. */
static int find_key(sc_cache *c, const char *key, struct sc_snap *s, struct sc_rec_view *v,
		    size_t *key_len)
{
	int rc;

	if (!c || !key)
		return -EINVAL;
	if (c->disabled)
		return SC_EDISABLED;
	*key_len = strlen(key);
	if (*key_len == 0 || *key_len > SC_MAX_KEY)
		return SC_ENOTFOUND;
	/* A snapshot that fails (a shard damaged since the open) leaves *s
	 * unset: nothing to pin then. */
	s->shard_id = atomic_load_explicit(&c->pin_shard, memory_order_acquire);
	rc = snap_probe(c, key, *key_len, s, NULL, v);
	if (s->shard_id != atomic_load_explicit(&c->pin_shard, memory_order_acquire) && !c->legacy) {
		/* The first lookup on this file: pin it before handing out
		 * pointers, and look again under the pin. */
		if ((rc = sc_pin(c)) != 0)
			return rc;
		rc = snap_probe(c, key, *key_len, s, NULL, v);
	}
	return rc;
}

/* Lookup with an explicit tag (NULL: judge from the writer's view). */
int sc_get_tagged(sc_cache *c, const char *key, const char *tag, size_t tag_len, sc_blob *out)
{
	struct sc_snap s;
	struct sc_rec_view v;
	const struct sc_disk_entry *r;
	size_t key_len;
	int rc;

	if (!out)
		return -EINVAL;
	rc = find_key(c, key, &s, &v, &key_len);
	if (rc == -EINVAL || rc == SC_EDISABLED)
		return rc;
	if (rc != 0)
		return count_miss(c, rc);
	r = v.r;
	if (tag) {
		size_t id_len;
		const char *id = sc_self_identity(&id_len);
		if (r->tag_len != tag_len || memcmp(v.tag, tag, tag_len) != 0 ||
		    r->exe_id_len != id_len || memcmp(v.exe_id, id, id_len) != 0)
			return count_miss(c, SC_EFINGERPRINT);
		if (!source_fresh(c, r, key, key_len))
			return count_miss(c, SC_ESTALE);
	} else {
		sc_entry_info e;
		int by_content;
		sc_fill_info(&s, 0, &v, &e);
		if ((rc = sc_entry_status(&e)) != 0)
			return count_miss(c, rc);
		if (sc_entry_source_fresh(&e, &by_content) && by_content)
			atomic_fetch_add_explicit(&c->n_content_fresh, 1, memory_order_relaxed);
	}
	if (!blob_sound(&s, &v))
		return count_miss(c, SC_ECORRUPT);
	out->data = v.blob;
	out->size = (size_t)r->blob_len;
	atomic_fetch_add_explicit(&c->n_hits, 1, memory_order_relaxed);
	return 0;
}

int sc_get(sc_cache *c, const char *key, sc_blob *out)
{
	if (!c)
		return -EINVAL;
	return sc_get_tagged(c, key, c->tag, c->tag_len, out);
}

int sc_lookup(sc_cache *c, const char *key, sc_entry_info *out)
{
	struct sc_snap s;
	struct sc_rec_view v;
	size_t key_len;
	int rc;

	if (!out)
		return -EINVAL;
	uint64_t off;

	if ((rc = find_key(c, key, &s, &v, &key_len)) != 0)
		return rc;
	off = (uint64_t)((const unsigned char *)v.r - s.map);
	if (!blob_sound(&s, &v))
		return SC_ECORRUPT;
	sc_fill_info(&s, off, &v, out);
	return 0;
}

int sc_foreach(sc_cache *c, sc_foreach_fn fn, void *arg)
{
	struct sc_snap s;
	int rc;

	if (!c || !fn)
		return -EINVAL;
	if (c->disabled)
		return SC_EDISABLED;
	if ((rc = sc_pin(c)) != 0 || (rc = sc_snapshot(c, &s)) != 0)
		return rc;
	for (uint64_t i = 0; i < s.meta.index_slots; i++) {
		struct sc_rec_view v;
		sc_entry_info e;
		uint64_t h, off;

		sc_slot_read(&s, i, &h, &off);
		if (off == SC_SLOT_EMPTY || off == SC_SLOT_TOMB)
			continue;
		if (off >= s.meta.data_end)
			continue; /* committed after our snapshot, or damage */
		rc = sc_record_view(s.map, s.meta.data_end, off, sc_vset_has(s.vset, off), &v);
		if (rc == -EAGAIN)
			continue; /* committed after our snapshot */
		if (rc != 0 ||
		    sc_key_hash(v.key, v.r->key_len) != h) {
			atomic_fetch_add_explicit(&c->n_corrupt, 1, memory_order_relaxed);
			continue;
		}
		sc_fill_info(&s, off, &v, &e);
		if ((rc = fn(&e, arg)) != 0)
			return rc;
	}
	return 0;
}

int sc_get_stats(sc_cache *c, sc_stats *out)
{
	struct sc_snap s;
	int rc;

	if (!c || !out)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->hits = atomic_load(&c->n_hits);
	out->miss_absent = atomic_load(&c->n_absent);
	out->miss_stale = atomic_load(&c->n_stale);
	out->miss_fingerprint = atomic_load(&c->n_fingerprint);
	out->miss_corrupt = atomic_load(&c->n_corrupt);
	out->puts = atomic_load(&c->n_puts);
	out->removes = atomic_load(&c->n_removes);
	out->evictions = atomic_load(&c->n_evictions);
	out->compactions = atomic_load(&c->n_compactions);
	out->heals = atomic_load(&c->n_heals);
	out->fresh_by_content = atomic_load(&c->n_content_fresh);
	if (c->disabled)
		return 0;
	out->set_aside = sc_count_set_aside(c->path);
	if ((rc = sc_snapshot(c, &s)) != 0)
		return rc;
	out->entries = s.meta.entries;
	out->live_bytes = s.meta.live_bytes;
	out->dead_bytes = s.meta.dead_bytes;
	out->blobs = s.meta.blobs;
	out->logical_bytes = s.meta.logical_bytes;
	out->stored_bytes = s.meta.stored_bytes;
	out->file_size = c->legacy ? (uint64_t)c->v1_len : s.file_size; /* the v1 file, not its image */
	out->generation = s.meta.txnid;
	out->index_slots = s.meta.index_slots;
	out->shard_id = s.shard_id;
	return 0;
}
