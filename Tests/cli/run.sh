#!/usr/bin/env bash
# Tests/cli/run.sh: the `swiftmalloc` command (Sources/SwiftMallocCLI) on
# the small programs of this folder, after `make`:
# - run: the program's exit status (and 128 + N for signal N), 127 for a
#   program that cannot be started, 64 and usage for bad arguments, the
#   errors for a missing library; the peak in use of alloc_known (a known
#   amount) from its statistics report, when the library writes JSON reports;
# - compare on glibc and swiftmalloc: a table with both rows, an SVG that
#   parses as XML, and a program whose output differs between them found;
# - top --once --json on hold64 (10000 blocks of 64 bytes, started by
#   `swiftmalloc run --live`): that number within one batch (64); the page's
#   mode and owner; the page gone after exit; a process without a page and
#   one that does not exist get their messages;
# - measure: one JSON line.
# One PASS/FAIL line per check, then "N passed, M failed"; totals also in
# build/tests/cli.counts. CLI_LIBRARY=path tests against another library.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=$ROOT/build/tests/cli
mkdir -p "$OUT"
SM=$ROOT/build/bin/swiftmalloc
LIB=${CLI_LIBRARY:-$ROOT/build/libswiftmalloc.so}
passed=0; failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
finish() { echo "$passed $failed" > "$ROOT/build/tests/cli.counts"; echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; exit $?; }
if [ ! -x "$SM" ] || [ ! -e "$LIB" ]; then fail "build/bin/swiftmalloc and the library must be built (make)"; finish; fi
for p in hold64 alloc_known whose_malloc; do
  gcc -O1 -Wall -o "$OUT/$p" "Tests/cli/$p.c" -ldl || { fail "Tests/cli/$p.c does not build"; finish; }
done
# expect NAME STATUS PATTERN COMMAND...: exit status and a pattern in stdout+stderr
expect() {
  local name=$1 want=$2 pattern=$3 log=$OUT/expect.log
  shift 3
  "$@" >"$log" 2>&1 </dev/null
  local got=$?
  if [ "$got" = "$want" ] && grep -Eq -- "$pattern" "$log"; then pass "$name"
  else fail "$name" "status $got (want $want), output: $(head -c 400 "$log" | tr '\n' ' ')"; fi
}

VERSION=$(sed -n 's/^#define SWIFTMALLOC_VERSION  *"\(.*\)"/\1/p' Sources/CShim/exports/swiftmalloc.h)
expect "--version is the library's ($VERSION)" 0 "^$VERSION\$" "$SM" --version

# ------------------------------------------------------------ arguments, errors
expect "run without a program: usage, 64" 64 "Usage: swiftmalloc run" "$SM" run
expect "run --stats xml: usage, 64" 64 "Usage: swiftmalloc run" "$SM" run --stats xml -- true
expect "run --set without =: usage, 64" 64 "expected NAME=VALUE" "$SM" run --set FOO -- true
expect "compare --runs 0: usage, 64" 64 "Usage: swiftmalloc compare" "$SM" compare --runs 0 -- true
expect "compare with an unknown allocator: usage, 64" 64 "unknown allocator 'ptmalloc9'" "$SM" compare --allocators glibc,ptmalloc9 -- true
expect "top --json without --once: usage, 64" 64 "Usage: swiftmalloc top" "$SM" top --json 1
expect "unknown subcommand: usage, 64" 64 "Usage: swiftmalloc" "$SM" frobnicate
expect "run of a program that does not exist: 127" 127 "cannot run /nonexistent/program: No such file or directory" \
  "$SM" run --library "$LIB" -- /nonexistent/program
expect "compare of a program that does not exist: 127" 127 "cannot run /nonexistent/program" \
  "$SM" compare --runs 1 --allocators glibc -- /nonexistent/program
expect "run --library of a missing file: 1" 1 "--library /nonexistent/lib.so: no such library" \
  "$SM" run --library /nonexistent/lib.so -- true
