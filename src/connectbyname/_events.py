"""Events: what a connect does, told to a listener as it happens.

Pass an `EventListener` (a subclass overriding what it needs) as ``listener=`` to any
call or adapter. Its methods are called synchronously, in order, in the thread (or
task) making the connection, each with one event object; ``elapsed`` is the time since
the call started, on the call's clock. A listener should return quickly: the race
waits for it. An exception a listener raises never breaks the connection: it is
logged (once per listener and method, so a broken listener cannot flood the log) and
the call goes on.

Without a listener nothing is made or called: each place that tells one first checks
that there is one.
"""

from __future__ import annotations

import logging
import socket
import threading
import weakref
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


def record_type(family: socket.AddressFamily) -> str:
    """The DNS records a lookup of ``family`` asks for."""
    if family == socket.AF_INET6:
        return "AAAA"
    if family == socket.AF_INET:
        return "A"
    return "AAAA+A"


_logged: weakref.WeakKeyDictionary[EventListener, set[str]] = weakref.WeakKeyDictionary()
_logged_lock = threading.Lock()


def tell(listener: EventListener, method: str, event: object) -> None:
    """Call ``listener``'s ``method`` with ``event``; what it raises is logged, once
    per listener and method, and goes no further."""
    try:
        getattr(listener, method)(event)
    except Exception:
        with _logged_lock:
            try:
                seen = _logged.setdefault(listener, set())
            except TypeError:  # not weakly referenceable: log every time
                seen = set()
            first = method not in seen
            seen.add(method)
        if first:
            logger.exception(
                "the event listener %r raised in %s; the connection goes on (this is "
                "logged once per listener and method)",
                listener,
                method,
            )
