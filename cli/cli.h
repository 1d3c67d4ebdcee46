/*
 * cli.h - shared declarations of the scriptcache command-line tool.
 *
 * The tool is a thin client of the public API (scriptcache.h) only:
 *   main.c         argument parsing, the command table, --help/--version
 *   open.c         which shard to open, how, and what the user sees when
 *                  it cannot be opened (disabled cache, no shard, ...)
 *   cmd_inspect.c  read-only commands: stats, ls, get, verify, path
 *   cmd_modify.c   commands that write: put, rm, clear, compact, evict-stale,
 *                  and build (a shard to ship, written beside the others)
 *   cmd_names.c    encode / decode of FUSE directory-entry names
 *   cmd_remote.c   push / pull to and from a remote tier (remote/sc_remote.h),
 *                  and the remote part of verify --remote
 *   keyarg.c       the key a KEY argument stands for (paths as typed)
 *   humanfmt.c     sizes, ages and terminal-safe keys for human output
 *   jsonout.c      JSON output through jansson
 */
#ifndef SC_CLI_H
#define SC_CLI_H

#include <limits.h>
#include <stdio.h>

#include "scriptcache.h"

/* Exit codes (documented in docs/CLI.md). */
enum {
	CLI_OK = 0,    /* success */
	CLI_MISS = 1,  /* miss, not found, stale, corrupt shard */
	CLI_ERROR = 2, /* usage error, disabled cache, I/O or other failure */
};

/* Options; which ones a command accepts is in the command table (main.c). */
enum {
	OPT_JSON = 1 << 0,
	OPT_LONG = 1 << 1,
	OPT_TAG = 1 << 2,
	OPT_EXE = 1 << 3,
	OPT_NO_SOURCE = 1 << 4,
	OPT_KEY = 1 << 5, /* --key KEY: a key taken exactly as given */
	OPT_BASE_DIR = 1 << 6, /* build --base-dir DIR */
	OPT_REMOTE = 1 << 7, /* --remote URL */
	OPT_LAST = OPT_REMOTE,
};

struct cli {
	const char *cmd;     /* subcommand name, for messages */
	const char *shard;   /* --shard PATH, or NULL for the default shard */
	unsigned opts;       /* OPT_* given on the command line */
	const char *tag;     /* --tag */
	const char *exe;     /* --exe */
	const char *base_dir; /* --base-dir */
	int no_lowers;       /* --no-lowers: the own shard alone */
	const char *remote;  /* --remote URL (else SCRIPTCACHE_REMOTE) */
	int argc;            /* positional arguments after the subcommand; */
	char **argv;         /* KEY arguments are already keys (main.c) */
	sc_cache *cache;     /* set by cli_open() */
	int open_err;        /* sc_open()'s code when cli_open() failed */
	char path[PATH_MAX]; /* the shard path cli_open() used */
};

/* How a command opens the shard. */
enum cli_open_mode {
	CLI_OPEN_READ,   /* SC_RDONLY | SC_NOCREATE: never creates a shard */
	CLI_OPEN_MODIFY, /* writable, SC_NOCREATE: nothing to do without a shard */
	CLI_OPEN_CREATE, /* writable, created if missing */
};

/* cli_open() result besides CLI_OK / CLI_ERROR. */
#define CLI_NO_SHARD (-1)

/*
 * Resolve the shard path and open it into cli->cache.  Returns CLI_OK, or
 * the exit code after printing why (sc_open()'s code is in cli->open_err:
 * a damaged shard is CLI_MISS, like any corruption).  CLI_NO_SHARD (only for READ and MODIFY) is
 * left to the caller, since commands react differently to a missing shard;
 * cli_no_shard() prints the standard message.
 */
int cli_open(struct cli *cli, enum cli_open_mode mode);
/* Only resolve cli->path (no open).  Returns CLI_OK or CLI_ERROR (printed). */
int cli_resolve_path(struct cli *cli);
void cli_no_shard(const struct cli *cli);
void cli_close(struct cli *cli);

/* "scriptcache: <what>: <sc_strerror(err)>" on stderr. */
void cli_err(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* "scriptcache: <message>" on stderr. */
void cli_msg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Exit code for a library return code: misses and corruption are 1, the rest 2. */
int cli_exit_code(int err);

/* Commands: each returns an exit code. */
int cmd_stats(struct cli *cli);
int cmd_ls(struct cli *cli);
int cmd_get(struct cli *cli);
int cmd_verify(struct cli *cli);
int cmd_path(struct cli *cli);
int cmd_put(struct cli *cli);
int cmd_rm(struct cli *cli);
int cmd_clear(struct cli *cli);
int cmd_compact(struct cli *cli);
int cmd_evict_stale(struct cli *cli);
int cmd_build(struct cli *cli);
int cmd_encode(struct cli *cli);
int cmd_decode(struct cli *cli);
int cmd_push(struct cli *cli);
int cmd_pull(struct cli *cli);

/*
 * verify --remote (cmd_remote.c).  cli_vremote_open() reads the remote's
 * configuration before anything is checked, so that a bad one stops the
 * command at once: CLI_OK with *out set, CLI_OK with *out NULL when the
 * remote is off (said on stderr; cli_vremote_off_json() is the report),
 * or the exit code (printed).  cli_vremote_check(), once cli->cache is
 * open, checks the remote's copies of the entries and returns the exit
 * code of that part; it prints the text report, or with --json gives the
 * "remote" object in *json.
 */
struct vremote;
struct json_t;
int cli_vremote_open(struct cli *cli, struct vremote **out);
int cli_vremote_check(struct vremote *v, struct json_t **json);
struct json_t *cli_vremote_off_json(void);
void cli_vremote_close(struct vremote *v);

/*
 * The key for a KEY argument typed as a path (keyarg.c): realpath(3) of an
 * existing file, else the path made absolute and resolved as far as it
 * exists (GNU `realpath -m`).  *out is malloc'd.  0, -EINVAL for an empty
 * argument, or -errno (EACCES, ELOOP, ENAMETOOLONG, ...).
 */
int cli_key_from_path(const char *arg, char **out);

/* The key interpreters look up for @p e: e->key, or for a relocated entry
 * key_base "/" key, malloc'd into *owned (NULL when e->key is it).
 * Returns the key and its length in *len, or NULL when out of memory. */
const char *cli_full_key(const sc_entry_info *e, char **owned, size_t *len);

/* Write all of @p buf to @p fd, retrying on EINTR and short writes. 0 or -errno. */
int cli_write_all(int fd, const void *buf, size_t len);

#endif /* SC_CLI_H */
