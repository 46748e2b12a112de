"""`connectbyname._dns._sort`: RFC 6724 destination selection, HEv3 interleaving, the
kernel's source address, NAT64 addresses (RFC 6052) and prefix discovery (RFC 7050).

The rules are tested with a table of source addresses standing in for the kernel. The
real kernel is asked only about loopback destinations (127.0.0.0/8 and ::1); its error
paths are reached with a stand-in socket, so no test connects a socket, even a UDP one
(which sends nothing), to any other address.
"""

from __future__ import annotations

import collections
import errno
import ipaddress
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from connectbyname import _sockets
from connectbyname._dns import _sort
from connectbyname._dns._sort import (
    DEFAULT_POLICY,
    IPV4_PROBE,
    IPV6_PROBE,
    PREFIX_LENGTHS,
    WELL_KNOWN_IPV4,
    WELL_KNOWN_PREFIX,
    Attributes,
    KernelSource,
    attributes,
    discover_prefixes,
    extract,
    interleave,
    is_ipv6_only,
    kernel_source,
    may_synthesize,
    sort_destinations,
    synthesize,
)
from connectbyname._info import Candidate

V4, V6 = socket.AF_INET, socket.AF_INET6


def cand(host: str, port: int = 443, scope_id: int = 0) -> Candidate:
    if ":" in host:
        return Candidate(V6, (host, port, 0, scope_id))
    return Candidate(V4, (host, port))


def table(sources: Mapping[str, str | None]) -> Callable[[Candidate], str | None]:
    """A `SourceOf` reading a table of destination -> source address."""

    def source_of(candidate: Candidate) -> str | None:
        return sources[candidate.address[0]]

    return source_of


def order(*pairs: tuple[str, str | None]) -> list[str]:
    """Sort these (destination, its source) pairs; the destinations in the new order."""
    candidates = [cand(destination) for destination, _ in pairs]
    result = sort_destinations(candidates, table(dict(pairs)))
    return [candidate.address[0] for candidate in result]


def hosts(candidates: Iterable[Candidate]) -> list[str]:
    return [candidate.address[0] for candidate in candidates]


# --------------------------------------------------------------------- policy and scope


def test_the_policy_table_is_rfc_6724s_default() -> None:
    # Compared as networks: Python 3.13 writes ::ffff:0:0/96 as ::ffff:0.0.0.0/96.
    rows = [(e.prefix, e.precedence, e.label) for e in DEFAULT_POLICY]
    net = ipaddress.IPv6Network
    assert rows == [
        (net("::1/128"), 50, 0),
        (net("::/0"), 40, 1),
        (net("::ffff:0:0/96"), 35, 4),
        (net("2002::/16"), 30, 2),
        (net("2001::/32"), 5, 5),
        (net("fc00::/7"), 3, 13),
        (net("::/96"), 1, 3),
        (net("fec0::/10"), 1, 11),
        (net("3ffe::/16"), 1, 12),
    ]


def test_no_ipv6_entry_shares_ipv4s_precedence() -> None:
    """Why rule 9 can be a sort key: an IPv4 and an IPv6 destination never tie at
    rule 6, so rule 9's "same family only" never has to be asked."""
    v4 = ipaddress.IPv6Network("::ffff:0:0/96")
    others = [e.precedence for e in DEFAULT_POLICY if e.prefix != v4]
    assert attributes("192.0.2.1").precedence == 35
    assert 35 not in others


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("::1", Attributes(2, 50, 0)),
        ("2001:db8::1", Attributes(14, 40, 1)),
        ("fe80::1", Attributes(2, 40, 1)),
        ("fe80::1%lo", Attributes(2, 40, 1)),
        ("febf::1", Attributes(2, 40, 1)),
        ("fec0::1", Attributes(5, 1, 11)),
        ("fd00::1", Attributes(14, 3, 13)),
        ("fc00::1", Attributes(14, 3, 13)),
        ("2002:c633:6401::1", Attributes(14, 30, 2)),
        ("2001::1", Attributes(14, 5, 5)),
        ("2001:0:5ef5::1", Attributes(14, 5, 5)),
        ("3ffe::1", Attributes(14, 1, 12)),
        ("::192.0.2.1", Attributes(14, 1, 3)),
        ("64:ff9b::c000:201", Attributes(14, 40, 1)),
        ("ff02::1", Attributes(2, 40, 1)),
        ("ff05::1:3", Attributes(5, 40, 1)),
        ("ff0e::1", Attributes(14, 40, 1)),
        # IPv4, as its mapped form; section 3.2's scopes.
        ("192.0.2.1", Attributes(14, 35, 4)),
        ("::ffff:192.0.2.1", Attributes(14, 35, 4)),
        ("10.1.2.3", Attributes(14, 35, 4)),
        ("192.168.1.1", Attributes(14, 35, 4)),
        ("127.0.0.1", Attributes(2, 35, 4)),
        ("127.255.0.9", Attributes(2, 35, 4)),
        ("::ffff:127.0.0.1", Attributes(2, 35, 4)),
        ("169.254.13.78", Attributes(2, 35, 4)),
    ],
)
def test_attributes(host: str, expected: Attributes) -> None:
    assert attributes(host) == expected


@pytest.mark.parametrize("host", ["", "example.com", "127.1", "1.2.3.4.5", "::g", "2001:db8::/64"])
def test_not_an_address(host: str) -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        attributes(host)
    with pytest.raises(ValueError, match="not an IP address"):
        sort_destinations([cand(host)], lambda c: "192.0.2.9")


