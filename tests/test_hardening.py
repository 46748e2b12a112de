"""Hardening: the lookup pool, untrusted resolver answers, extreme numbers, socket
options, the address policy in every client, and stray DNS datagrams.

Each test guards a rule the engine once broke or might break: the commits that
brought them say which failed before their fix. Everything runs on loopback: the
resolvers answer loopback literals or garbage, and the policy tests' are never called.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import sys
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
import requests
import urllib3

from connectbyname import (
    PUBLIC_ONLY,
    AddressDeniedError,
    AddressPolicy,
    Candidate,
    ConnectByNameError,
    HostUnreachableError,
    InvalidParameterError,
    NameResolutionError,
    Outcome,
    PolicyDenial,
    TimedOutError,
    _resolve,
    aconnect_by_name,
    connect_by_name,
)
from connectbyname._async import adrive
from connectbyname._parse import check_call, check_options, parse_target
from connectbyname._plan import Failed, Planner
from connectbyname._race import Net
from connectbyname._resolve import Lookup
from connectbyname.adapters import httpx as cbn_httpx
from connectbyname.adapters import requests as cbn_requests
from connectbyname.adapters import urllib3 as cbn_urllib3
from connectbyname.testing import Blackhole, StaticResolver, refused_port

from .test_cancel_every_step import loopback_world, scenario_of, walk_every_step

BACKENDS = ["asyncio", "trio"]
# Margins for a loaded 2-core machine.
SLACK = 0.5


def answer(family: int, *sockaddr: Any) -> tuple[Any, ...]:
    """One getaddrinfo entry."""
    return (family, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", tuple(sockaddr))


def run_async(backend: str, function: Callable[[], Any]) -> Any:
    return anyio.run(function, backend=backend)


@contextlib.contextmanager
def listening(host: str = "127.0.0.1", port: int = 0) -> Iterator[socket.socket]:
    """A listening socket whose accept queue tells whether anything connected."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, port), family=family) as server:
        server.setblocking(False)
        yield server


def accepted(server: socket.socket) -> int:
    """How many connections were waiting in ``server``'s accept queue (closed here)."""
    count = 0
    with contextlib.suppress(BlockingIOError):
        while True:
            server.accept()[0].close()
            count += 1
    return count


# ------------------------------------------------------------------ the lookup pool


@pytest.fixture
def pool(monkeypatch: pytest.MonkeyPatch) -> Iterator[_resolve._Pool]:
    """A lookup pool of the test's own; at the end its idle threads are told to exit,
    and its count must come back to 0."""
    fresh = _resolve._Pool()
    monkeypatch.setattr(_resolve, "_pool", fresh)
    monkeypatch.setattr(_resolve, "IDLE_SECONDS", 2.0)
    yield fresh
    monkeypatch.setattr(_resolve, "IDLE_SECONDS", 0.01)
    with fresh._lock:
        fresh._ready.notify_all()
    deadline = time.monotonic() + 5
    while fresh.threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert fresh.threads() == 0


def settled(pool: _resolve._Pool) -> bool:
    """Wait until every thread of ``pool`` is idle; whether they got there."""
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:
        with pool._lock:
            if pool._idle == pool._threads and not pool._jobs:
                return True
        time.sleep(0.005)
    return False


class Custom(BaseException):
    """A BaseException of a resolver's own."""


