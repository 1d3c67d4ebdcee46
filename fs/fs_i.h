/*
 * fs_i.h - private interface of scriptcachefs, the FUSE view of a shard.
 * Every declaration shared between the files of fs/ lives here; no .c file
 * declares another file's functions.
 *
 * Files, from the request table down:
 *   main.c     options, session set-up, the multithreaded loop, unmount
 *   daemon.c   daemonizing; telling the mounting command we are ready
 *   ops.c      the one request table (fs_ops): sends each directory request
 *              (lookup, readdir, mkdir, create, mknod, rename, unlink,
 *              rmdir) to the flat or the tree view, answers the requests on
 *              files (read, write, setattr, open/flush/release, fsync,
 *              forget, getattr, statfs, the ENOSYS replies)
 *   flat.c     the flat view: the root (one directory per key, .stats, the
 *              readdir snapshot) and entry directories (blob, metadata.json,
 *              pending files); fs_flat_* handlers
 *   tree.c     the tree view (.tree/<key path>): fs_tree_* handlers, and the
 *              index of the paths the keys imply (fs_tree_sync, fs_put)
 *   commit.c   pending files, a write to a committed blob turning it into
 *              one (fs_pending_begin), the one commit path (fs_commit) both
 *              views call, the idle commit of files written under their
 *              own name
 *   entry.c    the entry model: what the shard says about a key applied to
 *              its directory (fs_apply_ver, fs_refresh_dir, fs_resync_dir),
 *              attributes and entry parameters, the attributes set by
 *              chmod/chown/utimes (fs_attr_*), errno mapping (fs_errno)
 *   render.c   metadata.json and .stats (jansson)
 *   notify.c   the watcher thread (inotify on the shard and on source
 *              directories, the lower shards' state, resync, idle commit,
 *              sc_trim) and the queue of
 *              kernel notifications it alone sends (fs_note, fs_wake)
 *   under.c    the distribution's .pyc underneath the tree view: a tree
 *              lookup that finds nothing in the cache serves
 *              /A/B/__pycache__/<name>.pyc read-only (FS_UNDER), or the real
 *              directory /A/B/<name> as a tree directory (n_under)
 *   remote.c   the remote tier (-o remote=URL): a flat-view lookup that
 *              misses locally asks the remote (libscriptcache-remote) for
 *              the compiled bytes of the source the key names, and puts
 *              a verified answer into the shard (fs_remote_fill); so does
 *              a tree lookup of a CPython .pyc name (fs_remote_fill_pyc)
 *   pyc.c      CPython's .pyc names and headers: the source a tree key
 *              stands for, recorded at commit, fetched for on a miss
 *   inode.c    the inode table: nodes, the key map, tree directories by
 *              path, lookup counts, forget
 *   links.c    link(2) in both views; a blob's st_ino and st_nlink from the
 *              number of entries holding the same bytes (fs_ids_*)
 * Calls that still run against that order: commit.c -> tree.c (fs_put keeps
 * the tree index), inode.c -> under.c (fs_under_unmap), notify.c -> entry.c,
 * commit.c and tree.c (the watcher's work); links.c -> flat.c and tree.c
 * (a link is a create then a commit); tree.c -> under.c is downward
 * (the underlay is the tree's last resort); every file queues
 * notifications through notify.c.
 *
 * Locking (outermost first; no thread takes them in another order):
 *   fs_tlock (rwlock)     read-held around every put of the daemon (fs_put,
 *                         from fs_commit) and every removal through the
 *                         mount (the link counts follow both, links.c),
 *                         write-held to compare the shard's
 *                         generation with the tree index and rebuild it
 *                         (fs_tree_sync).
 *   fs_map_lock (rwlock)  read-held by every thread that calls a core
 *                         function returning a pointer into the mapping
 *                         (sc_lookup, sc_foreach) or dereferences such a
 *                         pointer; write-held only around sc_trim() (the
 *                         watcher).  glibc rwlocks prefer readers, so a trim
 *                         never queues readers.
 *   fs_lock (mutex)       the inode table, the tree index and link counts,
 *                         the table of underlay files, the root listing,
 *                         pending files, the attributes set by
 *                         chmod/chown/utimes.  fs_commit_cv (with it):
 *                         a write waits there for a commit of its file.
 *                         Nothing that can block on I/O or on the core is
 *                         called with it held.
 *   fs_qlock (mutex)      the queue of kernel notifications; innermost
 *                         (fs_note is called with fs_lock held).
 * A commit runs in the thread that asks for it.  During its put it holds
 * only fs_tlock, read: the pending file's p_busy flag, not a lock, keeps
 * its bytes stable, so readers on other threads never wait for a commit.
 * Kernel notifications are sent only by the watcher thread, with no lock
 * held (libfuse: a notification sent from a request handler, or while
 * holding a lock a handler needs, can deadlock).  Two exceptions, both
 * with no lock held: attribute-only invalidations, for which the kernel
 * takes no lock (fs_send_attr_notes: handlers send them before replying),
 * and a rename's invalidation of the other view's dentry, sent by the
 * renaming thread right after its reply (fs_tree_rename, fs_flat_rename).
 */
