"""v1.0: connection properties. Every connection carries a map from string
keys to byte-string values (zn_conn_set/get/remove/foreach_property). The
demo server lets a client reach its own connection's map:

    MsgID 3 "key=value"  set (split at the first '=') -> 3 "OK"
    MsgID 4 "key"        get                           -> 4 value
    MsgID 5 "key"        remove                        -> 5 "OK"

and answers anything it cannot do with the same id and a body that starts
with "ERR ", keeping the connection open. on_conn_start sets Name = "zinc"
and Stage = the stage; on_conn_stop logs `conn N property KEY=VALUE` for
each property, escaped. At most 64 properties per connection, keys of 1
to 64 bytes. tests/api/properties.c checks the C API itself, with many
threads on one connection."""

import re
import random
import subprocess
import threading
from collections import Counter

import pytest

from support.build import build_api_once
from support.demo import conn_id, open_conn, stopped_lines
from support.launcher import slowdown
from support.proc import wait_until
from support.stages import ping_reply
from support.wire import HEADER, is_closed, pack, read_frame, reset_close

pytestmark = pytest.mark.has("properties")

SET, GET, REMOVE = 3, 4, 5
MAX_PROPERTIES = 64
MAX_KEY = 64




# ---- a client for the property routers -----------------------------------

def request(sock, msg_id, body):
    """Send one message, return the reply (msg_id, body)."""
    sock.sendall(pack(msg_id, body))
    return read_frame(sock)


def set_prop(sock, key, value):
    return request(sock, SET, key + b"=" + value)


def get_prop(sock, key):
    return request(sock, GET, key)


def remove_prop(sock, key):
    return request(sock, REMOVE, key)


def assert_ok(reply, msg_id):
    assert reply == (msg_id, b"OK"), reply


def assert_err(reply, msg_id):
    """The same msg id back, and a body that starts with "ERR "."""
    rid, body = reply
    assert rid == msg_id and body.startswith(b"ERR "), reply


def assert_value(sock, key, value):
    reply = get_prop(sock, key)
    assert reply == (GET, value), \
        f"get {key!r}: {reply!r}, want {value[:80]!r} ({len(value)} bytes)"


def assert_open(stage, sock):
    """The connection still works: a ping round trip (MsgID 0)."""
    assert request(sock, 0, b"still there?") == ping_reply(stage)


# ---- the stop log --------------------------------------------------------

def escape(data):
    """Bytes as the log shows them (zn_log_escape): printable ASCII as is,
    a backslash doubled, every other byte as \\xHH."""
    out = []
    for b in data:
        if b == 0x5C:
            out.append("\\\\")
        elif 0x20 <= b < 0x7F:
            out.append(chr(b))
        else:
            out.append(f"\\x{b:02x}")
    return "".join(out)


def property_texts(server, cid):
    """The `KEY=VALUE` texts of the `conn N property` lines, in order."""
    return re.findall(rf"\bconn {cid} property (.*)$", server.text(), re.M)


def property_lines(server, cid):
    """Counter of the `KEY=VALUE` texts of every `conn N property` line."""
    return Counter(property_texts(server, cid))


def expected_lines(props):
    return Counter(escape(k) + "=" + escape(v) for k, v in props.items())


def logged_as(shown, value):
    """Does the log's text `shown` stand for value: its whole escaped form,
    or a start of it marked "..." (a value too long for one line)?"""
    full = escape(value)
    return shown == full or (shown.endswith("...") and
                             full.startswith(shown[:-3]))


def assert_logged(server, cid, props):
    """Wait for one `conn N property` line per property of connection cid,
    then check each shows its key whole and its value (maybe cut)."""
    def lines():
        return [t.split("=", 1) for t in property_texts(server, cid)]

    wait_until(lambda: len(lines()) >= len(props))
    got = lines()
    assert sorted(k for k, _ in got) == sorted(escape(k) for k in props), \
        server.text()
    for k, v in props.items():
        [shown] = [s for key, s in got if key == escape(k)]
        assert logged_as(shown, v), f"conn {cid} {k!r}: {shown[:80]}"


