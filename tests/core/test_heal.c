/*
 * test_heal.c - a shard damaged beyond use heals; nothing else is touched.
 *
 * The damage cases are the ones test_format makes for a whole shard: a
 * header checksum mismatch, an unknown header size, a byte-order mark that
 * is neither order, every meta slot damaged, and files truncated inside the
 * header, inside the meta pages and inside the data.  For each:
 *  - a read-only open reports the damage and changes nothing;
 *  - a read-write open succeeds on a new, empty, sound shard; the damaged
 *    bytes are kept, unchanged, as <shard>.corrupt-<UTC time>; heals and
 *    set_aside count it.
 * Files that must never be touched, even by a writer: a foreign file, an
 * empty one, one holding only part of the magic, another format version,
 * byte order or pointer width, and a damaged shard owned by someone else.
 * Then: damage under a running writer and reader (the writer heals at its
 * next put, the reader's old blob stays readable and it finds the new
 * shard), four processes healing at once (one copy set aside, every put
 * kept), and repeated heals (only the newest three copies kept).
 */
#include <dirent.h>
#include <sys/mman.h>

#include "format.h"
#include "testutil.h"

#define TAG "heal test"
#define NKEYS 8

static char dir[PATH_MAX], shard[PATH_MAX + 32];

static void make_shard(int version)
{
	sc_cache *c = NULL;
	unsigned char buf[4096];
	char key[64];
	sc_put_opts po = { .no_source = 1 };

	unlink(shard);
	TU_CHECK(sc_open(&c, shard, TAG, SC_NOSYNC) == 0);
	for (int i = 0; i < NKEYS; i++) {
		snprintf(key, sizeof key, "/h/k%d", i);
		TU_CHECK(sc_put_ex(c, key, buf, tu_blob_make(buf, key, (unsigned)version, 3000),
				   &po) == 0);
	}
	sc_close(c);
}

/* Names in dir starting with "s.shard.corrupt-", sorted; returns how many. */
static int asides(char names[][NAME_MAX + 1], int max)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;

	TU_CHECK(d);
	while ((de = readdir(d)))
		if (!strncmp(de->d_name, "s.shard" SC_SET_ASIDE_INFIX,
			     strlen("s.shard" SC_SET_ASIDE_INFIX))) {
			if (n < max)
				snprintf(names[n], NAME_MAX + 1, "%s", de->d_name);
			n++;
		}
	closedir(d);
	for (int i = 1; i < n && i < max; i++) /* insertion sort: few names */
		for (int j = i; j > 0 && strcmp(names[j - 1], names[j]) > 0; j--) {
			char t[NAME_MAX + 1];
			memcpy(t, names[j], sizeof t);
			memcpy(names[j], names[j - 1], sizeof t);
			memcpy(names[j - 1], t, sizeof t);
		}
	return n;
}

static void clear_asides(void)
{
	char names[16][NAME_MAX + 1];
	int n = asides(names, 16);
	for (int i = 0; i < n && i < 16; i++) {
		char p[2 * PATH_MAX];
		snprintf(p, sizeof p, "%s/%s", dir, names[i]);
		unlink(p);
	}
}

static int same_bytes(const char *path, const unsigned char *want, size_t len)
{
	size_t got_len;
	unsigned char *got = tu_read_file(path, &got_len);
	int same = got_len == len && memcmp(got, want, len) == 0;
	free(got);
	return same;
}

static void write_image(const unsigned char *img, size_t len)
{
	unlink(shard);
	tu_write_file(shard, img, len);
	TU_CHECK(chmod(shard, 0600) == 0);
}

static void reseal(unsigned char *img)
{
	struct sc_disk_header *h = (struct sc_disk_header *)img;
	h->checksum = XXH3_64bits(h, offsetof(struct sc_disk_header, checksum));
}

/* ---- damage makers: change the image of a sound shard; return its length */

static size_t d_header_sum(unsigned char *img, size_t len)
{
	((struct sc_disk_header *)img)->base[10] ^= 1;
	return len;
}

static size_t d_header_size(unsigned char *img, size_t len)
{
	((struct sc_disk_header *)img)->header_size = 512;
	reseal(img);
	return len;
}

static size_t d_byte_order(unsigned char *img, size_t len)
{
	((struct sc_disk_header *)img)->byte_order = 0xdeadbeefu;
	reseal(img);
	return len;
}

static size_t d_metas(unsigned char *img, size_t len)
{
	for (int i = 0; i < SC_META_SLOTS; i++)
		img[sc_meta_off(i) + 3] ^= 0x10;
	return len;
}

