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
# (bench/py_bench_modules.txt; 202 .pyc files with their dependencies, all
# of which Debian ships compiled in __pycache__).  Variants, the warm ones
# in one hyperfine run, the cold ones in another:
#   (a) no cache      PYTHONDONTWRITEBYTECODE=1 and PYTHONPYCACHEPREFIX on an
#                     empty read-only directory: every module is compiled
#                     from source on every run.  (Without a prefix Python
#                     would read the .pyc Debian ships in __pycache__: with
#                     a prefix set it looks only there.)
#   (b) native warm   PYTHONPYCACHEPREFIX on a directory of the local disk,
#                     filled by a first run
#   (c) mount warm    PYTHONPYCACHEPREFIX=<mount>/.tree, default options: the
#                     distribution's .pyc are served underneath (docs/FS.md,
#                     "Underneath"); a first run looked them up and
#                     committed nothing (Debian ships all 202)
#   (c') the same on a second mount with -o no_dist_pyc, whose shard a first
#                     run filled with all 202 .pyc (for information: what
#                     (c) measured before the layer)
#   (b0) native cold  the prefix directory removed before each run: Python
#                     compiles and writes every .pyc
#   (c0) mount cold   the first mount unmounted, its shard cleared and its
#                     daemon started again before each run: cold kernel
#                     caches, an empty shard; Python reads Debian's .pyc
#                     through the mount and compiles nothing
#   (c0') mount cold, no_dist_pyc: the second mount's shard cleared
#                     (scriptcache clear, while mounted) before each run:
#                     Python compiles, and every .pyc is committed through
#                     the mount (what (c0) measured before the layer)
# Both daemons run with -o nosync: Python's native writes are not fsync'ed
# either, so (b0) and (c0') compare like with like.  Every command is run
# through env(1) with PYTHONDONTWRITEBYTECODE unset (this machine sets it).
# Before timing, every variant must print the same line, the first shard
# must hold no entry for a .pyc Debian ships and the second every .pyc;
# the warm runs must write nothing, nor (c0) an entry for Debian's .pyc.
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
MNT2=$W/mnt2
cleanup() {
	for m in "$MNT" "$MNT2"; do
		if grep -q " $m " /proc/self/mounts; then
			fusermount3 -u "$m" || fusermount3 -u -z "$m"
		fi
	done
	chmod -R u+w "$W" 2>/dev/null || true
	rm -rf "$W"
}
trap cleanup EXIT

MODS=$(grep -v '^#' "$HERE/py_bench_modules.txt" | tr '\n' ' ' | sed 's/ *$//; s/ /, /g')
PROG="import $MODS; print('imported', len(__import__('sys').modules))"
mkdir -p "$MNT" "$MNT2" "$W/empty" "$W/native"
chmod a-w "$W/empty"

# Without -f the daemon returns once its mount is ready.
"$FS" -o nosync "$W/scripts.shard" "$MNT" || { echo "py_bench: mount failed" >&2; exit 1; }
"$FS" -o nosync,no_dist_pyc "$W/scripts2.shard" "$MNT2" ||
	{ echo "py_bench: mount failed" >&2; exit 1; }
# (c0)'s preparation: a new daemon, cold kernel caches, an empty shard
printf '#!/bin/sh\nset -e\nfusermount3 -u "%s"\n"%s" --shard "%s" clear >/dev/null\nexec "%s" -o nosync "%s" "%s"\n' \
	"$MNT" "$CLI" "$W/scripts.shard" "$FS" "$W/scripts.shard" "$MNT" > "$W/remount"
chmod +x "$W/remount"

base="env -u PYTHONDONTWRITEBYTECODE -u PYTHONHOME -u PYTHONPATH -u PYTHONSTARTUP"
A="$base PYTHONDONTWRITEBYTECODE=1 PYTHONPYCACHEPREFIX=$W/empty $PY -c \"$PROG\""
B="$base PYTHONPYCACHEPREFIX=$W/native $PY -c \"$PROG\""
C="$base PYTHONPYCACHEPREFIX=$MNT/.tree $PY -c \"$PROG\""
C2="$base PYTHONPYCACHEPREFIX=$MNT2/.tree $PY -c \"$PROG\""

stat_of() { sed -n "s/.*\"$2\": \([0-9]*\).*/\1/p" "$1/.stats"; }
entries() { "$CLI" --shard "$1" ls | tail -n +2 | wc -l; }

# fill (b), (c) and (c'); all variants must agree
outa=$(eval "$A"); outb=$(eval "$B"); outc=$(eval "$C"); outc2=$(eval "$C2")
[ "$outa" = "$outb" ] && [ "$outb" = "$outc" ] && [ "$outc" = "$outc2" ] ||
	{ echo "py_bench: outputs differ: '$outa' '$outb' '$outc' '$outc2'" >&2; exit 1; }
npyc=0
ndist=0
for f in $(cd "$W/native" && find . -name '*.pyc'); do
	p=${f#.}
	npyc=$((npyc + 1))
	if [ -f "$(dirname "$p")/__pycache__/$(basename "$p")" ]; then
		ndist=$((ndist + 1))
	fi
done
nent=$(entries "$W/scripts.shard")
nent2=$(entries "$W/scripts2.shard")
hits=$(stat_of "$MNT" dist_pyc_hits)
echo "py_bench: $outa; $npyc .pyc in the native prefix, $ndist shipped by the distribution;" \
	"first mount: $nent entries, $hits served underneath; second (no_dist_pyc): $nent2 entries"
[ "$nent" -eq $((npyc - ndist)) ] && [ "$hits" -ge "$ndist" ] ||
	{ echo "py_bench: the first mount should serve every distribution .pyc" >&2; exit 1; }
[ "$nent2" -eq "$npyc" ] || { echo "py_bench: the second shard should hold every .pyc" >&2; exit 1; }
gen=$(stat_of "$MNT" generation)
gen2=$(stat_of "$MNT2" generation)

hyperfine -N "${runs[@]}" --export-markdown "$W/warm.md" \
	-n '(a) no cache' "$A" \
	-n '(b) native prefix, warm' "$B" \
	-n '(c) mount prefix, warm (distribution .pyc underneath)' "$C" \
	-n "(c') mount prefix, warm, no_dist_pyc" "$C2"
[ "$gen" = "$(stat_of "$MNT" generation)" ] && [ "$gen2" = "$(stat_of "$MNT2" generation)" ] ||
	{ echo "py_bench: warm runs wrote to a shard" >&2; exit 1; }

hyperfine -N "${cold_runs[@]}" --export-markdown "$W/cold.md" \
	-n '(b0) native prefix, cold (populating)' --prepare "rm -rf $W/native" "$B" \
	-n '(c0) mount prefix, cold mount (distribution .pyc underneath)' \
	--prepare "$W/remount" "$C" \
	-n "(c0') mount prefix, cold, no_dist_pyc (populating)" \
	--prepare "$CLI --shard $W/scripts2.shard clear" "$C2"
[ "$(entries "$W/scripts.shard")" -eq $((npyc - ndist)) ] ||
	{ echo "py_bench: (c0) committed distribution .pyc" >&2; exit 1; }

# round robin of the warm variants: medians in ms
"$PY" - "$rounds" "$A" "$B" "$C" "$C2" <<'EOF'
import shlex, statistics, subprocess, sys, time
rounds = int(sys.argv[1])
cmds = [shlex.split(c) for c in sys.argv[2:]]
names = ['(a) no cache', '(b) native warm', '(c) mount warm', "(c') no_dist_pyc"]
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
