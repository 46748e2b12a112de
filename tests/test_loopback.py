"""The loopback toolkit itself, against real sockets."""

from __future__ import annotations

import asyncio
import errno
import http.client
import select
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import pytest
import requests
import urllib3

from connectbyname.testing import (
    Blackhole,
    DualStack,
    HTTPServer,
    ProxyServer,
    ResolverCall,
    StaticResolver,
    dual_stack,
    localhost_fallback,
    no_fd_leak,
    open_fds,
    patch_getaddrinfo,
    refused_port,
)

FakeDNS = Callable[..., StaticResolver]


def _start_connect(address: tuple[object, ...]) -> socket.socket:
    sock = socket.socket(socket.AF_INET6 if len(address) == 4 else socket.AF_INET)
    sock.setblocking(False)
    assert sock.connect_ex(address) == errno.EINPROGRESS
    return sock


def _get(conn: http.client.HTTPConnection, path: str) -> tuple[http.client.HTTPResponse, bytes]:
    conn.request("GET", path)
    response = conn.getresponse()
    return response, response.read()


# --------------------------------------------------------------------------- blackhole


@pytest.mark.parametrize("kind", ["blackholed-v6", "blackholed-v4"])
def test_blackhole_hangs_while_other_family_answers(assert_no_fd_leak: None, kind: str) -> None:
    with dual_stack(kind) as scenario:  # type: ignore[arg-type]
        assert scenario.blackhole is not None
        assert scenario.blackhole.port == scenario.port == scenario.server.port
        hanging = _start_connect(scenario.blackhole.address)
        with hanging, socket.create_connection((scenario.working_host, scenario.port), 5):
            started = time.monotonic()
            _, writable, _ = select.select([], [hanging], [], 0.55)
            assert writable == []
            assert time.monotonic() - started >= 0.5
            assert hanging.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR) == 0


def test_blackhole_blocking_connect_times_out_and_close_refuses() -> None:
    with Blackhole("::1") as hole:
        assert hole.fillers >= 1
        assert hole.address[:2] == ("::1", hole.port)
        with pytest.raises(TimeoutError):
            socket.create_connection(("::1", hole.port), timeout=0.2)
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("::1", hole.port), timeout=2)


def test_refused_port_refuses_at_once() -> None:
    for host in ("127.0.0.1", "::1"):
        with refused_port(host) as port:
            started = time.monotonic()
            with pytest.raises(ConnectionRefusedError):
                socket.create_connection((host, port), timeout=5)
            assert time.monotonic() - started < 0.5


def test_refused_v6_scenario(refused_v6: DualStack) -> None:
    assert refused_v6.blackhole is None
    assert refused_v6.addresses == ["::1", "127.0.0.1"]
    assert refused_v6.url("dual.test", "/x") == f"http://dual.test:{refused_v6.port}/x"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("::1", refused_v6.port), timeout=5)
    socket.create_connection(("127.0.0.1", refused_v6.port), timeout=5).close()


# --------------------------------------------------------------------------- HTTP server


def test_http_keep_alive_and_routes(assert_no_fd_leak: None, http_server: HTTPServer) -> None:
    assert http_server.url == f"http://127.0.0.1:{http_server.port}"
    conn = http.client.HTTPConnection("127.0.0.1", http_server.port, timeout=5)
    try:
        response, body = _get(conn, "/")
        assert (response.status, body) == (200, b"hello from connectbyname\n")
        assert response.getheader("Content-Type") == "text/plain"
        assert conn.sock is not None
        ip, port = conn.sock.getsockname()[:2]
        assert response.getheader("X-Client-Address") == f"{ip}:{port}"
        assert response.getheader("X-Connection-Number") == "1"

        response, body = _get(conn, "/echo-host")
        assert body == f"127.0.0.1:{http_server.port}".encode()

        response, body = _get(conn, "/redirect?to=http://example.test/x")
        assert response.status == 302
        assert response.getheader("Location") == "http://example.test/x"

        response, body = _get(conn, "/stream?chunks=3")
        assert response.chunked
        assert body == b"chunk 0\nchunk 1\nchunk 2\n"

        response, body = _get(conn, "/bytes/100000")
        assert body == b"x" * 100000

        started = time.monotonic()
        response, body = _get(conn, "/bytes/3?delay=0.2")
        assert body == b"xxx"
        assert time.monotonic() - started >= 0.2

        conn.request("POST", "/anything", body=b"posted")
        assert conn.getresponse().read() == b"posted"

        response, _ = _get(conn, "/missing")
        assert response.status == 404
    finally:
        conn.close()
    assert http_server.connection_count == 1
    assert http_server.request_count == 8


