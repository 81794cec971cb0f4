"""Checks of the v0.7 chapter's exercises (docs/v0.7-read-write-split.md):
what a connection's writer does with a client that does not read, seen from
the client's side, the server's log and /proc, through the demo server or
programs built against the stage (tests/api/ex_v0_7_1.c, big_server.c).
Make your copy with `make lab EX=v0.7-N`, check it with `make grade
EX=v0.7-N`."""

import re
import struct

import pytest

from support.build import build_api, run_api
from support.demo import conn_id, connect_narrow, open_conn, roundtrip
from support.proc import (proc_status, server_read_all_but_is_stuck,
                          server_stalled, threads_gone, wait_until)
from support.wire import pack, push


@pytest.mark.exercise("v0.7-1")
def test_try_send_does_not_wait(stage, tmp_path):
    """v0.7-1, zn_conn_try_send_msg(): it returns -EAGAIN at once when the
    channel is full, and the replies queued before it arrive whole
    (tests/api/ex_v0_7_1.c)."""
    run = run_api(stage, "ex_v0_7_1", tmp_path, timeout=60)
    assert "TRY_SEND missing" not in run.stdout, \
        "the stage has no zn_conn_try_send_msg()"
    fails = [line for line in run.stderr.splitlines()
             if line.startswith("FAIL")]
    said = fails[0] if fails else "it said: " + (
        run.stderr.strip().splitlines() or ["nothing"])[-1]
    assert run.returncode == 0 and not fails, \
        f"tests/api/ex_v0_7_1.c exited with status {run.returncode}: {said}"


@pytest.mark.exercise("v0.7-2")
def test_outgoing_channel_bounded_in_bytes(stage, start_server, tmp_path):
    """v0.7-2, count bytes too: with MaxMsgChanBytes 4 MiB, 1 MiB replies
    to a client that never reads hold the server's memory to about 4 MiB,
    not to the 64 MiB it asked for (tests/api/big_server.c: msg id 10, body
    <u32 seq> <u32 size>, replies `size` bytes)."""
    exe = build_api(stage, "big_server", tmp_path)
    srv = start_server(conf={"MaxMsgChanBytes": 4 << 20}, exe=exe)
    rude = connect_narrow(stage, srv.port)
    roundtrip(stage, rude)  # the connection's threads are up
    rss0 = proc_status(srv.pid, "VmRSS")
    rude.sendall(b"".join(pack(10, struct.pack("<II", seq, 1 << 20))
                          for seq in range(64)))
    # Settled: the server either waits to queue more (it stopped reading
    # the requests) or has read them all and waits on the socket.
    assert wait_until(lambda: server_stalled(srv, rude) or
                      server_read_all_but_is_stuck(srv, rude), timeout=20), \
        "the server never settled in 20 s with 64 MiB of replies to send"
    grown = (proc_status(srv.pid, "VmRSS") - rss0) / 1024
    print(f"VmRSS grew by {grown:.1f} MiB")
    # Unbounded, it grows by 64 MiB or more; 32 leaves room for a
    # sanitizer's own memory.
    assert grown < 32, (f"VmRSS grew by {grown:.0f} MiB for 64 replies of "
                        "1 MiB: the outgoing channel is not bounded to "
                        "MaxMsgChanBytes (4 MiB)")
    rude.close()


@pytest.mark.exercise("v0.7-3")
def test_stalled_writer_is_noticed(stage, start_server):
    """v0.7-3, notice a stalled writer: a client that never reads (and
    never resets) is stopped by its writer's 500 ms send timeout, with one
    `WARN conn N: send:` line, while another client is served."""
    srv = start_server(conf={"MaxMsgChanLen": 4})
    other = open_conn(stage, srv.port)
    roundtrip(stage, other)
    rude = connect_narrow(stage, srv.port)
    cid = conn_id(srv, rude)
    rude.setblocking(False)
    data = pack(0) * 400000  # 3.2 MB of requests, 7 MB of replies
    warn = rf"WARN\s+conn {cid}: send: "
    state = {"sent": 0}

    def stuck_or_stopped():
        if state["sent"] is not None:
            state["sent"] = push(rude, data, state["sent"])
        return (state["sent"] is None or re.search(warn, srv.text()) or
                server_stalled(srv, rude))

    assert wait_until(stuck_or_stopped, timeout=10), \
        "the client never filled the server's outgoing path"
    roundtrip(stage, other)  # served while the rude one is stuck
    assert wait_until(lambda: re.search(warn, srv.text()), timeout=3), (
        f"no 'WARN  conn {cid}: send: ...' line 3 s after the writer got "
        "stuck: a writer that cannot write for 500 ms is not noticed")
    assert len(re.findall(warn, srv.text())) == 1, "more than one send line"
    assert wait_until(lambda: threads_gone(srv.pid, cid), timeout=2), \
        f"the threads of conn {cid} are still there 2 s after its send line"
    roundtrip(stage, other)
    rude.close()
