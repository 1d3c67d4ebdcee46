/*
 * test_api.c - unit tests of every public function of libscriptcache.
 */
#include <pwd.h>
#include <stdint.h>
#include <sys/mman.h>

#include "testutil.h"

#define TAG "test-api tag 1"

static sc_cache *open_ok(const char *path, const char *tag, unsigned flags)
{
	sc_cache *c = (sc_cache *)1;
	int rc = sc_open(&c, path, tag, flags);
	if (rc != 0) {
		tap_diag("sc_open(%s) = %d (%s)", path, rc, sc_strerror(rc));
		TU_CHECK(c == NULL);
		return NULL;
	}
	TU_CHECK(c != NULL);
	return c;
}

/* Create a source file with the given content; returns its path. */
static const char *make_source(const char *name, const char *content)
{
	mkdir(tu_path("src"), 0755);
	const char *p = tu_path("src/%s", name);
	tu_write_str(p, content);
	return p;
}

static int blob_is(const sc_blob *b, const void *want, size_t len)
{
	return b->size == len && (len == 0 || memcmp(b->data, want, len) == 0);
}

/* ---------------------------------------------------------------------- */

static void test_open_create(void)
{
	const char *shard = tu_path("new/a/b/x.shard");
	sc_cache *c = NULL;
	int rc = sc_open(&c, shard, TAG, 0);
	TAP_EQ(rc, 0, "open creates missing directories and the shard");
	if (!c)
		return;
	struct stat st;
	int dirs_ok = 1;
	const char *dirs[] = { "new", "new/a", "new/a/b" };
	for (int i = 0; i < 3; i++) {
		if (stat(tu_path("%s", dirs[i]), &st) || !S_ISDIR(st.st_mode) ||
		    (st.st_mode & 07777) != 0700) {
			tap_diag("%s mode %o", dirs[i], (unsigned)(st.st_mode & 07777));
			dirs_ok = 0;
		}
	}
	tap_ok(dirs_ok, "created directories are 0700");
	TAP_EQ(stat(shard, &st), 0, "shard file exists");
	TAP_EQ(st.st_mode & 07777, 0600, "shard is 0600");
	tap_ok(S_ISREG(st.st_mode), "shard is a regular file");
	tap_ok(strcmp(sc_path(c), shard) == 0, "sc_path is the canonical path (%s)",
	       sc_path(c));
	TAP_EQ(sc_disabled(c), 0, "not disabled");

	sc_stats s;
	TAP_EQ(sc_get_stats(c, &s), 0, "stats of a new shard");
	TAP_EQ(s.entries, 0, "new shard has no entries");
	TAP_EQ(s.file_size, st.st_size, "stats file_size matches stat");
	sc_close(c);

	/* reopen an existing shard; an existing directory keeps its mode */
	TU_CHECK(mkdir(tu_path("existing"), 0755) == 0);
	c = open_ok(tu_path("existing/y.shard"), TAG, 0);
	tap_ok(c != NULL, "open in an existing directory");
	TAP_EQ(stat(tu_path("existing"), &st), 0, "existing dir still there");
	TAP_EQ(st.st_mode & 07777, 0755, "existing directory mode untouched");
	sc_close(c);
	c = open_ok(shard, TAG, 0);
	tap_ok(c != NULL, "reopen existing shard");
	sc_close(c);

	sc_close(NULL);
	tap_ok(1, "sc_close(NULL) is harmless");

	/* a directory where the shard should be: error, out set to NULL */
	c = (sc_cache *)1;
	rc = sc_open(&c, tu_path("existing"), TAG, 0);
	tap_ok(rc < 0 && c == NULL, "opening a directory fails (%d %s), out NULL",
	       rc, sc_strerror(rc));
	sc_close(c);

	/* a relative path is resolved (sc_path is canonical once it exists) */
	char cwd[PATH_MAX];
	TU_CHECK(getcwd(cwd, sizeof cwd));
	TU_CHECK(chdir(tu_path("existing")) == 0);
	c = open_ok("rel.shard", TAG, 0);
	TU_CHECK(chdir(cwd) == 0);
	tap_ok(c != NULL, "open with a relative path");
	if (c) {
		tap_ok(strcmp(sc_path(c), tu_path("existing/rel.shard")) == 0,
		       "relative path canonicalized (%s)", sc_path(c));
		sc_close(c);
	}
}

static void test_insecure(void)
{
	const char *shard = tu_path("insecure.shard");
	sc_cache *c = open_ok(shard, TAG, 0);
	TU_CHECK(c);
	sc_close(c);
	TU_CHECK(chmod(shard, 0666) == 0);
	c = (sc_cache *)1;
	int rc = sc_open(&c, shard, TAG, 0);
	TAP_EQ(rc, SC_EINSECURE, "world-writable shard is SC_EINSECURE");
	tap_ok(c == NULL, "out is NULL after SC_EINSECURE");
	TU_CHECK(chmod(shard, 0620) == 0);
	rc = sc_open(&c, shard, TAG, SC_RDONLY);
	TAP_EQ(rc, SC_EINSECURE, "group-writable shard is SC_EINSECURE (even read-only)");
	TU_CHECK(chmod(shard, 0600) == 0);
	if (geteuid() == 0) {
		TU_CHECK(chown(shard, 65534, 65534) == 0);
		rc = sc_open(&c, shard, TAG, 0);
		TAP_EQ(rc, SC_EINSECURE, "shard owned by another user is SC_EINSECURE");
		sc_close(c);
	} else {
		tap_diag("not root: ownership check not exercised");
	}
}

