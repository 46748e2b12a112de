"""DNS messages on the wire: queries built, responses parsed (pure functions, no I/O).

What the resolver needs to reproduce glibc 2.36's stub resolver, and HTTPS records for
Happy Eyeballs v3:

- `build_query` builds a query as glibc's ``res_mkquery`` does (one question, class IN,
  the name's case kept, RD set, AD only on request, an OPT record only on request);
  `build_tcp` frames a message for TCP.
- `parse_response` reads a whole response: header, questions, the three sections and
  EDNS (RFC 6891), with A, AAAA, CNAME, SOA, SVCB and HTTPS (RFC 9460) rdata decoded and
  any other type's rdata kept as raw octets (RFC 3597). Malformed input raises
  `WireError`, and nothing else.
- `matches` is glibc's ``res_queriesmatch`` check of a reply against the query sent;
  `addresses` is what glibc's ``gaih_getanswer_slice`` takes from one reply;
  `negative_ttl` is RFC 2308's TTL for a negative answer; `services` collects the HTTPS
  (or SVCB) records for a name.

Names are text in presentation form with a trailing dot (``"www.example.com."``, the root
is ``"."``), octets escaped as RFC 1035 §5.1 and dnspython write them (``\\.``, ``\\"``,
``\\065``...). DNS compares names ASCII case-insensitively; the forms here compare with
`str.lower` (the escaped text is pure ASCII, so that folds exactly A-Z).

Where glibc is more lenient: it reads only the header, the question and the answer
section, and checks less on the way. Replies this module refuses with `WireError` and
glibc would still use: a malformed authority or additional section (an OPT record out
of place included), a CNAME whose name does not end exactly at its rdata's end, a
compression pointer pointing forward or a name of more than 16 pointers, and a question
that does not parse (glibc's ``res_nameinquery`` returns -1 there, which its caller
takes as a match). Servers do not send these; a resolver that must copy glibc even then
has to treat such a datagram from the right server with the right ID as glibc does.
"""

from __future__ import annotations

import re
import struct
from functools import lru_cache
from itertools import pairwise
from socket import AF_INET, AF_INET6, inet_ntop
from typing import NamedTuple, TypeAlias

__all__ = [
    "AAAA",
    "CNAME",
    "EDNS_PAYLOAD",
    "FORMERR",
    "HTTPS",
    "IN",
    "KEY_ALPN",
    "KEY_ECH",
    "KEY_IPV4HINT",
    "KEY_IPV6HINT",
    "KEY_MANDATORY",
    "KEY_NO_DEFAULT_ALPN",
    "KEY_PORT",
    "NOERROR",
    "NOTIMP",
    "NXDOMAIN",
    "OPT",
    "REFUSED",
    "SERVFAIL",
    "SOA",
    "SVCB",
    "A",
    "Answer",
    "Edns",
    "Message",
    "Question",
    "RData",
    "Record",
    "Service",
    "ServiceAnswer",
    "Soa",
    "WireError",
    "addresses",
    "build_query",
    "build_tcp",
    "hostname_ok",
    "matches",
    "negative_ttl",
    "parse_response",
    "services",
]

# Record types (RFC 1035, RFC 3596, RFC 6891, RFC 9460) and the class IN.
A = 1
CNAME = 5
SOA = 6
AAAA = 28
OPT = 41
SVCB = 64
HTTPS = 65
IN = 1

# Response codes (RFC 1035 §4.1.1).
NOERROR = 0
FORMERR = 1
SERVFAIL = 2
NXDOMAIN = 3
NOTIMP = 4
REFUSED = 5

# SvcParamKeys (RFC 9460 §14.3.2).
KEY_MANDATORY = 0
KEY_ALPN = 1
KEY_NO_DEFAULT_ALPN = 2
KEY_PORT = 3
KEY_IPV4HINT = 4
KEY_ECH = 5
KEY_IPV6HINT = 6


class WireError(ValueError):
    """A name that cannot be put in a query, or a message that is not well formed.

    `parse_response` raises nothing else, whatever the octets.
    """


class Question(NamedTuple):
    """One entry of the question section."""

    name: str
    """The name as received (presentation form, trailing dot, the server's case)."""
    rdtype: int
    rdclass: int
    folded: str
    """``name.lower()``: the form to compare names with."""


class Soa(NamedTuple):
    """SOA rdata (RFC 1035 §3.3.13); the names end with a dot."""

    mname: str
    rname: str
    serial: int
    refresh: int
    retry: int
    expire: int
    minimum: int


