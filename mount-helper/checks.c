/*
 * checks.c - the usual reasons a mount fails, found before the daemon runs.
 *
 * libfuse reports most of them late and vaguely ("fuse: mount failed:
 * ...", or a daemon that exits silently after forking).  Each check here
 * prints one line that names the cause and, where there is one, the fix.
 * They run as the user the daemon will run as (after setuid=USER).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include "mh_i.h"

#ifndef MH_FUSERMOUNT
#define MH_FUSERMOUNT "/usr/bin/fusermount3"
#endif

/* Join a and b with one '/'. @return 0 or -ENAMETOOLONG. */
static int join(char *buf, size_t len, const char *a, const char *b)
{
	int n = snprintf(buf, len, "%s%s%s", a,
			 a[0] && a[strlen(a) - 1] == '/' ? "" : "/", b);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int mh_absolute(const char *path, char *buf, size_t len)
{
	char joined[PATH_MAX], parent[PATH_MAX], *slash, *real;
	int err;

	if (!path[0])
		return -ENOENT;
	if (path[0] == '/') {
		if (strlen(path) >= sizeof joined)
			return -ENAMETOOLONG;
		strcpy(joined, path);
	} else {
		char cwd[PATH_MAX];
		if (!getcwd(cwd, sizeof cwd))
			return -errno;
		if ((err = join(joined, sizeof joined, cwd, path)) != 0)
			return err;
	}
	/* Strip trailing slashes (but keep "/"). */
	for (size_t n = strlen(joined); n > 1 && joined[n - 1] == '/'; n--)
		joined[n - 1] = '\0';
	real = realpath(joined, NULL);
	if (real) {
		int n = snprintf(buf, len, "%s", real);
		free(real);
		return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
	}
	/* The last component does not exist, or is a dead FUSE mount
	 * (ENOTCONN): resolve its parent, keep its name. */
	strcpy(parent, joined);
	slash = strrchr(parent, '/');
	*slash = '\0';
	real = realpath(slash == parent ? "/" : parent, NULL);
	if (!real) {
		int n = snprintf(buf, len, "%s", joined);
		return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
	}
	err = join(buf, len, real, slash + 1);
	free(real);
	return err;
}

int mh_check_dev_fuse(void)
{
	int fd = open("/dev/fuse", O_RDWR | O_CLOEXEC);
	if (fd >= 0) {
		close(fd);
		return 0;
	}
	if (errno == ENOENT)
		mh_err("/dev/fuse does not exist: load the module (modprobe fuse), "
		       "or in a container pass the device (--device /dev/fuse)");
	else if (errno == ENODEV || errno == ENXIO)
		mh_err("/dev/fuse: the kernel has no FUSE support (%s): modprobe fuse",
		       strerror(errno));
	else if (errno == EACCES || errno == EPERM)
		mh_err("/dev/fuse: %s: libfuse opens it as the mounting user, who "
		       "needs read-write access (mode 0666 is the default)", strerror(errno));
	else
		mh_err("/dev/fuse: %s", strerror(errno));
	return MH_EXIT_FAIL;
}

static int is_executable_file(const char *path, struct stat *st)
{
	return stat(path, st) == 0 && S_ISREG(st->st_mode) && access(path, X_OK) == 0;
}

/* libfuse mounts with mount(2) when it is root and runs fusermount3 (first
 * its configured path, then $PATH) when it is not: look where it looks. */
int mh_check_fusermount(void)
{
	char buf[PATH_MAX];
	const char *found = NULL;
	struct stat st;

	if (geteuid() == 0)
		return 0;
	if (is_executable_file(MH_FUSERMOUNT, &st)) {
		found = MH_FUSERMOUNT;
	} else {
		const char *path = getenv("PATH");
		char *copy = strdup(path ? path : "/usr/bin:/bin"), *save = NULL;
		if (!copy) {
			mh_err("out of memory");
			return MH_EXIT_SYSERR;
		}
		for (char *d = strtok_r(copy, ":", &save); d && !found;
		     d = strtok_r(NULL, ":", &save))
			if (join(buf, sizeof buf, d, "fusermount3") == 0 &&
			    is_executable_file(buf, &st))
				found = buf;
		free(copy);
	}
	if (!found) {
		mh_err("fusermount3 not found (in %s or $PATH): a user who is not "
		       "root needs it to mount; install the fuse3 package", MH_FUSERMOUNT);
		return MH_EXIT_FAIL;
	}
	if (st.st_uid != 0 || !(st.st_mode & S_ISUID))
		mh_err("warning: %s is not setuid root; mounting as a user "
		       "will probably fail (chmod u+s %s)", found, found);
	return 0;
}

/* Undo mountinfo's octal escapes (\040 space, \011 tab, \012, \134) in place. */
static void unescape(char *s)
{
	char *d = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] >= '0' && s[2] <= '7' &&
		    s[3] >= '0' && s[3] <= '7') {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = '\0';
}

