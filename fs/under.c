/*
 * under.c - the distribution's .pyc underneath the tree view.
 *
 * With PYTHONPYCACHEPREFIX=<mount>/.tree, CPython looks for the bytecode of
 * /A/B/mod.py at .tree/A/B/mod.TAG.pyc only, never at
 * /A/B/__pycache__/mod.TAG.pyc, where Debian (py3compile) ships it.  So
 * that a first run through an empty mount reads those files instead of
 * compiling the standard library again, a lookup in the tree that finds
 * no pending file, no directory of the index and no entry falls through
 * to the real file system, "the underlay" (tree.c calls us last):
 *   - a name ending in ".pyc" is the file /A/B/__pycache__/<name>, served
 *     read-only as an FS_UNDER node: an fd opened at lookup, its bytes,
 *     its size.  Nothing is copied into the shard;
 *   - any other name is the real directory /A/B/<name>, shown as a tree
 *     directory (FS_TDIR with n_under set), so that the kernel can walk
 *     .tree/usr/lib/python3.11/json on an empty mount.
 * readdir lists only what the cache holds (tree.c); the underlay is found
 * by name only.  -o no_dist_pyc turns all of this off.
 *
 * What may be served (checked at every lookup, on the opened descriptors,
 * so that what is checked is what is served):
 *   - the path is resolved without any symbolic link (openat2
 *     RESOLVE_NO_SYMLINKS: kernels without openat2 get no underlay) and is
 *     never the mount point or below it: the daemon would wait on itself;
 *   - the file is a regular file in a __pycache__ directory, both owned by
 *     root or by the mounting user and not writable by anyone else (others,
 *     or a group other than root's or the mounting user's): bytes only they
 *     could have written;
 *   - the caller may read it.  For the mounting user (the only caller a
 *     mount without allow_other lets in) and for root, the daemon's own
 *     open() is that check.  Any other caller (-o allow_other) is checked
 *     by walking the real path with its uid, gid and groups, and the answer
 *     gets an entry timeout of 0, so that the kernel asks again for every
 *     caller instead of serving one caller's dentry to another.
 *
 * Why the long timeouts are safe otherwise: the node holds the descriptor
 * of the file it was looked up as, so its size and bytes never change under
 * the kernel's caches (dpkg and py_compile replace a .pyc by rename: a new
 * file, which a later lookup serves as a new node).  A .pyc that no longer
 * matches its source is not a danger either: CPython validates every .pyc
 * against its source (the mtime and size, or the hash, in its header),
 * compiles the source when they differ, and writes the new .pyc through the
 * mount, where the rename commits it to the shard and shadows the
 * underlay.  A committed entry always wins: tree.c looks the shard up
 * first, and a commit of a name the kernel knows as an underlay file makes
 * the watcher drop that dentry (fs_under_shadowed, fs_under_recheck).
 *
 * The table of FS_UNDER nodes (fs_utab, by tree path, chained by n_knext)
 * exists for that invalidation and to give one file one inode while the
 * kernel knows it.  fs_lock guards it; no I/O happens under fs_lock.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/openat2.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <xxhash.h>

#include "fs_i.h"

#define UTAB_CAP 4096   /* what the kernel caches; chains grow past it */

/* ---- the table ---- */

static size_t uslot(const char *p, size_t len)
{
	return (size_t)XXH3_64bits(p, len) & (UTAB_CAP - 1);
}

int fs_under_init(struct fs *fs)
{
	fs->fs_utab = calloc(UTAB_CAP, sizeof(*fs->fs_utab));
	return fs->fs_utab ? 0 : -ENOMEM;
}

void fs_under_free(struct fs *fs)
{
	free(fs->fs_utab); /* the nodes are freed with the inode table */
	fs->fs_utab = NULL;
}

struct fs_node *fs_under_find(struct fs *fs, const char *path, size_t len)
{
	if (!fs->fs_utab)
		return NULL;
	struct fs_node *n = fs->fs_utab[uslot(path, len)];
	while (n && !(n->n_key_len == len && memcmp(n->n_key, path, len) == 0))
		n = n->n_knext;
	return n;
}

