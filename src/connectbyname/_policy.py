"""Address policy: which addresses, ports and host names a call may connect to.

The planner asks the policy about each address immediately before that address's
attempt starts, and the driver connects to exactly the address that was vetted: there
is no second lookup in between, so DNS rebinding cannot slip another address past it.
The engine also asks, once per call and before resolving, about the port
(`AddressPolicy.check_port`) and the host name (`AddressPolicy.check_name`) when the
policy has those methods; a plain callable policy is asked about addresses only.
"""

from __future__ import annotations

import ipaddress
import socket
import unicodedata
from bisect import bisect_right
from collections.abc import Callable, Iterable
from typing import Any, Final, cast

import idna

from ._registry import EXTRA, IPV4_SPECIAL, IPV6_ADDRESS_SPACE, IPV6_SPECIAL

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

#: A policy: a callable taking an IP literal and returning why it is refused, or None.
Policy = Callable[[str], str | None]


def _special_networks() -> tuple[tuple[str, str | None], ...]:
    rows: list[tuple[str, str | None]] = []
    for block in (*IPV4_SPECIAL, *IPV6_ADDRESS_SPACE, *IPV6_SPECIAL, *EXTRA):
        for prefix in block.prefixes:
            rows.append((prefix, block.label if block.decision == "refuse" else None))
    networks = {prefix: ipaddress.ip_network(prefix) for prefix, _ in rows}
    rows.sort(key=lambda row: (networks[row[0]].version, networks[row[0]]))
    return tuple(rows)


#: What `PUBLIC_ONLY` refuses, as ``deny=`` entries: (network, reason), where a reason of
#: ``None`` exempts a block from a broader entry (IPv4-mapped, NAT64 and the other forms
#: that carry an IPv4 address, judged as that address; global unicast 2000::/3). Built
#: from the IANA registries in `connectbyname._registry`.
SPECIAL_NETWORKS: Final = _special_networks()

#: Host names `PUBLIC_ONLY` refuses, as ``deny_hosts=`` entries: (name, reason); a name
#: with a leading dot stands for that domain and every name under it.
SPECIAL_HOSTS: Final[tuple[tuple[str, str], ...]] = (
    # Cloud metadata services. Most live at addresses PUBLIC_ONLY refuses anyway
    # (169.254.169.254, fd00:ec2::254, 100.100.100.200, 192.0.0.192); naming them refuses
    # them before any lookup, with a reason that says what they are. Equinix Metal's is
    # the case that needs the name: a public address that answers for the calling server.
    ("metadata.google.internal", "cloud metadata service (Google Cloud)"),
    ("metadata", "cloud metadata service (Google Cloud, through the search domain)"),
    ("metadata.goog", "cloud metadata service (Google Cloud alias)"),
    ("instance-data", "cloud metadata service (Amazon EC2, through the search domain)"),
    ("instance-data.ec2.internal", "cloud metadata service (Amazon EC2)"),
    ("metadata.platformequinix.com", "cloud metadata service (Equinix Metal)"),
    ("metadata.packet.net", "cloud metadata service (Packet, now Equinix Metal)"),
    ("rancher-metadata", "metadata service (Rancher)"),
    ("kubernetes.default", "Kubernetes API server (in-cluster name)"),
    ("kubernetes.default.svc", "Kubernetes API server (in-cluster name)"),
    # Special-use domains whose names never lead to a public host.
    (".localhost", "localhost name: resolves to loopback (RFC 6761)"),
    (".local", "multicast DNS name: the local link (RFC 6762)"),
    (".home.arpa", "home network name (RFC 8375)"),
    (".internal", "private-use domain (ICANN, 2024): cloud providers' internal names"),
)

