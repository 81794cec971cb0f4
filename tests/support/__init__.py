"""The helpers of the black-box suite in tests/, one module a concern:

    wire.py      sockets and TLV frames: connect, pack, read_frame, ...
    proc.py      what /proc tells about a process (threads, descriptors,
                 memory, CPU) and about TCP sockets; wait_until
    stages.py    the one table of what each stage has, asked with
                 has(stage, "framing") or STAGES[stage], and what its demo
                 answers
    demo.py      talking to a stage's demo server: open_conn, roundtrip,
                 conn_id, ...
    build.py     where a stage is (stage_dir), its sanitizer, building
                 tests/api/ programs against it, running unit programs
    launcher.py  starting and stopping a server (conftest.py's fixtures and
                 bench/run.py): Server, server_command

A test imports what it uses from each: `from support.wire import pack`.
tests/ is on sys.path because tests/conftest.py lives there (pytest's
default import mode), so `support` imports like any package.
"""
