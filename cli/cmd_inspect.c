/*
 * cmd_inspect.c - the read-only commands: stats, ls, get, verify, path.
 *
 * All of them open the shard SC_RDONLY|SC_NOCREATE through a tag-less
 * handle, so they never create or change a shard, and freshness is judged
 * from each entry's writer's point of view (sc_entry_status()).  A missing
 * shard is "not found" (exit 1) for every one of them except path, whose
 * job is to say where the shard is or would be.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "humanfmt.h"
#include "jsonout.h"

int cli_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Open for reading; on failure returns the exit code after printing why. */
static int open_read(struct cli *cli)
{
	int rc = cli_open(cli, CLI_OPEN_READ);

	if (rc == CLI_NO_SHARD) {
		cli_no_shard(cli);
		return CLI_MISS;
	}
	return rc;
}

/* ---- collecting entries ---- */

struct row {
	sc_entry_info e; /* string and blob pointers stay valid until sc_close() */
	int status;
	char *full_key;  /* malloc'd key_base "/" key of a relocated entry: e.key points here */
	const char *stored_key; /* the key as the shard stores it (relative for those) */
	size_t stored_len;
};

struct rows {
	struct row *v;
	size_t n, cap;
	uint64_t corrupt; /* records sc_foreach() skipped as damaged */
};

