/*
 * put.c - the write path: put and remove, O(entry) each.
 *
 * Order of a put (docs/FORMAT.md has the full crash argument):
 *   1. append what is new past the committed data_end, where no reader
 *      looks: the blob (unless the shard already holds the same bytes), a
 *      metadata chunk when the current one is full, and a grown table when
 *      one must grow; write the entry record into the chunk's unused tail,
 *      which no committed slot points into;
 *   2. fdatasync (durable mode);
 *   3. write the meta slot for txnid+1: new data_end, counts, and the redo
 *      records "key slot i := (hash, entry)" and "blob slot j := ..." (the
 *      new blob's slot, the replaced blob's reference count) - this write
 *      is the commit;
 *   4. fdatasync (durable mode);
 *   5. apply the redo records to the slots in place.
 * A crash before 3 leaves garbage past data_end or in the chunk's unused
 * tail, overwritten by the next writer.  A crash between 3 and 5 is
 * invisible: readers apply the key slot's redo from the meta themselves,
 * only writers read the blob index, and the next writer applies both
 * before it commits anything else.  Step 2 of the next put makes step 5 of
 * this one durable before its meta (which drops these redos) is written.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sc_int.h"

/* A put compacts the shard when the dead bytes pass a quarter of the live
 * ones (and 2 MiB): what space reuse does not take back (entry records,
 * chunk tails, old tables, extents pinned for long) stays bounded. */
#define AUTO_COMPACT_MIN_DEAD ((uint64_t)2 << 20)

/* Undo the blocks of a failed append so that a full disk gets its space
 * back; nothing past data_end is ever read, so this is safe with readers. */
static void drop_tail(const struct sc_snap *s)
{
	if (sc_ftruncate(s->fd, s->file_size > s->meta.data_end ? s->file_size
								 : s->meta.data_end) != 0) {
		/* the garbage stays; the next writer overwrites it */
	}
}

static int after_commit(sc_cache *c, const struct sc_disk_meta *m)
{
	uint64_t max = atomic_load(&c->max_size);
	struct sc_snap s;
	int rc;

	if (!(max && m->data_end > max) &&
	    !(m->dead_bytes > AUTO_COMPACT_MIN_DEAD && m->dead_bytes > m->live_bytes / 4))
		return 0;
	pthread_rwlock_wrlock(&c->rw);
	rc = sc_refresh_locked(c, 0);
	if (rc == 0)
		sc_snap_fill_locked(c, &s);
	pthread_rwlock_unlock(&c->rw);
	if (rc != 0)
		return rc;
	return sc_rewrite(c, &s, NULL, NULL, max && m->data_end > max ? max / 4 * 3 : 0, NULL);
}

/* ------------------------------------------------------------------ */
/* One commit's changes to the tables only writers read */

/* The in-place writes of one commit to the blob index and the free
 * directory, which become the meta's redo records. */
struct wchange {
	int n;
	struct sc_disk_wredo c[SC_WREDO_MAX];
};

struct wtxn {
	sc_cache *c;
	const struct sc_snap *s;
	struct sc_disk_meta m;     /* the commit being made */
	struct wchange ch;
	struct sc_disk_fdir *newdir; /* a free directory this commit creates */
	uint64_t file_end;         /* the file's size as far as we know it */
	int rc;                    /* a failed write on the way */
};

/* Write @p len bytes at @p at (unless an earlier write failed). */
static void wt_write(struct wtxn *t, const void *p, size_t len, uint64_t at)
{
	if (t->rc == 0 && len) {
		t->rc = sc_write_full(t->s->fd, p, len, at);
		if (at + len > t->file_end)
			t->file_end = at + len;
	}
}

static void wc_get(const struct wtxn *t, uint64_t at, void *out)
{
	for (int i = t->ch.n; i-- > 0;) {
		if (t->ch.c[i].at == at) {
			memcpy(out, t->ch.c[i].v, sizeof(t->ch.c[i].v));
			return;
		}
	}
	sc_wredo_read(t->s, at, out);
}

