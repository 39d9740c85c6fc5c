#!/bin/sh
# demo.sh (make demo): real programs on swiftmalloc, each showing that
# swiftmalloc served it: python3 preloaded and a linked C program print the
# allocator's statistics; sort, which closes its standard error before it
# exits, writes its report to a file (SWIFTMALLOC_STATS_FILE).
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
echo "sort closes its standard error before it exits (coreutils' close_stdout), so its report at exit"
echo "goes to a file instead (SWIFTMALLOC_STATS_FILE, %p: the pid); its first lines:"
LD_PRELOAD="$lib" SWIFTMALLOC_STATS_FILE="$data.%p.txt" sort -n "$data" >/dev/null
for report in "$data".*.txt; do sed -n '1p;10,14p' "$report" | sed 's/^/  /'; rm -f "$report"; done
rm -f "$data"
echo
echo "== a C program linked with libswiftmalloc.a"
cc -O2 "$here/examples/linked.c" -I "$here/build/include" "$here/build/libswiftmalloc.a" -pthread -o "$here/build/linked-example"
"$here/build/linked-example"
