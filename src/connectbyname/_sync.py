"""The synchronous driver: non-blocking sockets and one poll set, in the caller's thread.

It carries out what the planner decides and decides nothing itself. Every attempt
socket it opens lives in ``sockets`` until it either becomes the winner or is closed,
and the ``finally`` clause closes whatever is left there, so no path out of the race
(return, error, timeout, KeyboardInterrupt) leaves a socket open.

The attempts are watched with ``select.poll`` itself rather than through a
``selectors`` selector: on loopback a whole connect takes some 30 microseconds, and the
selector's bookkeeping (key objects, a descriptor map, one more layer per call) cost
several of them. poll needs no descriptor of its own (epoll does), so a call's
footprint stays at its attempt sockets. Where poll is missing, a ``selectors`` selector
stands in behind the same three methods (`_SelectorPoll`).
"""

from __future__ import annotations

import contextlib
import os
import select
import selectors
import socket
import threading
import time
from collections.abc import Callable, Iterable

from ._attempt import (
    Sockets,
    check_supplied_socket,
    conclude,
    lookup_families,
    make_connection,
    new_planner,
    report_handshake,
    report_lookups,
    start_attempt,
)
from ._history import ConnectionHistory
from ._info import Address, Connection
from ._parse import Options, SocketOption, Target, parse_options, parse_target, prepare
from ._plan import Connected, Failed, Start
from ._policy import Policy
from ._resolve import Lookup, Resolver, cannot_hang, resolve_here, start_lookup

_WRITABLE = getattr(select, "POLLOUT", 4)
_READABLE = getattr(select, "POLLIN", 1)


class _SelectorPoll:
    """``select.poll``'s interface over a ``selectors`` selector, for systems without
    poll: descriptors in, ``(descriptor, event mask)`` pairs out."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def register(self, fd: int, mask: int) -> None:
        events = selectors.EVENT_WRITE if mask & _WRITABLE else selectors.EVENT_READ
        self._selector.register(fd, events)

    def unregister(self, fd: int) -> None:
        self._selector.unregister(fd)

    def poll(self, milliseconds: float | None = None) -> list[tuple[int, int]]:
        timeout = None if milliseconds is None else milliseconds / 1000
        return [
            (key.fd, _WRITABLE if events & selectors.EVENT_WRITE else _READABLE)
            for key, events in self._selector.select(timeout)
        ]

    def close(self) -> None:
        self._selector.close()


_new_poll: Callable[[], select.poll | _SelectorPoll] = getattr(select, "poll", _SelectorPoll)


def connect_by_name(
    nodename: str | bytes,
    servicename: str | bytes | int,
    *,
    timeout: float | None = None,
    attempt_delay: float | None = 0.25,
    family: int = socket.AF_UNSPEC,
    source_address: tuple[str, int] | None = None,
    socket_options: Iterable[SocketOption] | None = (),
    resolver: Resolver | None = None,
    resolution_delay: float = 0.05,
    history: ConnectionHistory | bool = True,
    policy: Policy | None = None,
) -> Connection:
    """Resolve ``nodename`` and connect a TCP socket to it, racing its addresses.

    ``nodename`` is a host name (Unicode names are IDNA-encoded per UTS 46) or an IPv4
    or IPv6 literal (``"::1"``, ``"[::1]"``, ``"fe80::1%eth0"``); a literal never reaches
    the resolver. ``servicename`` is a port (``443`` or ``"443"``) or a service name
    (``"https"``). ``timeout`` bounds the whole call, name resolution included (``None``:
    no limit of our own). A new attempt starts every ``attempt_delay`` seconds (at least
    0.01), or at once when one fails; ``None`` tries one address at a time. ``family``
    limits the addresses to ``AF_INET`` or ``AF_INET6``. ``source_address`` (an IP
    literal and a port, as urllib3 takes it) and ``socket_options`` (``(level, option,
    value)`` tuples) apply to every attempt socket before it connects; an address of the
    other family than ``source_address`` is skipped. ``resolver`` replaces
    `socket.getaddrinfo` and is called with its signature; without ``family``, IPv6 and
    IPv4 are looked up separately and the race starts with whichever answers first,
    waiting up to ``resolution_delay`` seconds for IPv6 when IPv4 answers first
    (RFC 8305 section 3). ``history`` remembers per host and port which address won
    and which lost (``True``: the process-wide `ConnectionHistory`; ``False``: none; or
    one of your own). ``policy`` (such as `PUBLIC_ONLY` or an `AddressPolicy`) vets
    every address immediately before its attempt.

    Returns a `Connection`. Raises `InvalidParameterError`, `NameResolutionError`,
    `TimedOutError`, `HostUnreachableError`, `AddressDeniedError` or
    `OutOfResourcesError`.
    """
    target, options = prepare(
        nodename,
        servicename,
        timeout,
        attempt_delay,
        family,
        source_address,
        socket_options,
        resolution_delay,
        history,
        policy,
        resolver,
    )
    return _connect(target, options, resolver, nodename, servicename)


def connect_socket_by_name(
    sock: socket.socket,
    nodename: str | bytes,
    servicename: str | bytes | int,
    *,
    timeout: float | None = None,
    attempt_delay: float | None = 0.25,
    socket_options: Iterable[SocketOption] | None = (),
    resolver: Resolver | None = None,
    resolution_delay: float = 0.05,
    history: ConnectionHistory | bool = True,
    policy: Policy | None = None,
) -> tuple[Address, Address]:
    """Connect the caller's socket by name: the form of Windows' ``WSAConnectByName``.

    ``sock`` must be an unbound, unconnected TCP stream socket. Its family bounds the
    addresses tried: an ``AF_INET6`` socket with ``IPV6_V6ONLY`` off reaches IPv4
    addresses as IPv4-mapped ones. The race runs on fresh sockets, and the winner's
    descriptor is moved onto ``sock`` with ``os.dup2`` (POSIX only), so on return
    ``sock`` is connected. Options set on ``sock`` before the call are not carried over
    (as with ``WSAConnectByName``): pass them as ``socket_options``, or set them again;
    only ``sock``'s Python-level timeout is kept. The other parameters and the errors
    are those of `connect_by_name`; a closed object or non-socket raises
    `NotASocketError`, and a bound, connected or non-stream socket raises
    `InvalidParameterError`.

    Returns ``(local_address, remote_address)``, IPv4-mapped addresses written as IPv4.
    """
    target = parse_target(nodename, servicename)
    checked, family, dual_stack = check_supplied_socket(sock, nodename, servicename)
    options = parse_options(
        nodename,
        servicename,
        timeout=timeout,
        attempt_delay=attempt_delay,
        family=family,
        source_address=None,
        socket_options=socket_options,
        resolution_delay=resolution_delay,
        history=history,
        policy=policy,
        resolver=resolver,
    )
    connection = _connect(target, options, resolver, nodename, servicename, dual_stack=dual_stack)
    with connection:
        os.dup2(connection.socket.fileno(), checked.fileno(), checked.get_inheritable())
    # The new descriptor comes blocking; give it back the timeout sock's owner set.
    checked.settimeout(checked.gettimeout())
    return connection.local_address, connection.remote_address


class _LookupSignal:
    """Wakes the driver when a lookup finishes: an Event while no socket is being
    waited on, and a socket pair (made only when needed) while some are."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self._lock = threading.Lock()
        self._pair: tuple[socket.socket, socket.socket] | None = None

    def notify(self, _lookup: object) -> None:
        self.event.set()
        # Under the lock: the driver may be closing the pair in another thread.
        with self._lock:
            if self._pair is not None:
                with contextlib.suppress(OSError):
                    self._pair[1].send(b"\0")

    def reader(self) -> socket.socket:
        with self._lock:
            if self._pair is None:
                self._pair = socket.socketpair()
                for end in self._pair:
                    end.setblocking(False)
                if self.event.is_set():
                    self._pair[1].send(b"\0")
            return self._pair[0]

    def clear(self) -> None:
        self.event.clear()
        if self._pair is not None:
            with contextlib.suppress(OSError):
                while self._pair[0].recv(64):
                    pass

    def close(self) -> None:
        with self._lock:
            if self._pair is not None:
                for end in self._pair:
                    end.close()
                self._pair = None


