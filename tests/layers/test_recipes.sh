#!/bin/bash
# test_recipes.sh - the recipes of docs/LAYERS.md, run for real: the real
# lua5.4 with scriptcache.so, the real CLI, a temporary root instead of an
# image or a package.  Speaks TAP.
#
# usage: test_recipes.sh LUA MODULE_DIR CLI
#
#  1. image build (Dockerfile-style): run the app once into a scratch shard,
#     `scriptcache build --base-dir` a relocatable shard inside the app's
#     tree, copy the tree elsewhere (new mtimes), run there with an empty
#     own shard: every module hits from the shipped shard, the own shard
#     stays empty; an edited module misses and lands in the own shard.
#  2. package postinst: the shard built into LOWER_DIR (the stand-in for
#     /usr/lib/scriptcache), picked up with no variable naming it.
#  3. read-only root: the tree, the shipped shard and HOME on a read-only
#     bind mount: hits from the shipped shard, nothing written, no error;
#     with a writable volume for the own shard, edits are cached there.
#
# Every case compares the program's output with a plain lua5.4 run.
set -u
LUA=${1:?usage: test_recipes.sh LUA MODULE_DIR CLI}
MODDIR=$(realpath "${2:?}") || exit 1
CLI=$(realpath "${3:?}") || exit 1
[[ $LUA == */* ]] && LUA=$(realpath "$LUA")

T=$(mktemp -d /tmp/sc-recipes.XXXXXX) || exit 1
RO=
cleanup() {
	[ -n "$RO" ] && umount "$RO" 2>/dev/null
	[ -n "${SC_TEST_KEEP:-}" ] && echo "# kept $T" || rm -rf "$T"
}
trap cleanup EXIT

unset LUA_PATH LUA_PATH_5_4 LUA_INIT LUA_INIT_5_4 LUA_CPATH SCRIPTCACHE \
	SCRIPTCACHE_PATH SCRIPTCACHE_LOWER SCRIPTCACHE_LOWER_DIR SCRIPTCACHE_BASEDIRS
export LUA_CPATH_5_4="$MODDIR/?.so;;"
# Nothing from this machine's /usr/lib/scriptcache
export SCRIPTCACHE_LOWER_DIR=

n=0
failed=0
ok() { # STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else failed=$((failed + 1)); echo "not ok $n - $2"; fi
}
diag() { sed 's/^/#   /'; }

# The probe writes the module's counters when the interpreter closes.
PROBE='local sc = package.loaded.scriptcache
debug.getregistry().sctest_probe = setmetatable({}, {__gc = function()
  local s = sc.stats()
  local f = assert(io.open(os.getenv("SCTEST_STATS"), "w"))
  f:write(string.format("hits=%d misses=%d stored=%d", s.hits, s.misses, s.stored))
  f:close()
end})'

lua() { env ${SC_LUA_PRELOAD:+LD_PRELOAD="$SC_LUA_PRELOAD"} "$LUA" "$@"; }

# cached NAME WANT APP ENV...: run APP/main.lua through the module with ENV,
# compare its output with the plain run's and its counters with WANT (a
# glob).
cached() {
	local name=$1 want=$2 app=$3 got
	shift 3
	lua "$app/main.lua" >"$T/plain.out" 2>&1
	rm -f "$T/stats"
	env SCTEST_STATS="$T/stats" "$@" ${SC_LUA_PRELOAD:+LD_PRELOAD="$SC_LUA_PRELOAD"} \
		"$LUA" -l scriptcache -e "$PROBE" "$app/main.lua" >"$T/cached.out" 2>&1
	if ! cmp -s "$T/plain.out" "$T/cached.out"; then
		echo "# $name: output differs from the plain run"
		diff "$T/plain.out" "$T/cached.out" | head -20 | diag
		ok 1 "$name: same output as plain lua"
	else
		ok 0 "$name: same output as plain lua"
	fi
	got=$(cat "$T/stats" 2>/dev/null)
	# shellcheck disable=SC2053
	if [[ $got == $want ]]; then
		ok 0 "$name: counters $got"
	else
		echo "# $name: counters '$got', want '$want'"
		ok 1 "$name: counters"
	fi
}

# entries SHARD: how many entries the shard alone holds
entries() {
	"$CLI" --shard "$1" ls --json 2>/dev/null | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))' 2>/dev/null || echo "?"
}

# An application: main.lua (run, not required: never cached) and three
# modules, one in a subdirectory.
make_app() { # DIR
	mkdir -p "$1/lib/deep"
	cat >"$1/main.lua" <<'LUA'
local dir = arg[0]:match("(.*/)") or "./"
package.path = dir .. "lib/?.lua;" .. package.path
local util = require("util")
local shapes = require("shapes")
local deep = require("deep.mod")
print(util.greet("layers"), shapes.area(3, 4), deep.answer())
LUA
	cat >"$1/lib/util.lua" <<'LUA'
local M = {}
function M.greet(who) return ("hello, %s"):format(who) end
return M
LUA
	cat >"$1/lib/shapes.lua" <<'LUA'
local M = {}
function M.area(w, h) return w * h end
return M
LUA
	cat >"$1/lib/deep/mod.lua" <<'LUA'
return { answer = function() return 42 end }
LUA
}

