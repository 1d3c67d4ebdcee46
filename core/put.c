/*
 * put.c - the write path: put and remove, O(entry) each.
 *
 * Order of a put (docs/FORMAT.md has the full crash argument):
 *   1. append the record (and, when the index must grow, a new index) past
 *      the committed data_end: no reader looks there yet;
 *   2. fdatasync (durable mode);
 *   3. write the meta slot for txnid+1: new data_end, counts, and a redo
 *      record "slot i := (hash, offset)" - this write is the commit;
 *   4. fdatasync (durable mode);
 *   5. apply the redo to the index slot in place.
 * A crash before 3 leaves garbage past data_end, overwritten by the next
 * writer.  A crash between 3 and 5 is invisible: readers apply the redo
 * from the meta themselves, and the next writer applies it to the file
 * before it commits anything else.  Step 2 of the next put makes step 5 of
 * this one durable before its meta (which drops this redo) is written.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "sc_int.h"

#define AUTO_COMPACT_MIN_DEAD ((uint64_t)16 << 20)

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
	    !(m->dead_bytes > AUTO_COMPACT_MIN_DEAD && m->dead_bytes > m->live_bytes))
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

int sc_put_ex(sc_cache *c, const char *key, const void *blob, size_t len,
	      const sc_put_opts *opts)
{
	static const unsigned char zeros[SC_ALIGN];
	struct sc_disk_record r;
	struct sc_disk_meta m;
	struct sc_snap s;
	struct sc_rec_view old;
	struct stat st;
	struct sc_disk_slot *table = NULL;
	struct iovec iov[7];
	char exe_id[SC_IDENTITY_MAX];
	const char *tag, *id, *exe_path;
	size_t key_len, tag_len, id_len, exe_path_len, strings;
	uint64_t hash, slot, off, new_slots = 0;
	int rc, replace, grow;

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
	if (tag_len > UINT16_MAX || exe_path_len > UINT16_MAX)
		return SC_ETOOBIG;

	memset(&r, 0, sizeof(r));
	r.magic = SC_REC_MAGIC;
	if (opts && opts->no_source) {
		r.flags |= SC_REC_NO_SOURCE;
	} else {
		if (!(opts && opts->source)) {
			if (stat(key, &st) != 0)
				return -errno;
			opts = NULL;
		}
		const struct stat *src = opts ? opts->source : &st;
		r.src_mtime_sec = (int64_t)src->st_mtim.tv_sec;
		r.src_mtime_nsec = (uint32_t)src->st_mtim.tv_nsec;
		r.src_size = (uint64_t)src->st_size;
	}
	{
		struct timespec now;
		clock_gettime(CLOCK_REALTIME, &now);
		r.cached_sec = (int64_t)now.tv_sec;
		r.cached_nsec = (uint32_t)now.tv_nsec;
	}
	r.key_len = (uint16_t)key_len;
	r.tag_len = (uint16_t)tag_len;
	r.exe_id_len = (uint16_t)id_len;
	r.exe_path_len = (uint16_t)exe_path_len;
	strings = key_len + tag_len + id_len + exe_path_len;
	r.blob_off = sc_align_up(sizeof(r) + strings);
	r.blob_len = len;
	r.rec_len = sc_align_up(r.blob_off + len);
	r.blob_checksum = XXH3_64bits(blob, len);
	iov[1] = (struct iovec){ (void *)key, key_len };
	iov[2] = (struct iovec){ (void *)tag, tag_len };
	iov[3] = (struct iovec){ (void *)id, id_len };
	iov[4] = (struct iovec){ (void *)exe_path, exe_path_len };
	r.checksum = sc_record_checksum(&r, iov + 1, 4);
	iov[0] = (struct iovec){ &r, sizeof(r) };
	iov[5] = (struct iovec){ (void *)zeros, r.blob_off - sizeof(r) - strings };
	iov[6] = (struct iovec){ (void *)blob, len };
	hash = sc_key_hash(key, key_len);

	if ((rc = sc_writer_begin(c, &s)) != 0)
		return rc;
	m = s.meta;
	off = m.data_end;
	rc = sc_probe(&s, key, key_len, hash, &slot, &old);
	replace = rc == 0;
	if (!replace && (rc = sc_insertion_slot(&s, hash, &slot)) != 0 && rc != SC_ECORRUPT)
		goto out;
	grow = !replace && (rc == SC_ECORRUPT ||
			    (m.entries + m.tombstones + 1) * 10 > m.index_slots * 7);
	rc = 0;

	/* 1. the record, then its tail padding */
	{
		size_t total = (size_t)r.rec_len - (r.blob_off + len);
		uint64_t pos = off + r.blob_off + len;

		if ((rc = sc_writev_full(s.fd, iov, 7, off)) != 0) {
			drop_tail(&s);
			goto out;
		}
		if (total && (rc = sc_write_full(s.fd, zeros, total, pos)) != 0) {
			drop_tail(&s);
			goto out;
		}
	}
	m.data_end = off + r.rec_len;
	if (replace) {
		m.live_bytes -= old.r->rec_len;
		m.dead_bytes += old.r->rec_len;
	} else {
		m.entries++;
	}
	m.live_bytes += r.rec_len;
	if (grow) {
		uint64_t bytes;
		if ((rc = sc_table_grow(&s, hash, off, &table, &new_slots)) != 0)
			goto out;
		bytes = new_slots * sizeof(*table);
		if ((rc = sc_write_full(s.fd, table, (size_t)bytes, m.data_end)) != 0) {
			drop_tail(&s);
			goto out;
		}
		m.dead_bytes += m.index_slots * sizeof(*table);
		m.index_off = m.data_end;
		m.index_slots = new_slots;
		m.data_end += sc_align_up(bytes);
		m.tombstones = 0;
		m.redo_slot = SC_NO_REDO;
		m.redo_hash = m.redo_off = 0;
	} else {
		uint64_t h, o;
		sc_slot_read(&s, slot, &h, &o);
		if (!replace && o == SC_SLOT_TOMB && m.tombstones > 0)
			m.tombstones--;
		m.redo_slot = slot;
		m.redo_hash = hash;
		m.redo_off = off;
	}
	/* 2.-4. */
	if ((rc = sc_commit_meta(c, &s, &m)) != 0)
		goto out;
	/* 5. */
	s.meta = m;
	(void)sc_apply_redo(&s);
	atomic_fetch_add_explicit(&c->n_puts, 1, memory_order_relaxed);
	(void)after_commit(c, &m);
