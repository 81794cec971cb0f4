"""Checks of the exercises of chapter v0.9 (docs/v0.9-connection-manager.md):
black-box tests through the demo server of your copy of v0.9. Make the copy
with `make lab EX=v0.9-N`, change it as the exercise asks, and check it with
`make grade EX=v0.9-N`.
"""

import os
import re
import resource
import socket
import sys
from pathlib import Path

import pytest

from support.demo import open_conn, roundtrip
from support.wire import (connect, pack, read_frame, read_until_closed,
                          silent)


@pytest.mark.exercise("v0.9-3")
def test_full_server_tells_the_client_why(stage, start_server):
    """Exercise 3, tell the client why: with MaxConn 1, a second client
    reads one frame, msg id 2 "ERR server full", then the end of the
    stream; the first client is served as before."""
    srv = start_server(conf={"MaxConn": 1})
    first = open_conn(stage, srv.port)
    roundtrip(stage, first)

    second = connect(srv.port)
    data = read_until_closed(second)
    assert data is not None, "the client over MaxConn was left open"
    assert data == pack(2, b"ERR server full"), (
        f"the client over MaxConn got {data!r} before the end of the "
        "stream, not one frame: msg id 2, 'ERR server full'")
    roundtrip(stage, first)


def frame_or_none(sock, timeout=3.0):
    """The next frame, or None when none comes within the timeout."""
    sock.settimeout(timeout)
    try:
        return read_frame(sock)
    except socket.timeout:
        return None


@pytest.mark.exercise("v0.9-4")
def test_broadcast_reaches_every_client(stage, server):
    """Exercise 4, broadcast: three clients, and a fourth that has just
    left; the first sends msg id 7 "hi", and the other two each get one
    msg id 7 frame "hi". The client that left causes no ERROR line, and
    the server goes on serving."""
    a, b, c = (open_conn(stage, server.port) for _ in range(3))
    open_conn(stage, server.port).close()  # left meanwhile
    a.sendall(pack(7, b"hi"))
    for name, sock in (("second", b), ("third", c)):
        frame = frame_or_none(sock)
        assert frame == (7, b"hi"), (
            f"the {name} client got {frame!r}, not msg id 7 'hi': "
            "nothing broadcast the message")
        assert silent(sock), f"the {name} client got more than one frame"
        roundtrip(stage, sock)
    assert " ERROR " not in server.text(), "a broadcast logged an error"


def thread_limit():
    """The most threads this server could start, as Linux says: the least
    of threads-max, pid_max and, for a user other than root,
    RLIMIT_NPROC."""
    limits = [int(Path(f"/proc/sys/kernel/{name}").read_text())
              for name in ("threads-max", "pid_max")]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if os.geteuid() != 0 and nproc != resource.RLIM_INFINITY:
        limits.append(nproc)
    return min(limits)


THREADS_WARN = r"WARN.*MaxConn {}\b.*thread"


@pytest.mark.exercise("v0.9-5")
def test_max_conn_beyond_the_thread_limits_warns(stage, start_server):
    """Exercise 5, check the thread limits too: MaxConn 1,000,000 needs
    2,000,003 threads with WorkerPoolSize 2, more than Linux allows here:
    a WARN line says so (naming the threads), and the server still
    serves. The default MaxConn, where the limits allow it, gives no such
    line."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the limits are Linux's")
    limit = thread_limit()
    if limit >= 2 * 1000000 + 3:
        pytest.skip(f"this machine allows {limit} threads")
    srv = start_server(conf={"MaxConn": 1000000, "WorkerPoolSize": 2})
    assert re.search(THREADS_WARN.format(1000000), srv.text()), (
        "no WARN line says that MaxConn 1000000 takes more threads than "
        f"the system allows ({limit}):\n{srv.text()}")
    roundtrip(stage, open_conn(stage, srv.port))

    if 2 * 12000 + 3 <= limit:
        srv = start_server(conf={"WorkerPoolSize": 2})
        roundtrip(stage, open_conn(stage, srv.port))
        assert not re.search(THREADS_WARN.format(12000), srv.text()), (
            "the default MaxConn warns though the limits allow it")