# ---- 1. image build -----------------------------------------------------
B=$T/build/opt/app
make_app "$B"
cached "image: build step" "hits=0 misses=3 stored=3" "$B" SCRIPTCACHE_PATH="$T/build.shard" SCRIPTCACHE_LOWER=
mkdir -p "$B/.cache"
"$CLI" --shard "$T/build.shard" build --base-dir "$B" "$B/.cache/app.shard" >"$T/build.log" 2>&1
ok $? "image: scriptcache build --base-dir"
diag <"$T/build.log"
"$CLI" --shard "$B/.cache/app.shard" verify >"$T/verify.log" 2>&1
ok $? "image: the shipped shard verifies"

# the image: the tree copied elsewhere, every mtime new
C=$T/container/srv/app
mkdir -p "$(dirname "$C")"
cp -r "$B" "$C"
touch -d '2030-01-01 00:00' "$C"/main.lua "$C"/lib/*.lua "$C"/lib/deep/*.lua
H=$T/container/home
cached "image: first run in the container" "hits=3 misses=0 stored=0" "$C" \
	XDG_CACHE_HOME="$H/.cache" SCRIPTCACHE_LOWER="$C/.cache/app.shard"
top=$H/.cache/scriptcache/scripts.shard
# served entirely by the shipped shard: the own shard is made at the
# first put, so there is none (docs/LAYERS.md)
[ ! -e "$top" ] && [ ! -e "$top.lock" ]
ok $? "image: the first run wrote no own shard"
echo 'local M = {} function M.area(w, h) return w * h + 0 end return M' >"$C/lib/shapes.lua"
cached "image: an edited module" "hits=2 misses=1 stored=1" "$C" \
	XDG_CACHE_HOME="$H/.cache" SCRIPTCACHE_LOWER="$C/.cache/app.shard"
e=$(entries "$top")
[ "$e" = 1 ]
ok $? "image: the edit landed in the own shard ($e entry)"
cached "image: the edit hits from the own shard" "hits=3 misses=0 stored=0" "$C" \
	XDG_CACHE_HOME="$H/.cache" SCRIPTCACHE_LOWER="$C/.cache/app.shard"

# ---- 2. package postinst ------------------------------------------------
R=$T/pkgroot
P=$R/usr/share/myapp
make_app "$P"
mkdir -p "$R/usr/lib/scriptcache"
# what the postinst runs (docs/LAYERS.md)
scratch=$(mktemp -d "$T/postinst.XXXXXX")
cached "package: postinst warm-up" "hits=0 misses=3 stored=3" "$P" \
	SCRIPTCACHE_PATH="$scratch/warm.shard" SCRIPTCACHE_LOWER=
"$CLI" --shard "$scratch/warm.shard" build "$R/usr/lib/scriptcache/myapp.shard" >"$T/build2.log" 2>&1
ok $? "package: scriptcache build into the system directory"
rm -rf "$scratch"
m=$(stat -c '%U %a' "$R/usr/lib/scriptcache/myapp.shard")
[ "$m" = "root 644" ]
ok $? "package: the shipped shard is root's, mode 644 ($m)"
U=$T/user
cached "package: a user's first run" "hits=3 misses=0 stored=0" "$P" \
	XDG_CACHE_HOME="$U/.cache" SCRIPTCACHE_LOWER_DIR="$R/usr/lib/scriptcache"
[ ! -e "$U/.cache/scriptcache/scripts.shard" ]
ok $? "package: the user's first run wrote no shard of theirs"

# ---- 3. read-only root ----------------------------------------------------
# The container's root (tree, shipped shard, HOME) read-only: a bind mount
# remounted ro, which root cannot write either.
RO=$T/ro
mkdir -p "$RO" "$T/container/home2"
if mount --bind "$T/container" "$RO" && mount -o remount,bind,ro "$RO"; then
	ok 0 "read-only root: bind mount, read-only"
	touch "$RO/srv/app/probe" 2>/dev/null
	[ $? -ne 0 ]
	ok $? "read-only root: the root cannot be written"
	before=$(find "$T/container" -printf '%p %s %T@\n' | sort | md5sum)
	cached "read-only root: nothing writable" "hits=2 misses=1 stored=0" "$RO/srv/app" \
		XDG_CACHE_HOME="$RO/home2/.cache" SCRIPTCACHE_LOWER="$RO/srv/app/.cache/app.shard"
	after=$(find "$T/container" -printf '%p %s %T@\n' | sort | md5sum)
	# (shapes.lua was edited in case 1: it misses and cannot be stored)
	[ "$before" = "$after" ]
	ok $? "read-only root: nothing was written"
	W=$T/volume
	cached "read-only root, writable volume: the edit is stored" "hits=2 misses=1 stored=1" "$RO/srv/app" \
		SCRIPTCACHE_PATH="$W/scripts.shard" SCRIPTCACHE_LOWER="$RO/srv/app/.cache/app.shard"
	cached "read-only root, writable volume: then hits" "hits=3 misses=0 stored=0" "$RO/srv/app" \
		SCRIPTCACHE_PATH="$W/scripts.shard" SCRIPTCACHE_LOWER="$RO/srv/app/.cache/app.shard"
else
	ok 1 "read-only root: bind mount, read-only (needs root)"
fi

echo "1..$n"
[ $failed -eq 0 ]