static int collect_cb(const sc_entry_info *e, void *arg)
{
	struct rows *rows = arg;

	if (rows->n == rows->cap) {
		size_t cap = rows->cap ? rows->cap * 2 : 64;
		struct row *v = realloc(rows->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		rows->v = v;
		rows->cap = cap;
	}
	struct row *r = &rows->v[rows->n];
	size_t len;
	const char *key = cli_full_key(e, &r->full_key, &len);

	if (!key)
		return -ENOMEM;
	r->e = *e;
	r->status = sc_entry_status(e); /* with key_base: the source under it */
	r->stored_key = e->key;
	r->stored_len = e->key_len;
	r->e.key = key;
	r->e.key_len = len;
	rows->n++;
	return 0;
}

static void rows_free(struct rows *rows)
{
	for (size_t i = 0; i < rows->n; i++)
		free(rows->v[i].full_key);
	free(rows->v);
}

/* Does the handle stack lower shards under its own? */
static int stacked(sc_cache *c)
{
	return sc_layer_count(c) > 1;
}

/* One line on stderr for each lower shard that cannot be used: its
 * entries are missing from what ls and stats show. */
static void warn_unused_layers(sc_cache *c)
{
	int n = sc_layer_count(c);

	for (int i = 1; i < n; i++) {
		sc_layer_info li;
		if (sc_get_layer_info(c, i, &li) == 0 && li.status)
			cli_msg("lower shard %d (%s) not used: %s (run 'scriptcache verify')", i,
				li.path, sc_strerror(li.status));
	}
}

static int row_cmp(const void *a, const void *b)
{
	const sc_entry_info *x = &((const struct row *)a)->e;
	const sc_entry_info *y = &((const struct row *)b)->e;
	size_t n = x->key_len < y->key_len ? x->key_len : y->key_len;
	int c = memcmp(x->key, y->key, n);

	if (c)
		return c;
	return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Counter of records the handle has found damaged so far. */
static uint64_t corrupt_count(sc_cache *c)
{
	sc_stats st;

	return sc_get_stats(c, &st) == 0 ? st.miss_corrupt : 0;
}

/*
 * Every entry with its status, sorted by key so output is stable.
 * sc_foreach() skips damaged records silently apart from the handle's
 * corruption counter; the difference tells us how many were hidden.
 */
static int collect(struct cli *cli, struct rows *rows)
{
	uint64_t before = corrupt_count(cli->cache);
	int rc = sc_foreach(cli->cache, collect_cb, rows);

	warn_unused_layers(cli->cache);
	if (rc < 0) {
		cli_err(rc, "cannot read shard %s", cli->path);
		return cli_exit_code(rc);
	}
	rows->corrupt = corrupt_count(cli->cache) - before;
	if (rows->corrupt)
		cli_msg("%" PRIu64 " damaged entr%s skipped (run 'scriptcache verify')",
			rows->corrupt, rows->corrupt == 1 ? "y" : "ies");
	if (rows->n > 1)
		qsort(rows->v, rows->n, sizeof(*rows->v), row_cmp);
	return CLI_OK;
}

/* ---- stats ---- */

/* Entries of layer @p layer that the union shows (the rest are hidden). */
static uint64_t shown_in(const struct rows *rows, int layer)
{
	uint64_t n = 0;

	for (size_t i = 0; i < rows->n; i++)
		n += rows->v[i].e.layer == layer;
	return n;
}

/* The lower shards, one line each (nothing without them). */
static void layers_human(sc_cache *c, const struct rows *rows)
{
	int n = sc_layer_count(c);

	for (int i = 1; i < n; i++) {
		char b[HF_SIZE_LEN];
		sc_layer_info li;

		if (sc_get_layer_info(c, i, &li) != 0)
			continue;
		printf("lower %-6d %s", i, li.path);
		if (li.status) {
			printf(": not used: %s\n", sc_strerror(li.status));
			continue;
		}
		printf(": %" PRIu64 " entr%s (%" PRIu64 " shown), %s", li.entries,
		       li.entries == 1 ? "y" : "ies", shown_in(rows, i), hf_size(li.file_size, b));
		if (li.relocatable)
			printf(", relocatable, base %s", li.base ? li.base : "unknown (set SCRIPTCACHE_BASEDIRS)");
		putchar('\n');
	}
}

/* The lower shards as stats --json gives them (an array, empty without). */
static json_t *layers_json(sc_cache *c, const struct rows *rows)
{
	json_t *arr = json_array();
	int n = sc_layer_count(c);

	for (int i = 1; arr && i < n; i++) {
		sc_layer_info li;

		if (sc_get_layer_info(c, i, &li) != 0)
			continue;
		if (json_array_append_new(arr, json_pack("{s:i, s:o, s:o, s:I, s:I, s:I, s:b, s:o}",
				"layer", i,
				"path", jo_bytes(li.path, strlen(li.path)),
				"error", li.status ? json_string(sc_strerror(li.status)) : json_null(),
				"entries", (json_int_t)li.entries,
				"shown", (json_int_t)shown_in(rows, i),
				"file_size", (json_int_t)li.file_size,
				"relocatable", li.relocatable,
				"base", li.base ? jo_bytes(li.base, strlen(li.base)) : json_null()))) {
			json_decref(arr);
			arr = NULL;
		}
	}
	return arr;
}

int cmd_stats(struct cli *cli)
{
	struct rows rows = { 0 };
	sc_stats st;
	uint64_t fresh = 0, stale = 0, gone = 0, other = 0;
	size_t i;
	int rc;

	rc = open_read(cli);
	if (rc != CLI_OK)
		return rc;
	rc = sc_get_stats(cli->cache, &st);
	if (rc < 0) {
		cli_err(rc, "cannot read shard %s", cli->path);
		return cli_exit_code(rc);
	}
	rc = collect(cli, &rows);
	if (rc != CLI_OK)
		goto out;
	for (i = 0; i < rows.n; i++) {
		if (rows.v[i].e.layer != 0)
			continue; /* the lower shards have their own lines */
		switch (rows.v[i].status) {
		case 0: fresh++; break;
		case SC_ESTALE: stale++; break;
		case SC_EWRITERGONE: gone++; break;
		default: other++; break;
		}
	}

	if (cli->opts & OPT_JSON) {
		json_t *layers = layers_json(cli->cache, &rows);

		rc = jo_print(json_pack("{s:o, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I,"
					" s:I, s:I, s:I, s:o}",
					"path", jo_bytes(sc_path(cli->cache), strlen(sc_path(cli->cache))),
					"entries", (json_int_t)st.entries,
					"fresh", (json_int_t)fresh,
					"stale", (json_int_t)stale,
					"writer_gone", (json_int_t)gone,
					"damaged", (json_int_t)rows.corrupt,
					"live_bytes", (json_int_t)st.live_bytes,
					"dead_bytes", (json_int_t)st.dead_bytes,
					"blobs", (json_int_t)st.blobs,
					"logical_bytes", (json_int_t)st.logical_bytes,
					"stored_bytes", (json_int_t)st.stored_bytes,
					"file_size", (json_int_t)st.file_size,
					"generation", (json_int_t)st.generation,
					"index_slots", (json_int_t)st.index_slots,
					"set_aside", (json_int_t)st.set_aside,
					"lower", layers));
		if (rc < 0) {
			cli_err(rc, "stats");
			rc = CLI_ERROR;
		}
	} else {
		char b1[HF_SIZE_LEN], b2[HF_SIZE_LEN], b3[HF_SIZE_LEN], b4[HF_SIZE_LEN];
		uint64_t total = st.live_bytes + st.dead_bytes;

		printf("shard        %s\n", sc_path(cli->cache));
		printf("entries      %" PRIu64 " (%" PRIu64 " fresh, %" PRIu64 " stale, %" PRIu64
		       " writer-gone", st.entries, fresh, stale, gone);
		if (other)
			printf(", %" PRIu64 " unknown", other);
		printf(")\n");
		if (rows.corrupt)
			printf("damaged      %" PRIu64 " (skipped; run 'scriptcache verify')\n",
			       rows.corrupt);
		printf("blobs        %" PRIu64 " stored once: %s of blobs in %s\n", st.blobs,
		       hf_size(st.logical_bytes, b1), hf_size(st.stored_bytes, b4));
		printf("live         %s\n", hf_size(st.live_bytes, b1));
		printf("dead         %s (%.0f%%, reused by puts or reclaimed by compact)\n",
		       hf_size(st.dead_bytes, b2),
		       total ? 100.0 * (double)st.dead_bytes / (double)total : 0.0);
		printf("file size    %s\n", hf_size(st.file_size, b3));
		printf("generation   %" PRIu64 "\n", st.generation);
		printf("index slots  %" PRIu64 "\n", st.index_slots);
		if (st.set_aside)
			printf("set aside    %" PRIu64 " damaged shard%s kept beside it (%s"
			       SC_SET_ASIDE_INFIX "*)\n", st.set_aside, st.set_aside == 1 ? "" : "s",
			       sc_path(cli->cache));
		layers_human(cli->cache, &rows);
		rc = CLI_OK;
	}
out:
	rows_free(&rows);
	return rc;
}

/* ---- ls ---- */

static void ls_human(const struct cli *cli, const struct rows *rows)
{
	time_t now = time(NULL);
	size_t i;

	int layers = stacked(cli->cache);

	if (rows->n == 0)
		return;
	/* The LAYER column only when there are layers to tell apart: a
	 * single shard lists as it always did. */
	if (layers)
		printf("%-11s  %10s  %9s  %-5s  %s\n", "STATUS", "SIZE", "CACHED", "LAYER", "KEY");
	else
		printf("%-11s  %10s  %9s  %s\n", "STATUS", "SIZE", "CACHED", "KEY");
	for (i = 0; i < rows->n; i++) {
		const sc_entry_info *e = &rows->v[i].e;
		char sz[HF_SIZE_LEN], age[HF_AGE_LEN];

		printf("%-11s  %10s  %9s  ", hf_status_name(rows->v[i].status),
		       hf_size(e->blob_size, sz), hf_age(e->cached_sec, (int64_t)now, age));
		if (layers) {
			if (e->layer)
				printf("%-5d  ", e->layer);
			else
				printf("%-5s  ", "own");
		}
		hf_put_key(stdout, e->key, e->key_len);
		putchar('\n');
		if ((cli->opts & OPT_LONG) && layers) {
			fputs("             layer: ", stdout);
			hf_put_key(stdout, e->layer_path, strlen(e->layer_path));
			if (e->key_base) {
				fputs(" (relocated; stored as ", stdout);
				hf_put_key(stdout, rows->v[i].stored_key, rows->v[i].stored_len);
				fputs(")", stdout);
			}
			putchar('\n');
		}
		if (cli->opts & OPT_LONG) {
			fputs("             tag: ", stdout);
			if (e->tag_len)
				hf_put_key(stdout, e->tag, e->tag_len);
			else
				fputs("(none)", stdout);
			fputs("\n             writer: ", stdout);
			hf_put_key(stdout, e->exe_path, e->exe_path_len);
			fputs(" (", stdout);
			hf_put_key(stdout, e->exe_id, e->exe_id_len);
			fputs(")\n", stdout);
			if (!e->has_source)
				fputs("             no source file\n", stdout);
		}
	}
}

int cmd_ls(struct cli *cli)
{
	struct rows rows = { 0 };
	size_t i;
	int rc;

	rc = open_read(cli);
	if (rc != CLI_OK)
		return rc;
	rc = collect(cli, &rows);
	if (rc != CLI_OK)
		goto out;

	if (cli->opts & OPT_JSON) {
		json_t *arr = json_array();

		for (i = 0; arr && i < rows.n; i++) {
			json_t *o = jo_entry(&rows.v[i].e, rows.v[i].status);

			/* A relocated entry: "key" is where it is used, this is
			 * how its shard stores it (relative to "key_base"). */
			if (o && rows.v[i].e.key_base &&
			    (json_object_set_new(o, "stored_key", jo_bytes(rows.v[i].stored_key,
									  rows.v[i].stored_len)) ||
			     json_object_set_new(o, "key_base", jo_bytes(rows.v[i].e.key_base,
									rows.v[i].e.key_base_len)))) {
				json_decref(o);
				o = NULL;
			}
			if (json_array_append_new(arr, o)) {
				json_decref(arr);
				arr = NULL;
			}
		}
		rc = jo_print(arr);
		if (rc < 0) {
			cli_err(rc, "ls");
			rc = CLI_ERROR;
		}
	} else {
		ls_human(cli, &rows);
		if (stacked(cli->cache) && rows.n) {
			int n = sc_layer_count(cli->cache);
			printf("\nlayer own: %s\n", sc_path(cli->cache));
			for (int l = 1; l < n; l++) {
				sc_layer_info li;
				if (sc_get_layer_info(cli->cache, l, &li) == 0)
					printf("layer %d: %s%s\n", l, li.path,
					       li.status ? " (not used)" : "");
			}
		}
	}
out:
	rows_free(&rows);
	return rc;
}

/* ---- get ---- */

int cmd_get(struct cli *cli)
{
	const char *key = cli->argv[0];
	sc_blob blob;
	int rc;

	rc = open_read(cli);
	if (rc != CLI_OK)
		return rc;
	/* Tag-less handle: sc_get checks checksums, the source and the writer. */
	rc = sc_get(cli->cache, key, &blob);
	if (rc < 0) {
		cli_err(rc, "get %s", key);
		return cli_exit_code(rc);
	}
	/* Bypass stdio: the blob may be large and is already in memory. */
	if (fflush(stdout) != 0 || (rc = cli_write_all(STDOUT_FILENO, blob.data, blob.size)) < 0) {
		cli_err(rc < 0 ? rc : -errno, "write error");
		return CLI_ERROR;
	}
	return CLI_OK;
}

/* ---- verify ---- */

struct verify_ctx {
	int json;
	uint64_t problems;
	json_t *arr;
	int oom;
};

static void verify_cb(void *arg, uint64_t offset, const char *problem)
{
	struct verify_ctx *v = arg;

	v->problems++;
	if (v->json) {
		/* append_new takes NULL (a failed pack) as a failure, and frees o otherwise. */
		if (json_array_append_new(v->arr, json_pack("{s:I, s:s}", "offset",
							    (json_int_t)offset, "problem",
							    problem ? problem : "")))
			v->oom = 1;
		return;
	}
	printf("offset %" PRIu64 " (0x%" PRIx64 "): %s\n", offset, offset,
	       problem ? problem : "(no description)");
}

/* The exit code of verify: the worse of the local and the remote part. */
static int worse(int a, int b)
{
	return a > b ? a : b;
}

int cmd_verify(struct cli *cli)
{
	struct verify_ctx v = { .json = !!(cli->opts & OPT_JSON) };
	struct vremote *remote = NULL;
	json_t *remote_json = NULL;
	uint64_t checked = 0;
	int rc, vrc, remote_rc = CLI_OK;

	/* A bad remote configuration stops verify --remote before any check. */
	if ((cli->opts & OPT_REMOTE) && (rc = cli_vremote_open(cli, &remote)) != CLI_OK)
		return rc;
	rc = open_read(cli);
	if (rc != CLI_OK) {
		cli_vremote_close(remote);
		/* A header that is not a shard at all also fails verification. */
		if (cli->open_err == SC_EMAGIC)
			return CLI_MISS;
		return rc;
	}

	if (v.json && !(v.arr = json_array())) {
		cli_vremote_close(remote);
		cli_err(-ENOMEM, "verify");
		return CLI_ERROR;
	}
	vrc = sc_verify(cli->cache, verify_cb, &v, &checked);
	if (vrc < 0 && vrc != SC_ECORRUPT) {
		json_decref(v.arr);
		cli_vremote_close(remote);
		cli_err(vrc, "cannot verify %s", cli->path);
		return CLI_ERROR;
	}
	/* The remote part after the local one, whose report comes first. */
	if (remote && v.json)
		remote_rc = cli_vremote_check(remote, &remote_json);
	else if ((cli->opts & OPT_REMOTE) && v.json)
		remote_json = cli_vremote_off_json();
	sc_stats st;
	if (sc_get_stats(cli->cache, &st) != 0)
		st.set_aside = 0;
	/* The core reports corruption by its return code even if no callback ran. */
	if (v.json) {
		/* "o" steals v.arr even when packing fails. */
		json_t *o = json_pack("{s:o, s:b, s:I, s:o, s:I}",
				      "path", jo_bytes(sc_path(cli->cache), strlen(sc_path(cli->cache))),
				      "ok", vrc == 0,
				      "records_checked", (json_int_t)checked,
				      "problems", v.arr,
				      "set_aside", (json_int_t)st.set_aside);
		if (o && remote_json)
			json_object_set_new(o, "remote", remote_json);
		else
			json_decref(remote_json);
		cli_vremote_close(remote);
		remote = NULL;
		if (v.oom) {
			json_decref(o);
			o = NULL;
		}
		rc = jo_print(o);
		if (rc < 0) {
			cli_err(rc, "verify");
			return CLI_ERROR;
		}
	} else {
		int lowers = sc_layer_count(cli->cache) - 1;
		char also[64] = "";

		if (lowers > 0)
			snprintf(also, sizeof(also), " (with %d lower shard%s)", lowers,
				 lowers == 1 ? "" : "s");
		if (vrc == 0)
			printf("%s: ok, %" PRIu64 " records checked%s\n", sc_path(cli->cache),
			       checked, also);
		else
			printf("%s: CORRUPT, %" PRIu64 " problem%s, %" PRIu64 " records checked%s\n",
			       sc_path(cli->cache), v.problems, v.problems == 1 ? "" : "s", checked,
			       also);
	}
	if (!v.json && st.set_aside)
		printf("%s: %" PRIu64 " damaged shard%s set aside beside it (%s" SC_SET_ASIDE_INFIX
		       "*)\n", sc_path(cli->cache), st.set_aside, st.set_aside == 1 ? "" : "s",
		       sc_path(cli->cache));
	if (remote && !v.json) {
		/* stdout first: the remote's lines follow the local ones. */
		fflush(stdout);
		remote_rc = cli_vremote_check(remote, &remote_json);
	}
	cli_vremote_close(remote);
	return worse(vrc == 0 ? CLI_OK : CLI_MISS, remote_rc);
}

/* ---- path ---- */

int cmd_path(struct cli *cli)
{
	sc_cache *c = NULL;
	unsigned flags = SC_RDONLY | SC_NOCREATE | (cli->shard ? SC_IGNORE_ENV : 0);

	if (cli_resolve_path(cli) != CLI_OK)
		return CLI_ERROR;
	/*
	 * An existing shard gives the canonical path.  No shard yet, or one
	 * the library refuses: the resolved path is still the answer, and
	 * the other commands will say what is wrong with it.
	 */
	if (sc_open(&c, cli->path, NULL, flags) == 0)
		printf("%s\n", sc_path(c));
	else
		printf("%s\n", cli->path);
	sc_close(c);
	return CLI_OK;
}
