/*
 * fuzz_pathenc.c - the key <-> file-name encoding of the mount
 * (cli/pathenc.c), both directions.
 *
 * The input is used twice:
 *  1. as a key: sc_name_encode() must give a name of 1..SC_NAME_MAX bytes
 *     with no '/', no NUL, not starting with '.', only bytes 0x20..0x7E;
 *     decoding it must give the key back byte for byte, or SC_NAME_HASHED
 *     exactly when the name is the hashed fallback (then it must be '#' and
 *     32 lower-case hex digits, equal to what a second encode gives).
 *     Keys containing NUL are outside the domain (the library never stores
 *     one; pathenc.h says so): encoding them must still be safe, and
 *     decoding the result must not give a different NUL-free key.
 *  2. as a name (up to its first NUL): sc_name_decode() must never crash,
 *     and when it succeeds, encoding the key must give the name back
 *     (the encoding is documented as canonical: no two names per key).
 *     A too small output buffer must give -ENOBUFS, not an overflow.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "scriptcache.h"

const char fuzz_target_name[] = "fuzz_pathenc";

static void check_name(const char *name, int len)
{
	if (len < 1 || len > SC_NAME_MAX || strlen(name) != (size_t)len)
		fuzz_fail("encode gave a name of length %d (strlen %zu)", len, strlen(name));
	if (name[0] == '.')
		fuzz_fail("encoded name starts with '.': %s", name);
	for (int i = 0; i < len; i++)
		if ((unsigned char)name[i] < 0x20 || (unsigned char)name[i] > 0x7e || name[i] == '/')
			fuzz_fail("encoded name has byte 0x%02x at %d", (unsigned char)name[i], i);
}

static void as_key(const uint8_t *data, size_t size)
{
	char name[SC_NAME_MAX + 1], name2[SC_NAME_MAX + 1];
	char key[SC_NAME_MAX + 1];
	size_t key_len = 0;
	const char *why = NULL;
	int len, rc, has_nul = memchr(data, '\0', size) != NULL;

	len = sc_name_encode((const char *)data, size, name);
	if (size == 0) {
		if (len != -EINVAL)
			fuzz_fail("encode of the empty key returned %d", len);
		return;
	}
	check_name(name, len);
	rc = sc_name_decode(name, key, sizeof(key), &key_len, &why);
	if (sc_name_is_hashed(name)) {
		if (rc != SC_NAME_HASHED)
			fuzz_fail("hashed name %s decoded with %d", name, rc);
		if (sc_name_encode((const char *)data, size, name2) != len || strcmp(name, name2))
			fuzz_fail("hashed name is not stable");
		return;
	}
	if (has_nul) {
		/* %00 is refused by the decoder: the key cannot come back */
		if (rc == 0)
			fuzz_fail("a key with a NUL decoded to a %zu-byte key", key_len);
		return;
	}
	if (rc != 0)
		fuzz_fail("decode of encoded name \"%s\" failed: %d (%s)", name, rc, why ? why : "");
	if (key_len != size || memcmp(key, data, size) != 0)
		fuzz_fail("round trip changed the key (name \"%s\")", name);
}

static void as_name(const uint8_t *data, size_t size)
{
	char *name = malloc(size + 1), *key, small[4];
	char again[SC_NAME_MAX + 1];
	size_t name_len, key_len = 0;
	const char *why = NULL;
	int rc, len;

	if (!name)
		abort();
	memcpy(name, data, size);
	name[size] = '\0';
	name_len = strlen(name);
	key = malloc(name_len + 1);
	if (!key)
		abort();
	rc = sc_name_decode(name, key, name_len + 1, &key_len, &why);
	if (rc == -EINVAL && !why)
		fuzz_fail("decode refused a name without saying why");
	if (rc != 0 && rc != SC_NAME_HASHED && rc != -EINVAL && rc != -ENAMETOOLONG)
		fuzz_fail("decode returned %d", rc);
	if (rc == 0) {
		if (key_len == 0 || key_len > name_len || strlen(key) != key_len)
			fuzz_fail("decode gave a key of %zu bytes from a %zu-byte name", key_len, name_len);
		len = sc_name_encode(key, key_len, again);
		if (len < 0 || strcmp(again, name) != 0)
			fuzz_fail("not canonical: \"%s\" decodes to a key that encodes as \"%s\"", name,
				  len < 0 ? "(error)" : again);
		/* too small a buffer: refused, nothing written past it */
		if (name_len + 1 > sizeof(small)) {
			rc = sc_name_decode(name, small, sizeof(small), &key_len, &why);
			if (rc != -ENOBUFS)
				fuzz_fail("decode into a 4-byte buffer returned %d", rc);
		}
	}
	free(key);
	free(name);
}

int fuzz_run(const uint8_t *data, size_t size, struct fuzz_outcome *o)
{
	memset(o, 0, sizeof(*o));
	as_key(data, size);
	as_name(data, size);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_outcome o;
	return fuzz_run(data, size, &o);
}
