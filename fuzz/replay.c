/*
 * replay.c - the standalone driver: run a fuzz target's body over files,
 * without libFuzzer, and report in TAP.  Built by tests/fuzz/meson.build
 * for each target; `replay_shard fuzz/corpus/bad/x` reproduces one input.
 *
 *   replay_<target> [-t seconds] [-q] [-p pending-dir-name] path...
 *
 * Directories are walked recursively, files run in name order.  Each file
 * runs in a forked child (alarm after -t seconds, default 20), so a crash
 * or a hang is reported against the file that caused it and the remaining
 * files still run.
 *
 * Expectations.  A file whose name contains "--" states what sc_open and
 * sc_verify must say about it (shard targets only; see fuzz/README.md):
 *   NAME--open-EMAGIC      sc_open fails with SC_EMAGIC (any SC_E* name)
 *   NAME--verify-ECORRUPT  sc_open succeeds, sc_verify says SC_ECORRUPT
 *   NAME--ok               sc_open succeeds, sc_verify says the shard is sound
 *   NAME--opens            sc_open succeeds (sc_verify may say anything)
 * Files without "--" (the generated seeds, libFuzzer's corpus) only have
 * to run without a crash, a hang or a broken invariant.
 *
 * Known bugs.  A file under a directory named by -p (e.g. "pending-write")
 * is an input that currently fails this target because of a bug not fixed
 * yet: it is reported with a TAP "# TODO" directive, so the suite stays
 * green while it fails, and meson flags an unexpected pass once it is
 * fixed - then move the file to fuzz/corpus/bad/.  Other targets replay
 * the same directory as ordinary inputs that must pass.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fuzz.h"
#include "scriptcache.h"

static char **files;
static size_t n_files, cap_files;

static void add_file(const char *p)
{
	if (n_files == cap_files) {
		cap_files = cap_files ? cap_files * 2 : 64;
		files = realloc(files, cap_files * sizeof(*files));
		if (!files)
			abort();
	}
	if (!(files[n_files++] = strdup(p)))
		abort();
}

static int by_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void walk(const char *p)
{
	struct stat st;
	DIR *d;
	struct dirent *de;

	if (stat(p, &st) != 0) {
		printf("Bail out! %s: %s\n", p, strerror(errno));
		exit(1);
	}
	if (!S_ISDIR(st.st_mode)) {
		add_file(p);
		return;
	}
	if (!(d = opendir(p))) {
		printf("Bail out! %s: %s\n", p, strerror(errno));
		exit(1);
	}
	while ((de = readdir(d)) != NULL) {
		char sub[PATH_MAX];
		/* skip ., .., and dot files such as .gitignore */
		if (de->d_name[0] == '.' || !strcmp(de->d_name, "README.md"))
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", p, de->d_name);
		walk(sub);
	}
	closedir(d);
}

