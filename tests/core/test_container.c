/*
 * test_container.c - a writer in a chroot with its own mount namespace.
 *
 * Containers and sandboxes chroot and then unshare their mount namespace.
 * There the kernel spells /proc/self/exe from the root of the original
 * namespace, a path that does not exist inside; an entry recording that
 * path as its writer looks "writer rebuilt or removed" to every other
 * process (the CLI, the mount, evict-stale).  The writer must record a
 * path that leads to its executable from where it runs.
 *
 * A child (root, as CI runs) makes a private mount namespace, binds this
 * program's directory at <root>/<dir name>, mounts /proc there, chroots,
 * unshares again, and stores an entry.  The entry's writer path must be
 * "/<dir name>/<program>" and the entry fresh from a tool's point of view.
 * Not being able to set this up is a failure, not a skip.
 */
#include <libgen.h>
#include <sched.h>
#include <sys/mount.h>

#include "testutil.h"

#define TAG "container test"

enum {
	C_OK = 0,
	C_SETUP = 10,  /* namespace, mounts or chroot failed */
	C_STORE = 11,  /* open, put or lookup failed */
	C_PATH = 12,   /* the recorded writer path is not the expected one */
	C_STATUS = 13, /* the entry is not fresh from a tool's point of view */
};

static char exe_dir[PATH_MAX], exe_base[NAME_MAX + 1];

static int in_container_run(const char *root);

/* The child's diagnostics must reach the TAP stream before _exit(). */
static int in_container(void *arg)
{
	int rc = in_container_run(arg);
	fflush(stdout);
	return rc;
}

static int in_container_run(const char *root)
{
	char bind[PATH_MAX + NAME_MAX + 2], proc[PATH_MAX + 8], want[2 * NAME_MAX + 3];
	char dirname_copy[PATH_MAX];

	snprintf(dirname_copy, sizeof dirname_copy, "%s", exe_dir);
	const char *dname = basename(dirname_copy);
	snprintf(bind, sizeof bind, "%s/%s", root, dname);
	snprintf(proc, sizeof proc, "%s/proc", root);
	snprintf(want, sizeof want, "/%s/%s", dname, exe_base);

	if (unshare(CLONE_NEWNS) != 0 || mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0 ||
	    mkdir(bind, 0755) != 0 || mkdir(proc, 0555) != 0 ||
	    mount(exe_dir, bind, NULL, MS_BIND, NULL) != 0 ||
	    mount("proc", proc, "proc", 0, NULL) != 0 || chroot(root) != 0 || chdir("/") != 0 ||
	    unshare(CLONE_NEWNS) != 0) {
		tap_diag("setting up the container: %s", strerror(errno));
		return C_SETUP;
	}
	char seen[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", seen, sizeof seen - 1);
	seen[n > 0 ? n : 0] = '\0';
	tap_diag("inside: /proc/self/exe reads %s; the program is at %s", seen, want);

	sc_cache *c = NULL;
	sc_put_opts po = { .no_source = 1 };
	sc_entry_info e;
	int err;
	if ((err = sc_open(&c, "/s.shard", TAG, 0)) != 0 ||
	    (err = sc_put_ex(c, "/k", "bytes", 5, &po)) != 0 || (err = sc_lookup(c, "/k", &e)) != 0) {
		tap_diag("storing inside: %s", sc_strerror(err));
		sc_close(c);
		return C_STORE;
	}
	int rc = C_OK;
	if (e.exe_path_len != strlen(want) || memcmp(e.exe_path, want, e.exe_path_len) != 0) {
		tap_diag("recorded writer path: %.*s", (int)e.exe_path_len, e.exe_path);
		rc = C_PATH;
	} else if (sc_entry_status(&e) != 0) {
		tap_diag("status: %s", sc_strerror(sc_entry_status(&e)));
		rc = C_STATUS;
	}
	sc_close(c);
	return rc;
}

int main(void)
{
	char exe[PATH_MAX];

	tu_setup("container");
	TU_CHECK(realpath("/proc/self/exe", exe) != NULL);
	char *slash = strrchr(exe, '/');
	TU_CHECK(slash && slash != exe && strlen(slash + 1) <= NAME_MAX);
	snprintf(exe_base, sizeof exe_base, "%s", slash + 1);
	*slash = '\0';
	snprintf(exe_dir, sizeof exe_dir, "%s", exe);

	char root[PATH_MAX];
	snprintf(root, sizeof root, "%s", tu_path("root"));
	TU_CHECK(mkdir(root, 0755) == 0);

	/* Nothing here may touch the library before the fork: the writer
	 * path is worked out once per process, in the child. */
	int st = tu_run_child(in_container, root);
	tap_ok(st != C_SETUP, "a chroot with its own mount namespace (needs root, as CI runs)");
	tap_ok(st != C_STORE && st != C_SETUP, "a writer inside stores an entry");
	tap_ok(st != C_PATH && st != C_SETUP && st != C_STORE,
	       "the entry names the writer by its path inside the container");
	TAP_EQ(st, C_OK, "and a tool inside finds the entry fresh, not 'writer rebuilt or removed'");

	/* Outside, the ordinary case: the path is the program's own. */
	sc_cache *c = NULL;
	sc_put_opts po = { .no_source = 1 };
	sc_entry_info e;
	TU_CHECK(sc_open(&c, tu_path("out.shard"), TAG, 0) == 0);
	TU_CHECK(sc_put_ex(c, "/k", "bytes", 5, &po) == 0 && sc_lookup(c, "/k", &e) == 0);
	*slash = '/';
	tap_ok(e.exe_path_len == strlen(exe) && memcmp(e.exe_path, exe, e.exe_path_len) == 0,
	       "outside, the writer path is the program's canonical path (%.*s)",
	       (int)e.exe_path_len, e.exe_path);
	TAP_EQ(sc_entry_status(&e), 0, "and the entry is fresh");
	sc_close(c);
	return tap_done();
}
