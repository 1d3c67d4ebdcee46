#!/bin/sh
# cli_test.sh - TAP tests of the scriptcache tool, run as a user would run
# it: the real binary against a shard in a private temporary directory.
#
#   cli_test.sh /path/to/scriptcache VERSION
#
# PYTHON3 (set by meson) parses the --json output.  SC_TEST_KEEP=1 keeps
# the temporary directory for inspection.
set -u

SC=${1:?usage: cli_test.sh SCRIPTCACHE_BINARY VERSION}
VERSION=${2:?usage: cli_test.sh SCRIPTCACHE_BINARY VERSION}
PY=${PYTHON3:-python3}

T=$(mktemp -d /tmp/sc-cli-test.XXXXXX) || { echo "Bail out! mktemp failed"; exit 1; }
if [ "${SC_TEST_KEEP:-0}" = 1 ]; then
	echo "# keeping $T"
else
	trap 'rm -rf "$T"' EXIT
fi
chmod 700 "$T"
# Keys are canonical paths (docs/CLI.md), so the paths below must be too.
T=$(cd "$T" && pwd -P) || { echo "Bail out! cannot resolve $T"; exit 1; }
SHARD=$T/s.shard
# Never touch the real cache of whoever runs the tests.
export SCRIPTCACHE_PATH="$T/default.shard"
unset SCRIPTCACHE XDG_CACHE_HOME SCRIPTCACHE_LOWER_DIR SCRIPTCACHE_BASEDIRS || true
# Nor the machine's lower shards (/usr/lib/scriptcache/*.shard).
export SCRIPTCACHE_LOWER=

n=0
failed=0

# ok STATUS DESCRIPTION: one TAP line; on failure show what the tool said.
ok() {
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2"
		echo "#   last exit status: ${rc:-?}"
		sed -e 's/^/#   stdout: /' "$T/out" 2>/dev/null | head -20
		sed -e 's/^/#   stderr: /' "$T/err" 2>/dev/null | head -20
	fi
}

# check DESCRIPTION COMMAND...: a test that passes when COMMAND succeeds.
check() {
	desc=$1
	shift
	"$@"
	ok $? "$desc"
}

# run ARGS...: run the tool; stdout in $T/out, stderr in $T/err, status in $rc.
run() {
	"$SC" "$@" >"$T/out" 2>"$T/err"
	rc=$?
}
# sc ARGS...: run against the test shard.
sc() { run --shard "$SHARD" "$@"; }

is_rc() { [ "$rc" -eq "$1" ]; }
out_has() { grep -q -e "$1" "$T/out"; }
err_has() { grep -q -e "$1" "$T/err"; }
# The error contract: exactly one line, "scriptcache: <what>: <reason>".
err_one_line() { [ "$(wc -l <"$T/err")" -eq 1 ] && grep -q '^scriptcache: ' "$T/err"; }
# json EXPR: evaluate a Python expression over the parsed stdout (as j).
json() {
	"$PY" -c 'import json,sys
try:
    j = json.load(open(sys.argv[1]))
except ValueError as e:
    print("#   invalid JSON:", e)
    sys.exit(1)
sys.exit(0 if eval(sys.argv[2]) else 1)' "$T/out" "$1"
}

# ---------------------------------------------------------------- help, usage
run --help
check "--help exits 0" is_rc 0
check "--help lists the commands" sh -c "grep -q '^Usage: scriptcache' '$T/out' &&
	for c in stats ls get put rm evict-stale clear verify compact path encode decode; do
		grep -q \"^  \$c \" '$T/out' || exit 1; done"
run --version
check "--version prints the library version" sh -c "[ $rc -eq 0 ] && [ \"\$(cat '$T/out')\" = 'scriptcache $VERSION' ]"
run ls -h
check "-h after a command is help too" is_rc 0

run
check "no command: exit 2" is_rc 2
check "no command: says so" err_has "no command given"
run frobnicate
check "unknown command: exit 2" is_rc 2
check "unknown command: names it" err_has "unknown command 'frobnicate'"
run ls --bogus
check "unknown option: exit 2" is_rc 2
check "unknown option: names it" err_has "unrecognized option '--bogus'"
run ls --shard
check "--shard without a value: exit 2" is_rc 2
sc get
check "get without KEY: exit 2" is_rc 2
sc get a b
check "get with two keys: exit 2" is_rc 2
sc ls --tag x
check "an option the command does not take: exit 2" is_rc 2
check "... and it is named" err_has "option --tag does not apply to 'ls'"
sc stats extra
check "stats with an argument: exit 2" is_rc 2

# ------------------------------------------------------------ no shard yet
for cmd in stats ls verify "get /nope"; do
	# shellcheck disable=SC2086 # word splitting of "get /nope" is wanted
	sc $cmd
	check "$cmd without a shard: exit 1" is_rc 1
	check "$cmd without a shard: says 'no shard at PATH'" sh -c "err_has() { grep -q -e \"\$1\" '$T/err'; }; err_has 'no shard at $SHARD'"
