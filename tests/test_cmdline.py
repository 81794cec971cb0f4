"""v0.1-v0.3 take the port on the command line: bad input is refused with
a usage message and exit status 2, never a server on some other port."""

import pytest


@pytest.mark.until("v0.3")
@pytest.mark.parametrize("args", [["abc"], ["70000"], ["-1"], [""],
                                  ["80x"], ["1", "2"]])
def test_bad_port_argument(start_server, args):
    srv = start_server(args=args, wait=False)
    assert srv.wait_exit() == 2
    assert "usage" in srv.text()
