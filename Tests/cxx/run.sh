#!/usr/bin/env bash
# Tests/cxx/run.sh: the C++ operators (Sources/CShim/exports/cxx.c).
#
#   Tests/cxx/run.sh [-m "preload secure static glibc"]
#
# Programs (built into build/tests/cxx/):
#   operators.cc     the operators' semantics (alignment, bad_alloc,
#                    new_handler, nothrow, sized and aligned delete, misuse
#                    stops), in every mode
#   minimal.cc       new and delete only; in mode static it is linked three
#                    ways: libstdc++ shared, -static-libstdc++, fully -static
#   no_libstdcxx.c   a C program: the operators without libstdc++ (preload,
#                    secure)
# Modes:
#   preload  LD_PRELOAD=build/libswiftmalloc.so
#   secure   LD_PRELOAD=build/libswiftmalloc-secure.so
#   static   linked with build/libswiftmalloc.a through new/delete only: the
#            link must take operator new from libswiftmalloc.a(cxx_a.o), and
#            the program's object must name no malloc function
#   glibc    no swiftmalloc: validates the tests against libstdc++ + glibc
# Every run has a 60 s timeout; one PASS/FAIL line each. The sized-delete
# checks that need an exact size (a size of another class aborts) are on;
# SWM_CXX_EXACT_SIZES=0 leaves them out (see operators.cc). Totals go to build/tests/cxx.counts ("<passed> <failed>").
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)

MODES=${SWM_CXX_MODES:-"preload secure static glibc"}
if [ "${1:-}" = "-m" ]; then MODES=$2; shift 2; fi
CXX_TEST=${TEST_CXX:-g++}
CC_TEST=${TEST_CC:-gcc}
CXXFLAGS_TEST="-std=c++17 -O1 -g -Wall -Wextra -pthread"
OUT=$ROOT/build/tests/cxx
SO=$ROOT/build/libswiftmalloc.so
SECURE=$ROOT/build/libswiftmalloc-secure.so
LIBA=$ROOT/build/libswiftmalloc.a
TIMEOUT=${SWM_TEST_TIMEOUT:-60}
mkdir -p "$OUT"

for f in "$SO" "$SECURE" "$LIBA"; do
  if [ ! -e "$f" ]; then echo "run.sh: $f is missing (run make first)"; exit 2; fi
done

passed=0
failed=0
failures=()

report() { # name mode status seconds logfile
  local name=$1 mode=$2 status=$3 secs=$4 log=$5
  if [ "$status" = 0 ]; then
    printf 'PASS %-14s %-18s (%ss)\n' "$name" "$mode" "$secs"
    passed=$((passed + 1))
  else
    printf 'FAIL %-14s %-18s (%s, %ss)\n' "$name" "$mode" "$status" "$secs"
    sed -n '1,60p' "$log" | sed 's/^/    | /'
    failed=$((failed + 1))
    failures+=("$name/$mode")
  fi
}

# run name mode log command...: one timed run, reported.
run() {
  local name=$1 mode=$2 log=$3
  shift 3
  local start rc status
  start=$(date +%s)
  timeout -k 5 "$TIMEOUT" "$@" >"$log" 2>&1
  rc=$?
  if [ $rc = 0 ]; then status=0
  elif [ $rc = 124 ] || [ $rc = 137 ]; then status="timeout after ${TIMEOUT}s"
  elif [ $rc -gt 128 ]; then status="killed by signal $((rc - 128))"
  else status="exit $rc"; fi
  report "$name" "$mode" "$status" $(($(date +%s) - start)) "$log"
  grep '^NOTE' "$log" | sed 's/^/    /'
}

# build name log command...: false (and every mode of name reported) on failure.
build() {
  local log=$2
  shift 2
  "$@" >>"$log" 2>&1
}

# A static link must take operator new from the archive's cxx_a.o.
check_static_link() { # name mode log
  if ! grep -q 'libswiftmalloc\.a(cxx_a\.o): definition of _Znwm' "$3"; then
    echo "operator new does not come from libswiftmalloc.a(cxx_a.o)" >>"$3"; return 1
  fi
}

