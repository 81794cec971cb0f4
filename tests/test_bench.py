"""Smoke tests of the benchmark's load generator, bench/build/zn-load: that
it measures, that it notices a wrong reply, that it refuses bad arguments,
that its idle mode holds connections until told to stop, and that it reads
and checks the greeting of v0.9 on (-g) before its first request. Then the
reference server's event loops (ref-epoll -t N): a thread and a listening
socket each, clients on every loop, one signal stops them all, bad -t
values refused. The benchmark itself (`make bench`) is not a test; only
how bench/run.py chooses its servers, zn-load's options per stage and the
reference server each row is compared with.

These tests take no `stage` argument: they run once, against the v0.6 demo
server (msg id 0 -> id 0 "ping...ping...ping"), bench/build/ref-epoll and
small Python servers of their own, whatever --stage says. Build the tools
with `make -C bench`."""

import importlib.util
import json
import os
import re
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path

import pytest

from support.build import ROOT, sanitizer, stage_dir
from support.launcher import BAD_LOG_RE, Server, server_command
from support.proc import (fd_table, listening_sockets, proc_status,
                          thread_count, thread_names, wait_until)
from support.stages import PING
from support.wire import (HEADER, connect, is_closed, pack, read_frame,
                          recv_exact)

ZN_LOAD = ROOT / "bench" / "build" / "zn-load"
REF_EPOLL = ROOT / "bench" / "build" / "ref-epoll"
STAGE = "v0.6"  # the first stage whose demo answers id 0 with id 0
RUN_TIMEOUT = 30.0  # seconds a zn-load run may take before the test fails

# The keys of zn-load's result line, exactly.
RESULT_KEYS = {"connections", "inflight", "body", "threads", "messages",
               "warmup_messages", "errors", "seconds", "rtt_per_sec",
               "p50_us", "p90_us", "p99_us", "p999_us", "max_us"}


@pytest.fixture
def zn_load():
    if not ZN_LOAD.exists():
        pytest.skip("bench/build/zn-load is missing: run `make -C bench`")
    return ZN_LOAD


@pytest.fixture
def v06(tmp_path):
    """The v0.6 demo server on a free port; on teardown it must exit 0
    after SIGTERM, with no sanitizer report."""
    if not (stage_dir(STAGE) / "build" / "server").exists():
        pytest.skip(f"{STAGE}/build/server is missing: run `make`")
    workdir = tmp_path / "server"
    workdir.mkdir()
    server = Server(server_command(STAGE, workdir), workdir,
                    env={"ZN_LOG_LEVEL": "warn"},
                    resignal=sanitizer(STAGE) == "thread")
    try:
        yield server.wait_listening()
    finally:
        assert server.finish() == []


@pytest.fixture
def ref_epoll(tmp_path):
    """bench/build/ref-epoll on a free port (its argv[1], 0 = any)."""
    if not REF_EPOLL.exists():
        pytest.skip("bench/build/ref-epoll is missing (bench/ref-epoll.c "
                    "not written yet?): run `make -C bench`")
    ref = Server([str(REF_EPOLL), "0"], tmp_path)
    try:
        yield ref.wait_listening().port
        assert ref.stop(timeout=10) == 0, ref.text()
    finally:
        assert ref.finish() == []


def run_load(zn_load, *args):
    """Run zn-load to the end: (exit status, result dict or None, stderr)."""
    proc = subprocess.run([str(zn_load), *map(str, args)],
                          stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=RUN_TIMEOUT)
    print(f"---- zn-load {' '.join(map(str, args))} (exit {proc.returncode})"
          f"\n{proc.stdout}{proc.stderr}")
    assert not BAD_LOG_RE.search(proc.stderr), "sanitizer report"
    lines = proc.stdout.splitlines()
    assert len(lines) <= 1, "more than one line on stdout"
    return proc.returncode, json.loads(lines[0]) if lines else None, \
        proc.stderr


