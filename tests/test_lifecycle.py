"""What every stage's demo server must do, whatever its protocol: listen on
the port it says, serve clients with one thread each, give back every thread
and descriptor, survive rude clients, and stop cleanly on a signal."""

import signal
import socket
import struct

import pytest

from zinc import (connect, fd_count, open_conn, roundtrip, sanitizer,
                  thread_count, thread_names, threads_per_conn, wait_until)


def test_listens_on_the_port_it_prints(stage, server):
    assert server.port > 0
    sock = open_conn(stage, server.port)
    roundtrip(stage, sock)
    sock.close()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_stops_with_status_0(stage, server, sig):
    sock = open_conn(stage, server.port)
    roundtrip(stage, sock)
    assert server.stop(sig) == 0
    sock.close()


def test_port_in_use_is_an_error_not_a_hang(stage, server, start_server):
    other = start_server(port=server.port, wait=False)
    assert other.wait_exit() != 0
    assert "Address already in use" in other.text()
    roundtrip(stage, open_conn(stage, server.port))  # first one unharmed


def test_one_named_reader_thread_per_client(stage, server):
    pid = server.pid
    base_threads, base_fds = thread_count(pid), fd_count(pid)
    n = 5
    socks = [open_conn(stage, server.port) for _ in range(n)]
    for s in socks:
        roundtrip(stage, s)
    expected = base_threads + n * threads_per_conn(stage)
    assert wait_until(lambda: thread_count(pid) == expected), thread_names(pid)
    assert thread_count(pid, "zn-reader") == n
    assert fd_count(pid) == base_fds + n

    for s in socks:
        s.close()
    assert wait_until(lambda: thread_count(pid) == base_threads), \
        thread_names(pid)
    assert wait_until(lambda: fd_count(pid) == base_fds)


def test_connect_close_cycles_leak_nothing(stage, server):
    pid = server.pid
    base_threads, base_fds = thread_count(pid), fd_count(pid)
    for _ in range(1000):
        connect(server.port).close()
    roundtrip(stage, open_conn(stage, server.port))  # still serving
    assert wait_until(lambda: thread_count(pid) == base_threads, timeout=20), \
        thread_names(pid)
    assert wait_until(lambda: fd_count(pid) == base_fds, timeout=20)


def test_survives_a_client_that_resets(stage, server):
    rude = open_conn(stage, server.port)
    roundtrip(stage, rude)
    # SO_LINGER with a zero timeout: close() sends RST instead of FIN.
    rude.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    rude.close()
    polite = open_conn(stage, server.port)
    for _ in range(3):
        roundtrip(stage, polite)
    polite.close()
    assert wait_until(lambda: thread_count(server.pid, "zn-reader") == 0)


def test_every_thread_but_main_is_named(stage, server):
    if sanitizer(stage) == "thread":
        pytest.skip("ThreadSanitizer adds an unnamed thread of its own")
    socks = [open_conn(stage, server.port) for _ in range(3)]
    for s in socks:
        roundtrip(stage, s)
    names = thread_names(server.pid)
    assert wait_until(lambda: thread_count(server.pid) == len(names))
    unnamed = [n for tid, n in names.items()
               if tid != server.pid and not n.startswith("zn-")]
    assert unnamed == []