#ifndef SC_FS_I_H
#define SC_FS_I_H

#define FUSE_USE_VERSION 312
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdint.h>
#include <sys/stat.h>
#include <time.h>

#include "scriptcache.h"

/* Inode numbers never repeat within one mount, so the generation is 0. */
#define FS_INO_ROOT   FUSE_ROOT_ID

#define FS_BLOB_NAME  "blob"
#define FS_META_NAME  "metadata.json"
#define FS_STATS_NAME ".stats"
#define FS_TREE_NAME  ".tree"   /* never an encoded name: those never start with "." */

/* Cache lifetimes handed to the kernel.  Everything the shard defines is
 * invalidated explicitly by the watcher, so the kernel may keep it
 * "forever"; the short one is for entries whose source directory cannot
 * be watched (see docs/FS.md). */
#define FS_TTL_LONG      86400.0
#define FS_TTL_FALLBACK  0.05
#define FS_TTL_PENDING   1.0

enum fs_kind {
	FS_ROOT = 1,
	FS_STATS,    /* hidden control file, one node per lookup */
	FS_DIR,      /* one entry directory (a key) */
	FS_BLOB,     /* committed blob of one version of an entry */
	FS_META,     /* metadata.json of one version (and status) of an entry */
	FS_PENDING,  /* file being written through the mount, in memory */
	FS_TDIR,     /* directory of the tree view (n_key: its path, "" = .tree) */
	FS_UNDER,    /* the distribution's .pyc under a tree name (under.c; n_key:
		      * its tree path, n_tparent: the tree directory) */
};

/* What the shard says about one entry, as last seen. */
struct fs_ver {
	uint64_t v_shard_id;
	uint64_t v_offset;
	int      v_status;          /* 0, SC_ESTALE, SC_EWRITERGONE */
	int      v_has_source;
	int64_t  v_cached_sec;
	uint32_t v_cached_nsec;
	uint64_t v_blob_size;
	uint64_t v_checksum;        /* blob_id[0] (XXH3-128 low half): with the size, its identity */
	int      v_layer;           /* 0: the mount's own shard; 1..: a read-only lower shard */
};

struct fs_node {
	uint64_t        n_ino;
	uint64_t        n_nlookup;   /* kernel references (lookup/readdirplus/create) */
	enum fs_kind    n_kind;
	struct fs_node *n_inext;     /* ino hash chain */
	struct timespec n_mtime;

