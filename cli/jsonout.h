/*
 * jsonout.h - JSON output of the tool (via jansson, which does the escaping).
 *
 * Byte strings from the shard (keys, tags, paths) need not be UTF-8; JSON
 * strings must be.  Such a field is written as null, and every entry also
 * carries "name", its mount name (sc_name_encode()), which is always ASCII.
 */
#ifndef SC_JSONOUT_H
#define SC_JSONOUT_H

#include <jansson.h>

#include "scriptcache.h"

/* A JSON string of @p len bytes, or JSON null if they are not valid UTF-8. */
json_t *jo_bytes(const char *s, size_t len);

/* A uint64 as a JSON integer (jansson's are signed 64-bit; larger values saturate). */
json_t *jo_u64(uint64_t v);

/* One entry as ls --json prints it; @p status from sc_entry_status(). */
json_t *jo_entry(const sc_entry_info *e, int status);

/*
 * Print @p root (stealing the reference, NULL allowed: an allocation
 * failed) and a newline to stdout.  Returns 0 or -ENOMEM / -EIO.
 */
int jo_print(json_t *root);

#endif /* SC_JSONOUT_H */
