/*
 * test_verify.c - sc_verify() names the check that failed and the offset
 * where it failed, for each kind of damage it can find.
 */
#include "format.h"
#include "testutil.h"

struct seen {
	int n;
	uint64_t off[16];
	char what[16][256];
};

static void collect(void *arg, uint64_t off, const char *problem)
{
	struct seen *s = arg;

	if (s->n < 16) {
		s->off[s->n] = off;
		snprintf(s->what[s->n], sizeof(s->what[0]), "%s", problem);
	}
	s->n++;
}

/* The report at @p off whose text holds @p text, or -1. */
static int find(const struct seen *s, uint64_t off, const char *text)
{
	for (int i = 0; i < s->n && i < 16; i++)
		if (s->off[i] == off && strstr(s->what[i], text))
			return i;
	return -1;
}

static void poke(const char *path, uint64_t off, const void *bytes, size_t len)
{
	int fd = open(path, O_WRONLY);

	TU_CHECK(fd >= 0);
	TU_CHECK(pwrite(fd, bytes, len, (off_t)off) == (ssize_t)len);
	close(fd);
}

static void peek(const char *path, uint64_t off, void *bytes, size_t len)
{
	int fd = open(path, O_RDONLY);

	TU_CHECK(fd >= 0);
	TU_CHECK(pread(fd, bytes, len, (off_t)off) == (ssize_t)len);
	close(fd);
}

static void dump(const struct seen *s)
{
	for (int i = 0; i < s->n && i < 16; i++)
		tap_diag("at %llu: %s", (unsigned long long)s->off[i], s->what[i]);
}

int main(void)
{
	const char *shard;
	sc_put_opts o = { .no_source = 1 };
	uint64_t off[3], blob_off = 0, checked = 0;
	struct sc_disk_meta m;
	struct seen seen = { 0 };
	sc_entry_info e;
	sc_cache *c;
	char key[3][32], want[64];
	int old_slot;

	tu_setup("verify");
	shard = tu_path("v.shard");
	TU_CHECK(sc_open(&c, shard, "test", 0) == 0);
	for (int i = 0; i < 3; i++) {
		snprintf(key[i], sizeof(key[i]), "/verify/key-%d.lua", i);
		char bytes[32];
		snprintf(bytes, sizeof(bytes), "some compiled bytes %d", i); /* not shared */
		TU_CHECK(sc_put_ex(c, key[i], bytes, strlen(bytes), &o) == 0);
		TU_CHECK(sc_lookup(c, key[i], &e) == 0);
		off[i] = e.offset;
		/* the blob's file offset: the mapping's base is the entry's
		 * address less its offset */
		blob_off = (uint64_t)((const char *)e.blob -
				      (e.key - sizeof(struct sc_disk_entry) - e.offset));
	}
	sc_close(c);
	TU_CHECK(sc_open(&c, shard, NULL, 0) == 0);
	TAP_EQ(sc_verify(c, collect, &seen, &checked), 0, "a sound shard verifies");
	TAP_EQ(seen.n, 0, "... with no problem reported");
	sc_close(c);

	/* 0: a byte of the key changes, 1: the entry magic, 2: a blob byte. */
	poke(shard, off[0] + sizeof(struct sc_disk_entry) + 1, "X", 1);
	poke(shard, off[1], "JUNK", 4);
	poke(shard, blob_off, "S", 1);
	/* The older meta slot (the newer one names all three records) claims
	 * data past the end of the file, its checksum resealed. */
	peek(shard, SC_META0_OFF, &m, sizeof(m));
	{
		struct sc_disk_meta m1;
		peek(shard, SC_META1_OFF, &m1, sizeof(m1));
		old_slot = m1.txnid < m.txnid;
		if (old_slot)
			m = m1;
	}
	m.data_end = (uint64_t)1 << 40;
	m.checksum = XXH3_64bits(&m, offsetof(struct sc_disk_meta, checksum));
	poke(shard, old_slot ? SC_META1_OFF : SC_META0_OFF, &m, sizeof(m));

	TU_CHECK(sc_open(&c, shard, NULL, 0) == 0);
	TAP_EQ(sc_verify(c, collect, &seen, &checked), SC_ECORRUPT, "damage makes it SC_ECORRUPT");
	tap_ok(find(&seen, off[0], "entry checksum mismatch") >= 0,
	       "a changed key: 'entry checksum mismatch' at the entry's offset");
	tap_ok(find(&seen, off[1], "bad entry magic") >= 0,
	       "a broken magic: 'bad entry magic' at the entry's offset");
	tap_ok(find(&seen, blob_off, "does not match its id") >= 0,
	       "a changed blob: 'does not match its id' at the blob's offset");
	snprintf(want, sizeof(want), "meta slot %d: data_end outside the file", old_slot);
	tap_ok(find(&seen, old_slot ? SC_META1_OFF : SC_META0_OFF, want) >= 0,
	       "a meta past the file: the failed check named, at the slot's offset");
	if (tap_failed)
		dump(&seen);
	sc_close(c);
	return tap_done();
}
