"""Hardening, item 1: "Names in /etc/hosts escape the timeout, and async stalls the event
loop", tested in the network lab against glibc itself.

glibc answers a name from the hosts file only as written and only for a family the file
has a line for: ``localhost.`` (trailing dot) and an IPv6 lookup of a name listed for
IPv4 only both go to DNS. Here the hosts file is ``127.0.0.1 localhost vm`` (no ``::1``
line) and the DNS server drops every query (and logs it), so such a lookup hangs for
the resolver's whole timeout (``options timeout:3 attempts:1``: 3 s; the default would
be 10 s). The engine must still keep its own 0.5 s timeout, sync and async (without
stalling the event loop), and through the requests and httpx adapters; and names the
hosts file does answer must connect without a single DNS query.

The probes run inside the namespace (``lab.call``); each groups its cases so the whole
file costs two Python starts.
"""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from connectbyname.testing.dnsserver import DROP

HOSTS = "127.0.0.1 localhost vm\n"
RESOLVER_TIMEOUT = 3.0  # resolv.conf's timeout:3 attempts:1: what stock clients wait
TIMEOUT = 0.5  # the callers' timeout
# On top of TIMEOUT, for a loaded 2-core machine; still well short of RESOLVER_TIMEOUT.
MARGIN = 1.0
# The longest an event loop may go without running the ticker.
MAX_STALL = 0.25

# --------------------------------------------------------------------------- probes


def _outcome(started: float, error: BaseException | None = None) -> dict[str, Any]:
    kind = type(error) if error is not None else None
    return {
        "error": f"{kind.__module__}.{kind.__qualname__}" if kind is not None else None,
        "elapsed": time.monotonic() - started,
    }


