/*
 * test_reuse.c - dead space is reused (docs/FORMAT.md, "Space reuse"):
 * replacements keep the file near its live size without a compaction,
 * identical blobs are stored once, and no byte a reader may still use is
 * overwritten: a handle that handed out a pointer pins the bytes until
 * sc_trim() or sc_close(), in this process or another.
 */
#include "testutil.h"

#define NKEYS 64
#define PAYLOAD 3000 /* with the 32-byte header: one 3 KiB-class extent */

static char keys[NKEYS][PATH_MAX];

static void put_v(sc_cache *c, int i, uint32_t v)
{
	unsigned char buf[PAYLOAD + 64];
	size_t n = tu_blob_make(buf, keys[i], v, PAYLOAD);
	sc_put_opts o = { .no_source = 1 };
	int rc = sc_put_ex(c, keys[i], buf, n, &o);
	if (rc)
		tap_diag("put %s v%u: %s", keys[i], v, sc_strerror(rc));
	TU_CHECK(rc == 0);
}

static uint64_t file_size(const char *path)
{
	struct stat st;
	TU_CHECK(stat(path, &st) == 0);
	return (uint64_t)st.st_size;
}

static int all_latest(sc_cache *c, uint32_t v)
{
	for (int i = 0; i < NKEYS; i++) {
		sc_entry_info e;
		if (sc_lookup(c, keys[i], &e) != 0 || tu_blob_check(e.blob, e.blob_size, keys[i]) != v)
			return 0;
	}
	return 1;
}

static void verify_clean(sc_cache *c, const char *what)
{
	TAP_EQ(sc_verify(c, NULL, NULL, NULL), 0, "%s: the shard verifies", what);
}

/* Replacements in place: the file stops growing. */
static void test_churn(const char *shard, unsigned flags, const char *what)
{
	sc_cache *c;
	sc_stats s;
	uint64_t after_fill, end;

	TU_CHECK(sc_open(&c, shard, "reuse", flags) == 0);
	for (int i = 0; i < NKEYS; i++)
		put_v(c, i, 1);
	after_fill = file_size(shard);
	for (uint32_t v = 2; v <= 30; v++)
		for (int i = 0; i < NKEYS; i++)
			put_v(c, i, v);
	end = file_size(shard);
	TU_CHECK(sc_get_stats(c, &s) == 0);
	tap_diag("%s: %llu bytes after the fill, %llu after 29 rounds of replacements, "
		 "%llu live, %llu dead, %llu compactions", what, (unsigned long long)after_fill,
		 (unsigned long long)end, (unsigned long long)s.live_bytes,
		 (unsigned long long)s.dead_bytes, (unsigned long long)s.compactions);
	TAP_EQ(s.compactions, 0, "%s: no compaction", what);
	/* Without reuse: 29 more blob extents per key (64 x 29 x 3 KiB).  A
	 * no-sync writer also lets up to 1 MiB of freed extents wait for a
	 * sync before it reuses them (FORMAT.md). */
	tap_ok(end < after_fill + (uint64_t)NKEYS * 8 * 3072 + (flags & SC_NOSYNC ? 1u << 20 : 0),
	       "%s: the file grew by less than 8 blobs per key over 29 replacements", what);
	tap_ok(all_latest(c, 30), "%s: every key holds its last version", what);
	verify_clean(c, what);
	sc_close(c);
	TU_CHECK(unlink(shard) == 0);
}

/* A pointer handed out stays valid and unchanged until sc_trim(). */
static void test_pin(const char *shard)
{
	sc_cache *w, *r;
	sc_blob b;
	unsigned char copy[PAYLOAD + 64];
	uint64_t pinned_size, trimmed_size;

	TU_CHECK(sc_open(&w, shard, "reuse", 0) == 0);
	TU_CHECK(sc_open(&r, shard, "reuse", 0) == 0);
	for (int i = 0; i < NKEYS; i++)
		put_v(w, i, 1);
	TAP_EQ(sc_get(r, keys[0], &b), 0, "reader gets key 0");
	TU_CHECK(b.size <= sizeof(copy));
	memcpy(copy, b.data, b.size);
	for (uint32_t v = 2; v <= 10; v++)
		for (int i = 0; i < NKEYS; i++)
			put_v(w, i, v);
	tap_ok(memcmp(copy, b.data, b.size) == 0,
	       "the reader's blob is unchanged after 9 rounds of replacements by another handle");
	pinned_size = file_size(shard);
	sc_trim(r);
	for (uint32_t v = 11; v <= 19; v++)
		for (int i = 0; i < NKEYS; i++)
			put_v(w, i, v);
	trimmed_size = file_size(shard);
	tap_diag("pinned: %llu bytes; after trim and 9 more rounds: %llu",
		 (unsigned long long)pinned_size, (unsigned long long)trimmed_size);
	tap_ok(trimmed_size < pinned_size + (uint64_t)NKEYS * 4 * 3072,
	       "after sc_trim, replacements reuse what the reader held back");
	tap_ok(all_latest(w, 19), "every key holds its last version");
	verify_clean(w, "pinned then trimmed");
	sc_close(r);
	sc_close(w);
	TU_CHECK(unlink(shard) == 0);
}

