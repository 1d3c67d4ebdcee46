/*
 * test_fullfs.c - a full filesystem and a read-only one.
 *
 * In a private mount namespace (unshare(CLONE_NEWNS): root, as CI runs)
 * a 2 MiB tmpfs holds a shard of 20 entries and a filler file that takes
 * the rest of the space.  Then a library put, a compaction, a clear, and a
 * put through a scriptcachefs mount of that shard must each fail with
 * ENOSPC (-ENOSPC from the library, errno ENOSPC from rename(2) at the FUSE
 * boundary), and after each the shard must verify, serve every old entry
 * byte for byte, and the directory hold no temp file.  Removing the filler
 * makes puts work again.
 *
 * The same tmpfs bind-mounted read-only: a read-write sc_open fails with
 * -EROFS, SC_RDONLY opens and serves hits, a put on it is SC_EREADONLY;
 * scriptcachefs -o ro serves the blobs and refuses writes with EROFS, and
 * scriptcachefs without -o ro refuses to start.
 *
 * Everything mounted is unmounted before the end (and the namespace dies
 * with the process whatever happens).  Not being able to set this up is a
 * failure, not a skip.
 */
#include <sched.h>
#include <sys/mount.h>

#include "placecheck.h"

#define NOLD 20

static char full[PATH_MAX], shard[PATH_MAX + 32], robind[PATH_MAX], roshard[PATH_MAX + 32];

static void key_of(char *buf, size_t len, int i)
{
	snprintf(buf, len, "/full/k%d", i);
}

/* After each refused write: intact, and only the shard, its lock and the
 * filler in the tmpfs. */
static int intact(const char *path)
{
	static const char *const allowed[] = { "s.shard", "s.shard.lock", "filler", NULL };
	return pc_intact(path, "/full", NOLD, full, allowed);
}

