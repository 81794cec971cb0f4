"""tools/lab.py (`make lab`, `make grade`): a learner's copy of a stage,
graded by the stage's own tests.

These check the tool itself, in a few seconds: what a lab holds, that a
lab is never overwritten, that a build error is reported as one and in a
learner's words, and that every promise of the scorecard names a test.
CI's `make lab-check` goes further: whole labs graded, and every checked
exercise failing without its solution and passing with it.
"""

import ast
import os
import subprocess
import sys
from fnmatch import fnmatch

import pytest

from support.build import ROOT, explain_build_error
from support.promises import PROMISES
from support.stages import STAGES

TOOL = ROOT / "tools" / "lab.py"


def lab(*args, cwd=ROOT):
    """(exit status, stdout and stderr) of tools/lab.py."""
    run = subprocess.run([sys.executable, str(TOOL), *map(str, args)],
                         capture_output=True, text=True, cwd=cwd, timeout=120)
    return run.returncode, run.stdout + run.stderr


def suite_tests():
    """"file::test_name" of every test function in tests/."""
    names = []
    for f in sorted(ROOT.glob("tests/test_*.py")):
        for node in ast.parse(f.read_text()).body:
            if isinstance(node, ast.FunctionDef) and \
                    node.name.startswith("test_"):
                names.append(f"{f.name}::{node.name}")
    return names


@pytest.mark.parametrize("version", list(STAGES))
def test_every_promise_names_a_test(version):
    names = suite_tests()
    assert PROMISES.get(version), f"{version} has no scorecard promises"
    for title, patterns in PROMISES[version]:
        for p in patterns:
            assert any(fnmatch(n, p) for n in names), \
                f"{version}, {title!r}: {p} names no test"


def test_a_lab_is_the_stage_before_building_as_this_one(tmp_path):
    status, out = lab("new", "v0.7", "--dir", tmp_path / "v0.7")
    assert status == 0, out
    dest = tmp_path / "v0.7"
    for name in ("zinc/connection.c", "demo/server.c"):
        assert (dest / name).read_bytes() == (ROOT / "v0.6" / name).read_bytes()
    assert not (dest / "zinc" / "chan.h").exists()
    assert (dest / "conf" / "zinc.json").read_bytes() == \
        (ROOT / "v0.7" / "conf" / "zinc.json").read_bytes()
    makefile = (dest / "Makefile").read_text()
    assert f"COMMON := {ROOT / 'common'}" in makefile
    assert "v0.6's zinc/ and demo/, building as v0.7" in out
    assert "new      zinc/chan.h" in out  # the files the lesson touches
    assert "make grade STAGE=v0.7" in out


def test_an_existing_lab_is_left_alone(tmp_path):
    dest = tmp_path / "v0.3"
    assert lab("new", "v0.3", "--dir", dest)[0] == 0
    (dest / "zinc" / "server.c").write_text("my work\n")
    status, out = lab("new", "v0.3", "--dir", dest)
    assert status == 0
    assert "exists: it is left as it is" in out and "rm -rf" in out
    assert (dest / "zinc" / "server.c").read_text() == "my work\n"


def test_a_lab_is_named_after_its_version(tmp_path):
    status, out = lab("new", "v0.3", "--dir", tmp_path / "mylab")
    assert status != 0
    assert "must be a directory named v0.3" in out
    assert not (tmp_path / "mylab").exists()


def test_a_build_error_is_not_a_test_failure(tmp_path):
    """The first stage's lab has its headers and no zinc/*.c: grading it
    says what is missing, in a learner's words, and runs no test."""
    dest = tmp_path / "v0.1"
    assert lab("new", "v0.1", "--dir", dest)[0] == 0
    status, out = lab("grade", "v0.1", "--dir", dest)
    assert status == 2, out
    assert "BUILD FAILED" in out
    assert "your zinc/ has no zn_server_new: server.h is v0.1's new module" \
        in out
    assert "No test ran" in out and "passed" not in out


@pytest.mark.parametrize("text,said", [
    ("x.c:(.text+0x1): undefined reference to `zn_chan_new'",
     "your zinc/ has no zn_chan_new: chan.h is v0.7's new module"),
    ("t.c:9:5: error: implicit declaration of function 'zn_conn_hold'",
     "your zinc/ has no zn_conn_hold: v0.7 adds it to zinc/connection.h"),
    ("t.c:1:10: fatal error: zinc/chan.h: No such file or directory",
     "your zinc/ has no chan.h: chan.h is v0.7's new module"),
    ("t.c:4:3: error: 'zn_no_such_thing' undeclared (first use)",
     "your zinc/ has no zn_no_such_thing, and no stage has it: it is yours "
     "to add (an exercise's, say)"),
])
def test_build_errors_in_a_learners_words(text, said):
    assert explain_build_error(text) == [said]


def test_grade_without_a_lab_says_how_to_make_one(tmp_path):
    status, out = lab("grade", "v0.5", "--dir", tmp_path / "v0.5")
    assert status == 2
    assert "does not exist: make it with `make lab STAGE=v0.5`" in out


def test_a_failing_lab_is_graded_quickly_on_ci(tmp_path):
    """A fresh v0.6 lab answers 2,000 pipelined pings with the wrong id. On
    CI (CI set), pytest would explain that mismatch with a full diff of
    the 2,000 frames, quadratic in time: minutes for one test. The suite
    keeps the short explanation, so the failure comes in seconds."""
    dest = tmp_path / "v0.6"
    assert lab("new", "v0.6", "--dir", dest)[0] == 0
    build = subprocess.run(["make", "-C", str(dest)], capture_output=True)
    assert build.returncode == 0, build.stderr.decode()[-500:]
    try:
        run = subprocess.run(
            ["pytest", "tests", "--stage-dir", str(dest), "--stage-version",
             "v0.6", "-p", "no:cacheprovider", "-q", "--tb=short",
             "-k", "test_2000_pipelined"],
            cwd=ROOT, capture_output=True, text=True, timeout=60,
            env=dict(os.environ, CI="true"))
    except subprocess.TimeoutExpired:
        pytest.fail("one failing comparison of 2,000 frames took over 60 s "
                    "with CI set: pytest's full diff is back")
    assert run.returncode == 1, run.stdout[-2000:]
    assert "1 failed" in run.stdout
