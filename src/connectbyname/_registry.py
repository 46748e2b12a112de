"""IANA's address registries as data, with what `PUBLIC_ONLY` does with each entry.

Every row of the IANA IPv4 and IPv6 Special-Purpose Address Registries (both of
2025-10-09) and of the IANA IPv6 Address Space registry (2025-10-23), in the registries'
own order, with their own names, references and flags. A registry update means:
transcribe the new rows here, update the date and the count in ``tests/test_registry.py``,
and run it: it judges every entry.

The flags are the registry's: ``None`` where it says "N/A" (Teredo's and 6to4's Globally
Reachable) or leaves the cell blank (the terminated rows). ``decision`` is ours:

- ``"refuse"``: `PUBLIC_ONLY` refuses every address in the block (``label`` is the reason).
- ``"embedded"``: the block spells IPv4 addresses in IPv6; `PUBLIC_ONLY` judges the IPv4
  address it carries instead.
- ``"allow"``: `PUBLIC_ONLY` allows the block, unless a more specific entry says otherwise.

The most specific entry containing an address decides (``2001:1::1/128`` inside
``2001::/23``, ``64:ff9b:1::/96`` inside ``64:ff9b:1::/48``).
"""

from __future__ import annotations

from typing import Final, Literal, NamedTuple

# Sources, compared row by row: a public repository's transcription of the three
# registries' CSV exports (retrieved 2026-07-27; it gives the versions above and every
# flag); the header of a mirrored copy of the IPv6 registry's XML (updated 2025-10-09);
# other projects' transcriptions of the same rows (an OCaml and a Python list of all 25
# IPv6 and IPv4 rows, a TypeScript guard's Globally Reachable value for each IPv4 row,
# and a reference document giving the IPv6 flags; one guard has Source=False for
# 100:0:0:1::/64, the others and RFC 9780's purpose, a source address, say True); and
# CPython's ipaddress (main branch), whose is_global follows the same registries and
# agrees on every block it lists, lagging on 2001:1::3/128, 100:0:0:1::/64 and 5f00::/16.

Decision = Literal["refuse", "embedded", "allow"]


class Block(NamedTuple):
    """One registry row: its address block(s), the registry's fields, and our decision."""

    #: The registry row's address blocks (one row of the IPv4 registry has two).
    prefixes: tuple[str, ...]
    #: The registry's name for the block.
    name: str
    #: The registry's reference.
    rfc: str
    source: bool | None
    destination: bool | None
    forwardable: bool | None
    globally_reachable: bool | None
    #: What `PUBLIC_ONLY` does with an address in the block.
    decision: Decision
    #: The refusal reason `PUBLIC_ONLY` gives (short, lowercase).
    label: str
    #: Why that decision.
    why: str


# Shorthands for the flag columns, in the registry's order: Source, Destination,
# Forwardable, Globally Reachable.
T, F, NA = True, False, None

_NOT_GLOBAL = "not globally reachable"
_NOT_A_DESTINATION = "not valid as a destination"
_ANYCAST = (
    "globally reachable, but an anycast service address: it reaches the nearest instance, "
    "which may be the operator's own network, and serves no content a fetched URL needs"
)
_DOCUMENTATION = "documentation only: never a real destination"

#: The version of the IANA IPv4 Special-Purpose Address Registry transcribed below.
IPV4_SPECIAL_DATE: Final = "2025-10-09"
#: The version of the IANA IPv6 Special-Purpose Address Registry transcribed below.
IPV6_SPECIAL_DATE: Final = "2025-10-09"
#: The version of the IANA IPv6 Address Space registry transcribed below.
IPV6_ADDRESS_SPACE_DATE: Final = "2025-10-23"

