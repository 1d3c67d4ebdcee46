/*
 * cmd_names.c - encode / decode: the FUSE mount's file name for a key and
 * back (the rules are in scriptcache.h, "Entry names").
 *
 * Neither needs the shard, except to decode a hashed name ("#" + XXH3-128
 * of a key too long to spell out): the hash cannot be inverted, so decode
 * asks sc_lookup_name() for the entry whose key encodes to that name.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "humanfmt.h"

int cmd_encode(struct cli *cli)
{
	const char *key = cli->argv[0];
	char name[SC_NAME_MAX + 1];

	if (sc_name_encode(key, strlen(key), name) < 0) {
		cli_msg("encode: an empty key has no name");
		return CLI_ERROR;
	}
	printf("%s\n", name);
	return CLI_OK;
}

static int decode_hashed(struct cli *cli, const char *name)
{
	sc_entry_info e;
	int rc;

	rc = cli_open(cli, CLI_OPEN_READ);
	if (rc == CLI_NO_SHARD) {
		cli_msg("decode %s: a hashed name can only be looked up in a shard, "
			"and there is no shard at %s", name, cli->path);
		return CLI_MISS;
	}
	if (rc != CLI_OK)
		return rc;
	rc = sc_lookup_name(cli->cache, name, &e);
	if (rc == SC_ENOTFOUND) {
		cli_msg("decode %s: hashed name matches no entry in %s", name, cli->path);
		return CLI_MISS;
	}
	if (rc < 0) {
		cli_err(rc, "decode %s: cannot read shard %s", name, cli->path);
		return cli_exit_code(rc);
	}
	fwrite(e.key, 1, e.key_len, stdout);
	putchar('\n');
	return CLI_OK;
}

int cmd_decode(struct cli *cli)
{
	const char *name = cli->argv[0];
	size_t cap = strlen(name) + 1, len = 0;
	const char *why = NULL;
	char *key;
	int rc;

	key = malloc(cap);
	if (!key) {
		cli_err(-ENOMEM, "decode");
		return CLI_ERROR;
	}
	rc = sc_name_decode(name, key, cap, &len, &why);
	if (rc == 0) {
		fwrite(key, 1, len, stdout);
		putchar('\n');
		rc = CLI_OK;
	} else if (rc == SC_NAME_HASHED) {
		rc = decode_hashed(cli, name);
	} else {
		/* The name is user input that may hold control bytes: print it safely. */
		fputs("scriptcache: decode: invalid name '", stderr);
		hf_put_key(stderr, name, strlen(name));
		fprintf(stderr, "': %s\n", why ? why : strerror(-rc));
		rc = CLI_ERROR;
	}
	free(key);
	return rc;
}
