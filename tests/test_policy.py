"""The address policy: what PUBLIC_ONLY refuses, in every spelling, the port and host
name rules, and that a refused address is never connected to. (Every registry entry is
judged in tests/test_registry.py.)"""

from __future__ import annotations

import errno
import ipaddress
import socket
from collections.abc import Callable

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
from connectbyname._info import Candidate
from connectbyname._parse import check_call, check_options, parse_target
from connectbyname._plan import Failed, Planner, Start
from connectbyname._policy import BAD_PORTS, SPECIAL_HOSTS, embedded_ipv4s
from connectbyname.testing import StaticResolver


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
        # What the hardening probe found getting through:
        "3fff::1",  # documentation (RFC 9637)
        "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff",
        "5f00::1",  # SRv6 SIDs (RFC 9602)
        "::ffff:0:a9fe:a9fe",  # SIIT form of 169.254.169.254
        "::ffff:0:7f00:1",  # SIIT form of 127.0.0.1
        "::1:0:0:1",  # ::/8, reserved by IETF
        "0:0:1::7f00:1",  # ::/8, reserved by IETF
        # Other reserved IPv6 space, outside 2000::/3:
        "100::1",
        "4000::1",
        "fec0::1",
        "fe00::1",
        "100:0:0:1::1",  # dummy prefix (RFC 9780)
        # Cloud metadata and platform addresses:
        "fd00:ec2::254",  # AWS, IPv6
        "169.254.170.2",  # AWS ECS task metadata
        "100.100.100.200",  # Alibaba Cloud
        "192.0.0.192",  # Oracle Cloud
        "168.63.129.16",  # Azure WireServer, a public address
        "64:ff9b::a83f:8110",  # the same, through NAT64
    ],
)
def test_public_only_refuses(host: str) -> None:
    assert PUBLIC_ONLY(host) is not None


@pytest.mark.parametrize(
    "host",
    [
        "8.8.8.8",
        "1.1.1.1",
        "2606:4700:4700::1111",
        "2000::",
        "2a00:1450:4001:80b::200e",
        "::ffff:8.8.8.8",
        "::8.8.8.8",
        "::ffff:0:808:808",  # SIIT
        "64:ff9b::808:808",  # NAT64, well-known prefix
        "64:ff9b::1.1.1.1",
        "64:ff9b:1::808:808",  # NAT64, local-use prefix, /96
        "2606:4700:4700::1111%3",
    ],
)
def test_public_only_allows_public_addresses(host: str) -> None:
    # Judged only: nothing here connects anywhere.
    assert PUBLIC_ONLY(host) is None


def test_reasons_name_the_network_and_the_embedded_address() -> None:
    assert PUBLIC_ONLY("169.254.169.254") == (
        "link-local (cloud metadata lives here): 169.254.0.0/16"
    )
    assert PUBLIC_ONLY("64:ff9b::7f00:1") == ("loopback: 127.0.0.0/8 (the NAT64 form of 127.0.0.1)")
    assert PUBLIC_ONLY("::ffff:0:a9fe:a9fe") == (
        "link-local (cloud metadata lives here): 169.254.0.0/16 "
        "(the IPv4-translated form of 169.254.169.254)"
    )
    assert PUBLIC_ONLY("3fff::1") == "documentation: 3fff::/20"
    assert PUBLIC_ONLY("::1:0:0:1") == "reserved by IETF: ::/8"
    assert PUBLIC_ONLY("2002:808:808::1") == ("6to4 tunnel: 2002::/16 (carrying 8.8.8.8)")


def test_text_that_is_no_ip_address_is_refused() -> None:
    for text in ("", "example.com", "1.2.3", "1.2.3.4.5", "::g", "1.2.3.4\x00", "[::1]"):
        assert PUBLIC_ONLY(text) == f"not an IP address: {text!r}"
        assert AddressPolicy()(text) is not None


