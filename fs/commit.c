/*
 * commit.c - pending files and their commit to the shard.
 *
 * Committed versions are immutable in the shard.  New bytes come in as
 * *pending* files, held in memory by the daemon and served by it to every
 * reader through the mount, and reach the shard in one sc_put_ex() call
 * ("commit") when they are complete:
 *   - a pending file is renamed over a name (flat: "blob"; tree: any
 *     name)                                          (atomic replace)
 *   - a pending file is fsync'ed
 *   - a pending file is idle for idle_commit_ms and no process has it open
 *     for writing (checked in /proc), or the mount is unmounted, or, with
 *     -o commit_on_close, its last writer closes it.  This covers a plain
 *     `cp` to <entry>/blob or to a name of the tree, and a committed file
 *     written in place.
 * A write to a committed blob (WRITE, or SETATTR of its size: O_TRUNC,
 * ftruncate) first turns that inode into a pending version of its entry
 * (fs_pending_begin): the same inode, so readers in both views see every
 * write at once, while the shard keeps serving the committed version to
 * everyone else until the pending one is complete.
 * A commit runs in the thread that asks for it with no lock held, so
 * readers on other threads never wait for it.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_i.h"

char *fs_writer_exe(pid_t pid)
{
	char link[64], buf[PATH_MAX];
	snprintf(link, sizeof link, "/proc/%d/exe", (int)pid);
	ssize_t n = readlink(link, buf, sizeof buf - 1);
	if (n <= 0)
		return NULL;
	buf[n] = '\0';
	if (n > 10 && strcmp(buf + n - 10, " (deleted)") == 0)
		return NULL;
	return strdup(buf);
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void fs_pending_touch(struct fs_node *p)
{
	clock_gettime(CLOCK_MONOTONIC, &p->p_last);
	clock_gettime(CLOCK_REALTIME, &p->n_mtime);
	p->p_wgen++;
}

/* Drop a pending file from its directory (unlink, replace, rmdir). */
void fs_pending_drop(struct fs *fs, struct fs_node *d, struct fs_node *p)
{
	fs_pending_unlink(fs, d, p);
	if (!p->p_busy) {
		/* (a commit under way reads p_buf with no lock held: the node
		 * frees it when the commit is over and the kernel forgets it) */
		free(p->p_buf);
		p->p_buf = NULL;
		p->p_len = p->p_cap = 0;
	}
	fs_node_maybe_free(fs, p);
}

/* Wait for the commit of @p p to end (writes, truncation).  fs_lock held;
 * returns with it held.  The node stays alive: the kernel holds it. */
void fs_pending_wait(struct fs *fs, struct fs_node *p)
{
	while (p->n_kind == FS_PENDING && p->p_busy)
		pthread_cond_wait(&fs->fs_commit_cv, &fs->fs_lock);
}

/*
 * A write begins on inode @p ino (WRITE, SETATTR of the size, an OPEN for
 * writing with commit_on_close).  If it is a committed blob, it becomes a
 * pending version of its entry holding the first @p keep bytes of the
 * committed one (UINT64_MAX: all of them): same inode, same names in both
 * views.  A blob that is no longer its entry's current version (replaced
 * since the writer opened it) becomes a pending file of no name: its
 * writes succeed, as on an unlinked file, and are never committed.
 * @p pid: the writer (its executable is recorded as the entry's writer).
 * Returns 0 (the inode is pending now, or was not a blob) or an errno
 * (EROFS: a lower shard's blob).  No lock held.
 */
