"""The race loop, written once: both drivers run it, and only wait for it.

`race` is a generator that carries out what the planner (``_plan``) decides: it starts
the lookups, opens and connects attempt sockets, reads how each handshake ended, tells
the planner, and returns the winner as a `Connection` (or raises the planner's error).
It never waits. When there is nothing to do until something happens, it yields the
clock time until which to wait, and the driver sends back the descriptors that turned
ready by then::

    race = race_loop(...)            # a generator
    until = race.send(None)           # run until the first wait
    while True:
        until = race.send(poller.wait(until))   # the sync driver: blocking
        # the async driver: race.send(await poller.wait(until))

and ``StopIteration.value`` is the connection. The ``_sync`` driver waits with
``select.poll`` in the caller's thread, the ``_async`` driver with anyio; the clock,
the poller and the socket layer (`Net`) are passed in, so one scenario table drives
the planner and both drivers on a fake clock (``tests/test_scenarios.py``).

Why a generator and not a loop in each driver: the drivers then differ in the one
thing that differs, how to wait, and every rule about sockets is written once. Rejected:
callbacks from a shared object (the order of events is then the caller's to get
right, twice), and threads per attempt (trio's design for its own loop; in a sync
driver they cost more than a whole loopback connect).

For a call with TLS (Happy Eyeballs v3 section 6.1), an attempt whose TCP connect
completes is wrapped in the caller's context and runs its handshake here, non-blocking,
each step waiting for what TLS asks (readable or writable); the first handshake to
complete wins, and the next attempt's timer is not stopped by a TCP connect. Why an
``ssl.SSLSocket`` per attempt and not an ``ssl.SSLObject`` over memory BIOs: the winner
goes to clients that need an ``SSLSocket`` (urllib3, httpcore's sync stream), and an
``SSLObject``'s session cannot be moved onto one. A certificate that fails verification
ends the call (the planner's ``call_failed``): racing on would make a forged answer a
matter of timing.

Every attempt socket lives in one table from before its descriptor exists (see
`Net.socket`) until it is closed or handed over, and the one cleanup closes whatever is
in it on every path out: return, error, timeout, cancellation, ``KeyboardInterrupt``.
The winner leaves the table only as the very last step before the return, with nothing
that can raise in between.
"""

from __future__ import annotations

import _socket
import contextlib
import dataclasses
import errno
import logging
import os
import select
import socket
import ssl
from collections.abc import Callable, Generator, Sequence
from typing import Protocol

from ._dns import _config, _sort
from ._dns._resolver import NAT64, Discovery, Resolution, synthesized
from ._errors import (
    AddressDeniedError,
    CertificateError,
    ConnectByNameError,
    InvalidParameterError,
)
from ._events import (
    AttemptFinished,
    AttemptStarted,
    ConnectFinished,
    ConnectStarted,
    EventListener,
    LookupFinished,
    LookupStarted,
    TLSFinished,
    TLSStarted,
    record_type,
    tell,
    wanted,
)
from ._history import NO_HINTS
from ._info import (
    CONNECTED,
    Attempt,
    Candidate,
    Connection,
    ConnectionInfo,
    Outcome,
    format_address,
    unmap_address,
)
from ._parse import CallOptions, Options, Target, TLSOptions, describe
from ._plan import Connected, Failed, Planner, Start, reason_of, vet
from ._policy import Policy
from ._resolve import (
    Lookup,
    Resolver,
    cannot_hang,
    is_system_resolver,
    lookup_families,
    resolve_here,
)
from ._sockets import new_socket

logger = logging.getLogger("connectbyname")

WRITABLE: int = getattr(select, "POLLOUT", 4)
READABLE: int = getattr(select, "POLLIN", 1)

#: connect() on a non-blocking socket goes on in the background after these. EINTR too:
#: POSIX says an interrupted connect() completes asynchronously.
IN_PROGRESS = frozenset({errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN, errno.EINTR})
#: A second connect() says the first is still going on with these.
STILL_CONNECTING = IN_PROGRESS | {errno.EALREADY}
#: setsockopt() refuses an option that does not exist (or a bad value) with these.
_BAD_OPTION = frozenset({errno.ENOPROTOOPT, errno.EINVAL, errno.EOPNOTSUPP})

#: The attempt sockets of one call, by attempt number.
Table = dict[int, socket.socket]
#: What a driver sends back after a wait: ``(descriptor, events)`` pairs.
Events = list[tuple[int, int]]


class Poller(Protocol):
    """How a driver watches descriptors and lookups for the race loop.

    Registrations are one-shot: a descriptor reported ready is no longer watched until
    it is registered again."""

    #: Whether a lookup may run in the caller's thread (the sync driver, with no
    #: deadline to keep); never in an event loop.
    may_block: bool

    def register(self, fd: int, events: int) -> None:
        """Watch ``fd`` for ``events`` (`READABLE`, `WRITABLE`)."""

    def discard(self, sock: socket.socket) -> None:
        """Stop watching ``sock`` if watched, and close it (safe to call twice)."""

    def start_lookup(
        self, resolver: Resolver, host: str, port: int, family: socket.AddressFamily
    ) -> Lookup:
        """Start a lookup that ends the current wait when it finishes."""

    def close(self) -> None:
        """Release what the poller holds (not the sockets it watched)."""