# ------------------------------------------------------------- RFC 6724's worked examples

# Section 10.2, "Destination Address Selection Examples" (the brief says 10.3; in the
# RFC, 10.3 onwards reconfigure the policy table). Each: (first, its source), (second,
# its source), and the rule the RFC names. The sources are the ones source address
# selection picks among the RFC's candidates.
RFC_EXAMPLES = [
    (("2001:db8:1::1", "2001:db8:1::2"), ("198.51.100.121", "169.254.13.78"), "matching scope"),
    (("198.51.100.121", "198.51.100.117"), ("2001:db8:1::1", "fe80::1"), "matching scope"),
    (("2001:db8:1::1", "2001:db8:1::2"), ("10.1.2.3", "10.1.2.4"), "higher precedence"),
    (("fe80::1", "fe80::2"), ("2001:db8:1::1", "2001:db8:1::2"), "smaller scope"),
    (("2001:db8:1::1", "2001:db8:1::2"), ("2001:db8:3ffe::1", "2001:db8:3f44::2"), "prefix"),
    (("2002:c633:6401::1", "2002:c633:6401::2"), ("2001:db8:1::1", "2002:c633:6401::2"), "label"),
    (("2001:db8:1::1", "2001:db8:1::2"), ("2002:c633:6401::1", "2002:c633:6401::2"), "precedence"),
]


@pytest.mark.parametrize(("first", "second", "rule"), RFC_EXAMPLES)
def test_rfc_6724_examples(first: tuple[str, str], second: tuple[str, str], rule: str) -> None:
    expected = [first[0], second[0]]
    assert order(first, second) == expected
    assert order(second, first) == expected  # not just rule 10


def test_rfc_6724_examples_that_need_rules_3_and_4_come_out_otherwise() -> None:
    """The two examples that turn on a deprecated source (rule 3) or a Mobile IPv6 home
    address (rule 4): neither is known here, so rule 8 (smaller scope) decides, and the
    link-local destination comes first where the RFC puts it second."""
    # RFC: 2001:db8:1::1 first, fe80::2 being deprecated.
    assert order(("2001:db8:1::1", "2001:db8:1::2"), ("fe80::1", "fe80::2")) == [
        "fe80::1",
        "2001:db8:1::1",
    ]
    # RFC: 2001:db8:1::1 first, 2001:db8:3::1 being a home address.
    assert order(("2001:db8:1::1", "2001:db8:3::1"), ("fe80::1", "fe80::2")) == [
        "fe80::1",
        "2001:db8:1::1",
    ]


# --------------------------------------------------------------------- the rules, one by one


def test_rule_1_unusable_destinations_go_last_in_input_order() -> None:
    assert order(
        ("2001:db8::1", None),
        ("192.0.2.1", "192.0.2.9"),
        ("::1", None),
        ("2001:db8::2", "2001:db8::9"),
        ("192.0.2.2", None),
    ) == ["2001:db8::2", "192.0.2.1", "2001:db8::1", "::1", "192.0.2.2"]


def test_rule_1_nothing_usable_keeps_the_input_order() -> None:
    pairs = [("192.0.2.1", None), ("::1", None), ("fe80::1", None), ("10.0.0.1", None)]
    assert order(*pairs) == [host for host, _ in pairs]


def test_only_link_local_ipv6_does_not_go_first() -> None:
    """A host whose only IPv6 address is link-local. A global IPv6 destination gets a
    link-local source (rule 2: the scopes differ), and the IPv4 one, with a global
    source, goes first; IPv6 ahead of IPv4 would be a wasted first attempt."""
    assert order(("2001:db8::1", "fe80::2"), ("203.0.113.5", "192.0.2.2")) == [
        "203.0.113.5",
        "2001:db8::1",
    ]


def test_a_link_local_destination_on_lo_goes_after_ipv4() -> None:
    """fe80::1%lo: lo has no link-local address or route, so the kernel has no source
    for it (ENETUNREACH in a fresh network namespace; EINVAL without the scope id)."""
    link_local = Candidate(V6, ("fe80::1%lo", 443, 0, 1))
    ipv4 = cand("203.0.113.5")
    sources = {link_local: None, ipv4: "192.0.2.2"}
    assert sort_destinations([link_local, ipv4], sources.get) == [ipv4, link_local]


def test_a_reachable_link_local_destination_goes_first() -> None:
    """A link-local destination with a source on its link is RFC 6724's first choice
    (precedence 40, then the smaller scope): it is on the same link."""
    assert order(("203.0.113.5", "192.0.2.2"), ("fe80::1", "fe80::2")) == [
        "fe80::1",
        "203.0.113.5",
    ]


def test_rule_2_matching_scope_before_precedence() -> None:
    # An IPv4 link-local source for a global IPv4 destination; the IPv6 one matches.
    assert order(("198.51.100.1", "169.254.1.1"), ("2001:db8::1", "2001:db8::2")) == [
        "2001:db8::1",
        "198.51.100.1",
    ]
    # A mismatched ::1 (precedence 50) goes after a matched IPv4 (35).
    assert order(("::1", "2001:db8::2"), ("192.0.2.1", "192.0.2.2")) == ["192.0.2.1", "::1"]


