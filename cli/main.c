/*
 * main.c - argument parsing and dispatch for the scriptcache tool.
 *
 *   scriptcache [--shard PATH] COMMAND [OPTIONS] [ARGS]
 *
 * Options may come before or after the command: getopt_long() runs in
 * "return in order" mode (optstring starting with '-'), which also keeps
 * POSIXLY_CORRECT from changing how the command line is read.  That order
 * is also what lets `--key KEY` stand in for one positional argument.
 *
 * KEY arguments are turned into keys here, before the command runs: a path
 * as typed becomes the canonical path an interpreter would use
 * (keyarg.c), a `--key KEY` is kept exactly as given.  So the commands
 * only ever see keys.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

struct command {
	const char *name;
	int (*fn)(struct cli *cli);
	unsigned opts;       /* OPT_* this command accepts */
	int min_args, max_args;
	int keys;            /* how many leading arguments are KEYs (-1: all) */
	const char *synopsis;
	const char *summary;
};

static const struct command commands[] = {
	{ "stats", cmd_stats, OPT_JSON, 0, 0, 0, "[--json]",
	  "sizes and entry counts of the shard" },
	{ "ls", cmd_ls, OPT_JSON | OPT_LONG, 0, 0, 0, "[--json] [-l]",
	  "list entries: status, size, age, key" },
	{ "get", cmd_get, OPT_KEY, 1, 1, 1, "KEY",
	  "write the cached blob of KEY to stdout (1 on a miss)" },
	{ "put", cmd_put, OPT_TAG | OPT_EXE | OPT_NO_SOURCE | OPT_KEY, 2, 2, 1,
	  "[--tag TAG] [--exe PATH] [--no-source] KEY FILE|-",
	  "store FILE (or stdin) as the blob of KEY" },
	{ "rm", cmd_rm, OPT_KEY, 1, -1, -1, "KEY...",
	  "remove entries (one in a lower shard is hidden by a whiteout)" },
	{ "evict-stale", cmd_evict_stale, 0, 0, 0, 0, "",
	  "remove entries that can never hit again" },
	{ "clear", cmd_clear, 0, 0, 0, 0, "", "remove every entry" },
	{ "compact", cmd_compact, 0, 0, 0, 0, "", "rewrite the shard without dead space" },
	{ "verify", cmd_verify, OPT_JSON | OPT_REMOTE, 0, 0, 0, "[--json] [--remote [URL]]",
	  "check every checksum; --remote: also the remote's copies" },
	{ "path", cmd_path, 0, 0, 0, 0, "", "print the shard path in use" },
	{ "build", cmd_build, OPT_TAG | OPT_BASE_DIR, 1, 1, 0, "[--tag TAG] [--base-dir DIR] OUT",
	  "write a compact shard to ship (from --shard or the default)" },
	{ "encode", cmd_encode, OPT_KEY, 1, 1, 1, "KEY", "print the mount's file name for KEY" },
	{ "decode", cmd_decode, 0, 1, 1, 0, "NAME", "print the key a mount file name stands for" },
	{ "push", cmd_push, OPT_REMOTE | OPT_JSON, 0, 0, 0, "[--remote URL] [--json]",
	  "upload the shard's entries to the remote tier" },
	{ "pull", cmd_pull, OPT_REMOTE | OPT_JSON | OPT_TAG | OPT_EXE, 1, -1, 0,
	  "[--remote URL] [--json] --tag TAG [--exe PATH] FILE|DIR...",
	  "fetch the compiled scripts of these sources from the remote" },
};

#define N_COMMANDS (sizeof(commands) / sizeof(commands[0]))

static void usage(FILE *f)
{
	size_t i;

	fprintf(f, "Usage: scriptcache [--shard PATH] COMMAND [OPTIONS] [ARGS]\n\n"
		   "Inspect and manage the scriptcache shard of compiled scripts.\n\n"
		   "Commands:\n");
	for (i = 0; i < N_COMMANDS; i++) {
		char head[80];

		snprintf(head, sizeof(head), "%s %s", commands[i].name, commands[i].synopsis);
		fprintf(f, "  %-32s %s\n", head, commands[i].summary);
	}
	fprintf(f, "\nOptions (before or after the command):\n"
		   "  --shard PATH   use this shard instead of the default (also when SCRIPTCACHE=0)\n"
		   "  --json         machine-readable output (stats, ls, verify, push, pull)\n"
		   "  -l, --long     ls: also show the tag and the writing executable\n"
		   "  --tag TAG      put: fingerprint tag of the entry; build: only entries with it;\n"
		   "                 pull: the fingerprint tag to fetch\n"
		   "  --exe PATH     put, pull: executable whose identity the entry records\n"
		   "  --no-source    put: KEY names no source file; the entry never goes stale\n"
		   "  --key KEY      get, put, rm, encode: KEY exactly as given, not as a path\n"
		   "  --base-dir DIR build: keys under DIR recorded relative to it (relocatable)\n"
		   "  --no-lowers    the default shard alone, without the lower shards stacked\n"
		   "                 under it (SCRIPTCACHE_LOWER, /usr/lib/scriptcache/*.shard)\n"
		   "  --remote URL   push, pull: the remote cache (default: $SCRIPTCACHE_REMOTE);\n"
		   "                 verify --remote [URL]: also check the remote's copies of\n"
		   "                 the shard's entries\n"
		   "  -h, --help     show this help\n"
		   "  -V, --version  show the version\n"
		   "\nA KEY is a path, turned into the key interpreters use: realpath(3) of an\n"
		   "existing file; a path to nothing is made absolute and resolved as far as\n"
		   "it exists (like 'realpath -m'). Use --key KEY for keys that are not paths.\n"
		   "\nThe default shard is $SCRIPTCACHE_PATH, else\n"
		   "$XDG_CACHE_HOME/scriptcache/scripts.shard, else ~/.cache/scriptcache/scripts.shard.\n"
		   "Exit status: 0 success, 1 miss / not found / corrupt, 2 usage or other error.\n");
}

