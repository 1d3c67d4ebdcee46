/*
 * entry.c - one shard entry as the mount shows it: the entry directory's
 * version (struct fs_ver) and how it follows the shard, the attributes
 * and entry parameters of every node, and the errno a core error becomes
 * at the FUSE boundary.  Both views (flat.c, tree.c), the commit path and
 * the watcher bring directories up to date through fs_apply_ver().
 *
 * Attributes set by chmod, chown and utimes are kept here too, in a table
 * keyed by the entry's key (the tree directory's path), apart from the
 * nodes: the kernel forgets nodes and looks them up again as new ones.  A
 * blob's and metadata.json's attributes belong to one version (its
 * cached_at and size, which a compaction keeps and a new put changes); an
 * entry directory keeps its mode and owner across versions, and its times
 * until the next version; everything goes with the entry.  The table is
 * only consulted when it is not empty, and only when an attribute is
 * asked for: a warm read sends no request at all.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fs_i.h"

static void attr_drop(struct fs *fs, enum fs_kind kind, const char *key, size_t klen,
		      const struct fs_ver *keep);

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

const char *fs_entry_key(const sc_entry_info *e, char *buf, size_t *len)
{
	if (!e->key_base) {
		*len = e->key_len;
		return e->key;
	}
	size_t n = e->key_base_len + 1 + e->key_len;
	if (n > SC_MAX_KEY)
		return NULL;
	memcpy(buf, e->key_base, e->key_base_len);
	buf[e->key_base_len] = '/';
	memcpy(buf + e->key_base_len + 1, e->key, e->key_len);
	buf[n] = '\0';
	*len = n;
	return buf;
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
	v->v_checksum = e->blob_id[0];
	v->v_layer = e->layer;
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
		/* a new version starts with the shard's attributes (a status
		 * change of the same version keeps what was set) */
		attr_drop(fs, FS_BLOB, d->n_key, d->n_key_len, &v);
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
		attr_drop(fs, FS_BLOB, d->n_key, d->n_key_len, NULL);
		if (!d->n_made && !d->n_pending) {
			attr_drop(fs, FS_DIR, d->n_key, d->n_key_len, NULL);
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

/* ---- attributes set through the mount ---- */

#define A_MODE  1u
#define A_OWNER 2u   /* uid and gid (each defaults to the mounting user's) */
#define A_TIMES 4u   /* atime, mtime, ctime */

struct fs_attr {
	struct fs_attr *a_next;
	enum fs_kind    a_kind;      /* FS_ROOT, FS_DIR, FS_TDIR, FS_BLOB, FS_META */
	int64_t         a_vsec;      /* FS_BLOB, FS_META: the version (cached_at, */
	uint32_t        a_vnsec;     /* size); FS_DIR: the version a_times */
	uint64_t        a_vsize;     /* were set at */
	unsigned        a_set;
	mode_t          a_mode;      /* permission bits (07777) */
	uid_t           a_uid;
	gid_t           a_gid;
	struct timespec a_atime, a_mtime, a_ctime;
	size_t          a_klen;
	char            a_key[];
};

/* Keys hash as in the inode table's key map (inode.c): XXH3. */
static size_t attr_slot(size_t cap, const char *key, size_t len)
{
	return (size_t)XXH3_64bits(key, len) & (cap - 1);
}

/* The key, and the version identity, that @p n's attributes are kept by. */
static const char *attr_key(const struct fs_node *n, size_t *klen, struct fs_ver *v)
{
	memset(v, 0, sizeof *v);
	switch (n->n_kind) {
	case FS_ROOT:
		*klen = 0;
		return "";
	case FS_DIR:
		if (n->n_in_shard)
			*v = n->n_ver;
		*klen = n->n_key_len;
		return n->n_key;
	case FS_TDIR:
		*klen = n->n_key_len;
		return n->n_key;
	case FS_BLOB:
	case FS_META:
		if (!n->n_dir)
			return NULL;
		*v = n->f_ver;
		*klen = n->n_dir->n_key_len;
		return n->n_dir->n_key;
	default:
		return NULL;
	}
}

static int attr_same_ver(const struct fs_attr *a, const struct fs_ver *v)
{
	return a->a_vsec == v->v_cached_sec && a->a_vnsec == v->v_cached_nsec &&
	       a->a_vsize == v->v_blob_size;
}

/* What was set on @p kind nodes of @p key (of version @p v for files). */
static struct fs_attr *attr_lookup(struct fs *fs, enum fs_kind kind, const char *key,
				   size_t klen, const struct fs_ver *v)
{
	if (!fs->fs_acount)
		return NULL;
	struct fs_attr *a = fs->fs_atab[attr_slot(fs->fs_acap, key, klen)];
	for (; a; a = a->a_next)
		if (a->a_kind == kind && a->a_klen == klen && memcmp(a->a_key, key, klen) == 0 &&
		    ((kind != FS_BLOB && kind != FS_META) || attr_same_ver(a, v)))
			return a;
	return NULL;
}

static struct fs_attr *attr_find(struct fs *fs, const struct fs_node *n, struct fs_ver *v)
{
	size_t klen;
	const char *key = attr_key(n, &klen, v);
	return key ? attr_lookup(fs, n->n_kind, key, klen, v) : NULL;
}

static int attr_grow(struct fs *fs)
{
	size_t ncap = fs->fs_acap ? fs->fs_acap * 2 : 64;
	struct fs_attr **nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return ENOMEM;
	for (size_t i = 0; i < fs->fs_acap; i++) {
		struct fs_attr *a = fs->fs_atab[i], *next;
		for (; a; a = next) {
			next = a->a_next;
			size_t s = attr_slot(ncap, a->a_key, a->a_klen);
			a->a_next = nt[s];
			nt[s] = a;
		}
	}
	free(fs->fs_atab);
	fs->fs_atab = nt;
	fs->fs_acap = ncap;
	return 0;
}

int fs_attr_set(struct fs *fs, const struct fs_node *n, const struct stat *attr, int to_set)
{
	struct fs_ver v;
	size_t klen;
	const char *key = attr_key(n, &klen, &v);
	if (!key)
		return EPERM;
	struct fs_attr *a = attr_lookup(fs, n->n_kind, key, klen, &v);
	if (!a) {
		if (fs->fs_acount >= fs->fs_acap && attr_grow(fs) != 0)
			return ENOMEM;
		a = calloc(1, sizeof(*a) + klen + 1);
		if (!a)
			return ENOMEM;
		a->a_kind = n->n_kind;
		a->a_klen = klen;
		memcpy(a->a_key, key, klen);
		size_t s = attr_slot(fs->fs_acap, key, klen);
		a->a_next = fs->fs_atab[s];
		fs->fs_atab[s] = a;
		fs->fs_acount++;
	}
	/* What the node shows now is where unchanged fields start from. */
	struct stat cur;
	fs_fill_attr(fs, n, &cur);
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	if (to_set & FUSE_SET_ATTR_MODE) {
		a->a_mode = attr->st_mode & 07777;
		a->a_set |= A_MODE;
	}
	if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
		a->a_uid = (to_set & FUSE_SET_ATTR_UID) ? attr->st_uid : cur.st_uid;
		a->a_gid = (to_set & FUSE_SET_ATTR_GID) ? attr->st_gid : cur.st_gid;
		a->a_set |= A_OWNER;
	}
	a->a_atime = cur.st_atim;
	a->a_mtime = cur.st_mtim;
	if (to_set & FUSE_SET_ATTR_ATIME_NOW)
		a->a_atime = now;
	else if (to_set & FUSE_SET_ATTR_ATIME)
		a->a_atime = attr->st_atim;
	if (to_set & FUSE_SET_ATTR_MTIME_NOW)
		a->a_mtime = now;
	else if (to_set & FUSE_SET_ATTR_MTIME)
		a->a_mtime = attr->st_mtim;
	a->a_ctime = now; /* any change of attributes is a change of the inode */
	a->a_set |= A_TIMES;
	a->a_vsec = v.v_cached_sec;
	a->a_vnsec = v.v_cached_nsec;
	a->a_vsize = v.v_blob_size;
	return 0;
}

