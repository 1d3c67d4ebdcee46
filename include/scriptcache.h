/*
 * scriptcache.h - the public interface of libscriptcache.
 *
 * libscriptcache keeps interpreters' compiled scripts in one memory-mapped
 * file, the *shard*.  An interpreter asks for the compiled bytes of a script
 * by the script's canonical path; on a hit it gets a pointer straight into
 * the mapping and skips lexing, parsing and compiling.  On any miss it
 * compiles as usual and stores the result with sc_put().
 *
 * Conventions
 *  - Every function that can fail returns 0 on success or a negative code:
 *    either one of the library's own codes (SC_E*, in the reserved range
 *    -30999..-30900, never colliding with errno) or a negated errno value
 *    (-ENOENT, -ENOSPC, ...).  sc_strerror() describes both.
 *  - The library never prints, never exits and installs no signal handlers.
 *  - A handle (sc_cache) may be used from several threads at once.
 *  - The mapped file is treated as hostile input: every offset and length is
 *    bounds-checked and every entry checksummed before it is handed out.  A
 *    damaged entry is a miss (SC_ECORRUPT), never a crash.  Committed
 *    records never change, so each handle checksums a record once and
 *    remembers it: a repeat hit does not hash the blob again.  One thing a
 *    library using mmap cannot defend against is another process truncating
 *    the shard in place (the kernel then raises SIGBUS, as it would for LMDB
 *    or SQLite in mmap mode); scriptcache's own writers never shrink a live
 *    shard, they replace it with rename(2).
 */
#ifndef SCRIPTCACHE_H
#define SCRIPTCACHE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) && defined(SC_BUILDING_LIBRARY)
#define SC_API __attribute__((visibility("default")))
#else
#define SC_API
#endif

/** Library version, as a string and as a number (major*10000+minor*100+patch). */
#define SC_VERSION_STRING "0.2.0"
#define SC_VERSION_NUMBER 200

/** @defgroup errors Error codes (all negative; 0 is success)
 * @{ */
#define SC_ENOTFOUND    (-30900) /**< miss: no entry for this key */
#define SC_ESTALE       (-30901) /**< miss: the source file changed or vanished */
#define SC_EFINGERPRINT (-30902) /**< miss: written by another interpreter or build */
#define SC_ECORRUPT     (-30903) /**< entry or shard failed validation */
#define SC_EMAGIC       (-30904) /**< file is not a scriptcache shard */
#define SC_EVERSION     (-30905) /**< shard format version not supported */
#define SC_EPTRWIDTH    (-30906) /**< shard written with another pointer width */
#define SC_EBYTEORDER   (-30907) /**< shard written with another byte order */
#define SC_ETRUNCATED   (-30908) /**< shard shorter than its header says */
#define SC_EDISABLED    (-30909) /**< caching disabled by SCRIPTCACHE=0|false|no */
#define SC_EREADONLY    (-30910) /**< handle opened read-only */
#define SC_ETOOBIG      (-30911) /**< key or blob larger than the format allows */
#define SC_EINSECURE    (-30912) /**< shard owned by another user, or writable by others */
#define SC_EWRITERGONE  (-30913) /**< miss: the executable that wrote the entry was rebuilt or removed */
#define SC_ECHANGED     (-30914) /**< the entry is not the version the caller named */
#define SC_ELAST        (-30914)
/** @} */

/** Largest key (canonical path) the format stores, in bytes. */
#define SC_MAX_KEY   4096
/** Largest blob the format stores, in bytes (1 GiB). */
#define SC_MAX_BLOB  ((uint64_t)1 << 30)
/** Alignment of every blob returned by sc_get(). */
#define SC_BLOB_ALIGN 64

/** Infix of the name a damaged shard is set aside under (see sc_open()). */
#define SC_SET_ASIDE_INFIX ".corrupt-"

/** Opaque handle on one shard. */
typedef struct sc_cache sc_cache;

/** sc_open() flags. */
enum {
	SC_RDONLY     = 1 << 0, /**< never write; shard opened O_RDONLY */
	SC_NOSYNC     = 1 << 1, /**< skip fdatasync on commit (fast, not durable on power loss) */
	SC_NOCREATE   = 1 << 2, /**< fail with -ENOENT instead of creating the shard */
	SC_IGNORE_ENV = 1 << 3, /**< ignore SCRIPTCACHE=0 (tools that manage a shard explicitly) */
	SC_NO_LOWERS  = 1 << 4, /**< path NULL: do not add the configured lower shards */
};

