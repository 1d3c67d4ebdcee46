/*
 * inode.c - the inode table of scriptcachefs.
 *
 * Every inode the kernel holds is a struct fs_node found by number in
 * fs_itab.  Entry directories are also found by key in fs_ktab, so that
 * one key has one directory inode while the kernel knows it.  Inode
 * numbers are never reused within a mount, which is what makes a replaced
 * blob a *different* file to the kernel: its page cache can never serve
 * the old bytes for the new version.
 *
 * Lifetime: a node lives while the kernel holds lookups on it (n_nlookup),
 * or, for a directory, while files point at it (n_refs), it is a current
 * mkdir'd directory, or it owns pending files; an underlay file (FS_UNDER)
 * holds its descriptor until freed.  Everything here runs with
 * fs_lock held unless stated otherwise.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "fs_i.h"

static size_t ino_slot(const struct fs *fs, uint64_t ino)
{
	return (size_t)(ino * 0x9E3779B97F4A7C15ull >> 7) & (fs->fs_icap - 1);
}

static size_t key_slot(const struct fs *fs, const char *key, size_t len)
{
	return (size_t)XXH3_64bits(key, len) & (fs->fs_kcap - 1);
}

int fs_table_init(struct fs *fs)
{
	fs->fs_icap = 1024;
	fs->fs_kcap = 1024;
	fs->fs_tcap = 4096; /* what the kernel caches; never resized */
	fs->fs_itab = calloc(fs->fs_icap, sizeof(*fs->fs_itab));
	fs->fs_ktab = calloc(fs->fs_kcap, sizeof(*fs->fs_ktab));
	fs->fs_ttab = calloc(fs->fs_tcap, sizeof(*fs->fs_ttab));
	if (!fs->fs_itab || !fs->fs_ktab || !fs->fs_ttab)
		return -ENOMEM;
	fs->fs_next_ino = FS_INO_ROOT;
	fs->fs_root = fs_node_new(fs, FS_ROOT);
	if (!fs->fs_root)
		return -ENOMEM;
	fs->fs_root->n_nlookup = 1; /* the kernel's reference to the root */
	return 0;
}

static void node_free(struct fs_node *n)
{
	if (n->n_kind == FS_UNDER && n->u_fd >= 0)
		close(n->u_fd);
	free(n->n_key);
	free(n->n_name);
	free(n->f_text);
	free(n->p_buf);
	free(n->p_exe);
	free(n);
}

void fs_table_free(struct fs *fs)
{
	if (fs->fs_itab) {
		for (size_t i = 0; i < fs->fs_icap; i++) {
			struct fs_node *n = fs->fs_itab[i], *next;
			for (; n; n = next) {
				next = n->n_inext;
				node_free(n);
			}
		}
	}
	free(fs->fs_itab);
	free(fs->fs_ktab);
	free(fs->fs_ttab);
	fs->fs_itab = NULL;
	fs->fs_ktab = NULL;
	fs->fs_ttab = NULL;
}

static void grow_itab(struct fs *fs)
{
	size_t ncap = fs->fs_icap * 2;
	struct fs_node **nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return; /* chains just get longer */
	struct fs_node **old = fs->fs_itab;
	size_t ocap = fs->fs_icap;
	fs->fs_itab = nt;
	fs->fs_icap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		struct fs_node *n = old[i], *next;
		for (; n; n = next) {
			next = n->n_inext;
			size_t s = ino_slot(fs, n->n_ino);
			n->n_inext = nt[s];
			nt[s] = n;
		}
	}
	free(old);
}

static void grow_ktab(struct fs *fs)
{
	size_t ncap = fs->fs_kcap * 2;
	struct fs_node **nt = calloc(ncap, sizeof(*nt));
	if (!nt)
		return;
	struct fs_node **old = fs->fs_ktab;
	size_t ocap = fs->fs_kcap;
	fs->fs_ktab = nt;
	fs->fs_kcap = ncap;
	for (size_t i = 0; i < ocap; i++) {
		struct fs_node *n = old[i], *next;
		for (; n; n = next) {
			next = n->n_knext;
			size_t s = key_slot(fs, n->n_key, n->n_key_len);
			n->n_knext = nt[s];
			nt[s] = n;
		}
	}
	free(old);
}

