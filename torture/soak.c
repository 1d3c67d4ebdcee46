/*
 * soak.c - `sc_torture soak`: reader processes hammer sc_get() while two
 * writer processes commit, one through the library and one through a
 * scriptcachefs mount of the same shard.
 *
 * Blobs are self-describing (testutil.h: key, version, payload checksum),
 * so a reader tells a genuine version from a torn or foreign one.  Each
 * writer owns NKEYS keys and, after every commit returns, publishes the
 * key's version in shared memory.  A reader reads that published version
 * *before* its sc_get(), so the version it gets must be at least that one
 * (a smaller one is a lost or rolled-back put); a miss on a published key
 * is a lost put.  At the end every key must hold exactly its last published
 * version.
 *
 * Latency: every sc_get() is timed (CLOCK_MONOTONIC) into a 1 us histogram,
 * as is every writer commit.  A reader takes no lock, so the only way for a
 * writer to hold it up is the CPU; to tell that apart from blocking, each
 * reader also counts the sc_get() calls during which it slept (a voluntary
 * context switch, getrusage), which is what waiting for a lock or for I/O
 * would show.
 */
#include <stdatomic.h>
#include <sys/mman.h>
#include <sys/resource.h>

#include "common.h"
#include "torture.h"

#define NKEYS 64
#define NBINS 200000 /* 1 us bins: 0..200 ms, the last holds everything above */
#define MAX_READERS 32

struct hist {
	uint32_t bin[NBINS];
	uint64_t n, max_ns;
};

struct reader_stats {
	uint64_t gets, hits, torn, older, lost, errors, slept, mount_reads, mount_torn;
	struct hist lat;
};

struct shared {
	atomic_int stop;
	_Atomic uint32_t published[2][NKEYS]; /* [0] library, [1] mount */
	uint64_t lib_puts, mount_puts, compactions, writer_errors;
	uint64_t compact_max_ns;
	struct hist lib_commit, mount_commit;
	struct reader_stats r[MAX_READERS];
};

static struct shared *sh;
static char shard[PATH_MAX + 32];

static void hist_add(struct hist *h, double ns)
{
	uint64_t b = (uint64_t)(ns / 1000);
	h->bin[b < NBINS ? b : NBINS - 1]++;
	h->n++;
	if ((uint64_t)ns > h->max_ns)
		h->max_ns = (uint64_t)ns;
}

static void hist_merge(struct hist *to, const struct hist *from)
{
	for (int i = 0; i < NBINS; i++)
		to->bin[i] += from->bin[i];
	to->n += from->n;
	if (from->max_ns > to->max_ns)
		to->max_ns = from->max_ns;
}

/* Upper bound of the bin holding quantile @p q, in microseconds. */
static double hist_q_us(const struct hist *h, double q)
{
	uint64_t want = (uint64_t)(q * (double)h->n), seen = 0;
	for (int i = 0; i < NBINS; i++) {
		seen += h->bin[i];
		if (seen > want)
			return i + 1;
	}
	return NBINS;
}

static void key_of(char *buf, size_t len, int w, int k)
{
	snprintf(buf, len, "/soak/%s/k%d", w ? "mount" : "lib", k);
}

static size_t size_for(unsigned v, int k)
{
	return ((size_t)v * 2654435761u + (size_t)k * 97) % 16000;
}

/* ---- writers ----------------------------------------------------------------- */

