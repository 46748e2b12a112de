"""One scenario table for the planner and both drivers, on a fake clock.

A scenario gives the inputs (the target, the engine's options, when each lookup answers
and what, how each address behaves once a connect to it starts) and what must happen at
exact times: when each attempt starts, who wins (or which error) and when, and each
attempt's outcome. Three runners play it:

- `run_planner`: the pure planner, fed the events by hand;
- `run_sync`: the sync driver (`_sync.drive`) with a fake clock, poller and socket layer;
- `run_async`: the async driver (`_async.adrive`) the same way, on asyncio and trio.

The fakes make no system call at all: addresses here are never connected to, so the
table may use documentation addresses (2001:db8::/32, 192.0.2.0/24) freely.
"""

from __future__ import annotations

import errno
import heapq
import itertools
import math
import socket
import time
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from connectbyname import ConnectByNameError, ConnectionHistory, Outcome
from connectbyname._dns import _sort
from connectbyname._history import NO_HINTS
from connectbyname._info import Address, Candidate, Connection, format_address
from connectbyname._parse import (
    CallOptions,
    Options,
    Target,
    check_call,
    check_options,
    parse_target,
)
from connectbyname._plan import Connected, Failed, Planner, Start
from connectbyname._race import READABLE, Events, Net, _vetted_ranking
from connectbyname._resolve import Lookup, lookup_families

V6 = socket.AF_INET6
V4 = socket.AF_INET
PORT = 80


def v6(n: int) -> Candidate:
    return Candidate(V6, (f"2001:db8::{n}", PORT, 0, 0))


def v4(n: int) -> Candidate:
    return Candidate(V4, (f"192.0.2.{n}", PORT))


@dataclass(frozen=True)
class Behaviour:
    """How a connect to an address ends: ``code`` (0: connected) after ``after``
    seconds; ``after=None``: never (blackholed); ``after=0``: inside connect()."""

    after: float | None
    code: int = 0


HANG = Behaviour(None)


def connects(after: float = 0.0) -> Behaviour:
    return Behaviour(after, 0)


def refused(after: float = 0.0) -> Behaviour:
    return Behaviour(after, errno.ECONNREFUSED)


def unreachable(after: float = 0.0) -> Behaviour:
    return Behaviour(after, errno.ENETUNREACH)


#: A lookup's answer: when, and the candidates or the ``EAI_*`` code of its failure.
Answer = tuple[float, list[Candidate] | int]


@dataclass(frozen=True)
class Scenario:
    name: str
    #: Lookup answers by family (AF_INET6, AF_INET, or AF_UNSPEC for one lookup).
    answers: dict[int, Answer]
    network: dict[Candidate, Behaviour]
    #: What must happen: (time, address) of each attempt start, in order.
    starts: list[tuple[float, Candidate]]
    #: ("connected", address) or the error class's name; and when.
    result: tuple[str, Candidate | None, float]
    #: Each attempt's outcome, in the order the attempts started (skipped and denied
    #: addresses included).
    outcomes: list[Outcome] = field(default_factory=list)
    nodename: str = "example.test"
    timeout: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    source_address: tuple[str, int] | None = None
    #: Seeds the connection history: (winner, losers) of an earlier call.
    history: tuple[Candidate | None, list[Candidate]] | None = None
    #: False: no socket can be made (out of descriptors).
    sockets: bool = True

    def target(self) -> Target:
        return parse_target(self.nodename, PORT)

    def engine(self, listener: object = None) -> Options:
        options = dict(self.options)
        if listener is not None:
            options["listener"] = listener
        if self.history is not None:
            options["history"] = self._seeded_history()
        else:
            options.setdefault("history", False)
        # A resolver of the call's own: the fake poller answers its lookups on time
        # (the engine's own resolver would ask the system's nameservers).
        options.setdefault("resolver", _never_called)
        return check_options(**options)

    def call(self) -> CallOptions:
        return check_call(self.timeout, self.source_address)

    def _seeded_history(self) -> ConnectionHistory:
        from connectbyname import Attempt

        history = ConnectionHistory()
        assert self.history is not None
        winner, losers = self.history
        attempts = [Attempt(c.address, c.family, 0.0, 0.3, Outcome.ABANDONED) for c in losers]
        if winner is not None:
            attempts.append(Attempt(winner.address, winner.family, 0.25, 0.01, Outcome.CONNECTED))
        # On time.monotonic(): the history's own clock in every driver (see _race).
        history.record(self.nodename, PORT, attempts, time.monotonic())
        return history


