"""The anyio driver: `aconnect_by_name`, on asyncio and on trio.

It carries out what the planner decides, exactly as the sync driver in ``_sync``
does, and decides nothing itself. Where ``_sync`` has one poll set, this driver has
one small task per attempt in flight, waiting for its socket to turn writable; lookups
run on the resolver's bounded thread pool and report back through the event loop, so
a hung resolver is simply abandoned at the deadline. A resolver with a coroutine of its
own (`AsyncNativeResolver`, such as `connectbyname.dns.DNSResolver`) gets one task per
lookup in the same task group instead, and no thread at all.

Every attempt socket lives in ``sockets`` until it becomes the winner or is closed.
The watcher tasks are cancelled and awaited (the task group is left) before any socket
is closed, so no task ever waits on a closed descriptor; the ``finally`` clause then
closes whatever is left, on every path out: return, error, timeout, cancellation.

anyio is imported when a call is made, not with the package: the synchronous engine
must keep working where anyio is not installed.
"""

from __future__ import annotations

import contextlib
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ._attempt import (
    Sockets,
    conclude,
    lookup_families,
    make_connection,
    new_planner,
    report_handshake,
    report_lookups,
    start_attempt,
)
from ._history import ConnectionHistory
from ._info import Address, Attempt, Connection
from ._parse import Options, SocketOption, Target, prepare
from ._plan import Connected, Failed, Start
from ._policy import Policy
from ._resolve import (
    AsyncNativeResolver,
    Lookup,
    Resolver,
    cannot_hang,
    resolution_error,
    resolve_here,
    start_lookup,
)

if TYPE_CHECKING:
    import anyio.abc

_Family = socket.AddressFamily


@dataclass(eq=False, slots=True)
class AsyncConnection:
    """A connected TCP stream and how it was reached: the async `Connection`.

    ``stream`` is an anyio `~anyio.abc.SocketStream` (``TCP_NODELAY`` set, as
    `anyio.connect_tcp` does); the other fields are those of `Connection`. Closing the
    connection (``await conn.aclose()``, or leaving its ``async with`` block) closes
    the stream.
    """

    stream: anyio.abc.SocketStream
    local_address: Address
    remote_address: Address
    family: _Family
    attempts: tuple[Attempt, ...] = field(default=())
    elapsed: float = 0.0

    async def aclose(self) -> None:
        """Close the stream."""
        await self.stream.aclose()

    async def __aenter__(self) -> AsyncConnection:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


async def aconnect_by_name(
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
) -> AsyncConnection:
    """Resolve ``nodename`` and connect a TCP stream to it, racing its addresses.

    The async form of `connect_by_name`, for asyncio and trio (through anyio): the same
    parameters, the same racing rules, the same errors and the same attempt records.
    ``timeout`` is measured on the event loop's clock (`anyio.current_time`), so a
    test clock such as trio's ``MockClock`` drives the race. Name lookups run on
    connectbyname's bounded resolver threads (never in the event loop, except a name
    the system answers from its hosts file, which takes microseconds); when the
    deadline passes or the call is cancelled, a lookup still running is abandoned. A
    resolver with an ``alookup`` coroutine (`connectbyname.dns.DNSResolver`) is awaited
    in the event loop instead, and cancelled with the call.
    Cancelling the call (a cancel scope, ``asyncio.timeout``, ``Task.cancel``) closes
    every attempt socket before the cancellation propagates.

    Returns an `AsyncConnection`. Raises `InvalidParameterError`, `NameResolutionError`,
    `TimedOutError`, `HostUnreachableError`, `AddressDeniedError` or
    `OutOfResourcesError`.
    """
    import anyio.abc

    connection = await aconnect_socket(
        nodename,
        servicename,
        timeout=timeout,
        attempt_delay=attempt_delay,
        family=family,
        source_address=source_address,
        socket_options=socket_options,
        resolver=resolver,
        resolution_delay=resolution_delay,
        history=history,
        policy=policy,
    )
    try:
        stream = await anyio.abc.SocketStream.from_socket(connection.socket)
    except BaseException:
        connection.close()
        raise
    return AsyncConnection(
        stream=stream,
        local_address=connection.local_address,
        remote_address=connection.remote_address,
        family=connection.family,
        attempts=connection.attempts,
        elapsed=connection.elapsed,
    )


class _Signals:
    """What the driver's waits wake up for: attempts whose socket turned writable
    (appended by the watcher tasks) and finished lookups. Only ever touched in the
    event loop's thread; resolver threads get there through `notifier`."""

    __slots__ = ("event", "ready")

    def __init__(self, event_class: Callable[[], anyio.Event]) -> None:
        self.event = event_class()
        self.ready: list[int] = []

    def wake(self, *_: object) -> None:
        self.event.set()


