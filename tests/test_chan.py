"""v0.7 on: zn_chan, the bounded blocking channel between a connection's
reader and its writer (zinc/chan.h), tested on its own.

tests/api/chan.c holds the tests; it is built once per stage against the
stage's build/libzinc.a (with the stage's flags, so under SAN= builds it
runs with the sanitizers too), then each of its tests runs here in its own
process: a test that leaves a thread stuck in the channel fails alone."""

import subprocess

import pytest

from support.build import build_api_once

pytestmark = [pytest.mark.has("writer"), pytest.mark.lacks("event_loop")]

# The tests in tests/api/chan.c, in its order (`chan --list` must agree).
CHAN_TESTS = [
    "new_needs_capacity",             # capacity 0: NULL, errno EINVAL
    "fifo_order",                     # first in, first out, also wrapped
    "capacity",                       # try_send/try_recv: -EAGAIN full/empty
    "send_blocks_while_full",         # ... until a recv frees a slot
    "recv_blocks_while_empty",        # ... until a send brings an item
    "send_timed",                     # -ETIMEDOUT after ~100 ms, not queued
    "close_wakes_senders",            # every blocked sender: -EPIPE
    "close_wakes_receivers",          # every blocked receiver: -EPIPE
    "drain_after_close",              # queued items still come, then -EPIPE
    "free_drops_leftovers",           # drop() sees each leftover once
    "many_producers_many_consumers",  # 4 + 4 threads, 100000 items, cap 8
]

@pytest.fixture
def chan(stage, tmp_path_factory):
    return build_api_once(stage, "chan", tmp_path_factory)


def run_chan(exe, *args):
    # The program's own watchdog ends it after 30 s; this is a second net.
    run = subprocess.run([str(exe), *args], capture_output=True, text=True,
                         timeout=60)
    print(run.stdout, run.stderr)
    return run


def test_chan_lists_every_test(chan):
    run = run_chan(chan, "--list")
    assert run.returncode == 0
    assert run.stdout.split() == CHAN_TESTS


@pytest.mark.parametrize("name", CHAN_TESTS)
def test_chan(chan, name):
    run = run_chan(chan, name)
    assert run.returncode == 0, run.stdout + run.stderr
    assert f"ok   {name}" in run.stdout
    assert "Sanitizer" not in run.stderr, run.stderr
    assert "runtime error" not in run.stderr, run.stderr
