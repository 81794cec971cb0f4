"""zc, the command-line client (client/zc.c, built by `make` as build/zc):
its arguments, each subcommand against the demo servers, and what only a
small Python server of the test's own can provoke (silence, a restart, a
lost connection, a frame too large, a push before each reply).

Tests without a `stage` argument run once, whatever --stage says; the
others run against each selected stage their has/lacks markers allow. The
client library underneath zc has its own tests (client/tests/ and
tests/test_unit_programs.py); here zc is a black box: its output, its exit
status, and how long it takes."""

import re
import socket
import subprocess
import threading
import time

import pytest

from support.build import ROOT
from support.launcher import VALGRIND
from support.stages import PING, has
from support.wire import pack, read_frame

ZC = ROOT / "build" / "zc"
RUN_TIMEOUT = 20.0  # seconds any zc run may take before the test fails
# Seconds of silence that end `watch` and `raw` here: long enough for a
# demo server to answer, short enough to keep the file quick.
QUIET = 2.0 if VALGRIND else 0.3
GREETING = "id 2, 21 bytes: DoConnection BEGIN..."


def zc(*args, stdin=None):
    """Run build/zc with args; return the CompletedProcess (text), with
    .seconds, how long it ran."""
    assert ZC.exists(), f"{ZC} is missing: run `make`"
    start = time.monotonic()
    run = subprocess.run([str(ZC)] + [str(a) for a in args], input=stdin,
                         capture_output=True, text=True, timeout=RUN_TIMEOUT)
    run.seconds = time.monotonic() - start
    print(f"$ zc {' '.join(map(str, args))}\n-> {run.returncode}\n"
          f"{run.stdout}{run.stderr}")
    assert "Sanitizer" not in run.stderr, run.stderr
    assert "runtime error" not in run.stderr, run.stderr
    return run


def addr(port):
    return f"127.0.0.1:{port}"


# ---- small Python servers ----

class FakeServer:
    """A TCP server on 127.0.0.1 (port 0: any free port) that runs
    handler(sock) on a thread per connection, and keeps what it read in
    .frames when the handler uses read()."""

    def __init__(self, handler, port=0):
        self.handler = handler
        self.frames = []
        self.conns = []
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(16)
        self.lsock.settimeout(0.05)
        self.port = self.lsock.getsockname()[1]
        self.stopping = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopping.is_set():
            try:
                sock, _ = self.lsock.accept()
            except socket.timeout:
                continue
            sock.settimeout(RUN_TIMEOUT)
            self.conns.append(sock)
            threading.Thread(target=self._serve, args=(sock,),
                             daemon=True).start()

    def _serve(self, sock):
        try:
            self.handler(self, sock)
        except (OSError, AssertionError):
            pass  # the client went away: the test looks at zc's side

    def read(self, sock):
        """One frame from the client, kept in .frames."""
        frame = read_frame(sock)
        self.frames.append(frame)
        return frame

    def stop(self):
        """Stop listening and close every connection."""
        self.stopping.set()
        self.thread.join()
        self.lsock.close()
        for sock in self.conns:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()


@pytest.fixture
def fake():
    """Factory: fake(handler, port=0) starts a FakeServer; all are stopped
    at the end of the test."""
    servers = []

    def start(handler, port=0):
        servers.append(FakeServer(handler, port))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


def echo(server, sock):
    """Answer every frame with a frame of the same id and body."""
    while True:
        msg_id, data = server.read(sock)
        sock.sendall(pack(msg_id, data))


def silent(server, sock):
    """Read everything, answer nothing, until the client leaves."""
    while sock.recv(65536):
        pass


# ---- arguments ----

@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_help_prints_the_usage_and_exits_0(flag):
    run = zc(flag)
    assert run.returncode == 0
    assert run.stdout.startswith("usage: zc [options] HOST:PORT send ID BODY")
    for word in ("watch", "ping", "raw", "--timeout", "--reply", "--hex",
                 "--file", "Exit status"):
        assert word in run.stdout
    assert run.stderr == ""


