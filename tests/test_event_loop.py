"""v1.1: the event loop (DESIGN.md section 11). WorkerPoolSize loops, each
a thread zn-worker-N that reads, routes and writes for the connections
conn_id % WorkerPoolSize for their whole life; the main thread accepts
(and, with WorkerPoolSize 0, runs the only loop).

What a learner can watch from outside:
- threads: WorkerPoolSize + 1, whatever the number of clients (0, 100,
  1,000, 10,000), and clients that come and go leave threads and
  descriptors where they were;
- a client that never reads is stopped as too slow (one WARN line) while
  a client on the same loop keeps its latency, and the server's memory
  stays bounded meanwhile;
- a router that blocks stalls every connection of its own loop, and only
  those: the hazard of running routers on the loop;
- zn_conn_send_msg() from a thread of the program's own: every message
  whole and in order, -EPIPE once the connection has ended;
- SIGTERM with 10,000 clients connected (idle, mid-frame, not reading):
  exit 0 within 2 s, `conn N stopped` once each;
- the poller backend the build chose (epoll, or poll with `make
  POLLER=poll`) is the one the server says it runs.

Three programs of tests/api/ are built against the stage: sleepy_server.c
(a router that sleeps on its loop), foreign_send.c (a connection without
a server, sent to from another thread) and conn_hooks.c (test_connmgr.py's
demo with hooks that check themselves, and a router for big replies).
"""

import os
import re
import resource
import socket
import struct
import subprocess
import threading
import time
from collections import Counter
from contextlib import contextmanager

import pytest

from support.build import build_api_once, sanitizer, stage_dir
from support.demo import (conn_id, connect_narrow, live_conns, open_conn,
                          roundtrip, stopped_lines)
from support.launcher import BAD_LOG_RE, VALGRIND, slowdown
from support.proc import (fd_count, fd_table, proc_status, tcp_sockets,
                          thread_count, thread_names, wait_until)
from support.stages import GREETING, PING
from support.wire import (HEADER, TIMEOUT, connect, pack, read_frame,
                          read_until_closed, reset_close)

pytestmark = pytest.mark.has("event_loop")

# WorkerPoolSize when the configuration does not say: one loop per online CPU.
DEFAULT_POOL = os.sysconf("SC_NPROCESSORS_ONLN")


@pytest.fixture
def hooks_exe(stage, tmp_path_factory):
    """tests/api/conn_hooks.c built against the stage (once per run): the
    demo (greeting, ping, `conn N stopped`) whose hooks log HOOKFAIL when
    one runs anywhere but on its connection's loop, conn_id %
    WorkerPoolSize, or at the wrong moment; msg id 10, body <u32 size>,
    answers one reply of size bytes."""
    return build_api_once(stage, "conn_hooks", tmp_path_factory)


def no_valgrind():
    if VALGRIND:
        pytest.skip("its time bounds mean nothing under valgrind")


def count_text(text, pattern):
    return len(re.findall(pattern, text))


def count(srv, pattern):
    return count_text(srv.text(), pattern)


def no_hook_failure(srv):
    """conn_hooks.c found every hook where and when it belongs."""
    bad = [line for line in srv.text().splitlines() if "HOOKFAIL" in line]
    assert bad == [], bad[:10]


@contextmanager
def open_files(n):
    """Let this process hold about n descriptors (clients' sockets): raise
    its RLIMIT_NOFILE soft limit to n, at most the hard limit, and put it
    back afterwards. Yields the limit in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = n if hard == resource.RLIM_INFINITY else min(n, hard)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        yield max(soft, want)
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def nofile_for(n):
    """RLIMIT_NOFILE for a server that is to hold n clients: n and room
    for its own descriptors, at most the hard limit."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return n + 200 if hard == resource.RLIM_INFINITY else min(n + 200, hard)


# ---- 1. threads: the loops, whatever the clients ----------------------------

def assert_threads(stage, srv, want):
    """The server runs exactly `want` threads: zinc's own (main and
    zn-*), and no other, so that a thread started per connection without
    a name is counted too. ThreadSanitizer adds one helper thread of its
    own, which is allowed."""
    pid = srv.pid
    extra = 1 if sanitizer(stage) == "thread" else 0
    total = proc_status(pid, "Threads")
    names = Counter(thread_names(pid).values())
    assert thread_count(pid) == want and want <= total <= want + extra, \
        f"{total} threads, expected {want}: {sorted(names.items())}"


