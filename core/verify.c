/*
 * verify.c - sc_verify(): the whole shard checked, every problem reported
 * with the file offset where it was found.  It only reads; commits are kept
 * out while it runs (see below).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <stdlib.h>

#include "sc_int.h"


struct vctx {
	sc_verify_fn fn;
	void *arg;
	int bad;
};

static void problem(struct vctx *v, uint64_t off, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
static void problem(struct vctx *v, uint64_t off, const char *fmt, ...)
{
	char buf[256];
	va_list ap;

	v->bad = 1;
	if (!v->fn)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	v->fn(v->arg, off, buf);
}

/* ------------------------------------------------------------------ */
/* No two things in the data overlap: a writer writes into a chunk's free
 * tail, a ring's tail and a free extent in place, so a meta that puts one
 * of them over committed bytes would have the next put overwrite them. */

struct range {
	uint64_t a, b;            /* [a, b) */
	const char *what;
};

struct ranges {
	struct range *v;
	size_t n, cap;
	int oom;
};

static void add_range(struct ranges *r, uint64_t a, uint64_t len, const char *what)
{
	if (len == 0 || r->oom)
		return;
	if (r->n == r->cap) {
		size_t cap = r->cap ? r->cap * 2 : 256;
		struct range *v = realloc(r->v, cap * sizeof(*v));
		if (!v) {
			r->oom = 1;
			return;
		}
		r->v = v;
		r->cap = cap;
	}
	r->v[r->n++] = (struct range){ a, a + len < a ? UINT64_MAX : a + len, what };
}

static int by_start(const void *x, const void *y)
{
	const struct range *a = x, *b = y;
	return a->a < b->a ? -1 : a->a > b->a;
}

static void check_overlaps(struct vctx *v, struct ranges *r)
{
	uint64_t end = 0;
	const char *last = NULL;

	if (r->oom)
		return;
	qsort(r->v, r->n, sizeof(*r->v), by_start);
	for (size_t i = 0; i < r->n; i++) {
		if (last && r->v[i].a < end)
			problem(v, r->v[i].a, "%s at %llu overlaps %s", r->v[i].what,
				(unsigned long long)r->v[i].a, last);
		if (r->v[i].b > end) {
			end = r->v[i].b;
			last = r->v[i].what;
		}
	}
}

/* The bytes a blob's extent takes (its size class). */
static uint64_t extent(uint64_t len)
{
	return len ? sc_class_size(sc_class_of(len)) : 0;
}

