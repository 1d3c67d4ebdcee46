/*
 * remote.c - the remote tier under the mount (-o remote=URL, docs/REMOTE.md
 * "The mount").
 *
 * When a lookup of the flat view (the root's <encoded key> name) finds no
 * fresh entry in the shard and the key is the absolute path of a regular
 * file, that file is the source the entry would have been compiled from
 * (flat keys name their source, as `scriptcache put` and the interpreters'
 * clients make them).  The daemon then
 *   1. reads the source's bytes (no symbolic link on the way, never below
 *      the mount point, a regular file of at most FS_REMOTE_SOURCE_MAX
 *      bytes whose stamp did not move while it was read; with allow_other,
 *      one the caller may read);
 *   2. for each fingerprint it knows (below), builds the remote identity
 *      (sc_remote_ident_for_source: tag, executable identity, XXH3-128 and
 *      size of those bytes) and calls sc_remote_lookup() with what is left
 *      of one time budget (remote_timeout_ms for the whole miss) and the
 *      negative cache;
 *   3. on a verified hit, puts the blob into the shard (fs_put, so the tree
 *      index and the watcher know it as the daemon's own commit) with the
 *      source's stat and bytes, the tag and the executable, and the lookup
 *      goes on as a local hit.
 *
 * Fingerprints: a plain miss does not say which interpreter asks.  The
 * daemon tries, in this order, the one given by -o remote_tag and
 * -o remote_exe, then the distinct (tag, executable) pairs of the entries
 * that the shard held at mount time, with a source hash and an executable
 * whose identity is still the recorded one (at most FS_REMOTE_MAX_FP in
 * all).  With none, the remote is never asked (said at mount).
 *
 * A slow or dead remote: the budget bounds a miss; a transport failure
 * (timeout, refused connection, TLS, credentials) opens a circuit breaker:
 * for remote_breaker_s seconds no miss asks the remote.  Then one miss (the
 * probe) asks again while the others still skip; its outcome closes the
 * breaker or opens it for another period.  Misses the server answered with
 * 404 are remembered by the negative cache (FS_REMOTE_NEG_TTL_MS).
 *
 * The tree view (fs_remote_fill_pyc): a lookup of CPython's
 * <dir>/<stem>.<cache tag>[.opt-N].pyc that finds nothing in the shard
 * nor underneath asks the same way for the compiled form of
 * <dir>/<stem>.py (pyc.c), under the tag the name gives ("pyc cpython-311"),
 * with the caller's executable, -o remote_exe and the executables of the
 * shard's shared .pyc entries; the entry put has no source file but the
 * source's hash, and a timestamp .pyc's header gets the local source's
 * mtime and size.
 *
 * The daemon never uploads (push is the CLI's job), whatever the mode.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fs_i.h"
#include "sc_remote.h"

#define FS_REMOTE_MAX_FP              8
#define FS_REMOTE_SOURCE_MAX          (64u << 20)
#define FS_REMOTE_DEFAULT_TIMEOUT_MS  200
#define FS_REMOTE_DEFAULT_BREAKER_S   30
#define FS_REMOTE_NEG_SLOTS           65536
#define FS_REMOTE_NEG_TTL_MS          30000

struct fs_fp {
	char *tag;
	char *exe_path;
	char  exe_id[512];
	int   from_shard;
};

struct fs_remote {
	sc_remote          *r;
	sc_remote_negcache *nc;
	long                timeout_ms;
	unsigned            breaker_s;
	struct fs_fp        fp[FS_REMOTE_MAX_FP];
	int                 nfp;
	/* executables of the shard's shared .pyc entries (tree view; their
	 * tag comes from each name) */
	struct fs_fp        pyx[FS_REMOTE_MAX_FP];
	int                 npyx;

	/* atomics */
	uint64_t misses;        /* local misses that asked the remote */
	uint64_t fills;         /* entries put from the remote */
	uint64_t fill_errors;   /* verified blobs the shard refused */
	uint64_t timeouts;      /* misses whose budget ran out */
	uint64_t skipped;       /* misses that did not ask: breaker open */
	uint64_t breaker_opens;
	uint64_t pyc_lookups;   /* of the misses: tree-view .pyc */
	uint64_t pyc_fills;     /* of the fills: tree-view .pyc */
	uint64_t pyc_refused;   /* verified blobs that are no .pyc CPython takes */
	uint64_t miss_ns;       /* wall time of the misses that asked */
	int64_t  breaker_until; /* CLOCK_MONOTONIC ns; 0: closed */
};

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

