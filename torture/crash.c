/*
 * crash.c - `sc_torture crash`: writers killed with SIGKILL at random
 * instants, library writers and writers through a scriptcachefs mount of
 * the same shard, and sometimes the daemon itself.
 *
 * Each round starts writers that report on one pipe, one write(2) per
 * line, before and after each call:
 *   "p <key> <value> <kind>"  a put is about to start (kind: n new key,
 *                             u replacement; s: bytes another key holds,
 *                             i: the bytes the key holds already)
 *   "P <key> <value>"         that put was acknowledged (sc_put_ex, or the
 *                             mount's rename returned 0)
 *   "r <key>" / "R <key>"     a remove is about to start / was acknowledged
 *                             (sc_remove, or rmdir of the entry in the mount)
 *   "c" / "C"                 a clear started / was acknowledged
 *   "K" / "k"                 a compaction started / finished
 *   "E ..."                   an unexpected error (fails the round)
 * Rounds of new keys put a key once (its blob made for the key and the
 * round); rounds of replacements (-R, or half the rounds by default) put,
 * replace and remove a few keys over and over, often with bytes another
 * key holds (one stored blob, its reference count going up and down) and
 * in a few size classes (freed extents taken again).  After a random
 * delay every process is SIGKILLed (or the daemon, then them).  The model
 * of each key is its value after the last acknowledged operation, plus
 * what the one operation in flight when its writer died may have left
 * (the new value, or absence for a remove or a clear); then:
 *   - the shard opens read-only and read-write, sc_verify passes (it
 *     checks the blob reference counts and that nothing overlaps);
 *   - every key the model knows holds exactly an allowed value: its
 *     acknowledged value, or what its operation in flight would leave;
 *     both opens see the same, and sc_foreach agrees with the lookups;
 *   - the shard holds no key the model does not know (a removed or
 *     cleared key never comes back) and no blob that is not whole;
 *   - a clear in flight took every key or none;
 * what the read-write pass saw becomes the model.  Then one more library
 * writer puts (and compacts, always after rounds of new keys, every other
 * time after replacements so that free extents carry into the next round)
 * and no file but the shard and its lock may be left in the shard's
 * directory.  A killed daemon's mount must answer ENOTCONN, be removed by
 * `fusermount3 -u` and mount again.
 */
#include <dirent.h>
#include <stddef.h>
#include <sys/vfs.h>

#include "common.h"
#include "format.h" /* core/: the free directory, to count extents taken */
#include "torture.h"

enum mode { M_DURABLE, M_NOSYNC_COMPACT, M_CLEAR, M_MIX, M_MOUNT, M_DAEMON, M_NMODES };
static const char *mode_name[] = {
	"library durable puts + mount writer", "library SC_NOSYNC puts + compactions",
	"library puts + clears", "library puts + compactions + mount writer",
	"mount writer alone", "daemon killed under library and mount writers",
};

/* Shard 0 is the one the daemon mounts.  Library-only rounds of
 * replacements write shard 1, which nothing else maps: the daemon pins
 * the commit it last listed for up to 2 s (docs/FORMAT.md, "Space
 * reuse"), which keeps almost every extent freed on shard 0 from being
 * taken again within the torture's short rounds.  Keys of shard 1 start
 * with "/t/q/". */
static char shard_dir[2][PATH_MAX], shard[2][2 * PATH_MAX + 16];
#define Q_PREFIX "/t/q/"

static int key_shard(const char *key)
{
	return !strncmp(key, Q_PREFIX, strlen(Q_PREFIX));
}

static unsigned run_seed;

/* ---- values ------------------------------------------------------------------
 * A key's value is a number.  Rounds of new keys store the blob made for
 * the key and the round (tu_blob_make(key, round)): its value is the
 * round.  Rounds of replacements store blobs made for the value alone, so
 * that two keys can hold the same bytes: values have VAL_BIT set, and
 * their sizes fall in a few size classes so that a freed extent fits a
 * later blob. */
#define VAL_BIT  0x40000000u /* values stay positive in a 32-bit long */
#define ABSENT   (-1L)
#define BAD      (-2L) /* bytes that are no whole blob of the key */
#define VAL_NAME "/t/value"
#define BUFSZ    16384
#define NLKEYS   16 /* the library writer's keys, kept from round to round */
#define NMKEYS   6  /* the mount writer's keys, new in each round */
#define LKEY_FMT "%s/L%d" /* "/t/k" on shard 0, "/t/q" on shard 1 */
#define MKEY_FMT "/t/r%d/R%d"

static long new_val(int round, int writer, int i)
{
	return (long)(VAL_BIT | ((uint32_t)round & 0xffff) << 14 | (uint32_t)writer << 13 |
		      ((uint32_t)i & 0x1fff));
}

static size_t val_make(unsigned char *buf, long v)
{
	static const size_t base[] = { 40, 200, 760, 2900, 11000 };
	uint32_t h = (uint32_t)v * 2654435761u;
	return tu_blob_make(buf, VAL_NAME, (uint32_t)v, base[(h >> 24) % 5] + (h >> 8) % 4 * 8);
}

/* The value that @p blob holds for @p key, or BAD. */
static long value_of(const char *key, const void *blob, size_t size)
{
	long v = tu_blob_check(blob, size, key);
	if (v >= 0 && !((uint32_t)v & VAL_BIT))
		return v;
	v = tu_blob_check(blob, size, VAL_NAME);
	if (v >= 0 && ((uint32_t)v & VAL_BIT))
		return v;
	return BAD;
}

/* ---- the model ------------------------------------------------------------- */

enum { K_NEW, K_REPLACE, K_SHARED, K_SAME, K_REMOVE, K_N };
static const char *kind_name[K_N] = { "puts of a new key", "replacements",
				      "puts of bytes another key holds",
				      "puts of the bytes the key holds", "removes" };

#define MAXMAYBE 4

struct mkey {
	char key[40];
	long acked;            /* after the last acknowledged operation, or ABSENT */
	long maybe[MAXMAYBE];  /* what an unacknowledged operation may have left */
	int nmaybe;
	long pending;          /* the operation started last (p / r line) */
	int pkind;             /* its K_*, -1 when none is open */
	int px;                /* it was to write its blob into a free extent */
	int inflight;          /* K_* + 1: its writer died in it (this round) */
	int cleared;           /* held a value when a clear in flight died */
	long seen[2];          /* what the read-only and read-write passes saw */
};

