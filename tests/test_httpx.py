"""The httpx transports end to end, on loopback: the sync client, and the async client on
asyncio and on trio (every scenario runs in each ``mode``).

Names are injected with ``resolver=`` (a StaticResolver), so the system resolver is
never asked; the proxy server resolves through ``fake_dns``.
"""

from __future__ import annotations

import contextlib
import inspect
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import h2.config
import h2.connection
import h2.events
import httpcore
import httpx
import pytest
import trustme

from connectbyname import (
    SPECIAL_NETWORKS,
    AddressDeniedError,
    AddressPolicy,
    ConnectByNameError,
    ConnectionInfo,
    HostUnreachableError,
    Outcome,
    TimedOutError,
    connection_info,
)
from connectbyname.adapters.httpx import (
    AsyncConnectByNameTransport,
    ConnectByNameAddressDeniedError,
    ConnectByNameTransport,
)
from connectbyname.testing import (
    DualStack,
    HTTPServer,
    ProxyServer,
    StaticResolver,
    blackholed_everywhere,
    open_fds,
    refused_port,
)

NAME = "example.test"
HELLO = "hello from connectbyname\n"


@pytest.fixture(params=["sync", "asyncio", "trio"])
def mode(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def fetch(
    mode: str, urls: list[str], *, timeout: Any = 5.0, **transport: Any
) -> list[httpx.Response]:
    """GET each URL in turn on one client (body read), close the client, and return the
    responses."""
    if mode == "sync":
        with httpx.Client(transport=ConnectByNameTransport(**transport), timeout=timeout) as client:
            return [client.get(url) for url in urls]

    async def main() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=AsyncConnectByNameTransport(**transport), timeout=timeout
        ) as client:
            return [await client.get(url) for url in urls]

    result: list[httpx.Response] = anyio.run(main, backend=mode)
    return result


def engine_error(exc: BaseException) -> ConnectByNameError:
    """The engine's error behind httpx's: the cause of httpcore's error."""
    assert isinstance(exc.__cause__, httpcore.ConnectError | httpcore.ConnectTimeout)
    error = exc.__cause__.__cause__
    assert isinstance(error, ConnectByNameError)
    return error


# --------------------------------------------------------------------------- HTTP/2 server


class H2Server:
    """A minimal HTTP/2 server on 127.0.0.1: TLS with ALPN "h2" only, and 200 ``h2 ok``
    for every request. ``connections`` counts the TCP connections it accepted."""

    def __init__(self, cert: trustme.LeafCert) -> None:
        self._context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        cert.configure_cert(self._context)
        self._context.set_alpn_protocols(["h2"])
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self.connections = 0
        self._lock = threading.Lock()
        self._live: list[socket.socket] = []
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self._listener.accept()
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
                self._live.append(sock)
                thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
                self._threads.append(thread)
            thread.start()

    def _serve(self, sock: socket.socket) -> None:
        with contextlib.suppress(OSError), sock:
            sock.settimeout(5)
            with self._context.wrap_socket(sock, server_side=True) as tls:
                with self._lock:
                    self._live.append(tls)
                conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
                conn.initiate_connection()
                tls.sendall(conn.data_to_send())
                while data := tls.recv(65536):
                    for event in conn.receive_data(data):
                        if isinstance(event, h2.events.RequestReceived):
                            headers = [(":status", "200"), ("content-length", "5")]
                            conn.send_headers(event.stream_id, headers)
                            conn.send_data(event.stream_id, b"h2 ok", end_stream=True)
                    tls.sendall(conn.data_to_send())

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes accept() on Linux
        self._listener.close()
        with self._lock:
            live = list(self._live)
        for sock in live:
            with contextlib.suppress(OSError):
                socket.socket.shutdown(sock, socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)


@pytest.fixture
def h2_server(server_cert: trustme.LeafCert) -> Iterator[H2Server]:
    server = H2Server(server_cert)
    try:
        yield server
    finally:
        server.close()


# --------------------------------------------------------------------------- racing