int fs_pending_begin(struct fs *fs, uint64_t ino, pid_t pid, uint64_t keep)
{
	sc_entry_info e;
	int err = 0;
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;

	pthread_rwlock_rdlock(&fs->fs_map_lock);
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *b = fs_node_get(fs, ino);
	if (!b || b->n_kind != FS_BLOB) {
		pthread_mutex_unlock(&fs->fs_lock);
		pthread_rwlock_unlock(&fs->fs_map_lock);
		return b ? 0 : ESTALE;
	}
	if (b->f_ver.v_layer > 0) {
		/* A lower shard's blob is read-only: it is never written in
		 * place (its bytes are not the top shard's to turn into a
		 * pending version).  A new version renamed over its name goes
		 * to the top shard (fs_commit). */
		pthread_mutex_unlock(&fs->fs_lock);
		pthread_rwlock_unlock(&fs->fs_map_lock);
		return EROFS;
	}
	/* the kernel holds b (a WRITE or SETATTR on it is running) */
	const unsigned char *src = b->f_blob;
	int valid = b->f_epoch == fs->fs_epoch;
	struct fs_ver v = b->f_ver;
	struct fs_node *d = b->n_dir;
	pthread_mutex_unlock(&fs->fs_lock);

	uint64_t want = keep < v.v_blob_size ? keep : v.v_blob_size;
	if (want && !valid) {
		/* sc_trim() released the mapping: find the same version again */
		if (sc_lookup(fs->fs_cache, d->n_key, &e) == 0 && e.shard_id == v.v_shard_id &&
		    e.offset == v.v_offset)
			src = e.blob;
		else
			err = ESTALE;
	}
	if (!err && want) {
		cap = 4096;
		while (cap < want)
			cap *= 2;
		buf = malloc(cap);
		if (buf) {
			memcpy(buf, src, (size_t)want);
			len = (size_t)want;
		} else {
			err = ENOMEM;
		}
	}
	pthread_rwlock_unlock(&fs->fs_map_lock);
	char *exe = err ? NULL : fs_writer_exe(pid);
	char *name = err ? NULL : strdup(FS_BLOB_NAME);
	if (!err && !name)
		err = ENOMEM;

	pthread_mutex_lock(&fs->fs_lock);
	if (!err && b->n_kind == FS_BLOB) {
		/* (another writer may have begun first: then use its version) */
		int named = b->n_current && d->n_blob == b && !fs_pending_find(d, FS_BLOB_NAME);
		b->n_kind = FS_PENDING;
		free(b->n_name); /* (a blob written before keeps its old ones) */
		free(b->p_exe);
		b->n_name = name;
		name = NULL;
		b->p_buf = buf;
		b->p_len = len;
		b->p_cap = cap;
		buf = NULL;
		b->p_exe = exe;
		exe = NULL;
		b->p_cgen = 0;
		b->p_writers = 0;
		fs_pending_touch(b);
		if (named) {
			d->n_blob = NULL;
			b->n_pnext = d->n_pending;
			d->n_pending = b;
			fs->fs_npending++;
			/* metadata.json describes the committed version, which
			 * the shard still holds: it stays */
		} else {
			b->n_current = 0;
		}
	}
	pthread_mutex_unlock(&fs->fs_lock);
	free(buf);
	free(exe);
	free(name);
	return err;
}

int fs_pending_resize(struct fs_node *p, size_t len)
{
	if (len > SC_MAX_BLOB)
		return EFBIG;
	if (len > p->p_cap) {
		size_t nc = p->p_cap ? p->p_cap : 4096;
		while (nc < len)
			nc *= 2;
		unsigned char *nb = realloc(p->p_buf, nc);
		if (!nb)
			return ENOMEM;
		p->p_buf = nb;
		p->p_cap = nc;
	}
	if (len > p->p_len)
		memset(p->p_buf + p->p_len, 0, len - p->p_len);
	p->p_len = len;
	return 0;
}

/*
 * The one commit: the bytes of pending file @p p become the entry of @p key
 * in one sc_put_ex(), so readers see the old entry or the new one, never a
 * mix.  Both views call it: @p p lives in an entry directory (flat view:
 * @p key is that directory's key) or in a tree directory (tree view: @p key
 * is the path of the name it is renamed to).  A file committed under
 * another key than its directory's ("moving": every tree commit, and the
 * rename of a committed tree file, whose pending version lives in its old
 * entry's directory) becomes the blob of that key's entry directory, and
 * has no source (a tree key is a cache path).
 *
 * Every WRITE to @p p was answered before the request that commits it
 * arrived, so p_buf holds all of them; while the commit runs with no lock
 * held, p_busy makes writes and truncation wait (fs_pending_wait) and
 * renames and unlinks fail with EBUSY.  Afterwards a file committed
 * @p as_blob is a committed blob: a later write begins its next pending
 * version (fs_pending_begin).
 *
 * @p as_blob: @p p becomes the entry's blob inode (rename over "blob" or
 * in the tree, plain cp, close); else (fsync) it stays a pending file and
 * remembers the version it made, so that a later rename of the same bytes
 * writes nothing.
 *
 * Returns 0 or a negative code (SC_E* or -errno; fs_errno() maps it).
 */
