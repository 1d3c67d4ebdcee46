/*
 * env.c - what the environment says: where the default shard lives and
 * the SCRIPTCACHE switch.  Below the handle (sc_open() asks both), above
 * nothing but libc.
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "scriptcache.h"

int sc_env_disabled(void)
{
	const char *v = getenv("SCRIPTCACHE");

	return v && (strcmp(v, "0") == 0 || strcasecmp(v, "false") == 0 ||
		     strcasecmp(v, "no") == 0);
}

int sc_default_path(char *buf, size_t len)
{
	const char *p = getenv("SCRIPTCACHE_PATH");
	const char *base;
	int n;

	if (!buf)
		return -EINVAL;
	if (p && *p)
		n = snprintf(buf, len, "%s", p);
	else if ((base = getenv("XDG_CACHE_HOME")) && base[0] == '/')
		/* The XDG spec says a relative value is invalid: ignore it. */
		n = snprintf(buf, len, "%s/scriptcache/scripts.shard", base);
	else {
		base = getenv("HOME");
		if (!base || !*base) {
			struct passwd *pw = getpwuid(getuid());
			base = pw ? pw->pw_dir : NULL;
		}
		if (!base || !*base)
			return -ENOENT;
		n = snprintf(buf, len, "%s/.cache/scriptcache/scripts.shard", base);
	}
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}