	/* FS_DIR */
	char           *n_key;       /* NUL-terminated copy (keys hold no NUL) */
	size_t          n_key_len;
	char           *n_name;      /* encoded name; FS_PENDING: its file name */
	struct fs_node *n_knext;     /* key hash chain */
	int             n_in_map;    /* reachable by key */
	int             n_in_shard;  /* the shard has an entry for the key */
	int             n_made;      /* made by mkdir, not yet committed */
	int             n_unwatched; /* source dir could not be watched */
	int             n_busy;      /* an unlink is evicting it: resync keeps off */
	struct fs_ver   n_ver;       /* valid if n_in_shard */
	const unsigned char *d_blob; /* blob of n_ver, valid while d_epoch == fs_epoch */
	uint64_t        d_epoch;
	struct fs_node *n_blob;      /* current children, or NULL */
	struct fs_node *n_meta;
	struct fs_node *n_pending;   /* list of FS_PENDING files (n_pnext); also FS_TDIR */
	uint64_t        n_tparent;   /* FS_TDIR the blob was last seen through, or 0 */
	unsigned        n_refs;      /* child nodes whose n_dir is this node */
	int             n_under;     /* FS_TDIR: shown for a real directory (under.c),
				      * kept by index rebuilds that do not imply it */

	/* files */
	struct fs_node *n_dir;       /* owning FS_DIR (holds an n_refs) */
	int             n_current;   /* still the dir's current child / listed */
	struct fs_ver   f_ver;       /* FS_BLOB, FS_META */
	const unsigned char *f_blob; /* FS_BLOB: pointer into the mapping */
	uint64_t        f_epoch;     /* fs_epoch when f_blob was obtained */
	char           *f_text;      /* FS_META, FS_STATS: rendered JSON */
	size_t          f_text_len;

	/* FS_PENDING */
	struct fs_node *n_pnext;
	unsigned char  *p_buf;
	size_t          p_len, p_cap;
	char           *p_exe;       /* writer's executable (fingerprint) */
	struct timespec p_last;      /* last write/truncate (CLOCK_MONOTONIC) */
	uint64_t        p_wgen;      /* bumped on every change */
	uint64_t        p_cgen;      /* p_wgen at the last commit (0: never) */
	uint64_t        p_failgen;   /* p_wgen at the last failed idle commit */
	unsigned        p_writers;   /* open for writing (commit_on_close only) */
	int             p_busy;      /* a commit of this file is under way */
	uint64_t        p_c_shard;   /* version made by the last commit */
	uint64_t        p_c_off;

	/* FS_UNDER: the file it was looked up as (mtime in n_mtime) */
	int             u_fd;
	dev_t           u_dev;
	ino_t           u_ino;
	uint64_t        u_size;
	mode_t          u_mode;
	uid_t           u_uid;
	gid_t           u_gid;
};

enum fs_note_kind {
	FS_NOTE_ENTRY,
	FS_NOTE_DELETE,
	FS_NOTE_INODE,  /* attributes and cached data */
	FS_NOTE_ATTR,   /* attributes only: the page cache holds the right bytes */
};

struct fs_note {
	enum fs_note_kind t_kind;
	uint64_t          t_parent;  /* ENTRY/DELETE: dir; INODE: the inode */
	uint64_t          t_child;   /* DELETE */
	struct fs_note   *t_next;
	char              t_name[];  /* ENTRY/DELETE */
};

struct fs_opts {
	char    *o_shard;
	char    *o_mountpoint;       /* absolute */
	char    *o_tag;              /* fingerprint tag of entries written here */
	int      o_ro;
	int      o_commit_on_close;
	unsigned o_idle_ms;          /* plain-cp commit delay */
	int      o_nosync;
	int      o_no_dist_pyc;      /* no underlay of the distribution's .pyc */
	int      o_allow_other;      /* allow_other or allow_root: callers vary */
	char    *o_lower;            /* -o lower: colon-separated lower shards, or NULL */
	int      o_lower_given;      /* -o lower seen (even empty: no lower shard) */
	int      o_nolowers;         /* -o nolowers */
	char    *o_remote;           /* -o remote=URL, or NULL */
	char    *o_remote_tag;       /* -o remote_tag: fingerprint looked up */
	char    *o_remote_exe;       /* -o remote_exe: its executable */
	int      o_remote_timeout_ms;/* -o remote_timeout_ms, or -1: not given */
	unsigned o_remote_breaker_s; /* -o remote_breaker_s */
};

struct fs_remote;  /* remote.c */

