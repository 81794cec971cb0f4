"""Checks of the v1.1 chapter's exercises (docs/v1.1-event-loop.md):
black-box tests through the demo server of your copy of v1.1, and what
/proc tells about it. Make your copy with `make lab EX=v1.1-N`, check it
with `make grade EX=v1.1-N`.
"""

import re
import time
from pathlib import Path

import pytest

from support.demo import conn_id, open_conn, roundtrip, stopped_lines
from support.proc import fd_count, fd_table, tcp_sockets, wait_until
from support.wire import frame_or_none, is_closed, pack


@pytest.mark.exercise("v1.1-1")
def test_slow_work_leaves_the_loop_free(stage, start_server):
    """v1.1-1, a pool for slow work: WorkerPoolSize 1 (one loop for every
    client). Client A sends msg id 6 "500" and gets msg id 6 "slept 500
    ms" half a second later; meanwhile client B's pings keep being
    answered: at least 5 between 0.05 and 0.4 s after A's request (a loop
    that sleeps answers one at most). A client that leaves before its
    reply costs nothing: no ERROR line, its on_conn_stop once, and the
    server goes on."""
    srv = start_server(conf={"WorkerPoolSize": 1})
    a, b = open_conn(stage, srv.port), open_conn(stage, srv.port)
    start = time.monotonic()
    a.sendall(pack(6, b"500"))
    answered = 0  # pings answered while A's request is pending
    while time.monotonic() - start < 0.4:
        roundtrip(stage, b)
        if 0.05 <= time.monotonic() - start <= 0.4:
            answered += 1

    reply = frame_or_none(a)
    took = time.monotonic() - start
    assert reply == (6, b"slept 500 ms"), (
        f"msg id 6 '500' got {reply!r}, not (6, b'slept 500 ms')")
    assert took >= 0.45, f"the reply came after {took:.3f} s, not 0.5 s"
    assert answered >= 5, (
        f"only {answered} pings were answered between 0.05 and 0.4 s after "
        "A's msg id 6 '500', not 5 or more: the loop itself slept instead "
        "of handing the work to the pool")

    c = open_conn(stage, srv.port)
    cid = conn_id(srv, c)
    c.sendall(pack(6, b"200"))
    c.close()  # leaves before its reply
    assert wait_until(lambda: stopped_lines(srv, cid) == 1), (
        f"conn {cid} left while its msg id 6 '200' was pending, and the "
        f"log has {stopped_lines(srv, cid)} 'conn {cid} stopped' lines, "
        "not one")
    # B's 300 ms come after C's 200 ms: once B has its reply, the pool has
    # tried to reply to C, who left.
    b.sendall(pack(6, b"300"))
    reply = frame_or_none(b)
    assert reply == (6, b"slept 300 ms"), (
        f"msg id 6 '300' got {reply!r} after a client left with its msg "
        "id 6 pending, not (6, b'slept 300 ms')")
    roundtrip(stage, b)
    assert not re.search(r"\bERROR\b", srv.text()), (
        "a reply to a client that left logged an ERROR line")
    assert stopped_lines(srv, cid) == 1, (
        f"conn {cid}'s on_conn_stop ran again when the pool replied to it: "
        f"{stopped_lines(srv, cid)} 'conn {cid} stopped' lines")


EPOLLET = 1 << 31


def server_fd(srv, sock):
    """The server's descriptor of this client's connection."""
    port = sock.getsockname()[1]
    inodes = [s["inode"] for s in tcp_sockets()
              if s["local_port"] == srv.port and s["remote_port"] == port]
    assert inodes, f"no TCP socket of the server is connected to port {port}"
    fds = [fd for fd, (_, target) in fd_table(srv.pid).items()
           if target == f"socket:[{inodes[0]}]"]
    assert fds, (f"the server holds no descriptor of the socket connected "
                 f"to port {port}")
    return fds[0]


