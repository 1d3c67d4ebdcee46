/*
 * sc_torture - crash and concurrency torture for libscriptcache and
 * scriptcachefs (docs/RELIABILITY.md has the runs and their figures).
 *
 *   sc_torture crash [-n KILLS] [-s SEED] [-k] [-R | -N] SCRIPTCACHEFS
 *   sc_torture soak  [-t SECONDS] [-r READERS] SCRIPTCACHEFS
 *
 * Both speak TAP and exit non-zero on any failure.  They need /dev/fuse and
 * fusermount3 (or root); a mount that cannot be made is a failure.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "torture.h"

static int usage(void)
{
	fprintf(stderr,
		"usage: sc_torture crash [-n KILLS] [-s SEED] [-k] [-R | -N] SCRIPTCACHEFS\n"
		"       sc_torture soak [-t SECONDS] [-r READERS] SCRIPTCACHEFS\n"
		"  crash: SIGKILL library writers, mount writers and the daemon (default 50)\n"
		"  soak:  READERS (8) sc_get processes, a library and a mount writer (10 s)\n"
		"  -k go on after a failed round\n"
		"  -R only rounds that replace and remove keys and share blobs,\n"
		"  -N only rounds that put new keys (default: half and half)\n");
	return 2;
}

int main(int argc, char **argv)
{
	struct tt_opts o = {
		.kills = 50,
		.seconds = 10,
		.readers = 8,
		.seed = (unsigned)time(NULL) ^ (unsigned)getpid(),
	};
	if (argc < 2)
		return usage();
	const char *cmd = argv[1];
	int opt;
	optind = 2;
	while ((opt = getopt(argc, argv, "n:s:t:r:kRN")) != -1) {
		switch (opt) {
		case 'n': o.kills = atol(optarg); break;
		case 's': o.seed = (unsigned)strtoul(optarg, NULL, 10); break;
		case 't': o.seconds = atof(optarg); break;
		case 'r': o.readers = atoi(optarg); break;
		case 'k': o.keep_going = 1; break;
		case 'R': o.keys = 1; break;
		case 'N': o.keys = 2; break;
		default: return usage();
		}
	}
	if (optind != argc - 1)
		return usage();
	o.fs_prog = argv[optind];
	if (!strcmp(cmd, "crash"))
		return tt_crash(&o);
	if (!strcmp(cmd, "soak"))
		return tt_soak(&o);
	return usage();
}