# a copy of the command where no library is beside it
mkdir -p "$OUT/lonely/bin"; cp "$SM" "$OUT/lonely/bin/swiftmalloc"
expect "run without a library beside the command: 1, says where it looked" 1 "cannot find libswiftmalloc.so; looked in" \
  "$OUT/lonely/bin/swiftmalloc" run -- true
expect "compare without the library: swiftmalloc skipped" 0 "skipped: swiftmalloc: libswiftmalloc.so not found" \
  "$OUT/lonely/bin/swiftmalloc" compare --runs 1 --allocators glibc,swiftmalloc -- true

# --------------------------------------------------------------------- run
expect "run: the program's exit status" 7 "exit status 7" "$SM" run --library "$LIB" -- sh -c 'exit 7'
expect "run: a signal gives 128 + N" 143 "signal 15" "$SM" run --library "$LIB" -- sh -c 'kill -TERM $$'
expect "run: the program's output passes through" 0 "^done\$" "$SM" run --library "$LIB" --output "$OUT/run-known.txt" -- "$OUT/alloc_known" 64
if grep -q "no statistics report" "$OUT/run-known.txt"; then
  echo "SKIP run: peak of alloc_known: this library writes no JSON report ($(head -1 "$OUT/run-known.txt"))"
else
  peak=$(sed -n 's/^  peak in use  *\([0-9.]*\) MiB$/\1/p' "$OUT/run-known.txt" | head -1)
  if [ -n "$peak" ] && awk -v p="$peak" 'BEGIN { exit !(p >= 64 && p <= 72) }'; then
    pass "run: alloc_known 64 reports a peak in use of $peak MiB (64 MiB held at once)"
  else fail "run: peak in use of alloc_known 64" "$(cat "$OUT/run-known.txt" | head -5 | tr '\n' ' ')"; fi
  if grep -q "alloc_known" "$OUT/run-known.txt" && grep -q "busiest size classes" "$OUT/run-known.txt"; then
    pass "run: the summary names the program and its busiest size classes"
  else fail "run: summary" "$(head -c 400 "$OUT/run-known.txt")"; fi
fi
"$SM" run --library "$LIB" --stats json --output "$OUT/run.json" -- "$OUT/alloc_known" 1 >/dev/null 2>&1
if python3 -c 'import json, sys; sys.exit(0 if isinstance(json.load(open(sys.argv[1])), list) else 1)' "$OUT/run.json"; then
  pass "run --stats json: the reports as one JSON array ($(python3 -c 'import json, sys; print(len(json.load(open(sys.argv[1]))))' "$OUT/run.json") of them)"
else fail "run --stats json" "$(head -c 300 "$OUT/run.json")"; fi

# ----------------------------------------------------------------- compare
"$SM" compare --library "$LIB" --runs 2 --allocators glibc,swiftmalloc --chart "$OUT/chart.svg" --json "$OUT/compare.json" \
  -- "$OUT/alloc_known" 16 >"$OUT/compare.txt" 2>&1 </dev/null
st=$?
if [ $st = 0 ] && grep -q '^glibc ' "$OUT/compare.txt" && grep -q '^swiftmalloc ' "$OUT/compare.txt" \
   && grep -q 'output: the same under every allocator' "$OUT/compare.txt"; then
  pass "compare: a table with the glibc and swiftmalloc rows, the same output"
else fail "compare: table (status $st)" "$(cat "$OUT/compare.txt" | tr '\n' ' ')"; fi
if python3 -c 'import sys, xml.etree.ElementTree as E; r = E.parse(sys.argv[1]).getroot(); t = E.tostring(r, encoding="unicode"); sys.exit(0 if r.tag.endswith("svg") and "glibc" in t and "swiftmalloc" in t and "<title>" in t.replace("ns0:", "") else 1)' "$OUT/chart.svg"; then
  pass "compare --chart: the SVG parses as XML, names both allocators, has hover titles"
