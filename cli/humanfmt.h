/*
 * humanfmt.h - small formatting helpers for the tool's human output.
 * JSON output never uses them: scripts get exact numbers.
 */
#ifndef SC_HUMANFMT_H
#define SC_HUMANFMT_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define HF_SIZE_LEN 16
#define HF_AGE_LEN 32

/* "512 B", "16.0 KiB", "1.2 MiB" (binary units, one decimal). Returns buf. */
const char *hf_size(uint64_t bytes, char buf[HF_SIZE_LEN]);

/* How long ago @p then_sec was: "42s ago", "5m ago", "3h ago", "12d ago". */
const char *hf_age(int64_t then_sec, int64_t now_sec, char buf[HF_AGE_LEN]);

/*
 * Print @p len bytes of a key so that it cannot drive the terminal:
 * control bytes, DEL and UTF-8-encoded C1 controls become \xNN.  Keys
 * come from the shard, which is hostile input like any file.
 */
void hf_put_key(FILE *f, const char *key, size_t len);

/* "fresh", "stale", "writer-gone" for a sc_entry_status() result. */
const char *hf_status_name(int status);

#endif /* SC_HUMANFMT_H */
