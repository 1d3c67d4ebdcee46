/*
 * pathenc.h - how a cache key (a path) becomes one directory-entry name.
 *
 * The FUSE mount shows every entry as a file in one flat directory, so a
 * key such as "/usr/share/lua/5.4/foo.lua" must become a single name that
 * contains no '/', does not start with '.', survives a shell and a terminal,
 * and maps back to exactly one key.  `scriptcache encode` / `decode` expose
 * the same mapping so users can find an entry's file in the mount.
 *
 * This lives in cli/ for now; fs/ will share it (link pathenc_dep) so that
 * the two can never disagree.  It depends on nothing but libxxhash.
 *
 * The encoding
 *  - Bytes 0x20..0x7E are kept as they are, except:
 *      '/'            -> %2F  (the path separator)
 *      '%'            -> %25  (the escape character itself)
 *      '.' at start   -> %2E  (no hidden names, no "." or "..")
 *      '#' at start   -> %23  (a leading '#' marks a hashed name, below)
 *  - Every other byte (controls, DEL, bytes >= 0x80) -> %XX.
 *  Hex digits are upper case.  The encoding is canonical: each key has one
 *  name, and sc_name_decode() accepts only names the encoder can produce
 *  (no lower-case hex, no needless escapes such as %41), so two different
 *  names never denote the same key.
 *  - If the result would be longer than SC_NAME_MAX (NAME_MAX, 255) bytes,
 *    the name is instead "#" followed by the 32 lower-case hex digits of the
 *    XXH3-128 hash of the key, in canonical big-endian byte order
 *    (XXH128_canonicalFromHash).  Such a name cannot be decoded; to find
 *    its key, encode candidate keys and compare.
 */
#ifndef SC_PATHENC_H
#define SC_PATHENC_H

#include <stddef.h>

/** Longest name a directory entry may have (Linux NAME_MAX). */
#define SC_NAME_MAX 255
/** Length of a hashed fallback name: '#' and 32 hex digits. */
#define SC_NAME_HASHED_LEN 33

/**
 * Encode @p key (@p key_len bytes; keys stored by the library never
 * contain NUL) into @p out, which must hold SC_NAME_MAX + 1 bytes.  The
 * result is NUL-terminated.
 * @return the length of the name (1..SC_NAME_MAX), or -EINVAL if
 *         @p key_len is 0 (an empty key has no name).
 */
int sc_name_encode(const char *key, size_t key_len, char out[SC_NAME_MAX + 1]);

/** Nonzero if @p name (NUL-terminated) has the form of a hashed fallback name. */
int sc_name_is_hashed(const char *name);

/** sc_name_decode() result for a hashed fallback name. */
#define SC_NAME_HASHED 1

/**
 * Decode the NUL-terminated @p name into @p out (@p out_size bytes; the
 * key is never longer than the name, so strlen(name) + 1 always suffices).
 * The key is NUL-terminated and its length stored in *@p key_len.
 *
 * @param[out] why  on -EINVAL, a static one-line reason (may be NULL).
 * @return 0; SC_NAME_HASHED if @p name is a well-formed hashed fallback
 *         name (nothing is written to @p out); -EINVAL if @p name is not a
 *         name the encoder produces (bad or needless escape, a '/' or a
 *         byte outside 0x20..0x7E, a leading '.', an empty name, a malformed
 *         hashed name); -ENAMETOOLONG if it is longer than SC_NAME_MAX;
 *         -ENOBUFS if @p out is too small.
 */
int sc_name_decode(const char *name, char *out, size_t out_size, size_t *key_len,
		   const char **why);

#endif /* SC_PATHENC_H */