/**
 * Open (creating if needed) a shard.
 *
 * @param[out] out   the new handle; set to NULL on failure.
 * @param[in]  path  shard file, or NULL for the default (see sc_default_path()).
 *                   Missing parent directories are created 0700, the shard 0600.
 * @param[in]  tag   the interpreter's tag for the fingerprint, e.g.
 *                   "lua 5.4 bytecode 0x54/0"; NULL for a tool that inspects
 *                   the shard (then sc_get() judges freshness from the
 *                   writer's point of view, see sc_entry_status()).
 * @param[in]  flags SC_RDONLY, SC_NOSYNC, SC_NOCREATE, SC_IGNORE_ENV,
 *                   SC_NO_LOWERS.
 *
 * Layers (docs/LAYERS.md): when @p path is NULL (the user's own default
 * shard) and SC_NO_LOWERS is not given, the configured read-only lower
 * shards are stacked under it, as sc_add_lower() with SC_LOWER_KEEP would:
 * the absolute paths listed in $SCRIPTCACHE_LOWER (colon-separated, in
 * that order; an item naming a directory stands for its "*.shard" files in
 * sorted order; empty, relative and missing items are skipped) or, when
 * SCRIPTCACHE_LOWER is unset, the "*.shard" files of $SCRIPTCACHE_LOWER_DIR
 * (unset: /usr/lib/scriptcache; empty: none) in sorted order.
 * SCRIPTCACHE_LOWER set to the empty string means no lower shard.  A
 * configured lower shard that cannot be used does not fail the open: it
 * misses, and sc_get_layer_info() and sc_verify() say why.  An explicit
 * @p path gets no lower shards unless sc_add_lower() adds them.
 * With lower shards configured, a missing default shard whose directory
 * may be written is created at the first write (put, remove), not at the
 * open: until then the handle reads as an empty shard and writes nothing.
 * When the default shard cannot be created or opened where it should be
 * (-EROFS, -EACCES, -EPERM, -ENOENT, -ENOTDIR, -ENOSPC, -EDQUOT: a
 * container with a read-only root, a HOME nobody may write) and lower
 * shards are configured, the handle serves them alone: the first usable
 * one becomes layer 0, read-only (puts and removes fail with
 * SC_EREADONLY, nothing is written anywhere, sc_add_lower() is refused).  Every
 * shard of the stack that is relocatable (sc_build() with a base) resolves
 * its relative keys against its recorded base, then against each absolute
 * directory of $SCRIPTCACHE_BASEDIRS (colon-separated), read at open.
 *
 * Only the first page of the file is read: opening costs the same for a
 * 1 MiB and a 1 GiB shard.  When caching is disabled by the environment the
 * call succeeds with a handle on which every lookup misses with SC_EDISABLED
 * and no file is touched.
 *
 * A shard of ours damaged beyond use (a broken header or every meta slot
 * bad, SC_ECORRUPT or SC_ETRUNCATED) heals: the first writer (a handle
 * without SC_RDONLY) that finds it so, at open or at a later write, takes
 * the writer lock, links the damaged file to "<shard>" SC_SET_ASIDE_INFIX
 * "<UTC time>" (e.g. scripts.shard.corrupt-20261129T083512.123456789Z;
 * the newest three are kept), renames a new empty shard over the path and
 * goes on with it.  A file without the shard magic, a shard of another format
 * version, pointer width or byte order, and a file owned by someone else
 * are never touched.  Read-only handles only report the damage.
 *
 * @return 0; SC_EMAGIC, SC_EVERSION, SC_EPTRWIDTH, SC_EBYTEORDER,
 *         SC_ETRUNCATED, SC_ECORRUPT for a file that is not a usable shard;
 *         SC_EINSECURE for a shard owned by someone else or writable by
 *         group/others (a poisoned bytecode cache runs code); -errno otherwise.
 *         sc_close() is safe on *out after a failure (it is NULL).
 */
SC_API int sc_open(sc_cache **out, const char *path, const char *tag, unsigned flags);

/** Close a handle (and its lower shards).  Every pointer obtained from it
 *  becomes invalid.  NULL is allowed. */
