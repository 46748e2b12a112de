"""Which address to try first: RFC 6724 destination address selection over both
families, the interleaving of Happy Eyeballs v3 (draft section 5.3), and NAT64
addresses (RFC 6052) and prefix discovery (RFC 7050).

Everything here is a pure function of its arguments except `KernelSource`, which asks
the kernel which source address it would use for a destination by connecting a UDP
socket (a UDP connect sends no packet) and reading ``getsockname()``.

Destination address selection (RFC 6724 section 6), as `sort_destinations` applies it:

1. Avoid unusable destinations: no source address (no route, no address of the
   family, a link-local address without its interface) goes last, in input order.
2. Prefer matching scope: ``Scope(D) == Scope(Source(D))``.
3. Avoid deprecated source addresses: not applied. Whether the kernel's choice is
   deprecated (preferred lifetime over) needs the interface's address list (netlink);
   the kernel itself already avoids a deprecated source when it has another.
4. Prefer home addresses (Mobile IPv6): not applied; nothing here knows about it.
5. Prefer matching label: ``Label(D) == Label(Source(D))``.
6. Prefer higher precedence.
7. Prefer native transport: a destination whose source is a 6to4 (2002::/16) or
   Teredo (2001::/32) address is taken as reached through a tunnel (IPv6 in IPv4).
   Other tunnels (ISATAP, a VPN, 6in4 with a native-looking prefix) are not seen.
8. Prefer smaller scope.
9. Longest matching prefix, IPv6 destinations only, the common prefix counted up to
   64 bits (the usual length of the source's on-link prefix, which a UDP connect does
   not tell). Like Go (issues 13283 and 18518), and unlike RFC 6724 itself, never for
   IPv4: outside the source's own subnet a common IPv4 prefix means nothing, and it
   sends every client of a private network to the same round-robin address. glibc
   applies it to IPv4 only inside the source's subnet, which needs the netmask.
10. Otherwise keep the input order (the sort is stable).

The policy table is RFC 6724's default (section 2.1), not glibc's RFC 3484 table and
not gai.conf: IPv4 (precedence 35) comes after native IPv6 (40) but before 6to4 (30),
Teredo (5) and ULAs (3). NAT64 addresses (64:ff9b::/96 and network-specific prefixes)
are ordinary IPv6 here (precedence 40); de-synthesize them first (`extract`) if they
must be ranked as the IPv4 addresses they stand for.
"""

from __future__ import annotations

import errno
import functools
import ipaddress
import itertools
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from typing import NamedTuple

from .._info import Address, Candidate
from .._sockets import new_socket

__all__ = [
    "DEFAULT_POLICY",
    "IPV4ONLY_ARPA",
    "IPV4_PROBE",
    "IPV6_PROBE",
    "PREFIX_LENGTHS",
    "WELL_KNOWN_IPV4",
    "WELL_KNOWN_PREFIX",
    "Attributes",
    "KernelSource",
    "PolicyEntry",
    "SourceOf",
    "attributes",
    "discover_prefixes",
    "extract",
    "interleave",
    "is_ipv6_only",
    "kernel_source",
    "may_synthesize",
    "sort_destinations",
    "synthesize",
]

#: Where a destination's packets would come from: the source address the kernel picks
#: for ``candidate`` (``"192.0.2.7"``, ``"2001:db8::7"``), or ``None`` if it has none.
SourceOf = Callable[[Candidate], str | None]

# -- addresses as integers -------------------------------------------------------------

_MAPPED = 0xFFFF << 32  # ::ffff:0:0/96
_ALL = (1 << 128) - 1

# RFC 4291 section 2.7 / RFC 4007: the scope values RFC 6724 section 3.1 compares.
_SCOPE_LINK = 0x2
_SCOPE_SITE = 0x5
_SCOPE_GLOBAL = 0xE


def _parse(host: str) -> int:
    """``host`` as a 128-bit integer, an IPv4 address as its IPv4-mapped IPv6 form; a
    zone (``%eth0``) is dropped. Raises `ValueError` if it is not an IP address."""
    host = host.partition("%")[0]
    try:
        if ":" in host:
            return int.from_bytes(socket.inet_pton(socket.AF_INET6, host), "big")
        return _MAPPED | int.from_bytes(socket.inet_pton(socket.AF_INET, host), "big")
    except OSError:
        raise ValueError(f"not an IP address: {host!r}") from None


