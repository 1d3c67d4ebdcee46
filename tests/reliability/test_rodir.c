/*
 * test_rodir.c - a shard in a read-only directory, as an ordinary user.
 *
 * Directory modes do not bind root, so the checks run in a child that
 * drops to nobody (65534:65534) and owns a directory it then makes 0500.
 * Two shards live there, with 20 entries each:
 *
 *  - ro.shard, mode 0400 (a read-only place: directory and file): a
 *    read-write sc_open fails with -EACCES and creates nothing; SC_RDONLY
 *    opens, verifies and serves hits; scriptcachefs without -o ro refuses
 *    to start, with -o ro it serves the blobs and refuses writes (EROFS);
 *  - rw.shard, mode 0600 in the same 0500 directory: a put appends to the
 *    existing file and needs no new one, so it works; compaction, clear
 *    and evict-stale need a temp file next to the shard and fail with
 *    -EACCES; the shard stays intact and no temp file is left.  Without
 *    its lock file, a writer cannot create one: put fails with -EACCES.
 *
 * Creating a shard in the read-only directory fails with -EACCES.  The
 * parent (root) sets up a private mount namespace whose /dev/fuse nobody
 * may open, waits, and unmounts if the child left a mount behind; the
 * child prints the rest of the TAP stream.
 */
#include <grp.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>

#include "placecheck.h"

#define NOLD 20
#define NOBODY 65534

static char dir[PATH_MAX], ro_shard[PATH_MAX + 32], rw_shard[PATH_MAX + 32];

static void key_of(char *buf, size_t len, int i)
{
	snprintf(buf, len, "/rodir/k%d", i);
}

/* After each refused write: intact, and only the two shards and their
 * locks in the directory. */
static int intact(const char *path)
{
	static const char *const allowed[] = { "ro.shard", "ro.shard.lock", "rw.shard",
					       "rw.shard.lock", NULL };
	return pc_intact(path, "/rodir", NOLD, dir, allowed);
}

static void fill(const char *path, unsigned char *buf)
{
	sc_cache *c = NULL;
	sc_put_opts po = { .no_source = 1 };
	char key[64];
	TU_CHECK(sc_open(&c, path, TT_TAG, 0) == 0);
	for (int i = 0; i < NOLD; i++) {
		key_of(key, sizeof key, i);
		TU_CHECK(sc_put_ex(c, key, buf, tu_blob_make(buf, key, 1, 4000 + 100 * i), &po) == 0);
	}
	sc_close(c);
}

/* Run scriptcachefs on @p shard (no -o ro) and keep the first line it
 * writes to stderr; @return its exit status. */
static int fs_refused(const char *shard, char *err, size_t len)
{
	int p[2];
	TU_CHECK(pipe(p) == 0);
	pid_t pid = fork();
	TU_CHECK(pid >= 0);
	if (pid == 0) {
		dup2(p[1], 2);
		close(p[0]);
		execl(tt_fs_prog, tt_fs_prog, "-o", "tag=" TT_TAG, shard, tt_mnt, (char *)NULL);
		_exit(127);
	}
	close(p[1]);
	size_t n = 0;
	ssize_t r;
	while (n + 1 < len && (r = read(p[0], err + n, len - 1 - n)) > 0)
		n += (size_t)r;
	close(p[0]);
	err[n] = '\0';
	err[strcspn(err, "\n")] = '\0';
	return tu_wait(pid);
}

