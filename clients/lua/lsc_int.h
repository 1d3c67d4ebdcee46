/*
 * lsc_int.h - private interface between the files of the Lua client.
 *
 *   lsc_module.c  the Lua-facing side: luaopen_scriptcache, the searcher,
 *                 scriptcache.loadfile/dofile/stats
 *   lsc_search.c  finding the module file as Lua does, keeping it open
 *   lsc_loadfile.c lsc_loadfilex(): luaL_loadfilex() served from the shard
 *   lsc_chunk.c   the Lua 5.4 binary-chunk details: dumping a function to
 *                 memory and loading a cached dump under a new chunk name
 *   lsc_cache.c   the one shard handle per process and its fingerprint tag
 */
#ifndef LSC_INT_H
#define LSC_INT_H

#include <limits.h>
#include <stddef.h>

#include <lua.h>

#include "scriptcache.h"

#if LUA_VERSION_NUM != 504
#error "the scriptcache Lua client speaks the Lua 5.4 binary chunk format only"
#endif

/* ---- lsc_chunk.c ---- */

/* A malloc'd buffer that lua_dump() writes into. */
typedef struct lsc_buf {
	unsigned char *lb_data;
	size_t lb_len;
	size_t lb_cap;
} lsc_buf;

/* Dump the Lua function on top of the stack with its debug information
 * (lua_dump strip=0).  Leaves the stack unchanged.  Returns 0, or nonzero
 * when out of memory (then @b is freed). */
int lsc_dump(lua_State *L, lsc_buf *b);

void lsc_buf_free(lsc_buf *b);

/* Check that this Lua runtime writes the header this module was compiled
 * for (a module built against other headers must not feed or eat bytecode).
 * Returns 1 if it does. */
int lsc_chunk_runtime_ok(lua_State *L);

/*
 * Load a blob written by lsc_dump() as the chunk named @p chunkname
 * ("@" + the file name this run resolved), exactly as if the source had
 * been compiled under that name.  The blob is read in place.
 * Returns the lua_load() status with the function or an error message
 * pushed, or -1 with nothing pushed when the blob is not a main chunk in
 * this runtime's format (the caller then compiles from source).
 */
int lsc_load_blob(lua_State *L, const void *blob, size_t size, const char *chunkname);

/* ---- lsc_cache.c ---- */

/* The process's shard handle, opened on first use with this module's tag.
 * NULL when the cache is unusable: the open failed, or SCRIPTCACHE=0
 * (then *open_rc is SC_EDISABLED); *open_rc (may be NULL) says why. */
sc_cache *lsc_cache(int *open_rc);

/* The fingerprint tag, e.g. "lua 5.4.4 luac 0x54/0 I4 i8 n8". */
const char *lsc_tag(void);

/* ---- lsc_loadfile.c ---- */

/* Counters of this process's use of the cache by the Lua client. */
typedef struct lsc_counters {
	_Atomic unsigned long lc_hits;     /* served from the shard */
	_Atomic unsigned long lc_misses;   /* compiled from source */
	_Atomic unsigned long lc_stored;   /* of those, stored */
	_Atomic unsigned long lc_bypassed; /* cache unusable for this load: plain luaL_loadfilex */
	_Atomic int lc_last_error;         /* last error from the shard (for sc_strerror), 0 if none */
} lsc_counters;

extern lsc_counters lsc_count;

/*
 * luaL_loadfilex() with the shard in front of it: same results, same chunk
 * name, same error messages.  @p filename must not be NULL; @p fd is a
 * descriptor open on it (taken over and closed) or -1.  Serves and fills
 * the cache only for mode NULL (text or binary allowed, what require and
 * dofile use); falls back to luaL_loadfilex() on any cache problem.
 */
int lsc_loadfilex(lua_State *L, const char *filename, const char *mode, int fd);

/* ---- lsc_search.c ---- */

/*
 * package.searchpath(name, path) as Lua's file searcher runs it, keeping
 * the file found open: returns the file name (pushed on the stack) and sets
 * *fd, or returns NULL with nothing pushed and *fd = -1.
 */
const char *lsc_searchpath(lua_State *L, const char *name, const char *path, int *fd);

/* The canonical path of the file open on @p fd, which was opened by the
 * name @p filename, into @p key.  Returns 0 or -1. */
int lsc_canonical(int fd, const char *filename, char key[PATH_MAX]);

#endif