def test_rule_5_matching_label() -> None:
    # Both reached from a 6to4 source: the 6to4 destination shares its label.
    assert order(
        ("2001:db8:1::1", "2002:c633:6401::2"), ("2002:c633:6401::1", "2002:c633:6401::2")
    ) == ["2002:c633:6401::1", "2001:db8:1::1"]
    # A ULA destination reached from a global source: labels 13 and 1.
    assert order(("fd00::1", "2001:db8::2"), ("fd00::3", "fd00::2")) == ["fd00::3", "fd00::1"]


def test_rule_6_loopback_ipv6_before_loopback_ipv4() -> None:
    assert order(("127.0.0.1", "127.0.0.1"), ("::1", "::1")) == ["::1", "127.0.0.1"]


def test_rule_6_ipv4_before_a_ula() -> None:
    """RFC 6724's table: IPv4 35, ULA 3. (draft-ietf-6man-rfc6724-update would raise
    known-local ULAs above IPv4; not applied.)"""
    assert order(("fd00::1", "fd00::2"), ("192.0.2.1", "192.0.2.2")) == ["192.0.2.1", "fd00::1"]
    assert order(("fd00::1", "fd00::2"), ("10.0.0.1", "10.0.0.2")) == ["10.0.0.1", "fd00::1"]


def test_rule_6_and_7_6to4_and_teredo_after_native() -> None:
    pairs = [
        ("2001:0:5ef5:79fb::1", "2001:0:5ef5:79fd::2"),  # Teredo
        ("2002:c000:201::1", "2002:c000:202::2"),  # 6to4
        ("192.0.2.1", "192.0.2.2"),
        ("2001:db8::1", "2001:db8::2"),
    ]
    assert order(*pairs) == [
        "2001:db8::1",
        "192.0.2.1",
        "2002:c000:201::1",
        "2001:0:5ef5:79fb::1",
    ]


def test_rule_7_native_transport_before_a_tunnel() -> None:
    """Two global IPv6 destinations that tie on rules 2, 5 and 6 (both sources' labels
    differ from theirs): the one reached from a 6to4 (or Teredo) source is tunneled."""
    for tunnel in ("2002:c000:202::2", "2001:0:5ef5::2"):
        assert order(("2001:db8:1::1", tunnel), ("2001:db8:2::1", "fd00::2")) == [
            "2001:db8:2::1",
            "2001:db8:1::1",
        ]


def test_rule_8_smaller_scope() -> None:
    assert order(("192.0.2.1", "192.0.2.2"), ("127.0.0.5", "127.0.0.1")) == [
        "127.0.0.5",
        "192.0.2.1",
    ]
    assert order(("192.0.2.1", "192.0.2.2"), ("169.254.1.1", "169.254.1.2")) == [
        "169.254.1.1",
        "192.0.2.1",
    ]


def test_rule_9_longest_matching_prefix_ipv6_only() -> None:
    assert order(("2001:db8:3ffe::1", "2001:db8:3f44::2"), ("2001:db8:1::1", "2001:db8:1::2")) == [
        "2001:db8:1::1",
        "2001:db8:3ffe::1",
    ]
    # Up to 64 bits: sharing the whole /64 or more is the same.
    assert order(
        ("2001:db8:1:1::1", "2001:db8:1:1:8000::2"), ("2001:db8:1:1::1:2", "2001:db8:1:1::1:1")
    ) == ["2001:db8:1:1::1", "2001:db8:1:1::1:2"]
    # Not for IPv4: the order stays.
    assert order(("10.55.0.1", "10.99.0.2"), ("10.0.0.1", "10.0.0.2")) == ["10.55.0.1", "10.0.0.1"]
    assert order(("192.0.2.77", "198.51.100.2"), ("198.51.100.1", "198.51.100.2")) == [
        "192.0.2.77",
        "198.51.100.1",
    ]


def test_rule_10_ties_keep_their_order() -> None:
    pairs = [(f"2001:db8::{i}", "2001:db8::ff") for i in (5, 3, 9, 1)]
    assert order(*pairs) == [host for host, _ in pairs]


def test_ipv4_mapped_and_nat64_addresses() -> None:
    """An IPv4-mapped destination on an IPv6 socket ranks as IPv4; a NAT64 one
    (64:ff9b::/96) as native IPv6, ahead of IPv4 (and, sharing less of the source's
    prefix, after 2001:db8::1 by rule 9)."""
    mapped = Candidate(V6, ("::ffff:192.0.2.1", 443, 0, 0))
    nat64 = cand("64:ff9b::c000:201")
    v4 = cand("198.51.100.1")
    v6 = cand("2001:db8::1")
    sources = {
        mapped: "::ffff:192.0.2.2",
        nat64: "2001:db8::2",
        v4: "192.0.2.2",
        v6: "2001:db8::2",
    }
    assert sort_destinations([mapped, v4, nat64, v6], sources.get) == [v6, nat64, mapped, v4]


def test_source_of_is_asked_once_per_candidate() -> None:
    asked: list[Candidate] = []

    def source_of(candidate: Candidate) -> str | None:
        asked.append(candidate)
        return "192.0.2.9" if candidate.family == V4 else "2001:db8::9"

    candidates = [cand("192.0.2.1"), cand("2001:db8::1"), cand("192.0.2.2"), cand("::1")]
    sort_destinations(candidates, source_of)
    assert asked == candidates


def test_empty() -> None:
    assert sort_destinations([], table({})) == []


