"""The benchmark suite: stock clients against the connectbyname engine and adapters.

    python bench/run.py [--quick] [--out bench/results]

One run measures every benchmark the issues name that can run here, stock and adapted
side by side, on loopback only (127.0.0.1 and ::1), and writes ``results.json`` (every
sample), ``results.md`` (medians, spread, ratio adapted/stock, targets) and
``chart.png`` (time to first response and the scale figure; needs matplotlib, the
``bench`` extra). Nothing here is assumed: every figure is measured in the run.

Host names are injected into ``socket.getaddrinfo`` for this process, so stock clients
resolve them too; every sample uses a fresh name, so the engine's connection history
(which remembers per host and port what won) never helps a sample that is meant to be a
first connection.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import http.client
import importlib
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

import anyio
import anyio.abc

from connectbyname import aconnect_by_name, connect_by_name
from connectbyname._resolve import cannot_hang
from connectbyname.demo._demo import (
    ATTEMPT_DELAY,
    LABELS,
    RUNNERS,
    Unavailable,
    check_available,
    fetch,
    open_async,
    open_sync,
    run_async,
)
from connectbyname.testing import (
    Blackhole,
    GetAddrInfo,
    HTTPServer,
    StaticResolver,
    dual_stack,
    localhost_fallback,
    patch_getaddrinfo,
)

HERE = Path(__file__).resolve().parent
SYNC = ("urllib3", "requests", "httpx")
ASYNC = ("httpx-asyncio", "httpx-trio")
ENGINE = "engine"
ENGINE_LABEL = "engine: connect_by_name vs socket.create_connection"
#: The connect APIs the issues measure against (the anchors), with how they run; each
#: stock side is the peer itself, each adapted side aconnect_by_name on the same loop.
ANCHORS = {
    "asyncio": ("asyncio: open_connection vs aconnect_by_name", "asyncio"),
    "aiohappyeyeballs": (
        "aiohappyeyeballs: getaddrinfo + start_connection vs aconnect_by_name",
        "asyncio",
    ),
    "anyio": ("anyio (asyncio): connect_tcp vs aconnect_by_name", "asyncio"),
    "trio": ("trio: open_tcp_stream vs aconnect_by_name", "trio"),
}
ANCHOR_NOTE = (
    " The anchor rows (asyncio, aiohappyeyeballs, anyio, trio) time a TCP connect, not "
    "an HTTP response: from the call until the connection is established, on a fresh "
    "event loop per connect. Stock: asyncio.open_connection(host, port, "
    "happy_eyeballs_delay=0.25) (loop.create_connection resolves with one "
    "getaddrinfo(AF_UNSPEC)); loop.getaddrinfo(host, port, type=SOCK_STREAM, "
    "flags=AI_ADDRCONFIG) then aiohappyeyeballs.start_connection(addr_infos, "
    "happy_eyeballs_delay=0.25), as aiohttp's default resolver does; anyio.connect_tcp("
    "host, port, happy_eyeballs_delay=0.25) on asyncio; trio.open_tcp_stream(host, port, "
    "happy_eyeballs_delay=0.25). Adapted: connectbyname.aconnect_by_name(host, port, "
    "attempt_delay=0.25) on the same event loop. Each call is bounded by anyio.fail_after("
    "connect timeout). All resolve the injected names through socket.getaddrinfo."
)
ANYIO_PORTS = (
    "not measurable here: anyio's connect_tcp (stock httpx on asyncio) connects every "
    "address to the requested port, and on loopback distinct dead addresses need ports "
    "of their own"
)


def label(key: str) -> str:
    if key in ANCHORS:
        return ANCHORS[key][0]
    return ENGINE_LABEL if key == ENGINE else LABELS[key]


def anchor_unavailable(key: str) -> str | None:
    """Why anchor ``key`` cannot run here (its module is missing), or None."""
    try:
        importlib.import_module(key)
    except ImportError:
        return f"not available: {key} is not installed (the bench extra)"
    return None


# --------------------------------------------------------------------------- resolver


class BenchResolver:
    """A ``getaddrinfo`` stand-in: registered names answer with ``(ip, port)`` entries
    (a port of its own per entry, or the requested one for ``None``), optionally with
    a late AAAA answer; anything else goes to a `StaticResolver` (literals, localhost).
    """

    def __init__(self) -> None:
        self._table: dict[str, tuple[list[tuple[str, int | None]], float]] = {}
        self._fallback = StaticResolver(fallback=localhost_fallback, record_calls=False)
        self._lock = threading.Lock()
        self._count = 0

    def name(
        self, prefix: str, entries: Sequence[tuple[str, int | None]], aaaa_delay: float = 0.0
    ) -> str:
        """Register a fresh name for ``entries`` and return it."""
        with self._lock:
            self._count += 1
            name = f"{prefix}-{self._count}.bench.test"
        self._table[name] = (list(entries), aaaa_delay)
        return name

    def __call__(  # noqa: PLR0917 (socket.getaddrinfo's signature)
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[tuple[Any, ...]]:
        text = host.decode() if isinstance(host, bytes) else host
        entry = self._table.get(text.lower().rstrip(".")) if text else None
        if entry is None:
            return list(self._fallback(host, port, family, type, proto, flags))
        if flags & socket.AI_NUMERICHOST:
            # A name is no numeric host: fail at once, as the system's does (trio asks
            # this way first, in the event loop, before it starts a lookup thread).
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        entries, aaaa_delay = entry
        if aaaa_delay and family in (socket.AF_UNSPEC, socket.AF_INET6):
            # A combined lookup waits for the AAAA answer too, as the system's does.
            time.sleep(aaaa_delay)
        requested = int(port.decode() if isinstance(port, bytes) else port) if port else 0
        result: list[tuple[Any, ...]] = []
        for ip, own_port in entries:
            fam = socket.AF_INET6 if ":" in ip else socket.AF_INET
            if family not in (socket.AF_UNSPEC, fam):
                continue
            number = own_port or requested
            sockaddr = (ip, number, 0, 0) if fam == socket.AF_INET6 else (ip, number)
            result.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        if not result:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return result


# --------------------------------------------------------------------------- samples


@dataclass
class Sample:
    value: float  # seconds, or a rate per second (see Bench.unit)
    ok: bool = True
    detail: str = ""


def client_time(  # noqa: PLR0917
    key: str, adapted: bool, url: str, timeout: float, expect_ok: bool, any_family: bool = False
) -> Sample:
    """Seconds for one GET with a new client (set-up untimed); a response must come
    from 127.0.0.1 unless ``any_family``."""
    row = fetch(key, adapted, url, timeout)
    if not row.available:
        raise Unavailable(row.outcome)
    assert row.seconds is not None
    ok = row.outcome == "HTTP 200"
    if ok and not any_family and row.remote is not None and row.remote[0] != "127.0.0.1":
        return Sample(row.seconds, False, f"reached {row.remote}")
    return Sample(row.seconds, ok == expect_ok, "" if ok == expect_ok else row.outcome)


def engine_time(adapted: bool, name: str, port: int, timeout: float, expect_ok: bool) -> Sample:
    """Seconds for connect_by_name (adapted) or socket.create_connection (stock)."""
    started = time.perf_counter()
    try:
        if adapted:
            with connect_by_name(name, port, timeout=timeout, attempt_delay=ATTEMPT_DELAY):
                seconds = time.perf_counter() - started
        else:
            with socket.create_connection((name, port), timeout=timeout):
                seconds = time.perf_counter() - started
    except OSError as exc:
        seconds = time.perf_counter() - started
        return Sample(seconds, not expect_ok, "" if not expect_ok else type(exc).__name__)
    return Sample(seconds, expect_ok, "" if expect_ok else "connected")


async def _anchor_connect(key: str, adapted: bool, name: str, port: int) -> tuple[float, Any]:
    """Connect with anchor ``key`` (or aconnect_by_name) and close; returns the seconds
    until the connection was established and the peer's address."""
    started = time.perf_counter()
    if adapted:
        conn = await aconnect_by_name(name, port, attempt_delay=ATTEMPT_DELAY)
        seconds = time.perf_counter() - started
        await conn.aclose()
        return seconds, conn.remote_address
    if key == "asyncio":
        _, writer = await asyncio.open_connection(name, port, happy_eyeballs_delay=ATTEMPT_DELAY)
        seconds = time.perf_counter() - started
        remote = writer.get_extra_info("peername")
        writer.close()
        await writer.wait_closed()
        return seconds, remote
    if key == "aiohappyeyeballs":
        aiohappyeyeballs = importlib.import_module("aiohappyeyeballs")
        loop = asyncio.get_running_loop()
        infos = await loop.getaddrinfo(
            name, port, type=socket.SOCK_STREAM, flags=socket.AI_ADDRCONFIG
        )
        sock = await aiohappyeyeballs.start_connection(infos, happy_eyeballs_delay=ATTEMPT_DELAY)
        seconds = time.perf_counter() - started
        with sock:
            return seconds, sock.getpeername()
    if key == "anyio":
        stream = await anyio.connect_tcp(name, port, happy_eyeballs_delay=ATTEMPT_DELAY)
        seconds = time.perf_counter() - started
        remote = stream.extra(anyio.abc.SocketAttribute.remote_address)
        await stream.aclose()
        return seconds, remote
    trio = importlib.import_module("trio")
    trio_stream = await trio.open_tcp_stream(name, port, happy_eyeballs_delay=ATTEMPT_DELAY)
    seconds = time.perf_counter() - started
    remote = trio_stream.socket.getpeername()
    await trio_stream.aclose()
    return seconds, remote


