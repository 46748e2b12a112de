"""The race planner: every decision of a connect-by-name call, and no I/O.

A driver (``_sync`` with ``select.poll``, ``_async`` with anyio) feeds the planner what
happened (a lookup finished, an attempt connected or failed) with the time it happened,
and asks `Planner.next_action` what to do now. The planner never reads a clock, opens
a socket or starts a thread, so its rules are tested with a fake clock, and every
driver races by exactly the same rules.

The rules, after RFC 8305 (Happy Eyeballs version 2):

1. Order (RFC 8305 section 4; Happy Eyeballs v3 section 5). Every address not yet
   tried is kept in one list, ordered by: the HTTPS record's service priority (lowest
   first; addresses of no service last, once services are known), then the connection
   history (the address that last won first, those that recently lost a race they had
   a head start in last: "used before"), then RFC 6724's destination rules across both
   families (the driver gives each address its rank: the rules need the kernel's
   source address, which the planner does not look up), then the order they came in.
   Addresses that arrive later join the list where the rules put them (section 6).
   Families are interleaved: the first address's family first, then one of the other
   family, and so on ("Preferred Address Family Count" of 1).
1a. Resolution delay (RFC 8305 section 3; v3 section 4.2). Before the first attempt,
   the race waits, at most ``resolution_delay`` after the first address came, while
   the preferred family (IPv6, or the family of the remembered winner) has not
   answered, or while an HTTPS query has not: then starts without them. An HTTPS
   record's address hints count as answers of their family: with hints on time, the
   race starts on them at once, and the A and AAAA answers, when they come, replace
   the hints not yet tried that they do not list (v3 section 7).
2. Pace (section 5). The first attempt starts as soon as there is an address. The next
   starts ``attempt_delay`` after the previous one started, or at once when an attempt
   fails. Attempts already running go on. With ``attempt_delay=None`` only one attempt
   runs at a time: the next starts only when the running one fails.
3. Skips. An address that the call's options cannot reach (a source address of the
   other family) is recorded as skipped, and one the address policy refuses as denied,
   without a socket, immediately before its turn; the next one is taken at once.
4. Winner. The first attempt reported connected wins; every other attempt still running
   is abandoned, and so is one that reports connected after the winner. For a call with
   TLS (v3 section 6.1), an attempt reported connected over TCP (`attempt_tcp`) runs on
   through its handshake and is "connected" only once that completes; the pace of rule
   2 goes on meanwhile. A failure after TCP connected is a failure in TLS, whatever its
   errno (a reset answering the ClientHello is no refusal).
5. Deadline. The timeout bounds the whole call, resolution included; when it passes,
   the attempts still running are recorded as timed out and the call fails. One
   exception: past the deadline, while no attempt is running (none started yet, or
   every one failed at once), the next address still gets an attempt that is never
   waited for: a connect over inside connect(), as on loopback, wins; any other is
   timed out at once. A plain connect does as much with a tiny timeout (each address
   gets one non-blocking try), and the name's lookup should not cost a caller more
   than the connect it replaces.
6. Failure. With nothing left to try, nothing running and no lookup outstanding, the
   call fails: the resolver's error if no address ever came, address denied if the
   policy refused every address, out of resources if no attempt could even get a
   socket, refused if every address tried refused, TLS error if one at least failed in
   TLS, host unreachable otherwise.
7. Verification. A certificate that fails verification (`call_failed`) ends the call
   at once with its error, whatever else runs, even an attempt reported connected in
   the same wait: racing must never become a way around a verification failure.
"""

from __future__ import annotations

import errno
import math
import socket
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from ._dns._wire import Service
from ._errors import (
    AddressDeniedError,
    ConnectByNameError,
    HostUnreachableError,
    NameResolutionError,
    OutOfResourcesError,
    RefusedError,
    TimedOutError,
    TLSError,
)
from ._history import NO_HINTS, Hints
from ._info import CONNECTED, Attempt, Candidate, Outcome
from ._parse import CallOptions, Options, Target, describe
from ._policy import Policy

