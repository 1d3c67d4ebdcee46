/*
 * cmd_remote.c - push and pull: the local shard and a remote tier shared
 * by a fleet (docs/REMOTE.md), through libscriptcache-remote.
 *
 *   push  uploads every entry that has a source hash (the only ones that
 *         can be keyed portably); the server keeps one copy of each blob.
 *   pull  hashes the given sources, asks the remote for the compiled
 *         bytes of each under one fingerprint (--tag, --exe), verifies
 *         them and stores them with the source's stat and bytes, so that
 *         the interpreter hits locally afterwards.
 *   verify --remote  (after the local check of cmd_verify()) fetches the
 *         remote's record and blob of every entry push would upload,
 *         verifies them as pull does and compares them with the local
 *         blob, reporting each entry whose remote copy is not the same.
 *
 * The first transport failure (no answer within the timeout, connection
 * refused, TLS, credentials) stops the run: the next file would wait for
 * the same dead server.  A miss, a refused blob or an odd answer for one
 * entry does not.  Credentials never reach this file: the library reads
 * them from the environment and its messages never contain them.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "humanfmt.h"
#include "jsonout.h"
#include "sc_remote.h"

#define WHY_LEN 1024

/* Counters of the command itself, beside the library's sc_remote_stats. */
struct tally {
	uint64_t seen;      /* push: entries; pull: source files */
	uint64_t done;      /* push: entries stored on the remote; pull: fetched into the shard */
	uint64_t local;     /* pull: already in the shard with this fingerprint */
	uint64_t missing;   /* pull: not on the remote */
	uint64_t unkeyed;   /* push: entries without a source hash, skipped */
	uint64_t refused;   /* pull: integrity failures */
	uint64_t failed;    /* other failures of one item */
	int stopped;        /* a transport error ended the run */
};

struct run {
	struct cli *cli;
	const char *what;   /* "push" or "pull" */
	sc_remote *remote;
	sc_remote_negcache *nc;
	struct tally t;
	uint64_t t0_ns;
	int progress;       /* stderr is a terminal */
	uint64_t last_progress_ns;
	/* pull */
	char exe_id[512];
	const char *shard;  /* the shard and its companions (lock, set-aside */
	size_t shard_len;   /* copies) are never taken for sources */
};

static uint64_t mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* "scriptcache: <what> <item>: <why>", the item printed terminal-safe. */
static void item_msg(const struct run *run, const char *item, size_t item_len, const char *why)
{
	if (run->progress)
		fputs("\r\033[K", stderr);
	fprintf(stderr, "scriptcache: %s ", run->what);
	hf_put_key(stderr, item, item_len);
	fprintf(stderr, ": %s\n", why);
}

static void show_progress(struct run *run, int force)
{
	sc_remote_stats s;
	char b[HF_SIZE_LEN];
	uint64_t now;

	if (!run->progress)
		return;
	now = mono_ns();
	if (!force && now - run->last_progress_ns < 100000000u)
		return;
	run->last_progress_ns = now;
	sc_remote_get_stats(run->remote, &s);
	fprintf(stderr, "\r\033[K%s: %" PRIu64 " %s, %" PRIu64 " %s, %s %s", run->what, run->t.seen,
		strcmp(run->what, "push") == 0 ? "entries" : "files", run->t.done,
		strcmp(run->what, "push") == 0 ? "stored" : "fetched",
		hf_size(strcmp(run->what, "push") == 0 ? s.bytes_up : s.bytes_down, b),
		strcmp(run->what, "push") == 0 ? "up" : "down");
	fflush(stderr);
}

/* The report of a run with the remote off. */
static json_t *off_report(void)
{
	return json_pack("{s:n, s:s}", "remote", "mode", "off");
}

