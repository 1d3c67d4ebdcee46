/*
 * get.c - the read path: lookups, listing, statistics, through the stack
 * of shards (layer.c): the own shard first, then each lower shard.
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

/*
 * One shard of the stack: the record for the absolute key @p key in any
 * form the shard may hold it.  As it is first; then, in a relocatable
 * shard, relative to its base or to one of $SCRIPTCACHE_BASEDIRS when the
 * key lies under it (docs/LAYERS.md, "Relocation").  *base (NULL: the key
 * as it is) says what the stored key is relative to.
 */
static int shard_find(sc_cache *h, const char *key, size_t key_len, struct sc_snap *s,
		      struct sc_rec_view *v, const char **base, size_t *base_len)
{
	size_t kl;
	int rc = find_key(h, key, s, v, &kl);

	*base = NULL;
	*base_len = 0;
	if (rc != SC_ENOTFOUND || !key_len || key_len > SC_MAX_KEY || key[0] != '/' || !s->reloc)
		return rc;
	for (int i = -1; s->basedirs || i < 0; i++) {
		const char *b = i < 0 ? s->base : s->basedirs[i];
		size_t bl;

		if (i >= 0 && !b)
			break;
		if (!b)
			continue;
		bl = strlen(b);
		if (key_len <= bl + 1 || memcmp(key, b, bl) != 0 || key[bl] != '/')
			continue;
		rc = find_key(h, key + bl + 1, s, v, &kl);
		if (rc != SC_ENOTFOUND) {
			*base = b;
			*base_len = bl;
			return rc;
		}
	}
	return SC_ENOTFOUND;
}

static void fill_layer(sc_entry_info *e, int layer, const sc_cache *h, const char *base,
		       size_t base_len)
{
	e->layer = layer;
	e->layer_path = h->path;
	e->key_base = base;
	e->key_base_len = base_len;
}

/* A lookup in one shard of the stack, judged as sc_get() does; freshness
 * by content is counted on @p top.  SC_IWHITEOUT: the key is hidden. */
static int shard_get(sc_cache *top, sc_cache *h, int layer, const char *key, size_t key_len,
		     const char *tag, size_t tag_len, sc_blob *out)
{
	struct sc_snap s;
	struct sc_rec_view v;
	const struct sc_disk_entry *r;
	const char *base;
	size_t base_len;
	int rc;

	if ((rc = shard_find(h, key, key_len, &s, &v, &base, &base_len)) != 0)
		return rc;
	r = v.r;
	/* Before the fingerprint: a whiteout hides the key for every tag. */
	if (r->flags & SC_ENT_WHITEOUT)
		return SC_IWHITEOUT;
	if (tag) {
		size_t id_len;
		const char *id = sc_self_identity(&id_len);
		if (r->tag_len != tag_len || memcmp(v.tag, tag, tag_len) != 0 ||
		    r->exe_id_len != id_len || memcmp(v.exe_id, id, id_len) != 0)
			return SC_EFINGERPRINT;
		/* The source is the key as looked up, wherever the shard
		 * was built: a relocated entry is judged on this tree. */
		if (!source_fresh(top, r, key, key_len))
			return SC_ESTALE;
	} else {
		sc_entry_info e;
		int by_content;
		sc_fill_info(&s, 0, &v, &e);
		fill_layer(&e, layer, h, base, base_len);
		if ((rc = sc_entry_status(&e)) != 0)
			return rc;
		if (sc_entry_source_fresh(&e, &by_content) && by_content)
			atomic_fetch_add_explicit(&top->n_content_fresh, 1, memory_order_relaxed);
	}
	if (!blob_sound(&s, &v))
		return SC_ECORRUPT;
	out->data = v.blob;
	out->size = (size_t)r->blob_len;
	return 0;
}

/* A miss in a lower shard that says something about the key (not a shard
 * that cannot be read now: sc_verify() and sc_get_layer_info() tell that). */
static int lower_miss_says(int rc)
{
	return rc == SC_ESTALE || rc == SC_EFINGERPRINT || rc == SC_EWRITERGONE;
}