class _GlobalSource(dict[Candidate, str]):
    def get(self, candidate: Candidate, default: object = None) -> str:
        return "2001:db8:ffff::1" if candidate.family == V6 else "192.0.2.250"


_GLOBAL_SOURCE = _GlobalSource()


def _never_called(*args: object) -> list[Any]:
    raise AssertionError("the fake poller answers lookups itself")


@dataclass
class Trace:
    """What a runner saw: comparable with the scenario's expectations."""

    starts: list[tuple[float, Address]] = field(default_factory=list)
    result: tuple[str, Address | None, float] | None = None
    outcomes: list[Outcome] = field(default_factory=list)

    def check(self, scenario: Scenario) -> None:
        expected_starts = [(t, c.address) for t, c in scenario.starts]
        assert _rounded(self.starts) == _rounded(expected_starts), self.starts
        kind, candidate, at = scenario.result
        expected = (kind, None if candidate is None else candidate.address, at)
        assert self.result is not None
        assert (self.result[0], self.result[1], round(self.result[2], 9)) == (
            expected[0],
            expected[1],
            round(expected[2], 9),
        ), self.result
        if scenario.outcomes:
            assert self.outcomes == scenario.outcomes


def _rounded(items: list[tuple[float, Address]]) -> list[tuple[float, Address]]:
    return [(round(t, 9), a) for t, a in items]


# --------------------------------------------------------------------------- the world


