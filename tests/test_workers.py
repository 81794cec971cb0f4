"""v0.8 on: the worker pool. WorkerPoolSize threads named zn-worker-N
start with the server and handle every request (0: the reader handles
them); one connection always lands on the same worker, so its replies come
in order; a full worker queue slows down the client that fills it, never
drops a request; a client that does not read loses its own connection
after a short wait instead of stalling the worker for everyone; a client
that half-closes still gets every reply; nothing leaks."""

import os
import random
import re
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.build import sanitizer
from support.demo import (conn_id, live_conns, open_conn, roundtrip,
                          stopped_lines)
from support.launcher import BAD_LOG_RE, LISTEN_RE, START_TIMEOUT, slowdown
from support.proc import (fd_count, proc_status, thread_count, thread_names,
                          wait_until)
from support.stages import PING, has, ping_reply
from support.wire import (HEADER, connect, is_closed, pack, read_frame,
                          recv_exact, reset_close)

pytestmark = pytest.mark.has("workers")




def hello(stage):
    return b"Hello Zinc Router " + stage.encode()


def reply_bytes(stage, msg_id):
    """The demo's reply to a request with msg id 0 or 1, as on the wire."""
    return pack(0, PING) if msg_id == 0 else pack(1, hello(stage))


def frame_ids(data):
    """The msg ids of the whole frames in data."""
    ids, off = [], 0
    while off + HEADER.size <= len(data):
        length, msg_id = HEADER.unpack_from(data, off)
        ids.append(msg_id)
        off += HEADER.size + length
    return ids


def read_to_eof(sock, limit):
    """Everything the server sends until its FIN. A reset raises
    ConnectionResetError (a graceful end must not reset); more than limit
    bytes fails."""
    buf = bytearray()
    while True:
        chunk = sock.recv(65536)
        if not chunk:
            return bytes(buf)
        buf += chunk
        assert len(buf) <= limit, f"more than {limit} bytes"


def worker_names(pid):
    return sorted(n for n in thread_names(pid).values()
                  if n.startswith("zn-worker"))


def expected_workers(n):
    return sorted(f"zn-worker-{i}" for i in range(n))


def default_workers(stage):
    """WorkerPoolSize when the configuration does not set it: zinx's 10,
    and from v1.1 one event loop per online CPU."""
    if has(stage, "event_loop"):
        return os.sysconf("SC_NPROCESSORS_ONLN")
    return 10


def baseline(srv, nworkers):
    """The server's thread count once its nworkers workers carry their
    names (the server names them before its `listening on` line; the wait
    only guards against a regression that test_workers_are_named_by_the_
    ready_line reports by itself)."""
    assert wait_until(lambda: worker_names(srv.pid) ==
                      expected_workers(nworkers), timeout=2.0), \
        thread_names(srv.pid)
    return thread_count(srv.pid)


# 1. The pool's threads ----------------------------------------------------

@pytest.mark.parametrize("size", [None, 3, 0], ids=["default", "3", "0"])
def test_worker_threads_start_with_the_server(stage, start_server, size):
    """WorkerPoolSize threads named zn-worker-0 .. zn-worker-(size-1) exist
    once the server listens (default 10, from v1.1 one per online CPU; 0:
    none), and besides the main
    thread nothing else; the log says how many started, and the pool stays
    the same while clients come and go (their own reader and writer
    threads are counted elsewhere)."""
    srv = start_server(conf={} if size is None else {"WorkerPoolSize": size})
    n = default_workers(stage) if size is None else size
    want = expected_workers(n)
    # Named before the ready line; the wait is a guard, not a need.
    assert wait_until(lambda: worker_names(srv.pid) == want, timeout=2.0), \
        worker_names(srv.pid)
    started = re.findall(r"(\d+) workers? started", srv.text())
    if n:
        assert started == [str(n)], srv.text()
    else:
        assert started in ([], ["0"]), srv.text()
    assert re.search(rf"WorkerPoolSize={n}\b", srv.text())
    assert thread_count(srv.pid) == 1 + n, thread_names(srv.pid)  # + main

    socks = [open_conn(stage, srv.port) for _ in range(5)]
    for s in socks:
        roundtrip(stage, s)
    assert wait_until(lambda: live_conns(stage, srv.pid) == 5)
    assert worker_names(srv.pid) == want
    for s in socks:
        s.close()
    assert wait_until(lambda: live_conns(stage, srv.pid) == 0)
    assert worker_names(srv.pid) == want


