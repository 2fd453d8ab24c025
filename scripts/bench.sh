#!/usr/bin/env bash
# make bench: ingest throughput, latency, memory and CPU of every mode against this box's
# raw SQLite append ceiling. Prints one markdown table on stdout (progress goes to stderr);
# raw JSON of every run goes to .build/bench/<timestamp>/. Exit status 1 when any run
# failed (server did not start or exited non-zero, tally-load exited non-zero).
#
# Environment (all optional):
#   BENCH_SKIP_BUILD=1          do not run `swift build -c release` first
#   BENCH_RUNS=3                runs per row; the table shows the median of each column
#   BENCH_EVENTS_SCALE=1        multiplier on every event count (and the fixed-rate duration)
#   BENCH_MODES="http http-browser http-keyed http-batch udp tcp tcp-ack"   modes to run
#   BENCH_<MODE>_EVENTS / _CONNECTIONS / _BATCH, MODE = HTTP, HTTP_BATCH, UDP, TCP, TCP_ACK
#   BENCH_TCP_ACK_WINDOW=32
#   BENCH_CEILING_EVENTS=2000000   rows for `tally store-ceiling`
#   BENCH_RATE=11000 BENCH_RATE_DURATION=10 BENCH_RATE_CONNECTIONS=16   fixed-rate HTTP row
#                               (BENCH_RATE=0 skips it)
#   BENCH_FLOOD=1 BENCH_FLOOD_SITE_RATE=2000 BENCH_FLOOD_PACED_RATE=1000 BENCH_FLOOD_DURATION=10
#                               a flood on one rate-limited site against a paced site (0 skips it)
#   BENCH_PURGE=1 BENCH_PURGE_ROWS=2000000 BENCH_PURGE_DURATION=10
#                               tcp-ack load alone and beside `tally sites purge` of that many rows (0 skips it)
#   BENCH_REPORTS=1 BENCH_REPORT_EVENTS=2000000 BENCH_LIVE_EVENTS=10000000 BENCH_REPORT_RUNS=3
#                               the reporting API on a year of data against plain SQL, export, and
#                               sustained loading of the live shape, medians of the runs
#                               (scripts/report_bench.py; 0 skips it)
#   BENCH_SERVER_EXTRA="--log-level info"   more `tally serve` flags for every server
#   BENCH_LOAD_TIMEOUT=600      seconds before a tally-load run counts as hung
#   BENCH_SHUTDOWN_WAIT=60      seconds to wait for the server to exit after SIGTERM
#   BENCH_OUT=.build/bench/<timestamp>
#   BENCH_TALLY=.build/release/tally BENCH_LOAD=.build/release/tally-load   binaries to measure
#                               (e.g. a baseline build, to compare two commits in one session)
set -euo pipefail
cd "$(dirname "$0")/.."

bench_start=$SECONDS
if [[ "${BENCH_SKIP_BUILD:-0}" != 1 ]]; then
    swift build -c release >&2
fi

TALLY=${BENCH_TALLY:-.build/release/tally}
LOAD=${BENCH_LOAD:-.build/release/tally-load}
HELPER=scripts/bench_table.py
for b in "$TALLY" "$LOAD"; do
    [[ -x "$b" ]] || { echo "bench: $b is missing; build with swift build -c release" >&2; exit 1; }
done
command -v curl >/dev/null || { echo "bench: curl not found (make deps installs it)" >&2; exit 1; }

RUNS=${BENCH_RUNS:-3}
SCALE=${BENCH_EVENTS_SCALE:-1}
MODES=${BENCH_MODES:-http http-browser http-keyed http-batch udp tcp tcp-ack}
LOAD_TIMEOUT=${BENCH_LOAD_TIMEOUT:-600}
SHUTDOWN_WAIT=${BENCH_SHUTDOWN_WAIT:-60}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
OUT=${BENCH_OUT:-.build/bench/$stamp}
mkdir -p "$OUT"

# scaled N [MIN]: N × BENCH_EVENTS_SCALE rounded, at least MIN (default 1).
scaled() { awk -v n="$1" -v s="$SCALE" -v m="${2:-1}" 'BEGIN { v = int(n * s + 0.5); if (v < m) v = m; print v }'; }

