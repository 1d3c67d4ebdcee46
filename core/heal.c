/*
 * heal.c - a shard damaged beyond use is moved aside and started afresh.
 *
 * A shard whose header or every meta slot is damaged serves nothing, and
 * no command can repair it in place.  Left alone it would keep every
 * client running uncached until a person removes it, and nobody sees a
 * cache that silently stopped working.  So the first writer that finds its
 * own shard in that state, under the writer lock (two processes agree on
 * one heal), links it to "<shard>.corrupt-<UTC time>" for a post-mortem,
 * renames a new empty shard over the path and keeps the newest
 * SC_KEEP_SET_ASIDE such files.
 *
 * What is never touched: a file without our magic (a mistyped
 * SCRIPTCACHE_PATH must not destroy a user's file), a shard of another
 * format version, pointer width or byte order (another build's, sound for
 * it), a file owned by someone else, anything that is not a regular file.
 *
 * Readers are safe throughout: the damaged file is never written or
 * truncated, only renamed away; a handle that maps it keeps its mapping and
 * finds the new file at its next path check (sc_refresh_locked()).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "sc_int.h"

#define SC_KEEP_SET_ASIDE 3

int sc_heal_wanted(int rc)
{
	return rc == SC_ECORRUPT || rc == SC_ETRUNCATED;
}

static int pread_full(int fd, void *buf, size_t len, off_t off)
{
	ssize_t n;

	do
		n = pread(fd, buf, len, off);
	while (n < 0 && errno == EINTR);
	return n == (ssize_t)len ? 0 : -1;
}

/* What the file at @p path is: 0 sound, 1 ours and damaged beyond use, or
 * a negative code for a file we must leave alone. */
static int examine(const char *path)
{
	struct sc_disk_header h;
	struct sc_disk_meta m[SC_META_SLOTS], chosen;
	struct stat st;
	int fd, rc;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_uid != geteuid()) {
		rc = SC_EINSECURE;
		goto out;
	}
	memset(&h, 0, sizeof(h));
	if ((uint64_t)st.st_size < sizeof(h.magic) ||
	    pread_full(fd, &h, (uint64_t)st.st_size < sizeof(h) ? (size_t)st.st_size : sizeof(h),
		       0) != 0 ||
	    memcmp(h.magic, SC_MAGIC, sizeof(h.magic)) != 0) {
		rc = SC_EMAGIC;
		goto out;
	}
	rc = sc_header_check(&h, (uint64_t)st.st_size);
	if (rc == 0) {
		for (int i = 0; i < SC_META_SLOTS && rc == 0; i++)
			if (pread_full(fd, &m[i], sizeof(m[i]), sc_meta_off(i)) != 0)
				rc = SC_ETRUNCATED;
		if (rc == 0 && sc_meta_choose(m, (uint64_t)st.st_size, &chosen) < 0)
			rc = SC_ECORRUPT;
	}
	if (rc == 0 || sc_heal_wanted(rc))
		rc = rc == 0 ? 0 : 1;
out:
	close(fd);
	return rc;
}

/* Split @p path into its directory (into @p dir) and base name. */
static const char *split_dir(const char *path, char *dir, size_t len)
{
	const char *slash = strrchr(path, '/');

	if (!slash || (size_t)(slash - path) >= len)
		return NULL;
	memcpy(dir, path, (size_t)(slash - path));
	dir[slash - path] = '\0';
	if (!dir[0])
		strcpy(dir, "/");
	return slash + 1;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Names of the set-aside copies of @p path, oldest first (the names sort
 * by time).  @return how many, or -errno; *names is malloc'd. */
static int list_set_aside(const char *path, char *dir, size_t dir_len, char ***names)
{
	char prefix[NAME_MAX + sizeof(SC_SET_ASIDE_INFIX)];
	const char *base = split_dir(path, dir, dir_len);
	struct dirent *de;
	char **v = NULL;
	size_t n = 0, cap = 0, plen;
	DIR *d;

	*names = NULL;
	if (!base || snprintf(prefix, sizeof(prefix), "%s%s", base, SC_SET_ASIDE_INFIX) >=
			     (int)sizeof(prefix))
		return -ENAMETOOLONG;
	plen = strlen(prefix);
	if (!(d = opendir(dir)))
		return -errno;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, prefix, plen) != 0)
			continue;
		if (n == cap) {
			char **nv = realloc(v, (cap = cap ? 2 * cap : 8) * sizeof(*v));
			if (!nv)
				break;
			v = nv;
		}
		if (!(v[n] = strdup(de->d_name)))
			break;
		n++;
	}
	closedir(d);
	if (n)
		qsort(v, n, sizeof(*v), by_name);
	*names = v;
	return (int)n;
}

static void free_names(char **v, int n)
{
	for (int i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

uint64_t sc_count_set_aside(const char *path)
{
	char dir[PATH_MAX], **v;
	int n = list_set_aside(path, dir, sizeof(dir), &v);

	if (n <= 0)
		return 0;
	free_names(v, n);
	return (uint64_t)n;
}

/* Keep the newest SC_KEEP_SET_ASIDE copies: the evidence, bounded. */
static void prune_set_aside(const char *path)
{
	char dir[PATH_MAX], victim[PATH_MAX + NAME_MAX + 2], **v;
	int n = list_set_aside(path, dir, sizeof(dir), &v);

	if (n <= 0)
		return;
	for (int i = 0; i < n - SC_KEEP_SET_ASIDE; i++)
		if (snprintf(victim, sizeof(victim), "%s/%s", dir, v[i]) < (int)sizeof(victim))
			(void)sc_unlink(victim);
	free_names(v, n);
}

/* Link @p path to "<path>.corrupt-<UTC time to the nanosecond>": names
 * sort by time, so pruning keeps the newest even for heals in one second. */
static int link_aside(const char *path, char *aside, size_t len)
{
	for (int tries = 0; tries < 100; tries++) {
		struct timespec ts;
		struct tm tm;
		char stamp[32];

		clock_gettime(CLOCK_REALTIME, &ts);
		gmtime_r(&ts.tv_sec, &tm);
		strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%S", &tm);
		int n = snprintf(aside, len, "%s%s%s.%09ldZ", path, SC_SET_ASIDE_INFIX, stamp,
				 (long)ts.tv_nsec);
		if (n < 0 || (size_t)n >= len)
			return -ENAMETOOLONG;
		int rc = sc_link(path, aside);
		if (rc != -EEXIST)
			return rc;
	}
	return -EEXIST;
}

int sc_heal_locked(sc_cache *c)
{
	int rc = examine(c->path);

	if (rc <= 0)
		return rc; /* sound (someone healed it first), or not ours */
	return sc_set_aside_locked(c);
}

int sc_set_aside_locked(sc_cache *c)
{
	char aside[PATH_MAX];
	int rc;

	/* The link keeps the damaged bytes under a new name; the rename of a
	 * complete new shard then replaces the path in one step, so no
	 * process ever finds the path missing or half-made. */
	if ((rc = link_aside(c->path, aside, sizeof(aside))) != 0)
		return rc;
	if ((rc = sc_create_shard(c->path, 1)) != 0) {
		(void)sc_unlink(aside);
		return rc;
	}
	atomic_fetch_add(&c->n_heals, 1);
	prune_set_aside(c->path);
	return 0;
}