done
check "read-only commands never create a shard" test ! -e "$SHARD"
sc path
check "path without a shard prints where it would be" sh -c "[ $rc -eq 0 ] && [ \"\$(cat '$T/out')\" = '$SHARD' ]"
sc rm /nope
check "rm without a shard: exit 1" is_rc 1
sc clear
check "clear without a shard: nothing to do, exit 0" is_rc 0
check "... and no shard created" test ! -e "$SHARD"

# ------------------------------------------------------------ put / get
SRC=$T/src
mkdir "$SRC"
printf 'print("hello")\n' >"$SRC/hello.lua"
printf 'a\000b\000\377\001\002\nend\000' >"$SRC/bin.luac"
head -c 1048576 /dev/urandom >"$SRC/big.luac"
printf 'return 1\n' >"$SRC/one.lua"

sc put "$SRC/hello.lua" "$SRC/hello.lua"
check "put creates the shard and exits 0" sh -c "[ $rc -eq 0 ] && [ -f '$SHARD' ]"
sc put "$SRC/bin.luac" "$SRC/bin.luac"
check "put of a binary blob with NUL bytes" is_rc 0
sc put "$SRC/big.luac" "$SRC/big.luac"
check "put of a 1 MiB blob" is_rc 0
"$SC" --shard "$SHARD" put "$SRC/one.lua" - <"$SRC/one.lua" >"$T/out" 2>"$T/err"
rc=$?
check "put from stdin ('-')" is_rc 0

for f in hello.lua bin.luac big.luac one.lua; do
	sc get "$SRC/$f"
	check "get $f: exit 0" is_rc 0
	check "get $f: byte-exact" cmp -s "$T/out" "$SRC/$f"
done
run get "$SRC/hello.lua" --shard "$SHARD"
check "--shard after the command works" cmp -s "$T/out" "$SRC/hello.lua"

if [ -w /dev/full ]; then
	"$SC" --shard "$SHARD" get "$SRC/big.luac" >/dev/full 2>"$T/err"
	rc=$?
	check "get to a full disk: exit 2" is_rc 2
	check "... with a write error" err_has "write error"
	"$SC" --help >/dev/full 2>"$T/err"
	rc=$?
	check "--help to a full disk: exit 2 (stdout errors are not ignored)" is_rc 2
fi
sc get "$SRC/absent.lua"
check "get of an absent key: exit 1" is_rc 1
check "get of an absent key: one-line reason" err_one_line
check "... saying there is no entry" err_has "no entry for this key"
sc get -- -dash
check "'--' ends options (a key may start with '-')" is_rc 1

sc put "$SRC/hello.lua" "$SRC/no-such-file"
check "put of an unreadable FILE: exit 2" is_rc 2
check "... one-line error" err_one_line
sc put "$SRC/not-there.lua" "$SRC/hello.lua"
check "put of a KEY naming no file (without --no-source) fails" is_rc 2
check "... one-line error" err_one_line

# ------------------------------------------------------------ ls, stats
sc ls
check "ls: exit 0" is_rc 0
check "ls: header" out_has '^STATUS  *SIZE  *CACHED  *KEY$'
check "ls: hello.lua is fresh" out_has "^fresh  .*  $SRC/hello.lua\$"
check "ls: 1 MiB shown as a human size" out_has "^fresh  *1\\.0 MiB  .*  $SRC/big.luac\$"
check "ls: 4 entries" sh -c "[ \$(grep -c '^fresh ' '$T/out') -eq 4 ]"
sc ls -l
check "ls -l shows the writer" out_has "writer: "
sc ls --json
check "ls --json: exit 0" is_rc 0
check "ls --json parses, 4 fresh entries" json 'len(j) == 4 and all(e["status"] == "fresh" for e in j)'
check "ls --json: keys, sizes and names" json "{e['key']: e['size'] for e in j} == {'$SRC/hello.lua': $(wc -c <"$SRC/hello.lua"), '$SRC/bin.luac': $(wc -c <"$SRC/bin.luac"), '$SRC/big.luac': 1048576, '$SRC/one.lua': $(wc -c <"$SRC/one.lua")} and all(e['name'] == e['key'].replace('%', '%25').replace('/', '%2F') for e in j)"
sc stats --json
check "stats --json parses and counts 4 fresh" json 'j["entries"] == 4 and j["fresh"] == 4 and j["stale"] == 0 and j["live_bytes"] > 1048576'
sc stats
check "stats: human sizes" sh -c "grep -q '^entries *4 (4 fresh, 0 stale, 0 writer-gone)' '$T/out' && grep -q '^file size *1\.[0-9] MiB' '$T/out'"