# Per-mode defaults: events connections batch.
declare -A DEF=(
    [http]="200000 64 1"
    [http-browser]="200000 64 1"
    [http-keyed]="200000 64 1"
    [http-batch]="1000000 8 200"
    [udp]="1000000 4 100"
    [tcp]="1000000 4 200"
    [tcp-ack]="1000000 4 200"
)
CEILING_EVENTS=$(scaled "${BENCH_CEILING_EVENTS:-2000000}" 1000)
# Half of what closed-loop HTTP sustains here, so the row measures latency, not a backlog.
RATE=${BENCH_RATE:-11000}
RATE_DURATION=${BENCH_RATE_DURATION:-$(scaled 10 2)}
RATE_CONNECTIONS=${BENCH_RATE_CONNECTIONS:-16}

# --- state and cleanup --------------------------------------------------------------------
SERVER_PID=""
read -r -a SERVER_EXTRA <<< "${BENCH_SERVER_EXTRA:-}"
SAMPLER_PID=""
DATA_DIR=""
HTTP_PORT=""
WIRE_PORT=""
failed=0

stop_sampler() {
    if [[ -n "$SAMPLER_PID" ]]; then
        kill -TERM "$SAMPLER_PID" 2>/dev/null || true
        wait "$SAMPLER_PID" 2>/dev/null || true
        SAMPLER_PID=""
    fi
}

# Running (not exited, not a zombie awaiting wait)?
alive() {
    local st
    st=$(awk '{ print $3 }' "/proc/$1/stat" 2>/dev/null) || return 1
    [[ -n "$st" && "$st" != Z && "$st" != X ]]
}

# stop_server: SIGTERM, wait up to SHUTDOWN_WAIT s (then SIGKILL). Sets SERVER_RC, SHUTDOWN_S.
stop_server() {
    SERVER_RC="-"
    SHUTDOWN_S="-"
    [[ -n "$SERVER_PID" ]] || return 0
    local t0 deadline
    t0=$(date +%s.%N)
    kill -TERM "$SERVER_PID" 2>/dev/null || true
    deadline=$((SECONDS + SHUTDOWN_WAIT))
    while alive "$SERVER_PID" && ((SECONDS < deadline)); do sleep 0.05; done
    if alive "$SERVER_PID"; then
        echo "bench: server $SERVER_PID still running ${SHUTDOWN_WAIT}s after SIGTERM; SIGKILL" >&2
        kill -KILL "$SERVER_PID" 2>/dev/null || true
    fi
    SERVER_RC=0
    wait "$SERVER_PID" 2>/dev/null || SERVER_RC=$?
    SHUTDOWN_S=$(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')
    SERVER_PID=""
}

# run_child OUT ERR CMD...: CMD under `timeout`, in the background so that a signal to this
# script is handled at once (bash defers traps while a foreground child runs). Returns CMD's
# exit status (124 when it timed out).
CHILD_PID=""
run_child() {
    local out=$1 err=$2 rc=0
    shift 2
    timeout "$LOAD_TIMEOUT" "$@" > "$out" 2> "$err" &
    CHILD_PID=$!
    wait "$CHILD_PID" || rc=$?
    CHILD_PID=""
    return "$rc"
}

FLOOD_PID=""
cleanup() {
    if [[ -n "$FLOOD_PID" ]]; then
        kill -TERM "$FLOOD_PID" 2>/dev/null || true
        wait "$FLOOD_PID" 2>/dev/null || true
        FLOOD_PID=""
    fi
    if [[ -n "$CHILD_PID" ]]; then
        kill -TERM "$CHILD_PID" 2>/dev/null || true
        wait "$CHILD_PID" 2>/dev/null || true
        CHILD_PID=""
    fi
    stop_sampler
    if [[ -n "$SERVER_PID" ]]; then
        # First SIGTERM drains; a second one makes the server exit at once.
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 10); do alive "$SERVER_PID" || break; sleep 0.1; done
        kill -TERM "$SERVER_PID" 2>/dev/null || true
        for _ in $(seq 20); do alive "$SERVER_PID" || break; sleep 0.1; done
        kill -KILL "$SERVER_PID" 2>/dev/null || true
        wait "$SERVER_PID" 2>/dev/null || true
        SERVER_PID=""
    fi
    if [[ -n "$DATA_DIR" ]]; then rm -rf "$DATA_DIR"; DATA_DIR=""; fi
}
trap cleanup EXIT
trap 'echo "bench: interrupted" >&2; exit 130' INT TERM

