/*
 * tree.c - the tree view: <mount>/.tree/<key without its leading slash>.
 *
 * The flat view shows one directory per key.  Programs that keep a cache
 * of files in a directory tree (CPython with PYTHONPYCACHEPREFIX, ccache,
 * ...) need the keys as paths instead: under .tree, the file
 * .tree/usr/lib/python3.11/os.cpython-311.pyc is the blob of the entry whose
 * key is /usr/lib/python3.11/os.cpython-311.pyc.  It is the same inode as
 * that entry's flat-view "blob".
 *
 * Directories are implied by the keys under them.  The shard is a hash
 * table with no prefix search, so the daemon keeps an index of every
 * directory and file path the keys imply (struct fs_tidx, built with one
 * sc_foreach() on first use of the tree).  The index follows the shard:
 *   - the daemon's own commits insert their key (fs_put) and are counted
 *     (fs_t_own), so that (shard_id, generation) == (ti_shard, ti_gen +
 *     fs_t_own) proves that nobody else changed the shard;
 *   - any other change (another process, a removal, a compaction) breaks
 *     that equation, and the index is rebuilt (fs_tree_sync) by the
 *     watcher, or by a lookup about to answer ENOENT for a directory.
 *   fs_tlock makes "put + count" atomic against "read the generation +
 *   rebuild": commits read-hold it, a rebuild or a check write-holds it.
 * Directories made by mkdir with nothing under them are kept in the index
 * (te_made) until a key lands below them; rebuilds carry them over.
 *
 * Files in the tree are looked up in the shard itself, never in the index:
 * the index only decides which directories exist and what readdir lists.
 * A name the cache does not know may still be found underneath, in the
 * real file system (under.c: the distribution's .pyc, and the real
 * directories that lead to them); readdir lists only what the cache holds.
 *
 * Writing: create makes a pending file (in memory, like the flat view's);
 * rename commits it under the key of the new name, with no source (the
 * key is a cache path, not a source: its client validates the bytes).  A
 * file left under its own name (cp) is committed under that name by the
 * idle rule, fsync or unmount (commit.c); a temporary file renamed within
 * idle_commit_ms of its last write is never committed under its own name.
 */
#include <errno.h>
#include <stdio.h>  /* RENAME_NOREPLACE */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "fs_i.h"

struct fs_tent {
	char           *te_path;     /* "" for the tree root, else "/a/b" */
	size_t          te_len;
	struct fs_tent *te_hnext;    /* hash chain */
	struct fs_tent *te_parent;
	struct fs_tent *te_child;    /* children, newest first */
	struct fs_tent *te_sib;
	unsigned        te_dir : 1;  /* a directory: keys below, or te_made */
	unsigned        te_file : 1; /* a key */
	unsigned        te_made : 1; /* made by mkdir, no key below yet */
};

struct fs_tidx {
	struct fs_tent **ti_tab;
	size_t           ti_cap, ti_n;
	struct fs_tent  *ti_root;
	uint64_t         ti_shard, ti_gen; /* shard version it was built from */
	uint64_t         ti_lower;         /* and fs_lower_gen */
};

/* ---- the index ---- */

static size_t path_hash(const char *p, size_t len)
{
	return (size_t)XXH3_64bits(p, len);
}

static struct fs_tent *tidx_find(const struct fs_tidx *t, const char *p, size_t len)
{
	struct fs_tent *e = t->ti_tab[path_hash(p, len) & (t->ti_cap - 1)];
	while (e && !(e->te_len == len && memcmp(e->te_path, p, len) == 0))
		e = e->te_hnext;
	return e;
}

static void tidx_grow(struct fs_tidx *t)
{
	size_t ncap = t->ti_cap * 2;
	struct fs_tent **nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return; /* chains get longer */
	for (size_t i = 0; i < t->ti_cap; i++) {
		struct fs_tent *e = t->ti_tab[i], *next;
		for (; e; e = next) {
			next = e->te_hnext;
			size_t s = path_hash(e->te_path, e->te_len) & (ncap - 1);
			e->te_hnext = nt[s];
			nt[s] = e;
		}
	}
	free(t->ti_tab);
	t->ti_tab = nt;
	t->ti_cap = ncap;
}

static struct fs_tent *tidx_add(struct fs_tidx *t, struct fs_tent *parent, const char *p,
				size_t len)
{
	struct fs_tent *e = calloc(1, sizeof(*e));
	if (!e || !(e->te_path = malloc(len + 1))) {
		free(e);
		return NULL;
	}
	memcpy(e->te_path, p, len);
	e->te_path[len] = '\0';
	e->te_len = len;
	if (t->ti_n + 1 > t->ti_cap)
		tidx_grow(t);
	size_t s = path_hash(p, len) & (t->ti_cap - 1);
	e->te_hnext = t->ti_tab[s];
	t->ti_tab[s] = e;
	t->ti_n++;
	e->te_parent = parent;
	if (parent) {
		e->te_sib = parent->te_child;
		parent->te_child = e;
	}
	return e;
}

static struct fs_tidx *tidx_new(void)
{
	struct fs_tidx *t = calloc(1, sizeof(*t));
	if (!t)
		return NULL;
	t->ti_cap = 256;
	t->ti_tab = calloc(t->ti_cap, sizeof(*t->ti_tab));
	if (!t->ti_tab || !(t->ti_root = tidx_add(t, NULL, "", 0))) {
		free(t->ti_tab);
		free(t);
		return NULL;
	}
	t->ti_root->te_dir = 1;
	return t;
}

