"""Interruptions at random points inside the engine leave nothing behind.

Thousands of sync races (the first address blackholed then a working one, every
address blackholed with a short timeout, refused, names looked up on the resolver
threads, `connect_socket_by_name`, literals) are each interrupted once, at a random
moment, by a SIGALRM (``signal.setitimer``) whose handler raises `KeyboardInterrupt`,
as Ctrl-C does. Afterwards there must be no `ResourceWarning` (every warning is
recorded, and so is every "exception ignored" from a finaliser), the descriptors
(``/proc/self/fd``) must be back at their baseline *with the cyclic garbage collector
off* (so no socket is closed only because a collection happened to find it), and the
lookup pool's thread count must match its threads.

The handler raises only when the interrupted stack is inside connectbyname's code
(some frame's ``co_filename`` is under the package's directory, its ``testing``
toolkit excepted); elsewhere it re-arms the timer. That is the property under test:
*no interruption inside the engine leaks*. A Python function returning a resource
always has a window in its *caller's* frame after the return, where an interruption
drops the returned object; that window is the caller's (here, the test's), not the
engine's, so an interruption there is not raised. Nor is one inside the standard
library's ``Thread.start`` (see `UNSAFE`), which no caller can make safe.

Run with ``CBN_FUZZ_LONG=1`` for 30,000 races (under a minute), and
``CBN_FUZZ_SEED=N`` for another sequence of races and delays.
"""

from __future__ import annotations

import collections
import contextlib
import gc
import math
import os
import random
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from types import FrameType
from typing import Any

import anyio.abc
import httpx
import pytest
import trio
import trustme

import connectbyname
from connectbyname import (
    ConnectByNameError,
    Connection,
    RefusedError,
    _resolve,
    aconnect_by_name,
    connect_by_name,
    connect_socket_by_name,
)
from connectbyname.adapters._httpx_streams import (
    AsyncPendingTLSStream,
    AsyncStream,
    PendingTLSStream,
    SyncStream,
)
from connectbyname.adapters.httpx import AsyncConnectByNameTransport, ConnectByNameTransport
from connectbyname.adapters.urllib3 import HTTPConnectionPool
from connectbyname.testing import (
    Blackhole,
    StaticResolver,
    open_fds,
    refused_port,
)

from .everypoint import Closable, interrupt_at_every_point

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="needs signal.setitimer"),
]

LONG = bool(os.environ.get("CBN_FUZZ_LONG"))
RACES = 30_000 if LONG else 2_500
SEED = int(os.environ.get("CBN_FUZZ_SEED", "8305"))

PACKAGE = str(Path(connectbyname.__file__).parent) + os.sep
TOOLKIT = str(Path(connectbyname.__file__).parent / "testing") + os.sep


#: CPython's Thread.start is not interruption-safe (python/cpython issue 78667, and
#: Condition.__enter__ interrupted after it acquired its lock): interrupted, it may
#: leave the new thread blocked for good in its start-up, or a Thread that never ran
#: listed by threading.enumerate(). The engine cannot help that; the lookup pool only
#: keeps its count right (tests/test_hardening.py). Not interrupted here.
UNSAFE = {threading.Thread.start.__code__}
#: Weak reference callbacks, run while an object is freed: what they raise is only
#: reported ("exception ignored"), so an interruption there is lost, in any program.
#: Looked for on the whole stack, not only at its top: a handler that deferred inside
#: one (re-arming its timer) can be interrupted by the next signal, and what it raised
#: would end in the callback all the same.
FINALIZERS = ("_weakrefset.py", "weakref.py")


def inside_the_engine(frame: FrameType | None) -> bool:
    """Whether ``frame`` or a frame that called it runs connectbyname's own code (and
    none of the standard library's code known not to bear interruptions)."""
    inside = False
    while frame is not None:
        if frame.f_code in UNSAFE:
            return False
        path = frame.f_code.co_filename
        if path.endswith(FINALIZERS):
            return False
        if path.startswith(PACKAGE) and not path.startswith(TOOLKIT):
            inside = True
        frame = frame.f_back
    return inside