class World:
    """A fake clock with timers: lookups that answer and connects that end on time."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self.now = 0.0
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._order = itertools.count()
        self.sockets: dict[int, FakeSocket] = {}
        self._fds = itertools.count(1000)
        self.trace = Trace()

    def clock(self) -> float:
        return self.now

    def at(self, when: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._order), action))

    def advance(self, until: float | None) -> None:
        """Move the clock to the next timer or ``until``, whichever comes first, and
        fire every timer due by then."""
        next_timer = self._timers[0][0] if self._timers else math.inf
        limit = math.inf if until is None else until
        target = min(next_timer, limit)
        assert target < math.inf, "the race waits for ever"
        self.now = max(self.now, target)
        while self._timers and self._timers[0][0] <= self.now:
            _, _, action = heapq.heappop(self._timers)
            action()

    def lookup(self, family: socket.AddressFamily) -> Lookup:
        lookup = Lookup(family)
        when, answer = self.scenario.answers[family]

        def finish() -> None:
            if lookup.abandoned:
                return
            if isinstance(answer, int):
                from connectbyname import NameResolutionError

                lookup.finish([], NameResolutionError("no such name", errno=answer))
            else:
                lookup.finish(list(answer), None)

        self.at(when, finish)
        return lookup

    def new_socket(self, family: socket.AddressFamily) -> FakeSocket:
        sock = FakeSocket(self, next(self._fds), family)
        self.sockets[sock.fd] = sock
        return sock


class FakeSocket:
    """Just what the race loop calls on an attempt socket."""

    def __init__(self, world: World, fd: int, family: socket.AddressFamily) -> None:
        self.world = world
        self.fd = fd
        self.family = family
        self.address: Address | None = None
        self.code: int | None = None  # set once the connect's outcome is known
        self.closed = False

    def fileno(self) -> int:
        return -1 if self.closed else self.fd

    def connect_ex(self, address: Address) -> int:
        if self.address is None:
            self.address = address
            world = self.world
            world.trace.starts.append((world.now, address))
            behaviour = world.scenario.network[Candidate(self.family, address)]
            if behaviour.after == 0:
                self.code = behaviour.code
            elif behaviour.after is not None:
                world.at(world.now + behaviour.after, lambda: self._decide(behaviour.code))
            return errno.EINPROGRESS
        if self.code is None:
            return errno.EALREADY
        return self.code

    def _decide(self, code: int) -> None:
        if not self.closed:
            self.code = code

    def getsockopt(self, level: int, option: int) -> int:
        assert (level, option) == (socket.SOL_SOCKET, socket.SO_ERROR)
        return self.code or 0

    def setsockopt(self, *args: object) -> None:
        pass

    def bind(self, address: object) -> None:
        pass

    def setblocking(self, flag: bool) -> None:
        pass

    def getsockname(self) -> Address:
        return ("::1", 50000, 0, 0) if self.family == V6 else ("127.0.0.1", 50000)

    def close(self) -> None:
        self.closed = True


class FakeNet(Net):
    def __init__(self, world: World) -> None:
        self.world = world

    def rank(self, candidate: Candidate) -> tuple[int, ...]:
        # Every address reachable from a global source of its family: RFC 6724 then
        # puts IPv6 first, and asks no kernel about the table's addresses.
        return _sort.rank(candidate, _GLOBAL_SOURCE.get)

    def socket(
        self,
        table: MutableMapping[int, socket.socket],
        key: int,
        family: socket.AddressFamily,
        kind: int = socket.SOCK_STREAM,
    ) -> Any:
        if not self.world.scenario.sockets:
            raise OSError(errno.EMFILE, "Too many open files")
        sock = self.world.new_socket(family)
        table[key] = sock  # type: ignore[assignment]
        return sock


class FakePoller:
    """The `Poller` of both fake drivers; `wait` is the sync form."""

    may_block = False

    def __init__(self, world: World) -> None:
        self.world = world
        self.watched: dict[int, int] = {}
        self.closed = False

    def register(self, fd: int, events: int) -> None:
        assert events != READABLE
        self.watched[fd] = events

    def discard(self, sock: Any) -> None:
        self.watched.pop(sock.fileno(), None)
        sock.close()

    def start_lookup(self, resolver: object, host: str, port: int, family: Any) -> Lookup:
        return self.world.lookup(family)

    def _ready(self) -> Events:
        ready = [
            (fd, events)
            for fd, events in self.watched.items()
            if self.world.sockets[fd].code is not None
        ]
        for fd, _ in ready:
            del self.watched[fd]
        return ready

    def wait(self, until: float | None) -> Events:
        before = self.world.now
        assert until is None or until >= before - 1e-12, "a wait into the past"
        self.world.advance(until)
        return self._ready()

    def close(self) -> None:
        self.closed = True


class FakeAsyncPoller(FakePoller):
    async def wait(self, until: float | None) -> Events:  # type: ignore[override]
        import anyio.lowlevel

        await anyio.lowlevel.checkpoint()
        return super().wait(until)


# --------------------------------------------------------------------------- runners


def _finish(
    world: World, trace: Trace, connection: Connection | None, error: Exception | None
) -> None:
    if connection is not None:
        trace.result = ("connected", connection.remote_address, world.now)
        trace.outcomes = [a.outcome for a in connection.attempts]
        assert connection.elapsed == world.now
        # Every other socket was closed, the winner was not; nothing is left watched.
        winner = connection.socket.fileno()
        assert all(s.closed for fd, s in world.sockets.items() if fd != winner)
        assert not world.sockets[winner].closed
    else:
        assert isinstance(error, ConnectByNameError)
        trace.result = (type(error).__name__, None, world.now)
        trace.outcomes = [a.outcome for a in error.attempts]
        assert all(s.closed for s in world.sockets.values())


def run_sync(scenario: Scenario, listener: object = None) -> Trace:
    from connectbyname._sync import drive

    world = World(scenario)
    poller = FakePoller(world)
    try:
        connection = drive(
            scenario.target(),
            scenario.engine(listener),
            scenario.call(),
            clock=world.clock,
            poller=poller,  # type: ignore[arg-type]
            net=FakeNet(world),
        )
    except ConnectByNameError as exc:
        _finish(world, world.trace, None, exc)
    else:
        _finish(world, world.trace, connection, None)
    assert poller.closed
    assert not poller.watched
    return world.trace


async def run_async(scenario: Scenario, listener: object = None) -> Trace:
    from connectbyname._async import adrive

    world = World(scenario)
    pollers: list[FakeAsyncPoller] = []

    def make_poller(group: object) -> Any:
        pollers.append(FakeAsyncPoller(world))
        return pollers[-1]

    try:
        connection = await adrive(
            scenario.target(),
            scenario.engine(listener),
            scenario.call(),
            clock=world.clock,
            net=FakeNet(world),
            poller_class=make_poller,
        )
    except ConnectByNameError as exc:
        _finish(world, world.trace, None, exc)
    else:
        _finish(world, world.trace, connection, None)
    (poller,) = pollers
    assert poller.closed
    assert not poller.watched
    return world.trace


def run_planner(scenario: Scenario) -> Trace:
    """The planner alone: the events are fed to it by hand, as a driver would."""
    world = World(scenario)
    trace = world.trace
    target, options, call = scenario.target(), scenario.engine(), scenario.call()
    families = lookup_families(target, options)
    hints = NO_HINTS
    if options.history is not None:
        hints = options.history.hints(target.host, target.port, time.monotonic())
    planner = Planner(
        0.0, target, options, call, lookups=families or (socket.AF_UNSPEC,), hints=hints
    )
    if target.literal is not None:
        planner.lookup_done(0.0, [target.literal])
    lookups = [world.lookup(family) for family in families]
    outcomes: dict[int, tuple[float, int]] = {}  # attempt -> (when, code)
    while True:
        for lookup in [lk for lk in lookups if lk.done()]:
            lookups.remove(lookup)
            if lookup.error is not None:
                planner.lookup_failed(world.now, lookup.error, lookup.family)
            else:
                net = FakeNet(world)
                policy = options.policy
                rank = net.rank if policy is None else _vetted_ranking(net, policy)
                ranks = [rank(c) for c in lookup.candidates]
                planner.lookup_done(world.now, lookup.candidates, lookup.family, ranks)
        action = planner.next_action(world.now)
        if isinstance(action, Start):
            candidate = action.candidate
            if not scenario.sockets:
                planner.attempt_failed(world.now, action.attempt, OSError(errno.EMFILE, "no"))
                continue
            behaviour = scenario.network[candidate]
            trace.starts.append((world.now, candidate.address))
            if behaviour.after == 0:
                _report(planner, world.now, action.attempt, behaviour.code)
            elif behaviour.after is not None:
                outcomes[action.attempt] = (world.now + behaviour.after, behaviour.code)
                world.at(world.now + behaviour.after, lambda: None)
        elif isinstance(action, Connected):
            trace.result = ("connected", action.candidate.address, world.now)
            trace.outcomes = [a.outcome for a in action.attempts]
            return trace
        elif isinstance(action, Failed):
            trace.result = (type(action.error).__name__, None, world.now)
            trace.outcomes = [a.outcome for a in action.error.attempts]
            return trace
        else:
            world.advance(action.until)
            for attempt, (when, code) in sorted(outcomes.items(), key=lambda i: i[1][0]):
                if when <= world.now:
                    del outcomes[attempt]
                    _report(planner, world.now, attempt, code)


def _report(planner: Planner, now: float, attempt: int, code: int) -> None:
    if code:
        planner.attempt_failed(now, attempt, OSError(code, "scripted"))
    else:
        planner.attempt_connected(now, attempt)


def describe(candidate: Candidate) -> str:
    return format_address(candidate.address)
