"""v0.4 on: the server reads conf/zinc.json. Every configuration mistake is
reported with the file and the line:column or the key, and exit status 2;
it never crashes and never starts on a value it did not understand."""

import os
import socket

import pytest

from support.demo import open_conn, roundtrip
from support.launcher import (START_TIMEOUT, STOP_TIMEOUT, VALGRIND, refused,
                              slowdown)
from support.stages import ping_reply
from support.wire import pack, read_frame

pytestmark = pytest.mark.has("conf")


def test_name_and_version_in_the_log(stage, start_server):
    srv = start_server(conf={"Name": "test-app", "Version": "9.9"})
    line = srv.wait_log(r".*listening on.*").group(0)
    assert "[test-app]" in line and "version 9.9" in line
    roundtrip(stage, open_conn(stage, srv.port))


def test_default_version_is_the_stage(stage, server):
    assert f"version {stage} listening on 127.0.0.1:{server.port}" \
        in server.text()


def test_c_option_names_the_file(stage, start_server, tmp_path):
    other = tmp_path / "other.json"
    other.write_text('{"TcpPort": 0, "Name": "from-c"}')
    srv = start_server(args=["-c", str(other)], conf=False)
    assert "[from-c]" in srv.text()
    roundtrip(stage, open_conn(stage, srv.port))


def port_is_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_missing_file_means_defaults(stage, start_server):
    if not port_is_free(8999):
        pytest.skip("the default port 8999 is taken on this machine")
    srv = start_server(conf=False)
    assert "not found: using the defaults" in srv.text()
    assert srv.port == 8999
    assert "[ZincServerApp]" in srv.text()
    roundtrip(stage, open_conn(stage, 8999))


def test_unknown_key_is_a_warning(stage, start_server):
    srv = start_server(conf={"TcpPrt": 1234})
    assert 'WARN  conf/zinc.json:1:26: unknown key "TcpPrt" ignored' \
        in srv.text()
    roundtrip(stage, open_conn(stage, srv.port))


BAD_JSON = [
    # (file text, the "file:line:col" the message must name)
    ('{"TcpPort": 0,}', "conf/zinc.json:1:14:"),
    ('{\n  "TcpPort": 0\n  "Name": "x"\n}', "conf/zinc.json:3:3:"),
    ('{"TcpPort": 0', "conf/zinc.json:1:14:"),
    ("", "conf/zinc.json:1:1:"),
    ("{'TcpPort': 0}", "conf/zinc.json:1:2:"),
    ('{"TcpPort": 0} // comment', "conf/zinc.json:1:16:"),
]


@pytest.mark.parametrize("text,where", BAD_JSON)
def test_invalid_json_names_line_and_column(start_server, text, where):
    srv = start_server(conf_text=text, wait=False)
    assert srv.wait_exit() == 2
    assert f"{where} invalid JSON" in srv.text()
    assert "listening on" not in srv.text()


BAD_VALUES = [
    # (key, value, words the message must contain)
    ("TcpPort", 70000, "TcpPort: must be an integer from 0 to 65535"),
    ("TcpPort", -1, "TcpPort: must be an integer from 0 to 65535"),
    ("TcpPort", 80.5, "TcpPort: must be an integer"),
    ("TcpPort", "8999", "TcpPort: expected an integer, got string"),
    ("MaxConn", -5, "MaxConn: must be an integer from 1"),
    ("MaxConn", 0, "MaxConn: must be an integer from 1"),
    ("MaxPacketSize", -1, "MaxPacketSize: must be an integer from 0"),
    ("MaxPacketSize", 1e30, "MaxPacketSize: must be an integer"),
    ("MaxPacketSize", 2**30 + 1,
     "MaxPacketSize: must be an integer from 0 to 1073741824"),
    ("Name", 42, "Name: expected a string, got number"),
    ("Name", "x" * 100, "Name: longer than"),
    ("Host", "localhost", 'Host: "localhost" is not a numeric'),
    ("Host", None, "Host: expected a string, got null"),
]


