/*
 * sc_bench.c - the core store against its peers, measured in one run.
 *
 * For each entry count (default 1000 and 100000 entries of 16 KiB blobs)
 * three stores are filled with the same keys and the same blobs:
 *
 *   scriptcache  one shard file, this library
 *   LMDB         one environment; key = source path, value = stamp + blob
 *   files        one cache file per entry holding stamp + blob, the way
 *                __pycache__ and most per-script caches work
 *
 * where the "stamp" is the source's mtime and size, so that both peers can
 * check freshness the way sc_get() does.  Keys are canonical paths of real
 * source files created in a temporary directory: every freshness stat(2)
 * is a real one.  The stores are then timed on an index lookup, a validated
 * hit, a no-sync put and a durable put; a first hit in a fresh process is
 * timed on a 1 MiB and on a 1 GiB shard.  Two measurements that only use
 * the public API, so that they hold for any on-disk format: the page
 * faults of a fresh process that opens the largest store and gets one key,
 * above an empty process (scriptcache, LMDB for information), and a churn
 * of replacements in a shard of fixed entry count, with file size against
 * live bytes.  A third, freshness by content, times sc_get() on sources
 * whose mtime moved but whose bytes did not (1, 16 and 128 KiB), against
 * the stamp-only hit and a plain read of the same files.
 *
 * Method: fast operations run in rounds over one random key sequence shared
 * by all stores, the stores interleaved round by round, after an untimed
 * pass that also checks every blob; the median round is reported.  Puts are
 * timed one by one, in interleaved blocks; the mean is reported with p50 and
 * p99.  Nothing is dropped from the page cache: all files are warm.
 *
 * The program prints progress on stderr and the report on stdout, and
 * removes its temporary directory on exit, also after a failure or SIGINT.
 * `sc_bench --help` lists the flags; docs/BENCHMARKS.md has results.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <limits.h>
#include <lmdb.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/uio.h>
#include <sys/utsname.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scriptcache.h"

extern char **environ;

#define MAX_SIZES   4
#define POOL_BLOBS  64     /* distinct blobs; key i gets blob i % POOL_BLOBS */
#define FILES_PER_DIR 256
#define TAG "sc_bench 16k v1"

/* ------------------------------------------------------------------ */
/* Options */

struct opts {
	size_t sizes[MAX_SIZES];
	int n_sizes;
	size_t blob_size;
	size_t lookup_ops;     /* per round */
	size_t hit_ops;        /* per round */
	int rounds;
	size_t put_ops;        /* no-sync puts per store and size */
	size_t durable_ops;    /* durable puts per store and size */
	int first_hit_reps;
	size_t churn_entries;  /* shard size for the churn */
	size_t churn_puts;     /* replacements per churn variant */
	int fault_reps;        /* fresh processes per kind for the fault count */
	size_t content_ops;    /* ops per round of each contender, per source size */
	uint64_t small_shard;  /* bytes */
	uint64_t big_shard;    /* bytes */
	const char *tmp_base;
	unsigned only;         /* B_* bits to run */
	int quick;
	int strict;
	int keep;
};

enum {
	B_LOOKUP = 1 << 0,
	B_HIT = 1 << 1,
	B_PUT = 1 << 2,
	B_DURABLE = 1 << 3,
	B_FIRST = 1 << 4,
	B_CHURN = 1 << 5,
	B_FAULTS = 1 << 6,
	B_CONTENT = 1 << 7,
	B_ALL = (1 << 8) - 1,
	/* the benchmarks that bench_size() runs for every entry count */
	B_PER_SIZE = B_LOOKUP | B_HIT | B_PUT | B_DURABLE,
};

static const char *const g_bench_name[] = {
	"lookup", "hit", "put", "durable", "first", "churn", "faults", "content",
};

static struct opts g_opt = {
	.only = B_ALL,
	.sizes = { 1000, 100000 },
	.n_sizes = 2,
	.blob_size = 16384,
	.lookup_ops = 200000,
	.hit_ops = 50000,
	.rounds = 5,
	.put_ops = 2000,
	.durable_ops = 200,
	.first_hit_reps = 50,
	.churn_entries = 10000,
	.churn_puts = 100000,
	.fault_reps = 20,
	.content_ops = 5000,
	.small_shard = 1u << 20,
	.big_shard = 1u << 30,
	.tmp_base = "/tmp",
};

/* ------------------------------------------------------------------ */
/* Failure and cleanup */

static char g_tmpdir[PATH_MAX];   /* empty until created; removed at exit */

static int rm_entry(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
	(void)st;
	(void)ftw;
	if (type == FTW_DP)
		rmdir(path);
	else
		unlink(path);
	return 0;
}

static void cleanup_tmpdir(void)
{
	if (g_tmpdir[0] == '\0' || g_opt.keep)
		return;
	nftw(g_tmpdir, rm_entry, 64, FTW_DEPTH | FTW_PHYS);
	g_tmpdir[0] = '\0';
}

/* Not async-signal-safe, but the process is going away either way and a
 * 100K-file directory left in /tmp is the worse outcome. */
static void on_signal(int sig)
{
	cleanup_tmpdir();
	signal(sig, SIG_DFL);
	raise(sig);
}

static _Noreturn void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	fputs("sc_bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1); /* atexit removes the temporary directory */
}

static void progress(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fputs("# ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

/* ------------------------------------------------------------------ */
/* Small helpers */

static volatile uint64_t g_sink; /* keeps results observable */

static int64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static uint64_t g_rng = 0x9e3779b97f4a7c15u;

static uint64_t rng_next(void) /* splitmix64 */
{
	uint64_t z = (g_rng += 0x9e3779b97f4a7c15u);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);

	if (!p)
		die("out of memory (%zu bytes)", n);
	return p;
}

static char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		die("out of memory");
	return p;
}

static void path_join(char *out, const char *a, const char *b)
{
	if ((size_t)snprintf(out, PATH_MAX, "%s/%s", a, b) >= PATH_MAX)
		die("path too long: %s/%s", a, b);
}

static void mkdir_or_die(const char *path)
{
	if (mkdir(path, 0700) != 0 && errno != EEXIST)
		die("mkdir %s: %s", path, strerror(errno));
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Percentile of @p v (sorted in place), p in [0,1]. */
static double percentile(double *v, size_t n, double p)
{
	size_t i;

	qsort(v, n, sizeof *v, cmp_double);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i < n ? i : n - 1];
}

/* ------------------------------------------------------------------ */
/* Keys, sources and blobs, shared by every store */

/* What the peers store in front of the blob to judge freshness. */
struct stamp {
	int64_t mtime_sec;
	int64_t mtime_nsec;
	uint64_t src_size;
	uint64_t blob_len;
};

static size_t g_nkeys;
static char **g_keys;     /* canonical source paths */
static char **g_cpaths;   /* files store: cache file per key */
static unsigned char *g_pool;

static const unsigned char *blob_of(size_t i)
{
	return g_pool + (i % POOL_BLOBS) * g_opt.blob_size;
}

/* What a put stores: during the fill, key i's pool blob; during the timed
 * put rounds, new bytes every time (the pool blob with a put counter in
 * its first 8 bytes), as when a changed script is compiled again: the
 * blob sharing of format 2 must not make a replacement free. */
static unsigned char *g_fresh;
static uint64_t g_fresh_n;
static int g_fresh_on;

static const unsigned char *put_blob(size_t i)
{
	if (!g_fresh_on)
		return blob_of(i);
	memcpy(g_fresh, blob_of(i), g_opt.blob_size);
	g_fresh_n++;
	memcpy(g_fresh, &g_fresh_n, g_opt.blob_size < 8 ? g_opt.blob_size : 8);
	return g_fresh;
}

static void make_pool(void)
{
	size_t n = POOL_BLOBS * g_opt.blob_size;
	size_t i;

	g_pool = xmalloc(n);
	for (i = 0; i + 8 <= n; i += 8) {
		uint64_t v = rng_next();
		memcpy(g_pool + i, &v, 8);
	}
	for (; i < n; i++)
		g_pool[i] = (unsigned char)rng_next();
}

static void make_sources(size_t n)
{
	char src[PATH_MAX], files[PATH_MAX], d[PATH_MAX], buf[64];
	size_t i;

	path_join(src, g_tmpdir, "src");
	path_join(files, g_tmpdir, "files");
	mkdir_or_die(src);
	g_keys = xmalloc(n * sizeof *g_keys);
	g_cpaths = xmalloc(n * sizeof *g_cpaths);
	for (i = 0; i < n; i++) {
		char p[PATH_MAX];
		int fd, len;

		snprintf(buf, sizeof buf, "dir%zu", i / FILES_PER_DIR);
		path_join(d, src, buf);
		if (i % FILES_PER_DIR == 0)
			mkdir_or_die(d);
		if ((size_t)snprintf(p, sizeof p, "%s/mod%zu.lua", d, i) >= sizeof p)
			die("path too long");
		fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die("create %s: %s", p, strerror(errno));
		len = snprintf(buf, sizeof buf, "-- module %zu\nreturn %zu\n", i, i);
		if (write(fd, buf, (size_t)len) != len)
			die("write %s: %s", p, strerror(errno));
		close(fd);
		g_keys[i] = xstrdup(p);
		if ((size_t)snprintf(p, sizeof p, "%s/dir%zu/mod%zu.luac", files,
				     i / FILES_PER_DIR, i) >= sizeof p)
			die("path too long");
		g_cpaths[i] = xstrdup(p);
	}
	g_nkeys = n;
}

static void free_sources(void)
{
	for (size_t i = 0; i < g_nkeys; i++) {
		free(g_keys[i]);
		free(g_cpaths[i]);
	}
	free(g_keys);
	free(g_cpaths);
	free(g_pool);
}

static void stamp_from(struct stamp *s, const struct stat *st)
{
	s->mtime_sec = st->st_mtim.tv_sec;
	s->mtime_nsec = st->st_mtim.tv_nsec;
	s->src_size = (uint64_t)st->st_size;
	s->blob_len = g_opt.blob_size;
}

static int stamp_fresh(const struct stamp *s, const struct stat *st)
{
	return s->mtime_sec == st->st_mtim.tv_sec && s->mtime_nsec == st->st_mtim.tv_nsec &&
	       s->src_size == (uint64_t)st->st_size;
}

/* ------------------------------------------------------------------ */
/* Store: scriptcache */

struct sc_store {
	sc_cache *c;
	char path[PATH_MAX];
};

static void scs_open(struct sc_store *s, unsigned flags)
{
	int rc = sc_open(&s->c, s->path, TAG, flags | SC_IGNORE_ENV);

	if (rc != 0)
		die("sc_open %s: %s", s->path, sc_strerror(rc));
}

static int scs_lookup(void *p, size_t i)
{
	struct sc_store *s = p;
	sc_entry_info e;
	int rc = sc_lookup(s->c, g_keys[i], &e);

	g_sink += e.blob_size;
	return rc;
}

static int scs_hit(void *p, size_t i)
{
	struct sc_store *s = p;
	sc_blob b;
	int rc = sc_get(s->c, g_keys[i], &b);

	if (rc == 0)
		g_sink += *(const unsigned char *)b.data;
	return rc;
}

static int scs_verify(void *p, size_t i)
{
	struct sc_store *s = p;
	sc_blob b;
	int rc = sc_get(s->c, g_keys[i], &b);

	if (rc != 0)
		return rc;
	if (b.size != g_opt.blob_size || memcmp(b.data, blob_of(i), b.size) != 0 ||
	    (uintptr_t)b.data % SC_BLOB_ALIGN != 0)
		return -EBADMSG;
	return 0;
}

static int scs_put(void *p, size_t i)
{
	struct sc_store *s = p;

	return sc_put(s->c, g_keys[i], put_blob(i), g_opt.blob_size);
}

/* ------------------------------------------------------------------ */
/* Store: LMDB */

struct lmdb_store {
	MDB_env *env;
	MDB_dbi dbi;
	MDB_txn *rtxn;      /* reused per lookup: renew ... reset */
	MDB_txn *rtxn_long; /* kept open across a whole round */
	char dir[PATH_MAX];
};

