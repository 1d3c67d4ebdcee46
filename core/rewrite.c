/*
 * rewrite.c - compaction, clear, eviction: the operations that replace
 * the shard by a new one holding the live entries they keep.
 *
 * The live entries are collected from the index and handed to
 * sc_build_shard() (build.c), which writes them into a temp file in the
 * same directory, fsyncs it, renames it over the shard and fsyncs the
 * directory.  Only then is the old file marked retired (a meta commit with
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

/* The live, sound entries of a v2 snapshot that @p keep wants. */
int sc_collect(const struct sc_snap *s, sc_keep_fn keep, void *arg, int whiteouts,
	       struct sc_live *l, uint64_t *dropped)
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
		if (v.r->flags & SC_ENT_WHITEOUT) {
			/* Not an entry: no source, no writer to judge. */
			if (whiteouts && (rc = sc_live_add_whiteout(l, &e, 1)) != 0)
				return rc;
			continue;
		}
		if (keep && !keep(&e, arg)) {
			(*dropped)++;
			continue;
		}
		if ((rc = sc_live_add(l, &e)) != 0)
			return rc;
	}
	return 0;
}

/* Keep only the newest entries that fit in @p budget bytes. */
struct aged {
	sc_entry_info e;
	unsigned char wo;
};

static int aged_newest_first(const void *a, const void *b)
{
	return newest_first(&((const struct aged *)a)->e, &((const struct aged *)b)->e);
}

/* Sort @p l newest first, each whiteout mark moving with its record.
 * 0, or -ENOMEM (the list is left as it was). */
static int sort_newest_first(struct sc_live *l)
{
	struct aged *v = malloc((l->n ? l->n : 1) * sizeof(*v));

	if (!v)
		return -ENOMEM;
	for (uint64_t i = 0; i < l->n; i++)
		v[i] = (struct aged){ l->e[i], l->wo ? l->wo[i] : 0 };
	qsort(v, l->n, sizeof(*v), aged_newest_first);
	for (uint64_t i = 0; i < l->n; i++) {
		l->e[i] = v[i].e;
		if (l->wo)
			l->wo[i] = v[i].wo;
	}
	free(v);
	return 0;
}

static uint64_t apply_budget(sc_cache *c, struct sc_live *l, uint64_t budget)
{
	uint64_t total = 0;

	if (sort_newest_first(l) != 0)
		return 0; /* no memory to choose: this compaction keeps all */
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

static int keep_none(const sc_entry_info *e, void *arg)
{
	(void)e;
	(void)arg;
	return 0;
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

	/* Whiteouts go on with the shard, except through sc_clear(), which
	 * empties it: the lower shards' entries show again. */
	if ((rc = sc_collect(s, keep, arg, keep != keep_none, &l, &dropped)) != 0)
		goto out;
	if (budget)
		dropped += apply_budget(c, &l, budget);
	if ((rc = sc_build_shard(c, &l)) != 0)
		goto out;

	/* Send readers of the old file to the new one. */
	m = s->meta;
	m.flags |= SC_META_RETIRED;
	(void)sc_commit_meta(c, s, &m);

	rc = sc_follow(c);
	atomic_fetch_add(&c->n_compactions, 1);
	if (n_dropped)
		*n_dropped = dropped;
out:
	sc_live_free(&l);
	return rc;
}

static int maintain(sc_cache *c, sc_keep_fn keep, void *arg, uint64_t *n_dropped)
{
	struct sc_snap s;
	int rc;

	if (!c)
		return -EINVAL;
	if (!c->disabled && sc_unborn_still(c)) {
		if (n_dropped)
			*n_dropped = 0;
		return 0; /* no file: nothing to rewrite, and none is made */
	}
	if ((rc = sc_writer_begin(c, &s)) != 0)
		return rc;
	rc = sc_rewrite(c, &s, keep, arg, 0, n_dropped);
	sc_writer_end(c);
	return rc;
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
	if (!c->disabled && sc_unborn_still(c)) {
		if (n_evicted)
			*n_evicted = 0;
		return 0;
	}
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
