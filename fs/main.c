/*
 * main.c - scriptcachefs: mount a scriptcache shard as a filesystem.
 *
 *   scriptcachefs [options] [shard] mountpoint
 *
 * See docs/FS.md for what the mount shows and how writing works.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_i.h"

static void usage(const char *prog)
{
	printf("usage: %s [options] [shard] mountpoint\n"
	       "\n"
	       "Mount a scriptcache shard (default: $SCRIPTCACHE_PATH, else\n"
	       "$XDG_CACHE_HOME/scriptcache/scripts.shard) as a filesystem.\n"
	       "\n"
	       "scriptcachefs options:\n"
	       "    -o ro                  read-only mount; the shard is opened read-only\n"
	       "    -o allow_other         let other users in (needs user_allow_other in\n"
	       "                           /etc/fuse.conf unless run by root)\n"
	       "    -o tag=STRING          fingerprint tag of entries written through the\n"
	       "                           mount (default \"scriptcachefs\")\n"
	       "    -o idle_commit_ms=N    commit a plain-written <entry>/blob after N ms\n"
	       "                           without writes and with no writer left (default 500)\n"
	       "    -o commit_on_close     commit <entry>/blob when its last writer closes it;\n"
	       "                           costs an open and a close round trip on every open\n"
	       "    -o nosync              skip fdatasync on commits\n"
	       "    -o no_dist_pyc         do not serve the distribution's .pyc\n"
	       "                           (/A/B/__pycache__/X.pyc) as .tree/A/B/X.pyc when\n"
	       "                           the cache has no entry for it\n"
	       "    -o lower=PATH[:PATH...] read-only lower shards under the shard, in\n"
	       "                           lookup order (a directory: its *.shard files);\n"
	       "                           replaces the configured ones ($SCRIPTCACHE_LOWER)\n"
	       "    -o nolowers            no lower shard, not even the configured ones\n"
	       "    -o remote=URL          on a miss of the flat view for a key naming a source\n"
	       "                           file, fetch the compiled bytes from this remote\n"
	       "                           cache and put them into the shard (docs/REMOTE.md);\n"
	       "                           mode and credentials: $SCRIPTCACHE_REMOTE_MODE,\n"
	       "                           $SCRIPTCACHE_REMOTE_AUTH_FILE, ... never here\n"
	       "    -o remote_tag=STRING   fingerprint to look up: the interpreter's tag ...\n"
	       "    -o remote_exe=PATH     ... and its executable (default: the fingerprints\n"
	       "                           of the shard's entries at mount time)\n"
	       "    -o remote_timeout_ms=N bound on the remote's part of one miss (default 200,\n"
	       "                           else $SCRIPTCACHE_REMOTE_TIMEOUT_MS if set)\n"
	       "    -o remote_breaker_s=N  after a transport failure, do not ask the remote\n"
	       "                           for N seconds (default 30; 0: ask every time)\n"
	       "\n"
	       "Without a shard argument the default shard is mounted with the lower\n"
	       "shards configured for it ($SCRIPTCACHE_LOWER, else the *.shard files of\n"
	       "$SCRIPTCACHE_LOWER_DIR or /usr/lib/scriptcache); a shard named on the\n"
	       "command line is that file alone, plus what -o lower adds.\n"
	       "\n", prog);
}

enum { KEY_RO, KEY_ALLOW_OTHER, KEY_LOWER, KEY_HELP, KEY_VERSION };

static const struct fuse_opt fs_optspec[] = {
	{ "tag=%s", offsetof(struct fs_opts, o_tag), 0 },
	{ "idle_commit_ms=%u", offsetof(struct fs_opts, o_idle_ms), 0 },
	{ "commit_on_close", offsetof(struct fs_opts, o_commit_on_close), 1 },
	{ "nosync", offsetof(struct fs_opts, o_nosync), 1 },
	{ "no_dist_pyc", offsetof(struct fs_opts, o_no_dist_pyc), 1 },
	{ "nolowers", offsetof(struct fs_opts, o_nolowers), 1 },
	{ "remote=%s", offsetof(struct fs_opts, o_remote), 0 },
	{ "remote_tag=%s", offsetof(struct fs_opts, o_remote_tag), 0 },
	{ "remote_exe=%s", offsetof(struct fs_opts, o_remote_exe), 0 },
	{ "remote_timeout_ms=%d", offsetof(struct fs_opts, o_remote_timeout_ms), 0 },
	{ "remote_breaker_s=%u", offsetof(struct fs_opts, o_remote_breaker_s), 0 },
	FUSE_OPT_KEY("lower=", KEY_LOWER),
	FUSE_OPT_KEY("ro", KEY_RO),
	FUSE_OPT_KEY("allow_other", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("allow_root", KEY_ALLOW_OTHER),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_END
};

/* fuse_opt_parse() stores the templated options at their offsets from the
 * start of this struct: o must stay the first member. */
