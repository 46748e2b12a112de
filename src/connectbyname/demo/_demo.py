"""The offline demo (``connectbyname demo``).

It starts, on loopback only, the situation users meet in the wild: a host name whose
first address is IPv6 and broken (``[::1]:P`` blackholed, or refused, or its AAAA answer
late) while its IPv4 address ``127.0.0.1:P`` serves HTTP. The name is injected into
``socket.getaddrinfo`` for this process, so stock clients see it as well. It then fetches
one URL with stock urllib3, requests and httpx (sync, and async on asyncio and on trio)
and with each connectbyname adapter, at the same connect timeout, and prints what each
took, where it connected and which addresses it tried; then the engine's timeline of one
adapted request. Everything it starts is stopped on every path.

The client helpers here (`open_sync`, `open_async`, `run_async`) are shared with the
benchmark suite in ``bench/``, so the demo and the benchmarks fetch the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import socket
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

from .._cli import print_timeline
from .._info import Address, Attempt, ConnectionInfo, connection_info, format_address
from ..testing import (
    DualStack,
    ScenarioKind,
    StaticResolver,
    dual_stack,
    localhost_fallback,
    patch_getaddrinfo,
)

T = TypeVar("T")

#: The host name the demo injects; every client row gets its own label under it.
DEMO_NAME = "dual.example.test"
#: How late the AAAA answer comes in the slow-dns scenario.
SLOW_AAAA_SECONDS = 1.0
#: The attempt delay every adapted client is given (the engine's default).
ATTEMPT_DELAY = 0.25
READ_TIMEOUT = 10.0

#: (key, label, how it runs) for every client, in the order the demo shows them.
CLIENTS: tuple[tuple[str, str, str], ...] = (
    ("urllib3", "urllib3", "sync"),
    ("requests", "requests", "sync"),
    ("httpx", "httpx", "sync"),
    ("httpx-asyncio", "httpx async (asyncio)", "asyncio"),
    ("httpx-trio", "httpx async (trio)", "trio"),
)
#: The demo's first row needs no client library: the engine itself, against
#: socket.create_connection, each followed by one HTTP/1.0 GET on the bare socket.
ENGINE = "socket"
LABELS = {ENGINE: "socket", **{key: label for key, label, _ in CLIENTS}}
RUNNERS = {ENGINE: "sync", **{key: runner for key, _, runner in CLIENTS}}


class Unavailable(Exception):
    """A client or adapter that cannot run here (module missing); the text says why."""


@dataclass(frozen=True)
class Reply:
    """What one request returned: the status, the server's address and, for adapted
    clients, connectbyname's `ConnectionInfo`."""

    status: int
    remote: Address | None
    info: ConnectionInfo | None


class SyncClient(Protocol):
    def get(self, url: str, *, close: bool = False, peer: bool = False) -> Reply:
        """GET ``url`` and read the body. ``close`` asks for ``Connection: close`` (a new
        connection per request); ``peer`` also finds out the server's address."""
        ...

    def close(self) -> None: ...


class AsyncClient(Protocol):
    async def get(self, url: str, *, close: bool = False, peer: bool = False) -> Reply: ...

    async def aclose(self) -> None: ...


def adapter(key: str) -> Any:
    """The connectbyname adapter module for client ``key``; `Unavailable` if missing."""
    try:
        if key == "urllib3":
            from ..adapters import urllib3 as module
        elif key == "requests":
            from ..adapters import requests as module  # type: ignore[no-redef]
        else:
            from ..adapters import httpx as module  # type: ignore[no-redef]
    except ImportError as exc:
        raise Unavailable(str(exc)) from exc
    return module


def _client_module(name: str) -> Any:
    """The client library ``name``; `Unavailable`, with the command that installs it,
    if it is missing."""
    try:
        if name == "urllib3":
            import urllib3 as module
        elif name == "requests":
            import requests as module  # type: ignore[no-redef]
        elif name == "httpx":
            import httpx as module  # type: ignore[no-redef]
        else:
            import trio as module  # type: ignore[no-redef]
    except ImportError:
        extra = "all" if name == "trio" else name
        raise Unavailable(
            f"{name} is not installed: pip install 'connectbyname[{extra}]'"
        ) from None
    return module


def _info(response: object) -> ConnectionInfo | None:
    try:
        return connection_info(response)
    except LookupError:
        return None