#define LD(f) __atomic_load_n(&(f), __ATOMIC_RELAXED)
#define ADD(f, n) __atomic_add_fetch(&(f), (n), __ATOMIC_RELAXED)

/* ---- set-up ---- */

static int add_fp(struct fs_remote *rm, const char *tag, size_t tag_len, const char *exe,
		  size_t exe_len, const char *exe_id, size_t id_len, int from_shard)
{
	for (int i = 0; i < rm->nfp; i++)
		if (strlen(rm->fp[i].tag) == tag_len && memcmp(rm->fp[i].tag, tag, tag_len) == 0 &&
		    strlen(rm->fp[i].exe_id) == id_len && memcmp(rm->fp[i].exe_id, exe_id, id_len) == 0)
			return 0; /* already there */
	if (rm->nfp == FS_REMOTE_MAX_FP || id_len >= sizeof rm->fp[0].exe_id)
		return 0;
	struct fs_fp *f = &rm->fp[rm->nfp];
	f->tag = strndup(tag, tag_len);
	f->exe_path = strndup(exe, exe_len);
	if (!f->tag || !f->exe_path) {
		free(f->tag);
		free(f->exe_path);
		return -ENOMEM;
	}
	memcpy(f->exe_id, exe_id, id_len);
	f->exe_id[id_len] = '\0';
	f->from_shard = from_shard;
	rm->nfp++;
	return 0;
}

/* The executable of a shared .pyc entry (a cache path with its source's
 * hash, and a tag "pyc ..."), for the tree view's misses. */
static int learn_pyx(struct fs_remote *rm, const sc_entry_info *e)
{
	char path[4096], id[512];
	if (rm->npyx == FS_REMOTE_MAX_FP || e->exe_path_len >= sizeof path)
		return 0;
	for (int i = 0; i < rm->npyx; i++)
		if (strlen(rm->pyx[i].exe_id) == e->exe_id_len &&
		    memcmp(rm->pyx[i].exe_id, e->exe_id, e->exe_id_len) == 0)
			return 0;
	memcpy(path, e->exe_path, e->exe_path_len);
	path[e->exe_path_len] = '\0';
	if (sc_exe_identity(path, id, sizeof id) != 0 || strlen(id) != e->exe_id_len ||
	    memcmp(id, e->exe_id, e->exe_id_len) != 0)
		return 0; /* rebuilt or removed since, as below */
	struct fs_fp *f = &rm->pyx[rm->npyx];
	f->exe_path = strdup(path);
	if (!f->exe_path)
		return -ENOMEM;
	memcpy(f->exe_id, id, strlen(id) + 1);
	f->from_shard = 1;
	rm->npyx++;
	return 0;
}

