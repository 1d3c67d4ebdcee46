/*
 * crash.c - `sc_torture crash`: writers killed with SIGKILL at random
 * instants, library writers and writers through a scriptcachefs mount of
 * the same shard, and sometimes the daemon itself.
 *
 * Each round starts writers that acknowledge on one pipe (a line written
 * after the call returned 0):
 *   "P <key>"   put acknowledged (sc_put_ex, or the mount's rename)
 *   "c" / "C"   a clear started / was acknowledged
 *   "K" / "k"   a compaction started / finished
 *   "E ..."     an unexpected error (fails the round)
 * then SIGKILLs them (or the daemon, then them) after a random delay, and
 * checks: the shard opens, sc_verify passes, every acknowledged key is
 * there with its exact bytes unless a later acknowledged clear removed it,
 * a cleared key never comes back, every entry in the shard is a whole
 * blob of its key (a write in flight is fully committed or absent); then
 * one more library writer puts and compacts and no file but the shard and
 * its lock may be left in the shard's directory.  A killed daemon's mount
 * must answer ENOTCONN, be removed by `fusermount3 -u` and mount again.
 */
#include <dirent.h>
#include <sys/vfs.h>

#include "common.h"
#include "torture.h"

enum mode { M_DURABLE, M_NOSYNC_COMPACT, M_CLEAR, M_MIX, M_MOUNT, M_DAEMON, M_NMODES };
static const char *mode_name[] = {
	"library durable puts + mount writer", "library SC_NOSYNC puts + compactions",
	"library puts + clears", "library puts + compactions + mount writer",
	"mount writer alone", "daemon killed under library and mount writers",
};

static char shard_dir[PATH_MAX], shard[PATH_MAX + 32];

/* ---- writers (children) ---------------------------------------------------- */

static int lib_writer(int ackfd, int round, enum mode mode)
{
	sc_cache *c = NULL;
	int rc = sc_open(&c, shard, TT_TAG, mode == M_NOSYNC_COMPACT ? SC_NOSYNC : 0);
	if (rc) {
		tt_ack(ackfd, "E lib open %s\n", sc_strerror(rc));
		return 11;
	}
	unsigned char *buf = malloc(8192);
	char key[64];
	sc_put_opts o = { .no_source = 1 };
	for (int i = 0;; i++) {
		snprintf(key, sizeof key, "/t/r%d/L%d", round, i);
		size_t n = tu_blob_make(buf, key, (uint32_t)round, (size_t)(i * 131) % 4000);
		if ((rc = sc_put_ex(c, key, buf, n, &o)) != 0) {
			tt_ack(ackfd, "E lib put %s\n", sc_strerror(rc));
			return 12;
		}
		tt_ack(ackfd, "P %s\n", key);
		if ((mode == M_NOSYNC_COMPACT || mode == M_MIX) && i % 8 == 7) {
			tt_ack(ackfd, "K\n");
			if ((rc = sc_compact(c)) != 0) {
				tt_ack(ackfd, "E lib compact %s\n", sc_strerror(rc));
				return 13;
			}
			tt_ack(ackfd, "k\n");
		}
		if (mode == M_CLEAR && i % 5 == 4) {
			tt_ack(ackfd, "c\n");
			if ((rc = sc_clear(c)) != 0) {
				tt_ack(ackfd, "E lib clear %s\n", sc_strerror(rc));
				return 14;
			}
			tt_ack(ackfd, "C\n");
		}
	}
}

