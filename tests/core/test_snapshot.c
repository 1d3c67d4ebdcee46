/*
 * test_snapshot.c - a reader's snapshot against commits that land while it
 * probes, made deterministic.
 *
 * A lookup takes a snapshot (sc_snapshot) and then probes the index, which
 * writers update in place.  A commit between the two can leave a slot that
 * points past the snapshot's data, and past the reader's mapping as well
 * when the file grew beyond its headroom meanwhile.  Such a slot is news,
 * not damage: the lookup must look again with a fresh snapshot and find the
 * new version.  (Found by test_concurrency on a loaded machine: a reader
 * preempted between snapshot and probe got SC_ECORRUPT.)
 *
 * The window is a few instructions wide in real life, so this program is
 * built from the library's sources and calls sc_snapshot() and sc_probe()
 * itself, with the commits in between.
 */
#include "sc_int.h"
#include "testutil.h"

#define TAG "test-snapshot tag"

static int put(sc_cache *c, const char *key, uint32_t version, size_t payload)
{
	unsigned char *buf = malloc(payload + 64);
	TU_CHECK(buf);
	sc_put_opts po = { .no_source = 1 };
	int rc = sc_put_ex(c, key, buf, tu_blob_make(buf, key, version, payload), &po);
	free(buf);
	return rc;
}

static int count(const sc_entry_info *e, void *arg)
{
	(void)e;
	++*(int *)arg;
	return 0;
}

int main(void)
{
	tu_setup("snapshot");
	const char *shard = tu_path("s.shard");
	const char *key = "/snap/key.lua";
	sc_cache *w = NULL, *r = NULL;

	TU_CHECK(sc_open(&w, shard, TAG, SC_NOSYNC) == 0);
	TAP_EQ(put(w, key, 1, 1000), 0, "version 1 put");
	/* the last commit's slot is read from its meta's redo record, not in
	 * place: make it another key's */
	TAP_EQ(put(w, "/snap/other.lua", 1, 1000), 0, "another key put");
	TU_CHECK(sc_open(&r, shard, TAG, SC_RDONLY) == 0);
	sc_blob b;
	TAP_EQ(sc_get(r, key, &b), 0, "the reader sees version 1");

	struct sc_snap s;
	TU_CHECK(sc_snapshot(r, &s) == 0);
	uint64_t hash = sc_key_hash(key, strlen(key));
	struct sc_rec_view v;
	TAP_EQ(sc_probe(&s, key, strlen(key), hash, NULL, &v), 0, "probe of the snapshot finds it");

	/* While the reader holds that snapshot: a commit that takes the data
	 * past the reader's whole mapping, then version 2 of the key, whose
	 * record lies past the mapping and whose slot changes in place. */
	size_t filler = (size_t)(s.map_len - s.meta.data_end) + 65536;
	TAP_EQ(put(w, "/snap/filler.lua", 1, filler), 0, "a %zu-byte put past the reader's mapping",
	       filler);
	TAP_EQ(put(w, key, 2, 1000), 0, "version 2 put");
	struct sc_snap now;
	TU_CHECK(sc_snapshot(w, &now) == 0);
	tap_ok(now.meta.data_end > s.map_len, "the data now ends past the reader's mapping "
	       "(%llu > %llu)", (unsigned long long)now.meta.data_end,
	       (unsigned long long)s.map_len);

	int rc = sc_probe(&s, key, strlen(key), hash, NULL, &v);
	TAP_EQ(rc, -EAGAIN, "probe of the old snapshot: a newer commit, not damage (%s)",
	       sc_strerror(rc));
	int n = 0;
	TAP_EQ(sc_foreach(r, count, &n), 0, "sc_foreach after the commits");
	TAP_EQ(n, 3, "it sees the three keys");
	rc = sc_get(r, key, &b);
	tap_ok(rc == 0 && tu_blob_check(b.data, b.size, key) == 2,
	       "sc_get on the reader returns version 2 (%s)", sc_strerror(rc));
	sc_stats st;
	TAP_EQ(sc_get_stats(r, &st), 0, "stats");
	TAP_EQ(st.miss_corrupt, 0, "the reader counted nothing as damaged");

	sc_close(r);
	sc_close(w);
	return tap_done();
}
