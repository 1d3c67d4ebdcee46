/*
 * common.h - what sc_torture's parts share: the running scriptcachefs
 * daemon (start, wait for the mount, stop, always unmount), an
 * acknowledgement pipe, and the key encoding of the mount's flat view.
 *
 * Every FUSE mount made here is unmounted by fs_stop(), which the programs
 * call on every exit path, from an atexit handler and from their SIGTERM /
 * SIGINT handler (meson's timeout), so no mount outlives a run.
 */
#ifndef SC_TORTURE_COMMON_H
#define SC_TORTURE_COMMON_H

#include <dirent.h>
#include <poll.h>
#include <sys/prctl.h>

#include "testutil.h"

#define TT_TAG "torture tag"

/* ---- the daemon ----------------------------------------------------------- */

static const char *tt_fs_prog;   /* path of scriptcachefs */
static char tt_mnt[PATH_MAX];    /* its mount point */
static volatile pid_t tt_fs_pid; /* the daemon, 0 when none */

/* Run argv, wait, return its exit status (128+sig when killed); output of
 * the command goes to /dev/null.  Async-signal-safe apart from the wait. */
static inline int tt_run(char *const argv[])
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static inline int tt_is_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	if (!f)
		return 0;
	char line[4096], mp[PATH_MAX];
	int found = 0;
	while (!found && fgets(line, sizeof line, f))
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && !strcmp(mp, path))
			found = 1;
	fclose(f);
	return found;
}

/* Unmount tt_mnt however it is (live, or left dead by a killed daemon):
 * the one command, then the lazy form if it is busy. */
static inline void tt_unmount(void)
{
	if (!tt_mnt[0] || !tt_is_mounted(tt_mnt))
		return;
	char *u[] = { "fusermount3", "-u", tt_mnt, NULL };
	tt_run(u);
	if (tt_is_mounted(tt_mnt)) {
		usleep(100000);
		char *z[] = { "fusermount3", "-u", "-z", tt_mnt, NULL };
		tt_run(z);
	}
}

/* The daemon's pid: the scriptcachefs process that was reparented to us
 * (we are its subreaper, tt_guard()) and is not yet known. */
static inline pid_t tt_find_daemon(void)
{
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *de;
	pid_t found = 0;
	while (!found && (de = readdir(d))) {
		char path[300], comm[64];
		int ppid;
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "re");
		if (!f)
			continue;
		if (fscanf(f, "%*d (%63[^)]) %*c %d", comm, &ppid) == 2 && ppid == getpid() &&
		    !strcmp(comm, "scriptcachefs"))
			found = (pid_t)atoi(de->d_name);
		fclose(f);
	}
	closedir(d);
	return found;
}

/* Start the daemon on @p shard, with "-o @p opt" if not NULL, the way a
 * user does: in the background, the command returning once the daemon is
 * fully up (fs/notify.c: after its own first open of .stats; starting
 * writers before that can deadlock a killed daemon, /tmp/core-bugs.md).
 * @return 0 once the mount answers, -1 if it did not mount. */
static inline int tt_fs_start_opt(const char *shard, const char *opt)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open("/dev/null", O_WRONLY);
		if (fd >= 0 && !getenv("SC_TORTURE_FS_LOG"))
			dup2(fd, 1), dup2(fd, 2);
		if (opt)
			execl(tt_fs_prog, tt_fs_prog, "-o", "tag=" TT_TAG, "-o", opt,
			      shard, tt_mnt, (char *)NULL);
		else
			execl(tt_fs_prog, tt_fs_prog, "-o", "tag=" TT_TAG, shard, tt_mnt,
			      (char *)NULL);
		_exit(127);
	}
	int st = tu_wait(pid);
	if (st != 0) {
		fprintf(stderr, "scriptcachefs exited with status %d before mounting\n", st);
		return -1;
	}
	char stats[PATH_MAX + 16];
	struct stat sb;
	snprintf(stats, sizeof stats, "%s/.stats", tt_mnt);
	tt_fs_pid = tt_find_daemon();
	if (!tt_fs_pid || !tt_is_mounted(tt_mnt) || stat(stats, &sb) != 0) {
		fprintf(stderr, "scriptcachefs returned 0 but %s does not answer\n", tt_mnt);
		if (tt_fs_pid)
			kill(tt_fs_pid, SIGKILL);
		return -1;
	}
	return 0;
}

static inline int tt_fs_start(const char *shard)
{
	return tt_fs_start_opt(shard, NULL);
}

