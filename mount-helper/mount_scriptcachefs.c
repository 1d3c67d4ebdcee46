/*
 * mount_scriptcachefs.c - mount.scriptcachefs, the mount(8) helper.
 *
 *   mount -t scriptcachefs SHARD DIR [-o OPTS]     (or an fstab line)
 *   -> /sbin/mount.scriptcachefs SHARD DIR [-sfnv] [-o OPTS]
 *   -> scriptcachefs [SHARD] DIR [-o PASSED]       (exec, same pid)
 *
 * The helper translates mount(8)'s convention (options.c), drops to the
 * user of -o setuid=USER, checks for the usual failures (checks.c), and
 * execs the daemon, which mounts and forks into the background as it does
 * when run by hand.  It never mounts anything itself.
 */
#include <errno.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <scriptcache.h>

#include "mh_i.h"

#ifndef MH_VERSION
#define MH_VERSION "unknown"
#endif
#ifndef MH_SCRIPTCACHEFS
#define MH_SCRIPTCACHEFS "/usr/local/bin/scriptcachefs"
#endif

static void usage(void)
{
	printf("usage: mount.scriptcachefs SHARD DIR [-sfnv] [-o OPTS]\n"
	       "\n"
	       "The mount(8) helper for scriptcachefs: mount -t scriptcachefs SHARD DIR\n"
	       "and fstab lines of type scriptcachefs (or fuse.scriptcachefs) run it.\n"
	       "\n"
	       "  SHARD          shard file (absolute, or relative to the current\n"
	       "                 directory; '~' is not expanded); 'default' or '' for\n"
	       "                 the default shard of the user the daemon runs as\n"
	       "  DIR            mount point: an existing, empty directory\n"
	       "  -f             fake: translate and print (with -v), mount nothing\n"
	       "  -n             accepted (no mtab is written: /etc/mtab is /proc's)\n"
	       "  -v             print the daemon command before running it\n"
	       "  -s             sloppy: drop generic options FUSE cannot apply\n"
	       "  -o OPTS        comma-separated options:\n"
	       "     nonempty        allow a mount point that is not empty\n"
	       "     setuid=USER     (root) run the daemon as USER, on USER's default shard\n"
	       "     ro, tag=..., allow_other, nosync, no_dist_pyc, ...\n"
	       "                     passed to scriptcachefs(1)\n"
	       "     defaults, auto, noauto, user, users, owner, group, nofail, _netdev,\n"
	       "     x-*, comment=*, rw, relatime       dropped (mount(8)'s business)\n"
	       "  -h, --help     show this help\n"
	       "  -V, --version  show the version\n"
	       "\n"
	       "The daemon: $SCRIPTCACHEFS, else %s,\n"
	       "else scriptcachefs next to this helper.  See mount.scriptcachefs(8).\n",
	       MH_SCRIPTCACHEFS);
}

static int executable(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

/* The daemon: $SCRIPTCACHEFS (tests), the path configured at build time,
 * else next to this helper (a relocated or DESTDIR install). */
static int find_daemon(char *buf, size_t len)
{
	const char *env = getenv("SCRIPTCACHEFS");
	char self[PATH_MAX], *slash;
	ssize_t n;

	if (env && env[0]) {
		if (!executable(env)) {
			mh_err("SCRIPTCACHEFS=%s: not an executable file", env);
			return MH_EXIT_FAIL;
		}
		snprintf(buf, len, "%s", env);
		return 0;
	}
	if (executable(MH_SCRIPTCACHEFS)) {
		snprintf(buf, len, "%s", MH_SCRIPTCACHEFS);
		return 0;
	}
	n = readlink("/proc/self/exe", self, sizeof self - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		*slash = '\0';
		static const char *const rel[] = { "scriptcachefs", "../bin/scriptcachefs" };
		for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
			char cand[PATH_MAX], *real;
			int m = snprintf(cand, sizeof cand, "%s/%s", self, rel[i]);
			if (m > 0 && (size_t)m < sizeof cand && executable(cand) &&
			    (real = realpath(cand, NULL)) != NULL) {
				m = snprintf(buf, len, "%s", real);
				free(real);
				if (m > 0 && (size_t)m < len)
					return 0;
			}
		}
	}
	mh_err("scriptcachefs not found (not at %s, nor next to this helper); "
	       "set SCRIPTCACHEFS to its path", MH_SCRIPTCACHEFS);
	return MH_EXIT_FAIL;
}

/* -o setuid=USER: become USER, with USER's environment for the default
 * shard.  Mounting as USER then goes through fusermount3 as for any user. */