# start_server TAG: fresh data dir, free ports, wait for GET /health 200. Returns 1 on failure.
start_server() {
    local tag=$1 deadline
    DATA_DIR=$(mktemp -d "${TMPDIR:-/tmp}/tally-bench.XXXXXX")
    read -r HTTP_PORT WIRE_PORT < <(python3 "$HELPER" ports)
    SERVER_CMD=("$TALLY" serve --data-dir "$DATA_DIR" --http-host 127.0.0.1 --http-port "$HTTP_PORT"
        --wire-host 127.0.0.1 --wire-port "$WIRE_PORT" --log-level warning "${SERVER_EXTRA[@]}")
    echo "${SERVER_CMD[*]}" >> "$OUT/commands.txt"
    "${SERVER_CMD[@]}" > "$OUT/$tag.server.log" 2>&1 &
    SERVER_PID=$!
    deadline=$((SECONDS + 30))
    while ((SECONDS < deadline)); do
        if ! alive "$SERVER_PID"; then
            echo "bench: server for $tag exited during startup (log: $OUT/$tag.server.log)" >&2
            return 1
        fi
        if curl -fsS -o /dev/null -m 1 "http://127.0.0.1:$HTTP_PORT/health" 2>/dev/null; then
            return 0
        fi
        sleep 0.05
    done
    echo "bench: server for $tag not healthy after 30 s (log: $OUT/$tag.server.log)" >&2
    return 1
}

printf 'kind\trun\tstart_ok\tload_rc\tserver_rc\tshutdown_s\tjson_file\tsamples_file\n' > "$OUT/runs.tsv"
: > "$OUT/commands.txt"
{
    printf 'date\t%s\n' "$(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    dirty=""
    [[ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ]] || dirty=" (tracked files modified)"
    printf 'commit\t%s%s\n' "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" "$dirty"
    printf 'binaries\t%s\n' "tally built $(date -u -r "$TALLY" '+%Y-%m-%d %H:%M:%S'), tally-load built $(date -u -r "$LOAD" '+%Y-%m-%d %H:%M:%S') UTC; HEAD committed $(TZ=UTC git log -1 --format=%cd --date=format-local:'%Y-%m-%d %H:%M:%S' 2>/dev/null || echo '?')"
    printf 'nproc\t%s\n' "$(nproc)"
    printf 'cpu_model\t%s\n' "$(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo)"
    printf 'ram\t%s\n' "$(awk '/^MemTotal/ { printf "%.1f GiB", $2 / 1048576 }' /proc/meminfo)"
    printf 'loadavg\t%s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
    printf 'runs\t%s\n' "$RUNS"
    printf 'scale\t%s\n' "$SCALE"
    printf 'out_dir\t%s\n' "$OUT"
    printf 'clk_tck\t%s\n' "$(getconf CLK_TCK)"
    printf 'kind\tceiling\t-\t-\t0\n'
    printf 'command\t%s\n' "$TALLY serve --data-dir D --http-host 127.0.0.1 --http-port P --wire-host 127.0.0.1 --wire-port W --log-level warning"
} > "$OUT/meta.tsv"

# --- 1. baseline: store-ceiling -------------------------------------------------------------
ceiling_cmd=("$TALLY" store-ceiling --events "$CEILING_EVENTS" --json)
printf 'command\t%s\n' "${ceiling_cmd[*]}" >> "$OUT/meta.tsv"
for run in $(seq "$RUNS"); do
    echo "bench: store-ceiling run $run/$RUNS ($CEILING_EVENTS rows)" >&2
    echo "${ceiling_cmd[*]}" >> "$OUT/commands.txt"
    rc=0
    run_child "$OUT/ceiling-$run.json" "$OUT/ceiling-$run.err" "${ceiling_cmd[@]}" || rc=$?
    ((rc == 0)) || failed=1
    printf 'ceiling\t%s\t1\t%s\t-\t-\tceiling-%s.json\t-\n' "$run" "$rc" "$run" >> "$OUT/runs.tsv"
    echo "bench:   $(cat "$OUT/ceiling-$run.json") rc=$rc" >&2
done

# register_keyed_sites: the http-keyed row's sites (tally-load's --run-id keyed, 10 sites), each
# with a write key, registered through the CLI on the running server's store; the keys go to
# $OUT/site-keys.txt for tally-load. Waits until the server enforces them, seen on a marker
# site with a read key (a keyless write would add events to the verified sites).
register_keyed_sites() {
    local i key
    : > "$OUT/site-keys.txt"
    for i in $(seq 0 9); do
        "$TALLY" sites add "load-keyed-$i" --data-dir "$DATA_DIR" > /dev/null || return 1
        key=$("$TALLY" sites keys add "load-keyed-$i" --write --data-dir "$DATA_DIR" | tail -n 1) || return 1
        printf '%s %s\n' "load-keyed-$i" "$key" >> "$OUT/site-keys.txt"
    done
    await_registry
}