struct fs {
	struct fs_opts   fs_o;
	sc_cache        *fs_cache;
	struct fs_remote *fs_remote; /* NULL: no remote tier (remote.c) */
	struct fuse_session *fs_se;
	uid_t            fs_uid;
	gid_t            fs_gid;
	struct timespec  fs_start;

	pthread_rwlock_t fs_map_lock;
	uint64_t         fs_epoch;   /* bumped by every sc_trim (under map_lock) */

	pthread_mutex_t  fs_lock;
	pthread_cond_t   fs_commit_cv; /* broadcast when a commit ends (p_busy cleared) */
	struct fs_node **fs_itab;    /* ino hash */
	size_t           fs_icap, fs_icount;
	struct fs_node **fs_ktab;    /* key hash (FS_DIR) */
	size_t           fs_kcap, fs_kcount;
	uint64_t         fs_next_ino;
	struct fs_node  *fs_root;
	struct timespec  fs_root_mtime;
	uint64_t         fs_npending;

	/* tree view (tree.c) */
	pthread_rwlock_t fs_tlock;
	struct fs_tidx  *fs_tidx;    /* NULL until the tree is first used */
	uint64_t         fs_t_own;   /* own commits since the index was built */
	uint64_t         fs_put_seq; /* own commits, ever (under fs_lock) */
	struct fs_node **fs_ttab;    /* FS_TDIR nodes by path (chain: n_knext) */
	size_t           fs_tcap;
	struct fs_node  *fs_troot;
	struct fs_node **fs_utab;    /* FS_UNDER nodes by tree path (under.c) */

	/* entries per blob identity, for st_ino and st_nlink (links.c, under
	 * fs_lock); built with the tree index, NULL until then */
	struct fs_ids   *fs_ids;

	/* attributes set by chmod/chown/utimes (entry.c, under fs_lock) */
	struct fs_attr **fs_atab;    /* by key; NULL until the first setattr */
	size_t           fs_acap, fs_acount;

	/* root listing snapshot for readdir offsets (flat.c, under fs_lock) */
	struct fs_listing *fs_list;
	uint64_t         fs_made_gen; /* bumped when the set of mkdir'd directories changes */

	pthread_mutex_t  fs_qlock;
	struct fs_note  *fs_qhead, **fs_qtail;
	struct fs_note  *fs_ahead;   /* FS_NOTE_ATTR: sent by any thread */

	/* watcher */
	pthread_t        fs_watcher;
	int              fs_watcher_up;
	int              fs_inotify;  /* -1 if none */
	int              fs_wake;     /* eventfd */
	int              fs_ready;    /* pipe to the waiting parent, or -1 */
	int              fs_shard_wd;
	char            *fs_shard_base;
	volatile int     fs_stop;

	/* bumped by the watcher when a lower shard changed (replaced, fixed,
	 * become unusable): the root listing and the tree index, which follow
	 * the own shard's generation, are rebuilt then too (atomic) */
	uint64_t         fs_lower_gen;

	/* puts of the daemon (fs_put) begun, done and failed: let the
	 * watcher tell its own commits from other writers' (atomics) */
	uint64_t         fs_puts_begun, fs_puts_done, fs_puts_failed;

	/* counters for .stats (atomics) */
	uint64_t         st_lookups, st_reads, st_read_bytes, st_commits,
			 st_commit_errors, st_evictions, st_notes, st_resyncs,
			 st_trims, st_tree_rebuilds, st_dist_hits, st_dist_refused,
			 st_lower_hits; /* blob lookups a lower shard answered */
};

/* ops.c */
extern const struct fuse_lowlevel_ops fs_ops;

/* daemon.c */
void fs_daemonize(struct fs *fs, int foreground);
void fs_report_ready(struct fs *fs, int ok);

/* flat.c: handlers for the root (FS_ROOT) and entry directories (FS_DIR) */
void fs_flat_lookup_root(fuse_req_t req, struct fs *fs, const char *name);
void fs_flat_lookup(fuse_req_t req, struct fs *fs, struct fs_node *d, const char *name);
void fs_flat_readdir_root(fuse_req_t req, struct fs *fs, size_t size, off_t off, int plus);
void fs_flat_readdir(fuse_req_t req, struct fs *fs, struct fs_node *d, size_t size,
		     off_t off, int plus);
