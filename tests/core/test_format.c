/*
 * test_format.c - the shard file as hostile input.
 *
 * Header fields each give their own error; truncated files and files with
 * one byte flipped anywhere, or with crafted structures that carry valid
 * checksums, must never crash the library or make it hand out wrong bytes.
 * Every damaged case runs in a forked child so that a crash is counted as
 * a failure of that case instead of ending the TAP stream.
 */
#include <stddef.h>
#include <sys/mman.h>

#include "format.h"
#include "testutil.h"

#define TAG "format-test tag"
#define NKEYS 6 /* key 5 is removed again: a tombstone and a dead record */

static char keys[NKEYS][PATH_MAX];
static long want_version[NKEYS]; /* -1: must not hit */
static unsigned char *orig;      /* the pristine shard */
static size_t orig_len;
static char case_path[PATH_MAX];

/* ---- building and parsing the reference shard ---------------------------- */

static void put_version(sc_cache *c, int i, uint32_t version, size_t payload)
{
	unsigned char buf[1024];
	size_t n = tu_blob_make(buf, keys[i], version, payload);
	int rc = sc_put(c, keys[i], buf, n);
	if (rc)
		tap_diag("put %s: %s", keys[i], sc_strerror(rc));
	TU_CHECK(rc == 0);
}

static void build_reference(const char *shard)
{
	sc_cache *c = NULL;
	TU_CHECK(mkdir(tu_path("src"), 0755) == 0);
	for (int i = 0; i < NKEYS; i++) {
		snprintf(keys[i], sizeof keys[i], "%s", tu_path("src/script%d.lua", i));
		tu_write_str(keys[i], keys[i]);
	}
	TU_CHECK(sc_open(&c, shard, TAG, SC_NOSYNC) == 0);
	for (int i = 0; i < NKEYS; i++) {
		put_version(c, i, 1, 40 + 70 * i);
		want_version[i] = 1;
	}
	put_version(c, 1, 2, 90); /* replaced: version 1 becomes a dead record */
	want_version[1] = 2;
	TU_CHECK(sc_remove(c, keys[5]) == 0); /* last commit: a tombstone */
	want_version[5] = -1;
	sc_close(c);
	orig = tu_read_file(shard, &orig_len);
}

static int meta_ok(const struct sc_disk_meta *m)
{
	return XXH3_64bits(m, offsetof(struct sc_disk_meta, checksum)) == m->checksum;
}

/* The meta a reader would pick (all are valid in the reference): any slot
 * may hold any transaction id, the highest wins. */
static struct sc_disk_meta winning_meta(const unsigned char *img)
{
	struct sc_disk_meta m, best;
	int found = 0;

	for (int i = 0; i < SC_META_SLOTS; i++) {
		memcpy(&m, img + sc_meta_off(i), sizeof m);
		if (meta_ok(&m) && (!found || m.txnid > best.txnid)) {
			best = m;
			found = 1;
		}
	}
	TU_CHECK(found);
	return best;
}

static void reseal_meta(unsigned char *img, uint64_t at)
{
	struct sc_disk_meta m;
	memcpy(&m, img + at, sizeof m);
	m.checksum = XXH3_64bits(&m, offsetof(struct sc_disk_meta, checksum));
	memcpy(img + at, &m, sizeof m);
}

static void reseal_header(unsigned char *img)
{
	struct sc_disk_header h;
	memcpy(&h, img, sizeof h);
	h.checksum = XXH3_64bits(&h, offsetof(struct sc_disk_header, checksum));
	memcpy(img, &h, sizeof h);
}

/* Record checksum as format.h describes it: XXH3-64 of the header with the
 * checksum field zeroed, followed by the strings. */
static uint64_t record_checksum(const unsigned char *rec)
{
	struct sc_disk_entry r;
	memcpy(&r, rec, sizeof r);
	size_t strings = (size_t)r.key_len + r.tag_len + r.exe_id_len + r.exe_path_len;
	unsigned char *tmp = malloc(sizeof r + strings);
	TU_CHECK(tmp);
	r.checksum = 0;
	memcpy(tmp, &r, sizeof r);
	memcpy(tmp + sizeof r, rec + sizeof r, strings);
	uint64_t h = XXH3_64bits(tmp, sizeof r + strings);
	free(tmp);
	return h;
}

static void reseal_record(unsigned char *img, uint64_t off)
{
	struct sc_disk_entry r;
	memcpy(&r, img + off, sizeof r);
	r.checksum = record_checksum(img + off);
	memcpy(img + off, &r, sizeof r);
}