static int as_nobody(void)
{
	unsigned char *buf = malloc(70000);
	sc_put_opts po = { .no_source = 1 };
	sc_cache *c = NULL;
	char key[64];
	sc_blob b;
	int rc;

	TU_CHECK(buf);
	/* the daemons started here are ours to find and reap (tt_find_daemon) */
	TU_CHECK(prctl(PR_SET_CHILD_SUBREAPER, 1) == 0);
	if (!tap_ok(setgroups(0, NULL) == 0 && setresgid(NOBODY, NOBODY, NOBODY) == 0 &&
			    setresuid(NOBODY, NOBODY, NOBODY) == 0 && geteuid() == NOBODY,
		    "running as nobody (uid %d)", NOBODY))
		return tap_done();

	fill(ro_shard, buf);
	fill(rw_shard, buf);
	TU_CHECK(chmod(ro_shard, 0400) == 0);
	TU_CHECK(chmod(dir, 0500) == 0);
	tap_ok(access(dir, W_OK) != 0 && errno == EACCES, "the directory is read-only for us");

	/* creating a shard there */
	const char *fresh = tu_path("d/new.shard");
	rc = sc_open(&c, fresh, TT_TAG, 0);
	TAP_EQ(rc, -EACCES, "creating a shard in a read-only directory: -EACCES (%s)",
	       sc_strerror(rc));
	tap_ok(c == NULL && !tu_exists(fresh), "no handle, no file");

	/* read-only directory, read-only shard */
	c = NULL;
	rc = sc_open(&c, ro_shard, TT_TAG, 0);
	TAP_EQ(rc, -EACCES, "read-write open of a 0400 shard: -EACCES (%s)", sc_strerror(rc));
	c = NULL;
	rc = sc_open(&c, ro_shard, TT_TAG, SC_RDONLY);
	TAP_EQ(rc, 0, "SC_RDONLY opens it");
	if (rc == 0) {
		key_of(key, sizeof key, 7);
		rc = sc_get(c, key, &b);
		tap_ok(rc == 0 && tu_blob_check(b.data, b.size, key) == 1, "and serves hits");
		rc = sc_put_ex(c, key, buf, tu_blob_make(buf, key, 3, 100), &po);
		TAP_EQ(rc, SC_EREADONLY, "a put on it: SC_EREADONLY (%s)", sc_strerror(rc));
		sc_close(c);
	}
	tap_ok(intact(ro_shard), "the read-only shard is intact, nothing new in the directory");

	char err[1024];
	int st = fs_refused(ro_shard, err, sizeof err);
	tap_ok(st != 0 && !tt_is_mounted(tt_mnt),
	       "scriptcachefs without -o ro refuses a shard it cannot write (status %d)", st);
	tap_ok(strstr(err, "Permission denied") && strstr(err, "mount with -o ro"),
	       "and says why and what to do: %s", err);
	tt_fs_stop();
	if (tap_ok(tt_fs_start_opt(ro_shard, "ro") == 0, "scriptcachefs -o ro mounts it")) {
		key_of(key, sizeof key, 4);
		tap_ok(pc_mount_blob_ok(key), "the read-only mount serves the blob");
		key_of(key, sizeof key, 3000);
		int e = tt_mount_put(key, buf, tu_blob_make(buf, key, 1, 100), 3);
		TAP_EQ(e, EROFS, "writing through it: EROFS (%s)", strerror(e));
		tt_fs_stop();
		TAP_EQ(tt_is_mounted(tt_mnt), 0, "unmounted");
	}
	tap_ok(intact(ro_shard), "still intact after the mounts");

	/* read-only directory, writable shard */
	c = NULL;
	TAP_EQ(sc_open(&c, rw_shard, TT_TAG, 0), 0, "a writable shard in it opens read-write");
	if (c) {
		key_of(key, sizeof key, 100);
		rc = sc_put_ex(c, key, buf, tu_blob_make(buf, key, 1, 5000), &po);
		TAP_EQ(rc, 0, "a put appends to the existing file: 0 (%s)", sc_strerror(rc));
		rc = sc_get(c, key, &b);
		tap_ok(rc == 0 && tu_blob_check(b.data, b.size, key) == 1, "and is served");
		rc = sc_compact(c);
		TAP_EQ(rc, -EACCES, "compaction needs a temp file: -EACCES (%s)", sc_strerror(rc));
		tap_ok(intact(rw_shard), "after the failed compaction: intact, no temp file");
		rc = sc_clear(c);
		TAP_EQ(rc, -EACCES, "clear: -EACCES (%s)", sc_strerror(rc));
		tap_ok(intact(rw_shard), "after the failed clear: intact, no temp file");
		rc = sc_get(c, key, &b);
		tap_ok(rc == 0 && tu_blob_check(b.data, b.size, key) == 1,
		       "the new entry survived the failed clear");
		sc_close(c);
	}

	/* without its lock file a writer cannot take the lock */
	TU_CHECK(chmod(dir, 0700) == 0);
	char lock[PATH_MAX + 48];
	snprintf(lock, sizeof lock, "%s.lock", rw_shard);
	TU_CHECK(unlink(lock) == 0);
	TU_CHECK(chmod(dir, 0500) == 0);
	c = NULL;
	TAP_EQ(sc_open(&c, rw_shard, TT_TAG, 0), 0, "open without a lock file");
	if (c) {
		key_of(key, sizeof key, 101);
		rc = sc_put_ex(c, key, buf, tu_blob_make(buf, key, 1, 5000), &po);
		TAP_EQ(rc, -EACCES, "a put that cannot create the lock file: -EACCES (%s)",
		       sc_strerror(rc));
		TAP_EQ(sc_get(c, key, &b), SC_ENOTFOUND, "and is absent");
		sc_close(c);
	}
	tap_ok(intact(rw_shard) && !tu_exists(lock), "intact, no lock file created");

	TU_CHECK(chmod(dir, 0700) == 0);
	free(buf);
	return tap_done();
}

