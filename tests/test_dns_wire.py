"""The DNS wire codec `connectbyname._dns._wire`, with dnspython as an independent oracle.

- Round trips: messages dnspython writes (compression included) parse to what was put
  in them; queries built here parse in dnspython to the question, flags and EDNS asked.
- Robustness: any octets give a `Message` or a `WireError`, nothing else (hypothesis:
  random octets, and truncations, bit flips and splices of valid messages); name
  compression cannot loop, point forward or blow up.
- glibc's reading of replies: `matches` and `addresses` on the cases of the glibc notes
  (§5, §8, §15): CNAME chains, owner mismatches, CNAME only, other types, case,
  header-only REFUSED. HTTPS RRsets per RFC 9460; RFC 2308 negative TTLs.
- Speed: parse times measured and printed (not asserted), next to dnspython's.
"""

# dnspython leaves its rdata and SvcParam constructors unannotated.
# mypy: disallow-untyped-calls=False

from __future__ import annotations

import functools
import io
import ipaddress
import socket
import struct
import timeit
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

pytest.importorskip("dns.message")

import dns.edns
import dns.flags
import dns.message
import dns.name
import dns.opcode
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.CNAME
import dns.rdtypes.ANY.SOA
import dns.rdtypes.ANY.TXT
import dns.rdtypes.IN.A
import dns.rdtypes.IN.AAAA
import dns.rdtypes.IN.HTTPS
import dns.rdtypes.IN.SVCB
import dns.rrset
from dns.rdtypes import svcbbase

from connectbyname._dns import _wire as w

FUZZ = settings(
    max_examples=400,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# ------------------------------------------------------------------------- helpers


def encode_name(name: str) -> bytes:
    """Uncompressed wire form of a dotted name (test-side, independent of the codec)."""
    if name in (".", ""):
        return b"\x00"
    out = b""
    for label in name.rstrip(".").split("."):
        raw = label.encode("latin-1")
        out += bytes([len(raw)]) + raw
    return out + b"\x00"


RR = tuple[str, int, int, int, bytes]  # owner, type, class, ttl, rdata


def rr(owner: str, rtype: int, rdata: bytes | str, ttl: int = 300, rclass: int = 1) -> RR:
    """A record for `build`: rdata as octets, or an address / name text."""
    if isinstance(rdata, str):
        if rtype == w.A:
            rdata = socket.inet_pton(socket.AF_INET, rdata)
        elif rtype == w.AAAA:
            rdata = socket.inet_pton(socket.AF_INET6, rdata)
        else:
            rdata = encode_name(rdata)
    return (owner, rtype, rclass, ttl, rdata)


def build(
    *,
    ident: int = 0x4242,
    flags: int = 0x8180,
    questions: Sequence[tuple[str, int, int]] = (("ok.test.", w.A, 1),),
    answers: Sequence[RR] = (),
    authority: Sequence[RR] = (),
    additional: Sequence[RR] = (),
) -> bytes:
    """A reply in exactly the given order, no compression: the cases below need
    control over order, owners and rdata lengths that a library's encoder won't give."""
    out = struct.pack(
        "!HHHHHH", ident, flags, len(questions), len(answers), len(authority), len(additional)
    )
    for name, qtype, qclass in questions:
        out += encode_name(name) + struct.pack("!HH", qtype, qclass)
    for owner, rtype, rclass, ttl, rdata in (*answers, *authority, *additional):
        out += encode_name(owner) + struct.pack("!HHIH", rtype, rclass, ttl, len(rdata)) + rdata
    return out


def soa_rdata(minimum: int) -> bytes:
    return (
        encode_name("ns.test.")
        + encode_name("hostmaster.test.")
        + struct.pack("!IIIII", 1, 7200, 900, 1209600, minimum)
    )


def svcb_rdata(priority: int, target: str, params: Sequence[tuple[int, bytes]] = ()) -> bytes:
    """SVCB/HTTPS rdata with the params in the order given (so, possibly unsorted)."""
    out = struct.pack("!H", priority) + encode_name(target)
    for key, value in params:
        out += struct.pack("!HH", key, len(value)) + value
    return out


def parse_ok(data: bytes) -> w.Message | None:
    """`parse_response`, asserting its contract: a Message, or a WireError raised by an
    explicit check (not the guard around an unexpected IndexError/struct.error)."""
    try:
        message = w.parse_response(data)
    except w.WireError as exc:
        if exc.__cause__ is not None:
            pytest.fail(f"a bound was missed: {exc.__cause__!r}")
        return None
    assert isinstance(message, w.Message)
    # The readers never fail on a parsed message, whatever is in it.
    for question in message.questions[:1]:
        w.matches(message, message.ident, question.name, question.rdtype)
    for rdtype in (w.A, w.AAAA):
        w.addresses(message, "ok.test", rdtype)
    w.services(message, "ok.test")
    w.negative_ttl(message)
    return message


# ------------------------------------------------------- dnspython, the oracle


def ours_comparable(rtype: int, data: w.RData) -> Any:
    """Our rdata in a form comparable with `theirs_comparable`."""
    if rtype == w.A and isinstance(data, str):
        return ipaddress.IPv4Address(data)
    if rtype == w.AAAA and isinstance(data, str):
        # The text is the canonical form (inet_ntop), and the same address.
        assert data == socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, data))
        return ipaddress.IPv6Address(data)
    if isinstance(data, w.Service):
        params: dict[int, Any] = {}
        if data.mandatory:
            params[0] = tuple(data.mandatory)
        if data.alpn:
            params[1] = tuple(alpn_id.encode("latin-1") for alpn_id in data.alpn)
        if data.no_default_alpn:
            params[2] = None
        if data.port is not None:
            params[3] = data.port
        if data.ipv4hint:
            params[4] = tuple(ipaddress.IPv4Address(a) for a in data.ipv4hint)
        if data.ech is not None:
            params[5] = data.ech
        if data.ipv6hint:
            params[6] = tuple(ipaddress.IPv6Address(a) for a in data.ipv6hint)
        params.update(data.other)
        assert tuple(params) == data.param_keys()  # in increasing order
        return ("svcb", data.priority, data.target, params)
    if isinstance(data, w.Soa):
        return tuple(data)
    return data


def param_value(key: int, value: Any) -> Any:
    if value is None:
        return None if key == 2 else b""
    if key == 0:
        return tuple(int(k) for k in value.keys)
    if key == 1:
        return tuple(value.ids)
    if key == 3:
        return value.port
    if key == 4:
        return tuple(ipaddress.IPv4Address(a) for a in value.addresses)
    if key == 5:
        return value.ech
    if key == 6:
        return tuple(ipaddress.IPv6Address(a) for a in value.addresses)
    out = io.BytesIO()
    value.to_wire(out)
    return out.getvalue()


