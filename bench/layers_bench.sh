#!/bin/bash
# layers_bench.sh - a container's first run with a shipped shard (issue 14).
#
# usage: bench/layers_bench.sh [-q] [BUILD_DIR]
#   BUILD_DIR  meson build directory (clients/lua/scriptcache.so, cli/scriptcache);
#              default $MESON_BUILD_ROOT, else ./build
#   -q         quick: 20 rounds instead of 100
#
# The program requires every penlight module (Debian's lua-penlight), as
# bench/lua_bench.sh does.  Variants, run round robin (one run of each per
# round) so that load drift hits them alike:
#   (w) warm       the user's own shard already holds every module: the
#                  hundredth run
#   (s) shipped    a container's first run: its own shard does not exist
#                  (deleted before every run; the run, which stores
#                  nothing, creates none: docs/LAYERS.md), the modules come
#                  from a shard built by `scriptcache build` and stacked
#                  below (SCRIPTCACHE_LOWER): same paths, same mtimes, as in
#                  an image built and run from one layer
#   (e) existing   the same, but the own shard exists, empty (a volume
#                  kept between container starts)
#   (r) relocated  the same as (s), but the tree was copied elsewhere (every mtime
#                  new) and the shard built with --base-dir: freshness by
#                  content, every source is read and hashed once per run
#   (c) cold       no shipped shard: the own shard deleted before each run,
#                  every module compiled and stored (the first run today)
# Before timing, every variant must print the same line and hit where it
# should (w, s, r: hits for every module and nothing stored).  The
# target: (s), (e) and (r) at most 1.05x (w).
set -eu

rounds=${ROUNDS:-100}
if [ "${1:-}" = -q ]; then
	rounds=${ROUNDS:-20}
	shift
fi
BUILD=$(realpath "${1:-${MESON_BUILD_ROOT:-build}}")
CLI=$BUILD/cli/scriptcache
LUA=$(command -v lua5.4) || { echo "layers_bench: lua5.4 not found" >&2; exit 1; }
[ -f "$BUILD/clients/lua/scriptcache.so" ] || { echo "layers_bench: the Lua module is not built" >&2; exit 1; }

unset LUA_PATH LUA_CPATH LUA_INIT LUA_INIT_5_4 SCRIPTCACHE SCRIPTCACHE_PATH \
	SCRIPTCACHE_LOWER SCRIPTCACHE_LOWER_DIR SCRIPTCACHE_BASEDIRS
export LUA_CPATH_5_4="$BUILD/clients/lua/?.so;;"
export SCRIPTCACHE_LOWER_DIR=

PL=$("$LUA" -e 'local p = package.searchpath("pl.utils", package.path) io.write(p and p:match("^(.*)/utils%.lua$") or "")')
[ -n "$PL" ] || { echo "layers_bench: lua-penlight not installed" >&2; exit 1; }