class Net:
    """The socket layer of the race: the one place that makes attempt sockets."""

    #: ``socket(table, key, family, kind=SOCK_STREAM)``: a new non-blocking socket of
    #: ``family`` and ``kind`` (TCP, or UDP for the resolver's queries), entered in
    #: ``table`` under ``key`` *before* its descriptor exists (``_sockets.new_socket``).
    #: The function itself, not a method that calls it: one Python call less per socket.
    socket = staticmethod(new_socket)

    def rank(self, candidate: Candidate) -> tuple[int, ...]:
        """``candidate``'s RFC 6724 rank (``_dns._sort.rank``), for the planner's order:
        the kernel says which source address would reach it."""
        return _sort.rank(candidate)


NET = Net()


def _own_resolution(
    target: Target, options: Options, call: CallOptions, net: Net
) -> Resolution | None:
    """The engine's own resolver for this call, where it may answer: no resolver of the
    caller's, ``socket.getaddrinfo`` not replaced (by a test, or gevent), and a system
    configuration it reproduces (see ``_dns._config``); else ``None``, and the system's
    ``getaddrinfo`` on lookup threads."""
    if options.resolver is not None or not is_system_resolver(socket.getaddrinfo):
        return None
    config = _config.load()
    if isinstance(config, _config.Unsupported):
        return None
    families = (
        (options.family,)
        if options.family != socket.AF_UNSPEC
        else (socket.AF_INET6, socket.AF_INET)
    )
    return Resolution(config, target.host, target.port, families, net.socket, https=call.https)


def _start_lookups(
    target: Target,
    options: Options,
    call: CallOptions,
    families: tuple[socket.AddressFamily, ...],
    poller: Poller,
    *,
    told: _Told | None,
) -> list[Lookup]:
    """Start the call's lookups: in this thread when nothing can make them late (one
    lookup, no deadline, a driver that may block) or they cannot hang (the hosts
    file), else through the poller, which runs them without blocking."""
    resolve = options.resolver or socket.getaddrinfo
    host, port = target.host, target.port
    if told is not None:
        for family in families:
            told.lookup_started(host, family)
    if len(families) == 1 and (
        (poller.may_block and call.timeout is None) or cannot_hang(resolve, host, families[0])
    ):
        return [resolve_here(resolve, host, port, families[0])]
    return [poller.start_lookup(resolve, host, port, family) for family in families]


def vet_target(target: Target, options: Options) -> None:
    """The policy's host-name and port rules, before anything is looked up."""
    policy = options.policy
    reasons = []
    for rule, value in (("check_name", target.host), ("check_port", target.port)):
        check: Callable[[object], str | None] | None = getattr(policy, rule, None)
        if check is not None:
            try:
                reason = reason_of(check(value))
            except Exception as exc:  # fail closed, as for addresses (see _plan.vet)
                reason = f"the policy failed ({type(exc).__name__}: {exc})"
            if reason is not None:
                reasons.append(reason)
    if reasons:
        raise AddressDeniedError(
            f"cannot connect to {describe(target)} port {target.port}: the address policy "
            f"refused it: {'; '.join(reasons)}",
            nodename=target.nodename,
            servicename=target.servicename,
        )


