#!/usr/bin/env python3
"""Hostile clients against a real `tally serve` process.

Each check starts its own server (a fresh data directory, free ports) and attacks it the way
the hardening issue describes, then checks the server is still up, answered what it had to,
stayed within its memory bounds and lost nothing it acknowledged:

  descriptors   `ulimit -n 256`, 1000 connection attempts at once (idle and half-sent ones)
                while a client sends durable events: the server stays up, a new client is
                served within 300 ms once the attackers close, every acked event is stored.
  amplification four 8 MiB `/events` bodies of `{},{},...` at once: each gets 413, the
                server's peak RSS stays under 200 MiB, /health p99 under 50 ms meanwhile.
  slowloris     500 connections sending a header line every 0.5 s: a normal client's p99
                stays under 50 ms, and every slow connection is closed (408) soon after the
                header timeout.
  stalled-wire  1000 wire TCP connections each sending most of a 1 MiB frame and stalling:
                RSS stays under 150 MiB (the read budget refuses the rest with `overloaded`).

Python 3 standard library only. Usage: scripts/hostile_test.py --binary .build/debug/tally
[--only NAME ...]. Prints "hostile: P passed, F failed" last.
"""

import argparse
import http.client
import json
import os
import resource
import shlex
import shutil
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

HOST = "127.0.0.1"


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port():
    """A port free for TCP and UDP (the wire listener binds both)."""
    while True:
        t = socket.socket()
        t.bind((HOST, 0))
        port = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind((HOST, port))
            return port
        except OSError:
            continue
        finally:
            u.close()
            t.close()


