/*
 * sc_int.h - internals shared by the core's files.  Not installed.
 *
 * Locking inside one handle:
 *  - c->rw guards the mapping state (fd, map, meta snapshot).  Lookups hold
 *    it shared; a refresh (another process committed, the file grew past the
 *    mapping, the file was replaced) takes it exclusively for a moment.
 *  - c->wmutex + flock(c->lock_fd) serialize writers: the mutex between
 *    threads of this process (flock is per open file description, so it
 *    does not exclude them), flock between processes.  A writer never holds
 *    c->rw across I/O, so readers are never blocked by a commit.
 *  - Mappings are never unmapped while the handle lives (until sc_trim()),
 *    so pointers handed out stay valid across refreshes.
 */
#ifndef SC_INT_H
#define SC_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "format.h"
#include "scriptcache.h"

#define SC_SEEN_WORDS (2 * SC_META_SLOTS)
#define SC_IDENTITY_MAX 160

struct sc_map {
	unsigned char *base;
	size_t len;
	struct sc_map *next;
};

/*
 * The records this handle has checked (header and blob checksums).  A
 * committed record never changes, so one check per process is enough: a
 * repeat hit costs a probe here instead of hashing the blob.  Insert-only
 * and lock-free (records are added with compare-and-swap), one set per
 * shard file; a set that is replaced stays allocated until sc_close(),
 * because lookups use it without holding c->rw.
 */
struct sc_vset {
	uint64_t shard_id;
	uint64_t cap;             /* power of two */
	struct sc_vset *next;     /* older sets */
	uint32_t *slot;           /* cap of them: entry offset / SC_ENT_ALIGN; 0 = empty */
};
/* vset.c */
int  sc_vset_has(const struct sc_vset *vs, uint64_t off);
void sc_vset_add(struct sc_vset *vs, uint64_t off);

/* One consistent view of the shard: what a lookup or a writer works on. */
struct sc_snap {
	const unsigned char *map;
	uint64_t map_len;
	uint64_t file_size;
	struct sc_disk_meta meta;
	uint64_t shard_id;
	int fd;
	struct sc_vset *vset;
	/* Relocation (handle.c): the shard's keys not starting with '/' are
	 * relative to base (NULL: none known) or to one of basedirs. */
	int reloc;
	const char *base;
	size_t base_len;
	char *const *basedirs;
};

/* A string handed out through the API (a resolved base): kept until
 * sc_close(), since entries point into it. */
struct sc_str {
	struct sc_str *next;
	size_t len;
	char s[];
};

/* One lower shard of a stack (layer.c).  h is set once, when the shard
 * could be opened, and never changes after: the lower handle follows a
 * replaced file itself.  Until then err says why not and retry_ns when a
 * lookup may try again. */
struct sc_layer {
	char *path;
	_Atomic(sc_cache *) h;
	_Atomic int err;
	_Atomic int64_t retry_ns;
	pthread_mutex_t mu;
};

struct sc_cache {
	char *path;           /* canonical shard path */
	char *lock_path;      /* path + ".lock" */
	char *tag;            /* NULL for a tag-less (inspecting) handle */
	size_t tag_len;
	unsigned flags;
	int disabled;
	_Atomic uint64_t max_size;

	pthread_rwlock_t rw;
	int fd;
	ino_t ino;
	dev_t dev;
	struct sc_map *maps;  /* current mapping first, older ones after */
	uint64_t file_size;
	struct sc_disk_meta meta;
	uint64_t seen_txn[SC_SEEN_WORDS]; /* raw txnid and checksum words of each meta slot */
	uint64_t shard_id;
	struct sc_vset *vset; /* current set first, older ones after */
	/* A version 1 file at the path: read as an empty v2 image (maps holds
	 * it, anonymous, image_len bytes) and rebuilt on the first write
	 * from v1_map, its own read-only mapping. */
	int legacy;
	/* No file at the path yet (sc_open() over lower shards): read as the
	 * same empty image; the first write creates the file (txn.c). */
	_Atomic int unborn;
	uint64_t image_len;
	const unsigned char *v1_map;
	size_t v1_len;
	_Atomic int64_t next_path_check_ns; /* 0: not armed yet (sc_snapshot) */

	pthread_mutex_t wmutex;
	int lock_fd;
	int query_fd;          /* a second open file description of fd: tests pins */
	/* This handle's pin (docs/FORMAT.md, "Space reuse"): a read lock on
	 * byte SC_PIN_BASE + pin_txn of the shard, held from the first read
	 * that hands out pointers until sc_trim() or sc_close(), so that no
	 * writer reuses an extent freed after pin_txn.  pin_shard is the
	 * shard_id pinned, 0 for none. */
	_Atomic uint64_t pin_shard;
	uint64_t pin_txn;
	int cleaned_temps;

