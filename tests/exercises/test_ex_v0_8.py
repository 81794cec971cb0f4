"""The checked exercises of the v0.8 chapter (docs/v0.8-worker-pool.md,
"Exercises"): the worker pool and its configuration, seen in the log of
the demo server and of a program built against the stage
(tests/api/ex_v0_8_3.c). Make a copy of v0.8 with `make lab EX=v0.8-1`,
do the exercise there, and check it with `make grade EX=v0.8-1` (likewise
v0.8-2, v0.8-3)."""

import json
import re
import subprocess

import pytest

from support.build import build_api
from support.demo import conn_id, live_conns, open_conn, roundtrip
from support.proc import wait_until


@pytest.mark.exercise("v0.8-1")
def test_per_worker_counters(stage, start_server):
    """Exercise 1: at stop, each worker logs how many requests it
    handled."""
    srv = start_server(conf={"WorkerPoolSize": 2})
    socks = [open_conn(stage, srv.port) for _ in range(4)]
    assert [conn_id(srv, s) for s in socks] == [0, 1, 2, 3]
    for sock in socks:
        for _ in range(10):
            roundtrip(stage, sock)
    assert srv.stop() == 0
    counts = dict(re.findall(r"worker (\d+) handled (\d+) requests",
                             srv.text()))
    assert counts, ("no 'worker N handled K requests' line at stop: the "
                    "workers do not count what they handle")
    assert counts == {"0": "20", "1": "20"}, (
        f"workers handled {counts}; connections 0 and 2 go to worker 0, "
        "1 and 3 to worker 1, 10 requests each: 20 for each worker")


@pytest.mark.exercise("v0.8-2")
def test_worker_chosen_at_connect_time(stage, start_server):
    """Exercise 2: a new connection goes to the worker with the fewest
    live connections, logged at DEBUG as `conn N: worker K`."""
    srv = start_server(conf={"WorkerPoolSize": 2},
                       env={"ZN_LOG_LEVEL": "debug"})

    def worker_of(cid):
        line = rf"conn {cid}: worker (\d+)"
        m = wait_until(lambda: re.search(line, srv.text()), timeout=2)
        assert m, (f"no DEBUG line 'conn {cid}: worker K': the worker "
                   "chosen for a connection is not logged")
        return int(m.group(1))

    socks = [open_conn(stage, srv.port) for _ in range(4)]
    assert [conn_id(srv, s) for s in socks] == [0, 1, 2, 3]
    for s in socks:
        roundtrip(stage, s)
    assert [worker_of(cid) for cid in range(4)] == [0, 1, 0, 1]
    socks[0].close()
    socks[2].close()
    assert wait_until(lambda: live_conns(stage, srv.pid) == 2)
    for _ in range(2):
        sock = open_conn(stage, srv.port)
        roundtrip(stage, sock)
        socks.append(sock)
    assert [conn_id(srv, s) for s in socks[4:]] == [4, 5]
    got = [worker_of(4), worker_of(5)]
    assert got == [0, 0], (
        f"connections 4 and 5 went to workers {got}: with 0 and 2 closed, "
        "worker 0 has no live connection and worker 1 has two, so both "
        "new ones belong on worker 0 (conn_id % 2 would give [0, 1])")


@pytest.mark.exercise("v0.8-3")
def test_send_wait_ms_in_the_configuration(stage, start_server, tmp_path):
    """Exercise 3: SendWaitMs (1 to 200) in conf/zinc.json: shown in the
    config line, refused out of range, and used by a send that waits for
    room in a full outgoing channel (tests/api/ex_v0_8_3.c)."""
    srv = start_server(conf={"SendWaitMs": 50})
    assert wait_until(lambda: re.search(r"config: .*\bSendWaitMs=50\b",
                                        srv.text())), \
        "the 'config: ...' line does not show SendWaitMs=50"
    for bad in (0, 201):
        rc = start_server(conf={"SendWaitMs": bad}, wait=False).settle()
        assert rc == 2, (f"SendWaitMs {bad} (out of 1 to 200) did not stop "
                         f"the server with exit status 2 (got {rc})")

    exe = build_api(stage, "ex_v0_8_3", tmp_path)
    conf = tmp_path / "zinc.json"
    conf.write_text(json.dumps({"MaxMsgChanLen": 2, "SendWaitMs": 37}))
    run = subprocess.run([str(exe), str(conf)], capture_output=True,
                         text=True, timeout=60)
    print(run.stdout, run.stderr)
    assert run.returncode == 0, "the connection was not stopped as too slow"
    m = re.search(r"conn 0: too slow: .*waiting for (\d+) ms", run.stderr)
    assert m, "no 'conn 0: too slow: ... waiting for M ms' line"
    assert m.group(1) == "37", (f"the too-slow line says {m.group(1)} ms: "
                                "the send does not wait SendWaitMs (37)")