# rd: a dns.rdata.Rdata, typed Any since the fields it has depend on its class and type.
def theirs_comparable(rd: Any) -> Any:
    """dnspython's rdata in the form `ours_comparable` gives."""
    rtype = rd.rdtype
    if isinstance(rd, dns.rdata.GenericRdata):
        # A class dnspython has no class-specific type for (A, AAAA, SVCB and HTTPS are
        # IN types to it; we decode by type alone, as glibc): read the octets as IN.
        try:
            rd = dns.rdata.from_wire(dns.rdataclass.IN, rtype, rd.data, 0, len(rd.data))
        except Exception:
            return rd.data
    if rtype == w.A:
        return ipaddress.IPv4Address(rd.address)
    if rtype == w.AAAA:
        return ipaddress.IPv6Address(rd.address)
    if rtype == w.CNAME:
        return rd.target.to_text()
    if rtype == w.SOA:
        return (
            rd.mname.to_text(),
            rd.rname.to_text(),
            rd.serial,
            rd.refresh,
            rd.retry,
            rd.expire,
            rd.minimum,
        )
    if rtype in (w.SVCB, w.HTTPS):
        params = {int(k): param_value(int(k), v) for k, v in sorted(rd.params.items())}
        return ("svcb", rd.priority, rd.target.to_text(), params)
    return rd.to_wire()


def theirs_groups(
    section: Sequence[dns.rrset.RRset], fold: bool = False
) -> list[list[tuple[Any, ...]]]:
    """One group per RRset, its records in any order (dnspython shuffles them when
    writing, unless told not to). With ``fold``, names compared without case:
    dnspython compresses a name into an earlier one that differs only in case."""
    return [
        sorted(
            (
                (
                    rrset.name.to_text().lower() if fold else rrset.name.to_text(),
                    int(rrset.rdtype),
                    int(rrset.rdclass),
                    rrset.ttl if rrset.ttl < 2**31 else 0,
                    theirs_comparable(rd),
                )
                for rd in rrset
            ),
            key=repr,
        )
        for rrset in section
    ]


def ours_groups(records: Sequence[w.Record], fold: bool = False) -> list[list[tuple[Any, ...]]]:
    groups: list[list[tuple[Any, ...]]] = []
    last = None
    for record in records:
        key = (record.name.lower(), record.rtype, record.rclass)
        item = (
            record.name.lower() if fold else record.name,
            record.rtype,
            record.rclass,
            record.ttl,
            ours_comparable(record.rtype, record.data),
        )
        if key == last:
            groups[-1].append(item)
        else:
            groups.append([item])
            last = key
    return [sorted(group, key=repr) for group in groups]


def assert_same(
    message: w.Message, theirs: dns.message.Message, wire: bytes, fold: bool = False
) -> None:
    """Everything `message` says is what dnspython put in (or read from) `wire`; with
    ``fold``, record names without case (see `theirs_groups`)."""
    assert message.ident == theirs.id
    flags = theirs.flags
    assert message.qr == bool(flags & dns.flags.QR)
    assert message.opcode == dns.opcode.from_flags(flags)
    assert message.aa == bool(flags & dns.flags.AA)
    assert message.tc == bool(flags & dns.flags.TC)
    assert message.rd == bool(flags & dns.flags.RD)
    assert message.ra == bool(flags & dns.flags.RA)
    assert message.ad == bool(flags & dns.flags.AD)
    assert message.cd == bool(flags & dns.flags.CD)
    assert message.rcode == theirs.rcode()
    assert message.size == len(wire)
    assert [(q.name, q.rdtype, q.rdclass, q.folded) for q in message.questions] == [
        (q.name.to_text(), q.rdtype, q.rdclass, q.name.to_text().lower()) for q in theirs.question
    ]
    assert ours_groups(message.answers, fold) == theirs_groups(theirs.answer, fold)
    assert ours_groups(message.authority, fold) == theirs_groups(theirs.authority, fold)
    assert ours_groups(message.additional, fold) == theirs_groups(theirs.additional, fold)
    if theirs.edns < 0:
        assert message.edns is None
    else:
        assert message.edns is not None
        assert message.edns.payload == theirs.payload
        assert message.edns.version == theirs.edns
        assert message.edns.dnssec_ok == bool(theirs.ednsflags & dns.flags.DO)
        assert message.edns.options == tuple((int(o.otype), o.to_wire()) for o in theirs.options)


# ---------------------------------------------------- strategies for dnspython


def _name_fits(labels: list[bytes]) -> bool:
    return sum(len(label) + 1 for label in labels) + 1 <= 255


LABELS = st.one_of(
    st.text(
        alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
        min_size=1,
        max_size=12,
    ).map(str.encode),
    # Any octet: dots, backslashes, spaces, controls, non-ASCII, escaped on output.
    st.binary(min_size=1, max_size=6),
    st.just(b"x" * 63),
)
NAMES = st.lists(LABELS, max_size=5).filter(_name_fits).map(lambda ls: dns.name.Name([*ls, b""]))


@st.composite
def name_pools(draw: st.DrawFn) -> list[dns.name.Name]:
    """A few names, and children of them: names that share suffixes compress."""
    base = draw(st.lists(NAMES, min_size=1, max_size=4))
    children = []
    for parent in base:
        for label in draw(st.lists(LABELS, max_size=2)):
            if _name_fits([label, *parent.labels]):
                children.append(dns.name.Name([label, *parent.labels]))
    return base + children


@st.composite
def svcb_rdatas(draw: st.DrawFn, rdtype: int, names: list[dns.name.Name]) -> dns.rdata.Rdata:
    cls = dns.rdtypes.IN.HTTPS.HTTPS if rdtype == w.HTTPS else dns.rdtypes.IN.SVCB.SVCB
    priority = draw(st.integers(0, 65535))
    target = draw(st.sampled_from([*names, dns.name.root]))
    params: dict[int, Any] = {}
    if priority:
        if draw(st.booleans()):
            ids = draw(st.lists(st.binary(min_size=1, max_size=8), min_size=1, max_size=3))
            params[1] = svcbbase.ALPNParam(ids)
            if draw(st.booleans()):
                params[2] = None
        if draw(st.booleans()):
            params[3] = svcbbase.PortParam(draw(st.integers(0, 65535)))
        if draw(st.booleans()):
            addresses = draw(st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=3))
            params[4] = svcbbase.IPv4HintParam(addresses)
        if draw(st.booleans()):
            config_list = draw(st.binary(min_size=4, max_size=40))
            params[5] = svcbbase.ECHParam(struct.pack("!H", len(config_list)) + config_list)
        if draw(st.booleans()):
            addresses = draw(st.lists(st.ip_addresses(v=6).map(str), min_size=1, max_size=3))
            params[6] = svcbbase.IPv6HintParam(addresses)
        for key in draw(st.sets(st.integers(11, 65534), max_size=2)):
            params[key] = svcbbase.GenericParam(draw(st.binary(max_size=10)))
        listed = draw(st.sets(st.sampled_from(sorted(params) or [1]), max_size=3))
        if listed and listed <= set(params):
            params[0] = svcbbase.MandatoryParam(sorted(listed))
    return cls(dns.rdataclass.IN, rdtype, priority, target, params)


@st.composite
def rdatas(draw: st.DrawFn, rdtype: int, names: list[dns.name.Name]) -> dns.rdata.Rdata:
    pick = st.sampled_from(names)
    if rdtype == w.A:
        return dns.rdtypes.IN.A.A(1, rdtype, str(draw(st.ip_addresses(v=4))))
    if rdtype == w.AAAA:
        return dns.rdtypes.IN.AAAA.AAAA(1, rdtype, str(draw(st.ip_addresses(v=6))))
    if rdtype == w.CNAME:
        return dns.rdtypes.ANY.CNAME.CNAME(1, rdtype, draw(pick))
    if rdtype == w.SOA:
        u32 = st.integers(0, 2**32 - 1)
        return dns.rdtypes.ANY.SOA.SOA(
            1, rdtype, draw(pick), draw(pick), *(draw(u32) for _ in range(5))
        )
    if rdtype in (w.HTTPS, w.SVCB):
        return draw(svcb_rdatas(rdtype, names))
    if rdtype == dns.rdatatype.TXT:
        strings = draw(st.lists(st.binary(max_size=20), min_size=1, max_size=3))
        return dns.rdtypes.ANY.TXT.TXT(
            dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype), strings
        )
    return dns.rdata.GenericRdata(
        dns.rdataclass.IN, dns.rdatatype.RdataType.make(rdtype), draw(st.binary(max_size=30))
    )