def built_with_tsan():
    flags = ROOT / "bench" / "build" / ".flags"
    return "-fsanitize=thread" in flags.read_text()


def sigterm(proc):
    """SIGTERM to zn-load; its exit status."""
    proc.send_signal(signal.SIGTERM)
    if built_with_tsan():
        # ThreadSanitizer can lose a signal that lands just before
        # epoll_wait() (see test_signals.py): say it once more.
        try:
            return proc.wait(1.0)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGTERM)
    return proc.wait(3.0)


def check_good_run(rc, result):
    assert rc == 0
    assert set(result) == RESULT_KEYS
    assert result["errors"] == 0
    assert result["connections"] == 10
    assert result["messages"] > 1000
    assert 0 < result["seconds"] <= 1.5
    assert result["rtt_per_sec"] > 0
    assert 0 < result["p50_us"] <= result["p90_us"] <= result["p99_us"] \
        <= result["p999_us"] <= result["max_us"]


def test_measures_the_v06_demo(zn_load, v06):
    rc, result, _ = run_load(zn_load, "-d", 1, "-w", 0.2, "-c", 10,
                             f"127.0.0.1:{v06.port}")
    check_good_run(rc, result)


def test_measures_ref_epoll(zn_load, ref_epoll):
    rc, result, _ = run_load(zn_load, "-d", 1, "-w", 0.2, "-c", 10,
                             f"127.0.0.1:{ref_epoll}")
    check_good_run(rc, result)


# A wrong DataLen is caught in the header, a wrong byte in the body.
WRONG_REPLIES = {
    "pong": r'expected DataLen 4, MsgID 0, body "pong"; got DataLen 18, '
            r'MsgID 0, body "ping\.\.\.ping\.\.\.ping"',
    "ping...ping...pinG": r'expected DataLen 18, MsgID 0, body '
                          r'"ping\.\.\.ping\.\.\.pinG"; got DataLen 18, '
                          r'MsgID 0, body "ping\.\.\.ping\.\.\.ping"; '
                          r'first difference at body byte 17: got 0x67, '
                          r'expected 0x47',
}


@pytest.mark.parametrize("expect", list(WRONG_REPLIES), ids=["len", "byte"])
def test_a_wrong_reply_is_an_error(zn_load, v06, expect):
    rc, result, err = run_load(zn_load, "-d", 1, "-w", 0.2, "-c", 10,
                               "-e", expect, f"127.0.0.1:{v06.port}")
    assert rc == 1
    assert result["errors"] == 10  # every connection, each closed after it
    assert result["messages"] == 0
    # One example: the expected reply next to the one that came.
    assert len(re.findall(r"wrong reply", err)) == 1, err
    assert re.search(WRONG_REPLIES[expect], err), err


@pytest.fixture
def double_replier():
    """A server that answers every request twice: the second reply comes
    before the client has sent another request."""
    lsock = socket.create_server(("127.0.0.1", 0))
    lsock.settimeout(RUN_TIMEOUT)
    reply = HEADER.pack(len(PING), 0) + PING

    def serve():
        try:
            conn, _ = lsock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(RUN_TIMEOUT)
            try:
                while True:
                    length, _ = HEADER.unpack(recv_exact(conn, HEADER.size))
                    recv_exact(conn, length)
                    conn.sendall(reply + reply)
            except (AssertionError, OSError):
                pass  # the client hung up

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield lsock.getsockname()[1]
    lsock.close()
    thread.join(RUN_TIMEOUT)


def test_a_reply_before_its_request_is_an_error(zn_load, double_replier):
    """A reply can only answer a request that has gone out whole: a second
    reply to one request is an error at once, not the answer to a request
    not sent yet (which once made zn-load send bytes from past its
    buffer)."""
    start = time.monotonic()
    rc, result, err = run_load(zn_load, "-d", 1, "-w", 0.2,
                               f"127.0.0.1:{double_replier}")
    assert rc == 1
    assert result["errors"] == 1
    assert "with no request sent and unanswered" in err, err
    assert time.monotonic() - start < 5, "the error took a timeout to show"