/* Lookup with an explicit tag (NULL: judge from the writer's view), layer
 * by layer: the first hit wins, a whiteout ends the search. */
int sc_get_tagged(sc_cache *c, const char *key, const char *tag, size_t tag_len, sc_blob *out)
{
	int n, miss = SC_ENOTFOUND, rc;
	size_t key_len;

	if (!out || !c || !key)
		return -EINVAL;
	if (c->disabled)
		return SC_EDISABLED;
	key_len = strlen(key);
	n = sc_layers(c);
	for (int i = 0; i < n; i++) {
		sc_cache *h = sc_layer_handle(c, i);

		if (!h)
			continue;
		rc = shard_get(c, h, i, key, key_len, tag, tag_len, out);
		if (rc == 0) {
			atomic_fetch_add_explicit(&c->n_hits, 1, memory_order_relaxed);
			if (i > 0)
				atomic_fetch_add_explicit(&c->n_lower_hits, 1, memory_order_relaxed);
			return 0;
		}
		if (rc == SC_IWHITEOUT)
			break;
		if (miss == SC_ENOTFOUND && (i == 0 || lower_miss_says(rc)))
			miss = rc;
	}
	return count_miss(c, miss);
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
	const char *base;
	size_t key_len, base_len;
	int n, miss = SC_ENOTFOUND, rc;

	if (!out || !c || !key)
		return -EINVAL;
	if (c->disabled)
		return SC_EDISABLED;
	key_len = strlen(key);
	n = sc_layers(c);
	for (int i = 0; i < n; i++) {
		sc_cache *h = sc_layer_handle(c, i);

		if (!h)
			continue;
		rc = shard_find(h, key, key_len, &s, &v, &base, &base_len);
		if (rc == 0 && (v.r->flags & SC_ENT_WHITEOUT))
			break;
		if (rc == 0 && !blob_sound(&s, &v))
			rc = SC_ECORRUPT;
		if (rc == 0) {
			sc_fill_info(&s, (uint64_t)((const unsigned char *)v.r - s.map), &v, out);
			fill_layer(out, i, h, base, base_len);
			return 0;
		}
		if (rc == -EINVAL)
			return rc;
		if (miss == SC_ENOTFOUND && i == 0)
			miss = rc;
	}
	return miss;
}

int sc_lower_shows(sc_cache *c, const char *key, uint64_t *shard_id, uint64_t *offset)
{
	struct sc_snap s;
	struct sc_rec_view v;
	const char *base;
	size_t key_len = strlen(key), base_len;
	int n = sc_layers(c);

	for (int i = 1; i < n; i++) {
		sc_cache *h = sc_layer_handle(c, i);

		if (!h || shard_find(h, key, key_len, &s, &v, &base, &base_len) != 0)
			continue;
		if (v.r->flags & SC_ENT_WHITEOUT)
			return 0;
		*shard_id = s.shard_id;
		*offset = (uint64_t)((const unsigned char *)v.r - s.map);
		return i;
	}
	return 0;
}

/* Does a layer above @p layer hold a record (an entry or a whiteout) for
 * @p key?  Then the entry of @p layer is hidden. */
static int hidden_above(sc_cache *c, int layer, const char *key, size_t key_len)
{
	struct sc_snap s;
	struct sc_rec_view v;
	const char *base;
	size_t base_len;

	for (int j = 0; j < layer; j++) {
		sc_cache *h = sc_layer_handle(c, j);
		if (h && shard_find(h, key, key_len, &s, &v, &base, &base_len) == 0)
			return 1;
	}
	return 0;
}

/* The entries of layer @p layer (handle @p h) that the union shows.
 * *stopped: @p fn asked to stop, and the return value is its. */
