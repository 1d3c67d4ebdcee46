/*
 * placecheck.h - what the full-filesystem and read-only-directory tests
 * check after each refused write: the shard verifies and serves the
 * entries put before, and the directory holds nothing new.
 */
#ifndef SC_PLACECHECK_H
#define SC_PLACECHECK_H

#include <dirent.h>

#include "common.h"

/* Files in @p dir other than those named in the NULL-terminated
 * @p allowed (each reported). */
static int pc_strays(const char *dir, const char *const *allowed)
{
	DIR *d = opendir(dir);
	TU_CHECK(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d))) {
		int ok = !strcmp(de->d_name, ".") || !strcmp(de->d_name, "..");
		for (const char *const *a = allowed; !ok && *a; a++)
			ok = !strcmp(de->d_name, *a);
		if (!ok) {
			tap_diag("  stray file %s", de->d_name);
			n++;
		}
	}
	closedir(d);
	return n;
}

/* The shard at @p path verifies and serves version 1 of "@p prefix/kI"
 * for I < @p n, byte for byte; @p dir holds only @p allowed. */
static int pc_intact(const char *path, const char *prefix, int n, const char *dir,
		     const char *const *allowed)
{
	sc_cache *c = NULL;
	int rc = sc_open(&c, path, TT_TAG, SC_RDONLY), bad = 0;
	if (rc) {
		tap_diag("  sc_open: %s", sc_strerror(rc));
		return 0;
	}
	if ((rc = sc_verify(c, NULL, NULL, NULL)) != 0) {
		tap_diag("  sc_verify: %s", sc_strerror(rc));
		bad++;
	}
	for (int i = 0; i < n; i++) {
		char key[64];
		sc_blob b;
		snprintf(key, sizeof key, "%s/k%d", prefix, i);
		if ((rc = sc_get(c, key, &b)) != 0 || tu_blob_check(b.data, b.size, key) != 1) {
			if (bad++ < 3)
				tap_diag("  %s: %s", key, rc ? sc_strerror(rc) : "wrong bytes");
		}
	}
	sc_close(c);
	return bad == 0 && pc_strays(dir, allowed) == 0;
}

/* The mount at tt_mnt serves a genuine blob for @p key. */
static int pc_mount_blob_ok(const char *key)
{
	char name[256], path[PATH_MAX + 300];
	unsigned char buf[16384];
	tt_encode(name, sizeof name, key);
	snprintf(path, sizeof path, "%s/%s/blob", tt_mnt, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		tap_diag("  open %s: %s", path, strerror(errno));
		return 0;
	}
	ssize_t n = read(fd, buf, sizeof buf);
	int e = errno;
	close(fd);
	if (n <= 0) {
		tap_diag("  read %s: %s", path, n < 0 ? strerror(e) : "end of file");
		return 0;
	}
	if (tu_blob_check(buf, (size_t)n, key) != 1) {
		tap_diag("  %s: %zd bytes that are not a blob of %s", path, n, key);
		return 0;
	}
	return 1;
}

#endif
