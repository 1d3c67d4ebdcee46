/*
 * entry.c - one shard entry as the mount shows it: the entry directory's
 * version (struct fs_ver) and how it follows the shard, the attributes
 * and entry parameters of every node, and the errno a core error becomes
 * at the FUSE boundary.  Both views (flat.c, tree.c), the commit path and
 * the watcher bring directories up to date through fs_apply_ver().
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "fs_i.h"

int fs_errno(int err)
{
	if (FS_IS_ERRNO(err))
		return -err;
	switch (err) {
	case SC_ENOTFOUND: return ENOENT;
	case SC_ESTALE: return ENOENT;
	case SC_EFINGERPRINT: return ENOENT;
	case SC_EWRITERGONE: return ENOENT;
	case SC_EREADONLY: return EROFS;
	case SC_ETOOBIG: return EFBIG;
	case SC_EDISABLED: return ENOENT;
	case SC_EINSECURE: return EACCES;
	default: return EIO;
	}
}

void fs_ver_from_info(struct fs_ver *v, const sc_entry_info *e, int status)
{
	v->v_shard_id = e->shard_id;
	v->v_offset = e->offset;
	v->v_status = status;
	v->v_has_source = e->has_source;
	v->v_cached_sec = e->cached_sec;
	v->v_cached_nsec = e->cached_nsec;
	v->v_blob_size = e->blob_size;
}

int fs_ver_same(const struct fs_ver *a, const struct fs_ver *b)
{
	return a->v_shard_id == b->v_shard_id && a->v_offset == b->v_offset &&
	       a->v_status == b->v_status;
}

/* The kernel may hold dentries for the old children: queue their removal. */
void fs_note_children_gone(struct fs *fs, struct fs_node *d)
{
	if (d->n_blob)
		fs_note(fs, FS_NOTE_DELETE, d->n_ino, d->n_blob->n_ino, FS_BLOB_NAME);
	if (d->n_meta)
		fs_note(fs, FS_NOTE_DELETE, d->n_ino, d->n_meta->n_ino, FS_META_NAME);
	fs_note(fs, FS_NOTE_INODE, d->n_ino, 0, NULL);
	fs_note_tree_gone(fs, d);
}

/* The blob may also be linked in the tree view (the same inode): drop that
 * dentry too.  A DELETE names the old inode, so it cannot hit a newer file
 * a rename has put under the same name meanwhile. */
void fs_note_tree_gone(struct fs *fs, struct fs_node *d)
{
	if (d->n_blob && d->n_tparent)
		fs_note(fs, FS_NOTE_DELETE, d->n_tparent, d->n_blob->n_ino,
			strrchr(d->n_key, '/') + 1);
}

/*
 * Bring directory @p d up to date with what the shard says (@p e, or NULL
 * when the key has no entry).  fs_lock held.  Returns nonzero if @p d is
 * newly in the shard (the caller should set up watches).
 */
int fs_apply_ver(struct fs *fs, struct fs_node *d, const sc_entry_info *e, int status)
{
	if (d->n_busy)
		return 0; /* an unlink (fs_flat_unlink, fs_tree_unlink) sets the outcome itself */
	if (e) {
		struct fs_ver v;
		fs_ver_from_info(&v, e, status);
		/* callers hold fs_map_lock: the pointer is good for this epoch */
		d->d_blob = e->blob;
		d->d_epoch = fs->fs_epoch;
		if (d->n_in_shard && fs_ver_same(&d->n_ver, &v))
			return 0;
		if (d->n_in_shard && d->n_ver.v_status == INT32_MIN &&
		    d->n_ver.v_shard_id == v.v_shard_id && d->n_ver.v_offset == v.v_offset) {
			/* readdirplus made this node without a status: nothing
			 * the kernel holds depends on it yet */
			d->n_ver.v_status = status;
			return 0;
		}
		if (d->n_blob || d->n_meta || d->n_in_shard)
			fs_note_children_gone(fs, d);
		fs_detach_children(fs, d);
		d->n_ver = v;
		d->n_in_shard = 1;
		d->n_made = 0;
		d->n_mtime.tv_sec = e->cached_sec;
		d->n_mtime.tv_nsec = e->cached_nsec;
		return 1;
	}
	if (d->n_in_shard) {
		fs_note_children_gone(fs, d);
		fs_detach_children(fs, d);
		d->n_in_shard = 0;
		if (!d->n_made && !d->n_pending) {
			fs_note(fs, FS_NOTE_DELETE, FS_INO_ROOT, d->n_ino, d->n_name);
			fs_dir_unmap(fs, d);
			fs_node_maybe_free(fs, d);
		}
	}
	return 0;
}

/*
 * Look @p d's key up in the shard and apply the result.  fs_map_lock must
 * be read-held by the caller (the pointers in *@p e stay valid while it is).
 * @p d must stay alive: the caller holds a kernel reference on it.
 */
