/*
 * test_hostile.c - the core against a hostile environment rather than a
 * hostile file (the fuzz corpus covers those):
 *  - a shard owned by another user, or writable by group/others, is
 *    refused with SC_EINSECURE, read-write and read-only alike; the one
 *    exception is a root-owned, not group/other-writable shard opened
 *    SC_RDONLY (a system-wide cache), checked from an unprivileged uid;
 *  - <shard>.lock is never followed through a symlink: writes fail with
 *    -ELOOP and the symlink's target is neither created nor changed;
 *  - temp files are made with mkostemp (O_CREAT|O_EXCL) in the shard's own
 *    directory, the shard and the lock file are 0600 whatever the umask,
 *    and a stray <shard>.tmp.* symlink is removed, not followed.
 * Needs root for chown and for switching to an unprivileged uid; as
 * another user those checks are reported as skipped.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "scriptcache.h"
#include "tap.h"

#define CHECK(cond)                                                                  \
	do {                                                                         \
		if (!(cond)) {                                                       \
			printf("Bail out! %s:%d: %s (%s)\n", __FILE__, __LINE__, #cond, \
			       strerror(errno));                                     \
			exit(1);                                                     \
		}                                                                    \
	} while (0)

static char dir[PATH_MAX];

static const char *path_in(const char *name)
{
	static char bufs[8][PATH_MAX + NAME_MAX + 2];
	static int n;
	char *b = bufs[n++ & 7];
	snprintf(b, sizeof(bufs[0]), "%s/%s", dir, name);
	return b;
}

/* ---- mkostemp, watched: the library links it from libc through the PLT,
 * so these definitions in the executable are the ones it calls (under
 * _FILE_OFFSET_BITS=64 glibc's header redirects it to mkostemp64) ---- */
static char last_template[PATH_MAX];
static int mkostemp_calls;

static int watched(const char *name, char *tmpl, int flags)
{
	int (*real)(char *, int) = (int (*)(char *, int))dlsym(RTLD_NEXT, name);
	mkostemp_calls++;
	snprintf(last_template, sizeof(last_template), "%s", tmpl);
	return real(tmpl, flags);
}

/* asm names: the symbols exactly, whatever the header's redirection */
int watch_mkostemp64(char *tmpl, int flags) __asm__("mkostemp64");
int watch_mkostemp64(char *tmpl, int flags)
{
	return watched("mkostemp64", tmpl, flags);
}

int watch_mkostemp(char *tmpl, int flags) __asm__("mkostemp");
int watch_mkostemp(char *tmpl, int flags)
{
	return watched("mkostemp", tmpl, flags);
}

static int rm_one(const char *p, const struct stat *st, int type, struct FTW *f)
{
	(void)st;
	(void)f;
	return type == FTW_DP ? rmdir(p) : unlink(p);
}

static void cleanup(void)
{
	if (dir[0] && !getenv("SC_TEST_KEEP"))
		nftw(dir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void make_shard(const char *path)
{
	sc_cache *c = NULL;
	unlink(path);
	CHECK(sc_open(&c, path, "t", SC_NOSYNC | SC_IGNORE_ENV) == 0);
	CHECK(sc_put_ex(c, "/k", "v", 1, &(sc_put_opts){ .no_source = 1 }) == 0);
	sc_close(c);
}

static int try_open(const char *path, unsigned flags)
{
	sc_cache *c = NULL;
	int rc = sc_open(&c, path, "t", flags | SC_IGNORE_ENV | SC_NOCREATE);
	sc_close(c);
	return rc;
}

static void file_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	CHECK(fd >= 0);
	CHECK(write(fd, text, strlen(text)) == (ssize_t)strlen(text));
	CHECK(fchmod(fd, mode) == 0 && close(fd) == 0);
}

static int same_text(const char *path, const char *text)
{
	char buf[256];
	int fd = open(path, O_RDONLY);
	ssize_t n;
	if (fd < 0)
		return 0;
	n = read(fd, buf, sizeof(buf));
	close(fd);
	return n == (ssize_t)strlen(text) && memcmp(buf, text, (size_t)n) == 0;
}

static void test_modes(void)
{
	static const mode_t bad[] = { 0666, 0620, 0602, 0660, 0622 };
	const char *p = path_in("modes.shard");

	make_shard(p);
	TAP_EQ(try_open(p, 0), 0, "own 0600 shard opens read-write");
	CHECK(chmod(p, 0644) == 0);
	TAP_EQ(try_open(p, 0), 0, "own 0644 shard (readable by others) opens");
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		CHECK(chmod(p, bad[i]) == 0);
		TAP_EQ(try_open(p, 0), SC_EINSECURE, "mode %04o refused read-write", (unsigned)bad[i]);
		TAP_EQ(try_open(p, SC_RDONLY), SC_EINSECURE, "mode %04o refused read-only",
		       (unsigned)bad[i]);
	}
}