RTYPES = st.sampled_from([w.A, w.AAAA, w.CNAME, w.SOA, w.HTTPS, w.SVCB, 16, 65280])
TTLS = st.one_of(st.integers(0, 86400), st.integers(0, 2**32 - 1))


@st.composite
def sections(draw: st.DrawFn, names: list[dns.name.Name]) -> list[dns.rrset.RRset]:
    out: list[dns.rrset.RRset] = []
    seen = set()
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(names))
        rdtype = draw(RTYPES)
        if (name, rdtype) in seen:  # one RRset per name and type, as on the wire
            continue
        seen.add((name, rdtype))
        count = 1 if rdtype in (w.CNAME, w.SOA) else draw(st.integers(1, 3))
        records = [draw(rdatas(rdtype, names)) for _ in range(count)]
        out.append(dns.rrset.from_rdata_list(name, draw(TTLS), records))
    return out


@st.composite
def dnspython_messages(draw: st.DrawFn) -> tuple[bytes, dns.message.Message]:
    names = draw(name_pools())
    message = dns.message.Message(id=draw(st.integers(0, 65535)))
    message.flags = dns.flags.Flag(draw(st.integers(0, 0xFFFF)) & ~0x7800 & ~0xF & ~0x40)
    for _ in range(draw(st.integers(0, 2))):
        qname = draw(st.sampled_from(names))
        rdtype = dns.rdatatype.RdataType.make(draw(RTYPES))
        message.question.append(dns.rrset.RRset(qname, dns.rdataclass.IN, rdtype))
    message.answer.extend(draw(sections(names)))
    message.authority.extend(draw(sections(names)))
    message.additional.extend(draw(sections(names)))
    if draw(st.booleans()):
        options: list[dns.edns.Option] = [
            dns.edns.GenericOption(dns.edns.OptionType.make(code), data)
            for code, data in draw(
                st.lists(st.tuples(st.integers(65001, 65534), st.binary(max_size=12)), max_size=2)
            )
        ]
        message.use_edns(
            0,
            dns.flags.DO if draw(st.booleans()) else 0,
            draw(st.integers(512, 65535)),
            options=options,
        )
        message.set_rcode(dns.rcode.Rcode.make(draw(st.integers(0, 4095))))
    else:
        message.set_rcode(dns.rcode.Rcode.make(draw(st.integers(0, 15))))
    return message.to_wire(want_shuffle=False, max_size=65535), message


# ----------------------------------------------------------------- round trips


@FUZZ
@given(dnspython_messages())
def test_messages_dnspython_writes_parse_to_what_it_put_in(case: tuple[bytes, Any]) -> None:
    wire, theirs = case
    message = w.parse_response(wire)
    assert_same(message, theirs, wire, fold=True)
    # And to what dnspython reads back from the same octets, case and all.
    assert_same(message, dns.message.from_wire(wire, raise_on_truncation=False), wire)


def response(query: dns.message.Message, *rrsets: dns.rrset.RRset) -> dns.message.Message:
    reply = dns.message.make_response(query)
    reply.flags |= dns.flags.RA
    reply.answer.extend(rrsets)
    return reply


def roundtrip(theirs: dns.message.Message, **to_wire: Any) -> w.Message:
    wire = theirs.to_wire(**to_wire)
    message = w.parse_response(wire)
    assert_same(message, dns.message.from_wire(wire, raise_on_truncation=False), wire)
    return message


def test_cname_chain_a_and_aaaa_compressed() -> None:
    for rdtype, addresses in (("A", ("192.0.2.1", "192.0.2.2")), ("AAAA", ("2001:db8::1",))):
        query = dns.message.make_query("C1.test.", rdtype)
        reply = response(
            query,
            dns.rrset.from_text("C1.test.", 300, "IN", "CNAME", "c2.test."),
            dns.rrset.from_text("c2.test.", 200, "IN", "CNAME", "www.c3.test."),
            dns.rrset.from_text("www.c3.test.", 60, "IN", rdtype, *addresses),
        )
        wire = reply.to_wire()
        assert wire.count(b"\x04test") == 1  # compression was used
        message = roundtrip(reply)
        answer = w.addresses(message, "c1.test", w.A if rdtype == "A" else w.AAAA)
        assert sorted(answer.addresses) == sorted(addresses)
        assert answer.canonical == "www.c3.test"
        assert answer.ttl == 60


def test_negative_answers_carry_the_soa() -> None:
    query = dns.message.make_query("nx.test.", "A")
    reply = dns.message.make_response(query)
    reply.set_rcode(dns.rcode.NXDOMAIN)
    reply.authority.append(
        dns.rrset.from_text("test.", 900, "IN", "SOA", "ns.test. hostmaster.test. 1 2 3 4 300")
    )
    message = roundtrip(reply)
    assert message.rcode == w.NXDOMAIN
    assert w.negative_ttl(message) == 300
    assert w.addresses(message, "nx.test", w.A) == w.Answer((), "nx.test", None)
    reply.authority[0].ttl = 120
    assert w.negative_ttl(roundtrip(reply)) == 120


def test_https_with_every_svcparam() -> None:
    query = dns.message.make_query("example.test.", "HTTPS")
    text = (
        '1 . mandatory=alpn,port alpn="h3,h2" no-default-alpn port=8443 '
        "ipv4hint=192.0.2.1,192.0.2.2 ech=AAT+DQAA ipv6hint=2001:db8::1,::ffff:192.0.2.9 "
        "key7=/dns-query{?dns} key65000=opaque"
    )
    reply = response(
        query,
        dns.rrset.from_text("example.test.", 600, "IN", "HTTPS", text, "2 alt.example.test."),
    )
    message = roundtrip(reply)
    found = w.services(message, "EXAMPLE.test")
    assert found.owner == "example.test."
    assert found.ttl == 600
    assert not found.aliases
    first, second = sorted(found.services)
    assert first == w.Service(
        priority=1,
        target=".",
        alpn=("h3", "h2"),
        no_default_alpn=True,
        port=8443,
        ipv4hint=("192.0.2.1", "192.0.2.2"),
        ipv6hint=("2001:db8::1", "::ffff:192.0.2.9"),
        ech=b"\x00\x04\xfe\x0d\x00\x00",
        mandatory=(1, 3),
        other={7: b"/dns-query{?dns}", 65000: b"opaque"},
    )
    assert first.param_keys() == (0, 1, 2, 3, 4, 5, 6, 7, 65000)
    assert second == w.Service(2, "alt.example.test.")


