/*
 * commit.c - pending files and their commit to the shard.
 *
 * Committed blobs are immutable.  New bytes come in as *pending* files,
 * held in memory by the daemon and visible only in the mount, and reach
 * the shard in one sc_put_ex() call ("commit") when:
 *   - a pending file is renamed to "blob"            (atomic replace)
 *   - a pending file is fsync'ed                     (blob = its bytes)
 *   - a pending file created as "blob" (plain cp) is idle for idle_commit_ms
 *     and no process has it open for writing (checked in /proc), or the
 *     mount is unmounted, or, with -o commit_on_close, its last writer
 *     closes it.
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
#include "pathenc.h"

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
	free(p->p_buf);
	p->p_buf = NULL;
	p->p_len = p->p_cap = 0;
	fs_node_maybe_free(fs, p);
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
 * is the path of the name it is renamed to).
 *
 * Every WRITE to @p p was answered before the request that commits it
 * arrived, so p_buf holds all of them; p_busy makes writes, truncation,
 * renames and unlinks fail with EBUSY while the commit runs with no lock
 * held, and afterwards a file committed @p as_blob is a committed blob
 * (writes fail with EPERM).
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
	char *exe;
	int err = 0, lerr, status = 0, watched = 1, skip_put;

	/* the directory p was written in; the kernel holds p, and p holds it */
	struct fs_node *pd = p->n_dir;
	int tree = pd->n_kind == FS_TDIR;
	if (tree && sc_name_encode(key, klen, enc) < 0)
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
	/* While busy, writes and truncation fail with EBUSY, so p_buf is
	 * stable without the lock. */
	p->p_busy = 1;
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
		memset(&o, 0, sizeof o);
		/* A flat key names the source the bytes were compiled from.  A
		 * tree key is a cache path, not a source: its client validates
		 * the bytes itself. */
		if (!tree && stat(key, &st) == 0 && S_ISREG(st.st_mode))
			o.source = &st;
		else
			o.no_source = 1;
		o.tag = fs->fs_o.o_tag;
		o.exe_path = exe;
		const void *bytes = p->p_buf ? (const void *)p->p_buf : "";
		err = fs_put(fs, key, klen, bytes, p->p_len, &o);
		if (FS_IS_ERRNO(err) && exe) {
			/* the writer's executable could not be identified */
			o.exe_path = NULL;
			err = fs_put(fs, key, klen, bytes, p->p_len, &o);
		}
	}
	free(exe);
	if (err) {
		FS_COUNT(fs, st_commit_errors, 1);
		pthread_mutex_lock(&fs->fs_lock);
		p->p_busy = 0;
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
	struct fs_node *d = tree ? fs_dir_get(fs, key, klen, enc) : pd;
	if (d && lerr == 0) {
		fs_apply_ver(fs, d, &e, status);
		d->n_unwatched = !watched;
		if (tree)
			d->n_tparent = pd->n_ino;
	}
	if (as_blob) {
		/* flat view: the rename replaces a pending file called "blob" */
		struct fs_node *old = tree ? NULL : fs_pending_find(pd, FS_BLOB_NAME);
		if (old && old != p)
			fs_pending_drop(fs, pd, old);
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
			if (tree) {
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
		fs_note(fs, FS_NOTE_INODE, p->n_ino, 0, NULL); /* mode is 0444 now */
	} else {
		p->p_cgen = wgen;
		if (lerr == 0) {
			p->p_c_shard = e.shard_id;
			p->p_c_off = e.offset;
		}
	}
	p->p_busy = 0;
	fs_note(fs, FS_NOTE_INODE, pd->n_ino, 0, NULL);
	fs_note(fs, FS_NOTE_INODE, FS_INO_ROOT, 0, NULL);
	fs_listing_dirty();
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

struct cand {
	struct fs_node *d, *p;
};

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
	for (size_t i = 0; i < fs->fs_kcap; i++) {
		for (struct fs_node *d = fs->fs_ktab[i]; d; d = d->n_knext) {
			for (struct fs_node *p = d->n_pending; p; p = p->n_pnext) {
				double last = (double)p->p_last.tv_sec + p->p_last.tv_nsec / 1e9;
				if (strcmp(p->n_name, FS_BLOB_NAME) != 0 || p->p_busy ||
				    p->p_wgen == p->p_cgen)
					continue;
				if (!all && (now - last < idle || p->p_writers > 0))
					continue;
				if (n == cap) {
					size_t nc = cap ? cap * 2 : 16;
					struct cand *nv = realloc(v, nc * sizeof(*nv));
					if (!nv)
						goto collected;
					v = nv;
					cap = nc;
				}
				p->n_nlookup++; /* pin p, and through it d */
				v[n].d = d;
				v[n].p = p;
				n++;
			}
		}
	}
collected:
	pthread_mutex_unlock(&fs->fs_lock);

	for (size_t i = 0; i < n; i++) {
		int busy = 0;
		if (!all) {
			char path[PATH_MAX];
			snprintf(path, sizeof path, "%s/%s/%s", fs->fs_o.o_mountpoint,
				 v[i].d->n_name, FS_BLOB_NAME);
			busy = fs_has_writers(path);
		}
		if (!busy)
			fs_commit(fs, v[i].p, v[i].d->n_key, v[i].d->n_key_len, 1);
		pthread_mutex_lock(&fs->fs_lock);
		v[i].p->n_nlookup--;
		fs_node_maybe_free(fs, v[i].p);
		pthread_mutex_unlock(&fs->fs_lock);
	}
	free(v);
}