SC_API void sc_close(sc_cache *c);

/** The shard path this handle uses (canonical once the shard exists). Valid until sc_close(). */
SC_API const char *sc_path(const sc_cache *c);

/* ---- Layers: read-only lower shards under the handle's own ----
 *
 * A handle is a stack: its own shard (layer 0, the only one written) and
 * up to SC_MAX_LOWERS read-only lower shards (layers 1, 2, ...), typically
 * prebuilt by `scriptcache build` and shipped with an image or a package.
 * sc_get() and sc_lookup() consult layer 0, then each lower shard in
 * order, and return the first hit, zero-copy from that shard's own
 * mapping; a hit in a lower shard writes nothing.  sc_put() always writes
 * layer 0.  sc_remove() of a key that a lower shard holds writes a
 * *whiteout* in layer 0, which hides the key in every lower shard until a
 * later sc_put() of the key replaces it.  sc_foreach() lists the union:
 * an entry of a higher layer (or its whiteout) hides the same key below.
 * A lower shard replaced by a rename (a package upgrade) is picked up
 * within a second, as the own shard is.  The whole design, the
 * configuration and relocation: docs/LAYERS.md.
 */

/** Most lower shards one handle stacks. */
#define SC_MAX_LOWERS 32

/** sc_add_lower() flags. */
enum {
	/** Keep the layer in the stack even if it cannot be opened now
	 *  (refused, damaged, not a shard): it misses, the open is retried at
	 *  most once a second by lookups, and sc_get_layer_info() / sc_verify()
	 *  report why.  A missing file is never kept. */
	SC_LOWER_KEEP = 1 << 0,
};

/**
 * Stack the shard at @p path under the handle's own and its lower shards
 * so far (it becomes the last layer).  The shard is opened read-only
 * (SC_RDONLY semantics: never written, never created, never healed).  It
 * must be owned by root or by the effective user and writable by nobody
 * but its owner; otherwise it is refused with SC_EINSECURE (a bytecode
 * cache that someone else can write runs their code in the interpreter).
 * Safe to call while other threads use the handle.
 *
 * @param[in] path   the lower shard file (any path; it is canonicalized).
 * @param[in] flags  0 or SC_LOWER_KEEP.
 * @return 0; -ENOENT (no such file: never added); -EEXIST (that file is
 *         already a layer of this handle, or its own shard); -E2BIG
 *         (SC_MAX_LOWERS reached); SC_EINSECURE, SC_EMAGIC, SC_EVERSION,
 *         SC_ECORRUPT, SC_ETRUNCATED, ... (not added, or added but unused
 *         with SC_LOWER_KEEP); -EINVAL (not a regular file, bad flags);
 *         SC_EDISABLED (caching disabled: nothing is added).
 */
SC_API int sc_add_lower(sc_cache *c, const char *path, unsigned flags);

/** One layer of a handle's stack, as sc_get_layer_info() describes it. */
typedef struct sc_layer_info {
	int layer;               /**< 0: the own shard; 1..: lower shards, in lookup order */
	const char *path;        /**< the shard's canonical path (valid until sc_close()) */
	int status;              /**< 0: in use; else why not (SC_EINSECURE, SC_ECORRUPT, -errno, ...) */
	int relocatable;         /**< built with a base directory (sc_build()) */
	/** Relocatable: the directory its relative keys resolve against (the
	 *  recorded base, else the first of $SCRIPTCACHE_BASEDIRS), or NULL
	 *  when none is known (its relative keys then never hit).  Valid
	 *  until sc_close(). */
	const char *base;
	uint64_t entries;        /**< records in its index (whiteouts included) */
	uint64_t file_size;
	uint64_t shard_id;
} sc_layer_info;

/** Number of layers of the handle: 1 + its lower shards (0 for NULL). */
SC_API int sc_layer_count(sc_cache *c);

/**
 * Describe layer @p layer (0 .. sc_layer_count() - 1).  A lower shard
 * that cannot be used has status set and the counts 0.
 * @return 0, -EINVAL (no such layer), SC_EDISABLED.
 */
SC_API int sc_get_layer_info(sc_cache *c, int layer, sc_layer_info *out);

/** Nonzero if the handle was disabled by the environment. */
SC_API int sc_disabled(const sc_cache *c);