static struct mkey *model;
static size_t nmodel, capmodel;
static uint32_t *mindex; /* open addressing: model index + 1, 0 = empty */
static size_t mindex_cap;

static size_t mk_slot(const char *key)
{
	return (size_t)XXH3_64bits(key, strlen(key)) & (mindex_cap - 1);
}

static void mk_reindex(void)
{
	while (mindex_cap < 2 * nmodel + 16)
		mindex_cap = mindex_cap ? mindex_cap * 2 : 4096;
	free(mindex);
	mindex = calloc(mindex_cap, sizeof *mindex);
	TU_CHECK(mindex);
	for (size_t k = 0; k < nmodel; k++) {
		size_t i = mk_slot(model[k].key);
		while (mindex[i])
			i = (i + 1) & (mindex_cap - 1);
		mindex[i] = (uint32_t)k + 1;
	}
}

static struct mkey *mk_find(const char *key)
{
	if (!mindex_cap)
		return NULL;
	for (size_t i = mk_slot(key); mindex[i]; i = (i + 1) & (mindex_cap - 1))
		if (!strcmp(model[mindex[i] - 1].key, key))
			return &model[mindex[i] - 1];
	return NULL;
}

/* The key's model, made (absent) if it has none.  Pointers into the model
 * are valid until the next mk_get() or model_prune(). */
static struct mkey *mk_get(const char *key)
{
	struct mkey *m = mk_find(key);
	if (m)
		return m;
	TU_CHECK(strlen(key) < sizeof m->key);
	if (nmodel == capmodel) {
		capmodel = capmodel ? capmodel * 2 : 4096;
		model = realloc(model, capmodel * sizeof *model);
		TU_CHECK(model);
	}
	m = &model[nmodel++];
	memset(m, 0, sizeof *m);
	snprintf(m->key, sizeof m->key, "%s", key);
	m->acked = ABSENT;
	m->pkind = -1;
	if (2 * nmodel + 16 > mindex_cap) {
		mk_reindex();
	} else {
		size_t i = mk_slot(key);
		while (mindex[i])
			i = (i + 1) & (mindex_cap - 1);
		mindex[i] = (uint32_t)nmodel;
	}
	return m;
}

static int mk_allowed(const struct mkey *m, long v)
{
	if (v == m->acked)
		return 1;
	for (int i = 0; i < m->nmaybe; i++)
		if (m->maybe[i] == v)
			return 1;
	return 0;
}

static void mk_maybe(struct mkey *m, long v)
{
	if (!mk_allowed(m, v)) {
		TU_CHECK(m->nmaybe < MAXMAYBE);
		m->maybe[m->nmaybe++] = v;
	}
}

/* Keys known absent have been checked: forget them (a key the model does
 * not know must be absent). */
static void model_prune(void)
{
	size_t o = 0;
	for (size_t k = 0; k < nmodel; k++)
		if (model[k].acked != ABSENT)
			model[o++] = model[k];
	nmodel = o;
	mk_reindex();
}

/* Values other keys hold, for a writer that wants to share bytes. */
static int value_pool(long *pool, int max, int sh, const char *skip_prefix)
{
	int n = 0;
	for (size_t k = 0; k < nmodel && n < max; k++)
		if (model[k].acked >= 0 && ((uint32_t)model[k].acked & VAL_BIT) &&
		    key_shard(model[k].key) == sh &&
		    strncmp(model[k].key, skip_prefix, strlen(skip_prefix)))
			pool[n++] = model[k].acked;
	return n;
}

/* ---- the shard's free directory ---------------------------------------------
 * Extents taken from the free rings of the file at the path: the heads of
 * its rings summed (a ring that grew starts again at 0, so this is a lower
 * bound), and the file's shard_id.  With @p len, also whether a put of a
 * new blob of @p len bytes would find an extent in its class's ring that a
 * writer may take (no reader pins shard 1; a SC_NOSYNC writer takes only
 * extents freed by a commit on disk).  Read without the writer lock: only
 * meaningful where one writer at a time uses the shard. */
struct peek {
	uint64_t shard_id, taken;
	int ready; /* an extent of the class of len waits */
};

static struct peek peek_shard_len(int sh, size_t len, int nosync)
{
	struct peek pk = { 0, 0, 0 };
	struct sc_disk_header h;
	struct sc_disk_meta m[SC_META_SLOTS], *best = NULL;
	int fd = open(shard[sh], O_RDONLY | O_CLOEXEC), got = 0;
	if (fd < 0)
		return pk;
	if (pread(fd, &h, sizeof h, 0) == (ssize_t)sizeof h) {
		got = 1;
		for (int i = 0; i < SC_META_SLOTS; i++)
			got &= pread(fd, &m[i], sizeof m[i], (off_t)sc_meta_off(i)) ==
			       (ssize_t)sizeof m[i];
	}
	if (got) {
		pk.shard_id = h.shard_id;
		for (int i = 0; i < SC_META_SLOTS; i++)
			if (XXH3_64bits(&m[i], offsetof(struct sc_disk_meta, checksum)) ==
				    m[i].checksum &&
			    (!best || m[i].txnid > best->txnid))
				best = &m[i];
	}
	if (best && best->free_dir) {
		struct sc_disk_fdir d[SC_NCLASSES];
		if (pread(fd, d, sizeof d, (off_t)best->free_dir) == (ssize_t)sizeof d) {
			/* the newest commit's redo records may not be applied yet */
			for (uint64_t w = 0; w < best->wredo_n && w < SC_WREDO_MAX; w++) {
				uint64_t at = best->wredo[w].at;
				if (at >= best->free_dir && at < best->free_dir + sizeof d &&
				    (at - best->free_dir) % sizeof *d == 0)
					memcpy(&d[(at - best->free_dir) / sizeof *d], best->wredo[w].v,
					       sizeof *d);
			}
			for (unsigned k = 0; k < SC_NCLASSES; k++)
				pk.taken += d[k].head;
			int k = len ? sc_class_of(len) : -1;
			struct sc_disk_free f;
			if (k >= 0 && d[k].head < d[k].tail && d[k].cap &&
			    pread(fd, &f, sizeof f,
				  (off_t)(d[k].ring + (d[k].head % d[k].cap) * sizeof f)) ==
				    (ssize_t)sizeof f)
				pk.ready = !nosync || f.freed_txn <= best->durable_txn;
		}
	}
	close(fd);
	return pk;
}

static struct peek peek_shard(int sh)
{
	return peek_shard_len(sh, 0, 0);
}

