/*
 * rewrite.c - compaction, clear, eviction and the upgrade of a version 1
 * shard: the operations that write a whole new shard.
 *
 * The live entries are collected (from this file's index, or from a v1
 * file's), their blobs written once each into a temp file in the same
 * directory, then the entry records packed together, then both indexes;
 * the file is fsynced and renamed over the shard, and the directory
 * fsynced.  Only then is the old file marked retired (a meta commit with
 * SC_META_RETIRED), which sends readers that still map it to the new file.
 * A crash before the rename leaves the old shard untouched plus a temp
 * file, removed by the next writer; a crash after it leaves the new,
 * complete shard in place, and writers (and readers, within a second)
 * notice the path moved on.  These operations are O(shard) by nature; puts
 * never wait for them except when a size limit or a mostly-dead shard
 * triggers one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sc_int.h"

static int newest_first(const void *a, const void *b)
{
	const sc_entry_info *x = a, *y = b;
	if (x->cached_sec != y->cached_sec)
		return x->cached_sec < y->cached_sec ? 1 : -1;
	if (x->cached_nsec != y->cached_nsec)
		return x->cached_nsec < y->cached_nsec ? 1 : -1;
	return 0;
}

int sc_live_add(struct sc_live *l, const sc_entry_info *e)
{
	if (l->n == l->cap) {
		uint64_t cap = l->cap ? l->cap * 2 : 64;
		sc_entry_info *bigger = realloc(l->e, cap * sizeof(*bigger));
		if (!bigger)
			return -ENOMEM;
		l->e = bigger;
		l->cap = cap;
	}
	l->e[l->n++] = *e;
	return 0;
}

/* The live, sound entries of a v2 snapshot that @p keep wants. */
static int collect(const struct sc_snap *s, sc_keep_fn keep, void *arg, struct sc_live *l,
		   uint64_t *dropped)
{
	for (uint64_t i = 0; i < s->meta.index_slots; i++) {
		struct sc_rec_view v;
		sc_entry_info e;
		uint64_t hh, off, id[2];
		int rc;

		sc_slot_read(s, i, &hh, &off);
		if (off == SC_SLOT_EMPTY || off == SC_SLOT_TOMB)
			continue;
		/* Never carry a damaged entry into the new file. */
		if (sc_record_view(s->map, s->meta.data_end, off, 0, &v) != 0 ||
		    sc_key_hash(v.key, v.r->key_len) != hh) {
			(*dropped)++;
			continue;
		}
		sc_blob_id(v.blob, (size_t)v.r->blob_len, id);
		if (id[0] != v.r->blob_id[0] || id[1] != v.r->blob_id[1]) {
			(*dropped)++;
			continue;
		}
		sc_fill_info(s, off, &v, &e);
		if (keep && !keep(&e, arg)) {
			(*dropped)++;
			continue;
		}
		if ((rc = sc_live_add(l, &e)) != 0)
			return rc;
	}
	return 0;
}

/* Write the new shard for @p l's entries to a temp file beside the path,
 * durably, and rename it over the shard. */