# --------------------------------------------------------------------- properties

POOL = [
    "::1",
    "::",
    "fe80::1",
    "fe80::2",
    "2001:db8::1",
    "2001:db8::2",
    "2001:db8:1::1",
    "2001:db8:1::2",
    "2001:db8:3ffe::1",
    "2001:db8:3f44::2",
    "2002:c633:6401::1",
    "2002:c633:6401::2",
    "2001:0:1::1",
    "fd00::1",
    "fd00::2",
    "fec0::1",
    "3ffe::1",
    "::192.0.2.1",
    "::ffff:192.0.2.1",
    "64:ff9b::c000:201",
    "ff02::1",
    "ff05::1",
    "127.0.0.1",
    "127.0.0.5",
    "169.254.1.1",
    "10.0.0.1",
    "10.0.0.2",
    "192.0.2.1",
    "198.51.100.1",
    "0.0.0.0",
]
addresses = st.one_of(st.sampled_from(POOL), st.ip_addresses().map(str))
# The kernel's source is of the destination's family (IPv4 for an IPv4-mapped one).
v4_sources = st.one_of(
    st.sampled_from([h for h in POOL if ":" not in h]), st.ip_addresses(v=4).map(str)
)


def _unmapped(host: str) -> bool:
    return ipaddress.IPv6Address(host).ipv4_mapped is None


v6_sources = st.one_of(
    st.sampled_from([h for h in POOL if ":" in h and "ffff" not in h]),
    st.ip_addresses(v=6).map(str).filter(_unmapped),
)


def sources_for(host: str) -> st.SearchStrategy[str | None]:
    v6 = ":" in host and ipaddress.IPv6Address(host).ipv4_mapped is None
    return st.one_of(st.none(), v6_sources if v6 else v4_sources)


def _tunneled(source: str) -> bool:
    address = ipaddress.ip_address(source.partition("%")[0])
    return isinstance(address, ipaddress.IPv6Address) and (
        address in ipaddress.IPv6Network("2002::/16")
        or address in ipaddress.IPv6Network("2001::/32")
    )


def _v6_int(host: str) -> int | None:
    """An IPv6 address that is not IPv4-mapped, as an integer; otherwise None."""
    address = ipaddress.ip_address(host.partition("%")[0])
    if isinstance(address, ipaddress.IPv4Address) or address.ipv4_mapped is not None:
        return None
    return int(address)


def prefer(a: str, sa: str | None, b: str, sb: str | None) -> int:
    """RFC 6724 section 6 as written, one pair at a time (Go's and glibc's shape):
    -1 if ``a`` goes first, 1 if ``b`` does, 0 if no rule separates them."""
    if sa is None or sb is None:
        return 0 if sa is None and sb is None else (1 if sa is None else -1)
    da, db, s_a, s_b = attributes(a), attributes(b), attributes(sa), attributes(sb)
    tests = [
        (da.scope == s_a.scope, db.scope == s_b.scope),  # rule 2
        (da.label == s_a.label, db.label == s_b.label),  # rule 5
        (da.precedence, db.precedence),  # rule 6
        (not _tunneled(sa), not _tunneled(sb)),  # rule 7
        (-da.scope, -db.scope),  # rule 8
    ]
    va, vb, vsa, vsb = _v6_int(a), _v6_int(b), _v6_int(sa), _v6_int(sb)
    if None not in (va, vb, vsa, vsb):
        assert va is not None
        assert vb is not None
        assert vsa is not None
        assert vsb is not None
        cpl_a = min(64, 128 - (va ^ vsa).bit_length())
        cpl_b = min(64, 128 - (vb ^ vsb).bit_length())
        tests.append((cpl_a, cpl_b))  # rule 9
    for x, y in tests:
        if x != y:
            return -1 if x > y else 1
    return 0


@st.composite
def destinations(draw: st.DrawFn) -> tuple[list[Candidate], dict[Candidate, str | None]]:
    """Candidates told apart by their ports, and a source for each."""
    hosts = draw(st.lists(addresses, max_size=12))
    candidates = [cand(host, port=1000 + i) for i, host in enumerate(hosts)]
    table = {c: draw(sources_for(c.address[0])) for c in candidates}
    return candidates, table


@given(destinations())
@settings(max_examples=300, deadline=None)
def test_sort_is_a_stable_permutation_that_follows_every_rule(
    case: tuple[list[Candidate], dict[Candidate, str | None]],
) -> None:
    candidates, table = case
    result = sort_destinations(candidates, table.get)
    assert collections.Counter(result) == collections.Counter(candidates)
    index = {c: i for i, c in enumerate(candidates)}
    for i, first in enumerate(result):
        for second in result[i + 1 :]:
            verdict = prefer(first.address[0], table[first], second.address[0], table[second])
            assert verdict != 1, (first, second)  # never a better one after a worse one
            if verdict == 0:
                assert index[first] < index[second]  # rule 10: equals keep their order
    assert sort_destinations(result, table.get) == result


@given(
    st.lists(st.ip_addresses(v=4).map(str), max_size=12), st.sampled_from(["192.0.2.2", "10.9.8.7"])
)
def test_ipv4_only_global_destinations_keep_their_order(hosts_: list[str], source: str) -> None:
    """No rule 9 for IPv4: global IPv4 destinations with one global source stay as the
    resolver gave them (round robin survives), whatever their prefixes."""
    candidates = [cand(h, port=1000 + i) for i, h in enumerate(hosts_)]
    candidates = [c for c in candidates if attributes(c.address[0]).scope == 14]
    assert sort_destinations(candidates, lambda c: source) == candidates


