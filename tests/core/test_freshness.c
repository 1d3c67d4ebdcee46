/*
 * test_freshness.c - when a cached entry must stop being served: source
 * mtime (to the nanosecond) and size, vanished source, tag and executable
 * identity in both directions, no_source entries, the writer's-view rules
 * of tag-less handles, and visibility of another process's commits.
 */
#include <xxhash.h>

#include "testutil.h"

#define TAG_A "interp A 1.0"
#define TAG_B "interp B 1.0"

static sc_cache *open_ok(const char *path, const char *tag, unsigned flags)
{
	sc_cache *c = NULL;
	int rc = sc_open(&c, path, tag, flags);
	if (rc)
		tap_diag("sc_open(%s): %s", path, sc_strerror(rc));
	TU_CHECK(rc == 0 && c != NULL);
	return c;
}

static void set_mtime(const char *path, time_t sec, long nsec)
{
	struct timespec ts[2] = { { sec, nsec }, { sec, nsec } };
	TU_CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0);
}

static void test_source_identity(const char *shard)
{
	sc_cache *c = open_ok(shard, TAG_A, 0);
	const char *k = tu_path("mtime.lua");
	tu_write_str(k, "print('mtime')\n");
	set_mtime(k, 1700000000, 500);
	sc_blob b;
	TAP_EQ(sc_put(c, k, "v1", 2), 0, "put");
	TAP_EQ(sc_get(c, k, &b), 0, "fresh hit");
	/* the mtime moves, the bytes do not: fresh by content */
	set_mtime(k, 1700000000, 501);
	TAP_EQ(sc_get(c, k, &b), 0, "mtime changed by 1 ns, same bytes: hit by content");
	set_mtime(k, 1700000000, 500);
	TAP_EQ(sc_get(c, k, &b), 0, "mtime restored: hit again");
	set_mtime(k, 1700000001, 500);
	TAP_EQ(sc_get(c, k, &b), 0, "mtime changed by 1 s, same bytes: hit by content");
	/* same size, other bytes, other mtime: stale */
	tu_write_str(k, "print('MTIME')\n");
	set_mtime(k, 1700000002, 500);
	TAP_EQ(sc_get(c, k, &b), SC_ESTALE, "same size, other bytes, new mtime: SC_ESTALE");
	/* other bytes under the recorded mtime cannot be told apart (as v1) */
	tu_write_str(k, "print('mtime')\n");
	set_mtime(k, 1700000000, 500);

	/* same mtime, other size */
	tu_write_str(k, "print('mtime!')\n");
	set_mtime(k, 1700000000, 500);
	TAP_EQ(sc_get(c, k, &b), SC_ESTALE, "size changed, same mtime: SC_ESTALE");
	sc_entry_info e;
	TAP_EQ(sc_lookup(c, k, &e), 0, "lookup ignores freshness");
	TAP_EQ(sc_entry_status(&e), SC_ESTALE, "sc_entry_status: SC_ESTALE");

	/* re-put the new version, then delete the source */
	TAP_EQ(sc_put(c, k, "v2", 2), 0, "re-put after the edit");
	TAP_EQ(sc_get(c, k, &b), 0, "fresh again");
	TU_CHECK(unlink(k) == 0);
	TAP_EQ(sc_get(c, k, &b), SC_ESTALE, "source deleted: SC_ESTALE");
	TAP_EQ(sc_lookup(c, k, &e), 0, "lookup of a deleted source's entry");
	TAP_EQ(sc_entry_status(&e), SC_ESTALE, "sc_entry_status of a deleted source");

	/* a source replaced by a directory (stat works, but it is not the file) */
	TU_CHECK(mkdir(k, 0755) == 0);
	TAP_EQ(sc_get(c, k, &b), SC_ESTALE, "source replaced by a directory: SC_ESTALE");
	rmdir(k);

	/* sc_put_ex with the stat taken before reading: an edit during the
	 * compilation makes the stored entry stale at once */
	tu_write_str(k, "print('a')\n");
	set_mtime(k, 1700000100, 1);
	struct stat before;
	TU_CHECK(stat(k, &before) == 0);
	tu_write_str(k, "print('b')\n"); /* the edit, same size */
	set_mtime(k, 1700000100, 2);
	sc_put_opts o = { .source = &before };
	TAP_EQ(sc_put_ex(c, k, "compiled a", 10, &o), 0, "put_ex with the earlier stat");
	TAP_EQ(sc_get(c, k, &b), SC_ESTALE, "edit during compilation is never served");

	sc_stats s;
	TU_CHECK(sc_get_stats(c, &s) == 0);
	TAP_EQ(s.miss_stale, 5, "five stale misses counted");
	TAP_EQ(s.hits, 5, "five hits counted");
	TAP_EQ(s.fresh_by_content, 2, "two of them fresh by content");
	sc_close(c);
}

