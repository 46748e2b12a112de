"""The adapters' events: TLS handshakes and their pools' use of connections, told to the
engine ``listener`` given to urllib3's drop-in classes and injection, requests' session
and httpx's transports (sync, and async on asyncio and trio); and the process-wide
observers the engine asks per call.

Everything runs on loopback; names are IP literals or ``localhost``.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
import requests
import trustme
import urllib3
from urllib3 import connectionpool as stock_pools

import connectbyname
from connectbyname import (
    ConnectionAcquired,
    ConnectionInfo,
    ConnectionReleased,
    EventListener,
    TLSFinished,
    TLSStarted,
)
from connectbyname._events import OBSERVERS, CallListener, Observer, observe, unobserve
from connectbyname.adapters import requests as cbn_requests
from connectbyname.adapters import urllib3 as cbn_urllib3
from connectbyname.adapters.httpx import AsyncConnectByNameTransport, ConnectByNameTransport
from connectbyname.testing import Blackhole, HTTPServer

ENGINE = (
    "connect_started",
    "lookup_started",
    "lookup_finished",
    "attempt_started",
    "attempt_finished",
    "connect_finished",
)
POOL = ("connection_acquired", "connection_released")
TLS = ("tls_started", "tls_finished")


class Recorder(EventListener):
    """Every event told, as (method, event), from every thread."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith(("connect_", "lookup_", "attempt_", "tls_", "connection_")):
            return lambda event: self.events.append((name, event))
        return super().__getattribute__(name)

    def names(self, *only: str) -> list[str]:
        kinds = only or (*ENGINE, *TLS, *POOL)
        return [name for name, _ in self.events if name in kinds]

    def of(self, name: str) -> list[Any]:
        return [event for told, event in self.events if told == name]


class Raising(EventListener):
    """A listener every method of which raises."""

    def __getattribute__(self, name: str) -> Any:
        if name.startswith(("connect_", "lookup_", "attempt_", "tls_", "connection_")):

            def fail(event: object) -> None:
                raise RuntimeError(f"listener bug in {name}")

            return fail
        return super().__getattribute__(name)


@pytest.fixture
def tls_server(server_ssl_context: ssl.SSLContext) -> Iterator[HTTPServer]:
    with HTTPServer("127.0.0.1", ssl_context=server_ssl_context) as server:
        yield server


@pytest.fixture
def closing_server() -> Iterator[int]:
    """A server on 127.0.0.1 answering every request with ``Connection: close``, then
    closing; yields its port."""
    listener = socket.create_server(("127.0.0.1", 0))
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except OSError:
                return
            with conn:
                data = b""
                while b"\r\n\r\n" not in data:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    data += chunk
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        # close() alone does not wake a thread blocked in accept() on Linux.
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(5)


def check_pool_events(recorder: Recorder, requests_made: int) -> None:
    """One new connection, reused by every later request, each released kept."""
    pool = [(name, event) for name, event in recorder.events if name in POOL]
    assert [name for name, _ in pool] == list(POOL) * requests_made
    acquired = [event for name, event in pool if name == "connection_acquired"]
    released = [event for name, event in pool if name == "connection_released"]
    assert [a.reused for a in acquired] == [False] + [True] * (requests_made - 1)
    assert [a.info.reused for a in acquired] == [a.reused for a in acquired]
    assert all(isinstance(a, ConnectionAcquired) for a in acquired)
    assert all(isinstance(r, ConnectionReleased) and r.kept for r in released)
    # The same connection throughout, and its release carries the info it was acquired with.
    assert len({a.info.local_address for a in acquired}) == 1
    assert [r.info for r in released] == [a.info for a in acquired]
    # A new connection is acquired once connected (and through TLS, for HTTPS).
    names = recorder.names()
    assert names.index("connect_finished") < names.index("connection_acquired")
    if "tls_finished" in names:
        assert names.index("tls_finished") < names.index("connection_acquired")