static int write_shard(sc_cache *c, const struct sc_live *l)
{
	static const unsigned char zeros[SC_ALIGN];
	struct sc_disk_meta m;
	struct sc_disk_slot *kt = NULL;
	struct sc_disk_bslot *bt = NULL;
	const void **first = NULL;
	uint64_t *boff = NULL, *own = NULL;
	unsigned char page[SC_DATA_OFF], *ents = NULL;
	char tmp[PATH_MAX];
	uint64_t kslots = sc_table_slots(l->n), bslots = sc_btable_slots(l->n), pos = SC_DATA_OFF;
	uint64_t ent_bytes = 0, at, room;
	int fd = -1, rc;

	tmp[0] = '\0';
	memset(&m, 0, sizeof(m));
	kt = calloc(kslots, sizeof(*kt));
	bt = calloc(bslots, sizeof(*bt));
	first = calloc(bslots, sizeof(*first));
	boff = calloc(l->n + 1, sizeof(*boff));
	own = calloc(l->n + 1, sizeof(*own));
	if (!kt || !bt || !first || !boff || !own) {
		rc = -ENOMEM;
		goto out;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", c->path) >= (int)sizeof(tmp)) {
		tmp[0] = '\0';
		rc = -ENAMETOOLONG;
		goto out;
	}
	if ((fd = sc_mkostemp(tmp)) < 0) {
		rc = fd;
		tmp[0] = '\0';
		goto out;
	}

	/* Blobs, each distinct one once. */
	for (uint64_t i = 0; i < l->n; i++) {
		const sc_entry_info *e = &l->e[i];
		uint64_t j = sc_btable_locate(bt, bslots, e->blob_id);
		struct sc_disk_bslot *b = &bt[j];

		if (b->off != SC_SLOT_EMPTY && sc_bslot_len(b) == e->blob_size &&
		    sc_bslot_refs(b) < SC_BLOB_REFS_MAX &&
		    memcmp(first[j], e->blob, (size_t)e->blob_size) == 0) {
			b->info += (uint64_t)1 << SC_BLOB_LEN_BITS;
			boff[i] = b->off;
			continue;
		}
		boff[i] = pos;
		if (e->blob_size &&
		    (rc = sc_write_full(fd, e->blob, (size_t)e->blob_size, pos)) != 0)
			goto out;
		/* Each blob in an extent of its size class, as a put makes
		 * them: freed, it fits the next blob of its class. */
		room = e->blob_size ? sc_class_size(sc_class_of(e->blob_size)) : 0;
		pos += room;
		m.stored_bytes += e->blob_size;
		m.live_bytes += room;
		if (b->off == SC_SLOT_EMPTY) {
			*b = (struct sc_disk_bslot){ e->blob_id[0], e->blob_id[1], boff[i],
						     ((uint64_t)1 << SC_BLOB_LEN_BITS) | e->blob_size };
			first[j] = e->blob;
			m.blobs++;
		} else {
			own[i] = 1; /* same id, other bytes: kept apart */
		}
	}

	/* Entry records, packed. */
	for (uint64_t i = 0; i < l->n; i++)
		ent_bytes += sc_ent_align(sizeof(struct sc_disk_entry) + l->e[i].key_len +
					  l->e[i].tag_len + l->e[i].exe_id_len + l->e[i].exe_path_len);
	if (!(ents = calloc(1, (size_t)sc_align_up(ent_bytes) + 1))) {
		rc = -ENOMEM;
		goto out;
	}
	at = 0;
	for (uint64_t i = 0; i < l->n; i++) {
		const sc_entry_info *e = &l->e[i];
		struct sc_disk_entry r;
		struct iovec str[4] = {
			{ (void *)e->key, e->key_len }, { (void *)e->tag, e->tag_len },
			{ (void *)e->exe_id, e->exe_id_len }, { (void *)e->exe_path, e->exe_path_len },
		};
		unsigned char *p = ents + at;

		memset(&r, 0, sizeof(r));
		r.magic = SC_ENT_MAGIC;
		r.flags = (e->has_source ? 0 : SC_ENT_NO_SOURCE) |
			  (e->has_source && e->has_source_hash ? SC_ENT_SRC_HASH : 0) |
			  (own[i] ? SC_ENT_OWN_BLOB : 0);
		r.key_len = (uint16_t)e->key_len;
		r.tag_len = (uint16_t)e->tag_len;
		r.exe_id_len = (uint16_t)e->exe_id_len;
		r.exe_path_len = (uint16_t)e->exe_path_len;
		r.rec_len = (uint32_t)sc_ent_align(sizeof(r) + e->key_len + e->tag_len +
						   e->exe_id_len + e->exe_path_len);
		r.src_mtime_sec = e->source_mtime_sec;
		r.src_mtime_nsec = e->source_mtime_nsec;
		r.src_size = e->source_size;
		r.cached_sec = e->cached_sec;
		r.cached_nsec = e->cached_nsec;
		r.blob_off = boff[i];
		r.blob_len = e->blob_size;
		memcpy(r.blob_id, e->blob_id, sizeof(r.blob_id));
		if (r.flags & SC_ENT_SRC_HASH)
			memcpy(r.src_hash, e->source_hash, sizeof(r.src_hash));
		r.checksum = sc_record_checksum(&r, str, 4);
		memcpy(p, &r, sizeof(r));
		p += sizeof(r);
		for (int k = 0; k < 4; k++) {
			memcpy(p, str[k].iov_base, str[k].iov_len);
			p += str[k].iov_len;
		}
		sc_table_insert(kt, kslots, sc_key_hash(e->key, e->key_len), pos + at);
		at += r.rec_len;
		m.live_bytes += r.rec_len;
		m.logical_bytes += e->blob_size;
	}
	if (ent_bytes && (rc = sc_write_full(fd, ents, (size_t)sc_align_up(ent_bytes), pos)) != 0)
		goto out;
	pos += sc_align_up(ent_bytes);

	/* The indexes, then the first page. */
	m.index_off = pos;
	m.index_slots = kslots;
	if ((rc = sc_write_full(fd, kt, (size_t)(kslots * sizeof(*kt)), pos)) != 0)
		goto out;
	pos += sc_align_up(kslots * sizeof(*kt));
	m.blobs_off = pos;
	m.blob_slots = bslots;
	if ((rc = sc_write_full(fd, bt, (size_t)(bslots * sizeof(*bt)), pos)) != 0)
		goto out;
	pos += sc_align_up(bslots * sizeof(*bt));
	(void)zeros;
	m.data_end = pos;
	m.entries = l->n;
	sc_image_init(page, &m);
	if ((rc = sc_write_full(fd, page, sizeof(page), 0)) != 0)
		goto out;
	/* Always durable, even with SC_NOSYNC: renaming an unsynced file over
	 * the shard could lose every entry, not just the newest. */
	if (fchmod(fd, 0600) != 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = sc_fsync(fd)) != 0 || (rc = sc_rename(tmp, c->path)) != 0)
		goto out;
	tmp[0] = '\0';
	rc = sc_fsync_dir(c->path);
