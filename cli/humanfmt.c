/*
 * humanfmt.c - sizes, ages and terminal-safe keys for human output.
 */
#include "humanfmt.h"

#include "scriptcache.h"

const char *hf_size(uint64_t bytes, char buf[HF_SIZE_LEN])
{
	static const char *const units[] = { "KiB", "MiB", "GiB", "TiB", "PiB", "EiB" };
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, HF_SIZE_LEN, "%u B", (unsigned)bytes);
		return buf;
	}
	v /= 1024;
	/* 1023.96 KiB would print as "1024.0 KiB": step up before rounding does. */
	while (v >= 1023.95 && u + 1 < sizeof(units) / sizeof(units[0])) {
		v /= 1024;
		u++;
	}
	snprintf(buf, HF_SIZE_LEN, "%.1f %s", v, units[u]);
	return buf;
}

const char *hf_age(int64_t then_sec, int64_t now_sec, char buf[HF_AGE_LEN])
{
	int64_t d = now_sec - then_sec;

	/* A clock stepped backwards, or a shard from another machine. */
	if (d < 0)
		snprintf(buf, HF_AGE_LEN, "in future");
	else if (d < 60)
		snprintf(buf, HF_AGE_LEN, "%llds ago", (long long)d);
	else if (d < 3600)
		snprintf(buf, HF_AGE_LEN, "%lldm ago", (long long)(d / 60));
	else if (d < 86400)
		snprintf(buf, HF_AGE_LEN, "%lldh ago", (long long)(d / 3600));
	else
		snprintf(buf, HF_AGE_LEN, "%lldd ago", (long long)(d / 86400));
	return buf;
}

void hf_put_key(FILE *f, const char *key, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)key[i];

		/*
		 * C0 controls, DEL, and the C1 controls as UTF-8 spells them
		 * (C2 80..C2 9F: a UTF-8 terminal takes C2 9B as CSI).
		 */
		if (c < 0x20 || c == 0x7f) {
			fprintf(f, "\\x%02X", c);
		} else if (c == 0xc2 && i + 1 < len && (unsigned char)key[i + 1] >= 0x80 &&
			   (unsigned char)key[i + 1] <= 0x9f) {
			fprintf(f, "\\xC2\\x%02X", (unsigned char)key[i + 1]);
			i++;
		} else {
			putc(c, f);
		}
	}
}

const char *hf_status_name(int status)
{
	switch (status) {
	case 0:
		return "fresh";
	case SC_ESTALE:
		return "stale";
	case SC_EWRITERGONE:
		return "writer-gone";
	default:
		return "unknown";
	}
}