@pytest.mark.parametrize("pool", [0, 2, None], ids=["0", "2", "default"])
def test_threads_are_the_loops_whatever_the_clients(stage, start_server,
                                                    pool):
    """WorkerPoolSize 0, 2 or the default (one per CPU): the server runs
    WorkerPoolSize + 1 threads (the loops zn-worker-0.. and the main
    thread; with 0, the main thread alone) with no client, with 100 and
    with 1,000 clients connected, each greeted and served one round trip.
    v1.0 ran two threads per client: 2,011 for 1,000 clients."""
    n = DEFAULT_POOL if pool is None else pool
    clients = (10, 50) if VALGRIND else (100, 1000)
    srv = start_server(conf={} if pool is None else {"WorkerPoolSize": n},
                       nofile=nofile_for(clients[-1]))
    workers = sorted(f"zn-worker-{i}" for i in range(n))
    assert sorted(name for name in thread_names(srv.pid).values()
                  if name.startswith("zn-worker")) == workers
    assert_threads(stage, srv, n + 1)

    socks = []
    with open_files(clients[-1] + 200):
        try:
            for total in clients:
                while len(socks) < total:
                    sock = open_conn(stage, srv.port)  # greeted
                    socks.append(sock)
                    roundtrip(stage, sock, b"client %d" % len(socks))
                assert wait_until(
                    lambda: live_conns(stage, srv.pid) == total), \
                    f"{live_conns(stage, srv.pid)} connections, not {total}"
                assert_threads(stage, srv, n + 1)
        finally:
            for sock in socks:
                sock.close()
    assert wait_until(lambda: live_conns(stage, srv.pid) == 0,
                      timeout=TIMEOUT * slowdown(stage))
    assert_threads(stage, srv, n + 1)


def test_1000_connect_close_cycles_keep_threads_and_fds_at_baseline(
        stage, start_server):
    """WorkerPoolSize 2. 1,000 clients come and go in batches of 50 (each
    greeted, every other one served a round trip, every fourth closed with
    a reset): after every batch the server still runs its 3 threads, and
    at the end it holds exactly the descriptors it held before, and the
    log says `conn N stopped` once for each of the 1,000."""
    srv = start_server(conf={"WorkerPoolSize": 2})
    pid = srv.pid
    base_fds = fd_count(pid)
    assert_threads(stage, srv, 3)
    t0 = time.monotonic()
    for batch in range(20):
        socks = [open_conn(stage, srv.port) for _ in range(50)]
        for i, sock in enumerate(socks):
            if i % 2:
                roundtrip(stage, sock, b"batch %d" % batch)
            (reset_close if i % 4 == 3 else socket.socket.close)(sock)
        assert_threads(stage, srv, 3)
    print(f"1,000 clients came and went in {time.monotonic() - t0:.2f} s")
    limit = 10 * slowdown(stage)
    assert wait_until(lambda: fd_count(pid) == base_fds, timeout=limit), \
        f"{fd_count(pid)} descriptors, {base_fds} before"
    assert wait_until(lambda: count(srv, r"\bconn \d+ stopped\b") == 1000,
                      timeout=limit), count(srv, r"\bconn \d+ stopped\b")
    stopped = Counter(re.findall(r"\bconn (\d+) stopped\b", srv.text()))
    assert set(stopped.values()) == {1}
    assert_threads(stage, srv, 3)
    with open_conn(stage, srv.port) as sock:  # still serving
        roundtrip(stage, sock)


# ---- 2. a client that never reads, and its loop mate -----------------------

# The client that never reads pipelines 8 MiB of pings (9 bytes each: over
# 900,000 requests). With its narrow receive path the kernel holds about
# 160 KiB of replies for it (some 6,000); past that the server stops
# reading from it at MaxMsgChanLen (1024) waiting replies, and stops it as
# too slow 500 ms later.
FLOOD_BYTES = 8 << 20
# How much the server's resident memory may grow meanwhile. What the
# server holds for the flooding client is bounded by its queue: it stops
# reading at MaxMsgChanLen (1,024) waiting replies of 26 bytes, and fails
# a send at 4 x MaxMsgChanLen; with one read buffer (16 KiB) that is well
# under a MiB. 16 MiB leaves room for the allocator. A server without
# those bounds reads on and queues a reply per request, 50-odd bytes each
# with its slot in the queue, until the 500 ms without progress are up:
# about 58 MiB more on this test's 8 MiB.
RSS_GROWTH_KIB = 16 * 1024


