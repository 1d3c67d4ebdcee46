/*
 * test_layers.c - the stack of shards (docs/LAYERS.md): hits from a lower
 * shard that write nothing, shadowing, whiteouts, a lower shard replaced
 * underneath, refused and damaged lower shards, the configuration from the
 * environment, and relocatable shards built by sc_build() and used from a
 * copy of their tree.  Real files in a temp directory; no mocks.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <xxhash.h>

#include "testutil.h"

#define TAG "layers vm 1.0"

static sc_cache *open_ok(const char *path, const char *tag, unsigned flags)
{
	sc_cache *c = NULL;
	int rc = sc_open(&c, path, tag, flags);
	if (rc)
		tap_diag("sc_open(%s): %s", path ? path : "(default)", sc_strerror(rc));
	TU_CHECK(rc == 0 && c != NULL);
	return c;
}

/* A lower shard at @p path holding @p n keys, each with the bytes
 * "<tag>:<key>", written by this process with TAG; then 0644. */
static void make_lower(const char *path, const char *const *keys, int n, const char *tag)
{
	sc_cache *c = open_ok(path, TAG, SC_NO_LOWERS);
	char buf[PATH_MAX + 64];
	for (int i = 0; i < n; i++) {
		int len = snprintf(buf, sizeof buf, "%s:%s", tag, keys[i]);
		TU_CHECK(sc_put(c, keys[i], buf, (size_t)len) == 0);
	}
	sc_close(c);
	snprintf(buf, sizeof buf, "%s.lock", path);
	unlink(buf);
	TU_CHECK(chmod(path, 0644) == 0);
}

static int blob_is(const sc_blob *b, const char *tag, const char *key)
{
	char buf[PATH_MAX + 64];
	int len = snprintf(buf, sizeof buf, "%s:%s", tag, key);
	return b->size == (size_t)len && memcmp(b->data, buf, (size_t)len) == 0;
}

/* What must not change: the bytes, size and mtime of a file. */
struct fileprint {
	struct stat st;
	XXH64_hash_t sum;
};

static struct fileprint fileprint(const char *path)
{
	struct fileprint f;
	size_t len;
	unsigned char *b = tu_read_file(path, &len);
	TU_CHECK(stat(path, &f.st) == 0);
	f.sum = XXH64(b, len, 0);
	free(b);
	return f;
}

static int same_file(const struct fileprint *a, const struct fileprint *b)
{
	return a->sum == b->sum && a->st.st_size == b->st.st_size &&
	       a->st.st_mtim.tv_sec == b->st.st_mtim.tv_sec &&
	       a->st.st_mtim.tv_nsec == b->st.st_mtim.tv_nsec && a->st.st_ino == b->st.st_ino;
}

/* ---- sc_foreach: who lists a key, from which layer ---- */

struct seen {
	const char *key;
	int count, layer;
	char base[PATH_MAX];
};

static int seen_cb(const sc_entry_info *e, void *arg)
{
	struct seen *s = arg;
	char full[2 * PATH_MAX];
	if (e->key_base)
		snprintf(full, sizeof full, "%.*s/%.*s", (int)e->key_base_len, e->key_base,
			 (int)e->key_len, e->key);
	else
		snprintf(full, sizeof full, "%.*s", (int)e->key_len, e->key);
	if (strcmp(full, s->key) == 0) {
		s->count++;
		s->layer = e->layer;
		snprintf(s->base, sizeof s->base, "%.*s", (int)e->key_base_len,
			 e->key_base ? e->key_base : "");
	}
	return 0;
}

static struct seen listed(sc_cache *c, const char *key)
{
	struct seen s = { key, 0, -1, "" };
	TU_CHECK(sc_foreach(c, seen_cb, &s) == 0);
	return s;
}

/* Wait (up to 4 s) for sc_get to answer @p want: lower shards are checked
 * for a replaced file once a second. */
static int get_until(sc_cache *c, const char *key, int want, sc_blob *b)
{
	int rc = 0;
	for (int i = 0; i < 40; i++) {
		if ((rc = sc_get(c, key, b)) == want)
			return rc;
		usleep(100000);
	}
	return rc;
}

/* ---- the tests ---- */

static const char *k1, *k2, *k3, *k4;

