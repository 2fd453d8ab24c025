#!/usr/bin/env python3
"""Helpers for scripts/bench.sh (stdlib only).

  bench_table.py ports                 print two free loopback ports: HTTP, and a wire port
                                       that is free for both TCP and UDP
  bench_table.py sample PID OUT [S [METRICS_URL]]
                                       every S seconds (default 0.2) append "t_monotonic
                                       cpu_ticks vmhwm_kb vmrss_kb accepted rejected loaded
                                       udp_drops" of PID (counters from the server's /metrics,
                                       -1 without a URL) to OUT; on SIGTERM sample once more, exit
  bench_table.py brief FILE            one-line summary of a tally-load JSON file
  bench_table.py table DIR             read DIR/runs.tsv and DIR/meta.tsv, write
                                       DIR/summary.json and print the markdown report
"""
import json
import os
import signal
import socket
import statistics
import sys
import time
import urllib.request


# --- ports -------------------------------------------------------------------------------

def free_ports():
    def tcp_port():
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind(("127.0.0.1", 0))
        p = s.getsockname()[1]
        s.close()
        return p

    http = tcp_port()
    for _ in range(100):
        t = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        t.bind(("127.0.0.1", 0))
        wire = t.getsockname()[1]
        u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            u.bind(("127.0.0.1", wire))
        except OSError:
            continue
        finally:
            u.close()
            t.close()
        if wire != http:
            return http, wire
    raise SystemExit("no free TCP+UDP port found")


# --- sampler -----------------------------------------------------------------------------

def read_sample(pid):
    with open(f"/proc/{pid}/stat") as f:
        stat = f.read()
    # Fields after the ")" closing comm: state is field 3, utime 14, stime 15 (1-based).
    rest = stat[stat.rindex(")") + 2:].split()
    ticks = int(rest[11]) + int(rest[12])
    hwm = rss = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                hwm = int(line.split()[1])
            elif line.startswith("VmRSS:"):
                rss = int(line.split()[1])
    return ticks, hwm, rss


def read_metrics(url):
    """accepted, rejected, loaded, udp kernel drops from /metrics (-1 when unreadable)."""
    acc = rej = loaded = drops = 0
    try:
        with urllib.request.urlopen(url, timeout=1) as r:
            text = r.read().decode()
    except (OSError, ValueError):
        return -1, -1, -1, -1
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        try:
            v = float(value)
        except ValueError:
            continue
        if name.startswith("tally_events_accepted_total"):
            acc += v
        elif name.startswith("tally_events_rejected_total"):
            rej += v
        elif name == "tally_store_events_loaded_total":
            loaded = v
        elif name == "tally_udp_kernel_drops":
            drops = v
    return int(acc), int(rej), int(loaded), int(drops)


def sample(pid, out, period, metrics_url=None):
    stop = False

    def on_term(*_):
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_term)
    with open(out, "a", buffering=1) as f:
        while True:
            try:
                ticks, hwm, rss = read_sample(pid)
            except (OSError, ValueError, IndexError):
                break  # the process is gone
            m = read_metrics(metrics_url) if metrics_url else (-1, -1, -1, -1)
            f.write(f"{time.monotonic():.4f} {ticks} {hwm} {rss} {m[0]} {m[1]} {m[2]} {m[3]}\n")
            if stop:
                break
            time.sleep(period)  # a SIGTERM interrupts the sleep; the loop then samples once more


# --- report ------------------------------------------------------------------------------

def load_json(path):
    try:
        with open(path) as f:
            text = f.read().strip()
        # tally-load prints one JSON object; take the last line that parses.
        for line in reversed(text.splitlines()):
            line = line.strip()
            if line.startswith("{"):
                return json.loads(line)
    except (OSError, ValueError):
        pass
    return None