#: The IANA IPv4 Special-Purpose Address Registry, every row (25).
# fmt: off
IPV4_SPECIAL: Final[tuple[Block, ...]] = (
    Block(("0.0.0.0/8",), '"This network"', "RFC 791, Section 3.2", T, F, F, F, "refuse",
          "this network", f"{_NOT_A_DESTINATION}; Linux connects 0.0.0.0 to the local host"),
    Block(("0.0.0.0/32",), '"This host on this network"', "RFC 1122, Section 3.2.1.3",
          T, F, F, F, "refuse", "this host on this network", _NOT_A_DESTINATION),
    Block(("10.0.0.0/8",), "Private-Use", "RFC 1918", T, T, T, F, "refuse",
          "private-use (RFC 1918)", _NOT_GLOBAL),
    Block(("100.64.0.0/10",), "Shared Address Space", "RFC 6598", T, T, T, F, "refuse",
          "shared address space (CGNAT)",
          f"{_NOT_GLOBAL}; provider-internal (Alibaba Cloud's metadata is 100.100.100.200)"),
    Block(("127.0.0.0/8",), "Loopback", "RFC 1122, Section 3.2.1.3", F, F, F, F, "refuse",
          "loopback", _NOT_GLOBAL),
    Block(("169.254.0.0/16",), "Link Local", "RFC 3927", T, T, F, F, "refuse",
          "link-local (cloud metadata lives here)",
          f"{_NOT_GLOBAL}; AWS, Google, Azure, ... metadata is 169.254.169.254"),
    Block(("172.16.0.0/12",), "Private-Use", "RFC 1918", T, T, T, F, "refuse",
          "private-use (RFC 1918)", _NOT_GLOBAL),
    Block(("192.0.0.0/24",), "IETF Protocol Assignments", "RFC 6890, Section 2.1",
          F, F, F, F, "refuse", "IETF protocol assignments",
          f"{_NOT_GLOBAL}; Oracle Cloud's metadata is 192.0.0.192"),
    Block(("192.0.0.0/29",), "IPv4 Service Continuity Prefix", "RFC 7335", T, T, T, F,
          "refuse", "IPv4 service continuity prefix (DS-Lite)", _NOT_GLOBAL),
    Block(("192.0.0.8/32",), "IPv4 dummy address", "RFC 7600", T, F, F, F, "refuse",
          "IPv4 dummy address", _NOT_A_DESTINATION),
    Block(("192.0.0.9/32",), "Port Control Protocol Anycast", "RFC 7723", T, T, T, T,
          "refuse", "Port Control Protocol anycast",
          f"{_ANYCAST}; the nearest PCP server controls the network's NAT"),
    Block(("192.0.0.10/32",), "Traversal Using Relays around NAT Anycast", "RFC 8155",
          T, T, T, T, "refuse", "TURN anycast", _ANYCAST),
    Block(("192.0.0.170/32", "192.0.0.171/32"), "NAT64/DNS64 Discovery",
          "RFC 8880, RFC 7050 Section 2.2", F, F, F, F, "refuse", "NAT64/DNS64 discovery",
          _NOT_A_DESTINATION),
    Block(("192.0.2.0/24",), "Documentation (TEST-NET-1)", "RFC 5737", F, F, F, F, "refuse",
          "documentation (TEST-NET-1)", _DOCUMENTATION),
    Block(("192.31.196.0/24",), "AS112-v4", "RFC 7535", T, T, T, T, "refuse",
          "AS112 DNS sink (anycast)",
          f"{_ANYCAST}; RFC 7534 lets operators run AS112 nodes inside their networks"),
    Block(("192.52.193.0/24",), "AMT", "RFC 7450", T, T, T, T, "refuse",
          "AMT relay anycast", _ANYCAST),
    Block(("192.88.99.0/24",), "Deprecated (6to4 Relay Anycast)", "RFC 7526",
          NA, NA, NA, NA, "refuse", "deprecated 6to4 relay anycast",
          "terminated 2015-03 (RFC 7526): its flags are gone, nothing legitimate is there"),
    Block(("192.88.99.2/32",), "6a44-relay anycast address", "RFC 6751", T, T, T, F,
          "refuse", "6a44 relay anycast", _NOT_GLOBAL),
    Block(("192.168.0.0/16",), "Private-Use", "RFC 1918", T, T, T, F, "refuse",
          "private-use (RFC 1918)", _NOT_GLOBAL),
    Block(("192.175.48.0/24",), "Direct Delegation AS112 Service", "RFC 7534", T, T, T, T,
          "refuse", "AS112 DNS sink (anycast)",
          f"{_ANYCAST}; RFC 7534 lets operators run AS112 nodes inside their networks"),
    Block(("198.18.0.0/15",), "Benchmarking", "RFC 2544", T, T, T, F, "refuse",
          "benchmarking", _NOT_GLOBAL),
    Block(("198.51.100.0/24",), "Documentation (TEST-NET-2)", "RFC 5737", F, F, F, F,
          "refuse", "documentation (TEST-NET-2)", _DOCUMENTATION),
    Block(("203.0.113.0/24",), "Documentation (TEST-NET-3)", "RFC 5737", F, F, F, F,
          "refuse", "documentation (TEST-NET-3)", _DOCUMENTATION),
    Block(("240.0.0.0/4",), "Reserved", "RFC 1112, Section 4", F, F, F, F, "refuse",
          "reserved (former class E)", _NOT_GLOBAL),
    Block(("255.255.255.255/32",), "Limited Broadcast", "RFC 8190, RFC 919 Section 7",
          F, T, F, F, "refuse", "limited broadcast", _NOT_GLOBAL),
)
# fmt: on

