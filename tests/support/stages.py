"""What each stage has: the one table the tests ask, instead of comparing
version numbers.

A stage has the features its own lesson adds and every feature of the
stages before it. Ask has(stage, "framing") for a feature, STAGES[stage]
for a value that changes from stage to stage (what the demo speaks, the id
of its ping reply, threads per connection, the framework's end word). The
pytest markers has("...") and lacks("...") in conftest.py ask the same
table to choose the stages a test runs against.

A stage is named by its version ("v0.8"); where its directory is, is
build.py's business.
"""

from typing import NamedTuple


def stage_key(stage):
    """'v0.10' sorts after 'v0.9': compare version numbers, not text."""
    return tuple(int(x) for x in stage.lstrip("v").split("."))


class Stage(NamedTuple):
    """One row of the table."""
    adds: set              # the features this stage's lesson adds
    demo: str              # what its demo server speaks: "echo" (every
                           # byte back), "lines" (the ping router's three
                           # lines per chunk read) or "frames" (TLV)
    ping_id: int | None    # the msg id of the demo's reply to a message
                           # with id 0 (None before framing)
    threads_per_conn: int  # a reader; from the read/write split a writer
    end_word: str          # the framework's own line at a connection's
                           # end: `conn N stopped`; from v0.9, where the
                           # demo's on_conn_stop hook says `stopped`,
                           # `conn N closed`


# In lesson order: a stage has what its row adds and what the rows above do.
STAGES = {
    #      Stage(adds, demo, ping_id, threads_per_conn, end_word)
    "v0.1": Stage({"server"},                   "echo",   None, 1, "stopped"),
    "v0.2": Stage({"connection"},               "echo",   None, 1, "stopped"),
    "v0.3": Stage({"router"},                   "lines",  None, 1, "stopped"),
    "v0.4": Stage({"conf"},                     "lines",  None, 1, "stopped"),
    "v0.5": Stage({"framing"},                  "frames", 1,    1, "stopped"),
    "v0.6": Stage({"routing"},                  "frames", 0,    1, "stopped"),
    "v0.7": Stage({"writer"},                   "frames", 0,    2, "stopped"),
    "v0.8": Stage({"workers", "slow_clients"},  "frames", 0,    2, "stopped"),
    "v0.9": Stage({"connmgr", "greeting"},      "frames", 0,    2, "closed"),
    "v1.0": Stage({"properties"},               "frames", 0,    2, "closed"),
    "v1.1": Stage({"event_loop"},               "frames", 0,    0, "closed"),
}
# What the features mean:
#   server            v0.1  listen, accept, a thread per client; the port on
#                           the command line
#   connection        v0.2  the connection object: `conn N started`, `stopped`
#   router            v0.3  requests and the router: pre_handle, handle,
#                           post_handle
#   conf              v0.4  conf/zinc.json instead of the port argument
#   framing           v0.5  TLV messages (DataLen, MsgID), MaxPacketSize
#   routing           v0.6  the message handler: msg id 0 ping, 1 hello
#   writer            v0.7  the read/write split: a writer thread and an
#                           outgoing channel (MaxMsgChanLen) per connection
#   workers           v0.8  the worker pool (WorkerPoolSize, MaxWorkerTaskLen)
#   slow_clients      v0.8  flow control for clients that read slowly: the
#                           reader waits while half the outgoing channel is
#                           taken; a client that takes no byte of its
#                           replies for 500 ms is stopped (`too slow`)
#   connmgr           v0.9  the connection manager (MaxConn) and the hooks
#   greeting          v0.9  the demo greets each new client with GREETING
#   properties        v1.0  connection properties (msg ids 3, 4, 5)
#   event_loop        v1.1  WorkerPoolSize event loops read, route and write
#                           for their connections: no thread per connection
#                           (threads_per_conn 0), no channel

FEATURES = set().union(*(row.adds for row in STAGES.values()))


def features(stage):
    """Every feature the stage has: its own and every earlier stage's."""
    have = set()
    for name, row in STAGES.items():
        have |= row.adds
        if name == stage:
            return have
    raise KeyError(f"{stage} has no row in tests/support/stages.py")


def has(stage, feature):
    """True when the stage has the feature (a name from FEATURES)."""
    if feature not in FEATURES:
        raise ValueError(f"no feature {feature!r} in tests/support/stages.py")
    return feature in features(stage)


# ---- what the demo servers say ----

# The router demo (v0.3-v0.4) answers every chunk it reads with three lines.
ROUTER_LINES = b"before ping\nping...ping...ping\nafter ping\n"
PING = b"ping...ping...ping"
# From v0.9 the demo's on_conn_start sends every new client this first.
GREETING = (2, b"DoConnection BEGIN...")


def ping_reply(stage):
    """The demo's answer to a message with id 0 (v0.5: always id 1)."""
    return STAGES[stage].ping_id, PING


def hello_reply(stage):
    """The demo's answer to a message with id 1 (v0.6+)."""
    return (1, b"Hello Zinc Router " + stage.encode())


def reply_to(stage, msg_id):
    """The demo's answer to a message with id 0 or 1, as (msg_id, data)."""
    if msg_id == 1 and has(stage, "routing"):
        return hello_reply(stage)
    return ping_reply(stage)
