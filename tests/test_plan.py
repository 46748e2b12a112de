"""The race planner, driven by a fake clock: exact start times for every rule."""

from __future__ import annotations

import errno
import math
import socket

import pytest

from connectbyname import (
    AddressDeniedError,
    HostUnreachableError,
    NameResolutionError,
    Outcome,
    OutOfResourcesError,
    TimedOutError,
)
from connectbyname._plan import Connected, Failed, Planner, Start, Wait
from connectbyname._policy import Policy
from connectbyname._resolve import Candidate

V6 = socket.AF_INET6
V4 = socket.AF_INET
HANG = None  # the attempt never finishes on its own


def v6(n: int) -> Candidate:
    return (V6, (f"2001:db8::{n}", 80, 0, 0))


def v4(n: int) -> Candidate:
    return (V4, (f"192.0.2.{n}", 80))


def refused() -> OSError:
    return OSError(errno.ECONNREFUSED, "Connection refused")


Script = dict[Candidate, tuple[float | None, OSError | None]]


def race(
    candidates: list[Candidate],
    script: Script,
    *,
    timeout: float | None = None,
    delay: float | None = 0.25,
    source_family: socket.AddressFamily | None = None,
    policy: Policy | None = None,
) -> tuple[Connected | Failed, list[tuple[Candidate, float]]]:
    """Run a planner against a scripted network: each candidate connects (error None)
    or fails after its duration. Returns the final action and when each attempt began."""
    clock = 0.0
    planner = Planner(
        now=clock,
        timeout=timeout,
        attempt_delay=delay,
        nodename="example.test",
        servicename="http",
        port=80,
        source_family=source_family,
        policy=policy,
    )
    planner.lookup_done(clock, candidates)
    finishing: dict[int, tuple[float, OSError | None]] = {}
    starts: list[tuple[Candidate, float]] = []
    while True:
        action = planner.next_action(clock)
        if isinstance(action, Start):
            starts.append((action.candidate, clock))
            duration, error = script[action.candidate]
            if duration is not None:
                finishing[action.attempt] = (clock + duration, error)
        elif isinstance(action, Wait):
            next_event = min((at for at, _ in finishing.values()), default=math.inf)
            until = math.inf if action.until is None else action.until
            assert min(next_event, until) < math.inf, "the planner waits forever"
            clock = min(next_event, until)
            for attempt, (at, error) in sorted(finishing.items()):
                if at <= clock:
                    del finishing[attempt]
                    if error is None:
                        planner.attempt_connected(clock, attempt)
                    else:
                        planner.attempt_failed(clock, attempt, error)
        else:
            return action, starts


def test_next_address_starts_after_the_attempt_delay() -> None:
    result, starts = race([v6(1), v4(1)], {v6(1): (HANG, None), v4(1): (0.01, None)})
    assert starts == [(v6(1), 0.0), (v4(1), 0.25)]
    assert isinstance(result, Connected)
    assert result.elapsed == pytest.approx(0.26)
    assert [a.outcome for a in result.attempts] == [Outcome.ABANDONED, Outcome.CONNECTED]
    assert result.attempts[1].start == 0.25
    assert result.attempts[0].duration == pytest.approx(0.26)


def test_a_failure_starts_the_next_attempt_at_once() -> None:
    result, starts = race([v6(1), v4(1)], {v6(1): (0.05, refused()), v4(1): (0.01, None)})
    assert starts == [(v6(1), 0.0), (v4(1), 0.05)]
    assert isinstance(result, Connected)
    assert [a.outcome for a in result.attempts] == [Outcome.REFUSED, Outcome.CONNECTED]


def test_failure_of_an_older_attempt_starts_the_next_early() -> None:
    script: Script = {v6(1): (0.3, refused()), v4(1): (HANG, None), v6(2): (0.01, None)}
    result, starts = race([v6(1), v6(2), v4(1)], script)
    assert starts == [(v6(1), 0.0), (v4(1), 0.25), (v6(2), 0.3)]
    assert isinstance(result, Connected)


