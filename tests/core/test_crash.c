/*
 * test_crash.c - writers killed with SIGKILL at random instants.
 *
 * A child puts entries in a loop (durable, SC_NOSYNC, with compactions,
 * with clears) and appends to a log file after each operation returns 0:
 *   "P <i>"  put of key i acknowledged
 *   "c" "C"  a clear started / acknowledged
 *   "K" "k"  a compaction started / finished
 * The parent kills it after 0-20 ms and checks the shard against the log:
 * it opens, sc_verify passes, every acknowledged key is there with its
 * bytes unless a later clear was acknowledged, and a cleared key never
 * comes back.  Keys acknowledged before a clear that started but was not
 * acknowledged may be either way.  After the check one more writer puts
 * and compacts, and no temp file may be left in the directory.
 * SC_TEST_SEED=<n> repeats a run.
 */
#include <dirent.h>
#include <signal.h>

#include "testutil.h"

#define TAG "crash tag"
#define ROUNDS 30
#define AFTER_KEY 1000000 /* index of the key put after each round's check */

enum { M_DURABLE, M_NOSYNC, M_COMPACT, M_CLEAR };
static const char *mode_name[] = { "durable puts", "SC_NOSYNC puts", "puts + compactions",
				   "puts + clears" };

static char dir[PATH_MAX], shard[PATH_MAX + 16], logpath[PATH_MAX + 16];

static void make_key(char *buf, size_t len, int round, int i)
{
	snprintf(buf, len, "/crash/r%d/k%d", round, i);
}

static size_t payload_for(int i)
{
	return (size_t)(i * 37) % 600;
}

/* ---- the child ----------------------------------------------------------- */

struct child_arg {
	int round, mode;
};

static void log_line(int fd, const char *s)
{
	/* one write(2) per line: O_APPEND makes it atomic, and a completed
	 * write survives the SIGKILL of the writer */
	if (write(fd, s, strlen(s)) != (ssize_t)strlen(s))
		_exit(20);
}

static int child_main(void *p)
{
	struct child_arg *a = p;
	int fd = open(logpath, O_WRONLY | O_APPEND | O_CLOEXEC);
	if (fd < 0)
		return 10;
	sc_cache *c = NULL;
	int rc = sc_open(&c, shard, TAG, a->mode == M_DURABLE ? 0 : SC_NOSYNC);
	if (rc) {
		char line[64];
		snprintf(line, sizeof line, "E open %d\n", rc);
		log_line(fd, line);
		return 11;
	}
	unsigned char *buf = malloc(1024);
	char key[64], line[64];
	sc_put_opts o = { .no_source = 1 };
	for (int i = 0;; i++) {
		make_key(key, sizeof key, a->round, i);
		size_t n = tu_blob_make(buf, key, (uint32_t)a->round, payload_for(i));
		if ((rc = sc_put_ex(c, key, buf, n, &o)) != 0) {
			snprintf(line, sizeof line, "E put %d\n", rc);
			log_line(fd, line);
			return 12;
		}
		snprintf(line, sizeof line, "P %d\n", i);
		log_line(fd, line);
		if (a->mode == M_COMPACT && i % 8 == 7) {
			log_line(fd, "K\n");
			if ((rc = sc_compact(c)) != 0) {
				snprintf(line, sizeof line, "E compact %d\n", rc);
				log_line(fd, line);
				return 13;
			}
			log_line(fd, "k\n");
		}
		if (a->mode == M_CLEAR && i % 15 == 14) {
			log_line(fd, "c\n");
			if ((rc = sc_clear(c)) != 0) {
				snprintf(line, sizeof line, "E clear %d\n", rc);
				log_line(fd, line);
				return 14;
			}
			log_line(fd, "C\n");
		}
	}
}

/* ---- the model ------------------------------------------------------------ */

enum { S_PRESENT = 1, S_ABSENT, S_MAYBE };

struct mkey {
	int round, i;
	int state;
};

static struct mkey *model;
static size_t nmodel, capmodel;

static void model_add(int round, int i, int state)
{
	if (nmodel == capmodel) {
		capmodel = capmodel ? capmodel * 2 : 4096;
		model = realloc(model, capmodel * sizeof *model);
		TU_CHECK(model);
	}
	model[nmodel++] = (struct mkey){ round, i, state };
}

