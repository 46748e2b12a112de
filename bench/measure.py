"""The measuring half of the benchmark suite: what ``bench/run.py`` runs *inside* the
lab's network namespaces, one process per benchmark (``Namespace.call``), stock and
adapted clients alike, so that both resolve names through the lab's DNS server (stock
ones with glibc's ``getaddrinfo``, the engine and adapters with the engine's own
resolver). Each benchmark comes back as JSON: every sample, medians, ratios, targets.

Nothing here runs at import time: ``run.py`` passes these functions by reference.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import http.client
import importlib
import json
import os
import socket
import statistics
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio
import anyio.abc
import tlsclients

from connectbyname import TimedOutError, aconnect_by_name, connect_by_name
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

SYNC = ("urllib3", "requests", "httpx")
ASYNC = ("httpx-asyncio", "httpx-trio")
CLIENTS = (*SYNC, *ASYNC)
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
    "happy_eyeballs_delay=0.25); each of them resolves with glibc's getaddrinfo on a "
    "thread. Adapted: connectbyname.aconnect_by_name(host, port, attempt_delay=0.25) on "
    "the same event loop. Each call is bounded by anyio.fail_after(connect timeout)."
)
#: How every row resolves: said once in each note.
LAB_NOTE = (
    " Every name is resolved through the lab's DNS server (its own process, inside the "
    "namespace): stock clients with glibc's getaddrinfo, the engine and the adapters "
    "with the engine's own resolver."
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


class Names:
    """Fresh names from a pool the lab's DNS server answers (``template`` with ``{}``
    for 1..count): every call gives one this process has not used yet, so that neither
    the engine's TTL cache nor its connection history knows it."""

    def __init__(self, template: str, count: int) -> None:
        self.template = template
        self.count = count
        self._next = 0
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self._next += 1
            if self._next > self.count:
                raise RuntimeError(f"the lab has only {self.count} names {self.template}")
            return self.template.format(self._next)

    @classmethod
    def of(cls, spec: Sequence[Any]) -> Names:
        return cls(str(spec[0]), int(spec[1]))


# --------------------------------------------------------------------------- samples


@dataclass
class Sample:
    value: float  # seconds, a rate per second or a count (see Bench.unit)
    ok: bool = True
    detail: str = ""
    info: dict[str, Any] | None = None  # more about the sample, kept in results.json


def client_time(  # noqa: PLR0917
    key: str, adapted: bool, url: str, timeout: float, expect_ok: bool, expect: str | None
) -> Sample:
    """Seconds for one GET with a new client (set-up untimed); a response must come
    from ``expect`` unless it is None."""
    row = fetch(key, adapted, url, timeout)
    if not row.available:
        raise Unavailable(row.outcome)
    assert row.seconds is not None
    ok = row.outcome == "HTTP 200"
    if ok and expect is not None and row.remote is not None and row.remote[0] != expect:
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
    key: str, adapted: bool, name: str, port: int, timeout: float, expect: str | None
) -> Sample:
    """Seconds until anchor ``key`` (stock) or aconnect_by_name (adapted) has connected,
    on a fresh event loop; the connection must reach ``expect`` unless it is None."""

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
    if expect is not None and remote is not None and remote[0] != expect:
        return Sample(seconds, False, f"reached {remote}")
    return Sample(seconds)


def one_time(  # noqa: PLR0917
    key: str,
    adapted: bool,
    name: str,
    port: int,
    timeout: float,
    ok: bool,
    expect: str | None = "127.0.0.1",
) -> Sample:
    if key == ENGINE:
        return engine_time(adapted, name, port, timeout, ok)
    if key in ANCHORS:
        assert ok, "the anchor rows only measure connections that succeed"
        return anchor_time(key, adapted, name, port, timeout, expect)
    return client_time(key, adapted, f"http://{name}:{port}/", timeout, ok, expect)


# --------------------------------------------------------------------------- targets


@dataclass
class Target:
    text: str
    check: Callable[[dict[str, Any], float | None], bool]  # (adapted stats, ratio) -> met


def ratio_at_most(limit: float, text: str | None = None) -> Target:
    return Target(text or f"ratio <= {limit:g}", lambda _a, r: r is not None and r <= limit)


def ratio_at_least(limit: float, text: str | None = None) -> Target:
    return Target(text or f"ratio >= {limit:g}", lambda _a, r: r is not None and r >= limit)


def adapted_at_most(limit: float, text: str) -> Target:
    """The adapted median at most ``limit``."""
    return Target(text, lambda a, _r: a["median"] <= limit)


def adapted_every(limit: float, text: str) -> Target:
    """Every adapted sample valid and at most ``limit`` (not just the median)."""
    return Target(text, lambda a, _r: not a["invalid"] and a["max"] <= limit)


# --------------------------------------------------------------------------- rows


@dataclass
class RowSpec:
    key: str
    sample: Callable[[bool], Sample] | None  # adapted -> one sample
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
    unit: str  # "s", "us" (lower is better), "/s" (higher is better) or "n" (a count)
    note: str
    params: dict[str, object] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "short": self.short,
            "title": self.title,
            "unit": self.unit,
            "note": self.note,
            "params": self.params,
            "rows": self.rows,
        }


def stats(samples: Sequence[Sample]) -> dict[str, Any] | None:
    values = [s.value for s in samples]
    if not values:
        return None
    ordered = sorted(values)
    if len(values) >= 2:
        q1, _, q3 = statistics.quantiles(values, n=4, method="inclusive")
    else:
        q1 = q3 = values[0]
    result = {
        "n": len(values),
        "median": statistics.median(values),
        "q1": q1,
        "q3": q3,
        "min": ordered[0],
        "max": ordered[-1],
        "invalid": [s.detail or "unexpected outcome" for s in samples if not s.ok],
        "samples": values,
    }
    if any(s.info for s in samples):
        result["info"] = [s.info for s in samples]
    return result


def make_row(
    bench: Bench, spec: RowSpec, stock_samples: list[Sample], adapted_samples: list[Sample]
) -> dict[str, Any]:
    """One row of ``bench``: both sides' statistics, the ratio and the targets."""
    row: dict[str, Any] = {"client": spec.label or label(spec.key), "key": spec.key}
    if spec.param is not None:
        row["param"] = spec.param
    stock, adapted = stats(stock_samples), stats(adapted_samples)
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
    if bench.unit == "n":
        ratio, paired = None, False  # a count: the target says what matters
    row["ratio"], row["paired"] = ratio, paired
    row["targets"] = [
        {"target": t.text, "met": bool(adapted and t.check(adapted, ratio))} for t in spec.targets
    ]
    row["concurrent"] = {"stock": spec.concurrent_stock, "adapted": spec.concurrent_adapted}
    shown = spec.label or label(spec.key)
    print(f"    {shown[:58]:<58} {_cell(stock, bench.unit):>28}  {_cell(adapted, bench.unit):>28}")
    sys.stdout.flush()
    return row


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
        assert spec.sample is not None
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
                assert spec.sample is not None
                results[index, adapted].append(spec.sample(adapted))
    for index, spec in enumerate(specs):
        if index in errors:
            row: dict[str, object] = {"client": spec.label or label(spec.key), "key": spec.key}
            if spec.param is not None:
                row["param"] = spec.param
            row["unavailable"] = errors[index]
            bench.rows.append(row)
            continue
        bench.rows.append(make_row(bench, spec, results[index, False], results[index, True]))


