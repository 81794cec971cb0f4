"""The checked exercises of v0.2 (docs/v0.2-connection.md, "Exercises"):
zn_conn_send(), a handle function that closes, and a byte count in the
stop line. Each test talks to the demo server over TCP and reads its log,
except v0.2-1's, which builds a small C program (tests/api/ex_v0_2_1.c)
against your build/libzinc.a. Make your copy with `make lab EX=v0.2-3`
(or v0.2-1, v0.2-2), do the exercise there, and check it with
`make grade EX=v0.2-3`.
"""

import re
import subprocess

import pytest

from support.build import build_api
from support.demo import conn_id
from support.proc import wait_until
from support.wire import connect, is_closed, recv_exact


@pytest.mark.exercise("v0.2-1")
def test_conn_send(stage, tmp_path):
    """v0.2-1, zn_conn_send(): tests/api/ex_v0_2_1.c sends on a connection
    over a socketpair, then after a stop (-ENOTCONN) and to a client that
    has gone (-EPIPE)."""
    exe = build_api(stage, "ex_v0_2_1", tmp_path)
    run = subprocess.run([str(exe)], capture_output=True, text=True,
                         timeout=30)
    print(run.stdout, run.stderr)
    fails = [l for l in run.stderr.splitlines() if l.startswith("FAIL")]
    assert run.returncode == 0 and not fails, \
        "zn_conn_send() does not keep its promise: " + "; ".join(fails)


@pytest.mark.exercise("v0.2-2")
def test_quit_closes_only_that_connection(server):
    """v0.2-2, a handle function that closes: `quit` ends the sender's
    connection, and another client still gets its echo."""
    quitter, other = connect(server.port), connect(server.port)
    quitter.sendall(b"hello")
    assert recv_exact(quitter, 5) == b"hello"
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
        assert recv_exact(sock, len(piece)) == piece
    sock.close()
    assert wait_until(lambda: re.search(rf"conn {cid} stopped\b",
                                        server.text()))
    line = re.search(rf"conn {cid} stopped.*", server.text()).group(0)
    assert re.search(rf"conn {cid} stopped after 100 bytes\b", line), \
        f"the stop line is {line!r}, expected 'conn {cid} stopped after " \
        "100 bytes': the connection does not count what it reads"
