#!/bin/sh
# demo.sh (make demo): real programs on swiftmalloc, each showing that
# swiftmalloc served it: python3 preloaded and a linked C program print the
# allocator's statistics; sort, which closes its standard error before it
# exits, is shown bound to swiftmalloc by the dynamic linker instead.
set -eu
here=$(cd "$(dirname "$0")/.." && pwd)
lib="$here/build/libswiftmalloc.so"
py=$(python3 -c 'import sys; print(sys.executable)')   # the interpreter itself, not a wrapper script
echo "== python3: build and sort 200,000 dicts, with $lib preloaded"
LD_PRELOAD="$lib" SWIFTMALLOC_STATS=1 "$py" -c '
import random
random.seed(1)
rows = [{"id": i, "name": "user%d" % i, "score": random.random()} for i in range(200000)]
rows.sort(key=lambda r: r["score"])
text = ",".join(r["name"] for r in rows[:50000])
print("python3: best", rows[-1]["name"], "- joined", len(text), "characters")
'
echo
echo "== sort: 300,000 random lines, with $lib preloaded"
data=$(mktemp "${TMPDIR:-/tmp}/swiftmalloc-demo.XXXXXX")
seq 300000 | LD_PRELOAD="$lib" "$py" -c 'import sys,random; l=sys.stdin.read().split(); random.seed(2); random.shuffle(l); print("\n".join(l))' > "$data"
LD_PRELOAD="$lib" sort -n "$data" | tail -n 1 | sed 's/^/sort: largest /'
echo "sort closes its standard error before it exits (coreutils' close_stdout), so SWIFTMALLOC_STATS=1"
echo "has nowhere to print; the dynamic linker (LD_DEBUG=bindings) shows where sort's calls went:"
LD_DEBUG=bindings LD_PRELOAD="$lib" sort -n "$data" 2>&1 >/dev/null \
  | sed -n "s/^ *[0-9]*:[[:space:]]*binding file \(.*\) \[0\] to \(.*\) \[0\]: normal symbol \`\(malloc\|free\|calloc\|realloc\)'.*/  \1: \3 -> \2/p" \
  | sort -u
rm -f "$data"
echo
echo "== a C program linked with libswiftmalloc.a"
cc -O2 "$here/examples/linked.c" -I "$here/build/include" "$here/build/libswiftmalloc.a" -pthread -o "$here/build/linked-example"
"$here/build/linked-example"
