"""What a connection attempt left behind: `Attempt`, `Connection` and address formatting."""

from __future__ import annotations

import dataclasses
import enum
import ipaddress
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import NamedTuple, Protocol

#: A socket address as Python's socket module writes it: ``(host, port)`` for IPv4,
#: ``(host, port, flowinfo, scope_id)`` for IPv6.
Address = tuple[str, int] | tuple[str, int, int, int]

# Connection has a field named "socket", which hides the module inside its body.
_Socket = socket.socket
_Family = socket.AddressFamily


class Outcome(enum.StrEnum):
    """How one attempt ended."""

    CONNECTED = "connected"
    """This attempt won the race."""
    REFUSED = "refused"
    """The remote side answered with a reset (``ECONNREFUSED``)."""
    UNREACHABLE = "unreachable"
    """No route to the network or host, or the address is not usable here."""
    TIMED_OUT = "timed out"
    """The call's timeout ran out while this attempt was in progress."""
    ABANDONED = "abandoned"
    """Still in progress (or connected second) when another attempt won; closed at once."""
    SKIPPED = "skipped"
    """Never started: the call's options do not fit this address (see `Attempt.reason`)."""
    DENIED = "denied"
    """Never started: the address policy refused it (see `Attempt.reason`)."""
    FAILED = "failed"
    """Any other error, for example no socket could be made (see `Attempt.error`)."""


#: `Outcome.CONNECTED` as a plain global, for the fast path: on Python 3.11 reading an
#: enum's member through its class goes through the metaclass's ``__getattr__`` hook,
#: several times the cost of a global.
CONNECTED = Outcome.CONNECTED


# Named tuples rather than frozen dataclasses: every connect makes several, and a tuple
# is made several times faster.
class Candidate(NamedTuple):
    """One address to try, and the family of the socket that reaches it."""

    family: socket.AddressFamily
    address: Address


class Attempt(NamedTuple):
    """One connection attempt to one address: an immutable record (a named tuple).

    ``start`` is the offset in seconds from the start of the call (name resolution
    included) at which the attempt began; ``duration`` is how long it ran until its
    outcome was known. ``history`` says how the connection history moved the address
    (``None``: it did not). For a call that asked for TLS, ``tcp`` is how long the
    attempt took to connect over TCP before its TLS handshake began (``None``: TCP
    never connected, or the call asked for no TLS): an attempt that failed with ``tcp``
    set failed in TLS.
    """

    address: Address
    family: socket.AddressFamily
    start: float
    duration: float
    outcome: Outcome
    error: OSError | None = None
    reason: str | None = None
    history: str | None = None
    tcp: float | None = None

    def __str__(self) -> str:
        text = f"{format_address(self.address)} {self.outcome}"
        if self.outcome in (Outcome.SKIPPED, Outcome.DENIED):
            return f"{text} ({self.reason})" if self.reason else text
        if self.tcp is not None and self.outcome is not Outcome.CONNECTED:
            text += f" in TLS (TCP connected after {self.tcp:.3f}s)"
        text += f" after {self.duration:.3f}s"
        if self.outcome is Outcome.FAILED and self.error is not None:
            text += f" ({self.error.strerror or self.error})"
        return text


