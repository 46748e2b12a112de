"""The scenario table (tests/scenarios.py), played by the planner and both drivers.

Every row states exact times on a fake clock: when each attempt starts, and when and
how the call ends. The same row passing for the pure planner, the sync driver and the
async driver (on asyncio and on trio) is what shows that the drivers decide nothing.
"""

from __future__ import annotations

import socket

import pytest

from connectbyname import AttemptFinished, AttemptStarted, ConnectFinished, EventListener, Outcome
from connectbyname._info import Candidate

from .scenarios import (
    HANG,
    V4,
    V6,
    Answer,
    Scenario,
    connects,
    refused,
    run_async,
    run_planner,
    run_sync,
    unreachable,
    v4,
    v6,
)

A, AB, R, U, T, S, D = (
    Outcome.CONNECTED,
    Outcome.ABANDONED,
    Outcome.REFUSED,
    Outcome.UNREACHABLE,
    Outcome.TIMED_OUT,
    Outcome.SKIPPED,
    Outcome.DENIED,
)


def both(
    v6s: list[Candidate], v4s: list[Candidate], at6: float = 0.0, at4: float = 0.0
) -> dict[int, Answer]:
    return {V6: (at6, v6s), V4: (at4, v4s)}


def deny_v6(host: str) -> str | None:
    return "no IPv6 here" if ":" in host else None