/* sc_foreach(): the fingerprints of the shard's portable entries. */
static int learn_cb(const sc_entry_info *e, void *arg)
{
	struct fs_remote *rm = arg;
	char path[4096], id[512];
	if (!e->has_source && e->has_source_hash && e->exe_path_len && e->tag_len > 4 &&
	    memcmp(e->tag, "pyc ", 4) == 0)
		return learn_pyx(rm, e);
	if (!e->has_source || !e->has_source_hash || !e->exe_path_len ||
	    e->exe_path_len >= sizeof path)
		return 0;
	if (rm->nfp == FS_REMOTE_MAX_FP)
		return 0; /* (the .pyc entries may still teach executables) */
	for (int i = 0; i < rm->nfp; i++)
		if (strlen(rm->fp[i].tag) == e->tag_len &&
		    memcmp(rm->fp[i].tag, e->tag, e->tag_len) == 0 &&
		    strlen(rm->fp[i].exe_id) == e->exe_id_len &&
		    memcmp(rm->fp[i].exe_id, e->exe_id, e->exe_id_len) == 0)
			return 0;
	memcpy(path, e->exe_path, e->exe_path_len);
	path[e->exe_path_len] = '\0';
	/* an executable rebuilt or removed since: its entries are stale
	 * anyway, and a put would record another identity */
	if (sc_exe_identity(path, id, sizeof id) != 0 || strlen(id) != e->exe_id_len ||
	    memcmp(id, e->exe_id, e->exe_id_len) != 0)
		return 0;
	return add_fp(rm, e->tag, e->tag_len, path, e->exe_path_len, id, strlen(id), 1) < 0 ? -ENOMEM : 0;
}

