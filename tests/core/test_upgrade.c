/*
 * test_upgrade.c - a format-2 library meets a format-1 shard.
 *
 * The fixture tests/core/data/v1.shard was written by a format-1 library
 * (make_v1_fixture.c; its entries are listed in v1_fixture.h, the values
 * taken from the clock and the machine in data/v1.expect).  Meson passes
 * both paths:  test_upgrade V1.SHARD V1.EXPECT.  Each part works on its own
 * copy, in its own directory:
 *
 *  a. A read-only handle opens it as a miss source: the open succeeds,
 *     every lookup misses with SC_ENOTFOUND, stats work, and the file keeps
 *     every byte (and its inode).
 *  b. A writable handle rebuilds it at its first write (a put of a new
 *     key): every live entry is carried over with every field (key, blob
 *     bytes, tag, source stat or no_source, exe_id, exe_path, cached time),
 *     the removed key stays absent, the new key is there, the header says
 *     format 2, the file was replaced by rename, sc_verify finds nothing,
 *     and a new handle sees the same.
 *  c. The same when the first write is the removal of a live entry.
 *  d. A read-only handle that opened the v1 file before a writer rebuilt
 *     it never misreads: each lookup misses or returns the exact entry, and
 *     after its path check (once a second) it serves the rebuilt shard.
 *  e. Copies cut short (inside the header, the meta pages, the data) crash
 *     nothing: a read-only open fails or misses; a writable open and put
 *     succeed and the put is kept.
 *
 * Under a format-1 library parts b and c fail (no rebuild happens) and the
 * misses of part a are hits: that is the point of the test.
 */
#include <dirent.h>
#include <sys/mman.h>

#include "testutil.h"
#include "v1_fixture.h"

#define NEW_KEY "/srv/app/after-upgrade.lua"

static const char *fixture_path;
static unsigned char *fixture;
static size_t fixture_len;

/* from v1.expect */
static struct {
	int seen;
	long long cached_sec;
	unsigned cached_nsec;
	unsigned long long blob_sum;
	char exe_id[256];
} want[FX_NLIVE];
static size_t want_file_len;
static unsigned long long want_file_sum;

static unsigned char *blob[FX_NLIVE]; /* fx_blob() of each live entry */

static const struct fx_entry new_entry = {
	NEW_KEY, FX_TAG_LUA, NULL, 1, 0, 0, 0, 0x6e65772d6b6579ull, 2000
};
static unsigned char new_blob[2000];

static void load_expect(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[8192];

	TU_CHECK(f != NULL);
	while (fgets(line, sizeof line, f)) {
		int i;
		long long sec;
		unsigned nsec;
		unsigned long long sum;
		char id[256];

		if (!strncmp(line, "file ", 5)) {
			TU_CHECK(sscanf(line, "file %zu %llx", &want_file_len, &want_file_sum) == 2);
		} else if (!strncmp(line, "entry ", 6)) {
			TU_CHECK(sscanf(line, "entry %d %lld %u %llx %255s", &i, &sec, &nsec, &sum,
					id) == 5);
			TU_CHECK(i >= 0 && i < FX_NLIVE && !want[i].seen);
			want[i].seen = 1;
			want[i].cached_sec = sec;
			want[i].cached_nsec = nsec;
			want[i].blob_sum = sum;
			snprintf(want[i].exe_id, sizeof want[i].exe_id, "%s", id);
		} else {
			TU_CHECK(line[0] == '#' || line[0] == '\n');
		}
	}
	fclose(f);
	for (int i = 0; i < FX_NLIVE; i++)
		TU_CHECK(want[i].seen);
	TU_CHECK(want_file_len != 0);
}

static int str_is(const char *s, size_t len, const char *w)
{
	return len == strlen(w) && (len == 0 || memcmp(s, w, len) == 0);
}