static int foreach_layer(sc_cache *c, int layer, sc_cache *h, sc_foreach_fn fn, void *arg,
			 int *stopped)
{
	char *full = NULL;
	struct sc_snap s;
	int rc, vrc;

	if ((rc = sc_pin(h)) != 0 || (rc = sc_snapshot(h, &s)) != 0)
		return rc;
	for (uint64_t i = 0; i < s.meta.index_slots; i++) {
		struct sc_rec_view v;
		sc_entry_info e;
		uint64_t hh, off;
		const char *key, *base = NULL;
		size_t key_len, base_len = 0;

		sc_slot_read(&s, i, &hh, &off);
		if (off == SC_SLOT_EMPTY || off == SC_SLOT_TOMB)
			continue;
		if (off >= s.meta.data_end)
			continue; /* committed after our snapshot, or damage */
		vrc = sc_record_view(s.map, s.meta.data_end, off, sc_vset_has(s.vset, off), &v);
		if (vrc == -EAGAIN)
			continue; /* committed after our snapshot */
		if (vrc != 0 ||
		    sc_key_hash(v.key, v.r->key_len) != hh) {
			atomic_fetch_add_explicit(&c->n_corrupt, 1, memory_order_relaxed);
			continue;
		}
		if (v.r->flags & SC_ENT_WHITEOUT)
			continue;
		key = v.key;
		key_len = v.r->key_len;
		if (s.reloc && v.key[0] != '/') {
			/* Relative to the base: listed under the first one
			 * known; with none, it can never hit, so not listed. */
			base = s.base ? s.base : s.basedirs ? s.basedirs[0] : NULL;
			if (!base)
				continue;
			base_len = strlen(base);
			if (!full && !(full = malloc(2 * SC_MAX_KEY + 2))) {
				rc = -ENOMEM;
				break;
			}
			if (base_len + 1 + key_len > 2 * SC_MAX_KEY + 1)
				continue;
			memcpy(full, base, base_len);
			full[base_len] = '/';
			memcpy(full + base_len + 1, v.key, key_len);
			key = full;
			key_len += base_len + 1;
		}
		if (layer > 0) {
			char one[SC_MAX_KEY + 1];
			if (key_len > SC_MAX_KEY)
				continue; /* no lookup can name it */
			memcpy(one, key, key_len);
			one[key_len] = '\0';
			if (hidden_above(c, layer, one, key_len))
				continue;
		}
		sc_fill_info(&s, off, &v, &e);
		fill_layer(&e, layer, h, base, base_len);
		if ((rc = fn(&e, arg)) != 0) {
			*stopped = 1;
			break;
		}
	}
	free(full);
	return rc;
}

int sc_foreach(sc_cache *c, sc_foreach_fn fn, void *arg)
{
	int n, rc, stopped = 0;

	if (!c || !fn)
		return -EINVAL;
	if (c->disabled)
		return SC_EDISABLED;
	n = sc_layers(c);
	for (int i = 0; i < n; i++) {
		sc_cache *h = sc_layer_handle(c, i);

		if (!h)
			continue;
		rc = foreach_layer(c, i, h, fn, arg, &stopped);
		/* A lower shard that cannot be read now is left out, as
		 * lookups leave it out; the own shard's failure is the
		 * caller's to know. */
		if (stopped || (rc != 0 && i == 0) || rc == -ENOMEM)
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
	out->lower_hits = atomic_load(&c->n_lower_hits);
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
	out->lower_layers = (uint64_t)(sc_layers(c) - 1);
	for (int i = 1; i < sc_layers(c); i++) {
		sc_layer_info li;
		if (sc_get_layer_info(c, i, &li) != 0 || li.status != 0)
			out->lower_unusable++;
	}
	out->set_aside = sc_count_set_aside(c->path);
	if ((rc = sc_snapshot(c, &s)) != 0)
		return rc;
	out->entries = s.meta.entries;
	out->live_bytes = s.meta.live_bytes;
	out->dead_bytes = s.meta.dead_bytes;
	out->blobs = s.meta.blobs;
	out->logical_bytes = s.meta.logical_bytes;
	out->stored_bytes = s.meta.stored_bytes;
	out->file_size = c->legacy ? (uint64_t)c->v1_len : c->unborn ? 0 : s.file_size; /* the v1 file, not its image */
	out->generation = s.meta.txnid;
	out->index_slots = s.meta.index_slots;
	out->shard_id = s.shard_id;
	return 0;
}
