/*
 * ops_read.c - request handlers that only read: init, lookup, forget,
 * getattr, readdir(plus), read, statfs, and the open/flush/xattr replies
 * that switch the kernel into its no-round-trip modes.
 *
 * The fast path for a warm `cat <entry>/blob`: the dentries and attributes
 * are cached by the kernel (long timeouts, explicit invalidation by the
 * watcher), OPEN is answered once with ENOSYS so the kernel stops sending
 * OPEN/FLUSH/RELEASE and keeps the page cache across opens, and READ is
 * answered straight from the shard's mapping (fuse_reply_buf on a pointer
 * into it: the only copy is the kernel's copy into the page cache).
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "fs_i.h"
#include "pathenc.h"

/* ---- init ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	/* O_TRUNC must reach us as a setattr we can refuse on committed blobs. */
	conn->want &= ~FUSE_CAP_ATOMIC_O_TRUNC;
	/* Data of a version never changes (a new version is a new inode). */
	conn->want &= ~FUSE_CAP_AUTO_INVAL_DATA;
	conn->want &= ~FUSE_CAP_WRITEBACK_CACHE;
	if (conn->capable & FUSE_CAP_READDIRPLUS) {
		conn->want |= FUSE_CAP_READDIRPLUS;
		conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	}
	if (conn->capable & FUSE_CAP_PARALLEL_DIROPS)
		conn->want |= FUSE_CAP_PARALLEL_DIROPS;
	if (conn->capable & FUSE_CAP_ASYNC_READ)
		conn->want |= FUSE_CAP_ASYNC_READ;
	conn->max_readahead = conn->max_readahead ? conn->max_readahead : 1u << 20;
	(void)fs;
}

/* ---- lookup / forget ---- */

/* Key of the entry directory called @p name; hashed names are resolved by a
 * scan of the shard (rare: only keys whose encoding exceeds NAME_MAX). */
struct hashed_find {
	const char *name;
	char *key;
	size_t key_len;
};

static int hashed_cb(const sc_entry_info *e, void *arg)
{
	struct hashed_find *h = arg;
	char name[SC_NAME_MAX + 1];
	if (e->key_len < SC_NAME_MAX / 3)
		return 0; /* too short to need a hashed name */
	if (sc_name_encode(e->key, e->key_len, name) < 0 || strcmp(name, h->name) != 0)
		return 0;
	h->key = malloc(e->key_len + 1);
	if (!h->key)
		return -ENOMEM;
	memcpy(h->key, e->key, e->key_len);
	h->key[e->key_len] = '\0';
	h->key_len = e->key_len;
	return 1;
}

/* Decode a top-level name.  Returns a malloc'd key or NULL with *err set. */
char *fs_name_to_key(struct fs *fs, const char *name, size_t *len, int *err)
{
	size_t n = strlen(name);
	char *key = malloc(n + 1);
	if (!key) {
		*err = ENOMEM;
		return NULL;
	}
	int r = sc_name_decode(name, key, n + 1, len, NULL);
	if (r == 0)
		return key;
	free(key);
	if (r == SC_NAME_HASHED) {
		struct hashed_find h = { name, NULL, 0 };
		pthread_mutex_lock(&fs->fs_lock);
		/* a directory the kernel already knows is found without a scan */
		for (size_t i = 0; i < fs->fs_kcap && !h.key; i++)
			for (struct fs_node *d = fs->fs_ktab[i]; d; d = d->n_knext)
				if (strcmp(d->n_name, name) == 0) {
					h.key = strdup(d->n_key);
					h.key_len = d->n_key_len;
					break;
				}
		pthread_mutex_unlock(&fs->fs_lock);
		if (!h.key) {
			pthread_rwlock_rdlock(&fs->fs_map_lock);
			sc_foreach(fs->fs_cache, hashed_cb, &h);
			pthread_rwlock_unlock(&fs->fs_map_lock);
		}
		if (h.key) {
			*len = h.key_len;
			return h.key;
		}
		*err = ENOENT;
		return NULL;
	}
	*err = r == -ENAMETOOLONG ? ENAMETOOLONG : ENOENT;
	return NULL;
}