static void tidx_free(struct fs_tidx *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->ti_cap; i++) {
		struct fs_tent *e = t->ti_tab[i], *next;
		for (; e; e = next) {
			next = e->te_hnext;
			free(e->te_path);
			free(e);
		}
	}
	free(t->ti_tab);
	free(t);
}

/* Other keys are only in the flat view. */
int fs_key_is_path(const char *key, size_t len)
{
	if (len < 2 || key[0] != '/' || key[len - 1] == '/')
		return 0;
	size_t i = 1;
	while (i < len) {
		size_t j = i;
		while (j < len && key[j] != '/')
			j++;
		size_t n = j - i;
		if (n == 0 || n > SC_NAME_MAX || (n == 1 && key[i] == '.') ||
		    (n == 2 && key[i] == '.' && key[i + 1] == '.'))
			return 0;
		i = j + 1;
	}
	return 1;
}

/*
 * Insert @p p (a key if @p file, else a directory made by mkdir) and every
 * directory above it.  @p newdir (may be NULL) receives the deepest
 * directory that got a new child, for readdir-cache invalidation.
 * Returns 0 or -ENOMEM (the index is then incomplete, and marked so by
 * the caller).
 */
static int tidx_insert(struct fs_tidx *t, const char *p, size_t len, int file,
		       const char **newdir, size_t *newdir_len)
{
	struct fs_tent *parent = t->ti_root;
	size_t i = 1;
	if (newdir)
		*newdir = NULL;
	while (i <= len) {
		size_t j = i;
		while (j < len && p[j] != '/')
			j++;
		struct fs_tent *e = tidx_find(t, p, j);
		if (!e) {
			e = tidx_add(t, parent, p, j);
			if (!e)
				return -ENOMEM;
			if (newdir) {
				*newdir = parent->te_path;
				*newdir_len = parent->te_len;
			}
		}
		if (j < len || !file)
			e->te_dir = 1;
		else
			e->te_file = 1;
		parent = e;
		i = j + 1;
	}
	if (file) /* every directory above now has an entry */
		for (struct fs_tent *e = parent->te_parent; e; e = e->te_parent)
			e->te_made = 0;
	else
		parent->te_made = 1;
	return 0;
}

struct build {
	struct fs_tidx *t;
	struct fs_ids  *ids;   /* entries per blob identity (links.c) */
	int err;
};

static int build_cb(const sc_entry_info *e, void *arg)
{
	struct build *b = arg;
	if (fs_ids_add(b->ids, e->blob_id[0], e->blob_size, 1) < 0) {
		b->err = -ENOMEM;
		return 1;
	}
	char buf[SC_MAX_KEY + 1];
	size_t klen;
	const char *key = fs_entry_key(e, buf, &klen);
	if (!key || !fs_key_is_path(key, klen))
		return 0;
	if (tidx_insert(b->t, key, klen, 1, NULL, NULL) < 0) {
		b->err = -ENOMEM;
		return 1;
	}
	return 0;
}

int fs_tree_init(struct fs *fs)
{
	pthread_rwlock_init(&fs->fs_tlock, NULL);
	fs->fs_troot = fs_tdir_get(fs, "", 0);
	return fs->fs_troot ? 0 : -ENOMEM;
}

void fs_tree_free(struct fs *fs)
{
	tidx_free(fs->fs_tidx);
	fs->fs_tidx = NULL;
	fs_ids_free(fs->fs_ids);
	fs->fs_ids = NULL;
}

/* ---- keeping the index in step with the shard ---- */

static int tidx_is_file(void *t, const char *p, size_t len)
{
	struct fs_tent *e = tidx_find(t, p, len);
	return e && e->te_file;
}

/* fs_lock held.  Queue what the kernel must forget after the index
 * changed from @p old to @p t: every tree directory's attributes and
 * readdir cache, and the dentries of directories that no longer exist. */
static void note_rebuilt(struct fs *fs, struct fs_tidx *t)
{
	for (size_t i = 0; i < fs->fs_tcap; i++) {
		struct fs_node *n = fs->fs_ttab[i], *next;
		for (; n; n = next) {
			next = n->n_knext;
			fs_note(fs, FS_NOTE_INODE, n->n_ino, 0, NULL);
			if (n == fs->fs_troot)
				continue;
			struct fs_tent *e = tidx_find(t, n->n_key, n->n_key_len);
			if ((e && e->te_dir) || n->n_under)
				continue; /* an underlay directory exists without keys */
			const char *slash = strrchr(n->n_key, '/');
			struct fs_node *parent = fs_tdir_find(fs, n->n_key, (size_t)(slash - n->n_key));
			if (parent)
				fs_note(fs, FS_NOTE_DELETE, parent->n_ino, n->n_ino, slash + 1);
			fs_attr_drop(fs, FS_TDIR, n->n_key, n->n_key_len);
			fs_tdir_unmap(fs, n); /* a new directory gets a new inode */
			fs_node_maybe_free(fs, n);
		}
	}
	fs_under_recheck(fs, tidx_is_file, t); /* a key put elsewhere shadows them */
}

