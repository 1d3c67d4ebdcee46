/*
 * fuzz_shard_write.c - arbitrary bytes as a shard opened read-write:
 * sc_put_ex (a new key; a second key with the same bytes, which shares the
 * stored blob; a key with a source and its hash; a key found in the file
 * replaced, sometimes by bytes already stored), sc_remove (a key found in
 * the file, the twin), sc_compact, a size limit that evicts,
 * sc_evict_stale, sc_clear, then sc_verify of the result.  The file is the
 * scratch copy, so the library may write to it as it likes.
 *
 * Invariants on top of "no crash, no hang" (libFuzzer -timeout):
 *  - every return code is 0, an SC_E* code or -errno;
 *  - a put that returned 0 is visible: sc_get() returns exactly its bytes
 *    (unless the shard held several records for that key, which a hostile
 *    index can order so that a probe finds another one first); two keys
 *    put with the same bytes report the same blob_id; a put with the
 *    source's bytes records their XXH3-128;
 *  - a removed key's entry is gone, and removing one of two keys that
 *    share a blob leaves the other whole;
 *  - a shard that sc_verify() finds sound before the writes stays sound
 *    after each of them (the blob index reference counts, the meta's
 *    counts and sizes, the redo records of every commit);
 *  - after a successful compaction (or clear) the shard is sound:
 *    sc_verify() returns 0, the keys put before are still there, with
 *    their source hash, and the removed twin is not.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <xxhash.h>

#include "format.h"
#include "fuzz.h"
#include "scriptcache.h"

const char fuzz_target_name[] = "fuzz_shard_write";

#define NEW_KEY  FUZZ_NEW_KEY
#define TWIN_KEY "/fuzz/twin-of-the-new-key"
#define SRC_KEY  "/fuzz/src-key-put-by-the-write-target.lua"
#define MAX_KEYS 4

struct seen {
	char *keys[MAX_KEYS];
	size_t n_keys;
	unsigned copies[MAX_KEYS]; /* records seen with that key */
	int ours_present;    /* the file already has records for one of our keys */
	int exe_unsafe;      /* some entry names a path we must not open */
};

static int is_key(const sc_entry_info *e, const char *key)
{
	return e->key_len == strlen(key) && memcmp(e->key, key, e->key_len) == 0;
}

struct tail_arg {
	const uint8_t *d;
	size_t n;
	uint64_t t0, t1;
	int hit;
};

static int tail_overlaps(uint64_t t0, uint64_t t1, uint64_t off, uint64_t len);

/* Does the entry, or its blob, lie in the chunk's free tail? */
static int tail_entry(const sc_entry_info *e, void *arg)
{
	struct tail_arg *ta = arg;
	struct sc_disk_entry r;

	if (e->offset > ta->n || ta->n - e->offset < sizeof(r))
		return 0;
	memcpy(&r, ta->d + e->offset, sizeof(r));
	ta->hit |= tail_overlaps(ta->t0, ta->t1, e->offset, r.rec_len) ||
		   tail_overlaps(ta->t0, ta->t1, r.blob_off, r.blob_len);
	return 0;
}