	/* Relocation, from the header at each (re)open (docs/LAYERS.md): base
	 * is the recorded base resolved against the shard's directory, or
	 * NULL; every string it has been is on strs until sc_close(). */
	int reloc;
	const char *base;
	size_t base_len;
	struct sc_str *strs;
	char **basedirs;       /* $SCRIPTCACHE_BASEDIRS resolved, NULL-terminated; or NULL */

	/* A lower shard of another handle: each path check applies the owner
	 * rule again, and while it fails lookups get SC_EINSECURE. */
	int lower;
	_Atomic int insecure;

	/* The stack (layer.c): lower shards, set once each and appended
	 * under lmutex; n_layers is published after the slot is filled. */
	struct sc_layer *layers[SC_MAX_LOWERS];
	_Atomic int n_layers;
	pthread_mutex_t lmutex;

	_Atomic uint64_t n_hits, n_absent, n_stale, n_fingerprint, n_corrupt;
	_Atomic uint64_t n_lower_hits;
	_Atomic uint64_t n_puts, n_removes, n_evictions, n_compactions, n_heals;
	_Atomic uint64_t n_content_fresh;
};

/* os.c: system calls made once, with EINTR, O_CLOEXEC and short writes
 * handled.  Each returns 0 (or an fd) or -errno; every call that changes a
 * file or a directory entry goes through here. */
struct iovec;
int64_t sc_now_ns(void);                    /* CLOCK_MONOTONIC_COARSE */
int  sc_robust_open(const char *path, int flags, mode_t mode); /* fd or -errno */
int  sc_mkostemp(char *tmpl);               /* mkostemp(O_CLOEXEC): fd or -errno */
int  sc_make_parents(const char *path);     /* mkdir -p 0700 of path's parents */
int  sc_write_full(int fd, const void *buf, size_t len, uint64_t off);
/* pwritev until done; advances @p v in place over what was written. */
int  sc_writev_full(int fd, struct iovec *v, int cnt, uint64_t off);
int  sc_ftruncate(int fd, uint64_t len);
int  sc_fsync(int fd);
int  sc_fdatasync(int fd);
int  sc_rename(const char *from, const char *to);
int  sc_link(const char *from, const char *to);
int  sc_unlink(const char *path);
int  sc_fsync_dir(const char *path);        /* fsync the directory holding path */
int  sc_flock(int fd, int op);

#ifdef SC_OS_TRACE
/* Test builds only (torture/crashsim.c): what os.c did, reported after
 * each successful call while sc_os_trace is set.  WRITE: @p len bytes at
 * @p off, gathered from @p iov (@p iovcnt entries, possibly longer than
 * len); TRUNCATE: new size in @p off; DIRSYNC: @p path is the directory;
 * RENAME and LINK: @p path to @p path2. */
enum sc_os_op {
	SC_OS_OPEN, SC_OS_WRITE, SC_OS_TRUNCATE, SC_OS_SYNC, SC_OS_DIRSYNC,
	SC_OS_RENAME, SC_OS_LINK, SC_OS_UNLINK,
};
struct sc_os_event {
	enum sc_os_op op;
	int fd;
	int flags;
	const char *path, *path2;
	const struct iovec *iov;
	int iovcnt;
	size_t len;
	uint64_t off;
};
extern void (*sc_os_trace)(const struct sc_os_event *ev);
#endif

/* source.c: is the source still the one compiled?  sc_source_hash():
 * XXH3-128 of the regular file at @p path, if it has @p size bytes (and,
 * with @p want, the same mtime and size as it) before and after the read:
 * 0, SC_ESTALE (changed or not regular) or -errno.  sc_source_fresh(): 1
 * when the file has the recorded mtime and size, or the recorded size and,
 * with @p src_hash, the recorded bytes (then *by_content is 1); else 0. */
struct stat;
int  sc_source_hash(const char *path, const struct stat *want, uint64_t size, uint64_t id[2]);
int  sc_source_fresh(const char *path, int64_t sec, uint32_t nsec, uint64_t size,
		     const uint64_t *src_hash, int *by_content);

/* file.c: whole shard files beside the path */
int  sc_create_shard(const char *path, int replace);
void sc_clean_temps(const char *shard_path);

/* handle.c: one shard's handle (the stack on top of it is layer.c) */
/* sc_open_shard(): over lower shards, a missing file is created at the
 * first write, not at the open (handle.c).  Not a public flag. */
#define SC__LAZY (1u << 30)
/* The handle has no file yet and none is at its path: nothing to compact,
 * clear, evict or remove, and nothing to create for it (handle.c). */