int main(void)
{
	tu_setup("rodir");
	tt_guard();
	tt_fs_prog = getenv("SCRIPTCACHEFS");
	if (!tap_ok(tt_fs_prog && access(tt_fs_prog, X_OK) == 0, "SCRIPTCACHEFS names the daemon"))
		return tap_done();
	if (!tap_ok(geteuid() == 0, "running as root, to become nobody (as CI runs)"))
		return tap_done();
	snprintf(dir, sizeof dir, "%s", tu_path("d"));
	snprintf(ro_shard, sizeof ro_shard, "%s/ro.shard", dir);
	snprintf(rw_shard, sizeof rw_shard, "%s/rw.shard", dir);
	snprintf(tt_mnt, sizeof tt_mnt, "%s", tu_path("mnt"));
	/* the tree up to the directory is traversable, the directory and the
	 * mount point belong to nobody */
	TU_CHECK(chmod(tu_path("."), 0711) == 0);
	TU_CHECK(mkdir(dir, 0700) == 0 && chown(dir, NOBODY, NOBODY) == 0);
	TU_CHECK(mkdir(tt_mnt, 0755) == 0 && chown(tt_mnt, NOBODY, NOBODY) == 0);

	/* nobody mounts through fusermount3, which needs /dev/fuse readable
	 * and writable: 0666 on Debian, maybe 0600 here.  A private mount
	 * namespace gets a 0666 node bound over it; the host keeps its own. */
	const char *node = tu_path("fuse");
	int ns = unshare(CLONE_NEWNS) == 0 &&
		 mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
		 mknod(node, S_IFCHR | 0666, makedev(10, 229)) == 0 && chmod(node, 0666) == 0 &&
		 mount(node, "/dev/fuse", NULL, MS_BIND, NULL) == 0;
	if (!tap_ok(ns, "private mount namespace with a 0666 /dev/fuse (%s)",
		    ns ? "ok" : strerror(errno)))
		return tap_done();

	fflush(stdout);
	pid_t pid = fork();
	TU_CHECK(pid >= 0);
	if (pid == 0) {
		tt_fs_pid = 0;
		exit(as_nobody()); /* exit: flush the TAP stream; the atexit handlers belong to the parent */
	}
	int st = tu_wait(pid);
	/* whatever the child did, nothing stays mounted */
	tt_unmount();
	return st;
}