/* The filesystem type of the topmost mount at exactly dir, into type
 * ("" when nothing is mounted there). */
static void mounted_type(const char *dir, char *type, size_t len)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char *line = NULL;
	size_t cap = 0;

	type[0] = '\0';
	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		/* ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [OPTIONAL...] - TYPE SOURCE SUPER */
		char *save = NULL, *field, *mnt = NULL;
		int i = 0, after_dash = 0;
		for (field = strtok_r(line, " \n", &save); field;
		     field = strtok_r(NULL, " \n", &save), i++) {
			if (i == 4)
				mnt = field;
			else if (i > 5 && strcmp(field, "-") == 0)
				after_dash = 1;
			else if (after_dash) {
				if (mnt) {
					unescape(mnt);
					if (strcmp(mnt, dir) == 0)  /* later lines are on top */
						snprintf(type, len, "%s", field);
				}
				break;
			}
		}
	}
	free(line);
	fclose(f);
}

/* Unmount a dead mount: umount(2) as root, fusermount3 -u otherwise. */
static int unmount_dead(const char *dir)
{
	pid_t pid;
	int status;

	if (geteuid() == 0)
		return umount2(dir, 0) == 0 ? 0 : -1;
	pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY | O_CLOEXEC);
		if (null >= 0)
			dup2(null, STDERR_FILENO);
		execl(MH_FUSERMOUNT, "fusermount3", "-u", "--", dir, (char *)NULL);
		execlp("fusermount3", "fusermount3", "-u", "--", dir, (char *)NULL);
		_exit(127);
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(status) && WEXITSTATUS(status) == 0 ? 0 : -1;
}

/*
 * The errors of a FUSE mount whose daemon is gone: ENOTCONN, or
 * ECONNABORTED for a request the kernel had queued when the connection
 * was torn down (or aborted through /sys/fs/fuse/connections).
 */
static int dead_mount_errno(int e)
{
	return e == ENOTCONN || e == ECONNABORTED;
}

/*
 * stat() gave ENOTCONN: a FUSE daemon died and left its mount behind.  When
 * it was a scriptcachefs at exactly this directory, unmounting it is safe:
 * the kernel will never answer through it again, and every change the daemon
 * accepted is already in the shard (the library's commits are crash-safe;
 * what was still pending died with the daemon).  Anything else is not ours
 * to touch: say how to recover.
 */
static int recover_dead_mount(const char *dir)
{
	char type[128];

	mounted_type(dir, type, sizeof type);
	if (strcmp(type, "fuse.scriptcachefs") == 0 && unmount_dead(dir) == 0) {
		mh_err("%s: unmounted the dead mount of a crashed scriptcachefs "
		       "(Transport endpoint is not connected)", dir);
		return 0;
	}
	if (type[0])
		mh_err("%s: Transport endpoint is not connected: the %s daemon "
		       "crashed; recover with: fusermount3 -u %s", dir, type, dir);
	else
		mh_err("%s: Transport endpoint is not connected: a FUSE daemon of a "
		       "parent directory crashed; unmount it with fusermount3 -u", dir);
	return MH_EXIT_FAIL;
}