/**
 * Limit the shard size.  When a put makes the file larger than @p max_bytes,
 * the oldest entries (by time cached) are evicted and the shard compacted to
 * about three quarters of the limit.  0 (the default) means no limit.
 */
SC_API void sc_set_max_size(sc_cache *c, uint64_t max_bytes);

/** A zero-copy view of a blob. */
typedef struct sc_blob {
	const void *data; /**< SC_BLOB_ALIGN-aligned pointer into the mapping */
	size_t size;
} sc_blob;

/**
 * Look up the compiled blob for @p key.
 *
 * The entry is returned only if its checksums are right, the source file
 * named by the key is still the one compiled, and its fingerprint equals
 * this handle's (tag and the running executable's identity, compared for
 * equality in both directions).  The source is the one compiled if it has
 * the recorded mtime (seconds and nanoseconds) and size, or the recorded
 * size and the same bytes: when only the mtime moved (a git checkout, a
 * restored CI cache, a copied container layer), the source is read once
 * and its XXH3-128 compared with the one recorded at the put.
 * Cost on a repeat lookup: one hash probe and the stat(2) of the source.
 *
 * With lower shards (see sc_add_lower()), the layers are tried in order and
 * the first hit is returned, from the mapping of the shard that holds it; a
 * whiteout ends the search with SC_ENOTFOUND.  A miss reports the own
 * shard's reason, else the first lower shard's SC_ESTALE, SC_EFINGERPRINT or
 * SC_EWRITERGONE; a lower shard that cannot be read is skipped silently
 * (sc_verify() says why).
 *
 * @param[in]  key  canonical absolute path of the source (the library does
 *                  not canonicalize; see sc_load() for a helper that does).
 * @param[out] out  on success, the blob.  The bytes live in the shard's
 *                  mapping: do not write to them or free them.  They stay
 *                  valid and unchanged until sc_close(c), or until
 *                  sc_trim(c) is called, even if the entry is replaced,
 *                  removed or the shard compacted meanwhile.
 * @return 0 on a hit; on a miss SC_ENOTFOUND, SC_ESTALE, SC_EFINGERPRINT,
 *         SC_EWRITERGONE (tag-less handles), SC_ECORRUPT or SC_EDISABLED;
 *         -errno if the shard could not be re-read.
 */
SC_API int sc_get(sc_cache *c, const char *key, sc_blob *out);

/**
 * Store @p len bytes as the compiled blob for @p key, replacing any
 * previous entry.  The source identity is taken by stat(2) of the key now;
 * an interpreter should prefer sc_put_ex() with the stat taken *before* it
 * read the source, so that an edit during compilation is never cached under
 * the new mtime.  The cost is O(len), independent of the shard size.  When
 * this returns 0 the entry is committed (and durable unless SC_NOSYNC).
 *
 * @return 0; SC_EREADONLY; SC_ETOOBIG; SC_EDISABLED; -ENOSPC etc. on a
 *         failed write (the shard keeps its previous state).
 */
SC_API int sc_put(sc_cache *c, const char *key, const void *blob, size_t len);

/** Extra information for sc_put_ex(). Zero-initialise, then set what you need. */
typedef struct sc_put_opts {
	/** stat of the source taken before reading it; NULL: stat the key now. */
	const struct stat *source;
	/** Nonzero: the key names no source file (e.g. a .pyc path whose client
	 *  validates the blob itself); the entry is never stale by source.
	 *  With source_bytes as well, the XXH3-128 and the size of those bytes
	 *  (the source the key stands for) are recorded all the same
	 *  (has_source 0, has_source_hash 1): the entry can be shared through
	 *  the remote tier (docs/REMOTE.md), its freshness stays the client's. */
	int no_source;
	/** Fingerprint tag; NULL: the handle's tag. */
	const char *tag;
	/** Executable whose identity goes in the fingerprint; NULL: the running
	 *  executable.  Used by tools that store on an interpreter's behalf. */
	const char *exe_path;
	/** The source's bytes as compiled, if the caller has them: their
	 *  XXH3-128 is recorded (see sc_get(), freshness by content) without
	 *  reading the file again.  NULL: the library reads the file, and
	 *  records a hash only if it still has the stat's mtime and size. */
	const void *source_bytes;
	size_t source_len;
} sc_put_opts;

/** sc_put() with explicit source identity and fingerprint. */
SC_API int sc_put_ex(sc_cache *c, const char *key, const void *blob, size_t len,
		     const sc_put_opts *opts);