@given(st.lists(st.integers(0, 2**64 - 1), max_size=12))
def test_ipv6_only_destinations_in_the_sources_64_keep_their_order(suffixes: list[int]) -> None:
    prefix = int(ipaddress.IPv6Address("2001:db8:1:2::"))
    candidates = [
        cand(str(ipaddress.IPv6Address(prefix | s)), port=1000 + i) for i, s in enumerate(suffixes)
    ]
    assert sort_destinations(candidates, lambda c: "2001:db8:1:2::99") == candidates


# --------------------------------------------------------------------- interleave


def fam(candidates: Sequence[Candidate]) -> str:
    return "".join("6" if c.family == V6 else "4" for c in candidates)


def mixed(pattern: str) -> list[Candidate]:
    """Candidates of the families in ``pattern`` ("6644"), told apart by port."""
    return [
        cand("2001:db8::1" if f == "6" else "192.0.2.1", port=1000 + i)
        for i, f in enumerate(pattern)
    ]


@pytest.mark.parametrize(
    ("pattern", "count", "expected"),
    [
        ("666444", 1, "646464"),
        ("444666", 1, "464646"),
        ("466", 1, "466"),
        ("6444", 1, "6444"),
        ("6666", 1, "6666"),
        ("4", 1, "4"),
        ("", 1, ""),
        ("66644", 2, "66464"),
        ("66644", 3, "66644"),
        ("666644", 3, "666464"),
        ("64", 3, "64"),
        ("4466", 2, "4466"),
        ("44466", 2, "44646"),
    ],
)
def test_interleave(pattern: str, count: int, expected: str) -> None:
    result = interleave(mixed(pattern), count)
    assert fam(result) == expected


def test_interleave_keeps_each_familys_order() -> None:
    candidates = mixed("6664446")
    result = interleave(candidates)
    for family in (V4, V6):
        assert [c for c in result if c.family == family] == [
            c for c in candidates if c.family == family
        ]


def test_interleave_count_must_be_positive() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        interleave(mixed("64"), 0)


@given(st.text(alphabet="46", max_size=20), st.integers(1, 4))
def test_interleave_properties(pattern: str, count: int) -> None:
    candidates = mixed(pattern)
    result = interleave(candidates, count)
    assert sorted(result) == sorted(candidates)
    for family in (V4, V6):
        assert [c for c in result if c.family == family] == [
            c for c in candidates if c.family == family
        ]
    if candidates:
        assert result[0] == candidates[0]
        # The first family leads with `count` (or all it has), then the families
        # alternate; one repeats only once the other has run out.
        families = fam(result)
        lead = min(count, pattern.count(pattern[0]))
        assert families[:lead] == pattern[0] * lead
        rest = families[lead:]
        if rest and len(set(pattern)) == 2:
            assert rest[0] != pattern[0]
        for i in range(1, len(rest)):
            if rest[i] == rest[i - 1]:
                assert set(rest[i:]) == {rest[i]}


def test_sort_then_interleave_can_start_with_ipv4() -> None:
    """Where this differs from the planner's own interleaving, which starts with IPv6
    whenever the families are looked up separately: here the first family is the one
    RFC 6724 put first."""
    sources = {
        "2001:db8::1": "fe80::2",
        "2001:db8::2": "fe80::2",
        "192.0.2.1": "192.0.2.9",
        "192.0.2.2": "192.0.2.9",
    }
    candidates = [cand(h) for h in sources]
    assert hosts(interleave(sort_destinations(candidates, table(sources)))) == [
        "192.0.2.1",
        "2001:db8::1",
        "192.0.2.2",
        "2001:db8::2",
    ]


# --------------------------------------------------------------------- the kernel's source