/* A checkout, a restored CI cache, a copied layer, a Nix store: the bytes
 * come back under new mtimes, and the cache stays warm. */
static void test_content_freshness(const char *shard)
{
	sc_cache *c = open_ok(shard, TAG_A, 0);
	const char *k = tu_path("checkout.lua");
	const char *k2 = tu_path("given.lua");
	const char *src = "local x = 1\nreturn x\n";
	sc_entry_info e;
	sc_stats s;
	sc_blob b;

	tu_write_str(k, src);
	set_mtime(k, 1700000000, 0);
	TAP_EQ(sc_put(c, k, "bc", 2), 0, "put");
	TAP_EQ(sc_lookup(c, k, &e), 0, "lookup");
	tap_ok(e.has_source_hash, "the put recorded the source's hash");
	{
		XXH128_hash_t h = XXH3_128bits(src, strlen(src));
		tap_ok(e.source_hash[0] == h.low64 && e.source_hash[1] == h.high64,
		       "source_hash is the XXH3-128 of the source's bytes");
	}
	/* the checkout: unlinked and written again, every mtime 1 (Nix) */
	TU_CHECK(unlink(k) == 0);
	tu_write_str(k, src);
	set_mtime(k, 1, 0);
	TAP_EQ(sc_get(c, k, &b), 0, "rewritten with mtime 1, same bytes: hit");
	TAP_EQ(sc_entry_status(&e), 0, "sc_entry_status agrees (fresh by content)");
	TU_CHECK(sc_get_stats(c, &s) == 0);
	TAP_EQ(s.fresh_by_content, 1, "counted as fresh by content");
	/* one byte changed, same size */
	tu_write_str(k, "local x = 2\nreturn x\n");
	set_mtime(k, 1, 0);
	TAP_EQ(sc_get(c, k, &b), SC_ESTALE, "one byte changed: SC_ESTALE");
	TAP_EQ(sc_entry_status(&e), SC_ESTALE, "sc_entry_status agrees");
	/* size changed: never hashed */
	tu_write_str(k, "local x = 22\nreturn x\n");
	TAP_EQ(sc_get(c, k, &b), SC_ESTALE, "size changed: SC_ESTALE");

	/* the bytes handed to the put are hashed instead of the file */
	tu_write_str(k2, "abc\n");
	set_mtime(k2, 1700000000, 0);
	struct stat st;
	TU_CHECK(stat(k2, &st) == 0);
	sc_put_opts o = { .source = &st, .source_bytes = "abc\n", .source_len = 4 };
	TAP_EQ(sc_put_ex(c, k2, "bc2", 3, &o), 0, "put_ex with source_bytes");
	TAP_EQ(sc_lookup(c, k2, &e), 0, "lookup");
	{
		XXH128_hash_t h = XXH3_128bits("abc\n", 4);
		tap_ok(e.has_source_hash && e.source_hash[0] == h.low64 &&
		       e.source_hash[1] == h.high64, "the given bytes' hash is recorded");
	}
	set_mtime(k2, 1800000000, 0);
	TAP_EQ(sc_get(c, k2, &b), 0, "new mtime, same bytes: hit");
	/* bytes of another length than the stat's are not believed */
	sc_put_opts bad = { .source = &st, .source_bytes = "abcd\n", .source_len = 5 };
	TAP_EQ(sc_put_ex(c, k2, "bc3", 3, &bad), 0, "put_ex with bytes of the wrong length");
	TAP_EQ(sc_lookup(c, k2, &e), 0, "lookup");
	tap_ok(!e.has_source_hash, "no hash recorded");
	TAP_EQ(sc_get(c, k2, &b), SC_ESTALE, "and a moved mtime is stale again");
	sc_close(c);
}

