"""Checks of the v0.3 chapter's exercises (docs/v0.3-router.md): a router
that overrides one step, a router with state, and the framework skipping
the steps after a stop. Each test talks to the demo server (or, for
v0.3-3, a server built from tests/api/ex_v0_3_3.c as well) over TCP and
reads its log. Make your copy with `make lab EX=v0.3-1`, check it with
`make grade EX=v0.3-1`.
"""

import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.build import build_api
from support.demo import conn_id
from support.proc import thread_count, wait_until
from support.stages import ROUTER_LINES
from support.wire import connect, is_closed, recv_exact, silent


@pytest.mark.exercise("v0.3-1")
def test_only_handle_is_overridden(server):
    """v0.3-1, override one step: each chunk gets only the handle line."""
    sock = connect(server.port)
    for i in range(2):
        sock.sendall(b"chunk %d" % i)
        got = recv_exact(sock, 19)
        assert got == b"ping...ping...ping\n", \
            f"the reply starts with {got!r}: the demo's router still has " \
            "its own pre_handle (only .handle should be set)"
        assert silent(sock), \
            "more bytes after the ping line: the demo's router still has " \
            "its own post_handle (only .handle should be set)"


@pytest.mark.exercise("v0.3-2")
def test_router_counts_every_chunk(server):
    """v0.3-2, a router with state: 50 clients send 5 chunks each at once,
    one more chunk follows, and the log's running total reaches 251."""

    def client(i):
        sock = connect(server.port)
        for _ in range(5):
            sock.sendall(b"client %d" % i)
            assert recv_exact(sock, len(ROUTER_LINES)) == ROUTER_LINES, \
                "a chunk did not get the router's three lines back"
        sock.close()

    with ThreadPoolExecutor(50) as pool:
        list(pool.map(client, range(50)))
    sock = connect(server.port)
    sock.sendall(b"one more")
    assert recv_exact(sock, len(ROUTER_LINES)) == ROUTER_LINES, \
        "the 251st chunk did not get the router's three lines back"

    def highest():
        counts = re.findall(r"\bchunk (\d+)\b", server.text())
        return max(map(int, counts), default=None)

    wait_until(lambda: highest() == 251)
    assert highest() is not None, \
        "no 'chunk K' line in the log: the router does not count chunks"
    assert highest() == 251, \
        f"the count reached {highest()} after 251 chunks: is the counter " \
        "atomic, and shared by every connection?"


@pytest.mark.exercise("v0.3-3")
def test_dispatch_skips_steps_after_a_stop(stage, start_server, tmp_path):
    """v0.3-3, skip the rest in the framework: once a step stops the
    connection, zn_router_dispatch() runs no further step; and the demo,
    without its own check, still warns once per failed connection."""
    # tests/api/ex_v0_3_3.c: pre_handle stops the connection on "quit";
    # handle and post_handle log every call.
    srv = start_server(exe=build_api(stage, "ex_v0_3_3", tmp_path))
    sock = connect(srv.port)
    cid = conn_id(srv, sock)
    sock.sendall(b"hello")
    assert recv_exact(sock, 3) == b"ok\n", \
        "no 'ok' for 'hello': pre_handle did not run (or wrote elsewhere)"
    srv.wait_log(rf"conn {cid}: post_handle ran")
    sock.sendall(b"quit")
    assert is_closed(sock), \
        "the connection stayed open after pre_handle stopped it on 'quit'"
    assert wait_until(lambda: thread_count(srv.pid, "zn-reader") == 0), \
        "the zn-reader thread of the stopped connection is still running"
    for step in ("handle", "post_handle"):
        calls = re.findall(rf"conn {cid}: {step} ran", srv.text())
        assert len(calls) == 1, \
            f"{step} ran after pre_handle stopped the connection: " \
            "zn_router_dispatch() must skip the steps after a stop"

    # The demo: clients that leave mid-stream make its writes fail.
    demo = start_server()
    steady = connect(demo.port)
    for i in range(20):
        quitter = connect(demo.port)
        quitter.sendall(os.urandom(16 * 1024))
        quitter.close()
        steady.sendall(b"still here %d" % i)
        assert recv_exact(steady, len(ROUTER_LINES)) == ROUTER_LINES, \
            "the steady client lost its three lines while others left"
    assert wait_until(lambda: thread_count(demo.pid, "zn-reader") == 1), \
        "the zn-reader threads of the clients that left are still running"
    ids = re.findall(r"conn (\d+): write:", demo.text())
    twice = sorted({i for i in ids if ids.count(i) > 1})
    assert not twice, \
        f"connections {twice} warn of a failed write more than once: a " \
        "step ran after an earlier one had stopped the connection"