static void test_put_get(void)
{
	sc_cache *c = open_ok(tu_path("pg.shard"), TAG, 0);
	TU_CHECK(c);
	const char *k1 = make_source("one.lua", "print(1)\n");
	const char *k2 = make_source("two.lua", "print(2)\n");
	sc_blob b = { 0 };

	TAP_EQ(sc_get(c, k1, &b), SC_ENOTFOUND, "get before put misses with SC_ENOTFOUND");
	TAP_EQ(sc_put(c, k1, "hello", 5), 0, "put");
	TAP_EQ(sc_get(c, k1, &b), 0, "get after put hits");
	tap_ok(blob_is(&b, "hello", 5), "round trip bytes");
	TAP_EQ(sc_get(c, k2, &b), SC_ENOTFOUND, "other key still misses");

	/* alignment, for many sizes including 0 */
	static const size_t sizes[] = { 0, 1, 7, 63, 64, 65, 127, 128, 1000, 4095, 4096, 70001 };
	unsigned char *buf = malloc(80000);
	TU_CHECK(buf);
	int aligned = 1, exact = 1;
	for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
		char name[32];
		snprintf(name, sizeof name, "align%zu.lua", i);
		const char *k = make_source(name, name);
		for (size_t j = 0; j < sizes[i]; j++)
			buf[j] = (unsigned char)(j * 7 + i);
		int rc = sc_put(c, k, buf, sizes[i]);
		if (rc) {
			tap_diag("put size %zu: %s", sizes[i], sc_strerror(rc));
			exact = 0;
			continue;
		}
		sc_blob g = { 0 };
		if (sc_get(c, k, &g) || !blob_is(&g, buf, sizes[i])) {
			tap_diag("size %zu: wrong bytes back", sizes[i]);
			exact = 0;
		}
		if ((uintptr_t)g.data % SC_BLOB_ALIGN) {
			tap_diag("size %zu: blob at %p not %d-aligned", sizes[i], g.data,
				 SC_BLOB_ALIGN);
			aligned = 0;
		}
	}
	tap_ok(exact, "blobs of sizes 0..70001 round trip");
	tap_ok(aligned, "every blob is SC_BLOB_ALIGN-aligned");
	free(buf);

	/* replace */
	sc_stats s0, s1;
	TU_CHECK(sc_get_stats(c, &s0) == 0);
	TAP_EQ(sc_put(c, k1, "goodbye!", 8), 0, "replace");
	TAP_EQ(sc_get(c, k1, &b), 0, "get after replace");
	tap_ok(blob_is(&b, "goodbye!", 8), "replace gives the new bytes");
	TU_CHECK(sc_get_stats(c, &s1) == 0);
	TAP_EQ(s1.entries, s0.entries, "replace keeps the entry count");
	tap_ok(s1.dead_bytes > s0.dead_bytes, "replace adds dead bytes (%llu -> %llu)",
	       (unsigned long long)s0.dead_bytes, (unsigned long long)s1.dead_bytes);
	tap_ok(s1.generation > s0.generation, "a commit bumps the generation");

	/* remove */
	TAP_EQ(sc_remove(c, k1), 0, "remove");
	TAP_EQ(sc_get(c, k1, &b), SC_ENOTFOUND, "get after remove misses");
	TAP_EQ(sc_remove(c, k1), SC_ENOTFOUND, "second remove is SC_ENOTFOUND");
	TAP_EQ(sc_remove(c, "/no/such/key"), SC_ENOTFOUND, "remove of unknown key");
	TU_CHECK(sc_get_stats(c, &s1) == 0);
	TAP_EQ(s1.entries, s0.entries - 1, "remove decrements entries");
	TAP_EQ(sc_put(c, k1, "again", 5), 0, "put after remove");
	TAP_EQ(sc_get(c, k1, &b), 0, "hit after re-put");
	tap_ok(blob_is(&b, "again", 5), "re-put bytes");

	/* another handle on the same shard sees everything */
	sc_cache *c2 = open_ok(tu_path("pg.shard"), TAG, SC_RDONLY);
	TU_CHECK(c2);
	TAP_EQ(sc_get(c2, k1, &b), 0, "second handle sees the entry");
	tap_ok(blob_is(&b, "again", 5), "second handle bytes");
	sc_close(c2);

	/* clear */
	TAP_EQ(sc_clear(c), 0, "clear");
	TU_CHECK(sc_get_stats(c, &s1) == 0);
	TAP_EQ(s1.entries, 0, "no entries after clear");
	TAP_EQ(sc_get(c, k1, &b), SC_ENOTFOUND, "k1 gone after clear");
	TAP_EQ(sc_get(c, make_source("align3.lua", "align3.lua"), &b), SC_ENOTFOUND,
	       "other keys gone after clear");
	TAP_EQ(sc_put(c, k2, "two", 3), 0, "put after clear");
	TAP_EQ(sc_get(c, k2, &b), 0, "hit after clear+put");
	sc_close(c);

	/* too big */
	c = open_ok(tu_path("pg.shard"), TAG, 0);
	TU_CHECK(c);
	char *longkey = malloc(SC_MAX_KEY + 2);
	TU_CHECK(longkey);
	longkey[0] = '/';
	memset(longkey + 1, 'k', SC_MAX_KEY);
	longkey[SC_MAX_KEY + 1] = 0;
	sc_put_opts o = { .no_source = 1 };
	TAP_EQ(sc_put_ex(c, longkey, "x", 1, &o), SC_ETOOBIG, "key longer than SC_MAX_KEY");
	longkey[SC_MAX_KEY] = 0; /* exactly SC_MAX_KEY bytes */
	TAP_EQ(sc_put_ex(c, longkey, "x", 1, &o), 0, "key of exactly SC_MAX_KEY bytes");
	TAP_EQ(sc_get(c, longkey, &b), 0, "longest key hits");
	free(longkey);
	size_t huge = (size_t)SC_MAX_BLOB + 1;
	void *m = mmap(NULL, huge, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	TU_CHECK(m != MAP_FAILED);
	TAP_EQ(sc_put_ex(c, "/big", m, huge, &o), SC_ETOOBIG, "blob larger than SC_MAX_BLOB");
	munmap(m, huge);
	TAP_EQ(sc_get(c, "/big", &b), SC_ENOTFOUND, "nothing stored for the too-big blob");
	sc_close(c);
}

static void test_compact(void)
{
	sc_cache *c = open_ok(tu_path("compact.shard"), TAG, SC_NOSYNC);
	TU_CHECK(c);
	unsigned char buf[3000];
	char key[64];
	sc_put_opts o = { .no_source = 1 };
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "/compact/%d", i);
		size_t n = tu_blob_make(buf, key, 1, 100 + i * 50);
		TU_CHECK(sc_put_ex(c, key, buf, n, &o) == 0);
	}
	for (int i = 0; i < 40; i += 2) { /* replace half */
		snprintf(key, sizeof key, "/compact/%d", i);
		size_t n = tu_blob_make(buf, key, 2, 120 + i * 50);
		TU_CHECK(sc_put_ex(c, key, buf, n, &o) == 0);
	}
	for (int i = 1; i < 10; i += 2) { /* remove a few */
		snprintf(key, sizeof key, "/compact/%d", i);
		TU_CHECK(sc_remove(c, key) == 0);
	}
	sc_stats s0, s1;
	TU_CHECK(sc_get_stats(c, &s0) == 0);
	TAP_EQ(s0.entries, 35, "35 entries before compaction");
	tap_ok(s0.dead_bytes > 20 * 100, "dead bytes before compaction (%llu)",
	       (unsigned long long)s0.dead_bytes);
	TAP_EQ(sc_compact(c), 0, "compact");
	TU_CHECK(sc_get_stats(c, &s1) == 0);
	TAP_EQ(s1.entries, 35, "compaction keeps every entry");
	TAP_EQ(s1.dead_bytes, 0, "compaction leaves no dead bytes");
	tap_ok(s1.file_size < s0.file_size, "file shrinks (%llu -> %llu)",
	       (unsigned long long)s0.file_size, (unsigned long long)s1.file_size);
	TAP_EQ(s1.live_bytes, s0.live_bytes, "live bytes unchanged");
	TAP_EQ(s1.compactions, s0.compactions + 1, "compactions counter");
	struct stat st;
	TAP_EQ(stat(sc_path(c), &st), 0, "shard exists after compaction");
	TAP_EQ(st.st_mode & 07777, 0600, "compacted shard is 0600");
	TAP_EQ((uint64_t)st.st_size, s1.file_size, "stats file_size is the new file's");
	int ok = 1;
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "/compact/%d", i);
		sc_blob b;
		int rc = sc_get(c, key, &b);
		int removed = (i & 1) && i < 10;
		long want = removed ? -2 : (i & 1) ? 1 : 2;
		long got = rc ? -2 : tu_blob_check(b.data, b.size, key);
		if (got != want) {
			tap_diag("%s: rc %d version %ld want %ld", key, rc, got, want);
			ok = 0;
		}
	}
	tap_ok(ok, "every entry has its latest bytes after compaction, removed ones stay gone");
	uint64_t n = 0;
	TAP_EQ(sc_verify(c, NULL, NULL, &n), 0, "compacted shard verifies");
	TAP_EQ(n, 35, "verify checked 35 records");
	sc_close(c);
	/* reopen, still there */
	c = open_ok(tu_path("compact.shard"), TAG, SC_RDONLY);
	TU_CHECK(c);
	TU_CHECK(sc_get_stats(c, &s1) == 0);
	TAP_EQ(s1.entries, 35, "entries after reopen");
	sc_close(c);
}

