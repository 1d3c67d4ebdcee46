/*
 * key.c - the portable identity of a compiled script and the two objects
 * that stand for it on a server: the action key (/ac/<key>) and the action
 * record it holds, which names the blob under /cas/ by its SHA-256.
 * Pure functions: no network, no files.  docs/REMOTE.md is the reference.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <xxhash.h>

#include "sc_remote.h"

int sc_remote_ident_from_entry(const sc_entry_info *e, sc_remote_ident *id)
{
	/* (an entry keyed by a cache path, no_source, shares too when its
	 * source's hash was recorded: the mount's .pyc) */
	if (!e->has_source_hash)
		return SC_REMOTE_ENOTFOUND;
	id->tag = e->tag;
	id->tag_len = e->tag_len;
	id->exe_id = e->exe_id;
	id->exe_id_len = e->exe_id_len;
	id->source_hash[0] = e->source_hash[0];
	id->source_hash[1] = e->source_hash[1];
	id->source_size = e->source_size;
	return 0;
}

void sc_remote_ident_for_source(sc_remote_ident *id, const char *tag, const char *exe_id,
				const void *source, size_t source_len)
{
	/* The same hash the core records at a put (XXH3-128, low and high
	 * halves), so a local entry and a remote one agree on it. */
	XXH128_hash_t h = XXH3_128bits(source, source_len);

	id->tag = tag ? tag : "";
	id->tag_len = strlen(id->tag);
	id->exe_id = exe_id;
	id->exe_id_len = strlen(exe_id);
	id->source_hash[0] = h.low64;
	id->source_hash[1] = h.high64;
	id->source_size = (uint64_t)source_len;
}

static void put_be(unsigned char *p, uint64_t v, int n)
{
	int i;

	for (i = n - 1; i >= 0; i--) {
		p[i] = (unsigned char)(v & 0xff);
		v >>= 8;
	}
}

/* One length-prefixed field: the prefix makes the serialization
 * unambiguous (no separator that a tag could contain). */
static int hash_field(EVP_MD_CTX *ctx, const void *p, size_t len)
{
	unsigned char n[4];

	if ((uint64_t)len > UINT32_MAX)
		return -EINVAL;
	put_be(n, len, 4);
	if (EVP_DigestUpdate(ctx, n, 4) != 1 || (len && EVP_DigestUpdate(ctx, p, len) != 1))
		return -ENOMEM;
	return 0;
}

int sc_remote_action_key(const sc_remote_ident *id, unsigned char key[SC_REMOTE_DIGEST])
{
	unsigned char src[16], size[8];
	unsigned int out_len = 0;
	EVP_MD_CTX *ctx;
	int rc;

	/* XXH128_canonicalFromHash order: high half first, big-endian. */
	put_be(src, id->source_hash[1], 8);
	put_be(src + 8, id->source_hash[0], 8);
	put_be(size, id->source_size, 8);

	ctx = EVP_MD_CTX_new();
	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
		rc = -ENOMEM;
		goto out;
	}
	if ((rc = hash_field(ctx, SC_REMOTE_KEY_SCHEME, strlen(SC_REMOTE_KEY_SCHEME))) != 0 ||
	    (rc = hash_field(ctx, id->tag, id->tag_len)) != 0 ||
	    (rc = hash_field(ctx, id->exe_id, id->exe_id_len)) != 0 ||
	    (rc = hash_field(ctx, src, sizeof(src))) != 0 ||
	    (rc = hash_field(ctx, size, sizeof(size))) != 0)
		goto out;
	if (EVP_DigestFinal_ex(ctx, key, &out_len) != 1 || out_len != SC_REMOTE_DIGEST)
		rc = -ENOMEM;
out:
	EVP_MD_CTX_free(ctx);
	return rc;
}

int sc_remote_sha256(const void *data, size_t len, unsigned char out[SC_REMOTE_DIGEST])
{
	unsigned int out_len = 0;

	if (EVP_Digest(data, len, out, &out_len, EVP_sha256(), NULL) != 1 ||
	    out_len != SC_REMOTE_DIGEST)
		return -ENOMEM;
	return 0;
}

