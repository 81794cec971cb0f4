"""What every stage's demo server must do, whatever its protocol: listen on
the port it says, serve clients with one thread each, give back every thread
and descriptor, survive rude clients, and stop cleanly on a signal."""

import os
import re
import signal
import socket
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from support.build import sanitizer
from support.demo import live_conns, open_conn, roundtrip
from support.launcher import VALGRIND
from support.proc import (cpu_seconds, fd_count, fd_table, listening_sockets,
                          thread_count, thread_names, wait_until)
from support.stages import STAGES, has
from support.wire import connect, pack, reset_close


def test_listens_on_the_port_it_prints(stage, server):
    assert server.port > 0
    sock = open_conn(stage, server.port)
    roundtrip(stage, sock)
    sock.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_with_status_0(stage, server, sig):
    sock = open_conn(stage, server.port)
    roundtrip(stage, sock)
    assert server.stop(sig) == 0
    sock.close()


@pytest.mark.lacks("conf")
@pytest.mark.parametrize("args", [["abc"], ["70000"], ["-1"], [""],
                                  ["80x"], ["1", "2"]])
def test_bad_port_argument(start_server, args):
    """v0.1-v0.3 take the port on the command line: bad input is refused
    with a usage message and exit status 2, never a server on some other
    port."""
    srv = start_server(args=args, wait=False)
    assert srv.wait_exit() == 2
    assert "usage" in srv.text()


def test_port_in_use_is_an_error_not_a_hang(stage, server, start_server):
    other = start_server(port=server.port, wait=False)
    assert other.wait_exit() == 1  # 2 is for bad configuration
    assert "Address already in use" in other.text()
    roundtrip(stage, open_conn(stage, server.port))  # first one unharmed


def test_one_named_reader_thread_per_client(stage, server):
    pid = server.pid
    base_threads, base_fds = thread_count(pid), fd_count(pid)
    n = 5
    socks = [open_conn(stage, server.port) for _ in range(n)]
    for s in socks:
        roundtrip(stage, s)
    per_conn = STAGES[stage].threads_per_conn
    expected = base_threads + n * per_conn
    assert wait_until(lambda: thread_count(pid) == expected), \
        (f"{n} clients, {per_conn} threads each: expected {expected} threads, "
         f"have {sorted(thread_names(pid).values())}")
    assert live_conns(stage, pid) == n
    assert fd_count(pid) == base_fds + n

    for s in socks:
        s.close()
    assert wait_until(lambda: thread_count(pid) == base_threads), \
        thread_names(pid)
    assert wait_until(lambda: fd_count(pid) == base_fds)


@pytest.mark.has("connection")
def test_each_connection_says_when_it_starts_and_ends(stage, server):
    """From v0.2 a connection object logs its id and its client's address
    when it starts, and its end once: `conn N stopped` (`conn N closed`
    from v0.9, where the demo's stop hook says `stopped`)."""
    sock = open_conn(stage, server.port)
    port = sock.getsockname()[1]
    m = server.wait_log(rf"conn (\d+) started, remote 127\.0\.0\.1:{port}\b")
    cid = m.group(1)
    roundtrip(stage, sock)
    sock.close()
    end = rf"\bconn {cid} {STAGES[stage].end_word}\b"
    server.wait_log(end)
    assert len(re.findall(end, server.text())) == 1, server.text()


def test_connect_close_cycles_leak_nothing(stage, server):
    pid = server.pid
    base_threads, base_fds = thread_count(pid), fd_count(pid)
    for _ in range(1000):
        connect(server.port).close()
    roundtrip(stage, open_conn(stage, server.port))  # still serving
    assert wait_until(lambda: thread_count(pid) == base_threads, timeout=20), \
        thread_names(pid)
    assert wait_until(lambda: fd_count(pid) == base_fds, timeout=20)


def test_survives_a_client_that_resets(stage, server):
    rude = open_conn(stage, server.port)
    roundtrip(stage, rude)
    reset_close(rude)
    polite = open_conn(stage, server.port)
    for _ in range(3):
        roundtrip(stage, polite)
    polite.close()
    assert wait_until(lambda: live_conns(stage, server.pid) == 0)


def test_every_thread_but_main_is_named(stage, server):
    if sanitizer(stage) == "thread":
        pytest.skip("ThreadSanitizer adds an unnamed thread of its own")
    socks = [open_conn(stage, server.port) for _ in range(3)]
    for s in socks:
        roundtrip(stage, s)
    names = thread_names(server.pid)
    assert wait_until(lambda: thread_count(server.pid) == len(names))
    unnamed = [n for tid, n in names.items()
               if tid != server.pid and not n.startswith("zn-")]
    assert unnamed == []