@pytest.mark.parametrize("args", [["-c", "0", "127.0.0.1:8999"],
                                  ["-c", "abc", "127.0.0.1:8999"],
                                  ["-d", "0", "127.0.0.1:8999"],
                                  ["-d", "0x10", "127.0.0.1:8999"],
                                  ["-c", "2"],
                                  ["127.0.0.1"],
                                  ["-G", "2", "127.0.0.1:8999"]],
                         ids=["c0", "cabc", "d0", "dhex", "no-address",
                              "no-port", "G-without-g"])
def test_bad_arguments_exit_2_with_usage(zn_load, args):
    rc, result, err = run_load(zn_load, *args)
    assert rc == 2
    assert result is None
    assert "usage: zn-load" in err


def test_idle_mode_holds_connections_until_sigterm(zn_load, v06):
    proc = subprocess.Popen([str(zn_load), "-I", "-c", "50", "-d", "5",
                             f"127.0.0.1:{v06.port}"],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], 10)
        assert ready, "no idle line within 10 s"
        line = json.loads(proc.stdout.readline())
        assert line == {"mode": "idle", "connections": 50, "errors": 0}
        assert wait_until(lambda: thread_count(v06.pid, "zn-reader") == 50)

        start = time.monotonic()
        assert sigterm(proc) == 0
        assert time.monotonic() - start < (2.0 if built_with_tsan() else 1.0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err = proc.stderr.read()
        print(f"---- zn-load stderr\n{err}")
    assert not BAD_LOG_RE.search(err), "sanitizer report"
    assert wait_until(lambda: thread_count(v06.pid, "zn-reader") == 0)


# ---- the greeting (-g, -G): zinc's demo from v0.9 on

GREETING_ID, GREETING = 2, b"DoConnection BEGIN..."
GREETING_FRAME = HEADER.pack(len(GREETING), GREETING_ID) + GREETING
# Where the fake server cuts its greeting: zn-load must gather it from
# several reads, header included.
GREETING_CUTS = (3, 11, len(GREETING_FRAME) - 1)
PIECE_WAIT = 0.02  # seconds between pieces, watching for an early request


@pytest.fixture
def greeter():
    """A factory: greeter(frame) starts a server that sends every new
    connection `frame` in pieces (None: closes it at once instead), then
    answers every request with id 0 "ping...ping...ping" like the v0.9
    demo. Returns (port, early): early lists the connections on which a
    request came before the greeting was all out."""
    lsocks, threads = [], []

    def start(frame=GREETING_FRAME):
        lsock = socket.create_server(("127.0.0.1", 0))
        lsock.settimeout(RUN_TIMEOUT)
        early = []

        def handle(conn):
            with conn:
                conn.settimeout(RUN_TIMEOUT)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                try:
                    if frame is None:
                        return
                    start = 0
                    for cut in GREETING_CUTS + (len(frame),):
                        if start > 0:
                            ready, _, _ = select.select([conn], [], [],
                                                        PIECE_WAIT)
                            if ready:
                                early.append(conn.fileno())
                        conn.sendall(frame[start:cut])
                        start = cut
                    while True:
                        length, _ = HEADER.unpack(
                            recv_exact(conn, HEADER.size))
                        recv_exact(conn, length)
                        conn.sendall(HEADER.pack(len(PING), 0) + PING)
                except (AssertionError, OSError):
                    pass  # the client hung up

        def serve():
            while True:
                try:
                    conn, _ = lsock.accept()
                except OSError:
                    return
                t = threading.Thread(target=handle, args=(conn,),
                                     daemon=True)
                t.start()
                threads.append(t)

        t = threading.Thread(target=serve, daemon=True)
        t.start()
        lsocks.append(lsock)
        threads.append(t)
        return lsock.getsockname()[1], early

    yield start
    for lsock in lsocks:
        lsock.shutdown(socket.SHUT_RDWR)  # wakes accept(); close() does not
        lsock.close()
    for t in threads:
        t.join(RUN_TIMEOUT)


def test_greeting_is_read_before_the_first_request(zn_load, greeter):
    """With -g, each connection takes the greeting, cut over several reads,
    and sends its first request only once all of it is in; the greeting is
    not a round trip."""
    port, early = greeter()
    rc, result, _ = run_load(zn_load, "-d", 1, "-w", 0.2, "-c", 10,
                             "-g", GREETING.decode(), f"127.0.0.1:{port}")
    check_good_run(rc, result)
    assert early == [], "a request came before the whole greeting"


def test_without_g_a_greeting_is_a_wrong_reply(zn_load, greeter):
    """The reason for -g: a v0.9 server's greeting is not a reply. (Here
    the first request comes early, which shows the fake server can tell.)"""
    port, early = greeter()
    rc, result, err = run_load(zn_load, "-d", 1, "-w", 0.2, "-c", 10,
                               f"127.0.0.1:{port}")
    assert early, "the fake server did not see the early request"
    assert rc == 1
    assert result["errors"] == 10
    assert re.search(r"wrong reply: expected DataLen 18, MsgID 0, .*; "
                     r"got DataLen 21, MsgID 2", err), err


# What zn-load expects (-g, -G), what the server sends, what it says.
WRONG_GREETINGS = {
    "byte": (["-g", "DoConnection BEGIN!.."], GREETING_FRAME,
             r'wrong greeting: expected DataLen 21, MsgID 2, body '
             r'"DoConnection BEGIN!\.\."; got DataLen 21, MsgID 2, body '
             r'"DoConnection BEGIN\.\.\."; first difference at body byte '
             r'18: got 0x2e, expected 0x21'),
    "id": (["-G", "3", "-g", GREETING.decode()], GREETING_FRAME,
           r'wrong greeting: expected DataLen 21, MsgID 3, body '
           r'"DoConnection BEGIN\.\.\."; got DataLen 21, MsgID 2, body'),
    "len": (["-g", "DoConnection BEGIN.."], GREETING_FRAME,
            r'wrong greeting: expected DataLen 20, MsgID 2, body '
            r'"DoConnection BEGIN\.\."; got DataLen 21, MsgID 2, body'),
    "missing": (["-g", GREETING.decode()], None,
                r"no greeting: closed by the server after 0 of its 29 "
                r"bytes"),
}


@pytest.mark.parametrize("case", list(WRONG_GREETINGS))
def test_a_wrong_or_missing_greeting_is_an_error(zn_load, greeter, case):
    args, frame, message = WRONG_GREETINGS[case]
    port, _ = greeter(frame)
    rc, result, err = run_load(zn_load, "-d", 1, "-w", 0.2, "-c", 10, *args,
                               f"127.0.0.1:{port}")
    assert rc == 1
    assert result["errors"] == 10  # every connection, none measured
    assert result["messages"] == 0
    assert len(re.findall(r"greeting", err)) == 1, err  # one example
    assert re.search(message, err), err


def test_idle_mode_takes_the_greeting(zn_load, greeter):
    """Idle connections hold no unread bytes: with -g the greeting is taken
    before the idle line; without it, it is bytes nobody asked for."""
    port, _ = greeter()
    rc, result, err = run_load(zn_load, "-I", "-c", 10, "-d", 0.5,
                               "-g", GREETING.decode(), f"127.0.0.1:{port}")
    assert rc == 0, err
    assert result == {"mode": "idle", "connections": 10, "errors": 0}

    rc, _, err = run_load(zn_load, "-I", "-c", 10, "-d", 0.5,
                          f"127.0.0.1:{port}")
    assert rc == 1
    assert "idle connection got bytes nobody asked for" in err, err


def load_run_py():
    spec = importlib.util.spec_from_file_location(
        "bench_run", ROOT / "bench" / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_py_expects_the_greeting_from_v09_on():
    """bench/run.py gives zn-load -g for v0.9 and later (v1.0 included),
    and v0.5's reply id; stages compare as numbers, not as strings."""
    run = load_run_py()
    greet = ["-G", "2", "-g", "DoConnection BEGIN..."]
    assert run.expect_args("v0.5") == ["-r", "1"]
    assert run.expect_args("v0.8") == ["-r", "0"]
    assert run.expect_args("ref") == ["-r", "0"]
    assert run.expect_args("v0.9") == ["-r", "0"] + greet
    assert run.expect_args("v1.0") == ["-r", "0"] + greet
    assert run.stage_of("v0.10") > run.stage_of("v0.9")
    assert run.stage_of("v1.0") > run.stage_of("v0.10")


# ---- ref-epoll -t N: N event loops, a thread each

REF_HELLO = b"Hello Zinc Router ref-epoll"
LOOP_CONNS = 60  # connections spread over the loops: each gets some


@pytest.fixture
def start_ref(tmp_path):
    """A factory: start_ref(*args, env=None) starts bench/build/ref-epoll
    with the arguments and port 0 and returns it once listening. On
    teardown each one still running must exit 0 after SIGTERM, and no log
    may hold a sanitizer report."""
    if not REF_EPOLL.exists():
        pytest.skip("bench/build/ref-epoll is missing: run `make -C bench`")
    refs = []

    def start(*args, env=None):
        workdir = tmp_path / f"ref-{len(refs)}"
        workdir.mkdir()
        ref = Server([str(REF_EPOLL), *map(str, args), "0"], workdir,
                     env=env)
        refs.append(ref)
        return ref.wait_listening()

    yield start
    assert [p for ref in refs for p in ref.finish()] == []


def epoll_sizes(pid):
    """How many descriptors each epoll instance of the process watches,
    from /proc/PID/fdinfo (a `tfd:` line each), smallest first."""
    sizes = []
    for fd, (_, target) in fd_table(pid).items():
        if target == "anon_inode:[eventpoll]":
            info = Path(f"/proc/{pid}/fdinfo/{fd}").read_text()
            sizes.append(len(re.findall(r"^tfd:", info, re.M)))
    return sorted(sizes)


@pytest.mark.parametrize("loops", [1, 2, 3])
def test_ref_epoll_loops_serve_many_connections(start_ref, loops):
    """With -t N each of N epoll instances watches its listening socket,
    the signalfd and clients of its own, and every client gets its ping
    and hello replies, sent as two frames in one write."""
    ref = start_ref("-t", loops)
    socks = [connect(ref.port) for _ in range(LOOP_CONNS)]
    try:
        for s in socks:
            s.sendall(pack(0, b"x" * 581) + pack(1, b"hi"))
        for s in socks:
            assert read_frame(s) == (0, PING)
            assert read_frame(s) == (1, REF_HELLO)
        sizes = epoll_sizes(ref.pid)
        assert len(sizes) == loops
        assert sum(sizes) == LOOP_CONNS + 2 * loops
        assert sizes[0] > 2, f"a loop took no client: {sizes}"
    finally:
        for s in socks:
            s.close()


def test_measures_ref_epoll_with_two_loops(zn_load, start_ref):
    ref = start_ref("-t", 2)
    rc, result, _ = run_load(zn_load, "-d", 1, "-w", 0.2, "-c", 200,
                             f"127.0.0.1:{ref.port}")
    assert rc == 0
    assert result["errors"] == 0
    assert result["connections"] == 200
    assert result["messages"] > 1000


@pytest.mark.parametrize("loops", [1, 2, 3])
def test_ref_epoll_runs_a_thread_per_loop(start_ref, loops):
    """-t N: the main thread runs loop 0 and N-1 threads ref-loop-1 ...
    the others, each with a listening socket of its own on the one port;
    as many threads with 100 clients as with none."""
    ref = start_ref("-t", loops)

    def check_threads():
        names = sorted(thread_names(ref.pid).values())
        assert [n for n in names if n.startswith("ref-loop-")] == \
            [f"ref-loop-{i}" for i in range(1, loops)]
        threads = proc_status(ref.pid, "Threads")
        if built_with_tsan() and loops > 1:
            # ThreadSanitizer may have started a helper thread of its own.
            assert threads in (loops, loops + 1)
        else:
            assert threads == loops

    check_threads()
    assert list(listening_sockets(ref.pid).values()) == [ref.port] * loops
    socks = [connect(ref.port) for _ in range(100)]
    try:
        for s in socks:
            s.sendall(pack(0))
        for s in socks:
            assert read_frame(s) == (0, PING)
        check_threads()
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT],
                         ids=["SIGTERM", "SIGINT"])