static uid_t nobody_uid(void)
{
	struct passwd *pw = getpwnam("nobody");
	return pw ? pw->pw_uid : 65534;
}

/* Run @p fn as an unprivileged uid in a child; its return is the result. */
static int as_nobody(int (*fn)(const char *), const char *arg)
{
	int status;
	pid_t pid = fork();

	CHECK(pid >= 0);
	if (pid == 0) {
		uid_t u = nobody_uid();
		if (setgroups(0, NULL) != 0 || setresgid(u, u, u) != 0 || setresuid(u, u, u) != 0)
			_exit(100);
		_exit(fn(arg) & 0xff);
	}
	CHECK(waitpid(pid, &status, 0) == pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 200;
}

/* child helpers: exit status encodes the result (codes do not fit in 8 bits) */
static int child_open_rdonly(const char *p)
{
	int rc = try_open(p, SC_RDONLY);
	return rc == 0 ? 0 : rc == SC_EINSECURE ? 1 : 2;
}

static int child_open_rw(const char *p)
{
	int rc = try_open(p, 0);
	return rc == 0 ? 0 : rc == SC_EINSECURE ? 1 : rc == -EACCES ? 3 : 2;
}

static void test_owners(void)
{
	const char *p = path_in("owner.shard");
	uid_t u = nobody_uid();

	if (geteuid() != 0) {
		for (int i = 0; i < 6; i++)
			tap_ok(1, "# SKIP ownership checks need root");
		return;
	}
	make_shard(p);
	CHECK(chown(p, u, (gid_t)-1) == 0);
	TAP_EQ(try_open(p, 0), SC_EINSECURE, "shard owned by nobody refused read-write");
	TAP_EQ(try_open(p, SC_RDONLY), SC_EINSECURE, "shard owned by nobody refused read-only");

	/* seen from nobody: a root-owned shard */
	CHECK(chmod(dir, 0755) == 0);
	CHECK(chown(p, 0, 0) == 0 && chmod(p, 0644) == 0);
	TAP_EQ(as_nobody(child_open_rdonly, p), 0,
	       "root-owned 0644 shard opens SC_RDONLY for another user (system cache)");
	TAP_EQ(as_nobody(child_open_rw, p), 3,
	       "... but not read-write (the file is not writable: -EACCES)");
	CHECK(chmod(p, 0664) == 0);
	TAP_EQ(as_nobody(child_open_rdonly, p), 1,
	       "root-owned group-writable shard refused SC_RDONLY for another user");
	CHECK(chmod(p, 0646) == 0);
	TAP_EQ(as_nobody(child_open_rdonly, p), 1,
	       "root-owned other-writable shard refused SC_RDONLY for another user");
	CHECK(chmod(dir, 0700) == 0);
}

static void test_lock_symlink(void)
{
	const char *p = path_in("lock.shard"), *lock = path_in("lock.shard.lock");
	const char *victim = path_in("victim"), *absent = path_in("absent-target");
	sc_cache *c = NULL;
	struct stat st;
	int rc;

	make_shard(p);
	unlink(lock);
	file_text(victim, "victim\n", 0644);
	CHECK(symlink(victim, lock) == 0);
	CHECK(sc_open(&c, p, "t", SC_NOSYNC | SC_IGNORE_ENV | SC_NOCREATE) == 0);
	rc = sc_put_ex(c, "/k2", "v", 1, &(sc_put_opts){ .no_source = 1 });
	TAP_EQ(rc, -ELOOP, "put with <shard>.lock a symlink fails with -ELOOP");
	TAP_EQ(sc_remove(c, "/k"), -ELOOP, "remove fails the same way");
	TAP_EQ(sc_compact(c), -ELOOP, "compact fails the same way");
	sc_close(c);
	tap_ok(same_text(victim, "victim\n"), "the symlink's target is unchanged");
	tap_ok(stat(victim, &st) == 0 && (st.st_mode & 07777) == 0644, "... and keeps its mode");
	tap_ok(lstat(lock, &st) == 0 && S_ISLNK(st.st_mode), "the symlink is left as it was");

	/* dangling: following it would create the target */
	CHECK(unlink(lock) == 0 && symlink(absent, lock) == 0);
	CHECK(sc_open(&c, p, "t", SC_NOSYNC | SC_IGNORE_ENV | SC_NOCREATE) == 0);
	rc = sc_put_ex(c, "/k2", "v", 1, &(sc_put_opts){ .no_source = 1 });
	sc_close(c);
	TAP_EQ(rc, -ELOOP, "dangling lock symlink: put fails with -ELOOP");
	tap_ok(lstat(absent, &st) != 0 && errno == ENOENT, "... and its target is not created");

	/* creating a new shard takes the lock too */
	p = path_in("new.shard");
	lock = path_in("new.shard.lock");
	CHECK(symlink(absent, lock) == 0);
	rc = sc_open(&c, p, "t", SC_NOSYNC | SC_IGNORE_ENV);
	sc_close(c);
	TAP_EQ(rc, -ELOOP, "creating a shard whose lock file is a symlink fails with -ELOOP");
	tap_ok(lstat(absent, &st) != 0 && lstat(p, &st) != 0, "... and creates neither file");
}

static void test_temp_files(void)
{
	const char *p = path_in("tmp.shard"), *lock = path_in("tmp.shard.lock");
	const char *victim = path_in("victim2"), *trap = path_in("tmp.shard.tmp.AAAAAA");
	sc_cache *c = NULL;
	struct stat st;
	char want[PATH_MAX + 16];
	mode_t old;

	old = umask(0);
	unlink(p);
	unlink(lock);
	mkostemp_calls = 0;
	CHECK(sc_open(&c, p, "t", SC_NOSYNC | SC_IGNORE_ENV) == 0);
	snprintf(want, sizeof(want), "%s.tmp.", sc_path(c));
	tap_ok(mkostemp_calls == 1 && strncmp(last_template, want, strlen(want)) == 0,
	       "a new shard is written to a mkostemp (O_EXCL) file next to it: %s", last_template);
	tap_ok(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600 && st.st_uid == geteuid(),
	       "with umask 0 the new shard is ours and 0600");
	tap_ok(stat(lock, &st) == 0 && (st.st_mode & 07777) == 0600,
	       "with umask 0 the lock file is 0600");

	/* a stray temp file that is a symlink: removed by the next writer,
	 * never followed */
	file_text(victim, "victim\n", 0644);
	CHECK(symlink(victim, trap) == 0);
	CHECK(sc_put_ex(c, "/k", "v", 1, &(sc_put_opts){ .no_source = 1 }) == 0);
	tap_ok(lstat(trap, &st) != 0 && errno == ENOENT, "a stray <shard>.tmp.* symlink is removed");
	tap_ok(same_text(victim, "victim\n"), "... and its target is unchanged");

	mkostemp_calls = 0;
	TAP_EQ(sc_compact(c), 0, "compact");
	tap_ok(mkostemp_calls == 1 && strncmp(last_template, want, strlen(want)) == 0,
	       "compaction writes a mkostemp (O_EXCL) file next to the shard: %s", last_template);
	tap_ok(stat(p, &st) == 0 && (st.st_mode & 07777) == 0600, "the compacted shard is 0600");
	tap_ok(lstat(last_template, &st) != 0, "no temp file is left behind");
	sc_close(c);
	umask(old);
}

int main(void)
{
	char tmpl[] = "/tmp/sc-hostile.XXXXXX";

	CHECK(mkdtemp(tmpl) != NULL);
	CHECK(realpath(tmpl, dir) != NULL);
	atexit(cleanup);
	unsetenv("SCRIPTCACHE");
	test_modes();
	test_owners();
	test_lock_symlink();
	test_temp_files();
	return tap_done();
}