@pytest.mark.parametrize("key,value,words", BAD_VALUES)
def test_bad_value_names_the_key(start_server, key, value, words):
    srv = start_server(conf={key: value}, wait=False)
    assert refused(srv) == 2
    assert "conf/zinc.json:1:" in srv.text()
    assert words in srv.text()


def test_max_packet_size_ceiling_is_allowed(stage, start_server):
    """1 GiB, the documented ceiling, is itself a valid MaxPacketSize."""
    srv = start_server(conf={"MaxPacketSize": 2**30})
    roundtrip(stage, open_conn(stage, srv.port))


@pytest.mark.parametrize("key", ["Name", "Version"])
def test_control_characters_in_names_are_refused(start_server, key):
    """Name and Version go into log lines: a newline in them could forge a
    line such as a fake `listening on`, so they are refused."""
    srv = start_server(conf={key: "a\nFAKE listening on 127.0.0.1:1"},
                       wait=False)
    assert refused(srv) == 2
    assert f"{key}: holds a control character" in srv.text()


def test_top_level_must_be_an_object(start_server):
    srv = start_server(conf_text="[8999]", wait=False)
    assert srv.wait_exit() == 2
    assert "conf/zinc.json:1:1: expected an object" in srv.text()


def test_unreadable_config_is_an_error(start_server, tmp_path):
    srv = start_server(args=["-c", str(tmp_path)], conf=False, wait=False)
    assert srv.wait_exit() == 2
    assert "cannot read" in srv.text()


def test_config_that_is_a_fifo_is_an_error_not_a_hang(start_server,
                                                      tmp_path):
    """-c naming a FIFO nobody writes to: refused at once (exit 2), not a
    server blocked forever in open()."""
    fifo = tmp_path / "zinc.fifo"
    os.mkfifo(fifo)
    srv = start_server(args=["-c", str(fifo)], conf=False, wait=False)
    assert srv.wait_exit(timeout=STOP_TIMEOUT if VALGRIND else 3.0) == 2
    assert "not a regular file" in srv.text()


@pytest.mark.parametrize("args", [["-x"], ["extra"], ["-c"]])
def test_bad_command_line(start_server, args):
    srv = start_server(args=args, wait=False)
    assert srv.wait_exit() == 2
    assert "usage" in srv.text()


# MaxMsgChanLen (v0.7): how many replies a connection's outgoing channel
# holds, from 1 to 1048576 (DESIGN.md section 8).
BAD_CHAN_LENS = [
    # (value, words the message must contain)
    (0, "MaxMsgChanLen: must be an integer from 1 to 1048576"),
    (1048577, "MaxMsgChanLen: must be an integer from 1 to 1048576"),
    (-1, "MaxMsgChanLen: must be an integer from 1 to 1048576"),
    ("16", "MaxMsgChanLen: expected an integer, got string"),
    (1.5, "MaxMsgChanLen: must be an integer"),
]


@pytest.mark.has("writer")
@pytest.mark.parametrize("value,words", BAD_CHAN_LENS)
def test_bad_max_msg_chan_len_is_refused(start_server, value, words):
    srv = start_server(conf={"MaxMsgChanLen": value}, wait=False)
    assert refused(srv) == 2
    assert "conf/zinc.json:1:" in srv.text()
    assert words in srv.text()


@pytest.mark.has("writer")
@pytest.mark.parametrize("value", [1, 1048576])
def test_max_msg_chan_len_limits_are_allowed(stage, start_server, value):
    """Both ends of the range start a server that serves, and the config
    line at startup shows the value in use. With a channel of one reply,
    twenty pipelined requests still get all twenty replies: the sender
    waits for the writer to make room instead of losing any."""
    srv = start_server(conf={"MaxMsgChanLen": value})
    srv.wait_log(rf"config: .* MaxMsgChanLen={value}\b")
    sock = open_conn(stage, srv.port)
    sock.sendall(b"".join(pack(0, b"%d" % i) for i in range(20)))
    for _ in range(20):
        assert read_frame(sock) == ping_reply(stage)


