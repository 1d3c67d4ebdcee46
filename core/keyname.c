/*
 * keyname.c - key <-> directory-entry name (scriptcache.h states the rules).
 *
 * In the library, not in one of its consumers, because the mount and
 * `scriptcache encode` must agree byte for byte: both call this code.
 */
#include <errno.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <xxhash.h>

#include "scriptcache.h"

static const char hexdig[] = "0123456789ABCDEF";

/*
 * The one rule both directions share.  @p pos is the byte's position in
 * the *key*: only the first byte of a name is special, so that "." / ".."
 * and hidden files cannot appear and a raw leading '#' always means a
 * hashed name.
 */
static int must_escape(unsigned char c, size_t pos)
{
	if (c < 0x20 || c > 0x7e || c == '/' || c == '%')
		return 1;
	return pos == 0 && (c == '.' || c == '#');
}

static void hashed_name(const char *key, size_t key_len, char out[SC_NAME_MAX + 1])
{
	XXH128_canonical_t canon;
	static const char lower[] = "0123456789abcdef";
	size_t i;

	XXH128_canonicalFromHash(&canon, XXH3_128bits(key, key_len));
	out[0] = '#';
	for (i = 0; i < sizeof(canon.digest); i++) {
		out[1 + 2 * i] = lower[canon.digest[i] >> 4];
		out[2 + 2 * i] = lower[canon.digest[i] & 15];
	}
	out[SC_NAME_HASHED_LEN] = '\0';
}

int sc_name_encode(const char *key, size_t key_len, char out[SC_NAME_MAX + 1])
{
	size_t i, n = 0;

	if (key_len == 0)
		return -EINVAL;
	for (i = 0; i < key_len; i++) {
		unsigned char c = (unsigned char)key[i];

		if (!must_escape(c, i)) {
			if (n + 1 > SC_NAME_MAX)
				goto too_long;
			out[n++] = (char)c;
		} else {
			if (n + 3 > SC_NAME_MAX)
				goto too_long;
			out[n++] = '%';
			out[n++] = hexdig[c >> 4];
			out[n++] = hexdig[c & 15];
		}
	}
	out[n] = '\0';
	return (int)n;

too_long:
	hashed_name(key, key_len, out);
	return SC_NAME_HASHED_LEN;
}

int sc_name_is_hashed(const char *name)
{
	size_t i;

	if (name[0] != '#')
		return 0;
	for (i = 1; i < SC_NAME_HASHED_LEN; i++) {
		char c = name[i];

		if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
			return 0;
	}
	return name[SC_NAME_HASHED_LEN] == '\0';
}

/* Upper-case hex only: accepting "%2f" as well as "%2F" would give one key two names. */
static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int sc_name_decode(const char *name, char *out, size_t out_size, size_t *key_len,
		   const char **why)
{
	const char *dummy;
	size_t name_len = strlen(name);
	size_t i, n = 0;

	if (!why)
		why = &dummy;
	*why = NULL;
	if (name_len == 0) {
		*why = "empty name";
		return -EINVAL;
	}
	if (name_len > SC_NAME_MAX) {
		*why = "name longer than 255 bytes";
		return -ENAMETOOLONG;
	}
	if (name[0] == '#') {
		if (sc_name_is_hashed(name))
			return SC_NAME_HASHED;
		*why = "a name starting with '#' must be '#' and 32 lower-case hex digits";
		return -EINVAL;
	}
	/* The key is never longer than its name: every byte costs 1 or 3. */
	if (out_size < name_len + 1)
		return -ENOBUFS;

	for (i = 0; i < name_len; i++) {
		unsigned char c = (unsigned char)name[i];

		if (c == '%') {
			int hi, lo;

			if (i + 2 >= name_len) {
				*why = "'%' must be followed by two hex digits";
				return -EINVAL;
			}
			hi = hexval(name[i + 1]);
			lo = hexval(name[i + 2]);
			if (hi < 0 || lo < 0) {
				*why = "'%' must be followed by two upper-case hex digits";
				return -EINVAL;
			}
			c = (unsigned char)(hi << 4 | lo);
			if (c == 0) {
				*why = "%00 would put a NUL byte in the key";
				return -EINVAL;
			}
			if (!must_escape(c, n)) {
				*why = "needless escape: that character is written as itself";
				return -EINVAL;
			}
			i += 2;
		} else if (must_escape(c, n)) {
			if (c == '/')
				*why = "'/' must be written %2F";
			else if (n == 0 && c == '.')
				*why = "a leading '.' must be written %2E";
			else
				*why = "bytes outside printable ASCII must be %-escaped";
			return -EINVAL;
		}
		out[n++] = (char)c;
	}
	out[n] = '\0';
	if (key_len)
		*key_len = n;
	return 0;
}

struct find_hashed {
	const char *name;
	char *key;                /* malloc'd copy once found */
	int rc;
};

static int find_hashed_cb(const sc_entry_info *e, void *arg)
{
	struct find_hashed *f = arg;
	char name[SC_NAME_MAX + 1];
	/* A relocated entry's key is its base, '/', and the stored key: the
	 * name is that of the whole key (sc_foreach()'s key_base). */
	size_t base = e->key_base ? e->key_base_len + 1 : 0, len = base + e->key_len;
	char *key;

	/* Each byte costs at most three characters: a key this short always
	 * has a plain name, so it cannot be the one hashed. */
	if (len * 3 <= SC_NAME_MAX || len > SC_MAX_KEY)
		return 0;
	if (!(key = malloc(len + 1))) {
		f->rc = -ENOMEM;
		return 1;
	}
	if (base) {
		memcpy(key, e->key_base, e->key_base_len);
		key[e->key_base_len] = '/';
	}
	memcpy(key + base, e->key, e->key_len);
	key[len] = '\0';
	if (sc_name_encode(key, len, name) < 0 || strcmp(name, f->name) != 0) {
		free(key);
		return 0;
	}
	f->key = key;
	return 1; /* stop */
}

/*
 * A plain name decodes to its key.  A hashed name cannot be inverted, so
 * the entries are walked and each long key encoded until one matches:
 * O(entries), which is why the mount remembers the names it has handed out.
 */
int sc_lookup_name(sc_cache *c, const char *name, sc_entry_info *out)
{
	struct find_hashed f = { name, NULL, 0 };
	size_t cap, len;
	char *key;
	int rc;

	if (!c || !name || !out)
		return -EINVAL;
	cap = strlen(name) + 1;
	if (cap > SC_NAME_MAX + 1)
		return -ENAMETOOLONG;
	if (!(key = malloc(cap)))
		return -ENOMEM;
	rc = sc_name_decode(name, key, cap, &len, NULL);
	if (rc == SC_NAME_HASHED) {
		rc = sc_foreach(c, find_hashed_cb, &f);
		rc = f.rc ? f.rc : rc < 0 ? rc : f.key ? 0 : SC_ENOTFOUND;
		free(key);
		key = f.key;
	}
	/* The key is looked up again so that the entry is checksummed, blob
	 * and all, as sc_lookup() promises. */
	if (rc == 0)
		rc = sc_lookup(c, key, out);
	free(key);
	return rc;
}
