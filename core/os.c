/*
 * os.c - the system calls that change files, each with the care it needs
 * once (SQLite's os_unix.c role): EINTR retried, O_CLOEXEC always, short
 * writes finished, a rename made durable by an fsync of its directory.
 * Knows nothing of the shard format.
 *
 * Every write, truncate, sync, create, rename, link and unlink the core
 * makes goes through here, so that a build with SC_OS_TRACE (the crash
 * simulator, torture/crashsim.c; never the library) can record the exact
 * sequence and replay any crash state of it.  The library is built without
 * it and the hook costs nothing there.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sc_int.h"

#ifdef SC_OS_TRACE
void (*sc_os_trace)(const struct sc_os_event *ev);
/* Called after the operation succeeded, with what it did. */
#define TRACE(...)                                                            \
	do {                                                                  \
		if (sc_os_trace)                                              \
			sc_os_trace(&(struct sc_os_event){ __VA_ARGS__ });    \
	} while (0)
#else
#define TRACE(...) do { } while (0)
#endif

int64_t sc_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int sc_robust_open(const char *path, int flags, mode_t mode)
{
	int fd;
	do
		fd = open(path, flags | O_CLOEXEC, mode);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	TRACE(.op = SC_OS_OPEN, .fd = fd, .flags = flags, .path = path);
	return fd;
}

int sc_mkostemp(char *tmpl)
{
	int fd = mkostemp(tmpl, O_CLOEXEC);

	if (fd < 0)
		return -errno;
	TRACE(.op = SC_OS_OPEN, .fd = fd, .flags = O_RDWR | O_CREAT | O_EXCL, .path = tmpl);
	return fd;
}

/* mkdir -p with mode 0700 for the components that do not exist yet. */
int sc_make_parents(const char *path)
{
	char buf[PATH_MAX];
	size_t len = strlen(path);

	if (len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

int sc_writev_full(int fd, struct iovec *v, int cnt, uint64_t off)
{
	while (cnt > 0) {
		ssize_t n = pwritev(fd, v, cnt, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO;
		TRACE(.op = SC_OS_WRITE, .fd = fd, .off = off, .len = (size_t)n, .iov = v,
		      .iovcnt = cnt);
		off += (uint64_t)n;
		while (cnt > 0 && (size_t)n >= v->iov_len) {
			n -= (ssize_t)v->iov_len;
			v++;
			cnt--;
		}
		if (cnt > 0) {
			v->iov_base = (char *)v->iov_base + n;
			v->iov_len -= (size_t)n;
		}
	}
	return 0;
}

int sc_write_full(int fd, const void *buf, size_t len, uint64_t off)
{
	struct iovec v = { (void *)buf, len };
	return len ? sc_writev_full(fd, &v, 1, off) : 0;
}

int sc_ftruncate(int fd, uint64_t len)
{
	int rc;
	do
		rc = ftruncate(fd, (off_t)len);
	while (rc != 0 && errno == EINTR);
	if (rc != 0)
		return -errno;
	TRACE(.op = SC_OS_TRUNCATE, .fd = fd, .off = len);
	return 0;
}

int sc_fsync(int fd)
{
	if (fsync(fd) != 0)
		return -errno;
	TRACE(.op = SC_OS_SYNC, .fd = fd);
	return 0;
}

int sc_fdatasync(int fd)
{
	if (fdatasync(fd) != 0)
		return -errno;
	/* For the file's data (what the core relies on) the same as fsync. */
	TRACE(.op = SC_OS_SYNC, .fd = fd);
	return 0;
}

int sc_rename(const char *from, const char *to)
{
	if (rename(from, to) != 0)
		return -errno;
	TRACE(.op = SC_OS_RENAME, .path = from, .path2 = to);
	return 0;
}

int sc_link(const char *from, const char *to)
{
	if (link(from, to) != 0)
		return -errno;
	TRACE(.op = SC_OS_LINK, .path = from, .path2 = to);
	return 0;
}

int sc_unlink(const char *path)
{
	if (unlink(path) != 0)
		return -errno;
	TRACE(.op = SC_OS_UNLINK, .path = path);
	return 0;
}

int sc_fsync_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n = slash ? (size_t)(slash - path) : 0;
	int fd, rc = 0;

	if (n == 0) {
		strcpy(dir, slash ? "/" : ".");
	} else {
		if (n >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	fd = sc_robust_open(dir, O_RDONLY | O_DIRECTORY, 0);
	if (fd < 0)
		return fd;
	if (fsync(fd) != 0)
		rc = -errno;
	close(fd);
	if (rc == 0)
		TRACE(.op = SC_OS_DIRSYNC, .path = dir);
	return rc;
}

int sc_flock(int fd, int op)
{
	int rc;
	do
		rc = flock(fd, op);
	while (rc != 0 && errno == EINTR);
	return rc == 0 ? 0 : -errno;
}