static void test_tags(const char *shard)
{
	sc_cache *a = open_ok(shard, TAG_A, 0);
	sc_cache *b = open_ok(shard, TAG_B, 0);
	sc_cache *ab = open_ok(shard, TAG_A "x", 0); /* tag A is a prefix of this */
	const char *k1 = tu_path("tag1.lua");
	const char *k2 = tu_path("tag2.lua");
	tu_write_str(k1, "1");
	tu_write_str(k2, "2");
	sc_blob bl;
	TAP_EQ(sc_put(a, k1, "A's", 3), 0, "A puts k1");
	TAP_EQ(sc_put(b, k2, "B's", 3), 0, "B puts k2");
	TAP_EQ(sc_get(a, k1, &bl), 0, "A reads its own entry");
	TAP_EQ(sc_get(b, k2, &bl), 0, "B reads its own entry");
	TAP_EQ(sc_get(b, k1, &bl), SC_EFINGERPRINT, "B cannot read A's entry");
	TAP_EQ(sc_get(a, k2, &bl), SC_EFINGERPRINT, "A cannot read B's entry");
	TAP_EQ(sc_get(ab, k1, &bl), SC_EFINGERPRINT, "tag with A as prefix cannot read A's");
	TAP_EQ(sc_put(ab, k2, "AB's", 4), 0, "AB replaces k2");
	TAP_EQ(sc_get(a, k2, &bl), SC_EFINGERPRINT, "A cannot read AB's (prefix the other way)");
	TAP_EQ(sc_get(b, k2, &bl), SC_EFINGERPRINT, "B's entry was replaced by AB's");

	/* a tag override on put */
	sc_put_opts o = { .tag = TAG_B };
	TAP_EQ(sc_put_ex(a, k1, "for B", 5, &o), 0, "A stores on B's behalf");
	TAP_EQ(sc_get(b, k1, &bl), 0, "B reads the entry stored with its tag");
	tap_ok(bl.size == 5 && memcmp(bl.data, "for B", 5) == 0, "bytes");
	TAP_EQ(sc_get(a, k1, &bl), SC_EFINGERPRINT, "A no longer reads k1");
	sc_stats s;
	TU_CHECK(sc_get_stats(a, &s) == 0);
	TAP_EQ(s.miss_fingerprint, 3, "A counted three fingerprint misses");
	sc_close(a);
	sc_close(b);
	sc_close(ab);
}

static void test_exe_identity(const char *shard)
{
	sc_cache *c = open_ok(shard, TAG_A, 0);
	const char *k = tu_path("exe.lua");
	tu_write_str(k, "exe");
	sc_blob b;
	sc_put_opts o = { .exe_path = "/bin/true" };
	TAP_EQ(sc_put_ex(c, k, "by true", 7, &o), 0, "put on behalf of /bin/true");
	TAP_EQ(sc_get(c, k, &b), SC_EFINGERPRINT, "another executable's entry: SC_EFINGERPRINT");
	sc_entry_info e;
	TAP_EQ(sc_lookup(c, k, &e), 0, "lookup");
	char id[512];
	TU_CHECK(sc_exe_identity("/bin/true", id, sizeof id) == 0);
	tap_ok(e.exe_id_len == strlen(id) && memcmp(e.exe_id, id, e.exe_id_len) == 0,
	       "recorded identity is /bin/true's");
	tap_ok(e.exe_path_len > 0 && memmem(e.exe_path, e.exe_path_len, "true", 4),
	       "recorded exe_path names true (%.*s)", (int)e.exe_path_len, e.exe_path);
	TAP_EQ(sc_entry_status(&e), 0, "fresh from the writer's point of view");
	TAP_EQ(sc_put(c, k, "by me", 5), 0, "put by this executable");
	TAP_EQ(sc_get(c, k, &b), 0, "own entry hits");
	sc_close(c);
}

