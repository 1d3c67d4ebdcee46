/*
 * open.c - which shard the tool opens, with which flags, and the messages
 * for the ways that can fail.
 *
 * Policy (docs/CLI.md):
 *  - Without --shard, SCRIPTCACHE=0 means "no cache": commands that need
 *    the shard refuse with exit 2 rather than silently acting on nothing.
 *    With --shard the user named a file, so SC_IGNORE_ENV applies.
 *  - Read-only commands open SC_RDONLY|SC_NOCREATE, so looking never
 *    creates a shard; a missing shard is reported, never invented.
 *  - Without --shard the default shard is opened as interpreters open it
 *    (sc_open() with no path), so the configured lower shards are stacked
 *    under it (docs/LAYERS.md); --no-lowers leaves them out.  A shard
 *    named with --shard is that file alone.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"

void cli_msg(const char *fmt, ...)
{
	va_list ap;

	fputs("scriptcache: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void cli_err(int err, const char *fmt, ...)
{
	va_list ap;

	fputs("scriptcache: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, ": %s\n", sc_strerror(err));
}

int cli_exit_code(int err)
{
	switch (err) {
	case 0:
		return CLI_OK;
	case SC_ENOTFOUND:
	case SC_ESTALE:
	case SC_EFINGERPRINT:
	case SC_EWRITERGONE:
	case SC_ECORRUPT:
	case SC_ETRUNCATED:
		return CLI_MISS;
	default:
		return CLI_ERROR;
	}
}

int cli_resolve_path(struct cli *cli)
{
	int rc;

	if (cli->shard) {
		if (strlen(cli->shard) >= sizeof(cli->path)) {
			cli_err(-ENAMETOOLONG, "--shard");
			return CLI_ERROR;
		}
		strcpy(cli->path, cli->shard);
		return CLI_OK;
	}
	if (sc_env_disabled()) {
		cli_msg("caching is disabled (SCRIPTCACHE=0)");
		return CLI_ERROR;
	}
	rc = sc_default_path(cli->path, sizeof(cli->path));
	if (rc < 0) {
		cli_err(rc, "cannot work out the default shard path (set SCRIPTCACHE_PATH or HOME)");
		return CLI_ERROR;
	}
	return CLI_OK;
}

int cli_open(struct cli *cli, enum cli_open_mode mode)
{
	unsigned flags = 0;
	int rc;

	rc = cli_resolve_path(cli);
	if (rc != CLI_OK)
		return rc;
	if (mode == CLI_OPEN_READ)
		flags |= SC_RDONLY | SC_NOCREATE;
	else if (mode == CLI_OPEN_MODIFY)
		flags |= SC_NOCREATE;
	if (cli->shard)
		flags |= SC_IGNORE_ENV;
	if (cli->no_lowers)
		flags |= SC_NO_LOWERS;

	/* A tag-less handle: freshness is judged from each writer's view. */
	rc = sc_open(&cli->cache, cli->shard ? cli->path : NULL, NULL, flags);
	if (rc == -ENOENT && (flags & SC_NOCREATE))
		return CLI_NO_SHARD;
	if (rc < 0) {
		cli->open_err = rc;
		if ((rc == SC_ECORRUPT || rc == SC_ETRUNCATED) && mode == CLI_OPEN_READ)
			/* The header or both metas: nothing in the file is
			 * usable.  Looking never changes the shard; the next
			 * writer sets it aside (sc_open()).  Still one line. */
			cli_msg("cannot open shard %s: %s; nothing in it can be served; the next "
				"write to the cache sets it aside as %s" SC_SET_ASIDE_INFIX
				"<time> and starts a new shard ('scriptcache clear' does it now)",
				cli->path, sc_strerror(rc), cli->path);
		else
			cli_err(rc, "cannot open shard %s", cli->path);
		return cli_exit_code(rc);
	}
	if (mode != CLI_OPEN_READ) {
		sc_stats st;
		if (sc_get_stats(cli->cache, &st) == 0 && st.heals)
			cli_msg("shard %s was damaged beyond use: set aside as %s" SC_SET_ASIDE_INFIX
				"<time>, a new shard started", sc_path(cli->cache), sc_path(cli->cache));
	}
	return CLI_OK;
}

const char *cli_full_key(const sc_entry_info *e, char **owned, size_t *len)
{
	*owned = NULL;
	*len = e->key_len;
	if (!e->key_base)
		return e->key;
	if (!(*owned = malloc(e->key_base_len + 1 + e->key_len + 1)))
		return NULL;
	memcpy(*owned, e->key_base, e->key_base_len);
	(*owned)[e->key_base_len] = '/';
	memcpy(*owned + e->key_base_len + 1, e->key, e->key_len);
	(*owned)[e->key_base_len + 1 + e->key_len] = '\0';
	*len = e->key_base_len + 1 + e->key_len;
	return *owned;
}

void cli_no_shard(const struct cli *cli)
{
	cli_msg("no shard at %s", cli->path);
}

void cli_close(struct cli *cli)
{
	sc_close(cli->cache);
	cli->cache = NULL;
}
