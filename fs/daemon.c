/*
 * daemon.c - becoming a daemon, and telling the command that started us
 * when the mount is ready (or failed).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "fs_i.h"

/*
 * Like fuse_daemonize(), except that the parent waits until the daemon is
 * fully up (its watcher has done its first request through the mount), so
 * that `scriptcachefs ...; umount ...` in a script never races with it.
 */
void fs_daemonize(struct fs *fs, int foreground)
{
	int p[2];
	pid_t pid;
	char ok = 0;

	fs->fs_ready = -1;
	if (foreground)
		return;
	if (pipe2(p, O_CLOEXEC) != 0) {
		fuse_daemonize(0);
		return;
	}
	pid = fork();
	if (pid < 0) {
		close(p[0]);
		close(p[1]);
		fuse_daemonize(0);
		return;
	}
	if (pid > 0) {
		ssize_t n;
		close(p[1]);
		do
			n = read(p[0], &ok, 1);
		while (n < 0 && errno == EINTR);
		_exit(n == 1 && ok == 1 ? 0 : 1);
	}
	close(p[0]);
	fs->fs_ready = p[1];
	if (setsid() < 0) {
		/* already a session leader: fine */
	}
	if (chdir("/") != 0) {
		/* "/" always exists */
	}
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, 0);
		dup2(null, 1);
		dup2(null, 2);
		if (null > 2)
			close(null);
	}
}

void fs_report_ready(struct fs *fs, int ok)
{
	char c = ok ? 1 : 0;

	if (fs->fs_ready < 0)
		return;
	if (write(fs->fs_ready, &c, 1) != 1) {
		/* the parent is gone: nothing to tell */
	}
	close(fs->fs_ready);
	fs->fs_ready = -1;
}