static int lib_writer(void *arg)
{
	(void)arg;
	sc_cache *c = NULL;
	if (sc_open(&c, shard, TT_TAG, 0) != 0)
		return 10;
	unsigned char *buf = malloc(16384 + 64);
	uint32_t ver[NKEYS] = { 0 };
	char key[64];
	sc_put_opts o = { .no_source = 1 };
	unsigned seed = 1;
	for (uint64_t n = 0; !atomic_load(&sh->stop); n++) {
		int k = (int)(rand_r(&seed) % NKEYS);
		uint32_t v = ver[k] + 1;
		key_of(key, sizeof key, 0, k);
		size_t len = tu_blob_make(buf, key, v, size_for(v, k));
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int rc = sc_put_ex(c, key, buf, len, &o);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (rc) {
			sh->writer_errors++;
			fprintf(stderr, "soak: library put: %s\n", sc_strerror(rc));
			continue;
		}
		hist_add(&sh->lib_commit, tt_elapsed_ns(&t0, &t1));
		ver[k] = v;
		atomic_store(&sh->published[0][k], v);
		sh->lib_puts++;
		if (n % 500 == 499) {
			clock_gettime(CLOCK_MONOTONIC, &t0);
			rc = sc_compact(c);
			clock_gettime(CLOCK_MONOTONIC, &t1);
			if (rc) {
				sh->writer_errors++;
				fprintf(stderr, "soak: compact: %s\n", sc_strerror(rc));
			} else {
				sh->compactions++;
				if (tt_elapsed_ns(&t0, &t1) > sh->compact_max_ns)
					sh->compact_max_ns = (uint64_t)tt_elapsed_ns(&t0, &t1);
			}
			sc_trim(c);
		}
	}
	sc_close(c);
	free(buf);
	return 0;
}

static int mount_writer(void *arg)
{
	(void)arg;
	unsigned char *buf = malloc(16384 + 64);
	uint32_t ver[NKEYS] = { 0 };
	char key[64];
	unsigned seed = 2, seq = 0;
	while (!atomic_load(&sh->stop)) {
		int k = (int)(rand_r(&seed) % NKEYS);
		uint32_t v = ver[k] + 1;
		key_of(key, sizeof key, 1, k);
		size_t len = tu_blob_make(buf, key, v, size_for(v, k));
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int e = tt_mount_put(key, buf, len, seq++);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (e) {
			sh->writer_errors++;
			fprintf(stderr, "soak: mount put %s: %s\n", key, strerror(e));
			continue;
		}
		hist_add(&sh->mount_commit, tt_elapsed_ns(&t0, &t1));
		ver[k] = v;
		atomic_store(&sh->published[1][k], v);
		sh->mount_puts++;
	}
	free(buf);
	return 0;
}

/* ---- readers ----------------------------------------------------------------- */

static long nvcsw(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_nvcsw;
}

/* Read a blob through the mount and check it is a whole version. */
static void mount_read(struct reader_stats *r, const char *key, unsigned char *buf)
{
	char name[256], path[PATH_MAX + 300];
	tt_encode(name, sizeof name, key);
	snprintf(path, sizeof path, "%s/%s/blob", tt_mnt, name);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return; /* not committed yet, or replaced between lookup and open */
	size_t got = 0;
	ssize_t n;
	while (got < 16384 + 64 && (n = read(fd, buf + got, 16384 + 64 - got)) > 0)
		got += (size_t)n;
	int err = n < 0 ? errno : 0;
	close(fd);
	if (err)
		return; /* ESTALE: a version released after a compaction */
	r->mount_reads++;
	if (tu_blob_check(buf, got, key) < 0) {
		if (r->mount_torn++ < 5)
			fprintf(stderr, "soak: torn read through the mount: %s (%zu bytes)\n",
				key, got);
	}
}

