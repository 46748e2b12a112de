"""The requests adapter end to end, on real loopback servers: racing, requests' own
exceptions, timeouts, retries, keep-alive, proxies (explicit and from the environment),
injection and pickling."""

from __future__ import annotations

import pickle
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import trustme
import urllib3
import urllib3.connectionpool
from urllib3.util.retry import Retry

from connectbyname import (
    SPECIAL_NETWORKS,
    AddressDeniedError,
    AddressPolicy,
    HostUnreachableError,
    NameResolutionError,
    Outcome,
    TimedOutError,
    connection_info,
)
from connectbyname.adapters import urllib3 as cbn_urllib3
from connectbyname.adapters.requests import (
    ConnectByNameAdapter,
    ConnectByNameAddressDeniedError,
    Session,
)
from connectbyname.testing import (
    DualStack,
    HTTPServer,
    ProxyServer,
    StaticResolver,
    blackholed_everywhere,
    dual_stack,
    localhost_fallback,
)

# Generous: these bounds must hold on a loaded 2-core machine.
SLACK = 0.75

_PROXY_VARIABLES = ("http_proxy", "https_proxy", "all_proxy", "no_proxy")


@pytest.fixture(autouse=True)
def no_proxy_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """requests reads proxies from the environment: start every test without any."""
    for name in _PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)


def connects(resolver: StaticResolver) -> int:
    """How many connects asked ``resolver`` (one AF_UNSPEC or one A query each)."""
    return sum(call.family in (socket.AF_UNSPEC, socket.AF_INET) for call in resolver.calls)


@pytest.fixture
def tls_scenario(ca: trustme.CA) -> Iterator[tuple[DualStack, list[str]]]:
    """HTTPS on 127.0.0.1:P with a cert for example.test only (an IP check would
    fail), [::1]:P blackholed; and the SNI names the server received."""
    sni: list[str] = []
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("example.test").configure_cert(context)

    def record_sni(_sock: ssl.SSLObject, name: str | None, _ctx: ssl.SSLContext) -> None:
        sni.append(str(name))

    context.sni_callback = record_sni
    with dual_stack("blackholed-v6", ssl_context=context) as scenario:
        yield scenario, sni


# --------------------------------------------------------------------------- racing


def test_session_races_past_a_blackholed_ipv6(
    assert_no_fd_leak: None, blackholed_v6: DualStack
) -> None:
    resolver = StaticResolver({"example.test": blackholed_v6.addresses})
    with Session(resolver=resolver, attempt_delay=0.2) as session:
        started = time.monotonic()
        response = session.get(blackholed_v6.url("example.test"), timeout=(5, 5))
        took = time.monotonic() - started
    assert response.text == "hello from connectbyname\n"
    info = connection_info(response)
    assert info.remote_address == ("127.0.0.1", blackholed_v6.port)
    assert response.headers["X-Client-Address"] == f"127.0.0.1:{info.local_address[1]}"
    assert [(a.address[0], a.outcome) for a in info.attempts] == [
        ("::1", Outcome.ABANDONED),
        ("127.0.0.1", Outcome.CONNECTED),
    ]
    assert 0.18 <= took < 0.2 + SLACK


def test_https_by_name(
    assert_no_fd_leak: None, tls_scenario: tuple[DualStack, list[str]], ca_bundle_path: str
) -> None:
    scenario, sni = tls_scenario
    resolver = StaticResolver({"example.test": scenario.addresses})
    with Session(resolver=resolver, attempt_delay=0.1) as session:
        response = session.get(
            scenario.url("example.test", "/echo-host"), verify=ca_bundle_path, timeout=5
        )
    assert response.text == f"example.test:{scenario.port}"
    assert sni == ["example.test"]
    assert connection_info(response).remote_address == ("127.0.0.1", scenario.port)