# await_registry: registers a marker site with a read key and waits until the running server
# refuses a keyless read of it: it then has every registration made before.
await_registry() {
    local code
    "$TALLY" sites add registry-marker --data-dir "$DATA_DIR" > /dev/null || return 1
    "$TALLY" sites keys add registry-marker --read --data-dir "$DATA_DIR" > /dev/null || return 1
    for _ in $(seq 100); do
        code=$(curl -s -o /dev/null -w '%{http_code}' "http://127.0.0.1:$HTTP_PORT/stats?site_id=registry-marker")
        [[ $code == 401 ]] && return 0
        sleep 0.1
    done
    echo "bench: the server did not pick the registry changes up" >&2
    return 1
}

# --- 2. one load run against a fresh server ---------------------------------------------------
# run_load KIND RUN tally-load-args...
run_load() {
    local kind=$1 run=$2 tag="$1-$2" start_ok=1 load_rc="-"
    shift 2
    SERVER_RC="-"
    SHUTDOWN_S="-"
    if start_server "$tag" && { [[ $kind != http-keyed ]] || register_keyed_sites; }; then
        python3 "$HELPER" sample "$SERVER_PID" "$OUT/$tag.samples" 0.2 "http://127.0.0.1:$HTTP_PORT/metrics" &
        SAMPLER_PID=$!
        local cmd=("$LOAD" "$@" --target "http://127.0.0.1:$HTTP_PORT" --wire "127.0.0.1:$WIRE_PORT" --verify --json)
        echo "${cmd[*]}" >> "$OUT/commands.txt"
        load_rc=0
        run_child "$OUT/$tag.json" "$OUT/$tag.load.err" "${cmd[@]}" || load_rc=$?
        stop_sampler
        if [[ -n "${STATS_PROBE_SITE:-}" ]]; then
            # /stats latency on the loaded data: 50 sequential all-time queries.
            for _ in $(seq 50); do
                curl -s -o /dev/null -w '%{time_total}\n' "http://127.0.0.1:$HTTP_PORT/stats?site_id=$STATS_PROBE_SITE"
            done > "$OUT/$tag.stats-latency"
        fi
        grep -E 'VmHWM|VmRSS' "/proc/$SERVER_PID/status" > "$OUT/$tag.status-before-term" 2>/dev/null || true
    else
        start_ok=0
    fi
    stop_server
    rm -rf "$DATA_DIR"
    DATA_DIR=""
    if [[ $start_ok != 1 || $load_rc != 0 || $SERVER_RC != 0 ]]; then failed=1; fi
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$kind" "$run" "$start_ok" "$load_rc" "$SERVER_RC" "$SHUTDOWN_S" \
        "$([[ $start_ok == 1 ]] && echo "$tag.json" || echo -)" \
        "$([[ $start_ok == 1 ]] && echo "$tag.samples" || echo -)" >> "$OUT/runs.tsv"
    local summary="server did not start"
    if [[ $start_ok == 1 ]]; then
        summary=$(python3 "$HELPER" brief "$OUT/$tag.json")
    fi
    echo "bench:   $summary; tally-load rc=$load_rc server rc=$SERVER_RC shutdown ${SHUTDOWN_S}s" >&2
}