static void lmdb_check(int rc, const char *what)
{
	if (rc != 0)
		die("LMDB %s: %s", what, mdb_strerror(rc));
}

static void lms_open(struct lmdb_store *s, size_t entries)
{
	/* A 16 KiB value takes 5 overflow pages; copy-on-write and the free
	 * list can need twice the live size. */
	size_t per = ((g_opt.blob_size + sizeof(struct stamp) + 16 + 4095) / 4096) * 4096;
	size_t total = entries + g_opt.put_ops + g_opt.durable_ops + 1024;
	MDB_txn *txn;

	mkdir_or_die(s->dir);
	lmdb_check(mdb_env_create(&s->env), "env_create");
	lmdb_check(mdb_env_set_mapsize(s->env, total * per * 2 + (64u << 20)), "set_mapsize");
	lmdb_check(mdb_env_open(s->env, s->dir, MDB_NOSYNC, 0600), "env_open");
	lmdb_check(mdb_txn_begin(s->env, NULL, 0, &txn), "txn_begin");
	lmdb_check(mdb_dbi_open(txn, NULL, 0, &s->dbi), "dbi_open");
	lmdb_check(mdb_txn_commit(txn), "commit");
	lmdb_check(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn), "rtxn");
	mdb_txn_reset(s->rtxn);
	lmdb_check(mdb_txn_begin(s->env, NULL, MDB_RDONLY, &s->rtxn_long), "rtxn");
	mdb_txn_reset(s->rtxn_long);
}

static void lms_close(struct lmdb_store *s)
{
	mdb_txn_abort(s->rtxn);
	mdb_txn_abort(s->rtxn_long);
	mdb_env_close(s->env);
	s->env = NULL;
}

static MDB_val mkey(size_t i)
{
	MDB_val k = { strlen(g_keys[i]), g_keys[i] };
	return k;
}

/* The recommended pattern for repeated reads: renew, read, reset. */
static int lms_lookup(void *p, size_t i)
{
	struct lmdb_store *s = p;
	MDB_val k = mkey(i), v;
	int rc;

	if ((rc = mdb_txn_renew(s->rtxn)) != 0)
		return rc;
	rc = mdb_get(s->rtxn, s->dbi, &k, &v);
	if (rc == 0)
		g_sink += v.mv_size;
	mdb_txn_reset(s->rtxn);
	return rc;
}

static void lms_long_begin(void *p)
{
	struct lmdb_store *s = p;

	lmdb_check(mdb_txn_renew(s->rtxn_long), "txn_renew");
}

static void lms_long_end(void *p)
{
	struct lmdb_store *s = p;

	mdb_txn_reset(s->rtxn_long);
}

/* Best case for LMDB: all lookups inside one read transaction. */
static int lms_lookup_long(void *p, size_t i)
{
	struct lmdb_store *s = p;
	MDB_val k = mkey(i), v;
	int rc = mdb_get(s->rtxn_long, s->dbi, &k, &v);

	if (rc == 0)
		g_sink += v.mv_size;
	return rc;
}

