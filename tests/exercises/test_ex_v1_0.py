"""Checks of the v1.0 chapter's exercises (docs/v1.0-properties.md):
black-box tests through the demo server of your copy of v1.0 (msg id 3
sets a property, 4 gets one, 5 removes one). Make your copy with
`make lab EX=v1.0-N`, check it with `make grade EX=v1.0-N`.
"""

import pytest

from support.build import run_api
from support.demo import conn_id, open_conn, roundtrip
from support.wire import frame_or_none, pack, read_frame


# Bytes in each value: 15 of them fit in 64 KiB with the demo's Name and
# Stage, 16 do not, whatever those two hold.
VALUE = 4200


def set_prop(sock, key, value):
    """Set a property of this client's connection; the reply's body."""
    sock.sendall(pack(3, key + b"=" + value))
    msg_id, body = read_frame(sock)
    assert msg_id == 3, f"a set got a reply with msg id {msg_id}"
    return body


@pytest.mark.exercise("v1.0-2")
def test_property_bytes_are_bounded(stage, start_server):
    """v1.0-2, bound the bytes: fifteen values of 4,200 bytes fit in 64
    KiB (with Name and Stage), a sixteenth is refused with "ERR ...",
    replacing one with a value of the same size still fits, and replacing
    one with a shorter value makes room for the sixteenth."""
    srv = start_server(conf={"MaxPacketSize": 8192})
    sock = open_conn(stage, srv.port)
    for i in range(15):
        body = set_prop(sock, b"k%d" % i, b"v" * VALUE)
        assert body == b"OK", (
            f"value {i + 1} of 15 ({VALUE} bytes each) was answered {body!r}, "
            "not 'OK': 15 of them fit in 64 KiB")

    body = set_prop(sock, b"k15", b"v" * VALUE)
    assert body.startswith(b"ERR "), (
        f"a sixteenth value of {VALUE} bytes was answered {body!r}, not 'ERR "
        "too many bytes...': the values of a connection are not bounded to "
        "64 KiB")
    body = set_prop(sock, b"k1", b"w" * VALUE)
    assert body == b"OK", (
        f"replacing a {VALUE}-byte value by another got {body!r}: a replace "
        "must count only the difference")
    body = set_prop(sock, b"k0", b"short")
    assert body == b"OK", (
        f"replacing a {VALUE}-byte value by 'short' got {body!r}, not 'OK'")
    body = set_prop(sock, b"k15", b"v" * VALUE)
    assert body == b"OK", (
        f"a shorter value made room, yet the sixteenth got {body!r}")
    sock.sendall(pack(4, b"k1"))
    msg_id, body = read_frame(sock)
    assert (msg_id, body) == (4, b"w" * VALUE), (
        f"getting k1 back got msg id {msg_id} and {len(body)} bytes, not "
        f"msg id 4 and the {VALUE} bytes 'www...' it was replaced by")


@pytest.mark.exercise("v1.0-3")
def test_get_property_into_the_callers_buffer(stage, tmp_path):
    """v1.0-3, get into the caller's buffer: tests/api/ex_v1_0_3.c calls
    zn_conn_get_property_into() with a 10-byte value and 16, 10 and 9
    bytes of room (10, 10, -ERANGE with nothing copied), and a missing
    key (-ENOENT)."""
    run = run_api(stage, "ex_v1_0_3", tmp_path)
    fails = [line for line in run.stderr.splitlines()
             if line.startswith("FAIL")]
    assert run.returncode == 0 and run.stdout.strip() == "ok", (
        "zn_conn_get_property_into() broke its contract: "
        + (fails[0] if fails else run.stderr.strip()[-300:]))


@pytest.mark.exercise("v1.0-5")
def test_set_another_connections_property(stage, server):
    """v1.0-5, another connection's property: client A sends msg id 6
    "ID Name=..." naming client B and gets reply id 6 "OK", and B reads
    its own Name back. Naming a connection that has just left gets "OK"
    or "ERR no such connection", naming one that never was gets "ERR no
    such connection", and the server goes on serving."""
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
    answer = frame_or_none(a)
    assert answer in ((6, b"OK"), (6, b"ERR no such connection")), (
        f"msg id 6 naming a client that has just left got {answer!r}, not "
        "(6, b'OK') or (6, b'ERR no such connection')")
    a.sendall(pack(6, b"4000000000 Name=nobody"))
    answer = frame_or_none(a)
    assert answer == (6, b"ERR no such connection"), (
        f"msg id 6 naming connection 4000000000, which never was, got "
        f"{answer!r}, not (6, b'ERR no such connection')")
    roundtrip(stage, a)
