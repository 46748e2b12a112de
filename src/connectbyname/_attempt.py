"""What both drivers share: the one place that opens an attempt socket, the check of a
finished handshake, and the reading of a call's parameters into a planner."""

from __future__ import annotations

import errno
import logging
import os
import socket

from ._errors import ConnectByNameError, InvalidParameterError, NotASocketError
from ._info import Address, Attempt, Connection, unmap_address
from ._parse import Options, Target
from ._plan import Planner
from ._resolve import Candidate, Lookup, Resolver, in_hosts_file

logger = logging.getLogger("connectbyname")

#: connect() on a non-blocking socket goes on in the background after these. EINTR too:
#: POSIX says an interrupted connect() completes asynchronously.
IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR})


def lookup_families(
    target: Target, options: Options, resolver: Resolver | None
) -> tuple[socket.AddressFamily, ...]:
    """The lookups a call makes: none for a literal; AAAA and A separately (section 3)
    when both families are wanted, except for names the system answers from its hosts
    file (see `in_hosts_file`); else one."""
    if target.literal is not None:
        return ()
    if options.family != socket.AF_UNSPEC or (resolver is None and in_hosts_file(target.host)):
        return (options.family,)
    return (socket.AF_INET6, socket.AF_INET)


def new_planner(
    target: Target,
    options: Options,
    *,
    resolver: Resolver | None,
    nodename: object,
    servicename: object,
    now: float,
    history_now: float | None = None,
) -> Planner:
    """A planner for this call; an IP literal is reported to it at once.

    ``history_now`` is the time on the history's clock (`time.monotonic`) when ``now``
    is on another one (an event loop's)."""
    preferred: Address | None = None
    demoted: frozenset[Address] = frozenset()
    if options.history is not None and target.literal is None:
        preferred, demoted = options.history.hints(
            target.host, target.port, now if history_now is None else history_now
        )
    planner = Planner(
        now=now,
        timeout=options.timeout,
        attempt_delay=options.attempt_delay,
        nodename=target.host if target.literal else nodename,
        servicename=servicename,
        port=target.port,
        lookups=lookup_families(target, options, resolver) or (socket.AF_UNSPEC,),
        resolution_delay=options.resolution_delay,
        source_family=options.source_family,
        policy=options.policy,
        preferred=preferred,
        demoted=demoted,
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
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        for level, option, value in options.socket_options:
            sock.setsockopt(level, option, value)
        if options.source_address is not None:
            sock.bind(options.source_address)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock, address


def handshake_result(sock: socket.socket) -> OSError | Address:
    """After the socket turned writable: the connect's error, or the peer's address."""
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        return OSError(code, os.strerror(code))
    try:
        peer: Address = sock.getpeername()
    except OSError as exc:
        # Writable without SO_ERROR yet not connected: reset straight after the handshake.
        return exc
    return peer


def make_connection(
    sock: socket.socket, peer: Address, attempts: tuple[Attempt, ...], elapsed: float
) -> Connection:
    """Turn the winning socket into a `Connection` (blocking, no timeout)."""
    sock.setblocking(True)
    return Connection(
        socket=sock,
        local_address=unmap_address(sock.getsockname()),
        remote_address=unmap_address(peer),
        family=socket.AddressFamily(sock.family),
        attempts=attempts,
        elapsed=elapsed,
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
