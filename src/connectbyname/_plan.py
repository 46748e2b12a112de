"""The race planner: every decision of a connect-by-name call, and no I/O.

A driver (``_sync`` with selectors, ``_async`` with anyio) feeds the planner what
happened (a lookup finished, an attempt connected or failed) with the time it happened,
and asks `Planner.next_action` what to do now. The planner never reads a clock, opens
a socket or starts a thread, so its rules are tested with a fake clock, and every
driver races by exactly the same rules.

The rules, after RFC 8305 (Happy Eyeballs version 2):

1. Order (section 4). Addresses are tried in the order the resolver gives them (the
   system sorts them by RFC 6724), with the families interleaved: the first address's
   family first, then one of the other family, and so on ("First Address Family Count"
   of 1). Addresses that arrive later join the queue of their family (section 6).
2. Pace (section 5). The first attempt starts as soon as there is an address. The next
   starts ``attempt_delay`` after the previous one started, or at once when an attempt
   fails. Attempts already running go on. With ``attempt_delay=None`` only one attempt
   runs at a time: the next starts only when the running one fails.
3. Skips. An address that the call's options cannot reach (a source address of the
   other family) is recorded as skipped, without a socket, and the next one is taken.
4. Winner. The first attempt reported connected wins; every other attempt still running
   is abandoned, and so is one that reports connected after the winner.
5. Deadline. The timeout bounds the whole call, resolution included; when it passes,
   the attempts still running are recorded as timed out and the call fails.
6. Failure. With nothing left to try, nothing running and no lookup outstanding, the
   call fails: out of resources if no attempt could even get a socket, the resolver's
   error if no address ever came, host unreachable otherwise.
"""

from __future__ import annotations

import errno
import math
import socket
from collections import deque
from dataclasses import dataclass

from ._errors import (
    ConnectByNameError,
    HostUnreachableError,
    NameResolutionError,
    OutOfResourcesError,
    TimedOutError,
)
from ._info import Attempt, Outcome
from ._resolve import Candidate

_REFUSED = {errno.ECONNREFUSED, errno.ECONNRESET}
_UNREACHABLE = {
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
    errno.EADDRNOTAVAIL,
    errno.EAFNOSUPPORT,
}
#: A socket could not be made for want of descriptors or memory.
RESOURCE_ERRNOS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


def outcome_of(error: OSError) -> Outcome:
    """Classify an attempt's error."""
    if error.errno in _REFUSED:
        return Outcome.REFUSED
    if error.errno in _UNREACHABLE:
        return Outcome.UNREACHABLE
    if error.errno == errno.ETIMEDOUT or isinstance(error, TimeoutError):
        return Outcome.TIMED_OUT
    return Outcome.FAILED


@dataclass(frozen=True, slots=True)
class Start:
    """Open a socket for ``candidate`` and start connecting; it is attempt ``attempt``."""

    attempt: int
    candidate: Candidate


@dataclass(frozen=True, slots=True)
class Wait:
    """Wait for events until ``until`` (clock time; ``None``: no limit), then ask again."""

    until: float | None


@dataclass(frozen=True, slots=True)
class Connected:
    """Attempt ``attempt`` won: keep its socket, close every other one."""

    attempt: int
    attempts: tuple[Attempt, ...]
    elapsed: float


@dataclass(frozen=True, slots=True)
class Failed:
    """The call failed: close every socket and raise ``error``."""

    error: ConnectByNameError


Action = Start | Wait | Connected | Failed


class _Record:
    __slots__ = ("candidate", "end", "error", "outcome", "reason", "start")

    def __init__(self, candidate: Candidate, start: float) -> None:
        self.candidate = candidate
        self.start = start
        self.end: float | None = None
        self.outcome: Outcome | None = None
        self.error: OSError | None = None
        self.reason: str | None = None

    def close(self, end: float, outcome: Outcome, error: OSError | None = None) -> None:
        self.end, self.outcome, self.error = end, outcome, error


