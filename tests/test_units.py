"""The unit tests of common/ (logger, JSON reader, hash map), built by
`make` as common/build/test_*, run here so one command runs everything."""

import subprocess

import pytest

from zinc import ROOT

UNITS = sorted(p.stem for p in (ROOT / "common" / "tests").glob("test_*.c"))


@pytest.mark.parametrize("unit", UNITS)
def test_common_unit(unit):
    exe = ROOT / "common" / "build" / unit
    assert exe.exists(), f"{exe} is missing: run `make`"
    run = subprocess.run([str(exe)], capture_output=True, text=True,
                         timeout=120)
    print(run.stdout, run.stderr)
    assert run.returncode == 0
    assert " 0 failed" in run.stdout
    assert "Sanitizer" not in run.stderr and "runtime error" not in run.stderr
