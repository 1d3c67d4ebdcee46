/*
 * ops_write.c - request handlers that change the shard (pending files and
 * commits: commit.c).
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
#include "pathenc.h"

/* After the last entry is gone, give the space back.  sc_compact() rather
 * than sc_clear(): a compaction keeps anything another process put
 * meanwhile, a clear would lose it. */
static void compact_if_empty(struct fs *fs)
{
	sc_stats s;
	if (sc_get_stats(fs->fs_cache, &s) == 0 && s.entries == 0 && s.dead_bytes > 0)
		sc_compact(fs->fs_cache);
}

/* ---- handlers ---- */

/* The tree directory @p parent, or NULL if it is not one.  The kernel holds
 * a reference on a parent while a request on it runs. */
static struct fs_node *tree_parent(struct fs *fs, fuse_ino_t parent)
{
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *td = fs_node_get(fs, parent);
	if (td && td->n_kind != FS_TDIR)
		td = NULL;
	pthread_mutex_unlock(&fs->fs_lock);
	return td;
}

/* Look up an inode of the given kind under fs_lock; NULL if absent. */
static struct fs_node *get_dir(struct fs *fs, fuse_ino_t ino)
{
	struct fs_node *d = fs_node_get(fs, ino);
	return d && d->n_kind == FS_DIR ? d : NULL;
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	if (!fs->fs_o.o_commit_on_close) {
		/* the kernel stops sending OPEN, FLUSH and RELEASE and keeps the
		 * page cache across opens (FUSE_CAP_NO_OPEN_SUPPORT) */
		fuse_reply_err(req, ENOSYS);
		return;
	}
	int wr = (fi->flags & O_ACCMODE) != O_RDONLY;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = fs_node_get(fs, ino);
	int err = 0;
	if (!n)
		err = ENOENT;
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
void fs_op_flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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
		char path[PATH_MAX];
		snprintf(path, sizeof path, "%s/%s/%s", fs->fs_o.o_mountpoint, d->n_name,
			 FS_BLOB_NAME);
		commit = !fs_has_writers(path);
	}
	if (commit) {
		int r = fs_commit_pending(fs, d, n, 1);
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

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
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

void fs_op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param ep;
	sc_entry_info e;
	size_t klen;
	int err = 0;
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
			d->n_nlookup++;
			fs_fill_entry(fs, d, &ep);
			fs_listing_dirty();
		}
	}
	pthread_mutex_unlock(&fs->fs_lock);
	free(key);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_entry(req, &ep);
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
	p->n_nlookup++;
	fs_fill_entry(fs, p, ep);
	return 0;
}

static int may_write_here(struct fs *fs, fuse_ino_t parent)
{
	if (fs->fs_o.o_ro)
		return EROFS;
	if (parent == FS_INO_ROOT)
		return EPERM; /* the top level holds entry directories only */
	return 0;
}

void fs_op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
		  struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param ep;
	int err = may_write_here(fs, parent);
	(void)mode;
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	char *exe = fs_writer_exe(fuse_req_ctx(req)->pid);
	struct fs_node *td = tree_parent(fs, parent);
	if (td) {
		/* tree files commit on rename only: no writer count */
		err = fs_tree_create(fs, td, name, exe, &ep);
		if (err) {
			fuse_reply_err(req, err);
			return;
		}
		fi->keep_cache = 0;
		fi->fh = 0;
		fuse_reply_create(req, &ep, fi);
		return;
	}
	int writer = fs->fs_o.o_commit_on_close && (fi->flags & O_ACCMODE) != O_RDONLY;
	pthread_mutex_lock(&fs->fs_lock);
	err = make_pending(fs, parent, name, exe, writer, &ep);
	pthread_mutex_unlock(&fs->fs_lock);
	if (err) {
		free(exe);
		fuse_reply_err(req, err);
		return;
	}
	fi->keep_cache = 0;
	fi->fh = (uint64_t)writer;
	fuse_reply_create(req, &ep, fi);
}

void fs_op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	struct fs *fs = fs_of(req);
	struct fuse_entry_param ep;
	int err = may_write_here(fs, parent);
	(void)rdev;
	if (!err && !S_ISREG(mode))
		err = EPERM;
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	char *exe = fs_writer_exe(fuse_req_ctx(req)->pid);
	struct fs_node *td = tree_parent(fs, parent);
	if (td) {
		err = fs_tree_create(fs, td, name, exe, &ep);
		if (err)
			fuse_reply_err(req, err);
		else
			fuse_reply_entry(req, &ep);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	err = make_pending(fs, parent, name, exe, 0, &ep);
	pthread_mutex_unlock(&fs->fs_lock);
	if (err) {
		free(exe);
		fuse_reply_err(req, err);
		return;
	}
	fuse_reply_entry(req, &ep);
}