def test_ref_epoll_loops_stop_on_a_signal(start_ref, sig):
    """Every loop stops on one signal, with clients connected, some of
    them in the middle of a frame: exit status 0 within 2 s, each client
    closed."""
    ref = start_ref("-t", 3)
    socks = [connect(ref.port) for _ in range(30)]
    try:
        for i, s in enumerate(socks):
            s.sendall(pack(0) + (HEADER.pack(10, 0) if i % 2 else b""))
        for s in socks:
            assert read_frame(s) == (0, PING)
        start = time.monotonic()
        assert ref.stop(sig, timeout=5) == 0, ref.text()
        assert time.monotonic() - start < 2.0
        assert "ref-epoll stopped" in ref.text()
        assert all(is_closed(s, timeout=1) for s in socks)
    finally:
        for s in socks:
            s.close()


@pytest.mark.parametrize("args", [["-t", "0", "0"], ["-t", "-1", "0"],
                                  ["-t", "x", "0"], ["-t", "", "0"],
                                  ["-t", "257", "0"],
                                  ["-t", "99999999999999999999", "0"],
                                  ["0", "-t"], ["-t", "2", "0", "0"],
                                  ["70000"]],
                         ids=["t0", "t-1", "tx", "tempty", "t257", "thuge",
                              "t-without-n", "two-ports", "bad-port"])