static unsigned char *read_all(const char *path, size_t *len)
{
	unsigned char *b = NULL;
	size_t cap = 0, n = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	for (;;) {
		ssize_t r;
		if (n == cap) {
			cap = cap ? cap * 2 : 65536;
			if (!(b = realloc(b, cap)))
				abort();
		}
		r = read(fd, b + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			free(b);
			close(fd);
			return NULL;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	*len = n;
	return b;
}

static const struct { const char *name; int code; } codes[] = {
	{ "ENOTFOUND", SC_ENOTFOUND }, { "ESTALE", SC_ESTALE },
	{ "EFINGERPRINT", SC_EFINGERPRINT }, { "ECORRUPT", SC_ECORRUPT },
	{ "EMAGIC", SC_EMAGIC }, { "EVERSION", SC_EVERSION },
	{ "EPTRWIDTH", SC_EPTRWIDTH }, { "EBYTEORDER", SC_EBYTEORDER },
	{ "ETRUNCATED", SC_ETRUNCATED }, { "EDISABLED", SC_EDISABLED },
	{ "EREADONLY", SC_EREADONLY }, { "ETOOBIG", SC_ETOOBIG },
	{ "EINSECURE", SC_EINSECURE }, { "EWRITERGONE", SC_EWRITERGONE },
};

static const char *code_name(int rc)
{
	static char buf[32];
	if (rc == 0)
		return "0";
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (codes[i].code == rc)
			return codes[i].name;
	snprintf(buf, sizeof(buf), "%d", rc);
	return buf;
}

static int code_of(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
		if (strlen(codes[i].name) == len && !memcmp(codes[i].name, name, len))
			return codes[i].code;
	return 1; /* no such code: never matches */
}

/* Check the outcome against the expectation in the file name; NULL if met. */
static const char *judge(const char *path, const struct fuzz_outcome *o, char *why, size_t wlen)
{
	const char *base = strrchr(path, '/'), *e;
	size_t len;

	base = base ? base + 1 : path;
	if (!o->shard_target || !(e = strstr(base, "--")))
		return NULL;
	e += 2;
	len = strcspn(e, ".");
	if (len == 2 && !strncmp(e, "ok", 2)) {
		if (o->open_rc == 0 && o->verify_rc == 0)
			return NULL;
	} else if (len == 5 && !strncmp(e, "opens", 5)) {
		if (o->open_rc == 0)
			return NULL;
	} else if (len > 5 && !strncmp(e, "open-", 5)) {
		if (o->open_rc == code_of(e + 5, len - 5))
			return NULL;
	} else if (len > 7 && !strncmp(e, "verify-", 7)) {
		if (o->open_rc == 0 && o->verify_rc == code_of(e + 7, len - 7))
			return NULL;
	} else {
		snprintf(why, wlen, "unknown expectation \"%.*s\" in the file name", (int)len, e);
		return why;
	}
	snprintf(why, wlen, "expected %.*s, got open %s, verify %s", (int)len, e,
		 code_name(o->open_rc), o->open_rc ? "-" : code_name(o->verify_rc));
	return why;
}

int main(int argc, char **argv)
{
	unsigned timeout = 20;
	int quiet = 0, failed = 0, opt;
	char pending_dir[NAME_MAX + 3] = "";

	while ((opt = getopt(argc, argv, "t:qp:")) != -1) {
		if (opt == 't')
			timeout = (unsigned)atoi(optarg);
		else if (opt == 'p')
			snprintf(pending_dir, sizeof(pending_dir), "/%.*s/", NAME_MAX, optarg);
		else if (opt == 'q')
			quiet = 1;
		else {
			fprintf(stderr, "usage: %s [-t seconds] [-q] [-p dir] path...\n", argv[0]);
			return 2;
		}
	}
	for (int i = optind; i < argc; i++)
		walk(argv[i]);
	if (n_files == 0) {
		printf("1..0\nBail out! no input files: nothing would be tested\n");
		return 1;
	}
	qsort(files, n_files, sizeof(*files), by_name);
	printf("# %s: %zu inputs\n", fuzz_target_name, n_files);
	(void)fuzz_scratch_path(); /* one directory, made by the parent, for all children */

	for (size_t i = 0; i < n_files; i++) {
		const char *path = files[i];
		int pending = pending_dir[0] && strstr(path, pending_dir) != NULL;
		struct fuzz_outcome o;
		char why[512];
		const char *bad = NULL;
		int fds[2], status;
		ssize_t got;
		pid_t pid;

		fflush(stdout);
		if (pipe(fds) != 0 || (pid = fork()) < 0) {
			printf("Bail out! pipe/fork: %s\n", strerror(errno));
			return 1;
		}
		if (pid == 0) {
			size_t len = 0;
			unsigned char *data = read_all(path, &len);

			close(fds[0]);
			if (!data && errno) {
				fprintf(stderr, "%s: %s\n", path, strerror(errno));
				_exit(3);
			}
			alarm(timeout);
			fuzz_run(data ? data : (unsigned char *)"", len, &o);
			free(data);
			if (write(fds[1], &o, sizeof(o)) != (ssize_t)sizeof(o))
				_exit(4);
			exit(0); /* not _exit: LeakSanitizer checks at exit */
		}
		close(fds[1]);
		do
			got = read(fds[0], &o, sizeof(o));
		while (got < 0 && errno == EINTR);
		close(fds[0]);
		while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
			;
		if (WIFSIGNALED(status) && WTERMSIG(status) == SIGALRM)
			snprintf(why, sizeof(why), "hung: still running after %u s", timeout), bad = why;
		else if (WIFSIGNALED(status))
			snprintf(why, sizeof(why), "crashed: %s", strsignal(WTERMSIG(status))), bad = why;
		else if (WEXITSTATUS(status) != 0 || got != (ssize_t)sizeof(o))
			snprintf(why, sizeof(why), "exit status %d", WEXITSTATUS(status)), bad = why;
		else
			bad = judge(path, &o, why, sizeof(why));

		if (bad && !pending)
			failed++;
		if (bad || pending || !quiet) {
			printf("%sok %zu - %s", bad ? "not " : "", i + 1, path);
			if (pending)
				printf(" # TODO known bug, see its directory's README.md");
			printf("\n");
			if (bad)
				printf("#   %s\n", why);
		} else {
			printf("ok %zu\n", i + 1);
		}
		if (!bad && o.shard_target && !quiet)
			printf("#   open %s, verify %s, %lu entries, %lu hits, %lu corrupt misses\n",
			       code_name(o.open_rc), o.open_rc ? "-" : code_name(o.verify_rc),
			       o.entries, o.hits, o.corrupt);
	}
	printf("1..%zu\n", n_files);
	return failed ? 1 : 0;
}
