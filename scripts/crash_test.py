#!/usr/bin/env python3
"""kill -9 crash test for the Tally collector.

Starts `tally serve` on a temporary data directory, runs K sender threads that POST
`page_view` events with `?ack=durable`, and SIGKILLs the server N times at random moments,
restarting it on the same data directory and ports each time. At the end it restarts the
server once more, waits for the spool to drain, and checks every (site, path) against
/stats:

    acked <= stored <= acked + unknown

`acked` counts events whose request got a 202; `unknown` counts events whose request failed
in a way that leaves their fate open (connection reset, timeout, 503, other 5xx). An acked
event missing from the store is LOST; a stored event beyond acked + unknown is DUPLICATED.
Finally the server gets SIGTERM and must exit 0 within 30 s.

With --purge N (make test uses it), a site of its own first gets N durable events, and just
before the first kill `tally sites purge` starts on it as a separate process, sweeping while
the server is killed and restarted around it (the server also takes up the unfinished purge). At the
end that site must read as empty, the purge must have exited 0, and every other site must
still be exact; /health's stored count must equal the other sites' views.

Python 3 standard library only. Usage: scripts/crash_test.py --binary .build/debug/tally
[--kills N] [--senders K] [--seconds-between-kills MIN MAX] [--seed S]
"""

import argparse
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"
HTTP_TIMEOUT = 5.0
PATHS = ["/", "/pricing", "/docs", "/blog/crash", "/about"]
TIMESTAMPS = ["2025-11-13T08:00:00Z", "2025-11-14T12:00:00Z", "2025-11-15T23:59:59Z"]
STATS_LIMIT = 1000


class Abort(Exception):
    """Stops the run early; the reason is already in the failure list."""


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# --------------------------------------------------------------------------- ports

def free_port():
    """A port free for TCP and UDP on HOST (the wire listener binds both)."""
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            t.bind((HOST, 0))
            port = t.getsockname()[1]
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                u.bind((HOST, port))
            except OSError:
                continue
            finally:
                u.close()
            return port
        finally:
            t.close()
    raise RuntimeError("no free port found")


# --------------------------------------------------------------------------- HTTP

def http_json(port, method, path, body=None, timeout=HTTP_TIMEOUT):
    """One request on a fresh connection; returns (status, parsed JSON or raw text)."""
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Content-Type": "application/json"} if body is not None else {}
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
        try:
            return resp.status, json.loads(raw)
        except ValueError:
            return resp.status, raw.decode("utf-8", "replace")
    finally:
        conn.close()


def get_health(port):
    try:
        status, body = http_json(port, "GET", "/health")
    except (OSError, http.client.HTTPException):
        return None
    if status == 200 and isinstance(body, dict):
        return body
    return None


# --------------------------------------------------------------------------- server

