/*
 * gen_corpus.c - write the seed corpus and the hand-made bad shards.
 *
 *   gen_corpus OUTDIR        (normally fuzz/corpus; fuzz/run.sh gen)
 *
 * OUTDIR/shard/    valid shards made by the real library: empty, a few
 *                  entries, tombstones, a replaced entry, a redo record not
 *                  yet applied to its slot, a grown index.  Seeds for the
 *                  fuzzers, and replayed by the regression test.
 * OUTDIR/bad/      one damaged shard per case, named NAME--EXPECTATION
 *                  (fuzz/replay.c explains the expectations).  Damage sits
 *                  behind valid checksums unless the case is about a
 *                  checksum: shard_fix recomputes them as an attacker would.
 * OUTDIR/pending-write/  cases that make the write path fail because of a
 *                  known, not yet fixed bug (the last argument of out() is
 *                  1; fuzz/corpus/pending-write/README.md says which).  The
 *                  read-only target must still pass them.  When the bug is
 *                  fixed, pass 0 and regenerate, or move the file to bad/.
 *
 * Entries are written with tag "fuzz" and exe_path /bin/sh, so that a
 * tag-less handle (the fuzz targets' and the CLI's) judges them fresh and
 * sc_get() reaches the blob checksum.  Shard ids and times differ on every
 * run; the structure does not.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <xxhash.h>

#include "scriptcache.h"
#include "shard_fix.h"

#define CHECK(x)                                                                      \
	do {                                                                          \
		if (!(x)) {                                                           \
			fprintf(stderr, "gen_corpus: %s:%d: %s failed (%s)\n", __FILE__, \
				__LINE__, #x, strerror(errno));                       \
			exit(1);                                                      \
		}                                                                     \
	} while (0)

static char tmpdir[PATH_MAX], outdir[PATH_MAX];

struct img {
	uint8_t *d;
	size_t n, cap;
};

static void write_img(const char *sub, const char *name, const struct img *im)
{
	char p[PATH_MAX];
	int fd;

	CHECK(snprintf(p, sizeof(p), "%s/%s", outdir, sub) < (int)sizeof(p));
	mkdir(p, 0755);
	CHECK(snprintf(p, sizeof(p), "%s/%s/%s", outdir, sub, name) < (int)sizeof(p));
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, im->d, im->n) == (ssize_t)im->n);
	CHECK(close(fd) == 0);
}

static struct img load(const char *path)
{
	struct img im = { 0 };
	struct stat st;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	CHECK(fd >= 0 && fstat(fd, &st) == 0);
	im.n = (size_t)st.st_size;
	im.cap = im.n + (1 << 20);
	CHECK((im.d = calloc(1, im.cap)) != NULL);
	CHECK(read(fd, im.d, im.n) == (ssize_t)im.n);
	close(fd);
	return im;
}

static struct img copy(const struct img *a)
{
	struct img b = *a;
	CHECK((b.d = malloc(a->cap)) != NULL);
	memcpy(b.d, a->d, a->cap);
	return b;
}

/* ---- shards made by the library ---- */

static const char *shard_path(const char *name)
{
	static char p[PATH_MAX];
	CHECK(snprintf(p, sizeof(p), "%s/%s.shard", tmpdir, name) < (int)sizeof(p));
	return p;
}

static void put(sc_cache *c, const char *key, size_t len, int with_source)
{
	unsigned char blob[4096];
	struct stat st;
	sc_put_opts o = { .no_source = !with_source, .exe_path = "/bin/sh" };

	CHECK(len <= sizeof(blob));
	for (size_t i = 0; i < len; i++)
		blob[i] = (unsigned char)(key[i % strlen(key)] + i);
	if (with_source) {
		memset(&st, 0, sizeof(st));
		st.st_size = 1234;
		st.st_mtim.tv_sec = 1700000000;
		st.st_mtim.tv_nsec = 123456789;
		o.source = &st;
	}
	CHECK(sc_put_ex(c, key, blob, len, &o) == 0);
}

static sc_cache *make(const char *name)
{
	sc_cache *c = NULL;
	CHECK(sc_open(&c, shard_path(name), "fuzz", SC_NOSYNC | SC_IGNORE_ENV) == 0);
	return c;
}

