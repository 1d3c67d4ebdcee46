/*
 * lsc_search.c - finding a module file exactly as Lua's searcher does, but
 * keeping the file open.
 *
 * loadlib.c's searchpath(): replace each '.' of the module name with '/',
 * substitute the name for every '?' of package.path, then try the
 * ';'-separated templates in order; the first file that fopen(.., "r")
 * opens wins.  This does the same with open(O_RDONLY), which succeeds and
 * fails exactly when fopen "r" does, and returns the descriptor instead of
 * closing it: the cache key is then read back from /proc/self/fd (one
 * readlink, where realpath(3) costs one per path component, and a system
 * call is not cheap on every machine) and the source identity taken with
 * fstat on the very file that was found.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <lauxlib.h>
#include <lua.h>

#include "lsc_int.h"

static int open_readable(const char *filename)
{
	int fd;

	do
		fd = open(filename, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd;
}

const char *lsc_searchpath(lua_State *L, const char *name, const char *path, int *fd_out)
{
	int top = lua_gettop(L);
	const char *list, *p, *end;
	char filename[PATH_MAX];

	*fd_out = -1;
	if (strchr(name, '.'))
		name = luaL_gsub(L, name, ".", LUA_DIRSEP);
	list = luaL_gsub(L, path, LUA_PATH_MARK, name);
	end = list + strlen(list);
	for (p = list;; p++) {
		const char *sep = strchr(p, *LUA_PATH_SEP);
		size_t len = (sep ? sep : end) - p;

		/* Longer names fail in fopen too (ENAMETOOLONG). */
		if (len < sizeof(filename)) {
			memcpy(filename, p, len);
			filename[len] = '\0';
			if ((*fd_out = open_readable(filename)) >= 0) {
				lua_settop(L, top);
				return lua_pushstring(L, filename);
			}
		}
		if (!sep)
			break;
		p = sep;
	}
	lua_settop(L, top);
	return NULL;
}

int lsc_canonical(int fd, const char *filename, char key[PATH_MAX])
{
	static const char deleted[] = " (deleted)";
	char proc[40];
	ssize_t n;

	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	n = readlink(proc, key, PATH_MAX - 1);
	if (n > 0 && key[0] == '/' && n < PATH_MAX - 1) {
		key[n] = '\0';
		/* Unlinked since it was opened: let realpath say what the name is now. */
		if ((size_t)n < sizeof(deleted) - 1 ||
		    strcmp(key + n - (sizeof(deleted) - 1), deleted) != 0)
			return 0;
	}
	return realpath(filename, key) ? 0 : -1;
}