def _peer(sock: object) -> Address | None:
    try:
        address: Address = sock.getpeername()  # type: ignore[attr-defined]
    except (AttributeError, OSError):
        return None
    return address


_CLOSE = {"Connection": "close"}


class _Urllib3:
    def __init__(self, adapted: bool, connect_timeout: float, read_timeout: float) -> None:
        urllib3 = _client_module("urllib3")
        # retries=False on both sides: urllib3's default Retry would repeat a failed
        # connect three more times, and the figures compare one connect each.
        options: dict[str, Any] = {
            "timeout": urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            "retries": False,
        }
        if adapted:
            self._pool = adapter("urllib3").PoolManager(attempt_delay=ATTEMPT_DELAY, **options)
        else:
            self._pool = urllib3.PoolManager(**options)

    def get(self, url: str, *, close: bool = False, peer: bool = False) -> Reply:
        headers = _CLOSE if close else None
        if not peer:
            response = self._pool.request("GET", url, headers=headers)
            return Reply(response.status, None, _info(response))
        response = self._pool.request("GET", url, headers=headers, preload_content=False)
        try:
            remote = _peer(getattr(response.connection, "sock", None))
            response.read()
        finally:
            response.release_conn()
        info = _info(response)
        return Reply(response.status, info.remote_address if info else remote, info)

    def close(self) -> None:
        self._pool.clear()


class _Requests:
    def __init__(self, adapted: bool, connect_timeout: float, read_timeout: float) -> None:
        requests = _client_module("requests")
        self._session = (
            adapter("requests").Session(attempt_delay=ATTEMPT_DELAY)
            if adapted
            else requests.Session()
        )
        # Environment proxies are not the subject here, on either side.
        self._session.trust_env = False
        self._timeout = (connect_timeout, read_timeout)

    def get(self, url: str, *, close: bool = False, peer: bool = False) -> Reply:
        headers = _CLOSE if close else None
        response = self._session.get(url, headers=headers, timeout=self._timeout, stream=peer)
        remote = None
        if peer:
            with response:
                remote = _peer(getattr(response.raw.connection, "sock", None))
                _ = response.content
        info = _info(response)
        return Reply(response.status_code, info.remote_address if info else remote, info)

    def close(self) -> None:
        self._session.close()


def _httpx_timeout(httpx: Any, connect_timeout: float, read_timeout: float) -> Any:
    return httpx.Timeout(read_timeout, connect=connect_timeout)


def _httpx_remote(response: Any) -> Address | None:
    stream = response.extensions.get("network_stream")
    address: Address | None = None if stream is None else stream.get_extra_info("server_addr")
    return address


class _Httpx:
    def __init__(self, adapted: bool, connect_timeout: float, read_timeout: float) -> None:
        httpx = _client_module("httpx")
        transport = (
            adapter("httpx").ConnectByNameTransport(attempt_delay=ATTEMPT_DELAY)
            if adapted
            else None
        )
        self._client = httpx.Client(
            transport=transport,
            timeout=_httpx_timeout(httpx, connect_timeout, read_timeout),
            trust_env=False,
        )

    def get(self, url: str, *, close: bool = False, peer: bool = False) -> Reply:
        headers = _CLOSE if close else None
        if not peer:
            response = self._client.get(url, headers=headers)
            return Reply(response.status_code, None, _info(response))
        with self._client.stream("GET", url, headers=headers) as response:
            remote = _httpx_remote(response)
            response.read()
        info = _info(response)
        return Reply(response.status_code, info.remote_address if info else remote, info)

    def close(self) -> None:
        self._client.close()


class _HttpxAsync:
    def __init__(self, adapted: bool, connect_timeout: float, read_timeout: float) -> None:
        httpx = _client_module("httpx")
        transport = (
            adapter("httpx-asyncio").AsyncConnectByNameTransport(attempt_delay=ATTEMPT_DELAY)
            if adapted
            else None
        )
        self._client = httpx.AsyncClient(
            transport=transport,
            timeout=_httpx_timeout(httpx, connect_timeout, read_timeout),
            trust_env=False,
        )

    async def get(self, url: str, *, close: bool = False, peer: bool = False) -> Reply:
        headers = _CLOSE if close else None
        if not peer:
            response = await self._client.get(url, headers=headers)
            return Reply(response.status_code, None, _info(response))
        async with self._client.stream("GET", url, headers=headers) as response:
            remote = _httpx_remote(response)
            await response.aread()
        info = _info(response)
        return Reply(response.status_code, info.remote_address if info else remote, info)

    async def aclose(self) -> None:
        await self._client.aclose()


