/*
 * sc_crashsim - crash simulation at every write boundary (docs/
 * RELIABILITY.md, "Crash simulation").
 *
 *   sc_crashsim [-k KEYS] [-x EXHAUSTIVE] [-r SAMPLES] [-o REORDERS]
 *               [-s SEED] [-S SYNC] [-b] [-P] [-F FAILURES] [-v]
 *
 * Built from the core's sources with SC_OS_TRACE, so that core/os.c
 * reports every write, truncate, sync, create, rename, link and unlink of
 * the library.  A workload (durable puts of new keys and replacements,
 * removes, keys sharing one stored blob (format 2 stores equal bytes once:
 * reference counts, a blob that dies and is stored again), enough puts
 * of large entries to start a second metadata chunk, SC_NOSYNC puts from a
 * second handle, a compaction, a writer that died after its appends,
 * eviction of stale entries (a source whose mtime moved is kept by its
 * content hash, one whose bytes changed is dropped), a clear, a put past
 * the size limit that evicts the oldest entries, a damaged header healed
 * by the next put)
 * runs once under the recorder (fsmodel.c).  Then every cut point of the
 * recording is replayed: the files a crash there could leave (every
 * pending write, none, the last one torn, subsets of the pending writes and
 * names, reorders) are written into a scratch directory and opened with
 * the library:
 *
 *  - read-only: it opens, sc_verify finds nothing, every key holds a value
 *    the oracle allows and every entry is a whole blob of its key;
 *  - read-write (the next writer's recovery): it opens without a heal,
 *    verifies, shows the same values, takes a put and verifies again.
 *
 * The oracle: after a workload step returns, the values of all keys are read
 * back (that step's state).  At a cut, D is the last step that returned and
 * was durable; a key may hold its value of state D or of any later step that
 * had started, nothing else.  In durable stretches the whole shard must be
 * exactly one such state.  -S N leaves out the N-th sync from the recording
 * (the simulator's own test: it must then report lost puts).  -P runs the
 * workload of finding 13 (docs/RELIABILITY.md: a durable put, then three
 * SC_NOSYNC commits; CI runs it too).  Speaks TAP; exits 1 on any failure.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "fsmodel.h"
#include "sc_int.h"
#include "scriptcache.h"
#include "testutil.h"

#define MAX_KEYS 2048
#define MAX_STEPS 8192

enum step_kind { S_OPEN, S_PUT, S_REMOVE, S_COMPACT, S_EVICT, S_CLEAR, S_DAMAGE, S_DIED, S_CLOSE };

struct step {
	enum step_kind kind;
	int key;
	int durable;
	size_t start, end;       /* ops [start, end) of the recording are this step's */
	uint32_t *after;         /* value of every key afterwards (0 = absent) */
	uint32_t *mid;           /* a put that evicts: the state between its commit
				  * and the eviction's rename, else NULL */
	char what[64];
};

static struct {
	struct fsm m;
	char rec_dir[PATH_MAX], chk_dir[PATH_MAX], src_dir[PATH_MAX];
	char rec_shard[PATH_MAX], chk_shard[PATH_MAX];
	char keys[MAX_KEYS][PATH_MAX];
	int n_keys;
	struct step steps[MAX_STEPS];
	int n_steps;
	uint32_t version;
	int verbose, failures, max_failures, put_before_nosync;
	const char *put_tag;     /* fingerprint tag of the puts (NULL: none) */
	uint64_t checks, torn_meta_reports, max_slots, chunks_started;
	uint64_t seed;
} G;

static void trace(const struct sc_os_event *ev)
{
	struct fsm *m = &G.m;
	switch (ev->op) {
	case SC_OS_OPEN:
		fsm_open(m, ev->path, ev->flags, ev->fd);
		break;
	case SC_OS_WRITE: {
		uint64_t off = ev->off;
		size_t left = ev->len;
		for (int i = 0; i < ev->iovcnt && left; i++) {
			size_t n = ev->iov[i].iov_len < left ? ev->iov[i].iov_len : left;
			fsm_write(m, ev->fd, off, ev->iov[i].iov_base, n);
			off += n;
			left -= n;
		}
		break;
	}
	case SC_OS_TRUNCATE:
		fsm_truncate(m, ev->fd, ev->off);
		break;
	case SC_OS_SYNC:
		fsm_sync(m, ev->fd);
		break;
	case SC_OS_DIRSYNC:
		fsm_dirsync(m, ev->path);
		break;
	case SC_OS_RENAME:
		fsm_rename(m, ev->path, ev->path2);
		break;
	case SC_OS_LINK:
		fsm_link(m, ev->path, ev->path2);
		break;
	case SC_OS_UNLINK:
		fsm_unlink(m, ev->path);
		break;
	}
}

