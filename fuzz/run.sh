#!/usr/bin/env bash
# Build and run the libFuzzer targets (fuzz/README.md).
#
#   fuzz/run.sh build                 build the fuzzers with clang
#   fuzz/run.sh gen                   regenerate fuzz/corpus/{shard,bad,pending-write}
#   fuzz/run.sh run TARGET [SECONDS] [libFuzzer args...]
#                                     fuzz one target (default 60 s)
#   fuzz/run.sh ci [SECONDS]          every target for SECONDS (default 20) each
#   fuzz/run.sh long [SECONDS]        every target for SECONDS (default 300) each
#   fuzz/run.sh par TARGET SECONDS [N] [libFuzzer args...]
#                                     N processes (default: one per core) on
#                                     one target, sharing its work corpus;
#                                     prints the executions they made in all
#
# Targets: fuzz_shard, fuzz_shard_write, fuzz_pathenc.  Everything goes to
# $SC_FUZZ_OUT (default /tmp/scriptcache-fuzz): binaries, the growing work
# corpus (corpus-TARGET/), crash/timeout artifacts (artifacts/) and logs.
# The checked-in corpus under fuzz/corpus/ is only read, as seeds.  One
# process per target at a time (-jobs is left to the caller: pass
# "-jobs=2 -workers=2" after SECONDS to use two cores, or use par).
#
# A run fails (exit 1) if libFuzzer reports a crash, a leak, a timeout or
# an out-of-memory; the input is in artifacts/ and its name in the log.
# Minimise it with `run TARGET 0 -minimize_crash=1 -runs=10000 FILE`,
# give it a name that says what it is and put it in fuzz/corpus/bad/ (or
# pending-write/ while the bug is open): tests/fuzz replays it from then on.
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
out=${SC_FUZZ_OUT:-/tmp/scriptcache-fuzz}
CC=${CC_FUZZ:-clang}
targets=(fuzz_shard fuzz_shard_write fuzz_pathenc)
# Steer fuzz_shard_write around the core bugs already in
# fuzz/corpus/pending-write/ (see fuzz_shard_write.c); set to 0 once they
# are fixed, or to check that they still reproduce.
export SC_FUZZ_SKIP_KNOWN=${SC_FUZZ_SKIP_KNOWN:-0}