class Interrupter:
    """One SIGALRM per race, raising KeyboardInterrupt only inside the engine."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.armed = False
        self.raised = 0
        self.deferred = 0

    def handler(self, signum: int, frame: FrameType | None) -> None:
        if not self.armed:
            return
        if inside_the_engine(frame):
            self.armed = False
            self.raised += 1
            raise KeyboardInterrupt
        self.deferred += 1  # the test's own code: try again a little later
        signal.setitimer(signal.ITIMER_REAL, self.rng.uniform(1e-6, 50e-6))

    def arm(self, span: float) -> None:
        """Interrupt within ``span`` seconds: half the time uniformly, half on a log
        scale (most of a race's decisions come in its first few hundred microseconds)."""
        if self.rng.random() < 0.5:
            delay = self.rng.uniform(1e-6, span)
        else:
            delay = 10 ** self.rng.uniform(-6, math.log10(span))
        self.armed = True
        signal.setitimer(signal.ITIMER_REAL, delay)

    def disarm(self) -> None:
        self.armed = False
        signal.setitimer(signal.ITIMER_REAL, 0)


@contextlib.contextmanager
def strict_world(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A served port, the same port blackholed and refused on other loopback
    addresses, names for each, and a fresh lookup pool whose idle threads exit at
    once (so that threads start, and can be interrupted starting, all the time)."""
    pool = _resolve._Pool()
    monkeypatch.setattr(_resolve, "_pool", pool)
    monkeypatch.setattr(_resolve, "IDLE_SECONDS", 0.001)
    with contextlib.ExitStack() as stack:
        served = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=4096))
        served.setblocking(False)
        port = served.getsockname()[1]
        stack.enter_context(Blackhole("127.0.0.2", port))
        stack.enter_context(refused_port("127.0.0.3", port))
        resolver = StaticResolver(
            {
                "ok.test": ["127.0.0.2", "127.0.0.1"],  # blackholed, then served
                "dead.test": ["127.0.0.2"],
                "refused.test": ["127.0.0.3"],
                "quick.test": ["127.0.0.3", "127.0.0.1"],  # refused, then served
            },
            record_calls=False,
        )
        yield {"server": served, "port": port, "resolver": resolver, "pool": pool}


def other_threads() -> int:
    """The threads that are not lookup threads."""
    return sum(t.name != "connectbyname-resolver" for t in threading.enumerate())


def drain(server: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while True:
            server.accept()[0].close()


def races(world: dict[str, Any]) -> dict[str, tuple[float, Callable[[], Connection | None]]]:
    """Each kind of race: a span a little longer than it takes uninterrupted (so that
    some run to their end), and how to run it."""
    port, resolver = world["port"], world["resolver"]

    def supplied_socket() -> None:
        with socket.socket() as sock:
            connect_socket_by_name(
                sock,
                "ok.test",
                port,
                timeout=2,
                attempt_delay=0.01,
                resolver=resolver,
                history=False,
            )

    return {
        "blackholed then working": (
            0.018,
            lambda: connect_by_name(
                "ok.test", port, timeout=2, attempt_delay=0.01, resolver=resolver, history=False
            ),
        ),
        "all blackholed": (
            0.009,
            lambda: connect_by_name(
                "dead.test", port, timeout=0.005, resolver=resolver, history=False
            ),
        ),
        "refused literal": (0.0006, lambda: connect_by_name("127.0.0.3", port, timeout=1)),
        "refused name": (
            0.003,
            lambda: connect_by_name("refused.test", port, timeout=1, resolver=resolver),
        ),
        "names on threads": (
            0.003,
            lambda: connect_by_name(
                "quick.test", port, timeout=1, resolver=resolver, history=False
            ),
        ),
        "supplied socket": (0.018, supplied_socket),
        "literal": (0.0006, lambda: connect_by_name("127.0.0.1", port, timeout=1)),
    }


WEIGHTS = {
    "blackholed then working": 8,
    "all blackholed": 10,
    "refused literal": 15,
    "refused name": 15,
    "names on threads": 30,
    "supplied socket": 7,
    "literal": 15,
}


def test_no_interruption_inside_the_engine_leaks(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(SEED)
    interrupter = Interrupter(rng)
    outcomes: collections.Counter[tuple[str, str]] = collections.Counter()
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    previous = signal.signal(signal.SIGALRM, interrupter.handler)
    gc_was_enabled = gc.isenabled()
    try:
        with strict_world(monkeypatch) as world:
            kinds = races(world)
            names, weights = list(WEIGHTS), list(WEIGHTS.values())
            threads = other_threads()
            gc.collect()
            gc.disable()
            fds = open_fds()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                for i in range(RACES):
                    kind = rng.choices(names, weights)[0]
                    span, run = kinds[kind]
                    connection = None
                    interrupter.arm(span)
                    try:
                        connection = run()
                    except KeyboardInterrupt:
                        outcome = "interrupted"
                    except ConnectByNameError as exc:
                        outcome = type(exc).__name__
                    else:
                        outcome = "connected"
                    finally:
                        interrupter.disarm()
                    if connection is not None:
                        connection.close()
                    outcomes[kind, outcome] += 1
                    if i % 64 == 0:
                        drain(world["server"])
                drain(world["server"])
                # Idle lookup threads exit within milliseconds here (IDLE_SECONDS).
                pool = world["pool"]
                deadline = time.monotonic() + 5
                while (open_fds() != fds or pool.threads()) and time.monotonic() < deadline:
                    time.sleep(0.01)
            leaked = open_fds() - fds
            assert pool.threads() == 0, "the pool's count drifted from its threads"
            assert pool._idle == 0
            assert other_threads() == threads
    finally:
        signal.signal(signal.SIGALRM, previous)
        signal.setitimer(signal.ITIMER_REAL, 0)
        if gc_was_enabled:
            gc.enable()
    print(dict(outcomes), interrupter.raised, "interrupted")
    warned = [f"{w.category.__name__}: {w.message}" for w in caught]
    assert not warned, warned[:5]
    assert not unraisable, [str(u.exc_value) for u in unraisable[:5]]
    assert leaked == 0
    # The mix really exercised every kind both ways: interrupted, and run to its end.
    assert interrupter.raised > RACES // 3
    for kind in WEIGHTS:
        assert outcomes[kind, "interrupted"] > 0, kind
        assert sum(n for (k, o), n in outcomes.items() if k == kind and o != "interrupted")


# ---------------------------------------------------------------- at every point, in turn


@contextlib.contextmanager
def http_server_elsewhere(cert: trustme.LeafCert | None, folder: Path) -> Iterator[int]:
    """An HTTP server (HTTPS with ``cert``) on 127.0.0.1 in a child process, for as long
    as the block runs; its port."""
    context = "None"
    if cert is not None:
        pem = folder / "server.pem"
        cert.private_key_and_cert_chain_pem.write_to_path(str(pem))
        context = "ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)"
        context = f"{context}; context.load_cert_chain({str(pem)!r})"
    script = (
        "import ssl, sys\n"
        "from connectbyname.testing import HTTPServer\n"
        f"context = {context}\n"
        "with HTTPServer('127.0.0.1', 0, context) as server:\n"
        "    print(server.port, flush=True)\n"
        "    sys.stdin.read()\n"
    )
    with subprocess.Popen(
        [sys.executable, "-c", script], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    ) as child:
        assert child.stdout is not None
        assert child.stdin is not None
        try:
            yield int(child.stdout.readline())
        finally:
            child.stdin.close()
            child.stdout.close()
            child.wait(10)


#: The plain calls the every-point tests make, by kind: the name, and the keywords
#: (the resolver added for a name).
EVERY_POINT_CALLS: dict[str, tuple[str, dict[str, Any]]] = {
    "literal": ("127.0.0.1", {"timeout": 1}),
    "refused literal": ("127.0.0.3", {"timeout": 1}),
    "refused then working, names on threads": ("quick.test", {"timeout": 1, "history": False}),
    "blackholed then working": (
        "ok.test",
        {"timeout": 2, "attempt_delay": 0.01, "history": False},
    ),
}


def every_point_call(kind: str, world: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    host, arguments = EVERY_POINT_CALLS[kind]
    if host.endswith(".test"):
        arguments = {**arguments, "resolver": world["resolver"]}
    return host, arguments


#: httpcore keeps a new stream in a local from its _connect until its connection object
#: holds it (httpcore/_sync/connection.py), and asks the stream's get_extra_info in
#: between: interrupted there, it drops the stream, a stock one too. Its window, not
#: the adapter's: no point is taken under these.
_HTTPCORE_WINDOW = {
    stream.get_extra_info.__code__
    for stream in (SyncStream, PendingTLSStream, AsyncStream, AsyncPendingTLSStream)
}


def _outside_httpcore_window(frame: FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code in _HTTPCORE_WINDOW:
            return False
        frame = frame.f_back
    return True


@pytest.mark.parametrize(
    "kind",
    [
        "literal",
        "refused literal",
        "refused then working, names on threads",
        "blackholed then working",
        "supplied socket",
        "TLS",
        "urllib3",
        "httpx",
        "httpx, TLS",
    ],
)
def test_an_interruption_at_every_point_leaks_nothing(
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    server_cert: trustme.LeafCert,
    client_ssl_context: ssl.SSLContext,
    tmp_path: Path,
) -> None:
    # What the random interruptions above sample, here each point in turn
    # (tests/everypoint.py): the first, the second... until a run reaches its end.
    with contextlib.ExitStack() as stack:
        world = stack.enter_context(strict_world(monkeypatch))
        port, resolver, server = world["port"], world["resolver"], world["server"]
        expected: tuple[type[BaseException], ...] = ()
        run: Callable[[], Any]
        if kind in EVERY_POINT_CALLS:
            expected = (RefusedError,) if kind == "refused literal" else ()
            host, arguments = every_point_call(kind, world)
            run = lambda: connect_by_name(host, port, **arguments)  # noqa: E731
        elif kind == "supplied socket":

            def run() -> None:
                with socket.socket() as sock:
                    connect_socket_by_name(
                        sock, "quick.test", port, timeout=1, resolver=resolver, history=False
                    )

        elif kind == "urllib3":
            # The server in another process: its own descriptors come and go meanwhile.
            web = stack.enter_context(http_server_elsewhere(None, tmp_path))
            names = StaticResolver({"web.test": ["127.0.0.1"]}, record_calls=False)
            engine: dict[str, Any] = {"resolver": names, "history": False}

            def run() -> Closable:
                # A request, not the pool's close: that comes after the interruption (a
                # close interrupted as it starts closes nothing, whoever wrote it).
                pool = HTTPConnectionPool("web.test", web, retries=False, **engine)
                try:
                    assert pool.request("GET", "/").status == 200
                except BaseException:
                    pool.close()
                    raise
                return pool

        elif kind.startswith("httpx"):
            tls = kind == "httpx, TLS"
            web = stack.enter_context(http_server_elsewhere(server_cert if tls else None, tmp_path))
            names = StaticResolver({"example.test": ["127.0.0.1"]}, record_calls=False)
            url = f"{'https' if tls else 'http'}://example.test:{web}/"

            def run() -> Closable:
                client = httpx.Client(
                    transport=ConnectByNameTransport(
                        verify=client_ssl_context, trust_env=False, resolver=names, history=False
                    )
                )
                try:
                    assert client.get(url).status_code == 200
                except BaseException:
                    client.close()
                    raise
                return client

        else:
            tls_port = stack.enter_context(http_server_elsewhere(server_cert, tmp_path))
            names = StaticResolver({"example.test": ["127.0.0.1"]}, record_calls=False)
            run = lambda: connect_by_name(  # noqa: E731
                "example.test",
                tls_port,
                timeout=2,
                resolver=names,
                history=False,
                ssl_context=client_ssl_context,
            )
        gc.collect()
        seen = interrupt_at_every_point(
            run,
            before=lambda: drain(server),
            expected=expected,
            # Only httpx's transport has the window; the walk up the stack at every
            # point doubled the urllib3 case's time.
            landing=_outside_httpcore_window if kind.startswith("httpx") else None,
        )
    print(kind, seen)  # shown if the test fails
    assert seen["points"] > 50
    assert seen["leaks"] == []
    assert seen["warned"] == []
    assert seen["failed"] == []


def _on_trio(connect: Callable[[], Any]) -> Callable[[], None]:
    """``connect()`` (a coroutine making a connection) run on trio and closed there; a
    connection made but left open by the interruption is closed afterwards."""
    made: list[Any] = []

    async def main() -> None:
        conn = await connect()
        made.append(conn)
        await conn.aclose()

    def run() -> None:
        try:
            _trio_run(main)
        finally:
            for conn in made:
                conn.stream.extra(anyio.abc.SocketAttribute.raw_socket).close()
            made.clear()

    return run


def _httpx_on_trio(url: str, names: StaticResolver, context: ssl.SSLContext) -> Callable[[], None]:
    """A GET of ``url`` with httpx's AsyncClient over the adapter's transport, run on
    trio. The client's close comes after the interruption, as in the sync cases (a
    close interrupted as it starts closes nothing, whoever wrote it): it runs
    unprofiled, and closes whatever the request left in the pool."""

    async def main() -> None:
        transport = AsyncConnectByNameTransport(
            verify=context, trust_env=False, resolver=names, history=False
        )
        client = httpx.AsyncClient(transport=transport)
        try:
            assert (await client.get(url)).status_code == 200
        finally:
            sys.setprofile(None)
            await client.aclose()

    return lambda: _trio_run(main)


def _trio_run(main: Callable[[], Awaitable[None]]) -> None:
    """``trio.run(main)``; an interruption that a task group wrapped (the race's wraps
    what it meets) comes out as itself."""
    try:
        trio.run(main)
    except BaseExceptionGroup as group:
        if group.split(KeyboardInterrupt)[1] is not None:
            raise
        raise KeyboardInterrupt from group


@pytest.mark.parametrize(
    "kind",
    [
        "literal",
        "refused then working, names on threads",
        "blackholed then working",
        "httpx",
        "httpx, TLS",
    ],
)
def test_an_interruption_at_every_point_on_trio_leaks_nothing(
    monkeypatch: pytest.MonkeyPatch,
    kind: str,
    server_cert: trustme.LeafCert,
    client_ssl_context: ssl.SSLContext,
    tmp_path: Path,
) -> None:
    # Trio raises KeyboardInterrupt wherever the signal lands in code it does not
    # protect (the engine's), and at the next checkpoint where it does.
    from trio._core._ki import ki_protection_enabled

    def landing(frame: FrameType) -> bool:
        return not ki_protection_enabled(frame) and _outside_httpcore_window(frame)

    with contextlib.ExitStack() as stack:
        world = stack.enter_context(strict_world(monkeypatch))
        port, server = world["port"], world["server"]
        if kind.startswith("httpx"):
            tls = kind == "httpx, TLS"
            # The server in another process: its own descriptors come and go meanwhile.
            web = stack.enter_context(http_server_elsewhere(server_cert if tls else None, tmp_path))
            names = StaticResolver({"example.test": ["127.0.0.1"]}, record_calls=False)
            url = f"{'https' if tls else 'http'}://example.test:{web}/"
            run = _httpx_on_trio(url, names, client_ssl_context)
        else:
            host, arguments = every_point_call(kind, world)
            run = _on_trio(lambda: aconnect_by_name(host, port, **arguments))
        gc.collect()
        seen = interrupt_at_every_point(run, before=lambda: drain(server), landing=landing)
    print(kind, seen)  # shown if the test fails
    # Interrupted as httpcore sends a request body, httpx's body generator is left
    # unfinished by httpcore's own loop over it (a stock transport's too).
    warned = [w for w in seen["warned"] if "Async generator 'httpx." not in w]
    assert seen["points"] > 50
    assert seen["leaks"] == []
    assert warned == []
    assert seen["failed"] == []
