#!/usr/bin/env bash
# Tests/install/run.sh: swiftmalloc installed like any C library.
#
#   Tests/install/run.sh        (after make; `make install-tests` does both)
#
# - `make install DESTDIR=<tmp> PREFIX=/usr` with SWIFTC pointing nowhere
#   (install must not need Swift once make has run): exactly the expected
#   files, symlinks, soname, -z nodelete, header/.pc/man page versions and
#   licence lines;
# - pkg-config (PKG_CONFIG_PATH and PKG_CONFIG_SYSROOT_DIR into the DESTDIR):
#   version, flags;
# - programs built with nothing but pkg-config's flags, dynamically and with
#   --static -static, run with LD_LIBRARY_PATH into the DESTDIR: a C program
#   that names only libc's malloc functions, one that calls swm_version(), a
#   C++ program (new, delete, std::vector), a C++ program that allocates only
#   through new and a C link with the flags first (the --as-needed cases,
#   with controls showing plain -lswiftmalloc is dropped there); each must
#   run on swiftmalloc (dladdr of malloc, mallinfo2, malloc_info's version,
#   SWIFTMALLOC_STATS=1) and report the header's SWIFTMALLOC_VERSION;
# - the man page renders without warnings (man -l, groff -ww) and lists the
#   same environment names as the README's options table and the engine;
# - `make uninstall` leaves no file or symlink behind; the same for the
#   default PREFIX (/usr/local).
#
# One PASS/FAIL line per check, then "N passed, M failed"; the totals also go
# to build/tests/install.counts ("<passed> <failed>"). Exit status 1 if
# anything failed.
set -u
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
MAKE=${MAKE:-make}
CC_TEST=${TEST_CC:-gcc}
CXX_TEST=${TEST_CXX:-g++}
OUT=$ROOT/build/tests/install
mkdir -p "$OUT"
TMP=$(mktemp -d "${TMPDIR:-/tmp}/swiftmalloc-install.XXXXXX")
trap 'rm -rf "$TMP"' EXIT
DEST=$TMP/dest

passed=0
failed=0
pass() { echo "PASS $1"; passed=$((passed + 1)); }
fail() { echo "FAIL $1${2:+: $2}"; failed=$((failed + 1)); }
# check NAME COMMAND...: PASS if the command succeeds; its output is shown on failure.
check() {
  local name=$1 log=$OUT/check.log
  shift
  if "$@" >"$log" 2>&1; then pass "$name"; else fail "$name"; sed -n '1,30p' "$log" | sed 's/^/    | /'; fi
}

for f in build/libswiftmalloc.so build/libswiftmalloc.a build/include/swiftmalloc.h; do
  if [ ! -e "$f" ]; then echo "install/run.sh: $f is missing (run make first)"; exit 2; fi
done
header_define() { sed -n "s/^#define $1  *//p" Sources/CShim/exports/swiftmalloc.h | tr -d '"'; }
VERSION=$(header_define SWIFTMALLOC_VERSION)
MAJOR=$(header_define SWIFTMALLOC_VERSION_MAJOR)
MINOR=$(header_define SWIFTMALLOC_VERSION_MINOR)
PATCH=$(header_define SWIFTMALLOC_VERSION_PATCH)
echo "swiftmalloc $VERSION: installing into $DEST (PREFIX=/usr)"
if [ "$VERSION" = "$MAJOR.$MINOR.$PATCH" ]; then pass "header: SWIFTMALLOC_VERSION $VERSION = MAJOR.MINOR.PATCH"
else fail "header: SWIFTMALLOC_VERSION '$VERSION' is not $MAJOR.$MINOR.$PATCH"; fi
check "CHANGELOG.md has a section for $VERSION" grep -q "^## \[\?$VERSION\]\?" CHANGELOG.md
check "LICENSE is the MIT licence" grep -q '^MIT License' LICENSE

# ------------------------------------------------------------------ install
check "make install DESTDIR PREFIX=/usr (no Swift needed after make)" \
  "$MAKE" -s --no-print-directory install DESTDIR="$DEST" PREFIX=/usr SWIFTC=/nonexistent/swiftc SWIFT=/nonexistent/swift
