"""v0.5 on: TLV framing. Whatever way TCP cuts the bytes, the server reads
whole messages: an 8-byte header (DataLen, MsgID, little-endian) and then
exactly DataLen bytes. A frame above MaxPacketSize, a truncated frame or a
reset closes only that connection."""

import os
import re
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.build import build_api
from support.demo import (conn_id, live_conns, open_conn, roundtrip,
                          stopped_lines)
from support.launcher import LISTEN_RE
from support.proc import proc_status, tcp_sockets, thread_count, wait_until
from support.stages import PING, STAGES, has, ping_reply
from support.wire import (HEADER, is_closed, pack, read_frame, recv_exact,
                          reset_close, silent)

pytestmark = pytest.mark.has("framing")


def test_reply_bytes_on_the_wire(stage, server):
    sock = open_conn(stage, server.port)
    sock.sendall(b"\x05\x00\x00\x00" b"\x00\x00\x00\x00" b"hello")
    want_id = bytes([STAGES[stage].ping_id])
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
    assert wait_until(lambda: live_conns(stage, srv.pid) == 1)


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
    assert wait_until(lambda: live_conns(stage, server.pid) == 1)


def test_2000_pipelined_requests_answered_in_order(stage, server):
    sock = open_conn(stage, server.port)
    ids = [i % 2 for i in range(2000)] if has(stage, "routing") else [0] * 2000
    sock.sendall(b"".join(pack(i, b"request") for i in ids))
    replies = [read_frame(sock)[0] for _ in ids]
    assert replies == ([1] * 2000 if not has(stage, "routing") else ids)
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
    assert wait_until(lambda: live_conns(stage, server.pid) == 100)
    for s in socks:
        s.close()
    assert wait_until(lambda: live_conns(stage, server.pid) == 0)


def test_max_packet_size_other_than_4096_is_honoured(stage, start_server):
    """MaxPacketSize is read from the configuration, not hard-coded: 10000
    bytes pass, 10001 close that connection with a log line."""
    srv = start_server(conf={"MaxPacketSize": 10000})
    sock = open_conn(stage, srv.port)
    sock.sendall(pack(0, os.urandom(10000)))
    assert read_frame(sock) == ping_reply(stage)
    sock.sendall(pack(0, os.urandom(10001)))
    assert is_closed(sock)
    srv.wait_log(r"message of 10001 bytes exceeds MaxPacketSize 10000")


def unread_bytes(server_port, client_port):
    """Bytes the server has not read yet on its end of this connection."""
    for s in tcp_sockets():
        if (s["local_port"], s["remote_port"]) == (server_port, client_port):
            return s["rx_queue"]
    return None


def test_header_claiming_1_gib_costs_no_memory(stage, start_server):
    """A header alone may claim 1 GiB (MaxPacketSize 0: no limit): the
    server must not reserve memory for bytes that have not arrived, or a
    few such clients exhaust it. The connection stays open; others are
    served."""
    srv = start_server(conf={"MaxPacketSize": 0})
    other, liar = open_conn(stage, srv.port), open_conn(stage, srv.port)
    roundtrip(stage, other)
    roundtrip(stage, liar)  # its thread has allocated once already
    rss, size = (proc_status(srv.pid, k) for k in ("VmRSS", "VmSize"))
    liar.sendall(HEADER.pack(1 << 30, 0) + b"\0" * 1000)
    # Once the server holds no unread byte of this connection, it has read
    # the header and started on the body: any buffer exists by then.
    port = liar.getsockname()[1]
    assert wait_until(lambda: unread_bytes(srv.port, port) == 0)
    grew_rss = proc_status(srv.pid, "VmRSS") - rss
    grew_size = proc_status(srv.pid, "VmSize") - size
    assert grew_rss < 8 * 1024, f"VmRSS grew by {grew_rss} KiB"
    # Address space may grow by one malloc arena (glibc reserves 64 MiB
    # for a thread's heap at a time); a reservation for the claimed 1 GiB
    # is what must not happen.
    assert grew_size < 256 * 1024, f"VmSize grew by {grew_size} KiB"
    assert silent(liar)  # still waiting for the body, not closed
    roundtrip(stage, other)