def test_allow_lists_win_over_deny_lists() -> None:
    policy = AddressPolicy(allow=["127.0.0.2/32"], deny=SPECIAL_NETWORKS)
    assert policy("127.0.0.2") is None
    assert policy("::ffff:127.0.0.2") is None  # either form allowed: allowed
    assert policy("127.0.0.1") is not None
    strict = AddressPolicy(allow=["127.0.0.0/8"], default_allow=False)
    assert strict("127.0.0.9") is None
    assert strict("::1") == "not in an allowed network"
    assert strict("64:ff9b::127.0.0.9") is None
    assert strict("::ffff:8.8.8.8") == "not in an allowed network"


def test_the_most_specific_deny_entry_decides() -> None:
    policy = AddressPolicy(
        deny=[("10.0.0.0/8", "ten"), ("10.1.0.0/16", None), ("10.1.2.0/24", "ten-one-two")]
    )
    assert policy("10.0.0.1") == "ten: 10.0.0.0/8"
    assert policy("10.1.0.1") is None  # a hole
    assert policy("10.1.2.3") == "ten-one-two: 10.1.2.0/24"
    assert policy("11.0.0.0") is None
    # Without PUBLIC_ONLY's holes, a deny entry covering the IPv4-carrying forms refuses
    # them whatever they carry.
    assert AddressPolicy(deny=["::/8"])("::ffff:8.8.8.8") == (
        "denied network: ::/8 (carrying 8.8.8.8)"
    )


# The forms an IPv6 address carries an IPv4 address in, and whether PUBLIC_ONLY refuses
# the form itself whatever it carries.
FORMS: dict[str, tuple[Callable[[int], int], bool]] = {
    "mapped": (lambda v: (0xFFFF << 32) | v, False),
    "compatible": (lambda v: v, False),
    "translated": (lambda v: (0xFFFF << 48) | v, False),
    "nat64": (lambda v: (0x64FF9B << 96) | v, False),
    "nat64-local": (lambda v: (0x64FF9B0001 << 80) | v, False),
    "6to4": (lambda v: (0x2002 << 112) | (v << 80) | 1, True),
    "teredo-server": (lambda v: (0x20010000 << 96) | (v << 64) | 0x8000_63BF_3FFF_FDD2, True),
    "teredo-client": (lambda v: (0x20010000 << 96) | (0x4136E378 << 64) | (~v & 0xFFFFFFFF), True),
}


def _spell(address: ipaddress.IPv4Address, form: str) -> str:
    return str(ipaddress.IPv6Address(FORMS[form][0](int(address))))


denied_v4 = st.sampled_from(
    [ipaddress.ip_network(n) for n, reason in SPECIAL_NETWORKS if ":" not in n and reason]
).flatmap(lambda net: st.integers(0, net.num_addresses - 1).map(lambda i: net.network_address + i))
public_v4 = st.ip_addresses(v=4).filter(lambda a: PUBLIC_ONLY(str(a)) is None)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_every_form_decodes_the_address_it_carries(form: str) -> None:
    for text in ("8.8.8.8", "127.0.0.1", "169.254.169.254", "0.0.0.2", "255.255.255.255"):
        address = ipaddress.IPv4Address(text)
        carried = embedded_ipv4s(ipaddress.IPv6Address(_spell(address, form)))
        assert address in carried


def test_teredo_carries_both_ends() -> None:
    # RFC 4380's example: server 65.54.227.120, client 192.0.2.45 (stored inverted).
    address = ipaddress.IPv6Address("2001:0:4136:e378:8000:63bf:3fff:fdd2")
    assert embedded_ipv4s(address) == (
        ipaddress.IPv4Address("65.54.227.120"),
        ipaddress.IPv4Address("192.0.2.45"),
    )
    reason = PUBLIC_ONLY(str(address))
    assert reason is not None
    assert reason.startswith("Teredo")
    assert "65.54.227.120 and 192.0.2.45" in reason


def test_unspecified_and_loopback_are_themselves() -> None:
    assert embedded_ipv4s(ipaddress.IPv6Address("::")) == ()
    assert embedded_ipv4s(ipaddress.IPv6Address("::1")) == ()
    assert embedded_ipv4s(ipaddress.IPv6Address("2606:4700::1")) == ()
    assert embedded_ipv4s(ipaddress.IPv4Address("8.8.8.8")) == ()
    assert PUBLIC_ONLY("::1") == "loopback: ::1/128"