static void test_lower_hit_no_write(void)
{
	const char *top = tu_path("top.shard"), *low = tu_path("low.shard");
	const char *keys[] = { k1, k2, k3 };
	char real_low[PATH_MAX];
	sc_entry_info e;
	sc_stats st;
	sc_blob b;

	make_lower(low, keys, 3, "low");
	TU_CHECK(realpath(low, real_low) != NULL);
	sc_cache *c = open_ok(top, TAG, 0);
	TAP_EQ(sc_layer_count(c), 1, "an explicit path gets no configured lower shard");
	TAP_EQ(sc_add_lower(c, low, 0), 0, "sc_add_lower");
	TAP_EQ(sc_layer_count(c), 2, "two layers");
	TAP_EQ(sc_add_lower(c, low, 0), -EEXIST, "the same shard twice: -EEXIST");
	TAP_EQ(sc_add_lower(c, top, 0), -EEXIST, "the own shard as a lower one: -EEXIST");
	TAP_EQ(sc_add_lower(c, tu_path("nothing.shard"), SC_LOWER_KEEP), -ENOENT,
	       "a missing lower shard: -ENOENT, not added");
	TAP_EQ(sc_layer_count(c), 2, "still two layers");

	struct fileprint before = fileprint(top);
	TAP_EQ(sc_get(c, k1, &b), 0, "hit from the lower shard");
	tap_ok(blob_is(&b, "low", k1), "with the lower shard's bytes");
	tap_ok((uintptr_t)b.data % SC_BLOB_ALIGN == 0, "aligned, zero-copy from its mapping");
	TAP_EQ(sc_get(c, k1, &b), 0, "a second hit");
	TAP_EQ(sc_lookup(c, k1, &e), 0, "sc_lookup finds it");
	TAP_EQ(e.layer, 1, "in layer 1");
	tap_ok(e.layer_path && strcmp(e.layer_path, real_low) == 0, "whose path is the lower shard's");
	TAP_EQ(sc_get_stats(c, &st), 0, "stats");
	TAP_EQ(st.lower_hits, 2, "two hits from a lower shard counted");
	TAP_EQ(st.hits, 2, "two hits in all");
	TAP_EQ(st.lower_layers, 1, "one lower layer");
	struct fileprint after = fileprint(top);
	tap_ok(same_file(&before, &after), "the top shard's bytes, size and mtime did not change");
	sc_layer_info li;
	TAP_EQ(sc_get_layer_info(c, 1, &li), 0, "sc_get_layer_info(1)");
	TAP_EQ(li.status, 0, "the lower shard is in use");
	TAP_EQ(li.entries, 3, "with its 3 entries");
	TAP_EQ(li.relocatable, 0, "not relocatable");
	TAP_EQ(sc_get_layer_info(c, 2, &li), -EINVAL, "no layer 2");

	/* A put goes to the top; it shadows the lower entry. */
	TAP_EQ(sc_put(c, k1, "top:k1", 6), 0, "put of a key the lower shard holds");
	TAP_EQ(sc_get(c, k1, &b), 0, "hit");
	tap_ok(b.size == 6 && memcmp(b.data, "top:k1", 6) == 0, "the top's entry wins");
	TAP_EQ(sc_lookup(c, k1, &e), 0, "lookup");
	TAP_EQ(e.layer, 0, "from layer 0");
	struct seen s = listed(c, k1);
	TAP_EQ(s.count, 1, "sc_foreach lists a shadowed key once");
	TAP_EQ(s.layer, 0, "from the top");
	s = listed(c, k2);
	TAP_EQ(s.count, 1, "sc_foreach lists a lower key");
	TAP_EQ(s.layer, 1, "from layer 1");

	/* Whiteouts. */
	struct fileprint lbefore = fileprint(low);
	TAP_EQ(sc_remove(c, k2), 0, "remove of a lower entry succeeds");
	TAP_EQ(sc_get(c, k2, &b), SC_ENOTFOUND, "then it misses");
	TAP_EQ(sc_lookup(c, k2, &e), SC_ENOTFOUND, "sc_lookup does not find it");
	TAP_EQ(listed(c, k2).count, 0, "sc_foreach does not list it");
	TAP_EQ(sc_remove(c, k2), SC_ENOTFOUND, "a second remove: SC_ENOTFOUND");
	TAP_EQ(sc_remove(c, k1), 0, "remove of the top entry that shadows a lower one");
	TAP_EQ(sc_get(c, k1, &b), SC_ENOTFOUND, "the lower entry does not show through");
	TAP_EQ(listed(c, k1).count, 0, "nor in sc_foreach");
	after = fileprint(low);
	tap_ok(same_file(&lbefore, &after), "the lower shard was not written");
	TAP_EQ(sc_verify(c, NULL, NULL, NULL), 0, "sc_verify: a shard with whiteouts is sound");
	TAP_EQ(sc_compact(c), 0, "compaction");
	TAP_EQ(sc_get(c, k2, &b), SC_ENOTFOUND, "the whiteout survives a compaction");
	uint64_t n = 99;
	TAP_EQ(sc_evict_stale(c, &n), 0, "evict-stale");
	TAP_EQ(sc_get(c, k2, &b), SC_ENOTFOUND, "and an eviction of stale entries");
	TAP_EQ(sc_put(c, k2, "top:k2", 6), 0, "put of a whited-out key");
	TAP_EQ(sc_get(c, k2, &b), 0, "hits again");
	tap_ok(b.size == 6 && memcmp(b.data, "top:k2", 6) == 0, "with the new bytes");
	TAP_EQ(sc_remove(c, k2), 0, "remove it again");
	TAP_EQ(sc_get(c, k2, &b), SC_ENOTFOUND, "hidden again");
	/* A checked remove of the lower version the union shows. */
	TAP_EQ(sc_lookup(c, k3, &e), 0, "lookup of a lower entry");
	TAP_EQ(sc_remove_if(c, k3, e.shard_id, e.offset + 8), SC_ECHANGED,
	       "sc_remove_if of another version: SC_ECHANGED");
	TAP_EQ(sc_remove_if(c, k3, e.shard_id, e.offset), 0, "sc_remove_if of the lower version");
	TAP_EQ(sc_get(c, k3, &b), SC_ENOTFOUND, "hidden by a whiteout");
	TAP_EQ(sc_clear(c), 0, "clear the own shard");
	TAP_EQ(sc_get(c, k3, &b), 0, "its whiteouts go with it: the lower entry shows again");
	TAP_EQ(sc_get(c, k4, &b), SC_ENOTFOUND, "a key in no layer: SC_ENOTFOUND");
	sc_close(c);

	/* A tag-less handle (the CLI's) judges from the writer's view. */
	c = open_ok(top, NULL, SC_RDONLY);
	TAP_EQ(sc_add_lower(c, low, 0), 0, "a read-only, tag-less handle takes a lower shard");
	TAP_EQ(sc_get(c, k1, &b), 0, "and hits from it");
	TAP_EQ(sc_remove(c, k1), SC_EREADONLY, "a read-only handle writes no whiteout");
	sc_close(c);
}

/* A size limit evicts the oldest records of the own shard: whiteouts go
 * by age like entries, and no entry kept may turn into one. */
static void test_whiteout_eviction(void)
{
	const char *top = tu_path("top8.shard"), *low = tu_path("low8.shard");
	const char *keys[] = { k1, k2 };
	static unsigned char big[48 * 1024];
	char key[PATH_MAX];
	sc_blob b;
	int bad = 0, kept = 0, gap = 0, was_kept[40] = { 0 };

	make_lower(low, keys, 2, "low");
	sc_cache *c = open_ok(top, TAG, 0);
	TU_CHECK(sc_add_lower(c, low, 0) == 0);
	TAP_EQ(sc_remove(c, k1), 0, "a whiteout, the oldest record");
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "/evict/%02d", i);
		memset(big, i + 1, sizeof big);
		sc_put_opts o = { .no_source = 1 };
		TU_CHECK(sc_put_ex(c, key, big, sizeof big, &o) == 0);
		usleep(1000); /* distinct cached times: eviction is by age */
	}
	sc_set_max_size(c, 1 << 20);
	memset(big, 0x77, sizeof big);
	sc_put_opts o = { .no_source = 1 };
	TAP_EQ(sc_put_ex(c, "/evict/last", big, sizeof big, &o), 0, "a put past the size limit");
	for (int i = 0; i < 40; i++) {
		snprintf(key, sizeof key, "/evict/%02d", i);
		int rc = sc_get(c, key, &b);
		if (rc == 0) {
			kept++;
			was_kept[i] = 1;
			if (b.size != sizeof big || ((const unsigned char *)b.data)[0] != i + 1)
				bad++;
		}
	}
	TAP_EQ(sc_get(c, "/evict/last", &b), 0, "the newest entry is kept");
	tap_ok(kept > 0 && kept < 40, "the eviction kept the newest (%d of 40)", kept);
	TAP_EQ(bad, 0, "every kept entry has its bytes");
	for (int i = 1; i < 40; i++)
		gap += was_kept[i - 1] && !was_kept[i];
	TAP_EQ(gap, 0, "the kept entries are the newest ones, none missing among them");
	int rc = sc_get(c, k1, &b);
	tap_ok(rc == SC_ENOTFOUND || (rc == 0 && blob_is(&b, "low", k1)),
	       "the whited-out key is hidden, or (whiteout evicted) the lower entry shows (%s)",
	       sc_strerror(rc));
	TAP_EQ(sc_get(c, k2, &b), 0, "the lower entry not whited out still shows");
	TAP_EQ(sc_verify(c, NULL, NULL, NULL), 0, "the evicted shard is sound");
	sc_close(c);
}

