/*
 * links.c - hard links: link(2) in both views, and the inode number and
 * link count a blob reports.
 *
 * The v1 shard cannot share one blob between entries, so link(2) puts the
 * same bytes under the new name's key (stored twice).  What makes the two
 * names one file for the programs that look is the identity of the bytes:
 * a committed blob whose bytes (blob id and size, as the shard records
 * them) are held by N >= 2 entries reports an inode number derived from
 * that identity and st_nlink N, so `os.path.samefile` is true and
 * `st_nlink` counts the names, whichever way the names were made (also
 * after a remount).  Writing to one name gives it its own bytes: from its
 * first write it is a pending file with its own inode number, and the
 * others' link count drops when that version is committed.
 *
 * The count of entries per identity is kept with the tree index (built by
 * the same sc_foreach(), updated by the daemon's own puts and removals);
 * until the tree is first used, every blob reports st_nlink 1.
 *
 * Inode numbers seen by stat(2) are the attributes' st_ino, not the FUSE
 * node id: the kernel takes st_ino from every attribute reply, so an
 * identity number may come and go without changing the node.  Identity
 * numbers have the top bit set; node ids never get that far.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <xxhash.h>

#include "fs_i.h"

struct fs_id {
	uint64_t i_sum;
	uint64_t i_size;
	uint64_t i_count;   /* 0: free slot */
};

struct fs_ids {
	struct fs_id *t_tab;
	size_t        t_cap, t_n;   /* t_cap: a power of two */
};

static size_t id_slot(const struct fs_ids *t, uint64_t sum, uint64_t size)
{
	return (size_t)((sum ^ (size * 0x9E3779B97F4A7C15ull)) & (t->t_cap - 1));
}

struct fs_ids *fs_ids_new(void)
{
	struct fs_ids *t = calloc(1, sizeof *t);
	if (!t)
		return NULL;
	t->t_cap = 1024;
	t->t_tab = calloc(t->t_cap, sizeof *t->t_tab);
	if (!t->t_tab) {
		free(t);
		return NULL;
	}
	return t;
}

void fs_ids_free(struct fs_ids *t)
{
	if (t) {
		free(t->t_tab);
		free(t);
	}
}

/* Linear probing; a count that drops to 0 stays as a tombstone-free zero
 * entry only if nothing follows it (else it keeps its slot with count 0,
 * which lookups skip: the table is rebuilt with the index anyway). */
static struct fs_id *id_find(const struct fs_ids *t, uint64_t sum, uint64_t size, int add)
{
	size_t i = id_slot(t, sum, size);
	for (;;) {
		struct fs_id *e = &t->t_tab[i];
		if (e->i_sum == sum && e->i_size == size && (e->i_count || add))
			return e;
		if (e->i_count == 0 && e->i_sum == 0 && e->i_size == 0)
			return add ? e : NULL;
		i = (i + 1) & (t->t_cap - 1);
	}
}

static int ids_grow(struct fs_ids *t)
{
	struct fs_ids n = { calloc(t->t_cap * 2, sizeof(struct fs_id)), t->t_cap * 2, 0 };
	if (!n.t_tab)
		return -ENOMEM;
	for (size_t i = 0; i < t->t_cap; i++) {
		struct fs_id *e = &t->t_tab[i];
		if (!e->i_count)
			continue;
		*id_find(&n, e->i_sum, e->i_size, 1) = *e;
		n.t_n++;
	}
	free(t->t_tab);
	*t = n;
	return 0;
}

/* Count one more (@p delta 1) or one less (-1) entry holding these bytes.
 * (sum, size) = (0, 0) marks free slots: an empty blob's id is not 0,
 * so no real identity is lost. */
int fs_ids_add(struct fs_ids *t, uint64_t sum, uint64_t size, int delta)
{
	if (sum == 0 && size == 0)
		return 0;
	if (delta > 0 && (t->t_n + 1) * 4 > t->t_cap * 3 && ids_grow(t) < 0)
		return -ENOMEM;
	struct fs_id *e = id_find(t, sum, size, delta > 0);
	if (!e)
		return 0;
	if (delta > 0) {
		if (e->i_count == 0 && e->i_sum == 0 && e->i_size == 0) {
			e->i_sum = sum;
			e->i_size = size;
			t->t_n++;
		}
		e->i_count++;
	} else if (e->i_count) {
		e->i_count--;
	}
	return 0;
}

static uint64_t ids_count(const struct fs *fs, uint64_t sum, uint64_t size)
{
	const struct fs_id *e = fs->fs_ids ? id_find(fs->fs_ids, sum, size, 0) : NULL;
	return e ? e->i_count : 0;
}

