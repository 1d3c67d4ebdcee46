/*
 * test_concurrency.c - several processes and threads on one shard.
 *
 *  1. four writer processes put distinct and shared keys at once (one of
 *     them compacting half way): no committed put is lost, nothing torn;
 *  2. two readers loop over keys that two writers keep replacing (and
 *     compacting): every hit is byte-exact one genuine version, and blobs
 *     a reader holds stay intact until it closes;
 *  3. four threads share one handle, mixing gets, puts and compactions.
 * Blobs are self-describing (testutil.h), so any torn or foreign byte shows.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/mman.h>

#include "testutil.h"

#define TAG "concurrency tag"

static char shard[PATH_MAX];

static sc_cache *open_or_die(unsigned flags)
{
	sc_cache *c = NULL;
	int rc = sc_open(&c, shard, TAG, flags);
	if (rc)
		tap_diag("sc_open: %s", sc_strerror(rc));
	TU_CHECK(rc == 0);
	return c;
}

static int put_version(sc_cache *c, const char *key, uint32_t version, size_t payload)
{
	static _Thread_local unsigned char buf[8192];
	sc_put_opts o = { .no_source = 1 };
	size_t n = tu_blob_make(buf, key, version, payload);
	return sc_put_ex(c, key, buf, n, &o);
}

/* Children wait on a pipe until the parent closes it: a start line. */
static int start_pipe[2];

static void wait_start(void)
{
	char ch;
	close(start_pipe[1]);
	while (read(start_pipe[0], &ch, 1) < 0 && errno == EINTR)
		;
	close(start_pipe[0]);
}

/* ---- 0. opening and reading during a stream of commits -------------------
 * A focused form of what part 2 does: one process commits in a tight loop
 * while this one opens handles and reads.  A sound shard must never be
 * reported as SC_ECORRUPT because it grew between a stat and a meta read. */

static int committer_main(void *arg)
{
	(void)arg;
	wait_start();
	sc_cache *c = NULL;
	if (sc_open(&c, shard, TAG, SC_NOSYNC))
		return 10;
	char key[64];
	for (int i = 0; i < 4000; i++) {
		snprintf(key, sizeof key, "/stream/k%d", i % 50);
		if (put_version(c, key, (uint32_t)i, 64))
			return 11;
	}
	sc_close(c);
	return 0;
}

static void test_open_during_commits(void)
{
	sc_cache *c = open_or_die(SC_NOSYNC);
	TU_CHECK(put_version(c, "/stream/k0", 0, 64) == 0);
	sc_close(c);
	TU_CHECK(pipe(start_pipe) == 0);
	pid_t pid = tu_spawn(committer_main, NULL);
	close(start_pipe[0]);
	close(start_pipe[1]);
	int opens = 0, open_err = 0, get_err = 0, last = 0, wst = 0;
	pid_t reaped = 0;
	for (int i = 0; i < 400 && (reaped = waitpid(pid, &wst, WNOHANG)) == 0; i++) {
		int rc = sc_open(&c, shard, TAG, SC_RDONLY);
		opens++;
		if (rc) {
			open_err++;
			last = rc;
			continue;
		}
		for (int j = 0; j < 50; j++) {
			sc_blob b;
			rc = sc_get(c, "/stream/k0", &b);
			if (rc && rc != SC_ENOTFOUND) {
				get_err++;
				last = rc;
			}
		}
		sc_close(c);
	}
	int st = reaped == pid ? (WIFEXITED(wst) ? WEXITSTATUS(wst) : 128 + WTERMSIG(wst))
			       : tu_wait(pid);
	TAP_EQ(st, 0, "committer finished");
	tap_diag("%d opens during the commits", opens);
	TAP_EQ(open_err, 0, "no sc_open failure while another process commits (last: %s)",
	       sc_strerror(last));
	TAP_EQ(get_err, 0, "no sc_get error while another process commits (last: %s)",
	       sc_strerror(last));
}

/* ---- 1. concurrent writers ---------------------------------------------- */

enum { NWRITERS = 4, NDISTINCT = 300, NSHARED = 50 };

