"""The IANA registries as `connectbyname._registry` holds them, and that `PUBLIC_ONLY`
judges every entry as the data says.

The expected verdicts come from a reference written here with `ipaddress` over the data
(the most specific entry containing an address decides; an "embedded" entry hands the
address to the IPv4 tables), not from the policy's own bisect tables.
"""

from __future__ import annotations

import ipaddress
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectbyname._policy import PUBLIC_ONLY, SPECIAL_NETWORKS
from connectbyname._registry import (
    EXTRA,
    IPV4_SPECIAL,
    IPV4_SPECIAL_DATE,
    IPV6_ADDRESS_SPACE,
    IPV6_ADDRESS_SPACE_DATE,
    IPV6_SPECIAL,
    IPV6_SPECIAL_DATE,
    Block,
)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

ALL_BLOCKS = (*IPV4_SPECIAL, *IPV6_SPECIAL, *IPV6_ADDRESS_SPACE, *EXTRA)
ENTRIES: list[tuple[IPNetwork, Block]] = [
    (ipaddress.ip_network(prefix), block) for block in ALL_BLOCKS for prefix in block.prefixes
]


def test_the_registries_are_complete_as_of_their_dates() -> None:
    # A registry update changes these on purpose: transcribe the new rows, then the
    # count and the date together.
    assert (IPV4_SPECIAL_DATE, len(IPV4_SPECIAL)) == ("2025-10-09", 25)
    assert (IPV6_SPECIAL_DATE, len(IPV6_SPECIAL)) == ("2025-10-09", 25)
    assert (IPV6_ADDRESS_SPACE_DATE, len(IPV6_ADDRESS_SPACE)) == ("2025-10-23", 20)
    # The rows the probe found missing, and the newest ones, are there.
    prefixes = {prefix for block in ALL_BLOCKS for prefix in block.prefixes}
    assert {"3fff::/20", "5f00::/16", "100:0:0:1::/64", "2001:1::3/128"} <= prefixes
    assert {"192.88.99.2/32", "192.0.0.170/32", "192.0.0.171/32"} <= prefixes


def written(network: IPNetwork) -> set[str]:
    """The canonical spellings of a network: no host bits, compressed. Python 3.13 writes
    the IPv4-mapped block in the dotted form (::ffff:0.0.0.0/96), earlier Pythons and the
    registries in hex (::ffff:0:0/96); both are the same network."""
    text = str(network)
    return {text, text.replace("::ffff:0.0.0.0/", "::ffff:0:0/")}


def test_every_prefix_is_a_network_written_canonically() -> None:
    for network, block in ENTRIES:
        assert written(network) & set(block.prefixes), block
    # Two blocks are rows of both IPv6 registries; they must agree with each other.
    seen: dict[IPNetwork, Block] = {}
    twice = set()
    for network, block in ENTRIES:
        if network in seen:
            twice.add(str(network))
            assert (seen[network].decision, seen[network].label) == (block.decision, block.label)
        seen[network] = block
    assert twice == {"fc00::/7", "fe80::/10"}


def test_the_ipv6_address_space_tiles_the_whole_space() -> None:
    networks = sorted(ipaddress.IPv6Network(b.prefixes[0]) for b in IPV6_ADDRESS_SPACE)
    end = 0
    for network in networks:
        assert int(network.network_address) == end, network
        end = int(network.broadcast_address) + 1
    assert end == 1 << 128
    [global_unicast] = [b for b in IPV6_ADDRESS_SPACE if b.decision == "allow"]
    assert global_unicast.prefixes == ("2000::/3",)


def test_nothing_the_registries_call_not_globally_reachable_is_allowed() -> None:
    for block in (*IPV4_SPECIAL, *IPV6_SPECIAL):
        if block.globally_reachable is not True:
            assert block.decision != "allow", block
        assert block.why, block
    # The one globally reachable special block that is not refused: NAT64's well-known
    # prefix, judged by the IPv4 address it carries.
    reachable = [
        b.prefixes for b in IPV6_SPECIAL if b.globally_reachable and b.decision != "refuse"
    ]
    assert reachable == [("64:ff9b::/96",)]


