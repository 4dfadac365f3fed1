"""Stop a listening socket taking new connections without resetting the ones the kernel already accepted.

Under ``bentoml serve`` the supervisor holds the listening socket and every
worker accepts on a copy. When a worker merely closes its copy, the socket
stays open in the supervisor: the kernel keeps completing handshakes into the
accept queue, nobody accepts them, and they are reset when the supervisor
exits. :func:`stop_accepting` attaches a socket filter that drops new SYNs
(their clients retry, then find the port closed: connection refused), then
waits until the worker has accepted everything already queued. Linux only;
elsewhere it does nothing and says so.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import socket
import struct
import time
from pathlib import Path

SO_ATTACH_FILTER = 26  # <asm-generic/socket.h>
TCP_INFO_LENGTH = 104
TCPI_UNACKED = 24  # offset of tcpi_unacked: a listener's current accept-queue length
# Classic BPF: load the TCP flags byte; keep a packet with ACK set, drop a bare SYN.
_DROP_NEW_CONNECTIONS = (
    (0x30, 0, 0, 13),  # ldb [13]          (TCP header flags; skb data starts at the TCP header)
    (0x45, 0, 1, 0x10),  # jset #0x10       (ACK)
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1     keep
    (0x06, 0, 0, 0),  # ret #0             drop
)
_programs: list[ctypes.Array[ctypes.c_char]] = []  # the filter code must outlive setsockopt's copy


def listening_sockets() -> list[socket.socket]:
    """Duplicates of this process's listening TCP sockets (close them after use)."""
    found: list[socket.socket] = []
    fd_dir = Path("/proc/self/fd")
    if not fd_dir.is_dir():
        return found
    for entry in fd_dir.iterdir():
        with contextlib.suppress(OSError, ValueError):
            if not str(entry.readlink()).startswith("socket:"):
                continue
            sock = socket.socket(fileno=os.dup(int(entry.name)))
            if (
                sock.type == socket.SOCK_STREAM
                and sock.family in (socket.AF_INET, socket.AF_INET6)
                and sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
            ):
                found.append(sock)
                continue
            sock.close()
    return found


def _refuse_new_connections(sock: socket.socket) -> None:
    code = b"".join(struct.pack("HBBI", *insn) for insn in _DROP_NEW_CONNECTIONS)
    buffer = ctypes.create_string_buffer(code, len(code))
    _programs.append(buffer)
    program = struct.pack("HL", len(_DROP_NEW_CONNECTIONS), ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, program)


def queued(sock: socket.socket) -> int:
    """Connections waiting in a listening socket's accept queue."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, TCP_INFO_LENGTH)
    return int(struct.unpack_from("I", info, TCPI_UNACKED)[0])


def stop_accepting(wait: float, sockets: list[socket.socket] | None = None) -> int:
    """Refuse new connections on this process's listeners; wait (<= ``wait`` s) until their queues are empty.

    ``sockets`` defaults to every listening socket of the process (duplicates,
    closed afterwards). Returns how many connections were still queued when the
    wait ended (0 is the goal), or -1 when there was no listener to stop.
    """
    owned = sockets is None
    sockets = listening_sockets() if sockets is None else sockets
    if not sockets:
        return -1
    try:
        for sock in sockets:
            _refuse_new_connections(sock)
        deadline = time.monotonic() + wait
        while True:
            left = sum(queued(sock) for sock in sockets)
            if left == 0 or time.monotonic() >= deadline:
                return left
            time.sleep(0.005)  # polling a kernel counter: there is no event to wait on
    finally:
        if owned:
            for sock in sockets:
                sock.close()
