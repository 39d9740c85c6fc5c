#!/usr/bin/env bash
# Tests/lifecycle/run.sh: the lifecycle tests of issue #10 (fork, thread
# exit, dlclose, interposed system calls, glibc's other entry points, small
# glibc rules, secure mode's mappings).
#
#   Tests/lifecycle/run.sh [-m "preload static secure glibc"] [test ...]
#
# Modes (default: preload static secure):
#   preload  LD_PRELOAD=build/libswiftmalloc.so
#   static   the program linked with build/libswiftmalloc.a (a helper library
#            the test needs is a DT_NEEDED shared library of it)
#   secure   LD_PRELOAD=build/libswiftmalloc-secure.so
#   glibc    no allocator: checks the tests themselves; must always pass
# Each program checks that it runs on the allocator of its mode
# (SWM_TEST_EXPECT, SWM_TEST_MODE; see lc.h). Every run is under
# `timeout -k 5 60` and each program has its own alarm() watchdog that
# prints HANG or DEADLOCK, so a hang is a FAIL, never a stuck run.
# One PASS/FAIL line per test and mode (SKIP where a mode does not apply);
# at the end "N passed, M failed"; the counts go to
# build/tests/lifecycle.counts ("<passed> <failed>"). Exit status 1 if
# anything failed. Everything is built under build/tests/lifecycle/.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SRC=$ROOT/Tests/lifecycle
OUT=$ROOT/build/tests/lifecycle
SO=$ROOT/build/libswiftmalloc.so
SECURE=$ROOT/build/libswiftmalloc-secure.so
LIBA=$ROOT/build/libswiftmalloc.a
CC_TEST=${TEST_CC:-gcc}
CFLAGS_TEST="-O1 -g -pthread -Wall -Wextra -I $ROOT/build/include"
TIMEOUT=${SWM_TEST_TIMEOUT:-60}

MODES="preload static secure"
if [ "${1:-}" = "-m" ]; then MODES=$2; shift 2; fi

# name                source           kind       args    extra compile/link flags
# kind: any        every mode
#       swm        calls the swm_ pool functions: no glibc mode
#       dlopen     a glibc-malloc program dlopens the library (preload: the
#                  default library, secure: the secure one); no static/glibc mode
#       static     fully static program (-static): modes static and glibc only
#       oldkernel  run under oldkernel_run; preload and static with SWIFTMALLOC_SECURE=1
TABLE="
fork_stdio            fork_stdio       any        -       -
fork_signal           fork_signal      any        -       -
atfork_ctor           atfork_order     any        ctor    -llc_atfork
atfork_dlopen         atfork_order     any        dlopen  -
fork_early            fork_early       any        -       -llc_forkearly
fork_pool             fork_pool        swm        -       -
tcache_exit           tcache_exit      any        -       -llc_tcache
dlclose_live          dlclose          dlopen     live    -
dlclose_after         dlclose          dlopen     after   -
dlclose_repeat        dlclose          dlopen     repeat  -
hooks_cold            hook_reentry     any        cold    -llc_hooks
hooks_warm            hook_reentry     any        warm    -llc_hooks
libc_alias            libc_alias       any        -       -
libc_alias_static     libc_alias       static     -       -DNO_CFREE
stats_cancel          stats_cancel     any        -       -
memalign_errno        memalign_errno   any        -       -
mallopt_unknown       mallopt_unknown  any        -       -
quarantine_uordblks   quarantine_uordblks any     -       -
secure_mappings       secure_mappings  oldkernel  -       -
"

for n in "$@"; do
  if ! grep -q "^$n " <<<"$TABLE"; then echo "lifecycle: no test named $n"; exit 2; fi
done
for f in "$SO" "$SECURE" "$LIBA" "$ROOT/build/include/swiftmalloc.h"; do
  if [ ! -e "$f" ]; then echo "lifecycle: $f is missing (run make first)"; exit 2; fi
done
mkdir -p "$OUT"

# Helper libraries (lib_X.c -> liblc_X.so) and the old-kernel runner.
for lib in "$SRC"/lib_*.c; do
  base=$(basename "$lib" .c)
  if ! $CC_TEST -shared -fPIC -O1 -g -pthread -Wall -Wextra "$lib" -o "$OUT/liblc_${base#lib_}.so" -ldl \
      >"$OUT/$base.build.log" 2>&1; then
    echo "lifecycle: cannot build $lib:"; cat "$OUT/$base.build.log"; exit 2
  fi
done
if ! $CC_TEST -O1 -g -Wall -Wextra "$SRC/oldkernel_run.c" -o "$OUT/oldkernel_run" >"$OUT/oldkernel_run.build.log" 2>&1; then
  echo "lifecycle: cannot build oldkernel_run:"; cat "$OUT/oldkernel_run.build.log"; exit 2
fi

passed=0
failed=0
failures=()

report() { # name mode status seconds log
  if [ "$3" = 0 ]; then
    printf 'PASS %-20s %-8s (%ss)\n' "$1" "$2" "$4"
    passed=$((passed + 1))
  else
    printf 'FAIL %-20s %-8s (%s, %ss)\n' "$1" "$2" "$3" "$4"
    grep -v '^$' "$5" | head -n 25 | sed 's/^/    | /'
    failed=$((failed + 1))
    failures+=("$1/$2")
  fi
}
skip() { printf 'SKIP %-20s %-8s (%s)\n' "$1" "$2" "$3"; }

