/*
 * test_keyname.c - unit tests of the key <-> mount file name encoding
 * (core/keyname.c), which the FUSE mount and `scriptcache encode` share.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <xxhash.h>

#include "testutil.h"

static int enc_is(const char *key, size_t len, const char *want)
{
	char name[SC_NAME_MAX + 1];
	int n = sc_name_encode(key, len, name);

	if (n < 0 || (size_t)n != strlen(want) || strcmp(name, want) != 0) {
		tap_diag("encode gave %d '%s', want '%s'", n, n < 0 ? "" : name, want);
		return 0;
	}
	return 1;
}

static int dec_is(const char *name, const char *want, size_t want_len)
{
	char key[SC_NAME_MAX + 1];
	size_t len = 0;
	const char *why = NULL;
	int rc = sc_name_decode(name, key, sizeof(key), &len, &why);

	if (rc != 0 || len != want_len || memcmp(key, want, len) != 0 || key[len] != '\0') {
		tap_diag("decode '%s' gave %d (%s)", name, rc, why ? why : "");
		return 0;
	}
	return 1;
}

/* Decoding must fail with @p want_rc and, for -EINVAL, give a reason. */
static int dec_fails(const char *name, int want_rc)
{
	char key[512];
	size_t len = 12345;
	const char *why = NULL;
	int rc = sc_name_decode(name, key, sizeof(key), &len, &why);

	if (rc != want_rc) {
		tap_diag("decode '%s' gave %d, want %d", name, rc, want_rc);
		return 0;
	}
	if (rc == -EINVAL && (!why || !*why)) {
		tap_diag("decode '%s' gave no reason", name);
		return 0;
	}
	return len == 12345; /* untouched on failure */
}

static void expected_hashed(const char *key, size_t len, char out[SC_NAME_HASHED_LEN + 1])
{
	XXH128_canonical_t c;
	int i;

	XXH128_canonicalFromHash(&c, XXH3_128bits(key, len));
	out[0] = '#';
	for (i = 0; i < 16; i++)
		sprintf(out + 1 + 2 * i, "%02x", c.digest[i]);
}

/* Independent statement of the rule, to check the encoder against. */
static size_t plain_len(const unsigned char *k, size_t len)
{
	size_t i, n = 0;

	for (i = 0; i < len; i++) {
		int esc = k[i] < 0x20 || k[i] > 0x7e || k[i] == '/' || k[i] == '%' ||
			  (i == 0 && (k[i] == '.' || k[i] == '#'));
		n += esc ? 3 : 1;
	}
	return n;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint32_t rnd(void)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (uint32_t)(rng_state >> 32);
}

static void test_basic(void)
{
	tap_ok(enc_is("/usr/share/lua/5.4/foo.lua", 26, "%2Fusr%2Fshare%2Flua%2F5.4%2Ffoo.lua"),
	       "absolute path: every '/' becomes %%2F");
	tap_ok(enc_is("plain-name_1.lua", 16, "plain-name_1.lua"), "plain name is unchanged");
	tap_ok(enc_is("%", 1, "%25") && enc_is("a%2Fb", 5, "a%252Fb"),
	       "'%%' becomes %%25 (so a literal %%2F in a key survives)");
	tap_ok(enc_is(".", 1, "%2E") && enc_is("..", 2, "%2E.") && enc_is(".x.y", 4, "%2Ex.y"),
	       "only a leading '.' is escaped: no '.', '..' or hidden names");
	tap_ok(enc_is("#x", 2, "%23x") && enc_is("a#b", 3, "a#b"),
	       "a leading '#' is escaped so it cannot look like a hashed name");
	tap_ok(enc_is("\xc3\xa9t\xc3\xa9", 5, "%C3%A9t%C3%A9"), "UTF-8 bytes are escaped, upper-case hex");
	tap_ok(enc_is("a\nb\tc\x7f", 6, "a%0Ab%09c%7F"), "control bytes and DEL are escaped");
	tap_ok(enc_is("a b~!", 5, "a b~!"), "space and other printable ASCII are kept");
	tap_ok(enc_is("x\0y", 3, "x%00y"), "a NUL byte is escaped, never truncates");
	{
		char name[SC_NAME_MAX + 1];

		TAP_EQ(sc_name_encode("", 0, name), -EINVAL, "empty key has no name");
	}
}

