"""Helpers for the black-box tests: a small client, frames, /proc counts."""

import json
import os
import re
import socket
import struct
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 5.0  # seconds any single socket operation may take

# DESIGN.md section 3: DataLen then MsgID, both uint32 little-endian.
HEADER = struct.Struct("<II")


def stage_key(stage):
    """'v0.10' sorts after 'v0.9': compare version numbers, not text."""
    return tuple(int(x) for x in stage.lstrip("v").split("."))


def since(stage, first):
    return stage_key(stage) >= stage_key(first)


def uses_conf(stage):
    """From v0.4 the server reads conf/zinc.json instead of argv."""
    return since(stage, "v0.4")


def threads_per_conn(stage):
    """Reader only; from v0.7 a writer thread too."""
    return 2 if since(stage, "v0.7") else 1


def write_conf(workdir, port, conf=None, conf_text=None):
    (workdir / "conf").mkdir(exist_ok=True)
    if conf_text is None:
        conf_text = json.dumps({"TcpPort": port, **(conf or {})})
    (workdir / "conf" / "zinc.json").write_text(conf_text)


def server_command(stage, workdir, args=None, port=0, conf=None,
                   conf_text=None, exe=None):
    """The command line that starts a stage's demo server, or the server
    program exe built against the stage, in workdir (for v0.4+ it writes
    workdir/conf/zinc.json unless conf is False)."""
    exe = exe or ROOT / stage / "build" / "server"
    if uses_conf(stage):
        if conf_text is not None or conf is not False:
            write_conf(workdir, port, conf, conf_text)
        return [str(exe)] + list(args or [])
    return [str(exe)] + (list(args) if args is not None else [str(port)])


def build_api(stage, name, out_dir):
    """Compile tests/api/NAME.c against the stage's build/libzinc.a, with the
    flags the stage was built with; return the executable's path. The
    program sees ZN_STAGE_MINOR (7 for v0.7, 10 for v1.0) to follow the API
    as it changes."""
    flags = (ROOT / stage / "build" / ".flags").read_text().split()
    major, minor = (int(x) for x in stage.lstrip("v").split("."))
    flags.append(f"-DZN_STAGE_MINOR={major * 10 + minor}")
    exe = Path(out_dir) / name
    subprocess.run(flags + ["-I", str(ROOT / stage), "-I",
                            str(ROOT / "common"),
                            str(ROOT / "tests" / "api" / f"{name}.c"),
                            str(ROOT / stage / "build" / "libzinc.a"),
                            "-o", str(exe)], check=True)
    return exe


def connect(port, timeout=TIMEOUT):
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    s.settimeout(timeout)
    return s


def reset_close(sock):
    """Close with a reset (RST) instead of a FIN: SO_LINGER, timeout 0."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                    struct.pack("ii", 1, 0))
    sock.close()


def recv_exact(sock, n):
    """Read exactly n bytes; fail if the peer closes first."""
    buf = bytearray()
    while len(buf) < n:
        chunk = sock.recv(n - len(buf))
        assert chunk, f"connection closed after {len(buf)} of {n} bytes"
        buf += chunk
    return bytes(buf)


def is_closed(sock, timeout=TIMEOUT):
    """True when the server closes the connection within the timeout (any
    bytes still in flight are read and dropped)."""
    sock.settimeout(timeout)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if not sock.recv(65536):
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False
    return False


def silent(sock, quiet=0.3):
    """True when nothing arrives for `quiet` seconds (and no close)."""
    sock.settimeout(quiet)
    try:
        sock.recv(1, socket.MSG_PEEK)  # data or a close: not silent
    except socket.timeout:
        return True
    finally:
        sock.settimeout(TIMEOUT)
    return False


def pack(msg_id, data=b""):
    return HEADER.pack(len(data), msg_id) + data


def read_frame(sock):
    """One (msg_id, data) frame from the socket."""
    length, msg_id = HEADER.unpack(recv_exact(sock, HEADER.size))
    return msg_id, recv_exact(sock, length)


def wait_until(pred, timeout=TIMEOUT, interval=0.02):
    """Poll pred() until it is true; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def thread_names(pid):
    """{tid: name} of every thread in the process."""
    names = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            names[int(tid)] = (Path(f"/proc/{pid}/task/{tid}/comm")
                               .read_text().strip())
        except (FileNotFoundError, ProcessLookupError):
            pass  # the thread ended while we looked
    return names


