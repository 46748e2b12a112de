"""TLS raced in the connect, through every adapter (issue: an HTTPS connection wins when
its TLS handshake completes). Real HTTPS servers on loopback: a name whose IPv6 address
takes TCP and never answers TLS, and whose IPv4 address serves; a forged certificate on
the first address; urllib3's own checks; client certificates; HTTP/2 over ALPN.
"""

from __future__ import annotations

import contextlib
import hashlib
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import httpx
import pytest
import requests
import trustme
import urllib3
from urllib3.exceptions import MaxRetryError, SSLError

from connectbyname import ConnectionInfo, Outcome, connection_info
from connectbyname.adapters import requests as cbn_requests
from connectbyname.adapters import urllib3 as cbn_urllib3
from connectbyname.adapters.httpx import AsyncConnectByNameTransport, ConnectByNameTransport
from connectbyname.testing import HELLO_BODY, HTTPServer, StaticResolver, dual_stack

NAME = "example.test"
DELAY = 0.25  # the engine's default attempt delay

#: ``fetch(url, *, resolver, verify, **client_options) -> (status, body, info)`` per client.
Fetch = Callable[..., tuple[int, bytes, ConnectionInfo]]


def _urllib3_drop_in(url: str, *, resolver: Any, verify: str, **options: Any) -> Any:
    with cbn_urllib3.PoolManager(resolver=resolver, ca_certs=verify, **options) as http:
        response = http.request("GET", url, timeout=urllib3.Timeout(connect=5, read=5))
        http.connection_from_url(url).close()
    return response.status, response.data, connection_info(response)


def _urllib3_injected(url: str, *, resolver: Any, verify: str, **options: Any) -> Any:
    cbn_urllib3.inject_into_urllib3(resolver=resolver)
    try:
        with urllib3.PoolManager(ca_certs=verify, **options) as http:
            response = http.request("GET", url, timeout=urllib3.Timeout(connect=5, read=5))
            http.connection_from_url(url).close()
    finally:
        cbn_urllib3.extract_from_urllib3()
    return response.status, response.data, connection_info(response)


def _requests(url: str, *, resolver: Any, verify: str, **options: Any) -> Any:
    with cbn_requests.Session(resolver=resolver) as session:
        response = session.get(url, verify=verify, timeout=(5, 5), **options)
    return response.status_code, response.content, connection_info(response)


def _httpx(mode: str) -> Fetch:
    def fetch(url: str, *, resolver: Any, verify: str, **options: Any) -> Any:
        context = ssl.create_default_context(cafile=verify)
        if "cert" in options:
            context.load_cert_chain(*options.pop("cert"))
        if mode == "sync":
            transport = ConnectByNameTransport(verify=context, resolver=resolver, **options)
            with httpx.Client(transport=transport, timeout=5) as client:
                response = client.get(url)
            return response.status_code, response.content, connection_info(response)

        async def main() -> Any:
            transport = AsyncConnectByNameTransport(verify=context, resolver=resolver, **options)
            async with httpx.AsyncClient(transport=transport, timeout=5) as client:
                response = await client.get(url)
            return response.status_code, response.content, connection_info(response)

        return anyio.run(main, backend=mode)

    return fetch


CLIENTS: dict[str, Fetch] = {
    "urllib3": _urllib3_drop_in,
    "urllib3-injected": _urllib3_injected,
    "requests": _requests,
    "httpx": _httpx("sync"),
    "httpx-asyncio": _httpx("asyncio"),
    "httpx-trio": _httpx("trio"),
}


@pytest.fixture(params=list(CLIENTS))
def fetch(request: pytest.FixtureRequest) -> Fetch:
    return CLIENTS[request.param]


def _resolver() -> StaticResolver:
    return StaticResolver({NAME: ["::1", "127.0.0.1"]})


# --------------------------------------------------------------------------- racing