# ------------------------------------------------------------ stale
# a touch alone keeps it fresh (same bytes, checked by content) ...
touch -d '2001-02-03 04:05:06' "$SRC/one.lua"
sc ls
check "touching the source: still fresh by content" out_has "^fresh  .*  $SRC/one.lua\$"
# ... an edit of the same size does not
sed -i 's/1/2/' "$SRC/one.lua"
touch -d '2001-02-03 04:05:06' "$SRC/one.lua"
sc ls
check "editing the source: ls shows it stale" out_has "^stale  .*  $SRC/one.lua\$"
check "... and the others still fresh" sh -c "[ \$(grep -c '^fresh ' '$T/out') -eq 3 ]"
sc get "$SRC/one.lua"
check "get of a stale entry: exit 1" is_rc 1
check "get of a stale entry: one-line reason" err_one_line
check "... saying the source changed" err_has "source file changed"
sc stats --json
check "stats --json counts the stale entry" json 'j["entries"] == 4 and j["fresh"] == 3 and j["stale"] == 1'

# ------------------------------------------------------------ writer-gone
printf '#!/bin/sh\n' >"$T/fake-interp"
chmod 755 "$T/fake-interp"
sc put --exe "$T/fake-interp" --tag "fake 1.0" "$SRC/hello.lua" "$SRC/hello.lua"
check "put --exe --tag" is_rc 0
sc ls --json
check "ls --json shows the tag and exe of the entry" json "[(e['tag'], e['exe_path']) for e in j if e['key'] == '$SRC/hello.lua'] == [('fake 1.0', '$T/fake-interp')]"
rm "$T/fake-interp"
sc ls
check "removing the writing executable: ls shows writer-gone" out_has "^writer-gone  .*  $SRC/hello.lua\$"
sc get "$SRC/hello.lua"
check "get of a writer-gone entry: exit 1" is_rc 1
check "... saying why" err_has "rebuilt or removed"

# ------------------------------------------------------------ evict-stale
sc evict-stale
check "evict-stale: exit 0" is_rc 0
check "evict-stale reports 2 evicted" out_has "evicted 2 "
sc ls --json
check "evict-stale dropped the stale and writer-gone entries only" json "sorted(e['key'] for e in j) == ['$SRC/big.luac', '$SRC/bin.luac']"

# ------------------------------------------------------------ no-source, rm
sc put --no-source /virtual/thing.pyc "$SRC/bin.luac"
check "put --no-source of a key that names no file" is_rc 0
sc get /virtual/thing.pyc
check "get of a --no-source entry is byte-exact" cmp -s "$T/out" "$SRC/bin.luac"
sc rm /virtual/thing.pyc
check "rm: exit 0" is_rc 0
sc get /virtual/thing.pyc
check "get after rm: exit 1" is_rc 1
sc rm /virtual/thing.pyc
check "rm of an absent key: exit 1" is_rc 1
check "... with a one-line reason" err_one_line

# ------------------------------------------------------------ paths as typed
# A KEY is a path as a user types it, turned into the key an interpreter
# uses (realpath); --key KEY takes a key exactly as given.  Own shard, so
# the counts above and below are not disturbed.
PS=$T/paths.shard
P=$T/paths
mkdir -p "$P/real/sub"
printf 'return "a"\n' >"$P/real/a.lua"
ln -s real/a.lua "$P/link.lua"
ln -s real "$P/dirlink"
A=$P/real/a.lua
# psc ARGS...: the tool on the paths shard; psc_in DIR ARGS...: the same from DIR.
psc() { run --shard "$PS" "$@"; }
psc_in() {
	d=$1
	shift
	(cd "$d" && exec "$SC" --shard "$PS" "$@") >"$T/out" 2>"$T/err"
	rc=$?
}
# keys_are KEY...: the shard holds exactly these keys.
keys_are() {
	run --shard "$PS" ls --json || return 1
	"$PY" -c 'import json,sys
sys.exit(0 if sorted(e["key"] for e in json.load(open(sys.argv[1]))) == sorted(sys.argv[2:]) else 1)' "$T/out" "$@"
}
got_a() { [ "$rc" -eq 0 ] && cmp -s "$T/out" "$A"; }