def test_workers_are_named_by_the_ready_line(stage, start_server):
    """The moment the server prints `listening on`, all its workers exist
    and carry their names: scripts and tests take their thread baseline
    then (test_lifecycle.py counts zn-* threads right after the start), so
    a worker that names itself a moment later moves the count under them.
    A thread that names itself from its own start routine is called like
    the thread that created it ("server") until it gets there; naming it
    from the creator, right after pthread_create(), closes the gap.
    Checked over 30 starts, each within a millisecond or so of the line."""
    late = []
    for i in range(30):
        srv = start_server(conf={"WorkerPoolSize": 10}, wait=False)
        deadline = time.monotonic() + START_TIMEOUT
        while not LISTEN_RE.search(srv.text()):  # no sleep: be prompt
            assert srv.proc.poll() is None and time.monotonic() < deadline, \
                srv.text()
        names = worker_names(srv.pid)
        if names != expected_workers(10):
            late.append(f"start {i}: {len(names)} named")
        assert srv.stop() == 0
    assert late == [], f"{len(late)} of 30 starts: {late[:5]}"


# 2. Graceful end with a pool ----------------------------------------------

@pytest.mark.parametrize("n", [1, 500])
@pytest.mark.parametrize("size", [10, 1, 0])
def test_half_close_gets_every_reply_then_eof(stage, start_server, size, n):
    """N pipelined requests in one write, then shutdown(SHUT_WR): exactly N
    replies, byte for byte, in order, then a FIN (a clean end of stream,
    no reset), whether a worker or the reader handles them. The requests
    may still wait in a worker's queue when the reader sees the EOF: the
    replies must not end before they are handled."""
    srv = start_server(conf={"WorkerPoolSize": size})
    sock = open_conn(stage, srv.port)
    sock.sendall(b"".join(pack(0, b"request %d" % i) for i in range(n)))
    sock.shutdown(socket.SHUT_WR)
    want = pack(*ping_reply(stage))
    got = read_to_eof(sock, len(want) * n)
    assert len(got) // len(want) == n and got == want * n, \
        f"{len(got) / len(want):g} of {n} replies before the end of stream"


# 3. One connection, one worker: order ---------------------------------------

def test_each_connection_keeps_its_order_over_two_workers(stage,
                                                          start_server):
    """WorkerPoolSize 2, 20 clients at once, each pipelining 200 requests
    whose msg ids (0: ping, 1: hello) follow a pattern of its own: each
    client gets exactly its 200 replies, in the order of its requests.
    Requests of one connection always go to the same worker
    (conn_id % WorkerPoolSize); spread over both, they would overtake each
    other."""
    srv = start_server(conf={"WorkerPoolSize": 2})

    def client(i):
        rng = random.Random(i)
        ids = [rng.randrange(2) for _ in range(200)]
        sock = open_conn(stage, srv.port)
        sock.sendall(b"".join(pack(m, b"client %d request %d" % (i, j))
                              for j, m in enumerate(ids)))
        want = b"".join(reply_bytes(stage, m) for m in ids)
        got = recv_exact(sock, len(want))
        if got != want:
            seen = frame_ids(got)
            first = next((k for k, (a, b) in enumerate(zip(seen, ids))
                          if a != b), min(len(seen), len(ids)))
            return (f"client {i}: reply {first} has id {seen[first:first + 1]}"
                    f", request had {ids[first]} (ids sent {ids[:first + 5]}"
                    f"..., got {seen[:first + 5]}...)")
        sock.close()
        return None

    with ThreadPoolExecutor(20) as pool:
        errors = [e for e in pool.map(client, range(20)) if e]
    assert errors == []