/* Drop what was set on @p kind nodes of @p key; FS_BLOB also drops FS_META.
 * @p keep: a version whose blob/metadata attributes stay, or NULL. */
static void attr_drop(struct fs *fs, enum fs_kind kind, const char *key, size_t klen,
		      const struct fs_ver *keep)
{
	if (!fs->fs_acount)
		return;
	struct fs_attr **pp = &fs->fs_atab[attr_slot(fs->fs_acap, key, klen)];
	while (*pp) {
		struct fs_attr *a = *pp;
		int match = a->a_klen == klen && memcmp(a->a_key, key, klen) == 0 &&
			    (a->a_kind == kind || (kind == FS_BLOB && a->a_kind == FS_META)) &&
			    !(keep && attr_same_ver(a, keep));
		if (match) {
			*pp = a->a_next;
			free(a);
			fs->fs_acount--;
		} else {
			pp = &a->a_next;
		}
	}
}

void fs_attr_drop(struct fs *fs, enum fs_kind kind, const char *key, size_t klen)
{
	attr_drop(fs, kind, key, klen, NULL);
}

int fs_attr_held(struct fs *fs, const struct fs_node *n)
{
	struct fs_ver v;
	return fs->fs_acount && attr_find(fs, n, &v) != NULL;
}

void fs_attr_free(struct fs *fs)
{
	for (size_t i = 0; i < fs->fs_acap; i++) {
		struct fs_attr *a = fs->fs_atab[i], *next;
		for (; a; a = next) {
			next = a->a_next;
			free(a);
		}
	}
	free(fs->fs_atab);
	fs->fs_atab = NULL;
	fs->fs_acap = fs->fs_acount = 0;
}