/*
 * Look up fx_live[i] (or the new entry, i == -1) through @p c.
 * @return the lookup's code if it failed; 1 if it hit but some field is not
 * what the fixture holds (each difference is described when @p verbose);
 * 0 if every field is exact.
 */
static int entry_check(sc_cache *c, int i, int verbose)
{
	const struct fx_entry *x = i < 0 ? &new_entry : &fx_live[i];
	const unsigned char *bytes = i < 0 ? new_blob : blob[i];
	sc_entry_info e;
	int rc, bad = 0;

#define DIFF(cond, ...)                                 \
	do {                                            \
		if (cond) {                             \
			bad = 1;                        \
			if (verbose)                    \
				tap_diag(__VA_ARGS__);  \
		}                                       \
	} while (0)

	memset(&e, 0, sizeof(e));
	rc = sc_lookup(c, x->key, &e);
	if (rc)
		return rc;
	DIFF(!str_is(e.key, e.key_len, x->key), "%s: key is '%.*s'", x->key, (int)e.key_len,
	     e.key);
	DIFF(e.blob_size != x->len, "%s: blob of %llu bytes, want %zu", x->key,
	     (unsigned long long)e.blob_size, x->len);
	DIFF(e.blob_size == x->len && x->len && memcmp(e.blob, bytes, x->len),
	     "%s: blob bytes differ", x->key);
	DIFF(e.blob_id[0] != XXH3_128bits(bytes, x->len).low64 ||
	     e.blob_id[1] != XXH3_128bits(bytes, x->len).high64, "%s: blob_id %016llx%016llx",
	     x->key, (unsigned long long)e.blob_id[1], (unsigned long long)e.blob_id[0]);
	DIFF((uintptr_t)e.blob % SC_BLOB_ALIGN, "%s: blob at %p is not aligned", x->key, e.blob);
	DIFF(!str_is(e.tag, e.tag_len, x->tag), "%s: tag '%.*s', want '%s'", x->key,
	     (int)e.tag_len, e.tag, x->tag);
	DIFF(e.has_source != !x->no_source, "%s: has_source %d", x->key, e.has_source);
	DIFF(e.source_mtime_sec != x->mtime_sec || e.source_mtime_nsec != x->mtime_nsec ||
		     e.source_size != x->src_size,
	     "%s: source mtime %lld.%09u size %llu, want %lld.%09u size %llu", x->key,
	     (long long)e.source_mtime_sec, e.source_mtime_nsec,
	     (unsigned long long)e.source_size, (long long)x->mtime_sec, x->mtime_nsec,
	     (unsigned long long)x->src_size);
	if (i >= 0) {
		DIFF(!str_is(e.exe_path, e.exe_path_len, x->exe_path),
		     "%s: exe_path '%.*s', want '%s'", x->key, (int)e.exe_path_len, e.exe_path,
		     x->exe_path);
		DIFF(!str_is(e.exe_id, e.exe_id_len, want[i].exe_id),
		     "%s: exe_id '%.*s', want '%s'", x->key, (int)e.exe_id_len, e.exe_id,
		     want[i].exe_id);
		DIFF(e.cached_sec != want[i].cached_sec || e.cached_nsec != want[i].cached_nsec,
		     "%s: cached at %lld.%09u, want %lld.%09u", x->key, (long long)e.cached_sec,
		     e.cached_nsec, want[i].cached_sec, want[i].cached_nsec);
	}
#undef DIFF
	return bad;
}

static const char *code(int rc)
{
	static char buf[8][128];
	static int n;
	char *b = buf[n++ & 7];

	if (rc == 1)
		return "a hit with wrong contents";
	snprintf(b, sizeof buf[0], "%d %s", rc, rc ? sc_strerror(rc) : "hit");
	return b;
}

/* A fresh copy of the fixture as DIR/s.shard, mode 0600; its path in @p out. */
static void fresh_copy(const char *dir, char out[PATH_MAX])
{
	TU_CHECK(mkdir(tu_path("%s", dir), 0700) == 0);
	snprintf(out, PATH_MAX, "%s", tu_path("%s/s.shard", dir));
	tu_copy_file(fixture_path, out, 0600);
}