class Service(NamedTuple):
    """SVCB or HTTPS rdata (RFC 9460 §2.2), its SvcParams decoded.

    An absent parameter reads as ``()``, ``None`` or ``False``: a present ``alpn``,
    ``ipv4hint``, ``ipv6hint`` or ``mandatory`` is never empty (an empty one is
    malformed). ``priority == 0`` is AliasMode, any other priority ServiceMode. A
    ``target`` of ``"."`` means "the owner name" in ServiceMode and "no service" in
    AliasMode (RFC 9460 §2.5). ALPN ids are decoded octet for octet (Latin-1), so
    ``alpn_id.encode("latin-1")`` gives the wire octets back. ``ech`` is the
    ECHConfigList as received (its framing checked, its content not). ``other`` holds every key this
    module does not decode (7 and up), value octets as received.
    """

    priority: int
    target: str
    alpn: tuple[str, ...] = ()
    no_default_alpn: bool = False
    port: int | None = None
    ipv4hint: tuple[str, ...] = ()
    ipv6hint: tuple[str, ...] = ()
    ech: bytes | None = None
    mandatory: tuple[int, ...] = ()
    other: dict[int, bytes] = {}  # noqa: RUF012 - never mutated: parse builds a new dict

    def param_keys(self) -> tuple[int, ...]:
        """The SvcParamKeys present in the record, in increasing order."""
        keys = [
            key
            for key, present in (
                (KEY_MANDATORY, bool(self.mandatory)),
                (KEY_ALPN, bool(self.alpn)),
                (KEY_NO_DEFAULT_ALPN, self.no_default_alpn),
                (KEY_PORT, self.port is not None),
                (KEY_IPV4HINT, bool(self.ipv4hint)),
                (KEY_ECH, self.ech is not None),
                (KEY_IPV6HINT, bool(self.ipv6hint)),
            )
            if present
        ]
        keys.extend(sorted(self.other))
        return tuple(keys)

    def self_consistent(self) -> bool:
        """RFC 9460 §2.4.3: every key ``mandatory`` lists is present (§8), and
        ``no-default-alpn`` comes with ``alpn`` (§7.1.1). Clients MUST reject a
        ServiceMode record that is not self-consistent."""
        if self.no_default_alpn and not self.alpn:
            return False
        if self.mandatory:
            present = set(self.param_keys())
            return all(key in present for key in self.mandatory)
        return True


RData: TypeAlias = str | Soa | Service | bytes
"""Decoded rdata: A and AAAA give the address text (``socket.inet_ntop``'s canonical
form) when the rdata has 4 or 16 octets and the raw octets otherwise (glibc skips such
records rather than failing the reply); CNAME gives its target name; SOA a `Soa`;
SVCB and HTTPS a `Service`, or the raw octets when the rdata is malformed
(RFC 9460 §2.2, see `services`); every other type the raw octets (RFC 3597).
The rdata is decoded by type alone, whatever the class (glibc does not check it)."""


class Record(NamedTuple):
    """One resource record of the answer, authority or additional section."""

    name: str
    """Owner name, presentation form, trailing dot, the server's case."""
    rtype: int
    rclass: int
    ttl: int
    """Seconds; a TTL with the top bit set reads as 0 (RFC 2181 §8)."""
    data: RData


class Edns(NamedTuple):
    """The OPT pseudo-record of a response (RFC 6891 §6.1)."""

    payload: int
    """The sender's UDP payload size (the OPT record's class field)."""
    version: int
    dnssec_ok: bool
    options: tuple[tuple[int, bytes], ...]
    """(option code, option data) in wire order."""


class Message(NamedTuple):
    """A parsed DNS message."""

    ident: int
    qr: bool
    opcode: int
    aa: bool
    tc: bool
    rd: bool
    ra: bool
    ad: bool
    cd: bool
    rcode: int
    """The full response code: the header's 4 bits plus, with an OPT record, its 8
    upper bits (RFC 6891 §6.1.3). ``rcode & 0xF`` is the header field alone, which is
    all glibc reads (it never looks at the OPT record)."""
    questions: tuple[Question, ...]
    answers: tuple[Record, ...]
    authority: tuple[Record, ...]
    additional: tuple[Record, ...]
    """Without the OPT record, which is `edns`."""
    edns: Edns | None
    qdcount: int
    """The header's counts as received (glibc's checks read these: a "lame" reply has
    ``ancount == 0 and arcount == 0``, an OPT record counting in ``arcount``)."""
    ancount: int
    nscount: int
    arcount: int
    size: int
    """Octets in the message (a header-only reply has 12)."""
    partial: bool
    """TC was set and the sections stopped short of the header's counts (a server
    cut the message to fit): the records read in full are kept, the rest is missing.
    Use it for nothing but deciding to retry over TCP (RFC 2181 §9)."""


class Answer(NamedTuple):
    """What one reply gives for an A or AAAA query (see `addresses`)."""

    addresses: tuple[str, ...]
    """In answer-section order, duplicates kept (glibc keeps them)."""
    canonical: str
    """glibc's canonical name: the last CNAME target before the first address taken
    that is a host name (`hostname_ok`), else the question's name as received; without
    the trailing dot (``ns_name_ntop``'s form, as in ``ai_canonname``)."""
    ttl: int | None
    """Seconds these addresses may be cached: the minimum TTL over the address
    records taken and the CNAME records walked before them; ``None`` with no address."""


