/*
 * make_v1_fixture.c - write tests/core/data/v1.shard and v1.expect, the
 * format-1 shard that test_upgrade.c hands to a later library.
 *
 * Run it only with a library that writes format 1 (it refuses otherwise),
 * on a little-endian 64-bit machine (the shard records both), from the
 * source root:
 *
 *     meson setup build && ninja -C build tests/core/make_v1_fixture
 *     build/tests/core/make_v1_fixture tests/core/data
 *
 * It is built on request only and is not a test.  The entries are the ones
 * tests/core/v1_fixture.h lists.  They are stored in this order:
 *
 *     put fx_old_main, put fx_removed, put UTIL, ODD, EMPTY,
 *     put MAIN (replacing fx_old_main), put BIG, remove fx_removed, put DUP
 *
 * so the file also holds two dead records and a tombstone.  Then it reopens
 * the shard read-only, checks every field of every entry against
 * v1_fixture.h, runs sc_verify, and writes v1.expect: the whole file's size
 * and XXH3-64, then for each live entry what the library took from the
 * clock and the machine (cached time, exe_id) and its blob's XXH3-64.
 *
 * The output is not byte-reproducible (shard_id, creation and cached times,
 * the writers' build ids differ from run to run), so the two files are
 * committed together and only ever regenerated together.
 */
#include "testutil.h"
#include "v1_fixture.h"

static sc_cache *c;

static void put(const struct fx_entry *e)
{
	unsigned char *buf = malloc(e->len ? e->len : 1);
	struct stat src;
	sc_put_opts po = { .tag = e->tag, .exe_path = e->exe_path, .no_source = e->no_source };
	int rc;

	TU_CHECK(buf);
	fx_blob(e, buf);
	if (!e->no_source) {
		memset(&src, 0, sizeof(src));
		src.st_mtim.tv_sec = (time_t)e->mtime_sec;
		src.st_mtim.tv_nsec = (long)e->mtime_nsec;
		src.st_size = (off_t)e->src_size;
		po.source = &src;
	}
	rc = sc_put_ex(c, e->key, buf, e->len, &po);
	if (rc) {
		fprintf(stderr, "make_v1_fixture: put %s: %s\n", e->key, sc_strerror(rc));
		exit(1);
	}
	free(buf);
}

static int problems;

static void on_problem(void *arg, uint64_t off, const char *what)
{
	(void)arg;
	fprintf(stderr, "make_v1_fixture: verify: at %llu: %s\n", (unsigned long long)off, what);
	problems++;
}

#define FAIL_IF(cond, ...)                                              \
	do {                                                            \
		if (cond) {                                             \
			fprintf(stderr, "make_v1_fixture: " __VA_ARGS__); \
			fprintf(stderr, "\n");                          \
			exit(1);                                        \
		}                                                       \
	} while (0)

static int str_is(const char *s, size_t len, const char *want)
{
	return len == strlen(want) && memcmp(s, want, len) == 0;
}

