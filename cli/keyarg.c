/*
 * keyarg.c - the key a KEY argument stands for.
 *
 * Everything that reads a shard (the interpreters, sc_load(), the FUSE
 * mount's readers) keys an entry by the canonical path of its source, as
 * realpath(3) gives it.  So the tool takes a KEY the way a user types a
 * path (docs/CLI.md, "Keys"):
 *
 *  - a path to an existing file is realpath(3) of it: symlinks, relative
 *    paths, "." and ".." come out as the interpreter saw them;
 *  - a path to nothing (a deleted source, a file on another machine) is
 *    resolved as far as it exists and the rest appended: a relative path
 *    starts at the current directory, every existing component is resolved
 *    as realpath(3) would (symlinks followed, a dangling one included),
 *    "." and ".." are applied lexically where nothing exists to follow.
 *    This is what GNU `realpath -m` prints.  So `rm ./gone.lua` after
 *    deleting gone.lua reaches the entry an interpreter made of it, even
 *    when the directory was reached through a symlink.
 *
 * `--key KEY` (main.c) bypasses this for keys that are not paths.
 */
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* Symbolic links followed before giving up with ELOOP (Linux's MAXSYMLINKS). */
#define KEY_MAX_LINKS 40

/* lstat() errors that mean "nothing here": the rest of the path is missing. */
static int is_missing(int err)
{
	return err == ENOENT || err == ENOTDIR || err == ENAMETOOLONG;
}

/*
 * `realpath -m`: @p path resolved component by component into @p res
 * (PATH_MAX bytes), where any component may be missing.  @p res holds no
 * trailing '/' while being built ("" is the root).  0 or -errno.
 */
static int resolve_missing(const char *path, char *res)
{
	char *todo, *p;
	size_t len = 0;
	int links = 0, rc = 0;

	if (path[0] != '/') {
		if (!getcwd(res, PATH_MAX))
			return -errno;
		len = strlen(res);
		if (len == 1) /* "/" */
			len = 0;
	}
	res[len] = '\0';
	todo = strdup(path);
	if (!todo)
		return -ENOMEM;
	p = todo;
	for (;;) {
		char target[PATH_MAX], *rest, *ntodo;
		size_t clen, keep;
		struct stat st;
		ssize_t n;

		while (*p == '/')
			p++;
		if (*p == '\0')
			break;
		clen = strcspn(p, "/");
		rest = p + clen;
		if (clen == 1 && p[0] == '.') {
			p = rest;
			continue;
		}
		if (clen == 2 && p[0] == '.' && p[1] == '.') {
			/* res never holds a symlink, so this is the real parent. */
			while (len > 0 && res[len - 1] != '/')
				len--;
			if (len > 0)
				len--;
			res[len] = '\0';
			p = rest;
			continue;
		}
		if (len + 1 + clen >= PATH_MAX) {
			rc = -ENAMETOOLONG;
			break;
		}
		keep = len;
		res[len++] = '/';
		memcpy(res + len, p, clen);
		len += clen;
		res[len] = '\0';
		p = rest;
		if (lstat(res, &st) < 0) {
			if (is_missing(errno))
				continue; /* keep it as typed; later ".." may return */
			rc = -errno;
			break;
		}
		if (!S_ISLNK(st.st_mode))
			continue;
		if (++links > KEY_MAX_LINKS) {
			rc = -ELOOP;
			break;
		}
		n = readlink(res, target, sizeof(target));
		if (n < 0) {
			rc = -errno;
			break;
		}
		if ((size_t)n >= sizeof(target)) {
			rc = -ENAMETOOLONG;
			break;
		}
		/* Replace the link by its target: relative to the link's directory. */
		len = target[0] == '/' ? 0 : keep;
		res[len] = '\0';
		ntodo = malloc((size_t)n + 1 + strlen(rest) + 1);
		if (!ntodo) {
			rc = -ENOMEM;
			break;
		}
		memcpy(ntodo, target, (size_t)n);
		ntodo[n] = '/';
		strcpy(ntodo + n + 1, rest);
		free(todo);
		todo = p = ntodo;
	}
	free(todo);
	if (rc == 0 && len == 0)
		strcpy(res, "/");
	return rc;
}

int cli_key_from_path(const char *arg, char **out)
{
	char res[PATH_MAX];
	int rc;

	*out = NULL;
	if (arg[0] == '\0')
		return -EINVAL;
	/* An existing file: exactly what the interpreters store. */
	*out = realpath(arg, NULL);
	if (*out)
		return 0;
	if (!is_missing(errno))
		return -errno;
	rc = resolve_missing(arg, res);
	if (rc < 0)
		return rc;
	*out = strdup(res);
	return *out ? 0 : -ENOMEM;
}