psc put "$P/link.lua" "$A"
check "put through a symlink: exit 0" is_rc 0
check "... stores the key of the file it points at" keys_are "$A"
psc get "$A"
check "get of the symlink's target finds what was put through the link" got_a
psc get "$P/link.lua"
check "get through the symlink" got_a
psc get "$P/dirlink/a.lua"
check "get through a symlinked directory" got_a
psc_in "$P/real" get a.lua
check "get of a relative path" got_a
psc_in "$P" get ./link.lua
check "get of a relative symlink with ./" got_a
psc get "$P/real/sub/../a.lua"
check "get with a '..' component" got_a
psc get "$P/dirlink/sub/.././/a.lua"
check "get with '..', '.' and '//' under a symlinked directory" got_a
psc_in "$P/real/sub" get ../../link.lua
check "get of a relative '..' path to a symlink" got_a
psc_in "$P" rm dirlink/sub/../a.lua
check "rm of yet another spelling: exit 0" is_rc 0
check "... removes the entry" keys_are
psc get "$A"
check "get after that rm: exit 1" is_rc 1
psc_in "$P/real" put a.lua "$A"
check "put of a relative path" keys_are "$A"
run --shard "$PS" ls
check "ls shows the canonical key" out_has "^fresh  .*  $A\$"

psc encode "$P/link.lua"
check "encode of a symlink is the name of its target's entry" sh -c "[ $rc -eq 0 ] && [ \"\$(cat '$T/out')\" = \"\$('$SC' encode --key '$A')\" ]"
psc_in "$P/real/sub" encode ../a.lua
check "encode of a relative path" sh -c "[ $rc -eq 0 ] && [ \"\$(cat '$T/out')\" = \"\$('$SC' encode --key '$A')\" ]"

# a deleted source: its entry stays reachable by the path it had
printf 'return "g"\n' >"$P/real/gone.lua"
psc_in "$P/real" put gone.lua "$P/real/gone.lua"
rm "$P/real/gone.lua"
psc ls
check "the entry of a deleted source is stale" out_has "^stale  .*  $P/real/gone.lua\$"
psc_in "$P/real" get ./gone.lua
check "get ./gone.lua after deleting it: exit 1, stale (the entry is found)" sh -c "[ $rc -eq 1 ] && grep -q 'source file changed' '$T/err'"
psc_in "$P/real" rm ./gone.lua
check "rm ./gone.lua after deleting it: exit 0" is_rc 0
check "... removed the entry keyed by its absolute path" keys_are "$A"
printf 'x\n' >"$P/real/gone2.lua"
psc put "$P/real/gone2.lua" "$A"
rm "$P/real/gone2.lua"
psc rm "$P/dirlink/sub/../gone2.lua"
check "rm of a deleted file through a symlinked directory and '..'" sh -c "[ $rc -eq 0 ]"
check "... removed it" keys_are "$A"
printf 'x\n' >"$P/real/gone3.lua"
ln -s real/gone3.lua "$P/link3.lua"
psc_in "$P" put link3.lua "$A"
rm "$P/real/gone3.lua"
psc_in "$P" rm link3.lua
check "rm of a dangling symlink reaches its target's entry" is_rc 0
check "... removed it" keys_are "$A"
mkdir "$P/olddir"
printf 'x\n' >"$P/olddir/x.lua"
psc put "$P/olddir/x.lua" "$A"
rm -r "$P/olddir"
psc_in "$P" rm olddir/x.lua
check "rm of a file whose directory is gone too" is_rc 0
check "... removed it" keys_are "$A"

# keys that are not files: --key
psc put --no-source --key thing.pyc "$A"
check "put --no-source --key of a key that is not a path" is_rc 0
check "... stores the key exactly as given" keys_are "$A" thing.pyc
psc_in "$P" get --key thing.pyc
check "get --key of it, from any directory" got_a
psc_in "$T" get thing.pyc
check "get of the same word as a path does not reach it (exit 1)" is_rc 1
check "... and names the key it looked for" err_has "get $T/thing.pyc: "
psc put --key "$P/link.lua" "$A"
check "put --key of a symlink keeps the link's own path" keys_are "$A" thing.pyc "$P/link.lua"
psc get --key "$P/link.lua"
check "get --key of it" got_a
psc rm --key thing.pyc "$P/link.lua" --key "$P/link.lua"
check "rm mixing --key and paths: exit 0" is_rc 0
check "... removed all three" keys_are
psc get --key=-dash
check "--key=KEY may start with '-' (a miss, exit 1)" is_rc 1
psc put "$A" --key "$A"
check "--key in place of put's FILE: exit 2" is_rc 2
psc ls --key x
check "--key with a command that takes no key: exit 2" is_rc 2

# what cannot be a key
ln -s loop1 "$P/loop2"
ln -s loop2 "$P/loop1"
psc get "$P/loop1"
check "get of a symlink loop: exit 2" is_rc 2
check "... one line, pointing to --key" sh -c "[ \$(wc -l <'$T/err') -eq 1 ] && grep -q -- '--key' '$T/err'"
psc get --key "$P/loop1"
check "get --key of the loop's path is only a miss" is_rc 1
psc get ''
check "get of an empty argument: exit 2" is_rc 2

