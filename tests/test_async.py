"""The anyio driver, `aconnect_by_name`, on asyncio and trio, against real loopback sockets.

The racing rules are the planner's (tested in test_plan.py); here they are checked end
to end, with trio's MockClock where exact offsets matter: a mock clock only moves when
every task waits, so an attempt that starts "0.25 s later" starts at exactly 0.25.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

import anyio
import pytest
import trio
import trio.testing

import connectbyname
from connectbyname import (
    AsyncConnection,
    ConnectionHistory,
    HostUnreachableError,
    InvalidParameterError,
    NameResolutionError,
    Outcome,
    TimedOutError,
    aconnect_by_name,
)
from connectbyname.testing import (
    DualStack,
    StaticResolver,
    blackholed_everywhere,
    open_fds,
    refused_port,
)

pytestmark = pytest.mark.anyio

NAME = "example.test"


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def resolver_for(scenario: DualStack, **options: Any) -> StaticResolver:
    return StaticResolver({NAME: scenario.addresses}, **options)


async def exchange(conn: AsyncConnection) -> bytes:
    await conn.stream.send(b"GET / HTTP/1.0\r\nHost: example.test\r\n\r\n")
    return await conn.stream.receive()


def resolver_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "connectbyname-resolver"}


# --------------------------------------------------------------------------- real clock


async def test_blackholed_v6_falls_back_to_v4(
    assert_no_fd_leak: None, blackholed_v6: DualStack
) -> None:
    resolver = resolver_for(blackholed_v6)
    async with await aconnect_by_name(
        NAME, blackholed_v6.port, timeout=5, resolver=resolver, history=False
    ) as conn:
        assert (await exchange(conn)).startswith(b"HTTP/1.1 200")
        assert conn.remote_address == ("127.0.0.1", blackholed_v6.port)
        assert conn.local_address[0] == "127.0.0.1"
        assert conn.family == socket.AF_INET
        assert conn.stream.extra(anyio.abc.SocketAttribute.raw_socket).getsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY
        )
    v6, v4 = conn.attempts
    assert (v6.address[0], v6.outcome) == ("::1", Outcome.ABANDONED)
    assert (v4.address[0], v4.outcome) == ("127.0.0.1", Outcome.CONNECTED)
    assert 0.2 <= v4.start < 1.0
    assert conn.elapsed < 1.0


async def test_refused_v6_starts_the_next_attempt_at_once(
    assert_no_fd_leak: None, refused_v6: DualStack
) -> None:
    resolver = resolver_for(refused_v6)
    async with await aconnect_by_name(
        NAME, refused_v6.port, timeout=5, attempt_delay=2, resolver=resolver, history=False
    ) as conn:
        assert (await exchange(conn)).startswith(b"HTTP/1.1 200")
    v6, v4 = conn.attempts
    assert v6.outcome is Outcome.REFUSED
    assert v4.outcome is Outcome.CONNECTED
    assert v4.start < 1.0  # not after the attempt delay (2 s): the margin is for a loaded machine


async def test_literal_never_reaches_the_resolver(
    assert_no_fd_leak: None, blackholed_v6: DualStack
) -> None:
    def resolver(*args: object) -> list[Any]:
        raise AssertionError("a literal must not be resolved")

    conn = await aconnect_by_name("127.0.0.1", str(blackholed_v6.port), resolver=resolver)
    async with conn:
        assert conn.remote_address == ("127.0.0.1", blackholed_v6.port)
        assert [a.outcome for a in conn.attempts] == [Outcome.CONNECTED]


async def test_a_lookup_the_hosts_file_answers_runs_in_the_event_loop(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectbyname import _resolve

    hosts, nsswitch = tmp_path / "hosts", tmp_path / "nsswitch.conf"
    hosts.write_text("127.0.0.1 pinned.test\n")
    nsswitch.write_text("hosts: files dns\n")
    monkeypatch.setattr(_resolve, "HOSTS_PATH", str(hosts))
    monkeypatch.setattr(_resolve, "NSSWITCH_PATH", str(nsswitch))
    threads: list[threading.Thread] = []

    def system(host: str, port: int, family: int = 0, *rest: object) -> list[Any]:
        # Stands in for the system resolver: nothing leaves the machine.
        threads.append(threading.current_thread())
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", system)
    monkeypatch.setattr(_resolve, "is_system_resolver", lambda resolver: resolver is system)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        for name in ("pinned.test", "elsewhere.test"):
            conn = await aconnect_by_name(name, port, timeout=2, history=False)
            await conn.aclose()
    here = threading.current_thread()
    assert threads[0] is here  # one combined lookup, in the loop's thread
    assert len(threads) == 3
    assert all(thread is not here for thread in threads[1:])  # AAAA and A, on threads


async def test_the_socket_form_of_the_race(assert_no_fd_leak: None) -> None:
    from connectbyname._async import aconnect_socket

    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with await aconnect_socket("127.0.0.1", port, timeout=2, attempt_delay=0.1) as conn:
            assert conn.remote_address == ("127.0.0.1", port)
            assert conn.socket.getblocking()
            assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        with pytest.raises(TypeError, match="attempt_dealy"):
            await aconnect_socket("127.0.0.1", port, attempt_dealy=0.1)  # type: ignore[call-arg]


async def test_all_dead_times_out_within_the_budget(assert_no_fd_leak: None) -> None:
    with blackholed_everywhere() as port:
        resolver = StaticResolver({NAME: ["::1", "127.0.0.1"]})
        started = time.monotonic()
        with pytest.raises(TimedOutError) as caught:
            await aconnect_by_name(NAME, port, timeout=0.4, resolver=resolver, history=False)
        assert 0.35 <= time.monotonic() - started < 1.0
    assert [a.outcome for a in caught.value.attempts] == [Outcome.TIMED_OUT] * 2
    assert caught.value.nodename == NAME


async def test_all_refused_is_host_unreachable(assert_no_fd_leak: None) -> None:
    with refused_port("127.0.0.1") as port:
        with pytest.raises(HostUnreachableError) as caught:
            await aconnect_by_name("127.0.0.1", port, timeout=5)
    assert [a.outcome for a in caught.value.attempts] == [Outcome.REFUSED]


async def test_resolver_failure_is_name_resolution_error() -> None:
    with pytest.raises(NameResolutionError):
        await aconnect_by_name("nowhere.test", 80, timeout=5, resolver=StaticResolver({}))


async def test_invalid_parameters_fail_before_any_io() -> None:
    with pytest.raises(InvalidParameterError):
        await aconnect_by_name("example.test", 80, attempt_delay=0)
    with pytest.raises(InvalidParameterError):
        await aconnect_by_name("", 80)


async def test_hung_resolver_times_out_and_leaves_no_thread_behind(
    assert_no_fd_leak: None,
) -> None:
    before = set(threading.enumerate())
    with StaticResolver({NAME: "127.0.0.1"}, hang=True) as resolver:
        started = time.monotonic()
        with pytest.raises(TimedOutError, match="resolving the name"):
            await aconnect_by_name(NAME, 80, timeout=0.2, resolver=resolver)
        assert time.monotonic() - started < 0.6
        # The abandoned lookups still hang, on the bounded resolver pool only.
        assert resolver.wait_for_calls(2)
        new = set(threading.enumerate()) - before
        assert new <= resolver_threads()


async def test_cancel_scope_mid_race_closes_every_socket() -> None:
    with blackholed_everywhere() as port:
        resolver = StaticResolver({NAME: ["::1", "127.0.0.1"]})
        baseline = open_fds()
        with anyio.move_on_after(0.4) as scope:
            await aconnect_by_name(NAME, port, resolver=resolver, history=False)
        assert scope.cancelled_caught
        # Both attempts were running; nothing may stay open, without any grace period.
        assert open_fds() == baseline


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_asyncio_timeout_and_task_cancel_close_every_socket() -> None:
    with blackholed_everywhere() as port:
        resolver = StaticResolver({NAME: ["::1", "127.0.0.1"]})
        baseline = open_fds()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.4):
                await aconnect_by_name(NAME, port, resolver=resolver, history=False)
        assert open_fds() == baseline

        task = asyncio.ensure_future(aconnect_by_name(NAME, port, resolver=resolver, history=False))
        await asyncio.sleep(0.4)
        assert open_fds() == baseline + 2  # both attempts in flight
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert open_fds() == baseline


# --------------------------------------------------------------------------- mock clock


def run_with_mock_clock(fn: Any) -> Any:
    """Run ``fn`` under trio with a clock that jumps whenever every task waits.

    The threshold leaves real events (loopback handshakes, resolver threads) time to
    arrive before the clock jumps; offsets stay exact, as the clock never drifts.
    """
    return trio.run(fn, clock=trio.testing.MockClock(autojump_threshold=0.05))


def test_mock_clock_second_family_starts_after_exactly_the_attempt_delay(
    assert_no_fd_leak: None, blackholed_v6: DualStack
) -> None:
    resolver = resolver_for(blackholed_v6)

    async def main() -> tuple[AsyncConnection, float]:
        started = trio.current_time()
        conn = await aconnect_by_name(
            NAME, blackholed_v6.port, timeout=30, resolver=resolver, history=False
        )
        await conn.aclose()
        return conn, trio.current_time() - started

    conn, took = run_with_mock_clock(main)
    assert [a.start for a in conn.attempts] == pytest.approx([0.0, 0.25], abs=1e-9)
    assert conn.elapsed == pytest.approx(0.25, abs=1e-9)
    assert took == pytest.approx(0.25, abs=1e-9)


def test_mock_clock_deadline_and_pace_are_exact(assert_no_fd_leak: None) -> None:
    with blackholed_everywhere() as port:
        resolver = StaticResolver({NAME: ["::1", "127.0.0.1"]})

        async def main() -> TimedOutError:
            with pytest.raises(TimedOutError) as caught:
                await aconnect_by_name(
                    NAME, port, timeout=2, attempt_delay=0.5, resolver=resolver, history=False
                )
            assert trio.current_time() == pytest.approx(2.0, abs=1e-9)
            return caught.value

        error = run_with_mock_clock(main)
    assert [a.outcome for a in error.attempts] == [Outcome.TIMED_OUT] * 2
    assert [a.start for a in error.attempts] == pytest.approx([0.0, 0.5], abs=1e-9)
    assert [a.duration for a in error.attempts] == pytest.approx([2.0, 1.5], abs=1e-9)


def test_mock_clock_one_at_a_time_without_attempt_delay(
    assert_no_fd_leak: None, blackholed_v6: DualStack
) -> None:
    resolver = resolver_for(blackholed_v6)

    async def main() -> TimedOutError:
        with pytest.raises(TimedOutError) as caught:
            await aconnect_by_name(
                NAME, blackholed_v6.port, timeout=7, attempt_delay=None, resolver=resolver
            )
        return caught.value

    error = run_with_mock_clock(main)
    # The blackholed first attempt holds the line until the deadline: v4 never starts.
    assert [(a.address[0], a.outcome) for a in error.attempts] == [("::1", Outcome.TIMED_OUT)]


def test_mock_clock_hung_resolver_times_out_exactly() -> None:
    with StaticResolver({NAME: "127.0.0.1"}, hang=True) as resolver:

        async def main() -> float:
            with pytest.raises(TimedOutError):
                await aconnect_by_name(NAME, 80, timeout=60, resolver=resolver)
            return trio.current_time()

        started = time.monotonic()
        assert run_with_mock_clock(main) == pytest.approx(60.0, abs=1e-9)
        assert time.monotonic() - started < 5  # a minute of mock time, not of real time


def test_history_works_on_trios_clock(blackholed_v6: DualStack) -> None:
    """The history is stamped with time.monotonic(), whatever the event loop's clock."""
    resolver = resolver_for(blackholed_v6)
    history = ConnectionHistory()

    async def main() -> list[AsyncConnection]:
        conns = []
        for _ in range(2):
            conn = await aconnect_by_name(
                NAME, blackholed_v6.port, timeout=30, resolver=resolver, history=history
            )
            await conn.aclose()
            conns.append(conn)
        return conns

    first, second = run_with_mock_clock(main)
    assert len(first.attempts) == 2
    # The second call remembers the winner: 127.0.0.1 first, connected at once.
    winner = second.attempts[0]
    assert (winner.address[0], winner.outcome) == ("127.0.0.1", Outcome.CONNECTED)
    assert second.elapsed == 0


def test_exported() -> None:
    assert connectbyname.aconnect_by_name is aconnect_by_name
    assert "AsyncConnection" in connectbyname.__all__
    assert "aconnect_by_name" in connectbyname.__all__