def test_blackholed_v6_falls_back_to_v4(
    assert_no_fd_leak: None, mode: str, blackholed_v6: DualStack
) -> None:
    resolver = StaticResolver({NAME: blackholed_v6.addresses})
    (response,) = fetch(mode, [blackholed_v6.url(NAME)], resolver=resolver, history=False)
    assert response.text == HELLO
    info = connection_info(response)
    assert info.remote_address == ("127.0.0.1", blackholed_v6.port)
    assert [(a.address[0], a.outcome) for a in info.attempts] == [
        ("::1", Outcome.ABANDONED),
        ("127.0.0.1", Outcome.CONNECTED),
    ]
    assert 0.2 <= info.elapsed < 1.0
    assert not info.reused
    assert not info.via_proxy


def test_refused_v6_moves_on_at_once(
    assert_no_fd_leak: None, mode: str, refused_v6: DualStack
) -> None:
    resolver = StaticResolver({NAME: refused_v6.addresses})
    (response,) = fetch(
        mode, [refused_v6.url(NAME)], resolver=resolver, history=False, attempt_delay=2
    )
    assert response.status_code == 200
    v6, v4 = connection_info(response).attempts
    assert v6.outcome is Outcome.REFUSED
    assert v4.outcome is Outcome.CONNECTED
    assert v4.start < 1.0  # not after the attempt delay (2 s): the margin is for a loaded machine


def test_all_dead_fails_within_the_connect_timeout(assert_no_fd_leak: None, mode: str) -> None:
    with blackholed_everywhere() as port:
        resolver = StaticResolver({NAME: ["::1", "127.0.0.1"]})
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout) as caught:
            fetch(
                mode,
                [f"http://{NAME}:{port}/"],
                timeout=httpx.Timeout(5, connect=0.4),
                resolver=resolver,
                history=False,
            )
        assert time.monotonic() - started < 1.0
    error = engine_error(caught.value)
    assert isinstance(error, TimedOutError)
    assert [a.outcome for a in error.attempts] == [Outcome.TIMED_OUT] * 2


def test_connect_errors_are_retried_as_stock(assert_no_fd_leak: None, mode: str) -> None:
    with refused_port("127.0.0.1") as port:
        resolver = StaticResolver({NAME: "127.0.0.1"})
        with pytest.raises(httpx.ConnectError) as caught:
            fetch(
                mode,
                [f"http://{NAME}:{port}/"],
                resolver=resolver,
                family=socket.AF_INET,
                retries=1,
            )
    assert isinstance(engine_error(caught.value), HostUnreachableError)
    assert len(resolver.calls) == 2  # the first try and one retry, one lookup each


def test_tls_handshake_gets_what_is_left_of_the_connect_timeout(
    assert_no_fd_leak: None, mode: str, client_ssl_context: ssl.SSLContext
) -> None:
    # A listener that completes TCP handshakes (in the kernel) but never answers TLS;
    # resolving takes 0.3 s of the 0.6 s connect budget.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        resolver = StaticResolver({NAME: "127.0.0.1"}, delay=0.3)
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout):
            fetch(
                mode,
                [f"https://{NAME}:{silent.getsockname()[1]}/"],
                timeout=httpx.Timeout(5, connect=0.6),
                verify=client_ssl_context,
                resolver=resolver,
                family=socket.AF_INET,
            )
        took = time.monotonic() - started
    assert 0.55 <= took < 0.85  # not 0.3 + 0.6


# --------------------------------------------------------------------------- HTTPS, HTTP/2


def test_https_verifies_and_sends_sni_for_the_name(
    assert_no_fd_leak: None,
    mode: str,
    server_cert: trustme.LeafCert,
    client_ssl_context: ssl.SSLContext,
) -> None:
    seen: list[str | None] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    context.sni_callback = lambda _sock, name, _context: seen.append(name)
    with HTTPServer("127.0.0.1", ssl_context=context) as server:
        resolver = StaticResolver({NAME: "127.0.0.1", "other.invalid": "127.0.0.1"})
        (response,) = fetch(
            mode, [f"https://{NAME}:{server.port}/"], verify=client_ssl_context, resolver=resolver
        )
        assert response.text == HELLO
        assert seen == [NAME]
        assert connection_info(response).remote_address == ("127.0.0.1", server.port)
        # The certificate is checked against the name, not the address reached.
        with pytest.raises(httpx.ConnectError, match="certificate"):
            fetch(
                mode,
                [f"https://other.invalid:{server.port}/"],
                verify=client_ssl_context,
                resolver=resolver,
            )