def test_refused_ipv6_falls_back_at_once(assert_no_fd_leak: None, refused_v6: DualStack) -> None:
    resolver = StaticResolver({"example.test": refused_v6.addresses})
    with Session(resolver=resolver, attempt_delay=5.0) as session:
        started = time.monotonic()
        response = session.get(refused_v6.url("example.test"), timeout=10)
        assert time.monotonic() - started < SLACK
    outcomes = [a.outcome for a in connection_info(response).attempts]
    assert outcomes == [Outcome.REFUSED, Outcome.CONNECTED]


def test_streamed_response_keeps_its_info(assert_no_fd_leak: None, http_server: HTTPServer) -> None:
    with Session() as session:
        first = session.get(f"{http_server.url}/stream", stream=True, timeout=5)
        before = connection_info(first)
        assert first.content.startswith(b"chunk 0")
        first.close()
        second = session.get(http_server.url, timeout=5)
    assert connection_info(first) is before
    assert not before.reused
    assert connection_info(second).reused
    assert connection_info(second).local_address == before.local_address
    assert http_server.connection_count == 1


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("timeout", [(1, 30), 1], ids=["tuple", "number"])
def test_all_addresses_dead_raises_connect_timeout_within_the_budget(
    assert_no_fd_leak: None, timeout: Any
) -> None:
    with blackholed_everywhere() as port:
        resolver = StaticResolver({"example.test": ["::1", "127.0.0.1"]})
        # One address at a time, as stock: stock spends the 1 s on each address.
        with Session(resolver=resolver, attempt_delay=None) as session:
            started = time.monotonic()
            with pytest.raises(requests.exceptions.ConnectTimeout) as caught:
                session.get(f"http://example.test:{port}/", timeout=timeout)
            took = time.monotonic() - started
    assert 0.9 <= took < 1.0 + SLACK
    reason = caught.value.args[0].reason
    assert type(reason) is urllib3.exceptions.ConnectTimeoutError
    assert isinstance(reason.__cause__, TimedOutError)


def test_name_resolution_failure_is_a_connection_error(assert_no_fd_leak: None) -> None:
    with Session(resolver=StaticResolver()) as session:
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            session.get("http://nowhere.test/", timeout=5)
    assert not isinstance(caught.value, requests.exceptions.ConnectTimeout)
    reason = caught.value.args[0].reason
    assert type(reason) is urllib3.exceptions.NameResolutionError
    assert isinstance(reason.__cause__, NameResolutionError)


def test_refused_everywhere_is_a_connection_error_and_retries_count(
    assert_no_fd_leak: None, refused_v6: DualStack
) -> None:
    refused_v6.server.close()
    resolver = StaticResolver({"example.test": refused_v6.addresses})
    adapter = ConnectByNameAdapter(max_retries=Retry(connect=2, other=0), resolver=resolver)
    with requests.Session() as session:
        session.mount("http://", adapter)
        with pytest.raises(requests.exceptions.ConnectionError) as caught:
            session.get(refused_v6.url("example.test"), timeout=5)
    assert not isinstance(caught.value, requests.exceptions.ConnectTimeout)
    reason = caught.value.args[0].reason
    assert type(reason) is urllib3.exceptions.NewConnectionError
    assert isinstance(reason.__cause__, HostUnreachableError)
    assert connects(resolver) == 3


# --------------------------------------------------------------------------- proxies


def test_explicit_proxy_forwards_http(
    assert_no_fd_leak: None, proxy_server: ProxyServer, http_server: HTTPServer
) -> None:
    with Session() as session:
        response = session.get(
            f"{http_server.url}/echo-host", proxies={"http": proxy_server.url}, timeout=5
        )
    assert response.headers["X-Proxied-By"] == "connectbyname-loopback"
    assert response.text == f"127.0.0.1:{http_server.port}"
    assert proxy_server.forwarded_requests == 1
    info = connection_info(response)
    assert info.via_proxy
    assert info.remote_address == ("127.0.0.1", proxy_server.port)