/* The configuration and the client; CLI_OK, or the exit code (printed). */
static int open_remote(struct run *run, int need_write, int *off)
{
	char why[WHY_LEN] = "";
	sc_remote_config cfg;
	int rc;

	*off = 0;
	rc = sc_remote_config_from_env(&cfg, run->cli->remote, why, sizeof(why));
	if (rc != 0) {
		cli_msg("%s: %s", run->what, why[0] ? why : sc_remote_strerror(rc));
		return CLI_ERROR;
	}
	if (cfg.mode == SC_REMOTE_OFF) {
		cli_msg("%s: the remote is off (SCRIPTCACHE_REMOTE_MODE=off): %s", run->what,
			strcmp(run->what, "verify") == 0 ? "not checked" : "nothing to do");
		*off = 1;
		if ((run->cli->opts & OPT_JSON) && strcmp(run->what, "verify") != 0) {
			/* Scripts that parse the report still get one. */
			if (jo_print(off_report()) != 0)
				return CLI_ERROR;
		}
		return CLI_OK;
	}
	if (need_write && cfg.mode != SC_REMOTE_RW) {
		cli_msg("%s: the remote is read-only (SCRIPTCACHE_REMOTE_MODE=ro): nothing is sent",
			run->what);
		sc_remote_config_clear(&cfg);
		return CLI_ERROR;
	}
	rc = sc_remote_open(&run->remote, &cfg, why, sizeof(why));
	sc_remote_config_clear(&cfg);
	if (rc != 0) {
		cli_msg("%s: %s", run->what, why[0] ? why : sc_remote_strerror(rc));
		return CLI_ERROR;
	}
	run->progress = isatty(STDERR_FILENO);
	run->t0_ns = mono_ns();
	return CLI_OK;
}

/* The summary: one object for --json, two lines for people. */
static int report(struct run *run)
{
	int push = strcmp(run->what, "push") == 0;
	char up[HF_SIZE_LEN], down[HF_SIZE_LEN];
	double secs = (double)(mono_ns() - run->t0_ns) / 1e9;
	sc_remote_stats s;

	sc_remote_get_stats(run->remote, &s);
	if (run->progress)
		fputs("\r\033[K", stderr);
	if (run->cli->opts & OPT_JSON) {
		json_t *o = json_object();

		json_object_set_new(o, "remote", json_string(sc_remote_url(run->remote)));
		json_object_set_new(o, "mode",
				    json_string(sc_remote_get_mode(run->remote) == SC_REMOTE_RW ? "rw" : "ro"));
		json_object_set_new(o, push ? "entries" : "files", jo_u64(run->t.seen));
		json_object_set_new(o, push ? "stored" : "fetched", jo_u64(run->t.done));
		if (push) {
			json_object_set_new(o, "skipped_no_source_hash", jo_u64(run->t.unkeyed));
		} else {
			json_object_set_new(o, "already_local", jo_u64(run->t.local));
			json_object_set_new(o, "not_on_remote", jo_u64(run->t.missing));
		}
		json_object_set_new(o, "failed", jo_u64(run->t.failed));
		json_object_set_new(o, "stopped", json_boolean(run->t.stopped));
		json_object_set_new(o, "hits", jo_u64(s.hits));
		json_object_set_new(o, "misses", jo_u64(s.misses));
		json_object_set_new(o, "negative_hits", jo_u64(s.negative_hits));
		json_object_set_new(o, "errors", jo_u64(s.errors));
		json_object_set_new(o, "integrity_failures", jo_u64(s.integrity_failures));
		json_object_set_new(o, "blobs_uploaded", jo_u64(s.blobs_uploaded));
		json_object_set_new(o, "blobs_present", jo_u64(s.blobs_present));
		json_object_set_new(o, "records_uploaded", jo_u64(s.records_uploaded));
		json_object_set_new(o, "records_present", jo_u64(s.records_present));
		json_object_set_new(o, "requests", jo_u64(s.requests));
		json_object_set_new(o, "bytes_down", jo_u64(s.bytes_down));
		json_object_set_new(o, "bytes_up", jo_u64(s.bytes_up));
		json_object_set_new(o, "request_ms", jo_u64(s.time_ns / 1000000u));
		json_object_set_new(o, "elapsed_ms", jo_u64((mono_ns() - run->t0_ns) / 1000000u));
		if (jo_print(o) != 0) {
			cli_msg("%s: cannot write the JSON report", run->what);
			return -1;
		}
		return 0;
	}
	if (push)
		printf("pushed to %s: %" PRIu64 " entr%s, %" PRIu64 " stored (%" PRIu64
		       " blobs uploaded, %" PRIu64 " already there), %" PRIu64
		       " skipped without a source hash, %" PRIu64 " failed%s\n",
		       sc_remote_url(run->remote), run->t.seen, run->t.seen == 1 ? "y" : "ies", run->t.done,
		       s.blobs_uploaded, s.blobs_present, run->t.unkeyed, run->t.failed,
		       run->t.stopped ? ", stopped" : "");
	else
		printf("pulled from %s: %" PRIu64 " file%s, %" PRIu64 " fetched, %" PRIu64
		       " already local, %" PRIu64 " not on the remote, %" PRIu64
		       " refused (integrity), %" PRIu64 " failed%s\n",
		       sc_remote_url(run->remote), run->t.seen, run->t.seen == 1 ? "" : "s", run->t.done,
		       run->t.local, run->t.missing, run->t.refused, run->t.failed,
		       run->t.stopped ? ", stopped" : "");
	printf("remote: %" PRIu64 " hits, %" PRIu64 " misses, %" PRIu64 " errors, %" PRIu64
	       " integrity failures, %s down, %s up, %" PRIu64 " requests, %.3f s (%.3f s in requests)\n",
	       s.hits, s.misses, s.errors, s.integrity_failures, hf_size(s.bytes_down, down),
	       hf_size(s.bytes_up, up), s.requests, secs, (double)s.time_ns / 1e9);
	return 0;
}