def anchor_time(  # noqa: PLR0917
    key: str, adapted: bool, name: str, port: int, timeout: float, any_family: bool = False
) -> Sample:
    """Seconds until anchor ``key`` (stock) or aconnect_by_name (adapted) has connected,
    on a fresh event loop; the connection must reach 127.0.0.1 unless ``any_family``."""

    async def run() -> tuple[float, Any, str]:
        started = time.perf_counter()
        try:
            with anyio.fail_after(timeout):
                seconds, remote = await _anchor_connect(key, adapted, name, port)
        except Exception as exc:
            return time.perf_counter() - started, None, type(exc).__name__
        return seconds, remote, ""

    seconds, remote, error = run_async(ANCHORS[key][1], run)
    if error:
        return Sample(seconds, False, error)
    if not any_family and remote is not None and remote[0] != "127.0.0.1":
        return Sample(seconds, False, f"reached {remote}")
    return Sample(seconds)


def one_time(  # noqa: PLR0917
    key: str,
    adapted: bool,
    name: str,
    port: int,
    timeout: float,
    ok: bool,
    any_family: bool = False,
) -> Sample:
    if key == ENGINE:
        return engine_time(adapted, name, port, timeout, ok)
    if key in ANCHORS:
        assert ok, "the anchor rows only measure connections that succeed"
        return anchor_time(key, adapted, name, port, timeout, any_family)
    return client_time(key, adapted, f"http://{name}:{port}/", timeout, ok, any_family)


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    text: str
    check: Callable[[float, float | None], bool]  # (adapted median, ratio) -> met


def ratio_at_most(limit: float, text: str | None = None) -> Target:
    return Target(text or f"ratio <= {limit:g}", lambda _a, r: r is not None and r <= limit)


def ratio_at_least(limit: float, text: str | None = None) -> Target:
    return Target(text or f"ratio >= {limit:g}", lambda _a, r: r is not None and r >= limit)


def adapted_at_most(seconds: float, text: str) -> Target:
    return Target(text, lambda a, _r: a <= seconds)


# --------------------------------------------------------------------------- rows


@dataclass
class RowSpec:
    key: str
    sample: Callable[[bool], Sample]  # adapted -> one sample
    n_stock: int
    n_adapted: int
    concurrent_stock: bool = False
    concurrent_adapted: bool = False
    targets: Sequence[Target] = ()
    label: str | None = None
    unavailable: str | None = None
    param: object = None  # e.g. the number of dead addresses in the scale benchmark


@dataclass
class Bench:
    id: str
    short: str  # the name in the markdown table
    title: str
    unit: str  # "s" (lower is better) or "/s" (higher is better)
    note: str
    params: dict[str, object] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)


