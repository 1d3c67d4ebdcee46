/*
 * rewrite.c - compaction, clear, eviction: the operations that rewrite the shard.
 *
 * Everything that shrinks the shard rewrites it: the live records are
 * copied into a temp file in the same directory, which is fsynced and
 * renamed over the shard, and the directory fsynced.  Only then is the old
 * file marked retired (a meta commit with SC_META_RETIRED), which sends
 * readers that still map it to the new file.  A crash before the rename
 * leaves the old shard untouched plus a temp file, removed by the next
 * writer; a crash after it leaves the new, complete shard in place, and
 * writers (and readers, within a second) notice the path moved on.
 * These operations are O(shard) by nature; puts never wait for them
 * except when a size limit or a mostly-dead shard triggers one.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "sc_int.h"

struct live {
	uint64_t off, len, hash;
	int64_t sec;
	uint32_t nsec;
};

static int newest_first(const void *a, const void *b)
{
	const struct live *x = a, *y = b;
	if (x->sec != y->sec)
		return x->sec < y->sec ? 1 : -1;
	if (x->nsec != y->nsec)
		return x->nsec < y->nsec ? 1 : -1;
	return 0;
}

/* Copy the chosen live records into a new shard; @p budget (0: none) keeps
 * only the newest records that fit in that many bytes. */
int sc_rewrite(sc_cache *c, struct sc_snap *s, sc_keep_fn keep, void *arg,
	       uint64_t budget, uint64_t *n_dropped)
{
	struct sc_disk_meta m;
	struct sc_disk_slot *table = NULL;
	struct live *lv = NULL;
	unsigned char page[SC_DATA_OFF];
	char tmp[PATH_MAX];
	uint64_t n = 0, cap = 64, dropped = 0, pos, slots, total = 0, live_bytes = 0;
	int fd = -1, rc;

	/* The meta's counts are not trusted for sizing anything. */
	if (s->meta.entries < s->meta.index_slots)
		cap = s->meta.entries + 64;
	lv = calloc(cap, sizeof(*lv));
	if (!lv)
		return -ENOMEM;
	for (uint64_t i = 0; i < s->meta.index_slots; i++) {
		struct sc_rec_view v;
		uint64_t hh, off;

		sc_slot_read(s, i, &hh, &off);
		if (off == SC_SLOT_EMPTY || off == SC_SLOT_TOMB)
			continue;
		/* Never carry a damaged record into the new file. */
		if (sc_record_view(s->map, s->meta.data_end, off, 0, &v) != 0 ||
		    sc_key_hash(v.key, v.r->key_len) != hh ||
		    XXH3_64bits(v.blob, v.r->blob_len) != v.r->blob_checksum) {
			dropped++;
			continue;
		}
		if (keep && !keep(&v, arg)) {
			dropped++;
			continue;
		}
		if (n == cap) {
			struct live *bigger = realloc(lv, cap * 2 * sizeof(*lv));
			if (!bigger) {
				rc = -ENOMEM;
				goto out;
			}
			lv = bigger;
			cap *= 2;
		}
		lv[n++] = (struct live){ off, v.r->rec_len, hh, v.r->cached_sec, v.r->cached_nsec };
	}
	if (budget) {
		qsort(lv, n, sizeof(*lv), newest_first);
		for (uint64_t i = 0; i < n; i++) {
			if (total + lv[i].len > budget) {
				dropped += n - i;
				atomic_fetch_add(&c->n_evictions, n - i);
				n = i;
				break;
			}
			total += lv[i].len;
		}
	}

	slots = sc_table_slots(n);
	table = calloc(slots, sizeof(*table));
	if (!table) {
		rc = -ENOMEM;
		goto out;
	}
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", c->path) >= (int)sizeof(tmp)) {
		rc = -ENAMETOOLONG;
		goto out;
	}
	if ((fd = sc_mkostemp(tmp)) < 0) {
		rc = fd;
		goto out;
	}
	pos = SC_DATA_OFF;
	for (uint64_t i = 0; i < n; i++) {
		if ((rc = sc_write_full(fd, s->map + lv[i].off, (size_t)lv[i].len, pos)) != 0)
			goto out;
		sc_table_insert(table, slots, lv[i].hash, pos);
		pos += lv[i].len;
		live_bytes += lv[i].len;
	}
	if ((rc = sc_write_full(fd, table, (size_t)(slots * sizeof(*table)), pos)) != 0)
		goto out;

	sc_image_init(page, pos, slots, pos + slots * sizeof(*table), n, live_bytes);
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
	if ((rc = sc_fsync_dir(c->path)) != 0)
		goto out;

	/* Send readers of the old file to the new one. */
	m = s->meta;
	m.flags |= SC_META_RETIRED;
	(void)sc_commit_meta(c, s, &m);

	pthread_rwlock_wrlock(&c->rw);
	rc = sc_reopen_locked(c);
	if (rc == 0)
		rc = sc_refresh_locked(c, 0);
	pthread_rwlock_unlock(&c->rw);
	atomic_fetch_add(&c->n_compactions, 1);
	if (n_dropped)
		*n_dropped = dropped;
out:
	if (fd >= 0) {
		close(fd);
		if (tmp[0])
			(void)sc_unlink(tmp);
	}
	free(table);
	free(lv);
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

static int keep_none(const struct sc_rec_view *v, void *arg)
{
	(void)v;
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

static int keep_fresh(const struct sc_rec_view *v, void *arg)
{
	struct sc_snap *s = arg;
	sc_entry_info e;

	sc_fill_info(s, 0, v, &e);
	return sc_entry_status(&e) == 0;
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
	rc = sc_rewrite(c, &s, keep_fresh, &s, 0, &n);
	sc_writer_end(c);
	if (rc == 0)
		atomic_fetch_add(&c->n_evictions, n);
	if (n_evicted)
		*n_evicted = rc == 0 ? n : 0;
	return rc;
}
