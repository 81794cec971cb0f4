"""Talking to a stage's demo server as its clients do: connecting (and
taking the greeting from v0.9 on), one round trip in whatever the stage
speaks, and reading connection ids and end lines from its log."""

import re
import socket

from support.proc import conn_sockets, thread_count
from support.stages import GREETING, ROUTER_LINES, STAGES, has, ping_reply
from support.wire import TIMEOUT, connect, pack, read_frame, recv_exact


def take_greeting(stage, sock):
    """Read the greeting off a new connection where the stage sends one
    (v0.9 on); return the socket."""
    if has(stage, "greeting"):
        assert read_frame(sock) == GREETING
    return sock


def open_conn(stage, port):
    """Connect to the demo server (from v0.9 its greeting is read here)."""
    return take_greeting(stage, connect(port))


def connect_narrow(stage, port):
    """A client with a narrow receive path: a 4 KiB receive buffer and a
    536-byte MSS, both set before connect(). The kernel then parks only
    about 160 KiB of replies for it (with the defaults it grows the
    server's send buffer to megabytes), so a client that does not read
    soon makes the server itself hold the replies. From v0.9 the greeting
    is read here, as open_conn() does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    return take_greeting(stage, sock)


def roundtrip(stage, sock, tag=b"x"):
    """One request/reply with the stage's demo server; asserts the reply."""
    demo = STAGES[stage].demo
    if demo == "echo":
        sock.sendall(tag)
        got, want = recv_exact(sock, len(tag)), tag
    elif demo == "lines":
        sock.sendall(tag)
        got, want = recv_exact(sock, len(ROUTER_LINES)), ROUTER_LINES
    else:
        sock.sendall(pack(0, tag))
        got, want = read_frame(sock), ping_reply(stage)
    assert got == want, \
        f"{stage}'s demo answers {tag!r} with {want!r}; this one sent {got!r}"


def conn_id(server, sock):
    """The id the server gave this client, from its 'conn N started, remote
    IP:PORT' log line (v0.2+)."""
    port = sock.getsockname()[1]
    return int(server.wait_log(
        rf"conn (\d+) started, remote 127\.0\.0\.1:{port}\b").group(1))


def stopped_lines(server, cid):
    """How many times the log says `conn N stopped` for connection cid."""
    return len(re.findall(rf"\bconn {cid} stopped\b", server.text()))


def live_conns(stage, pid):
    """How many connections the server still serves: its reader threads
    where every connection has one (v0.1..v1.0), else (v1.1, the event
    loop) the connected sockets it holds."""
    if STAGES[stage].threads_per_conn > 0:
        return thread_count(pid, "zn-reader")
    return conn_sockets(pid)
