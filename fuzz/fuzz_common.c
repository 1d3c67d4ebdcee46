/*
 * fuzz_common.c - scratch files and checks shared by the fuzz targets.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "fuzz.h"
#include "pack.h"
#include "scriptcache.h"

static char scratch_dir[PATH_MAX];
static char scratch_path[PATH_MAX];
static pid_t scratch_owner;

static void remove_scratch(void)
{
	char p[PATH_MAX + 16];

	/* a forked replay child must not remove its parent's directory */
	if (scratch_owner != getpid())
		return;
	/* what the library may leave next to a shard: the lock file and, if
	 * a compaction was interrupted, temp files (removed by the next writer) */
	unlink(scratch_path);
	snprintf(p, sizeof(p), "%s.lock", scratch_path);
	unlink(p);
	rmdir(scratch_dir);
}

const char *fuzz_scratch_path(void)
{
	const char *base;
	struct stat st;

	if (scratch_path[0])
		return scratch_path;
	base = getenv("SC_FUZZ_TMPDIR");
	if (!base)
		base = stat("/dev/shm", &st) == 0 && S_ISDIR(st.st_mode) ? "/dev/shm" : "/tmp";
	snprintf(scratch_dir, sizeof(scratch_dir), "%s/scfuzz.XXXXXX", base);
	if (!mkdtemp(scratch_dir)) {
		perror("fuzz: mkdtemp");
		abort();
	}
	if (snprintf(scratch_path, sizeof(scratch_path), "%s/fuzz.shard", scratch_dir) >=
	    (int)sizeof(scratch_path))
		abort();
	scratch_owner = getpid();
	atexit(remove_scratch);
	return scratch_path;
}

const uint8_t *fuzz_image(const uint8_t *data, size_t size, size_t *n)
{
	static uint8_t *img;

	if (!fuzz_is_packed(data, size)) {
		*n = size;
		return data;
	}
	if (!img && !(img = malloc(FUZZ_IMAGE_MAX)))
		abort();
	*n = fuzz_unpack(data, size, img, FUZZ_IMAGE_MAX);
	return img;
}

void fuzz_write_scratch(const uint8_t *data, size_t size)
{
	static const uint8_t zeros[4096];
	const char *path = fuzz_scratch_path();
	size_t at = 0;
	int fd;

	/* a compaction in the previous run may have replaced the file; the
	 * handles of that run are closed, so truncating cannot fault anyone */
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0 || fchmod(fd, 0600) != 0 || ftruncate(fd, (off_t)size) != 0) {
		perror("fuzz: scratch shard");
		abort();
	}
	/* Pages of zeros are left as holes (they read as zeros): a shard is
	 * mostly empty tables, so most of the copy is saved. */
	while (at < size) {
		size_t len = size - at < sizeof(zeros) ? size - at : sizeof(zeros);
		size_t done = 0;

		if (memcmp(data + at, zeros, len) == 0) {
			at += len;
			continue;
		}
		while (done < len) {
			ssize_t n = pwrite(fd, data + at + done, len - done, (off_t)(at + done));
			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				perror("fuzz: write scratch shard");
				abort();
			}
			done += (size_t)n;
		}
		at += len;
	}
	close(fd);
}

void fuzz_fail(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "fuzz invariant broken (%s): ", fuzz_target_name);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

uint64_t fuzz_touch(const void *p, size_t n)
{
	static volatile uint64_t sink;

	if (n == 0)
		return 0;
	sink = XXH3_64bits(p, n);
	return sink;
}

int fuzz_known_rc(int rc)
{
	return rc == 0 || (rc <= SC_ENOTFOUND && rc >= SC_ELAST) || (rc < 0 && rc > -4096);
}

int fuzz_path_safe(const char *path, size_t len)
{
	char buf[PATH_MAX];
	struct stat st;

	/* the library copies len bytes and adds a NUL: a NUL inside ends the
	 * path it opens there */
	len = strnlen(path, len);
	if (len == 0 || len >= sizeof(buf))
		return 1; /* the library refuses it or open("") fails */
	memcpy(buf, path, len);
	buf[len] = '\0';
	if (stat(buf, &st) != 0)
		return 1;
	return S_ISREG(st.st_mode);
}

int fuzz_entry_safe(const sc_entry_info *e)
{
	return fuzz_path_safe(e->exe_path, e->exe_path_len) &&
	       (!e->has_source_hash || fuzz_path_safe(e->key, e->key_len));
}
