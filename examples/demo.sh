#!/bin/sh
# demo.sh (make demo): real programs with swiftmalloc preloaded, each printing
# the allocator's statistics at exit.
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
echo "== sort: 300,000 random lines"
seq 300000 | LD_PRELOAD="$lib" "$py" -c 'import sys,random; l=sys.stdin.read().split(); random.seed(2); random.shuffle(l); print("\n".join(l))' > /tmp/swiftmalloc-demo.txt
LD_PRELOAD="$lib" SWIFTMALLOC_STATS=1 sort -n /tmp/swiftmalloc-demo.txt | tail -n 1 | sed 's/^/sort: largest /'
rm -f /tmp/swiftmalloc-demo.txt
echo
echo "== a C program linked with libswiftmalloc.a"
cc -O2 "$here/examples/linked.c" -I "$here/build/include" "$here/build/libswiftmalloc.a" -pthread -o "$here/build/linked-example"
"$here/build/linked-example"