# 4. A client that never reads -----------------------------------------------

def test_client_that_never_reads_loses_only_its_own_connection(
        stage, start_server):
    """WorkerPoolSize 1 (both clients share the one worker), MaxMsgChanLen
    16. Client A floods requests (hundreds of thousands: the kernel holds
    MiBs of replies before the server's writes block) and never reads a
    reply; client B does round trips for 2 s meanwhile. A's reader stops
    submitting once half A's outgoing channel is taken, so the worker
    never waits for A, and A's writer, which can write nothing more, stops
    A as too slow after 500 ms (ZN_WRITE_TIMEOUT_MS), so:
    - every round trip of B completes, p99 under 150 ms and none over
      1 s (plain build; bounds times 3 under ASan, 5 under TSan);
    - A is stopped within 3 s of its first byte (same scaling): one
      `conn A: too slow` WARN, one `conn A stopped`, A's threads end, and
      A's sends are refused (reset or broken pipe);
    - B is never stopped, and the server's VmRSS grows by under 64 MiB
      (128 MiB under a sanitizer: ASan's quarantine keeps freed memory);
    - the thread count is back to its baseline once B leaves too.
    A worker that waits without bound for A would stall B for good: B's
    round trip times out and the test fails. (Before the reader's flow
    control it was the worker that stopped A, after waiting 100 ms for room
    in A's channel.)"""
    slow = slowdown(stage)
    srv = start_server(conf={"WorkerPoolSize": 1, "MaxMsgChanLen": 16})
    pid = srv.pid
    base_threads = baseline(srv, 1)

    b = open_conn(stage, srv.port)
    b.settimeout(2.0 * slow)
    bid = conn_id(srv, b)
    roundtrip(stage, b)
    rss0 = proc_status(pid, "VmRSS")

    # A: a small receive buffer, so the server's writes to it fill up fast.
    a = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    a.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    a.settimeout(5.0)
    a.connect(("127.0.0.1", srv.port))
    aid = conn_id(srv, a)
    assert aid != bid

    # Empty hello requests: 8 bytes in, 30 bytes out. The kernel buffers
    # a few MiB of replies before the server's writes to A stop; A keeps
    # sending (up to 64 MiB) until it is refused or its time is up.
    block = pack(1) * 4096
    # Before its writes block, the server makes the MiBs of replies the
    # kernel buffers for A, a thread hand-off each: 1.3-1.5 s on two cores
    # when nothing else runs, over 2 s now and then while other tests'
    # sockets wind down; then ZN_WRITE_TIMEOUT_MS. Without the rule A
    # would stay open for good.
    a_limit = 3.0 * slow
    result = {}

    def flooder():
        a.settimeout(0.05)
        t0 = time.monotonic()
        deadline = t0 + a_limit + 2.0
        off = sent = 0
        try:
            while time.monotonic() < deadline and sent < 64 << 20:
                try:
                    n = a.send(block[off:])
                except socket.timeout:
                    continue  # the server reads no more for now
                sent += n
                off = (off + n) % len(block)
            result["outcome"] = \
                f"still open after {time.monotonic() - t0:.1f} s"
        except (ConnectionResetError, BrokenPipeError) as e:
            result["outcome"] = "refused"
            result["after"] = time.monotonic() - t0
            result["error"] = repr(e)
        except OSError as e:  # the test closed A under us: it failed
            result["outcome"] = f"closed by the test: {e!r}"
        result["requests"] = sent // 8

    sender = threading.Thread(target=flooder)
    latencies, rss_peak = [], rss0
    sender.start()
    try:
        end = time.monotonic() + 2.0
        i = 0
        while time.monotonic() < end:
            t = time.monotonic()
            b.sendall(pack(i % 2, b"b %d" % i))
            assert read_frame(b) == (i % 2, reply_bytes(stage, i % 2)[8:]), \
                f"round trip {i} of B"
            latencies.append(time.monotonic() - t)
            if i % 64 == 0:
                rss_peak = max(rss_peak, proc_status(pid, "VmRSS"))
            i += 1
        sender.join(a_limit + 5.0)
    finally:
        reset_close(a)  # frees a worker stuck on A, should the test fail
        sender.join()

    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)]
    worst = latencies[-1]
    print(f"B: {len(latencies)} round trips, p99 {p99 * 1000:.1f} ms, "
          f"max {worst * 1000:.1f} ms; A: {result}; "
          f"VmRSS {rss0} -> peak {rss_peak} KiB")
    assert p99 < 0.150 * slow, f"p99 {p99 * 1000:.1f} ms"
    assert worst < 1.0 * slow, f"slowest round trip {worst * 1000:.1f} ms"

    srv.wait_log(rf"conn {aid}: too slow")
    assert result.get("outcome") == "refused", result
    assert result["after"] < a_limit, result
    assert wait_until(lambda: stopped_lines(srv, aid) >= 1)
    assert wait_until(lambda: live_conns(stage, pid) == 1)
    assert stopped_lines(srv, aid) == 1
    assert len(re.findall(r"too slow", srv.text())) == 1
    assert stopped_lines(srv, bid) == 0
    grew = rss_peak - rss0
    assert grew < 64 * 1024 * (2 if sanitizer(stage) else 1), \
        f"VmRSS grew {grew} KiB"

    roundtrip(stage, b)  # B is still served
    b.close()
    assert wait_until(lambda: thread_count(pid) == base_threads), \
        thread_names(pid)