def test_an_address_mute_after_tcp_is_raced_past(
    fetch: Fetch, server_ssl_context: ssl.SSLContext, ca_bundle_path: str
) -> None:
    with dual_stack("mute-v6", ssl_context=server_ssl_context) as scenario:
        started = time.monotonic()
        status, body, info = fetch(scenario.url(NAME), resolver=_resolver(), verify=ca_bundle_path)
        took = time.monotonic() - started
        assert scenario.mute is not None
        assert scenario.mute.connection_count == 1
    assert status == 200
    assert body == HELLO_BODY
    # Well inside the connect timeout (5 s) the first address would have used up.
    assert took < 3.0
    first, second = info.attempts
    assert (first.address[0], first.outcome) == ("::1", Outcome.ABANDONED)
    assert first.tcp is not None
    assert second.outcome is Outcome.CONNECTED
    assert second.start - first.start >= DELAY * 0.9
    assert info.remote_address[0] == "127.0.0.1"
    assert info.tls_version in ("TLSv1.2", "TLSv1.3")
    assert info.alpn == "http/1.1"


@contextlib.contextmanager
def _forged_v6(server_ssl_context: ssl.SSLContext) -> Iterator[tuple[int, HTTPServer]]:
    """A forged certificate (another CA) on [::1]:P, the right one on 127.0.0.1:P."""
    forged = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert(NAME, "::1").configure_cert(forged)
    for _ in range(50):
        with HTTPServer("::1", 0, forged) as bad:
            try:
                good = HTTPServer("127.0.0.1", bad.port, server_ssl_context)
            except OSError:
                continue
            with good:
                yield bad.port, good
            return
    raise RuntimeError("no port free on both ::1 and 127.0.0.1")


@pytest.mark.parametrize("client", list(CLIENTS))
def test_a_certificate_failing_verification_is_never_raced_past(
    client: str, server_ssl_context: ssl.SSLContext, ca_bundle_path: str
) -> None:
    fetch = CLIENTS[client]
    expected: type[BaseException] = {
        "urllib3": MaxRetryError,
        "urllib3-injected": MaxRetryError,
        "requests": requests.exceptions.SSLError,
    }.get(client, httpx.ConnectError)
    with _forged_v6(server_ssl_context) as (port, good):
        url = f"https://{NAME}:{port}/"
        with pytest.raises(expected) as caught:
            fetch(url, resolver=_resolver(), verify=ca_bundle_path)
        assert good.connection_count == 0
    # The client's own verification error, as its stock self reports it.
    error = caught.value
    if isinstance(error, MaxRetryError):
        assert isinstance(error.reason, SSLError)
    assert "CERTIFICATE_VERIFY_FAILED" in str(error)


# --------------------------------------------------------------------------- urllib3's checks


def _fingerprint(server_cert: trustme.LeafCert) -> str:
    pem = server_cert.cert_chain_pems[0].bytes()
    return hashlib.sha256(ssl.PEM_cert_to_DER_cert(pem.decode())).hexdigest()


def test_urllib3_assert_fingerprint_is_checked_on_the_winner(
    https_server: HTTPServer, server_cert: trustme.LeafCert, ca_bundle_path: str
) -> None:
    url = f"https://{NAME}:{https_server.port}/"
    resolver = StaticResolver({NAME: ["127.0.0.1"]})
    right = _fingerprint(server_cert)
    status, _, info = _urllib3_drop_in(
        url, resolver=resolver, verify=ca_bundle_path, assert_fingerprint=right
    )
    assert status == 200
    assert info.tls_version is not None
    wrong = "00" * 32
    with pytest.raises(MaxRetryError) as caught:
        _urllib3_drop_in(
            url, resolver=resolver, verify=ca_bundle_path, assert_fingerprint=wrong, retries=0
        )
    assert isinstance(caught.value.reason, SSLError)
    assert "Fingerprints did not match" in str(caught.value)