static void test_single_bytes(void)
{
	int c, pos, bad = 0;

	/* Every byte, at the start and in the middle, must round-trip. */
	for (pos = 0; pos < 2; pos++) {
		for (c = 1; c < 256; c++) {
			char key[3] = { 'k', 'k', 0 }, name[SC_NAME_MAX + 1], back[16];
			size_t len = 0;
			int n;

			key[pos] = (char)c;
			n = sc_name_encode(key, 2, name);
			if (n < 0 || strchr(name, '/') || name[0] == '.' ||
			    sc_name_decode(name, back, sizeof(back), &len, NULL) != 0 || len != 2 ||
			    memcmp(back, key, 2) != 0) {
				if (bad++ < 5)
					tap_diag("byte 0x%02x at %d: name '%s'", c, pos, name);
			}
			for (n = 0; name[n]; n++)
				if ((unsigned char)name[n] < 0x20 || (unsigned char)name[n] > 0x7e)
					bad++;
		}
	}
	TAP_EQ(bad, 0, "all 255 non-NUL bytes round-trip at both positions, names are printable");
}

static void test_length_limit(void)
{
	char key[4096], name[SC_NAME_MAX + 1], want[SC_NAME_MAX + 1];
	int n;

	memset(key, 'a', sizeof(key));
	TAP_EQ(sc_name_encode(key, 255, name), 255, "255-byte plain key keeps a 255-byte name");
	tap_ok(dec_is(name, key, 255), "... and decodes back");
	n = sc_name_encode(key, 256, name);
	expected_hashed(key, 256, want);
	TAP_EQ(n, SC_NAME_HASHED_LEN, "256-byte key falls back to a hashed name");
	tap_ok(strcmp(name, want) == 0, "hashed name is '#' + XXH3-128 canonical hex (%s)", name);
	tap_ok(sc_name_is_hashed(name), "sc_name_is_hashed() recognises it");

	/* 85 slashes encode to exactly 255 bytes; 86 would be 258. */
	memset(key, '/', 86);
	TAP_EQ(sc_name_encode(key, 85, name), 255, "85 '/' encode to exactly NAME_MAX");
	TAP_EQ(sc_name_encode(key, 86, name), SC_NAME_HASHED_LEN, "86 '/' need the fallback");
	/* An escape must not be split across the limit: 253 + 3 = 256. */
	memset(key, 'a', 253);
	key[253] = '/';
	TAP_EQ(sc_name_encode(key, 254, name), SC_NAME_HASHED_LEN,
	       "an escape that would cross the limit forces the fallback");
	TAP_EQ(sc_name_encode(key + 1, 253, name), 255, "one byte shorter still fits");

	memset(key, 'b', 4096);
	n = sc_name_encode(key, 4096, name);
	expected_hashed(key, 4096, want);
	tap_ok(n == SC_NAME_HASHED_LEN && strcmp(name, want) == 0, "SC_MAX_KEY-sized key hashes");
	key[4095] = 'c';
	sc_name_encode(key, 4096, want);
	tap_ok(strcmp(name, want) != 0, "keys differing in the last byte get different hashed names");
}

