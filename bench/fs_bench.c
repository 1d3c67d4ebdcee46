/*
 * fs_bench.c - scriptcachefs against native files (docs/BENCHMARKS.md).
 *
 *   fs_bench [--quick] [--dir DIR] [--cold-dir DIR2] PATH/TO/scriptcachefs
 *
 * Prints, side by side, with the target ratio where docs/FS.md sets one:
 *   - warm open+read+close of 4 KiB / 64 KiB / 1 MiB blobs through the mount
 *     vs the same bytes in a native file on DIR (tmpfs by default);
 *   - first read after mount: the bytes are in memory (the daemon's
 *     mapping of a shard on DIR) but the kernel has never resolved the
 *     names.  The native file read under the same conditions lives in a
 *     directory of its own (<name>/blob, as on the mount) on DIR2, a disk
 *     filesystem (/var/tmp by default), and is read once after the
 *     kernel's dentries were dropped (drop_caches 2, which needs root;
 *     its bytes stay in the page cache).  A second row compares with a
 *     native file on DIR, whose names tmpfs always has resolved: that is
 *     a warm read in all but the first open;
 *   - `ls -l` (readdir + lstat of every entry and its files) of 10,000 entries
 *     vs a native directory of 10,000 subdirectories each holding two files;
 *   - 1,000 new entries written through the mount (mkdir, write a temp
 *     file, rename over blob) vs 1,000 sc_put() calls through the library.
 * Every mount is unmounted before the program exits, also on failure.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "scriptcache.h"

static char g_mnt[4096];
static pid_t g_daemon = -1;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static int is_mounted(const char *path)
{
	FILE *f = fopen("/proc/self/mountinfo", "re");
	char line[8192], mp[4096];
	int found = 0;
	if (!f)
		return 0;
	while (!found && fgets(line, sizeof line, f))
		if (sscanf(line, "%*s %*s %*s %*s %4095s", mp) == 1 && strcmp(mp, path) == 0)
			found = 1;
	fclose(f);
	return found;
}

static void unmount_all(void)
{
	if (g_mnt[0] && is_mounted(g_mnt)) {
		char cmd[8300];
		snprintf(cmd, sizeof cmd, "fusermount3 -u '%s' 2>/dev/null || fusermount3 -uz '%s'",
			 g_mnt, g_mnt);
		if (system(cmd) != 0)
			fprintf(stderr, "fs_bench: could not unmount %s\n", g_mnt);
	}
	if (g_daemon > 0) {
		int st;
		waitpid(g_daemon, &st, 0);
		g_daemon = -1;
	}
}

static void die(const char *what)
{
	fprintf(stderr, "fs_bench: %s: %s\n", what, strerror(errno));
	unmount_all();
	exit(1);
}

static void on_signal(int sig)
{
	(void)sig;
	unmount_all();
	_exit(1);
}

static void mount_fs(const char *daemon, const char *shard)
{
	g_daemon = fork();
	if (g_daemon < 0)
		die("fork");
	if (g_daemon == 0) {
		execl(daemon, daemon, "-f", "-o", "nosync", shard, g_mnt, (char *)NULL);
		_exit(127);
	}
	double t0 = now();
	while (!is_mounted(g_mnt)) {
		int st;
		if (waitpid(g_daemon, &st, WNOHANG) == g_daemon) {
			g_daemon = -1;
			errno = EIO;
			die("scriptcachefs exited before mounting");
		}
		if (now() - t0 > 10) {
			errno = ETIMEDOUT;
			die("mount");
		}
		usleep(2000);
	}
}

static void write_file(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, buf, len) != (ssize_t)len || close(fd) != 0)
		die(path);
}

static char *g_rbuf;

/* Drop the kernel's dentries (and the inodes nothing else holds): 0, or
 * -1 if we may not (not root). */
static int drop_dentries(void)
{
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	int ok = write(fd, "2", 1) == 1;
	close(fd);
	return ok ? 0 : -1;
}

/* One result row: mount, native, ratio and the target ratio ("" if none). */
static void row(const char *label, double m, double n, const char *target, const char *note)
{
	printf("%-34s %12.1f %12.1f %7.2fx  %-7s %s\n", label, m, n, m / n, target, note);
}

/* open+read everything+close; returns bytes read */
static size_t read_whole(const char *path)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	size_t total = 0;
	ssize_t n;
	if (fd < 0)
		die(path);
	while ((n = read(fd, g_rbuf, 2u << 20)) > 0)
		total += (size_t)n;
	close(fd);
	return total;
}

static double warm_us(const char *path, int iters)
{
	for (int i = 0; i < 20; i++)
		read_whole(path);
	double t0 = now();
	for (int i = 0; i < iters; i++)
		read_whole(path);
	return (now() - t0) / iters * 1e6;
}

/* The mount's name of a key (@p out holds SC_NAME_MAX + 1 bytes). */
static void encode_key(const char *key, char *out)
{
	if (sc_name_encode(key, strlen(key), out) < 0)
		out[0] = '\0';
}

