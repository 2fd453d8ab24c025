#!/usr/bin/env python3
"""make bench, reports section: the reporting API on a big site against the same questions as
plain SQL over the raw rows, export speed and memory, and sustained loading at real
cardinality against the store's append ceiling. Prints markdown on stdout, progress on stderr.

  scripts/report_bench.py --tally .build/release/tally --load .build/release/tally-load \
      --events 10000000 --live-events 10000000 --out .build/bench/DIR [--postgres ADMIN_URL]

Data: --events over 365 days, 100 sites (Zipf), 10,000 paths per site (Zipf), 1,000,000 users,
sent over TCP by tally-load; the questions go to the biggest site, with random ranges and
zones. Latencies are measured by the client over one keep-alive connection. With --postgres (a
server's URL with a database to connect to, e.g. scripts/pg-test-server.sh's), the same data is
loaded into a fresh database there and the same questions are asked of a collector on it.
"""
import argparse, collections, http.client, json, os, random, resource, shutil, socket, sqlite3, subprocess, sys, tempfile, time, urllib.parse

ZONES = ["UTC", "America/New_York", "Europe/Berlin", "Asia/Kolkata", "Asia/Kathmandu", "Australia/Sydney"]


def log(*a):
    print("report bench:", *a, file=sys.stderr, flush=True)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


class Server:
    def __init__(self, tally, data, extra=()):
        self.http, self.wire, self.data = free_port(), free_port(), data
        self.log = open(os.path.join(data, "server.log"), "w")
        self.proc = subprocess.Popen([tally, "serve", "--data-dir", os.path.join(data, "d"), "--http-host", "127.0.0.1",
                                      "--http-port", str(self.http), "--wire-host", "127.0.0.1", "--wire-port", str(self.wire), *extra],
                                     stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                c = http.client.HTTPConnection("127.0.0.1", self.http, timeout=2)
                c.request("GET", "/health")
                if c.getresponse().status == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise SystemExit("report bench: the server did not start")

    # Thread names without their numbers: TP (the store's thread pool: loads, rollups), the
    # dispatch workers (a load's rollup adding-up beside its append), NIO-SGLTN (the event
    # loops: ingest), tally-flusher (the spool).
    THREAD_GROUPS = {"TP": "store threads", "oot.default-qos": "store (dispatch)", "NIO-SGLTN": "event loops (ingest)",
                     "tally-flusher": "spool flushers"}

    def cpu_seconds(self):
        """CPU time (user + system) of each group of the server's threads so far."""
        out = collections.Counter()
        tick = os.sysconf("SC_CLK_TCK")
        for t in os.listdir(f"/proc/{self.proc.pid}/task"):
            try:
                st = open(f"/proc/{self.proc.pid}/task/{t}/stat").read()
            except OSError:
                continue
            name = st[st.index("(") + 1:st.rindex(")")].rstrip("0123456789#-")
            fields = st[st.rindex(")") + 2:].split()
            out[self.THREAD_GROUPS.get(name, "other threads")] += (int(fields[11]) + int(fields[12])) / tick
        return out

    def rss_mb(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=120)


def load(args, server, events, run_id, days, extra=()):
    cmd = [args.load, "--mode", "tcp", "--wire", f"127.0.0.1:{server.wire}", "--target", f"http://127.0.0.1:{server.http}",
           "--events", str(events), "--batch", "500", "--connections", "2", "--sites", "100", "--paths", "10000",
           "--users", "1000000", "--days", str(days), "--run-id", run_id, "--verify", "--verify-timeout", "3600", "--json", *extra]
    with open(os.path.join(args.out, "commands.txt"), "a") as f:
        f.write(" ".join(cmd) + "\n")
    t0 = time.perf_counter()
    out = subprocess.run(cmd, capture_output=True, text=True)
    took = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"report bench: tally-load failed: {out.stderr[-2000:]}")
    r = json.loads(out.stdout)
    if not r["verify"]["exact"]:
        raise SystemExit("report bench: tally-load's verify did not match")
    return took, r


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def timed_get(conn, path):
    t0 = time.perf_counter()
    conn.request("GET", path)
    r = conn.getresponse()
    body = r.read()
    ms = (time.perf_counter() - t0) * 1000
    if r.status != 200:
        raise SystemExit(f"report bench: {path} answered {r.status}: {body[:300]}")
    return ms, body