static int writer_main(void *arg)
{
	int w = (int)(intptr_t)arg;
	wait_start();
	sc_cache *c = NULL;
	if (sc_open(&c, shard, TAG, w == 0 ? 0 : SC_NOSYNC))
		return 10;
	char key[64];
	int fails = 0;
	for (int i = 0; i < NDISTINCT; i++) {
		snprintf(key, sizeof key, "/w%d/k%d", w, i);
		if (put_version(c, key, (uint32_t)w + 1, (size_t)(i * 13 + w * 7) % 1500))
			fails++;
		if (i % 6 == 0) {
			snprintf(key, sizeof key, "/shared/k%d", (i / 6 + w * 13) % NSHARED);
			if (put_version(c, key, (uint32_t)w + 1, 100 + (size_t)i))
				fails++;
		}
		if (w == 3 && i == NDISTINCT / 2 && sc_compact(c))
			fails++;
	}
	sc_close(c);
	return fails ? 11 : 0;
}

static void test_writers(void)
{
	sc_cache *c = open_or_die(0);
	sc_close(c); /* create the shard first; creation races are tested in crash */
	TU_CHECK(pipe(start_pipe) == 0);
	pid_t pids[NWRITERS];
	for (int w = 0; w < NWRITERS; w++)
		pids[w] = tu_spawn(writer_main, (void *)(intptr_t)w);
	close(start_pipe[0]);
	close(start_pipe[1]);
	int all_ok = 1;
	for (int w = 0; w < NWRITERS; w++) {
		int st = tu_wait(pids[w]);
		if (st) {
			tap_diag("writer %d exited with %d", w, st);
			all_ok = 0;
		}
	}
	tap_ok(all_ok, "4 writer processes (one compacting) finished, every put returned 0");

	c = open_or_die(SC_RDONLY);
	char key[64];
	int missing = 0, wrong = 0;
	for (int w = 0; w < NWRITERS; w++)
		for (int i = 0; i < NDISTINCT; i++) {
			snprintf(key, sizeof key, "/w%d/k%d", w, i);
			sc_blob b;
			if (sc_get(c, key, &b)) {
				if (missing++ < 5)
					tap_diag("missing %s", key);
			} else if (tu_blob_check(b.data, b.size, key) != w + 1) {
				wrong++;
			}
		}
	TAP_EQ(missing, 0, "every distinct key is present");
	TAP_EQ(wrong, 0, "every distinct key has exactly its writer's bytes");
	missing = wrong = 0;
	for (int i = 0; i < NSHARED; i++) {
		snprintf(key, sizeof key, "/shared/k%d", i);
		sc_blob b;
		long v;
		if (sc_get(c, key, &b))
			missing++;
		else if ((v = tu_blob_check(b.data, b.size, key)) < 1 || v > NWRITERS)
			wrong++;
	}
	TAP_EQ(missing, 0, "every shared key is present");
	TAP_EQ(wrong, 0, "every shared key holds one writer's genuine bytes");
	sc_stats s;
	TU_CHECK(sc_get_stats(c, &s) == 0);
	TAP_EQ(s.entries, NWRITERS * NDISTINCT + NSHARED, "entry count");
	uint64_t n = 0;
	TAP_EQ(sc_verify(c, NULL, NULL, &n), 0, "sc_verify clean after concurrent writers");
	TAP_EQ(n, NWRITERS * NDISTINCT + NSHARED, "verify checked every record");
	sc_close(c);
}

/* ---- 2. readers during writes -------------------------------------------- */

enum { NRW_KEYS = 100, RW_PUTS = 1500, NREADERS = 2 };

struct shared_state {
	atomic_int stop;
	struct {
		uint64_t gets, hits, torn, errors, held_bad;
		int last_err, open_rc;
	} r[NREADERS];
};
static struct shared_state *sh;