static void wc_set(struct wtxn *t, uint64_t at, const void *v)
{
	int i;

	for (i = 0; i < t->ch.n && t->ch.c[i].at != at; i++)
		;
	if (i == t->ch.n) {
		if (t->ch.n == (int)SC_WREDO_MAX) {
			t->rc = SC_ECORRUPT; /* cannot happen: at most four slots change */
			return;
		}
		t->ch.n++;
	}
	t->ch.c[i].at = at;
	memcpy(t->ch.c[i].v, v, sizeof(t->ch.c[i].v));
}

static void wc_to_redo(struct wtxn *t)
{
	t->m.wredo_n = (uint64_t)t->ch.n;
	memset(t->m.wredo, 0, sizeof(t->m.wredo));
	memcpy(t->m.wredo, t->ch.c, (size_t)t->ch.n * sizeof(t->ch.c[0]));
}

static void bslot_get(const struct wtxn *t, uint64_t slot, struct sc_disk_bslot *b)
{
	wc_get(t, sc_bslot_at(t->s, slot), b);
}

static void bslot_set(struct wtxn *t, uint64_t slot, const struct sc_disk_bslot *b)
{
	wc_set(t, sc_bslot_at(t->s, slot), b);
}

static int all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Append @p len bytes at the end of the data, taking @p room bytes
 * (>= len, a multiple of SC_ALIGN).  Returns where. */
static uint64_t append_room(struct wtxn *t, const void *p, size_t len, uint64_t room)
{
	uint64_t at = t->m.data_end;

	wt_write(t, p, len, at);
	t->m.data_end += room;
	return at;
}

static uint64_t append(struct wtxn *t, const void *p, size_t len)
{
	return append_room(t, p, len, sc_align_up(len));
}

/* ------------------------------------------------------------------ */
/* Free blob extents: a ring per size class (docs/FORMAT.md, "Space reuse") */

/* Does [off, off + len) meet a table or the metadata chunk of the commit
 * being made?  A ring or a free extent that does is damage (a lying file):
 * writing there would overwrite what the commit keeps. */
static int meets_tables(const struct wtxn *t, uint64_t off, uint64_t len)
{
	const struct sc_disk_meta *m = &t->m;
	uint64_t a[4] = { m->index_off, m->blobs_off, m->free_dir, m->chunk_off };
	uint64_t n[4] = { m->index_slots * sizeof(struct sc_disk_slot),
			  m->blob_slots * sizeof(struct sc_disk_bslot),
			  m->free_dir ? SC_NCLASSES * sizeof(struct sc_disk_fdir) : 0,
			  m->chunk_off ? m->chunk_len : 0 };

	for (int i = 0; i < 4; i++)
		if (n[i] && off < a[i] + n[i] && a[i] < off + len)
			return 1;
	return 0;
}

static int fdir_valid(const struct wtxn *t, const struct sc_disk_fdir *d)
{
	const uint64_t end = t->s->meta.data_end;

	if (d->ring == 0)
		return d->cap == 0 && d->head == 0 && d->tail == 0;
	return d->ring >= SC_DATA_OFF && d->ring % SC_ALIGN == 0 && d->cap &&
	       !(d->cap & (d->cap - 1)) && d->cap <= end / sizeof(struct sc_disk_free) &&
	       d->ring <= end && d->cap * sizeof(struct sc_disk_free) <= end - d->ring &&
	       d->head <= d->tail && d->tail - d->head <= d->cap &&
	       !meets_tables(t, d->ring, d->cap * sizeof(struct sc_disk_free));
}

static void fdir_get(const struct wtxn *t, int k, struct sc_disk_fdir *d)
{
	if (t->newdir)
		*d = t->newdir[k];
	else if (t->m.free_dir)
		wc_get(t, t->m.free_dir + (uint64_t)k * sizeof(*d), d);
	else
		memset(d, 0, sizeof(*d));
	if (!fdir_valid(t, d))
		memset(d, 0, sizeof(*d)); /* damage: what it held is lost space */
}

static void fdir_set(struct wtxn *t, int k, const struct sc_disk_fdir *d)
{
	if (t->newdir)
		t->newdir[k] = *d;
	else
		wc_set(t, t->m.free_dir + (uint64_t)k * sizeof(*d), d);
}

/* The oldest free extent of class @p k, if no reader can still use it and
 * its freeing commit is on disk (else a power loss could bring back a
 * commit that still uses the bytes we are about to write). */