int  sc_unborn_still(const sc_cache *c);
int  sc_open_shard(sc_cache **out, const char *path, const char *tag, unsigned flags);
void sc_close_shard(sc_cache *c);
void sc_trim_shard(sc_cache *c);
int  sc_snapshot(sc_cache *c, struct sc_snap *s);   /* takes and drops rw */
void sc_snap_fill_locked(sc_cache *c, struct sc_snap *s); /* rw held */
int  sc_refresh_locked(sc_cache *c, int force_path_check); /* rw held exclusively */
int  sc_reopen_locked(sc_cache *c);                 /* rw held exclusively */
int  sc_lock_writer(sc_cache *c);
void sc_unlock_writer(sc_cache *c);
int  sc_lock_shared(const sc_cache *c);    /* fd holding it, or -errno */
int  sc_open_shard_fd(const char *path, unsigned flags, int *fd_out);
int  sc_map_file(sc_cache *c, int fd, uint64_t file_size);
/* Pin the current shard if this handle has not (a lookup, before it takes
 * the snapshot whose pointers it hands out). */
int  sc_pin(sc_cache *c);
/* Writer: may an extent freed by commit @p freed_txn be written?  No
 * handle anywhere holds a pin below it.  1 yes, 0 no (or cannot tell). */
int  sc_unpinned(sc_cache *c, uint64_t freed_txn);

/* index.c */
uint64_t sc_key_hash(const char *key, size_t len);
void sc_slot_read(const struct sc_snap *s, uint64_t i, uint64_t *hash, uint64_t *off);
/* Probe the index for @p key; on success *slot_out (may be NULL) and *v are
 * set.  @return 0, SC_ENOTFOUND, SC_ECORRUPT, or -EAGAIN when a slot points
 * past the snapshot (a newer commit: take a fresh one and probe again). */
int  sc_probe(const struct sc_snap *s, const char *key, size_t key_len, uint64_t hash,
	      uint64_t *slot_out, struct sc_rec_view *v);
/* Where a new key goes: the first tombstone or empty slot of its probe run. */
int  sc_insertion_slot(const struct sc_snap *s, uint64_t hash, uint64_t *slot);
/* Slots of a table for @p entries live entries (load at most one half). */
uint64_t sc_table_slots(uint64_t entries);
/* Insert (hash, off) into an in-memory table that has a free slot. */
void sc_table_insert(struct sc_disk_slot *t, uint64_t slots, uint64_t hash, uint64_t off);
/* A bigger table: the live slots of @p s plus one new entry (malloc'd). */
int  sc_table_grow(const struct sc_snap *s, uint64_t new_hash, uint64_t new_off,
		   struct sc_disk_slot **out, uint64_t *slots_out);
/* The blob index, read by writers only: slot @p i as committed (wredo
 * applied), its file offset, a probe for a blob id (0 and its slot; or
 * SC_ENOTFOUND and where to insert; SC_ECORRUPT for a table with no free
 * slot), and in-memory tables for growth and compaction. */
/* The 32 bytes at @p at of a table only writers read (blob index, free
 * directory), as committed: a redo record of the meta overrides them. */
void sc_wredo_read(const struct sc_snap *s, uint64_t at, void *out);
uint64_t sc_bslot_at(const struct sc_snap *s, uint64_t i);
void sc_bslot_read(const struct sc_snap *s, uint64_t i, struct sc_disk_bslot *b);
int  sc_blob_find(const struct sc_snap *s, const uint64_t id[2], uint64_t *slot,
		  struct sc_disk_bslot *b);
uint64_t sc_btable_slots(uint64_t blobs);
void sc_btable_insert(struct sc_disk_bslot *t, uint64_t slots, const struct sc_disk_bslot *b);
/* The live slots of @p s in a table with room for @p extra more (malloc'd). */
int  sc_btable_grow(const struct sc_snap *s, uint64_t extra, struct sc_disk_bslot **out,
		    uint64_t *slots_out);
/* In an in-memory table without tombstones: the slot holding @p id, or the
 * empty slot where it would go. */
uint64_t sc_btable_locate(const struct sc_disk_bslot *t, uint64_t slots, const uint64_t id[2]);
void sc_btable_delete(struct sc_disk_bslot *t, uint64_t slots, uint64_t i);

/* entry.c (sc_entry_status() is public) */
void sc_fill_info(const struct sc_snap *s, uint64_t off, const struct sc_rec_view *v,
		  sc_entry_info *out);
/* A list of entries whose pointers lie in a mapping that outlives it
 * (what a rewrite copies); wo[i] marks a whiteout (SC_ENT_WHITEOUT). */