def test_keep_alive_reuse_is_reported(
    assert_no_fd_leak: None, mode: str, http_server: HTTPServer
) -> None:
    resolver = StaticResolver({NAME: "127.0.0.1"})
    url = f"http://{NAME}:{http_server.port}/"
    first, second = fetch(mode, [url, url], resolver=resolver)
    # The client is closed by now: the info was kept at connect time.
    one, two = connection_info(first), connection_info(second)
    assert (one.reused, two.reused) == (False, True)
    assert one.local_address == two.local_address
    assert one.attempts == two.attempts
    assert http_server.connection_count == 1


def test_a_silent_server_is_a_read_timeout_on_the_native_stream(
    assert_no_fd_leak: None, mode: str
) -> None:
    # The kernel completes the handshake and queues the request; nobody answers.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        url = f"http://127.0.0.1:{silent.getsockname()[1]}/"
        started = time.monotonic()
        with pytest.raises(httpx.ReadTimeout):
            fetch(mode, [url], timeout=httpx.Timeout(5.0, read=0.3))
        assert time.monotonic() - started < 0.3 + 2.0
    # A served request shows which stream carried it: trio's own streams on trio.
    with HTTPServer() as server:
        (response,) = fetch(mode, [f"http://127.0.0.1:{server.port}/"])
        stream = response.extensions["network_stream"]
        expected = {"sync": "SyncStream", "asyncio": "AsyncStream", "trio": "AsyncStream"}
        assert type(stream).__name__ == expected[mode]
        if mode != "sync":  # and on trio, trio's own streams, as stock httpx has there
            assert type(stream._io).__name__ == {"asyncio": "_AnyioIO", "trio": "_TrioIO"}[mode]
        assert stream.get_extra_info("server_addr") == ("127.0.0.1", server.port)


# Run as a script in a fresh interpreter: an asyncio program where trio cannot be
# imported, as when it is not installed (httpcore imports trio whenever it can).
_ASYNCIO_WITHOUT_TRIO = """
import asyncio, sys
sys.modules["trio"] = None  # "import trio" now raises ImportError
import httpx
from connectbyname.adapters.httpx import AsyncConnectByNameTransport

async def main():
    async with httpx.AsyncClient(transport=AsyncConnectByNameTransport()) as client:
        response = await client.get(sys.argv[1])
    return response.text, type(response.extensions["network_stream"]._io).__name__

text, stream = asyncio.run(main())
print(repr(text), stream, sys.modules["trio"])
"""