static void test_no_source(const char *shard)
{
	sc_cache *c = open_ok(shard, TAG_A, 0);
	sc_put_opts o = { .no_source = 1 };
	sc_blob b;
	const char *virt = "/nonexistent/dir/module.pyc";
	TAP_EQ(sc_put_ex(c, virt, "pyc", 3, &o), 0, "put no_source for a nonexistent path");
	TAP_EQ(sc_get(c, virt, &b), 0, "no_source entry hits without a source");
	const char *k = tu_path("nosrc.lua");
	tu_write_str(k, "nosrc");
	TAP_EQ(sc_put_ex(c, k, "ns", 2, &o), 0, "put no_source for an existing file");
	tu_write_str(k, "changed!");
	set_mtime(k, 12345, 6789);
	TAP_EQ(sc_get(c, k, &b), 0, "no_source entry ignores source changes");
	TU_CHECK(unlink(k) == 0);
	TAP_EQ(sc_get(c, k, &b), 0, "no_source entry ignores source removal");
	sc_put_opts ot = { .no_source = 1, .tag = TAG_B };
	TAP_EQ(sc_put_ex(c, virt, "pyc", 3, &ot), 0, "no_source with another tag");
	TAP_EQ(sc_get(c, virt, &b), SC_EFINGERPRINT, "no_source still checks the fingerprint");
	uint64_t n = 0;
	TAP_EQ(sc_evict_stale(c, &n), 0, "evict_stale");
	TAP_EQ(sc_get(c, k, &b), 0, "no_source entry survives evict_stale");

	/* a cache path with the source it stands for: hash and size recorded,
	 * freshness still the client's */
	const char *src = "import os\n";
	sc_put_opts oh = { .no_source = 1, .source_bytes = src, .source_len = strlen(src) };
	sc_entry_info e;
	TAP_EQ(sc_put_ex(c, virt, "pyc2", 4, &oh), 0, "no_source with source_bytes");
	TAP_EQ(sc_lookup(c, virt, &e), 0, "lookup");
	{
		XXH128_hash_t h = XXH3_128bits(src, strlen(src));
		tap_ok(!e.has_source && e.has_source_hash && e.source_hash[0] == h.low64 &&
		       e.source_hash[1] == h.high64 && e.source_size == strlen(src),
		       "no source file, but the source's hash and size are recorded");
	}
	TAP_EQ(sc_entry_status(&e), 0, "and it is fresh (no source file to check)");
	TAP_EQ(sc_get(c, virt, &b), 0, "hits");
	TAP_EQ(sc_compact(c), 0, "compact");
	TAP_EQ(sc_lookup(c, virt, &e), 0, "lookup after compaction");
	tap_ok(!e.has_source && e.has_source_hash && e.source_size == strlen(src),
	       "the hash survives a compaction");
	sc_close(c);
}