# ------------------------------------------------------------ hostile keys
ESCKEY=$(printf '/esc/\033[31mred\302\233x\tz')
sc put --no-source "$ESCKEY" "$SRC/one.lua"
sc ls
check "ls escapes control bytes in keys" out_has '/esc/\\x1B\[31mred\\xC2\\x9Bx\\x09z$'
check "... so no raw ESC, C1 CSI or TAB reaches the terminal" sh -c "! LC_ALL=C grep -q \"\$(printf '\033')\\|\$(printf '\302\233')\\|\$(printf '\t')\" '$T/out'"
sc ls --json
check "ls --json carries the exact key" json "[e['key'] for e in j if e['key'].startswith('/esc/')] == ['/esc/\\x1b[31mred\\x9bx\\tz'] and all(ord(ch) < 128 for e in j for ch in e['name'])"
sc rm "$ESCKEY"
check "rm of the hostile key" is_rc 0

# ------------------------------------------------------------ verify
sc verify
check "verify of a sound shard: exit 0" is_rc 0
check "verify says ok" out_has ": ok, "
sc verify --json
check "verify --json parses, ok" json 'j["ok"] is True and j["problems"] == [] and j["records_checked"] >= 2'

BAD=$T/bad.shard
MARK=SCRIPTCACHE-TEST-MARKER-7f3a9c
printf 'local s = "%s"\n' "$MARK" >"$SRC/marked.lua"
run --shard "$BAD" put "$SRC/marked.lua" "$SRC/marked.lua"
run --shard "$BAD" verify
check "the shard to corrupt verifies first" is_rc 0
off=$(grep -a -b -o "$MARK" "$BAD" | head -n 1 | cut -d: -f1)
check "the marker is found in the shard" test -n "$off"
printf 'X' | dd of="$BAD" bs=1 seek="${off:-0}" conv=notrunc status=none
run --shard "$BAD" verify
check "verify after flipping a blob byte: exit 1" is_rc 1
check "verify names an offset" out_has "offset [0-9]"
check "verify says CORRUPT" out_has "CORRUPT"
run --shard "$BAD" verify --json
check "verify --json: problems with offsets" json 'j["ok"] is False and len(j["problems"]) >= 1 and all(isinstance(p["offset"], int) for p in j["problems"])'
run --shard "$BAD" get "$SRC/marked.lua"
check "get of the corrupt entry: exit 1" is_rc 1

BAD2=$T/bad2.shard
KMARK=KEYMARK-5d2e81
printf 'return 2\n' >"$SRC/$KMARK.lua"
run --shard "$BAD2" put "$SRC/$KMARK.lua" "$SRC/$KMARK.lua"
run --shard "$BAD2" put "$SRC/one.lua" "$SRC/one.lua"
off=$(grep -a -b -o "$KMARK" "$BAD2" | head -n 1 | cut -d: -f1)
printf 'Q' | dd of="$BAD2" bs=1 seek="${off:-0}" conv=notrunc status=none
run --shard "$BAD2" ls --json
check "ls skips a record whose key was damaged" json "[e['key'] for e in j] == ['$SRC/one.lua']"
check "... and warns on stderr" err_has "1 damaged entry skipped"
run --shard "$BAD2" stats --json
check "stats --json counts the damaged record" json 'j["damaged"] == 1 and j["entries"] == 2'
run --shard "$BAD2" verify
check "verify of a damaged record header: exit 1" is_rc 1

head -c 8192 /dev/zero | tr '\0' 'j' >"$T/junk"
chmod 600 "$T/junk"
run --shard "$T/junk" verify
check "verify of a file that is not a shard: exit 1" is_rc 1
run --shard "$T/junk" ls
check "ls of a file that is not a shard: exit 2" is_rc 2
check "... one-line error" err_one_line
check "... saying it is not a shard" err_has "not a scriptcache shard"
# every meta slot (offsets 512, 1024 and 1536, docs/FORMAT.md) zeroed: the file
# is ours but nothing in it is usable.  Looking leaves it alone; the first
# write sets it aside and starts a new shard.
BAD3=$T/bad3.shard
run --shard "$BAD3" put "$SRC/one.lua" "$SRC/one.lua"
dd if=/dev/zero of="$BAD3" bs=512 seek=1 count=3 conv=notrunc status=none
cp "$BAD3" "$T/bad3.copy"
for cmd in ls stats verify; do
	run --shard "$BAD3" $cmd
	check "$cmd of a shard whose metas are all damaged: exit 1" is_rc 1
	check "... one-line error" err_one_line
	check "... saying what happens next" err_has "corrupt; nothing in it can be served; the next write to the cache sets it aside as $BAD3.corrupt-<time> and starts a new shard ('scriptcache clear' does it now)"