/**
 * Remove the entry for @p key from the union the handle shows: its own
 * shard's entry is removed and, if a lower shard holds the key, a
 * whiteout is written in the own shard so that the lower entry is hidden
 * too (lower shards are never written).  A later put of the key replaces
 * the whiteout.
 * @return 0, SC_ENOTFOUND (no layer shows the key), SC_EREADONLY, -errno.
 */
SC_API int sc_remove(sc_cache *c, const char *key);

/**
 * Remove the entry for @p key only if it is still the version the caller
 * saw: (@p shard_id, @p offset) as sc_lookup() or sc_foreach() reported it
 * (for an entry of a lower shard: it is still the one the union shows, and
 * it is hidden by a whiteout as sc_remove() does).
 * A tool that shows entries to a person (the mount's rm) uses this so that
 * it never evicts a version another process committed meanwhile.
 * @return 0, SC_ENOTFOUND, SC_ECHANGED, SC_EREADONLY, -errno.
 */
SC_API int sc_remove_if(sc_cache *c, const char *key, uint64_t shard_id, uint64_t offset);

/** Remove every entry of the own shard (it is replaced by an empty one),
 *  whiteouts included: entries of lower shards show again. */
SC_API int sc_clear(sc_cache *c);

/** Rewrite the shard with only its live entries, reclaiming dead space. */
SC_API int sc_compact(sc_cache *c);

/**
 * Drop entries that can never hit again: the source changed or vanished,
 * or the executable that wrote them was rebuilt or removed.
 * @param[out] n_evicted  number of entries dropped (may be NULL).
 */
SC_API int sc_evict_stale(sc_cache *c, uint64_t *n_evicted);

/**
 * Release mappings left behind by compactions and growth.  Only call this
 * when no pointer obtained from sc_get()/sc_foreach() on this handle is in
 * use by any thread.
 */
SC_API void sc_trim(sc_cache *c);

/** Everything the shard records about one entry. */
typedef struct sc_entry_info {
	const char *key;          /**< not NUL-terminated: use key_len */
	size_t key_len;
	int has_source;           /**< 0 for entries put with no_source */
	int64_t source_mtime_sec;
	uint32_t source_mtime_nsec;
	uint64_t source_size;
	const char *tag;          /**< fingerprint tag (not NUL-terminated) */
	size_t tag_len;
	const char *exe_id;       /**< "build-id:<hex>" or "stat:<size>:<sec>.<nsec>" */
	size_t exe_id_len;
	const char *exe_path;     /**< executable that wrote the entry */
	size_t exe_path_len;
	int64_t cached_sec;       /**< when the entry was stored (CLOCK_REALTIME) */
	uint32_t cached_nsec;
	const void *blob;         /**< zero-copy, same lifetime as sc_get()'s */
	uint64_t blob_size;
	/** XXH3-128 of the blob (low, high 64 bits): its checksum and its
	 *  identity.  Entries with the same bytes share one stored blob, and
	 *  report the same blob_id. */
	uint64_t blob_id[2];
	/** source_hash holds the XXH3-128 of the source's bytes, and
	 *  source_size their length: also for an entry without a source file
	 *  put with source_bytes (see sc_put_opts.no_source) */
	int has_source_hash;
	uint64_t source_hash[2];
	uint64_t shard_id;        /**< random id of the shard file holding it */
	uint64_t offset;          /**< entry record offset: (shard_id, offset) names one version */
	int layer;                /**< 0: the handle's own shard; 1..: a lower shard (sc_get_layer_info()) */
	const char *layer_path;   /**< that shard's path (NUL-terminated, valid until sc_close()) */
	/** Non-NULL for an entry of a relocatable shard stored relative to its
	 *  base: @c key is relative, and the key interpreters look up is
	 *  key_base "/" key.  NUL-terminated, valid until sc_close(). */
	const char *key_base;
	size_t key_base_len;
} sc_entry_info;

/**
 * Validated record for @p key (header and blob checksums) without any
 * freshness check: the first layer that holds one (a whiteout there:
 * SC_ENOTFOUND).  out->layer says which.
 * @return 0, SC_ENOTFOUND, SC_ECORRUPT, SC_EDISABLED, -errno.
 */