/* ---- writers (children) ---------------------------------------------------- */

/* The next operation of a writer of replacements on its keys cur[0..n):
 * remove a key it holds, or put a new value, a value another key holds
 * (ours or one of @p pool), or the value the key holds already. */
struct rstep {
	int d;        /* the key */
	int remove;
	long v;       /* the value to put */
	char kind[3]; /* n|u, then s|i */
};

static struct rstep replace_step(const long *cur, int n, const long *pool, int npool, int round,
				 int writer, int i, int can_remove, unsigned *seed)
{
	struct rstep s = { .d = rand_r(seed) % n };
	int r = rand_r(seed) % 100;
	long have = cur[s.d];
	if (r < 25 && have != ABSENT && can_remove) {
		s.remove = 1;
		return s;
	}
	s.kind[0] = have == ABSENT ? 'n' : 'u';
	if (r < 55) {
		long cand[NLKEYS + 32];
		int nc = 0;
		for (int e = 0; e < n; e++)
			if (e != s.d && cur[e] != ABSENT && cur[e] != have)
				cand[nc++] = cur[e];
		for (int e = 0; e < npool && nc < (int)(sizeof cand / sizeof *cand); e++)
			if (pool[e] != have)
				cand[nc++] = pool[e];
		if (nc) {
			s.v = cand[rand_r(seed) % nc];
			s.kind[1] = 's';
			return s;
		}
	} else if (r < 60 && have != ABSENT) {
		s.v = have;
		s.kind[1] = 'i';
		return s;
	}
	s.v = new_val(round, writer, i);
	return s;
}

static int lib_writer(int ackfd, int round, enum mode mode, int replace, int sh)
{
	sc_cache *c = NULL, *cd = NULL;
	const char *kdir = sh ? "/t/q" : "/t/k";
	int rc = sc_open(&c, shard[sh], TT_TAG, mode == M_NOSYNC_COMPACT ? SC_NOSYNC : 0);
	/* Replacements by a SC_NOSYNC writer: one operation in four through
	 * a durable handle, whose commits let the no-sync ones take the
	 * extents freed before them (and make those sync once, finding 11) */
	if (rc == 0 && replace && mode == M_NOSYNC_COMPACT)
		rc = sc_open(&cd, shard[sh], TT_TAG, 0);
	if (rc) {
		tt_ack(ackfd, "E lib open %s\n", sc_strerror(rc));
		return 11;
	}
	unsigned char *buf = malloc(BUFSZ);
	char key[64];
	sc_put_opts o = { .no_source = 1 };
	long cur[NLKEYS], pool[32];
	int npool = 0;
	unsigned seed = run_seed ^ ((unsigned)round * 2654435761u);
	if (replace) {
		for (int d = 0; d < NLKEYS; d++) {
			snprintf(key, sizeof key, LKEY_FMT, kdir, d);
			const struct mkey *m = mk_find(key);
			cur[d] = m ? m->acked : ABSENT;
		}
		npool = value_pool(pool, 32, sh, kdir);
	}
	/* new keys: a compaction every 8 puts, a clear every 5.  With
	 * replacements, in one round in two, after one operation in 10 and
	 * one in 6 at random (durable operations are slow: a round makes a
	 * few of them); the other rounds keep their free extents. */
	int maint = !replace || rand_r(&seed) % 2;
	for (int i = 0;; i++) {
		if (replace) {
			struct rstep s = replace_step(cur, NLKEYS, pool, npool, round, 0, i, 1, &seed);
			sc_cache *h = cd && rand_r(&seed) % 4 == 0 ? cd : c;
			int nosync = h == c && mode == M_NOSYNC_COMPACT;
			snprintf(key, sizeof key, LKEY_FMT, kdir, s.d);
			if (s.remove) {
				tt_ack(ackfd, "r %s\n", key);
				if ((rc = sc_remove(h, key)) != 0) {
					tt_ack(ackfd, "E lib remove %s: %s\n", key, sc_strerror(rc));
					return 16;
				}
				tt_ack(ackfd, "R %s\n", key);
				cur[s.d] = ABSENT;
			} else {
				size_t n = val_make(buf, s.v);
				/* on shard 1 (this writer alone): will the blob go
				 * into a free extent, and did it? */
				struct peek before = { 0 }, after;
				int measure = sh && !s.kind[1];
				if (measure) {
					before = peek_shard_len(1, n, nosync);
					if (before.ready)
						s.kind[1] = 'x';
				}
				tt_ack(ackfd, "p %s %ld %s\n", key, s.v, s.kind);
				if ((rc = sc_put_ex(h, key, buf, n, &o)) != 0) {
					tt_ack(ackfd, "E lib put %s\n", sc_strerror(rc));
					return 12;
				}
				int took = 0;
				if (measure) {
					after = peek_shard(1);
					took = after.shard_id == before.shard_id && after.taken > before.taken;
				}
				tt_ack(ackfd, "P %s %ld%s\n", key, s.v, took ? " x" : "");
				cur[s.d] = s.v;
			}
		} else {
			snprintf(key, sizeof key, "/t/r%d/L%d", round, i);
			size_t n = tu_blob_make(buf, key, (uint32_t)round, (size_t)(i * 131) % 4000);
			tt_ack(ackfd, "p %s %d n\n", key, round);
			if ((rc = sc_put_ex(c, key, buf, n, &o)) != 0) {
				tt_ack(ackfd, "E lib put %s\n", sc_strerror(rc));
				return 12;
			}
			tt_ack(ackfd, "P %s %d\n", key, round);
		}
		if ((mode == M_NOSYNC_COMPACT || mode == M_MIX) && maint &&
		    (replace ? rand_r(&seed) % 10 == 0 : i % 8 == 7)) {
			tt_ack(ackfd, "K\n");
			if ((rc = sc_compact(c)) != 0) {
				tt_ack(ackfd, "E lib compact %s\n", sc_strerror(rc));
				return 13;
			}
			tt_ack(ackfd, "k\n");
		}
		if (mode == M_CLEAR && maint && (replace ? rand_r(&seed) % 6 == 0 : i % 5 == 4)) {
			tt_ack(ackfd, "c\n");
			if ((rc = sc_clear(c)) != 0) {
				tt_ack(ackfd, "E lib clear %s\n", sc_strerror(rc));
				return 14;
			}
			tt_ack(ackfd, "C\n");
			for (int d = 0; d < NLKEYS; d++)
				cur[d] = ABSENT;
		}
	}
}