def _is_v4(value: int) -> bool:
    return value >> 32 == 0xFFFF


def _in(value: int, prefix: int, length: int) -> bool:
    shift = 128 - length
    return value >> shift == prefix >> shift


class PolicyEntry(NamedTuple):
    """One row of the policy table (RFC 6724 section 2.1)."""

    prefix: ipaddress.IPv6Network
    precedence: int
    label: int


#: RFC 6724's default policy table (section 2.1), in the RFC's order. An IPv4 address
#: is looked up as its IPv4-mapped form (::ffff:0:0/96: precedence 35, label 4).
DEFAULT_POLICY: tuple[PolicyEntry, ...] = tuple(
    PolicyEntry(ipaddress.IPv6Network(prefix), precedence, label)
    for prefix, precedence, label in (
        ("::1/128", 50, 0),
        ("::/0", 40, 1),
        ("::ffff:0:0/96", 35, 4),
        ("2002::/16", 30, 2),  # 6to4
        ("2001::/32", 5, 5),  # Teredo
        ("fc00::/7", 3, 13),  # ULA
        ("::/96", 1, 3),  # IPv4-compatible (deprecated)
        ("fec0::/10", 1, 11),  # site-local (deprecated)
        ("3ffe::/16", 1, 12),  # 6bone (returned)
    )
)

# Longest prefix first: the first entry that matches is the longest match.
_POLICY = sorted(
    (
        (int(entry.prefix.network_address), entry.prefix.prefixlen, entry.precedence, entry.label)
        for entry in DEFAULT_POLICY
    ),
    key=lambda row: -row[1],
)


class Attributes(NamedTuple):
    """What RFC 6724 compares about one address."""

    scope: int
    """Section 3.1 (IPv6) or 3.2 (IPv4): 2 link-local, 5 site-local, 14 global, or a
    multicast address's own scope."""
    precedence: int
    label: int


def _scope(value: int) -> int:
    if _is_v4(value):
        # Section 3.2: loopback (127/8) and link-local (169.254/16) are link-local
        # scope; every other IPv4 address, private ones included, is global.
        v4 = value & 0xFFFFFFFF
        if v4 >> 24 == 127 or v4 >> 16 == 0xA9FE:
            return _SCOPE_LINK
        return _SCOPE_GLOBAL
    if value >> 120 == 0xFF:  # multicast: its scope field
        return (value >> 112) & 0xF
    if value == 1 or value >> 118 == 0xFE80 >> 6:  # ::1, fe80::/10
        return _SCOPE_LINK
    if value >> 118 == 0xFEC0 >> 6:  # fec0::/10 (deprecated site-local)
        return _SCOPE_SITE
    return _SCOPE_GLOBAL


@functools.lru_cache(maxsize=4096)
def _attributes(value: int) -> Attributes:
    for prefix, length, precedence, label in _POLICY:
        if _in(value, prefix, length):
            return Attributes(_scope(value), precedence, label)
    raise AssertionError("::/0 matches every address")  # pragma: no cover


def attributes(host: str) -> Attributes:
    """The scope, precedence and label of ``host`` (an IPv4 or IPv6 address, with or
    without a zone) under RFC 6724's default policy table."""
    return _attributes(_parse(host))


def _tunneled(value: int) -> bool:
    """Rule 7: a 6to4 or Teredo source means IPv6 carried in IPv4."""
    return _in(value, 0x2002 << 112, 16) or _in(value, 0x20010000 << 96, 32)


def _common_prefix(source: int, destination: int) -> int:
    """Rule 9's CommonPrefixLen (section 2.2) for two IPv6 addresses, up to 64 bits."""
    return min(64, 128 - (source ^ destination).bit_length())


# -- destination address selection -----------------------------------------------------


def rank(candidate: Candidate, source_of: SourceOf | None = None) -> tuple[int, ...]:
    """``candidate``'s place in RFC 6724 section 6 order, as a key (lower first):
    comparing two candidates' ranks is applying rules 1 to 9 to them; rule 10 (keep
    the order) is the caller's. ``source_of`` is as for `sort_destinations`."""
    source = (kernel_source if source_of is None else source_of)(candidate)
    if source is None:
        return (1,)  # rule 1: unusable, last
    destination = _parse(candidate.address[0])
    origin = _parse(source)
    d = _attributes(destination)
    s = _attributes(origin)
    # Rule 9 only separates two IPv6 destinations. IPv4 compares as 0 against
    # everything, which is the same thing: with the default table an IPv4
    # destination (precedence 35) never ties an IPv6 one at rule 6.
    common = 0
    if not _is_v4(destination) and not _is_v4(origin):
        common = _common_prefix(origin, destination)
    return (
        0,
        d.scope != s.scope,  # rule 2
        d.label != s.label,  # rule 5
        -d.precedence,  # rule 6
        _tunneled(origin),  # rule 7
        d.scope,  # rule 8
        -common,  # rule 9
    )


