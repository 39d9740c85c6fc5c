#!/usr/bin/env bash
# Tests/stress/redis.sh: Debian's redis-server with the library preloaded,
# loaded by redis-benchmark while BGSAVE forks, then its data checked.
#
#   Tests/stress/redis.sh [--short] [default|secure|jemalloc ...]
#       (--short: default; full: default, secure with the short load, and
#       jemalloc, the same load with nothing preloaded, for comparison)
#
# For each library: redis-server starts on a free port of 127.0.0.1 (nothing
# else is listened on), with no save points and no AOF, its directory a
# temporary one that is removed afterwards (the BGSAVE dumps go there), and
# SWIFTMALLOC_STATS=1. Checks, one PASS/FAIL line each:
#   - interposition: /proc/PID/maps lists the library (and libjemalloc, which
#     redis-server links), and ld.so's binding log (LD_DEBUG=bindings) binds
#     redis-server's malloc, calloc, realloc, free and malloc_usable_size to
#     the library, and mallctl too (exports/mallctl.c; nallocx and
#     malloc_stats_print stay jemalloc's)
#   - kv.py writes N known strings (1 B .. 300 KiB) plus hashes, lists, sets
#   - redis-benchmark, 50 clients, bounded request counts: 14 data types
#     pipelined (-P 16), 7 not pipelined with 1 KiB values, SET/GET of
#     150 KB values; meanwhile BGSAVE is asked for again and again (each one
#     a fork that writes the whole data set); every run exits 0
#   - the BGSAVEs: at least 2 done, the last status ok, none killed, and
#     redis-check-rdb accepts the last dump
#   - redis's INFO memory: allocator_allocated, swiftmalloc's stats.allocated
#     read through mallctl, is 0.8-2x used_memory (the data lives in
#     swiftmalloc's blocks; jemalloc's would be ~0)
#   - DBSIZE covers what kv.py wrote; a sample of kv.py's values reads back
#     as written; redis-benchmark's strings (one random buffer per run) have
#     the lengths asked for and equal contents per length
#   - FLUSHALL, after which redis purges its allocator (mallctl
#     "arena.<n>.purge"): VmRSS at most a quarter of its peak; VmRSS before
#     the load, its peak and after FLUSHALL recorded
#   - SHUTDOWN: redis-server exits 0 and prints swiftmalloc's statistics
# A step that outlives its time limit fails; the server is then ended by its
# pid. Ends with "N passed, M failed, K skipped"; exit status 1 on any failure.
source "$(dirname "$0")/lib.sh"

