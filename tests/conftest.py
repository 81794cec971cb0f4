"""The black-box harness: one suite, run against any stage.

    pytest tests                   every stage that has been built
    pytest tests --stage v0.2      one stage (repeat --stage for more)
    pytest tests --stage-dir /tmp/mylab/v0.8 --stage-version v0.8
                                   a stage built in another directory (a
                                   learner's lab, say), tested as v0.8

A stage has a version (vX.Y) and a directory. By default the directory is
vX.Y/ at the top of the repository; --stage-dir with --stage-version runs
the suite against that one directory instead, taken for that version: the
version chooses the tests and what they expect (tests/support/stages.py),
the directory gives build/server, build/libzinc.a, build/.flags and zinc/.
The demo prints the name of its directory as its version (ZN_VERSION,
common/stage.mk), and a few tests check that line and the hello reply:
give the lab's directory the name of its version (/tmp/mylab/v0.8).

A test that takes the `stage` argument runs once per selected stage. It
declares the stages it applies to with markers that name features of
the table in tests/support/stages.py:

    @pytest.mark.has("framing")    stages that have framing (v0.5 on)
    @pytest.mark.lacks("conf")     stages without it (v0.1-v0.3)

The markers of a test and of its file (pytestmark) all apply; a stage
they rule out is deselected, not failed.

A chapter's checked exercises are in tests/exercises/, marked with the
exercise they check; `make test` leaves them out, and only
--exercise NAME runs them, against the exercise's own stage:

    @pytest.mark.exercise("v0.8-1")    v0.8's exercise 1
    pytest tests --exercise v0.8-1 --stage-dir lab/v0.8 --stage-version v0.8 The helpers the tests use are in
tests/support/ (its __init__.py lists the modules).
"""

import os
import re
from pathlib import Path

import pytest

# The helpers' own asserts explain themselves as the tests' do (a failing
# round trip shows the reply it got), here and in make grade's scorecard.
pytest.register_assert_rewrite("support")

# With CI (or BUILD_NUMBER) set, pytest explains a failed == between two
# long sequences with a full difflib diff, which is quadratic: 2,000
# wrong frames (a lab's first grade) take minutes. Keep the explanation
# pytest gives elsewhere, the first difference; -v still asks for more.
for var in ("CI", "BUILD_NUMBER"):
    os.environ.pop(var, None)

from support.build import ROOT, sanitizer, set_stage_dir, stage_dir  # noqa: E402
from support.launcher import Server, server_command  # noqa: E402
from support.stages import STAGES, has, stage_key  # noqa: E402

STAGE_RE = re.compile(r"^v\d+\.\d+$")


def all_stages():
    """The stage directories at the top of the repository, in order."""
    return sorted((p.name for p in ROOT.iterdir()
                   if p.is_dir() and STAGE_RE.match(p.name)), key=stage_key)


def pytest_addoption(parser):
    parser.addoption("--stage", action="append", default=[],
                     help="run the tests of this stage (e.g. v0.5); "
                          "repeatable; default: every built stage")
    parser.addoption("--stage-dir", metavar="DIR",
                     help="run the suite against the stage built in DIR "
                          "instead of the repository's stages; needs "
                          "--stage-version")
    parser.addoption("--stage-version", metavar="VERSION",
                     help="the stage DIR of --stage-dir is (e.g. v0.8): "
                          "which tests run and what they expect")
    parser.addoption("--exercise", action="append", default=[],
                     metavar="NAME",
                     help="run only the check of this chapter exercise "
                          "(e.g. v0.8-1, tests/exercises/); repeatable")
    parser.addoption("--scorecard", action="store_true",
                     help="after the run, print make grade's scorecard of "
                          "the stage's promises (tests/support/scorecard.py)")