static int lms_hit_check(struct lmdb_store *s, size_t i, int full)
{
	MDB_val k = mkey(i), v;
	struct stamp sp;
	struct stat st;
	int rc;

	if ((rc = mdb_txn_renew(s->rtxn)) != 0)
		return rc;
	rc = mdb_get(s->rtxn, s->dbi, &k, &v);
	if (rc != 0)
		goto out;
	if (v.mv_size != sizeof sp + g_opt.blob_size) {
		rc = -EBADMSG;
		goto out;
	}
	memcpy(&sp, v.mv_data, sizeof sp);
	if (stat(g_keys[i], &st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!stamp_fresh(&sp, &st)) {
		rc = -ESTALE;
		goto out;
	}
	if (full && memcmp((const char *)v.mv_data + sizeof sp, blob_of(i), g_opt.blob_size))
		rc = -EBADMSG;
	g_sink += ((const unsigned char *)v.mv_data)[sizeof sp];
out:
	mdb_txn_reset(s->rtxn);
	return rc;
}

static int lms_hit(void *p, size_t i)
{
	return lms_hit_check(p, i, 0);
}

static int lms_verify(void *p, size_t i)
{
	return lms_hit_check(p, i, 1);
}

/* One write transaction per put, as a cache storing one script would. */
static int lms_put(void *p, size_t i)
{
	struct lmdb_store *s = p;
	MDB_val k = mkey(i), v = { sizeof(struct stamp) + g_opt.blob_size, NULL };
	struct stamp sp;
	struct stat st;
	MDB_txn *txn;
	int rc;

	if (stat(g_keys[i], &st) != 0)
		return -errno;
	stamp_from(&sp, &st);
	if ((rc = mdb_txn_begin(s->env, NULL, 0, &txn)) != 0)
		return rc;
	if ((rc = mdb_put(txn, s->dbi, &k, &v, MDB_RESERVE)) != 0) {
		mdb_txn_abort(txn);
		return rc;
	}
	memcpy(v.mv_data, &sp, sizeof sp);
	memcpy((char *)v.mv_data + sizeof sp, put_blob(i), g_opt.blob_size);
	return mdb_txn_commit(txn);
}

/* ------------------------------------------------------------------ */
/* Store: one file per entry */

struct file_store {
	int sync;            /* fsync the temp file before the rename */
	unsigned char *buf;  /* read buffer, larger than any cache file */
	size_t buf_len;
};

static int fs_hit_check(struct file_store *s, size_t i, int full)
{
	struct stamp sp;
	struct stat st;
	ssize_t n;
	int fd;

	if (stat(g_keys[i], &st) != 0)
		return -errno;
	fd = open(g_cpaths[i], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = read(fd, s->buf, s->buf_len);
	close(fd);
	if (n != (ssize_t)(sizeof sp + g_opt.blob_size))
		return n < 0 ? -errno : -EBADMSG;
	memcpy(&sp, s->buf, sizeof sp);
	if (!stamp_fresh(&sp, &st))
		return -ESTALE;
	if (full && memcmp(s->buf + sizeof sp, blob_of(i), g_opt.blob_size))
		return -EBADMSG;
	g_sink += s->buf[sizeof sp];
	return 0;
}

static int fs_hit(void *p, size_t i)
{
	return fs_hit_check(p, i, 0);
}

static int fs_verify(void *p, size_t i)
{
	return fs_hit_check(p, i, 1);
}

/* Write a temp file and rename it over the entry: readers never see a
 * partial file.  With sync, fsync before the rename (the usual recipe). */
static int fs_put(void *p, size_t i)
{
	struct file_store *s = p;
	char tmp[PATH_MAX];
	struct stamp sp;
	struct stat st;
	struct iovec iov[2];
	ssize_t n;
	int fd, rc = 0;

	if (stat(g_keys[i], &st) != 0)
		return -errno;
	stamp_from(&sp, &st);
	if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp", g_cpaths[i]) >= sizeof tmp)
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -errno;
	iov[0].iov_base = &sp;
	iov[0].iov_len = sizeof sp;
	iov[1].iov_base = (void *)put_blob(i);
	iov[1].iov_len = g_opt.blob_size;
	n = writev(fd, iov, 2);
	if (n != (ssize_t)(sizeof sp + g_opt.blob_size))
		rc = n < 0 ? -errno : -EIO;
	if (rc == 0 && s->sync && fsync(fd) != 0)
		rc = -errno;
	if (close(fd) != 0 && rc == 0)
		rc = -errno;
	if (rc == 0 && rename(tmp, g_cpaths[i]) != 0)
		rc = -errno;
	if (rc != 0)
		unlink(tmp);
	return rc;
}

/* ------------------------------------------------------------------ */
/* Measurement */

typedef int (*op_fn)(void *store, size_t key);

struct contender {
	const char *label;
	op_fn op;
	void *store;
	void (*begin)(void *store); /* optional, around each timed round */
	void (*end)(void *store);
	op_fn verify;               /* optional, untimed pass over every key */
};

static const char *rc_str(int rc)
{
	if (rc <= SC_ENOTFOUND && rc >= SC_ELAST)
		return sc_strerror(rc);
	if (rc < 0)
		return strerror(-rc);
	return mdb_strerror(rc);
}

/*
 * Time @p nc contenders over the key sequence @p seq (@p ops keys):
 * an untimed pass over all @p n keys (verifying when asked) and one warm-up
 * round, then g_opt.rounds rounds, the contenders interleaved.  The median
 * round's ns/op goes to out[c].
 */
static void run_rounds(const char *what, struct contender *cs, int nc, size_t n,
		       const size_t *seq, size_t ops, double *out)
{
	int rounds = g_opt.rounds;
	double *samples = xmalloc((size_t)nc * (size_t)rounds * sizeof *samples);

	for (int c = 0; c < nc; c++) {
		op_fn pass = cs[c].verify ? cs[c].verify : cs[c].op;

		if (cs[c].begin)
			cs[c].begin(cs[c].store);
		for (size_t i = 0; i < n; i++) {
			int rc = pass(cs[c].store, i);
			if (rc != 0)
				die("%s: %s: key %zu (%s): %s", what, cs[c].label, i, g_keys[i],
				    rc_str(rc));
		}
		for (size_t k = 0; k < ops; k++)
			cs[c].op(cs[c].store, seq[k]);
		if (cs[c].end)
			cs[c].end(cs[c].store);
	}
	for (int r = 0; r < rounds; r++) {
		for (int c = 0; c < nc; c++) {
			op_fn op = cs[c].op;
			void *st = cs[c].store;
			int bad = 0;
			int64_t t0, t1;

			if (cs[c].begin)
				cs[c].begin(st);
			t0 = now_ns();
			for (size_t k = 0; k < ops; k++)
				bad |= op(st, seq[k]);
			t1 = now_ns();
			if (cs[c].end)
				cs[c].end(st);
			if (bad)
				die("%s: %s failed during a timed round", what, cs[c].label);
			samples[c * rounds + r] = (double)(t1 - t0) / (double)ops;
		}
	}
	for (int c = 0; c < nc; c++) {
		out[c] = percentile(samples + c * rounds, (size_t)rounds, 0.5);
		progress("%s, N=%zu: %-44s %9.1f ns/op", what, n, cs[c].label, out[c]);
	}
	free(samples);
}

struct put_result {
	double mean, p50, p99;
};

/*
 * Time @p ops puts per contender, one by one, on the keys in @p seq; the
 * contenders take turns in blocks so that drift (page cache, disk) hits
 * all of them alike.
 */
static void run_puts(const char *what, struct contender *cs, int nc, size_t n,
		     const size_t *seq, size_t ops, struct put_result *out)
{
	size_t block = ops >= 200 ? ops / 20 : (ops >= 10 ? ops / 10 : 1);
	double *lat = xmalloc((size_t)nc * ops * sizeof *lat);

	if (!g_fresh)
		g_fresh = xmalloc(g_opt.blob_size);
	g_fresh_on = 1;

	for (size_t done = 0; done < ops; done += block) {
		size_t end = done + block < ops ? done + block : ops;

		for (int c = 0; c < nc; c++) {
			for (size_t k = done; k < end; k++) {
				int64_t t0 = now_ns();
				int rc = cs[c].op(cs[c].store, seq[k]);
				int64_t t1 = now_ns();

				if (rc != 0)
					die("%s: %s: key %zu: %s", what, cs[c].label, seq[k],
					    rc_str(rc));
				lat[c * ops + k] = (double)(t1 - t0);
			}
		}
	}
	for (int c = 0; c < nc; c++) {
		double *v = lat + c * ops, sum = 0;

		for (size_t k = 0; k < ops; k++)
			sum += v[k];
		out[c].mean = sum / (double)ops;
		out[c].p50 = percentile(v, ops, 0.5);
		out[c].p99 = percentile(v, ops, 0.99);
		progress("%s, N=%zu: %-44s %9.0f ns/op (p50 %.0f, p99 %.0f)", what, n,
			 cs[c].label, out[c].mean, out[c].p50, out[c].p99);
	}
	g_fresh_on = 0;
	free(lat);
}

/* ------------------------------------------------------------------ */
/* Results */

enum {
	R_LOOKUP_SC, R_LOOKUP_LMDB, R_LOOKUP_LMDB_LONG,
	R_HIT_SC, R_HIT_FILES, R_HIT_LMDB,
	R_FILL_SC, R_FILL_LMDB, R_FILL_FILES,
	R_PUT_SC, R_PUT_LMDB, R_PUT_FILES,
	R_DPUT_SC, R_DPUT_LMDB, R_DPUT_FILES,
	R_COUNT
};

static const char *const g_row_label[R_COUNT] = {
	[R_LOOKUP_SC]        = "scriptcache sc_lookup",
	[R_LOOKUP_LMDB]      = "LMDB mdb_get, txn renew+reset per lookup",
	[R_LOOKUP_LMDB_LONG] = "LMDB mdb_get, one read txn per round (info)",
	[R_HIT_SC]           = "scriptcache sc_get",
	[R_HIT_FILES]        = "files: stat+open+read+close",
	[R_HIT_LMDB]         = "LMDB renew+mdb_get+stat+reset",
	[R_FILL_SC]          = "scriptcache sc_put, SC_NOSYNC",
	[R_FILL_LMDB]        = "LMDB put+commit, MDB_NOSYNC",
	[R_FILL_FILES]       = "files: write tmp+rename",
	[R_PUT_SC]           = "scriptcache sc_put, SC_NOSYNC",
	[R_PUT_LMDB]         = "LMDB put+commit, MDB_NOSYNC",
	[R_PUT_FILES]        = "files: write tmp+rename",
	[R_DPUT_SC]          = "scriptcache sc_put (durable)",
	[R_DPUT_LMDB]        = "LMDB put+commit (durable)",
	[R_DPUT_FILES]       = "files: write tmp+fsync+rename",
};

static struct put_result g_res[R_COUNT][MAX_SIZES];

struct shard_info {
	uint64_t file_size, entries, index_slots;
};
static struct shard_info g_shard_info[MAX_SIZES];

/* First hit in a fresh process. */
struct first_hit {
	const char *label;
	uint64_t file_size, entries;
	double build_s;
	double p10, p50, p90;  /* child total: sc_open + sc_get */
	double open50, get50;  /* medians of the two parts */
};
static struct first_hit g_first[2];

/* Page faults of a fresh process: none, scriptcache, LMDB. */
enum { F_EMPTY, F_SC, F_LMDB, F_COUNT };

static const char *const g_fault_kind[F_COUNT] = { "empty", "sc", "lmdb" };

struct faults {
	size_t entries;
	uint64_t file_size;                /* the shard */
	double med[F_COUNT], min[F_COUNT], max[F_COUNT];
	long majflt;                       /* of all children, all kinds */
};
static struct faults g_faults;

/* ------------------------------------------------------------------ */
/* Benchmarks for one entry count */

static size_t *random_seq(size_t n, size_t ops)
{
	size_t *seq = xmalloc(ops * sizeof *seq);

	for (size_t k = 0; k < ops; k++)
		seq[k] = (size_t)(rng_next() % n);
	return seq;
}

static void fill_one(const char *label, op_fn put, void *store, size_t n, struct put_result *r)
{
	int64_t t0 = now_ns();

	for (size_t i = 0; i < n; i++) {
		int rc = put(store, i);
		if (rc != 0)
			die("fill %s: key %zu: %s", label, i, rc_str(rc));
	}
	r->mean = (double)(now_ns() - t0) / (double)n;
	r->p50 = r->p99 = 0;
	progress("fill, N=%zu: %-44s %9.0f ns/put", n, label, r->mean);
}

/* The index of the largest entry count: the fault count runs there. */
static int largest_size(void)
{
	int b = 0;

	for (int s = 1; s < g_opt.n_sizes; s++)
		if (g_opt.sizes[s] > g_opt.sizes[b])
			b = s;
	return b;
}

static void bench_faults(struct sc_store *scs, struct lmdb_store *lms, size_t n);

static void bench_size(int si)
{
	int per_size = (g_opt.only & B_PER_SIZE) != 0;
	int faults = (g_opt.only & B_FAULTS) && si == largest_size();
	size_t n = g_opt.sizes[si];
	struct sc_store scs = { 0 };
	struct lmdb_store lms = { 0 };
	struct file_store fst = { 0 };
	char files_dir[PATH_MAX], d[PATH_MAX], name[32];
	size_t *seq;
	double ns[3];
	struct put_result pr[3];
	sc_stats stats;
	int rc;

	if (!per_size && !faults)
		return;
	progress("--- N = %zu entries of %zu bytes ---", n, g_opt.blob_size);
	path_join(scs.path, g_tmpdir, "bench.shard");
	path_join(lms.dir, g_tmpdir, "lmdb");
	path_join(files_dir, g_tmpdir, "files");
	fst.buf_len = sizeof(struct stamp) + g_opt.blob_size + 4096;
	fst.buf = xmalloc(fst.buf_len);

	/* Fill: N new keys into each empty store, one commit per put. */
	scs_open(&scs, SC_NOSYNC);
	lms_open(&lms, n);
	mkdir_or_die(files_dir);
	for (size_t i = 0; i < n; i += FILES_PER_DIR) {
		snprintf(name, sizeof name, "dir%zu", i / FILES_PER_DIR);
		path_join(d, files_dir, name);
		mkdir_or_die(d);
	}
	fill_one(g_row_label[R_FILL_SC], scs_put, &scs, n, &g_res[R_FILL_SC][si]);
	fill_one(g_row_label[R_FILL_LMDB], lms_put, &lms, n, &g_res[R_FILL_LMDB][si]);
	if (per_size)
		fill_one(g_row_label[R_FILL_FILES], fs_put, &fst, n, &g_res[R_FILL_FILES][si]);
	if ((rc = sc_get_stats(scs.c, &stats)) != 0)
		die("sc_get_stats: %s", sc_strerror(rc));
	g_shard_info[si].file_size = stats.file_size;
	g_shard_info[si].entries = stats.entries;
	g_shard_info[si].index_slots = stats.index_slots;
	if (stats.entries != n)
		die("shard holds %" PRIu64 " entries after %zu puts", stats.entries, n);

	/* Page faults of a fresh process, on the shard just filled. */
	if (faults)
		bench_faults(&scs, &lms, n);
	if (!per_size)
		goto done;

	/* Lookup: index probe only. */
	seq = random_seq(n, g_opt.lookup_ops);
	if (g_opt.only & B_LOOKUP) {
		struct contender cs[3] = {
			{ g_row_label[R_LOOKUP_SC], scs_lookup, &scs, NULL, NULL, NULL },
			{ g_row_label[R_LOOKUP_LMDB], lms_lookup, &lms, NULL, NULL, NULL },
			{ g_row_label[R_LOOKUP_LMDB_LONG], lms_lookup_long, &lms,
			  lms_long_begin, lms_long_end, NULL },
		};
		run_rounds("lookup", cs, 3, n, seq, g_opt.lookup_ops, ns);
		for (int c = 0; c < 3; c++)
			g_res[R_LOOKUP_SC + c][si].mean = ns[c];
	}
	free(seq);

	/* Validated hit. */
	seq = random_seq(n, g_opt.hit_ops);
	if (g_opt.only & B_HIT) {
		struct contender cs[3] = {
			{ g_row_label[R_HIT_SC], scs_hit, &scs, NULL, NULL, scs_verify },
			{ g_row_label[R_HIT_FILES], fs_hit, &fst, NULL, NULL, fs_verify },
			{ g_row_label[R_HIT_LMDB], lms_hit, &lms, NULL, NULL, lms_verify },
		};
		run_rounds("hit", cs, 3, n, seq, g_opt.hit_ops, ns);
		for (int c = 0; c < 3; c++)
			g_res[R_HIT_SC + c][si].mean = ns[c];
	}
	free(seq);

	/* No-sync put: replace random existing entries. */
	seq = random_seq(n, g_opt.put_ops);
	if (g_opt.only & B_PUT) {
		struct contender cs[3] = {
			{ g_row_label[R_PUT_SC], scs_put, &scs, NULL, NULL, NULL },
			{ g_row_label[R_PUT_LMDB], lms_put, &lms, NULL, NULL, NULL },
			{ g_row_label[R_PUT_FILES], fs_put, &fst, NULL, NULL, NULL },
		};
		run_puts("put nosync", cs, 3, n, seq, g_opt.put_ops, pr);
		for (int c = 0; c < 3; c++)
			g_res[R_PUT_SC + c][si] = pr[c];
	}
	free(seq);

	/* Durable put: the same, with each store's own durability. */
	sc_close(scs.c);
	scs_open(&scs, 0);
	lmdb_check(mdb_env_set_flags(lms.env, MDB_NOSYNC, 0), "set_flags");
	fst.sync = 1;
	seq = random_seq(n, g_opt.durable_ops);
	if (g_opt.only & B_DURABLE) {
		struct contender cs[3] = {
			{ g_row_label[R_DPUT_SC], scs_put, &scs, NULL, NULL, NULL },
			{ g_row_label[R_DPUT_LMDB], lms_put, &lms, NULL, NULL, NULL },
			{ g_row_label[R_DPUT_FILES], fs_put, &fst, NULL, NULL, NULL },
		};
		run_puts("put durable", cs, 3, n, seq, g_opt.durable_ops, pr);
		for (int c = 0; c < 3; c++)
			g_res[R_DPUT_SC + c][si] = pr[c];
	}
	free(seq);

done:
	sc_close(scs.c);
	lms_close(&lms);
	free(fst.buf);
	/* Free the page cache and disk space before the next size. */
	nftw(files_dir, rm_entry, 64, FTW_DEPTH | FTW_PHYS);
	nftw(lms.dir, rm_entry, 64, FTW_DEPTH | FTW_PHYS);
	unlink(scs.path);
}

/* ------------------------------------------------------------------ */
/* First hit in a fresh process */

/* Child mode: open the shard, one validated hit, print the elapsed ns. */
static int child_first_hit(const char *shard, const char *key)
{
	int64_t t0, t1, t2;
	sc_cache *c = NULL;
	sc_blob b;
	int rc;

	t0 = now_ns();
	rc = sc_open(&c, shard, TAG, SC_IGNORE_ENV);
	t1 = now_ns();
	if (rc == 0)
		rc = sc_get(c, key, &b);
	t2 = now_ns();
	if (rc != 0) {
		fprintf(stderr, "sc_bench child: %s: %s\n", key, sc_strerror(rc));
		sc_close(c);
		return 1;
	}
	g_sink += *(const unsigned char *)b.data;
	/* total, then its two parts */
	printf("%" PRId64 " %" PRId64 " %" PRId64 "\n", t2 - t0, t1 - t0, t2 - t1);
	sc_close(c);
	return 0;
}

/* Run one child; its total, sc_open and sc_get times go to out[0..2]. */
static void spawn_first_hit(const char *self, const char *shard, const char *key, double out[3])
{
	char *argv[] = { (char *)self, "--child-first-hit", (char *)shard, (char *)key, NULL };
	posix_spawn_file_actions_t fa;
	char buf[64];
	size_t got = 0;
	ssize_t r;
	int pfd[2], status, rc;
	pid_t pid;

	if (pipe2(pfd, O_CLOEXEC) != 0)
		die("pipe: %s", strerror(errno));
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pfd[1], STDOUT_FILENO);
	rc = posix_spawn(&pid, self, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(pfd[1]);
	if (rc != 0)
		die("posix_spawn %s: %s", self, strerror(rc));
	while (got < sizeof buf - 1 && (r = read(pfd[0], buf + got, sizeof buf - 1 - got)) != 0) {
		if (r < 0) {
			if (errno == EINTR)
				continue;
			die("read from child: %s", strerror(errno));
		}
		got += (size_t)r;
	}
	buf[got] = '\0';
	close(pfd[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			die("waitpid: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || got == 0)
		die("first-hit child failed on %s", shard);
	if (sscanf(buf, "%lf %lf %lf", &out[0], &out[1], &out[2]) != 3)
		die("first-hit child printed '%s'", buf);
}

/* The path of this executable, for the child modes. */
static void self_exe(char self[PATH_MAX])
{
	ssize_t len = readlink("/proc/self/exe", self, PATH_MAX - 1);

	if (len < 0)
		die("readlink /proc/self/exe: %s", strerror(errno));
	self[len] = '\0';
}

/* Build a shard of about @p bytes; return the number of entries. */
static size_t build_shard(const char *path, uint64_t bytes, struct first_hit *fh)
{
	struct sc_store s = { 0 };
	sc_stats st;
	size_t n, probe = 16, i;
	int64_t t0 = now_ns();
	int rc;

	snprintf(s.path, sizeof s.path, "%s", path);
	scs_open(&s, SC_NOSYNC);
	/* distinct bytes per entry: format 2 stores equal blobs once, and
	 * the big shard must really be that big */
	if (!g_fresh)
		g_fresh = xmalloc(g_opt.blob_size);
	g_fresh_on = 1;
	for (i = 0; i < probe; i++)
		if ((rc = scs_put(&s, i)) != 0)
			die("build %s: %s", path, sc_strerror(rc));
	if ((rc = sc_get_stats(s.c, &st)) != 0)
		die("sc_get_stats: %s", sc_strerror(rc));
	/* Bytes per entry from the first few; the index adds a little. */
	n = (size_t)(bytes / ((st.live_bytes + st.dead_bytes) / st.entries + 32));
	if (n > g_nkeys)
		n = g_nkeys;
	for (; i < n; i++)
		if ((rc = scs_put(&s, i)) != 0)
			die("build %s: key %zu: %s", path, i, sc_strerror(rc));
	if ((rc = sc_get_stats(s.c, &st)) != 0)
		die("sc_get_stats: %s", sc_strerror(rc));
	g_fresh_on = 0;
	fh->build_s = (double)(now_ns() - t0) / 1e9;
	fh->file_size = st.file_size;
	fh->entries = st.entries;
	sc_close(s.c);
	progress("built %s: %" PRIu64 " entries, %" PRIu64 " bytes, %.2f s", path, st.entries,
		 st.file_size, fh->build_s);
	return n;
}

static void bench_first_hit(void)
{
	char self[PATH_MAX], shard[2][PATH_MAX];
	size_t n[2];
	int reps = g_opt.first_hit_reps;
	double *t[2][3], one[3];

	self_exe(self);
	path_join(shard[0], g_tmpdir, "small.shard");
	path_join(shard[1], g_tmpdir, "big.shard");
	g_first[0].label = "small";
	g_first[1].label = "big";
	n[0] = build_shard(shard[0], g_opt.small_shard, &g_first[0]);
	n[1] = build_shard(shard[1], g_opt.big_shard, &g_first[1]);
	for (int s = 0; s < 2; s++)
		for (int k = 0; k < 3; k++)
			t[s][k] = xmalloc((size_t)reps * sizeof *t[s][k]);
	/* Warm-up: one child per shard (faults in the binary and libraries). */
	for (int s = 0; s < 2; s++)
		spawn_first_hit(self, shard[s], g_keys[0], one);
	for (int r = 0; r < reps; r++)
		for (int s = 0; s < 2; s++) {
			spawn_first_hit(self, shard[s], g_keys[rng_next() % n[s]], one);
			for (int k = 0; k < 3; k++)
				t[s][k][r] = one[k];
		}
	for (int s = 0; s < 2; s++) {
		struct first_hit *f = &g_first[s];

		f->p10 = percentile(t[s][0], (size_t)reps, 0.1);
		f->p50 = percentile(t[s][0], (size_t)reps, 0.5);
		f->p90 = percentile(t[s][0], (size_t)reps, 0.9);
		f->open50 = percentile(t[s][1], (size_t)reps, 0.5);
		f->get50 = percentile(t[s][2], (size_t)reps, 0.5);
		progress("first hit, %s shard: median %.0f ns (sc_open %.0f, sc_get %.0f)", f->label,
			 f->p50, f->open50, f->get50);
		for (int k = 0; k < 3; k++)
			free(t[s][k]);
		if (!g_opt.keep)
			unlink(shard[s]);
	}
}

/* ------------------------------------------------------------------ */
/* Churn: many replacements in a shard of a fixed entry count */

/*
 * A cache in use replaces entries far more often than it adds them.  This
 * fills a shard with churn_entries keys, then replaces random keys
 * churn_puts times with SC_NOSYNC puts and never calls sc_compact(): how
 * large the file gets relative to its live bytes is up to the library
 * alone.  Two variants, each in a new shard: "pool", where key i's v-th
 * put stores pool blob (i + v) % POOL_BLOBS, and "unique", the same bytes
 * with a put counter in the first 8, so that no two blobs are equal and a
 * format that stores identical blobs once cannot pass by deduplicating:
 * it has to reuse dead space.
 */
#define CHURN_POINTS 5  /* after the fill, then at 25, 50, 75 and 100% */

struct churn_point {
	size_t puts;                               /* replacements done */
	uint64_t entries, live, dead, file_size;   /* sc_get_stats() */
	uint64_t st_size, st_alloc;                /* stat(2) of the shard path */
	uint64_t peak;                             /* largest st_size so far */
};

struct churn_result {
	const char *label;
	int ran;
	struct churn_point pt[CHURN_POINTS];
	uint64_t compactions;                      /* by the library, this handle */
	double fill_s, put_s, mean_us, p50_us, p99_us;
};
static struct churn_result g_churn[2] = { { .label = "pool" }, { .label = "unique" } };

static double churn_ratio(const struct churn_point *p, uint64_t size)
{
	return p->live ? (double)size / (double)p->live : 0;
}

/* The end's file size over live bytes: the larger of the two file sizes. */
static double churn_end_ratio(const struct churn_result *r)
{
	const struct churn_point *p = &r->pt[CHURN_POINTS - 1];

	return churn_ratio(p, p->file_size > p->st_size ? p->file_size : p->st_size);
}

static void churn_point(struct sc_store *s, struct churn_point *p, size_t puts, uint64_t peak)
{
	struct stat sb;
	sc_stats st;
	int rc;

	if ((rc = sc_get_stats(s->c, &st)) != 0)
		die("sc_get_stats: %s", sc_strerror(rc));
	if (stat(s->path, &sb) != 0)
		die("stat %s: %s", s->path, strerror(errno));
	p->puts = puts;
	p->entries = st.entries;
	p->live = st.live_bytes;
	p->dead = st.dead_bytes;
	p->file_size = st.file_size;
	p->st_size = (uint64_t)sb.st_size;
	p->st_alloc = (uint64_t)sb.st_blocks * 512;
	p->peak = peak > p->st_size ? peak : p->st_size;
}

/* The blob of key @p i at its @p ver-th put; @p stamp != 0 goes in front. */
static const unsigned char *churn_blob(size_t i, uint32_t ver, uint64_t stamp,
				       unsigned char *buf)
{
	const unsigned char *p = g_pool + ((i + ver) % POOL_BLOBS) * g_opt.blob_size;

	if (!stamp)
		return p;
	memcpy(buf, p, g_opt.blob_size);
	memcpy(buf, &stamp, sizeof stamp);
	return buf;
}

static void churn_one(struct churn_result *r, int unique, const size_t *seq)
{
	size_t n = g_opt.churn_entries, ops = g_opt.churn_puts, next = 1;
	struct sc_store s = { 0 };
	uint32_t *ver = xmalloc(n * sizeof *ver);
	uint64_t *stamp = xmalloc(n * sizeof *stamp);
	unsigned char *buf = xmalloc(g_opt.blob_size);
	double *lat = xmalloc(ops * sizeof *lat);
	uint64_t counter = 0, peak = 0;
	struct churn_point *p;
	struct stat sb;
	sc_stats st;
	double sum = 0;
	int64_t t0;
	char name[32];
	int rc;

	snprintf(name, sizeof name, "churn-%s.shard", r->label);
	path_join(s.path, g_tmpdir, name);
	scs_open(&s, SC_NOSYNC);
	progress("churn, %s blobs: filling %zu entries", r->label, n);
	t0 = now_ns();
	for (size_t i = 0; i < n; i++) {
		ver[i] = 0;
		stamp[i] = unique ? ++counter : 0;
		rc = sc_put(s.c, g_keys[i], churn_blob(i, 0, stamp[i], buf), g_opt.blob_size);
		if (rc != 0)
			die("churn fill: key %zu: %s", i, sc_strerror(rc));
	}
	r->fill_s = (double)(now_ns() - t0) / 1e9;
	churn_point(&s, &r->pt[0], 0, 0);
	peak = r->pt[0].peak;

	for (size_t k = 0; k < ops; k++) {
		size_t i = seq[k];
		const unsigned char *b;
		int64_t t1, t2;

		ver[i]++;
		stamp[i] = unique ? ++counter : 0;
		b = churn_blob(i, ver[i], stamp[i], buf);
		t1 = now_ns();
		rc = sc_put(s.c, g_keys[i], b, g_opt.blob_size);
		t2 = now_ns();
		if (rc != 0)
			die("churn: put %zu, key %zu: %s", k, i, sc_strerror(rc));
		lat[k] = (double)(t2 - t1);
		sum += lat[k];
		/* The file's size after every put, untimed: the peak may fall
		 * between two checkpoints (a format that compacts by itself). */
		if (stat(s.path, &sb) != 0)
			die("stat %s: %s", s.path, strerror(errno));
		if ((uint64_t)sb.st_size > peak)
			peak = (uint64_t)sb.st_size;
		if (next < CHURN_POINTS && k + 1 == ops * next / (CHURN_POINTS - 1)) {
			p = &r->pt[next++];
			churn_point(&s, p, k + 1, peak);
			progress("churn, %s blobs, %3zu%%: file/live %.2f (stat %.2f), "
				 "live %.1f MiB, dead %.1f MiB, peak %.1f MiB", r->label,
				 (k + 1) * 100 / ops, churn_ratio(p, p->file_size),
				 churn_ratio(p, p->st_size), (double)p->live / (1 << 20),
				 (double)p->dead / (1 << 20), (double)p->peak / (1 << 20));
		}
	}
	r->put_s = sum / 1e9;
	r->mean_us = sum / (double)ops / 1e3;
	r->p50_us = percentile(lat, ops, 0.5) / 1e3;
	r->p99_us = percentile(lat, ops, 0.99) / 1e3;
	if ((rc = sc_get_stats(s.c, &st)) != 0)
		die("sc_get_stats: %s", sc_strerror(rc));
	r->compactions = st.compactions;

	/* Every key must hold the bytes of its last put. */
	for (size_t i = 0; i < n; i++) {
		sc_blob b;

		if ((rc = sc_get(s.c, g_keys[i], &b)) != 0)
			die("churn, %s blobs: key %zu: %s", r->label, i, sc_strerror(rc));
		if (b.size != g_opt.blob_size ||
		    memcmp(b.data, churn_blob(i, ver[i], stamp[i], buf), b.size) != 0)
			die("churn, %s blobs: key %zu holds the wrong bytes", r->label, i);
	}
	if (r->pt[CHURN_POINTS - 1].entries != n)
		die("churn, %s blobs: %" PRIu64 " entries, expected %zu", r->label,
		    r->pt[CHURN_POINTS - 1].entries, n);
	progress("churn, %s blobs: %zu puts, %.2f s in sc_put, %.1f us/put (p50 %.1f, p99 %.1f), "
		 "%" PRIu64 " compactions", r->label, ops, r->put_s, r->mean_us, r->p50_us,
		 r->p99_us, r->compactions);
	r->ran = 1;
	sc_close(s.c);
	if (!g_opt.keep)
		unlink(s.path);
	free(lat);
	free(buf);
	free(stamp);
	free(ver);
}

static void bench_churn(void)
{
	size_t *seq;

	if (g_opt.churn_entries > g_nkeys)
		die("churn: %zu entries but %zu source files", g_opt.churn_entries, g_nkeys);
	progress("--- churn: %zu replacements in a %zu-entry shard ---", g_opt.churn_puts,
		 g_opt.churn_entries);
	/* Both variants replace the same keys in the same order. */
	seq = random_seq(g_opt.churn_entries, g_opt.churn_puts);
	churn_one(&g_churn[0], 0, seq);
	churn_one(&g_churn[1], 1, seq);
	free(seq);
}

/* ------------------------------------------------------------------ */
/* Page faults of a fresh process */

/*
 * A process that runs one script pays for the cache in page faults as well
 * as in instructions: each page of code, shard or heap it touches first is
 * a fault.  Three kinds of child, all this binary started the same way by
 * posix_spawn with the same arguments but the kind, all returning 0 from
 * main:
 *   empty  nothing else (libscriptcache and liblmdb are loaded all the
 *          same: the binary links both)
 *   sc     sc_open (read-write, as an interpreter opens it) + sc_get of
 *          KEY, every cache line of the blob read, sc_close
 *   lmdb   mdb_env_open (read-only) + read txn + mdb_get of KEY + stat of
 *          the source against the stamp, the value read, close
 * The parent takes ru_minflt + ru_majflt of each from wait4(); what a store
 * costs is its median minus the empty child's.
 */
static uint64_t touch(const void *p, size_t len)
{
	const volatile unsigned char *b = p;
	uint64_t sum = 0;

	for (size_t k = 0; k < len; k += 64)
		sum += b[k];
	return sum;
}

static int child_faults_sc(const char *shard, const char *key)
{
	sc_cache *c = NULL;
	sc_blob b;
	int rc = sc_open(&c, shard, TAG, SC_IGNORE_ENV);

	if (rc == 0)
		rc = sc_get(c, key, &b);
	if (rc == 0)
		g_sink += touch(b.data, b.size);
	else
		fprintf(stderr, "sc_bench child: %s: %s\n", key, sc_strerror(rc));
	sc_close(c);
	return rc != 0;
}

static int child_faults_lmdb(const char *dir, const char *key)
{
	MDB_env *env = NULL;
	MDB_txn *txn = NULL;
	MDB_dbi dbi;
	MDB_val k = { strlen(key), (void *)key }, v;
	struct stamp sp;
	struct stat st;
	int rc;

	if ((rc = mdb_env_create(&env)) != 0) {
		env = NULL;
		goto out;
	}
	if ((rc = mdb_env_open(env, dir, MDB_RDONLY, 0600)) != 0)
		goto out;
	if ((rc = mdb_txn_begin(env, NULL, MDB_RDONLY, &txn)) != 0) {
		txn = NULL;
		goto out;
	}
	if ((rc = mdb_dbi_open(txn, NULL, 0, &dbi)) != 0 ||
	    (rc = mdb_get(txn, dbi, &k, &v)) != 0)
		goto out;
	if (v.mv_size <= sizeof sp) {
		rc = EBADMSG;
		goto out;
	}
	memcpy(&sp, v.mv_data, sizeof sp);
	if (stat(key, &st) != 0)
		rc = errno;
	else if (!stamp_fresh(&sp, &st))
		rc = ESTALE;
	else
		g_sink += touch((const char *)v.mv_data + sizeof sp, v.mv_size - sizeof sp);
out:
	if (rc != 0)
		fprintf(stderr, "sc_bench child: LMDB %s: %s\n", key, mdb_strerror(rc));
	if (txn)
		mdb_txn_abort(txn);
	if (env)
		mdb_env_close(env);
	return rc != 0;
}

/* Child mode: --child-faults KIND SHARD LMDB-DIR KEY. */
static int child_faults(const char *kind, const char *shard, const char *dir, const char *key)
{
	if (strcmp(kind, g_fault_kind[F_SC]) == 0)
		return child_faults_sc(shard, key);
	if (strcmp(kind, g_fault_kind[F_LMDB]) == 0)
		return child_faults_lmdb(dir, key);
	return strcmp(kind, g_fault_kind[F_EMPTY]) != 0;
}

/* Run one child of @p kind; return its minor + major faults. */
static double spawn_faults(const char *self, int kind, const char *shard, const char *dir,
			   const char *key, long *majflt)
{
	char *argv[] = { (char *)self, "--child-faults", (char *)g_fault_kind[kind],
			 (char *)shard, (char *)dir, (char *)key, NULL };
	struct rusage ru;
	int status, rc;
	pid_t pid;

	rc = posix_spawn(&pid, self, NULL, NULL, argv, environ);
	if (rc != 0)
		die("posix_spawn %s: %s", self, strerror(rc));
	while (wait4(pid, &status, 0, &ru) < 0)
		if (errno != EINTR)
			die("wait4: %s", strerror(errno));
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
		die("fault-count child (%s) failed on %s", g_fault_kind[kind], key);
	*majflt += ru.ru_majflt;
	return (double)(ru.ru_minflt + ru.ru_majflt);
}

static void bench_faults(struct sc_store *scs, struct lmdb_store *lms, size_t n)
{
	struct faults *g = &g_faults;
	int reps = g_opt.fault_reps;
	double *f[F_COUNT];
	char self[PATH_MAX];
	long warm = 0;
	sc_stats st;
	int rc;

	self_exe(self);
	if ((rc = sc_get_stats(scs->c, &st)) != 0)
		die("sc_get_stats: %s", sc_strerror(rc));
	g->entries = n;
	g->file_size = st.file_size;
	for (int k = 0; k < F_COUNT; k++)
		f[k] = xmalloc((size_t)reps * sizeof *f[k]);
	/* Warm-up: one child of each kind. */
	for (int k = 0; k < F_COUNT; k++)
		spawn_faults(self, k, scs->path, lms->dir, g_keys[0], &warm);
	for (int r = 0; r < reps; r++) {
		const char *key = g_keys[rng_next() % n];

		for (int k = 0; k < F_COUNT; k++)
			f[k][r] = spawn_faults(self, k, scs->path, lms->dir, key, &g->majflt);
	}
	for (int k = 0; k < F_COUNT; k++) {
		g->med[k] = percentile(f[k], (size_t)reps, 0.5);
		g->min[k] = f[k][0];
		g->max[k] = f[k][reps - 1];
		free(f[k]);
	}
	progress("faults, N=%zu: empty %.1f, scriptcache %.1f (+%.1f), LMDB %.1f (+%.1f)", n,
		 g->med[F_EMPTY], g->med[F_SC], g->med[F_SC] - g->med[F_EMPTY], g->med[F_LMDB],
		 g->med[F_LMDB] - g->med[F_EMPTY]);
}

/* ------------------------------------------------------------------ */
/* Freshness by content */

/*
 * sc_get() finds a source fresh by its stamp, the mtime and size recorded
 * at the put, with one stat(2).  When only the mtime moved (a git checkout,
 * a restored CI cache) and the size is the same, it reads the file and
 * compares the XXH3-128 of its bytes with the one recorded at the put
 * (docs/FORMAT.md, "Freshness").  For each of CONTENT_SIZES source sizes,
 * CONTENT_N real files of distinct Lua-like text are put once into one
 * SC_NOSYNC shard (CONTENT_BLOB-byte blobs, all distinct; sc_put reads each
 * file and records its hash), and then four contenders run in interleaved
 * rounds over one random key sequence, all on the same files:
 *   (a) stamp    sc_get, every source's mtime as recorded: stat only
 *   (b) content  sc_get, every mtime moved CONTENT_SHIFT seconds back, the
 *                bytes unchanged: stat, then open + fstat + read + XXH3-128
 *                + fstat + close; sc_stats.fresh_by_content must grow by
 *                exactly the number of these gets
 *   (c) read     open + read(2) of the whole file + close, no hash: what
 *                reading the source costs anyway
 *   (d) stale    sc_get, one byte in the middle of every source changed
 *                (same size) and the mtime moved: must be SC_ESTALE, found
 *                after the same read and hash as (b)
 * Each contender's begin hook, untimed, puts the files in its state (the
 * byte with pwrite, the mtime with utimensat) and takes the handle's
 * counters; its end hook checks them against the gets made since.  The
 * hook also sets the atime a second past the new ctime, as if the file had
 * been read once since it changed, so that relatime does not turn the
 * first timed read of each file into an inode update.  (c) reads the
 * files as (b) leaves them.  Nothing is synced: the files (145 MiB) are
 * removed at the end, which in a run shorter than the kernel's
 * dirty_expire (30 s) is before they are written back: no writeback
 * during the rounds, no discards at the removal.
 */
#define CONTENT_SIZES 3
#define CONTENT_N     1000   /* sources per size */
#define CONTENT_BLOB  4096
#define CONTENT_SHIFT 3600   /* seconds the mtime moves back in (b) and (d) */

static const size_t g_content_size[CONTENT_SIZES] = { 1024, 16384, 131072 };

enum { CT_STAMP, CT_CONTENT, CT_READ, CT_STALE, CT_COUNT };

static const char *const g_ct_label[CT_COUNT] = {
	[CT_STAMP]   = "(a) sc_get, stamp as recorded",
	[CT_CONTENT] = "(b) sc_get, mtime moved, same bytes",
	[CT_READ]    = "(c) open+read+close, no hash",
	[CT_STALE]   = "(d) sc_get, a byte changed: SC_ESTALE",
};

struct content_result {
	size_t size;
	double ns[CT_COUNT];
	uint64_t content_gets, fresh_by_content;  /* (b) gets, and the counter's growth */
	uint64_t stale_gets, miss_stale;          /* (d) gets, and the counter's growth */
};
static struct content_result g_content[CONTENT_SIZES];

struct content_set {
	sc_cache *c;
	size_t si, size;            /* g_content_size[si]: bytes of every source */
	char **keys;
	struct timespec *mtime;     /* each source's mtime as recorded at the put */
	int state;                  /* the files now: CT_STAMP, CT_CONTENT or CT_STALE */
	unsigned char *buf, *want;  /* size + 1 bytes each */
	uint64_t calls;             /* sc_get calls since the begin hook */
	sc_stats before;            /* the handle's counters at the begin hook */
	struct content_result *res;
};

static unsigned char *g_ct_text;  /* text of the largest source; the others are prefixes */
static unsigned char g_ct_blob[CONTENT_BLOB];

static void content_text(void)
{
	size_t max = g_content_size[CONTENT_SIZES - 1], len = 0;

	g_ct_text = xmalloc(max);
	while (len < max) {
		char line[96];
		int k = snprintf(line, sizeof line, "local v%zu = f(%" PRIu64 ", \"%08" PRIx64
				 "\") -- and a comment\n", len, rng_next() % 100000,
				 rng_next() & 0xffffffffu);
		size_t take = (size_t)k < max - len ? (size_t)k : max - len;

		memcpy(g_ct_text + len, line, take);
		len += take;
	}
	for (size_t i = 0; i < CONTENT_BLOB; i++)
		g_ct_blob[i] = (unsigned char)rng_next();
}

/* The bytes of source @p i of @p s (s->size of them), as written. */
static void content_source(const struct content_set *s, size_t i, unsigned char *out)
{
	char head[96];
	int k = snprintf(head, sizeof head, "-- sc_bench content: source %zu of %zu bytes\n", i,
			 s->size);

	memcpy(out, g_ct_text, s->size);
	memcpy(out, head, (size_t)k);
}

/* The blob of source @p i of size index @p si: distinct for every entry. */
static void content_blob(size_t si, size_t i, unsigned char *out)
{
	uint64_t id = ((uint64_t)si << 32) | i;

	memcpy(out, g_ct_blob, CONTENT_BLOB);
	memcpy(out, &id, sizeof id);
}

/* The byte (d) changes, at the middle of the source, and what it becomes. */
static off_t content_edit_at(const struct content_set *s)
{
	return (off_t)(s->size / 2);
}

static unsigned char content_edited(unsigned char orig)
{
	return orig == 'x' ? 'y' : 'x';
}

/* Put every file of @p s in @p state, untimed. */
static void content_state(struct content_set *s, int state)
{
	off_t at = content_edit_at(s);
	unsigned char orig = g_ct_text[at];
	struct timespec now;

	if (s->state == state)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	now.tv_sec += 1;
	for (size_t i = 0; i < CONTENT_N; i++) {
		struct timespec ts[2] = { now, s->mtime[i] };

		if ((state == CT_STALE) != (s->state == CT_STALE)) {
			unsigned char b = state == CT_STALE ? content_edited(orig) : orig;
			int fd = open(s->keys[i], O_WRONLY | O_CLOEXEC);

			if (fd < 0 || pwrite(fd, &b, 1, at) != 1)
				die("write %s: %s", s->keys[i], strerror(errno));
			close(fd);
		}
		if (state != CT_STAMP)
			ts[1].tv_sec -= CONTENT_SHIFT;
		if (utimensat(AT_FDCWD, s->keys[i], ts, 0) != 0)
			die("utimensat %s: %s", s->keys[i], strerror(errno));
	}
	s->state = state;
}

static void content_begin(struct content_set *s, int state)
{
	int rc;

	content_state(s, state);
	if ((rc = sc_get_stats(s->c, &s->before)) != 0)
		die("sc_get_stats: %s", sc_strerror(rc));
	s->calls = 0;
}

static void ct_begin_stamp(void *p)
{
	content_begin(p, CT_STAMP);
}

static void ct_begin_content(void *p)
{
	content_begin(p, CT_CONTENT);
}

static void ct_begin_stale(void *p)
{
	content_begin(p, CT_STALE);
}

static void ct_begin_read(void *p)
{
	content_state(p, CT_CONTENT);
}

/* The handle's counters since the begin hook must be exactly these. */
static void content_end(struct content_set *s, int ct, uint64_t hits, uint64_t fresh,
			uint64_t stale)
{
	sc_stats st;
	uint64_t h, f, m;
	int rc;

	if ((rc = sc_get_stats(s->c, &st)) != 0)
		die("sc_get_stats: %s", sc_strerror(rc));
	h = st.hits - s->before.hits;
	f = st.fresh_by_content - s->before.fresh_by_content;
	m = st.miss_stale - s->before.miss_stale;
	if (h != hits || f != fresh || m != stale)
		die("content, %zu-byte sources, %s: after %" PRIu64 " gets the counters grew by "
		    "hits %" PRIu64 ", fresh_by_content %" PRIu64 ", miss_stale %" PRIu64
		    "; expected %" PRIu64 ", %" PRIu64 ", %" PRIu64, s->size, g_ct_label[ct],
		    s->calls, h, f, m, hits, fresh, stale);
	if (ct == CT_CONTENT) {
		s->res->content_gets += s->calls;
		s->res->fresh_by_content += f;
	} else if (ct == CT_STALE) {
		s->res->stale_gets += s->calls;
		s->res->miss_stale += m;
	}
}

static void ct_end_stamp(void *p)
{
	struct content_set *s = p;

	content_end(s, CT_STAMP, s->calls, 0, 0);
}

static void ct_end_content(void *p)
{
	struct content_set *s = p;

	content_end(s, CT_CONTENT, s->calls, s->calls, 0);
}

static void ct_end_stale(void *p)
{
	struct content_set *s = p;

	content_end(s, CT_STALE, 0, 0, s->calls);
}

/* (a) and (b): the same call, the files in another state. */
static int ct_get(void *p, size_t i)
{
	struct content_set *s = p;
	sc_blob b;
	int rc = sc_get(s->c, s->keys[i], &b);

	s->calls++;
	if (rc == 0)
		g_sink += *(const unsigned char *)b.data;
	return rc;
}

static int ct_read(void *p, size_t i)
{
	struct content_set *s = p;
	size_t got = 0;
	ssize_t r;
	int fd = open(s->keys[i], O_RDONLY | O_CLOEXEC), err;

	if (fd < 0)
		return -errno;
	while ((r = read(fd, s->buf + got, s->size + 1 - got)) > 0)
		got += (size_t)r;
	err = r < 0 ? errno : 0;
	close(fd);
	if (err)
		return -err;
	g_sink += s->buf[got / 2];
	return got == s->size ? 0 : -EBADMSG;
}

static int ct_get_stale(void *p, size_t i)
{
	struct content_set *s = p;
	sc_blob b;
	int rc = sc_get(s->c, s->keys[i], &b);

	s->calls++;
	if (rc == SC_ESTALE)
		return 0;
	return rc == 0 ? 1 : rc;
}

/* The untimed passes: each failure is reported here, with its key. */
static int ct_verify_get(void *p, size_t i)
{
	struct content_set *s = p;
	unsigned char want[CONTENT_BLOB];
	sc_blob b;
	int rc = sc_get(s->c, s->keys[i], &b);

	s->calls++;
	if (rc != 0)
		die("content: sc_get %s (%s): %s", s->keys[i],
		    s->state == CT_STAMP ? "stamp as recorded" : "mtime moved", sc_strerror(rc));
	content_blob(s->si, i, want);
	if (b.size != CONTENT_BLOB || memcmp(b.data, want, CONTENT_BLOB) != 0)
		die("content: sc_get %s: not the blob put", s->keys[i]);
	return 0;
}

static int ct_verify_read(void *p, size_t i)
{
	struct content_set *s = p;
	int rc = ct_read(p, i);

	if (rc != 0)
		die("content: read %s: %s", s->keys[i], strerror(-rc));
	content_source(s, i, s->want);
	if (memcmp(s->buf, s->want, s->size) != 0)
		die("content: read %s: not the bytes written", s->keys[i]);
	return 0;
}

static int ct_verify_stale(void *p, size_t i)
{
	struct content_set *s = p;
	sc_blob b;
	int rc = sc_get(s->c, s->keys[i], &b);

	s->calls++;
	if (rc != SC_ESTALE)
		die("content: sc_get %s with a byte changed: %s, expected %s", s->keys[i],
		    rc == 0 ? "a hit" : sc_strerror(rc), sc_strerror(SC_ESTALE));
	return 0;
}

/* Write the sources of @p s under @p dir and put them. */
static void content_fill(struct content_set *s, const char *dir, unsigned char *src)
{
	unsigned char blob[CONTENT_BLOB];
	char d[PATH_MAX], p[PATH_MAX], name[32];
	int rc;

	mkdir_or_die(dir);
	s->keys = xmalloc(CONTENT_N * sizeof *s->keys);
	s->mtime = xmalloc(CONTENT_N * sizeof *s->mtime);
	for (size_t i = 0; i < CONTENT_N; i++) {
		int fd;

		snprintf(name, sizeof name, "dir%zu", i / FILES_PER_DIR);
		path_join(d, dir, name);
		if (i % FILES_PER_DIR == 0)
			mkdir_or_die(d);
		snprintf(name, sizeof name, "mod%zu.lua", i);
		path_join(p, d, name);
		fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0)
			die("create %s: %s", p, strerror(errno));
		content_source(s, i, src);
		if (write(fd, src, s->size) != (ssize_t)s->size)
			die("write %s: %s", p, strerror(errno));
		close(fd);
		s->keys[i] = xstrdup(p);
	}
	for (size_t i = 0; i < CONTENT_N; i++) {
		sc_entry_info e;

		content_blob(s->si, i, blob);
		if ((rc = sc_put(s->c, s->keys[i], blob, CONTENT_BLOB)) != 0)
			die("content: sc_put %s: %s", s->keys[i], sc_strerror(rc));
		if ((rc = sc_lookup(s->c, s->keys[i], &e)) != 0)
			die("content: sc_lookup %s: %s", s->keys[i], sc_strerror(rc));
		if (!e.has_source || !e.has_source_hash || e.source_size != s->size)
			die("content: %s: the put recorded no hash of the source's bytes", s->keys[i]);
		s->mtime[i].tv_sec = (time_t)e.source_mtime_sec;
		s->mtime[i].tv_nsec = (long)e.source_mtime_nsec;
	}
	s->state = CT_STAMP;
}

static void bench_content(void)
{
	struct content_set set[CONTENT_SIZES];
	struct sc_store scs = { 0 };
	char dir[PATH_MAX], sub[PATH_MAX], name[32];
	size_t max = g_content_size[CONTENT_SIZES - 1], ops = g_opt.content_ops;
	unsigned char *src = xmalloc(max);
	int64_t t0;

	progress("--- content: sc_get of %d sources of each size whose mtime moved ---",
		 CONTENT_N);
	content_text();
	path_join(dir, g_tmpdir, "content");
	mkdir_or_die(dir);
	path_join(scs.path, g_tmpdir, "content.shard");
	scs_open(&scs, SC_NOSYNC);
	t0 = now_ns();
	for (int si = 0; si < CONTENT_SIZES; si++) {
		struct content_set *s = &set[si];

		memset(s, 0, sizeof *s);
		s->c = scs.c;
		s->si = (size_t)si;
		s->size = g_content_size[si];
		s->buf = xmalloc(s->size + 1);
		s->want = xmalloc(s->size + 1);
		s->res = &g_content[si];
		s->res->size = s->size;
		snprintf(name, sizeof name, "%zuk", s->size / 1024);
		path_join(sub, dir, name);
		content_fill(s, sub, src);
	}
	progress("content: %d sources of each size written and put in %.2f s", CONTENT_N,
		 (double)(now_ns() - t0) / 1e9);

	for (int si = 0; si < CONTENT_SIZES; si++) {
		struct content_set *s = &set[si];
		struct contender cs[CT_COUNT] = {
			[CT_STAMP] = { g_ct_label[CT_STAMP], ct_get, s, ct_begin_stamp, ct_end_stamp,
				       ct_verify_get },
			[CT_CONTENT] = { g_ct_label[CT_CONTENT], ct_get, s, ct_begin_content,
					 ct_end_content, ct_verify_get },
			[CT_READ] = { g_ct_label[CT_READ], ct_read, s, ct_begin_read, NULL,
				     ct_verify_read },
			[CT_STALE] = { g_ct_label[CT_STALE], ct_get_stale, s, ct_begin_stale,
				       ct_end_stale, ct_verify_stale },
		};
		size_t *seq = random_seq(CONTENT_N, ops);
		char what[48];

		snprintf(what, sizeof what, "content %zu KiB", s->size / 1024);
		run_rounds(what, cs, CT_COUNT, CONTENT_N, seq, ops, s->res->ns);
		free(seq);
	}

	sc_close(scs.c);
	for (int si = 0; si < CONTENT_SIZES; si++) {
		for (size_t i = 0; i < CONTENT_N; i++)
			free(set[si].keys[i]);
		free(set[si].keys);
		free(set[si].mtime);
		free(set[si].buf);
		free(set[si].want);
	}
	free(src);
	free(g_ct_text);
	if (!g_opt.keep) {
		nftw(dir, rm_entry, 64, FTW_DEPTH | FTW_PHYS);
		unlink(scs.path);
	}
}

/* ------------------------------------------------------------------ */
/* Report */

static void print_table(const char *title, int first, int count, int with_pct)
{
	printf("\n%s\n", title);
	printf("  %-46s", "");
	for (int s = 0; s < g_opt.n_sizes; s++)
		printf(" | N=%-8zu %6s %7s", g_opt.sizes[s], "ns/op", "sc/x");
	printf("\n");
	for (int r = first; r < first + count; r++) {
		printf("  %-46s", g_row_label[r]);
		for (int s = 0; s < g_opt.n_sizes; s++) {
			double v = g_res[r][s].mean, ref = g_res[first][s].mean;

			if (r == first)
				printf(" | %17.0f %7s", v, "");
			else
				printf(" | %17.0f %6.2fx", v, ref / v);
		}
		printf("\n");
		if (with_pct) {
			printf("  %-46s", "    p50 / p99");
			for (int s = 0; s < g_opt.n_sizes; s++) {
				char b[40];
				snprintf(b, sizeof b, "%.0f / %.0f", g_res[r][s].p50, g_res[r][s].p99);
				printf(" | %25s", b);
			}
			printf("\n");
		}
	}
}

static const char *fs_name(const char *path)
{
	struct statfs sf;

	if (statfs(path, &sf) != 0)
		return "unknown";
	switch ((unsigned long)sf.f_type) {
	case 0x01021994: return "tmpfs";
	case 0xEF53:     return "ext2/3/4";
	case 0x58465342: return "xfs";
	case 0x9123683E: return "btrfs";
	case 0x794c7630: return "overlayfs";
	default:         return "other";
	}
}

static void print_machine(int argc, char **argv)
{
	struct utsname u;
	char line[256], cpu[256] = "unknown";
	long mem_kb = 0;
	FILE *f;
	int major, minor, patch;

	uname(&u);
	if ((f = fopen("/proc/cpuinfo", "r")) != NULL) {
		while (fgets(line, sizeof line, f))
			if (strncmp(line, "model name", 10) == 0) {
				char *p = strchr(line, ':');
				if (p) {
					snprintf(cpu, sizeof cpu, "%s", p + 2);
					cpu[strcspn(cpu, "\n")] = '\0';
				}
				break;
			}
		fclose(f);
	}
	if ((f = fopen("/proc/meminfo", "r")) != NULL) {
		while (fgets(line, sizeof line, f))
			if (sscanf(line, "MemTotal: %ld kB", &mem_kb) == 1)
				break;
		fclose(f);
	}
	mdb_version(&major, &minor, &patch);
	printf("sc_bench: scriptcache core store vs LMDB vs one file per entry\n");
	printf("command:  ");
	for (int i = 0; i < argc; i++)
		printf("%s%s", i ? " " : "", argv[i]);
	printf("\nmachine:  %ld CPUs online, %s, %.1f GiB RAM, %s %s %s\n",
	       sysconf(_SC_NPROCESSORS_ONLN), cpu, (double)mem_kb / (1024.0 * 1024.0),
	       u.sysname, u.release, u.machine);
	if ((f = fopen("/proc/loadavg", "r")) != NULL) {
		if (fgets(line, sizeof line, f)) {
			line[strcspn(line, "\n")] = '\0';
			printf("load:     %s (/proc/loadavg at start; other work on the machine adds noise)\n",
			       line);
		}
		fclose(f);
	}
	printf("versions: scriptcache %s, LMDB %d.%d.%d\n", SC_VERSION_STRING, major, minor, patch);
	printf("temp dir: %s (%s), all files warm in the page cache\n", g_tmpdir,
	       fs_name(g_tmpdir));
	printf("workload: %zu-byte blobs, %d distinct; keys are real source files; "
	       "%d rounds, median round\n", g_opt.blob_size, POOL_BLOBS, g_opt.rounds);
	fflush(stdout);
}

struct target {
	const char *what;
	double value, limit;
	int count;          /* value and limit are counts, not ratios */
};

static void print_faults(void)
{
	const struct faults *g = &g_faults;
	static const char *const what[F_COUNT] = {
		[F_EMPTY] = "empty: returns from main at once",
		[F_SC]    = "scriptcache: sc_open + sc_get, blob read, sc_close",
		[F_LMDB]  = "LMDB (info): env_open + read txn + mdb_get + stat, value read",
	};

	printf("\npage faults of a fresh process: sc_bench re-executed by posix_spawn, "
	       "ru_minflt + ru_majflt from wait4,\n%d runs of each kind, interleaved, one random key "
	       "per run, N=%zu (shard %.1f MiB, as filled), warm page cache\n", g_opt.fault_reps,
	       g->entries, (double)g->file_size / (1 << 20));
	for (int k = 0; k < F_COUNT; k++) {
		printf("  %-62s median %6.1f (min %4.0f, max %4.0f)", what[k], g->med[k], g->min[k],
		       g->max[k]);
		if (k != F_EMPTY)
			printf("  above empty: %5.1f", g->med[k] - g->med[F_EMPTY]);
		printf("\n");
	}
	printf("  major faults, all runs: %ld\n", g->majflt);
	printf("  target: <= 15 page faults above an empty process: %.1f %s\n",
	       g->med[F_SC] - g->med[F_EMPTY],
	       g->med[F_SC] - g->med[F_EMPTY] <= 15 ? "PASS" : "MISS");
}

static void print_churn(void)
{
	static const char *const at[CHURN_POINTS] = { "fill", "25%", "50%", "75%", "100%" };

	printf("\nchurn: %zu replacements of random keys in a %zu-entry shard, sc_put with "
	       "SC_NOSYNC, no sc_compact()\n", g_opt.churn_puts, g_opt.churn_entries);
	printf("  pool: key i's v-th put stores pool blob (i + v) %% %d; unique: the same with a "
	       "put counter in the first 8 bytes\n", POOL_BLOBS);
	printf("  file = sc_get_stats file_size, stat = st_size (alloc: st_blocks), "
	       "peak = largest st_size after any put so far; MiB\n");
	printf("  %-7s %-5s %8s %8s %9s %9s %9s %9s %9s %9s %9s %9s\n", "blobs", "at", "puts",
	       "entries", "live", "dead", "file", "stat", "alloc", "file/live", "stat/live",
	       "peak");
	for (int v = 0; v < 2; v++) {
		const struct churn_result *r = &g_churn[v];

		for (int k = 0; k < CHURN_POINTS; k++) {
			const struct churn_point *p = &r->pt[k];

			printf("  %-7s %-5s %8zu %8" PRIu64 " %9.1f %9.1f %9.1f %9.1f %9.1f %9.2f "
			       "%9.2f %9.1f\n", r->label, at[k], p->puts, p->entries,
			       (double)p->live / (1 << 20), (double)p->dead / (1 << 20),
			       (double)p->file_size / (1 << 20), (double)p->st_size / (1 << 20),
			       (double)p->st_alloc / (1 << 20), churn_ratio(p, p->file_size),
			       churn_ratio(p, p->st_size), (double)p->peak / (1 << 20));
		}
	}
	for (int v = 0; v < 2; v++) {
		const struct churn_result *r = &g_churn[v];
		const struct churn_point *e = &r->pt[CHURN_POINTS - 1];

		printf("  %-7s fill %.2f s; churn %zu puts, %.2f s in sc_put, %.1f us/put "
		       "(p50 %.1f, p99 %.1f); %" PRIu64 " compactions by the library; "
		       "peak %.2fx the end's live bytes\n", r->label, r->fill_s, g_opt.churn_puts,
		       r->put_s, r->mean_us, r->p50_us, r->p99_us, r->compactions,
		       churn_ratio(e, e->peak));
	}
	/* The end is one point of what may be a cycle (a format that compacts
	 * by itself): the peak goes on the same line. */
	for (int v = 0; v < 2; v++) {
		const struct churn_result *r = &g_churn[v];
		const struct churn_point *e = &r->pt[CHURN_POINTS - 1];

		printf("  target: file size / live bytes <= 1.5 at the end (%s blobs): %.2f %s"
		       " (peak %.2fx live)\n", r->label, churn_end_ratio(r),
		       churn_end_ratio(r) <= 1.5 ? "PASS" : "MISS", churn_ratio(e, e->peak));
	}
}

static void print_content(void)
{
	printf("\nfreshness by content: sc_get when the source's mtime moved but not its bytes; "
	       "%d real sources of each size,\n%d-byte blobs, one shard (SC_NOSYNC); %zu ops per "
	       "round, %d rounds, median round, ns/op\n", CONTENT_N, CONTENT_BLOB,
	       g_opt.content_ops, g_opt.rounds);
	printf("  (a) sc_get, mtime and size as recorded: stat only\n"
	       "  (b) sc_get, every mtime moved %d s back, same bytes: stat + open + read + "
	       "XXH3-128 + close\n"
	       "  (c) open + read(2) of the whole file + close, the same files, no hash\n"
	       "  (d) sc_get, one byte changed (same size), mtime moved: SC_ESTALE after the "
	       "same read and hash\n", CONTENT_SHIFT);
	printf("  %-8s %10s %10s %10s %10s %9s %9s\n", "source", "(a)", "(b)", "(c)", "(d)",
	       "(b)/(a)", "(b)/(c)");
	for (int si = 0; si < CONTENT_SIZES; si++) {
		const struct content_result *r = &g_content[si];
		char sz[32];

		snprintf(sz, sizeof sz, "%zu KiB", r->size / 1024);
		printf("  %-8s %10.0f %10.0f %10.0f %10.0f %8.2fx %8.2fx\n", sz, r->ns[CT_STAMP],
		       r->ns[CT_CONTENT], r->ns[CT_READ], r->ns[CT_STALE],
		       r->ns[CT_CONTENT] / r->ns[CT_STAMP], r->ns[CT_CONTENT] / r->ns[CT_READ]);
	}
	for (int si = 0; si < CONTENT_SIZES; si++) {
		const struct content_result *r = &g_content[si];

		printf("  %3zu KiB: sc_stats.fresh_by_content grew by %" PRIu64 " over %" PRIu64
		       " gets of (b), miss_stale by %" PRIu64 " over %" PRIu64 " gets of (d)%s\n",
		       r->size / 1024, r->fresh_by_content, r->content_gets, r->miss_stale,
		       r->stale_gets,
		       r->fresh_by_content == r->content_gets && r->miss_stale == r->stale_gets ?
		       "" : " MISMATCH");
	}
}

static int report(void)
{
	int last = g_opt.n_sizes - 1;
	int misses = 0, nt = 0;
	unsigned on = g_opt.only;
	struct target t[MAX_SIZES + 8] = { { 0 } };
	const char *sz = g_opt.quick ? " (quick)" : "";
	static char lbl[MAX_SIZES + 8][160];

	if (on & B_PER_SIZE) {
		printf("\nshard after fill:");
		for (int s = 0; s < g_opt.n_sizes; s++)
			printf("  N=%zu: %.1f MiB, %" PRIu64 " index slots;", g_opt.sizes[s],
			       (double)g_shard_info[s].file_size / (1 << 20),
			       g_shard_info[s].index_slots);
		printf("\n");
		print_table("fill: insert N new keys into an empty store, one commit each, "
			    "no sync (info)", R_FILL_SC, 3, 0);
	}
	if (on & B_LOOKUP)
		print_table("lookup: index probe only (no stat), random keys, ns/op; "
			    "sc/x = scriptcache / row", R_LOOKUP_SC, 3, 0);
	if (on & B_HIT)
		print_table("validated hit: probe + source stat (scriptcache: blob checksummed once per handle), "
			    "ns/op", R_HIT_SC, 3, 0);
	if (on & B_PUT)
		print_table("put, no sync: replace random existing entries with new bytes, one "
			    "commit each, mean ns/op", R_PUT_SC, 3, 1);
	if (on & B_DURABLE)
		print_table("put, durable: new bytes, each store's own durable commit, mean ns/op",
			    R_DPUT_SC, 3, 1);
	if (on & B_FIRST) {
		printf("\nfirst hit in a fresh process: posix_spawn, then sc_open + one sc_get "
		       "timed in the child,\n%d runs each, interleaved, warm page cache\n",
		       g_opt.first_hit_reps);
		for (int s = 0; s < 2; s++)
			printf("  %-5s shard %7.1f MiB %6" PRIu64 " entries (built in %5.2f s):"
			       " median %8.0f ns (p10 %.0f, p90 %.0f);"
			       " medians of the parts: sc_open %.0f, sc_get %.0f\n",
			       g_first[s].label, (double)g_first[s].file_size / (1 << 20),
			       g_first[s].entries, g_first[s].build_s, g_first[s].p50,
			       g_first[s].p10, g_first[s].p90, g_first[s].open50, g_first[s].get50);
	}
	if (on & B_FAULTS)
		print_faults();
	if (on & B_CHURN)
		print_churn();
	if (on & B_CONTENT)
		print_content();

	if (on & B_LOOKUP) {
		snprintf(lbl[nt], sizeof lbl[nt],
			 "lookup at N=%zu%s: sc_lookup / LMDB mdb_get (renew+reset)",
			 g_opt.sizes[last], sz);
		t[nt].value = g_res[R_LOOKUP_SC][last].mean / g_res[R_LOOKUP_LMDB][last].mean;
		t[nt++].limit = 0.5;
	}
	for (int s = 0; (on & B_HIT) && s < g_opt.n_sizes; s++) {
		snprintf(lbl[nt], sizeof lbl[nt],
			 "validated hit at N=%zu: sc_get / file-per-entry hit", g_opt.sizes[s]);
		t[nt].value = g_res[R_HIT_SC][s].mean / g_res[R_HIT_FILES][s].mean;
		t[nt++].limit = 0.5;
	}
	if (on & B_FIRST) {
		snprintf(lbl[nt], sizeof lbl[nt], "first hit: %.0f MiB shard / %.0f MiB shard (median)",
			 (double)g_opt.big_shard / (1 << 20), (double)g_opt.small_shard / (1 << 20));
		t[nt].value = g_first[1].p50 / g_first[0].p50;
		t[nt++].limit = 1.2;
	}
	if (on & B_PUT) {
		snprintf(lbl[nt], sizeof lbl[nt], "no-sync put at N=%zu%s: sc_put / LMDB put",
			 g_opt.sizes[last], sz);
		t[nt].value = g_res[R_PUT_SC][last].mean / g_res[R_PUT_LMDB][last].mean;
		t[nt++].limit = 1.0;
		snprintf(lbl[nt], sizeof lbl[nt], "no-sync put: sc_put at N=%zu / at N=%zu",
			 g_opt.sizes[last], g_opt.sizes[0]);
		t[nt].value = g_res[R_PUT_SC][last].mean / g_res[R_PUT_SC][0].mean;
		t[nt++].limit = 2.0;
	}
	for (int v = 0; (on & B_CHURN) && v < 2; v++) {
		snprintf(lbl[nt], sizeof lbl[nt], "churn, %s blobs%s: file size / live bytes at the end",
			 g_churn[v].label, sz);
		t[nt].value = churn_end_ratio(&g_churn[v]);
		t[nt++].limit = 1.5;
	}
	if (on & B_FAULTS) {
		snprintf(lbl[nt], sizeof lbl[nt], "faults at N=%zu%s: sc_open + sc_get above an empty "
			 "process", g_faults.entries, sz);
		t[nt].value = g_faults.med[F_SC] - g_faults.med[F_EMPTY];
		t[nt].count = 1;
		t[nt++].limit = 15;
	}

	printf("\ntargets\n");
	for (int i = 0; i < nt; i++) {
		int ok = t[i].value <= t[i].limit;

		t[i].what = lbl[i];
		misses += !ok;
		if (t[i].count)
			printf("  %-4s %-66s %5.1f  (target <= %.0f)\n", ok ? "PASS" : "MISS",
			       t[i].what, t[i].value, t[i].limit);
		else
			printf("  %-4s %-66s %5.2fx (target <= %.1fx)\n", ok ? "PASS" : "MISS",
			       t[i].what, t[i].value, t[i].limit);
	}
	return misses;
}

/* ------------------------------------------------------------------ */
/* Command line */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sc_bench [options]\n"
		"  --quick            short run for CI: 1000 and 10000 entries, fewer ops,\n"
		"                     churn of 20000 puts in 2000 entries, 10 fault-count runs,\n"
		"                     1000 ops per round for freshness by content\n"
		"  --sizes N,M,...    entry counts (default 1000,100000; at most %d)\n"
		"  --blob-size BYTES  blob size (default 16384)\n"
		"  --lookup-ops N     lookups per round (default 200000)\n"
		"  --hit-ops N        validated hits per round (default 50000)\n"
		"  --rounds N         timed rounds, the median is reported (default 5)\n"
		"  --put-ops N        no-sync puts per store and size (default 2000)\n"
		"  --durable-ops N    durable puts per store and size (default 200)\n"
		"  --reps N           fresh processes per shard for the first hit (default 50)\n"
		"  --big-mib N        size of the big shard for the first hit (default 1024)\n"
		"  --churn-entries N  entries of the churn shard (default 10000)\n"
		"  --churn-puts N     replacements per churn variant (default 100000)\n"
		"  --fault-reps N     fresh processes of each kind for the fault count (default 20)\n"
		"  --content-ops N    ops per round of each contender and source size in the\n"
		"                     freshness by content (default 5000)\n"
		"  --only LIST        run only these of lookup,hit,put,durable,first,churn,faults,\n"
		"                     content\n"
		"  --tmpdir DIR       where to create the temporary directory (default /tmp)\n"
		"  --keep             keep the temporary directory\n"
		"  --strict           exit with status 2 if a target is missed\n",
		MAX_SIZES);
}

static size_t parse_count(const char *s, const char *flag)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || v == 0)
		die("%s: bad number '%s'", flag, s);
	return (size_t)v;
}

