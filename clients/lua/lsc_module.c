/*
 * lsc_module.c - the `scriptcache` Lua module.
 *
 *   lua5.4 -l scriptcache app.lua
 *   LUA_INIT='require "scriptcache"' lua5.4 app.lua
 *
 * Loading the module puts a searcher at package.searchers[2], ahead of
 * Lua's own file searcher.  It finds the file exactly as that searcher
 * does (lsc_searchpath(): searchpath() over package.path, read from the
 * package table at each call) and loads it through lsc_loadfilex(), so a
 * module gets the same (modname, filename) arguments, the same chunk name
 * and the same errors as under plain Lua.  When it finds no file it
 * returns nothing: findloader() (loadlib.c) then drops its "\n\t" prefix,
 * and the standard searchers that follow write the usual "no file '...'"
 * lines, so `require` of a missing module fails with the very same text.
 *
 * The searcher is not reachable from package.loaded, on purpose: tracebacks
 * name C functions by searching package.loaded, and a searcher visible
 * there would print differently from Lua's anonymous one ("[C]: in ?").
 *
 * The main script is not cached by `lua5.4 app.lua` (lua.c loads it before
 * any module can step in); scriptcache.loadfile/dofile are cached
 * drop-in replacements of the base functions for programs that want it.
 */
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "lsc_int.h"

#define LSC_SEARCHER_KEY "scriptcache.searcher"

static _Atomic int runtime_bad;

/* Upvalue 1: the package table, as for Lua's own searchers. */
static int searcher(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	const char *path, *filename;
	int fd;

	if (runtime_bad || !lsc_cache(NULL))
		return 0; /* off: Lua's own searcher does everything */
	lua_getfield(L, lua_upvalueindex(1), "path");
	if (!(path = lua_tostring(L, -1)))
		return 0; /* let Lua's searcher raise its error */
	if (!(filename = lsc_searchpath(L, name, path, &fd)))
		return 0; /* not found: Lua's searcher will say where it looked */
	if (lsc_loadfilex(L, filename, NULL, fd) != LUA_OK)
		return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s",
				  lua_tostring(L, 1), filename, lua_tostring(L, -1));
	lua_pushvalue(L, -2); /* the file name: 2nd argument to the module */
	return 2;
}

/* scriptcache.loadfile([filename [, mode [, env]]]): as loadfile(). */
static int l_loadfile(lua_State *L)
{
	const char *fname = luaL_optstring(L, 1, NULL);
	const char *mode = luaL_optstring(L, 2, NULL);
	int env = !lua_isnone(L, 3) ? 3 : 0;
	int status;

	if (fname && !runtime_bad)
		status = lsc_loadfilex(L, fname, mode, -1);
	else
		status = luaL_loadfilex(L, fname, mode);
	if (status != LUA_OK) {
		luaL_pushfail(L);
		lua_insert(L, -2);
		return 2;
	}
	if (env) {
		lua_pushvalue(L, env);
		if (!lua_setupvalue(L, -2, 1))
			lua_pop(L, 1);
	}
	return 1;
}

static int dofile_cont(lua_State *L, int status, lua_KContext ctx)
{
	(void)status;
	(void)ctx;
	return lua_gettop(L) - 1;
}

/* scriptcache.dofile([filename]): as dofile(). */
static int l_dofile(lua_State *L)
{
	const char *fname = luaL_optstring(L, 1, NULL);
	int status;

	lua_settop(L, 1);
	if (fname && !runtime_bad)
		status = lsc_loadfilex(L, fname, NULL, -1);
	else
		status = luaL_loadfilex(L, fname, NULL);
	if (status != LUA_OK)
		return lua_error(L);
	lua_callk(L, 0, LUA_MULTRET, 0, dofile_cont);
	return dofile_cont(L, 0, 0);
}

static void set_count(lua_State *L, const char *field, lua_Integer v)
{
	lua_pushinteger(L, v);
	lua_setfield(L, -2, field);
}

/* scriptcache.stats(): what the cache did for this process. */
static int l_stats(lua_State *L)
{
	int open_rc, err;
	sc_cache *c = lsc_cache(&open_rc);
	sc_stats st;

	lua_createtable(L, 0, 12);
	lua_pushboolean(L, c != NULL && !runtime_bad);
	lua_setfield(L, -2, "enabled");
	lua_pushstring(L, lsc_tag());
	lua_setfield(L, -2, "tag");
	if (c) {
		lua_pushstring(L, sc_path(c));
		lua_setfield(L, -2, "shard");
		if (sc_get_stats(c, &st) == 0) {
			set_count(L, "entries", (lua_Integer)st.entries);
			set_count(L, "file_size", (lua_Integer)st.file_size);
		}
	}
	err = runtime_bad ? 0 : open_rc ? open_rc : lsc_count.lc_last_error;
	if (runtime_bad)
		lua_pushliteral(L, "this Lua runtime writes another bytecode format than scriptcache.so was built for");
	else if (err)
		lua_pushstring(L, sc_strerror(err));
	else
		lua_pushnil(L);
	lua_setfield(L, -2, "error");
	set_count(L, "hits", (lua_Integer)lsc_count.lc_hits);
	set_count(L, "misses", (lua_Integer)lsc_count.lc_misses);
	set_count(L, "stored", (lua_Integer)lsc_count.lc_stored);
	set_count(L, "bypassed", (lua_Integer)lsc_count.lc_bypassed);
	return 1;
}

/* Put the searcher at package.searchers[2], once per lua_State. */
static void install_searcher(lua_State *L)
{
	lua_Integer n, i;
	int pkg, searchers;

	luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
	lua_getfield(L, -1, LUA_LOADLIBNAME);
	pkg = lua_gettop(L);
	if (!lua_istable(L, pkg) ||
	    lua_getfield(L, pkg, "searchers") != LUA_TTABLE ||
	    lua_getfield(L, LUA_REGISTRYINDEX, LSC_SEARCHER_KEY) != LUA_TNIL)
		goto out; /* no package library, or already installed */
	lua_pop(L, 1);
	searchers = pkg + 1;
	lua_pushvalue(L, pkg);
	lua_pushcclosure(L, searcher, 1);
	lua_pushvalue(L, -1);
	lua_setfield(L, LUA_REGISTRYINDEX, LSC_SEARCHER_KEY);
	n = (lua_Integer)lua_rawlen(L, searchers);
	for (i = n; i >= 2; i--) {
		lua_rawgeti(L, searchers, i);
		lua_rawseti(L, searchers, i + 1);
	}
	lua_rawseti(L, searchers, n >= 1 ? 2 : 1);
out:
	lua_settop(L, pkg - 2);
}

static const luaL_Reg lsc_funcs[] = {
	{ "loadfile", l_loadfile },
	{ "dofile", l_dofile },
	{ "stats", l_stats },
	{ NULL, NULL },
};

__attribute__((visibility("default"))) int luaopen_scriptcache(lua_State *L)
{
	if (!lsc_chunk_runtime_ok(L))
		runtime_bad = 1;
	else
		install_searcher(L);
	luaL_newlib(L, lsc_funcs);
	lua_pushliteral(L, SC_VERSION_STRING);
	lua_setfield(L, -2, "version");
	return 1;
}