@dataclass(eq=False, slots=True)
class Connection:
    """A connected TCP stream socket and how it was reached.

    ``socket`` is connected and blocking, with no timeout set. ``local_address`` is what
    ``getsockname()`` returns and ``remote_address`` what ``getpeername()`` returns, with
    IPv4-mapped IPv6 addresses written as plain IPv4. ``attempts`` holds one record per
    address the call tried or skipped, in the order they started; ``elapsed`` is the
    time the whole call took. ``deadline`` is when the call's timeout ends, on
    ``clock`` (``None``: no timeout): `time_left` tells what is left of it, for the
    steps that follow the connect (a TLS handshake, a proxy's ``CONNECT``). Closing the
    connection (or leaving its ``with`` block) closes the socket.
    """

    socket: _Socket
    local_address: Address
    remote_address: Address
    family: _Family
    attempts: tuple[Attempt, ...] = field(default=())
    elapsed: float = 0.0
    deadline: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    #: For a call with TLS: the version negotiated (``"TLSv1.3"``) and the ALPN protocol
    #: agreed (``"h2"``; ``None``: none), as the handshake ended; ``None`` without TLS.
    tls_version: str | None = None
    alpn: str | None = None
    #: The ECHConfigList of the HTTPS record the winning address came with, if any
    #: (kept for the record: Python's ssl cannot use Encrypted Client Hello yet).
    ech: bytes | None = None

    def time_left(self) -> float | None:
        """Seconds left of the call's timeout (0 once it has passed), or ``None`` when
        the call had no timeout. The one place the rest of a connect budget is worked
        out: adapters bound what follows the connect with it."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self.clock())

    def close(self) -> None:
        """Close the socket."""
        self.socket.close()

    def __enter__(self) -> Connection:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def unmap_address(address: Address) -> Address:
    """Return ``address`` with an IPv4-mapped IPv6 host (``::ffff:a.b.c.d``) as plain IPv4."""
    if len(address) == 4 and address[0].startswith("::ffff:"):
        try:
            mapped = ipaddress.IPv6Address(address[0]).ipv4_mapped
        except ValueError:
            return address
        if mapped is not None:
            return (str(mapped), address[1])
    return address


def format_address(address: Address) -> str:
    """Write an address as ``1.2.3.4:80`` or ``[2001:db8::1]:80`` (``[fe80::1%eth0]:80``)."""
    host, port = address[0], address[1]
    if len(address) == 4 or ":" in host:
        scope_id = address[3] if len(address) == 4 else 0
        if scope_id and "%" not in host:
            try:
                host = f"{host}%{socket.if_indextoname(scope_id)}"
            except OSError:
                host = f"{host}%{scope_id}"
        return f"[{host}]:{port}"
    return f"{host}:{port}"


class _Made(Protocol):
    """What `ConnectionInfo.of` reads: a `Connection` or an `AsyncConnection`."""

    @property
    def local_address(self) -> Address: ...
    @property
    def remote_address(self) -> Address: ...
    @property
    def attempts(self) -> tuple[Attempt, ...]: ...
    @property
    def elapsed(self) -> float: ...


@dataclass(frozen=True, slots=True)
class ConnectionInfo:
    """How a response's connection was made: see `connection_info`.

    ``remote_address`` is the server's address, or the proxy's when ``via_proxy`` is
    true. ``reused`` is true when the response came over a kept-alive connection that
    had served an earlier request; ``attempts`` and ``elapsed`` describe the connect
    call that opened it.
    """

    local_address: Address
    remote_address: Address
    attempts: tuple[Attempt, ...]
    elapsed: float
    reused: bool = False
    via_proxy: bool = False
    #: The TLS version and ALPN protocol negotiated (``None``: no TLS, or TLS the
    #: engine did not see, such as a tunnel's through a proxy).
    tls_version: str | None = None
    alpn: str | None = None
    #: The ECHConfigList the HTTPS record offered for the address (not used: Python's
    #: ssl cannot do Encrypted Client Hello yet).
    ech: bytes | None = None

    @classmethod
    def of(cls, connection: _Made, *, via_proxy: bool = False) -> ConnectionInfo:
        """The information of a fresh connection (a `Connection` or an
        `AsyncConnection`)."""
        return cls(
            local_address=connection.local_address,
            remote_address=connection.remote_address,
            attempts=connection.attempts,
            elapsed=connection.elapsed,
            via_proxy=via_proxy,
            tls_version=getattr(connection, "tls_version", None),
            alpn=getattr(connection, "alpn", None),
            ech=getattr(connection, "ech", None),
        )

    def with_tls(self, sock: object) -> ConnectionInfo:
        """This information with the TLS of ``sock`` (an ``ssl.SSLSocket``, or anything
        with its ``version`` and ``selected_alpn_protocol``), for a handshake made after
        the connect (a proxy's tunnel)."""
        version = getattr(sock, "version", None)
        selected = getattr(sock, "selected_alpn_protocol", None)
        return dataclasses.replace(
            self,
            tls_version=version() if callable(version) else None,
            alpn=selected() if callable(selected) else None,
        )


#: Where adapters leave a `ConnectionInfo`: this attribute on a urllib3 response (and so
#: on a requests response's ``raw``), or this key in an httpx response's ``extensions``.
INFO_KEY = "connectbyname_info"


def connection_info(response: object) -> ConnectionInfo:
    """Return how ``response``'s connection was made: local and remote address, the
    attempts, and whether the connection was reused.

    Works for the responses of the connectbyname adapters: a urllib3 ``HTTPResponse``,
    a requests ``Response`` and an httpx ``Response`` (sync or async), streamed or not,
    also after the body was read and the connection went back to its pool or the client
    was closed. Raises `LookupError` for a response that did not come over a connection
    made by connectbyname.
    """
    for candidate in (response, getattr(response, "raw", None)):
        info = getattr(candidate, INFO_KEY, None)
        if isinstance(info, ConnectionInfo):
            return info
    extensions = getattr(response, "extensions", None)
    if isinstance(extensions, dict):
        info = extensions.get(INFO_KEY)
        if isinstance(info, ConnectionInfo):
            return info
    raise LookupError(
        f"this {type(response).__name__} did not come over a connectbyname connection"
    )
