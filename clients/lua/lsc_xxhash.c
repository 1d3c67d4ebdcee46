/*
 * lsc_xxhash.c - the xxHash functions libscriptcache calls, compiled into
 * scriptcache.so (see meson.build: the module carries the core with it so
 * that `-l scriptcache` costs one dlopen, not three).  xxhash.h is written
 * to be used this way; the symbols stay local to the module (scriptcache.map).
 */
#define XXH_STATIC_LINKING_ONLY
#define XXH_IMPLEMENTATION
#include <xxhash.h>