/* Lookups in other threads while lower shards are added: layers are
 * published atomically and never move (run under ASan/TSan to mean much). */
struct reader {
	sc_cache *c;
	_Atomic int *stop;
	_Atomic int hits;
	int errors;
};

static void *reader_main(void *arg)
{
	struct reader *r = arg;
	sc_blob b;

	while (!atomic_load(r->stop)) {
		int rc = sc_get(r->c, k3, &b);
		if (rc == 0)
			r->hits++;
		else if (rc != SC_ENOTFOUND)
			r->errors++;
		struct seen s = { k3, 0, -1, "" };
		if (sc_foreach(r->c, seen_cb, &s) != 0 || s.count > 1)
			r->errors++;
	}
	return NULL;
}

static void test_add_while_reading(void)
{
	const char *top = tu_path("top9.shard");
	const char *keys[] = { k3 };
	char path[PATH_MAX];
	_Atomic int stop = 0;
	struct reader r[3];
	pthread_t t[3];

	for (int i = 0; i < 8; i++) {
		snprintf(path, sizeof path, "%s", tu_path("many%d.shard", i));
		make_lower(path, keys, 1, "many");
	}
	sc_cache *c = open_ok(top, TAG, 0);
	for (int i = 0; i < 3; i++) {
		r[i] = (struct reader){ c, &stop, 0, 0 };
		TU_CHECK(pthread_create(&t[i], NULL, reader_main, &r[i]) == 0);
	}
	int added = 0;
	for (int i = 0; i < 8; i++) {
		usleep(2000);
		added += sc_add_lower(c, tu_path("many%d.shard", i), 0) == 0;
	}
	/* Until every thread has hit (a loaded machine may not have run
	 * them at all yet), at most 20 s. */
	for (int ms = 0; ms < 20000; ms += 5) {
		int all = 1;
		for (int i = 0; i < 3; i++)
			all &= atomic_load(&r[i].hits) > 0;
		if (all)
			break;
		usleep(5000);
	}
	atomic_store(&stop, 1);
	int hits = 0, errors = 0;
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		hits += r[i].hits;
		errors += r[i].errors;
	}
	TAP_EQ(added, 8, "eight lower shards added while three threads look up and list");
	TAP_EQ(errors, 0, "no lookup or listing failed, no key listed twice");
	tap_ok(hits >= 3, "every thread hit once a lower shard was there (%d hits)", hits);
	TAP_EQ(sc_layer_count(c), 9, "nine layers");
	sc_close(c);
}

static void test_replaced_underneath(void)
{
	const char *top = tu_path("top2.shard"), *low = tu_path("low2.shard");
	const char *next = tu_path("low2.next.shard");
	const char *keys1[] = { k1 }, *keys2[] = { k1, k4 };
	sc_blob b;

	make_lower(low, keys1, 1, "old");
	sc_cache *c = open_ok(top, TAG, 0);
	TAP_EQ(sc_add_lower(c, low, 0), 0, "lower shard");
	TAP_EQ(sc_get(c, k1, &b), 0, "hit from the old lower shard");
	tap_ok(blob_is(&b, "old", k1), "old bytes");
	const void *old_ptr = b.data;
	TAP_EQ(sc_get(c, k4, &b), SC_ENOTFOUND, "k4 not there yet");

	/* A package upgrade: a new file renamed over the path. */
	make_lower(next, keys2, 2, "new");
	TU_CHECK(rename(next, low) == 0);
	TAP_EQ(get_until(c, k4, 0, &b), 0, "the replaced lower shard is picked up");
	TAP_EQ(sc_get(c, k1, &b), 0, "hit");
	tap_ok(blob_is(&b, "new", k1), "with the new file's bytes");
	tap_ok(memcmp(old_ptr, "old:", 4) == 0, "the old pointer still reads the old bytes");

	/* Replaced by garbage: a miss, never a crash, and verify says why. */
	unsigned char junk[8192];
	for (size_t i = 0; i < sizeof junk; i++)
		junk[i] = (unsigned char)(i * 131 + 7);
	tu_write_file(next, junk, sizeof junk);
	TU_CHECK(chmod(next, 0644) == 0);
	TU_CHECK(rename(next, low) == 0);
	int rc = get_until(c, k4, SC_ENOTFOUND, &b);
	TAP_EQ(rc, SC_ENOTFOUND, "lower shard replaced by garbage: a miss");
	TAP_EQ(sc_put(c, k4, "top:k4", 6), 0, "puts still work");
	TAP_EQ(sc_get(c, k4, &b), 0, "and hit from the top");
	TAP_EQ(sc_verify(c, NULL, NULL, NULL), SC_ECORRUPT, "sc_verify reports the broken lower shard");
	sc_close(c);
}

struct problems {
	int n;
	char first[512];
	int lower_named;
};

static void problem_cb(void *arg, uint64_t off, const char *what)
{
	struct problems *p = arg;
	(void)off;
	if (p->n++ == 0)
		snprintf(p->first, sizeof p->first, "%s", what);
	if (strstr(what, "lower shard 1 ("))
		p->lower_named++;
}

