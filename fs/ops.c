/*
 * ops.c - the request table of scriptcachefs: every FUSE request enters
 * here and goes to the view its directory belongs to (flat.c for the root
 * and entry directories, tree.c under .tree) or, for requests on a file,
 * is answered here.
 *
 * The fast path for a warm `cat <entry>/blob`: the dentries and attributes
 * are cached by the kernel (long timeouts, explicit invalidation by the
 * watcher), OPEN is answered once with ENOSYS so the kernel stops sending
 * OPEN/FLUSH/RELEASE and keeps the page cache across opens, and READ is
 * answered straight from the shard's mapping (fuse_reply_buf on a pointer
 * into it: the only copy is the kernel's copy into the page cache).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "fs_i.h"

/* ---- init ---- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	/* O_TRUNC must reach us as a setattr: on a committed blob it begins a
	 * pending version (begin_write). */
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

/* ---- directories: each request goes to its view ---- */

/*
 * Directory @p ino with the view it belongs to (*@p kind: FS_DIR, an entry
 * directory of the flat view, or FS_TDIR, the tree), or NULL with *@p err
 * ENOENT or ENOTDIR.  The kernel holds a lookup on a directory while a
 * request on it runs, so the node stays alive after fs_lock is dropped.
 */
static struct fs_node *view_dir(struct fs *fs, fuse_ino_t ino, enum fs_kind *kind, int *err)
{
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *d = fs_node_get(fs, ino);
	*kind = d ? d->n_kind : 0;
	pthread_mutex_unlock(&fs->fs_lock);
	if (d && (*kind == FS_DIR || *kind == FS_TDIR))
		return d;
	*err = d ? ENOTDIR : ENOENT;
	return NULL;
}

/* The tree directory @p parent, or NULL if it is not one. */
static struct fs_node *tree_parent(struct fs *fs, fuse_ino_t parent)
{
	enum fs_kind kind;
	int err;
	struct fs_node *d = view_dir(fs, parent, &kind, &err);
	return d && kind == FS_TDIR ? d : NULL;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	FS_COUNT(fs, st_lookups, 1);
	if (parent == FS_INO_ROOT) {
		if (strcmp(name, FS_TREE_NAME) == 0)
			fs_tree_lookup_root(req, fs);
		else
			fs_flat_lookup_root(req, fs, name);
		return;
	}
	enum fs_kind kind;
	int err;
	struct fs_node *d = view_dir(fs, parent, &kind, &err);
	if (!d)
		fuse_reply_err(req, err);
	else if (kind == FS_TDIR)
		fs_tree_lookup(req, fs, d, name);
	else
		fs_flat_lookup(req, fs, d, name);
}

