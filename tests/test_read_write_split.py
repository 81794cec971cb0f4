"""v0.7 on: the read/write split. Each connection has a reader thread and a
writer thread (zn-reader-N, zn-writer-N) joined by an outgoing channel of
MaxMsgChanLen replies, and is reference counted. It ends gracefully when the
client closes its side (every reply already produced is still written, then
a FIN) or by abort (error, oversized frame, stop: shut down both ways, the
queued replies dropped, every blocked thread woken).

Several of these promises held before the split too (a half-close gets
every reply, no leak, a clean stop under load); those tests run from the
stage where the promise starts, as regression tests."""

import re
import signal
import socket
import subprocess
import threading
import time
from collections import Counter

import pytest

from support.build import build_api
from support.demo import (conn_id, connect_narrow, open_conn, roundtrip,
                          stopped_lines)
from support.launcher import BAD_LOG_RE
from support.proc import (conn_thread_ids, fd_count,
                          server_read_all_but_is_stuck, server_stalled,
                          tcp_queues, thread_count, thread_names, threads_gone,
                          wait_until)
from support.stages import STAGES, has, ping_reply, reply_to
from support.wire import (HEADER, connect, pack, push, read_to_eof,
                          read_until_closed, reset_close, split_frames)


def replies_to(stage, ids):
    """The exact bytes of the demo's replies to requests with these ids."""
    one = {i: pack(*reply_to(stage, i)) for i in set(ids)}
    return b"".join(one[i] for i in ids)


def request_ids(stage, n):
    """Message ids for n pipelined requests: from v0.6 a mix of 0 (ping)
    and 1 (hello), so replies out of order would show; before that, all
    0."""
    if not has(stage, "routing"):
        return [0] * n
    return [1 if i % 3 == 2 else 0 for i in range(n)]


def first_difference(a, b):
    """The offset of the first byte where a and b differ."""
    return next((k for k, (x, y) in enumerate(zip(a, b)) if x != y),
                min(len(a), len(b)))


# ---- 1. named threads ----

@pytest.mark.has("writer")
@pytest.mark.lacks("event_loop")
def test_reader_and_writer_threads_carry_the_connection_id(stage, server):
    """With 5 clients connected, /proc shows exactly one zn-reader-<id> and
    one zn-writer-<id> per client, <id> being the connection id of its
    `conn N started` line; the threads of the clients that leave, and only
    those, disappear."""
    pid = server.pid
    socks = [open_conn(stage, server.port) for _ in range(5)]
    for s in socks:
        roundtrip(stage, s)
    ids = [conn_id(server, s) for s in socks]
    assert wait_until(lambda: conn_thread_ids(pid, "reader") == sorted(ids)
                      and conn_thread_ids(pid, "writer") == sorted(ids)), \
        (f"5 clients: expected zn-reader-N and zn-writer-N for conns {ids}, "
         f"have {sorted(thread_names(pid).values())}")
    assert thread_count(pid, "zn-reader") == 5
    assert thread_count(pid, "zn-writer") == 5

    for i in (0, 3):
        socks[i].close()
    left = sorted(ids[i] for i in (1, 2, 4))
    assert wait_until(lambda: conn_thread_ids(pid, "reader") == left and
                      conn_thread_ids(pid, "writer") == left), \
        thread_names(pid)
    roundtrip(stage, socks[1])  # the others still served

    for i in (1, 2, 4):
        socks[i].close()
    assert wait_until(lambda: thread_count(pid, "zn-reader") == 0 and
                      thread_count(pid, "zn-writer") == 0), thread_names(pid)


# ---- 2. no leak over many short connections ----

def one_cycle(stage, port, kind):
    if kind == 0:  # connect and close at once
        connect(port).close()
    elif kind == 1:  # one round trip, then close
        with open_conn(stage, port) as s:
            roundtrip(stage, s)
    elif kind == 2:  # a request, then a reset, likely before its reply
        s = connect(port)
        s.sendall(pack(0, b"then reset"))
        reset_close(s)
    else:  # close in the middle of a frame (header + 5 of 10 body bytes)
        with connect(port) as s:
            s.sendall(pack(0, b"0123456789")[:13])