class _Socket:
    """``socket.create_connection`` (stock) or `connect_by_name` (adapted), then one
    HTTP/1.0 GET on the bare socket: the engine with no client library around it."""

    def __init__(self, adapted: bool, connect_timeout: float, read_timeout: float) -> None:
        self._adapted = adapted
        self._connect_timeout, self._read_timeout = connect_timeout, read_timeout

    def get(self, url: str, *, close: bool = False, peer: bool = False) -> Reply:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 80
        info = None
        if self._adapted:
            from .._sync import connect_by_name

            connection = connect_by_name(
                host, port, timeout=self._connect_timeout, attempt_delay=ATTEMPT_DELAY
            )
            sock, info = connection.socket, ConnectionInfo.of(connection)
        else:
            sock = socket.create_connection((host, port), timeout=self._connect_timeout)
        with sock:
            sock.settimeout(self._read_timeout)
            remote: Address = sock.getpeername()
            sock.sendall(f"GET {parts.path or '/'} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        status = int(response.split(b" ", 2)[1])
        return Reply(status, info.remote_address if info else remote, info)

    def close(self) -> None:
        pass  # one socket per request, closed after it


_SYNC: dict[str, Callable[[bool, float, float], SyncClient]] = {
    ENGINE: _Socket,
    "urllib3": _Urllib3,
    "requests": _Requests,
    "httpx": _Httpx,
}


def open_sync(
    key: str, adapted: bool, connect_timeout: float, read_timeout: float = READ_TIMEOUT
) -> SyncClient:
    """A new client (``urllib3``, ``requests`` or ``httpx``), stock or adapted; the
    connect timeout is what the user would pass to that client."""
    return _SYNC[key](adapted, connect_timeout, read_timeout)


def open_async(
    adapted: bool, connect_timeout: float, read_timeout: float = READ_TIMEOUT
) -> AsyncClient:
    """A new httpx ``AsyncClient``, stock or on `AsyncConnectByNameTransport`. Create it
    inside the event loop that uses it."""
    return _HttpxAsync(adapted, connect_timeout, read_timeout)


def check_available(key: str, adapted: bool) -> None:
    """Raise `Unavailable` if client ``key`` (or its adapter) cannot run here."""
    if key == ENGINE:
        return  # the standard library and the engine: always there
    _client_module("httpx" if key.startswith("httpx") else key)
    if RUNNERS[key] == "trio":
        _client_module("trio")
    if adapted:
        adapter(key)


def run_async(runner: str, function: Callable[[], Awaitable[T]]) -> T:
    """Run ``function()`` to completion on a fresh ``asyncio`` or ``trio`` event loop."""
    if runner == "trio":
        trio = _client_module("trio")
        result: T = trio.run(function)
        return result

    async def main() -> T:
        return await function()

    return asyncio.run(main())


# --------------------------------------------------------------------------- the demo


@dataclass
class Row:
    """One fetch of the demo."""

    key: str
    adapted: bool
    seconds: float | None = None
    outcome: str = ""
    remote: Address | None = None
    info: ConnectionInfo | None = None
    available: bool = True

    @property
    def label(self) -> str:
        return LABELS[self.key] + (" + connectbyname" if self.adapted else "")


def fetch(key: str, adapted: bool, url: str, connect_timeout: float) -> Row:
    """Fetch ``url`` once with a new client; time the request (not the client set-up)."""
    row = Row(key, adapted)
    try:
        check_available(key, adapted)
    except Unavailable as exc:
        row.available, row.outcome = False, str(exc)
        return row
    started = 0.0

    def done(reply: Reply | None, error: BaseException | None) -> None:
        row.seconds = time.perf_counter() - started
        if reply is not None:
            row.outcome, row.remote, row.info = f"HTTP {reply.status}", reply.remote, reply.info
        else:
            row.outcome = _describe(error)

    if RUNNERS[key] == "sync":
        client = open_sync(key, adapted, connect_timeout)
        try:
            started = time.perf_counter()
            try:
                reply = client.get(url, peer=True)
            except Exception as exc:
                done(None, exc)
            else:
                done(reply, None)
        finally:
            client.close()
        return row

    async def run() -> None:
        nonlocal started
        client = open_async(adapted, connect_timeout)
        try:
            started = time.perf_counter()
            try:
                reply = await client.get(url, peer=True)
            except Exception as exc:
                done(None, exc)
            else:
                done(reply, None)
        finally:
            await client.aclose()

    run_async(RUNNERS[key], run)
    return row


def _describe(error: BaseException | None) -> str:
    if error is None:
        return "failed"
    text = str(error).splitlines()[0] if str(error) else ""
    if len(text) > 60:
        text = text[:57] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


_SCENARIOS = {
    "blackholed-v6": "blackholed: SYNs are dropped, connect() hangs",
    "refused-v6": "refused: connect() fails at once",
    "slow-dns": f"refused, and the AAAA answer comes {SLOW_AAAA_SECONDS:g} s late",
}


@contextlib.contextmanager
def scenario(kind: str) -> Iterator[DualStack]:
    """The scenario's servers, with `DEMO_NAME` and every ``*.DEMO_NAME`` injected
    into ``socket.getaddrinfo`` as ``[::1]`` then ``127.0.0.1``."""
    network: ScenarioKind = "blackholed-v6" if kind == "blackholed-v6" else "refused-v6"
    with dual_stack(network) as stack:
        delays: dict[int, float] = {}
        if kind == "slow-dns":
            # A combined lookup (AF_UNSPEC, what stock clients ask) waits for the AAAA
            # answer too, as the system resolver does.
            delays = {socket.AF_INET6: SLOW_AAAA_SECONDS, socket.AF_UNSPEC: SLOW_AAAA_SECONDS}
        mapping = {DEMO_NAME: stack.addresses}
        for key in LABELS:
            mapping[_name(key, False)] = mapping[_name(key, True)] = stack.addresses
        resolver = StaticResolver(
            mapping, delays=delays, fallback=localhost_fallback, record_calls=False
        )
        with patch_getaddrinfo(resolver):
            yield stack


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connectbyname demo",
        description="Offline demo on loopback: a host name whose IPv6 address is broken and "
        "whose IPv4 address serves HTTP, fetched with stock clients and with the "
        "connectbyname adapters at the same connect timeout.",
    )
    parser.add_argument(
        "--scenario",
        choices=sorted(_SCENARIOS),
        default="blackholed-v6",
        help="how IPv6 is broken (default: blackholed-v6)",
    )
    parser.add_argument(
        "--timeout",
        type=_positive,
        default=3.0,
        metavar="S",
        help="the connect timeout given to every client (default: 3)",
    )
    return parser


