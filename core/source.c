/*
 * source.c - a source file's identity: its stat stamp (mtime and size), and
 * the XXH3-128 of its bytes, which keeps an entry fresh when only the mtime
 * moved (a git checkout, a restored CI cache, a copied container layer, a
 * Nix store where every mtime is 1).  The bytes are hashed at a put, and by
 * a reader only when the stamp differs but the size matches.
 */
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#define XXH_STATIC_LINKING_ONLY /* XXH3_state_t on the stack */
#include <xxhash.h>

#include "sc_int.h"

#define READ_CHUNK 65536

static int same_stamp(const struct stat *a, const struct stat *b)
{
	return a->st_size == b->st_size && a->st_mtim.tv_sec == b->st_mtim.tv_sec &&
	       a->st_mtim.tv_nsec == b->st_mtim.tv_nsec;
}

int sc_source_hash(const char *path, const struct stat *want, uint64_t size, uint64_t id[2])
{
	static __thread unsigned char buf[READ_CHUNK];
	XXH3_state_t st;
	XXH128_hash_t h;
	struct stat after;
	uint64_t done = 0;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	XXH3_128bits_reset(&st);
	/* Read the size expected, then one fstat: the file must still have
	 * that size and the stamp it had (the caller's stat, or the entry's
	 * size): a writer changes the mtime, so bytes that changed during
	 * the read show there.  Four system calls in all. */
	while (done < size) {
		size_t want_n = size - done < sizeof(buf) ? (size_t)(size - done) : sizeof(buf);
		ssize_t n = read(fd, buf, want_n);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = -errno;
			goto out;
		}
		if (n == 0)
			break;
		XXH3_128bits_update(&st, buf, (size_t)n);
		done += (uint64_t)n;
	}
	if (fstat(fd, &after) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(after.st_mode) || done != size || (uint64_t)after.st_size != size ||
	    (want && !same_stamp(want, &after))) {
		rc = SC_ESTALE;
		goto out;
	}
	h = XXH3_128bits_digest(&st);
	id[0] = h.low64;
	id[1] = h.high64;
out:
	close(fd);
	return rc;
}

int sc_source_fresh(const char *path, int64_t sec, uint32_t nsec, uint64_t size,
		    const uint64_t *src_hash, int *by_content)
{
	struct stat st;
	uint64_t id[2];

	if (by_content)
		*by_content = 0;
	if (stat(path, &st) != 0 || (uint64_t)st.st_size != size)
		return 0;
	if ((int64_t)st.st_mtim.tv_sec == sec && (uint32_t)st.st_mtim.tv_nsec == nsec)
		return 1;
	if (!src_hash || sc_source_hash(path, NULL, size, id) != 0 || id[0] != src_hash[0] ||
	    id[1] != src_hash[1])
		return 0;
	if (by_content)
		*by_content = 1;
	return 1;
}