static int rw_writer_main(void *arg)
{
	int w = (int)(intptr_t)arg;
	wait_start();
	sc_cache *c = NULL;
	if (sc_open(&c, shard, TAG, SC_NOSYNC))
		return 10;
	uint64_t rnd = 0x1234 + (uint64_t)w;
	char key[64];
	int fails = 0;
	for (int it = 0; it < RW_PUTS; it++) {
		int k = (int)(tu_mix(&rnd) % NRW_KEYS);
		snprintf(key, sizeof key, "/rw/k%d", k);
		if (put_version(c, key, (uint32_t)(it * 2 + w + 1), tu_mix(&rnd) % 3000))
			fails++;
		if (w == 0 && it % 300 == 299 && sc_compact(c))
			fails++;
	}
	sc_close(c);
	return fails ? 11 : 0;
}

static int reader_main(void *arg)
{
	int r = (int)(intptr_t)arg;
	wait_start();
	sc_cache *c = NULL;
	int orc = sc_open(&c, shard, TAG, SC_RDONLY);
	if (orc) {
		sh->r[r].open_rc = orc;
		return 10;
	}
	sc_blob held[NRW_KEYS];
	long held_v[NRW_KEYS];
	memset(held, 0, sizeof held);
	char key[64];
	uint64_t gets = 0, hits = 0, torn = 0, errors = 0;
	while (!atomic_load(&sh->stop) || gets < 1000) {
		int k = (int)(gets % NRW_KEYS);
		snprintf(key, sizeof key, "/rw/k%d", k);
		sc_blob b;
		int rc = sc_get(c, key, &b);
		gets++;
		if (rc == 0) {
			hits++;
			long v = tu_blob_check(b.data, b.size, key);
			if (v < 0)
				torn++;
			else if (!held[k].data || gets % 7 == 0) {
				held[k] = b; /* keep pointers from many snapshots */
				held_v[k] = v;
			}
		} else if (rc != SC_ENOTFOUND) {
			errors++;
			sh->r[r].last_err = rc;
		}
	}
	uint64_t held_bad = 0;
	for (int k = 0; k < NRW_KEYS; k++) {
		snprintf(key, sizeof key, "/rw/k%d", k);
		if (held[k].data && tu_blob_check(held[k].data, held[k].size, key) != held_v[k])
			held_bad++;
	}
	sh->r[r].gets = gets;
	sh->r[r].hits = hits;
	sh->r[r].torn = torn;
	sh->r[r].errors = errors;
	sh->r[r].held_bad = held_bad;
	sc_close(c);
	return 0;
}

static void test_readers_during_writes(void)
{
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TU_CHECK(sh != MAP_FAILED);
	memset(sh, 0, sizeof *sh);
	sc_cache *c = open_or_die(SC_NOSYNC);
	char key[64];
	for (int k = 0; k < NRW_KEYS; k++) {
		snprintf(key, sizeof key, "/rw/k%d", k);
		TU_CHECK(put_version(c, key, 0, 500) == 0);
	}
	sc_close(c);

	TU_CHECK(pipe(start_pipe) == 0);
	pid_t w[2], r[NREADERS];
	for (int i = 0; i < NREADERS; i++)
		r[i] = tu_spawn(reader_main, (void *)(intptr_t)i);
	for (int i = 0; i < 2; i++)
		w[i] = tu_spawn(rw_writer_main, (void *)(intptr_t)i);
	close(start_pipe[0]);
	close(start_pipe[1]);
	int wst0 = tu_wait(w[0]), wst1 = tu_wait(w[1]);
	atomic_store(&sh->stop, 1);
	int rst0 = tu_wait(r[0]), rst1 = tu_wait(r[1]);
	tap_ok(wst0 == 0 && wst1 == 0, "writers replaced keys 3000 times, compacting (%d %d)",
	       wst0, wst1);
	tap_ok(rst0 == 0 && rst1 == 0, "readers opened the shard and exited normally (%d %d)",
	       rst0, rst1);
	for (int i = 0; i < NREADERS; i++)
		if (sh->r[i].open_rc)
			tap_diag("reader %d: sc_open: %s", i, sc_strerror(sh->r[i].open_rc));
	for (int i = 0; i < NREADERS; i++) {
		tap_diag("reader %d: %llu gets, %llu hits", i, (unsigned long long)sh->r[i].gets,
			 (unsigned long long)sh->r[i].hits);
		tap_ok(sh->r[i].hits > 0, "reader %d had hits", i);
		TAP_EQ(sh->r[i].torn, 0, "reader %d: no torn or foreign hit", i);
		TAP_EQ(sh->r[i].errors, 0, "reader %d: no errors (last: %s)", i,
		       sc_strerror(sh->r[i].last_err));
		TAP_EQ(sh->r[i].held_bad, 0, "reader %d: held blobs unchanged until close", i);
	}
	c = open_or_die(0);
	TAP_EQ(sc_verify(c, NULL, NULL, NULL), 0, "sc_verify clean after readers and writers");
	int bad = 0;
	for (int k = 0; k < NRW_KEYS; k++) {
		snprintf(key, sizeof key, "/rw/k%d", k);
		sc_blob b;
		if (sc_get(c, key, &b) || tu_blob_check(b.data, b.size, key) < 0)
			bad++;
	}
	TAP_EQ(bad, 0, "every key present with a genuine version afterwards");
	sc_close(c);
	munmap(sh, sizeof *sh);
}

