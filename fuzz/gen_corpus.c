/*
 * gen_corpus.c - write the seed corpus and the hand-made bad shards
 * (format 2, core/format.h).
 *
 *   gen_corpus OUTDIR        (normally fuzz/corpus; fuzz/run.sh gen)
 *
 * OUTDIR/shard/    valid shards made by the real library: empty, entries
 *                  with a shared (dedup'd) blob and a source hash,
 *                  tombstones, replaced entries, a blob that died, a
 *                  compaction, a second metadata chunk, redo and wredo
 *                  records not yet applied to their slots, grown indexes.
 *                  Seeds for the fuzzers, and replayed by the regression
 *                  test.
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
 * sc_get() reaches the blob's id check.  Shard ids and times differ on
 * every run; the structure does not.
 *
 * The base shard of most cases holds four entries, put in this order:
 *   /fuzz/a                5 bytes, no source
 *   /usr/share/fuzz/b.lua  100 bytes, a source (stat only: stale for
 *                          sc_get) with the XXH3-128 of its bytes (SC_ENT_SRC_HASH)
 *   /fuzz/c                200 bytes, no source
 *   /fuzz/c-twin           the same 200 bytes: one stored blob, two references
 * so its newest meta carries a key redo record (c-twin's slot) and a wredo
 * record (the shared blob's slot, references 1 -> 2).
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

#include "fuzz.h"
#include "pack.h"
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

#define KEY_A "/fuzz/a"
#define KEY_B "/usr/share/fuzz/b.lua"
#define KEY_C "/fuzz/c"
#define KEY_D "/fuzz/c-twin"

static char tmpdir[PATH_MAX], outdir[PATH_MAX];

struct img {
	uint8_t *d;
	size_t n, cap;
};

/* The seeds under shard/ are written packed (pack.h): libFuzzer then
 * handles a few hundred bytes per seed instead of 116 KiB of mostly zeros.
 * The hand-made inputs elsewhere stay raw, readable with a hex dump. */
static void write_img(const char *sub, const char *name, const struct img *im)
{
	char p[PATH_MAX];
	uint8_t *packed = NULL;
	const uint8_t *d = im->d;
	size_t n = im->n;
	int fd;

	if (strcmp(sub, "shard") == 0) {
		CHECK((packed = malloc(2 * im->n + 16)) != NULL);
		n = fuzz_pack(im->d, im->n, packed, 2 * im->n + 16);
		CHECK(n != 0);
		d = packed;
	}

	CHECK(snprintf(p, sizeof(p), "%s/%s", outdir, sub) < (int)sizeof(p));
	mkdir(p, 0755);
	CHECK(snprintf(p, sizeof(p), "%s/%s/%s", outdir, sub, name) < (int)sizeof(p));
	fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	CHECK(write(fd, d, n) == (ssize_t)n);
	CHECK(close(fd) == 0);
	free(packed);
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

/* The blob put() stores for @p seed: what two keys share when they pass
 * the same seed. */
static size_t blob_for(const char *seed, size_t len, unsigned char *blob)
{
	for (size_t i = 0; i < len; i++)
		blob[i] = (unsigned char)(seed[i % strlen(seed)] + i);
	return len;
}

/* Put @p key with put()'s bytes for @p seed; with_source: a source file
 * (stat only), and with_source == 2 also its bytes, hashed. */
static void put_as(sc_cache *c, const char *key, const char *seed, size_t len, int with_source)
{
	static unsigned char src[1234];
	unsigned char blob[4096];
	struct stat st;
	sc_put_opts o = { .no_source = !with_source, .exe_path = "/bin/sh" };

	CHECK(len <= sizeof(blob));
	blob_for(seed, len, blob);
	if (with_source) {
		memset(&st, 0, sizeof(st));
		st.st_size = sizeof(src);
		st.st_mtim.tv_sec = 1700000000;
		st.st_mtim.tv_nsec = 123456789;
		o.source = &st;
		if (with_source == 2) {
			for (size_t i = 0; i < sizeof(src); i++)
				src[i] = (unsigned char)("return 'fuzz'\n"[i % 14]);
			o.source_bytes = src;
			o.source_len = sizeof(src);
		}
	}
	CHECK(sc_put_ex(c, key, blob, len, &o) == 0);
}

static void put(sc_cache *c, const char *key, size_t len, int with_source)
{
	put_as(c, key, key, len, with_source);
}

static sc_cache *make(const char *name)
{
	sc_cache *c = NULL;
	CHECK(sc_open(&c, shard_path(name), "fuzz", SC_NOSYNC | SC_IGNORE_ENV) == 0);
	return c;
}

static void three(sc_cache *c)
{
	put(c, KEY_A, 5, 0);
	put(c, KEY_B, 100, 2);
	put(c, KEY_C, 200, 0);
}

static void four(sc_cache *c)
{
	three(c);
	put_as(c, KEY_D, KEY_C, 200, 0); /* c's bytes: shared */
}

/* ---- what the crafting needs to know about an image ---- */

struct info {
	int newest, older, oldest; /* slots: the newest commit, the one before, the rest */
	struct sc_disk_meta m[META_SLOTS];
	uint64_t off_a, off_b, off_c, off_d;     /* entries of the four keys */
	uint64_t slot_a, slot_b, slot_c, slot_d; /* their key index slots (newest meta) */
	uint64_t hash_a;
};

static uint64_t hash_of(const char *k)
{
	return XXH3_64bits(k, strlen(k));
}

/* Find @p key in the newest meta's key index, applying its redo record. */
static int find(const struct img *im, const struct info *in, const char *key, uint64_t *slot,
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
			return 0;
		}
	}
	*slot = *off = 0;
	return -1;
}

static struct info inspect(const struct img *im)
{
	struct info in;