@settings(max_examples=400, deadline=None)
@given(address=denied_v4, form=st.sampled_from(["plain", *sorted(FORMS)]))
def test_no_spelling_of_a_denied_address_gets_through(
    address: ipaddress.IPv4Address, form: str
) -> None:
    if form == "compatible" and int(address) <= 1:
        return  # ::, ::1 are themselves, and refused as such
    spelled = str(address) if form == "plain" else _spell(address, form)
    reason = PUBLIC_ONLY(spelled)
    assert reason is not None
    assert str(address) in reason or form == "plain"


@settings(max_examples=300, deadline=None)
@given(address=public_v4, form=st.sampled_from(sorted(FORMS)))
def test_a_public_address_is_allowed_in_every_form_but_the_tunnels(
    address: ipaddress.IPv4Address, form: str
) -> None:
    refused_outright = FORMS[form][1]
    assert (PUBLIC_ONLY(_spell(address, form)) is not None) == refused_outright


# RFC 6052, Section 2.4: 192.0.2.33 embedded with a prefix of each length.
RFC6052_EXAMPLES = [
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::192.0.2.33"),
]


def _rfc6052(prefix: str, address: ipaddress.IPv4Address) -> ipaddress.IPv6Address:
    """RFC 6052's encoding, bit by bit: the prefix, then the IPv4 address's 32 bits,
    stepping over bits 64 to 71."""
    network = ipaddress.IPv6Network(prefix)
    bits = [(int(network.network_address) >> (127 - i)) & 1 for i in range(128)]
    bits[network.prefixlen :] = [0] * (128 - network.prefixlen)
    position = network.prefixlen
    for i in range(32):
        if 64 <= position < 72:
            position = 72
        bits[position] = (int(address) >> (31 - i)) & 1
        position += 1
    return ipaddress.IPv6Address(int("".join(map(str, bits)), 2))


@pytest.mark.parametrize(("prefix", "address"), RFC6052_EXAMPLES)
def test_declared_nat64_prefixes_decode_every_rfc6052_format(prefix: str, address: str) -> None:
    example = ipaddress.IPv4Address("192.0.2.33")
    assert _rfc6052(prefix, example) == ipaddress.IPv6Address(address)  # the encoder is right
    assert embedded_ipv4s(ipaddress.IPv6Address(address), [prefix]) == (example,)
    policy = PUBLIC_ONLY.replace(nat64_prefixes=[prefix])
    # 2001:db8::/32 is documentation, but a declared prefix is judged by what it carries.
    assert policy(address) == (
        "documentation (TEST-NET-1): 192.0.2.0/24 (the NAT64 form of 192.0.2.33)"
    )
    assert policy(str(_rfc6052(prefix, ipaddress.IPv4Address("8.8.8.8")))) is None
    assert PUBLIC_ONLY(address) is not None  # undeclared: documentation space


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from([prefix for prefix, _ in RFC6052_EXAMPLES]),
    address=st.ip_addresses(v=4),
)
def test_a_declared_nat64_address_is_judged_as_the_address_it_carries(
    prefix: str, address: ipaddress.IPv4Address
) -> None:
    spelled = _rfc6052(prefix, address)
    assert embedded_ipv4s(spelled, [prefix]) == (address,)
    policy = PUBLIC_ONLY.replace(nat64_prefixes=[prefix])
    assert (policy(str(spelled)) is None) == (PUBLIC_ONLY(str(address)) is None)


def test_a_declared_nat64_prefix_still_refuses_private_addresses() -> None:
    policy = PUBLIC_ONLY.replace(nat64_prefixes=["2001:db8:64::/96"])
    assert policy("2001:db8:64::8.8.8.8") is None
    assert policy("2001:db8:64::10.0.0.1") == (
        "private-use (RFC 1918): 10.0.0.0/8 (the NAT64 form of 10.0.0.1)"
    )
    assert policy("2001:db8:65::8.8.8.8") is not None  # outside the declared prefix
    for bad in ("2001:db8::/33", "10.0.0.0/8", "2001:db8::/128"):
        with pytest.raises(ValueError, match="NAT64 prefix"):
            AddressPolicy(nat64_prefixes=[bad])