def _positive(text: str) -> float:
    value = float(text)
    if not 0 < value <= 60:
        raise argparse.ArgumentTypeError("the timeout must be above 0 and at most 60 s")
    return value


def main(argv: Sequence[str]) -> int:
    """Run the demo; 0 when every adapted fetch that could run got its response."""
    try:
        args = _parser().parse_args(list(argv))
    except SystemExit as exc:
        return 0 if exc.code == 0 else 2
    started = time.perf_counter()
    with scenario(args.scenario) as stack:
        print(_header(args.scenario, args.timeout, stack))
        sys.stdout.flush()
        rows = _run_all(stack, args.timeout)
        print(_table(rows))
        print()
        print(_legend(args.scenario))
        adapted = [r for r in rows if r.adapted and r.available and r.info is not None]
        # The timeline of an adapted client's request if any ran, else the engine's own.
        adapted.sort(key=lambda row: row.key == ENGINE)
        if adapted:
            _print_race(adapted[0], stack, args.timeout)
    print(f"\ndemo finished in {time.perf_counter() - started:.1f} s; servers stopped.")
    failed = [r for r in rows if r.adapted and r.available and r.info is None]
    return 1 if failed else 0


def _header(kind: str, timeout: float, stack: DualStack) -> str:
    p = stack.port
    lines = [
        f"connectbyname demo: scenario {kind}, connect timeout {timeout:g} s for every "
        f"client, attempt delay {ATTEMPT_DELAY:g} s",
        "",
        f"  {DEMO_NAME} (and *.{DEMO_NAME}) resolve, for this process only, to:",
        f"    [::1]:{p:<6}      {_SCENARIOS[kind]}",
        f"    127.0.0.1:{p:<6}  an HTTP server",
        f"  each client GETs http://<client>.{DEMO_NAME}:{p}/ with a new connection.",
        "",
        "  The stock clients run at the same time, each in its own thread, so that the",
        "  demo waits one connect timeout rather than one per client; then the adapted",
        "  clients run one after the other.",
        "",
    ]
    return "\n".join(lines)