def flood(sock, data, deadline, sent):
    """Send data without reading, as far as the server takes it: until it
    is all sent, the connection fails, or the deadline. sent[0] counts the
    bytes."""
    sock.settimeout(0.05)
    view = memoryview(data)
    while sent[0] < len(data) and time.monotonic() < deadline:
        try:
            sent[0] += sock.send(view[sent[0]:sent[0] + 65536])
        except socket.timeout:
            continue  # the server is not reading: it may later
        except OSError:
            return  # stopped: reset or broken pipe


def test_a_client_that_never_reads_does_not_slow_its_loop_mate(
        stage, start_server, hooks_exe):
    """tests/api/conn_hooks.c (the demo, whose hooks check that they run
    on their connection's loop), WorkerPoolSize 2: clients 0 and 2 share
    loop 0, client 1 is on loop 1. Client 0, with a narrow receive path
    (support/demo.py connect_narrow), floods the server with 8 MiB of
    pipelined pings and reads nothing. Meanwhile client 2 does lockstep
    round trips on the same loop, until client 0 has been stopped and for
    half a second after:
    - client 0 is stopped as too slow within 3 s of its first request
      (the loop stops reading from it at MaxMsgChanLen waiting replies and
      drops it once it has taken nothing for 500 ms): one `conn 0: too
      slow` WARN line, one `conn 0 stopped`, and the client sees its
      connection end;
    - client 2's round trips: p99 under 100 ms (times slowdown(stage)
      under a sanitizer), none lost, never called too slow;
    - the server's resident memory grows by less than 16 MiB (plain
      build; see RSS_GROWTH_KIB for why that bound)."""
    no_valgrind()
    slow = slowdown(stage)
    srv = start_server(conf={"WorkerPoolSize": 2}, exe=hooks_exe)
    hog = connect_narrow(stage, srv.port)
    other = open_conn(stage, srv.port)
    mate = open_conn(stage, srv.port)
    hog_id, other_id, mate_id = (conn_id(srv, s) for s in (hog, other, mate))
    assert hog_id % 2 == mate_id % 2 != other_id % 2, \
        f"ids {hog_id}, {other_id}, {mate_id}: not two on one loop"
    no_hook_failure(srv)  # each greeted from its own loop
    roundtrip(stage, mate)  # warm
    rss0 = proc_status(srv.pid, "VmRSS")

    data = pack(0, b"p") * (FLOOD_BYTES // len(pack(0, b"p")))
    t0 = time.monotonic()
    sent = [0]
    flooder = threading.Thread(target=flood,
                               args=(hog, data, t0 + 10 * slow, sent))
    flooder.start()
    latencies, rss_max, stopped_at = [], rss0, None
    try:
        end = t0 + 15 * slow
        while time.monotonic() < end:
            t = time.monotonic()
            mate.sendall(pack(0, b"mate %d" % len(latencies)))
            try:
                reply = read_frame(mate)
            except socket.timeout:
                pytest.fail(f"conn {mate_id}: no reply to round trip "
                            f"{len(latencies)} within {TIMEOUT:g} s, its "
                            f"loop stuck with conn {hog_id}")
            assert reply == (0, PING), f"round trip {len(latencies)}"
            latencies.append(time.monotonic() - t)
            if len(latencies) % 20 == 0:
                rss_max = max(rss_max, proc_status(srv.pid, "VmRSS"))
                if stopped_at is None and \
                        re.search(rf"\bconn {hog_id}: too slow", srv.text()):
                    stopped_at = time.monotonic()
            # Go on for half a second after the stop, 500 round trips at
            # least.
            if stopped_at is not None and len(latencies) >= 500 and \
                    time.monotonic() > stopped_at + 0.5:
                break
    finally:
        flooder.join(20 * slow)
    rss_max = max(rss_max, proc_status(srv.pid, "VmRSS"))

    lat = sorted(latencies)
    p99 = lat[int(len(lat) * 0.99)]
    print(f"flooded {sent[0]} of {len(data)} bytes; mate: {len(lat)} round "
          f"trips, p50 {lat[len(lat) // 2] * 1e3:.2f} ms, p99 "
          f"{p99 * 1e3:.2f} ms, max {lat[-1] * 1e3:.1f} ms; RSS "
          f"{rss0} KiB, at most {rss_max} KiB; too slow "
          f"{'never' if stopped_at is None else f'{stopped_at - t0:.2f} s'}")
    assert stopped_at is not None and stopped_at - t0 < 3.0 * slow, \
        f"conn {hog_id}, which never reads, was not stopped as too slow " \
        f"within {3.0 * slow:g} s:\n{srv.text()[-3000:]}"
    assert p99 < 0.1 * slow, \
        f"p99 of conn {mate_id}'s round trips: {p99 * 1e3:.1f} ms (bound " \
        f"{100 * slow} ms) while conn {hog_id} on its loop never read"
    if not sanitizer(stage):
        # The sanitizers' allocators keep freed memory in quarantine.
        assert rss_max - rss0 < RSS_GROWTH_KIB, \
            f"the server's RSS grew by {rss_max - rss0} KiB for a client " \
            f"that never reads"

    assert read_until_closed(hog, TIMEOUT * slow) is not None, \
        f"conn {hog_id}: still open after its too-slow line"
    assert wait_until(lambda: stopped_lines(srv, hog_id) >= 1)
    assert count(srv, rf"\bconn {hog_id}: too slow") == 1, srv.text()[-3000:]
    assert stopped_lines(srv, hog_id) == 1
    assert count(srv, r"too slow") == 1, srv.text()[-3000:]
    roundtrip(stage, mate)  # both others still served
    roundtrip(stage, other)
    assert stopped_lines(srv, mate_id) == stopped_lines(srv, other_id) == 0
    no_hook_failure(srv)
    for sock in (hog, other, mate):
        sock.close()


# ---- 3. a router that blocks stalls its own loop ----------------------------

SLEEP = 7  # sleepy_server.c: body <u32 ms> -> sleeps, then id 7 "awake"


@pytest.fixture
def sleepy_exe(stage, tmp_path_factory):
    """tests/api/sleepy_server.c built against the stage (once per run)."""
    return build_api_once(stage, "sleepy_server", tmp_path_factory)


def test_a_blocking_router_stalls_only_its_own_loop(stage, start_server,
                                                    sleepy_exe):
    """WorkerPoolSize 2, tests/api/sleepy_server.c. Clients A and C are
    on loop 0, B on loop 1. A asks for a router that sleeps 1 s on its
    loop thread (msg id 7; the log says it sleeps on zn-worker-0). Once
    it sleeps, C sends a ping, and B does lockstep round trips until A's
    reply has come:
    - B, on the other loop, is served promptly all along: at least 10
      round trips during A's second, each under 250 ms (500 ms under a
      sanitizer);
    - C, on A's loop, gets nothing until the sleep is over: its reply
      comes at least 1 s after A's request and at least 0.75 s after its
      own ping. A router that blocks stalls every connection of its loop
      (DESIGN.md section 11): block in a router of your own only where
      every connection of that loop may wait."""
    no_valgrind()
    slow = slowdown(stage)
    srv = start_server(conf={"WorkerPoolSize": 2}, exe=sleepy_exe)
    a, b, c = (open_conn(stage, srv.port) for _ in range(3))  # greeted
    a_id, b_id, c_id = (conn_id(srv, s) for s in (a, b, c))
    assert a_id % 2 == c_id % 2 != b_id % 2, \
        f"ids {a_id}, {b_id}, {c_id}: A and C not alone on one loop"
    for s in (a, b, c):
        roundtrip(stage, s)  # every loop is awake and quick

    got = {}  # name -> (sent, answered, frame)

    def ask(name, sock, frame):
        sent = time.monotonic()
        sock.sendall(frame)
        try:
            reply = read_frame(sock)
        except OSError as e:
            reply = repr(e)
        got[name] = (sent, time.monotonic(), reply)

    sleeper = threading.Thread(target=ask,
                               args=("a", a, pack(SLEEP, struct.pack("<I",
                                                                     1000))))
    sleeper.start()
    where = srv.wait_log(rf"\bconn {a_id}: sleeping 1000 ms on (\S+)",
                         timeout=TIMEOUT * slow).group(1)
    waiter = threading.Thread(target=ask, args=("c", c, pack(0, b"c")))
    waiter.start()

    trips = []  # (sent, answered) of B's round trips
    end = time.monotonic() + 5 * slow
    while "a" not in got and time.monotonic() < end:
        t = time.monotonic()
        b.sendall(pack(0, b"b %d" % len(trips)))
        assert read_frame(b) == (0, PING), f"B's round trip {len(trips)}"
        trips.append((t, time.monotonic()))
    sleeper.join(TIMEOUT * slow)
    waiter.join(TIMEOUT * slow)
    assert "a" in got and "c" in got, f"no reply for {set('ac') - set(got)}"

    a_sent, a_done, a_reply = got["a"]
    c_sent, c_done, c_reply = got["c"]
    during = [done - sent for sent, done in trips if done <= a_done]
    bound = 0.5 if sanitizer(stage) else 0.25
    print(f"A: reply {a_done - a_sent:.3f} s after its request; C: "
          f"{c_done - c_sent:.3f} s after its ping, {c_done - a_sent:.3f} s "
          f"after A's request; B: {len(during)} round trips meanwhile, "
          f"slowest {max(during, default=0) * 1e3:.1f} ms")
    assert where in ("?", f"zn-worker-{a_id % 2}"), \
        f"A's router ran on {where}, not on A's loop zn-worker-{a_id % 2}"
    assert a_reply == (SLEEP, b"awake")
    assert a_done - a_sent >= 1.0
    assert len(during) >= 10, \
        f"B, on the other loop, got only {len(during)} round trips " \
        f"during A's second"
    assert max(during) < bound, \
        f"B, on the other loop, waited {max(during) * 1e3:.0f} ms for a " \
        f"reply while A's router slept (bound {bound * 1e3:.0f} ms)"
    assert c_reply == (0, PING)
    assert c_done - a_sent >= 1.0 and c_done - c_sent >= 0.75, \
        f"C, on A's loop, got its reply {c_done - c_sent:.3f} s after its " \
        f"ping, before A's router had finished sleeping"
    for s in (a, b, c):
        roundtrip(stage, s)  # everyone is served again
        s.close()


# ---- 4. sends from a thread that is not the loop's --------------------------

@pytest.fixture
def foreign_exe(stage, tmp_path_factory):
    """tests/api/foreign_send.c built against the stage (once per run)."""
    return build_api_once(stage, "foreign_send", tmp_path_factory)


def run_foreign(stage, exe, *args):
    """Run foreign_send with args; return its exit status and output (the
    program's stdout, then the library's log lines on stderr)."""
    try:
        run = subprocess.run([str(exe), *args], capture_output=True,
                             text=True, timeout=60 * slowdown(stage))
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"foreign_send {' '.join(args)}: still running "
                    f"{e.timeout} s later")
    out = run.stdout + run.stderr
    print(out)
    return run.returncode, out