static int extent_take(struct wtxn *t, int k, uint64_t *off)
{
	struct sc_disk_fdir d;
	struct sc_disk_free f;
	uint64_t size = sc_class_size(k), live = t->m.live_bytes;

	fdir_get(t, k, &d);
	if (d.head == d.tail)
		return 0;
	memcpy(&f, t->s->map + d.ring + (d.head % d.cap) * sizeof(f), sizeof(f));
	if (f.off % SC_ALIGN || f.off < SC_DATA_OFF || f.off > t->s->meta.data_end ||
	    size > t->s->meta.data_end - f.off || f.freed_txn > t->s->meta.txnid ||
	    meets_tables(t, f.off, size)) {
		d.head++; /* damage: skip it */
		fdir_set(t, k, &d);
		return 0;
	}
	if (f.freed_txn > t->m.durable_txn) {
		/* A durable writer syncs now; a no-sync one once enough is
		 * waiting for it, so that the file stops growing. */
		if ((t->c->flags & SC_NOSYNC) &&
		    t->m.unsynced_free < ((uint64_t)1 << 20 > live / 16 ? (uint64_t)1 << 20 : live / 16))
			return 0;
		if (sc_fdatasync(t->s->fd) != 0)
			return 0;
		t->m.durable_txn = t->s->meta.txnid;
		t->m.unsynced_free = 0;
	}
	if (!sc_unpinned(t->c, f.freed_txn))
		return 0;
	d.head++;
	fdir_set(t, k, &d);
	*off = f.off;
	t->m.dead_bytes -= t->m.dead_bytes >= size ? size : t->m.dead_bytes;
	return 1;
}

/* Give back the extent of a blob of @p len bytes at @p off. */
static void extent_give(struct wtxn *t, uint64_t off, uint64_t len)
{
	struct sc_disk_fdir d;
	struct sc_disk_free f = { off, sc_next_txnid(t->s) }; /* this commit's id */
	int k = sc_class_of(len);

	if (k < 0)
		return;
	if (!t->m.free_dir && !t->newdir &&
	    !(t->newdir = calloc(SC_NCLASSES, sizeof(*t->newdir))))
		return; /* no memory: the extent stays dead */
	fdir_get(t, k, &d);
	if (d.ring && d.tail - d.head < d.cap) {
		wt_write(t, &f, sizeof(f), d.ring + (d.tail % d.cap) * sizeof(f));
		d.tail++;
	} else {
		/* A bigger ring (the old one becomes dead space). */
		uint64_t n = d.tail - d.head, cap = d.cap ? d.cap * 2 : 16;
		struct sc_disk_free *ring = calloc(cap, sizeof(*ring));
		if (!ring) {
			t->rc = -ENOMEM;
			return;
		}
		for (uint64_t i = 0; i < n; i++)
			memcpy(&ring[i], t->s->map + d.ring + ((d.head + i) % d.cap) * sizeof(f),
			       sizeof(f));
		ring[n] = f;
		if (d.ring)
			t->m.dead_bytes += d.cap * sizeof(f);
		d.ring = append(t, ring, (size_t)(cap * sizeof(*ring)));
		d.cap = cap;
		d.head = 0;
		d.tail = n + 1;
		free(ring);
	}
	fdir_set(t, k, &d);
	t->m.unsynced_free += sc_class_size(k);
}

/* Room for a new blob: a free extent of its class, or the end of the data. */
static uint64_t blob_place(struct wtxn *t, const void *blob, size_t len)
{
	int k = sc_class_of(len);
	uint64_t off;

	if (k < 0)
		return t->m.data_end; /* empty: no bytes anywhere */
	t->m.live_bytes += sc_class_size(k);
	if (extent_take(t, k, &off)) {
		wt_write(t, blob, len, off);
		return off;
	}
	return append_room(t, blob, len, sc_class_size(k));
}

/* Does the extent an entry names still hold that entry's blob?  Only then
 * is it given back: an entry whose bytes do not match its id (a damaged or
 * lying file) may name bytes that belong to another entry. */
static int extent_is(const struct wtxn *t, const struct sc_disk_entry *e)
{
	uint64_t id[2], end = t->s->meta.data_end;

	if (e->blob_off % SC_ALIGN || e->blob_off < SC_DATA_OFF || e->blob_off > end ||
	    sc_class_size(sc_class_of(e->blob_len)) > end - e->blob_off)
		return 0;
	sc_blob_id(t->s->map + e->blob_off, (size_t)e->blob_len, id);
	return id[0] == e->blob_id[0] && id[1] == e->blob_id[1];
}

