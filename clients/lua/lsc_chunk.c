/*
 * lsc_chunk.c - the Lua 5.4 binary chunk, as far as the cache needs it.
 *
 * A chunk dumped with debug information records its source name ("@file")
 * once, in the main function, right after the header and the upvalue
 * count; nested functions inherit it (ldump.c writes NULL for a source
 * equal to the parent's).  The cache key is the canonical path, but Lua
 * names a chunk after the path *as found* on package.path ("./m.lua",
 * "/usr/share/lua/5.4/pl/utils.lua", a symlink ...).  So that tracebacks,
 * error messages and debug.getinfo().source are those of a fresh compile,
 * the loader splices the name this run would have used in place of the
 * stored one while lua_load() reads the blob: no copy of the blob is made.
 *
 * Layout (lundump.c, Lua 5.4):
 *   "\x1bLua" LUAC_VERSION LUAC_FORMAT LUAC_DATA[6]
 *   sizeof(Instruction) sizeof(lua_Integer) sizeof(lua_Number)
 *   LUAC_INT (lua_Integer) LUAC_NUM (lua_Number)
 *   nupvalues (byte)
 *   source: size+1 as a big-endian base-128 varint whose last byte has bit
 *           7 set (0 for "no source"), then size bytes
 *   ... the rest of the main function
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <lauxlib.h>
#include <lua.h>

#include "lsc_int.h"

/* Values lundump.h keeps private; they have not changed within 5.4. */
#define LSC_LUAC_VERSION (((LUA_VERSION_NUM / 100) << 4) | (LUA_VERSION_NUM % 100))
#define LSC_LUAC_FORMAT  0
#define LSC_LUAC_DATA    "\x19\x93\r\n\x1a\n"
#define LSC_LUAC_INT     0x5678
#define LSC_LUAC_NUM     ((lua_Number)370.5)
#define LSC_INSTR_SIZE   4 /* sizeof(Instruction): a 32-bit unsigned in 5.4 */

#define LSC_HEADER_SIZE \
	(4 + 1 + 1 + 6 + 3 + sizeof(lua_Integer) + sizeof(lua_Number))

/* The header this module expects, built from the compile-time constants. */
static void expected_header(unsigned char h[LSC_HEADER_SIZE])
{
	lua_Integer i = LSC_LUAC_INT;
	lua_Number n = LSC_LUAC_NUM;
	size_t p = 0;

	memcpy(h + p, LUA_SIGNATURE, 4), p += 4;
	h[p++] = LSC_LUAC_VERSION;
	h[p++] = LSC_LUAC_FORMAT;
	memcpy(h + p, LSC_LUAC_DATA, 6), p += 6;
	h[p++] = LSC_INSTR_SIZE;
	h[p++] = sizeof(lua_Integer);
	h[p++] = sizeof(lua_Number);
	memcpy(h + p, &i, sizeof(i)), p += sizeof(i);
	memcpy(h + p, &n, sizeof(n));
}

static int buf_writer(lua_State *L, const void *p, size_t sz, void *ud)
{
	lsc_buf *b = ud;

	(void)L;
	if (sz > b->lb_cap - b->lb_len) {
		size_t cap = b->lb_cap ? b->lb_cap : 4096;
		unsigned char *d;

		while (cap - b->lb_len < sz) {
			if (cap > SIZE_MAX / 2)
				return 1;
			cap *= 2;
		}
		if (!(d = realloc(b->lb_data, cap)))
			return 1;
		b->lb_data = d;
		b->lb_cap = cap;
	}
	memcpy(b->lb_data + b->lb_len, p, sz);
	b->lb_len += sz;
	return 0;
}

void lsc_buf_free(lsc_buf *b)
{
	free(b->lb_data);
	b->lb_data = NULL;
	b->lb_len = b->lb_cap = 0;
}

int lsc_dump(lua_State *L, lsc_buf *b)
{
	b->lb_data = NULL;
	b->lb_len = b->lb_cap = 0;
	if (lua_dump(L, buf_writer, b, 0) != 0) {
		lsc_buf_free(b);
		return 1;
	}
	return 0;
}

int lsc_chunk_runtime_ok(lua_State *L)
{
	unsigned char want[LSC_HEADER_SIZE];
	lsc_buf b;
	int ok;

	if (luaL_loadbufferx(L, "", 0, "=scriptcache", "t") != LUA_OK) {
		lua_pop(L, 1);
		return 0;
	}
	ok = lsc_dump(L, &b) == 0;
	lua_pop(L, 1);
	if (!ok)
		return 0;
	expected_header(want);
	ok = b.lb_len > LSC_HEADER_SIZE && memcmp(b.lb_data, want, LSC_HEADER_SIZE) == 0;
	lsc_buf_free(&b);
	return ok;
}

/* Pieces handed to lua_load() one after the other. */
struct splice {
	const char *sp_ptr[4];
	size_t sp_len[4];
	int sp_next;
};

static const char *splice_reader(lua_State *L, void *ud, size_t *size)
{
	struct splice *s = ud;

	(void)L;
	while (s->sp_next < 4) {
		int i = s->sp_next++;

		if (s->sp_len[i] > 0) {
			*size = s->sp_len[i];
			return s->sp_ptr[i];
		}
	}
	*size = 0;
	return NULL;
}

/* ldump.c's dumpSize(): base-128, most significant group first, last byte
 * marked with 0x80.  Returns the number of bytes written to @p out. */
static size_t encode_size(size_t x, unsigned char out[16])
{
	unsigned char tmp[16];
	size_t n = 0;

	do {
		tmp[n++] = x & 0x7f;
		x >>= 7;
	} while (x != 0);
	tmp[0] |= 0x80;
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	return n;
}

int lsc_load_blob(lua_State *L, const void *blob, size_t size, const char *chunkname)
{
	unsigned char want[LSC_HEADER_SIZE], varint[16];
	const unsigned char *p = blob;
	size_t pos = LSC_HEADER_SIZE + 1, x = 0, old_len, name_len = strlen(chunkname);
	struct splice s;
	int b;

	/* The shard is hostile input: check everything before lua_load sees it. */
	expected_header(want);
	if (size <= pos || memcmp(p, want, LSC_HEADER_SIZE) != 0)
		return -1;
	do {
		if (pos >= size || x > (SIZE_MAX >> 7))
			return -1;
		b = p[pos++];
		x = (x << 7) | (size_t)(b & 0x7f);
	} while (!(b & 0x80));
	old_len = x ? x - 1 : 0;
	if (old_len > size - pos)
		return -1;

	s.sp_ptr[0] = blob;
	s.sp_len[0] = LSC_HEADER_SIZE + 1;
	s.sp_ptr[1] = (const char *)varint;
	s.sp_len[1] = encode_size(name_len + 1, varint);
	s.sp_ptr[2] = chunkname;
	s.sp_len[2] = name_len;
	s.sp_ptr[3] = (const char *)p + pos + old_len;
	s.sp_len[3] = size - pos - old_len;
	s.sp_next = 0;
	return lua_load(L, splice_reader, &s, chunkname, "b");
}