def watched_events(pid, fd):
    """What the process's epoll instances watch fd for (the `tfd: FD
    events: HEX` lines of /proc/PID/fdinfo/EPFD), or None."""
    for epfd, (_, target) in fd_table(pid).items():
        if target == "anon_inode:[eventpoll]":
            text = Path(f"/proc/{pid}/fdinfo/{epfd}").read_text()
            m = re.search(rf"^tfd:\s+{fd}\s+events:\s+([0-9a-f]+)", text, re.M)
            if m:
                return int(m.group(1), 16)
    return None


@pytest.mark.exercise("v1.1-2")
def test_edge_triggered_strands_nobody(stage, start_server):
    """v1.1-2, edge-triggered: the client's socket is watched with
    EPOLLET, and a client that sends 1 MiB at once (262 pings of 4,000
    bytes: more than one round of reads takes) gets every reply, though
    no byte arrives after the burst to trigger a new edge."""
    srv = start_server(conf={"WorkerPoolSize": 1})
    sock = open_conn(stage, srv.port)
    events = watched_events(srv.pid, server_fd(srv, sock))
    assert events is not None, "the client's socket is in no epoll set"
    assert events & EPOLLET, (
        f"the client's socket is watched for {events:#x}, without EPOLLET: "
        "the poller is still level-triggered")

    n = 262
    sock.sendall(pack(0, b"x" * 4000) * n)
    got = 0
    while got < n and frame_or_none(sock) is not None:
        got += 1
    assert got == n, (
        f"{got} of {n} replies: the rest of the burst sits unread in the "
        "server, stranded; the loop does not come back to a connection "
        "whose read budget ran out")
    roundtrip(stage, sock)


@pytest.mark.exercise("v1.1-3")
def test_idle_client_is_stopped(stage, start_server):
    """v1.1-3, an idle timeout: with IdleTimeoutMs 300, a client that
    sends nothing is stopped with `conn N: idle for 300 ms, stopping`,
    while one that pings all along stays open."""
    srv = start_server(conf={"IdleTimeoutMs": 300})
    quiet = open_conn(stage, srv.port)
    busy = open_conn(stage, srv.port)
    quiet_id, busy_id = conn_id(srv, quiet), conn_id(srv, busy)

    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        roundtrip(stage, busy)  # a ping every 50 ms, well within 300
        time.sleep(0.05)
    assert is_closed(quiet, timeout=3.0), (
        "a client silent for 1.5 s is still connected: the server has no "
        "idle timeout (IdleTimeoutMs)")
    srv.wait_log(rf"conn {quiet_id}: idle for 300 ms, stopping")
    roundtrip(stage, busy)
    assert f"conn {busy_id}: idle" not in srv.text(), (
        "the client that pinged every 50 ms was taken for idle")


def eventfds(pid):
    """How many eventfd descriptors the process holds."""
    return len([fd for fd, (_, target) in fd_table(pid).items()
                if target == "anon_inode:[eventfd]"])


@pytest.mark.exercise("v1.1-4")
def test_each_loop_wakes_up_through_one_eventfd(stage, start_server):
    """v1.1-4, eventfd for the wake-up: with WorkerPoolSize 1 and 3,
    the server holds one eventfd per loop (WorkerPoolSize + 1, the main
    thread's included), and a worker loop costs two descriptors (its
    poller and its eventfd), no longer three."""
    fds = {}
    for n in (1, 3):
        srv = start_server(conf={"WorkerPoolSize": n})
        fds[n] = fd_count(srv.pid)  # at rest: no client yet
        have = eventfds(srv.pid)
        assert have == n + 1, (
            f"WorkerPoolSize {n}: the server holds {have} eventfd "
            f"descriptors, not one per loop ({n + 1})")
        with open_conn(stage, srv.port) as sock:
            roundtrip(stage, sock)  # and the loops still work
    per_loop = (fds[3] - fds[1]) / 2
    assert per_loop == 2, (
        f"each worker loop takes {per_loop:g} descriptors, not 2 (its poller "
        "and its eventfd)")
