/*
 * render.c - the JSON files of the mount: <entry>/metadata.json and .stats.
 *
 * Keys and fingerprint strings are bytes, not necessarily UTF-8; JSON
 * strings must be UTF-8, so a string that is not valid UTF-8 is given as
 * null with a "<field>_hex" companion holding its bytes in hex.
 */
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "fs_i.h"

static int utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;
	while (p < end) {
		unsigned c = *p++;
		int more;
		if (c < 0x80)
			continue;
		else if (c >= 0xC2 && c <= 0xDF)
			more = 1;
		else if (c >= 0xE0 && c <= 0xEF)
			more = 2;
		else if (c >= 0xF0 && c <= 0xF4)
			more = 3;
		else
			return 0;
		if (end - p < more)
			return 0;
		for (int i = 0; i < more; i++)
			if ((p[i] & 0xC0) != 0x80)
				return 0;
		/* overlongs and surrogates: jansson rejects them, so do we */
		if ((c == 0xE0 && p[0] < 0xA0) || (c == 0xED && p[0] > 0x9F) ||
		    (c == 0xF0 && p[0] < 0x90) || (c == 0xF4 && p[0] > 0x8F))
			return 0;
		p += more;
	}
	return 1;
}

static void set_bytes(json_t *o, const char *field, const char *s, size_t len)
{
	if (utf8_valid(s, len)) {
		json_object_set_new(o, field, json_stringn(s, len));
		return;
	}
	char *hex = malloc(len * 2 + 1);
	if (hex) {
		for (size_t i = 0; i < len; i++)
			snprintf(hex + 2 * i, 3, "%02x", (unsigned char)s[i]);
		char hf[64];
		snprintf(hf, sizeof hf, "%s_hex", field);
		json_object_set_new(o, hf, json_string(hex));
		free(hex);
	}
	json_object_set_new(o, field, json_null());
}

static json_t *iso_time(int64_t sec, uint32_t nsec)
{
	struct tm tm;
	time_t t = (time_t)sec;
	char buf[64];
	if (!gmtime_r(&t, &tm))
		return json_null();
	size_t n = strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, sizeof buf - n, ".%09" PRIu32 "Z", nsec);
	return json_string(buf);
}

static char *dump(json_t *root, size_t *len)
{
	char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(root);
	if (!s)
		return NULL;
	size_t n = strlen(s);
	char *t = realloc(s, n + 2);
	if (!t) {
		free(s);
		return NULL;
	}
	t[n] = '\n';
	t[n + 1] = '\0';
	*len = n + 1;
	return t;
}

char *fs_render_meta(const sc_entry_info *e, int status, const char *name, size_t *len)
{
	json_t *root = json_object(), *src, *fp, *blob;
	char hex[40], buf[SC_MAX_KEY + 1];
	size_t klen;
	const char *key = fs_entry_key(e, buf, &klen);

	if (!key) { /* (base + key too long: the mount never lists it) */
		key = e->key;
		klen = e->key_len;
	}
	set_bytes(root, "key", key, klen);
	json_object_set_new(root, "name", json_string(name));
	json_object_set_new(root, "status", json_string(status == 0 ? "fresh" : "stale"));
	if (status == SC_ESTALE)
		json_object_set_new(root, "stale_reason", json_string("source changed or vanished"));
	else if (status == SC_EWRITERGONE)
		json_object_set_new(root, "stale_reason",
				    json_string("the executable that wrote it was rebuilt or removed"));
	else if (status != 0)
		json_object_set_new(root, "stale_reason", json_string(sc_strerror(status)));

	if (e->has_source) {
		src = json_object();
		set_bytes(src, "path", key, klen);
		json_object_set_new(src, "mtime", iso_time(e->source_mtime_sec, e->source_mtime_nsec));
		json_object_set_new(src, "mtime_sec", json_integer(e->source_mtime_sec));
		json_object_set_new(src, "mtime_nsec", json_integer(e->source_mtime_nsec));
		json_object_set_new(src, "size", json_integer((json_int_t)e->source_size));
	} else {
		src = json_null();
	}
	json_object_set_new(root, "source", src);

	fp = json_object();
	set_bytes(fp, "tag", e->tag, e->tag_len);
	set_bytes(fp, "exe_id", e->exe_id, e->exe_id_len);
	set_bytes(fp, "exe_path", e->exe_path, e->exe_path_len);
	json_object_set_new(root, "fingerprint", fp);

	json_object_set_new(root, "cached_at", iso_time(e->cached_sec, e->cached_nsec));

	blob = json_object();
	json_object_set_new(blob, "size", json_integer((json_int_t)e->blob_size));
	snprintf(hex, sizeof hex, "%016" PRIx64 "%016" PRIx64, e->blob_id[1], e->blob_id[0]);
	json_object_set_new(blob, "checksum", json_string(hex));
	json_object_set_new(blob, "checksum_algorithm", json_string("xxh3-128"));
	json_object_set_new(root, "blob", blob);

	snprintf(hex, sizeof hex, "%016" PRIx64, e->shard_id);
	json_object_set_new(root, "shard_id", json_string(hex));
	json_object_set_new(root, "offset", json_integer((json_int_t)e->offset));
	/* where it comes from: 0 is the mount's own shard (docs/LAYERS.md) */
	json_object_set_new(root, "layer", json_integer(e->layer));
	json_object_set_new(root, "layer_path",
			    e->layer_path ? json_string(e->layer_path) : json_null());
	if (e->key_base) {
		set_bytes(root, "key_base", e->key_base, e->key_base_len);
		set_bytes(root, "stored_key", e->key, e->key_len);
	}
	return dump(root, len);
}

