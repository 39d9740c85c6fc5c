#!/usr/bin/env bash
# Tests/programs/run.sh: real programs with libswiftmalloc preloaded, their
# OUTPUT checked against the same program run without it (or against known
# text). Every preloaded run sets SWIFTMALLOC_STATS=1 and must print
# "swiftmalloc statistics" on stderr: proof that our allocator was loaded and
# survived to exit.
#
#   python3  allocation-heavy workload (Tests/programs/workload.py), with
#            pymalloc and with PYTHONMALLOC=malloc; checksum compared
#   sort     a large generated input, single- and multi-threaded; compared
#   git      init/add/commit/log/gc/fsck in a throwaway repository; log checked
#   gcc      compiles Tests/programs/compile_me.c; object file compared, and
#            the program it built run and its output compared
#   sqlite3  builds and queries a database; output compared
#   swift    a hosted Swift program (Tests/programs/swift_workload.swift):
#            objects, dictionaries, strings, threads; output compared
#
# Totals go to build/tests/real-tests.counts ("<passed> <failed>").
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
SO=$ROOT/build/libswiftmalloc.so
PROG=$ROOT/Tests/programs
TIMEOUT=${SWM_TEST_TIMEOUT:-120}
mkdir -p "$ROOT/build/tests"

if [ ! -e "$SO" ]; then echo "real-tests: $SO is missing (run make first)"; exit 2; fi

WORK=$(mktemp -d "${TMPDIR:-/tmp}/swm-real.XXXXXX")
trap 'rm -rf "$WORK"' EXIT

passed=0
failed=0
failures=()

pass() { printf 'PASS %-10s %s\n' "$1" "$2"; passed=$((passed + 1)); }
fail() {
  local name=$1
  printf 'FAIL %-10s %s\n' "$1" "$2"
  shift 2
  for f in "$@"; do [ -s "$f" ] && tail -n 15 "$f" | sed "s|^|    | $(basename "$f"): |"; done
  failed=$((failed + 1))
  failures+=("$name")
}

# plain CMD...            run without our allocator
# pre CMD...              run with it preloaded and SWIFTMALLOC_STATS=1
plain() { timeout -k 5 "$TIMEOUT" env -u LD_PRELOAD "$@"; }
pre() { timeout -k 5 "$TIMEOUT" env LD_PRELOAD="$SO" SWIFTMALLOC_STATS=1 "$@"; }

# loaded NAME STDERR-FILE: the stats line proves the library ran in the process.
loaded() {
  if grep -q '^swiftmalloc statistics$' "$2"; then
    pass "$1" "swiftmalloc was loaded (stats printed at exit)"
  else
    fail "$1" "no 'swiftmalloc statistics' on stderr: library not loaded or process died early" "$2"
  fi
}

# no_misuse NAME STDERR-FILE: our library reported no error.
no_misuse() {
  if grep -v -e '^swiftmalloc statistics$' -e '^  ' "$2" | grep -q '^swiftmalloc: '; then
    fail "$1" "swiftmalloc reported an error" "$2"
  fi
}

# same NAME WHAT EXPECTED-FILE ACTUAL-FILE [STDERR-FILE]
same() {
  if [ ! -s "$3" ]; then
    fail "$1" "$2: the reference run produced no output" "$3"
  elif cmp -s "$3" "$4"; then
    pass "$1" "$2"
  else
    fail "$1" "$2: output differs from the reference run" "$4" "${5:-/dev/null}"
    diff "$3" "$4" | head -n 10 | sed 's/^/    | diff: /'
  fi
}

# ---- python3 ----------------------------------------------------------------
# The real interpreter, not a version-manager shim script.
PY=$(python3 -c 'import sys; print(sys.executable)' 2>/dev/null || echo python3)
export PYTHONHASHSEED=0
plain "$PY" "$PROG/workload.py" >"$WORK/py.ref" 2>"$WORK/py.ref.err"
pre "$PY" "$PROG/workload.py" >"$WORK/py.out" 2>"$WORK/py.err"
same python "workload checksum (pymalloc arenas + malloc)" "$WORK/py.ref" "$WORK/py.out" "$WORK/py.err"
loaded python "$WORK/py.err"
PYTHONMALLOC=malloc pre "$PY" "$PROG/workload.py" >"$WORK/py2.out" 2>"$WORK/py2.err"
same python "workload checksum (PYTHONMALLOC=malloc: every object from malloc)" "$WORK/py.ref" "$WORK/py2.out" "$WORK/py2.err"
no_misuse python "$WORK/py.err"
no_misuse python "$WORK/py2.err"

# ---- sort --------------------------------------------------------------------
export LC_ALL=C
"$PY" - "$WORK/sort.in" <<'EOF'
import random, sys
rng = random.Random(7)
with open(sys.argv[1], "w") as f:
    for i in range(400_000):
        f.write("%s %08d %s\n" % ("".join(chr(97 + rng.randrange(26)) for _ in range(rng.randrange(1, 12))),
                                 rng.randrange(10**8), "y" * rng.randrange(0, 60)))