/* ---- the workload ---------------------------------------------------------- */

static unsigned char blobbuf[1 << 16];

/* Blobs that several keys hold (the same bytes, stored once) are made for
 * this name instead of their key; versions stay unique, so the oracle
 * still tells which put a key's value came from. */
#define SHARED_NAME "/crashsim/shared-bytes"
#define SHARED_SIZE 3000

/* The version a blob holds, if it is a whole blob of @p key or a shared
 * one; <= 0 otherwise. */
static long blob_version(const void *blob, uint64_t size, const char *key)
{
	long v = tu_blob_check(blob, size, key);
	return v > 0 ? v : tu_blob_check(blob, size, SHARED_NAME);
}

/* The value of every key as the shard now holds it, read with the
 * recorder off (reads change no file). */
static uint32_t *observe(sc_cache *c)
{
	uint32_t *v = calloc((size_t)G.n_keys, sizeof(*v));
	TU_CHECK(v != NULL);
	void (*saved)(const struct sc_os_event *) = sc_os_trace;
	sc_os_trace = NULL;
	for (int k = 0; k < G.n_keys; k++) {
		sc_entry_info e;
		int rc = sc_lookup(c, G.keys[k], &e);
		if (rc == SC_ENOTFOUND)
			continue;
		TU_CHECK(rc == 0);
		long ver = blob_version(e.blob, e.blob_size, G.keys[k]);
		TU_CHECK(ver > 0);
		v[k] = (uint32_t)ver;
	}
	sc_os_trace = saved;
	return v;
}

static struct step *begin(enum step_kind kind, int key, int durable, const char *what)
{
	TU_CHECK(G.n_steps < MAX_STEPS);
	struct step *s = &G.steps[G.n_steps++];
	s->kind = kind;
	s->key = key;
	s->durable = durable;
	snprintf(s->what, sizeof(s->what), "%s", what);
	fsm_mark(&G.m, G.n_steps - 1);
	s->start = G.m.n_ops;
	return s;
}

static void end(struct step *s, sc_cache *c, int rc)
{
	if (rc != 0) {
		printf("Bail out! workload step '%s' failed: %s\n", s->what, sc_strerror(rc));
		exit(1);
	}
	s->end = G.m.n_ops;
	fsm_mark(&G.m, (long)(s - G.steps));
	if (s->kind == S_DAMAGE || s->kind == S_CLOSE || !c) {
		/* nothing to read through (a damaged file: the handle still
		 * maps the old bytes, but a crash now leaves an empty shard
		 * after the heal) */
		s->after = calloc((size_t)G.n_keys, sizeof(uint32_t));
		if (s->kind == S_CLOSE && s > G.steps)
			memcpy(s->after, s[-1].after, (size_t)G.n_keys * sizeof(uint32_t));
		return;
	}
	s->after = observe(c);
}

/* Put @p len bytes of blobbuf, version @p v, under key @p k. */
static void put_blob(sc_cache *c, int k, int durable, uint32_t v, size_t len, const char *how)
{
	sc_stats stats;
	char what[64];
	snprintf(what, sizeof(what), "put key %d v%u%s%s", k, v, how, durable ? "" : " nosync");
	struct step *s = begin(S_PUT, k, durable, what);
	sc_put_opts o = { .no_source = 1, .tag = G.put_tag };
	struct stat st;
	if (strncmp(G.keys[k], G.src_dir, strlen(G.src_dir)) == 0) {
		TU_CHECK(stat(G.keys[k], &st) == 0);
		o.no_source = 0;
		o.source = &st;
	}
	end(s, c, sc_put_ex(c, G.keys[k], blobbuf, len, &o));
	TU_CHECK(s->after[k] == v);
	TU_CHECK(sc_get_stats(c, &stats) == 0);
	if (stats.index_slots > G.max_slots)
		G.max_slots = stats.index_slots;
}

static void put(sc_cache *c, int k, int durable, size_t size)
{
	size_t len = tu_blob_make(blobbuf, G.keys[k], ++G.version, size);
	put_blob(c, k, durable, G.version, len, "");
}

/* Put the shared bytes of version @p v under key @p k (0: new bytes, a
 * new version); returns the version.  Equal bytes share one stored blob. */
static uint32_t put_shared(sc_cache *c, int k, int durable, uint32_t v)
{
	if (!v)
		v = ++G.version;
	size_t len = tu_blob_make(blobbuf, SHARED_NAME, v, SHARED_SIZE);
	put_blob(c, k, durable, v, len, " (shared bytes)");
	return v;
}