def test_http_server_v6(http_server_v6: HTTPServer) -> None:
    assert http_server_v6.url == f"http://[::1]:{http_server_v6.port}"
    conn = http.client.HTTPConnection("::1", http_server_v6.port, timeout=5)
    try:
        response, body = _get(conn, "/")
        assert body == b"hello from connectbyname\n"
        assert str(response.getheader("X-Client-Address")).startswith("[::1]:")
    finally:
        conn.close()


def test_close_ends_idle_and_delayed_connections(assert_no_fd_leak: None) -> None:
    server = HTTPServer()
    idle = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    slow.sendall(b"GET /?delay=30 HTTP/1.1\r\nHost: x\r\n\r\n")
    deadline = time.monotonic() + 5
    while server.request_count < 1 and time.monotonic() < deadline:
        time.sleep(0.01)
    started = time.monotonic()
    server.close()
    server.close()  # idempotent
    assert time.monotonic() - started < 2
    with idle, slow:
        assert idle.recv(100) == b""
        # The delay was cut short; the response may or may not have gone out
        # before the connection was shut down, but the connection must end.
        received = b""
        while data := slow.recv(65536):
            received += data
        assert received == b"" or received.startswith(b"HTTP/1.1 200")
    assert not [t for t in threading.enumerate() if t.name.startswith("loopback-conn-")]


def test_https(
    assert_no_fd_leak: None,
    fake_dns: FakeDNS,
    https_server: HTTPServer,
    client_ssl_context: ssl.SSLContext,
) -> None:
    assert https_server.url.startswith("https://127.0.0.1:")
    fake_dns({"www.example.test": "127.0.0.1"})
    for host in ("127.0.0.1", "localhost", "www.example.test"):
        conn = http.client.HTTPSConnection(
            host, https_server.port, timeout=5, context=client_ssl_context
        )
        try:
            assert _get(conn, "/")[1] == b"hello from connectbyname\n"
            assert _get(conn, "/")[1] == b"hello from connectbyname\n"
        finally:
            conn.close()
    assert (https_server.connection_count, https_server.request_count) == (3, 6)


def test_https_rejects_untrusted_client_and_survives(
    https_server_v6: HTTPServer, client_ssl_context: ssl.SSLContext
) -> None:
    untrusting = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # trusts no CA at all
    conn = http.client.HTTPSConnection("::1", https_server_v6.port, timeout=5, context=untrusting)
    with pytest.raises(ssl.SSLCertVerificationError):
        conn.request("GET", "/")
    conn.close()
    conn = http.client.HTTPSConnection(
        "::1", https_server_v6.port, timeout=5, context=client_ssl_context
    )
    try:
        assert _get(conn, "/")[0].status == 200
    finally:
        conn.close()


# --------------------------------------------------------------------------- resolver


def test_static_resolver_order_family_and_shape() -> None:
    resolver = StaticResolver({"Dual.Test": ["::1", "127.0.0.1", "127.0.0.2"]})
    infos = resolver("dual.test.", 80)
    assert [info[4] for info in infos] == [
        ("::1", 80, 0, 0),
        ("127.0.0.1", 80),
        ("127.0.0.2", 80),
    ]
    assert all(info[1:4] == (socket.SOCK_STREAM, socket.IPPROTO_TCP, "") for info in infos)
    assert [info[0] for info in infos] == [socket.AF_INET6, socket.AF_INET, socket.AF_INET]
    assert [i[4] for i in resolver(b"DUAL.test", "443", socket.AF_INET)] == [
        ("127.0.0.1", 443),
        ("127.0.0.2", 443),
    ]
    assert [i[4] for i in resolver("dual.test", "https", socket.AF_INET6)] == [("::1", 443, 0, 0)]
    assert resolver("dual.test", None, type=socket.SOCK_DGRAM)[0][1:3] == (
        socket.SOCK_DGRAM,
        socket.IPPROTO_UDP,
    )
    assert resolver("dual.test", 1, flags=socket.AI_CANONNAME)[0][3] == "dual.test"
    v4only = StaticResolver({"v4.test": "127.0.0.1"})
    with pytest.raises(socket.gaierror) as info:
        v4only("v4.test", 80, socket.AF_INET6)
    assert info.value.errno == socket.EAI_NONAME


