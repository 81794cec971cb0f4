#!/usr/bin/env python3
"""make bench: measure every TLV stage (v0.5 on) and the reference server.

    python3 bench/run.py                 what `make bench` runs
    QUICK=1 python3 bench/run.py         about a minute: shorter cells
    BENCH_CONNS="1 100 5000" ...         other connection counts
    BENCH_MANY=5000 ...                  the many-connections cell (the
                                         default); 0 skips it
    BENCH_EXTRA="mine=/path/to/server"  one more server (any stage's demo,
                                         say your exercise), name=path

For every server and connection count: a fresh server (ZN_LOG_LEVEL=warn)
and a run of bench/build/zn-load, lockstep round trips of 581-byte bodies,
every reply checked byte for byte; three runs and the median (one with
QUICK=1). From /proc the runner reads the server's CPU time (per message:
user + system over every round trip, warm-up included), its peak RSS
(VmHWM) and its thread count. Then the many-connections cell: the newest
stage and the reference server alone, BENCH_MANY connections (5,000) in
the same lockstep runs, every reply checked; a wrong or missing reply
there is reported in its row (errors) and makes the runner exit 1 after
writing everything, instead of ending the benchmark. A last pass holds
1,000 idle connections to each server and reports the RSS each one costs.
Prints Markdown tables and writes bench/build/bench.md, bench.json and
bench.svg (the chart). Only 127.0.0.1; every run bounded.

What zn-load expects depends on the stage (DESIGN.md section 5): v0.5's
demo answers with id 1, later ones with id 0, and from v0.9 on every new
connection first gets a greeting, id 2 "DoConnection BEGIN...", that
zn-load reads and checks before its first request (-g). The stage of a
BENCH_EXTRA server is read from its name (say "v0.9-mine") or else from a
vX.Y directory in its path (/path/to/v0.9/build/server); a server with
neither is taken to answer like v0.6..v0.8.
"""

import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "bench" / "build"
LOAD = OUT / "zn-load"
REF = OUT / "ref-epoll"
QUICK = os.environ.get("QUICK", "") not in ("", "0")
CONNS = [int(c) for c in (os.environ.get("BENCH_CONNS") or "1 100 1000").split()]
SECONDS, WARMUP = (1.0, 0.3) if QUICK else (2.0, 0.5)
# Two cores shared by the load generator and the server make one run
# noisy, and the machine drifts: the full benchmark measures every cell
# three times, in rounds that visit every server once (a drift then moves
# all of them alike), and keeps each cell's median by round trips/s.
REPEAT = 1 if QUICK else 3
IDLE_CONNS = 1000
# The many-connections cell: the newest stage against the reference, once
# per round like the others. 5,000 connections hold 10,000 threads in a
# stage from v0.7 on; connecting, a run and stopping take a few seconds.
MANY = int(os.environ.get("BENCH_MANY") or "5000")
GREETING_ID, GREETING = 2, "DoConnection BEGIN..."
EXTRA = dict(e.split("=", 1) for e in os.environ.get("BENCH_EXTRA", "").split())
READY_RE = re.compile(rb"listening on \S+:(\d+)")
CLK_TCK = os.sysconf("SC_CLK_TCK")


def stages():
    """Every built stage from v0.5 on, in order (v0.10 after v0.9)."""
    found = []
    for d in ROOT.iterdir():
        m = re.fullmatch(r"v(\d+)\.(\d+)", d.name)
        if m and (d / "build" / "server").exists() and \
                (int(m.group(1)), int(m.group(2))) >= (0, 5):
            found.append(((int(m.group(1)), int(m.group(2))), d.name))
    return [name for _, name in sorted(found)]


