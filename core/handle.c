/*
 * handle.c - a handle's life: open, map, refresh, snapshot, locks, close.
 *
 * The shard is mapped read-only and shared, with headroom past the end of
 * the file: appends by any process become visible through the same mapping
 * without a remap, and nothing past a committed meta's data_end (which is
 * never beyond the file's size) is ever touched, so the headroom is never
 * faulted in.  Other processes' commits are noticed by comparing the two
 * meta slots' transaction ids with the ones seen last: a load from the
 * mapping, not a system call.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "sc_int.h"

#define MAP_MIN_WINDOW   ((uint64_t)1 << 20)
#define MAP_MAX_HEADROOM ((uint64_t)1 << 30)
#define PATH_CHECK_NS    1000000000LL /* how often a reader re-stats the path */

/* A bytecode cache that someone else can write is a way to run code in our
 * interpreter: refuse it.  Root-owned read-only shards are allowed for
 * system-wide caches opened with SC_RDONLY. */
static int check_owner(const struct stat *st, unsigned flags)
{
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	if (st->st_uid == geteuid() && !(st->st_mode & 022))
		return 0;
	if ((flags & SC_RDONLY) && st->st_uid == 0 && !(st->st_mode & 022))
		return 0;
	return SC_EINSECURE;
}

int sc_open_shard_fd(const char *path, unsigned flags, int *fd_out)
{
	int fd = sc_robust_open(path, (flags & SC_RDONLY) ? O_RDONLY : O_RDWR, 0);

	*fd_out = fd;
	return fd < 0 ? fd : 0;
}

static uint64_t window_for(uint64_t file_size)
{
	uint64_t headroom = file_size / 2 > MAP_MAX_HEADROOM ? MAP_MAX_HEADROOM : file_size / 2;
	uint64_t w = file_size + headroom + MAP_MIN_WINDOW;
	long pg = sysconf(_SC_PAGESIZE);
	return (w + (uint64_t)pg - 1) & ~((uint64_t)pg - 1);
}

/* Map @p fd with headroom and make it the current mapping (rw exclusive). */
int sc_map_file(sc_cache *c, int fd, uint64_t file_size)
{
	struct sc_map *m;
	uint64_t w = window_for(file_size);
	void *p;

	if (w > SIZE_MAX)
		return -EFBIG;
	m = calloc(1, sizeof(*m));
	if (!m)
		return -ENOMEM;
	p = mmap(NULL, (size_t)w, PROT_READ, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED) {
		free(m);
		return -errno;
	}
	m->base = p;
	m->len = (size_t)w;
	m->next = c->maps;
	c->maps = m;
	return 0;
}

/* What identifies a commit cheaply: each slot's txnid and checksum words.
 * The checksum matters: a slot left invalid (a torn write, say) can hold the
 * very txnid that the next commit writes there. */
static void read_seen_txn(const unsigned char *map, uint64_t seen[SC_SEEN_WORDS])
{
	const size_t sum = offsetof(struct sc_disk_meta, checksum);

	for (int i = 0; i < SC_META_SLOTS; i++) {
		seen[2 * i] = __atomic_load_n((const uint64_t *)(map + sc_meta_off(i)),
					      __ATOMIC_ACQUIRE);
		seen[2 * i + 1] = __atomic_load_n((const uint64_t *)(map + sc_meta_off(i) + sum),
						  __ATOMIC_ACQUIRE);
	}
}

static int refresh_locked(sc_cache *c, int force_path_check);

#define VSET_MIN     4096u
#define VSET_MAX     ((uint64_t)1 << 21) /* 8 MiB: 1M records at half load */

static void vset_free(struct sc_vset *vs)
{
	munmap(vs->slot, (size_t)(vs->cap * sizeof(vs->slot[0])));
	free(vs);
}

/* Give the handle a verified-record set for the current file, with room
 * for its entries (rw held exclusively).  A replaced set is kept. */
