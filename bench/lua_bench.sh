#!/bin/bash
# lua_bench.sh - the Lua client against hand-precompiled bytecode (issue 5).
#
# usage: bench/lua_bench.sh [-q] [BUILD_DIR]
#   BUILD_DIR  meson build directory holding clients/lua/scriptcache.so
#              (default: $MESON_BUILD_ROOT, else ./build)
#   -q         quick: fewer runs (what `meson test --benchmark` uses)
#
# One hyperfine run, side by side, of a program that requires every
# penlight module (Debian's lua-penlight):
#   (a) source        plain lua5.4, modules compiled from source
#   (b) luac          every module precompiled with luac5.4 (not stripped:
#                     debug info kept, as the cache keeps it), the tree put
#                     on package.path in place of penlight's own directory
#                     (so every variant probes the same number of paths)
#   (b-s) luac -s     the same, stripped (the issue's 3.0 ms reference)
#   (c) warm          lua5.4 -l scriptcache, shard already filled
#   (d) cold          lua5.4 -l scriptcache, shard deleted before each run
#                     (compiles, dumps and stores every module, durably)
#   (e) off           lua5.4 -l scriptcache with SCRIPTCACHE=0: the cost of
#                     loading the module when caching is off
# Every command is started through env(1) so all pay the same exec.
# Before timing, each variant is run once and must print the same line,
# and the warm variant must serve every module from the shard.
#
# hyperfine times the variants one after the other; on a shared machine
# the load drifts between them.  So the script then also runs them round
# robin (one run of each per round, ROUNDS rounds, default 100; 20 with -q)
# and prints each variant's median and its ratio to (b): drift hits every
# variant alike there.  With perf(1) available it also records each run's
# CPU time (task-clock), which waiting for a busy CPU does not inflate.
set -eu

runs=(--warmup 10 --min-runs 60)
rounds=${ROUNDS:-100}
if [ "${1:-}" = -q ]; then
	runs=(--warmup 3 --runs 15)
	rounds=${ROUNDS:-20}
	shift
fi
BUILD=$(realpath "${1:-${MESON_BUILD_ROOT:-build}}")
MOD=$BUILD/clients/lua/scriptcache.so
LUA=$(command -v lua5.4) || { echo "lua_bench: lua5.4 not found" >&2; exit 1; }
LUAC=$(command -v luac5.4) || { echo "lua_bench: luac5.4 not found" >&2; exit 1; }
command -v hyperfine >/dev/null || { echo "lua_bench: hyperfine not found" >&2; exit 1; }
[ -f "$MOD" ] || { echo "lua_bench: $MOD not built" >&2; exit 1; }

unset LUA_PATH LUA_CPATH LUA_INIT LUA_INIT_5_4 SCRIPTCACHE SCRIPTCACHE_PATH
export LUA_PATH_5_4=";;"
export LUA_CPATH_5_4="$BUILD/clients/lua/?.so;;"

PL=$("$LUA" -e 'local p = package.searchpath("pl.utils", package.path) io.write(p and p:match("^(.*)/utils%.lua$") or "")')
[ -n "$PL" ] || { echo "lua_bench: lua-penlight not installed" >&2; exit 1; }

W=$(mktemp -d /tmp/sc-lua-bench.XXXXXX)
trap 'rm -rf "$W"' EXIT