# 5. Backpressure -----------------------------------------------------------

def test_full_worker_queue_slows_the_client_and_drops_nothing(
        stage, start_server):
    """WorkerPoolSize 1, MaxWorkerTaskLen 1: the reader of a client that
    pipelines 2,000 requests keeps finding the worker's queue full. It must
    wait for room (backpressure on that client) rather than drop a
    request: all 2,000 replies arrive, in order, and another client's round
    trips are served meanwhile."""
    srv = start_server(conf={"WorkerPoolSize": 1, "MaxWorkerTaskLen": 1})
    other = open_conn(stage, srv.port)
    roundtrip(stage, other)
    sock = open_conn(stage, srv.port)
    rng = random.Random(5)
    ids = [rng.randrange(2) for _ in range(2000)]
    requests = b"".join(pack(m, b"request %d" % j) for j, m in enumerate(ids))
    sender = threading.Thread(target=sock.sendall, args=(requests,))
    sender.start()
    try:
        for k in range(20):
            roundtrip(stage, other, b"other %d" % k)
        want = b"".join(reply_bytes(stage, m) for m in ids)
        got = recv_exact(sock, len(want))
    finally:
        sender.join()
    assert frame_ids(got) == ids
    assert got == want
    roundtrip(stage, other)
    roundtrip(stage, sock)


# 6. An abort while requests wait for the worker ------------------------------