def lab_stage(config):
    """The version --stage-version names, once its directory is set to
    --stage-dir."""
    where = config.getoption("--stage-dir")
    version = config.getoption("--stage-version")
    if config.getoption("--stage"):
        raise pytest.UsageError(
            "--stage-dir runs one stage: leave out --stage")
    if not version:
        raise pytest.UsageError("--stage-dir needs --stage-version")
    if version not in STAGES:
        raise pytest.UsageError(
            f"--stage-version {version}: no such stage (have: "
            f"{' '.join(STAGES)})")
    if not (Path(where) / "build" / "server").exists():
        raise pytest.UsageError(
            f"--stage-dir {where}: build/server is missing; build it")
    set_stage_dir(version, where)
    return version


def pytest_configure(config):
    config.addinivalue_line("markers",
                            "has(feature, ...): applies to the stages with "
                            "every feature (tests/support/stages.py)")
    config.addinivalue_line("markers",
                            "lacks(feature, ...): applies to the stages "
                            "with none of the features")
    config.addinivalue_line("markers",
                            "exercise(name): checks a chapter exercise "
                            "(v0.8-1); runs only with --exercise name")
    if config.getoption("--scorecard"):
        from support import scorecard
        config.pluginmanager.register(scorecard, "zn-scorecard")
    if config.getoption("--stage-dir"):
        config.zn_stages = [lab_stage(config)]
        return
    if config.getoption("--stage-version"):
        raise pytest.UsageError("--stage-version goes with --stage-dir")
    wanted = config.getoption("--stage")
    known = all_stages()
    for s in known:
        if s not in STAGES:
            raise pytest.UsageError(
                f"{s}: the stage has no row in tests/support/stages.py")
    for s in wanted:
        if s not in known:
            raise pytest.UsageError(
                f"--stage {s}: no such stage (have: {' '.join(known)})")
        if not (stage_dir(s) / "build" / "server").exists():
            raise pytest.UsageError(
                f"--stage {s}: {s}/build/server is missing; run `make`")
    if wanted:
        config.zn_stages = sorted(set(wanted), key=stage_key)
    else:
        config.zn_stages = [s for s in known
                            if (stage_dir(s) / "build" / "server").exists()]


def pytest_generate_tests(metafunc):
    if "stage" in metafunc.fixturenames:
        metafunc.parametrize("stage", metafunc.config.zn_stages)


def applies(item, stage):
    """The test's has() and lacks() markers all hold for the stage."""
    for mark in item.iter_markers("has"):
        if not all(has(stage, feature) for feature in mark.args):
            return False
    for mark in item.iter_markers("lacks"):
        if any(has(stage, feature) for feature in mark.args):
            return False
    return True


def exercise_of(item):
    """The name of the exercise the test checks ("v0.8-1"), or None."""
    mark = item.get_closest_marker("exercise")
    return mark.args[0] if mark else None


def selected(item, stage, exercises, lab):
    """The test runs in this session: an exercise's check only when it is
    asked for, and only against the exercise's stage; with --stage-dir,
    only tests of a stage (not of the docs or the tools)."""
    name = exercise_of(item)
    if name is not None:
        return name in exercises and stage == name.split("-")[0]
    if exercises:
        return False
    if stage is None:
        return not lab
    return applies(item, stage)


def pytest_collection_modifyitems(config, items):
    exercises = config.getoption("--exercise")
    lab = bool(config.getoption("--stage-dir"))
    keep, drop = [], []
    for item in items:
        stage = getattr(item, "callspec", None)
        stage = stage.params.get("stage") if stage else None
        (keep if selected(item, stage, exercises, lab) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


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
        cmd = server_command(stage, workdir, args, port, conf, conf_text, exe)
        s = Server(cmd, workdir, env, nofile,
                   resignal=sanitizer(stage) == "thread")
        servers.append(s)
        return s.wait_listening() if wait else s

    yield start

    failures = []
    for s in servers:
        failures += s.finish()
    if failures:
        pytest.fail("; ".join(failures))


@pytest.fixture
def server(start_server):
    """The stage's demo server, started with its defaults on port 0."""
    return start_server()
