"""Where a stage is and what it was built with; building tests/api/
programs against it and running C unit-test programs.

A stage is found as ROOT/vX.Y unless the run names another directory for
its version (conftest.py's --stage-dir and --stage-version, for a stage
built elsewhere: a learner's lab, say). Everything that builds or runs a
stage asks stage_dir().
"""

import os
import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

_dirs = {}  # version -> directory, for a stage that is not ROOT/version


def set_stage_dir(stage, path):
    """From now on the stage (a version, "v0.8") is the directory path."""
    _dirs[stage] = Path(path).resolve()


def stage_dir(stage):
    """The directory of the stage: ROOT/vX.Y unless set_stage_dir() said
    otherwise."""
    return _dirs.get(stage, ROOT / stage)


def sanitizer(stage):
    """The SAN= value the stage was built with ('' for a plain build)."""
    flags = (stage_dir(stage) / "build" / ".flags").read_text()
    m = re.search(r"-fsanitize=(\S+)", flags)
    return m.group(1) if m else ""


def build_api(stage, name, out_dir):
    """Compile tests/api/NAME.c against the stage's build/libzinc.a, with the
    flags the stage was built with; return the executable's path. The
    program sees ZN_STAGE_MINOR (7 for v0.7, 10 for v1.0) to follow the API
    as it changes."""
    where = stage_dir(stage)
    flags = (where / "build" / ".flags").read_text().split()
    major, minor = (int(x) for x in stage.lstrip("v").split("."))
    flags.append(f"-DZN_STAGE_MINOR={major * 10 + minor}")
    exe = Path(out_dir) / name
    run = subprocess.run(flags + ["-I", str(where), "-I", str(ROOT / "common"),
                                  str(ROOT / "tests" / "api" / f"{name}.c"),
                                  str(where / "build" / "libzinc.a"),
                                  "-o", str(exe)],
                         capture_output=True, text=True,
                         env=dict(os.environ, LC_ALL="C"))
    if run.returncode != 0:
        import pytest  # here: tools/lab.py imports this module without it
        print(run.stderr)
        why = explain_build_error(run.stderr)
        pytest.fail(f"tests/api/{name}.c does not build against "
                    f"{where.name}: " + ("; ".join(why) if why else
                                         run.stderr.strip()[:500]),
                    pytrace=False)
    return exe


# What a compiler or linker says when the code lacks a name, and which
# name it is.
_MISSING = [
    re.compile(r"undefined reference to `(\w+)'"),
    re.compile(r"implicit declaration of function '(\w+)'"),
    re.compile(r"'(\w+)' undeclared"),
    re.compile(r"unknown type name '(\w+)'"),
    re.compile(r"storage size of '\w+' isn't known.*?struct (\w+)"),
]
_NO_HEADER = re.compile(r"(zinc/\w+\.h): No such file")
_NO_MEMBER = re.compile(r"'struct (\w+)' has no member named '(\w+)'")


def origin(name):
    """The first stage whose zinc/ declares the name, and the header it is
    in: ("v0.7", "chan.h"); None when no stage has it."""
    from support.stages import STAGES
    word = re.compile(rf"\b{re.escape(name)}\b")
    for stage in STAGES:
        for h in sorted((ROOT / stage / "zinc").glob("*.h")):
            if word.search(h.read_text()):
                return stage, h.name
    return None


def _new_module(stage, header):
    """The header first appears in this stage."""
    from support.stages import STAGES
    names = list(STAGES)
    i = names.index(stage)
    return i == 0 or not (ROOT / names[i - 1] / "zinc" / header).exists()


def explain_build_error(text):
    """A compiler's and linker's complaints about missing names and
    headers, in a learner's words, each once: "your zinc/ has no
    zn_chan_new: chan.h is v0.7's new module". An empty list when the
    error is of another kind."""
    said = []

    def say(line):
        if line not in said:
            said.append(line)

    for m in _NO_HEADER.finditer(text):
        header = m.group(1).split("/")[1]
        found = [s for s in _stages_with(header)]
        where = f": {header} is {found[0]}'s new module" if found else ""
        say(f"your zinc/ has no {header}{where}")
    for pattern in _MISSING:
        for m in pattern.finditer(text):
            name = m.group(1)
            got = origin(name)
            if got is None:
                say(f"your zinc/ has no {name}, and no stage has it: "
                    "it is yours to add (an exercise's, say)")
            elif _new_module(*got):
                say(f"your zinc/ has no {name}: {got[1]} is {got[0]}'s "
                    "new module")
            else:
                say(f"your zinc/ has no {name}: {got[0]} adds it to "
                    f"zinc/{got[1]}")
    for m in _NO_MEMBER.finditer(text):
        struct, member = m.groups()
        got = origin(member)
        since = f" ({got[0]} adds it)" if got else ""
        say(f"your struct {struct} has no member {member}{since}")
    return said


def _stages_with(header):
    from support.stages import STAGES
    return [s for s in STAGES if (ROOT / s / "zinc" / header).exists()]


_built = {}  # (stage, name) -> executable, for build_api_once


def build_api_once(stage, name, tmp_path_factory):
    """build_api, once per run for each stage: the tests that run one
    program share its build (pytest's tmp_path_factory gives the
    directory)."""
    if (stage, name) not in _built:
        _built[stage, name] = build_api(
            stage, name, tmp_path_factory.mktemp(f"{name}-{stage}"))
    return _built[stage, name]


def run_api(stage, name, out_dir, *args, timeout=60):
    """Build tests/api/NAME.c against the stage (build_api) and run it with
    args; return the finished run (returncode, stdout, stderr). A program
    that does not finish in time, or that a signal kills, fails the test
    with a sentence that says so and its last words."""
    import signal

    import pytest  # here: tools/lab.py imports this module without it
    exe = build_api(stage, name, out_dir)
    try:
        run = subprocess.run([str(exe), *map(str, args)], capture_output=True,
                             text=True, timeout=timeout)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"tests/api/{name}.c did not finish in {timeout} s: "
                    f"something waits forever; it said: "
                    f"{(e.stderr or b'').decode(errors='replace')[-300:]}",
                    pytrace=False)
    print(run.stdout, run.stderr)
    if run.returncode < 0:
        pytest.fail(f"tests/api/{name}.c was killed by "
                    f"{signal.Signals(-run.returncode).name}; it said: "
                    f"{run.stderr[-300:]}", pytrace=False)
    return run


def run_unit(exe):
    """Run a C unit-test program (common/'s, the client library's): it
    must exit 0, print " 0 failed", and no sanitizer line."""
    assert exe.exists(), f"{exe} is missing: run `make`"
    run = subprocess.run([str(exe)], capture_output=True, text=True,
                         timeout=120)
    print(run.stdout, run.stderr)
    assert run.returncode == 0
    assert " 0 failed" in run.stdout
    assert "Sanitizer" not in run.stderr and "runtime error" not in run.stderr