W=$(mktemp -d /tmp/sc-layers-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT

# The program, and a copy of penlight elsewhere with new mtimes.
{
	echo 'local n = 0'
	for f in "$PL"/*.lua; do
		echo "require 'pl.$(basename "$f" .lua)' n = n + 1"
	done
	cat <<'LUA'
local sc = package.loaded.scriptcache
if os.getenv("LAYERS_BENCH_CHECK") then
  local s = sc and sc.stats()
  print(n .. " modules", s and ("hits=" .. s.hits .. " misses=" .. s.misses .. " stored=" .. s.stored) or "")
end
LUA
} >"$W/allpl.lua"
nmods=$(ls "$PL"/*.lua | wc -l)
mkdir -p "$W/srv/lua"
cp -rL "$PL" "$W/srv/lua/pl"
touch -d '2030-01-01 00:00' "$W/srv/lua/pl"/*.lua
RPATH="$W/srv/lua/?.lua;$W/srv/lua/?/init.lua"

cd "$W"
# Fill: the user's warm shard, the build shard for (s), the build shard
# for (r) (keys under the copy), then the shipped shards.
SCRIPTCACHE_PATH=$W/warm.shard SCRIPTCACHE_LOWER= "$LUA" -l scriptcache allpl.lua
SCRIPTCACHE_PATH=$W/build-r.shard SCRIPTCACHE_LOWER= LUA_PATH_5_4="$RPATH;;" "$LUA" -l scriptcache allpl.lua
"$CLI" --shard "$W/warm.shard" build "$W/shipped.shard" >/dev/null
mkdir -p "$W/srv/.cache"
"$CLI" --shard "$W/build-r.shard" build --base-dir "$W/srv" "$W/srv/.cache/app.shard" >/dev/null
# the image is copied to where it runs: new mtimes everywhere
mkdir -p "$W/run"
cp -r "$W/srv" "$W/run/srv"
touch -d '2031-01-01 00:00' "$W/run/srv/lua/pl"/*.lua
XPATH="$W/run/srv/lua/?.lua;$W/run/srv/lua/?/init.lua"

V_w="env SCRIPTCACHE_PATH=$W/warm.shard SCRIPTCACHE_LOWER= $LUA -l scriptcache allpl.lua"
V_s="env SCRIPTCACHE_PATH=$W/own-s.shard SCRIPTCACHE_LOWER=$W/shipped.shard $LUA -l scriptcache allpl.lua"
V_e="env SCRIPTCACHE_PATH=$W/own-e.shard SCRIPTCACHE_LOWER=$W/shipped.shard $LUA -l scriptcache allpl.lua"
V_r="env SCRIPTCACHE_PATH=$W/own-r.shard SCRIPTCACHE_LOWER=$W/run/srv/.cache/app.shard LUA_PATH_5_4=$XPATH;; $LUA -l scriptcache allpl.lua"
V_c="env SCRIPTCACHE_PATH=$W/own-c.shard SCRIPTCACHE_LOWER= $LUA -l scriptcache allpl.lua"
names=(w s e r c)
declare -A label=([w]="(w) warm own shard" [s]="(s) shipped shard, own shard new"
	[e]="(e) shipped shard, own shard empty"
	[r]="(r) relocated shipped shard, new mtimes" [c]="(c) cold, nothing shipped")
# an empty own shard to copy for (e)
SCRIPTCACHE_PATH=$W/empty.shard SCRIPTCACHE_LOWER= "$LUA" -l scriptcache -e 'require "pl.compat"'
"$CLI" --shard "$W/empty.shard" clear >/dev/null
fresh() {
	rm -f "$W"/own-*.shard "$W"/own-*.shard.lock
	cp "$W/empty.shard" "$W/own-e.shard"
}

export LAYERS_BENCH_CHECK=1
for v in "${names[@]}"; do
	fresh
	cmd=V_$v
	out=$(${!cmd})
	echo "check $v: $out"
	case $v:$out in
	[wser]:"$nmods modules	hits=$nmods misses=0 stored=0") ;;
	c:"$nmods modules	hits=0 misses=$nmods stored=$nmods") ;;
	*) echo "layers_bench: variant $v did not do what it should" >&2; exit 1 ;;
	esac
	if [ "$v" = s ] && [ -e "$W/own-s.shard" ]; then
		echo "layers_bench: (s) created an own shard it had nothing to put in" >&2
		exit 1
	fi
done
unset LAYERS_BENCH_CHECK

echo "lua5.4 $("$LUA" -v 2>&1 | cut -d' ' -f2), penlight ($nmods modules), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg), $rounds rounds"
perf=()
if perf stat -x, -e task-clock -o "$W/perf.out" true 2>/dev/null && grep -q task-clock "$W/perf.out"; then
	perf=(perf stat -x, -e task-clock -o "$W/perf.out")
fi
for v in "${names[@]}"; do : >"$W/rr.$v"; : >"$W/cpu.$v"; done
for ((i = 0; i < rounds; i++)); do
	for v in "${names[@]}"; do
		cmd=V_$v
		fresh
		t0=$EPOCHREALTIME
		${!cmd} >/dev/null
		t1=$EPOCHREALTIME
		echo $(( ${t1/./} - ${t0/./} )) >>"$W/rr.$v"
		if [ ${#perf[@]} -gt 0 ]; then
			fresh
			"${perf[@]}" ${!cmd} >/dev/null
			awk -F, '/task-clock/ { printf "%d\n", $1 * 1000 }' "$W/perf.out" >>"$W/cpu.$v"
		fi
	done
done
median() { sort -n "$1" | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f", m / 1000 }'; }
ratio() { awk -v m="$1" -v b="$2" 'BEGIN { printf "%.2f", m / b }'; }
mw=$(median "$W/rr.w")
echo
if [ ${#perf[@]} -gt 0 ]; then
	cw=$(median "$W/cpu.w")
	echo "| variant | wall [ms] | vs (w) | CPU [ms] | vs (w) |"
	echo "|:---|---:|---:|---:|---:|"
	for v in "${names[@]}"; do
		m=$(median "$W/rr.$v")
		c=$(median "$W/cpu.$v")
		echo "| ${label[$v]} | $m | $(ratio "$m" "$mw") | $c | $(ratio "$c" "$cw") |"
	done
else
	echo "| variant | wall [ms] | vs (w) |"
	echo "|:---|---:|---:|"
	for v in "${names[@]}"; do
		m=$(median "$W/rr.$v")
		echo "| ${label[$v]} | $m | $(ratio "$m" "$mw") |"
	done
fi