def load_samples(path, clk_tck):
    try:
        rows = [[float(x) for x in l.split()] for l in open(path) if l.strip()]
    except OSError:
        return None
    if len(rows) < 2:
        return None
    t0, c0 = rows[0][0], rows[0][1]
    t1, c1 = rows[-1][0], rows[-1][1]
    cpu = (c1 - c0) / clk_tck / (t1 - t0) * 100 if t1 > t0 else None
    res = {
        "cpu_pct": cpu,
        "cpu_s": (c1 - c0) / clk_tck,
        "window_s": t1 - t0,
        "peak_rss_mib": max(r[2] for r in rows) / 1024,
        "rss_start_mib": rows[0][3] / 1024,
        "rss_end_mib": rows[-1][3] / 1024,
        "samples": len(rows),
    }
    # Server-side counters (from /metrics): when the first event was accepted, when the last
    # one was accepted and when the last one was stored. Each instant is the midpoint between
    # the two samples around it, so it is good to about +-0.1 s.
    m = [r for r in rows if len(r) >= 8 and r[4] >= 0]
    if m:
        acc, rej, loaded, drops = m[-1][4], m[-1][5], m[-1][6], m[-1][7]
        res.update(server_accepted=int(acc), server_rejected=int(rej), server_stored=int(loaded),
                   udp_kernel_drops=int(drops))

        def first(pred):
            for i, r in enumerate(m):
                if pred(r):
                    return (m[i - 1][0] + r[0]) / 2 if i > 0 else r[0]
            return None

        start = first(lambda r: r[4] > 0)
        acc_done = first(lambda r: r[4] >= acc)
        stored_done = first(lambda r: r[6] >= loaded)
        if start is not None and acc > 0 and acc_done and acc_done > start:
            res["server_intake_s"] = acc_done - start
            res["server_intake_per_s"] = acc / (acc_done - start)
        if start is not None and loaded > 0 and stored_done and stored_done > start:
            res["server_e2e_s"] = stored_done - start
            res["server_e2e_per_s"] = loaded / (stored_done - start)
    return res