else fail "compare --chart: $OUT/chart.svg"; fi
if python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); rss = [a["median"]["peak_rss_mib"] for a in d["allocators"]]; sys.exit(0 if len(rss) == 2 and all(16 <= r < 64 for r in rss) else 1)' "$OUT/compare.json"; then
  pass "compare --json: both allocators, peak RSS of alloc_known 16 between 16 and 64 MiB"
else fail "compare --json" "$(head -c 600 "$OUT/compare.json" | tr '\n' ' ')"; fi
expect "compare: a program whose output differs between allocators is found (exit 1)" 1 \
  "swiftmalloc: stdout differs from glibc's at line 1" \
  "$SM" compare --library "$LIB" --runs 1 --allocators glibc,swiftmalloc -- "$OUT/whose_malloc"

# ----------------------------------------------------------------- top
rm -f "$OUT/hold.fifo"; mkfifo "$OUT/hold.fifo"
exec 7<>"$OUT/hold.fifo"
"$SM" run --live --library "$LIB" --output "$OUT/hold-run.txt" -- "$OUT/hold64" 10000 <"$OUT/hold.fifo" >"$OUT/hold.out" 2>"$OUT/hold.err" 7>&- &
runner=$!
pid=""
for _ in $(seq 100); do pid=$(sed -n 's/^ready \([0-9]*\)$/\1/p' "$OUT/hold.out"); [ -n "$pid" ] && break; sleep 0.1; done
if [ -z "$pid" ]; then fail "top: hold64 did not start" "$(cat "$OUT/hold.err")"
else
  page=/dev/shm/swiftmalloc-$(id -u)-$pid
  if [ "$(stat -c '%a %u' "$page" 2>/dev/null)" = "400 $(id -u)" ]; then pass "live page $page: mode 0400, owned by the user"
  else fail "live page $page" "$(ls -l "$page" 2>&1)"; fi
  "$SM" top --once --json "$pid" >"$OUT/top.json" 2>&1
  if python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
c = [k for k in d["classes"] if k["size"] == 64]
n = c[0]["in_use"] if c else -1
print("    64-byte blocks in use: %d" % n)
sys.exit(0 if 10000 <= n <= 10000 + 64 and d["pid"] == int(sys.argv[2]) else 1)' "$OUT/top.json" "$pid"; then
    pass "top --once --json: hold64's 10000 blocks of 64 bytes, within one batch"
  else fail "top --once --json" "$(head -c 600 "$OUT/top.json" | tr '\n' ' ')"; fi
  expect "top --once: the text view has the 64 B class" 0 "64 B +1[0-9]{4}" "$SM" top --once "$pid"
  grep -q "watch it with \`swiftmalloc top $pid\`" "$OUT/hold.err" && pass "run --live says which pid to watch" \
    || fail "run --live message" "$(cat "$OUT/hold.err")"
fi
echo done >&7; exec 7>&-
wait "$runner"; st=$?
if [ $st = 0 ] && [ -n "$pid" ] && [ ! -e "/dev/shm/swiftmalloc-$(id -u)-$pid" ]; then pass "hold64 ended (status 0) and its live page is gone"
else fail "hold64's end: status $st, page $(ls /dev/shm/swiftmalloc-$(id -u)-$pid 2>&1)"; fi
sleep 30 &
plain=$!
expect "top of a process without the page: says how to start it" 1 "has no swiftmalloc live page: start it with .swiftmalloc run --live" \
  "$SM" top "$plain"
kill $plain 2>/dev/null; wait $plain 2>/dev/null
expect "top of a process that does not exist" 1 "no process 4194300" "$SM" top 4194300

# ----------------------------------------------------------------- measure
expect "measure: one JSON line with wall, CPU and peak RSS" 0 '"peak_rss_bytes":[0-9]+.*"wall_s"' \
  "$SM" measure --preload "$LIB" -- "$OUT/alloc_known" 4
finish
