/*
 * pyc.c - CPython's .pyc in the tree view, and the source each one stands
 * for (docs/REMOTE.md, "CPython through the remote").
 *
 * With PYTHONPYCACHEPREFIX=<mount>/.tree, the bytecode of /A/B/X.py is the
 * tree key /A/B/X.<cache tag>[.opt-N].pyc: the prefix mirrors the source's
 * directory.  A tree key is a cache path, so its entry has no source file
 * (no_source), but the source it stands for can be derived from the name:
 *   - a commit of such a name records the hash and size of that source
 *     when the .pyc's header says it was compiled from the file as it is
 *     now (fs_pyc_commit_source), so that `scriptcache push` shares it;
 *   - a tree miss of such a name asks the remote for the compiled form of
 *     that source (remote.c, fs_remote_fill_pyc), and a timestamp-based
 *     answer gets the local source's mtime and size in its header
 *     (fs_pyc_fix) before it is put.
 *
 * The .pyc header (importlib._bootstrap_external): 16 bytes, four
 * little-endian 32-bit words: the magic (a 16-bit number, then "\r\n"),
 * the flags (0: timestamp-based; bit 0: hash-based, bit 1: check the
 * source), then either the source's mtime (seconds, modulo 2^32) and size
 * (modulo 2^32), or the 8-byte SipHash of the source.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fs_i.h"

#define PYC_HEADER      16
#define PYC_FLAG_HASH   1u
#define PYC_FLAG_CHECK  2u

static uint32_t le32(const unsigned char *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static void put_le32(unsigned char *p, uint32_t v)
{
	p[0] = (unsigned char)v;
	p[1] = (unsigned char)(v >> 8);
	p[2] = (unsigned char)(v >> 16);
	p[3] = (unsigned char)(v >> 24);
}

/* [A-Za-z0-9_-]+: what goes into a tag (and so into the action key) */
static int tag_chars(const char *s, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return 0;
	}
	return 1;
}

int fs_pyc_name(const char *key, size_t klen, char *src, size_t src_cap, char *tag,
		size_t tag_cap)
{
	const char *name = NULL;
	for (size_t i = klen; i > 0; i--)
		if (key[i - 1] == '/') {
			name = key + i;
			break;
		}
	if (!name || key[0] != '/')
		return -1;
	size_t dir_len = (size_t)(name - 1 - key), n = klen - (size_t)(name - key);
	if (n <= 4 || memcmp(name + n - 4, ".pyc", 4) != 0)
		return -1;
	n -= 4; /* name[0..n): <stem>.<cache tag>[.opt-N] */
	const char *opt = NULL;
	size_t opt_len = 0;
	const char *dot = memrchr(name, '.', n);
	if (dot && (size_t)(name + n - dot) > 5 && memcmp(dot + 1, "opt-", 4) == 0) {
		opt = dot + 1;
		opt_len = (size_t)(name + n - opt);
		if (!tag_chars(opt, opt_len))
			return -1;
		n = (size_t)(dot - name);
		dot = memrchr(name, '.', n);
	}
	if (!dot || dot == name)
		return -1; /* no cache tag, or no stem */
	const char *ctag = dot + 1;
	size_t ctag_len = (size_t)(name + n - ctag), stem_len = (size_t)(dot - name);
	if (!tag_chars(ctag, ctag_len))
		return -1;
	if (dir_len + 1 + stem_len + 3 + 1 > src_cap)
		return -1;
	memcpy(src, key, dir_len + 1);
	memcpy(src + dir_len + 1, name, stem_len);
	memcpy(src + dir_len + 1 + stem_len, ".py", 4);
	int w = snprintf(tag, tag_cap, "pyc %.*s%s%.*s", (int)ctag_len, ctag, opt ? " " : "",
			 (int)opt_len, opt ? opt : "");
	return w < 0 || (size_t)w >= tag_cap ? -1 : 0;
}

/* A header that may be shared: the magic ends in "\r\n", and the flags
 * are 0 (timestamp) or 3 (checked hash).  An unchecked-hash .pyc (flags 1)
 * is never compared with its source by CPython: recorded or served under a
 * source's hash without the daemon checking its SipHash, it could run for
 * a source it was not compiled from, so it stays local and is refused. */
static int header_kind(const unsigned char *b, size_t len, uint32_t *flags)
{
	if (len < PYC_HEADER || b[2] != '\r' || b[3] != '\n')
		return -1;
	*flags = le32(b + 4);
	if (*flags != 0 && *flags != (PYC_FLAG_HASH | PYC_FLAG_CHECK))
		return -1;
	return 0;
}

/* The fields CPython compares with the source's stat (SourceLoader's
 * path_stats: int(st_mtime) and st_size, each & 0xFFFFFFFF). */
static uint32_t st_mtime32(const struct stat *st)
{
	return (uint32_t)((uint64_t)st->st_mtim.tv_sec & 0xFFFFFFFFu);
}

static uint32_t st_size32(const struct stat *st)
{
	return (uint32_t)((uint64_t)st->st_size & 0xFFFFFFFFu);
}

int fs_pyc_fix(unsigned char *b, size_t len, const struct stat *st)
{
	uint32_t flags;
	if (header_kind(b, len, &flags) != 0)
		return -1;
	if (flags == 0) {
		put_le32(b + 8, st_mtime32(st));
		put_le32(b + 12, st_size32(st));
	}
	return 0;
}

char *fs_pyc_commit_source(struct fs *fs, const char *key, size_t klen, const void *pyc,
			   size_t len, char *tag, size_t tag_cap, size_t *src_len)
{
	char src[SC_MAX_KEY + 1];
	struct stat st;
	uint32_t flags;
	char *bytes = NULL;
	size_t n = 0;

	/* With allow_other the writer may be a user who cannot read the
	 * source, and this path has no request to check them against: such
	 * entries stay local (no hash of a file they may not read). */
	if (fs->fs_o.o_allow_other)
		return NULL;
	if (header_kind(pyc, len, &flags) != 0 ||
	    fs_pyc_name(key, klen, src, sizeof src, tag, tag_cap) != 0 || fs_in_mount(fs, src))
		return NULL;
	if (fs_read_source(NULL, fs, src, &st, &bytes, &n) != 0)
		return NULL;
	/* A timestamp .pyc compiled from another version of the file (edited
	 * since) must not be recorded under this version's hash. */
	const unsigned char *h = pyc;
	if (flags == 0 && (le32(h + 8) != st_mtime32(&st) || le32(h + 12) != st_size32(&st))) {
		free(bytes);
		return NULL;
	}
	*src_len = n;
	return bytes;
}
