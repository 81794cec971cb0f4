"""Checks of the v0.1 chapter's exercises (docs/v0.1-basic-server.md): the
echo server counts its live clients and drops the idle ones. Each test
talks to the demo server over TCP and reads its log. Make your copy with
`make lab EX=v0.1-1`, check it with `make grade EX=v0.1-1`.
"""

import re

import pytest

from support.proc import thread_count, wait_until
from support.wire import connect, is_closed, recv_exact


@pytest.mark.exercise("v0.1-1")
def test_disconnect_line_counts_live_clients(server):
    """v0.1-1, count live clients: three clients, one leaves, 2 are left."""
    clients = [connect(server.port) for _ in range(3)]
    for i, sock in enumerate(clients):  # an echo: each one is served now
        sock.sendall(b"hi %d" % i)
        assert recv_exact(sock, 4) == b"hi %d" % i, \
            f"client {i} did not get its 4 bytes back: the echo is broken"
    clients[0].close()
    assert wait_until(lambda: re.search(r"disconnected, 2 left",
                                        server.text())), \
        "no 'client N disconnected, 2 left' line after 1 of 3 clients " \
        "left: the server does not count its live clients"
    for sock in clients[1:]:
        sock.close()
    assert wait_until(lambda: re.search(r"disconnected, 0 left",
                                        server.text())), \
        "no 'disconnected, 0 left' line once every client left"


@pytest.mark.exercise("v0.1-2")
def test_idle_client_is_dropped(server):
    """v0.1-2, drop idle clients: a client that says nothing for 2 s is
    closed, its thread ends, and the log says why."""
    sock = connect(server.port)
    assert is_closed(sock, timeout=5), \
        "a client that sent nothing for 5 s is still connected: no " \
        "SO_RCVTIMEO on the accepted socket?"
    assert wait_until(lambda: thread_count(server.pid, "zn-reader") == 0), \
        "the idle client's zn-reader thread is still running"
    assert re.search(r"client \d+ idle, closing", server.text()), \
        "no 'client N idle, closing' line: the timeout is logged as " \
        "something else (a read error?)"
