/*
 * testutil.h - helpers shared by the core test programs: a private temp
 * directory per program, small file utilities, self-describing blobs and
 * running a piece of a test in a forked child so that a crash is reported
 * as a failure instead of killing the whole TAP stream.
 */
#ifndef SC_TESTUTIL_H
#define SC_TESTUTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <xxhash.h>

#include "scriptcache.h"
#include "tap.h"

/* Abort the program when a precondition of the test itself fails (not a
 * library failure: those are reported with tap_ok). */
#define TU_CHECK(cond)                                                        \
	do {                                                                  \
		if (!(cond)) {                                                \
			printf("Bail out! %s:%d: %s (errno %d: %s)\n", __FILE__, \
			       __LINE__, #cond, errno, strerror(errno));      \
			fflush(stdout);                                       \
			exit(1);                                              \
		}                                                             \
	} while (0)

static char tu_dir[PATH_MAX];

static int tu_rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	if (type == FTW_DP)
		return rmdir(p) ? -1 : 0;
	return unlink(p) ? -1 : 0;
}

static inline void tu_rmrf(const char *path)
{
	nftw(path, tu_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static pid_t tu_owner;

static void tu_cleanup(void)
{
	/* only the process that made the directory removes it; set
	 * SC_TEST_KEEP=1 to keep it for a post-mortem */
	if (tu_owner == getpid() && tu_dir[0] && !getenv("SC_TEST_KEEP"))
		tu_rmrf(tu_dir);
}

/* Create this program's temp directory (canonical path) and point every
 * default-path variable into it. */
static inline const char *tu_setup(const char *name)
{
	char tmpl[PATH_MAX];
	snprintf(tmpl, sizeof tmpl, "/tmp/sc-%s.XXXXXX", name);
	TU_CHECK(mkdtemp(tmpl) != NULL);
	TU_CHECK(realpath(tmpl, tu_dir) != NULL);
	tu_owner = getpid();
	atexit(tu_cleanup);
	char buf[PATH_MAX + 32];
	snprintf(buf, sizeof buf, "%s/home", tu_dir);
	setenv("HOME", buf, 1);
	unsetenv("XDG_CACHE_HOME");
	unsetenv("SCRIPTCACHE");
	snprintf(buf, sizeof buf, "%s/default.shard", tu_dir);
	setenv("SCRIPTCACHE_PATH", buf, 1);
	umask(022);
	return tu_dir;
}

/* tu_dir + "/" + name, in a static rotating buffer: the result stays valid
 * for the next 63 calls; copy it to keep it longer. */
static inline const char *tu_path(const char *fmt, ...)
{
	static char bufs[64][PATH_MAX];
	static int n;
	char rel[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(rel, sizeof rel, fmt, ap);
	va_end(ap);
	char *b = bufs[n++ & 63];
	size_t dl = strlen(tu_dir), rl = strlen(rel);
	TU_CHECK(dl + 1 + rl < PATH_MAX);
	memcpy(b, tu_dir, dl);
	b[dl] = '/';
	memcpy(b + dl + 1, rel, rl + 1);
	return b;
}

static inline void tu_write_file(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	TU_CHECK(fd >= 0);
	TU_CHECK(write(fd, data, len) == (ssize_t)len);
	TU_CHECK(close(fd) == 0);
}

static inline void tu_write_str(const char *path, const char *s)
{
	tu_write_file(path, s, strlen(s));
}

/* Read a whole file into malloc'd memory. */
static inline unsigned char *tu_read_file(const char *path, size_t *len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	TU_CHECK(fd >= 0);
	struct stat st;
	TU_CHECK(fstat(fd, &st) == 0);
	unsigned char *b = malloc(st.st_size ? (size_t)st.st_size : 1);
	TU_CHECK(b != NULL);
	size_t got = 0;
	while (got < (size_t)st.st_size) {
		ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
		TU_CHECK(r > 0);
		got += (size_t)r;
	}
	close(fd);
	*len = got;
	return b;
}

static inline void tu_copy_file(const char *from, const char *to, mode_t mode)
{
	size_t len;
	unsigned char *b = tu_read_file(from, &len);
	unlink(to);
	int fd = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	TU_CHECK(fd >= 0);
	TU_CHECK(write(fd, b, len) == (ssize_t)len);
	TU_CHECK(close(fd) == 0);
	free(b);
}

static inline int tu_exists(const char *path)
{
	struct stat st;
	return lstat(path, &st) == 0;
}

/* ---- self-describing blobs ------------------------------------------------
 * A blob made for (key, version) starts with a header naming both and the
 * checksum of the payload; the payload is a pseudo-random stream seeded by
 * both.  tu_blob_check() recognises any blob made for the key and returns
 * its version, so a reader racing writers can tell a genuine version from a
 * torn or foreign one without knowing which version to expect. */
#define TU_BLOB_MAGIC 0x54424c42u /* "BLBT" */

struct tu_blob_hdr {
	uint32_t magic;
	uint32_t version;
	uint64_t key_hash;
	uint64_t payload_len;
	uint64_t payload_sum;
};

static inline uint64_t tu_mix(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fill @p buf (capacity >= sizeof hdr + payload_len) and return its size. */
static inline size_t tu_blob_make(unsigned char *buf, const char *key,
				  uint32_t version, size_t payload_len)
{
	struct tu_blob_hdr h = {
		.magic = TU_BLOB_MAGIC,
		.version = version,
		.key_hash = XXH3_64bits(key, strlen(key)),
		.payload_len = payload_len,
	};
	uint64_t s = h.key_hash ^ ((uint64_t)version << 32) ^ payload_len;
	unsigned char *p = buf + sizeof h;
	for (size_t i = 0; i < payload_len; i += 8) {
		uint64_t v = tu_mix(&s);
		size_t n = payload_len - i < 8 ? payload_len - i : 8;
		memcpy(p + i, &v, n);
	}
	h.payload_sum = XXH3_64bits(p, payload_len);
	memcpy(buf, &h, sizeof h);
	return sizeof h + payload_len;
}

/* Version of a genuine blob for @p key, or -1 if the bytes are not one. */
static inline long tu_blob_check(const void *data, size_t size, const char *key)
{
	struct tu_blob_hdr h;
	if (size < sizeof h)
		return -1;
	memcpy(&h, data, sizeof h);
	if (h.magic != TU_BLOB_MAGIC || h.payload_len != size - sizeof h ||
	    h.key_hash != XXH3_64bits(key, strlen(key)))
		return -1;
	const unsigned char *p = (const unsigned char *)data + sizeof h;
	if (XXH3_64bits(p, h.payload_len) != h.payload_sum)
		return -1;
	/* regenerate to rule out a blob whose checksum happens to match */
	uint64_t s = h.key_hash ^ ((uint64_t)h.version << 32) ^ h.payload_len;
	for (size_t i = 0; i < h.payload_len; i += 8) {
		uint64_t v = tu_mix(&s);
		size_t n = h.payload_len - i < 8 ? h.payload_len - i : 8;
		if (memcmp(p + i, &v, n))
			return -1;
	}
	return h.version;
}

/* ---- children ------------------------------------------------------------ */

/* Fork; the child runs fn(arg) and exits with its return value. */
static inline pid_t tu_spawn(int (*fn)(void *), void *arg)
{
	fflush(stdout);
	fflush(stderr);
	pid_t pid = fork();
	TU_CHECK(pid >= 0);
	if (pid == 0)
		_exit(fn(arg) & 0xff);
	return pid;
}

/* Wait for @p pid; returns the exit status, or 128+signal if it died. */
static inline int tu_wait(pid_t pid)
{
	int st;
	while (waitpid(pid, &st, 0) < 0)
		TU_CHECK(errno == EINTR);
	if (WIFEXITED(st))
		return WEXITSTATUS(st);
	return 128 + WTERMSIG(st);
}

/* Run fn(arg) in a child and return its status as tu_wait() does. */
static inline int tu_run_child(int (*fn)(void *), void *arg)
{
	return tu_wait(tu_spawn(fn, arg));
}

static inline double tu_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

#endif
