"""Faults and load: descriptors and threads come back to their baseline, the timeout
holds whatever the resolver does, and many threads share one pool. Marked slow; CI runs
them (``pytest`` runs everything by default)."""

from __future__ import annotations

import contextlib
import gc
import random
import socket
import threading
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import anyio
import pytest
import requests
import urllib3

from connectbyname import (
    ConnectByNameError,
    InvalidParameterError,
    TimedOutError,
    aconnect_by_name,
    connect_by_name,
    connection_info,
)
from connectbyname.adapters import urllib3 as cbn_urllib3
from connectbyname.adapters.requests import Session
from connectbyname.testing import (
    Blackhole,
    HTTPServer,
    StaticResolver,
    open_fds,
    refused_port,
)

pytestmark = pytest.mark.slow

# Margins for a loaded 2-core machine.
SLACK = 0.5


def engine_threads() -> int:
    return sum(t.name == "connectbyname-resolver" for t in threading.enumerate())


@contextlib.contextmanager
def baseline() -> Iterator[None]:
    """Descriptors and non-resolver threads before and after must match, and no
    ResourceWarning (an unclosed socket) may appear."""
    gc.collect()
    fds, threads = open_fds(), threading.active_count() - engine_threads()
    with warnings.catch_warnings():
        warnings.simplefilter("error", ResourceWarning)
        yield
        gc.collect()
    deadline = time.monotonic() + 2
    while open_fds() != fds and time.monotonic() < deadline:
        time.sleep(0.05)
    assert open_fds() == fds
    assert threading.active_count() - engine_threads() == threads


@contextlib.contextmanager
def mixed_world() -> Iterator[dict[str, Any]]:
    """A served port, a refused one and a blackholed one, and names for each fate."""
    with contextlib.ExitStack() as stack:
        served = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=512))
        served.setblocking(False)
        port = served.getsockname()[1]
        stack.enter_context(refused_port("::1", port))
        stack.enter_context(Blackhole("127.0.0.2", port))
        stack.enter_context(Blackhole("127.0.0.3", port))
        resolver = StaticResolver(
            {
                "ok.test": ["::1", "127.0.0.1"],  # refused IPv6, then served IPv4
                "dead.test": ["127.0.0.2", "127.0.0.3"],  # blackholed: times out
                "refused.test": ["::1"],
            },
            record_calls=False,
        )
        yield {"server": served, "port": port, "resolver": resolver}