def test_urllib3_assert_hostname_is_checked_on_the_winner(
    https_server: HTTPServer, ca_bundle_path: str
) -> None:
    url = f"https://{NAME}:{https_server.port}/"
    resolver = StaticResolver({NAME: ["127.0.0.1"]})
    status, _, _ = _urllib3_drop_in(
        url, resolver=resolver, verify=ca_bundle_path, assert_hostname="localhost"
    )
    assert status == 200
    with pytest.raises(MaxRetryError) as caught:
        _urllib3_drop_in(
            url,
            resolver=resolver,
            verify=ca_bundle_path,
            assert_hostname="not-in-the-certificate.test",
            retries=0,
        )
    assert isinstance(caught.value.reason, SSLError)


# --------------------------------------------------------------------------- client certificates


@pytest.fixture
def client_cert_server(ca: trustme.CA, server_cert: trustme.LeafCert) -> Iterator[HTTPServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(context)
    with HTTPServer("127.0.0.1", 0, context) as server:
        yield server


@pytest.fixture
def client_cert_files(ca: trustme.CA, tmp_path: Any) -> tuple[str, str]:
    cert = ca.issue_cert("client@example.test")
    cert_path, key_path = tmp_path / "client.pem", tmp_path / "client.key"
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    return str(cert_path), str(key_path)


@pytest.mark.parametrize("client", ["urllib3", "requests", "httpx", "httpx-asyncio"])
def test_client_certificates_are_presented(
    client: str,
    client_cert_server: HTTPServer,
    client_cert_files: tuple[str, str],
    ca_bundle_path: str,
) -> None:
    url = f"https://{NAME}:{client_cert_server.port}/"
    resolver = StaticResolver({NAME: ["127.0.0.1"]})
    cert_file, key_file = client_cert_files
    by_client: dict[str, dict[str, Any]] = {
        "urllib3": {"cert_file": cert_file, "key_file": key_file},
        "requests": {"cert": (cert_file, key_file)},
    }
    options = by_client.get(client, {"cert": (cert_file, key_file)})
    status, body, _ = CLIENTS[client](url, resolver=resolver, verify=ca_bundle_path, **options)
    assert status == 200
    assert body == HELLO_BODY


# --------------------------------------------------------------------------- HTTP/2


@contextlib.contextmanager
def h2_server(server_cert: trustme.LeafCert) -> Iterator[int]:
    """An HTTP/2-only server (ALPN h2) on 127.0.0.1, answering every request with
    ``HELLO_BODY``; yields its port."""
    import h2.config
    import h2.connection
    import h2.events

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    context.set_alpn_protocols(["h2"])
    listener = socket.create_server(("127.0.0.1", 0))
    threads: list[threading.Thread] = []

    def serve(raw: socket.socket) -> None:
        with contextlib.suppress(OSError), context.wrap_socket(raw, server_side=True) as sock:
            sock.settimeout(5)
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
            conn.initiate_connection()
            sock.sendall(conn.data_to_send())
            while data := sock.recv(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        conn.send_headers(
                            event.stream_id,
                            [(":status", "200"), ("content-length", str(len(HELLO_BODY)))],
                        )
                        conn.send_data(event.stream_id, HELLO_BODY, end_stream=True)
                sock.sendall(conn.data_to_send())

    def accept() -> None:
        while True:
            try:
                raw, _ = listener.accept()
            except OSError:
                return
            thread = threading.Thread(target=serve, args=(raw,), daemon=True)
            threads.append(thread)
            thread.start()

    acceptor = threading.Thread(target=accept, daemon=True)
    acceptor.start()
    try:
        yield listener.getsockname()[1]
    finally:
        with contextlib.suppress(OSError):
            listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        acceptor.join(5)
        for thread in threads:
            thread.join(5)


@pytest.mark.parametrize("mode", ["sync", "asyncio", "trio"])
def test_http2_over_alpn_through_httpx(
    mode: str, server_cert: trustme.LeafCert, ca_bundle_path: str
) -> None:
    with h2_server(server_cert) as port:
        fetch = _httpx(mode)
        status, body, info = fetch(
            f"https://{NAME}:{port}/",
            resolver=StaticResolver({NAME: ["127.0.0.1"]}),
            verify=ca_bundle_path,
            http2=True,
        )
    assert status == 200
    assert body == HELLO_BODY
    assert info.alpn == "h2"


# --------------------------------------------------------------------------- proxies


@pytest.mark.parametrize("client", ["requests", "httpx", "httpx-asyncio", "httpx-trio"])
def test_through_a_proxy_the_tunnels_tls_is_one_attempt_and_reported(
    client: str, proxy_server: Any, https_server: HTTPServer, ca_bundle_path: str
) -> None:
    url = f"https://localhost:{https_server.port}/"
    if client == "requests":
        with cbn_requests.Session() as session:
            response = session.get(
                url, verify=ca_bundle_path, proxies={"https": proxy_server.url}, timeout=(5, 5)
            )
        status, info = response.status_code, connection_info(response)
    else:
        status, _, info = CLIENTS[client](
            url, resolver=None, verify=ca_bundle_path, proxy=proxy_server.url
        )
    assert status == 200
    assert info.via_proxy
    assert proxy_server.connect_requests
    assert info.tls_version in ("TLSv1.2", "TLSv1.3")
    assert all(a.tcp is None for a in info.attempts)  # the proxy's connect: TCP only


def test_an_injected_subclass_with_its_own_new_conn_gets_a_socket(
    https_server: HTTPServer, ca_bundle_path: str
) -> None:
    # A common pattern (SSRF guards): check the peer of the socket super() made.
    peers: list[tuple[Any, ...]] = []

    class Checked(urllib3.connection.HTTPSConnection):
        def _new_conn(self) -> socket.socket:
            sock = super()._new_conn()
            peers.append(sock.getpeername())
            return sock

    class Pool(urllib3.HTTPSConnectionPool):
        ConnectionCls = Checked

    cbn_urllib3.inject_into_urllib3()
    try:
        with Pool("localhost", https_server.port, ca_certs=ca_bundle_path) as pool:
            response = pool.request("GET", "/")
    finally:
        cbn_urllib3.extract_from_urllib3()
    assert response.status == 200
    assert peers
    assert peers[0][1] == https_server.port
    info = connection_info(response)
    # Not raced (the handshake came after the connect, urllib3's own), still reported.
    assert all(a.tcp is None for a in info.attempts)
    assert info.tls_version in ("TLSv1.2", "TLSv1.3")


def test_urllib3_http2_injected_races_tls_and_reports_the_connection(
    server_cert: trustme.LeafCert, ca_bundle_path: str
) -> None:
    import urllib3.http2

    # A module up to urllib3 2.2, a package from 2.3 on.
    HTTP2Connection: Any = getattr(urllib3.http2, "HTTP2Connection", None)
    if HTTP2Connection is None:
        from urllib3.http2.connection import HTTP2Connection

    own = HTTP2Connection.getresponse
    with h2_server(server_cert) as port:
        cbn_urllib3.inject_into_urllib3(resolver=StaticResolver({NAME: ["127.0.0.1"]}))
        urllib3.http2.inject_into_urllib3()
        try:
            with urllib3.PoolManager(ca_certs=ca_bundle_path) as http:
                response = http.request("GET", f"https://{NAME}:{port}/")
                http.connection_from_url(f"https://{NAME}:{port}/").close()
        finally:
            urllib3.http2.extract_from_urllib3()
            cbn_urllib3.extract_from_urllib3()
    assert response.status == 200
    assert response.data == HELLO_BODY
    info = connection_info(response)
    assert info.alpn == "h2"
    assert info.attempts[0].tcp is not None  # raced in TLS
    # extract_from_urllib3 gave urllib3's HTTP/2 connection its own method back.
    assert HTTP2Connection.getresponse is own