int main(int argc, char **argv)
{
	char out_shard[PATH_MAX], out_expect[PATH_MAX], tmp[PATH_MAX + 8];
	uint32_t version;
	sc_entry_info e;
	sc_stats st;
	uint64_t n_checked;
	size_t len;
	unsigned char *img;
	FILE *f;
	int rc;

	if (argc != 2) {
		fprintf(stderr, "usage: %s OUTDIR   (writes OUTDIR/v1.shard and OUTDIR/v1.expect)\n",
			argv[0]);
		return 2;
	}
	FAIL_IF(strlen(argv[1]) > PATH_MAX - 32, "OUTDIR too long");
	snprintf(out_shard, sizeof out_shard, "%s/v1.shard", argv[1]);
	snprintf(out_expect, sizeof out_expect, "%s/v1.expect", argv[1]);
	FAIL_IF(sizeof(void *) != 8 || *(const uint8_t *)&(uint16_t){ 1 } != 1,
		"the fixture is made on a little-endian 64-bit machine");

	/* made in a temp directory, so that no lock file lands in OUTDIR */
	tu_setup("mkv1");
	const char *shard = tu_path("v1.shard");
	rc = sc_open(&c, shard, NULL, SC_NOSYNC | SC_IGNORE_ENV);
	FAIL_IF(rc, "open %s: %s", shard, sc_strerror(rc));
	put(&fx_old_main);
	put(&fx_removed);
	put(&fx_live[FX_UTIL]);
	put(&fx_live[FX_ODD]);
	put(&fx_live[FX_EMPTY]);
	put(&fx_live[FX_MAIN]);
	put(&fx_live[FX_BIG]);
	rc = sc_remove(c, fx_removed.key);
	FAIL_IF(rc, "remove %s: %s", fx_removed.key, sc_strerror(rc));
	put(&fx_live[FX_DUP]);
	sc_close(c);

	img = tu_read_file(shard, &len);
	FAIL_IF(len < 4096 || memcmp(img, FX_MAGIC, 8), "%s is not a shard", shard);
	memcpy(&version, img + FX_VERSION_OFF, sizeof version);
	FAIL_IF(version != 1,
		"this library writes format %u; build make_v1_fixture from a revision "
		"whose library writes format 1", version);

	/* read it back: every field as v1_fixture.h says */
	rc = sc_open(&c, shard, NULL, SC_RDONLY | SC_IGNORE_ENV);
	FAIL_IF(rc, "reopen: %s", sc_strerror(rc));
	FAIL_IF(sc_get_stats(c, &st) || st.entries != FX_NLIVE || st.dead_bytes == 0,
		"stats: %llu entries, %llu dead bytes", (unsigned long long)st.entries,
		(unsigned long long)st.dead_bytes);
	rc = sc_verify(c, on_problem, NULL, &n_checked);
	FAIL_IF(rc || problems, "verify: %s", sc_strerror(rc));
	rc = sc_lookup(c, fx_removed.key, &e);
	FAIL_IF(rc != SC_ENOTFOUND, "removed key: %s", sc_strerror(rc));

	snprintf(tmp, sizeof tmp, "%s.tmp", out_expect);
	f = fopen(tmp, "w");
	FAIL_IF(!f, "%s: %s", tmp, strerror(errno));
	fprintf(f, "# Written by make_v1_fixture (tests/core/make_v1_fixture.c) with a format-1\n"
		   "# library, together with v1.shard; read by test_upgrade.c.\n"
		   "# file  SIZE XXH3-64-OF-v1.shard\n"
		   "# entry INDEX CACHED_SEC CACHED_NSEC BLOB-XXH3-64 EXE_ID KEY\n"
		   "# (INDEX into fx_live[] of v1_fixture.h; KEY for the reader only)\n");
	fprintf(f, "file %zu %016llx\n", len, (unsigned long long)XXH3_64bits(img, len));
	for (int i = 0; i < FX_NLIVE; i++) {
		const struct fx_entry *x = &fx_live[i];
		unsigned char *want = malloc(x->len ? x->len : 1);

		TU_CHECK(want);
		fx_blob(x, want);
		rc = sc_lookup(c, x->key, &e);
		FAIL_IF(rc, "lookup %s: %s", x->key, sc_strerror(rc));
		FAIL_IF(!str_is(e.key, e.key_len, x->key) || !str_is(e.tag, e.tag_len, x->tag) ||
				!str_is(e.exe_path, e.exe_path_len, x->exe_path) ||
				e.has_source != !x->no_source ||
				e.source_mtime_sec != x->mtime_sec ||
				e.source_mtime_nsec != x->mtime_nsec ||
				e.source_size != x->src_size || e.blob_size != x->len ||
				(x->len && memcmp(e.blob, want, x->len)) ||
				e.blob_checksum != XXH3_64bits(want, x->len) || e.exe_id_len == 0 ||
				memchr(e.exe_id, ' ', e.exe_id_len),
			"%s does not read back as written", x->key);
		fprintf(f, "entry %d %lld %u %016llx %.*s %s\n", i, (long long)e.cached_sec,
			e.cached_nsec, (unsigned long long)e.blob_checksum, (int)e.exe_id_len,
			e.exe_id, x->key);
		free(want);
	}
	sc_close(c);
	FAIL_IF(fclose(f) != 0, "%s: %s", tmp, strerror(errno));

	tu_copy_file(shard, out_shard, 0644);
	FAIL_IF(rename(tmp, out_expect) != 0, "%s: %s", out_expect, strerror(errno));
	printf("%s: format 1, %zu bytes, %d live entries, %llu records checked\n%s\n",
	       out_shard, len, FX_NLIVE, (unsigned long long)n_checked, out_expect);
	free(img);
	return 0;
}