static void parse_only(const char *s)
{
	char *copy = xstrdup(s), *save = NULL, *tok;

	g_opt.only = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		size_t b = 0;

		while (b < sizeof g_bench_name / sizeof *g_bench_name && strcmp(tok, g_bench_name[b]))
			b++;
		if (b == sizeof g_bench_name / sizeof *g_bench_name)
			die("--only: unknown benchmark '%s'", tok);
		g_opt.only |= 1u << b;
	}
	free(copy);
	if (!g_opt.only)
		die("--only: empty");
}

static void parse_sizes(const char *s)
{
	char *copy = xstrdup(s), *save = NULL, *tok;

	g_opt.n_sizes = 0;
	for (tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		if (g_opt.n_sizes == MAX_SIZES)
			die("--sizes: at most %d sizes", MAX_SIZES);
		g_opt.sizes[g_opt.n_sizes++] = parse_count(tok, "--sizes");
	}
	free(copy);
	if (g_opt.n_sizes == 0)
		die("--sizes: empty");
}

static void parse_args(int argc, char **argv)
{
	/* --quick first, so that explicit flags override its defaults. */
	for (int i = 1; i < argc; i++)
		if (strcmp(argv[i], "--quick") == 0) {
			g_opt.quick = 1;
			g_opt.sizes[0] = 1000;
			g_opt.sizes[1] = 10000;
			g_opt.n_sizes = 2;
			g_opt.lookup_ops = 50000;
			g_opt.hit_ops = 10000;
			g_opt.rounds = 3;
			g_opt.put_ops = 500;
			g_opt.durable_ops = 50;
			g_opt.first_hit_reps = 15;
			g_opt.churn_entries = 2000;
			g_opt.churn_puts = 20000;
			g_opt.fault_reps = 10;
			g_opt.content_ops = 1000;
		}
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v;

		if (strcmp(a, "--quick") == 0)
			continue;
		if (strcmp(a, "--keep") == 0) {
			g_opt.keep = 1;
			continue;
		}
		if (strcmp(a, "--strict") == 0) {
			g_opt.strict = 1;
			continue;
		}
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			usage(stdout);
			exit(0);
		}
		/* Every other flag takes a value. */
		if (i + 1 >= argc) {
			usage(stderr);
			die("unknown argument or missing value: '%s'", a);
		}
		v = argv[++i];
		if (strcmp(a, "--sizes") == 0)
			parse_sizes(v);
		else if (strcmp(a, "--blob-size") == 0)
			g_opt.blob_size = parse_count(v, a);
		else if (strcmp(a, "--lookup-ops") == 0)
			g_opt.lookup_ops = parse_count(v, a);
		else if (strcmp(a, "--hit-ops") == 0)
			g_opt.hit_ops = parse_count(v, a);
		else if (strcmp(a, "--rounds") == 0)
			g_opt.rounds = (int)parse_count(v, a);
		else if (strcmp(a, "--put-ops") == 0)
			g_opt.put_ops = parse_count(v, a);
		else if (strcmp(a, "--durable-ops") == 0)
			g_opt.durable_ops = parse_count(v, a);
		else if (strcmp(a, "--reps") == 0)
			g_opt.first_hit_reps = (int)parse_count(v, a);
		else if (strcmp(a, "--big-mib") == 0)
			g_opt.big_shard = (uint64_t)parse_count(v, a) << 20;
		else if (strcmp(a, "--churn-entries") == 0)
			g_opt.churn_entries = parse_count(v, a);
		else if (strcmp(a, "--churn-puts") == 0)
			g_opt.churn_puts = parse_count(v, a);
		else if (strcmp(a, "--fault-reps") == 0)
			g_opt.fault_reps = (int)parse_count(v, a);
		else if (strcmp(a, "--content-ops") == 0)
			g_opt.content_ops = parse_count(v, a);
		else if (strcmp(a, "--only") == 0)
			parse_only(v);
		else if (strcmp(a, "--tmpdir") == 0)
			g_opt.tmp_base = v;
		else {
			usage(stderr);
			die("unknown argument '%s'", a);
		}
	}
	if (g_opt.blob_size < 8)
		die("--blob-size: at least 8 bytes");
	if (g_opt.churn_puts < CHURN_POINTS - 1)
		die("--churn-puts: at least %d", CHURN_POINTS - 1);
}