/* Keys @p k1 and @p k2 hold one stored blob (the workload's own check
 * that equal bytes are stored once). */
static void same_blob(sc_cache *c, int k1, int k2)
{
	sc_entry_info e1, e2;
	TU_CHECK(sc_lookup(c, G.keys[k1], &e1) == 0 && sc_lookup(c, G.keys[k2], &e2) == 0);
	TU_CHECK(e1.blob == e2.blob && e1.blob_id[0] == e2.blob_id[0] &&
		 e1.blob_id[1] == e2.blob_id[1]);
}

static void del(sc_cache *c, int k, int durable)
{
	char what[64];
	snprintf(what, sizeof(what), "remove key %d%s", k, durable ? "" : " nosync");
	struct step *s = begin(S_REMOVE, k, durable, what);
	end(s, c, sc_remove(c, G.keys[k]));
	TU_CHECK(s->after[k] == 0);
}

/* A writer that died after its appends (step 1 of a put): a whole, valid
 * entry record of key @p k's current version, naming a copy of its blob
 * appended past data_end, written into the metadata chunk's free tail
 * (or past the blob, where a new chunk would start), never synced or
 * committed.  The next put writes its blob and its entry over them; a
 * crash state must never show them.  Written through the core's own os.c
 * calls, so it is recorded. */
static void died_after_append(sc_cache *c, int k)
{
	sc_entry_info e;
	struct sc_disk_entry r;
	struct step *s = begin(S_DIED, -1, 0, "a writer dies after its appends");

	TU_CHECK(sc_lookup(c, G.keys[k], &e) == 0);
	pthread_rwlock_rdlock(&c->rw);
	struct sc_disk_meta m = c->meta;
	memcpy(&r, c->maps->base + e.offset, sizeof(r));
	unsigned char *rec = malloc(r.rec_len), *blob = malloc(r.blob_len + 1);
	TU_CHECK(rec != NULL && blob != NULL);
	memcpy(rec, c->maps->base + e.offset, r.rec_len);
	memcpy(blob, c->maps->base + r.blob_off, r.blob_len);
	pthread_rwlock_unlock(&c->rw);
	uint64_t blob_at = m.data_end, at;
	if (m.chunk_off && m.chunk_len - m.chunk_used >= r.rec_len)
		at = m.chunk_off + m.chunk_used;
	else
		at = sc_align_up(blob_at + r.blob_len);
	size_t strings = (size_t)r.key_len + r.tag_len + r.exe_id_len + r.exe_path_len;
	r.blob_off = blob_at;
	r.checksum = sc_record_checksum(&r, &(struct iovec){ rec + sizeof(r), strings }, 1);
	memcpy(rec, &r, sizeof(r));
	int fd = sc_robust_open(G.rec_shard, O_RDWR, 0);
	TU_CHECK(fd >= 0 && sc_write_full(fd, blob, r.blob_len, blob_at) == 0 &&
		 sc_write_full(fd, rec, r.rec_len, at) == 0);
	close(fd);
	free(rec);
	free(blob);
	end(s, c, 0);
}

/* Puts of a key with a fingerprint tag of 20,000 bytes (an entry record
 * of 20 KiB, across pages) until the metadata chunk is full and the next
 * put starts a new one. */
static void fill_chunk(sc_cache *c, int k)
{
	static char tag[20001];
	uint64_t first;

	memset(tag, 't', sizeof(tag) - 1);
	G.put_tag = tag;

	pthread_rwlock_rdlock(&c->rw);
	first = c->meta.chunk_off;
	pthread_rwlock_unlock(&c->rw);
	for (int i = 0;; i++) {
		uint64_t now;
		TU_CHECK(i < 40);
		put(c, k, 1, 40);
		pthread_rwlock_rdlock(&c->rw);
		now = c->meta.chunk_off;
		pthread_rwlock_unlock(&c->rw);
		if (first && now != first)
			break;
		if (!first)
			first = now;
	}
	G.put_tag = NULL;
	G.chunks_started++;
}

static size_t size_for(int i)
{
	/* small, a page and more, several pages: cuts inside records */
	static const size_t sizes[] = { 100, 5000, 300, 13000, 40 };
	/* beyond the first 64 keys (-k 720 makes the index grow) small ones,
	 * to keep the shard, and each check, small */
	return i < 64 ? sizes[i % 5] : 40;
}