def test_edns_extended_rcode_options_and_do() -> None:
    query = dns.message.make_query("ok.test.", "A", use_edns=0, want_dnssec=True)
    reply = dns.message.make_response(query)
    reply.use_edns(
        0,
        dns.flags.DO,
        4096,
        options=[dns.edns.GenericOption(dns.edns.OptionType.COOKIE, b"\x01" * 16)],
    )
    reply.set_rcode(dns.rcode.BADVERS)  # 16: 1 in the OPT record, 0 in the header
    message = roundtrip(reply)
    assert message.rcode == 16
    assert message.rcode & 0xF == w.NOERROR
    assert message.edns == w.Edns(4096, 0, True, ((10, b"\x01" * 16),))
    assert message.additional == ()
    assert message.arcount == 1


def test_truncated_replies() -> None:
    query = dns.message.make_query("big.test.", "A")
    addresses = [f"192.0.2.{i}" for i in range(1, 60)]
    reply = response(query, dns.rrset.from_text("big.test.", 60, "IN", "A", *addresses))
    # dnspython's own truncation: TC, and whole RRsets left out, counts adjusted.
    wire = reply.to_wire(max_size=512, prefer_truncation=True)
    message = w.parse_response(wire)
    assert message.tc
    assert not message.partial
    assert message.questions[0].name == "big.test."
    # A server that cut the datagram mid-record, counts unchanged: not an error with TC.
    full = reply.to_wire()
    flagged = full[:2] + struct.pack("!H", struct.unpack("!H", full[2:4])[0] | 0x0200) + full[4:]
    for cut in (35, 100, 511):
        message = w.parse_response(flagged[:cut])
        assert message.tc
        assert message.partial
        assert message.ancount == 59
        assert len(message.answers) < 59
        assert all(isinstance(r.data, str) for r in message.answers)
    # Without TC the same cut is an error; and with TC the question must still be whole.
    with pytest.raises(w.WireError):
        w.parse_response(full[:100])
    with pytest.raises(w.WireError):
        w.parse_response(flagged[:20])


# ----------------------------------------------------------------------- queries


@pytest.mark.parametrize("name", ["example.com", "V4ONLY.TEST.", "a.b-c_d.e", ".", "x" * 63])
@pytest.mark.parametrize("rdtype", [w.A, w.AAAA, w.HTTPS])
def test_queries_parse_in_dnspython(name: str, rdtype: int) -> None:
    query = w.build_query(name, rdtype, ident=0xBEEF)
    theirs = dns.message.from_wire(query)
    assert theirs.id == 0xBEEF
    assert theirs.flags == dns.flags.RD
    assert theirs.opcode() == dns.opcode.QUERY
    (question,) = theirs.question
    assert question.name.to_text() == (name if name.endswith(".") else name + ".")  # case kept
    assert (question.rdtype, question.rdclass) == (rdtype, dns.rdataclass.IN)
    assert (theirs.edns, theirs.payload, theirs.ednsflags, theirs.options) == (0, 1232, 0, ())
    assert not theirs.answer
    assert not theirs.authority
    # Byte for byte what dnspython builds for the same query.
    same = dns.message.make_query(
        name, dns.rdatatype.RdataType.make(rdtype), use_edns=0, payload=1232
    )
    same.id = 0xBEEF
    assert query == same.to_wire()


def test_query_options() -> None:
    plain = w.build_query("ok.test", w.A, ident=1, edns_payload=None, rd=False, ad=True)
    theirs = dns.message.from_wire(plain)
    assert theirs.flags == dns.flags.AD
    assert theirs.edns == -1
    assert len(plain) == 12 + 9 + 4
    # glibc with "options edns0 trust-ad": RD, AD, an OPT advertising 1200.
    glibc = dns.message.from_wire(
        w.build_query("ok.test", w.AAAA, ident=2, edns_payload=1200, ad=True)
    )
    assert glibc.flags == dns.flags.RD | dns.flags.AD
    assert (glibc.edns, glibc.payload) == (0, 1200)
    # A trailing dot changes nothing on the wire.
    assert w.build_query("ok.test.", w.A, ident=3) == w.build_query("ok.test", w.A, ident=3)
    assert w.build_query(".", w.A, ident=3)[12:17] == b"\x00\x00\x01\x00\x01"


@pytest.mark.parametrize(
    "name",
    [
        "",
        "..",
        "a..b",
        ".a",
        "a" * 64 + ".test",
        ".".join(["a" * 63] * 4),  # 257 octets on the wire
        "é.test",
        "sp ace.test",
        "tab\t.test",
        "a\\.b",
        "semi;colon",
        'quo"te',
        "at@sign",
        "dollar$",
        "(paren)",
    ],
)
def test_query_names_refused(name: str) -> None:
    with pytest.raises(w.WireError):
        w.build_query(name, w.A, ident=1)


def test_query_limits() -> None:
    longest = ".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61])  # 255 octets
    assert len(w.build_query(longest, w.A, ident=1, edns_payload=None)) == 12 + 255 + 4
    bad_keywords: list[dict[str, Any]] = [
        {"ident": -1},
        {"ident": 65536},
        {"ident": 1, "edns_payload": 511},
        {"ident": 1, "edns_payload": 65536},
    ]
    for bad in bad_keywords:
        with pytest.raises(w.WireError):
            w.build_query("ok.test", w.A, **bad)
    with pytest.raises(w.WireError):
        w.build_query("ok.test", 65536, ident=1)
    with pytest.raises(w.WireError):
        w.build_query(b"ok.test", w.A, ident=1)  # type: ignore[arg-type]


def test_tcp_framing() -> None:
    query = w.build_query("ok.test", w.A, ident=7)
    assert w.build_tcp(query) == struct.pack("!H", len(query)) + query
    assert w.build_tcp(b"x" * 65535)[:2] == b"\xff\xff"
    with pytest.raises(w.WireError):
        w.build_tcp(b"x" * 65536)


HOSTNAMES = (
    st.lists(
        st.text(
            alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_",
            min_size=1,
            max_size=63,
        ),
        min_size=1,
        max_size=6,
    )
    .map(".".join)
    .filter(lambda name: len(name) <= 253)
)


@FUZZ
@given(HOSTNAMES, st.booleans(), st.integers(0, 65535))
def test_query_names_read_back_as_sent(name: str, dot: bool, ident: int) -> None:
    query = w.build_query(name + "." * dot, w.AAAA, ident=ident)
    message = w.parse_response(query)
    assert message.questions == (w.Question(name + ".", w.AAAA, 1, name.lower() + "."),)
    assert message.edns == w.Edns(1232, 0, False, ())
    assert not message.qr
    assert w.matches(message, ident, name.upper(), w.AAAA)


# ---------------------------------------------------------------- robustness


@FUZZ
@given(st.binary(max_size=700))
def test_any_octets_give_a_message_or_wire_error(data: bytes) -> None:
    parse_ok(data)


@FUZZ
@given(
    st.tuples(
        st.integers(0, 65535),
        st.integers(0, 65535),
        st.integers(0, 3),
        st.integers(0, 4),
        st.integers(0, 3),
        st.integers(0, 3),
    ),
    st.binary(max_size=300),
)
def test_small_counts_and_random_bodies(header: tuple[int, ...], body: bytes) -> None:
    parse_ok(struct.pack("!HHHHHH", *header) + body)


MUTATIONS = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "insert", "delete", "truncate", "pointer"]),
        st.integers(0, 2**16),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=4,
)


