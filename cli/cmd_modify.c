/*
 * cmd_modify.c - the commands that write: put, rm, clear, compact,
 * evict-stale.
 *
 * put creates the shard if needed (storing is what it is for); the others
 * open with SC_NOCREATE.  rm of an entry that a lower shard holds writes a
 * whiteout in the own shard (the library's doing) and says so.  build
 * only reads the shard and writes a new file to ship.  With no shard, rm has nothing to remove (exit 1),
 * while clear, compact and evict-stale have already reached their goal
 * (exit 0, with a note on stderr) so that cleanup scripts need no special
 * case for a machine that never cached anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "humanfmt.h"

/* ---- put ---- */

/*
 * Read all of @p fd into a malloc'd buffer.  Stops with SC_ETOOBIG as soon
 * as the input exceeds SC_MAX_BLOB, so a runaway pipe cannot eat memory.
 */
static int slurp(int fd, size_t size_hint, void **out, size_t *out_len)
{
	size_t cap = size_hint ? size_hint + 1 : 65536, len = 0;
	char *buf = malloc(cap), *nbuf;
	int rc = 0;

	if (!buf)
		return -ENOMEM;
	for (;;) {
		ssize_t n;

		if (len == cap) {
			if (cap > SC_MAX_BLOB) {
				rc = SC_ETOOBIG;
				goto fail;
			}
			cap *= 2;
			nbuf = realloc(buf, cap);
			if (!nbuf) {
				rc = -ENOMEM;
				goto fail;
			}
			buf = nbuf;
		}
		n = read(fd, buf + len, cap - len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -errno;
			goto fail;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len > SC_MAX_BLOB) {
			rc = SC_ETOOBIG;
			goto fail;
		}
	}
	*out = buf;
	*out_len = len;
	return 0;
fail:
	free(buf);
	return rc;
}

/* Read FILE, or stdin for "-". */
static int read_input(const char *file, void **out, size_t *out_len)
{
	struct stat st;
	size_t hint = 0;
	int fd = -1, rc;

	if (strcmp(file, "-") == 0)
		return slurp(STDIN_FILENO, 0, out, out_len);
	do
		fd = open(file, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
		if ((uint64_t)st.st_size > SC_MAX_BLOB) {
			rc = SC_ETOOBIG;
			goto out;
		}
		hint = (size_t)st.st_size;
	}
	rc = slurp(fd, hint, out, out_len);
out:
	close(fd);
	return rc;
}

int cmd_put(struct cli *cli)
{
	const char *key = cli->argv[0], *file = cli->argv[1];
	sc_put_opts opts;
	void *blob = NULL;
	size_t len = 0;
	int rc;

	/* Read first: a bad FILE should not create a shard. */
	rc = read_input(file, &blob, &len);
	if (rc < 0) {
		cli_err(rc, "put: cannot read %s", file);
		return CLI_ERROR;
	}
	rc = cli_open(cli, CLI_OPEN_CREATE);
	if (rc != CLI_OK)
		goto out;

	memset(&opts, 0, sizeof(opts));
	opts.no_source = !!(cli->opts & OPT_NO_SOURCE);
	opts.tag = cli->tag;
	opts.exe_path = cli->exe;
	rc = sc_put_ex(cli->cache, key, blob, len, &opts);
	if (rc < 0) {
		if (rc == -ENOENT && !opts.no_source)
			cli_err(rc, "put %s (the key must name an existing source file, "
				"or use --no-source)", key);
		else
			cli_err(rc, "put %s", key);
		rc = CLI_ERROR;
		goto out;
	}
	rc = CLI_OK;
out:
	free(blob);
	return rc;
}

/* ---- rm ---- */

int cmd_rm(struct cli *cli)
{
	int i, rc, worst = CLI_OK;

	rc = cli_open(cli, CLI_OPEN_MODIFY);
	if (rc == CLI_NO_SHARD) {
		cli_no_shard(cli);
		return CLI_MISS;
	}
	if (rc != CLI_OK)
		return rc;
	for (i = 0; i < cli->argc; i++) {
		sc_entry_info e;
		/* Which layer the union shows it from, before it goes. */
		int layer = sc_lookup(cli->cache, cli->argv[i], &e) == 0 ? e.layer : 0;
		char *lpath = layer ? strdup(e.layer_path) : NULL;

		rc = sc_remove(cli->cache, cli->argv[i]);
		if (rc < 0) {
			int code = cli_exit_code(rc);

			cli_err(rc, "rm %s", cli->argv[i]);
			if (code > worst)
				worst = code;
		} else if (layer) {
			printf("%s: hidden by a whiteout (lower shard %d, %s, is read-only)\n",
			       cli->argv[i], layer, lpath ? lpath : "?");
		}
		free(lpath);
	}
	return worst;
}

/* ---- build ---- */

