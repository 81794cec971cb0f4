"""Checks of the v0.5 chapter's exercises (docs/v0.5-message.md): the demo
server, spoken to over TLV frames, echoes each message with its own id,
and zn_conn_send_msg() sends the body from the caller's buffer, whatever
short counts writev() returns (a program built against the stage,
tests/api/ex_v0_5_2.c). Make your copy with `make lab EX=v0.5-1`, check it
with `make grade EX=v0.5-1`.
"""

import os

import pytest

from support.build import run_api
from support.wire import connect, pack, read_frame, silent


@pytest.mark.exercise("v0.5-1")
def test_echo_with_the_same_id(server):
    """v0.5-1, echo with the same id: the demo replies with the request's
    own id and data, an empty body included."""
    sock = connect(server.port)
    body = os.urandom(1000)
    sock.sendall(pack(5, body))
    got_id, got = read_frame(sock)
    assert got_id == 5, (f"the reply has msg id {got_id}, not 5: the demo "
                         "does not answer with the request's own id")
    assert got == body, ("the reply's body is not the 1000 bytes sent: "
                         "the demo does not echo the request's data")
    sock.sendall(pack(9))
    assert read_frame(sock) == (9, b""), \
        "an empty message with id 9 is not echoed as (9, empty body)"
    assert silent(sock), "more than one reply per message"


@pytest.mark.exercise("v0.5-2")
def test_send_with_writev(stage, tmp_path):
    """v0.5-2, send with writev(): zn_conn_send_msg() sends a 100 KiB body
    from the caller's buffer with writev() or sendmsg() and loops over
    short counts (tests/api/ex_v0_5_2.c defines both calls and cuts every
    one short)."""
    run = run_api(stage, "ex_v0_5_2", tmp_path, timeout=60)
    fails = [line for line in run.stderr.splitlines()
             if line.startswith("FAIL")]
    said = fails[0] if fails else "it said: " + (
        run.stderr.strip().splitlines() or ["nothing"])[-1]
    assert run.returncode == 0 and not fails, \
        f"tests/api/ex_v0_5_2.c exited with status {run.returncode}: {said}"
