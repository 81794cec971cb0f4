#!/usr/bin/env python3
"""make bench: measure every TLV stage (v0.5 on) and the reference server.

    python3 bench/run.py                  what `make bench` runs
    python3 bench/run.py --quick          about a minute: shorter cells
                                          (make bench QUICK=1)
    ... --conns 1 100 5000                other connection counts
                                          (BENCH_CONNS="1 100 5000")
    ... --many 5000                       the many-connections cell (the
                                          default); 0 skips it (BENCH_MANY)
    ... --extra mine=/path/to/server      one more server (any stage's demo,
                                          say your exercise), name=path;
                                          repeatable (BENCH_EXTRA="...")

For every server and connection count: a fresh server (ZN_LOG_LEVEL=warn)
and a run of bench/build/zn-load, lockstep round trips of 581-byte bodies,
every reply checked byte for byte; three runs and the median (one with
--quick). From /proc the runner reads the server's CPU time (per message:
user + system over every round trip, warm-up included), its peak RSS
(VmHWM) and its thread count. Then the many-connections cell: the newest
stage and the reference server alone, --many connections (5,000) in the
same lockstep runs, every reply checked; a wrong or missing reply there is
reported in its row (errors) and makes the runner exit 1 after writing
everything, instead of ending the benchmark. A last pass holds 1,000 idle
connections to each server and reports the RSS each one costs. Prints
Markdown tables and writes bench/build/bench.md, bench.json and bench.svg
(the chart). Only 127.0.0.1; every run bounded.

A server is started the way the test suite starts one, with its launcher
(tests/support/launcher.py): a temporary directory, a conf/zinc.json with
TcpPort 0 (ref-epoll takes port 0 as its argument), the port from the
`listening on` line, SIGTERM at the end and exit status 0.

What zn-load expects depends on the stage (DESIGN.md section 5): v0.5's
demo answers with id 1, later ones with id 0, and from v0.9 on every new
connection first gets a greeting, id 2 "DoConnection BEGIN...", that
zn-load reads and checks before its first request (-g). The stage of an
--extra server is read from its name (say "v0.9-mine") or else from a
vX.Y directory in its path (/path/to/v0.9/build/server); a server with
neither is taken to answer like v0.6..v0.8.
"""

import argparse
import json
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
from support.launcher import (Server, ServerError,  # noqa: E402
                              limit_open_files, write_conf)
from support.proc import cpu_seconds, proc_status  # noqa: E402
from support.stages import STAGES, has  # noqa: E402

OUT = ROOT / "bench" / "build"
LOAD = OUT / "zn-load"
REF = OUT / "ref-epoll"
IDLE_CONNS = 1000
GREETING_ID, GREETING = 2, "DoConnection BEGIN..."
# The servers and zn-load may open as many descriptors as the hard limit
# allows: 5,000 connections need more than the usual soft limit.
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]


def extra_server(text):
    """--extra NAME=PATH as (name, path)."""
    name, eq, path = text.partition("=")
    if not (name and eq and path):
        raise argparse.ArgumentTypeError(f"{text!r}: want NAME=PATH")
    return name, path


def parse_args(argv=None):
    """The options; `make bench` passes its variables as these."""
    parser = argparse.ArgumentParser(
        description="Measure every TLV stage (v0.5 on) and the reference "
                    "server; `make bench` runs this.",
        epilog="make bench QUICK=1 BENCH_CONNS=... BENCH_MANY=... "
               "BENCH_EXTRA=... passes these options.")
    parser.add_argument("--quick", action="store_true",
                        help="one shorter run per cell instead of three "
                             "(about a minute in all)")
    parser.add_argument("--conns", type=int, nargs="+", metavar="N",
                        default=[1, 100, 1000],
                        help="connection counts, a cell each "
                             "(default: 1 100 1000)")
    # The many-connections cell: the newest stage against the reference,
    # once per round like the others. 5,000 connections hold 10,000
    # threads in a stage from v0.7 on; connecting, a run and stopping take
    # a few seconds.
    parser.add_argument("--many", type=int, default=5000, metavar="N",
                        help="connections in the many-connections cell "
                             "(default: 5000); 0 skips it")
    parser.add_argument("--extra", type=extra_server, action="append",
                        default=[], metavar="NAME=PATH",
                        help="one more server to measure, say your "
                             "exercise's build/server; repeatable")
    opts = parser.parse_args(argv)
    opts.extra = dict(opts.extra)
    opts.seconds, opts.warmup = (1.0, 0.3) if opts.quick else (2.0, 0.5)
    # Two cores shared by the load generator and the server make one run
    # noisy, and the machine drifts: the full benchmark measures every
    # cell three times, in rounds that visit every server once (a drift
    # then moves all of them alike), and keeps each cell's median by round
    # trips/s.
    opts.repeat = 1 if opts.quick else 3
    return opts