SCENARIOS = [
    # -- pace (RFC 8305 section 5) ---------------------------------------------------
    Scenario(
        "the next address starts after the attempt delay",
        both([v6(1)], [v4(1)]),
        {v6(1): HANG, v4(1): connects(0.01)},
        starts=[(0.0, v6(1)), (0.25, v4(1))],
        result=("connected", v4(1), 0.26),
        outcomes=[AB, A],
    ),
    Scenario(
        "a failure starts the next attempt at once",
        both([v6(1)], [v4(1)]),
        {v6(1): refused(0.05), v4(1): connects(0.01)},
        starts=[(0.0, v6(1)), (0.05, v4(1))],
        result=("connected", v4(1), 0.06),
        outcomes=[R, A],
    ),
    Scenario(
        "the failure of an older attempt starts the next one early",
        both([v6(1), v6(2)], [v4(1)]),
        {v6(1): refused(0.3), v4(1): HANG, v6(2): connects(0.01)},
        starts=[(0.0, v6(1)), (0.25, v4(1)), (0.3, v6(2))],
        result=("connected", v6(2), 0.31),
        outcomes=[R, AB, A],
    ),
    Scenario(
        "families are interleaved, IPv6 first",
        both([v6(1), v6(2), v6(3)], [v4(1), v4(2)]),
        dict.fromkeys([v6(1), v6(2), v6(3), v4(1), v4(2)], HANG),
        timeout=2,
        starts=[(0.0, v6(1)), (0.25, v4(1)), (0.5, v6(2)), (0.75, v4(2)), (1.0, v6(3))],
        result=("TimedOutError", None, 2.0),
        outcomes=[T] * 5,
    ),
    Scenario(
        "a connect that ends inside connect() needs no wait",
        both([v6(1)], [v4(1)]),
        {v6(1): connects(0.0), v4(1): HANG},
        starts=[(0.0, v6(1))],
        result=("connected", v6(1), 0.0),
        outcomes=[A],
    ),
    Scenario(
        "two connecting together: the first reported wins",
        both([v6(1)], [v4(1)]),
        {v6(1): connects(0.3), v4(1): connects(0.05)},
        starts=[(0.0, v6(1)), (0.25, v4(1))],
        result=("connected", v6(1), 0.3),
        outcomes=[A, AB],
    ),
    Scenario(
        "the deadline mid-race times out the running attempts",
        both([v6(1), v6(2)], [v4(1), v4(2)]),
        dict.fromkeys([v6(1), v4(1), v6(2), v4(2)], HANG),
        timeout=0.6,
        starts=[(0.0, v6(1)), (0.25, v4(1)), (0.5, v6(2))],
        result=("TimedOutError", None, 0.6),
        outcomes=[T, T, T],
    ),
    Scenario(
        "no attempt delay: one attempt at a time",
        both([v6(1)], [v4(1)]),
        {v6(1): refused(0.7), v4(1): connects(0.1)},
        options={"attempt_delay": None},
        starts=[(0.0, v6(1)), (0.7, v4(1))],
        result=("connected", v4(1), 0.8),
        outcomes=[R, A],
    ),
    Scenario(
        "no attempt delay and a hanging first address: the timeout",
        both([v6(1)], [v4(1)]),
        {v6(1): HANG, v4(1): connects(0.1)},
        options={"attempt_delay": None},
        timeout=1,
        starts=[(0.0, v6(1))],
        result=("TimedOutError", None, 1.0),
        outcomes=[T],
    ),
    Scenario(
        "every address failing is host unreachable",
        both([v6(1)], [v4(1)]),
        {v6(1): refused(0.01), v4(1): unreachable(0.02)},
        starts=[(0.0, v6(1)), (0.01, v4(1))],
        result=("HostUnreachableError", None, 0.03),
        outcomes=[R, U],
    ),
    Scenario(
        "every address refusing is refused",
        both([v6(1)], [v4(1)]),
        {v6(1): refused(0.0), v4(1): refused(0.0)},
        starts=[(0.0, v6(1)), (0.0, v4(1))],
        result=("RefusedError", None, 0.0),
        outcomes=[R, R],
    ),
    Scenario(
        "a huge attempt delay is just a long wait",
        both([v6(1)], [v4(1)]),
        {v6(1): HANG, v4(1): connects(0.0)},
        options={"attempt_delay": 1e10},
        timeout=1e12,
        starts=[(0.0, v6(1)), (1e10, v4(1))],
        result=("connected", v4(1), 1e10),
        outcomes=[AB, A],
    ),
    # -- skips and the policy ------------------------------------------------------
    Scenario(
        "addresses of the other family than the source are skipped",
        both([v6(1)], [v4(1)]),
        {v4(1): connects(0.01)},
        source_address=("127.0.0.1", 0),
        starts=[(0.0, v4(1))],
        result=("connected", v4(1), 0.01),
        outcomes=[S, A],
    ),
    Scenario(
        "all skipped is host unreachable",
        both([v6(1)], []),
        {},
        source_address=("127.0.0.1", 0),
        starts=[],
        result=("HostUnreachableError", None, 0.0),
        outcomes=[S],
    ),
    Scenario(
        "the policy denies without an attempt (and a denied address ranks last)",
        both([v6(1), v6(2)], [v4(1)]),
        {v4(1): refused(0.01)},
        options={"policy": deny_v6},
        starts=[(0.0, v4(1))],
        result=("RefusedError", None, 0.01),  # the one address tried refused
        outcomes=[R, D, D],
    ),
    Scenario(
        "every address denied is address denied",
        both([v6(1)], [v4(1)]),
        {},
        options={"policy": lambda host: "denied"},
        starts=[],
        result=("AddressDeniedError", None, 0.0),
        outcomes=[D, D],
    ),
    Scenario(
        "a policy that fails refuses",
        both([v6(1)], []),
        {},
        options={"policy": lambda host: 1 / 0},
        starts=[],
        result=("AddressDeniedError", None, 0.0),
        outcomes=[D],
    ),
    Scenario(
        "no socket for any attempt is out of resources",
        both([v6(1)], [v4(1)]),
        {},
        sockets=False,
        starts=[],
        result=("OutOfResourcesError", None, 0.0),
    ),
    # -- lookups and the resolution delay (RFC 8305 section 3) ---------------------
    Scenario(
        "waits for the lookups until the deadline, then times out",
        both([v6(1)], [v4(1)], at6=5.0, at4=5.0),
        {},
        timeout=0.3,
        starts=[],
        result=("TimedOutError", None, 0.3),
    ),
    Scenario(
        "an answer as the deadline passes still gets one try: on loopback it wins",
        both([v6(1)], [v4(1)], at6=0.3, at4=0.3),
        {v6(1): connects(0.0), v4(1): connects(0.0)},
        timeout=0.3,
        starts=[(0.3, v6(1))],
        result=("connected", v6(1), 0.3),
        outcomes=[A],
    ),
    Scenario(
        "past the deadline, addresses refused at once let the next one try",
        both([v6(1)], [v4(1)], at6=0.3, at4=0.3),
        {v6(1): refused(0.0), v4(1): connects(0.0)},
        timeout=0.3,
        starts=[(0.3, v6(1)), (0.3, v4(1))],
        result=("connected", v4(1), 0.3),
        outcomes=[R, A],
    ),
    Scenario(
        "an answer as the deadline passes still gets one try, never waited for",
        both([v6(1)], [v4(1)], at6=0.3, at4=0.3),
        {v6(1): HANG, v4(1): connects(0.0)},
        timeout=0.3,
        starts=[(0.3, v6(1))],
        result=("TimedOutError", None, 0.3),
        outcomes=[T],
    ),
    Scenario(
        "an IPv6 answer starts the race at once",
        both([v6(1)], [v4(1)], at6=0.02, at4=0.5),
        {v6(1): connects(0.01)},
        timeout=5,
        starts=[(0.02, v6(1))],
        result=("connected", v6(1), 0.03),
    ),
    Scenario(
        "an early IPv4 answer waits the resolution delay for IPv6",
        both([v6(1)], [v4(1)], at6=0.03, at4=0.01),
        {v6(1): HANG, v4(1): connects(0.01)},
        timeout=5,
        starts=[(0.03, v6(1)), (0.28, v4(1))],
        result=("connected", v4(1), 0.29),
        outcomes=[AB, A],
    ),
    Scenario(
        "a late IPv6 answer costs no more than the resolution delay, then joins",
        both([v6(1)], [v4(1), v4(2)], at6=0.2, at4=0.01),
        {v4(1): HANG, v6(1): connects(0.01), v4(2): HANG},
        timeout=5,
        starts=[(0.06, v4(1)), (0.31, v6(1))],
        result=("connected", v6(1), 0.32),
        outcomes=[AB, A],
    ),
    Scenario(
        "a failed IPv6 lookup ends the resolution delay",
        {V6: (0.02, socket.EAI_NODATA), V4: (0.01, [v4(1)])},
        {v4(1): connects(0.01)},
        timeout=5,
        starts=[(0.02, v4(1))],
        result=("connected", v4(1), 0.03),
    ),
    Scenario(
        "both lookups failing reports the resolver's error",
        {V6: (0.01, socket.EAI_NONAME), V4: (0.02, socket.EAI_AGAIN)},
        {},
        timeout=5,
        starts=[],
        result=("NameResolutionError", None, 0.02),
    ),
    Scenario(
        "a literal needs no lookup",
        {},
        {v4(7): connects(0.01)},
        nodename="192.0.2.7",
        starts=[(0.0, v4(7))],
        result=("connected", v4(7), 0.01),
    ),
    Scenario(
        "one family asked for: one lookup",
        {V4: (0.01, [v4(1)])},
        {v4(1): connects(0.01)},
        options={"family": socket.AF_INET},
        timeout=5,
        starts=[(0.01, v4(1))],
        result=("connected", v4(1), 0.02),
    ),
    # -- history (RFC 8305 section 4) ----------------------------------------------
    Scenario(
        "the history moves the winner first and recent losers last",
        both([v6(1), v6(2)], [v4(2), v4(1)], at6=0.02, at4=0.01),
        dict.fromkeys([v4(1), v6(2), v4(2), v6(1)], refused(0.01)),
        history=(v4(1), [v6(1)]),
        timeout=5,
        # The remembered winner's family answered first: no resolution delay.
        starts=[(0.01, v4(1)), (0.02, v6(2)), (0.03, v4(2)), (0.04, v6(1))],
        result=("RefusedError", None, 0.05),
        outcomes=[R, R, R, R],
    ),
    Scenario(
        "a remembered IPv4 winner waits for its family, not for IPv6",
        both([v6(1)], [v4(1)], at6=0.01, at4=0.02),
        {v4(1): connects(0.0), v6(1): HANG},
        history=(v4(1), []),
        timeout=5,
        starts=[(0.02, v4(1))],
        result=("connected", v4(1), 0.02),
    ),
]


