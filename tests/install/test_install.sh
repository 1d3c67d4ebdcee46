#!/bin/bash
# `meson install --destdir` into a temporary directory, then: every piece is
# there, the installed programs run on the installed library, the installed
# helper mounts with the installed daemon, the man pages render without
# warnings, the user unit passes `systemd-analyze verify`, and a program
# outside the tree builds against the installed library through pkg-config.
#
# Environment (tests/install/meson.build): BUILD_ROOT, SOURCE_DIR, SANITIZE, PREFIX,
# BINDIR, SBINDIR, LIBDIR, INCLUDEDIR, MANDIR, UNITDIR (absolute), MESON.
# Needs root for the mount; fails (never skips) without it.
set -u
T=$(mktemp -d /tmp/sc-install-XXXXXX)
D=$T/destdir
MNT=$T/mnt
fails=0
n=0

cleanup() {
	if grep -q " $MNT " /proc/self/mountinfo 2>/dev/null; then
		fusermount3 -u "$MNT" 2>/dev/null || umount -l "$MNT"
	fi
	rm -rf "$T"
}
trap cleanup EXIT

# TAP
ok() { n=$((n+1)); echo "ok $n - $1"; }
not_ok() { n=$((n+1)); fails=$((fails+1)); echo "not ok $n - $1"; shift; for l in "$@"; do echo "# $l"; done; }
check() {  # check DESCRIPTION COMMAND...: ok when COMMAND succeeds
	local desc=$1 out; shift
	if out=$("$@" 2>&1); then ok "$desc"; else not_ok "$desc" "$out"; fi
}

out=$("$MESON" install -C "$BUILD_ROOT" --destdir "$D" --no-rebuild --quiet 2>&1)
if [ $? -ne 0 ]; then
	echo "1..1"; not_ok "meson install --destdir" "$out"; exit 1
fi
ok "meson install --destdir"

# --- the pieces are where they belong --------------------------------------
for f in "$LIBDIR/libscriptcache.so.1" "$LIBDIR/libscriptcache.so" \
         "$INCLUDEDIR/scriptcache.h" "$LIBDIR/pkgconfig/scriptcache.pc" \
         "$BINDIR/scriptcache" "$BINDIR/scriptcachefs" "$SBINDIR/mount.scriptcachefs" \
         "$MANDIR/man1/scriptcache.1" "$MANDIR/man1/scriptcachefs.1" \
         "$MANDIR/man8/mount.scriptcachefs.8" "$UNITDIR/scriptcachefs.service"; do
	check "installed: $f" test -e "$D$f"
done
check "mount.fuse.scriptcachefs -> mount.scriptcachefs" \
	test "$(readlink "$D$SBINDIR/mount.fuse.scriptcachefs")" = mount.scriptcachefs
check "only the public header is installed" \
	test "$(ls "$D$INCLUDEDIR")" = scriptcache.h
check "no @VAR@ left in man pages and unit" \
	sh -c "! grep -l '@[A-Z]*@' '$D$MANDIR'/man*/* '$D$UNITDIR/scriptcachefs.service'"

# --- the installed programs run on the installed library -------------------
export LD_LIBRARY_PATH=$D$LIBDIR
unset SCRIPTCACHEFS
for p in "$BINDIR/scriptcache" "$BINDIR/scriptcachefs" "$SBINDIR/mount.scriptcachefs" \
         "$SBINDIR/mount.fuse.scriptcachefs"; do
	check "$(basename "$p") --version" "$D$p" --version
	check "$(basename "$p") --help" "$D$p" --help
	lib=$(ldd "$D$p" | awk '$1 ~ /^libscriptcache/ {print $3}')
	case $p in */scriptcache|*/scriptcachefs|*/mount.scriptcachefs)
		check "$(basename "$p") loads $lib from the destdir" \
			test "$lib" = "$D$LIBDIR/libscriptcache.so.1";;
	esac
done

