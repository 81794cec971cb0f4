"""Sockets and TLV frames, whatever the stage: a client's side of the wire.

A frame (DESIGN.md section 3) is an 8-byte header, DataLen then MsgID,
both uint32 little-endian, then DataLen bytes of body.
"""

import socket
import struct
import time

TIMEOUT = 5.0  # seconds any single socket operation may take

HEADER = struct.Struct("<II")


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


def frame_or_none(sock, timeout=3.0):
    """The next frame, or None when none comes within the timeout."""
    sock.settimeout(timeout)
    try:
        return read_frame(sock)
    except socket.timeout:
        return None
    finally:
        sock.settimeout(TIMEOUT)


def push(sock, data, sent):
    """On a non-blocking socket, send what the kernel takes from
    data[sent:]; return the new count, or None once the server has closed
    the connection."""
    view = memoryview(data)
    try:
        while sent < len(data):
            sent += sock.send(view[sent:sent + 65536])
    except BlockingIOError:
        pass
    except (ConnectionResetError, BrokenPipeError):
        return None
    return sent


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