# --- 3. every mode ------------------------------------------------------------------------
# Runs go round the modes (run 1 of each, then run 2 of each, ...): this machine's speed drifts
# over minutes, and interleaving spreads the drift over every row alike, so rows of one run
# compare fairly (http-browser against http, say).
declare -A MODE_ARGS
for mode in $MODES; do
    [[ -n "${DEF[$mode]:-}" ]] || { echo "bench: unknown mode $mode" >&2; exit 1; }
    read -r d_events d_conn d_batch <<< "${DEF[$mode]}"
    prefix="BENCH_$(tr 'a-z-' 'A-Z_' <<< "$mode")"
    ev_var="${prefix}_EVENTS" conn_var="${prefix}_CONNECTIONS" batch_var="${prefix}_BATCH"
    events=$(scaled "${!ev_var:-$d_events}" 1000)
    conn=${!conn_var:-$d_conn}
    batch=${!batch_var:-$d_batch}
    args=(--mode "$mode" --events "$events" --connections "$conn" --batch "$batch")
    label="$mode (C=$conn"
    if [[ $mode == http-browser ]]; then
        # Single events as the tracking script sends them: User-Agent, Origin, referrer.
        args=(--mode http --browser --events "$events" --connections "$conn" --batch "$batch")
    fi
    if [[ $mode == http-keyed ]]; then
        # Single events from a server to registered sites, each request with its site's write key.
        args=(--mode http --run-id keyed --site-keys "$OUT/site-keys.txt" --events "$events" --connections "$conn" --batch "$batch")
    fi
    [[ $mode == http || $mode == http-browser || $mode == http-keyed ]] || label+=", B=$batch"
    if [[ $mode == udp ]]; then
        # UDP has no flow control: paced, so the row shows what the server keeps up with
        # rather than how fast the kernel can drop (BENCH_UDP_RATE=0: unpaced).
        udp_rate=${BENCH_UDP_RATE:-50000}
        if [[ $udp_rate != 0 ]]; then
            args+=(--rate "$udp_rate")
            label+=", paced $udp_rate/s"
        fi
    fi
    if [[ $mode == tcp-ack ]]; then
        window=${BENCH_TCP_ACK_WINDOW:-32}
        args+=(--window "$window")
        label+=", window $window"
    fi
    label+=")"
    printf 'kind\t%s\t%s\t%s\t0\n' "$mode" "$mode" "$label" >> "$OUT/meta.tsv"
    printf 'command\t%s\n' "$LOAD ${args[*]} --target http://127.0.0.1:P --wire 127.0.0.1:W --verify --json" >> "$OUT/meta.tsv"
    MODE_ARGS[$mode]="${args[*]}"
done
for run in $(seq "$RUNS"); do
    for mode in $MODES; do
        read -r -a args <<< "${MODE_ARGS[$mode]}"
        echo "bench: $mode run $run/$RUNS (${args[*]})" >&2
        run_load "$mode" "$run" "${args[@]}"
    done
done

# --- 4. fixed-rate HTTP latency -------------------------------------------------------------
if [[ "$RATE" != 0 ]]; then
    args=(--mode http --rate "$RATE" --duration "$RATE_DURATION" --connections "$RATE_CONNECTIONS")
    printf 'kind\trate\thttp\thttp fixed rate %s/s for %s s (C=%s)\t%s\n' "$RATE" "$RATE_DURATION" "$RATE_CONNECTIONS" "$RATE" >> "$OUT/meta.tsv"
    printf 'command\t%s\n' "$LOAD ${args[*]} --target http://127.0.0.1:P --wire 127.0.0.1:W --verify --json" >> "$OUT/meta.tsv"
    for run in $(seq "$RUNS"); do
        echo "bench: http fixed rate run $run/$RUNS ($RATE/s for $RATE_DURATION s)" >&2
        run_load rate "$run" "${args[@]}"
    done
fi

# --- 4b. the PostgreSQL store ---------------------------------------------------------------
# http-batch into a throwaway local PostgreSQL (scripts/pg-test-server.sh; note: it runs with
# fsync=off), a fresh database per run; /stats latency measured on the loaded data.
pg_note=""
if [[ ${BENCH_POSTGRES:-1} != 0 ]] && pg_admin=$(scripts/pg-test-server.sh start 2>/dev/null); then
    read -r d_events d_conn d_batch <<< "${DEF[http-batch]}"
    events=$(scaled "${BENCH_PG_EVENTS:-$d_events}" 1000)
    args=(--mode http-batch --events "$events" --connections "$d_conn" --batch "$d_batch" --run-id bench)
    printf 'kind\tpg\thttp-batch\thttp-batch into PostgreSQL (C=%s, B=%s)\t0\n' "$d_conn" "$d_batch" >> "$OUT/meta.tsv"
    printf 'command\t%s\n' "$TALLY serve ... --store postgres://tally@127.0.0.1:PGPORT/DB; $LOAD ${args[*]} --target http://127.0.0.1:P --verify --json" >> "$OUT/meta.tsv"
    for run in $(seq "$RUNS"); do
        db="bench_${stamp,,}_$run"
        psql -q "$pg_admin" -c "CREATE DATABASE $db" >/dev/null
        SERVER_EXTRA=(--store "${pg_admin%/*}/$db")
        echo "bench: postgres run $run/$RUNS ($events events)" >&2
        STATS_PROBE_SITE=load-bench-0 run_load pg "$run" "${args[@]}"
        SERVER_EXTRA=()
    done
    pg_note=$(python3 - "$OUT" <<'PY'
import glob, statistics, sys
v = sorted(float(x) * 1000 for f in glob.glob(sys.argv[1] + "/pg-*.stats-latency") for x in open(f) if x.strip())
if v:
    p = lambda q: v[min(len(v) - 1, int(q * len(v)))]
    print(f"PostgreSQL /stats latency (all-time, site with ~1/10 of the events, {len(v)} queries): p50 {p(0.5):.2f} ms, p99 {p(0.99):.2f} ms")
PY
) || { echo "bench: the PostgreSQL /stats latencies could not be read" >&2; pg_note=""; failed=1; }
    scripts/pg-test-server.sh stop