L=$DEST/usr/lib
expected="usr/bin/swiftmalloc
usr/include/swiftmalloc.h
usr/lib/libswiftmalloc-secure.so
usr/lib/libswiftmalloc-secure.so.$MAJOR
usr/lib/libswiftmalloc-secure.so.$VERSION
usr/lib/libswiftmalloc.a
usr/lib/libswiftmalloc.so
usr/lib/libswiftmalloc.so.$MAJOR
usr/lib/libswiftmalloc.so.$VERSION
usr/lib/pkgconfig/swiftmalloc.pc
usr/libexec/swiftmalloc/spawn
usr/share/man/man3/swiftmalloc.3"
got=$(cd "$DEST" 2>/dev/null && find . \( -type f -o -type l \) | sed 's|^\./||' | LC_ALL=C sort)
if [ "$got" = "$(echo "$expected" | LC_ALL=C sort)" ]; then pass "installed files are exactly the expected twelve"
else fail "installed files differ from the expected ones"; diff <(echo "$expected" | LC_ALL=C sort) <(echo "$got") | sed 's/^/    | /'; fi
for lib in libswiftmalloc libswiftmalloc-secure; do
  if [ "$(readlink "$L/$lib.so.$MAJOR")" = "$lib.so.$VERSION" ] && [ "$(readlink "$L/$lib.so")" = "$lib.so.$MAJOR" ] \
     && [ -f "$L/$lib.so.$VERSION" ] && [ ! -L "$L/$lib.so.$VERSION" ]; then
    pass "$lib: .so -> .so.$MAJOR -> .so.$VERSION"
  else fail "$lib: symlinks" "$(ls -l "$L"/$lib.so* 2>&1 | tr '\n' ' ')"; fi
  dyn=$(readelf -d "$L/$lib.so.$VERSION" 2>&1)
  if echo "$dyn" | grep -q "(SONAME).*\[$lib.so.$MAJOR\]"; then pass "$lib: soname $lib.so.$MAJOR"
  else fail "$lib: soname" "$(echo "$dyn" | grep SONAME)"; fi
  if echo "$dyn" | grep -q 'FLAGS_1.*NODELETE'; then pass "$lib: linked -z nodelete"
  else fail "$lib: not linked -z nodelete"; fi
  check "$lib: tools/check-symbols.sh passes on the installed library" sh tools/check-symbols.sh "$L/$lib.so"
done
check "installed header is build/include/swiftmalloc.h" cmp "$DEST/usr/include/swiftmalloc.h" build/include/swiftmalloc.h
check "header names the MIT licence" grep -q 'SPDX-License-Identifier: MIT' "$DEST/usr/include/swiftmalloc.h"
check "swiftmalloc.pc names the MIT licence" grep -qi 'MIT licen' "$L/pkgconfig/swiftmalloc.pc"
check "man page names the MIT licence" grep -q 'SPDX-License-Identifier: MIT' "$DEST/usr/share/man/man3/swiftmalloc.3"
check "man page is the one in the repository (docs/swiftmalloc.3)" cmp "$DEST/usr/share/man/man3/swiftmalloc.3" docs/swiftmalloc.3
check "man page .TH carries version $VERSION" grep -q "^\.TH SWIFTMALLOC 3 .*\"swiftmalloc $VERSION\"" docs/swiftmalloc.3

# The command finds the installed library beside itself (PREFIX/bin/../lib).
cli_out=$("$DEST/usr/bin/swiftmalloc" run --stats json -- true 2>&1)
cli_status=$?
if [ -x "$DEST/usr/bin/swiftmalloc" ] && [ "$cli_status" = 0 ] && ! echo "$cli_out" | grep -q 'cannot find'; then
  pass "bin/swiftmalloc runs a program on the installed library ($L)"
else fail "bin/swiftmalloc run -- true (status $cli_status)" "$(echo "$cli_out" | head -5 | tr '\n' ' ')"; fi
if "$DEST/usr/bin/swiftmalloc" --version 2>&1 | grep -qx "$VERSION"; then pass "bin/swiftmalloc --version is $VERSION"
else fail "bin/swiftmalloc --version" "$("$DEST/usr/bin/swiftmalloc" --version 2>&1)"; fi