static uint32_t format_version(const char *path)
{
	uint32_t v = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	TU_CHECK(fd >= 0);
	TU_CHECK(pread(fd, &v, sizeof v, FX_VERSION_OFF) == sizeof v);
	close(fd);
	return v;
}

static int has_magic(const char *path)
{
	char m[8] = { 0 };
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	TU_CHECK(fd >= 0);
	ssize_t r = pread(fd, m, sizeof m, 0);
	close(fd);
	return r == 8 && !memcmp(m, FX_MAGIC, 8);
}

static int same_bytes(const char *path, const unsigned char *img, size_t len)
{
	size_t n;
	unsigned char *b = tu_read_file(path, &n);
	int same = n == len && memcmp(b, img, len) == 0;

	free(b);
	return same;
}

static ino_t inode(const char *path)
{
	struct stat st;

	TU_CHECK(stat(path, &st) == 0);
	return st.st_ino;
}

/* Files in the directory of @p shard besides the shard and its lock file
 * (each one is named in a diagnostic).  @p all: count every one; otherwise
 * only leftovers: temp files and set-aside copies (a v1 shard is not
 * damaged, so it is never set aside as corrupt). */
static int strays(const char *shard, int all)
{
	char dir[PATH_MAX];
	const char *base = strrchr(shard, '/') + 1;
	size_t blen = strlen(base);
	DIR *d;
	struct dirent *de;
	int n = 0;

	snprintf(dir, sizeof dir, "%.*s", (int)(base - shard - 1), shard);
	TU_CHECK((d = opendir(dir)) != NULL);
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..") ||
		    !strcmp(de->d_name, base) ||
		    (!strncmp(de->d_name, base, blen) && !strcmp(de->d_name + blen, ".lock")))
			continue;
		tap_diag("beside the shard: %s", de->d_name);
		if (all || strstr(de->d_name, ".tmp") || strstr(de->d_name, SC_SET_ASIDE_INFIX))
			n++;
	}
	closedir(d);
	return n;
}

struct problems {
	int n;
};

static void on_problem(void *arg, uint64_t off, const char *what)
{
	struct problems *p = arg;

	p->n++;
	tap_diag("verify: at %llu: %s", (unsigned long long)off, what);
}

/* sc_verify finds nothing (0 and no problem reported). */
static int verify_clean(sc_cache *c)
{
	struct problems p = { 0 };
	uint64_t n = 0;
	int rc = sc_verify(c, on_problem, &p, &n);

	if (rc)
		tap_diag("sc_verify: %s", code(rc));
	return rc == 0 && p.n == 0;
}

static int put_new(sc_cache *c)
{
	sc_put_opts po = { .no_source = 1, .tag = new_entry.tag };

	return sc_put_ex(c, new_entry.key, new_blob, new_entry.len, &po);
}

/* ---- the fixture itself ---- */

static void test_fixture(void)
{
	int ok = 1;
	uint32_t version = 0;

	if (fixture_len >= 12)
		memcpy(&version, fixture + FX_VERSION_OFF, sizeof version);
	tap_ok(fixture_len == want_file_len && XXH3_64bits(fixture, fixture_len) == want_file_sum,
	       "the fixture is the file v1.expect describes (%zu bytes)", fixture_len);
	tap_ok(fixture_len >= 12 && !memcmp(fixture, FX_MAGIC, 8) && version == 1,
	       "the fixture is a format-1 shard");
	for (int i = 0; i < FX_NLIVE; i++)
		if (XXH3_64bits(blob[i], fx_live[i].len) != want[i].blob_sum) {
			tap_diag("%s: v1_fixture.h makes other bytes", fx_live[i].key);
			ok = 0;
		}
	tap_ok(ok, "v1_fixture.h makes the blob bytes the fixture holds");
}

