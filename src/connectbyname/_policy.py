"""Address policy: which addresses a call may connect to.

The planner asks the policy about each address immediately before that address's
attempt starts, and the driver connects to exactly the address that was vetted: there
is no second lookup in between, so DNS rebinding cannot slip another address past it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: What a server fetching URLs on behalf of users must never reach, with the reason.
SPECIAL_NETWORKS: tuple[tuple[str, str], ...] = (
    ("0.0.0.0/8", "unspecified ('this network')"),
    ("10.0.0.0/8", "private (RFC 1918)"),
    ("100.64.0.0/10", "shared address space (CGNAT, RFC 6598)"),
    ("127.0.0.0/8", "loopback"),
    ("169.254.0.0/16", "link-local (cloud metadata lives here)"),
    ("172.16.0.0/12", "private (RFC 1918)"),
    ("192.0.0.0/24", "IETF protocol assignments"),
    ("192.0.2.0/24", "documentation"),
    ("192.88.99.0/24", "reserved (6to4 relay anycast)"),
    ("192.168.0.0/16", "private (RFC 1918)"),
    ("198.18.0.0/15", "benchmarking"),
    ("198.51.100.0/24", "documentation"),
    ("203.0.113.0/24", "documentation"),
    ("224.0.0.0/4", "multicast"),
    ("240.0.0.0/4", "reserved"),
    ("::/128", "unspecified"),
    ("::1/128", "loopback"),
    ("64:ff9b:1::/48", "local-use NAT64"),
    ("100::/64", "discard-only"),
    ("2001::/23", "IETF protocol assignments"),
    ("2001:db8::/32", "documentation"),
    ("fc00::/7", "unique local (ULA)"),
    ("fe80::/10", "link-local"),
    ("fec0::/10", "site-local (deprecated)"),
    ("ff00::/8", "multicast"),
)


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address stands for, if any: IPv4-mapped
    (``::ffff:a.b.c.d``), IPv4-compatible (``::a.b.c.d``), NAT64 (``64:ff9b::/96``)
    or 6to4 (``2002:AABB:CCDD::/48``)."""
    if address.version == 4:
        return None
    assert isinstance(address, ipaddress.IPv6Address)
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    value = int(address)
    if value >> 32 == 0 and value > 1:  # IPv4-compatible; ::1 and :: are themselves
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    if value >> 32 == 0x0064FF9B << 64:  # NAT64 well-known prefix, RFC 6052
        return ipaddress.IPv4Address(value & 0xFFFFFFFF)
    return None


class AddressPolicy:
    """Allow and deny lists of networks, checked in that order.

    An address inside an ``allow`` network is allowed; otherwise one inside a ``deny``
    network is refused with that network's reason. With ``default_allow=False`` every
    address not explicitly allowed is refused. IPv6 forms of an IPv4 address (mapped,
    compatible, NAT64, 6to4) are judged as that IPv4 address too.
    """

    def __init__(
        self,
        *,
        allow: Iterable[str | IPNetwork] = (),
        deny: Iterable[str | IPNetwork | tuple[str, str]] = (),
        default_allow: bool = True,
    ) -> None:
        self.allow = tuple(ipaddress.ip_network(n) for n in allow)
        denied: list[tuple[IPNetwork, str]] = []
        for item in deny:
            network, reason = item if isinstance(item, tuple) else (item, "denied network")
            denied.append((ipaddress.ip_network(network), reason))
        self.deny = tuple(denied)
        self.default_allow = default_allow

    def __call__(self, host: str) -> str | None:
        """Why ``host`` (an IP literal) is refused, or ``None`` if it is allowed."""
        address = ipaddress.ip_address(host.partition("%")[0])
        embedded = embedded_ipv4(address)
        forms = (address,) if embedded is None else (address, embedded)
        for form in forms:
            if any(form in network for network in self.allow if network.version == form.version):
                return None
        for form in forms:
            for network, reason in self.deny:
                if network.version == form.version and form in network:
                    suffix = f" (as {form})" if form is not address else ""
                    return f"{reason}: {network}{suffix}"
        return None if self.default_allow else "not in an allowed network"

    def __repr__(self) -> str:
        return (
            f"AddressPolicy(allow={[str(n) for n in self.allow]}, "
            f"deny={len(self.deny)} networks, default_allow={self.default_allow})"
        )


#: A policy to pass as ``policy=`` wherever the addresses to reach come from users.
PUBLIC_ONLY = AddressPolicy(deny=SPECIAL_NETWORKS)

#: A policy: a callable taking an IP literal and returning why it is refused, or None.
Policy = Callable[[str], str | None]