static int become_user(const char *name)
{
	struct passwd *pw;

	errno = 0;
	pw = getpwnam(name);
	if (!pw) {
		mh_err("setuid=%s: no such user", name);
		return MH_EXIT_USAGE;
	}
	if (pw->pw_uid == geteuid() && pw->pw_uid == getuid())
		return 0;  /* already that user */
	if (geteuid() != 0) {
		mh_err("setuid=%s: only root may run the daemon as another user", name);
		return MH_EXIT_USAGE;
	}
	if (initgroups(pw->pw_name, pw->pw_gid) != 0 || setgid(pw->pw_gid) != 0 ||
	    setuid(pw->pw_uid) != 0) {
		mh_err("setuid=%s: %s", name, strerror(errno));
		return MH_EXIT_FAIL;
	}
	if (setuid(0) == 0) {  /* must be impossible now */
		mh_err("setuid=%s: could not drop root privileges", name);
		return MH_EXIT_FAIL;
	}
	/* The caller's (root's) cache settings are not USER's. */
	if (setenv("HOME", pw->pw_dir, 1) != 0 || setenv("USER", pw->pw_name, 1) != 0 ||
	    setenv("LOGNAME", pw->pw_name, 1) != 0 || unsetenv("XDG_CACHE_HOME") != 0 ||
	    unsetenv("SCRIPTCACHE_PATH") != 0) {
		mh_err("out of memory");
		return MH_EXIT_SYSERR;
	}
	if (chdir(pw->pw_dir) != 0 && chdir("/") != 0) {
		mh_err("chdir /: %s", strerror(errno));
		return MH_EXIT_FAIL;
	}
	return 0;
}

int main(int argc, char **argv)
{
	struct mh_cmd c;
	char dir[PATH_MAX], shard[PATH_MAX], daemon[PATH_MAX];
	const char *dargv[8];
	int ret, is_default, n = 0, err;

	memset(&c, 0, sizeof c);
	ret = mh_parse_args(&c, argc, argv);
	if (ret)
		goto out;
	if (c.mc_help) {
		usage();
		goto out;
	}
	if (c.mc_version) {
		printf("mount.scriptcachefs %s\n", MH_VERSION);
		goto out;
	}
	is_default = !c.mc_shard_arg[0] || strcmp(c.mc_shard_arg, "default") == 0;
	if (c.mc_shard_arg[0] == '~') {
		mh_err("%s: mount(8) does not expand '~': write the full path, or "
		       "'default' for the default shard", c.mc_shard_arg);
		ret = MH_EXIT_USAGE;
		goto out;
	}
	/* Paths relative to the caller's directory, before setuid= moves us. */
	if ((err = mh_absolute(c.mc_dir_arg, dir, sizeof dir)) != 0 ||
	    (!is_default && (err = mh_absolute(c.mc_shard_arg, shard, sizeof shard)) != 0)) {
		mh_err("%s: %s", err == -ENOENT ? "''" : c.mc_dir_arg, strerror(-err));
		ret = MH_EXIT_USAGE;
		goto out;
	}
	if (c.mc_setuid && (ret = become_user(c.mc_setuid)) != 0)
		goto out;
	if (is_default && (err = sc_default_path(shard, sizeof shard)) != 0) {
		mh_err("no default shard: %s (set HOME, or name the shard)", sc_strerror(err));
		ret = MH_EXIT_FAIL;
		goto out;
	}
	if ((ret = find_daemon(daemon, sizeof daemon)) != 0)
		goto out;

	dargv[n++] = daemon;
	if (!is_default)
		dargv[n++] = shard;  /* else the daemon finds the same default itself */
	dargv[n++] = dir;
	if (c.mc_pass) {
		dargv[n++] = "-o";
		dargv[n++] = c.mc_pass;
	}
	dargv[n] = NULL;

	if (c.mc_verbose) {
		if (c.mc_dropped)
			mh_err("dropped options: %s", c.mc_dropped);
		fprintf(stderr, "mount.scriptcachefs: %s%s: ", c.mc_fake ? "would run" : "running",
			is_default ? " (default shard)" : "");
		for (int i = 0; i < n; i++)
			fprintf(stderr, "%s%s", i ? " " : "", dargv[i]);
		fputc('\n', stderr);
		if (is_default)
			fprintf(stderr, "mount.scriptcachefs: default shard: %s\n", shard);
	}
	/* -f: mount(8) is only recording a mount made earlier (or testing):
	 * the environment checks would reject exactly that, so none run. */
	if (c.mc_fake)
		goto out;

	if ((ret = mh_check_dev_fuse()) != 0 || (ret = mh_check_fusermount()) != 0 ||
	    (ret = mh_check_mountpoint(dir, &c)) != 0 ||
	    (ret = mh_check_shard(shard, is_default, c.mc_ro)) != 0)
		goto out;

	fflush(stdout);
	execv(daemon, (char *const *)dargv);
	mh_err("%s: %s", daemon, strerror(errno));
	ret = MH_EXIT_SYSERR;
out:
	mh_cmd_free(&c);
	return ret;
}