static int usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static int usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs("scriptcache: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs("\nTry 'scriptcache --help' for more information.\n", stderr);
	return CLI_ERROR;
}

static const struct command *find_command(const char *name)
{
	size_t i;

	for (i = 0; i < N_COMMANDS; i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static const char *opt_name(unsigned opt)
{
	switch (opt) {
	case OPT_JSON: return "--json";
	case OPT_LONG: return "--long";
	case OPT_TAG: return "--tag";
	case OPT_EXE: return "--exe";
	case OPT_NO_SOURCE: return "--no-source";
	case OPT_KEY: return "--key";
	case OPT_BASE_DIR: return "--base-dir";
	case OPT_REMOTE: return "--remote";
	default: return "?";
	}
}

/*
 * Whether argv[i], after a "--remote" without "=", is its URL: anything
 * but an option or a command name ("scriptcache --remote verify", or
 * "verify --remote" last, take the remote from $SCRIPTCACHE_REMOTE).  A
 * value that is no URL is still taken, and refused by the configuration
 * with its reason, as when the argument was required.
 */
static int remote_url_arg(int argc, char **argv, int i)
{
	return i < argc && argv[i][0] != '-' && !find_command(argv[i]);
}

/*
 * Turn the KEY arguments of @p cmd into keys, in place: a path as typed
 * becomes the canonical path (keyarg.c), a `--key KEY` (literal[i]) stays
 * as given.  Resolved keys are malloc'd into owned[].  An argument that is
 * not a KEY must not come from --key.  Returns CLI_OK or the exit code.
 */
static int resolve_keys(const struct command *cmd, int argc, char **argv,
			const unsigned char *literal, char **owned)
{
	int i, rc;

	for (i = 0; i < argc; i++) {
		if (cmd->keys >= 0 && i >= cmd->keys) {
			if (literal[i])
				return usage_error("'%s' takes --key only for its KEY (usage: "
						   "scriptcache %s %s)", cmd->name, cmd->name,
						   cmd->synopsis);
			continue;
		}
		if (literal[i])
			continue;
		rc = cli_key_from_path(argv[i], &owned[i]);
		if (rc == -EINVAL) {
			cli_msg("%s: an empty argument is not a path (use --key KEY for a key "
				"that is not a path)", cmd->name);
			return CLI_ERROR;
		}
		if (rc < 0) {
			cli_err(rc, "%s %s: cannot resolve the path (use --key KEY to give the "
				"key exactly)", cmd->name, argv[i]);
			return CLI_ERROR;
		}
		argv[i] = owned[i];
	}
	return CLI_OK;
}

/* Flush stdout and report a failed write (full disk, closed pipe) like coreutils do. */
static int finish_stdout(int rc)
{
	if (fflush(stdout) != 0 || ferror(stdout)) {
		cli_msg("write error: %s", strerror(errno));
		return CLI_ERROR;
	}
	return rc;
}

int main(int argc, char **argv)
{
	enum {
		LONGOPT_SHARD = 256, LONGOPT_JSON, LONGOPT_TAG, LONGOPT_EXE, LONGOPT_NO_SOURCE,
		LONGOPT_KEY, LONGOPT_BASE_DIR, LONGOPT_NO_LOWERS, LONGOPT_REMOTE,
	};
	static const struct option longopts[] = {
		{ "shard", required_argument, NULL, LONGOPT_SHARD },
		{ "json", no_argument, NULL, LONGOPT_JSON },
		{ "long", no_argument, NULL, 'l' },
		{ "tag", required_argument, NULL, LONGOPT_TAG },
		{ "exe", required_argument, NULL, LONGOPT_EXE },
		{ "no-source", no_argument, NULL, LONGOPT_NO_SOURCE },
		{ "key", required_argument, NULL, LONGOPT_KEY },
		{ "base-dir", required_argument, NULL, LONGOPT_BASE_DIR },
		{ "no-lowers", no_argument, NULL, LONGOPT_NO_LOWERS },
		/* Optional so that "verify --remote" can mean $SCRIPTCACHE_REMOTE;
		 * "--remote URL" is still read as before (remote_url_arg()). */
		{ "remote", optional_argument, NULL, LONGOPT_REMOTE },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct cli cli;
	const struct command *cmd = NULL;
	char **pos, **owned;
	unsigned char *literal; /* literal[i]: pos[i] came from --key */
	int npos = 0, c, rc, i;
	unsigned bit;

	memset(&cli, 0, sizeof(cli));
	pos = calloc((size_t)argc + 1, sizeof(*pos));
	owned = calloc((size_t)argc + 1, sizeof(*owned));
	literal = calloc((size_t)argc + 1, 1);
	if (!pos || !owned || !literal) {
		cli_msg("out of memory");
		rc = CLI_ERROR;
		goto out;
	}

	opterr = 0;
	while ((c = getopt_long(argc, argv, "-:hVl", longopts, NULL)) != -1) {
		switch (c) {
		case 1:
			pos[npos++] = optarg;
			break;
		case LONGOPT_SHARD:
			if (optarg[0] == '\0') {
				rc = usage_error("--shard needs a non-empty path");
				goto out;
			}
			cli.shard = optarg;
			break;
		case LONGOPT_JSON:
			cli.opts |= OPT_JSON;
			break;
		case 'l':
			cli.opts |= OPT_LONG;
			break;
		case LONGOPT_TAG:
			cli.opts |= OPT_TAG;
			cli.tag = optarg;
			break;
		case LONGOPT_EXE:
			cli.opts |= OPT_EXE;
			cli.exe = optarg;
			break;
		case LONGOPT_NO_SOURCE:
			cli.opts |= OPT_NO_SOURCE;
			break;
		case LONGOPT_BASE_DIR:
			cli.opts |= OPT_BASE_DIR;
			cli.base_dir = optarg;
			break;
		case LONGOPT_NO_LOWERS:
			cli.no_lowers = 1;
			break;
		case LONGOPT_KEY:
			/* A positional argument that is a key as given, in its place. */
			cli.opts |= OPT_KEY;
			literal[npos] = 1;
			pos[npos++] = optarg;
			break;
		case LONGOPT_REMOTE:
			cli.opts |= OPT_REMOTE;
			cli.remote = optarg;
			if (!optarg && remote_url_arg(argc, argv, optind))
				cli.remote = argv[optind++];
			break;
		case 'h':
			usage(stdout);
			rc = finish_stdout(CLI_OK);
			goto out;
		case 'V':
			printf("scriptcache %s\n", SC_VERSION_STRING);
			rc = finish_stdout(CLI_OK);
			goto out;
		case ':':
			rc = usage_error("option '%s' needs an argument", argv[optind - 1]);
			goto out;
		default:
			rc = usage_error("unrecognized option '%s'", argv[optind - 1]);
			goto out;
		}
	}
	/* After "--": everything left is positional (keys may start with '-'). */
	while (optind < argc)
		pos[npos++] = argv[optind++];

	if (npos == 0) {
		rc = usage_error("no command given");
		goto out;
	}
	if (literal[0]) {
		rc = usage_error("--key gives a KEY; the command comes first");
		goto out;
	}
	if (strcmp(pos[0], "help") == 0) {
		usage(stdout);
		rc = finish_stdout(CLI_OK);
		goto out;
	}
	cmd = find_command(pos[0]);
	if (!cmd) {
		rc = usage_error("unknown command '%s'", pos[0]);
		goto out;
	}
	for (bit = 1; bit <= OPT_LAST; bit <<= 1) {
		if ((cli.opts & bit) && !(cmd->opts & bit)) {
			fprintf(stderr, "scriptcache: option %s does not apply to '%s'\n",
				opt_name(bit), cmd->name);
			rc = usage_error("usage: scriptcache %s", cmd->name);
			goto out;
		}
	}
	if (npos - 1 < cmd->min_args || (cmd->max_args >= 0 && npos - 1 > cmd->max_args)) {
		fprintf(stderr, "scriptcache: usage: scriptcache %s %s\n", cmd->name,
			cmd->synopsis);
		rc = usage_error("wrong number of arguments for '%s'", cmd->name);
		goto out;
	}

	rc = resolve_keys(cmd, npos - 1, pos + 1, literal + 1, owned + 1);
	if (rc != CLI_OK)
		goto out;

	cli.cmd = cmd->name;
	cli.argc = npos - 1;
	cli.argv = pos + 1;
	rc = cmd->fn(&cli);
	cli_close(&cli);
	rc = finish_stdout(rc);
out:
	if (owned)
		for (i = 0; i < argc; i++)
			free(owned[i]);
	free(owned);
	free(literal);
	free(pos);
	return rc;
}