def sql_ms(db, sql, params):
    t0 = time.perf_counter()
    db.execute(sql, params).fetchall()
    return (time.perf_counter() - t0) * 1000


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--tally", required=True)
    ap.add_argument("--load", required=True)
    ap.add_argument("--events", type=int, default=10_000_000)
    ap.add_argument("--live-events", type=int, default=10_000_000)
    ap.add_argument("--queries", type=int, default=60, help="requests per question")
    ap.add_argument("--sql-runs", type=int, default=3, help="runs of each plain SQL query")
    ap.add_argument("--runs", type=int, default=3, help="runs of the sustained load, rounds of the questions and exports; medians")
    ap.add_argument("--out", required=True)
    ap.add_argument("--postgres", help="admin URL of a PostgreSQL server: also ask the questions of a collector on it")
    ap.add_argument("--pg-queries", type=int, default=20, help="requests per question on PostgreSQL")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)
    rows = []

    # --- sustained loading at real cardinality, against the append ceiling ---------------------
    # Each run beside a ceiling measured just before it: the machine's speed drifts between runs.
    live_runs = []
    live_cpu = []  # per run: CPU µs per event of each thread group and of tally-load; the share of two cores used
    for run in range(args.runs):
        ceiling = json.loads(subprocess.run([args.tally, "store-ceiling", "--events", "2000000", "--json"],
                                            capture_output=True, text=True, check=True).stdout)
        with tempfile.TemporaryDirectory(dir=args.out) as data:
            server = Server(args.tally, data)
            log(f"live shape, run {run + 1}/{args.runs}: {args.live_events:,} events, 100 sites, 10,000 paths, 1M users, one day")
            cpu0, kids0 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
            took, _ = load(args, server, args.live_events, f"live{run}", 1)
            # The server is not waited for yet, so the children's usage is tally-load's.
            cpu1, kids1 = server.cpu_seconds(), resource.getrusage(resource.RUSAGE_CHILDREN)
            server.stop()
        cpu = {g: cpu1[g] - cpu0[g] for g in cpu1}
        cpu["tally-load"] = kids1.ru_utime + kids1.ru_stime - kids0.ru_utime - kids0.ru_stime
        live_cpu.append(({g: v / args.live_events * 1e6 for g, v in cpu.items()}, sum(cpu.values()) / (2 * took)))
        live_runs.append((args.live_events / took, ceiling["append_rows_per_s"]))
        log(f"  {live_runs[-1][0]:,.0f} events/s against a ceiling of {live_runs[-1][1]:,.0f} rows/s")
    live = pct([r for r, _ in live_runs], 50)
    ceiling_rate = pct([c for _, c in live_runs], 50)
    live_ratio = pct([r / c for r, c in live_runs], 50)

    # --- the report data ------------------------------------------------------------------------
    data = tempfile.mkdtemp(dir=args.out)
    server = Server(args.tally, data)
    log(f"report data: {args.events:,} events over 365 days")
    took, _ = load(args, server, args.events, "rep", 365, ("--zipf-sites",))
    t0 = time.perf_counter()
    path = os.path.join(data, "d", "tally.sqlite")
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    while True:
        mark, top = db.execute("SELECT (SELECT rolled_up FROM report_state), (SELECT max(id) FROM event_rows)").fetchone()
        if mark >= top:
            break
        time.sleep(1)
    rolled = time.perf_counter() - t0
    log(f"loaded in {took:.0f} s, rolled up {rolled:.0f} s later")
    site = "load-rep-0"
    site_id = db.execute("SELECT id FROM sites WHERE name = ?", (site,)).fetchone()[0]
    site_rows = db.execute("SELECT count(*) FROM event_rows WHERE site = ?", (site_id,)).fetchone()[0]
    today = time.gmtime()
    today_day = int(time.time() // 86400)

    def date(day):
        return time.strftime("%Y-%m-%d", time.gmtime(day * 86400))

    conn = http.client.HTTPConnection("127.0.0.1", server.http, timeout=600)
    rng = random.Random(1)
    pv = db.execute("SELECT id FROM event_types WHERE name = 'page_view'").fetchone()[0]
    counted = "NOT EXISTS (SELECT 1 FROM event_details d WHERE d.id = e.id AND d.bot <> 0)"
    aggregate_sql = f"""SELECT sum(type = {pv}), count(*), count(DISTINCT user) FROM event_rows e
                        WHERE site = ? AND event_ts >= ? AND event_ts < ? AND {counted}"""
    us = 86_400_000_000

    # Per question, per round: p50 and p99 of its requests; the table has the medians over rounds.
    results = {}

    # The store asked: the SQLite collector (with plain SQL beside it), then PostgreSQL's.
    asking = {"conn": conn, "site": site, "queries": args.queries, "results": results, "sql": True}

    def question(name, target, make_path, sql, sql_params):
        lat = []
        for _ in range(asking["queries"]):
            ms, _ = timed_get(asking["conn"], make_path())
            lat.append(ms)
        r = asking["results"].setdefault(name, {"target": target, "p50": [], "p99": [], "sql": []})
        r["p50"].append(pct(lat, 50))
        r["p99"].append(pct(lat, 99))
        if sql and asking["sql"] and not r["sql"]:
            r["sql"] = [sql_ms(db, sql, sql_params()) for _ in range(args.sql_runs)]
        log(f"{name}: p50 {pct(lat, 50):.2f} ms, p99 {pct(lat, 99):.2f} ms" + (f"; SQL p50 {pct(r['sql'], 50):.0f} ms" if r["sql"] else ""))

    def window(days):
        end = today_day - rng.randrange(0, 365 - days + 1)
        return end - days + 1, end

    def q(kind, extra, days, zone=None):
        def make():
            a, b = window(days)
            tz = zone or rng.choice(ZONES)
            return f"/api/v1/stats/{kind}?site_id={asking['site']}&from={date(a)}&to={date(b)}&tz={urllib.parse.quote(tz)}{extra}"
        return make

    def span(days):
        def params():
            a, b = window(days)
            return (site_id, a * us, (b + 1) * us)
        return params

    def ask_all(round_):
        log(f"questions, round {round_ + 1}/{args.runs}")
        question("aggregate, 30 days, any zone", "< 10", q("aggregate", "", 30), aggregate_sql, span(30))
        question("aggregate, 365 days, any zone", "< 50", q("aggregate", "", 365), aggregate_sql, span(365))
        question("timeseries by day, 365 days (UTC)", "< 50", q("timeseries", "&interval=day", 365, "UTC"),
                 f"""SELECT event_ts / {us}, sum(type = {pv}), count(DISTINCT user) FROM event_rows e
                     WHERE site = ? AND event_ts >= ? AND event_ts < ? AND {counted} GROUP BY 1""", span(365))
        question("timeseries by day, 365 days (America/New_York)", "-", q("timeseries", "&interval=day", 365, "America/New_York"), None, None)
        question("timeseries by hour, 7 days, any zone", "< 20", q("timeseries", "&interval=hour", 7),
                 f"""SELECT event_ts / 3600000000, sum(type = {pv}), count(DISTINCT user) FROM event_rows e
                     WHERE site = ? AND event_ts >= ? AND event_ts < ? AND {counted} GROUP BY 1""", span(7))
        question("breakdown by path, 30 days, limit 10 (UTC)", "< 50", q("breakdown", "&property=path&limit=10", 30, "UTC"),
                 f"""SELECT path, sum(type = {pv}) AS v, count(DISTINCT user), count(*) FROM event_rows e
                     WHERE site = ? AND event_ts >= ? AND event_ts < ? AND {counted} GROUP BY path ORDER BY v DESC LIMIT 10""", span(30))
        question("breakdown by path, 30 days, limit 10 (Asia/Kolkata)", "-", q("breakdown", "&property=path&limit=10", 30, "Asia/Kolkata"), None, None)
        question("realtime", "< 10", lambda: f"/api/v1/stats/realtime?site_id={asking['site']}",
                 aggregate_sql, lambda: (site_id, int(time.time() * 1e6) - 300_000_000, int(time.time() * 1e6) + 1))

    for round_ in range(args.runs):
        ask_all(round_)

    for name, r in results.items():
        rows.append((name, r["target"], pct(r["p50"], 50), pct(r["p99"], 50),
                     pct(r["sql"], 50) if r["sql"] else None, max(r["sql"]) if r["sql"] else None))

    # --- export: the site's year, streamed --------------------------------------------------------
    rss0 = server.rss_mb()
    peak = rss0
    export_rates = []
    for _ in range(args.runs):
        t0 = time.perf_counter()
        conn.request("GET", f"/api/v1/export?site_id={site}&from={date(today_day - 364)}&to={date(today_day)}&format=csv")
        r = conn.getresponse()
        lines = 0
        while True:
            chunk = r.read(1 << 20)
            if not chunk:
                break
            lines += chunk.count(b"\n")
            peak = max(peak, server.rss_mb())
        export_rates.append((lines - 1) / (time.perf_counter() - t0))
        exported = lines - 1
    export_rate = pct(export_rates, 50)
    server.stop()
    db.close()
    shutil.rmtree(data)

    # --- the same data and questions on PostgreSQL ----------------------------------------------
    pg_rows, pg_took = [], None
    if args.postgres:
        name = f"report_bench_{os.getpid()}"
        subprocess.run(["psql", "-q", args.postgres, "-c", f"CREATE DATABASE {name}"], check=True, capture_output=True)
        pg_data = tempfile.mkdtemp(dir=args.out)
        server = Server(args.tally, pg_data, ("--store", args.postgres.rsplit("/", 1)[0] + "/" + name))
        log(f"PostgreSQL: {args.events:,} events over 365 days")
        pg_took, _ = load(args, server, args.events, "pgrep", 365, ("--zipf-sites",))
        asking.update(conn=http.client.HTTPConnection("127.0.0.1", server.http, timeout=600), site="load-pgrep-0",
                      queries=args.pg_queries, results={}, sql=False)
        for round_ in range(args.runs):
            ask_all(round_)
        pg_rows = [(n, r["target"], pct(r["p50"], 50), pct(r["p99"], 50)) for n, r in asking["results"].items()]
        server.stop()
        shutil.rmtree(pg_data)
        subprocess.run(["psql", "-q", args.postgres, "-c", f"DROP DATABASE {name}"], check=True, capture_output=True)

    print()
    print(f"Reports ({args.events:,} events over 365 days, 100 sites (Zipf), 10,000 paths per site (Zipf), 1M users; "
          f"the biggest site has {site_rows:,} rows; loaded in {took:.0f} s, rolled up {rolled:.0f} s later; "
          f"{args.queries} requests per question over HTTP with random ranges and zones, {args.runs} rounds (the table has the "
          f"medians of each round's p50 and p99), plain SQL over the raw rows (sqlite3, no index: a scan) {args.sql_runs} runs):")
    print()
    print("| question | target p99 ms | API p50 ms | API p99 ms | plain SQL p50 ms | plain SQL max ms |")
    print("|---|---|---|---|---|---|")
    for name, target, p50, p99, s50, smax in rows:
        print(f"| {name} | {target} | {p50:.2f} | {p99:.2f} | {'-' if s50 is None else f'{s50:,.0f}'} | {'-' if smax is None else f'{smax:,.0f}'} |")
    print()
    print(f"Export: {exported:,} rows of CSV, median of {args.runs}: {export_rate:,.0f} rows/s; server RSS {rss0:.0f} MB before, "
          f"{peak:.0f} MB at most while streaming.")
    print(f"Sustained loading, live shape ({args.live_events:,} events, 100 sites, 10,000 paths, 1M users, one day, tcp, batch 500, "
          f"2 connections, timed until --verify matched), median of {args.runs} runs: {live:,.0f} events/s; `tally store-ceiling` "
          f"{ceiling_rate:,.0f} rows/s (median, measured before each run); median ratio {live_ratio:.2f}x "
          f"(runs: {', '.join(f'{r:,.0f}/{c:,.0f}' for r, c in live_runs)}).")
    groups = sorted({g for c, _ in live_cpu for g in c}, key=lambda g: -pct([c.get(g, 0) for c, _ in live_cpu], 50))
    per = {g: pct([c.get(g, 0) for c, _ in live_cpu], 50) for g in groups}
    outside = sum(v for g, v in per.items() if not g.startswith("store"))
    print(f"Where the CPU goes in those runs (CPU µs per event, medians): "
          f"{'; '.join(f'{g} {per[g]:.2f}' for g in groups)}; {pct([u for _, u in live_cpu], 50) * 100:.0f} % of two cores busy. "
          f"All but the store take {outside:.2f} µs an event; with a store that did no more than the ceiling's plain append "
          f"({1e6 / ceiling_rate:.2f} µs), two cores would load at most {2e6 / (outside + 1e6 / ceiling_rate):,.0f} events/s "
          f"({2e6 / (outside + 1e6 / ceiling_rate) / ceiling_rate:.2f}x of the ceiling).")
    if pg_rows:
        print()
        print(f"Reports on PostgreSQL (the same data, loaded in {pg_took:.0f} s into a fresh database; each answer is one SQL "
              f"statement over the site's raw rows in the range; {args.pg_queries} requests per question, {args.runs} rounds, medians):")
        print()
        print("| question | target p99 ms | API p50 ms | API p99 ms |")
        print("|---|---|---|---|")
        for name, target, p50, p99 in pg_rows:
            print(f"| {name} | {target} | {p50:.2f} | {p99:.2f} |")


if __name__ == "__main__":
    main()