/* ---- a: read-only, a miss source ---- */

static void part_a(void)
{
	char shard[PATH_MAX];
	sc_cache *c = NULL;
	sc_entry_info e;
	sc_blob b;
	sc_stats st = { 0 };
	int rc;

	fresh_copy("a", shard);
	ino_t ino = inode(shard);
	rc = sc_open(&c, shard, FX_TAG_LUA, SC_RDONLY);
	TAP_EQ(rc, 0, "a: a read-only handle opens the v1 shard (%s)", code(rc));
	if (c) {
		for (int i = 0; i < FX_NLIVE; i++) {
			rc = sc_lookup(c, fx_live[i].key, &e);
			tap_ok(rc == SC_ENOTFOUND, "a: sc_lookup %s misses with SC_ENOTFOUND (%s)",
			       fx_live[i].key, code(rc));
		}
		rc = sc_lookup(c, fx_removed.key, &e);
		TAP_EQ(rc, SC_ENOTFOUND, "a: the removed key misses too (%s)", code(rc));
		int hits = 0;
		for (int i = 0; i < FX_NLIVE; i++)
			if ((rc = sc_get(c, fx_live[i].key, &b)) != SC_ENOTFOUND) {
				tap_diag("sc_get %s: %s", fx_live[i].key, code(rc));
				hits++;
			}
		TAP_EQ(hits, 0, "a: sc_get misses every key with SC_ENOTFOUND");
		rc = sc_get_stats(c, &st);
		TAP_EQ(rc, 0, "a: sc_get_stats works (%s)", code(rc));
		tap_diag("stats: %llu entries, file size %llu, generation %llu",
			 (unsigned long long)st.entries, (unsigned long long)st.file_size,
			 (unsigned long long)st.generation);
		rc = put_new(c);
		TAP_EQ(rc, SC_EREADONLY, "a: a put through it is SC_EREADONLY (%s)", code(rc));
		sc_close(c);
	}
	tap_ok(same_bytes(shard, fixture, fixture_len) && inode(shard) == ino,
	       "a: the file keeps every byte and its inode");
	TAP_EQ(strays(shard, 1), 0, "a: nothing is written beside it");
}

/* ---- b, c: a writable handle rebuilds at its first write ---- */

/* Checks shared by b and c after the first write: @p gone is the live
 * entry that write removed (-1: none), @p has_new whether NEW_KEY was put. */