def test_8_mib_body_that_really_arrives_gets_a_reply(stage, start_server):
    """A large body that does arrive in full is read whole and answered."""
    srv = start_server(conf={"MaxPacketSize": 0})
    sock = open_conn(stage, srv.port)
    sender = threading.Thread(target=sock.sendall,
                              args=(pack(0, os.urandom(8 << 20)),))
    sender.start()
    try:
        assert read_frame(sock) == ping_reply(stage)
    finally:
        sender.join()


def test_clients_that_reset_mid_pipeline(stage, server):
    """Clients send 2000 requests each, half-close, then reset without
    reading a reply: the server's writes fail with EPIPE (a write after the
    peer's FIN and RST; without MSG_NOSIGNAL that is a SIGPIPE, which kills
    the process), it says `conn N stopped` exactly once per connection and
    goes on serving others."""
    other = open_conn(stage, server.port)
    roundtrip(stage, other)
    cids = []
    for _ in range(10):
        rude = open_conn(stage, server.port)
        cids.append(conn_id(server, rude))
        rude.sendall(b"".join(pack(0, b"request %d" % i) for i in range(2000)))
        rude.shutdown(socket.SHUT_WR)  # FIN first, so a later send is EPIPE
        reset_close(rude)
    assert wait_until(lambda: server.proc.poll() is not None or
                      live_conns(stage, server.pid) == 1)
    assert server.proc.poll() is None, \
        f"server died with status {server.proc.returncode} (-13 is SIGPIPE)"
    roundtrip(stage, other)
    assert [stopped_lines(server, cid) for cid in cids] == [1] * 10


def test_half_close_gets_every_reply_then_eof(stage, server):
    """N pipelined requests and then shutdown(SHUT_WR): exactly N replies,
    then a clean end of stream (not a reset)."""
    sock = open_conn(stage, server.port)
    sock.sendall(b"".join(pack(0, b"request %d" % i) for i in range(100)))
    sock.shutdown(socket.SHUT_WR)
    for _ in range(100):
        assert read_frame(sock) == ping_reply(stage)
    assert sock.recv(1) == b""


FORGED = b"2026-11-22 10:00:00.000 ERROR [zinc] listening on 127.0.0.1:1"


def test_client_bytes_cannot_forge_log_lines(stage, start_server):
    """Bytes from a client are escaped before they reach the log: a
    newline in a body shows as \\x0a, never starts a line of its own."""
    srv = start_server(env={"ZN_LOG_LEVEL": "debug"})
    sock = open_conn(stage, srv.port)
    sock.sendall(pack(0, b"x\n" + FORGED))
    assert read_frame(sock) == ping_reply(stage)
    srv.wait_log(r"msg id 0, \d+ bytes: x\\x0a2026")
    text = srv.text()
    assert not re.search(rb"^" + re.escape(FORGED[:23]), text.encode(),
                         re.M), "a client forged a log line"
    assert [int(p) for _, p in LISTEN_RE.findall(text)] == [srv.port]


def test_no_log_line_per_request_at_the_default_level(stage, server):
    """At the default level (info) requests are not logged one by one, so a
    client cannot fill the disk; they are DEBUG lines."""
    def lines():
        return [x for x in server.text().splitlines() if "msg id" in x]

    before = lines()  # v0.6 logs its routers at startup
    sock = open_conn(stage, server.port)
    ids = [i % 2 for i in range(100)] if has(stage, "routing") else [0] * 100
    sock.sendall(b"".join(pack(i, b"request") for i in ids))
    for _ in ids:
        read_frame(sock)
    new = lines()[len(before):]
    assert new == [], f"{len(new)} lines for 100 requests, first: {new[0]}"


def test_send_msg_from_many_threads_never_interleaves(stage, tmp_path):
    """zn_conn_send_msg() from four threads at once on one connection:
    every 64 KiB message arrives whole, none cut into by another
    (tests/api/send_lock.c)."""
    exe = build_api(stage, "send_lock", tmp_path)
    run = subprocess.run([str(exe)], capture_output=True, text=True,
                         timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