static void workload(int n)
{
	sc_cache *a = NULL, *b = NULL;
	struct step *s;
	int src = n + 1; /* the key backed by a source file */
	int big = n + 2; /* the key put with a long tag */
	uint32_t shared;

	s = begin(S_OPEN, -1, 1, "create the shard");
	end(s, NULL, sc_open(&a, G.rec_shard, NULL, SC_IGNORE_ENV));
	for (int i = 0; i < n; i++)
		put(a, i, 1, size_for(i));
	put(a, src, 1, 200);
	for (int i = 0; i < n / 2; i++)
		put(a, i, 1, size_for(i + 1));
	/* One stored blob, several keys: its reference count goes up, down
	 * (a key replaced, a key removed) and to 0, and the same bytes are
	 * stored again afterwards. */
	shared = put_shared(a, 5, 1, 0);
	put_shared(a, 6, 1, shared);
	put_shared(a, 6, 1, shared);     /* the bytes it holds: +1 and -1 in one commit */
	put_shared(a, 7, 1, shared);
	same_blob(a, 5, 7);
	put(a, 5, 1, 300);
	del(a, 6, 1);
	del(a, 7, 1);                    /* the last reference: the blob dies */
	put_shared(a, 6, 1, shared);     /* stored anew */
	fill_chunk(a, big);
	/* The last durable commit before the SC_NOSYNC stretch: a remove.
	 * With -P, a put, and three SC_NOSYNC commits in a row after it
	 * (finding 13, docs/RELIABILITY.md: with two meta slots a power loss
	 * could then undo that put, or leave no usable meta at all). */
	if (G.put_before_nosync)
		put(a, 1, 1, 100);
	else
		del(a, 1, 1);
	/* A second handle without fdatasync, then durable puts beside it:
	 * two SC_NOSYNC commits after the remove, one after a durable put,
	 * as in format 1's workload (more, or two after a put: -P). */
	TU_CHECK(sc_open(&b, G.rec_shard, NULL, SC_IGNORE_ENV | SC_NOSYNC) == 0);
	put_shared(b, 5, 0, shared);     /* a replacement sharing a durable put's blob */
	same_blob(b, 5, 6);
	if (G.put_before_nosync)
		put(b, 2, 0, 700);
	put(b, n, 0, 9000);
	put(a, 3, 1, 250);
	del(b, 4 % n, 0);
	put(a, 2, 1, 600);

	s = begin(S_COMPACT, -1, 1, "compact");
	end(s, a, sc_compact(a));
	put(a, 0, 1, 4500);
	put(b, 5 % n, 0, 100); /* b still maps the retired file */
	died_after_append(a, 3);
	put(a, 6 % n, 1, 100); /* reuses the space past data_end */
	del(a, 0, 1);

	/* The source's mtime moves, its bytes stay: the entry is kept by the
	 * hash of its content (and the rewrite carries the hash over).  Then
	 * its bytes change (same size): evict-stale drops it. */
	{
		struct timespec ts[2] = { { 0, UTIME_NOW }, { 1, 0 } };
		sc_entry_info e;
		TU_CHECK(utimensat(AT_FDCWD, G.keys[src], ts, 0) == 0);
		uint64_t dropped = 0;
		s = begin(S_EVICT, -1, 1, "evict stale (mtime moved)");
		end(s, a, sc_evict_stale(a, &dropped));
		TU_CHECK(dropped == 0 && s->after[src] != 0);
		TU_CHECK(sc_lookup(a, G.keys[src], &e) == 0 && e.has_source_hash &&
			 sc_entry_status(&e) == 0);
		tu_write_str(G.keys[src], "return 2\n");
		TU_CHECK(utimensat(AT_FDCWD, G.keys[src], ts, 0) == 0);
		s = begin(S_EVICT, -1, 1, "evict stale (bytes changed)");
		end(s, a, sc_evict_stale(a, &dropped));
		TU_CHECK(dropped == 1 && s->after[src] == 0);
	}
	s = begin(S_CLEAR, -1, 1, "clear");
	end(s, a, sc_clear(a));
	for (int i = 0; i < 3 && i < n; i++)
		put(a, i, 1, size_for(i + 2));
	/* Past the size limit: the put commits, then evicts the oldest
	 * entries into a new file. */
	sc_set_max_size(a, 24 * 1024);
	put(a, 3, 1, 13000);
	s = &G.steps[G.n_steps - 1];
	s->mid = calloc((size_t)G.n_keys, sizeof(uint32_t));
	TU_CHECK(s->mid != NULL);
	memcpy(s->mid, s[-1].after, (size_t)G.n_keys * sizeof(uint32_t));
	s->mid[3] = G.version;
	TU_CHECK(s->after[0] == 0); /* the oldest went */
	sc_set_max_size(a, 0);

	/* A disk fault: the header's checksum no longer matches.  The next
	 * put sets the file aside and starts a new shard. */
	{
		unsigned char x = 0x5a;
		s = begin(S_DAMAGE, -1, 1, "damage the header");
		fsm_inject(&G.m, "shard", 100, &x, 1);
		int fd = open(G.rec_shard, O_WRONLY | O_CLOEXEC);
		TU_CHECK(fd >= 0 && pwrite(fd, &x, 1, 100) == 1);
		close(fd);
		end(s, NULL, 0);
	}
	put(a, n - 1, 1, 300);
	put(a, 0, 1, 5000);

	s = begin(S_CLOSE, -1, 1, "close");
	sc_close(b);
	sc_close(a);
	end(s, NULL, 0);
}

