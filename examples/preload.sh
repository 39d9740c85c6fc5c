#!/bin/sh
# preload.sh: run any dynamically linked program on swiftmalloc.
#   examples/preload.sh sort -R /etc/services
# SWIFTMALLOC_STATS=1 makes each process print what the allocator did at exit.
here=$(cd "$(dirname "$0")/.." && pwd)
exec env LD_PRELOAD="$here/build/libswiftmalloc.so" SWIFTMALLOC_STATS="${SWIFTMALLOC_STATS:-1}" "$@"
