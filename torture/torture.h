/* torture.h - the parts of sc_torture (crash.c, soak.c) and their options. */
#ifndef SC_TORTURE_H
#define SC_TORTURE_H

struct tt_opts {
	const char *fs_prog; /* scriptcachefs */
	long kills;       /* crash: SIGKILLs to deliver */
	double seconds;   /* soak: duration */
	int readers;      /* soak: reader processes */
	unsigned seed;
	int keep_going;   /* crash: go on after a failed round */
	int keys;         /* crash: 0 rounds of both kinds, 1 replacements only (-R),
			   * 2 new keys only (-N) */
};

int tt_crash(const struct tt_opts *o);
int tt_soak(const struct tt_opts *o);

#endif
