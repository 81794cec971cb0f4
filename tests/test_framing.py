"""v0.5 on: TLV framing. Whatever way TCP cuts the bytes, the server reads
whole messages: an 8-byte header (DataLen, MsgID, little-endian) and then
exactly DataLen bytes. A frame above MaxPacketSize, a truncated frame or a
reset closes only that connection."""

import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from zinc import (PING, is_closed, open_conn, pack, ping_reply, read_frame,
                  recv_exact, roundtrip, silent, since, thread_count,
                  wait_until)

pytestmark = pytest.mark.since("v0.5")


def test_reply_bytes_on_the_wire(stage, server):
    sock = open_conn(stage, server.port)
    sock.sendall(b"\x05\x00\x00\x00" b"\x00\x00\x00\x00" b"hello")
    want_id = b"\x01" if not since(stage, "v0.6") else b"\x00"
    # DataLen 18 then MsgID, both little-endian, then the text.
    assert recv_exact(sock, 26) == (b"\x12\x00\x00\x00" + want_id +
                                    b"\x00\x00\x00" + PING)


def test_frame_split_byte_by_byte(stage, server):
    sock = open_conn(stage, server.port)
    frame = pack(0, b"split into single bytes")
    for b in frame:
        sock.send(bytes([b]))
        time.sleep(0.001)  # let each byte travel as its own segment
    assert read_frame(sock) == ping_reply(stage)


def test_several_frames_in_one_write(stage, server):
    sock = open_conn(stage, server.port)
    sock.sendall(b"".join(pack(0, b"sticky %d" % i) for i in range(10)))
    for _ in range(10):
        assert read_frame(sock) == ping_reply(stage)
    assert silent(sock)


def test_empty_body_is_a_message(stage, server):
    sock = open_conn(stage, server.port)
    sock.sendall(pack(0))
    assert read_frame(sock) == ping_reply(stage)


def test_body_of_exactly_max_packet_size(stage, start_server):
    srv = start_server(conf={"MaxPacketSize": 4096})
    sock = open_conn(stage, srv.port)
    sock.sendall(pack(0, os.urandom(4096)))
    assert read_frame(sock) == ping_reply(stage)


def test_max_packet_size_plus_one_closes_only_that_connection(
        stage, start_server):
    srv = start_server(conf={"MaxPacketSize": 4096})
    other = open_conn(stage, srv.port)
    bad = open_conn(stage, srv.port)
    bad.sendall(pack(0, os.urandom(4097)))
    assert is_closed(bad)
    srv.wait_log(r"message of 4097 bytes exceeds MaxPacketSize 4096")
    roundtrip(stage, other)
    assert wait_until(lambda: thread_count(srv.pid, "zn-reader") == 1)


def test_max_packet_size_0_means_no_limit(stage, start_server):
    srv = start_server(conf={"MaxPacketSize": 0})
    sock = open_conn(stage, srv.port)
    sock.sendall(pack(0, os.urandom(100 * 1024)))
    assert read_frame(sock) == ping_reply(stage)


def test_huge_length_from_garbage_is_refused(stage, server):
    other = open_conn(stage, server.port)
    bad = open_conn(stage, server.port)
    bad.sendall(b"\xff" * 64)  # DataLen 0xffffffff: never allocated
    assert is_closed(bad)
    server.wait_log(r"message of 4294967295 bytes exceeds MaxPacketSize")
    roundtrip(stage, other)


@pytest.mark.parametrize("cut", [3, 8 + 5], ids=["header", "body"])
def test_truncated_frame_closes_only_that_connection(stage, server, cut):
    other = open_conn(stage, server.port)
    bad = open_conn(stage, server.port)
    bad.sendall(pack(0, b"0123456789")[:cut])
    bad.shutdown(socket.SHUT_WR)  # EOF in the middle of the frame
    assert is_closed(bad)
    what = "header" if cut < 8 else "body"
    server.wait_log(rf"truncated {what}")
    roundtrip(stage, other)
    assert wait_until(lambda: thread_count(server.pid, "zn-reader") == 1)


def test_2000_pipelined_requests_answered_in_order(stage, server):
    sock = open_conn(stage, server.port)
    ids = [i % 2 for i in range(2000)] if since(stage, "v0.6") else [0] * 2000
    sock.sendall(b"".join(pack(i, b"request") for i in ids))
    replies = [read_frame(sock)[0] for _ in ids]
    assert replies == ([1] * 2000 if not since(stage, "v0.6") else ids)
    assert silent(sock)


def test_100_concurrent_connections(stage, server):
    def client(i):
        sock = open_conn(stage, server.port)
        for j in range(10):
            sock.sendall(pack(0, b"client %d request %d" % (i, j)))
            assert read_frame(sock) == ping_reply(stage)
        return sock

    with ThreadPoolExecutor(100) as pool:
        socks = list(pool.map(client, range(100)))
    assert wait_until(lambda: thread_count(server.pid, "zn-reader") == 100)
    for s in socks:
        s.close()
    assert wait_until(lambda: thread_count(server.pid, "zn-reader") == 0)