def test_static_resolver_literals_unknown_names_and_services() -> None:
    resolver = StaticResolver()
    assert resolver("127.0.0.1", 80)[0][4] == ("127.0.0.1", 80)
    assert resolver("0:0::1", 80)[0][4] == ("::1", 80, 0, 0)
    assert resolver("fe80::1%lo", 80)[0][4] == ("fe80::1", 80, 0, socket.if_nametoindex("lo"))
    assert resolver("::1", 80, flags=socket.AI_NUMERICHOST)[0][4] == ("::1", 80, 0, 0)
    assert resolver(None, 80)[0][4] == ("::1", 80, 0, 0)
    assert resolver("127.0.0.1", "http")[0][4] == ("127.0.0.1", 80)
    for args, code in [
        (("unknown.test", 80), socket.EAI_NONAME),
        (("unknown.test", 80, 0, 0, 0, socket.AI_NUMERICHOST), socket.EAI_NONAME),
        (("127.0.0.1", 80, socket.AF_INET6), socket.EAI_ADDRFAMILY),
        (("127.0.0.1", "no-such-service"), socket.EAI_SERVICE),
        (("127.0.0.1", "http", 0, 0, 0, socket.AI_NUMERICSERV), socket.EAI_NONAME),
        (("127.0.0.1", 80, socket.AF_UNIX), socket.EAI_FAMILY),
    ]:
        with pytest.raises(socket.gaierror) as info:
            resolver(*args)  # type: ignore[arg-type]
        assert info.value.errno == code, args
    assert resolver.calls[0] == ResolverCall("127.0.0.1", 80, 0)
    assert ("unknown.test", 80, 0) in resolver.calls
    # AI_NUMERICHOST probes are not name lookups and are not recorded.
    assert len(resolver.calls) == 10
    with pytest.raises(ValueError, match="not an IP literal"):
        StaticResolver({"bad.test": ["example.com"]})


def test_static_resolver_fallback_delays_and_hang() -> None:
    resolver = StaticResolver({"a.test": "::1"}, fallback=localhost_fallback)
    assert resolver("LOCALHOST", 80)[0][4] == ("127.0.0.1", 80)
    with pytest.raises(socket.gaierror):
        resolver("other.test", 80)

    slow = StaticResolver({"a.test": ["::1", "127.0.0.1"]}, delays={socket.AF_INET6: 0.2})
    started = time.monotonic()
    slow("a.test", 80, socket.AF_INET)
    assert time.monotonic() - started < 0.15
    slow("a.test", 80, socket.AF_INET6)
    assert time.monotonic() - started >= 0.2

    hung = StaticResolver({"a.test": "::1"}, hang=True)
    results: list[object] = []
    thread = threading.Thread(target=lambda: results.append(hung("a.test", 80)))
    thread.start()
    assert hung.wait_for_calls(1)
    assert hung.calls == [("a.test", 80, 0)]
    thread.join(0.2)
    assert thread.is_alive()
    hung.release()
    thread.join(5)
    assert results == [[(socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 80, 0, 0))]]

    with pytest.raises(socket.gaierror) as info:
        StaticResolver({"a.test": "::1"}, hang=True, hang_timeout=0.05)("a.test", 80)
    assert info.value.errno == socket.EAI_AGAIN


def test_patch_getaddrinfo_reaches_stock_clients(
    assert_no_fd_leak: None, http_server: HTTPServer
) -> None:
    original = socket.getaddrinfo
    resolver = StaticResolver({"web.test": ["::1", "127.0.0.1"]}, fallback=localhost_fallback)
    with patch_getaddrinfo(resolver):
        assert socket.getaddrinfo is resolver
        inner = StaticResolver({"web.test": "127.0.0.1"})
        with patch_getaddrinfo(inner):
            assert socket.getaddrinfo("web.test", 1)[0][4] == ("127.0.0.1", 1)
        assert socket.getaddrinfo is resolver

        # socket.create_connection tries ::1 (refused), then 127.0.0.1.
        socket.create_connection(("web.test", http_server.port), timeout=5).close()
        url = f"http://web.test:{http_server.port}/echo-host"
        with urllib3.PoolManager() as pool:
            assert pool.request("GET", url).data == f"web.test:{http_server.port}".encode()

        async def via_asyncio() -> bytes:
            reader, writer = await asyncio.open_connection("web.test", http_server.port)
            writer.write(b"GET / HTTP/1.1\r\nHost: web.test\r\nConnection: close\r\n\r\n")
            data = await reader.read()
            writer.close()
            await writer.wait_closed()
            return data

        assert asyncio.run(via_asyncio()).endswith(b"hello from connectbyname\n")
    assert socket.getaddrinfo is original
    assert ("web.test", http_server.port, 0) in resolver.calls
    assert http_server.request_count == 2