fi

# --- 4c. a flood on one site against a paced site -------------------------------------------
# One server per run; site load-flood-0 registered with a rate limit. tally-load sends to
# load-paced-0 at a fixed rate, first alone, then while a second tally-load floods
# load-flood-0 as fast as 32 connections go (its excess answered 429). The note compares the
# paced site's latency both ways; on this box the two clients share the server's CPUs, so the
# difference includes their cost too.
flood_note=""
if [[ ${BENCH_FLOOD:-1} != 0 ]]; then
    f_rate=${BENCH_FLOOD_SITE_RATE:-2000}
    f_paced=${BENCH_FLOOD_PACED_RATE:-1000}
    f_dur=${BENCH_FLOOD_DURATION:-$(scaled 10 2)}
    [[ $f_dur =~ ^[0-9]+$ ]] || { echo "bench: BENCH_FLOOD_DURATION must be whole seconds, got $f_dur" >&2; exit 1; }
    paced=(--mode http --run-id paced --sites 1 --rate "$f_paced" --duration "$f_dur" --connections 4 --json)
    flood=(--mode http --run-id flood --sites 1 --connections 32 --duration $((f_dur + 2)) --json)
    for run in $(seq "$RUNS"); do
        echo "bench: flood run $run/$RUNS (paced $f_paced/s alone, then beside a flood on a site limited to $f_rate/s)" >&2
        if start_server "flood-$run" && "$TALLY" sites add load-flood-0 --rate "$f_rate" --data-dir "$DATA_DIR" > /dev/null \
            && await_registry; then
            target=(--target "http://127.0.0.1:$HTTP_PORT")
            echo "$LOAD ${paced[*]} ${target[*]}; $LOAD ${flood[*]} ${target[*]} &" >> "$OUT/commands.txt"
            run_child "$OUT/flood-$run-alone.json" "$OUT/flood-$run-alone.err" "$LOAD" "${paced[@]}" "${target[@]}" || failed=1
            timeout "$LOAD_TIMEOUT" "$LOAD" "${flood[@]}" "${target[@]}" > "$OUT/flood-$run-flood.json" 2> "$OUT/flood-$run-flood.err" &
            FLOOD_PID=$!
            sleep 1
            run_child "$OUT/flood-$run-paced.json" "$OUT/flood-$run-paced.err" "$LOAD" "${paced[@]}" "${target[@]}" || failed=1
            wait "$FLOOD_PID" || failed=1
            FLOOD_PID=""
        else
            failed=1
        fi
        stop_server
        [[ $SERVER_RC == 0 ]] || { echo "bench: the flood run's server exited with $SERVER_RC" >&2; failed=1; }
        rm -rf "$DATA_DIR"
        DATA_DIR=""
    done
    flood_note=$(python3 - "$OUT" "$f_paced" "$f_rate" <<'PY'
import glob, json, statistics, sys
out, paced, rate = sys.argv[1], sys.argv[2], sys.argv[3]
def runs(kind):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{out}/flood-*-{kind}.json")) if open(f).read().strip()]
alone, beside, flood = runs("alone"), runs("paced"), runs("flood")
if alone and beside and flood:
    med = lambda rs, k: statistics.median(r["latency_ms"][k] for r in rs)
    refused = sum(r["sent_events"] - r["accepted_events"] for r in beside)
    print(f"Flood isolation ({len(alone)} runs, medians): a site paced at {paced} events/s, p50 {med(alone, 'p50'):.2f} ms "
          f"and p99 {med(alone, 'p99'):.2f} ms alone; p50 {med(beside, 'p50'):.2f} ms and p99 {med(beside, 'p99'):.2f} ms while "
          f"another site limited to {rate}/s is flooded ({statistics.median(r['sent_per_s'] for r in flood):,.0f} requests/s, "
          f"{statistics.median(r['accepted_per_s'] for r in flood):,.0f}/s accepted, the rest 429); paced events refused: {refused}")
PY
) || { echo "bench: the flood results could not be read" >&2; flood_note=""; failed=1; }
fi

