"""v0.3-v0.4: the ping router answers every chunk the server reads with
its three steps, in order: pre_handle, handle, post_handle."""

import os
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.demo import conn_id, stopped_lines
from support.proc import thread_count, wait_until
from support.stages import ROUTER_LINES
from support.wire import connect, recv_exact, reset_close, silent

pytestmark = [pytest.mark.has("router"), pytest.mark.lacks("framing")]


def test_three_steps_in_order(server):
    sock = connect(server.port)
    sock.sendall(b"ping")
    assert recv_exact(sock, len(ROUTER_LINES)) == ROUTER_LINES
    assert silent(sock)  # exactly one answer per chunk, nothing more


def test_every_chunk_gets_its_own_three_lines(server):
    sock = connect(server.port)
    for i in range(10):
        sock.sendall(b"chunk %d" % i)
        assert recv_exact(sock, len(ROUTER_LINES)) == ROUTER_LINES
    assert silent(sock)


def test_a_large_write_is_answered_per_chunk_read(server):
    # 10 KiB arrive in several reads (the reader's buffer is 512 bytes):
    # the reply is a whole number of three-line answers, never a torn one.
    sock = connect(server.port)
    sock.sendall(os.urandom(10 * 1024))
    got = recv_exact(sock, len(ROUTER_LINES))
    while not silent(sock, 0.5):
        got += recv_exact(sock, len(ROUTER_LINES))
    assert got == ROUTER_LINES * (len(got) // len(ROUTER_LINES))
    assert len(got) // len(ROUTER_LINES) >= 10 * 1024 // 512


def test_50_concurrent_clients(server):
    def client(i):
        sock = connect(server.port)
        for _ in range(5):
            sock.sendall(b"client %d" % i)
            assert recv_exact(sock, len(ROUTER_LINES)) == ROUTER_LINES
        sock.close()
        return True

    with ThreadPoolExecutor(50) as pool:
        assert all(pool.map(client, range(50)))
    assert wait_until(lambda: thread_count(server.pid, "zn-reader") == 0)


def test_client_leaving_mid_stream_does_not_disturb_others(server):
    steady = connect(server.port)
    for i in range(20):
        quitter = connect(server.port)
        quitter.sendall(os.urandom(16 * 1024))
        quitter.close()  # the router's writes to it fail; nobody else cares
        steady.sendall(b"still here %d" % i)
        assert recv_exact(steady, len(ROUTER_LINES)) == ROUTER_LINES
    assert wait_until(lambda: thread_count(server.pid, "zn-reader") == 1)


def test_clients_that_reset_mid_stream(server):
    """Clients send 256 KiB each and reset without reading a reply: the
    router's writes fail (never SIGPIPE), the server says `conn N stopped`
    exactly once per connection and goes on serving others."""
    other = connect(server.port)
    cids = []
    for _ in range(10):
        rude = connect(server.port)
        cids.append(conn_id(server, rude))
        rude.sendall(os.urandom(256 * 1024))
        reset_close(rude)
    assert wait_until(lambda: thread_count(server.pid, "zn-reader") == 1)
    other.sendall(b"still here")
    assert recv_exact(other, len(ROUTER_LINES)) == ROUTER_LINES
    assert [stopped_lines(server, cid) for cid in cids] == [1] * 10