@pytest.mark.has("writer")
def test_max_msg_chan_len_default_in_the_config_line(server):
    server.wait_log(r"config: .* MaxMsgChanLen=1024\b")


@pytest.mark.lacks("writer")
def test_max_msg_chan_len_is_unknown_before_v07(stage, start_server):
    """A newer config still starts an older stage: before v0.7 the key is
    unknown, a warning, and the config line does not claim it."""
    srv = start_server(conf={"MaxMsgChanLen": 16})
    assert ('WARN  conf/zinc.json:1:33: unknown key "MaxMsgChanLen" ignored'
            in srv.text())
    assert "MaxMsgChanLen=" not in srv.text()
    roundtrip(stage, open_conn(stage, srv.port))


# WorkerPoolSize and MaxWorkerTaskLen (v0.8): how many workers (0: the
# reader handles every request) and how many requests one worker's queue
# holds (DESIGN.md sections 4 and 8).
BAD_POOL_VALUES = [
    # (key, value, words the message must contain)
    ("WorkerPoolSize", -1, "WorkerPoolSize: must be an integer from 0 to 1024"),
    ("WorkerPoolSize", 1025,
     "WorkerPoolSize: must be an integer from 0 to 1024"),
    ("WorkerPoolSize", "10", "WorkerPoolSize: expected an integer, got string"),
    ("MaxWorkerTaskLen", 0,
     "MaxWorkerTaskLen: must be an integer from 1 to 1048576"),
    ("MaxWorkerTaskLen", 1048577,
     "MaxWorkerTaskLen: must be an integer from 1 to 1048576"),
    ("MaxWorkerTaskLen", 2.5, "MaxWorkerTaskLen: must be an integer"),
]


@pytest.mark.has("workers")
@pytest.mark.parametrize("key,value,words", BAD_POOL_VALUES)
def test_bad_worker_pool_values_are_refused(start_server, key, value, words):
    srv = start_server(conf={key: value}, wait=False)
    assert refused(srv) == 2
    assert "conf/zinc.json:1:" in srv.text()
    assert words in srv.text()


@pytest.mark.has("workers")
@pytest.mark.parametrize("conf", [
    {"WorkerPoolSize": 0, "MaxWorkerTaskLen": 1},
    {"WorkerPoolSize": 1024, "MaxWorkerTaskLen": 1},
    {"WorkerPoolSize": 1, "MaxWorkerTaskLen": 1048576},
])
def test_worker_pool_limits_are_allowed(stage, start_server, conf):
    """Both ends of both ranges start a server that serves, and the config
    line shows the values in use. 1,024 worker threads take ThreadSanitizer
    7 to 10 s to start here: the wait for the ready line is scaled as the
    other bounds are."""
    srv = start_server(conf=conf, wait=False)
    srv.wait_listening(timeout=START_TIMEOUT * slowdown(stage))
    srv.wait_log(rf"config: .* WorkerPoolSize={conf['WorkerPoolSize']} "
                 rf"MaxWorkerTaskLen={conf['MaxWorkerTaskLen']}\b")
    roundtrip(stage, open_conn(stage, srv.port))


@pytest.mark.lacks("workers")
@pytest.mark.parametrize("key", ["WorkerPoolSize", "MaxWorkerTaskLen"])
def test_worker_pool_keys_are_unknown_before_v08(stage, start_server, key):
    """Before v0.8 both keys are unknown: a warning naming the key, and the
    server starts and serves."""
    srv = start_server(conf={key: 4})
    assert f'unknown key "{key}" ignored' in srv.text()
    assert f"{key}=" not in srv.text()
    roundtrip(stage, open_conn(stage, srv.port))