struct parse_state {
	struct fs_opts o;
	char *pos[3];
	int npos;
	int help, version;
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	struct parse_state *ps = data;
	(void)outargs;
	switch (key) {
	case KEY_RO:
		ps->o.o_ro = 1;
		return 1; /* also a mount option for the kernel */
	case KEY_ALLOW_OTHER:
		ps->o.o_allow_other = 1; /* under.c checks each caller */
		return 1;                /* libfuse's option */
	case KEY_LOWER: {
		/* -o lower=A -o lower=B is lower=A:B */
		const char *v = arg + strlen("lower=");
		char *old = ps->o.o_lower, *all;
		if (asprintf(&all, "%s%s%s", old ? old : "", old ? ":" : "", v) < 0)
			return -1;
		free(old);
		ps->o.o_lower = all;
		ps->o.o_lower_given = 1;
		return 0;
	}
	case KEY_HELP:
		ps->help = 1;
		return 0;
	case KEY_VERSION:
		ps->version = 1;
		return 0;
	case FUSE_OPT_KEY_NONOPT:
		if (ps->npos < 3)
			ps->pos[ps->npos] = strdup(arg);
		ps->npos++;
		return 0;
	default:
		return 1;
	}
}

/* Stack one lower shard (-o lower), as the library stacks the configured
 * ones: one that cannot be used now stays in the stack (SC_LOWER_KEEP),
 * misses, and is retried; a missing one is left out.  Both are said on
 * stderr, neither stops the mount. */
static void add_lower(const char *prog, sc_cache *c, const char *path)
{
	int rc = sc_add_lower(c, path, SC_LOWER_KEEP);
	if (rc == 0)
		return;
	if (rc == -ENOENT)
		fprintf(stderr, "%s: lower shard %s: not found, left out\n", prog, path);
	else if (rc == -EEXIST)
		fprintf(stderr, "%s: lower shard %s: already in the stack, used once\n", prog, path);
	else if (rc == -EINVAL || rc == -E2BIG)
		fprintf(stderr, "%s: lower shard %s: %s, left out\n", prog, path,
			rc == -E2BIG ? "too many lower shards" : "not a regular file");
	else
		fprintf(stderr, "%s: lower shard %s: %s (kept: it misses until it can be used)\n",
			prog, path, sc_strerror(rc));
}

static int by_name(const struct dirent **a, const struct dirent **b)
{
	return strcmp((*a)->d_name, (*b)->d_name); /* byte order, as the library */
}

static int shard_file(const struct dirent *de)
{
	size_t n = strlen(de->d_name);
	return de->d_name[0] != '.' && n > 6 && strcmp(de->d_name + n - 6, ".shard") == 0;
}

/* -o lower=PATH[:PATH...]: each item in order; an item naming a directory
 * stands for its *.shard files sorted by name, as in $SCRIPTCACHE_LOWER. */
static int add_lowers(const char *prog, sc_cache *c, const char *list)
{
	char *copy = strdup(list), *save = NULL;
	struct stat st;
	if (!copy)
		return -ENOMEM;
	for (char *item = strtok_r(copy, ":", &save); item; item = strtok_r(NULL, ":", &save)) {
		if (stat(item, &st) != 0 || !S_ISDIR(st.st_mode)) {
			add_lower(prog, c, item);
			continue;
		}
		struct dirent **names = NULL;
		int n = scandir(item, &names, shard_file, by_name);
		if (n < 0) {
			fprintf(stderr, "%s: lower shards in %s: %s\n", prog, item, strerror(errno));
			continue;
		}
		for (int i = 0; i < n; i++) {
			char path[PATH_MAX];
			if (snprintf(path, sizeof path, "%s/%s", item, names[i]->d_name) <
			    (int)sizeof path)
				add_lower(prog, c, path);
			free(names[i]);
		}
		free(names);
	}
	free(copy);
	return 0;
}