static void model_all(int from, int to)
{
	for (size_t k = 0; k < nmodel; k++)
		if (model[k].state == from)
			model[k].state = to;
}

/* Apply one round's log; returns the last event character. */
static char apply_log(int round, char *err, size_t errlen)
{
	size_t len;
	unsigned char *log = tu_read_file(logpath, &len);
	char last = 0;
	err[0] = 0;
	char *p = (char *)log, *end = (char *)log + len;
	while (p < end) {
		char *nl = memchr(p, '\n', (size_t)(end - p));
		if (!nl)
			break; /* impossible with single writes, but harmless */
		*nl = 0;
		switch (p[0]) {
		case 'P': model_add(round, atoi(p + 2), S_PRESENT); break;
		case 'c': model_all(S_PRESENT, S_MAYBE); break;
		case 'C': model_all(S_PRESENT, S_ABSENT); model_all(S_MAYBE, S_ABSENT); break;
		case 'E': snprintf(err, errlen, "%s", p); break;
		}
		last = p[0];
		p = nl + 1;
	}
	free(log);
	return last;
}

static int verify_problems;

static void verify_cb(void *arg, uint64_t off, const char *problem)
{
	(void)arg;
	if (verify_problems++ < 5)
		tap_diag("  verify: at %llu: %s", (unsigned long long)off, problem);
}

struct fe {
	int bad;
};

static int foreach_cb(const sc_entry_info *e, void *arg)
{
	struct fe *f = arg;
	char key[128];
	if (e->key_len >= sizeof key) {
		f->bad++;
		return 0;
	}
	memcpy(key, e->key, e->key_len);
	key[e->key_len] = 0;
	int round;
	if (sscanf(key, "/crash/r%d/", &round) != 1 ||
	    tu_blob_check(e->blob, e->blob_size, key) != round)
		f->bad++;
	return 0;
}

/* Check the shard against the model with a handle opened with @p flags.
 * Returns the number of problems; resolves S_MAYBE keys when @p resolve. */
static int check_shard(unsigned flags, int resolve, const char *label)
{
	int problems = 0;
	sc_cache *c = NULL;
	int rc = sc_open(&c, shard, TAG, flags);
	if (rc) {
		tap_diag("  %s: sc_open: %s", label, sc_strerror(rc));
		return 1;
	}
	verify_problems = 0;
	uint64_t n = 0;
	rc = sc_verify(c, verify_cb, NULL, &n);
	if (rc) {
		tap_diag("  %s: sc_verify: %s", label, sc_strerror(rc));
		problems++;
	}
	char key[64];
	int lost = 0, back = 0, wrong = 0;
	for (size_t k = 0; k < nmodel; k++) {
		struct mkey *m = &model[k];
		make_key(key, sizeof key, m->round, m->i);
		sc_blob b;
		rc = sc_get(c, key, &b);
		if (rc == 0 && tu_blob_check(b.data, b.size, key) != m->round) {
			wrong++;
			continue;
		}
		if (rc != 0 && rc != SC_ENOTFOUND) {
			if (problems++ < 5)
				tap_diag("  %s: get %s: %s", label, key, sc_strerror(rc));
			continue;
		}
		if (m->state == S_PRESENT && rc != 0) {
			if (lost++ < 5)
				tap_diag("  %s: acknowledged %s lost", label, key);
		} else if (m->state == S_ABSENT && rc == 0) {
			if (back++ < 5)
				tap_diag("  %s: cleared %s came back", label, key);
		} else if (m->state == S_MAYBE && resolve) {
			m->state = rc == 0 ? S_PRESENT : S_ABSENT;
		}
	}
	struct fe f = { 0 };
	sc_foreach(c, foreach_cb, &f);
	if (wrong || f.bad)
		tap_diag("  %s: %d wrong hits, %d wrong foreach entries", label, wrong, f.bad);
	sc_close(c);
	return problems + lost + back + wrong + f.bad;
}

