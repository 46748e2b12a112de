"""The planner's interface and its error details. Its timing rules are in the scenario
table (tests/test_scenarios.py), which the drivers play too."""

from __future__ import annotations

import errno
import socket
import ssl
from collections.abc import Callable

import pytest

from connectbyname import (
    CertificateError,
    HostUnreachableError,
    Outcome,
    TimedOutError,
    TLSError,
)
from connectbyname._parse import check_call, check_options, parse_target
from connectbyname._plan import Connected, Failed, Planner, Start

from .scenarios import V4, V6, v4, v6


def planner(
    timeout: float | None = None,
    lookups: tuple[socket.AddressFamily, ...] = (socket.AF_UNSPEC,),
) -> Planner:
    return Planner(
        10.0,
        parse_target("example.test", 80),
        check_options(history=False),
        check_call(timeout),
        lookups=lookups,
    )


def test_the_planner_refuses_to_go_on_after_the_end() -> None:
    plan = planner(1)
    plan.lookup_done(10.0, [v4(1)])
    start = plan.next_action(10.0)
    assert isinstance(start, Start)
    plan.attempt_connected(10.1, start.attempt)
    assert isinstance(plan.next_action(10.1), Connected)
    with pytest.raises(RuntimeError):
        plan.next_action(10.2)


def test_a_late_connect_after_the_win_is_abandoned() -> None:
    plan = planner()
    plan.lookup_done(10.0, [v6(1), v4(1)])
    first = plan.next_action(10.0)
    second = plan.next_action(10.25)
    assert isinstance(first, Start)
    assert isinstance(second, Start)
    plan.attempt_connected(10.3, second.attempt)
    plan.attempt_connected(10.3, first.attempt)
    result = plan.next_action(10.3)
    assert isinstance(result, Connected)
    assert result.attempt == second.attempt
    assert result.candidate == v4(1)
    assert result.attempts[first.attempt].outcome is Outcome.ABANDONED


def test_one_combined_answer_keeps_its_order_starting_with_its_first_family() -> None:
    # A hosts-file name is looked up once for both families: its order decides.
    plan = planner()
    plan.lookup_done(10.0, [v4(1), v4(2), v6(1)])
    starts = []
    for _ in range(3):
        action = plan.next_action(10.0)
        assert isinstance(action, Start)
        starts.append(action.candidate)
        plan.attempt_failed(10.0, action.attempt, OSError(errno.ECONNREFUSED, "refused"))
    assert starts == [v4(1), v6(1), v4(2)]


def test_a_failed_call_says_what_happened_to_every_address() -> None:
    plan = planner(5, lookups=(V6, V4))
    plan.lookup_done(10.0, [v6(1)], V6)
    plan.lookup_done(10.0, [v4(1)], V4)
    first = plan.next_action(10.0)
    assert isinstance(first, Start)
    plan.attempt_failed(10.01, first.attempt, OSError(errno.ECONNREFUSED, "refused"))
    second = plan.next_action(10.01)
    assert isinstance(second, Start)
    plan.attempt_failed(10.03, second.attempt, OSError(errno.ENETUNREACH, "unreachable"))
    result = plan.next_action(10.03)
    assert isinstance(result, Failed)
    error = result.error
    assert type(error) is HostUnreachableError
    assert error.errno == errno.EHOSTUNREACH
    assert "cannot connect to example.test port 80: every address failed:" in str(error)
    assert "[2001:db8::1]:80 refused after 0.010s" in str(error)
    assert "192.0.2.1:80 unreachable after 0.020s" in str(error)
    assert isinstance(error.__cause__, ExceptionGroup)
    # A nested group, which has no errno, would show as itself in the comparison.
    errnos = [e.errno if isinstance(e, OSError) else e for e in error.__cause__.exceptions]
    assert errnos == [errno.ECONNREFUSED, errno.ENETUNREACH]


def test_a_timeout_resolving_says_so() -> None:
    plan = planner(0.3)
    wait = plan.next_action(10.0)
    assert wait.until == pytest.approx(10.3)  # type: ignore[union-attr]
    result = plan.next_action(10.3)
    assert isinstance(result, Failed)
    assert isinstance(result.error, TimedOutError)
    assert str(result.error).endswith("timed out after 0.3s resolving the name")
    assert result.error.attempts == ()
    assert plan.deadline == pytest.approx(10.3)