/*
 * Make sure the index describes the shard as it is now.  @p wait: block
 * for in-flight commits (a lookup); else give up if one runs (watcher).
 * Returns 0 or a negative error (the index is then left as it was);
 * -EAGAIN if !@p wait and a commit was running.
 */
int fs_tree_sync(struct fs *fs, int wait)
{
	sc_stats s;
	int err = 0;
	if (wait)
		pthread_rwlock_wrlock(&fs->fs_tlock);
	else if (pthread_rwlock_trywrlock(&fs->fs_tlock) != 0)
		return -EAGAIN; /* a commit runs: try again on the next tick */
	/* (read before the shard's state: a lower change seen after the
	 * foreach below makes one more rebuild, never one too few) */
	uint64_t lg = __atomic_load_n(&fs->fs_lower_gen, __ATOMIC_SEQ_CST);
	err = sc_get_stats(fs->fs_cache, &s);
	if (err)
		goto out;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_tidx *cur = fs->fs_tidx;
	int same = cur && cur->ti_shard == s.shard_id && cur->ti_lower == lg &&
		   cur->ti_gen + fs->fs_t_own == s.generation;
	pthread_mutex_unlock(&fs->fs_lock);
	if (same || (!cur && !wait))
		goto out;

	struct build b = { tidx_new(), fs_ids_new(), 0 };
	if (!b.t || !b.ids) {
		tidx_free(b.t);
		fs_ids_free(b.ids);
		err = -ENOMEM;
		goto out;
	}
	b.t->ti_shard = s.shard_id;
	b.t->ti_gen = s.generation;
	b.t->ti_lower = lg;
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	err = sc_foreach(fs->fs_cache, build_cb, &b);
	pthread_rwlock_unlock(&fs->fs_map_lock);
	if (err > 0)
		err = 0;
	if (!err)
		err = b.err;
	if (err) {
		tidx_free(b.t);
		fs_ids_free(b.ids);
		goto out;
	}
	pthread_mutex_lock(&fs->fs_lock);
	if (cur) { /* carry over directories made by mkdir that are still empty */
		for (size_t i = 0; i < cur->ti_cap; i++)
			for (struct fs_tent *e = cur->ti_tab[i]; e; e = e->te_hnext)
				if (e->te_made) {
					struct fs_tent *ne = tidx_find(b.t, e->te_path, e->te_len);
					if (!ne || !ne->te_dir || ne->te_made)
						tidx_insert(b.t, e->te_path, e->te_len, 0, NULL, NULL);
				}
	}
	fs->fs_tidx = b.t;
	fs->fs_t_own = 0;
	struct fs_ids *old_ids = fs->fs_ids;
	fs->fs_ids = b.ids;
	fs_ids_note_changes(fs, old_ids); /* link counts someone else changed */
	note_rebuilt(fs, b.t);
	FS_COUNT(fs, st_tree_rebuilds, 1);
	pthread_mutex_unlock(&fs->fs_lock);
	tidx_free(cur);
	fs_ids_free(old_ids);
	fs_wake(fs);
out:
	pthread_rwlock_unlock(&fs->fs_tlock);
	return err;
}

/*
 * Every put of the daemon goes through here: the key enters the tree
 * index and the commit is counted as the daemon's own (see the top).
 */
int fs_put(struct fs *fs, const char *key, size_t klen, const void *buf, size_t len,
	   const sc_put_opts *o)
{
	sc_entry_info old;
	pthread_rwlock_rdlock(&fs->fs_tlock);
	/* the bytes it replaces, for the link counts (links.c), kept once the
	 * tree index exists; fs_tlock keeps a rebuild from setting them up
	 * meanwhile */
	int counted = fs->fs_ids != NULL, had_old = 0;
	if (counted) {
		pthread_rwlock_rdlock(&fs->fs_map_lock);
		had_old = sc_lookup(fs->fs_cache, key, &old) == 0;
		pthread_rwlock_unlock(&fs->fs_map_lock);
	}
	__atomic_add_fetch(&fs->fs_puts_begun, 1, __ATOMIC_SEQ_CST);
	int err = sc_put_ex(fs->fs_cache, key, buf, len, o);
	__atomic_add_fetch(err ? &fs->fs_puts_failed : &fs->fs_puts_done, 1, __ATOMIC_SEQ_CST);
	if (err == 0) {
		uint64_t sum = counted ? fs_blob_sum(buf, len) : 0;
		pthread_mutex_lock(&fs->fs_lock);
		__atomic_add_fetch(&fs->fs_t_own, 1, __ATOMIC_RELAXED);
		if (counted)
			fs_ids_changed(fs, had_old, had_old ? old.blob_id[0] : 0,
				       had_old ? old.blob_size : 0, 1, sum, len);
		fs->fs_put_seq++;
		if (fs->fs_tidx && fs_key_is_path(key, klen)) {
			const char *nd = NULL;
			size_t ndl = 0;
			if (tidx_insert(fs->fs_tidx, key, klen, 1, &nd, &ndl) < 0) {
				fs->fs_tidx->ti_gen = UINT64_MAX / 2; /* rebuild */
			} else if (nd) {
				/* a new name in a directory the kernel may list */
				struct fs_node *td = fs_tdir_find(fs, nd, ndl);
				if (td)
					fs_note(fs, FS_NOTE_INODE, td->n_ino, 0, NULL);
			}
		}
		/* through the flat view too: the entry shadows the underlay */
		if (fs_key_is_path(key, klen))
			fs_under_shadowed(fs, key, klen);
		pthread_mutex_unlock(&fs->fs_lock);
	}
	pthread_rwlock_unlock(&fs->fs_tlock);
	return err;
}