# --- 4d. loading beside a purge -------------------------------------------------------------
# One server per run. A site gets PURGE_ROWS events first; tcp-ack load then runs for a fixed
# time once unmeasured (warming the store up), alone, again while `tally sites purge` deletes that site (the collector's sweep paces
# itself to 1/20 of the store's time while loading has work), and alone once more. The note
# compares the acknowledged rate, p99 and the load rate (accepted events over the time until
# /stats had them all) beside the purge with the mean of the two runs without.
purge_note=""
if [[ ${BENCH_PURGE:-1} != 0 ]]; then
    p_rows=$(scaled "${BENCH_PURGE_ROWS:-2000000}" 10000)
    p_dur=${BENCH_PURGE_DURATION:-$(scaled 10 2)}
    [[ $p_dur =~ ^[0-9]+$ ]] || { echo "bench: BENCH_PURGE_DURATION must be whole seconds, got $p_dur" >&2; exit 1; }
    seed=(--mode tcp-ack --run-id old --sites 1 --events "$p_rows" --connections 8 --batch 500 --window 32 --verify --json)
    for run in $(seq "$RUNS"); do
        echo "bench: purge run $run/$RUNS (tcp-ack for ${p_dur}s alone, then beside a purge of $p_rows rows)" >&2
        if start_server "purge-$run"; then
            target=(--target "http://127.0.0.1:$HTTP_PORT" --wire "127.0.0.1:$WIRE_PORT")
            load=(--mode tcp-ack --sites 10 --duration "$p_dur" --connections 8 --batch 500 --window 32 --verify --json)
            echo "$LOAD ${seed[*]} ${target[*]}; $LOAD ${load[*]} --run-id alone ${target[*]}; $TALLY sites purge load-old-0 --data-dir D &; $LOAD ${load[*]} --run-id beside ${target[*]}" >> "$OUT/commands.txt"
            run_child "$OUT/purge-$run-seed.json" "$OUT/purge-$run-seed.err" "$LOAD" "${seed[@]}" "${target[@]}" || failed=1
            # A first run unmeasured: the store grows past the size where its pages stop fitting the cache.
            run_child "$OUT/purge-$run-warm.json" "$OUT/purge-$run-warm.err" "$LOAD" "${load[@]}" --run-id warm "${target[@]}" || failed=1
            run_child "$OUT/purge-$run-alone.json" "$OUT/purge-$run-alone.err" "$LOAD" "${load[@]}" --run-id alone "${target[@]}" || failed=1
            # tally-load builds its payloads before it sends: the purge starts once the first
            # events of this run are stored, so that it runs beside the sending.
            stored0=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events_stored"])')
            timeout "$LOAD_TIMEOUT" "$LOAD" "${load[@]}" --run-id beside "${target[@]}" > "$OUT/purge-$run-beside.json" 2> "$OUT/purge-$run-beside.err" &
            CHILD_PID=$!
            for _ in $(seq 600); do
                now=$(curl -fsS "http://127.0.0.1:$HTTP_PORT/health" | python3 -c 'import json,sys; print(json.load(sys.stdin)["events_stored"])')
                ((now > stored0)) && break
                sleep 0.05
            done
            t0=$(date +%s.%N)
            { "$TALLY" sites purge load-old-0 --data-dir "$DATA_DIR"; echo "took $(awk -v a="$t0" -v b="$(date +%s.%N)" 'BEGIN { printf "%.2f", b - a }')"; } \
                > "$OUT/purge-$run-purge.txt" 2>&1 &
            FLOOD_PID=$!
            wait "$CHILD_PID" || failed=1
            CHILD_PID=""
            printf 'purge running at the end of the load: %s\n' "$(alive "$FLOOD_PID" && echo yes || echo no)" > "$OUT/purge-$run-overlap.txt"
            wait "$FLOOD_PID" || failed=1
            FLOOD_PID=""
            # Alone again, on the store as large as the purge run found it: the baseline is
            # the mean of the runs before and after.
            run_child "$OUT/purge-$run-after.json" "$OUT/purge-$run-after.err" "$LOAD" "${load[@]}" --run-id after "${target[@]}" || failed=1
        else
            failed=1
        fi
        stop_server
        [[ $SERVER_RC == 0 ]] || { echo "bench: the purge run's server exited with $SERVER_RC" >&2; failed=1; }
        rm -rf "$DATA_DIR"
        DATA_DIR=""
    done
    purge_note=$(python3 - "$OUT" "$p_rows" <<'PY'
import glob, json, re, statistics, sys
out, rows = sys.argv[1], int(sys.argv[2])
def runs(kind):
    return [json.load(open(f)) for f in sorted(glob.glob(f"{out}/purge-*-{kind}.json")) if open(f).read().strip()]
alone, beside, after = runs("alone"), runs("beside"), runs("after")
texts = [open(f).read() for f in sorted(glob.glob(f"{out}/purge-*-purge.txt"))]
overlaps = [open(f).read() for f in sorted(glob.glob(f"{out}/purge-*-overlap.txt"))]
took = [float(m.group(1)) for t in texts for m in [re.search(r"took ([0-9.]+)", t)] if m]
overlapped = sum("at the end of the load: yes" in t for t in overlaps)
if alone and beside and after and took:
    med = lambda xs: statistics.median(xs)
    loaded = lambda r: r["accepted_events"] / (r["elapsed_s"] + r["verify"]["queryable_after_s"])
    def line(rs, pairs=None):
        # Without a purge: per run, the mean of the runs before and after it.
        val = (lambda f: med([(f(x) + f(y)) / 2 for x, y in pairs])) if pairs else (lambda f: med([f(r) for r in rs]))
        return (val(lambda r: r["accepted_per_s"]), val(lambda r: r["latency_ms"]["p99"]), val(loaded),
                all(r["verify"]["exact"] for r in (rs or [x for p in pairs for x in p])))
    a, b = line(None, list(zip(alone, after))), line(beside)
    print(f"Loading beside a purge ({len(beside)} runs, medians): tcp-ack without it {a[0]:,.0f} events/s acknowledged, p99 {a[1]:.2f} ms, "
          f"{a[2]:,.0f} events/s loaded; beside `tally sites purge` of {rows:,} rows {b[0]:,.0f} events/s ({b[0] / a[0]:.2f}x), "
          f"p99 {b[1]:.2f} ms, {b[2]:,.0f} events/s loaded ({b[2] / a[2]:.2f}x); the purge took {med(took):.1f} s "
          f"(the collector deleting the rows, paced) and was still running at the end of {overlapped} of {len(overlaps)} loads; "
          f"verify exact: {a[3] and b[3]}")
PY
) || { echo "bench: the purge results could not be read" >&2; purge_note=""; failed=1; }
fi