# --------------------------------------------------------------- pkg-config
export PKG_CONFIG_PATH=$L/pkgconfig PKG_CONFIG_SYSROOT_DIR=$DEST
unset PKG_CONFIG_LIBDIR PKG_CONFIG_ALLOW_SYSTEM_CFLAGS PKG_CONFIG_ALLOW_SYSTEM_LIBS
pcver=$(pkg-config --modversion swiftmalloc 2>&1)
if [ "$pcver" = "$VERSION" ]; then pass "pkg-config --modversion swiftmalloc = $VERSION"
else fail "pkg-config --modversion swiftmalloc" "$pcver"; fi
CFLAGS_PC=$(pkg-config --cflags swiftmalloc)
LIBS_PC=$(pkg-config --libs swiftmalloc)
LIBS_STATIC=$(pkg-config --static --libs swiftmalloc)
echo "    pkg-config --cflags: $CFLAGS_PC"
echo "    pkg-config --libs: $LIBS_PC"
echo "    pkg-config --static --libs: $LIBS_STATIC"
case "$CFLAGS_PC" in *"-I$DEST/usr/include"*) pass "pkg-config --cflags points into the DESTDIR" ;;
  *) fail "pkg-config --cflags" "$CFLAGS_PC" ;; esac
case "$LIBS_PC" in *"-L$L "*"--no-as-needed -lswiftmalloc"*) pass "pkg-config --libs: -L into the DESTDIR, -lswiftmalloc under --no-as-needed" ;;
  *) fail "pkg-config --libs" "$LIBS_PC" ;; esac

# ----------------------------------------------------------------- programs
# run_prog NAME BINARY EXPECT_NEEDED: runs it with SWIFTMALLOC_STATS=1 and
# LD_LIBRARY_PATH into the DESTDIR; checks "OK", the version it reports and
# swiftmalloc's statistics (with the version row) at exit.
run_prog() {
  local name=$1 bin=$2 dynamic=$3 out=$OUT/$1.out err=$OUT/$1.err
  if [ "$dynamic" = yes ]; then
    if readelf -d "$bin" | grep -q "(NEEDED).*\[libswiftmalloc.so.$MAJOR\]"; then pass "$name: DT_NEEDED libswiftmalloc.so.$MAJOR"
    else fail "$name: no DT_NEEDED libswiftmalloc.so.$MAJOR" "$(readelf -d "$bin" | grep NEEDED | tr -s ' ' | tr '\n' ' ')"; fi
    local where
    where=$(LD_LIBRARY_PATH=$L ldd "$bin" | grep libswiftmalloc)
    case "$where" in *"=> $L/libswiftmalloc.so.$MAJOR "*) pass "$name: ld.so finds libswiftmalloc.so.$MAJOR in the DESTDIR" ;;
      *) fail "$name: ldd" "$where" ;; esac
  fi
  if env LD_LIBRARY_PATH="$L" SWIFTMALLOC_STATS=1 timeout 60 "$bin" >"$out" 2>"$err" && grep -qx OK "$out"; then
    pass "$name: runs on swiftmalloc$(sed -n 's|^MALLOC \(.*\)| (malloc resolves into \1)|p' "$out" | sed "s|$DEST|<DESTDIR>|")"
  else fail "$name: run"; cat "$out" "$err" | sed -n '1,20p' | sed 's/^/    | /'; fi
  local v
  v=$(sed -n 's/^VERSION //p' "$out")
  if [ -z "$v" ] || [ "$v" = "$VERSION" ]; then
    [ -n "$v" ] && pass "$name: the library reports version $v"
  else fail "$name: the library reports version '$v', the header $VERSION"; fi
  if grep -qx 'swiftmalloc statistics' "$err" && grep -Eq "^  version +$VERSION\$" "$err"; then
    pass "$name: SWIFTMALLOC_STATS=1 prints swiftmalloc's statistics with version $VERSION"
  else fail "$name: no swiftmalloc statistics (with version $VERSION) on stderr at exit"; sed -n '1,12p' "$err" | sed 's/^/    | /'; fi
}