def check_tls_events(recorder: Recorder, port: int, server_name: str = "localhost") -> None:
    names = recorder.names()
    assert names.count("tls_started") == names.count("tls_finished") == 1
    # The handshake is part of the race (Happy Eyeballs v3): it begins once the attempt
    # connects over TCP, and the attempt, and the call, end with it.
    assert names.index("attempt_started") < names.index("tls_started")
    assert names.index("tls_started") < names.index("tls_finished")
    assert names.index("tls_finished") < names.index("attempt_finished")
    assert names.index("attempt_finished") < names.index("connect_finished")
    (started,) = recorder.of("tls_started")
    (finished,) = recorder.of("tls_finished")
    assert isinstance(started, TLSStarted)
    assert isinstance(finished, TLSFinished)
    assert started.server_name == finished.server_name == server_name
    assert started.address == finished.address == ("127.0.0.1", port)
    (connected,) = recorder.of("connect_finished")
    assert started.elapsed <= finished.elapsed <= connected.elapsed
    assert finished.duration == pytest.approx(finished.elapsed - started.elapsed, abs=1e-6)
    assert finished.error is None
    assert finished.version in ("TLSv1.2", "TLSv1.3")
    assert finished.alpn_protocol in (None, "http/1.1")


# --------------------------------------------------------------------------- urllib3


def test_the_engine_makes_only_the_events_a_listener_overrides(
    monkeypatch: pytest.MonkeyPatch, http_server: HTTPServer
) -> None:
    from connectbyname import _race
    from connectbyname._events import EVENT_METHODS, Fanout, wanted

    class One(EventListener):
        def attempt_finished(self, event: Any) -> None:
            pass

    assert wanted(EventListener()) == frozenset()
    assert wanted(One()) == {"attempt_finished"}
    assert wanted(Fanout((EventListener(), One()))) == {"attempt_finished"}
    set_on_itself = EventListener()
    set_on_itself.connect_finished = lambda event: None  # type: ignore[method-assign]
    assert wanted(set_on_itself) == {"connect_finished"}
    assert wanted(Recorder()) == set(EVENT_METHODS)  # its __getattribute__ may answer any
    # An EventListener with nothing overridden costs what no listener does: the call
    # keeps no record of what it told.
    made: list[object] = []
    real = _race._Told

    def counted(*args: Any) -> Any:
        made.append(args)
        return real(*args)

    monkeypatch.setattr(_race, "_Told", counted)
    connectbyname.connect_by_name("127.0.0.1", http_server.port, listener=EventListener()).close()
    assert made == []
    connectbyname.connect_by_name("127.0.0.1", http_server.port, listener=One()).close()
    assert len(made) == 1


def test_urllib3_drop_in_pool_tells_acquired_new_then_reused_and_releases(
    http_server: HTTPServer,
) -> None:
    recorder = Recorder()
    with cbn_urllib3.PoolManager(listener=recorder) as manager:
        for _ in range(3):
            assert manager.request("GET", f"http://localhost:{http_server.port}/").status == 200
    check_pool_events(recorder, 3)
    assert recorder.names(*ENGINE).count("connect_started") == 1
    assert http_server.connection_count == 1


def test_urllib3_streamed_response_releases_when_released(http_server: HTTPServer) -> None:
    recorder = Recorder()
    with cbn_urllib3.PoolManager(listener=recorder) as manager:
        response = manager.request(
            "GET", f"http://127.0.0.1:{http_server.port}/", preload_content=False
        )
        assert recorder.names(*POOL) == ["connection_acquired"]
        response.read()
        response.release_conn()
        assert recorder.names(*POOL) == list(POOL)


def test_urllib3_https_tells_the_handshake(
    tls_server: HTTPServer, client_ssl_context: ssl.SSLContext
) -> None:
    recorder = Recorder()
    with cbn_urllib3.PoolManager(listener=recorder, ssl_context=client_ssl_context) as manager:
        for _ in range(2):
            assert manager.request("GET", f"https://localhost:{tls_server.port}/").status == 200
    check_tls_events(recorder, tls_server.port)
    check_pool_events(recorder, 2)