static void test_refused(void)
{
	const char *top = tu_path("top3.shard"), *low = tu_path("low3.shard");
	const char *keys[] = { k1 };
	struct problems p;
	sc_layer_info li;
	sc_blob b;

	make_lower(low, keys, 1, "low");
	sc_cache *c = open_ok(top, TAG, 0);
	TU_CHECK(chmod(low, 0646) == 0);
	TAP_EQ(sc_add_lower(c, low, 0), SC_EINSECURE, "a lower shard writable by others: SC_EINSECURE");
	TU_CHECK(chmod(low, 0664) == 0);
	TAP_EQ(sc_add_lower(c, low, 0), SC_EINSECURE, "writable by its group: SC_EINSECURE");
	TAP_EQ(sc_layer_count(c), 1, "neither added");
	TU_CHECK(chmod(low, 0644) == 0);
	TU_CHECK(chown(low, 12345, 12345) == 0);
	TAP_EQ(sc_add_lower(c, low, 0), SC_EINSECURE, "owned by another user: SC_EINSECURE");
	TU_CHECK(chown(low, 0, 0) == 0);
	TU_CHECK(chmod(low, 0666) == 0);
	TAP_EQ(sc_add_lower(c, low, SC_LOWER_KEEP), SC_EINSECURE, "SC_LOWER_KEEP: still SC_EINSECURE");
	TAP_EQ(sc_layer_count(c), 2, "but kept in the stack");
	TAP_EQ(sc_get(c, k1, &b), SC_ENOTFOUND, "a refused lower shard is a miss");
	TAP_EQ(sc_get_layer_info(c, 1, &li), 0, "sc_get_layer_info");
	TAP_EQ(li.status, SC_EINSECURE, "says it is refused");
	memset(&p, 0, sizeof p);
	TAP_EQ(sc_verify(c, problem_cb, &p, NULL), SC_ECORRUPT, "sc_verify fails");
	tap_ok(p.lower_named == 1 && strstr(p.first, "not used") &&
	       strstr(p.first, sc_strerror(SC_EINSECURE)), "saying which lower shard and why");
	tap_diag("verify: %s", p.first);
	TU_CHECK(chmod(low, 0644) == 0);
	TAP_EQ(get_until(c, k1, 0, &b), 0, "once fixed, it is used (retried)");
	/* Made writable by others while in use: refused from the next check. */
	TU_CHECK(chmod(low, 0646) == 0);
	TAP_EQ(get_until(c, k1, SC_ENOTFOUND, &b), SC_ENOTFOUND,
	       "made writable by others while in use: refused");
	TU_CHECK(chmod(low, 0644) == 0);
	TAP_EQ(get_until(c, k1, 0, &b), 0, "and used again once fixed");
	sc_close(c);
}

/* Find @p needle in the file and change one byte of it in place. */
static int flip_in_file(const char *path, const char *needle)
{
	size_t len, nl = strlen(needle);
	unsigned char *b = tu_read_file(path, &len);
	for (size_t i = 0; i + nl <= len; i++) {
		if (memcmp(b + i, needle, nl) == 0) {
			b[i + nl - 1] ^= 0x20;
			int fd = open(path, O_WRONLY | O_CLOEXEC);
			TU_CHECK(fd >= 0);
			TU_CHECK(pwrite(fd, b + i + nl - 1, 1, (off_t)(i + nl - 1)) == 1);
			close(fd);
			free(b);
			return 1;
		}
	}
	free(b);
	return 0;
}

static void test_corrupt(void)
{
	const char *top = tu_path("top4.shard"), *low = tu_path("low4.shard");
	const char *trunc = tu_path("trunc.shard"), *junk = tu_path("junk.shard");
	const char *keys[] = { k1, k2 };
	struct problems p;
	sc_blob b;
	int rc;

	make_lower(low, keys, 2, "low");
	tu_copy_file(low, trunc, 0644);
	TU_CHECK(truncate(trunc, 100) == 0);
	unsigned char bytes[16384];
	for (size_t i = 0; i < sizeof bytes; i++)
		bytes[i] = (unsigned char)((i * 2654435761u) >> 13);
	tu_write_file(junk, bytes, sizeof bytes);
	TU_CHECK(chmod(junk, 0644) == 0);

	sc_cache *c = open_ok(top, TAG, 0);
	rc = sc_add_lower(c, trunc, SC_LOWER_KEEP);
	tap_ok(rc == SC_ETRUNCATED || rc == SC_ECORRUPT, "a truncated lower shard is refused (%s)",
	       sc_strerror(rc));
	TAP_EQ(sc_add_lower(c, junk, SC_LOWER_KEEP), SC_EMAGIC, "garbage: SC_EMAGIC");
	TU_CHECK(mkfifo(tu_path("fifo.shard"), 0644) == 0);
	TAP_EQ(sc_add_lower(c, tu_path("fifo.shard"), 0), -EINVAL, "a FIFO: -EINVAL, without blocking");
	TU_CHECK(mkdir(tu_path("adir.shard"), 0755) == 0);
	TAP_EQ(sc_add_lower(c, tu_path("adir.shard"), 0), -EINVAL, "a directory: -EINVAL");
	TAP_EQ(sc_add_lower(c, low, 0), 0, "a sound one after them");
	TAP_EQ(sc_layer_count(c), 4, "all three stacked");
	sc_stats st;
	TAP_EQ(sc_get_stats(c, &st), 0, "stats");
	TAP_EQ(st.lower_layers, 3, "three lower layers");
	TAP_EQ(st.lower_unusable, 2, "two of them unusable");
	TAP_EQ(sc_get(c, k1, &b), 0, "the sound one still serves");
	/* Damage one blob of the sound shard in place. */
	char needle[PATH_MAX + 8];
	snprintf(needle, sizeof needle, "low:%s", k2);
	tap_ok(flip_in_file(low, needle), "damaged k2's blob in the lower shard");
	TAP_EQ(sc_get(c, k2, &b), SC_ENOTFOUND, "a damaged lower entry is a miss");
	TAP_EQ(sc_get(c, k1, &b), 0, "its neighbour still hits");
	memset(&p, 0, sizeof p);
	TAP_EQ(sc_verify(c, problem_cb, &p, NULL), SC_ECORRUPT, "sc_verify fails");
	TAP_EQ(p.n, 3, "with three problems: two unusable shards, one blob");
	tap_ok(p.lower_named == 1 && strstr(p.first, "not used"), "the first: lower shard 1 not used");
	tap_diag("verify: %s", p.first);
	sc_close(c);
}

