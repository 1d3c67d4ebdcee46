/*
 * lsc_cache.c - one shard handle per process, and what goes in its tag.
 *
 * The handle is opened on the first require that needs it (a program that
 * loads the module and requires nothing pays nothing) and shared by every
 * lua_State of the process; libscriptcache handles are thread-safe.  It is
 * closed when the module is unloaded (lua_close() dlclose()s C modules) or
 * at exit.  No blob pointer outlives a lua_load(), which copies what it
 * reads, so closing is always safe.
 *
 * The fingerprint: libscriptcache adds the running executable's identity
 * (its build-id).  The tag adds what makes bytecode incompatible between
 * Lua builds: the version, the binary-chunk format and the word sizes
 * (LUAC_VERSION/LUAC_FORMAT are private to lundump.h, so they are derived
 * from LUA_VERSION_NUM), and, when the VM is not linked into the
 * executable but comes from a shared liblua, that library's identity.
 */
#include <dlfcn.h>
#include <link.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include <lua.h>

#include "lsc_int.h"

static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static sc_cache *cache;
static int cache_rc;
static char cache_tag[320];

/* Identity of the object that provides lua_load, if it is not the
 * executable (whose identity libscriptcache records already). */
static void vm_library_identity(char *buf, size_t len)
{
	struct link_map *map = NULL;
	Dl_info info;

	buf[0] = '\0';
	if (!dladdr1((void *)lua_load, &info, (void **)&map, RTLD_DL_LINKMAP) || !map)
		return;
	if (!map->l_name || !map->l_name[0])
		return; /* the main program */
	if (sc_exe_identity(map->l_name, buf, len) != 0)
		snprintf(buf, len, "unknown:%s", map->l_name);
}

static void build_tag(void)
{
	char lib[160];

	vm_library_identity(lib, sizeof(lib));
	snprintf(cache_tag, sizeof(cache_tag), "lua %s.%s.%s luac 0x%02x/0 I4 i%zu n%zu%s%s",
		 LUA_VERSION_MAJOR, LUA_VERSION_MINOR, LUA_VERSION_RELEASE,
		 ((LUA_VERSION_NUM / 100) << 4) | (LUA_VERSION_NUM % 100),
		 sizeof(lua_Integer), sizeof(lua_Number), lib[0] ? " vm " : "", lib);
}

static void cache_open(void)
{
	build_tag();
	/* No fdatasync per stored module: a cache entry lost to a power cut
	 * costs one recompile, and a torn one cannot be served (every record
	 * is checksummed); a synced first run was 3x slower than source. */
	cache_rc = sc_open(&cache, NULL, cache_tag, SC_NOSYNC);
	if (cache_rc == 0 && sc_disabled(cache))
		cache_rc = SC_EDISABLED;
}

sc_cache *lsc_cache(int *open_rc)
{
	pthread_once(&cache_once, cache_open);
	if (open_rc)
		*open_rc = cache_rc;
	return cache_rc == 0 ? cache : NULL;
}

const char *lsc_tag(void)
{
	pthread_once(&cache_once, cache_open);
	return cache_tag;
}

__attribute__((destructor)) static void lsc_cache_fini(void)
{
	sc_close(cache);
	cache = NULL;
}