# Keys and values that need care in the log: a NUL, control characters, a
# newline that would start a forged line, bytes above 0x7f, backslashes
# (doubled, so that a literal "\x41" cannot pass for an escaped byte), an
# '=' in a value, an empty value.
TRICKY = {
    b"plain": b"value",
    b"bin": bytes([0, 1, 0x0A, 0x1B, 0x7F, 0x80, 0xFF]) + b"end",
    b"back\\slash": b"a\\b\\x41",
    b"ctl\x01\xfe": b"v",
    b"forge": b"x\nconn 0 property Evil=1",
    b"eq": b"x=y=z",
    b"empty": b"",
}


# 1. Name and Stage --------------------------------------------------------

def test_name_and_stage_are_set_from_the_start(stage, server):
    """on_conn_start sets Name = "zinc" and Stage = the stage before the
    client sends anything: the first request can read them, on every new
    connection."""
    for _ in range(2):
        sock = open_conn(stage, server.port)
        assert_value(sock, b"Name", b"zinc")
        assert_value(sock, b"Stage", stage.encode())
        sock.close()


# 2. Round trips -----------------------------------------------------------

def test_set_get_remove_round_trip(stage, server):
    """Set then get returns the value; a second set replaces it (longer,
    then shorter); remove says OK, after which get and a second remove
    are errors; the key can be set again afterwards."""
    sock = open_conn(stage, server.port)
    assert_ok(set_prop(sock, b"color", b"blue"), SET)
    assert_value(sock, b"color", b"blue")
    assert_ok(set_prop(sock, b"color", b"a much longer shade of green"), SET)
    assert_value(sock, b"color", b"a much longer shade of green")
    assert_ok(set_prop(sock, b"color", b"r"), SET)
    assert_value(sock, b"color", b"r")
    assert_ok(remove_prop(sock, b"color"), REMOVE)
    assert_err(get_prop(sock, b"color"), GET)
    assert_err(remove_prop(sock, b"color"), REMOVE)
    assert_ok(set_prop(sock, b"color", b"again"), SET)
    assert_value(sock, b"color", b"again")
    # The others are untouched by all that.
    assert_value(sock, b"Name", b"zinc")
    assert_value(sock, b"Stage", stage.encode())


def test_unknown_key_is_an_error(stage, server):
    """Get and remove of a key that was never set: ERR, and the
    connection stays open. Keys are case-sensitive."""
    sock = open_conn(stage, server.port)
    assert_err(get_prop(sock, b"nosuchkey"), GET)
    assert_err(remove_prop(sock, b"nosuchkey"), REMOVE)
    assert_err(get_prop(sock, b"name"), GET)
    assert_open(stage, sock)


def test_empty_value_and_split_at_the_first_equals(stage, server):
    """b"k=" sets k to the empty value (get returns an empty body, not an
    error); b"a=b=c" sets a to b"b=c"; b"x==" sets x to b"="."""
    sock = open_conn(stage, server.port)
    assert_ok(request(sock, SET, b"k="), SET)
    assert_value(sock, b"k", b"")
    assert_ok(request(sock, SET, b"a=b=c"), SET)
    assert_value(sock, b"a", b"b=c")
    assert_err(get_prop(sock, b"a=b"), GET)
    assert_ok(request(sock, SET, b"x=="), SET)
    assert_value(sock, b"x", b"=")
    assert_ok(remove_prop(sock, b"k"), REMOVE)
    assert_err(get_prop(sock, b"k"), GET)


# 3. Any bytes -------------------------------------------------------------

def test_values_hold_any_bytes(stage, server):
    """A value is bytes, not a C string: all 256 byte values, NUL bytes
    anywhere (first, last, only), a backslash, read back byte for byte."""
    sock = open_conn(stage, server.port)
    values = {
        b"all": bytes(range(256)),
        b"reversed": bytes(range(255, -1, -1)),
        b"nul": b"\x00",
        b"nuls": b"\x00" * 100,
        b"inner": b"before\x00after\x00",
        b"crlf": b"line\r\nline\n",
        b"high": bytes(range(0x80, 0x100)) * 3,
    }
    for k, v in values.items():
        assert_ok(set_prop(sock, k, v), SET)
    for k, v in values.items():
        assert_value(sock, k, v)