def test_families_are_interleaved_starting_with_the_first_answer() -> None:
    candidates = [v6(1), v6(2), v6(3), v4(1), v4(2)]
    result, starts = race(candidates, dict.fromkeys(candidates, (HANG, None)), timeout=2)
    assert [c for c, _ in starts] == [v6(1), v4(1), v6(2), v4(2), v6(3)]
    assert [t for _, t in starts] == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])
    assert isinstance(result, Failed)


def test_ipv4_first_answers_start_with_ipv4() -> None:
    candidates = [v4(1), v4(2), v6(1)]
    _, starts = race(candidates, dict.fromkeys(candidates, (0.0, refused())))
    assert [c for c, _ in starts] == [v4(1), v6(1), v4(2)]
    assert [t for _, t in starts] == [0.0, 0.0, 0.0]


def test_every_address_failing_is_host_unreachable() -> None:
    script: Script = {v6(1): (0.01, refused()), v4(1): (0.02, OSError(errno.ENETUNREACH, "x"))}
    result, _ = race([v6(1), v4(1)], script)
    assert isinstance(result, Failed)
    error = result.error
    assert isinstance(error, HostUnreachableError)
    assert error.errno == errno.EHOSTUNREACH
    assert [a.outcome for a in error.attempts] == [Outcome.REFUSED, Outcome.UNREACHABLE]
    assert "[2001:db8::1]:80 refused" in str(error)
    assert "192.0.2.1:80 unreachable" in str(error)
    assert "example.test port 80" in str(error)
    assert isinstance(error.__cause__, ExceptionGroup)
    assert [e.errno for e in error.__cause__.exceptions] == [errno.ECONNREFUSED, errno.ENETUNREACH]


def test_two_connecting_together_the_first_reported_wins() -> None:
    script: Script = {v6(1): (0.3, None), v4(1): (0.05, None)}
    result, _ = race([v6(1), v4(1)], script)
    # v4 started at 0.25 and finishes at 0.3, together with v6.
    assert isinstance(result, Connected)
    assert result.attempt == 0
    assert [a.outcome for a in result.attempts] == [Outcome.CONNECTED, Outcome.ABANDONED]


def test_deadline_mid_race_times_out_the_running_attempts() -> None:
    candidates = [v6(1), v4(1), v6(2), v4(2)]
    result, starts = race(candidates, dict.fromkeys(candidates, (HANG, None)), timeout=0.6)
    assert [t for _, t in starts] == [0.0, 0.25, 0.5]
    assert isinstance(result, Failed)
    assert isinstance(result.error, TimedOutError)
    assert isinstance(result.error, TimeoutError)
    assert result.error.errno == errno.ETIMEDOUT
    assert [a.outcome for a in result.error.attempts] == [Outcome.TIMED_OUT] * 3
    assert [a.duration for a in result.error.attempts] == pytest.approx([0.6, 0.35, 0.1])


def test_no_attempt_delay_means_one_attempt_at_a_time() -> None:
    script: Script = {v6(1): (0.7, refused()), v4(1): (0.1, None)}
    result, starts = race([v6(1), v4(1)], script, delay=None)
    assert starts == [(v6(1), 0.0), (v4(1), 0.7)]
    assert isinstance(result, Connected)


def test_no_attempt_delay_with_a_hanging_first_address_times_out() -> None:
    script: Script = {v6(1): (HANG, None), v4(1): (0.1, None)}
    result, starts = race([v6(1), v4(1)], script, delay=None, timeout=1)
    assert starts == [(v6(1), 0.0)]
    assert isinstance(result, Failed)
    assert isinstance(result.error, TimedOutError)


def test_addresses_of_the_other_family_than_the_source_are_skipped() -> None:
    result, starts = race([v6(1), v4(1)], {v4(1): (0.01, None)}, source_family=socket.AF_INET)
    assert starts == [(v4(1), 0.0)]
    assert isinstance(result, Connected)
    skipped = result.attempts[0]
    assert skipped.outcome is Outcome.SKIPPED
    assert skipped.reason is not None
    assert "source address" in skipped.reason


