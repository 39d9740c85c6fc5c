#!/usr/bin/env bash
# Tests/stress/soak.sh: builds Tests/stress/soak.c and runs it through
# Tests/stress/soak.py with the library preloaded.
#
#   Tests/stress/soak.sh [MINUTES] [default|secure]     (10, default)
#
# Writes build/tests/stress/soak-<kind>.csv (t_s, rss_kib, live_bytes, one
# row a second) and build/tests/stress/soak-<kind>.svg. SWM_SOAK_THREADS (4)
# and SWM_SOAK_LIVE_MIB (64) change the workload. One PASS/FAIL line per
# check, then "N passed, M failed"; exit status 1 on any failure.
source "$(dirname "$0")/lib.sh"

MINUTES=${1:-10}
kind=${2:-default}
case $MINUTES in
  ''|*[!0-9.]*) echo "usage: $0 [MINUTES] [default|secure]"; exit 2 ;;
esac
if [ "$kind" = secure ]; then lib=$LIB_SECURE; else lib=$LIB_DEFAULT; fi
check_libs "$lib"
if ! gcc -O2 -g -pthread -Wall -Wextra -o "$OUT/soak" Tests/stress/soak.c > "$OUT/soak.build.log" 2>&1; then
  cat "$OUT/soak.build.log"
  echo "FAIL soak: build Tests/stress/soak.c"
  echo "0 passed, 1 failed"
  exit 1
fi
exec python3 Tests/stress/soak.py --bin "$OUT/soak" --lib "$lib" --minutes "$MINUTES" \
  --threads "${SWM_SOAK_THREADS:-4}" --live-mib "${SWM_SOAK_LIVE_MIB:-64}" \
  --csv "$OUT/soak-$kind.csv" --svg "$OUT/soak-$kind.svg" --log "$OUT/soak-$kind.stderr" \
  --label "swiftmalloc soak ($kind library): ${MINUTES} min, ${SWM_SOAK_THREADS:-4} threads, live size ${SWM_SOAK_LIVE_MIB:-64} MiB"