def test_no_deadline_without_a_timeout() -> None:
    plan = planner(None)
    assert plan.deadline is None
    assert plan.next_action(10.0).until is None  # type: ignore[union-attr]


# --------------------------------------------------------------------------- TLS


def _two_in_tls() -> tuple[Planner, int, int]:
    plan = planner(5)
    plan.lookup_done(10.0, [v6(1), v4(1)])
    first = plan.next_action(10.0)
    second = plan.next_action(10.25)
    assert isinstance(first, Start)
    assert isinstance(second, Start)
    plan.attempt_tcp(10.01, first.attempt)
    plan.attempt_tcp(10.26, second.attempt)
    return plan, first.attempt, second.attempt


@pytest.mark.parametrize("verdict_first", [True, False])
def test_a_verification_failure_outranks_a_handshake_completed_in_the_same_wait(
    verdict_first: bool,
) -> None:
    plan, bad, good = _two_in_tls()
    failure = CertificateError("forged", nodename="example.test", servicename=80)
    failure.__cause__ = ssl.SSLCertVerificationError(1, "certificate verify failed")
    steps: list[Callable[[], None]] = [
        lambda: plan.call_failed(10.3, bad, failure),
        lambda: plan.attempt_connected(10.3, good),
    ]
    for step in steps if verdict_first else reversed(steps):
        step()
    result = plan.next_action(10.3)
    assert isinstance(result, Failed)
    assert result.error is failure
    outcomes = [a.outcome for a in result.error.attempts]
    assert outcomes == [Outcome.FAILED, Outcome.ABANDONED]


def test_a_reset_in_tls_is_a_tls_failure_not_a_refusal() -> None:
    plan, first, second = _two_in_tls()
    reset = OSError(errno.ECONNRESET, "reset")
    plan.attempt_failed(10.3, first, reset)
    plan.attempt_failed(10.3, second, reset)
    result = plan.next_action(10.3)
    assert isinstance(result, Failed)
    assert type(result.error) is TLSError
    assert [a.outcome for a in result.error.attempts] == [Outcome.FAILED, Outcome.FAILED]
    assert all(a.tcp is not None for a in result.error.attempts)


def services_planner() -> Planner:
    return Planner(
        10.0,
        parse_target("example.test", 443),
        check_options(history=False),
        check_call(5.0),
        lookups=(V6, V4),
        services=True,
    )


def test_a_service_targets_lookups_are_waited_for_and_come_first() -> None:
    from connectbyname._dns._wire import Service
    from connectbyname._errors import NameResolutionError
    from connectbyname._plan import Endpoints, Wait

    plan = services_planner()
    nodata = NameResolutionError("no address", errno=socket.EAI_NODATA)
    plan.lookup_failed(10.0, nodata, V6)
    plan.lookup_done(10.0, [v4(1)], V4)  # the name's own: the fallback
    service = Service(1, "cdn.test.", port=8443)
    plan.services_done(10.01, [Endpoints("cdn.test", service, [])], [("cdn.test", V4)])
    # The target's address is on its way: the name's own is held back for it.
    assert isinstance(plan.next_action(10.02), Wait)
    target = v4(2)._replace(address=("192.0.2.2", 8443))
    plan.lookup_done(10.03, [target], V4, target="cdn.test")
    start = plan.next_action(10.03)
    assert isinstance(start, Start)
    assert start.candidate == target
    assert start.service == service


def test_a_call_with_only_a_service_target_left_waits_for_it() -> None:
    from connectbyname._dns._wire import Service
    from connectbyname._errors import NameResolutionError
    from connectbyname._plan import Endpoints, Wait

    plan = services_planner()
    nodata = NameResolutionError("no address", errno=socket.EAI_NODATA)
    plan.lookup_failed(10.0, nodata, V6)
    plan.lookup_failed(10.0, nodata, V4)
    endpoints = [Endpoints("cdn.test", Service(1, "cdn.test."), [])]
    plan.services_done(10.01, endpoints, [("cdn.test", V6), ("cdn.test", V4)])
    assert isinstance(plan.next_action(10.5), Wait)  # not the name's NODATA
    plan.lookup_done(10.6, [], V6, target="cdn.test")
    plan.lookup_failed(10.6, nodata, V4, target="cdn.test")
    failed = plan.next_action(10.6)
    assert isinstance(failed, Failed)
    assert failed.error is nodata
