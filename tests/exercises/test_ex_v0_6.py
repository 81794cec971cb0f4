"""Checks of the v0.6 chapter's exercises (docs/v0.6-multi-router.md): the
demo server, spoken to over TLV frames, must route and answer as each
exercise asks. Make your copy with `make lab EX=v0.6-N`, check it with
`make grade EX=v0.6-N`."""

import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.proc import wait_until
from support.stages import hello_reply, ping_reply
from support.wire import connect, frame_or_none, is_closed, pack, silent


@pytest.mark.exercise("v0.6-1")
def test_default_router(stage, server):
    """v0.6-1, a default router: an id with no router of its own goes to
    the default router, which replies with id 0xFFFFFFFF and `unknown msg
    id N`."""
    sock = connect(server.port)
    sock.sendall(pack(7, b"x"))
    got = frame_or_none(sock)
    assert got is not None, \
        "no reply to msg id 7 within 3 s: the demo has no default router"
    assert got == (0xFFFFFFFF, b"unknown msg id 7"), (
        f"msg id 7 is answered with {got}, not (0xFFFFFFFF, "
        "'unknown msg id 7')")
    sock.sendall(pack(1, b"a known id still goes to its own router"))
    got = frame_or_none(sock)
    assert got == hello_reply(stage), (
        f"msg id 1 is answered with {got}, not {hello_reply(stage)}: a known "
        "id must still go to its own router")


@pytest.mark.exercise("v0.6-2")
def test_unknown_ids_are_bounded(stage, server):
    """v0.6-2, bound the unknown ids: the fourth unknown id on a connection
    closes it, with one log line; the first three are only logged."""
    sock = connect(server.port)
    for msg_id in (7, 8, 9):
        sock.sendall(pack(msg_id, b"nobody handles this"))
    assert wait_until(lambda: re.search(r"no router for msg id 9\b",
                                        server.text())), \
        "no 'no router for msg id 9' line after three unknown msg ids"
    assert silent(sock), ("the server replied to, or closed, a connection "
                          "after only three unknown msg ids")
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
    assert frame_or_none(other) == ping_reply(stage), \
        "the server does not serve others after closing one connection"


@pytest.mark.exercise("v0.6-3")
def test_echo_router_with_state(start_server):
    """v0.6-3, an echo router with state: a router for id 2 echoes the data
    back with id 2 and counts, across every reader thread, the messages it
    has echoed, logging `echo router: N messages echoed` at DEBUG."""
    srv = start_server(env={"ZN_LOG_LEVEL": "debug"})

    def client(n):
        sock = connect(srv.port)
        for i in range(100):
            body = b"client %d message %d " % (n, i) + os.urandom(i)
            sock.sendall(pack(2, body))
            got = frame_or_none(sock)
            assert got is not None, ("no reply to msg id 2 within 3 s: "
                                     "the demo has no router for id 2")
            assert got == (2, body), \
                "msg id 2 is not answered with id 2 and the request's data"
        sock.close()

    def counts():
        return [int(n) for n in re.findall(
            r"echo router: (\d+) messages echoed", srv.text())]

    with ThreadPoolExecutor(10) as pool:
        list(pool.map(client, range(10)))
    wait_until(lambda: max(counts(), default=0) >= 1000)
    got = max(counts(), default=None)
    assert got is not None, ("no DEBUG line 'echo router: N messages "
                             "echoed': the echo router does not log its count")
    assert got == 1000, (
        f"the highest count logged is {got}, not 1000 (10 clients times 100 "
        "messages): the echo router " +
        ("counts a message more than once" if got > 1000 else
         "loses counts between threads"))
