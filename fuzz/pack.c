/*
 * pack.c - the packed form of fuzz inputs (pack.h).
 */
#include <string.h>

#include "pack.h"

int fuzz_is_packed(const uint8_t *data, size_t size)
{
	return size >= FUZZ_PACK_MAGIC_LEN && memcmp(data, FUZZ_PACK_MAGIC, FUZZ_PACK_MAGIC_LEN) == 0;
}

size_t fuzz_unpack(const uint8_t *data, size_t size, uint8_t *out, size_t cap)
{
	size_t i = FUZZ_PACK_MAGIC_LEN, n = 0;

	if (cap > FUZZ_IMAGE_MAX)
		cap = FUZZ_IMAGE_MAX;
	while (i < size && n < cap) {
		uint64_t run = 0;
		unsigned shift = 0;

		if (data[i] != 0) {
			out[n++] = data[i++];
			continue;
		}
		i++;
		/* LEB128; at most 5 bytes count, the rest of a longer one is
		 * read as literal bytes */
		while (i < size && shift < 35) {
			uint8_t b = data[i++];
			run |= (uint64_t)(b & 0x7f) << shift;
			shift += 7;
			if (!(b & 0x80))
				break;
		}
		run += 1;
		if (run > cap - n)
			run = cap - n;
		memset(out + n, 0, (size_t)run);
		n += (size_t)run;
	}
	return n;
}

/* The end of the run of zeros that starts at @p i (word at a time: the
 * images are mostly zeros, and this runs on every mutation). */
static size_t zeros_end(const uint8_t *img, size_t i, size_t n)
{
	uint64_t w;

	while (n - i >= 8) {
		memcpy(&w, img + i, 8);
		if (w)
			break;
		i += 8;
	}
	while (i < n && img[i] == 0)
		i++;
	return i;
}

size_t fuzz_pack(const uint8_t *img, size_t n, uint8_t *out, size_t cap)
{
	size_t i = 0, o;

	if (cap < FUZZ_PACK_MAGIC_LEN)
		return 0;
	memcpy(out, FUZZ_PACK_MAGIC, FUZZ_PACK_MAGIC_LEN);
	o = FUZZ_PACK_MAGIC_LEN;
	while (i < n) {
		const uint8_t *z;
		size_t lit, end;
		uint64_t run;

		/* literal bytes up to the next zero */
		z = memchr(img + i, 0, n - i);
		lit = (z ? (size_t)(z - img) : n) - i;
		if (lit > cap - o)
			return 0;
		memcpy(out + o, img + i, lit);
		o += lit;
		i += lit;
		if (i == n)
			break;
		/* a run of zeros: 0, then LEB128 of its length - 1 (runs
		 * longer than 2^32 are split) */
		end = zeros_end(img, i, n);
		if (end - i > 0xffffffffu)
			end = i + 0xffffffffu;
		run = end - i - 1;
		i = end;
		if (o >= cap)
			return 0;
		out[o++] = 0;
		do {
			uint8_t b = run & 0x7f;
			run >>= 7;
			if (run)
				b |= 0x80;
			if (o >= cap)
				return 0;
			out[o++] = b;
		} while (run);
	}
	return o;
}
