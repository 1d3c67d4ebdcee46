/*
 * options.c - mount(8)'s calling convention, translated for scriptcachefs.
 *
 * mount(8) runs  /sbin/mount.scriptcachefs SHARD DIR [-sfnv] [-o OPTS]
 * (plus "-t fuse.scriptcachefs" when it finds us as mount.fuse.scriptcachefs).
 * Its -f means "fake" and -n "no mtab": they are not libfuse's -f
 * (foreground) and must never reach the daemon.  Every -o option lands in one
 * of four classes, in the table below:
 *
 *   OWNED     mount(8)/fstab's business (noauto, user, nofail, x-*, ...):
 *             dropped.  "rw" is dropped too: it is the default.
 *   NOOP      a generic VFS option whose value is the kernel default and
 *             that libfuse 3 rejects as unknown (relatime, ...): dropped.
 *   NOFUSE    a generic VFS option libfuse 3 cannot apply (strictatime,
 *             lazytime, ...): an error, or dropped with a warning under -s.
 *   HELPER    options of this helper (nonempty, setuid=USER): consumed.
 *
 * Everything else (ro, noexec, allow_other, tag=..., options added to
 * scriptcachefs later) is passed on unchanged, so that the daemon stays the
 * one authority on its own options.  Two exceptions: the paths of
 * lower=PATH[:PATH...] are made absolute here, relative to the caller's
 * directory, as SHARD is (setuid= moves the daemon elsewhere); and so is
 * a relative remote_exe=PATH, while an absolute one is passed as written:
 * it is the executable's name that the daemon records in the entries it
 * fetches, as the interpreter that runs it would.
 */
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mh_i.h"

enum opt_class { OC_PASS, OC_OWNED, OC_NOOP, OC_NOFUSE, OC_HELPER };

struct opt_rule {
	const char *or_name;  /* exact name, or prefix when it ends in '=' or '-' */
	enum opt_class or_class;
};

static const struct opt_rule opt_rules[] = {
	/* mount(8), fstab and systemd options (mount(8) "FILESYSTEM-INDEPENDENT
	 * MOUNT OPTIONS"); libmount strips some itself, not all. */
	{ "defaults", OC_OWNED },  { "auto", OC_OWNED },   { "noauto", OC_OWNED },
	{ "user", OC_OWNED },      { "user=", OC_OWNED },  { "nouser", OC_OWNED },
	{ "users", OC_OWNED },     { "owner", OC_OWNED },  { "noowner", OC_OWNED },
	{ "group", OC_OWNED },     { "nogroup", OC_OWNED }, { "nofail", OC_OWNED },
	{ "_netdev", OC_OWNED },   { "x-", OC_OWNED },     { "comment=", OC_OWNED },
	{ "helper=", OC_OWNED },   { "rw", OC_OWNED },
	/* Kernel defaults that libfuse 3.14 does not parse. */
	{ "relatime", OC_NOOP },   { "nostrictatime", OC_NOOP }, { "diratime", OC_NOOP },
	{ "nolazytime", OC_NOOP }, { "noiversion", OC_NOOP },   { "nomand", OC_NOOP },
	{ "loud", OC_NOOP },       { "symfollow", OC_NOOP },
	/* Generic options a FUSE mount made by libfuse 3.14 cannot have. */
	{ "strictatime", OC_NOFUSE }, { "norelatime", OC_NOFUSE }, { "lazytime", OC_NOFUSE },
	{ "nodiratime", OC_NOFUSE },  { "iversion", OC_NOFUSE },   { "mand", OC_NOFUSE },
	{ "silent", OC_NOFUSE },      { "nosymfollow", OC_NOFUSE },
	/* This helper's own. */
	{ "nonempty", OC_HELPER },    { "setuid=", OC_HELPER },
	{ NULL, OC_PASS }
};