def race(
    target: Target,
    options: Options,
    call: CallOptions,
    poller: Poller,
    clock: Callable[[], float],
    *,
    net: Net = NET,
    into: socket.socket | None = None,
    dual_stack: bool = False,
    history_clock: Callable[[], float] | None = None,
) -> Generator[float | None, Events, Connection]:
    """Race ``target``'s addresses; see the module's docstring for the protocol.

    With ``into`` (the supplied-socket form), the winner's descriptor is moved onto
    that socket (``os.dup2``), and the returned connection's socket is ``into``. With
    ``dual_stack``, IPv4 candidates are reached from IPv6 sockets as IPv4-mapped
    addresses (an ``into`` with ``IPV6_V6ONLY`` off). ``history_clock`` is the
    connection history's clock (`time.monotonic`) when ``clock`` is another one (an
    event loop's)."""
    now = clock()
    told = None
    if options.listener is not None:
        wants = wanted(options.listener)
        if wants:  # else every method is EventListener's own, which does nothing
            told = _Told(options.listener, wants, now, clock)
    if told is not None:
        told.connect_started(target, call)
    table: Table = {}
    lookups: list[Lookup] = []
    poller_open = True
    # Descriptor -> attempt, for the attempt sockets being watched.
    watched: dict[int, int] = {}
    # Attempt -> the ECHConfigList of the HTTPS record its address came with.
    ech: dict[int, bytes] = {}
    # The setup is inside the race's try: the resolution's (and a NAT64 discovery's)
    # sockets exist from the setup on, and its cleanup closes them.
    resolution: Resolution | None = None
    gate: _Nat64Gate | None = None
    try:
        try:
            rank: Callable[[Candidate], tuple[int, ...]] = net.rank
            if options.policy is not None:
                vet_target(target, options)
                # One verdict per address for the whole call: the ranking asks first.
                verdicts = _Verdicts(options.policy)
                options = dataclasses.replace(options, policy=verdicts)
                rank = _vetted_ranking(net, verdicts)
            families: tuple[socket.AddressFamily, ...] = ()
            if target.literal is None:
                resolution = _own_resolution(target, options, call, net)
                if resolution is not None:
                    # The queries leave first: the nameserver answers while the rest of the
                    # call is set up.
                    if told is not None:
                        for family in resolution.lookups:
                            told.lookup_started(target.host, family)
                    resolution.start(now)
                gate = _nat64_gate(target, options, net, rank)
                if resolution is None and options.resolver is None:
                    # The system's getaddrinfo sorted its answer already, by RFC 6724 with
                    # the host's own /etc/gai.conf, which the default table would undo.
                    rank = _keep_order(options)
                if resolution is not None:
                    families = tuple(resolution.lookups)
                else:
                    families = lookup_families(target, options)
            history = options.history
            hints = NO_HINTS
            if history is not None and target.literal is None:
                hints = history.hints(
                    target.host, target.port, now if history_clock is None else history_clock()
                )
            planner = Planner(
                now,
                target,
                options,
                call,
                lookups=families or (socket.AF_UNSPEC,),
                hints=hints,
                services=resolution is not None and resolution.https,
            )
            literal = target.literal
            if literal is not None:
                if options.family not in (socket.AF_UNSPEC, literal.family):
                    raise InvalidParameterError(
                        f"{target.host} is an {literal.family.name[3:]} address but the family "
                        f"asked for is {options.family.name[3:]}",
                        nodename=target.nodename,
                        servicename=target.servicename,
                    )
                gate = _nat64_gate(target, options, net, rank)
                admitted = [literal] if gate is None else gate.admit(now, 0, [literal], ())
                if admitted is not None:
                    planner.lookup_done(now, admitted)
        except ConnectByNameError as exc:
            if told is not None:
                told.connect_finished(None, exc)
            raise
        if families:
            if resolution is None:
                lookups = _start_lookups(target, options, call, families, poller, told=told)
            else:
                lookups = list(resolution.lookups.values())
        services_told = False
        while True:
            now = clock()
            if resolution is not None:
                services_told = _report_services(
                    planner, resolution, lookups, services_told, now, told=told, rank=rank
                )
            if lookups:
                _report_lookups(planner, lookups, now, told=told, rank=rank, gate=gate)
            # The resolver's and the NAT64 discovery's sockets (none for a literal).
            parts = _NO_PARTS if resolution is None and gate is None else _parts(resolution, gate)
            if gate is not None and gate.held:
                gate.release(planner, now)
            for part in parts:
                part.watch(poller.register)
            action = planner.next_action(now)
            if told is not None:
                told.new_records(planner)
            if isinstance(action, Start):
                if action.service is not None and action.service.ech is not None:
                    ech[action.attempt] = action.service.ech
                wait = _start_attempt(
                    planner, action, call, table, net=net, clock=clock, dual_stack=dual_stack
                )
                if wait is not None:
                    watched[wait[0]] = action.attempt
                    poller.register(*wait)
                    if told is not None and call.tls is not None:
                        told.tls_started(planner, action.attempt)
                elif told is not None:
                    told.attempt_finished(planner, action.attempt, table.get(action.attempt))
            elif isinstance(action, Connected):
                winner = action.attempt
                connection = _connection(table[winner], action, planner.deadline, clock, dual_stack)
                connection.ech = ech.get(winner)
                if into is not None:
                    os.dup2(table[winner].fileno(), into.fileno(), into.get_inheritable())
                    connection.socket, winner = into, -1  # and the winner closes below
                # Everything that can raise comes before the winner leaves the table,
                # so that an interruption anywhere here closes it with the rest.
                if len(table) > 1:
                    for attempt in [a for a in table if a != winner]:
                        poller.discard(table[attempt])
                        del table[attempt]
                for lookup in lookups:
                    lookup.abandon()
                lookups = []
                for part in parts:
                    part.close(poller.discard)
                resolution = gate = None
                poller.close()
                poller_open = False
                _conclude(target, options, action.attempts, history_clock or clock)
                if told is not None:
                    told.finished(action.attempts)
                    told.connect_finished(connection, None)
                if winner in table:
                    del table[winner]
                return connection
            elif isinstance(action, Failed):
                _conclude(target, options, action.error.attempts, history_clock or clock)
                if told is not None:
                    told.finished(action.error.attempts)
                    told.connect_finished(None, action.error)
                error = action.error
                del action
                try:
                    raise error
                finally:
                    # Else this frame, kept by the traceback, keeps the error: a cycle
                    # that holds everything here until the cyclic collector runs.
                    del error
            else:
                until = action.until
                for part in parts:
                    timer = part.timer()
                    if timer is not None and (until is None or timer < until):
                        until = timer
                events = yield until
                now = clock()
                for fd, _ in events:
                    if fd in watched:
                        attempt = watched.pop(fd)
                        wait = _report_handshake(
                            planner, call, table, attempt, poller=poller, now=now
                        )
                        if wait is not None:
                            watched[fd] = attempt
                            poller.register(*wait)
                            if told is not None and call.tls is not None:
                                told.tls_started(planner, attempt)
                        elif told is not None:
                            told.attempt_finished(planner, attempt, table.get(attempt))
                    else:
                        for part in parts:
                            if part.owns(fd):
                                part.on_ready(fd, now, poller.discard)
                for part in parts:
                    part.on_time(now, poller.discard)
    finally:
        # Nothing to call on the way out of a win: a call is where an interruption
        # lands, and it would replace the return (and lose the connection).
        if table or lookups or poller_open:
            # Twice: an interruption during the first pass leaves the rest in the table
            # (a socket leaves it only once closed), and the second pass closes them;
            # each pass closes the poller too, so that one interruption anywhere (in
            # the second pass as well) leaves nothing open.
            try:
                _close_all(table, lookups, _parts(resolution, gate), poller)
                poller.close()
            finally:
                _close_all(table, lookups, _parts(resolution, gate), poller)
                poller.close()


