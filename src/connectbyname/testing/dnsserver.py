"""A scripted DNS server for the network lab, on dnspython (the ``dns`` extra).

Run it as ``python -m connectbyname.testing.dnsserver --config FILE``: it answers over
UDP and TCP on the addresses of the configuration (port 53 by default, the only port
glibc's stub resolver asks), prints one JSON line on standard output once it listens
(``{"ready": true, "listen": [[host, port], ...]}``), writes a line of JSON to its query
log for every query it receives, and runs until it is terminated. The network lab
(`connectbyname.testing.lab`) starts it inside a network namespace; nothing in it is
specific to one, so it runs on loopback too.

What it answers is scripted per (name, record type) with a `Reply`: records in zone-file
text (``"::1"``, ``"target.test."``, ``"1 . alpn=h2 port=8443 ipv4hint=127.0.0.1"`` for
HTTPS/SVCB, any type dnspython knows), their TTL, a delay, an rcode (``SERVFAIL``,
``REFUSED``, ``NXDOMAIN``, ...), NODATA (``NOERROR`` without records: the zone's SOA goes
in the authority section), truncation over UDP (``TC=1`` with an empty or partial
answer, the whole answer over TCP), dropping the query (no answer at all, over either
transport or one), and stray datagrams sent before the real answer (junk, a short
packet, a wrong ID, a wrong question, the answer from another port). Names not scripted
get the configuration's ``default`` reply (NXDOMAIN unless told otherwise); a scripted
name without a rule for the type asked gets NODATA; a name with only a CNAME answers
every type with the CNAME and the target's records of that type, as an authoritative
server does. With ``dns64`` it synthesises AAAA records under a NAT64 prefix (RFC 6147)
from A records, and answers ``ipv4only.arpa`` (RFC 7050) as a DNS64 resolver does.

The configuration is JSON (`DNSConfig.to_json` writes it): the module imports no
dnspython until the server runs, so the lab can describe servers without it.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import functools
import heapq
import ipaddress
import itertools
import json
import os
import selectors
import socket
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, TypeAlias

if TYPE_CHECKING:
    import dns.message
    import dns.name
    import dns.rrset

__all__ = [
    "DROP",
    "NAT64_PREFIX",
    "NODATA",
    "NXDOMAIN",
    "REFUSED",
    "SERVFAIL",
    "DNSConfig",
    "NameSpec",
    "Query",
    "Reply",
    "ReplySpec",
    "StrayKind",
    "main",
    "nat64_address",
    "read_query_log",
    "require_dnspython",
    "serve",
    "svcb",
]

#: The well-known NAT64 prefix (RFC 6052).
NAT64_PREFIX = "64:ff9b::/96"
#: ``ipv4only.arpa``'s A records (RFC 7050), from which DNS64 synthesises its AAAA.
IPV4ONLY_ARPA = ("192.0.0.170", "192.0.0.171")

#: What may be sent before the real answer to a UDP query: ``"junk"`` (40 random bytes),
#: ``"short"`` (5 bytes: glibc gives up on the server), ``"wrong-id"`` (the answer with
#: another message ID), ``"wrong-question"`` (the answer to another name, with the
#: query's ID), ``"other-port"`` (the answer itself, from another source port).
StrayKind: TypeAlias = Literal["junk", "short", "wrong-id", "wrong-question", "other-port"]
_STRAY_KINDS = ("junk", "short", "wrong-id", "wrong-question", "other-port")
_RCODES = ("NOERROR", "FORMERR", "SERVFAIL", "NXDOMAIN", "NOTIMP", "REFUSED")

_INSTALL_HINT = "the lab's DNS server needs dnspython: pip install 'connectbyname[dns]'"


def require_dnspython() -> None:
    """Raise ImportError with the install command unless dnspython can be imported."""
    try:
        import dns.message  # noqa: F401
    except ImportError as exc:
        raise ImportError(_INSTALL_HINT) from exc


# --------------------------------------------------------------------------- script


@dataclasses.dataclass(frozen=True)
class Reply:
    """What the server does with a query for one (name, record type).

    - ``records``: record data in zone-file text, e.g. ``"::1"``, ``"127.0.0.1"``,
      ``"target.test."`` (CNAME), ``svcb(1, ".", alpn="h2")`` (HTTPS/SVCB). None with
      ``NOERROR`` is NODATA: the zone's SOA goes in the authority section.
    - ``ttl``: their TTL in seconds.
    - ``delay``: seconds before the answer is sent (other queries are answered meanwhile).
    - ``rcode``: ``"NOERROR"``, ``"SERVFAIL"``, ``"REFUSED"``, ``"NXDOMAIN"``,
      ``"FORMERR"`` or ``"NOTIMP"``.
    - ``drop``: never answer: ``True`` over both transports, or only over ``"udp"`` or
      ``"tcp"`` (a TCP connection is then accepted and left silent); ``"tcp-close"``:
      over TCP, close the connection on the query (UDP answers as usual).
    - ``truncate``: over UDP, answer with TC=1 and an ``"empty"`` (``True``) or
      ``"partial"`` (the first record only) answer section; the whole answer goes
      over TCP.
    - ``stray``: datagrams sent at once, before the real answer (see `StrayKind`).
    - ``authoritative``: the AA flag; ``recursion_available``: the RA flag (``None``:
      the server's setting). A NOERROR answer without records, AA, RA or SOA is what
      glibc calls "lame".
    - ``soa``: whether a negative answer carries the zone's SOA.
    - ``header_only``: send the 12-byte header alone (no question section), as some
      servers do with REFUSED.
    - ``owner``: the records' owner name, when it is not the name asked (an answer for
      another name, which glibc ignores).
    """

    records: str | Sequence[str] = ()
    ttl: int = 60
    delay: float = 0.0
    rcode: str = "NOERROR"
    drop: bool | Literal["udp", "tcp", "tcp-close"] = False
    truncate: bool | Literal["empty", "partial"] = False
    stray: tuple[StrayKind, ...] = ()
    authoritative: bool = True
    recursion_available: bool | None = None
    soa: bool = True
    header_only: bool = False
    owner: str | None = None

    def __post_init__(self) -> None:
        if isinstance(self.records, str):
            object.__setattr__(self, "records", (self.records,))
        else:
            object.__setattr__(self, "records", tuple(self.records))
        object.__setattr__(self, "stray", tuple(self.stray))
        rcode = self.rcode.upper()
        if rcode not in _RCODES:
            raise ValueError(f"unknown rcode {self.rcode!r}: one of {', '.join(_RCODES)}")
        object.__setattr__(self, "rcode", rcode)
        for kind in self.stray:
            if kind not in _STRAY_KINDS:
                raise ValueError(f"unknown stray kind {kind!r}: one of {', '.join(_STRAY_KINDS)}")
        if self.drop not in (True, False, "udp", "tcp", "tcp-close"):
            raise ValueError(f"drop must be a bool, 'udp', 'tcp' or 'tcp-close': {self.drop!r}")
        if self.truncate not in (True, False, "empty", "partial"):
            raise ValueError(f"truncate must be a bool, 'empty' or 'partial': {self.truncate!r}")
        if self.delay < 0 or self.ttl < 0:
            raise ValueError("delay and ttl must not be negative")

    def replace(self, **changes: Any) -> Reply:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def to_json(self) -> dict[str, Any]:
        return {
            field.name: list(value) if isinstance(value, tuple) else value
            for field in dataclasses.fields(self)
            if (value := getattr(self, field.name)) != field.default
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Reply:
        fields: dict[str, Any] = {
            key: tuple(value) if isinstance(value, list) else value for key, value in data.items()
        }
        return cls(**fields)


#: Shortcuts for the common scripted outcomes.
SERVFAIL = Reply(rcode="SERVFAIL")
REFUSED = Reply(rcode="REFUSED")
NXDOMAIN = Reply(rcode="NXDOMAIN")
NODATA = Reply()
DROP = Reply(drop=True)

#: One record type's script: a `Reply`, or record text (one string or several).
ReplySpec: TypeAlias = Reply | str | Sequence[str]
#: One name's script: ``{type: ReplySpec}`` (type ``"*"`` for every type not listed), a
#: `Reply` for every type, or IP literals (split into its A and AAAA records).
NameSpec: TypeAlias = Mapping[str, ReplySpec] | Reply | str | Sequence[str]


def _reply(spec: ReplySpec) -> Reply:
    if isinstance(spec, Reply):
        return spec
    return Reply(records=(spec,) if isinstance(spec, str) else tuple(spec))


def _absolute(name: str) -> str:
    name = name.strip().lower()
    return name if name.endswith(".") else name + "."


def _name_rules(spec: NameSpec) -> dict[str, Reply]:
    if isinstance(spec, Reply):
        return {"*": spec}
    if isinstance(spec, Mapping):
        return {rdtype.upper(): _reply(reply) for rdtype, reply in spec.items()}
    literals = [spec] if isinstance(spec, str) else list(spec)
    by_type: dict[str, list[str]] = {}
    for text in literals:
        try:
            version = ipaddress.ip_address(text).version
        except ValueError:
            raise ValueError(
                f"{text!r} is not an IP literal: script other records as {{type: records}}"
            ) from None
        by_type.setdefault("AAAA" if version == 6 else "A", []).append(text)
    return {rdtype: Reply(records=tuple(texts)) for rdtype, texts in by_type.items()}


def svcb(priority: int, target: str = ".", **params: str | int | Iterable[str] | bool) -> str:
    """SVCB/HTTPS record text (RFC 9460): ``svcb(1, ".", alpn=["h2", "h3"], port=8443,
    ipv4hint="127.0.0.1", no_default_alpn=True)``. Priority 0 is AliasMode (no
    parameters). Keys use ``_`` for ``-``; a list becomes a comma-separated value;
    ``True`` a key without value; ``ech`` is the base64 ECHConfigList."""
    parts = [str(priority), target]
    for name, value in params.items():
        key = name.replace("_", "-")
        if value is True:
            parts.append(key)
        elif value is False:
            continue
        elif isinstance(value, str | int):
            parts.append(f"{key}={value}")
        else:
            parts.append(f"{key}={','.join(value)}")
    return " ".join(parts)


def nat64_address(ipv4: str, prefix: str = NAT64_PREFIX) -> str:
    """The IPv6 address a DNS64 server synthesises for ``ipv4`` under a /96 ``prefix``
    (RFC 6052): ``nat64_address("192.0.2.10")`` is ``"64:ff9b::c000:20a"``."""
    network = ipaddress.IPv6Network(prefix)
    if network.prefixlen != 96:
        raise ValueError(f"only /96 NAT64 prefixes are supported, not {prefix}")
    packed = int(network.network_address) | int(ipaddress.IPv4Address(ipv4))
    return str(ipaddress.IPv6Address(packed))


@dataclasses.dataclass
class DNSConfig:
    """One DNS server: where it listens and what it answers.

    - ``names``: ``{name: NameSpec}``, e.g. ``{"dual.test": {"AAAA": Reply(["::1"],
      delay=0.3), "A": "127.0.0.1"}}``; names are case-insensitive, with or without
      the trailing dot.
    - ``host``, ``port``: the address it answers on (UDP and TCP); ``extra_listen``:
      more ``(host, port)`` pairs.
    - ``default``: the reply for names not in ``names`` (`NXDOMAIN`; `DROP` for a
      server that never answers).
    - ``dns64``: synthesise AAAA from A records under ``nat64_prefix`` for every name
      (``True``) or the names listed, when the name has no AAAA records of its own;
      ``ipv4only.arpa`` then answers as RFC 7050 says.
    - ``zones``: SOA owners for negative answers (default: the name's last label).
    - ``negative_ttl``: the SOA minimum; ``recursion_available``: the RA flag.
    - ``shuffle``: send each RRset's records in a new random order every time (as
      dnspython does, and round-robin servers); ``False``: in the script's order.
    - ``log``: the query log's path (the lab sets it).
    """

    names: Mapping[str, NameSpec] = dataclasses.field(default_factory=dict)
    host: str = "127.0.0.1"
    port: int = 53
    extra_listen: Sequence[tuple[str, int]] = ()
    default: Reply = NXDOMAIN
    dns64: bool | Sequence[str] = False
    nat64_prefix: str = NAT64_PREFIX
    zones: Sequence[str] = ()
    negative_ttl: int = 60
    recursion_available: bool = True
    shuffle: bool = True
    log: str | None = None

    def rules(self) -> dict[str, dict[str, Reply]]:
        """``names`` normalised: absolute lower-case names to ``{TYPE: Reply}``."""
        return {_absolute(name): _name_rules(spec) for name, spec in self.names.items()}

    def to_json(self) -> dict[str, Any]:
        return {
            "names": {
                name: {rdtype: reply.to_json() for rdtype, reply in rules.items()}
                for name, rules in self.rules().items()
            },
            "listen": [[self.host, self.port], *[[h, p] for h, p in self.extra_listen]],
            "default": self.default.to_json(),
            "dns64": self.dns64 if isinstance(self.dns64, bool) else list(self.dns64),
            "nat64_prefix": self.nat64_prefix,
            "zones": [_absolute(zone) for zone in self.zones],
            "negative_ttl": self.negative_ttl,
            "shuffle": self.shuffle,
            "recursion_available": self.recursion_available,
            "log": self.log,
        }


class Query(NamedTuple):
    """One query as the server's log has it."""

    #: The name as received (case kept, with the trailing dot); ``None`` for a message
    #: that could not be parsed (``action`` is then ``"unparseable"``).
    name: str | None
    #: The record type (``"A"``, ``"AAAA"``, ``"HTTPS"``...).
    type: str | None
    #: ``"udp"`` or ``"tcp"``.
    transport: str
    #: When it arrived: `time.time` and `time.monotonic` (one clock for every process).
    time: float
    monotonic: float
    #: The client's address and port.
    source: str
    source_port: int
    #: The server address that received it (``"127.0.0.1:53"``).
    server: str
    #: The message ID.
    id: int | None
    #: What the server did: ``"answer"``, ``"drop"``, ``"truncate"``, ``"close"``.
    action: str
    #: The rcode sent (or that would have been).
    rcode: str | None
    #: The UDP payload size the query's EDNS0 OPT record advertised; ``None``: it had
    #: none (glibc without ``options edns0``).
    edns: int | None = None

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Query:
        fields: dict[str, Any] = {field: data.get(field) for field in cls._fields}
        return cls(**fields)