_REFUSED = {errno.ECONNREFUSED, errno.ECONNRESET}
_UNREACHABLE = {
    errno.ENETUNREACH,
    errno.EHOSTUNREACH,
    errno.ENETDOWN,
    errno.EHOSTDOWN,
    errno.EADDRNOTAVAIL,
    errno.EAFNOSUPPORT,
}
#: A lookup's answer that the name has no address (of the family asked for).
_NOTHING = frozenset({socket.EAI_NONAME, getattr(socket, "EAI_NODATA", socket.EAI_NONAME)})
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


# The actions are not frozen: a frozen dataclass sets each field through
# object.__setattr__, and every call makes several actions on its fast path.


@dataclass(slots=True)
class Start:
    """Open a socket for ``candidate`` and start connecting; it is attempt ``attempt``.
    ``service`` is the HTTPS record it came with (its ALPN, ECH), if any."""

    attempt: int
    candidate: Candidate
    service: Service | None = None


@dataclass(slots=True)
class Wait:
    """Wait for events until ``until`` (clock time; ``None``: no limit), then ask again."""

    until: float | None


@dataclass(slots=True)
class Connected:
    """Attempt ``attempt`` (to ``candidate``) won: keep its socket, close every other one."""

    attempt: int
    candidate: Candidate
    attempts: tuple[Attempt, ...]
    elapsed: float


@dataclass(slots=True)
class Failed:
    """The call failed: close every socket and raise ``error``."""

    error: ConnectByNameError


Action = Start | Wait | Connected | Failed


class Endpoints(NamedTuple):
    """An HTTPS record's addresses for the planner: its hints (``candidates``, with
    their ``ranks``), the ``target`` name (``""``: the name itself) and the record."""

    target: str
    service: Service
    candidates: Sequence[Candidate]
    ranks: Sequence[tuple[int, ...]] | None = None


class _Entry:
    """An address not tried yet, with what orders it (see rule 1)."""

    __slots__ = ("candidate", "key", "origin", "rank", "seq", "service", "target")

    # Positional: one is built per address on the fast path, and a class called with
    # keywords costs about twice as much to build.
    def __init__(  # noqa: PLR0917
        self,
        candidate: Candidate,
        rank: tuple[int, ...],
        origin: str,
        target: str,
        service: Service | None,
        seq: int,
    ) -> None:
        self.candidate = candidate
        self.rank = rank
        self.origin = origin
        self.target = target
        self.service = service
        self.seq = seq
        # Set when the list is sorted (`Planner._key`): the one place it is read.
        self.key: tuple[object, ...] = ()


def _on_port(candidate: Candidate, service: Service | None) -> Candidate:
    """``candidate`` on its service's port (RFC 9460 section 7.2), if it names one."""
    if service is None or not service.port or candidate.address[1] == service.port:
        return candidate
    address = candidate.address
    return Candidate(candidate.family, (address[0], service.port, *address[2:]))


class _Record:
    __slots__ = ("candidate", "end", "error", "history", "outcome", "reason", "start", "tcp")

    def __init__(self, candidate: Candidate, start: float, history: str | None) -> None:
        self.candidate = candidate
        self.start = start
        self.history = history
        self.tcp: float | None = None  # when TCP connected, with TLS to follow
        self.end: float | None = None
        self.outcome: Outcome | None = None
        self.error: OSError | None = None
        self.reason: str | None = None

    def close(self, end: float, outcome: Outcome, error: OSError | None = None) -> None:
        self.end, self.outcome, self.error = end, outcome, error

    def attempt(self, call_start: float) -> Attempt:
        end = self.start if self.end is None else self.end
        return Attempt(
            self.candidate.address,
            self.candidate.family,
            self.start - call_start,
            end - self.start,
            self.outcome or Outcome.ABANDONED,
            self.error,
            self.reason,
            self.history,
            None if self.tcp is None else self.tcp - self.start,
        )


def vet(policy: Policy, host: str) -> str | None:
    """The policy's reason to refuse ``host``, or ``None``. A policy that fails refuses:
    a guard that cannot decide must not let the address through."""
    try:
        return reason_of(policy(host))
    except Exception as exc:
        return f"the policy failed ({type(exc).__name__}: {exc}), so the address is refused"


def reason_of(verdict: object) -> str | None:
    """A policy's verdict as a reason: ``None`` lets the address through, a string
    refuses it, and anything else (a policy's bug) refuses it too, saying what it was."""
    if verdict is None or isinstance(verdict, str):
        return verdict
    return f"the policy answered {verdict!r:.80}, not a reason or None, so it is refused"


