#!/usr/bin/env bash
# Tests/stress/stressng.sh: stress-ng's memory stressors with the library
# preloaded, the default and the secure library.
#
#   Tests/stress/stressng.sh [--short] [SECONDS]
#
#   full     (default) the malloc stressor in nine variants, then vm, mmap,
#            mremap, bigheap, brk, fork, pthread, tsearch, hsearch, qsort,
#            list, judy, skiplist, tree and exec; SECONDS (8) per run, two
#            workers each, --verify; with both libraries
#   --short  the malloc variants only, SECONDS (3) each (the form `make test` runs)
#
# stress-ng's exit status hides workers that died (a worker killed by a
# signal is restarted or just counted as done), so each run is started with
# -v and its output is read for workers that finished prematurely, failed,
# died, were killed or aborted, for "stress-ng: fail/error" lines and for any
# "swiftmalloc:" message; it must end with "successful run completed" and
# its metrics must show at least one bogo operation. One
# second into each run, /proc/<pid>/maps of stress-ng and every worker must
# list the preloaded library (the programs exec's workers start get an empty
# environment from stress-ng, so no LD_PRELOAD: those are not counted). A run that outlives SECONDS + 60 s is a hang:
# its processes' states, kernel stacks and gdb backtraces go to
# build/tests/stress/stressng/<run>.log.hang and it fails.
#
# exec refuses to run as root; when run as root it runs as the user nobody
# (setpriv), with the libraries copied to a directory that user can read.
# bigheap grows until realloc fails, so it runs under a 4 GiB RLIMIT_AS.
#
# stress-ng 0.15.06 (Debian 12) writes 8 bytes into callocs of fewer bytes,
# 0 included (fixed in 0.15.07); the secure library catches the overflow and
# both libraries the write into a zero-size block. With such a version one
# run per library checks that it is caught, and the other malloc runs
# preload Tests/stress/calloc8.c (which rounds those callocs up to 8 bytes,
# as the fix does) in front of the library.
#
# SWM_STRESS_LIB / SWM_STRESS_SECURE_LIB replace the libraries (a
# LD_PRELOAD value); SWM_STRESS_ONLY (a regular expression) keeps only the
# runs whose label ("default malloc touch", "secure fork", ...) matches. One PASS/FAIL/SKIP line per run, then
# "N passed, M failed, K skipped"; exit status 1 on any failure.
source "$(dirname "$0")/lib.sh"

mode=full
if [ "${1:-}" = --short ]; then mode=short; shift; fi
if [ $mode = short ]; then SECS=${1:-3}; else SECS=${1:-8}; fi
WORKERS=${SWM_STRESS_WORKERS:-2}
LOGS=$OUT/stressng
mkdir -p "$LOGS"
check_libs "$LIB_DEFAULT" "$LIB_SECURE"
need_pkg stress-ng stress-ng || { fail "stress-ng: cannot install stress-ng"; finish; }

version=$(stress-ng --version 2>/dev/null | sed -n 's/.*version \([0-9.]*\).*/\1/p')
info "stress-ng $version, $WORKERS workers per stressor, ${SECS} s per run ($mode)"
# Versions before 0.15.07 have the calloc bug (see above).
old_calloc_bug=0
if [ "$(printf '%s\n%s\n' "$version" 0.15.07 | sort -V | head -n 1)" != 0.15.07 ]; then
  old_calloc_bug=1
fi