/* ---- the oracle --------------------------------------------------------- */

/* Last step that returned and was durable before @p cut, or -1. */
static int durable_before(size_t cut)
{
	int d = -1;
	for (int i = 0; i < G.n_steps; i++)
		if (G.steps[i].end && G.steps[i].end <= cut && G.steps[i].durable)
			d = i;
	return d;
}

/* Steps that had issued an operation (or returned) before @p cut: one
 * past the last step whose state a crash there may show.  Steps run one
 * after another, so this is a prefix. */
static int started_before(size_t cut)
{
	int n = 0;
	while (n < G.n_steps && (G.steps[n].start < cut || (G.steps[n].end && G.steps[n].end <= cut)))
		n++;
	return n;
}

static uint64_t epoch(void *arg, size_t cut)
{
	(void)arg;
	return (uint64_t)(durable_before(cut) + 1) * 100003u + (uint64_t)started_before(cut);
}

static uint32_t value_at(int step, int k)
{
	return step < 0 ? 0 : G.steps[step].after[k];
}

static int allowed(int d, int last, int k, uint32_t v)
{
	for (int j = d < 0 ? -1 : d; j < last; j++)
		if (value_at(j, k) == v)
			return 1;
	return 0;
}

/* ---- the check of one crash state ---------------------------------------- */

struct chk {
	size_t cut;
	const char *what;
	char msg[1024];
	int problems;
};

static void verify_problem(void *arg, uint64_t off, const char *problem)
{
	struct chk *c = arg;
	/* -b tears a meta write inside its sector: readers fall back to the
	 * other slot, but sc_verify reports the torn one (docs/RELIABILITY.md
	 * says why that is kept); count it and check the rest. */
	if (G.m.tear && strncmp(problem, "meta slot", 9) == 0 &&
	    strstr(problem, "checksum mismatch")) {
		G.torn_meta_reports++;
		return;
	}
	if (!c->problems++)
		snprintf(c->msg, sizeof(c->msg), "verify: at %llu: %s", (unsigned long long)off,
			 problem);
}

/* sc_verify, with -b's torn meta slots forgiven (verify_problem). */
static int verify(sc_cache *c, struct chk *k)
{
	uint64_t before = G.torn_meta_reports;
	int rc = sc_verify(c, verify_problem, k, NULL);

	return rc == SC_ECORRUPT && !k->problems && G.torn_meta_reports > before ? 0 : rc;
}

/* Every key's value (0: absent or unreadable); -1 if a lookup failed
 * otherwise than by a miss, with the first reason in k->msg. */
static int read_values(sc_cache *c, uint32_t *v, struct chk *k)
{
	int bad = 0;

	for (int i = 0; i < G.n_keys; i++) {
		sc_entry_info e;
		int rc = sc_lookup(c, G.keys[i], &e);
		v[i] = 0;
		if (rc == SC_ENOTFOUND)
			continue;
		if (rc != 0) {
			if (!bad++)
				snprintf(k->msg, sizeof(k->msg), "lookup of key %d: %s", i,
					 sc_strerror(rc));
			continue;
		}
		long ver = blob_version(e.blob, e.blob_size, G.keys[i]);
		if (ver <= 0) {
			/* never excused: a torn entry is a wrong hit */
			snprintf(k->msg, sizeof(k->msg), "key %d holds a torn or foreign blob", i);
			return -2;
		}
		v[i] = (uint32_t)ver;
	}
	return bad ? -1 : 0;
}

static int count_entry(const sc_entry_info *e, void *arg)
{
	(void)e;
	++*(int *)arg;
	return 0;
}