static int vset_fit(sc_cache *c)
{
	uint64_t want = VSET_MIN;
	struct sc_vset *vs = c->vset;

	while (want < c->meta.entries * 2 && want < VSET_MAX)
		want <<= 1;
	if (vs && vs->shard_id == c->shard_id && vs->cap >= want / 2)
		return 0;
	/* The slots apart from the header, mapped directly: a fresh process
	 * then faults in one page of them for its first lookup, not also
	 * the page malloc would write its chunk header into. */
	vs = calloc(1, sizeof(*vs));
	if (!vs)
		return 0; /* lookups then check every record every time */
	vs->slot = mmap(NULL, (size_t)(want * sizeof(vs->slot[0])), PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (vs->slot == MAP_FAILED) {
		free(vs);
		return 0;
	}
	vs->shard_id = c->shard_id;
	vs->cap = want;
	vs->next = c->vset;
	c->vset = vs;
	return 0;
}

/*
 * Bring the handle up to date with the file (rw held exclusively): pick the
 * newest valid meta, grow the mapping if the data outgrew it, and follow a
 * compaction that replaced the file.
 */
int sc_refresh_locked(sc_cache *c, int force_path_check)
{
	int rc = refresh_locked(c, force_path_check);

	/* After a failure the handle may hold a new mapping with an old meta:
	 * make sure the fast path in sc_snapshot() never trusts that pair. */
	if (rc != 0)
		memset(c->seen_txn, 0xff, sizeof(c->seen_txn));
	return rc;
}

static int refresh_locked(sc_cache *c, int force_path_check)
{
	struct stat st;
	struct sc_disk_meta m, raw[SC_META_SLOTS];
	int rc, tries = 0;

again:
	if (++tries > 4)
		return SC_ECORRUPT;
	if (force_path_check) {
		/* Someone may have renamed a new shard over the path without
		 * marking the old one retired (a compactor killed in between). */
		if (stat(c->path, &st) == 0 && (st.st_ino != c->ino || st.st_dev != c->dev)) {
			if ((rc = sc_reopen_locked(c)) != 0)
				return rc;
		} else if (c->lower) {
			/* A lower shard made writable by others after it
			 * was opened is refused from now on, as at the open
			 * (the replaced file above was checked by the reopen). */
			atomic_store(&c->insecure, check_owner(&st, c->flags) != 0);
		}
		atomic_store_explicit(&c->next_path_check_ns, sc_now_ns() + PATH_CHECK_NS,
				      memory_order_relaxed);
	}
	/* Read the metas before the size: a writer extends the file before it
	 * commits a meta that covers the new bytes, so any meta we have read
	 * fits in the size we learn afterwards.  (The other order can see two
	 * commits land in between and take every meta for corrupt.) */
	read_seen_txn(c->maps->base, c->seen_txn);
	for (int i = 0; i < SC_META_SLOTS; i++)
		memcpy(raw + i, c->maps->base + sc_meta_off(i), sizeof(raw[i]));
	if (c->legacy || c->unborn)
		st.st_size = (off_t)c->image_len;
	else if (fstat(c->fd, &st) != 0)
		return -errno;
	c->file_size = (uint64_t)st.st_size;
	if (c->file_size < SC_DATA_OFF)
		return SC_ETRUNCATED;
	if (c->file_size > c->maps->len) {
		if ((rc = sc_map_file(c, c->fd, c->file_size)) != 0)
			return rc;
	}
	rc = sc_meta_choose(raw, c->file_size, &m);
	if (rc < 0)
		return rc;
	if (m.flags & SC_META_RETIRED) {
		if ((rc = sc_reopen_locked(c)) != 0)
			return rc;
		goto again;
	}
	c->meta = m;
	return vset_fit(c);
}

static void drop_v1(sc_cache *c)
{
	if (c->v1_map)
		munmap((void *)c->v1_map, c->v1_len);
	c->v1_map = NULL;
	c->v1_len = 0;
	c->legacy = 0;
}

/*
 * A version 1 shard at the path (rw held exclusively): the handle reads an
 * empty v2 image instead, so every lookup misses and nothing misreads it,
 * and keeps the v1 file mapped for the writer that rebuilds it as v2 (its
 * first write, sc_writer_begin).  The file itself is never written.
 */
/*
 * Map an empty v2 image, anonymous and read-only, as the handle's current
 * mapping (rw held exclusively, or the handle not shared yet): what a
 * handle reads when the path holds a version 1 file, or no file yet.
 */
static int map_empty_image(sc_cache *c)
{
	uint64_t table = (uint64_t)SC_MIN_INDEX_SLOTS * sizeof(struct sc_disk_slot);
	uint64_t btable = (uint64_t)SC_MIN_BLOB_SLOTS * sizeof(struct sc_disk_bslot);
	uint64_t len = SC_DATA_OFF + table + btable;
	struct sc_disk_meta m;
	struct sc_map *img;
	void *p;

	img = calloc(1, sizeof(*img));
	p = mmap(NULL, (size_t)len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (!img || p == MAP_FAILED) {
		free(img);
		if (p != MAP_FAILED)
			munmap(p, (size_t)len);
		return -ENOMEM;
	}
	memset(&m, 0, sizeof(m));
	m.index_off = SC_DATA_OFF;
	m.index_slots = SC_MIN_INDEX_SLOTS;
	m.blobs_off = SC_DATA_OFF + table;
	m.blob_slots = SC_MIN_BLOB_SLOTS;
	m.data_end = len;
	sc_image_init(p, &m);
	mprotect(p, (size_t)len, PROT_READ);
	img->base = p;
	img->len = (size_t)len;
	img->next = c->maps;
	c->maps = img;
	c->image_len = len;
	return 0;
}

/*
 * A version 1 shard at the path (rw held exclusively): the handle reads an
 * empty v2 image instead, so every lookup misses and nothing misreads it,
 * and keeps the v1 file mapped for the writer that rebuilds it as v2 (its
 * first write, sc_writer_begin).  The file itself is never written.
 */
static int open_v1(sc_cache *c, int fd, uint64_t size, const struct sc_disk_header *h)
{
	void *v1;
	int rc;

	if (h->byte_order != SC_BYTE_ORDER_MARK || h->ptr_width != sizeof(void *) ||
	    h->header_size != sizeof(*h) ||
	    h->checksum != XXH3_64bits(h, offsetof(struct sc_disk_header, checksum)))
		return SC_EVERSION;
	if (size > SIZE_MAX)
		return -EFBIG;
	v1 = mmap(NULL, (size_t)size, PROT_READ, MAP_SHARED, fd, 0);
	if (v1 == MAP_FAILED)
		return -errno;
	if ((rc = map_empty_image(c)) != 0) {
		munmap(v1, (size_t)size);
		return rc;
	}
	drop_v1(c);
	c->legacy = 1;
	c->v1_map = v1;
	c->v1_len = (size_t)size;
	return 0;
}

/* realpath(3) of @p dir joined with @p rel, kept on c->strs; NULL if it
 * does not resolve to a directory. */
static const struct sc_str *keep_dir(sc_cache *c, const char *dir, size_t dir_len,
				     const char *rel)
{
	size_t rl = strlen(rel);
	char *joined = malloc(dir_len + 1 + rl + 1), *real;
	struct sc_str *k = NULL;
	struct stat st;

	if (!joined)
		return NULL;
	memcpy(joined, dir, dir_len);
	joined[dir_len] = '/';
	memcpy(joined + dir_len + 1, rel, rl + 1);
	real = realpath(joined, NULL);
	free(joined);
	if (real && stat(real, &st) == 0 && S_ISDIR(st.st_mode) &&
	    (k = malloc(sizeof(*k) + strlen(real) + 1))) {
		k->len = strlen(real);
		memcpy(k->s, real, k->len + 1);
		k->next = c->strs;
		c->strs = k;
	}
	free(real);
	return k;
}

/*
 * A relocatable shard (docs/LAYERS.md, "Relocation"): its recorded base is
 * relative to the directory the shard file is in, resolved here, at each
 * (re)open, so that a whole tree copied elsewhere resolves to the copy.
 * The string stays allocated until sc_close() (entries point into it).
 */
static void set_relocation(sc_cache *c, const struct sc_disk_header *h)
{
	const char *slash = strrchr(c->path, '/');
	char rel[SC_BASE_MAX + 1];
	const struct sc_str *k = NULL;

	c->reloc = h->format_version == SC_FORMAT_VERSION && (h->hflags & SC_HDR_RELOCATABLE);
	c->base = NULL;
	c->base_len = 0;
	if (!c->reloc || h->base_len == 0 || !slash)
		return;
	memcpy(rel, h->base, h->base_len);
	rel[h->base_len] = '\0';
	k = keep_dir(c, c->path, (size_t)(slash - c->path), rel);
	if (k) {
		c->base = k->s;
		c->base_len = k->len;
	}
}

/* Open the path again after the file was replaced (rw held exclusively). */
int sc_reopen_locked(sc_cache *c)
{
	struct sc_disk_header h;
	struct stat st;
	int fd = -1, rc;

	if ((rc = sc_open_shard_fd(c->path, c->flags, &fd)) != 0)
		return rc;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto fail;
	}
	if ((rc = check_owner(&st, c->flags)) != 0)
		goto fail;
	memset(&h, 0, sizeof(h));
	{
		size_t want = (uint64_t)st.st_size < sizeof(h) ? (size_t)st.st_size : sizeof(h);
		ssize_t n;
		do
			n = pread(fd, &h, want, 0);
		while (n < 0 && errno == EINTR);
		if (n != (ssize_t)want) {
			rc = n < 0 ? -errno : SC_ETRUNCATED;
			goto fail;
		}
	}
	rc = sc_header_check(&h, (uint64_t)st.st_size);
	if (rc == SC_EVERSION && h.format_version == SC_FORMAT_V1)
		rc = open_v1(c, fd, (uint64_t)st.st_size, &h);
	else if (rc == 0 && (rc = sc_map_file(c, fd, (uint64_t)st.st_size)) == 0)
		drop_v1(c);
	if (rc != 0)
		goto fail;
	set_relocation(c, &h);
	atomic_store(&c->insecure, 0);
	c->unborn = 0;
	if (c->fd >= 0)
		close(c->fd); /* releases this handle's pin on the old file */
	if (c->query_fd >= 0)
		close(c->query_fd);
	c->query_fd = -1;
	atomic_store(&c->pin_shard, 0);
	c->fd = fd;
	c->ino = st.st_ino;
	c->dev = st.st_dev;
	c->file_size = (uint64_t)st.st_size;
	c->shard_id = h.shard_id;
	return 0;
fail:
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Pins: which freed extents a writer may overwrite (docs/FORMAT.md) */

static int pin_lock(int fd, short type, uint64_t txn)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET,
			    .l_start = (off_t)(SC_PIN_BASE + txn), .l_len = 1 };
	return fcntl(fd, F_OFD_SETLK, &fl) == 0 ? 0 : -errno;
}