char *sc_remote_hex(const unsigned char d[SC_REMOTE_DIGEST], char out[SC_REMOTE_HEX])
{
	static const char digits[] = "0123456789abcdef";
	int i;

	for (i = 0; i < SC_REMOTE_DIGEST; i++) {
		out[2 * i] = digits[d[i] >> 4];
		out[2 * i + 1] = digits[d[i] & 15];
	}
	out[2 * SC_REMOTE_DIGEST] = '\0';
	return out;
}

/* ---- the action record, version 1 ----
 *
 *   scriptcache-record 1\n
 *   key <64 hex>\n
 *   blob-sha256 <64 hex>\n
 *   blob-size <decimal>\n
 *
 * Text, so that `curl URL/ac/<key>` shows what it is; each line "name
 * value".  A reader takes the first line exactly, each known field exactly
 * once, ignores lines of unknown names (fields a later 1.x may add), and
 * refuses anything else.  "key" binds the record to the key it is stored
 * under: a server that answers with another key's record is caught.
 */
#define RECORD_MAGIC "scriptcache-record 1"

int sc_remote_record_format(const sc_remote_record *rec, char *buf, size_t cap)
{
	char k[SC_REMOTE_HEX], b[SC_REMOTE_HEX];
	int n;

	n = snprintf(buf, cap, RECORD_MAGIC "\nkey %s\nblob-sha256 %s\nblob-size %" PRIu64 "\n",
		     sc_remote_hex(rec->key, k), sc_remote_hex(rec->blob_sha256, b),
		     rec->blob_size);
	if (n < 0 || (size_t)n >= cap)
		return -ENOBUFS;
	return n;
}

static int unhex(const char *s, size_t len, unsigned char out[SC_REMOTE_DIGEST])
{
	size_t i;

	if (len != 2 * SC_REMOTE_DIGEST)
		return -1;
	for (i = 0; i < len; i++) {
		int v;
		char c = s[i];

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			return -1; /* lower case only: one spelling per digest */
		if (i % 2 == 0)
			out[i / 2] = (unsigned char)(v << 4);
		else
			out[i / 2] |= (unsigned char)v;
	}
	return 0;
}

static int parse_u64(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i;

	if (len == 0 || len > 20 || (len > 1 && s[0] == '0'))
		return -1;
	for (i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	*out = v;
	return 0;
}

int sc_remote_record_parse(const void *buf, size_t len, sc_remote_record *rec)
{
	const char *p = buf, *end = p + len;
	unsigned seen = 0;
	int first = 1;

	if (len > SC_REMOTE_RECORD_MAX)
		return SC_REMOTE_ERECORD;
	memset(rec, 0, sizeof(*rec));
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p)), *sp;
		size_t line_len, name_len, vlen;
		const char *v;

		if (!nl)
			return SC_REMOTE_ERECORD; /* every line ends with \n: a cut record fails */
		line_len = (size_t)(nl - p);
		if (first) {
			if (line_len != strlen(RECORD_MAGIC) || memcmp(p, RECORD_MAGIC, line_len) != 0)
				return SC_REMOTE_ERECORD;
			first = 0;
			p = nl + 1;
			continue;
		}
		sp = memchr(p, ' ', line_len);
		if (!sp || sp == p)
			return SC_REMOTE_ERECORD;
		name_len = (size_t)(sp - p);
		v = sp + 1;
		vlen = (size_t)(nl - v);
#define IS(name) (name_len == strlen(name) && memcmp(p, name, name_len) == 0)
		if (IS("key")) {
			if ((seen & 1) || unhex(v, vlen, rec->key) != 0)
				return SC_REMOTE_ERECORD;
			seen |= 1;
		} else if (IS("blob-sha256")) {
			if ((seen & 2) || unhex(v, vlen, rec->blob_sha256) != 0)
				return SC_REMOTE_ERECORD;
			seen |= 2;
		} else if (IS("blob-size")) {
			if ((seen & 4) || parse_u64(v, vlen, &rec->blob_size) != 0 ||
			    rec->blob_size > SC_MAX_BLOB)
				return SC_REMOTE_ERECORD;
			seen |= 4;
		} else {
			size_t i;
			/* An unknown field: a name of [a-z0-9-], skipped. */
			for (i = 0; i < name_len; i++)
				if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= '0' && p[i] <= '9') ||
				      p[i] == '-'))
					return SC_REMOTE_ERECORD;
		}
#undef IS
		p = nl + 1;
	}
	return !first && seen == 7 ? 0 : SC_REMOTE_ERECORD;
}