/* The blob an entry gives up: its reference count drops, and at zero its
 * extent is free. */
static void blob_release(struct wtxn *t, const struct sc_disk_entry *old)
{
	struct sc_disk_bslot b;
	uint64_t slot, refs;
	int k = sc_class_of(old->blob_len);
	uint64_t bytes = k < 0 ? 0 : sc_class_size(k);

	if (!(old->flags & SC_ENT_OWN_BLOB)) {
		if (sc_blob_find(t->s, old->blob_id, &slot, &b) != 0)
			return; /* a damaged table: the bytes stay until a compaction */
		bslot_get(t, slot, &b);
		if (b.off != old->blob_off)
			return;
		refs = sc_bslot_refs(&b);
		if (refs == SC_BLOB_REFS_MAX)
			return; /* a full count never drops: the blob stays */
		if (refs > 1) {
			b.info = ((refs - 1) << SC_BLOB_LEN_BITS) | sc_bslot_len(&b);
			bslot_set(t, slot, &b);
			return;
		}
		b.off = SC_SLOT_TOMB;
		bslot_set(t, slot, &b);
		if (t->m.blobs > 0)
			t->m.blobs--;
		t->m.blob_tombs++;
	}
	t->m.stored_bytes -= t->m.stored_bytes >= old->blob_len ? old->blob_len : t->m.stored_bytes;
	t->m.live_bytes -= t->m.live_bytes >= bytes ? bytes : t->m.live_bytes;
	t->m.dead_bytes += bytes;
	if (bytes && extent_is(t, old))
		extent_give(t, old->blob_off, old->blob_len);
}

/* An entry gives up its record. */
static void entry_release(struct sc_disk_meta *m, const struct sc_disk_entry *old)
{
	m->live_bytes -= m->live_bytes >= old->rec_len ? old->rec_len : m->live_bytes;
	m->dead_bytes += old->rec_len;
	m->logical_bytes -= m->logical_bytes >= old->blob_len ? old->blob_len : m->logical_bytes;
}

/* Last writes before the commit: a free directory made by this commit,
 * the redo records, the file's size. */
static int wtxn_seal(struct wtxn *t)
{
	if (t->newdir) {
		t->m.free_dir = append(t, t->newdir, SC_NCLASSES * sizeof(*t->newdir));
		free(t->newdir);
		t->newdir = NULL;
	}
	wc_to_redo(t);
	/* A new chunk may end past the last byte written: readers take a
	 * data_end past the file's end for damage. */
	if (t->rc == 0 && t->m.data_end > t->file_end)
		t->rc = sc_ftruncate(t->s->fd, t->m.data_end);
	return t->rc;
}

/* ------------------------------------------------------------------ */

struct put_req {
	struct sc_disk_entry r;   /* all but blob_off, the chunk place and the checksum */
	struct iovec str[4];      /* key, tag, exe_id, exe_path */
	const void *blob;
	size_t len;
	uint64_t hash;            /* of the key */
};