_EMBEDS = "judged as the IPv4 address it carries"
_TUNNEL = (
    "Globally Reachable N/A: a tunnel through whichever relay the route to the prefix "
    "reaches, towards the IPv4 address(es) the address carries; a relay inside a network "
    "can reach its private IPv4, and the mechanism is all but unused today, so refused "
    "whatever it carries (RFC 7526 deprecated only 6to4's anycast relays, not 2002::/16)"
)

#: The IANA IPv6 Special-Purpose Address Registry, every row (25).
# fmt: off
IPV6_SPECIAL: Final[tuple[Block, ...]] = (
    Block(("::1/128",), "Loopback Address", "RFC 4291", F, F, F, F, "refuse", "loopback",
          _NOT_GLOBAL),
    Block(("::/128",), "Unspecified Address", "RFC 4291", T, F, F, F, "refuse",
          "unspecified", _NOT_A_DESTINATION),
    Block(("::ffff:0:0/96",), "IPv4-mapped Address", "RFC 4291", F, F, F, F, "embedded",
          "IPv4-mapped",
          f"{_EMBEDS}: the way a dual-stack socket spells an IPv4 destination"),
    Block(("64:ff9b::/96",), "IPv4-IPv6 Translat.", "RFC 6052", T, T, T, T, "embedded",
          "NAT64 well-known prefix",
          f"{_EMBEDS}: IPv6-only networks reach every IPv4-only host through it, and "
          "RFC 6052 forbids it for non-global IPv4, so a public one is as safe as itself"),
    Block(("64:ff9b:1::/48",), "IPv4-IPv6 Translat.", "RFC 8215", T, T, T, F, "refuse",
          "local-use NAT64 (RFC 8215)",
          f"{_NOT_GLOBAL}, and made for translating to non-global IPv4; only its /96 form "
          "(64:ff9b:1::/96, below) is decoded: at /48, /56 and /64 the same bits spell "
          "different IPv4 addresses depending on a prefix length the address does not carry"),
    Block(("100::/64",), "Discard-Only Address Block", "RFC 6666", T, T, T, F, "refuse",
          "discard-only", _NOT_GLOBAL),
    Block(("100:0:0:1::/64",), "Dummy IPv6 Prefix", "RFC 9780", T, F, F, F, "refuse",
          "dummy IPv6 prefix", _NOT_A_DESTINATION),
    Block(("2001::/23",), "IETF Protocol Assignments", "RFC 2928", F, F, F, F, "refuse",
          "IETF protocol assignments", _NOT_GLOBAL),
    Block(("2001::/32",), "TEREDO", "RFC 4380, RFC 8190", T, T, T, NA, "refuse",
          "Teredo tunnel", _TUNNEL),
    Block(("2001:1::1/128",), "Port Control Protocol Anycast", "RFC 7723", T, T, T, T,
          "refuse", "Port Control Protocol anycast",
          f"{_ANYCAST}; the nearest PCP server controls the network's NAT"),
    Block(("2001:1::2/128",), "Traversal Using Relays around NAT Anycast", "RFC 8155",
          T, T, T, T, "refuse", "TURN anycast", _ANYCAST),
    Block(("2001:1::3/128",), "DNS-SD Service Registration Protocol Anycast", "RFC 9665",
          T, T, T, T, "refuse", "DNS-SD service registration anycast",
          f"{_ANYCAST}; it is the local network's service registry"),
    Block(("2001:2::/48",), "Benchmarking", "RFC 5180, RFC Errata 1752", T, T, T, F,
          "refuse", "benchmarking", _NOT_GLOBAL),
    Block(("2001:3::/32",), "AMT", "RFC 7450", T, T, T, T, "refuse", "AMT relay anycast",
          _ANYCAST),
    Block(("2001:4:112::/48",), "AS112-v6", "RFC 7535", T, T, T, T, "refuse",
          "AS112 DNS sink (anycast)",
          f"{_ANYCAST}; RFC 7534 lets operators run AS112 nodes inside their networks"),
    Block(("2001:10::/28",), "Deprecated (previously ORCHID)", "RFC 4843", NA, NA, NA, NA,
          "refuse", "deprecated ORCHID", "terminated 2014-03: nothing legitimate is there"),
    Block(("2001:20::/28",), "ORCHIDv2", "RFC 7343", T, T, T, T, "refuse",
          "ORCHIDv2 (cryptographic identifiers)",
          "identifiers, not locators: where one leads depends on the local HIP stack"),
    Block(("2001:30::/28",), "Drone Remote ID Protocol Entity Tags (DETs) Prefix",
          "RFC 9374", T, T, T, T, "refuse", "drone remote ID entity tags",
          "identifiers (ORCHID-based), not hosts a fetched URL needs"),
    Block(("2001:db8::/32",), "Documentation", "RFC 3849", F, F, F, F, "refuse",
          "documentation", _DOCUMENTATION),
    Block(("2002::/16",), "6to4", "RFC 3056", T, T, T, NA, "refuse",
          "6to4 tunnel", _TUNNEL),
    Block(("2620:4f:8000::/48",), "Direct Delegation AS112 Service", "RFC 7534", T, T, T, T,
          "refuse", "AS112 DNS sink (anycast)",
          f"{_ANYCAST}; RFC 7534 lets operators run AS112 nodes inside their networks"),
    Block(("3fff::/20",), "Documentation", "RFC 9637", F, F, F, F, "refuse",
          "documentation", _DOCUMENTATION),
    Block(("5f00::/16",), "Segment Routing (SRv6) SIDs", "RFC 9602", T, T, T, F, "refuse",
          "SRv6 segment identifiers", _NOT_GLOBAL),
    Block(("fc00::/7",), "Unique-Local", "RFC 4193, RFC 8190", T, T, T, F, "refuse",
          "unique local (ULA)", f"{_NOT_GLOBAL}; AWS's IPv6 metadata is fd00:ec2::254"),
    Block(("fe80::/10",), "Link-Local Unicast", "RFC 4291", T, T, F, F, "refuse",
          "link-local", _NOT_GLOBAL),
)
# fmt: on

