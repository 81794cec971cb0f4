"""The black-box harness: one suite, run against any stage.

    pytest tests                   every stage that has been built
    pytest tests --stage v0.2      one stage (repeat --stage for more)

A test that takes the `stage` argument runs once per selected stage. It
declares the stages it applies to with markers:

    @pytest.mark.since("v0.5")     this stage and every later one
    @pytest.mark.until("v0.4")     this stage and every earlier one

Stages outside that range are deselected, not failed.
"""

import os
import re
import resource
import signal
import subprocess
import time

import pytest

from zinc import ROOT, sanitizer, server_command, stage_key, wait_until

STAGE_RE = re.compile(r"^v\d+\.\d+$")
LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
BAD_LOG_RE = re.compile(r"Sanitizer|runtime error|^==\d+== ", re.M)
# `make test VALGRIND=1` runs every server under valgrind (slower: more time).
VALGRIND = os.environ.get("ZN_VALGRIND", "") not in ("", "0")
VALGRIND_CMD = ["valgrind", "-q", "--max-threads=4096", "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"]
START_TIMEOUT = 30.0 if VALGRIND else 10.0  # seconds to start listening
STOP_TIMEOUT = 30.0 if VALGRIND else 10.0   # seconds to exit after SIGTERM


def all_stages():
    return sorted((p.name for p in ROOT.iterdir()
                   if p.is_dir() and STAGE_RE.match(p.name)), key=stage_key)


def pytest_addoption(parser):
    parser.addoption("--stage", action="append", default=[],
                     help="run the tests of this stage (e.g. v0.5); "
                          "repeatable; default: every built stage")


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "since(stage): applies from this stage on")
    config.addinivalue_line("markers",
                            "until(stage): applies up to this stage")
    wanted = config.getoption("--stage")
    known = all_stages()
    for s in wanted:
        if s not in known:
            raise pytest.UsageError(
                f"--stage {s}: no such stage (have: {' '.join(known)})")
        if not (ROOT / s / "build" / "server").exists():
            raise pytest.UsageError(
                f"--stage {s}: {s}/build/server is missing; run `make`")
    if wanted:
        config.zn_stages = sorted(set(wanted), key=stage_key)
    else:
        config.zn_stages = [s for s in known
                            if (ROOT / s / "build" / "server").exists()]


def pytest_generate_tests(metafunc):
    if "stage" in metafunc.fixturenames:
        metafunc.parametrize("stage", metafunc.config.zn_stages)


def in_range(item, stage):
    since = item.get_closest_marker("since")
    until = item.get_closest_marker("until")
    if since and stage_key(stage) < stage_key(since.args[0]):
        return False
    if until and stage_key(stage) > stage_key(until.args[0]):
        return False
    return True


def pytest_collection_modifyitems(config, items):
    keep, drop = [], []
    for item in items:
        stage = getattr(item, "callspec", None)
        stage = stage.params.get("stage") if stage else None
        (keep if stage is None or in_range(item, stage) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


def limit_open_files(n):
    """Lower RLIMIT_NOFILE (the soft limit) to n in this process."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


class Server:
    """A demo server started by the fixture; its log is a file."""

    def __init__(self, stage, workdir, args, port, conf, conf_text,
                 env=None, nofile=None, exe=None):
        self.stage = stage
        self.workdir = workdir
        self.log_path = workdir / "server.log"
        cmd = server_command(stage, workdir, args, port, conf, conf_text, exe)
        if VALGRIND:
            cmd = VALGRIND_CMD + cmd
        self.cmd = cmd
        self.log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            cmd, cwd=workdir, stdin=subprocess.DEVNULL, stdout=self.log,
            stderr=subprocess.STDOUT, env={**os.environ, **(env or {})},
            preexec_fn=(None if nofile is None else
                        lambda: limit_open_files(nofile)))
        self.pid = self.proc.pid
        self.port = None

    def text(self):
        return self.log_path.read_text(errors="replace")

    def wait_listening(self):
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.text())
            if m:
                self.port = int(m.group(2))
                return self
            if self.proc.poll() is not None:
                pytest.fail(f"server exited with status {self.proc.returncode}"
                            f" before listening:\n{self.text()}")
            time.sleep(0.01)
        pytest.fail(f"server did not print 'listening on' within "
                    f"{START_TIMEOUT}s:\n{self.text()}")

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """The exit status, failing the test if it takes too long."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            pytest.fail(f"server still running {timeout}s later:\n"
                        f"{self.text()}")

    def settle(self, timeout=START_TIMEOUT):
        """Wait until the server exits or prints 'listening on'; return the
        exit status, or None when it is listening (or still starting)."""
        wait_until(lambda: self.proc.poll() is not None or
                   LISTEN_RE.search(self.text()), timeout)
        return self.proc.poll()

    def wait_log(self, pattern, timeout=5.0):
        """Wait until the log matches the regex; return the match."""
        deadline = time.monotonic() + timeout
        while True:
            m = re.search(pattern, self.text())
            if m or time.monotonic() > deadline:
                assert m, f"log never matched {pattern!r}:\n{self.text()}"
                return m
            time.sleep(0.01)

    def stop(self, sig=signal.SIGTERM, timeout=STOP_TIMEOUT):
        """Signal the server and return its exit status (the test fails if
        it takes longer than timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if sanitizer(self.stage) == "thread":
                # ThreadSanitizer can lose a signal that lands just before
                # poll() (see test_signals.py): say it once more.
                try:
                    self.proc.wait(min(2.0, timeout))
                except subprocess.TimeoutExpired:
                    self.proc.send_signal(sig)
        return self.wait_exit(timeout)


@pytest.fixture
def start_server(stage, tmp_path):
    """Factory: start_server(args=None, port=0, conf=None, conf_text=None,
    wait=True, env=None, nofile=None, exe=None).

    For v0.1-v0.3, `args` replaces the command line (default: the port).
    From v0.4 a conf/zinc.json is written with TcpPort=port plus the keys in
    `conf` (conf_text writes the file verbatim; conf=False writes none).
    With wait=True it returns once the server prints 'listening on'.
    `env` adds to (or overrides) the environment, e.g. {"ZN_LOG_LEVEL":
    "warn"}; `nofile` lowers the server's RLIMIT_NOFILE to that many
    descriptors; `exe` runs another server program built against the
    stage (tests/api/, see build_api) instead of its demo.

    On teardown every server still running gets SIGTERM and must exit with
    status 0; a log line from a sanitizer fails the test either way.
    """
    servers = []

    def start(args=None, port=0, conf=None, conf_text=None, wait=True,
              env=None, nofile=None, exe=None):
        workdir = tmp_path / f"server{len(servers)}"
        workdir.mkdir()
        s = Server(stage, workdir, args, port, conf, conf_text, env, nofile,
                   exe)
        servers.append(s)
        return s.wait_listening() if wait else s

    yield start

    failures = []
    for s in servers:
        running = s.proc.poll() is None
        rc = s.stop()
        s.log.close()
        text = s.text()
        print(f"---- log of {' '.join(s.cmd)} (exit {rc})\n{text}")
        if running and rc != 0:
            failures.append(f"exit status {rc} after SIGTERM, expected 0")
        if BAD_LOG_RE.search(text):
            failures.append("sanitizer report in the server log")
    if failures:
        pytest.fail("; ".join(failures))


@pytest.fixture
def server(start_server):
    """The stage's demo server, started with its defaults on port 0."""
    return start_server()