@dataclass
class Plan:
    quick: bool

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full


# --------------------------------------------------------------------------- timeouts


def bench_first_response(plan: Plan, lab: dict[str, Any]) -> Bench:
    timeout = 3.0
    bench = Bench(
        "first_response_blackholed_v6",
        "first response, IPv6 blackholed, 3 s",
        "Time to first response, IPv6 blackholed first (connect timeout 3 s)",
        "s",
        "[::1]:P drops SYNs, 127.0.0.1:P serves HTTP; each sample's name (a fresh one) "
        "has AAAA ::1 and A 127.0.0.1, TTL 300. Stock sync clients (and "
        "socket.create_connection) ran concurrently, one thread each, since they wait out "
        "their timeout; everything else ran alone, stock and adapted interleaved. The "
        "engine row times the TCP connect only." + LAB_NOTE,
        {"connect_timeout": timeout, "attempt_delay": ATTEMPT_DELAY},
    )
    print(f"\n{bench.title}")
    names, port = Names.of(lab["names"]), lab["port"]

    def sample(key: str) -> Callable[[bool], Sample]:
        return lambda adapted: one_time(key, adapted, names(), port, timeout, True)

    ten_x = ratio_at_most(0.1, "ratio <= 0.1 (10x faster)")
    delay_100 = adapted_at_most(ATTEMPT_DELAY + 0.1, "adapted <= attempt delay + 100 ms")
    specs = [
        RowSpec(
            ENGINE,
            sample(ENGINE),
            plan.n(3, 1),
            plan.n(11, 5),
            concurrent_stock=True,
            targets=[adapted_at_most(ATTEMPT_DELAY + 0.05, "adapted <= attempt delay + 50 ms")],
        ),
        *[
            RowSpec(
                key,
                sample(key),
                plan.n(3, 1),
                plan.n(11, 5),
                concurrent_stock=True,
                targets=[ten_x, delay_100] if key != "httpx" else [ten_x],
            )
            for key in SYNC
        ],
        *[
            RowSpec(
                key,
                sample(key),
                plan.n(11, 5),
                plan.n(11, 5),
                targets=[ratio_at_most(1.0, "ratio <= 1 (no slower than stock)")],
            )
            for key in ASYNC
        ],
    ]
    run_rows(bench, specs)
    return bench


def tls_time(  # noqa: PLR0917
    key: str, adapted: bool, url: str, timeout: float, ca_file: str, expect: str | None
) -> Sample:
    """Seconds for one HTTPS GET with a new client (for the engine, one TLS connect),
    to the response or to the error. An adapted sample must succeed, reaching
    ``expect`` unless it is None; a stock one counts whatever it did (the outcome is
    kept in the sample's info)."""
    done = tlsclients.fetch(key, adapted, url, timeout, ca_file)
    outcome = done.error or ("TLS connected" if key == tlsclients.ENGINE else f"HTTP {done.status}")
    info = {"outcome": outcome, "remote": done.remote}
    if not adapted:
        return Sample(done.seconds, True, "", info)
    if done.status is None:
        return Sample(done.seconds, False, outcome, info)
    if expect is not None and done.remote != expect:
        return Sample(done.seconds, False, f"reached {done.remote}", info)
    return Sample(done.seconds, True, "", info)


def _outcomes(bench: Bench) -> str:
    """Each row's stock outcomes, counted: "urllib3: ReadTimeoutError (3)"."""
    parts = []
    for row in bench.rows:
        infos = (row.get("stock") or {}).get("info") or []
        counts: dict[str, int] = {}
        for info in infos:
            outcome = str(info["outcome"])
            counts[outcome] = counts.get(outcome, 0) + 1
        if counts:
            shown = ", ".join(f"{text} ({n})" for text, n in counts.items())
            parts.append(f"{row['client']}: {shown}")
    return "; ".join(parts)


def bench_tls_mute(plan: Plan, lab: dict[str, Any]) -> Bench:
    timeout = 3.0
    port, ca = lab["port"], lab["ca"]
    bench = Bench(
        "first_response_tls_mute_v6",
        "first HTTPS response, IPv6 mute after TCP, 3 s",
        "Time to first HTTPS response, IPv6 accepts TCP and never answers TLS (connect "
        "timeout 3 s)",
        "s",
        f"[::1]:{port} accepts TCP and never sends a byte (a ClientHello goes "
        f"unanswered: HTTPServer(handshake='mute')), 127.0.0.1:{port} serves HTTPS (the "
        "small asyncio server, bench/server.py, in another process) with a certificate "
        "from the lab's own CA, which every client is given (urllib3 "
        "ca_certs=, requests verify=, httpx verify=ssl.create_default_context(cafile=)); "
        f"each sample's name N (a fresh one) has AAAA ::1 and A 127.0.0.1, TTL 300; URL "
        f"https://N/ (port {port}). The engine row times connect_by_name(N, {port}, "
        "ssl_context=) against socket.create_connection + ssl_context.wrap_socket (the "
        "connect timeout left on the socket for the handshake): TCP and TLS, no HTTP. "
        "Every stock side fails, as its connect goes to ::1 and the handshake waits out "
        "the timeout: its time is the time to that failure (outcomes below). Stock sides "
        "ran concurrently, one thread each (they wait out their timeout); adapted sides "
        "alone, one after another; every adapted response must come from 127.0.0.1." + LAB_NOTE,
        {"connect_timeout": timeout, "attempt_delay": ATTEMPT_DELAY},
    )
    print(f"\n{bench.title}")
    names = Names.of(lab["names"])

    def sample(key: str) -> Callable[[bool], Sample]:
        return lambda adapted: tls_time(
            key, adapted, f"https://{names()}:{port}/", timeout, ca, "127.0.0.1"
        )

    target = adapted_at_most(ATTEMPT_DELAY + 0.1, "adapted <= attempt delay + 100 ms")
    specs = [
        RowSpec(
            key,
            sample(key),
            plan.n(3, 1),
            plan.n(11, 5),
            concurrent_stock=True,
            targets=[target],
            label=tlsclients.LABELS[key],
        )
        for key in (tlsclients.ENGINE, *tlsclients.CLIENTS)
    ]
    run_rows(bench, specs)
    outcomes = _outcomes(bench)
    if outcomes:
        bench.note += f" Stock outcomes: {outcomes}."
    return bench