int fs_remote_open(struct fs *fs, const char *prog)
{
	struct fs_opts *o = &fs->fs_o;
	sc_remote_config cfg;
	char why[512] = "";
	int rc;

	if (!o->o_remote) {
		if (o->o_remote_tag || o->o_remote_exe)
			fprintf(stderr, "%s: -o remote_tag/remote_exe without -o remote: ignored\n", prog);
		return 0;
	}
	if (o->o_ro) {
		fprintf(stderr, "%s: -o remote needs a writable shard (what the remote answers "
			"is put into it); not with -o ro\n", prog);
		return -1;
	}
	if (!o->o_remote_tag != !o->o_remote_exe) {
		fprintf(stderr, "%s: -o remote_tag and -o remote_exe go together (the fingerprint: "
			"the interpreter's tag and its executable)\n", prog);
		return -1;
	}
	if (o->o_remote_timeout_ms != -1 &&
	    (o->o_remote_timeout_ms < 1 || o->o_remote_timeout_ms > 60000)) {
		fprintf(stderr, "%s: -o remote_timeout_ms must be 1 to 60000\n", prog);
		return -1;
	}
	rc = sc_remote_config_from_env(&cfg, o->o_remote, why, sizeof why);
	if (rc != 0) {
		fprintf(stderr, "%s: remote: %s\n", prog, why[0] ? why : sc_remote_strerror(rc));
		return -1;
	}
	if (cfg.mode == SC_REMOTE_OFF) {
		fprintf(stderr, "%s: the remote is off (SCRIPTCACHE_REMOTE_MODE=off): not used\n", prog);
		sc_remote_config_clear(&cfg);
		return 0;
	}
	struct fs_remote *rm = calloc(1, sizeof *rm);
	if (!rm) {
		sc_remote_config_clear(&cfg);
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	/* A process waits on every miss: the daemon's own default, unless the
	 * option or the environment says otherwise. */
	if (o->o_remote_timeout_ms > 0)
		rm->timeout_ms = o->o_remote_timeout_ms;
	else if (getenv("SCRIPTCACHE_REMOTE_TIMEOUT_MS"))
		rm->timeout_ms = cfg.timeout_ms;
	else
		rm->timeout_ms = FS_REMOTE_DEFAULT_TIMEOUT_MS;
	cfg.timeout_ms = rm->timeout_ms;
	rm->breaker_s = o->o_remote_breaker_s;
	fs->fs_remote = rm;
	rc = sc_remote_open(&rm->r, &cfg, why, sizeof why);
	sc_remote_config_clear(&cfg);
	if (rc != 0) {
		fprintf(stderr, "%s: remote: %s\n", prog, why[0] ? why : sc_remote_strerror(rc));
		return -1;
	}
	rm->nc = sc_remote_negcache_new(FS_REMOTE_NEG_SLOTS, FS_REMOTE_NEG_TTL_MS);
	if (!rm->nc) {
		fprintf(stderr, "%s: out of memory\n", prog);
		return -1;
	}
	if (o->o_remote_tag) {
		char id[512];
		rc = sc_exe_identity(o->o_remote_exe, id, sizeof id);
		if (rc != 0) {
			fprintf(stderr, "%s: -o remote_exe=%s: %s\n", prog, o->o_remote_exe,
				sc_strerror(rc));
			return -1;
		}
		if (add_fp(rm, o->o_remote_tag, strlen(o->o_remote_tag), o->o_remote_exe,
			   strlen(o->o_remote_exe), id, strlen(id), 0) < 0) {
			fprintf(stderr, "%s: out of memory\n", prog);
			return -1;
		}
	}
	rc = sc_foreach(fs->fs_cache, learn_cb, rm);
	if (rc < 0)
		fprintf(stderr, "%s: remote: cannot read the shard's fingerprints: %s\n", prog,
			sc_strerror(rc));
	if (rm->nfp == 0)
		fprintf(stderr, "%s: remote: no fingerprint to look up (no -o remote_tag/remote_exe, "
			"no portable entry in the shard): the flat view does not ask the remote "
			"(the tree view's .pyc misses ask with the caller's executable)\n", prog);
	return 0;
}

void fs_remote_close(struct fs *fs)
{
	struct fs_remote *rm = fs->fs_remote;
	if (!rm)
		return;
	for (int i = 0; i < rm->nfp; i++) {
		free(rm->fp[i].tag);
		free(rm->fp[i].exe_path);
	}
	for (int i = 0; i < rm->npyx; i++)
		free(rm->pyx[i].exe_path);
	sc_remote_negcache_free(rm->nc);
	sc_remote_close(rm->r);
	free(rm);
	fs->fs_remote = NULL;
}

/* ---- a miss ---- */

/* The source's bytes: 0, or -1 (not a source we read: no remote lookup).
 * @p req NULL: no caller to check (the daemon's own use, never with
 * allow_other). */
int fs_read_source(fuse_req_t req, struct fs *fs, const char *key, struct stat *st,
		   char **out, size_t *len)
{
	struct stat after;
	char *buf = NULL;
	size_t n = 0;
	int ok = 0;

	int fd = fs_open_nolinks(AT_FDCWD, key, O_RDONLY | O_NONBLOCK | O_NOCTTY, 0);
	if (fd < 0)
		return -1;
	if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode) ||
	    (uint64_t)st->st_size > FS_REMOTE_SOURCE_MAX)
		goto out;
	if (fs->fs_o.o_allow_other) {
		/* another user must not get, through us, the compiled form of a
		 * source they cannot read */
		if (!req)
			goto out;
		const char *slash = strrchr(key, '/');
		char dir[4096];
		size_t dl = slash && slash != key ? (size_t)(slash - key) : 1;
		if (dl >= sizeof dir)
			goto out;
		memcpy(dir, key, dl);
		dir[dl] = '\0';
		if (!fs_caller_ok(req, fs, dir, st))
			goto out;
	}
	buf = malloc((size_t)st->st_size + 1);
	if (!buf)
		goto out;
	while (n < (size_t)st->st_size) {
		ssize_t r = read(fd, buf + n, (size_t)st->st_size - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		n += (size_t)r;
	}
	ok = n == (size_t)st->st_size && fstat(fd, &after) == 0 &&
	     after.st_size == st->st_size && after.st_mtim.tv_sec == st->st_mtim.tv_sec &&
	     after.st_mtim.tv_nsec == st->st_mtim.tv_nsec;
out:
	close(fd);
	if (!ok) {
		free(buf);
		return -1;
	}
	*out = buf;
	*len = n;
	return 0;
}

/* May this miss ask the remote?  1 if yes (*@p probe: it is the breaker's
 * probe), 0 if the breaker is open. */