done
check "... and looking leaves the file alone" cmp -s "$BAD3" "$T/bad3.copy"
check "... with nothing set aside" test -z "$(ls "$T" | grep 'bad3.shard.corrupt-')"
run --shard "$BAD3" clear
check "clear of that shard: exit 0" is_rc 0
check "... saying it set the damaged shard aside" err_has "shard $BAD3 was damaged beyond use: set aside as $BAD3.corrupt-<time>, a new shard started"
aside=$(ls "$T" | grep 'bad3.shard.corrupt-')
check "... one copy set aside, named by UTC time ($aside)" test "$(echo "$aside" | grep -c '^bad3.shard.corrupt-[0-9]\{8\}T[0-9]\{6\}\.[0-9]\{9\}Z$')" -eq 1
check "... holding the damaged bytes" cmp -s "$T/$aside" "$T/bad3.copy"
run --shard "$BAD3" verify
check "the new shard verifies" is_rc 0
check "... and verify counts what was set aside" out_has "1 damaged shard set aside beside it ($BAD3.corrupt-\*)"
run --shard "$BAD3" stats --json
check "stats --json: set_aside 1, no entries" json 'j["set_aside"] == 1 and j["entries"] == 0'
run --shard "$BAD3" put "$SRC/one.lua" "$SRC/one.lua"
check "put to the new shard works" is_rc 0
# a foreign file at the shard path is never touched, even by a write
cp "$T/junk" "$T/junk.copy"
run --shard "$T/junk" put --no-source --key /k "$SRC/one.lua"
check "put to a file that is not a shard: refused" is_rc 2
check "... it is left alone" cmp -s "$T/junk" "$T/junk.copy"
check "... with nothing set aside" test -z "$(ls "$T" | grep 'junk.corrupt-')"

head -c 100 "$T/junk" >"$T/short"
chmod 600 "$T/short"
run --shard "$T/short" verify
check "verify of a file shorter than a header: exit 1" is_rc 1

# ------------------------------------------------------------ compact, clear
sc compact
check "compact: exit 0" is_rc 0
check "compact reports what it kept" out_has "2 entries kept"
sc ls --json
check "compact keeps the entries" json "sorted(e['key'] for e in j) == ['$SRC/big.luac', '$SRC/bin.luac']"
sc get "$SRC/big.luac"
check "get after compact is byte-exact" cmp -s "$T/out" "$SRC/big.luac"
sc stats --json
check "compact left no dead bytes" json 'j["dead_bytes"] == 0 and j["entries"] == 2'
sc clear
check "clear: exit 0" is_rc 0
sc ls --json
check "clear empties the shard (ls --json is [])" json 'j == []'
sc stats --json
check "stats --json after clear counts 0" json 'j["entries"] == 0'

# ------------------------------------------------------------ encode / decode
# The encoding rules are about keys as given: --key, so no path resolution.
enc_is() {
	run encode --key "$1"
	[ "$rc" -eq 0 ] && [ "$(cat "$T/out")" = "$2" ]
}
dec_round() {
	run encode --key "$1" && name=$(cat "$T/out") && run decode "$name" &&
		[ "$rc" -eq 0 ] && [ "$(cat "$T/out")" = "$1" ]
}
check "encode: '/' -> %2F, '%' -> %25" enc_is '/a/b%c.lua' '%2Fa%2Fb%25c.lua'
check "encode: leading '.' -> %2E" enc_is '.hidden/x' '%2Ehidden%2Fx'
check "encode: non-ASCII bytes escaped" enc_is "$(printf '/caf\303\251')" '%2Fcaf%C3%A9'
check "encode: control bytes escaped" enc_is "$(printf 'a\tb')" 'a%09b'
check "round trip with '%' and '/'" dec_round '/x/100%/y'
check "round trip with a leading dot" dec_round '..'
check "round trip with non-ASCII bytes" dec_round "$(printf '/\344\275\240\345\245\275/\377')"
LONG=/$(head -c 300 /dev/zero | tr '\0' 'k')
run encode "$LONG"
check "a key too long for NAME_MAX gets '#' + 32 hex digits" sh -c "grep -qx '#[0-9a-f]\{32\}' '$T/out'"
hashed=$(cat "$T/out")
sc decode "$hashed"
check "decode of a hashed name with no shard: exit 1" is_rc 1
sc put --no-source "$LONG" "$SRC/hello.lua"
sc decode "$hashed"
check "decode of a hashed name finds the key in the shard" sh -c "[ $rc -eq 0 ] && [ \"\$(cat '$T/out')\" = '$LONG' ]"
sc decode '#00000000000000000000000000000000'
check "decode of a hashed name matching no entry: exit 1" is_rc 1
for bad in '%zz' '%2f' '%41' 'a%2' '.x' '%00'; do
	run decode "$bad"
	check "decode rejects '$bad' with exit 2" is_rc 2
	check "... and a one-line reason" sh -c "grep -q \"^scriptcache: decode: invalid name '\" '$T/err' && [ \$(wc -l <'$T/err') -eq 1 ]"
done
run encode --key ''
check "encode of an empty key: exit 2" is_rc 2
run encode ''
check "encode of an empty path: exit 2" is_rc 2

