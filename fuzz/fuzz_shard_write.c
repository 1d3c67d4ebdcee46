/*
 * fuzz_shard_write.c - arbitrary bytes as a shard opened read-write:
 * sc_put_ex (new key and replacing a key found in the file), sc_remove,
 * sc_compact, a size limit that evicts, sc_evict_stale, sc_clear, then
 * sc_verify of the result.  The file is the scratch copy, so the library
 * may write to it as it likes.
 *
 * Invariants on top of "no crash, no hang" (libFuzzer -timeout):
 *  - every return code is 0, an SC_E* code or -errno;
 *  - a put that returned 0 is visible: sc_get() returns exactly its bytes
 *    (unless the shard held several records for that key, which a hostile
 *    index can order so that a probe finds another one first);
 *  - after a successful compaction (or clear) the shard is sound:
 *    sc_verify() returns 0, and the key put before is still there.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "format.h"
#include "fuzz.h"
#include "scriptcache.h"

const char fuzz_target_name[] = "fuzz_shard_write";

#define NEW_KEY "/fuzz/new-key-put-by-the-write-target"
#define MAX_KEYS 4

struct seen {
	char *keys[MAX_KEYS];
	size_t n_keys;
	unsigned copies[MAX_KEYS]; /* records seen with that key */
	int new_key_present; /* the file already has records for NEW_KEY */
	int exe_unsafe;      /* some record names an executable we must not open */
};

static int collect(const sc_entry_info *e, void *arg)
{
	struct seen *s = arg;

	fuzz_touch(e->key, e->key_len);
	fuzz_touch(e->blob, (size_t)e->blob_size);
	if (e->key_len == strlen(NEW_KEY) && memcmp(e->key, NEW_KEY, e->key_len) == 0)
		s->new_key_present = 1;
	if (!fuzz_exe_path_safe(e->exe_path, e->exe_path_len))
		s->exe_unsafe = 1;
	for (size_t i = 0; i < s->n_keys; i++)
		if (strlen(s->keys[i]) == e->key_len && memcmp(s->keys[i], e->key, e->key_len) == 0)
			s->copies[i]++;
	if (s->n_keys < MAX_KEYS && !memchr(e->key, '\0', e->key_len)) {
		s->copies[s->n_keys] = 1;
		char *k = malloc(e->key_len + 1);
		if (!k)
			abort();
		memcpy(k, e->key, e->key_len);
		k[e->key_len] = '\0';
		s->keys[s->n_keys++] = k;
	}
	return 0;
}

static void rc_ok(const char *what, int rc)
{
	if (!fuzz_known_rc(rc))
		fuzz_fail("%s returned %d", what, rc);
}

/* The blob must come back byte for byte. */
static void expect_hit(sc_cache *c, const char *key, const void *blob, size_t len,
		       const char *when)
{
	sc_blob b;
	int rc = sc_get(c, key, &b);

	if (rc != 0)
		fuzz_fail("%s: sc_get(\"%s\") missed: %s", when, key, sc_strerror(rc));
	if (b.size != len || memcmp(b.data, blob, len) != 0)
		fuzz_fail("%s: sc_get(\"%s\") returned other bytes", when, key);
}

static void expect_sound(sc_cache *c, const char *when)
{
	uint64_t n = 0;
	int rc = sc_verify(c, NULL, NULL, &n);

	if (rc != 0)
		fuzz_fail("%s: sc_verify says %s", when, sc_strerror(rc));
}

int fuzz_run(const uint8_t *data, size_t size, struct fuzz_outcome *o)
{
	struct seen s = { .n_keys = 0 };
	sc_put_opts po = { .no_source = 1 };
	unsigned char blob[512];
	uint64_t h = XXH3_64bits(data, size), n = 0;
	size_t blob_len = 1 + (size_t)(h >> 8) % sizeof(blob);
	int limited = (h & 3) == 1, put_ok = 0, rc;
	sc_cache *c = NULL;

	memset(o, 0, sizeof(*o));
	for (size_t i = 0; i < blob_len; i++)
		blob[i] = (unsigned char)(h >> (i % 64)) ^ (unsigned char)i;
	fuzz_write_scratch(data, size);
	rc = sc_open(&c, fuzz_scratch_path(), "fuzz", SC_NOSYNC | SC_NOCREATE | SC_IGNORE_ENV);
	o->open_rc = rc;
	rc_ok("sc_open", rc);
	if (rc != 0)
		return 0;
	if (limited) /* every put goes over the limit: eviction by age */
		sc_set_max_size(c, 16384);

	rc_ok("sc_foreach", sc_foreach(c, collect, &s));

	rc = sc_put_ex(c, NEW_KEY, blob, blob_len, &po);
	rc_ok("sc_put_ex", rc);
	put_ok = rc == 0 && !s.new_key_present && !limited;
	if (put_ok)
		expect_hit(c, NEW_KEY, blob, blob_len, "after a put of a new key");

	if (s.n_keys > 0) {
		rc = sc_put_ex(c, s.keys[0], blob, blob_len / 2, &po);
		rc_ok("sc_put_ex (replace)", rc);
		/* with several records for the key (a hostile index), a grown
		 * table may put another one first in the probe run */
		if (rc == 0 && !limited && s.copies[0] == 1)
			expect_hit(c, s.keys[0], blob, blob_len / 2, "after replacing a key");
	}
	if (s.n_keys > 1) {
		sc_entry_info before, after;
		int had = sc_lookup(c, s.keys[1], &before) == 0;
		uint64_t at = had ? before.offset : 0;

		rc = sc_remove(c, s.keys[1]);
		rc_ok("sc_remove", rc);
		/* the record it removed must be gone (unless several slots or
		 * records carry the key, as a hostile index may arrange) */
		if (rc == 0 && had && s.copies[1] == 1 &&
		    sc_lookup(c, s.keys[1], &after) == 0 && after.offset == at)
			fuzz_fail("after sc_remove(\"%s\") returned 0 the record is still found",
				  s.keys[1]);
	}
	rc_ok("sc_remove (absent)", sc_remove(c, "/fuzz/never-stored"));

	rc = sc_compact(c);
	rc_ok("sc_compact", rc);
	if (rc == 0) {
		expect_sound(c, "after sc_compact");
		if (put_ok)
			expect_hit(c, NEW_KEY, blob, blob_len, "after sc_compact");
	}
	if (!s.exe_unsafe && (h & 4)) {
		/* opens every record's writer executable: only with safe paths */
		rc = sc_evict_stale(c, &n);
		rc_ok("sc_evict_stale", rc);
		if (rc == 0)
			expect_sound(c, "after sc_evict_stale");
	}
	if ((h & 24) == 8) {
		rc = sc_clear(c);
		rc_ok("sc_clear", rc);
		if (rc == 0) {
			expect_sound(c, "after sc_clear");
			rc = sc_put_ex(c, NEW_KEY, blob, blob_len, &po);
			rc_ok("sc_put_ex after sc_clear", rc);
			if (rc == 0)
				expect_hit(c, NEW_KEY, blob, blob_len, "after sc_clear and a put");
		}
	}

	for (size_t i = 0; i < s.n_keys; i++)
		free(s.keys[i]);
	sc_close(c);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_outcome o;
	return fuzz_run(data, size, &o);
}
