#!/usr/bin/env bash
# schemathesis against a live collector with the OpenAPI document it serves
# (/api/v1/openapi.json): every operation, generated requests, stateful links. Fails on any
# 5xx, and on any answer whose status, content type, headers or body the document does not
# list. The admin API is on (a token file), so its routes are exercised too.
#   scripts/api_test.sh --binary .build/debug/tally [--examples N]
set -euo pipefail
binary=.build/debug/tally
examples=100
while [ $# -gt 0 ]; do
    case "$1" in
        --binary) binary="$2"; shift 2 ;;
        --examples) examples="$2"; shift 2 ;;
        *) echo "unknown argument $1" >&2; exit 2 ;;
    esac
done
venv="$(pwd)/.build/venv"
dir="$(mktemp -d)"
trap 'kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; rm -rf "$dir"' EXIT
token="api-test-admin-$(head -c 12 /dev/urandom | od -An -tx1 | tr -d ' \n')"
printf '%s\n' "$token" > "$dir/admin" && chmod 600 "$dir/admin"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$binary" serve --data-dir "$dir/data" --http-host 127.0.0.1 --http-port "$port" --wire-port 0 \
    --admin-token-file "$dir/admin" > "$dir/log" 2>&1 &
pid=$!
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$port/health" >/dev/null && break; sleep 0.1; done
# A little data, so that reports have something to count.
curl -sf -X POST "http://127.0.0.1:$port/events?ack=durable" -H 'content-type: application/json' \
    -d '[{"site_id":"0","event_type":"page_view","path":"/","user_id":"u"},{"site_id":"0","event_type":"signup"}]' >/dev/null
# From the scratch directory: schemathesis keeps a cache where it runs.
(cd "$dir" && "$venv/bin/schemathesis" run "http://127.0.0.1:$port/api/v1/openapi.json" -n "$examples" --seed 1 \
    -H "Authorization: Bearer $token" \
    -c not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance,missing_required_header,ignored_auth \
    > "$dir/schemathesis.log" 2>&1) || { cut -c1-400 "$dir/schemathesis.log" | tail -80; echo "api test: schemathesis failed"; exit 1; }
grep -E "generated|passed" "$dir/schemathesis.log" | tail -2
kill -0 "$pid" || { echo "api test: the collector died"; tail -20 "$dir/log"; exit 1; }
echo "api test: schemathesis passed"