WORK=$(mktemp -d /tmp/swm-stressng.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
chmod 1777 "$WORK"
CALLOC8=""
if [ $old_calloc_bug = 1 ]; then
  if gcc -O2 -fPIC -shared -Wall -Wextra -o "$WORK/calloc8.so" Tests/stress/calloc8.c -ldl > "$LOGS/calloc8.build.log" 2>&1; then
    CALLOC8=$WORK/calloc8.so
  else
    fail "build Tests/stress/calloc8.c (see $LOGS/calloc8.build.log)"
  fi
fi

# Output that means a worker did not do its job, whatever the exit status says.
BAD='finished prematurely|^stress-ng: fail:|stress-ng: error:|terminated with an error|child died|killed by|restarts: [1-9]|aborted|terminated (by|on) signal|swiftmalloc:|untrustworthy|corrupted|does not contain|core dumped|no stress workers'

# maps_hook PID: every live stress-ng process of the tree must map every
# library of the preload value; writes the result to $WORK/maps.
PRELOAD=""
maps_hook() {
  local root=$1 p n=0 noenv=0 missing="" f
  for p in "$root" $(descendants "$root"); do
    [ -r /proc/"$p"/maps ] || continue
    grep -q '^State:.*Z' /proc/"$p"/status 2> /dev/null && continue
    case $(cat /proc/"$p"/comm 2> /dev/null) in
      stress-ng-*) ;;
      # A process below the root named plain "stress-ng" is a program that
      # exec's workers started: stress-ng passes it an empty environment
      # (env = { NULL }), so no LD_PRELOAD there, by stress-ng's design.
      stress-ng) [ "$p" = "$root" ] || { noenv=$((noenv + 1)); continue; } ;;
      *) continue ;;
    esac
    local maps
    maps=$(cat /proc/"$p"/maps 2> /dev/null) || continue
    [ -n "$maps" ] || continue
    n=$((n + 1))
    for f in ${PRELOAD//:/ }; do
      grep -qF "$f" <<< "$maps" || missing="$missing $p:$(basename "$f")"
    done
  done
  echo "$n$missing" > "$WORK/maps"
  echo "$noenv" > "$WORK/noenv"
}