def med(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def fnum(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def fms(v):
    if v is None:
        return "–"
    return f"{v:.3f}" if v < 10 else f"{v:.1f}"


def read_meta(path):
    """key<TAB>value lines; "kind" (kind, mode, label, rate) and "command" repeat."""
    meta = {"kinds": [], "modes": {}, "commands": []}
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if parts[0] == "kind":
                kind, mode, label, rate = parts[1:5]
                meta["kinds"].append(kind)
                meta["modes"][kind] = {"mode": mode, "label": label, "rate": float(rate)}
            elif parts[0] == "command":
                meta["commands"].append(parts[1])
            elif len(parts) >= 2:
                meta[parts[0]] = parts[1]
    return meta


def table(d):
    meta = read_meta(os.path.join(d, "meta.tsv"))
    clk = int(meta.get("clk_tck", 100))
    runs = []
    with open(os.path.join(d, "runs.tsv")) as f:
        header = f.readline().rstrip("\n").split("\t")
        for line in f:
            if line.strip():
                runs.append(dict(zip(header, line.rstrip("\n").split("\t"))))

    by_kind = {}
    for r in runs:
        r["json"] = load_json(os.path.join(d, r["json_file"])) if r["json_file"] != "-" else None
        r["res"] = load_samples(os.path.join(d, r["samples_file"]), clk) if r["samples_file"] != "-" else None
        reasons = []
        if r["start_ok"] != "1":
            reasons.append("server did not start")
        if r["load_rc"] not in ("0", "-"):
            reasons.append(f"{'store-ceiling' if r['kind'] == 'ceiling' else 'tally-load'} rc={r['load_rc']}")
        if r["server_rc"] not in ("0", "-"):
            reasons.append(f"server exit {r['server_rc']}")
        if r["json"] is None and r["start_ok"] == "1":
            reasons.append("no JSON output")
        r["failed"] = bool(reasons)
        r["reasons"] = reasons
        by_kind.setdefault(r["kind"], []).append(r)

    summary = {"meta": meta, "rows": []}
    lines = []
    cols = ["mode", "events/s end-to-end", "× SQLite append ceiling", "sent events/s", "p50 ms", "p99 ms",
            "p99.9 ms", "peak RSS MiB", "server CPU %", "loss", "verify"]
    lines.append("| " + " | ".join(cols) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * 8 + ["---", "---"]) + "|")
    any_fail = False

    def fail_text(rs):
        bad = [r for r in rs if r["failed"]]
        if not bad:
            return None
        detail = "; ".join(f"run {r['run']}: {', '.join(r['reasons'])}" for r in bad)
        return f"FAIL ({len(bad)}/{len(rs)}: {detail})"

    # Baselines.
    ceil = by_kind.get("ceiling", [])
    ok = [r for r in ceil if not r["failed"] and r["json"]]
    append = med([r["json"].get("append_rows_per_s") for r in ok])
    store = med([r["json"].get("store_load_rows_per_s") for r in ok])
    ft = fail_text(ceil) if ceil else "FAIL (not run)"
    any_fail |= ft is not None
    n = len(ceil)
    lines.append(f"| SQLite append ceiling (store-ceiling) | {fnum(append)} | {'1.00' if append else '–'} "
                 f"| – | – | – | – | – | – | – | {ft or f'ok ({n} runs)'} |")
    ratio = store / append if store and append else None
    lines.append(f"| store batch load, rollups (store-ceiling) | {fnum(store)} | {fnum(ratio, 2)} "
                 f"| – | – | – | – | – | – | – | {ft or f'ok ({n} runs)'} |")
    summary["rows"].append({"kind": "ceiling", "append_rows_per_s": append, "store_load_rows_per_s": store,
                            "runs": [r["json"] for r in ceil], "failed": ft})

    spread = []
    server_side = []

    def queryable(r):
        """Events accepted and queryable: all accepted ones when verify was exact, else what
        the server stored (its /metrics), else accepted minus the missing views."""
        j = r["json"]
        v = j.get("verify") or {}
        if v.get("exact"):
            return j["accepted_events"]
        if r["res"] and r["res"].get("server_stored", -1) >= 0:
            return min(j["accepted_events"], r["res"]["server_stored"])
        return max(0, j["accepted_events"] - v.get("missing_views", 0))

    kinds = [k for k in meta["kinds"] if k != "ceiling"]
    for kind in kinds:
        rs = by_kind.get(kind, [])
        info = meta["modes"][kind]
        mode = info["mode"]
        ok = [r for r in rs if r["json"]]
        e2e, sent, p50, p99, p999, rss, cpu, q, lossp, srv_e2e, drops, notstored = ([] for _ in range(12))
        exact_all = True
        for r in ok:
            j = r["json"]
            v = j.get("verify") or {}
            qa = v.get("queryable_after_s")
            q.append(qa)
            denom = j["elapsed_s"] + (qa or 0)
            e2e.append(queryable(r) / denom if denom > 0 else None)
            if r["res"] and r["res"].get("server_e2e_per_s"):
                srv_e2e.append(r["res"]["server_e2e_per_s"])
            if r["res"] and "udp_kernel_drops" in r["res"]:
                drops.append(r["res"]["udp_kernel_drops"])
            if r["res"] and r["res"].get("server_accepted", -1) >= 0 and j["sent_events"]:
                notstored.append(100.0 * (1 - r["res"]["server_accepted"] / j["sent_events"]))
            sent.append(j["sent_per_s"])
            lat = j.get("latency_ms", {})
            p50.append(lat.get("p50"))
            p99.append(lat.get("p99"))
            p999.append(lat.get("p99.9"))
            if r["res"]:
                rss.append(r["res"]["peak_rss_mib"])
                cpu.append(r["res"]["cpu_pct"])
            base = j["accepted_events"] or j["sent_events"]
            lossp.append(100.0 * v.get("missing_views", 0) / base if base else None)
            if not v.get("exact", False):
                exact_all = False
        m_e2e = med(e2e)
        label = info["label"]
        sent_text = fnum(med(sent))
        if info.get("rate"):
            target = info["rate"]
            ms = med(sent)
            if ms is not None:
                sent_text += f" ({'met' if ms >= 0.98 * target else 'MISSED'}, target {target:,.0f})"
        if mode == "udp":
            lv = med(lossp)
            loss = "–" if lv is None else f"{lv:.2f} % (views/sent"
            if lossp and lv is not None:
                mx = max(x for x in lossp if x is not None)
                loss += f"; max {mx:.2f} %)" if mx != lv else ")"
            if notstored:
                loss += f"; {med(notstored):.1f} % of events never accepted"
            if drops:
                loss += f"; {fnum(med(drops))} datagrams dropped by the kernel"
        else:
            if not ok:
                loss = "–"
            else:
                nx = sum(1 for r in ok if (r["json"].get("verify") or {}).get("exact"))
                loss = "exact: yes" if exact_all else f"exact: no ({len(ok) - nx}/{len(ok)} runs)"
        ft = fail_text(rs) if rs else "FAIL (not run)"
        any_fail |= ft is not None
        verify = ft or f"ok ({len(rs)} runs, queryable +{med(q):.2f} s)"
        lines.append(f"| {label} | {fnum(m_e2e)} | {fnum(m_e2e / append if m_e2e and append else None, 2)} "
                     f"| {sent_text} | {fms(med(p50))} | {fms(med(p99))} | {fms(med(p999))} "
                     f"| {fnum(med(rss), 1)} | {fnum(med(cpu), 0)} | {loss} | {verify} |")
        if srv_e2e:
            server_side.append(f"{label} {fnum(med(srv_e2e))}")
        summary["rows"].append({"kind": kind, "label": label, "e2e_per_s": m_e2e, "server_e2e_per_s": med(srv_e2e), "sent_per_s": med(sent),
                                "p50_ms": med(p50), "p99_ms": med(p99), "p999_ms": med(p999),
                                "peak_rss_mib": med(rss), "cpu_pct": med(cpu), "loss_pct": med(lossp),
                                "exact_all": exact_all, "failed": ft,
                                "runs": [{"run": r["run"], "load": r["json"], "resources": r["res"],
                                          "start_ok": r["start_ok"], "load_rc": r["load_rc"],
                                          "server_rc": r["server_rc"], "shutdown_s": r["shutdown_s"]} for r in rs]})
        per = []
        for r in rs:
            j = r["json"]
            if j:
                v = j.get("verify") or {}
                qa = v.get("queryable_after_s") or 0
                x = queryable(r) / (j["elapsed_s"] + qa) if j["elapsed_s"] + qa > 0 else 0
                res = r["res"] or {}
                srv = ""
                if "server_accepted" in res:
                    srv = (f"; server: accepted {res['server_accepted']:,} of {j['sent_events']:,} sent, "
                           f"stored {res['server_stored']:,}")
                    if res.get("server_rejected"):
                        srv += f", rejected {res['server_rejected']:,}"
                    if res.get("udp_kernel_drops"):
                        srv += f", udp kernel drops {res['udp_kernel_drops']:,}"
                    if res.get("server_e2e_per_s"):
                        srv += (f", first accepted → last stored {res['server_e2e_s']:.2f} s "
                                f"= {res['server_e2e_per_s']:,.0f}/s")
                per.append(f"{x:,.0f} (load {j['elapsed_s']:.2f} s + queryable {qa:.2f} s, "
                           f"RSS end {res.get('rss_end_mib', 0):.0f} MiB, shutdown {r['shutdown_s']} s, "
                           f"server rc {r['server_rc']}{srv})")
            else:
                per.append(f"FAIL ({', '.join(r['reasons'])})")
        spread.append(f"- {label}: " + "; ".join(per))

    out = "\n".join(lines)
    foot = []
    foot.append("")
    foot.append(f"Machine: {meta['nproc']} CPUs ({meta['cpu_model']}), {meta['ram']} RAM; "
                f"load average at start {meta['loadavg']}")
    foot.append(f"Date: {meta['date']}   commit: {meta['commit']}   runs per row: {meta['runs']} "
                f"(median per column)   events scale: {meta['scale']}   wall time: {meta.get('wall', '?')}")
    foot.append(f"Binaries: {meta.get('binaries', '?')}")
    foot.append("")
    foot.append("Per-run end-to-end events/s:")
    foot.extend(spread)
    if server_side:
        foot.append("")
        foot.append("Server-side end-to-end events/s (its /metrics: first event accepted → last event stored; "
                    "independent of tally-load's own clock), median: " + "; ".join(server_side))
    foot.append("")
    foot.append("Columns: events/s end-to-end = accepted_events / (elapsed_s + verify.queryable_after_s), i.e. "
                "accepted and visible in /stats; latency is per operation (request, datagram, frame batch; "
                "tcp-ack: until the ack; udp/tcp: the client send only; fixed rate: from the intended send time); "
                "server CPU % = utime+stime over the load run (100 = one core); peak RSS = max VmHWM; "
                "udp loss = missing page views / accepted events (tally-load), then the share of sent events the server "
                "never accepted and its kernel receive-buffer drops (server /metrics); end-to-end counts only stored events when verify "
                "was not exact.")
    foot.append("")
    foot.append("Commands (P, W = free ports picked per run, D = fresh temp dir; every run's exact command is in "
                f"{meta['out_dir']}/commands.txt, raw JSON next to it):")
    foot.append("")
    for c in meta["commands"]:
        foot.append(f"    {c}")
    print(out + "\n" + "\n".join(foot))
    with open(os.path.join(d, "table.md"), "w") as f:
        f.write(out + "\n" + "\n".join(foot) + "\n")
    with open(os.path.join(d, "summary.json"), "w") as f:
        json.dump(summary, f, indent=1, default=str)
    return 1 if any_fail else 0


def main():
    if len(sys.argv) < 2:
        raise SystemExit(__doc__)
    cmd = sys.argv[1]
    if cmd == "ports":
        print(*free_ports())
    elif cmd == "sample":
        sample(int(sys.argv[2]), sys.argv[3], float(sys.argv[4]) if len(sys.argv) > 4 else 0.2,
               sys.argv[5] if len(sys.argv) > 5 else None)
    elif cmd == "brief":
        j = load_json(sys.argv[2])
        if j is None:
            print("no JSON output")
        else:
            v = j.get("verify") or {}
            print(f"sent {j['sent_events']} accepted {j['accepted_events']} in {j['elapsed_s']:.2f} s, "
                  f"errors {j['errors'] or 0}, exact {v.get('exact')}, missing views {v.get('missing_views')}, "
                  f"queryable +{v.get('queryable_after_s', 0):.2f} s, p99 {j['latency_ms']['p99']} ms")
    elif cmd == "table":
        sys.exit(table(sys.argv[2]))
    else:
        raise SystemExit(__doc__)


if __name__ == "__main__":
    main()