def _cut_short(outcome: Outcome | None) -> OSError | None:
    """The error a TLS handshake cut short is told with (``tls_finished``): a new one
    each time, so that no listener holds another call's."""
    if outcome is Outcome.ABANDONED:
        return ConnectionAbortedError(errno.ECONNABORTED, "abandoned: the call ended first")
    if outcome is Outcome.TIMED_OUT:
        return TimeoutError(errno.ETIMEDOUT, "the call's timeout ran out")
    return None


class _Told:
    """What a call has told its listener so far, to tell it the rest in order. Only
    the events in ``wants`` are made and told; the bookkeeping is the same either way."""

    __slots__ = (
        "_clock",
        "_lookups_started",
        "_running",
        "_seen",
        "_server_name",
        "_start",
        "_tls",
        "_wants",
        "listener",
    )

    def __init__(
        self,
        listener: EventListener,
        wants: frozenset[str],
        start: float,
        clock: Callable[[], float],
    ) -> None:
        self.listener = listener
        self._wants = wants
        self._start = start
        self._clock = clock
        self._seen = 0  # attempt records told about
        self._running: set[int] = set()
        self._lookups_started: dict[socket.AddressFamily, float] = {}
        self._server_name: str | None = None
        # Attempt -> when its TLS handshake began, for those told tls_started.
        self._tls: dict[int, float] = {}

    def _elapsed(self) -> float:
        return self._clock() - self._start

    def connect_started(self, target: Target, call: CallOptions) -> None:
        if call.tls is not None:
            self._server_name = call.tls.server_hostname
        if "connect_started" in self._wants:
            event = ConnectStarted(target.host, target.port, call.timeout)
            tell(self.listener, "connect_started", event)

    def lookup_started(self, host: str, family: socket.AddressFamily) -> None:
        elapsed = self._elapsed()
        self._lookups_started[family] = elapsed
        if "lookup_started" in self._wants:
            event = LookupStarted(host, family, record_type(family), elapsed)
            tell(self.listener, "lookup_started", event)

    def lookup_finished(self, host: str, lookup: Lookup, now: float) -> None:
        if "lookup_finished" not in self._wants:
            return
        elapsed = now - self._start
        began = self._lookups_started.get(lookup.family, 0.0)
        event = LookupFinished(
            host,
            lookup.family,
            record_type(lookup.family),
            elapsed,
            elapsed - began,
            tuple(lookup.candidates),
            lookup.error,
        )
        tell(self.listener, "lookup_finished", event)

    def new_records(self, planner: Planner) -> None:
        """The planner's new records: skipped and denied addresses end at once, a
        started attempt begins."""
        while self._seen < planner.attempt_count:
            number = self._seen
            self._seen += 1
            record = planner.attempt(number)
            if record.outcome in (Outcome.SKIPPED, Outcome.DENIED):
                if "attempt_finished" in self._wants:
                    event: object = AttemptFinished(number, record, record.start)
                    tell(self.listener, "attempt_finished", event)
            else:
                self._running.add(number)
                if "attempt_started" in self._wants:
                    event = AttemptStarted(number, record.address, record.family, record.start)
                    tell(self.listener, "attempt_started", event)

    def tls_started(self, planner: Planner, number: int) -> None:
        """Tell ``tls_started`` if attempt ``number`` has just connected over TCP."""
        if number in self._tls or number not in self._running:
            return
        record = planner.attempt(number)
        if record.tcp is not None:
            elapsed = self._tls[number] = record.start + record.tcp
            if "tls_started" in self._wants:
                event = TLSStarted(self._server_name, record.address, elapsed)
                tell(self.listener, "tls_started", event)

    def _tls_finished(self, number: int, record: Attempt, sock: socket.socket | None) -> None:
        began = self._tls.pop(number)
        if "tls_finished" not in self._wants:
            return
        end = record.start + record.duration
        version = alpn = error = None
        if record.outcome is Outcome.CONNECTED and isinstance(sock, ssl.SSLSocket):
            version, alpn = sock.version(), sock.selected_alpn_protocol()
        else:
            error = record.error or _cut_short(record.outcome)
        event = TLSFinished(
            self._server_name, record.address, end, end - began, version, alpn, error
        )
        tell(self.listener, "tls_finished", event)

    def attempt_finished(
        self, planner: Planner, number: int, sock: socket.socket | None = None
    ) -> None:
        if number in self._running:
            self.tls_started(planner, number)  # a handshake that began and ended at once
            self._running.discard(number)
            record = planner.attempt(number)
            if number in self._tls:
                self._tls_finished(number, record, sock)
            self._attempt_finished(number, record)

    def finished(self, attempts: tuple[Attempt, ...]) -> None:
        """The call is over: the attempts still running were abandoned or timed out."""
        for number in sorted(self._running):
            record = attempts[number]
            if number in self._tls:
                self._tls_finished(number, record, None)
            self._attempt_finished(number, record)
        self._running.clear()

    def _attempt_finished(self, number: int, record: Attempt) -> None:
        if "attempt_finished" in self._wants:
            event = AttemptFinished(number, record, record.start + record.duration)
            tell(self.listener, "attempt_finished", event)

    def connect_finished(
        self, connection: Connection | None, error: ConnectByNameError | None
    ) -> None:
        if "connect_finished" in self._wants:
            info = None if connection is None else ConnectionInfo.of(connection)
            event = ConnectFinished(self._elapsed(), info, error)
            tell(self.listener, "connect_finished", event)


