#!/bin/sh
# preload.sh: run any dynamically linked program on swiftmalloc.
#   examples/preload.sh sort -R /etc/services
# SWIFTMALLOC_STATS=1 (the default here; SWIFTMALLOC_STATS=0 turns it off)
# makes each process print what the allocator did at exit.
here=$(cd "$(dirname "$0")/.." && pwd)
lib="$here/build/libswiftmalloc.so"
if [ $# -eq 0 ]; then
  echo "usage: $0 PROGRAM [ARGUMENT...]" >&2
  echo "runs PROGRAM with LD_PRELOAD=$lib and SWIFTMALLOC_STATS=\${SWIFTMALLOC_STATS:-1}" >&2
  exit 2
fi
if [ ! -e "$lib" ]; then
  echo "$0: $lib is missing (run make in $here first)" >&2
  exit 2
fi
exec env LD_PRELOAD="$lib" SWIFTMALLOC_STATS="${SWIFTMALLOC_STATS:-1}" "$@"