def mutate(wire: bytes, mutations: list[tuple[str, int, int]]) -> bytes:
    data = bytearray(wire)
    for kind, where, value in mutations:
        if not data:
            break
        at = where % len(data)
        if kind == "flip":
            data[at] ^= 1 << (value % 8)
        elif kind == "set":
            data[at] = value
        elif kind == "insert":
            data.insert(at, value)
        elif kind == "delete":
            del data[at]
        elif kind == "truncate":
            del data[at:]
        elif at + 1 < len(data):
            data[at : at + 2] = bytes([0xC0 | (value & 0x3F), where & 0xFF])
    return bytes(data)


@FUZZ
@given(dnspython_messages(), MUTATIONS)
def test_mutated_messages_give_a_message_or_wire_error(
    case: tuple[bytes, Any], mutations: list[tuple[str, int, int]]
) -> None:
    data = mutate(case[0], mutations)
    message = parse_ok(data)
    event("ours: " + ("error" if message is None else "partial" if message.partial else "ok"))
    if message is None:
        return
    # Where dnspython reads the mutant too, it reads the same records (as sets: it
    # merges RRsets and drops duplicates); where it reads an SVCB/HTTPS record that we
    # call malformed, it must have been something RFC 9460 §2.2 calls malformed.
    try:
        theirs = dns.message.from_wire(data, raise_on_truncation=False, ignore_trailing=True)
    except Exception:
        event("dnspython: error")
        return
    event("dnspython: ok")
    if message.partial:
        return
    assert message.ident == theirs.id
    assert message.rcode == theirs.rcode()
    for ours, section in (
        (message.answers, theirs.answer),
        (message.authority, theirs.authority),
        (message.additional, theirs.additional),
    ):
        # SVCB and HTTPS outside class IN are opaque to dnspython, and it cannot build
        # the records that are not self-consistent: leave those out.
        mine = {
            (r.name.lower(), r.rtype, r.rclass, repr(ours_comparable(r.rtype, r.data)))
            for r in ours
            if r.rclass == 1 or r.rtype not in (w.SVCB, w.HTTPS)
        }
        their = {
            (rrset.name.to_text().lower(), rrset.rdtype, rrset.rdclass, repr(theirs_comparable(rd)))
            for rrset in section
            for rd in rrset
            if rrset.rdclass == 1 or rrset.rdtype not in (w.SVCB, w.HTTPS)
        }
        assert mine == their


def test_truncations_of_a_full_message_every_length() -> None:
    query = dns.message.make_query("www.example.test.", "HTTPS", use_edns=0)
    reply = response(
        query,
        dns.rrset.from_text("www.example.test.", 60, "IN", "CNAME", "cdn.example.test."),
        dns.rrset.from_text(
            "cdn.example.test.", 60, "IN", "HTTPS", '1 . alpn="h2" ipv6hint=2001:db8::1'
        ),
    )
    reply.authority.append(
        dns.rrset.from_text(
            "example.test.", 60, "IN", "SOA", "ns.example.test. h.example.test. 1 2 3 4 5"
        )
    )
    wire = reply.to_wire()
    for cut in range(len(wire)):
        with pytest.raises(w.WireError) as caught:
            w.parse_response(wire[:cut])
        assert caught.value.__cause__ is None
    assert w.parse_response(wire + b"trailing junk").answers == w.parse_response(wire).answers


# ------------------------------------------------------------- compression


HEADER_1Q = struct.pack("!HHHHHH", 1, 0x8180, 1, 0, 0, 0)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"\xc0\x0c", "points at itself"),
        (b"\x01a\xc0\x0c", "points at its own start"),
        (b"\x01a\xc0\x0e", "points into itself"),
        (b"\xc0\x0e\x01a\x00", "points forward"),
        (b"\xc0\xff", "points past the end"),
        (b"\xc0", "pointer cut short"),
        (b"\x41" + b"a" * 65 + b"\x00", "label type 0x40"),
        (b"\x81a\x00", "label type 0x80"),
        (b"\x05ab", "label runs past the end"),
        (b"\x01a", "no root label"),
    ],
)
def test_bad_names(body: bytes, why: str) -> None:
    with pytest.raises(w.WireError):
        w.parse_response(HEADER_1Q + body + b"\x00\x01\x00\x01")


def test_pointer_loops_between_names() -> None:
    # Two answers whose owners point at each other: the second pointer points forward.
    header = struct.pack("!HHHHHH", 1, 0x8180, 0, 2, 0, 0)
    first = b"\xc0\x1c" + struct.pack("!HHIH", 16, 1, 0, 0)  # -> offset 28
    second = b"\xc0\x0c" + struct.pack("!HHIH", 16, 1, 0, 0)  # offset 28 -> 12
    assert len(header + first) == 24
    with pytest.raises(w.WireError):
        w.parse_response(header + first + b"\x00" * 4 + second)


def test_pointer_chains_are_bounded() -> None:
    # Pointer-only names pointing at the previous one, each carried by a question.
    def message(hops: int) -> bytes:
        out = b"\x01a\x00\x00\x01\x00\x01"  # question 1 at offset 12
        starts = [12]
        for _ in range(hops):
            starts.append(12 + len(out))
            out += struct.pack("!H", 0xC000 | starts[-2]) + b"\x00\x01\x00\x01"
        return struct.pack("!HHHHHH", 1, 0x8180, hops + 1, 0, 0, 0) + out

    parsed = w.parse_response(message(16))
    assert {q.name for q in parsed.questions} == {"a."}
    with pytest.raises(w.WireError):
        w.parse_response(message(17))