int sc_pin(sc_cache *c)
{
	uint64_t txn;
	int rc;

	if (c->legacy || atomic_load_explicit(&c->pin_shard, memory_order_acquire) == c->shard_id)
		return 0;
	pthread_rwlock_wrlock(&c->rw);
	rc = sc_refresh_locked(c, 0);
	if (rc == 0 && atomic_load(&c->pin_shard) != c->shard_id) {
		/* Lock the commit we see, then look again: a writer that
		 * tested the pins before our lock landed freed nothing that
		 * a commit at or after the one we then read still uses. */
		txn = c->meta.txnid;
		/* A file system without OFD locks cannot take the pin; its
		 * writers cannot test pins either, so they reuse nothing
		 * (sc_unpinned) and the lookup goes on unpinned. */
		(void)pin_lock(c->fd, F_RDLCK, txn);
		c->pin_txn = txn;
		atomic_store_explicit(&c->pin_shard, c->shard_id, memory_order_release);
		rc = sc_refresh_locked(c, 0);
	}
	pthread_rwlock_unlock(&c->rw);
	return rc;
}

int sc_unpinned(sc_cache *c, uint64_t freed_txn)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = (off_t)SC_PIN_BASE, .l_len = (off_t)freed_txn };
	char self[64];

	if (freed_txn == 0)
		return 1;
	if (c->query_fd < 0) {
		/* Our own pins must count too: ask through another open
		 * file description of the same file. */
		snprintf(self, sizeof(self), "/proc/self/fd/%d", c->fd);
		c->query_fd = open(self, O_RDONLY | O_CLOEXEC);
		if (c->query_fd < 0)
			return 0;
	}
	if (fcntl(c->query_fd, F_OFD_GETLK, &fl) != 0)
		return 0;
	return fl.l_type == F_UNLCK;
}

