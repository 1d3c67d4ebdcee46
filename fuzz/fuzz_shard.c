/*
 * fuzz_shard.c - arbitrary bytes as a shard, read-only: sc_open(SC_RDONLY),
 * sc_foreach, sc_lookup and sc_get of the keys found and of a few fixed
 * ones, sc_get_stats, sc_verify.
 *
 * The library promises that a hostile file causes misses and error codes,
 * never a crash, and that it never touches the mapping past the file's end
 * (that would be SIGBUS: the file is not truncated during a run, so any
 * SIGBUS here is a bug).  Every pointer it hands out is read to the last
 * byte (fuzz_touch) so that an out-of-file pointer faults inside the run.
 *
 * Invariants checked on top of "no crash":
 *  - every return code is 0, an SC_E* code or -errno;
 *  - sc_lookup() returns the key asked for; its strings and blob lie in
 *    readable memory; sc_get() hits return the bytes sc_lookup() described
 *    (same pointer, size) and their XXH3-128 is the recorded blob_id;
 *  - blobs are SC_BLOB_ALIGN-aligned; keys are 1..SC_MAX_KEY bytes; only
 *    an entry with a source has a source hash;
 *  - sc_get_stats() reports the file's real size;
 *  - when sc_verify() says the shard is sound, sc_foreach() saw exactly
 *    the entries the meta counts.
 */
#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "fuzz.h"
#include "scriptcache.h"

const char fuzz_target_name[] = "fuzz_shard";

#define MAX_KEYS 8

struct seen {
	char *keys[MAX_KEYS];
	size_t n_keys;
	unsigned long entries;
};

static void check_entry(const sc_entry_info *e)
{
	if (e->key_len == 0 || e->key_len > SC_MAX_KEY)
		fuzz_fail("entry key length %zu", e->key_len);
	if ((uintptr_t)e->blob % SC_BLOB_ALIGN)
		fuzz_fail("blob at %p is not %d-aligned", e->blob, SC_BLOB_ALIGN);
	if (e->blob_size > SC_MAX_BLOB)
		fuzz_fail("blob of %llu bytes", (unsigned long long)e->blob_size);
	fuzz_touch(e->key, e->key_len);
	fuzz_touch(e->tag, e->tag_len);
	fuzz_touch(e->exe_id, e->exe_id_len);
	fuzz_touch(e->exe_path, e->exe_path_len);
	fuzz_touch(e->blob, (size_t)e->blob_size);
}

static int collect(const sc_entry_info *e, void *arg)
{
	struct seen *s = arg;

	check_entry(e);
	s->entries++;
	if (s->n_keys < MAX_KEYS) {
		char *k = malloc(e->key_len + 1);
		if (!k)
			abort();
		memcpy(k, e->key, e->key_len);
		k[e->key_len] = '\0';
		s->keys[s->n_keys++] = k;
	}
	return 0;
}

static void on_problem(void *arg, uint64_t offset, const char *problem)
{
	(void)offset;
	*(size_t *)arg += strlen(problem);
}

static void probe_key(sc_cache *c, const char *key, struct fuzz_outcome *o)
{
	sc_entry_info e;
	XXH128_hash_t id;
	sc_blob b;
	int rc;

	rc = sc_lookup(c, key, &e);
	if (!fuzz_known_rc(rc))
		fuzz_fail("sc_lookup returned %d", rc);
	if (rc != 0) {
		if (rc == SC_ECORRUPT)
			o->corrupt++;
		return;
	}
	if (e.key_len != strlen(key) || memcmp(e.key, key, e.key_len) != 0)
		fuzz_fail("sc_lookup(\"%s\") returned another key", key);
	check_entry(&e);
	/* A tag-less sc_get() opens the writer's executable named by the
	 * entry to check its identity, and may hash the source the key
	 * names: only let it open harmless paths. */
	if (!fuzz_entry_safe(&e))
		return;
	rc = sc_get(c, key, &b);
	if (!fuzz_known_rc(rc))
		fuzz_fail("sc_get returned %d", rc);
	if (rc == SC_ECORRUPT)
		o->corrupt++;
	if (rc != 0)
		return;
	o->hits++;
	if (b.data != e.blob || b.size != e.blob_size)
		fuzz_fail("sc_get(\"%s\") and sc_lookup disagree on the blob", key);
	id = XXH3_128bits(b.data, b.size);
	if (id.low64 != e.blob_id[0] || id.high64 != e.blob_id[1])
		fuzz_fail("sc_get(\"%s\") hit with a blob that fails its id", key);
}

int fuzz_run(const uint8_t *data, size_t size, struct fuzz_outcome *o)
{
	static const char *const fixed[] = {
		"/fuzz/a", "/usr/share/fuzz/b.lua", "/fuzz/c", "/fuzz/c-twin", "/fuzz/gone", "",
	};
	struct seen s = { .n_keys = 0 };
	sc_cache *c = NULL;
	sc_stats st;
	size_t problems = 0;
	uint64_t checked = 0;
	int rc;

	data = fuzz_image(data, size, &size);
	memset(o, 0, sizeof(*o));
	o->shard_target = 1;
	o->verify_rc = 1;
	fuzz_write_scratch(data, size);
	rc = sc_open(&c, fuzz_scratch_path(), NULL, SC_RDONLY | SC_NOCREATE | SC_IGNORE_ENV);
	o->open_rc = rc;
	if (!fuzz_known_rc(rc))
		fuzz_fail("sc_open returned %d", rc);
	if (rc != 0) {
		if (c)
			fuzz_fail("sc_open failed but left a handle");
		return 0;
	}

	rc = sc_foreach(c, collect, &s);
	if (!fuzz_known_rc(rc))
		fuzz_fail("sc_foreach returned %d", rc);
	o->entries = s.entries;
	for (size_t i = 0; i < s.n_keys; i++)
		probe_key(c, s.keys[i], o);
	for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
		probe_key(c, fixed[i], o);

	rc = sc_get_stats(c, &st);
	if (!fuzz_known_rc(rc))
		fuzz_fail("sc_get_stats returned %d", rc);
	/* A version 1 file is read as an empty version 2 image; the stats
	 * still give the file's size. */
	if (rc == 0 && st.file_size != size)
		fuzz_fail("stats say %llu bytes, the file has %zu",
			  (unsigned long long)st.file_size, size);

	rc = sc_verify(c, on_problem, &problems, &checked);
	o->verify_rc = rc;
	if (!fuzz_known_rc(rc))
		fuzz_fail("sc_verify returned %d", rc);
	if (rc == 0 && problems)
		fuzz_fail("sc_verify reported problems but returned 0");
	if (rc == SC_ECORRUPT && !problems)
		fuzz_fail("sc_verify returned SC_ECORRUPT without naming a problem");
	if (rc == 0 && sc_get_stats(c, &st) == 0 && st.entries != s.entries)
		fuzz_fail("sound shard: meta counts %llu entries, sc_foreach saw %lu",
			  (unsigned long long)st.entries, s.entries);

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
