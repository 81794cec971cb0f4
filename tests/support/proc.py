"""What /proc tells about a running server: its threads, descriptors,
memory and CPU time, and the TCP sockets of this network namespace; and
wait_until(), which polls such a probe with a deadline instead of sleeping
a fixed time."""

import os
import re
import time
from pathlib import Path

from support.wire import TIMEOUT


def wait_until(pred, timeout=TIMEOUT, interval=0.02):
    """Poll pred() until it is true; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = pred()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


# ---- threads ----

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


def conn_thread_ids(pid, kind):
    """Sorted connection ids in the names of the threads zn-KIND-<id>
    (kind 'reader' or 'writer')."""
    ids = []
    for name in thread_names(pid).values():
        m = re.fullmatch(rf"zn-{kind}-(\d+)", name)
        if m:
            ids.append(int(m.group(1)))
    return sorted(ids)


def threads_gone(pid, cid):
    """Neither thread of connection cid (zn-reader-CID, zn-writer-CID) is
    left."""
    return (cid not in conn_thread_ids(pid, "reader") and
            cid not in conn_thread_ids(pid, "writer"))


# ---- descriptors, memory, CPU ----

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


def proc_status(pid, key):
    """A number from /proc/PID/status: a size in KiB for keys such as
    'VmRSS', 'VmHWM' or 'VmSize', a count for 'Threads'."""
    text = Path(f"/proc/{pid}/status").read_text()
    return int(re.search(rf"^{key}:\s*(\d+)", text, re.M).group(1))


def cpu_seconds(pid):
    """User plus system CPU time the process has used so far."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat.rsplit(")", 1)[1].split()  # the name may hold spaces
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


# ---- TCP sockets ----

def _tcp_rows():
    """The rows of /proc/net/tcp and tcp6 (this network namespace), each
    split into its fields."""
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(path).read_text().splitlines()[1:]
        except FileNotFoundError:
            continue
        for line in lines:
            yield line.split()


def _port(address):
    """The port of an address as /proc shows it, e.g. '0100007F:1F90'."""
    return int(address.rsplit(":", 1)[1], 16)


def tcp_sockets():
    """Every TCP socket of this network namespace: dicts with local_port,
    remote_port, state (0x0A = LISTEN), rx_queue (bytes received that the
    owner has not read yet) and inode."""
    return [{"local_port": _port(f[1]), "remote_port": _port(f[2]),
             "state": int(f[3], 16), "rx_queue": int(f[4].split(":")[1], 16),
             "inode": int(f[9])} for f in _tcp_rows()]


def listening_sockets(pid):
    """{fd: port} for every listening TCP socket the process holds."""
    inodes = {}
    for fd, (_, target) in fd_table(pid).items():
        m = re.fullmatch(r"socket:\[(\d+)\]", target)
        if m:
            inodes[int(m.group(1))] = fd
    return {inodes[s["inode"]]: s["local_port"] for s in tcp_sockets()
            if s["state"] == 0x0A and s["inode"] in inodes}


def conn_sockets(pid):
    """How many connected sockets the process holds: every socket
    descriptor but its listening ones. A server closes a client's socket
    when it has released the connection, so this counts the connections
    it has not yet released, whatever TCP state they are in."""
    sockets = [fd for fd, (_, target) in fd_table(pid).items()
               if target.startswith("socket:")]
    return len(sockets) - len(listening_sockets(pid))


def tcp_queues(local_port, remote_port):
    """(tx_queue, rx_queue) of the TCP socket with these ports: bytes sent
    but not yet acknowledged, and bytes received that the owner has not
    read; None when there is no such socket. (One regular expression over
    the whole table: it may hold thousands of sockets in TIME_WAIT, and
    tests call this in loops.)"""
    row = re.compile(rf"^ *\d+: [0-9A-F]+:{local_port:04X} "
                     rf"[0-9A-F]+:{remote_port:04X} [0-9A-F]+ "
                     r"([0-9A-F]+):([0-9A-F]+) ", re.M)
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            m = row.search(Path(path).read_text())
        except FileNotFoundError:
            continue
        if m:
            return int(m.group(1), 16), int(m.group(2), 16)
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