def sort_destinations(
    candidates: Iterable[Candidate], source_of: SourceOf | None = None
) -> list[Candidate]:
    """``candidates`` (both families together) in RFC 6724 section 6 order.

    ``source_of`` gives the source address the kernel would use for a candidate, or
    ``None`` if it has none (the default, `kernel_source`, asks the kernel; tests pass a
    table). It is called once per candidate. See the module's docstring for the rules
    and where they depart from RFC 6724. The sort is stable: candidates that no rule
    separates keep their order, and the unusable ones come last in their input order.
    """
    ranked = [(rank(c, source_of), index, c) for index, c in enumerate(candidates)]
    ranked.sort(key=lambda item: (item[0], item[1]))
    return [c for _, _, c in ranked]


def interleave(
    sorted_candidates: Iterable[Candidate], first_family_count: int = 1
) -> list[Candidate]:
    """Interleave the address families of an already sorted list (HEv3 draft section
    5.3, RFC 8305 section 4).

    The family of the first candidate leads with ``first_family_count`` candidates
    ("Preferred Address Family Count"; 1 is recommended, 2 favours the first family),
    then the families alternate, one candidate each, in the order they first appear.
    When a family runs out the rest of the others follow in order. Within a family the
    order is kept. The count applies to the head of the list only, as in asyncio and
    aiohappyeyeballs: with 2, the order is 6, 6, 4, 6, 4, ...
    """
    if first_family_count < 1:
        raise ValueError(f"first_family_count must be at least 1, not {first_family_count}")
    families: dict[socket.AddressFamily, list[Candidate]] = {}
    for candidate in sorted_candidates:
        families.setdefault(candidate.family, []).append(candidate)
    if not families:
        return []
    queues = list(families.values())
    head = queues[0][: first_family_count - 1]
    queues[0] = queues[0][first_family_count - 1 :]
    rounds = itertools.zip_longest(*queues)
    return head + [candidate for row in rounds for candidate in row if candidate is not None]


# -- the kernel's source address -------------------------------------------------------

#: The errors that say "no source address for this destination", remembered like a
#: source address. Any other error (out of descriptors, say) also gives ``None``, but
#: is not remembered.
_NO_SOURCE = frozenset(
    {
        errno.ENETUNREACH,
        errno.EHOSTUNREACH,
        errno.EADDRNOTAVAIL,
        errno.EAFNOSUPPORT,
        errno.EINVAL,  # a link-local or multicast IPv6 address without a scope id
        errno.ENETDOWN,
        errno.EACCES,  # a broadcast address
        errno.EPERM,
    }
)

# The port a probe connects to; no packet is sent, and policy routing by port is rare.
_PROBE_PORT = 9