def test_urllib3_failed_handshake_is_told_with_its_error(
    tls_server: HTTPServer, server_ssl_context: ssl.SSLContext
) -> None:
    recorder = Recorder()
    untrusting = ssl.create_default_context(cafile=None)
    untrusting.load_verify_locations(cadata=trustme.CA().cert_pem.bytes().decode())
    with (
        cbn_urllib3.PoolManager(
            listener=recorder, ssl_context=untrusting, retries=False
        ) as manager,
        pytest.raises(urllib3.exceptions.SSLError),
    ):
        manager.request("GET", f"https://localhost:{tls_server.port}/")
    (finished,) = recorder.of("tls_finished")
    assert isinstance(finished.error, ssl.SSLCertVerificationError)
    assert finished.version is None
    assert recorder.names(*POOL) == []


def test_urllib3_https_through_a_tunnel_names_the_origin(
    tls_server: HTTPServer, client_ssl_context: ssl.SSLContext, proxy_server: Any
) -> None:
    recorder = Recorder()
    with cbn_urllib3.ProxyManager(
        proxy_server.url, listener=recorder, ssl_context=client_ssl_context
    ) as manager:
        assert manager.request("GET", f"https://localhost:{tls_server.port}/").status == 200
    (started,) = recorder.of("tls_started")
    (finished,) = recorder.of("tls_finished")
    # The TCP connection is the proxy's; the handshake, through the tunnel, the origin's.
    assert started.server_name == finished.server_name == "localhost"
    assert started.address == ("127.0.0.1", proxy_server.port)
    assert finished.error is None
    assert proxy_server.connect_requests


def test_urllib3_injection_tells_the_injected_listener(http_server: HTTPServer) -> None:
    recorder = Recorder()
    cbn_urllib3.inject_into_urllib3(listener=recorder)
    try:
        with urllib3.PoolManager() as manager:
            for _ in range(2):
                assert manager.request("GET", f"http://localhost:{http_server.port}/").status == 200
    finally:
        cbn_urllib3.extract_from_urllib3()
    check_pool_events(recorder, 2)
    assert stock_pools.HTTPConnectionPool._get_conn is cbn_urllib3._STOCK_GET_CONN
    assert stock_pools.HTTPConnectionPool._put_conn is cbn_urllib3._STOCK_PUT_CONN
    assert urllib3.connection.HTTPConnection.close is cbn_urllib3._STOCK_CLOSE


def test_urllib3_injection_without_a_listener_leaves_the_pools_alone() -> None:
    cbn_urllib3.inject_into_urllib3(listener=Recorder())
    try:
        cbn_urllib3.inject_into_urllib3()  # again, without: the pool methods go back
        assert "_get_conn" not in vars(stock_pools.HTTPConnectionPool) or (
            stock_pools.HTTPConnectionPool._get_conn is cbn_urllib3._STOCK_GET_CONN
        )
        assert stock_pools.HTTPConnectionPool._put_conn is cbn_urllib3._STOCK_PUT_CONN
        assert urllib3.connection.HTTPConnection.close is cbn_urllib3._STOCK_CLOSE
    finally:
        cbn_urllib3.extract_from_urllib3()


def test_a_drop_in_pool_without_a_listener_keeps_urllib3s_pool_methods() -> None:
    plain = cbn_urllib3.HTTPConnectionPool("localhost", 80)
    listened = cbn_urllib3.HTTPConnectionPool("localhost", 80, listener=Recorder())
    assert "_get_conn" not in vars(plain)
    assert "_put_conn" not in vars(plain)
    assert "_get_conn" in vars(listened)
    assert "_put_conn" in vars(listened)


def test_a_connection_the_server_closes_is_released_not_kept(closing_server: int) -> None:
    recorder = Recorder()
    with cbn_urllib3.PoolManager(listener=recorder) as manager:
        for _ in range(2):
            assert manager.request("GET", f"http://127.0.0.1:{closing_server}/").data == b"ok"
    assert recorder.names(*POOL) == list(POOL) * 2
    assert [e.reused for e in recorder.of("connection_acquired")] == [False, False]
    assert [e.kept for e in recorder.of("connection_released")] == [False, False]


