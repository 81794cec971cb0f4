"""Checks of the v0.8 chapter's exercises (docs/v0.8-worker-pool.md): the
worker pool and its configuration, seen in the log of the demo server and
of a program built against the stage (tests/api/ex_v0_8_3.c). Make your
copy with `make lab EX=v0.8-N`, check it with `make grade EX=v0.8-N`."""

import json
import re

import pytest

from support.build import run_api
from support.demo import conn_id, live_conns, open_conn, roundtrip
from support.launcher import refused
from support.proc import threads_gone, wait_until


def first_conns(stage, srv, n):
    """n clients, connected one after the other: connections 0 to n-1."""
    socks = [open_conn(stage, srv.port) for _ in range(n)]
    ids = [conn_id(srv, s) for s in socks]
    assert ids == list(range(n)), \
        f"the first {n} clients got connection ids {ids}, not 0 to {n - 1}"
    return socks


@pytest.mark.exercise("v0.8-1")
def test_per_worker_counters(stage, start_server):
    """v0.8-1, per-worker counters: at stop, each worker logs how many
    requests it handled."""
    srv = start_server(conf={"WorkerPoolSize": 2})
    socks = first_conns(stage, srv, 4)
    for sock in socks:
        for _ in range(10):
            roundtrip(stage, sock)
    rc = srv.stop()
    assert rc == 0, f"the server exited with status {rc} on SIGTERM, not 0"
    counts = dict(re.findall(r"worker (\d+) handled (\d+) requests",
                             srv.text()))
    assert counts, ("no 'worker N handled K requests' line at stop: the "
                    "workers do not count what they handle")
    assert counts == {"0": "20", "1": "20"}, (
        f"workers handled {counts}; connections 0 and 2 go to worker 0, "
        "1 and 3 to worker 1, 10 requests each: 20 for each worker")


@pytest.mark.exercise("v0.8-2")
def test_worker_chosen_at_connect_time(stage, start_server):
    """v0.8-2, the worker chosen at connect time: a new connection goes to
    the worker with the fewest live connections (the lowest-numbered on a
    tie), logged at DEBUG as `conn N: worker K`."""
    srv = start_server(conf={"WorkerPoolSize": 2},
                       env={"ZN_LOG_LEVEL": "debug"})

    def worker_of(cid):
        line = rf"conn {cid}: worker (\d+)"
        m = wait_until(lambda: re.search(line, srv.text()), timeout=2)
        assert m, (f"no DEBUG line 'conn {cid}: worker K': the worker "
                   "chosen for a connection is not logged")
        return int(m.group(1))

    socks = first_conns(stage, srv, 4)
    for s in socks:
        roundtrip(stage, s)
    got = [worker_of(cid) for cid in range(4)]
    assert got == [0, 1, 0, 1], (
        f"connections 0 to 3 went to workers {got}, not [0, 1, 0, 1]: each "
        "goes to the worker with the fewest, the lowest-numbered on a tie")
    socks[0].close()
    socks[2].close()
    assert wait_until(lambda: threads_gone(srv.pid, 0) and
                      threads_gone(srv.pid, 2) and
                      live_conns(stage, srv.pid) == 2), \
        "the threads of connections 0 and 2 are still there after they closed"
    for _ in range(2):
        sock = open_conn(stage, srv.port)
        roundtrip(stage, sock)
        socks.append(sock)
    ids = [conn_id(srv, s) for s in socks[4:]]
    assert ids == [4, 5], f"the next two clients got ids {ids}, not [4, 5]"
    got = [worker_of(4), worker_of(5)]
    assert got == [0, 0], (
        f"connections 4 and 5 went to workers {got}: with 0 and 2 closed, "
        "worker 0 has no live connection and worker 1 has two, so both "
        "new ones belong on worker 0 (conn_id % 2 would give [0, 1])")


@pytest.mark.exercise("v0.8-3")
def test_send_wait_ms_in_the_configuration(stage, start_server, tmp_path):
    """v0.8-3, SendWaitMs in the configuration (1 to 200): shown in the
    config line, refused out of range, and how long a send waits for room
    in a full outgoing channel (tests/api/ex_v0_8_3.c, with 180 ms: longer
    than the built-in 100)."""
    srv = start_server(conf={"SendWaitMs": 50})
    assert wait_until(lambda: re.search(r"config: .*\bSendWaitMs=50\b",
                                        srv.text())), \
        "the 'config: ...' line does not show SendWaitMs=50"
    for bad in (0, 201):
        rc = refused(start_server(conf={"SendWaitMs": bad}, wait=False),
                     why=f"the server started with SendWaitMs {bad}: it must "
                         "refuse a value out of 1 to 200 with status 2")
        assert rc == 2, (f"SendWaitMs {bad} (out of 1 to 200) stopped the "
                         f"server with exit status {rc}, not 2")

    conf = tmp_path / "zinc.json"
    conf.write_text(json.dumps({"MaxMsgChanLen": 2, "SendWaitMs": 180}))
    run = run_api(stage, "ex_v0_8_3", tmp_path, conf, 180, timeout=60)
    fails = [line for line in run.stderr.splitlines()
             if line.startswith("FAIL")]
    said = fails[0] if fails else "it said: " + (
        run.stderr.strip().splitlines() or ["nothing"])[-1]
    assert run.returncode == 0 and not fails, \
        f"tests/api/ex_v0_8_3.c exited with status {run.returncode}: {said}"
    m = re.search(r"conn 0: too slow: .*waiting for (\d+) ms", run.stderr)
    assert m, "no 'conn 0: too slow: ... waiting for M ms' line"
    assert m.group(1) == "180", (f"the too-slow line says {m.group(1)} ms, "
                                 "not the 180 of SendWaitMs")