class KernelSource:
    """A `SourceOf` that asks the kernel: it connects a UDP socket to the destination
    (which sends nothing) and reads the local address the kernel bound it to.

    Answers are remembered for ``ttl`` seconds per destination address (family, address
    and scope id; the port is not part of the question), since addresses and routes
    change. At most ``maxsize`` answers are kept; when full, the expired ones go, and
    if none has expired, all of them. The cache is shared by threads (a dict, each step
    atomic); two threads may both probe the same address, which is harmless.
    """

    __slots__ = ("_cache", "_clock", "_maxsize", "_ttl")

    def __init__(
        self,
        ttl: float = 1.0,
        *,
        maxsize: int = 1024,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._ttl = ttl
        self._maxsize = maxsize
        self._clock = clock
        self._cache: dict[tuple[int, str, int], tuple[float, str | None]] = {}

    def __call__(self, candidate: Candidate) -> str | None:
        family, address = candidate
        scope_id = address[3] if len(address) == 4 else 0
        key = (int(family), address[0], scope_id)
        now = self._clock()
        hit = self._cache.get(key)
        if hit is not None and now < hit[0]:
            return hit[1]
        source, keep = _probe(candidate)
        if keep and self._ttl > 0:
            if len(self._cache) >= self._maxsize:
                self._prune(now)
            self._cache[key] = (now + self._ttl, source)
        return source

    def _prune(self, now: float) -> None:
        for key, (expires, _) in list(self._cache.items()):
            if expires <= now:
                self._cache.pop(key, None)
        if len(self._cache) >= self._maxsize:
            self._cache.clear()

    def clear(self) -> None:
        """Forget every answer (after a network change, say)."""
        self._cache.clear()


def _probe(candidate: Candidate) -> tuple[str | None, bool]:
    """The kernel's source address for ``candidate`` (or ``None``), and whether the
    answer may be remembered."""
    family, address = candidate
    target: Address = (address[0], _PROBE_PORT)
    if len(address) == 4:
        target = (address[0], _PROBE_PORT, address[2], address[3])
    held: dict[int, socket.socket] = {}
    try:
        sock = new_socket(held, 0, family, socket.SOCK_DGRAM)
        sock.connect(target)
        source: str = sock.getsockname()[0]
    except OSError as exc:
        return None, exc.errno in _NO_SOURCE
    finally:
        # Twice, as the race's cleanup: a signal can land as close() starts (a Python
        # call), and the second pass closes what the first did not.
        try:
            for sock in held.values():
                sock.close()
        finally:
            for sock in held.values():
                sock.close()
    return source, True


#: The process's `KernelSource` (answers kept for 1 second).
kernel_source = KernelSource()


# -- NAT64: RFC 6052 addresses ---------------------------------------------------------

#: The NAT64 Well-Known Prefix (RFC 6052 section 2.1).
WELL_KNOWN_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
#: The prefix lengths RFC 6052 section 2.2 defines.
PREFIX_LENGTHS = (32, 40, 48, 56, 64, 96)

# RFC 6052 section 2.2: the bytes of the IPv6 address that carry the IPv4 address's
# four bytes, per prefix length. Byte 8 (bits 64 to 71, the "u" octet) is never one
# of them and must be zero; the bytes after the IPv4 address are the suffix (zero).
_POSITIONS = {
    32: (4, 5, 6, 7),
    40: (5, 6, 7, 9),
    48: (6, 7, 9, 10),
    56: (7, 9, 10, 11),
    64: (9, 10, 11, 12),
    96: (12, 13, 14, 15),
}
_U_OCTET = 8


def _check_prefix(prefix: ipaddress.IPv6Network) -> None:
    if prefix.prefixlen not in _POSITIONS:
        raise ValueError(f"{prefix}: an RFC 6052 prefix is /32, /40, /48, /56, /64 or /96")
    if prefix.network_address.packed[_U_OCTET]:
        raise ValueError(f"{prefix}: bits 64 to 71 (the u octet) must be zero")


def synthesize(prefix: ipaddress.IPv6Network, ipv4: str) -> str:
    """The IPv6 address that stands for ``ipv4`` behind the NAT64 ``prefix`` (RFC 6052
    section 2.2): the IPv4 address's bits after the prefix's, skipping bits 64 to 71,
    which stay zero, as does the suffix.

    Only the format is checked (`ValueError` for a prefix length RFC 6052 does not
    define, a prefix with a non-zero u octet, or a malformed IPv4 address); whether the
    address should be synthesized at all is `may_synthesize`'s question.
    """
    _check_prefix(prefix)
    try:
        v4 = socket.inet_pton(socket.AF_INET, ipv4)
    except OSError:
        raise ValueError(f"not an IPv4 address: {ipv4!r}") from None
    packed = bytearray(prefix.network_address.packed)
    for position, byte in zip(_POSITIONS[prefix.prefixlen], v4, strict=True):
        packed[position] = byte
    return socket.inet_ntop(socket.AF_INET6, bytes(packed))


def extract(prefix: ipaddress.IPv6Network, ipv6: str) -> str:
    """The IPv4 address inside ``ipv6``, an address synthesized with the NAT64
    ``prefix`` (the inverse of `synthesize`). The suffix is not checked.

    Raises `ValueError` if ``ipv6`` is not inside ``prefix``, if its u octet (bits 64
    to 71) is not zero, or if the prefix is not an RFC 6052 one.
    """
    _check_prefix(prefix)
    if ":" not in ipv6:
        raise ValueError(f"not an IPv6 address: {ipv6!r}")
    value = _parse(ipv6)
    if not _in(value, int(prefix.network_address), prefix.prefixlen):
        raise ValueError(f"{ipv6} is not inside {prefix}")
    packed = value.to_bytes(16, "big")
    if packed[_U_OCTET]:
        raise ValueError(f"{ipv6}: bits 64 to 71 (the u octet) are not zero")
    return socket.inet_ntop(socket.AF_INET, bytes(packed[i] for i in _POSITIONS[prefix.prefixlen]))


def _v4_networks(*networks: str) -> tuple[tuple[int, int], ...]:
    return tuple(
        (int(net.network_address), net.prefixlen) for net in map(ipaddress.IPv4Network, networks)
    )


def _v4_in(value: int, networks: Sequence[tuple[int, int]]) -> bool:
    return any(value >> (32 - length) == base >> (32 - length) for base, length in networks)


# Never synthesized, whatever the prefix: the HEv3 draft's section 8.1 list (this host,
# loopback, link-local, limited broadcast), and multicast and the reserved 240/4, which
# no TCP connection reaches.
_NEVER = _v4_networks("0.0.0.0/8", "127.0.0.0/8", "169.254.0.0/16", "224.0.0.0/4", "240.0.0.0/4")
# Not globally reachable (RFC 6890 and the IANA IPv4 special-purpose registry): the
# Well-Known Prefix must not carry them (RFC 6052 section 3.1). 192.0.0.9 (PCP anycast)
# and 192.0.0.10 (TURN anycast) are the globally reachable exceptions in 192.0.0.0/24.
_NOT_GLOBAL = _v4_networks(
    "10.0.0.0/8",
    "100.64.0.0/10",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
)
_GLOBAL_EXCEPTIONS = _v4_networks("192.0.0.9/32", "192.0.0.10/32")


def may_synthesize(prefix: ipaddress.IPv6Network, ipv4: str) -> bool:
    """Whether ``ipv4`` may be reached through the NAT64 ``prefix``: never this-host,
    loopback, link-local, multicast or reserved addresses (HEv3 draft section 8.1, and
    the last two because no TCP connection reaches them), and through the Well-Known
    Prefix 64:ff9b::/96 only a globally reachable address (RFC 6052 section 3.1: not
    RFC 1918, shared, documentation, benchmarking, ... space). A network-specific prefix
    may carry private addresses. Raises `ValueError` for a malformed IPv4 address."""
    try:
        value = int.from_bytes(socket.inet_pton(socket.AF_INET, ipv4), "big")
    except OSError:
        raise ValueError(f"not an IPv4 address: {ipv4!r}") from None
    if _v4_in(value, _NEVER):
        return False
    if prefix == WELL_KNOWN_PREFIX:
        return not _v4_in(value, _NOT_GLOBAL) or _v4_in(value, _GLOBAL_EXCEPTIONS)
    return True


# -- NAT64: RFC 7050 prefix discovery --------------------------------------------------

#: The name whose AAAA answers reveal a DNS64's prefix (RFC 7050, RFC 8880).
IPV4ONLY_ARPA = "ipv4only.arpa"
#: The only A records of ipv4only.arpa, the "well-known IPv4 addresses" (RFC 7050
#: section 2): the primary and the secondary one.
WELL_KNOWN_IPV4 = ("192.0.0.170", "192.0.0.171")
_WKA = {
    int.from_bytes(socket.inet_pton(socket.AF_INET, address), "big"): address
    for address in WELL_KNOWN_IPV4
}

# Prefixes no NAT64 can have: a DNS64 answering with one of these is broken.
_BOGUS_PREFIXES = tuple(
    (int(net.network_address), net.prefixlen)
    for net in map(
        ipaddress.IPv6Network,
        ("::/80", "fe80::/10", "fec0::/10", "ff00::/8"),  # ::/80: ::1, IPv4-mapped...
    )
)


def _embedded(packed: bytes, length: int) -> int:
    value = 0
    for position in _POSITIONS[length]:
        value = value << 8 | packed[position]
    return value


def discover_prefixes(aaaa_answers: Iterable[str]) -> list[ipaddress.IPv6Network]:
    """The NAT64 prefixes that the AAAA answers for ``ipv4only.arpa`` reveal (RFC 7050
    section 3), in the order of the answers, without duplicates.

    ipv4only.arpa has only the A records 192.0.0.170 and 192.0.0.171, so an AAAA answer
    is a DNS64's synthesis of one of them. Each answer is searched for either address
    at the position of each RFC 6052 prefix length, with bits 64 to 71 zero; the bits
    before the position are the prefix. An answer in which one position matches gives
    its prefix. An answer in which several match (the prefix itself contains the bytes
    of a well-known address) is ambiguous: it gives the one prefix among them at which
    both well-known addresses were found across the answers (the reason RFC 7050 has
    a secondary address), and nothing if none or several are. Answers that are not IPv6
    addresses, hold neither address, or give a prefix no NAT64 can have (::/80 (loopback,
    IPv4-mapped, IPv4-compatible), link-local, site-local, multicast) are ignored.

    Not done here: DNSSEC validation of the prefix (RFC 7050 section 3.1), and the
    check that the answers came from the network's own resolver (RFC 8880: not from an
    encrypted or VPN resolver); the caller asks the right server.
    """
    found: list[list[tuple[int, int, int]]] = []  # per answer: (prefix, length, wka)
    for answer in aaaa_answers:
        try:
            value = _parse(answer)
        except ValueError:
            continue
        if ":" not in answer:
            continue
        packed = value.to_bytes(16, "big")
        if packed[_U_OCTET]:
            continue
        matches: list[tuple[int, int, int]] = []
        for length in PREFIX_LENGTHS:
            wka = _embedded(packed, length)
            if wka not in _WKA:
                continue
            prefix = value >> (128 - length) << (128 - length)
            if any(_in(prefix, base, size) for base, size in _BOGUS_PREFIXES):
                continue
            matches.append((prefix, length, wka))
        if matches:
            found.append(matches)
    # Which well-known addresses were seen at each prefix, over all the answers.
    seen: dict[tuple[int, int], set[int]] = {}
    for matches in found:
        for prefix, length, wka in matches:
            seen.setdefault((prefix, length), set()).add(wka)
    result: list[ipaddress.IPv6Network] = []
    for matches in found:
        if len(matches) == 1:
            chosen = matches[0][:2]
        else:
            both = [m[:2] for m in matches if len(seen[m[:2]]) == len(_WKA)]
            if len(both) != 1:
                continue
            chosen = both[0]
        prefix, length = chosen
        network = ipaddress.IPv6Network((prefix, length))
        if network not in result:
            result.append(network)
    return result


# -- is this host on an IPv6-only network? ---------------------------------------------

#: The destinations `is_ipv6_only` asks the kernel about: any globally routed
#: address would do. These are Android's (bionic's ``_have_ipv4``/``_have_ipv6``).
IPV4_PROBE = Candidate(socket.AF_INET, ("8.8.8.8", _PROBE_PORT))
IPV6_PROBE = Candidate(socket.AF_INET6, ("2000::", _PROBE_PORT, 0, 0))


def is_ipv6_only(source_of: SourceOf | None = None) -> bool:
    """Whether this host has routable IPv6 and no routable IPv4, the HEv3 draft's
    condition (section 8) for NAT64 synthesis of its own.

    The test: the kernel has a global-scope source address for a global IPv6 address
    (`IPV6_PROBE`), and no source address, or only a link-local one (169.254/16), for a
    global IPv4 address (`IPV4_PROBE`). These are UDP connects: nothing is sent.
    ``source_of`` defaults to `kernel_source`.

    Its limits: it reads the routing table, not the network. A default route that leads
    nowhere (a captive portal, a firewall, a dead uplink) still counts as a route; a VPN
    with only specific IPv4 routes counts as no IPv4; it sees one routing table (the
    process's own: policy routing by mark or user is seen as the kernel applies it, but
    Provisioning Domains are not). A host with 464XLAT (a CLAT, e.g. 192.0.0.4 on
    Android) has an IPv4 route and so is not IPv6-only here, which is what the draft
    wants: its IPv4 already works. The answer says nothing about whether a NAT64 exists;
    that is `discover_prefixes`'s (or the router's PREF64 option's) question.
    """
    if source_of is None:
        source_of = kernel_source
    v6 = source_of(IPV6_PROBE)
    if v6 is None or attributes(v6).scope != _SCOPE_GLOBAL or _is_v4(_parse(v6)):
        return False
    v4 = source_of(IPV4_PROBE)
    return v4 is None or attributes(v4).scope != _SCOPE_GLOBAL