int main(void)
{
	tu_setup("fullfs");
	tt_guard();
	tt_fs_prog = getenv("SCRIPTCACHEFS");
	if (!tap_ok(tt_fs_prog && access(tt_fs_prog, X_OK) == 0, "SCRIPTCACHEFS names the daemon"))
		return tap_done();
	snprintf(full, sizeof full, "%s", tu_path("full"));
	snprintf(shard, sizeof shard, "%s/s.shard", full);
	snprintf(robind, sizeof robind, "%s", tu_path("ro"));
	snprintf(roshard, sizeof roshard, "%s/s.shard", robind);
	snprintf(tt_mnt, sizeof tt_mnt, "%s", tu_path("mnt"));
	TU_CHECK(mkdir(full, 0700) == 0 && mkdir(robind, 0700) == 0 && mkdir(tt_mnt, 0755) == 0);

	int ns = unshare(CLONE_NEWNS) == 0 &&
		 mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0;
	if (!tap_ok(ns, "private mount namespace (needs root: %s)", ns ? "ok" : strerror(errno)))
		return tap_done();
	if (!tap_ok(mount("tmpfs", full, "tmpfs", 0, "size=2m,mode=0700") == 0,
		    "2 MiB tmpfs mounted"))
		return tap_done();

	/* 20 entries of ~8 KiB, then a filler until the filesystem is full */
	sc_cache *c = NULL;
	unsigned char *buf = malloc(70000);
	char key[64];
	sc_put_opts po = { .no_source = 1 };
	TU_CHECK(sc_open(&c, shard, TT_TAG, 0) == 0);
	for (int i = 0; i < NOLD; i++) {
		key_of(key, sizeof key, i);
		TU_CHECK(sc_put_ex(c, key, buf, tu_blob_make(buf, key, 1, 8000), &po) == 0);
	}
	int fd = open(tu_path("full/filler"), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	TU_CHECK(fd >= 0);
	memset(buf, 0xee, 65536);
	while (write(fd, buf, 65536) > 0)
		;
	while (write(fd, buf, 1) > 0)
		;
	TAP_EQ(errno, ENOSPC, "the tmpfs is full");
	close(fd);

	int rc;
	key_of(key, sizeof key, 1000);
	rc = sc_put_ex(c, key, buf, tu_blob_make(buf, key, 1, 60000), &po);
	TAP_EQ(rc, -ENOSPC, "put on a full filesystem: -ENOSPC (%s)", sc_strerror(rc));
	tap_ok(intact(shard), "after the failed put: shard verifies, old entries served, no temp file");
	sc_blob b;
	TAP_EQ(sc_get(c, key, &b), SC_ENOTFOUND, "the failed put is absent");
	rc = sc_compact(c);
	TAP_EQ(rc, -ENOSPC, "compaction on a full filesystem: -ENOSPC (%s)", sc_strerror(rc));
	tap_ok(intact(shard), "after the failed compaction: intact, no temp file");
	rc = sc_clear(c);
	TAP_EQ(rc, -ENOSPC, "clear on a full filesystem: -ENOSPC (%s)", sc_strerror(rc));
	tap_ok(intact(shard), "after the failed clear: intact, no temp file");
	key_of(key, sizeof key, 3);
	TAP_EQ(sc_get(c, key, &b), 0, "the writer's own handle still serves old entries");

	/* through the mount */
	if (tap_ok(tt_fs_start(shard) == 0, "scriptcachefs mounts the full shard")) {
		key_of(key, sizeof key, 2000);
		int e = tt_mount_put(key, buf, tu_blob_make(buf, key, 1, 60000), 1);
		TAP_EQ(e, ENOSPC, "write through the mount: rename fails with ENOSPC (%s)",
		       strerror(e));
		key_of(key, sizeof key, 5);
		e = tt_mount_put(key, buf, tu_blob_make(buf, key, 2, 60000), 2);
		TAP_EQ(e, ENOSPC, "replacing an entry through the mount: ENOSPC (%s)", strerror(e));
		tap_ok(pc_mount_blob_ok(key), "the mount still serves the old version");
		tt_fs_stop();
		TAP_EQ(tt_is_mounted(tt_mnt), 0, "unmounted");
	}
	tap_ok(intact(shard), "after the failed mount writes: intact, no temp file");

	TU_CHECK(unlink(tu_path("full/filler")) == 0);
	key_of(key, sizeof key, 1000);
	TAP_EQ(sc_put_ex(c, key, buf, tu_blob_make(buf, key, 1, 60000), &po), 0,
	       "with space again, the put succeeds");
	TAP_EQ(sc_compact(c), 0, "and so does a compaction");
	sc_close(c);
	tap_ok(intact(shard), "intact after recovery");

	/* read-only bind mount of the same filesystem */
	int ro = mount(full, robind, NULL, MS_BIND, NULL) == 0 &&
		 mount(NULL, robind, NULL, MS_REMOUNT | MS_BIND | MS_RDONLY, NULL) == 0;
	if (tap_ok(ro, "read-only bind mount")) {
		c = NULL;
		rc = sc_open(&c, roshard, TT_TAG, 0);
		TAP_EQ(rc, -EROFS, "read-write open on a read-only filesystem: -EROFS (%s)",
		       sc_strerror(rc));
		sc_close(c);
		c = NULL;
		rc = sc_open(&c, roshard, TT_TAG, SC_RDONLY);
		TAP_EQ(rc, 0, "SC_RDONLY opens it");
		if (rc == 0) {
			key_of(key, sizeof key, 7);
			rc = sc_get(c, key, &b);
			tap_ok(rc == 0 && tu_blob_check(b.data, b.size, key) == 1,
			       "and serves hits");
			TAP_EQ(sc_verify(c, NULL, NULL, NULL), 0, "and verifies");
			rc = sc_put_ex(c, key, buf, tu_blob_make(buf, key, 3, 100), &po);
			TAP_EQ(rc, SC_EREADONLY, "a put on it: SC_EREADONLY (%s)", sc_strerror(rc));
			sc_close(c);
		}
		if (tap_ok(tt_fs_start_opt(roshard, "ro") == 0, "scriptcachefs -o ro mounts it")) {
			tap_ok(pc_mount_blob_ok(key), "the read-only mount serves the blob");
			key_of(key, sizeof key, 3000);
			int e = tt_mount_put(key, buf, tu_blob_make(buf, key, 1, 100), 3);
			TAP_EQ(e, EROFS, "writing through it: EROFS (%s)", strerror(e));
			tt_fs_stop();
			TAP_EQ(tt_is_mounted(tt_mnt), 0, "unmounted");
		}
		tap_ok(tt_fs_start(roshard) != 0 && !tt_is_mounted(tt_mnt),
		       "scriptcachefs without -o ro refuses a shard on a read-only filesystem");
		tt_fs_stop();
		tap_ok(umount(robind) == 0, "read-only bind unmounted");
	}
	tap_ok(umount(full) == 0, "tmpfs unmounted");
	free(buf);
	return tap_done();
}