def test_all_skipped_is_host_unreachable_and_says_why() -> None:
    result, starts = race([v6(1)], {}, source_family=socket.AF_INET)
    assert starts == []
    assert isinstance(result, Failed)
    assert isinstance(result.error, HostUnreachableError)
    assert "skipped (the source address is of the other family)" in str(result.error)


def test_no_socket_for_any_attempt_is_out_of_resources() -> None:
    no_fd = OSError(errno.EMFILE, "Too many open files")
    result, _ = race([v6(1), v4(1)], {v6(1): (0.0, no_fd), v4(1): (0.0, no_fd)})
    assert isinstance(result, Failed)
    assert isinstance(result.error, OutOfResourcesError)
    assert result.error.errno == errno.EMFILE


def _planner(timeout: float | None) -> Planner:
    return Planner(
        now=10.0,
        timeout=timeout,
        attempt_delay=0.25,
        nodename="example.test",
        servicename=80,
        port=80,
    )


def test_waits_for_the_lookup_until_the_deadline_then_times_out() -> None:
    planner = _planner(0.3)
    assert planner.next_action(10.0) == Wait(pytest.approx(10.3))  # type: ignore[arg-type]
    result = planner.next_action(10.3)
    assert isinstance(result, Failed)
    assert isinstance(result.error, TimedOutError)
    assert "resolving the name" in str(result.error)
    assert result.error.attempts == ()


def test_without_timeout_a_pending_lookup_waits_without_limit() -> None:
    assert _planner(None).next_action(10.0) == Wait(None)


def test_a_failed_lookup_is_reported_as_is() -> None:
    planner = _planner(1)
    error = NameResolutionError("no such name", errno=socket.EAI_NONAME)
    planner.lookup_failed(10.1, error)
    result = planner.next_action(10.1)
    assert isinstance(result, Failed)
    assert result.error is error


def test_the_planner_refuses_to_go_on_after_the_end() -> None:
    planner = _planner(1)
    planner.lookup_done(10.0, [v4(1)])
    start = planner.next_action(10.0)
    assert isinstance(start, Start)
    planner.attempt_connected(10.1, start.attempt)
    assert isinstance(planner.next_action(10.1), Connected)
    with pytest.raises(RuntimeError):
        planner.next_action(10.2)


def test_a_late_connect_after_the_win_is_abandoned() -> None:
    planner = _planner(None)
    planner.lookup_done(10.0, [v6(1), v4(1)])
    first = planner.next_action(10.0)
    second = planner.next_action(10.25)
    assert isinstance(first, Start)
    assert isinstance(second, Start)
    planner.attempt_connected(10.3, second.attempt)
    planner.attempt_connected(10.3, first.attempt)
    result = planner.next_action(10.3)
    assert isinstance(result, Connected)
    assert result.attempt == second.attempt
    assert result.attempts[first.attempt].outcome is Outcome.ABANDONED


def test_timeout_zero_fails_before_any_attempt() -> None:
    result, starts = race([v4(1)], {v4(1): (0.0, None)}, timeout=0)
    assert starts == []
    assert isinstance(result, Failed)
    assert isinstance(result.error, TimedOutError)


# -- separate lookups, the resolution delay and the history (RFC 8305 sections 3, 4) ----


def _separate(**kwargs: object) -> Planner:
    return Planner(
        now=0.0,
        timeout=5,
        attempt_delay=0.25,
        nodename="example.test",
        servicename=80,
        port=80,
        lookups=(V6, V4),
        **kwargs,  # type: ignore[arg-type]
    )


def test_an_ipv6_answer_starts_the_race_at_once() -> None:
    planner = _separate()
    assert planner.next_action(0.0) == Wait(5.0)
    planner.lookup_done(0.02, [v6(1)], V6)
    assert planner.next_action(0.02) == Start(0, v6(1))


def test_an_early_ipv4_answer_waits_the_resolution_delay_for_ipv6() -> None:
    planner = _separate()
    planner.lookup_done(0.01, [v4(1)], V4)
    assert planner.next_action(0.01) == Wait(pytest.approx(0.06))  # type: ignore[arg-type]
    planner.lookup_done(0.03, [v6(1)], V6)
    assert planner.next_action(0.03) == Start(0, v6(1))
    assert planner.next_action(0.03) == Wait(pytest.approx(0.28))  # type: ignore[arg-type]
    assert planner.next_action(0.28) == Start(1, v4(1))