@pytest.mark.has("framing")
def test_1000_mixed_connect_close_cycles_leak_nothing(stage, server):
    """1,000 clients one after the other, each ending one way: a plain
    close, a close after a round trip, a reset right after a request, a
    close in the middle of a frame. Afterwards the server holds exactly
    the threads and descriptors it had before, and said `conn N stopped`
    exactly once for each of the 1,000."""
    pid = server.pid
    base_threads, base_fds = thread_count(pid), fd_count(pid)
    start = time.monotonic()
    for i in range(1000):
        one_cycle(stage, server.port, i % 4)
    with open_conn(stage, server.port) as s:  # still serving
        roundtrip(stage, s)
    assert wait_until(lambda: thread_count(pid) == base_threads,
                      timeout=20), thread_names(pid)
    assert wait_until(lambda: fd_count(pid) == base_fds, timeout=20)

    def stopped():
        return Counter(int(x) for x in
                       re.findall(r"\bconn (\d+) stopped\b", server.text()))

    started = [int(x) for x in
               re.findall(r"\bconn (\d+) started\b", server.text())]
    assert len(started) == 1001 and len(set(started)) == 1001
    assert wait_until(lambda: len(stopped()) >= 1001)
    twice = {cid: n for cid, n in stopped().items() if n != 1}
    assert twice == {}, f"`conn N stopped` more than once: {twice}"
    assert set(stopped()) == set(started)
    print(f"1000 cycles in {time.monotonic() - start:.2f}s")


# ---- 3. half-close: graceful end ----

@pytest.mark.has("framing")
@pytest.mark.parametrize("n", [1, 100, 2000])
def test_half_close_after_n_requests_gets_n_replies_then_fin(stage, server,
                                                              n):
    """N pipelined requests in one write, then shutdown(SHUT_WR): the
    client reads exactly the N replies, byte for byte and in order, then
    the end of the stream, a FIN and not a reset."""
    sock = open_conn(stage, server.port)
    ids = request_ids(stage, n)
    sock.sendall(b"".join(pack(i, b"request %d" % k)
                          for k, i in enumerate(ids)))
    sock.shutdown(socket.SHUT_WR)
    got = read_to_eof(sock)
    want = replies_to(stage, ids)
    if got != want:
        frames, rest = split_frames(got)
        pytest.fail(f"{len(frames)} whole replies (+{len(rest)} bytes) "
                    f"instead of {n}; the first wrong byte is at offset "
                    f"{first_difference(got, want)}")
    sock.close()


# ---- 4. graceful end with a slow reader: backpressure ----

@pytest.mark.has("framing")
@pytest.mark.lacks("slow_clients")
def test_slow_reader_after_half_close_gets_every_reply(stage, start_server):
    """60,000 requests, then shutdown(SHUT_WR); the client, behind a
    narrow receive path, starts reading only once the server has stopped
    reading. With MaxMsgChanLen 4 the replies pile up: the socket buffers
    fill, the writer blocks, the channel fills and the reader blocks in
    turn (before v0.7 the reader blocks in its own write), so the server
    stops reading the requests (we check it does). Nothing is lost or
    reordered: all 60,000 replies arrive, then a FIN.

    Until v0.7 only: from v0.8 the writer stops a client that takes no
    byte of its replies for 500 ms as too slow (DESIGN.md section 8), and
    this client takes nothing for longer than that on purpose; v0.8's
    steady slow reader is in test_slow_clients.py."""
    srv = start_server(conf={"MaxMsgChanLen": 4})
    sock = connect_narrow(stage, srv.port)
    sock.settimeout(20.0)  # sendall's whole duration, see below
    n = 60000
    ids = request_ids(stage, n)
    sent = []

    def send_then_half_close():
        # 480 KB of requests, 1.7 MB of replies: several times what the
        # kernel's buffers take, so the server stops reading and this
        # write blocks until the client reads.
        sock.sendall(b"".join(pack(i) for i in ids))
        sock.shutdown(socket.SHUT_WR)
        sent.append(True)

    sender = threading.Thread(target=send_then_half_close)
    sender.start()
    try:
        assert wait_until(lambda: server_stalled(srv, sock), timeout=10), \
            "the server never stopped reading: no backpressure exercised"
        want = replies_to(stage, ids)
        got = bytearray()
        try:
            while True:
                chunk = sock.recv(4096)  # a little at a time
                if not chunk:
                    break
                got += chunk
        except ConnectionResetError:
            pytest.fail(f"reset instead of a FIN after {len(got)} bytes")
    finally:
        sender.join(30)
    assert sent, "the requests did not all go out"
    frames, rest = split_frames(bytes(got))
    assert len(frames) == n and rest == b"", \
        f"{len(frames)} whole replies (+{len(rest)} bytes) of {n}"
    assert bytes(got) == want, "replies out of order or corrupted"
    sock.close()