def _notifier(signals: _Signals) -> Callable[[Lookup], None]:
    """A lookup done-callback that wakes the driver from a resolver thread.

    It schedules the wake-up without waiting for it (a resolver thread must never block
    on an event loop), and does nothing once the loop has ended: by then the call that
    was waiting is long gone.
    """
    import anyio.lowlevel

    # The event loop's own thread-safe call: asyncio's loop.call_soon_threadsafe or
    # trio's TrioToken.run_sync_soon (anyio's backend_class.run_sync_soon is 4.16's).
    loop: Any = anyio.lowlevel.current_token().native_token
    call_soon = getattr(loop, "call_soon_threadsafe", None) or loop.run_sync_soon

    def notify(_lookup: Lookup) -> None:
        with contextlib.suppress(Exception):
            call_soon(signals.wake)

    return notify


async def _watch(sock: socket.socket, attempt: int, signals: _Signals) -> None:
    import anyio

    await anyio.wait_writable(sock)
    signals.ready.append(attempt)
    signals.wake()


async def _resolve_natively(
    resolver: AsyncNativeResolver, host: str, port: int, lookup: Lookup, signals: _Signals
) -> None:
    try:
        candidates = await resolver.alookup(host, port, lookup.family)
    except Exception as exc:
        lookup._finish([], resolution_error(exc, host, port))
    else:
        lookup._finish(list(candidates), None)
    signals.wake()


async def aconnect_socket(
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
    """`aconnect_by_name`, but the winner comes back as a plain `Connection` (its
    socket blocking, ``TCP_NODELAY`` set) for a caller that wraps it in its event
    loop's own stream type, as the httpx transport does on trio."""
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
    return await _race(target, options, resolver, nodename, servicename)


async def _race(
    target: Target,
    options: Options,
    resolver: Resolver | None,
    nodename: object,
    servicename: object,
) -> Connection:
    import anyio
    import anyio.lowlevel

    # Even a call that needs no wait (a literal on loopback) is a checkpoint, as
    # every anyio call is: cancellation is noticed and other tasks get to run.
    await anyio.lowlevel.checkpoint()
    clock = anyio.current_time
    # The history is shared with the sync driver, which stamps it with
    # time.monotonic(); the loop's clock (trio's, or a test clock) is another scale.
    families = lookup_families(target, options, resolver)
    planner = new_planner(
        target,
        options,
        families,
        nodename=nodename,
        servicename=servicename,
        now=clock(),
        history_now=time.monotonic(),
    )
    signals = _Signals(anyio.Event)
    lookups: list[Lookup] = []
    native = resolver if isinstance(resolver, AsyncNativeResolver) else None
    resolve = resolver or socket.getaddrinfo
    if len(families) == 1 and native is None and cannot_hang(resolve, target.host):
        # A hosts-file answer takes microseconds: a thread would cost more than it.
        lookups.append(resolve_here(resolve, target.host, target.port, families[0]))
    elif families and native is None:
        notify = _notifier(signals)
        for family in families:
            lookup = start_lookup(resolve, target.host, target.port, family)
            lookup.add_done_callback(notify)
            lookups.append(lookup)

    sockets: Sockets = {}
    try:
        async with anyio.create_task_group() as watchers:
            if native is not None:
                # In the task group, so that the end of the race or the call's
                # cancellation cancels a lookup still running.
                for family in families:
                    lookup = Lookup(family)
                    watchers.start_soon(
                        _resolve_natively, native, target.host, target.port, lookup, signals
                    )
                    lookups.append(lookup)
            while True:
                report_lookups(planner, lookups, clock())
                if signals.ready:
                    now = clock()
                    for attempt in signals.ready:
                        report_handshake(planner, sockets, attempt, now)
                    signals.ready.clear()
                action = planner.next_action(clock())
                if isinstance(action, Start):
                    sock = start_attempt(planner, action, options, sockets, clock)
                    if sock is not None:
                        watchers.start_soon(_watch, sock, action.attempt, signals)
                elif isinstance(action, Connected | Failed):
                    outcome = action
                    watchers.cancel_scope.cancel()
                    break
                else:
                    deadline = float("inf") if action.until is None else action.until
                    with anyio.CancelScope(deadline=deadline):
                        await signals.event.wait()
                    # Set only in this thread: nothing can be missed between the
                    # wake-up and the new event, as no await comes in between.
                    signals.event = anyio.Event()

        if isinstance(outcome, Failed):
            conclude(target, options, outcome.error.attempts, time.monotonic())
            error = outcome.error
            del outcome
            try:
                raise error
            finally:
                # As in _sync: the traceback's frame must not keep the error alive.
                del error
        conclude(target, options, outcome.attempts, time.monotonic())
        sock, peer = sockets.pop(outcome.attempt)
        for loser, _ in sockets.values():
            loser.close()
        sockets.clear()
        try:
            connection = make_connection(sock, peer, outcome.attempts, outcome.elapsed)
            # asyncio sets TCP_NODELAY on every TCP transport; trio does not: set it
            # here so that both backends give the same stream (as anyio.connect_tcp).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except BaseException:
            sock.close()
            raise
    finally:
        for sock, _ in sockets.values():
            sock.close()
    return connection