static void test_evict_stale(void)
{
	sc_cache *c = open_ok(tu_path("evict.shard"), TAG, SC_NOSYNC);
	TU_CHECK(c);
	const char *ka = make_source("ev_a.lua", "a");
	const char *kb = make_source("ev_b.lua", "b");
	const char *kc = make_source("ev_c.lua", "c");
	const char *kd = make_source("ev_d.lua", "d");
	const char *exe = tu_path("ev_exe");
	tu_copy_file("/bin/true", exe, 0755);
	TU_CHECK(sc_put(c, ka, "A", 1) == 0);
	TU_CHECK(sc_put(c, kb, "B", 1) == 0);
	TU_CHECK(sc_put(c, kc, "C", 1) == 0);
	sc_put_opts o = { .exe_path = exe };
	TU_CHECK(sc_put_ex(c, kd, "D", 1, &o) == 0);
	sc_put_opts ns = { .no_source = 1 };
	TU_CHECK(sc_put_ex(c, "/evict/nosource", "N", 1, &ns) == 0);

	uint64_t n = 99;
	TAP_EQ(sc_evict_stale(c, &n), 0, "evict_stale with nothing stale");
	TAP_EQ(n, 0, "nothing evicted");

	struct timespec ts[2] = { { 1000000, 5 }, { 1000000, 5 } };
	tu_write_str(kb, "x");                         /* b changed (same size) */
	TU_CHECK(utimensat(AT_FDCWD, kb, ts, 0) == 0);
	TU_CHECK(unlink(kc) == 0);                     /* c vanished */
	TU_CHECK(unlink(exe) == 0);                    /* d's writer removed */
	n = 0;
	TAP_EQ(sc_evict_stale(c, &n), 0, "evict_stale");
	TAP_EQ(n, 3, "changed source, vanished source and removed writer evicted");
	sc_blob b;
	TAP_EQ(sc_get(c, ka, &b), 0, "fresh entry kept");
	TAP_EQ(sc_get(c, "/evict/nosource", &b), 0, "no_source entry kept");
	sc_entry_info e;
	TAP_EQ(sc_lookup(c, kb, &e), SC_ENOTFOUND, "changed source's entry gone");
	TAP_EQ(sc_lookup(c, kc, &e), SC_ENOTFOUND, "vanished source's entry gone");
	TAP_EQ(sc_lookup(c, kd, &e), SC_ENOTFOUND, "removed writer's entry gone");
	sc_stats s;
	TU_CHECK(sc_get_stats(c, &s) == 0);
	TAP_EQ(s.entries, 2, "two entries left");
	TAP_EQ(s.evictions, 3, "evictions counter");
	TAP_EQ(sc_evict_stale(c, NULL), 0, "evict_stale with NULL count");
	sc_close(c);
}

static void test_max_size(void)
{
	sc_cache *c = open_ok(tu_path("max.shard"), TAG, SC_NOSYNC);
	TU_CHECK(c);
	const uint64_t limit = 256 * 1024;
	sc_set_max_size(c, limit);
	enum { N = 200 };
	unsigned char buf[4200];
	char key[64];
	sc_put_opts o = { .no_source = 1 };
	int put_ok = 1, over = 0;
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof key, "/max/%03d", i);
		size_t n = tu_blob_make(buf, key, 1, 4096);
		int rc = sc_put_ex(c, key, buf, n, &o);
		if (rc) {
			tap_diag("put %d: %s", i, sc_strerror(rc));
			put_ok = 0;
		}
		sc_stats s;
		TU_CHECK(sc_get_stats(c, &s) == 0);
		if (s.file_size > limit && !over++)
			tap_diag("after put %d file is %llu > %llu", i,
				 (unsigned long long)s.file_size, (unsigned long long)limit);
	}
	tap_ok(put_ok, "200 puts of 4 KiB under a 256 KiB limit succeed");
	TAP_EQ(over, 0, "the file never stays above the limit after a put");
	int first = -1, suffix = 1;
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof key, "/max/%03d", i);
		sc_blob b;
		int rc = sc_get(c, key, &b);
		if (rc == 0 && tu_blob_check(b.data, b.size, key) != 1) {
			tap_diag("%s: wrong bytes", key);
			suffix = 0;
		}
		if (rc == 0 && first < 0)
			first = i;
		if (rc != 0 && first >= 0) {
			tap_diag("%s missing although older %03d present", key, first);
			suffix = 0;
		}
	}
	tap_ok(first > 0, "oldest entries were evicted (first kept: %d)", first);
	tap_ok(suffix, "eviction is oldest first: the kept entries are the newest ones");
	sc_stats s;
	TU_CHECK(sc_get_stats(c, &s) == 0);
	tap_ok(s.evictions > 0 && s.evictions == (uint64_t)first,
	       "evictions counter (%llu) = entries evicted (%d)",
	       (unsigned long long)s.evictions, first);
	tap_ok(s.entries * 4096 > limit / 2, "after eviction the shard still holds a useful "
	       "amount (%llu entries)", (unsigned long long)s.entries);
	sc_set_max_size(c, 0);
	snprintf(key, sizeof key, "/max/unlimited");
	size_t n = tu_blob_make(buf, key, 1, 4096);
	TAP_EQ(sc_put_ex(c, key, buf, n, &o), 0, "put after removing the limit");
	sc_stats s2;
	TU_CHECK(sc_get_stats(c, &s2) == 0);
	TAP_EQ(s2.entries, s.entries + 1, "limit 0: nothing evicted");
	sc_close(c);
}

