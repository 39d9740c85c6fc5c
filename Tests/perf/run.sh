#!/usr/bin/env bash
# Tests/perf/run.sh: counts the instructions of the malloc and free fast
# paths with callgrind and compares them with expected-instructions.txt:
# a change that makes a fast path longer fails here (a count is exact and
# does not depend on the machine's load, unlike a time).
#
# Totals go to build/tests/perf.counts ("<passed> <failed>").
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=$ROOT/build/tests/perf
SO=$ROOT/build/libswiftmalloc.so
mkdir -p "$OUT"
if ! command -v valgrind >/dev/null 2>&1; then
  echo "perf: installing valgrind"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind; } >/dev/null 2>&1
fi
passed=0; failed=0
verdict() { if [ "$1" = 0 ]; then echo "PASS $2"; passed=$((passed + 1)); else echo "FAIL $2"; failed=$((failed + 1)); fi; }
finish() { echo "$passed $failed" > "$ROOT/build/tests/perf.counts"; echo "$passed passed, $failed failed"; [ "$failed" = 0 ]; exit $?; }

if ! command -v valgrind >/dev/null 2>&1; then verdict 1 "valgrind is not available"; finish; fi
gcc -O1 -o "$OUT/fastpath" Tests/perf/fastpath.c || { verdict 1 "fastpath.c does not build"; finish; }
rm -f "$OUT"/callgrind.*
calls=$(valgrind --tool=callgrind --trace-children=yes --callgrind-out-file="$OUT/callgrind.%p" \
  env LD_PRELOAD="$SO" "$OUT/fastpath" 2>/dev/null | sed -n 's/^\([0-9]*\) calls each$/\1/p')
profile=$(ls -S "$OUT"/callgrind.* 2>/dev/null | head -n 1)
if [ -z "$calls" ] || [ -z "$profile" ]; then verdict 1 "callgrind run of fastpath failed"; finish; fi
report=$(callgrind_annotate "$profile" 2>/dev/null)
while read -r name want; do
  case "$name" in ''|'#'*) continue ;; esac
  ir=$(echo "$report" | awk -v f="???:swmcore_$name" '$3 == f {gsub(",", "", $1); print $1; exit}')
  if [ -z "$ir" ]; then verdict 1 "$name: swmcore_$name not in the profile"; continue; fi
  got=$(( (ir + calls / 2) / calls ))
  if [ "$got" -gt "$want" ]; then
    verdict 1 "$name fast path: $got instructions per call, expected at most $want (Tests/perf/expected-instructions.txt)"
  else
    verdict 0 "$name fast path: $got instructions per call (expected $want)"
    [ "$got" -lt "$want" ] && echo "     shorter than expected: lower it in Tests/perf/expected-instructions.txt"
  fi
done < Tests/perf/expected-instructions.txt
finish