static int breaker_pass(struct fs_remote *rm, int *probe)
{
	int64_t until = __atomic_load_n(&rm->breaker_until, __ATOMIC_ACQUIRE);
	*probe = 0;
	if (until == 0)
		return 1;
	int64_t now = now_ns();
	if (now < until)
		return 0;
	/* the period is over: one miss probes, the others keep skipping
	 * until it is done (or its budget is long past) */
	int64_t hold = now + (rm->timeout_ms + 1000) * 1000000;
	if (!__atomic_compare_exchange_n(&rm->breaker_until, &until, hold, 0, __ATOMIC_ACQ_REL,
					 __ATOMIC_ACQUIRE))
		return 0;
	*probe = 1;
	return 1;
}

/* One fingerprint a miss asks with. */
struct fs_ask {
	const char *tag;
	const char *exe_id;
	const char *exe_path;
};

/*
 * A miss of @p key whose source @p srcpath may be on the remote: read the
 * source, ask with each of @p asks (@p n) under one budget, put the first
 * verified answer under @p key.  @p pyc: a tree-view .pyc (an entry with no
 * source file but the source's hash, and the blob's header made to match
 * the local source first); else a flat key, its own source.  Returns 1 if
 * an entry was put, else 0.
 */
static int fill(fuse_req_t req, struct fs *fs, const char *key, size_t klen, const char *srcpath,
		const struct fs_ask *asks, int n, int pyc)
{
	struct fs_remote *rm = fs->fs_remote;
	struct stat st;
	char *src = NULL, why[512];
	size_t src_len = 0;
	int filled = 0, probe = 0, transport = 0;

	/* An open breaker skips the miss before the source is read (up to
	 * FS_REMOTE_SOURCE_MAX bytes for nothing). */
	int64_t until = __atomic_load_n(&rm->breaker_until, __ATOMIC_ACQUIRE);
	if (until != 0 && now_ns() < until) {
		ADD(rm->skipped, 1);
		return 0;
	}
	if (fs_read_source(req, fs, srcpath, &st, &src, &src_len) != 0)
		return 0;
	if (!breaker_pass(rm, &probe)) {
		ADD(rm->skipped, 1);
		free(src);
		return 0;
	}
	ADD(rm->misses, 1);
	if (pyc)
		ADD(rm->pyc_lookups, 1);
	int64_t t0 = now_ns(), deadline = t0 + rm->timeout_ms * 1000000;
	for (int i = 0; i < n && !filled; i++) {
		const struct fs_ask *f = &asks[i];
		sc_remote_ident id;
		void *blob = NULL;
		size_t blen = 0;
		long left = (long)((deadline - now_ns()) / 1000000);
		if (left < 1) {
			ADD(rm->timeouts, 1);
			break;
		}
		sc_remote_ident_for_source(&id, f->tag, f->exe_id, src, src_len);
		why[0] = '\0';
		int rc = sc_remote_lookup(rm->r, &id, left, rm->nc, &blob, &blen, why, sizeof why);
		if (rc == 0) {
			sc_put_opts o;
			memset(&o, 0, sizeof o);
			o.tag = f->tag;
			o.exe_path = f->exe_path;
			o.source_bytes = src;
			o.source_len = src_len;
			if (pyc) {
				/* the key is a cache path; the entry records the
				 * source it stands for, as a commit does */
				o.no_source = 1;
			} else {
				o.source = &st;
			}
			/* (after the SHA-256 check: the bytes verified are the
			 * remote's, the header then becomes this machine's) */
			if (pyc && fs_pyc_fix(blob, blen, &st) != 0) {
				ADD(rm->pyc_refused, 1);
				fprintf(stderr, "scriptcachefs: remote: %s: the blob is not a .pyc "
					"CPython would take: refused\n", key);
			} else {
				int err = fs_put(fs, key, klen, blob, blen, &o);
				if (err == 0) {
					filled = 1;
					ADD(rm->fills, 1);
					if (pyc)
						ADD(rm->pyc_fills, 1);
				} else {
					ADD(rm->fill_errors, 1);
					fprintf(stderr, "scriptcachefs: remote: %s: cannot put: %s\n",
						key, sc_strerror(err));
				}
			}
			free(blob);
		} else if (rc == SC_REMOTE_ENOTFOUND) {
			continue;
		} else if (sc_remote_is_transport_error(rc)) {
			transport = 1;
			if (rc == SC_REMOTE_ETIMEOUT)
				ADD(rm->timeouts, 1);
			fprintf(stderr, "scriptcachefs: remote: %s; not asked again for %u s\n",
				why[0] ? why : sc_remote_strerror(rc), rm->breaker_s);
			break;
		} else {
			/* one object: a refused blob, a bad record, an HTTP status */
			fprintf(stderr, "scriptcachefs: remote: %s: %s\n", key,
				why[0] ? why : sc_remote_strerror(rc));
		}
	}
	if (transport && rm->breaker_s > 0) {
		__atomic_store_n(&rm->breaker_until, now_ns() + (int64_t)rm->breaker_s * 1000000000,
				 __ATOMIC_RELEASE);
		ADD(rm->breaker_opens, 1);
	} else if (probe) {
		__atomic_store_n(&rm->breaker_until, 0, __ATOMIC_RELEASE);
	}
	ADD(rm->miss_ns, (uint64_t)(now_ns() - t0));
	free(src);
	return filled;
}