BAD_ARGS = [
    ([], "no HOST:PORT given"),
    (["127.0.0.1:1"], "no subcommand given"),
    (["127.0.0.1:1", "frob"], "unknown subcommand 'frob'"),
    (["127.0.0.1:1", "send"], "send: no ID and BODY given"),
    (["127.0.0.1:1", "send", "1"], "ID 1 has no body"),
    (["127.0.0.1:1", "send", "x", "hi"], "ID 'x': want a MsgID"),
    (["127.0.0.1:1", "send", "4294967296", "hi"], "ID '4294967296'"),
    (["127.0.0.1:1", "send", "1", "hi", "2"], "ID 2 has no body"),
    (["127.0.0.1:1", "send", "1", "--hex", "abc"], "odd number of hex"),
    (["127.0.0.1:1", "send", "1", "--hex", "0g"], "'g' is not a hex digit"),
    (["127.0.0.1:1", "send", "1", "--file", "/nonexistent/zc"],
     "--file /nonexistent/zc: No such file"),
    (["127.0.0.1:1", "send", "1", "--file", "/"], "Is a directory"),
    (["127.0.0.1", "send", "1", "hi"], "bad address '127.0.0.1'"),
    (["127.0.0.1:70000", "send", "1", "hi"], "bad address"),
    (["127.0.0.1:", "send", "1", "hi"], "bad address"),
    (["127.0.0.1:1", "send", "1", "hi", "--timeout", "0"], "--timeout '0'"),
    (["127.0.0.1:1", "send", "1", "hi", "-t", "-1"], "--timeout '-1'"),
    (["127.0.0.1:1", "send", "1", "hi", "--timeout"], "needs a value"),
    (["127.0.0.1:1", "send", "1", "hi", "--reply", "x"], "--reply 'x'"),
    (["127.0.0.1:1", "send", "1", "hi", "-n", "5"], "for ping only"),
    (["127.0.0.1:1", "send", "1", "hi", "--bogus"], "unknown option"),
    (["127.0.0.1:1", "watch", "--reply", "1"], "for send and ping only"),
    (["127.0.0.1:1", "ping", "-c", "0"], "-c '0'"),
    (["127.0.0.1:1", "ping", "-n", "x"], "-n 'x'"),
    (["127.0.0.1:1", "raw"], "raw: no BODY given"),
    (["127.0.0.1:1", "raw", "a", "b"], "one BODY only"),
]


@pytest.mark.parametrize("args,why", BAD_ARGS,
                         ids=[" ".join(a) or "none" for a, _ in BAD_ARGS])
def test_bad_arguments_exit_2_with_usage(args, why):
    run = zc(*args)
    assert run.returncode == 2
    assert why in run.stderr.splitlines()[0]
    assert "usage: zc" in run.stderr
    assert run.stdout == ""


# ---- failures: refused, silent, lost, too large ----

@pytest.mark.parametrize("cmd", [["send", "1", "hi"], ["watch"], ["ping"],
                                 ["raw", "hi"]])
def test_nothing_listening_is_connection_refused(cmd):
    # A socket bound but not listening: the port is taken (nothing else
    # can listen on it meanwhile) and a connect to it is refused.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        run = zc(addr(port), *cmd)
    assert run.returncode == 1
    assert run.stderr == f"zc: connection refused (127.0.0.1:{port})\n"
    assert run.stdout == ""


def test_silent_server_times_out(fake):
    srv = fake(silent)
    run = zc("--timeout", "0.5", addr(srv.port), "send", "1", "hi")
    assert run.returncode == 1
    assert run.stderr == "zc: timed out after 0.5 s waiting for id 1\n"
    assert 0.5 <= run.seconds < 0.5 + 1.5


def test_ping_stops_each_connection_at_its_first_timeout(fake):
    srv = fake(silent)
    run = zc(addr(srv.port), "ping", "-n", "100", "-c", "2", "-t", "0.3")
    assert run.returncode == 1
    assert run.stdout.startswith("0 of 100 round trips, 2 errors, "
                                 "2 connections")
    assert run.stderr.count("timed out after 0.3 s waiting for id 0") == 2
    assert run.seconds < 0.3 + 1.5  # the two wait at once, and only once