struct sc_live {
	sc_entry_info *e;
	unsigned char *wo;
	uint64_t n, cap;
};
int  sc_live_add(struct sc_live *l, const sc_entry_info *e);
int  sc_live_add_whiteout(struct sc_live *l, const sc_entry_info *e, int whiteout);
void sc_live_free(struct sc_live *l);
/* The source side of sc_entry_status(): 1 if the source is the one compiled
 * (always for entries without one); *by_content (may be NULL) says the bytes
 * had to be hashed to tell. */
int  sc_entry_source_fresh(const sc_entry_info *e, int *by_content);

/* env.c: the configured stack.  *paths is a malloc'd NULL-terminated list
 * of malloc'd absolute paths, in lookup order (an item naming a directory
 * already expanded to its sorted "*.shard"; missing files kept: the caller
 * skips them).  sc_env_basedirs(): $SCRIPTCACHE_BASEDIRS, each resolved by
 * realpath(3), those that do not resolve left out; NULL when none. */
int  sc_env_lowers(char ***paths);
char **sc_env_basedirs(void);
void sc_strv_free(char **v);

/* layer.c: the stack.  Layer @p i's handle (0: c itself), NULL while it
 * cannot be used (an open retried at most once a second). */
int  sc_layers(const sc_cache *c);         /* 1 + lower shards */
sc_cache *sc_layer_handle(sc_cache *c, int i);
/* The internal whiteout answer of a lookup in one shard: the key is hidden
 * below.  Never returned through the API. */
#define SC_IWHITEOUT (-30990)

/* get.c */
int  sc_get_tagged(sc_cache *c, const char *key, const char *tag, size_t tag_len, sc_blob *out);
/* The first layer below layer 0 that shows @p key (a whiteout there
 * hides it: 0), with its entry's (shard_id, offset).  Returns the layer
 * or 0. */
int  sc_lower_shows(sc_cache *c, const char *key, uint64_t *shard_id, uint64_t *offset);

/* txn.c */
int  sc_writer_begin(sc_cache *c, struct sc_snap *s);
void sc_writer_end(sc_cache *c);
int  sc_commit_meta(sc_cache *c, const struct sc_snap *s, struct sc_disk_meta *m);
/* The transaction id the next commit gets (writer lock held): one past the
 * newest commit, and past any meta a power loss left without its data. */
uint64_t sc_next_txnid(const struct sc_snap *s);
/* Write the index slot that the committed meta's redo record names. */
int  sc_apply_redo(const struct sc_snap *s);

/* build.c: a new shard with @p l's entries, renamed over c->path (writer
 * lock held); then the handle moved to the file now at the path.
 * sc_build_file(): the same written to @p dest (a temp file beside it,
 * synced, renamed over it) with mode @p mode; with @p reloc the header is
 * marked relocatable and records @p base (may be NULL). */
int  sc_build_shard(sc_cache *c, const struct sc_live *l);
int  sc_build_file(const char *dest, const struct sc_live *l, int reloc, const char *base,
		   unsigned mode);
int  sc_follow(sc_cache *c);

/* rewrite.c: compaction, clear, eviction */
typedef int (*sc_keep_fn)(const sc_entry_info *e, void *arg);
int  sc_rewrite(sc_cache *c, struct sc_snap *s, sc_keep_fn keep, void *arg,
		uint64_t budget, uint64_t *n_dropped);
/* The live, sound entries of @p s that @p keep wants (whiteouts too,
 * unless @p whiteouts is 0); damaged or unwanted ones are counted in
 * *dropped. */
int  sc_collect(const struct sc_snap *s, sc_keep_fn keep, void *arg, int whiteouts,
		struct sc_live *l, uint64_t *dropped);

/* legacy.c: the sound entries of a version 1 shard (format.h of 0.1.0),
 * read from a mapping of @p len bytes (damaged ones are counted); and,
 * writer lock held, c->v1_map the v1 file at the path, its rebuild as v2
 * with every sound entry (or, damaged beyond use, set aside), the handle
 * moved to the new file. */
int  sc_v1_collect(const unsigned char *map, uint64_t len, struct sc_live *l,
		   uint64_t *dropped);
int  sc_upgrade_locked(sc_cache *c);

/* heal.c */
int  sc_heal_wanted(int rc);           /* an error a heal could cure */
/* Writer lock held: if the file at c->path is ours and damaged beyond use,
 * set it aside and put a new shard in its place.  @return 0 when the path
 * now holds a sound shard (healed here or before), else the reason not. */
int  sc_heal_locked(sc_cache *c);
uint64_t sc_count_set_aside(const char *path);
/* Writer lock held: set the file at c->path aside and put an empty shard
 * in its place (a heal without the examination). */
int  sc_set_aside_locked(sc_cache *c);

/* fingerprint.c */
const char *sc_self_identity(size_t *len);
const char *sc_self_path(size_t *len);
int  sc_file_identity(const char *path, char *buf, size_t len);

#endif /* SC_INT_H */