/* Show what was set on @p n over the defaults in @p st. */
static void attr_apply(struct fs *fs, const struct fs_node *n, struct stat *st)
{
	struct fs_ver v;
	const struct fs_attr *a = attr_find(fs, n, &v);
	if (!a)
		return;
	if (a->a_set & A_MODE) {
		mode_t m = a->a_mode;
		if (n->n_kind == FS_META || (n->n_kind == FS_BLOB && n->f_ver.v_layer > 0))
			m &= ~(mode_t)0222; /* generated, or a lower shard's: never writable */
		st->st_mode = (st->st_mode & S_IFMT) | m;
	}
	if (a->a_set & A_OWNER) {
		st->st_uid = a->a_uid;
		st->st_gid = a->a_gid;
	}
	/* an entry directory's times last until its next version */
	if ((a->a_set & A_TIMES) && (n->n_kind != FS_DIR || attr_same_ver(a, &v))) {
		st->st_atim = a->a_atime;
		st->st_mtim = a->a_mtime;
		st->st_ctim = a->a_ctime;
	}
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
		/* writable: a write begins a pending version (commit.c); a lower
		 * shard's blob is not (a new version is written beside it and
		 * renamed over it, docs/FS.md "Layers") */
		st->st_mode = S_IFREG | 0444 | (n->f_ver.v_layer > 0 ? 0 : w);
		st->st_nlink = 1;
		st->st_size = (off_t)n->f_ver.v_blob_size;
		st->st_mtim.tv_sec = n->f_ver.v_cached_sec;
		st->st_mtim.tv_nsec = n->f_ver.v_cached_nsec;
		fs_ids_fill(fs, n, st);
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
	case FS_UNDER:
		/* the real file's read bits and owner: the kernel's own check
		 * (default_permissions) then refuses whom the file refuses */
		st->st_mode = S_IFREG | (n->u_mode & 0444);
		st->st_nlink = 1;
		st->st_size = (off_t)n->u_size;
		st->st_uid = n->u_uid;
		st->st_gid = n->u_gid;
		break;
	}
	st->st_ctim = st->st_mtim;
	st->st_atim = st->st_mtim;
	st->st_blocks = (st->st_size + 511) / 512;
	if (fs->fs_acount)
		attr_apply(fs, n, st);
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

void fs_entry_ref(struct fs *fs, struct fs_node *n, struct fuse_entry_param *ep)
{
	n->n_nlookup++;
	fs_fill_entry(fs, n, ep);
}

struct fs_node *fs_dir_blob(struct fs *fs, struct fs_node *d, const unsigned char *blob,
			    uint64_t epoch)
{
	if (!d->n_blob) {
		struct fs_node *b = fs_child_new(fs, d, FS_BLOB);
		if (!b)
			return NULL;
		b->f_ver = d->n_ver;
		b->f_blob = blob;
		b->f_epoch = epoch;
		d->n_blob = b;
	}
	return d->n_blob;
}