/* The index, built if this is the tree's first use.  fs_lock NOT held. */
static int tree_ready(struct fs *fs)
{
	pthread_mutex_lock(&fs->fs_lock);
	int ready = fs->fs_tidx != NULL;
	pthread_mutex_unlock(&fs->fs_lock);
	return ready ? 0 : fs_tree_sync(fs, 1);
}

/* ---- helpers ---- */

/* Path of @p name in tree directory @p td, in @p buf (SC_MAX_KEY + 1). */
static int child_path(const struct fs_node *td, const char *name, char *buf, size_t *len)
{
	size_t nl = strlen(name);
	if (td->n_key_len + 1 + nl > SC_MAX_KEY)
		return ENAMETOOLONG;
	if (nl > SC_NAME_MAX)
		return ENAMETOOLONG;
	memcpy(buf, td->n_key, td->n_key_len);
	buf[td->n_key_len] = '/';
	memcpy(buf + td->n_key_len + 1, name, nl + 1);
	*len = td->n_key_len + 1 + nl;
	return 0;
}

/* fs_lock held: does directory @p e list anything (not only ghosts)? */
static int has_children(const struct fs_tent *e)
{
	for (const struct fs_tent *c = e->te_child; c; c = c->te_sib)
		if (c->te_dir || c->te_file)
			return 1;
	return 0;
}

/*
 * fs_lock held.  The file @p key was removed through the mount: it leaves
 * the index at once (a ghost until the next rebuild), and its directory
 * stays, as a directory does when its last file is removed (kept like one
 * made by mkdir, until rmdir).
 */
static void tree_file_gone(struct fs *fs, const char *key, size_t klen)
{
	struct fs_tent *f = fs->fs_tidx ? tidx_find(fs->fs_tidx, key, klen) : NULL;
	if (!f || !f->te_file)
		return;
	f->te_file = 0;
	struct fs_tent *parent = f->te_parent;
	if (parent && parent != fs->fs_tidx->ti_root && parent->te_dir && !has_children(parent))
		parent->te_made = 1;
	struct fs_node *td = parent ? fs_tdir_find(fs, parent->te_path, parent->te_len) : NULL;
	if (td)
		fs_note(fs, FS_NOTE_INODE, td->n_ino, 0, NULL); /* its listing changed */
}

/* fs_lock held: is @p path a directory in the index? */
static int is_dir(struct fs *fs, const char *path, size_t len)
{
	struct fs_tent *e = fs->fs_tidx ? tidx_find(fs->fs_tidx, path, len) : NULL;
	return e && e->te_dir;
}

/* ---- lookup ---- */

void fs_tree_lookup_root(fuse_req_t req, struct fs *fs)
{
	struct fuse_entry_param ep;
	pthread_mutex_lock(&fs->fs_lock);
	fs_entry_ref(fs, fs->fs_troot, &ep);
	pthread_mutex_unlock(&fs->fs_lock);
	fuse_reply_entry(req, &ep);
}

/*
 * A file of the tree: the blob of the entry whose key is @p key.  Same
 * freshness rules as the flat view (a stale entry has no file).  The
 * entry directory remembers the tree directory it was seen through, so
 * that a new version also invalidates the tree's dentry
 * (fs_note_children_gone).
 */
static int lookup_file(struct fs *fs, struct fs_node *td, const char *key, size_t klen,
		       const char *name, struct fuse_entry_param *ep)
{
	sc_entry_info e;
	char enc[SC_NAME_MAX + 1];
	int err = 0;

	if (sc_name_encode(key, klen, enc) < 0)
		return ENOENT;
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	int r = sc_lookup(fs->fs_cache, key, &e);
	if (r != 0) {
		pthread_rwlock_unlock(&fs->fs_map_lock);
		return r == SC_ENOTFOUND || r == SC_ECORRUPT ? ENOENT : fs_errno(r);
	}
	int status = sc_entry_status(&e);
	int watched = fs_watch_entry(fs, &e);
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *d = fs_dir_get(fs, key, klen, enc);
	struct fs_node *b = NULL;
	if (!d) {
		err = ENOMEM;
	} else {
		fs_apply_ver(fs, d, &e, status);
		d->n_unwatched = !watched;
		d->n_tparent = td->n_ino;
		b = fs_pending_find(d, FS_BLOB_NAME); /* being written in place */
		if (!b && d->n_in_shard && d->n_ver.v_status == 0)
			b = fs_dir_blob(fs, d, e.blob, fs->fs_epoch);
		if (b) {
			fs_entry_ref(fs, b, ep);
			if (b->n_kind == FS_BLOB && b->f_ver.v_layer > 0)
				FS_COUNT(fs, st_lower_hits, 1);
		} else {
			err = ENOENT; /* stale: as in the flat view, no blob */
			fs_node_maybe_free(fs, d);
		}
	}
	pthread_mutex_unlock(&fs->fs_lock);
	pthread_rwlock_unlock(&fs->fs_map_lock);
	(void)name;
	return err;
}