struct fs_node *fs_node_get(struct fs *fs, uint64_t ino)
{
	struct fs_node *n = fs->fs_itab[ino_slot(fs, ino)];
	while (n && n->n_ino != ino)
		n = n->n_inext;
	return n;
}

struct fs_node *fs_node_new(struct fs *fs, enum fs_kind kind)
{
	struct fs_node *n = calloc(1, sizeof(*n));
	if (!n)
		return NULL;
	n->n_kind = kind;
	n->n_ino = fs->fs_next_ino++;
	clock_gettime(CLOCK_REALTIME, &n->n_mtime);
	if (fs->fs_icount + 1 > fs->fs_icap)
		grow_itab(fs);
	size_t s = ino_slot(fs, n->n_ino);
	n->n_inext = fs->fs_itab[s];
	fs->fs_itab[s] = n;
	fs->fs_icount++;
	return n;
}

static void node_unhash(struct fs *fs, struct fs_node *n)
{
	struct fs_node **pp = &fs->fs_itab[ino_slot(fs, n->n_ino)];
	while (*pp && *pp != n)
		pp = &(*pp)->n_inext;
	if (*pp) {
		*pp = n->n_inext;
		fs->fs_icount--;
	}
}

struct fs_node *fs_dir_find(struct fs *fs, const char *key, size_t len)
{
	struct fs_node *n = fs->fs_ktab[key_slot(fs, key, len)];
	while (n && !(n->n_key_len == len && memcmp(n->n_key, key, len) == 0))
		n = n->n_knext;
	return n;
}

/* Find or make the directory node of @p key.  @p name is its encoded name. */
struct fs_node *fs_dir_get(struct fs *fs, const char *key, size_t len, const char *name)
{
	struct fs_node *d = fs_dir_find(fs, key, len);
	if (d)
		return d;
	d = fs_node_new(fs, FS_DIR);
	if (!d)
		return NULL;
	d->n_key = malloc(len + 1);
	d->n_name = strdup(name);
	if (!d->n_key || !d->n_name) {
		node_unhash(fs, d);
		node_free(d);
		return NULL;
	}
	memcpy(d->n_key, key, len);
	d->n_key[len] = '\0';
	d->n_key_len = len;
	if (fs->fs_kcount + 1 > fs->fs_kcap)
		grow_ktab(fs);
	size_t s = key_slot(fs, key, len);
	d->n_knext = fs->fs_ktab[s];
	fs->fs_ktab[s] = d;
	fs->fs_kcount++;
	d->n_in_map = 1;
	return d;
}

/* Take @p d out of the key map: the key no longer names this inode (it was
 * removed; a later entry for the same key gets a fresh directory inode). */
void fs_dir_unmap(struct fs *fs, struct fs_node *d)
{
	if (!d->n_in_map)
		return;
	struct fs_node **pp = &fs->fs_ktab[key_slot(fs, d->n_key, d->n_key_len)];
	while (*pp && *pp != d)
		pp = &(*pp)->n_knext;
	if (*pp) {
		*pp = d->n_knext;
		fs->fs_kcount--;
	}
	d->n_in_map = 0;
	d->n_knext = NULL;
}

/* ---- tree directories (FS_TDIR) by path, while the kernel knows them (tree.c) ---- */

static size_t tslot(const struct fs *fs, const char *p, size_t len)
{
	return (size_t)XXH3_64bits(p, len) & (fs->fs_tcap - 1);
}

struct fs_node *fs_tdir_find(struct fs *fs, const char *p, size_t len)
{
	struct fs_node *n = fs->fs_ttab[tslot(fs, p, len)];
	while (n && !(n->n_key_len == len && memcmp(n->n_key, p, len) == 0))
		n = n->n_knext;
	return n;
}

struct fs_node *fs_tdir_get(struct fs *fs, const char *p, size_t len)
{
	struct fs_node *n = fs_tdir_find(fs, p, len);
	if (n)
		return n;
	n = fs_node_new(fs, FS_TDIR);
	if (!n)
		return NULL;
	n->n_key = malloc(len + 1);
	if (!n->n_key) {
		fs_node_maybe_free(fs, n);
		return NULL;
	}
	memcpy(n->n_key, p, len);
	n->n_key[len] = '\0';
	n->n_key_len = len;
	size_t s = tslot(fs, p, len);
	n->n_knext = fs->fs_ttab[s];
	fs->fs_ttab[s] = n;
	n->n_in_map = 1;
	return n;
}