void fs_flat_mkdir(fuse_req_t req, struct fs *fs, const char *name);
/* create and mknod.  fs_lock NOT held; @p exe is taken over.  Returns an errno. */
int  fs_flat_create(struct fs *fs, fuse_ino_t parent, const char *name, char *exe, int writer,
		    struct fuse_entry_param *ep);
void fs_flat_rename(fuse_req_t req, struct fs *fs, fuse_ino_t parent, const char *name,
		    fuse_ino_t newparent, const char *newname, unsigned flags);
void fs_flat_unlink(fuse_req_t req, struct fs *fs, fuse_ino_t parent, const char *name);
void fs_flat_rmdir(fuse_req_t req, struct fs *fs, const char *name);
/* Key of the top-level name (malloc'd), or NULL with *err an errno. */
char *fs_name_to_key(struct fs *fs, const char *name, size_t *len, int *err);
void fs_listing_release(struct fs *fs);

/* tree.c: handlers for .tree and its directories (FS_TDIR) */
void fs_tree_lookup_root(fuse_req_t req, struct fs *fs);
void fs_tree_lookup(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *name);
void fs_tree_readdir(fuse_req_t req, struct fs *fs, struct fs_node *td, size_t size,
		     off_t off, int plus);
void fs_tree_mkdir(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *name);
/* create and mknod.  fs_lock NOT held; @p exe is taken over.  Returns an errno. */
int  fs_tree_create(struct fs *fs, struct fs_node *td, const char *name, char *exe,
		    struct fuse_entry_param *ep);
void fs_tree_rename(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *name,
		    fuse_ino_t newparent, const char *newname, unsigned flags);
void fs_tree_unlink(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *name);
void fs_tree_rmdir(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *name);
/* tree.c: the index of the paths the keys imply */
int  fs_tree_init(struct fs *fs);
void fs_tree_free(struct fs *fs);
/* Nonzero if @p key is a clean absolute path ("/" then components that are
 * not empty, "." or ".." and fit in NAME_MAX): the only keys the tree view
 * shows and the only keys that may be made through the mount. */
int  fs_key_is_path(const char *key, size_t len);
/* Bring the index up to date with the shard.  @p wait: block for running
 * commits (a lookup); else return -EAGAIN if one runs (the watcher). */
int  fs_tree_sync(struct fs *fs, int wait);
/* sc_put_ex() for every commit of the daemon (keeps the tree index). */
int  fs_put(struct fs *fs, const char *key, size_t klen, const void *buf, size_t len,
	    const sc_put_opts *o);

/* under.c: the distribution's .pyc underneath the tree view */
int  fs_under_init(struct fs *fs);
void fs_under_free(struct fs *fs);
/* The file /A/B/__pycache__/<name> for tree path @p path (/A/B/<name>, a
 * ".pyc"), if it may be served to the caller of @p req: 0 with *@p ep
 * filled and a lookup counted, else an errno (ENOENT: nothing to serve).
 * fs_lock NOT held (this does I/O). */
int  fs_under_file(fuse_req_t req, struct fs *fs, struct fs_node *td, const char *path,
		   size_t len, struct fuse_entry_param *ep);
/* Nonzero if the real directory @p path may be shown to the caller of @p req
 * as a tree directory.  fs_lock NOT held. */
int  fs_under_dir(fuse_req_t req, struct fs *fs, const char *path);
/* Entry timeout of what the underlay answers (0 with allow_other). */
double fs_under_entry_ttl(const struct fs *fs);
/* READ of an FS_UNDER node: called with fs_lock held, returns without. */
void fs_under_read(fuse_req_t req, struct fs *fs, struct fs_node *n, size_t size, off_t off);
/* fs_lock held: a key now names @p path; the kernel must forget the
 * underlay file it may know by that name. */
void fs_under_shadowed(struct fs *fs, const char *path, size_t len);
/* fs_lock held: the same for every underlay file whose path @p is_key. */
void fs_under_recheck(struct fs *fs, int (*is_key)(void *arg, const char *p, size_t len),
		      void *arg);