static void test_lookup(void)
{
	sc_cache *c = open_ok(tu_path("lookup.shard"), TAG, 0);
	TU_CHECK(c);
	const char *k = make_source("lookup.lua", "return 42\n");
	struct timespec ts[2] = { { 1600000000, 123456789 }, { 1600000000, 123456789 } };
	TU_CHECK(utimensat(AT_FDCWD, k, ts, 0) == 0);
	struct timespec t0, t1;
	clock_gettime(CLOCK_REALTIME, &t0);
	TAP_EQ(sc_put(c, k, "bytecode!", 9), 0, "put for lookup");
	clock_gettime(CLOCK_REALTIME, &t1);

	sc_entry_info e;
	memset(&e, 0xa5, sizeof e);
	TAP_EQ(sc_lookup(c, k, &e), 0, "sc_lookup");
	tap_ok(e.key_len == strlen(k) && memcmp(e.key, k, e.key_len) == 0, "key");
	TAP_EQ(e.has_source, 1, "has_source");
	TAP_EQ(e.source_mtime_sec, 1600000000, "source mtime seconds");
	TAP_EQ(e.source_mtime_nsec, 123456789, "source mtime nanoseconds");
	TAP_EQ(e.source_size, 10, "source size");
	tap_ok(e.tag_len == strlen(TAG) && memcmp(e.tag, TAG, e.tag_len) == 0,
	       "tag is the handle's");
	char id[512];
	TU_CHECK(sc_exe_identity(NULL, id, sizeof id) == 0);
	tap_ok(e.exe_id_len == strlen(id) && memcmp(e.exe_id, id, e.exe_id_len) == 0,
	       "exe_id is this executable's identity (%.*s)", (int)e.exe_id_len, e.exe_id);
	char self[PATH_MAX];
	ssize_t sl = readlink("/proc/self/exe", self, sizeof self - 1);
	TU_CHECK(sl > 0);
	self[sl] = 0;
	tap_ok(e.exe_path_len == strlen(self) && memcmp(e.exe_path, self, e.exe_path_len) == 0,
	       "exe_path is this executable (%.*s)", (int)e.exe_path_len, e.exe_path);
	double tc = e.cached_sec + e.cached_nsec / 1e9;
	tap_ok(e.cached_nsec < 1000000000u &&
	       tc >= t0.tv_sec + t0.tv_nsec / 1e9 - 1e-6 &&
	       tc <= t1.tv_sec + t1.tv_nsec / 1e9 + 1e-6,
	       "cached time is the time of the put");
	TAP_EQ(e.blob_size, 9, "blob_size");
	tap_ok(e.blob && memcmp(e.blob, "bytecode!", 9) == 0, "blob bytes");
	tap_ok((uintptr_t)e.blob % SC_BLOB_ALIGN == 0, "lookup blob aligned");
	{
		XXH128_hash_t h = XXH3_128bits("bytecode!", 9);
		tap_ok(e.blob_id[0] == h.low64 && e.blob_id[1] == h.high64, "blob_id is XXH3-128");
	}
	tap_ok(e.shard_id != 0, "shard_id set");
	tap_ok(e.offset >= 4096 && e.offset % 8 == 0, "entry offset in data, aligned (%llu)",
	       (unsigned long long)e.offset);
	TAP_EQ(sc_entry_status(&e), 0, "entry is fresh by the writer's view");
	sc_blob b;
	TAP_EQ(sc_get(c, k, &b), 0, "get agrees");
	tap_ok(b.data == e.blob, "get and lookup return the same zero-copy pointer");

	/* the (shard_id, offset) pair names one version */
	uint64_t off1 = e.offset;
	TU_CHECK(sc_put(c, k, "bytecode2", 9) == 0);
	TU_CHECK(sc_lookup(c, k, &e) == 0);
	tap_ok(e.offset != off1, "a replaced entry has a new offset");

	/* explicit source stat, tag override, no_source */
	struct stat st;
	TU_CHECK(stat(k, &st) == 0);
	st.st_mtim.tv_nsec = 7;
	st.st_size = 12345;
	sc_put_opts o = { .source = &st, .tag = "other tag" };
	TAP_EQ(sc_put_ex(c, k, "x", 1, &o), 0, "put_ex with explicit stat and tag");
	TU_CHECK(sc_lookup(c, k, &e) == 0);
	TAP_EQ(e.source_mtime_nsec, 7, "explicit stat's nsec recorded");
	TAP_EQ(e.source_size, 12345, "explicit stat's size recorded");
	tap_ok(e.tag_len == 9 && memcmp(e.tag, "other tag", 9) == 0, "tag override recorded");
	TAP_EQ(sc_entry_status(&e), SC_ESTALE, "entry_status sees the source mismatch");

	sc_put_opts ns = { .no_source = 1 };
	TAP_EQ(sc_put_ex(c, "/lookup/virtual.pyc", "v", 1, &ns), 0, "put no_source");
	TU_CHECK(sc_lookup(c, "/lookup/virtual.pyc", &e) == 0);
	TAP_EQ(e.has_source, 0, "no_source entry has_source 0");
	TAP_EQ(sc_entry_status(&e), 0, "no_source entry is fresh");
	TAP_EQ(sc_lookup(c, "/lookup/none", &e), SC_ENOTFOUND, "lookup miss");

	/* put of a key whose source does not exist */
	int rc = sc_put(c, tu_path("src/does-not-exist.lua"), "x", 1);
	tap_ok(rc == -ENOENT, "put of a missing source fails with -ENOENT (%d)", rc);
	sc_close(c);
}

struct count_arg {
	int n, stop_at;
	int bad;
};

static int count_cb(const sc_entry_info *e, void *arg)
{
	struct count_arg *a = arg;
	a->n++;
	char key[128];
	if (e->key_len >= sizeof key) {
		a->bad++;
		return 0;
	}
	memcpy(key, e->key, e->key_len);
	key[e->key_len] = 0;
	if (tu_blob_check(e->blob, e->blob_size, key) < 0)
		a->bad++;
	return a->n == a->stop_at ? 77 : 0;
}

static void test_foreach(void)
{
	sc_cache *c = open_ok(tu_path("foreach.shard"), TAG, SC_NOSYNC);
	TU_CHECK(c);
	struct count_arg a = { 0 };
	TAP_EQ(sc_foreach(c, count_cb, &a), 0, "foreach on an empty shard");
	TAP_EQ(a.n, 0, "no callbacks");
	unsigned char buf[600];
	char key[64];
	sc_put_opts o = { .no_source = 1 };
	for (int i = 0; i < 10; i++) {
		snprintf(key, sizeof key, "/fe/%d", i);
		TU_CHECK(sc_put_ex(c, key, buf, tu_blob_make(buf, key, 1, i * 40), &o) == 0);
	}
	snprintf(key, sizeof key, "/fe/%d", 3);
	TU_CHECK(sc_put_ex(c, key, buf, tu_blob_make(buf, key, 2, 9), &o) == 0);
	a = (struct count_arg){ 0 };
	TAP_EQ(sc_foreach(c, count_cb, &a), 0, "foreach returns 0");
	TAP_EQ(a.n, 10, "foreach visits 10 live entries (a replaced one once)");
	TAP_EQ(a.bad, 0, "every visited entry has genuine bytes");
	TU_CHECK(sc_remove(c, "/fe/5") == 0);
	a = (struct count_arg){ 0 };
	TAP_EQ(sc_foreach(c, count_cb, &a), 0, "foreach after remove");
	TAP_EQ(a.n, 9, "removed entry not visited");
	a = (struct count_arg){ .stop_at = 4 };
	TAP_EQ(sc_foreach(c, count_cb, &a), 77, "callback's nonzero return stops and is returned");
	TAP_EQ(a.n, 4, "stopped after 4 callbacks");
	sc_close(c);
}