# --- 4e. reports, and sustained loading at real cardinality ---------------------------------
report_note=""
if [[ "${BENCH_REPORTS:-1}" != 0 ]]; then
    echo "bench: reports (scripts/report_bench.py)" >&2
    # The same questions of a collector on PostgreSQL, unless BENCH_POSTGRES=0.
    report_pg=()
    if [[ ${BENCH_POSTGRES:-1} != 0 ]] && pg_admin=$(scripts/pg-test-server.sh start 2>/dev/null); then
        report_pg=(--postgres "$pg_admin")
    fi
    report_note=$(python3 scripts/report_bench.py --tally "$TALLY" --load "$LOAD" --events "${BENCH_REPORT_EVENTS:-2000000}" \
        --live-events "${BENCH_LIVE_EVENTS:-10000000}" --runs "${BENCH_REPORT_RUNS:-3}" --out "$OUT/reports" "${report_pg[@]}") \
        || { echo "bench: the reports section failed" >&2; report_note=""; failed=1; }
    ((${#report_pg[@]} == 0)) || scripts/pg-test-server.sh stop
fi

elapsed=$((SECONDS - bench_start))
printf 'wall\t%dm%02ds\n' $((elapsed / 60)) $((elapsed % 60)) >> "$OUT/meta.tsv"

# --- 5. the table -------------------------------------------------------------------------
table_rc=0
python3 "$HELPER" table "$OUT" || table_rc=$?
[[ -z "$pg_note" ]] || echo "$pg_note"
[[ -z "$flood_note" ]] || echo "$flood_note"
[[ -z "$purge_note" ]] || echo "$purge_note"
[[ -z "$report_note" ]] || echo "$report_note"
echo "bench: raw results in $OUT (total ${elapsed}s)" >&2
if ((failed || table_rc)); then
    exit 1
fi