static void test_decode_rejects(void)
{
	char big[300];

	tap_ok(dec_is("%2Fa%2Fb.lua", "/a/b.lua", 8), "decode of an absolute path");
	tap_ok(dec_is("%2E", ".", 1) && dec_is("%2E.", "..", 2), "decode of %%2E");
	tap_ok(dec_is("%23x", "#x", 2), "decode of a leading %%23");
	tap_ok(dec_is("a%252F", "a%2F", 4), "decode of %%25");

	tap_ok(dec_fails("", -EINVAL), "empty name rejected");
	tap_ok(dec_fails("%", -EINVAL) && dec_fails("a%2", -EINVAL), "truncated escape rejected");
	tap_ok(dec_fails("%G0", -EINVAL) && dec_fails("%zz", -EINVAL), "non-hex escape rejected");
	tap_ok(dec_fails("%2f", -EINVAL), "lower-case hex rejected (one name per key)");
	tap_ok(dec_fails("%41", -EINVAL) && dec_fails("a%2E", -EINVAL) && dec_fails("a%23", -EINVAL),
	       "needless escapes rejected (one name per key)");
	tap_ok(dec_fails("%00", -EINVAL), "%%00 rejected: keys hold no NUL");
	tap_ok(dec_fails("a/b", -EINVAL), "raw '/' rejected");
	tap_ok(dec_fails(".x", -EINVAL) && dec_fails(".", -EINVAL) && dec_fails("..", -EINVAL),
	       "leading '.' rejected");
	tap_ok(dec_fails("a\nb", -EINVAL) && dec_fails("\xc3\xa9", -EINVAL) &&
		       dec_fails("a\x7f", -EINVAL),
	       "raw control and non-ASCII bytes rejected");
	tap_ok(dec_fails("#abc", -EINVAL), "short '#' name rejected");
	tap_ok(dec_fails("#0123456789ABCDEF0123456789abcdef", -EINVAL),
	       "upper-case hashed name rejected");
	tap_ok(dec_fails("#0123456789abcdef0123456789abcdef0", -EINVAL),
	       "hashed name with 33 digits rejected");
	TAP_EQ(sc_name_decode("#0123456789abcdef0123456789abcdef", big, sizeof(big), NULL, NULL),
	       SC_NAME_HASHED, "well-formed hashed name is reported as such");
	memset(big, 'a', 256);
	big[256] = '\0';
	tap_ok(dec_fails(big, -ENAMETOOLONG), "256-byte name rejected as too long");
	{
		char small[4];

		TAP_EQ(sc_name_decode("abcd", small, sizeof(small), NULL, NULL), -ENOBUFS,
		       "too small output buffer is -ENOBUFS, not an overflow");
	}
}

static void test_random_roundtrip(void)
{
	unsigned char key[400];
	char name[SC_NAME_MAX + 1], back[SC_NAME_MAX + 1];
	int i, bad = 0, hashed = 0;

	for (i = 0; i < 20000; i++) {
		size_t len = 1 + rnd() % 300, j, plen, got_len = 0;
		int n;

		for (j = 0; j < len; j++) {
			/* Bias toward the interesting bytes. */
			static const char special[] = "/%.#a \x01\x7f\xff";
			key[j] = (rnd() & 1) ? (unsigned char)special[rnd() % 9]
					     : (unsigned char)(1 + rnd() % 255);
		}
		n = sc_name_encode((char *)key, len, name);
		plen = plain_len(key, len);
		if (plen > SC_NAME_MAX) {
			hashed++;
			if (n != SC_NAME_HASHED_LEN || !sc_name_is_hashed(name))
				bad++;
			continue;
		}
		if (n < 0 || (size_t)n != plen ||
		    sc_name_decode(name, back, sizeof(back), &got_len, NULL) != 0 ||
		    got_len != len || memcmp(back, key, len) != 0)
			bad++;
	}
	TAP_EQ(bad, 0, "20000 random keys round-trip (%d took the hashed fallback)", hashed);
	tap_ok(hashed > 1000 && hashed < 19000, "the sample exercised both paths");
}