static void after_rebuild(const char *what, sc_cache *c, const char *shard, ino_t old_ino,
			  int gone, int has_new)
{
	sc_entry_info e;
	sc_stats st = { 0 };
	int rc;

	for (int i = 0; i < FX_NLIVE; i++) {
		if (i == gone)
			continue;
		rc = entry_check(c, i, 1);
		tap_ok(rc == 0, "%s: %s carried over, every field exact (%s)", what,
		       fx_live[i].key, code(rc));
	}
	if (gone >= 0) {
		rc = sc_lookup(c, fx_live[gone].key, &e);
		TAP_EQ(rc, SC_ENOTFOUND, "%s: the removed %s is gone (%s)", what,
		       fx_live[gone].key, code(rc));
	}
	rc = sc_lookup(c, fx_removed.key, &e);
	TAP_EQ(rc, SC_ENOTFOUND, "%s: the key removed in v1 stays absent (%s)", what, code(rc));
	rc = entry_check(c, -1, 1);
	if (has_new)
		tap_ok(rc == 0, "%s: the new key is there (%s)", what, code(rc));
	else
		TAP_EQ(rc, SC_ENOTFOUND, "%s: no new key (%s)", what, code(rc));
	int want_entries = FX_NLIVE - (gone >= 0) + has_new;
	rc = sc_get_stats(c, &st);
	tap_ok(rc == 0 && st.entries == (uint64_t)want_entries, "%s: stats say %d entries (%s, %llu)",
	       what, want_entries, code(rc), (unsigned long long)st.entries);
	tap_ok(has_magic(shard), "%s: the file at the path has the shard magic", what);
	TAP_EQ(format_version(shard), 2, "%s: its header says format 2", what);
	tap_ok(inode(shard) != old_ino, "%s: the v1 file was replaced by rename (new inode)", what);
	TAP_EQ(strays(shard, 0), 0, "%s: no temp file or set-aside copy is left beside it", what);
	tap_ok(verify_clean(c), "%s: sc_verify finds nothing", what);

	/* and a new handle, read-only, sees the same */
	sc_cache *r = NULL;
	rc = sc_open(&r, shard, NULL, SC_RDONLY);
	TAP_EQ(rc, 0, "%s: a new read-only handle opens the rebuilt shard (%s)", what, code(rc));
	if (r) {
		int bad = 0;
		for (int i = 0; i < FX_NLIVE; i++)
			if (i != gone && (rc = entry_check(r, i, 1)) != 0) {
				tap_diag("%s: %s", fx_live[i].key, code(rc));
				bad++;
			}
		if (has_new && (rc = entry_check(r, -1, 1)) != 0) {
			tap_diag("%s: %s", NEW_KEY, code(rc));
			bad++;
		}
		if (gone >= 0 && (rc = sc_lookup(r, fx_live[gone].key, &e)) != SC_ENOTFOUND) {
			tap_diag("%s: %s", fx_live[gone].key, code(rc));
			bad++;
		}
		TAP_EQ(bad, 0, "%s: ... and finds exactly the same entries", what);
		sc_close(r);
	}
}

static void part_b(void)
{
	char shard[PATH_MAX];
	sc_cache *c = NULL;
	int rc;

	fresh_copy("b", shard);
	ino_t ino = inode(shard);
	rc = sc_open(&c, shard, FX_TAG_LUA, SC_NOSYNC);
	TAP_EQ(rc, 0, "b: a writable handle opens the v1 shard (%s)", code(rc));
	if (!c)
		return;
	int misread = 0;
	for (int i = 0; i < FX_NLIVE; i++)
		if ((rc = entry_check(c, i, 1)) != 0 && rc != SC_ENOTFOUND) {
			tap_diag("%s: %s", fx_live[i].key, code(rc));
			misread++;
		}
	TAP_EQ(misread, 0, "b: before its first write, each lookup misses or is exact");
	tap_ok(same_bytes(shard, fixture, fixture_len) && inode(shard) == ino,
	       "b: the open and the lookups write nothing");
	rc = put_new(c);
	TAP_EQ(rc, 0, "b: the first write, a put of a new key, succeeds (%s)", code(rc));
	after_rebuild("b", c, shard, ino, -1, 1);

	/* the rebuilt shard takes further writes */
	rc = sc_remove(c, NEW_KEY);
	TAP_EQ(rc, 0, "b: a later remove works (%s)", code(rc));
	rc = entry_check(c, FX_BIG, 1);
	tap_ok(rc == 0 && verify_clean(c), "b: ... the rest stays, the shard verifies (%s)",
	       code(rc));
	sc_close(c);
}

static void part_c(void)
{
	char shard[PATH_MAX];
	sc_cache *c = NULL;
	int rc;

	fresh_copy("c", shard);
	ino_t ino = inode(shard);
	rc = sc_open(&c, shard, FX_TAG_PYC, SC_NOSYNC);
	TAP_EQ(rc, 0, "c: a writable handle opens the v1 shard (%s)", code(rc));
	if (!c)
		return;
	rc = sc_remove(c, fx_live[FX_UTIL].key);
	TAP_EQ(rc, 0, "c: the first write, removing the live %s, succeeds (%s)",
	       fx_live[FX_UTIL].key, code(rc));
	after_rebuild("c", c, shard, ino, FX_UTIL, 0);
	sc_close(c);
}

/* ---- d: a reader of the v1 file while a writer rebuilds it ---- */

