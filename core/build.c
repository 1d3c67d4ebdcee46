/*
 * build.c - a whole new shard made from a list of entries, put in place of
 * the old one: what compaction, clear, eviction (rewrite.c) and the upgrade
 * of a version 1 shard (legacy.c) share.
 *
 * Layout of a built shard: the first page, each distinct blob once (in an
 * extent of its size class), the entry records packed, the key index, the
 * blob index.  The file is written as a temp file beside the shard,
 * fsynced, renamed over it, and the directory fsynced: a crash leaves the
 * old shard or the new one, complete, at the path, and a stray temp file
 * that the next writer removes.
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

/* Write the new shard for @p l's entries to a temp file beside the path,
 * durably, and rename it over the shard. */
int sc_build_shard(sc_cache *c, const struct sc_live *l)
{
	struct sc_disk_header h;
	char base[SC_BASE_MAX + 1];

	/* A relocatable shard stays one, with its base (its keys are
	 * relative to it).  The header of the file the writer has open. */
	memcpy(&h, c->maps->base, sizeof(h));
	if (c->legacy || !(h.hflags & SC_HDR_RELOCATABLE) || h.base_len > SC_BASE_MAX)
		return sc_build_file(c->path, l, 0, NULL, 0600);
	memcpy(base, h.base, h.base_len);
	base[h.base_len] = '\0';
	return sc_build_file(c->path, l, 1, h.base_len ? base : NULL, 0600);
}

/* The same for any destination: compaction's, or a shard to ship
 * (ship.c), which is relocatable and readable by others. */
int sc_build_file(const char *dest, const struct sc_live *l, int reloc, const char *base,
		  unsigned mode)
{
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
	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", dest) >= (int)sizeof(tmp)) {
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
			  (e->has_source_hash ? SC_ENT_SRC_HASH : 0) |
			  (own[i] ? SC_ENT_OWN_BLOB : 0) |
			  (l->wo && l->wo[i] ? SC_ENT_WHITEOUT : 0);
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
	m.data_end = pos;
	m.entries = l->n;
	sc_image_init(page, &m);
	if (reloc) {
		struct sc_disk_header h;
		memcpy(&h, page, sizeof(h));
		if ((rc = sc_header_set_base(&h, base)) != 0)
			goto out;
		memcpy(page, &h, sizeof(h));
	}
	if ((rc = sc_write_full(fd, page, sizeof(page), 0)) != 0)
		goto out;
	/* Always durable, even with SC_NOSYNC: renaming an unsynced file over
	 * the shard could lose every entry, not just the newest. */
	if (fchmod(fd, (mode_t)mode) != 0) {
		rc = -errno;
		goto out;
	}
	if ((rc = sc_fsync(fd)) != 0 || (rc = sc_rename(tmp, dest)) != 0)
		goto out;
	tmp[0] = '\0';
	rc = sc_fsync_dir(dest);
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

/* After the rename: move this handle to the new file. */
int sc_follow(sc_cache *c)
{
	int rc;

	pthread_rwlock_wrlock(&c->rw);
	rc = sc_reopen_locked(c);
	if (rc == 0)
		rc = sc_refresh_locked(c, 0);
	pthread_rwlock_unlock(&c->rw);
	return rc;
}

