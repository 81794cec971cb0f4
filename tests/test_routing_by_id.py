"""v0.6 on: the message handler routes by message id. Id 0 goes to the ping
router, id 1 to the hello router; an unknown id is logged and dropped, and
the connection stays open."""

import subprocess

import pytest

from support.build import build_api
from support.demo import open_conn
from support.stages import PING
from support.wire import pack, read_frame, silent

pytestmark = pytest.mark.has("routing")


def test_id_0_is_ping(stage, server):
    sock = open_conn(stage, server.port)
    sock.sendall(pack(0, b"hi"))
    assert read_frame(sock) == (0, PING)


def test_id_1_is_hello(stage, server):
    sock = open_conn(stage, server.port)
    sock.sendall(pack(1, b"hi"))
    assert read_frame(sock) == (1, b"Hello Zinc Router " + stage.encode())


def test_unknown_id_is_logged_and_the_connection_stays(stage, server):
    sock = open_conn(stage, server.port)
    sock.sendall(pack(7, b"nobody handles this"))
    server.wait_log(r"no router for msg id 7, message dropped")
    assert silent(sock)  # no reply, no close
    sock.sendall(pack(1, b"and now a known one"))
    assert read_frame(sock) == (1, b"Hello Zinc Router " + stage.encode())


def test_adding_a_router_twice_is_an_error(stage, tmp_path):
    """The second add for an id fails with -EEXIST and the first router
    keeps handling that id (tests/api/dup_router.c)."""
    exe = build_api(stage, "dup_router", tmp_path)
    run = subprocess.run([str(exe)], capture_output=True, text=True,
                         timeout=30)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "msg id 7 already has a router" in run.stderr
