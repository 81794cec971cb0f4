"""The C unit-test programs that `make` builds, run here so one command
runs everything; none of them takes a stage.

- common/'s units (logger, JSON reader, hash map, ...), built as
  common/build/test_*;
- the client library's (client/zn_client.c), built as
  client/build/test_client. It runs fake servers on loopback threads.

Under `make test SAN=...` it is the sanitized builds that run."""

import pytest

from support.build import ROOT, run_unit

UNITS = sorted(p.stem for p in (ROOT / "common" / "tests").glob("test_*.c"))


@pytest.mark.parametrize("unit", UNITS)
def test_common_unit(unit):
    run_unit(ROOT / "common" / "build" / unit)


def test_client_library():
    run_unit(ROOT / "client" / "build" / "test_client")