#: The Fetch Standard's "bad ports": what browsers refuse to connect to for any URL, to
#: stop HTTP requests being used against other protocols (SMTP, IRC, ...). `PUBLIC_ONLY`
#: refuses them as ``deny_ports=``.
BAD_PORTS: Final[tuple[int, ...]] = (
    1, 7, 9, 11, 13, 15, 17, 19, 20, 21, 22, 23, 25, 37, 42, 43, 53, 69, 77, 79, 87, 95,
    101, 102, 103, 104, 109, 110, 111, 113, 115, 117, 119, 123, 135, 137, 139, 143, 161,
    179, 389, 427, 465, 512, 513, 514, 515, 526, 530, 531, 532, 540, 548, 554, 556, 563,
    587, 601, 636, 989, 990, 993, 995, 1719, 1720, 1723, 2049, 3659, 4045, 4190, 5060,
    5061, 6000, 6566, 6665, 6666, 6667, 6668, 6669, 6679, 6697, 10080,
)  # fmt: skip

_V4_SPACE: Final = 1 << 32
_V6_SPACE: Final = 1 << 128
_LOW32: Final = 0xFFFFFFFF
#: RFC 6052's prefix lengths for IPv4-embedded IPv6 addresses.
_NAT64_LENGTHS: Final = frozenset({32, 40, 48, 56, 64, 96})


class _Allowed:
    """The verdict of an interval inside an ``allow`` network."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "ALLOWED"


_ALLOWED: Final = _Allowed()


class _Embedded:
    """The verdict of an interval whose addresses carry IPv4 addresses.

    ``reason`` is the IPv6 block's own refusal (6to4, Teredo) or None (IPv4-mapped,
    NAT64, ...: judged by the IPv4 address alone).
    """

    __slots__ = ("decode", "form", "reason")

    def __init__(
        self, form: str, decode: Callable[[int], tuple[int, ...]], reason: str | None
    ) -> None:
        self.form = form
        self.decode = decode
        self.reason = reason


_Verdict = _Allowed | _Embedded | str | None


def _low32(value: int) -> tuple[int, ...]:
    return (value & _LOW32,)


def _sixtofour(value: int) -> tuple[int, ...]:
    return ((value >> 80) & _LOW32,)  # 2002:AABB:CCDD::/48


def _teredo(value: int) -> tuple[int, ...]:
    # The server in bits 32-63; the client's address is stored inverted in the last 32.
    return ((value >> 64) & _LOW32, ~value & _LOW32)


def _rfc6052(length: int) -> Callable[[int], tuple[int, ...]]:
    """The decoder of RFC 6052's address format for a NAT64 prefix of ``length`` bits."""
    if length == 96:
        return _low32

    def decode(value: int) -> tuple[int, ...]:
        # Bits 64-71 (the "u" octet) are never part of the IPv4 address: close the gap,
        # and the address is the 32 bits after the prefix.
        joined = ((value >> 64) << 56) | (value & ((1 << 56) - 1))
        return ((joined >> (120 - length - 32)) & _LOW32,)

    return decode


# The IPv6 forms that carry an IPv4 address, judged by every AddressPolicy (as ranges:
# the IPv4-compatible one leaves out :: and ::1, which are themselves).
_BUILTIN_FORMS: Final[tuple[tuple[int, int, str, Callable[[int], tuple[int, ...]]], ...]] = (
    (2, 1 << 32, "IPv4-compatible", _low32),
    (0xFFFF << 32, (0xFFFF << 32) + (1 << 32), "IPv4-mapped", _low32),
    (0xFFFF << 48, (0xFFFF << 48) + (1 << 32), "IPv4-translated", _low32),
    (0x64FF9B << 96, (0x64FF9B << 96) + (1 << 32), "NAT64", _low32),
    (0x64FF9B0001 << 80, (0x64FF9B0001 << 80) + (1 << 32), "local-use NAT64", _low32),
    (0x2002 << 112, 0x2003 << 112, "6to4", _sixtofour),
    (0x20010000 << 96, 0x20010001 << 96, "Teredo", _teredo),
)