/* ---- any inode ---- */

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

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, int plus)
{
	struct fs *fs = fs_of(req);
	if (ino == FS_INO_ROOT) {
		fs_flat_readdir_root(req, fs, size, off, plus);
		return;
	}
	enum fs_kind kind;
	int err;
	struct fs_node *d = view_dir(fs, ino, &kind, &err);
	if (!d)
		fuse_reply_err(req, err);
	else if (kind == FS_TDIR)
		fs_tree_readdir(req, fs, d, size, off, plus);
	else
		fs_flat_readdir(req, fs, d, size, off, plus);
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
	case FS_STATS: {
		/*
		 * Copy the slice first.  The kernel holds the inode only until
		 * it has the reply: inside fuse_reply_buf() the reader can wake,
		 * close, and the kernel FORGET the inode, and another thread free
		 * this node and its text while writev() still has it (a .stats
		 * node lives for one open).
		 */
		size_t len = 0;
		char *copy = NULL;
		if ((uint64_t)off < n->f_text_len) {
			len = n->f_text_len - (size_t)off;
			if (len > size)
				len = size;
			copy = malloc(len);
			if (copy)
				memcpy(copy, n->f_text + off, len);
		}
		pthread_mutex_unlock(&fs->fs_lock);
		if (len && !copy)
			fuse_reply_err(req, ENOMEM);
		else
			fuse_reply_buf(req, copy, len);
		free(copy);
		return;
	}
	case FS_UNDER:
		fs_under_read(req, fs, n, size, off); /* releases fs_lock */
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


static int may_write_here(struct fs *fs, fuse_ino_t parent)
{
	if (fs->fs_o.o_ro)
		return EROFS;
	if (parent == FS_INO_ROOT)
		return EPERM; /* the top level holds entry directories only */
	return 0;
}

/*
 * Writes.  Without OPEN (the fast mode) the first WRITE or SETATTR of the
 * size is how the daemon learns that a write began: a committed blob then
 * becomes a pending version of its entry on the same inode
 * (fs_pending_begin), which every reader through the mount sees at once
 * and the shard gets when it is complete (commit.c).  A write that comes
 * while that file is being committed waits for the commit.
 */
static int begin_write(fuse_req_t req, struct fs *fs, fuse_ino_t ino, uint64_t keep)
{
	if (fs->fs_o.o_ro)
		return EROFS;
	return fs_pending_begin(fs, ino, fuse_req_ctx(req)->pid, keep);
}

static void op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	if (!fs->fs_o.o_commit_on_close) {
		/* the kernel stops sending OPEN, FLUSH and RELEASE and keeps the
		 * page cache across opens (FUSE_CAP_NO_OPEN_SUPPORT) */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	int wr = (fi->flags & O_ACCMODE) != O_RDONLY;
	int err = wr ? begin_write(req, fs, ino, UINT64_MAX) : 0;
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = fs_node_get(fs, ino);
	if (!n)
		err = ENOENT;
	else if (wr && n->n_kind == FS_UNDER)
		err = EACCES; /* the distribution's file (under.c) */
	else if (wr && n->n_kind != FS_PENDING)
		err = EPERM;
	else if (wr)
		n->p_writers++;
	pthread_mutex_unlock(&fs->fs_lock);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fi->keep_cache = 1;
	fi->fh = wr; /* FLUSH has no open flags: remember writers here */
	if (fuse_reply_open(req, fi) == -ENOENT && wr) {
		/* interrupted: no RELEASE will come */
		pthread_mutex_lock(&fs->fs_lock);
		if (n->p_writers)
			n->p_writers--;
		pthread_mutex_unlock(&fs->fs_lock);
	}
}

/*
 * -o commit_on_close: a plainly written <entry>/blob is committed by the
 * FLUSH of its last writer's close(2).  FLUSH, unlike RELEASE, is
 * synchronous with close(), so when close returns the entry is in the shard
 * (and a failed commit is close's error).  Writes through a dup()ed
 * descriptor after that close fail with EPERM: the blob is committed.
 */
static void op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *n, *d = NULL;
	int commit = 0, err = 0;
	if (!fs->fs_o.o_commit_on_close) {
		fuse_reply_err(req, ENOSYS); /* the kernel stops sending FLUSH */
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	n = fs_node_get(fs, ino);
	if (fi->fh == 1 && n && n->n_kind == FS_PENDING && n->n_current &&
	    n->n_dir->n_kind == FS_DIR &&
	    strcmp(n->n_name, FS_BLOB_NAME) == 0 && n->p_wgen != n->p_cgen) {
		commit = 1;
		d = n->n_dir;
		n->n_nlookup++; /* pin */
	}
	pthread_mutex_unlock(&fs->fs_lock);
	if (commit) {
		/* FLUSH comes for every close of a descriptor, also a forked
		 * child's close-on-exec copy: commit only if no descriptor open
		 * for writing is left anywhere (the closing one is already gone
		 * from /proc when FLUSH arrives). */
		commit = !fs_blob_has_writers(fs, d);
	}
	if (commit) {
		int r = fs_commit(fs, n, d->n_key, d->n_key_len, 1);
		err = r ? fs_errno(r) : 0;
	}
	if (d) {
		pthread_mutex_lock(&fs->fs_lock);
		n->n_nlookup--;
		fs_node_maybe_free(fs, n);
		pthread_mutex_unlock(&fs->fs_lock);
	}
	fuse_reply_err(req, err);
}

static void op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	/* Without commit_on_close, RELEASE only comes for files created before
	 * the kernel learnt that OPEN is not implemented: nothing to do. */
	if (fs->fs_o.o_commit_on_close && fi->fh == 1) {
		pthread_mutex_lock(&fs->fs_lock);
		struct fs_node *n = fs_node_get(fs, ino);
		if (n && n->n_kind == FS_PENDING && n->p_writers)
			n->p_writers--;
		pthread_mutex_unlock(&fs->fs_lock);
	}
	fuse_reply_err(req, 0);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);
	(void)mode;
	if (fs->fs_o.o_ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (parent != FS_INO_ROOT) {
		struct fs_node *td = tree_parent(fs, parent);
		if (td)
			fs_tree_mkdir(req, fs, td, name); /* the kernel holds td */
		else
			fuse_reply_err(req, EPERM); /* entry directories hold files only */
		return;
	}
	if (strcmp(name, FS_TREE_NAME) == 0) {
		fuse_reply_err(req, EEXIST);
		return;
	}
	fs_flat_mkdir(req, fs, name);
}

/*
 * A new file for CREATE and MKNOD (may_write_here() already said yes), in
 * the view @p parent belongs to.  @p writer: count it as an open writer
 * (flat view with commit_on_close); tree files commit on rename only, so
 * there it is cleared.  The errno, or 0 with *@p ep filled.
 */