SC_API int sc_lookup(sc_cache *c, const char *key, sc_entry_info *out);

/**
 * Freshness of an entry from its writer's point of view: 0 if the source
 * still matches (or the entry has none) and the executable recorded in the
 * fingerprint still has the recorded identity; SC_ESTALE or SC_EWRITERGONE
 * otherwise.  Costs a stat of the source and, once per executable per
 * process (cached by path, size and mtime), reading its ELF notes.
 */
SC_API int sc_entry_status(const sc_entry_info *e);

/** Callback for sc_foreach(); return nonzero to stop (that value is returned). */
typedef int (*sc_foreach_fn)(const sc_entry_info *e, void *arg);

/**
 * Call @p fn for every live entry of the union the stack shows, layer by
 * layer (the own shard first), in no particular order inside a layer: an
 * entry hidden by a higher layer's entry or whiteout is not listed, nor
 * are whiteouts themselves.  e->layer says where each comes from.  Record headers
 * are validated (entries that fail are skipped and counted as corrupt);
 * blobs are NOT checksummed, so that listing a large shard does not read
 * every blob: check e->blob against e->blob_id (XXH3-128) before using
 * the bytes, or fetch them with sc_lookup()/sc_get().
 * The callback must not call functions that write through the same handle.
 */
SC_API int sc_foreach(sc_cache *c, sc_foreach_fn fn, void *arg);

/** Counters and sizes.  The shard figures are those of the handle's own
 *  shard (layer 0); sc_get_layer_info() gives each lower shard's. */
typedef struct sc_stats {
	/* from the own shard */
	uint64_t entries;        /**< records in the index, whiteouts included */
	uint64_t live_bytes;     /**< entry records and stored blobs reachable from the index */
	uint64_t dead_bytes;     /**< replaced/removed records and blobs, old tables */
	uint64_t blobs;          /**< distinct blobs stored */
	uint64_t logical_bytes;  /**< sum of the entries' blob sizes */
	uint64_t stored_bytes;   /**< sum of the stored blobs' sizes (each once) */
	uint64_t file_size;
	uint64_t generation;     /**< commit counter of the shard file */
	uint64_t index_slots;
	uint64_t shard_id;       /**< changes when a compaction replaces the file */
	/* this handle, since sc_open() */
	uint64_t hits;           /**< from any layer */
	uint64_t lower_hits;     /**< of which served by a lower shard */
	uint64_t miss_absent;
	uint64_t miss_stale;     /**< source changed or vanished */
	uint64_t miss_fingerprint;
	uint64_t miss_corrupt;
	uint64_t puts;
	uint64_t removes;
	uint64_t evictions;      /**< by size limit or sc_evict_stale() */
	uint64_t compactions;
	uint64_t heals;          /**< damaged shards this handle set aside (see sc_open()) */
	uint64_t fresh_by_content; /**< hits whose source had another mtime but the same bytes */
	/* beside the shard */
	uint64_t set_aside;      /**< "<shard>" SC_SET_ASIDE_INFIX "*" files there now */
	/* the stack */
	uint64_t lower_layers;   /**< lower shards stacked (sc_layer_count() - 1) */
	uint64_t lower_unusable; /**< of which cannot be used now (sc_get_layer_info() status) */
} sc_stats;

/** Fill @p out.  @return 0 or -errno / SC_E* if the shard cannot be read. */
SC_API int sc_get_stats(sc_cache *c, sc_stats *out);

/** Called by sc_verify() for each problem found: @p offset is where in the
 *  file the failed check looked (the record, the blob, the meta slot, the
 *  index slot), and @p problem names that check, e.g. "record 20480 (index
 *  slot 3 at 8240): header checksum mismatch" (valid during the call). */
typedef void (*sc_verify_fn)(void *arg, uint64_t offset, const char *problem);

/**
 * Walk the whole shard: header, the meta slots, the index, every record
 * and blob checksum; then each lower shard the same way.  @p fn (may be
 * NULL) hears each problem, with the file offset where it was found; a
 * lower shard's problems start with "lower shard N (PATH): " and their
 * offsets are in that file, and a lower shard that cannot be used is one
 * problem at offset 0 saying why (e.g. "lower shard 1 (/usr/lib/
 * scriptcache/app.shard): not used: shard owned by another user, or
 * writable by others").  Commits are kept out while it runs (they
 * wait for it): a read-write handle takes the writer lock, a read-only one
 * holds it shared when it can open `<shard>.lock` (otherwise, on someone
 * else's shard, a commit landing meanwhile can be reported as a problem).
 * @param[out] n_checked  records checked, in every layer (may be NULL).
 * @return 0 if every layer is sound, SC_ECORRUPT if anything was wrong
 *         (SC_EVERSION for an own shard of format 1), -errno.
 */