#define LOAD(f) json_integer((json_int_t)__atomic_load_n(&fs->f, __ATOMIC_RELAXED))

/* Every layer of the stack, the own shard first (sc_get_layer_info()). */
static json_t *render_layers(struct fs *fs)
{
	json_t *a = json_array();
	char hex[24];
	for (int i = 0, n = sc_layer_count(fs->fs_cache); i < n; i++) {
		sc_layer_info li;
		if (sc_get_layer_info(fs->fs_cache, i, &li) != 0)
			continue;
		json_t *o = json_object();
		json_object_set_new(o, "layer", json_integer(li.layer));
		json_object_set_new(o, "path", li.path ? json_string(li.path) : json_null());
		json_object_set_new(o, "status", json_string(li.status ? sc_strerror(li.status) : "ok"));
		json_object_set_new(o, "entries", json_integer((json_int_t)li.entries));
		json_object_set_new(o, "file_size", json_integer((json_int_t)li.file_size));
		snprintf(hex, sizeof hex, "%016" PRIx64, li.shard_id);
		json_object_set_new(o, "shard_id", json_string(hex));
		json_object_set_new(o, "relocatable", json_boolean(li.relocatable));
		json_object_set_new(o, "base", li.base ? json_string(li.base) : json_null());
		json_array_append_new(a, o);
	}
	return a;
}

char *fs_render_stats(struct fs *fs, size_t *len)
{
	json_t *root = json_object(), *sh, *me;
	sc_stats s;
	int err;

	json_object_set_new(root, "shard", json_string(sc_path(fs->fs_cache)));
	err = sc_get_stats(fs->fs_cache, &s);
	if (err == 0) {
		sh = json_object();
		json_object_set_new(sh, "entries", json_integer((json_int_t)s.entries));
		json_object_set_new(sh, "live_bytes", json_integer((json_int_t)s.live_bytes));
		json_object_set_new(sh, "dead_bytes", json_integer((json_int_t)s.dead_bytes));
		json_object_set_new(sh, "file_size", json_integer((json_int_t)s.file_size));
		json_object_set_new(sh, "generation", json_integer((json_int_t)s.generation));
		json_object_set_new(sh, "index_slots", json_integer((json_int_t)s.index_slots));
		json_object_set_new(sh, "hits", json_integer((json_int_t)s.hits));
		json_object_set_new(sh, "puts", json_integer((json_int_t)s.puts));
		json_object_set_new(sh, "removes", json_integer((json_int_t)s.removes));
		json_object_set_new(sh, "evictions", json_integer((json_int_t)s.evictions));
		json_object_set_new(sh, "compactions", json_integer((json_int_t)s.compactions));
		json_object_set_new(sh, "heals", json_integer((json_int_t)s.heals));
		json_object_set_new(sh, "set_aside", json_integer((json_int_t)s.set_aside));
		json_object_set_new(sh, "lower_hits", json_integer((json_int_t)s.lower_hits));
		json_object_set_new(sh, "lower_layers", json_integer((json_int_t)s.lower_layers));
		json_object_set_new(sh, "lower_unusable", json_integer((json_int_t)s.lower_unusable));
		json_object_set_new(root, "shard_stats", sh);
	} else {
		json_object_set_new(root, "error", json_string(sc_strerror(err)));
	}

	json_object_set_new(root, "layers", render_layers(fs));

	me = json_object();
	json_object_set_new(me, "lookups", LOAD(st_lookups));
	json_object_set_new(me, "reads", LOAD(st_reads));
	json_object_set_new(me, "read_bytes", LOAD(st_read_bytes));
	json_object_set_new(me, "commits", LOAD(st_commits));
	json_object_set_new(me, "commit_errors", LOAD(st_commit_errors));
	json_object_set_new(me, "evictions", LOAD(st_evictions));
	json_object_set_new(me, "notifications", LOAD(st_notes));
	json_object_set_new(me, "resyncs", LOAD(st_resyncs));
	json_object_set_new(me, "trims", LOAD(st_trims));
	json_object_set_new(me, "tree_rebuilds", LOAD(st_tree_rebuilds));
	json_object_set_new(me, "dist_pyc_hits", LOAD(st_dist_hits));
	json_object_set_new(me, "dist_pyc_refused", LOAD(st_dist_refused));
	json_object_set_new(me, "lower_hits", LOAD(st_lower_hits));
	pthread_mutex_lock(&fs->fs_lock);
	json_object_set_new(me, "inodes", json_integer((json_int_t)fs->fs_icount));
	json_object_set_new(me, "pending_files", json_integer((json_int_t)fs->fs_npending));
	pthread_mutex_unlock(&fs->fs_lock);
	json_object_set_new(root, "daemon", me);
	json_object_set_new(root, "remote", fs_remote_render(fs));

	json_t *o = json_object();
	json_object_set_new(o, "mountpoint", json_string(fs->fs_o.o_mountpoint));
	json_object_set_new(o, "ro", json_boolean(fs->fs_o.o_ro));
	json_object_set_new(o, "commit_on_close", json_boolean(fs->fs_o.o_commit_on_close));
	json_object_set_new(o, "idle_commit_ms", json_integer(fs->fs_o.o_idle_ms));
	json_object_set_new(o, "tag", json_string(fs->fs_o.o_tag));
	json_object_set_new(o, "dist_pyc", json_boolean(!fs->fs_o.o_no_dist_pyc));
	json_object_set_new(root, "options", o);
	return dump(root, len);
}