def test_ref_epoll_bad_arguments_exit_2_with_usage(args):
    if not REF_EPOLL.exists():
        pytest.skip("bench/build/ref-epoll is missing: run `make -C bench`")
    proc = subprocess.run([str(REF_EPOLL), *args], stdin=subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=10)
    print(f"---- ref-epoll {' '.join(args)} (exit {proc.returncode})\n"
          f"{proc.stdout}{proc.stderr}")
    assert proc.returncode == 2
    assert "usage: " in proc.stderr
    assert "listening on" not in proc.stderr


# ---- bench/run.py: the event-loop stage's variants, ref-tN

def test_run_py_compares_a_server_with_the_ref_of_as_many_loops():
    """v1.1-wN is compared with ref-tN when that was measured, WorkerPool
    Size 0 (one loop, on the main thread) and 1 with ref, a reference
    server with itself, everything else with ref; the caption says so."""
    run = load_run_py()
    names = ["v1.0", "v1.1", "v1.1-w0", "v1.1-w1", "v1.1-w2", "v1.1-w10",
             "ref", "ref-t2"]
    assert {n: run.ref_of(n, names) for n in names} == {
        "v1.0": "ref", "v1.1": "ref", "v1.1-w0": "ref", "v1.1-w1": "ref",
        "v1.1-w2": "ref-t2", "v1.1-w10": "ref", "ref": "ref",
        "ref-t2": "ref-t2"}
    assert run.ref_of("v1.1-w2", ["v1.1-w2", "ref"]) == "ref"

    def cell(server, rtt, cpu):
        return {"server": server, "conns": 100, "rtt": rtt, "cpu_us": cpu}

    cells = [cell("v1.1-w0", 90, 6), cell("v1.1-w2", 150, 5),
             cell("ref", 100, 4), cell("ref-t2", 200, 4)]
    ratios = run.vs_ref(cells)
    assert ratios[("v1.1-w0", 100)] == ("ref", 0.9, 1.5)
    assert ratios[("v1.1-w2", 100)] == ("ref-t2", 0.75, 1.25)
    assert ratios[("ref-t2", 100)] == ("ref-t2", 1.0, 1.0)
    assert "v1.1-w2, ref-t2 over ref-t2; every other row over ref" in \
        run.ref_caption(cells)