@pytest.mark.parametrize("mode,cid", [("order", 0), ("race", 1)])
def test_send_from_a_foreign_thread(stage, foreign_exe, mode, cid):
    """tests/api/foreign_send.c: a connection without a server, on a loop
    of its own, and a thread of the program's own that calls
    zn_conn_send_msg() on it (the reply is queued under the writer's lock
    and the loop is woken to write it).
    order: 10,000 messages of varied sizes, the first half sent while
    the client pipelines 2,000 requests that the loop answers itself, the
    second half once the loop is idle (the send alone must wake it: the
    first arrives within 250 ms), all arrive whole and in order (the
    foreign ones in their order, the loop's in theirs, interleaved only
    between frames); once the client has closed and the loop is done
    with the connection (on_stop and on_exit have run, once each), a send
    returns -EPIPE, and the program's release, the last reference, closes
    the socket.
    race: sends without pause while the client reads 64 KiB and resets:
    every send returns 0, -EPIPE or -ENOBUFS, and -EPIPE once the loop is
    done with the connection.
    The program exits 0 with no sanitizer report (the suite runs under
    SAN=thread and SAN=address,undefined too: no race, no leak), and the
    connection says `started` and `closed` once each."""
    rc, out = run_foreign(stage, foreign_exe, mode)
    assert rc == 0, out
    assert not BAD_LOG_RE.search(out), out
    assert f"foreign_send {mode}: 0 failed" in out
    assert count_text(out, rf"\bconn {cid} started\b") == 1, out
    assert count_text(out, rf"\bconn {cid} closed\b") == 1, out


