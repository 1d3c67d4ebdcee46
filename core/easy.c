/*
 * easy.c - the convenience layer: one process-wide handle on the default
 * shard, opened on first use, so that adding the cache to an interpreter is
 * a call to sc_load() before compiling and a call to sc_save() after.  It
 * sits on top of everything (open, get, put) and nothing calls it.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "sc_int.h"

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static sc_cache *default_cache;
static int default_rc;

static void default_open(void)
{
	default_rc = sc_open(&default_cache, NULL, NULL, 0);
}

static int default_get(sc_cache **c)
{
	if (sc_env_disabled())
		return SC_EDISABLED;
	pthread_once(&default_once, default_open);
	*c = default_cache;
	return default_rc;
}

int sc_load(const char *tag, const char *path, sc_blob *out)
{
	char key[PATH_MAX];
	sc_cache *c;
	int rc;

	if (!path || !out)
		return -EINVAL;
	if ((rc = default_get(&c)) != 0)
		return rc;
	if (!realpath(path, key))
		return -errno;
	return sc_get_tagged(c, key, tag, tag ? strlen(tag) : 0, out);
}

int sc_save(const char *tag, const char *path, const struct stat *source,
	    const void *blob, size_t len)
{
	char key[PATH_MAX];
	sc_put_opts o = { 0 };
	sc_cache *c;
	int rc;

	if (!path)
		return -EINVAL;
	if ((rc = default_get(&c)) != 0)
		return rc;
	if (!realpath(path, key))
		return -errno;
	o.source = source;
	o.tag = tag;
	return sc_put_ex(c, key, blob, len, &o);
}