# ---- 5. abort: the queue is dropped, both threads wake ----

@pytest.mark.has("writer")
@pytest.mark.lacks("slow_clients")
def test_oversized_frame_aborts_drops_queued_replies_and_wakes_threads(
        stage, start_server):
    """A client pipelines 40,000 requests without reading, so the server
    holds most of their replies in its outgoing channel (MaxMsgChanLen
    65536) and its writer is blocked on the full socket; then it sends a
    header claiming more than MaxPacketSize. The server aborts that
    connection: one 'exceeds MaxPacketSize' line, `conn N stopped` once,
    both its threads gone (the blocked writer woke) before the client
    reads anything, and fewer than 40,000 replies ever reach it (the
    queue was dropped, not written; the kernel's buffers hold only a
    fraction of them). Another client is served during and after.

    v0.7 only: from v0.8 the server reads no more requests while half the
    outgoing channel is taken, and stops a client that takes nothing for
    500 ms; test_workers.py sends the oversize frame after pipelined
    requests there."""
    srv = start_server(conf={"MaxMsgChanLen": 65536})
    pid = srv.pid
    other = open_conn(stage, srv.port)
    roundtrip(stage, other)
    bad = connect_narrow(stage, srv.port)
    cid = conn_id(srv, bad)
    n = 40000
    bad.sendall(pack(0) * n)
    assert wait_until(lambda: server_read_all_but_is_stuck(srv, bad)), \
        "the server's writer never blocked on this client"
    roundtrip(stage, other)  # during

    bad.sendall(HEADER.pack(4097, 0))  # MaxPacketSize is 4096
    srv.wait_log(rf"conn {cid}: message of 4097 bytes exceeds "
                 rf"MaxPacketSize 4096")
    assert wait_until(lambda: threads_gone(pid, cid)), thread_names(pid)
    got = read_until_closed(bad)
    assert got is not None, "the server did not close the connection"
    frames, _ = split_frames(got)
    assert frames == [ping_reply(stage)] * len(frames), "corrupted replies"
    assert len(frames) < n, \
        f"{len(frames)} of {n} replies written after the abort"
    assert wait_until(lambda: stopped_lines(srv, cid) >= 1)
    assert stopped_lines(srv, cid) == 1
    assert srv.text().count("exceeds MaxPacketSize") == 1
    roundtrip(stage, other)  # after
    print(f"{len(frames)} of {n} replies arrived before the abort")


# ---- 6. a client that never reads, then resets ----