out:
	if (fd >= 0) {
		close(fd);
		if (tmp[0])
			(void)sc_unlink(tmp);
	}
	free(ents);
	free(own);
	free(boff);
	free(first);
	free(bt);
	free(kt);
	return rc;
}

/* Keep only the newest entries that fit in @p budget bytes. */
static uint64_t apply_budget(sc_cache *c, struct sc_live *l, uint64_t budget)
{
	uint64_t total = 0;

	qsort(l->e, l->n, sizeof(*l->e), newest_first);
	for (uint64_t i = 0; i < l->n; i++) {
		uint64_t need = (l->e[i].blob_size ? sc_class_size(sc_class_of(l->e[i].blob_size)) : 0) +
				sizeof(struct sc_disk_entry) +
				l->e[i].key_len + l->e[i].tag_len + l->e[i].exe_id_len +
				l->e[i].exe_path_len;
		if (total + need > budget) {
			uint64_t gone = l->n - i;
			atomic_fetch_add(&c->n_evictions, gone);
			l->n = i;
			return gone;
		}
		total += need;
	}
	return 0;
}

/* After the rename: move this handle to the new file. */
static int follow(sc_cache *c)
{
	int rc;

	pthread_rwlock_wrlock(&c->rw);
	rc = sc_reopen_locked(c);
	if (rc == 0)
		rc = sc_refresh_locked(c, 0);
	pthread_rwlock_unlock(&c->rw);
	return rc;
}

/* Copy the chosen live entries into a new shard; @p budget (0: none) keeps
 * only the newest entries that fit in that many bytes. */
int sc_rewrite(sc_cache *c, struct sc_snap *s, sc_keep_fn keep, void *arg,
	       uint64_t budget, uint64_t *n_dropped)
{
	struct sc_live l = { 0 };
	struct sc_disk_meta m;
	uint64_t dropped = 0;
	int rc;

	if ((rc = collect(s, keep, arg, &l, &dropped)) != 0)
		goto out;
	if (budget)
		dropped += apply_budget(c, &l, budget);
	if ((rc = write_shard(c, &l)) != 0)
		goto out;

	/* Send readers of the old file to the new one. */
	m = s->meta;
	m.flags |= SC_META_RETIRED;
	(void)sc_commit_meta(c, s, &m);

	rc = follow(c);
	atomic_fetch_add(&c->n_compactions, 1);
	if (n_dropped)
		*n_dropped = dropped;
out:
	free(l.e);
	return rc;
}

int sc_upgrade_locked(sc_cache *c)
{
	struct sc_live l = { 0 };
	uint64_t dropped = 0;
	int rc;

	if ((rc = sc_v1_collect(c->v1_map, c->v1_len, &l, &dropped)) == 0 &&
	    (rc = write_shard(c, &l)) == 0)
		rc = follow(c);
	free(l.e);
	return rc;
}

static int maintain(sc_cache *c, sc_keep_fn keep, void *arg, uint64_t *n_dropped)
{
	struct sc_snap s;
	int rc;

	if (!c)
		return -EINVAL;
	if ((rc = sc_writer_begin(c, &s)) != 0)
		return rc;
	rc = sc_rewrite(c, &s, keep, arg, 0, n_dropped);
	sc_writer_end(c);
	return rc;
}

static int keep_none(const sc_entry_info *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
}

int sc_clear(sc_cache *c)
{
	return maintain(c, keep_none, NULL, NULL);
}

int sc_compact(sc_cache *c)
{
	return maintain(c, NULL, NULL, NULL);
}

static int keep_fresh(const sc_entry_info *e, void *arg)
{
	(void)arg;
	return sc_entry_status(e) == 0;
}

int sc_evict_stale(sc_cache *c, uint64_t *n_evicted)
{
	struct sc_snap s;
	uint64_t n = 0;
	int rc;

	if (!c)
		return -EINVAL;
	if ((rc = sc_writer_begin(c, &s)) != 0)
		return rc;
	rc = sc_rewrite(c, &s, keep_fresh, NULL, 0, &n);
	sc_writer_end(c);
	if (rc == 0)
		atomic_fetch_add(&c->n_evictions, n);
	if (n_evicted)
		*n_evicted = rc == 0 ? n : 0;
	return rc;
}