def test_embedded_blocks_carry_the_ipv4_address_in_their_last_32_bits() -> None:
    # The reference below relies on it; the policy decodes 6to4 and Teredo otherwise,
    # and refuses both outright.
    for network, block in ENTRIES:
        if block.decision == "embedded":
            assert network.version == 6
            assert network.prefixlen == 96, block


def test_special_networks_is_the_data() -> None:
    expected = {
        (prefix, block.label if block.decision == "refuse" else None)
        for block in ALL_BLOCKS
        for prefix in block.prefixes
    }
    assert set(SPECIAL_NETWORKS) == expected


def _most_specific(address: IPAddress) -> tuple[IPNetwork, Block] | None:
    containing = [
        (network, block)
        for network, block in ENTRIES
        if network.version == address.version and address in network
    ]
    return max(containing, key=lambda entry: entry[0].prefixlen, default=None)


def _expected(address: IPAddress) -> tuple[bool, str | None]:
    """Whether the data says `PUBLIC_ONLY` refuses ``address``, and the text its reason
    should start with (None: allowed, or refused for an address it carries)."""
    entry = _most_specific(address)
    if entry is None:
        return False, None
    network, block = entry
    if block.decision == "embedded":
        carried = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        return _expected(carried)[0], None
    if block.decision == "refuse":
        return True, f"{block.label}: {network}"
    return False, None


def _check(address: IPAddress) -> None:
    refused, prefix = _expected(address)
    reason = PUBLIC_ONLY(str(address))
    assert (reason is not None) == refused, (address, reason)
    if prefix is not None:
        assert reason is not None
        assert reason.startswith(prefix), (address, reason)


@pytest.mark.parametrize(
    ("network", "block"), ENTRIES, ids=[str(network) for network, _ in ENTRIES]
)
def test_every_entry_is_judged_as_the_data_says(network: IPNetwork, block: Block) -> None:
    first, last = int(network.network_address), int(network.broadcast_address)
    inner = random.Random(str(network)).randint(first, last)
    make = ipaddress.ip_address
    for value in (first, inner, last):
        address = make(value) if network.version == 6 else ipaddress.IPv4Address(value)
        _check(address)
    # Where the most specific entry is this one, its decision is the verdict; where a
    # more specific entry overrides it (2001:1::1/128 inside 2001::/23), that one's is.
    if block.decision == "refuse" and _most_specific(make(inner)) == (network, block):
        assert PUBLIC_ONLY(str(make(inner))) is not None


@pytest.mark.parametrize(
    ("network", "block"), ENTRIES, ids=[str(network) for network, _ in ENTRIES]
)
def test_the_neighbours_of_every_entry_are_judged_as_the_data_says(
    network: IPNetwork, block: Block
) -> None:
    # One address either side: where a bisect table is off by one, it shows here.
    space = 1 << network.max_prefixlen
    cls = ipaddress.IPv4Address if network.version == 4 else ipaddress.IPv6Address
    for value in (int(network.network_address) - 1, int(network.broadcast_address) + 1):
        if 0 <= value < space:
            _check(cls(value))


@settings(max_examples=500, deadline=None)
@given(address=st.one_of(st.ip_addresses(v=4), st.ip_addresses(v=6)))
def test_any_address_is_judged_as_the_data_says(address: IPAddress) -> None:
    _check(address)


inside_an_entry = st.sampled_from([network for network, _ in ENTRIES]).flatmap(
    lambda network: st.integers(0, network.num_addresses - 1).map(
        lambda offset: network.network_address + offset
    )
)


@settings(max_examples=500, deadline=None)
@given(address=inside_an_entry)
def test_any_address_inside_an_entry_is_judged_as_the_data_says(address: IPAddress) -> None:
    _check(address)