def test_an_error_mid_request_releases_the_connection_closed() -> None:
    # The server accepts, reads the request and hangs up without answering.
    recorder = Recorder()
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]

        def hang_up() -> None:
            conn, _ = listener.accept()
            with conn:
                conn.recv(4096)

        thread = threading.Thread(target=hang_up, daemon=True)
        thread.start()
        with cbn_urllib3.PoolManager(listener=recorder, retries=False) as manager:
            with pytest.raises(urllib3.exceptions.ProtocolError):
                manager.request("GET", f"http://127.0.0.1:{port}/")
        thread.join(5)
    assert recorder.names(*POOL) == list(POOL)
    (released,) = recorder.of("connection_released")
    assert released.kept is False


# --------------------------------------------------------------------------- requests


def test_requests_session_tells_the_pool_events(http_server: HTTPServer) -> None:
    recorder = Recorder()
    with cbn_requests.Session(listener=recorder) as session:
        for _ in range(3):
            assert session.get(f"http://localhost:{http_server.port}/").status_code == 200
    check_pool_events(recorder, 3)


def test_requests_https_tells_the_handshake(tls_server: HTTPServer, ca_bundle_path: str) -> None:
    recorder = Recorder()
    with cbn_requests.Session(listener=recorder) as session:
        for _ in range(2):
            response = session.get(f"https://localhost:{tls_server.port}/", verify=ca_bundle_path)
            assert response.status_code == 200
    check_tls_events(recorder, tls_server.port)
    check_pool_events(recorder, 2)


def test_a_raising_listener_is_logged_once_and_requests_succeed(
    http_server: HTTPServer, tls_server: HTTPServer, ca_bundle_path: str, caplog: Any
) -> None:
    listener = Raising()
    with caplog.at_level(logging.ERROR, logger="connectbyname"):
        with cbn_requests.Session(listener=listener) as session:
            for _ in range(3):
                assert session.get(f"http://localhost:{http_server.port}/").status_code == 200
                response = session.get(
                    f"https://localhost:{tls_server.port}/", verify=ca_bundle_path
                )
                assert response.status_code == 200
    logged = [r.getMessage() for r in caplog.records if "event listener" in r.getMessage()]
    methods = sorted(message.split(" raised in ")[1].split(";")[0] for message in logged)
    # Each method that was told, once, however many requests.
    assert methods == sorted({*ENGINE, *TLS, *POOL})
    # The records' tracebacks hold the frames that held the connections' sockets.
    caplog.clear()


# --------------------------------------------------------------------------- httpx


def fetch(mode: str, urls: list[str], **transport: Any) -> list[httpx.Response]:
    """GET each URL in turn on one client, then close it."""
    if mode == "sync":
        with httpx.Client(transport=ConnectByNameTransport(**transport), timeout=5) as client:
            return [client.get(url) for url in urls]

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=AsyncConnectByNameTransport(**transport), timeout=5
        ) as client:
            return [await client.get(url) for url in urls]

    responses: list[httpx.Response] = anyio.run(main, backend=mode)
    return responses