static int fail_state(struct chk *k, const struct fsm_state *st)
{
	char buf[256];
	G.failures++;
	if (G.failures <= G.max_failures) {
		printf("# FAIL at cut %zu (after: %s), state: %s\n", k->cut,
		       k->cut ? fsm_describe(&G.m, k->cut - 1, buf, sizeof(buf)) : "nothing",
		       k->what);
		for (int i = 0; i < G.n_steps; i++)
			if (G.steps[i].start <= k->cut && G.steps[i].end >= k->cut)
				printf("#   during step %d: %s\n", i, G.steps[i].what);
		printf("#   %s\n", k->msg);
		for (size_t i = 0; i < st->n_names; i++)
			printf("#   file %s: %llu bytes\n", st->names[i].name,
			       (unsigned long long)st->ino[st->names[i].ino].len);
	}
	return G.failures >= G.max_failures ? 1 : 0;
}

static int check(void *arg, size_t cut, const char *what, const struct fsm_state *st)
{
	struct chk k = { .cut = cut, .what = what };
	int d = durable_before(cut), last = started_before(cut), rc, n_entries = 0;
	uint32_t ro[MAX_KEYS], rw[MAX_KEYS];
	/* From the damage until the put that heals it returned, a damaged
	 * header, or a heal by the next writer, is what the shard shows. */
	int damaged_ok = 0;
	/* Steps without fdatasync since D: a power loss may take them, and
	 * an index slot of theirs may name a record that never reached the
	 * disk (a miss, reported by verify); see docs/RELIABILITY.md. */
	int unsynced = 0, ro_ok = 0;
	unsigned char touched[MAX_KEYS] = { 0 };
	static const uint32_t none[MAX_KEYS];
	sc_cache *c = NULL;
	sc_stats stats;

	(void)arg;
	for (int j = d + 1; j < last; j++)
		if (!G.steps[j].durable && G.steps[j].key >= 0)
			unsynced = touched[G.steps[j].key] = 1;
	for (int j = d < 0 ? 0 : d; j < last; j++)
		damaged_ok |= G.steps[j].kind == S_DAMAGE;
	G.checks++;
	if ((rc = fsm_materialize(st, G.chk_dir)) != 0) {
		printf("Bail out! cannot write the crash state: %s\n", strerror(-rc));
		exit(1);
	}
	if (access(G.chk_shard, F_OK) != 0) {
		if (d < 0)
			return 0; /* nothing was acknowledged: no shard is fine */
		snprintf(k.msg, sizeof(k.msg), "the shard is gone");
		return fail_state(&k, st);
	}

	/* 1. A reader. */
	rc = sc_open(&c, G.chk_shard, NULL, SC_RDONLY | SC_IGNORE_ENV);
	if (rc != 0) {
		if (!(damaged_ok && (rc == SC_ECORRUPT || rc == SC_ETRUNCATED)) &&
		    !(d < 0 && rc == SC_EMAGIC)) {
			snprintf(k.msg, sizeof(k.msg), "read-only open: %s", sc_strerror(rc));
			return fail_state(&k, st);
		}
	} else {
		rc = verify(c, &k);
		if ((rc != 0 || k.problems) && !unsynced) {
			if (!k.problems)
				snprintf(k.msg, sizeof(k.msg), "verify: %s", sc_strerror(rc));
			sc_close(c);
			return fail_state(&k, st);
		}
		if ((rc = read_values(c, ro, &k)) == -2 || (rc != 0 && !unsynced)) {
			sc_close(c);
			return fail_state(&k, st);
		}
		if (sc_foreach(c, count_entry, &n_entries) < 0 && !unsynced) {
			snprintf(k.msg, sizeof(k.msg), "foreach failed");
			sc_close(c);
			return fail_state(&k, st);
		}
		sc_close(c);
		c = NULL;
		ro_ok = 1;
		int found = 0, exact = 0;
		for (int i = 0; i < G.n_keys; i++) {
			found += ro[i] != 0;
			if (!allowed(d, last, i, ro[i]) && !(touched[i] && ro[i] == 0)) {
				snprintf(k.msg, sizeof(k.msg),
					 "key %d holds v%u; allowed: its value after step %d (v%u) or a later started step",
					 i, ro[i], d, value_at(d, i));
				return fail_state(&k, st);
			}
		}
		if (found != n_entries && !unsynced) {
			snprintf(k.msg, sizeof(k.msg), "%d entries listed, %d keys found", n_entries,
				 found);
			return fail_state(&k, st);
		}
		/* Durable stretches: the shard is one state, never a mix. */
		for (int j = d < 0 ? -1 : d; j < last && !exact && !unsynced; j++)
			exact = !memcmp(ro, j < 0 ? none : G.steps[j].after,
					(size_t)G.n_keys * sizeof(uint32_t)) ||
				(j > d && G.steps[j].mid &&
				 !memcmp(ro, G.steps[j].mid, (size_t)G.n_keys * sizeof(uint32_t)));
		if (!exact && !unsynced) {
			snprintf(k.msg, sizeof(k.msg),
				 "the shard mixes the states of steps %d to %d", d, last - 1);
			return fail_state(&k, st);
		}
	}

	/* 2. The next writer: recovers without a heal, sees the same. */
	rc = sc_open(&c, G.chk_shard, NULL, SC_IGNORE_ENV | SC_NOSYNC);
	if (rc != 0) {
		snprintf(k.msg, sizeof(k.msg), "read-write open: %s", sc_strerror(rc));
		return fail_state(&k, st);
	}
	TU_CHECK(sc_get_stats(c, &stats) == 0);
	if (stats.heals && !damaged_ok && !(d < 0)) {
		snprintf(k.msg, sizeof(k.msg), "the writer had to heal the shard");
		goto fail;
	}
	if (!unsynced || stats.heals) {
		k.problems = 0;
		if ((rc = verify(c, &k)) != 0 || k.problems) {
			if (!k.problems)
				snprintf(k.msg, sizeof(k.msg), "verify after open: %s", sc_strerror(rc));
			goto fail;
		}
	}
	if ((rc = read_values(c, rw, &k)) == -2 || (rc != 0 && !unsynced))
		goto fail;
	if (ro_ok && !stats.heals && memcmp(ro, rw, (size_t)G.n_keys * sizeof(uint32_t)) != 0) {
		snprintf(k.msg, sizeof(k.msg), "a writer's open changed what readers saw");
		goto fail;
	}
	{
		const char *probe = "/crashsim/probe";
		size_t len = tu_blob_make(blobbuf, probe, 1, 300);
		sc_put_opts o = { .no_source = 1 };
		sc_entry_info e;
		if ((rc = sc_put_ex(c, probe, blobbuf, len, &o)) != 0 ||
		    (rc = sc_lookup(c, probe, &e)) != 0 || tu_blob_check(e.blob, e.blob_size, probe) != 1) {
			snprintf(k.msg, sizeof(k.msg), "a put after recovery: %s", sc_strerror(rc));
			goto fail;
		}
	}
	sc_close(c);
	return 0;
fail:
	sc_close(c);
	return fail_state(&k, st);
}