static double ls_l(const char *dir)
{
	double t0 = now();
	DIR *d = opendir(dir);
	struct dirent *de;
	char p[8192];
	struct stat st;
	if (!d)
		die(dir);
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, de->d_name);
		if (lstat(p, &st) != 0)
			die(p);
	}
	closedir(d);
	return now() - t0;
}

int main(int argc, char **argv)
{
	const char *daemon = NULL, *base = NULL, *cold_base = "/var/tmp";
	int quick = 0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--quick") == 0)
			quick = 1;
		else if (strcmp(argv[i], "--dir") == 0 && i + 1 < argc)
			base = argv[++i];
		else if (strcmp(argv[i], "--cold-dir") == 0 && i + 1 < argc)
			cold_base = argv[++i];
		else
			daemon = argv[i];
	}
	if (!daemon) {
		fprintf(stderr, "usage: fs_bench [--quick] [--dir DIR] [--cold-dir DIR2] "
			"PATH/TO/scriptcachefs\n");
		return 2;
	}
	if (!base)
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	g_rbuf = malloc(2u << 20);

	char root[2048], shard[4200], native[4200], cmd[8400];
	snprintf(root, sizeof root, "%s/fs_bench.XXXXXX", base);
	if (!mkdtemp(root))
		die("mkdtemp");
	snprintf(shard, sizeof shard, "%s/bench.shard", root);
	snprintf(native, sizeof native, "%s/native", root);
	snprintf(g_mnt, sizeof g_mnt, "%s/mnt", root);
	if (mkdir(native, 0755) || mkdir(g_mnt, 0755))
		die("mkdir");

	sc_cache *c;
	int err = sc_open(&c, shard, "fs_bench", SC_NOSYNC | SC_IGNORE_ENV);
	if (err) {
		fprintf(stderr, "fs_bench: sc_open: %s\n", sc_strerror(err));
		return 1;
	}
	sc_put_opts po;
	memset(&po, 0, sizeof po);
	po.no_source = 1;

	static const size_t sizes[] = { 4096, 65536, 1u << 20 };
	const int nfirst = quick ? 50 : 200;
	const int nls = quick ? 2000 : 10000;
	const int nwrite = quick ? 200 : 1000;
	const int iters = quick ? 2000 : 20000;
	unsigned char *blob = malloc(1u << 20);
	for (size_t i = 0; i < (1u << 20); i++)
		blob[i] = (unsigned char)(i * 2654435761u >> 13);

	/* the native twins read under the first read's conditions: not on
	 * tmpfs, whose dentries cannot be dropped */
	char cold[2100];
	const char *cold_why = NULL;
	struct statfs sfs;
	snprintf(cold, sizeof cold, "%s/fs_bench.XXXXXX", cold_base);
	if (statfs(cold_base, &sfs) != 0 || sfs.f_type == 0x01021994 /* TMPFS_MAGIC */)
		cold_why = "cold dir missing or on tmpfs";
	else if (!mkdtemp(cold))
		cold_why = "cannot make cold dir";
	if (cold_why)
		cold[0] = '\0';

	/* blobs for warm/first reads, and their native twins */
	char key[512], name[1024], path[8400];
	for (int s = 0; s < 3; s++)
		for (int i = 0; i < nfirst; i++) {
			snprintf(key, sizeof key, "/bench/s%zu/f%d.lua", sizes[s], i);
			if ((err = sc_put_ex(c, key, blob, sizes[s], &po)) != 0) {
				fprintf(stderr, "sc_put: %s\n", sc_strerror(err));
				return 1;
			}
			snprintf(path, sizeof path, "%s/s%zu_f%d", native, sizes[s], i);
			write_file(path, blob, sizes[s]);
			if (cold[0]) {
				encode_key(key, name);
				snprintf(path, sizeof path, "%s/%s", cold, name);
				if (mkdir(path, 0755))
					die(path);
				snprintf(path, sizeof path, "%s/%s/blob", cold, name);
				write_file(path, blob, sizes[s]);
			}
		}
	/* the ls -l set: nls entries, and nls native directories with two files */
	char lsdir[4300];
	snprintf(lsdir, sizeof lsdir, "%s/lsnative", root);
	mkdir(lsdir, 0755);
	for (int i = 0; i < nls; i++) {
		snprintf(key, sizeof key, "/ls/entry%05d.lua", i);
		sc_put_ex(c, key, blob, 512, &po);
		snprintf(path, sizeof path, "%s/%%2Fls%%2Fentry%05d.lua", lsdir, i);
		if (mkdir(path, 0755))
			die(path);
		char f[8500];
		snprintf(f, sizeof f, "%s/blob", path);
		write_file(f, blob, 512);
		snprintf(f, sizeof f, "%s/metadata.json", path);
		write_file(f, blob, 400);
	}

	mount_fs(daemon, shard);

	/* the mount is fresh; drop the native twins' names too (the written
	 * bytes stay cached, as the shard's stay in the daemon's mapping) */
	if (cold[0] && drop_dentries() != 0)
		cold_why = "dropping dentries needs root";
	printf("scriptcachefs vs native files (%s), %s run\n\n", base, quick ? "quick" : "full");
	printf("%-34s %12s %12s %8s  %-7s\n", "", "mount", "native", "ratio", "target");

	/* first read: kernel caches empty (fresh mount), daemon warm */
	for (int s = 0; s < 3; s++) {
		double tm = 0, tn = 0, tc = 0;
		for (int i = 0; i < nfirst; i++) {
			snprintf(key, sizeof key, "/bench/s%zu/f%d.lua", sizes[s], i);
			encode_key(key, name);
			snprintf(path, sizeof path, "%s/%s/blob", g_mnt, name);
			double t0 = now();
			if (read_whole(path) != sizes[s])
				die("short read (mount)");
			tm += now() - t0;
			if (!cold_why) {
				snprintf(path, sizeof path, "%s/%s/blob", cold, name);
				t0 = now();
				if (read_whole(path) != sizes[s])
					die("short read (native, cold names)");
				tc += now() - t0;
			}
			snprintf(path, sizeof path, "%s/s%zu_f%d", native, sizes[s], i);
			t0 = now();
			if (read_whole(path) != sizes[s])
				die("short read (native)");
			tn += now() - t0;
		}
		char label[64], note[160];
		snprintf(label, sizeof label, "first read %zu KiB (us)", sizes[s] / 1024);
		if (!cold_why) {
			snprintf(note, sizeof note, "native: names cold, bytes cached (%s)", cold_base);
			row(label, tm / nfirst * 1e6, tc / nfirst * 1e6, "<=3x", note);
			row("  same, native names cached (us)", tm / nfirst * 1e6,
			    tn / nfirst * 1e6, "", "native: first open on tmpfs");
		} else {
			snprintf(note, sizeof note, "native: first open on tmpfs; no cold row: %s",
				 cold_why);
			row(label, tm / nfirst * 1e6, tn / nfirst * 1e6, "<=3x", note);
		}
	}
	for (int s = 0; s < 3; s++) {
		snprintf(key, sizeof key, "/bench/s%zu/f0.lua", sizes[s]);
		encode_key(key, name);
		snprintf(path, sizeof path, "%s/%s/blob", g_mnt, name);
		int it = sizes[s] >= (1u << 20) ? iters / 10 : iters;
		double tm = warm_us(path, it);
		snprintf(path, sizeof path, "%s/s%zu_f0", native, sizes[s]);
		double tn = warm_us(path, it);
		char label[64];
		snprintf(label, sizeof label, "warm read %zu KiB (us)", sizes[s] / 1024);
		row(label, tm, tn, "<=1.3x", "");
	}

	/* ls -l: readdir + lstat of each entry */
	double lm1 = ls_l(g_mnt), ln1 = ls_l(lsdir);
	double lm2 = ls_l(g_mnt), ln2 = ls_l(lsdir);
	char label[64];
	snprintf(label, sizeof label, "ls -l %d entries, first (ms)", nls + 3 * nfirst);
	row(label, lm1 * 1e3, ln1 * 1e3, "<=2x", "");
	snprintf(label, sizeof label, "ls -l %d entries, again (ms)", nls + 3 * nfirst);
	row(label, lm2 * 1e3, ln2 * 1e3, "", "");

	/* writes: mkdir + temp + rename through the mount vs sc_put */
	double t0 = now();
	for (int i = 0; i < nwrite; i++) {
		snprintf(key, sizeof key, "/w/mount%05d.lua", i);
		encode_key(key, name);
		snprintf(path, sizeof path, "%s/%s", g_mnt, name);
		if (mkdir(path, 0755))
			die(path);
		char tmp[8500], dst[8500];
		snprintf(tmp, sizeof tmp, "%s/.tmp", path);
		snprintf(dst, sizeof dst, "%s/blob", path);
		write_file(tmp, blob, 4096);
		if (rename(tmp, dst))
			die(dst);
	}
	double wm = now() - t0;
	t0 = now();
	for (int i = 0; i < nwrite; i++) {
		snprintf(key, sizeof key, "/w/lib%05d.lua", i);
		if (sc_put_ex(c, key, blob, 4096, &po))
			die("sc_put");
	}
	double wl = now() - t0;
	snprintf(label, sizeof label, "write %d new 4 KiB entries (ms)", nwrite);
	row(label, wm * 1e3, wl * 1e3, "<=8x", "native: sc_put() of the same bytes");

	unmount_all();
	sc_close(c);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	if (system(cmd) != 0)
		fprintf(stderr, "fs_bench: could not remove %s\n", root);
	if (cold[0]) {
		snprintf(cmd, sizeof cmd, "rm -rf '%s'", cold);
		if (system(cmd) != 0)
			fprintf(stderr, "fs_bench: could not remove %s\n", cold);
	}
	free(blob);
	free(g_rbuf);
	return 0;
}
