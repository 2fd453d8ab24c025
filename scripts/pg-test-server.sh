#!/usr/bin/env bash
# A throwaway PostgreSQL for the test suite, from Debian's packages.
#   scripts/pg-test-server.sh start   -> prints the URL (postgres://tally@127.0.0.1:PORT/postgres)
#   scripts/pg-test-server.sh stop | restart | url
# State lives in ${TALLY_PG_DIR:-/tmp/tally-test-pg}. As root, the server runs as the
# `postgres` user (initdb refuses root); otherwise as the current user.
set -euo pipefail
dir="${TALLY_PG_DIR:-/tmp/tally-test-pg}"
bin="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[ -x "$bin/pg_ctl" ] || { echo "PostgreSQL server binaries not found (apt-get install postgresql)" >&2; exit 1; }

as_owner() {
    if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

port_of() { cat "$dir/port"; }

case "${1:-start}" in
start)
    if [ -f "$dir/port" ] && as_owner "$bin/pg_ctl" -D "$dir/data" status >/dev/null 2>&1; then
        echo "postgres://tally@127.0.0.1:$(port_of)/postgres"
        exit 0
    fi
    rm -rf "$dir"
    mkdir -p "$dir"
    [ "$(id -u)" = 0 ] && chown postgres "$dir"
    port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
    echo "$port" > "$dir/port"
    as_owner "$bin/initdb" -D "$dir/data" -A trust -U tally --no-sync >"$dir/initdb.log" 2>&1
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" start >/dev/null
    echo "postgres://tally@127.0.0.1:$port/postgres"
    ;;
stop)
    [ -d "$dir/data" ] && as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
    ;;
restart)
    as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
    sleep "${2:-0}"
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $(port_of) -k $dir -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c max_connections=200" start >/dev/null
    ;;
url)
    echo "postgres://tally@127.0.0.1:$(port_of)/postgres"
    ;;
*)
    echo "usage: $0 start|stop|restart [seconds-down]|url" >&2
    exit 2
    ;;
esac