/* The same across processes: a child holds a pointer while the parent
 * replaces; a killed child's pin goes away with it. */
struct child_arg {
	const char *shard;
	int ready[2], go[2];
};

static int child_reader(void *p)
{
	struct child_arg *a = p;
	sc_cache *c;
	sc_blob b;
	unsigned char copy[PAYLOAD + 64];
	char x = 1;

	if (sc_open(&c, a->shard, "reuse", SC_RDONLY) != 0 || sc_get(c, keys[1], &b) != 0)
		return 2;
	memcpy(copy, b.data, b.size);
	if (write(a->ready[1], &x, 1) != 1 || read(a->go[0], &x, 1) != 1)
		return 3;
	int rc = memcmp(copy, b.data, b.size) == 0 && tu_blob_check(b.data, b.size, keys[1]) == 1
			 ? 0 : 4;
	sc_close(c);
	return rc;
}

static void test_pin_process(const char *shard)
{
	struct child_arg a = { .shard = shard };
	sc_cache *w;
	char x = 1;
	pid_t pid;

	TU_CHECK(sc_open(&w, shard, "reuse", 0) == 0);
	for (int i = 0; i < NKEYS; i++)
		put_v(w, i, 1);
	TU_CHECK(pipe(a.ready) == 0 && pipe(a.go) == 0);
	pid = tu_spawn(child_reader, &a);
	TU_CHECK(read(a.ready[0], &x, 1) == 1);
	for (uint32_t v = 2; v <= 8; v++)
		for (int i = 0; i < NKEYS; i++)
			put_v(w, i, v);
	TU_CHECK(write(a.go[1], &x, 1) == 1);
	TAP_EQ(tu_wait(pid), 0, "another process's blob is unchanged while it holds it");

	/* a pin dies with its process */
	pid = tu_spawn(child_reader, &a);
	TU_CHECK(read(a.ready[0], &x, 1) == 1 || 1);
	kill(pid, SIGKILL);
	tu_wait(pid);
	uint64_t before = file_size(shard);
	for (uint32_t v = 9; v <= 15; v++)
		for (int i = 0; i < NKEYS; i++)
			put_v(w, i, v);
	tap_ok(file_size(shard) < before + (uint64_t)NKEYS * 4 * 3072,
	       "after the reader was killed, its pin is gone and space is reused");
	verify_clean(w, "across processes");
	sc_close(w);
	TU_CHECK(unlink(shard) == 0);
}

/* Identical bytes are stored once; removing one holder keeps the blob. */
static void test_dedup(const char *shard)
{
	sc_cache *c;
	sc_stats s;
	sc_entry_info e1, e2;
	unsigned char buf[PAYLOAD + 64];
	sc_put_opts o = { .no_source = 1 };
	size_t n = tu_blob_make(buf, keys[0], 7, PAYLOAD);

	TU_CHECK(sc_open(&c, shard, "reuse", 0) == 0);
	for (int i = 0; i < 3; i++)
		TU_CHECK(sc_put_ex(c, keys[i], buf, n, &o) == 0);
	TU_CHECK(sc_get_stats(c, &s) == 0);
	TAP_EQ(s.blobs, 1, "three entries with the same bytes: one blob");
	TAP_EQ(s.logical_bytes, 3 * n, "logical bytes count each entry");
	TAP_EQ(s.stored_bytes, n, "stored bytes count the blob once");
	TU_CHECK(sc_lookup(c, keys[0], &e1) == 0 && sc_lookup(c, keys[2], &e2) == 0);
	tap_ok(e1.blob == e2.blob && e1.blob_id[0] == e2.blob_id[0] &&
	       e1.blob_id[1] == e2.blob_id[1], "they share one blob and report one blob_id");
	TU_CHECK(sc_remove(c, keys[0]) == 0);
	TU_CHECK(sc_lookup(c, keys[2], &e2) == 0);
	tap_ok(tu_blob_check(e2.blob, e2.blob_size, keys[0]) == 7,
	       "removing one holder keeps the shared bytes");
	TU_CHECK(sc_remove(c, keys[1]) == 0 && sc_remove(c, keys[2]) == 0);
	TU_CHECK(sc_get_stats(c, &s) == 0);
	TAP_EQ(s.blobs, 0, "the last holder gone: no blob");
	TAP_EQ(s.stored_bytes, 0, "... and no stored bytes");
	verify_clean(c, "dedup");
	TAP_EQ(sc_compact(c), 0, "compaction");
	verify_clean(c, "dedup, compacted");
	sc_close(c);
	TU_CHECK(unlink(shard) == 0);
}

int main(void)
{
	tu_setup("reuse");
	for (int i = 0; i < NKEYS; i++)
		snprintf(keys[i], sizeof(keys[i]), "/reuse/src/module%d.py", i);
	test_churn(tu_path("durable.shard"), 0, "durable");
	test_churn(tu_path("nosync.shard"), SC_NOSYNC, "no-sync");
	test_pin(tu_path("pin.shard"));
	test_pin_process(tu_path("pinproc.shard"));
	test_dedup(tu_path("dedup.shard"));
	return tap_done();
}
