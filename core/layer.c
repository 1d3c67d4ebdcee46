/*
 * layer.c - the stack: a handle's own shard (layer 0, the one written) and
 * the read-only lower shards under it (docs/LAYERS.md).  The public open,
 * close and trim live here because they open, close and trim the whole
 * stack; handle.c does each shard.
 *
 * Each lower shard is a handle of its own, opened SC_RDONLY|SC_NOCREATE:
 * it maps its file, follows a file renamed over its path (a package
 * upgrade) within a second and is never written, exactly as a read-only
 * handle on a shard is.  Lower handles are made once and never freed
 * before sc_close(), so that lookups use them without a lock and the
 * pointers they hand out stay valid; a lower shard that cannot be opened
 * yet keeps a slot with the reason, and lookups try again at most once a
 * second.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "sc_int.h"

#define RETRY_NS 1000000000LL

/* A lower shard's own handle.  The owner rule is check_owner()'s for
 * SC_RDONLY: owned by the user or root, writable by nobody else. */
static int open_lower(const char *path, sc_cache **out)
{
	struct stat st;
	int rc;

	/* A configured path may name anything: a FIFO would block the open. */
	*out = NULL;
	if (stat(path, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	rc = sc_open_shard(out, path, NULL, SC_RDONLY | SC_NOCREATE | SC_IGNORE_ENV);

	if (rc == 0) {
		(*out)->lower = 1;
		(*out)->basedirs = sc_env_basedirs();
	}
	return rc;
}

int sc_layers(const sc_cache *c)
{
	return 1 + atomic_load_explicit(&c->n_layers, memory_order_acquire);
}

sc_cache *sc_layer_handle(sc_cache *c, int i)
{
	struct sc_layer *l;
	sc_cache *h;
	int64_t now;
	int rc;

	if (i == 0)
		return c;
	l = c->layers[i - 1];
	h = atomic_load_explicit(&l->h, memory_order_acquire);
	if (h)
		return h;
	now = sc_now_ns();
	if (now < atomic_load_explicit(&l->retry_ns, memory_order_relaxed) ||
	    pthread_mutex_trylock(&l->mu) != 0)
		return NULL;
	if (!(h = atomic_load(&l->h))) {
		rc = open_lower(l->path, &h);
		if (rc == 0) {
			atomic_store_explicit(&l->h, h, memory_order_release);
			atomic_store(&l->err, 0);
		} else {
			atomic_store(&l->err, rc);
			atomic_store(&l->retry_ns, now + RETRY_NS);
		}
	}
	pthread_mutex_unlock(&l->mu);
	return h;
}

/* Is @p o's file the one @p h has open?  (o's identity changes when it
 * follows a replaced file, under its rw lock.) */
static int same_file(sc_cache *o, const sc_cache *h)
{
	int same;

	pthread_rwlock_rdlock(&o->rw);
	same = o->dev == h->dev && o->ino == h->ino;
	pthread_rwlock_unlock(&o->rw);
	return same;
}

/* Is the file @p h (or, unopened, @p path) already in @p c's stack? */
static int in_stack(sc_cache *c, const char *path, const sc_cache *h)
{
	int n = sc_layers(c);

	if (strcmp(path, c->path) == 0 || (h && same_file(c, h)))
		return 1;
	for (int i = 1; i < n; i++) {
		const struct sc_layer *l = c->layers[i - 1];
		sc_cache *o = atomic_load(&l->h);
		if (strcmp(path, l->path) == 0 || (h && o && same_file(o, h)))
			return 1;
	}
	return 0;
}

int sc_add_lower(sc_cache *c, const char *path, unsigned flags)
{
	struct sc_layer *l = NULL;
	sc_cache *h = NULL;
	char *real;
	int n, rc;

	if (!c || !path || !*path || (flags & ~(unsigned)SC_LOWER_KEEP) || c->lower)
		return -EINVAL;
	if (c->disabled)
		return SC_EDISABLED;
	if (!(real = realpath(path, NULL)))
		return errno ? -errno : -ENOMEM;
	pthread_mutex_lock(&c->lmutex);
	n = sc_layers(c) - 1;
	if (n >= SC_MAX_LOWERS) {
		rc = -E2BIG;
		goto out;
	}
	if (in_stack(c, real, NULL)) {
		rc = -EEXIST;
		goto out;
	}
	rc = open_lower(real, &h);
	if (rc == 0 && in_stack(c, real, h)) {
		rc = -EEXIST; /* another path to a file already stacked */
		goto out;
	}
	if (rc != 0 && (!(flags & SC_LOWER_KEEP) || rc == -ENOENT))
		goto out;
	if (!(l = calloc(1, sizeof(*l)))) {
		rc = -ENOMEM;
		goto out;
	}
	l->path = real;
	real = NULL;
	l->mu = (pthread_mutex_t)PTHREAD_MUTEX_INITIALIZER;
	atomic_store(&l->err, rc);
	atomic_store(&l->retry_ns, sc_now_ns() + RETRY_NS);
	atomic_store(&l->h, h);
	h = NULL;
	c->layers[n] = l;
	atomic_store_explicit(&c->n_layers, n + 1, memory_order_release);
out:
	pthread_mutex_unlock(&c->lmutex);
	sc_close_shard(h);
	free(real);
	return rc;
}

/* Errors that say the own shard cannot be had at its place (a read-only
 * root file system, a HOME nobody may write, a full disk), as opposed to
 * a shard that is there and bad. */
static int own_unavailable(int rc)
{
	return rc == -EROFS || rc == -EACCES || rc == -EPERM || rc == -ENOENT ||
	       rc == -ENOTDIR || rc == -ENOSPC || rc == -EDQUOT;
}

/*
 * The default shard cannot be created or opened, and lower shards are
 * configured: a container with a read-only root still gets the shard
 * shipped in its image.  The first usable lower shard becomes layer 0,
 * read-only (puts fail with SC_EREADONLY, nothing is written anywhere),
 * the others are stacked under it.  Returns @p own_rc if none is usable.
 */
static int open_on_lowers(sc_cache **out, const char *tag, unsigned flags, int own_rc)
{
	char **lowers = NULL;
	struct stat st;

	*out = NULL;
	if (sc_env_lowers(&lowers) != 0 || !lowers)
		return own_rc;
	for (char **p = lowers; *p; p++) {
		if (*out) {
			(void)sc_add_lower(*out, *p, SC_LOWER_KEEP);
			continue;
		}
		/* as open_lower(): the owner rule of SC_RDONLY, no FIFOs */
		if (stat(*p, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		if (sc_open_shard(out, *p, tag, (flags & SC_IGNORE_ENV) | SC_RDONLY | SC_NOCREATE) != 0) {
			*out = NULL;
			continue;
		}
		(*out)->basedirs = sc_env_basedirs();
	}
	sc_strv_free(lowers);
	if (!*out)
		return own_rc;
	/* checked like a lower shard from now on (handle.c); no more
	 * lower shards may be added under it */
	(*out)->lower = 1;
	return 0;
}

int sc_open(sc_cache **out, const char *path, const char *tag, unsigned flags)
{
	char **lowers = NULL;
	sc_cache *c;
	int rc;

	flags &= ~SC__LAZY;
	/* Only the user's own default shard gets the configured stack: a
	 * program that names a shard means that file.  Out of memory here
	 * costs the lower shards, not the cache. */
	if (!path && !(flags & SC_NO_LOWERS) && sc_env_lowers(&lowers) != 0)
		lowers = NULL;
	/* Over lower shards, the own shard is made at the first put: a run
	 * that the shipped shards serve entirely writes nothing. */
	rc = sc_open_shard(out, path, tag, flags | (lowers ? SC__LAZY : 0));
	if (rc != 0 && !path && !(flags & SC_NO_LOWERS) && own_unavailable(rc)) {
		sc_strv_free(lowers);
		return open_on_lowers(out, tag, flags, rc);
	}
	if (rc != 0 || (*out)->disabled || !lowers) {
		sc_strv_free(lowers);
		if (rc == 0 && !(*out)->disabled)
			(*out)->basedirs = sc_env_basedirs();
		return rc;
	}
	c = *out;
	c->basedirs = sc_env_basedirs();
	for (char **p = lowers; *p; p++)
		(void)sc_add_lower(c, *p, SC_LOWER_KEEP); /* missing ones are skipped */
	sc_strv_free(lowers);
	return 0;
}

void sc_trim(sc_cache *c)
{
	int n;

	if (!c)
		return;
	n = sc_layers(c);
	for (int i = 1; i < n; i++)
		sc_trim_shard(atomic_load(&c->layers[i - 1]->h));
	sc_trim_shard(c);
}

void sc_close(sc_cache *c)
{
	int n;

	if (!c)
		return;
	n = sc_layers(c);
	for (int i = 1; i < n; i++) {
		struct sc_layer *l = c->layers[i - 1];
		sc_close_shard(atomic_load(&l->h));
		pthread_mutex_destroy(&l->mu);
		free(l->path);
		free(l);
	}
	sc_close_shard(c);
}

int sc_layer_count(sc_cache *c)
{
	return c ? sc_layers(c) : 0;
}

int sc_get_layer_info(sc_cache *c, int layer, sc_layer_info *out)
{
	struct sc_snap s;
	sc_cache *h;
	int rc;

	if (!c || !out || layer < 0 || layer >= sc_layers(c))
		return -EINVAL;
	if (c->disabled)
		return SC_EDISABLED;
	memset(out, 0, sizeof(*out));
	out->layer = layer;
	out->path = layer ? c->layers[layer - 1]->path : c->path;
	if (!(h = sc_layer_handle(c, layer))) {
		out->status = atomic_load(&c->layers[layer - 1]->err);
		return 0;
	}
	if ((rc = sc_snapshot(h, &s)) != 0) {
		out->status = rc;
		return 0;
	}
	out->relocatable = s.reloc;
	out->base = s.base ? s.base : s.reloc && s.basedirs ? s.basedirs[0] : NULL;
	out->entries = s.meta.entries;
	out->file_size = h->legacy ? (uint64_t)h->v1_len : h->unborn ? 0 : s.file_size;
	out->shard_id = s.shard_id;
	return 0;
}