/* Whatever decode accepts, encode must give back exactly: names are canonical. */
static void test_canonical(void)
{
	static const char alphabet[] = "%2FE53A0a.#/f";
	char name[16], key[16], again[SC_NAME_MAX + 1];
	int i, bad = 0, accepted = 0;

	for (i = 0; i < 200000; i++) {
		size_t len = 1 + rnd() % 8, j, klen = 0;

		for (j = 0; j < len; j++)
			name[j] = alphabet[rnd() % (sizeof(alphabet) - 1)];
		name[len] = '\0';
		if (sc_name_decode(name, key, sizeof(key), &klen, NULL) != 0)
			continue;
		accepted++;
		if (sc_name_encode(key, klen, again) < 0 || strcmp(again, name) != 0) {
			if (bad++ < 5)
				tap_diag("'%s' decodes but re-encodes as '%s'", name, again);
		}
	}
	TAP_EQ(bad, 0, "every accepted name is the canonical encoding of its key");
	tap_ok(accepted > 1000, "the sample had accepted names (%d)", accepted);
}

static int put_named(sc_cache *c, const char *key)
{
	sc_put_opts o = { .no_source = 1 };
	return sc_put_ex(c, key, key, strlen(key), &o);
}

/* sc_lookup_name(): a plain name decodes, a hashed one is found by a scan. */
static void test_lookup_name(void)
{
	char longkey[400], name[SC_NAME_MAX + 1];
	sc_entry_info e;
	sc_cache *c;

	tu_setup("keyname");
	memset(longkey, 'k', sizeof(longkey) - 1);
	longkey[0] = '/';
	longkey[sizeof(longkey) - 1] = '\0';
	TAP_EQ(sc_open(&c, tu_path("names.shard"), "test", 0), 0, "open a shard");
	TAP_EQ(put_named(c, "/a/b.lua"), 0, "put a short key");
	TAP_EQ(put_named(c, longkey), 0, "put a key too long for a plain name");

	TAP_EQ(sc_lookup_name(c, "%2Fa%2Fb.lua", &e), 0, "plain name found");
	tap_ok(e.key_len == 8 && memcmp(e.key, "/a/b.lua", 8) == 0 && e.blob_size == 8,
	       "... it is the entry of its key");
	TAP_EQ(sc_name_encode(longkey, strlen(longkey), name), SC_NAME_HASHED_LEN,
	       "the long key has a hashed name");
	TAP_EQ(sc_lookup_name(c, name, &e), 0, "hashed name found by the scan");
	tap_ok(e.key_len == strlen(longkey) && memcmp(e.key, longkey, e.key_len) == 0,
	       "... it is the entry of the long key");
	TAP_EQ(sc_lookup_name(c, "%2Fnot%2Fthere", &e), SC_ENOTFOUND, "absent plain name");
	TAP_EQ(sc_lookup_name(c, "#0123456789abcdef0123456789abcdef", &e), SC_ENOTFOUND,
	       "a hashed name no key has");
	TAP_EQ(sc_lookup_name(c, "/a/b.lua", &e), -EINVAL, "a raw '/' is not a name");
	TAP_EQ(sc_lookup_name(c, "%2fa", &e), -EINVAL, "lower-case hex is not canonical");
	TAP_EQ(sc_lookup_name(c, "%41", &e), -EINVAL, "a needless escape is not canonical");
	TAP_EQ(sc_remove(c, longkey), 0, "remove the long key");
	TAP_EQ(sc_lookup_name(c, name, &e), SC_ENOTFOUND, "its hashed name is gone with it");
	sc_close(c);
}

static void test_version(void)
{
	int major = -1, minor = -1, patch = -1;
	const char *v = sc_version(&major, &minor, &patch);
	char want[32];

	tap_ok(v && strcmp(v, SC_VERSION_STRING) == 0, "sc_version() is %s", v ? v : "(null)");
	snprintf(want, sizeof(want), "%d.%d.%d", major, minor, patch);
	tap_ok(strcmp(want, v) == 0, "its parts spell the string (%s)", want);
	TAP_EQ(major * 10000 + minor * 100 + patch, SC_VERSION_NUMBER, "and make SC_VERSION_NUMBER");
	tap_ok(sc_version(NULL, NULL, NULL) == v, "the parts may be NULL");
}

int main(void)
{
	test_basic();
	test_single_bytes();
	test_length_limit();
	test_decode_rejects();
	test_random_roundtrip();
	test_canonical();
	test_lookup_name();
	test_version();
	return tap_done();
}