static int mount_writer(int ackfd, int round, enum mode mode)
{
	unsigned char *buf = malloc(8192);
	char key[64];
	for (int i = 0;; i++) {
		snprintf(key, sizeof key, "/t/r%d/M%d", round, i);
		size_t n = tu_blob_make(buf, key, (uint32_t)round, (size_t)(i * 557) % 6000);
		int e = tt_mount_put(key, buf, n, (unsigned)i);
		if (e) {
			/* the daemon's death shows as ENOTCONN (or ECONNABORTED
			 * for a request in flight); anything else is a failure */
			if (mode == M_DAEMON && (e == ENOTCONN || e == ECONNABORTED))
				return 0;
			tt_ack(ackfd, "E mount put %s: %s\n", key, strerror(e));
			return 15;
		}
		tt_ack(ackfd, "P %s\n", key);
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

/* ---- the model ------------------------------------------------------------- */

enum { S_PRESENT = 1, S_ABSENT, S_MAYBE };

struct mkey {
	char key[40];
	int round, state;
};

static struct mkey *model;
static size_t nmodel, capmodel;

static void model_add(const char *key, int round, int state)
{
	if (nmodel == capmodel) {
		capmodel = capmodel ? capmodel * 2 : 4096;
		model = realloc(model, capmodel * sizeof *model);
		TU_CHECK(model);
	}
	struct mkey *m = &model[nmodel++];
	snprintf(m->key, sizeof m->key, "%s", key);
	m->round = round;
	m->state = state;
}

static void model_all(int from, int to)
{
	for (size_t k = 0; k < nmodel; k++)
		if (model[k].state == from)
			model[k].state = to;
}

/* Keys known absent have been checked once: forget them. */
static void model_prune(void)
{
	size_t o = 0;
	for (size_t k = 0; k < nmodel; k++)
		if (model[k].state != S_ABSENT)
			model[o++] = model[k];
	nmodel = o;
}

struct logstat {
	size_t acked;
	char last, err[160];
	int in_compact, in_clear;
};

static void apply_log(char *log, size_t len, int round, struct logstat *ls)
{
	char *p = log, *end = log + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break;
		*nl = 0;
		switch (p[0]) {
		case 'P': model_add(p + 2, round, S_PRESENT); ls->acked++; break;
		case 'c': model_all(S_PRESENT, S_MAYBE); ls->in_clear = 1; break;
		case 'C': model_all(S_PRESENT, S_ABSENT); model_all(S_MAYBE, S_ABSENT);
			  ls->in_clear = 0; break;
		case 'K': ls->in_compact = 1; break;
		case 'k': ls->in_compact = 0; break;
		case 'E': if (!ls->err[0]) snprintf(ls->err, sizeof ls->err, "%s", p); break;
		}
		if (p[0] != 'E')
			ls->last = p[0];
		p = nl + 1;
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

static int foreach_cb(const sc_entry_info *e, void *arg)
{
	int *bad = arg;
	char key[128];
	int round;
	if (e->key_len >= sizeof key) {
		++*bad;
		return 0;
	}
	memcpy(key, e->key, e->key_len);
	key[e->key_len] = 0;
	if (sscanf(key, "/t/r%d/", &round) != 1 ||
	    tu_blob_check(e->blob, e->blob_size, key) != round) {
		if ((*bad)++ < 5)
			tap_diag("  entry %s: not a whole blob of its key", key);
	}
	return 0;
}

/* The shard against the model; resolves S_MAYBE keys when @p resolve. */
static int check_shard(unsigned flags, int resolve, const char *label)
{
	int problems = 0, lost = 0, back = 0, wrong = 0, bad = 0;
	sc_cache *c = NULL;
	int rc = sc_open(&c, shard, TT_TAG, flags);
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
		rc = sc_lookup(c, m->key, &e);
		if (rc == 0 && tu_blob_check(e.blob, e.blob_size, m->key) != m->round) {
			wrong++;
			continue;
		}
		if (rc != 0 && rc != SC_ENOTFOUND) {
			if (problems++ < 5)
				tap_diag("  %s: lookup %s: %s", label, m->key, sc_strerror(rc));
			continue;
		}
		if (m->state == S_PRESENT && rc != 0) {
			if (lost++ < 5)
				tap_diag("  %s: acknowledged %s lost", label, m->key);
		} else if (m->state == S_ABSENT && rc == 0) {
			if (back++ < 5)
				tap_diag("  %s: cleared %s came back", label, m->key);
		} else if (m->state == S_MAYBE && resolve) {
			m->state = rc == 0 ? S_PRESENT : S_ABSENT;
		}
	}
	sc_foreach(c, foreach_cb, &bad);
	if (wrong)
		tap_diag("  %s: %d wrong hits", label, wrong);
	sc_close(c);
	return problems + lost + back + wrong + bad;
}

static int stray_files(void)
{
	DIR *d = opendir(shard_dir);
	TU_CHECK(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d))) {
		const char *s = de->d_name;
		if (!strcmp(s, ".") || !strcmp(s, "..") || !strcmp(s, "s.shard") ||
		    !strcmp(s, "s.shard.lock"))
			continue;
		tap_diag("  stray file: %s", s);
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
};

static int writer_main(void *p)
{
	struct writer_arg *a = p;
	close(a->rdfd);
	if (a->mount == 2)
		return mount_reader(a->ackfd, a->round);
	return a->mount ? mount_writer(a->ackfd, a->round, a->mode)
			: lib_writer(a->ackfd, a->round, a->mode);
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
	snprintf(shard_dir, sizeof shard_dir, "%s", tu_path("shard"));
	snprintf(shard, sizeof shard, "%s/s.shard", shard_dir);
	snprintf(tt_mnt, sizeof tt_mnt, "%s", tu_path("mnt"));
	TU_CHECK(mkdir(shard_dir, 0700) == 0 && mkdir(tt_mnt, 0755) == 0);
	srand(o->seed);
	tap_diag("crash: seed %u, %ld kills wanted (sc_torture crash -s %u -n %ld)", o->seed,
		 o->kills, o->seed, o->kills);

	/* the shard exists before the daemon, which would otherwise make it */
	sc_cache *c0 = NULL;
	TU_CHECK(sc_open(&c0, shard, TT_TAG, 0) == 0);
	sc_close(c0);
	if (!tap_ok(tt_fs_start(shard) == 0, "scriptcachefs mounts the shard"))
		return tap_done();

	long kills = 0, lib_kills = 0, mount_kills = 0, daemon_kills = 0;
	long in_compact = 0, in_clear = 0, rounds_by_mode[M_NMODES] = { 0 };
	size_t total_acked = 0;
	double t_start = tu_now();
	int all_ok = 1;
	for (int round = 0; kills < o->kills; round++) {
		/* mostly library rounds (cheap), a third with the mount, one
		 * in eight kills the daemon */
		static const enum mode pick[] = { M_DURABLE, M_NOSYNC_COMPACT, M_CLEAR, M_MIX,
						  M_NOSYNC_COMPACT, M_CLEAR, M_MOUNT, M_DAEMON };
		enum mode mode = pick[rand() % 8];
		rounds_by_mode[mode]++;
		int use_lib = mode != M_MOUNT, use_mount = mode == M_DURABLE || mode == M_MIX ||
							   mode == M_MOUNT || mode == M_DAEMON;
		unsigned delay = (unsigned)rand() % 20000 + (use_mount || mode == M_DURABLE ? 5000 : 0);
		if (use_mount)
			delay += (unsigned)rand() % 30000;

		int pfd[2];
		TU_CHECK(pipe2(pfd, O_CLOEXEC) == 0);
		TU_CHECK(fcntl(pfd[0], F_SETFL, O_NONBLOCK) == 0);
		struct writer_arg la = { pfd[1], pfd[0], round, mode, 0 };
		struct writer_arg ma = { pfd[1], pfd[0], round, mode, 1 };
		pid_t lp = use_lib ? tu_spawn(writer_main, &la) : 0;
		pid_t mp = use_mount ? tu_spawn(writer_main, &ma) : 0;
		struct writer_arg ra = { pfd[1], pfd[0], round, mode, 2 };
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
		apply_log(log.p, log.len, round, &ls);
		free(log.p);
		total_acked += ls.acked;
		in_compact += ls.in_compact;
		in_clear += ls.in_clear;
		if (ls.err[0]) {
			tap_diag("  a writer logged an error: %s", ls.err);
			problems++;
		}

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

		problems += check_shard(SC_RDONLY, 0, "read-only");
		problems += check_shard(0, 1, "read-write");
		model_prune();

		/* one more library writer: put and compact; then only the shard
		 * and its lock may be left */
		sc_cache *c = NULL;
		char key[64];
		unsigned char b[256];
		sc_put_opts po = { .no_source = 1 };
		snprintf(key, sizeof key, "/t/r%d/after", round);
		int rc = sc_open(&c, shard, TT_TAG, 0);
		if (rc == 0)
			rc = sc_put_ex(c, key, b, tu_blob_make(b, key, (uint32_t)round, 40), &po);
		if (rc == 0)
			rc = sc_compact(c);
		sc_close(c);
		if (rc) {
			tap_diag("  put+compact after the kill: %s", sc_strerror(rc));
			problems++;
		} else {
			model_add(key, round, S_PRESENT);
		}
		problems += stray_files();

		if (mode == M_DAEMON) {
			if (tt_fs_start(shard) != 0) {
				tap_diag("  scriptcachefs did not mount again");
				problems++;
			}
		} else if (use_mount && (kill(tt_fs_pid, 0) != 0 || !tt_is_mounted(tt_mnt))) {
			tap_diag("  the daemon died without being killed");
			problems++;
		}
		tap_ok(problems == 0, "round %d, %s, killed after %u us (last event '%c'): "
		       "%zu acknowledged; shard sound, nothing lost or resurrected",
		       round, mode_name[mode], delay, ls.last ? ls.last : '-', ls.acked);
		all_ok &= problems == 0;
		if (problems && !o->keep_going)
			break;
		if (!tt_fs_pid)
			break; /* no mount to go on with */
	}
	double secs = tu_now() - t_start;
	tap_diag("crash: %ld kills (%ld library writers, %ld mount writers, %ld daemons) in %.1f s",
		 kills, lib_kills, mount_kills, daemon_kills, secs);
	tap_diag("crash: %zu puts acknowledged; %ld kills inside a compaction, %ld inside a clear",
		 total_acked, in_compact, in_clear);
	for (int m = 0; m < M_NMODES; m++)
		tap_diag("crash: %ld rounds of %s", rounds_by_mode[m], mode_name[m]);
	tap_ok(all_ok && kills >= o->kills,
	       "%ld SIGKILLs: every round's shard opened, verified, held every acknowledged "
	       "put, no stray file", kills);
	TAP_EQ(check_shard(SC_RDONLY, 0, "final"), 0, "final state matches the acknowledgements");
	tt_fs_stop();
	TAP_EQ(tt_is_mounted(tt_mnt), 0, "unmounted");
	free(model);
	return tap_done();
}