def drain(server: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while True:
            server.accept()[0].close()


def test_ten_thousand_mixed_sync_connects_leave_nothing_behind() -> None:
    rng = random.Random(8305)
    outcomes: dict[str, int] = {}
    with mixed_world() as world, baseline():
        for i in range(10_000):
            fate = rng.choices(
                ["ok", "refused", "dead", "nxdomain", "literal", "invalid"],
                weights=[50, 15, 5, 10, 15, 5],
            )[0]
            name = {"ok": "ok.test", "literal": "127.0.0.1"}.get(fate, f"{fate}.test")
            try:
                connect_by_name(
                    name if fate != "invalid" else "",
                    world["port"],
                    timeout=0.02 if fate == "dead" else 2,
                    attempt_delay=0.01,
                    resolver=world["resolver"],
                ).close()
                outcomes["connected"] = outcomes.get("connected", 0) + 1
            except ConnectByNameError as exc:
                outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            if i % 100 == 0:
                drain(world["server"])
        drain(world["server"])
    assert set(outcomes) == {
        "connected",
        "RefusedError",
        "TimedOutError",
        "NameResolutionError",
        "InvalidParameterError",
    }
    assert sum(outcomes.values()) == 10_000


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_ten_thousand_mixed_async_connects_with_cancellation_leave_nothing_behind(
    backend: str,
) -> None:
    rng = random.Random(6555)
    outcomes: dict[str, int] = {}

    async def main(world: dict[str, Any]) -> None:
        for i in range(10_000):
            fate = rng.choices(
                ["ok", "refused", "dead", "nxdomain", "cancelled"], weights=[50, 15, 10, 10, 15]
            )[0]
            name = {"cancelled": "dead.test", "ok": "ok.test"}.get(fate, f"{fate}.test")
            try:
                with anyio.move_on_after(0.005 if fate == "cancelled" else 5) as scope:
                    connection = await aconnect_by_name(
                        name,
                        world["port"],
                        timeout=0.02 if fate == "dead" else 5,
                        attempt_delay=0.01,
                        resolver=world["resolver"],
                    )
                    await connection.aclose()
                    outcomes["connected"] = outcomes.get("connected", 0) + 1
                if scope.cancelled_caught:
                    outcomes["cancelled"] = outcomes.get("cancelled", 0) + 1
            except ConnectByNameError as exc:
                outcomes[type(exc).__name__] = outcomes.get(type(exc).__name__, 0) + 1
            if i % 100 == 0:
                drain(world["server"])
        drain(world["server"])

    with mixed_world() as world, baseline():
        anyio.run(main, world, backend=backend)
    assert {"connected", "cancelled", "TimedOutError", "RefusedError"} <= set(outcomes)


@pytest.mark.parametrize("timeout", [0.3, 1.0])
def test_the_timeout_holds_with_a_hanging_resolver(timeout: float) -> None:
    with StaticResolver({"hang.test": ["127.0.0.1"]}, hang=True) as resolver, baseline():
        started = time.monotonic()
        with pytest.raises(TimedOutError):
            connect_by_name("hang.test", 80, timeout=timeout, resolver=resolver)
        assert time.monotonic() - started < timeout + SLACK


def test_the_timeout_holds_with_a_flood_of_addresses() -> None:
    # 200 candidates: 150 refuse at once (each failure starts the next attempt at once),
    # 50 are blackholed and hang until the deadline.
    refused = [f"127.0.3.{n}" for n in range(1, 151)]
    blackholed = [f"127.0.2.{n}" for n in range(1, 51)]
    with contextlib.ExitStack() as stack:
        first = stack.enter_context(Blackhole(blackholed[0]))
        for host in blackholed[1:]:
            stack.enter_context(Blackhole(host, first.port))
        for host in refused:
            stack.enter_context(refused_port(host, first.port))
        hosts = [h for pair in zip(refused[::3], blackholed, strict=True) for h in pair]
        hosts += [h for h in refused if h not in hosts]
        assert len(set(hosts)) == 200
        resolver = StaticResolver({"flood.test": hosts})
        with baseline():
            started = time.monotonic()
            with pytest.raises(TimedOutError) as caught:
                connect_by_name(
                    "flood.test", first.port, timeout=1, attempt_delay=0.01, resolver=resolver
                )
            took = time.monotonic() - started
    assert took < 1 + SLACK
    # Every address was tried; the blackholed ones were in flight at the deadline, and
    # every socket was closed (the baseline above).
    assert len(caught.value.attempts) == 200
    assert sum(a.outcome == "timed out" for a in caught.value.attempts) == 50


def test_two_hundred_threads_share_one_session_and_one_pool() -> None:
    def fetch_with_requests(session: requests.Session, url: str) -> tuple[int, bool]:
        response = session.get(url, timeout=10)
        return response.status_code, connection_info(response).remote_address[0] == "127.0.0.1"

    def fetch_with_urllib3(pool: urllib3.PoolManager, url: str) -> tuple[int, bool]:
        response = pool.request("GET", url, timeout=10)
        return response.status, connection_info(response).remote_address[0] == "127.0.0.1"

    with HTTPServer() as server, baseline():
        url = f"{server.url}/"
        with Session() as session, ThreadPoolExecutor(200) as pool:
            results = list(pool.map(lambda _: fetch_with_requests(session, url), range(200)))
        assert results == [(200, True)] * 200
        with (
            cbn_urllib3.PoolManager(maxsize=200, block=True) as manager,
            ThreadPoolExecutor(200) as pool,
        ):
            results = list(pool.map(lambda _: fetch_with_urllib3(manager, url), range(200)))
        assert results == [(200, True)] * 200
    assert server.request_count == 400


def test_hostile_input_through_an_adapter_is_refused_at_once() -> None:
    for bad in ({"attempt_delay": float("nan")}, {"family": "inet"}, {"resolution_delay": -1}):
        with pytest.raises(InvalidParameterError):
            Session(**bad)