static void three(sc_cache *c)
{
	put(c, "/fuzz/a", 5, 0);
	put(c, "/usr/share/fuzz/b.lua", 100, 1);
	put(c, "/fuzz/c", 200, 0);
}

/* ---- what the crafting needs to know about an image ---- */

struct info {
	int newest, older;
	struct sc_disk_meta m[2];
	uint64_t off_a, off_b, off_c;     /* records of the three keys */
	uint64_t slot_a, slot_b, slot_c;  /* their index slots (newest meta) */
	uint64_t hash_a;
};

static uint64_t hash_of(const char *k)
{
	return XXH3_64bits(k, strlen(k));
}

/* Find @p key in the newest meta's index, applying its redo record. */
static void find(const struct img *im, const struct info *in, const char *key, uint64_t *slot,
		 uint64_t *off)
{
	const struct sc_disk_meta *m = &in->m[in->newest];
	uint64_t h = hash_of(key);

	for (uint64_t i = 0; i < m->index_slots; i++) {
		uint64_t sh, so;
		if (i == m->redo_slot) {
			sh = m->redo_hash;
			so = m->redo_off;
		} else {
			memcpy(&sh, im->d + m->index_off + 16 * i, 8);
			memcpy(&so, im->d + m->index_off + 16 * i + 8, 8);
		}
		if (sh == h && so > 1) {
			*slot = i;
			*off = so;
			return;
		}
	}
	fprintf(stderr, "gen_corpus: %s not in the index\n", key);
	exit(1);
}

static struct info inspect(const struct img *im)
{
	struct info in;

	in.newest = shard_newest_meta(im->d, im->n);
	in.older = !in.newest;
	CHECK(shard_meta_get(im->d, im->n, 0, &in.m[0]) == 0);
	CHECK(shard_meta_get(im->d, im->n, 1, &in.m[1]) == 0);
	find(im, &in, "/fuzz/a", &in.slot_a, &in.off_a);
	find(im, &in, "/usr/share/fuzz/b.lua", &in.slot_b, &in.off_b);
	find(im, &in, "/fuzz/c", &in.slot_c, &in.off_c);
	in.hash_a = hash_of("/fuzz/a");
	return in;
}

static void set_slot(struct img *im, const struct sc_disk_meta *m, uint64_t i, uint64_t hash,
		     uint64_t off)
{
	uint8_t *p = shard_slot(im->d, im->n, m, i);
	CHECK(p != NULL);
	memcpy(p, &hash, 8);
	memcpy(p + 8, &off, 8);
}

/* Apply the newest meta's redo record to the index and drop it (the state
 * right after the next writer's first step). */
static void settle(struct img *im, struct info *in)
{
	struct sc_disk_meta *m = &in->m[in->newest];
	if (m->redo_slot != SC_NO_REDO)
		set_slot(im, m, m->redo_slot, m->redo_hash, m->redo_off);
	m->redo_slot = SC_NO_REDO;
	m->redo_hash = m->redo_off = 0;
	shard_meta_put(im->d, im->n, in->newest, m);
}

/* Set a field of both metas (fn) and recompute their checksums. */
#define BOTH_METAS(im, in, stmt)                                          \
	do {                                                              \
		for (int i_ = 0; i_ < 2; i_++) {                          \
			struct sc_disk_meta *M = &(in).m[i_];             \
			stmt;                                             \
			shard_meta_put((im).d, (im).n, i_, M);            \
		}                                                         \
	} while (0)
#define NEWEST_META(im, in, stmt)                                         \
	do {                                                              \
		struct sc_disk_meta *M = &(in).m[(in).newest];            \
		stmt;                                                     \
		shard_meta_put((im).d, (im).n, (in).newest, M);           \
	} while (0)

static struct sc_disk_record *rec(struct img *im, uint64_t off)
{
	return (struct sc_disk_record *)(im->d + off); /* off is 64-aligned */
}

static void out(const char *name, struct img *im, int pending)
{
	write_img(pending ? "pending-write" : "bad", name, im);
	free(im->d);
}