def test_a_4_kib_value(stage, start_server):
    """A 4 KiB value of random bytes (MaxPacketSize raised to 8192: it
    bounds the whole body "key=value") comes back byte for byte, and
    replacing it with a short one does not leave any of it behind."""
    srv = start_server(conf={"MaxPacketSize": 8192})
    sock = open_conn(stage, srv.port)
    big = random.Random(1).randbytes(4096)
    assert_ok(set_prop(sock, b"big", big), SET)
    assert_value(sock, b"big", big)
    ramp = bytes(range(256)) * 24  # 6 KiB
    assert_ok(set_prop(sock, b"ramp", ramp), SET)
    assert_value(sock, b"ramp", ramp)
    assert_value(sock, b"big", big)
    assert_ok(set_prop(sock, b"big", b"small"), SET)
    assert_value(sock, b"big", b"small")


# 4. Isolation -------------------------------------------------------------

def test_properties_belong_to_one_connection(stage, server):
    """What one client sets, another cannot see; each connection's Name
    is its own; a connection opened after another closed starts afresh."""
    a = open_conn(stage, server.port)
    b = open_conn(stage, server.port)
    assert_ok(set_prop(a, b"secret", b"for a"), SET)
    assert_err(get_prop(b, b"secret"), GET)
    assert_err(remove_prop(b, b"secret"), REMOVE)
    assert_value(a, b"secret", b"for a")

    assert_ok(set_prop(a, b"Name", b"alice"), SET)
    assert_value(b, b"Name", b"zinc")
    assert_ok(set_prop(b, b"Name", b"bob"), SET)
    assert_value(a, b"Name", b"alice")
    assert_value(b, b"Name", b"bob")
    assert_ok(remove_prop(b, b"Name"), REMOVE)
    assert_err(get_prop(b, b"Name"), GET)
    assert_value(a, b"Name", b"alice")

    a.close()
    c = open_conn(stage, server.port)
    assert_err(get_prop(c, b"secret"), GET)
    assert_value(c, b"Name", b"zinc")
    assert_err(get_prop(b, b"secret"), GET)


# 5. Limits ----------------------------------------------------------------

def test_at_most_64_properties(stage, server):
    """64 properties per connection, Name and Stage included: 62 new keys
    fit, the next new one is refused (and not stored); replacing a key
    still works at the limit; after a remove one new key fits again."""
    sock = open_conn(stage, server.port)
    free = MAX_PROPERTIES - 2  # Name and Stage
    for i in range(free):
        assert_ok(set_prop(sock, b"p%d" % i, b"v%d" % i), SET)
    assert_err(set_prop(sock, b"one-too-many", b"x"), SET)
    assert_err(get_prop(sock, b"one-too-many"), GET)
    assert_err(set_prop(sock, b"one-too-many", b"x"), SET)  # still full

    assert_ok(set_prop(sock, b"p0", b"replaced"), SET)
    assert_value(sock, b"p0", b"replaced")
    assert_ok(set_prop(sock, b"Name", b"full"), SET)
    assert_value(sock, b"Name", b"full")

    assert_ok(remove_prop(sock, b"p1"), REMOVE)
    assert_ok(set_prop(sock, b"one-too-many", b"fits now"), SET)
    assert_value(sock, b"one-too-many", b"fits now")
    assert_err(set_prop(sock, b"another", b"x"), SET)
    for i in range(2, free):
        assert_value(sock, b"p%d" % i, b"v%d" % i)
    assert_value(sock, b"Stage", stage.encode())
    assert_open(stage, sock)