static void test_stats_counters(void)
{
	const char *shard = tu_path("stats.shard");
	sc_cache *c = open_ok(shard, TAG, 0);
	TU_CHECK(c);
	const char *k1 = make_source("st1.lua", "1");
	const char *k2 = make_source("st2.lua", "2");
	const char *k3 = make_source("st3.lua", "3");
	const char *k4 = make_source("st4.lua", "4");
	const char *k5 = make_source("st5.lua", "a unique corruptible blob");
	TU_CHECK(sc_put(c, k1, "one", 3) == 0);
	TU_CHECK(sc_put(c, k2, "two", 3) == 0);
	sc_put_opts o = { .tag = "another interpreter" };
	TU_CHECK(sc_put_ex(c, k3, "three", 5, &o) == 0);
	const char *blob5 = "@@UNIQUE-BLOB-PATTERN-0123456789@@";
	TU_CHECK(sc_put(c, k5, blob5, strlen(blob5)) == 0);
	TU_CHECK(sc_remove(c, k2) == 0);
	TU_CHECK(sc_put(c, k2, "two", 3) == 0);
	sc_close(c);

	/* damage k5's blob in the file */
	size_t len;
	unsigned char *file = tu_read_file(shard, &len);
	unsigned char *hit = memmem(file, len, blob5, strlen(blob5));
	TU_CHECK(hit != NULL);
	int fd = open(shard, O_WRONLY);
	TU_CHECK(fd >= 0);
	TU_CHECK(pwrite(fd, "#", 1, hit - file + 5) == 1);
	close(fd);
	free(file);

	c = open_ok(shard, TAG, 0);
	TU_CHECK(c);
	struct timespec ts[2] = { { 1000, 0 }, { 1000, 0 } };
	tu_write_str(k2, "3"); /* edited: same size, other bytes */
	TU_CHECK(utimensat(AT_FDCWD, k2, ts, 0) == 0);
	sc_blob b;
	TAP_EQ(sc_get(c, k1, &b), 0, "hit");
	TAP_EQ(sc_get(c, k1, &b), 0, "hit again");
	TAP_EQ(sc_get(c, k4, &b), SC_ENOTFOUND, "absent");
	TAP_EQ(sc_get(c, k2, &b), SC_ESTALE, "stale");
	TAP_EQ(sc_get(c, k3, &b), SC_EFINGERPRINT, "fingerprint");
	TAP_EQ(sc_get(c, k5, &b), SC_ECORRUPT, "corrupt blob is SC_ECORRUPT");
	TAP_EQ(sc_get(c, k5, &b), SC_ECORRUPT, "corrupt blob stays SC_ECORRUPT");
	TAP_EQ(sc_put(c, k4, "four", 4), 0, "put");
	TAP_EQ(sc_remove(c, k1), 0, "remove");
	sc_stats s;
	TAP_EQ(sc_get_stats(c, &s), 0, "get_stats");
	TAP_EQ(s.hits, 2, "hits counter");
	TAP_EQ(s.miss_absent, 1, "miss_absent counter");
	TAP_EQ(s.miss_stale, 1, "miss_stale counter");
	TAP_EQ(s.miss_fingerprint, 1, "miss_fingerprint counter");
	TAP_EQ(s.miss_corrupt, 2, "miss_corrupt counter");
	TAP_EQ(s.puts, 1, "puts counter (this handle only)");
	TAP_EQ(s.removes, 1, "removes counter");
	TAP_EQ(s.evictions, 0, "evictions counter");
	TAP_EQ(s.compactions, 0, "compactions counter");
	TAP_EQ(s.entries, 4, "entries");
	tap_ok(s.index_slots >= 1024 && (s.index_slots & (s.index_slots - 1)) == 0,
	       "index_slots a power of two >= 1024 (%llu)", (unsigned long long)s.index_slots);
	tap_ok(s.live_bytes > 0 && s.dead_bytes > 0, "live and dead bytes counted");
	struct stat st;
	TU_CHECK(stat(shard, &st) == 0);
	TAP_EQ(s.file_size, st.st_size, "file_size");
	tap_ok(s.live_bytes + s.dead_bytes + 4096 <= s.file_size, "live+dead fit in the file");
	uint64_t n;
	TAP_EQ(sc_verify(c, NULL, NULL, &n), SC_ECORRUPT, "verify finds the damaged blob");
	sc_close(c);
}

static void test_strerror(void)
{
	int all = 1, distinct = 1;
	for (int e = SC_ENOTFOUND; e >= SC_ELAST; e--) {
		const char *s = sc_strerror(e);
		if (!s || !*s) {
			tap_diag("sc_strerror(%d) empty", e);
			all = 0;
			continue;
		}
		for (int f = SC_ENOTFOUND; f > e; f--)
			if (strcmp(s, sc_strerror(f)) == 0) {
				tap_diag("%d and %d share \"%s\"", e, f, s);
				distinct = 0;
			}
	}
	tap_ok(all, "sc_strerror describes every SC_E* code");
	tap_ok(distinct, "every SC_E* code has its own description");
	const char *s = sc_strerror(-ENOENT);
	tap_ok(s && strstr(s, strerror(ENOENT)), "sc_strerror(-ENOENT) is strerror's (%s)", s);
	s = sc_strerror(-ENOSPC);
	tap_ok(s && strstr(s, strerror(ENOSPC)), "sc_strerror(-ENOSPC) (%s)", s);
	tap_ok(sc_strerror(0) != NULL, "sc_strerror(0) not NULL (%s)", sc_strerror(0));
	tap_ok(sc_strerror(-30950) != NULL, "unknown code in reserved range not NULL");
	tap_ok(sc_strerror(12345) != NULL && sc_strerror(-99999) != NULL &&
	       sc_strerror(INT32_MIN) != NULL, "out-of-range codes not NULL");
}