def test_a_resolver_raising_base_exceptions_fails_only_its_lookups(
    pool: _resolve._Pool,
) -> None:
    raised = [asyncio.CancelledError, KeyboardInterrupt, SystemExit, Custom]
    calls = 0

    def resolver(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        nonlocal calls
        calls += 1
        if host == "good.test":
            return [answer(socket.AF_INET, "127.0.0.1", port)]
        raise raised[calls % len(raised)]("from the resolver")

    for _ in range(50):
        with pytest.raises(NameResolutionError) as caught:
            # A timeout and one family: on a lookup thread.
            connect_by_name(
                "bad.test", 80, timeout=2, family=socket.AF_INET, resolver=resolver, history=False
            )
        assert caught.value.errno == socket.EAI_FAIL
        assert isinstance(caught.value.__cause__, tuple(raised))
        # Every thread survived its resolver, and they did not pile up: the calls
        # come one after the other, so one thread serves them all.
        assert settled(pool)
        assert pool.threads() == 1
    assert calls == 50
    with listening() as server:
        port = server.getsockname()[1]
        for timeout in (1.0, None):
            started = time.monotonic()
            # Both families: two lookups on the threads, with and without a deadline.
            with connect_by_name(
                "good.test", port, timeout=timeout, resolver=resolver, history=False
            ) as conn:
                assert conn.remote_address == ("127.0.0.1", port)
            assert time.monotonic() - started < SLACK
        assert accepted(server) == 2
    assert settled(pool)
    assert pool.threads() <= 3


def test_a_lookup_abandoned_before_a_thread_took_it_is_never_run(
    pool: _resolve._Pool,
) -> None:
    calls: list[str] = []

    def resolver(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        calls.append(host)
        return [answer(socket.AF_INET, "127.0.0.1", port)]

    lookup = _resolve.start_lookup(resolver, "warm.test", 80, socket.AF_INET)
    assert lookup.wait(2)
    interval = sys.getswitchinterval()
    for i in range(20):
        assert settled(pool)  # an idle thread waits for the next job
        # No switch to the woken thread before the job is abandoned: it finds it so.
        sys.setswitchinterval(1.0)
        try:
            lookup = _resolve.start_lookup(resolver, f"gone{i}.test", 80, socket.AF_INET)
            lookup.abandon()
        finally:
            sys.setswitchinterval(interval)
    assert settled(pool)
    assert calls == ["warm.test"]
    assert pool.threads() == 1


def test_a_caller_without_a_timeout_is_not_held_up_by_hung_lookups(
    pool: _resolve._Pool,
) -> None:
    with (
        StaticResolver({"hang.test": ["127.0.0.1"]}, hang=True) as hung,
        listening() as server,
    ):
        port = server.getsockname()[1]
        for _ in range(8):  # 16 lookups, hung for good
            with pytest.raises(TimedOutError):
                connect_by_name("hang.test", 80, timeout=0.01, resolver=hung, history=False)
        assert hung.wait_for_calls(16)
        fast = StaticResolver({"fast.test": ["127.0.0.1"]})
        started = time.monotonic()
        # No timeout, both families: two lookups on threads, behind nobody.
        with connect_by_name("fast.test", port, resolver=fast, history=False) as conn:
            took = time.monotonic() - started
            assert conn.remote_address == ("127.0.0.1", port)
        assert took < 2.0, f"held up for {took:.3f}s"  # behind the hung: for good
        assert 16 < pool.threads() <= 18  # 16 hung, 1 or 2 for the fast lookups
        assert accepted(server) == 1


def test_past_max_threads_a_lookup_fails_at_once_with_eai_again(
    pool: _resolve._Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_resolve, "MAX_THREADS", 4)
    with StaticResolver({"hang.test": ["127.0.0.1"]}, hang=True) as hung:
        for _ in range(2):  # two lookups each: the four threads, hung
            with pytest.raises(TimedOutError):
                connect_by_name("hang.test", 80, timeout=0.01, resolver=hung, history=False)
        assert hung.wait_for_calls(4)
        started = time.monotonic()
        with pytest.raises(NameResolutionError) as caught:
            connect_by_name("hang.test", 80, timeout=5, resolver=hung, history=False)
        took = time.monotonic() - started
        assert caught.value.errno == socket.EAI_AGAIN
        assert took < 2.0, f"took {took:.3f}s"  # not the timeout's 5 s
        assert len(hung.calls) == 4  # the refused lookups never reached the resolver
        assert pool.threads() == 4


def test_an_idle_lookup_thread_keeps_nothing_of_its_last_lookup(pool: _resolve._Pool) -> None:
    class Resolver:
        def __call__(self, host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
            return [answer(socket.AF_INET, "127.0.0.1", port)]

    resolver = Resolver()
    lookup = _resolve.start_lookup(resolver, "name.test", 80, socket.AF_INET)
    assert lookup.wait(2)
    assert settled(pool)
    assert pool.threads() == 1  # a new thread, idle now
    gone = weakref.ref(resolver)
    del resolver, lookup
    assert gone() is None  # without a collection: no reference left anywhere


@pytest.mark.parametrize("when", ["after the thread started", "before the thread started"])
def test_an_interruption_while_a_lookup_thread_starts_propagates_and_keeps_the_count(
    pool: _resolve._Pool, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    start = threading.Thread.start

    def interrupted_start(thread: threading.Thread) -> None:
        if when == "after the thread started":
            start(thread)
        raise KeyboardInterrupt

    resolver = StaticResolver({"name.test": ["127.0.0.1"]})
    monkeypatch.setattr(threading.Thread, "start", interrupted_start)
    with pytest.raises(KeyboardInterrupt):
        _resolve.start_lookup(resolver, "name.test", 80, socket.AF_INET)
    monkeypatch.setattr(threading.Thread, "start", start)
    started = when == "after the thread started"
    assert resolver.wait_for_calls(1, timeout=2 if started else 0.1) is started
    # The count follows the threads (the fixture checks it comes back to 0).
    assert settled(pool)
    assert pool.threads() == int(started)


def test_a_thread_that_cannot_start_fails_the_lookup_with_eai_again(
    pool: _resolve._Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refused_start(thread: threading.Thread) -> None:
        raise RuntimeError("can't start new thread")

    monkeypatch.setattr(threading.Thread, "start", refused_start)
    lookup = _resolve.start_lookup(StaticResolver({}), "name.test", 80, socket.AF_INET)
    assert lookup.done()
    assert lookup.error is not None
    assert lookup.error.errno == socket.EAI_AGAIN
    assert pool.threads() == 0


# ------------------------------------------------------- resolver answers untrusted

BAD_ENTRIES: list[tuple[str, Callable[[int], Any]]] = [
    ("a host name", lambda p: answer(socket.AF_INET, "localhost", p)),
    ("an empty host", lambda p: answer(socket.AF_INET, "", p)),
    ("a bare name", lambda p: answer(socket.AF_INET, "vm", p)),
    ("a NUL byte", lambda p: answer(socket.AF_INET, "127.0.0.1\x00", p)),
    ("an IPv4 scope", lambda p: answer(socket.AF_INET, "127.0.0.1%lo", p)),
    ("port 0", lambda p: answer(socket.AF_INET, "127.0.0.1", 0)),
    ("port 70000", lambda p: answer(socket.AF_INET, "127.0.0.1", 70000)),
    ("port -1", lambda p: answer(socket.AF_INET, "127.0.0.1", -1)),
    ("a port string", lambda p: answer(socket.AF_INET, "127.0.0.1", str(p))),
    ("a port True", lambda p: answer(socket.AF_INET, "127.0.0.1", True)),
    ("a float port", lambda p: answer(socket.AF_INET, "127.0.0.1", float(p))),
    ("IPv6 text as IPv4", lambda p: answer(socket.AF_INET, "::1", p)),
    ("an IPv4 4-tuple", lambda p: answer(socket.AF_INET, "127.0.0.1", p, 0, 0)),
    ("an IPv4 1-tuple", lambda p: answer(socket.AF_INET, "127.0.0.1")),
    ("an IPv6 2-tuple", lambda p: answer(socket.AF_INET6, "::1", p)),
    ("IPv4 text as IPv6", lambda p: answer(socket.AF_INET6, "127.0.0.1", p, 0, 0)),
    ("negative flowinfo", lambda p: answer(socket.AF_INET6, "::1", p, -1, 0)),
    ("huge flowinfo", lambda p: answer(socket.AF_INET6, "::1", p, 2**20, 0)),
    ("negative scope id", lambda p: answer(socket.AF_INET6, "::1", p, 0, -1)),
    ("huge scope id", lambda p: answer(socket.AF_INET6, "::1", p, 0, 2**32)),
    ("a float flowinfo", lambda p: answer(socket.AF_INET6, "::1", p, 0.0, 0)),
    ("a 4-entry", lambda p: (socket.AF_INET, socket.SOCK_STREAM, 6, "")),
    ("a 6-entry", lambda p: (*answer(socket.AF_INET, "127.0.0.1", p), "more")),
    ("a sockaddr string", lambda p: (socket.AF_INET, socket.SOCK_STREAM, 6, "", "127.0.0.1")),
    ("None", lambda p: None),
    ("a string", lambda p: "127.0.0.1"),
    ("an int", lambda p: 2),
    ("a dict", lambda p: {"address": "127.0.0.1", "port": p}),
]
BAD_ANSWERS: list[tuple[str, Callable[[int], Any]]] = [
    *((f"an entry with {what}", lambda p, e=entry: [e(p)]) for what, entry in BAD_ENTRIES),
    ("None", lambda p: None),
    ("a string", lambda p: "127.0.0.1"),
    ("an int", lambda p: 42),
    ("a dict", lambda p: {answer(socket.AF_INET, "127.0.0.1", p): 1}),
    ("a generator", lambda p: (e for e in [answer(socket.AF_INET, "127.0.0.1", p)])),
    ("a set", lambda p: {answer(socket.AF_INET, "127.0.0.1", p)}),
    ("a good entry then a bad one", lambda p: [
        answer(socket.AF_INET, "127.0.0.1", p),
        answer(socket.AF_INET, "vm", p),
    ]),
]  # fmt: skip


@pytest.mark.parametrize(
    "family", [socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6], ids=["unspec", "v4", "v6"]
)
@pytest.mark.parametrize(("what", "bad"), BAD_ANSWERS, ids=[w for w, _ in BAD_ANSWERS])
def test_a_malformed_answer_fails_the_lookup_and_connects_nowhere(
    what: str, bad: Callable[[int], Any], family: int
) -> None:
    with listening() as server:
        port = server.getsockname()[1]

        def resolver(host: str, service: int, asked: int = 0, *args: Any) -> Any:
            entries = bad(port)
            if isinstance(entries, list) and asked:
                # Only the entries of the family asked for, as getaddrinfo answers.
                entries = [e for e in entries if not isinstance(e, tuple) or e[0] == asked]
                if not entries:
                    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
            return entries

        for timeout in (2.0, None):  # on a thread, and (one family) in this thread
            with pytest.raises(NameResolutionError) as caught:
                connect_by_name(
                    "name.test",
                    port,
                    timeout=timeout,
                    family=family,
                    resolver=resolver,
                    history=False,
                )
            assert caught.value.attempts == ()
            if caught.value.errno != socket.EAI_NONAME:
                assert caught.value.errno == socket.EAI_FAIL, str(caught.value)
            else:  # all the bad entries were of the other family
                assert family != socket.AF_UNSPEC, str(caught.value)
        assert accepted(server) == 0


class Native:
    """A resolver with the engine's native protocols (as connectbyname.dns has), that
    answers ``candidates`` as they are."""

    def __init__(self, candidates: Any) -> None:
        self.candidates = candidates

    def start_lookup(self, host: str, port: int, family: socket.AddressFamily) -> Lookup:
        lookup = Lookup(family)
        lookup.finish(self.candidates, None)
        return lookup

    async def alookup(self, host: str, port: int, family: socket.AddressFamily) -> Any:
        return self.candidates

    def __call__(self, *args: Any) -> list[Any]:
        raise AssertionError("the engine uses the native protocols")


@pytest.mark.parametrize("driver", ["sync", *BACKENDS])
def test_a_native_resolvers_answers_are_checked_too(driver: str) -> None:
    with listening() as server:
        port = server.getsockname()[1]
        for bad in (
            [Candidate(socket.AF_INET, ("localhost", port))],
            [(socket.AF_INET, ("vm", port))],
            [Candidate(socket.AF_INET, ("127.0.0.1", 0))],
            [Candidate(socket.AF_INET6, ("::1", port, -1, 0))],
            ["127.0.0.1"],
            "127.0.0.1",
            None,
        ):
            resolver = Native(bad)
            if driver == "sync":
                with pytest.raises(NameResolutionError) as caught:
                    connect_by_name("name.test", port, timeout=2, resolver=resolver)
                error = caught.value
            else:

                async def main(resolver: Native = resolver) -> BaseException:
                    with pytest.raises(NameResolutionError) as caught:
                        await aconnect_by_name("name.test", port, timeout=2, resolver=resolver)
                    return caught.value

                error = run_async(driver, main)
            assert error.errno == socket.EAI_FAIL, (bad, error)
            assert error.attempts == ()
        assert accepted(server) == 0
        # And a good answer, in any text, connects to its canonical address.
        good = Native([Candidate(socket.AF_INET6, ("0::1", port, 0, 0))])
        with listening("::1", port) as v6:
            if driver == "sync":
                with connect_by_name("name.test", port, timeout=2, resolver=good) as conn:
                    assert conn.remote_address == ("::1", port, 0, 0)
            else:

                async def connect() -> None:
                    async with await aconnect_by_name(
                        "name.test", port, timeout=2, resolver=good
                    ) as conn:
                        assert conn.remote_address == ("::1", port, 0, 0)

                run_async(driver, connect)
            assert accepted(v6) == 1


def test_of_two_failed_lookups_the_failure_outranks_no_such_name() -> None:
    planner = Planner(
        0.0,
        parse_target("name.test", 80),
        check_options(history=False),
        check_call(5),
        lookups=(socket.AF_INET6, socket.AF_INET),
    )
    nothing = NameResolutionError("no AAAA", errno=socket.EAI_NONAME)
    failure = NameResolutionError("bad A answer", errno=socket.EAI_FAIL)
    planner.lookup_failed(0.01, nothing, socket.AF_INET6)
    planner.lookup_failed(0.02, failure, socket.AF_INET)
    action = planner.next_action(0.02)
    assert isinstance(action, Failed)
    assert action.error is failure


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("0:0:0:0:0:0:0:1", "::1"),
        ("0000::0001", "::1"),
        ("::FFFF:127.0.0.1", "::ffff:127.0.0.1"),
        ("::ffff:7F00:1", "::ffff:127.0.0.1"),
    ],
)
def test_resolver_text_is_canonical_for_the_policy_and_the_connection(
    given: str, canonical: str
) -> None:
    seen: list[str] = []

    def policy(host: str) -> str | None:
        seen.append(host)
        return None

    mapped = canonical.startswith("::ffff:")
    server = socket.socket(socket.AF_INET6)
    with server:
        server.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        server.bind((canonical, 0))
        server.listen()
        port = server.getsockname()[1]
        with connect_by_name(
            "name.test",
            port,
            timeout=2,
            family=socket.AF_INET6,
            resolver=lambda *args: [answer(socket.AF_INET6, given, port, 0, 0)],
            policy=policy,
            history=False,
        ) as conn:
            assert seen == [canonical]
            assert conn.attempts[0].address == (canonical, port, 0, 0)
            if mapped:  # written as the IPv4 address it is
                assert conn.remote_address == ("127.0.0.1", port)
            else:
                assert conn.remote_address == (canonical, port, 0, 0)


# -------------------------------------------------------------------------- numbers


@pytest.fixture(scope="module")
def three_fates() -> Iterator[dict[str, Any]]:
    """One port blackholed on 127.0.0.1, refused on 127.0.0.2, served on 127.0.0.3,
    and a resolver ``order`` that answers those in a given order."""
    with (
        Blackhole("127.0.0.1") as blackhole,
        refused_port("127.0.0.2", blackhole.port),
        listening("127.0.0.3", blackhole.port) as server,
    ):
        hosts = {"blackholed": "127.0.0.1", "refused": "127.0.0.2", "served": "127.0.0.3"}

        def order(*fates: str) -> Callable[..., list[tuple[Any, ...]]]:
            def resolver(host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
                return [answer(socket.AF_INET, hosts[fate], port) for fate in fates]

            return resolver

        yield {"port": blackhole.port, "order": order, "server": server}


NUMBERS = [
    # (what, order, options, outcome: "served" or an error class, attempts' outcomes)
    (
        "timeout=1e10",
        ("blackholed", "served"),
        {"timeout": 1e10, "attempt_delay": 0.01},
        "served",
        [Outcome.ABANDONED, Outcome.CONNECTED],
    ),
    (
        "timeout=2**1100",
        ("blackholed", "served"),
        {"timeout": 2**1100, "attempt_delay": 0.01},
        "served",
        [Outcome.ABANDONED, Outcome.CONNECTED],
    ),
    (
        "timeout=1.7e308",
        ("blackholed", "served"),
        {"timeout": 1.7e308, "attempt_delay": 0.01},
        "served",
        [Outcome.ABANDONED, Outcome.CONNECTED],
    ),
    (
        "attempt_delay=1e10, blackholed first",
        ("blackholed", "refused"),
        {"timeout": 0.3, "attempt_delay": 1e10},
        TimedOutError,
        [Outcome.TIMED_OUT],  # the next attempt would start in 1e10 s
    ),
    (
        "attempt_delay=1e10, refused first",
        ("refused", "blackholed"),
        {"timeout": 0.3, "attempt_delay": 1e10},
        TimedOutError,
        [Outcome.REFUSED, Outcome.TIMED_OUT],  # the failure started the next at once
    ),
    (
        "attempt_delay=1e10 and timeout=1e10, refused first",
        ("refused", "served"),
        {"timeout": 1e10, "attempt_delay": 1e10},
        "served",
        [Outcome.REFUSED, Outcome.CONNECTED],
    ),
    (
        "resolution_delay=1e10",
        ("blackholed", "served"),
        {"timeout": 1e10, "attempt_delay": 0.01, "resolution_delay": 1e10},
        "served",
        [Outcome.ABANDONED, Outcome.CONNECTED],
    ),
]


@pytest.mark.parametrize("driver", ["sync", *BACKENDS])
@pytest.mark.parametrize("case", NUMBERS, ids=[n[0] for n in NUMBERS])
def test_huge_numbers_never_overflow(
    three_fates: dict[str, Any], driver: str, case: tuple[Any, ...]
) -> None:
    _, order, options, outcome, outcomes = case
    port, resolver = three_fates["port"], three_fates["order"](*order)
    kwargs = {"resolver": resolver, "history": False, "family": socket.AF_INET, **options}
    finite = options["timeout"] < 1e300

    def check(remote: Any, attempts: Any, time_left: float | None) -> None:
        assert remote == ("127.0.0.3", port)
        assert [a.outcome for a in attempts] == outcomes
        if finite:
            assert time_left is not None
            assert time_left > options["timeout"] - 10
        elif options["timeout"] > sys.float_info.max:
            assert time_left is None  # beyond any float: no limit

    started = time.monotonic()
    if driver == "sync":
        if outcome == "served":
            with connect_by_name("name.test", port, **kwargs) as conn:
                check(conn.remote_address, conn.attempts, conn.time_left())
        else:
            with pytest.raises(outcome) as caught:
                connect_by_name("name.test", port, **kwargs)
            assert [a.outcome for a in caught.value.attempts] == outcomes
    else:

        async def main() -> None:
            if outcome == "served":
                async with await aconnect_by_name("name.test", port, **kwargs) as conn:
                    check(conn.remote_address, conn.attempts, conn.time_left())
            else:
                with pytest.raises(outcome) as caught:
                    await aconnect_by_name("name.test", port, **kwargs)
                assert [a.outcome for a in caught.value.attempts] == outcomes

        run_async(driver, main)
    assert time.monotonic() - started < 0.3 + SLACK
    accepted(three_fates["server"])


@pytest.mark.parametrize("family", [2.0, 10.0, True, "2", None, 2**64])
def test_family_must_be_an_int(family: Any) -> None:
    with pytest.raises(InvalidParameterError, match="family"):
        connect_by_name("127.0.0.1", 80, family=family)


@pytest.mark.parametrize(
    "timeout", [0, 0.0, -1, -(2**1100), float("nan"), float("-inf"), "1", True]
)
def test_a_timeout_must_be_more_than_zero(timeout: Any) -> None:
    with pytest.raises(InvalidParameterError, match="timeout"):
        connect_by_name("127.0.0.1", 80, timeout=timeout)


# ------------------------------------------------------------------- socket options


@pytest.mark.parametrize(
    "options",
    [
        [(2**40, 1, 1)],
        [(1, 2**40, 1)],
        [(1, 9, 2**40)],
        [(1, 9, -(2**40))],
        [(1, 9, 1.0)],
        [(1, 9, "1")],
        [(1.0, 9, 1)],
        [(1, 9, 1, 4)],
        [(1, 9, None, -1)],
        [(1, 9)],
        (1, 9, 1),
        "opts",
    ],
)
def test_bad_socket_options_are_refused_before_any_io(options: Any) -> None:
    resolver = StaticResolver({"name.test": ["127.0.0.1"]})
    with listening() as server:
        with pytest.raises(InvalidParameterError, match=r"socket.option"):
            connect_by_name(
                "name.test", server.getsockname()[1], socket_options=options, resolver=resolver
            )
        assert resolver.calls == []
        assert accepted(server) == 0


def test_an_option_the_kernel_does_not_know_is_an_invalid_parameter() -> None:
    unknown = (socket.SOL_SOCKET, 12345, 1)
    with listening() as server:
        port = server.getsockname()[1]
        with pytest.raises(InvalidParameterError) as caught:
            connect_by_name("127.0.0.1", port, socket_options=[unknown], timeout=2)
        assert not isinstance(caught.value, HostUnreachableError)
        assert "12345" in str(caught.value)
        for backend in BACKENDS:

            async def main() -> None:
                with pytest.raises(InvalidParameterError, match="12345"):
                    await aconnect_by_name("127.0.0.1", port, socket_options=[unknown])

            run_async(backend, main)
        assert accepted(server) == 0


def test_an_int_option_then_the_same_as_a_float_the_float_is_refused() -> None:
    with listening() as server:
        port = server.getsockname()[1]
        keepalive = (socket.SOL_SOCKET, socket.SO_KEEPALIVE)
        with connect_by_name("127.0.0.1", port, socket_options=((*keepalive, 1),)) as conn:
            assert conn.socket.getsockopt(*keepalive) == 1
        with pytest.raises(InvalidParameterError, match="socket option"):
            connect_by_name(
                "127.0.0.1",
                port,
                socket_options=((*keepalive, 1.0),),  # type: ignore[arg-type]  # a float on purpose
            )
        with connect_by_name("127.0.0.1", port, socket_options=((*keepalive, 1),)) as conn:
            assert conn.socket.getsockopt(*keepalive) == 1
        assert accepted(server) == 2


# ---------------------------------------------------------- the policy in every client

DENIED = [("metadata.google.internal", 80), ("example.test", 25)]


class Recording:
    """A resolver that records its calls (and would answer a refused port)."""

    def __init__(self) -> None:
        self.calls: list[object] = []

    def __call__(self, host: str, port: int, *args: Any) -> list[tuple[Any, ...]]:
        self.calls.append(host)
        return [answer(socket.AF_INET, "127.0.0.1", 9)]


def request_through(client: str, host: str, port: int, resolver: Recording) -> None:
    """Connect to (or request from) ``host``:``port`` with ``client``, under
    PUBLIC_ONLY."""
    url = f"http://{host}:{port}/"
    engine: dict[str, Any] = {"policy": PUBLIC_ONLY, "resolver": resolver}
    backend = client.rpartition(" ")[2]
    if client == "connect_by_name":
        connect_by_name(host, port, timeout=2, **engine)
    elif client.startswith("aconnect_by_name"):

        async def connect() -> None:
            await aconnect_by_name(host, port, timeout=2, **engine)

        run_async(backend, connect)
    elif client == "urllib3":
        with cbn_urllib3.PoolManager(**engine) as manager:
            manager.request("GET", url, retries=urllib3.Retry(3), timeout=2)
    elif client == "requests":
        with cbn_requests.Session(**engine) as session:
            session.trust_env = False
            session.get(url, timeout=2)
    elif client == "httpx":
        transport = cbn_httpx.ConnectByNameTransport(retries=3, **engine)
        with httpx.Client(transport=transport, trust_env=False) as client_:
            client_.get(url)
    else:

        async def main() -> None:
            transport = cbn_httpx.AsyncConnectByNameTransport(retries=3, **engine)
            async with httpx.AsyncClient(transport=transport, trust_env=False) as client_:
                await client_.get(url)

        run_async(backend, main)


CLIENTS = [
    "connect_by_name",
    "aconnect_by_name asyncio",
    "aconnect_by_name trio",
    "urllib3",
    "requests",
    "httpx",
    "httpx.AsyncClient asyncio",
    "httpx.AsyncClient trio",
]
DENIAL_CLASSES = {
    "urllib3": cbn_urllib3.ConnectByNameAddressDeniedError,
    "requests": cbn_requests.ConnectByNameAddressDeniedError,
    "httpx": cbn_httpx.ConnectByNameAddressDeniedError,
}


@pytest.mark.parametrize(("host", "port"), DENIED)
@pytest.mark.parametrize("client", CLIENTS)
def test_public_only_refuses_before_any_lookup_in_every_client(
    client: str, host: str, port: int
) -> None:
    resolver = Recording()
    with pytest.raises(PolicyDenial) as caught:
        request_through(client, host, port, resolver)
    error = caught.value
    assert resolver.calls == []
    assert isinstance(error, PolicyDenial)
    assert error.attempts == ()
    kind = client.partition(".")[0].partition(" ")[0]
    expected = DENIAL_CLASSES.get(kind, AddressDeniedError)
    assert type(error) is expected
    reason = "metadata" if port == 80 else "port 25"
    assert reason in str(error) or reason in str(error.__cause__)


def test_a_policy_that_raises_denies_with_the_exception_as_reason() -> None:
    def broken(host: str) -> str | None:
        raise ZeroDivisionError("policy bug")

    resolver = StaticResolver({"name.test": ["127.0.0.1"]})
    with listening() as server:
        port = server.getsockname()[1]
        with pytest.raises(AddressDeniedError) as caught:
            connect_by_name("name.test", port, timeout=2, resolver=resolver, policy=broken)
        (attempt,) = caught.value.attempts
        assert attempt.outcome is Outcome.DENIED
        assert attempt.reason is not None
        assert "ZeroDivisionError: policy bug" in attempt.reason
        # An AddressPolicy whose name rule fails refuses before the lookup.
        resolver.calls.clear()

        class Failing(AddressPolicy):
            def check_name(self, name: str) -> str | None:
                return broken(name)

        with pytest.raises(AddressDeniedError, match="ZeroDivisionError: policy bug"):
            connect_by_name("name.test", port, timeout=2, resolver=resolver, policy=Failing())
        assert resolver.calls == []
        assert accepted(server) == 0


@pytest.mark.parametrize("driver", ["sync", *BACKENDS])
def test_a_policy_answering_neither_a_reason_nor_none_refuses(driver: str) -> None:
    class Odd(AddressPolicy):
        def check_name(self, name: str) -> str | None:
            return []  # type: ignore[return-value]

    def odd(host: str) -> str | None:
        return 0  # type: ignore[return-value]

    with listening() as server:
        port = server.getsockname()[1]
        for policy, where in ((Odd(), "127.0.0.1"), (odd, "127.0.0.1")):
            if driver == "sync":
                with pytest.raises(AddressDeniedError) as caught:
                    connect_by_name(where, port, timeout=2, policy=policy)
                error = caught.value
            else:

                async def main(policy: Any = policy, where: str = where) -> BaseException:
                    with pytest.raises(AddressDeniedError) as caught:
                        await aconnect_by_name(where, port, timeout=2, policy=policy)
                    return caught.value

                error = run_async(driver, main)
            assert "not a reason or None" in str(error)
            assert all(isinstance(a.reason, str) for a in error.attempts)
        assert accepted(server) == 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_unexpected_error_in_the_async_race_comes_out_as_itself(backend: str) -> None:
    """As from the sync driver: not wrapped in an ExceptionGroup by the task group."""

    class Broken(Net):
        def socket(
            self, table: Any, key: int, family: socket.AddressFamily, kind: int = socket.SOCK_STREAM
        ) -> socket.socket:
            raise RuntimeError("a bug below the race")

    async def main() -> None:
        with pytest.raises(RuntimeError, match="a bug below the race"):
            await adrive(
                parse_target("127.0.0.1", 80),
                check_options(history=False),
                check_call(1),
                net=Broken(),
            )

    run_async(backend, main)


# ------------------------------------------------------- connectbyname.dns, stray datagrams


class StrayFirst:
    """A UDP nameserver on 127.0.0.1 that answers every query with a stray datagram
    first (``junk``: 5 bytes; ``wrong id``: a response with another ID), then, a few
    milliseconds later, the real answer, both from its own address and port."""

    def __init__(self, stray: str) -> None:
        import dns.message
        import dns.rrset

        self._message, self._rrset = dns.message, dns.rrset
        self.stray = stray
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self._sock.bind(("127.0.0.1", 0))
        self.port: int = self._sock.getsockname()[1]
        self.queries = 0
        self._thread = threading.Thread(target=self._serve, name="stray-first", daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                data, client = self._sock.recvfrom(4096)
            except OSError:
                return
            if not data:
                return
            self.queries += 1
            query = self._message.from_wire(data)
            question = query.question[0]
            response = self._message.make_response(query)
            text = "127.0.0.1" if question.rdtype == 1 else "::1"
            response.answer.append(
                self._rrset.from_text(question.name, 60, "IN", question.rdtype, text)
            )
            if self.stray == "junk":
                stray = b"\x01\x02\x03\x04\x05"
            else:
                other = self._message.make_response(query)
                other.id = (query.id + 1) % 65536
                stray = other.to_wire()
            with contextlib.suppress(OSError):
                self._sock.sendto(stray, client)
                time.sleep(0.005)
                self._sock.sendto(response.to_wire(), client)

    def close(self) -> None:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as poke:
            poke.sendto(b"", ("127.0.0.1", self.port))
        self._thread.join(5)
        self._sock.close()


@pytest.mark.parametrize("stray", ["junk", "wrong id"])
@pytest.mark.parametrize("driver", ["sync", *BACKENDS])
def test_a_stray_datagram_before_the_answer_does_not_fail_the_lookup(
    stray: str, driver: str
) -> None:
    dns = pytest.importorskip("connectbyname.dns")
    server = StrayFirst(stray)
    try:
        with (
            dns.DNSResolver(["127.0.0.1"], port=server.port, timeout=2.0, cache=False) as resolver,
            listening() as target,
        ):
            port = target.getsockname()[1]
            expected = [
                (socket.AF_INET6, ("::1", 80, 0, 0)),
                (socket.AF_INET, ("127.0.0.1", 80)),
            ]
            if driver == "sync":
                assert resolver("www.example.test", 80, socket.AF_INET, socket.SOCK_STREAM)
                with connect_by_name(
                    "www.example.test", port, timeout=2, family=socket.AF_INET, resolver=resolver
                ) as conn:
                    assert conn.remote_address == ("127.0.0.1", port)
            else:

                async def main() -> None:
                    started = anyio.current_time()
                    assert await resolver.alookup("www.example.test", 80, 0) == expected
                    assert anyio.current_time() - started < 1  # answered, not retried
                    async with await aconnect_by_name(
                        "www.example.test",
                        port,
                        timeout=2,
                        family=socket.AF_INET,
                        resolver=resolver,
                    ) as conn:
                        assert conn.remote_address == ("127.0.0.1", port)

                run_async(driver, main)
            assert accepted(target) == 1
    finally:
        server.close()
    # One query per question: the stray datagram did not cause a retransmission.
    assert server.queries == (2 if driver == "sync" else 3)


def test_connect_by_name_error_is_the_base_of_every_error_here() -> None:
    for cls in (
        AddressDeniedError,
        HostUnreachableError,
        InvalidParameterError,
        NameResolutionError,
        TimedOutError,
    ):
        assert issubclass(cls, ConnectByNameError)
    for denial in DENIAL_CLASSES.values():
        assert issubclass(denial, PolicyDenial)
    assert issubclass(cbn_requests.ConnectByNameAddressDeniedError, requests.RequestException)


def test_a_cancel_in_the_loop_iteration_of_the_race_end_is_not_swallowed(
    monkeypatch: pytest.MonkeyPatch, client_ssl_context: ssl.SSLContext
) -> None:
    """anyio before 4.16 (its #1214) folds a Task.cancel() that lands in the loop
    iteration of a task group's own cancellation into it, and swallows both: the race's
    group, cancelled as the race ends, would hand a connection to a cancelled task. Here,
    not marked slow, so that the version matrix runs it at anyio's floor too: the
    blackholed-then-working call of test_cancel_every_step.py, cancelled as it wakes at
    each of its steps in turn (the end of the race among them)."""
    with loopback_world(monkeypatch) as world:
        scenario = scenario_of("blackholed, then working", world, {}, client_ssl_context)
        walk = walk_every_step(scenario, "as it wakes", monkeypatch)
    print(walk)  # shown if the test fails
    assert walk.problems == []
    assert walk.outcomes.get("cancelled", 0) >= 4