/* ---- main ------------------------------------------------------------------ */

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void join(char out[PATH_MAX], const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	TU_CHECK(a + 1 + b < PATH_MAX);
	memcpy(out, dir, a);
	out[a] = '/';
	memcpy(out + a + 1, name, b + 1);
}

static int usage(void)
{
	fprintf(stderr,
		"usage: sc_crashsim [-k KEYS] [-x EXHAUSTIVE] [-r SAMPLES] [-o REORDERS] [-s SEED]\n"
		"                   [-S SYNC] [-b] [-P] [-F FAILURES] [-v]\n"
		"  -k keys in the workload (8, at least 8)\n"
		"  -x try every subset of the pending operations up to this many (8)\n"
		"  -r random subsets per cut point beyond that (16)\n"
		"  -o random reorders per cut point (4)\n"
		"  -S leave out the N-th sync of the recording (self-test: must fail)\n"
		"  -b tear writes at any byte, not at sector boundaries (a torn meta slot\n"
		"     that sc_verify reports is then not counted as a failure)\n"
		"  -P make the last durable commit before the SC_NOSYNC puts of the second\n"
		"     handle a put instead of a remove, and three of those puts in a row\n"
		"     (finding 13, fixed by the third meta slot; CI runs it)\n"
		"  -F stop after this many failing states, each one printed (10)\n"
		"  -v list the recording\n");
	return 2;
}