int fs_refresh_dir(struct fs *fs, struct fs_node *d, sc_entry_info *e, int *found)
{
	int err = sc_lookup(fs->fs_cache, d->n_key, e);
	int status = 0, watched = 1;
	if (err == 0) {
		status = sc_entry_status(e);
		watched = fs_watch_entry(fs, e);
	} else if (err != SC_ENOTFOUND && err != SC_ECORRUPT) {
		return err;
	}
	*found = err == 0;
	pthread_mutex_lock(&fs->fs_lock);
	fs_apply_ver(fs, d, *found ? e : NULL, status);
	if (*found)
		d->n_unwatched = !watched;
	pthread_mutex_unlock(&fs->fs_lock);
	return 0;
}

/*
 * Resync one known directory (watcher thread).  The source is stat()ed
 * (sc_entry_status) only when @p check_status is set (a watched directory
 * changed) or the version changed: a shard commit elsewhere costs one hash
 * probe per known entry.
 */
void fs_resync_dir(struct fs *fs, uint64_t ino, const char *key, int check_status)
{
	sc_entry_info e;
	int status = 0, changed = 0;
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	int err = sc_lookup(fs->fs_cache, key, &e);
	if (err == 0) {
		int known = 0;
		pthread_mutex_lock(&fs->fs_lock);
		struct fs_node *d = fs_node_get(fs, ino);
		if (d && d->n_kind == FS_DIR && d->n_in_shard && d->n_ver.v_status != INT32_MIN &&
		    d->n_ver.v_shard_id == e.shard_id && d->n_ver.v_offset == e.offset) {
			known = 1;
			status = d->n_ver.v_status;
		}
		pthread_mutex_unlock(&fs->fs_lock);
		if (!known || check_status)
			status = sc_entry_status(&e);
	}
	if (err == 0 || err == SC_ENOTFOUND || err == SC_ECORRUPT) {
		pthread_mutex_lock(&fs->fs_lock);
		struct fs_node *d = fs_node_get(fs, ino);
		if (d && d->n_kind == FS_DIR && d->n_in_map)
			changed = fs_apply_ver(fs, d, err == 0 ? &e : NULL, status);
		pthread_mutex_unlock(&fs->fs_lock);
		if (changed && err == 0) {
			int watched = fs_watch_entry(fs, &e);
			pthread_mutex_lock(&fs->fs_lock);
			d = fs_node_get(fs, ino);
			if (d && d->n_kind == FS_DIR)
				d->n_unwatched = !watched;
			pthread_mutex_unlock(&fs->fs_lock);
		}
	}
	pthread_rwlock_unlock(&fs->fs_map_lock);
}

double fs_attr_ttl(const struct fs_node *n)
{
	const struct fs_node *d = n->n_kind == FS_DIR ? n : n->n_dir;
	if (n->n_kind == FS_PENDING)
		return FS_TTL_PENDING;
	if (d && d->n_unwatched)
		return FS_TTL_FALLBACK;
	return FS_TTL_LONG;
}

void fs_fill_attr(struct fs *fs, const struct fs_node *n, struct stat *st)
{
	mode_t w = fs->fs_o.o_ro ? 0 : 0200;
	memset(st, 0, sizeof *st);
	st->st_ino = n->n_ino;
	st->st_uid = fs->fs_uid;
	st->st_gid = fs->fs_gid;
	st->st_blksize = 4096;
	st->st_mtim = n->n_mtime;
	switch (n->n_kind) {
	case FS_ROOT:
		st->st_mode = S_IFDIR | 0555 | w;
		st->st_nlink = 2;
		st->st_mtim = fs->fs_root_mtime;
		break;
	case FS_DIR:
	case FS_TDIR:
		st->st_mode = S_IFDIR | 0555 | w;
		st->st_nlink = 2;
		break;
	case FS_BLOB:
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)n->f_ver.v_blob_size;
		st->st_mtim.tv_sec = n->f_ver.v_cached_sec;
		st->st_mtim.tv_nsec = n->f_ver.v_cached_nsec;
		break;
	case FS_META:
	case FS_STATS:
		st->st_mode = S_IFREG | 0444;
		st->st_nlink = 1;
		st->st_size = (off_t)n->f_text_len;
		break;
	case FS_PENDING:
		st->st_mode = S_IFREG | 0444 | w;
		st->st_nlink = 1;
		st->st_size = (off_t)n->p_len;
		break;
	}
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
	st->st_blocks = (st->st_size + 511) / 512;
}

void fs_fill_entry(struct fs *fs, struct fs_node *n, struct fuse_entry_param *ep)
{
	memset(ep, 0, sizeof *ep);
	ep->ino = n->n_ino;
	ep->generation = 0;
	fs_fill_attr(fs, n, &ep->attr);
	ep->attr_timeout = fs_attr_ttl(n);
	ep->entry_timeout = n->n_kind == FS_STATS ? 0.0 : ep->attr_timeout;
}