def _ipv6_loopback() -> bool:
    if not socket.has_ipv6:
        return False
    try:
        with socket.socket(V6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


needs_ipv6_loopback = pytest.mark.skipif(not _ipv6_loopback(), reason="no ::1")


def test_kernel_source_ipv4_loopback() -> None:
    source = KernelSource()
    assert source(cand("127.0.0.1")) == "127.0.0.1"
    assert ipaddress.ip_address(source(cand("127.0.0.5")) or "0.0.0.0").is_loopback


@needs_ipv6_loopback
def test_kernel_source_ipv6_loopback() -> None:
    assert KernelSource()(cand("::1")) == "::1"


@needs_ipv6_loopback
def test_loopback_sorted_by_the_kernel() -> None:
    candidates = [cand("127.0.0.1"), cand("::1")]
    assert hosts(sort_destinations(candidates)) == ["::1", "127.0.0.1"]
    assert hosts(sort_destinations(candidates, kernel_source)) == ["::1", "127.0.0.1"]


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def probes(monkeypatch: pytest.MonkeyPatch) -> list[Candidate]:
    """Count the kernel probes (which still run, on loopback only)."""
    asked: list[Candidate] = []
    real = _sort._probe

    def probe(candidate: Candidate) -> tuple[str | None, bool]:
        asked.append(candidate)
        return real(candidate)

    monkeypatch.setattr(_sort, "_probe", probe)
    return asked


def test_kernel_source_remembers_for_its_ttl(probes: list[Candidate]) -> None:
    clock = FakeClock()
    source = KernelSource(1.0, clock=clock)
    assert source(cand("127.0.0.1", port=80)) == "127.0.0.1"
    assert source(cand("127.0.0.1", port=443)) == "127.0.0.1"  # the port is not asked
    assert len(probes) == 1
    clock.now += 0.999
    source(cand("127.0.0.1"))
    assert len(probes) == 1
    clock.now += 0.001
    source(cand("127.0.0.1"))
    assert len(probes) == 2
    source(cand("127.0.0.2"))
    assert len(probes) == 3
    source.clear()
    source(cand("127.0.0.1"))
    assert len(probes) == 4


def test_kernel_source_ttl_zero_remembers_nothing(probes: list[Candidate]) -> None:
    source = KernelSource(0)
    source(cand("127.0.0.1"))
    source(cand("127.0.0.1"))
    assert len(probes) == 2


def test_kernel_source_cache_is_bounded(probes: list[Candidate]) -> None:
    clock = FakeClock()
    source = KernelSource(1.0, maxsize=3, clock=clock)
    for i in range(1, 4):
        source(cand(f"127.0.0.{i}"))
    clock.now += 0.5
    source(cand("127.0.0.4"))  # full, nothing expired: all go
    assert len(source._cache) == 1
    clock.now += 1.0
    source(cand("127.0.0.5"))
    source(cand("127.0.0.6"))
    source(cand("127.0.0.7"))  # full: the expired 127.0.0.4 goes
    assert len(source._cache) == 3
    assert len(probes) == 7


class FakeSocket:
    """A UDP socket whose connect fails with ``error``: no socket is made at all."""

    error = 0
    made: ClassVar[list[FakeSocket]] = []

    def __init__(self, family: int, kind: int) -> None:
        self.closed = False
        self.blocking = True
        FakeSocket.made.append(self)

    def setblocking(self, flag: bool) -> None:
        self.blocking = flag

    def connect(self, address: object) -> None:
        raise OSError(self.error, errno.errorcode.get(self.error, "?"))

    def getsockname(self) -> tuple[str, int]:  # pragma: no cover
        raise AssertionError("not connected")

    def close(self) -> None:
        self.closed = True


@pytest.mark.parametrize(
    ("code", "kept"),
    [
        (errno.ENETUNREACH, True),
        (errno.EHOSTUNREACH, True),
        (errno.EADDRNOTAVAIL, True),
        (errno.EAFNOSUPPORT, True),
        (errno.EINVAL, True),
        (errno.EACCES, True),
        (errno.EMFILE, False),
        (errno.ENOBUFS, False),
    ],
)
def test_kernel_source_errors(monkeypatch: pytest.MonkeyPatch, code: int, kept: bool) -> None:
    FakeSocket.error = code
    FakeSocket.made = []

    def new_socket(table: dict[int, Any], key: int, family: int, kind: int) -> FakeSocket:
        sock = table[key] = FakeSocket(family, kind)
        sock.setblocking(False)
        return sock

    monkeypatch.setattr(_sort, "new_socket", new_socket)
    source = KernelSource()
    assert source(cand("2001:db8::1")) is None
    assert source(cand("2001:db8::1")) is None
    assert len(FakeSocket.made) == (1 if kept else 2)
    assert all(s.closed and not s.blocking for s in FakeSocket.made)


def test_kernel_source_no_socket(monkeypatch: pytest.MonkeyPatch) -> None:
    # The socket is in the table before its descriptor: the failed one is closed too.
    held: list[socket.socket] = []
    real = _sockets.new_socket

    def no_socket(
        table: dict[int, socket.socket], key: int, family: socket.AddressFamily, kind: int
    ) -> None:
        real(table, key, family, kind)
        held.append(table[key])
        raise OSError(errno.EAFNOSUPPORT, "Address family not supported by protocol")

    monkeypatch.setattr(_sort, "new_socket", no_socket)
    assert KernelSource()(cand("::1")) is None
    assert len(held) == 1
    assert held[0].fileno() == -1


# --------------------------------------------------------------------- NAT64: RFC 6052

# RFC 6052 section 2.4's table: 192.0.2.33 behind each prefix length.
RFC_6052_EXAMPLES = [
    ("2001:db8::/32", "2001:db8:c000:221::"),
    ("2001:db8:100::/40", "2001:db8:1c0:2:21::"),
    ("2001:db8:122::/48", "2001:db8:122:c000:2:2100::"),
    ("2001:db8:122:300::/56", "2001:db8:122:3c0:0:221::"),
    ("2001:db8:122:344::/64", "2001:db8:122:344:c0:2:2100:0"),
    ("2001:db8:122:344::/96", "2001:db8:122:344::c000:221"),
    ("64:ff9b::/96", "64:ff9b::c000:221"),
]


@pytest.mark.parametrize(("prefix", "ipv6"), RFC_6052_EXAMPLES)
def test_rfc_6052_examples(prefix: str, ipv6: str) -> None:
    network = ipaddress.IPv6Network(prefix)
    assert synthesize(network, "192.0.2.33") == ipv6
    assert extract(network, ipv6) == "192.0.2.33"


@pytest.mark.parametrize("length", [0, 24, 33, 72, 80, 128])
def test_only_rfc_6052_prefix_lengths(length: int) -> None:
    network = ipaddress.IPv6Network(("2001:db8::", length), strict=False)
    with pytest.raises(ValueError, match="RFC 6052 prefix"):
        synthesize(network, "192.0.2.33")
    with pytest.raises(ValueError, match="RFC 6052 prefix"):
        extract(network, "2001:db8::c000:221")


def test_a_96_prefix_with_a_u_octet() -> None:
    network = ipaddress.IPv6Network("2001:db8:0:0:ff00::/96")
    with pytest.raises(ValueError, match="u octet"):
        synthesize(network, "192.0.2.33")


def test_extract_rejects() -> None:
    wkp = WELL_KNOWN_PREFIX
    with pytest.raises(ValueError, match="not inside"):
        extract(wkp, "2001:db8::c000:221")
    with pytest.raises(ValueError, match="not an IPv6"):
        extract(wkp, "192.0.2.33")
    with pytest.raises(ValueError, match="not an IP address"):
        extract(wkp, "64:ff9b::zz")
    with pytest.raises(ValueError, match="u octet"):
        extract(ipaddress.IPv6Network("2001:db8::/32"), "2001:db8:c000:221:100::")
    with pytest.raises(ValueError, match="not an IPv4"):
        synthesize(wkp, "192.0.2")


def prefixes(length: int) -> st.SearchStrategy[ipaddress.IPv6Network]:
    """Global unicast (2000::/3) prefixes of ``length`` with a zero u octet."""

    def build(value: int) -> ipaddress.IPv6Network:
        value = (0x2000 << 112 | value & ((1 << 125) - 1)) & ~(0xFF << 56)
        return ipaddress.IPv6Network((value >> (128 - length) << (128 - length), length))

    return st.integers(0, 2**128 - 1).map(build)


ipv4s = st.ip_addresses(v=4).map(str)


@given(st.sampled_from(PREFIX_LENGTHS).flatmap(prefixes), ipv4s)
def test_synthesize_extract_round_trip(prefix: ipaddress.IPv6Network, ipv4: str) -> None:
    ipv6 = synthesize(prefix, ipv4)
    address = ipaddress.IPv6Address(ipv6)
    assert address in prefix
    assert address.packed[8] == 0  # the u octet
    assert extract(prefix, ipv6) == ipv4
    # The suffix after the IPv4 address is zero.
    end = {32: 8, 40: 10, 48: 11, 56: 12, 64: 13, 96: 16}[prefix.prefixlen]
    assert address.packed[end:] == bytes(16 - end)


@pytest.mark.parametrize(
    ("ipv4", "wkp", "nsp"),
    [
        ("198.51.100.1", False, True),  # documentation
        ("192.0.2.33", False, True),
        ("8.8.8.8", True, True),
        ("1.1.1.1", True, True),
        ("10.1.2.3", False, True),
        ("172.16.0.1", False, True),
        ("192.168.1.1", False, True),
        ("100.64.0.1", False, True),
        ("198.18.0.1", False, True),
        ("192.0.0.170", False, True),
        ("192.0.0.9", True, True),
        ("192.0.0.10", True, True),
        ("0.1.2.3", False, False),
        ("127.0.0.1", False, False),
        ("169.254.1.1", False, False),
        ("224.0.0.1", False, False),
        ("240.0.0.1", False, False),
        ("255.255.255.255", False, False),
    ],
)
def test_may_synthesize(ipv4: str, wkp: bool, nsp: bool) -> None:
    assert may_synthesize(WELL_KNOWN_PREFIX, ipv4) is wkp
    assert may_synthesize(ipaddress.IPv6Network("2001:db8:64::/96"), ipv4) is nsp
    assert may_synthesize(ipaddress.IPv6Network("64:ff9b:1::/48"), ipv4) is nsp  # RFC 8215


def test_may_synthesize_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="not an IPv4"):
        may_synthesize(WELL_KNOWN_PREFIX, "::1")