/* One round of lookups through @p r: how many hit exactly; *misread counts
 * hits with wrong contents and failures other than SC_ENOTFOUND. */
static int reader_round(sc_cache *r, int *misread, int verbose)
{
	int exact = 0;

	for (int i = -1; i < FX_NLIVE; i++) {
		int rc = entry_check(r, i, verbose);
		if (rc == 0) {
			exact++;
		} else if (rc != SC_ENOTFOUND) {
			tap_diag("reader: %s: %s", i < 0 ? NEW_KEY : fx_live[i].key, code(rc));
			(*misread)++;
		}
	}
	return exact;
}

static void part_d(void)
{
	char shard[PATH_MAX];
	sc_cache *r = NULL, *w = NULL;
	int rc, misread = 0, late = 0, exact;
	sc_stats st = { 0 };

	fresh_copy("d", shard);
	rc = sc_open(&r, shard, FX_TAG_LUA, SC_RDONLY);
	TAP_EQ(rc, 0, "d: a read-only handle opens the v1 shard first (%s)", code(rc));
	rc = sc_open(&w, shard, FX_TAG_LUA, SC_NOSYNC);
	TAP_EQ(rc, 0, "d: then a writable handle (%s)", code(rc));
	if (!r || !w) {
		sc_close(r);
		sc_close(w);
		return;
	}
	reader_round(r, &misread, 1);
	TAP_EQ(misread, 0, "d: before the rebuild the reader misses or is exact");
	rc = put_new(w);
	TAP_EQ(rc, 0, "d: the writer's put (the rebuild) succeeds (%s)", code(rc));
	TAP_EQ(format_version(shard), 2, "d: the file at the path is format 2 now");
	reader_round(r, &misread, 1);
	TAP_EQ(misread, 0, "d: right after the rebuild the reader misses or is exact");

	/* readers re-check the path about once a second */
	double end = tu_now() + 3.0;
	do {
		exact = reader_round(r, &late, 1);
		if (exact == FX_NLIVE + 1 || late)
			break;
		usleep(50 * 1000);
	} while (tu_now() < end);
	TAP_EQ(late, 0, "d: while it notices the new file, it never misreads");
	TAP_EQ(exact, FX_NLIVE + 1,
	       "d: within 3 s it serves the rebuilt shard: all %d entries exact", FX_NLIVE + 1);
	rc = sc_get_stats(r, &st);
	tap_ok(rc == 0, "d: the reader's stats work (%s; %llu entries)", code(rc),
	       (unsigned long long)st.entries);
	sc_close(r);
	sc_close(w);
}

/* ---- e: copies cut short ---- */

struct eres {
	int done;
	int ro_rc, ro_hits, ro_unchanged;
	int rw_rc, put_rc, get_rc, reopen_rc, verify_ok, v1_exact, v1_misread;
};

struct earg {
	const char *shard;
	size_t cut;
	struct eres *res;
};

static int e_child(void *p)
{
	const struct earg *a = p;
	struct eres *res = a->res;
	sc_cache *c = NULL;
	sc_entry_info e;

	res->ro_rc = sc_open(&c, a->shard, FX_TAG_LUA, SC_RDONLY);
	if (c) {
		for (int i = 0; i < FX_NLIVE; i++)
			if (sc_lookup(c, fx_live[i].key, &e) == 0)
				res->ro_hits++;
		sc_close(c);
		c = NULL;
	}
	res->ro_unchanged = same_bytes(a->shard, fixture, a->cut);

	res->rw_rc = sc_open(&c, a->shard, FX_TAG_LUA, SC_NOSYNC);
	if (c) {
		res->put_rc = put_new(c);
		res->get_rc = entry_check(c, -1, 1);
		res->verify_ok = verify_clean(c);
		for (int i = 0; i < FX_NLIVE; i++) {
			int rc = entry_check(c, i, 1);
			if (rc == 0)
				res->v1_exact++;
			else if (rc == 1)
				res->v1_misread++;
		}
		sc_close(c);
		c = NULL;
		res->reopen_rc = sc_open(&c, a->shard, NULL, SC_RDONLY);
		if (c)
			res->reopen_rc = entry_check(c, -1, 1);
		sc_close(c);
	}
	res->done = 1;
	fflush(stdout); /* its diagnostics: the child leaves with _exit */
	return 0;
}

