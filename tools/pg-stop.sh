#!/usr/bin/env bash
# Stop the PostgreSQL server that tools/pg-start.sh started, by the PID in its PID file, and only that one.
# Usage: tools/pg-stop.sh [pidfile]   (default build/pg.pid)
set -uo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
pidfile="${1:-$root/build/pg.pid}"
[ -f "$pidfile" ] || exit 0
pid="$(cat "$pidfile")"
if [ -n "$pid" ] && [ "$(cat /proc/"$pid"/comm 2>/dev/null)" = postgres ]; then
  kill -INT "$pid" 2>/dev/null   # fast shutdown: aborts open transactions, ends cleanly
  for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
fi
rm -f "$pidfile" "$pidfile.port"