def _connect(
    target: Target,
    options: Options,
    resolver: Resolver | None,
    nodename: object,
    servicename: object,
    *,
    dual_stack: bool = False,
) -> Connection:
    clock = time.monotonic
    families = lookup_families(target, options, resolver)
    planner = new_planner(
        target, options, families, nodename=nodename, servicename=servicename, now=clock()
    )
    resolve = resolver or socket.getaddrinfo
    lookups: list[Lookup] = []
    signal: _LookupSignal | None = None
    if len(families) == 1 and (options.timeout is None or cannot_hang(resolve, target.host)):
        # Nothing to race the lookup against, and no deadline to keep or nothing that
        # could make it late: no thread.
        lookups.append(resolve_here(resolve, target.host, target.port, families[0]))
    elif families:
        signal = _LookupSignal()
        for family in families:
            lookup = start_lookup(resolve, target.host, target.port, family)
            lookup.add_done_callback(signal.notify)
            lookups.append(lookup)

    sockets: Sockets = {}
    # Descriptor -> attempt, for the attempt sockets in the poll set.
    watched: dict[int, int] = {}
    signal_fd: int | None = None  # the lookup signal's, once in the poll set
    # Made at the first wait: a connect over inside connect() needs none.
    poll: select.poll | _SelectorPoll | None = None
    try:
        while True:
            if lookups:
                if signal is not None:
                    signal.clear()
                report_lookups(planner, lookups, clock())
            action = planner.next_action(clock())
            if isinstance(action, Start):
                sock = start_attempt(
                    planner, action, options, sockets, clock, dual_stack=dual_stack
                )
                if sock is not None:
                    if poll is None:
                        poll = _new_poll()
                    fd = sock.fileno()
                    poll.register(fd, _WRITABLE)
                    watched[fd] = action.attempt
            elif isinstance(action, Connected):
                sock, peer = sockets.pop(action.attempt)
                conclude(target, options, action.attempts, clock())
                return make_connection(sock, peer, action.attempts, action.elapsed)
            elif isinstance(action, Failed):
                conclude(target, options, action.error.attempts, clock())
                error = action.error
                del action
                try:
                    raise error
                finally:
                    # Else this frame, kept by the traceback, keeps the error: a cycle
                    # that holds everything here until the cyclic collector runs.
                    del error
            else:
                wait = None if action.until is None else max(0.0, action.until - clock())
                if signal is not None and lookups and not sockets:
                    signal.event.wait(wait)
                    continue
                if poll is None:
                    poll = _new_poll()
                if signal is not None and lookups and signal_fd is None:
                    signal_fd = signal.reader().fileno()
                    poll.register(signal_fd, _READABLE)
                # poll rounds its milliseconds up, so it never wakes before the time.
                events = poll.poll(None if wait is None else wait * 1000)
                now = clock()
                for fd, _ in events:
                    if fd == signal_fd:
                        continue  # a lookup finished: reported at the top of the loop
                    poll.unregister(fd)
                    report_handshake(planner, sockets, watched.pop(fd), now)
    finally:
        for sock, _ in sockets.values():
            sock.close()
        if isinstance(poll, _SelectorPoll):
            poll.close()
        if signal is not None:
            signal.close()
