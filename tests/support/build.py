"""Where a stage is and what it was built with; building tests/api/
programs against it and running C unit-test programs.

A stage is found as ROOT/vX.Y unless the run names another directory for
its version (conftest.py's --stage-dir and --stage-version, for a stage
built elsewhere: a learner's lab, say). Everything that builds or runs a
stage asks stage_dir().
"""

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
    subprocess.run(flags + ["-I", str(where), "-I", str(ROOT / "common"),
                            str(ROOT / "tests" / "api" / f"{name}.c"),
                            str(where / "build" / "libzinc.a"),
                            "-o", str(exe)], check=True)
    return exe


_built = {}  # (stage, name) -> executable, for build_api_once


def build_api_once(stage, name, tmp_path_factory):
    """build_api, once per run for each stage: the tests that run one
    program share its build (pytest's tmp_path_factory gives the
    directory)."""
    if (stage, name) not in _built:
        _built[stage, name] = build_api(
            stage, name, tmp_path_factory.mktemp(f"{name}-{stage}"))
    return _built[stage, name]


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
