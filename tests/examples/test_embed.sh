#!/bin/sh
# examples/embed: the first run of a script misses and compiles, the second
# hits with the same bytes, and a changed source misses again.  TAP.
set -u
embed=$1
dir=$(mktemp -d /tmp/sc-embed.XXXXXX) || exit 1
trap 'rm -rf "$dir"' EXIT
# the example opens the default shard: keep it in here
export SCRIPTCACHE_PATH="$dir/s.shard"
unset SCRIPTCACHE
n=0 failed=0
check() { # description, command...
	n=$((n + 1))
	d=$1
	shift
	if "$@"; then echo "ok $n - $d"; else echo "not ok $n - $d"; failed=1; fi
}
printf 'print("hello")' > "$dir/app.lua"
"$embed" "$dir/app.lua" > "$dir/out" 2>&1
rc=$?
check "embed exits 0" [ "$rc" -eq 0 ]
check "it reports the library version" grep -q '^libscriptcache [0-9]' "$dir/out"
check "the first run misses and compiles" \
	grep -qx 'miss, compiled 14 bytes: )"olleh"(tnirp' "$dir/out"
check "the second run hits with the same bytes" \
	grep -qx 'hit 14 bytes: )"olleh"(tnirp' "$dir/out"
"$embed" "$dir/app.lua" > "$dir/out2" 2>&1
check "a new process hits at once" \
	[ "$(grep -c '^hit 14 bytes' "$dir/out2")" -eq 2 ]
sleep 0.01
printf 'print("bye")' > "$dir/app.lua"
"$embed" "$dir/app.lua" > "$dir/out3" 2>&1
check "a changed source misses, then hits the new bytes" \
	sh -c "sed -n 2p '$dir/out3' | grep -qx 'miss, compiled 12 bytes: )\"eyb\"(tnirp' &&
	       sed -n 3p '$dir/out3' | grep -qx 'hit 12 bytes: )\"eyb\"(tnirp'"
[ "$failed" -eq 0 ] || { echo "# output:"; sed 's/^/# /' "$dir/out" "$dir/out3"; }
echo "1..$n"
exit $failed