def bench_all_dead(plan: Plan, lab: dict[str, Any]) -> Bench:
    timeout = 1.0
    bench = Bench(
        "failure_all_blackholed",
        "failure, 3 addresses blackholed, 1 s",
        "Time to failure, three addresses all blackholed (connect timeout 1 s)",
        "s",
        "Each sample's name (a fresh one) has AAAA ::1 and A 127.0.0.2 and 127.0.0.3, TTL "
        "300; port P drops SYNs on all three. All rows ran concurrently, one thread per "
        "client and side, as every sample waits out a timeout." + LAB_NOTE,
        {"connect_timeout": timeout, "addresses": 3},
    )
    print(f"\n{bench.title}")
    names, port = Names.of(lab["names"]), lab["port"]

    def sample(key: str) -> Callable[[bool], Sample]:
        return lambda adapted: one_time(key, adapted, names(), port, timeout, False)

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
        )
        for key in (ENGINE, *CLIENTS)
    ]
    run_rows(bench, specs)
    return bench


def bench_second_connection(plan: Plan, lab: dict[str, Any]) -> Bench:
    timeout = 1.0
    bench = Bench(
        "second_connection_blackholed_v6",
        "2nd new connection, IPv6 blackholed, 1 s",
        "Second new connection to a host whose IPv6 is blackholed (connect timeout 1 s)",
        "s",
        "[::1]:P drops SYNs, 127.0.0.1:P serves HTTP; each sample's name (a fresh one) "
        "has AAAA ::1 and A 127.0.0.1, TTL 300. Each sample: a new client makes a first "
        "connection to the name (untimed), then another new client connects to the same "
        "name (timed); the second must reach 127.0.0.1. The engine's second lookup comes "
        "from its TTL cache, stock's goes to the server again. Stock sync sides ran "
        "concurrently (one thread each); the rest alone, interleaved."
        + ANCHOR_NOTE
        + " For them each connect of a sample (first and second) is a new call on a new "
        "event loop." + LAB_NOTE,
        {"connect_timeout": timeout},
    )
    print(f"\n{bench.title}")
    names, port = Names.of(lab["names"]), lab["port"]

    def sample(key: str) -> Callable[[bool], Sample]:
        def run(adapted: bool) -> Sample:
            name = names()
            first = one_time(key, adapted, name, port, timeout, True)
            second = one_time(key, adapted, name, port, timeout, True)
            if not first.ok:
                return Sample(second.value, False, f"first connection: {first.detail}")
            return second

        return run

    specs = [
        RowSpec(
            key,
            sample(key),
            plan.n(3, 1) if key in (ENGINE, *SYNC) else plan.n(5, 3),
            plan.n(5, 3),
            concurrent_stock=key in (ENGINE, *SYNC),
            targets=[adapted_at_most(0.01, "adapted <= 10 ms")],
            unavailable=anchor_unavailable(key) if key in ANCHORS else None,
        )
        for key in (ENGINE, *CLIENTS, *ANCHORS)
    ]
    run_rows(bench, specs)
    return bench


def bench_scale(plan: Plan, lab: dict[str, Any]) -> Bench:
    stock_timeout, adapted_timeout = 0.5, 3.0
    counts = tuple(lab["counts"])
    good = lab["good"]
    bench = Bench(
        "scale_dead_addresses",
        "connect with N dead addresses first",
        "Time to connect with N dead addresses before the good one",
        "s",
        f"Each sample's name (a fresh one) has N A records 127.0.0.2.. (port P drops "
        f"SYNs there), then {good} (HTTP on P, an address on lo), TTL 300. The lab's DNS "
        "server here keeps the records in the scripted order (it shuffles them "
        "elsewhere, as many servers do); glibc sorts 127/8 (link-local scope) before "
        f"{good} (RFC 6724 rule 8) anyway. Stock sync clients and "
        f"socket.create_connection get a connect timeout of {stock_timeout:g} s (they "
        "apply it per address; short, so the run stays bounded); stock httpx async "
        "(which races and applies it to the whole connect) and adapted clients "
        f"{adapted_timeout:g} s. Stock sides ran concurrently (one thread per client), "
        "adapted sides too." + LAB_NOTE,
        {
            "stock_connect_timeout": stock_timeout,
            "adapted_connect_timeout": adapted_timeout,
            "dead": list(counts),
            "attempt_delay": ATTEMPT_DELAY,
        },
    )
    print(f"\n{bench.title}")
    port = lab["port"]
    pools = {int(n): Names.of(spec) for n, spec in lab["names"].items()}
    keys = (ENGINE, *CLIENTS) if not plan.quick else (ENGINE, "urllib3", "httpx-trio")
    specs = []
    for key in keys:
        for n in counts:

            def sample(adapted: bool, key: str = key, names: Names = pools[n]) -> Sample:
                # Stock httpx async already spends its connect timeout on the whole
                # race, so it gets the adapted budget; the per-address clients get
                # the short one.
                per_address = not adapted and key not in ASYNC
                timeout = stock_timeout if per_address else adapted_timeout
                return one_time(key, adapted, names(), port, timeout, True, good)

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
                )
            )
    # One thread per row would start 4x as many; run the counts one after another.
    for n in counts:
        run_rows(bench, [s for s in specs if s.param == n])
    return bench


def bench_slow_aaaa(plan: Plan, lab: dict[str, Any]) -> Bench:
    delay, timeout = lab["delay"], 3.0
    bench = Bench(
        "first_response_slow_aaaa",
        f"first response, AAAA {delay:g} s late",
        f"Time to first response, AAAA answer {delay:g} s late, both families working",
        "s",
        f"HTTP servers on [::1]:P and 127.0.0.1:P; each sample's name (a fresh one) has "
        f"A 127.0.0.1, answered at once, and AAAA ::1, answered {delay:g} s late, TTL "
        "300. Stock clients ask both families in one getaddrinfo call, which waits for "
        "both answers. Rows ran alone, stock and adapted interleaved. A response from "
        "either family counts." + ANCHOR_NOTE + LAB_NOTE,
        {"aaaa_delay": delay, "connect_timeout": timeout},
    )
    print(f"\n{bench.title}")
    names, port = Names.of(lab["names"]), lab["port"]

    def sample(key: str) -> Callable[[bool], Sample]:
        return lambda adapted: one_time(key, adapted, names(), port, timeout, True, None)

    specs = [
        RowSpec(
            key,
            sample(key),
            plan.n(7, 3),
            plan.n(7, 3),
            targets=[adapted_at_most(0.06, "adapted <= 60 ms")],
            unavailable=anchor_unavailable(key) if key in ANCHORS else None,
        )
        for key in (ENGINE, *CLIENTS, *ANCHORS)
    ]
    run_rows(bench, specs)
    return bench