def read_query_log(path: str) -> list[Query]:
    """The queries logged at ``path`` so far, oldest first (a line still being written
    is left for the next read)."""
    try:
        with open(path, encoding="utf-8") as log:
            text = log.read()
    except FileNotFoundError:
        return []
    queries = []
    for line in text.splitlines(keepends=True):
        if line.endswith("\n") and line.strip():
            queries.append(Query.from_json(json.loads(line)))
    return queries


# --------------------------------------------------------------------------- server


class _Plan(NamedTuple):
    reply: Reply
    rcode: str
    answer: list[dns.rrset.RRset]
    authority: list[dns.rrset.RRset]


class _Server:
    """The server proper: planning answers, the sockets and the send schedule."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        import dns.name
        import dns.rdatatype

        self.config = config
        self.rules: dict[str, dict[str, Reply]] = {
            name: {rdtype: Reply.from_json(reply) for rdtype, reply in rules.items()}
            for name, rules in config.get("names", {}).items()
        }
        self.default = Reply.from_json(config.get("default", NXDOMAIN.to_json()))
        self.negative_ttl = int(config.get("negative_ttl", 60))
        self.shuffle = bool(config.get("shuffle", True))
        self.recursion_available = bool(config.get("recursion_available", True))
        self.zones = [dns.name.from_text(zone) for zone in config.get("zones", [])]
        dns64 = config.get("dns64", False)
        self.nat64_prefix = str(config.get("nat64_prefix", NAT64_PREFIX))
        self.dns64_all = dns64 is True
        self.dns64_names = {_absolute(name) for name in dns64} if isinstance(dns64, list) else set()
        if dns64:
            self.dns64_names.add("ipv4only.arpa.")
            self.rules.setdefault("ipv4only.arpa.", {"A": Reply(IPV4ONLY_ARPA, ttl=86400)})
        self._a = dns.rdatatype.A
        self._aaaa = dns.rdatatype.AAAA
        self._cname = dns.rdatatype.CNAME
        log_path = config.get("log")
        self.log = open(log_path, "a", encoding="utf-8", buffering=1) if log_path else None  # noqa: SIM115
        self.selector = selectors.DefaultSelector()
        self.schedule: list[tuple[float, int, Callable[[], None]]] = []
        self.sequence = itertools.count()
        self.listening: list[tuple[str, int]] = []
        self.stray_sockets: dict[int, socket.socket] = {}
        self.tcp_buffers: dict[socket.socket, bytes] = {}

    # ----------------------------------------------------------------- planning

    def _rrset(self, owner: str, rdtype: str, reply: Reply) -> dns.rrset.RRset:
        import dns.rrset

        return dns.rrset.from_text_list(owner, reply.ttl, "IN", rdtype, list(reply.records))

    def _soa(self, qname: dns.name.Name) -> dns.rrset.RRset:
        import dns.name
        import dns.rrset

        zones = [zone for zone in self.zones if qname.is_subdomain(zone)]
        if zones:
            zone = max(zones, key=len)
        else:
            labels = qname.labels
            zone = dns.name.Name(labels[-2:]) if len(labels) >= 2 else dns.name.root
        text = zone.to_text()
        prefix = "" if text == "." else text
        soa = f"ns.{prefix} hostmaster.{prefix} 1 3600 600 86400 {self.negative_ttl}"
        return dns.rrset.from_text(zone, self.negative_ttl, "IN", "SOA", soa)

    def _lookup(self, name: str, rdtype: str, depth: int = 0) -> _Plan | None:
        """The plan for a scripted name, ``None`` for a name not scripted."""
        rules = self.rules.get(name)
        if rules is None:
            return None
        reply = rules.get(rdtype) or rules.get("*")
        if reply is not None:
            owner = _absolute(reply.owner) if reply.owner else name
            answer = [self._rrset(owner, rdtype, reply)] if reply.records else []
            return _Plan(reply, reply.rcode, answer, [])
        cname = rules.get("CNAME")
        if cname is not None and cname.records and rdtype != "CNAME":
            answer = [self._rrset(name, "CNAME", cname)]
            if depth < 8:
                target = self._lookup(_absolute(cname.records[0]), rdtype, depth + 1)
                if target is not None and target.rcode == "NOERROR":
                    answer += target.answer
            return _Plan(cname, cname.rcode, answer, [])
        return _Plan(NODATA, "NOERROR", [], [])

    def _dns64(self, name: str) -> bool:
        return self.dns64_all or name in self.dns64_names

    def plan(self, qname: dns.name.Name, rdtype: str) -> _Plan:
        name = qname.to_text().lower()
        plan = self._lookup(name, rdtype)
        if plan is None:
            plan = _Plan(self.default, self.default.rcode, [], [])
            if self.default.records:
                plan.answer.append(self._rrset(name, rdtype, self.default))
        has_aaaa = any(rrset.rdtype == self._aaaa for rrset in plan.answer)
        if rdtype == "AAAA" and plan.rcode == "NOERROR" and not has_aaaa and self._dns64(name):
            synthesised = self._synthesise(name)
            if synthesised is not None:
                plan = synthesised
        if plan.reply.soa and plan.rcode in ("NOERROR", "NXDOMAIN") and not plan.answer:
            plan.authority.append(self._soa(qname))
        return plan

    def _synthesise(self, name: str) -> _Plan | None:
        import dns.rdata
        import dns.rdataclass
        import dns.rrset

        source = self._lookup(name, "A")
        if source is None or source.rcode != "NOERROR":
            return None
        answer = []
        for rrset in source.answer:
            if rrset.rdtype == self._a:
                synthesised = dns.rrset.RRset(rrset.name, dns.rdataclass.IN, self._aaaa)
                for rdata in rrset:
                    text = nat64_address(rdata.to_text(), self.nat64_prefix)
                    synthesised.add(dns.rdata.from_text("IN", "AAAA", text), rrset.ttl)
                answer.append(synthesised)
            else:
                answer.append(rrset)
        if not any(rrset.rdtype == self._aaaa for rrset in answer):
            return None
        return _Plan(source.reply, "NOERROR", answer, [])

    def respond(self, query: dns.message.Message, plan: _Plan) -> dns.message.Message:
        import dns.flags
        import dns.message
        import dns.rcode

        response = dns.message.make_response(query)
        response.set_rcode(dns.rcode.from_text(plan.rcode))
        if plan.reply.authoritative:
            response.flags |= dns.flags.AA
        available = plan.reply.recursion_available
        if available is None:
            available = self.recursion_available
        if available:
            response.flags |= dns.flags.RA
        else:
            response.flags &= ~dns.flags.RA
        response.answer = list(plan.answer)
        response.authority = list(plan.authority)
        if plan.reply.header_only:
            response.question = []
        return response

    # ----------------------------------------------------------------- I/O

    def listen(self, host: str, port: int) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        for _ in range(50):
            udp = socket.socket(family, socket.SOCK_DGRAM)
            tcp = socket.socket(family, socket.SOCK_STREAM)
            try:
                for sock in (udp, tcp):
                    if family == socket.AF_INET6:
                        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                udp.bind((host, port))
                tcp.bind((host, udp.getsockname()[1]))
                tcp.listen(64)
            except OSError:
                udp.close()
                tcp.close()
                if port == 0:
                    continue  # the UDP port number is taken for TCP: another one
                raise
            break
        else:  # pragma: no cover
            raise OSError(f"no port free for both UDP and TCP on {host}")
        bound = udp.getsockname()[1]
        label = f"[{host}]:{bound}" if family == socket.AF_INET6 else f"{host}:{bound}"
        udp.setblocking(False)
        tcp.setblocking(False)
        self.selector.register(udp, selectors.EVENT_READ, ("udp", label))
        self.selector.register(tcp, selectors.EVENT_READ, ("accept", label))
        stray = socket.socket(family, socket.SOCK_DGRAM)
        stray.bind((host, 0))
        self.stray_sockets[udp.fileno()] = stray
        self.listening.append((host, bound))

    def _later(self, delay: float, action: Callable[[], None]) -> None:
        heapq.heappush(self.schedule, (time.monotonic() + delay, next(self.sequence), action))

    def _record(self, entry: dict[str, Any]) -> None:
        if self.log is not None:
            self.log.write(json.dumps(entry) + "\n")

    def handle(
        self, wire: bytes, transport: str, peer: Any, label: str
    ) -> tuple[bytes | None, list[tuple[str, bytes]], float]:
        """The answer's wire (``None``: no answer), the stray datagrams and the delay."""
        import dns.exception
        import dns.flags
        import dns.message
        import dns.rdatatype
        import dns.rrset

        received, received_monotonic = time.time(), time.monotonic()
        entry: dict[str, Any] = {
            "name": None,
            "type": None,
            "transport": transport,
            "time": received,
            "monotonic": received_monotonic,
            "source": str(peer[0]),
            "source_port": int(peer[1]),
            "server": label,
            "id": int.from_bytes(wire[:2], "big") if len(wire) >= 2 else None,
            "action": "unparseable",
            "rcode": None,
        }
        try:
            query = dns.message.from_wire(wire)
        except dns.exception.DNSException:
            self._record(entry)
            return None, [], 0.0
        if not query.question:
            self._record(entry)
            return None, [], 0.0
        question = query.question[0]
        rdtype = dns.rdatatype.to_text(question.rdtype)
        plan = self.plan(question.name, rdtype)
        reply = plan.reply
        entry.update(name=question.name.to_text(), type=rdtype, rcode=plan.rcode)
        if query.edns >= 0:
            entry["edns"] = query.payload
        if transport == "tcp" and reply.drop == "tcp-close":
            entry["action"] = "close"
            self._record(entry)
            return b"", [], 0.0  # the caller closes the connection
        if reply.drop is True or reply.drop == transport:
            entry["action"] = "drop"
            self._record(entry)
            strays = self._strays(query, plan) if transport == "udp" else []
            return None, strays, 0.0
        response = self.respond(query, plan)
        entry["action"] = "answer"
        if transport == "udp" and reply.truncate:
            entry["action"] = "truncate"
            response.flags |= dns.flags.TC
            if reply.truncate == "partial" and response.answer:
                first = response.answer[0]
                partial = dns.rrset.RRset(first.name, first.rdclass, first.rdtype)
                partial.add(first[0], first.ttl)
                response.answer = [partial]
            else:
                response.answer = []
            response.authority = []
        limit = 65535
        if transport == "udp":
            limit = max(512, query.payload) if query.edns >= 0 else 512
        try:
            data = response.to_wire(max_size=limit, want_shuffle=self.shuffle)
        except dns.exception.TooBig:
            entry["action"] = "truncate"
            response.flags |= dns.flags.TC
            response.answer = []
            response.authority = []
            response.additional = []
            data = response.to_wire(max_size=limit, want_shuffle=self.shuffle)
        if reply.header_only:
            data = data[:4] + bytes(8)
        self._record(entry)
        strays = self._strays(query, plan) if transport == "udp" else []
        return data, strays, reply.delay

    def _strays(self, query: dns.message.Message, plan: _Plan) -> list[tuple[str, bytes]]:
        import dns.message

        strays: list[tuple[str, bytes]] = []
        for kind in plan.reply.stray:
            if kind == "junk":
                strays.append((kind, os.urandom(40)))
            elif kind == "short":
                strays.append((kind, os.urandom(5)))
            elif kind == "wrong-id":
                response = self.respond(query, plan)
                response.id = (query.id + 0x5555) & 0xFFFF
                strays.append((kind, response.to_wire()))
            elif kind == "wrong-question":
                other = dns.message.make_query("stray.invalid.", query.question[0].rdtype)
                other.id = query.id
                strays.append((kind, dns.message.make_response(other).to_wire()))
            else:  # other-port
                strays.append((kind, self.respond(query, plan).to_wire()))
        return strays

    def _on_udp(self, sock: socket.socket, label: str) -> None:
        try:
            wire, peer = sock.recvfrom(65535)
        except OSError:
            return
        data, strays, delay = self.handle(wire, "udp", peer, label)
        for kind, datagram in strays:
            sender = self.stray_sockets[sock.fileno()] if kind == "other-port" else sock
            self._send_to(sender, datagram, peer)
        if data is not None:
            self._later(delay, lambda: self._send_to(sock, data, peer))

    @staticmethod
    def _send_to(sock: socket.socket, data: bytes, peer: Any) -> None:
        with contextlib.suppress(OSError):  # the client is gone (ICMP unreachable)
            sock.sendto(data, peer)

    def _on_accept(self, listener: socket.socket, label: str) -> None:
        try:
            conn, _ = listener.accept()
        except OSError:
            return
        conn.setblocking(False)
        self.tcp_buffers[conn] = b""
        self.selector.register(conn, selectors.EVENT_READ, ("tcp", label))

    def _on_tcp(self, conn: socket.socket, label: str) -> None:
        try:
            chunk = conn.recv(65535)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if not chunk:
            self._close(conn)
            return
        buffer = self.tcp_buffers[conn] + chunk
        while len(buffer) >= 2:
            size = int.from_bytes(buffer[:2], "big")
            if len(buffer) < 2 + size:
                break
            wire, buffer = buffer[2 : 2 + size], buffer[2 + size :]
            try:
                peer = conn.getpeername()
            except OSError:
                self._close(conn)
                return
            data, _, delay = self.handle(wire, "tcp", peer, label)
            if data == b"":
                self._close(conn)
                return
            if data is not None:
                framed = len(data).to_bytes(2, "big") + data
                self._later(delay, functools.partial(self._send_tcp, conn, framed))
        self.tcp_buffers[conn] = buffer

    def _send_tcp(self, conn: socket.socket, data: bytes) -> None:
        if conn not in self.tcp_buffers:
            return
        try:
            conn.setblocking(True)
            conn.settimeout(5.0)
            conn.sendall(data)
            conn.setblocking(False)
        except OSError:
            self._close(conn)

    def _close(self, conn: socket.socket) -> None:
        self.tcp_buffers.pop(conn, None)
        with contextlib.suppress(KeyError, ValueError):
            self.selector.unregister(conn)
        conn.close()

    def watch_stdin(self) -> None:
        """Exit when standard input reaches its end (the process that started us died)."""
        self.selector.register(sys.stdin.buffer, selectors.EVENT_READ, ("stdin", ""))

    def run(self) -> None:
        while True:
            timeout = None
            if self.schedule:
                timeout = max(0.0, self.schedule[0][0] - time.monotonic())
            for key, _ in self.selector.select(timeout):
                kind, label = key.data
                sock = key.fileobj
                if kind == "stdin":
                    if not os.read(sys.stdin.fileno(), 4096):
                        return
                    continue
                assert isinstance(sock, socket.socket)
                if kind == "udp":
                    self._on_udp(sock, label)
                elif kind == "accept":
                    self._on_accept(sock, label)
                else:
                    self._on_tcp(sock, label)
            now = time.monotonic()
            while self.schedule and self.schedule[0][0] <= now:
                _, _, action = heapq.heappop(self.schedule)
                action()