int fs_commit(struct fs *fs, struct fs_node *p, const char *key, size_t klen, int as_blob)
{
	sc_put_opts o;
	struct stat st;
	sc_entry_info e;
	char enc[SC_NAME_MAX + 1];
	char *exe, *src = NULL;
	size_t src_len = 0;
	int err = 0, lerr, status = 0, watched = 1, skip_put;

	/* the directory p was written in; the kernel holds p, and p holds it */
	struct fs_node *pd = p->n_dir;
	int tree = pd->n_kind == FS_TDIR;
	int moving = tree || pd->n_key_len != klen || memcmp(pd->n_key, key, klen) != 0;
	if (moving && sc_name_encode(key, klen, enc) < 0)
		return -EINVAL;

	pthread_mutex_lock(&fs->fs_lock);
	if (p->n_kind != FS_PENDING || !p->n_current) {
		pthread_mutex_unlock(&fs->fs_lock);
		return p->n_kind == FS_BLOB ? 0 : -ENOENT;
	}
	if (p->p_busy) {
		pthread_mutex_unlock(&fs->fs_lock);
		return -EBUSY;
	}
	/* While busy, writes and truncation wait, so p_buf is stable without
	 * the lock. */
	p->p_busy = 1;
	/* A flat key names the source the bytes were compiled from, unless
	 * the version they replace was put with no source.  A tree key is a
	 * cache path, not a source: its client validates the bytes itself. */
	int with_source = !moving && (!pd->n_in_shard || pd->n_ver.v_has_source);
	uint64_t wgen = p->p_wgen;
	skip_put = p->p_cgen == wgen;
	uint64_t c_shard = p->p_c_shard, c_off = p->p_c_off;
	exe = p->p_exe ? strdup(p->p_exe) : NULL;
	pthread_mutex_unlock(&fs->fs_lock);

	if (skip_put) {
		/* fsync committed exactly these bytes; unless someone replaced
		 * that version since, the rename has nothing to write */
		pthread_rwlock_rdlock(&fs->fs_map_lock);
		lerr = sc_lookup(fs->fs_cache, key, &e);
		skip_put = lerr == 0 && e.shard_id == c_shard && e.offset == c_off;
		pthread_rwlock_unlock(&fs->fs_map_lock);
	}
	if (!skip_put) {
		char pytag[300];
		memset(&o, 0, sizeof o);
		if (with_source && stat(key, &st) == 0 && S_ISREG(st.st_mode))
			o.source = &st;
		else
			o.no_source = 1;
		o.tag = fs->fs_o.o_tag;
		o.exe_path = exe;
		const void *bytes = p->p_buf ? (const void *)p->p_buf : "";
		/* A tree .pyc compiled from the source its name stands for
		 * records that source's hash and a tag of its own, so that push
		 * can share it (pyc.c, docs/REMOTE.md) */
		if (tree)
			src = fs_pyc_commit_source(fs, key, klen, bytes, p->p_len, pytag,
						   sizeof pytag, &src_len);
		if (src) {
			/* the key is a cache path: a file there is not its source */
			o.source = NULL;
			o.no_source = 1;
			o.tag = pytag;
			o.source_bytes = src;
			o.source_len = src_len;
		}
		err = fs_put(fs, key, klen, bytes, p->p_len, &o);
		if (FS_IS_ERRNO(err) && exe) {
			/* the writer's executable could not be identified */
			o.exe_path = NULL;
			err = fs_put(fs, key, klen, bytes, p->p_len, &o);
		}
	}
	free(exe);
	free(src);
	if (err) {
		FS_COUNT(fs, st_commit_errors, 1);
		pthread_mutex_lock(&fs->fs_lock);
		p->p_busy = 0;
		pthread_cond_broadcast(&fs->fs_commit_cv);
		pthread_mutex_unlock(&fs->fs_lock);
		return err;
	}
	if (!skip_put)
		FS_COUNT(fs, st_commits, 1);

	pthread_rwlock_rdlock(&fs->fs_map_lock);
	lerr = sc_lookup(fs->fs_cache, key, &e);
	if (lerr == 0) {
		status = sc_entry_status(&e);
		watched = fs_watch_entry(fs, &e);
	}
	pthread_mutex_lock(&fs->fs_lock);
	/* the entry directory of key: in the tree view, found or made now */
	struct fs_node *d = moving ? fs_dir_get(fs, key, klen, enc) : pd;
	/* a key the root listing did not show yet (a rename into the tree);
	 * the flat view writes only into listed directories */
	int newly_listed = d && !d->n_in_shard && !d->n_made;
	if (d && lerr == 0) {
		fs_apply_ver(fs, d, &e, status);
		d->n_unwatched = !watched;
		if (tree)
			d->n_tparent = pd->n_ino;
	}
	if (as_blob) {
		/* the name replaces a version being written in place (or a
		 * pending "blob" of the flat view): as on a directory, that
		 * file's writer keeps an inode no name leads to any more */
		struct fs_node *old = d ? fs_pending_find(d, FS_BLOB_NAME) : NULL;
		if (old && old != p)
			fs_pending_drop(fs, d, old);
		fs_pending_unlink(fs, pd, p);
		free(p->p_buf);
		p->p_buf = NULL;
		p->p_len = p->p_cap = 0;
		p->n_kind = FS_BLOB;
		p->f_epoch = UINT64_MAX; /* reads revalidate, and fail ESTALE */
		if (d && lerr == 0) {
			p->f_ver = d->n_ver;
			p->f_blob = e.blob;
			p->f_epoch = fs->fs_epoch;
			if (moving) {
				/* the renamed inode is the entry's blob from now
				 * on, in both views */
				p->n_dir = d;
				d->n_refs++;
				pd->n_refs--;
			}
			if (status == 0 && !d->n_blob) {
				d->n_blob = p;
				p->n_current = 1;
			}
		}
		/* size and times are the committed version's now; the page
		 * cache holds exactly its bytes */
		fs_note(fs, FS_NOTE_ATTR, p->n_ino, 0, NULL);
	} else {
		p->p_cgen = wgen;
		if (lerr == 0) {
			p->p_c_shard = e.shard_id;
			p->p_c_off = e.offset;
		}
	}
	p->p_busy = 0;
	pthread_cond_broadcast(&fs->fs_commit_cv);
	fs_note(fs, FS_NOTE_INODE, pd->n_ino, 0, NULL);
	if (newly_listed) {
		/* the root's mtime is the time its listing changed (docs/FS.md);
		 * the watcher, which sets it for other writers' commits, leaves
		 * ours alone.  Noting the root after every commit cost each
		 * next path walk a GETATTR of the root. */
		clock_gettime(CLOCK_REALTIME, &fs->fs_root_mtime);
		fs_note(fs, FS_NOTE_INODE, FS_INO_ROOT, 0, NULL);
	}
	fs_listing_dirty(fs);
	fs_node_maybe_free(fs, p);
	if (d && d != pd)
		fs_node_maybe_free(fs, d);
	pthread_mutex_unlock(&fs->fs_lock);
	pthread_rwlock_unlock(&fs->fs_map_lock);
	fs_wake(fs);
	return 0;
}