/*
 * The cache has nothing called @p key: the distribution's .pyc of that
 * name, or the real directory, may be there (under.c).  0 with *@p ep
 * filled, or an errno.
 */
static int lookup_under(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *key,
			size_t klen, uint64_t seq, struct fuse_entry_param *ep)
{
	if (fs->fs_o.o_no_dist_pyc)
		return ENOENT;
	if (klen > 4 && memcmp(key + klen - 4, ".pyc", 4) == 0) {
		int err = fs_under_file(req, fs, td, key, klen, ep);
		if (err == 0) {
			/* one of our commits may have put the key after the
			 * shard said no (@p seq: fs_put_seq before it asked), and
			 * fs_put shadows only the nodes it sees: queue the
			 * kernel's forgetting of this one here */
			pthread_mutex_lock(&fs->fs_lock);
			struct fs_tent *e = tidx_find(fs->fs_tidx, key, klen);
			if (fs->fs_put_seq != seq && e && e->te_file)
				fs_under_shadowed(fs, key, klen);
			pthread_mutex_unlock(&fs->fs_lock);
		}
		if (err != ENOENT)
			return err;
	}
	if (!fs_under_dir(req, fs, key))
		return ENOENT;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = fs_tdir_get(fs, key, klen);
	if (n) {
		n->n_under = 1;
		fs_entry_ref(fs, n, ep);
		ep->entry_timeout = fs_under_entry_ttl(fs);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	return n ? 0 : ENOMEM;
}

void fs_tree_lookup(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *name)
{
	struct fuse_entry_param ep;
	char key[SC_MAX_KEY + 1];
	size_t klen;
	int err = child_path(td, name, key, &klen);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	err = tree_ready(fs);
	if (err) {
		fuse_reply_err(req, fs_errno(err));
		return;
	}
	uint64_t seq = 0;
	for (int pass = 0; pass < 2; pass++) {
		pthread_mutex_lock(&fs->fs_lock);
		if (pass == 0)
			seq = fs->fs_put_seq;
		struct fs_node *n = fs_pending_find(td, name);
		if (!n && is_dir(fs, key, klen))
			n = fs_tdir_get(fs, key, klen);
		if (n) {
			fs_entry_ref(fs, n, &ep);
			pthread_mutex_unlock(&fs->fs_lock);
			fuse_reply_entry(req, &ep);
			return;
		}
		pthread_mutex_unlock(&fs->fs_lock);
		if (pass == 0) {
			err = lookup_file(fs, td, key, klen, name, &ep);
			if (err == 0) {
				fuse_reply_entry(req, &ep);
				return;
			}
			if (err != ENOENT)
				break;
			/* about to say ENOENT: make sure the index is current */
			if (fs_tree_sync(fs, 1) != 0)
				break;
		}
	}
	if (err == ENOENT && lookup_under(req, fs, td, key, klen, seq, &ep) == 0) {
		fuse_reply_entry(req, &ep);
		return;
	}
	/* Nothing here nor underneath (the distribution's file is local:
	 * it goes first): the remote may have the compiled form of the
	 * source this .pyc stands for (remote.c, pyc.c) */
	if (err == ENOENT && fs->fs_remote && fs_remote_fill_pyc(req, fs, key, klen) == 1) {
		err = lookup_file(fs, td, key, klen, name, &ep);
		if (err == 0) {
			fuse_reply_entry(req, &ep);
			return;
		}
	}
	fuse_reply_err(req, err ? err : ENOENT);
}

/* ---- readdir ---- */

void fs_tree_readdir(fuse_req_t req, struct fs *fs, struct fs_node *td, size_t size,
		     off_t off, int plus)
{
	int err = tree_ready(fs);
	if (err) {
		fuse_reply_err(req, fs_errno(err));
		return;
	}
	char *buf = malloc(size);
	if (!buf) {
		fuse_reply_err(req, ENOMEM);
		return;
	}
	size_t pos = 0;
	off_t i = 0;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_tent *dir = tidx_find(fs->fs_tidx, td->n_key, td->n_key_len);
	struct fs_tent *c = dir && dir->te_dir ? dir->te_child : NULL;
	struct fs_node *p = td->n_pending;
	/* offsets: 1 ".", 2 "..", then the index's children, then pending
	 * files.  The index only grows between rebuilds (new children go in
	 * front, hence the count from the end), and the kernel's readdir
	 * cache is invalidated whenever it changes. */
	for (;; i++) {
		struct fuse_entry_param ep;
		const char *name;
		memset(&ep, 0, sizeof ep);
		if (i < 2) {
			name = i == 0 ? "." : "..";
			ep.attr.st_ino = td->n_ino;
			ep.attr.st_mode = S_IFDIR;
		} else if (c) {
			if (!c->te_dir && !c->te_file) { /* removed by rmdir */
				c = c->te_sib;
				continue;
			}
			name = strrchr(c->te_path, '/') + 1;
			ep.attr.st_ino = (ino_t)(path_hash(c->te_path, c->te_len) | 1);
			ep.attr.st_mode = c->te_dir ? S_IFDIR : S_IFREG;
			c = c->te_sib;
		} else if (p) {
			name = p->n_name;
			ep.attr.st_ino = p->n_ino;
			ep.attr.st_mode = S_IFREG;
			p = p->n_pnext;
		} else {
			break;
		}
		if (i < off)
			continue;
		/* no attributes (ep.ino 0): the kernel looks names up when
		 * it needs them, which keeps readdir free of shard probes */
		size_t esz = plus ?
			fuse_add_direntry_plus(req, buf + pos, size - pos, name, &ep, i + 1) :
			fuse_add_direntry(req, buf + pos, size - pos, name, &ep.attr, i + 1);
		if (esz > size - pos)
			break;
		pos += esz;
	}
	pthread_mutex_unlock(&fs->fs_lock);
	fuse_reply_buf(req, buf, pos);
	free(buf);
}

/* ---- writing ---- */

void fs_tree_mkdir(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *name)
{
	struct fuse_entry_param ep;
	char key[SC_MAX_KEY + 1];
	size_t klen;
	sc_entry_info e;
	int err = child_path(td, name, key, &klen);
	if (!err && !fs_key_is_path(key, klen))
		err = EINVAL;
	if (!err && (err = -tree_ready(fs)) != 0)
		err = fs_errno(-err);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	int file = sc_lookup(fs->fs_cache, key, &e) == 0;
	pthread_rwlock_unlock(&fs->fs_map_lock);
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = NULL;
	if (file || fs_pending_find(td, name) || is_dir(fs, key, klen)) {
		err = EEXIST;
	} else if (tidx_insert(fs->fs_tidx, key, klen, 0, NULL, NULL) < 0 ||
		   !(n = fs_tdir_get(fs, key, klen))) {
		err = ENOMEM;
	} else {
		clock_gettime(CLOCK_REALTIME, &n->n_mtime);
		fs_entry_ref(fs, n, &ep);
		fs_note(fs, FS_NOTE_INODE, td->n_ino, 0, NULL);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fs_wake(fs);
	fuse_reply_entry(req, &ep);
}

/* create and mknod.  fs_lock NOT held; @p exe is taken over. */
int fs_tree_create(struct fs *fs, struct fs_node *td, const char *name, char *exe,
		   struct fuse_entry_param *ep)
{
	char key[SC_MAX_KEY + 1];
	size_t klen;
	sc_entry_info e;
	int err = child_path(td, name, key, &klen);
	if (!err && (err = -tree_ready(fs)) != 0)
		err = fs_errno(-err);
	if (err) {
		free(exe);
		return err;
	}
	/* O_EXCL on a committed name: the kernel's lookup usually answers
	 * EEXIST itself; this covers a dentry it did not have */
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	int file = sc_lookup(fs->fs_cache, key, &e) == 0 && sc_entry_status(&e) == 0;
	pthread_rwlock_unlock(&fs->fs_map_lock);
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *p = NULL;
	if (file || fs_pending_find(td, name) || is_dir(fs, key, klen))
		err = EEXIST;
	else if (!(p = fs_child_new(fs, td, FS_PENDING)) || !(p->n_name = strdup(name)))
		err = ENOMEM;
	if (err) {
		if (p) {
			p->n_current = 0;
			fs_node_maybe_free(fs, p);
		}
		pthread_mutex_unlock(&fs->fs_lock);
		free(exe);
		return err;
	}
	p->p_exe = exe;
	clock_gettime(CLOCK_MONOTONIC, &p->p_last);
	clock_gettime(CLOCK_REALTIME, &p->n_mtime);
	p->p_wgen = 1;
	p->n_pnext = td->n_pending;
	td->n_pending = p;
	fs->fs_npending++;
	fs_entry_ref(fs, p, ep);
	/* The name keeps this inode until the kernel itself unlinks or
	 * renames it (rename moves this dentry to the final name, which
	 * then names the committed blob): a long entry timeout saves a
	 * LOOKUP per .pyc on the first warm run.  Attributes stay short. */
	ep->entry_timeout = FS_TTL_LONG;
	fs_note(fs, FS_NOTE_INODE, td->n_ino, 0, NULL);
	pthread_mutex_unlock(&fs->fs_lock);
	return 0;
}

/*
 * rename of a committed file of the tree (@p skey) to @p key: its inode
 * (the kernel moves that dentry) becomes a pending version of itself
 * (fs_pending_begin), committed under the new key like a renamed
 * temporary file, then the old entry is removed.  Two steps in the shard:
 * a crash between them leaves both names, never neither.  Sets
 * *@p src_dir to the old entry's directory, whose flat-view "blob" dentry
 * the caller drops after its reply.  Returns 0 or an errno.
 */
static int rename_committed(struct fs *fs, struct fs_node *td, const char *skey, size_t sklen,
			    const char *key, size_t klen, unsigned flags, uint64_t *src_dir)
{
	sc_entry_info e;
	int err = 0;
	*src_dir = 0;
	if (flags & RENAME_NOREPLACE) {
		pthread_rwlock_rdlock(&fs->fs_map_lock);
		if (sc_lookup(fs->fs_cache, key, &e) == 0 && sc_entry_status(&e) == 0)
			err = EEXIST;
		pthread_rwlock_unlock(&fs->fs_map_lock);
		if (err)
			return err;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *ds = fs_dir_find(fs, skey, sklen);
	struct fs_node *x = ds ? fs_pending_find(ds, FS_BLOB_NAME) : NULL;
	if (!x && ds)
		x = ds->n_blob;
	if (!x || (x->n_kind == FS_PENDING && x->p_busy)) {
		/* not the inode the kernel renames (it is stale, or a commit
		 * of it runs): let mv copy */
		pthread_mutex_unlock(&fs->fs_lock);
		return EXDEV;
	}
	uint64_t xino = x->n_ino;
	int known = ds->n_in_shard;
	struct fs_ver v = ds->n_ver; /* the version the kernel was shown */
	*src_dir = ds->n_ino;
	x->n_nlookup++; /* pin x, and ds through it */
	pthread_mutex_unlock(&fs->fs_lock);

	/* the writer of the moved bytes stays the one the shard recorded */
	char *exe = NULL;
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	if (sc_lookup(fs->fs_cache, skey, &e) == 0 && e.exe_path_len)
		exe = strndup(e.exe_path, e.exe_path_len);
	pthread_rwlock_unlock(&fs->fs_map_lock);
	err = fs_pending_begin(fs, xino, 0, UINT64_MAX);
	pthread_mutex_lock(&fs->fs_lock);
	if (!err && x->n_kind == FS_PENDING && exe) {
		free(x->p_exe);
		x->p_exe = exe;
		exe = NULL;
	}
	pthread_mutex_unlock(&fs->fs_lock);
	free(exe);
	if (!err) {
		int r = fs_commit(fs, x, key, klen, 1);
		err = r ? fs_errno(r) : 0;
	}
	if (!err) {
		pthread_rwlock_rdlock(&fs->fs_tlock); /* see fs_tree_unlink */
		int r = known ? sc_remove_if(fs->fs_cache, skey, v.v_shard_id, v.v_offset) :
				SC_ENOTFOUND;
		pthread_mutex_lock(&fs->fs_lock);
		struct fs_node *d = fs_dir_find(fs, key, klen);
		if (d)
			d->n_tparent = td->n_ino; /* the kernel moved the dentry here */
		/* (ds may be gone: x, which held it, moved to the new key) */
		ds = fs_dir_find(fs, skey, sklen);
		if (r == 0)
			fs_ids_changed(fs, 1, v.v_checksum, v.v_blob_size, 0, 0, 0);
		if (r == 0 && ds && !ds->n_busy)
			fs_apply_ver(fs, ds, NULL, 0);
		if (r == 0)
			tree_file_gone(fs, skey, sklen);
		pthread_mutex_unlock(&fs->fs_lock);
		pthread_rwlock_unlock(&fs->fs_tlock);
		if (r == 0)
			FS_COUNT(fs, st_evictions, 1);
	}
	pthread_mutex_lock(&fs->fs_lock);
	x->n_nlookup--;
	fs_node_maybe_free(fs, x);
	pthread_mutex_unlock(&fs->fs_lock);
	fs_wake(fs);
	return err;
}

void fs_tree_rename(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *name,
		    fuse_ino_t newparent, const char *newname, unsigned flags)
{
	uint64_t src_dir_ino = 0;
	char key[SC_MAX_KEY + 1];
	size_t klen;
	sc_entry_info e;
	int err = 0;
	if (newparent != td->n_ino) {
		fuse_reply_err(req, EXDEV);
		return;
	}
	err = child_path(td, newname, key, &klen);
	if (!err && (err = -tree_ready(fs)) != 0)
		err = fs_errno(-err);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	char skey[SC_MAX_KEY + 1];
	size_t sklen;
	int have_skey = child_path(td, name, skey, &sklen) == 0;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *p = fs_pending_find(td, name);
	int src_dir = !p && have_skey && is_dir(fs, skey, sklen);
	int dst_dir = is_dir(fs, key, klen);
	if (!p && have_skey && !src_dir && fs_under_find(fs, skey, sklen))
		err = EACCES; /* the distribution's file, as for unlink */
	else if (!p)
		err = ENOENT; /* sorted out below */
	else if (dst_dir)
		err = EISDIR;
	else if (strcmp(name, newname) == 0)
		err = -1;
	else if (fs_pending_find(td, newname))
		err = EBUSY; /* another file being written under that name */
	pthread_mutex_unlock(&fs->fs_lock);
	if (!p && err == ENOENT) {
		/* A committed file: its inode moves to the new key
		 * (rename_committed).  A directory is not renamed: EXDEV, on
		 * which mv(1) copies and removes instead.  Over the other
		 * kind, the errors a directory gives. */
		pthread_rwlock_rdlock(&fs->fs_map_lock);
		int dst_file = sc_lookup(fs->fs_cache, key, &e) == 0;
		int src_file = !src_dir && have_skey && sc_lookup(fs->fs_cache, skey, &e) == 0;
		pthread_rwlock_unlock(&fs->fs_map_lock);
		if (src_dir)
			err = dst_file ? ENOTDIR : EXDEV;
		else if (src_file && dst_dir)
			err = EISDIR;
		else if (src_file && strcmp(name, newname) == 0)
			err = -1;
		else if (src_file)
			err = rename_committed(fs, td, skey, sklen, key, klen, flags, &src_dir_ino);
	}
	if (p && err == 0 && (flags & RENAME_NOREPLACE)) {
		pthread_rwlock_rdlock(&fs->fs_map_lock);
		if (sc_lookup(fs->fs_cache, key, &e) == 0 && sc_entry_status(&e) == 0)
			err = EEXIST;
		pthread_rwlock_unlock(&fs->fs_map_lock);
	}
	if (p && err == 0) {
		/* rename(tmp, final): commit tmp's bytes under the key of final
		 * (the kernel holds p and td) */
		int r = fs_commit(fs, p, key, klen, 1);
		err = r ? fs_errno(r) : 0;
	}
	fs_send_attr_notes(fs); /* other names' link counts */
	fuse_reply_err(req, err < 0 ? 0 : err);
	if (err == 0) {
		/* The flat view's dentry of the entry's blob names the version
		 * this rename replaced.  Dropped here, by the renaming thread,
		 * right after the reply: before it, the kernel still holds this
		 * directory's lock, and a rename between the two views taking
		 * the two directory locks in the other order would deadlock us. */
		pthread_mutex_lock(&fs->fs_lock);
		struct fs_node *d = fs_dir_find(fs, key, klen);
		uint64_t dino = d ? d->n_ino : 0;
		pthread_mutex_unlock(&fs->fs_lock);
		if (dino)
			fuse_lowlevel_notify_inval_entry(fs->fs_se, dino, FS_BLOB_NAME,
							 strlen(FS_BLOB_NAME));
		/* the old name's flat "blob" is gone too */
		if (src_dir_ino)
			fuse_lowlevel_notify_inval_entry(fs->fs_se, src_dir_ino, FS_BLOB_NAME,
							 strlen(FS_BLOB_NAME));
	}
}

void fs_tree_unlink(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *name)
{
	char key[SC_MAX_KEY + 1];
	size_t klen;
	int err = child_path(td, name, key, &klen);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *p = fs_pending_find(td, name);
	if (p) {
		/* a temporary file (Python unlinks it when a write failed) */
		if (p->p_busy) {
			err = EBUSY;
		} else {
			fs_pending_drop(fs, td, p);
			fs_note(fs, FS_NOTE_INODE, td->n_ino, 0, NULL);
		}
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_err(req, err);
		return;
	}
	/* a committed file: evict the version the kernel was shown, and
	 * drop a version being written in place (it must not come back) */
	struct fs_node *d = fs_dir_find(fs, key, klen);
	struct fs_node *ip = d ? fs_pending_find(d, FS_BLOB_NAME) : NULL;
	if (ip && ip->p_busy) {
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_err(req, EBUSY);
		return;
	}
	if (ip)
		fs_pending_drop(fs, d, ip);
	int known = d && d->n_in_shard;
	if (!known && fs_under_find(fs, key, klen)) {
		/* the distribution's file: nothing of the cache to evict, and
		 * the mount never changes the file system underneath */
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_err(req, EACCES);
		return;
	}
	uint64_t shard = known ? d->n_ver.v_shard_id : 0, off = known ? d->n_ver.v_offset : 0;
	if (d)
		d->n_busy++;
	pthread_mutex_unlock(&fs->fs_lock);
	/* fs_tlock: no rebuild of the index (and its link counts) between
	 * the removal and the count's update */
	pthread_rwlock_rdlock(&fs->fs_tlock);
	int r = known ? sc_remove_if(fs->fs_cache, key, shard, off) : SC_ENOTFOUND;
	pthread_mutex_lock(&fs->fs_lock);
	if (d) {
		d->n_busy--;
		if (r == 0) {
			fs_ids_changed(fs, 1, d->n_ver.v_checksum, d->n_ver.v_blob_size, 0, 0, 0);
			fs_apply_ver(fs, d, NULL, 0); /* notes both views' dentries */
		}
	}
	if (r == 0)
		tree_file_gone(fs, key, klen);
	pthread_mutex_unlock(&fs->fs_lock);
	pthread_rwlock_unlock(&fs->fs_tlock);
	if (r == 0) {
		FS_COUNT(fs, st_evictions, 1);
		err = 0;
	} else if (r == SC_ECHANGED) {
		err = 0; /* that version is gone; the new one is someone else's */
	} else {
		err = fs_errno(r);
	}
	fs_wake(fs);
	fs_send_attr_notes(fs); /* other names' link counts */
	fuse_reply_err(req, err);
}

void fs_tree_rmdir(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *name)
{
	char key[SC_MAX_KEY + 1];
	size_t klen;
	int err = child_path(td, name, key, &klen);
	if (!err && (err = -tree_ready(fs)) != 0)
		err = fs_errno(-err);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_tent *e = tidx_find(fs->fs_tidx, key, klen);
	struct fs_node *n = fs_tdir_find(fs, key, klen);
	if (!e || !e->te_dir)
		err = n && n->n_under ? EACCES : e ? ENOTDIR : ENOENT; /* EACCES: a real directory */
	else if (has_children(e) || (n && n->n_pending))
		err = ENOTEMPTY;
	else if (!e->te_made)
		err = ENOTEMPTY; /* implied by keys the index has not yet seen go */
	if (!err) {
		e->te_dir = 0;
		e->te_made = 0; /* left as a childless ghost: rebuilds drop it */
		/* its parent stays, as a directory does */
		struct fs_tent *up = e->te_parent;
		if (up && up != fs->fs_tidx->ti_root && !has_children(up))
			up->te_made = 1;
		fs_attr_drop(fs, FS_TDIR, key, klen);
		if (n) {
			fs_tdir_unmap(fs, n);
			fs_node_maybe_free(fs, n);
		}
		fs_note(fs, FS_NOTE_INODE, td->n_ino, 0, NULL);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	fuse_reply_err(req, err);
}
