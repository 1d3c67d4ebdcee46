/* external.c - a program outside the tree, built against the *installed*
 * libscriptcache through pkg-config (tests/install/test_install.sh):
 * put a blob for a real source file, get it back, compare. */
#include <stdio.h>
#include <string.h>

#include <scriptcache.h>

int main(int argc, char **argv)
{
	static const char bytes[] = "compiled bytes";
	sc_cache *c = NULL;
	sc_blob b;
	int err, ret = 1;

	if (argc != 3) {
		fprintf(stderr, "usage: external SHARD SOURCE\n");
		return 2;
	}
	if ((err = sc_open(&c, argv[1], "external 1", 0)) != 0) {
		fprintf(stderr, "sc_open: %s\n", sc_strerror(err));
		return 1;
	}
	if ((err = sc_put(c, argv[2], bytes, sizeof bytes)) != 0)
		fprintf(stderr, "sc_put: %s\n", sc_strerror(err));
	else if ((err = sc_get(c, argv[2], &b)) != 0)
		fprintf(stderr, "sc_get: %s\n", sc_strerror(err));
	else if (b.size != sizeof bytes || memcmp(b.data, bytes, b.size) != 0)
		fprintf(stderr, "sc_get: wrong bytes\n");
	else {
		printf("put/get ok (libscriptcache %s)\n", SC_VERSION_STRING);
		ret = 0;
	}
	sc_close(c);
	return ret;
}