SC_API int sc_verify(sc_cache *c, sc_verify_fn fn, void *arg, uint64_t *n_checked);

/** Options of sc_build(). Zero-initialise, then set what you need. */
typedef struct sc_build_opts {
	/** Only entries with this fingerprint tag; NULL: every entry. */
	const char *tag;
	/** Make the shard relocatable: keys under this directory are recorded
	 *  relative to it, and resolve against the directory where the shard
	 *  is used (docs/LAYERS.md, "Relocation").  Such entries are shipped
	 *  only with a hash of their source's bytes, so that they are judged
	 *  fresh by content wherever the tree is copied.  NULL: keys as they
	 *  are. */
	const char *base_dir;
	/** Mode of the new file; 0: 0644 (a shard to ship is read by all). */
	unsigned mode;
} sc_build_opts;

/**
 * Write a compact shard for shipping to @p out_path: the live, sound
 * entries of the handle's own shard (not its lower shards, nor its
 * whiteouts) that can still hit (sc_entry_status() from the writer's point
 * of view: the source unchanged), each distinct blob once, no dead space.
 * With opts->base_dir, an entry under it without a recorded source hash
 * gets one if the source still has the recorded stamp, else it is
 * skipped; when @p out_path lies inside base_dir the shard records where
 * base_dir is relative to itself, so that copying the whole tree keeps
 * its hits.  The file is written beside @p out_path, synced and renamed
 * over it.  The handle's shard is only read.
 *
 * @param[out] n_written  entries written (may be NULL).
 * @param[out] n_skipped  entries left out: stale, other tag, no hash (may be NULL).
 * @return 0; -EINVAL (@p out_path is the handle's own shard, or base_dir
 *         is not a directory); SC_EDISABLED; -errno.
 */
SC_API int sc_build(sc_cache *c, const char *out_path, const sc_build_opts *opts,
		    uint64_t *n_written, uint64_t *n_skipped);

/**
 * The version of the library actually loaded, which may differ from the
 * SC_VERSION_* macros a program was compiled with.
 * @param[out] major, minor, patch  its parts (each may be NULL).
 * @return the version string, e.g. "0.2.0" (static).
 */
SC_API const char *sc_version(int *major, int *minor, int *patch);

/** Describe any return code of this library (SC_E* or -errno). Never NULL. */
SC_API const char *sc_strerror(int err);

/**
 * The default shard path: $SCRIPTCACHE_PATH, else
 * $XDG_CACHE_HOME/scriptcache/scripts.shard, else
 * $HOME/.cache/scriptcache/scripts.shard (HOME unset or empty: the home
 * directory of the user's passwd entry).  An empty SCRIPTCACHE_PATH counts as
 * unset, and a relative XDG_CACHE_HOME is ignored, as the XDG spec asks.
 * @return 0, or -ENAMETOOLONG / -ENOENT (no home directory at all).
 */
SC_API int sc_default_path(char *buf, size_t len);

/** Nonzero if SCRIPTCACHE is set to 0, false or no (any case). */
SC_API int sc_env_disabled(void);

/**
 * Identity of an executable file as the fingerprint records it:
 * "build-id:<hex>" from its ELF GNU build-id note, else
 * "stat:<size>:<mtime sec>.<nsec>".  NULL path: the running executable.
 * @return 0, -ENAMETOOLONG if @p buf is too small, -errno.
 */
SC_API int sc_exe_identity(const char *path, char *buf, size_t len);