# --------------------------------------------------------------------- NAT64: RFC 7050


def answers_for(prefix: ipaddress.IPv6Network, *wkas: str) -> list[str]:
    return [synthesize(prefix, wka) for wka in wkas]


def test_discover_the_well_known_prefix() -> None:
    assert discover_prefixes(["64:ff9b::c000:aa", "64:ff9b::c000:ab"]) == [WELL_KNOWN_PREFIX]
    assert discover_prefixes(["64:ff9b::192.0.0.171"]) == [WELL_KNOWN_PREFIX]


@pytest.mark.parametrize(("prefix", "_example"), RFC_6052_EXAMPLES)
def test_discover_every_length(prefix: str, _example: str) -> None:
    network = ipaddress.IPv6Network(prefix)
    assert discover_prefixes(answers_for(network, *WELL_KNOWN_IPV4)) == [network]
    assert discover_prefixes(answers_for(network, WELL_KNOWN_IPV4[0])) == [network]


def test_discover_several_prefixes_in_order_without_duplicates() -> None:
    a = ipaddress.IPv6Network("2001:db8:64::/96")
    b = ipaddress.IPv6Network("2001:db8:122::/48")
    answers = [
        *answers_for(b, "192.0.0.170"),
        *answers_for(a, "192.0.0.170"),
        *answers_for(b, "192.0.0.171"),
        *answers_for(a, "192.0.0.171"),
        *answers_for(b, "192.0.0.170"),
    ]
    assert discover_prefixes(answers) == [b, a]
    assert discover_prefixes(iter(answers)) == [b, a]