static void copy_over(const char *from, const char *to, time_t sec)
{
	/* like a rebuild: write a new file and rename it into place */
	char tmp[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s.new", to);
	tu_copy_file(from, tmp, 0755);
	set_mtime(tmp, sec, 0);
	TU_CHECK(rename(tmp, to) == 0);
}

static void test_tagless(const char *shard)
{
	const char *exe = tu_path("bin/interp");
	TU_CHECK(mkdir(tu_path("bin"), 0755) == 0);
	copy_over("/bin/true", exe, 1600000000);
	const char *k = tu_path("tagless.lua");
	const char *k2 = tu_path("tagless2.lua");
	tu_write_str(k, "tagless");
	tu_write_str(k2, "tagless2");

	sc_cache *w = open_ok(shard, TAG_A, 0);
	sc_put_opts o = { .exe_path = exe };
	TAP_EQ(sc_put_ex(w, k, "interp's", 8, &o), 0, "put on behalf of a copy of /bin/true");
	TAP_EQ(sc_put_ex(w, k2, "interp2", 7, &o), 0, "and a second entry");
	sc_blob b;
	TAP_EQ(sc_get(w, k, &b), SC_EFINGERPRINT, "tagged handle of this exe: fingerprint miss");

	sc_cache *t = open_ok(shard, NULL, SC_RDONLY);
	TAP_EQ(sc_get(t, k, &b), 0, "tag-less handle: writer still current, hit");
	tap_ok(b.size == 8 && memcmp(b.data, "interp's", 8) == 0, "bytes");
	sc_entry_info e;
	TAP_EQ(sc_lookup(t, k, &e), 0, "lookup");
	TAP_EQ(sc_entry_status(&e), 0, "entry_status fresh");

	/* rebuild the interpreter: another binary at the same path */
	copy_over("/bin/false", exe, 1600000001);
	TAP_EQ(sc_get(t, k, &b), SC_EWRITERGONE, "writer rebuilt: SC_EWRITERGONE from sc_get");
	TAP_EQ(sc_lookup(t, k, &e), 0, "lookup still returns the record");
	TAP_EQ(sc_entry_status(&e), SC_EWRITERGONE, "writer rebuilt: SC_EWRITERGONE from entry_status");

	/* rebuilt back to identical bytes but another mtime: build-id decides */
	copy_over("/bin/true", exe, 1600000002);
	TAP_EQ(sc_get(t, k, &b), 0, "same build-id again: hit");

	/* a stale source wins over a current writer */
	tu_write_str(k2, "tagless2 edited");
	TAP_EQ(sc_get(t, k2, &b), SC_ESTALE, "tag-less handle: stale source is SC_ESTALE");

	/* the writer removed */
	TU_CHECK(unlink(exe) == 0);
	TAP_EQ(sc_get(t, k, &b), SC_EWRITERGONE, "writer removed: SC_EWRITERGONE");
	TAP_EQ(sc_lookup(t, k, &e), 0, "lookup");
	TAP_EQ(sc_entry_status(&e), SC_EWRITERGONE, "entry_status after removal");

	/* an executable without build-id (a script) is judged by stat */
	const char *script = tu_path("bin/script-interp");
	tu_write_str(script, "#!/bin/sh\n");
	set_mtime(script, 1600000000, 111);
	sc_put_opts os = { .exe_path = script };
	TAP_EQ(sc_put_ex(w, k, "by script", 9, &os), 0, "put on behalf of a script");
	TAP_EQ(sc_get(t, k, &b), 0, "script writer current: hit");
	set_mtime(script, 1600000000, 112);
	TAP_EQ(sc_get(t, k, &b), SC_EWRITERGONE, "script writer's mtime changed: SC_EWRITERGONE");

	/* entries written by this very program are current for a tag-less handle */
	TAP_EQ(sc_put(w, k, "mine", 4), 0, "put by this executable");
	TAP_EQ(sc_get(t, k, &b), 0, "tag-less handle hits this executable's entry");
	sc_close(t);
	sc_close(w);
}

struct child_put {
	const char *shard, *key, *blob;
	int op; /* 0 put, 1 compact, 2 clear, 3 remove */
};

static int child_op(void *arg)
{
	struct child_put *p = arg;
	sc_cache *c = NULL;
	if (sc_open(&c, p->shard, TAG_A, 0))
		return 10;
	int rc = 0;
	switch (p->op) {
	case 0: rc = sc_put(c, p->key, p->blob, strlen(p->blob)); break;
	case 1: rc = sc_compact(c); break;
	case 2: rc = sc_clear(c); break;
	case 3: rc = sc_remove(c, p->key); break;
	}
	sc_close(c);
	return rc ? 11 : 0;
}

static void test_other_process(const char *shard)
{
	sc_cache *c = open_ok(shard, TAG_A, 0);
	const char *k = tu_path("xproc.lua");
	tu_write_str(k, "xproc");
	sc_blob b;
	TAP_EQ(sc_get(c, k, &b), SC_ENOTFOUND, "parent: not yet cached");
	struct child_put p = { shard, k, "from child", 0 };
	TAP_EQ(tu_run_child(child_op, &p), 0, "child puts");
	TAP_EQ(sc_get(c, k, &b), 0, "parent sees the child's put without reopening");
	tap_ok(b.size == 10 && memcmp(b.data, "from child", 10) == 0, "child's bytes");
	sc_blob old = b;

	p.blob = "from child v2";
	TAP_EQ(tu_run_child(child_op, &p), 0, "child replaces");
	p.op = 1;
	TAP_EQ(tu_run_child(child_op, &p), 0, "child compacts (file replaced)");
	TAP_EQ(sc_get(c, k, &b), 0, "parent hits after the other process's compaction");
	tap_ok(b.size == 13 && memcmp(b.data, "from child v2", 13) == 0, "replaced bytes");
	tap_ok(old.size == 10 && memcmp(old.data, "from child", 10) == 0,
	       "parent's old pointer still valid after the foreign compaction");
	TAP_EQ(sc_put(c, tu_path("xproc.lua"), "from parent", 11), 0,
	       "parent writes to the compacted shard");
	p.op = 3;
	TAP_EQ(tu_run_child(child_op, &p), 0, "child removes");
	TAP_EQ(sc_get(c, k, &b), SC_ENOTFOUND, "parent sees the removal");
	p.op = 0;
	p.blob = "again";
	TAP_EQ(tu_run_child(child_op, &p), 0, "child puts again");
	p.op = 2;
	TAP_EQ(tu_run_child(child_op, &p), 0, "child clears");
	TAP_EQ(sc_get(c, k, &b), SC_ENOTFOUND, "parent sees the clear");
	p.op = 0;
	p.blob = "after clear";
	TAP_EQ(tu_run_child(child_op, &p), 0, "child puts after the clear");
	TAP_EQ(sc_get(c, k, &b), 0, "parent sees it");
	tap_ok(b.size == 11 && memcmp(b.data, "after clear", 11) == 0, "bytes after clear");
	sc_close(c);
}

int main(void)
{
	tu_setup("fresh");
	char shard[PATH_MAX], xshard[PATH_MAX];
	snprintf(shard, sizeof shard, "%s", tu_path("fresh.shard"));
	snprintf(xshard, sizeof xshard, "%s", tu_path("xproc.shard"));
	test_source_identity(shard);
	test_content_freshness(shard);
	test_tags(shard);
	test_exe_identity(shard);
	test_no_source(shard);
	test_tagless(shard);
	test_other_process(xshard);
	return tap_done();
}
