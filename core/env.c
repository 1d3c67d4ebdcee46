/*
 * env.c - what the environment says: where the default shard lives, the
 * SCRIPTCACHE switch, the configured lower shards and base directories
 * (docs/LAYERS.md).  Below the handle (sc_open() asks all of them), above
 * nothing but libc.
 */
#include <dirent.h>
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "sc_int.h"

/* The system directory of lower shards, scanned when SCRIPTCACHE_LOWER is
 * unset (SCRIPTCACHE_LOWER_DIR overrides it). */
#define SYSTEM_LOWER_DIR "/usr/lib/scriptcache"

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

void sc_strv_free(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

struct strv {
	char **v;
	size_t n, cap;
};

static int strv_add(struct strv *l, char *s)
{
	if (!s)
		return -ENOMEM;
	if (l->n + 1 >= l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			free(s);
			return -ENOMEM;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = s;
	l->v[l->n] = NULL;
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The "*.shard" files of @p dir, sorted by byte order (not the locale's,
 * so that every process agrees on the order).  A missing directory has
 * none. */
static int add_dir(struct strv *l, const char *dir)
{
	struct strv names = { 0 };
	struct dirent *d;
	DIR *dp = opendir(dir);
	size_t dl = strlen(dir);
	int rc = 0;

	if (!dp)
		return 0;
	while ((d = readdir(dp)) != NULL) {
		size_t n = strlen(d->d_name);
		if (d->d_name[0] == '.' || n <= 6 || strcmp(d->d_name + n - 6, ".shard") != 0)
			continue;
		if ((rc = strv_add(&names, strdup(d->d_name))) != 0)
			break;
	}
	closedir(dp);
	if (names.n > 1)
		qsort(names.v, names.n, sizeof(*names.v), by_name);
	for (size_t i = 0; rc == 0 && i < names.n; i++) {
		char *p = malloc(dl + 1 + strlen(names.v[i]) + 1);
		if (p)
			sprintf(p, "%s%s%s", dir, dl && dir[dl - 1] == '/' ? "" : "/", names.v[i]);
		rc = strv_add(l, p);
	}
	sc_strv_free(names.v);
	return rc;
}

static int is_dir(const char *p)
{
	DIR *dp = opendir(p);

	if (!dp)
		return 0;
	closedir(dp);
	return 1;
}

int sc_env_lowers(char ***paths)
{
	const char *v = getenv("SCRIPTCACHE_LOWER"), *dir;
	struct strv l = { 0 };
	int rc = 0;

	*paths = NULL;
	if (v) {
		/* Exactly the listed shards, in order; the system directory
		 * only if listed.  Empty items (a stray ':') and relative
		 * ones (they would depend on the working directory) are
		 * skipped. */
		for (const char *p = v; rc == 0 && *p;) {
			const char *e = strchr(p, ':');
			size_t n = e ? (size_t)(e - p) : strlen(p);
			if (n > 0 && p[0] == '/') {
				char *item = strndup(p, n);
				if (item && is_dir(item)) {
					rc = add_dir(&l, item);
					free(item);
				} else {
					rc = strv_add(&l, item);
				}
			}
			p += n;
			if (*p == ':')
				p++;
		}
	} else {
		dir = getenv("SCRIPTCACHE_LOWER_DIR");
		if (!dir)
			dir = SYSTEM_LOWER_DIR;
		if (dir[0] == '/')
			rc = add_dir(&l, dir);
	}
	if (rc != 0) {
		sc_strv_free(l.v);
		return rc;
	}
	*paths = l.v;
	return 0;
}

char **sc_env_basedirs(void)
{
	const char *v = getenv("SCRIPTCACHE_BASEDIRS");
	struct strv l = { 0 };

	if (!v)
		return NULL;
	for (const char *p = v; *p;) {
		const char *e = strchr(p, ':');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		if (n > 0 && p[0] == '/') {
			char *item = strndup(p, n), *real = item ? realpath(item, NULL) : NULL;
			free(item);
			if (real && is_dir(real) && strcmp(real, "/") != 0) {
				if (strv_add(&l, real) != 0)
					break;
			} else {
				free(real);
			}
		}
		p += n;
		if (*p == ':')
			p++;
	}
	return l.v;
}