	/* Every seed has all three slots in use (a few commits each), any
	 * slot holding any transaction id. */
	in.newest = shard_newest_meta(im->d, im->n);
	for (int i = 0; i < META_SLOTS; i++)
		CHECK(shard_meta_get(im->d, im->n, i, &in.m[i]) == 0);
	in.older = in.oldest = -1;
	for (int i = 0; i < META_SLOTS; i++)
		if (i != in.newest && (in.older < 0 || in.m[i].txnid > in.m[in.older].txnid))
			in.older = i;
	for (int i = 0; i < META_SLOTS; i++)
		if (i != in.newest && i != in.older)
			in.oldest = i;
	CHECK(find(im, &in, KEY_A, &in.slot_a, &in.off_a) == 0);
	CHECK(find(im, &in, KEY_B, &in.slot_b, &in.off_b) == 0);
	CHECK(find(im, &in, KEY_C, &in.slot_c, &in.off_c) == 0);
	find(im, &in, KEY_D, &in.slot_d, &in.off_d); /* not in every image */
	in.hash_a = hash_of(KEY_A);
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

static struct sc_disk_bslot *bslot(struct img *im, const struct sc_disk_meta *m, uint64_t i)
{
	uint8_t *p = shard_bslot(im->d, im->n, m, i);
	CHECK(p != NULL);
	return (struct sc_disk_bslot *)p; /* tables are 64-aligned */
}

/* Apply the newest meta's redo and wredo records to their slots and drop
 * them (the state right after the next writer's first step). */
static void settle(struct img *im, struct info *in)
{
	struct sc_disk_meta *m = &in->m[in->newest];
	if (m->redo_slot != SC_NO_REDO)
		set_slot(im, m, m->redo_slot, m->redo_hash, m->redo_off);
	m->redo_slot = SC_NO_REDO;
	m->redo_hash = m->redo_off = 0;
	for (uint64_t k = 0; k < m->wredo_n; k++) {
		CHECK(m->wredo[k].at + 32 <= im->n);
		memcpy(im->d + m->wredo[k].at, m->wredo[k].v, 32);
	}
	m->wredo_n = 0;
	memset(m->wredo, 0, sizeof(m->wredo));
	shard_meta_put(im->d, im->n, in->newest, m);
}

/* Set a field of every meta (stmt on M) and recompute their checksums. */
#define ALL_METAS(im, in, stmt)                                           \
	do {                                                              \
		for (int i_ = 0; i_ < META_SLOTS; i_++) {                 \
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

static struct sc_disk_entry *ent(struct img *im, uint64_t off)
{
	return (struct sc_disk_entry *)(im->d + off); /* off is 8-aligned */
}

/* The blob index slot of the blob of the entry at @p off (settled image). */
static uint64_t bslot_of(struct img *im, const struct info *in, uint64_t off)
{
	int64_t s = shard_bslot_find(im->d, im->n, &in->m[in->newest], ent(im, off)->blob_id);
	CHECK(s >= 0);
	return (uint64_t)s;
}

static void out(const char *name, struct img *im, int pending)
{
	write_img(pending ? "pending-write" : "bad", name, im);
	free(im->d);
}

/* ---- seeds ---- */

static struct img seed(const char *name, void (*fill)(sc_cache *))
{
	sc_cache *c = make(name);
	struct img im;

	fill(c);
	sc_close(c);
	im = load(shard_path(name));
	write_img("shard", name, &im);
	return im;
}

static void fill_none(sc_cache *c)
{
	(void)c;
}

static void fill_tombstones(sc_cache *c)
{
	four(c);
	put(c, "/fuzz/d", 64, 0);
	put(c, "/fuzz/e", 3000, 0);
	CHECK(sc_remove(c, "/fuzz/d") == 0);
	CHECK(sc_remove(c, KEY_A) == 0);
}

static void fill_replaced(sc_cache *c)
{
	four(c);
	put(c, KEY_A, 300, 0);               /* a new blob, the old one dead */
	put_as(c, KEY_B, KEY_C, 200, 2);     /* b takes c's bytes: references 3 */
	put(c, KEY_D, 7, 0);                 /* the twin goes its own way: 2 */
}

static void fill_blob_dies(sc_cache *c)
{
	four(c);
	CHECK(sc_remove(c, KEY_C) == 0);     /* references 2 -> 1 */
	CHECK(sc_remove(c, KEY_D) == 0);     /* 1 -> 0: a blob tombstone */
	put_as(c, "/fuzz/g", KEY_C, 200, 0); /* the same bytes again: stored anew */
}

static void fill_compacted(sc_cache *c)
{
	four(c);
	CHECK(sc_remove(c, KEY_C) == 0);
	CHECK(sc_compact(c) == 0);
	put(c, "/fuzz/f", 1, 0);
	put_as(c, "/fuzz/f-twin", "/fuzz/f", 1, 0);
}

static void fill_two_chunks(sc_cache *c)
{
	/* entries of about 2 KiB (long keys), blobs of 1 byte: the 64 KiB
	 * chunk fills after some 30 of them and a second one starts */
	char key[2048];
	for (int i = 0; i < 34; i++) {
		memset(key, 'k', sizeof(key) - 1);
		key[sizeof(key) - 1] = '\0';
		snprintf(key, 32, "/fuzz/long/%02d/", i);
		key[strlen(key)] = 'k';
		put_as(c, key, "x", 1, 0); /* one shared blob */
	}
	put(c, KEY_A, 5, 0);
}

int main(int argc, char **argv)
{
	struct img base, three_img, im, empty;
	struct info in;

	if (argc != 2) {
		fprintf(stderr, "usage: gen_corpus OUTDIR\n");
		return 2;
	}
	CHECK(realpath(argv[1], outdir) != NULL);
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/scgen.XXXXXX");
	CHECK(mkdtemp(tmpdir) != NULL);
	umask(077);

	/* ---- seeds: shard/ ---- */
	empty = seed("empty", fill_none);
	three_img = seed("three-entries", three);
	base = seed("four-entries-two-share-a-blob", four);
	free(seed("tombstones-and-redo", fill_tombstones).d);
	free(seed("replaced-blobs-shared-and-dead", fill_replaced).d);
	free(seed("blob-died-then-stored-again", fill_blob_dies).d);
	free(seed("compacted-then-put", fill_compacted).d);
	free(seed("second-metadata-chunk", fill_two_chunks).d);

	/* a crash between the commit and the slot writes: the redo record
	 * alone says where /fuzz/c-twin is, the wredo record alone that the
	 * shared blob has two references */
	im = copy(&base);
	in = inspect(&im);
	CHECK(in.m[in.newest].redo_slot == in.slot_d);
	set_slot(&im, &in.m[in.newest], in.slot_d, 0, SC_SLOT_EMPTY);
	write_img("shard", "redo-not-applied", &im);
	out("redo-not-applied--ok", &im, 0);
	im = copy(&base);
	in = inspect(&im);
	CHECK(in.m[in.newest].wredo_n == 1);
	{
		struct sc_disk_bslot b;
		memcpy(&b, in.m[in.newest].wredo[0].v, sizeof(b));
		CHECK(sc_bslot_refs(&b) == 2);
		b.info -= (uint64_t)1 << SC_BLOB_LEN_BITS; /* as before the commit */
		memcpy(im.d + in.m[in.newest].wredo[0].at, &b, sizeof(b));
	}
	write_img("shard", "wredo-not-applied", &im);
	out("wredo-not-applied--ok", &im, 0);
	/* a wredo record for a slot that was empty: a new blob's */
	im = copy(&three_img);
	in = inspect(&im);
	CHECK(in.m[in.newest].wredo_n == 1);
	memset(im.d + in.m[in.newest].wredo[0].at, 0, sizeof(struct sc_disk_bslot));
	out("wredo-new-blob-not-applied--ok", &im, 0);
	/* two wredo records for one slot: the later one holds */
	im = copy(&base);
	in = inspect(&im);
	NEWEST_META(im, in, (M->wredo[1] = M->wredo[0], M->wredo[0].v[2] = SC_SLOT_TOMB,
			     M->wredo_n = 2));
	out("wredo-two-for-one-slot-last-holds--ok", &im, 0);

	/* grown indexes: a new table of 2048 slots appended after the data,
	 * the old one dead (made by hand: the library grows at 717 entries,
	 * which makes a seed of megabytes) */
	im = copy(&base);
	in = inspect(&im);
	settle(&im, &in);
	{
		struct sc_disk_meta *m = &in.m[in.newest];
		uint64_t at = m->data_end, slots = 2048;
		struct sc_disk_meta g = *m;
		const char *keys[] = { KEY_A, KEY_B, KEY_C, KEY_D };
		const uint64_t offs[] = { in.off_a, in.off_b, in.off_c, in.off_d };
		memset(im.d + at, 0, slots * 16);
		im.n = at + slots * 16;
		g.index_off = at;
		g.index_slots = slots;
		g.data_end = im.n;
		g.dead_bytes += m->index_slots * 16;
		g.tombstones = 0;
		for (int k = 0; k < 4; k++)
			set_slot(&im, &g, hash_of(keys[k]) & (slots - 1), hash_of(keys[k]), offs[k]);
		g.txnid = m->txnid + 1;
		shard_meta_put(im.d, im.n, in.oldest, &g);
	}
	write_img("shard", "grown-index", &im);
	out("grown-index--ok", &im, 0);
	im = copy(&base);
	in = inspect(&im);
	settle(&im, &in);
	{
		struct sc_disk_meta *m = &in.m[in.newest];
		uint64_t at = m->data_end, slots = 2048;
		struct sc_disk_meta g = *m;
		memset(im.d + at, 0, slots * sizeof(struct sc_disk_bslot));
		im.n = at + slots * sizeof(struct sc_disk_bslot);
		g.blobs_off = at;
		g.blob_slots = slots;
		g.data_end = im.n;
		g.dead_bytes += m->blob_slots * sizeof(struct sc_disk_bslot);
		g.blob_tombs = 0;
		for (uint64_t i = 0; i < m->blob_slots; i++) {
			struct sc_disk_bslot b = *bslot(&im, m, i);
			uint64_t j;
			if (b.off == SC_SLOT_EMPTY || b.off == SC_SLOT_TOMB)
				continue;
			for (j = b.id_lo & (slots - 1); bslot(&im, &g, j)->off != SC_SLOT_EMPTY;)
				j = (j + 1) & (slots - 1);
			*bslot(&im, &g, j) = b;
		}
		g.txnid = m->txnid + 1;
		shard_meta_put(im.d, im.n, in.oldest, &g);
	}
	write_img("shard", "grown-blob-index", &im);
	out("grown-blob-index--ok", &im, 0);

	/* ---- bad/: truncation at each region boundary ---- */
	{
		in = inspect(&base);
		const struct sc_disk_meta *m = &in.m[in.newest];
		const struct { size_t n; const char *name; } cut[] = {
			{ 0, "trunc-0-empty-file--open-ETRUNCATED" },
			{ 7, "trunc-7-inside-magic--open-ETRUNCATED" },
			{ 255, "trunc-255-inside-header--open-ETRUNCATED" },
			{ 256, "trunc-256-after-header--open-ETRUNCATED" },
			{ 600, "trunc-600-inside-meta0--open-ETRUNCATED" },
			{ 1100, "trunc-1100-inside-meta1--open-ETRUNCATED" },
			{ 4095, "trunc-4095-before-data--open-ETRUNCATED" },
			{ 4096, "trunc-4096-at-data--open-ECORRUPT" },
			{ (size_t)m->index_off + 8000, "trunc-inside-key-index--open-ECORRUPT" },
			{ (size_t)m->blobs_off + 8000, "trunc-inside-blob-index--open-ECORRUPT" },
			{ (size_t)ent(&base, in.off_a)->blob_off + 3, "trunc-inside-first-blob--open-ECORRUPT" },
			{ (size_t)in.off_c + 40, "trunc-inside-metadata-chunk--open-ECORRUPT" },
			{ (size_t)m->data_end - 1, "trunc-last-byte--open-ECORRUPT" },
		};
		for (size_t i = 0; i < sizeof(cut) / sizeof(cut[0]); i++) {
			/* A cut that an older commit's data fits in opens at that
			 * commit (the seeds are SC_NOSYNC: slot 0 keeps the empty
			 * txn 0, the newest durable one), whose index slots later
			 * commits wrote in place: verify reports them. */
			const char *tail = strstr(cut[i].name, "--open-ECORRUPT");
			int fits = 0;
			char name[128];

			for (int k = 0; k < META_SLOTS; k++)
				fits |= cut[i].n >= SC_DATA_OFF && in.m[k].data_end <= cut[i].n &&
					in.m[k].index_off + in.m[k].index_slots * 16 <= cut[i].n &&
					in.m[k].blobs_off + in.m[k].blob_slots * 32 <= cut[i].n;
			if (fits && tail)
				snprintf(name, sizeof(name), "%.*s-falls-back--verify-ECORRUPT",
					 (int)(tail - cut[i].name), cut[i].name);
			else
				snprintf(name, sizeof(name), "%s", cut[i].name);
			im = copy(&base);
			im.n = cut[i].n;
			out(name, &im, 0);
		}
		/* inside the last blob appended: the older meta (one put
		 * earlier) still fits, so the shard opens at the previous
		 * commit, whose index slot already names the newer entry */
		im = copy(&three_img);
		in = inspect(&im);
		im.n = ent(&im, in.off_c)->blob_off + 100;
		CHECK(in.m[in.older].data_end <= im.n);
		out("trunc-inside-last-blob-rolls-back--verify-ECORRUPT", &im, 0);
		/* past data_end: garbage a dead writer left, never read */
		im = copy(&base);
		memset(im.d + im.n, 0xa5, 8192);
		im.n += 8192;
		out("garbage-past-data-end--ok", &im, 0);
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
	HDR_CASE("header-version-3--open-EVERSION", H->format_version = 3, 1);
	HDR_CASE("header-version-0--open-EVERSION", H->format_version = 0, 1);
	/* version 1 is read as an empty shard and rebuilt by the first
	 * write (core/legacy.c): here from a body that is not version 1 */
	HDR_CASE("header-version-1-v2-body--verify-EVERSION", H->format_version = 1, 1);
	HDR_CASE("header-version-1-checksum-stale--open-EVERSION", H->format_version = 1, 0);
	HDR_CASE("header-ptr-width-4--open-EPTRWIDTH", H->ptr_width = 4, 1);
	HDR_CASE("header-byte-order-swapped--open-EBYTEORDER",
		 H->byte_order = __builtin_bswap32(SC_BYTE_ORDER_MARK), 1);
	HDR_CASE("header-byte-order-garbage--open-ECORRUPT", H->byte_order = 0x01020305, 1);
	HDR_CASE("header-size-wrong--open-ECORRUPT", H->header_size = 512, 1);
	HDR_CASE("header-checksum-wrong--open-ECORRUPT", H->checksum ^= 1, 0);
	HDR_CASE("header-pad-changed-checksum-stale--open-ECORRUPT", H->base[7] = 1, 0);

	/* ---- metas ---- */
#define META_CASE(name, expect_pending, both, stmt)                          \
	do {                                                                 \
		im = copy(&base);                                            \
		in = inspect(&im);                                           \
		if (both)                                                    \
			ALL_METAS(im, in, stmt);                            \
		else                                                         \
			NEWEST_META(im, in, stmt);                           \
		out(name, &im, expect_pending);                              \
	} while (0)
	im = copy(&base);
	for (int i = 0; i < META_SLOTS; i++)
		im.d[META_OFF(i) + 20] ^= 1;
	out("metas-all-checksum-wrong--open-ECORRUPT", &im, 0);
	im = copy(&base);
	in = inspect(&im);
	im.d[META_OFF(in.newest) + 20] ^= 1;
	out("meta-newest-checksum-wrong-falls-back--verify-ECORRUPT", &im, 0);
	im = copy(&base);
	in = inspect(&im);
	im.d[META_OFF(in.newest) + offsetof(struct sc_disk_meta, wredo) + 8] ^= 1;
	out("meta-newest-wredo-byte-checksum-stale--verify-ECORRUPT", &im, 0);
	im = copy(&base);
	for (int i = 0; i < META_SLOTS; i++)
		memset(im.d + META_OFF(i), 0, sizeof(struct sc_disk_meta));
	out("metas-all-zero--open-ECORRUPT", &im, 0);
	/* any slot may hold any transaction id: the metas moved round */
	im = copy(&base);
	in = inspect(&im);
	for (int i = 0; i < META_SLOTS; i++)
		shard_meta_put(im.d, im.n, (i + 1) % META_SLOTS, &in.m[i]);
	out("metas-rotated--ok", &im, 0);
	/* slot 2 zeros: never used (a shard from before it existed) or lost;
	 * if it held the newest commit, readers fall back to the one before,
	 * whose counts the index slot written in place no longer matches */
	im = copy(&base);
	in = inspect(&im);
	memset(im.d + SC_META2_OFF, 0, sizeof(struct sc_disk_meta));
	out(in.newest == 2 ? "meta-slot2-zero-falls-back--verify-ECORRUPT" : "meta-slot2-zero--ok",
	    &im, 0);
	/* the newest commit in two slots: readers agree, verify reports it */
	im = copy(&base);
	in = inspect(&im);
	shard_meta_put(im.d, im.n, in.oldest, &in.m[in.newest]);
	out("metas-same-txnid-twice--verify-ECORRUPT", &im, 0);
	/* a commit newer than the newest, its data lost (a power loss after
	 * SC_NOSYNC commits): refused while the file is shorter, and the next
	 * commit gets a higher transaction id (core/txn.c) */
	im = copy(&base);
	in = inspect(&im);
	{
		struct sc_disk_meta m = in.m[in.newest];
		m.txnid += 2;
		m.data_end = sc_align_up(im.n) + 65536;
		shard_meta_put(im.d, im.n, in.oldest, &m);
	}
	out("meta-future-data-lost--verify-ECORRUPT", &im, 0);
	/* found by fuzzing in format 1: the slot the next commit goes to
	 * already holds its txnid (an insane meta with a valid checksum),
	 * which hid that commit from sc_snapshot's change check */
	im = copy(&base);
	in = inspect(&im);
	{
		struct sc_disk_meta m = in.m[in.older];
		m.txnid = in.m[in.newest].txnid + 1;
		m.index_slots = 21568;
		shard_meta_put(im.d, im.n, in.older, &m);
	}
	out("meta-insane-slot-holds-next-txnid--verify-ECORRUPT", &im, 0);

	/* the key index */
	META_CASE("metas-index-off-past-end--open-ECORRUPT", 0, 1, M->index_off = im.n + 4096);
	META_CASE("meta-newest-index-off-past-end--verify-ECORRUPT", 0, 0, M->index_off = im.n + 4096);
	META_CASE("metas-index-off-in-header--open-ECORRUPT", 0, 1, M->index_off = 0);
	META_CASE("metas-index-off-unaligned--open-ECORRUPT", 0, 1, M->index_off += 8);
	META_CASE("metas-index-off-wraps--open-ECORRUPT", 0, 1, M->index_off = UINT64_MAX - 63);
	META_CASE("metas-index-slots-2pow60-wraps--open-ECORRUPT", 0, 1,
		  M->index_slots = (uint64_t)1 << 60);
	META_CASE("metas-index-slots-2pow63--open-ECORRUPT", 0, 1, M->index_slots = (uint64_t)1 << 63);
	META_CASE("metas-index-slots-huge--open-ECORRUPT", 0, 1, M->index_slots = (uint64_t)1 << 40);
	META_CASE("metas-index-slots-not-power-of-2--open-ECORRUPT", 0, 1, M->index_slots = 1536);
	META_CASE("metas-index-slots-512-below-min--open-ECORRUPT", 0, 1, M->index_slots = 512);
	META_CASE("metas-index-slots-0--open-ECORRUPT", 0, 1, M->index_slots = 0);
	META_CASE("metas-index-past-data-end--open-ECORRUPT", 0, 1, M->index_off = M->data_end - 64);
	/* the blob index */
	META_CASE("metas-blobs-off-past-end--open-ECORRUPT", 0, 1, M->blobs_off = im.n + 4096);
	META_CASE("meta-newest-blobs-off-past-end--verify-ECORRUPT", 0, 0, M->blobs_off = im.n + 4096);
	META_CASE("metas-blobs-off-in-header--open-ECORRUPT", 0, 1, M->blobs_off = 64);
	META_CASE("metas-blobs-off-0--open-ECORRUPT", 0, 1, M->blobs_off = 0);
	META_CASE("metas-blobs-off-unaligned--open-ECORRUPT", 0, 1, M->blobs_off += 32);
	META_CASE("metas-blobs-off-wraps--open-ECORRUPT", 0, 1, M->blobs_off = UINT64_MAX - 63);
	META_CASE("metas-blob-slots-2pow59-wraps--open-ECORRUPT", 0, 1, M->blob_slots = (uint64_t)1 << 59);
	META_CASE("metas-blob-slots-2pow63--open-ECORRUPT", 0, 1, M->blob_slots = (uint64_t)1 << 63);
	META_CASE("metas-blob-slots-not-power-of-2--open-ECORRUPT", 0, 1, M->blob_slots = 1536);
	META_CASE("metas-blob-slots-512-below-min--open-ECORRUPT", 0, 1, M->blob_slots = 512);
	META_CASE("metas-blob-slots-0--open-ECORRUPT", 0, 1, M->blob_slots = 0);
	META_CASE("metas-blob-index-past-data-end--open-ECORRUPT", 0, 1, M->blobs_off = M->data_end - 64);
	META_CASE("metas-blobs-exceed-blob-slots--open-ECORRUPT", 0, 1, M->blobs = M->blob_slots + 1);
	META_CASE("metas-blobs-plus-tombs-wrap--open-ECORRUPT", 0, 1,
		  (M->blobs = UINT64_MAX, M->blob_tombs = 1));
	/* the blob index laid over the key index: both tables read the
	 * same bytes (zeros past the few slots in use) */
	META_CASE("metas-blob-index-over-key-index--open-ECORRUPT", 0, 1, M->blobs_off = M->index_off);
	/* data_end */
	META_CASE("metas-data-end-past-eof--open-ECORRUPT", 0, 1, M->data_end = im.n + 64);
	META_CASE("metas-data-end-unaligned--open-ECORRUPT", 0, 1, M->data_end -= 1);
	META_CASE("metas-data-end-in-header--open-ECORRUPT", 0, 1, M->data_end = 1024);
	META_CASE("metas-data-end-max--open-ECORRUPT", 0, 1, M->data_end = UINT64_MAX - 63);
	/* the metadata chunk */
	META_CASE("metas-chunk-off-unaligned--open-ECORRUPT", 0, 1, M->chunk_off += 8);
	META_CASE("metas-chunk-off-in-header--open-ECORRUPT", 0, 1, M->chunk_off = 64);
	META_CASE("metas-chunk-off-past-data-end--open-ECORRUPT", 0, 1, M->chunk_off = M->data_end + 64);
	META_CASE("metas-chunk-len-past-data-end--open-ECORRUPT", 0, 1, M->chunk_len = M->data_end);
	META_CASE("metas-chunk-len-max--open-ECORRUPT", 0, 1, M->chunk_len = UINT64_MAX);
	META_CASE("metas-chunk-used-over-len--open-ECORRUPT", 0, 1, M->chunk_used = M->chunk_len + 8);
	META_CASE("metas-chunk-used-unaligned--open-ECORRUPT", 0, 1, M->chunk_used += 4);
	/* the slot of txn 0 (no chunk yet) stays sane: it is opened */
	META_CASE("metas-chunk-sizes-without-chunk-falls-back--verify-ECORRUPT", 0, 1,
		  M->chunk_off = 0);
	META_CASE("meta-newest-chunk-used-over-len--verify-ECORRUPT", 0, 0,
		  M->chunk_used = M->chunk_len + 8);
	/* no current chunk, a full one: the next put starts a new one */
	META_CASE("meta-no-current-chunk--ok", 0, 0, M->chunk_off = M->chunk_used = M->chunk_len = 0);
	META_CASE("meta-chunk-full--ok", 0, 0, M->chunk_len = M->chunk_used);
	/* the free tail of the chunk laid over what is committed: entries,
	 * the tables, blobs.  Readers never look at the chunk fields; verify
	 * reports the overlap, and a put finds the tail not zero and starts a
	 * new chunk instead of writing over them */
	META_CASE("metas-chunk-used-0-under-live-entries--verify-ECORRUPT", 0, 1, M->chunk_used = 0);
	META_CASE("metas-chunk-over-key-index--open-ECORRUPT", 0, 1,
		  (M->chunk_off = M->index_off, M->chunk_used = 0, M->chunk_len = SC_CHUNK));
	META_CASE("metas-chunk-over-blob-index--open-ECORRUPT", 0, 1,
		  (M->chunk_off = M->blobs_off, M->chunk_used = 0, M->chunk_len = SC_CHUNK));
	META_CASE("metas-chunk-over-blobs--verify-ECORRUPT", 0, 1,
		  (M->chunk_off = ent(&im, in.off_b)->blob_off, M->chunk_used = 0,
		   M->chunk_len = M->data_end - M->chunk_off));
	/* redo records */
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
	META_CASE("meta-redo-into-chunk-free-tail--verify-ECORRUPT", 0, 0,
		  (M->redo_slot = in.slot_a, M->redo_hash = in.hash_a,
		   M->redo_off = M->chunk_off + M->chunk_used));
	/* wredo records (blob slots the commit changed) */
	META_CASE("metas-wredo-n-5--open-ECORRUPT", 0, 1, M->wredo_n = SC_WREDO_MAX + 1);
	META_CASE("metas-wredo-n-max--open-ECORRUPT", 0, 1, M->wredo_n = UINT64_MAX);
	META_CASE("metas-wredo-at-before-blob-index--open-ECORRUPT", 0, 1,
		  (M->wredo_n = 1, M->wredo[0].at = M->blobs_off - 32));
	META_CASE("metas-wredo-at-past-blob-index--open-ECORRUPT", 0, 1,
		  (M->wredo_n = 1, M->wredo[0].at = M->blobs_off + 32 * M->blob_slots));
	META_CASE("metas-wredo-at-unaligned--open-ECORRUPT", 0, 1,
		  (M->wredo_n = 1, M->wredo[0].at = M->blobs_off + 8));
	META_CASE("metas-wredo-at-max--open-ECORRUPT", 0, 1,
		  (M->wredo_n = 1, M->wredo[0].at = UINT64_MAX - 31));
	META_CASE("meta-newest-wredo-at-into-key-index--verify-ECORRUPT", 0, 0,
		  (M->wredo_n = 1, M->wredo[0].at = M->index_off));
	META_CASE("meta-wredo-tombstones-shared-blob--verify-ECORRUPT", 0, 0,
		  (M->wredo[0].v[2] = SC_SLOT_TOMB));
	META_CASE("meta-wredo-blob-past-data-end--verify-ECORRUPT", 0, 0,
		  (M->wredo[0].v[2] = M->data_end));
	META_CASE("meta-wredo-refs-0--verify-ECORRUPT", 0, 0,
		  (M->wredo[0].v[3] &= SC_BLOB_LEN_MASK));
	META_CASE("meta-wredo-len-wrong--verify-ECORRUPT", 0, 0, (M->wredo[0].v[3] += 1));
	META_CASE("meta-wredo-id-wrong--verify-ECORRUPT", 0, 0, (M->wredo[0].v[0] ^= 1));
	META_CASE("meta-wredo-slot-emptied--verify-ECORRUPT", 0, 0,
		  (M->wredo[0].v[0] = M->wredo[0].v[1] = M->wredo[0].v[2] = M->wredo[0].v[3] = 0));
	/* other fields */
	META_CASE("metas-retired--open-ECORRUPT", 0, 1, M->flags |= SC_META_RETIRED);
	META_CASE("metas-unknown-flags--ok", 0, 1, M->flags |= 0x100);
	META_CASE("metas-live-bytes-lie--verify-ECORRUPT", 0, 1, M->live_bytes = 1);
	META_CASE("metas-tombstones-lie--verify-ECORRUPT", 0, 1, M->tombstones = 5);
	META_CASE("metas-blobs-lie--verify-ECORRUPT", 0, 1, M->blobs = 7);
	META_CASE("metas-blob-tombs-lie--verify-ECORRUPT", 0, 1, M->blob_tombs = 3);
	META_CASE("metas-stored-bytes-lie--verify-ECORRUPT", 0, 1, M->stored_bytes += 64);
	META_CASE("metas-logical-bytes-lie--verify-ECORRUPT", 0, 1, M->logical_bytes = 0);
	META_CASE("metas-dead-bytes-max--ok", 0, 1, M->dead_bytes = UINT64_MAX);
	META_CASE("metas-counts-exceed-slots--open-ECORRUPT", 0, 1, M->entries = M->index_slots + 1);
	/* write-path bugs found in format 1, fixed in 6352cf0 */
	META_CASE("metas-entries-0-with-4-entries--verify-ECORRUPT", 0, 1, M->entries = 0);
	META_CASE("metas-entries-plus-tombstones-wrap--open-ECORRUPT", 0, 1,
		  (M->entries = UINT64_MAX, M->tombstones = 1));
	META_CASE("meta-txnid-max-refused-falls-back--verify-ECORRUPT", 0, 0,
		  M->txnid = UINT64_MAX - (in.newest == 0));

	/* ---- entry records (checksums repaired unless the case is about them) ---- */
#define REC_CASE_AT(name, which, stmt, what)                         \
	do {                                                         \
		im = copy(&base);                                    \
		in = inspect(&im);                                   \
		struct sc_disk_entry *R = ent(&im, in.which);        \
		(void)R;                                             \
		stmt;                                                \
		shard_fix_record(im.d, im.n, in.which, what);        \
		out(name, &im, 0);                                   \
	} while (0)
#define REC_CASE(name, stmt, what) REC_CASE_AT(name, off_a, stmt, what)
	REC_CASE("ent-magic-wrong--verify-ECORRUPT", R->magic ^= 1, FIX_RECORD);
	REC_CASE("ent-magic-format-1--verify-ECORRUPT", R->magic = 0x4e455343u, FIX_RECORD);
	REC_CASE("ent-checksum-wrong--verify-ECORRUPT", R->checksum ^= 1, 0);
	REC_CASE("ent-key-byte-changed-checksum-stale--verify-ECORRUPT", ((char *)(R + 1))[1] ^= 1, 0);
	REC_CASE("ent-exe-path-byte-changed-checksum-stale--verify-ECORRUPT",
		 ((char *)(R + 1))[R->key_len + R->tag_len + R->exe_id_len] ^= 1, 0);
	REC_CASE("ent-pad-changed-checksum-stale--verify-ECORRUPT", R->pad0 = 1, 0);
	REC_CASE("ent-pad-changed--ok", R->pad0 = 1, FIX_RECORD);
	REC_CASE("ent-blob-id-wrong--verify-ECORRUPT", R->blob_id[0] ^= 1, FIX_RECORD);
	REC_CASE("ent-blob-id-high-wrong--verify-ECORRUPT", R->blob_id[1] ^= 1, FIX_RECORD);
	REC_CASE("ent-blob-byte-changed--verify-ECORRUPT", im.d[R->blob_off] ^= 1, FIX_RECORD);
	/* the bytes changed and the ids followed: sound again */
	REC_CASE("ent-blob-byte-changed-ids-follow--ok", (settle(&im, &in), im.d[R->blob_off] ^= 1),
		 FIX_RECORD | FIX_BLOB);
	REC_CASE("ent-rec-len-max--verify-ECORRUPT", R->rec_len = UINT32_MAX - 7, FIX_ALL);
	REC_CASE("ent-rec-len-unaligned--verify-ECORRUPT", R->rec_len += 1, FIX_ALL);
	REC_CASE("ent-rec-len-0--verify-ECORRUPT", R->rec_len = 0, FIX_ALL);
	REC_CASE("ent-rec-len-below-strings--verify-ECORRUPT", R->rec_len -= 8, FIX_ALL);
	REC_CASE("ent-rec-len-past-data-end--verify-ECORRUPT",
		 R->rec_len = (uint32_t)(in.m[in.newest].data_end - in.off_a + 8), FIX_ALL);
	/* over the next entry: readable, but the live bytes no longer add up */
	REC_CASE("ent-rec-len-over-next-entry--verify-ECORRUPT", R->rec_len += 8, FIX_ALL);
	REC_CASE("ent-blob-len-over-max--verify-ECORRUPT", R->blob_len = SC_MAX_BLOB + 1, FIX_RECORD);
	REC_CASE("ent-blob-len-max--verify-ECORRUPT", R->blob_len = UINT64_MAX, FIX_RECORD);
	REC_CASE("ent-blob-len-past-data-end--verify-ECORRUPT",
		 R->blob_len = in.m[in.newest].data_end - R->blob_off + 1, FIX_RECORD);
	REC_CASE("ent-blob-len-0--verify-ECORRUPT", R->blob_len = 0, FIX_RECORD);
	REC_CASE("ent-blob-off-overflow--verify-ECORRUPT", R->blob_off = UINT64_MAX - 63, FIX_RECORD);
	REC_CASE("ent-blob-off-unaligned--verify-ECORRUPT", R->blob_off += 8, FIX_RECORD);
	REC_CASE("ent-blob-off-in-header--verify-ECORRUPT", R->blob_off = 64, FIX_RECORD);
	REC_CASE("ent-blob-off-0--verify-ECORRUPT", R->blob_off = 0, FIX_RECORD);
	REC_CASE("ent-blob-off-at-data-end--verify-ECORRUPT", R->blob_off = in.m[in.newest].data_end,
		 FIX_RECORD);
	/* another entry's blob, id and all: a sound entry, but the blob
	 * index counts one reference too few there and one too many here */
	REC_CASE("ent-blob-of-another-entry--verify-ECORRUPT",
		 (R->blob_off = ent(&im, in.off_b)->blob_off, R->blob_len = ent(&im, in.off_b)->blob_len),
		 FIX_RECORD | FIX_BLOB);
	/* blobs laid over metadata and tables, their ids forged */
	REC_CASE("ent-blob-over-metadata-chunk--verify-ECORRUPT",
		 (R->blob_off = in.m[in.newest].chunk_off, R->blob_len = 512), FIX_RECORD | FIX_BLOB);
	REC_CASE("ent-blob-over-key-index--verify-ECORRUPT",
		 (R->blob_off = in.m[in.newest].index_off, R->blob_len = 4096), FIX_RECORD | FIX_BLOB);
	REC_CASE("ent-blob-over-chunk-free-tail--verify-ECORRUPT",
		 (R->blob_off = sc_align_up(in.m[in.newest].chunk_off + in.m[in.newest].chunk_used),
		  R->blob_len = 64),
		 FIX_RECORD | FIX_BLOB);
	REC_CASE("ent-key-len-0--verify-ECORRUPT", R->key_len = 0, FIX_RECORD);
	REC_CASE("ent-key-len-4097--verify-ECORRUPT", R->key_len = 4097, FIX_RECORD);
	REC_CASE("ent-tag-len-65535-past-record--verify-ECORRUPT", R->tag_len = 65535, FIX_RECORD);
	REC_CASE("ent-exe-path-len-past-record--verify-ECORRUPT", R->exe_path_len += 200, FIX_RECORD);
	REC_CASE("ent-no-source-flag-flipped--ok", R->flags ^= SC_ENT_NO_SOURCE, FIX_ALL);
	REC_CASE("ent-unknown-flags--ok", R->flags |= 0x80000000u, FIX_ALL);
	/* a source hash on an entry without a source: ignored */
	REC_CASE("ent-src-hash-without-source--ok",
		 (R->flags |= SC_ENT_SRC_HASH, R->src_hash[0] = 1, R->src_hash[1] = 2), FIX_ALL);
	REC_CASE("ent-times-extreme--ok",
		 (R->src_mtime_sec = INT64_MIN, R->src_mtime_nsec = UINT32_MAX,
		  R->cached_sec = INT64_MAX, R->cached_nsec = UINT32_MAX, R->src_size = UINT64_MAX),
		 FIX_ALL);
	REC_CASE_AT("ent-src-hash-wrong--ok", off_b, R->src_hash[0] ^= 1, FIX_RECORD);
	REC_CASE_AT("ent-src-hash-flag-dropped--ok", off_b, R->flags &= ~SC_ENT_SRC_HASH, FIX_RECORD);
	REC_CASE_AT("ent-src-hash-checksum-stale--verify-ECORRUPT", off_b, R->src_hash[1] ^= 1, 0);
	/* SC_ENT_OWN_BLOB: the blob is the entry's alone, outside the index */
	REC_CASE_AT("ent-own-blob-flag-on-shared-blob--verify-ECORRUPT", off_d,
		    R->flags |= SC_ENT_OWN_BLOB, FIX_RECORD);
	REC_CASE("ent-own-blob-flag-on-indexed-blob--verify-ECORRUPT", R->flags |= SC_ENT_OWN_BLOB,
		 FIX_RECORD);
	/* the same, with the blob's slot a tombstone and the counts moved:
	 * what a put writes when the id collides or the count is full */
	im = copy(&base);
	in = inspect(&im);
	settle(&im, &in);
	{
		uint64_t s = bslot_of(&im, &in, in.off_a);
		bslot(&im, &in.m[in.newest], s)->off = SC_SLOT_TOMB;
		ent(&im, in.off_a)->flags |= SC_ENT_OWN_BLOB;
		shard_fix_record(im.d, im.n, in.off_a, FIX_RECORD);
		NEWEST_META(im, in, (M->blobs--, M->blob_tombs++));
	}
	write_img("shard", "own-blob-entry", &im);
	out("ent-own-blob--ok", &im, 0);
	/* two entries, each with its own copy of the same bytes */
	im = copy(&base);
	in = inspect(&im);
	settle(&im, &in);
	{
		struct sc_disk_entry *d = ent(&im, in.off_d);
		uint64_t s = bslot_of(&im, &in, in.off_d);
		uint64_t at = in.m[in.newest].data_end;
		memcpy(im.d + at, im.d + d->blob_off, (size_t)d->blob_len);
		im.n = at + sc_align_up(d->blob_len);
		d->blob_off = at;
		d->flags |= SC_ENT_OWN_BLOB;
		shard_fix_record(im.d, im.n, in.off_d, FIX_RECORD);
		bslot(&im, &in.m[in.newest], s)->info -= (uint64_t)1 << SC_BLOB_LEN_BITS;
		NEWEST_META(im, in, (M->data_end = im.n, M->stored_bytes += d->blob_len,
				     M->live_bytes += sc_align_up(d->blob_len)));
	}
	write_img("shard", "own-blob-copy-of-shared", &im);
	out("ent-own-blob-copy-of-shared--ok", &im, 0);

	/* ---- blob index slots (committed: the wredo applied first) ---- */
#define BSLOT_CASE(name, which, stmt)                                        \
	do {                                                                 \
		im = copy(&base);                                            \
		in = inspect(&im);                                           \
		settle(&im, &in);                                            \
		struct sc_disk_bslot *B =                                    \
			bslot(&im, &in.m[in.newest], bslot_of(&im, &in, in.which)); \
		(void)B;                                                     \
		stmt;                                                        \
		out(name, &im, 0);                                           \
	} while (0)
#define REFS(b, r) ((b)->info = ((uint64_t)(r) << SC_BLOB_LEN_BITS) | sc_bslot_len(b))
	BSLOT_CASE("bslot-refs-lie--verify-ECORRUPT", off_a, REFS(B, 5));
	BSLOT_CASE("bslot-refs-0--verify-ECORRUPT", off_a, REFS(B, 0));
	BSLOT_CASE("bslot-shared-refs-1--verify-ECORRUPT", off_c, REFS(B, 1));
	/* a full count never drops: one holder is damage, for verify */
	BSLOT_CASE("bslot-refs-max-one-holder--verify-ECORRUPT", off_a, REFS(B, SC_BLOB_REFS_MAX));
	BSLOT_CASE("bslot-len-wrong--verify-ECORRUPT", off_a, B->info += 1);
	BSLOT_CASE("bslot-len-max--verify-ECORRUPT", off_a, B->info |= SC_BLOB_LEN_MASK);
	BSLOT_CASE("bslot-off-past-data-end--verify-ECORRUPT", off_a,
		   B->off = in.m[in.newest].data_end + 64);
	BSLOT_CASE("bslot-off-unaligned--verify-ECORRUPT", off_a, B->off += 8);
	BSLOT_CASE("bslot-off-in-header--verify-ECORRUPT", off_a, B->off = 64);
	BSLOT_CASE("bslot-off-max--verify-ECORRUPT", off_a, B->off = UINT64_MAX - 63);
	BSLOT_CASE("bslot-off-another-blob--verify-ECORRUPT", off_a,
		   B->off = ent(&im, in.off_b)->blob_off);
	BSLOT_CASE("bslot-id-wrong--verify-ECORRUPT", off_a, B->id_hi ^= 1);
	BSLOT_CASE("bslot-tombstone-under-live-entry--verify-ECORRUPT", off_c, B->off = SC_SLOT_TOMB);
	BSLOT_CASE("bslot-emptied-under-live-entry--verify-ECORRUPT", off_c, B->off = SC_SLOT_EMPTY);
	/* the same id twice: the probe finds the first */
	im = copy(&base);
	in = inspect(&im);
	settle(&im, &in);
	{
		const struct sc_disk_meta *m = &in.m[in.newest];
		uint64_t s = bslot_of(&im, &in, in.off_c), j = (s + 1) & (m->blob_slots - 1);
		CHECK(bslot(&im, m, j)->off == SC_SLOT_EMPTY);
		*bslot(&im, m, j) = *bslot(&im, m, s);
		NEWEST_META(im, in, (M->blobs++, M->stored_bytes += 200, M->live_bytes += 256));
	}
	out("bindex-same-id-twice--verify-ECORRUPT", &im, 0);
	/* every blob slot a tombstone but the ones in use: probes stop after a lap */
	im = copy(&base);
	in = inspect(&im);
	settle(&im, &in);
	{
		const struct sc_disk_meta *m = &in.m[in.newest];
		uint64_t tombs = 0;
		for (uint64_t i = 0; i < m->blob_slots; i++)
			if (bslot(&im, m, i)->off == SC_SLOT_EMPTY) {
				bslot(&im, m, i)->off = SC_SLOT_TOMB;
				tombs++;
			}
		NEWEST_META(im, in, M->blob_tombs = tombs);
	}
	out("bindex-no-empty-slot--ok", &im, 0);
	/* every blob slot holds the same live blob: no free slot at all */
	im = copy(&base);
	in = inspect(&im);
	settle(&im, &in);
	{
		const struct sc_disk_meta *m = &in.m[in.newest];
		struct sc_disk_bslot b = *bslot(&im, m, bslot_of(&im, &in, in.off_a));
		for (uint64_t i = 0; i < m->blob_slots; i++)
			*bslot(&im, m, i) = b;
		ALL_METAS(im, in, (M->blobs = M->blob_slots, M->blob_tombs = 0, M->wredo_n = 0,
				    memset(M->wredo, 0, sizeof(M->wredo))));
	}
	out("bindex-full-of-one-blob--verify-ECORRUPT", &im, 0);
	/* the same, but the metas say the blob index is empty */
	im = copy(&base);
	in = inspect(&im);
	settle(&im, &in);
	{
		const struct sc_disk_meta *m = &in.m[in.newest];
		struct sc_disk_bslot b = *bslot(&im, m, bslot_of(&im, &in, in.off_a));
		for (uint64_t i = 0; i < m->blob_slots; i++)
			*bslot(&im, m, i) = b;
		ALL_METAS(im, in, (M->blobs = 0, M->blob_tombs = 0, M->wredo_n = 0,
				    memset(M->wredo, 0, sizeof(M->wredo))));
	}
	out("bindex-full-counts-say-empty--verify-ECORRUPT", &im, 0);

	/* ---- key index slots ---- */
#define SLOT_CASE(name, pend, hash, off)                                           \
	do {                                                                       \
		im = copy(&base);                                                  \
		in = inspect(&im);                                                 \
		settle(&im, &in);                                                  \
		set_slot(&im, &in.m[in.newest], in.slot_a, hash, off);            \
		out(name, &im, pend);                                              \
	} while (0)
	SLOT_CASE("slot-into-middle-of-entry--verify-ECORRUPT", 0, in.hash_a, in.off_a + 64);
	SLOT_CASE("slot-into-strings-of-entry--verify-ECORRUPT", 0, in.hash_a,
		  in.off_a + sizeof(struct sc_disk_entry) + 8);
	SLOT_CASE("slot-into-blob-of-other-entry--verify-ECORRUPT", 0, in.hash_a,
		  ent(&im, in.off_c)->blob_off + 128);
	SLOT_CASE("slot-into-header--verify-ECORRUPT", 0, in.hash_a, 64);
	SLOT_CASE("slot-into-meta--verify-ECORRUPT", 0, in.hash_a, SC_META1_OFF);
	SLOT_CASE("slot-into-key-index--verify-ECORRUPT", 0, in.hash_a, in.m[in.newest].index_off);
	SLOT_CASE("slot-into-blob-index--verify-ECORRUPT", 0, in.hash_a, in.m[in.newest].blobs_off);
	SLOT_CASE("slot-into-chunk-free-tail--verify-ECORRUPT", 0, in.hash_a,
		  in.m[in.newest].chunk_off + in.m[in.newest].chunk_used);
	SLOT_CASE("slot-unaligned--verify-ECORRUPT", 0, in.hash_a, in.off_a + 1);
	SLOT_CASE("slot-at-data-end--verify-ECORRUPT", 0, in.hash_a, in.m[in.newest].data_end);
	SLOT_CASE("slot-last-8-bytes-of-data--verify-ECORRUPT", 0, in.hash_a,
		  in.m[in.newest].data_end - 8);
	SLOT_CASE("slot-past-eof-inside-map-window--verify-ECORRUPT", 0, in.hash_a, im.n + 8192);
	SLOT_CASE("slot-huge--verify-ECORRUPT", 0, in.hash_a, (uint64_t)1 << 62);
	SLOT_CASE("slot-max--verify-ECORRUPT", 0, in.hash_a, UINT64_MAX);
	SLOT_CASE("slot-hash-not-the-keys--verify-ECORRUPT", 0, in.hash_a ^ 1, in.off_a);
	SLOT_CASE("slot-points-at-another-key--verify-ECORRUPT", 0, in.hash_a, in.off_c);
	/* a slot of the newest meta names an entry written after the older
	 * meta's chunk_used: fine for the newest meta, which is the one read */
	SLOT_CASE("slot-entry-of-the-twin-under-a--verify-ECORRUPT", 0, in.hash_a, in.off_d);

	/* every slot a tombstone: probes must stop after one lap */
	im = copy(&base);
	in = inspect(&im);
	{
		struct sc_disk_meta m = in.m[in.newest];
		for (uint64_t i = 0; i < m.index_slots; i++)
			set_slot(&im, &m, i, i, SC_SLOT_TOMB);
		ALL_METAS(im, in, (M->entries = 0, M->tombstones = M->index_slots,
				    M->live_bytes = M->stored_bytes = M->logical_bytes = 0,
				    M->redo_slot = SC_NO_REDO, M->redo_off = M->redo_hash = 0));
		/* no entry holds the blobs any more: they die with them */
		settle(&im, &in);
		for (uint64_t i = 0; i < m.blob_slots; i++)
			if (bslot(&im, &in.m[in.newest], i)->off > SC_SLOT_TOMB)
				bslot(&im, &in.m[in.newest], i)->off = SC_SLOT_TOMB;
		NEWEST_META(im, in, (M->blob_tombs += M->blobs, M->blobs = 0));
	}
	out("index-all-tombstones--ok", &im, 0);
	/* one live entry, every other slot a tombstone, placed so that its
	 * probe starts at the next slot and wraps all the way round */
	im = copy(&base);
	in = inspect(&im);
	{
		struct sc_disk_meta m;
		uint64_t home = in.hash_a & (in.m[in.newest].index_slots - 1);
		settle(&im, &in);
		m = in.m[in.newest];
		for (uint64_t i = 0; i < m.index_slots; i++)
			set_slot(&im, &m, i, i, SC_SLOT_TOMB);
		set_slot(&im, &m, (home + m.index_slots - 1) & (m.index_slots - 1), in.hash_a, in.off_a);
		for (uint64_t i = 0; i < m.blob_slots; i++) {
			struct sc_disk_bslot *b = bslot(&im, &in.m[in.newest], i);
			if (b->off > SC_SLOT_TOMB && b->off != ent(&im, in.off_a)->blob_off)
				b->off = SC_SLOT_TOMB;
		}
		ALL_METAS(im, in, (M->entries = 1, M->tombstones = M->index_slots - 1,
				    M->live_bytes = ent(&im, in.off_a)->rec_len + 64,
				    M->blobs = 1, M->blob_tombs = 2,
				    M->stored_bytes = M->logical_bytes = 5,
				    M->redo_slot = SC_NO_REDO, M->redo_off = M->redo_hash = 0));
	}
	out("index-probe-wraps-around-full-table--ok", &im, 0);
	/* every slot points at the same entry: duplicates, no free slot */
	im = copy(&base);
	in = inspect(&im);
	{
		struct sc_disk_meta m = in.m[in.newest];
		for (uint64_t i = 0; i < m.index_slots; i++)
			set_slot(&im, &m, i, in.hash_a, in.off_a);
		ALL_METAS(im, in, (M->entries = M->index_slots, M->tombstones = 0,
				    M->live_bytes = M->index_slots * ent(&im, in.off_a)->rec_len,
				    M->redo_slot = SC_NO_REDO, M->redo_off = M->redo_hash = 0));
	}
	out("index-full-of-one-entry--opens", &im, 0);
	/* the same, but the metas say the index is empty: a writer that sizes
	 * a grown table from the meta's count has no room for the slots */
	im = copy(&base);
	in = inspect(&im);
	{
		struct sc_disk_meta m = in.m[in.newest];
		for (uint64_t i = 0; i < m.index_slots; i++)
			set_slot(&im, &m, i, in.hash_a, in.off_a);
		ALL_METAS(im, in, (M->entries = 0, M->tombstones = 0,
				    M->redo_slot = SC_NO_REDO, M->redo_off = M->redo_hash = 0));
	}
	out("index-full-counts-say-empty--verify-ECORRUPT", &im, 0);
	/* found by fuzzing in format 1: the meta counts no tombstone, the put
	 * of the write target lands on one, and the count wrapped below zero */
	im = copy(&base);
	in = inspect(&im);
	settle(&im, &in);
	{
		const struct sc_disk_meta *m = &in.m[in.newest];
		uint64_t home = hash_of(FUZZ_NEW_KEY) & (m->index_slots - 1);
		uint8_t *p = shard_slot(im.d, im.n, m, home);
		uint64_t off;
		CHECK(p != NULL);
		memcpy(&off, p + 8, 8);
		CHECK(off == SC_SLOT_EMPTY);
		set_slot(&im, m, home, 0, SC_SLOT_TOMB);
		NEWEST_META(im, in, M->tombstones = 0);
	}
	out("put-into-tombstone-meta-says-none--verify-ECORRUPT", &im, 0);
	/* the tables laid over the entries */
	META_CASE("metas-index-over-entries--open-ECORRUPT", 0, 1, M->index_off = M->chunk_off);
	META_CASE("metas-blob-index-over-entries--open-ECORRUPT", 0, 1,
		  (M->blobs_off = M->chunk_off, M->wredo_n = 0));

	free(base.d);
	free(three_img.d);
	free(empty.d);
	{
		char cmd[PATH_MAX + 16];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
		if (system(cmd) != 0)
			fprintf(stderr, "gen_corpus: could not remove %s\n", tmpdir);
	}
	return 0;
}