static size_t d_trunc_header(unsigned char *img, size_t len)
{
	(void)img, (void)len;
	return 100;
}

static size_t d_trunc_meta(unsigned char *img, size_t len)
{
	(void)img, (void)len;
	return SC_META1_OFF + 20;
}

/* Inside the first key index: below every commit's data_end.  (A cut that
 * an older commit's data fits in opens at that commit: the meta slots keep
 * the last few, docs/FORMAT.md.) */
static size_t d_trunc_data(unsigned char *img, size_t len)
{
	(void)img;
	return len < SC_DATA_OFF + 4096 ? len / 2 : SC_DATA_OFF + 4096;
}

/* ---- files that are not ours to heal ---- */

static size_t n_foreign(unsigned char *img, size_t len)
{
	(void)len;
	memcpy(img, "#!/bin/sh\necho hello\n", 21);
	return 21;
}

static size_t n_empty(unsigned char *img, size_t len)
{
	(void)img, (void)len;
	return 0;
}

static size_t n_part_magic(unsigned char *img, size_t len)
{
	(void)img, (void)len;
	return 4; /* "scsh" */
}

static size_t n_version(unsigned char *img, size_t len)
{
	((struct sc_disk_header *)img)->format_version = SC_FORMAT_VERSION + 1;
	reseal(img);
	d_metas(img, len); /* even with nothing usable for us in it */
	return len;
}

static size_t n_swapped(unsigned char *img, size_t len)
{
	((struct sc_disk_header *)img)->byte_order = __builtin_bswap32(SC_BYTE_ORDER_MARK);
	reseal(img);
	return len;
}

static size_t n_ptr_width(unsigned char *img, size_t len)
{
	((struct sc_disk_header *)img)->ptr_width = sizeof(void *) == 8 ? 4 : 8;
	reseal(img);
	return len;
}

struct dcase {
	const char *name;
	size_t (*make)(unsigned char *img, size_t len);
	int code; /* what a read-only open says */
};

static void heal_case(const struct dcase *dc)
{
	size_t len;
	unsigned char *img;
	sc_cache *c = NULL;
	char names[4][NAME_MAX + 1];
	sc_stats st;
	int rc;

	make_shard(1);
	img = tu_read_file(shard, &len);
	len = dc->make(img, len);
	write_image(img, len);

	rc = sc_open(&c, shard, TAG, SC_RDONLY);
	TAP_EQ(rc, dc->code, "%s: a read-only open reports it (%s)", dc->name, sc_strerror(rc));
	sc_close(c);
	c = NULL;
	tap_ok(same_bytes(shard, img, len) && asides(names, 4) == 0,
	       "%s: ... and changes nothing", dc->name);

	rc = sc_open(&c, shard, TAG, 0);
	TAP_EQ(rc, 0, "%s: a read-write open heals it (%s)", dc->name, sc_strerror(rc));
	if (rc == 0) {
		sc_blob b;
		sc_put_opts po = { .no_source = 1 };
		struct stat sb;
		int ok = sc_get_stats(c, &st) == 0 && st.heals == 1 && st.set_aside == 1 &&
			 st.entries == 0;
		tap_ok(ok, "%s: ... a new empty shard, counted (heals %llu, set aside %llu)",
		       dc->name, (unsigned long long)st.heals, (unsigned long long)st.set_aside);
		tap_ok(sc_verify(c, NULL, NULL, NULL) == 0 &&
			       sc_put_ex(c, "/h/new", "fresh", 5, &po) == 0 &&
			       sc_get(c, "/h/new", &b) == 0 && b.size == 5 &&
			       stat(shard, &sb) == 0 && (sb.st_mode & 0777) == 0600,
		       "%s: ... which verifies, takes puts and serves them, mode 0600", dc->name);
	}
	sc_close(c);
	int n = asides(names, 4);
	char aside[2 * PATH_MAX];
	snprintf(aside, sizeof aside, "%s/%s", dir, n ? names[0] : "");
	tap_ok(n == 1 && same_bytes(aside, img, len),
	       "%s: ... the damaged bytes kept, unchanged, as %s", dc->name, n ? names[0] : "?");
	free(img);
	clear_asides();
}