def bench_https_hints(plan: Plan, lab: dict[str, Any]) -> Bench:
    delay, timeout = lab["delay"], 3.0
    port, ca = lab["tls_port"], lab["ca"]
    bench = Bench(
        "first_response_https_hints",
        f"first HTTPS response, A+AAAA {delay:g} s late, HTTPS hints",
        f"Time to first HTTPS response, A and AAAA {delay:g} s late, HTTPS record with "
        "address hints on time",
        "s",
        f"HTTPS on [::1]:{port} and 127.0.0.1:{port} (bench/server.py, in another "
        "process), with a certificate from the lab's own CA, which every client is "
        "given; each sample's name N (a fresh one) "
        f"has A 127.0.0.1 and AAAA ::1, both answered {delay:g} s late, and an HTTPS "
        'record answered at once, "1 . ipv4hint=127.0.0.1 ipv6hint=::1", TTL 300; URL '
        f"https://N/ (port {port}, so the record is N's own, RFC 9460 section 9.1). The "
        "adapters ask for the HTTPS record for every https:// URL, and connect_by_name "
        f"with an ssl_context on port {port} (the engine row: TCP and TLS, against "
        "socket.create_connection + wrap_socket, no HTTP); for an http:// URL nothing "
        "asks for it, by design, and the engine waits for the addresses as stock does. "
        "Stock clients never ask for HTTPS records; a client that uses the hints can "
        "connect before the address answers come. Rows ran alone, stock and adapted "
        "interleaved. A response from either family counts." + LAB_NOTE,
        {"address_delay": delay, "connect_timeout": timeout},
    )
    print(f"\n{bench.title}")
    names = Names.of(lab["names"])

    def sample(key: str) -> Callable[[bool], Sample]:
        return lambda adapted: tls_time(
            key, adapted, f"https://{names()}:{port}/", timeout, ca, None
        )

    specs = [
        RowSpec(
            key,
            sample(key),
            plan.n(7, 3),
            plan.n(7, 3),
            targets=[adapted_at_most(0.06, "adapted <= 60 ms")],
            label=tlsclients.LABELS[key],
        )
        for key in (tlsclients.ENGINE, *tlsclients.CLIENTS)
    ]
    run_rows(bench, specs)
    return bench


# --------------------------------------------------------------------------- dead DNS


def _fd_table() -> dict[int, str]:
    table = {}
    for name in os.listdir("/proc/self/fd"):
        try:
            table[int(name)] = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue  # the descriptor listdir itself used
    return table


def _causes(error: BaseException) -> Iterator[BaseException]:
    """``error`` and everything it was raised from or wraps (urllib3's ``reason``)."""
    seen: set[int] = set()
    todo = [error]
    while todo:
        current = todo.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        for linked in (current.__cause__, current.__context__, getattr(current, "reason", None)):
            if isinstance(linked, BaseException):
                todo.append(linked)
        todo.extend(arg for arg in current.args if isinstance(arg, BaseException))


def _in_lookup(ident: int | None) -> bool:
    """Whether thread ``ident`` is inside a ``getaddrinfo`` call right now."""
    frame = sys._current_frames().get(ident) if ident is not None else None
    while frame is not None:
        if frame.f_code.co_name == "getaddrinfo":
            return True
        frame = frame.f_back
    return False


class _Leftovers:
    """What a call left running: threads started since ``start`` that are still alive,
    and threads of before (a pool's) that are now inside a ``getaddrinfo`` call and
    were not then; and descriptors opened since ``start`` that are still open."""

    def start(self) -> None:
        gc.collect()
        self.threads = {thread.ident for thread in threading.enumerate()}
        self.looking_up = {ident for ident in self.threads if _in_lookup(ident)}
        self.fds = _fd_table()

    def now(self) -> dict[str, Any]:
        gc.collect()
        threads = [
            thread.name
            for thread in threading.enumerate()
            if thread is not threading.current_thread()
            and thread.is_alive()
            and (
                thread.ident not in self.threads
                or (thread.ident not in self.looking_up and _in_lookup(thread.ident))
            )
        ]
        fds = sorted(target for fd, target in _fd_table().items() if self.fds.get(fd) != target)
        return {"threads": threads, "fds": fds}


def _failing_call(
    key: str, adapted: bool, url: str, timeout: float
) -> tuple[float, BaseException | None, dict[str, Any]]:
    """One request to ``url`` (for the engine row, a connect to its host and port) with
    a new client made first: the seconds from the request to its failure (the client's
    set-up untimed), the error, and what the call left behind (`_Leftovers`) once the
    client was closed."""
    parts = urlsplit(url)
    host, port = parts.hostname or "", parts.port or 80
    leftovers = _Leftovers()
    if RUNNERS.get(key, "sync") == "sync":
        leftovers.start()
        client = None if key == ENGINE else open_sync(key, adapted, timeout)
        error: BaseException | None = None
        started = time.perf_counter()
        try:
            if client is not None:
                client.get(url)
            elif adapted:
                connect_by_name(host, port, timeout=timeout).close()
            else:
                socket.create_connection((host, port), timeout=timeout).close()
        except Exception as exc:
            error = exc
        seconds = time.perf_counter() - started
        if client is not None:
            client.close()
        return seconds, error, leftovers.now()

    async def run() -> tuple[float, BaseException | None, dict[str, Any]]:
        leftovers.start()
        client = open_async(adapted, timeout)
        error: BaseException | None = None
        started = time.perf_counter()
        try:
            await client.get(url)
        except Exception as exc:
            error = exc
        seconds = time.perf_counter() - started
        await client.aclose()
        # Still inside the event loop: what the failed call left behind.
        return seconds, error, leftovers.now()

    begun = time.perf_counter()
    seconds, error, left = run_async(RUNNERS[key], run)
    left["loop_closed_after"] = time.perf_counter() - begun
    return seconds, error, left


def dead_nameserver_side(  # noqa: PLR0917
    key: str, adapted: bool, names: list[Any], port: int, count: int, timeout: float
) -> list[dict[str, Any]]:
    """``count`` calls to fresh names whose nameserver never answers, by client ``key``
    (stock or adapted) with connect timeout ``timeout``, each with a new client: for
    each, the seconds until the call failed, the error, whether connectbyname's
    TimedOutError is among its causes, and the threads and descriptors that appeared
    during the call and were still there once it had failed and the client was closed
    (run in a process of its own, so no other sample's threads count).

    First one untimed request to ``localhost`` (the hosts file answers; nothing listens
    on ``port``, so it is refused at once), so that the first timed call does not pay
    for imports and first-use set-up."""
    _failing_call(key, adapted, f"http://localhost:{port}/", timeout)
    fresh = Names.of(names)
    samples = []
    for _ in range(count):
        seconds, error, left = _failing_call(key, adapted, f"http://{fresh()}:{port}/", timeout)
        samples.append(
            {
                "seconds": seconds,
                "error": None if error is None else type(error).__name__,
                "timed_out": error is not None
                and any(isinstance(cause, TimedOutError) for cause in _causes(error)),
                **left,
            }
        )
    return samples