int main(int argc, char **argv)
{
	struct img base, im, empty;
	struct info in;
	sc_cache *c;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus OUTDIR\n");
		return 2;
	}
	CHECK(realpath(argv[1], outdir) != NULL);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/scgen.XXXXXX");
	CHECK(mkdtemp(tmpdir) != NULL);
	umask(077);

	/* ---- seeds: shard/ ---- */
	c = make("empty");
	sc_close(c);
	empty = load(shard_path("empty"));
	write_img("shard", "empty", &empty);

	c = make("three");
	three(c);
	sc_close(c);
	base = load(shard_path("three"));
	write_img("shard", "three-entries", &base);

	c = make("tombstones");
	three(c);
	put(c, "/fuzz/d", 64, 0);
	put(c, "/fuzz/e", 3000, 0);
	CHECK(sc_remove(c, "/fuzz/d") == 0);
	CHECK(sc_remove(c, "/fuzz/a") == 0);
	sc_close(c);
	im = load(shard_path("tombstones"));
	write_img("shard", "tombstones-and-redo", &im);
	free(im.d);

	c = make("replaced");
	three(c);
	put(c, "/fuzz/a", 300, 0);
	put(c, "/usr/share/fuzz/b.lua", 7, 1);
	sc_close(c);
	im = load(shard_path("replaced"));
	write_img("shard", "replaced-dead-bytes", &im);
	free(im.d);

	c = make("compacted");
	three(c);
	CHECK(sc_remove(c, "/fuzz/c") == 0);
	CHECK(sc_compact(c) == 0);
	put(c, "/fuzz/f", 1, 0);
	sc_close(c);
	im = load(shard_path("compacted"));
	write_img("shard", "compacted-then-put", &im);
	free(im.d);

	/* a crash between the commit and the slot write: the redo record
	 * alone says where /fuzz/c is */
	im = copy(&base);
	in = inspect(&im);
	CHECK(in.m[in.newest].redo_slot == in.slot_c);
	set_slot(&im, &in.m[in.newest], in.slot_c, 0, SC_SLOT_EMPTY);
	write_img("shard", "redo-not-applied", &im);
	out("redo-not-applied--ok", &im, 0);

	/* a grown index: a new table of 2048 slots appended after the data,
	 * the old one dead (made by hand: the library grows at 717 entries,
	 * which makes a seed of 200 KB) */
	im = copy(&base);
	in = inspect(&im);
	settle(&im, &in);
	{
		struct sc_disk_meta *m = &in.m[in.newest];
		uint64_t at = m->data_end, slots = 2048;
		struct sc_disk_meta g = *m;
		memset(im.d + at, 0, slots * 16);
		im.n = at + slots * 16;
		g.index_off = at;
		g.index_slots = slots;
		g.data_end = im.n;
		g.dead_bytes += m->index_slots * 16;
		g.tombstones = 0;
		set_slot(&im, &g, hash_of("/fuzz/a") & (slots - 1), hash_of("/fuzz/a"), in.off_a);
		set_slot(&im, &g, hash_of("/usr/share/fuzz/b.lua") & (slots - 1),
			 hash_of("/usr/share/fuzz/b.lua"), in.off_b);
		set_slot(&im, &g, hash_of("/fuzz/c") & (slots - 1), hash_of("/fuzz/c"), in.off_c);
		g.txnid = m->txnid + 1;
		shard_meta_put(im.d, im.n, (int)(g.txnid & 1), &g);
	}
	write_img("shard", "grown-index", &im);
	out("grown-index--ok", &im, 0);

	/* ---- bad/: truncation at each region boundary ---- */
	{
		static const struct { size_t n; const char *name; } cut[] = {
			{ 0, "trunc-0-empty-file--open-ETRUNCATED" },
			{ 7, "trunc-7-inside-magic--open-ETRUNCATED" },
			{ 255, "trunc-255-inside-header--open-ETRUNCATED" },
			{ 256, "trunc-256-after-header--open-ETRUNCATED" },
			{ 600, "trunc-600-inside-meta0--open-ETRUNCATED" },
			{ 1100, "trunc-1100-inside-meta1--open-ETRUNCATED" },
			{ 4095, "trunc-4095-before-data--open-ETRUNCATED" },
			{ 4096, "trunc-4096-at-data--open-ECORRUPT" },
			{ 4096 + 8000, "trunc-inside-index--open-ECORRUPT" },
		};
		for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
			im = copy(&base);
			im.n = cut[i].n;
			out(cut[i].name, &im, 0);
		}
		/* inside the last record: the older meta (one put earlier)
		 * still fits, so the shard opens at the previous commit */
		im = copy(&base);
		in = inspect(&im);
		im.n = in.off_c + 100;
		out("trunc-inside-last-record-rolls-back--verify-ECORRUPT", &im, 0);
		im = copy(&base);
		im.n -= 1;
		out("trunc-last-byte--verify-ECORRUPT", &im, 0);
	}
	/* not shards at all */
	im = copy(&base);
	memcpy(im.d, "hello, world\n", 13);
	im.n = 13;
	out("not-a-shard-short-text--open-EMAGIC", &im, 0);
	im = copy(&base);
	for (size_t i = 0; i < 8192; i++)
		im.d[i] = (uint8_t)("lorem ipsum dolor sit amet\n"[i % 27]);
	im.n = 8192;
	out("not-a-shard-text--open-EMAGIC", &im, 0);

	/* ---- header ---- */
