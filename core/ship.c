/*
 * ship.c - sc_build(): a compact shard for shipping with an image or a
 * package, to be stacked as a read-only lower shard (docs/LAYERS.md).
 *
 * The entries are the handle's own shard's, collected as a compaction
 * collects them (rewrite.c) and written by the one shard builder
 * (build.c), so a shipped shard is laid out exactly as a compacted one:
 * each distinct blob once, records packed, no dead space.  What is new
 * here is relocation: keys under the base directory are stored relative
 * to it, and the header records where that directory is relative to the
 * shard file, when the shard lies inside it.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sc_int.h"

struct ship {
	const char *tag;
	size_t tag_len;
};

/* Only entries that can still hit, with the tag asked for. */
static int keep_shipped(const sc_entry_info *e, void *arg)
{
	const struct ship *w = arg;

	if (w->tag && (e->tag_len != w->tag_len || memcmp(e->tag, w->tag, w->tag_len) != 0))
		return 0;
	return sc_entry_status(e) == 0;
}

/* The canonical path of @p path, which need not exist: realpath of its
 * directory plus its name (malloc'd), or NULL with errno set. */
static char *canonical_dest(const char *path)
{
	const char *slash = strrchr(path, '/'), *name = slash ? slash + 1 : path;
	char *dir, *real, *out;

	if (!*name || !strcmp(name, ".") || !strcmp(name, "..")) {
		errno = EINVAL;
		return NULL;
	}
	dir = slash == path ? strdup("/") : slash ? strndup(path, (size_t)(slash - path)) : strdup(".");
	if (!dir)
		return NULL;
	real = realpath(dir, NULL);
	free(dir);
	if (!real)
		return NULL;
	out = malloc(strlen(real) + 1 + strlen(name) + 1);
	if (out)
		strcat(strcat(strcpy(out, strcmp(real, "/") ? real : ""), "/"), name);
	free(real);
	return out;
}

/* Where @p base is seen from the directory holding @p dest, if that
 * directory is @p base or under it: "." or "..", "../..", ...  Else NULL. */
static char *base_from(const char *dest, const char *base)
{
	size_t bl = strlen(base), dl = (size_t)(strrchr(dest, '/') - dest), ups = 0;
	char *rel;

	if (!strcmp(base, "/"))
		bl = 0;
	if (dl < bl || memcmp(dest, base, bl) != 0 || (dl > bl && dest[bl] != '/'))
		return NULL;
	for (size_t i = bl; i < dl; i++)
		ups += dest[i] == '/';
	if (!(rel = malloc(ups ? ups * 3 : 2)))
		return NULL;
	strcpy(rel, ups ? "" : ".");
	for (size_t i = 0; i < ups; i++)
		strcat(rel, i ? "/.." : "..");
	return rel;
}

/* Relocate @p e if its key lies under @p base: the key relative to it,
 * and a hash of the source's bytes (wherever the tree goes, its mtimes
 * will not be these).  0 to drop the entry: no hash can be had. */
static int relocate(sc_entry_info *e, const char *base, size_t bl)
{
	char path[SC_MAX_KEY + 1];
	struct stat want;

	if (e->key_len <= bl + 1 || memcmp(e->key, base, bl) != 0 || e->key[bl] != '/')
		return 1; /* not under it: shipped as it is */
	if (e->has_source && !e->has_source_hash) {
		memcpy(path, e->key, e->key_len);
		path[e->key_len] = '\0';
		memset(&want, 0, sizeof(want));
		want.st_mtim.tv_sec = (time_t)e->source_mtime_sec;
		want.st_mtim.tv_nsec = (long)e->source_mtime_nsec;
		want.st_size = (off_t)e->source_size;
		if (sc_source_hash(path, &want, e->source_size, e->source_hash) != 0)
			return 0;
		e->has_source_hash = 1;
	}
	e->key += bl + 1;
	e->key_len -= bl + 1;
	return 1;
}

int sc_build(sc_cache *c, const char *out_path, const sc_build_opts *opts, uint64_t *n_written,
	     uint64_t *n_skipped)
{
	struct ship w = { 0 };
	struct sc_live l = { 0 };
	struct sc_snap s;
	struct stat st;
	char *dest = NULL, *base = NULL, *rel = NULL;
	uint64_t skipped = 0, kept = 0;
	int rc;

	if (n_written)
		*n_written = 0;
	if (n_skipped)
		*n_skipped = 0;
	if (!c || !out_path || !*out_path)
		return -EINVAL;
	if (c->disabled)
		return SC_EDISABLED;
	if (opts && opts->tag) {
		w.tag = opts->tag;
		w.tag_len = strlen(opts->tag);
	}
	if (!(dest = canonical_dest(out_path))) {
		rc = errno ? -errno : -ENOMEM;
		goto out;
	}
	if (!strcmp(dest, c->path)) {
		rc = -EINVAL; /* the shard would be replaced while it is read */
		goto out;
	}
	if (opts && opts->base_dir) {
		if (!(base = realpath(opts->base_dir, NULL))) {
			rc = -errno;
			goto out;
		}
		if (stat(base, &st) != 0 || !S_ISDIR(st.st_mode)) {
			rc = -EINVAL;
			goto out;
		}
		rel = base_from(dest, base);
		if (rel && strlen(rel) > SC_BASE_MAX) {
			free(rel); /* too deep to record: BASEDIRS must say */
			rel = NULL;
		}
	}
	/* Pinned: the entries' pointers stay valid while we copy them. */
	if ((rc = sc_pin(c)) != 0 || (rc = sc_snapshot(c, &s)) != 0)
		goto out;
	if ((rc = sc_collect(&s, keep_shipped, &w, 0, &l, &skipped)) != 0)
		goto out;
	if (base) {
		size_t bl = strcmp(base, "/") ? strlen(base) : 0;
		for (uint64_t i = 0; i < l.n; i++) {
			if (relocate(&l.e[i], base, bl))
				l.e[kept++] = l.e[i];
			else
				skipped++;
		}
		l.n = kept;
	}
	if ((rc = sc_build_file(dest, &l, base != NULL, rel,
				opts && opts->mode ? opts->mode : 0644)) != 0)
		goto out;
	if (n_written)
		*n_written = l.n;
	if (n_skipped)
		*n_skipped = skipped;
out:
	sc_live_free(&l);
	free(rel);
	free(base);
	free(dest);
	return rc;
}