def test_run_py_variants_are_their_stage():
    """v1.1-w0 is stage v1.1: the greeting of v0.9 on is expected."""
    run = load_run_py()
    greet = ["-G", "2", "-g", "DoConnection BEGIN..."]
    assert run.stage_of("v1.1-w0") == (1, 1)
    assert run.expect_args("v1.1-w2") == ["-r", "0"] + greet
    assert run.expect_args("ref-t2") == ["-r", "0"]


def test_run_py_chooses_the_servers(monkeypatch):
    """Next to an event-loop stage: its -w0 and -w2 variants, those of
    --workers (ncpu: one per online CPU), and ref-t2; without one, the
    servers of old and --workers refused. A many-connections cell takes
    the newest stage, its variants and the reference servers."""
    run = load_run_py()
    assert run.server_names(["v0.5", "v1.0"], run.parse_args([])) == \
        ["v0.5", "v1.0", "ref"]
    with pytest.raises(SystemExit, match="--workers"):
        run.server_names(["v1.0"], run.parse_args(["--workers", "1"]))

    monkeypatch.setattr(run, "has_event_loop", lambda stage: stage == "v1.1")
    opts = run.parse_args(["--workers", "1", "2", "10", "--extra", "x=/x"])
    names = run.server_names(["v1.0", "v1.1"], opts)
    assert names == ["v1.0", "v1.1", "v1.1-w0", "v1.1-w1", "v1.1-w2",
                     "v1.1-w10", "x", "ref", "ref-t2"]
    assert run.many_names(["v1.0", "v1.1"], names) == \
        ["v1.1", "v1.1-w0", "v1.1-w1", "v1.1-w2", "v1.1-w10", "ref",
         "ref-t2"]
    ncpu = os.cpu_count()
    assert run.parse_args(["--workers", "ncpu"]).workers == [ncpu]
    assert run.parse_args(["--many", "5000", "10000"]).many == [5000, 10000]
    assert run.parse_args(["--many", "0"]).many == []