#define HDR_CASE(name, stmt, fix)                               \
	do {                                                    \
		im = copy(&base);                               \
		struct sc_disk_header *H = (void *)im.d;        \
		stmt;                                           \
		if (fix)                                        \
			shard_fix_header(im.d, im.n);           \
		out(name, &im, 0);                              \
	} while (0)
	HDR_CASE("header-magic-wrong--open-EMAGIC", H->magic[0] = 'S', 1);
	HDR_CASE("header-version-2--open-EVERSION", H->format_version = 2, 1);
	HDR_CASE("header-version-0--open-EVERSION", H->format_version = 0, 1);
	HDR_CASE("header-ptr-width-4--open-EPTRWIDTH", H->ptr_width = 4, 1);
	HDR_CASE("header-byte-order-swapped--open-EBYTEORDER",
		 H->byte_order = __builtin_bswap32(SC_BYTE_ORDER_MARK), 1);
	HDR_CASE("header-byte-order-garbage--open-ECORRUPT", H->byte_order = 0x01020305, 1);
	HDR_CASE("header-size-wrong--open-ECORRUPT", H->header_size = 512, 1);
	HDR_CASE("header-checksum-wrong--open-ECORRUPT", H->checksum ^= 1, 0);
	HDR_CASE("header-pad-changed-checksum-stale--open-ECORRUPT", H->pad1[7] = 1, 0);

	/* ---- metas ---- */