@pytest.mark.parametrize("case", ["asyncio-without-trio", "asyncio-trio-imported", "trio"])
def test_async_request_whether_or_not_trio_is_imported(
    case: str, http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Telling asyncio from trio must work with no trio imported at all, and on any trio
    # (the httpx extra does not bound it; httpx's own tests pin 0.27): so as if on a
    # trio older than 0.29, without trio.lowlevel.in_trio_run.
    url = f"http://127.0.0.1:{http_server.port}/"
    if case == "asyncio-without-trio":
        result = subprocess.run(
            [sys.executable, "-c", _ASYNCIO_WITHOUT_TRIO, url],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout.strip() == f"{HELLO!r} _AnyioIO None"  # None: no trio
        return
    import trio  # imported: the adapter must still see that this is asyncio

    monkeypatch.delattr(trio.lowlevel, "in_trio_run", raising=False)
    (response,) = fetch("asyncio" if case.startswith("asyncio") else "trio", [url])
    assert response.text == HELLO
    expected = "_TrioIO" if case == "trio" else "_AnyioIO"
    assert type(response.extensions["network_stream"]._io).__name__ == expected


def test_http2_over_alpn(
    assert_no_fd_leak: None,
    mode: str,
    h2_server: H2Server,
    client_ssl_context: ssl.SSLContext,
) -> None:
    resolver = StaticResolver({NAME: "127.0.0.1"})
    url = f"https://{NAME}:{h2_server.port}/"
    first, second = fetch(
        mode, [url, url], http2=True, verify=client_ssl_context, resolver=resolver
    )
    assert [r.http_version for r in (first, second)] == ["HTTP/2", "HTTP/2"]
    assert first.text == "h2 ok"
    assert [connection_info(r).reused for r in (first, second)] == [False, True]
    assert connection_info(first).remote_address == ("127.0.0.1", h2_server.port)
    assert h2_server.connections == 1


# --------------------------------------------------------------------------- proxies


@pytest.fixture
def proxied(
    fake_dns: Callable[..., StaticResolver], proxy_server: ProxyServer
) -> tuple[ProxyServer, StaticResolver]:
    """The proxy (its own lookups see NAME) and the transport's resolver, which knows
    the proxy as proxy.test."""
    fake_dns({NAME: "127.0.0.1"})
    return proxy_server, StaticResolver({"proxy.test": "127.0.0.1"})


def via_proxy(info: ConnectionInfo, proxy: ProxyServer) -> bool:
    return info.via_proxy and info.remote_address == ("127.0.0.1", proxy.port)


def test_proxy_forwards_http_and_tunnels_https(  # noqa: PLR0917 (fixtures)
    assert_no_fd_leak: None,
    mode: str,
    proxied: tuple[ProxyServer, StaticResolver],
    http_server: HTTPServer,
    https_server: HTTPServer,
    client_ssl_context: ssl.SSLContext,
) -> None:
    proxy, resolver = proxied
    plain, tls = fetch(
        mode,
        [f"http://{NAME}:{http_server.port}/", f"https://{NAME}:{https_server.port}/"],
        proxy=f"http://proxy.test:{proxy.port}",
        verify=client_ssl_context,
        resolver=resolver,
    )
    assert plain.text == tls.text == HELLO
    assert plain.headers["X-Proxied-By"] == "connectbyname-loopback"
    assert (proxy.forwarded_requests, proxy.connect_requests) == (1, 1)
    assert via_proxy(connection_info(plain), proxy)
    assert via_proxy(connection_info(tls), proxy)
    assert resolver.calls[0].host == "proxy.test"


def test_a_tunnels_silent_tls_is_a_connect_timeout(
    assert_no_fd_leak: None,
    mode: str,
    proxied: tuple[ProxyServer, StaticResolver],
    client_ssl_context: ssl.SSLContext,
) -> None:
    # The proxy tunnels to a listener whose kernel completes TCP and that never answers
    # TLS: the handshake through the tunnel (the stream's start_tls, not the race's)
    # ends at the connect deadline.
    proxy, resolver = proxied
    with socket.create_server(("127.0.0.1", 0)) as silent:
        started = time.monotonic()
        with pytest.raises(httpx.ConnectTimeout):
            fetch(
                mode,
                [f"https://{NAME}:{silent.getsockname()[1]}/"],
                timeout=httpx.Timeout(5, connect=0.5),
                proxy=f"http://proxy.test:{proxy.port}",
                verify=client_ssl_context,
                resolver=resolver,
            )
        took = time.monotonic() - started
    assert proxy.connect_requests == 1
    assert 0.45 <= took < 0.5 + 1.5


def test_environment_proxy_when_trusting_the_environment(
    assert_no_fd_leak: None,
    mode: str,
    monkeypatch: pytest.MonkeyPatch,
    proxied: tuple[ProxyServer, StaticResolver],
    http_server: HTTPServer,
) -> None:
    proxy, resolver = proxied
    resolver.set_addresses(NAME, "127.0.0.1")
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.setenv("HTTP_PROXY", f"http://proxy.test:{proxy.port}")
    url = f"http://{NAME}:{http_server.port}/"

    (response,) = fetch(mode, [url], resolver=resolver)
    assert via_proxy(connection_info(response), proxy)
    assert proxy.forwarded_requests == 1

    (direct,) = fetch(mode, [url], resolver=resolver, trust_env=False)
    monkeypatch.setenv("NO_PROXY", NAME)
    (bypassed,) = fetch(mode, [url], resolver=resolver)
    for response in (direct, bypassed):
        info = connection_info(response)
        assert not info.via_proxy
        assert info.remote_address == ("127.0.0.1", http_server.port)
    assert proxy.forwarded_requests == 1


# --------------------------------------------------------------------------- cancellation


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_cancelled_request_mid_race_leaves_no_descriptor(backend: str) -> None:
    with blackholed_everywhere() as port:
        resolver = StaticResolver({NAME: ["::1", "127.0.0.1"]})
        baseline = open_fds()

        async def main() -> None:
            transport = AsyncConnectByNameTransport(resolver=resolver, history=False)
            async with httpx.AsyncClient(transport=transport) as client:
                with anyio.move_on_after(0.4) as scope:
                    await client.get(f"http://{NAME}:{port}/")
                assert scope.cancelled_caught

        anyio.run(main, backend=backend)
        assert open_fds() == baseline


# --------------------------------------------------------------------------- private API


def test_httpx_private_pool_contract() -> None:
    """adapters/_httpx_pool.py relies on this (and checks it at import); if it fails, an
    httpx release changed how HTTPTransport holds and uses its httpcore pool."""
    from connectbyname.adapters import _httpx_pool

    sync, asynchronous = httpx.HTTPTransport(), httpx.AsyncHTTPTransport()
    assert type(sync._pool) is httpcore.ConnectionPool
    assert type(asynchronous._pool) is httpcore.AsyncConnectionPool
    for cls, methods in (
        (httpx.HTTPTransport, ("handle_request", "close", "__enter__", "__exit__")),
        (httpx.AsyncHTTPTransport, ("handle_async_request", "aclose", "__aenter__", "__aexit__")),
    ):
        for name in methods:
            source = inspect.getsource(getattr(cls, name))
            assert "self._pool" in source, f"{cls.__name__}.{name} no longer uses self._pool"
            assert "self." not in source.replace("self._pool", ""), (
                f"{cls.__name__}.{name} uses more of self than _pool"
            )
    # And the transports really go through the engine's backend.
    transport = ConnectByNameTransport()
    assert type(transport._pool) is httpcore.ConnectionPool
    transport.close()
    _httpx_pool.check_private_api()  # passes on the installed httpx


def test_a_changed_private_api_fails_at_import_naming_the_tested_versions(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connectbyname.adapters import _httpx_pool

    def handle_request(self: object, request: object) -> object:
        return self.pool_of_a_later_release  # type: ignore[attr-defined]

    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", handle_request)
    with pytest.raises(ImportError, match=r"works with httpx 0\.28.*no longer uses the private"):
        _httpx_pool.check_private_api()


# --------------------------------------------------------------------------- address policy


def test_a_redirect_to_a_private_address_is_refused_and_not_retried(
    assert_no_fd_leak: None, mode: str, http_server: HTTPServer
) -> None:
    # 127.0.0.2 plays a public server, 127.0.0.1 a private one (no network here).
    policy = AddressPolicy(allow=["127.0.0.2/32"], deny=SPECIAL_NETWORKS)
    target = f"http://127.0.0.1:{http_server.port}/"
    with HTTPServer("127.0.0.2") as public:
        with pytest.raises(ConnectByNameAddressDeniedError) as caught:
            fetch_following(mode, f"{public.url}/redirect?to={target}", policy=policy, retries=3)
    assert not isinstance(caught.value, httpx.ConnectError)
    assert isinstance(caught.value.__cause__, AddressDeniedError)
    assert [a.outcome for a in caught.value.__cause__.attempts] == [Outcome.DENIED]
    assert http_server.connection_count == 0
    assert public.request_count == 1


def fetch_following(mode: str, url: str, **transport: Any) -> httpx.Response:
    if mode == "sync":
        with httpx.Client(
            transport=ConnectByNameTransport(**transport), follow_redirects=True
        ) as client:
            return client.get(url)

    async def main() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=AsyncConnectByNameTransport(**transport), follow_redirects=True
        ) as client:
            return await client.get(url)

    response: httpx.Response = anyio.run(main, backend=mode)
    return response