static int collect(const sc_entry_info *e, void *arg)
{
	struct seen *s = arg;

	fuzz_touch(e->key, e->key_len);
	fuzz_touch(e->blob, (size_t)e->blob_size);
	if (is_key(e, NEW_KEY) || is_key(e, TWIN_KEY) || is_key(e, SRC_KEY))
		s->ours_present = 1;
	if (!fuzz_entry_safe(e))
		s->exe_unsafe = 1;
	for (size_t i = 0; i < s->n_keys; i++)
		if (is_key(e, s->keys[i]))
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

/*
 * SC_FUZZ_SKIP_KNOWN=1 (fuzz/run.sh sets it) steers around the core bugs
 * already reported in fuzz/corpus/pending-write/, so that a long run keeps
 * looking for new ones instead of stopping at the first known one.  It
 * reads the raw image, trusting nothing.  Open:
 *  - the free tail of a meta's current metadata chunk, [chunk_off +
 *    chunk_used, chunk_off + chunk_len), lies over committed bytes (an
 *    entry, a blob, the key or blob index): the next put writes its entry
 *    record there, over them, and sc_verify does not look (it calls the
 *    shard sound); over a table, the slot writes of later commits then
 *    land on that new entry record, and a put that returned 0 is lost
 *    (skip "a sound shard stays sound" and the visibility checks).
 */
static int tail_overlaps(uint64_t t0, uint64_t t1, uint64_t off, uint64_t len)
{
	return len && off < t1 && (off + len < off || off + len > t0);
}

static int known_chunk_tail(const uint8_t *d, size_t n, sc_cache *c)
{
	const char *env = getenv("SC_FUZZ_SKIP_KNOWN");
	struct tail_arg ta;

	if (!env || strcmp(env, "1") != 0)
		return 0;
	for (int i = 0; i < SC_META_SLOTS; i++) {
		struct sc_disk_meta m;
		uint64_t off = sc_meta_off(i);

		if (n < off + sizeof(m))
			continue;
		memcpy(&m, d + off, sizeof(m));
		if (m.checksum != XXH3_64bits(&m, offsetof(struct sc_disk_meta, checksum)) ||
		    !m.chunk_off || m.chunk_len < m.chunk_used || m.chunk_off > UINT64_MAX - m.chunk_len)
			continue;
		ta.t0 = m.chunk_off + m.chunk_used;
		ta.t1 = m.chunk_off + m.chunk_len;
		if (ta.t0 == ta.t1)
			continue;
		if (m.index_slots <= UINT64_MAX / 16 &&
		    tail_overlaps(ta.t0, ta.t1, m.index_off, m.index_slots * 16))
			return 1;
		if (m.blob_slots <= UINT64_MAX / 32 &&
		    tail_overlaps(ta.t0, ta.t1, m.blobs_off, m.blob_slots * 32))
			return 1;
		ta.d = d;
		ta.n = n;
		ta.hit = 0;
		sc_foreach(c, tail_entry, &ta);
		if (ta.hit)
			return 1;
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

/* The entry put for SRC_KEY: a source, and the XXH3-128 of its bytes. */
static void expect_source_hash(sc_cache *c, const void *src, size_t len, const char *when)
{
	XXH128_hash_t id = XXH3_128bits(src, len);
	sc_entry_info e;
	int rc = sc_lookup(c, SRC_KEY, &e);

	if (rc != 0)
		fuzz_fail("%s: sc_lookup(\"%s\") missed: %s", when, SRC_KEY, sc_strerror(rc));
	if (!e.has_source || !e.has_source_hash || e.source_size != len ||
	    e.source_hash[0] != id.low64 || e.source_hash[1] != id.high64)
		fuzz_fail("%s: \"%s\" lost its source or its hash", when, SRC_KEY);
}

int fuzz_run(const uint8_t *input, size_t input_size, struct fuzz_outcome *o)
{
	static const char src[] = "-- the source of the key put with its bytes\nreturn 42\n";
	struct seen s = { .n_keys = 0 };
	sc_put_opts po = { .no_source = 1 };
	unsigned char blob[512];
	size_t size;
	const uint8_t *data = fuzz_image(input, input_size, &size);
	uint64_t h = XXH3_64bits(data, size), n = 0;
	size_t blob_len = 1 + (size_t)(h >> 8) % sizeof(blob);
	int limited = (h & 3) == 1, put_ok = 0, twin_ok = 0, src_ok = 0, sound, known, rc;
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
	known = known_chunk_tail(data, size, c);
	/* Sound to begin with (verify hashes every blob: only small files) */
	sound = !limited && !known && size <= (1u << 20) && sc_verify(c, NULL, NULL, NULL) == 0;

	rc = sc_put_ex(c, NEW_KEY, blob, blob_len, &po);
	rc_ok("sc_put_ex", rc);
	put_ok = rc == 0 && !s.ours_present && !limited && !known;
	if (put_ok)
		expect_hit(c, NEW_KEY, blob, blob_len, "after a put of a new key");
	if (put_ok && sound)
		expect_sound(c, "after a put of a new key into a sound shard");

	/* The same bytes again: one stored blob, two entries. */
	rc = sc_put_ex(c, TWIN_KEY, blob, blob_len, &po);
	rc_ok("sc_put_ex (twin)", rc);
	twin_ok = rc == 0 && put_ok;
	if (twin_ok) {
		sc_entry_info a, b;
		expect_hit(c, TWIN_KEY, blob, blob_len, "after a put of the same bytes");
		if (sc_lookup(c, NEW_KEY, &a) != 0 || sc_lookup(c, TWIN_KEY, &b) != 0 ||
		    a.blob_id[0] != b.blob_id[0] || a.blob_id[1] != b.blob_id[1])
			fuzz_fail("two keys put with the same bytes report other blob ids");
		if (sound)
			expect_sound(c, "after a put of the same bytes into a sound shard");
	}

	{
		struct stat st;
		sc_put_opts so = { .source = &st, .source_bytes = src, .source_len = sizeof(src) - 1 };
		memset(&st, 0, sizeof(st));
		st.st_mode = S_IFREG | 0644;
		st.st_size = (off_t)(sizeof(src) - 1);
		st.st_mtim.tv_sec = 1700000000;
		rc = sc_put_ex(c, SRC_KEY, blob, blob_len / 3, &so);
		rc_ok("sc_put_ex (with the source's bytes)", rc);
		src_ok = rc == 0 && put_ok;
		if (src_ok)
			expect_source_hash(c, src, sizeof(src) - 1, "after a put with the source's bytes");
	}

	if (s.n_keys > 0) {
		/* by bytes already stored, sometimes: a share and a release
		 * in one commit */
		size_t len = (h & 32) ? blob_len : blob_len / 2;
		rc = sc_put_ex(c, s.keys[0], blob, len, &po);
		rc_ok("sc_put_ex (replace)", rc);
		/* with several records for the key (a hostile index), a grown
		 * table may put another one first in the probe run */
		if (rc == 0 && !limited && !known && s.copies[0] == 1)
			expect_hit(c, s.keys[0], blob, len, "after replacing a key");
		if (rc == 0 && sound && s.copies[0] == 1)
			expect_sound(c, "after replacing a key of a sound shard");
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
		if (rc == 0 && sound && s.copies[1] == 1)
			expect_sound(c, "after removing a key of a sound shard");
	}
	rc_ok("sc_remove (absent)", sc_remove(c, "/fuzz/never-stored"));
	if (twin_ok) {
		rc = sc_remove(c, TWIN_KEY);
		rc_ok("sc_remove (twin)", rc);
		if (rc == 0) {
			sc_entry_info e;
			if (sc_lookup(c, TWIN_KEY, &e) == 0)
				fuzz_fail("after sc_remove of the twin returned 0 it is still found");
			expect_hit(c, NEW_KEY, blob, blob_len, "after removing the twin");
			if (sound)
				expect_sound(c, "after removing one of two keys sharing a blob");
		} else {
			twin_ok = 0;
		}
	}

	rc = sc_compact(c);
	rc_ok("sc_compact", rc);
	if (rc == 0) {
		expect_sound(c, "after sc_compact");
		if (put_ok)
			expect_hit(c, NEW_KEY, blob, blob_len, "after sc_compact");
		if (src_ok)
			expect_source_hash(c, src, sizeof(src) - 1, "after sc_compact");
		if (twin_ok) {
			sc_entry_info e;
			if (sc_lookup(c, TWIN_KEY, &e) == 0)
				fuzz_fail("after sc_compact the removed twin is back");
		}
	}
	if (!s.exe_unsafe && (h & 4)) {
		/* opens every entry's writer executable (and may hash its
		 * source): only with safe paths */
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
