/*
 * luahost.c - a second Lua 5.4 build for the fingerprint test.
 *
 * Debian's lua5.4 has the VM linked in; this host takes it from the shared
 * liblua5.4.so instead, so it is another executable with another identity
 * (and scriptcache.so, loaded here, finds lua_load in a library and adds
 * that library's identity to its tag).  Bytecode cached by one must never
 * be served to the other.
 *
 * usage: luahost [-l module | -e code]... script [args...]
 * Runs like `lua5.4 script args`: globals arg and `...`, errors with a
 * traceback on stderr, exit status 1 on error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);

	if (!msg)
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	luaL_traceback(L, L, msg, 1);
	return 1;
}

static int run(lua_State *L, int nargs)
{
	int base = lua_gettop(L) - nargs, status;

	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	status = lua_pcall(L, nargs, 0, base);
	lua_remove(L, base);
	if (status != LUA_OK) {
		fprintf(stderr, "luahost: %s\n", lua_tostring(L, -1));
		lua_pop(L, 1);
	}
	return status;
}

int main(int argc, char **argv)
{
	lua_State *L = luaL_newstate();
	int i = 1, script, status = LUA_OK;

	if (!L)
		return 1;
	luaL_openlibs(L);
	for (; i + 1 < argc && (!strcmp(argv[i], "-l") || !strcmp(argv[i], "-e")); i += 2) {
		if (argv[i][1] == 'l') {
			lua_getglobal(L, "require");
			lua_pushstring(L, argv[i + 1]);
			status = run(L, 1);
		} else {
			status = luaL_loadbuffer(L, argv[i + 1], strlen(argv[i + 1]), "=(command line)");
			if (status == LUA_OK)
				status = run(L, 0);
			else
				fprintf(stderr, "luahost: %s\n", lua_tostring(L, -1));
		}
		if (status != LUA_OK)
			goto out;
	}
	if (i >= argc) {
		fprintf(stderr, "usage: luahost [-l module | -e code]... script [args...]\n");
		status = LUA_ERRRUN;
		goto out;
	}
	script = i;
	lua_createtable(L, argc - script, script + 1);
	for (i = 0; i < argc; i++) {
		lua_pushstring(L, argv[i]);
		lua_rawseti(L, -2, i - script);
	}
	lua_setglobal(L, "arg");
	if ((status = luaL_loadfile(L, argv[script])) != LUA_OK) {
		fprintf(stderr, "luahost: %s\n", lua_tostring(L, -1));
		goto out;
	}
	for (i = script + 1; i < argc; i++)
		lua_pushstring(L, argv[i]);
	status = run(L, argc - script - 1);
out:
	lua_close(L);
	return status == LUA_OK ? 0 : 1;
}