# The program: require every pl.* module, then say how it went.
{
	echo 'local n = 0'
	for f in "$PL"/*.lua; do
		echo "require 'pl.$(basename "$f" .lua)' n = n + 1"
	done
	cat <<'EOF'
local sc = package.loaded.scriptcache
if os.getenv("LUA_BENCH_CHECK") then
  local s = sc and sc.stats()
  print(n .. " modules", s and ("hits=" .. s.hits .. " misses=" .. s.misses .. " stored=" .. s.stored) or "")
end
EOF
} >"$W/allpl.lua"
nmods=$(ls "$PL"/*.lua | wc -l)

mkdir -p "$W/luac/pl" "$W/luac-s/pl"
for f in "$PL"/*.lua; do
	"$LUAC" -o "$W/luac/pl/$(basename "$f")" "$f"
	"$LUAC" -s -o "$W/luac-s/pl/$(basename "$f")" "$f"
done

# package.path with penlight's directory replaced by a precompiled tree.
path_with() {
	"$LUA" - "$(dirname "$PL")" "$1" <<'EOF'
local dir, new = ...
io.write((package.path:gsub(dir:gsub("%p", "%%%0"), (new:gsub("%%", "%%%%")))))
EOF
}
BPATH=$(path_with "$W/luac")
BSPATH=$(path_with "$W/luac-s")
[ "$BPATH" != "$("$LUA" -e 'io.write(package.path)')" ] || { echo "lua_bench: cannot place the luac tree on package.path" >&2; exit 1; }

cd "$W"
A="env LUA_PATH_5_4=;; $LUA allpl.lua"
B="env LUA_PATH_5_4=$BPATH $LUA allpl.lua"
BS="env LUA_PATH_5_4=$BSPATH $LUA allpl.lua"
C="env SCRIPTCACHE_PATH=$W/warm.shard $LUA -l scriptcache allpl.lua"
D="env SCRIPTCACHE_PATH=$W/cold.shard $LUA -l scriptcache allpl.lua"
E="env SCRIPTCACHE=0 SCRIPTCACHE_PATH=$W/off.shard $LUA -l scriptcache allpl.lua"

# Sanity: same result everywhere; the warm run hits for every module.
export LUA_BENCH_CHECK=1
$C >/dev/null
for v in A B BS C D E; do
	out=$(${!v})
	echo "check $v: $out"
	[ "${out%%	*}" = "$nmods modules" ] || { echo "lua_bench: variant $v failed" >&2; exit 1; }
done
rm -f "$W/cold.shard" "$W/cold.shard.lock"
warm=$($C)
case $warm in
*"hits=$nmods misses=0 stored=0") ;;
*) echo "lua_bench: the warm run did not hit for every module: $warm" >&2; exit 1 ;;
esac
unset LUA_BENCH_CHECK

echo "lua5.4 $("$LUA" -v 2>&1 | cut -d' ' -f2), penlight $PL ($nmods modules), $(nproc) CPUs, load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "(b) package.path: $BPATH"
# --prepare is given once per command, in command order; only (d) needs one.
hyperfine -N "${runs[@]}" \
	--export-markdown "$W/results.md" --export-json "$W/results.json" \
	-n "(a) source" -n "(b) luac (not stripped)" -n "(b-s) luac -s (stripped)" \
	-n "(c) scriptcache warm" -n "(d) scriptcache cold" -n "(e) scriptcache off" \
	--prepare true --prepare true --prepare true --prepare true \
	--prepare "rm -f $W/cold.shard $W/cold.shard.lock" --prepare true \
	"$A" "$B" "$BS" "$C" "$D" "$E"
echo
cat "$W/results.md"

# Round robin: per variant, wall time of each run in microseconds.
names=(A B BS C D E)
declare -A label=([A]="(a) source" [B]="(b) luac (not stripped)" [BS]="(b-s) luac -s (stripped)"
	[C]="(c) scriptcache warm" [D]="(d) scriptcache cold" [E]="(e) scriptcache off")
perf=()
if perf stat -x, -e task-clock -o "$W/perf.out" true 2>/dev/null && grep -q task-clock "$W/perf.out"; then
	perf=(perf stat -x, -e task-clock -o "$W/perf.out")
fi
for v in "${names[@]}"; do : >"$W/rr.$v"; : >"$W/cpu.$v"; done
for ((r = 0; r < rounds; r++)); do
	for v in "${names[@]}"; do
		[ $v = D ] && rm -f "$W/cold.shard" "$W/cold.shard.lock"
		t0=$EPOCHREALTIME
		${!v} >/dev/null
		t1=$EPOCHREALTIME
		echo $(( ${t1/./} - ${t0/./} )) >>"$W/rr.$v"
		# CPU time in a second run under perf (whose own start would
		# blur the wall time): task-clock in ms, kept in microseconds.
		if [ ${#perf[@]} -gt 0 ]; then
			[ $v = D ] && rm -f "$W/cold.shard" "$W/cold.shard.lock"
			"${perf[@]}" ${!v} >/dev/null
			awk -F, '/task-clock/ { printf "%d\n", $1 * 1000 }' "$W/perf.out" >>"$W/cpu.$v"
		fi
	done
done
median() { sort -n "$1" | awk '{ a[NR] = $1 } END { m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; printf "%.2f", m / 1000 }'; }
ratio() { awk -v m="$1" -v b="$2" 'BEGIN { printf "%.2f", m / b }'; }
mb=$(median "$W/rr.B")
echo
if [ ${#perf[@]} -gt 0 ]; then
	cb=$(median "$W/cpu.B")
	echo "Round robin, $rounds rounds: medians of wall time and of CPU time (task-clock), and ratios to (b)"
	echo
	echo "| Command | Wall [ms] | vs (b) | CPU [ms] | vs (b) |"
	echo "|:---|---:|---:|---:|---:|"
	for v in "${names[@]}"; do
		m=$(median "$W/rr.$v")
		c=$(median "$W/cpu.$v")
		echo "| \`${label[$v]}\` | $m | $(ratio "$m" "$mb") | $c | $(ratio "$c" "$cb") |"
	done
else
	echo "Round robin, $rounds rounds: median wall time, and ratio to (b)"
	echo
	echo "| Command | Wall [ms] | vs (b) |"
	echo "|:---|---:|---:|"
	for v in "${names[@]}"; do
		m=$(median "$W/rr.$v")
		echo "| \`${label[$v]}\` | $m | $(ratio "$m" "$mb") |"
	done
fi
if [ -n "${LUA_BENCH_JSON:-}" ]; then
	cp "$W/results.json" "$LUA_BENCH_JSON"
fi