def test_a_late_ipv6_answer_costs_no_more_than_the_resolution_delay() -> None:
    planner = _separate()
    planner.lookup_done(0.01, [v4(1), v4(2)], V4)
    wait = planner.next_action(0.01)
    assert isinstance(wait, Wait)
    assert wait.until == pytest.approx(0.06)
    assert planner.next_action(wait.until) == Start(0, v4(1))
    # IPv6 answers while the race runs and joins it as the next family (section 6).
    planner.lookup_done(0.2, [v6(1)], V6)
    wait = planner.next_action(0.2)
    assert isinstance(wait, Wait)
    assert wait.until == pytest.approx(0.31)
    assert planner.next_action(wait.until) == Start(1, v6(1))


def test_a_failed_ipv6_lookup_ends_the_resolution_delay() -> None:
    planner = _separate()
    planner.lookup_done(0.01, [v4(1)], V4)
    planner.lookup_failed(0.02, NameResolutionError("no AAAA", errno=socket.EAI_NODATA), V6)
    assert planner.next_action(0.02) == Start(0, v4(1))


def test_both_lookups_failing_reports_the_resolvers_error() -> None:
    planner = _separate()
    error = NameResolutionError("no such name", errno=socket.EAI_NONAME)
    planner.lookup_failed(0.01, error, V6)
    planner.lookup_failed(0.02, NameResolutionError("again"), V4)
    result = planner.next_action(0.02)
    assert isinstance(result, Failed)
    assert result.error is error


def test_history_moves_the_winner_first_and_losers_last() -> None:
    planner = _separate(preferred=v4(1)[1], demoted=frozenset({v6(1)[1]}))
    planner.lookup_done(0.01, [v4(2), v4(1)], V4)
    # The remembered winner's family answered: no resolution delay.
    first = planner.next_action(0.01)
    assert first == Start(0, v4(1))
    planner.lookup_done(0.02, [v6(1), v6(2)], V6)
    planner.attempt_failed(0.03, 0, refused())
    assert planner.next_action(0.03) == Start(1, v6(2))
    planner.attempt_failed(0.04, 1, refused())
    assert planner.next_action(0.04) == Start(2, v4(2))
    planner.attempt_failed(0.05, 2, refused())
    assert planner.next_action(0.05) == Start(3, v6(1))
    planner.attempt_failed(0.06, 3, refused())
    result = planner.next_action(0.06)
    assert isinstance(result, Failed)
    notes = [a.history for a in result.error.attempts]
    assert notes == [
        "moved first: it connected last time",
        None,
        None,
        "moved last: it lost a race recently",
    ]


def test_a_remembered_ipv4_winner_waits_for_its_family_not_for_ipv6() -> None:
    planner = _separate(preferred=v4(1)[1])
    planner.lookup_done(0.01, [v6(1)], V6)
    assert planner.next_action(0.01) == Wait(pytest.approx(0.06))  # type: ignore[arg-type]
    planner.lookup_done(0.02, [v4(1)], V4)
    assert planner.next_action(0.02) == Start(0, v4(1))


def test_the_policy_denies_without_an_attempt() -> None:
    def deny_v6(host: str) -> str | None:
        return "no IPv6 here" if ":" in host else None

    result, starts = race([v6(1), v4(1)], {v4(1): (0.01, None)}, policy=deny_v6)
    assert starts == [(v4(1), 0.0)]
    assert isinstance(result, Connected)
    assert result.attempts[0].outcome is Outcome.DENIED
    assert result.attempts[0].reason == "no IPv6 here"


def test_every_address_denied_is_address_denied() -> None:
    result, starts = race([v6(1), v4(1)], {}, policy=lambda host: "denied")
    assert starts == []
    assert isinstance(result, Failed)
    assert isinstance(result.error, AddressDeniedError)
    assert isinstance(result.error, PermissionError)
    assert result.error.errno == errno.EACCES