class Server:
    def __init__(self, binary, args=(), nofile=None):
        self.dir = tempfile.mkdtemp(prefix="tally-hostile-")
        self.http_port, self.wire_port = free_port(), free_port()
        cmd = [binary, "serve", "--data-dir", self.dir, "--http-host", HOST, "--http-port", str(self.http_port),
               "--wire-host", HOST, "--wire-port", str(self.wire_port), "--log-level", "warning", *args]
        if nofile:
            # Soft and hard: the server cannot raise it.
            cmd = ["bash", "-c", f"ulimit -n {nofile} && exec {shlex.join(cmd)}"]
        self.log = open(os.path.join(self.dir, "server.log"), "wb")
        self.proc = subprocess.Popen(cmd, stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                if self.get("/health")[0] == 200:
                    return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("server did not start")

    def get(self, path, timeout=5):
        c = http.client.HTTPConnection(HOST, self.http_port, timeout=timeout)
        try:
            c.request("GET", path)
            r = c.getresponse()
            return r.status, r.read()
        finally:
            c.close()

    def status_field(self, field):
        """A /proc/<pid>/status value in MiB (VmRSS: now, VmHWM: peak)."""
        with open(f"/proc/{self.proc.pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
        return -1

    def metric(self, text):
        body = self.get("/metrics")[1].decode()
        return sum(float(line.rsplit(" ", 1)[1]) for line in body.splitlines() if line.startswith(text))

    def stop(self, remove=True):
        """SIGTERM; True when it was still running. `remove`: delete the data directory."""
        alive = self.proc.poll() is None
        if alive:
            self.proc.terminate()
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        self.log.close()
        if remove:
            shutil.rmtree(self.dir, ignore_errors=True)
        return alive


def percentile(values, p):
    s = sorted(values)
    return s[min(len(s) - 1, int(len(s) * p / 100))]


def event(site, path):
    return json.dumps({"site_id": site, "event_type": "page_view", "path": path, "timestamp": "2025-11-14T12:00:00Z"})


# --------------------------------------------------------------------------- checks

def descriptors(binary, problems):
    s = Server(binary, nofile=256)
    try:
        acked = [0]
        stop = threading.Event()

        def sender():
            # Connected before the storm, kept alive through it.
            c = http.client.HTTPConnection(HOST, s.http_port, timeout=10)
            while not stop.is_set():
                try:
                    c.request("POST", "/event?ack=durable", event("fd-site", "/fd"), {"Content-Type": "application/json"})
                    r = c.getresponse()
                    r.read()
                    if r.status == 202:
                        acked[0] += 1
                except OSError:
                    c.close()
                    c = http.client.HTTPConnection(HOST, s.http_port, timeout=10)
                    time.sleep(0.01)
            c.close()

        t = threading.Thread(target=sender)
        t.start()
        time.sleep(0.2)
        socks = []
        for i in range(1000):
            port = s.http_port if i % 2 == 0 else s.wire_port
            k = socket.socket()
            k.setblocking(False)
            k.connect_ex((HOST, port))
            socks.append(k)
        time.sleep(0.5)
        for i, k in enumerate(socks):
            if i % 4 == 0:
                try:
                    k.send(b"POST /event HTTP/1.1\r\nHost: x\r\n" if i % 2 == 0 else b"TY\x01\x01\x00\x00\x10")
                except OSError:
                    pass
        time.sleep(2)
        if s.proc.poll() is not None:
            problems.append(f"descriptors: server died with {s.proc.returncode} during the storm")
            return
        for k in socks:
            k.close()
        closed = time.monotonic()
        status, _ = s.get("/health", timeout=5)
        served = (time.monotonic() - closed) * 1000
        log(f"descriptors: a new client was served {served:.1f} ms after 1000 attackers closed (status {status})")
        # The new client's connection waits in the listen backlog behind the ~750 attackers'
        # that the server accepts and closes first: CPU-bound, 47 ms on a quiet machine and
        # 55-116 ms on one 2.7x slower. A server stuck in an accept backoff (NIO's is 1 s) or
        # out of descriptors takes seconds or never answers.
        if status != 200 or served > 300:
            problems.append(f"descriptors: new client served after {served:.1f} ms with {status} (want 200 within 300 ms)")
        stop.set()
        t.join()
        deadline = time.time() + 20
        views = -1
        while time.time() < deadline:
            views = json.loads(s.get("/stats?site_id=fd-site")[1])["total_views"]
            if views >= acked[0]:
                break
            time.sleep(0.1)
        log(f"descriptors: {acked[0]} durable events acked during the storm, {views} stored")
        if acked[0] == 0 or views < acked[0]:
            problems.append(f"descriptors: {acked[0]} acked but {views} stored")
        if s.proc.poll() is not None:
            problems.append("descriptors: server died")
    finally:
        if not s.stop():
            problems.append("descriptors: server was not running at the end")


def amplification(binary, problems):
    s = Server(binary)
    try:
        body = b"[" + b"{}," * ((8 * 1024 * 1024 - 2) // 3) + b"{}]"
        body = body[:8 * 1024 * 1024 - 3] + b"{}]" if len(body) > 8 * 1024 * 1024 else body
        rss_before = s.status_field("VmRSS")
        latencies, statuses = [], []
        stop = threading.Event()

        def health():
            c = http.client.HTTPConnection(HOST, s.http_port, timeout=10)
            while not stop.is_set():
                t0 = time.monotonic()
                c.request("GET", "/health")
                c.getresponse().read()
                latencies.append((time.monotonic() - t0) * 1000)
                time.sleep(0.002)
            c.close()

        def attack():
            c = http.client.HTTPConnection(HOST, s.http_port, timeout=60)
            try:
                c.request("POST", "/events", body, {"Content-Type": "application/json"})
                r = c.getresponse()
                statuses.append((r.status, json.loads(r.read()).get("error")))
            except OSError as e:
                statuses.append((0, str(e)))
            finally:
                c.close()

        h = threading.Thread(target=health)
        h.start()
        time.sleep(0.1)
        for _ in range(3):
            attackers = [threading.Thread(target=attack) for _ in range(4)]
            for a in attackers:
                a.start()
            for a in attackers:
                a.join()
        time.sleep(0.1)
        stop.set()
        h.join()
        peak = s.status_field("VmHWM")
        p99 = percentile(latencies, 99)
        log(f"amplification: 12 bodies of {len(body)} bytes (4 at a time): {sorted(set(statuses))}; "
            f"RSS {rss_before:.0f} MiB before, peak {peak:.0f} MiB; /health p99 {p99:.1f} ms over {len(latencies)} requests")
        if any(st != (413, "Batch too large") for st in statuses):
            problems.append(f"amplification: answers {statuses} (want 413 Batch too large each)")
        if peak >= 200:
            problems.append(f"amplification: peak RSS {peak:.0f} MiB (want < 200)")
        if p99 >= 50:
            problems.append(f"amplification: /health p99 {p99:.1f} ms (want < 50)")
    finally:
        if not s.stop():
            problems.append("amplification: server died")


def slowloris_attacker(port, seconds, out):
    """Keeps 500 connections sending a header line every 0.5 s, reopening each one the server
    closes; reports how many were closed, how many got 408 and the longest any lived."""
    import resource as r
    soft, hard = r.getrlimit(r.RLIMIT_NOFILE)
    r.setrlimit(r.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))

    def opened():
        k = socket.create_connection((HOST, port))
        k.sendall(b"POST /event HTTP/1.1\r\nHost: x\r\n")
        k.setblocking(False)
        return [k, time.monotonic()]

    slow = [opened() for _ in range(500)]
    out.put("ready")
    closed = got408 = 0
    longest = 0.0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        time.sleep(0.5)
        for entry in slow:
            k, since = entry
            gone = False
            try:
                data = k.recv(65536)
                gone = data == b"" or data.startswith(b"HTTP/1.1 408")
                got408 += data.startswith(b"HTTP/1.1 408")
            except BlockingIOError:
                try:
                    k.send(b"X-Slow: 1\r\n")
                except OSError:
                    gone = True
            except OSError:
                gone = True
            if gone:
                closed += 1
                longest = max(longest, time.monotonic() - since)
                k.close()
                entry[:] = opened()
    still = max(time.monotonic() - since for _, since in slow)
    for k, _ in slow:
        k.close()
    out.put((closed, got408, longest, still))


def slowloris(binary, problems):
    import multiprocessing
    s = Server(binary, args=["--header-timeout", "2", "--max-connections", "2000"])
    try:
        q = multiprocessing.Queue()
        attacker = multiprocessing.Process(target=slowloris_attacker, args=(s.http_port, 8, q))
        attacker.start()
        q.get(timeout=30)
        latencies = []
        end = time.monotonic() + 7
        c = None
        while time.monotonic() < end:
            # A normal client: a new connection for every other request.
            t0 = time.monotonic()
            if c is None:
                c = http.client.HTTPConnection(HOST, s.http_port, timeout=5)
            c.request("POST", "/event", event("slowloris", "/ok"), {"Content-Type": "application/json"})
            r = c.getresponse()
            r.read()
            latencies.append((time.monotonic() - t0) * 1000)
            if len(latencies) % 2 == 0:
                c.close()
                c = None
            if r.status != 202:
                problems.append(f"slowloris: normal request answered {r.status}")
            time.sleep(0.005)
        closed, got408, longest, still = q.get(timeout=30)
        attacker.join()
        p99 = percentile(latencies, 99)
        log(f"slowloris: 500 slow connections held open for 8 s (reopened when closed): normal client p99 {p99:.1f} ms, "
            f"max {max(latencies):.1f} ms over {len(latencies)} requests; {closed} slow connections closed by the server "
            f"({got408} with 408), each after at most {longest:.1f} s (header timeout 2 s)")
        if p99 >= 50:
            problems.append(f"slowloris: normal client p99 {p99:.1f} ms (want < 50)")
        if closed < 1000 or longest > 3.5:
            problems.append(f"slowloris: {closed} slow connections closed, the longest lived {longest:.1f} s (want >= 1000, <= 3.5 s)")
    finally:
        if not s.stop():
            problems.append("slowloris: server died")


def stalled_wire(binary, problems):
    s = Server(binary)
    try:
        payload = os.urandom(900 * 1024)
        header = b"TY\x01\x01" + struct.pack(">I", 1 << 20)
        socks, refused = [], 0
        for _ in range(1000):
            k = socket.create_connection((HOST, s.wire_port))
            k.settimeout(5)
            try:
                k.sendall(header + payload)
            except OSError:
                refused += 1
            socks.append(k)
        time.sleep(1)
        rss = s.status_field("VmRSS")
        overloaded = s.metric('tally_events_rejected_total{transport="tcp",reason="overloaded"}')
        buffered = s.metric("tally_buffered_bytes") / (1 << 20)
        status, _ = s.get("/health")
        log(f"stalled-wire: 1000 connections each holding 900 KiB of a 1 MiB frame: RSS {rss:.0f} MiB, "
            f"{buffered:.0f} MiB buffered, {overloaded:.0f} refused as overloaded; /health {status}")
        for k in socks:
            k.close()
        if rss >= 150:
            problems.append(f"stalled-wire: RSS {rss:.0f} MiB (want < 150)")
        if status != 200:
            problems.append(f"stalled-wire: /health answered {status}")
    finally:
        if not s.stop():
            problems.append("stalled-wire: server died")


CHECKS = {"descriptors": descriptors, "amplification": amplification, "slowloris": slowloris, "stalled-wire": stalled_wire}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--binary", required=True)
    ap.add_argument("--only", nargs="*", choices=list(CHECKS))
    args = ap.parse_args()
    # The attackers need descriptors of their own.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 8192)), hard))
    passed = failed = 0
    for name, check in CHECKS.items():
        if args.only and name not in args.only:
            continue
        problems = []
        try:
            check(args.binary, problems)
        except Exception as e:  # a crash of the check itself is a failure too
            problems.append(f"{name}: {type(e).__name__}: {e}")
        if problems:
            failed += 1
            for p in problems:
                log("FAIL " + p)
        else:
            passed += 1
    print(f"hostile: {passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