# Runs "$@" under timeout in its own process group, output to $log; leftover
# processes of the group (a child stuck in fork) are killed afterwards.
# Sets rc.
run_logged() {
  timeout -k 5 "$TIMEOUT" "$@" >"$log" 2>&1 &
  local tpid=$!
  wait "$tpid" 2>/dev/null
  rc=$?
  kill -KILL -- "-$tpid" 2>/dev/null
}

describe() { # exit code -> status text
  case $1 in
    0) echo 0 ;;
    3) grep -q DEADLOCK "$log" && echo "DEADLOCK (watchdog)" || echo "HANG (watchdog)" ;;
    124|137) echo "HANG: timeout after ${TIMEOUT}s" ;;
    *) if [ "$1" -gt 128 ]; then echo "killed by SIG$(kill -l $(($1 - 128)) 2>/dev/null || echo $(($1 - 128)))"
       else echo "exit $1"; fi ;;
  esac
}

selected() { local n; for n in "${@:2}"; do [ "$n" = "$1" ] && return 0; done; return 1; }

while read -r name src kind args extra; do
  [ -z "$name" ] && continue
  if [ $# -gt 0 ] && ! selected "$name" "$@"; then continue; fi
  [ "$args" = - ] && args=""
  [ "$extra" = - ] && extra=""
  blog=$OUT/$name.build.log
  : >"$blog"
  plain_ok=1 static_ok=1
  if [ "$kind" = static ]; then
    $CC_TEST $CFLAGS_TEST -static "$SRC/$src.c" $extra -o "$OUT/$name" >>"$blog" 2>&1 || plain_ok=0
    $CC_TEST $CFLAGS_TEST -DLC_STATIC -static "$SRC/$src.c" $extra "$LIBA" -o "$OUT/$name.static" >>"$blog" 2>&1 || static_ok=0
  else
    $CC_TEST $CFLAGS_TEST "$SRC/$src.c" -o "$OUT/$name" -L"$OUT" -Wl,--no-as-needed $extra \
      -Wl,-rpath,'$ORIGIN' -ldl >>"$blog" 2>&1 || plain_ok=0
    $CC_TEST $CFLAGS_TEST -DLC_STATIC "$SRC/$src.c" -o "$OUT/$name.static" -L"$OUT" -Wl,--no-as-needed $extra \
      "$LIBA" -Wl,-rpath,'$ORIGIN' -ldl >>"$blog" 2>&1 || static_ok=0
  fi
  for mode in $MODES; do
    log=$OUT/$name.$mode.log
    case $kind/$mode in
      swm/glibc) skip "$name" "$mode" "swiftmalloc's pool API: no glibc equivalent"; continue ;;
      dlopen/static|dlopen/glibc) skip "$name" "$mode" "dlopens libswiftmalloc*.so: modes preload and secure"; continue ;;
      static/preload|static/secure) skip "$name" "$mode" "fully static program: modes static and glibc"; continue ;;
    esac
    bin=$OUT/$name ok=$plain_ok
    [ "$mode" = static ] && bin=$OUT/$name.static ok=$static_ok
    if [ "$ok" = 0 ]; then
      cp "$blog" "$log"
      report "$name" "$mode" "does not build" 0 "$log"
      continue
    fi
    envs=(SWM_TEST_MODE="$mode" SWM_TEST_EXPECT=swiftmalloc)
    case $mode in
      preload) envs+=(LD_PRELOAD="$SO") ;;
      secure) envs+=(LD_PRELOAD="$SECURE" SWM_TEST_SECURE=1) ;;
      glibc) envs=(SWM_TEST_MODE=glibc SWM_TEST_EXPECT=glibc) ;;
      static) ;;
      *) echo "lifecycle: unknown mode $mode"; exit 2 ;;
    esac
    runner=()
    case $kind in
      dlopen)
        envs=(SWM_TEST_MODE="$mode" SWM_TEST_EXPECT=glibc SWM_TEST_DLOPEN="$SO")
        [ "$mode" = secure ] && envs=(SWM_TEST_MODE="$mode" SWM_TEST_EXPECT=glibc SWM_TEST_DLOPEN="$SECURE") ;;
      oldkernel)
        runner=("$OUT/oldkernel_run")
        case $mode in preload|static) envs+=(SWIFTMALLOC_SECURE=1 SWM_TEST_SECURE=1) ;; esac ;;
    esac
    start=$(date +%s)
    # shellcheck disable=SC2086
    run_logged "${runner[@]}" env "${envs[@]}" "$bin" $args
    report "$name" "$mode" "$(describe $rc)" $(($(date +%s) - start)) "$log"
  done
done <<<"$TABLE"

echo "$passed $failed" >"$ROOT/build/tests/lifecycle.counts"
echo "$passed passed, $failed failed${failures:+: ${failures[*]}}"
[ "$failed" -eq 0 ]