class ServiceAnswer(NamedTuple):
    """The HTTPS (or SVCB) RRset a reply gives for a name (see `services`)."""

    owner: str
    """The owner name of the records: the queried name, or the end of its CNAME chain.
    A ServiceMode target of ``"."`` stands for this name (RFC 9460 §2.5.2)."""
    aliases: tuple[Service, ...]
    """AliasMode records (priority 0), in wire order. Their SvcParams are to be
    ignored (RFC 9460 §2.4.2)."""
    services: tuple[Service, ...]
    """Self-consistent ServiceMode records, in wire order (not sorted). Empty when the
    RRset holds an AliasMode record (RFC 9460 §2.4.1)."""
    ttl: int | None
    """The minimum TTL over the RRset and the CNAME records walked to it; ``None``
    when the reply holds no record of the type for the name."""
    malformed: bool
    """A record of the RRset was malformed, so the whole RRset was rejected and both
    tuples are empty (RFC 9460 §2.2): fall back to non-SVCB connection."""


# --------------------------------------------------------------------------- building

_HEADER = struct.Struct("!HHHHHH")
_QTAIL = struct.Struct("!HH")
_RR = struct.Struct("!HHIH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_SOA_TAIL = struct.Struct("!IIIII")

# Octets a query name may carry: printable ASCII without the ones presentation format
# escapes (RFC 1035 §5.1: '"', '(', ')', ';', '\\', '@', '$'; '.' separates labels).
# With these, the text given is exactly the text a reply's name reads back as.
_NAME_BAD = re.compile(r'[^\x21-\x7e]|["();\\@$]')
# hostname_ok: labels of letters, digits, '-' and '_', the first not starting with '-'.
_HNOK = re.compile(r"(?!-)[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*\.?")


@lru_cache(maxsize=512)
def _encode_name(name: str) -> bytes:
    if name == ".":
        return b"\x00"
    if _NAME_BAD.search(name):
        raise WireError(
            f"{name!r}: a query name is printable ASCII without any of the characters "
            "'\"();\\@$' or spaces"
        )
    text = name[:-1] if name.endswith(".") else name
    out = bytearray()
    for label in text.split("."):
        size = len(label)
        if size == 0:
            raise WireError(f"{name!r}: empty label")
        if size > 63:
            raise WireError(f"{name!r}: a label longer than 63 octets")
        out.append(size)
        out += label.encode("ascii")
    out.append(0)
    if len(out) > 255:
        raise WireError(f"{name!r}: longer than 255 octets on the wire")
    return bytes(out)


#: The UDP payload size this end advertises with EDNS0: the DNS Flag Day 2020 value,
#: which fits an IPv6 datagram without fragments (glibc's ``options edns0``: 1200).
EDNS_PAYLOAD = 1232


def build_query(
    name: str,
    rdtype: int,
    *,
    ident: int,
    edns_payload: int | None = EDNS_PAYLOAD,
    rd: bool = True,
    ad: bool = False,
) -> bytes:
    """A standard query (opcode QUERY) for `name` / `rdtype`, class IN.

    `name` is sent as given, case kept (glibc sends names as typed); a trailing dot is
    optional and the root is ``"."``. Labels are 1 to 63 octets, the wire name at most
    255, and the characters printable ASCII other than the ones presentation format
    escapes (``"();\\@$``, space): this covers every host name, and what this module
    parses back is then the very same text. Anything else raises `WireError` (an empty
    name too). Whether a name is a host name (glibc's ``res_hnok``) is the caller's
    check, see `hostname_ok`.

    `ident` is the message ID (0..65535; glibc draws a new random one per packet).
    With `edns_payload` (512..65535) an OPT record goes in the additional section:
    EDNS version 0, DO clear, no options, that UDP payload size. glibc sends one only
    with ``options edns0``, advertising 1200. `rd` sets RD (glibc: always); `ad` sets
    AD (glibc: with ``options trust-ad``).
    """
    if not 0 <= ident <= 0xFFFF:
        raise WireError(f"message ID {ident} is not 16 bits")
    if not 0 <= rdtype <= 0xFFFF:
        raise WireError(f"record type {rdtype} is not 16 bits")
    if edns_payload is not None and not 512 <= edns_payload <= 0xFFFF:
        raise WireError(f"EDNS payload {edns_payload} is not in 512..65535")
    if not isinstance(name, str):
        raise WireError(f"a name is text, not {type(name).__name__}")
    flags = (0x0100 if rd else 0) | (0x0020 if ad else 0)
    qname = _encode_name(name)
    if edns_payload is None:
        return _HEADER.pack(ident, flags, 1, 0, 0, 0) + qname + _QTAIL.pack(rdtype, IN)
    return (
        _HEADER.pack(ident, flags, 1, 0, 0, 1)
        + qname
        + _QTAIL.pack(rdtype, IN)
        + b"\x00"
        + _RR.pack(OPT, edns_payload, 0, 0)
    )


def build_tcp(message: bytes) -> bytes:
    """`message` with the 2-octet length prefix of DNS over TCP (RFC 1035 §4.2.2)."""
    if len(message) > 0xFFFF:
        raise WireError(f"a message of {len(message)} octets does not fit TCP framing")
    return _U16.pack(len(message)) + message


@lru_cache(maxsize=1024)
def hostname_ok(name: str) -> bool:
    """glibc's ``res_hnok``, for text without backslash escapes (glibc would decode
    them; here a backslash is simply not a host-name character): labels of letters,
    digits, ``-`` and ``_``, 1 to 63 octets, the first label not starting with ``-``,
    at most 255 octets on the wire, a trailing dot allowed. ``"."`` and ``""`` (both the
    root to glibc) pass; `build_query` refuses ``""`` all the same."""
    if name in (".", ""):
        return True
    if _HNOK.fullmatch(name) is None:
        return False
    text = name[:-1] if name.endswith(".") else name
    return len(text) <= 253 and all(len(label) <= 63 for label in text.split("."))


# --------------------------------------------------------------------------- parsing

# Named tuples built from a plain tuple: a third of the cost of calling the class.
_tuple_new = tuple.__new__

# Pointer hops allowed in one name (dnspython allows 16; real servers use one).
_MAX_HOPS = 16
# Label octets that presentation format writes as they are.
_PLAIN = bytes(c for c in range(0x21, 0x7F) if c not in b'"().;\\@$')
_PLAIN_OR_DOT = _PLAIN + b"."


def _escape(label: bytes) -> str:
    # RFC 1035 §5.1, as dnspython and glibc's ns_name_ntop write it.
    out = []
    for c in label:
        if c in b'"().;\\@$':
            out.append("\\" + chr(c))
        elif 0x20 < c < 0x7F:
            out.append(chr(c))
        else:
            out.append(f"\\{c:03d}")
    return "".join(out)


# The names read so far in one message: start offset -> (text, wire length, pointer
# hops, offset after the name). A name at an offset always reads the same, so each
# offset is decoded once, and compression costs a dictionary lookup.
_Cache: TypeAlias = dict[int, tuple[str, int, int, int]]


def _text(labels: list[bytes]) -> str:
    # Presentation text of labels (no trailing dot); one C-level check in the usual
    # case that nothing needs escaping.
    raw = b".".join(labels)
    if not raw.translate(None, _PLAIN_OR_DOT) and raw.count(b".") == len(labels) - 1:
        return raw.decode("ascii")
    return ".".join(_escape(label) for label in labels)


def _name(data: bytes, pos: int, cache: _Cache) -> tuple[str, int]:
    """The (possibly compressed) name at `pos`, and the offset after it.

    A pointer must point strictly before the start of the label run it ends (so
    before every offset visited: no loop, no forward pointer), at most `_MAX_HOPS`
    pointers per name, and the name is at most 255 octets uncompressed.

    This handles the usual shapes (labels then the root, or labels then a pointer to
    a name already read); `_name_runs` everything else.
    """
    hit = cache.get(pos)
    if hit is not None:
        return hit[0], hit[3]
    size = len(data)
    start = pos
    labels: list[bytes] = []
    wire = 1
    while True:
        if pos >= size:
            raise WireError("name runs past the end of the message")
        length = data[pos]
        if length == 0:
            text = _text(labels) + "." if labels else "."
            cache[start] = (text, wire, 0, pos + 1)
            return text, pos + 1
        if length < 64:
            pos += 1
            end = pos + length
            if end > size:
                raise WireError("label runs past the end of the message")
            wire += length + 1
            if wire > 255:
                raise WireError("name longer than 255 octets")
            labels.append(data[pos:end])
            pos = end
            continue
        if length < 0xC0 or pos + 1 >= size:
            break
        target = ((length & 0x3F) << 8) | data[pos + 1]
        hit = cache.get(target)
        if hit is None or target >= start:
            break
        suffix, suffix_wire, suffix_hops, _ = hit
        wire += suffix_wire - 1
        if wire > 255:
            raise WireError("name longer than 255 octets")
        if suffix_hops >= _MAX_HOPS:
            raise WireError("too many compression pointers in one name")
        text = _text(labels) + "." + ("" if suffix == "." else suffix) if labels else suffix
        cache[start] = (text, wire, suffix_hops + 1, pos + 2)
        return text, pos + 2
    return _name_runs(data, start, cache)


def _name_runs(data: bytes, pos: int, cache: _Cache) -> tuple[str, int]:
    # The general case of `_name`: any number of pointers. Every label read here is
    # cached as the start of a name (its suffix), so that pointers into the middle of
    # a name cost a lookup: no offset is read twice, whatever the pointers do.
    size = len(data)
    labels: list[bytes] = []
    offsets: list[int] = []  # where each label starts
    runs: list[tuple[int, int, int]] = []  # (start, index of its first label, offset after)
    start = pos
    first = 0
    wire = 1
    hops = 0
    suffix = "."
    suffix_wire = 1
    suffix_hops = 0
    while True:
        if pos >= size:
            raise WireError("name runs past the end of the message")
        length = data[pos]
        if length == 0:
            runs.append((start, first, pos + 1))
            break
        if length < 64:
            end = pos + 1 + length
            if end > size:
                raise WireError("label runs past the end of the message")
            wire += length + 1
            if wire > 255:
                raise WireError("name longer than 255 octets")
            offsets.append(pos)
            labels.append(data[pos + 1 : end])
            pos = end
            continue
        if length < 0xC0:
            raise WireError(f"unknown label type 0x{length:02x}")
        if pos + 1 >= size:
            raise WireError("compression pointer runs past the end of the message")
        target = ((length & 0x3F) << 8) | data[pos + 1]
        runs.append((start, first, pos + 2))
        if target >= start:
            raise WireError("compression pointer does not point backwards")
        hops += 1
        if hops > _MAX_HOPS:
            raise WireError("too many compression pointers in one name")
        hit = cache.get(target)
        if hit is not None:
            suffix, suffix_wire, suffix_hops, _ = hit
            if wire - 1 + suffix_wire > 255:
                raise WireError("name longer than 255 octets")
            if hops + suffix_hops > _MAX_HOPS:
                raise WireError("too many compression pointers in one name")
            break
        start = pos = target
        first = len(labels)
    # Build the names from the end: each label's name is the label, a dot, the rest.
    text = suffix
    text_wire = suffix_wire
    index = len(labels) - 1
    for run in range(len(runs) - 1, -1, -1):
        run_start, run_first, after = runs[run]
        run_hops = hops + suffix_hops - run
        while index >= run_first:
            raw = labels[index]
            label = raw.decode("ascii") if not raw.translate(None, _PLAIN) else _escape(raw)
            text = label + "." + ("" if text == "." else text)
            text_wire += len(raw) + 1
            cache[offsets[index]] = (text, text_wire, run_hops, after)
            index -= 1
        cache[run_start] = (text, text_wire, run_hops, after)
    return text, runs[0][2]


def _plain_name(data: bytes, pos: int, end: int) -> tuple[str, int] | None:
    # An uncompressed name inside [pos, end) (SVCB TargetName, RFC 9460 §2.2);
    # None when it is not one.
    labels: list[str] = []
    wire = 1
    while True:
        if pos >= end:
            return None
        length = data[pos]
        pos += 1
        if length == 0:
            break
        if length > 63 or pos + length > end:
            return None
        wire += length + 1
        if wire > 255:
            return None
        raw = data[pos : pos + length]
        labels.append(raw.decode("ascii") if not raw.translate(None, _PLAIN) else _escape(raw))
        pos += length
    return (".".join(labels) + "." if labels else "."), pos


def _addresses(value: bytes, width: int, family: int) -> tuple[str, ...] | None:
    if not value or len(value) % width:
        return None
    return tuple(inet_ntop(family, value[i : i + width]) for i in range(0, len(value), width))


def _service(data: bytes, pos: int, end: int) -> Service | None:
    """SVCB/HTTPS rdata in [pos, end), or None when malformed (RFC 9460 §2.2)."""
    if end - pos < 3:
        return None
    (priority,) = _U16.unpack_from(data, pos)
    read = _plain_name(data, pos + 2, end)
    if read is None:
        return None
    target, pos = read
    alpn: tuple[str, ...] = ()
    no_default_alpn = False
    port: int | None = None
    ipv4hint: tuple[str, ...] = ()
    ipv6hint: tuple[str, ...] = ()
    ech: bytes | None = None
    mandatory: tuple[int, ...] = ()
    other: dict[int, bytes] = {}
    last = -1
    while pos < end:
        if end - pos < 4:
            return None
        key, length = _QTAIL.unpack_from(data, pos)
        pos += 4
        if key <= last:
            return None  # keys strictly increasing, so no duplicates either
        last = key
        value_end = pos + length
        if value_end > end:
            return None
        value = data[pos:value_end]
        pos = value_end
        if key == KEY_MANDATORY:
            if not value or length % 2:
                return None
            keys = struct.unpack(f"!{length // 2}H", value)
            # Strictly increasing, and "mandatory" never lists itself (RFC 9460 §8).
            if keys[0] == KEY_MANDATORY or any(a >= b for a, b in pairwise(keys)):
                return None
            mandatory = keys
        elif key == KEY_ALPN:
            ids = []
            at = 0
            while at < length:
                size = value[at]
                at += 1
                if size == 0 or at + size > length:
                    return None
                ids.append(value[at : at + size].decode("latin-1"))
                at += size
            if not ids:
                return None
            alpn = tuple(ids)
        elif key == KEY_NO_DEFAULT_ALPN:
            if value:
                return None
            no_default_alpn = True
        elif key == KEY_PORT:
            if length != 2:
                return None
            (port,) = _U16.unpack(value)
        elif key == KEY_IPV4HINT:
            hints = _addresses(value, 4, AF_INET)
            if hints is None:
                return None
            ipv4hint = hints
        elif key == KEY_ECH:
            # An ECHConfigList (RFC 9848 §2, RFC 9849 §4): a 2-octet length of the
            # rest, which is 4 octets or more. Its content is the TLS stack's business.
            if length < 6 or _U16.unpack_from(value)[0] != length - 2:
                return None
            ech = value
        elif key == KEY_IPV6HINT:
            hints = _addresses(value, 16, AF_INET6)
            if hints is None:
                return None
            ipv6hint = hints
        else:
            other[key] = value
    return Service(
        priority, target, alpn, no_default_alpn, port, ipv4hint, ipv6hint, ech, mandatory, other
    )


def _edns(data: bytes, pos: int, end: int, payload: int, ttl: int) -> Edns:
    # RFC 6891 §6.1.2-6.1.3: class = UDP payload size; TTL = extended RCODE (8 bits),
    # version (8), DO (1), Z (15); rdata = {code, length, data} options.
    options = []
    while pos < end:
        if end - pos < 4:
            raise WireError("EDNS option header runs past the OPT rdata")
        code, length = _QTAIL.unpack_from(data, pos)
        pos += 4
        if pos + length > end:
            raise WireError("EDNS option runs past the OPT rdata")
        options.append((code, data[pos : pos + length]))
        pos += length
    return _tuple_new(Edns, (payload, (ttl >> 16) & 0xFF, ttl & 0x8000 != 0, tuple(options)))


def parse_response(data: bytes | bytearray | memoryview) -> Message:
    """Parse a DNS message (one UDP datagram, or a TCP message without its length).

    Everything is checked: lengths and counts against the octets present, names
    (labels of at most 63 octets, 255 octets in all, compression pointers pointing
    strictly backwards, at most 16 of them per name), rdata of the types decoded
    (a CNAME or SOA must fill its rdata exactly), EDNS (at most one OPT record, in the
    additional section, owned by the root, options well framed). Anything wrong raises
    `WireError`, and no other exception can escape. Two leniencies, both glibc's:
    octets after the last record are ignored, and an A or AAAA record of the wrong
    length is kept with raw rdata rather than failing the message. And one for
    truncation: with TC set, sections that stop short of the header's counts are not
    an error (`Message.partial`); the header and the question must still be whole.

    An SVCB or HTTPS record whose rdata is malformed (RFC 9460 §2.2: keys not strictly
    increasing, a parameter running past the rdata, a value of the wrong format, a
    compressed or overlong TargetName) does not fail the message: it keeps its raw
    octets as ``data``, and `services` then rejects its whole RRset as §2.2 requires.
    """
    try:
        return _parse(bytes(data))
    except (IndexError, struct.error, UnicodeError, OverflowError) as exc:
        # Never reached by any input the tests found; a guard, so that a missed bound
        # still surfaces as WireError (its __cause__ tells the tests it was missed).
        raise WireError(f"malformed message: {exc}") from exc


def _parse(data: bytes) -> Message:
    size = len(data)
    if size < 12:
        raise WireError(f"a message of {size} octets is shorter than a header")
    ident, flags, qdcount, ancount, nscount, arcount = _HEADER.unpack_from(data)
    cache: _Cache = {}
    pos = 12
    questions = []
    for _ in range(qdcount):
        qname, pos = _name(data, pos, cache)
        if pos + 4 > size:
            raise WireError("question runs past the end of the message")
        qtype, qclass = _QTAIL.unpack_from(data, pos)
        pos += 4
        questions.append(_tuple_new(Question, (qname, qtype, qclass, qname.lower())))
    # One list for the three sections: the OPT record, the only one left out, may only
    # be in the last, so the sections are slices of it at the header's counts.
    records: list[Record] = []
    edns: Edns | None = None
    high_rcode = 0
    partial = False
    total = ancount + nscount + arcount
    if total:
        additional_from = ancount + nscount
        append = records.append
        get = cache.get
        try:
            for index in range(total):
                # The owner is most often a pointer to a name already read.
                if pos + 1 < size and data[pos] >= 0xC0:
                    target = ((data[pos] & 0x3F) << 8) | data[pos + 1]
                    hit = get(target) if target < pos else None
                    if hit is not None and hit[2] < _MAX_HOPS:
                        owner = hit[0]
                        pos += 2
                    else:
                        owner, pos = _name(data, pos, cache)
                else:
                    owner, pos = _name(data, pos, cache)
                if pos + 10 > size:
                    raise WireError("record header runs past the end of the message")
                rtype, rclass, ttl, rdlength = _RR.unpack_from(data, pos)
                pos += 10
                end = pos + rdlength
                if end > size:
                    raise WireError("rdata runs past the end of the message")
                rdata: RData
                if rtype == A:
                    rdata = inet_ntop(AF_INET, data[pos:end]) if rdlength == 4 else data[pos:end]
                elif rtype == AAAA:
                    rdata = inet_ntop(AF_INET6, data[pos:end]) if rdlength == 16 else data[pos:end]
                elif rtype == CNAME:
                    rdata, after = _name(data, pos, cache)
                    if after != end:
                        raise WireError("CNAME target does not fill its rdata")
                elif rtype in (HTTPS, SVCB):
                    service = _service(data, pos, end)
                    rdata = data[pos:end] if service is None else service
                elif rtype == SOA:
                    mname, after = _name(data, pos, cache)
                    rname, after = _name(data, after, cache)
                    if after + 20 != end:
                        raise WireError("SOA rdata has the wrong length")
                    rdata = Soa(mname, rname, *_SOA_TAIL.unpack_from(data, after))
                elif rtype == OPT:
                    if index < additional_from or edns is not None or owner != ".":
                        raise WireError("OPT record out of place (RFC 6891 §6.1.1)")
                    edns = _edns(data, pos, end, rclass, ttl)
                    high_rcode = ttl >> 24
                    pos = end
                    continue
                else:
                    rdata = data[pos:end]
                pos = end
                append(
                    _tuple_new(
                        Record, (owner, rtype, rclass, ttl if ttl < 0x80000000 else 0, rdata)
                    )
                )
        except WireError:
            if not flags & 0x0200:
                raise
            partial = True
    if records:
        answers = tuple(records[:ancount])
        authority = tuple(records[ancount : ancount + nscount])
        additional = tuple(records[ancount + nscount :])
    else:
        answers = authority = additional = ()
    return _tuple_new(
        Message,
        (
            ident,
            flags & 0x8000 != 0,
            (flags >> 11) & 0xF,
            flags & 0x0400 != 0,
            flags & 0x0200 != 0,
            flags & 0x0100 != 0,
            flags & 0x0080 != 0,
            flags & 0x0020 != 0,
            flags & 0x0010 != 0,
            (high_rcode << 4) | (flags & 0xF),
            tuple(questions),
            answers,
            authority,
            additional,
            edns,
            qdcount,
            ancount,
            nscount,
            arcount,
            size,
            partial,
        ),
    )


# --------------------------------------------------------------------------- reading


def _folded(name: str) -> str:
    # The comparison form of a name given by the caller: lower case, trailing dot.
    name = name.lower()
    return name if name.endswith(".") else name + "."


def matches(message: Message, ident: int, name: str, rdtype: int) -> bool:
    """Whether `message` answers the query `ident` / `name` / `rdtype` (class IN), as
    glibc 2.36's ``send_dg`` decides before using a datagram.

    The ID must be equal and then, as ``res_queriesmatch``: the reply holds exactly one
    question (the query's count), with that type, class IN and that name compared
    ASCII case-insensitively (``ns_samename``; a trailing dot on `name` optional). One
    exception skips the question check: a reply of exactly 12 octets with no question
    and rcode SERVFAIL, NOTIMP or REFUSED (some resolvers send REFUSED without copying
    the question). As in glibc, QR and the opcode are not checked. A reply that does
    not match is dropped and the wait goes on.
    """
    if message.ident != ident:
        return False
    if (
        message.size == 12
        and message.qdcount == 0
        and message.rcode & 0xF in (SERVFAIL, NOTIMP, REFUSED)
    ):
        return True
    if message.qdcount != 1:
        return False
    folded = _folded(name)
    return any(
        q.rdtype == rdtype and q.rdclass == IN and q.folded == folded for q in message.questions
    )


def addresses(message: Message, name: str, rdtype: int) -> Answer:
    """The addresses one reply gives for the query `name` / `rdtype` (A or AAAA), taken
    as glibc 2.36's ``gaih_getanswer_slice`` takes them (getaddrinfo, AF_UNSPEC).

    The answer section is walked in order with an expected owner name, first `name`:
    a CNAME record, whatever its owner (no owner check, as glibc), makes its target
    the expected name; a record of type `rdtype` whose owner is the expected name
    (ASCII case-insensitively) and whose rdata has 4 (A) or 16 (AAAA) octets is an
    address; everything else is skipped, and the class is never checked. No address
    (no answer, only CNAMEs, only other types or owners, or a `name` that is not a
    host name, which glibc refuses too) gives ``addresses == ()`` and ``ttl is None``.
    The rcode is not looked at: classifying the reply (NXDOMAIN, NODATA, ...) is the
    caller's job, on the header (glibc's ``__res_context_query``).
    """
    canonical = message.questions[0].name if message.questions else name
    if not message.answers or not hostname_ok(name):
        return Answer((), _ntop(canonical), None)
    expected = _folded(name)
    found: list[str] = []
    chain_ttl: int | None = None
    ttl: int | None = None
    for record in message.answers:
        rtype = record.rtype
        if rtype == CNAME:
            target = record.data
            if not isinstance(target, str):
                continue
            expected = target.lower()
            chain_ttl = record.ttl if chain_ttl is None else min(chain_ttl, record.ttl)
            if not found and hostname_ok(target):
                canonical = target
        elif rtype == rdtype and isinstance(record.data, str) and record.name.lower() == expected:
            found.append(record.data)
            low = record.ttl if chain_ttl is None else min(chain_ttl, record.ttl)
            ttl = low if ttl is None else min(ttl, low)
    return Answer(tuple(found), _ntop(canonical), ttl)


def _ntop(name: str) -> str:
    # ns_name_ntop's form: no trailing dot, except for the root.
    return name[:-1] if len(name) > 1 and name.endswith(".") else name


def negative_ttl(message: Message) -> int | None:
    """How long a negative answer (NXDOMAIN, or NODATA) may be cached (RFC 2308 §5):
    the smaller of the TTL and the MINIMUM field of the first SOA record in the
    authority section. ``None`` without one: RFC 2308 §5 says such an answer SHOULD
    NOT be cached. Whether the reply is negative is the caller's judgement."""
    for record in message.authority:
        if record.rtype == SOA and isinstance(record.data, Soa):
            return min(record.ttl, record.data.minimum)
    return None


def services(message: Message, name: str, rdtype: int = HTTPS) -> ServiceAnswer:
    """The HTTPS (or, with `rdtype`, SVCB) RRset a reply gives for `name`.

    The answer section is walked as `addresses` walks it: CNAME records move the
    expected owner name to their target (no owner check), and the records of
    `rdtype` owned by the expected name (ASCII case-insensitively) are the RRset; when
    a CNAME comes between records of two owners, the last owner's are kept.

    RFC 9460 rules applied here: a malformed record rejects the whole RRset (§2.2:
    `ServiceAnswer.malformed`, both tuples empty); a ServiceMode record that is not
    self-consistent is dropped (§2.4.3, `Service.self_consistent`); ServiceMode
    records are ignored when the RRset holds an AliasMode record (§2.4.1).

    Left to the caller, as RFC 9460 requires of it:

    - AliasMode (§2.4.2, §3): follow the alias by querying the target name for the
      same type (and its A/AAAA), picking one alias at random if there are several;
      SvcParams on AliasMode records are ignored; a target of ``"."`` means the
      service is not available, so fall back to the origin's A/AAAA; bound the alias
      chain and detect loops (§3 requires a limit, like CNAME chains).
    - ServiceMode (§2.4.3, §3): a ``"."`` target means `ServiceAnswer.owner`; try
      records in increasing priority, shuffling equal priorities; skip records that
      are not "compatible" (§8): ``mandatory`` keys the client does not support (keys
      in ``Service.other`` are unknown to this module), and for HTTPS ``port`` and
      ``no-default-alpn`` are automatically mandatory (§9.1). The hints stand in for
      the target's A/AAAA only until those arrive (§7.3).
    - An empty RRset (``ttl is None``) or a malformed one: connect without SVCB.
    """
    expected = _folded(name)
    expected_text = name if name.endswith(".") else name + "."
    chain_ttl: int | None = None
    rrset: list[Record] = []
    rrset_owner = ""
    rrset_chain_ttl: int | None = None
    for record in message.answers:
        if record.rtype == CNAME:
            target = record.data
            if not isinstance(target, str):
                continue
            expected, expected_text = target.lower(), target
            chain_ttl = record.ttl if chain_ttl is None else min(chain_ttl, record.ttl)
        elif record.rtype == rdtype and record.name.lower() == expected:
            if rrset_owner != expected:
                rrset = []  # a CNAME led elsewhere: only the last owner's records
                rrset_owner = expected
            rrset.append(record)
            rrset_chain_ttl = chain_ttl
    if not rrset:
        return ServiceAnswer(expected_text, (), (), None, False)
    ttl = min(record.ttl for record in rrset)
    if rrset_chain_ttl is not None:
        ttl = min(ttl, rrset_chain_ttl)
    owner = rrset[0].name
    records = [record.data for record in rrset if isinstance(record.data, Service)]
    if len(records) != len(rrset):
        return ServiceAnswer(owner, (), (), ttl, True)
    aliases = tuple(service for service in records if service.priority == 0)
    if aliases:
        return ServiceAnswer(owner, aliases, (), ttl, False)
    modes = tuple(service for service in records if service.self_consistent())
    return ServiceAnswer(owner, (), modes, ttl, False)