/* ---- plain cp: commit after idle, if nobody holds the file for writing ---- */

/* Nonzero if some process has @p path open for writing.  Processes whose
 * /proc/<pid>/fd we may not read (other users) are invisible: for them only
 * the idle delay protects a slow writer (documented in docs/FS.md). */
int fs_has_writers(const char *path)
{
	DIR *proc = opendir("/proc");
	struct dirent *de;
	int found = 0;
	if (!proc)
		return 0;
	while (!found && (de = readdir(proc))) {
		char fddir[300], link[600], target[PATH_MAX];
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(fddir, sizeof fddir, "/proc/%s/fd", de->d_name);
		DIR *fds = opendir(fddir);
		if (!fds)
			continue;
		struct dirent *fe;
		while ((fe = readdir(fds))) {
			if (fe->d_name[0] == '.')
				continue;
			snprintf(link, sizeof link, "%s/%s", fddir, fe->d_name);
			ssize_t n = readlink(link, target, sizeof target - 1);
			if (n <= 0)
				continue;
			target[n] = '\0';
			if (strcmp(target, path) != 0)
				continue;
			char info[600], buf[256];
			snprintf(info, sizeof info, "/proc/%s/fdinfo/%s", de->d_name, fe->d_name);
			FILE *f = fopen(info, "re");
			unsigned long flags = 0;
			if (f) {
				while (fgets(buf, sizeof buf, f))
					if (sscanf(buf, "flags: %lo", &flags) == 1)
						break;
				fclose(f);
			}
			if ((flags & O_ACCMODE) != O_RDONLY) {
				found = 1;
				break;
			}
		}
		closedir(fds);
	}
	closedir(proc);
	return found;
}

/* Nonzero if a process has entry directory @p d's blob open for writing,
 * through the flat view or the tree view (the same inode). */