def test_explicit_proxy_tunnels_https(
    assert_no_fd_leak: None,
    proxy_server: ProxyServer,
    tls_scenario: tuple[DualStack, list[str]],
    ca_bundle_path: str,
    fake_dns: Any,
) -> None:
    scenario, sni = tls_scenario
    fake_dns({"example.test": "127.0.0.1"})  # for the proxy's own lookup
    with Session() as session:
        response = session.get(
            scenario.url("example.test", "/echo-host"),
            proxies={"https": proxy_server.url},
            verify=ca_bundle_path,
            timeout=5,
        )
    assert response.text == f"example.test:{scenario.port}"
    assert sni == ["example.test"]
    assert proxy_server.connect_requests == 1
    assert proxy_server.requests[0].target == f"example.test:{scenario.port}"
    info = connection_info(response)
    assert info.via_proxy
    assert info.remote_address == ("127.0.0.1", proxy_server.port)


def test_proxies_from_the_environment(
    assert_no_fd_leak: None,
    monkeypatch: pytest.MonkeyPatch,
    fake_dns: Any,
    proxy_server: ProxyServer,
    blackholed_v6: DualStack,
) -> None:
    # The proxy's own name goes through the engine: it listens on 127.0.0.1 only, so
    # its ::1 address is refused, at once (not after the 5 s attempt delay).
    fake_dns({"example.test": "127.0.0.1", "proxy.test": ["::1", "127.0.0.1"]})
    monkeypatch.setenv("HTTP_PROXY", f"http://proxy.test:{proxy_server.port}")
    with Session(attempt_delay=5.0) as session:
        assert session.trust_env
        response = session.get(blackholed_v6.url("example.test"), timeout=5)
    assert response.headers["X-Proxied-By"] == "connectbyname-loopback"
    info = connection_info(response)
    assert info.via_proxy
    assert info.remote_address == ("127.0.0.1", proxy_server.port)
    assert [a.outcome for a in info.attempts] == [Outcome.REFUSED, Outcome.CONNECTED]
    assert proxy_server.forwarded_requests == 1


# --------------------------------------------------------------------------- injection


def test_inject_into_urllib3_with_plain_requests_get(
    assert_no_fd_leak: None, fake_dns: Any, blackholed_v6: DualStack
) -> None:
    fake_dns({"example.test": blackholed_v6.addresses})
    pools: tuple[type[urllib3.connectionpool.HTTPConnectionPool], ...] = (
        urllib3.connectionpool.HTTPConnectionPool,
        urllib3.connectionpool.HTTPSConnectionPool,
    )
    before = [pool.ConnectionCls for pool in pools]
    cbn_urllib3.inject_into_urllib3(attempt_delay=0.1)
    try:
        started = time.monotonic()
        response = requests.get(blackholed_v6.url("example.test"), timeout=(5, 5))
        took = time.monotonic() - started
    finally:
        cbn_urllib3.extract_from_urllib3()
    assert all(pool.ConnectionCls is cls for pool, cls in zip(pools, before, strict=True))
    assert took < 0.1 + SLACK  # stock would wait out the blackholed ::1 for 5 s
    info = connection_info(response)
    assert info.remote_address == ("127.0.0.1", blackholed_v6.port)
    assert [a.outcome for a in info.attempts] == [Outcome.ABANDONED, Outcome.CONNECTED]
    after = requests.get(f"http://127.0.0.1:{blackholed_v6.port}/", timeout=5)
    with pytest.raises(LookupError):
        connection_info(after)


# --------------------------------------------------------------------------- pickling