#define META_CASE(name, expect_pending, both, stmt)                          \
	do {                                                                 \
		im = copy(&base);                                            \
		in = inspect(&im);                                           \
		if (both)                                                    \
			BOTH_METAS(im, in, stmt);                            \
		else                                                         \
			NEWEST_META(im, in, stmt);                           \
		out(name, &im, expect_pending);                              \
	} while (0)
	im = copy(&base);
	im.d[SC_META0_OFF + 20] ^= 1;
	im.d[SC_META1_OFF + 20] ^= 1;
	out("metas-both-checksum-wrong--open-ECORRUPT", &im, 0);
	im = copy(&base);
	in = inspect(&im);
	im.d[META_OFF(in.newest) + 20] ^= 1;
	out("meta-newest-checksum-wrong-falls-back--verify-ECORRUPT", &im, 0);
	im = copy(&base);
	memset(im.d + SC_META0_OFF, 0, 136);
	memset(im.d + SC_META1_OFF, 0, 136);
	out("metas-both-zero--open-ECORRUPT", &im, 0);
	im = copy(&base);
	in = inspect(&im);
	shard_meta_put(im.d, im.n, 0, &in.m[1]); /* odd txnid in slot 0 */
	shard_meta_put(im.d, im.n, 1, &in.m[0]);
	out("metas-swapped-wrong-parity--open-ECORRUPT", &im, 0);
	META_CASE("metas-index-off-past-end--open-ECORRUPT", 0, 1, M->index_off = im.n + 4096);
	META_CASE("meta-newest-index-off-past-end--verify-ECORRUPT", 0, 0, M->index_off = im.n + 4096);
	META_CASE("metas-index-off-in-header--open-ECORRUPT", 0, 1, M->index_off = 0);
	META_CASE("metas-index-off-unaligned--open-ECORRUPT", 0, 1, M->index_off += 8);
	META_CASE("metas-index-off-wraps--open-ECORRUPT", 0, 1, M->index_off = UINT64_MAX - 63);
	META_CASE("metas-index-slots-2pow60-wraps--open-ECORRUPT", 0, 1, M->index_slots = (uint64_t)1 << 60);
	META_CASE("metas-index-slots-2pow63--open-ECORRUPT", 0, 1, M->index_slots = (uint64_t)1 << 63);
	META_CASE("metas-index-slots-huge--open-ECORRUPT", 0, 1, M->index_slots = (uint64_t)1 << 40);
	META_CASE("metas-index-slots-not-power-of-2--open-ECORRUPT", 0, 1, M->index_slots = 1536);
	META_CASE("metas-index-slots-512-below-min--open-ECORRUPT", 0, 1, M->index_slots = 512);
	META_CASE("metas-index-slots-0--open-ECORRUPT", 0, 1, M->index_slots = 0);
	META_CASE("metas-index-past-data-end--open-ECORRUPT", 0, 1, M->index_off = M->data_end - 64);
	META_CASE("metas-data-end-past-eof--open-ECORRUPT", 0, 1, M->data_end = im.n + 64);
	META_CASE("metas-data-end-unaligned--open-ECORRUPT", 0, 1, M->data_end -= 1);
	META_CASE("metas-data-end-in-header--open-ECORRUPT", 0, 1, M->data_end = 1024);
	META_CASE("metas-data-end-max--open-ECORRUPT", 0, 1, M->data_end = UINT64_MAX - 63);
	META_CASE("metas-redo-slot-out-of-range--open-ECORRUPT", 0, 1, M->redo_slot = M->index_slots);
	META_CASE("metas-redo-slot-max-minus-1--open-ECORRUPT", 0, 1, M->redo_slot = UINT64_MAX - 1);
	META_CASE("meta-redo-off-into-header--verify-ECORRUPT", 0, 0,
		  (M->redo_slot = in.slot_a, M->redo_hash = in.hash_a, M->redo_off = 64));
	META_CASE("meta-redo-off-into-meta--verify-ECORRUPT", 0, 0,
		  (M->redo_slot = in.slot_a, M->redo_hash = in.hash_a, M->redo_off = SC_META0_OFF));
	META_CASE("meta-redo-off-past-data-end--verify-ECORRUPT", 0, 0,
		  (M->redo_slot = in.slot_a, M->redo_hash = in.hash_a, M->redo_off = M->data_end));
	META_CASE("meta-redo-off-huge--verify-ECORRUPT", 0, 0,
		  (M->redo_slot = in.slot_a, M->redo_hash = in.hash_a, M->redo_off = (uint64_t)1 << 62));
	META_CASE("meta-redo-tombstone-over-live-key--verify-ECORRUPT", 0, 0,
		  (M->redo_slot = in.slot_a, M->redo_hash = in.hash_a, M->redo_off = SC_SLOT_TOMB));
	META_CASE("metas-retired--open-ECORRUPT", 0, 1, M->flags |= SC_META_RETIRED);
	META_CASE("metas-unknown-flags--ok", 0, 1, M->flags |= 0x100);
	META_CASE("metas-live-bytes-lie--verify-ECORRUPT", 0, 1, M->live_bytes = 1);
	META_CASE("metas-tombstones-lie--verify-ECORRUPT", 0, 1, M->tombstones = 5);
	META_CASE("metas-counts-exceed-slots--open-ECORRUPT", 0, 1, M->entries = M->index_slots + 1);
	/* write-path bugs found here, fixed in 6352cf0 */
	META_CASE("metas-entries-0-with-3-records--verify-ECORRUPT", 0, 1, M->entries = 0);
	META_CASE("metas-entries-plus-tombstones-wrap--open-ECORRUPT", 0, 1,
		  (M->entries = UINT64_MAX, M->tombstones = 1));
	META_CASE("meta-txnid-max-refused-falls-back--verify-ECORRUPT", 0, 0,
		  M->txnid = UINT64_MAX - (in.newest == 0));

	/* ---- records (checksums repaired unless the case is about them) ---- */