void fs_under_unmap(struct fs *fs, struct fs_node *n)
{
	if (!n->n_in_map || !fs->fs_utab)
		return;
	struct fs_node **pp = &fs->fs_utab[uslot(n->n_key, n->n_key_len)];
	while (*pp && *pp != n)
		pp = &(*pp)->n_knext;
	if (*pp)
		*pp = n->n_knext;
	n->n_in_map = 0;
	n->n_knext = NULL;
}

/* The kernel's dentry of @p n must go: a committed entry names it now.  The
 * DELETE names n's inode, so it cannot remove the dentry of the committed
 * blob a rename has already put under that name. */
static void shadow(struct fs *fs, struct fs_node *n)
{
	fs_note(fs, FS_NOTE_DELETE, n->n_tparent, n->n_ino, strrchr(n->n_key, '/') + 1);
	fs_under_unmap(fs, n);
	fs_node_maybe_free(fs, n);
}

void fs_under_shadowed(struct fs *fs, const char *path, size_t len)
{
	struct fs_node *n = fs_under_find(fs, path, len);
	if (n)
		shadow(fs, n);
}

void fs_under_recheck(struct fs *fs, int (*is_key)(void *arg, const char *p, size_t len),
		      void *arg)
{
	if (!fs->fs_utab)
		return;
	for (size_t i = 0; i < UTAB_CAP; i++) {
		struct fs_node *n = fs->fs_utab[i], *next;
		for (; n; n = next) {
			next = n->n_knext;
			if (is_key(arg, n->n_key, n->n_key_len))
				shadow(fs, n);
		}
	}
}

/* ---- what may be served ---- */

/* openat2() with no symbolic link anywhere in @p path (relative to @p dirfd).
 * -1 with errno set; ENOSYS on kernels before 5.6 (no underlay then). */
int fs_open_nolinks(int dirfd, const char *path, int flags, uint64_t resolve)
{
	struct open_how how;
	int fd;
	memset(&how, 0, sizeof how);
	how.flags = (uint64_t)(flags | O_CLOEXEC);
	how.resolve = resolve | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;
	do
		fd = (int)syscall(SYS_openat2, dirfd, path, &how, sizeof how);
	while (fd < 0 && errno == EINTR);
	return fd; /* EAGAIN too (a lease on the file, with O_NONBLOCK): not served */
}

int fs_in_mount(const struct fs *fs, const char *path)
{
	const char *m = fs->fs_o.o_mountpoint;
	size_t ml = strlen(m);
	if (ml == 1)
		return 1; /* mounted on "/": everything is below */
	return strncmp(path, m, ml) == 0 && (path[ml] == '\0' || path[ml] == '/');
}

static int owned(const struct fs *fs, const struct stat *st)
{
	return st->st_uid == 0 || st->st_uid == fs->fs_uid;
}

/* Nobody but root or the mounting user can have written these bytes. */
static int trusted(const struct fs *fs, const struct stat *st)
{
	if (!owned(fs, st) || (st->st_mode & S_IWOTH))
		return 0;
	return !(st->st_mode & S_IWGRP) || st->st_gid == 0 || st->st_gid == fs->fs_gid;
}

/* A caller other than the mounting user and root (-o allow_other). */
struct who {
	uid_t  w_uid;
	gid_t  w_gid;
	gid_t *w_groups;
	int    w_ngroups;
};

static int who_get(fuse_req_t req, struct who *w)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	w->w_uid = c->uid;
	w->w_gid = c->gid;
	w->w_groups = NULL;
	w->w_ngroups = 0;
	int cap = 32;
	for (;;) {
		gid_t *g = realloc(w->w_groups, (size_t)cap * sizeof(*g));
		if (!g)
			return -ENOMEM;
		w->w_groups = g;
		int n = fuse_req_getgroups(req, cap, g);
		if (n < 0)
			return n; /* unknown groups: refuse rather than guess */
		if (n <= cap) {
			w->w_ngroups = n;
			return 0;
		}
		cap = n;
	}
}