def test_descriptors_are_close_on_exec(stage, server):
    """Every descriptor the server holds is close-on-exec, so a program it
    (or a library in it) starts cannot inherit sockets; the listening socket
    is non-blocking and the client sockets are blocking, until v1.1, where
    a loop must never wait on one and they are non-blocking too."""
    if VALGRIND:
        pytest.skip("valgrind holds descriptors of its own")
    socks = [open_conn(stage, server.port) for _ in range(3)]
    for s in socks:
        roundtrip(stage, s)
    table = fd_table(server.pid)
    inherited = {fd: target for fd, (flags, target) in table.items()
                 if fd > 2 and not flags & os.O_CLOEXEC}
    assert not inherited, f"descriptors without O_CLOEXEC: {inherited}"
    listening = listening_sockets(server.pid)
    assert list(listening.values()) == [server.port]
    listen_fd = next(iter(listening))
    assert table[listen_fd][0] & os.O_NONBLOCK, "listening socket blocks"
    clients = {fd: flags for fd, (flags, target) in table.items()
               if target.startswith("socket:") and fd != listen_fd}
    assert len(clients) == len(socks)
    nonblocking = has(stage, "event_loop")
    assert [fd for fd, flags in clients.items()
            if bool(flags & os.O_NONBLOCK) != nonblocking] == [], \
        f"client sockets must {'not ' if nonblocking else ''}block"


def served_or_closed(stage, sock, timeout=3.0):
    """Send one request: 'served' when a reply starts, 'closed' on EOF or a
    reset, 'silent' when nothing happens within the timeout."""
    sock.settimeout(timeout)
    try:
        sock.sendall(pack(0, b"x") if has(stage, "framing") else b"x")
        return "served" if sock.recv(1) else "closed"
    except (ConnectionResetError, BrokenPipeError):
        return "closed"
    except socket.timeout:
        return "silent"


def test_out_of_descriptors_closes_new_clients_and_recovers(
        stage, start_server):
    """With its descriptors used up (RLIMIT_NOFILE 32, 40 clients) the
    server serves the clients that fit and closes the others at once,
    instead of leaving them connected to silence or spinning on accept();
    one log line says so, and service resumes by itself when clients
    leave. (v1.1's loops hold three descriptors each: one worker leaves
    room for clients.)"""
    if VALGRIND:
        pytest.skip("valgrind needs descriptors of its own")
    conf = {"WorkerPoolSize": 1} if has(stage, "event_loop") else None
    srv = start_server(nofile=32, conf=conf)
    base_fds = fd_count(srv.pid)
    socks = [connect(srv.port) for _ in range(40)]
    with ThreadPoolExecutor(len(socks)) as pool:
        fate = list(pool.map(lambda s: served_or_closed(stage, s), socks))
    counts = dict(Counter(fate))
    assert "silent" not in counts, \
        f"clients left connected to silence: {counts}"
    assert counts.get("served", 0) >= 10 and "closed" in counts, counts

    cpu = cpu_seconds(srv.pid)
    time.sleep(0.5)  # a measurement window, not a synchronisation
    assert cpu_seconds(srv.pid) - cpu < 0.1, "busy while out of descriptors"
    lines = srv.text().splitlines()
    assert 1 <= len([x for x in lines if "out of file descriptors" in x]) \
        <= 2
    assert len([x for x in lines if "Too many open files" in x]) <= 2, \
        "one log line per episode, not one per attempt"

    for s in socks:
        s.close()
    assert wait_until(lambda: fd_count(srv.pid) == base_fds)
    roundtrip(stage, open_conn(stage, srv.port))
    srv.wait_log(r"accepting again")


def test_last_descriptor_taken_is_not_an_episode(stage, start_server):
    """A server whose clients take its last descriptor, one at a time, has
    turned nobody away: no "out of file descriptors" line (Linux's accept()
    says EMFILE before it looks at the queue, so the check after the last
    client must not be taken for an episode)."""
    if VALGRIND:
        pytest.skip("valgrind needs descriptors of its own")
    probe = start_server()
    room = fd_count(probe.pid) + 1  # exactly one client fits
    assert probe.stop() == 0
    srv = start_server(nofile=room)
    for i in range(3):
        sock = open_conn(stage, srv.port)
        roundtrip(stage, sock, b"client %d" % i)
        sock.close()
        assert wait_until(lambda: live_conns(stage, srv.pid) == 0)
    text = srv.text()
    assert "out of file descriptors" not in text and \
        "accepting again" not in text, text


def test_client_threads_block_sigint_and_sigterm(stage, server):
    """SIGINT and SIGTERM belong to the main thread, which polls the wake-up
    pipe: every thread the server starts blocks them (SigBlk in
    /proc/PID/task/TID/status), so the handler never runs there, where it
    could race with the pipe being closed at exit."""
    socks = [open_conn(stage, server.port) for _ in range(3)]
    for s in socks:
        roundtrip(stage, s)
    want = (1 << (signal.SIGINT - 1)) | (1 << (signal.SIGTERM - 1))
    assert wait_until(lambda: live_conns(stage, server.pid) == 3)
    for tid, name in thread_names(server.pid).items():
        if not name.startswith("zn-"):
            continue
        status = Path(f"/proc/{server.pid}/task/{tid}/status").read_text()
        blocked = int(re.search(r"^SigBlk:\s*([0-9a-f]+)", status,
                                re.M).group(1), 16)
        assert blocked & want == want, \
            f"{name} does not block SIGINT/SIGTERM: SigBlk={blocked:#x}"