@pytest.fixture(params=["sync", "asyncio", "trio"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_httpx_tells_acquired_new_then_reused_and_releases(
    mode: str, http_server: HTTPServer
) -> None:
    recorder = Recorder()
    url = f"http://localhost:{http_server.port}/"
    responses = fetch(mode, [url] * 3, listener=recorder)
    assert [r.status_code for r in responses] == [200] * 3
    check_pool_events(recorder, 3)
    assert [connectbyname.connection_info(r) for r in responses] == [
        e.info for e in recorder.of("connection_acquired")
    ]


def test_httpx_https_tells_the_handshake(
    mode: str, tls_server: HTTPServer, client_ssl_context: ssl.SSLContext
) -> None:
    recorder = Recorder()
    url = f"https://localhost:{tls_server.port}/"
    fetch(mode, [url] * 2, listener=recorder, verify=client_ssl_context)
    check_tls_events(recorder, tls_server.port)
    check_pool_events(recorder, 2)


def test_httpx_failed_handshake_is_told_with_its_error(mode: str, tls_server: HTTPServer) -> None:
    recorder = Recorder()
    untrusting = ssl.create_default_context()
    untrusting.load_verify_locations(cadata=trustme.CA().cert_pem.bytes().decode())
    with pytest.raises(httpx.ConnectError):
        fetch(mode, [f"https://localhost:{tls_server.port}/"], listener=recorder, verify=untrusting)
    (finished,) = recorder.of("tls_finished")
    assert isinstance(finished.error, ssl.SSLCertVerificationError | ssl.SSLError)
    assert recorder.names(*POOL) == []


def test_httpx_connection_the_server_closes_is_released_not_kept(
    mode: str, closing_server: int
) -> None:
    recorder = Recorder()
    fetch(mode, [f"http://127.0.0.1:{closing_server}/"] * 2, listener=recorder)
    assert recorder.names(*POOL) == list(POOL) * 2
    assert [e.reused for e in recorder.of("connection_acquired")] == [False, False]
    assert [e.kept for e in recorder.of("connection_released")] == [False, False]


def test_httpx_streamed_response_releases_when_closed(http_server: HTTPServer) -> None:
    recorder = Recorder()
    with (
        httpx.Client(transport=ConnectByNameTransport(listener=recorder)) as client,
        client.stream("GET", f"http://127.0.0.1:{http_server.port}/stream") as response,
    ):
        assert recorder.names(*POOL) == ["connection_acquired"]
        assert b"".join(response.iter_bytes()).startswith(b"chunk 0")
    assert recorder.names(*POOL) == list(POOL)


def test_httpx_raising_listener_is_logged_once_and_requests_succeed(
    mode: str, tls_server: HTTPServer, client_ssl_context: ssl.SSLContext, caplog: Any
) -> None:
    with caplog.at_level(logging.ERROR, logger="connectbyname"):
        responses = fetch(
            mode,
            [f"https://localhost:{tls_server.port}/"] * 3,
            listener=Raising(),
            verify=client_ssl_context,
        )
    assert [r.status_code for r in responses] == [200] * 3
    logged = [r.getMessage() for r in caplog.records if "event listener" in r.getMessage()]
    assert len(logged) == len({*ENGINE, *TLS, *POOL})


def test_without_a_listener_the_transports_tell_nothing(http_server: HTTPServer) -> None:
    with httpx.Client(transport=ConnectByNameTransport()) as client:
        response = client.get(f"http://127.0.0.1:{http_server.port}/")
        # The response's stream is httpx's own, not wrapped to tell a release.
        assert type(response.stream).__module__.startswith("httpx")
    assert isinstance(connectbyname.connection_info(response), ConnectionInfo)


# --------------------------------------------------------------------------- observers


class Made(CallListener):
    def __init__(self, observer: Counting, host: str) -> None:
        self.log_as = observer
        self.host = host
        self.names: list[str] = []
        self.abandoned: list[BaseException] = []

    def __getattribute__(self, name: str) -> Any:
        if name.startswith(("connect_", "lookup_", "attempt_", "tls_")):
            return lambda event: self.names.append(name)
        return super().__getattribute__(name)

    def call_abandoned(self, error: BaseException) -> None:
        self.abandoned.append(error)


class Counting(Observer):
    """Makes a listener for every call and handshake (or for none, ``skip``)."""

    def __init__(self, skip: bool = False) -> None:
        self.skip = skip
        self.made: list[Made] = []

    def connect(self, host: str, port: int) -> CallListener | None:
        if self.skip:
            return None
        self.made.append(Made(self, host))
        return self.made[-1]

    def tls(self, server_name: str | None, address: Any) -> CallListener | None:
        self.made.append(Made(self, f"tls {server_name}"))
        return self.made[-1]


@pytest.fixture
def observed() -> Iterator[Callable[[Observer], None]]:
    added: list[Observer] = []

    def add(observer: Observer) -> None:
        observe(observer)
        added.append(observer)

    yield add
    for observer in added:
        unobserve(observer)
    assert not OBSERVERS


def test_an_observer_is_told_every_call_next_to_the_calls_own_listener(
    observed: Callable[[Observer], None], http_server: HTTPServer
) -> None:
    observer, own = Counting(), Recorder()
    observed(observer)
    with connectbyname.connect_by_name("localhost", http_server.port, listener=own):
        pass
    with connectbyname.connect_by_name("127.0.0.1", http_server.port):
        pass
    assert [m.host for m in observer.made] == ["localhost", "127.0.0.1"]
    assert observer.made[0].names == own.names() == observer.made[0].names
    assert observer.made[1].names[0] == "connect_started"
    assert observer.made[1].names[-1] == "connect_finished"
    assert not any(m.abandoned for m in observer.made)


def test_an_observer_sees_the_adapters_handshakes(
    observed: Callable[[Observer], None], tls_server: HTTPServer, ca_bundle_path: str
) -> None:
    observer = Counting()
    observed(observer)
    with cbn_requests.Session() as session:
        session.get(f"https://localhost:{tls_server.port}/", verify=ca_bundle_path)
    # The handshake is raced in the call: told to the call's listener.
    assert [m.host for m in observer.made] == ["localhost"]
    assert [name for name in observer.made[0].names if name in TLS] == list(TLS)


def test_an_observer_that_makes_no_listener_leaves_the_call_without_events(
    observed: Callable[[Observer], None], http_server: HTTPServer, monkeypatch: Any
) -> None:
    from connectbyname import _race

    made: list[object] = []
    original = _race._Told.__init__

    def counting(self: Any, *args: Any) -> None:
        made.append(self)
        original(self, *args)

    monkeypatch.setattr(_race._Told, "__init__", counting)
    observed(Counting(skip=True))
    with connectbyname.connect_by_name("127.0.0.1", http_server.port):
        pass
    assert made == []


def test_an_abandoned_call_is_told_to_the_observers_listener(
    observed: Callable[[Observer], None],
) -> None:
    observer = Counting()
    observed(observer)

    async def main() -> None:
        with Blackhole("127.0.0.1") as hole, anyio.move_on_after(0.2):
            await connectbyname.aconnect_by_name("127.0.0.1", hole.port, timeout=10)

    anyio.run(main)
    (made,) = observer.made
    assert "connect_finished" not in made.names
    (error,) = made.abandoned
    assert isinstance(error, GeneratorExit)
    # What closed the race: the cancellation.
    assert type(error.__context__).__name__ == "CancelledError"


def test_a_failed_call_ends_with_connect_finished(observed: Callable[[Observer], None]) -> None:
    observer = Counting()
    observed(observer)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(connectbyname.RefusedError):
        connectbyname.connect_by_name("127.0.0.1", port, timeout=5)
    (made,) = observer.made
    assert made.names[-1] == "connect_finished"
    # call_abandoned follows the error out of the race too: a listener that was told
    # connect_finished ignores it (connectbyname.otel's does).
    assert len(made.abandoned) == 1


def test_an_observer_that_raises_is_logged_once(
    observed: Callable[[Observer], None], http_server: HTTPServer, caplog: Any
) -> None:
    class Broken(Observer):
        def connect(self, host: str, port: int) -> CallListener | None:
            raise RuntimeError("observer bug")

    observed(Broken())
    with caplog.at_level(logging.ERROR, logger="connectbyname"):
        for _ in range(3):
            with connectbyname.connect_by_name("127.0.0.1", http_server.port):
                pass
    assert len([r for r in caplog.records if "raised in connect" in r.getMessage()]) == 1


def test_a_per_call_listener_that_raises_is_logged_once_as_its_observer(
    observed: Callable[[Observer], None], http_server: HTTPServer, caplog: Any
) -> None:
    class Failing(CallListener):
        def connect_finished(self, event: object) -> None:
            raise RuntimeError("per-call listener bug")

    class Making(Observer):
        def connect(self, host: str, port: int) -> CallListener | None:
            listener = Failing()
            listener.log_as = self
            return listener

    observed(Making())
    with caplog.at_level(logging.ERROR, logger="connectbyname"):
        for _ in range(3):
            with connectbyname.connect_by_name("127.0.0.1", http_server.port):
                pass
    logged = [r for r in caplog.records if "raised in connect_finished" in r.getMessage()]
    assert len(logged) == 1


def test_requests_session_events_reach_both_listeners(
    observed: Callable[[Observer], None], http_server: HTTPServer
) -> None:
    observer, own = Counting(), Recorder()
    observed(observer)
    session = requests.Session()
    session.mount("http://", cbn_requests.ConnectByNameAdapter(listener=own))
    with session:
        session.get(f"http://localhost:{http_server.port}/")
    assert own.names(*ENGINE) == observer.made[0].names
    assert own.names(*POOL) == list(POOL)