static void test_env(void)
{
	const char *d = tu_path("sys"), *a = tu_path("sys/a.shard"), *bb = tu_path("sys/b.shard");
	const char *l5 = tu_path("low5.shard");
	const char *keys[] = { k1 };
	const char *keys2[] = { k2 };
	char val[8 * PATH_MAX];
	sc_layer_info li;
	sc_blob b;
	sc_cache *c;

	TU_CHECK(mkdir(d, 0755) == 0);
	make_lower(bb, keys, 1, "b");
	make_lower(a, keys, 1, "a");
	make_lower(l5, keys2, 1, "l5");
	tu_write_str(tu_path("sys/notes.txt"), "not a shard\n");
	setenv("SCRIPTCACHE_PATH", tu_path("envtop.shard"), 1);

	snprintf(val, sizeof val, "::%s::%s:relative.shard:%s:%s:", l5, tu_path("missing.shard"), d,
		 l5);
	setenv("SCRIPTCACHE_LOWER", val, 1);
	c = open_ok(NULL, TAG, 0);
	TAP_EQ(sc_layer_count(c), 4, "SCRIPTCACHE_LOWER: empty, missing, relative and repeated items skipped");
	const char *want[] = { NULL, l5, a, bb };
	for (int i = 1; i < 4; i++) {
		char real[PATH_MAX];
		TU_CHECK(realpath(want[i], real) != NULL);
		TAP_EQ(sc_get_layer_info(c, i, &li), 0, "layer %d", i);
		tap_ok(li.path && strcmp(li.path, real) == 0, "layer %d is %s", i, want[i]);
	}
	TAP_EQ(sc_get(c, k1, &b), 0, "k1 from the directory's first shard");
	tap_ok(blob_is(&b, "a", k1), "a.shard before b.shard (sorted)");
	TAP_EQ(sc_get(c, k2, &b), 0, "k2 from the first listed shard");
	sc_close(c);

	c = open_ok(NULL, TAG, SC_NO_LOWERS);
	TAP_EQ(sc_layer_count(c), 1, "SC_NO_LOWERS: no lower shard");
	sc_close(c);

	setenv("SCRIPTCACHE_LOWER", "", 1);
	setenv("SCRIPTCACHE_LOWER_DIR", d, 1);
	c = open_ok(NULL, TAG, 0);
	TAP_EQ(sc_layer_count(c), 1, "SCRIPTCACHE_LOWER empty: none, not even the directory");
	sc_close(c);

	unsetenv("SCRIPTCACHE_LOWER");
	c = open_ok(NULL, TAG, 0);
	TAP_EQ(sc_layer_count(c), 3, "SCRIPTCACHE_LOWER unset: SCRIPTCACHE_LOWER_DIR's *.shard");
	sc_stats st;
	TAP_EQ(sc_get_stats(c, &st), 0, "stats");
	TAP_EQ(st.lower_layers, 2, "two lower layers in the stats");
	sc_close(c);

	setenv("SCRIPTCACHE_LOWER_DIR", "", 1);
	c = open_ok(NULL, TAG, 0);
	TAP_EQ(sc_layer_count(c), 1, "SCRIPTCACHE_LOWER_DIR empty: none");
	sc_close(c);
	setenv("SCRIPTCACHE_LOWER_DIR", tu_path("no-such-dir"), 1);
	c = open_ok(NULL, TAG, 0);
	TAP_EQ(sc_layer_count(c), 1, "a missing directory: none");
	sc_close(c);

	/* A refused configured shard does not fail the open. */
	TU_CHECK(chmod(a, 0666) == 0);
	setenv("SCRIPTCACHE_LOWER_DIR", d, 1);
	c = open_ok(NULL, TAG, 0);
	TAP_EQ(sc_layer_count(c), 3, "a refused configured shard is kept, unused");
	TAP_EQ(sc_get_layer_info(c, 1, &li), 0, "layer 1");
	TAP_EQ(li.status, SC_EINSECURE, "refused");
	TAP_EQ(sc_get(c, k1, &b), 0, "k1 from the next one");
	tap_ok(blob_is(&b, "b", k1), "b.shard");
	sc_close(c);
	TU_CHECK(chmod(a, 0644) == 0);

	setenv("SCRIPTCACHE", "0", 1);
	c = open_ok(NULL, TAG, 0);
	TAP_EQ(sc_get(c, k1, &b), SC_EDISABLED, "SCRIPTCACHE=0: lower shards off too");
	TAP_EQ(sc_add_lower(c, bb, 0), SC_EDISABLED, "sc_add_lower: SC_EDISABLED");
	sc_close(c);
	unsetenv("SCRIPTCACHE");
	setenv("SCRIPTCACHE_LOWER", "", 1);
	unsetenv("SCRIPTCACHE_LOWER_DIR");
}

/* Copy the regular files of @p from into @p to (one level of
 * subdirectories), with new mtimes as a plain cp gives them. */
static void copy_tree(const char *from, const char *to)
{
	char cmd[4 * PATH_MAX];
	snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", from, to);
	TU_CHECK(system(cmd) == 0);
}

static void set_mtime(const char *path, time_t sec)
{
	struct timespec ts[2] = { { sec, 0 }, { sec, 0 } };
	TU_CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0);
}