static int new_file(fuse_req_t req, struct fs *fs, fuse_ino_t parent, const char *name,
		    int *writer, struct fuse_entry_param *ep)
{
	char *exe = fs_writer_exe(fuse_req_ctx(req)->pid);
	struct fs_node *td = tree_parent(fs, parent);
	if (td) {
		*writer = 0;
		return fs_tree_create(fs, td, name, exe, ep);
	}
	return fs_flat_create(fs, parent, name, exe, *writer, ep);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		  struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param ep;
	int writer = fs->fs_o.o_commit_on_close && (fi->flags & O_ACCMODE) != O_RDONLY;
	int err = may_write_here(fs, parent);
	(void)mode;
	if (!err)
		err = new_file(req, fs, parent, name, &writer, &ep);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	fi->keep_cache = 0;
	fi->fh = (uint64_t)writer;
	fuse_reply_create(req, &ep, fi);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param ep;
	int writer = 0;
	int err = may_write_here(fs, parent);
	(void)rdev;
	if (!err && !S_ISREG(mode))
		err = EPERM;
	if (!err)
		err = new_file(req, fs, parent, name, &writer, &ep);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &ep);
}

/* Write @p size bytes at @p off into pending file @p p.  fs_lock held;
 * returns an errno. */
static int write_locked(struct fs_node *p, const char *buf, size_t size, off_t off)
{
	if (p->n_kind == FS_UNDER)
		return EACCES; /* the distribution's file: the mount never writes it */
	if (p->n_kind != FS_PENDING)
		return EPERM; /* metadata.json, .stats */
	if ((uint64_t)off + size > SC_MAX_BLOB)
		return EFBIG;
	size_t end = (size_t)off + size;
	if (end > p->p_len) {
		int err = fs_pending_resize(p, end);
		if (err)
			return err;
	}
	memcpy(p->p_buf + off, buf, size);
	fs_pending_touch(p);
	return 0;
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int err = 0;
	(void)fi;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *p = fs_node_get(fs, ino);
	if (p && p->n_kind == FS_BLOB) {
		pthread_mutex_unlock(&fs->fs_lock);
		err = begin_write(req, fs, ino, UINT64_MAX);
		pthread_mutex_lock(&fs->fs_lock);
		p = fs_node_get(fs, ino);
	}
	if (p)
		fs_pending_wait(fs, p);
	if (!err)
		err = p ? write_locked(p, buf, size, off) : ESTALE;
	pthread_mutex_unlock(&fs->fs_lock);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_write(req, size);
}

/* What chmod, chown and utimes may change (the kernel's default_permissions
 * has checked who may).  FUSE_SET_ATTR_CTIME comes with them. */
#define SETATTR_META (FUSE_SET_ATTR_MODE | FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID |     \
		      FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME | FUSE_SET_ATTR_ATIME_NOW | \
		      FUSE_SET_ATTR_MTIME_NOW | FUSE_SET_ATTR_CTIME)

/* SETATTR on node @p n (a pending file's size and mtime; attributes kept
 * by the daemon for the others).  fs_lock held; returns an errno. */