static void test_default_path(void)
{
	char buf[PATH_MAX];
	char *save_home = strdup(getenv("HOME"));
	char *save_sp = strdup(getenv("SCRIPTCACHE_PATH"));

	setenv("SCRIPTCACHE_PATH", "/explicit/dir/x.shard", 1);
	setenv("XDG_CACHE_HOME", "/xdg", 1);
	setenv("HOME", "/home/someone", 1);
	TAP_EQ(sc_default_path(buf, sizeof buf), 0, "default path with SCRIPTCACHE_PATH");
	tap_ok(strcmp(buf, "/explicit/dir/x.shard") == 0, "SCRIPTCACHE_PATH wins (%s)", buf);
	unsetenv("SCRIPTCACHE_PATH");
	TAP_EQ(sc_default_path(buf, sizeof buf), 0, "default path with XDG_CACHE_HOME");
	tap_ok(strcmp(buf, "/xdg/scriptcache/scripts.shard") == 0,
	       "XDG_CACHE_HOME before HOME (%s)", buf);
	unsetenv("XDG_CACHE_HOME");
	TAP_EQ(sc_default_path(buf, sizeof buf), 0, "default path with HOME");
	tap_ok(strcmp(buf, "/home/someone/.cache/scriptcache/scripts.shard") == 0,
	       "HOME/.cache (%s)", buf);
	TAP_EQ(sc_default_path(buf, 20), -ENAMETOOLONG, "small buffer: -ENAMETOOLONG");
	setenv("XDG_CACHE_HOME", "relative/xdg", 1);
	TAP_EQ(sc_default_path(buf, sizeof buf), 0, "default path with a relative XDG_CACHE_HOME");
	tap_ok(strcmp(buf, "/home/someone/.cache/scriptcache/scripts.shard") == 0,
	       "a relative XDG_CACHE_HOME is ignored, as the XDG spec says (%s)", buf);
	unsetenv("XDG_CACHE_HOME");
	setenv("SCRIPTCACHE_PATH", "", 1);
	TAP_EQ(sc_default_path(buf, sizeof buf), 0, "default path with SCRIPTCACHE_PATH empty");
	tap_ok(strcmp(buf, "/home/someone/.cache/scriptcache/scripts.shard") == 0,
	       "an empty SCRIPTCACHE_PATH counts as unset (%s)", buf);
	unsetenv("SCRIPTCACHE_PATH");
	unsetenv("HOME");
	/* without HOME the library falls back to the passwd entry */
	struct passwd *pw = getpwuid(getuid());
	char want[PATH_MAX];
	snprintf(want, sizeof want, "%s/.cache/scriptcache/scripts.shard",
		 pw && pw->pw_dir ? pw->pw_dir : "");
	int rc = sc_default_path(buf, sizeof buf);
	if (pw && pw->pw_dir && *pw->pw_dir)
		tap_ok(rc == 0 && strcmp(buf, want) == 0,
		       "no HOME: the passwd home directory (%s)", rc ? sc_strerror(rc) : buf);
	else
		TAP_EQ(rc, -ENOENT, "no HOME and no passwd home: -ENOENT");

	setenv("HOME", save_home, 1);
	setenv("SCRIPTCACHE_PATH", save_sp, 1);
	free(save_home);
	free(save_sp);
}

static void test_env_disabled(void)
{
	static const char *off[] = { "0", "false", "no", "FALSE", "No", "fAlSe", "NO" };
	static const char *on[] = { "1", "yes", "true", "on", "" };
	int ok = 1;
	for (size_t i = 0; i < sizeof off / sizeof *off; i++) {
		setenv("SCRIPTCACHE", off[i], 1);
		if (!sc_env_disabled()) {
			tap_diag("SCRIPTCACHE=%s not disabled", off[i]);
			ok = 0;
		}
	}
	tap_ok(ok, "SCRIPTCACHE=0|false|no in any case disables");
	ok = 1;
	for (size_t i = 0; i < sizeof on / sizeof *on; i++) {
		setenv("SCRIPTCACHE", on[i], 1);
		if (sc_env_disabled()) {
			tap_diag("SCRIPTCACHE=\"%s\" disabled", on[i]);
			ok = 0;
		}
	}
	unsetenv("SCRIPTCACHE");
	if (sc_env_disabled())
		ok = 0;
	tap_ok(ok, "other values and unset do not disable");

	setenv("SCRIPTCACHE", "false", 1);
	const char *shard = tu_path("disabled/sub/x.shard");
	sc_cache *c = NULL;
	TAP_EQ(sc_open(&c, shard, TAG, 0), 0, "open succeeds when disabled");
	if (c) {
		tap_ok(sc_disabled(c) != 0, "sc_disabled");
		tap_ok(!tu_exists(tu_path("disabled")), "no directory or file created");
		sc_blob b;
		sc_entry_info e;
		const char *k = make_source("dis.lua", "x");
		TAP_EQ(sc_get(c, k, &b), SC_EDISABLED, "get is SC_EDISABLED");
		TAP_EQ(sc_put(c, k, "x", 1), SC_EDISABLED, "put is SC_EDISABLED");
		TAP_EQ(sc_get(c, k, &b), SC_EDISABLED, "get after put still SC_EDISABLED");
		TAP_EQ(sc_lookup(c, k, &e), SC_EDISABLED, "lookup is SC_EDISABLED");
		tap_ok(!tu_exists(tu_path("disabled")), "still nothing created");
		sc_close(c);
	}
	/* an existing shard is not touched either */
	const char *real = tu_path("pg.shard");
	struct stat st0, st1;
	TU_CHECK(stat(real, &st0) == 0);
	TAP_EQ(sc_open(&c, real, TAG, 0), 0, "open existing shard when disabled");
	if (c) {
		sc_blob b;
		TAP_EQ(sc_get(c, make_source("two.lua", "print(2)\n"), &b), SC_EDISABLED,
		       "existing entry not served when disabled");
		sc_close(c);
	}
	TU_CHECK(stat(real, &st1) == 0);
	tap_ok(st0.st_size == st1.st_size && st0.st_mtim.tv_sec == st1.st_mtim.tv_sec &&
	       st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec, "existing shard untouched");

	/* SC_IGNORE_ENV */
	TAP_EQ(sc_open(&c, shard, TAG, SC_IGNORE_ENV), 0, "SC_IGNORE_ENV opens when disabled");
	if (c) {
		TAP_EQ(sc_disabled(c), 0, "not disabled with SC_IGNORE_ENV");
		tap_ok(tu_exists(shard), "shard created with SC_IGNORE_ENV");
		const char *k = make_source("dis.lua", "x");
		sc_blob b;
		TAP_EQ(sc_put(c, k, "x", 1), 0, "put works with SC_IGNORE_ENV");
		TAP_EQ(sc_get(c, k, &b), 0, "get works with SC_IGNORE_ENV");
		sc_close(c);
	}
	unsetenv("SCRIPTCACHE");
}

static void test_rdonly_nocreate(void)
{
	const char *missing = tu_path("ro/missing.shard");
	sc_cache *c = (sc_cache *)1;
	TAP_EQ(sc_open(&c, missing, TAG, SC_NOCREATE), -ENOENT, "SC_NOCREATE on a missing shard");
	tap_ok(c == NULL, "out NULL");
	tap_ok(!tu_exists(missing), "SC_NOCREATE created nothing");
	c = (sc_cache *)1;
	int rc = sc_open(&c, missing, TAG, SC_RDONLY);
	tap_ok(rc < 0 && c == NULL, "SC_RDONLY on a missing shard fails (%s)", sc_strerror(rc));
	tap_ok(!tu_exists(missing), "SC_RDONLY created nothing");

	const char *shard = tu_path("ro.shard");
	const char *k = make_source("ro.lua", "ro");
	c = open_ok(shard, TAG, 0);
	TU_CHECK(c && sc_put(c, k, "ro", 2) == 0);
	sc_close(c);
	c = open_ok(shard, TAG, SC_NOCREATE);
	tap_ok(c != NULL, "SC_NOCREATE opens an existing shard");
	sc_close(c);

	struct stat st0, st1;
	TU_CHECK(stat(shard, &st0) == 0);
	c = open_ok(shard, TAG, SC_RDONLY);
	TU_CHECK(c);
	sc_blob b;
	TAP_EQ(sc_get(c, k, &b), 0, "read-only get");
	tap_ok(blob_is(&b, "ro", 2), "read-only bytes");
	TAP_EQ(sc_put(c, k, "x", 1), SC_EREADONLY, "read-only put");
	sc_put_opts o = { .no_source = 1 };
	TAP_EQ(sc_put_ex(c, "/ro/x", "x", 1, &o), SC_EREADONLY, "read-only put_ex");
	TAP_EQ(sc_remove(c, k), SC_EREADONLY, "read-only remove");
	TAP_EQ(sc_clear(c), SC_EREADONLY, "read-only clear");
	TAP_EQ(sc_compact(c), SC_EREADONLY, "read-only compact");
	TAP_EQ(sc_evict_stale(c, NULL), SC_EREADONLY, "read-only evict_stale");
	TAP_EQ(sc_get(c, k, &b), 0, "entry still there");
	sc_close(c);
	TU_CHECK(stat(shard, &st1) == 0);
	tap_ok(st0.st_size == st1.st_size && st0.st_ino == st1.st_ino &&
	       st0.st_mtim.tv_nsec == st1.st_mtim.tv_nsec, "read-only handle left the file alone");

	/* a read-only file can be opened SC_RDONLY */
	TU_CHECK(chmod(shard, 0400) == 0);
	if (geteuid() != 0) {
		c = NULL;
		TAP_EQ(sc_open(&c, shard, TAG, SC_RDONLY), 0, "0400 shard opens read-only");
		sc_close(c);
	}
	TU_CHECK(chmod(shard, 0600) == 0);
}