# --- the installed helper mounts with the installed daemon -----------------
mkdir -p "$MNT"
export SCRIPTCACHE_PATH=$T/default.shard
daemon=$D$BINDIR/scriptcachefs
[ -x "$BINDIR/scriptcachefs" ] && daemon=$BINDIR/scriptcachefs  # installed on the host too
out=$("$D$SBINDIR/mount.scriptcachefs" default "$MNT" -f -v 2>&1)
check "helper finds the daemon ($daemon)" \
	grep -qxF "mount.scriptcachefs: would run (default shard): $daemon $MNT" <<<"$out"
if [ "$(id -u)" -ne 0 ]; then
	not_ok "mount with the installed helper" "needs root"
elif out=$("$D$SBINDIR/mount.scriptcachefs" default "$MNT" -o noauto,nofail 2>&1); then
	check "installed mount is a scriptcachefs" grep -q " $MNT .* - fuse.scriptcachefs " /proc/self/mountinfo
	check ".stats names the default shard" grep -q "\"shard\": \"$T/default.shard\"" "$MNT/.stats"
	i=0
	until fusermount3 -u "$MNT" 2>/dev/null; do  # the daemon's first open races an early unmount
		i=$((i+1)); [ $i -lt 100 ] || break; sleep 0.05
	done
	check "unmounted" sh -c "! grep -q ' $MNT ' /proc/self/mountinfo"
else
	not_ok "mount with the installed helper" "$out"
fi

# --- man pages -------------------------------------------------------------
for page in "$D$MANDIR"/man1/*.1 "$D$MANDIR"/man8/*.8; do
	out=$(LC_ALL=C.UTF-8 MANWIDTH=80 man --warnings -l "$page" 2>&1 >/dev/null)
	if [ -z "$out" ] && LC_ALL=C.UTF-8 man -l "$page" 2>/dev/null | grep -q '^NAME'; then
		ok "man $(basename "$page") renders without warnings"
	else
		not_ok "man $(basename "$page") renders without warnings" "$out"
	fi
done

# --- the systemd user unit -------------------------------------------------
# Verified as the user manager would load it, with the destdir's daemon in
# place of the not yet installed one; any warning fails.
if ! command -v systemd-analyze >/dev/null; then
	not_ok "systemd-analyze verify" "systemd-analyze not found (apt-get install systemd)"
else
	mkdir -p "$T/units" "$T/run"
	sed "s|$BINDIR/|$D$BINDIR/|g" "$D$UNITDIR/scriptcachefs.service" > "$T/units/scriptcachefs.service"
	out=$(XDG_RUNTIME_DIR=$T/run systemd-analyze --user --man=no verify \
		"$T/units/scriptcachefs.service" 2>&1)
	if [ $? -eq 0 ] && [ -z "$out" ]; then ok "systemd-analyze verify scriptcachefs.service"
	else not_ok "systemd-analyze verify scriptcachefs.service" "$out"; fi
	check "unit starts the daemon in the foreground on ~/scriptcache" \
		grep -qx "ExecStart=$BINDIR/scriptcachefs -f %h/scriptcache" "$D$UNITDIR/scriptcachefs.service"
fi

# --- an external program, built through pkg-config -------------------------
# The .pc says prefix=$PREFIX; PKG_CONFIG_SYSROOT_DIR puts the destdir in
# front of its -I and -L, as for any staged install.
export PKG_CONFIG_PATH=$D$LIBDIR/pkgconfig PKG_CONFIG_SYSROOT_DIR=$D
flags=$(pkg-config --cflags --libs scriptcache 2>&1)
check "pkg-config --cflags --libs scriptcache: $flags" \
	grep -q -- "-I$D$INCLUDEDIR" <<<"$flags"
# A library built with sanitizers needs their runtime first in the program.
san=
[ "${SANITIZE:-none}" != none ] && san=-fsanitize=$SANITIZE
check "build external.c against the installed library" \
	cc -Wall -Wextra -Werror $san -o "$T/external" "$SOURCE_DIR/external.c" $flags
echo 'print("hi")' > "$T/app.lua"
out=$("$T/external" "$T/ext.shard" "$T/app.lua" 2>&1)
check "external program: put/get through the installed library ($out)" \
	grep -q "^put/get ok" <<<"$out"
check "external program loads the installed library" \
	sh -c "ldd '$T/external' | grep -qF '$D$LIBDIR/libscriptcache.so.1'"

echo "1..$n"
[ $fails -eq 0 ]