struct fs_node *fs_under_find(struct fs *fs, const char *path, size_t len); /* fs_lock held */
void fs_under_unmap(struct fs *fs, struct fs_node *n);                      /* fs_lock held */

/* commit.c */
/* The one commit of pending file @p p under @p key, for both views:
 * 0 or a negative code (SC_E* or -errno).  No lock held; the caller holds
 * a reference on @p p. */
int  fs_commit(struct fs *fs, struct fs_node *p, const char *key, size_t klen, int as_blob);
/* Commit plainly written blobs that are idle and have no writer (@p all:
 * every one, at unmount).  No lock held. */
void fs_commit_idle(struct fs *fs, int all);
/* Drop a pending file from its directory (unlink, replace, rmdir). */
void fs_pending_drop(struct fs *fs, struct fs_node *dir, struct fs_node *p); /* fs_lock held */
/* A write begins on @p ino: a committed blob becomes a pending version of
 * its entry on the same inode, keeping its first @p keep bytes.  No lock
 * held; returns 0 or an errno. */
int  fs_pending_begin(struct fs *fs, uint64_t ino, pid_t pid, uint64_t keep);
/* Wait until no commit of @p p runs.  fs_lock held (released meanwhile). */
void fs_pending_wait(struct fs *fs, struct fs_node *p);
void fs_pending_touch(struct fs_node *p);                          /* fs_lock held */
int  fs_pending_resize(struct fs_node *p, size_t len);             /* fs_lock held */
/* The executable of process @p pid (malloc'd), or NULL if unknown. */
char *fs_writer_exe(pid_t pid);
/* Nonzero if some process we can see has @p path open for writing. */
int  fs_has_writers(const char *path);
/* ... entry directory @p d's blob, through either view. */
int  fs_blob_has_writers(struct fs *fs, const struct fs_node *d);

/* entry.c */
/* Apply what the shard says (e, or NULL: no entry) to dir d; queues the
 * kernel notifications.  fs_lock held.  Returns 1 if the version changed. */
int  fs_apply_ver(struct fs *fs, struct fs_node *d, const sc_entry_info *e, int status);
/* Look d's key up and apply it.  fs_map_lock read-held, fs_lock not. */
int  fs_refresh_dir(struct fs *fs, struct fs_node *d, sc_entry_info *e_out, int *found);
/* The watcher's resync of one known directory.  No lock held. */
void fs_resync_dir(struct fs *fs, uint64_t ino, const char *key, int check_status);
void fs_note_children_gone(struct fs *fs, struct fs_node *d); /* fs_lock held */
void fs_note_tree_gone(struct fs *fs, struct fs_node *d);     /* fs_lock held */
void fs_ver_from_info(struct fs_ver *v, const sc_entry_info *e, int status);
int  fs_ver_same(const struct fs_ver *a, const struct fs_ver *b);
void fs_fill_attr(struct fs *fs, const struct fs_node *n, struct stat *st); /* fs_lock held */
double fs_attr_ttl(const struct fs_node *n);
void fs_fill_entry(struct fs *fs, struct fs_node *n, struct fuse_entry_param *ep); /* fs_lock held */
/* @p n goes to the kernel in an entry reply: count the lookup, fill @p ep.
 * fs_lock held. */
void fs_entry_ref(struct fs *fs, struct fs_node *n, struct fuse_entry_param *ep);
/* The blob node of @p d's current version, made on first use from @p blob,
 * a pointer into the mapping of @p epoch.  fs_lock held; NULL if out of
 * memory. */
struct fs_node *fs_dir_blob(struct fs *fs, struct fs_node *d, const unsigned char *blob,
			    uint64_t epoch);
/* Attributes set through the mount (chmod, chown, utimes): kept in the
 * daemon by key, not on nodes, so a node the kernel forgot and looks up
 * again keeps them (docs/FS.md, "Attributes").  fs_lock held. */