def test_run_py_starts_variants_and_ref_loops(tmp_path):
    """ref-tN is ref-epoll -t N; vX.Y-wN is the stage's demo with
    WorkerPoolSize N in its conf/zinc.json."""
    run = load_run_py()
    assert run.command("ref", tmp_path, {}, 100) == [str(REF_EPOLL), "0"]
    assert run.command("ref-t2", tmp_path, {}, 100) == \
        [str(REF_EPOLL), "-t", "2", "0"]
    assert run.command("v1.0-w2", tmp_path, {}, 100) == \
        [str(ROOT / "v1.0" / "build" / "server")]
    conf = json.loads((tmp_path / "conf" / "zinc.json").read_text())
    assert conf == {"TcpPort": 0, "WorkerPoolSize": 2}


def test_run_py_skips_what_the_limits_forbid(monkeypatch):
    """A count past the hard descriptor limit, or past zn-load's, is
    skipped with the reason, once for every server."""
    run = load_run_py()
    monkeypatch.setattr(run, "NOFILE", 5000)
    skipped = []
    opts = run.parse_args([])
    assert run.runnable(["v1.0", "ref"], 4000, opts, skipped) == \
        ["v1.0", "ref"]
    assert run.runnable(["v1.0", "ref"], 10000, opts, skipped) == []
    assert run.runnable(["ref"], 30000, opts, skipped) == []
    assert len(skipped) == 2
    assert "hard limit is 5,000" in skipped[0]
    assert "zn-load opens at most 20,000" in skipped[1]