/* Record offsets of the live keys, from the reference's own index. */
static uint64_t rec_off[NKEYS];

static void find_records(const char *shard)
{
	sc_cache *c = NULL;
	TU_CHECK(sc_open(&c, shard, TAG, SC_RDONLY) == 0);
	for (int i = 0; i < NKEYS; i++) {
		sc_entry_info e;
		int rc = sc_lookup(c, keys[i], &e);
		rec_off[i] = rc == 0 ? e.offset : 0;
		TU_CHECK((rc == 0) == (want_version[i] >= 0));
	}
	sc_close(c);
}

/* ---- one damaged case, run in a child ------------------------------------ */

enum {
	F_OPEN_OK = 1,     /* opened as it is although it must be refused or set aside */
	F_OPEN_FAIL = 2,   /* refused or set aside although only the first page matters */
	F_BAD_HIT = 4,     /* a hit with bytes that are not the key's latest version */
	F_NOT_CORRUPT = 8, /* the damaged entry's get was not SC_ECORRUPT */
	F_VERIFY = 16,     /* sc_verify did not report SC_ECORRUPT */
	F_FOREACH = 32,    /* foreach handed out a wrong entry */
	F_PUT = 64,        /* a put returned 0 but the entry is not readable */
	F_CRASH = 128,     /* set by the parent: the child died */
	/* not a failure (the header does not promise blob checksums from
	 * sc_foreach/sc_lookup), reported as a note: a damaged blob handed
	 * out whose damage the caller can only see via blob_id */
	F_UNHASHED = 256,
};

enum {
	X_OPEN_FAIL = 1,     /* open must fail */
	X_VERIFY = 2,        /* sc_verify must say SC_ECORRUPT */
	X_KEY_CORRUPT = 4,   /* get of key x_key must be SC_ECORRUPT */
	X_ANY_VERSION = 8,   /* a hit may be any genuine version of the key */
	X_MAY_FAIL_OPEN = 16,
};

struct fcase {
	uint64_t off;   /* for reports */
	unsigned expect;
	int key;        /* for X_KEY_CORRUPT */
	/* how to make the image: flip a byte, or a custom function */
	void (*make)(unsigned char *img, size_t *len, const struct fcase *fc);
	uint64_t arg;
	uint16_t result;
};

/* An entry handed out by sc_foreach/sc_lookup must be one we stored; its
 * blob must be genuine or at least disagree with its blob_id. */
static uint16_t check_info(const sc_entry_info *e)
{
	for (int i = 0; i < NKEYS; i++) {
		if (e->key_len == strlen(keys[i]) && !memcmp(e->key, keys[i], e->key_len)) {
			if (tu_blob_check(e->blob, e->blob_size, keys[i]) >= 0)
				return 0;
			XXH128_hash_t h = XXH3_128bits(e->blob, e->blob_size);
			if (h.low64 != e->blob_id[0] || h.high64 != e->blob_id[1])
				return F_UNHASHED;
			return F_FOREACH;
		}
	}
	return F_FOREACH; /* a key that was never stored */
}

static int foreach_cb(const sc_entry_info *e, void *arg)
{
	*(uint16_t *)arg |= check_info(e);
	return 0;
}