static void part_e(void)
{
	const size_t cuts[] = { 100, 800, 4096, fixture_len / 2, fixture_len - 64 };
	struct eres *res = mmap(NULL, sizeof(*res), PROT_READ | PROT_WRITE,
				MAP_SHARED | MAP_ANONYMOUS, -1, 0);

	TU_CHECK(res != MAP_FAILED);
	for (size_t k = 0; k < sizeof cuts / sizeof cuts[0]; k++) {
		char dir[32], shard[PATH_MAX];
		size_t cut = cuts[k];

		snprintf(dir, sizeof dir, "e%zu", cut);
		TU_CHECK(mkdir(tu_path("%s", dir), 0700) == 0);
		snprintf(shard, sizeof shard, "%s", tu_path("%s/s.shard", dir));
		{
			int fd = open(shard, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
			TU_CHECK(fd >= 0);
			TU_CHECK(write(fd, fixture, cut) == (ssize_t)cut);
			TU_CHECK(close(fd) == 0);
		}
		memset(res, 0, sizeof(*res));
		tap_diag("e: the fixture cut to %zu of %zu bytes", cut, fixture_len);
		struct earg a = { shard, cut, res };
		int st = tu_run_child(e_child, &a);
		tap_ok(st == 0 && res->done, "e: cut to %zu bytes: nothing crashes (child status %d)",
		       cut, st);
		tap_ok(res->ro_rc != 0 || res->ro_hits == 0,
		       "e: cut to %zu: a read-only open fails or every lookup misses (%s, %d hits)",
		       cut, code(res->ro_rc), res->ro_hits);
		tap_ok(res->ro_unchanged, "e: cut to %zu: the read-only handle changes no byte", cut);
		tap_ok(res->rw_rc == 0 && res->put_rc == 0,
		       "e: cut to %zu: a writable open and a put succeed (%s, %s)", cut,
		       code(res->rw_rc), code(res->put_rc));
		tap_ok(res->get_rc == 0 && res->reopen_rc == 0,
		       "e: cut to %zu: the put is kept (%s; new handle: %s)", cut, code(res->get_rc),
		       code(res->reopen_rc));
		tap_ok(res->verify_ok && res->v1_misread == 0,
		       "e: cut to %zu: the shard verifies, no v1 entry is misread (%d carried over)",
		       cut, res->v1_exact);
	}
	munmap(res, sizeof(*res));
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		printf("Bail out! usage: %s V1.SHARD V1.EXPECT (meson passes tests/core/data/v1.*)\n",
		       argv[0]);
		return 1;
	}
	if (sizeof(void *) != 8 || *(const uint8_t *)&(uint16_t){ 1 } != 1) {
		printf("1..0 # SKIP the fixture is a little-endian 64-bit shard\n");
		return 0;
	}
	fixture_path = argv[1];
	fixture = tu_read_file(fixture_path, &fixture_len);
	load_expect(argv[2]);
	for (int i = 0; i < FX_NLIVE; i++) {
		blob[i] = malloc(fx_live[i].len ? fx_live[i].len : 1);
		TU_CHECK(blob[i]);
		fx_blob(&fx_live[i], blob[i]);
	}
	fx_blob(&new_entry, new_blob);
	tu_setup("upgrade");

	test_fixture();
	part_a();
	part_b();
	part_c();
	part_d();
	part_e();

	for (int i = 0; i < FX_NLIVE; i++)
		free(blob[i]);
	free(fixture);
	return tap_done();
}
