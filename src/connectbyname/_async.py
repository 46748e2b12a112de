"""The anyio driver: `aconnect_by_name`, on asyncio and on trio.

It runs the race loop (``_race``) exactly as the sync driver does, and differs only in
how it waits: where ``_sync`` has one poll set, this driver has one small task per
watched descriptor, in one task group, waiting for it to turn ready. Lookups run on
the lookup threads and wake the wait through the event loop, so a hung resolver is
simply abandoned at the deadline; a resolver with a coroutine of its own
(`AsyncNativeResolver`, such as `connectbyname.dns.DNSResolver`) gets a task of its
own in the same group instead, and no thread at all.

A socket is never closed under a task waiting on it: `AnyioPoller.discard` tells the
event loop first (``anyio.notify_closing``), which wakes the task, and the task group
is left before the call returns. Cancellation (a cancel scope, ``asyncio.timeout``,
task cancellation) reaches the race loop as its end, which closes every socket.

anyio is imported when a call is made, not with the package: the synchronous engine
must keep working where anyio is not installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
import socket
import ssl
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from types import TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

from ._events import OBSERVERS, EventListener
from ._history import ConnectionHistory
from ._info import Address, Attempt, Connection
from ._observe import observed_race
from ._parse import (
    DEFAULT_ATTEMPT_DELAY,
    DEFAULT_RESOLUTION_DELAY,
    CallOptions,
    Options,
    SocketOption,
    Target,
    TLSOptions,
    check_adapter_call,
    check_connect,
)
from ._policy import Policy
from ._race import NET, WRITABLE, Events, Net, race
from ._resolve import (
    AsyncNativeResolver,
    Lookup,
    Resolver,
    checked_candidates,
    resolution_error,
    start_lookup,
)

if TYPE_CHECKING:
    import anyio.abc


def _missing_anyio(exc: ModuleNotFoundError) -> NoReturn:
    """Re-raise ``exc``, anyio's import failing at call time, as the error that says
    which extra installs it (``name`` stays the missing module's)."""
    if (exc.name or "").partition(".")[0] != "anyio":
        raise exc
    raise ModuleNotFoundError(
        "connectbyname's async engine (aconnect_by_name) needs anyio: "
        "pip install 'connectbyname[async]'",
        name=exc.name,
    ) from exc


_Family = socket.AddressFamily


@dataclass(eq=False, slots=True)
class AsyncConnection:
    """A connected TCP stream and how it was reached: the async `Connection`.

    ``stream`` is an anyio `~anyio.abc.SocketStream` (``TCP_NODELAY`` set, as
    `anyio.connect_tcp` does), which for a call with ``ssl_context`` carries the TLS
    connection and offers anyio's `~anyio.streams.tls.TLSAttribute` attributes; the
    other fields are those of `Connection`. Closing the
    connection (``await conn.aclose()``, or leaving its ``async with`` block) closes
    the stream.
    """

    stream: anyio.abc.SocketStream
    local_address: Address
    remote_address: Address
    family: _Family
    attempts: tuple[Attempt, ...] = field(default=())
    elapsed: float = 0.0
    deadline: float | None = None
    clock: Callable[[], float] = field(default=time.monotonic, repr=False)
    #: As `Connection`'s: the TLS version, ALPN protocol and HTTPS record's ECH config.
    tls_version: str | None = None
    alpn: str | None = None
    ech: bytes | None = None

    def time_left(self) -> float | None:
        """Seconds left of the call's timeout on the event loop's clock (0 once it has
        passed), or ``None`` when the call had no timeout (see `Connection.time_left`)."""
        if self.deadline is None:
            return None
        return max(0.0, self.deadline - self.clock())

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
    attempt_delay: float | None = DEFAULT_ATTEMPT_DELAY,
    family: int = socket.AF_UNSPEC,
    source_address: tuple[str, int] | None = None,
    socket_options: Iterable[SocketOption] | None = (),
    resolver: Resolver | None = None,
    resolution_delay: float = DEFAULT_RESOLUTION_DELAY,
    history: ConnectionHistory | bool = True,
    policy: Policy | None = None,
    listener: EventListener | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
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

    With ``ssl_context``, each attempt runs its TLS handshake in the race, as in
    `connect_by_name`, and the stream carries the TLS connection.

    Returns an `AsyncConnection`. Raises `InvalidParameterError`, `NameResolutionError`,
    `TimedOutError`, `HostUnreachableError` (`RefusedError`, `TLSError`),
    `CertificateError`, `AddressDeniedError` or `OutOfResourcesError`.
    """
    try:
        import anyio.abc
    except ModuleNotFoundError as exc:
        _missing_anyio(exc)

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
        listener=listener,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
    )
    stream: anyio.abc.SocketStream | None = None
    try:
        if isinstance(connection.socket, ssl.SSLSocket):
            from ._tlsstream import TLSSocketStream

            stream = TLSSocketStream(connection.socket)
        else:
            stream = await anyio.abc.SocketStream.from_socket(connection.socket)
        return AsyncConnection(
            stream,
            connection.local_address,
            connection.remote_address,
            connection.family,
            connection.attempts,
            connection.elapsed,
            connection.deadline,
            connection.clock,
            connection.tls_version,
            connection.alpn,
            connection.ech,
        )
    except BaseException:
        # Interrupted (trio raises KeyboardInterrupt anywhere in unprotected code):
        # once the stream holds the socket, it is the stream that closes it.
        if stream is None:
            connection.close()
        else:
            await anyio.aclose_forcefully(stream)
        raise


class AnyioPoller:
    """The async driver's `Poller`: a watcher task per descriptor, in ``group``."""

    may_block = False

    def __init__(self, group: anyio.abc.TaskGroup) -> None:
        import anyio
        import anyio.lowlevel

        self._anyio = anyio
        self._group = group
        self._event = anyio.Event()
        self._ready: Events = []
        # Descriptor -> the registration watching it. A watcher task starts later than
        # it is asked for: by then its registration may be discarded (the socket closed,
        # its number perhaps reused), and it must not wait at all.
        self._watched: dict[int, int] = {}
        self._registrations = itertools.count()
        self._wake_from_thread: Callable[[], None] | None = None

    def register(self, fd: int, events: int) -> None:
        registration = self._watched[fd] = next(self._registrations)
        self._group.start_soon(self._watch, fd, events, registration)

    async def _watch(self, fd: int, events: int, registration: int) -> None:
        anyio = self._anyio
        if self._watched.get(fd) != registration:
            return  # discarded before this task started
        try:
            if events & WRITABLE:
                await anyio.wait_writable(fd)
            else:
                await anyio.wait_readable(fd)
        except anyio.ClosedResourceError:
            return  # discarded: notify_closing woke us
        if self._watched.get(fd) == registration:
            del self._watched[fd]
            self._ready.append((fd, events))
            self._event.set()

    def discard(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if self._watched.pop(fd, None) is not None:
            # Wakes the watcher (and forgets the descriptor in the event loop) before
            # the descriptor is closed and can be reused.
            self._anyio.notify_closing(fd)
        sock.close()

    def start_lookup(
        self, resolver: Resolver, host: str, port: int, family: socket.AddressFamily
    ) -> Lookup:
        if isinstance(resolver, AsyncNativeResolver):
            lookup = Lookup(family)
            # In the task group, so that the end of the race or the call's cancellation
            # cancels a lookup still running.
            self._group.start_soon(self._resolve_natively, resolver, host, port, lookup)
            return lookup
        if self._wake_from_thread is None:
            self._wake_from_thread = _thread_waker(self._event_set)
        lookup = start_lookup(resolver, host, port, family)
        wake = self._wake_from_thread
        lookup.add_done_callback(lambda _: wake())
        return lookup

    def _event_set(self) -> None:
        self._event.set()

    async def _resolve_natively(
        self, resolver: AsyncNativeResolver, host: str, port: int, lookup: Lookup
    ) -> None:
        try:
            answer = await resolver.alookup(host, port, lookup.family)
            # Checked as any resolver's answer is: IP literals of their family only.
            candidates = checked_candidates(answer, lookup.family, host)
        except Exception as exc:
            lookup.finish([], resolution_error(exc, host, port))
        else:
            lookup.finish(candidates, None)
        self._event.set()

    async def wait(self, until: float | None) -> Events:
        """Wait until ``until`` (the event loop's clock) or until something is ready."""
        anyio = self._anyio
        if not self._ready:
            with anyio.CancelScope(deadline=math.inf if until is None else until):
                await self._event.wait()
        # Set only in this thread: nothing can be missed between the wake-up and the
        # new event, as no await comes in between.
        self._event = anyio.Event()
        ready, self._ready = self._ready, []
        return ready

    def close(self) -> None:
        self._wake_from_thread = None


def _asyncio_task() -> asyncio.Task[Any] | None:
    """The asyncio task running this call; ``None`` on trio."""
    try:
        return asyncio.current_task()
    except RuntimeError:  # no asyncio event loop in this thread
        return None


def _thread_waker(wake: Callable[[], None]) -> Callable[[], None]:
    """A function that calls ``wake`` in the running event loop from any thread, without
    waiting for it (a lookup thread must never block on an event loop), and does
    nothing once the loop has ended."""
    import anyio.lowlevel

    native: Any = anyio.lowlevel.current_token().native_token
    if isinstance(native, asyncio.AbstractEventLoop):
        call_soon: Callable[[Callable[[], None]], object] = native.call_soon_threadsafe
    else:  # trio's TrioToken: its public, thread-safe run_sync_soon
        call_soon = native.run_sync_soon

    def wake_from_thread() -> None:
        with contextlib.suppress(Exception):  # the loop is closed: nobody waits any more
            call_soon(wake)

    return wake_from_thread


async def aconnect(
    nodename: object,
    servicename: object,
    options: Options,
    *,
    timeout: object = None,
    source_address: object = None,
    socket_options: object = (),
    https: bool = False,
    tls: TLSOptions | None = None,
) -> Connection:
    """`aconnect_socket` with the engine's options checked already (`options_from`),
    as an adapter keeps them; ``https`` and ``tls`` as for ``_sync.connect``."""
    target, call = check_adapter_call(
        nodename,
        servicename,
        timeout=timeout,
        source_address=source_address,
        socket_options=socket_options,
        https=https,
        tls=tls,
    )
    return await adrive(target, options, call)


async def aconnect_socket(
    nodename: str | bytes,
    servicename: str | bytes | int,
    *,
    timeout: float | None = None,
    attempt_delay: float | None = DEFAULT_ATTEMPT_DELAY,
    family: int = socket.AF_UNSPEC,
    source_address: tuple[str, int] | None = None,
    socket_options: Iterable[SocketOption] | None = (),
    resolver: Resolver | None = None,
    resolution_delay: float = DEFAULT_RESOLUTION_DELAY,
    history: ConnectionHistory | bool = True,
    policy: Policy | None = None,
    listener: EventListener | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> Connection:
    """`aconnect_by_name`, but the winner comes back as a plain `Connection` (its
    socket blocking, ``TCP_NODELAY`` set) for a caller that wraps it in its event
    loop's own stream type, as the httpx transport does on trio."""
    target, options, call = check_connect(
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
        listener=listener,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
    )
    return await adrive(target, options, call)


async def adrive(
    target: Target,
    options: Options,
    call: CallOptions,
    *,
    clock: Callable[[], float] | None = None,
    net: Net = NET,
    poller_class: Callable[[anyio.abc.TaskGroup], AnyioPoller] = AnyioPoller,
) -> Connection:
    """Run the race loop to its end, waiting in the event loop (with a clock, a poller
    and a socket layer of the caller's, for tests)."""
    try:
        import anyio
        import anyio.lowlevel
    except ModuleNotFoundError as exc:
        _missing_anyio(exc)

    # Even a call that needs no wait (a literal on loopback) is a checkpoint, as
    # every anyio call is: cancellation is noticed and other tasks get to run.
    await anyio.lowlevel.checkpoint()
    connection: Connection | None = None
    failure: Exception | None = None
    loop = None
    host = _asyncio_task()
    requested = 0 if host is None else host.cancelling()
    try:
        async with anyio.create_task_group() as group:
            poller = poller_class(group)
            # The history is shared with the sync driver, which stamps it with
            # time.monotonic(); the loop's clock (trio's, or a test clock) is another.
            # Observers (connectbyname.otel) are asked only when there are some.
            loop = (observed_race if OBSERVERS else race)(
                target,
                options,
                call,
                poller,
                clock or anyio.current_time,
                net=net,
                history_clock=time.monotonic,
            )
            try:
                until = next(loop)
                while True:
                    until = loop.send(await poller.wait(until))
            except StopIteration as finished:
                connection = finished.value
            except Exception as exc:
                # Raised below, outside the task group, which would wrap it in a group:
                # the call's error, as the sync driver raises it (and so would be any
                # other, a policy's or a resolver's bug included).
                failure = exc
            # Every watcher was woken by the race's end; any left is cancelled.
            group.cancel_scope.cancel()
        if failure is not None:
            try:
                raise failure
            finally:
                # The traceback keeps this frame, which would keep the error: a cycle.
                failure = None
        assert connection is not None
        if host is not None and host.cancelling() > requested:
            # A Task.cancel() came and was never delivered: anyio before 4.16 (its
            # #1214) folds one that lands in the loop iteration of the task group's own
            # cancellation into it, and swallows both. Returned, the connection would
            # reach a cancelled task (and asyncio.timeout would not fire): closed below.
            raise asyncio.CancelledError
        # asyncio sets TCP_NODELAY on every TCP transport; trio does not: set it here
        # so that both backends give the same stream (as anyio.connect_tcp).
        connection.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except BaseException:
        if loop is not None:
            loop.close()  # cancelled during a wait: the race closes its sockets
        if connection is not None:
            connection.close()
        raise
    return connection