static uint16_t run_case(const struct fcase *fc, unsigned char *img)
{
	size_t len = orig_len;
	memcpy(img, orig, orig_len);
	fc->make(img, &len, fc);
	unlink(case_path);
	int fd = open(case_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, img, len) != (ssize_t)len || close(fd))
		return F_CRASH;

	uint16_t res = 0;
	sc_cache *c = NULL;
	int rc;
	if (fc->expect & X_OPEN_FAIL) {
		/* a reader must refuse it */
		if (sc_open(&c, case_path, TAG, SC_RDONLY) == 0)
			res |= F_OPEN_OK;
		sc_close(c);
		c = NULL;
	}
	/* A writer refuses it too, or sets it aside and starts afresh (a
	 * heal: nothing of the damaged file is used, test_heal.c). */
	rc = sc_open(&c, case_path, TAG, SC_NOSYNC);
	if (rc) {
		if (!(fc->expect & (X_OPEN_FAIL | X_MAY_FAIL_OPEN)))
			res |= F_OPEN_FAIL;
		return res;
	}
	sc_stats st;
	int healed = sc_get_stats(c, &st) == 0 && st.heals > 0;
	if ((fc->expect & X_OPEN_FAIL) && !healed)
		res |= F_OPEN_OK;
	if (healed && !(fc->expect & (X_OPEN_FAIL | X_MAY_FAIL_OPEN)))
		res |= F_OPEN_FAIL;

	for (int i = 0; i < NKEYS; i++) {
		sc_blob b;
		rc = sc_get(c, keys[i], &b);
		if (rc == 0) {
			long v = tu_blob_check(b.data, b.size, keys[i]);
			if (v < 0 || (v != want_version[i] && !(fc->expect & X_ANY_VERSION)))
				res |= F_BAD_HIT;
		}
		if ((fc->expect & X_KEY_CORRUPT) && i == fc->key && rc != SC_ECORRUPT)
			res |= F_NOT_CORRUPT;
		sc_entry_info e;
		if (sc_lookup(c, keys[i], &e) == 0)
			res |= check_info(&e);
	}
	sc_foreach(c, foreach_cb, &res);
	rc = sc_verify(c, NULL, NULL, NULL);
	if ((fc->expect & X_VERIFY) && rc != SC_ECORRUPT)
		res |= F_VERIFY;

	unsigned char buf[256];
	size_t n = tu_blob_make(buf, "/new/key", 9, 100);
	sc_put_opts o = { .no_source = 1 };
	if (sc_put_ex(c, "/new/key", buf, n, &o) == 0) {
		sc_blob b;
		if (sc_get(c, "/new/key", &b) || tu_blob_check(b.data, b.size, "/new/key") != 9)
			res |= F_PUT;
	}
	sc_close(c);
	return res;
}

/* Run cases in children, a batch per child; a child that dies is restarted
 * after the case that killed it, which is marked F_CRASH. */
static void run_cases(struct fcase *cs, size_t n)
{
	size_t start = 0;
	unsigned char *img = malloc(orig_len + (1 << 16));
	TU_CHECK(img);
	while (start < n) {
		int p[2];
		TU_CHECK(pipe(p) == 0);
		size_t end = start + 400 < n ? start + 400 : n;
		fflush(stdout);
		pid_t pid = fork();
		TU_CHECK(pid >= 0);
		if (pid == 0) {
			close(p[0]);
			for (size_t i = start; i < end; i++) {
				uint16_t r = run_case(&cs[i], img);
				if (write(p[1], &r, 2) != 2)
					_exit(3);
			}
			_exit(0);
		}
		close(p[1]);
		size_t got = 0;
		uint16_t r;
		while (read(p[0], &r, 2) == 2) /* writes of 2 bytes to a pipe are atomic */
			cs[start + got++].result = r;
		close(p[0]);
		int st = tu_wait(pid);
		if (got < end - start) {
			cs[start + got].result = F_CRASH;
			tap_diag("case at offset %llu: child ended with status %d",
				 (unsigned long long)cs[start + got].off, st);
			got++;
		}
		start += got;
	}
	free(img);
}

/* Summarise a group of cases as TAP lines. */
static void report(const char *what, const struct fcase *cs, size_t n)
{
	static const char *names[] = { "file opened that must be refused or set aside",
				       "file refused or set aside whose first page is sound",
				       "hit with wrong bytes",
				       "damaged entry missing SC_ECORRUPT",
				       "damage missed by sc_verify",
				       "wrong entry from lookup/foreach",
				       "committed put left unreadable",
				       "crash" };
	for (int bit = 7; bit >= 0; bit--) {
		size_t bad = 0;
		char offs[200] = "";
		for (size_t i = 0; i < n; i++) {
			if (!(cs[i].result & (1u << bit)))
				continue;
			if (bad++ < 6) {
				size_t l = strlen(offs);
				snprintf(offs + l, sizeof offs - l, " %llu",
					 (unsigned long long)cs[i].off);
			}
		}
		/* only the checks that apply to the group are reported */
		int applies = bit == 7 || bit == 2 || bit == 5 || bit == 6;
		for (size_t i = 0; i < n && !applies; i++) {
			unsigned x = cs[i].expect;
			applies = (bit == 0 && (x & X_OPEN_FAIL)) ||
				  (bit == 1 && !(x & (X_OPEN_FAIL | X_MAY_FAIL_OPEN))) ||
				  (bit == 3 && (x & X_KEY_CORRUPT)) || (bit == 4 && (x & X_VERIFY));
		}
		if (!applies)
			continue;
		tap_ok(bad == 0, "%s (%zu cases): no %s", what, n, names[bit]);
		if (bad)
			tap_diag("%zu cases, e.g. offsets%s", bad, offs);
	}
	size_t unhashed = 0;
	for (size_t i = 0; i < n; i++)
		unhashed += !!(cs[i].result & F_UNHASHED);
	if (unhashed)
		tap_diag("note: in %zu cases sc_lookup/sc_foreach handed out a damaged blob "
			 "(detectable only through blob_id)", unhashed);
}

