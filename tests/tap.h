/*
 * tap.h - a tiny Test Anything Protocol emitter for the C tests.
 * Each test program prints "1..N" at the end (plan after tests) and
 * exits non-zero if anything failed, so meson's TAP parser and a human
 * running the program both see failures.
 */
#ifndef SC_TAP_H
#define SC_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

static int tap_n, tap_failed;

static inline int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;
	tap_n++;
	if (!cond)
		tap_failed++;
	printf("%sok %d - ", cond ? "" : "not ", tap_n);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
	fflush(stdout);
	return cond;
}

/* Compare two integers and show both on failure. */
#define TAP_EQ(got, want, ...)                                                  \
	do {                                                                    \
		long long tap_g_ = (long long)(got), tap_w_ = (long long)(want); \
		if (!tap_ok(tap_g_ == tap_w_, __VA_ARGS__))                     \
			printf("#   got %lld, want %lld (%s)\n", tap_g_, tap_w_, #got); \
	} while (0)

static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;
	printf("# ");
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	printf("\n");
}

/* Print the plan and return the exit status for main(). */
static inline int tap_done(void)
{
	printf("1..%d\n", tap_n);
	if (tap_n == 0) {
		printf("# no tests ran\n");
		return 1;
	}
	return tap_failed ? 1 : 0;
}

#endif
