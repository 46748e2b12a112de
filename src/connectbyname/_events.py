"""Events: what a connect does, told to a listener as it happens.

Pass an `EventListener` (a subclass overriding what it needs) as ``listener=`` to any
call or adapter. Its methods are called synchronously, in order, in the thread (or
task) making the connection, each with one event object; ``elapsed`` is the time since
the call started, on the call's clock. A listener should return quickly: the race
waits for it. An exception a listener raises never breaks the connection: it is
logged (once per listener and method, so a broken listener cannot flood the log) and
the call goes on.

Without a listener nothing is made or called: each place that tells one first checks
that there is one. The engine makes only the events a listener overrides the method of
(`wanted`): an `EventListener` with every method as it is costs what no listener does.

The engine tells a call's events (`connect_started` to `connect_finished`), each TLS
handshake it races among them (`tls_started`, `tls_finished`, per attempt). The
adapters add what they do around it: a TLS handshake after the connect (inside a
proxy's tunnel) and their pools' use of a connection (`connection_acquired`,
`connection_released`).

Process-wide observers (`Observer`, `observe`) see every call of the process, whatever
listener it was given: each makes a listener of its own per call (or none), which is
told alongside the call's. `connectbyname.otel` is one.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass

from ._errors import ConnectByNameError, NameResolutionError
from ._info import Address, Attempt, Candidate, ConnectionInfo

logger = logging.getLogger("connectbyname")


@dataclass(frozen=True, slots=True)
class ConnectStarted:
    """A call began: it connects to ``host`` (the name as resolved, or the literal)
    port ``port``, within ``timeout`` seconds (``None``: no limit)."""

    host: str
    port: int
    timeout: float | None


@dataclass(frozen=True, slots=True)
class LookupStarted:
    """A lookup of ``host`` began: ``record`` is what it asks for (``"AAAA"``,
    ``"A"``, or ``"AAAA+A"`` for one lookup of both families)."""

    host: str
    family: socket.AddressFamily
    record: str
    elapsed: float


@dataclass(frozen=True, slots=True)
class LookupFinished:
    """A lookup ended: with ``candidates`` (in the resolver's order), or ``error``."""

    host: str
    family: socket.AddressFamily
    record: str
    elapsed: float
    duration: float
    candidates: tuple[Candidate, ...]
    error: NameResolutionError | None


@dataclass(frozen=True, slots=True)
class AttemptStarted:
    """Attempt number ``attempt`` (counting from 0, as in ``attempts``) began
    connecting to ``address``."""

    attempt: int
    address: Address
    family: socket.AddressFamily
    elapsed: float


@dataclass(frozen=True, slots=True)
class AttemptFinished:
    """Attempt number ``attempt`` ended; ``record`` is its `Attempt` (with the
    outcome). Skipped and denied addresses end without having started."""

    attempt: int
    record: Attempt
    elapsed: float


@dataclass(frozen=True, slots=True)
class ConnectFinished:
    """The call ended: connected (``info`` says how) or failed (``error``)."""

    elapsed: float
    info: ConnectionInfo | None
    error: ConnectByNameError | None


@dataclass(frozen=True, slots=True)
class TLSStarted:
    """A TLS handshake began over the connection to ``address``; ``server_name`` is
    the name sent (SNI) and checked against the certificate (``None``: none)."""

    server_name: str | None
    address: Address | None
    elapsed: float


@dataclass(frozen=True, slots=True)
class TLSFinished:
    """A TLS handshake ended: with the TLS ``version`` (``"TLSv1.3"``) and the ALPN
    protocol agreed (``"h2"``, ``"http/1.1"``, ``None``: none), or ``error``: its own (a
    failed certificate check, an alert, a reset), or, for a handshake the race cut
    short, ``ConnectionAbortedError`` (the call ended first: another attempt won, or a
    certificate failed) or ``TimeoutError``. ``duration`` is the handshake's. A call
    that is cancelled or interrupted tells neither this nor ``attempt_finished`` for
    what was still running (observers are told ``call_abandoned``)."""

    server_name: str | None
    address: Address | None
    elapsed: float
    duration: float
    version: str | None
    alpn_protocol: str | None
    error: BaseException | None


@dataclass(frozen=True, slots=True)
class ConnectionAcquired:
    """An adapter gave a request a connection: a kept-alive one from its pool
    (``reused``) or a new one; ``info`` is the connection's (its ``reused`` says the
    same)."""

    info: ConnectionInfo
    reused: bool


@dataclass(frozen=True, slots=True)
class ConnectionReleased:
    """A request is done with its connection: back in the pool, open, for the next one
    (``kept``), or closed."""

    info: ConnectionInfo
    kept: bool


class EventListener:
    """Receives the events of every connect it is given to (see the module's
    docstring). Every method does nothing: override those you need."""

    def connect_started(self, event: ConnectStarted) -> None:
        """A call began."""

    def lookup_started(self, event: LookupStarted) -> None:
        """A name lookup began."""

    def lookup_finished(self, event: LookupFinished) -> None:
        """A name lookup ended."""

    def attempt_started(self, event: AttemptStarted) -> None:
        """A connection attempt began."""

    def attempt_finished(self, event: AttemptFinished) -> None:
        """A connection attempt ended (or an address was skipped or denied)."""

    def connect_finished(self, event: ConnectFinished) -> None:
        """The call ended."""

    def tls_started(self, event: TLSStarted) -> None:
        """A TLS handshake began."""

    def tls_finished(self, event: TLSFinished) -> None:
        """A TLS handshake ended."""

    def connection_acquired(self, event: ConnectionAcquired) -> None:
        """An adapter gave a request a connection (new or reused)."""

    def connection_released(self, event: ConnectionReleased) -> None:
        """A request is done with its connection."""


#: Every method of `EventListener`, in the order a connection's events come.
EVENT_METHODS: tuple[str, ...] = (
    "connect_started",
    "lookup_started",
    "lookup_finished",
    "attempt_started",
    "attempt_finished",
    "tls_started",
    "tls_finished",
    "connect_finished",
    "connection_acquired",
    "connection_released",
)


def record_type(family: socket.AddressFamily) -> str:
    """The DNS records a lookup of ``family`` asks for."""
    if family == socket.AF_INET6:
        return "AAAA"
    if family == socket.AF_INET:
        return "A"
    return "AAAA+A"


_logged: weakref.WeakKeyDictionary[object, set[str]] = weakref.WeakKeyDictionary()
_logged_lock = threading.Lock()


def tell(listener: EventListener, method: str, event: object) -> None:
    """Call ``listener``'s ``method`` with ``event``; what it raises is logged, once
    per listener and method, and goes no further."""
    try:
        getattr(listener, method)(event)
    except Exception:
        log_once(listener, method)


def log_once(listener: object, method: str) -> None:
    """Log the exception being handled, raised by ``listener``'s ``method``, unless that
    listener's method raised before. Listeners an observer makes per call are logged
    as their observer (``log_as``), so that a broken one is logged once, not per call."""
    key = getattr(listener, "log_as", None)
    if key is None:
        key = listener
    with _logged_lock:
        try:
            seen = _logged.setdefault(key, set())
        except TypeError:  # not weakly referenceable: log every time
            seen = set()
        first = method not in seen
        seen.add(method)
    if first:
        logger.exception(
            "the event listener %r raised in %s; the connection goes on (this is "
            "logged once per listener and method)",
            key,
            method,
        )


# --------------------------------------------------------------------------- observers


class CallListener(EventListener):
    """The listener an `Observer` makes for one call (or one adapter step).

    Besides the events, it is told `call_abandoned` when the call ends without
    `connect_finished` (cancelled, interrupted, or a bug), so that what it began it can
    end. Exceptions it raises are logged as its observer's (``log_as``)."""

    #: The object whose exceptions these are, for the logged-once rule.
    log_as: object = None

    def call_abandoned(self, error: BaseException) -> None:
        """The call ended without `connect_finished`: ``error`` is what ended it (for a
        generator closed by a cancellation or ``KeyboardInterrupt``, ``GeneratorExit``
        whose ``__context__`` is that)."""


class Observer:
    """Sees every connect of the process (see `observe`): for each engine call, and
    each TLS handshake an adapter does, it may make a `CallListener`, which is told
    that call's or that handshake's events next to the call's own listener.

    Called in the thread (or task) making the connection, as the call begins: a
    listener it makes knows the caller's context (`contextvars`). Return ``None`` to
    stay out of a call: then it costs nothing more. Every method returns ``None``."""

    def connect(self, host: str, port: int) -> CallListener | None:
        """A call to ``host`` port ``port`` begins: its listener, or ``None``."""
        return None

    def tls(self, server_name: str | None, address: Address | None) -> CallListener | None:
        """An adapter begins a TLS handshake: its listener, or ``None``."""
        return None


#: The observers of the process, in the order they were added. Changed only by
#: `observe` and `unobserve`, in place (the drivers hold this very list), and read
#: through a snapshot.
OBSERVERS: list[Observer] = []
_observers_lock = threading.Lock()


def observe(observer: Observer) -> None:
    """Let ``observer`` see every connect of the process from now on (once, however
    often it is added)."""
    with _observers_lock:
        if observer not in OBSERVERS:
            OBSERVERS[:] = [*OBSERVERS, observer]


def unobserve(observer: Observer) -> None:
    """Stop telling ``observer`` (calls under way keep the listeners it made)."""
    with _observers_lock:
        OBSERVERS[:] = [o for o in OBSERVERS if o is not observer]


def made_by(observers: list[Observer], method: str, *args: object) -> list[CallListener]:
    """The listeners ``observers`` make through ``method`` (an observer that raises is
    logged once, and makes none)."""
    made = []
    for observer in tuple(observers):
        try:
            listener = getattr(observer, method)(*args)
        except Exception:
            log_once(observer, method)
            continue
        if listener is not None:
            made.append(listener)
    return made


class Fanout(CallListener):
    """Several listeners told as one, each in turn (and each one's exceptions logged
    as its own)."""

    __slots__ = ("listeners",)

    def __init__(self, listeners: tuple[EventListener, ...]) -> None:
        self.listeners = listeners

    def call_abandoned(self, error: BaseException) -> None:
        for listener in self.listeners:
            if isinstance(listener, CallListener):
                tell(listener, "call_abandoned", error)


def _fanned(method: str) -> object:
    def fan(self: Fanout, event: object) -> None:
        for listener in self.listeners:
            tell(listener, method, event)

    fan.__name__ = fan.__qualname__ = method
    return fan


for _method in EVENT_METHODS:
    setattr(Fanout, _method, _fanned(_method))


def wanted(listener: EventListener) -> frozenset[str]:
    """The events ``listener`` does something with: those whose method its class
    overrides or it has set on itself, every one if its class has a
    ``__getattribute__`` of its own (a `Fanout`'s: its listeners'). The others are
    `EventListener`'s own, which do nothing, so the engine need not make them."""
    if isinstance(listener, Fanout):
        return frozenset().union(*(wanted(each) for each in listener.listeners))
    kind = type(listener)
    base = EventListener
    try:
        by_class = _WANTED[kind]
    except KeyError:
        if kind.__getattribute__ is not object.__getattribute__:
            by_class = frozenset(EVENT_METHODS)  # it may answer any name with anything
        else:
            by_class = frozenset(
                m for m in EVENT_METHODS if getattr(kind, m) is not getattr(base, m)
            )
        with contextlib.suppress(TypeError):  # a class that is not weakly referenceable
            _WANTED[kind] = by_class
    own = getattr(listener, "__dict__", None)
    if own:
        return by_class | frozenset(m for m in EVENT_METHODS if m in own)
    return by_class


_WANTED: weakref.WeakKeyDictionary[type, frozenset[str]] = weakref.WeakKeyDictionary()


def joined(listeners: list[EventListener]) -> EventListener | None:
    """One listener that tells all of ``listeners`` (``None`` for none)."""
    if not listeners:
        return None
    if len(listeners) == 1:
        return listeners[0]
    return Fanout(tuple(listeners))


# --------------------------------------------------------------------------- adapters' steps


class TLSStep:
    """The events of one TLS handshake an adapter does after the connect (inside a
    proxy's tunnel; the engine tells those it races itself): `begin` tells ``tls_started`` to
    the adapter's listener and to what the observers make for it; `finished` or
    `failed` tells ``tls_finished``. ``elapsed`` counts from the connect call's start,
    on ``clock``."""

    __slots__ = ("_address", "_began", "_clock", "_elapsed", "_listener", "_server_name")

    def __init__(
        self,
        listener: EventListener,
        server_name: str | None,
        address: Address | None,
        elapsed: float,
        clock: Callable[[], float],
    ) -> None:
        self._listener = listener
        self._server_name = server_name
        self._address = address
        self._elapsed = elapsed
        self._clock = clock
        self._began = clock()

    @classmethod
    def begin(
        cls,
        listener: EventListener | None,
        server_name: str | None,
        address: Address | None,
        elapsed: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> TLSStep | None:
        """Tell that the handshake begins; ``None`` (and nothing made) when nobody
        listens: no ``listener`` and no observer."""
        if listener is None and not OBSERVERS:
            return None
        listeners: list[EventListener] = [] if listener is None else [listener]
        if OBSERVERS:
            listeners += made_by(OBSERVERS, "tls", server_name, address)
        told = joined(listeners)
        if told is None:
            return None
        step = cls(told, server_name, address, elapsed, clock)
        tell(told, "tls_started", TLSStarted(server_name, address, elapsed))
        return step

    def finished(self, version: str | None, alpn_protocol: str | None) -> None:
        """The handshake succeeded."""
        self._tell(version, alpn_protocol, None)

    def failed(self, error: BaseException) -> None:
        """The handshake failed (or was cancelled) with ``error``."""
        self._tell(None, None, error)

    def _tell(
        self, version: str | None, alpn_protocol: str | None, error: BaseException | None
    ) -> None:
        duration = max(0.0, self._clock() - self._began)
        event = TLSFinished(
            self._server_name,
            self._address,
            self._elapsed + duration,
            duration,
            version,
            alpn_protocol,
            error,
        )
        tell(self._listener, "tls_finished", event)
