#!/bin/bash
# test_lua.sh - scriptcache.so under the real lua5.4, speaking TAP.
#
# usage: test_lua.sh LUA MODULE_DIR [LUAHOST [CLI]]
#   LUA         the interpreter (lua5.4)
#   MODULE_DIR  directory holding the built scriptcache.so
#   LUAHOST     optional second Lua build (tests/lua/luahost.c), or ""
#   CLI         optional scriptcache CLI, to plant bad blobs
#
# Every program runs three times in the same directory with the same
# environment: plain `lua5.4 ARGS`, then `lua5.4 -l scriptcache ARGS` twice
# against a fresh shard (the miss run fills it, the hit run is served from
# it).  Standard output, standard error and the exit status must be the
# same bytes all three times.  A finalizer installed with -e writes the
# module's counters when the interpreter closes, so each case also checks
# that the miss run really compiled and stored and the hit run really hit;
# a run that leaves no counters fails.
#
# Works in a mktemp directory, removed on exit unless SC_TEST_KEEP=1.
# SC_LUA_PRELOAD: a library to LD_PRELOAD into every interpreter run (the
# ASan runtime, when the module is built with -Db_sanitize=address).
set -u

LUA=${1:?usage: test_lua.sh LUA MODULE_DIR [LUAHOST]}
MODDIR=${2:?usage: test_lua.sh LUA MODULE_DIR [LUAHOST]}
HOST=${3:-}
CLI=${4:-}
# Every run happens in its own directory: make the paths absolute.
[[ $LUA == */* ]] && LUA=$(realpath "$LUA")
MODDIR=$(realpath "$MODDIR") || exit 1
[ -n "$HOST" ] && { HOST=$(realpath "$HOST") || exit 1; }
[ -n "$CLI" ] && { CLI=$(realpath "$CLI") || exit 1; }

T=$(mktemp -d /tmp/sc-lua-test.XXXXXX) || exit 1
trap '[ -n "${SC_TEST_KEEP:-}" ] && echo "# kept $T" || rm -rf "$T"' EXIT

# One environment for every run: the module found in the build tree, the
# shard in the work directory, nothing from the caller's Lua setup.
unset LUA_PATH LUA_PATH_5_4 LUA_INIT LUA_INIT_5_4 LUA_CPATH SCRIPTCACHE
export LUA_CPATH_5_4="$MODDIR/?.so;;"
export SCRIPTCACHE_PATH="$T/shard/scripts.shard"

# Writes the counters at lua_close (finalizers run in reverse order of
# marking, so this runs before the C modules are unloaded).  Stored in the
# registry: no global, nothing the program can see.
PROBE='local sc = package.loaded.scriptcache
debug.getregistry().sctest_probe = setmetatable({}, {__gc = function()
  local s = sc.stats()
  local f = assert(io.open(os.getenv("SCTEST_STATS"), "w"))
  f:write(string.format("hits=%d misses=%d stored=%d bypassed=%d enabled=%s error=%s\n",
    s.hits, s.misses, s.stored, s.bypassed, tostring(s.enabled), tostring(s.error)))
  f:close()
end})'

n=0
failed=0

ok() { # COND-STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $n - $2"
	else
		failed=$((failed + 1))
		echo "not ok $n - $2"
	fi
}

skip() {
	n=$((n + 1))
	echo "ok $n - $1 # SKIP $2"
}

diag() {
	sed 's/^/#   /'
}

# run OUT DIR CMD...: run CMD in DIR, keep OUT.out, OUT.err, OUT.rc
run() {
	local out=$1 dir=$2
	shift 2
	(cd "$dir" && exec env ${SC_LUA_PRELOAD:+LD_PRELOAD="$SC_LUA_PRELOAD"} "$@") >"$out.out" 2>"$out.err"
	echo $? >"$out.rc"
}

# lua ARGS...: the interpreter, outside run()
lua() {
	env ${SC_LUA_PRELOAD:+LD_PRELOAD="$SC_LUA_PRELOAD"} "$LUA" "$@"
}

# same NAME A B: A and B printed and returned the same
same() {
	local name=$1 a=$2 b=$3 rc=0 f
	for f in out err rc; do
		if ! cmp -s "$a.$f" "$b.$f"; then
			rc=1
			echo "# $name: $f differs (plain vs cached):"
			diff "$a.$f" "$b.$f" | head -20 | diag
		fi
	done
	ok $rc "$name"
}

# stats NAME FILE PATTERN: the counters written by the probe match PATTERN
stats() {
	local name=$1 file=$2 pat=$3 line
	if [ ! -s "$file" ]; then
		echo "# $name: the probe wrote no counters"
		ok 1 "$name"
		return
	fi
	line=$(cat "$file")
	# shellcheck disable=SC2053
	if [[ $line == $pat ]]; then
		ok 0 "$name"
	else
		echo "# $name: got '$line', want '$pat'"
		ok 1 "$name"
	fi
}

# compare NAME DIR MISS_PAT HIT_PAT ARGS...: plain vs miss vs hit.
# Optional: CMD another interpreter; the arrays CENV (environment of the
# cached runs) and CARGS (how they load the module, default -l scriptcache).
CENV=()
CARGS=(-l scriptcache)
compare() {
	local name=$1 dir=$2 mpat=$3 hpat=$4 pass pat
	local lua=${CMD:-$LUA}
	shift 4
	mkdir -p "$T/r"
	run "$T/r/plain" "$dir" "$lua" "$@"
	for pass in miss hit; do
		rm -f "$T/r/$pass.stats"
		run "$T/r/$pass" "$dir" env SCTEST_STATS="$T/r/$pass.stats" "${CENV[@]}" \
			"$lua" "${CARGS[@]}" -e "$PROBE" "$@"
		same "$name: $pass run same as plain" "$T/r/plain" "$T/r/$pass"
		if [ $pass = miss ]; then pat=$mpat; else pat=$hpat; fi
		stats "$name: $pass run counters" "$T/r/$pass.stats" "$pat"
	done
	if [ -n "${VERBOSE:-}" ]; then
		echo "# plain: rc $(cat "$T/r/plain.rc")"
		diag <"$T/r/plain.out"
		diag <"$T/r/plain.err"
	fi
}

fresh_shard() {
	rm -rf "$T/shard"
}

# ---------------------------------------------------------------- sanity
lua -e 'assert(_VERSION == "Lua 5.4")' 2>/dev/null
ok $? "the interpreter is Lua 5.4"
(cd "$T" && lua -l scriptcache -e 'assert(package.searchers[2] ~= nil and #package.searchers == 5)') 2>&1 | diag
ok "${PIPESTATUS[0]}" "the module loads and adds one searcher"
(cd "$T" && lua -e 'require "scriptcache"; require "scriptcache"; package.loaded.scriptcache = nil; require "scriptcache"; assert(#package.searchers == 5)') 2>&1 | diag
ok "${PIPESTATUS[0]}" "loading the module again does not add a second searcher"

# ---------------------------------------------------------------- module tree
D=$T/tree
mkdir -p "$D/app" "$D/real"
cat >"$D/main.lua" <<'EOF'
print("main", select("#", ...), ...)
local app = require "app"
local util = require "app.util"
print(app.name)
print(util.double(21), util.pi, util.big, util.long:sub(1, 20), #util.long)
print(require("app.util") == util, package.loaded["app.util"] == util)
print("nothing:", require "app.nothing", package.loaded["app.nothing"])
print("falsy:", require "app.falsy", package.loaded["app.falsy"])
print("multi:", select("#", require "app.multi"), require "app.multi")
local counter = util.counter()
counter() counter()
print("counter", counter())
local info = debug.getinfo(util.double, "S")
print(info.source, info.short_src, info.linedefined, info.lastlinedefined, info.what)
print(debug.getinfo(1, "S").source)
print(debug.getlocal(util.double, 1), debug.getupvalue(counter, 1))
print(pcall(util.fail))
print(util.where())
print(require "link")
print(require "alias")
local viadir = require "appdir.util"
print(viadir ~= util, viadir.double(4), debug.getinfo(viadir.double, "S").source)
print(require("shebang").line())
print(package.loaded["app.util"] ~= nil, package.loaded.nosuch)
EOF
cat >"$D/app/init.lua" <<'EOF'
local name, path = ...
return { name = name .. " from " .. path .. " (" .. select("#", ...) .. " args)" }
EOF
cat >"$D/app/util.lua" <<'EOF'
local M = {}
local twice = 2
function M.double(x)
  return x * twice
end
M.pi = 3.14159
M.big = math.maxinteger
M.long = string.rep("long string ", 100)
function M.counter()
  local n = 0
  return function() n = n + 1 return n end
end
function M.fail()
  error("util failed")
end
function M.where()
  return debug.traceback("where", 1)
end
return M
EOF
echo 'local x = 1' >"$D/app/nothing.lua"
echo 'return false' >"$D/app/falsy.lua"
echo 'return "multi", "ignored"' >"$D/app/multi.lua"
echo 'return debug.getinfo(1, "S").source .. " " .. select(2, ...)' >"$D/real/target.lua"
ln -s real/target.lua "$D/link.lua"
ln -s real/target.lua "$D/alias.lua"
ln -s app "$D/appdir"
cat >"$D/shebang.lua" <<'EOF'
#!/usr/bin/env lua5.4
local M = {}
function M.line() return debug.getinfo(1, "l").currentline end
return M
EOF
fresh_shard
# miss run: 9 loads of 7 files: alias is the same file as link, appdir/util
# the same as app/util (one key each), so those hit
compare "module tree" "$D" \
	"hits=2 misses=7 stored=7 bypassed=0 *" "hits=9 misses=0 stored=0 bypassed=0 *" \
	main.lua one "two words" ""

# ---------------------------------------------------------------- syntax errors
D=$T/syntax
mkdir -p "$D"
cat >"$D/main.lua" <<'EOF'
require "good"
for i = 1, 2 do
  print(pcall(require, "bad"))
  print(package.loaded.bad)
end
require "bad"
EOF
echo 'return 1' >"$D/good.lua"
printf 'local t = {\n  1,\n  2 3\n}\nreturn t\n' >"$D/bad.lua"
fresh_shard
compare "syntax error in a module" "$D" \
	"hits=0 misses=4 stored=1 *" "hits=1 misses=3 stored=0 *" main.lua
compare "syntax error in the main script" "$D" \
	"hits=0 misses=0 stored=0 *" "hits=0 misses=0 stored=0 *" bad.lua

# ---------------------------------------------------------------- runtime errors
D=$T/runtime
mkdir -p "$D/lib"
cat >"$D/main.lua" <<'EOF'
local lib = require "lib.calc"
print(xpcall(lib.divide, debug.traceback, 1, 0))
local ok, e = pcall(lib.throw_table)
print(ok, type(e), e.code)
print(pcall(require, "lib.explode"))
lib.divide(1, 0)
EOF
cat >"$D/lib/calc.lua" <<'EOF'
local M = {}

local function check(b)
  if b == 0 then
    error("division by zero", 2)
  end
end

function M.divide(a, b)
  check(b)
  return a / b
end

function M.throw_table()
  error({ code = 42 })
end

return M
EOF
cat >"$D/lib/explode.lua" <<'EOF'
local t = nil
return t.field
EOF
fresh_shard
compare "runtime errors and tracebacks" "$D" \
	"hits=0 misses=2 stored=2 *" "hits=2 misses=0 stored=0 *" main.lua
cat >"$D/main2.lua" <<'EOF'
require "lib.explode"
EOF
compare "error while running a module (uncaught)" "$D" \
	"hits=1 misses=0 stored=0 *" "hits=1 misses=0 stored=0 *" main2.lua

# ---------------------------------------------------------------- edits
D=$T/edit
mkdir -p "$D"
echo 'print(require "ver")' >"$D/main.lua"
echo 'return "version 1"' >"$D/ver.lua"
fresh_shard
compare "before an edit" "$D" "hits=0 misses=1 stored=1 *" "hits=1 misses=0 stored=0 *" main.lua
echo 'return "version 2"' >"$D/ver.lua" # same size
compare "after an edit keeping the size" "$D" "hits=0 misses=1 stored=1 *" "hits=1 misses=0 stored=0 *" main.lua
echo 'return "version three"' >"$D/ver.lua"
compare "after an edit changing the size" "$D" "hits=0 misses=1 stored=1 *" "hits=1 misses=0 stored=0 *" main.lua
printf 'return "broken' >"$D/ver.lua"
compare "after an edit breaking the syntax" "$D" "hits=0 misses=1 stored=0 *" "hits=0 misses=1 stored=0 *" main.lua
echo 'return "version 4"' >"$D/ver.lua"
compare "after fixing it" "$D" "hits=0 misses=1 stored=1 *" "hits=1 misses=0 stored=0 *" main.lua

# ---------------------------------------------------------------- rename, delete, shadow
D=$T/move
mkdir -p "$D/a" "$D/b"
echo 'package.path = "./a/?.lua;./b/?.lua;" .. package.path print(require "mod")' >"$D/main.lua"
echo 'return "mod from b"' >"$D/b/mod.lua"
fresh_shard
compare "module found in the second directory" "$D" "hits=0 misses=1 stored=1 *" "hits=1 misses=0 stored=0 *" main.lua
echo 'return "mod from a"' >"$D/a/mod.lua"
compare "a new file earlier on package.path shadows the cached one" "$D" \
	"hits=0 misses=1 stored=1 *" "hits=1 misses=0 stored=0 *" main.lua
mv "$D/a/mod.lua" "$D/a/renamed.lua"
compare "shadowing file renamed away" "$D" "hits=1 misses=0 stored=0 *" "hits=1 misses=0 stored=0 *" main.lua
sed -i 's/require "mod"/require "renamed"/' "$D/main.lua"
compare "main requires the renamed module" "$D" "hits=0 misses=1 stored=1 *" "hits=1 misses=0 stored=0 *" main.lua
rm "$D/a/renamed.lua"
compare "renamed module deleted" "$D" "hits=0 misses=0 stored=0 *" "hits=0 misses=0 stored=0 *" main.lua

# ---------------------------------------------------------------- missing modules
D=$T/missing
mkdir -p "$D"
cat >"$D/main.lua" <<'EOF'
print(pcall(require, "no.such.module"))
print(select(2, pcall(require, "")))
print(pcall(require, "dirmod"))
require "still.missing"
EOF
mkdir -p "$D/dirmod.lua"
fresh_shard
# dirmod.lua is a directory: found (it opens), then fails to read
compare "require of a missing module" "$D" "hits=0 misses=1 stored=0 *" "hits=0 misses=1 stored=0 *" main.lua
echo 'package.path = 42 print(pcall(require, "x")) package.path = nil require "x"' >"$D/badpath.lua"
compare "package.path not a string" "$D" "hits=0 misses=0 stored=0 *" "hits=0 misses=0 stored=0 *" badpath.lua

# ---------------------------------------------------------------- loadfile / dofile
D=$T/loadfile
mkdir -p "$D"
cat >"$D/main.lua" <<'EOF'
-- under plain Lua the base functions, with the module its cached ones
local lib = package.loaded.scriptcache or _G
local f = assert(lib.loadfile("chunk.lua"))
print(f("a", "b"))
print(lib.dofile("chunk.lua"))
local env = { print = print, select = select, tostring = tostring }
print(lib.loadfile("chunk.lua", "bt", env)("with env"))
print(lib.loadfile("chunk.lua", "t")("text only"))
print(lib.loadfile("chunk.lua", "b"))
print(lib.loadfile("broken.lua"))
print(lib.loadfile("absent.lua"))
print(pcall(lib.dofile, "broken.lua"))
print(pcall(lib.dofile, "fails.lua"))
EOF
cat >"$D/chunk.lua" <<'EOF'
local n = select("#", ...)
return "chunk", n, ..., tostring(x), debug and debug.getinfo(1, "S").source
EOF
echo 'return )' >"$D/broken.lua"
echo 'error("failed at run time")' >"$D/fails.lua"
fresh_shard
# miss run: loadfile miss, dofile hit, loadfile+env hit, "t" and "b" bypass,
# broken (miss, not stored), absent (bypass: no path to canonicalize),
# dofile broken (miss), dofile fails (miss, stored: it compiles)
compare "scriptcache.loadfile/dofile behave as loadfile/dofile" "$D" \
	"hits=2 misses=4 stored=2 bypassed=3 *" "hits=4 misses=2 stored=0 bypassed=3 *" main.lua

# ---------------------------------------------------------------- precompiled modules
D=$T/luac
mkdir -p "$D"
echo 'print(require "pre") print(require "prestripped")' >"$D/main.lua"
echo 'return debug.getinfo(1, "S").source' >"$D/src.lua"
(cd "$D" && luac5.4 -o pre.lua src.lua && luac5.4 -s -o prestripped.lua src.lua) 2>&1 | diag
# a precompiled file keeps the name luac gave it: loaded, not cached
compare "luac-precompiled modules on package.path" "$D" \
	"hits=0 misses=2 stored=0 *" "hits=0 misses=2 stored=0 *" main.lua

# ---------------------------------------------------------------- LUA_INIT
D=$T/tree
fresh_shard
CENV=(LUA_INIT='require "scriptcache"')
CARGS=()
compare "loaded by LUA_INIT instead of -l" "$D" \
	"hits=2 misses=7 stored=7 *" "hits=9 misses=0 stored=0 *" main.lua x
CENV=()
CARGS=(-l scriptcache)

# ---------------------------------------------------------------- off switch, broken shards
D=$T/tree
fresh_shard
CENV=(SCRIPTCACHE=0)
compare "SCRIPTCACHE=0" "$D" \
	"hits=0 misses=0 stored=0 bypassed=0 enabled=false error=caching disabled*" \
	"hits=0 misses=0 stored=0 bypassed=0 enabled=false *" main.lua
CENV=()
[ ! -e "$T/shard/scripts.shard" ]
ok $? "SCRIPTCACHE=0 creates no shard"

mkdir -p "$T/bad"
head -c 8192 /dev/urandom >"$T/bad/garbage.shard"
CENV=(SCRIPTCACHE_PATH="$T/bad/garbage.shard")
cp "$T/bad/garbage.shard" "$T/bad/garbage.copy"
compare "a shard that is not a shard" "$D" \
	"hits=0 misses=0 stored=0 bypassed=0 enabled=false error=*" \
	"hits=0 misses=0 stored=0 bypassed=0 enabled=false error=*" main.lua
cmp -s "$T/bad/garbage.shard" "$T/bad/garbage.copy" && ! ls "$T/bad" | grep -q corrupt-
ok $? "a file that is not a shard is left alone, nothing set aside"
# Our own shard with every meta slot damaged: the interpreter sets it aside
# and caches in a new one (docs/RELIABILITY.md, "A damaged shard heals").
CENV=(SCRIPTCACHE_PATH="$T/bad/own.shard")
run "$T/r/fill" "$D" env "${CENV[@]}" "$LUA" -l scriptcache main.lua x
dd if=/dev/zero of="$T/bad/own.shard" bs=512 seek=1 count=3 conv=notrunc status=none
cp "$T/bad/own.shard" "$T/bad/own.copy"
compare "a damaged shard of ours heals" "$D" \
	"hits=2 misses=7 stored=7 bypassed=0 enabled=true error=nil" \
	"hits=9 misses=0 stored=0 bypassed=0 enabled=true error=nil" main.lua x
aside=$(ls "$T/bad" | grep '^own.shard.corrupt-')
[ "$(echo "$aside" | grep -c .)" -eq 1 ] && cmp -s "$T/bad/$aside" "$T/bad/own.copy"
ok $? "... the damaged shard kept as one copy beside it ($aside)"
touch "$T/bad/file"
CENV=(SCRIPTCACHE_PATH="$T/bad/file/sub/x.shard")
compare "a shard path that cannot exist" "$D" \
	"hits=0 misses=0 stored=0 bypassed=0 enabled=false error=*" \
	"hits=0 misses=0 stored=0 bypassed=0 enabled=false error=*" main.lua
CENV=()
fresh_shard
mkdir -p "$T/shard"
chmod 0777 "$T/shard"
: >"$T/shard/scripts.shard"
chmod 0666 "$T/shard/scripts.shard"
compare "a shard writable by others is refused" "$D" \
	"hits=0 misses=0 stored=0 bypassed=0 enabled=false error=*" \
	"hits=0 misses=0 stored=0 bypassed=0 enabled=false error=*" main.lua
fresh_shard

# ---------------------------------------------------------------- penlight
PLDIR=$(lua -e 'local p = package.searchpath("pl.utils", package.path) print(p and p:match("^(.*)/utils%.lua$") or "")')
if [ -n "$PLDIR" ]; then
	D=$T/penlight
	mkdir -p "$D"
	names=$(
		echo '{'
		for f in "$PLDIR"/*.lua; do
			b=$(basename "$f" .lua)
			echo "  \"pl.$b\","
		done
		echo '}'
	)
	{
		echo "local names = $names"
		cat <<'EOF'
for _, name in ipairs(names) do
  local ok, m = pcall(require, name)
  print(name, ok, type(m))
end
local pl = require "pl.import_into"()
local List, stringx, tablex = pl.List, pl.stringx, pl.tablex
print(List{3, 1, 2}:sort():map(function(x) return x * 10 end))
print(stringx.split("a,b,,c", ","):join("|"), stringx.strip("  pad  "), stringx.title("hello world"))
print(tablex.deepcompare({1, {2}}, {1, {2}}), tablex.size(tablex.index_map{"x", "y"}))
print(pl.pretty.write({a = 1, b = {true, "s"}}, ""))
print(pl.path.splitext("/tmp/archive.tar.gz"), pl.path.basename("/a/b/c.lua"))
local Set = pl.Set
print(Set{1, 2, 3} * Set{2, 3, 4})
print(pl.template.substitute("hello $name, $(1+1)", {name = "lua"}))
print(pl.utils.split("1 2 3")[3], pl.seq.sum(pl.seq.list{1, 2, 3}))
local Date = pl.Date
print(Date{year = 2020, month = 2, day = 29, hour = 12}:year(), Date.Format("yyyy-mm-dd"):parse("2021-03-04"):month())
local ok, err = pcall(pl.utils.assert_arg, 1, 42, "string")
print(ok, err)
print(pl.class and type(pl.class()))
local lexer = pl.lexer
local toks = {}
for t, v in lexer.lua("local x = 42") do toks[#toks + 1] = t .. ":" .. v end
print(table.concat(toks, " "))
print(pl.data.read(pl.stringio.open("a,b\n1,2\n3,4\n"), {csv = true}):column_by_name("b"):join(","))
print(debug.traceback("penlight frames"):match("pl/") == nil)
print(xpcall(function() return List{1}:slice(1, 1):map(nil) end, debug.traceback))
EOF
	} >"$D/main.lua"
	# The premise: every module loads in plain Lua.  A dependency missing
	# on this machine (pl.path needs LuaFileSystem) must be named here, not
	# show up later as a counter mismatch.
	broken=$(cd "$D" && lua -e "names = $names" -e 'for _, name in ipairs(names) do
  local ok, err = pcall(require, name)
  if not ok then print(name .. ": " .. tostring(err):match("[^\n]*")) end
end' 2>&1)
	[ -z "$broken" ]
	rc=$?
	[ $rc -eq 0 ] || { echo "# penlight modules that do not load in plain Lua (scripts/deps installs their dependencies):"; echo "$broken" | diag; }
	ok $rc "penlight: every module loads in plain lua5.4 (premise)"
	fresh_shard
	nmods=$(ls "$PLDIR"/*.lua | wc -l)
	compare "all $nmods penlight modules and some of their functions" "$D" \
		"hits=0 misses=* stored=* bypassed=0 enabled=true error=nil" \
		"hits=* misses=0 stored=0 bypassed=0 enabled=true error=nil" main.lua
	hits=$(sed -n 's/^hits=\([0-9]*\) .*/\1/p' "$T/r/hit.stats")
	[ "${hits:-0}" -ge "$nmods" ]
	ok $? "penlight: every module served from the shard on the hit run ($hits hits, $nmods modules)"

	# Several interpreters filling one fresh shard at once.
	fresh_shard
	for i in 1 2 3 4; do
		run "$T/r/par$i" "$D" "$LUA" -l scriptcache main.lua &
	done
	wait
	for i in 1 2 3 4; do
		same "penlight: parallel cold start $i same as plain" "$T/r/plain" "$T/r/par$i"
	done
	rm -f "$T/r/hit.stats"
	run "$T/r/hit" "$D" env SCTEST_STATS="$T/r/hit.stats" "$LUA" -l scriptcache -e "$PROBE" main.lua
	same "penlight: after the parallel start: same as plain" "$T/r/plain" "$T/r/hit"
	stats "penlight: after the parallel start: all hits" "$T/r/hit.stats" "hits=* misses=0 stored=0 bypassed=0 enabled=true error=nil"
else
	echo "# lua-penlight is not installed (scripts/deps installs it)"
	ok 1 "penlight"
fi

# ---------------------------------------------------------------- another Lua build
if [ -n "$HOST" ]; then
	D=$T/runtime
	fresh_shard
	compare "lua5.4: runtime errors" "$D" "hits=0 misses=2 stored=2 *" "hits=2 misses=0 stored=0 *" main.lua
	# A second executable: every entry lua5.4 wrote is a fingerprint miss.
	CMD=$HOST compare "luahost after lua5.4 (other fingerprint)" "$D" \
		"hits=0 misses=2 stored=2 *" "hits=2 misses=0 stored=0 *" main.lua
	compare "lua5.4 after luahost (other fingerprint)" "$D" \
		"hits=0 misses=2 stored=2 *" "hits=2 misses=0 stored=0 *" main.lua
	tag1=$(lua -l scriptcache -e 'io.write(scriptcache.stats().tag)')
	echo 'io.write(package.loaded.scriptcache.stats().tag)' >"$T/tag.lua"
	tag2=$(env ${SC_LUA_PRELOAD:+LD_PRELOAD="$SC_LUA_PRELOAD"} "$HOST" -l scriptcache "$T/tag.lua" 2>&1)
	[[ $tag2 == "$tag1 vm build-id:"* || $tag2 == "$tag1 vm stat:"* ]]
	ok $? "luahost's tag adds the identity of the shared liblua ('$tag1' / '$tag2')"
else
	skip "another Lua build" "luahost not built"
fi

# ---------------------------------------------------------------- bad blobs
# Entries that pass the shard's checks (right key, tag and writer) but are
# not bytecode this Lua can load: the module must compile from source and
# replace them, and the program must not notice.
if [ -n "$CLI" ]; then
	D=$T/badblob
	mkdir -p "$D"
	echo 'print(require("victim")(20))' >"$D/main.lua"
	echo 'return function(x) return x + 1 end' >"$D/victim.lua"
	tag=$(lua -l scriptcache -e 'io.write(scriptcache.stats().tag)')
	key=$(realpath "$D/victim.lua")
	luac5.4 -o "$T/good.luac" "$D/victim.lua"
	head -c 200 /dev/urandom >"$T/garbage"
	head -c 40 "$T/good.luac" >"$T/truncated"
	for bad in garbage truncated; do
		fresh_shard
		"$CLI" --shard "$SCRIPTCACHE_PATH" put --tag "$tag" --exe "$(realpath "$LUA")" "$key" "$T/$bad" 2>&1 | diag
		# the miss run's error proves the blob was served and refused
		compare "a $bad blob under the right fingerprint" "$D" \
			"hits=0 misses=1 stored=1 bypassed=0 enabled=true error=*corrupt*" \
			"hits=1 misses=0 stored=0 bypassed=0 enabled=true error=nil" main.lua
	done
else
	skip "bad blobs" "no scriptcache CLI given"
fi

echo "1..$n"
[ "$failed" -eq 0 ]
