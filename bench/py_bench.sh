#!/bin/bash
# py_bench.sh - unmodified CPython 3.11 with its bytecode in the shard,
# through scriptcachefs's tree view (issue 6, docs/PYTHON.md).
#
# usage: bench/py_bench.sh [-q] [BUILD_DIR]
#   BUILD_DIR  meson build directory holding fs/scriptcachefs and
#              cli/scriptcache (default: $MESON_BUILD_ROOT, else ./build)
#   -q         quick: fewer runs (what `meson test --benchmark` uses)
#
# The command: /usr/bin/python3 -c 'import <71 standard-library modules>'
# (bench/py_bench_modules.txt; 202 .pyc files with their dependencies).  Variants, in one
# hyperfine run:
#   (a) no cache      PYTHONDONTWRITEBYTECODE=1 and PYTHONPYCACHEPREFIX on an
#                     empty read-only directory: every module is compiled
#                     from source on every run.  (Without a prefix Python
#                     would read the .pyc Debian ships in __pycache__: with
#                     a prefix set it looks only there.)
#   (b) native warm   PYTHONPYCACHEPREFIX on a directory of the local disk,
#                     filled by a first run
#   (c) mount warm    PYTHONPYCACHEPREFIX=<mount>/.tree, filled by a first
#                     run (same daemon, same kernel caches as in real use)
#   (b0) native cold  the prefix directory removed before each run: Python
#                     compiles and writes every .pyc
#   (c0) mount cold   the shard cleared (scriptcache clear, through the
#                     library, while mounted) before each run: Python
#                     compiles, and every .pyc is committed through the mount
# The daemon runs with -o nosync: Python's native writes are not fsync'ed
# either, so (b0) and (c0) compare like with like.  Every command is run
# through env(1) with PYTHONDONTWRITEBYTECODE unset (this machine sets it).
# Before timing, each variant must print the same line.
#
# hyperfine times the variants one after the other; the load of a shared
# machine drifts in between.  So the warm variants are also run round robin
# (ROUNDS rounds, default 60; 20 with -q) and their medians printed.
set -eu

runs=(--warmup 5 --min-runs 40)
cold_runs=(--warmup 2 --min-runs 15)
rounds=${ROUNDS:-60}
if [ "${1:-}" = -q ]; then
	runs=(--warmup 3 --runs 15)
	cold_runs=(--warmup 1 --runs 5)
	rounds=${ROUNDS:-20}
	shift
fi
HERE=$(dirname "$(realpath "$0")")
BUILD=$(realpath "${1:-${MESON_BUILD_ROOT:-build}}")
FS=$BUILD/fs/scriptcachefs
CLI=$BUILD/cli/scriptcache
PY=/usr/bin/python3   # the system CPython 3.11 (not a pyenv python3 on PATH)
command -v hyperfine >/dev/null || { echo "py_bench: hyperfine not found" >&2; exit 1; }
[ -x "$FS" ] && [ -x "$CLI" ] || { echo "py_bench: build $BUILD first" >&2; exit 1; }
[ -e /dev/fuse ] || { echo "py_bench: /dev/fuse missing" >&2; exit 1; }

W=$(mktemp -d /tmp/sc-py-bench.XXXXXX)
MNT=$W/mnt
cleanup() {
	if grep -q " $MNT " /proc/self/mounts; then
		fusermount3 -u "$MNT" || fusermount3 -u -z "$MNT"
	fi
	[ -n "${DAEMON:-}" ] && wait "$DAEMON" 2>/dev/null || true
	chmod -R u+w "$W" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

MODS=$(grep -v '^#' "$HERE/py_bench_modules.txt" | tr '\n' ' ' | sed 's/ *$//; s/ /, /g')
PROG="import $MODS; print('imported', len(__import__('sys').modules))"
mkdir -p "$MNT" "$W/empty" "$W/native"
chmod a-w "$W/empty"

"$FS" -f -o nosync "$W/scripts.shard" "$MNT" &
DAEMON=$!
for _ in $(seq 200); do grep -q " $MNT " /proc/self/mounts && break; sleep 0.05; done
grep -q " $MNT " /proc/self/mounts || { echo "py_bench: mount failed" >&2; exit 1; }

base="env -u PYTHONDONTWRITEBYTECODE -u PYTHONHOME -u PYTHONPATH -u PYTHONSTARTUP"
A="$base PYTHONDONTWRITEBYTECODE=1 PYTHONPYCACHEPREFIX=$W/empty $PY -c \"$PROG\""
B="$base PYTHONPYCACHEPREFIX=$W/native $PY -c \"$PROG\""
C="$base PYTHONPYCACHEPREFIX=$MNT/.tree $PY -c \"$PROG\""

# fill (b) and (c); all variants must agree
outa=$(eval "$A"); outb=$(eval "$B"); outc=$(eval "$C")
[ "$outa" = "$outb" ] && [ "$outb" = "$outc" ] ||
	{ echo "py_bench: outputs differ: '$outa' '$outb' '$outc'" >&2; exit 1; }
npyc=$(find "$W/native" -name '*.pyc' | wc -l)
nent=$("$CLI" --shard "$W/scripts.shard" ls | tail -n +2 | wc -l)
echo "py_bench: $outa; $npyc .pyc in the native prefix, $nent entries in the shard"
[ "$npyc" -eq "$nent" ] || { echo "py_bench: the shard should hold every .pyc" >&2; exit 1; }
gen0=$(sed -n 's/.*"generation": \([0-9]*\).*/\1/p' "$MNT/.stats")

hyperfine -N "${runs[@]}" --export-markdown "$W/warm.md" \
	-n '(a) no cache' "$A" \
	-n '(b) native prefix, warm' "$B" \
	-n '(c) mount prefix, warm' "$C"
gen1=$(sed -n 's/.*"generation": \([0-9]*\).*/\1/p' "$MNT/.stats")
[ "$gen0" = "$gen1" ] || { echo "py_bench: warm runs wrote to the shard ($gen0 -> $gen1)" >&2; exit 1; }

hyperfine -N "${cold_runs[@]}" --export-markdown "$W/cold.md" \
	-n '(b0) native prefix, cold (populating)' --prepare "rm -rf $W/native" "$B" \
	-n '(c0) mount prefix, cold (populating)' --prepare "$CLI --shard $W/scripts.shard clear" "$C"

# round robin of the warm variants: medians in ms
"$PY" - "$rounds" "$A" "$B" "$C" <<'EOF'
import shlex, statistics, subprocess, sys, time
rounds = int(sys.argv[1])
cmds = [shlex.split(c) for c in sys.argv[2:]]
names = ['(a) no cache', '(b) native warm', '(c) mount warm']
t = [[] for _ in cmds]
for _ in range(rounds):
    for i, c in enumerate(cmds):
        t0 = time.perf_counter()
        subprocess.run(c, check=True, stdout=subprocess.DEVNULL)
        t[i].append((time.perf_counter() - t0) * 1000)
b = statistics.median(t[1])
print('round robin, %d rounds: median ms (ratio to b)' % rounds)
for n, v in zip(names, t):
    m = statistics.median(v)
    print('  %-18s %8.1f  %5.2fx' % (n, m, m / b))
EOF
cat "$W/warm.md" "$W/cold.md"
