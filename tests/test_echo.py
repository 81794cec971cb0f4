"""v0.1-v0.2: the demo server echoes every byte back."""

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from support.proc import thread_count, wait_until
from support.wire import connect, recv_exact

pytestmark = pytest.mark.lacks("router")


def echo(port, data):
    """Send data while reading the echo back (a writer thread, so neither
    side's socket buffer can fill up and stall both)."""
    sock = connect(port)
    sender = threading.Thread(target=sock.sendall, args=(data,))
    sender.start()
    got = recv_exact(sock, len(data))
    sender.join()
    sock.close()
    return got


def test_echo_64k_of_random_binary(server):
    data = os.urandom(64 * 1024)
    assert echo(server.port, data) == data


def test_50_concurrent_clients_each_get_their_own_bytes(server):
    blobs = [os.urandom(4096) + bytes([i]) * 100 for i in range(50)]
    with ThreadPoolExecutor(50) as pool:
        results = list(pool.map(lambda b: echo(server.port, b), blobs))
    assert results == blobs


def test_client_leaving_mid_stream_does_not_disturb_others(server):
    steady = connect(server.port)
    for i in range(20):
        # A client that sends 64 KiB and leaves without reading: the
        # server's writes to it fail (EPIPE/ECONNRESET), never SIGPIPE.
        quitter = connect(server.port)
        quitter.sendall(os.urandom(64 * 1024))
        quitter.close()
        msg = b"still here %d" % i
        steady.sendall(msg)
        assert recv_exact(steady, len(msg)) == msg
    steady.close()
    assert wait_until(lambda: thread_count(server.pid, "zn-reader") == 0)
