"""Checks of the exercises of chapter v1.0 (docs/v1.0-properties.md):
black-box tests through the demo server of your copy of v1.0 (msg id 3
sets a property, 4 gets one, 5 removes one). Make the copy with
`make lab EX=v1.0-N`, change it as the exercise asks, and check it with
`make grade EX=v1.0-N`.
"""

import socket
import subprocess

import pytest

from support.build import build_api
from support.demo import conn_id, open_conn, roundtrip
from support.wire import pack, read_frame


VALUE = 4096  # bytes in each value: 16 of them are more than 64 KiB


def set_prop(sock, key, value):
    """Set a property of this client's connection; the reply's body."""
    sock.sendall(pack(3, key + b"=" + value))
    msg_id, body = read_frame(sock)
    assert msg_id == 3, f"a set got a reply with msg id {msg_id}"
    return body


@pytest.mark.exercise("v1.0-2")
def test_property_bytes_are_bounded(stage, start_server):
    """Exercise 2, bound the bytes: fifteen 4 KiB values fit in 64 KiB
    (with Name and Stage), a sixteenth is refused with "ERR ...",
    replacing one with a value of the same size still fits, and replacing
    one with a shorter value makes room for the sixteenth."""
    srv = start_server(conf={"MaxPacketSize": 8192})
    sock = open_conn(stage, srv.port)
    for i in range(15):
        body = set_prop(sock, b"k%d" % i, b"v" * VALUE)
        assert body == b"OK", f"value {i + 1} of 15 (4 KiB each): {body!r}"

    body = set_prop(sock, b"k15", b"v" * VALUE)
    assert body.startswith(b"ERR "), (
        f"a sixteenth 4 KiB value was answered {body!r}, not 'ERR too many "
        "bytes': the values of a connection are not bounded to 64 KiB")
    body = set_prop(sock, b"k1", b"w" * VALUE)
    assert body == b"OK", (
        f"replacing a 4 KiB value by another got {body!r}: a replace must "
        "count only the difference")
    assert set_prop(sock, b"k0", b"short") == b"OK"
    body = set_prop(sock, b"k15", b"v" * VALUE)
    assert body == b"OK", (
        f"a shorter value made room, yet the sixteenth got {body!r}")
    sock.sendall(pack(4, b"k1"))
    assert read_frame(sock) == (4, b"w" * VALUE)


@pytest.mark.exercise("v1.0-3")
def test_get_property_into_the_callers_buffer(stage, tmp_path):
    """Exercise 3, get into the caller's buffer: tests/api/ex_v1_0_3.c
    calls zn_conn_get_property_into() with a 10-byte value and 16, 10 and
    9 bytes of room (10, 10, -ERANGE with nothing copied), and a missing
    key (-ENOENT)."""
    exe = build_api(stage, "ex_v1_0_3", tmp_path)
    run = subprocess.run([str(exe)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "ok", (
        "zn_conn_get_property_into() broke its contract:\n" + run.stderr)


def frame_or_none(sock, timeout=3.0):
    """The next frame, or None when none comes within the timeout."""
    sock.settimeout(timeout)
    try:
        return read_frame(sock)
    except socket.timeout:
        return None


@pytest.mark.exercise("v1.0-5")
def test_set_another_connections_property(stage, server):
    """Exercise 5, another connection's property: client A sends msg id 6
    "ID Name=..." naming client B, and B reads its own Name back. Naming a
    connection that has just left succeeds or says "ERR no such
    connection", and the server goes on serving."""
    a, b = open_conn(stage, server.port), open_conn(stage, server.port)
    a.sendall(pack(6, b"%d Name=set by A" % conn_id(server, b)))
    answer = frame_or_none(a)
    assert answer == (6, b"OK"), (
        f"msg id 6 naming another client got {answer!r}, not (6, b'OK')")
    b.sendall(pack(4, b"Name"))
    assert read_frame(b) == (4, b"set by A"), "B's Name is not what A set"

    gone = open_conn(stage, server.port)
    gone_id = conn_id(server, gone)
    gone.close()
    a.sendall(pack(6, b"%d Name=late" % gone_id))
    msg_id, body = read_frame(a)
    assert msg_id == 6 and body in (b"OK", b"ERR no such connection"), body
    a.sendall(pack(6, b"4000000000 Name=nobody"))
    assert read_frame(a) == (6, b"ERR no such connection")
    roundtrip(stage, a)
