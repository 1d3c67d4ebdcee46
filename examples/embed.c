/*
 * embed.c - the README's C snippet as a program: how an interpreter adds
 * the cache.  "Compiling" here is reversing the source text, so that a hit
 * can be told from a miss and checked.
 *
 *   embed SCRIPT...   runs each SCRIPT twice; prints "miss" or "hit"
 *
 * The shard is the default one: set SCRIPTCACHE_PATH to try it elsewhere.
 *
 * Built and run by the tests (tests/examples), so the snippet in README.md
 * cannot rot: keep the two the same.
 */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <scriptcache.h>

typedef struct Code {
	unsigned char *bytes;
	size_t len;
} Code;

static Code *compile_file(const char *path)
{
	Code *code = calloc(1, sizeof(*code));
	FILE *f = fopen(path, "rb");
	long n;

	if (!code || !f || fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || !(code->bytes = malloc((size_t)n + 1)) ||
	    fread(code->bytes, 1, (size_t)n, f) != (size_t)n) {
		fprintf(stderr, "embed: cannot read %s\n", path);
		exit(2);
	}
	fclose(f);
	code->len = (size_t)n;
	for (size_t i = 0; i < code->len / 2; i++) {
		unsigned char t = code->bytes[i];
		code->bytes[i] = code->bytes[code->len - 1 - i];
		code->bytes[code->len - 1 - i] = t;
	}
	return code;
}

static void run_bytecode(const void *data, size_t size)
{
	printf("hit %zu bytes: %.*s\n", size, (int)size, (const char *)data);
}

static void run(Code *code)
{
	printf("miss, compiled %zu bytes: %.*s\n", code->len, (int)code->len,
	       (const char *)code->bytes);
	free(code->bytes);
	free(code);
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: embed SCRIPT...\n");
		return 2;
	}
	printf("libscriptcache %s\n", sc_version(NULL, NULL, NULL));

	/* ---- the README snippet, as is ---- */
	/* Once per process: the default shard, with this interpreter's tag. */
	sc_cache *cache = NULL;
	if (sc_open(&cache, NULL, "myvm 2.1 bytecode v7", 0) != 0)
		cache = NULL;                        /* run without the cache */

	for (int round = 0; round < 2; round++) {
		for (int i = 1; i < argc; i++) {
			char path[PATH_MAX];
			if (!realpath(argv[i], path))
				return 2;
			/* For each script, by canonical path: */
			struct stat st;
			stat(path, &st);                             /* before reading the source */
			sc_blob b;
			if (cache && sc_get(cache, path, &b) == 0) {
				run_bytecode(b.data, b.size);        /* zero-copy, 64-byte aligned */
			} else {
				Code *code = compile_file(path);
				sc_put_opts o = { .source = &st };   /* the stat from before the read */
				if (cache)
					sc_put_ex(cache, path, code->bytes, code->len, &o);
				run(code);
			}
		}
	}
	/* ---- end of the snippet ---- */
	int cached = cache != NULL;
	sc_close(cache);
	return cached ? 0 : 1;
}
