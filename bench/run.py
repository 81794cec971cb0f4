#!/usr/bin/env python3
"""make bench: measure every TLV stage (v0.5 on) and the reference server.

    python3 bench/run.py                  what `make bench` runs
    python3 bench/run.py --quick          a minute or two: shorter cells
                                          (make bench QUICK=1)
    ... --conns 1 100 5000                other connection counts
                                          (BENCH_CONNS="1 100 5000")
    ... --many 5000 10000                 the many-connections cells (5000
                                          by default); 0 skips them
                                          (BENCH_MANY="5000 10000")
    ... --workers 0 1 2 10 ncpu           a WorkerPoolSize sweep of the
                                          event-loop stage (v1.1):
                                          v1.1-w<k> for each k, "ncpu" = one
                                          per online CPU, in every cell
                                          (BENCH_WORKERS="0 1 2 10 ncpu")
    ... --extra mine=/path/to/server      one more server (any stage's demo,
                                          say your exercise), name=path;
                                          repeatable (BENCH_EXTRA="...")

The servers: every built TLV stage with its demo's own configuration, and
the reference server bench/build/ref-epoll, "ref" (one event loop). When
the newest stage runs event loops (v1.1, the "event_loop" feature in
tests/support/stages.py), it is measured three times over: as configured
by default ("v1.1"), with WorkerPoolSize 0 ("v1.1-w0": one loop, on the
main thread) and with WorkerPoolSize 2 ("v1.1-w2", plus any --workers),
and the reference server also runs with two loops ("ref-t2", ref-epoll
-t 2). The × ref and CPU × ref columns compare a server with the
reference at the same number of loops: v1.1-wN with ref-tN when that was
measured (w0 and w1 with ref), every other server with ref.

For every server and connection count: a fresh server (ZN_LOG_LEVEL=warn)
and a run of bench/build/zn-load, lockstep round trips of 581-byte bodies,
every reply checked byte for byte; three runs and the median (one with
--quick). From /proc the runner reads the server's CPU time (per message:
user + system over every round trip, warm-up included), its peak RSS
(VmHWM) and its thread count. Then the many-connections cells: for each
--many count (5,000), the newest stage (its -wN variants too) and the
reference server (ref-t2 too) alone, in the same lockstep runs, every
reply checked; a wrong or missing reply there is reported in its row
(errors) and makes the runner exit 1 after writing everything, instead of
ending the benchmark. A last pass holds 1,000 idle connections to each
server and reports the RSS each one costs. Prints Markdown tables and
writes bench/build/bench.md, bench.json and bench.svg (the chart). Only
127.0.0.1; every run bounded.

Every server and zn-load run with their descriptor limit (RLIMIT_NOFILE)
raised to the hard limit: 10,000 connections need more than the usual
soft limit. A cell the machine cannot hold (connections past the hard
limit or zn-load's 20,000, or a stage's thread per connection past the
kernel's limits on threads) is skipped with a line that says why, in the
output and under the tables.

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
import os
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
from support.stages import FEATURES, STAGES, has  # noqa: E402

OUT = ROOT / "bench" / "build"
LOAD = OUT / "zn-load"
REF = OUT / "ref-epoll"
IDLE_CONNS = 1000
GREETING_ID, GREETING = 2, "DoConnection BEGIN..."
# The servers and zn-load may open as many descriptors as the hard limit
# allows: 5,000 connections need more than the usual soft limit.
NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
FD_MARGIN = 100  # descriptors a process needs besides its connections
LOAD_MAX_CONNS = 20000  # zn-load's most connections (ZL_MAX_CONNS)
DEFAULT_MAX_CONN = 12000  # the stages' MaxConn when the conf has none
VARIANT_WORKERS = (0, 2)  # v1.1-w0 and v1.1-w2, besides any --workers
REF_LOOPS = (1, 2)  # ref and ref-t2, next to an event-loop stage
# "v1.1-w2": stage v1.1 with WorkerPoolSize 2; "ref-t2": ref-epoll -t 2.
VARIANT_RE = re.compile(r"(v\d+\.\d+)-w(\d+)")
REF_RE = re.compile(r"ref(?:-t(\d+))?")


def extra_server(text):
    """--extra NAME=PATH as (name, path)."""
    name, eq, path = text.partition("=")
    if not (name and eq and path):
        raise argparse.ArgumentTypeError(f"{text!r}: want NAME=PATH")
    return name, path


def workers_arg(text):
    """--workers K: a WorkerPoolSize, or "ncpu" for one per online CPU."""
    if text == "ncpu":
        return os.cpu_count() or 1
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: want a number or ncpu")
    return int(text)


def many_arg(text):
    """--many N: a connection count, 0 for none."""
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"{text!r}: want a number")
    return int(text)


def parse_args(argv=None):
    """The options; `make bench` passes its variables as these."""
    parser = argparse.ArgumentParser(
        description="Measure every TLV stage (v0.5 on) and the reference "
                    "server; `make bench` runs this.",
        epilog="make bench QUICK=1 BENCH_CONNS=... BENCH_MANY=... "
               "BENCH_WORKERS=... BENCH_EXTRA=... passes these options.")
    parser.add_argument("--quick", action="store_true",
                        help="one shorter run per cell instead of three "
                             "(a minute or two in all)")
    parser.add_argument("--conns", type=int, nargs="+", metavar="N",
                        default=[1, 100, 1000],
                        help="connection counts, a cell each "
                             "(default: 1 100 1000)")
    # The many-connections cells: the newest stage against the reference,
    # once per round like the others. 5,000 connections hold 10,000
    # threads in a stage from v0.7 on; connecting, a run and stopping take
    # a few seconds.
    parser.add_argument("--many", type=many_arg, nargs="+", default=[5000],
                        metavar="N",
                        help="connections in the many-connections cells, "
                             "a cell each (default: 5000); 0 skips them")
    parser.add_argument("--workers", type=workers_arg, nargs="+",
                        default=[], metavar="K",
                        help="a WorkerPoolSize sweep of the event-loop "
                             "stage: one more server v1.1-wK for each K "
                             "(ncpu: one per online CPU), in every cell")
    parser.add_argument("--extra", type=extra_server, action="append",
                        default=[], metavar="NAME=PATH",
                        help="one more server to measure, say your "
                             "exercise's build/server; repeatable")
    opts = parser.parse_args(argv)
    opts.extra = dict(opts.extra)
    opts.many = sorted(set(n for n in opts.many if n > 0))
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


def has_event_loop(stage):
    """The stage runs event loops (v1.1 on). False for every stage while
    tests/support/stages.py has no such feature."""
    return "event_loop" in FEATURES and has(stage, "event_loop")


def server_names(built, opts):
    """Every server to measure, in the order of the table: the built
    stages, the newest one's WorkerPoolSize variants when it runs event
    loops, the --extra servers, then the reference server (and ref-t2
    when there are variants). Exits with a message when --workers has no
    event-loop stage to sweep."""
    event_loop = bool(built) and has_event_loop(built[-1])
    if opts.workers and not event_loop:
        sys.exit("bench: --workers (BENCH_WORKERS) needs a built stage "
                 "with event loops (v1.1)")
    names = list(built)
    if event_loop:
        workers = sorted(set(VARIANT_WORKERS) | set(opts.workers))
        names += [f"{built[-1]}-w{k}" for k in workers]
    names += list(opts.extra)
    names += ["ref" if n == 1 else f"ref-t{n}"
              for n in (REF_LOOPS if event_loop else (1,))]
    return names


def many_names(built, names):
    """The servers of a many-connections cell: the newest stage, its
    variants and the reference servers."""
    def newest_or_variant(name):
        variant = VARIANT_RE.fullmatch(name)
        return name == built[-1] or (variant is not None and
                                     variant.group(1) == built[-1])

    if not built:
        return []
    return [n for n in names if newest_or_variant(n) or REF_RE.fullmatch(n)]


def ref_of(name, names):
    """The reference server `name` is compared with, among those measured
    (names): the one with as many event loops, else ref. A variant
    vX.Y-wN runs N loops (WorkerPoolSize 0: one, on the main thread), any
    other stage is compared with ref, and a reference server with
    itself."""
    if REF_RE.fullmatch(name):
        return name
    variant = VARIANT_RE.fullmatch(name)
    loops = max(1, int(variant.group(2))) if variant else 1
    ref = "ref" if loops == 1 else f"ref-t{loops}"
    return ref if ref in names else "ref"


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


def command(name, workdir, extra, conns):
    """The command line that starts server `name` in workdir, after
    writing its conf/zinc.json (TcpPort 0) if it reads one: an --extra
    server's path; ref-epoll, with -t N for ref-tN; a stage's demo, with
    WorkerPoolSize N for a variant vX.Y-wN. A stage's MaxConn is raised
    to conns when the default would refuse some of them."""
    ref = REF_RE.fullmatch(name)
    if ref and name not in extra:
        loops = ["-t", ref.group(1)] if ref.group(1) else []
        return [str(REF)] + loops + ["0"]
    conf = {}
    if conns > DEFAULT_MAX_CONN:
        conf["MaxConn"] = conns
    if name in extra:
        path = extra[name]
    else:
        variant = VARIANT_RE.fullmatch(name)
        if variant:
            name = variant.group(1)
            conf["WorkerPoolSize"] = int(variant.group(2))
        path = ROOT / name / "build" / "server"
    write_conf(workdir, 0, conf)
    return [str(path)]


@contextmanager
def fresh_server(name, extra, conns=0):
    """One fresh server, started with the suite's launcher in a temporary
    directory; at the end SIGTERM, and an exit status other than 0 (or no
    start, or no stop) ends the benchmark."""
    with tempfile.TemporaryDirectory(prefix="zn-bench-") as tmp:
        workdir = Path(tmp)
        cmd = command(name, workdir, extra, conns)
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
    with fresh_server(name, opts.extra, conns) as srv:
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


def threads_per_conn(name, extra):
    """Threads a server starts per connection: its stage's, from the
    table in tests/support/stages.py; 0 for ref-epoll and for a server
    of no known stage."""
    if REF_RE.fullmatch(name) and name not in extra:
        return 0
    stage = stage_of(name, extra.get(name))
    row = STAGES.get(f"v{stage[0]}.{stage[1]}") if stage else None
    return row.threads_per_conn if row else 0


def free_threads():
    """How many more threads may start here, roughly: the kernel's limit
    on threads of all processes together (kernel.threads-max, and
    kernel.pid_max since a thread takes an id; not root: RLIMIT_NPROC
    too) less the threads that exist now (/proc/loadavg). None if
    unknown."""
    limits = []
    for key in ("threads-max", "pid_max"):
        try:
            limits.append(int(Path(f"/proc/sys/kernel/{key}").read_text()))
        except (OSError, ValueError):
            pass
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if os.geteuid() != 0 and nproc != resource.RLIM_INFINITY:
        limits.append(nproc)
    try:
        now = int(Path("/proc/loadavg").read_text().split()[3]
                  .split("/")[1])
    except (OSError, ValueError, IndexError):
        now = 0
    return min(limits) - now if limits else None


def fd_problem(conns):
    """Why no server can take conns connections here, as a sentence; None
    when they can, as far as descriptors go."""
    need = conns + FD_MARGIN
    if conns > LOAD_MAX_CONNS:
        return f"zn-load opens at most {LOAD_MAX_CONNS:,} connections"
    if NOFILE != resource.RLIM_INFINITY and need > NOFILE:
        return (f"{conns:,} connections need about {need:,} descriptors "
                f"in the server and in zn-load, and the hard limit is "
                f"{NOFILE:,} (ulimit -Hn; root can raise it)")
    return None


def thread_problem(name, conns, extra):
    """Why server name cannot start a thread per connection for conns
    connections here, as a sentence; None when it can or has none."""
    threads = conns * threads_per_conn(name, extra)
    free = free_threads() if threads else None
    if free is not None and threads + FD_MARGIN > free:
        return (f"{name} would start {threads:,} threads, and only about "
                f"{free:,} more may start here (kernel.threads-max, "
                f"kernel.pid_max, ulimit -u)")
    return None


def runnable(names, conns, opts, skipped):
    """The servers of names that can take conns connections here. What
    cannot run is added to skipped, with the reason, and printed."""
    def skip(note):
        skipped.append(note)
        print(f"bench: {note}", flush=True)

    why = fd_problem(conns)
    if why is not None:
        skip(f"every server at {conns:,} connections: {why}")
        return []
    ok = []
    for name in names:
        why = thread_problem(name, conns, opts.extra)
        if why is None:
            ok.append(name)
        else:
            skip(f"{name} at {conns:,} connections: {why}")
    return ok


def many(servers, conns, opts):
    """One many-connections cell: conns connections to each server,
    --quick once or else three rounds, the median by round trips/s with
    every round's errors added up. A failure is reported, not fatal."""
    runs = {name: [] for name in servers}
    for _ in range(opts.repeat):
        for name in servers:
            r = run_once(name, conns, opts, strict=False)
            runs[name].append(r)
            print(f"bench: {name:9} {conns:6} conns: {r['rtt']:9,.0f} "
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


def vs_ref(cells):
    """{(server, conns): (ref, × ref, CPU × ref)}: the reference server a
    cell is compared with (ref_of, among the servers measured at those
    conns), and the cell's round trips/s and CPU µs per message over that
    server's; 0 where there is nothing to divide by."""
    by = {(c["server"], c["conns"]): c for c in cells}
    out = {}
    for c in cells:
        names = [s for s, n in by if n == c["conns"]]
        name = ref_of(c["server"], names)
        ref = by.get((name, c["conns"]))
        rtt = c["rtt"] / ref["rtt"] if ref and ref["rtt"] else 0
        cpu = c["cpu_us"] / ref["cpu_us"] if ref and ref["cpu_us"] else 0
        out[(c["server"], c["conns"])] = (name, rtt, cpu)
    return out


def ref_caption(cells):
    """Which reference server each row of a table is compared with, as a
    sentence."""
    pairs = {}
    for (server, _), (ref, _, _) in vs_ref(cells).items():
        if ref != "ref" and server not in pairs.setdefault(ref, []):
            pairs[ref].append(server)
    text = "× ref and CPU × ref: round trips/s and CPU µs/msg over those of "
    if not pairs:
        return text + "ref, the reference server, at the same conns."
    return (text + "the reference server at the same conns with as many "
            "event loops, where it was measured: " +
            "; ".join(f"{', '.join(ns)} over {ref}"
                      for ref, ns in pairs.items()) +
            "; every other row over ref (one loop).")


def many_table(cells):
    """The many-connections cells as their own small table."""
    ratios = vs_ref(cells)
    counts = " and ".join(f"{n:,}" for n in
                          dict.fromkeys(c["conns"] for c in cells))
    rows = [f"{counts} connections, lockstep, every reply checked: the "
            "median run; errors, peak threads and RSS over all runs. "
            + ref_caption(cells), "",
            "| server | conns | round trips/s | × ref | p99 µs | "
            "CPU µs/msg | CPU × ref | errors | peak threads | "
            "peak RSS MiB |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for c in cells:
        _, rtt, cpu = ratios[(c["server"], c["conns"])]
        rows.append(f"| {c['server']} | {c['conns']:,} | {c['rtt']:,.0f} | "
                    f"{rtt:.2f} | {c['p99']:,.0f} | {c['cpu_us']:.1f} | "
                    f"{cpu:.2f} | {c['errors']} | {c['threads']:,} | "
                    f"{c['rss_mib']:.1f} |")
    return "\n".join(rows)


def table(cells, idle_kib, many_cells, skipped=()):
    ratios = vs_ref(cells)
    rows = [ref_caption(cells), "",
            "| server | conns | round trips/s | × ref | p50 µs | p99 µs | "
            "max µs | CPU µs/msg | CPU × ref | peak RSS MiB | threads |",
            "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|"]
    for c in cells:
        _, rtt, cpu = ratios[(c["server"], c["conns"])]
        rows.append(f"| {c['server']} | {c['conns']} | {c['rtt']:,.0f} | "
                    f"{rtt:.2f} | {c['p50']:.0f} | {c['p99']:.0f} | "
                    f"{c['max']:,.0f} | {c['cpu_us']:.1f} | {cpu:.2f} | "
                    f"{c['rss_mib']:.1f} | {c['threads']} |")
    if many_cells:
        rows += ["", many_table(many_cells)]
    rows += ["", f"| server | RSS per idle connection ({IDLE_CONNS:,} "
             "connections) |", "|---|--:|"]
    rows += [f"| {s} | {kib:.1f} KiB |" for s, kib in idle_kib.items()]
    if skipped:
        rows += ["", "Skipped on this machine (its limits):", ""]
        rows += [f"- {note}" for note in skipped]
    return "\n".join(rows)


def chart(cells, conns_list):
    """Two grouped bar charts side by side, as an SVG that GitHub shows:
    round trips per second, and p99 latency, per server and conns."""
    names = list(dict.fromkeys(c["server"] for c in cells))
    # No grey among them: greys are the reference servers'. Twelve, so
    # that every stage and v1.1's sweep (eleven servers) differ.
    colors = ["#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2",
              "#edc948", "#b07aa1", "#ff9da7", "#9c755f", "#17becf",
              "#bcbd22", "#7f3c8d"]
    greys = iter(["#555555", "#999999", "#333333", "#bbbbbb"] * 4)
    color = {n: (next(greys) if REF_RE.fullmatch(n) else
                 colors[i % len(colors)])
             for i, n in enumerate(names)}
    per_row = 9  # legend entries per line
    rows = (len(names) + per_row - 1) // per_row
    w, h, pad = 420, 260, 50
    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{2 * w + 40}" '
           f'height="{h + 50 + 20 * rows}" font-family="sans-serif" '
           f'font-size="12">',
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
        x = 20 + pad + (i % per_row) * 90
        y = h + 40 + 20 * (i // per_row)
        svg.append(f'<rect x="{x}" y="{y}" width="12" height="12" '
                   f'fill="{color[name]}"/><text x="{x + 16}" '
                   f'y="{y + 10}">{name}</text>')
    svg.append("</svg>")
    return "\n".join(svg) + "\n"


def main(argv=None):
    opts = parse_args(argv)
    if not LOAD.exists() or not REF.exists():
        sys.exit("bench: bench/build/zn-load or ref-epoll is missing: "
                 "run `make bench`")
    built = stages()
    servers = server_names(built, opts)
    skipped = []
    runs = {}
    for conns in opts.conns:
        here = runnable(servers, conns, opts, skipped)
        for _ in range(opts.repeat):
            for name in here:
                r = run_once(name, conns, opts)
                runs.setdefault((name, conns), []).append(r)
                print(f"bench: {name:9} {conns:6} conns: {r['rtt']:9,.0f} "
                      f"round trips/s, p99 {r['p99']:,.0f} us", flush=True)
    cells = [median(runs[(name, conns)]) for name in servers
             for conns in opts.conns if (name, conns) in runs]
    many_cells = []
    for conns in opts.many:
        many_cells += many(runnable(many_names(built, servers), conns, opts,
                                    skipped), conns, opts)
    idle_kib = {name: idle(name, opts) for name in servers}
    md = table(cells, idle_kib, many_cells, skipped)
    for group in (cells, many_cells):
        ratios = vs_ref(group)
        for c in group:
            c["vs"] = ratios[(c["server"], c["conns"])][0]
    OUT.mkdir(exist_ok=True)
    (OUT / "bench.md").write_text(md + "\n")
    (OUT / "bench.json").write_text(json.dumps(
        {"cells": cells, "many": many_cells, "idle_kib": idle_kib,
         "skipped": skipped, "seconds": opts.seconds,
         "warmup": opts.warmup}, indent=1) + "\n")
    measured = [n for n in opts.conns if any(c["conns"] == n for c in cells)]
    if cells:
        (OUT / "bench.svg").write_text(chart(cells, measured))
    print()
    print(md)
    print(f"\nbench: wrote {OUT / 'bench.md'}, bench.json and bench.svg")
    failed = [f"{c['server']} at {c['conns']:,}" for c in many_cells
              if c["errors"]]
    if failed:
        sys.exit(f"bench: errors in the many-connections cells: "
                 f"{', '.join(failed)}")


if __name__ == "__main__":
    main()