int main(int argc, char **argv)
{
	int n = 8, exhaustive = 8, samples = 16, reorders = 4, opt;
	long skip = 0;
	int tear = 0;
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char top[PATH_MAX];
	struct fsm_stats fs;

	G.seed = 20261129;
	G.max_failures = 10;
	while ((opt = getopt(argc, argv, "k:x:r:o:s:S:bPF:v")) != -1) {
		switch (opt) {
		case 'k': n = atoi(optarg); break;
		case 'x': exhaustive = atoi(optarg); break;
		case 'r': samples = atoi(optarg); break;
		case 'o': reorders = atoi(optarg); break;
		case 's': G.seed = strtoull(optarg, NULL, 10); break;
		case 'S': skip = atol(optarg); break;
		case 'b': tear = 1; break;
		case 'P': G.put_before_nosync = 1; break;
		case 'F': G.max_failures = atoi(optarg) > 0 ? atoi(optarg) : 1; break;
		case 'v': G.verbose = 1; break;
		default: return usage();
		}
	}
	if (optind != argc || n < 8 || n + 3 > MAX_KEYS)
		return usage();
	setvbuf(stdout, NULL, _IOLBF, 0);

	/* Scratch on tmpfs when there is one: the checks open and write
	 * thousands of shards, and nothing here needs a real disk. */
	snprintf(top, sizeof(top), "%s/sc-crashsim.XXXXXX", base);
	TU_CHECK(mkdtemp(top) != NULL);
	TU_CHECK(realpath(top, tu_dir) != NULL);
	tu_owner = getpid();
	atexit(tu_cleanup);
	TU_CHECK(strlen(tu_dir) < PATH_MAX / 2);
	join(G.rec_dir, tu_dir, "rec");
	join(G.chk_dir, tu_dir, "chk");
	join(G.src_dir, tu_dir, "src");
	TU_CHECK(mkdir(G.rec_dir, 0700) == 0 && mkdir(G.chk_dir, 0700) == 0 &&
		 mkdir(G.src_dir, 0700) == 0);
	join(G.rec_shard, G.rec_dir, "shard");
	join(G.chk_shard, G.chk_dir, "shard");
	G.n_keys = n + 3;
	for (int i = 0; i <= n; i++)
		snprintf(G.keys[i], sizeof(G.keys[i]), "/crashsim/key-%04d", i);
	join(G.keys[n + 1], G.src_dir, "module.lua");
	tu_write_str(G.keys[n + 1], "return 1\n");
	snprintf(G.keys[n + 2], sizeof(G.keys[n + 2]), "/crashsim/big-entry");

	printf("TAP version 13\n1..3\n");
	fsm_init(&G.m, G.rec_dir);
	G.m.skip_sync = skip;
	G.m.tear = tear;
	double t0 = now();
	sc_os_trace = trace;
	workload(n);
	sc_os_trace = NULL;
	double t1 = now();

	size_t writes = 0, syncs = 0, names = 0;
	for (size_t i = 0; i < G.m.n_ops; i++) {
		char buf[256];
		enum fsm_kind kd = G.m.ops[i].kind;
		writes += kd == FSM_WRITE || kd == FSM_TRUNC;
		syncs += kd == FSM_SYNC || kd == FSM_DIRSYNC;
		names += kd == FSM_CREATE || kd == FSM_RENAME || kd == FSM_LINK || kd == FSM_UNLINK;
		if (G.verbose)
			printf("# op %zu: %s\n", i, fsm_describe(&G.m, i, buf, sizeof(buf)));
	}
	char why[512] = "";
	int same = !G.m.error[0] && fsm_compare(&G.m, G.rec_dir, why, sizeof(why)) == 0;
	tap_ok(same, "the recording accounts for every byte the library wrote (%s%s)",
	       G.m.error, why);
	printf("# workload: %d steps, %.2f s; recorded %zu operations: %zu write pieces "
	       "(page-split), %zu syncs, %zu name operations; largest index %llu slots; "
	       "%llu metadata chunk(s) filled\n",
	       G.n_steps, t1 - t0, G.m.n_ops - 2 * (size_t)G.n_steps, writes, syncs, names,
	       (unsigned long long)G.max_slots, (unsigned long long)G.chunks_started);
	if (skip)
		printf("# self-test: sync number %ld left out of the recording (of %ld)\n", skip,
		       G.m.n_syncs);
	if (!same)
		return 1;

	fsm_replay(&G.m, exhaustive, samples, reorders, G.seed, epoch, check, NULL, &fs);
	double t2 = now();
	printf("# %llu cut points; %llu crash states (%llu every pending write, %llu none, "
	       "%llu torn, %llu subsets, %llu reordered), %llu distinct checked, most pending %llu; "
	       "%.1f s\n",
	       (unsigned long long)fs.cuts, (unsigned long long)fs.states,
	       (unsigned long long)fs.full, (unsigned long long)fs.none,
	       (unsigned long long)fs.torn, (unsigned long long)fs.subsets,
	       (unsigned long long)fs.reordered, (unsigned long long)fs.unique,
	       (unsigned long long)fs.max_pending, t2 - t1);
	if (G.m.tear)
		printf("# -b: sc_verify reported a torn meta slot %llu times (not counted)\n",
		       (unsigned long long)G.torn_meta_reports);
	tap_ok(G.failures >= G.max_failures || (fs.cuts == G.m.n_ops + 1 && fs.unique > fs.cuts / 2),
	       "every cut point was tried");
	tap_ok(G.failures == 0, "every crash state opens, verifies and holds every acknowledged put "
				"(%d failing states%s)",
	       G.failures, G.failures >= G.max_failures ? ", stopped early" : "");
	fsm_free(&G.m);
	return G.failures ? 1 : 0;
}