/* Take a consistent view for one operation.  Fast path: a shared lock and
 * two loads from the mapping. */
int sc_snapshot(sc_cache *c, struct sc_snap *s)
{
	/* The first lookup after sc_open() needs no path check (the path was
	 * just opened) and skips the clock: a fresh process that looks up one
	 * script does not fault in the vDSO's pages.  Every later one reads
	 * the clock and re-checks the path once a second. */
	int64_t next = atomic_load_explicit(&c->next_path_check_ns, memory_order_relaxed);
	int check;

	if (next == 0) {
		atomic_store_explicit(&c->next_path_check_ns, 1, memory_order_relaxed);
		check = 0;
	} else {
		check = sc_now_ns() >= next;
	}
	uint64_t seen[SC_SEEN_WORDS];
	int rc = 0;

	if (c->lower && atomic_load_explicit(&c->insecure, memory_order_relaxed) && !check)
		return SC_EINSECURE;
	pthread_rwlock_rdlock(&c->rw);
	read_seen_txn(c->maps->base, seen);
	if (memcmp(seen, c->seen_txn, sizeof(seen)) != 0 || check) {
		pthread_rwlock_unlock(&c->rw);
		pthread_rwlock_wrlock(&c->rw);
		rc = sc_refresh_locked(c, check);
		if (rc == 0 && c->lower && atomic_load(&c->insecure))
			rc = SC_EINSECURE;
		if (rc != 0) {
			pthread_rwlock_unlock(&c->rw);
			return rc;
		}
	}
	sc_snap_fill_locked(c, s);
	pthread_rwlock_unlock(&c->rw);
	return rc;
}