static void keep_case(const struct dcase *dc, int other_owner)
{
	size_t len;
	unsigned char *img;
	sc_cache *c = NULL;
	char names[4][NAME_MAX + 1];
	int rc;

	make_shard(1);
	img = tu_read_file(shard, &len);
	len = dc->make(img, len);
	write_image(img, len);
	if (other_owner)
		TU_CHECK(chown(shard, 65534, 65534) == 0);
	rc = sc_open(&c, shard, TAG, 0);
	tap_ok(rc == dc->code && c == NULL, "%s: a read-write open refuses it (%s)", dc->name,
	       sc_strerror(rc));
	sc_close(c);
	tap_ok(same_bytes(shard, img, len) && asides(names, 4) == 0,
	       "%s: ... and leaves it alone, nothing set aside", dc->name);
	free(img);
}

/* ---- damage under running handles ---- */

static void live_case(void)
{
	sc_cache *w = NULL, *r = NULL;
	sc_blob old, b;
	sc_put_opts po = { .no_source = 1 };
	sc_stats st;
	char names[4][NAME_MAX + 1];

	make_shard(1);
	TU_CHECK(sc_open(&w, shard, TAG, 0) == 0);
	TU_CHECK(sc_open(&r, shard, TAG, SC_RDONLY) == 0);
	TU_CHECK(sc_get(r, "/h/k3", &old) == 0);
	int fd = open(shard, O_WRONLY | O_CLOEXEC);
	TU_CHECK(fd >= 0);
	/* Every slot's txnid: 0xff bytes (zeros would leave txn 0, which an
	 * SC_NOSYNC-only shard keeps in slot 0 as its durable commit, valid). */
	unsigned char z[8];
	memset(z, 0xff, sizeof z);
	for (int i = 0; i < SC_META_SLOTS; i++)
		TU_CHECK(pwrite(fd, z, sizeof z, sc_meta_off(i)) == sizeof z);
	close(fd);

	int rc = sc_put_ex(w, "/h/after", "after", 5, &po);
	TAP_EQ(rc, 0, "damaged under a running writer: its next put heals and lands (%s)",
	       sc_strerror(rc));
	tap_ok(sc_get_stats(w, &st) == 0 && st.heals == 1 && st.entries == 1 &&
		       asides(names, 4) == 1,
	       "... one copy set aside, the new shard holds just that put");
	tap_ok(sc_get(w, "/h/after", &b) == 0 && b.size == 5 && sc_get(w, "/h/k3", &b) != 0,
	       "... the writer serves the new entry, not the old ones");
	tap_ok(tu_blob_check(old.data, old.size, "/h/k3") == 1,
	       "a reader's blob from before stays readable and intact");
	rc = sc_get(r, "/h/k3", &b);
	tap_ok(rc != 0 || tu_blob_check(b.data, b.size, "/h/k3") == 1,
	       "the reader's lookups meanwhile: a miss or a genuine old blob (%s)",
	       sc_strerror(rc));
	usleep(1100 * 1000); /* a reader re-checks the path once a second */
	rc = sc_get(r, "/h/after", &b);
	tap_ok(rc == 0 && b.size == 5, "after its path check the reader serves the new shard (%s)",
	       sc_strerror(rc));
	sc_close(r);
	sc_close(w);
	clear_asides();
}

/* Finding 12 (docs/RELIABILITY.md): a writer only read the metas before a
 * commit, so with the header damaged under it, its puts went into a file
 * no new handle could open; the next read-write open set that file aside
 * with those puts in it. */
static void live_header_case(void)
{
	sc_cache *w = NULL, *c = NULL;
	sc_put_opts po = { .no_source = 1 };
	sc_blob b;
	char names[4][NAME_MAX + 1];

	make_shard(1);
	TU_CHECK(sc_open(&w, shard, TAG, 0) == 0);
	int fd = open(shard, O_WRONLY | O_CLOEXEC);
	unsigned char x = 0x5a;
	TU_CHECK(fd >= 0 && pwrite(fd, &x, 1, 100) == 1);
	close(fd);
	int rc = sc_put_ex(w, "/h/after", "after", 5, &po);
	TAP_EQ(rc, 0, "header damaged under a running writer: its next put lands (%s)",
	       sc_strerror(rc));
	tap_ok(asides(names, 4) == 1, "... after setting the damaged file aside");
	sc_close(w);
	rc = sc_open(&c, shard, TAG, SC_RDONLY);
	tap_ok(rc == 0 && sc_get(c, "/h/after", &b) == 0 && b.size == 5,
	       "... and a new handle opens the shard and finds the put (%s)", sc_strerror(rc));
	sc_close(c);
	TU_CHECK(sc_open(&c, shard, TAG, 0) == 0);
	tap_ok(sc_get(c, "/h/after", &b) == 0 && asides(names, 4) == 1,
	       "... a read-write open keeps it, nothing more set aside");
	sc_close(c);
	clear_asides();
}