def stages():
    """Every built stage that speaks TLV (framing: v0.5 on), in order."""
    return [s for s in STAGES if has(s, "framing") and
            (ROOT / s / "build" / "server").exists()]


def stage_of(server, path=None):
    """(major, minor) of a server's stage, None for ref and unknown extras:
    from its name, or for an --extra server from a vX.Y in its path."""
    places = [server] + list(reversed(Path(path or "").parts))
    for place in places:
        m = re.match(r"v(\d+)\.(\d+)(?!\d)", place)
        if m:
            return int(m.group(1)), int(m.group(2))
    return None


def expect_args(server, path=None):
    """zn-load's options for what this server's demo sends: v0.5 answers
    every message with id 1, later stages echo id 0, and from v0.9 on a
    new connection is greeted first."""
    stage = stage_of(server, path)
    args = ["-r", "1" if stage == (0, 5) else "0"]
    if stage is not None and stage >= (0, 9):
        args += ["-G", str(GREETING_ID), "-g", GREETING]
    return args


@contextmanager
def fresh_server(name, extra):
    """One fresh server, started with the suite's launcher in a temporary
    directory; at the end SIGTERM, and an exit status other than 0 (or no
    start, or no stop) ends the benchmark."""
    with tempfile.TemporaryDirectory(prefix="zn-bench-") as tmp:
        workdir = Path(tmp)
        if name == "ref":
            cmd = [str(REF), "0"]
        else:
            write_conf(workdir, 0)
            cmd = [extra.get(name) or str(ROOT / name / "build" / "server")]
        srv = Server(cmd, workdir, env={"ZN_LOG_LEVEL": "warn"},
                     nofile=NOFILE)
        try:
            srv.wait_listening()
            yield srv
            rc = srv.stop()
        except ServerError as e:
            sys.exit(f"bench: {name}: {e}")
        finally:
            if srv.proc.poll() is None:
                srv.proc.kill()
                srv.proc.wait()
            srv.log.close()
    if rc != 0:
        sys.exit(f"bench: {name} exited with status {rc}")


def load(name, port, extra, args):
    """Start zn-load against the server name listening on port; return the
    process (its JSON line comes on stdout)."""
    cmd = [str(LOAD)] + expect_args(name, extra.get(name)) + args + \
        [f"127.0.0.1:{port}"]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True,
                            preexec_fn=lambda: limit_open_files(NOFILE))