def test_discover_ignores_answers_without_a_well_known_address() -> None:
    assert discover_prefixes([]) == []
    assert discover_prefixes(["2001:db8::1", "64:ff9b::c000:221", "64:ff9b::c000:ac"]) == []


def test_discover_ignores_what_is_not_an_ipv6_address() -> None:
    answers = ["192.0.0.170", "", "garbage", "64:ff9b::c000:aa/96", "64:ff9b::c000:ab"]
    assert discover_prefixes(answers) == [WELL_KNOWN_PREFIX]


def test_discover_requires_a_zero_u_octet() -> None:
    good = synthesize(ipaddress.IPv6Network("2001:db8:122:344::/64"), "192.0.0.170")
    packed = bytearray(ipaddress.IPv6Address(good).packed)
    packed[8] = 1
    assert discover_prefixes([str(ipaddress.IPv6Address(bytes(packed)))]) == []
    # The well-known address where the u octet is: no format puts it there.
    assert discover_prefixes(["2001:db8:0:0:c000:aa::"]) == []


@pytest.mark.parametrize(
    "answer",
    [
        "::ffff:192.0.0.170",  # IPv4-mapped
        "::192.0.0.170",  # IPv4-compatible
        "::c000:aa:0:0",  # inside ::/80 as well
        "fe80::c000:aa",  # link-local
        "fec0::c000:aa",  # site-local
        "ff0e::c000:aa",  # multicast
    ],
)
def test_discover_rejects_prefixes_no_nat64_has(answer: str) -> None:
    assert discover_prefixes([answer]) == []


def test_discover_an_ambiguous_prefix() -> None:
    """2001:db8:c000:aa::/64 holds 192.0.0.170's bytes where a /32 prefix would put
    them: its synthesis of 192.0.0.170 matches at /32 and /64. The secondary address,
    192.0.0.171, is found only at /64: that is the prefix (RFC 7050's reason for it).
    Without it, the answer is ambiguous and gives nothing."""
    network = ipaddress.IPv6Network("2001:db8:c000:aa::/64")
    primary, secondary = answers_for(network, *WELL_KNOWN_IPV4)
    assert discover_prefixes([primary]) == []
    assert discover_prefixes([secondary]) == []
    assert discover_prefixes([primary, secondary]) == [network]
    assert discover_prefixes([secondary, primary]) == [network]


@given(st.sampled_from(PREFIX_LENGTHS).flatmap(prefixes))
def test_discover_finds_every_synthesized_prefix(prefix: ipaddress.IPv6Network) -> None:
    assert discover_prefixes(answers_for(prefix, *WELL_KNOWN_IPV4)) == [prefix]
    assert discover_prefixes(answers_for(prefix, *reversed(WELL_KNOWN_IPV4))) == [prefix]
    one = discover_prefixes(answers_for(prefix, WELL_KNOWN_IPV4[0]))
    assert one in ([prefix], [])  # [] only if the prefix holds a well-known address
    for length in PREFIX_LENGTHS:
        assume(length == prefix.prefixlen or not _holds_wka(prefix, length))
    assert one == [prefix]


def _holds_wka(prefix: ipaddress.IPv6Network, length: int) -> bool:
    packed = prefix.network_address.packed
    embedded = bytes(packed[i] for i in _sort._POSITIONS[length])
    return str(ipaddress.IPv4Address(embedded)) in WELL_KNOWN_IPV4


@given(st.sampled_from(PREFIX_LENGTHS).flatmap(prefixes), ipv4s)
def test_discover_rejects_other_synthesized_addresses(
    prefix: ipaddress.IPv6Network, ipv4: str
) -> None:
    assume(ipv4 not in WELL_KNOWN_IPV4)
    for length in PREFIX_LENGTHS:
        assume(not _holds_wka(prefix, length))
    assert discover_prefixes([synthesize(prefix, ipv4)]) == []


# --------------------------------------------------------------------- IPv6-only?


@pytest.mark.parametrize(
    ("v6", "v4", "expected"),
    [
        ("2001:db8::2", None, True),
        ("2001:db8::2", "169.254.1.1", True),  # IPv4 link-local only
        ("fd00::2", None, True),  # a ULA is global scope
        ("2001:db8::2", "192.0.2.2", False),  # dual stack
        ("2001:db8::2", "192.0.0.4", False),  # 464XLAT's CLAT: IPv4 works
        ("2001:db8::2", "10.0.0.2", False),
        ("fe80::2", None, False),  # link-local IPv6 only
        (None, None, False),  # nothing at all
        (None, "192.0.2.2", False),  # IPv4 only
    ],
)
def test_is_ipv6_only(v6: str | None, v4: str | None, expected: bool) -> None:
    asked: list[Candidate] = []

    def source_of(candidate: Candidate) -> str | None:
        asked.append(candidate)
        return v6 if candidate.family == V6 else v4

    assert is_ipv6_only(source_of) is expected
    assert set(asked) <= {IPV4_PROBE, IPV6_PROBE}
    assert asked[0] == IPV6_PROBE


def test_the_probes_are_global_addresses() -> None:
    assert attributes(IPV4_PROBE.address[0]).scope == 14
    assert attributes(IPV6_PROBE.address[0]).scope == 14
    assert ipaddress.ip_address(IPV4_PROBE.address[0]).is_global
    assert IPV6_PROBE.family == V6