/* The daemon's death shows as ENOTCONN (or ECONNABORTED for a request in
 * flight); anything else is a failure. */
static int dead_mount(enum mode mode, int e)
{
	struct stat st;

	if (mode != M_DAEMON)
		return 0;
	if (e == ENOTCONN || e == ECONNABORTED)
		return 1;
	/* A close that flushes written pages after the daemon died reports
	 * EIO: only a mount that is gone (ENOTCONN) excuses it. */
	return e == EIO && stat(tt_mnt, &st) != 0 && (errno == ENOTCONN || errno == ECONNABORTED);
}

static int mount_writer(int ackfd, int round, enum mode mode, int replace)
{
	unsigned char *buf = malloc(BUFSZ);
	/* No replacement through the mount when the daemon is killed: a
	 * SIGKILL of the daemon while its watcher invalidates the old blob of
	 * an entry that a client is renaming a new blob into leaves the mount
	 * hung for good (docs/RELIABILITY.md, finding 16, open).  The library
	 * writer still replaces; the mount writer puts new keys, as in the
	 * rounds without replacements. */
	if (mode == M_DAEMON)
		replace = 0;
	char key[64];
	long cur[NMKEYS], pool[32];
	int npool = replace ? value_pool(pool, 32, 0, "/t/r") : 0;
	unsigned seed = run_seed ^ ((unsigned)round * 2246822519u) ^ 0x5bd1e995u;
	for (int d = 0; d < NMKEYS; d++)
		cur[d] = ABSENT;
	for (int i = 0;; i++) {
		struct rstep s = { 0 };
		size_t n;
		if (replace) {
			/* no rmdir when the daemon is killed: a SIGKILL of the
			 * daemon while an rmdir at the top of the mount waits for
			 * it can leave the daemon a zombie stuck in
			 * fuse_reverse_inval_entry and the mount hung for good
			 * (an open fs finding; the round fails as hung) */
			s = replace_step(cur, NMKEYS, pool, npool, round, 1, i, mode != M_DAEMON,
					 &seed);
			snprintf(key, sizeof key, MKEY_FMT, round, s.d);
			n = s.remove ? 0 : val_make(buf, s.v);
		} else {
			snprintf(key, sizeof key, "/t/r%d/M%d", round, i);
			s.v = round;
			s.kind[0] = 'n';
			n = tu_blob_make(buf, key, (uint32_t)round, (size_t)(i * 557) % 6000);
		}
		if (s.remove) {
			/* rmdir of the entry evicts it (sc_remove) */
			char name[512], dir[PATH_MAX + 520];
			tt_encode(name, sizeof name, key);
			snprintf(dir, sizeof dir, "%s/%s", tt_mnt, name);
			tt_ack(ackfd, "r %s\n", key);
			if (rmdir(dir) != 0) {
				int e = errno;
				if (dead_mount(mode, e))
					return 0;
				tt_ack(ackfd, "E mount rmdir %s: %s\n", key, strerror(e));
				return 16;
			}
			tt_ack(ackfd, "R %s\n", key);
			cur[s.d] = ABSENT;
			continue;
		}
		tt_ack(ackfd, "p %s %ld %s\n", key, s.v, s.kind);
		int e = tt_mount_put(key, buf, n, (unsigned)i);
		if (e) {
			if (dead_mount(mode, e))
				return 0;
			tt_ack(ackfd, "E mount put %s: %s\n", key, strerror(e));
			return 15;
		}
		tt_ack(ackfd, "P %s %ld\n", key, s.v);
		if (replace)
			cur[s.d] = s.v;
	}
}

/* Reads through the mount while the daemon is killed: the last round's
 * entry must read whole until the mount dies (ENOTCONN / ECONNABORTED);
 * a read served from the page cache after the death is fine. */
static int mount_reader(int ackfd, int round)
{
	char key[64], name[128], path[PATH_MAX + 160];
	unsigned char buf[512];
	double first_enoent = 0;
	snprintf(key, sizeof key, "/t/r%d/after", round - 1);
	tt_encode(name, sizeof name, key);
	snprintf(path, sizeof path, "%s/%s/blob", tt_mnt, name);
	for (;;) {
		/* a warm blob is read from the page cache with no request at
		 * all; statfs always reaches the daemon */
		struct statfs sf;
		if (statfs(tt_mnt, &sf) != 0)
			return errno == ENOTCONN || errno == ECONNABORTED ? 0 : 32;
		int fd = open(path, O_RDONLY | O_CLOEXEC);
		ssize_t n = fd < 0 ? -1 : read(fd, buf, sizeof buf);
		int e = errno;
		if (fd >= 0)
			close(fd);
		if (n < 0 && (e == ENOTCONN || e == ECONNABORTED))
			return 0;
		/* a commit by another process shows in the mount within the
		 * watcher's resync (docs/FS.md, "Coherence"), not at once */
		if (n < 0 && e == ENOENT && round > 0) {
			if (!first_enoent)
				first_enoent = tu_now();
			if (tu_now() - first_enoent < 1.0)
				continue;
		}
		if (n < 0 && round > 0) {
			/* the entry exists: any other error is wrong */
			tt_ack(ackfd, "E mount reader: %s: %s\n", fd < 0 ? "open" : "read",
			       strerror(e));
			return 30;
		}
		if (n >= 0 && round > 0 && tu_blob_check(buf, (size_t)n, key) != round - 1)
			return 31;
	}
}

/* ---- the log ------------------------------------------------------------------ */

struct logstat {
	size_t acked, removed, by_kind[K_N];
	char last, err[160];
	int in_compact, in_clear;
};

static int kind_of(const char *k)
{
	return k[1] == 's' ? K_SHARED : k[1] == 'i' ? K_SAME : k[0] == 'u' ? K_REPLACE : K_NEW;
}

/* Puts of a new blob on shard 1 that found a free extent of its class
 * waiting ('x' in the p line) and that took one ('x' in the P line). */
static long x_acked, x_took, x_unpredicted, x_inflight, x_landed, x_kept;