def median(runs):
    """The run with the median round trips per second."""
    return sorted(runs, key=lambda r: r["rtt"])[len(runs) // 2]


def run_once(name, conns, opts, strict=True):
    """One fresh server, one measured run: a dict of results. A failed run
    ends the benchmark, unless not strict: then its errors are counted in
    the result (at least 1)."""
    with fresh_server(name, opts.extra) as srv:
        cpu0 = cpu_seconds(srv.pid)
        threads = proc_status(srv.pid, "Threads")
        proc = load(name, srv.port, opts.extra,
                    ["-c", str(conns), "-n", "1000000000",
                     "-d", str(opts.seconds), "-w", str(opts.warmup)])
        deadline = time.monotonic() + opts.seconds + opts.warmup + 30
        while proc.poll() is None and time.monotonic() < deadline:
            threads = max(threads, proc_status(srv.pid, "Threads"))
            time.sleep(0.05)
        out, _ = proc.communicate(
            timeout=max(1, deadline - time.monotonic()))
        cpu = cpu_seconds(srv.pid) - cpu0
        peak = proc_status(srv.pid, "VmHWM")
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


def idle(name, opts):
    """KiB of RSS each of IDLE_CONNS idle connections costs the server."""
    with fresh_server(name, opts.extra) as srv:
        base = proc_status(srv.pid, "VmRSS")
        proc = load(name, srv.port, opts.extra,
                    ["-I", "-c", str(IDLE_CONNS), "-d", "30"])
        line = proc.stdout.readline()  # printed once all are connected
        # Let every reader start and settle: RSS stops moving.
        last, steady = -1, 0
        deadline = time.monotonic() + 10
        while steady < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            rss = proc_status(srv.pid, "VmRSS")
            steady = steady + 1 if rss == last else 0
            last = rss
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=10)
    if not line or json.loads(line).get("errors"):
        sys.exit(f"bench: idle connections to {name} failed: {line}")
    return (last - base) / IDLE_CONNS


def many(servers, opts):
    """The many-connections cell: --many connections to each server,
    --quick once or else three rounds, the median by round trips/s with
    every round's errors added up. A failure is reported, not fatal."""
    runs = {name: [] for name in servers}
    for _ in range(opts.repeat):
        for name in servers:
            r = run_once(name, opts.many, opts, strict=False)
            runs[name].append(r)
            print(f"bench: {name:5} {opts.many:5} conns: {r['rtt']:9,.0f} "
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


def many_table(cells, many):
    """The many-connections cell as its own small table."""
    ref = next((c["rtt"] for c in cells if c["server"] == "ref"), 0)
    rows = [f"{many:,} connections, lockstep, every reply checked: the "
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


def table(cells, idle_kib, many_cells, many):
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
        rows += ["", many_table(many_cells, many)]
    rows += ["", f"| server | RSS per idle connection ({IDLE_CONNS:,} "
             "connections) |", "|---|--:|"]
    rows += [f"| {s} | {kib:.1f} KiB |" for s, kib in idle_kib.items()]
    return "\n".join(rows)


def chart(cells, conns_list):
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
        group = (w - pad) / len(conns_list)
        bar = group * 0.8 / len(names)
        for gi, conns in enumerate(conns_list):
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


def main(argv=None):
    opts = parse_args(argv)
    if not LOAD.exists() or not REF.exists():
        sys.exit("bench: bench/build/zn-load or ref-epoll is missing: "
                 "run `make bench`")
    built = stages()
    servers = built + list(opts.extra) + ["ref"]
    runs = {(name, conns): [] for name in servers for conns in opts.conns}
    for conns in opts.conns:
        for _ in range(opts.repeat):
            for name in servers:
                r = run_once(name, conns, opts)
                runs[(name, conns)].append(r)
                print(f"bench: {name:5} {conns:5} conns: {r['rtt']:9,.0f} "
                      f"round trips/s, p99 {r['p99']:,.0f} us", flush=True)
    cells = [median(runs[(name, conns)]) for name in servers
             for conns in opts.conns]
    many_cells = (many(built[-1:] + ["ref"], opts)
                  if opts.many > 0 and built else [])
    idle_kib = {name: idle(name, opts) for name in servers}
    md = table(cells, idle_kib, many_cells, opts.many)
    OUT.mkdir(exist_ok=True)
    (OUT / "bench.md").write_text(md + "\n")
    (OUT / "bench.json").write_text(json.dumps(
        {"cells": cells, "many": many_cells, "idle_kib": idle_kib,
         "seconds": opts.seconds, "warmup": opts.warmup}, indent=1) + "\n")
    (OUT / "bench.svg").write_text(chart(cells, opts.conns))
    print()
    print(md)
    print(f"\nbench: wrote {OUT / 'bench.md'}, bench.json and bench.svg")
    failed = [c["server"] for c in many_cells if c["errors"]]
    if failed:
        sys.exit(f"bench: errors at {opts.many:,} connections: "
                 f"{', '.join(failed)}")


if __name__ == "__main__":
    main()
