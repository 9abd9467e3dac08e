#!/usr/bin/env bash
# Start a PostgreSQL server of our own for tests and benchmarks: its own data directory and port under
# build/, trust authentication on 127.0.0.1 only. Prints the server's URL on stdout; writes the PID file.
#
# Usage: tools/pg-start.sh [pidfile]          (default build/pg.pid; data in build/pgdata, log build/pg.log)
# Env:   PGPORT_ETICKET=55432  port;  PG_BIN=/usr/lib/postgresql/15/bin;  PG_WAIT_S=30
# Exit:  0 started (URL printed, PID file written); 1 failure (reason on stderr).
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build"
pidfile="${1:-$build/pg.pid}"
data="${PGDATA_ETICKET:-$build/pgdata}"
port="${PGPORT_ETICKET:-55432}"
wait_s="${PG_WAIT_S:-30}"
log() { echo "pg-start: $*" >&2; }

bin="${PG_BIN:-}"
if [ -z "$bin" ]; then
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/postgres" ] && bin="$d"; done
fi
if [ -z "$bin" ] || [ ! -x "$bin/postgres" ]; then log "PostgreSQL is not installed (apt-get install postgresql)"; exit 1; fi
mkdir -p "$build"

# PostgreSQL refuses to run as root: run it as the postgres user. If that user cannot reach build/ (a home
# directory of mode 0700 above it), the data directory goes to /tmp instead, still ours alone.
as_pg=()
if [ "$(id -u)" = 0 ]; then
  if ! id postgres >/dev/null 2>&1; then log "running as root and there is no postgres user"; exit 1; fi
  as_pg=(runuser -u postgres --)
  mkdir -p "$data"
  chown postgres: "$data"
  if ! runuser -u postgres -- test -w "$data"; then
    wanted="$data"
    data="/tmp/eticket-pgdata-$(printf '%s' "$wanted" | sha256sum | cut -c1-12)"
    log "the postgres user cannot reach $wanted: data directory $data"
    mkdir -p "$data"
    chown postgres: "$data"
    chmod 700 "$data"
  fi
fi

port_in_use() {
  local hex; hex=$(printf '%04X' "$1")
  awk -v p="$hex" 'NR > 1 { split($2, a, ":"); if (a[2] == p && $4 == "0A") f = 1 } END { exit !f }' /proc/net/tcp /proc/net/tcp6 2>/dev/null
}

if [ -f "$pidfile" ] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
  log "already running (PID $(cat "$pidfile"))"
  echo "postgres://postgres@127.0.0.1:$(cat "$pidfile.port" 2>/dev/null || echo "$port")/postgres"
  exit 0
fi

if [ ! -f "$data/PG_VERSION" ]; then
  rm -rf "$data"
  mkdir -p "$data"
  chmod 700 "$data"
  [ "$(id -u)" = 0 ] && chown postgres: "$data"
  "${as_pg[@]}" "$bin/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale >"$build/pg-initdb.log" 2>&1 \
    || { log "initdb failed (see $build/pg-initdb.log)"; exit 1; }
fi
# Another server (not ours) on the port: take the next free one.
for _ in $(seq 1 50); do port_in_use "$port" || break; port=$((port + 1)); done
touch "$build/pg.log"
# No Unix socket (its default directory may not exist); fsync stays on: the tests kill processes, not the machine.
"${as_pg[@]}" "$bin/postgres" -D "$data" -p "$port" -c listen_addresses=127.0.0.1 -c unix_socket_directories= \
  -c max_connections=200 -c shared_buffers=64MB >>"$build/pg.log" 2>&1 &
pid=$!
echo "$pid" >"$pidfile"
echo "$port" >"$pidfile.port"
for _ in $(seq 1 $((wait_s * 10))); do
  if ! kill -0 "$pid" 2>/dev/null; then log "postgres exited (see $build/pg.log)"; rm -f "$pidfile"; exit 1; fi
  if "$bin/pg_isready" -h 127.0.0.1 -p "$port" -q; then
    # $! may be runuser; the server's own PID (the one to stop) is the first line of postmaster.pid.
    head -1 "$data/postmaster.pid" >"$pidfile"
    echo "postgres://postgres@127.0.0.1:$port/postgres"
    exit 0
  fi
  sleep 0.1
done
log "postgres did not accept connections within ${wait_s}s (see $build/pg.log)"
exit 1