/* One shard: the whole walk.  (Its problems go straight to @p fn.) */
static int verify_shard(sc_cache *c, sc_verify_fn fn, void *arg, uint64_t *n_checked)
{
	struct vctx v = { fn, arg, 0 };
	struct sc_disk_header h;
	struct sc_disk_meta m[SC_META_SLOTS];
	int ok[SC_META_SLOTS];
	uint64_t meta_at = SC_META0_OFF; /* the slot of the meta checked against */
	struct sc_snap s;
	uint64_t entries = 0, tombs = 0, live = 0, checked = 0, logical = 0, stored = 0;
	uint64_t blobs = 0, btombs = 0, *refs = NULL;
	struct ranges rg = { 0 };
	int rc, locked = 0, shared_fd = -1;

	if (!c)
		return -EINVAL;
	if (c->disabled)
		return SC_EDISABLED;
	/* Keep commits out while we look: they change index slots in place,
	 * so a scan beside them finds slots that point past its snapshot,
	 * slots half rewritten, and counts that do not add up.  A read-write
	 * handle takes the writer lock; a read-only one holds it shared if
	 * it may open the lock file (its own shard).  Otherwise (someone
	 * else's shard, say a root-owned system cache) it verifies without,
	 * and a commit landing meanwhile can show up as a problem. */
	if (!(c->flags & SC_RDONLY) && !sc_unborn_still(c)) {
		if ((rc = sc_writer_begin(c, &s)) != 0)
			return rc;
		locked = 1;
	} else {
		shared_fd = sc_lock_shared(c);
		if ((rc = sc_snapshot(c, &s)) != 0) {
			if (shared_fd >= 0)
				close(shared_fd);
			return rc;
		}
	}

	memcpy(&h, s.map, sizeof(h));
	if ((rc = sc_header_check(&h, s.file_size)) != 0)
		problem(&v, 0, "header: %s", sc_strerror(rc));
	for (int i = 0; i < SC_META_SLOTS; i++) {
		uint64_t at = sc_meta_off(i);
		const char *why;

		memcpy(&m[i], s.map + at, sizeof(m[i]));
		ok[i] = 0;
		if (i == 2 && sc_meta_unused(&m[i]))
			continue; /* not used yet (a new shard, or one from before slot 2) */
		if (!sc_meta_valid(&m[i]))
			problem(&v, at, "meta slot %d: checksum mismatch", i);
		else if ((why = sc_meta_insane(&m[i], s.file_size)) != NULL)
			problem(&v, at, "meta slot %d: %s", i, why);
		else
			ok[i] = 1;
		for (int j = 0; j < i && ok[i]; j++)
			if (ok[j] && m[j].txnid == m[i].txnid)
				problem(&v, at, "meta slots %d and %d: both hold transaction id %llu", j,
					i, (unsigned long long)m[i].txnid);
		if (ok[i] && m[i].txnid == s.meta.txnid)
			meta_at = at;
	}
	if (c->legacy) {
		problem(&v, 8, "format version 1: read as empty; the next write rebuilds it as "
			       "version 2 with its entries");
		rc = SC_EVERSION;
		goto done;
	}
	refs = calloc(s.meta.blob_slots, sizeof(*refs));
	if (!refs) {
		rc = -ENOMEM;
		goto done;
	}
	for (uint64_t i = 0; i < s.meta.index_slots; i++) {
		struct sc_rec_view rv;
		const char *why = NULL;
		uint64_t hh, off, at = s.meta.index_off + i * sizeof(struct sc_disk_slot), id[2];

		sc_slot_read(&s, i, &hh, &off);
		if (off == SC_SLOT_EMPTY)
			continue;
		if (off == SC_SLOT_TOMB) {
			tombs++;
			continue;
		}
		checked++;
		if (sc_record_check(s.map, s.meta.data_end, off, 0, &rv, &why) != 0) {
			problem(&v, off, "entry %llu (index slot %llu at %llu): %s",
				(unsigned long long)off, (unsigned long long)i,
				(unsigned long long)at, why);
			continue;
		}
		if (sc_key_hash(rv.key, rv.r->key_len) != hh)
			problem(&v, at, "index slot %llu: hash does not match the key of entry %llu",
				(unsigned long long)i, (unsigned long long)off);
		sc_blob_id(rv.blob, (size_t)rv.r->blob_len, id);
		if (id[0] != rv.r->blob_id[0] || id[1] != rv.r->blob_id[1])
			problem(&v, rv.r->blob_off, "entry %llu (%.*s): blob %llu does not match its id",
				(unsigned long long)off, (int)rv.r->key_len, rv.key,
				(unsigned long long)rv.r->blob_off);
		entries++;
		live += rv.r->rec_len;
		add_range(&rg, off, rv.r->rec_len, "an entry record");
		if (rv.r->flags & SC_ENT_OWN_BLOB)
			add_range(&rg, rv.r->blob_off, extent(rv.r->blob_len), "a blob");
		logical += rv.r->blob_len;
		if (rv.r->flags & SC_ENT_OWN_BLOB) {
			live += extent(rv.r->blob_len);
			stored += rv.r->blob_len;
		} else {
			struct sc_disk_bslot b;
			uint64_t bs;
			if (sc_blob_find(&s, rv.r->blob_id, &bs, &b) != 0 || b.off != rv.r->blob_off)
				problem(&v, off, "entry %llu (%.*s): its blob is not in the blob index",
					(unsigned long long)off, (int)rv.r->key_len, rv.key);
			else
				refs[bs]++;
		}
	}
	for (uint64_t i = 0; i < s.meta.blob_slots; i++) {
		struct sc_disk_bslot b;
		uint64_t at = sc_bslot_at(&s, i);

		sc_bslot_read(&s, i, &b);
		if (b.off == SC_SLOT_EMPTY)
			continue;
		if (b.off == SC_SLOT_TOMB) {
			btombs++;
			continue;
		}
		blobs++;
		live += extent(sc_bslot_len(&b));
		stored += sc_bslot_len(&b);
		if (b.off % SC_ALIGN || b.off < SC_DATA_OFF || b.off > s.meta.data_end ||
		    extent(sc_bslot_len(&b)) > s.meta.data_end - b.off) {
			problem(&v, at, "blob slot %llu: blob outside the data or misaligned",
				(unsigned long long)i);
			continue;
		}
		add_range(&rg, b.off, extent(sc_bslot_len(&b)), "a blob");
		if (sc_bslot_refs(&b) != refs[i] &&
			 !(sc_bslot_refs(&b) == SC_BLOB_REFS_MAX && refs[i] >= SC_BLOB_REFS_MAX))
			problem(&v, at, "blob slot %llu: %llu references recorded, %llu entries hold it",
				(unsigned long long)i, (unsigned long long)sc_bslot_refs(&b),
				(unsigned long long)refs[i]);
	}
	if (entries != s.meta.entries || tombs != s.meta.tombstones || live != s.meta.live_bytes)
		problem(&v, meta_at,
			"meta counts (%llu entries, %llu tombstones, %llu live bytes) differ from "
			"the index (%llu, %llu, %llu)",
			(unsigned long long)s.meta.entries, (unsigned long long)s.meta.tombstones,
			(unsigned long long)s.meta.live_bytes, (unsigned long long)entries,
			(unsigned long long)tombs, (unsigned long long)live);
	if (blobs != s.meta.blobs || btombs != s.meta.blob_tombs || stored != s.meta.stored_bytes ||
	    logical != s.meta.logical_bytes)
		problem(&v, meta_at,
			"meta blob counts (%llu blobs, %llu tombstones, %llu stored, %llu logical "
			"bytes) differ from the indexes (%llu, %llu, %llu, %llu)",
			(unsigned long long)s.meta.blobs, (unsigned long long)s.meta.blob_tombs,
			(unsigned long long)s.meta.stored_bytes,
			(unsigned long long)s.meta.logical_bytes, (unsigned long long)blobs,
			(unsigned long long)btombs, (unsigned long long)stored,
			(unsigned long long)logical);
	/* The tables, the chunk's free tail, the free rings and extents. */
	add_range(&rg, s.meta.index_off, s.meta.index_slots * sizeof(struct sc_disk_slot),
		  "the key index");
	add_range(&rg, s.meta.blobs_off, s.meta.blob_slots * sizeof(struct sc_disk_bslot),
		  "the blob index");
	if (s.meta.chunk_off)
		add_range(&rg, s.meta.chunk_off + s.meta.chunk_used,
			  s.meta.chunk_len - s.meta.chunk_used, "the metadata chunk's free tail");
	if (s.meta.free_dir) {
		add_range(&rg, s.meta.free_dir, SC_NCLASSES * sizeof(struct sc_disk_fdir),
			  "the free directory");
		for (int k = 0; k < (int)SC_NCLASSES; k++) {
			struct sc_disk_fdir d;
			sc_wredo_read(&s, s.meta.free_dir + (uint64_t)k * sizeof(d), &d);
			if (d.ring == 0)
				continue;
			if (d.ring % SC_ALIGN || d.ring < SC_DATA_OFF || !d.cap || (d.cap & (d.cap - 1)) ||
			    d.cap > s.meta.data_end / sizeof(struct sc_disk_free) ||
			    d.ring > s.meta.data_end ||
			    d.cap * sizeof(struct sc_disk_free) > s.meta.data_end - d.ring ||
			    d.head > d.tail || d.tail - d.head > d.cap) {
				problem(&v, s.meta.free_dir + (uint64_t)k * sizeof(d),
					"free directory class %d: ring outside the data or counters "
					"out of range", k);
				continue;
			}
			add_range(&rg, d.ring, d.cap * sizeof(struct sc_disk_free), "a free ring");
			for (uint64_t i = d.head; i < d.tail; i++) {
				struct sc_disk_free f;
				memcpy(&f, s.map + d.ring + (i % d.cap) * sizeof(f), sizeof(f));
				if (f.off % SC_ALIGN || f.off < SC_DATA_OFF || f.off > s.meta.data_end ||
				    sc_class_size(k) > s.meta.data_end - f.off) {
					problem(&v, d.ring + (i % d.cap) * sizeof(f),
						"free extent of class %d outside the data", k);
					continue;
				}
				add_range(&rg, f.off, sc_class_size(k), "a free extent");
			}
		}
	}
	check_overlaps(&v, &rg);
	rc = 0;
done:
	free(rg.v);
	free(refs);
	if (locked)
		sc_writer_end(c);
	if (shared_fd >= 0)
		close(shared_fd);
	if (n_checked)
		*n_checked = checked;
	if (rc != 0)
		return rc;
	return v.bad ? SC_ECORRUPT : 0;
}

