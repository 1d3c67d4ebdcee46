/*
 * v1_fixture.h - what the format-1 shard tests/core/data/v1.shard holds.
 *
 * Shared by make_v1_fixture.c, which wrote the fixture with a format-1
 * library, and test_upgrade.c, which checks that a later library carries
 * these entries over.  Everything an entry records is fixed here except
 * what the library takes from the clock and the machine (the time it was
 * cached, the writer's executable identity); the generator writes those to
 * tests/core/data/v1.expect.  Blob bytes are not stored anywhere: both
 * programs make them with fx_blob().
 *
 * Changing anything in this file means regenerating the fixture with a
 * format-1 library (see make_v1_fixture.c).
 */
#ifndef SC_V1_FIXTURE_H
#define SC_V1_FIXTURE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Two interpreters' tags. */
#define FX_TAG_LUA "lua 5.4 bytecode 0x54/0"
#define FX_TAG_PYC "cpython 3.12 pyc 3531"

/* Two writers (sc_put_opts.exe_path): files present on any Linux system,
 * so that the fixture does not record the generator's build directory. */
#define FX_EXE_SH  "/bin/sh"
#define FX_EXE_ENV "/usr/bin/env"

/* The format-1 header: magic, then format_version (uint32, host order). */
#define FX_MAGIC "scshard\n"
#define FX_VERSION_OFF 8

struct fx_entry {
	const char *key;
	const char *tag;
	const char *exe_path;
	int no_source;        /* put with sc_put_opts.no_source */
	int64_t mtime_sec;    /* otherwise put with this source stat */
	uint32_t mtime_nsec;
	uint64_t src_size;
	uint64_t seed;        /* blob bytes: fx_blob(seed, len) */
	size_t len;
};

/* The live entries, in index order. */
enum { FX_MAIN, FX_UTIL, FX_ODD, FX_EMPTY, FX_BIG, FX_DUP, FX_NLIVE };

#define FX_BIG_LEN ((size_t)100 * 1024 + 37)

static const struct fx_entry fx_live[FX_NLIVE] = {
	/* replaced once: the file also holds fx_old_main, now dead */
	[FX_MAIN] = { "/usr/share/lua/5.4/app/main.lua", FX_TAG_LUA, FX_EXE_SH, 0,
		      1700000000, 123456789, 4321, 0x6d61696e2d7632ull, 1500 },
	/* a source mtime before 1970: negative seconds */
	[FX_UTIL] = { "/usr/share/lua/5.4/app/util.lua", FX_TAG_LUA, FX_EXE_SH, 0,
		      -31536000, 999999999, 77, 0x7368617265642121ull, 700 },
	/* spaces, '%', two- and three-byte UTF-8 */
	[FX_ODD] = { "/home/zo\xc3\xab/My Scripts/na\xc3\xafve caf\xc3\xa9 \xe2\x98\x95 100%.lua",
		     FX_TAG_LUA, FX_EXE_ENV, 0, 1234567890, 0, 0, 0x6f6464ull, 333 },
	[FX_EMPTY] = { "/srv/app/__pycache__/empty.cpython-312.pyc", FX_TAG_PYC, FX_EXE_ENV, 1,
		       0, 0, 0, 0x656d707479ull, 0 },
	[FX_BIG] = { "/srv/app/__pycache__/big.cpython-312.pyc", FX_TAG_PYC, FX_EXE_SH, 1,
		     0, 0, 0, 0x626967ull, FX_BIG_LEN },
	/* the same bytes as FX_UTIL (same seed and length), another tag and writer */
	[FX_DUP] = { "/srv/app/__pycache__/dup.cpython-312.pyc", FX_TAG_PYC, FX_EXE_ENV, 1,
		     0, 0, 0, 0x7368617265642121ull, 700 },
};

/* The first version of FX_MAIN, replaced by fx_live[FX_MAIN]. */
static const struct fx_entry fx_old_main = {
	"/usr/share/lua/5.4/app/main.lua", FX_TAG_PYC, FX_EXE_ENV, 0,
	1600000000, 1, 1200, 0x6d61696e2d7631ull, 1200
};

/* Put, then removed: a dead record and a tombstone in the index. */
static const struct fx_entry fx_removed = {
	"/usr/share/lua/5.4/app/old.lua", FX_TAG_LUA, FX_EXE_SH, 0,
	1650000000, 500, 900, 0x72656d6f766564ull, 900
};

/* Fill buf[0..e->len) with the entry's blob bytes (splitmix64 of the seed). */
static inline void fx_blob(const struct fx_entry *e, unsigned char *buf)
{
	uint64_t s = e->seed;

	for (size_t i = 0; i < e->len; i += 8) {
		uint64_t z = (s += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		z ^= z >> 31;
		for (size_t j = 0; j < 8 && i + j < e->len; j++)
			buf[i + j] = (unsigned char)(z >> (8 * j)); /* same on any byte order */
	}
}

#endif