/* Names in the shard's directory other than the shard, its lock and the log. */
static int stray_files(void)
{
	DIR *d = opendir(dir);
	TU_CHECK(d);
	struct dirent *de;
	int n = 0;
	while ((de = readdir(d))) {
		const char *s = de->d_name;
		if (!strcmp(s, ".") || !strcmp(s, "..") || !strcmp(s, "crash.shard") ||
		    !strcmp(s, "crash.shard.lock") || !strcmp(s, "log"))
			continue;
		tap_diag("  stray file: %s", s);
		n++;
	}
	closedir(d);
	return n;
}

int main(void)
{
	tu_setup("crash");
	snprintf(dir, sizeof dir, "%s", tu_path("crash"));
	snprintf(shard, sizeof shard, "%s/crash.shard", dir);
	snprintf(logpath, sizeof logpath, "%s/log", dir);
	TU_CHECK(mkdir(dir, 0700) == 0);

	unsigned seed = getenv("SC_TEST_SEED") ? (unsigned)atoi(getenv("SC_TEST_SEED"))
					       : (unsigned)time(NULL) ^ (unsigned)getpid();
	tap_diag("seed %u (set SC_TEST_SEED to repeat)", seed);
	srand(seed);

	static const int modes[ROUNDS] = {
		M_DURABLE, M_NOSYNC, M_COMPACT, M_CLEAR, M_NOSYNC, M_COMPACT, M_DURABLE, M_CLEAR,
		M_COMPACT, M_NOSYNC, M_CLEAR, M_COMPACT, M_DURABLE, M_NOSYNC, M_COMPACT, M_CLEAR,
		M_NOSYNC, M_COMPACT, M_DURABLE, M_CLEAR, M_COMPACT, M_NOSYNC, M_COMPACT, M_DURABLE,
		M_CLEAR, M_NOSYNC, M_COMPACT, M_CLEAR, M_DURABLE, M_COMPACT,
	};
	int in_compact = 0, in_clear = 0;
	for (int round = 0; round < ROUNDS; round++) {
		struct child_arg a = { round, modes[round] };
		/* durable commits wait for the disk: give them time to ack some */
		unsigned delay = (unsigned)rand() % 20000 +
				 (a.mode == M_DURABLE ? 10000 : 0);
		tu_write_file(logpath, "", 0); /* empty even if the child dies at once */
		pid_t pid = tu_spawn(child_main, &a);
		usleep(delay);
		kill(pid, SIGKILL);
		int st = tu_wait(pid);
		char err[128];
		char last = apply_log(round, err, sizeof err);
		in_compact += last == 'K';
		in_clear += last == 'c';
		int problems = 0;
		if (st != 128 + SIGKILL) {
			tap_diag("  child ended by itself: status %d %s", st, err);
			problems++;
		}
		if (err[0]) {
			tap_diag("  child logged an error: %s", err);
			problems++;
		}
		size_t acked = 0;
		for (size_t k = 0; k < nmodel; k++)
			acked += model[k].round == round;
		if (tu_exists(shard) || acked) {
			/* first a reader that changes nothing, then a writer's open */
			problems += check_shard(SC_RDONLY, 0, "read-only");
			problems += check_shard(0, 1, "read-write");
		}
		/* one more writer: put and compact; then no temp file may remain */
		sc_cache *c = NULL;
		char key[64];
		unsigned char buf[1024];
		sc_put_opts o = { .no_source = 1 };
		make_key(key, sizeof key, round, AFTER_KEY);
		int rc = sc_open(&c, shard, TAG, 0);
		if (rc == 0)
			rc = sc_put_ex(c, key, buf, tu_blob_make(buf, key, (uint32_t)round, 10), &o);
		if (rc == 0)
			rc = sc_compact(c);
		sc_close(c);
		if (rc) {
			tap_diag("  put+compact after the kill: %s", sc_strerror(rc));
			problems++;
		} else {
			model_add(round, AFTER_KEY, S_PRESENT);
		}
		problems += stray_files();
		tap_ok(problems == 0, "round %d, %s killed after %u us (last event '%c'): "
		       "%zu puts acknowledged; shard sound, nothing lost or resurrected",
		       round, mode_name[a.mode], delay, last ? last : '-', acked);
	}
	tap_diag("%d kills inside a compaction, %d inside a clear", in_compact, in_clear);
	/* final full check */
	TAP_EQ(check_shard(SC_RDONLY, 0, "final"), 0, "final state matches the log");
	free(model);
	return tap_done();
}
