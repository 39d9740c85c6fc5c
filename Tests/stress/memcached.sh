#!/usr/bin/env bash
# Tests/stress/memcached.sh: Debian's memcached (which uses the system malloc
# for its hash table, connections and buffers; items live in its own slab
# pages, which it also gets from malloc) with the library preloaded.
#
#   Tests/stress/memcached.sh [--short] [default|secure ...]
#       (--short: default; full: default and secure)
#
# memcached listens on a free port of 127.0.0.1 only (TCP, no UDP), 4
# threads, 1 GiB of item memory (more than the clients store: no evictions). Checks, one PASS/FAIL line each: the
# library is in /proc/PID/maps and ld.so bound memcached's malloc and free
# to it; kv.py's clients (16 threads in the full form, 8 in the short) each
# set, read back with multi-gets, overwrite and delete their own keys (1 B ..
# 200 KiB values) and every value must read back as written; then memcached's
# own "shutdown" command stops it and it must exit 0 having printed
# swiftmalloc's statistics (SWIFTMALLOC_STATS=1). Ends with
# "N passed, M failed, K skipped"; exit status 1 on any failure.
source "$(dirname "$0")/lib.sh"

mode=full
if [ "${1:-}" = --short ]; then mode=short; shift; fi
kinds=("$@")
if [ ${#kinds[@]} = 0 ]; then
  if [ $mode = short ]; then kinds=(default); else kinds=(default secure); fi
fi
LOGS=$OUT/memcached
mkdir -p "$LOGS"
check_libs "$LIB_DEFAULT" "$LIB_SECURE"
need_pkg memcached memcached || { fail "memcached: cannot install memcached"; finish; }
KV="python3 Tests/stress/kv.py"

stop_server_on_exit

for kind in "${kinds[@]}"; do
  if [ "$kind" = secure ]; then lib=$LIB_SECURE; else lib=$LIB_DEFAULT; fi
  if [ $mode = short ]; then N=1500; C=8; else N=4000; C=16; fi
  [ "$kind" = secure ] && N=1500
  tag="memcached $kind"
  WORK=$(mktemp -d /tmp/swm-memcached.XXXXXX)
  PORT=$($KV free-port)
  log=$LOGS/$kind-server.log
  user=()
  [ "$(id -u)" = 0 ] && user=(-u root)
  env LD_PRELOAD="$lib" SWIFTMALLOC_STATS=1 LD_DEBUG=bindings LD_DEBUG_OUTPUT="$WORK/ld" \
    setsid memcached -l 127.0.0.1 -p "$PORT" -U 0 "${user[@]}" -A -t 4 -m 1024 -I 1m -c 1024 \
    > "$log" 2>&1 < /dev/null &
  SERVER=$!
  up=0
  for i in $(seq 1 100); do
    if (exec 3<> /dev/tcp/127.0.0.1/"$PORT") 2> /dev/null; then up=1; break; fi
    kill -0 "$SERVER" 2> /dev/null || break
    sleep 0.1
  done
  if [ $up = 0 ]; then
    fail "$tag: server did not accept a connection (log $log)"; tail -n 20 "$log"
    stop_server; continue
  fi
  info "$tag: $(memcached -V) pid $SERVER on 127.0.0.1:$PORT, $lib"
  missing=""
  maps=$(cat /proc/"$SERVER"/maps)
  binds=$(cat "$WORK"/ld.* 2> /dev/null)
  for f in ${lib//:/ }; do grep -qF "$f" <<< "$maps" || missing="$missing $(basename "$f")-not-mapped"; done
  for sym in malloc free; do
    grep -qE "binding file [^ ]*memcached[^ ]* \[0\] to [^ ]*libswiftmalloc[^ ]* \[0\]: normal symbol \`$sym'" <<< "$binds" ||
      missing="$missing $sym-not-bound-to-libswiftmalloc"
  done
  if [ -z "$missing" ]; then
    pass "$tag: maps lists $(basename "${lib##* }"); malloc and free bound to swiftmalloc"
  else
    fail "$tag: interposition:$missing"
  fi
  rm -f "$WORK"/ld.*

  t0=$SECONDS
  out=$(timeout 600 $KV memcached "$PORT" "$N" "$C" 2>&1)
  if [[ $out == ok* ]]; then
    pass "$tag: kv.py $out in $((SECONDS - t0)) s"
  else
    fail "$tag: kv.py memcached: $out"
  fi
  rss=$(awk '/^VmRSS/ { print $2 }' /proc/"$SERVER"/status 2> /dev/null)

  # memcached's own shutdown command (enabled by -A)
  (exec 3<> /dev/tcp/127.0.0.1/"$PORT"; printf 'shutdown\r\n' >&3; timeout 5 cat <&3 > /dev/null) 2> /dev/null
  wait_exit "$SERVER" 30
  status=$EXIT_STATUS
  if [ -z "$status" ]; then
    dump_hang "$SERVER" "$log.hang"
    fail "$tag: shutdown: still running after 30 s (report in $log.hang)"
  elif [ "$status" = 0 ] && grep -q 'swiftmalloc statistics' "$log" && ! grep -q 'swiftmalloc: ' "$log"; then
    pass "$tag: shutdown command: exit status 0 (VmRSS before it $((rss / 1024)) MiB), swiftmalloc's statistics at exit"
  else
    fail "$tag: shutdown: exit status $status (log $log)"
    grep 'swiftmalloc' "$log" | head -n 5
  fi
  stop_server
done
finish