def _close_all(table: Table, lookups: list[Lookup], parts: list[_Part], poller: Poller) -> None:
    for part in parts:
        part.close(poller.discard)
    while table:
        attempt = next(iter(table))
        poller.discard(table[attempt])
        del table[attempt]
    while lookups:
        lookups[-1].abandon()
        lookups.pop()


def _report_lookups(
    planner: Planner,
    lookups: list[Lookup],
    now: float,
    *,
    told: _Told | None,
    rank: Callable[[Candidate], tuple[int, ...]],
    gate: _Nat64Gate | None,
) -> None:
    """Tell the planner about every finished lookup, and drop those from ``lookups``."""
    for lookup in [lookup for lookup in lookups if lookup.done()]:
        lookups.remove(lookup)
        if told is not None:
            told.lookup_finished(lookup.target or planner.target.host, lookup, now)
        if lookup.error is not None:
            planner.lookup_failed(now, lookup.error, lookup.family, target=lookup.target)
        else:
            candidates = lookup.candidates
            ranks = [rank(c) for c in candidates]
            if gate is not None:
                # The gate asks the kernel for routes itself, unless these ranks say it.
                routes = ranks if gate.ranks_with(rank) else ()
                admitted = gate.admit(now, lookup.family, candidates, routes, lookup.target)
                if admitted is None:
                    continue  # held until the NAT64 prefix is known
                if admitted is not candidates:
                    candidates, ranks = admitted, [rank(c) for c in admitted]
            planner.lookup_done(now, candidates, lookup.family, ranks, target=lookup.target)


class _Verdicts:
    """A policy that answers each address once per call, however often asked."""

    __slots__ = ("_policy", "_seen")

    def __init__(self, policy: Policy) -> None:
        self._policy = policy
        self._seen: dict[str, str | None] = {}

    def __call__(self, host: str) -> str | None:
        try:
            return self._seen[host]
        except KeyError:
            reason = self._seen[host] = vet(self._policy, host)
            return reason


#: The rank of an address the policy refuses: after every other (RFC 6724's unusable
#: ones are ``(1,)``), and not one NAT64 could help.
_DENIED = (2,)


def _vetted_ranking(net: Net, policy: Policy) -> Callable[[Candidate], tuple[int, ...]]:
    """How a call with an address policy ranks its addresses (RFC 6724, see `Net.rank`):
    the kernel is never asked about an address the policy refuses (asking connects a
    UDP socket to it, which sends nothing, but is a step towards a place the caller
    ruled out)."""

    def rank(candidate: Candidate) -> tuple[int, ...]:
        if vet(policy, candidate.address[0]) is not None:
            return _DENIED
        return net.rank(candidate)

    return rank


_NO_RANK: tuple[int, ...] = ()


def _keep_order(options: Options) -> Callable[[Candidate], tuple[int, ...]]:
    """A ranking that keeps the resolver's order (`_vetted_ranking`'s, policy aside)."""
    policy = options.policy
    if policy is None:
        return lambda candidate: _NO_RANK

    def rank(candidate: Candidate) -> tuple[int, ...]:
        return _DENIED if vet(policy, candidate.address[0]) is not None else _NO_RANK

    return rank