def test_a_foreign_burst_while_the_loop_is_busy_reaches_a_reading_client(
        stage, foreign_exe):
    """foreign_send burst: MaxMsgChanLen 1024 (the default); a router
    blocks the connection's loop for 50 ms, and meanwhile a thread of the
    program's own sends 10,000 small messages (700 KB: the kernel's socket
    buffers alone hold that) to a client that reads all the time. All
    10,000 must arrive, in order: the client takes every byte it is
    given; only the loop was busy for a moment. v1.0's zn_conn_send_msg()
    waited up to ZN_SEND_WAIT_MS (100 ms) for room before it gave up on
    a client, and v1.1's connection.h still says it does; a thread that
    is not a loop serves no one else and may wait. A send that fails at
    once with -ENOBUFS at 4 x MaxMsgChanLen and stops the client as `too
    slow` blames the client for the loop's pause."""
    rc, out = run_foreign(stage, foreign_exe, "burst")
    assert not BAD_LOG_RE.search(out), out
    assert "too slow" not in out, \
        f"a client that reads everything was stopped as too slow:\n{out}"
    assert rc == 0, out


# ---- 5. a stop with 10,000 clients ------------------------------------------

BIG = 10  # conn_hooks.c: body <u32 size> -> one reply of size bytes


def open_greeted(port, n, batch=500, narrow=False, stage=None):
    """n clients, each greeted, opened batch by batch: a batch connects,
    then reads its greetings (so the server has accepted and started
    them) before the next one connects, which keeps the listen backlog
    short."""
    socks = []
    while len(socks) < n:
        k = min(batch, n - len(socks))
        if narrow:
            socks += [connect_narrow(stage, port) for _ in range(k)]
            continue
        fresh = [connect(port) for _ in range(k)]
        for s in fresh:
            assert read_frame(s) == GREETING
        socks += fresh
    return socks


