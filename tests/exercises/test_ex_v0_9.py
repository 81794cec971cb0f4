"""Checks of the v0.9 chapter's exercises (docs/v0.9-connection-manager.md):
black-box tests through the demo server of your copy of v0.9. Make your
copy with `make lab EX=v0.9-N`, check it with `make grade EX=v0.9-N`.
"""

import os
import re
import resource
import sys
from pathlib import Path

import pytest

from support.demo import open_conn, roundtrip
from support.wire import (connect, frame_or_none, pack, read_until_closed,
                          silent)


@pytest.mark.exercise("v0.9-3")
def test_full_server_tells_the_client_why(stage, start_server):
    """v0.9-3, tell the client why: with MaxConn 1, a second client
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


@pytest.mark.exercise("v0.9-4")
def test_broadcast_reaches_every_client(stage, server):
    """v0.9-4, broadcast: three clients, and a fourth that has just
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
    assert not re.search(r"\bERROR\b", server.text()), (
        "a broadcast to a client that had left logged an ERROR line")


NPROC = 1000000  # RLIMIT_NPROC for the server: fewer than it needs


def thread_limit(nproc):
    """The most threads a server could start, as Linux says: the least of
    threads-max, pid_max and, for a user other than root, its
    RLIMIT_NPROC, nproc."""
    limits = [int(Path(f"/proc/sys/kernel/{name}").read_text())
              for name in ("threads-max", "pid_max")]
    if os.geteuid() != 0 and nproc != resource.RLIM_INFINITY:
        limits.append(nproc)
    return min(limits)


def start_with_low_nproc(start_server, conf):
    """Start a server that inherits an RLIMIT_NPROC of at most NPROC (root
    is not held to it; threads-max and pid_max still are)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NPROC)
    if soft == resource.RLIM_INFINITY or soft > NPROC:
        resource.setrlimit(resource.RLIMIT_NPROC, (NPROC, hard))
    try:
        return start_server(conf=conf)
    finally:
        resource.setrlimit(resource.RLIMIT_NPROC, (soft, hard))


THREADS_WARN = r"WARN.*MaxConn {} cannot be reached: it takes \d+ threads"


@pytest.mark.exercise("v0.9-5")
def test_max_conn_beyond_the_thread_limits_warns(stage, start_server):
    """v0.9-5, check the thread limits too: MaxConn 1,000,000 needs
    2,000,003 threads with WorkerPoolSize 2, more than Linux allows here
    (RLIMIT_NPROC lowered to 1,000,000): the WARN line `MaxConn 1000000
    cannot be reached: it takes 2000003 threads...`, and the server still
    serves. The default MaxConn, where the limits allow it, gives no such
    line."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the limits are Linux's")
    own = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    low = NPROC if own == resource.RLIM_INFINITY else min(own, NPROC)
    limit = thread_limit(low)
    if limit >= 2 * 1000000 + 3:
        pytest.skip(f"running as root, and this machine allows {limit} "
                    "threads: nothing to warn about")
    srv = start_with_low_nproc(start_server,
                               {"MaxConn": 1000000, "WorkerPoolSize": 2})
    assert re.search(THREADS_WARN.format(1000000), srv.text()), (
        "no WARN line 'MaxConn 1000000 cannot be reached: it takes 2000003 "
        f"threads...', though the system allows {limit} threads")
    roundtrip(stage, open_conn(stage, srv.port))

    limit = thread_limit(own)
    if 2 * 12000 + 3 <= limit:
        srv = start_server(conf={"WorkerPoolSize": 2})
        roundtrip(stage, open_conn(stage, srv.port))
        assert not re.search(THREADS_WARN.format(12000), srv.text()), (
            "the default MaxConn (12000 clients, 24003 threads) warns "
            f"though the system allows {limit} threads")
