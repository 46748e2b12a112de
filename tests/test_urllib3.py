"""The urllib3 adapter end to end, on real loopback servers: racing, one connect budget,
error mapping, pools and keys, proxies, injection, connection info."""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any, cast

import pytest
import trustme
import urllib3
import urllib3.connectionpool
import urllib3.poolmanager
from urllib3.exceptions import (
    ConnectTimeoutError,
    MaxRetryError,
    NewConnectionError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.retry import Retry
from urllib3.util.timeout import Timeout

from connectbyname import (
    PUBLIC_ONLY,
    AddressDeniedError,
    HostUnreachableError,
    InvalidParameterError,
    NameResolutionError,
    Outcome,
    TimedOutError,
    connection_info,
)
from connectbyname.adapters import urllib3 as cbn
from connectbyname.testing import (
    DualStack,
    HTTPServer,
    ProxyServer,
    StaticResolver,
    blackholed_everywhere,
    dual_stack,
)

# Generous: these bounds must hold on a loaded 2-core machine.
SLACK = 0.75


def connects(resolver: StaticResolver) -> int:
    """How many connects asked ``resolver``: one query each for AF_UNSPEC, or an A and
    an AAAA query each (RFC 8305); count one of them."""
    return sum(call.family in (socket.AF_UNSPEC, socket.AF_INET) for call in resolver.calls)


def served_address(response: Any) -> str:
    """The client address the server saw, from the loopback server's header."""
    return str(response.headers["X-Client-Address"])


def fmt(address: tuple[Any, ...]) -> str:
    host = f"[{address[0]}]" if ":" in address[0] else address[0]
    return f"{host}:{address[1]}"


@pytest.fixture
def name_only_cert(ca: trustme.CA) -> trustme.LeafCert:
    """A certificate valid for example.test only: verifying against an IP would fail."""
    return ca.issue_cert("example.test")


@pytest.fixture
def tls_scenario(name_only_cert: trustme.LeafCert) -> Iterator[tuple[DualStack, list[str]]]:
    """HTTPS on 127.0.0.1:P with a cert for example.test only, [::1]:P blackholed;
    and the SNI names the server received."""
    sni: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    name_only_cert.configure_cert(context)

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(str(name))

    context.sni_callback = record_sni
    with dual_stack("blackholed-v6", ssl_context=context) as scenario:
        yield scenario, sni


# --------------------------------------------------------------------------- private API


def test_urllib3_private_api_still_there() -> None:
    """The adapter overrides HTTPConnection._new_conn and reads _dns_host. If this test
    fails, urllib3 changed them: adapters/urllib3.py's connections section needs work."""
    for cls in (urllib3.connection.HTTPConnection, urllib3.connection.HTTPSConnection):
        assert "_new_conn" in cls.connect.__code__.co_names, cls
    conn = urllib3.connection.HTTPConnection("example.test.", 80)
    assert conn._dns_host == "example.test."
    assert conn.host == "example.test"
    assert Timeout.resolve_default_timeout(Timeout.DEFAULT_TIMEOUT) == socket.getdefaulttimeout()
    # The connection classes really are what connect: a response carries their info.
    assert cbn.HTTPSConnectionPool.ConnectionCls is cbn.HTTPSConnection


# --------------------------------------------------------------------------- racing


def test_blackholed_ipv6_falls_back_to_ipv4(
    assert_no_fd_leak: None, blackholed_v6: DualStack
) -> None:
    resolver = StaticResolver({"example.test": blackholed_v6.addresses})
    with cbn.PoolManager(resolver=resolver, attempt_delay=0.2) as http:
        started = time.monotonic()
        response = http.request("GET", blackholed_v6.url("example.test"), timeout=5)
        took = time.monotonic() - started
    assert response.status == 200
    info = connection_info(response)
    assert info.remote_address == ("127.0.0.1", blackholed_v6.port)
    assert fmt(info.local_address) == served_address(response)
    assert [(a.address[0], a.outcome) for a in info.attempts] == [
        ("::1", Outcome.ABANDONED),
        ("127.0.0.1", Outcome.CONNECTED),
    ]
    assert info.attempts[1].start == pytest.approx(0.2, abs=0.15)
    assert 0.18 <= took < 0.2 + SLACK
    assert not info.reused
    assert not info.via_proxy


def test_refused_ipv6_falls_back_at_once(assert_no_fd_leak: None, refused_v6: DualStack) -> None:
    resolver = StaticResolver({"example.test": refused_v6.addresses})
    with cbn.PoolManager(resolver=resolver, attempt_delay=5.0) as http:
        started = time.monotonic()
        response = http.request("GET", refused_v6.url("example.test"), timeout=10)
        took = time.monotonic() - started
    info = connection_info(response)
    assert [a.outcome for a in info.attempts] == [Outcome.REFUSED, Outcome.CONNECTED]
    assert info.remote_address == ("127.0.0.1", refused_v6.port)
    assert took < SLACK  # not the 5 s attempt_delay


def test_https_verifies_and_sends_the_name_not_the_address(
    assert_no_fd_leak: None, tls_scenario: tuple[DualStack, list[str]], ca_bundle_path: str
) -> None:
    scenario, sni = tls_scenario
    resolver = StaticResolver({"example.test": scenario.addresses})
    with cbn.PoolManager(resolver=resolver, attempt_delay=0.1, ca_certs=ca_bundle_path) as http:
        response = http.request("GET", scenario.url("example.test", "/echo-host"), timeout=5)
    assert response.status == 200
    assert response.data == f"example.test:{scenario.port}".encode()
    assert sni == ["example.test"]
    info = connection_info(response)
    assert info.remote_address == ("127.0.0.1", scenario.port)
    assert [a.outcome for a in info.attempts] == [Outcome.ABANDONED, Outcome.CONNECTED]


def test_https_rejects_a_certificate_for_another_name(
    assert_no_fd_leak: None, tls_scenario: tuple[DualStack, list[str]], ca_bundle_path: str
) -> None:
    scenario, _ = tls_scenario
    resolver = StaticResolver({"other.test": ["127.0.0.1"]})
    with (
        cbn.PoolManager(resolver=resolver, ca_certs=ca_bundle_path, retries=False) as http,
        pytest.raises(SSLError, match=r"other\.test"),
    ):
        http.request("GET", scenario.url("other.test"), timeout=5)


def test_trailing_dot_is_resolved_but_not_sent(
    assert_no_fd_leak: None, tls_scenario: tuple[DualStack, list[str]], ca_bundle_path: str
) -> None:
    scenario, sni = tls_scenario
    resolver = StaticResolver({"example.test": ["127.0.0.1"]})
    with cbn.PoolManager(resolver=resolver, ca_certs=ca_bundle_path) as http:
        response = http.request("GET", scenario.url("example.test.", "/echo-host"), timeout=5)
    assert {call.host for call in resolver.calls} == {"example.test."}
    assert response.data == f"example.test:{scenario.port}".encode()
    assert sni == ["example.test"]


def test_source_address_and_socket_options_reach_every_attempt(
    assert_no_fd_leak: None, blackholed_v6: DualStack
) -> None:
    resolver = StaticResolver({"example.test": blackholed_v6.addresses})
    keepalive = (socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    conn = cbn.HTTPConnection(
        "example.test",
        blackholed_v6.port,
        resolver=resolver,
        attempt_delay=2.0,
        source_address=("127.0.0.1", 0),
        socket_options=[*cbn.HTTPConnection.default_socket_options, keepalive],
        timeout=5,
    )
    try:
        started = time.monotonic()
        conn.connect()
        # ::1 is skipped (the source is IPv4): no 2 s wait for it.
        assert time.monotonic() - started < SLACK
        assert conn.sock is not None
        assert conn.sock.getsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE) == 1
        assert conn.sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        assert conn.sock.gettimeout() == 5  # the connect timeout, as stock leaves it
    finally:
        conn.close()


# --------------------------------------------------------------------------- timeouts


def test_connect_timeout_is_the_whole_budget(assert_no_fd_leak: None) -> None:
    with blackholed_everywhere() as port:
        resolver = StaticResolver({"example.test": ["::1", "127.0.0.1"]})
        # One address at a time, as stock urllib3: stock would spend 1 s on each.
        with cbn.PoolManager(resolver=resolver, attempt_delay=None, retries=False) as http:
            started = time.monotonic()
            with pytest.raises(ConnectTimeoutError) as caught:
                http.request("GET", f"http://example.test:{port}/", timeout=Timeout(connect=1))
            took = time.monotonic() - started
    assert 0.9 <= took < 1.0 + SLACK
    error = caught.value
    # urllib3's own class, exactly (user code writes `type(e) is ...` too), with the
    # engine's error, and its attempts, as the cause.
    assert type(error) is ConnectTimeoutError
    assert isinstance(error.__cause__, TimedOutError)
    assert [a.outcome for a in error.__cause__.attempts] == [Outcome.TIMED_OUT]


def test_tls_handshake_is_bounded_by_the_connect_budget(
    assert_no_fd_leak: None,
) -> None:
    # A listener nobody accepts from: TCP connects (the kernel queues it), TLS hangs.
    # The handshake is raced within the connect budget, and its timeout is reported as
    # stock urllib3 reports a handshake's: ReadTimeoutError.
    with socket.create_server(("127.0.0.1", 0)) as silent:
        port = silent.getsockname()[1]
        with cbn.PoolManager(retries=False) as http:
            started = time.monotonic()
            with pytest.raises(ReadTimeoutError):
                http.request("GET", f"https://127.0.0.1:{port}/", timeout=Timeout(0.5, read=30))
            took = time.monotonic() - started
    assert 0.4 <= took < 0.5 + SLACK


def test_read_timeout_applies_after_connecting(
    assert_no_fd_leak: None, http_server: HTTPServer
) -> None:
    with cbn.PoolManager(retries=False) as http:
        started = time.monotonic()
        with pytest.raises(ReadTimeoutError):
            http.request(
                "GET", f"{http_server.url}/?delay=5", timeout=Timeout(connect=30, read=0.3)
            )
        took = time.monotonic() - started
    assert 0.25 <= took < 0.3 + SLACK


# --------------------------------------------------------------------------- errors


def test_name_resolution_error_counts_as_a_connect_error(assert_no_fd_leak: None) -> None:
    resolver = StaticResolver()
    with cbn.PoolManager(resolver=resolver) as http, pytest.raises(MaxRetryError) as caught:
        http.request("GET", "http://nowhere.test/", retries=Retry(connect=2, other=0))
    reason = caught.value.reason
    assert type(reason) is urllib3.exceptions.NameResolutionError
    assert isinstance(reason.__cause__, NameResolutionError)
    assert "Failed to resolve 'nowhere.test'" in str(reason)
    assert connects(resolver) == 3  # the first try and two connect retries


def test_refused_everywhere_counts_as_a_connect_error(
    assert_no_fd_leak: None, refused_v6: DualStack
) -> None:
    refused_v6.server.close()  # now both addresses refuse
    resolver = StaticResolver({"example.test": refused_v6.addresses})
    with cbn.PoolManager(resolver=resolver) as http, pytest.raises(MaxRetryError) as caught:
        http.request("GET", refused_v6.url("example.test"), retries=Retry(connect=1, other=0))
    reason = caught.value.reason
    assert type(reason) is NewConnectionError
    assert isinstance(reason.__cause__, HostUnreachableError)
    assert [a.outcome for a in reason.__cause__.attempts] == [Outcome.REFUSED, Outcome.REFUSED]
    assert connects(resolver) == 2


def test_timeouts_count_as_connect_errors(assert_no_fd_leak: None) -> None:
    with blackholed_everywhere() as port:
        resolver = StaticResolver({"example.test": ["127.0.0.1"]})
        with cbn.PoolManager(resolver=resolver) as http, pytest.raises(MaxRetryError) as caught:
            http.request(
                "GET",
                f"http://example.test:{port}/",
                timeout=Timeout(connect=0.2),
                retries=Retry(connect=1, other=0),
            )
    assert type(caught.value.reason) is ConnectTimeoutError
    assert connects(resolver) == 2


def test_invalid_engine_options_are_refused_when_the_manager_is_built() -> None:
    with pytest.raises(InvalidParameterError):
        cbn.PoolManager(attempt_delay=-1)
    with pytest.raises(InvalidParameterError):
        cbn.proxy_from_url("http://127.0.0.1:1", policy="public")
    with pytest.raises(TypeError, match="attempt_dely"):
        cbn.inject_into_urllib3(attempt_dely=0.1)  # type: ignore[call-arg]


def test_the_address_policy_is_not_retried(
    assert_no_fd_leak: None, http_server: HTTPServer
) -> None:
    resolver = StaticResolver({"private.test": ["127.0.0.1"]})
    with cbn.PoolManager(resolver=resolver, policy=PUBLIC_ONLY, retries=Retry(connect=3)) as http:
        with pytest.raises(cbn.ConnectByNameAddressDeniedError) as caught:
            http.request("GET", f"http://private.test:{http_server.port}/")
    assert isinstance(caught.value.__cause__, AddressDeniedError)
    assert [a.outcome for a in caught.value.attempts] == [Outcome.DENIED]
    # One lookup per family, once: no retry, and no connection was made.
    assert len(resolver.calls) == 2
    assert http_server.connection_count == 0


# --------------------------------------------------------------------------- pools


def test_keep_alive_reuse_is_reported(assert_no_fd_leak: None, http_server: HTTPServer) -> None:
    with cbn.PoolManager() as http:
        first = http.request("GET", http_server.url)
        second = http.request("GET", http_server.url)
        streamed = http.request("GET", f"{http_server.url}/stream", preload_content=False)
        info3 = connection_info(streamed)  # before the body is read
        assert streamed.read() == b"".join(b"chunk %d\n" % i for i in range(5))
        streamed.release_conn()
    info1, info2 = connection_info(first), connection_info(second)
    assert (info1.reused, info2.reused, info3.reused) == (False, True, True)
    assert info1.local_address == info2.local_address == info3.local_address
    assert info2.attempts == info1.attempts
    assert http_server.connection_count == 1
    assert connection_info(streamed) is info3  # still there after release


def test_connection_close_response_keeps_its_info(
    assert_no_fd_leak: None, http_server: HTTPServer
) -> None:
    with cbn.PoolManager() as http:
        first = http.request("GET", http_server.url, headers={"Connection": "close"})
        second = http.request("GET", http_server.url)
        # urllib3 2's PoolManager leaves its pools' connections open on exit (to the
        # garbage collector): closed here, so that the test ends with none open.
        http.connection_from_url(http_server.url).close()
    assert not connection_info(first).reused
    assert not connection_info(second).reused
    assert http_server.connection_count == 2


def test_engine_options_are_part_of_the_pool_key(assert_no_fd_leak: None) -> None:
    shared_fns = dict(urllib3.poolmanager.key_fn_by_scheme)
    shared_classes = dict(urllib3.poolmanager.pool_classes_by_scheme)
    resolver = StaticResolver({"example.test": ["127.0.0.1"]})
    with cbn.PoolManager(resolver=resolver, attempt_delay=0.1) as http:
        default = http.connection_from_host("example.test", 80)
        again = http.connection_from_host("example.test", 80)
        slower = http.connection_from_host("example.test", 80, pool_kwargs={"attempt_delay": 1})
        ipv4 = http.connection_from_host("example.test", 80, pool_kwargs={"family": 2})
        assert default is again
        assert len({id(default), id(slower), id(ipv4)}) == 3
        assert isinstance(default, cbn.HTTPConnectionPool)
        assert default.conn_kw["connectbyname_options"].resolver is resolver
        assert slower.conn_kw["connectbyname_options"].attempt_delay == 1
        assert slower.conn_kw["connectbyname_options"].resolver is resolver
        assert ipv4.conn_kw["connectbyname_options"].family == 2
        # urllib3 types its pools' keys as its PoolKey; this manager's have one more field.
        key = cast(Any, next(iter(http.pools.keys())))
        assert key.key_connectbyname_options.resolver is resolver
        assert key.key_host == "example.test"
    # urllib3's process-wide dicts are untouched.
    assert urllib3.poolmanager.key_fn_by_scheme == shared_fns
    assert urllib3.poolmanager.pool_classes_by_scheme == shared_classes
    assert shared_classes["http"] is urllib3.connectionpool.HTTPConnectionPool


def test_unhashable_resolver_gets_a_pool(assert_no_fd_leak: None, http_server: HTTPServer) -> None:
    class TableResolver:
        __hash__ = None  # type: ignore[assignment]  # unhashable on purpose

        table = StaticResolver({"example.test": "127.0.0.1"})

        def __call__(self, *args: Any) -> Any:
            return self.table(*args)

    resolver = TableResolver()
    with cbn.PoolManager(resolver=resolver) as http:
        url = f"http://example.test:{http_server.port}/"
        assert http.request("GET", url).status == 200
        assert http.request("GET", url).status == 200
        assert len(http.pools) == 1


def test_connection_pool_direct(assert_no_fd_leak: None, blackholed_v6: DualStack) -> None:
    resolver = StaticResolver({"example.test": blackholed_v6.addresses})
    with cbn.HTTPConnectionPool(
        "example.test", blackholed_v6.port, resolver=resolver, attempt_delay=0.05
    ) as pool:
        response = pool.request("GET", "/")
    assert connection_info(response).remote_address == ("127.0.0.1", blackholed_v6.port)


# --------------------------------------------------------------------------- proxies


def test_proxy_forwards_http(
    assert_no_fd_leak: None, proxy_server: ProxyServer, http_server: HTTPServer
) -> None:
    with cbn.proxy_from_url(proxy_server.url) as http:
        response = http.request("GET", f"{http_server.url}/echo-host")
    assert response.headers["X-Proxied-By"] == "connectbyname-loopback"
    assert response.data == f"127.0.0.1:{http_server.port}".encode()
    info = connection_info(response)
    assert info.via_proxy
    assert info.remote_address == ("127.0.0.1", proxy_server.port)
    assert proxy_server.forwarded_requests == 1


def test_proxy_tunnels_https(
    assert_no_fd_leak: None,
    fake_dns: Any,
    proxy_server: ProxyServer,
    tls_scenario: tuple[DualStack, list[str]],
    ca_bundle_path: str,
) -> None:
    scenario, sni = tls_scenario
    fake_dns({"example.test": "127.0.0.1", "proxy.test": "127.0.0.1"})
    proxy_url = f"http://proxy.test:{proxy_server.port}"
    with cbn.ProxyManager(proxy_url, ca_certs=ca_bundle_path) as http:
        response = http.request("GET", scenario.url("example.test", "/echo-host"), timeout=5)
    assert response.data == f"example.test:{scenario.port}".encode()
    assert sni == ["example.test"]
    assert proxy_server.connect_requests == 1
    assert proxy_server.requests[0].target == f"example.test:{scenario.port}"
    info = connection_info(response)
    assert info.via_proxy
    assert info.remote_address == ("127.0.0.1", proxy_server.port)


# --------------------------------------------------------------------------- injection


def test_inject_and_extract(
    assert_no_fd_leak: None, blackholed_v6: DualStack, fake_dns: Any
) -> None:
    fake_dns({"example.test": blackholed_v6.addresses})
    classes = (urllib3.connection.HTTPConnection, urllib3.connection.HTTPSConnection)
    before = [dict(vars(cls)) for cls in classes]
    pools = (urllib3.connectionpool.HTTPConnectionPool, urllib3.connectionpool.HTTPSConnectionPool)
    cbn.inject_into_urllib3(attempt_delay=0.05)
    try:
        # The pools keep urllib3's own connection classes: code that checks them (and
        # subclasses of them, botocore's for one) sees nothing different.
        assert [pool.ConnectionCls for pool in pools] == list(classes)
        with urllib3.PoolManager() as http:
            started = time.monotonic()
            response = http.request("GET", blackholed_v6.url("example.test"), timeout=5)
            assert time.monotonic() - started < 0.05 + SLACK
        info = connection_info(response)
        assert info.remote_address == ("127.0.0.1", blackholed_v6.port)
        assert info.attempts[1].start == pytest.approx(0.05, abs=0.04)
    finally:
        cbn.extract_from_urllib3()
    assert [dict(vars(cls)) for cls in classes] == before
    cbn.extract_from_urllib3()  # a second extract changes nothing
    assert [dict(vars(cls)) for cls in classes] == before
    with urllib3.PoolManager() as http:
        response = http.request("GET", f"http://127.0.0.1:{blackholed_v6.port}/")
    with pytest.raises(LookupError):
        connection_info(response)


# --------------------------------------------------------------------------- HTTP/2


def test_http2_is_refused_clearly(assert_no_fd_leak: None, https_server: HTTPServer) -> None:
    http2 = pytest.importorskip("urllib3.http2")
    http2.inject_into_urllib3()
    try:
        with (
            cbn.PoolManager(retries=False) as http,
            pytest.raises(NotImplementedError, match=r"HTTP/1\.1"),
        ):
            http.request("GET", https_server.url)
    finally:
        http2.extract_from_urllib3()
    assert https_server.connection_count == 0