# --------------------------------------------------------------------------- happy path


def server_stats(port: int) -> dict[str, int]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", "/stats")
        result: dict[str, int] = json.load(connection.getresponse())
    finally:
        connection.close()
    return result


def connect_rate(adapted: bool, port: int, count: int) -> Sample:
    started = time.perf_counter()
    for _ in range(count):
        if adapted:
            connect_by_name("127.0.0.1", port, timeout=3.0).close()
        else:
            socket.create_connection(("127.0.0.1", port), timeout=3.0).close()
    return Sample(count / (time.perf_counter() - started))


def request_rate(  # noqa: PLR0917
    key: str, adapted: bool, url: str, count: int, close: bool, port: int
) -> Sample:
    """Requests per second over ``count`` sequential GETs with one client; ``close``
    makes every request use a new connection, else all share one kept-alive connection."""
    before = server_stats(port)
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
    after = server_stats(port)
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
        # A request may wait long for one of the 100 connections on a busy machine:
        # the pool timeout (httpx takes the read timeout's) is generous.
        client = open_async(adapted, 10.0, 60.0)
        good = 0

        async def one() -> None:
            nonlocal good
            with contextlib.suppress(Exception):  # counted as not good
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


def bench_connect_rate(plan: Plan, lab: dict[str, Any]) -> Bench:
    # Many short batches rather than a few long ones: a loopback connect takes some 30 µs,
    # so a passing disturbance on a shared machine moves a long batch's rate; the median
    # of many short ones shrugs it off.
    connects = plan.n(150, 100)
    sink = lab["sink_port"]
    bench = Bench(
        "connect_rate_literal",
        "connects/s, 127.0.0.1 literal",
        "Happy path: TCP connects per second to the 127.0.0.1 literal",
        "/s",
        f"Batches of {connects} connect+close to a sink in another process; engine "
        "(connect_by_name, timeout 3 s) vs socket.create_connection (timeout 3 s); "
        "batches alternate. One warm-up batch each, not counted. No name, so no DNS.",
        {"connects_per_sample": connects},
    )
    print(f"\n{bench.title}")
    connect_rate(False, sink, connects)
    connect_rate(True, sink, connects)
    run_rows(
        bench,
        [
            RowSpec(
                ENGINE,
                lambda adapted: connect_rate(adapted, sink, connects),
                plan.n(61, 15),
                plan.n(61, 15),
                targets=[ratio_at_least(1 / 1.15, "ratio >= 0.87 (time <= 1.15x)")],
            )
        ],
    )
    return bench


# --------------------------------------------------------------------------- events, otel

#: The engine's variants, each measured against the engine without a listener or otel:
#: (name, label, target ratio or None). The issue's targets: no listener within 1% of
#: the plain engine, otel with a no-op tracer provider within 5%. The no-listener row is
#: the plain engine on both sides (A/A): nothing else runs without a listener (the
#: engine tests one list, the observers', per call), so what it shows is how far two
#: identical sides drift in this run, i.e. what the run can resolve. An empty listener
#: and a recording SDK have no target: they show what events and spans cost.
EVENT_VARIANTS: tuple[tuple[str, str, float | None], ...] = (
    ("none", "engine, no listener (the same call on both sides: A/A)", 0.99),
    ("listener", "engine + EventListener() (every method empty)", None),
    ("otel-noop", "engine + otel.instrument(NoOpTracerProvider())", 0.95),
    # The global provider before one is set: a proxy tracer, asked for every span.
    ("otel-proxy", "engine + otel.instrument(), no provider set", 0.95),
    ("otel-sdk", "engine + otel.instrument(SDK TracerProvider(), recording, no exporter)", None),
)
_sdk_provider: list[Any] = []


def events_connect_rate(
    variant: str | None, port: int, count: int, cpu: list[float] | None = None
) -> Sample:
    """`connect_rate`'s engine side (connect_by_name to the 127.0.0.1 literal, ``count``
    times), with an empty listener, or under connectbyname.otel (``variant``), or as it
    is (``None`` or ``"none"``). otel is instrumented for the batch only, untimed, and
    uninstrumented after it. The process's CPU time per connect (microseconds) is
    appended to ``cpu``."""
    from connectbyname import EventListener

    listener = EventListener() if variant == "listener" else None
    instrumented = variant is not None and variant.startswith("otel")
    if instrumented:
        from opentelemetry.trace import NoOpTracerProvider

        from connectbyname import otel

        provider: Any = NoOpTracerProvider()
        if variant == "otel-sdk":
            if not _sdk_provider:
                from opentelemetry.sdk.trace import TracerProvider

                _sdk_provider.append(TracerProvider())  # one for the process
            provider = _sdk_provider[0]
        elif variant == "otel-proxy":
            provider = None  # this process never sets a global provider
        otel.instrument(provider)
    try:
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(count):
            connect_by_name("127.0.0.1", port, timeout=3.0, listener=listener).close()
        seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    finally:
        if instrumented:
            from connectbyname import otel

            otel.uninstrument()
    if cpu is not None:
        cpu.append(cpu_seconds / count * 1e6)
    return Sample(count / seconds)