/* @p sh: the shard of the round's library writer (the one it clears). */
static void apply_log(char *log, size_t len, int sh, struct logstat *ls)
{
	char *p = log, *end = log + len;
	char key[64], kind[8];
	long v;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		*nl = 0;
		struct mkey *m;
		switch (p[0]) {
		case 'p':
			TU_CHECK(sscanf(p + 2, "%63s %ld %7s", key, &v, kind) == 3);
			m = mk_get(key);
			m->pending = v;
			m->pkind = kind_of(kind);
			m->px = kind[1] == 'x';
			break;
		case 'r':
			TU_CHECK(sscanf(p + 2, "%63s", key) == 1);
			m = mk_get(key);
			m->pending = ABSENT;
			m->pkind = K_REMOVE;
			m->px = 0;
			break;
		case 'P':
		case 'R':
			TU_CHECK(sscanf(p + 2, p[0] == 'P' ? "%63s %ld" : "%63s", key, &v) ==
				 (p[0] == 'P' ? 2 : 1));
			m = mk_get(key);
			/* a writer acknowledges what it started last */
			TU_CHECK(m->pkind >= 0 && (p[0] == 'R') == (m->pkind == K_REMOVE) &&
				 (p[0] == 'R' || m->pending == v));
			m->acked = m->pending;
			m->nmaybe = 0;
			ls->by_kind[m->pkind]++;
			if (p[0] == 'P') {
				int took = strstr(p + 2, " x") != NULL;
				x_acked += m->px;
				x_took += m->px && took;
				x_unpredicted += !m->px && took;
			}
			m->px = 0;
			m->pkind = -1;
			if (p[0] == 'P')
				ls->acked++;
			else
				ls->removed++;
			break;
		case 'c': ls->in_clear = 1; break;
		case 'C':
			for (size_t k = 0; k < nmodel; k++) {
				if (key_shard(model[k].key) != sh)
					continue;
				model[k].acked = ABSENT;
				model[k].nmaybe = 0;
			}
			ls->in_clear = 0;
			break;
		case 'K': ls->in_compact = 1; break;
		case 'k': ls->in_compact = 0; break;
		case 'E': if (!ls->err[0]) snprintf(ls->err, sizeof ls->err, "%s", p); break;
		}
		if (p[0] != 'E')
			ls->last = p[0];
		p = nl + 1;
	}
}

static long inflight[K_N], landed[K_N], kept[K_N];
static long clears_inflight, clears_landed;
static int clear_open; /* this round's writer died inside a clear */

/* The writers are dead: what their last operations may have left. */
static void model_killed(const struct logstat *ls, int sh)
{
	clear_open = ls->in_clear;
	clears_inflight += clear_open;
	for (size_t k = 0; k < nmodel; k++) {
		struct mkey *m = &model[k];
		m->inflight = 0;
		m->cleared = 0;
		if (m->pkind >= 0) {
			inflight[m->pkind]++;
			m->inflight = m->pkind + 1;
			x_inflight += m->px;
			mk_maybe(m, m->pending);
			m->pkind = -1;
		}
		if (clear_open && m->acked != ABSENT && key_shard(m->key) == sh) {
			m->cleared = 1;
			mk_maybe(m, ABSENT);
		}
	}
}

/* ---- checks ------------------------------------------------------------------ */

static int verify_problems;

static void verify_cb(void *arg, uint64_t off, const char *problem)
{
	(void)arg;
	if (verify_problems++ < 5)
		tap_diag("  verify: at %llu: %s", (unsigned long long)off, problem);
}

static const char *val_str(long v, char *buf, size_t len)
{
	if (v == ABSENT)
		snprintf(buf, len, "absent");
	else if (v == BAD)
		snprintf(buf, len, "not a whole blob");
	else
		snprintf(buf, len, "%#lx", v);
	return buf;
}

static void diag_key(const char *label, const struct mkey *m, long got, const char *what)
{
	char a[32], g[32], mb[4 * 20 + 8] = "";
	for (int i = 0; i < m->nmaybe; i++) {
		size_t l = strlen(mb);
		snprintf(mb + l, sizeof mb - l, " or %s", val_str(m->maybe[i], a, sizeof a));
	}
	tap_diag("  %s: %s: %s holds %s; allowed: %s%s", label, what, m->key,
		 val_str(got, g, sizeof g), val_str(m->acked, a, sizeof a), mb);
}

struct fe {
	int sh, pass, entries, unknown, bad, disagree;
	const char *label;
	int want_ids;
	uint64_t (*ids)[2];
	size_t nids, capids;
};

static int foreach_cb(const sc_entry_info *e, void *arg)
{
	struct fe *f = arg;
	char key[128];
	f->entries++;
	if (e->key_len >= sizeof key) {
		f->unknown++;
		return 0;
	}
	memcpy(key, e->key, e->key_len);
	key[e->key_len] = 0;
	struct mkey *m = mk_find(key);
	long v = value_of(key, e->blob, e->blob_size);
	if (!m || key_shard(key) != f->sh) {
		if (f->unknown++ < 5)
			tap_diag("  %s: the shard holds %s, which no operation left there "
				 "(a removed or cleared key back?)", f->label, key);
	} else if (v == BAD) {
		if (f->bad++ < 5)
			tap_diag("  %s: entry %s: not a whole blob of its key", f->label, key);
	} else if (v != m->seen[f->pass]) {
		if (f->disagree++ < 5)
			tap_diag("  %s: sc_foreach gives %s %#lx, sc_lookup %ld", f->label, key, v,
				 m->seen[f->pass]);
	}
	if (f->want_ids) {
		if (f->nids == f->capids) {
			f->capids = f->capids ? f->capids * 2 : 1024;
			f->ids = realloc(f->ids, f->capids * sizeof *f->ids);
			TU_CHECK(f->ids);
		}
		f->ids[f->nids][0] = e->blob_id[0];
		f->ids[f->nids][1] = e->blob_id[1];
		f->nids++;
	}
	return 0;
}

static int by_id(const void *x, const void *y)
{
	const uint64_t *a = x, *b = y;
	return a[0] != b[0] ? (a[0] < b[0] ? -1 : 1) : a[1] != b[1] ? (a[1] < b[1] ? -1 : 1) : 0;
}

static long shared_entries, shared_rounds, max_refs;

/* The shard against the model.  Pass 0 opens it read-only, pass 1
 * read-write (the next writer's recovery), which must see the same and
 * then resolves the model to what it saw. */