def test_key_length_limit(stage, server):
    """A key of 64 bytes is fine for set, get and remove; a key of 65 is
    refused by all three, and is not stored cut to 64 either."""
    sock = open_conn(stage, server.port)
    k64 = b"k" * (MAX_KEY - 1) + b"Z"
    assert len(k64) == MAX_KEY
    assert_ok(set_prop(sock, k64, b"sixty-four"), SET)
    assert_value(sock, k64, b"sixty-four")
    assert_ok(remove_prop(sock, k64), REMOVE)
    assert_err(get_prop(sock, k64), GET)

    k65 = k64 + b"X"
    assert_err(set_prop(sock, k65, b"too long"), SET)
    assert_err(get_prop(sock, k64), GET)  # not stored under 64 bytes
    assert_err(get_prop(sock, k65), GET)
    assert_err(remove_prop(sock, k65), REMOVE)
    assert_err(set_prop(sock, b"L" * 1000, b"much too long"), SET)
    assert_open(stage, sock)


def test_key_with_a_nul_byte_is_refused(stage, server):
    """Keys are strings: a key holding a NUL is refused by set, get and
    remove, never taken as the string before the NUL."""
    sock = open_conn(stage, server.port)
    assert_err(set_prop(sock, b"a\x00b", b"v"), SET)
    assert_err(get_prop(sock, b"a"), GET)  # not stored as "a"
    assert_err(get_prop(sock, b"a\x00b"), GET)
    assert_err(get_prop(sock, b"Name\x00"), GET)  # not Name
    assert_err(remove_prop(sock, b"Name\x00junk"), REMOVE)
    assert_value(sock, b"Name", b"zinc")  # the remove did not take Name
    assert_open(stage, sock)


# 6. Malformed requests ----------------------------------------------------

@pytest.mark.parametrize("msg_id,body", [
    (SET, b"no equals sign"),
    (SET, b"=value"),
    (SET, b"="),
    (SET, b""),
    (GET, b""),
    (REMOVE, b""),
], ids=["set-no-equals", "set-empty-key", "set-only-equals", "set-empty",
        "get-empty", "remove-empty"])
def test_malformed_request_gets_err_and_the_connection_stays(
        stage, server, msg_id, body):
    """A malformed body gets a reply with the same id starting "ERR ",
    changes nothing, and the connection goes on: a ping works, twice."""
    sock = open_conn(stage, server.port)
    assert_err(request(sock, msg_id, body), msg_id)
    assert_open(stage, sock)
    assert_err(request(sock, msg_id, body), msg_id)
    assert_open(stage, sock)
    assert_value(sock, b"Name", b"zinc")
    assert_err(get_prop(sock, b""), GET)  # nothing stored under ""


# 7. The stop log ----------------------------------------------------------

def test_stop_log_lists_every_property_escaped(stage, server):
    """When a client leaves, on_conn_stop logs `conn N property KEY=VALUE`
    once for every property the connection still has, after `conn N
    stopped`, with client bytes escaped (\\xHH, a backslash doubled): no
    forged lines, nothing of another connection, no removed key."""
    sock = open_conn(stage, server.port)
    cid = conn_id(server, sock)
    other = open_conn(stage, server.port)
    ocid = conn_id(server, other)
    assert_ok(set_prop(other, b"not-mine", b"other"), SET)

    props = {b"Name": b"zinc", b"Stage": stage.encode(), **TRICKY}
    for k, v in TRICKY.items():
        assert_ok(set_prop(sock, k, v), SET)
    assert_ok(set_prop(sock, b"gone", b"removed before the end"), SET)
    assert_ok(remove_prop(sock, b"gone"), REMOVE)
    assert property_lines(server, cid) == Counter()  # not before the end
    sock.close()

    want = expected_lines(props)
    server.wait_log(rf"\bconn {cid} stopped\b")
    wait_until(lambda: property_lines(server, cid) == want)
    assert property_lines(server, cid) == want, server.text()
    assert stopped_lines(server, cid) == 1
    text = server.text()
    first = re.search(rf"\bconn {cid} property ", text).start()
    assert re.search(rf"\bconn {cid} stopped\b", text).start() < first
    assert not re.search(r"^conn \d+ property Evil", text, re.M)
    assert not re.search(r"not-mine|\bgone\b", text)  # other stays open

    other.close()
    server.wait_log(rf"\bconn {ocid} stopped\b")
    owant = expected_lines({b"Name": b"zinc", b"Stage": stage.encode(),
                            b"not-mine": b"other"})
    wait_until(lambda: property_lines(server, ocid) == owant)
    assert property_lines(server, ocid) == owant, server.text()
    assert property_lines(server, cid) == want  # no second round


