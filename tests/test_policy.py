"""The address policy: what PUBLIC_ONLY refuses, in every spelling, and that a refused
address is never connected to."""

from __future__ import annotations

import errno
import ipaddress
import socket

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectbyname import (
    PUBLIC_ONLY,
    SPECIAL_NETWORKS,
    AddressDeniedError,
    AddressPolicy,
    Outcome,
    connect_by_name,
)
from connectbyname._loopback import StaticResolver
from connectbyname._plan import Failed, Planner, Start


@pytest.mark.parametrize(
    "host",
    [
        "127.0.0.1",
        "10.1.2.3",
        "172.20.0.1",
        "192.168.1.1",
        "100.64.0.1",
        "169.254.169.254",  # cloud metadata
        "0.0.0.0",
        "224.0.0.1",
        "240.0.0.1",
        "255.255.255.255",
        "192.0.2.1",
        "198.51.100.7",
        "203.0.113.9",
        "::1",
        "::",
        "fd00::1",
        "fe80::1%1",
        "ff02::1",
        "2001:db8::1",
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::ffff:169.254.169.254",
        "::127.0.0.1",  # IPv4-compatible
        "64:ff9b::a9fe:a9fe",  # NAT64 of 169.254.169.254
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    ],
)
def test_public_only_refuses(host: str) -> None:
    assert PUBLIC_ONLY(host) is not None


@pytest.mark.parametrize(
    "host", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "::ffff:8.8.8.8", "64:ff9b::808:808"]
)
def test_public_only_allows_public_addresses(host: str) -> None:
    # Judged only: nothing here connects anywhere.
    assert PUBLIC_ONLY(host) is None


def test_reasons_name_the_network_and_the_embedded_address() -> None:
    assert PUBLIC_ONLY("169.254.169.254") == (
        "link-local (cloud metadata lives here): 169.254.0.0/16"
    )
    reason = PUBLIC_ONLY("64:ff9b::7f00:1")
    assert reason is not None
    assert "loopback" in reason
    assert "(the NAT64 form of 127.0.0.1)" in reason


def test_allow_lists_win_over_deny_lists() -> None:
    policy = AddressPolicy(allow=["127.0.0.2/32"], deny=SPECIAL_NETWORKS)
    assert policy("127.0.0.2") is None
    assert policy("127.0.0.1") is not None
    strict = AddressPolicy(allow=["127.0.0.0/8"], default_allow=False)
    assert strict("127.0.0.9") is None
    assert strict("::1") == "not in an allowed network"


denied_v4 = st.sampled_from(
    [ipaddress.ip_network(n) for n, _ in SPECIAL_NETWORKS if ":" not in n]
).flatmap(lambda net: st.integers(0, net.num_addresses - 1).map(lambda i: net.network_address + i))


@settings(max_examples=300, deadline=None)
@given(address=denied_v4, form=st.sampled_from(["plain", "mapped", "compatible", "nat64"]))
def test_no_spelling_of_a_denied_address_gets_through(
    address: ipaddress.IPv4Address, form: str
) -> None:
    value = int(address)
    spelled = {
        "plain": str(address),
        "mapped": str(ipaddress.IPv6Address((0xFFFF << 32) | value)),
        "compatible": str(ipaddress.IPv6Address(value)),
        "nat64": str(ipaddress.IPv6Address((0x64FF9B << 96) | value)),
    }[form]
    if form == "compatible" and value <= 1:
        return  # ::, ::1 are themselves, and denied as such below
    assert PUBLIC_ONLY(spelled) is not None


@settings(max_examples=200, deadline=None)
@given(
    addresses=st.lists(
        st.one_of(
            denied_v4.map(str),
            st.ip_addresses(v=4).map(str),
            st.ip_addresses(v=6).map(str),
        ),
        min_size=1,
        max_size=12,
    )
)
def test_the_planner_never_starts_a_denied_address(addresses: list[str]) -> None:
    planner = Planner(
        now=0.0,
        timeout=None,
        attempt_delay=0.25,
        nodename="rebind.test",
        servicename=80,
        port=80,
        policy=PUBLIC_ONLY,
    )
    planner.lookup_done(
        0.0,
        [
            (socket.AF_INET6, (a, 80, 0, 0)) if ":" in a else (socket.AF_INET, (a, 80))
            for a in addresses
        ],
    )
    now = 0.0
    while True:
        action = planner.next_action(now)
        if isinstance(action, Start):
            assert PUBLIC_ONLY(action.candidate[1][0]) is None
            planner.attempt_failed(now, action.attempt, OSError(errno.ECONNREFUSED, "refused"))
        elif isinstance(action, Failed):
            denied = [a for a in action.error.attempts if a.outcome is Outcome.DENIED]
            assert all(PUBLIC_ONLY(a.address[0]) for a in denied)
            break
        else:
            now += 1


def _no_connection_reached(server: socket.socket) -> bool:
    server.setblocking(False)
    try:
        server.accept()[0].close()
    except BlockingIOError:
        return True
    return False


def test_dns_rebinding_to_a_private_address_is_refused_without_a_connection() -> None:
    # 127.0.0.2 plays the public address, 127.0.0.1 the private one the name rebinds to:
    # the machine has no network, so "public" is a loopback address allowed by policy.
    policy = AddressPolicy(allow=["127.0.0.2/32"], deny=SPECIAL_NETWORKS)
    with socket.create_server(("127.0.0.2", 0)) as public:
        port = public.getsockname()[1]
        with socket.create_server(("127.0.0.1", port)) as private:
            resolver = StaticResolver({"rebind.test": ["127.0.0.2"]})
            with connect_by_name("rebind.test", port, resolver=resolver, policy=policy) as conn:
                assert conn.remote_address == ("127.0.0.2", port)
            resolver.set_addresses("rebind.test", ["127.0.0.1"])
            with pytest.raises(AddressDeniedError) as info:
                connect_by_name("rebind.test", port, resolver=resolver, policy=policy)
            assert _no_connection_reached(private)
    error = info.value
    assert error.errno == errno.EACCES
    assert [a.outcome for a in error.attempts] == [Outcome.DENIED]
    assert "loopback: 127.0.0.0/8" in str(error)


def test_literals_are_vetted_too() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        for literal in ("127.0.0.1", "[::ffff:127.0.0.1]"):
            with pytest.raises(AddressDeniedError):
                connect_by_name(literal, port, policy=PUBLIC_ONLY)
        assert _no_connection_reached(server)


def test_a_bad_policy_is_an_invalid_parameter() -> None:
    from connectbyname import InvalidParameterError

    with pytest.raises(InvalidParameterError):
        connect_by_name("127.0.0.1", 80, policy="public-only")  # type: ignore[arg-type]
