/*
 * pack.h - the packed form of a fuzz input: a shard image with its runs of
 * zero bytes squeezed out.
 *
 * A format 2 shard is mostly zeros (empty index tables, a 64 KiB metadata
 * chunk written as zeros): a one-entry shard is 116 KiB, of which a few
 * hundred bytes say anything.  libFuzzer copies, hashes and mutates every
 * byte of an input, so fuzzing the raw image spends most of its time on
 * zeros.  The targets therefore also take this form:
 *
 *     "SCZ1" body
 *
 * where the body is read byte by byte: a nonzero byte stands for itself; a
 * zero byte is followed by an LEB128 count c and stands for c + 1 zero
 * bytes (a count cut short by the end of the input reads as 0).  Every
 * body decodes to some image, so a byte-level mutation of a packed input is
 * still a shard to test; decoding stops at FUZZ_IMAGE_MAX bytes.
 *
 * An input without the prefix is the raw image, as before (the hand-made
 * inputs in fuzz/corpus/bad/ are raw).
 */
#ifndef SC_FUZZ_PACK_H
#define SC_FUZZ_PACK_H

#include <stddef.h>
#include <stdint.h>

#define FUZZ_PACK_MAGIC     "SCZ1"
#define FUZZ_PACK_MAGIC_LEN 4
/* the largest image a packed input decodes to */
#define FUZZ_IMAGE_MAX      ((size_t)8 << 20)

/* Nonzero if @p data is in the packed form. */
int fuzz_is_packed(const uint8_t *data, size_t size);
/* Decode packed @p data into @p out (room for @p cap bytes, at most
 * FUZZ_IMAGE_MAX are used); returns the image's length. */
size_t fuzz_unpack(const uint8_t *data, size_t size, uint8_t *out, size_t cap);
/* Encode the image @p img of @p n bytes into @p out (room for @p cap);
 * returns the packed length, or 0 if it does not fit. */
size_t fuzz_pack(const uint8_t *img, size_t n, uint8_t *out, size_t cap);

#endif