def test_fake_dns_fixture(fake_dns: FakeDNS) -> None:
    resolver = fake_dns({"x.test": "127.0.0.1"})
    assert socket.getaddrinfo("x.test", 80)[0][4] == ("127.0.0.1", 80)
    assert socket.getaddrinfo("localhost", 80)[0][4] == ("127.0.0.1", 80)
    assert resolver.calls == [("x.test", 80, 0), ("localhost", 80, 0)]


# --------------------------------------------------------------------------- proxies


def test_proxy_forwards_and_tunnels(  # noqa: PLR0917 (fixtures)
    assert_no_fd_leak: None,
    fake_dns: FakeDNS,
    proxy_server: ProxyServer,
    http_server: HTTPServer,
    https_server: HTTPServer,
    ca_bundle_path: str,
) -> None:
    fake_dns({"www.example.test": "127.0.0.1"})
    proxies = {"http": proxy_server.url, "https": proxy_server.url}
    with requests.Session() as session:
        plain = session.get(f"{http_server.url}/stream", proxies=proxies, timeout=5)
        assert plain.text == "chunk 0\nchunk 1\nchunk 2\nchunk 3\nchunk 4\n"
        assert plain.headers["X-Proxied-By"] == "connectbyname-loopback"
        named = f"http://www.example.test:{http_server.port}/echo-host"
        assert session.get(named, proxies=proxies, timeout=5).text == (
            f"www.example.test:{http_server.port}"
        )
        tls_url = f"https://www.example.test:{https_server.port}/"
        for _ in range(2):
            tunnelled = session.get(tls_url, proxies=proxies, timeout=5, verify=ca_bundle_path)
            assert tunnelled.text == "hello from connectbyname\n"
            assert "X-Proxied-By" not in tunnelled.headers
    assert proxy_server.forwarded_requests == 2
    assert proxy_server.connect_requests == 1  # the tunnel was reused
    assert [(r.method, r.target) for r in proxy_server.requests] == [
        ("GET", f"{http_server.url}/stream"),
        ("GET", named),
        ("CONNECT", f"www.example.test:{https_server.port}"),
    ]
    assert https_server.request_count == 2
    assert http_server.request_count == 2


def test_proxy_refuses_non_loopback_and_requires_auth(http_server: HTTPServer) -> None:
    with ProxyServer("::1", auth=("user", "secret")) as proxy:
        assert proxy.url == f"http://[::1]:{proxy.port}"
        conn = http.client.HTTPConnection("::1", proxy.port, timeout=5)
        try:
            response, _ = _get(conn, f"{http_server.url}/")
            assert response.status == 407
            token = "Basic dXNlcjpzZWNyZXQ="
            for target, status in [
                (f"{http_server.url}/", 200),
                ("http://192.0.2.1/", 502),
                ("http://unknown.test/", 502),
            ]:
                conn.request("GET", target, headers={"Proxy-Authorization": token})
                response = conn.getresponse()
                response.read()
                assert response.status == status, target
        finally:
            conn.close()
    assert proxy.forwarded_requests == 4
    assert http_server.request_count == 1


def test_proxypy_interop(
    proxypy_server: Any, http_server: HTTPServer, https_server: HTTPServer, ca_bundle_path: str
) -> None:
    proxies = {"http": proxypy_server.url, "https": proxypy_server.url}
    with requests.Session() as session:
        assert session.get(f"{http_server.url}/", proxies=proxies, timeout=5).ok
        tls = session.get(f"{https_server.url}/", proxies=proxies, timeout=5, verify=ca_bundle_path)
        assert tls.text == "hello from connectbyname\n"
    # proxy.py logs a tunnel only seconds after it ended; a plain GET promptly.
    assert proxypy_server.wait_for_log(f"GET 127.0.0.1:{http_server.port}/ - 200")
    assert (http_server.request_count, https_server.request_count) == (1, 1)


# --------------------------------------------------------------------------- fd checks


def test_no_fd_leak_detects_a_leak() -> None:
    baseline = open_fds()
    sockets: list[socket.socket] = []
    try:
        with pytest.raises(AssertionError, match=r"leaked: .*socket:"), no_fd_leak(settle=0.05):
            sockets.append(socket.socket())
        assert open_fds() >= baseline + 1
    finally:
        for sock in sockets:
            sock.close()


def test_servers_return_fds_to_baseline(server_ssl_context: ssl.SSLContext) -> None:
    baseline = open_fds()
    with no_fd_leak():
        for kind in ("blackholed-v6", "refused-v6", "blackholed-v4", "refused-v4"):
            with dual_stack(kind, ssl_context=server_ssl_context):
                pass
        with ProxyServer(), HTTPServer() as server:
            socket.create_connection(("127.0.0.1", server.port)).close()
    # Descriptors of earlier tests' connections may have closed meanwhile.
    assert open_fds() <= baseline
