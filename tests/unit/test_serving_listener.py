"""Closing a listener without resets: new connections are refused, the ones already queued are kept."""

from __future__ import annotations

import socket
import sys

import pytest

from mlfactor.serving.listener import listening_sockets, queued, stop_accepting

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="socket filters and TCP_INFO are Linux's")


def test_queued_connections_survive_and_new_ones_are_not_taken() -> None:
    """After stop_accepting a queued connection is still accepted and answered; a new SYN gets no answer."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        address = listener.getsockname()
        early = socket.create_connection(address, timeout=5)
        early.sendall(b"ping")
        assert queued(listener) == 1

        stop_accepting(wait=0, sockets=[listener])
        late = socket.socket()
        late.settimeout(0.5)
        with pytest.raises(TimeoutError):  # its SYN is dropped: no connection to reset later
            late.connect(address)
        late.close()

        accepted, _ = listener.accept()
        with accepted:
            assert accepted.recv(4) == b"ping"
            accepted.sendall(b"pong")
            assert early.recv(4) == b"pong"
        early.close()
        assert queued(listener) == 0

    with socket.socket() as again, pytest.raises(ConnectionRefusedError):  # once closed: refused
        again.connect(address)


def test_listening_sockets_finds_this_process_listeners() -> None:
    """listening_sockets returns duplicates of the process's listening TCP sockets, not connected ones."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        found = listening_sockets()
        try:
            assert port in {sock.getsockname()[1] for sock in found}
        finally:
            for sock in found:
                sock.close()