def serve(
    config: Mapping[str, Any],
    ready: Callable[[list[tuple[str, int]]], None],
    *,
    exit_with_stdin: bool = False,
) -> None:
    """Listen as ``config`` says (the JSON of `DNSConfig.to_json`), call
    ``ready(addresses)`` once listening, and answer until the process ends (or, with
    ``exit_with_stdin``, until standard input closes)."""
    require_dnspython()
    server = _Server(config)
    for host, port in config.get("listen", [["127.0.0.1", 53]]):
        server.listen(str(host), int(port))
    if exit_with_stdin:
        server.watch_stdin()
    ready(server.listening)
    server.run()


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m connectbyname.testing.dnsserver --config FILE``."""
    parser = argparse.ArgumentParser(
        prog="python -m connectbyname.testing.dnsserver",
        description="A scripted DNS server (UDP and TCP) for the connectbyname network lab.",
    )
    parser.add_argument("--config", required=True, help="the JSON configuration (DNSConfig)")
    parser.add_argument("--log", help="the query log's path (overrides the configuration's)")
    parser.add_argument(
        "--exit-with-stdin",
        action="store_true",
        help="exit when standard input closes (so it never outlives the process feeding it)",
    )
    args = parser.parse_args(argv)
    try:
        require_dnspython()
    except ImportError as exc:
        parser.exit(2, f"error: {exc}\n")
    with open(args.config, encoding="utf-8") as file:
        config = json.load(file)
    if args.log:
        config["log"] = args.log

    def ready(addresses: list[tuple[str, int]]) -> None:
        sys.stdout.write(json.dumps({"ready": True, "listen": addresses}) + "\n")
        sys.stdout.flush()

    serve(config, ready, exit_with_stdin=args.exit_with_stdin)


if __name__ == "__main__":
    main()