def test_server_that_closes_is_connection_lost(fake):
    def close_after_one(server, sock):
        server.read(sock)
        sock.close()

    srv = fake(close_after_one)
    run = zc(addr(srv.port), "send", "1", "hi")
    assert run.returncode == 1
    assert run.stderr == ("zc: connection lost: closed or reset by the "
                          f"server (127.0.0.1:{srv.port})\n")


def test_reply_larger_than_a_frame_may_be_is_refused(fake):
    def huge_reply(server, sock):
        msg_id, _ = server.read(sock)
        sock.sendall(pack(msg_id, b"x" * 65537))

    srv = fake(huge_reply)
    run = zc(addr(srv.port), "send", "1", "hi")
    assert run.returncode == 1
    assert run.stderr == ("zc: connection lost: the server sent a frame "
                          "larger than 65536 bytes\n")


def test_body_larger_than_a_frame_may_be_is_not_sent(fake, tmp_path):
    srv = fake(echo)
    big = tmp_path / "big"
    big.write_bytes(b"x" * 65537)
    run = zc(addr(srv.port), "send", "1", "--file", big)
    assert run.returncode == 1
    assert run.stderr == "zc: a body larger than 65536 bytes cannot be sent\n"
    assert srv.frames == []
    big.write_bytes(b"x" * 65536)  # the limit itself is fine
    run = zc(addr(srv.port), "send", "1", "--file", big)
    assert run.returncode == 0
    assert run.stdout == "x" * 65536 + "\n"


def test_send_and_ping_work_again_after_a_restart(fake):
    first = fake(echo)
    port = first.port
    assert zc(addr(port), "send", "1", "before").stdout == "before\n"
    first.stop()
    run = zc(addr(port), "send", "1", "down")
    assert run.returncode == 1
    assert "connection refused" in run.stderr
    fake(echo, port)  # the same port, a new server
    assert zc(addr(port), "send", "1", "after").stdout == "after\n"
    run = zc(addr(port), "ping", "-n", "50", "-c", "2")
    assert run.returncode == 0
    assert run.stdout.startswith("50 of 50 round trips, 0 errors")


# ---- bodies and unsolicited frames (Python servers) ----

def test_hex_file_and_stdin_bodies_go_out_byte_for_byte(fake, tmp_path):
    srv = fake(echo)
    body = tmp_path / "body"
    body.write_bytes(b"line\n\x01")
    run = zc(addr(srv.port), "send", "5", "--hex", "00ff5c41", "6", "--file",
             body, "7", "--file", "-", "8", "--hex", "", "--", "9", "-dash",
             stdin="from stdin")
    assert run.returncode == 0
    assert srv.frames == [(5, b"\x00\xff\\A"), (6, b"line\n\x01"),
                          (7, b"from stdin"), (8, b""), (9, b"-dash")]
    # Printed escaped: \xHH outside ' '..'~', a backslash doubled.
    assert run.stdout == "\\x00\\xff\\\\A\nline\\x0a\\x01\nfrom stdin\n\n-dash\n"


def test_a_frame_with_another_id_is_not_the_reply(fake):
    def push_first(server, sock):  # id 9 "push" before every reply
        while True:
            msg_id, data = server.read(sock)
            sock.sendall(pack(9, b"push") + pack(msg_id, data))

    srv = fake(push_first)
    run = zc("-v", addr(srv.port), "send", "1", "a", "2", "b")
    assert run.returncode == 0
    assert run.stdout == "a\nb\n"
    assert run.stderr.count("zc: not a reply: id 9, 4 bytes: push\n") == 2
    run = zc(addr(srv.port), "send", "1", "a")  # without -v: not a word
    assert (run.returncode, run.stdout, run.stderr) == (0, "a\n", "")