static void lookup_stats(fuse_req_t req, struct fs *fs)
{
	size_t len = 0;
	char *text = fs_render_stats(fs, &len);
	struct fuse_entry_param ep;
	if (!text) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = fs_node_new(fs, FS_STATS);
	if (!n) {
		pthread_mutex_unlock(&fs->fs_lock);
		free(text);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	n->f_text = text;
	n->f_text_len = len;
	n->n_nlookup++;
	fs_fill_entry(fs, n, &ep);
	pthread_mutex_unlock(&fs->fs_lock);
	fuse_reply_entry(req, &ep);
}

static void lookup_root(fuse_req_t req, struct fs *fs, const char *name)
{
	struct fuse_entry_param ep;
	sc_entry_info e;
	size_t klen;
	int err = 0, found;

	if (strcmp(name, FS_STATS_NAME) == 0) {
		lookup_stats(req, fs);
		return;
	}
	char *key = fs_name_to_key(fs, name, &klen, &err);
	if (!key) {
		fuse_reply_err(req, err);
		return;
	}
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	err = sc_lookup(fs->fs_cache, key, &e);
	found = err == 0;
	int status = found ? sc_entry_status(&e) : 0;
	int watched = found ? fs_watch_entry(fs, &e) : 1;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *d;
	if (found) {
		d = fs_dir_get(fs, key, klen, name);
		if (d) {
			fs_apply_ver(fs, d, &e, status);
			d->n_unwatched = !watched;
		}
	} else {
		d = fs_dir_find(fs, key, klen);
		if (d)
			fs_apply_ver(fs, d, NULL, 0);
		d = fs_dir_find(fs, key, klen); /* apply_ver may have dropped it */
		if (d && !d->n_made && !d->n_in_shard)
			d = NULL;
	}
	if (d) {
		d->n_nlookup++;
		fs_fill_entry(fs, d, &ep);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	pthread_rwlock_unlock(&fs->fs_map_lock);
	free(key);
	if (d)
		fuse_reply_entry(req, &ep);
	else
		fuse_reply_err(req, found || err == SC_ENOTFOUND || err == SC_ECORRUPT ?
				    ENOENT : fs_errno(err));
}

/*
 * Make sure the current version of @p d has blob/metadata.json nodes.
 * fs_map_lock read-held; @p e is the info fs_refresh_dir() returned.
 */
static void ensure_children(struct fs *fs, struct fs_node *d, const sc_entry_info *e,
			    int want_meta)
{
	char *text = NULL;
	size_t len = 0;

	pthread_mutex_lock(&fs->fs_lock);
	int need_meta = want_meta && d->n_in_shard && !d->n_meta;
	pthread_mutex_unlock(&fs->fs_lock);
	if (need_meta)
		text = fs_render_meta(e, d->n_ver.v_status, d->n_name, &len);
	pthread_mutex_lock(&fs->fs_lock);
	if (d->n_in_shard && d->n_ver.v_offset == e->offset &&
	    d->n_ver.v_shard_id == e->shard_id) {
		if (!d->n_meta && text) {
			struct fs_node *m = fs_child_new(fs, d, FS_META);
			if (m) {
				m->f_ver = d->n_ver;
				m->f_text = text;
				m->f_text_len = len;
				m->n_mtime = d->n_mtime;
				d->n_meta = m;
				text = NULL;
			}
		}
		if (!d->n_blob && d->n_ver.v_status == 0) {
			struct fs_node *b = fs_child_new(fs, d, FS_BLOB);
			if (b) {
				b->f_ver = d->n_ver;
				b->f_blob = e->blob;
				b->f_epoch = fs->fs_epoch;
				d->n_blob = b;
			}
		}
	}
	pthread_mutex_unlock(&fs->fs_lock);
	free(text);
}

static void lookup_dir(fuse_req_t req, struct fs *fs, struct fs_node *d, const char *name)
{
	struct fuse_entry_param ep;
	sc_entry_info e;
	int found, err;
	struct fs_node *n = NULL;

	pthread_mutex_lock(&fs->fs_lock);
	n = fs_pending_find(d, name);
	if (n) {
		n->n_nlookup++;
		fs_fill_entry(fs, n, &ep);
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_entry(req, &ep);
		return;
	}
	pthread_mutex_unlock(&fs->fs_lock);
	int is_blob = strcmp(name, FS_BLOB_NAME) == 0;
	if (!is_blob && strcmp(name, FS_META_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	if (is_blob) {
		/*
		 * Fast path: the directory's version and status were just
		 * established (its own lookup) and are kept current by the
		 * watcher, which watches its source: no need to probe the shard
		 * and hash the blob a second time.
		 */
		pthread_mutex_lock(&fs->fs_lock);
		if (d->n_in_shard && d->n_ver.v_status == 0 && !d->n_unwatched &&
		    d->d_blob && d->d_epoch == fs->fs_epoch && !fs_pending_find(d, name)) {
			if (!d->n_blob) {
				struct fs_node *b = fs_child_new(fs, d, FS_BLOB);
				if (b) {
					b->f_ver = d->n_ver;
					b->f_blob = d->d_blob;
					b->f_epoch = d->d_epoch;
					d->n_blob = b;
				}
			}
			n = d->n_blob;
			if (n) {
				n->n_nlookup++;
				fs_fill_entry(fs, n, &ep);
			}
		}
		pthread_mutex_unlock(&fs->fs_lock);
		if (n) {
			pthread_rwlock_unlock(&fs->fs_map_lock);
			fuse_reply_entry(req, &ep);
			return;
		}
	}
	err = fs_refresh_dir(fs, d, &e, &found);
	if (err == 0 && found)
		ensure_children(fs, d, &e, !is_blob); /* a blob lookup renders no JSON */
	pthread_mutex_lock(&fs->fs_lock);
	n = fs_pending_find(d, name); /* a create may have raced us */
	if (!n)
		n = is_blob ? d->n_blob : d->n_meta;
	if (n) {
		n->n_nlookup++;
		fs_fill_entry(fs, n, &ep);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	pthread_rwlock_unlock(&fs->fs_map_lock);
	if (n)
		fuse_reply_entry(req, &ep);
	else
		fuse_reply_err(req, err ? fs_errno(err) : ENOENT);
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	FS_COUNT(fs, st_lookups, 1);
	if (parent == FS_INO_ROOT) {
		if (strcmp(name, FS_TREE_NAME) == 0)
			fs_tree_lookup_root(req, fs);
		else
			lookup_root(req, fs, name);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *d = fs_node_get(fs, parent);
	int ok = d && d->n_kind == FS_DIR;
	int tree = d && d->n_kind == FS_TDIR;
	pthread_mutex_unlock(&fs->fs_lock);
	if (tree) {
		/* d stays alive: the kernel holds a lookup on the parent */
		fs_tree_lookup(req, fs, d, name);
		return;
	}
	if (!ok) {
		fuse_reply_err(req, d ? ENOTDIR : ENOENT);
		return;
	}
	/* d stays alive: the kernel holds a lookup on the parent meanwhile. */
	lookup_dir(req, fs, d, name);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	struct fs *fs = fs_of(req);
	pthread_mutex_lock(&fs->fs_lock);
	fs_forget_one(fs, ino, nlookup);
	pthread_mutex_unlock(&fs->fs_lock);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *v)
{
	struct fs *fs = fs_of(req);
	pthread_mutex_lock(&fs->fs_lock);
	for (size_t i = 0; i < count; i++)
		fs_forget_one(fs, v[i].ino, v[i].nlookup);
	pthread_mutex_unlock(&fs->fs_lock);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct stat st;
	double ttl;
	(void)fi;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = fs_node_get(fs, ino);
	if (n) {
		fs_fill_attr(fs, n, &st);
		ttl = fs_attr_ttl(n);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	if (n)
		fuse_reply_attr(req, &st, ttl);
	else
		fuse_reply_err(req, ENOENT);
}

/* ---- readdir ---- */

/*
 * The root listing.  Without OPENDIR there is no per-open state, so offsets
 * index a snapshot shared by all readers, rebuilt at offset 0 when the
 * shard's generation (or the set of mkdir'd directories) has changed.
 */
struct fs_lent {
	char         *l_name;
	char         *l_key;
	size_t        l_key_len;
	struct fs_ver l_ver;
	int           l_made;  /* mkdir'd, not in the shard */
};

struct fs_listing {
	uint64_t        ls_gen;
	uint64_t        ls_made_gen;
	size_t          ls_n, ls_cap;
	struct fs_lent *ls_v;
	unsigned        ls_refs;
	int             ls_err;
};

static uint64_t made_gen; /* bumped (under fs_lock) by mkdir/rmdir */
void fs_listing_dirty(void)
{
	made_gen++;
}

static void listing_free(struct fs_listing *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->ls_n; i++) {
		free(l->ls_v[i].l_name);
		free(l->ls_v[i].l_key);
	}
	free(l->ls_v);
	free(l);
}

static void listing_put(struct fs *fs, struct fs_listing *l)
{
	pthread_mutex_lock(&fs->fs_lock);
	int last = --l->ls_refs == 0;
	pthread_mutex_unlock(&fs->fs_lock);
	if (last)
		listing_free(l);
}

static int listing_add(struct fs_listing *l, const char *key, size_t klen, const char *name)
{
	if (l->ls_n == l->ls_cap) {
		size_t nc = l->ls_cap ? l->ls_cap * 2 : 256;
		struct fs_lent *nv = realloc(l->ls_v, nc * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		l->ls_v = nv;
		l->ls_cap = nc;
	}
	struct fs_lent *le = &l->ls_v[l->ls_n];
	memset(le, 0, sizeof *le);
	le->l_name = strdup(name);
	le->l_key = malloc(klen + 1);
	if (!le->l_name || !le->l_key) {
		free(le->l_name);
		free(le->l_key);
		return -ENOMEM;
	}
	memcpy(le->l_key, key, klen);
	le->l_key[klen] = '\0';
	le->l_key_len = klen;
	l->ls_n++;
	return 0;
}

static int listing_cb(const sc_entry_info *e, void *arg)
{
	struct fs_listing *l = arg;
	char name[SC_NAME_MAX + 1];
	if (sc_name_encode(e->key, e->key_len, name) < 0)
		return 0;
	if (listing_add(l, e->key, e->key_len, name) < 0)
		return -ENOMEM;
	fs_ver_from_info(&l->ls_v[l->ls_n - 1].l_ver, e, INT32_MIN);
	return 0;
}

static struct fs_listing *listing_get(struct fs *fs, off_t off, int *err)
{
	sc_stats s;
	struct fs_listing *l;
	uint64_t gen = 0, mg;

	if (sc_get_stats(fs->fs_cache, &s) == 0)
		gen = s.generation;
	pthread_mutex_lock(&fs->fs_lock);
	l = fs->fs_list;
	mg = made_gen;
	if (l && (off > 0 || (l->ls_gen == gen && l->ls_made_gen == mg))) {
		l->ls_refs++;
		pthread_mutex_unlock(&fs->fs_lock);
		return l;
	}
	pthread_mutex_unlock(&fs->fs_lock);

	l = calloc(1, sizeof *l);
	if (!l) {
		*err = ENOMEM;
		return NULL;
	}
	l->ls_gen = gen;
	l->ls_made_gen = mg;
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	int r = sc_foreach(fs->fs_cache, listing_cb, l);
	pthread_rwlock_unlock(&fs->fs_map_lock);
	if (r < 0) {
		listing_free(l);
		*err = fs_errno(r);
		return NULL;
	}
	size_t from_shard = l->ls_n;
	pthread_mutex_lock(&fs->fs_lock);
	for (size_t i = 0; i < fs->fs_kcap; i++)
		for (struct fs_node *d = fs->fs_ktab[i]; d; d = d->n_knext)
			if (d->n_made && !d->n_in_shard &&
			    listing_add(l, d->n_key, d->n_key_len, d->n_name) == 0)
				l->ls_v[l->ls_n - 1].l_made = 1;
	/* a mkdir'd directory whose key got committed meanwhile is listed once */
	for (size_t i = from_shard; i < l->ls_n; i++)
		for (size_t j = 0; j < from_shard; j++)
			if (strcmp(l->ls_v[i].l_name, l->ls_v[j].l_name) == 0) {
				l->ls_v[i].l_made = 2;
				break;
			}
	struct fs_listing *old = fs->fs_list;
	fs->fs_list = l;
	l->ls_refs = 2; /* fs_list's and the caller's */
	int drop_old = old && --old->ls_refs == 0;
	pthread_mutex_unlock(&fs->fs_lock);
	if (drop_old)
		listing_free(old);
	return l;
}

void fs_listing_release(struct fs *fs)
{
	if (fs->fs_list && --fs->fs_list->ls_refs == 0)
		listing_free(fs->fs_list);
	fs->fs_list = NULL;
}

static void readdir_root(fuse_req_t req, struct fs *fs, size_t size, off_t off, int plus)
{
	int err = 0;
	struct fs_listing *l = listing_get(fs, off, &err);
	if (!l) {
		fuse_reply_err(req, err);
		return;
	}
	char *buf = malloc(size);
	if (!buf) {
		listing_put(fs, l);
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t pos = 0;
	/* offsets: 1 ".", 2 "..", 3+i entry i */
	off_t i = off;
	pthread_mutex_lock(&fs->fs_lock);
	for (;; i++) {
		struct fuse_entry_param ep;
		const char *name;
		struct fs_node *d = NULL;
		size_t esz;
		memset(&ep, 0, sizeof ep);
		if (i == 0 || i == 1) {
			name = i == 0 ? "." : "..";
			ep.attr.st_ino = FS_INO_ROOT;
			ep.attr.st_mode = S_IFDIR;
		} else {
			size_t k = (size_t)(i - 2);
			if (k >= l->ls_n)
				break;
			struct fs_lent *le = &l->ls_v[k];
			if (le->l_made == 2)
				continue;
			name = le->l_name;
			if (plus) {
				d = fs_dir_get(fs, le->l_key, le->l_key_len, le->l_name);
				if (!d)
					break;
				if (!le->l_made && !d->n_in_shard) {
					/* status unknown until a child is looked up */
					d->n_ver = le->l_ver;
					d->n_in_shard = 1;
					d->n_mtime.tv_sec = le->l_ver.v_cached_sec;
					d->n_mtime.tv_nsec = le->l_ver.v_cached_nsec;
				}
				fs_fill_entry(fs, d, &ep);
			} else {
				ep.attr.st_ino = 0;
				ep.attr.st_mode = S_IFDIR;
			}
		}
		if (plus)
			esz = fuse_add_direntry_plus(req, buf + pos, size - pos, name, &ep, i + 1);
		else
			esz = fuse_add_direntry(req, buf + pos, size - pos, name, &ep.attr, i + 1);
		if (esz > size - pos) {
			if (d)
				fs_node_maybe_free(fs, d);
			break;
		}
		if (d)
			d->n_nlookup++;
		pos += esz;
	}
	pthread_mutex_unlock(&fs->fs_lock);
	listing_put(fs, l);
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void readdir_entry(fuse_req_t req, struct fs *fs, struct fs_node *d, size_t size,
			  off_t off, int plus)
{
	sc_entry_info e;
	int found = 0, err;
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	err = fs_refresh_dir(fs, d, &e, &found);
	if (err == 0 && found)
		ensure_children(fs, d, &e, 1);
	pthread_mutex_lock(&fs->fs_lock);
	/* entries: ".", "..", metadata.json, blob (committed), pending files */
	struct fs_node *list[4096];
	const char *names[4096];
	size_t n = 0;
	names[n] = ".";
	list[n++] = NULL;
	names[n] = "..";
	list[n++] = NULL;
	/* after an eviction through the mount, the files not yet removed stay
	 * listed (ghosts, see fs_op_unlink) */
	if (d->n_meta) {
		names[n] = FS_META_NAME;
		list[n++] = d->n_meta;
	}
	if (d->n_blob && !fs_pending_find(d, FS_BLOB_NAME)) {
		names[n] = FS_BLOB_NAME;
		list[n++] = d->n_blob;
	}
	for (struct fs_node *p = d->n_pending; p && n < 4096; p = p->n_pnext) {
		names[n] = p->n_name;
		list[n++] = p;
	}
	size_t pos = 0;
	for (size_t i = (size_t)off; i < n; i++) {
		struct fuse_entry_param ep;
		size_t esz;
		memset(&ep, 0, sizeof ep);
		if (list[i] && plus) {
			fs_fill_entry(fs, list[i], &ep);
		} else {
			ep.attr.st_ino = list[i] ? list[i]->n_ino : (i == 0 ? d->n_ino : FS_INO_ROOT);
			ep.attr.st_mode = list[i] ? S_IFREG : S_IFDIR;
		}
		if (plus)
			esz = fuse_add_direntry_plus(req, buf + pos, size - pos, names[i], &ep,
						     (off_t)i + 1);
		else
			esz = fuse_add_direntry(req, buf + pos, size - pos, names[i], &ep.attr,
						(off_t)i + 1);
		if (esz > size - pos)
			break;
		if (list[i] && plus)
			list[i]->n_nlookup++;
		pos += esz;
	}
	pthread_mutex_unlock(&fs->fs_lock);
	pthread_rwlock_unlock(&fs->fs_map_lock);
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct fs *fs = fs_of(req);
	if (ino == FS_INO_ROOT) {
		readdir_root(req, fs, size, off, plus);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *d = fs_node_get(fs, ino);
	int ok = d && d->n_kind == FS_DIR;
	int tree = d && d->n_kind == FS_TDIR;
	pthread_mutex_unlock(&fs->fs_lock);
	if (tree) {
		fs_tree_readdir(req, fs, d, size, off, plus);
		return;
	}
	if (!ok) {
		fuse_reply_err(req, d ? ENOTDIR : ENOENT);
		return;
	}
	readdir_entry(req, fs, d, size, off, plus);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		       struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 0);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
			   struct fuse_file_info *fi)
{
	(void)fi;
	do_readdir(req, ino, size, off, 1);
}

/* ---- read ---- */

static void reply_slice(fuse_req_t req, const void *p, uint64_t len, size_t size, off_t off)
{
	if ((uint64_t)off >= len) {
		fuse_reply_buf(req, NULL, 0);
		return;
	}
	uint64_t n = len - (uint64_t)off;
	if (n > size)
		n = size;
	fuse_reply_buf(req, (const char *)p + off, (size_t)n);
}

static void read_blob(fuse_req_t req, struct fs *fs, struct fs_node *n, size_t size, off_t off)
{
	const unsigned char *p;
	uint64_t len;
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	pthread_mutex_lock(&fs->fs_lock);
	int valid = n->f_epoch == fs->fs_epoch;
	p = n->f_blob;
	len = n->f_ver.v_blob_size;
	pthread_mutex_unlock(&fs->fs_lock);
	if (!valid) {
		/* sc_trim() released the mapping this pointer was in: find the
		 * same version again, if the shard still holds it. */
		sc_entry_info e;
		int err = sc_lookup(fs->fs_cache, n->n_dir->n_key, &e);
		if (err != 0 || e.shard_id != n->f_ver.v_shard_id ||
		    e.offset != n->f_ver.v_offset) {
			pthread_rwlock_unlock(&fs->fs_map_lock);
			fuse_reply_err(req, ESTALE);
			return;
		}
		pthread_mutex_lock(&fs->fs_lock);
		n->f_blob = p = e.blob;
		n->f_epoch = fs->fs_epoch;
		pthread_mutex_unlock(&fs->fs_lock);
	}
	FS_COUNT(fs, st_read_bytes, (uint64_t)off < len ? (len - (uint64_t)off < size ? len - (uint64_t)off : size) : 0);
	reply_slice(req, p, len, size, off);
	pthread_rwlock_unlock(&fs->fs_map_lock);
}

static void op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
		    struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	(void)fi;
	FS_COUNT(fs, st_reads, 1);
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = fs_node_get(fs, ino);
	if (!n) {
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_err(req, ESTALE);
		return;
	}
	switch (n->n_kind) {
	case FS_BLOB:
		pthread_mutex_unlock(&fs->fs_lock);
		/* n stays alive: the kernel holds the inode during the read */
		read_blob(req, fs, n, size, off);
		return;
	case FS_META:
	case FS_STATS:
		pthread_mutex_unlock(&fs->fs_lock);
		reply_slice(req, n->f_text, n->f_text_len, size, off);
		return;
	case FS_PENDING:
		/* the buffer may be reallocated by a writer: reply under the lock */
		reply_slice(req, n->p_buf, n->p_len, size, off);
		pthread_mutex_unlock(&fs->fs_lock);
		return;
	default:
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_err(req, EISDIR);
		return;
	}
}

/* ---- open/flush/xattr: the no-round-trip modes ---- */

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi);

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	(void)fi;
	fuse_reply_err(req, ENOSYS); /* kernel: no OPENDIR/RELEASEDIR, cached readdir */
}

static void op_getxattr(fuse_req_t req, fuse_ino_t ino, const char *name, size_t size)
{
	(void)ino;
	(void)name;
	(void)size;
	fuse_reply_err(req, ENOSYS); /* the kernel remembers: no more round trips */
}

static void op_listxattr(fuse_req_t req, fuse_ino_t ino, size_t size)
{
	(void)ino;
	(void)size;
	fuse_reply_err(req, ENOSYS);
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fs_of(req);
	struct statvfs sv;
	sc_stats s;
	(void)ino;
	memset(&sv, 0, sizeof sv);
	sv.f_bsize = 4096;
	sv.f_frsize = 4096;
	sv.f_namemax = SC_NAME_MAX;
	if (sc_get_stats(fs->fs_cache, &s) == 0) {
		sv.f_blocks = (s.file_size + 4095) / 4096;
		sv.f_files = s.entries;
	}
	if (fs->fs_o.o_ro)
		sv.f_flag |= ST_RDONLY;
	fuse_reply_statfs(req, &sv);
}

/* ops_write.c */
void fs_op_mkdir(fuse_req_t, fuse_ino_t, const char *, mode_t);
void fs_op_create(fuse_req_t, fuse_ino_t, const char *, mode_t, struct fuse_file_info *);
void fs_op_write(fuse_req_t, fuse_ino_t, const char *, size_t, off_t, struct fuse_file_info *);
void fs_op_setattr(fuse_req_t, fuse_ino_t, struct stat *, int, struct fuse_file_info *);
void fs_op_rename(fuse_req_t, fuse_ino_t, const char *, fuse_ino_t, const char *, unsigned);
void fs_op_unlink(fuse_req_t, fuse_ino_t, const char *);
void fs_op_rmdir(fuse_req_t, fuse_ino_t, const char *);
void fs_op_fsync(fuse_req_t, fuse_ino_t, int, struct fuse_file_info *);
void fs_op_mknod(fuse_req_t, fuse_ino_t, const char *, mode_t, dev_t);

const struct fuse_lowlevel_ops fs_ops = {
	.init         = op_init,
	.lookup       = op_lookup,
	.forget       = op_forget,
	.forget_multi = op_forget_multi,
	.getattr      = op_getattr,
	.setattr      = fs_op_setattr,
	.mknod        = fs_op_mknod,
	.mkdir        = fs_op_mkdir,
	.unlink       = fs_op_unlink,
	.rmdir        = fs_op_rmdir,
	.rename       = fs_op_rename,
	.open         = fs_op_open,
	.read         = op_read,
	.write        = fs_op_write,
	.flush        = fs_op_flush,
	.release      = fs_op_release,
	.fsync        = fs_op_fsync,
	.opendir      = op_opendir,
	.readdir      = op_readdir,
	.readdirplus  = op_readdirplus,
	.statfs       = op_statfs,
	.getxattr     = op_getxattr,
	.listxattr    = op_listxattr,
	.create       = fs_op_create,
};