class _Part(Protocol):
    """What the race drives besides its attempts: a resolution, a NAT64 discovery."""

    def watch(self, register: Callable[[int, int], None]) -> None: ...
    def owns(self, fd: int) -> bool: ...
    def timer(self) -> float | None: ...
    def on_ready(self, fd: int, now: float, discard: Callable[[socket.socket], None]) -> None: ...
    def on_time(self, now: float, discard: Callable[[socket.socket], None]) -> None: ...
    def close(self, discard: Callable[[socket.socket], None]) -> None: ...


_NO_PARTS: list[_Part] = []


def _parts(resolution: Resolution | None, gate: _Nat64Gate | None) -> list[_Part]:
    parts: list[_Part] = []
    if resolution is not None:
        parts.append(resolution)
    if gate is not None and gate.discovery is not None:
        parts.append(gate.discovery)
    return parts


def _nat64_gate(
    target: Target, options: Options, net: Net, rank: Callable[[Candidate], tuple[int, ...]]
) -> _Nat64Gate | None:
    """A NAT64 gate for the call, where the engine's own resolver may ask for the
    prefix; an IPv4 loopback literal never needs one."""
    literal = target.literal
    if literal is not None and (
        literal.family != socket.AF_INET or literal.address[0].startswith("127.")
    ):
        return None
    if options.family == socket.AF_INET6 or options.resolver is not None:
        return None
    config = _config.load()
    if isinstance(config, _config.Unsupported):
        return None
    return _Nat64Gate(config, net, rank)


class _Nat64Gate:
    """IPv4 addresses this host has no route to, on a network with IPv6 only: written
    in the network's NAT64 prefix (RFC 6052), found as RFC 7050 says (HEv3 section 8):
    IPv4 literals and A answers. Addresses wait for the prefix while it is being looked
    up. An HTTPS record's IPv4 hints are not translated: such a hint fails at once (no
    route), and the name's own answers, translated, carry on."""

    __slots__ = ("_config", "_net", "_rank", "discovery", "held")

    def __init__(
        self,
        config: _config.SystemConfig,
        net: Net,
        rank: Callable[[Candidate], tuple[int, ...]],
    ) -> None:
        self._config = config
        self._net = net
        self._rank = rank
        self.discovery: Discovery | None = None
        self.held: list[tuple[socket.AddressFamily, list[Candidate], str]] = []

    def ranks_with(self, rank: Callable[[Candidate], tuple[int, ...]]) -> bool:
        """Whether ``rank`` is the routing rank the gate judges by."""
        return rank is self._rank

    def admit(
        self,
        now: float,
        family: int,
        candidates: list[Candidate],
        ranks: Sequence[tuple[int, ...]],
        target: str = "",
    ) -> list[Candidate] | None:
        """The candidates to report now (``candidates`` itself when NAT64 has nothing
        to do), or ``None``: held until the prefix is known (see `release`)."""
        ranks = list(ranks) or [self._rank(c) for c in candidates]
        stranded = [
            c
            for c, r in zip(candidates, ranks, strict=True)
            if c.family == socket.AF_INET and r == (1,)
        ]
        if not stranded or not _sort.is_ipv6_only():
            return candidates
        prefixes = NAT64.known(now)
        if prefixes is None:
            if self.discovery is None:
                self.discovery = Discovery(self._config, self._net.socket, now)
            prefixes = NAT64.known(now)
            if prefixes is None:
                self.held.append((socket.AddressFamily(family), candidates, target))
                return None
        return _translate(candidates, stranded, prefixes)

    def release(self, planner: Planner, now: float) -> None:
        """Report what was held, once the prefix is known (or the lookup ended)."""
        if self.discovery is not None and not self.discovery.done():
            return
        prefixes = NAT64.known(now) or ()
        held, self.held = self.held, []
        for family, candidates, target in held:
            stranded = [c for c in candidates if c.family == socket.AF_INET]
            translated = _translate(candidates, stranded, prefixes)
            ranks = [self._rank(c) for c in translated]
            planner.lookup_done(now, translated, family, ranks, target=target)


def _translate(
    candidates: list[Candidate], stranded: list[Candidate], prefixes: tuple[object, ...]
) -> list[Candidate]:
    result = []
    for candidate in candidates:
        if candidate in stranded and prefixes:
            result.append(synthesized(candidate, prefixes) or candidate)  # type: ignore[arg-type]
        else:
            result.append(candidate)
    return result


def _report_services(
    planner: Planner,
    resolution: Resolution,
    lookups: list[Lookup],
    told_already: bool,
    now: float,
    *,
    told: _Told | None,
    rank: Callable[[Candidate], tuple[int, ...]],
) -> bool:
    """Tell the planner the HTTPS answer once it is there, and start watching the
    lookups of its target names; returns whether the planner knows it."""
    if told_already or resolution.services is None:
        return told_already
    planner.services_done(
        now,
        [
            endpoints._replace(ranks=[rank(c) for c in endpoints.candidates])
            for endpoints in resolution.services
        ],
        [(lookup.target, lookup.family) for lookup in resolution.target_lookups],
    )
    for lookup in resolution.target_lookups:
        if told is not None:
            told.lookup_started(lookup.target, lookup.family)
        lookups.append(lookup)
    return True