build() {
	mkdir -p "$out"
	local common=(-std=c11 -D_GNU_SOURCE -g -O1 -fno-omit-frame-pointer
		-fno-sanitize-recover=undefined -Wall -Wextra
		-I"$top/include" -I"$top/core" -I"$top/fuzz")
	local flags=("${common[@]}" -fsanitize=fuzzer,address,undefined)
	local core=("$top"/core/*.c)
	# The packing and the custom mutator are the harness, not the code
	# under test: built without coverage instrumentation (its comparisons
	# would cost more than the run and steer libFuzzer by the harness's
	# own branches), with the sanitizers still on.
	# pack.c touches every byte of every input: optimised, unsanitised
	# (tests/fuzz/test_pack runs it under the sanitizers).
	"$CC" "${common[@]}" -O2 -c -o "$out/pack.o" "$top/fuzz/pack.c"
	local f
	for f in shard_fix shard_mutator; do
		"$CC" "${common[@]}" -fsanitize=address,undefined -c -o "$out/$f.o" "$top/fuzz/$f.c"
	done
	"$CC" "${flags[@]}" -o "$out/fuzz_shard" "$top/fuzz/fuzz_shard.c" "$top/fuzz/fuzz_common.c" \
		"$out/pack.o" "$out/shard_fix.o" "$out/shard_mutator.o" "${core[@]}" -lxxhash -lpthread
	"$CC" "${flags[@]}" -o "$out/fuzz_shard_write" "$top/fuzz/fuzz_shard_write.c" "$top/fuzz/fuzz_common.c" \
		"$out/pack.o" "$out/shard_fix.o" "$out/shard_mutator.o" "${core[@]}" -lxxhash -lpthread
	"$CC" "${flags[@]}" -o "$out/fuzz_pathenc" "$top/fuzz/fuzz_pathenc.c" "$top/fuzz/fuzz_common.c" \
		"$out/pack.o" "${core[@]}" -lxxhash -lpthread
	echo "built ${targets[*]} in $out"
}

gen() {
	mkdir -p "$out" "$top/fuzz/corpus"
	# a plain build against the library sources: the seeds must be what
	# the real library writes
	cc -std=c11 -D_GNU_SOURCE -O1 -Wall -Wextra -I"$top/include" -I"$top/core" -I"$top/fuzz" -o "$out/gen_corpus" \
		"$top/fuzz/gen_corpus.c" "$top/fuzz/shard_fix.c" "$top/fuzz/pack.c" "$top"/core/*.c -lxxhash -lpthread
	# bad/ and pending-write/ also hold inputs found by fuzzing: overwrite,
	# never clear; v1/ is frozen (format 1 shards, made by 0.1)
	rm -rf "$top/fuzz/corpus/shard"
	"$out/gen_corpus" "$top/fuzz/corpus"
	echo "wrote $(find "$top/fuzz/corpus" -type f | wc -l) files under fuzz/corpus"
}

seeds() { # target -> seed directories
	case $1 in
	fuzz_pathenc) echo "$top/fuzz/corpus/pathenc" ;;
	*) echo "$top/fuzz/corpus/shard $top/fuzz/corpus/bad $top/fuzz/corpus/pending-write $top/fuzz/corpus/v1" ;;
	esac
}

limits() { # target -> its libFuzzer options, in the array extra
	case $1 in
	fuzz_pathenc) extra=(-max_len=1024 -timeout=10 -dict="$top/fuzz/pathenc.dict") ;;
	# a format 2 shard with one entry is 116 KiB (two empty tables, a
	# 64 KiB metadata chunk): a smaller max_len would cut every seed
	*) extra=(-max_len=262144 -timeout=10 -rss_limit_mb=2048) ;;
	esac
}

# What in a log means libFuzzer or a sanitizer found something.
problem_re='ERROR: libFuzzer|ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error|Test unit written'

run() { # target seconds [args...]
	local t=$1 secs=${2:-60}
	shift 2 || shift $#
	[ -x "$out/$t" ] || build
	mkdir -p "$out/corpus-$t" "$out/artifacts"
	local extra
	limits "$t"
	echo "== $t for ${secs}s (SC_FUZZ_SKIP_KNOWN=$SC_FUZZ_SKIP_KNOWN)"
	# shellcheck disable=SC2046
	(cd "$out" && "./$t" -max_total_time="$secs" -print_final_stats=1 "${extra[@]}" \
		-artifact_prefix="$out/artifacts/$t-" "$@" "corpus-$t" $(seeds "$t")) \
		2>&1 | tee "$out/$t.log" | grep -E '^(#[0-9]+ +(DONE|INITED)|stat::|==[0-9]+==|SUMMARY|artifact_prefix|Test unit written|fuzz invariant)' || true
	if grep -qE "$problem_re" "$out/$t.log"; then
		echo "!! $t found a problem: see $out/$t.log and $out/artifacts/"
		return 1
	fi
}

# Several libFuzzer processes on one target: they share corpus-TARGET/ (each
# reloads what the others add, libFuzzer's -reload) and log to
# TARGET.N.log.  Fails if any of them found a problem.
par() { # target seconds [n] [args...]
	local t=$1 secs=$2 n=${3:-$(nproc)}
	shift 3 || shift $#
	[ -x "$out/$t" ] || build
	mkdir -p "$out/corpus-$t" "$out/artifacts"
	local extra
	limits "$t"
	echo "== $t: $n processes for ${secs}s"
	local pids=() i
	for ((i = 1; i <= n; i++)); do
		# shellcheck disable=SC2046
		(cd "$out" && exec "./$t" -max_total_time="$secs" -print_final_stats=1 "${extra[@]}" \
			-artifact_prefix="$out/artifacts/$t-" "$@" "corpus-$t" $(seeds "$t")) \
			>"$out/$t.$i.log" 2>&1 &
		pids+=($!)
	done
	wait "${pids[@]}" || true
	local total=0 bad=0 runs
	for ((i = 1; i <= n; i++)); do
		runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$out/$t.$i.log")
		echo "   process $i: ${runs:-?} executions ($out/$t.$i.log)"
		total=$((total + ${runs:-0}))
		if [ -z "$runs" ] || grep -qE "$problem_re" "$out/$t.$i.log"; then
			echo "!! $t process $i found a problem or did not finish: see $out/$t.$i.log and $out/artifacts/"
			bad=1
		fi
	done
	echo "== $t: $total executions in all, $([ $bad = 0 ] && echo "0 findings" || echo "FINDINGS")"
	return $bad
}

cmd=${1:-}
shift || true
case $cmd in
build) build ;;
gen) gen ;;
run) run "$@" ;;
par) par "$@" ;;
ci | long)
	secs=${1:-$([ "$cmd" = ci ] && echo 20 || echo 300)}
	shift || true
	build
	status=0
	for t in "${targets[@]}"; do run "$t" "$secs" "$@" || status=1; done
	exit $status
	;;
*)
	sed -n '2,/^set /{/^set /d;p;}' "$0"
	exit 2
	;;
esac