/* ---- header fields --------------------------------------------------------- */

static int open_image(const unsigned char *img, size_t len)
{
	unlink(case_path);
	int fd = open(case_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	TU_CHECK(fd >= 0 && write(fd, img, len) == (ssize_t)len && close(fd) == 0);
	sc_cache *c = (sc_cache *)1;
	int rc = sc_open(&c, case_path, TAG, SC_RDONLY);
	if (rc == 0) {
		sc_close(c);
		return 0;
	}
	return c == NULL ? rc : -99999;
}

static void bswap_field(unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n / 2; i++) {
		unsigned char t = p[i];
		p[i] = p[n - 1 - i];
		p[n - 1 - i] = t;
	}
}

static void test_header_fields(void)
{
	unsigned char *img = malloc(orig_len);
	struct sc_disk_header *h = (struct sc_disk_header *)img;
	TU_CHECK(img);

	memcpy(img, orig, orig_len);
	TAP_EQ(open_image(img, orig_len), 0, "pristine copy opens");

	memcpy(img, orig, orig_len);
	h->magic[0] = 'X';
	reseal_header(img);
	TAP_EQ(open_image(img, orig_len), SC_EMAGIC, "wrong magic: SC_EMAGIC");

	memcpy(img, orig, orig_len);
	h->format_version = SC_FORMAT_VERSION + 1;
	reseal_header(img);
	TAP_EQ(open_image(img, orig_len), SC_EVERSION, "newer format version: SC_EVERSION");
	h->format_version = 0;
	reseal_header(img);
	TAP_EQ(open_image(img, orig_len), SC_EVERSION, "format version 0: SC_EVERSION");

	memcpy(img, orig, orig_len);
	h->ptr_width = sizeof(void *) == 8 ? 4 : 8;
	reseal_header(img);
	TAP_EQ(open_image(img, orig_len), SC_EPTRWIDTH, "other pointer width: SC_EPTRWIDTH");

	memcpy(img, orig, orig_len);
	h->byte_order = __builtin_bswap32(SC_BYTE_ORDER_MARK);
	reseal_header(img);
	TAP_EQ(open_image(img, orig_len), SC_EBYTEORDER, "byte-swapped byte_order: SC_EBYTEORDER");

	/* a whole header as a writer of the other byte order makes it */
	memcpy(img, orig, orig_len);
	bswap_field((unsigned char *)&h->format_version, 4);
	bswap_field((unsigned char *)&h->byte_order, 4);
	bswap_field((unsigned char *)&h->header_size, 4);
	bswap_field((unsigned char *)&h->created_sec, 8);
	bswap_field((unsigned char *)&h->shard_id, 8);
	h->checksum = __builtin_bswap64(XXH3_64bits(h, offsetof(struct sc_disk_header, checksum)));
	TAP_EQ(open_image(img, orig_len), SC_EBYTEORDER, "an other-endian shard: SC_EBYTEORDER");

	memcpy(img, orig, orig_len);
	h->base[10] ^= 1; /* not resealed */
	TAP_EQ(open_image(img, orig_len), SC_ECORRUPT, "header checksum mismatch: SC_ECORRUPT");

	memcpy(img, orig, orig_len);
	h->header_size = 512;
	reseal_header(img);
	int rc = open_image(img, orig_len);
	tap_ok(rc < 0 && rc != -99999, "unknown header_size refused (%s)", sc_strerror(rc));

	/* every meta damaged: nothing to trust */
	memcpy(img, orig, orig_len);
	for (int i = 0; i < SC_META_SLOTS; i++)
		img[sc_meta_off(i) + 3] ^= 0x10;
	rc = open_image(img, orig_len);
	tap_ok(rc < 0 && rc != -99999, "every meta slot damaged: open refused (%s)",
	       sc_strerror(rc));

	/* empty file */
	rc = open_image(img, 0);
	tap_ok(rc == SC_ETRUNCATED || rc == SC_EMAGIC || rc == SC_ECORRUPT,
	       "0-byte file read-only: a clear error (%s)", sc_strerror(rc));
	unlink(case_path);
	int fd = open(case_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	TU_CHECK(fd >= 0);
	close(fd);
	sc_cache *c = NULL;
	rc = sc_open(&c, case_path, TAG, 0);
	if (rc == 0) {
		/* acceptable only if the handle then works */
		sc_put_opts o = { .no_source = 1 };
		sc_blob b;
		tap_ok(sc_put_ex(c, "/k", "v", 1, &o) == 0 && sc_get(c, "/k", &b) == 0,
		       "0-byte file read-write: initialised and usable");
		sc_close(c);
	} else {
		tap_ok(c == NULL && (rc == SC_ETRUNCATED || rc == SC_EMAGIC || rc == SC_ECORRUPT),
		       "0-byte file read-write: a clear error (%s)", sc_strerror(rc));
	}
	/* a foreign file */
	rc = open_image((const unsigned char *)"#!/bin/sh\necho hello\n", 21);
	TAP_EQ(rc, SC_EMAGIC, "a short foreign file: SC_EMAGIC");
	free(img);
}

/* ---- case makers ----------------------------------------------------------- */

static void mk_flip(unsigned char *img, size_t *len, const struct fcase *fc)
{
	(void)len;
	img[fc->off] ^= (unsigned char)fc->arg;
}

static void mk_truncate(unsigned char *img, size_t *len, const struct fcase *fc)
{
	(void)img;
	*len = fc->off;
}

/* Every meta gets the same field change, resealed: the reader has no valid
 * fallback and must survive checksummed nonsense. */
enum { M_DATA_END, M_INDEX_OFF, M_INDEX_SLOTS, M_ENTRIES, M_REDO_SLOT, M_REDO_OFF,
       M_REDO_OTHER, M_LIVE, M_TXN_SWAP };

static void mk_meta(unsigned char *img, size_t *len, const struct fcase *fc)
{
	(void)len;
	int what = (int)(fc->arg >> 56);
	uint64_t v = fc->arg & ((1ull << 56) - 1);
	for (int s = 0; s < SC_META_SLOTS; s++) {
		uint64_t at = sc_meta_off(s);
		struct sc_disk_meta m;
		memcpy(&m, img + at, sizeof m);
		switch (what) {
		case M_DATA_END: m.data_end = v == 1 ? UINT64_MAX : m.data_end + v; break;
		case M_INDEX_OFF: m.index_off = v; break;
		case M_INDEX_SLOTS: m.index_slots = v == 1 ? 1ull << 60 : v; break;
		case M_ENTRIES: m.entries = v == 1 ? UINT64_MAX : v; break;
		case M_REDO_SLOT: m.redo_slot = v; m.redo_off = rec_off[0]; m.redo_hash = 1; break;
		case M_REDO_OFF:
			/* redo names the slot of key 0 with an arbitrary offset */
			if (m.redo_slot == SC_NO_REDO)
				m.redo_slot = 0;
			m.redo_off = v;
			break;
		case M_REDO_OTHER:
			/* every slot is redirected in turn by the child's choice:
			 * here, the redo gives key 0's hash with key 2's record */
			m.redo_hash = XXH3_64bits(keys[0], strlen(keys[0]));
			m.redo_off = rec_off[2];
			m.redo_slot = v;
			break;
		case M_LIVE: m.live_bytes = UINT64_MAX; m.dead_bytes = UINT64_MAX; break;
		case M_TXN_SWAP: m.txnid += 1; break;
		}
		memcpy(img + at, &m, sizeof m);
		reseal_meta(img, at);
	}
}

/* Crafted fields of key 0's entry record, resealed. */
enum { R_BLOB_LEN, R_BLOB_OFF, R_REC_LEN, R_KEY_LEN, R_TAG_LEN, R_PATH_LEN, R_BLOB_HUGE,
       R_BLOB_OTHER, R_FLAGS };

static void mk_record(unsigned char *img, size_t *len, const struct fcase *fc)
{
	(void)len;
	int what = (int)(fc->arg >> 56);
	uint64_t v = fc->arg & ((1ull << 56) - 1);
	uint64_t off = rec_off[fc->key];
	struct sc_disk_meta m = winning_meta(img);
	struct sc_disk_entry r, r2;
	memcpy(&r, img + off, sizeof r);
	memcpy(&r2, img + rec_off[2], sizeof r2);
	switch (what) {
	case R_BLOB_LEN: r.blob_len = m.data_end - r.blob_off + v; break;
	case R_BLOB_OFF: r.blob_off = v; break;
	case R_REC_LEN: r.rec_len = (uint32_t)v; break;
	case R_KEY_LEN: r.key_len = (uint16_t)v; break;
	case R_TAG_LEN: r.tag_len = (uint16_t)v; break;
	case R_PATH_LEN: r.exe_path_len = (uint16_t)v; break;
	case R_BLOB_HUGE: r.blob_len = SC_MAX_BLOB; break;
	/* key 2's blob, whole or cut to key 0's length: not key 0's id */
	case R_BLOB_OTHER: r.blob_off = r2.blob_off; r.blob_len = v ? r2.blob_len : r.blob_len; break;
	case R_FLAGS: r.flags = (uint32_t)v; break;
	}
	memcpy(img + off, &r, sizeof r);
	/* a key_len larger than the file would make the reseal read past it */
	size_t strings = (size_t)r.key_len + r.tag_len + r.exe_id_len + r.exe_path_len;
	if (off + sizeof r + strings <= orig_len)
		reseal_record(img, off);
}

/* Key 0's index slot pointing at key 2's record (hash still key 0's). */
static void mk_slot_other(unsigned char *img, size_t *len, const struct fcase *fc)
{
	(void)len;
	struct sc_disk_meta m = winning_meta(img);
	uint64_t h0 = XXH3_64bits(keys[0], strlen(keys[0]));
	for (uint64_t i = 0; i < m.index_slots; i++) {
		struct sc_disk_slot s;
		memcpy(&s, img + m.index_off + i * 16, 16);
		if (s.off == rec_off[0]) {
			(void)h0;
			s.off = fc->arg ? fc->arg : rec_off[2];
			memcpy(img + m.index_off + i * 16, &s, 16);
		}
	}
}

/* ---- groups ---------------------------------------------------------------- */

static struct fcase *cases;
static size_t ncases, capcases;

static void add(uint64_t off, unsigned expect, int key,
		void (*make)(unsigned char *, size_t *, const struct fcase *), uint64_t arg)
{
	if (ncases == capcases) {
		capcases = capcases ? capcases * 2 : 1024;
		cases = realloc(cases, capcases * sizeof *cases);
		TU_CHECK(cases);
	}
	cases[ncases++] = (struct fcase){ off, expect, key, make, arg, 0 };
}

static void test_truncation(void)
{
	struct sc_disk_meta m = winning_meta(orig);
	uint64_t cuts[] = { 1, 8, 100, 255, 256, 511, 600, 1100, 4095, 4096, 4100,
			    SC_DATA_OFF + (m.data_end - SC_DATA_OFF) / 3,
			    SC_DATA_OFF + (m.data_end - SC_DATA_OFF) / 2, m.index_off + 100,
			    m.data_end - 1, orig_len - 1 };
	ncases = 0;
	for (size_t i = 0; i < sizeof cuts / sizeof *cuts; i++) {
		if (cuts[i] >= orig_len)
			continue;
		unsigned x = cuts[i] < sizeof(struct sc_disk_header) ? X_OPEN_FAIL : X_MAY_FAIL_OPEN;
		add(cuts[i], x, 0, mk_truncate, 0);
	}
	run_cases(cases, ncases);
	report("truncated copies", cases, ncases);
}

static void test_flips(void)
{
	struct sc_disk_meta m = winning_meta(orig);
	uint64_t idx_end = m.index_off + m.index_slots * sizeof(struct sc_disk_slot);
	/* which record/blob bytes are covered by checksums, per live key */
	struct range { uint64_t a, b; int key; } covered[2 * NKEYS];
	int ncov = 0;
	for (int i = 0; i < NKEYS; i++) {
		if (!rec_off[i])
			continue;
		struct sc_disk_entry r;
		memcpy(&r, orig + rec_off[i], sizeof r);
		uint64_t strings = (uint64_t)r.key_len + r.tag_len + r.exe_id_len + r.exe_path_len;
		covered[ncov++] = (struct range){ rec_off[i], rec_off[i] + sizeof r + strings, i };
		covered[ncov++] = (struct range){ r.blob_off, r.blob_off + r.blob_len, i };
	}

	/* 1. header: every byte; each must make the open fail */
	ncases = 0;
	for (uint64_t o = 0; o < sizeof(struct sc_disk_header); o++)
		add(o, X_OPEN_FAIL, 0, mk_flip, 0x5a);
	run_cases(cases, ncases);
	report("header byte flips", cases, ncases);

	/* 2. meta slots: every byte; verify must notice */
	ncases = 0;
	for (int s = 0; s < SC_META_SLOTS; s++) {
		uint64_t at = sc_meta_off(s);
		for (uint64_t o = at; o < at + sizeof(struct sc_disk_meta); o++)
			add(o, X_VERIFY, 0, mk_flip, 0x5a);
	}
	run_cases(cases, ncases);
	report("meta byte flips", cases, ncases);

	/* 3. unused parts of the first page: sampled */
	ncases = 0;
	for (uint64_t o = sizeof(struct sc_disk_header); o < SC_DATA_OFF; o += 13)
		if ((o < SC_META0_OFF || o >= SC_META0_OFF + sizeof m) &&
		    (o < SC_META1_OFF || o >= SC_META1_OFF + sizeof m) &&
		    (o < SC_META2_OFF || o >= SC_META2_OFF + sizeof m))
			add(o, 0, 0, mk_flip, 0x5a);
	run_cases(cases, ncases);
	report("first-page padding flips", cases, ncases);

	/* 4. live records and blobs: every covered byte; the entry must be
	 * SC_ECORRUPT and verify must notice.  Two flip patterns. */
	ncases = 0;
	for (int k = 0; k < ncov; k++)
		for (uint64_t o = covered[k].a; o < covered[k].b; o++)
			add(o, X_VERIFY | X_KEY_CORRUPT, covered[k].key, mk_flip,
			    (o & 1) ? 0x01 : 0x80);
	run_cases(cases, ncases);
	report("live record and blob byte flips", cases, ncases);

	/* 5. the index: every byte of used slots, a sample of empty ones.  A
	 * flipped offset may land on an older version of the same key. */
	ncases = 0;
	for (uint64_t o = m.index_off; o < idx_end; o++) {
		struct sc_disk_slot s;
		memcpy(&s, orig + (o & ~15ull), 16);
		if (s.off != SC_SLOT_EMPTY || o % 29 == 0)
			add(o, X_ANY_VERSION, 0, mk_flip, (o & 1) ? 0x5a : 0x02);
	}
	run_cases(cases, ncases);
	report("index byte flips", cases, ncases);

	/* 6. the rest of the data area (dead records, padding) and the tail */
	ncases = 0;
	for (uint64_t o = SC_DATA_OFF; o < orig_len; o += 3) {
		int in_cov = o >= m.index_off && o < idx_end;
		for (int k = 0; k < ncov && !in_cov; k++)
			in_cov = o >= covered[k].a && o < covered[k].b;
		if (!in_cov)
			add(o, 0, 0, mk_flip, 0xff);
	}
	run_cases(cases, ncases);
	report("dead data, padding and tail flips", cases, ncases);
}

static void test_crafted(void)
{
	struct sc_disk_meta m = winning_meta(orig);
	const uint64_t T = 56;
	ncases = 0;
	/* metas with valid checksums and hostile fields */
	add(1, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_DATA_END << T | 4096);
	add(2, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_DATA_END << T | 1);
	add(3, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_DATA_END << T | 8);
	add(4, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_INDEX_OFF << T | (m.data_end - 16));
	add(5, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_INDEX_OFF << T | (m.index_off + 8));
	add(6, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_INDEX_OFF << T | 0);
	add(7, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_INDEX_OFF << T | SC_DATA_OFF);
	add(8, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_INDEX_SLOTS << T | 3);
	add(9, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_INDEX_SLOTS << T | 0);
	add(10, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_INDEX_SLOTS << T | 1);
	add(11, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_INDEX_SLOTS << T | (m.index_slots * 2));
	add(12, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_INDEX_SLOTS << T | (m.index_slots / 2));
	add(13, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_ENTRIES << T | 1);
	add(14, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_REDO_SLOT << T | (m.index_slots + 5));
	add(15, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_REDO_SLOT << T | 12345678);
	add(16, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_REDO_OFF << T | (m.data_end + 64));
	add(17, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_REDO_OFF << T | 4100);
	add(18, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_REDO_OFF << T | (m.data_end - 64));
	add(19, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_REDO_OFF << T | (m.index_off));
	add(20, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_LIVE << T);
	add(21, X_MAY_FAIL_OPEN, 0, mk_meta, (uint64_t)M_TXN_SWAP << T);
	for (uint64_t s = 0; s < m.index_slots; s += m.index_slots / 16)
		add(100 + s, X_MAY_FAIL_OPEN | X_VERIFY, 0, mk_meta, (uint64_t)M_REDO_OTHER << T | s);
	run_cases(cases, ncases);
	report("crafted metas with valid checksums", cases, ncases);

	/* records with valid header checksums and hostile fields: key 0 must
	 * be SC_ECORRUPT, the others unaffected */
	ncases = 0;
	struct sc_disk_entry r;
	memcpy(&r, orig + rec_off[0], sizeof r);
	const unsigned X = X_VERIFY | X_KEY_CORRUPT;
	add(1, X, 0, mk_record, (uint64_t)R_BLOB_LEN << T | 1);
	add(2, X, 0, mk_record, (uint64_t)R_BLOB_LEN << T | 4096);
	add(3, X, 0, mk_record, (uint64_t)R_BLOB_LEN << T | (m.data_end));
	add(4, X, 0, mk_record, (uint64_t)R_BLOB_OFF << T | 0);
	add(5, X, 0, mk_record, (uint64_t)R_BLOB_OFF << T | 8);
	add(6, X, 0, mk_record, (uint64_t)R_BLOB_OFF << T | (r.blob_off + 64));
	add(7, X, 0, mk_record, (uint64_t)R_BLOB_OFF << T | m.data_end);
	add(8, X, 0, mk_record, (uint64_t)R_BLOB_OFF << T | ((1ull << 55) & ~63ull));
	add(9, X, 0, mk_record, (uint64_t)R_REC_LEN << T | 0);
	add(10, X, 0, mk_record, (uint64_t)R_REC_LEN << T | 64);
	add(11, X, 0, mk_record, (uint64_t)R_REC_LEN << T | (r.rec_len + 8 * 100000));
	add(12, X, 0, mk_record, (uint64_t)R_REC_LEN << T | (r.rec_len + 4));
	add(13, X, 0, mk_record, (uint64_t)R_KEY_LEN << T | 0);
	add(14, X, 0, mk_record, (uint64_t)R_KEY_LEN << T | 65535);
	/* the key then reads differently: a miss, not necessarily SC_ECORRUPT */
	add(15, X_VERIFY, 0, mk_record, (uint64_t)R_KEY_LEN << T | (r.key_len + 1));
	add(16, X, 0, mk_record, (uint64_t)R_TAG_LEN << T | 60000);
	add(17, X, 0, mk_record, (uint64_t)R_TAG_LEN << T | (r.rec_len));
	add(18, X, 0, mk_record, (uint64_t)R_PATH_LEN << T | 65535);
	add(19, X, 0, mk_record, (uint64_t)R_BLOB_HUGE << T);
	add(20, X, 0, mk_record, (uint64_t)R_BLOB_OTHER << T | 0);
	add(21, X, 0, mk_record, (uint64_t)R_BLOB_OTHER << T | 1);
	/* no_source: the key's source is then not checked, the blob still is */
	add(22, 0, 0, mk_record, (uint64_t)R_FLAGS << T | SC_ENT_NO_SOURCE);
	run_cases(cases, ncases);
	report("crafted records with valid checksums", cases, ncases);

	/* an index slot naming another key's record */
	ncases = 0;
	add(1, X_VERIFY, 0, mk_slot_other, 0);
	add(2, X_VERIFY, 0, mk_slot_other, m.data_end + 64);
	add(3, X_VERIFY, 0, mk_slot_other, m.index_off);
	add(4, X_VERIFY, 0, mk_slot_other, SC_SLOT_TOMB + 64);
	run_cases(cases, ncases);
	report("index slots naming a foreign record", cases, ncases);
}

int main(void)
{
	tu_setup("format");
	snprintf(case_path, sizeof case_path, "%s", tu_path("case.shard"));
	char shard[PATH_MAX];
	snprintf(shard, sizeof shard, "%s", tu_path("reference.shard"));
	build_reference(shard);
	find_records(shard);
	tap_ok(orig_len >= SC_DATA_OFF, "reference shard built (%zu bytes)", orig_len);
	{
		struct sc_disk_entry r;
		memcpy(&r, orig + rec_off[0], sizeof r);
		tap_ok(r.checksum == record_checksum(orig + rec_off[0]),
		       "entry checksum is computed as format.h describes");
	}
	double t0 = tu_now();
	test_header_fields();
	test_truncation();
	test_flips();
	test_crafted();
	tap_diag("damage cases took %.1f s", tu_now() - t0);
	free(cases);
	free(orig);
	return tap_done();
}