@pytest.mark.has("framing")
def test_client_that_never_reads_then_resets_frees_its_threads(
        stage, start_server):
    """A client sends requests through a narrow receive path, as many as
    the kernel takes without blocking, and never reads (MaxMsgChanLen 4;
    before v0.7 an unknown key, a warning): the server's threads for it
    block, and up to v0.7 we check that the server has stopped reading it
    (from v0.8 its writer may stop it as too slow first). Another client is
    served meanwhile. Then the client resets: its threads end, `conn N
    stopped` appears exactly once, the other client is still served, and
    SIGTERM stops the server with status 0."""
    srv = start_server(conf={"MaxMsgChanLen": 4})
    pid = srv.pid
    base_threads = thread_count(pid)
    other = open_conn(stage, srv.port)
    roundtrip(stage, other)
    rude = connect_narrow(stage, srv.port)
    cid = conn_id(srv, rude)
    rude.setblocking(False)
    data = pack(0) * 400000  # 3.2 MB, 11 MB of replies: far too many
    state = {"sent": 0}

    def stuck():
        if state["sent"] is not None:
            state["sent"] = push(rude, data, state["sent"])
        if has(stage, "slow_clients") and (
                state["sent"] is None or
                tcp_queues(srv.port, rude.getsockname()[1]) is None):
            return True  # stopped as too slow
        return state["sent"] is not None and server_stalled(srv, rude)

    assert wait_until(stuck, timeout=10), \
        f"the server never stopped reading this client ({state})"
    for _ in range(3):
        roundtrip(stage, other)  # served while the rude one is stuck

    reset_close(rude)
    assert wait_until(lambda: threads_gone(pid, cid)), thread_names(pid)
    assert wait_until(lambda: stopped_lines(srv, cid) >= 1)
    roundtrip(stage, other)
    other.close()
    assert wait_until(lambda: thread_count(pid) == base_threads), \
        thread_names(pid)
    assert stopped_lines(srv, cid) == 1
    assert srv.stop() == 0


# ---- 7. SIGTERM while 50 clients are busy ----

def test_sigterm_during_load_exits_0(stage, server):
    """50 clients each loop round trips; SIGTERM lands while they run. The
    server exits with status 0 within the deadline, with no sanitizer
    report, and every client ends (on an error or a close, not a hang)."""
    clients = 50
    counts = [0] * clients
    done = threading.Event()

    def client(i):
        deadline = time.monotonic() + 10  # a bound, not the plan
        try:
            with open_conn(stage, server.port) as sock:
                sock.settimeout(2.0)
                while not done.is_set() and time.monotonic() < deadline:
                    roundtrip(stage, sock, b"client %d" % i)
                    counts[i] += 1
        except (OSError, AssertionError):
            pass  # the server went away: expected

    threads = [threading.Thread(target=client, args=(i,))
               for i in range(clients)]
    for t in threads:
        t.start()
    try:
        assert wait_until(lambda: min(counts) >= 3, timeout=10), \
            f"not every client got going: {counts}"
        rc = server.stop(signal.SIGTERM)
    finally:
        done.set()
        for t in threads:
            t.join(15)
    assert not any(t.is_alive() for t in threads), "a client hung"
    assert rc == 0, server.text()
    assert not BAD_LOG_RE.search(server.text()), server.text()
    print(f"{sum(counts)} round trips before the stop")


# ---- 8. the API: a held connection outlives its threads ----

@pytest.mark.has("writer")
def test_held_connection_can_be_used_after_it_ended(stage, tmp_path):
    """tests/api/late_send.c: a router takes zn_conn_hold() and hands the
    connection to another thread, which, after the connection has ended,
    gets -EPIPE from zn_conn_send_msg(), calls zn_conn_stop() harmlessly
    and drops the last reference, which closes the socket. A router that
    stops its own connection gets -EPIPE from a send right after, and the
    request pipelined behind the one that stopped it is not handled. In
    v0.7, a send blocked on a full channel (MaxMsgChanLen 1, a client that
    never reads) wakes with -EPIPE when another thread stops the
    connection (from v0.8 such a send waits only briefly). No crash, no
    sanitizer report, no leak; each connection says `stopped` (from v0.9
    `closed`: it has no server, so no hook) once."""
    exe = build_api(stage, "late_send", tmp_path)
    run = subprocess.run([str(exe)], capture_output=True, text=True,
                         timeout=60)
    out = run.stdout + run.stderr
    assert run.returncode == 0, out
    assert not BAD_LOG_RE.search(out), out
    started = re.findall(r"\bconn (\d+) started\b", out)
    assert len(started) >= 2, out
    for cid in started:
        assert len(re.findall(rf"\bconn {cid} {STAGES[stage].end_word}\b",
                              out)) == 1, out