# MARK: build
log=$OUT/build.log
: >"$log"
ok_operators=1 ok_minimal=1 ok_c=1
build operators "$log" $CXX_TEST $CXXFLAGS_TEST -c Tests/cxx/operators.cc -o "$OUT/operators.o" || ok_operators=0
if [ $ok_operators = 1 ]; then
  build operators "$log" $CXX_TEST -pthread -fPIE -pie "$OUT/operators.o" -o "$OUT/operators" || ok_operators=0
  # new/delete only: the object names nothing of the malloc family or swm_*
  # (swm_usable_size is a weak reference, which pulls no archive member).
  named=$(nm --undefined-only "$OUT/operators.o" | awk '$1 == "U" {print $2}' |
          grep -E '^(malloc|free|calloc|realloc|posix_memalign|aligned_alloc|memalign|malloc_usable_size|swm_.*)$' || true)
  if [ -n "$named" ]; then echo "operators.o names $named" >>"$log"; ok_operators=0; fi
fi
build minimal "$log" $CXX_TEST $CXXFLAGS_TEST Tests/cxx/minimal.cc -o "$OUT/minimal" || ok_minimal=0
build no_libstdcxx "$log" $CC_TEST -O1 -g -Wall -Wextra Tests/cxx/no_libstdcxx.c -o "$OUT/no_libstdcxx" || ok_c=0

# MARK: run
for mode in $MODES; do
  case $mode in
    preload | secure)
      lib=$SO; [ $mode = secure ] && lib=$SECURE
      if [ $ok_operators = 1 ]; then
        run operators $mode "$OUT/operators.$mode.log" env SWM_CXX_MODE=$mode LD_PRELOAD="$lib" "$OUT/operators"
      else report operators $mode "does not build" 0 "$log"; fi
      if [ $mode = preload ]; then
        if [ $ok_minimal = 1 ]; then
          run minimal $mode "$OUT/minimal.$mode.log" env LD_PRELOAD="$lib" "$OUT/minimal" ours
        else report minimal $mode "does not build" 0 "$log"; fi
      fi
      if [ $ok_c = 1 ]; then
        run no_libstdcxx $mode "$OUT/no_libstdcxx.$mode.log" env LD_PRELOAD="$lib" "$OUT/no_libstdcxx"
      else report no_libstdcxx $mode "does not build" 0 "$log"; fi
      ;;
    static)
      slog=$OUT/operators.static.build.log
      : >"$slog"
      if [ $ok_operators = 1 ] &&
         build operators "$slog" $CXX_TEST -pthread -fPIE -pie "$OUT/operators.o" "$LIBA" -Wl,-y,_Znwm -o "$OUT/operators.static" &&
         check_static_link operators static "$slog"; then
        run operators static "$OUT/operators.static.log" env SWM_CXX_MODE=static "$OUT/operators.static"
      else report operators static "does not link as required" 0 "$slog"; fi
      for variant in "static:" "static-libstdc++:-static-libstdc++ -static-libgcc" "full-static:-static"; do
        vname=${variant%%:*}
        vflags=${variant#*:}
        vlog=$OUT/minimal.$vname.build.log
        : >"$vlog"
        # shellcheck disable=SC2086
        if build minimal "$vlog" $CXX_TEST $CXXFLAGS_TEST Tests/cxx/minimal.cc "$LIBA" $vflags -Wl,-y,_Znwm \
             -o "$OUT/minimal.$vname" && check_static_link minimal $vname "$vlog"; then
          run minimal $vname "$OUT/minimal.$vname.log" "$OUT/minimal.$vname" ours
        else report minimal $vname "does not link as required" 0 "$vlog"; fi
      done
      ;;
    glibc)
      if [ $ok_operators = 1 ]; then
        run operators glibc "$OUT/operators.glibc.log" env SWM_CXX_MODE=glibc "$OUT/operators"
      else report operators glibc "does not build" 0 "$log"; fi
      if [ $ok_minimal = 1 ]; then
        run minimal glibc "$OUT/minimal.glibc.log" "$OUT/minimal"
      else report minimal glibc "does not build" 0 "$log"; fi
      ;;
    *) echo "run.sh: unknown mode $mode"; exit 2 ;;
  esac
done

mkdir -p "$ROOT/build/tests"
echo "$passed $failed" >"$ROOT/build/tests/cxx.counts"
if [ $failed -gt 0 ]; then
  echo "cxx: $passed ok, $failed not ok: ${failures[*]}"
  exit 1
fi
echo "cxx: $passed ok, 0 not ok"
exit 0