/* Reap the daemon (killed or unmounted); SIGKILL it after 10 s.
 * @return its status as tu_wait() gives it, or -1 if it would not end
 * (a thread stuck in the kernel keeps a killed process from exiting). */
static inline int tt_fs_reap(void)
{
	int st = 0;
	pid_t pid = tt_fs_pid;
	if (!pid)
		return 0;
	tt_fs_pid = 0;
	for (int i = 0; i < 1500; i++) {
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
		if (r < 0 && errno == ECHILD)
			return 0;
		if (i == 1000)
			kill(pid, SIGKILL);
		usleep(10000);
	}
	fprintf(stderr, "scriptcachefs (pid %d) does not exit\n", (int)pid);
	return -1;
}

/* Orderly stop: unmount (the daemon then exits), reap, and make sure. */
static inline void tt_fs_stop(void)
{
	tt_unmount();
	tt_fs_reap();
	tt_unmount();
}

static pid_t tt_owner;

static inline void tt_atexit(void)
{
	if (getpid() == tt_owner)
		tt_fs_stop();
}

static inline void tt_on_signal(int sig)
{
	/* meson's timeout or ^C: kill the process group's writers and the
	 * daemon, unmount, and die of the signal */
	if (tt_fs_pid)
		kill(tt_fs_pid, SIGKILL);
	if (tt_mnt[0]) {
		char *z[] = { "fusermount3", "-u", "-z", tt_mnt, NULL };
		tt_run(z);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

/* Once per run, right after tu_setup(): registered after tu_setup's own
 * atexit, so the mount is gone before the directory is removed.  (Each
 * part of sc_torture is its own translation unit with its own copy of
 * these statics; only one part runs in a process.) */
static inline void tt_guard(void)
{
	tt_owner = getpid();
	atexit(tt_atexit);
	/* the daemon forks into the background: it becomes our child again */
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	signal(SIGTERM, tt_on_signal);
	signal(SIGINT, tt_on_signal);
	signal(SIGHUP, tt_on_signal);
	signal(SIGPIPE, SIG_IGN);
}

/* ---- writing through the mount -------------------------------------------- */

/* The flat view's name of a key: the library's encoding, the mount's own. */
static inline void tt_encode(char *out, size_t len, const char *key)
{
	char name[SC_NAME_MAX + 1];

	if (sc_name_encode(key, strlen(key), name) < 0)
		name[0] = '\0';
	snprintf(out, len, "%s", name);
}

/* Commit @p blob under @p key the way caches write files: mkdir the entry
 * (it may exist), create a temp file in it with O_EXCL, write, close,
 * rename over "blob".  @return 0 once the rename returned (committed), or
 * the errno of the step that failed. */
static inline int tt_mount_put(const char *key, const void *blob, size_t len, unsigned seq)
{
	char name[512], dir[PATH_MAX + 520], tmp[PATH_MAX + 600], fin[PATH_MAX + 540];
	tt_encode(name, sizeof name, key);
	snprintf(dir, sizeof dir, "%s/%s", tt_mnt, name);
	snprintf(tmp, sizeof tmp, "%s/blob.tmp.%d.%u", dir, (int)getpid(), seq);
	snprintf(fin, sizeof fin, "%s/blob", dir);
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return errno;
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return errno;
	const unsigned char *p = blob;
	size_t done = 0;
	while (done < len) {
		ssize_t w = write(fd, p + done, len - done);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int e = w < 0 ? errno : EIO;
			close(fd);
			unlink(tmp);
			return e;
		}
		done += (size_t)w;
	}
	if (close(fd) != 0)
		return errno;
	if (rename(tmp, fin) != 0) {
		int e = errno;
		unlink(tmp);
		return e;
	}
	return 0;
}

/* ---- acknowledgements ------------------------------------------------------ */

/* One write(2) per line, shorter than PIPE_BUF: atomic even with several
 * writers on one pipe, and a completed write survives the writer's SIGKILL. */
static inline void tt_ack(int fd, const char *fmt, ...)
{
	char line[256];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof line, fmt, ap);
	va_end(ap);
	if (n <= 0 || n >= (int)sizeof line || write(fd, line, (size_t)n) != n)
		_exit(20);
}

static inline double tt_elapsed_ns(const struct timespec *a, const struct timespec *b)
{
	return (b->tv_sec - a->tv_sec) * 1e9 + (b->tv_nsec - a->tv_nsec);
}

#endif
