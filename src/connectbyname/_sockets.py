"""`new_socket`: the one way the engine makes a socket (an attempt's, a DNS query's, a
source address probe's), so that no interruption can drop one unclosed."""

from __future__ import annotations

import socket
from collections.abc import MutableMapping

# Non-blocking from birth where the system allows (Linux): one system call less per
# socket than socket() and then setblocking(False).
_SOCK_NONBLOCK: int = getattr(socket, "SOCK_NONBLOCK", 0)


def new_socket(
    table: MutableMapping[int, socket.socket],
    key: int,
    family: socket.AddressFamily,
    kind: int = socket.SOCK_STREAM,
) -> socket.socket:
    """A new non-blocking socket of ``family`` and ``kind`` (TCP or UDP), entered in
    ``table`` under ``key`` *before* its descriptor exists: whoever closes what is in
    ``table`` on the way out closes it, whenever the way out comes.

    ``socket.socket(...)`` returns a socket that is, for a few bytecodes, only on the
    stack: an interruption there (Ctrl-C, a signal handler raising) drops it unclosed.
    Made this way instead, the object is in the table first and gets its descriptor in
    one C call, so no interruption can separate the two. If that call fails, the
    descriptor-less object stays in the table; closing it is harmless.
    """
    sock = socket.socket.__new__(socket.socket)
    # What socket.socket.__init__ sets, before the descriptor exists.
    sock._io_refs = 0  # type: ignore[attr-defined]
    sock._closed = False  # type: ignore[attr-defined]
    table[key] = sock
    protocol = socket.IPPROTO_TCP if kind == socket.SOCK_STREAM else socket.IPPROTO_UDP
    socket._socket.socket.__init__(sock, family, kind | _SOCK_NONBLOCK, protocol)  # type: ignore[attr-defined]
    if not _SOCK_NONBLOCK:
        sock.setblocking(False)
    return sock