def stage_of(server):
    """(major, minor) of a server's stage, None for ref and unknown extras:
    from its name, or for a BENCH_EXTRA server from a vX.Y in its path."""
    places = [server] + list(reversed(Path(EXTRA.get(server, "")).parts))
    for place in places:
        m = re.match(r"v(\d+)\.(\d+)(?!\d)", place)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def expect_args(server):
    """zn-load's options for what this server's demo sends: v0.5 answers
    every message with id 1, later stages echo id 0, and from v0.9 on a
    new connection is greeted first."""
    stage = stage_of(server)
    args = ["-r", "1" if stage == (0, 5) else "0"]
    if stage is not None and stage >= (0, 9):
        args += ["-G", str(GREETING_ID), "-g", GREETING]
    return args


def raise_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


class Server:
    """One fresh server process, stopped with SIGTERM at the end."""

    def __init__(self, name):
        self.name = name
        self.dir = tempfile.TemporaryDirectory(prefix="zn-bench-")
        if name == "ref":
            cmd = [str(REF), "0"]
        else:
            (Path(self.dir.name) / "conf").mkdir()
            (Path(self.dir.name) / "conf" / "zinc.json").write_text(
                '{"TcpPort": 0}')
            cmd = [EXTRA.get(name) or str(ROOT / name / "build" / "server")]
        env = {**os.environ, "ZN_LOG_LEVEL": "warn"}
        self.proc = subprocess.Popen(cmd, cwd=self.dir.name, env=env,
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE,
                                     preexec_fn=raise_nofile)
        self.port = self._wait_ready()

    def _wait_ready(self, timeout=10.0):
        out, deadline = b"", time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            out += line
            m = READY_RE.search(line)
            if m:
                return int(m.group(1))
        self.proc.kill()
        sys.exit(f"bench: {self.name} did not start:\n{out.decode()}")

    def stat(self, key):
        """A number from /proc/PID/status (kB values in KiB)."""
        text = Path(f"/proc/{self.proc.pid}/status").read_text()
        return int(re.search(rf"^{key}:\s*(\d+)", text, re.M).group(1))

    def cpu(self):
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text() \
            .rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = "hung"
        self.proc.stderr.close()
        self.dir.cleanup()
        if rc != 0:
            sys.exit(f"bench: {self.name} exited with status {rc}")


