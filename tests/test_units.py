"""The unit tests of common/ (logger, JSON reader, hash map), built by
`make` as common/build/test_*, run here so one command runs everything."""

import pytest

from zinc import ROOT, run_unit

UNITS = sorted(p.stem for p in (ROOT / "common" / "tests").glob("test_*.c"))


@pytest.mark.parametrize("unit", UNITS)
def test_common_unit(unit):
    run_unit(ROOT / "common" / "build" / unit)