@pytest.mark.parametrize("order", [1, -1])
def test_the_most_specific_declared_nat64_prefix_decodes(order: int) -> None:
    prefixes = ["2001:db8:122::/48", "2001:db8:122:344::/96"][::order]
    address = "2001:db8:122:344::192.0.2.33"  # read at /48: 3.68.0.0, a public address
    carried = embedded_ipv4s(ipaddress.IPv6Address(address), prefixes)
    assert carried == (ipaddress.IPv4Address("192.0.2.33"),)
    assert PUBLIC_ONLY.replace(nat64_prefixes=prefixes)(address) == (
        "documentation (TEST-NET-1): 192.0.2.0/24 (the NAT64 form of 192.0.2.33)"
    )


def test_only_the_96_form_of_the_local_use_prefix_is_decoded() -> None:
    assert PUBLIC_ONLY("64:ff9b:1::8.8.8.8") is None
    assert PUBLIC_ONLY("64:ff9b:1::10.0.0.1") is not None
    # At /64 this would spell 10.0.0.1; undeclared, the block is refused as such.
    assert PUBLIC_ONLY("64:ff9b:1:abcd:a:0:100:0") == "local-use NAT64 (RFC 8215): 64:ff9b:1::/48"
    policy = PUBLIC_ONLY.replace(nat64_prefixes=["64:ff9b:1:abcd::/64"])
    assert policy("64:ff9b:1:abcd:a:0:100:0") == (
        "private-use (RFC 1918): 10.0.0.0/8 (the NAT64 form of 10.0.0.1)"
    )
    assert policy("64:ff9b:1:abcd:8:808:800:0") is None


def test_public_only_refuses_the_bad_ports() -> None:
    for port in BAD_PORTS:
        reason = PUBLIC_ONLY.check_port(port)
        assert reason == f"port {port}: a bad port (Fetch Standard)"
    for port in (80, 443, 8000, 8080, 8443, 3000, 10079, 10081, 65535):
        assert PUBLIC_ONLY.check_port(port) is None
    assert len(BAD_PORTS) == len(set(BAD_PORTS)) == 82
    assert list(BAD_PORTS) == sorted(BAD_PORTS)


def test_port_rules() -> None:
    policy = AddressPolicy(
        allow_ports=[443, range(8000, 9000)], deny_ports=[8443, (range(8500, 8600), "why")]
    )
    assert policy.check_port(443) is None
    assert policy.check_port(8080) is None
    assert policy.check_port(80) == "port 80 is not an allowed port"
    assert policy.check_port(9000) == "port 9000 is not an allowed port"
    assert policy.check_port(8443) == "port 8443: denied port"
    assert policy.check_port(8555) == "port 8555: why"
    assert AddressPolicy().check_port(25) is None
    assert AddressPolicy(allow_ports=[]).check_port(443) is not None


@pytest.mark.parametrize("entry", [name for name, _ in SPECIAL_HOSTS])
def test_public_only_refuses_the_special_host_names(entry: str) -> None:
    name = entry.lstrip(".")
    for spelled in (name, name.upper() + ".", f"sub.{name}"):
        reason = PUBLIC_ONLY.check_name(spelled)
        if spelled.startswith("sub.") and not entry.startswith("."):
            continue  # an exact name: what is under it is another name
        assert reason is not None, spelled
        assert dict(SPECIAL_HOSTS)[entry] in reason


@pytest.mark.parametrize(
    "name",
    [
        "METADATA.Google.Internal.",
        "\uff4d\uff45\uff54\uff41\uff44\uff41\uff54\uff41.google.internal",  # fullwidth
        "metadata\u3002google\u3002internal",  # ideographic full stops
        "xn--bcher-kva.internal",
        "b\u00fccher.internal",
        "a.b.c.localhost",
        "printer.local",
        "nas.home.arpa",
        "x.kubernetes.default.svc.cluster.local",
        "kubernetes.default.svc",
        "intranet",  # single label
        "wpad.",
        "2130706433",  # a single-label spelling of 127.0.0.1
    ],
)
def test_public_only_refuses_names_in_any_spelling(name: str) -> None:
    assert PUBLIC_ONLY.check_name(name) is not None