void sc_snap_fill_locked(sc_cache *c, struct sc_snap *s)
{
	s->map = c->maps->base;
	s->map_len = c->maps->len;
	s->file_size = c->file_size;
	s->meta = c->meta;
	s->shard_id = c->shard_id;
	s->fd = c->fd;
	s->vset = c->vset && c->vset->shard_id == c->shard_id ? c->vset : NULL;
	s->reloc = c->reloc;
	s->base = c->base;
	s->base_len = c->base_len;
	s->basedirs = c->basedirs;
}

/* Canonical form of a shard path that may not exist yet: realpath of the
 * file if it exists, else realpath of its directory plus the name.  (On
 * the heap: a fresh process pays a page fault for each stack page.) */
static char *canonical_shard_path(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir, *real, *out;
	size_t n;

	if ((real = realpath(path, NULL)))
		return real;
	if (!slash) {
		dir = strdup(".");
		slash = path - 1; /* the name is the whole path */
	} else if (slash == path) {
		return strdup(path);
	} else {
		dir = strndup(path, (size_t)(slash - path));
	}
	if (!dir)
		return NULL;
	real = realpath(dir, NULL);
	free(dir);
	if (!real)
		return NULL;
	n = strlen(real);
	out = malloc(n + 1 + strlen(slash + 1) + 1);
	if (out) {
		memcpy(out, real, n);
		out[n] = '/';
		strcpy(out + n + 1, slash + 1);
	}
	free(real);
	return out;
}

/* No file at @p path, in a directory this process may write: a shard can
 * be created there later.  (Anything else, a read-only or full file system
 * included, is for the eager open to find out and report.) */
static int absent_in_writable_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir;
	int ok;

	struct stat st;

	/* lstat: a name there, a dangling symlink included, is for the eager
	 * open to deal with (link() could not create the shard over it) */
	if (lstat(path, &st) == 0 || errno != ENOENT || !slash)
		return 0;
	if (slash == path)
		return access("/", W_OK) == 0;
	if (!(dir = strndup(path, (size_t)(slash - path))))
		return 0;
	ok = access(dir, W_OK) == 0;
	free(dir);
	return ok;
}