EOF
plain sort "$WORK/sort.in" >"$WORK/sort.ref" 2>"$WORK/sort.ref.err"
pre sort "$WORK/sort.in" >"$WORK/sort.out" 2>"$WORK/sort.err"
same sort "sort of 400,000 lines" "$WORK/sort.ref" "$WORK/sort.out" "$WORK/sort.err"
# GNU sort closes stderr itself before exit (coreutils' close_stdout), so the
# exit-time statistics cannot appear. The library's init-time warning for a
# bad variable (the default is kept) proves it is loaded instead.
SWIFTMALLOC_TOP_PAD=not-a-size pre sort "$WORK/sort.in" >"$WORK/sort3.out" 2>"$WORK/sort3.err"
if grep -q '^swiftmalloc: .*SWIFTMALLOC_TOP_PAD' "$WORK/sort3.err" && cmp -s "$WORK/sort.ref" "$WORK/sort3.out"; then
  pass sort "swiftmalloc was loaded (init-time warning; stderr is closed before exit)"
else
  fail sort "no init-time swiftmalloc warning on stderr, or wrong output: library not loaded?" "$WORK/sort3.err"
fi
plain sort -k2,2n -k1,1r -S 4M "$WORK/sort.in" >"$WORK/sort2.ref" 2>/dev/null
pre sort --parallel=4 -k2,2n -k1,1r -S 4M "$WORK/sort.in" >"$WORK/sort2.out" 2>"$WORK/sort2.err"
same sort "sort --parallel=4 by keys with a small buffer" "$WORK/sort2.ref" "$WORK/sort2.out" "$WORK/sort2.err"
no_misuse sort "$WORK/sort.err"
no_misuse sort "$WORK/sort2.err"

# ---- git ---------------------------------------------------------------------
repo=$WORK/repo
mkdir -p "$repo"
gitp() { pre git -C "$repo" -c user.name=Tester -c user.email=tester@example.invalid -c init.defaultBranch=main \
           -c gc.auto=0 "$@"; }
(
  export HOME=$WORK GIT_CONFIG_NOSYSTEM=1 GIT_PAGER=cat
  export GIT_AUTHOR_DATE="2024-01-01T00:00:00Z" GIT_COMMITTER_DATE="2024-01-01T00:00:00Z"
  set -e
  gitp init -q
  for c in 1 2 3; do
    for f in $(seq 1 40); do seq $((f * c)) $((f * c + 500)) >"$repo/file$f.txt"; done
    mkdir -p "$repo/dir$c"
    echo "commit $c" >"$repo/dir$c/readme"
    gitp add -A
    gitp commit -q -m "commit number $c"
  done
  gitp log --format='%s|%an' >"$WORK/git.log"
  gitp gc -q
  gitp fsck --strict 2>&1
  gitp rev-list --count HEAD >"$WORK/git.count"
  gitp show --stat --format=%s HEAD~1 | head -n 1 >"$WORK/git.show"
) >"$WORK/git.out" 2>"$WORK/git.err"
git_rc=$?
printf 'commit number 3|Tester\ncommit number 2|Tester\ncommit number 1|Tester\n' >"$WORK/git.expect"
if [ $git_rc -ne 0 ]; then
  fail git "a git command failed (exit $git_rc)" "$WORK/git.out" "$WORK/git.err"
else
  same git "git log after three commits" "$WORK/git.expect" "$WORK/git.log" "$WORK/git.err"
  if [ "$(cat "$WORK/git.count")" = 3 ] && [ "$(cat "$WORK/git.show")" = "commit number 2" ]; then
    pass git "gc, fsck --strict, rev-list and show agree"
  else
    fail git "rev-list/show after gc: $(cat "$WORK/git.count") / $(cat "$WORK/git.show")" "$WORK/git.err"
  fi
fi
loaded git "$WORK/git.err"
no_misuse git "$WORK/git.err"

# ---- gcc ---------------------------------------------------------------------
mkdir -p "$WORK/cc"
plain gcc -O2 -c "$PROG/compile_me.c" -o "$WORK/cc/ref.o" 2>"$WORK/cc/ref.err"
plain gcc "$WORK/cc/ref.o" -o "$WORK/cc/ref" 2>>"$WORK/cc/ref.err"
plain "$WORK/cc/ref" >"$WORK/cc/ref.out" 2>&1
pre gcc -O2 -c "$PROG/compile_me.c" -o "$WORK/cc/pre.o" 2>"$WORK/cc/pre.err"
pre gcc "$WORK/cc/pre.o" -o "$WORK/cc/pre" 2>>"$WORK/cc/pre.err"
same gcc "object file from gcc -O2 -c is identical" "$WORK/cc/ref.o" "$WORK/cc/pre.o" "$WORK/cc/pre.err"
plain "$WORK/cc/pre" >"$WORK/cc/pre.out" 2>&1
same gcc "the program gcc built runs and prints the same" "$WORK/cc/ref.out" "$WORK/cc/pre.out"
if grep -q '^first key-0 last key-9999 sum 2000287767895 fib 75025$' "$WORK/cc/pre.out"; then
  pass gcc "the program's output is the expected text"
