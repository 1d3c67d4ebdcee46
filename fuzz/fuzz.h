/*
 * fuzz.h - what every fuzz target provides and what they share.
 *
 * A target is one file that defines fuzz_run() (the body) and
 * LLVMFuzzerTestOneInput() (a one-line wrapper).  The same object is linked
 * two ways:
 *  - with libFuzzer by fuzz/run.sh (clang -fsanitize=fuzzer,...), where the
 *    library's sources are compiled in so coverage reaches them;
 *  - with fuzz/replay.c, a plain main() that runs files (the "standalone
 *    driver"), built by meson as the regression test tests/fuzz, so the
 *    corpus runs in the normal and the ASan/UBSan builds without libFuzzer.
 *
 * A broken invariant (a hit whose bytes fail their checksum, a key that is
 * not the one asked for, ...) calls fuzz_fail(), which aborts: libFuzzer and
 * the replay driver both report it as a crash with the message on stderr.
 */
#ifndef SC_FUZZ_H
#define SC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

/* What one run saw; the replay driver compares it with the expectation a
 * hand-made input's file name states (see replay.c). */
struct fuzz_outcome {
	int shard_target;       /* 1: open_rc / verify_rc below are meaningful */
	int open_rc;            /* sc_open() */
	int verify_rc;          /* sc_verify(), 1 if it did not run */
	unsigned long entries;  /* entries sc_foreach() reported */
	unsigned long hits;     /* sc_get() hits */
	unsigned long corrupt;  /* lookups that missed with SC_ECORRUPT */
};

/* The body of a target.  Returns 0 (libFuzzer ignores it). */
int fuzz_run(const uint8_t *data, size_t size, struct fuzz_outcome *out);
extern const char fuzz_target_name[];

/* ---- fuzz_common.c ---- */

/* The scratch shard path: a file in a private directory made once per
 * process (under /dev/shm when it exists: fsync there is free), removed at
 * exit.  Never returns NULL (aborts if the directory cannot be made). */
const char *fuzz_scratch_path(void);
/* The shard image an input stands for: @p data itself, or, for an input
 * in the packed form (pack.h), its decoding in a buffer that the next call
 * reuses.  Sets *n to the image's length. */
const uint8_t *fuzz_image(const uint8_t *data, size_t size, size_t *n);
/* Write @p data to the scratch path: O_TRUNC, mode 0600, owned by us, so
 * sc_open() accepts it as ours.  Aborts on I/O errors (not a finding). */
void fuzz_write_scratch(const uint8_t *data, size_t size);
/* Report a broken invariant and abort. */
void fuzz_fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
/* Read every byte of [p, p+n): a pointer the library handed out that
 * reaches past the file faults here (SIGBUS/SIGSEGV), not somewhere later. */
uint64_t fuzz_touch(const void *p, size_t n);
/* Nonzero if @p rc is a code the library documents: 0, an SC_E* code or a
 * negated errno value. */
int fuzz_known_rc(int rc);
/* Nonzero if a freshness check may open @p path (len bytes, not
 * NUL-terminated): it names nothing, or a regular file.  A fuzzed shard
 * can name any file as the writer's executable, and any file as the source
 * whose bytes an entry with a source hash has re-hashed when its mtime
 * moved; opening device nodes (a watchdog, a tape, a FIFO that blocks) as
 * root is not a test. */
int fuzz_path_safe(const char *path, size_t len);
/* The freshness checks of @p e may open only safe paths: its writer's
 * executable and, for an entry with a source hash, its key. */
struct sc_entry_info;
int fuzz_entry_safe(const struct sc_entry_info *e);


/* The key the write target puts (gen_corpus crafts inputs around it). */
#define FUZZ_NEW_KEY "/fuzz/new-key-put-by-the-write-target"

#endif