def load(server, args):
    """Run zn-load against server; return (process, its JSON line)."""
    cmd = [str(LOAD)] + expect_args(server.name) + args + \
        [f"127.0.0.1:{server.port}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                            preexec_fn=raise_nofile)


def median(runs):
    """The run with the median round trips per second."""
    return sorted(runs, key=lambda r: r["rtt"])[len(runs) // 2]


def run_once(name, conns, strict=True):
    """One fresh server, one measured run: a dict of results. A failed run
    ends the benchmark, unless not strict: then its errors are counted in
    the result (at least 1)."""
    srv = Server(name)
    cpu0, threads = srv.cpu(), srv.stat("Threads")
    proc = load(srv, ["-c", str(conns), "-n", "1000000000",
                      "-d", str(SECONDS), "-w", str(WARMUP)])
    deadline = time.monotonic() + SECONDS + WARMUP + 30
    while proc.poll() is None and time.monotonic() < deadline:
        threads = max(threads, srv.stat("Threads"))
        time.sleep(0.05)
    out, _ = proc.communicate(timeout=max(1, deadline - time.monotonic()))
    cpu = srv.cpu() - cpu0
    peak = srv.stat("VmHWM")
    srv.stop()
    if proc.returncode != 0 and strict:
        sys.exit(f"bench: zn-load against {name} failed "
                 f"(status {proc.returncode})")
    lines = out.strip().splitlines()
    r = json.loads(lines[-1]) if lines else {}
    done = r.get("messages", 0) + r.get("warmup_messages", 0)
    errors = r.get("errors", 0)
    if proc.returncode != 0:
        errors = max(errors, 1)
    return {"server": name, "conns": conns, "rtt": r.get("rtt_per_sec", 0),
            "p50": r.get("p50_us", 0), "p99": r.get("p99_us", 0),
            "max": r.get("max_us", 0),
            "cpu_us": 1e6 * cpu / done if done else 0.0,
            "rss_mib": peak / 1024, "threads": threads, "errors": errors}


def idle(name):
    """KiB of RSS each of IDLE_CONNS idle connections costs the server."""
    srv = Server(name)
    base = srv.stat("VmRSS")
    proc = load(srv, ["-I", "-c", str(IDLE_CONNS), "-d", "30"])
    line = proc.stdout.readline()  # printed once all are connected
    # Let every reader start and settle: RSS stops moving.
    last, steady = -1, 0
    deadline = time.monotonic() + 10
    while steady < 3 and time.monotonic() < deadline:
        time.sleep(0.1)
        rss = srv.stat("VmRSS")
        steady = steady + 1 if rss == last else 0
        last = rss
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=10)
    srv.stop()
    if not line or json.loads(line).get("errors"):
        sys.exit(f"bench: idle connections to {name} failed: {line}")
    return (last - base) / IDLE_CONNS


def many(servers):
    """The many-connections cell: BENCH_MANY connections to each server,
    REPEAT rounds, the median by round trips/s with every round's errors
    added up. A failure is reported, not fatal."""
    runs = {name: [] for name in servers}
    for _ in range(REPEAT):
        for name in servers:
            r = run_once(name, MANY, strict=False)
            runs[name].append(r)
            print(f"bench: {name:5} {MANY:5} conns: {r['rtt']:9,.0f} "
                  f"round trips/s, p99 {r['p99']:,.0f} us, "
                  f"{r['threads']} threads, {r['errors']} errors", flush=True)
    cells = []
    for name in servers:
        cell = dict(median(runs[name]))
        cell["errors"] = sum(r["errors"] for r in runs[name])
        cell["threads"] = max(r["threads"] for r in runs[name])
        cell["rss_mib"] = max(r["rss_mib"] for r in runs[name])
        cells.append(cell)
    return cells


def many_table(cells):
    """The many-connections cell as its own small table."""
    ref = next((c["rtt"] for c in cells if c["server"] == "ref"), 0)
    rows = [f"{MANY:,} connections, lockstep, every reply checked: the "
            "median run; errors, peak threads and RSS over all runs.", "",
            "| server | conns | round trips/s | × ref | p99 µs | errors | "
            "peak threads | peak RSS MiB |",
            "|---|--:|--:|--:|--:|--:|--:|--:|"]
    for c in cells:
        ratio = c["rtt"] / ref if ref else 0
        rows.append(f"| {c['server']} | {c['conns']:,} | {c['rtt']:,.0f} | "
                    f"{ratio:.2f} | {c['p99']:,.0f} | {c['errors']} | "
                    f"{c['threads']:,} | {c['rss_mib']:.1f} |")
    return "\n".join(rows)


def table(cells, idle_kib, many_cells):
    ref = {c["conns"]: c["rtt"] for c in cells if c["server"] == "ref"}
    rows = ["| server | conns | round trips/s | × ref | p50 µs | p99 µs | "
            "max µs | CPU µs/msg | peak RSS MiB | threads |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for c in cells:
        ratio = c["rtt"] / ref[c["conns"]] if ref.get(c["conns"]) else 0
        rows.append(f"| {c['server']} | {c['conns']} | {c['rtt']:,.0f} | "
                    f"{ratio:.2f} | {c['p50']:.0f} | {c['p99']:.0f} | "
                    f"{c['max']:,.0f} | {c['cpu_us']:.1f} | "
                    f"{c['rss_mib']:.1f} | {c['threads']} |")
    if many_cells:
        rows += ["", many_table(many_cells)]
    rows += ["", f"| server | RSS per idle connection ({IDLE_CONNS:,} "
             "connections) |", "|---|--:|"]
    rows += [f"| {s} | {kib:.1f} KiB |" for s, kib in idle_kib.items()]
    return "\n".join(rows)


def chart(cells):
    """Two grouped bar charts side by side, as an SVG that GitHub shows:
    round trips per second, and p99 latency, per server and conns."""
    names = list(dict.fromkeys(c["server"] for c in cells))
    colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
              "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#bab0ac",
              "#555555"]
    color = {n: ("#555555" if n == "ref" else colors[i % 10])
             for i, n in enumerate(names)}
    w, h, pad = 420, 260, 50
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w + 40}" '
           f'height="{h + 70}" font-family="sans-serif" font-size="12">',
           f'<rect width="100%" height="100%" fill="white"/>']
    for panel, (key, title) in enumerate([("rtt", "round trips per second"),
                                          ("p99", "p99 latency, µs")]):
        x0 = 20 + panel * (w + 20)
        top = max(c[key] for c in cells) or 1
        svg.append(f'<text x="{x0 + w / 2}" y="20" text-anchor="middle" '
                   f'font-weight="bold">{title}</text>')
        group = (w - pad) / len(CONNS)
        bar = group * 0.8 / len(names)
        for gi, conns in enumerate(CONNS):
            gx = x0 + pad + gi * group + group * 0.1
            svg.append(f'<text x="{gx + group * 0.4:.1f}" y="{h + 20}" '
                       f'text-anchor="middle">{conns} conn'
                       f'{"s" if conns != 1 else ""}</text>')
            for ni, name in enumerate(names):
                c = next((c for c in cells if c["server"] == name and
                          c["conns"] == conns), None)
                if c is None:
                    continue
                bh = (h - 40) * c[key] / top
                svg.append(f'<rect x="{gx + ni * bar:.1f}" '
                           f'y="{h - bh:.1f}" width="{bar - 2:.1f}" '
                           f'height="{bh:.1f}" fill="{color[name]}">'
                           f'<title>{name}, {conns}: {c[key]:,.0f}'
                           f'</title></rect>')
        svg.append(f'<line x1="{x0 + pad}" y1="{h}" x2="{x0 + w}" y2="{h}" '
                   f'stroke="black"/>')
        svg.append(f'<text x="{x0 + pad - 4}" y="{h - (h - 40) + 4}" '
                   f'text-anchor="end">{top:,.0f}</text>')
        svg.append(f'<text x="{x0 + pad - 4}" y="{h + 4}" '
                   f'text-anchor="end">0</text>')
    for i, name in enumerate(names):
        x = 20 + pad + i * 90
        svg.append(f'<rect x="{x}" y="{h + 40}" width="12" height="12" '
                   f'fill="{color[name]}"/><text x="{x + 16}" '
                   f'y="{h + 50}">{name}</text>')
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def main():
    if not LOAD.exists() or not REF.exists():
        sys.exit("bench: bench/build/zn-load or ref-epoll is missing: "
                 "run `make bench`")
    built = stages()
    servers = built + list(EXTRA) + ["ref"]
    runs = {(name, conns): [] for name in servers for conns in CONNS}
    for conns in CONNS:
        for _ in range(REPEAT):
            for name in servers:
                r = run_once(name, conns)
                runs[(name, conns)].append(r)
                print(f"bench: {name:5} {conns:5} conns: {r['rtt']:9,.0f} "
                      f"round trips/s, p99 {r['p99']:,.0f} us", flush=True)
    cells = [median(runs[(name, conns)]) for name in servers
             for conns in CONNS]
    many_cells = many(built[-1:] + ["ref"]) if MANY > 0 and built else []
    idle_kib = {name: idle(name) for name in servers}
    md = table(cells, idle_kib, many_cells)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench.md").write_text(md + "\n")
    (OUT / "bench.json").write_text(json.dumps(
        {"cells": cells, "many": many_cells, "idle_kib": idle_kib,
         "seconds": SECONDS, "warmup": WARMUP}, indent=1) + "\n")
    (OUT / "bench.svg").write_text(chart(cells))
    print()
    print(md)
    print(f"\nbench: wrote {OUT / 'bench.md'}, bench.json and bench.svg")
    failed = [c["server"] for c in many_cells if c["errors"]]
    if failed:
        sys.exit(f"bench: errors at {MANY:,} connections: "
                 f"{', '.join(failed)}")


if __name__ == "__main__":
    main()