static int put_locked(sc_cache *c, struct sc_snap *s, struct put_req *q)
{
	static const unsigned char zeros[SC_ENT_ALIGN];
	struct wtxn t = { .c = c, .s = s, .m = s->meta, .file_end = s->file_size };
	struct sc_disk_meta *m = &t.m;
	struct sc_disk_entry *r = &q->r;
	struct sc_rec_view old;
	struct sc_disk_bslot b;
	struct sc_disk_slot *ktable = NULL;
	struct sc_disk_bslot *btable = NULL;
	struct iovec iov[6];
	uint64_t kslot, bslot = 0, at, strings, kslots = 0, bslots = 0;
	int rc, replace, share = 0, indexed = 1, kgrow, bgrow, found;

	rc = sc_probe(s, (const char *)q->str[0].iov_base, q->str[0].iov_len, q->hash, &kslot, &old);
	replace = rc == 0;
	if (!replace && (rc = sc_insertion_slot(s, q->hash, &kslot)) != 0 && rc != SC_ECORRUPT)
		return rc;
	kgrow = !replace && (rc == SC_ECORRUPT ||
			     (m->entries + m->tombstones + 1) * 10 > m->index_slots * 7);

	/* The blob: the same bytes already stored are shared. */
	found = sc_blob_find(s, r->blob_id, &bslot, &b);
	if (found == 0) {
		uint64_t blen = sc_bslot_len(&b);
		share = blen == q->len && b.off % SC_ALIGN == 0 && b.off >= SC_DATA_OFF &&
			b.off <= m->data_end && blen <= m->data_end - b.off &&
			sc_bslot_refs(&b) < SC_BLOB_REFS_MAX &&
			memcmp(s->map + b.off, q->blob, q->len) == 0;
		indexed = share; /* same id, other bytes (or a full count): keep apart */
	}
	bgrow = found == SC_ECORRUPT ||
		(found != 0 && (m->blobs + m->blob_tombs + 1) * 10 > m->blob_slots * 7);
	if (share) {
		r->blob_off = b.off;
		b.info = ((sc_bslot_refs(&b) + 1) << SC_BLOB_LEN_BITS) | sc_bslot_len(&b);
		bslot_set(&t, bslot, &b);
	} else {
		r->blob_off = blob_place(&t, q->blob, q->len);
		m->stored_bytes += q->len;
		if (indexed) {
			b = (struct sc_disk_bslot){ r->blob_id[0], r->blob_id[1], r->blob_off,
						    ((uint64_t)1 << SC_BLOB_LEN_BITS) | q->len };
			if (!bgrow) {
				struct sc_disk_bslot was;
				bslot_get(&t, bslot, &was);
				if (was.off == SC_SLOT_TOMB && m->blob_tombs > 0)
					m->blob_tombs--;
				bslot_set(&t, bslot, &b);
			}
			m->blobs++;
		} else {
			r->flags |= SC_ENT_OWN_BLOB;
		}
	}
	if (replace) {
		entry_release(m, old.r);
		if (!bgrow)
			blob_release(&t, old.r);
	} else {
		m->entries++;
	}
	m->logical_bytes += q->len;

	/* The entry record, into the current metadata chunk or a new one.  A
	 * chunk's free tail is zeros (a new chunk is written as zeros): one
	 * that is not (a killed put's record, or a meta that lies) is left,
	 * so that a put never writes over bytes it cannot account for. */
	strings = q->str[0].iov_len + q->str[1].iov_len + q->str[2].iov_len + q->str[3].iov_len;
	r->rec_len = (uint32_t)sc_ent_align(sizeof(*r) + strings);
	if (!m->chunk_off || m->chunk_len - m->chunk_used < r->rec_len ||
	    !all_zero(s->map + m->chunk_off + m->chunk_used, r->rec_len)) {
		static const unsigned char zchunk[SC_CHUNK];
		if (m->chunk_off)
			m->dead_bytes += m->chunk_len - m->chunk_used;
		m->chunk_len = sc_align_up(r->rec_len) > SC_CHUNK ? sc_align_up(r->rec_len) : SC_CHUNK;
		m->chunk_off = append_room(&t, NULL, 0, m->chunk_len);
		m->chunk_used = 0;
		for (uint64_t z = 0; z < m->chunk_len; z += SC_CHUNK)
			wt_write(&t, zchunk, (size_t)(m->chunk_len - z < SC_CHUNK ? m->chunk_len - z
										   : SC_CHUNK),
				 m->chunk_off + z);
	}
	at = m->chunk_off + m->chunk_used;
	m->chunk_used += r->rec_len;
	m->live_bytes += r->rec_len;
	r->checksum = sc_record_checksum(r, q->str, 4);
	iov[0] = (struct iovec){ r, sizeof(*r) };
	memcpy(iov + 1, q->str, sizeof(q->str));
	iov[5] = (struct iovec){ (void *)zeros, r->rec_len - sizeof(*r) - strings };
	if (t.rc == 0) {
		t.rc = sc_writev_full(s->fd, iov, 6, at);
		if (at + r->rec_len > t.file_end)
			t.file_end = at + r->rec_len;
	}

	/* The key index: one slot, or a bigger table. */
	if (kgrow) {
		if ((rc = sc_table_grow(s, q->hash, at, &ktable, &kslots)) != 0)
			goto fail;
		m->dead_bytes += m->index_slots * sizeof(*ktable);
		m->index_off = append(&t, ktable, (size_t)(kslots * sizeof(*ktable)));
		m->index_slots = kslots;
		m->tombstones = 0;
		m->redo_slot = SC_NO_REDO;
		m->redo_hash = m->redo_off = 0;
	} else {
		uint64_t h, o;
		sc_slot_read(s, kslot, &h, &o);
		if (!replace && o == SC_SLOT_TOMB && m->tombstones > 0)
			m->tombstones--;
		m->redo_slot = kslot;
		m->redo_hash = q->hash;
		m->redo_off = at;
	}

	/* The blob index: redo records, or a bigger table with the changes. */
	if (bgrow) {
		if ((rc = sc_btable_grow(s, 1, &btable, &bslots)) != 0)
			goto fail;
		if (indexed && !share)
			sc_btable_insert(btable, bslots, &b);
		if (replace && !(old.r->flags & SC_ENT_OWN_BLOB)) {
			uint64_t i = sc_btable_locate(btable, bslots, old.r->blob_id);
			struct sc_disk_bslot *ob = &btable[i];
			uint64_t refs = sc_bslot_refs(ob);
			int k = sc_class_of(old.r->blob_len);
			uint64_t bytes = k < 0 ? 0 : sc_class_size(k);
			if (ob->off == old.r->blob_off && refs != SC_BLOB_REFS_MAX) {
				if (refs > 1) {
					ob->info = ((refs - 1) << SC_BLOB_LEN_BITS) | sc_bslot_len(ob);
				} else {
					sc_btable_delete(btable, bslots, i);
					if (m->blobs > 0)
						m->blobs--;
					m->stored_bytes -= m->stored_bytes >= old.r->blob_len
								   ? old.r->blob_len : m->stored_bytes;
					m->live_bytes -= m->live_bytes >= bytes ? bytes : m->live_bytes;
					m->dead_bytes += bytes;
					if (bytes && extent_is(&t, old.r))
						extent_give(&t, old.r->blob_off, old.r->blob_len);
				}
			}
		} else if (replace) {
			blob_release(&t, old.r); /* its own blob: not in the table */
		}
		m->dead_bytes += m->blob_slots * sizeof(*btable);
		m->blobs_off = append(&t, btable, (size_t)(bslots * sizeof(*btable)));
		m->blob_slots = bslots;
		m->blob_tombs = 0;
		/* Its slots' changes are in the new table: drop them from the
		 * redo records (only free directory entries stay). */
		{
			int n = 0;
			for (int i = 0; i < t.ch.n; i++) {
				uint64_t a = t.ch.c[i].at;
				if (a >= s->meta.blobs_off &&
				    a < s->meta.blobs_off + s->meta.blob_slots * sizeof(*btable))
					continue;
				t.ch.c[n++] = t.ch.c[i];
			}
			t.ch.n = n;
		}
	}

	if ((rc = wtxn_seal(&t)) != 0)
		goto fail;
	if ((rc = sc_commit_meta(c, s, m)) != 0)
		goto fail;
	s->meta = *m;
	(void)sc_apply_redo(s);
	free(ktable);
	free(btable);
	return 0;
fail:
	drop_tail(s);
	free(t.newdir);
	free(ktable);
	free(btable);
	return rc;
}