static int exit_code(const struct run *run)
{
	if (run->t.stopped || run->t.failed)
		return CLI_ERROR;
	if (run->t.refused)
		return CLI_MISS; /* like a corrupt entry */
	return CLI_OK;
}

/* ---- push ---- */

struct keys {
	char **v;
	size_t n, cap;
	uint64_t unkeyed;
};

static int collect_keys(const sc_entry_info *e, void *arg)
{
	struct keys *k = arg;

	if (!e->has_source_hash) {
		k->unkeyed++;
		return 0;
	}
	if (k->n == k->cap) {
		size_t cap = k->cap ? k->cap * 2 : 64;
		char **v = realloc(k->v, cap * sizeof(*v));

		if (!v)
			return -ENOMEM;
		k->v = v;
		k->cap = cap;
	}
	if (!(k->v[k->n] = strndup(e->key, e->key_len)))
		return -ENOMEM;
	k->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int cmd_push(struct cli *cli)
{
	struct run run = { .cli = cli, .what = "push" };
	struct keys keys = { 0 };
	char why[WHY_LEN];
	size_t i;
	int rc, off;

	rc = open_remote(&run, 1, &off);
	if (rc != CLI_OK || off)
		return rc;
	rc = cli_open(cli, CLI_OPEN_READ);
	if (rc == CLI_NO_SHARD) {
		cli_no_shard(cli);
		rc = CLI_MISS;
		goto out;
	}
	if (rc != CLI_OK)
		goto out;
	rc = sc_foreach(cli->cache, collect_keys, &keys);
	if (rc < 0) {
		cli_err(rc, "push: cannot read shard %s", cli->path);
		rc = cli_exit_code(rc);
		goto out;
	}
	qsort(keys.v, keys.n, sizeof(*keys.v), cmp_str);
	run.t.unkeyed = keys.unkeyed;
	for (i = 0; i < keys.n; i++) {
		sc_remote_ident id;
		sc_entry_info e;

		run.t.seen++;
		/* sc_lookup() checksums the blob (sc_foreach() does not): a
		 * damaged entry is never shared with the fleet. */
		rc = sc_lookup(cli->cache, keys.v[i], &e);
		if (rc == SC_ENOTFOUND)
			continue; /* removed meanwhile */
		if (rc < 0 || sc_remote_ident_from_entry(&e, &id) != 0) {
			item_msg(&run, keys.v[i], strlen(keys.v[i]),
				 rc < 0 ? sc_strerror(rc) : "no source hash any more");
			run.t.failed++;
			continue;
		}
		why[0] = '\0';
		rc = sc_remote_store(run.remote, &id, e.blob, (size_t)e.blob_size, why, sizeof(why));
		if (rc == 0) {
			run.t.done++;
		} else {
			item_msg(&run, keys.v[i], strlen(keys.v[i]), why[0] ? why : sc_remote_strerror(rc));
			if (sc_remote_is_transport_error(rc)) {
				run.t.stopped = 1;
				cli_msg("push: stopped: %zu entr%s not sent", keys.n - i,
					keys.n - i == 1 ? "y" : "ies");
				break;
			}
			run.t.failed++;
		}
		show_progress(&run, 0);
	}
	rc = report(&run) != 0 ? CLI_ERROR : exit_code(&run);
out:
	for (i = 0; i < keys.n; i++)
		free(keys.v[i]);
	free(keys.v);
	sc_remote_close(run.remote);
	return rc;
}

/* ---- pull ---- */

/* Read a whole source; *st is its fstat before the read.  0 or -errno,
 * SC_ESTALE if it changed while being read. */
static int read_source(const char *path, struct stat *st, void **out, size_t *len)
{
	struct stat after;
	char *buf = NULL;
	size_t n = 0;
	int fd, rc = 0;

	*out = NULL;
	do
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	if (fstat(fd, st) != 0) {
		rc = -errno;
		goto out;
	}
	if (!S_ISREG(st->st_mode)) {
		rc = -EINVAL;
		goto out;
	}
	if ((uint64_t)st->st_size > SC_MAX_BLOB) {
		rc = SC_ETOOBIG;
		goto out;
	}
	buf = malloc((size_t)st->st_size + 1);
	if (!buf) {
		rc = -ENOMEM;
		goto out;
	}
	while (n < (size_t)st->st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st->st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = -errno;
			goto out;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	/* The stamp of the bytes we hashed: a write meanwhile moves it. */
	if (fstat(fd, &after) != 0) {
		rc = -errno;
		goto out;
	}
	if (n != (size_t)st->st_size || after.st_size != st->st_size ||
	    after.st_mtim.tv_sec != st->st_mtim.tv_sec || after.st_mtim.tv_nsec != st->st_mtim.tv_nsec)
		rc = SC_ESTALE;
out:
	close(fd);
	if (rc == 0) {
		*out = buf;
		*len = n;
	} else {
		free(buf);
	}
	return rc;
}

/* Already in the shard with this fingerprint and these source bytes? */
static int have_locally(struct run *run, const char *key, const sc_remote_ident *id)
{
	sc_entry_info e;

	if (sc_lookup(run->cli->cache, key, &e) != 0)
		return 0;
	return e.has_source_hash && e.source_size == id->source_size &&
	       e.source_hash[0] == id->source_hash[0] && e.source_hash[1] == id->source_hash[1] &&
	       e.tag_len == id->tag_len && memcmp(e.tag, id->tag, id->tag_len) == 0 &&
	       e.exe_id_len == id->exe_id_len && memcmp(e.exe_id, id->exe_id, id->exe_id_len) == 0;
}

static void pull_file(struct run *run, const char *path)
{
	const char *tag = run->cli->tag;
	char why[WHY_LEN], *key = NULL;
	void *src = NULL, *blob = NULL;
	sc_remote_ident id;
	struct stat st;
	size_t src_len = 0, blob_len = 0;
	int rc;

	rc = cli_key_from_path(path, &key);
	/* A pull of the directory that holds the shard: not sources. */
	if (rc == 0 && strncmp(key, run->shard, run->shard_len) == 0 &&
	    (key[run->shard_len] == '\0' || key[run->shard_len] == '.'))
		goto out;
	run->t.seen++;
	if (rc == 0)
		rc = read_source(key, &st, &src, &src_len);
	if (rc != 0) {
		item_msg(run, path, strlen(path),
			 rc == SC_ESTALE ? "changed while being read: skipped" : sc_strerror(rc));
		run->t.failed++;
		goto out;
	}
	sc_remote_ident_for_source(&id, tag, run->exe_id, src, src_len);
	if (have_locally(run, key, &id)) {
		run->t.local++;
		goto out;
	}
	why[0] = '\0';
	rc = sc_remote_lookup(run->remote, &id, 0, run->nc, &blob, &blob_len, why, sizeof(why));
	if (rc == 0) {
		sc_put_opts o;

		memset(&o, 0, sizeof(o));
		o.source = &st;
		o.tag = tag;
		o.exe_path = run->cli->exe;
		o.source_bytes = src;
		o.source_len = src_len;
		rc = sc_put_ex(run->cli->cache, key, blob, blob_len, &o);
		if (rc == 0) {
			run->t.done++;
		} else {
			item_msg(run, key, strlen(key), sc_strerror(rc));
			run->t.failed++;
		}
	} else if (rc == SC_REMOTE_ENOTFOUND) {
		run->t.missing++;
	} else if (rc == SC_REMOTE_EINTEGRITY) {
		snprintf(why + strlen(why), sizeof(why) - strlen(why), " (refused)");
		item_msg(run, key, strlen(key), why);
		run->t.refused++;
	} else {
		item_msg(run, key, strlen(key), why[0] ? why : sc_remote_strerror(rc));
		if (sc_remote_is_transport_error(rc))
			run->t.stopped = 1;
		else
			run->t.failed++;
	}
out:
	show_progress(run, 0);
	free(blob);
	free(src);
	free(key);
}

/* Every regular file under @p dir; symbolic links met on the way are not
 * followed (no loops, no escaping the tree). */
static void pull_dir(struct run *run, const char *dir)
{
	struct dirent **names = NULL;
	int n, i;

	n = scandir(dir, &names, NULL, alphasort);
	if (n < 0) {
		char why[256];
		snprintf(why, sizeof(why), "cannot read the directory: %s", strerror(errno));
		item_msg(run, dir, strlen(dir), why);
		run->t.failed++;
		return;
	}
	for (i = 0; i < n; i++) {
		const char *name = names[i]->d_name;
		struct stat st;
		char *path;

		if (run->t.stopped || strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
			continue;
		if (asprintf(&path, "%s/%s", dir, name) < 0) {
			run->t.failed++;
			continue;
		}
		if (lstat(path, &st) == 0) {
			if (S_ISDIR(st.st_mode))
				pull_dir(run, path);
			else if (S_ISREG(st.st_mode))
				pull_file(run, path);
		}
		free(path);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
}

int cmd_pull(struct cli *cli)
{
	struct run run = { .cli = cli, .what = "pull" };
	int i, rc, off;

	if (!(cli->opts & OPT_TAG)) {
		cli_msg("pull: --tag TAG is required: the fingerprint to look up (the interpreter's tag)");
		return CLI_ERROR;
	}
	rc = sc_exe_identity(cli->exe, run.exe_id, sizeof(run.exe_id));
	if (rc < 0) {
		cli_err(rc, "pull: cannot read the identity of %s", cli->exe ? cli->exe : "this program");
		return CLI_ERROR;
	}
	rc = open_remote(&run, 0, &off);
	if (rc != CLI_OK || off)
		return rc;
	/* Identical sources (vendored copies) cost one request per pull. */
	run.nc = sc_remote_negcache_new(4096, 600000);
	if (!run.nc) {
		cli_err(-ENOMEM, "pull");
		rc = CLI_ERROR;
		goto out;
	}
	rc = cli_open(cli, CLI_OPEN_CREATE);
	if (rc != CLI_OK)
		goto out;
	run.shard = sc_path(cli->cache); /* canonical: the shard exists now */
	run.shard_len = strlen(run.shard);
	for (i = 0; i < cli->argc && !run.t.stopped; i++) {
		struct stat st;

		if (stat(cli->argv[i], &st) != 0) {
			char why[256];
			snprintf(why, sizeof(why), "%s", strerror(errno));
			item_msg(&run, cli->argv[i], strlen(cli->argv[i]), why);
			run.t.failed++;
		} else if (S_ISDIR(st.st_mode)) {
			pull_dir(&run, cli->argv[i]);
		} else {
			pull_file(&run, cli->argv[i]);
		}
	}
	if (run.t.stopped)
		cli_msg("pull: stopped at the first transport failure");
	rc = report(&run) != 0 ? CLI_ERROR : exit_code(&run);
out:
	sc_remote_negcache_free(run.nc);
	sc_remote_close(run.remote);
	return rc;
}

/* ---- verify --remote ---- */

/*
 * What verify --remote finds for one entry, worst last.  An entry the
 * remote lacks is no problem (push has not run, or the server pruned
 * it); a record whose blob is gone is a miss for every machine until a
 * push puts the blob back; other bytes than ours, verified against their
 * record, are a valid compile that is not this shard's (a compiler whose
 * output is not deterministic, or an option the fingerprint does not
 * capture).  Only bytes that fail their own record, and a record that is
 * not one for the key, say the server serves damage: those fail, as a
 * corrupt local entry does.
 */
struct vremote {
	struct run run;
	struct keys keys;
	uint64_t same;         /* the remote blob is the local one */
	uint64_t differs;      /* verified, other bytes than the local blob */
	uint64_t missing;      /* no record */
	uint64_t blob_missing; /* a record, no blob */
	uint64_t refused;      /* integrity failures */
	uint64_t bad_records;  /* records that are not ours */
	uint64_t damaged;      /* local entries that fail their checksum: the local check reports them */
	json_t *problems;      /* --json */
};

int cli_vremote_open(struct cli *cli, struct vremote **out)
{
	struct vremote *v;
	int rc, off;

	*out = NULL;
	v = calloc(1, sizeof(*v));
	if (!v) {
		cli_err(-ENOMEM, "verify");
		return CLI_ERROR;
	}
	v->run.cli = cli;
	v->run.what = "verify";
	rc = open_remote(&v->run, 0, &off);
	if (rc != CLI_OK || off) {
		free(v);
		return rc;
	}
	if ((cli->opts & OPT_JSON) && !(v->problems = json_array())) {
		cli_vremote_close(v);
		cli_err(-ENOMEM, "verify");
		return CLI_ERROR;
	}
	*out = v;
	return CLI_OK;
}

void cli_vremote_close(struct vremote *v)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < v->keys.n; i++)
		free(v->keys.v[i]);
	free(v->keys.v);
	json_decref(v->problems);
	sc_remote_close(v->run.remote);
	free(v);
}

/* One problem of one entry: a line on stdout, or an element of "problems". */
static void vremote_problem(struct vremote *v, const char *key, const char *problem,
			    const char *msg)
{
	if (v->problems) {
		json_array_append_new(v->problems,
				      json_pack("{s:o, s:s, s:s}", "key", jo_bytes(key, strlen(key)),
						"problem", problem, "message", msg));
		return;
	}
	if (v->run.progress)
		fputs("\r\033[K", stderr);
	fputs("remote ", stdout);
	hf_put_key(stdout, key, strlen(key));
	printf(": %s: %s\n", problem, msg);
}

static void vremote_entry(struct vremote *v, const char *key)
{
	char why[WHY_LEN], hex[SC_REMOTE_HEX], msg[WHY_LEN + 256];
	unsigned char local_sha[SC_REMOTE_DIGEST];
	sc_remote_record rec;
	sc_remote_ident id;
	sc_entry_info e;
	void *blob = NULL;
	size_t len = 0;
	int rc, have_rec;

	v->run.t.seen++;
	/* The local bytes, checksummed: what push would upload. */
	rc = sc_lookup(v->run.cli->cache, key, &e);
	if (rc == SC_ENOTFOUND)
		return; /* removed meanwhile */
	if (rc == SC_ECORRUPT) {
		v->damaged++;
		return;
	}
	if (rc < 0 || sc_remote_ident_from_entry(&e, &id) != 0) {
		vremote_problem(v, key, "error", rc < 0 ? sc_strerror(rc) : "no source hash any more");
		v->run.t.failed++;
		return;
	}
	why[0] = '\0';
	rc = sc_remote_fetch(v->run.remote, &id, 0, &rec, &have_rec, &blob, &len, why, sizeof(why));
	if (rc == 0) {
		if ((rc = sc_remote_sha256(e.blob, (size_t)e.blob_size, local_sha)) != 0) {
			vremote_problem(v, key, "error", sc_strerror(rc));
			v->run.t.failed++;
		} else if (memcmp(local_sha, rec.blob_sha256, SC_REMOTE_DIGEST) == 0) {
			v->same++;
		} else {
			snprintf(msg, sizeof(msg),
				 "the remote's blob %s (%zu bytes, verified) is not the local one "
				 "(%" PRIu64 " bytes): another machine's compile of the same source "
				 "and fingerprint, valid but different (a compiler whose output is "
				 "not deterministic?)",
				 sc_remote_hex(rec.blob_sha256, hex), len, e.blob_size);
			vremote_problem(v, key, "differs", msg);
			v->differs++;
		}
	} else if (rc == SC_REMOTE_ENOTFOUND && !have_rec) {
		v->missing++;
	} else if (rc == SC_REMOTE_ENOTFOUND) {
		snprintf(msg, sizeof(msg),
			 "the record names blob %s, which the server does not have (pruned?): a "
			 "miss for every machine until a push puts it back",
			 sc_remote_hex(rec.blob_sha256, hex));
		vremote_problem(v, key, "blob-missing", msg);
		v->blob_missing++;
	} else if (rc == SC_REMOTE_EINTEGRITY) {
		vremote_problem(v, key, "integrity", why[0] ? why : sc_remote_strerror(rc));
		v->refused++;
	} else if (rc == SC_REMOTE_ERECORD) {
		vremote_problem(v, key, "bad-record", why[0] ? why : sc_remote_strerror(rc));
		v->bad_records++;
	} else {
		vremote_problem(v, key, "error", why[0] ? why : sc_remote_strerror(rc));
		if (sc_remote_is_transport_error(rc))
			v->run.t.stopped = 1;
		else
			v->run.t.failed++;
	}
	free(blob);
}

static void vremote_progress(struct vremote *v, int force)
{
	char b[HF_SIZE_LEN];
	sc_remote_stats s;
	uint64_t now;

	if (!v->run.progress)
		return;
	now = mono_ns();
	if (!force && now - v->run.last_progress_ns < 100000000u)
		return;
	v->run.last_progress_ns = now;
	sc_remote_get_stats(v->run.remote, &s);
	fprintf(stderr, "\r\033[Kverify --remote: %" PRIu64 "/%zu entries, %" PRIu64 " same, %s down",
		v->run.t.seen, v->keys.n, v->same, hf_size(s.bytes_down, b));
	fflush(stderr);
}

static json_t *vremote_json(struct vremote *v, int ok)
{
	sc_remote_stats s;
	json_t *o = json_object();

	sc_remote_get_stats(v->run.remote, &s);
	json_object_set_new(o, "remote", json_string(sc_remote_url(v->run.remote)));
	json_object_set_new(o, "mode",
			    json_string(sc_remote_get_mode(v->run.remote) == SC_REMOTE_RW ? "rw" : "ro"));
	json_object_set_new(o, "ok", json_boolean(ok));
	json_object_set_new(o, "entries", jo_u64(v->run.t.seen));
	json_object_set_new(o, "same", jo_u64(v->same));
	json_object_set_new(o, "differs", jo_u64(v->differs));
	json_object_set_new(o, "not_on_remote", jo_u64(v->missing));
	json_object_set_new(o, "blob_missing", jo_u64(v->blob_missing));
	json_object_set_new(o, "integrity_failures", jo_u64(v->refused));
	json_object_set_new(o, "bad_records", jo_u64(v->bad_records));
	json_object_set_new(o, "skipped_no_source_hash", jo_u64(v->run.t.unkeyed));
	json_object_set_new(o, "skipped_damaged", jo_u64(v->damaged));
	json_object_set_new(o, "failed", jo_u64(v->run.t.failed));
	json_object_set_new(o, "stopped", json_boolean(v->run.t.stopped));
	json_object_set_new(o, "problems", v->problems);
	v->problems = NULL;
	json_object_set_new(o, "errors", jo_u64(s.errors));
	json_object_set_new(o, "requests", jo_u64(s.requests));
	json_object_set_new(o, "bytes_down", jo_u64(s.bytes_down));
	json_object_set_new(o, "request_ms", jo_u64(s.time_ns / 1000000u));
	json_object_set_new(o, "elapsed_ms", jo_u64((mono_ns() - v->run.t0_ns) / 1000000u));
	return o;
}

int cli_vremote_check(struct vremote *v, struct json_t **json)
{
	struct cli *cli = v->run.cli;
	sc_remote_stats s;
	size_t i;
	int rc;

	*json = NULL;
	rc = sc_foreach(cli->cache, collect_keys, &v->keys);
	if (rc < 0) {
		cli_err(rc, "verify --remote: cannot read shard %s", cli->path);
		return cli_exit_code(rc);
	}
	/* Sorted: the same shard gives the same report. */
	qsort(v->keys.v, v->keys.n, sizeof(*v->keys.v), cmp_str);
	v->run.t.unkeyed = v->keys.unkeyed;
	for (i = 0; i < v->keys.n && !v->run.t.stopped; i++) {
		vremote_entry(v, v->keys.v[i]);
		vremote_progress(v, 0);
	}
	if (v->run.t.stopped)
		cli_msg("verify --remote: stopped at the first transport failure: %zu entr%s not "
			"checked", v->keys.n - i, v->keys.n - i == 1 ? "y" : "ies");
	if (v->run.progress)
		fputs("\r\033[K", stderr);
	if (v->run.t.stopped || v->run.t.failed)
		rc = CLI_ERROR;
	else if (v->refused || v->bad_records)
		rc = CLI_MISS; /* the server serves damage: like a corrupt entry */
	else
		rc = CLI_OK;
	if (v->problems) {
		*json = vremote_json(v, rc == CLI_OK);
		return rc;
	}
	sc_remote_get_stats(v->run.remote, &s);
	printf("remote %s: %s, %" PRIu64 " entr%s with a source hash: %" PRIu64 " same, %" PRIu64
	       " differ, %" PRIu64 " not on the remote, %" PRIu64 " blob missing, %" PRIu64
	       " integrity failure%s, %" PRIu64 " bad record%s, %" PRIu64 " failed%s\n",
	       sc_remote_url(v->run.remote),
	       rc == CLI_OK ? "ok" : rc == CLI_MISS ? "DAMAGED" : "INCOMPLETE",
	       v->run.t.seen, v->run.t.seen == 1 ? "y" : "ies", v->same, v->differs, v->missing,
	       v->blob_missing, v->refused, v->refused == 1 ? "" : "s", v->bad_records,
	       v->bad_records == 1 ? "" : "s", v->run.t.failed, v->run.t.stopped ? ", stopped" : "");
	printf("remote: %" PRIu64 " requests, %" PRIu64 " errors, %" PRIu64 " bytes down, %.3f s\n",
	       s.requests, s.errors, s.bytes_down, (double)(mono_ns() - v->run.t0_ns) / 1e9);
	return rc;
}

/* "remote": the report of verify --remote with the remote off. */
struct json_t *cli_vremote_off_json(void)
{
	return off_report();
}