def _start_attempt(
    planner: Planner,
    start: Start,
    call: CallOptions,
    table: Table,
    *,
    net: Net,
    clock: Callable[[], float],
    dual_stack: bool,
) -> tuple[int, int] | None:
    """Carry out a `Start`: open the socket (into ``table``) and start its connect.

    Returns what to watch, ``(descriptor, events)``, or ``None`` when the outcome is
    known already and reported to the planner (a failed socket is closed and dropped):
    a connect to this host's own addresses (loopback included) is over before connect()
    returns.
    """
    family, address = start.candidate
    if dual_stack and family == socket.AF_INET:
        family, address = socket.AF_INET6, (f"::ffff:{address[0]}", address[1], 0, 0)
    attempt = start.attempt
    try:
        sock = net.socket(table, attempt, family)
        if dual_stack:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        for option in call.socket_options:
            try:
                sock.setsockopt(*option)
            except OSError as exc:
                if exc.errno in _BAD_OPTION:
                    # Every attempt would fail the same way: the caller's mistake.
                    raise _bad_option(planner, option, exc) from exc
                raise
        if call.source_address is not None:
            sock.bind(call.source_address)
        code = sock.connect_ex(address)
        if code in IN_PROGRESS:
            # Even when the handshake ended inside connect() (it does on loopback),
            # a non-blocking connect() says "in progress". Asking again tells at once,
            # without a round through poll: 0 or EISCONN once connected, the connect's
            # own error once failed, EALREADY while it goes on.
            code = sock.connect_ex(address)
            if code in STILL_CONNECTING:
                return sock.fileno(), WRITABLE
        if code in (0, errno.EISCONN):
            return _tcp_connected(planner, call.tls, table, attempt, now=clock())
        error = OSError(code, os.strerror(code))
    except InvalidParameterError:
        raise
    except OSError as exc:
        error = exc
    if attempt in table:
        table[attempt].close()
        del table[attempt]
    planner.attempt_failed(clock(), attempt, error)
    return None


def _bad_option(planner: Planner, option: object, exc: OSError) -> InvalidParameterError:
    return InvalidParameterError(
        f"socket option {option!r} was refused: {exc.strerror or exc}",
        nodename=planner.target.nodename,
        servicename=planner.target.servicename,
    )


def _report_handshake(
    planner: Planner, call: CallOptions, table: Table, attempt: int, *, poller: Poller, now: float
) -> tuple[int, int] | None:
    """An attempt's socket turned ready: carry its handshake on. Returns what to watch
    next, or ``None`` once the outcome is reported to the planner (a failed socket is
    closed and dropped from ``table``).

    Connected over TCP means connected to the very address it was given, which is what
    ``getpeername()`` would say."""
    sock = table[attempt]
    if isinstance(sock, ssl.SSLSocket):
        assert call.tls is not None
        return _tls_step(planner, call.tls, table, attempt, poller=poller, now=now)
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if code:
        poller.discard(sock)
        del table[attempt]
        planner.attempt_failed(now, attempt, OSError(code, os.strerror(code)))
        return None
    return _tcp_connected(planner, call.tls, table, attempt, now=now, poller=poller)


def _tcp_connected(
    planner: Planner,
    tls: TLSOptions | None,
    table: Table,
    attempt: int,
    *,
    now: float,
    poller: Poller | None = None,
) -> tuple[int, int] | None:
    """Attempt ``attempt`` connected over TCP: it is established, or, for a call with
    TLS, its handshake begins, and the attempt runs on until that ends (v3 section
    6.1: a server that takes TCP and never answers TLS is raced past like one that
    never answers TCP)."""
    if tls is None:
        planner.attempt_connected(now, attempt)
        return None
    planner.attempt_tcp(now, attempt)
    raw = table[attempt]
    wrapped: ssl.SSLSocket | None = None
    try:
        # ssl moves the descriptor to a new socket object and detaches this one; the
        # table holds whichever owns it.
        wrapped = tls.context.wrap_socket(
            raw, server_hostname=tls.server_hostname, do_handshake_on_connect=False
        )
        if isinstance(wrapped, ssl.SSLSocket):
            table[attempt] = wrapped
    except BaseException as exc:
        # ssl raises after taking the descriptor too (the connection reset before the
        # wrap; an interruption): the socket it made lives on in the traceback, unless
        # closed here. So does one made and then interrupted before the table took it.
        _close_taken(exc, raw)
        if isinstance(wrapped, ssl.SSLSocket) and table.get(attempt) is not wrapped:
            wrapped.close()
        if not isinstance(exc, OSError):
            raise
        raw.close()
        table.pop(attempt, None)
        planner.attempt_failed(now, attempt, exc.with_traceback(None))
        return None
    if table[attempt] is raw:
        # A stand-in context (a test's mock) that did not hand back an ssl.SSLSocket:
        # the caller's mistake, every attempt would make it. Its object is closed
        # (it may hold the socket), and the socket with the rest of the table.
        with contextlib.suppress(Exception):
            wrapped.close()
        raise InvalidParameterError(
            f"ssl_context.wrap_socket() returned a {type(wrapped).__name__}, not an ssl.SSLSocket",
            nodename=planner.target.nodename,
            servicename=planner.target.servicename,
        )
    return _tls_step(planner, tls, table, attempt, poller=poller, now=now)