int sc_put_ex(sc_cache *c, const char *key, const void *blob, size_t len,
	      const sc_put_opts *opts)
{
	struct put_req q;
	struct sc_disk_entry *r = &q.r;
	struct sc_snap s;
	struct stat st;
	char exe_id[SC_IDENTITY_MAX];
	const char *tag, *id, *exe_path;
	size_t key_len, tag_len, id_len, exe_path_len;
	int rc;

	if (!c || !key || (!blob && len))
		return -EINVAL;
	if (c->disabled)
		return SC_EDISABLED;
	if (c->flags & SC_RDONLY)
		return SC_EREADONLY;
	key_len = strlen(key);
	if (key_len == 0)
		return -EINVAL;
	if (key_len > SC_MAX_KEY || len > SC_MAX_BLOB)
		return SC_ETOOBIG;
	tag = opts && opts->tag ? opts->tag : c->tag ? c->tag : "";
	tag_len = strlen(tag);
	if (opts && opts->exe_path) {
		if ((rc = sc_file_identity(opts->exe_path, exe_id, sizeof(exe_id))) != 0)
			return rc;
		id = exe_id;
		id_len = strlen(id);
		exe_path = opts->exe_path;
		exe_path_len = strlen(exe_path);
	} else {
		id = sc_self_identity(&id_len);
		exe_path = sc_self_path(&exe_path_len);
	}
	if (tag_len > UINT16_MAX || exe_path_len > UINT16_MAX || id_len > UINT16_MAX)
		return SC_ETOOBIG;

	memset(&q, 0, sizeof(q));
	r->magic = SC_ENT_MAGIC;
	if (opts && opts->no_source) {
		r->flags |= SC_ENT_NO_SOURCE;
		/* A key that is a cache path, not its source (the mount's .pyc):
		 * the source's hash and size still make the entry portable
		 * (docs/REMOTE.md), while freshness stays the client's. */
		if (opts->source_bytes) {
			r->src_size = (uint64_t)opts->source_len;
			sc_blob_id(opts->source_bytes, opts->source_len, r->src_hash);
			r->flags |= SC_ENT_SRC_HASH;
		}
	} else {
		const struct stat *src = opts && opts->source ? opts->source : NULL;
		if (!src) {
			if (stat(key, &st) != 0)
				return -errno;
			src = &st;
		}
		r->src_mtime_sec = (int64_t)src->st_mtim.tv_sec;
		r->src_mtime_nsec = (uint32_t)src->st_mtim.tv_nsec;
		r->src_size = (uint64_t)src->st_size;
		/* The bytes compiled, hashed: given, or read again if the file
		 * still has the stamp it had (else no hash: a mtime change
		 * then makes the entry stale, as without one). */
		if (opts && opts->source_bytes) {
			if (opts->source_len == (size_t)src->st_size) {
				sc_blob_id(opts->source_bytes, opts->source_len, r->src_hash);
				r->flags |= SC_ENT_SRC_HASH;
			}
		} else if (S_ISREG(src->st_mode) &&
			   sc_source_hash(key, src, r->src_size, r->src_hash) == 0) {
			r->flags |= SC_ENT_SRC_HASH;
		}
	}
	{
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		r->cached_sec = (int64_t)now.tv_sec;
		r->cached_nsec = (uint32_t)now.tv_nsec;
	}
	r->key_len = (uint16_t)key_len;
	r->tag_len = (uint16_t)tag_len;
	r->exe_id_len = (uint16_t)id_len;
	r->exe_path_len = (uint16_t)exe_path_len;
	r->blob_len = len;
	sc_blob_id(blob, len, r->blob_id);
	q.str[0] = (struct iovec){ (void *)key, key_len };
	q.str[1] = (struct iovec){ (void *)tag, tag_len };
	q.str[2] = (struct iovec){ (void *)id, id_len };
	q.str[3] = (struct iovec){ (void *)exe_path, exe_path_len };
	q.blob = blob;
	q.len = len;
	q.hash = sc_key_hash(key, key_len);

	if ((rc = sc_writer_begin(c, &s)) != 0)
		return rc;
	rc = put_locked(c, &s, &q);
	if (rc == 0) {
		atomic_fetch_add_explicit(&c->n_puts, 1, memory_order_relaxed);
		(void)after_commit(c, &s.meta);
	}
	sc_writer_end(c);
	return rc;
}

