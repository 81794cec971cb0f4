"""The checked exercises of the v0.5 chapter (docs/v0.5-message.md,
"Exercises"): the demo server, spoken to over TLV frames, or a program
built against the stage (tests/api/ex_v0_5_2.c), must do what each
exercise asks. Make a copy of v0.5 with `make lab EX=v0.5-1`, do the
exercise there, and check it with `make grade EX=v0.5-1`."""

import os
import subprocess

import pytest

from support.build import build_api
from support.wire import connect, pack, read_frame, silent


@pytest.mark.exercise("v0.5-1")
def test_echo_with_the_same_id(stage, server):
    """Exercise 1: the demo replies with the request's own id and data."""
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
    """Exercise 2: zn_conn_send_msg() sends the body from the caller's
    buffer with writev() and loops over short counts
    (tests/api/ex_v0_5_2.c cuts every call short)."""
    exe = build_api(stage, "ex_v0_5_2", tmp_path)
    run = subprocess.run([str(exe)], capture_output=True, text=True,
                         timeout=60)
    print(run.stdout, run.stderr)
    assert run.returncode == 0, "tests/api/ex_v0_5_2.c failed"
    assert "body sent from the caller's buffer: yes" in run.stdout, (
        "no writev() or sendmsg() call pointed at the caller's body: "
        "the body is copied (or not sent with writev())")
    assert "WRITEV send returned 0" in run.stdout, \
        "zn_conn_send_msg() did not return 0"
    assert "WRITEV frame whole" in run.stdout, (
        "the 100 KiB frame did not arrive whole when writev() returned short "
        "counts: the loop does not advance through the iovecs correctly")
