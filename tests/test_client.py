"""The unit tests of the client library (client/zn_client.c), built by
`make` as client/build/test_client and run here like common's units: one
program, no stage. It runs fake servers on loopback threads; under
`make test SAN=...` it is the sanitized build that runs."""

from zinc import ROOT, run_unit


def test_client_library():
    run_unit(ROOT / "client" / "build" / "test_client")