def _name(key: str, adapted: bool) -> str:
    # A name of its own per row: the engine remembers per host and port which address
    # won, and no row should profit from an earlier one.
    return f"{key}{'-adapted' if adapted else ''}.{DEMO_NAME}"


def _run_all(stack: DualStack, timeout: float) -> list[Row]:
    stock: dict[str, Row] = {}

    def run_stock(key: str) -> None:
        stock[key] = fetch(key, False, stack.url(_name(key, False)), timeout)

    threads = [
        threading.Thread(target=run_stock, args=(key,), name=f"demo-{key}", daemon=True)
        for key in LABELS
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    rows = []
    for key in LABELS:
        rows.append(stock.get(key) or Row(key, False, outcome="did not finish"))
        rows.append(fetch(key, True, stack.url(_name(key, True)), timeout))
    return rows


def _attempts_text(row: Row) -> str:
    if not row.available:
        return ""
    if row.info is None:
        return "not reported by the client"
    return ", ".join(f"{format_address(a.address)} {a.outcome}" for a in row.info.attempts)


def _table(rows: Sequence[Row]) -> str:
    header = ("client", "time", "outcome", "remote address", "attempts")
    cells = []
    for row in rows:
        if not row.available:
            cells.append((row.label, "-", "not available", "-", row.outcome))
            continue
        remote = "-" if row.remote is None else format_address(row.remote)
        if row.remote is not None and row.info is None:
            remote += " *"
        seconds = "-" if row.seconds is None else f"{row.seconds:.3f}s"
        cells.append((row.label, seconds, row.outcome, remote, _attempts_text(row)))
    widths = [max(len(str(c[i])) for c in [header, *cells]) for i in range(4)]
    lines = []
    for i, line in enumerate([header, *cells]):
        text = "  ".join(
            f"{cell:>{widths[n]}}" if n == 1 else f"{cell:<{widths[n]}}"
            for n, cell in enumerate(line[:4])
        )
        lines.append(f"{text}  {line[4]}".rstrip())
        if i == 0:
            lines.append("-" * min(110, max(len(x) for x in lines)))
    return "\n".join(lines)


_LEGENDS = {
    "blackholed-v6": "The stock sync clients give the connect timeout to each address in turn, so\n"
    "the dead first address costs all of it; the adapters spend the connect timeout on\n"
    "the whole connect and race the addresses (RFC 8305). Stock httpx async (on anyio\n"
    "and on trio) already races the addresses.",
    "refused-v6": "A refused address fails at once, so every client gets through quickly here;\n"
    "only the adapters say which addresses they tried and how each went.",
    "slow-dns": "The stock clients ask for both families in one lookup and wait for the late\n"
    "AAAA answer; the engine looks the families up separately and starts with IPv4\n"
    "after a short Resolution Delay (RFC 8305 section 3).",
}


def _legend(kind: str) -> str:
    return (
        "socket: socket.create_connection, or connectbyname.connect_by_name, then one GET.\n"
        "time: from the request call to the body read (client set-up not included).\n"
        "* the stock client does not report the server's address; read from its socket.\n"
        + _LEGENDS[kind]
    )


def _print_race(row: Row, stack: DualStack, timeout: float) -> None:
    assert row.info is not None
    print(f"\nThe engine's timeline of the {row.label} request")
    print("(connectbyname.connection_info(response).attempts; offsets from the connect call):")
    print_timeline(row.info.attempts, row.info.elapsed)
    # A second new connection to the same name: the engine remembers what won.
    again = fetch(row.key, True, stack.url(_name(row.key, True)), timeout)
    if again.info is not None and again.seconds is not None:
        print(
            f"\nA second new connection to the same name took {again.seconds:.3f}s: "
            f"{_summary(again.info.attempts)}"
        )
        print("(the engine remembers per host and port which address won; RFC 8305 section 4)")


def _summary(attempts: Sequence[Attempt]) -> str:
    return ", ".join(f"{format_address(a.address)} {a.outcome}" for a in attempts)
