# Tests/stress/lib.sh: sourced by the scripts of Tests/stress.
#
# Sets ROOT, OUT (build/tests/stress), LIB_DEFAULT and LIB_SECURE (the values
# given to LD_PRELOAD; SWM_STRESS_LIB and SWM_STRESS_SECURE_LIB replace them,
# e.g. with a deliberately broken shim in front of the library), and gives
# pass/fail/skip/info, the closing count line, Debian package installation
# and a watchdog that runs a command in its own process group.

cd "$(dirname "${BASH_SOURCE[0]}")/../.." || exit 2
ROOT=$(pwd)
OUT=${SWM_STRESS_OUT:-$ROOT/build/tests/stress}
mkdir -p "$OUT"
LIB_DEFAULT=${SWM_STRESS_LIB:-$ROOT/build/libswiftmalloc.so}
LIB_SECURE=${SWM_STRESS_SECURE_LIB:-$ROOT/build/libswiftmalloc-secure.so}

passed=0
failed=0
skipped=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }
skip() { skipped=$((skipped + 1)); echo "SKIP $*"; }
info() { echo "INFO $*"; }

# The closing line; exit status 1 if anything failed.
finish() {
  echo "$passed passed, $failed failed, $skipped skipped"
  [ "$failed" -eq 0 ]
  exit $?
}

# Every path of a LD_PRELOAD value must exist.
# A server script's pid (SERVER) and scratch folder (WORK): stop_server
# kills and removes them (and forgets them); stop_server_on_exit makes sure
# that happens however the script ends.
stop_server() {
  if [ -n "$SERVER" ] && kill -0 "$SERVER" 2> /dev/null; then kill -KILL "$SERVER" 2> /dev/null; fi
  [ -n "$WORK" ] && rm -rf "$WORK"
  SERVER=""
  WORK=""
}
stop_server_on_exit() {
  SERVER=""
  WORK=""
  trap stop_server EXIT
}

check_libs() { # preload-value...
  local v f
  for v in "$@"; do
    for f in ${v//:/ }; do
      if [ ! -r "$f" ]; then echo "stress: $f is missing (run make first)"; exit 2; fi
    done
  done
}

# need_pkg COMMAND PACKAGE...: installs the Debian packages when COMMAND is
# missing (CI runs on a fresh machine as root).
need_pkg() {
  local cmd=$1; shift
  command -v "$cmd" > /dev/null 2>&1 && return 0
  if [ "$(id -u)" != 0 ]; then echo "stress: $cmd is missing; install: $*"; return 1; fi
  echo "stress: installing $* (for $cmd)"
  if [ -z "${SWM_APT_UPDATED:-}" ]; then
    apt-get update -qq > "$OUT/apt.log" 2>&1
    export SWM_APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >> "$OUT/apt.log" 2>&1 || {
    tail -n 20 "$OUT/apt.log"; return 1; }
  command -v "$cmd" > /dev/null 2>&1
}

# The pids of every descendant of a pid (from /proc; children before grandchildren).
descendants() { # pid
  local pending=("$1") p c
  while [ ${#pending[@]} -gt 0 ]; do
    p=${pending[0]}; pending=("${pending[@]:1}")
    for c in $(cat /proc/"$p"/task/*/children 2> /dev/null); do
      echo "$c"; pending+=("$c")
    done
  done
}

# Waits up to `seconds` for `pid` (a child of this shell) to exit: sets
# EXIT_STATUS to its exit status, or to "" when it is still running.
wait_exit() { # pid seconds
  local i
  EXIT_STATUS=""
  for i in $(seq 1 $(($2 * 10))); do
    if ! kill -0 "$1" 2> /dev/null; then wait "$1"; EXIT_STATUS=$?; return; fi
    sleep 0.1
  done
}

# What each process of a stuck tree is doing: ps, wchan, kernel stack and,
# when gdb is there, every thread's backtrace of the first few processes.
dump_hang() { # pid log
  local pid=$1 log=$2 p n=0
  {
    echo "== hang report for $pid ($(date -u +%H:%M:%S))"
    for p in $pid $(descendants "$pid"); do
      echo "-- pid $p: $(tr '\0' ' ' < /proc/"$p"/cmdline 2> /dev/null)"
      grep -E '^(State|Threads)' /proc/"$p"/status 2> /dev/null
      echo "wchan: $(cat /proc/"$p"/wchan 2> /dev/null)"
      cat /proc/"$p"/stack 2> /dev/null | head -n 12
      if command -v gdb > /dev/null 2>&1 && [ $n -lt 4 ]; then
        n=$((n + 1))
        timeout 60 gdb -p "$p" -batch -nx -ex 'set pagination off' -ex 'thread apply all bt 12' 2>&1 |
          grep -E '^(#|Thread)' | head -n 60
      fi
    done
  } >> "$log" 2>&1
}

# watch SECONDS LOG command...: runs the command in its own session (so its
# whole tree can be ended by process group), output to LOG. Past SECONDS it
# writes a hang report into LOG, kills the group and returns 124. WATCH_PID
# holds the pid while WATCH_HOOK (a function name, optional) runs once after
# WATCH_HOOK_AFTER seconds.
WATCH_HOOK=""
WATCH_HOOK_AFTER=1
watch() {
  local limit=$1 log=$2; shift 2
  local start=$SECONDS hooked=0 status
  setsid "$@" > "$log" 2>&1 < /dev/null &
  WATCH_PID=$!
  while kill -0 "$WATCH_PID" 2> /dev/null; do
    if [ -n "$WATCH_HOOK" ] && [ $hooked = 0 ] && [ $((SECONDS - start)) -ge "$WATCH_HOOK_AFTER" ]; then
      hooked=1; "$WATCH_HOOK" "$WATCH_PID"
    fi
    if [ $((SECONDS - start)) -ge "$limit" ]; then
      dump_hang "$WATCH_PID" "$log.hang"
      kill -KILL -- -"$WATCH_PID" 2> /dev/null
      wait "$WATCH_PID" 2> /dev/null
      return 124
    fi
    # wait for the child for at most 0.2 s
    sleep 0.2
    if ! kill -0 "$WATCH_PID" 2> /dev/null; then break; fi
  done
  wait "$WATCH_PID"
  status=$?
  return $status
}