def bench_events(plan: Plan, lab: dict[str, Any]) -> list[Bench]:
    """The happy-path connect rate with events and OpenTelemetry, each row against the
    engine without them, measured in turn (as the connect_rate_literal row); and, from
    the same batches, the CPU time per connect, which other processes on the machine
    move much less than the rate."""
    connects = plan.n(150, 100)
    sink = lab["sink_port"]
    common = (
        " 'Stock' is the engine without a listener or otel, 'adapted' the engine with "
        "what the row names (otel instrumented for its batches only, and uninstrumented "
        "after each). The first row runs the plain engine on both sides: nothing but "
        "the engine's test of its (empty) observers list runs without a listener, so a "
        "cost of no listener against an engine without events cannot be measured in one "
        "run; that row shows how far two identical sides drift here, the resolution of "
        "the 1% target."
    )
    bench = Bench(
        "connect_rate_events",
        "connects/s, events and otel",
        "Happy path with events: connects per second to the 127.0.0.1 literal, engine "
        "with a listener or connectbyname.otel vs the engine without",
        "/s",
        f"Batches of {connects} connect_by_name (timeout 3 s) + close to a sink in "
        "another process; batches alternate, one warm-up batch each, not counted. No "
        "name, so no DNS." + common,
        {"connects_per_sample": connects},
    )
    cpu_bench = Bench(
        "connect_cpu_events",
        "CPU/connect, events and otel",
        "Happy path with events: CPU time per connect (this process's user + system), "
        "the same batches",
        "us",
        "The batches of the benchmark above, timed with time.process_time: what a connect "
        "costs this process, which the load of other processes moves much less than "
        "the wall-clock rate. Ratio: the median of back-to-back pairs' ratios (lower is "
        "better here)." + common,
        {"connects_per_sample": connects},
    )
    cpu: dict[tuple[str, bool], list[float]] = {}
    print(f"\n{bench.title}")
    specs = []
    for variant, text, target in EVENT_VARIANTS:
        unavailable = None
        if variant.startswith("otel"):
            module = "opentelemetry.sdk.trace" if variant == "otel-sdk" else "opentelemetry.trace"
            try:
                importlib.import_module(module)
            except ImportError:
                unavailable = f"not available: {module.rsplit('.', 1)[0]} is not installed"
        if unavailable is None:
            events_connect_rate(None, sink, connects)
            events_connect_rate(variant, sink, connects)

        def sample(adapted: bool, variant: str = variant) -> Sample:
            return events_connect_rate(
                variant if adapted else None, sink, connects, cpu.setdefault((variant, adapted), [])
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
                label=f"{text} vs engine" if variant != "none" else text,
                unavailable=unavailable,
                param=variant,
            )
        )
    run_rows(bench, specs)
    print(f"\n{cpu_bench.title}")
    for (variant, _, target), spec in zip(EVENT_VARIANTS, specs, strict=True):
        if spec.unavailable:
            row = {"client": spec.label, "key": spec.key, "param": variant}
            cpu_bench.rows.append({**row, "unavailable": spec.unavailable})
            continue
        # CPU: lower is better, so the target is the rate's, inverted.
        cpu_targets = []
        if target is not None:
            limit = 1 / target
            cpu_targets.append(
                ratio_at_most(limit, f"ratio <= {limit:.3f} (within {(1 - target) * 100:.0f}%)")
            )
        cpu_spec = RowSpec(ENGINE, None, 0, 0, targets=cpu_targets, label=spec.label, param=variant)
        sides = [[Sample(v) for v in cpu.get((variant, adapted), [])] for adapted in (False, True)]
        cpu_bench.rows.append(make_row(cpu_bench, cpu_spec, *sides))
    return [bench, cpu_bench]


# --------------------------------------------------------------------------- by name


def name_connect_rate(adapted: bool, name: str, port: int, count: int, cpu: list[float]) -> Sample:
    """``count`` connects by name (connect_by_name, or socket.create_connection, which
    asks glibc's getaddrinfo), each closed at once; the process's CPU time per connect
    (microseconds) is appended to ``cpu``."""
    started, cpu_started = time.perf_counter(), time.process_time()
    for _ in range(count):
        if adapted:
            connect_by_name(name, port, timeout=3.0).close()
        else:
            socket.create_connection((name, port), timeout=3.0).close()
    seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
    cpu.append(cpu_seconds / count * 1e6)
    return Sample(count / seconds)


def bench_name_connect(plan: Plan, lab: dict[str, Any]) -> list[Bench]:
    """What the TTL-0 request rows rest on, without a client around it: connects by
    name through the lab's DNS server, the engine's own resolver against glibc's, the
    rate and the CPU time per connect from the same batches."""
    connects = plan.n(100, 50)
    sink, ttl = lab["sink_port"], lab.get("ttl")
    name = Names.of(lab["names"])()
    note = (
        f"Batches of {connects} connects by name, each closed at once, to a sink in "
        f"another process: happyN.bench.test (one fresh name for the whole benchmark: A "
        f"127.0.0.1, no AAAA; TTL {ttl}, the negative answer's too, so that every connect "
        "asks the lab's DNS server, in its own process, for A and AAAA on both sides); "
        "engine (connect_by_name, timeout 3 s, its own resolver) vs "
        "socket.create_connection (timeout 3 s: glibc's getaddrinfo, then one connect); "
        "batches alternate, one warm-up batch each, not counted."
    )
    bench = Bench(
        "connect_rate_name_ttl0",
        "connects/s, by name, TTL 0",
        "Connects per second by name through the DNS server, TTL 0 (every connect asks "
        "the server): the engine and its resolver against glibc and create_connection",
        "/s",
        note,
        {"connects_per_sample": connects},
    )
    cpu_bench = Bench(
        "connect_cpu_name_ttl0",
        "CPU/connect, by name, TTL 0",
        "CPU time per connect by name, TTL 0 (this process's user + system), the same batches",
        "us",
        "The batches of the benchmark above, timed with time.process_time: what a connect "
        "by name costs this process (the DNS server's work is in its own process, the "
        "same for both sides). Ratio: the median of back-to-back pairs' ratios (lower is "
        "better here). " + note,
        {"connects_per_sample": connects},
    )
    cpu: dict[bool, list[float]] = {False: [], True: []}
    print(f"\n{bench.title}")
    warm: list[float] = []
    name_connect_rate(False, name, sink, connects, warm)
    name_connect_rate(True, name, sink, connects, warm)
    spec = RowSpec(
        ENGINE,
        lambda adapted: name_connect_rate(adapted, name, sink, connects, cpu[adapted]),
        plan.n(31, 9),
        plan.n(31, 9),
    )
    run_rows(bench, [spec])
    print(f"\n{cpu_bench.title}")
    sides = [[Sample(v) for v in cpu[adapted]] for adapted in (False, True)]
    cpu_bench.rows.append(make_row(cpu_bench, RowSpec(ENGINE, None, 0, 0), *sides))
    return [bench, cpu_bench]


#: The request-rate benchmarks: (URL kind, keep-alive?, requests per sample (full,
#: quick), sync target, async target, short, title).
_RATES: dict[str, tuple[str, bool, tuple[int, int], float, float, str, str]] = {
    "request_rate_new_connection_ttl300": (
        "name",
        False,
        (150, 60),
        1.0,
        0.95,
        "requests/s, new connection each, by name, TTL 300",
        "Happy path: requests per second, a new connection per request, by name through "
        "the DNS server, TTL 300",
    ),
    "request_rate_new_connection_ttl0": (
        "name",
        False,
        (150, 60),
        1.0,
        0.95,
        "requests/s, new connection each, by name, TTL 0",
        "Happy path: requests per second, a new connection per request, by name through "
        "the DNS server, TTL 0 (every request asks the server)",
    ),
    "request_rate_new_connection_literal": (
        "literal",
        False,
        (150, 60),
        0.95,
        0.95,
        "requests/s, new connection each, 127.0.0.1 URL",
        "Happy path: requests per second, a new connection per request to the "
        "127.0.0.1 literal (no name to resolve)",
    ),
    "request_rate_new_connection_localhost": (
        "localhost",
        False,
        (150, 60),
        0.95,
        0.95,
        "requests/s, new connection each, localhost URL",
        "Happy path: requests per second, a new connection per request to "
        "localhost (answered from the hosts file)",
    ),
    "request_rate_keepalive": (
        "name",
        True,
        (300, 120),
        0.98,
        0.98,
        "requests/s, keep-alive",
        "Happy path: requests per second on one kept-alive connection",
    ),
}


