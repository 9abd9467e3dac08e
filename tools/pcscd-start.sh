#!/usr/bin/env bash
# Start pcscd in the background with the TCP_NODELAY preload, for tests and benchmarks on vpcd.
# Waits until vpcd's ports listen (read from /proc/net/tcp: a connect would insert a card), writes the PID file.
#
# Usage: tools/pcscd-start.sh [pidfile]      (default build/pcscd.pid)
# Env:   ETICKET_NODELAY=0  start without the preload (to measure the 44 ms Nagle stall)
#        VPCD_PORTS="35963 35964"  ports to wait for;  PCSCD_WAIT_S=15
# Exit:  0 started (PID file written) or already running (no PID file: not ours to stop); 1 failure.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"
pidfile="${1:-$build/pcscd.pid}"
ports="${VPCD_PORTS:-35963 35964}"
wait_s="${PCSCD_WAIT_S:-15}"
mkdir -p "$build" "$(dirname "$pidfile")"

log() { echo "pcscd-start: $*" >&2; }

ports_listening() {
  local p hex
  for p in $ports; do
    hex=$(printf '%04X' "$p")
    # Column 2 is local addr:port, column 4 the state; 0A = LISTEN.
    if ! awk -v port="$hex" 'NR > 1 { split($2, a, ":"); if (a[2] == port && $4 == "0A") found = 1 } END { exit !found }' \
         /proc/net/tcp /proc/net/tcp6 2>/dev/null; then
      return 1
    fi
  done
}

pcscd_bin="$(command -v pcscd || true)"
[ -x "$pcscd_bin" ] || pcscd_bin=/usr/sbin/pcscd
if [ ! -x "$pcscd_bin" ]; then log "pcscd not installed (apt-get install pcscd vsmartcard-vpcd)"; exit 1; fi
if [ ! -e /etc/reader.conf.d/vpcd ]; then log "vpcd not configured (/etc/reader.conf.d/vpcd missing: apt-get install vsmartcard-vpcd)"; exit 1; fi

# A stale PID file (pcscd gone) is ours to drop; a live one means we already started it.
if [ -f "$pidfile" ]; then
  old=$(cat "$pidfile")
  if [ -n "$old" ] && [ "$(cat /proc/"$old"/comm 2>/dev/null)" = pcscd ]; then
    log "already started by us (pid $old)"; exit 0
  fi
  rm -f "$pidfile"
fi

if running=$(pgrep -x pcscd); then
  log "pcscd already running (pid $(echo $running)), not started by us: using it, will not stop it"
  exit 0
fi

preload=""
if [ "${ETICKET_NODELAY:-1}" != 0 ]; then
  so="$build/libnodelay.so"
  if [ ! -f "$so" ] || [ "$root/tools/nodelay/nodelay.c" -nt "$so" ]; then
    if command -v gcc >/dev/null 2>&1; then
      gcc -shared -fPIC -O2 -Wall -o "$so" "$root/tools/nodelay/nodelay.c" -ldl
    else
      log "gcc missing: starting pcscd without the TCP_NODELAY fix (APDUs will take ~44 ms)"
      so=""
    fi
  fi
  preload="$so"
fi

# Its comm socket from a pcscd that died uncleanly blocks a restart; no pcscd runs now, so it is stale.
rm -f /run/pcscd/pcscd.comm /run/pcscd/pcscd.pid 2>/dev/null || true

if [ -n "$preload" ]; then
  LD_PRELOAD="$preload" "$pcscd_bin" --foreground >"$build/pcscd.log" 2>&1 </dev/null &
else
  "$pcscd_bin" --foreground >"$build/pcscd.log" 2>&1 </dev/null &
fi
pid=$!
echo "$pid" >"$pidfile"

deadline=$((SECONDS + wait_s))
until ports_listening; do
  if ! kill -0 "$pid" 2>/dev/null; then
    log "pcscd exited early; log follows"; cat "$build/pcscd.log" >&2 || true
    rm -f "$pidfile"; exit 1
  fi
  if [ "$SECONDS" -ge "$deadline" ]; then
    log "vpcd ports ($ports) not listening after ${wait_s}s; stopping pcscd"
    "$root/tools/pcscd-stop.sh" "$pidfile" || true
    exit 1
  fi
  sleep 0.1
done
log "pcscd started (pid $pid${preload:+, LD_PRELOAD=$preload}); vpcd listening on $ports"