class Server:
    def __init__(self, binary, data_dir, http_port, wire_port, flush_interval_ms, log_level):
        self.binary = binary
        self.data_dir = data_dir
        self.http_port = http_port
        self.wire_port = wire_port
        self.flush_interval_ms = flush_interval_ms
        self.log_level = log_level
        self.log_path = os.path.join(data_dir, "server.log")
        self.proc = None
        self.starts = 0

    def start(self):
        cmd = [self.binary, "serve", "--data-dir", self.data_dir,
               "--http-host", HOST, "--http-port", str(self.http_port),
               "--wire-host", HOST, "--wire-port", str(self.wire_port),
               "--log-level", self.log_level]
        if self.flush_interval_ms is not None:
            cmd += ["--flush-interval-ms", str(self.flush_interval_ms)]
        self.starts += 1
        with open(self.log_path, "ab") as f:
            f.write(f"\n===== crash-test: start #{self.starts} at {time.strftime('%H:%M:%S')} =====\n".encode())
            f.flush()
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=f, stderr=subprocess.STDOUT)

    def alive(self):
        return self.proc is not None and self.proc.poll() is None

    def wait_healthy(self, timeout):
        """Polls /health until 200 + healthy; False if the process exits or time runs out."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                return False
            h = get_health(self.http_port)
            if h is not None and h.get("status") == "healthy":
                return True
            time.sleep(0.05)
        return False

    def kill9(self):
        if self.alive():
            self.proc.send_signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait()

    def log_tail(self, lines=60):
        try:
            with open(self.log_path, "rb") as f:
                data = f.read()
        except OSError as e:
            return f"(no log: {e})"
        return "\n".join(data.decode("utf-8", "replace").splitlines()[-lines:])


# --------------------------------------------------------------------------- senders

class Sender(threading.Thread):
    def __init__(self, k, port, rng, gate, stop):
        super().__init__(name=f"sender-{k}", daemon=True)
        self.site = f"crash-{k}"
        self.port = port
        self.rng = rng
        self.gate = gate      # set while the server is up (after /health answered)
        self.stop = stop
        self.acked = {p: 0 for p in PATHS}
        self.unknown = {p: 0 for p in PATHS}
        self.requests = 0
        self.outcomes = {}    # outcome label -> request count
        self.unexpected = []  # (status, body) of 4xx answers: a bug in this test or the server
        self.seq = 0
        self.conn = None

    def _count(self, label):
        self.outcomes[label] = self.outcomes.get(label, 0) + 1

    def _make_events(self, n):
        events = []
        for _ in range(n):
            self.seq += 1
            events.append({
                "site_id": self.site,
                "event_type": "page_view",
                "path": self.rng.choice(PATHS),
                "user_id": f"u{self.rng.randrange(50)}",
                "timestamp": self.rng.choice(TIMESTAMPS),
            })
        return events

    def _close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
            self.conn = None

    def _post(self, url, body):
        """Returns (status, body) or raises; keeps the connection alive between requests."""
        if self.conn is None:
            self.conn = http.client.HTTPConnection(HOST, self.port, timeout=HTTP_TIMEOUT)
        self.conn.request("POST", url, body=body, headers={"Content-Type": "application/json"})
        resp = self.conn.getresponse()
        data = resp.read()
        if resp.getheader("Connection", "").lower() == "close":
            self._close()
        return resp.status, data

    def run(self):
        while not self.stop.is_set():
            if not self.gate.wait(0.2):
                continue
            if self.rng.random() < 0.4:
                events = self._make_events(1)
                url, body = "/event?ack=durable", json.dumps(events[0])
            else:
                events = self._make_events(self.rng.randint(1, 20))
                url, body = "/events?ack=durable", json.dumps(events)
            self.requests += 1
            try:
                status, data = self._post(url, body)
            except ConnectionRefusedError:
                # Nothing was sent: the server is down. Not stored, not counted.
                self._close()
                self._count("refused")
                time.sleep(0.05)
                continue
            except (OSError, http.client.HTTPException) as e:
                # Reset, timeout, half-read response: the events may or may not be stored.
                self._close()
                self._count(f"error:{type(e).__name__}")
                for ev in events:
                    self.unknown[ev["path"]] += 1
                time.sleep(0.02)
                continue
            if status == 202:
                self._count("202")
                try:
                    accepted = json.loads(data).get("accepted")
                except (ValueError, AttributeError):
                    accepted = None
                if accepted != len(events):
                    self.unexpected.append((status, f"accepted={accepted} for {len(events)} events"))
                for ev in events:
                    self.acked[ev["path"]] += 1
            elif status >= 500:
                # 503 (durable timeout, queue full, shutting down) or other 5xx: fate unknown.
                self._count(str(status))
                for ev in events:
                    self.unknown[ev["path"]] += 1
                self._close()
                time.sleep(0.05)
            else:
                self._count(str(status))
                self.unexpected.append((status, data[:300].decode("utf-8", "replace")))
        self._close()


# --------------------------------------------------------------------------- checks

def wait_quiescent(server, timeout=180.0):
    """Waits until queue and spool are empty and events_stored stopped changing."""
    deadline = time.monotonic() + timeout
    last, stable, health = None, 0, None
    while time.monotonic() < deadline:
        if not server.alive():
            return False, health
        health = get_health(server.http_port)
        if health is not None:
            key = (health.get("queue_depth"), health.get("spool_backlog_files"), health.get("events_stored"))
            if key[0] == 0 and key[1] == 0 and key == last:
                stable += 1
                if stable >= 4:
                    return True, health
            else:
                stable = 0
            last = key
        time.sleep(0.5)
    return False, health


def stored_per_path(port, site):
    status, body = http_json(port, "GET", f"/stats?site_id={site}&limit={STATS_LIMIT}", timeout=HTTP_TIMEOUT)
    if status != 200 or not isinstance(body, dict):
        raise RuntimeError(f"/stats for {site} answered {status}: {body}")
    counts = {p["path"]: p["views"] for p in body.get("top_paths", [])}
    return counts, body.get("total_views")


# --------------------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", default=os.environ.get("TALLY_BIN", ".build/debug/tally"))
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--senders", type=int, default=4)
    ap.add_argument("--seconds-between-kills", nargs="+", metavar="S", default=["0.2", "1.5"],
                    help="MIN MAX, MIN-MAX, or one fixed value (default 0.2 1.5)")
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--flush-interval-ms", type=int, default=None, help="passed to the server (default: server's)")
    ap.add_argument("--log-level", default="info", help="server log level (default info)")
    ap.add_argument("--startup-timeout", type=float, default=60.0, help="seconds to wait for /health after a start")
    ap.add_argument("--startup-kill-prob", type=float, default=0.0,
                    help="chance that a restart is itself SIGKILLed 0-150 ms in, before /health (default 0)")
    ap.add_argument("--keep-data", action="store_true", help="keep the temp data dir even on success")
    ap.add_argument("--purge", type=int, default=0, metavar="N",
                    help="seed a site with N events and purge it with `tally sites purge` during the kills (default 0: no purge)")
    args = ap.parse_args()

    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    rng = random.Random(seed)
    try:
        parts = [x for a in args.seconds_between_kills for x in a.replace(",", "-").split("-") if x]
        bounds = [float(x) for x in parts]
        if len(bounds) == 1:
            bounds *= 2
        if len(bounds) != 2 or min(bounds) < 0:
            raise ValueError
    except ValueError:
        ap.error("--seconds-between-kills takes MIN MAX, MIN-MAX or one value >= 0")
    lo, hi = sorted(bounds)
    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print(f"crash-test: binary not found or not executable: {binary}", file=sys.stderr)
        print("crash-test: 0 passed, 1 failed")
        return 1

    data_dir = tempfile.mkdtemp(prefix="tally-crash-")
    http_port, wire_port = free_port(), free_port()
    while wire_port == http_port:
        wire_port = free_port()
    log(f"binary={binary} seed={seed} kills={args.kills} senders={args.senders} "
        f"between-kills={lo}-{hi}s data-dir={data_dir} http={http_port} wire={wire_port}")

    server = Server(binary, data_dir, http_port, wire_port, args.flush_interval_ms, args.log_level)
    gate, stop = threading.Event(), threading.Event()
    senders = []
    failures = []
    kills_done = 0
    startup_kills = 0
    restart_times = []
    started = time.monotonic()
    summary_printed = False

    def start_and_wait(what):
        t0 = time.monotonic()
        server.start()
        if not server.wait_healthy(args.startup_timeout):
            rc = server.proc.poll()
            failures.append(f"server did not become healthy after {what} "
                            f"(exit code {rc if rc is not None else 'still running'})")
            return False
        restart_times.append(time.monotonic() - t0)
        return True

    purge_site, purge_proc = "purge-me", None
    try:
        if not start_and_wait("first start"):
            raise Abort
        if args.purge > 0:
            sent = 0
            while sent < args.purge:
                n = min(500, args.purge - sent)
                body = json.dumps([{"site_id": purge_site, "event_type": "page_view", "path": f"/gone/{(sent + k) % 97}",
                                    "user_id": f"gone-user-{(sent + k) % 313}", "timestamp": TIMESTAMPS[k % len(TIMESTAMPS)]}
                                   for k in range(n)])
                status, _ = http_json(http_port, "POST", "/events?ack=durable", body)
                if status != 202:
                    failures.append(f"seeding {purge_site}: HTTP {status}")
                    raise Abort
                sent += n
            deadline = time.monotonic() + 120
            while stored_per_path(http_port, purge_site)[1] != args.purge:
                if time.monotonic() > deadline:
                    failures.append(f"{purge_site}: its {args.purge} events were not all loaded in 120 s")
                    raise Abort
                time.sleep(0.1)
            log(f"seeded {purge_site} with {args.purge} events")
        for k in range(args.senders):
            s = Sender(k, http_port, random.Random(rng.randrange(1 << 62)), gate, stop)
            senders.append(s)
            s.start()
        gate.set()

        for i in range(args.kills):
            time.sleep(rng.uniform(lo, hi))
            if not server.alive():
                failures.append(f"server exited on its own (code {server.proc.poll()}) before kill #{i + 1}")
                raise Abort
            acked_now = sum(sum(s.acked.values()) for s in senders)
            if args.purge > 0 and purge_proc is None:
                # Started beside the running server (so it paces itself), then killed around.
                purge_proc = subprocess.Popen([binary, "sites", "purge", purge_site, "--data-dir", data_dir],
                                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                              env={k: v for k, v in os.environ.items() if not k.startswith("TALLY_")})
                log(f"started tally sites purge {purge_site}")
                time.sleep(rng.uniform(0.1, 0.5))
            server.kill9()
            gate.clear()
            kills_done += 1
            log(f"kill #{kills_done}: SIGKILL (acked so far {acked_now})")
            if rng.random() < args.startup_kill_prob:
                # Kill again while the new process is starting up / recovering the spool.
                server.start()
                time.sleep(rng.uniform(0.0, 0.15))
                server.kill9()
                startup_kills += 1
                log("  extra SIGKILL during start-up")
            if not start_and_wait(f"kill #{kills_done}"):
                raise Abort
            h = get_health(http_port) or {}
            log(f"  restarted in {restart_times[-1]:.2f}s; spool_backlog_files={h.get('spool_backlog_files')} "
                f"events_stored={h.get('events_stored')} quarantined_files={h.get('quarantined_files')}")
            gate.set()

        # The server restarted after the last kill is the final one: let the senders run on it
        # for one more interval, then stop them and let the spool drain.
        time.sleep(rng.uniform(lo, hi))
        stop.set()
        for s in senders:
            s.join(timeout=3 * HTTP_TIMEOUT)
        if any(s.is_alive() for s in senders):
            failures.append("a sender thread did not stop")
        if not server.alive():
            failures.append(f"server exited on its own (code {server.proc.poll()}) after the last restart")
            raise Abort
        log("senders stopped; waiting for the queue and spool to drain")

        ok, health = wait_quiescent(server)
        if not ok:
            failures.append(f"server did not quiesce (queue_depth 0, spool_backlog_files 0, stable events_stored); "
                            f"last /health: {health}")
            raise Abort
        log(f"quiescent: {json.dumps(health)}")

        # ---- verification
        if purge_proc is not None:
            try:
                out, _ = purge_proc.communicate(timeout=180)
                log(f"purge: exit {purge_proc.returncode}: {out.strip()}")
                if purge_proc.returncode != 0:
                    failures.append(f"tally sites purge exited {purge_proc.returncode}: {out.strip()[-500:]}")
            except subprocess.TimeoutExpired:
                purge_proc.kill()
                failures.append("tally sites purge did not finish within 180 s")
            counts, views = stored_per_path(http_port, purge_site)
            if views != 0 or counts:
                failures.append(f"{purge_site}: still {views} views after the purge: {counts}")
            # The purge's raw rows go in sweeps: the count settles once they are done.
            deadline = time.monotonic() + 60
            expected = sum(stored_per_path(http_port, s.site)[1] or 0 for s in senders)
            while (get_health(http_port) or {}).get("events_stored") != expected and time.monotonic() < deadline:
                time.sleep(0.2)
            health = get_health(http_port) or health
        total_acked = total_unknown = total_stored = total_lost = total_dup = 0
        rows = []
        for s in senders:
            counts, total_views = stored_per_path(http_port, s.site)
            extra = set(counts) - set(PATHS)
            if extra:
                failures.append(f"{s.site}: unexpected paths in /stats: {sorted(extra)}")
            site_sum = 0
            for p in PATHS:
                a, u, st = s.acked[p], s.unknown[p], counts.get(p, 0)
                lost = max(0, a - st)
                dup = max(0, st - (a + u))
                site_sum += st
                total_acked += a
                total_unknown += u
                total_stored += st
                total_lost += lost
                total_dup += dup
                rows.append((s.site, p, a, u, st, lost, dup))
            if total_views is not None and total_views != site_sum:
                failures.append(f"{s.site}: total_views {total_views} != sum of top_paths {site_sum}")
        if health.get("events_stored") is not None and health["events_stored"] != total_stored:
            failures.append(f"/health events_stored {health['events_stored']} != sum of /stats views {total_stored}")
        if total_lost:
            failures.append(f"{total_lost} acked event(s) LOST")
        if total_dup:
            failures.append(f"{total_dup} event(s) DUPLICATED (stored beyond acked + unknown)")
        if health.get("quarantined_files"):
            failures.append(f"{health['quarantined_files']} spool file(s) quarantined")
        unexpected = [(s.site, st, b) for s in senders for st, b in s.unexpected]
        if unexpected:
            failures.append(f"{len(unexpected)} unexpected 4xx answer(s), first: {unexpected[0]}")

        elapsed = time.monotonic() - started
        print()
        print(f"{'site':<9} {'path':<12} {'acked':>8} {'unknown':>8} {'stored':>8} {'lost':>6} {'dup':>6}")
        for site, p, a, u, st, lost, dup in rows:
            flag = "  <-- LOST" if lost else ("  <-- DUP" if dup else "")
            print(f"{site:<9} {p:<12} {a:>8} {u:>8} {st:>8} {lost:>6} {dup:>6}{flag}")
        outcomes = {}
        for s in senders:
            for k, v in s.outcomes.items():
                outcomes[k] = outcomes.get(k, 0) + v
        print()
        print("summary")
        print(f"  kills            {kills_done}" + (f" (+{startup_kills} during start-up)" if startup_kills else ""))
        print(f"  requests         {sum(s.requests for s in senders)}  outcomes {dict(sorted(outcomes.items()))}")
        print(f"  acked events     {total_acked}")
        print(f"  unknown events   {total_unknown}")
        print(f"  stored events    {total_stored}")
        print(f"  lost             {total_lost}")
        print(f"  duplicated       {total_dup}")
        if restart_times:
            print(f"  restart to healthy  max {max(restart_times):.2f}s, mean {sum(restart_times) / len(restart_times):.2f}s")
        print(f"  elapsed          {elapsed:.1f}s  (seed {seed})")
        summary_printed = True

        # ---- graceful stop
        server.proc.send_signal(signal.SIGTERM)
        try:
            rc = server.proc.wait(timeout=30)
            if rc != 0:
                failures.append(f"server exited with {rc} after SIGTERM (expected 0)")
            else:
                log("SIGTERM: server exited 0")
        except subprocess.TimeoutExpired:
            failures.append("server did not exit within 30 s of SIGTERM")
    except Abort:
        pass
    except Exception as e:  # a bug in this script or an unexpected server answer
        failures.append(f"crash-test error: {type(e).__name__}: {e}")
    finally:
        stop.set()
        gate.set()
        if server.proc is not None and server.proc.poll() is None:
            server.proc.kill()
            server.proc.wait()
        for s in senders:
            s.join(timeout=3 * HTTP_TIMEOUT)

    if not summary_printed:
        print(f"\nsummary: kills {kills_done}, elapsed {time.monotonic() - started:.1f}s (seed {seed})")
    if failures:
        print()
        for f in failures:
            print(f"FAIL: {f}")
        print(f"\n--- tail of {server.log_path} ---")
        print(server.log_tail())
        print(f"--- data dir kept: {data_dir} ---")
        print("crash-test: 0 passed, 1 failed")
        return 1
    if args.keep_data:
        print(f"data dir kept: {data_dir}")
    else:
        shutil.rmtree(data_dir, ignore_errors=True)
    print("crash-test: 1 passed, 0 failed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