/* ---- 3. threads sharing a handle ------------------------------------------ */

enum { NTHREADS = 4, T_ITERS = 1500, T_KEYS = 40 };

struct tctx {
	sc_cache *c;
	int id;
	uint32_t last[T_KEYS]; /* last version this thread committed per key */
	int errors, torn, last_err;
	pthread_barrier_t *bar;
};

static void *thread_main(void *arg)
{
	struct tctx *t = arg;
	uint64_t rnd = 77 + (uint64_t)t->id;
	char key[64];
	sc_blob held = { 0 };
	char held_key[64] = "";
	long held_v = -1;
	pthread_barrier_wait(t->bar);
	for (int it = 0; it < T_ITERS; it++) {
		uint64_t x = tu_mix(&rnd);
		int rc;
		if (x % 3 == 0) {
			int k = (int)((x >> 8) % T_KEYS);
			snprintf(key, sizeof key, "/t%d/k%d", t->id, k);
			rc = put_version(t->c, key, (uint32_t)it + 1, (x >> 16) % 2000);
			if (rc == 0)
				t->last[k] = (uint32_t)it + 1;
		} else {
			snprintf(key, sizeof key, "/t%d/k%d", (int)((x >> 8) % NTHREADS),
				 (int)((x >> 16) % T_KEYS));
			sc_blob b;
			rc = sc_get(t->c, key, &b);
			if (rc == 0) {
				long v = tu_blob_check(b.data, b.size, key);
				if (v < 0)
					t->torn++;
				else if (!held.data || it % 100 == 0) {
					held = b;
					held_v = v;
					snprintf(held_key, sizeof held_key, "%s", key);
				}
			} else if (rc == SC_ENOTFOUND) {
				rc = 0;
			}
		}
		if (t->id == 0 && it % 500 == 499)
			rc = rc ? rc : sc_compact(t->c);
		if (t->id == 1 && it % 300 == 0) {
			sc_stats s;
			rc = rc ? rc : sc_get_stats(t->c, &s);
		}
		if (rc) {
			t->errors++;
			t->last_err = rc;
		}
		if (held.data && tu_blob_check(held.data, held.size, held_key) != held_v)
			t->torn++;
	}
	return NULL;
}