def thread_count(pid, prefix=None):
    """Threads named prefix* or, by default, zinc's own: the main thread
    plus every thread named zn-*.

    zinc names all the threads it starts (zn-reader-N, ...). Counting only
    those keeps the counts exact under ThreadSanitizer, which starts a
    helper thread of its own, unnamed, on the first pthread_create().
    """
    if prefix is not None:
        return len([n for n in thread_names(pid).values()
                    if n.startswith(prefix)])
    return len([tid for tid, name in thread_names(pid).items()
                if tid == pid or name.startswith("zn-")])


def sanitizer(stage):
    """The SAN= value the stage was built with ('' for a plain build)."""
    flags = (ROOT / stage / "build" / ".flags").read_text()
    m = re.search(r"-fsanitize=(\S+)", flags)
    return m.group(1) if m else ""


def fd_count(pid):
    return len(os.listdir(f"/proc/{pid}/fd"))


def fd_table(pid):
    """{fd: (flags, target)}: the open-file flags (an int; /proc shows them
    in octal) and what the descriptor points to, e.g. 'socket:[1234]'."""
    table = {}
    for name in os.listdir(f"/proc/{pid}/fd"):
        try:
            target = os.readlink(f"/proc/{pid}/fd/{name}")
            info = Path(f"/proc/{pid}/fdinfo/{name}").read_text()
        except FileNotFoundError:
            continue  # closed while we looked
        flags = int(re.search(r"^flags:\s*(\d+)", info, re.M).group(1), 8)
        table[int(name)] = (flags, target)
    return table


def tcp_sockets():
    """Every TCP socket of this network namespace, from /proc/net/tcp and
    tcp6: dicts with local_port, remote_port, state (0x0A = LISTEN),
    rx_queue (bytes received that the owner has not read yet) and inode."""
    socks = []
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(path).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            socks.append({
                "local_port": int(f[1].rsplit(":", 1)[1], 16),
                "remote_port": int(f[2].rsplit(":", 1)[1], 16),
                "state": int(f[3], 16),
                "rx_queue": int(f[4].split(":")[1], 16),
                "inode": int(f[9]),
            })
    return socks


def listening_sockets(pid):
    """{fd: port} for every listening TCP socket the process holds."""
    inodes = {}
    for fd, (_, target) in fd_table(pid).items():
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes[int(m.group(1))] = fd
    return {inodes[s["inode"]]: s["local_port"] for s in tcp_sockets()
            if s["state"] == 0x0A and s["inode"] in inodes}


def proc_status_kib(pid, key):
    """A size from /proc/PID/status in KiB, e.g. key 'VmRSS' or 'VmSize'."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{key}:\s*(\d+) kB", text, re.M).group(1))


def cpu_seconds(pid):
    """User plus system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the name may hold spaces
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# The router demo (v0.3-v0.4) answers every chunk it reads with three lines.
ROUTER_LINES = b"before ping\nping...ping...ping\nafter ping\n"
PING = b"ping...ping...ping"


def open_conn(stage, port):
    """Connect to the demo server (from v0.9 its greeting is read here)."""
    sock = connect(port)
    if since(stage, "v0.9"):
        assert read_frame(sock) == (2, b"DoConnection BEGIN...")
    return sock


def conn_id(server, sock):
    """The id the server gave this client, from its 'conn N started, remote
    IP:PORT' log line (v0.2+)."""
    port = sock.getsockname()[1]
    return int(server.wait_log(
        rf"conn (\d+) started, remote 127\.0\.0\.1:{port}\b").group(1))


def end_word(stage):
    """The framework's own end-of-connection line says `conn N stopped`
    until v0.8; from v0.9 that line belongs to the on_conn_stop hook (of
    the demo) and the framework says `conn N closed`."""
    return "closed" if since(stage, "v0.9") else "stopped"


def stopped_lines(server, cid):
    """How many times the log says `conn N stopped` for connection cid."""
    return len(re.findall(rf"\bconn {cid} stopped\b", server.text()))


def roundtrip(stage, sock, tag=b"x"):
    """One request/reply with the stage's demo server; asserts the reply."""
    if not since(stage, "v0.3"):
        sock.sendall(tag)
        assert recv_exact(sock, len(tag)) == tag
    elif not since(stage, "v0.5"):
        sock.sendall(tag)
        assert recv_exact(sock, len(ROUTER_LINES)) == ROUTER_LINES
    else:
        sock.sendall(pack(0, tag))
        assert read_frame(sock) == ping_reply(stage)


def ping_reply(stage):
    """The demo's answer to a message with id 0 (v0.5: always id 1)."""
    return (1, PING) if not since(stage, "v0.6") else (0, PING)


# ---- v0.7 read/write split (tests/test_read_write_split.py) ----

