"""Starting and stopping a server, one way for the suite's fixtures
(conftest.py) and for the benchmark (bench/run.py, which imports this
module by path).

A server runs in a directory of its own, its output (stdout and stderr)
going to server.log there. A demo from v0.4 on reads conf/zinc.json from
that directory; server_command() writes it, with TcpPort 0 unless told
otherwise. The server is ready once its log shows `listening on IP:PORT`,
which also gives the port, and it must stop on SIGTERM with exit status 0.
"""

import json
import os
import re
import resource
import signal
import subprocess
import time

from support.build import sanitizer, stage_dir
from support.proc import wait_until
from support.stages import has

LISTEN_RE = re.compile(r"listening on (\S+):(\d+)")
BAD_LOG_RE = re.compile(r"Sanitizer|runtime error|^==\d+== ", re.M)
# `make test VALGRIND=1` runs every server under valgrind (slower: more time).
VALGRIND = os.environ.get("ZN_VALGRIND", "") not in ("", "0")
VALGRIND_CMD = ["valgrind", "-q", "--max-threads=4096", "--error-exitcode=99",
                "--leak-check=full",
                "--errors-for-leak-kinds=definite", "--show-leak-kinds=definite"]
START_TIMEOUT = 30.0 if VALGRIND else 10.0  # seconds to start listening
STOP_TIMEOUT = 30.0 if VALGRIND else 10.0   # seconds to exit after SIGTERM


def slowdown(stage):
    """How much longer things take than on a plain build of the stage: a
    time bound that only catches a wait without bound is multiplied by it
    (bounds that tell a fixed server from a broken one are scaled less;
    each test says)."""
    if VALGRIND:
        return 20
    return {"": 1, "thread": 5}.get(sanitizer(stage), 3)


def write_conf(workdir, port, conf=None, conf_text=None):
    (workdir / "conf").mkdir(exist_ok=True)
    if conf_text is None:
        conf_text = json.dumps({"TcpPort": port, **(conf or {})})
    (workdir / "conf" / "zinc.json").write_text(conf_text)


def server_command(stage, workdir, args=None, port=0, conf=None,
                   conf_text=None, exe=None):
    """The command line that starts a stage's demo server, or the server
    program exe built against the stage, in workdir: before v0.4 `args`
    (default: the port); from v0.4 it writes workdir/conf/zinc.json unless
    conf is False. Under `make test VALGRIND=1`, valgrind runs it."""
    exe = exe or stage_dir(stage) / "build" / "server"
    if has(stage, "conf"):
        if conf_text is not None or conf is not False:
            write_conf(workdir, port, conf, conf_text)
        cmd = [str(exe)] + list(args or [])
    else:
        cmd = [str(exe)] + (list(args) if args is not None else [str(port)])
    return VALGRIND_CMD + cmd if VALGRIND else cmd


def limit_open_files(n):
    """Set RLIMIT_NOFILE (the soft limit) to n in this process."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (n, hard))


class ServerError(Exception):
    """A server that did not start listening, or did not exit, in time."""


class Server:
    """One server process, started in workdir; its log is a file.

    env adds to (or overrides) the environment; nofile sets its
    RLIMIT_NOFILE; resignal (for a ThreadSanitizer build) says a stop
    signal once more if the first seems lost.
    """

    def __init__(self, cmd, workdir, env=None, nofile=None, resignal=False):
        self.cmd = cmd
        self.workdir = workdir
        self.resignal = resignal
        self.log_path = workdir / "server.log"
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

    def wait_listening(self, timeout=START_TIMEOUT):
        """Wait for `listening on IP:PORT`; set self.port and return self."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTEN_RE.search(self.text())
            if m:
                self.port = int(m.group(2))
                return self
            if self.proc.poll() is not None:
                raise ServerError(f"server exited with status "
                                  f"{self.proc.returncode} before listening:"
                                  f"\n{self.text()}")
            time.sleep(0.01)
        raise ServerError(f"server did not print 'listening on' within "
                          f"{timeout}s:\n{self.text()}")

    def wait_exit(self, timeout=STOP_TIMEOUT):
        """The exit status; a server still running after timeout is
        killed and the caller gets a ServerError."""
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise ServerError(f"server still running {timeout}s later:\n"
                              f"{self.text()}") from None

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
        """Signal the server and return its exit status (a ServerError if
        it takes longer than timeout)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            if self.resignal:
                # ThreadSanitizer can lose a signal that lands just before
                # poll() (see test_signals.py): say it once more.
                try:
                    self.proc.wait(min(2.0, timeout))
                except subprocess.TimeoutExpired:
                    self.proc.send_signal(sig)
        return self.wait_exit(timeout)

    def finish(self):
        """Stop the server if it still runs (SIGTERM), print its log and
        return what went wrong, as a list of sentences: an exit status
        other than 0 after that SIGTERM, a sanitizer or valgrind report in
        the log."""
        running = self.proc.poll() is None
        rc = self.stop()
        self.log.close()
        text = self.text()
        print(f"---- log of {' '.join(self.cmd)} (exit {rc})\n{text}")
        problems = []
        if running and rc != 0:
            problems.append(f"exit status {rc} after SIGTERM, expected 0")
        if BAD_LOG_RE.search(text):
            problems.append("sanitizer report in the server log")
        return problems


def refused(srv, why="the server started on a bad value; it must refuse "
                     "it with status 2"):
    """The exit status of a server that must refuse its configuration,
    failing at once, with why, if it started listening instead."""
    srv.settle()
    assert "listening on" not in srv.text(), why
    return srv.wait_exit()
