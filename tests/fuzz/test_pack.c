/*
 * test_pack.c - the packed form of fuzz inputs (fuzz/pack.h): images come
 * back byte for byte, hostile packed inputs stay inside the buffer.
 */
#include <stdlib.h>
#include <string.h>

#include "pack.h"
#include "tap.h"

static uint64_t state = 42;

static uint64_t rnd(void)
{
	state ^= state << 13;
	state ^= state >> 7;
	state ^= state << 17;
	return state;
}

/* An image of runs: zeros of every length class, nonzero bytes between. */
static size_t make_image(uint8_t *img, size_t cap)
{
	size_t n = 0;

	while (n < cap) {
		size_t run = (size_t)(rnd() % 5 == 0 ? rnd() % 70000 : rnd() % 200);
		if (run > cap - n)
			run = cap - n;
		if (rnd() & 1) {
			memset(img + n, 0, run);
		} else {
			for (size_t i = 0; i < run; i++)
				img[n + i] = (uint8_t)(1 + rnd() % 255);
		}
		n += run;
	}
	return n;
}

int main(void)
{
	size_t cap = 1 << 20, n, p, u;
	uint8_t *img = malloc(cap), *packed = malloc(2 * cap + 16), *back = malloc(FUZZ_IMAGE_MAX);
	int ok_all = 1;

	if (!img || !packed || !back) {
		tap_diag("out of memory");
		return 1;
	}

	for (int round = 0; round < 50; round++) {
		n = make_image(img, (size_t)(rnd() % cap) + 1);
		p = fuzz_pack(img, n, packed, 2 * cap + 16);
		u = p ? fuzz_unpack(packed, p, back, FUZZ_IMAGE_MAX) : 0;
		if (!p || !fuzz_is_packed(packed, p) || u != n || memcmp(img, back, n) != 0)
			ok_all = 0;
	}
	tap_ok(ok_all, "50 images of zero runs and bytes come back byte for byte");

	memset(img, 0, cap);
	p = fuzz_pack(img, cap, packed, 2 * cap + 16);
	tap_ok(p > 0 && p < 16, "1 MiB of zeros packs into %zu bytes", p);
	tap_ok(fuzz_pack(img + 1, 0, packed, 2 * cap) == FUZZ_PACK_MAGIC_LEN, "an empty image is the magic alone");
	tap_ok(fuzz_pack(img, cap, packed, 3) == 0, "no room for the magic: 0");
	img[0] = 7;
	tap_ok(fuzz_pack(img, 100, packed, 6) == 0, "an encoding that does not fit: 0");

	/* a run far past the cap, and a count cut short by the end */
	{
		static const uint8_t huge[] = { 'S', 'C', 'Z', '1', 0, 0xff, 0xff, 0xff, 0xff, 0x7f, 5 };
		static const uint8_t cut[] = { 'S', 'C', 'Z', '1', 9, 0 };
		static const uint8_t longcount[] = { 'S', 'C', 'Z', '1', 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 3 };

		u = fuzz_unpack(huge, sizeof(huge), back, 4096);
		tap_ok(u == 4096, "a run longer than the buffer stops at its end (%zu)", u);
		u = fuzz_unpack(cut, sizeof(cut), back, 4096);
		tap_ok(u == 2 && back[0] == 9 && back[1] == 0, "a count cut short reads as one zero");
		u = fuzz_unpack(longcount, sizeof(longcount), back, 4096);
		tap_ok(u == 3 && back[1] == 0x80 && back[2] == 3,
		       "a count past five bytes: the rest are literal bytes (%zu)", u);
	}
	free(img);
	free(packed);
	free(back);
	return tap_done();
}