static int check_shard(int sh, int pass, const char *label)
{
	int problems = 0, lost = 0, back = 0, wrong = 0, bad = 0, disagree = 0, present = 0;
	int cleared = 0, kept_all = 0;
	sc_cache *c = NULL;
	int rc = sc_open(&c, shard[sh], TT_TAG, pass == 0 ? SC_RDONLY : 0);
	if (rc) {
		tap_diag("  %s: sc_open: %s", label, sc_strerror(rc));
		return 1;
	}
	verify_problems = 0;
	if ((rc = sc_verify(c, verify_cb, NULL, NULL)) != 0) {
		tap_diag("  %s: sc_verify: %s", label, sc_strerror(rc));
		problems++;
	}
	for (size_t k = 0; k < nmodel; k++) {
		struct mkey *m = &model[k];
		sc_entry_info e;
		long got;
		if (key_shard(m->key) != sh)
			continue;
		rc = sc_lookup(c, m->key, &e);
		if (rc == 0) {
			got = value_of(m->key, e.blob, e.blob_size);
		} else if (rc == SC_ENOTFOUND) {
			got = ABSENT;
		} else {
			if (problems++ < 5)
				tap_diag("  %s: lookup %s: %s", label, m->key, sc_strerror(rc));
			got = BAD;
		}
		m->seen[pass] = got;
		if (got != ABSENT)
			present++;
		if (got == BAD) {
			if (rc == 0 && bad++ < 5)
				diag_key(label, m, got, "torn");
		} else if (!mk_allowed(m, got)) {
			if (got == ABSENT) {
				if (lost++ < 5)
					diag_key(label, m, got, "acknowledged value lost");
			} else if (m->acked == ABSENT && m->nmaybe == 0) {
				if (back++ < 5)
					diag_key(label, m, got, "removed key came back");
			} else if (wrong++ < 5) {
				diag_key(label, m, got, "wrong value");
			}
		}
		if (pass == 1 && got != m->seen[0]) {
			if (disagree++ < 5)
				tap_diag("  %s: %s: read-only open saw %ld, read-write %ld", label,
					 m->key, m->seen[0], got);
		}
		if (m->cleared) {
			if (got == ABSENT)
				cleared++;
			else
				kept_all++;
		}
	}
	if (cleared && kept_all) {
		tap_diag("  %s: a clear in flight took %d keys and left %d", label, cleared,
			 kept_all);
		problems++;
	}
	struct fe f = { .sh = sh, .pass = pass, .label = label };
	f.want_ids = pass == 1;
	if ((rc = sc_foreach(c, foreach_cb, &f)) != 0) {
		tap_diag("  %s: sc_foreach: %s", label, sc_strerror(rc));
		problems++;
	}
	if (f.entries != present) {
		tap_diag("  %s: sc_foreach lists %d entries, lookups found %d", label, f.entries,
			 present);
		problems++;
	}
	if (pass == 1 && f.nids) {
		/* entries on one stored blob (the same bytes) */
		qsort(f.ids, f.nids, sizeof *f.ids, by_id);
		long sh = 0;
		for (size_t i = 0, j; i < f.nids; i = j) {
			for (j = i + 1; j < f.nids && !by_id(f.ids[i], f.ids[j]); j++)
				;
			if (j - i > 1)
				sh += (long)(j - i);
			if ((long)(j - i) > max_refs)
				max_refs = (long)(j - i);
		}
		shared_entries += sh;
		shared_rounds += sh > 0;
	}
	free(f.ids);
	sc_close(c);
	if (wrong)
		tap_diag("  %s: %d wrong values", label, wrong);
	if (pass == 1) {
		for (size_t k = 0; k < nmodel; k++) {
			struct mkey *m = &model[k];
			if (key_shard(m->key) != sh)
				continue;
			if (m->inflight && m->pending != m->acked) {
				if (m->seen[1] == m->pending) {
					landed[m->inflight - 1]++;
					x_landed += m->px;
				} else if (m->seen[1] == m->acked) {
					kept[m->inflight - 1]++;
					x_kept += m->px;
				}
			}
			if (m->seen[1] != BAD)
				m->acked = m->seen[1];
			m->nmaybe = 0;
			m->inflight = 0;
			m->px = 0;
		}
		if (clear_open && cleared)
			clears_landed++;
	}
	return problems + lost + back + wrong + bad + disagree + f.unknown + f.bad + f.disagree;
}

static int stray_files(int sh)
{
	DIR *d = opendir(shard_dir[sh]);
	TU_CHECK(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d))) {
		const char *s = de->d_name;
		if (!strcmp(s, ".") || !strcmp(s, "..") || !strcmp(s, "s.shard") ||
		    !strcmp(s, "s.shard.lock"))
			continue;
		tap_diag("  stray file: %s/%s", sh ? "shard1" : "shard", s);
		n++;
	}
	closedir(d);
	return n;
}

/* ---- rounds ------------------------------------------------------------------ */

struct buf {
	char *p;
	size_t len, cap;
};

static void drain(int fd, struct buf *b, int until_eof)
{
	for (;;) {
		if (b->cap - b->len < 4096) {
			b->cap = b->cap ? b->cap * 2 : 65536;
			b->p = realloc(b->p, b->cap);
			TU_CHECK(b->p);
		}
		ssize_t r = read(fd, b->p + b->len, b->cap - b->len);
		if (r > 0) {
			b->len += (size_t)r;
			continue;
		}
		if (r == 0)
			return;
		if (errno == EINTR)
			continue;
		TU_CHECK(errno == EAGAIN);
		if (!until_eof)
			return;
		struct pollfd pf = { fd, POLLIN, 0 };
		poll(&pf, 1, 100);
	}
}

/* Wait @p us microseconds while reading acknowledgements. */
static void sleep_draining(int fd, struct buf *b, unsigned us)
{
	double end = tu_now() + us / 1e6;
	for (;;) {
		drain(fd, b, 0);
		double left = end - tu_now();
		if (left <= 0)
			return;
		struct pollfd pf = { fd, POLLIN, 0 };
		poll(&pf, 1, (int)(left * 1000) + 1 > 5 ? 5 : (int)(left * 1000) + 1);
	}
}

struct writer_arg {
	int ackfd, rdfd, round;
	enum mode mode;
	int mount; /* 0 library writer, 1 mount writer, 2 mount reader */
	int replace;
	int sh;    /* the library writer's shard */
};

static int writer_main(void *p)
{
	struct writer_arg *a = p;
	close(a->rdfd);
	if (a->mount == 2)
		return mount_reader(a->ackfd, a->round);
	return a->mount ? mount_writer(a->ackfd, a->round, a->mode, a->replace)
			: lib_writer(a->ackfd, a->round, a->mode, a->replace, a->sh);
}