/* May @p w do @p bit (4 read, 1 search) on what @p st describes? */
static int who_may(const struct who *w, const struct stat *st, unsigned bit)
{
	unsigned m = (unsigned)st->st_mode;
	if (w->w_uid == st->st_uid)
		return (m >> 6) & bit;
	int grp = w->w_gid == st->st_gid;
	for (int i = 0; !grp && i < w->w_ngroups; i++)
		grp = w->w_groups[i] == st->st_gid;
	return grp ? (m >> 3) & bit : m & bit;
}

/* Can @p w search every directory from "/" down to @p dir (absolute)? */
static int who_reaches(const struct who *w, const char *dir)
{
	char p[PATH_MAX];
	size_t len = strlen(dir);
	struct stat st;
	if (len >= sizeof p)
		return 0;
	memcpy(p, dir, len + 1);
	if (stat("/", &st) != 0 || !who_may(w, &st, 1))
		return 0;
	for (size_t i = 1; i <= len; i++) { /* each prefix that ends a component */
		if (i < len && p[i] != '/')
			continue;
		char c = p[i];
		p[i] = '\0';
		int ok = stat(p, &st) == 0 && who_may(w, &st, 1);
		p[i] = c;
		if (!ok)
			return 0;
	}
	return 1;
}

/* Nonzero if the caller of @p req may see what lies below @p dir (and, with
 * @p file, read that file): see the top for who is checked how. */
int fs_caller_ok(fuse_req_t req, struct fs *fs, const char *dir, const struct stat *file)
{
	const struct fuse_ctx *c = fuse_req_ctx(req);
	if (c->uid == fs->fs_uid || c->uid == 0)
		return 1;
	struct who w;
	int ok = who_get(req, &w) == 0 && who_reaches(&w, dir) &&
		 (!file || who_may(&w, file, 4));
	free(w.w_groups);
	return ok;
}

/* ---- lookups ---- */

double fs_under_entry_ttl(const struct fs *fs)
{
	return fs->fs_o.o_allow_other ? 0.0 : FS_TTL_LONG;
}