int fs_remote_fill(fuse_req_t req, struct fs *fs, const char *key, size_t klen)
{
	struct fs_remote *rm = fs->fs_remote;
	struct fs_ask asks[FS_REMOTE_MAX_FP];
	sc_entry_info e;

	if (!rm || rm->nfp == 0 || !fs_key_is_path(key, klen) || fs_in_mount(fs, key))
		return 0;
	pthread_rwlock_rdlock(&fs->fs_map_lock);
	int local = sc_lookup(fs->fs_cache, key, &e) == 0 && sc_entry_status(&e) == 0;
	pthread_rwlock_unlock(&fs->fs_map_lock);
	if (local)
		return 0;
	for (int i = 0; i < rm->nfp; i++)
		asks[i] = (struct fs_ask){ rm->fp[i].tag, rm->fp[i].exe_id, rm->fp[i].exe_path };
	return fill(req, fs, key, klen, key, asks, rm->nfp, 0);
}

/* Add executable @p path (identity @p id) to @p asks unless it is there. */
static int ask_add(struct fs_ask *asks, int n, const char *tag, const char *id, const char *path)
{
	if (n == FS_REMOTE_MAX_FP)
		return n;
	for (int i = 0; i < n; i++)
		if (strcmp(asks[i].exe_id, id) == 0)
			return n;
	asks[n] = (struct fs_ask){ tag, id, path };
	return n + 1;
}

int fs_remote_fill_pyc(fuse_req_t req, struct fs *fs, const char *key, size_t klen)
{
	struct fs_remote *rm = fs->fs_remote;
	struct fs_ask asks[FS_REMOTE_MAX_FP];
	char src[SC_MAX_KEY + 1], tag[300], cid[512];
	int n = 0;

	if (!rm || fs_pyc_name(key, klen, src, sizeof src, tag, sizeof tag) != 0 ||
	    fs_in_mount(fs, src))
		return 0;
	/*
	 * The executables: the process looking the name up first (CPython
	 * importing: the interpreter that will read the .pyc; another program
	 * costs one GET, then the negative cache), then -o remote_exe, then
	 * those of the shard's shared .pyc entries.  The tag is the name's.
	 */
	char *caller = fs_writer_exe(fuse_req_ctx(req)->pid);
	if (caller && sc_exe_identity(caller, cid, sizeof cid) == 0)
		n = ask_add(asks, n, tag, cid, caller);
	for (int i = 0; i < rm->nfp; i++)
		if (!rm->fp[i].from_shard)
			n = ask_add(asks, n, tag, rm->fp[i].exe_id, rm->fp[i].exe_path);
	for (int i = 0; i < rm->npyx; i++)
		n = ask_add(asks, n, tag, rm->pyx[i].exe_id, rm->pyx[i].exe_path);
	int filled = n ? fill(req, fs, key, klen, src, asks, n, 1) : 0;
	free(caller);
	return filled;
}