@pytest.mark.parametrize(
    "name",
    [
        "example.com",
        "Example.COM.",
        "metadata.google.com",
        "notinternal.example",
        "internal.example.com",
        "localhost.example.com",
        "b\u00fccher.example",
        "127.0.0.1",  # literals: their address is judged by the policy itself
        "[::1]",
        "::1",
        "fe80::1%eth0",
        "169.254.169.254",
    ],
)
def test_public_only_allows_other_names(name: str) -> None:
    assert PUBLIC_ONLY.check_name(name) is None


def test_host_name_rules() -> None:
    policy = AddressPolicy(
        deny_hosts=[".example.com", ("b\u00fccher.example", "books"), "10.0.0.1", "[::1]"],
        allow_hosts=[".example", ".example.com", "192.0.2.1"],
    )
    assert policy.check_name("example.com") == "'example.com': denied host name"
    assert policy.check_name("a.b.example.com.") == "'a.b.example.com.': denied host name"
    assert policy.check_name("xn--bcher-kva.example") == "'xn--bcher-kva.example': books"
    assert policy.check_name("B\u00dcCHER.example") == "'B\u00dcCHER.example': books"
    assert policy.check_name("badexample.com") == "'badexample.com' is not an allowed host"
    assert policy.check_name("shop.example") is None
    assert policy.check_name("10.0.0.1") is not None
    assert policy.check_name("0:0::1") is not None  # the same literal as [::1]
    assert policy.check_name("192.0.2.1") is None
    assert policy.check_name("192.0.2.2") == "'192.0.2.2' is not an allowed host"
    # A literal matches exact entries only, never a domain it happens to end like.
    assert AddressPolicy(deny_hosts=[".0.1"]).check_name("10.0.0.1") is None
    assert AddressPolicy().check_name("intranet") is None
    assert AddressPolicy(deny_single_label=True).check_name("intranet") is not None


def test_replace_keeps_everything_else() -> None:
    policy = PUBLIC_ONLY.replace(allow=["10.1.2.3/32"], deny_ports=())
    assert policy("10.1.2.3") is None
    assert policy("10.1.2.4") is not None
    assert policy.check_port(25) is None
    assert policy.check_name("metadata.google.internal") is not None
    assert PUBLIC_ONLY("10.1.2.3") is not None  # unchanged
    assert PUBLIC_ONLY.check_port(25) is not None
    with pytest.raises(TypeError):
        PUBLIC_ONLY.replace(deny_everything=True)
    assert "deny_single_label=True" in repr(PUBLIC_ONLY)


def test_a_plain_callable_is_still_a_policy() -> None:
    def refuse_odd(ip: str) -> str | None:
        return "odd" if ip.endswith(("1", "3")) else None

    planner = Planner(
        0.0,
        parse_target("plain.test", 80),
        check_options(policy=refuse_odd),
        check_call(None),
        lookups=(socket.AF_UNSPEC,),
    )
    planner.lookup_done(
        0.0,
        [
            Candidate(socket.AF_INET, ("192.0.2.1", 80)),
            Candidate(socket.AF_INET, ("192.0.2.2", 80)),
        ],
    )
    action = planner.next_action(0.0)
    assert isinstance(action, Start)
    assert action.candidate.address[0] == "192.0.2.2"


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
        0.0,
        parse_target("rebind.test", 80),
        check_options(policy=PUBLIC_ONLY),
        check_call(None),
        lookups=(socket.AF_UNSPEC,),
    )
    planner.lookup_done(
        0.0,
        [
            Candidate(socket.AF_INET6, (a, 80, 0, 0))
            if ":" in a
            else Candidate(socket.AF_INET, (a, 80))
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