def test_oversize_frame_after_pipelined_requests(stage, start_server):
    """WorkerPoolSize 1: a client pipelines 100 requests and then a header
    claiming MaxPacketSize + 1 bytes. That connection is closed
    ('exceeds MaxPacketSize', `conn N stopped` once) while requests of it
    may still wait for the worker; its threads end, and the one worker
    lives on and serves the next client."""
    srv = start_server(conf={"WorkerPoolSize": 1, "MaxPacketSize": 4096})
    pid = srv.pid
    base_threads = baseline(srv, 1)
    bad = open_conn(stage, srv.port)
    cid = conn_id(srv, bad)
    bad.sendall(b"".join(pack(0, b"request %d" % i) for i in range(100)) +
                HEADER.pack(4097, 0) + b"\0" * 100)
    assert is_closed(bad)  # replies that made it out are read and dropped
    srv.wait_log(rf"conn {cid}: message of 4097 bytes exceeds MaxPacketSize")
    assert wait_until(lambda: thread_count(pid) == base_threads), \
        thread_names(pid)
    # v1.1 has no thread of the connection's to wait for: wait for its line.
    assert wait_until(lambda: stopped_lines(srv, cid) >= 1)
    assert stopped_lines(srv, cid) == 1
    assert worker_names(pid) == ["zn-worker-0"]
    good = open_conn(stage, srv.port)
    for k in range(10):
        roundtrip(stage, good, b"after %d" % k)
    good.close()
    assert wait_until(lambda: thread_count(pid) == base_threads)


# 7. Stop under load ---------------------------------------------------------

def test_sigterm_while_50_clients_loop_is_clean(stage, start_server):
    """WorkerPoolSize 2, 50 clients doing round trips in a loop (each
    bounded to a few seconds): SIGTERM in the middle of it stops the
    server with status 0 within the fixture's deadline, after it stopped
    and joined its workers ('[Name] stopped'), with no sanitizer report."""
    srv = start_server(conf={"WorkerPoolSize": 2})
    counts = [0] * 50
    stop = threading.Event()

    def client(i):
        try:
            sock = open_conn(stage, srv.port)
            sock.settimeout(2.0 * slowdown(stage))
            end = time.monotonic() + 5.0 * slowdown(stage)
            while not stop.is_set() and time.monotonic() < end:
                sock.sendall(pack(i % 2, b"client %d" % i))
                assert read_frame(sock) == \
                    (i % 2, reply_bytes(stage, i % 2)[8:])
                counts[i] += 1
        except (OSError, AssertionError):
            pass  # the server stopped under us
        return counts[i]

    with ThreadPoolExecutor(50) as pool:
        futures = [pool.submit(client, i) for i in range(50)]
        try:
            everyone = wait_until(lambda: min(counts) >= 5,
                                  timeout=5.0 * slowdown(stage))
            assert everyone, f"not every client got going: {counts}"
            t = time.monotonic()
            rc = srv.stop()
            took = time.monotonic() - t
        finally:
            stop.set()
            for f in futures:
                f.result()
    print(f"{sum(counts)} round trips; exit {rc} after {took:.2f} s")
    assert rc == 0, srv.text()
    text = srv.text()
    assert not BAD_LOG_RE.search(text), text
    assert re.search(r"\] stopped", text)


# 8. Coming and going --------------------------------------------------------

def test_1000_connect_close_cycles_with_the_pool_leak_nothing(stage, server):
    """With the default pool, 1,000 clients come and go: a third close at
    once, a third after a round trip, a third reset after a round trip.
    Threads and descriptors return to their baseline and the workers are
    the same threads."""
    pid = server.pid
    base_threads = baseline(server, default_workers(stage))
    base_fds = fd_count(pid)
    workers = {tid for tid, n in thread_names(pid).items()
               if n.startswith("zn-worker")}
    for i in range(1000):
        if i % 3 == 0:
            connect(server.port).close()
            continue
        sock = open_conn(stage, server.port)
        roundtrip(stage, sock, b"cycle %d" % i)
        if i % 3 == 1:
            sock.close()
        else:
            reset_close(sock)
    roundtrip(stage, open_conn(stage, server.port))  # still serving
    assert wait_until(lambda: thread_count(pid) == base_threads,
                      timeout=20), thread_names(pid)
    assert wait_until(lambda: fd_count(pid) == base_fds, timeout=20)
    assert {tid for tid, n in thread_names(pid).items()
            if n.startswith("zn-worker")} == workers