else
  fail gcc "the program's output is not the expected text" "$WORK/cc/pre.out"
fi
loaded gcc "$WORK/cc/pre.err"
no_misuse gcc "$WORK/cc/pre.err"

# ---- sqlite3 -------------------------------------------------------------------
if ! command -v sqlite3 >/dev/null 2>&1; then
  echo "real-tests: installing sqlite3"
  { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y sqlite3; } >"$WORK/apt.log" 2>&1 ||
    tail -n 5 "$WORK/apt.log"
fi
if ! command -v sqlite3 >/dev/null 2>&1; then
  fail sqlite3 "sqlite3 is not installed and could not be installed"
else
  cat >"$WORK/db.sql" <<'EOF'
PRAGMA journal_mode=WAL;
CREATE TABLE t(id INTEGER PRIMARY KEY, name TEXT, grp INTEGER, payload BLOB);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 60000)
INSERT INTO t(name, grp, payload) SELECT 'name-' || (i * 7919 % 60000), i % 97, zeroblob(i % 700) FROM n;
CREATE INDEX t_name ON t(name);
CREATE INDEX t_grp ON t(grp, name);
SELECT count(*), sum(length(payload)), min(name), max(name) FROM t;
SELECT grp, count(*), max(name) FROM t GROUP BY grp ORDER BY grp LIMIT 5;
SELECT name FROM t WHERE name LIKE 'name-1234%' ORDER BY name;
UPDATE t SET name = upper(name) WHERE grp = 3;
DELETE FROM t WHERE grp = 4;
SELECT count(*), group_concat(DISTINCT substr(name, 1, 5)) FROM t;
VACUUM;
PRAGMA integrity_check;
EOF
  rm -f "$WORK/ref.db" "$WORK/pre.db"
  plain sqlite3 "$WORK/ref.db" <"$WORK/db.sql" >"$WORK/sql.ref" 2>"$WORK/sql.ref.err"
  pre sqlite3 "$WORK/pre.db" <"$WORK/db.sql" >"$WORK/sql.out" 2>"$WORK/sql.err"
  same sqlite3 "create, index, query, update, vacuum, integrity_check" "$WORK/sql.ref" "$WORK/sql.out" "$WORK/sql.err"
  # the database written under our allocator reads back the same without it
  echo "SELECT count(*), sum(grp), sum(length(payload)) FROM t; PRAGMA integrity_check;" >"$WORK/q.sql"
  plain sqlite3 "$WORK/ref.db" <"$WORK/q.sql" >"$WORK/q.ref" 2>&1
  plain sqlite3 "$WORK/pre.db" <"$WORK/q.sql" >"$WORK/q.out" 2>&1
  same sqlite3 "the database it wrote reads back the same" "$WORK/q.ref" "$WORK/q.out"
  loaded sqlite3 "$WORK/sql.err"
  no_misuse sqlite3 "$WORK/sql.err"
fi

# ---- a Swift program --------------------------------------------------------
# Hosted Swift: the Swift runtime (libswiftCore.so) allocates every object,
# array and string through our malloc, posix_memalign and free.
if ! command -v swiftc >/dev/null 2>&1; then
  fail swift "swiftc is not installed"
else
  mkdir -p "$ROOT/build/tests"
  SWIFT_BIN=$ROOT/build/tests/swift_workload
  if [ ! -x "$SWIFT_BIN" ] || [ "$PROG/swift_workload.swift" -nt "$SWIFT_BIN" ]; then
    swiftc -O "$PROG/swift_workload.swift" -o "$SWIFT_BIN" >"$WORK/swiftc.log" 2>&1 ||
      fail swift "swiftc could not build Tests/programs/swift_workload.swift" "$WORK/swiftc.log"
  fi
  if [ -x "$SWIFT_BIN" ]; then
    plain "$SWIFT_BIN" >"$WORK/swift.ref" 2>"$WORK/swift.ref.err"
    pre "$SWIFT_BIN" >"$WORK/swift.out" 2>"$WORK/swift.err"
    same swift "classes, dictionaries, strings, sort, threads" "$WORK/swift.ref" "$WORK/swift.out" "$WORK/swift.err"
    loaded swift "$WORK/swift.err"
    no_misuse swift "$WORK/swift.err"
  fi
fi

echo "$passed $failed" >"$ROOT/build/tests/real-tests.counts"
if [ $failed -gt 0 ]; then
  echo "real-tests: $passed ok, $failed not ok: ${failures[*]}"
  exit 1
fi
echo "real-tests: $passed ok, 0 not ok"
exit 0