/* fs_lock held.  st_ino and st_nlink of a committed blob. */
void fs_ids_fill(const struct fs *fs, const struct fs_node *n, struct stat *st)
{
	uint64_t c = ids_count(fs, n->f_ver.v_checksum, n->f_ver.v_blob_size);
	if (c < 2)
		return;
	uint64_t h = n->f_ver.v_checksum ^ (n->f_ver.v_blob_size * 0x9E3779B97F4A7C15ull);
	st->st_ino = (ino_t)(h | (1ull << 63));
	st->st_nlink = (nlink_t)c;
}

/* fs_lock held.  The kernel caches the attributes of every name holding
 * these bytes: have it ask again (their link count changed). */
static void note_holders(struct fs *fs, uint64_t sum, uint64_t size)
{
	for (size_t i = 0; i < fs->fs_kcap; i++)
		for (struct fs_node *d = fs->fs_ktab[i]; d; d = d->n_knext) {
			struct fs_node *b = d->n_blob;
			if (b && b->f_ver.v_checksum == sum && b->f_ver.v_blob_size == size)
				fs_note(fs, FS_NOTE_ATTR, b->n_ino, 0, NULL);
		}
}

/* fs_lock held.  The table was rebuilt (from @p old, may be NULL): the
 * blobs the kernel knows whose count changed must show the new one. */
void fs_ids_note_changes(struct fs *fs, const struct fs_ids *old)
{
	for (size_t i = 0; i < fs->fs_kcap; i++)
		for (struct fs_node *d = fs->fs_ktab[i]; d; d = d->n_knext) {
			struct fs_node *b = d->n_blob;
			if (!b)
				continue;
			uint64_t s = b->f_ver.v_checksum, z = b->f_ver.v_blob_size;
			const struct fs_id *e = old ? id_find(old, s, z, 0) : NULL;
			uint64_t before = e ? e->i_count : 0;
			if ((before >= 2 || ids_count(fs, s, z) >= 2) && before != ids_count(fs, s, z))
				fs_note(fs, FS_NOTE_ATTR, b->n_ino, 0, NULL);
		}
}

/*
 * An entry now holds other bytes: (@p old_sum, @p old_size) if @p had_old,
 * then (@p sum, @p size) if @p has_new.  fs_lock held.  The names that
 * held or hold the same bytes are told to refresh their link count.
 */
void fs_ids_changed(struct fs *fs, int had_old, uint64_t old_sum, uint64_t old_size,
		    int has_new, uint64_t sum, uint64_t size)
{
	if (!fs->fs_ids || (had_old && has_new && old_sum == sum && old_size == size))
		return;
	if (had_old) {
		fs_ids_add(fs->fs_ids, old_sum, old_size, -1);
		if (ids_count(fs, old_sum, old_size) >= 1)
			note_holders(fs, old_sum, old_size);
	}
	if (has_new) {
		/* (out of memory: that identity is under-counted until the
		 * next rebuild of the index) */
		if (fs_ids_add(fs->fs_ids, sum, size, 1) == 0 && ids_count(fs, sum, size) >= 2)
			note_holders(fs, sum, size);
	}
}

uint64_t fs_blob_sum(const void *buf, size_t len)
{
	return XXH3_128bits(buf, len).low64; /* blob_id[0], as the core records it */
}

/* ---- link(2) ---- */

/*
 * The bytes of file @p ino (a committed blob or a pending file) and the
 * executable recorded as their writer, malloc'd.  Returns 0 or an errno.
 */
static int copy_file(struct fs *fs, fuse_ino_t ino, unsigned char **buf, size_t *len,
		     char **exe)
{
	sc_entry_info e;
	int err = 0;
	*buf = NULL;
	*len = 0;
	*exe = NULL;
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *n = fs_node_get(fs, ino);
	if (!n) {
		err = ENOENT;
	} else if (n->n_kind == FS_PENDING) {
		*len = n->p_len;
		*buf = malloc(*len ? *len : 1);
		if (*buf)
			memcpy(*buf, n->p_buf, *len);
		*exe = n->p_exe ? strdup(n->p_exe) : NULL;
		if (!*buf)
			err = ENOMEM;
	} else if (n->n_kind == FS_UNDER) {
		/* the distribution's .pyc: its bytes, read from the file the
		 * node holds (with no lock held: it is I/O) */
		struct stat st;
		int fd = n->u_fd;
		n->n_nlookup++; /* keeps the node, and so fd, open meanwhile */
		pthread_mutex_unlock(&fs->fs_lock);
		if (fstat(fd, &st) < 0) {
			err = errno;
		} else if (st.st_size < 0 || (uint64_t)st.st_size > SC_MAX_BLOB) {
			err = EFBIG;
		} else {
			*len = (size_t)st.st_size;
			*buf = malloc(*len ? *len : 1);
			if (!*buf)
				err = ENOMEM;
			else if (pread(fd, *buf, *len, 0) != (ssize_t)*len)
				err = EIO;
		}
		pthread_mutex_lock(&fs->fs_lock);
		n->n_nlookup--;
		fs_node_maybe_free(fs, n);
		n = NULL;
	} else if (n->n_kind != FS_BLOB) {
		err = EPERM; /* directories; metadata.json and .stats are generated */
	}
	struct fs_ver v = n ? n->f_ver : (struct fs_ver){ 0 };
	struct fs_node *d = n ? n->n_dir : NULL;
	int blob = !err && n && n->n_kind == FS_BLOB;
	pthread_mutex_unlock(&fs->fs_lock);
	if (blob) {
		/* the kernel holds n, and n holds d */
		if (sc_lookup(fs->fs_cache, d->n_key, &e) != 0 || e.shard_id != v.v_shard_id ||
		    e.offset != v.v_offset) {
			err = ESTALE; /* that version is gone from the shard */
		} else {
			*len = (size_t)e.blob_size;
			*buf = malloc(*len ? *len : 1);
			if (*buf)
				memcpy(*buf, e.blob, *len);
			else
				err = ENOMEM;
			if (e.exe_path_len)
				*exe = strndup(e.exe_path, e.exe_path_len);
		}
	}
	pthread_rwlock_unlock(&fs->fs_map_lock);
	if (err) {
		free(*buf);
		free(*exe);
		*buf = NULL;
		*exe = NULL;
	}
	return err;
}

