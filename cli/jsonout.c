/*
 * jsonout.c - JSON rendering of entries; see jsonout.h.
 *
 * jansson's setters that "steal" (json_object_set_new) accept NULL and
 * then fail, so building an object never leaks on allocation failure; a
 * failed build shows up as a NULL or incomplete root, which jo_print
 * refuses rather than printing half a document.
 */
#include "jsonout.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "humanfmt.h"

json_t *jo_bytes(const char *s, size_t len)
{
	json_t *j = json_stringn(s, len);

	return j ? j : json_null();
}

json_t *jo_u64(uint64_t v)
{
	return json_integer(v > (uint64_t)INT64_MAX ? INT64_MAX : (json_int_t)v);
}

json_t *jo_entry(const sc_entry_info *e, int status)
{
	char name[SC_NAME_MAX + 1];
	char sum[33];
	json_t *o = json_object();
	int bad = 0;

	if (!o)
		return NULL;
	if (sc_name_encode(e->key, e->key_len, name) < 0)
		name[0] = '\0';
	snprintf(sum, sizeof(sum), "%016" PRIx64 "%016" PRIx64, e->blob_id[1], e->blob_id[0]);

	bad |= json_object_set_new(o, "key", jo_bytes(e->key, e->key_len));
	bad |= json_object_set_new(o, "name", json_string(name));
	bad |= json_object_set_new(o, "status", json_string(hf_status_name(status)));
	bad |= json_object_set_new(o, "size", jo_u64(e->blob_size));
	bad |= json_object_set_new(o, "cached", json_integer(e->cached_sec));
	bad |= json_object_set_new(o, "cached_nsec", json_integer(e->cached_nsec));
	bad |= json_object_set_new(o, "has_source", json_boolean(e->has_source));
	if (e->has_source) {
		bad |= json_object_set_new(o, "source_mtime", json_integer(e->source_mtime_sec));
		bad |= json_object_set_new(o, "source_mtime_nsec",
					   json_integer(e->source_mtime_nsec));
		bad |= json_object_set_new(o, "source_size", jo_u64(e->source_size));
	}
	if (e->has_source_hash) {
		char h[33];
		/* canonical order, as the action key takes it: high half first */
		snprintf(h, sizeof(h), "%016" PRIx64 "%016" PRIx64, e->source_hash[1],
			 e->source_hash[0]);
		bad |= json_object_set_new(o, "source_hash", json_string(h));
		if (!e->has_source)
			bad |= json_object_set_new(o, "source_size", jo_u64(e->source_size));
	}
	bad |= json_object_set_new(o, "tag", jo_bytes(e->tag, e->tag_len));
	bad |= json_object_set_new(o, "exe_id", jo_bytes(e->exe_id, e->exe_id_len));
	bad |= json_object_set_new(o, "exe_path", jo_bytes(e->exe_path, e->exe_path_len));
	/* Hex string (XXH3-128, high half first, as xxhsum prints it). */
	bad |= json_object_set_new(o, "blob_id", json_string(sum));
	bad |= json_object_set_new(o, "offset", jo_u64(e->offset));
	bad |= json_object_set_new(o, "layer", json_integer(e->layer));
	bad |= json_object_set_new(o, "layer_path",
				   e->layer_path ? jo_bytes(e->layer_path, strlen(e->layer_path))
						 : json_null());
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

int jo_print(json_t *root)
{
	int rc = 0;

	if (!root)
		return -ENOMEM;
	if (json_dumpf(root, stdout, JSON_INDENT(2) | JSON_ENSURE_ASCII) < 0)
		rc = -EIO;
	else if (fputc('\n', stdout) == EOF)
		rc = -EIO;
	json_decref(root);
	return rc;
}