@pytest.fixture(params=SCENARIOS, ids=[s.name for s in SCENARIOS])
def scenario(request: pytest.FixtureRequest) -> Scenario:
    return request.param  # type: ignore[no-any-return]


def test_planner(scenario: Scenario) -> None:
    run_planner(scenario).check(scenario)


def test_sync_driver(scenario: Scenario) -> None:
    run_sync(scenario).check(scenario)


@pytest.mark.anyio
async def test_async_driver(scenario: Scenario) -> None:
    (await run_async(scenario)).check(scenario)


class Recorder(EventListener):
    """Every event, as (method, its fields but the records' durations)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def __getattribute__(self, name: str) -> object:
        if name.endswith(("_started", "_finished")):
            return lambda event: self.events.append((name, event))
        return super().__getattribute__(name)


def check_events(scenario: Scenario, recorder: Recorder) -> None:
    events = recorder.events
    names = [name for name, _ in events]
    assert names[0] == "connect_started"
    assert names[-1] == "connect_finished"
    started = {e.attempt: i for i, (n, e) in enumerate(events) if n == "attempt_started"}  # type: ignore[attr-defined]
    finished = {e.attempt: i for i, (n, e) in enumerate(events) if n == "attempt_finished"}  # type: ignore[attr-defined]
    if scenario.sockets:  # else each attempt starts and ends at once, without a connect
        assert [
            (round(events[i][1].elapsed, 9), events[i][1].address)  # type: ignore[attr-defined]
            for i in started.values()
        ] == [(round(t, 9), c.address) for t, c in scenario.starts]
    # Every attempt record ends exactly once, after it started (skipped and denied ones
    # end without starting).
    assert (
        names.count("attempt_finished")
        == len(finished)
        == (len(scenario.outcomes) or len(finished))
    )
    assert all(started[n] < finished[n] for n in started)
    assert names.count("lookup_started") == len(scenario.answers)
    assert names.count("lookup_finished") <= len(scenario.answers)


def test_sync_and_async_tell_the_same_events_in_the_same_order(scenario: Scenario) -> None:
    import anyio

    sync, asynchronous = Recorder(), Recorder()
    run_sync(scenario, sync)
    check_events(scenario, sync)
    anyio.run(run_async, scenario, asynchronous)
    assert [(n, _comparable(e)) for n, e in sync.events] == [
        (n, _comparable(e)) for n, e in asynchronous.events
    ]


def _comparable(event: object) -> object:
    # As text: errors compare by identity, and two runs make two of each.
    return repr(event)


class Partial(EventListener):
    """A listener of the attempts and the call's end only: the engine makes no other
    event for it."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def attempt_started(self, event: AttemptStarted) -> None:
        self.events.append(("attempt_started", event))

    def attempt_finished(self, event: AttemptFinished) -> None:
        self.events.append(("attempt_finished", event))

    def connect_finished(self, event: ConnectFinished) -> None:
        self.events.append(("connect_finished", event))


def test_a_listener_of_some_events_is_told_them_as_a_listener_of_all(
    scenario: Scenario,
) -> None:
    full, partial = Recorder(), Partial()
    run_sync(scenario, full)
    run_sync(scenario, partial)
    kept = ("attempt_started", "attempt_finished", "connect_finished")
    assert [(n, _comparable(e)) for n, e in partial.events] == [
        (n, _comparable(e)) for n, e in full.events if n in kept
    ]