static void test_threads(void)
{
	snprintf(shard, sizeof shard, "%s", tu_path("threads.shard"));
	sc_cache *c = open_or_die(SC_NOSYNC);
	pthread_barrier_t bar;
	pthread_barrier_init(&bar, NULL, NTHREADS);
	struct tctx t[NTHREADS];
	pthread_t th[NTHREADS];
	for (int i = 0; i < NTHREADS; i++) {
		memset(&t[i], 0, sizeof t[i]);
		t[i].c = c;
		t[i].id = i;
		t[i].bar = &bar;
		TU_CHECK(pthread_create(&th[i], NULL, thread_main, &t[i]) == 0);
	}
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&bar);
	int errors = 0, torn = 0;
	for (int i = 0; i < NTHREADS; i++) {
		errors += t[i].errors;
		torn += t[i].torn;
		if (t[i].errors)
			tap_diag("thread %d: %d errors, last %s", i, t[i].errors,
				 sc_strerror(t[i].last_err));
	}
	TAP_EQ(errors, 0, "4 threads on one handle: no errors");
	TAP_EQ(torn, 0, "4 threads on one handle: no torn hits, held blobs intact");
	int wrong = 0;
	char key[64];
	for (int i = 0; i < NTHREADS; i++)
		for (int k = 0; k < T_KEYS; k++) {
			snprintf(key, sizeof key, "/t%d/k%d", i, k);
			sc_blob b;
			int rc = sc_get(c, key, &b);
			long want = t[i].last[k] ? (long)t[i].last[k] : -1;
			long got = rc ? -1 : tu_blob_check(b.data, b.size, key);
			if (got != want) {
				if (wrong++ < 5)
					tap_diag("%s: version %ld, want %ld", key, got, want);
			}
		}
	TAP_EQ(wrong, 0, "each key holds the last version its thread committed");
	TAP_EQ(sc_verify(c, NULL, NULL, NULL), 0, "sc_verify clean after threads");
	sc_close(c);
}

/* ---- 4. verifying beside a busy writer ------------------------------------
 * Commits change index slots in place; a verifier that let them in would
 * report slots past its snapshot and counts that do not add up.  A
 * read-only handle holds the writer lock shared while it verifies (its own
 * shard), so it must find nothing wrong with a sound shard however busy the
 * writer is.  Before that, most such verifies reported damage. */

static int busy_writer_main(void *arg)
{
	(void)arg;
	wait_start();
	sc_cache *c = NULL;
	if (sc_open(&c, shard, TAG, SC_NOSYNC))
		return 10;
	char key[64];
	for (int i = 0; !atomic_load(&sh->stop); i++) {
		snprintf(key, sizeof key, "/busy/k%d", i % 100);
		if (put_version(c, key, (uint32_t)i, 2000))
			return 11;
		if (i % 2000 == 1999 && sc_compact(c))
			return 12;
	}
	sc_close(c);
	return 0;
}

static void count_problem(void *arg, uint64_t off, const char *problem)
{
	if (++*(int *)arg <= 3)
		tap_diag("  problem at %llu: %s", (unsigned long long)off, problem);
}

static void test_verify_beside_writer(void)
{
	sh = mmap(NULL, sizeof *sh, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	TU_CHECK(sh != MAP_FAILED);
	memset(sh, 0, sizeof *sh);
	sc_cache *c = open_or_die(SC_NOSYNC);
	char key[64];
	for (int k = 0; k < 100; k++) {
		snprintf(key, sizeof key, "/busy/k%d", k);
		TU_CHECK(put_version(c, key, 0, 2000) == 0);
	}
	sc_close(c);
	TU_CHECK(pipe(start_pipe) == 0);
	pid_t w = tu_spawn(busy_writer_main, NULL);
	close(start_pipe[0]);
	close(start_pipe[1]);
	int failed = 0, problems = 0, runs = 200;
	for (int i = 0; i < runs; i++) {
		c = open_or_die(SC_RDONLY);
		int rc = sc_verify(c, count_problem, &problems, NULL);
		if (rc != 0 && failed++ < 3)
			tap_diag("verify %d: %s", i, sc_strerror(rc));
		sc_close(c);
	}
	atomic_store(&sh->stop, 1);
	TAP_EQ(tu_wait(w), 0, "the writer committed until told to stop");
	TAP_EQ(failed, 0, "%d read-only verifies beside it: all clean (%d problems reported)", runs,
	       problems);
	munmap(sh, sizeof *sh);
}

int main(void)
{
	tu_setup("conc");
	snprintf(shard, sizeof shard, "%s", tu_path("stream.shard"));
	test_open_during_commits();
	snprintf(shard, sizeof shard, "%s", tu_path("writers.shard"));
	test_writers();
	snprintf(shard, sizeof shard, "%s", tu_path("rw.shard"));
	test_readers_during_writes();
	test_threads();
	snprintf(shard, sizeof shard, "%s", tu_path("busy.shard"));
	test_verify_beside_writer();
	return tap_done();
}