_RESERVED_BY_IETF = "not global unicast: IANA allocates unicast only from 2000::/3"

#: The IANA IPv6 Address Space registry, every row (20): it tiles the whole space. The
#: flag columns do not exist in this registry and are ``None``.
# fmt: off
IPV6_ADDRESS_SPACE: Final[tuple[Block, ...]] = (
    Block(("::/8",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("100::/8",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("200::/7",), "Reserved by IETF", "RFC 4048", NA, NA, NA, NA, "refuse",
          "reserved by IETF (former NSAP mapping)", _RESERVED_BY_IETF),
    Block(("400::/6",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("800::/5",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("1000::/4",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("2000::/3",), "Global Unicast", "RFC 3513, RFC 4291", NA, NA, NA, NA, "allow",
          "global unicast", "the only space IANA allocates unicast addresses from"),
    Block(("4000::/3",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("6000::/3",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("8000::/3",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("a000::/3",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("c000::/3",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("e000::/4",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("f000::/5",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("f800::/6",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("fc00::/7",), "Unique Local Unicast", "RFC 4193", NA, NA, NA, NA, "refuse",
          "unique local (ULA)", _NOT_GLOBAL),
    Block(("fe00::/9",), "Reserved by IETF", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "reserved by IETF", _RESERVED_BY_IETF),
    Block(("fe80::/10",), "Link-Scoped Unicast", "RFC 3513, RFC 4291", NA, NA, NA, NA,
          "refuse", "link-local", _NOT_GLOBAL),
    Block(("fec0::/10",), "Reserved by IETF", "RFC 3879", NA, NA, NA, NA, "refuse",
          "site-local (deprecated)", "deprecated by RFC 3879; a site's own addresses"),
    Block(("ff00::/8",), "Multicast", "RFC 3513, RFC 4291", NA, NA, NA, NA, "refuse",
          "multicast", "not a unicast destination"),
)
# fmt: on

#: Blocks `PUBLIC_ONLY` judges that none of the three registries above lists as a row
#: of its own. The flags are ``None``: these come from other registries or documents.
# fmt: off
EXTRA: Final[tuple[Block, ...]] = (
    # IANA IPv4 Address Space registry (224/8 to 239/8, "Multicast", last updated
    # 2025-10-10): the special-purpose registry does not list multicast.
    Block(("224.0.0.0/4",), "Multicast", "RFC 5771", NA, NA, NA, NA, "refuse", "multicast",
          "not a unicast destination"),
    # Microsoft's documentation ("What is IP address 168.63.129.16?"): a public address
    # that only Azure VMs reach, answering for the calling VM.
    Block(("168.63.129.16/32",), "Azure platform virtual IP (WireServer)",
          "Microsoft Azure documentation", NA, NA, NA, NA, "refuse",
          "Azure platform virtual IP (WireServer)",
          "a public address that reaches the Azure host agent of the calling VM (VM agent, "
          "DNS, DHCP, health probes): never a destination for a user's URL"),
    Block(("::/96",), "IPv4-compatible Address (deprecated)", "RFC 4291, Section 2.5.5.1",
          NA, NA, NA, NA, "embedded", "IPv4-compatible",
          f"{_EMBEDS} (:: and ::1 are themselves): a Linux sit tunnel can still send "
          "::a.b.c.d to a.b.c.d"),
    Block(("::ffff:0:0:0/96",), "IPv4-translated Address (SIIT)",
          "RFC 2765 Section 2.1, RFC 6052, RFC 7915", NA, NA, NA, NA, "embedded",
          "IPv4-translated (SIIT)",
          f"{_EMBEDS}: a stateless translator sends ::ffff:0:a.b.c.d to a.b.c.d"),
    Block(("64:ff9b:1::/96",), "Local-use NAT64, /96 format", "RFC 8215, RFC 6052",
          NA, NA, NA, NA, "embedded", "local-use NAT64 (RFC 8215)",
          f"{_EMBEDS}: the /96 form is unambiguous (read at any shorter length, the same "
          "address spells 0.0.0.x, which nothing forwards)"),
)
# fmt: on