# ------------------------------------------------------------ SCRIPTCACHE=0
for cmd in stats ls "get /x" "put /x $SRC/hello.lua" "rm /x" clear compact evict-stale verify path; do
	# shellcheck disable=SC2086
	SCRIPTCACHE=0 "$SC" $cmd >"$T/out" 2>"$T/err"
	rc=$?
	check "SCRIPTCACHE=0 $cmd: exit 2" is_rc 2
	check "SCRIPTCACHE=0 $cmd: says caching is disabled" sh -c "[ \"\$(cat '$T/err')\" = 'scriptcache: caching is disabled (SCRIPTCACHE=0)' ]"
done
check "SCRIPTCACHE=0 created no default shard" test ! -e "$SCRIPTCACHE_PATH"
SCRIPTCACHE=0 "$SC" --shard "$SHARD" put --no-source /env/k "$SRC/one.lua" >"$T/out" 2>"$T/err"
rc=$?
check "SCRIPTCACHE=0 with an explicit --shard still works (put)" is_rc 0
SCRIPTCACHE=0 "$SC" --shard "$SHARD" get /env/k >"$T/out" 2>"$T/err"
rc=$?
check "SCRIPTCACHE=0 with an explicit --shard still works (get)" cmp -s "$T/out" "$SRC/one.lua"
SCRIPTCACHE=0 "$SC" encode /a >"$T/out" 2>"$T/err"
rc=$?
check "SCRIPTCACHE=0 does not stop encode" is_rc 0

# ------------------------------------------------------------ default path
run put --no-source /dflt/k "$SRC/one.lua"
check "without --shard, \$SCRIPTCACHE_PATH is used" sh -c "[ $rc -eq 0 ] && [ -f '$SCRIPTCACHE_PATH' ]"
run path
check "path prints \$SCRIPTCACHE_PATH" sh -c "[ \"\$(cat '$T/out')\" = '$SCRIPTCACHE_PATH' ]"

# ------------------------------------------------------------ blobs stored once
DSHARD="$T/dedup.shard"
for k in /dedup/a.pyc /dedup/a.opt-1.pyc /dedup/a.opt-2.pyc; do
	run --shard "$DSHARD" put --no-source "$k" "$SRC/big.luac"
done
run --shard "$DSHARD" stats --json
check "stats --json: three entries with the same bytes, one blob stored" json 'j["entries"] == 3 and j["blobs"] == 1 and j["logical_bytes"] == 3 * 1048576 and j["stored_bytes"] == 1048576'
run --shard "$DSHARD" stats
check "stats: logical and stored bytes" out_has "^blobs  *1 stored once: 3\.0 MiB of blobs in 1\.0 MiB"
run --shard "$DSHARD" ls --json
check "ls --json: one blob_id for the three" json 'len({e["blob_id"] for e in j}) == 1 and len(j[0]["blob_id"]) == 32'