int cmd_build(struct cli *cli)
{
	const char *out = cli->argv[0];
	char b1[HF_SIZE_LEN];
	sc_build_opts o;
	uint64_t written = 0, skipped = 0;
	sc_layer_info li;
	sc_cache *built = NULL;
	int rc;

	/* The own shard alone: lower shards are not copied into another. */
	cli->no_lowers = 1;
	rc = cli_open(cli, CLI_OPEN_READ);
	if (rc == CLI_NO_SHARD) {
		cli_no_shard(cli);
		return CLI_MISS;
	}
	if (rc != CLI_OK)
		return rc;
	memset(&o, 0, sizeof(o));
	o.tag = cli->tag;
	o.base_dir = cli->base_dir;
	rc = sc_build(cli->cache, out, &o, &written, &skipped);
	if (rc == -EINVAL) {
		cli_msg("build %s: not a shard to write (the shard read itself?)%s", out,
			cli->base_dir ? ", or --base-dir is not a directory" : "");
		return CLI_ERROR;
	}
	if (rc < 0) {
		cli_err(rc, "build %s%s%s", out, cli->base_dir ? " --base-dir " : "",
			cli->base_dir ? cli->base_dir : "");
		return CLI_ERROR;
	}
	printf("built %s: %" PRIu64 " entr%s", out, written, written == 1 ? "y" : "ies");
	if (skipped)
		printf(" (%" PRIu64 " left out: stale, another tag or no source hash)", skipped);
	if (sc_open(&built, out, NULL, SC_RDONLY | SC_NOCREATE | SC_IGNORE_ENV) == 0 &&
	    sc_get_layer_info(built, 0, &li) == 0) {
		printf(", %s", hf_size(li.file_size, b1));
		if (li.relocatable)
			printf(", relocatable: base %s", li.base ? li.base
								 : "not recorded (set SCRIPTCACHE_BASEDIRS where it is used)");
	}
	sc_close(built);
	putchar('\n');
	return CLI_OK;
}

/* ---- clear, compact, evict-stale ---- */

/* Open for maintenance; *done is set when there is no shard (nothing to do). */
static int open_modify(struct cli *cli, const char *what, int *done)
{
	int rc = cli_open(cli, CLI_OPEN_MODIFY);

	*done = 0;
	if (rc == CLI_NO_SHARD) {
		fprintf(stderr, "scriptcache: nothing to %s: no shard at %s\n", what, cli->path);
		*done = 1;
		return CLI_OK;
	}
	return rc;
}

static int read_stats(struct cli *cli, sc_stats *st)
{
	int rc = sc_get_stats(cli->cache, st);

	if (rc < 0) {
		cli_err(rc, "cannot read shard %s", cli->path);
		return cli_exit_code(rc);
	}
	return CLI_OK;
}

int cmd_clear(struct cli *cli)
{
	sc_stats st;
	int rc, done;

	rc = open_modify(cli, "clear", &done);
	if (rc != CLI_OK || done)
		return rc;
	rc = read_stats(cli, &st);
	if (rc != CLI_OK)
		return rc;
	rc = sc_clear(cli->cache);
	if (rc < 0) {
		cli_err(rc, "clear %s", cli->path);
		return CLI_ERROR;
	}
	printf("cleared %" PRIu64 " entr%s from %s\n", st.entries, st.entries == 1 ? "y" : "ies",
	       cli->path);
	return CLI_OK;
}

int cmd_compact(struct cli *cli)
{
	char b1[HF_SIZE_LEN], b2[HF_SIZE_LEN];
	sc_stats before, after;
	int rc, done;

	rc = open_modify(cli, "compact", &done);
	if (rc != CLI_OK || done)
		return rc;
	rc = read_stats(cli, &before);
	if (rc != CLI_OK)
		return rc;
	rc = sc_compact(cli->cache);
	if (rc < 0) {
		cli_err(rc, "compact %s", cli->path);
		return cli_exit_code(rc);
	}
	rc = read_stats(cli, &after);
	if (rc != CLI_OK)
		return rc;
	printf("compacted %s: %s -> %s, %" PRIu64 " entr%s kept\n", cli->path,
	       hf_size(before.file_size, b1), hf_size(after.file_size, b2), after.entries,
	       after.entries == 1 ? "y" : "ies");
	return CLI_OK;
}

int cmd_evict_stale(struct cli *cli)
{
	uint64_t n = 0;
	int rc, done;

	rc = open_modify(cli, "evict", &done);
	if (rc != CLI_OK || done)
		return rc;
	rc = sc_evict_stale(cli->cache, &n);
	if (rc < 0) {
		cli_err(rc, "evict-stale %s", cli->path);
		return cli_exit_code(rc);
	}
	printf("evicted %" PRIu64 " stale entr%s\n", n, n == 1 ? "y" : "ies");
	return CLI_OK;
}
