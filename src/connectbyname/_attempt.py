"""What both drivers share: the one place that opens an attempt socket, the check of a
finished handshake, and the reading of a call's parameters into a planner."""

from __future__ import annotations

import errno
import logging
import os
import socket
from collections.abc import Callable

from ._errors import ConnectByNameError, InvalidParameterError, NotASocketError
from ._info import Address, Attempt, Connection, unmap_address
from ._parse import Options, Target
from ._plan import Planner, Start
from ._resolve import Candidate, Lookup, Resolver, in_hosts_file, is_system_resolver

logger = logging.getLogger("connectbyname")

#: connect() on a non-blocking socket goes on in the background after these. EINTR too:
#: POSIX says an interrupted connect() completes asynchronously.
IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR})
#: A second connect() says the first is still going on with these.
STILL_CONNECTING = IN_PROGRESS | {errno.EALREADY}


def lookup_families(
    target: Target, options: Options, resolver: Resolver | None
) -> tuple[socket.AddressFamily, ...]:
    """The lookups a call makes: none for a literal; AAAA and A separately (section 3)
    when both families are wanted, except for names the system answers from its hosts
    file (see `in_hosts_file`); else one."""
    if target.literal is not None:
        return ()
    if options.family != socket.AF_UNSPEC:
        return (options.family,)
    if (resolver is None or is_system_resolver(resolver)) and in_hosts_file(target.host):
        return (socket.AF_UNSPEC,)
    return (socket.AF_INET6, socket.AF_INET)


def new_planner(
    target: Target,
    options: Options,
    families: tuple[socket.AddressFamily, ...],
    *,
    nodename: object,
    servicename: object,
    now: float,
    history_now: float | None = None,
) -> Planner:
    """A planner for this call, which makes the lookups ``families`` (see
    `lookup_families`); an IP literal is reported to it at once.

    ``history_now`` is the time on the history's clock (`time.monotonic`) when ``now``
    is on another one (an event loop's)."""
    preferred: Address | None = None
    demoted: frozenset[Address] = frozenset()
    if options.history is not None and target.literal is None:
        preferred, demoted = options.history.hints(
            target.host, target.port, now if history_now is None else history_now
        )
    # By position: binding a dozen keyword arguments costs a good part of a
    # microsecond, on a path a loopback connect takes in thirty.
    planner = Planner(
        now,
        options.timeout,
        options.attempt_delay,
        target.host if target.literal else nodename,
        servicename,
        target.port,
        families or (socket.AF_UNSPEC,),
        options.resolution_delay,
        options.source_family,
        options.policy,
        preferred,
        demoted,
    )
    if target.literal is not None:
        family = target.literal[0]
        if options.family not in (socket.AF_UNSPEC, family):
            raise InvalidParameterError(
                f"{target.host} is an {family.name[3:]} address but family is "
                f"{options.family.name}",
                nodename=nodename,
                servicename=servicename,
            )
        planner.lookup_done(now, [target.literal])
    return planner


def report_lookups(planner: Planner, lookups: list[Lookup], now: float) -> None:
    """Tell the planner about every finished lookup, and drop those from ``lookups``."""
    for lookup in [lookup for lookup in lookups if lookup.done()]:
        lookups.remove(lookup)
        if lookup.error is not None:
            planner.lookup_failed(now, lookup.error, lookup.family)
        else:
            planner.lookup_done(now, lookup.candidates, lookup.family)


def conclude(target: Target, options: Options, attempts: tuple[Attempt, ...], now: float) -> None:
    """Log the attempts of a finished call and let the connection history learn."""
    if logger.isEnabledFor(logging.DEBUG):
        for attempt in attempts:
            logger.debug("%s port %s: +%.3fs %s", target.host, target.port, attempt.start, attempt)
    if options.history is not None and target.literal is None:
        options.history.record(target.host, target.port, attempts, now)


# Non-blocking from birth where the system allows (Linux): one system call less per
# attempt than socket() and then setblocking(False).
_SOCK_NONBLOCK: int = getattr(socket, "SOCK_NONBLOCK", 0)
_NONBLOCKING_STREAM = socket.SOCK_STREAM | _SOCK_NONBLOCK


def open_attempt(
    candidate: Candidate, options: Options, dual_stack: bool = False
) -> tuple[socket.socket, Address]:
    """Open a non-blocking socket for ``candidate`` with the call's options applied.

    With ``dual_stack``, an IPv4 candidate is reached from an IPv6 socket as an
    IPv4-mapped address (the supplied-socket form with ``IPV6_V6ONLY`` off).
    Returns the socket and the address to connect it to; the caller owns the socket.
    """
    family, address = candidate
    if dual_stack and family == socket.AF_INET:
        family, address = socket.AF_INET6, (f"::ffff:{address[0]}", address[1], 0, 0)
    sock = socket.socket(family, _NONBLOCKING_STREAM, socket.IPPROTO_TCP)
    try:
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        for level, option, value in options.socket_options:
            sock.setsockopt(level, option, value)
        if options.source_address is not None:
            sock.bind(options.source_address)
        if not _SOCK_NONBLOCK:
            sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, address