#define REC_CASE(name, stmt, what)                                   \
	do {                                                         \
		im = copy(&base);                                    \
		in = inspect(&im);                                   \
		struct sc_disk_record *R = rec(&im, in.off_a);       \
		(void)R;                                             \
		stmt;                                                \
		shard_fix_record(im.d, im.n, in.off_a, what);        \
		out(name, &im, 0);                                   \
	} while (0)
	REC_CASE("rec-magic-wrong--verify-ECORRUPT", R->magic ^= 1, FIX_RECORD);
	REC_CASE("rec-checksum-wrong--verify-ECORRUPT", R->checksum ^= 1, 0);
	REC_CASE("rec-key-byte-changed-checksum-stale--verify-ECORRUPT", ((char *)(R + 1))[1] ^= 1, 0);
	REC_CASE("rec-blob-checksum-wrong--verify-ECORRUPT", R->blob_checksum ^= 1, FIX_RECORD);
	REC_CASE("rec-blob-byte-changed--verify-ECORRUPT", im.d[in.off_a + R->blob_off] ^= 1, FIX_RECORD);
	REC_CASE("rec-len-max-overflow--verify-ECORRUPT", R->rec_len = UINT64_MAX - 63, FIX_ALL);
	REC_CASE("rec-len-unaligned--verify-ECORRUPT", R->rec_len += 1, FIX_ALL);
	REC_CASE("rec-len-0--verify-ECORRUPT", R->rec_len = 0, FIX_ALL);
	REC_CASE("rec-len-past-data-end--verify-ECORRUPT", R->rec_len = in.m[in.newest].data_end, FIX_ALL);
	REC_CASE("rec-blob-len-over-max--verify-ECORRUPT", R->blob_len = SC_MAX_BLOB + 1, FIX_RECORD);
	REC_CASE("rec-blob-len-max--verify-ECORRUPT", R->blob_len = UINT64_MAX, FIX_RECORD);
	REC_CASE("rec-blob-past-rec-len--verify-ECORRUPT", R->blob_len = R->rec_len, FIX_RECORD);
	REC_CASE("rec-blob-off-overflow--verify-ECORRUPT", R->blob_off = UINT64_MAX - 63, FIX_RECORD);
	REC_CASE("rec-blob-off-unaligned--verify-ECORRUPT", R->blob_off += 1, FIX_RECORD);
	REC_CASE("rec-blob-off-inside-strings--verify-ECORRUPT", R->blob_off = 64, FIX_RECORD);
	REC_CASE("rec-key-len-0--verify-ECORRUPT", R->key_len = 0, FIX_RECORD);
	REC_CASE("rec-key-len-4097--verify-ECORRUPT", R->key_len = 4097, FIX_RECORD);
	REC_CASE("rec-tag-len-65535-past-record--verify-ECORRUPT", R->tag_len = 65535, FIX_RECORD);
	REC_CASE("rec-exe-path-len-past-blob--verify-ECORRUPT", R->exe_path_len += 200, FIX_RECORD);
	REC_CASE("rec-no-source-flag-flipped--ok", R->flags ^= SC_REC_NO_SOURCE, FIX_ALL);
	REC_CASE("rec-unknown-flags--ok", R->flags |= 0x80000000u, FIX_ALL);
	REC_CASE("rec-times-extreme--ok",
		 (R->src_mtime_sec = INT64_MIN, R->src_mtime_nsec = UINT32_MAX,
		  R->cached_sec = INT64_MAX, R->cached_nsec = UINT32_MAX, R->src_size = UINT64_MAX),
		 FIX_ALL);

	/* ---- index slots ---- */
