#!/usr/bin/env bash
# Stop the pcscd that tools/pcscd-start.sh started, by the PID in its file, and wait until it is gone
# (a restart while the old one still exits fails with "pcscd.comm already exists").
#
# Usage: tools/pcscd-stop.sh [pidfile]      (default build/pcscd.pid)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pidfile="${1:-$root/build/pcscd.pid}"

[ -f "$pidfile" ] || { echo "pcscd-stop: no PID file $pidfile: nothing of ours to stop" >&2; exit 0; }
pid=$(cat "$pidfile")
# Never signal a recycled PID that is no longer our pcscd.
if [ -z "$pid" ] || [ "$(cat /proc/"$pid"/comm 2>/dev/null)" != pcscd ]; then
  rm -f "$pidfile"; exit 0
fi

kill -TERM "$pid" 2>/dev/null || true
for _ in $(seq 1 100); do            # pcscd takes ~1.5 s on TERM
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  echo "pcscd-stop: pid $pid still alive after 10 s, sending KILL" >&2
  kill -KILL "$pid" 2>/dev/null || true
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
fi
# Reap it if it was our shell's child (keeps `wait` callers quiet); harmless otherwise.
wait "$pid" 2>/dev/null || true
rm -f "$pidfile"
echo "pcscd-stop: pcscd (pid $pid) stopped" >&2