def _timed(call: Callable[[], object]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = call()
    except Exception as exc:
        return _outcome(started, exc)
    close = getattr(result, "close", None)
    if close is not None:
        close()
    return {**_outcome(started), "result": repr(result)[:200]}


async def _atimed(call: Callable[[], Awaitable[object]]) -> dict[str, Any]:
    started = time.monotonic()
    try:
        result = await call()
    except Exception as exc:
        return _outcome(started, exc)
    aclose = getattr(result, "aclose", None)
    if aclose is not None:
        await aclose()
    return {**_outcome(started), "result": repr(result)[:200]}


async def _async_cases(port: int, names: list[list[Any]], url: str) -> dict[str, Any]:
    """The async engine and httpx's async transport on the running loop, beside a
    ticker that records the longest time the loop went without running it."""
    import anyio
    import httpx

    import connectbyname
    from connectbyname.adapters.httpx import AsyncConnectByNameTransport

    gaps: list[float] = []
    done = anyio.Event()

    async def ticker() -> None:
        last = time.monotonic()
        while not done.is_set():
            await anyio.sleep(0.01)
            now = time.monotonic()
            gaps.append(now - last)
            last = now

    results: dict[str, Any] = {}
    async with anyio.create_task_group() as group:
        group.start_soon(ticker)
        await anyio.sleep(0.05)
        for name, family in names:
            results[f"{name}/{family}"] = await _atimed(
                functools.partial(
                    connectbyname.aconnect_by_name, name, port, timeout=TIMEOUT, family=family
                )
            )
        async with httpx.AsyncClient(transport=AsyncConnectByNameTransport()) as client:
            timeout = httpx.Timeout(5.0, connect=TIMEOUT)
            results["httpx"] = await _atimed(lambda: client.get(url, timeout=timeout))
        done.set()
    results["max_gap"] = max(gaps)
    return results


def through_everything(port: int, names: list[list[Any]], url: str) -> dict[str, Any]:
    """Each (name, family) through the sync engine, the async one on asyncio and trio;
    ``url`` through requests and httpx (sync; async on both loops). The outcome of
    each, and the loops' longest stall."""
    import anyio
    import httpx

    import connectbyname
    from connectbyname.adapters.httpx import ConnectByNameTransport
    from connectbyname.adapters.requests import Session

    results: dict[str, Any] = {}
    for name, family in names:
        results[f"sync {name}/{family}"] = _timed(
            functools.partial(
                connectbyname.connect_by_name, name, port, timeout=TIMEOUT, family=family
            )
        )
    for backend in ("asyncio", "trio"):
        results[backend] = anyio.run(_async_cases, port, names, url, backend=backend)
    with Session() as session:
        results["requests"] = _timed(lambda: session.get(url, timeout=(TIMEOUT, 5.0)))
    with httpx.Client(transport=ConnectByNameTransport()) as client:
        timeout = httpx.Timeout(5.0, connect=TIMEOUT)
        results["httpx"] = _timed(lambda: client.get(url, timeout=timeout))
    return results


def stock_and_engine(port: int) -> dict[str, Any]:
    """The problem cases through everything, and stock ``socket.create_connection`` on
    ``localhost.`` (on a thread meanwhile: it takes the resolver's timeout)."""
    stock: dict[str, Any] = {}

    def run_stock() -> None:
        stock.update(_timed(lambda: socket.create_connection(("localhost.", port), TIMEOUT)))

    thread = threading.Thread(target=run_stock)
    thread.start()
    names = [["localhost.", socket.AF_UNSPEC], ["vm", socket.AF_INET6]]
    results = through_everything(port, names, f"http://localhost.:{port}/")
    thread.join()
    results["stock"] = stock
    return results


# --------------------------------------------------------------------------- tests

ENGINE_TIMEOUT = "connectbyname._errors.TimedOutError"


@pytest.fixture
def hosts_lab(network_lab: Any) -> Any:
    """The issue's namespace: hosts ``127.0.0.1 localhost vm``, a DNS server that drops
    everything, an HTTP server on 127.0.0.1:P."""
    return network_lab(
        dns={},
        dns_default=DROP,
        hosts=HOSTS,
        options=f"timeout:{RESOLVER_TIMEOUT:g} attempts:1",
        http=["127.0.0.1"],
    )


def test_names_the_hosts_file_answers_send_no_query(hosts_lab: Any) -> None:
    """``localhost`` (any family: the file has IPv4 only, and glibc then answers
    AF_UNSPEC from it alone) and ``vm`` for IPv4 connect, through everything, and not
    one query reaches the DNS server."""
    names = [["localhost", socket.AF_UNSPEC], ["vm", socket.AF_INET]]
    url = f"http://localhost:{hosts_lab.port}/"
    results = hosts_lab.call(through_everything, hosts_lab.port, names, url)
    outcomes = {
        "sync localhost/0": results["sync localhost/0"],
        "sync vm/2": results["sync vm/2"],
        "requests": results["requests"],
        "httpx": results["httpx"],
    }
    for backend in ("asyncio", "trio"):
        for case in ("localhost/0", "vm/2", "httpx"):
            outcomes[f"{backend} {case}"] = results[backend][case]
    for case, outcome in outcomes.items():
        assert outcome["error"] is None, (case, outcome)
    assert "127.0.0.1" in results["sync localhost/0"]["result"]
    assert "200" in results["requests"]["result"]
    assert "200" in results["httpx"]["result"]
    assert hosts_lab.http["127.0.0.1"].request_count == 4  # requests, httpx, 2 async httpx
    assert hosts_lab.dns.queries() == []


def test_names_that_reach_dns_keep_the_timeout(hosts_lab: Any) -> None:
    """``localhost.`` and ``vm`` for IPv6 go to the silent DNS server: every client of
    the engine fails with its connect-timeout error within 0.5 s and a margin, no event
    loop stalls, while stock ``socket.create_connection`` waits for the resolver."""
    results = hosts_lab.call(stock_and_engine, hosts_lab.port)
    bound = TIMEOUT + MARGIN
    expected = {
        "sync localhost./0": ENGINE_TIMEOUT,
        "sync vm/10": ENGINE_TIMEOUT,
        "requests": "requests.exceptions.ConnectTimeout",
        "httpx": "httpx.ConnectTimeout",
    }
    for backend in ("asyncio", "trio"):
        expected[f"{backend} localhost./0"] = ENGINE_TIMEOUT
        expected[f"{backend} vm/10"] = ENGINE_TIMEOUT
        expected[f"{backend} httpx"] = "httpx.ConnectTimeout"
    for case, error in expected.items():
        where, _, what = case.partition(" ")
        outcome = results[where][what] if where in ("asyncio", "trio") else results[case]
        assert outcome["error"] == error, (case, outcome)
        assert TIMEOUT - 0.05 <= outcome["elapsed"] <= bound, (case, outcome)
    for backend in ("asyncio", "trio"):
        assert results[backend]["max_gap"] < MAX_STALL, (backend, results[backend])

    # The problem is real: glibc did send these names to DNS, and the standard library
    # waited for the resolver's timeout, far past the caller's.
    assert hosts_lab.dns is not None
    assert {q.type for q in hosts_lab.dns.queries("localhost.")} == {"A", "AAAA"}
    vm = [q for q in hosts_lab.dns.queries() if (q.name or "").lower().startswith("vm.")]
    assert {q.type for q in vm} == {"AAAA"}
    stock = results["stock"]
    assert stock["error"] == "socket.gaierror", stock
    assert stock["elapsed"] > RESOLVER_TIMEOUT - 0.5
    slowest_engine = max(
        outcome["elapsed"] for outcome in [results[case] for case in expected if case in results]
    )
    assert stock["elapsed"] > slowest_engine