int sc_put(sc_cache *c, const char *key, const void *blob, size_t len)
{
	return sc_put_ex(c, key, blob, len, NULL);
}

/* A whiteout for @p key (docs/LAYERS.md): a record without source or
 * bytes, written by this process, that hides the key in the lower shards. */
static void whiteout_req(sc_cache *c, const char *key, size_t key_len, struct put_req *q)
{
	size_t id_len, exe_len;
	const char *id = sc_self_identity(&id_len), *exe = sc_self_path(&exe_len);
	const char *tag = c->tag ? c->tag : "";
	struct timespec now;

	memset(q, 0, sizeof(*q));
	q->r.magic = SC_ENT_MAGIC;
	q->r.flags = SC_ENT_NO_SOURCE | SC_ENT_WHITEOUT;
	clock_gettime(CLOCK_REALTIME, &now);
	q->r.cached_sec = (int64_t)now.tv_sec;
	q->r.cached_nsec = (uint32_t)now.tv_nsec;
	q->r.key_len = (uint16_t)key_len;
	q->r.tag_len = (uint16_t)c->tag_len;
	q->r.exe_id_len = (uint16_t)id_len;
	q->r.exe_path_len = (uint16_t)exe_len;
	sc_blob_id("", 0, q->r.blob_id);
	q->str[0] = (struct iovec){ (void *)key, key_len };
	q->str[1] = (struct iovec){ (void *)tag, c->tag_len };
	q->str[2] = (struct iovec){ (void *)id, id_len };
	q->str[3] = (struct iovec){ (void *)exe, exe_len };
	q->blob = "";
	q->len = 0;
	q->hash = sc_key_hash(key, key_len);
}