/* Nonzero if @p path is @p dir or below it (both canonical). */
static int is_below(const char *path, const char *dir)
{
	size_t n = strlen(dir);
	return strncmp(path, dir, n) == 0 && (path[n] == '/' || path[n] == '\0' || n == 1);
}

int main(int argc, char *argv[])
{
	struct fuse_args args = FUSE_ARGS_INIT(argc, argv);
	struct fuse_cmdline_opts copts;
	struct fuse_loop_config *lcfg = NULL;
	struct parse_state ps;
	struct fs *fs;
	int ret = 1, err, mounted = 0, handlers = 0;
	char *mnt_abs = NULL;

	memset(&copts, 0, sizeof copts);
	fs = calloc(1, sizeof *fs);
	if (!fs)
		return 1;
	fs->fs_inotify = fs->fs_wake = -1;
	fs->fs_qtail = &fs->fs_qhead;
	memset(&ps, 0, sizeof ps);
	ps.o.o_idle_ms = 500;
	ps.o.o_remote_timeout_ms = -1;
	ps.o.o_remote_breaker_s = 30;
	if (fuse_opt_parse(&args, &ps, fs_optspec, opt_proc) == -1)
		goto out;
	fs->fs_o = ps.o;
	if (ps.help) {
		usage(argv[0]);
		fuse_cmdline_help();
		fuse_lowlevel_help();
		ret = 0;
		goto out;
	}
	if (ps.version) {
		printf("scriptcachefs %s (libscriptcache %s)\n", SC_VERSION_STRING, SC_VERSION_STRING);
		fuse_lowlevel_version();
		ret = 0;
		goto out;
	}
	if (ps.npos < 1 || ps.npos > 2) {
		fprintf(stderr, "%s: expected [shard] mountpoint (see --help)\n", argv[0]);
		goto out;
	}
	/* ps.pos owns these strings */
	const char *mnt_arg = ps.pos[ps.npos - 1];
	fs->fs_o.o_shard = ps.npos == 2 ? ps.pos[0] : NULL;
	if (!fs->fs_o.o_tag)
		fs->fs_o.o_tag = strdup("scriptcachefs");
	if (!mnt_arg || fuse_opt_add_arg(&args, mnt_arg) != 0 ||
	    fuse_opt_add_arg(&args, "-odefault_permissions,fsname=scriptcache,subtype=scriptcachefs") != 0)
		goto out;
	if (fuse_parse_cmdline(&args, &copts) != 0)
		goto out;
	mnt_abs = realpath(copts.mountpoint, NULL);
	if (!mnt_abs) {
		fprintf(stderr, "%s: %s: %s\n", argv[0], copts.mountpoint, strerror(errno));
		goto out;
	}
	fs->fs_o.o_mountpoint = mnt_abs;

	if (fs->fs_o.o_lower_given && fs->fs_o.o_nolowers) {
		fprintf(stderr, "%s: -o lower and -o nolowers exclude each other\n", argv[0]);
		goto out;
	}
	/* The default shard (no shard argument) gets the lower shards
	 * configured for it, as every interpreter's sc_open(NULL) does
	 * (docs/LAYERS.md); -o lower replaces them, -o nolowers drops them.
	 * A shard named on the command line is that file alone. */
	unsigned flags = SC_IGNORE_ENV;
	if (fs->fs_o.o_ro)
		flags |= SC_RDONLY | SC_NOCREATE;
	if (fs->fs_o.o_nosync)
		flags |= SC_NOSYNC;
	if (fs->fs_o.o_lower_given || fs->fs_o.o_nolowers)
		flags |= SC_NO_LOWERS;
	err = sc_open(&fs->fs_cache, fs->fs_o.o_shard, NULL, flags);
	if (err) {
		int rdonly_hint = !fs->fs_o.o_ro && (err == -EACCES || err == -EROFS || err == -EPERM);
		fprintf(stderr, "%s: %s: %s%s\n", argv[0],
			fs->fs_o.o_shard ? fs->fs_o.o_shard : "default shard", sc_strerror(err),
			rdonly_hint ? " (to serve a shard you cannot write, mount with -o ro)" : "");
		goto out;
	}
	if (fs->fs_o.o_lower && add_lowers(argv[0], fs->fs_cache, fs->fs_o.o_lower) != 0) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		goto out;
	}
	/* The daemon would have to answer its own requests to reach a shard
	 * below its mount point, before it answers any: a hang.  The same
	 * holds for a lower shard, which lookups re-stat once a second. */
	for (int i = 0, n = sc_layer_count(fs->fs_cache); i < n; i++) {
		sc_layer_info li;
		if (sc_get_layer_info(fs->fs_cache, i, &li) == 0 && li.path &&
		    is_below(li.path, mnt_abs)) {
			fprintf(stderr, "%s: the %sshard %s is inside the mount point %s; "
				"keep it elsewhere\n", argv[0], i ? "lower " : "", li.path, mnt_abs);
			goto out;
		}
	}
	if (fs_remote_open(fs, argv[0]) != 0)
		goto out;
	fs->fs_uid = getuid();
	fs->fs_gid = getgid();
	clock_gettime(CLOCK_REALTIME, &fs->fs_root_mtime);
	pthread_rwlock_init(&fs->fs_map_lock, NULL);
	pthread_mutex_init(&fs->fs_lock, NULL);
	pthread_cond_init(&fs->fs_commit_cv, NULL);
	pthread_mutex_init(&fs->fs_qlock, NULL);
	if (fs_table_init(fs) != 0 || fs_tree_init(fs) != 0 || fs_under_init(fs) != 0) {
		fprintf(stderr, "%s: out of memory\n", argv[0]);
		goto out;
	}

	fs->fs_se = fuse_session_new(&args, &fs_ops, sizeof fs_ops, fs);
	if (!fs->fs_se)
		goto out;
	if (fuse_set_signal_handlers(fs->fs_se) != 0)
		goto out;
	handlers = 1;
	if (fuse_session_mount(fs->fs_se, fs->fs_o.o_mountpoint) != 0)
		goto out;
	mounted = 1;
	fs_daemonize(fs, copts.foreground);
	/* threads do not survive the daemon's fork: start them after it */
	err = fs_watcher_start(fs);
	if (err) {
		fprintf(stderr, "%s: watcher: %s\n", argv[0], strerror(-err));
		fs_report_ready(fs, 0);
		goto out;
	}
	if (copts.singlethread) {
		ret = fuse_session_loop(fs->fs_se);
	} else {
		lcfg = fuse_loop_cfg_create();
		if (!lcfg)
			goto out;
		fuse_loop_cfg_set_clone_fd(lcfg, (unsigned)copts.clone_fd);
		/* UINT_MAX: not given on the command line, keep libfuse's default */
		if (copts.max_idle_threads != UINT_MAX)
			fuse_loop_cfg_set_idle_threads(lcfg, copts.max_idle_threads);
		if (copts.max_threads != UINT_MAX && copts.max_threads > 0)
			fuse_loop_cfg_set_max_threads(lcfg, copts.max_threads);
		ret = fuse_session_loop_mt(fs->fs_se, lcfg);
	}
	ret = ret != 0;