# build NAME COMPILER SOURCE FLAGS...: compiles with the given flags only.
build() {
  local name=$1 compiler=$2 src=$3
  shift 3
  if $compiler -O1 -Wall "$src" "$@" -o "$OUT/$name" >"$OUT/$name.build.log" 2>&1; then return 0; fi
  fail "$name: build: $compiler $src $*"; sed -n '1,20p' "$OUT/$name.build.log" | sed 's/^/    | /'
  return 1
}
# shellcheck disable=SC2086  # pkg-config output is meant to be split
{
  build c-malloc-only "$CC_TEST" Tests/install/prog.c $CFLAGS_PC $LIBS_PC && run_prog c-malloc-only "$OUT/c-malloc-only" yes
  build c-swm "$CC_TEST" Tests/install/prog.c -DUSE_SWM $CFLAGS_PC $LIBS_PC && run_prog c-swm "$OUT/c-swm" yes
  build cxx "$CXX_TEST" Tests/install/prog.cc $CFLAGS_PC $LIBS_PC && run_prog cxx "$OUT/cxx" yes
  build cxx-new-only "$CXX_TEST" Tests/install/prog.cc -DNEW_ONLY $CFLAGS_PC $LIBS_PC && run_prog cxx-new-only "$OUT/cxx-new-only" yes
  build c-static "$CC_TEST" -static Tests/install/prog.c -DSTATIC_BUILD -DUSE_SWM $CFLAGS_PC $LIBS_STATIC \
    && run_prog c-static "$OUT/c-static" no
  build c-static-malloc-only "$CC_TEST" -static Tests/install/prog.c -DSTATIC_BUILD $CFLAGS_PC $LIBS_STATIC \
    && run_prog c-static-malloc-only "$OUT/c-static-malloc-only" no
  build cxx-static "$CXX_TEST" -static Tests/install/prog.cc -DSTATIC_BUILD $CFLAGS_PC $LIBS_STATIC \
    && run_prog cxx-static "$OUT/cxx-static" no
  build cxx-static-new-only "$CXX_TEST" -static Tests/install/prog.cc -DNEW_ONLY $CFLAGS_PC $LIBS_STATIC \
    && run_prog cxx-static-new-only "$OUT/cxx-static-new-only" no
  # The flags before the source file: plain -lswiftmalloc is dropped then.
  build c-flags-first "$CC_TEST" $CFLAGS_PC $LIBS_PC Tests/install/prog.c && run_prog c-flags-first "$OUT/c-flags-first" yes
  # A C++ program that allocates only with new keeps even a plain
  # -lswiftmalloc under --as-needed: operator new is ours (Tests/cxx).
  if build new-only-plain "$CXX_TEST" Tests/install/prog.cc -DNEW_ONLY $CFLAGS_PC -L"$L" -Wl,--as-needed -lswiftmalloc; then
    if readelf -d "$OUT/new-only-plain" | grep -q 'NEEDED.*libswiftmalloc'; then
      pass "plain -lswiftmalloc under --as-needed is kept in a new-only C++ program (operator new is swiftmalloc's)"
    else fail "plain -lswiftmalloc under --as-needed was dropped from a new-only C++ program"; fi
  fi
  # The control: what the .pc file guards against. Under --as-needed, plain
  # -lswiftmalloc is dropped from a link whose flags come first; the program
  # must notice.
  if build control-flags-first "$CC_TEST" $CFLAGS_PC -L"$L" -Wl,--as-needed -lswiftmalloc Tests/install/prog.c; then
    if readelf -d "$OUT/control-flags-first" | grep -q 'NEEDED.*libswiftmalloc'; then
      fail "control: plain -lswiftmalloc before the source under --as-needed was kept (the check above proves nothing)"
    elif env LD_LIBRARY_PATH="$L" "$OUT/control-flags-first" >"$OUT/control.out" 2>&1; then
      fail "control: prog.c did not notice it runs on glibc's malloc"
    else pass "control: plain -lswiftmalloc before the source is dropped under --as-needed, and prog.c notices"; fi
  fi
}

# ----------------------------------------------------------------- man page
if ! command -v man >/dev/null || ! command -v groff >/dev/null; then
  fail "man page: man and groff are needed (apt-get install man-db groff-base)"