MOVED_FIRST = "moved first: it connected last time"
MOVED_LAST = "moved last: it lost a race recently"


class Planner:
    """Plans one call: see the module's docstring for the rules it follows.

    Built from the call's parts: where it goes (``target``), the engine's settings
    (``options``: the pace, the resolution delay, the policy), the client's per-call
    options (``call``: the timeout, the source address's family), the lookups the
    driver will report with `lookup_done` or `lookup_failed` (``lookups``: one family,
    ``AF_UNSPEC`` for both at once, or ``(AF_INET6, AF_INET)`` for separate lookups; an
    IP literal is reported as one ``AF_UNSPEC`` lookup), and the connection history's
    ``hints``.
    """

    __slots__ = (
        "_deadline",
        "_delay",
        "_demoted",
        "_done",
        "_fatal",
        "_hold_until",
        "_last_family",
        "_lookup_error",
        "_next_start",
        "_pending",
        "_policy",
        "_preferred",
        "_records",
        "_resolution_delay",
        "_running",
        "_separate",
        "_seq",
        "_services",
        "_services_known",
        "_sorted",
        "_source_family",
        "_start",
        "_target",
        "_target_service",
        "_targets_pending",
        "_timeout",
        "_untried",
        "_winner",
    )

    def __init__(
        self,
        now: float,
        target: Target,
        options: Options,
        call: CallOptions,
        *,
        lookups: tuple[socket.AddressFamily, ...],
        hints: Hints = NO_HINTS,
        services: bool = False,
    ) -> None:
        self._start = now
        timeout = call.timeout
        self._deadline = math.inf if timeout is None else now + timeout
        self._timeout = timeout
        self._delay = options.attempt_delay
        self._target = target
        self._pending = set(lookups)
        self._separate = len(self._pending) > 1
        self._resolution_delay = options.resolution_delay
        self._hold_until = math.inf
        self._source_family = call.source_family
        self._policy = options.policy
        self._preferred = hints.preferred
        self._demoted = hints.demoted
        self._untried: list[_Entry] = []
        self._sorted = True
        self._seq = 0
        # Whether an HTTPS query is outstanding, and whether any service is known.
        self._services = services
        self._services_known = False
        # The service target names' lookups still running: (target, family); and the
        # service each target name is for (the first by priority).
        self._targets_pending: set[tuple[str, socket.AddressFamily]] = set()
        self._target_service: dict[str, Service] = {}
        self._last_family: socket.AddressFamily | None = None
        self._records: list[_Record] = []
        self._running: set[int] = set()
        self._next_start = now
        self._winner: int | None = None
        self._lookup_error: NameResolutionError | None = None
        self._fatal: ConnectByNameError | None = None
        self._done = False

    @property
    def target(self) -> Target:
        """Where the call connects."""
        return self._target

    @property
    def attempt_count(self) -> int:
        """How many attempt records there are (skipped and denied addresses included)."""
        return len(self._records)

    def attempt(self, attempt: int) -> Attempt:
        """The record of attempt ``attempt`` as it stands (abandoned until it ends)."""
        return self._records[attempt].attempt(self._start)

    @property
    def deadline(self) -> float | None:
        """The clock time at which the call gives up, or ``None``."""
        return None if self._deadline == math.inf else self._deadline

    # -- events --------------------------------------------------------------------

    def lookup_done(
        self,
        now: float,
        candidates: Sequence[Candidate],
        family: socket.AddressFamily = socket.AF_UNSPEC,
        ranks: Sequence[tuple[int, ...]] | None = None,
        *,
        target: str = "",
    ) -> None:
        """The lookup for ``family`` answered with these candidates, in its order;
        ``ranks`` gives each its RFC 6724 rank (lower first; none: the order kept).
        ``target``: the service target name they are the addresses of (``""``: the
        name itself), whose hints of ``family`` they replace."""
        if not target:
            self._pending.discard(family)
        else:
            self._targets_pending.discard((target, family))
        if self._services_known:
            self._replace_hints(target, family, candidates)
        self._add(now, candidates, ranks, origin="", target=target, service=None)

    def services_done(
        self,
        now: float,
        services: Sequence[Endpoints],
        lookups: Iterable[tuple[str, socket.AddressFamily]] = (),
    ) -> None:
        """The HTTPS query answered (``services`` empty: it failed, or there are none):
        each service's hints join the race as early answers. ``lookups``: the
        (target, family) lookups of the services' target names that are running; the
        call waits for them as for its own (`lookup_done` and `lookup_failed` with
        ``target``)."""
        self._services = False
        self._targets_pending.update(lookups)
        for endpoints in services:
            self._services_known = True
            if endpoints.target:
                self._target_service.setdefault(endpoints.target, endpoints.service)
            self._add(
                now,
                endpoints.candidates,
                endpoints.ranks,
                origin="hint",
                target=endpoints.target,
                service=endpoints.service,
            )
        if self._services_known:
            # Addresses already known belong to the service whose target is the name
            # itself, or, with none, to no service: they then go last.
            owner = next((e.service for e in services if not e.target), None)
            for entry in self._untried:
                if entry.origin != "hint" and entry.service is None:
                    entry.service = owner
                    entry.candidate = _on_port(entry.candidate, owner)
            self._sorted = False

    def _add(
        self,
        now: float,
        candidates: Sequence[Candidate],
        ranks: Sequence[tuple[int, ...]] | None,
        *,
        origin: str,
        target: str,
        service: Service | None,
    ) -> None:
        """Add candidates, from an answer (``origin`` ``""``) or an HTTPS record's hints
        (``"hint"``) for ``target`` (``""``: the name itself)."""
        if not candidates:
            return
        if self._hold_until == math.inf:
            self._hold_until = now + self._resolution_delay
        if service is None and self._services_known:
            service = self._target_service.get(target) if target else self._owner_service()
        untried = self._untried
        known = {e.candidate.address for e in untried} if untried else ()
        seq = self._seq
        for index, given in enumerate(candidates):
            candidate = given if origin or service is None else _on_port(given, service)
            if candidate.address in known:
                continue  # a hint the answer repeats, or a duplicate
            rank = ranks[index] if ranks is not None else ()
            seq += 1
            untried.append(_Entry(candidate, rank, origin, target, service, seq))
        self._seq = seq
        self._sorted = False

    def _key(self, entry: _Entry) -> tuple[object, ...]:
        """``entry``'s place in the order (rule 1), worked out as the list is sorted (so
        always by what is known then), and kept on it for `_pop`'s interleaving."""
        address = entry.candidate.address
        if address == self._preferred:
            bucket = 0
        elif self._demoted and address in self._demoted:
            bucket = 2
        else:
            bucket = 1
        service = entry.service
        group = 0 if not self._services_known else (service.priority if service else 1 << 16)
        entry.key = (group, bucket, entry.rank, entry.seq)
        return entry.key

    def _owner_service(self) -> Service | None:
        for entry in self._untried:
            if entry.origin == "hint" and not entry.target and entry.service is not None:
                return entry.service
        return None

    def _replace_hints(
        self, target: str, family: socket.AddressFamily, candidates: Sequence[Candidate]
    ) -> None:
        """v3 section 7: once A/AAAA for a target came, its hints of that family that
        they do not list are dropped (an attempt already started to one goes on). Only
        asked once services are known."""
        if family == socket.AF_UNSPEC:
            return
        listed = {c.address[0] for c in candidates}
        self._untried = [
            e
            for e in self._untried
            if not (
                e.origin == "hint"
                and e.target == target
                and e.candidate.family == family
                and e.candidate.address[0] not in listed
            )
        ]

    def lookup_failed(
        self,
        now: float,
        error: NameResolutionError,
        family: socket.AddressFamily = socket.AF_UNSPEC,
        *,
        target: str = "",
    ) -> None:
        """The lookup for ``family`` failed; the call fails with ``error`` only if no
        address ever came. Of two lookups' errors, a failure to get an answer (a bad
        answer, a timeout) outranks an answer that there is no such address, whichever
        came first: the other family's "nothing" must not hide it. A service target's
        lookup (``target``) that fails leaves its hints, and its error counts only if
        the name's own lookups left none."""
        if target:
            self._targets_pending.discard((target, family))
            if self._lookup_error is None:
                self._lookup_error = error
            return
        self._pending.discard(family)
        known = self._lookup_error
        if known is None or (known.errno in _NOTHING and error.errno not in _NOTHING):
            self._lookup_error = error

    def attempt_tcp(self, now: float, attempt: int) -> None:
        """Attempt ``attempt`` connected over TCP; its TLS handshake follows. It goes on
        running: the next attempt still starts on time (v3 section 6.1), and it wins
        only when the handshake completes (`attempt_connected`)."""
        self._records[attempt].tcp = now

    def attempt_connected(self, now: float, attempt: int) -> None:
        """Attempt ``attempt`` is established: its TCP handshake (and its TLS one, for a
        call with TLS) completed."""
        record = self._records[attempt]
        self._running.discard(attempt)
        # A verification failure read in the same wait outranks it (see call_failed).
        if self._winner is None and not self._done and self._fatal is None:
            self._winner = attempt
            record.close(now, CONNECTED)
        else:
            record.close(now, Outcome.ABANDONED)

    def call_failed(self, now: float, attempt: int, error: ConnectByNameError) -> None:
        """Attempt ``attempt`` ended the whole call with ``error`` (a certificate that
        failed verification: never raced past, not even by a handshake that completed
        in the same wait; the first such error is the call's)."""
        self._running.discard(attempt)
        cause = error.__cause__
        self._records[attempt].close(
            now, Outcome.FAILED, cause if isinstance(cause, OSError) else error
        )
        if self._fatal is None:
            self._fatal = error

    def attempt_failed(self, now: float, attempt: int, error: OSError) -> None:
        """Attempt ``attempt`` failed (no socket, or the connect failed)."""
        self._running.discard(attempt)
        record = self._records[attempt]
        # Once TCP connected, whatever ends the attempt is a failure in TLS (a reset
        # there is a middlebox's or the server's answer to the ClientHello, not a refusal).
        record.close(now, outcome_of(error) if record.tcp is None else Outcome.FAILED, error)
        # Section 5: a failure starts the next attempt at once.
        self._next_start = now

    # -- decisions -----------------------------------------------------------------

    def next_action(self, now: float) -> Action:
        """What the driver does next; call it after every event and every wait."""
        if self._done:
            raise RuntimeError("the call is over: next_action() after Connected or Failed")
        if self._fatal is not None:
            return self._finish_fatal(now, self._fatal)
        if self._winner is not None:
            return self._finish_connected(now)
        hold = (
            not self._records
            and now < self._deadline
            and now < self._hold_until
            and self._holding()
        )
        if self._untried and not hold and (not self._running or now >= self._next_start):
            if now >= self._deadline and self._running:
                return self._finish_failed(now)
            start = self._start_next(now)
            if start is not None:
                return start
        if now >= self._deadline or not self._unsettled():
            return self._finish_failed(now)
        until = self._deadline
        if hold:
            until = min(until, self._hold_until)
        elif self._running and self._untried:
            until = min(until, self._next_start)
        return Wait(None if until == math.inf else until)

    def _unsettled(self) -> bool:
        """Whether anything could still bring an address or a connection: an attempt, an
        address not tried, a lookup or the HTTPS answer on its way."""
        return bool(
            self._running
            or self._untried
            or self._pending
            or self._services
            or self._targets_pending
        )

    def _holding(self) -> bool:
        """Wait a little for the preferred family and the HTTPS answer (see rule 1a).
        Only asked before the first attempt, while the resolution delay runs."""
        if self._services:
            return True
        if self._targets_pending and all(e.service is None for e in self._untried):
            # Services are known and their targets' addresses are on the way: the
            # name's own addresses are the fallback, not the first choice (RFC 9460
            # section 3).
            return True
        if not self._separate:
            return False
        preferred = self._preferred_family()
        return preferred in self._pending and not any(
            e.candidate.family == preferred for e in self._untried
        )

    def _preferred_family(self) -> socket.AddressFamily:
        if self._preferred is not None:
            return socket.AF_INET6 if len(self._preferred) == 4 else socket.AF_INET
        return socket.AF_INET6

    def _pop(self) -> _Entry:
        untried = self._untried
        if not self._sorted:
            # One address has no order to find (a literal): its key is never read.
            if len(untried) > 1:
                untried.sort(key=self._key)
            self._sorted = True
        chosen = 0
        last = self._last_family
        if last is not None and len(untried) > 1:
            # Interleave: the best of the other family, within the best group.
            group = untried[0].key[0]
            for index, entry in enumerate(untried):
                if entry.key[0] != group:
                    break
                if entry.candidate.family != last:
                    chosen = index
                    break
        elif last is None and self._demoted and untried[0].candidate.address in self._demoted:
            # Don't open with a recent loser while the other family has a fresh one.
            for index, entry in enumerate(untried):
                if entry.candidate.address not in self._demoted:
                    chosen = index
                    break
        entry = untried.pop(chosen)
        self._last_family = entry.candidate.family
        return entry

    def _start_next(self, now: float) -> Start | None:
        while self._untried:
            entry = self._pop()
            candidate = entry.candidate
            address = candidate.address
            history = None
            if address == self._preferred:
                history = MOVED_FIRST
            elif self._demoted and address in self._demoted:
                history = MOVED_LAST
            record = _Record(candidate, now, history)
            self._records.append(record)
            if self._source_family is not None and candidate.family != self._source_family:
                record.reason = "the source address is of the other family"
                record.close(now, Outcome.SKIPPED)
                continue
            reason = None if self._policy is None else vet(self._policy, address[0])
            if reason is not None:
                record.reason = reason
                record.close(now, Outcome.DENIED)
                continue
            attempt = len(self._records) - 1
            self._running.add(attempt)
            self._next_start = math.inf if self._delay is None else now + self._delay
            return Start(attempt, candidate, entry.service)
        return None

    def _attempts(self) -> tuple[Attempt, ...]:
        return tuple([record.attempt(self._start) for record in self._records])

    def _finish_connected(self, now: float) -> Connected:
        self._done = True
        for attempt in self._running:
            self._records[attempt].close(now, Outcome.ABANDONED)
        self._running.clear()
        winner = self._winner
        assert winner is not None
        return Connected(
            winner, self._records[winner].candidate, self._attempts(), now - self._start
        )

    def _finish_fatal(self, now: float, error: ConnectByNameError) -> Failed:
        self._done = True
        for attempt in self._running:
            self._records[attempt].close(now, Outcome.ABANDONED)
        self._running.clear()
        if self._winner is not None:
            # Connected in the same wait as the verdict: closed with the rest, unused.
            self._records[self._winner].outcome = Outcome.ABANDONED
            self._winner = None
        error.attempts = self._attempts()
        return Failed(error)

    def _finish_failed(self, now: float) -> Failed:
        self._done = True
        timed_out = self._unsettled()
        for attempt in self._running:
            self._records[attempt].close(now, Outcome.TIMED_OUT)
        self._running.clear()
        attempts = self._attempts()
        errors = [a.error for a in attempts if a.error is not None]
        summary = "; ".join(map(str, attempts))
        cls: type[ConnectByNameError] = HostUnreachableError
        code: int | None = None
        tried = [a for a in attempts if a.outcome not in (Outcome.SKIPPED, Outcome.DENIED)]
        if timed_out:
            cls = TimedOutError
            what = f"timed out after {self._timeout:g}s"
            what += f": {summary}" if attempts else " resolving the name"
        elif not attempts and self._lookup_error is not None:
            return Failed(self._lookup_error)
        elif all(a.outcome is Outcome.DENIED for a in attempts):
            cls = AddressDeniedError
            what = f"the address policy refused every address: {summary}"
        elif errors and all(e.errno in RESOURCE_ERRNOS for e in errors):
            cls, code = OutOfResourcesError, errors[0].errno
            what = f"no socket could be made: {summary}"
        elif tried and all(a.outcome is Outcome.REFUSED for a in tried):
            cls = RefusedError
            what = f"every address refused the connection: {summary}"
        elif any(a.tcp is not None for a in tried):
            cls = TLSError
            what = f"no TLS handshake completed: {summary}"
        else:
            what = f"every address failed: {summary}"
        target = self._target
        error = cls(
            f"cannot connect to {describe(target)} port {target.port}: {what}",
            nodename=target.nodename,
            servicename=target.servicename,
            attempts=attempts,
            errno=code,
        )
        if errors:
            error.__cause__ = ExceptionGroup("the attempts' errors", errors)
        return Failed(error)
