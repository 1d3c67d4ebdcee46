/*
 * lsc_loadfile.c - luaL_loadfilex() with the shard in front of it.
 *
 * Hit:  the canonical path of the open file -> sc_get (one hash probe + a
 *       stat of the source) -> lua_load of the mapped blob, mode "b", chunk
 *       name "@" + filename.
 * Miss: fstat the source, *then* compile it with luaL_loadfilex() exactly as
 *       Lua would, dump the function (debug info kept) and store the dump
 *       with the stat taken before the read, so an edit racing the compile
 *       is never cached under the edited file's identity.  A failed compile
 *       is never stored: its error goes back to the caller unchanged.
 * Any problem with the cache itself (no shard, unreadable, full, a blob
 * that does not load) costs at most a compile: the result is always what
 * luaL_loadfilex() would have returned.
 */
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <fcntl.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "lsc_int.h"

lsc_counters lsc_count;

/* Modes for which a cached blob is a faithful answer.  "t" alone must
 * reject a binary source and "b" alone a text one, which only reading the
 * source can tell; those loads bypass the cache. */
static int mode_cacheable(const char *mode)
{
	return mode == NULL || (strchr(mode, 'b') && strchr(mode, 't'));
}

/* Is the function on top of the stack a chunk named "@" + filename?  A
 * precompiled file carries the name luac gave it (or none, if stripped);
 * such a chunk is not cached, since a hit is loaded under the name this
 * run resolved. */
static int named_after(lua_State *L, const char *filename)
{
	lua_Debug ar;

	lua_pushvalue(L, -1);
	if (!lua_getinfo(L, ">S", &ar) || ar.source[0] != '@')
		return 0;
	return strcmp(ar.source + 1, filename) == 0;
}

int lsc_loadfilex(lua_State *L, const char *filename, const char *mode, int fd)
{
	char key[PATH_MAX];
	struct stat st;
	sc_put_opts opts;
	const char *chunkname;
	sc_cache *c;
	sc_blob blob;
	lsc_buf dump;
	int status, rc;

	if (!mode_cacheable(mode) || !(c = lsc_cache(NULL)))
		goto bypass;
	if (fd < 0 && (fd = open(filename, O_RDONLY | O_CLOEXEC)) < 0)
		goto bypass; /* luaL_loadfilex says why, in its words */
	if (lsc_canonical(fd, filename, key) != 0)
		goto bypass;

	rc = sc_get(c, key, &blob);
	if (rc == 0) {
		chunkname = lua_pushfstring(L, "@%s", filename);
		status = lsc_load_blob(L, blob.data, blob.size, chunkname);
		if (status == LUA_OK) {
			lua_remove(L, -2); /* the chunk name */
			close(fd);
			lsc_count.lc_hits++;
			return LUA_OK;
		}
		/* Not loadable here after all: compile and overwrite it. */
		lua_settop(L, lua_gettop(L) - (status == -1 ? 1 : 2));
		lsc_count.lc_last_error = SC_ECORRUPT;
	} else if (rc != SC_ENOTFOUND && rc != SC_ESTALE && rc != SC_EFINGERPRINT) {
		lsc_count.lc_last_error = rc;
	}

	/* The identity of the source, taken before the compile reads it. */
	rc = fstat(fd, &st);
	close(fd);
	fd = -1;
	if (rc != 0)
		goto bypass;
	lsc_count.lc_misses++;
	status = luaL_loadfilex(L, filename, mode);
	if (status != LUA_OK || !named_after(L, filename))
		return status;
	if (lsc_dump(L, &dump) == 0) {
		memset(&opts, 0, sizeof(opts));
		opts.source = &st;
		rc = sc_put_ex(c, key, dump.lb_data, dump.lb_len, &opts);
		if (rc == 0)
			lsc_count.lc_stored++;
		else
			lsc_count.lc_last_error = rc;
		lsc_buf_free(&dump);
	}
	return LUA_OK;

bypass:
	if (fd >= 0)
		close(fd);
	lsc_count.lc_bypassed++;
	return luaL_loadfilex(L, filename, mode);
}