def hello_reply(stage):
    """The demo's answer to a message with id 1 (v0.6+)."""
    return (1, b"Hello Zinc Router " + stage.encode())


def reply_to(stage, msg_id):
    """The demo's answer to a message with id 0 or 1, as (msg_id, data)."""
    if msg_id == 1 and since(stage, "v0.6"):
        return hello_reply(stage)
    return ping_reply(stage)


def _read_to_end(sock, timeout):
    """Every byte until the server closes: (bytes, "fin"), (bytes, "rst"),
    or (bytes, "open") after `timeout` seconds of silence."""
    sock.settimeout(timeout)
    buf = bytearray()
    try:
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return bytes(buf), "fin"
            buf += chunk
    except ConnectionResetError:
        return bytes(buf), "rst"
    except socket.timeout:
        return bytes(buf), "open"
    finally:
        sock.settimeout(TIMEOUT)


def read_to_eof(sock, timeout=TIMEOUT):
    """Every byte until the server's FIN. A reset instead of a FIN, or no
    end within `timeout` seconds of silence, fails the test."""
    data, end = _read_to_end(sock, timeout)
    assert end != "rst", f"reset (RST) instead of a FIN after {len(data)} bytes"
    assert end != "open", (f"no end of stream after {len(data)} bytes "
                           f"and {timeout}s of silence")
    return data


def read_until_closed(sock, timeout=TIMEOUT):
    """Every byte until the server closes, with a FIN or a reset (an abort
    may do either); None when it stays open for `timeout` seconds."""
    data, end = _read_to_end(sock, timeout)
    return None if end == "open" else data


def split_frames(data):
    """The whole frames in data as [(msg_id, body)], and the bytes left
    over after the last whole one."""
    frames, off = [], 0
    while off + HEADER.size <= len(data):
        length, msg_id = HEADER.unpack_from(data, off)
        if off + HEADER.size + length > len(data):
            break
        frames.append((msg_id, data[off + HEADER.size:
                                    off + HEADER.size + length]))
        off += HEADER.size + length
    return frames, data[off:]


def connect_narrow(stage, port):
    """A client with a narrow receive path: a 4 KiB receive buffer and a
    536-byte MSS, both set before connect(). The kernel then parks only
    about 160 KiB of replies for it (with the defaults it grows the
    server's send buffer to megabytes), so a client that does not read
    soon makes the server itself hold the replies. From v0.9 the greeting
    is read here, as open_conn() does."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 536)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    if since(stage, "v0.9"):
        assert read_frame(sock) == (2, b"DoConnection BEGIN...")
    return sock


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the TCP socket with these ports, from
    /proc/net/tcp: bytes sent but not yet acknowledged, and bytes received
    that the owner has not read; None when there is no such socket."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(path).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            f = line.split()
            if (int(f[1].rsplit(":", 1)[1], 16),
                    int(f[2].rsplit(":", 1)[1], 16)) == (local_port,
                                                         remote_port):
                tx, rx = f[4].split(":")
                return int(tx, 16), int(rx, 16)
    return None


def _settled_queues(server, sock, settle):
    """The (server side, client side) TCP queues of this client once they
    stayed the same for `settle` seconds, or None when they moved or
    could not be read."""
    cport = sock.getsockname()[1]

    def sample():
        return (tcp_queues(server.port, cport), tcp_queues(cport, server.port))

    before = sample()
    time.sleep(settle)  # a measurement window, not a synchronisation
    after = sample()
    return after if before == after and None not in after else None


def server_stalled(server, sock, settle=0.2):
    """True when the server has stopped reading this client: bytes the
    client sent wait unread in the server's socket, the client's own
    receive buffer holds replies it has not read, and neither changes for
    `settle` seconds."""
    q = _settled_queues(server, sock, settle)
    return q is not None and q[0][1] > 0 and q[1][1] > 0


def server_read_all_but_is_stuck(server, sock, settle=0.2):
    """True when the server has read every byte this client sent (nothing
    unread on its side) while replies wait unread on the client's side,
    neither changing for `settle` seconds: the server's writes to this
    client are blocked on the full socket."""
    q = _settled_queues(server, sock, settle)
    return q is not None and q[0][1] == 0 and q[1][1] > 0


def conn_thread_ids(pid, kind):
    """Sorted connection ids in the names of the threads zn-KIND-<id>
    (kind 'reader' or 'writer')."""
    ids = []
    for name in thread_names(pid).values():
        m = re.fullmatch(rf"zn-{kind}-(\d+)", name)
        if m:
            ids.append(int(m.group(1)))
    return sorted(ids)


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