/* ---- Entry names: a key spelled as one directory-entry name ----
 *
 * The FUSE mount shows every entry as a file in one flat directory, so a
 * key such as "/usr/share/lua/5.4/foo.lua" must become a single name that
 * contains no '/', does not start with '.', survives a shell and a terminal,
 * and maps back to exactly one key.  The mount, `scriptcache encode` /
 * `decode` and any other tool use these functions, so they can never
 * disagree.  They need no handle.
 *
 * The encoding
 *  - Bytes 0x20..0x7E are kept as they are, except:
 *      '/'            -> %2F  (the path separator)
 *      '%'            -> %25  (the escape character itself)
 *      '.' at start   -> %2E  (no hidden names, no "." or "..")
 *      '#' at start   -> %23  (a leading '#' marks a hashed name, below)
 *  - Every other byte (controls, DEL, bytes >= 0x80) -> %XX.
 *  Hex digits are upper case.  The encoding is canonical: each key has one
 *  name, and sc_name_decode() accepts only names the encoder can produce
 *  (no lower-case hex, no needless escapes such as %41), so two different
 *  names never denote the same key.
 *  - If the result would be longer than SC_NAME_MAX (NAME_MAX, 255) bytes,
 *    the name is instead "#" followed by the 32 lower-case hex digits of the
 *    XXH3-128 hash of the key, in canonical big-endian byte order
 *    (XXH128_canonicalFromHash).  Such a name cannot be decoded; to find
 *    its key, encode candidate keys and compare.
 */

/** Longest name a directory entry may have (Linux NAME_MAX). */
#define SC_NAME_MAX 255
/** Length of a hashed fallback name: '#' and 32 hex digits. */
#define SC_NAME_HASHED_LEN 33

/**
 * Encode @p key (@p key_len bytes; keys stored by the library never
 * contain NUL) into @p out, which must hold SC_NAME_MAX + 1 bytes.  The
 * result is NUL-terminated.
 * @return the length of the name (1..SC_NAME_MAX), or -EINVAL if
 *         @p key_len is 0 (an empty key has no name).
 */
SC_API int sc_name_encode(const char *key, size_t key_len, char out[SC_NAME_MAX + 1]);

/** Nonzero if @p name (NUL-terminated) has the form of a hashed fallback name. */
SC_API int sc_name_is_hashed(const char *name);

/** sc_name_decode() result for a hashed fallback name. */
#define SC_NAME_HASHED 1

/**
 * Decode the NUL-terminated @p name into @p out (@p out_size bytes; the
 * key is never longer than the name, so strlen(name) + 1 always suffices).
 * The key is NUL-terminated and its length stored in *@p key_len.
 *
 * @param[out] why  on -EINVAL, a static one-line reason (may be NULL).
 * @return 0; SC_NAME_HASHED if @p name is a well-formed hashed fallback
 *         name (nothing is written to @p out); -EINVAL if @p name is not a
 *         name the encoder produces (bad or needless escape, a '/' or a
 *         byte outside 0x20..0x7E, a leading '.', an empty name, a malformed
 *         hashed name); -ENAMETOOLONG if it is longer than SC_NAME_MAX;
 *         -ENOBUFS if @p out is too small.
 */
SC_API int sc_name_decode(const char *name, char *out, size_t out_size, size_t *key_len,
			  const char **why);

/**
 * sc_lookup() by entry name: the entry whose key sc_name_encode() turns
 * into @p name.  A plain name is decoded; a hashed one ("#" + 32 hex
 * digits) is found by encoding the keys of the shard's entries, a walk of
 * the index (O(entries)).
 * @param[out] out  as sc_lookup(): the blob is checksummed; pointers stay
 *                  valid as sc_get()'s do.
 * @return 0; SC_ENOTFOUND (no entry has that name); -EINVAL (not a name
 *         the encoder produces); -ENAMETOOLONG; SC_ECORRUPT; SC_EDISABLED;
 *         -errno.
 */
SC_API int sc_lookup_name(sc_cache *c, const char *name, sc_entry_info *out);

/* ---- Convenience layer: one process-wide cache on the default shard ---- */

/**
 * Load the blob cached for the script at @p path (any path: it is
 * canonicalized with realpath(3)), for interpreter tag @p tag.  The default
 * shard is opened on first use and kept for the life of the process.
 * @return as sc_get(); the blob lives until process exit.
 */
SC_API int sc_load(const char *tag, const char *path, sc_blob *out);

/** Store a blob for the script at @p path (canonicalized) under @p tag.
 *  @p source: stat of the source taken before reading it, or NULL. */
SC_API int sc_save(const char *tag, const char *path, const struct stat *source,
		   const void *blob, size_t len);

#ifdef __cplusplus
}
#endif
#endif /* SCRIPTCACHE_H */
