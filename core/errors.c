/* errors.c - sc_strerror(): the library's own codes and negated errno; sc_version(). */
#include <string.h>

#include "scriptcache.h"

static const char *const sc_messages[] = {
	[-(SC_ENOTFOUND - -30900)]    = "no entry for this key",
	[-(SC_ESTALE - -30900)]       = "source file changed or vanished since it was cached",
	[-(SC_EFINGERPRINT - -30900)] = "entry written by another interpreter or build",
	[-(SC_ECORRUPT - -30900)]     = "shard or entry is corrupt",
	[-(SC_EMAGIC - -30900)]       = "not a scriptcache shard (bad magic)",
	[-(SC_EVERSION - -30900)]     = "shard format version not supported by this library",
	[-(SC_EPTRWIDTH - -30900)]    = "shard written by a build with another pointer width",
	[-(SC_EBYTEORDER - -30900)]   = "shard written on a machine with another byte order",
	[-(SC_ETRUNCATED - -30900)]   = "shard is truncated",
	[-(SC_EDISABLED - -30900)]    = "caching disabled by SCRIPTCACHE",
	[-(SC_EREADONLY - -30900)]    = "shard opened read-only",
	[-(SC_ETOOBIG - -30900)]      = "key or blob too large",
	[-(SC_EINSECURE - -30900)]    = "shard not owned by this user or writable by others; refusing to use it",
	[-(SC_EWRITERGONE - -30900)]  = "the executable that wrote the entry was rebuilt or removed",
	[-(SC_ECHANGED - -30900)]     = "the entry changed since it was looked up",
};

const char *sc_strerror(int err)
{
	if (err == 0)
		return "success";
	if (err <= SC_ENOTFOUND && err >= SC_ELAST)
		return sc_messages[-(err - -30900)];
	if (err < 0 && err > -4096)
		return strerror(-err);
	return "unknown error";
}

const char *sc_version(int *major, int *minor, int *patch)
{
	if (major)
		*major = SC_VERSION_NUMBER / 10000;
	if (minor)
		*minor = SC_VERSION_NUMBER / 100 % 100;
	if (patch)
		*patch = SC_VERSION_NUMBER % 100;
	return SC_VERSION_STRING;
}