int sc_unborn_still(const sc_cache *c)
{
	struct stat st;

	return atomic_load(&c->unborn) && lstat(c->path, &st) != 0 && errno == ENOENT;
}

static int lock_file_open(const char *lock_path)
{
	return sc_robust_open(lock_path, O_RDWR | O_CREAT | O_NOFOLLOW, 0600);
}

/* The inter-process writer lock: flock on <shard>.lock, never followed
 * through a symlink. */
int sc_lock_writer(sc_cache *c)
{
	int rc;

	if (c->lock_fd < 0 && (c->lock_fd = lock_file_open(c->lock_path)) < 0) {
		rc = c->lock_fd;
		c->lock_fd = -1;
		return rc;
	}
	return sc_flock(c->lock_fd, LOCK_EX);
}

void sc_unlock_writer(sc_cache *c)
{
	sc_flock(c->lock_fd, LOCK_UN);
}

/* The writer lock held shared, which keeps commits out: <shard>.lock
 * opened read-only, if it exists and is a regular file (O_NONBLOCK: a FIFO
 * there must not block the open).  Closing the descriptor releases it.
 * @return the descriptor, or -errno. */
int sc_lock_shared(const sc_cache *c)
{
	struct stat st;
	int fd = sc_robust_open(c->lock_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK, 0), rc;

	if (fd < 0)
		return fd;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		rc = -EINVAL;
	else
		rc = sc_flock(fd, LOCK_SH);
	if (rc != 0) {
		close(fd);
		return rc;
	}
	return fd;
}

int sc_open_shard(sc_cache **out, const char *path, const char *tag, unsigned flags)
{
	char *def = NULL; /* on the heap: see canonical_shard_path() */
	sc_cache *c;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->fd = -1;
	c->lock_fd = -1;
	c->query_fd = -1;
	c->flags = flags;
	/* The static initialisers: pthread_*_init(..., NULL) reads a default
	 * attribute from a page of libc a fresh process has not touched. */
	c->rw = (pthread_rwlock_t)PTHREAD_RWLOCK_INITIALIZER;
	c->wmutex = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	c->lmutex = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	if (tag) {
		c->tag_len = strlen(tag);
		if (c->tag_len > UINT16_MAX) {
			rc = SC_ETOOBIG;
			goto fail;
		}
		if (!(c->tag = strdup(tag))) {
			rc = -ENOMEM;
			goto fail;
		}
	}
	if (!path) {
		if (!(def = malloc(PATH_MAX))) {
			rc = -ENOMEM;
			goto fail;
		}
		if ((rc = sc_default_path(def, PATH_MAX)) != 0)
			goto fail;
		path = def;
	}
	if (!*path) {
		rc = -EINVAL;
		goto fail;
	}
	if (!(flags & SC_IGNORE_ENV) && sc_env_disabled()) {
		c->disabled = 1;
		c->path = strdup(path);
		if (!c->path) {
			rc = -ENOMEM;
			goto fail;
		}
		*out = c;
		free(def);
		return 0;
	}

	if (access(path, F_OK) != 0 && errno == ENOENT) {
		if (flags & (SC_NOCREATE | SC_RDONLY)) {
			rc = -ENOENT;
			goto fail;
		}
		if ((rc = sc_make_parents(path)) != 0)
			goto fail;
	}
	c->path = canonical_shard_path(path);
	if (!c->path) {
		rc = errno ? -errno : -ENOMEM;
		goto fail;
	}
	{
		/* not asprintf: printf's code and tables are three page faults */
		size_t n = strlen(c->path);
		if (!(c->lock_path = malloc(n + sizeof(".lock")))) {
			rc = -ENOMEM;
			goto fail;
		}
		memcpy(c->lock_path, c->path, n);
		memcpy(c->lock_path + n, ".lock", sizeof(".lock"));
	}
	if ((flags & SC__LAZY) && !(flags & (SC_NOCREATE | SC_RDONLY)) && absent_in_writable_dir(c->path)) {
		/* Over lower shards: no file until the first write
		 * (sc_writer_begin), so that a run served by them writes
		 * nothing at all; meanwhile the handle reads an empty image
		 * and its path check picks up a file another process made. */
		c->unborn = 1;
		if ((rc = map_empty_image(c)) == 0)
			rc = sc_refresh_locked(c, 0);
		if (rc != 0)
			goto fail;
		c->next_path_check_ns = 0;
		*out = c;
		free(def);
		return 0;
	}
	if (access(c->path, F_OK) != 0 && errno == ENOENT && !(flags & (SC_NOCREATE | SC_RDONLY))) {
		/* Create under the writer lock so that two processes racing
		 * to create agree on one file. */
		if ((rc = sc_lock_writer(c)) != 0)
			goto fail;
		rc = sc_create_shard(c->path, 0);
		sc_unlock_writer(c);
		if (rc != 0)
			goto fail;
	}
	rc = sc_reopen_locked(c);
	if (rc == 0)
		rc = sc_refresh_locked(c, 0);
	if (sc_heal_wanted(rc) && !(flags & SC_RDONLY)) {
		/* Our own shard, damaged beyond use: a writer moves it aside
		 * and starts afresh (heal.c), then opens what is there. */
		int h = sc_lock_writer(c);
		if (h == 0) {
			h = sc_heal_locked(c);
			sc_unlock_writer(c);
		}
		if (h == 0 && (rc = sc_reopen_locked(c)) == 0)
			rc = sc_refresh_locked(c, 0);
	}
	if (rc != 0)
		goto fail;
	c->next_path_check_ns = 0; /* armed by the first lookup (see sc_snapshot) */
	*out = c;
	free(def);
	return 0;
fail:
	free(def);
	sc_close_shard(c);
	return rc;
}