def unread_replies(srv, socks):
    """How many of these clients have bytes from the server waiting,
    unread, in their receive buffers."""
    ports = {s.getsockname()[1] for s in socks}
    return sum(1 for t in tcp_sockets() if t["local_port"] in ports and
               t["remote_port"] == srv.port and t["rx_queue"] > 0)


def test_sigterm_with_10000_clients_exits_0_within_2_s(stage, start_server,
                                                       hooks_exe):
    """tests/api/conn_hooks.c, the default WorkerPoolSize (one loop per
    online CPU). 10,000
    clients connected and greeted (1,000 under a sanitizer, 50 under
    valgrind): 10% sent half a header, 10% a header and half its body, 4%
    pipelined 500 pings and read nothing, 1% asked for a 512 KiB reply
    and read nothing (a narrow receive path: the reply piles up in the
    server), the rest idle. With all of them connected the server still
    runs WorkerPoolSize + 1 threads. SIGTERM: exit status 0 within 2 s (times
    slowdown(stage) under a sanitizer or valgrind), the log's last word
    `[...] stopped` (every loop joined), `conn N stopped` exactly once for
    each of the ids that started, and no HOOKFAIL line (each on_conn_stop
    ran once, on its loop, before its socket closed)."""
    if VALGRIND:
        n = 50
    elif sanitizer(stage):
        n = 1000
    else:
        n = 10000
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and hard < n + 500:
        pytest.skip(f"RLIMIT_NOFILE's hard limit, {hard}, cannot hold {n} "
                    f"clients")
    srv = start_server(exe=hooks_exe, conf={"MaxConn": n + 100},
                       nofile=nofile_for(n))
    half_header, half_body = n // 10, n // 10
    pipeliners, big = max(1, n * 4 // 100), max(1, n // 100)
    idle = n - half_header - half_body - pipeliners - big
    socks = []
    with open_files(n + 500):
        try:
            t0 = time.monotonic()
            socks = open_greeted(srv.port, idle + half_header + half_body)
            narrow = open_greeted(srv.port, pipeliners + big, narrow=True,
                                  stage=stage)
            socks += narrow
            opened = time.monotonic() - t0
            assert_threads(stage, srv, DEFAULT_POOL + 1)

            mid = socks[idle:idle + half_header + half_body]
            for s in mid[:half_header]:
                s.sendall(HEADER.pack(10, 0)[:4])  # half a header
            for s in mid[half_header:]:
                s.sendall(HEADER.pack(100, 0) + b"x" * 50)  # half a body
            for s in narrow[big:]:
                s.sendall(pack(0, b"p") * 500)
            for s in narrow[:big]:
                s.sendall(pack(BIG, struct.pack("<I", 512 * 1024)))
            # The big replies reach the narrow clients' receive buffers and
            # the rest waits in the server (until the clients are stopped
            # as too slow, 500 ms after: a stop before or after that must
            # do).
            assert wait_until(lambda: unread_replies(srv, narrow[:big]) >=
                              big // 2, timeout=2.0 * slowdown(stage))

            bound = 2.0 * slowdown(stage)
            t1 = time.monotonic()
            rc = srv.stop(timeout=bound + 10)
            took = time.monotonic() - t1
        finally:
            for s in socks:
                s.close()
    text = srv.text()
    started = Counter(re.findall(r"\bconn (\d+) started\b", text))
    stopped = Counter(re.findall(r"\bconn (\d+) stopped\b", text))
    print(f"{n} clients connected in {opened:.2f} s; exit {rc} "
          f"{took:.2f} s after SIGTERM; {count(srv, 'too slow')} too slow")
    assert rc == 0, text[-3000:]
    assert took < bound, f"exit took {took:.2f} s (bound {bound:g} s)"
    assert len(started) == n
    assert set(stopped) == set(started), \
        f"no `stopped` for {sorted(set(started) - set(stopped))[:20]}"
    twice = {cid: k for cid, k in stopped.items() if k != 1}
    assert twice == {}, f"`conn N stopped` more than once: {twice}"
    no_hook_failure(srv)
    assert re.search(r"\] stopped\s*\Z", text), text[-2000:]


# ---- 6. the poller backend --------------------------------------------------

@pytest.mark.parametrize("pool", [0, 2, None], ids=["0", "2", "default"])
def test_the_log_names_the_poller_the_build_chose(stage, start_server, pool):
    """The server says which backend its loops use: `N workers started,
    each an event loop (epoll)`, or `(poll)` for a build with `make
    POLLER=poll` (build/.flags then holds -DZN_POLLER_POLL); without
    workers, `no workers: the main thread's event loop (epoll) serves every
    connection`. The log must
    name the backend the build chose, and the descriptors agree: with
    epoll every loop (the workers' and the main thread's) holds one epoll
    instance (anon_inode:[eventpoll]), with poll() none does."""
    n = DEFAULT_POOL if pool is None else pool
    srv = start_server(conf={} if pool is None else {"WorkerPoolSize": n})
    flags = (stage_dir(stage) / "build" / ".flags").read_text().split()
    want = "poll" if "-DZN_POLLER_POLL" in flags else "epoll"
    m = re.search(r"(\d+) workers? started, each an event loop \((\w+)\)"
                  r"|(no) workers: the main thread's event loop \((\w+)\)",
                  srv.text())
    assert m, srv.text()
    said = (0, m.group(4)) if m.group(3) else (int(m.group(1)), m.group(2))
    assert said == (n, want), \
        f"the log says {m.group(0)!r}; the build uses {want} " \
        f"({'with' if want == 'poll' else 'without'} -DZN_POLLER_POLL)"
    epolls = sum(1 for _, target in fd_table(srv.pid).values()
                 if target == "anon_inode:[eventpoll]")
    assert epolls == (n + 1 if want == "epoll" else 0), \
        f"{epolls} epoll descriptors with {want} and {n} workers"
    with open_conn(stage, srv.port) as sock:
        roundtrip(stage, sock)