int main(int argc, char **argv)
{
	char tmpl[PATH_MAX], *real;
	size_t max_n = 0, n_src;
	int misses;

	if (argc == 4 && strcmp(argv[1], "--child-first-hit") == 0)
		return child_first_hit(argv[2], argv[3]);
	if (argc == 6 && strcmp(argv[1], "--child-faults") == 0)
		return child_faults(argv[2], argv[3], argv[4], argv[5]);
	parse_args(argc, argv);

	if ((size_t)snprintf(tmpl, sizeof tmpl, "%s/scbench.XXXXXX", g_opt.tmp_base) >= sizeof tmpl)
		die("--tmpdir too long");
	if (!mkdtemp(tmpl))
		die("mkdtemp %s: %s", tmpl, strerror(errno));
	/* Keys must be canonical: resolve symlinks in the base once. */
	real = realpath(tmpl, NULL);
	if (!real) {
		rmdir(tmpl);
		die("realpath %s: %s", tmpl, strerror(errno));
	}
	snprintf(g_tmpdir, sizeof g_tmpdir, "%s", real);
	free(real);
	atexit(cleanup_tmpdir);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGHUP, on_signal);

	print_machine(argc, argv);

	for (int s = 0; s < g_opt.n_sizes; s++)
		if (g_opt.sizes[s] > max_n)
			max_n = g_opt.sizes[s];
	/* Enough sources for the largest size, the big shard and the churn
	 * (freshness by content writes its own). */
	n_src = (g_opt.only & ~(B_CHURN | B_CONTENT)) ? max_n : 0;
	if ((g_opt.only & B_FIRST) && g_opt.big_shard / g_opt.blob_size + 1 > n_src)
		n_src = (size_t)(g_opt.big_shard / g_opt.blob_size) + 1;
	if ((g_opt.only & B_CHURN) && g_opt.churn_entries > n_src)
		n_src = g_opt.churn_entries;
	if (n_src > 1000000)
		die("%zu source files needed: lower --sizes or raise --blob-size or lower --big-mib",
		    n_src);
	progress("creating %zu source files in %s", n_src, g_tmpdir);
	make_sources(n_src);
	make_pool();

	/* The fault count runs on the largest size's stores, after its fill. */
	if (g_opt.only & (B_PER_SIZE | B_FAULTS))
		for (int s = 0; s < g_opt.n_sizes; s++)
			bench_size(s);
	if (g_opt.only & B_FIRST)
		bench_first_hit();
	if (g_opt.only & B_CHURN)
		bench_churn();
	if (g_opt.only & B_CONTENT)
		bench_content();

	misses = report();
	free_sources();
	if (g_opt.keep)
		printf("\nkept %s\n", g_tmpdir);
	return g_opt.strict && misses ? 2 : 0;
}