void fs_op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
		 struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	int err = 0;
	(void)fi;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *p = fs_node_get(fs, ino);
	if (!p)
		err = ESTALE;
	else if (p->n_kind != FS_PENDING)
		err = EPERM; /* committed blobs are immutable */
	else if (p->p_busy)
		err = EBUSY;
	else if ((uint64_t)off + size > SC_MAX_BLOB)
		err = EFBIG;
	else {
		size_t end = (size_t)off + size;
		if (end > p->p_len)
			err = fs_pending_resize(p, end);
		if (!err) {
			memcpy(p->p_buf + off, buf, size);
			fs_pending_touch(p);
		}
	}
	pthread_mutex_unlock(&fs->fs_lock);
	if (err)
		fuse_reply_err(req, err);
	else
		fuse_reply_write(req, size);
}

void fs_op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
		   struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct stat st;
	int err = 0;
	double ttl = 0;
	(void)fi;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = fs_node_get(fs, ino);
	if (!n) {
		err = ENOENT;
	} else if (n->n_kind == FS_PENDING) {
		if (n->p_busy)
			err = EBUSY;
		else if (to_set & FUSE_SET_ATTR_SIZE) {
			err = fs_pending_resize(n, (size_t)attr->st_size);
			if (!err)
				fs_pending_touch(n);
		}
		if (!err && (to_set & FUSE_SET_ATTR_MTIME_NOW))
			clock_gettime(CLOCK_REALTIME, &n->n_mtime);
		else if (!err && (to_set & FUSE_SET_ATTR_MTIME))
			n->n_mtime = attr->st_mtim;
		/* mode and owner of a pending file are not kept: a committed
		 * blob is always 0444, owned by the mounting user */
	} else if (n->n_kind == FS_DIR || n->n_kind == FS_ROOT) {
		if (to_set & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID | FUSE_SET_ATTR_SIZE))
			err = EPERM;
		/* times and mode of directories: accepted, not kept (cp -r, tar) */
	} else if (to_set & ~(FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_ATIME_NOW)) {
		/* committed blob, metadata.json, .stats: immutable; O_TRUNC
		 * arrives here because FUSE_CAP_ATOMIC_O_TRUNC is off */
		err = EPERM;
	}
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

void fs_op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
		  const char *newname, unsigned flags)
{
	struct fs *fs = fs_of(req);
	int err = 0;
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
			int r = fs_commit_pending(fs, d, p, 1);
			err = r ? fs_errno(r) : 0;
		}
		fuse_reply_err(req, err);
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

void fs_op_unlink(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	int err = 0;
	if (fs->fs_o.o_ro) {
		fuse_reply_err(req, EROFS);
		return;
	}
	struct fs_node *td = tree_parent(fs, parent);
	if (td) {
		fs_tree_unlink(req, fs, td, name);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *d = get_dir(fs, parent);
	if (!d) {
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_err(req, EPERM); /* .stats and friends */
		return;
	}
	struct fs_node *p = fs_pending_find(d, name);
	if (p) {
		if (p->p_busy)
			err = EBUSY;
		else
			fs_pending_drop(fs, d, p);
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_err(req, err);
		return;
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
	int r = in_shard ? sc_remove_if(fs->fs_cache, d->n_key, v_shard, v_off) : SC_ENOTFOUND;
	pthread_mutex_lock(&fs->fs_lock);
	d->n_busy--;
	if (r == SC_ECHANGED) {
		pthread_mutex_unlock(&fs->fs_lock);
		fs_wake(fs);
		fuse_reply_err(req, 0); /* that version is gone already */
		return;
	}
	if (r != 0 && r != SC_ENOTFOUND) {
		pthread_mutex_unlock(&fs->fs_lock);
		fuse_reply_err(req, fs_errno(r));
		return;
	}
	d->n_made = 1;
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
	fs_listing_dirty();
	fs_note(fs, FS_NOTE_INODE, FS_INO_ROOT, 0, NULL);
	pthread_mutex_unlock(&fs->fs_lock);
	if (r == 0) {
		FS_COUNT(fs, st_evictions, 1);
		compact_if_empty(fs);
	}
	fs_wake(fs);
	fuse_reply_err(req, 0);
}

void fs_op_rmdir(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	size_t klen;
	int err = 0;
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
			fs_dir_unmap(fs, d);
			fs_node_maybe_free(fs, d);
		}
	} else if (r == SC_ENOTFOUND) {
		err = ENOENT;
	}
	fs_listing_dirty();
	pthread_mutex_unlock(&fs->fs_lock);
	free(key);
	if (r == 0) {
		FS_COUNT(fs, st_evictions, 1);
		compact_if_empty(fs);
	}
	fs_wake(fs);
	fuse_reply_err(req, err);
}

void fs_op_fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	(void)datasync;
	(void)fi;
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *p = fs_node_get(fs, ino);
	int pending = p && p->n_kind == FS_PENDING;
	struct fs_node *d = pending ? p->n_dir : NULL;
	pthread_mutex_unlock(&fs->fs_lock);
	if (!pending || d->n_kind != FS_DIR) {
		/* committed data is already durable; a file of the tree view is
		 * committed by its rename only (it may be a temporary file) */
		fuse_reply_err(req, 0);
		return;
	}
	/* the kernel holds p (and so d) while fsync runs */
	int r = fs_commit_pending(fs, d, p, strcmp(p->n_name, FS_BLOB_NAME) == 0);
	fuse_reply_err(req, r ? fs_errno(r) : 0);
}