int mh_check_mountpoint(const char *dir, const struct mh_cmd *c)
{
	struct stat st;
	char type[128];
	DIR *d;
	struct dirent *e;
	int nonempty = 0;

again:
	if (stat(dir, &st) != 0) {
		if (dead_mount_errno(errno)) {
			if (recover_dead_mount(dir) != 0)
				return MH_EXIT_FAIL;
			if (stat(dir, &st) == 0)
				goto exists;
		}
		if (errno == ENOENT)
			mh_err("%s: mount point does not exist (create it: mkdir -p %s)", dir, dir);
		else
			mh_err("%s: %s", dir, strerror(errno));
		return MH_EXIT_FAIL;
	}
exists:
	if (!S_ISDIR(st.st_mode)) {
		mh_err("%s: mount point is not a directory", dir);
		return MH_EXIT_FAIL;
	}
	mounted_type(dir, type, sizeof type);
	if (strncmp(type, "fuse", 4) == 0) {
		/* stat() may have been answered from the kernel's attribute
		 * cache; statfs() always asks the daemon, dead or alive. */
		struct statfs sfs;
		if (statfs(dir, &sfs) != 0 && dead_mount_errno(errno)) {
			if (recover_dead_mount(dir) != 0)
				return MH_EXIT_FAIL;
			goto again;
		}
		mh_err("%s: already mounted (%s); unmount first: fusermount3 -u %s",
		       dir, type, dir);
		return MH_EXIT_FAIL;
	}
	if (geteuid() != 0 && access(dir, W_OK) != 0) {
		mh_err("%s: no write permission on the mount point (fusermount3 "
		       "requires it)", dir);
		return MH_EXIT_FAIL;
	}
	if (c->mc_nonempty)
		return 0;
	d = opendir(dir);
	if (!d) {
		mh_err("%s: %s", dir, strerror(errno));
		return MH_EXIT_FAIL;
	}
	while ((e = readdir(d)) != NULL)
		if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
			nonempty = 1;
			break;
		}
	closedir(d);
	if (nonempty) {
		mh_err("%s: mount point is not empty (its files would be hidden; "
		       "-o nonempty mounts anyway)", dir);
		return MH_EXIT_FAIL;
	}
	return 0;
}

int mh_check_shard(const char *shard, int is_default, int ro)
{
	struct stat st;
	int fd;

	if (stat(shard, &st) == 0) {
		if (S_ISDIR(st.st_mode)) {
			mh_err("%s: is a directory, not a shard file", shard);
			return MH_EXIT_FAIL;
		}
		fd = open(shard, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			mh_err("%s: cannot read the shard: %s", shard, strerror(errno));
			return MH_EXIT_FAIL;
		}
		close(fd);
		if (!ro && access(shard, W_OK) != 0) {
			mh_err("%s: shard is not writable (%s); mount it with -o ro",
			       shard, strerror(errno));
			return MH_EXIT_FAIL;
		}
		return 0;
	}
	if (errno != ENOENT) {
		mh_err("%s: cannot read the shard: %s", shard, strerror(errno));
		return MH_EXIT_FAIL;
	}
	if (ro) {
		mh_err("%s: no such shard (-o ro does not create one)", shard);
		return MH_EXIT_FAIL;
	}
	/* scriptcachefs creates a missing shard; the default one together
	 * with its directory, any other only inside an existing directory. */
	if (!is_default) {
		char parent[PATH_MAX], *slash;
		snprintf(parent, sizeof parent, "%s", shard);
		slash = strrchr(parent, '/');
		if (slash)
			*(slash == parent ? slash + 1 : slash) = '\0';
		if (stat(parent, &st) != 0 || !S_ISDIR(st.st_mode)) {
			mh_err("%s: no such shard, and its directory %s does not exist",
			       shard, parent);
			return MH_EXIT_FAIL;
		}
		if (access(parent, W_OK | X_OK) != 0) {
			mh_err("%s: no such shard, and it cannot be created in %s (%s)",
			       shard, parent, strerror(errno));
			return MH_EXIT_FAIL;
		}
	}
	return 0;
}