@pytest.mark.parametrize("end", ["reset", "oversized"])
def test_stop_log_after_an_abort(stage, server, end):
    """A connection that ends by abort, not by the client's FIN: a reset
    (RST), or a frame over MaxPacketSize that the server closes the
    connection for. on_conn_stop still sees every property, once."""
    sock = open_conn(stage, server.port)
    cid = conn_id(server, sock)
    props = {b"Name": b"aborted", b"Stage": stage.encode(),
             b"why": end.encode(), b"bin": b"\x00\\\xff"}
    for k, v in props.items():
        assert_ok(set_prop(sock, k, v), SET)
    if end == "reset":
        reset_close(sock)
    else:
        sock.sendall(HEADER.pack(4097, SET))  # MaxPacketSize 4096
        assert is_closed(sock)
        sock.close()
    server.wait_log(rf"\bconn {cid} stopped\b")
    want = expected_lines(props)
    wait_until(lambda: property_lines(server, cid) == want)
    assert property_lines(server, cid) == want, server.text()
    assert stopped_lines(server, cid) == 1


@pytest.mark.parametrize("size", [None, 0], ids=["default-pool", "no-pool"])
def test_stop_log_at_server_stop(stage, start_server, size):
    """SIGTERM with clients still connected: each connection's
    on_conn_stop still sees and logs all its properties, exactly once,
    and the server exits 0."""
    srv = start_server(conf={} if size is None else {"WorkerPoolSize": size})
    socks, want = [], {}
    for n in range(3):
        sock = open_conn(stage, srv.port)
        cid = conn_id(srv, sock)
        props = {b"Name": b"conn%d" % n, b"Stage": stage.encode(),
                 b"n": bytes([n]) * (n + 1), b"back\\": b"\\"}
        if n == 1:
            props.update(TRICKY)
        for k, v in props.items():
            if k != b"Stage":
                assert_ok(set_prop(sock, k, v), SET)
        socks.append(sock)
        want[cid] = expected_lines(props)
    assert srv.stop() == 0
    for cid, lines in want.items():
        assert stopped_lines(srv, cid) == 1, srv.text()
        assert property_lines(srv, cid) == lines, srv.text()
    for sock in socks:
        sock.close()


def test_stop_log_cuts_a_long_value_with_dots(stage, start_server):
    """A value too long for one log line is cut where a whole escaped
    byte ends and marked with "..." (demo/server.c: "A long value is cut,
    ending with '...'"); a line that merely stops must not pass for the
    whole value. The key is shown whole."""
    srv = start_server(conf={"MaxPacketSize": 8192})
    sock = open_conn(stage, srv.port)
    cid = conn_id(srv, sock)
    values = {b"long-text": b"A" * 4000,
              b"long-bin": bytes(range(256)) * 16}
    for k, v in values.items():
        assert_ok(set_prop(sock, k, v), SET)
    sock.close()
    srv.wait_log(rf"\bconn {cid} stopped\b")
    wait_until(lambda: sum(property_lines(srv, cid).values()) == 4)
    lines = property_lines(srv, cid)
    assert sum(lines.values()) == 4, srv.text()
    for k, v in values.items():
        prefix = escape(k) + "="
        [text] = [t for t in lines if t.startswith(prefix)]
        shown = text[len(prefix):]
        assert shown.endswith("..."), \
            f"{k!r}: {len(shown)} chars, cut without '...': ...{shown[-20:]}"
        shown = shown[:-3]
        # Cut between two escaped bytes, never inside one.
        bounds, n = set(), 0
        for b in v:
            bounds.add(n)
            n += len(escape(bytes([b])))
        full = escape(v)
        assert len(shown) in bounds and full.startswith(shown), \
            f"{k!r}: cut inside an escape: ...{shown[-20:]}"
        assert len(shown) >= 200, f"{k!r}: only {len(shown)} chars shown"