out:
	free(table);
	sc_writer_end(c);
	return rc;
}

int sc_put(sc_cache *c, const char *key, const void *blob, size_t len)
{
	return sc_put_ex(c, key, blob, len, NULL);
}

static int remove_key(sc_cache *c, const char *key, int check, uint64_t shard_id,
		      uint64_t offset)
{
	struct sc_disk_meta m;
	struct sc_snap s;
	struct sc_rec_view v;
	uint64_t slot, hash;
	size_t key_len;
	int rc;

	if (!c || !key)
		return -EINVAL;
	key_len = strlen(key);
	if (key_len == 0 || key_len > SC_MAX_KEY)
		return SC_ENOTFOUND;
	hash = sc_key_hash(key, key_len);
	if ((rc = sc_writer_begin(c, &s)) != 0)
		return rc;
	if ((rc = sc_probe(&s, key, key_len, hash, &slot, &v)) != 0) {
		if (rc == -EAGAIN) /* only a damaged slot points past the end */
			rc = SC_ENOTFOUND;
		goto out;
	}
	if (check && (s.shard_id != shard_id || (uint64_t)((const unsigned char *)v.r - s.map) != offset)) {
		rc = SC_ECHANGED;
		goto out;
	}
	m = s.meta;
	if (m.entries > 0)
		m.entries--;
	m.tombstones++;
	m.live_bytes -= v.r->rec_len;
	m.dead_bytes += v.r->rec_len;
	m.redo_slot = slot;
	m.redo_hash = hash;
	m.redo_off = SC_SLOT_TOMB;
	if ((rc = sc_commit_meta(c, &s, &m)) != 0)
		goto out;
	s.meta = m;
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