int fs_blob_has_writers(struct fs *fs, const struct fs_node *d)
{
	char path[PATH_MAX];
	snprintf(path, sizeof path, "%s/%s/%s", fs->fs_o.o_mountpoint, d->n_name, FS_BLOB_NAME);
	if (fs_has_writers(path))
		return 1;
	if (!fs_key_is_path(d->n_key, d->n_key_len))
		return 0;
	snprintf(path, sizeof path, "%s/%s%s", fs->fs_o.o_mountpoint, FS_TREE_NAME, d->n_key);
	return fs_has_writers(path);
}

/* A commit to make: pending file p under key (p pins itself, and its
 * directory through it). */
struct cand {
	struct fs_node *d, *p;
	char *key;
	size_t klen;
	uint64_t wgen;
};

static int cand_add(struct cand **v, size_t *n, size_t *cap, struct fs_node *d,
		    struct fs_node *p)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct cand *nv = realloc(*v, nc * sizeof(*nv));
		if (!nv)
			return -1;
		*v = nv;
		*cap = nc;
	}
	struct cand *c = &(*v)[*n];
	c->d = d;
	c->p = p;
	if (d->n_kind == FS_DIR) {
		c->key = strdup(d->n_key);
		c->klen = d->n_key_len;
	} else if (asprintf(&c->key, "%s/%s", d->n_key, p->n_name) < 0) {
		c->key = NULL;
	} else {
		c->klen = strlen(c->key);
	}
	if (!c->key)
		return -1;
	c->wgen = p->p_wgen;
	p->n_nlookup++;
	(*n)++;
	return 0;
}

/* Is pending file @p p complete by the idle rule (or @p all: unmount)? */
static int idle_done(const struct fs_node *p, int all, double now, double idle)
{
	double last = (double)p->p_last.tv_sec + p->p_last.tv_nsec / 1e9;
	if (p->p_busy || p->p_wgen == p->p_cgen)
		return 0;
	if (p->p_wgen == p->p_failgen && !all)
		return 0; /* failed with these bytes: wait for a change, or unmount */
	return all || (now - last >= idle && p->p_writers == 0);
}

/*
 * The idle rule: commit the pending files that nobody wrote for
 * idle_commit_ms and that no process holds open for writing, or (@p all,
 * at unmount) every one: a plain `cp` to <entry>/blob, a blob written in
 * place, a file copied or written to a new name of the tree.  Other names
 * in an entry directory stay pending (they reach the shard by a rename
 * over "blob").  No lock held.
 */
void fs_commit_idle(struct fs *fs, int all)
{
	struct cand *v = NULL;
	size_t n = 0, cap = 0;
	double now = mono_now(), idle = fs->fs_o.o_idle_ms / 1000.0;

	pthread_mutex_lock(&fs->fs_lock);
	if (fs->fs_npending == 0) {
		pthread_mutex_unlock(&fs->fs_lock);
		return;
	}
	for (size_t i = 0; i < fs->fs_kcap; i++)
		for (struct fs_node *d = fs->fs_ktab[i]; d; d = d->n_knext)
			for (struct fs_node *p = d->n_pending; p; p = p->n_pnext)
				if (strcmp(p->n_name, FS_BLOB_NAME) == 0 &&
				    idle_done(p, all, now, idle) && cand_add(&v, &n, &cap, d, p) < 0)
					goto collected;
	for (size_t i = 0; i < fs->fs_tcap; i++)
		for (struct fs_node *td = fs->fs_ttab[i]; td; td = td->n_knext)
			for (struct fs_node *p = td->n_pending; p; p = p->n_pnext)
				if (idle_done(p, all, now, idle) && cand_add(&v, &n, &cap, td, p) < 0)
					goto collected;
collected:
	pthread_mutex_unlock(&fs->fs_lock);

	for (size_t i = 0; i < n; i++) {
		struct cand *c = &v[i];
		int busy = 0;
		if (!all) {
			if (c->d->n_kind == FS_DIR) {
				busy = fs_blob_has_writers(fs, c->d);
			} else {
				char path[PATH_MAX];
				snprintf(path, sizeof path, "%s/%s%s", fs->fs_o.o_mountpoint,
					 FS_TREE_NAME, c->key);
				busy = fs_has_writers(path);
			}
		}
		int r = busy ? 0 : fs_commit(fs, c->p, c->key, c->klen, 1);
		pthread_mutex_lock(&fs->fs_lock);
		if (r && r != -EBUSY && c->p->n_kind == FS_PENDING)
			c->p->p_failgen = c->wgen;
		c->p->n_nlookup--;
		fs_node_maybe_free(fs, c->p);
		pthread_mutex_unlock(&fs->fs_lock);
		free(c->key);
	}
	free(v);
}