# run LABEL PRELOAD-VALUE [prefix-command...] -- stress-ng-args...
run() {
  local label=$1; PRELOAD=$2; shift 2
  # SWM_STRESS_ONLY: a regular expression; only the runs whose label matches
  if [ -n "${SWM_STRESS_ONLY:-}" ] && ! [[ $label =~ $SWM_STRESS_ONLY ]]; then return; fi
  local prefix=()
  while [ $# -gt 0 ] && [ "$1" != -- ]; do prefix+=("$1"); shift; done
  shift
  local log=$LOGS/${label//[^A-Za-z0-9_.-]/_}.log status why="" checked
  rm -f "$WORK/maps" "$WORK/noenv" "$log.hang"
  WATCH_HOOK=maps_hook WATCH_HOOK_AFTER=1
  watch $((SECS + 60)) "$log" "${prefix[@]}" env -C "$WORK" LD_PRELOAD="$PRELOAD" \
    stress-ng -v --timeout "${SECS}s" --verify --temp-path "$WORK" "$@"
  status=$?
  WATCH_HOOK=""
  if [ $status = 124 ]; then
    why="hung (no end after $((SECS + 60)) s; report in $log.hang)"
  elif [ $status != 0 ]; then
    why="exit status $status"
  fi
  local bad
  bad=$(grep -iE "$BAD" "$log" | sed 's/^stress-ng: //' | sort | uniq -c | head -n 5 | sed 's/^ *//' | tr '\n' ';')
  [ -n "$bad" ] && why="$why ${why:+/ }$bad"
  grep -q 'successful run completed' "$log" || why="$why ${why:+/ }no 'successful run completed'"
  # every run must have done some work: the bogo-ops column of its metrics line
  local ops
  ops=$(awk '$2 == "metrc:" && $5 ~ /^[0-9]+$/ && $6 ~ /^[0-9.]+$/ { print $5; exit }' "$log")
  if [ "$status" != 124 ] && [ "${ops:-0}" = 0 ]; then why="$why ${why:+/ }no bogo operation completed"; fi
  # at least stress-ng and one process per worker must have been seen
  checked=$(cut -d' ' -f1 "$WORK/maps" 2> /dev/null)
  if [ -z "$checked" ] || [ "$checked" -lt $((WORKERS + 1)) ]; then
    why="$why ${why:+/ }maps: only ${checked:-0} stress-ng processes seen after 1 s"
  elif [ -n "$(cut -s -d' ' -f2- "$WORK/maps")" ]; then
    why="$why ${why:+/ }library not mapped in:$(cut -s -d' ' -f2- "$WORK/maps")"
  fi
  if [ -z "$why" ]; then
    local noenv extra=""
    noenv=$(cat "$WORK/noenv" 2> /dev/null)
    [ "${noenv:-0}" != 0 ] && extra="; $noenv exec'd without LD_PRELOAD (stress-ng gives them an empty environment)"
    pass "stress-ng $label ($ops bogo ops; $checked processes mapped the library$extra)"
  else
    fail "stress-ng $label: $why (log $log)"
    [ -f "$log.hang" ] && head -n 40 "$log.hang"
  fi
}

MALLOC_VARIANTS=(
  "bytes-1K:--malloc-bytes 1K"
  "bytes-4M:--malloc-bytes 4M"
  "pthreads-4:--malloc-pthreads 4"
  "thresh-1:--malloc-thresh 1"
  "thresh-64K:--malloc-thresh 64K"
  "touch:--malloc-touch"
  "zerofree:--malloc-zerofree"
  "max-256K:--malloc-max 262144"
)
[ $mode = full ] && MALLOC_VARIANTS=("default:" "${MALLOC_VARIANTS[@]}")
OTHERS=(vm mmap mremap bigheap brk fork pthread tsearch hsearch qsort list judy skiplist tree)

for kind in default secure; do
  if [ $kind = default ]; then lib=$LIB_DEFAULT; else lib=$LIB_SECURE; fi
  mlib=$lib
  if [ $old_calloc_bug = 1 ]; then
    # The unpatched stressor: the library must catch stress-ng's own bug. The
    # secure library's canary sees the 8-byte write past a calloc of 1..7
    # bytes; both see the write into a calloc of 0 bytes (n * (len / n) = 0),
    # a zero-size block, which faults (SIGSEGV in the worker).
    log=$LOGS/$kind-calloc-bug.log
    watch $((SECS + 60)) "$log" env LD_PRELOAD="$lib" stress-ng -v --timeout "${SECS}s" \
      --malloc "$WORKERS" --malloc-bytes 1K --verify --temp-path "$WORK"
    if [ $kind = secure ]; then caught='swiftmalloc: free(): heap overflow past the end of|signal 11'; else caught='signal 11'; fi
    if grep -qE "$caught" "$log"; then
      pass "stress-ng $version $kind malloc: the library catches stress-ng's known calloc bug (fixed in 0.15.07); the other $kind malloc runs preload calloc8.so"
    else
      fail "stress-ng $version $kind malloc: stress-ng's known calloc bug was not caught (log $log)"
    fi
    [ -n "$CALLOC8" ] && mlib="$CALLOC8 $lib"
  fi
  for v in "${MALLOC_VARIANTS[@]}"; do
    name=${v%%:*}; args=${v#*:}
    # shellcheck disable=SC2086
    run "$kind malloc $name" "$mlib" -- --malloc "$WORKERS" $args
  done
  [ $mode = short ] && continue
  for s in "${OTHERS[@]}"; do
    if [ "$s" = bigheap ]; then
      run "$kind $s" "$lib" prlimit --as=$((4 << 30)) -- --"$s" "$WORKERS"
    elif [ "$s" = tree ]; then
      # 250,000 items (the default) make one operation take seconds
      run "$kind $s" "$lib" -- --"$s" "$WORKERS" --tree-size 50000
    else
      run "$kind $s" "$lib" -- --"$s" "$WORKERS"
    fi
  done
  # exec: stress-ng refuses it as root.
  if [ "$(id -u)" = 0 ]; then
    if id nobody > /dev/null 2>&1 && command -v setpriv > /dev/null 2>&1; then
      # libraries where nobody can read them
      ulib=""
      for f in ${lib//:/ }; do
        cp "$f" "$WORK/$(basename "$f")" && chmod 755 "$WORK/$(basename "$f")"
        ulib="$ulib${ulib:+ }$WORK/$(basename "$f")"
      done
      group=$(id -gn nobody)
      run "$kind exec (as nobody)" "$ulib" setpriv --reuid=nobody --regid="$group" --clear-groups -- --exec "$WORKERS"
    else
      skip "stress-ng $kind exec: refuses to run as root and there is no user nobody or no setpriv"
    fi
  else
    run "$kind exec" "$lib" -- --exec "$WORKERS"
  fi
done

finish