out:
	/* Files written with plain cp and not yet committed are committed
	 * now; other pending (temporary) files are dropped.  Before the
	 * watcher stops, so that it frees the notifications this queues. */
	if (fs->fs_itab && fs->fs_cache)
		fs_commit_idle(fs, 1);
	fs_watcher_stop(fs);
	if (mounted)
		fuse_session_unmount(fs->fs_se);
	if (handlers)
		fuse_remove_signal_handlers(fs->fs_se);
	if (fs->fs_se)
		fuse_session_destroy(fs->fs_se);
	fuse_loop_cfg_destroy(lcfg);
	fs_listing_release(fs);
	fs_tree_free(fs);
	fs_under_free(fs);
	fs_attr_free(fs);
	fs_table_free(fs);
	fs_remote_close(fs);
	sc_close(fs->fs_cache);
	free(copts.mountpoint);
	free(mnt_abs);
	free(fs->fs_o.o_tag);
	free(fs->fs_o.o_lower);
	free(fs->fs_o.o_remote);
	free(fs->fs_o.o_remote_tag);
	free(fs->fs_o.o_remote_exe);
	for (int i = 0; i < ps.npos && i < 3; i++)
		free(ps.pos[i]);
	fuse_opt_free_args(&args);
	free(fs);
	return ret;
}