int fs_under_dir(fuse_req_t req, struct fs *fs, const char *path)
{
	struct stat st;
	if (fs->fs_o.o_no_dist_pyc || fs_in_mount(fs, path))
		return 0;
	int fd = fs_open_nolinks(AT_FDCWD, path, O_PATH | O_DIRECTORY, 0);
	if (fd < 0)
		return 0;
	int ok = fstat(fd, &st) == 0 && S_ISDIR(st.st_mode) && owned(fs, &st);
	close(fd);
	if (!ok)
		return 0;
	/* the directory's own name is visible to whoever can search its parent */
	char parent[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t pl = (size_t)(slash - path);
	if (pl >= sizeof parent)
		return 0;
	memcpy(parent, path, pl);
	parent[pl] = '\0';
	if (fs_caller_ok(req, fs, pl ? parent : "/", NULL))
		return 1;
	FS_COUNT(fs, st_dist_refused, 1);
	return 0;
}

int fs_under_file(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *path,
		  size_t len, struct fuse_entry_param *ep)
{
	char dir[PATH_MAX];
	struct stat dst, st;
	int dfd = -1, fd = -1, err = ENOENT, refused = 0;

	if (fs->fs_o.o_no_dist_pyc)
		return ENOENT;
	const char *name = strrchr(path, '/') + 1;
	size_t dl = (size_t)(name - 1 - path);
	if (dl + sizeof "/__pycache__" > sizeof dir)
		return ENOENT;
	memcpy(dir, path, dl);
	memcpy(dir + dl, "/__pycache__", sizeof "/__pycache__");
	if (fs_in_mount(fs, dir))
		return ENOENT;
	dfd = fs_open_nolinks(AT_FDCWD, dir, O_PATH | O_DIRECTORY, 0);
	if (dfd < 0)
		goto out;
	if (fstat(dfd, &dst) != 0 || !S_ISDIR(dst.st_mode))
		goto out;
	if (!trusted(fs, &dst)) {
		refused = 1;
		goto out;
	}
	/* O_NONBLOCK: a FIFO planted under the name must not block the open */
	fd = fs_open_nolinks(dfd, name, O_RDONLY | O_NONBLOCK | O_NOCTTY, RESOLVE_BENEATH);
	if (fd < 0) {
		refused = errno == EACCES || errno == ELOOP;
		goto out;
	}
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		goto out;
	if (!trusted(fs, &st) || !fs_caller_ok(req, fs, dir, &st)) {
		refused = 1;
		goto out;
	}

	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = fs_under_find(fs, path, len);
	if (n && (n->u_dev != st.st_dev || n->u_ino != st.st_ino ||
		  n->u_size != (uint64_t)st.st_size ||
		  n->n_mtime.tv_sec != st.st_mtim.tv_sec ||
		  n->n_mtime.tv_nsec != st.st_mtim.tv_nsec)) {
		/* replaced since: the old node serves its file until forgotten */
		fs_under_unmap(fs, n);
		n = NULL;
	}
	if (!n && (n = fs_node_new(fs, FS_UNDER)) != NULL) {
		n->u_fd = -1;
		if (!(n->n_key = malloc(len + 1))) {
			fs_node_maybe_free(fs, n);
			n = NULL;
		}
	}
	if (n && n->u_fd < 0) {
		memcpy(n->n_key, path, len + 1);
		n->n_key_len = len;
		n->u_fd = fd;
		fd = -1;
		n->u_dev = st.st_dev;
		n->u_ino = st.st_ino;
		n->u_size = (uint64_t)st.st_size;
		n->u_mode = st.st_mode;
		n->u_uid = st.st_uid;
		n->u_gid = st.st_gid;
		n->n_mtime = st.st_mtim;
		size_t s = uslot(path, len);
		n->n_knext = fs->fs_utab[s];
		fs->fs_utab[s] = n;
		n->n_in_map = 1;
	}
	if (n) {
		n->n_tparent = td->n_ino;
		fs_entry_ref(fs, n, ep);
		ep->entry_timeout = fs_under_entry_ttl(fs);
		err = 0;
	} else {
		err = ENOMEM;
	}
	pthread_mutex_unlock(&fs->fs_lock);
	if (!err)
		FS_COUNT(fs, st_dist_hits, 1);
out:
	if (refused)
		FS_COUNT(fs, st_dist_refused, 1);
	if (fd >= 0)
		close(fd);
	if (dfd >= 0)
		close(dfd);
	return err;
}

/* ---- reading ---- */

void fs_under_read(fuse_req_t req, struct fs *fs, struct fs_node *n, size_t size, off_t off)
{
	/* fs_lock held by the caller, released here.  The node is pinned
	 * (a lookup reference of our own) for the reply: the kernel may FORGET
	 * the inode as soon as the reader has its bytes, before
	 * fuse_reply_data() has returned, and the fd must stay open until then. */
	n->n_nlookup++;
	int fd = n->u_fd;
	uint64_t len = n->u_size;
	pthread_mutex_unlock(&fs->fs_lock);

	uint64_t want = (uint64_t)off < len ? len - (uint64_t)off : 0;
	if (want > size)
		want = size;
	if (want == 0) {
		fuse_reply_buf(req, NULL, 0);
	} else {
		struct fuse_bufvec bv = FUSE_BUFVEC_INIT((size_t)want);
		bv.buf[0].flags = FUSE_BUF_IS_FD | FUSE_BUF_FD_SEEK | FUSE_BUF_FD_RETRY;
		bv.buf[0].fd = fd;
		bv.buf[0].pos = off;
		FS_COUNT(fs, st_read_bytes, want);
		/* without splice, libfuse preads into a buffer and replies with
		 * it; a short read (the file shrank in place) replies short */
		fuse_reply_data(req, &bv, 0);
	}
	pthread_mutex_lock(&fs->fs_lock);
	n->n_nlookup--;
	fs_node_maybe_free(fs, n);
	pthread_mutex_unlock(&fs->fs_lock);
}