void fs_tdir_unmap(struct fs *fs, struct fs_node *n)
{
	if (!n->n_in_map)
		return;
	struct fs_node **pp = &fs->fs_ttab[tslot(fs, n->n_key, n->n_key_len)];
	while (*pp && *pp != n)
		pp = &(*pp)->n_knext;
	if (*pp)
		*pp = n->n_knext;
	n->n_in_map = 0;
	n->n_knext = NULL;
}

struct fs_node *fs_child_new(struct fs *fs, struct fs_node *dir, enum fs_kind kind)
{
	struct fs_node *n = fs_node_new(fs, kind);
	if (!n)
		return NULL;
	n->n_dir = dir;
	dir->n_refs++;
	n->n_current = 1;
	return n;
}

/* The entry changed: its blob and metadata.json nodes describe an old
 * version from now on.  They stay valid for the kernel's open files. */
void fs_detach_children(struct fs *fs, struct fs_node *dir)
{
	struct fs_node *b = dir->n_blob, *m = dir->n_meta;
	dir->n_blob = NULL;
	dir->n_meta = NULL;
	if (b) {
		b->n_current = 0;
		fs_node_maybe_free(fs, b);
	}
	if (m) {
		m->n_current = 0;
		fs_node_maybe_free(fs, m);
	}
}

struct fs_node *fs_pending_find(struct fs_node *dir, const char *name)
{
	struct fs_node *p = dir->n_pending;
	while (p && strcmp(p->n_name, name) != 0)
		p = p->n_pnext;
	return p;
}

void fs_pending_unlink(struct fs *fs, struct fs_node *dir, struct fs_node *p)
{
	struct fs_node **pp = &dir->n_pending;
	while (*pp && *pp != p)
		pp = &(*pp)->n_pnext;
	if (*pp) {
		*pp = p->n_pnext;
		fs->fs_npending--;
	}
	p->n_pnext = NULL;
	p->n_current = 0;
}

void fs_node_maybe_free(struct fs *fs, struct fs_node *n)
{
	if (n->n_nlookup > 0 || n->n_kind == FS_ROOT)
		return;
	switch (n->n_kind) {
	case FS_DIR:
		if (n->n_refs > 0 || n->n_pending || n->n_made ||
		    (n->n_in_map && fs_attr_held(fs, n)))
			return;
		fs_dir_unmap(fs, n);
		break;
	case FS_TDIR:
		if (n->n_refs > 0 || n->n_pending || n == fs->fs_troot ||
		    (n->n_in_map && fs_attr_held(fs, n)))
			return;
		fs_tdir_unmap(fs, n);
		break;
	case FS_BLOB:
	case FS_META:
	case FS_PENDING:
		if (n->n_current)
			return;
		break;
	case FS_UNDER:
		fs_under_unmap(fs, n);
		break;
	default:
		break;
	}
	struct fs_node *dir = n->n_dir;
	node_unhash(fs, n);
	node_free(n);
	if (dir) {
		dir->n_refs--;
		fs_node_maybe_free(fs, dir);
	}
}

void fs_forget_one(struct fs *fs, uint64_t ino, uint64_t nlookup)
{
	struct fs_node *n = fs_node_get(fs, ino);
	if (!n)
		return;
	n->n_nlookup = n->n_nlookup > nlookup ? n->n_nlookup - nlookup : 0;
	if (n->n_nlookup > 0)
		return;
	/* A current blob/metadata node the kernel forgot is dropped from its
	 * directory; the next lookup makes a new one (cheap, and it keeps
	 * the table no larger than what the kernel caches). */
	if (n->n_dir && n->n_kind != FS_PENDING && n->n_current) {
		if (n->n_dir->n_blob == n)
			n->n_dir->n_blob = NULL;
		if (n->n_dir->n_meta == n)
			n->n_dir->n_meta = NULL;
		n->n_current = 0;
	}
	fs_node_maybe_free(fs, n);
}