/* ---- .stats ---- */

json_t *fs_remote_render(struct fs *fs)
{
	struct fs_remote *rm = fs->fs_remote;
	sc_remote_stats s;
	if (!rm)
		return json_null();
	sc_remote_get_stats(rm->r, &s);
	json_t *o = json_object();
	sc_remote_mode mode = sc_remote_get_mode(rm->r);
	json_object_set_new(o, "url", json_string(sc_remote_url(rm->r)));
	json_object_set_new(o, "mode", json_string(mode == SC_REMOTE_RW ? "rw" : "ro"));
	json_object_set_new(o, "timeout_ms", json_integer(rm->timeout_ms));
	json_t *fps = json_array();
	for (int i = 0; i < rm->nfp; i++) {
		json_t *f = json_object();
		json_object_set_new(f, "tag", json_string(rm->fp[i].tag));
		json_object_set_new(f, "exe", json_string(rm->fp[i].exe_path));
		json_object_set_new(f, "from", json_string(rm->fp[i].from_shard ? "shard" : "option"));
		json_array_append_new(fps, f);
	}
	json_object_set_new(o, "fingerprints", fps);
	json_t *pyx = json_array();
	for (int i = 0; i < rm->npyx; i++)
		json_array_append_new(pyx, json_string(rm->pyx[i].exe_path));
	json_object_set_new(o, "pyc_executables", pyx);
#define J(v) json_integer((json_int_t)(v))
	json_object_set_new(o, "lookups", J(LD(rm->misses)));
	json_object_set_new(o, "hits", J(s.hits));
	json_object_set_new(o, "misses", J(s.misses));
	json_object_set_new(o, "negative_hits", J(s.negative_hits));
	json_object_set_new(o, "fills", J(LD(rm->fills)));
	json_object_set_new(o, "fill_errors", J(LD(rm->fill_errors)));
	json_object_set_new(o, "pyc_lookups", J(LD(rm->pyc_lookups)));
	json_object_set_new(o, "pyc_fills", J(LD(rm->pyc_fills)));
	json_object_set_new(o, "pyc_refused", J(LD(rm->pyc_refused)));
	json_object_set_new(o, "bytes", J(s.bytes_down));
	json_object_set_new(o, "requests", J(s.requests));
	json_object_set_new(o, "errors", J(s.errors));
	json_object_set_new(o, "integrity_failures", J(s.integrity_failures));
	json_object_set_new(o, "timeouts", J(LD(rm->timeouts)));
	json_object_set_new(o, "time_ms", J(LD(rm->miss_ns) / 1000000));
	json_object_set_new(o, "request_ms", J(s.time_ns / 1000000));
	json_t *b = json_object();
	int64_t until = __atomic_load_n(&rm->breaker_until, __ATOMIC_ACQUIRE), now = now_ns();
	json_object_set_new(b, "state", json_string(until == 0 ? "closed" :
						     now < until ? "open" : "half-open"));
	json_object_set_new(b, "open_for_ms", J(until > now ? (until - now) / 1000000 : 0));
	json_object_set_new(b, "period_s", J(rm->breaker_s));
	json_object_set_new(b, "opens", J(LD(rm->breaker_opens)));
	json_object_set_new(b, "skipped", J(LD(rm->skipped)));
	json_object_set_new(o, "breaker", b);
#undef J
	return o;
}