static void test_load_save(void)
{
	/* SCRIPTCACHE_PATH points to tu_dir/default.shard (tu_setup) */
	mkdir(tu_path("src"), 0755);
	mkdir(tu_path("src/ls"), 0755);
	const char *real = make_source("ls/script.lua", "print('load')\n");
	TU_CHECK(symlink(real, tu_path("link.lua")) == 0);
	char cwd[PATH_MAX];
	TU_CHECK(getcwd(cwd, sizeof cwd));
	TU_CHECK(chdir(tu_path("src")) == 0);
	struct stat st;
	TU_CHECK(stat(real, &st) == 0);
	int rc = sc_save("lua-test", "./ls/../ls/script.lua", &st, "BC", 2);
	TU_CHECK(chdir(cwd) == 0);
	TAP_EQ(rc, 0, "sc_save through a relative path");
	sc_blob b = { 0 };
	TAP_EQ(sc_load("lua-test", real, &b), 0, "sc_load by the canonical path");
	tap_ok(blob_is(&b, "BC", 2), "sc_load bytes");
	TAP_EQ(sc_load("lua-test", tu_path("link.lua"), &b), 0, "sc_load through a symlink");
	TAP_EQ(sc_load("lua-other", real, &b), SC_EFINGERPRINT, "sc_load with another tag");
	TAP_EQ(sc_load("lua-test", tu_path("src/ls/none.lua"), &b) < 0, 1,
	       "sc_load of a missing script misses");
	TAP_EQ(sc_save("lua-test", tu_path("link.lua"), NULL, "BC2", 3), 0, "sc_save through a symlink");
	TAP_EQ(sc_load("lua-test", real, &b), 0, "load after save via symlink");
	tap_ok(blob_is(&b, "BC2", 3), "the symlink save replaced the canonical entry");

	sc_cache *c = open_ok(getenv("SCRIPTCACHE_PATH"), "lua-test", SC_RDONLY);
	tap_ok(c != NULL, "default shard exists at SCRIPTCACHE_PATH");
	if (c) {
		sc_entry_info e;
		TAP_EQ(sc_lookup(c, real, &e), 0, "entry keyed by the canonical path");
		sc_stats s;
		TU_CHECK(sc_get_stats(c, &s) == 0);
		TAP_EQ(s.entries, 1, "only one entry (no symlink or relative keys)");
		sc_close(c);
	}
}

static int is_hex(const char *s)
{
	if (!*s)
		return 0;
	for (; *s; s++)
		if (!strchr("0123456789abcdef", *s))
			return 0;
	return 1;
}

static void test_exe_identity(void)
{
	char a[512], b[512];
	TAP_EQ(sc_exe_identity(NULL, a, sizeof a), 0, "identity of the running executable");
	tap_ok(strncmp(a, "build-id:", 9) == 0, "starts with build-id: (%s)", a);
	tap_ok(is_hex(a + 9) && strlen(a + 9) >= 16 && strlen(a + 9) % 2 == 0,
	       "build-id is lowercase hex");
	TAP_EQ(sc_exe_identity("/proc/self/exe", b, sizeof b), 0, "identity of /proc/self/exe");
	tap_ok(strcmp(a, b) == 0, "NULL and /proc/self/exe agree");
	TAP_EQ(sc_exe_identity("/bin/true", b, sizeof b), 0, "identity of /bin/true");
	tap_ok(strncmp(b, "build-id:", 9) == 0 && strcmp(a, b) != 0,
	       "/bin/true has another build-id");
	char c2[512];
	TAP_EQ(sc_exe_identity("/bin/false", c2, sizeof c2), 0, "identity of /bin/false");
	tap_ok(strcmp(b, c2) != 0, "/bin/true and /bin/false differ");

	const char *script = tu_path("script.sh");
	tu_write_str(script, "#!/bin/sh\nexit 0\n");
	chmod(script, 0755);
	struct timespec ts[2] = { { 1500000000, 42 }, { 1500000000, 42 } };
	TU_CHECK(utimensat(AT_FDCWD, script, ts, 0) == 0);
	TAP_EQ(sc_exe_identity(script, b, sizeof b), 0, "identity of a shell script");
	char want[64];
	snprintf(want, sizeof want, "stat:%d:%d.", 17, 1500000000);
	tap_ok(strncmp(b, want, strlen(want)) == 0, "stat:<size>:<sec>. (%s)", b);
	tap_ok(strtoul(b + strlen(want), NULL, 10) == 42, "then nanoseconds (%s)", b);

	TAP_EQ(sc_exe_identity(tu_path("no-such-exe"), b, sizeof b), -ENOENT, "missing file -ENOENT");
	TAP_EQ(sc_exe_identity(NULL, b, 12), -ENAMETOOLONG, "small buffer -ENAMETOOLONG");
	TAP_EQ(sc_exe_identity(script, b, 8), -ENAMETOOLONG, "small buffer (stat) -ENAMETOOLONG");
}