#define SLOT_CASE(name, pend, hash, off)                                           \
	do {                                                                       \
		im = copy(&base);                                                  \
		in = inspect(&im);                                                 \
		settle(&im, &in);                                                  \
		set_slot(&im, &in.m[in.newest], in.slot_a, hash, off);            \
		out(name, &im, pend);                                              \
	} while (0)
	SLOT_CASE("slot-into-middle-of-record--verify-ECORRUPT", 0, in.hash_a, in.off_a + 64);
	SLOT_CASE("slot-into-blob-of-other-record--verify-ECORRUPT", 0, in.hash_a, in.off_c + 128);
	SLOT_CASE("slot-into-header--verify-ECORRUPT", 0, in.hash_a, 64);
	SLOT_CASE("slot-into-meta--verify-ECORRUPT", 0, in.hash_a, SC_META1_OFF);
	SLOT_CASE("slot-into-index--verify-ECORRUPT", 0, in.hash_a, in.m[in.newest].index_off);
	SLOT_CASE("slot-unaligned--verify-ECORRUPT", 0, in.hash_a, in.off_a + 1);
	SLOT_CASE("slot-at-data-end--verify-ECORRUPT", 0, in.hash_a, in.m[in.newest].data_end);
	SLOT_CASE("slot-last-64-bytes-of-data--verify-ECORRUPT", 0, in.hash_a, in.m[in.newest].data_end - 64);
	SLOT_CASE("slot-past-eof-inside-map-window--verify-ECORRUPT", 0, in.hash_a, im.n + 8192);
	SLOT_CASE("slot-huge--verify-ECORRUPT", 0, in.hash_a, (uint64_t)1 << 62);
	SLOT_CASE("slot-max--verify-ECORRUPT", 0, in.hash_a, UINT64_MAX);
	SLOT_CASE("slot-hash-not-the-keys--verify-ECORRUPT", 0, in.hash_a ^ 1, in.off_a);
	SLOT_CASE("slot-points-at-another-key--verify-ECORRUPT", 0, in.hash_a, in.off_c);

	/* every slot a tombstone: probes must stop after one lap */
	im = copy(&base);
	in = inspect(&im);
	{
		struct sc_disk_meta m = in.m[in.newest];
		for (uint64_t i = 0; i < m.index_slots; i++)
			set_slot(&im, &m, i, i, SC_SLOT_TOMB);
		BOTH_METAS(im, in, (M->entries = 0, M->tombstones = M->index_slots, M->live_bytes = 0,
				    M->redo_slot = SC_NO_REDO, M->redo_off = M->redo_hash = 0));
	}
	out("index-all-tombstones--ok", &im, 0);
	/* one live entry, every other slot a tombstone, placed so that its
	 * probe starts at the next slot and wraps all the way round */
	im = copy(&base);
	in = inspect(&im);
	{
		struct sc_disk_meta m = in.m[in.newest];
		uint64_t home = in.hash_a & (m.index_slots - 1);
		for (uint64_t i = 0; i < m.index_slots; i++)
			set_slot(&im, &m, i, i, SC_SLOT_TOMB);
		set_slot(&im, &m, (home + m.index_slots - 1) & (m.index_slots - 1), in.hash_a, in.off_a);
		BOTH_METAS(im, in, (M->entries = 1, M->tombstones = M->index_slots - 1,
				    M->live_bytes = rec(&im, in.off_a)->rec_len,
				    M->redo_slot = SC_NO_REDO, M->redo_off = M->redo_hash = 0));
	}
	out("index-probe-wraps-around-full-table--ok", &im, 0);
	/* every slot points at the same record: duplicates, no free slot */
	im = copy(&base);
	in = inspect(&im);
	{
		struct sc_disk_meta m = in.m[in.newest];
		for (uint64_t i = 0; i < m.index_slots; i++)
			set_slot(&im, &m, i, in.hash_a, in.off_a);
		BOTH_METAS(im, in, (M->entries = M->index_slots, M->tombstones = 0,
				    M->live_bytes = M->index_slots * rec(&im, in.off_a)->rec_len,
				    M->redo_slot = SC_NO_REDO, M->redo_off = M->redo_hash = 0));
	}
	out("index-full-of-one-record--opens", &im, 0);
	/* the same, but the metas say the index is empty: a writer that sizes
	 * a grown table from the meta's count has no room for the slots */
	im = copy(&base);
	in = inspect(&im);
	{
		struct sc_disk_meta m = in.m[in.newest];
		for (uint64_t i = 0; i < m.index_slots; i++)
			set_slot(&im, &m, i, in.hash_a, in.off_a);
		BOTH_METAS(im, in, (M->entries = 0, M->tombstones = 0,
				    M->redo_slot = SC_NO_REDO, M->redo_off = M->redo_hash = 0));
	}
	out("index-full-counts-say-empty--verify-ECORRUPT", &im, 0);
	/* the index table overlapping the records */
	META_CASE("metas-index-over-records--opens", 0, 1, M->index_off = SC_DATA_OFF + 64);

	free(base.d);
	free(empty.d);
	{
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "gen_corpus: could not remove %s\n", tmpdir);
	}
	return 0;
}
