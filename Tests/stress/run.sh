#!/usr/bin/env bash
# Tests/stress/run.sh: the stress tests with system tools (make stress).
#
#   Tests/stress/run.sh           full: stressng.sh (every stressor, both
#                                 libraries, STRESS_SECONDS (8) per run),
#                                 redis.sh, memcached.sh, soak.sh for
#                                 SOAK_MINUTES (3) with the default library
#                                 and 1 minute with the secure one
#   Tests/stress/run.sh --short   what `make test` runs (about 2.5 minutes):
#                                 the stress-ng malloc variants for 3 s each
#                                 (both libraries), a short redis load,
#                                 memcached, a 1-minute soak
#
# Installs stress-ng, redis-server, redis-tools and memcached from Debian
# when missing. Prints every check's PASS/FAIL/SKIP line, then
# "N passed, M failed, K skipped", writes "N M" to build/tests/stress.counts
# and exits 1 on any failure. Logs, CSV and charts: build/tests/stress/.
# SWM_STRESS_LIB / SWM_STRESS_SECURE_LIB replace the libraries under test
# (any LD_PRELOAD value).
source "$(dirname "$0")/lib.sh"

mode=full
[ "${1:-}" = --short ] && mode=short
COUNTS=$ROOT/build/tests/stress.counts
rm -f "$COUNTS"
check_libs "$LIB_DEFAULT" "$LIB_SECURE"
command -v gcc > /dev/null 2>&1 || need_pkg gcc gcc
command -v python3 > /dev/null 2>&1 || need_pkg python3 python3

if [ $mode = short ]; then
  parts=("stressng.sh --short 3" "redis.sh --short" "memcached.sh --short" "soak.sh 1 default")
else
  parts=("stressng.sh ${STRESS_SECONDS:-8}" "redis.sh" "memcached.sh"
         "soak.sh ${SOAK_MINUTES:-3} default" "soak.sh 1 secure")
fi

t_all=$SECONDS
timing=""
for part in "${parts[@]}"; do
  name=${part%% *}
  log=$OUT/${part// /_}.log
  echo "== $part"
  t0=$SECONDS
  # shellcheck disable=SC2086
  bash Tests/stress/$part 2>&1 | tee "$log"
  status=${PIPESTATUS[0]}
  last=$(tail -n 1 "$log")
  if [[ $last =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed(,\ ([0-9]+)\ skipped)? ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
    skipped=$((skipped + ${BASH_REMATCH[4]:-0}))
    if [ "$status" != 0 ] && [ "${BASH_REMATCH[2]}" = 0 ]; then
      fail "$name: exit status $status"
    fi
  else
    fail "$name: ended without its count line (exit status $status; log $log)"
  fi
  timing="$timing $name $((SECONDS - t0))s"
done
echo "stress ($mode) took $((SECONDS - t_all)) s:$timing"
echo "$passed $failed" > "$COUNTS"
finish
