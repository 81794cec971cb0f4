"""The unit tests of the client library (client/zn_client.c), built by
`make` as client/build/test_client and run here like common's units: one
program, no stage. It runs fake servers on loopback threads; under
`make test SAN=...` it is the sanitized build that runs."""

import subprocess

from zinc import ROOT


def test_client_library():
    exe = ROOT / "client" / "build" / "test_client"
    assert exe.exists(), f"{exe} is missing: run `make`"
    run = subprocess.run([str(exe)], capture_output=True, text=True,
                         timeout=120)
    print(run.stdout, run.stderr)
    assert run.returncode == 0
    assert " 0 failed" in run.stdout
    assert "Sanitizer" not in run.stderr and "runtime error" not in run.stderr