int  fs_attr_set(struct fs *fs, const struct fs_node *n, const struct stat *attr, int to_set);
/* Forget what was set on @p kind nodes of @p key (FS_BLOB: blob and
 * metadata.json of every version; FS_DIR: the entry directory; FS_TDIR: the
 * tree directory of that path). */
void fs_attr_drop(struct fs *fs, enum fs_kind kind, const char *key, size_t klen);
void fs_attr_free(struct fs *fs);                                  /* at exit */
/* Nonzero if attributes were set on directory @p n (FS_DIR, FS_TDIR): the
 * node then stays in the key map after the kernel forgets it, so that the
 * watcher sees the directory go and its attributes go with it. */
int  fs_attr_held(struct fs *fs, const struct fs_node *n);
/* The key of @p e as interpreters look it up, and as the mount shows it:
 * e->key, or key_base "/" key for an entry that a relocatable lower shard
 * stores relative to its base (written to @p buf, SC_MAX_KEY + 1 bytes).
 * NULL if that is longer than SC_MAX_KEY. */
const char *fs_entry_key(const sc_entry_info *e, char *buf, size_t *len);
/* The positive errno a core code (SC_E* or -errno) becomes at the FUSE boundary. */
int  fs_errno(int sc_err);

/* links.c */
void fs_link(fuse_req_t req, struct fs *fs, fuse_ino_t ino, fuse_ino_t newparent,
	     const char *newname);
struct fs_ids *fs_ids_new(void);
void fs_ids_free(struct fs_ids *t);
int  fs_ids_add(struct fs_ids *t, uint64_t sum, uint64_t size, int delta);
/* st_ino and st_nlink of committed blob @p n.  fs_lock held. */
void fs_ids_fill(const struct fs *fs, const struct fs_node *n, struct stat *st);
/* An entry's bytes changed from (old_sum, old_size) to (sum, size) (either
 * may be absent).  fs_lock held. */
void fs_ids_changed(struct fs *fs, int had_old, uint64_t old_sum, uint64_t old_size,
		    int has_new, uint64_t sum, uint64_t size);
uint64_t fs_blob_sum(const void *buf, size_t len);
/* After a rebuild of the table (the old one, or NULL).  fs_lock held. */
void fs_ids_note_changes(struct fs *fs, const struct fs_ids *old);

/* render.c */
char *fs_render_meta(const sc_entry_info *e, int status, const char *name, size_t *len);
char *fs_render_stats(struct fs *fs, size_t *len);

/* remote.c: the remote tier.  fs_remote_open() at start (after sc_open, before
 * the session): 0, or -1 after saying why on stderr.  fs_remote_fill(): the
 * flat view's lookup of @p key missed (or found it stale) in the shard; ask
 * the remote and put a verified answer.  No lock held.  Returns 1 if an
 * entry was put, else 0.  fs_remote_render(): the "remote" object of .stats
 * (a JSON null without a remote). */
int  fs_remote_open(struct fs *fs, const char *prog);
void fs_remote_close(struct fs *fs);
int  fs_remote_fill(fuse_req_t req, struct fs *fs, const char *key, size_t klen);
/* the tree view's lookup of .pyc @p key found nothing, locally or
 * underneath: ask the remote for the compiled form of its source (pyc.c) */
int  fs_remote_fill_pyc(fuse_req_t req, struct fs *fs, const char *key, size_t klen);
/* a source's bytes, with the rules of a remote lookup (no symbolic link, a
 * regular file of bounded size, a stable stamp; with allow_other, one the
 * caller of @p req may read; @p req NULL then refuses): 0 or -1 */
int  fs_read_source(fuse_req_t req, struct fs *fs, const char *path, struct stat *st,
		    char **out, size_t *len);
struct json_t;
struct json_t *fs_remote_render(struct fs *fs);

/* pyc.c: CPython's .pyc in the tree view.  fs_pyc_name(): the source
 * "/A/B/X.py" and the tag "pyc <cache tag>[ opt-N]" of the tree key
 * "/A/B/X.<cache tag>[.opt-N].pyc", 0; -1 for another name.  fs_pyc_fix():
 * a timestamp .pyc's header gets @p st's mtime and size; 0, or -1 for
 * bytes that are not a .pyc CPython takes.  fs_pyc_commit_source(): the
 * bytes of the source a tree commit of @p key stands for, when its header
 * says it was compiled from that file as it is (tag set, *@p src_len;
 * malloc'd), else NULL. */
