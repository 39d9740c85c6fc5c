#!/usr/bin/env bash
# Tests/misuse/run.sh: the misuse battery, resource exhaustion and real
# programs under the secure library.
#
#   Tests/misuse/run.sh [battery|rlimit|programs ...]    (default: all three)
#
#   battery   Tests/misuse/battery.c runs each case of cases.c preloaded in
#             a child, in the default mode (libswiftmalloc.so), the secure
#             library (libswiftmalloc-secure.so) and SWIFTMALLOC_SECURE=1, and
#             checks the signal and the one-line message (table in battery.c)
#   rlimit    rlimit.c under RLIMIT_AS and RLIMIT_DATA (256 MiB), each kind of
#             request and the threaded test in its own process, with both
#             libraries; guard_rlimit.c (secure library)
#   programs  python3, sort, git --version, gcc and the Swift program of
#             Tests/programs (when built) preloaded (both libraries):
#             same output as without, nothing on stderr
#
# One PASS/FAIL line per check, then "N passed, M failed"; exit status 1 if
# anything failed. Binaries go to build/tests/misuse/.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
OUT=$ROOT/build/tests/misuse
SO=$ROOT/build/libswiftmalloc.so
SECURE=$ROOT/build/libswiftmalloc-secure.so
CC_TEST=${TEST_CC:-gcc}
TIMEOUT=${SWM_TEST_TIMEOUT:-300}
mkdir -p "$OUT"

for f in "$SO" "$SECURE"; do
  if [ ! -e "$f" ]; then echo "misuse: $f is missing (run make first)"; exit 2; fi
done

parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(battery rlimit programs)

passed=0
failed=0
pass() { passed=$((passed + 1)); echo "PASS $*"; }
# Runs "timeout SECONDS command..." under sh, which turns a death by signal
# into exit status 128+N without bash's "Segmentation fault" job message.
quiet() { sh -c 'timeout --signal=KILL "$@"; exit $?' sh "$@"; }
fail() { failed=$((failed + 1)); echo "FAIL $*"; }

# Runs a command that prints PASS/FAIL lines itself (and maybe a summary),
# echoes those lines and adds them to the totals; a crash or a non-zero exit
# without any FAIL line counts as one failure.
tally() { # label command...
  local label=$1; shift
  local log=$OUT/${label// /-}.log status p f
  quiet "$TIMEOUT" "$@" > "$log" 2>&1
  status=$?
  grep -E '^(PASS|FAIL|     )' "$log"
  p=$(grep -c '^PASS' "$log")
  f=$(grep -c '^FAIL' "$log")
  passed=$((passed + p))
  failed=$((failed + f))
  if [ "$status" != 0 ] && [ "$f" = 0 ]; then
    if [ "$status" -gt 128 ]; then
      fail "$label: killed by SIG$(kill -l $((status - 128))) (log $log)"
    else
      fail "$label: exit status $status (log $log)"
    fi
  fi
}

build() { # output source flags...
  local out=$1 src=$2; shift 2
  if ! $CC_TEST "$@" -o "$OUT/$out" "$src" > "$OUT/$out.build.log" 2>&1; then
    fail "build $out"
    cat "$OUT/$out.build.log"
    return 1
  fi
}

for part in "${parts[@]}"; do
  case $part in
  battery)
    build cases Tests/misuse/cases.c -O0 -g -fno-builtin -pthread -Wall -Wextra -ldl &&
    build battery Tests/misuse/battery.c -O1 -g -Wall -Wextra &&
    tally battery "$OUT/battery" "$OUT/cases" "$SO" "$SECURE"
    ;;
  rlimit)
    if build rlimit Tests/misuse/rlimit.c -O2 -g -pthread -Wall -Wextra; then
      for lib in "$SO" "$SECURE"; do
        for limit in as data; do
          for t in small small_var calloc medium large mixed large_after_small threads; do
            tally "rlimit $limit $t $(basename "$lib" .so)" env LD_PRELOAD="$lib" "$OUT/rlimit" $limit $t
          done
        done
      done
    fi
    if build guard_rlimit Tests/misuse/guard_rlimit.c -O1 -g -Wall -Wextra; then
      log=$OUT/guard_rlimit.log
      quiet 60 env LD_PRELOAD="$SECURE" "$OUT/guard_rlimit" > "$log" 2>&1
      status=$?
      if [ "$status" = 0 ] && grep -q '^OK' "$log"; then
        pass "rlimit DATA secure: no guard page inside a block after mprotect fails at the limit"
      else
        why="exit status $status"
        [ "$status" -gt 128 ] && why="killed by SIG$(kill -l $((status - 128)))"
        fail "rlimit DATA secure: guard page handed out inside a block ($why)"
        sed 's/^/     /' "$log"
      fi
    fi
    ;;
  programs)
    PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null)
    work=$OUT/programs
    rm -rf "$work"
    mkdir -p "$work"
    cat > "$work/prog.py" <<'EOF'