static void test_relocation(void)
{
	char src[PATH_MAX], a_main[PATH_MAX], a_util[PATH_MAX], b_app[PATH_MAX];
	char b_main[PATH_MAX], b_util[PATH_MAX], shipped[PATH_MAX], b_shipped[PATH_MAX];
	const char *outside = tu_path("outside.shard");
	uint64_t written = 0, skipped = 0;
	sc_build_opts o;
	sc_entry_info e;
	sc_layer_info li;
	sc_blob b;
	sc_stats st;

	snprintf(src, sizeof src, "%s", tu_path("a/app"));
	TU_CHECK(mkdir(tu_path("a"), 0755) == 0 && mkdir(src, 0755) == 0);
	TU_CHECK(mkdir(tu_path("a/app/lib"), 0755) == 0 && mkdir(tu_path("a/app/.cache"), 0755) == 0);
	snprintf(a_main, sizeof a_main, "%s", tu_path("a/app/main.lua"));
	snprintf(a_util, sizeof a_util, "%s", tu_path("a/app/lib/util.lua"));
	tu_write_str(a_main, "print('main')\n");
	tu_write_str(a_util, "return {}\n");
	set_mtime(a_main, 1600000000);
	set_mtime(a_util, 1600000000);
	const char *elsewhere = tu_path("elsewhere.lua");
	tu_write_str(elsewhere, "-- elsewhere\n");

	/* The developer's shard, then the one to ship, inside the tree. */
	sc_cache *dev = open_ok(tu_path("dev.shard"), TAG, 0);
	TU_CHECK(sc_put(dev, a_main, "bc:main", 7) == 0);
	TU_CHECK(sc_put(dev, a_util, "bc:util", 7) == 0);
	TU_CHECK(sc_put(dev, elsewhere, "bc:else", 7) == 0);
	sc_put_opts po = { .tag = "another vm" };
	tu_write_str(tu_path("other-vm.lua"), "-- another vm's\n");
	TU_CHECK(sc_put_ex(dev, tu_path("other-vm.lua"), "bc:other", 8, &po) == 0);
	snprintf(shipped, sizeof shipped, "%s", tu_path("a/app/.cache/app.shard"));
	memset(&o, 0, sizeof o);
	o.tag = TAG;
	o.base_dir = src;
	TAP_EQ(sc_build(dev, shipped, &o, &written, &skipped), 0, "sc_build with a base directory");
	TAP_EQ(written, 3, "three entries of the tag written");
	TAP_EQ(skipped, 1, "the other tag's entry left out");
	TAP_EQ(sc_build(dev, tu_path("dev.shard"), &o, NULL, NULL), -EINVAL,
	       "building over the shard read: -EINVAL");
	struct stat sst;
	TU_CHECK(stat(shipped, &sst) == 0);
	TAP_EQ(sst.st_mode & 07777, 0644, "the shipped shard is 0644");
	sc_close(dev);

	sc_cache *sh = open_ok(shipped, NULL, SC_RDONLY);
	TAP_EQ(sc_verify(sh, NULL, NULL, NULL), 0, "the built shard passes sc_verify");
	TAP_EQ(sc_get_stats(sh, &st), 0, "stats of the built shard");
	TAP_EQ(st.dead_bytes, 0, "no dead space");
	TAP_EQ(st.entries, 3, "three entries");
	TAP_EQ(sc_get_layer_info(sh, 0, &li), 0, "layer info of the built shard");
	TAP_EQ(li.relocatable, 1, "relocatable");
	char real_src[PATH_MAX];
	TU_CHECK(realpath(src, real_src) != NULL);
	tap_ok(li.base && strcmp(li.base, real_src) == 0, "its base resolves to the tree (%s)",
	       li.base ? li.base : "NULL");
	sc_close(sh);

	/* The whole tree copied elsewhere, with new mtimes. */
	TU_CHECK(mkdir(tu_path("b"), 0755) == 0);
	snprintf(b_app, sizeof b_app, "%s", tu_path("b/app"));
	copy_tree(src, b_app);
	snprintf(b_main, sizeof b_main, "%s", tu_path("b/app/main.lua"));
	snprintf(b_util, sizeof b_util, "%s", tu_path("b/app/lib/util.lua"));
	snprintf(b_shipped, sizeof b_shipped, "%s", tu_path("b/app/.cache/app.shard"));
	TU_CHECK(chmod(b_shipped, 0644) == 0);
	sc_cache *c = open_ok(tu_path("top6.shard"), TAG, 0);
	TAP_EQ(sc_add_lower(c, b_shipped, 0), 0, "the copied shard as a lower one");
	TAP_EQ(sc_get(c, b_main, &b), 0, "hit for the copy's main.lua");
	tap_ok(b.size == 7 && memcmp(b.data, "bc:main", 7) == 0, "its bytes");
	TAP_EQ(sc_get(c, b_util, &b), 0, "hit for the copy's lib/util.lua");
	TAP_EQ(sc_get(c, a_main, &b), SC_ENOTFOUND, "the original tree's key is not the copy's");
	TAP_EQ(sc_get(c, elsewhere, &b), 0, "a key outside the base is kept absolute");
	TAP_EQ(sc_get_stats(c, &st), 0, "stats");
	tap_ok(st.fresh_by_content >= 2, "fresh by content (new mtimes)");
	TAP_EQ(sc_lookup(c, b_main, &e), 0, "lookup");
	TAP_EQ(e.layer, 1, "layer 1");
	tap_ok(e.key_base && e.key_len == 8 && memcmp(e.key, "main.lua", 8) == 0,
	       "its key is relative: %.*s", (int)e.key_len, e.key);
	struct seen s = listed(c, b_main);
	TAP_EQ(s.count, 1, "sc_foreach lists it under the copy's base");
	sc_close(c);

	/* A tag-less handle judges it too (the CLI's ls). */
	c = open_ok(tu_path("top6.shard"), NULL, SC_RDONLY);
	TU_CHECK(sc_add_lower(c, b_shipped, 0) == 0);
	TAP_EQ(sc_get(c, b_main, &b), 0, "a tag-less handle hits the relocated entry");
	sc_close(c);

	/* An edit in the copy: a miss, then a put lands in the top. */
	struct fileprint lbefore = fileprint(b_shipped);
	tu_write_str(b_main, "print('MAIN')\n");
	c = open_ok(tu_path("top6.shard"), TAG, 0);
	TU_CHECK(sc_add_lower(c, b_shipped, 0) == 0);
	TAP_EQ(sc_get(c, b_main, &b), SC_ESTALE, "edited source: SC_ESTALE");
	TAP_EQ(sc_put(c, b_main, "bc:MAIN", 7), 0, "put");
	TAP_EQ(sc_get(c, b_main, &b), 0, "hit");
	tap_ok(b.size == 7 && memcmp(b.data, "bc:MAIN", 7) == 0, "the new bytes");
	TAP_EQ(sc_lookup(c, b_main, &e), 0, "lookup");
	TAP_EQ(e.layer, 0, "from the top");
	struct fileprint lafter = fileprint(b_shipped);
	tap_ok(same_file(&lbefore, &lafter), "the shipped shard was not written");
	sc_close(c);

	/* Installed outside its tree: SCRIPTCACHE_BASEDIRS says where. */
	dev = open_ok(tu_path("dev.shard"), TAG, 0);
	TAP_EQ(sc_build(dev, outside, &o, &written, NULL), 0, "sc_build to a shard outside the base");
	sc_close(dev);
	c = open_ok(tu_path("top7.shard"), TAG, 0);
	TAP_EQ(sc_add_lower(c, outside, 0), 0, "as a lower shard");
	TAP_EQ(sc_get_layer_info(c, 1, &li), 0, "layer info");
	tap_ok(li.relocatable && li.base == NULL, "relocatable, no base known");
	TAP_EQ(sc_get(c, b_util, &b), SC_ENOTFOUND, "without SCRIPTCACHE_BASEDIRS: a miss");
	sc_close(c);
	char dirs[3 * PATH_MAX];
	snprintf(dirs, sizeof dirs, ":relative:%s:%s", tu_path("no-such"), b_app);
	setenv("SCRIPTCACHE_BASEDIRS", dirs, 1);
	c = open_ok(tu_path("top7.shard"), TAG, 0);
	TAP_EQ(sc_add_lower(c, outside, 0), 0, "again, with SCRIPTCACHE_BASEDIRS");
	TAP_EQ(sc_get(c, b_util, &b), 0, "hit through SCRIPTCACHE_BASEDIRS");
	TAP_EQ(sc_get_layer_info(c, 1, &li), 0, "layer info");
	tap_ok(li.base && strstr(li.base, "/b/app"), "base from SCRIPTCACHE_BASEDIRS");
	sc_close(c);
	unsetenv("SCRIPTCACHE_BASEDIRS");

	/* A key too long for a plain entry name: sc_lookup_name() finds the
	 * relocated entry by the hashed name of its whole key (base and all),
	 * as the mount names it. */
	char longsrc[PATH_MAX], longcopy[PATH_MAX], name[SC_NAME_MAX + 1], longname[256];
	memset(longname, 'm', 240);
	memcpy(longname + 240, ".lua", 5);
	TU_CHECK(mkdir(tu_path("c"), 0755) == 0 && mkdir(tu_path("c/app"), 0755) == 0);
	snprintf(longsrc, sizeof longsrc, "%s/%s", tu_path("c/app"), longname);
	tu_write_str(longsrc, "-- long\n");
	dev = open_ok(tu_path("dev8.shard"), TAG, 0);
	TU_CHECK(sc_put(dev, longsrc, "bc:long", 7) == 0);
	o.base_dir = tu_path("c/app");
	TU_CHECK(sc_build(dev, tu_path("c/app/long.shard"), &o, NULL, NULL) == 0);
	sc_close(dev);
	TU_CHECK(mkdir(tu_path("d"), 0755) == 0);
	copy_tree(tu_path("c/app"), tu_path("d/app"));
	TU_CHECK(chmod(tu_path("d/app/long.shard"), 0644) == 0);
	snprintf(longcopy, sizeof longcopy, "%s/%s", tu_path("d/app"), longname);
	c = open_ok(tu_path("top8.shard"), TAG, 0);
	TU_CHECK(sc_add_lower(c, tu_path("d/app/long.shard"), 0) == 0);
	tap_ok(sc_name_encode(longcopy, strlen(longcopy), name) > 0 && name[0] == '#',
	       "the copy's long key has a hashed name (%s)", name);
	memset(&e, 0, sizeof e);
	TAP_EQ(sc_lookup_name(c, name, &e), 0, "sc_lookup_name finds the relocated entry by it");
	tap_ok(e.layer == 1 && e.blob_size == 7 && memcmp(e.blob, "bc:long", 7) == 0,
	       "from the lower shard, its bytes");
	sc_close(c);
}