mode=full
if [ "${1:-}" = --short ]; then mode=short; shift; fi
kinds=("$@")
if [ ${#kinds[@]} = 0 ]; then
  if [ $mode = short ]; then kinds=(default); else kinds=(default secure jemalloc); fi
fi
LOGS=$OUT/redis
mkdir -p "$LOGS"
check_libs "$LIB_DEFAULT" "$LIB_SECURE"
need_pkg redis-server redis-server || { fail "redis: cannot install redis-server"; finish; }
need_pkg redis-benchmark redis-tools || { fail "redis: cannot install redis-tools"; finish; }
KV="python3 Tests/stress/kv.py"
RESULTS=$OUT/redis-results.txt
: > "$RESULTS"

stop_server_on_exit

rss_kib() { awk '/^VmRSS/ { print $2 }' /proc/"$1"/status 2> /dev/null; }
cli() { timeout 60 redis-cli -h 127.0.0.1 -p "$PORT" "$@"; }

one_kind() {
  local kind=$1 lib N REQ_P REQ_N REQ_BIG
  case $kind in
    secure) lib=$LIB_SECURE ;;
    jemalloc) lib="" ;;   # the baseline: nothing preloaded
    *) lib=$LIB_DEFAULT ;;
  esac
  if [ $mode = short ] || [ "$kind" = secure ]; then
    N=3000; REQ_P=20000; REQ_N=4000; REQ_BIG=1000
  else
    N=20000; REQ_P=200000; REQ_N=40000; REQ_BIG=4000
  fi
  local tag="redis $kind"
  WORK=$(mktemp -d /tmp/swm-redis.XXXXXX)
  PORT=$($KV free-port)
  local log=$LOGS/$kind-server.log
  # ld.so writes its binding log to $WORK/ld.<pid>
  env ${lib:+LD_PRELOAD="$lib"} SWIFTMALLOC_STATS=1 LD_DEBUG=bindings LD_DEBUG_OUTPUT="$WORK/ld" \
    setsid redis-server --bind 127.0.0.1 --port "$PORT" --protected-mode yes --save '' \
      --appendonly no --dir "$WORK" --dbfilename dump.rdb --daemonize no --logfile '' > "$log" 2>&1 < /dev/null &
  SERVER=$!
  local i
  for i in $(seq 1 100); do
    [ "$(cli PING 2> /dev/null)" = PONG ] && break
    kill -0 "$SERVER" 2> /dev/null || break
    sleep 0.1
  done
  if [ "$(cli PING 2> /dev/null)" != PONG ]; then
    fail "$tag: server did not answer PING (log $log)"; tail -n 20 "$log"
    stop_server; return
  fi
  info "$tag: redis-server $(redis-server --version | awk '{print $3}' | cut -d= -f2) pid $SERVER on 127.0.0.1:$PORT, ${lib:-nothing preloaded (baseline)}"

  # interposition
  local maps binds missing="" sym
  maps=$(cat /proc/"$SERVER"/maps)
  binds=$(cat "$WORK"/ld.* 2> /dev/null)
  for f in ${lib//:/ }; do grep -qF "$f" <<< "$maps" || missing="$missing $(basename "$f")"; done
  grep -q libjemalloc <<< "$maps" || missing="$missing (libjemalloc not mapped)"
  for sym in malloc calloc realloc free malloc_usable_size mallctl; do
    grep -qE "binding file [^ ]*redis[^ ]* \[0\] to [^ ]*libswiftmalloc[^ ]* \[0\]: normal symbol \`$sym'" <<< "$binds" ||
      missing="$missing $sym-not-bound-to-libswiftmalloc"
  done
  if [ -z "$lib" ]; then
    :
  elif [ -z "$missing" ]; then
    pass "$tag: maps lists $(basename "${lib##* }") and libjemalloc; malloc, calloc, realloc, free, malloc_usable_size, mallctl bound to swiftmalloc"
  else
    fail "$tag: interposition:$missing"
  fi
  rm -f "$WORK"/ld.*

  local out
  out=$(timeout 300 $KV redis-fill "$PORT" "$N" 2>&1)
  if [[ $out == ok* ]]; then pass "$tag: kv.py $out"; else fail "$tag: kv.py redis-fill: $out"; fi
  local rss_before used_before
  rss_before=$(rss_kib "$SERVER")
  used_before=$(cli INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }')

  # BGSAVE again and again while the load runs; peak RSS sampled alongside.
  local stop=$WORK/stop
  (
    n=0; peak=0
    while [ ! -e "$stop" ]; do
      r=$(rss_kib "$SERVER"); [ -n "$r" ] && [ "$r" -gt "$peak" ] && peak=$r
      if cli INFO persistence 2> /dev/null | grep -q 'rdb_bgsave_in_progress:0'; then
        cli BGSAVE 2> /dev/null | grep -q 'Background saving started' && n=$((n + 1))
      fi
      sleep 0.25
    done
    echo "$n $peak" > "$WORK/bgsave"
  ) &
  local loop=$!

  local bench_bad="" b blog t0=$SECONDS
  local benches=(
    "pipelined:-c 50 -n $REQ_P -P 16 -r 100000 -d 64 -t set,get,incr,lpush,rpush,lpop,rpop,sadd,hset,spop,zadd,zpopmin,lrange_100,mset"
    "plain:-c 50 -n $REQ_N -r 100000 -d 1024 -t set,get,lpush,lrange_300,hset,sadd,zadd"
    "big:-c 50 -n $REQ_BIG -r 400 -d 150000 -t set,get"
  )
  for b in "${benches[@]}"; do
    blog=$LOGS/$kind-bench-${b%%:*}.log
    # shellcheck disable=SC2086
    timeout 600 redis-benchmark -h 127.0.0.1 -p "$PORT" -q ${b#*:} > "$blog" 2>&1
    local st=$?
    tr '\r' '\n' < "$blog" | grep -E 'requests per second' | sed "s/^/${b%%:*} /" >> "$RESULTS.$kind"
    if [ $st != 0 ] || grep -qiE 'error|refused|closed the connection' "$blog" ||
       ! grep -q 'requests per second' "$blog"; then
      bench_bad="$bench_bad ${b%%:*}(status $st, log $blog)"
    fi
    kill -0 "$SERVER" 2> /dev/null || { bench_bad="$bench_bad server-died"; break; }
  done
  local load_s=$((SECONDS - t0))
  # let the BGSAVE loop make at least 2 forks (30 s at most), then stop it
  for i in $(seq 1 60); do
    [ "$(cli INFO persistence | tr -d '\r' | awk -F: '$1 == "rdb_saves" { print $2 }')" -ge 2 ] 2> /dev/null && break
    sleep 0.5
  done
  touch "$stop"; wait $loop
  for i in $(seq 1 240); do
    cli INFO persistence | grep -q 'rdb_bgsave_in_progress:0' && break
    sleep 0.5
  done
  if [ -z "$bench_bad" ]; then
    pass "$tag: redis-benchmark, 50 clients: $(wc -l < "$RESULTS.$kind") tests, $((REQ_P * 14 + REQ_N * 7 + REQ_BIG * 2)) requests in ${load_s} s, with BGSAVE forks"
  else
    fail "$tag: redis-benchmark:$bench_bad"
  fi

  local persist bg_n peak saves
  persist=$(cli INFO persistence | tr -d '\r')
  read -r bg_n peak < "$WORK/bgsave"
  saves=$(awk -F: '$1 == "rdb_saves" { print $2 }' <<< "$persist")
  local why=""
  grep -q 'rdb_last_bgsave_status:ok' <<< "$persist" || why="$why last status not ok;"
  [ "${saves:-0}" -ge 2 ] || why="$why rdb_saves=${saves:-?};"
  local crashes
  crashes=$(grep -ciE 'terminated by signal|Background saving error|crashed by signal' "$log")
  [ "$crashes" = 0 ] || why="$why $crashes BGSAVE children crashed or failed (log $log);"
  if [ ! -s "$WORK/dump.rdb" ]; then
    why="$why no dump.rdb;"
  elif ! timeout 300 redis-check-rdb "$WORK/dump.rdb" > "$LOGS/$kind-check-rdb.log" 2>&1 ||
       ! grep -q 'RDB looks OK' "$LOGS/$kind-check-rdb.log"; then
    why="$why redis-check-rdb rejects the last dump ($LOGS/$kind-check-rdb.log);"
  fi
  if [ -z "$why" ]; then
    pass "$tag: $saves BGSAVE forks during the load, last status ok, redis-check-rdb accepts the last dump"
  else
    fail "$tag: BGSAVE:$why"
  fi

  local dbsize
  dbsize=$(cli DBSIZE)
  out=$(timeout 300 $KV redis-check "$PORT" "$N" 2000 64,1024,150000 2>&1)
  if [ "${dbsize:-0}" -ge $((N + 3 * ((N + 99) / 100))) ] 2> /dev/null && [[ $out == ok* ]]; then
    pass "$tag: DBSIZE $dbsize; $out"
  else
    fail "$tag: DBSIZE ${dbsize:-?} (want >= $((N + 3 * ((N + 99) / 100)))); $out"
  fi

  local used_peak rss_peak rss_flush used_flush je
  used_peak=$(cli INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }')
  # redis's own view: used_memory counts malloc_usable_size of its blocks;
  # allocator_allocated is stats.allocated through mallctl, which the
  # preloaded library answers (exports/mallctl.c): swiftmalloc's count of
  # the blocks it holds, so it matches used_memory only when the data is in
  # swiftmalloc's heap (jemalloc, linked into redis, would report ~0).
  je=$(cli INFO memory | tr -d '\r' | awk -F: '$1 == "allocator_allocated" { print $2 }')
  if [ -n "$lib" ]; then
    if [ "${je:-0}" -gt $((used_peak * 4 / 5)) ] && [ "${je:-0}" -lt $((used_peak * 2)) ] 2> /dev/null; then
      pass "$tag: the data is in the preloaded library: used_memory $((used_peak >> 20)) MiB, its stats.allocated (mallctl) $((je >> 20)) MiB"
    else
      fail "$tag: the data is not in the preloaded library: used_memory $((used_peak >> 20)) MiB, allocator_allocated $((je >> 20)) MiB"
    fi
  else
    info "$tag: used_memory $((used_peak >> 20)) MiB, jemalloc's allocator_allocated $((je >> 20)) MiB"
  fi
  rss_peak=$(rss_kib "$SERVER"); [ "${peak:-0}" -gt "${rss_peak:-0}" ] && rss_peak=$peak
  if [ "$(cli FLUSHALL)" = OK ] && [ "$(cli DBSIZE)" = 0 ]; then
    sleep 1
    rss_flush=$(rss_kib "$SERVER")
    used_flush=$(cli INFO memory | tr -d '\r' | awk -F: '$1 == "used_memory" { print $2 }')
    # redis purges its allocator after FLUSHALL (mallctl "arena.<n>.purge")
    if [ "${rss_flush:-0}" -le $((rss_peak / 4)) ] 2> /dev/null; then
      pass "$tag: FLUSHALL; VmRSS $((rss_before / 1024)) MiB after the fill, peak $((rss_peak / 1024)) MiB, $((rss_flush / 1024)) MiB after FLUSHALL (used_memory $((used_before >> 20)) / $((used_peak >> 20)) / $((used_flush >> 20)) MiB)"
    else
      fail "$tag: FLUSHALL gave too little back: VmRSS peak $((rss_peak / 1024)) MiB, $((rss_flush / 1024)) MiB after FLUSHALL"
    fi
    echo "$kind rss_fill_kib=$rss_before rss_peak_kib=$rss_peak rss_flushall_kib=$rss_flush used_memory_flushall=$used_flush bgsaves=$saves load_s=$load_s" >> "$RESULTS"
  else
    fail "$tag: FLUSHALL"
  fi

  cli SHUTDOWN > /dev/null 2>&1
  wait_exit "$SERVER" 60
  local status=$EXIT_STATUS
  if [ -z "$status" ]; then
    dump_hang "$SERVER" "$log.hang"
    fail "$tag: SHUTDOWN: still running after 60 s (report in $log.hang)"
  elif [ "$status" = 0 ] && [ -z "$lib" ]; then
    pass "$tag: SHUTDOWN: exit status 0"
  elif [ "$status" = 0 ] && grep -q 'swiftmalloc statistics' "$log" && ! grep -q 'swiftmalloc: ' "$log"; then
    pass "$tag: SHUTDOWN: exit status 0, swiftmalloc's statistics at exit ($(awk '/in use/ { print $3 " bytes in use" }' "$log" | tail -n 1))"
  else
    fail "$tag: SHUTDOWN: exit status $status$(grep -q 'swiftmalloc statistics' "$log" || echo ", no statistics at exit")$(grep -qE 'swiftmalloc: |crashed by signal' "$log" && echo ", a swiftmalloc message or crash report in the log") (log $log)"
    grep -E 'swiftmalloc: |crashed by signal' "$log" | head -n 5
  fi
  if [ -n "$(ls -A "$WORK" 2> /dev/null | grep -v '^dump.rdb$\|^stop$\|^bgsave$')" ]; then
    info "$tag: other files in the server directory: $(ls "$WORK" | tr '\n' ' ')"
  fi
  stop_server
}

for kind in "${kinds[@]}"; do
  rm -f "$RESULTS.$kind"
  one_kind "$kind"
done
finish