static int racer(void *arg)
{
	int i = (int)(intptr_t)arg;
	sc_cache *c = NULL;
	sc_put_opts po = { .no_source = 1 };
	char key[32];
	snprintf(key, sizeof key, "/race/%d", i);
	if (sc_open(&c, shard, TAG, 0) != 0)
		return 1;
	int rc = sc_put_ex(c, key, key, strlen(key), &po);
	sc_close(c);
	return rc == 0 ? 0 : 2;
}

static void race_case(void)
{
	size_t len;
	unsigned char *img;
	pid_t pid[4];
	char names[4][NAME_MAX + 1];
	int bad = 0;

	make_shard(1);
	img = tu_read_file(shard, &len);
	write_image(img, d_metas(img, len));
	free(img);
	for (int i = 0; i < 4; i++)
		pid[i] = tu_spawn(racer, (void *)(intptr_t)i);
	for (int i = 0; i < 4; i++)
		bad += tu_wait(pid[i]) != 0;
	TAP_EQ(bad, 0, "four writers opening one damaged shard at once all succeed");
	TAP_EQ(asides(names, 4), 1, "... exactly one copy set aside");
	sc_cache *c = NULL;
	sc_blob b;
	int found = 0;
	TU_CHECK(sc_open(&c, shard, TAG, SC_RDONLY) == 0);
	for (int i = 0; i < 4; i++) {
		char key[32];
		snprintf(key, sizeof key, "/race/%d", i);
		found += sc_get(c, key, &b) == 0;
	}
	sc_close(c);
	TAP_EQ(found, 4, "... and the new shard holds every one of their puts");
	clear_asides();
}

static void repeat_case(void)
{
	char names[8][NAME_MAX + 1];
	size_t len = 0;
	unsigned char *img = NULL;

	for (int v = 1; v <= 5; v++) {
		sc_cache *c = NULL;
		free(img);
		make_shard(v);
		img = tu_read_file(shard, &len);
		len = d_metas(img, len);
		write_image(img, len);
		TU_CHECK(sc_open(&c, shard, TAG, 0) == 0);
		sc_close(c);
	}
	int n = asides(names, 8);
	TAP_EQ(n, 3, "five heals in a row keep the newest three copies");
	char newest[2 * PATH_MAX];
	snprintf(newest, sizeof newest, "%s/%s", dir, n ? names[n - 1] : "");
	tap_ok(n > 0 && same_bytes(newest, img, len),
	       "... the last name in order (%s) holds the last damaged shard", n ? names[n - 1] : "?");
	free(img);
	clear_asides();
}

int main(void)
{
	static const struct dcase heal[] = {
		{ "header checksum mismatch", d_header_sum, SC_ECORRUPT },
		{ "unknown header size", d_header_size, SC_ECORRUPT },
		{ "byte-order mark of neither order", d_byte_order, SC_ECORRUPT },
		{ "every meta slot damaged", d_metas, SC_ECORRUPT },
		{ "truncated inside the header", d_trunc_header, SC_ETRUNCATED },
		{ "truncated inside the meta pages", d_trunc_meta, SC_ETRUNCATED },
		{ "truncated inside the data", d_trunc_data, SC_ECORRUPT },
	};
	static const struct dcase keep[] = {
		{ "a foreign file", n_foreign, SC_EMAGIC },
		{ "an empty file", n_empty, SC_ETRUNCATED },
		{ "part of the magic only", n_part_magic, SC_ETRUNCATED },
		{ "another format version", n_version, SC_EVERSION },
		{ "another byte order", n_swapped, SC_EBYTEORDER },
		{ "another pointer width", n_ptr_width, SC_EPTRWIDTH },
	};

	snprintf(dir, sizeof dir, "%s", tu_setup("heal"));
	snprintf(shard, sizeof shard, "%s/s.shard", dir);
	for (size_t i = 0; i < sizeof heal / sizeof heal[0]; i++)
		heal_case(&heal[i]);
	for (size_t i = 0; i < sizeof keep / sizeof keep[0]; i++)
		keep_case(&keep[i], 0);
	if (geteuid() == 0) {
		struct dcase other = { "damaged, owned by someone else", d_metas, SC_EINSECURE };
		keep_case(&other, 1);
	} else {
		tap_ok(0, "a shard owned by someone else: needs root to chown (CI runs as root)");
	}
	live_case();
	live_header_case();
	race_case();
	repeat_case();
	return tap_done();
}
