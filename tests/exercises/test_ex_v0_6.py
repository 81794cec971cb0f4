"""The checked exercises of the v0.6 chapter (docs/v0.6-multi-router.md,
"Exercises"): the demo server, spoken to over TLV frames, must route and
answer as each exercise asks. Make a copy of v0.6 with `make lab
EX=v0.6-1`, do the exercise there, and check it with `make grade
EX=v0.6-1` (likewise v0.6-2, v0.6-3)."""

import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.proc import wait_until
from support.wire import connect, is_closed, pack, read_frame, silent


@pytest.mark.exercise("v0.6-1")
def test_default_router(stage, server):
    """Exercise 1: an id with no router of its own goes to the default
    router, which replies with id 0xFFFFFFFF and `unknown msg id N`."""
    sock = connect(server.port)
    sock.sendall(pack(7, b"x"))
    assert not silent(sock, 2.0), \
        "no reply to msg id 7: the demo has no default router"
    assert read_frame(sock) == (0xFFFFFFFF, b"unknown msg id 7"), \
        "msg id 7 is not answered with (0xFFFFFFFF, 'unknown msg id 7')"
    sock.sendall(pack(1, b"a known id still goes to its own router"))
    assert read_frame(sock) == (1, b"Hello Zinc Router " + stage.encode())


@pytest.mark.exercise("v0.6-2")
def test_unknown_ids_are_bounded(stage, server):
    """Exercise 2: the fourth unknown id on a connection closes it, with
    one log line; the first three are only logged."""
    sock = connect(server.port)
    for msg_id in (7, 8, 9):
        sock.sendall(pack(msg_id, b"nobody handles this"))
    server.wait_log(r"no router for msg id 9\b")
    assert silent(sock), "a reply or a close after three unknown ids"
    sock.sendall(pack(10, b"one too many"))
    assert is_closed(sock), \
        "the connection stays open after a fourth unknown msg id"
    closing = r"conn \d+: too many unknown msg ids, closing"
    assert wait_until(lambda: re.search(closing, server.text())), \
        "no 'conn N: too many unknown msg ids, closing' line"
    text = server.text()
    assert len(re.findall(r"no router for msg id", text)) == 3, \
        "not exactly three 'no router for msg id' lines"
    assert len(re.findall(closing, text)) == 1, "more than one closing line"
    other = connect(server.port)
    other.sendall(pack(0))
    assert read_frame(other) == (0, b"ping...ping...ping"), \
        "the server does not serve others after closing one connection"


@pytest.mark.exercise("v0.6-3")
def test_echo_router_with_state(stage, start_server):
    """Exercise 3: a router for id 2 echoes the data back with id 2 and
    counts, across every reader thread, the messages it has echoed."""
    srv = start_server(env={"ZN_LOG_LEVEL": "debug"})

    def client(n):
        sock = connect(srv.port)
        for i in range(100):
            body = b"client %d message %d " % (n, i) + os.urandom(i)
            sock.sendall(pack(2, body))
            assert i > 0 or not silent(sock, 2.0), \
                "no reply to msg id 2: the demo has no router for id 2"
            assert read_frame(sock) == (2, body), \
                "msg id 2 is not answered with id 2 and the request's data"
        sock.close()

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(client, range(10)))
    assert wait_until(lambda: re.search(r"(?i)echo.*\b1000\b", srv.text())), \
        ("no log line shows 1000 messages echoed (10 clients times 100): "
         "the echo router does not count what it echoes, or loses counts")