def test_watch_prints_every_frame_until_the_server_closes(fake):
    def push_and_close(server, sock):
        sock.sendall(pack(7, b"one") + pack(8, b"two\x00\\") + pack(9))
        sock.close()

    srv = fake(push_and_close)
    run = zc(addr(srv.port), "watch")  # no --timeout: the close ends it
    assert run.returncode == 0
    assert run.stdout == ("id 7, 3 bytes: one\n"
                          "id 8, 5 bytes: two\\x00\\\\\n"
                          "id 9, 0 bytes: \n")
    assert run.stderr == ""


# ---- against the demo servers ----

@pytest.mark.has("routing")
def test_send_to_the_routers(server, stage):
    run = zc(addr(server.port), "send", "0", "hi", "1", "hi")
    assert run.returncode == 0
    assert run.stdout == f"{PING.decode()}\nHello Zinc Router {stage}\n"
    assert run.stderr == ""


@pytest.mark.has("framing")
@pytest.mark.lacks("routing")
def test_send_to_v05_needs_reply_1(server):
    run = zc(addr(server.port), "send", "0", "hi", "--reply", "1")
    assert (run.returncode, run.stdout) == (0, PING.decode() + "\n")
    # Without --reply, zc waits for id 0, which v0.5 never sends.
    run = zc(addr(server.port), "send", "0", "hi", "--timeout", QUIET)
    assert run.returncode == 1
    assert run.stderr == f"zc: timed out after {QUIET:g} s waiting for id 0\n"


@pytest.mark.has("greeting")
def test_greeting_is_not_taken_for_the_reply(server, stage):
    run = zc("-v", addr(server.port), "send", "1", "hi")
    assert run.returncode == 0
    assert run.stdout == f"Hello Zinc Router {stage}\n"
    assert f"zc: not a reply: {GREETING}\n" in run.stderr


@pytest.mark.has("greeting")
def test_watch_shows_the_greeting_then_the_replies(server, stage):
    run = zc(addr(server.port), "watch", "--timeout", QUIET)
    assert (run.returncode, run.stdout) == (0, GREETING + "\n")
    run = zc(addr(server.port), "watch", "0", "a", "1", "b", "-t", QUIET)
    assert run.returncode == 0
    assert run.stdout == (f"{GREETING}\n"
                          "id 0, 18 bytes: ping...ping...ping\n"
                          f"id 1, 22 bytes: Hello Zinc Router {stage}\n")


@pytest.mark.has("framing")
def test_ping_prints_the_stats(server, stage):
    reply = [] if has(stage, "routing") else ["--reply", "1"]
    run = zc(addr(server.port), "ping", "-n", "200", "-c", "4", *reply)
    assert run.returncode == 0
    lines = run.stdout.splitlines()
    assert re.fullmatch(r"200 of 200 round trips, 0 errors, 4 connections, "
                        r"\d+\.\d{3} s", lines[0])
    assert re.fullmatch(r"rate: \d+ round trips/s", lines[1])
    m = re.fullmatch(r"latency \(us\): min (\d+), p50 (\d+), p99 (\d+), "
                     r"max (\d+)", lines[2])
    assert m and [int(x) for x in m.groups()] == sorted(
        int(x) for x in m.groups())
    assert run.stderr == ""


@pytest.mark.lacks("framing")
def test_raw_without_framing(server, stage):
    run = zc(addr(server.port), "raw", "hello", "--timeout", QUIET)
    assert run.returncode == 0
    if has(stage, "router"):  # the router's three lines, line breaks kept
        assert run.stdout == "before ping\nping...ping...ping\nafter ping\n"
    else:  # the echo; a newline is added after a last line without one
        assert run.stdout == "hello\n"


@pytest.mark.has("properties")
def test_property_session_on_one_connection(server, stage):
    run = zc(addr(server.port), "send", "3", "k=v", "4", "k", "5", "k",
             "4", "k", "4", "Stage", "3", "no equals sign")
    assert run.returncode == 0
    assert run.stdout.splitlines() == ["OK", "v", "OK", "ERR no such key",
                                       stage, "ERR want key=value"]