def embedded_ipv4s(
    address: IPAddress, nat64_prefixes: Iterable[str | ipaddress.IPv6Network] = ()
) -> tuple[ipaddress.IPv4Address, ...]:
    """The IPv4 addresses an IPv6 address carries: IPv4-mapped (``::ffff:a.b.c.d``),
    IPv4-compatible (``::a.b.c.d``), IPv4-translated (``::ffff:0:a.b.c.d``), NAT64
    (``64:ff9b::a.b.c.d``, ``64:ff9b:1::a.b.c.d`` and the RFC 6052 formats of
    ``nat64_prefixes``), 6to4 (``2002:AABB:CCDD::/48``) and Teredo (server and client).
    Empty for an IPv4 address and for every other IPv6 address."""
    if address.version == 4:
        return ()
    value = int(address)
    declared = [_nat64_network(prefix) for prefix in nat64_prefixes]
    containing = [n for n in declared if address in n]
    if containing:
        # As in AddressPolicy: the most specific declared prefix, over any built-in form.
        network = max(containing, key=lambda n: n.prefixlen)
        return tuple(ipaddress.IPv4Address(v4) for v4 in _rfc6052(network.prefixlen)(value))
    for start, end, _form, decode in _BUILTIN_FORMS:
        if start <= value < end:
            return tuple(ipaddress.IPv4Address(v4) for v4 in decode(value))
    return ()


def _nat64_network(prefix: str | ipaddress.IPv6Network) -> ipaddress.IPv6Network:
    network = ipaddress.ip_network(prefix)
    if network.version != 6 or network.prefixlen not in _NAT64_LENGTHS:
        raise ValueError(
            f"{prefix!s} is not a NAT64 prefix: an IPv6 network of length 32, 40, 48, 56, "
            "64 or 96 (RFC 6052)"
        )
    assert isinstance(network, ipaddress.IPv6Network)
    return network


class _Table:
    """Every address of one family, cut into intervals that each have one verdict, for
    `bisect`: the most specific ``deny`` entry decides, ``allow`` beats them all."""

    __slots__ = ("starts", "verdicts")

    def __init__(
        self,
        space: int,
        allowed: list[tuple[int, int]],
        denied: list[tuple[int, int, int, str | None]],
        forms: list[tuple[int, int, int, str, Callable[[int], tuple[int, ...]]]],
    ) -> None:
        # Building is quadratic in the number of entries, which is fine for the hundred
        # or so a policy has: it happens once, and lookups are then one bisect.
        points = {0}
        points.update(bound for start, end in allowed for bound in (start, end))
        points.update(bound for start, end, *_ in denied for bound in (start, end))
        points.update(bound for start, end, *_ in forms for bound in (start, end))
        points.discard(space)
        embedded: dict[tuple[str, Callable[[int], tuple[int, ...]], str | None], _Embedded] = {}
        starts: list[int] = []
        verdicts: list[_Verdict] = []
        for point in sorted(points):
            verdict: _Verdict
            if any(start <= point < end for start, end in allowed):
                verdict = _ALLOWED
            else:
                # The most specific entry, and of equally specific ones the last.
                covering = [(length, i) for i, (start, end, length, _) in enumerate(denied)
                            if start <= point < end]  # fmt: skip
                verdict = denied[max(covering)[1]][3] if covering else None
                form = max(
                    ((length, i) for i, (start, end, length, *_) in enumerate(forms)
                     if start <= point < end),
                    default=None,
                )  # fmt: skip
                if form is not None:
                    _, _, _, name, decode = forms[form[1]]
                    key = (name, decode, verdict)
                    if key not in embedded:
                        embedded[key] = _Embedded(name, decode, verdict)
                    verdict = embedded[key]
            if verdicts and verdicts[-1] is verdict:
                continue
            starts.append(point)
            verdicts.append(verdict)
        self.starts = starts
        self.verdicts = verdicts

    def __call__(self, value: int) -> _Verdict:
        return self.verdicts[bisect_right(self.starts, value) - 1]


def _ipv4_text(value: int) -> str:
    return socket.inet_ntoa(value.to_bytes(4))


def _span(network: IPNetwork) -> tuple[int, int]:
    return int(network.network_address), int(network.broadcast_address) + 1