# 8. Concurrency -----------------------------------------------------------

@pytest.mark.parametrize("size", [None, 0], ids=["default-pool", "no-pool"])
def test_many_clients_set_and_get_at_once(stage, start_server, size):
    """16 clients, each its own connection and thread, 200 rounds each:
    set the shared key names k and Name to a value of its own (random
    bytes, 0-300 long, NULs included) and get it back in the same write.
    Every get returns exactly what that connection set last, never
    another client's value; the stop log then has each connection's last
    values."""
    srv = start_server(conf={} if size is None else {"WorkerPoolSize": size})
    clients, rounds = 16, 200
    start = threading.Barrier(clients)
    errors, last, cids = [], {}, {}

    def client(t):
        rng = random.Random(t)
        try:
            sock = open_conn(stage, srv.port)
            cids[t] = conn_id(srv, sock)
            mine = {}
            start.wait(timeout=10 * slowdown(stage))
            for i in range(rounds):
                value = b"%d:%d:" % (t, i) + rng.randbytes(rng.randrange(300))
                key = b"k" if i % 2 else b"Name"
                sock.sendall(pack(SET, key + b"=" + value) + pack(GET, key) +
                             pack(GET, b"Stage"))
                got = [read_frame(sock) for _ in range(3)]
                want = [(SET, b"OK"), (GET, value), (GET, stage.encode())]
                if got != want:
                    errors.append(f"client {t} round {i}: {got!r}")
                    return
                mine[key] = value
            for key, value in mine.items():
                assert get_prop(sock, key) == (GET, value)
            last[t] = mine
            sock.close()
        except Exception as e:  # reported below, with the others
            errors.append(f"client {t}: {e!r}")

    threads = [threading.Thread(target=client, args=(t,))
               for t in range(clients)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout=60 * slowdown(stage))
    assert not any(th.is_alive() for th in threads), "a client hangs"
    assert errors == [], errors[:5]

    for t in range(clients):
        assert_logged(srv, cids[t], {**last[t], b"Stage": stage.encode()})


def test_pipelined_requests_see_each_other_in_order(stage, server):
    """One connection, 300 requests in one write: set, get, remove, get
    of the same key over and over; the replies come in order and each get
    sees the request before it (one connection's requests are handled in
    the order they came, even with a worker pool)."""
    sock = open_conn(stage, server.port)
    out, want = bytearray(), []
    for i in range(75):
        value = b"v%d" % i
        out += (pack(SET, b"x=" + value) + pack(GET, b"x") +
                pack(REMOVE, b"x") + pack(GET, b"x"))
        want += [(SET, b"OK"), (GET, value), (REMOVE, b"OK"), None]
    sock.sendall(out)
    for i, w in enumerate(want):
        got = read_frame(sock)
        if w is None:
            assert_err(got, GET)
        else:
            assert got == w, f"reply {i}: {got!r}, want {w!r}"


def test_api_properties_many_threads_one_connection(stage, tmp_path_factory):
    """tests/api/properties.c: the C API on one connection that is never
    started. Single-threaded, the contract of connection.h (get copies,
    set copies, -EINVAL/-ENOSPC/-ENOENT, foreach, properties outlive a
    stop); then setters, getters, a remover, fillers that keep the map at
    its 64-property limit and a foreach walker, all at once: every value
    read is one that was set for that key, whole; never more than 64
    properties; everything freed at the release (ASan, TSan builds)."""
    exe = build_api_once(stage, "properties", tmp_path_factory)
    run = subprocess.run([str(exe)], capture_output=True, text=True,
                         timeout=180)
    print(run.stdout, run.stderr)
    assert "Sanitizer" not in run.stderr, run.stderr
    assert "runtime error" not in run.stderr, run.stderr
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.splitlines()[-1] == "ok"