# ------------------------------------------------------------ layers
# A lower shard (read-only, 0644) under the default shard, configured by
# SCRIPTCACHE_LOWER as an interpreter would have it (docs/LAYERS.md).
L=$T/layers
mkdir -p "$L/app/.cache" "$L/elsewhere"
printf 'return "low"\n' >"$L/app/low.lua"
printf 'return "both"\n' >"$L/app/both.lua"
printf 'return "own"\n' >"$L/app/own.lua"
LOW=$L/low.shard
OWN=$L/own.shard
run --shard "$LOW" put "$L/app/low.lua" "$L/app/low.lua"
run --shard "$LOW" put "$L/app/both.lua" "$L/app/low.lua"
chmod 644 "$LOW"
lsum() { cksum <"$LOW"; }
low_before=$(lsum)
# sl ARGS...: the tool on the default shard OWN with LOW under it.
sl() {
	SCRIPTCACHE_PATH=$OWN SCRIPTCACHE_LOWER=$LOW "$SC" "$@" >"$T/out" 2>"$T/err"
	rc=$?
}
sl put "$L/app/own.lua" "$L/app/own.lua"
sl put "$L/app/both.lua" "$L/app/both.lua"
sl ls
check "ls with a lower shard: exit 0" is_rc 0
check "ls shows a LAYER column" out_has "^STATUS  *SIZE  *CACHED  *LAYER  *KEY"
check "ls: the lower entry is in layer 1" out_has " 1  *$L/app/low.lua\$"
check "ls: the own entry is in layer own" out_has " own  *$L/app/own.lua\$"
check "ls: a key in both shows the own entry" out_has " own  *$L/app/both.lua\$"
check "ls: a shadowed key is listed once" sh -c "[ \$(grep -c 'app/both.lua' '$T/out') -eq 1 ]"
check "ls names the layers" out_has "^layer 1: $LOW\$"
sl ls --json
check "ls --json: layer and layer_path of each entry" json "sorted((e['key'].rsplit('/',1)[1], e['layer'], e['layer_path']) for e in j) == [('both.lua', 0, '$OWN'), ('low.lua', 1, '$LOW'), ('own.lua', 0, '$OWN')]"
sl --no-lowers ls --json
check "--no-lowers: the own shard alone" json "sorted(e['key'].rsplit('/',1)[1] for e in j) == ['both.lua', 'own.lua']"
sl get "$L/app/low.lua"
check "get serves the lower entry" cmp -s "$T/out" "$L/app/low.lua"
sl stats
check "stats mentions the lower shard" out_has "^lower 1  *$LOW: 2 entries (1 shown)"
sl stats --json
check "stats --json: the lower shards" json "len(j['lower']) == 1 and j['lower'][0]['path'] == '$LOW' and j['lower'][0]['entries'] == 2 and j['lower'][0]['error'] is None"
sl rm "$L/app/low.lua"
check "rm of a lower entry: exit 0" is_rc 0
check "rm says a whiteout hides it" out_has "hidden by a whiteout (lower shard 1"
sl get "$L/app/low.lua"
check "then get misses (exit 1)" is_rc 1
sl ls --json
check "and ls no longer lists it" json "'$L/app/low.lua' not in [e['key'] for e in j]"
check "the lower shard was not written" sh -c "[ \"\$(cksum <'$LOW')\" = '$low_before' ]"
sl rm "$L/app/low.lua"
check "rm again: not found (exit 1)" is_rc 1
sl put "$L/app/low.lua" "$L/app/own.lua"
sl get "$L/app/low.lua"
check "a put after the whiteout is served" cmp -s "$T/out" "$L/app/own.lua"
sl verify
check "verify of the stack: exit 0" is_rc 0
check "verify says it checked the lower shard" out_has "1 lower shard"
chmod 666 "$LOW"
sl ls
check "a lower shard writable by others: ls still works" is_rc 0
check "... and says the lower shard is not used" err_has "lower shard 1 ($LOW) not used: "
sl verify
check "verify of a refused lower shard: exit 1" is_rc 1
check "verify says why" out_has "lower shard 1 ($LOW): not used: shard not owned by this user or writable by others"
chmod 644 "$LOW"

# build: a compact relocatable shard from the own one, used from a copy.
BSRC=$L/dev.shard
printf 'return "main"\n' >"$L/app/main.lua"
printf 'return "out"\n' >"$L/elsewhere/out.lua"
run --shard "$BSRC" put "$L/app/main.lua" "$L/app/main.lua"
run --shard "$BSRC" put "$L/elsewhere/out.lua" "$L/elsewhere/out.lua"
run --shard "$BSRC" put --tag other "$L/app/low.lua" "$L/app/low.lua"
run --shard "$BSRC" build --tag "" --base-dir "$L/app" "$L/app/.cache/app.shard"
check "build --base-dir: exit 0" is_rc 0
check "build says what it wrote" out_has "^built $L/app/.cache/app.shard: 2 entries (1 left out.*relocatable: base $L/app\$"
run --shard "$L/app/.cache/app.shard" verify
check "the built shard passes verify" is_rc 0
run --shard "$L/app/.cache/app.shard" stats --json
check "the built shard has no dead space" json "j['dead_bytes'] == 0 and j['entries'] == 2"
run --shard "$L/app/.cache/app.shard" ls --json
check "ls --json of the built shard: the key stored relative to its base" json "sorted(e.get('stored_key') for e in j if 'stored_key' in e) == ['main.lua']"
cp -r "$L/app" "$L/copy"
chmod 644 "$L/copy/.cache/app.shard"
# (The own shard exists: an interpreter's sc_open() creates it.)
run --shard "$L/own2.shard" put --no-source /own2/k "$L/app/own.lua"
SCRIPTCACHE_PATH=$L/own2.shard SCRIPTCACHE_LOWER=$L/copy/.cache/app.shard "$SC" get "$L/copy/main.lua" >"$T/out" 2>"$T/err"
rc=$?
check "the copied tree hits its copied shard" cmp -s "$T/out" "$L/copy/main.lua"
SCRIPTCACHE_PATH=$L/own2.shard SCRIPTCACHE_LOWER=$L/copy/.cache/app.shard "$SC" ls >"$T/out" 2>"$T/err"
rc=$?
check "ls shows the relocated entry under the copy" out_has " 1  *$L/copy/main.lua\$"
run --shard "$BSRC" build "$BSRC"
check "build over the shard it reads: exit 2" is_rc 2
run --shard "$BSRC" build --base-dir "$L/no-such-dir" "$L/x.shard"
check "build with a missing --base-dir: exit 2" is_rc 2
check "... one line" err_one_line

echo "1..$n"
[ "$failed" -eq 0 ]