/*
 * Remove @p key from the union: the own shard's entry goes (a tombstone),
 * or, when a lower shard shows the key beneath, a whiteout takes its
 * place, since lower shards are never written.  With @p check, the
 * version the union shows must be (@p shard_id, @p offset).
 */
static int remove_key(sc_cache *c, const char *key, int check, uint64_t shard_id,
		      uint64_t offset)
{
	struct wtxn t = { .c = c };
	struct sc_snap s;
	struct sc_rec_view v;
	struct put_req q;
	uint64_t slot, hash, lshard = 0, loff = 0, vshard, voff;
	size_t key_len;
	int rc, found, lower;

	if (!c || !key)
		return -EINVAL;
	key_len = strlen(key);
	if (key_len == 0 || key_len > SC_MAX_KEY)
		return SC_ENOTFOUND;
	hash = sc_key_hash(key, key_len);
	/* Before the writer lock: nothing we lock writes the lower shards. */
	lower = c->disabled ? 0 : sc_lower_shows(c, key, &lshard, &loff);
	/* No file yet and nothing below to hide: nothing to remove, and no
	 * shard is made for it. */
	if (!lower && !c->disabled && !(c->flags & SC_RDONLY) && sc_unborn_still(c))
		return SC_ENOTFOUND;
	if ((rc = sc_writer_begin(c, &s)) != 0)
		return rc;
	rc = sc_probe(&s, key, key_len, hash, &slot, &v);
	if (rc == -EAGAIN) /* only a damaged slot points past the end */
		rc = SC_ENOTFOUND;
	if (rc != 0 && rc != SC_ENOTFOUND)
		goto out;
	found = rc == 0;
	/* The version the union shows: the own entry, else the lower one. */
	if (found && !(v.r->flags & SC_ENT_WHITEOUT)) {
		vshard = s.shard_id;
		voff = (uint64_t)((const unsigned char *)v.r - s.map);
	} else if (!found && lower) {
		vshard = lshard;
		voff = loff;
	} else {
		rc = SC_ENOTFOUND; /* absent, or already hidden by a whiteout */
		goto out;
	}
	if (check && (vshard != shard_id || voff != offset)) {
		rc = SC_ECHANGED;
		goto out;
	}
	if (lower) {
		whiteout_req(c, key, key_len, &q);
		if ((rc = put_locked(c, &s, &q)) == 0)
			atomic_fetch_add_explicit(&c->n_removes, 1, memory_order_relaxed);
		goto out;
	}
	t.s = &s;
	t.m = s.meta;
	t.file_end = s.file_size;
	if (t.m.entries > 0)
		t.m.entries--;
	t.m.tombstones++;
	entry_release(&t.m, v.r);
	blob_release(&t, v.r);
	t.m.redo_slot = slot;
	t.m.redo_hash = hash;
	t.m.redo_off = SC_SLOT_TOMB;
	if ((rc = wtxn_seal(&t)) != 0 || (rc = sc_commit_meta(c, &s, &t.m)) != 0) {
		free(t.newdir);
		drop_tail(&s);
		goto out;
	}
	s.meta = t.m;
	(void)sc_apply_redo(&s);
	atomic_fetch_add_explicit(&c->n_removes, 1, memory_order_relaxed);
out:
	sc_writer_end(c);
	return rc;
}

int sc_remove(sc_cache *c, const char *key)
{
	return remove_key(c, key, 0, 0, 0);
}

int sc_remove_if(sc_cache *c, const char *key, uint64_t shard_id, uint64_t offset)
{
	return remove_key(c, key, 1, shard_id, offset);
}
