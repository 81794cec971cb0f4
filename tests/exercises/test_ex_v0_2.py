"""Checks of the v0.2 chapter's exercises (docs/v0.2-connection.md):
zn_conn_send(), a handle function that closes, and a byte count in the
stop line. Each test talks to the demo server over TCP and reads its log,
except v0.2-1's, which builds a small C program (tests/api/ex_v0_2_1.c)
against your build/libzinc.a. Make your copy with `make lab EX=v0.2-1`,
check it with `make grade EX=v0.2-1`.
"""

import re

import pytest

from support.build import run_api
from support.demo import conn_id
from support.proc import wait_until
from support.wire import connect, is_closed, recv_exact


@pytest.mark.exercise("v0.2-1")
def test_conn_send(stage, tmp_path):
    """v0.2-1, zn_conn_send(): tests/api/ex_v0_2_1.c sends on a connection
    over a socketpair, then after a stop (-ENOTCONN) and to a client that
    has gone (-EPIPE)."""
    run = run_api(stage, "ex_v0_2_1", tmp_path, timeout=30)
    fails = [line for line in run.stderr.splitlines()
             if line.startswith("FAIL")]
    said = fails[0] if fails else "it said: " + (
        run.stderr.strip().splitlines() or ["nothing"])[-1]
    assert run.returncode == 0 and not fails, \
        "zn_conn_send() broke a promise (tests/api/ex_v0_2_1.c, status " \
        f"{run.returncode}): {said}"


@pytest.mark.exercise("v0.2-2")
def test_quit_closes_only_that_connection(server):
    """v0.2-2, a handle function that closes: `quit` ends the sender's
    connection, and another client still gets its echo."""
    quitter, other = connect(server.port), connect(server.port)
    quitter.sendall(b"hello")
    assert recv_exact(quitter, 5) == b"hello", \
        "'hello' did not come back: the demo no longer echoes"
    quitter.sendall(b"quit\n")
    assert is_closed(quitter), \
        "the server did not close the connection after 'quit': the demo's " \
        "handle function must return a negative errno for it"
    other.sendall(b"still here")
    assert recv_exact(other, 10) == b"still here", \
        "the other client lost its echo"


@pytest.mark.exercise("v0.2-3")
def test_stop_line_counts_bytes(server):
    """v0.2-3, count bytes: 100 bytes sent in pieces, `stopped after 100
    bytes`."""
    sock = connect(server.port)
    cid = conn_id(server, sock)
    for piece in (b"a" * 10, b"b" * 30, b"c" * 60):
        sock.sendall(piece)
        assert recv_exact(sock, len(piece)) == piece, \
            f"the {len(piece)}-byte piece did not come back: the echo is " \
            "broken"
    sock.close()
    assert wait_until(lambda: re.search(rf"conn {cid} stopped\b",
                                        server.text())), \
        f"no 'conn {cid} stopped' line after the client closed"
    line = re.search(rf"conn {cid} stopped.*", server.text()).group(0)
    assert re.search(rf"conn {cid} stopped after 100 bytes\b", line), \
        f"the stop line is {line!r}, expected 'conn {cid} stopped after " \
        "100 bytes': the connection does not count what it reads"