static int reader(void *arg)
{
	struct reader_stats *r = &sh->r[(intptr_t)arg];
	sc_cache *c = NULL;
	if (sc_open(&c, shard, TT_TAG, 0) != 0)
		return 10;
	unsigned seed = 100 + (unsigned)(intptr_t)arg;
	unsigned char *buf = malloc(16384 + 64);
	char key[64];
	for (uint64_t n = 0; !atomic_load(&sh->stop); n++) {
		int w = (int)(rand_r(&seed) & 1), k = (int)(rand_r(&seed) % NKEYS);
		key_of(key, sizeof key, w, k);
		uint32_t pub = atomic_load(&sh->published[w][k]);
		sc_blob b;
		long sw0 = nvcsw();
		struct timespec t0, t1;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int rc = sc_get(c, key, &b);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (nvcsw() != sw0)
			r->slept++;
		hist_add(&r->lat, tt_elapsed_ns(&t0, &t1));
		r->gets++;
		if (rc == 0) {
			r->hits++;
			long v = tu_blob_check(b.data, b.size, key);
			if (v < 0) {
				if (r->torn++ < 5)
					fprintf(stderr, "soak: torn read %s\n", key);
			} else if ((uint32_t)v < pub) {
				if (r->older++ < 5)
					fprintf(stderr, "soak: %s: got version %ld after %u was "
						"acknowledged\n", key, v, pub);
			}
		} else if (rc == SC_ENOTFOUND) {
			if (pub && r->lost++ < 5)
				fprintf(stderr, "soak: %s missing after version %u was acknowledged\n",
					key, pub);
		} else if (r->errors++ < 5) {
			fprintf(stderr, "soak: sc_get %s: %s\n", key, sc_strerror(rc));
		}
		if (n % 64 == 63)
			mount_read(r, key, buf);
		if (n % 2048 == 2047)
			sc_trim(c); /* no pointer of ours is in use here */
	}
	sc_close(c);
	free(buf);
	return 0;
}

/* ---- the run ----------------------------------------------------------------- */

