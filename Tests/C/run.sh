#!/usr/bin/env bash
# Tests/C/run.sh: builds and runs the C tests (Tests/C/*.c).
#
#   Tests/C/run.sh [-m "preload static glibc"] [name ...]
#
# Each test is compiled twice:
#   build/tests/C/<name>         plain executable; run with
#                                LD_PRELOAD=<abs>/build/libswiftmalloc.so (mode preload)
#                                and, in mode glibc, without it (this checks the
#                                tests themselves against glibc's malloc)
#   build/tests/C/<name>.static  linked with build/libswiftmalloc.a (mode static)
# Mode secure preloads build/libswiftmalloc-secure.so instead (a test that
# needs the library is linked with that one for it: build/tests/C/<name>.secure)
# and sets SWM_TEST_SECURE=1 for the rules secure mode changes.
# Default modes: preload static secure. Every run has a 60 s timeout and prints one
# PASS/FAIL line per test and mode. SWM_TEST_EXPECT tells the test which
# allocator it must find (it fails if it finds the other).
#
# The totals go to build/tests/c-tests.counts ("<passed> <failed>") for the
# summary of `make test`. Exit status: 1 if anything failed.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

MODES=${SWM_C_MODES:-"preload static secure"}
if [ "${1:-}" = "-m" ]; then MODES=$2; shift 2; fi
CC_TEST=${TEST_CC:-gcc}
CFLAGS_TEST="-O1 -g -pthread -Wall -Wextra -I $ROOT/build/include"
OUT=$ROOT/build/tests/C
SO=$ROOT/build/libswiftmalloc.so
SECURE_SO=$ROOT/build/libswiftmalloc-secure.so
LIBA=$ROOT/build/libswiftmalloc.a
TIMEOUT=${SWM_TEST_TIMEOUT:-60}
mkdir -p "$OUT"

for f in "$SO" "$SECURE_SO" "$LIBA" "$ROOT/build/include/swiftmalloc.h"; do
  if [ ! -e "$f" ]; then echo "run.sh: $f is missing (run make first)"; exit 2; fi
done

if [ $# -gt 0 ]; then
  tests=("$@")
else
  tests=()
  for src in Tests/C/*.c; do tests+=("$(basename "$src" .c)"); done
fi

# stats.c checks malloc_info's XML with xmllint (Debian: libxml2-utils).
if ! command -v xmllint >/dev/null 2>&1; then
  echo "run.sh: installing libxml2-utils (xmllint, for stats.c)"
  { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libxml2-utils; } >/dev/null 2>&1
fi

passed=0
failed=0
failures=()

report() { # name mode status seconds logfile
  local name=$1 mode=$2 status=$3 secs=$4 log=$5
  if [ "$status" = 0 ]; then
    printf 'PASS %-16s %-8s (%ss)\n' "$name" "$mode" "$secs"
    passed=$((passed + 1))
  else
    printf 'FAIL %-16s %-8s (%s, %ss)\n' "$name" "$mode" "$status" "$secs"
    sed -n '1,60p' "$log" | sed 's/^/    | /'
    failed=$((failed + 1))
    failures+=("$name/$mode")
  fi
}

for name in "${tests[@]}"; do
  src=Tests/C/$name.c
  log=$OUT/$name.build.log
  # A test that calls swm_* entry points cannot link without our library:
  # its plain executable links the .so (and is still run preloaded); it has
  # no glibc mode.
  needs_lib=0
  secure_bin=$OUT/$name
  if ! $CC_TEST $CFLAGS_TEST "$src" -o "$OUT/$name" >"$log" 2>&1; then
    needs_lib=1
    if ! $CC_TEST $CFLAGS_TEST "$src" "$SO" -Wl,-rpath,"$ROOT/build" -o "$OUT/$name" >>"$log" 2>&1; then
      for mode in $MODES; do report "$name" "$mode" "does not compile" 0 "$log"; done
      continue
    fi
    # linked with the default library, it would load both copies
    secure_bin=$OUT/$name.secure
    $CC_TEST $CFLAGS_TEST "$src" "$SECURE_SO" -Wl,-rpath,"$ROOT/build" -o "$secure_bin" >>"$log" 2>&1 || secure_bin=""
  fi
  static_ok=1
  if ! $CC_TEST $CFLAGS_TEST "$src" "$LIBA" -o "$OUT/$name.static" >>"$log" 2>&1; then static_ok=0; fi
  for mode in $MODES; do
    log=$OUT/$name.$mode.log
    if [ $mode = glibc ] && [ $needs_lib = 1 ]; then
      printf 'SKIP %-16s %-8s (calls swm_* functions: needs the library)\n' "$name" "$mode"
      continue
    fi
    start=$(date +%s)
    case $mode in
      preload) timeout -k 5 "$TIMEOUT" env SWM_TEST_EXPECT=swiftmalloc LD_PRELOAD="$SO" "$OUT/$name" >"$log" 2>&1 ;;
      static)
        if [ $static_ok = 0 ]; then
          cp "$OUT/$name.build.log" "$log"; false
        else
          timeout -k 5 "$TIMEOUT" env SWM_TEST_EXPECT=swiftmalloc "$OUT/$name.static" >"$log" 2>&1
        fi ;;
      secure)
        if [ -z "$secure_bin" ]; then
          cp "$OUT/$name.build.log" "$log"; false
        else
          timeout -k 5 "$TIMEOUT" env SWM_TEST_EXPECT=swiftmalloc SWM_TEST_SECURE=1 LD_PRELOAD="$SECURE_SO" "$secure_bin" >"$log" 2>&1
        fi ;;
      glibc) timeout -k 5 "$TIMEOUT" env SWM_TEST_EXPECT=glibc "$OUT/$name" >"$log" 2>&1 ;;
      *) echo "run.sh: unknown mode $mode"; exit 2 ;;
    esac
    rc=$?
    secs=$(($(date +%s) - start))
    if [ $rc = 0 ]; then status=0
    elif [ $rc = 124 ] || [ $rc = 137 ]; then status="timeout after ${TIMEOUT}s"
    elif [ $rc -gt 128 ]; then status="killed by signal $((rc - 128))"
    else status="exit $rc"; fi
    report "$name" "$mode" "$status" "$secs" "$log"
  done
done

mkdir -p "$ROOT/build/tests"
echo "$passed $failed" >"$ROOT/build/tests/c-tests.counts"
if [ $failed -gt 0 ]; then
  echo "c-tests: $passed ok, $failed not ok: ${failures[*]}"
  exit 1
fi
echo "c-tests: $passed ok, 0 not ok"
exit 0