def bench_request_rate(plan: Plan, lab: dict[str, Any], bench_id: str) -> Bench:
    kind, keep_alive, counts, sync_target, async_target, short, title = _RATES[bench_id]
    count = plan.n(*counts)
    port, ttl = lab["http_port"], lab.get("ttl")
    close = not keep_alive
    wheres = {
        "name": f"http://happyN.bench.test:P/ (N a fresh name each sample: A 127.0.0.1, "
        f"no AAAA; TTL {ttl}, the negative answer's too)",
        "literal": "http://127.0.0.1:P/ (an IP literal: no lookup, on either side)",
        "localhost": "http://localhost:P/ (the namespace's hosts file answers it, "
        "127.0.0.1, for glibc and for the engine's own resolver alike; no DNS query)",
    }
    cache = ""
    if kind == "name" and close:
        cache = (
            " Stock clients (glibc, no cache) ask the server for A and AAAA on every "
            "request; the engine asks "
            + (
                "on the first request of a sample and answers the rest from its TTL "
                "cache, which is part of what a user meets."
                if ttl
                else "on every request too: nothing is cached with TTL 0."
            )
        )
    bench = Bench(
        bench_id,
        short,
        title,
        "/s",
        f"Per sample, {count} sequential GETs of {wheres[kind]} with one client, against "
        "a small asyncio server (bench/server.py) in another process"
        + (" that closes after each response (Connection: close)." if close else ".")
        + cache
        + " The server's connection count is checked for every sample. One warm-up "
        "sample each, not counted; stock and adapted interleaved."
        + (LAB_NOTE if kind == "name" else ""),
        {"requests_per_sample": count, "ttl": ttl if kind == "name" else None},
    )
    print(f"\n{bench.title}")
    names = Names.of(lab["names"])

    def url() -> str:
        if kind == "literal":
            return f"http://127.0.0.1:{port}/"
        if kind == "localhost":
            return f"http://localhost:{port}/"
        return f"http://{names()}:{port}/"

    specs = []
    for key in CLIENTS:
        try:
            check_available(key, True)
        except Unavailable:
            pass
        else:
            for adapted in (False, True):
                request_rate(key, adapted, url(), max(10, count // 10), close, port)

        def sample(adapted: bool, key: str = key) -> Sample:
            return request_rate(key, adapted, url(), count, close, port)

        target = sync_target if key in SYNC else async_target
        specs.append(
            RowSpec(
                key,
                sample,
                plan.n(9, 3),
                plan.n(9, 3),
                targets=[ratio_at_least(target, f"ratio >= {target:g}")],
            )
        )
    run_rows(bench, specs)
    return bench


def tls_request_rate(  # noqa: PLR0917
    key: str, adapted: bool, url: Callable[[], str], count: int, ca_file: str, port: int
) -> Sample:
    """HTTPS requests per second over ``count`` sequential GETs with one client, a new
    connection each; for the engine, TLS connects per second. The server's count of
    connections is checked (the engine's connects send no request, so are not)."""
    before = server_stats(port)
    seconds, statuses = tlsclients.rate(key, adapted, url, count, timeout=3.0, ca_file=ca_file)
    after = server_stats(port)
    problems = []
    if key != tlsclients.ENGINE:
        connections = after["connections"] - before["connections"]
        if any(status != 200 for status in statuses):
            problems.append("non-200 status")
        if connections != count:
            problems.append(f"{connections} connections, expected {count}")
    return Sample(count / seconds, not problems, "; ".join(problems))


def bench_https_rate(plan: Plan, lab: dict[str, Any], bench_id: str) -> Bench:
    count = plan.n(80, 40)
    port, ca, ttl = lab["tls_port"], lab["ca"], lab.get("ttl")
    literal = bench_id.endswith("_literal")
    common = (
        f"with one client, each with Connection: close, so each is a new TCP connection "
        "and a full TLS handshake (no session resumption on either side), against the "
        "small asyncio server (bench/server.py) in another process, serving TLS with a "
        "certificate from the lab's own CA, which every client is given. The engine "
        f"row: {count} connect_by_name(HOST, {port}, ssl_context=) + close against "
        "socket.create_connection + wrap_socket + close (TLS connects per second, no "
        "HTTP). "
    )
    checks = (
        " The server's connection count is checked for every client sample. One warm-up "
        "sample each, not counted; stock and adapted interleaved."
    )
    if literal:
        bench = Bench(
            bench_id,
            "HTTPS requests/s, new connection each, 127.0.0.1 URL",
            "Happy path: HTTPS requests per second, a new connection (and TLS handshake) "
            "per request to the 127.0.0.1 literal (no name to resolve)",
            "/s",
            f"Per sample, {count} sequential GETs of https://127.0.0.1/ (port {port}; an IP "
            "literal: no lookup on either side, and no HTTPS record asked for) "
            + common
            + "What is left of the adapted side's difference is the engine's own work per "
            "connection, TLS raced in its loop." + checks,
            {"requests_per_sample": count},
        )
    else:
        bench = Bench(
            bench_id,
            "HTTPS requests/s, new connection each, by name",
            "Happy path: HTTPS requests per second, a new connection (and TLS handshake) "
            "per request, by name through the DNS server",
            "/s",
            f"Per sample, {count} sequential GETs of https://happyN.bench.test/ (port "
            f"{port}; N a fresh name each sample: A 127.0.0.1, no AAAA, no HTTPS record; "
            f"TTL {ttl}, the negative answers' too) "
            + common
            + "Stock clients (glibc, no cache) ask the server for A and AAAA on every "
            "connection; the engine and the adapters ask for A, AAAA and HTTPS on the "
            "first of a sample and answer the rest from their TTL cache, which is part of "
            "what a user meets." + checks + LAB_NOTE,
            {"requests_per_sample": count, "ttl": ttl},
        )
    print(f"\n{bench.title}")
    names = Names.of(lab["names"])

    def url() -> str:
        return "https://127.0.0.1/" if literal else f"https://{names()}/"

    specs = []
    for key in (tlsclients.ENGINE, *tlsclients.CLIENTS):
        for adapted in (False, True):
            tls_request_rate(key, adapted, url, max(10, count // 10), ca, lab["http_port"])

        def sample(adapted: bool, key: str = key) -> Sample:
            return tls_request_rate(key, adapted, url, count, ca, lab["http_port"])

        specs.append(
            RowSpec(
                key,
                sample,
                plan.n(9, 3),
                plan.n(9, 3),
                targets=[ratio_at_least(0.95, "ratio >= 0.95")],
                label=tlsclients.LABELS[key],
            )
        )
    run_rows(bench, specs)
    return bench


def bench_concurrent(plan: Plan, lab: dict[str, Any]) -> Bench:
    count, port = 500, lab["http_port"]
    names = Names.of(lab["names"])
    bench = Bench(
        "concurrent_500",
        "500 concurrent async requests",
        "500 concurrent async requests on one client",
        "s",
        f"{count} GETs of http://happyN.bench.test:P/ (a fresh name N per sample, TTL "
        f"{lab.get('ttl')}) started at once on one new httpx AsyncClient (default limits: "
        "100 connections) to the server in another process; seconds until all are done." + LAB_NOTE,
        {"requests": count},
    )
    print(f"\n{bench.title}")

    def sample(key: str) -> Callable[[bool], Sample]:
        return lambda adapted: concurrent_time(key, adapted, f"http://{names()}:{port}/", count)

    specs = [
        RowSpec(
            key,
            sample(key),
            plan.n(2, 1),
            plan.n(2, 1),
            targets=[ratio_at_most(1.05, "ratio <= 1.05")],
        )
        for key in ASYNC
    ]
    run_rows(bench, specs)
    return bench


# --------------------------------------------------------------------------- threads

_started_threads = 0
_thread_lock = threading.Lock()


def _count_thread_starts() -> None:
    """Count every thread this process starts from now on (threading's hook)."""
    original = threading._start_new_thread  # type: ignore[attr-defined]
    if getattr(original, "counting", False):
        return

    def counting(*args: Any, **kwargs: Any) -> Any:
        global _started_threads  # noqa: PLW0603
        with _thread_lock:
            _started_threads += 1
        return original(*args, **kwargs)

    counting.counting = True  # type: ignore[attr-defined]
    threading._start_new_thread = counting  # type: ignore[attr-defined]


def threads_started(key: str, adapted: bool, names: Names, port: int, count: int) -> Sample:
    """Threads started per new connection by name: ``count`` requests with one client,
    a new connection (and lookup) each; for the engine, ``count`` connects."""
    before = _started_threads
    name = names()
    if key == ENGINE:
        for _ in range(count):
            if adapted:
                connect_by_name(name, port, timeout=3.0).close()
            else:
                socket.create_connection((name, port), timeout=3.0).close()
    elif RUNNERS[key] == "sync":
        client = open_sync(key, adapted, 3.0)
        try:
            for _ in range(count):
                client.get(f"http://{name}:{port}/", close=True)
        finally:
            client.close()
    else:

        async def run() -> None:
            client = open_async(adapted, 3.0)
            try:
                for _ in range(count):
                    await client.get(f"http://{name}:{port}/", close=True)
            finally:
                await client.aclose()

        run_async(RUNNERS[key], run)
    started = _started_threads - before
    return Sample(started / count, info={"threads_started": started, "connections": count})


def bench_threads(plan: Plan, lab: dict[str, Any]) -> Bench:
    count = plan.n(30, 10)
    bench = Bench(
        "threads_per_connection",
        "threads started per new connection by name",
        "Threads started per new connection by name",
        "n",
        f"Per sample, {count} new connections by name with one client (a fresh name per "
        "sample, TTL 0, so every connection asks the server; a request with Connection: "
        "close each, or for the engine row a connect), counting the threads the process starts "
        "(threading's start hook) and dividing by the connections. Stock sync clients "
        "call getaddrinfo in the calling thread; stock async ones on worker threads "
        "(asyncio's default executor, trio's thread cache) that they start as needed and "
        "reuse within one event loop; the engine's own resolver sends its queries from "
        "the race loop." + LAB_NOTE,
        {"connections_per_sample": count},
    )
    print(f"\n{bench.title}")
    _count_thread_starts()
    names, port = Names.of(lab["names"]), lab["http_port"]

    def sample(key: str) -> Callable[[bool], Sample]:
        return lambda adapted: threads_started(key, adapted, names, port, count)

    specs = [
        RowSpec(
            key,
            sample(key),
            plan.n(3, 2),
            plan.n(3, 2),
            targets=[adapted_every(0.0, "adapted: 0 threads, every sample")],
        )
        for key in (ENGINE, *CLIENTS)
    ]
    run_rows(bench, specs)
    return bench


# --------------------------------------------------------------------------- entry


def run_bench(bench_id: str, quick: bool, lab: dict[str, Any]) -> list[dict[str, Any]]:
    """Run benchmark ``bench_id`` here (inside a namespace) and return it as JSON, with
    the benchmarks measured in the same batches (`MEASURED_WITH`) after it; ``lab``
    says what the namespace has (ports, the pools of names, delays)."""
    plan = Plan(quick)
    if bench_id == "connect_rate_events":
        return [bench.to_json() for bench in bench_events(plan, lab)]
    if bench_id == "connect_rate_name_ttl0":
        return [bench.to_json() for bench in bench_name_connect(plan, lab)]
    builders: dict[str, Callable[[Plan, dict[str, Any]], Bench]] = {
        "first_response_blackholed_v6": bench_first_response,
        "first_response_tls_mute_v6": bench_tls_mute,
        "failure_all_blackholed": bench_all_dead,
        "second_connection_blackholed_v6": bench_second_connection,
        "scale_dead_addresses": bench_scale,
        "first_response_slow_aaaa": bench_slow_aaaa,
        "first_response_https_hints": bench_https_hints,
        "connect_rate_literal": bench_connect_rate,
        "concurrent_500": bench_concurrent,
        "threads_per_connection": bench_threads,
    }
    if bench_id in _RATES:
        bench = bench_request_rate(plan, lab, bench_id)
    elif bench_id.startswith("request_rate_new_connection_https"):
        bench = bench_https_rate(plan, lab, bench_id)
    else:
        bench = builders[bench_id](plan, lab)
    return [bench.to_json()]


#: Benchmarks that come out of another's batches: asking for either runs the first.
MEASURED_WITH = {
    "connect_cpu_events": "connect_rate_events",
    "connect_cpu_name_ttl0": "connect_rate_name_ttl0",
}


# --------------------------------------------------------------------------- format


def _fmt(value: float, unit: str) -> str:
    if unit == "/s":
        return f"{value:,.0f}/s"
    if unit == "n":
        return f"{value:.3g}"
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