/*
 * link(@p ino, @p newparent/@p newname): the new name is a new entry with
 * the same bytes, committed at once.  In the tree view any new name; in
 * the flat view "blob" of an entry directory made by mkdir.
 */
void fs_link(fuse_req_t req, struct fs *fs, fuse_ino_t ino, fuse_ino_t newparent,
	     const char *newname)
{
	struct fuse_entry_param ep;
	unsigned char *buf;
	size_t len;
	char *exe;
	char key[SC_MAX_KEY + 1];
	size_t klen = 0;
	struct fs_node *td = NULL, *d = NULL;

	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *parent = fs_node_get(fs, newparent);
	if (parent && parent->n_kind == FS_TDIR)
		td = parent;
	else if (parent && parent->n_kind == FS_DIR)
		d = parent;
	if (td) {
		klen = td->n_key_len + 1 + strlen(newname);
		if (klen <= SC_MAX_KEY)
			snprintf(key, sizeof key, "%s/%s", td->n_key, newname);
	} else if (d) {
		klen = d->n_key_len;
		memcpy(key, d->n_key, klen + 1);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	if (!td && !d) {
		/* the top level holds entry directories only */
		fuse_reply_err(req, newparent == FS_INO_ROOT ? EPERM : ENOENT);
		return;
	}
	if (klen > SC_MAX_KEY) {
		fuse_reply_err(req, ENAMETOOLONG);
		return;
	}
	if (d && strcmp(newname, FS_BLOB_NAME) != 0) {
		fuse_reply_err(req, EPERM); /* an entry directory links its blob only */
		return;
	}
	int err = copy_file(fs, ino, &buf, &len, &exe);
	if (err) {
		fuse_reply_err(req, err);
		return;
	}
	/* a pending file under the new name (it checks that the name is
	 * free), filled and committed at once */
	err = td ? fs_tree_create(fs, td, newname, exe, &ep) :
		   fs_flat_create(fs, newparent, newname, exe, 0, &ep);
	if (err) {
		free(buf);
		fuse_reply_err(req, err);
		return;
	}
	pthread_mutex_lock(&fs->fs_lock);
	struct fs_node *p = fs_node_get(fs, ep.ino); /* create took a lookup on it */
	free(p->p_buf);
	p->p_buf = buf;
	p->p_len = p->p_cap = len;
	fs_pending_touch(p);
	pthread_mutex_unlock(&fs->fs_lock);
	int r = fs_commit(fs, p, key, klen, 1);
	pthread_mutex_lock(&fs->fs_lock);
	if (r == 0) {
		fs_fill_entry(fs, p, &ep);
	} else {
		struct fs_node *pd = p->n_dir;
		if (p->n_kind == FS_PENDING && p->n_current)
			fs_pending_drop(fs, pd, p);
		p->n_nlookup--;
		fs_node_maybe_free(fs, p);
	}
	pthread_mutex_unlock(&fs->fs_lock);
	if (r) {
		fuse_reply_err(req, fs_errno(r));
		return;
	}
	/* The kernel caches the link count of every name holding the bytes,
	 * the source's too: sent before the reply, so that a stat(2) right
	 * after link(2) sees them (attributes only: no kernel lock taken). */
	fs_note(fs, FS_NOTE_ATTR, ino, 0, NULL);
	fs_send_attr_notes(fs);
	fuse_reply_entry(req, &ep);
}