def test_adapter_pickles_like_http_adapter(
    assert_no_fd_leak: None, http_server: HTTPServer
) -> None:
    adapter = ConnectByNameAdapter(
        pool_maxsize=3,
        max_retries=2,
        attempt_delay=0.1,
        family=socket.AF_INET,
        resolver=localhost_fallback,
    )
    restored = pickle.loads(pickle.dumps(adapter))
    adapter.close()
    assert isinstance(restored, ConnectByNameAdapter)
    assert restored.engine_options == {
        "attempt_delay": 0.1,
        "family": socket.AF_INET,
        "resolver": localhost_fallback,
    }
    assert restored._pool_maxsize == 3
    assert restored.max_retries.total == 2
    assert isinstance(restored.poolmanager, cbn_urllib3.PoolManager)
    assert restored.poolmanager.connection_pool_kw["connectbyname_options"].attempt_delay == 0.1
    assert restored.proxy_manager == {}
    with requests.Session() as session:
        session.mount("http://", restored)
        response = session.get(f"http://localhost:{http_server.port}/", timeout=5)
    info = connection_info(response)
    assert info.remote_address == ("127.0.0.1", http_server.port)
    assert [a.family for a in info.attempts] == [socket.AF_INET]


def test_session_pickles_with_its_adapters(assert_no_fd_leak: None) -> None:
    with Session(attempt_delay=0.5) as session:
        restored = pickle.loads(pickle.dumps(session))
    with restored:
        for prefix in ("http://", "https://"):
            adapter = restored.get_adapter(prefix + "example.test/")
            assert isinstance(adapter, ConnectByNameAdapter)
            assert adapter.engine_options == {"attempt_delay": 0.5}


def test_read_timeout_is_unchanged(assert_no_fd_leak: None, http_server: HTTPServer) -> None:
    with Session() as session:
        started = time.monotonic()
        with pytest.raises(requests.exceptions.ReadTimeout):
            session.get(f"{http_server.url}/?delay=5", timeout=(30, 0.3))
        took = time.monotonic() - started
    assert 0.25 <= took < 0.3 + SLACK


# --------------------------------------------------------------------------- address policy

# 127.0.0.2 plays a public server and 127.0.0.1 a private one: this machine has no
# network, so "public" is a loopback address the policy allows.
PUBLIC_STAND_IN = AddressPolicy(allow=["127.0.0.2/32"], deny=SPECIAL_NETWORKS)


def test_a_redirect_to_a_private_address_is_refused_without_a_connection(
    assert_no_fd_leak: None, http_server: HTTPServer
) -> None:
    with HTTPServer("127.0.0.2") as public, Session(policy=PUBLIC_STAND_IN) as session:
        target = f"http://127.0.0.1:{http_server.port}/"
        ok = session.get(f"{public.url}/", timeout=5)
        assert connection_info(ok).remote_address == ("127.0.0.2", public.port)
        with pytest.raises(ConnectByNameAddressDeniedError) as caught:
            session.get(f"{public.url}/redirect?to={target}", timeout=5)
    assert not isinstance(caught.value, requests.ConnectionError)
    engine_error = caught.value.__cause__.__cause__  # type: ignore[union-attr]
    assert isinstance(engine_error, AddressDeniedError)
    assert "loopback: 127.0.0.0/8" in str(engine_error)
    assert http_server.connection_count == 0
    assert http_server.request_count == 0


def test_with_a_proxy_the_policy_vets_the_proxy_address(
    assert_no_fd_leak: None, proxy_server: ProxyServer, http_server: HTTPServer
) -> None:
    # The proxy, not the engine, resolves and connects to the target: the policy can
    # only vet the address the engine connects to, the proxy's.
    proxies = {"http": proxy_server.url}
    with Session(policy=PUBLIC_STAND_IN) as session:
        with pytest.raises(ConnectByNameAddressDeniedError):
            session.get(http_server.url, proxies=proxies, timeout=5)
    assert proxy_server.connection_count == 0
    allow_proxy = AddressPolicy(allow=["127.0.0.1/32"], default_allow=False)
    with Session(policy=allow_proxy) as session:
        response = session.get(f"http://localhost:{http_server.port}/", proxies=proxies, timeout=5)
    info = connection_info(response)
    assert info.via_proxy
    assert info.remote_address == ("127.0.0.1", proxy_server.port)
    assert response.status_code == 200