def _canonical_name(name: str) -> tuple[str, bool]:
    """The form host names are compared in, and whether it is an IP literal: literals in
    their compressed form, names in lowercase ASCII (IDNA, UTS 46) without the final
    dot."""
    text = name[1:-1] if name.startswith("[") and name.endswith("]") else name
    # inet_pton, not ipaddress: as strict, and a name costs no exception to find out.
    try:
        if ":" in text:
            packed = socket.inet_pton(socket.AF_INET6, text.partition("%")[0])
            return socket.inet_ntop(socket.AF_INET6, packed), True
        if text[-1:].isdigit():
            return socket.inet_ntop(socket.AF_INET, socket.inet_pton(socket.AF_INET, text)), True
    except (OSError, ValueError):
        pass
    text = text.rstrip(".")
    if not text.isascii():
        try:
            # As the engine encodes names for the resolver, so a name in fullwidth
            # letters and its ASCII spelling are the same name here too.
            text = idna.encode(text, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError):
            # The engine refuses such a name before resolving it; compare it as well as
            # it can be, so a rule still has a chance to name it.
            text = unicodedata.normalize("NFKC", text).casefold()
    return text.lower().rstrip("."), False


class _Names:
    """Exact names and domains (with everything under them), with their reasons."""

    __slots__ = ("domains", "exact")

    def __init__(self, entries: Iterable[str | tuple[str, str]], default: str) -> None:
        self.exact: dict[str, str] = {}
        self.domains: dict[str, str] = {}
        for entry in entries:
            name, reason = entry if isinstance(entry, tuple) else (entry, default)
            canonical, _ = _canonical_name(name.lstrip("."))
            (self.domains if name.startswith(".") else self.exact)[canonical] = reason

    def match(self, name: str, *, literal: bool = False) -> str | None:
        reason = self.exact.get(name)
        # Literals match exact entries only: "10.0.0.1" is not a name under "0.1".
        if reason is not None or literal or not self.domains:
            return reason
        while True:
            reason = self.domains.get(name)
            if reason is not None:
                return reason
            dot = name.find(".")
            if dot < 0:
                return None
            name = name[dot + 1 :]


class _Ports:
    """Ports and port ranges, with their reasons."""

    __slots__ = ("ranges", "single")

    def __init__(
        self, entries: Iterable[int | range | tuple[int | range, str]], default: str
    ) -> None:
        self.single: dict[int, str] = {}
        self.ranges: list[tuple[range, str]] = []
        for entry in entries:
            ports, reason = entry if isinstance(entry, tuple) else (entry, default)
            if isinstance(ports, range):
                self.ranges.append((ports, reason))
            else:
                self.single[int(ports)] = reason

    def match(self, port: int) -> str | None:
        reason = self.single.get(port)
        if reason is None:
            for ports, why in self.ranges:
                if port in ports:
                    return why
        return reason