void mh_err(const char *fmt, ...)
{
	va_list ap;
	fputs("mount.scriptcachefs: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

static enum opt_class classify(const char *opt)
{
	for (const struct opt_rule *r = opt_rules; r->or_name; r++) {
		size_t n = strlen(r->or_name);
		char last = r->or_name[n - 1];
		if (last == '=' || last == '-') {
			if (strncmp(opt, r->or_name, n) == 0)
				return r->or_class;
		} else if (strcmp(opt, r->or_name) == 0) {
			return r->or_class;
		}
	}
	return OC_PASS;
}

/* Append opt to the comma-separated list *list. */
static int list_add(char **list, const char *opt)
{
	size_t old = *list ? strlen(*list) : 0;
	char *p = realloc(*list, old + 1 + strlen(opt) + 1);
	if (!p)
		return -1;
	if (old)
		p[old++] = ',';
	strcpy(p + old, opt);
	*list = p;
	return 0;
}

/* lower=A:B with each item made absolute (into the list *list). */
static int add_lower_opt(char **list, const char *opt)
{
	char *copy = strdup(opt + strlen("lower=")), *save = NULL, *out = strdup("lower=");
	char abs[PATH_MAX];
	int ret = 0, first = 1;
	if (!copy || !out) {
		ret = MH_EXIT_SYSERR;
		goto done;
	}
	for (char *item = strtok_r(copy, ":", &save); item; item = strtok_r(NULL, ":", &save)) {
		int err = mh_absolute(item, abs, sizeof abs);
		if (err) {
			mh_err("lower=%s: %s", item, strerror(-err));
			ret = MH_EXIT_USAGE;
			goto done;
		}
		char *n = realloc(out, strlen(out) + 1 + strlen(abs) + 1);
		if (!n) {
			ret = MH_EXIT_SYSERR;
			goto done;
		}
		out = n;
		if (!first)
			strcat(out, ":");
		strcat(out, abs);
		first = 0;
	}
	if (list_add(list, out))
		ret = MH_EXIT_SYSERR;
done:
	free(copy);
	free(out);
	return ret;
}

/* remote_exe=PATH, a relative PATH made absolute (into the list *list). */
static int add_remote_exe_opt(char **list, const char *opt)
{
	const char *path = opt + strlen("remote_exe=");
	char abs[PATH_MAX], *out;
	int ret = 0, err;

	/* Empty or absolute: the daemon's to judge, as written. */
	if (!path[0] || path[0] == '/')
		return list_add(list, opt) ? MH_EXIT_SYSERR : 0;
	if ((err = mh_absolute(path, abs, sizeof abs)) != 0) {
		mh_err("remote_exe=%s: %s", path, strerror(-err));
		return MH_EXIT_USAGE;
	}
	if (asprintf(&out, "remote_exe=%s", abs) < 0)
		return MH_EXIT_SYSERR;
	if (list_add(list, out))
		ret = MH_EXIT_SYSERR;
	free(out);
	return ret;
}

/* Split one -o argument and sort each option into its class. */
static int translate(struct mh_cmd *c, const char *arg)
{
	char *copy = strdup(arg), *save = NULL;
	int ret = 0;
	if (!copy)
		return MH_EXIT_SYSERR;
	for (char *opt = strtok_r(copy, ",", &save); opt && !ret;
	     opt = strtok_r(NULL, ",", &save)) {
		switch (classify(opt)) {
		case OC_OWNED:
		case OC_NOOP:
			if (list_add(&c->mc_dropped, opt))
				ret = MH_EXIT_SYSERR;
			break;
		case OC_NOFUSE:
			if (!c->mc_sloppy) {
				mh_err("option '%s' is not supported by FUSE mounts "
				       "(remove it, or mount with -s to drop it)", opt);
				ret = MH_EXIT_USAGE;
			} else {
				mh_err("warning: dropping option '%s' (not supported by FUSE mounts)", opt);
				if (list_add(&c->mc_dropped, opt))
					ret = MH_EXIT_SYSERR;
			}
			break;
		case OC_HELPER:
			if (strcmp(opt, "nonempty") == 0) {
				c->mc_nonempty = 1;
			} else {
				free(c->mc_setuid);
				c->mc_setuid = strdup(opt + strlen("setuid="));
				if (!c->mc_setuid)
					ret = MH_EXIT_SYSERR;
				else if (!c->mc_setuid[0]) {
					mh_err("option 'setuid=' needs a user name");
					ret = MH_EXIT_USAGE;
				}
			}
			break;
		case OC_PASS:
			if (strcmp(opt, "ro") == 0)
				c->mc_ro = 1;
			if (strncmp(opt, "lower=", strlen("lower=")) == 0)
				ret = add_lower_opt(&c->mc_pass, opt);
			else if (strncmp(opt, "remote_exe=", strlen("remote_exe=")) == 0)
				ret = add_remote_exe_opt(&c->mc_pass, opt);
			else if (list_add(&c->mc_pass, opt))
				ret = MH_EXIT_SYSERR;
			break;
		}
	}
	free(copy);
	if (ret == MH_EXIT_SYSERR)
		mh_err("out of memory");
	return ret;
}

static int check_type(const char *type)
{
	if (strcmp(type, "scriptcachefs") == 0 || strcmp(type, "fuse.scriptcachefs") == 0)
		return 0;
	mh_err("filesystem type '%s' is not scriptcachefs", type);
	return MH_EXIT_USAGE;
}

int mh_parse_args(struct mh_cmd *c, int argc, char **argv)
{
	/* -o is applied after every flag is known: -s may follow -o. */
	const char *oargs[64];
	int noargs = 0, npos = 0, ret;
	const char *pos[2] = { NULL, NULL };

	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
			c->mc_help = 1;
			return 0;
		}
		if (strcmp(a, "--version") == 0 || strcmp(a, "-V") == 0) {
			c->mc_version = 1;
			return 0;
		}
		if (a[0] != '-' || a[1] == '\0') {  /* operand (SHARD may be "") */
			if (npos == 2) {
				mh_err("unexpected argument '%s' (usage: mount.scriptcachefs "
				       "SHARD DIR [-sfnv] [-o OPTS])", a);
				return MH_EXIT_USAGE;
			}
			pos[npos++] = a;
			continue;
		}
		/* A cluster of flags, such as -sfnv; -o and -t take the next
		 * argument (or the rest of the cluster: -oro). */
		for (const char *f = a + 1; *f; f++) {
			switch (*f) {
			case 'f': c->mc_fake = 1; break;
			case 'n': c->mc_nomtab = 1; break;
			case 'v': c->mc_verbose = 1; break;
			case 's': c->mc_sloppy = 1; break;
			case 'r':  /* old mount(8) spelling of -o ro */
				if (noargs == (int)(sizeof oargs / sizeof oargs[0])) {
					mh_err("too many -o options");
					return MH_EXIT_USAGE;
				}
				oargs[noargs++] = "ro";
				break;
			case 'w':
				break;
			case 'o':
			case 't':
			case 'N': {
				const char *val = f[1] ? f + 1 : (i + 1 < argc ? argv[++i] : NULL);
				if (!val) {
					mh_err("option '-%c' needs an argument", *f);
					return MH_EXIT_USAGE;
				}
				if (*f == 'o') {
					if (noargs == (int)(sizeof oargs / sizeof oargs[0])) {
						mh_err("too many -o options");
						return MH_EXIT_USAGE;
					}
					oargs[noargs++] = val;
				} else if (*f == 't') {
					if ((ret = check_type(val)) != 0)
						return ret;
				} else {
					mh_err("-N (mount in another namespace) is not supported");
					return MH_EXIT_USAGE;
				}
				f += strlen(f) - 1;  /* the value ended this cluster */
				break;
			}
			default:
				mh_err("unknown flag '-%c' (usage: mount.scriptcachefs "
				       "SHARD DIR [-sfnv] [-o OPTS])", *f);
				return MH_EXIT_USAGE;
			}
		}
	}
	if (npos != 2) {
		mh_err("expected SHARD and DIR (usage: mount.scriptcachefs "
		       "SHARD DIR [-sfnv] [-o OPTS]; SHARD may be 'default')");
		return MH_EXIT_USAGE;
	}
	c->mc_shard_arg = pos[0];
	c->mc_dir_arg = pos[1];
	for (int i = 0; i < noargs; i++)
		if ((ret = translate(c, oargs[i])) != 0)
			return ret;
	return 0;
}

void mh_cmd_free(struct mh_cmd *c)
{
	free(c->mc_pass);
	free(c->mc_dropped);
	free(c->mc_setuid);
	c->mc_pass = c->mc_dropped = c->mc_setuid = NULL;
}