static void test_pointer_lifetime(void)
{
	sc_cache *c = open_ok(tu_path("life.shard"), TAG, SC_NOSYNC);
	TU_CHECK(c);
	const char *k = make_source("life.lua", "life");
	unsigned char buf[5000];
	size_t n = tu_blob_make(buf, k, 1, 4000);
	TU_CHECK(sc_put(c, k, buf, n) == 0);
	sc_blob b1, b2;
	TU_CHECK(sc_get(c, k, &b1) == 0);
	sc_entry_info e1;
	TU_CHECK(sc_lookup(c, k, &e1) == 0);

	size_t n2 = tu_blob_make(buf, k, 2, 3000);
	TAP_EQ(sc_put(c, k, buf, n2), 0, "replace while holding a pointer");
	TAP_EQ(tu_blob_check(b1.data, b1.size, k), 1, "old pointer unchanged after replace");
	TU_CHECK(sc_get(c, k, &b2) == 0);
	TAP_EQ(tu_blob_check(b2.data, b2.size, k), 2, "new version visible");
	TAP_EQ(sc_remove(c, k), 0, "remove while holding pointers");
	TAP_EQ(tu_blob_check(b1.data, b1.size, k), 1, "old pointer unchanged after remove");
	TAP_EQ(tu_blob_check(b2.data, b2.size, k), 2, "newer pointer unchanged after remove");
	TAP_EQ(sc_compact(c), 0, "compact while holding pointers");
	TAP_EQ(tu_blob_check(b1.data, b1.size, k), 1, "pointer unchanged after compact");
	TAP_EQ(tu_blob_check(b2.data, b2.size, k), 2, "pointer 2 unchanged after compact");
	/* grow the file a lot (forces remapping) and clear */
	sc_put_opts o = { .no_source = 1 };
	char key[64];
	for (int i = 0; i < 300; i++) {
		snprintf(key, sizeof key, "/life/%d", i);
		TU_CHECK(sc_put_ex(c, key, buf, tu_blob_make(buf, key, 1, 4000), &o) == 0);
	}
	TAP_EQ(tu_blob_check(b1.data, b1.size, k), 1, "pointer unchanged after growth");
	TAP_EQ(sc_clear(c), 0, "clear while holding pointers");
	TAP_EQ(tu_blob_check(b1.data, b1.size, k), 1, "pointer unchanged after clear");
	TAP_EQ(tu_blob_check(e1.blob, e1.blob_size, k), 1, "lookup pointer unchanged too");
	tap_ok(e1.key_len == strlen(k) && memcmp(e1.key, k, e1.key_len) == 0,
	       "lookup key pointer unchanged");
	/* a second handle compacting underneath */
	sc_cache *c2 = open_ok(tu_path("life.shard"), TAG, SC_NOSYNC);
	TU_CHECK(c2);
	TU_CHECK(sc_put(c2, k, buf, tu_blob_make(buf, k, 3, 100)) == 0);
	sc_blob b3;
	TAP_EQ(sc_get(c, k, &b3), 0, "first handle sees the other handle's put");
	TAP_EQ(sc_compact(c2), 0, "other handle compacts");
	TAP_EQ(sc_clear(c2), 0, "other handle clears");
	TAP_EQ(tu_blob_check(b3.data, b3.size, k), 3, "pointer unchanged after another handle's compact+clear");
	TAP_EQ(sc_get(c, k, &b3), SC_ENOTFOUND, "first handle sees the clear");
	sc_close(c2);
	sc_trim(c);
	TAP_EQ(sc_get(c, k, &b3), SC_ENOTFOUND, "handle works after sc_trim");
	TU_CHECK(sc_put(c, k, buf, tu_blob_make(buf, k, 4, 10)) == 0);
	TAP_EQ(sc_get(c, k, &b3), 0, "put+get after sc_trim");
	TAP_EQ(tu_blob_check(b3.data, b3.size, k), 4, "bytes after sc_trim");
	sc_close(c);
}

static void test_growth(void)
{
	enum { N = 5000 };
	sc_cache *c = open_ok(tu_path("growth.shard"), TAG, SC_NOSYNC);
	TU_CHECK(c);
	sc_put_opts o = { .no_source = 1 };
	unsigned char buf[400];
	char key[64];
	int put_ok = 1;
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof key, "/growth/dir%d/file%d.lua", i % 37, i);
		int rc = sc_put_ex(c, key, buf, tu_blob_make(buf, key, 1, i % 300), &o);
		if (rc && put_ok) {
			tap_diag("put %d: %s", i, sc_strerror(rc));
			put_ok = 0;
		}
	}
	tap_ok(put_ok, "5000 puts");
	int found = 0;
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof key, "/growth/dir%d/file%d.lua", i % 37, i);
		sc_blob b;
		if (sc_get(c, key, &b) == 0 && tu_blob_check(b.data, b.size, key) == 1)
			found++;
	}
	TAP_EQ(found, N, "all 5000 found with their bytes");
	sc_stats s;
	TU_CHECK(sc_get_stats(c, &s) == 0);
	TAP_EQ(s.entries, N, "5000 entries");
	tap_ok(s.index_slots > N, "index grew (%llu slots)", (unsigned long long)s.index_slots);
	sc_close(c);
	c = open_ok(tu_path("growth.shard"), TAG, SC_RDONLY);
	TU_CHECK(c);
	found = 0;
	for (int i = 0; i < N; i++) {
		snprintf(key, sizeof key, "/growth/dir%d/file%d.lua", i % 37, i);
		sc_blob b;
		if (sc_get(c, key, &b) == 0 && tu_blob_check(b.data, b.size, key) == 1)
			found++;
	}
	TAP_EQ(found, N, "all 5000 found after reopening");
	uint64_t n = 0;
	TAP_EQ(sc_verify(c, NULL, NULL, &n), 0, "grown shard verifies");
	TAP_EQ(n, N, "verify counted 5000 records");
	sc_close(c);
}

/* sc_remove_if evicts only the version the caller saw. */
static void test_remove_if(void)
{
	sc_cache *c = open_ok(tu_path("remove_if.shard"), TAG, 0);
	TU_CHECK(c);
	const char *k = make_source("remove_if.lua", "return 1\n");
	sc_entry_info e;
	sc_stats st;

	TAP_EQ(sc_put(c, k, "v1", 2), 0, "remove_if: put v1");
	TAP_EQ(sc_lookup(c, k, &e), 0, "remove_if: lookup v1");
	uint64_t id1 = e.shard_id, off1 = e.offset;
	TAP_EQ(sc_get_stats(c, &st), 0, "remove_if: stats");
	tap_ok(st.shard_id == id1, "stats report the shard id that lookup reports");
	TAP_EQ(sc_put(c, k, "v2", 2), 0, "remove_if: put v2 over it");
	TAP_EQ(sc_remove_if(c, k, id1, off1), SC_ECHANGED, "remove_if of the old version: SC_ECHANGED");
	TAP_EQ(sc_lookup(c, k, &e), 0, "v2 is still there");
	tap_ok(e.blob_size == 2 && memcmp(e.blob, "v2", 2) == 0, "with its bytes");
	TAP_EQ(sc_remove_if(c, k, id1 ^ 1, e.offset), SC_ECHANGED, "remove_if with another shard id: SC_ECHANGED");
	TAP_EQ(sc_remove_if(c, k, e.shard_id, e.offset), 0, "remove_if of the current version");
	TAP_EQ(sc_lookup(c, k, &e), SC_ENOTFOUND, "gone");
	TAP_EQ(sc_remove_if(c, k, id1, off1), SC_ENOTFOUND, "remove_if of an absent key: SC_ENOTFOUND");
	sc_close(c);
}

int main(void)
{
	tu_setup("api");
	test_strerror();
	test_exe_identity();
	test_load_save(); /* first: sc_load's process-wide handle sees a clean env */
	test_open_create();
	test_insecure();
	test_put_get();
	test_compact();
	test_evict_stale();
	test_max_size();
	test_lookup();
	test_foreach();
	test_stats_counters();
	test_default_path();
	test_env_disabled();
	test_rdonly_nocreate();
	test_pointer_lifetime();
	test_growth();
	test_remove_if();
	return tap_done();
}