/* A killed process: was it still running when the signal came? */
static int killed(pid_t pid, long *kills)
{
	int alive = kill(pid, 0) == 0;
	kill(pid, SIGKILL);
	int st = tu_wait(pid);
	if (alive && st == 128 + SIGKILL)
		++*kills;
	return st;
}

int tt_crash(const struct tt_opts *o)
{
	tu_setup("torture-crash");
	tt_guard();
	tt_fs_prog = o->fs_prog;
	for (int sh = 0; sh < 2; sh++) {
		snprintf(shard_dir[sh], sizeof shard_dir[sh], "%s", tu_path(sh ? "shard1" : "shard"));
		snprintf(shard[sh], sizeof shard[sh], "%s/s.shard", shard_dir[sh]);
		TU_CHECK(mkdir(shard_dir[sh], 0700) == 0);
	}
	snprintf(tt_mnt, sizeof tt_mnt, "%s", tu_path("mnt"));
	TU_CHECK(mkdir(tt_mnt, 0755) == 0);
	srand(o->seed);
	run_seed = o->seed;
	static const char *keys_name[] = { "new keys and replacements", "replacements",
					   "new keys" };
	tap_diag("crash: seed %u, %ld kills wanted, %s (sc_torture crash -s %u -n %ld%s)",
		 o->seed, o->kills, keys_name[o->keys], o->seed, o->kills,
		 o->keys == 1 ? " -R" : o->keys == 2 ? " -N" : "");

	/* the shard exists before the daemon, which would otherwise make it */
	for (int sh = 0; sh < 2; sh++) {
		sc_cache *c0 = NULL;
		TU_CHECK(sc_open(&c0, shard[sh], TT_TAG, 0) == 0);
		sc_close(c0);
	}
	if (!tap_ok(tt_fs_start(shard[0]) == 0, "scriptcachefs mounts the shard"))
		return tap_done();

	long kills = 0, lib_kills = 0, mount_kills = 0, daemon_kills = 0;
	long in_compact = 0, in_clear = 0, rounds_by_mode[M_NMODES] = { 0 };
	long replace_rounds = 0, rounds_q = 0, extents_taken[2] = { 0 }, rounds_taking[2] = { 0 };
	size_t total_acked = 0, total_removed = 0, by_kind[K_N] = { 0 };
	struct peek base[2] = { peek_shard(0), peek_shard(1) };
	double t_start = tu_now();
	int all_ok = 1;
	for (int round = 0; kills < o->kills; round++) {
		/* mostly library rounds (cheap), a third with the mount, one
		 * in eight kills the daemon */
		static const enum mode pick[] = { M_DURABLE, M_NOSYNC_COMPACT, M_CLEAR, M_MIX,
						  M_NOSYNC_COMPACT, M_CLEAR, M_MOUNT, M_DAEMON };
		enum mode mode = pick[rand() % 8];
		int replace = o->keys == 1 || (o->keys == 0 && rand() % 2);
		rounds_by_mode[mode]++;
		replace_rounds += replace;
		int use_lib = mode != M_MOUNT, use_mount = mode == M_DURABLE || mode == M_MIX ||
							   mode == M_MOUNT || mode == M_DAEMON;
		int sh = replace && !use_mount; /* the library writer's shard */
		rounds_q += sh;
		unsigned delay = (unsigned)rand() % 20000 + (use_mount || mode == M_DURABLE ? 5000 : 0);
		if (use_mount)
			delay += (unsigned)rand() % 30000;
		if (replace) /* a writer needs a few puts before it replaces */
			delay += (unsigned)rand() % 40000;

		int pfd[2];
		TU_CHECK(pipe2(pfd, O_CLOEXEC) == 0);
		TU_CHECK(fcntl(pfd[0], F_SETFL, O_NONBLOCK) == 0);
		struct writer_arg la = { pfd[1], pfd[0], round, mode, 0, replace, sh };
		struct writer_arg ma = { pfd[1], pfd[0], round, mode, 1, replace, 0 };
		pid_t lp = use_lib ? tu_spawn(writer_main, &la) : 0;
		pid_t mp = use_mount ? tu_spawn(writer_main, &ma) : 0;
		struct writer_arg ra = { pfd[1], pfd[0], round, mode, 2, replace, 0 };
		pid_t rp = mode == M_DAEMON ? tu_spawn(writer_main, &ra) : 0;
		close(pfd[1]);
		struct buf log = { 0 };
		sleep_draining(pfd[0], &log, delay);

		int problems = 0;
		if (mode == M_DAEMON) {
			int alive = kill(tt_fs_pid, 0) == 0;
			kill(tt_fs_pid, SIGKILL);
			int st = tt_fs_reap();
			if (alive && st == 128 + SIGKILL)
				kills++, daemon_kills++;
			if (st == -1) {
				/* its clients can never finish: give up on them */
				tap_ok(0, "round %d: the killed daemon never exited (hung mount)", round);
				tt_unmount();
				return tap_done();
			}
			/* the writers go on a moment against the dead mount */
			sleep_draining(pfd[0], &log, (unsigned)rand() % 3000);
		}
		if (lp) {
			int st = killed(lp, &kills);
			lib_kills += st == 128 + SIGKILL;
			if (st != 128 + SIGKILL) {
				tap_diag("  library writer ended by itself: status %d", st);
				problems++;
			}
		}
		if (mp) {
			long before = kills;
			int st = killed(mp, &kills);
			mount_kills += kills - before;
			if (st != 128 + SIGKILL && !(mode == M_DAEMON && st == 0)) {
				tap_diag("  mount writer ended by itself: status %d", st);
				problems++;
			}
		}
		if (rp) {
			/* it stops by itself once the mount is dead */
			int st = 0;
			for (int i = 0; i < 500 && waitpid(rp, &st, WNOHANG) == 0; i++)
				usleep(10000);
			if (kill(rp, 0) == 0) {
				kill(rp, SIGKILL);
				waitpid(rp, &st, 0);
				tap_diag("  mount reader did not see the mount die");
				problems++;
			} else if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
				tap_diag("  mount reader failed: status %d", st);
				problems++;
			}
		}
		drain(pfd[0], &log, 1);
		close(pfd[0]);
		struct logstat ls = { 0 };
		apply_log(log.p, log.len, sh, &ls);
		free(log.p);
		model_killed(&ls, sh);
		total_acked += ls.acked;
		total_removed += ls.removed;
		for (int k = 0; k < K_N; k++)
			by_kind[k] += ls.by_kind[k];
		in_compact += ls.in_compact;
		in_clear += ls.in_clear;
		if (ls.err[0]) {
			tap_diag("  a writer logged an error: %s", ls.err);
			problems++;
		}
		/* extents taken from the free rings since the last round */
		struct peek pk = peek_shard(sh);
		long taken = (long)(pk.shard_id == base[sh].shard_id && pk.taken >= base[sh].taken
					    ? pk.taken - base[sh].taken : pk.taken);
		extents_taken[sh] += taken;
		rounds_taking[sh] += taken > 0;

		if (mode == M_DAEMON) {
			/* the dead mount: ENOTCONN, then the one command cleans it */
			/* statfs always asks the daemon (a stat may be answered
			 * from the kernel's attribute cache) */
			struct statfs sf;
			errno = 0;
			if (!(statfs(tt_mnt, &sf) != 0 && errno == ENOTCONN)) {
				tap_diag("  dead mount: statfs gave errno %d, not ENOTCONN", errno);
				problems++;
			}
			char *u[] = { "fusermount3", "-u", tt_mnt, NULL };
			if (tt_run(u) != 0 || tt_is_mounted(tt_mnt)) {
				tap_diag("  fusermount3 -u of the dead mount failed");
				problems++;
				tt_unmount();
			}
		}

		problems += check_shard(0, 0, "read-only");
		problems += check_shard(0, 1, "read-write");
		if (sh) {
			problems += check_shard(1, 0, "shard 1 read-only");
			problems += check_shard(1, 1, "shard 1 read-write");
		}
		model_prune();

		/* one more library writer: put and compact (after replacements,
		 * every other time, and on shard 1 one time in four: free
		 * extents then carry into the next round); then only the shard
		 * and its lock may be left */
		for (int s = 0; s <= sh; s++) {
			sc_cache *c = NULL;
			char key[64];
			unsigned char b[256];
			sc_put_opts po = { .no_source = 1 };
			if (s)
				snprintf(key, sizeof key, Q_PREFIX "after");
			else
				snprintf(key, sizeof key, "/t/r%d/after", round);
			int rc = sc_open(&c, shard[s], TT_TAG, 0);
			if (rc == 0)
				rc = sc_put_ex(c, key, b, tu_blob_make(b, key, (uint32_t)round, 40), &po);
			if (rc == 0 && (!replace || rand() % (s ? 4 : 2) == 0))
				rc = sc_compact(c);
			sc_close(c);
			if (rc) {
				tap_diag("  put+compact after the kill: %s", sc_strerror(rc));
				problems++;
			} else {
				mk_get(key)->acked = round;
			}
			base[s] = peek_shard(s);
			problems += stray_files(s);
		}

		if (mode == M_DAEMON) {
			if (tt_fs_start(shard[0]) != 0) {
				tap_diag("  scriptcachefs did not mount again");
				problems++;
			}
		} else if (use_mount && (kill(tt_fs_pid, 0) != 0 || !tt_is_mounted(tt_mnt))) {
			tap_diag("  the daemon died without being killed");
			problems++;
		}
		tap_ok(problems == 0, "round %d, %s, %s, killed after %u us (last event '%c'): "
		       "%zu puts and %zu removes acknowledged, %ld extents taken again; "
		       "shard sound, nothing lost or resurrected",
		       round, mode_name[mode],
		       !replace ? "new keys" : sh ? "replacements on shard 1" : "replacements", delay,
		       ls.last ? ls.last : '-', ls.acked, ls.removed, taken);
		all_ok &= problems == 0;
		if (problems && !o->keep_going)
			break;
		if (!tt_fs_pid)
			break; /* no mount to go on with */
	}
	double secs = tu_now() - t_start;
	tap_diag("crash: %ld kills (%ld library writers, %ld mount writers, %ld daemons) in %.1f s",
		 kills, lib_kills, mount_kills, daemon_kills, secs);
	tap_diag("crash: %zu puts and %zu removes acknowledged; %ld kills inside a compaction, "
		 "%ld inside a clear (%ld of them took the keys)",
		 total_acked, total_removed, in_compact, in_clear, clears_landed);
	tap_diag("crash: acknowledged: %zu %s, %zu %s, %zu %s, %zu %s, %zu %s", by_kind[0],
		 kind_name[0], by_kind[1], kind_name[1], by_kind[2], kind_name[2], by_kind[3],
		 kind_name[3], by_kind[4], kind_name[4]);
	for (int k = 0; k < K_N; k++)
		tap_diag("crash: killed inside %ld %s (%ld committed, %ld not%s)", inflight[k],
			 kind_name[k], landed[k], kept[k], k == K_SAME ? ", the same either way" : "");
	tap_diag("crash: free extents taken again: %ld in %ld rounds on shard 1 (no mount), "
		 "%ld in %ld rounds on the mounted shard",
		 extents_taken[1], rounds_taking[1], extents_taken[0], rounds_taking[0]);
	tap_diag("crash: on shard 1, %ld acknowledged puts found a free extent of their class "
		 "waiting (%ld of them took one, %ld more took one unforeseen); %ld kills inside "
		 "such a put (%ld committed, %ld not)",
		 x_acked, x_took, x_unpredicted, x_inflight, x_landed, x_kept);
	tap_diag("crash: %ld entries on a blob another entry holds, in %ld checks (up to %ld "
		 "on one blob)", shared_entries, shared_rounds, max_refs);
	tap_diag("crash: %ld rounds of replacements (%ld of them library only, on shard 1), "
		 "%ld of new keys", replace_rounds, rounds_q,
		 rounds_by_mode[0] + rounds_by_mode[1] + rounds_by_mode[2] + rounds_by_mode[3] +
			 rounds_by_mode[4] + rounds_by_mode[5] - replace_rounds);
	for (int m = 0; m < M_NMODES; m++)
		tap_diag("crash: %ld rounds of %s", rounds_by_mode[m], mode_name[m]);
	tap_ok(all_ok && kills >= o->kills,
	       "%ld SIGKILLs: every round's shard opened, verified, held every acknowledged "
	       "put, no stray file", kills);
	TAP_EQ(check_shard(0, 0, "final") + check_shard(1, 0, "final, shard 1"), 0,
	       "final state matches the acknowledgements");
	tt_fs_stop();
	TAP_EQ(tt_is_mounted(tt_mnt), 0, "unmounted");
	free(model);
	free(mindex);
	return tap_done();
}