class Planner:
    """Plans one call: see the module's docstring for the rules it follows.

    ``lookups`` is how many lookups the driver will report with `lookup_done` or
    `lookup_failed` (for an IP literal, one: the driver reports the literal at once).
    """

    def __init__(
        self,
        *,
        now: float,
        timeout: float | None,
        attempt_delay: float | None,
        nodename: object,
        servicename: object,
        port: int,
        lookups: int = 1,
        source_family: socket.AddressFamily | None = None,
    ) -> None:
        self._start = now
        self._deadline = math.inf if timeout is None else now + timeout
        self._timeout = timeout
        self._delay = attempt_delay
        self._nodename = nodename
        self._servicename = servicename
        self._port = port
        self._lookups = lookups
        self._source_family = source_family
        self._queues: dict[socket.AddressFamily, deque[Candidate]] = {}
        self._next_family: socket.AddressFamily | None = None
        self._records: list[_Record] = []
        self._running: set[int] = set()
        self._next_start = now
        self._winner: int | None = None
        self._lookup_error: NameResolutionError | None = None
        self._done = False

    @property
    def deadline(self) -> float | None:
        """The clock time at which the call gives up, or ``None``."""
        return None if self._deadline == math.inf else self._deadline

    @property
    def done(self) -> bool:
        """Whether `next_action` has returned `Connected` or `Failed`."""
        return self._done

    # -- events --------------------------------------------------------------------

    def lookup_done(self, now: float, candidates: list[Candidate]) -> None:
        """A lookup answered with these candidates, in the resolver's order."""
        self._lookups -= 1
        for family, address in candidates:
            if self._next_family is None:
                self._next_family = family
            self._queues.setdefault(family, deque()).append((family, address))

    def lookup_failed(self, now: float, error: NameResolutionError) -> None:
        """A lookup failed; the call fails with ``error`` only if no address ever came."""
        self._lookups -= 1
        if self._lookup_error is None:
            self._lookup_error = error

    def attempt_connected(self, now: float, attempt: int) -> None:
        """Attempt ``attempt`` finished its handshake."""
        record = self._records[attempt]
        self._running.discard(attempt)
        if self._winner is None and not self._done:
            self._winner = attempt
            record.close(now, Outcome.CONNECTED)
        else:
            record.close(now, Outcome.ABANDONED)

    def attempt_failed(self, now: float, attempt: int, error: OSError) -> None:
        """Attempt ``attempt`` failed (no socket, or the connect failed)."""
        self._running.discard(attempt)
        self._records[attempt].close(now, outcome_of(error), error)
        # Section 5: a failure starts the next attempt at once.
        self._next_start = now

    # -- decisions -----------------------------------------------------------------

    def next_action(self, now: float) -> Action:
        """What the driver does next; call it after every event and every wait."""
        if self._done:
            raise RuntimeError("the call is over: next_action() after Connected or Failed")
        if self._winner is not None:
            return self._finish_connected(now)
        if self._has_queued() and (not self._running or now >= self._next_start):
            if now >= self._deadline:
                return self._finish_failed(now)
            start = self._start_next(now)
            if start is not None:
                return start
        if not self._running and not self._has_queued() and self._lookups <= 0:
            return self._finish_failed(now)
        if now >= self._deadline:
            return self._finish_failed(now)
        until = self._deadline
        if self._running and self._has_queued():
            until = min(until, self._next_start)
        return Wait(None if until == math.inf else until)

    def _has_queued(self) -> bool:
        return any(self._queues.values())

    def _pop(self) -> Candidate:
        family = self._next_family
        queue = self._queues.get(family) if family is not None else None
        if not queue:
            family, queue = next((f, q) for f, q in self._queues.items() if q)
        self._next_family = next((f for f in self._queues if f != family), family)
        return queue.popleft()

    def _start_next(self, now: float) -> Start | None:
        while self._has_queued():
            candidate = self._pop()
            record = _Record(candidate, now)
            self._records.append(record)
            if self._source_family is not None and candidate[0] != self._source_family:
                record.reason = "the source address is of the other family"
                record.close(now, Outcome.SKIPPED)
                continue
            attempt = len(self._records) - 1
            self._running.add(attempt)
            self._next_start = math.inf if self._delay is None else now + self._delay
            return Start(attempt, candidate)
        return None

    def _attempts(self) -> tuple[Attempt, ...]:
        return tuple(
            Attempt(
                address=r.candidate[1],
                family=r.candidate[0],
                start=r.start - self._start,
                duration=(r.end if r.end is not None else r.start) - r.start,
                outcome=r.outcome or Outcome.ABANDONED,
                error=r.error,
                reason=r.reason,
            )
            for r in self._records
        )

    def _finish_connected(self, now: float) -> Connected:
        self._done = True
        for attempt in self._running:
            self._records[attempt].close(now, Outcome.ABANDONED)
        self._running.clear()
        assert self._winner is not None
        return Connected(self._winner, self._attempts(), now - self._start)

    def _finish_failed(self, now: float) -> Failed:
        self._done = True
        timed_out = bool(self._running or self._has_queued() or self._lookups > 0)
        for attempt in self._running:
            self._records[attempt].close(now, Outcome.TIMED_OUT)
        self._running.clear()
        attempts = self._attempts()
        errors = [a.error for a in attempts if a.error is not None]
        summary = "; ".join(map(str, attempts))
        cls: type[ConnectByNameError] = HostUnreachableError
        code: int | None = None
        if timed_out:
            cls = TimedOutError
            what = f"timed out after {self._timeout}s"
            what += f": {summary}" if attempts else " resolving the name"
        elif not attempts and self._lookup_error is not None:
            self._lookup_error.attempts = attempts
            return Failed(self._lookup_error)
        elif errors and all(e.errno in RESOURCE_ERRNOS for e in errors):
            cls, code = OutOfResourcesError, errors[0].errno
            what = f"no socket could be made: {summary}"
        else:
            what = f"every address failed: {summary}"
        error = cls(
            f"cannot connect to {self._nodename} port {self._port}: {what}",
            nodename=self._nodename,
            servicename=self._servicename,
            attempts=attempts,
            errno=code,
        )
        if errors:
            error.__cause__ = ExceptionGroup("the attempts' errors", errors)
        return Failed(error)