int tt_soak(const struct tt_opts *o)
{
	tu_setup("torture-soak");
	tt_guard();
	tt_fs_prog = o->fs_prog;
	snprintf(shard, sizeof shard, "%s", tu_path("s.shard"));
	snprintf(tt_mnt, sizeof tt_mnt, "%s", tu_path("mnt"));
	TU_CHECK(mkdir(tt_mnt, 0755) == 0);
	int nr = o->readers < 1 ? 1 : o->readers > MAX_READERS ? MAX_READERS : o->readers;
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TU_CHECK(sh != MAP_FAILED);

	sc_cache *c = NULL;
	TU_CHECK(sc_open(&c, shard, TT_TAG, 0) == 0);
	sc_close(c);
	if (!tap_ok(tt_fs_start(shard) == 0, "scriptcachefs mounts the shard"))
		return tap_done();
	tap_diag("soak: %d readers, a library writer and a mount writer, %.0f s", nr, o->seconds);

	pid_t pids[MAX_READERS + 2];
	int np = 0;
	pids[np++] = tu_spawn(lib_writer, NULL);
	pids[np++] = tu_spawn(mount_writer, NULL);
	for (intptr_t i = 0; i < nr; i++)
		pids[np++] = tu_spawn(reader, (void *)i);
	double end = tu_now() + o->seconds;
	int early = 0;
	while (tu_now() < end && !early) {
		usleep(100000);
		for (int i = 0; i < np; i++)
			if (waitpid(pids[i], NULL, WNOHANG) == pids[i]) {
				tap_diag("soak: process %d ended early", i);
				pids[i] = 0;
				early = 1;
			}
	}
	atomic_store(&sh->stop, 1);
	int bad_exit = early;
	for (int i = 0; i < np; i++)
		if (pids[i] && tu_wait(pids[i]) != 0)
			bad_exit++;
	TAP_EQ(bad_exit, 0, "every reader and writer ran to the end and exited 0");

	/* the end state: every key holds exactly its last acknowledged version */
	int lost = 0, rc;
	TU_CHECK(sc_open(&c, shard, TT_TAG, SC_RDONLY) == 0);
	rc = sc_verify(c, NULL, NULL, NULL);
	tap_ok(rc == 0, "sc_verify passes after the soak (%s)", rc ? sc_strerror(rc) : "ok");
	for (int w = 0; w < 2; w++)
		for (int k = 0; k < NKEYS; k++) {
			char key[64];
			key_of(key, sizeof key, w, k);
			uint32_t pub = atomic_load(&sh->published[w][k]);
			sc_blob b;
			rc = sc_get(c, key, &b);
			long v = rc == 0 ? tu_blob_check(b.data, b.size, key) : 0;
			if (v != (long)pub) {
				if (lost++ < 5)
					tap_diag("  %s: last acknowledged %u, shard has %ld (%s)", key,
						 pub, v, rc ? sc_strerror(rc) : "hit");
			}
		}
	sc_close(c);
	TAP_EQ(lost, 0, "0 lost puts: every key holds its last acknowledged version");

	struct reader_stats tot = { 0 };
	static struct hist lat;
	for (int i = 0; i < nr; i++) {
		struct reader_stats *r = &sh->r[i];
		tot.gets += r->gets, tot.hits += r->hits, tot.torn += r->torn;
		tot.older += r->older, tot.lost += r->lost, tot.errors += r->errors;
		tot.slept += r->slept, tot.mount_reads += r->mount_reads;
		tot.mount_torn += r->mount_torn;
		hist_merge(&lat, &r->lat);
	}
	tap_diag("soak: %llu library puts, %llu mount puts, %llu compactions, %llu writer errors",
		 (unsigned long long)sh->lib_puts, (unsigned long long)sh->mount_puts,
		 (unsigned long long)sh->compactions, (unsigned long long)sh->writer_errors);
	tap_diag("soak: %llu sc_get (%llu hits), %llu reads through the mount",
		 (unsigned long long)tot.gets, (unsigned long long)tot.hits,
		 (unsigned long long)tot.mount_reads);
	tap_diag("soak: sc_get latency: p50 %.0f us, p99 %.0f us, p99.9 %.0f us, max %.1f us; "
		 "%llu calls slept (voluntary context switch)",
		 hist_q_us(&lat, 0.5), hist_q_us(&lat, 0.99), hist_q_us(&lat, 0.999),
		 lat.max_ns / 1e3, (unsigned long long)tot.slept);
	tap_diag("soak: library commit (sc_put_ex): p50 %.0f us, p99.9 %.0f us, max %.1f us; "
		 "compaction max %.1f ms",
		 hist_q_us(&sh->lib_commit, 0.5), hist_q_us(&sh->lib_commit, 0.999),
		 sh->lib_commit.max_ns / 1e3, sh->compact_max_ns / 1e6);
	tap_diag("soak: mount commit (mkdir+create+write+rename): p50 %.0f us, p99.9 %.0f us, "
		 "max %.1f us",
		 hist_q_us(&sh->mount_commit, 0.5), hist_q_us(&sh->mount_commit, 0.999),
		 sh->mount_commit.max_ns / 1e3);

	tap_ok(sh->lib_puts > 0 && sh->mount_puts > 0 && tot.hits > 0,
	       "both writers committed and readers hit");
	TAP_EQ(sh->writer_errors, 0, "no writer error");
	TAP_EQ(tot.torn + tot.mount_torn, 0, "0 torn reads (library and mount)");
	TAP_EQ(tot.older, 0, "no reader saw a version older than one acknowledged before its get");
	TAP_EQ(tot.lost, 0, "no reader missed an acknowledged key");
	TAP_EQ(tot.errors, 0, "no sc_get error");
	/* Readers take no lock: the slowest of 99.9% of reads must beat the
	 * slowest commit (a reader that waited for a writer would take the
	 * commit's time or more).  The maximum itself is the scheduler's on
	 * a machine with fewer cores than processes; it is reported above. */
	tap_ok(hist_q_us(&lat, 0.999) * 1e3 <= (double)sh->lib_commit.max_ns,
	       "sc_get p99.9 (%.0f us) below the slowest library commit (%.0f us)",
	       hist_q_us(&lat, 0.999), sh->lib_commit.max_ns / 1e3);
	tt_fs_stop();
	TAP_EQ(tt_is_mounted(tt_mnt), 0, "unmounted");
	return tap_done();
}