def _close_taken(exc: BaseException, raw: socket.socket) -> None:
    """Close the `ssl.SSLSocket` that ``ssl.SSLSocket._create`` had made when ``exc``
    came out of it. It takes ``raw``'s descriptor (the same number) and then detaches
    ``raw``: interrupted between the two, both hold it, and the made one only lets go
    (``raw`` closes it with the table), so that it is closed once. Both at the C level:
    the made one may have been interrupted in its ``__init__``, before the attributes
    that ``socket.close()`` reads."""
    tb = exc.__traceback__
    while tb is not None:
        made = tb.tb_frame.f_locals.get("self") if tb.tb_frame.f_code is _CREATE else None
        if isinstance(made, ssl.SSLSocket):
            if raw.fileno() == -1:
                _socket.socket.close(made)
            else:
                _socket.socket.detach(made)
        tb = tb.tb_next


_CREATE = ssl.SSLSocket._create.__func__.__code__  # type: ignore[attr-defined]


def _tls_step(
    planner: Planner,
    tls: TLSOptions,
    table: Table,
    attempt: int,
    *,
    poller: Poller | None,
    now: float,
) -> tuple[int, int] | None:
    """Carry attempt ``attempt``'s TLS handshake as far as it goes without waiting."""
    sock = table[attempt]
    assert isinstance(sock, ssl.SSLSocket)
    verdict: Exception | None = None
    try:
        sock.do_handshake()
    except ssl.SSLWantReadError:
        return sock.fileno(), READABLE
    except ssl.SSLWantWriteError:
        return sock.fileno(), WRITABLE
    except ssl.SSLCertVerificationError as exc:
        verdict = exc
    except OSError as exc:  # SSLError included: the handshake, or the connection, failed
        _drop(table, attempt, poller)
        planner.attempt_failed(now, attempt, exc)
        return None
    if verdict is None and tls.check is not None:
        try:
            tls.check(sock)
        except Exception as exc:  # the client's own check: its verdict, whatever its class
            verdict = exc
    if verdict is not None:
        _verification_failed(planner, tls, table, attempt, poller=poller, now=now, exc=verdict)
    else:
        planner.attempt_connected(now, attempt)
    return None


def _verification_failed(
    planner: Planner,
    tls: TLSOptions,
    table: Table,
    attempt: int,
    *,
    poller: Poller | None,
    now: float,
    exc: Exception,
) -> None:
    """A certificate failed verification: the call ends (racing on to an address whose
    certificate passes would make a forged answer a matter of timing)."""
    _drop(table, attempt, poller)
    address = planner.attempt(attempt).address
    error = CertificateError(
        f"the certificate of {tls.server_hostname or address[0]} at "
        f"{format_address(address)} failed verification: {exc}",
        nodename=planner.target.nodename,
        servicename=planner.target.servicename,
    )
    error.__cause__ = exc
    planner.call_failed(now, attempt, error)


def _drop(table: Table, attempt: int, poller: Poller | None) -> None:
    sock = table[attempt]
    if poller is not None:
        poller.discard(sock)
    else:
        sock.close()
    del table[attempt]


def _connection(
    sock: socket.socket,
    action: Connected,
    deadline: float | None,
    clock: Callable[[], float],
    dual_stack: bool,
) -> Connection:
    """Turn the winning socket into a `Connection` (blocking, no timeout)."""
    sock.setblocking(True)
    family, peer = action.candidate
    local = sock.getsockname()
    if family == socket.AF_INET6 or dual_stack:
        # Only IPv6 addresses can be IPv4-mapped: written as IPv4, as the peer's is.
        family, local, peer = socket.AF_INET6, unmap_address(local), unmap_address(peer)
    connection = Connection(
        sock, local, peer, family, action.attempts, action.elapsed, deadline, clock
    )
    if isinstance(sock, ssl.SSLSocket):
        connection.tls_version = sock.version()
        connection.alpn = sock.selected_alpn_protocol()
    return connection


def _conclude(
    target: Target, options: Options, attempts: tuple[Attempt, ...], clock: Callable[[], float]
) -> None:
    """Let the connection history learn from a finished call, and log the call when it
    raced (more than one attempt) or failed: a single attempt that connected is what a
    plain connect does, and logs nothing, as a plain connect does not."""
    if (len(attempts) != 1 or attempts[0].outcome is not CONNECTED) and (
        logger.isEnabledFor(logging.DEBUG)
    ):
        logger.debug(
            "%s port %s: %s",
            target.host,
            target.port,
            "; ".join(map(str, attempts)) or "no address",
        )
    if options.history is not None and target.literal is None:
        options.history.record(target.host, target.port, attempts, clock())