def test_names_are_at_most_255_octets() -> None:
    long = encode_name(".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]))  # 255
    assert (
        w.parse_response(HEADER_1Q + long + b"\x00\x01\x00\x01")
        .questions[0]
        .name.startswith("a" * 63)
    )
    longer = encode_name(".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62]))
    with pytest.raises(w.WireError):
        w.parse_response(HEADER_1Q + longer + b"\x00\x01\x00\x01")
    # 255 reached through compression: a label in front of a 254-octet suffix.
    suffix = encode_name(".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 60]))  # 254
    two = struct.pack("!HHHHHH", 1, 0x8180, 2, 0, 0, 0) + suffix + b"\x00\x01\x00\x01"
    with pytest.raises(w.WireError):
        w.parse_response(two + b"\x01x\xc0\x0c\x00\x01\x00\x01")
    ok = w.parse_response(two.replace(b"\x00\x02", b"\x00\x01", 1))
    assert len(ok.questions) == 1


def test_names_in_presentation_form() -> None:
    labels = [b"A.b", b"c\\d", b'q"()', b";@$", b" \x00\x7f\xff", b"Up"]
    name = dns.name.Name([*labels, b""])
    query = dns.message.make_query(name, "A")
    message = w.parse_response(query.to_wire())
    assert message.questions[0].name == name.to_text()
    assert message.questions[0].name == (r"A\.b.c\\d.q\"\(\).\;\@\$.\032\000\127\255.Up.")
    assert message.questions[0].folded == message.questions[0].name.lower()
    assert w.parse_response(dns.message.make_query(".", "NS").to_wire()).questions[0].name == "."


def pathological(size: int) -> bytes:
    """`size` octets at most of the costliest names the limits allow: a 255-octet name
    of one-octet labels, then records whose owners point at each of its labels in
    turn, so that every owner is a suffix never read before, up to 127 labels long."""
    long_name = b"\x01a" * 127 + b"\x00"  # 255 octets at offset 12
    records = []
    for index in range(127):
        records.append(struct.pack("!HHHIH", 0xC000 | (12 + 2 * index), 65280, 1, 0, 0))
    count = min(127, (size - 12 - 255 - 10) // 12)
    header = struct.pack("!HHHHHH", 1, 0x8180, 0, count + 1, 0, 0)
    first = long_name + struct.pack("!HHIH", 65280, 1, 0, 0)
    return header + first + b"".join(records[:count])


def test_pathological_compression_stays_cheap() -> None:
    data = pathological(512)
    assert len(data) <= 512
    message = w.parse_response(data)
    assert len(message.answers) == 20
    assert message.answers[-1].name == "a." * (127 - 18)
    best = min(timeit.repeat(lambda: w.parse_response(data), number=20, repeat=5)) / 20
    # Generous (it takes a few hundred microseconds): the point is no blow-up.
    assert best < 0.01, f"{best * 1e6:.0f} us for {len(data)} octets"


# ---------------------------------------------------- glibc's reading of replies


def test_matches_like_res_queriesmatch() -> None:
    reply = w.parse_response(build(questions=[("OK.Test.", w.A, 1)]))
    assert w.matches(reply, 0x4242, "ok.test", w.A)
    assert w.matches(reply, 0x4242, "ok.TEST.", w.A)
    assert not w.matches(reply, 0x4243, "ok.test", w.A)  # another ID
    assert not w.matches(reply, 0x4242, "ok.test", w.AAAA)  # another type
    assert not w.matches(reply, 0x4242, "ok.test2", w.A)  # another name
    assert not w.matches(reply, 0x4242, "ok", w.A)
    chaos = w.parse_response(build(questions=[("ok.test.", w.A, 3)]))
    assert not w.matches(chaos, 0x4242, "ok.test", w.A)  # class CH
    two = w.parse_response(build(questions=[("ok.test.", w.A, 1), ("ok.test.", w.A, 1)]))
    assert not w.matches(two, 0x4242, "ok.test", w.A)  # qdcount differs from the query's
    # QR and the opcode are not looked at (glibc does not either).
    assert w.matches(w.parse_response(build(flags=0x0100)), 0x4242, "ok.test", w.A)


@pytest.mark.parametrize("rcode", range(16))
def test_header_only_error_replies_match_any_question(rcode: int) -> None:
    header_only = w.parse_response(build(flags=0x8180 | rcode, questions=()))
    matched = w.matches(header_only, 0x4242, "whatever.test", w.AAAA)
    assert matched == (rcode in (w.SERVFAIL, w.NOTIMP, w.REFUSED))
    assert not w.matches(header_only, 0x4243, "whatever.test", w.AAAA)
    # Only a bare header: with anything after it the question check applies.
    padded = w.parse_response(build(flags=0x8180 | rcode, questions=()) + b"\x00")
    assert not w.matches(padded, 0x4242, "whatever.test", w.AAAA)


def test_addresses_in_order_with_duplicates() -> None:
    reply = w.parse_response(
        build(
            answers=[
                rr("ok.test.", w.A, "192.0.2.3", ttl=50),
                rr("ok.test.", w.A, "192.0.2.1", ttl=70),
                rr("ok.test.", w.A, "192.0.2.3", ttl=60),
            ]
        )
    )
    assert w.addresses(reply, "ok.test", w.A) == w.Answer(
        ("192.0.2.3", "192.0.2.1", "192.0.2.3"), "ok.test", 50
    )


def test_addresses_follow_cnames_in_order() -> None:
    # glibc §15 case 51: c1 -> c2 -> c3, A and AAAA at c3; canonical name c3.test.
    for rdtype, address in ((w.A, "192.0.2.51"), (w.AAAA, "2001:db8::51")):
        reply = w.parse_response(
            build(
                questions=[("c1.test.", rdtype, 1)],
                answers=[
                    rr("c1.test.", w.CNAME, "c2.test.", ttl=300),
                    rr("c2.test.", w.CNAME, "c3.test.", ttl=100),
                    rr("c3.test.", rdtype, address, ttl=200),
                ],
            )
        )
        assert w.addresses(reply, "c1.test", rdtype) == w.Answer((address,), "c3.test", 100)


def test_cname_owner_is_not_checked() -> None:
    # glibc follows any CNAME in the answer section, whoever owns it.
    reply = w.parse_response(
        build(
            answers=[
                rr("unrelated.test.", w.CNAME, "target.test."),
                rr("target.test.", w.A, "192.0.2.7"),
            ]
        )
    )
    assert w.addresses(reply, "ok.test", w.A).addresses == ("192.0.2.7",)


def test_cname_only_gives_no_address() -> None:
    # glibc §15 case 52.
    reply = w.parse_response(build(answers=[rr("ok.test.", w.CNAME, "elsewhere.test.")]))
    assert w.addresses(reply, "ok.test", w.A) == w.Answer((), "elsewhere.test", None)


def test_owner_mismatch_is_ignored() -> None:
    # glibc §15 case 53: an A/AAAA owned by another name is not an address.
    reply = w.parse_response(
        build(
            answers=[
                rr("other.test.", w.A, "192.0.2.53"),
                rr("ok.test.", w.A, "192.0.2.54"),
            ]
        )
    )
    assert w.addresses(reply, "ok.test", w.A).addresses == ("192.0.2.54",)
    only_other = w.parse_response(build(answers=[rr("other.test.", w.A, "192.0.2.53")]))
    assert w.addresses(only_other, "ok.test", w.A).addresses == ()
    # After a CNAME the query name itself no longer matches.
    moved = w.parse_response(
        build(
            answers=[
                rr("ok.test.", w.CNAME, "next.test."),
                rr("ok.test.", w.A, "192.0.2.55"),
                rr("next.test.", w.A, "192.0.2.56"),
            ]
        )
    )
    assert w.addresses(moved, "ok.test", w.A).addresses == ("192.0.2.56",)


def test_answers_of_another_type_or_length_are_skipped() -> None:
    reply = w.parse_response(
        build(
            answers=[
                rr("ok.test.", w.AAAA, "2001:db8::1"),
                rr("ok.test.", w.A, b"\xc0\x00\x02\x01\x00"),  # 5 octets: kept raw
                rr("ok.test.", 16, b"\x03txt"),
                rr("ok.test.", w.A, "192.0.2.9", rclass=3),  # class not checked
            ]
        )
    )
    assert reply.answers[1].data == b"\xc0\x00\x02\x01\x00"
    assert w.addresses(reply, "ok.test", w.A).addresses == ("192.0.2.9",)
    assert w.addresses(reply, "ok.test", w.AAAA).addresses == ("2001:db8::1",)
    assert w.addresses(reply, "ok.test", 16).addresses == ()


def test_names_compare_case_insensitively() -> None:
    reply = w.parse_response(
        build(
            questions=[("Mixed.Case.TEST.", w.A, 1)],
            answers=[
                rr("MIXED.case.test.", w.CNAME, "Target.TEST."),
                rr("target.test.", w.A, "192.0.2.5"),
            ],
        )
    )
    assert w.matches(reply, 0x4242, "mixed.CASE.test", w.A)
    answer = w.addresses(reply, "mixed.case.test", w.A)
    assert answer == w.Answer(("192.0.2.5",), "Target.TEST", 300)


def test_canonical_name_as_glibc_keeps_it() -> None:
    reply = w.parse_response(
        build(
            questions=[("Ok.Test.", w.A, 1)],
            answers=[
                rr("ok.test.", w.CNAME, "good.test."),
                rr("good.test.", w.CNAME, "bad\\name.test."),  # not a host name
                rr("bad\\name.test.", w.A, "192.0.2.1"),
                rr("bad\\name.test.", w.CNAME, "late.test."),  # after the first address
                rr("late.test.", w.A, "192.0.2.2", ttl=10),
            ],
        )
    )
    answer = w.addresses(reply, "ok.test", w.A)
    assert answer == w.Answer(("192.0.2.1", "192.0.2.2"), "good.test", 10)
    no_cname = w.parse_response(
        build(questions=[("Ok.Test.", w.A, 1)], answers=[rr("ok.test.", w.A, "192.0.2.1")])
    )
    assert w.addresses(no_cname, "ok.test", w.A).canonical == "Ok.Test"


def test_a_query_name_that_is_not_a_host_name_gives_nothing() -> None:
    reply = w.parse_response(
        build(questions=[("-lead.test.", w.A, 1)], answers=[rr("-lead.test.", w.A, "192.0.2.1")])
    )
    assert w.addresses(reply, "-lead.test", w.A).addresses == ()


def test_ttl_is_the_chain_minimum() -> None:
    reply = w.parse_response(
        build(
            answers=[
                rr("ok.test.", w.CNAME, "a.test.", ttl=30),
                rr("a.test.", w.A, "192.0.2.1", ttl=300),
                rr("zzz.test.", w.CNAME, "b.test.", ttl=5),  # after the addresses, leads nowhere
            ]
        )
    )
    assert w.addresses(reply, "ok.test", w.A).ttl == 30
    top_bit = w.parse_response(build(answers=[rr("ok.test.", w.A, "192.0.2.1", ttl=2**31)]))
    assert top_bit.answers[0].ttl == 0  # RFC 2181 §8
    assert w.addresses(top_bit, "ok.test", w.A).ttl == 0


def test_negative_ttl() -> None:
    def negative(soa_ttl: int, minimum: int) -> int | None:
        reply = build(
            flags=0x8183,
            authority=[("test.", w.SOA, 1, soa_ttl, soa_rdata(minimum))],
        )
        return w.negative_ttl(w.parse_response(reply))

    assert negative(3600, 300) == 300
    assert negative(60, 300) == 60
    assert w.negative_ttl(w.parse_response(build(flags=0x8183))) is None
    assert w.negative_ttl(w.parse_response(build(authority=[rr("test.", 2, "ns.test.")]))) is None


def test_lame_reply_fields() -> None:
    # glibc's "lame" check reads these header fields (notes §5).
    lame = w.parse_response(build(flags=0x8000))
    assert (lame.rcode, lame.ancount, lame.aa, lame.ra, lame.arcount) == (0, 0, False, False, 0)
    with_opt = w.parse_response(build(flags=0x8000, additional=[(".", w.OPT, 1232, 0, b"")]))
    assert with_opt.arcount == 1
    assert with_opt.additional == ()


def test_opt_record_rules() -> None:
    opt = (".", w.OPT, 1232, 0, b"")
    for bad in (
        {"answers": [opt]},
        {"authority": [opt]},
        {"additional": [opt, opt]},
        {"additional": [("x.", w.OPT, 1232, 0, b"")]},
        {"additional": [(".", w.OPT, 1232, 0, b"\x00\x0a\x00\x05abc")]},
        {"additional": [(".", w.OPT, 1232, 0, b"\x00\x0a\x00")]},
    ):
        with pytest.raises(w.WireError):
            w.parse_response(build(**bad))  # type: ignore[arg-type]
    fine = w.parse_response(build(additional=[rr("x.test.", w.A, "192.0.2.1"), opt]))
    assert [r.name for r in fine.additional] == ["x.test."]
    assert fine.edns == w.Edns(1232, 0, False, ())


def test_cname_and_soa_must_fill_their_rdata() -> None:
    for record in (
        rr("ok.test.", w.CNAME, encode_name("t.test.") + b"\x00"),
        rr("ok.test.", w.CNAME, encode_name("t.test.")[:-1]),
        ("test.", w.SOA, 1, 60, soa_rdata(5) + b"\x00"),
        ("test.", w.SOA, 1, 60, soa_rdata(5)[:-1]),
    ):
        with pytest.raises(w.WireError):
            w.parse_response(build(answers=[record]))


# -------------------------------------------------------------- HTTPS records


def https(*records: RR, question: str = "svc.test.") -> w.Message:
    return w.parse_response(build(questions=[(question, w.HTTPS, 1)], answers=records))


H2 = (w.KEY_ALPN, b"\x02h2")


def test_service_and_alias_modes() -> None:
    reply = https(
        rr("svc.test.", w.HTTPS, svcb_rdata(2, ".", [H2, (w.KEY_PORT, b"\x01\xbb")]), ttl=300),
        rr("svc.test.", w.HTTPS, svcb_rdata(1, "alt.test.", [H2]), ttl=200),
    )
    found = w.services(reply, "svc.test")
    assert found == w.ServiceAnswer(
        "svc.test.",
        (),
        (w.Service(2, ".", alpn=("h2",), port=443), w.Service(1, "alt.test.", alpn=("h2",))),
        200,
        False,
    )
    alias = https(
        rr("svc.test.", w.HTTPS, svcb_rdata(0, "pool.test.", [H2])),
        rr("svc.test.", w.HTTPS, svcb_rdata(1, ".", [H2])),
    )
    found = w.services(alias, "svc.test")
    assert found.aliases == (w.Service(0, "pool.test.", alpn=("h2",)),)
    assert found.services == ()  # RFC 9460 §2.4.1: ServiceMode ignored beside AliasMode
    nothing = https()
    assert w.services(nothing, "svc.test") == w.ServiceAnswer("svc.test.", (), (), None, False)


def test_services_follow_cnames_and_check_owners() -> None:
    reply = https(
        rr("other.test.", w.HTTPS, svcb_rdata(1, ".", [H2])),  # another owner: skipped
        rr("svc.test.", w.CNAME, "cdn.test.", ttl=100),
        rr("svc.test.", w.HTTPS, svcb_rdata(1, ".", [H2])),  # the chain moved on
        rr("CDN.test.", w.HTTPS, svcb_rdata(1, ".", [(w.KEY_ALPN, b"\x02h3")]), ttl=500),
    )
    found = w.services(reply, "svc.test")
    assert found.owner == "CDN.test."
    assert found.services == (w.Service(1, ".", alpn=("h3",)),)
    assert found.ttl == 100
    cname_only = https(rr("svc.test.", w.CNAME, "cdn.test."))
    assert w.services(cname_only, "svc.test") == w.ServiceAnswer("cdn.test.", (), (), None, False)


@pytest.mark.parametrize(
    ("params", "why"),
    [
        ([(w.KEY_PORT, b"\x01\xbb"), H2], "keys not increasing"),
        ([H2, H2], "duplicate key"),
        ([(w.KEY_ALPN, b"")], "empty alpn"),
        ([(w.KEY_ALPN, b"\x00")], "empty alpn-id"),
        ([(w.KEY_ALPN, b"\x03h2")], "alpn-id past the value"),
        ([H2, (w.KEY_NO_DEFAULT_ALPN, b"x")], "no-default-alpn with a value"),
        ([(w.KEY_PORT, b"\x01")], "port of 1 octet"),
        ([(w.KEY_PORT, b"\x00\x01\x02")], "port of 3 octets"),
        ([(w.KEY_IPV4HINT, b"")], "empty ipv4hint"),
        ([(w.KEY_IPV4HINT, b"\x01\x02\x03\x04\x05")], "ipv4hint not a multiple of 4"),
        ([(w.KEY_IPV6HINT, b"\x00" * 15)], "ipv6hint not a multiple of 16"),
        ([(w.KEY_ECH, b"")], "empty ech"),
        ([(w.KEY_ECH, b"\x00\x03abc")], "ECHConfigList shorter than 4 octets"),
        ([(w.KEY_ECH, b"\x00\x05abcd")], "ECHConfigList length wrong"),
        ([(w.KEY_MANDATORY, b""), H2], "empty mandatory"),
        ([(w.KEY_MANDATORY, b"\x00\x01\x00"), H2], "odd mandatory"),
        ([(w.KEY_MANDATORY, b"\x00\x00\x00\x01"), H2], "mandatory lists itself"),
        ([(w.KEY_MANDATORY, b"\x00\x03\x00\x01"), H2, (3, b"\x00\x01")], "mandatory unsorted"),
        ([(w.KEY_MANDATORY, b"\x00\x01\x00\x01"), H2], "mandatory duplicate"),
    ],
)
def test_malformed_params_reject_the_rrset(params: list[tuple[int, bytes]], why: str) -> None:
    good = rr("svc.test.", w.HTTPS, svcb_rdata(1, ".", [H2]))
    bad = rr("svc.test.", w.HTTPS, svcb_rdata(2, ".", params))
    reply = https(good, bad)
    assert reply.answers[1].data == bad[4]  # kept raw, the message is fine
    assert w.services(reply, "svc.test") == w.ServiceAnswer("svc.test.", (), (), 300, True)


def test_malformed_framing_rejects_the_rrset() -> None:
    valid = svcb_rdata(1, "t.test.", [H2])
    for rdata in (
        valid[:1],  # no room for the priority
        valid[:5],  # target cut short
        valid[:-1],  # param value cut short
        valid + b"\x00",  # a param header cut short
        struct.pack("!H", 1) + b"\xc0\x0c",  # a compressed target (RFC 9460 §2.2)
        svcb_rdata(0, ".", [(w.KEY_ALPN, b"\x00")]),  # AliasMode params are checked too
    ):
        reply = https(rr("svc.test.", w.HTTPS, rdata))
        assert reply.answers[0].data == rdata
        assert w.services(reply, "svc.test").malformed


def test_inconsistent_records_are_dropped_alone() -> None:
    reply = https(
        rr("svc.test.", w.HTTPS, svcb_rdata(1, ".", [(w.KEY_NO_DEFAULT_ALPN, b"")])),
        rr("svc.test.", w.HTTPS, svcb_rdata(2, ".", [(w.KEY_MANDATORY, b"\x00\x03"), H2])),
        rr("svc.test.", w.HTTPS, svcb_rdata(3, ".", [(w.KEY_MANDATORY, b"\x00\x01"), H2])),
    )
    services = [record.data for record in reply.answers]
    assert all(isinstance(s, w.Service) for s in services)
    assert [s.self_consistent() for s in services if isinstance(s, w.Service)] == [
        False,
        False,
        True,
    ]
    found = w.services(reply, "svc.test")
    assert not found.malformed
    assert found.services == (w.Service(3, ".", alpn=("h2",), mandatory=(1,)),)


def test_unknown_keys_and_alpn_octets() -> None:
    params = [
        (w.KEY_ALPN, b"\x02h2\x03\xff,\\"),
        (7, b"/q{?dns}"),
        (65535, b""),
    ]
    service = https(rr("svc.test.", w.HTTPS, svcb_rdata(1, ".", params))).answers[0].data
    assert isinstance(service, w.Service)
    assert service.alpn == ("h2", "\xff,\\")
    assert service.alpn[1].encode("latin-1") == b"\xff,\\"
    assert service.other == {7: b"/q{?dns}", 65535: b""}
    # An SVCB query reads SVCB records the same way.
    svcb = w.parse_response(
        build(
            questions=[("_dns.resolver.arpa.", w.SVCB, 1)],
            answers=[rr("_dns.resolver.arpa.", w.SVCB, svcb_rdata(1, "dns.test.", [H2]))],
        )
    )
    assert w.services(svcb, "_dns.resolver.arpa", w.SVCB).services == (
        w.Service(1, "dns.test.", alpn=("h2",)),
    )
    assert w.services(svcb, "_dns.resolver.arpa").services == ()


def test_hostname_ok_is_res_hnok() -> None:
    for good in ("ok.test", "ok.test.", "a_b.c-d", "x", ".", "", "1.2.3", "a-", "b.-c"):
        assert w.hostname_ok(good), good
    for bad in ("-lead.test", "a..b", "sp ace", "a\\.b", "é", "a.b..", "a" * 64, "x@y"):
        assert not w.hostname_ok(bad), bad
    assert w.hostname_ok(".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 61]))
    assert not w.hostname_ok(".".join(["a" * 63, "b" * 63, "c" * 63, "d" * 62]))


# ---------------------------------------------------------------------- speed


def test_speed_report(capsys: pytest.CaptureFixture[str]) -> None:
    """Parse times per message, ours and dnspython's (printed, not asserted)."""
    query = dns.message.make_query("www.example.com.", "A", use_edns=0, payload=1232)
    a_reply = response(query, dns.rrset.from_text("www.example.com.", 300, "IN", "A", "192.0.2.1"))
    a_reply.use_edns(0, 0, 1232)
    query = dns.message.make_query("www.example.com.", "AAAA", use_edns=0, payload=1232)
    aaaa_reply = response(
        query, dns.rrset.from_text("www.example.com.", 300, "IN", "AAAA", "2001:db8::1")
    )
    aaaa_reply.use_edns(0, 0, 1232)
    query = dns.message.make_query("www.example.com.", "HTTPS", use_edns=0, payload=1232)
    https_reply = response(
        query,
        dns.rrset.from_text(
            "www.example.com.",
            300,
            "IN",
            "HTTPS",
            '1 . alpn="h3,h2" ipv4hint=192.0.2.1 ipv6hint=2001:db8::1',
        ),
    )
    https_reply.use_edns(0, 0, 1232)
    lines = []
    for label, reply in (("A", a_reply), ("AAAA", aaaa_reply), ("HTTPS", https_reply)):
        wire: bytes = reply.to_wire()
        ours = (
            min(timeit.repeat(functools.partial(w.parse_response, wire), number=2000, repeat=5))
            / 2000
        )
        theirs = (
            min(timeit.repeat(functools.partial(dns.message.from_wire, wire), number=200, repeat=5))
            / 200
        )
        lines.append(
            f"{label:5} answer, {len(wire):3} octets: parse_response {ours * 1e6:5.1f} us, "
            f"dnspython from_wire {theirs * 1e6:6.1f} us ({theirs / ours:.0f}x)"
        )
    message = w.parse_response(a_reply.to_wire())
    build_us = (
        min(timeit.repeat(lambda: w.build_query("www.example.com", w.A, ident=1), number=2000))
        / 2000
        * 1e6
    )
    read_us = (
        min(timeit.repeat(lambda: w.addresses(message, "www.example.com", w.A), number=2000))
        / 2000
        * 1e6
    )
    lines.append(f"build_query {build_us:.1f} us, addresses {read_us:.1f} us")
    with capsys.disabled():
        print("\n" + "\n".join(lines))