/* The own shard cannot be made (its directory would be under a regular
 * file: ENOTDIR, as EROFS on a read-only root): the configured lower
 * shards are served alone, read-only, and nothing is written. */
static void test_no_own_shard(void)
{
	const char *l1 = tu_path("nown1.shard"), *l2 = tu_path("nown2.shard");
	const char *keys1[] = { k1 }, *keys2[] = { k2 };
	char val[2 * PATH_MAX + 2], own[PATH_MAX];
	struct fileprint f1, f2;
	sc_blob b;
	sc_cache *c = NULL;
	int rc;

	make_lower(l1, keys1, 1, "n1");
	make_lower(l2, keys2, 1, "n2");
	tu_write_str(tu_path("plainfile"), "x\n");
	snprintf(own, sizeof own, "%s/cache/scripts.shard", tu_path("plainfile"));
	setenv("SCRIPTCACHE_PATH", own, 1);
	setenv("SCRIPTCACHE_LOWER", "", 1);
	rc = sc_open(&c, NULL, TAG, 0);
	tap_ok(rc == -ENOTDIR && c == NULL, "no own shard, no lower shard: the open fails (%s)", sc_strerror(rc));
	sc_close(c);

	snprintf(val, sizeof val, "%s:%s", l1, l2);
	setenv("SCRIPTCACHE_LOWER", val, 1);
	f1 = fileprint(l1);
	f2 = fileprint(l2);
	c = NULL;
	rc = sc_open(&c, NULL, TAG, 0);
	TAP_EQ(rc, 0, "no own shard: the lower shards are served alone");
	if (rc == 0) {
		TAP_EQ(sc_layer_count(c), 2, "the first lower shard is layer 0, the second layer 1");
		TAP_EQ(sc_get(c, k1, &b), 0, "k1 hits from the first lower shard");
		tap_ok(rc == 0 && blob_is(&b, "n1", k1), "with its bytes");
		TAP_EQ(sc_get(c, k2, &b), 0, "k2 hits from the second");
		TAP_EQ(sc_put(c, k3, "x", 1), SC_EREADONLY, "a put fails: nothing is writable");
		TAP_EQ(sc_remove(c, k1), SC_EREADONLY, "so does a remove");
		TAP_EQ(sc_add_lower(c, l2, 0), -EINVAL, "no lower shard goes under a lower shard");
		sc_close(c);
	}
	{
		struct fileprint g1 = fileprint(l1), g2 = fileprint(l2);
		tap_ok(same_file(&f1, &g1) && same_file(&f2, &g2), "the lower shards are unchanged");
	}
	c = NULL;
	rc = sc_open(&c, NULL, TAG, SC_NO_LOWERS);
	tap_ok(rc == -ENOTDIR && c == NULL, "SC_NO_LOWERS: the open fails as before");
	sc_close(c);
	setenv("SCRIPTCACHE_LOWER", "", 1);
	unsetenv("SCRIPTCACHE_PATH");
}

/* Over lower shards the own shard is made at the first put, not at the
 * open: a run the shipped shards serve writes nothing at all. */