#: The attempt sockets of one call, by attempt number, with the address each connects to.
Sockets = dict[int, tuple[socket.socket, Address]]


def start_attempt(
    planner: Planner,
    start: Start,
    options: Options,
    sockets: Sockets,
    clock: Callable[[], float],
    *,
    dual_stack: bool = False,
) -> socket.socket | None:
    """Carry out a `Start`: open the socket (into ``sockets``) and start its connect.

    Returns the socket to watch for writability, or ``None`` when the outcome is known
    already and reported to the planner (a failed socket is closed and dropped): a
    connect to this host's own addresses (loopback included) is over before connect()
    returns.
    """
    try:
        sock, address = open_attempt(start.candidate, options, dual_stack)
    except OSError as exc:
        planner.attempt_failed(clock(), start.attempt, exc)
        return None
    sockets[start.attempt] = (sock, address)
    try:
        code = sock.connect_ex(address)
        if code in IN_PROGRESS:
            # Even when the handshake ended inside connect() (it does on loopback),
            # a non-blocking connect() says "in progress". Asking again tells at once,
            # without a round through poll: 0 or EISCONN once connected, the connect's
            # own error once failed, EALREADY while it goes on.
            code = sock.connect_ex(address)
            if code in STILL_CONNECTING:
                return sock
        if code in (0, errno.EISCONN):
            planner.attempt_connected(clock(), start.attempt)
            return None
        error = OSError(code, os.strerror(code))
    except OSError as exc:
        error = exc
    sockets.pop(start.attempt)[0].close()
    planner.attempt_failed(clock(), start.attempt, error)
    return None


def report_handshake(planner: Planner, sockets: Sockets, attempt: int, now: float) -> None:
    """An attempt's socket turned writable: report how its connect ended. Connected
    means connected to the very address it was given, which is what ``getpeername()``
    would say; a failed socket is closed and dropped from ``sockets``."""
    code = sockets[attempt][0].getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        sockets.pop(attempt)[0].close()
        planner.attempt_failed(now, attempt, OSError(code, os.strerror(code)))
    else:
        planner.attempt_connected(now, attempt)


def make_connection(
    sock: socket.socket, peer: Address, attempts: tuple[Attempt, ...], elapsed: float
) -> Connection:
    """Turn the winning socket into a `Connection` (blocking, no timeout)."""
    sock.setblocking(True)
    # The family from the address connected to: the socket's own ``family`` property
    # builds an enum member on every read. Only IPv6 addresses can be IPv4-mapped.
    local = sock.getsockname()
    if len(peer) == 2:
        return Connection(sock, local, peer, socket.AF_INET, attempts, elapsed)
    return Connection(
        sock, unmap_address(local), unmap_address(peer), socket.AF_INET6, attempts, elapsed
    )


def check_supplied_socket(
    sock: object, nodename: object, servicename: object
) -> tuple[socket.socket, socket.AddressFamily, bool]:
    """Check the socket of `connect_socket_by_name`: returns it, the family of the
    addresses it can reach (``AF_UNSPEC``: both) and whether it is dual-stack."""

    def invalid(message: str) -> ConnectByNameError:
        return InvalidParameterError(message, nodename=nodename, servicename=servicename)

    if not isinstance(sock, socket.socket):
        raise NotASocketError(
            f"sock must be a socket.socket, not {type(sock).__name__}",
            nodename=nodename,
            servicename=servicename,
        )
    try:
        if sock.fileno() < 0:
            raise OSError(errno.EBADF, "closed")
        kind = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    except OSError as exc:
        raise NotASocketError(
            f"sock is not an open socket ({exc.strerror or exc})",
            nodename=nodename,
            servicename=servicename,
        ) from exc
    if kind != socket.SOCK_STREAM or sock.proto not in (0, socket.IPPROTO_TCP):
        raise invalid("sock must be a TCP stream socket (SOCK_STREAM)")
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        raise invalid("sock must be an AF_INET or AF_INET6 socket")
    if sock.getsockname()[1] != 0:
        raise invalid("sock must not be bound")
    try:
        sock.getpeername()
    except OSError:
        pass
    else:
        raise invalid("sock must not be connected")
    if sock.family == socket.AF_INET:
        return sock, socket.AF_INET, False
    if sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY):
        return sock, socket.AF_INET6, False
    return sock, socket.AF_UNSPEC, True