static int setattr_locked(struct fs *fs, struct fs_node *n, const struct stat *attr, int to_set)
{
	int err = 0;
	if (n->n_kind == FS_PENDING) {
		if (to_set & FUSE_SET_ATTR_SIZE) {
			err = fs_pending_resize(n, (size_t)attr->st_size);
			if (!err)
				fs_pending_touch(n);
		}
		if (!err && (to_set & FUSE_SET_ATTR_MTIME_NOW))
			clock_gettime(CLOCK_REALTIME, &n->n_mtime);
		else if (!err && (to_set & FUSE_SET_ATTR_MTIME))
			n->n_mtime = attr->st_mtim;
		/* mode and owner of a pending file are not kept: its committed
		 * version starts as 0644, owned by the mounting user */
	} else if (n->n_kind == FS_UNDER) {
		/* the distribution's file: truncation is a write (EACCES, as
		 * write(2)); its mode, owner and times are not the mount's */
		if (to_set & FUSE_SET_ATTR_SIZE)
			err = EACCES;
		else if (to_set & ~(FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
			err = EPERM;
	} else if (to_set & FUSE_SET_ATTR_SIZE) {
		/* metadata.json, .stats, directories */
		err = n->n_kind == FS_TDIR || n->n_kind == FS_DIR || n->n_kind == FS_ROOT ?
			      EISDIR : EPERM;
	} else if (n->n_kind == FS_STATS) {
		if (to_set & ~(FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))
			err = EPERM; /* a control file, made anew by each lookup */
	} else if (to_set & SETATTR_META) {
		/* directories, blob, metadata.json: kept in the daemon (entry.c) */
		err = fs_attr_set(fs, n, attr, to_set);
	}
	return err;
}

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct stat st;
	int err = 0;
	double ttl = 0;
	(void)fi;
	if (fs->fs_o.o_ro && (to_set & ~(FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW))) {
		/* the kernel refuses these itself on a read-only mount */
		fuse_reply_err(req, EROFS);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = fs_node_get(fs, ino);
	if (n && n->n_kind == FS_BLOB && (to_set & FUSE_SET_ATTR_SIZE)) {
		/* O_TRUNC (FUSE_CAP_ATOMIC_O_TRUNC is off) or ftruncate: a write
		 * begins, keeping what the new size keeps */
		pthread_mutex_unlock(&fs->fs_lock);
		err = begin_write(req, fs, ino, (uint64_t)attr->st_size);
		pthread_mutex_lock(&fs->fs_lock);
		n = fs_node_get(fs, ino);
	}
	if (n)
		fs_pending_wait(fs, n);
	if (!err)
		err = n ? setattr_locked(fs, n, attr, to_set) : ENOENT;
	if (!err) {
		fs_fill_attr(fs, n, &st);
		ttl = fs_attr_ttl(n);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_attr(req, &st, ttl);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned flags)
{
	struct fs *fs = fs_of(req);
	if (flags & ~(unsigned)RENAME_NOREPLACE) {
		fuse_reply_err(req, EINVAL);
		return;
	}
	if (fs->fs_o.o_ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct fs_node *td = tree_parent(fs, parent);
	if (td) {
		fs_tree_rename(req, fs, td, name, newparent, newname, flags);
		return;
	}
	fs_flat_rename(req, fs, parent, name, newparent, newname, flags);
}

static void op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	if (fs->fs_o.o_ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct fs_node *td = tree_parent(fs, parent);
	if (td) {
		fs_tree_unlink(req, fs, td, name);
		return;
	}
	fs_flat_unlink(req, fs, parent, name);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	struct fs *fs = fs_of(req);
	if (fs->fs_o.o_ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	fs_link(req, fs, ino, newparent, newname); /* links.c */
}

static void op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	if (fs->fs_o.o_ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	if (parent != FS_INO_ROOT) {
		struct fs_node *td = tree_parent(fs, parent);
		if (td)
			fs_tree_rmdir(req, fs, td, name);
		else
			fuse_reply_err(req, ENOTDIR);
		return;
	}
	if (strcmp(name, FS_TREE_NAME) == 0) {
		fuse_reply_err(req, EPERM);
		return;
	}
	fs_flat_rmdir(req, fs, name);
}

static void op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	(void)datasync;
	(void)fi;
	char key[SC_MAX_KEY + 1];
	size_t klen = 0;
	int r = 0;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *p = fs_node_get(fs, ino);
	/* committed data is durable already; a pending file no name leads
	 * to (replaced or unlinked) is never committed */
	int pending = p && p->n_kind == FS_PENDING && p->n_current;
	struct fs_node *d = pending ? p->n_dir : NULL;
	int as_blob = 1;
	if (d && d->n_kind == FS_DIR) {
		/* an entry directory: its blob is this file's bytes; a file
		 * of another name there stays pending */
		as_blob = strcmp(p->n_name, FS_BLOB_NAME) == 0;
		klen = d->n_key_len;
		memcpy(key, d->n_key, klen + 1);
	} else if (d) {
		/* a file of the tree: committed under its own name */
		klen = d->n_key_len + 1 + strlen(p->n_name);
		if (klen > SC_MAX_KEY)
			r = -ENAMETOOLONG;
		else
			snprintf(key, sizeof key, "%s/%s", d->n_key, p->n_name);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	/* the kernel holds p (and so d) while fsync runs */
	if (d && !r)
		r = fs_commit(fs, p, key, klen, as_blob);
	fs_send_attr_notes(fs); /* link counts of names that held the same bytes */
	fuse_reply_err(req, r ? fs_errno(r) : 0);
}

/* ---- opendir/xattr: the no-round-trip modes ---- */

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

const struct fuse_lowlevel_ops fs_ops = {
	.init         = op_init,
	.lookup       = op_lookup,
	.forget       = op_forget,
	.forget_multi = op_forget_multi,
	.getattr      = op_getattr,
	.setattr      = op_setattr,
	.mknod        = op_mknod,
	.mkdir        = op_mkdir,
	.unlink       = op_unlink,
	.rmdir        = op_rmdir,
	.rename       = op_rename,
	.link         = op_link,
	.open         = op_open,
	.read         = op_read,
	.write        = op_write,
	.flush        = op_flush,
	.release      = op_release,
	.fsync        = op_fsync,
	.opendir      = op_opendir,
	.readdir      = op_readdir,
	.readdirplus  = op_readdirplus,
	.statfs       = op_statfs,
	.getxattr     = op_getxattr,
	.listxattr    = op_listxattr,
	.create       = op_create,
};