import json, re, collections, hashlib
d = {str(i): [i * j for j in range(50)] for i in range(3000)}
s = json.dumps(d, sort_keys=True)
c = collections.Counter(re.findall(r'\d+', s))
print(len(s), hashlib.sha256(s.encode()).hexdigest(), c.most_common(3))
print(sum(len(x) for x in sorted(set(s.split(',')))))
EOF
    awk 'BEGIN { srand(7); for (i = 0; i < 200000; i++) printf "%d %s\n", int(rand() * 1e9), substr("abcdefghij", 1 + i % 10) }' > "$work/sort.in"
    cat > "$work/hello.c" <<'EOF'
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
int main(void) {
  char *s = malloc(64);
  strcpy(s, "hello from a compiled program");
  puts(s);
  free(s);
  return 0;
}
EOF
    progs=(
      "python3|$PY $work/prog.py"
      "sort|sort -n $work/sort.in"
      "git --version|git --version"
      "gcc|gcc -O2 -o $work/hello.OUT $work/hello.c|$work/hello.OUT"
    )
    # the Swift program Tests/programs/run.sh builds (hosted Swift runtime)
    if [ -x "$ROOT/build/tests/swift_workload" ]; then progs+=("swift|$ROOT/build/tests/swift_workload"); fi
    for lib in "$SO" "$SECURE"; do
      for entry in "${progs[@]}"; do
        IFS='|' read -r name cmd after <<< "$entry"
        if [ "$name" = python3 ] && [ -z "$PY" ]; then fail "programs: no python3"; continue; fi
        ref_cmd=${cmd//OUT/ref}
        pre_cmd=${cmd//OUT/pre}
        # shellcheck disable=SC2086
        timeout 120 $ref_cmd > "$work/ref.out" 2> "$work/ref.err"
        ref_status=$?
        # shellcheck disable=SC2086
        timeout 120 env LD_PRELOAD="$lib" $pre_cmd > "$work/pre.out" 2> "$work/pre.err"
        pre_status=$?
        if [ -n "$after" ]; then  # run what the compiler made (unpreloaded)
          ${after//OUT/ref} >> "$work/ref.out" 2>&1
          ${after//OUT/pre} >> "$work/pre.out" 2>&1
        fi
        label="programs $(basename "$lib" .so): $name"
        if [ "$pre_status" != "$ref_status" ]; then
          fail "$label: exit status $pre_status, unpreloaded $ref_status"
          head -3 "$work/pre.err" | sed 's/^/     /'
        elif ! cmp -s "$work/ref.out" "$work/pre.out"; then
          fail "$label: output differs from the unpreloaded run"
        elif grep -q 'swiftmalloc' "$work/pre.err"; then
          fail "$label: swiftmalloc wrote to stderr"
          head -3 "$work/pre.err" | sed 's/^/     /'
        elif ! cmp -s "$work/ref.err" "$work/pre.err"; then
          fail "$label: stderr differs from the unpreloaded run"
          head -3 "$work/pre.err" | sed 's/^/     /'
        else
          pass "$label: same output ($(wc -c < "$work/pre.out") bytes), exit $pre_status"
        fi
      done
    done
    ;;
  *)
    echo "unknown part: $part"; exit 2 ;;
  esac
done

echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