class AddressPolicy:
    """Which addresses, ports and host names a call may connect to.

    Addresses (``policy(ip)``, before each attempt): an address inside an ``allow``
    network is allowed. Otherwise the most specific ``deny`` network containing it
    decides: refused with that entry's reason, or not refused if the reason is ``None``
    (a hole in a broader entry). An address no entry refuses is allowed, unless
    ``default_allow`` is false. An IPv6 address that carries an IPv4 address
    (IPv4-mapped, IPv4-compatible, IPv4-translated, NAT64 ``64:ff9b::/96`` and
    ``64:ff9b:1::/96``, 6to4, Teredo, and the ``nat64_prefixes`` you declare) is also
    judged as that IPv4 address: allowed if either form is allowed, refused if either is
    refused. ``nat64_prefixes`` are your network's own NAT64 prefixes (length 32, 40,
    48, 56, 64 or 96; RFC 6052 formats): their addresses are judged by the IPv4 address
    they carry alone, whatever ``deny`` says of the prefix itself.

    Ports (`check_port`): with ``allow_ports``, only those ports; ``deny_ports`` are
    refused. Host names (`check_name`): with ``allow_hosts``, only those names;
    ``deny_hosts`` are refused; with ``deny_single_label``, names without a dot are
    refused. Ports are ints or ranges, names are exact names or, with a leading dot
    (``".internal"``), a domain and every name under it; names are compared
    case-insensitively, without a final dot, in their ASCII (IDNA) form. Each ``deny``
    entry may be a pair (entry, reason).
    """

    def __init__(
        self,
        *,
        allow: Iterable[str | IPNetwork] = (),
        deny: Iterable[str | IPNetwork | tuple[str | IPNetwork, str | None]] = (),
        default_allow: bool = True,
        nat64_prefixes: Iterable[str | ipaddress.IPv6Network] = (),
        allow_ports: Iterable[int | range] | None = None,
        deny_ports: Iterable[int | range | tuple[int | range, str]] = (),
        allow_hosts: Iterable[str] | None = None,
        deny_hosts: Iterable[str | tuple[str, str]] = (),
        deny_single_label: bool = False,
    ) -> None:
        # Materialized once: `replace` rebuilds from them, and iterators run out.
        self._arguments: dict[str, Any] = {
            "allow": tuple(allow),
            "deny": tuple(deny),
            "default_allow": default_allow,
            "nat64_prefixes": tuple(nat64_prefixes),
            "allow_ports": None if allow_ports is None else tuple(allow_ports),
            "deny_ports": tuple(deny_ports),
            "allow_hosts": None if allow_hosts is None else tuple(allow_hosts),
            "deny_hosts": tuple(deny_hosts),
            "deny_single_label": deny_single_label,
        }
        arguments = self._arguments
        self.allow: tuple[IPNetwork, ...] = tuple(
            ipaddress.ip_network(n) for n in arguments["allow"]
        )
        denied: list[tuple[IPNetwork, str | None]] = []
        for item in arguments["deny"]:
            network, reason = item if isinstance(item, tuple) else (item, "denied network")
            denied.append((ipaddress.ip_network(network), reason))
        self.deny: tuple[tuple[IPNetwork, str | None], ...] = tuple(denied)
        self.default_allow = default_allow
        self.nat64_prefixes = tuple(_nat64_network(p) for p in arguments["nat64_prefixes"])
        self._default = None if default_allow else "not in an allowed network"
        self._v4, self._v6 = self._tables()

        self._allow_ports = None if allow_ports is None else _Ports(arguments["allow_ports"], "")
        self._deny_ports = _Ports(arguments["deny_ports"], "denied port")
        self._allow_hosts = None if allow_hosts is None else _Names(arguments["allow_hosts"], "")
        self._deny_hosts = _Names(arguments["deny_hosts"], "denied host name")
        self.deny_single_label = deny_single_label

    def _tables(self) -> tuple[_Table, _Table]:
        allowed: dict[int, list[tuple[int, int]]] = {4: [], 6: []}
        for network in self.allow:
            allowed[network.version].append(_span(network))
        denied: dict[int, list[tuple[int, int, int, str | None]]] = {4: [], 6: []}
        for network, reason in self.deny:
            text = None if reason is None else f"{reason}: {network}"
            denied[network.version].append((*_span(network), network.prefixlen, text))
        forms = [(start, end, 0, name, decode) for start, end, name, decode in _BUILTIN_FORMS]
        for network in self.nat64_prefixes:
            # Declared prefixes are exempt from `deny` (the address is judged by the IPv4
            # address it carries) and win over a built-in form they overlap.
            denied[6].append((*_span(network), network.prefixlen, None))
            specificity = 200 + network.prefixlen
            forms.append((*_span(network), specificity, "NAT64", _rfc6052(network.prefixlen)))
        return (
            _Table(_V4_SPACE, allowed[4], denied[4], []),
            _Table(_V6_SPACE, allowed[6], denied[6], forms),
        )

    def __call__(self, host: str) -> str | None:
        """Why the address ``host`` (an IP literal, IPv6 possibly with ``%scope``) is
        refused, or ``None`` if it is allowed. Text that is no IP address is refused."""
        # inet_pton and a bisect, not ipaddress: this runs before every attempt.
        if ":" not in host:
            try:
                value = int.from_bytes(socket.inet_pton(socket.AF_INET, host))
            except (OSError, ValueError):  # ValueError: an embedded NUL
                return f"not an IP address: {host!r}"
            verdict = self._v4(value)
            if verdict is None:
                return self._default
            # No IPv4 interval carries another address: the verdict is a reason.
            return None if verdict is _ALLOWED else cast(str, verdict)
        try:
            value = int.from_bytes(socket.inet_pton(socket.AF_INET6, host.partition("%")[0]))
        except (OSError, ValueError):  # ValueError: an embedded NUL
            return f"not an IP address: {host!r}"
        verdict = self._v6(value)
        if verdict is None:
            return self._default
        if verdict is _ALLOWED:
            return None
        if isinstance(verdict, str):
            return verdict
        assert isinstance(verdict, _Embedded)
        return self._embedded(verdict, verdict.decode(value))

    def _embedded(self, form: _Embedded, carried: tuple[int, ...]) -> str | None:
        verdicts = [self._v4(v4) for v4 in carried]
        if _ALLOWED in verdicts:
            return None
        if form.reason is not None:
            return f"{form.reason} (carrying {' and '.join(map(_ipv4_text, carried))})"
        for verdict, v4 in zip(verdicts, carried, strict=True):
            if verdict is not None:
                return f"{verdict} (the {form.form} form of {_ipv4_text(v4)})"
        return self._default

    def check_port(self, port: int) -> str | None:
        """Why connecting to ``port`` is refused, or ``None`` if it is allowed."""
        reason = self._deny_ports.match(port)
        if reason is not None:
            return f"port {port}: {reason}"
        if self._allow_ports is not None and self._allow_ports.match(port) is None:
            return f"port {port} is not an allowed port"
        return None

    def check_name(self, name: str) -> str | None:
        """Why connecting to ``name`` (a host name as the caller gave it, or an IP
        literal's text) is refused, or ``None`` if it is allowed. An IP literal is
        refused only if it is listed (or ``allow_hosts`` leaves it out): its address is
        judged by the policy itself."""
        canonical, literal = _canonical_name(name)
        reason = self._deny_hosts.match(canonical, literal=literal)
        if reason is not None:
            return f"{name!r}: {reason}"
        if self.deny_single_label and not literal and "." not in canonical:
            return (
                f"{name!r}: a single-label name, resolved only through search domains "
                "and hosts files"
            )
        allow = self._allow_hosts
        if allow is not None and allow.match(canonical, literal=literal) is None:
            return f"{name!r} is not an allowed host"
        return None

    def replace(self, **changes: Any) -> AddressPolicy:
        """A copy with some of the constructor's arguments replaced, e.g.
        ``PUBLIC_ONLY.replace(nat64_prefixes=["2001:db8:64::/96"])``."""
        return AddressPolicy(**{**self._arguments, **changes})

    def __repr__(self) -> str:
        ports = "any" if self._allow_ports is None else len(self._arguments["allow_ports"])
        hosts = "any" if self._allow_hosts is None else len(self._arguments["allow_hosts"])
        return (
            f"AddressPolicy(allow={[str(n) for n in self.allow]}, "
            f"deny={len(self.deny)} networks, default_allow={self.default_allow}, "
            f"nat64_prefixes={[str(n) for n in self.nat64_prefixes]}, "
            f"allow_ports={ports}, deny_ports={len(self._arguments['deny_ports'])}, "
            f"allow_hosts={hosts}, deny_hosts={len(self._arguments['deny_hosts'])}, "
            f"deny_single_label={self.deny_single_label})"
        )


#: A policy to pass as ``policy=`` wherever the addresses, ports or names to reach come
#: from users: refuses every address the IANA registries do not mark globally reachable
#: (and a few that are, see `connectbyname._registry`), IPv6 outside 2000::/3, the
#: Fetch Standard's bad ports, cloud metadata and special-use host names, and
#: single-label names.
PUBLIC_ONLY: Final = AddressPolicy(
    deny=SPECIAL_NETWORKS,
    deny_ports=[(port, "a bad port (Fetch Standard)") for port in BAD_PORTS],
    deny_hosts=SPECIAL_HOSTS,
    deny_single_label=True,
)