/* A lower shard's problems, told as such: its offsets are in its file. */
struct lower_ctx {
	struct vctx *v;
	int layer;
	const char *path;
};

static void lower_problem(void *arg, uint64_t off, const char *what)
{
	const struct lower_ctx *l = arg;

	problem(l->v, off, "lower shard %d (%s): %s", l->layer, l->path, what);
}

/*
 * The own shard, then each lower shard of the stack.  A lower shard that
 * cannot be used (refused, damaged, no longer a shard) misses on every
 * lookup without a word: this is where the user learns why.
 */
int sc_verify(sc_cache *c, sc_verify_fn fn, void *arg, uint64_t *n_checked)
{
	struct vctx v = { fn, arg, 0 };
	uint64_t checked = 0, one;
	int rc, n;

	if (n_checked)
		*n_checked = 0;
	rc = verify_shard(c, fn, arg, &checked);
	if (rc != 0 && rc != SC_ECORRUPT && rc != SC_EVERSION)
		return rc;
	n = sc_layers(c);
	for (int i = 1; i < n; i++) {
		struct lower_ctx l = { &v, i, c->layers[i - 1]->path };
		sc_cache *h = sc_layer_handle(c, i);
		int lrc;

		if (!h) {
			problem(&v, 0, "lower shard %d (%s): not used: %s", i, l.path,
				sc_strerror(atomic_load(&c->layers[i - 1]->err)));
			continue;
		}
		int was_bad = v.bad;

		one = 0;
		v.bad = 0;
		lrc = verify_shard(h, lower_problem, &l, &one);
		checked += one;
		/* Failed without a word: the shard could not be read at all
		 * (replaced by a damaged file, made writable by others). */
		if (lrc != 0 && !v.bad)
			problem(&v, 0, "lower shard %d (%s): not used: %s", i, l.path,
				sc_strerror(lrc));
		v.bad |= was_bad;
	}
	if (n_checked)
		*n_checked = checked;
	if (rc == SC_EVERSION && !v.bad)
		return rc;
	return rc != 0 || v.bad ? SC_ECORRUPT : 0;
}