else
  warnings=$(MANWIDTH=80 man -l --warnings "$DEST/usr/share/man/man3/swiftmalloc.3" 2>&1 >/dev/null)
  if [ -z "$warnings" ]; then pass "man -l --warnings renders swiftmalloc.3 without warnings"
  else fail "man -l --warnings" "$(echo "$warnings" | head -5 | tr '\n' ' ')"; fi
  warnings=$(groff -man -ww -z "$DEST/usr/share/man/man3/swiftmalloc.3" 2>&1)
  if [ -z "$warnings" ]; then pass "groff -man -ww -z: no warnings"
  else fail "groff -man -ww" "$(echo "$warnings" | head -5 | tr '\n' ' ')"; fi
  text=$(MANWIDTH=80 man -l "$DEST/usr/share/man/man3/swiftmalloc.3" 2>/dev/null)
  missing=""
  for section in NAME SYNOPSIS DESCRIPTION POOLS OPTIONS STATISTICS "SECURE MODE" ENVIRONMENT DIAGNOSTICS COPYRIGHT; do
    echo "$text" | grep -qx "$section" || missing="$missing [$section]"
  done
  if [ -z "$missing" ]; then pass "man page has the API, pools, options, statistics, secure mode, diagnostics sections"
  else fail "man page lacks sections:$missing"; fi
fi
# The names of the README's options table, of the man page's Environment
# list, and of every SWIFTMALLOC_ variable the engine reads, must agree.
readme_names=$(awk '/^## Options/{on=1; next} /^## /{on=0} on && /^\| `/' README.md \
  | sed -n 's/^| `\([A-Z_][A-Z0-9_]*\)`.*/\1/p' | LC_ALL=C sort -u)
man_names=$(awk '/^\.SS Environment/{on=1; next} /^\.S[SH] /{on=0} on' docs/swiftmalloc.3 \
  | awk 'prev == ".TP" && /^\.B [A-Z_][A-Z0-9_]*$/ {print $2} {prev = $0}' | LC_ALL=C sort -u)
engine_names=$(grep -rhoE '"SWIFTMALLOC_[A-Z0-9_]+=' Sources/SwiftMalloc | tr -d '"=' | LC_ALL=C sort -u)
if [ -n "$readme_names" ] && [ "$readme_names" = "$man_names" ]; then
  pass "README options table and man page list the same names ($(echo $readme_names))"
else fail "README options table and man page differ" "README: $(echo $readme_names) / man: $(echo $man_names)"; fi
undocumented=$(LC_ALL=C comm -23 <(echo "$engine_names") <(echo "$man_names"))
if [ -n "$engine_names" ] && [ -z "$undocumented" ]; then pass "every SWIFTMALLOC_ variable in Sources/SwiftMalloc is in the man page"
else fail "variables the engine reads but the man page does not list" "$(echo $undocumented)"; fi

# ---------------------------------------------------------------- uninstall
check "make uninstall DESTDIR PREFIX=/usr" "$MAKE" -s --no-print-directory uninstall DESTDIR="$DEST" PREFIX=/usr
left=$(find "$DEST" \( -type f -o -type l \) 2>/dev/null)
if [ -z "$left" ]; then pass "make uninstall leaves no file or symlink"
else fail "make uninstall left" "$(echo $left)"; fi

# The default PREFIX is /usr/local.
DEST2=$TMP/dest2
check "make install DESTDIR (default PREFIX)" "$MAKE" -s --no-print-directory install DESTDIR="$DEST2" SWIFTC=/nonexistent/swiftc SWIFT=/nonexistent/swift
if [ -f "$DEST2/usr/local/lib/libswiftmalloc.so.$VERSION" ] && [ -f "$DEST2/usr/local/lib/pkgconfig/swiftmalloc.pc" ] \
   && grep -qx 'prefix=/usr/local' "$DEST2/usr/local/lib/pkgconfig/swiftmalloc.pc"; then
  pass "default PREFIX is /usr/local (library, swiftmalloc.pc with prefix=/usr/local)"
else fail "default PREFIX" "$(cd "$DEST2" && find . | head -5 | tr '\n' ' ')"; fi
check "make uninstall DESTDIR (default PREFIX)" "$MAKE" -s --no-print-directory uninstall DESTDIR="$DEST2"
left=$(find "$DEST2" \( -type f -o -type l \) 2>/dev/null)
if [ -z "$left" ]; then pass "make uninstall (default PREFIX) leaves no file or symlink"
else fail "make uninstall (default PREFIX) left" "$(echo $left)"; fi

mkdir -p "$ROOT/build/tests"
echo "$passed $failed" >"$ROOT/build/tests/install.counts"
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