static void test_lazy_own_shard(void)
{
	const char *low = tu_path("lazy-low.shard"), *own = tu_path("lazy/own.shard");
	const char *lock = tu_path("lazy/own.shard.lock");
	const char *keys[] = { k1 };
	struct stat st;
	sc_stats stats;
	sc_blob b;
	sc_cache *c, *d, *e;

	make_lower(low, keys, 1, "lz");
	TU_CHECK(mkdir(tu_path("lazy"), 0700) == 0);
	setenv("SCRIPTCACHE_PATH", own, 1);
	setenv("SCRIPTCACHE_LOWER", low, 1);
	c = open_ok(NULL, TAG, 0);
	d = open_ok(NULL, TAG, 0);
	TAP_EQ(sc_get(c, k1, &b), 0, "a hit from the lower shard");
	tap_ok(blob_is(&b, "lz", k1), "with its bytes");
	TAP_EQ(sc_get(c, k2, &b), SC_ENOTFOUND, "a miss");
	TAP_EQ(sc_get_stats(c, &stats), 0, "stats of a handle with no file yet");
	tap_ok(stats.entries == 0 && stats.file_size == 0, "no entries, file size 0 (%llu)",
	       (unsigned long long)stats.file_size);
	TAP_EQ(sc_layer_count(c), 2, "the own shard is layer 0 all the same");
	TAP_EQ(sc_remove(c, k4), SC_ENOTFOUND, "removing a key no layer has: SC_ENOTFOUND");
	TAP_EQ(sc_compact(c), 0, "compacting: nothing to do");
	TAP_EQ(sc_clear(c), 0, "clearing: nothing to do");
	uint64_t nev = 9;
	TAP_EQ(sc_evict_stale(c, &nev), 0, "evicting: nothing to do");
	TAP_EQ(nev, 0, "nothing evicted");
	TAP_EQ(sc_verify(c, NULL, NULL, NULL), 0, "verify of the empty image and the lower shard");
	tap_ok(stat(own, &st) != 0 && errno == ENOENT,
	       "open, hit, miss, stats, remove, compact, clear, evict, verify made no shard file");
	tap_ok(stat(lock, &st) != 0 && errno == ENOENT, "nor a lock file");

	TAP_EQ(sc_put(c, k2, "two", 3), 0, "the first put makes the shard");
	tap_ok(stat(own, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0777) == 0600,
	       "the own shard exists now, mode 0600");
	TAP_EQ(sc_get(c, k2, &b), 0, "and serves the put");
	TAP_EQ(sc_get(c, k1, &b), 0, "the lower shard still serves k1");
	TAP_EQ(sc_put(d, k3, "three", 5), 0,
	       "a second handle opened before the file existed puts into the same file");
	e = open_ok(NULL, TAG, 0);
	TAP_EQ(sc_get(e, k2, &b), 0, "a new handle sees the first handle's put");
	TAP_EQ(sc_get(e, k3, &b), 0, "and the second's: one file, not two");
	TAP_EQ(sc_get(d, k2, &b), 0, "the second handle sees the first's put");
	TAP_EQ(sc_remove(e, k1), 0, "removing a lower entry writes a whiteout in the top");
	TAP_EQ(get_until(c, k1, SC_ENOTFOUND, &b), SC_ENOTFOUND, "which the first handle follows");
	sc_close(e);
	sc_close(d);
	sc_close(c);

	/* An unborn handle follows a file another process made (its path
	 * is checked once a second, as for a replaced shard). */
	TU_CHECK(unlink(own) == 0);
	c = open_ok(NULL, TAG, 0);
	tap_ok(stat(own, &st) != 0, "again no file after the open");
	d = open_ok(own, TAG, SC_NO_LOWERS);
	TAP_EQ(sc_put(d, k4, "four", 4), 0, "someone else makes the file with a put");
	sc_close(d);
	TAP_EQ(get_until(c, k4, 0, &b), 0, "the handle with no file finds the put within a second");

	/* A dangling symbolic link at the path is no place to create the
	 * shard (link() cannot replace it): never an unborn handle that
	 * writes through nothing. */
	sc_close(c);
	TU_CHECK(unlink(own) == 0);
	TU_CHECK(symlink(tu_path("lazy/nowhere/x.shard"), own) == 0);
	c = NULL;
	int rc = sc_open(&c, NULL, TAG, 0);
	TAP_EQ(rc, 0, "a dangling symlink at the path: the lower shards are served");
	if (rc == 0) {
		TAP_EQ(sc_get(c, k1, &b), 0, "k1 hits from the lower shard");
		rc = sc_put(c, k2, "two", 3);
		tap_ok(rc == SC_EREADONLY || rc == -ENOENT, "a put fails cleanly (%s)", sc_strerror(rc));
		rc = sc_put(c, k2, "two", 3);
		tap_ok(rc == SC_EREADONLY || rc == -ENOENT, "again (%s)", sc_strerror(rc));
	}
	tap_ok(lstat(own, &st) == 0 && S_ISLNK(st.st_mode), "the symlink is left as it was");
	TU_CHECK(unlink(own) == 0);

	/* Without lower shards the open makes the file, as before. */
	setenv("SCRIPTCACHE_LOWER", "", 1);
	sc_close(c);
	c = open_ok(NULL, TAG, 0);
	tap_ok(stat(own, &st) == 0, "no lower shards: the open makes the shard");
	sc_close(c);
	/* Nor with a path given. */
	TU_CHECK(unlink(own) == 0);
	setenv("SCRIPTCACHE_LOWER", low, 1);
	c = open_ok(own, TAG, 0);
	tap_ok(stat(own, &st) == 0, "an explicit path: the open makes the shard");
	sc_close(c);
	setenv("SCRIPTCACHE_LOWER", "", 1);
	unsetenv("SCRIPTCACHE_PATH");
}

int main(void)
{
	static char b1[PATH_MAX], b2[PATH_MAX], b3[PATH_MAX], b4[PATH_MAX];

	tu_setup("layers");
	setenv("SCRIPTCACHE_LOWER", "", 1); /* nothing from the machine's configuration */
	snprintf(b1, sizeof b1, "%s", tu_path("k1.lua"));
	snprintf(b2, sizeof b2, "%s", tu_path("k2.lua"));
	snprintf(b3, sizeof b3, "%s", tu_path("k3.lua"));
	snprintf(b4, sizeof b4, "%s", tu_path("k4.lua"));
	k1 = b1;
	k2 = b2;
	k3 = b3;
	k4 = b4;
	tu_write_str(k1, "-- one\n");
	tu_write_str(k2, "-- two\n");
	tu_write_str(k3, "-- three\n");
	tu_write_str(k4, "-- four\n");

	test_lower_hit_no_write();
	test_whiteout_eviction();
	test_add_while_reading();
	test_replaced_underneath();
	test_refused();
	test_corrupt();
	test_env();
	test_relocation();
	test_no_own_shard();
	test_lazy_own_shard();
	return tap_done();
}
