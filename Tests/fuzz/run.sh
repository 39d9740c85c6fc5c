#!/usr/bin/env bash
# Tests/fuzz/run.sh: builds the libFuzzer harness (Tests/fuzz/harness.c) and
# runs it for a given time.
#
#   Tests/fuzz/run.sh [SECONDS]        (default 60)
#
# The harness is linked with build/libswiftmalloc.a, so malloc inside the
# fuzzer binary (harness and libFuzzer alike) is swiftmalloc's. Half the time
# runs in the default mode, half with SWIFTMALLOC_SECURE=1. The corpus is kept
# in build/fuzz/corpus (shared by both modes, grows across runs) and starts
# from Tests/fuzz/seeds (hand-written inputs, one a regression); a crashing
# input goes to build/fuzz/artifacts/<mode>/ and is replayed once to show the
# message. One PASS/FAIL line per mode, then "N passed, M failed"; exit status
# 1 if the harness found anything.
#
# Environment: FUZZ_CC (default /opt/swift/usr/bin/clang), FUZZ_ARGS (extra
# libFuzzer flags).
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SECONDS_TOTAL=${1:-60}
CLANG=${FUZZ_CC:-/opt/swift/usr/bin/clang}
OUT=$ROOT/build/fuzz
LIBA=$ROOT/build/libswiftmalloc-check.a  # the shipped library plus the invariant checker

case $SECONDS_TOTAL in
  ''|*[!0-9]*) echo "usage: $0 [SECONDS]"; exit 2 ;;
esac
for f in "$LIBA" "$ROOT/build/include/swiftmalloc.h"; do
  if [ ! -e "$f" ]; then echo "fuzz: $f is missing (run make first)"; exit 2; fi
done

passed=0
failed=0
mkdir -p "$OUT/corpus"
if ! "$CLANG" -fsanitize=fuzzer -O1 -g -Wall -Wextra Tests/fuzz/harness.c -I "$ROOT/build/include" \
    "$LIBA" -pthread -o "$OUT/harness" > "$OUT/build.log" 2>&1; then
  echo "FAIL fuzz build (see $OUT/build.log)"
  cat "$OUT/build.log"
  echo "0 passed, 1 failed"
  exit 1
fi
# The harness must really run on swiftmalloc (the static link replaced malloc).
if ! nm "$OUT/harness" | grep -q ' T swm_malloc$' || ! nm "$OUT/harness" | grep -q ' T malloc$'; then
  echo "FAIL fuzz build: malloc in the harness is not swiftmalloc's"
  echo "0 passed, 1 failed"
  exit 1
fi

half=$(( SECONDS_TOTAL / 2 ))
[ "$half" -lt 1 ] && half=1

for mode in default secure; do
  art=$OUT/artifacts/$mode
  rm -rf "$art"
  mkdir -p "$art"
  log=$OUT/$mode.log
  if [ "$mode" = secure ]; then export SWIFTMALLOC_SECURE=1; else unset SWIFTMALLOC_SECURE; fi
  # timeout: libFuzzer's own limit plus room for the final merge and stats
  # shellcheck disable=SC2086
  timeout --signal=KILL $(( half + 120 )) "$OUT/harness" -max_total_time="$half" -print_final_stats=1 \
    -timeout=30 -rss_limit_mb=4096 -artifact_prefix="$art/" ${FUZZ_ARGS:-} "$OUT/corpus" Tests/fuzz/seeds > "$log" 2>&1
  status=$?
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
  rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -1)
  cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1)
  crash=$(ls "$art" 2>/dev/null | head -1)
  if [ "$status" = 0 ] && [ -z "$crash" ]; then
    passed=$((passed + 1))
    echo "PASS fuzz $mode: ${execs:-?} executions in ${half} s (${rate:-?}/s, ${cov:-cov ?}, corpus $(ls "$OUT/corpus" | wc -l))"
  else
    failed=$((failed + 1))
    echo "FAIL fuzz $mode: exit status $status after ${execs:-?} executions; log $log"
    grep -E '^swiftmalloc|ERROR: libFuzzer|SUMMARY' "$log" | head -5 | sed 's/^/     /'
    if [ -n "$crash" ]; then
      echo "     input: $art/$crash (replay: $OUT/harness $art/$crash)"
    fi
  fi
done
unset SWIFTMALLOC_SECURE

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