int   fs_pyc_name(const char *key, size_t klen, char *src, size_t src_cap, char *tag,
		  size_t tag_cap);
int   fs_pyc_fix(unsigned char *b, size_t len, const struct stat *st);
char *fs_pyc_commit_source(struct fs *fs, const char *key, size_t klen, const void *pyc,
			   size_t len, char *tag, size_t tag_cap, size_t *src_len);

/* under.c: openat2() with no symbolic link anywhere in @p path; is @p path
 * the mount point or below it */
int  fs_open_nolinks(int dirfd, const char *path, int flags, uint64_t resolve);
int  fs_in_mount(const struct fs *fs, const char *path);
/* may the caller of @p req see below @p dir (and read @p file, if given)? */
int  fs_caller_ok(fuse_req_t req, struct fs *fs, const char *dir, const struct stat *file);

/* notify.c */
int  fs_watcher_start(struct fs *fs);
void fs_watcher_stop(struct fs *fs);
/* Queue a kernel notification for the watcher to send.  Any lock may be held. */
void fs_note(struct fs *fs, enum fs_note_kind kind, uint64_t parent,
	     uint64_t child, const char *name);
void fs_wake(struct fs *fs);
/* Send the queued attribute-only invalidations now (any thread, no lock
 * held: the kernel takes no inode lock for them). */
void fs_send_attr_notes(struct fs *fs);
/* Watch the directories of @p e's source and writer executable (inotify).
 * fs_lock not held (fs_map_lock may be).  Returns 1 if watched, 0 if the
 * fallback timeout must be used. */
int  fs_watch_entry(struct fs *fs, const sc_entry_info *e);

/* inode.c (fs_lock held unless stated) */
int  fs_table_init(struct fs *fs);                                 /* at start */
void fs_table_free(struct fs *fs);                                 /* at exit */
struct fs_node *fs_node_get(struct fs *fs, uint64_t ino);
struct fs_node *fs_node_new(struct fs *fs, enum fs_kind kind);
struct fs_node *fs_dir_find(struct fs *fs, const char *key, size_t len);
struct fs_node *fs_dir_get(struct fs *fs, const char *key, size_t len, const char *name);
/* Tree directories by path ("" = .tree): found, or made (FS_TDIR). */
struct fs_node *fs_tdir_find(struct fs *fs, const char *path, size_t len);
struct fs_node *fs_tdir_get(struct fs *fs, const char *path, size_t len);
void fs_tdir_unmap(struct fs *fs, struct fs_node *n);
void fs_dir_unmap(struct fs *fs, struct fs_node *d);
struct fs_node *fs_child_new(struct fs *fs, struct fs_node *dir, enum fs_kind kind);
void fs_detach_children(struct fs *fs, struct fs_node *dir);
void fs_node_maybe_free(struct fs *fs, struct fs_node *n);
void fs_forget_one(struct fs *fs, uint64_t ino, uint64_t nlookup);
void fs_pending_unlink(struct fs *fs, struct fs_node *dir, struct fs_node *p);
struct fs_node *fs_pending_find(struct fs_node *dir, const char *name);

/* The root listing must be rebuilt: the set of directories made by mkdir
 * (or first committed) changed.  fs_lock held. */
static inline void fs_listing_dirty(struct fs *fs)
{
	fs->fs_made_gen++;
}

static inline struct fs *fs_of(fuse_req_t req)
{
	return (struct fs *)fuse_req_userdata(req);
}

/* A negated errno, not one of the library's SC_E* codes (-30999..-30900). */
#define FS_IS_ERRNO(err) ((err) < 0 && (err) > SC_ENOTFOUND)

#define FS_COUNT(fs, field, n) __atomic_add_fetch(&(fs)->field, (n), __ATOMIC_RELAXED)

#endif /* SC_FS_I_H */
