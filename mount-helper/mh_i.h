/*
 * mh_i.h - mount.scriptcachefs internals (private to mount-helper/).
 *
 * The helper is three steps, one file each:
 *   options.c             mount(8)'s command line -> struct mh_cmd
 *   checks.c              the usual failures, found before the daemon runs
 *   mount_scriptcachefs.c main: privileges, the daemon's path, exec
 *
 * docs/INSTALL.md and man/mount.scriptcachefs.8 describe the behaviour.
 */
#ifndef MH_I_H
#define MH_I_H

#include <stddef.h>

/* mount(8)'s exit codes (mount(8), "RETURN CODES"). */
enum {
	MH_EXIT_OK = 0,
	MH_EXIT_USAGE = 1,   /* incorrect invocation or permissions */
	MH_EXIT_SYSERR = 2,  /* out of memory, exec failed */
	MH_EXIT_FAIL = 32,   /* mount failure */
};

/* What mount(8) asked for, after translation. */
struct mh_cmd {
	const char *mc_shard_arg;  /* SHARD as given ("" and "default": default shard) */
	const char *mc_dir_arg;    /* DIR as given */
	int mc_fake;               /* -f: do everything but mount */
	int mc_nomtab;             /* -n: accepted; nothing to write (see options.c) */
	int mc_verbose;            /* -v */
	int mc_sloppy;             /* -s: drop generic options FUSE cannot apply */
	int mc_help, mc_version;
	/* Consumed by the helper, never passed on: */
	int mc_nonempty;           /* -o nonempty: allow a non-empty mount point */
	int mc_ro;                 /* -o ro seen (also passed on) */
	char *mc_setuid;           /* -o setuid=USER: run the daemon as USER */
	/* The comma-separated lists, malloc'd (NULL when empty): */
	char *mc_pass;             /* options for scriptcachefs */
	char *mc_dropped;          /* options mount(8) owns or no-op defaults */
};

/*
 * Parse argv as mount(8) calls a helper:
 *   mount.scriptcachefs SHARD DIR [-sfnv] [-o OPTS] [-t TYPE]
 * Flags may come before or after the operands, -o may repeat.
 * @return 0, or MH_EXIT_USAGE after printing one line.
 */
int mh_parse_args(struct mh_cmd *c, int argc, char **argv);

/* Free what mh_parse_args() allocated; safe on a zeroed struct. */
void mh_cmd_free(struct mh_cmd *c);

/* Print "mount.scriptcachefs: " + message + newline on stderr. */
void mh_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/*
 * The checks, each printing one line on failure.  They run as the user the
 * daemon will run as, since that user's rights are what count.
 * @return 0 or MH_EXIT_FAIL (MH_EXIT_SYSERR for out of memory).
 */
int mh_check_dev_fuse(void);
int mh_check_fusermount(void);
/* dir: absolute (mh_absolute()).  A dead scriptcachefs mount on dir is
 * unmounted (checks.c, recover_dead_mount()). */
int mh_check_mountpoint(const char *dir, const struct mh_cmd *c);
int mh_check_shard(const char *shard_abs, int is_default, int ro);

/* Canonical absolute form of a path that may not exist, relative to the
 * current directory (no "~" expansion: mount(8) does none either).
 * @return 0 or -errno. */
int mh_absolute(const char *path, char *buf, size_t len);

#endif