def stats(samples: Sequence[Sample]) -> dict[str, Any] | None:
    values = [s.value for s in samples]
    if not values:
        return None
    ordered = sorted(values)
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    return {
        "n": len(values),
        "median": statistics.median(values),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
        "invalid": [s.detail or "unexpected outcome" for s in samples if not s.ok],
        "samples": values,
    }


def run_rows(bench: Bench, specs: Sequence[RowSpec]) -> None:
    """Measure every row: the concurrent sides all at once (one thread each, samples one
    after the other in it), then the other sides, stock and adapted interleaved."""
    results: dict[tuple[int, bool], list[Sample]] = {}
    errors: dict[int, str] = {}
    for index, spec in enumerate(specs):
        if spec.unavailable:
            errors[index] = spec.unavailable
            continue
        if spec.key in LABELS:
            try:
                check_available(spec.key, False)
                check_available(spec.key, True)
            except Unavailable as exc:
                errors[index] = str(exc)
    jobs = [
        (index, adapted, spec)
        for index, spec in enumerate(specs)
        for adapted in (False, True)
        if index not in errors
    ]

    def count(spec: RowSpec, adapted: bool) -> int:
        return spec.n_adapted if adapted else spec.n_stock

    def concurrent(spec: RowSpec, adapted: bool) -> bool:
        return spec.concurrent_adapted if adapted else spec.concurrent_stock

    def run_job(index: int, adapted: bool, spec: RowSpec) -> None:
        results[index, adapted] = [spec.sample(adapted) for _ in range(count(spec, adapted))]

    threads = [
        threading.Thread(target=run_job, args=job, daemon=True)
        for job in jobs
        if concurrent(job[2], job[1])
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    serial = [job for job in jobs if not concurrent(job[2], job[1])]
    for index, adapted, _ in serial:
        results[index, adapted] = []
    for i in range(max([count(spec, adapted) for _, adapted, spec in serial] or [0])):
        # Each row's stock and adapted samples of a round are taken back to back, one
        # round stock first and the next adapted first: a pair shares the machine's
        # state of the moment, and neither side always goes first.
        for index, adapted, spec in sorted(serial, key=lambda job: (job[0], job[1] == i % 2)):
            if i < count(spec, adapted):
                results[index, adapted].append(spec.sample(adapted))
    for index, spec in enumerate(specs):
        row: dict[str, Any] = {"client": spec.label or label(spec.key), "key": spec.key}
        if spec.param is not None:
            row["param"] = spec.param
        if index in errors:
            row["unavailable"] = errors[index]
            bench.rows.append(row)
            continue
        stock, adapted = stats(results[index, False]), stats(results[index, True])
        row["stock"], row["adapted"] = stock, adapted
        ratio = None
        paired = bool(
            not spec.concurrent_stock
            and not spec.concurrent_adapted
            and stock
            and adapted
            and stock["n"] == adapted["n"]
            and 0 not in stock["samples"]
        )
        if paired and stock and adapted:
            # On a shared machine whose speed drifts, the ratio within back-to-back
            # pairs is steadier than the ratio of the two medians.
            ratio = statistics.median(
                a / s for a, s in zip(adapted["samples"], stock["samples"], strict=True)
            )
        elif stock and adapted and stock["median"]:
            ratio = adapted["median"] / stock["median"]
            paired = False
        row["ratio"], row["paired"] = ratio, paired
        row["targets"] = [
            {"target": t.text, "met": bool(adapted and t.check(adapted["median"], ratio))}
            for t in spec.targets
        ]
        row["concurrent"] = {"stock": spec.concurrent_stock, "adapted": spec.concurrent_adapted}
        bench.rows.append(row)
        shown = f"{label(spec.key)}" + (f" [{spec.param}]" if spec.param is not None else "")
        print(f"    {shown:<58} {_cell(stock, bench.unit):>24}  {_cell(adapted, bench.unit):>24}")
        sys.stdout.flush()


# --------------------------------------------------------------------------- benchmarks


@dataclass
class Plan:
    quick: bool

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full


def bench_first_response(plan: Plan, resolver: BenchResolver) -> Bench:
    timeout = 3.0
    bench = Bench(
        "first_response_blackholed_v6",
        "first response, IPv6 blackholed, 3 s",
        "Time to first response, IPv6 blackholed first (connect timeout 3 s)",
        "s",
        "[::1]:P drops SYNs, 127.0.0.1:P serves HTTP; the name answers ::1 first. Stock "
        "sync clients (and socket.create_connection) ran concurrently, one thread each, "
        "since they wait out their timeout; everything else ran alone, stock and adapted "
        "interleaved. The engine row times the TCP connect only.",
        {"connect_timeout": timeout, "attempt_delay": ATTEMPT_DELAY},
    )
    print(f"\n{bench.title}")
    with dual_stack("blackholed-v6") as stack:
        entries = [("::1", None), ("127.0.0.1", None)]

        def sample(key: str) -> Callable[[bool], Sample]:
            return lambda adapted: one_time(
                key, adapted, resolver.name(key, entries), stack.port, timeout, True
            )

        ten_x = ratio_at_most(0.1, "ratio <= 0.1 (10x faster)")
        delay_100 = adapted_at_most(ATTEMPT_DELAY + 0.1, "adapted <= attempt delay + 100 ms")
        specs = [
            RowSpec(
                ENGINE,
                sample(ENGINE),
                plan.n(3, 1),
                plan.n(15, 5),
                concurrent_stock=True,
                targets=[adapted_at_most(ATTEMPT_DELAY + 0.05, "adapted <= attempt delay + 50 ms")],
            ),
            *[
                RowSpec(
                    key,
                    sample(key),
                    plan.n(3, 1),
                    plan.n(15, 5),
                    concurrent_stock=True,
                    targets=[ten_x, delay_100] if key != "httpx" else [ten_x],
                )
                for key in SYNC
            ],
            *[
                RowSpec(
                    key,
                    sample(key),
                    plan.n(15, 5),
                    plan.n(15, 5),
                    targets=[ratio_at_most(1.0, "ratio <= 1 (no slower than stock)")],
                )
                for key in ASYNC
            ],
        ]
        run_rows(bench, specs)
    return bench


def bench_all_dead(plan: Plan, resolver: BenchResolver) -> Bench:
    timeout = 1.0
    bench = Bench(
        "failure_all_blackholed",
        "failure, 3 addresses blackholed, 1 s",
        "Time to failure, three addresses all blackholed (connect timeout 1 s)",
        "s",
        "The name answers [::1]:P1, 127.0.0.1:P2, [::1]:P3, each a blackhole (loopback has "
        "two addresses, so each dead address has a port of its own). All rows ran "
        "concurrently, one thread per client and side, as every sample waits out a "
        "timeout.",
        {"connect_timeout": timeout, "addresses": 3},
    )
    print(f"\n{bench.title}")
    with contextlib.ExitStack() as stack:
        holes = [stack.enter_context(Blackhole(h)) for h in ("::1", "127.0.0.1", "::1")]
        entries: list[tuple[str, int | None]] = [(h.host, h.port) for h in holes]

        def sample(key: str) -> Callable[[bool], Sample]:
            return lambda adapted: one_time(
                key, adapted, resolver.name(key, entries), holes[0].port, timeout, False
            )

        budget = adapted_at_most(timeout + 0.1, "adapted <= budget + 100 ms")
        specs = [
            RowSpec(
                key,
                sample(key),
                plan.n(3, 1),
                plan.n(3, 1),
                concurrent_stock=True,
                concurrent_adapted=True,
                targets=[budget],
                unavailable=ANYIO_PORTS if key == "httpx-asyncio" else None,
            )
            for key in (ENGINE, *SYNC, *ASYNC)
        ]
        run_rows(bench, specs)
    return bench


def bench_scale(plan: Plan, resolver: BenchResolver) -> Bench:
    stock_timeout, adapted_timeout = 0.5, 3.0
    counts = (1, 2, 4, 8)
    bench = Bench(
        "scale_dead_addresses",
        "connect with N dead addresses first",
        "Time to connect with N dead addresses before the good one",
        "s",
        f"N blackholed 127.0.0.1 ports, then the HTTP server on 127.0.0.1. Stock sync "
        f"clients and socket.create_connection get a connect timeout of {stock_timeout:g} s "
        f"(they apply it per address; short, so the run stays bounded); stock httpx async "
        f"(which races and applies it to the whole connect) and adapted clients "
        f"{adapted_timeout:g} s. "
        "Stock sides ran concurrently (one thread per client), adapted sides too.",
        {
            "stock_connect_timeout": stock_timeout,
            "adapted_connect_timeout": adapted_timeout,
            "dead": list(counts),
            "attempt_delay": ATTEMPT_DELAY,
        },
    )
    print(f"\n{bench.title}")
    keys = (ENGINE, *SYNC, *ASYNC) if not plan.quick else (ENGINE, "urllib3", "httpx-trio")
    with contextlib.ExitStack() as stack:
        holes = [stack.enter_context(Blackhole("127.0.0.1")) for _ in range(max(counts))]
        server = stack.enter_context(HTTPServer("127.0.0.1"))
        specs = []
        for key in keys:
            for n in counts:
                entries: list[tuple[str, int | None]] = [("127.0.0.1", h.port) for h in holes[:n]]
                entries.append(("127.0.0.1", server.port))

                def sample(adapted: bool, key: str = key, entries: list[Any] = entries) -> Sample:
                    # Stock httpx async already spends its connect timeout on the whole
                    # race, so it gets the adapted budget; the per-address clients get
                    # the short one.
                    per_address = not adapted and key not in ASYNC
                    timeout = stock_timeout if per_address else adapted_timeout
                    name = resolver.name(key, entries)
                    return one_time(key, adapted, name, server.port, timeout, True)

                specs.append(
                    RowSpec(
                        key,
                        sample,
                        plan.n(3, 1),
                        plan.n(3, 1),
                        concurrent_stock=True,
                        concurrent_adapted=True,
                        param=n,
                        label=f"{label(key)}, {n} dead",
                        unavailable=ANYIO_PORTS if key == "httpx-asyncio" else None,
                    )
                )
        # One thread per row would start 4x as many; run the counts one after another.
        for n in counts:
            run_rows(bench, [s for s in specs if s.param == n])
    return bench


def bench_slow_aaaa(plan: Plan, resolver: BenchResolver) -> Bench:
    delay, timeout = 0.3, 3.0
    bench = Bench(
        "first_response_slow_aaaa",
        "first response, AAAA 0.3 s late",
        "Time to first response, AAAA answer 0.3 s late, both families working",
        "s",
        "HTTP servers on [::1]:P and 127.0.0.1:P; the injected resolver answers A at once "
        "and AAAA (and a combined lookup) after 0.3 s. Rows ran alone, stock and adapted "
        "interleaved. A response from either family counts." + ANCHOR_NOTE,
        {"aaaa_delay": delay, "connect_timeout": timeout},
    )
    print(f"\n{bench.title}")
    with both_families() as port:
        entries = [("::1", None), ("127.0.0.1", None)]

        def sample(key: str) -> Callable[[bool], Sample]:
            return lambda adapted: one_time(
                key, adapted, resolver.name(key, entries, delay), port, timeout, True, True
            )

        specs = [
            RowSpec(
                key,
                sample(key),
                plan.n(7, 3),
                plan.n(7, 3),
                targets=[adapted_at_most(0.06, "adapted <= 60 ms")],
                unavailable=anchor_unavailable(key) if key in ANCHORS else None,
            )
            for key in (ENGINE, *SYNC, *ASYNC, *ANCHORS)
        ]
        run_rows(bench, specs)
    return bench


@contextlib.contextmanager
def both_families() -> Iterator[int]:
    """HTTP servers on 127.0.0.1:P and [::1]:P (the same P); yields P."""
    for _ in range(50):
        with HTTPServer("127.0.0.1") as v4:
            try:
                v6 = HTTPServer("::1", v4.port)
            except OSError:
                continue
            with v6:
                yield v4.port
                return
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


def bench_second_connection(plan: Plan, resolver: BenchResolver) -> Bench:
    timeout = 1.0
    bench = Bench(
        "second_connection_blackholed_v6",
        "2nd new connection, IPv6 blackholed, 1 s",
        "Second new connection to a host whose IPv6 is blackholed (connect timeout 1 s)",
        "s",
        "[::1]:P drops SYNs, 127.0.0.1:P serves HTTP; the name answers ::1 first. Each "
        "sample: a new client makes a first connection to a fresh name (untimed), then "
        "another new client connects to the same name (timed); the second must reach "
        "127.0.0.1. Stock sync sides ran concurrently (one thread each); the rest alone, "
        "interleaved." + ANCHOR_NOTE + " For them each connect of a sample (first and "
        "second) is a new call on a new event loop.",
        {"connect_timeout": timeout},
    )
    print(f"\n{bench.title}")
    with dual_stack("blackholed-v6") as stack:
        entries = [("::1", None), ("127.0.0.1", None)]

        def sample(key: str) -> Callable[[bool], Sample]:
            def run(adapted: bool) -> Sample:
                name = resolver.name(key, entries)
                first = one_time(key, adapted, name, stack.port, timeout, True)
                second = one_time(key, adapted, name, stack.port, timeout, True)
                if not first.ok:
                    return Sample(second.value, False, f"first connection: {first.detail}")
                return second

            return run

        specs = [
            RowSpec(
                key,
                sample(key),
                plan.n(3, 1) if key in (ENGINE, *SYNC) else plan.n(7, 3),
                plan.n(7, 3),
                concurrent_stock=key in (ENGINE, *SYNC),
                targets=[adapted_at_most(0.01, "adapted <= 10 ms")],
                unavailable=anchor_unavailable(key) if key in ANCHORS else None,
            )
            for key in (ENGINE, *SYNC, *ASYNC, *ANCHORS)
        ]
        run_rows(bench, specs)
    return bench


# --------------------------------------------------------------------------- happy path


class BenchServer:
    """bench/server.py in a process of its own."""

    def __init__(self) -> None:
        self._process = subprocess.Popen(
            [sys.executable, str(HERE / "server.py")],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self._process.stdout is not None
        line = self._process.stdout.readline().split()
        if len(line) != 2:
            self.close()
            raise RuntimeError("bench/server.py did not start")
        self.http_port, self.sink_port = int(line[0]), int(line[1])

    def stats(self) -> dict[str, int]:
        connection = http.client.HTTPConnection("127.0.0.1", self.http_port, timeout=10)
        try:
            connection.request("GET", "/stats")
            result: dict[str, int] = json.load(connection.getresponse())
        finally:
            connection.close()
        return result

    def close(self) -> None:
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        if self._process.stdout is not None:
            self._process.stdout.close()


def connect_rate(adapted: bool, port: int, count: int) -> Sample:
    started = time.perf_counter()
    for _ in range(count):
        if adapted:
            connect_by_name("127.0.0.1", port, timeout=3.0).close()
        else:
            socket.create_connection(("127.0.0.1", port), timeout=3.0).close()
    return Sample(count / (time.perf_counter() - started))


def request_rate(  # noqa: PLR0917
    key: str, adapted: bool, url: str, count: int, close: bool, server: BenchServer
) -> Sample:
    """Requests per second over ``count`` sequential GETs with one client; ``close``
    makes every request use a new connection, else all share one kept-alive connection."""
    before = server.stats()
    if RUNNERS[key] == "sync":
        client = open_sync(key, adapted, 3.0)
        try:
            if not close:
                client.get(url)  # open the connection, untimed
            started = time.perf_counter()
            statuses = [client.get(url, close=close).status for _ in range(count)]
            seconds = time.perf_counter() - started
        finally:
            client.close()
    else:

        async def run() -> tuple[float, list[int]]:
            client = open_async(adapted, 3.0)
            try:
                if not close:
                    await client.get(url)
                started = time.perf_counter()
                statuses = [(await client.get(url, close=close)).status for _ in range(count)]
                return time.perf_counter() - started, statuses
            finally:
                await client.aclose()

        seconds, statuses = run_async(RUNNERS[key], run)
    after = server.stats()
    connections = after["connections"] - before["connections"]
    expected = count if close else 1
    problems = []
    if any(status != 200 for status in statuses):
        problems.append("non-200 status")
    if connections != expected:
        problems.append(f"{connections} connections, expected {expected}")
    return Sample(count / seconds, not problems, "; ".join(problems))


def concurrent_time(key: str, adapted: bool, url: str, count: int) -> Sample:
    """Seconds for ``count`` concurrent GETs on one new AsyncClient (default limits)."""

    async def run() -> tuple[float, int]:
        client = open_async(adapted, 10.0)
        good = 0

        async def one() -> None:
            nonlocal good
            if (await client.get(url)).status == 200:
                good += 1

        try:
            started = time.perf_counter()
            async with anyio.create_task_group() as group:
                for _ in range(count):
                    group.start_soon(one)
            return time.perf_counter() - started, good
        finally:
            await client.aclose()

    seconds, good = run_async(RUNNERS[key], run)
    return Sample(seconds, good == count, "" if good == count else f"{good}/{count} ok")


def bench_happy(plan: Plan, resolver: BenchResolver) -> list[Bench]:
    server = BenchServer()
    try:
        return _bench_happy(plan, resolver, server)
    finally:
        server.close()


def _bench_happy(plan: Plan, resolver: BenchResolver, server: BenchServer) -> list[Bench]:
    benches = []
    # Many short batches rather than a few long ones: a loopback connect takes some 30 µs,
    # so a passing disturbance on a shared machine moves a long batch's rate; the median
    # of many short ones shrugs it off.
    connects = plan.n(150, 100)
    bench = Bench(
        "connect_rate_literal",
        "connects/s, 127.0.0.1 literal",
        "Happy path: TCP connects per second to the 127.0.0.1 literal",
        "/s",
        f"Batches of {connects} connect+close to a sink in another process; engine "
        "(connect_by_name, timeout 3 s) vs socket.create_connection (timeout 3 s); "
        "batches alternate. One warm-up batch each, not counted.",
        {"connects_per_sample": connects},
    )
    print(f"\n{bench.title}")
    connect_rate(False, server.sink_port, connects)
    connect_rate(True, server.sink_port, connects)
    run_rows(
        bench,
        [
            RowSpec(
                ENGINE,
                lambda adapted: connect_rate(adapted, server.sink_port, connects),
                plan.n(61, 15),
                plan.n(61, 15),
                targets=[ratio_at_least(1 / 1.15, "ratio >= 0.87 (time <= 1.15x)")],
            )
        ],
    )
    benches.append(bench)
    benches.extend(bench_events(plan, server))
    # The literal benchmark above ran with the system's getaddrinfo; the rest use a name
    # (but for localhost, which the system answers from /etc/hosts).
    system = socket.getaddrinfo
    with patch_getaddrinfo(resolver):
        benches.extend(_bench_requests(plan, resolver, server, system))
    return benches


# --------------------------------------------------------------------------- events, otel

#: The engine's variants measured against the engine without a listener: (name, label,
#: target). The issue's targets: an empty listener within 1%, otel with a no-op tracer
#: provider within 5%; tracing that records has none (it shows what a span costs).
EVENT_VARIANTS = (
    ("listener", "engine + EventListener() (empty methods)", 0.99),
    ("otel-noop", "engine + otel.instrument(NoOpTracerProvider())", 0.95),
    # The global provider before one is set: a proxy tracer, asked for every span.
    ("otel-proxy", "engine + otel.instrument(), no provider set", 0.95),
    ("otel-sdk", "engine + otel.instrument(SDK provider, recording, no exporter)", None),
)


def events_connect_rate(
    variant: str | None, port: int, count: int, cpu: list[float] | None = None
) -> Sample:
    """`connect_rate`'s engine side (connect_by_name to the 127.0.0.1 literal, ``count``
    times), with an empty listener, or under connectbyname.otel (``variant``), or as it
    is (``None``). otel is instrumented for the batch only, untimed. The process's CPU
    time per connect (microseconds) is appended to ``cpu``."""
    from connectbyname import EventListener

    listener = EventListener() if variant == "listener" else None
    uninstrument: Callable[[], None] | None = None
    if variant is not None and variant.startswith("otel"):
        from opentelemetry.trace import NoOpTracerProvider

        from connectbyname import otel

        provider: Any = NoOpTracerProvider()
        if variant == "otel-sdk":
            from opentelemetry.sdk.trace import TracerProvider

            provider = TracerProvider()
        elif variant == "otel-proxy":
            provider = None  # this process never sets a global provider
        otel.instrument(provider)
        uninstrument = otel.uninstrument
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(count):
            connect_by_name("127.0.0.1", port, timeout=3.0, listener=listener).close()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
        if cpu is not None:
            cpu.append(cpu_seconds / count * 1e6)
        return Sample(count / seconds)
    finally:
        if uninstrument is not None:
            uninstrument()


def bench_events(plan: Plan, server: BenchServer) -> list[Bench]:
    """The happy-path connect rate with events and OpenTelemetry, each row against the
    engine without them, measured in turn (as the connect_rate_literal row); and, from
    the same batches, the CPU time per connect, which other processes on the machine
    move much less than the rate."""
    connects = plan.n(150, 100)
    bench = Bench(
        "connect_rate_events",
        "connects/s, events and otel",
        "Happy path with events: connects per second to the 127.0.0.1 literal, engine "
        "with a listener or connectbyname.otel vs the engine without",
        "/s",
        f"Batches of {connects} connect_by_name (timeout 3 s) + close to the sink; 'stock' "
        "is the engine without a listener or otel, 'adapted' the engine with what the "
        "row names (otel instrumented for its batches only). Batches alternate. One "
        "warm-up batch each, not counted.",
        {"connects_per_sample": connects},
    )
    cpu_bench = Bench(
        "connect_cpu_events",
        "CPU/connect, events and otel",
        "Happy path with events: CPU time per connect (this process's user + system), "
        "the same batches",
        "us",
        "The batches of the row above, timed with time.process_time: what a connect "
        "costs this process, which the load of other processes moves much less than "
        "the wall-clock rate. Ratio: the median of back-to-back pairs' ratios.",
        {"connects_per_sample": connects},
    )
    cpu: dict[tuple[str, bool], list[float]] = {}
    print(f"\n{bench.title}")
    specs = []
    for variant, text, target in EVENT_VARIANTS:
        unavailable = None
        if variant.startswith("otel"):
            module = "opentelemetry.sdk" if variant == "otel-sdk" else "opentelemetry.trace"
            try:
                importlib.import_module(module)
            except ImportError:
                unavailable = f"not available: {module} is not installed"
        if unavailable is None:
            events_connect_rate(None, server.sink_port, connects)
            events_connect_rate(variant, server.sink_port, connects)

        def sample(adapted: bool, variant: str = variant) -> Sample:
            return events_connect_rate(
                variant if adapted else None,
                server.sink_port,
                connects,
                cpu.setdefault((variant, adapted), []),
            )

        targets = []
        if target is not None:
            within = f"{(1 - target) * 100:.0f}%"
            targets.append(ratio_at_least(target, f"ratio >= {target:g} (within {within})"))
        specs.append(
            RowSpec(
                ENGINE,
                sample,
                plan.n(61, 15),
                plan.n(61, 15),
                targets=targets,
                label=f"{text} vs engine",
                unavailable=unavailable,
                param=variant,
            )
        )
    run_rows(bench, specs)
    for (variant, _, target), spec in zip(EVENT_VARIANTS, specs, strict=True):
        row: dict[str, Any] = {"client": spec.label, "key": spec.key, "param": variant}
        if spec.unavailable:
            cpu_bench.rows.append({**row, "unavailable": spec.unavailable})
            continue
        stock, adapted = cpu.get((variant, False), []), cpu.get((variant, True), [])
        # The sides were sampled in turn, pair by pair (see run_rows).
        ratio = statistics.median(a / s for a, s in zip(adapted, stock, strict=True))
        limit = None if target is None else 1 / target
        row.update(
            stock=stats([Sample(v) for v in stock]),
            adapted=stats([Sample(v) for v in adapted]),
            ratio=ratio,
            paired=True,
            concurrent={"stock": False, "adapted": False},
            targets=[]
            if limit is None
            else [
                {
                    "target": f"ratio <= {limit:.3f} (within {(1 - target) * 100:.0f}%)",
                    "met": ratio <= limit,
                }
            ],
        )
        cpu_bench.rows.append(row)
        print(
            f"    {'CPU per connect [' + variant + ']':<58} "
            f"{_cell(row['stock'], 'us'):>24}  {_cell(row['adapted'], 'us'):>24}"
        )
    return [bench, cpu_bench]


def _bench_requests(
    plan: Plan, resolver: BenchResolver, server: BenchServer, system: GetAddrInfo
) -> list[Bench]:
    benches = []
    name = resolver.name("happy", [("127.0.0.1", None)])
    urls = {
        "name": f"http://{name}:{server.http_port}/",
        "literal": f"http://127.0.0.1:{server.http_port}/",
        "localhost": f"http://localhost:{server.http_port}/",
    }
    wheres = {
        "name": f"http://{name.split('-')[0]}-N.bench.test:P/ (a name injected to resolve "
        "to 127.0.0.1 only)",
        "literal": "http://127.0.0.1:P/ (an IP literal: no lookup, on either side)",
        "localhost": "http://localhost:P/ with the system's getaddrinfo, which answers it "
        "from /etc/hosts (127.0.0.1) on both sides",
    }
    # The localhost row must never send a DNS query: it runs only where the system
    # answers localhost from the hosts file alone.
    local = cannot_hang(system, "localhost")
    url = urls["name"]
    for close, kind, count, target, bench_id, short, title in (
        (
            True,
            "name",
            plan.n(150, 60),
            ratio_at_least(0.95, "ratio >= 0.95"),
            "request_rate_new_connection",
            "requests/s, new connection each",
            "Happy path: requests per second, a new connection per request",
        ),
        (
            True,
            "literal",
            plan.n(150, 60),
            ratio_at_least(0.95, "ratio >= 0.95"),
            "request_rate_new_connection_literal",
            "requests/s, new connection each, 127.0.0.1 URL",
            "Happy path: requests per second, a new connection per request to the "
            "127.0.0.1 literal (no name to resolve)",
        ),
        (
            True,
            "localhost",
            plan.n(150, 60),
            ratio_at_least(0.95, "ratio >= 0.95"),
            "request_rate_new_connection_localhost",
            "requests/s, new connection each, localhost URL",
            "Happy path: requests per second, a new connection per request to "
            "localhost (answered from /etc/hosts by the system's resolver)",
        ),
        (
            False,
            "name",
            plan.n(300, 120),
            ratio_at_least(0.98, "ratio >= 0.98"),
            "request_rate_keepalive",
            "requests/s, keep-alive",
            "Happy path: requests per second on one kept-alive connection",
        ),
    ):
        target_url, where = urls[kind], wheres[kind]
        bench = Bench(
            bench_id,
            short,
            title,
            "/s",
            f"{count} sequential GETs of {where} per sample, against a small asyncio "
            "server in another process"
            + (" that closes after each response (Connection: close)." if close else ".")
            + " The server's connection count is checked for every sample. One warm-up "
            "sample each, not counted; stock and adapted interleaved.",
            {"requests_per_sample": count},
        )
        print(f"\n{bench.title}")
        unavailable = None
        if kind == "localhost" and not local:
            unavailable = (
                "not measurable here: this machine's resolver does not answer localhost "
                "from /etc/hosts alone, and the benchmark sends no DNS query"
            )
        lookups = patch_getaddrinfo(system) if kind == "localhost" else contextlib.nullcontext()
        with lookups:
            specs = []
            for key in (*SYNC, *ASYNC):
                if unavailable is None:
                    with contextlib.suppress(Unavailable):
                        check_available(key, True)
                        for adapted in (False, True):
                            request_rate(
                                key, adapted, target_url, max(10, count // 10), close, server
                            )

                def sample(
                    adapted: bool,
                    key: str = key,
                    close: bool = close,
                    count: int = count,
                    target_url: str = target_url,
                ) -> Sample:
                    return request_rate(key, adapted, target_url, count, close, server)

                specs.append(
                    RowSpec(
                        key,
                        sample,
                        plan.n(9, 3),
                        plan.n(9, 3),
                        targets=[target],
                        unavailable=unavailable,
                    )
                )
            run_rows(bench, specs)
        benches.append(bench)

    count = 500
    bench = Bench(
        "concurrent_500",
        "500 concurrent async requests",
        "500 concurrent async requests on one client",
        "s",
        f"{count} GETs started at once on one new httpx AsyncClient (default limits: 100 "
        "connections) to the server in another process; seconds until all are done.",
        {"requests": count},
    )
    print(f"\n{bench.title}")
    specs = [
        RowSpec(
            key,
            lambda adapted, key=key: concurrent_time(key, adapted, url, count),
            plan.n(5, 2),
            plan.n(5, 2),
            targets=[ratio_at_most(1.05, "ratio <= 1.05")],
        )
        for key in ASYNC
    ]
    run_rows(bench, specs)
    benches.append(bench)
    return benches


# --------------------------------------------------------------------------- output


def _fmt(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "us":  # microseconds (lower is better)
        return f"{value:.1f} us"
    if value < 1:
        return f"{value * 1000:.1f} ms"
    return f"{value:.3f} s"


def _cell(s: dict[str, Any] | None, unit: str) -> str:
    if not s:
        return "-"
    text = _fmt(s["median"], unit)
    if s["n"] > 1:
        low, high = (s["q1"], s["q3"]) if s["n"] >= 4 else (s["min"], s["max"])
        text += f" [{_fmt(low, unit)}..{_fmt(high, unit)}]"
    text += f" n={s['n']}"
    if s["invalid"]:
        text += f" ({len(s['invalid'])} INVALID)"
    return text


def _ratio(value: float) -> str:
    return f"{value:.3f}" if value >= 0.01 else f"{value:.2g}"


def markdown(results: dict[str, Any]) -> str:
    machine = results["machine"]
    lines = [
        "# connectbyname benchmarks",
        "",
        f"Run {results['started']} on {machine['cpu']} ({machine['cores']} cores), "
        f"{machine['system']}, Python {machine['python']}; "
        + ", ".join(f"{k} {v}" for k, v in machine["versions"].items())
        + f". Command: `{results['command']}` ({results['duration']:.0f} s).",
        "",
        "Medians; in brackets the interquartile range (min..max when fewer than 4 samples); "
        "n samples. Ratio (adapted/stock): for rows whose two sides were measured in turn, "
        "the median of the ratios of back-to-back pairs (one round stock first, the next "
        "adapted first), which a machine whose speed drifts moves less than the ratio of "
        "the two medians; for rows measured concurrently, adapted median / stock median.",
        "",
        "| benchmark | client | stock | adapted | adapted/stock | target | met |",
        "|---|---|---|---|---|---|---|",
    ]
    notes = []
    for number, bench in enumerate(results["benchmarks"], 1):
        notes.append(f"{number}. **{bench['title']}**: {bench['note']}")
        for row in bench["rows"]:
            if "unavailable" in row:
                lines.append(
                    f"| {bench['short']} [{number}] | {row['client']} | n/a | n/a | | "
                    f"{row['unavailable']} | |"
                )
                continue
            ratio = "" if row["ratio"] is None else _ratio(row["ratio"])
            targets = "; ".join(t["target"] for t in row["targets"])
            met = "; ".join("yes" if t["met"] else "**no**" for t in row["targets"])
            lines.append(
                f"| {bench['short']} [{number}] | {row['client']} | "
                f"{_cell(row['stock'], bench['unit'])} | {_cell(row['adapted'], bench['unit'])} "
                f"| {ratio} | {targets} | {met} |"
            )
    return "\n".join([*lines, "", *notes, ""])


def chart(results: dict[str, Any], path: Path) -> bool:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (the bench extra): no chart")
        return False
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    benches = {b["id"]: b for b in results["benchmarks"]}
    figure, (left, right) = plt.subplots(1, 2, figsize=(14, 5.5))
    first = benches.get("first_response_blackholed_v6")
    if first:
        rows = [r for r in first["rows"] if "unavailable" not in r]
        names = [r["client"].replace("engine: ", "").replace(" vs ", "\nvs ") for r in rows]
        xs = range(len(rows))
        for offset, side, color in ((-0.2, "stock", "#c44e52"), (0.2, "adapted", "#4c72b0")):
            medians = [r[side]["median"] for r in rows]
            low = [r[side]["median"] - r[side]["min"] for r in rows]
            high = [r[side]["max"] - r[side]["median"] for r in rows]
            bars = left.bar(
                [x + offset for x in xs],
                medians,
                0.4,
                yerr=[low, high],
                capsize=3,
                color=color,
                label=side if side == "stock" else "connectbyname",
            )
            left.bar_label(
                bars, labels=[_fmt(m, "s") for m in medians], fontsize=7, padding=2, rotation=90
            )
        left.set_ylim(0, 1.2 * max(r["stock"]["max"] for r in rows))
        left.set_xticks(list(xs), names, fontsize=7, rotation=20, ha="right")
        left.set_ylabel("seconds, median; whiskers min..max")
        left.set_title(first["title"], fontsize=10)
        left.legend()
    scale = benches.get("scale_dead_addresses")
    if scale:
        by_key: dict[str, list[dict[str, Any]]] = {}
        for row in scale["rows"]:
            if "unavailable" not in row:
                by_key.setdefault(row["key"], []).append(row)
        colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
        markers = "osD^v<>"
        for i, (key, rows) in enumerate(by_key.items()):
            ns = [r["param"] for r in rows]
            short = "engine" if key == ENGINE else label(key)
            stock_name = "create_connection" if key == ENGINE else f"{short} stock"
            for side, style, name in (
                ("stock", "--", stock_name),
                ("adapted", "-", f"{short} + connectbyname"),
            ):
                right.plot(
                    ns,
                    [r[side]["median"] for r in rows],
                    style,
                    marker=markers[i % len(markers)],
                    markersize=9 - i,
                    color=colors[i % len(colors)],
                    label=name,
                )
        params = scale["params"]
        right.set_xticks(list(params["dead"]))
        right.set_xlabel("dead addresses before the good one")
        right.set_ylabel("seconds to connect, median")
        right.set_title(
            f"{scale['title']}\n(stock: {params['stock_connect_timeout']:g} s per address; "
            f"adapted: {params['adapted_connect_timeout']:g} s in all)",
            fontsize=10,
        )
        right.legend(fontsize=7)
    figure.suptitle(f"connectbyname, {results['started']}, {results['machine']['cpu']}", fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def machine() -> dict[str, Any]:
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    versions = {}
    for package in (
        "connectbyname",
        "urllib3",
        "requests",
        "httpx",
        "httpcore",
        "anyio",
        "trio",
        "aiohappyeyeballs",
    ):
        with contextlib.suppress(metadata.PackageNotFoundError):
            versions[package] = metadata.version(package)
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "versions": versions,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer samples (about 90 s)")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="output directory")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    plan = Plan(args.quick)
    started = time.perf_counter()
    results: dict[str, Any] = {
        "started": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python bench/run.py" + (" --quick" if args.quick else ""),
        "quick": args.quick,
        "machine": machine(),
        "benchmarks": [],
    }
    print(f"{'':<62}{'stock':>24}  {'adapted':>24}")
    resolver = BenchResolver()
    benches: list[Bench] = []
    with patch_getaddrinfo(resolver):
        benches.append(bench_first_response(plan, resolver))
        benches.append(bench_all_dead(plan, resolver))
        benches.append(bench_slow_aaaa(plan, resolver))
        benches.append(bench_second_connection(plan, resolver))
        benches.append(bench_scale(plan, resolver))
    benches.extend(bench_happy(plan, resolver))
    results["duration"] = time.perf_counter() - started
    results["benchmarks"] = [
        {
            "id": b.id,
            "short": b.short,
            "title": b.title,
            "unit": b.unit,
            "note": b.note,
            "params": b.params,
            "rows": b.rows,
        }
        for b in benches
    ]
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "results.md").write_text(markdown(results))
    drew = chart(results, args.out / "chart.png")
    print(f"\nwrote {args.out / 'results.json'}, {args.out / 'results.md'}", end="")
    print(f", {args.out / 'chart.png'}" if drew else "")
    print(f"done in {results['duration']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