void sc_trim_shard(sc_cache *c)
{
	struct sc_map *old;

	if (!c)
		return;
	pthread_mutex_lock(&c->wmutex);
	pthread_rwlock_wrlock(&c->rw);
	if (atomic_load(&c->pin_shard)) {
		/* No pointer is in use: writers may reuse what was freed. */
		(void)pin_lock(c->fd, F_UNLCK, c->pin_txn);
		atomic_store(&c->pin_shard, 0);
	}
	if (c->maps) {
		old = c->maps->next;
		c->maps->next = NULL;
		while (old) {
			struct sc_map *n = old->next;
			munmap(old->base, old->len);
			free(old);
			old = n;
		}
	}
	if (c->vset) {
		struct sc_vset *v = c->vset->next;
		c->vset->next = NULL;
		while (v) {
			struct sc_vset *n = v->next;
			vset_free(v);
			v = n;
		}
	}
	pthread_rwlock_unlock(&c->rw);
	pthread_mutex_unlock(&c->wmutex);
}

void sc_close_shard(sc_cache *c)
{
	if (!c)
		return;
	while (c->strs) {
		struct sc_str *n = c->strs->next;
		free(c->strs);
		c->strs = n;
	}
	sc_strv_free(c->basedirs);
	while (c->maps) {
		struct sc_map *n = c->maps->next;
		munmap(c->maps->base, c->maps->len);
		free(c->maps);
		c->maps = n;
	}
	while (c->vset) {
		struct sc_vset *n = c->vset->next;
		vset_free(c->vset);
		c->vset = n;
	}
	drop_v1(c);
	if (c->fd >= 0)
		close(c->fd);
	if (c->query_fd >= 0)
		close(c->query_fd);
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	pthread_rwlock_destroy(&c->rw);
	pthread_mutex_destroy(&c->wmutex);
	pthread_mutex_destroy(&c->lmutex);
	free(c->path);
	free(c->lock_path);
	free(c->tag);
	free(c);
}

const char *sc_path(const sc_cache *c)
{
	return c ? c->path : NULL;
}

int sc_disabled(const sc_cache *c)
{
	return c ? c->disabled : 1;
}

void sc_set_max_size(sc_cache *c, uint64_t max_bytes)
{
	if (c)
		atomic_store(&c->max_size, max_bytes);
}

