/*
 * flat.c - the flat view: one directory per key at the top level, named by
 * the key's encoding (sc_name_encode(), scriptcache.h), holding "blob" and
 * "metadata.json" and the pending files written into it; and ".stats".
 * Its handlers are called by ops.c for the root and for entry directories
 * (FS_DIR).
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>  /* RENAME_NOREPLACE */
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

/* Key of the entry directory called @p name: a malloc'd key, or NULL with
 * *err set.  Hashed names are resolved by a scan of the shard in
 * sc_lookup_name() (rare: only keys whose encoding exceeds NAME_MAX). */
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
		struct { char *key; size_t key_len; } h = { NULL, 0 };
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
			sc_entry_info e;
			char buf[SC_MAX_KEY + 1];
			const char *k = NULL;
			if (sc_lookup_name(fs->fs_cache, name, &e) == 0 &&
			    (k = fs_entry_key(&e, buf, &h.key_len)) != NULL &&
			    (h.key = malloc(h.key_len + 1)) != NULL) {
				memcpy(h.key, k, h.key_len);
				h.key[h.key_len] = '\0';
			}
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
	fs_entry_ref(fs, n, &ep);
	pthread_mutex_unlock(&fs->fs_lock);
	fuse_reply_entry(req, &ep);
}

void fs_flat_lookup_root(fuse_req_t req, struct fs *fs, const char *name)
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
	/* no fresh entry: the remote tier may have one (remote.c), put into
	 * the shard before the lookup below finds it */
	if (fs->fs_remote)
		fs_remote_fill(req, fs, key, klen);
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
		fs_entry_ref(fs, d, &ep);
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
		if (d->n_ver.v_status == 0)
			fs_dir_blob(fs, d, e->blob, fs->fs_epoch);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	free(text);
}

void fs_flat_lookup(fuse_req_t req, struct fs *fs, struct fs_node *d, const char *name)
{
	struct fuse_entry_param ep;
	sc_entry_info e;
	int found, err;
	struct fs_node *n = NULL;

	pthread_mutex_lock(&fs->fs_lock);
	n = fs_pending_find(d, name);
	if (n) {
		fs_entry_ref(fs, n, &ep);
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
			n = fs_dir_blob(fs, d, d->d_blob, d->d_epoch);
			if (n) {
				fs_entry_ref(fs, n, &ep);
				if (n->f_ver.v_layer > 0)
					FS_COUNT(fs, st_lower_hits, 1);
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
		fs_entry_ref(fs, n, &ep);
		if (n->n_kind == FS_BLOB && n->f_ver.v_layer > 0)
			FS_COUNT(fs, st_lower_hits, 1);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	pthread_rwlock_unlock(&fs->fs_map_lock);
	if (n)
		fuse_reply_entry(req, &ep);
	else
		fuse_reply_err(req, err ? fs_errno(err) : ENOENT);
}

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
	uint64_t        ls_lower_gen;   /* fs_lower_gen it was built at */
	uint64_t        ls_made_gen;
	size_t          ls_n, ls_cap;
	struct fs_lent *ls_v;
	unsigned        ls_refs;
	int             ls_err;
};

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
	char name[SC_NAME_MAX + 1], buf[SC_MAX_KEY + 1];
	size_t klen;
	const char *key = fs_entry_key(e, buf, &klen);
	if (!key || sc_name_encode(key, klen, name) < 0)
		return 0;
	if (listing_add(l, key, klen, name) < 0)
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
	mg = fs->fs_made_gen;
	uint64_t lg = __atomic_load_n(&fs->fs_lower_gen, __ATOMIC_SEQ_CST);
	if (l && (off > 0 || (l->ls_gen == gen && l->ls_made_gen == mg && l->ls_lower_gen == lg))) {
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
	l->ls_lower_gen = lg;
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

void fs_flat_readdir_root(fuse_req_t req, struct fs *fs, size_t size, off_t off, int plus)
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

void fs_flat_readdir(fuse_req_t req, struct fs *fs, struct fs_node *d, size_t size,
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
	 * listed (ghosts, see fs_flat_unlink) */
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

/* Look up an inode of the given kind under fs_lock; NULL if absent. */
static struct fs_node *get_dir(struct fs *fs, fuse_ino_t ino)
{
	struct fs_node *d = fs_node_get(fs, ino);
	return d && d->n_kind == FS_DIR ? d : NULL;
}

/* After the last entry is gone, give the space back.  sc_compact() rather
 * than sc_clear(): a compaction keeps anything another process put
 * meanwhile, a clear would lose it. */
static void compact_if_empty(struct fs *fs)
{
	sc_stats s;
	if (sc_get_stats(fs->fs_cache, &s) == 0 && s.entries == 0 && s.dead_bytes > 0)
		sc_compact(fs->fs_cache);
}

/* Make a pending file; fs_lock held.  Returns an errno or 0. */
static int make_pending(struct fs *fs, fuse_ino_t parent, const char *name, char *exe,
			int writer, struct fuse_entry_param *ep)
{
	struct fs_node *d = get_dir(fs, parent);
	if (!d)
		return parent == FS_INO_ROOT ? EPERM : ENOENT;
	if (!d->n_in_map || (!d->n_in_shard && !d->n_made))
		return ENOENT;
	if (strcmp(name, FS_META_NAME) == 0)
		return d->n_in_shard ? EEXIST : EPERM;
	if (fs_pending_find(d, name))
		return EEXIST;
	if (strcmp(name, FS_BLOB_NAME) == 0 && d->n_in_shard && d->n_ver.v_status == 0)
		return EEXIST;
	struct fs_node *p = fs_child_new(fs, d, FS_PENDING);
	if (!p)
		return ENOMEM;
	p->n_name = strdup(name);
	if (!p->n_name) {
		p->n_current = 0;
		fs_node_maybe_free(fs, p);
		return ENOMEM;
	}
	p->p_exe = exe;
	p->p_writers = writer;
	fs_pending_touch(p);
	p->n_pnext = d->n_pending;
	d->n_pending = p;
	fs->fs_npending++;
	fs_entry_ref(fs, p, ep);
	return 0;
}

void fs_flat_mkdir(fuse_req_t req, struct fs *fs, const char *name)
{
	struct fuse_entry_param ep;
	sc_entry_info e;
	size_t klen;
	int err = 0;
	if (sc_name_is_hashed(name)) {
		fuse_reply_err(req, EINVAL); /* a hashed name does not say its key */
		return;
	}
	char *key = fs_name_to_key(fs, name, &klen, &err);
	if (!key) {
		fuse_reply_err(req, err == ENOENT ? EINVAL : err);
		return;
	}
	if (!fs_key_is_path(key, klen)) {
		free(key);
		fuse_reply_err(req, EINVAL);
		return;
	}
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	int found = sc_lookup(fs->fs_cache, key, &e) == 0;
	pthread_rwlock_unlock(&fs->fs_map_lock);
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *d = fs_dir_find(fs, key, klen);
	if (found || (d && (d->n_made || d->n_in_shard))) {
		err = EEXIST;
	} else {
		d = fs_dir_get(fs, key, klen, name);
		if (!d) {
			err = ENOMEM;
		} else {
			d->n_made = 1;
			clock_gettime(CLOCK_REALTIME, &d->n_mtime);
			fs_entry_ref(fs, d, &ep);
			fs_listing_dirty(fs);
		}
	}
	pthread_mutex_unlock(&fs->fs_lock);
	free(key);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &ep);
}

/* create and mknod in an entry directory.  fs_lock NOT held; @p exe is
 * taken over. */
int fs_flat_create(struct fs *fs, fuse_ino_t parent, const char *name, char *exe, int writer,
		   struct fuse_entry_param *ep)
{
	pthread_mutex_lock(&fs->fs_lock);
	int err = make_pending(fs, parent, name, exe, writer, ep);
	pthread_mutex_unlock(&fs->fs_lock);
	if (err)
		free(exe);
	return err;
}

void fs_flat_rename(fuse_req_t req, struct fs *fs, fuse_ino_t parent, const char *name,
		    fuse_ino_t newparent, const char *newname, unsigned flags)
{
	int err = 0;
	if (parent != newparent) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *d = get_dir(fs, parent);
	struct fs_node *p = d ? fs_pending_find(d, name) : NULL;
	if (!d)
		err = EPERM; /* entry directories are not renamed */
	else if (!p)
		err = strcmp(name, FS_BLOB_NAME) == 0 || strcmp(name, FS_META_NAME) == 0 ?
			      EPERM : ENOENT;
	else if (strcmp(newname, FS_META_NAME) == 0)
		err = EPERM;
	else if (strcmp(name, newname) == 0)
		err = -1; /* nothing to do */
	else if (p->p_busy)
		err = EBUSY;
	if (err) {
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_err(req, err < 0 ? 0 : err);
		return;
	}
	struct fs_node *t = fs_pending_find(d, newname);
	if (strcmp(newname, FS_BLOB_NAME) == 0) {
		if ((flags & RENAME_NOREPLACE) &&
		    (t || (d->n_in_shard && d->n_ver.v_status == 0)))
			err = EEXIST;
		pthread_mutex_unlock(&fs->fs_lock);
		if (!err) {
			/* p and d stay alive: the kernel holds both */
			int r = fs_commit(fs, p, d->n_key, d->n_key_len, 1);
			err = r ? fs_errno(r) : 0;
		}
		/* The tree view's dentry of this key names the version the
		 * rename replaced: dropped right after the reply, as in
		 * fs_tree_rename (before it, the kernel holds this directory's
		 * lock).  Taken now: after the reply d may be forgotten. */
		char base[SC_NAME_MAX + 1] = "";
		pthread_mutex_lock(&fs->fs_lock);
		uint64_t tparent = err ? 0 : d->n_tparent;
		const char *slash = strrchr(d->n_key, '/');
		if (tparent && slash && strlen(slash + 1) < sizeof base)
			strcpy(base, slash + 1);
		pthread_mutex_unlock(&fs->fs_lock);
		fs_send_attr_notes(fs); /* other names' link counts */
		fuse_reply_err(req, err);
		if (tparent && base[0])
			fuse_lowlevel_notify_inval_entry(fs->fs_se, tparent, base, strlen(base));
		return;
	}
	if (t && (flags & RENAME_NOREPLACE)) {
		err = EEXIST;
	} else {
		char *nn = strdup(newname);
		if (!nn) {
			err = ENOMEM;
		} else {
			if (t)
				fs_pending_drop(fs, d, t);
			free(p->n_name);
			p->n_name = nn;
		}
	}
	pthread_mutex_unlock(&fs->fs_lock);
	fuse_reply_err(req, err);
}

void fs_flat_unlink(fuse_req_t req, struct fs *fs, fuse_ino_t parent, const char *name)
{
	int err = 0;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *d = get_dir(fs, parent);
	if (!d) {
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_err(req, EPERM); /* .stats and friends */
		return;
	}
	struct fs_node *p = fs_pending_find(d, name);
	/* a pending "blob" of an entry in the shard is a version being
	 * written in place: removing the name removes the entry too */
	int in_place = p && d->n_in_shard && strcmp(name, FS_BLOB_NAME) == 0;
	if (p) {
		if (p->p_busy)
			err = EBUSY;
		else
			fs_pending_drop(fs, d, p);
		if (err || !in_place) {
			pthread_mutex_unlock(&fs->fs_lock);
			fuse_reply_err(req, err);
			return;
		}
	}
	pthread_mutex_unlock(&fs->fs_lock);
	if (strcmp(name, FS_BLOB_NAME) != 0 && strcmp(name, FS_META_NAME) != 0) {
		fuse_reply_err(req, ENOENT);
		return;
	}
	/*
	 * Removing either file evicts the entry at once.  The directory and
	 * the other file stay as they were until removed themselves (the
	 * other file is a "ghost" of the evicted version), so that `rm -r`
	 * finds what it listed, as on any filesystem.
	 */
	int is_blob = strcmp(name, FS_BLOB_NAME) == 0;
	pthread_mutex_lock(&fs->fs_lock);
	int in_shard = d->n_in_shard;
	uint64_t v_shard = d->n_ver.v_shard_id, v_off = d->n_ver.v_offset;
	d->n_busy++; /* the watcher must not see the entry vanish and drop us */
	pthread_mutex_unlock(&fs->fs_lock);
	/* Evict the version the user was shown, never one another process
	 * committed since (that one is shown after the next resync). */
	/* fs_tlock: no rebuild of the link counts between the removal and
	 * their update below */
	pthread_rwlock_rdlock(&fs->fs_tlock);
	int r = in_shard ? sc_remove_if(fs->fs_cache, d->n_key, v_shard, v_off) : SC_ENOTFOUND;
	pthread_mutex_lock(&fs->fs_lock);
	d->n_busy--;
	if (r == SC_ECHANGED) {
		pthread_mutex_unlock(&fs->fs_lock);
		pthread_rwlock_unlock(&fs->fs_tlock);
		fs_wake(fs);
		fuse_reply_err(req, 0); /* that version is gone already */
		return;
	}
	if (r != 0 && r != SC_ENOTFOUND) {
		pthread_mutex_unlock(&fs->fs_lock);
		pthread_rwlock_unlock(&fs->fs_tlock);
		fuse_reply_err(req, fs_errno(r));
		return;
	}
	d->n_made = 1;
	if (r == 0)
		fs_ids_changed(fs, 1, d->n_ver.v_checksum, d->n_ver.v_blob_size, 0, 0, 0);
	if (d->n_in_shard) {
		d->n_in_shard = 0;
		fs_note(fs, FS_NOTE_INODE, d->n_ino, 0, NULL);
	}
	fs_note_tree_gone(fs, d);
	struct fs_node *gone = is_blob ? d->n_blob : d->n_meta;
	if (gone) {
		if (is_blob)
			d->n_blob = NULL;
		else
			d->n_meta = NULL;
		gone->n_current = 0;
		fs_node_maybe_free(fs, gone);
	}
	fs_listing_dirty(fs);
	fs_note(fs, FS_NOTE_INODE, FS_INO_ROOT, 0, NULL);
	pthread_mutex_unlock(&fs->fs_lock);
	pthread_rwlock_unlock(&fs->fs_tlock);
	if (r == 0) {
		FS_COUNT(fs, st_evictions, 1);
		compact_if_empty(fs);
	}
	fs_wake(fs);
	fs_send_attr_notes(fs); /* other names' link counts */
	fuse_reply_err(req, 0);
}

void fs_flat_rmdir(fuse_req_t req, struct fs *fs, const char *name)
{
	size_t klen;
	int err = 0;
	char *key = fs_name_to_key(fs, name, &klen, &err);
	if (!key) {
		fuse_reply_err(req, err);
		return;
	}
	int r = sc_remove(fs->fs_cache, key);
	if (r != 0 && r != SC_ENOTFOUND) {
		free(key);
		fuse_reply_err(req, fs_errno(r));
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *d = fs_dir_find(fs, key, klen);
	if (d) {
		int busy = 0;
		for (struct fs_node *p = d->n_pending; p; p = p->n_pnext)
			busy |= p->p_busy;
		if (busy) {
			err = EBUSY;
		} else {
			while (d->n_pending)
				fs_pending_drop(fs, d, d->n_pending);
			if (d->n_blob || d->n_meta)
				fs_note_children_gone(fs, d);
			fs_detach_children(fs, d);
			d->n_in_shard = 0;
			d->n_made = 0;
			fs_attr_drop(fs, FS_BLOB, key, klen);
			fs_attr_drop(fs, FS_DIR, key, klen);
			fs_dir_unmap(fs, d);
			fs_node_maybe_free(fs, d);
		}
	} else if (r == SC_ENOTFOUND) {
		err = ENOENT;
	}
	fs_listing_dirty(fs);
	pthread_mutex_unlock(&fs->fs_lock);
	free(key);
	if (r == 0) {
		FS_COUNT(fs, st_evictions, 1);
		compact_if_empty(fs);
	}
	fs_wake(fs);
	fuse_reply_err(req, err);
}
