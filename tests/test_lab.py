"""The network lab itself (`connectbyname.testing.lab` and its DNS server): each scripted
answer as glibc's ``getaddrinfo`` sees it inside a namespace, and as dnspython's
resolver does, checked against the rows of the glibc notes' test table (verified on
Debian 12, glibc 2.36) where one fits; the namespace's hygiene (nothing left behind on
any path, stale namespaces swept, a clear reason where none can be made).

The probes below run *inside* a namespace (``lab.call``), in a process of their own:
each one runs a whole group of cases, each case on a fresh thread (glibc keeps some
resolver state per thread), concurrently, so a file of cases costs one Python start.
Results are JSON: addresses, or the ``gaierror`` code, and the elapsed time.
"""

from __future__ import annotations

import base64
import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from connectbyname.testing import lab as lab_module
from connectbyname.testing import plugin
from connectbyname.testing.dnsserver import (
    DROP,
    NODATA,
    REFUSED,
    SERVFAIL,
    DNSConfig,
    Reply,
    nat64_address,
    svcb,
)
from connectbyname.testing.lab import Lab, LabCallError, LabUnavailable, Namespace

FAMILIES = {"U": socket.AF_UNSPEC, "4": socket.AF_INET, "6": socket.AF_INET6}
# An ECHConfigList: its length, then one config (version 0xfe0d, 4 bytes of contents).
ECH = base64.b64encode(b"\x00\x08\xfe\x0d\x00\x04\x01\x02\x03\x04").decode()

# --------------------------------------------------------------------------- probes
# Module-level functions: `Namespace.call` runs them inside by reference.


def _getaddrinfo(name: str, family: str, canonname: bool = False) -> dict[str, Any]:
    flags = socket.AI_CANONNAME if canonname else 0
    started = time.monotonic()
    try:
        # Bytes: glibc sees the name as written (str would go through Python's codec).
        infos = socket.getaddrinfo(
            name.encode(), 80, FAMILIES[family], socket.SOCK_STREAM, 0, flags
        )
    except socket.gaierror as exc:
        return {"error": exc.errno, "elapsed": time.monotonic() - started}
    return {
        "addresses": [info[4][0] for info in infos],
        "canon": infos[0][3],
        "elapsed": time.monotonic() - started,
    }


def gai_cases(cases: dict[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """``{label: [name, family, canonname?]}`` -> ``{label: result}``, each case on its
    own thread, all at once."""
    results: dict[str, dict[str, Any]] = {}

    def run(label: str, args: list[Any]) -> None:
        results[label] = _getaddrinfo(*args)

    threads = [threading.Thread(target=run, args=item) for item in cases.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def gai_in_order(cases: list[list[Any]]) -> list[dict[str, Any]]:
    """The cases one after the other in one thread (for query-order checks)."""
    return [_getaddrinfo(*case) for case in cases]


def dnspython_cases(server: str, cases: dict[str, list[str]]) -> dict[str, Any]:
    """``{label: [name, type]}`` asked of ``server`` with dnspython's stub resolver:
    each gives its records' text (sorted), or the exception's class name."""
    import dns.resolver

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server]
    resolver.timeout, resolver.lifetime = 1.0, 3.0
    results: dict[str, Any] = {}
    for label, (name, rdtype) in cases.items():
        try:
            answer = resolver.resolve(name, rdtype)
        except Exception as exc:
            results[label] = type(exc).__name__
        else:
            results[label] = sorted(rdata.to_text() for rdata in answer)
            if answer.rrset is not None and answer.rrset.ttl != 60:  # not the default
                results[label].append(f"ttl={answer.rrset.ttl}")
    return results


def https_records(server: str, name: str, rdtype: str = "HTTPS") -> list[dict[str, Any]]:
    """The HTTPS (or SVCB) records of ``name`` through dnspython, field by field."""
    import dns.resolver
    from dns.rdtypes.svcbbase import ParamKey

    resolver = dns.resolver.Resolver(configure=False)
    resolver.nameservers = [server]
    records = []
    for rdata in resolver.resolve(name, rdtype):
        params = rdata.params
        record: dict[str, Any] = {"priority": rdata.priority, "target": rdata.target.to_text()}
        if ParamKey.ALPN in params:
            record["alpn"] = [value.decode() for value in params[ParamKey.ALPN].ids]
        if ParamKey.PORT in params:
            record["port"] = params[ParamKey.PORT].port
        if ParamKey.IPV4HINT in params:
            record["ipv4hint"] = list(params[ParamKey.IPV4HINT].addresses)
        if ParamKey.IPV6HINT in params:
            record["ipv6hint"] = list(params[ParamKey.IPV6HINT].addresses)
        if ParamKey.ECH in params:
            record["ech"] = base64.b64encode(params[ParamKey.ECH].ech).decode()
        if ParamKey.MANDATORY in params:
            keys = params[ParamKey.MANDATORY].keys
            record["mandatory"] = [ParamKey.to_text(key).lower() for key in keys]
        record["no-default-alpn"] = ParamKey.NO_DEFAULT_ALPN in params
        records.append(record)
    return sorted(records, key=lambda record: record["priority"])


def nat64_probe(name: str, port: int) -> dict[str, Any]:
    """In an IPv6-only namespace: what glibc says for ipv4only.arpa and ``name``, and a
    real HTTP exchange through the engine and through the standard library."""
    import connectbyname

    result: dict[str, Any] = {
        "ipv4only": _getaddrinfo("ipv4only.arpa", "6"),
        "name": _getaddrinfo(name, "6"),
    }
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        result["ipv4"] = "connected"
    except OSError as exc:
        result["ipv4"] = exc.errno
    with connectbyname.connect_by_name(name, port, timeout=5) as connection:
        connection.socket.sendall(f"GET / HTTP/1.0\r\nHost: {name}\r\n\r\n".encode())
        result["engine_reply"] = connection.socket.recv(100).decode(errors="replace")
        result["engine_remote"] = connection.remote_address[0]
    with socket.create_connection((name, port), timeout=5) as sock:
        result["stdlib_remote"] = sock.getpeername()[0]
    return result


def race_probe(name: str, port: int) -> dict[str, Any]:
    """``name`` through the engine, then through ``socket.create_connection`` (1 s
    connect timeout): where each connected, and how long it took."""
    import connectbyname

    started = time.monotonic()
    with connectbyname.connect_by_name(name, port, timeout=5) as connection:
        engine = {
            "remote": connection.remote_address[0],
            "elapsed": time.monotonic() - started,
            "attempts": [attempt.address[0] for attempt in connection.attempts],
        }
    started = time.monotonic()
    with socket.create_connection((name, port), timeout=1) as sock:
        stock = {"remote": sock.getpeername()[0], "elapsed": time.monotonic() - started}
    return {"engine": engine, "stock": stock}


def fail_inside() -> None:
    raise KeyError("raised inside")


def echo(*args: Any, **kwargs: Any) -> dict[str, Any]:
    return {"args": list(args), "kwargs": kwargs, "pid": os.getpid()}


# --------------------------------------------------------------------------- helpers


def addresses(result: dict[str, Any]) -> list[str]:
    assert "addresses" in result, f"expected addresses, got {result}"
    return list(result["addresses"])


def error(result: dict[str, Any]) -> int:
    assert "error" in result, f"expected an error, got {result}"
    return int(result["error"])


def asked(lab: Lab, name: str) -> list[tuple[str, str]]:
    """(type, transport) of each query for ``name``, in arrival order."""
    assert lab.dns is not None
    return [(query.type or "", query.transport) for query in lab.dns.queries(name)]


def require_lab() -> None:
    """Skip (or fail, where the lab is required) as the fixtures do, for tests that make
    namespaces themselves."""
    reason = lab_module.unavailable_reason()
    if reason is not None:
        plugin._lab_unavailable(reason)


def namespaces() -> set[str]:
    return {path.name for path in lab_module.NETNS_RUN_DIR.glob("*")}


# --------------------------------------------------------------------------- glibc


def test_each_scripted_answer_as_glibc_and_dnspython_see_it(network_lab: Any) -> None:
    """One namespace, one server, every kind of answer; glibc asks with ``timeout:1
    attempts:2``. The row numbers are those of the glibc notes' test table."""
    lab = network_lab(
        dns={
            "dual.test": {"AAAA": Reply("::1", delay=0.3), "A": "127.0.0.1"},
            "aonly.test": "192.0.2.1",
            "ttl.test": Reply("192.0.2.11", ttl=1234),
            "nodata.test": NODATA,
            "sf.test": SERVFAIL,
            "ref.test": REFUSED,
            "bare-refused.test": Reply(rcode="REFUSED", header_only=True),
            "formerr.test": Reply(rcode="FORMERR"),
            "lame.test": Reply(authoritative=False, recursion_available=False, soa=False),
            "a-ok-aaaa-sf.test": {"A": "192.0.2.2", "AAAA": SERVFAIL},
            "a-nx-aaaa-ok.test": {"A": Reply(rcode="NXDOMAIN"), "AAAA": "2001:db8::3"},
            "tc.test": {
                "A": Reply(["192.0.2.4", "192.0.2.5"], truncate="partial"),
                "AAAA": Reply("2001:db8::4", truncate=True),
            },
            "c1.test": {"CNAME": "c2.test."},
            "c2.test": {"CNAME": "c3.test."},
            "c3.test": ["192.0.2.6", "2001:db8::6"],
            "conly.test": {"CNAME": "nowhere.test."},
            "wrong-id.test": Reply(["192.0.2.7"], delay=0.1, stray=("wrong-id", "junk")),
            "other-port.test": Reply(["192.0.2.8"], delay=0.1, stray=("other-port",)),
            "stray-only.test": Reply(["192.0.2.9"], drop=True, stray=("wrong-question",)),
        },
        options="timeout:1 attempts:2",
    )
    U, V4, V6 = "U", "4", "6"
    cases = {
        "slow-aaaa": ["dual.test", U],
        "aonly-U": ["aonly.test", U],
        "aonly-6": ["aonly.test", V6],
        "nodata-U": ["nodata.test", U],
        "nodata-4": ["nodata.test", V4],
        "nx-U": ["nx.test", U],
        "sf-U": ["sf.test", U],
        "ref-4": ["ref.test", V4],
        "bare-refused-U": ["bare-refused.test", U],
        "formerr-U": ["formerr.test", U],
        "lame-U": ["lame.test", U],
        "a-ok-aaaa-sf-U": ["a-ok-aaaa-sf.test", U],
        "a-ok-aaaa-sf-6": ["a-ok-aaaa-sf.test", V6],
        "a-nx-aaaa-ok-U": ["a-nx-aaaa-ok.test", U],
        "tc-U": ["tc.test", U],
        "cname-U": ["c1.test", U, True],
        "conly-U": ["conly.test", U],
        "conly-4": ["conly.test", V4],
        "wrong-id-4": ["wrong-id.test", V4],
        "other-port-4": ["other-port.test", V4],
        "stray-only-4": ["stray-only.test", V4],
        "localhost-U": ["localhost", U],
    }
    seen = lab.call(gai_cases, cases)
    assert lab.dns is not None
    server = lab.dns.host

    # Slow AAAA: both families, once the AAAA answer came (0.3 s).
    assert sorted(addresses(seen["slow-aaaa"])) == ["127.0.0.1", "::1"]
    assert seen["slow-aaaa"]["elapsed"] >= 0.29
    # 19: A only.
    assert addresses(seen["aonly-U"]) == ["192.0.2.1"]
    assert error(seen["aonly-6"]) == socket.EAI_NODATA
    # 17: NOERROR without records (SOA in the authority section) is NODATA.
    assert error(seen["nodata-U"]) == socket.EAI_NODATA
    assert error(seen["nodata-4"]) == socket.EAI_NODATA
    assert error(seen["nx-U"]) == socket.EAI_NONAME
    # 21: SERVFAIL and REFUSED (even as a bare header) fail at once, attempts x servers.
    for label in ("sf-U", "ref-4", "bare-refused-U"):
        assert error(seen[label]) == socket.EAI_AGAIN, label
        assert seen[label]["elapsed"] < 0.9, label  # no wait for the 1 s timeout
    assert asked(lab, "sf.test").count(("A", "udp")) == 2
    assert asked(lab, "sf.test").count(("AAAA", "udp")) == 2
    assert asked(lab, "ref.test") == [("A", "udp")] * 2
    # 29: FORMERR is "no such name"; 18: a lame answer is a failure to try again.
    assert error(seen["formerr-U"]) == socket.EAI_NONAME
    assert error(seen["lame-U"]) == socket.EAI_AGAIN
    # 20: A ok, AAAA SERVFAIL; 25: A NXDOMAIN, AAAA ok.
    assert addresses(seen["a-ok-aaaa-sf-U"]) == ["192.0.2.2"]
    assert error(seen["a-ok-aaaa-sf-6"]) == socket.EAI_AGAIN
    assert asked(lab, "a-ok-aaaa-sf.test").count(("AAAA", "udp")) >= 2
    assert addresses(seen["a-nx-aaaa-ok-U"]) == ["2001:db8::3"]
    # 30: TC=1 over UDP (empty, or partial) -> the whole answer over TCP.
    assert sorted(addresses(seen["tc-U"])) == ["192.0.2.4", "192.0.2.5", "2001:db8::4"]
    tc = asked(lab, "tc.test")
    # Per transport: the server logs its UDP and TCP queries as each arrives, and the
    # A query's TCP retry may overtake the AAAA datagram still queued (a loaded machine).
    assert tc[0][1] == "udp"
    assert sorted(q for q in tc if q[1] == "udp") == [("A", "udp"), ("AAAA", "udp")]
    assert sorted(q for q in tc if q[1] == "tcp") == [("A", "tcp"), ("AAAA", "tcp")]
    # 51: a CNAME chain in one answer; the canonical name is the chain's end.
    assert sorted(addresses(seen["cname-U"])) == ["192.0.2.6", "2001:db8::6"]
    assert seen["cname-U"]["canon"] == "c3.test"
    # 52: only a CNAME: NONAME for AF_UNSPEC, NODATA for AF_INET.
    assert error(seen["conly-U"]) == socket.EAI_NONAME
    assert error(seen["conly-4"]) == socket.EAI_NODATA
    # 32: stray datagrams (a wrong ID, junk, another source port) are ignored and the
    # real answer 0.1 s later taken; a wrong question alone ends in a timeout.
    assert addresses(seen["wrong-id-4"]) == ["192.0.2.7"]
    assert addresses(seen["other-port-4"]) == ["192.0.2.8"]
    assert error(seen["stray-only-4"]) == socket.EAI_AGAIN
    assert seen["stray-only-4"]["elapsed"] >= 1.9  # timeout:1 x attempts:2
    # 1: the hosts file answers localhost; no query for it.
    assert addresses(seen["localhost-U"]) == ["::1", "127.0.0.1"]
    assert asked(lab, "localhost") == []

    # The query log: what glibc sends, as received.
    first = lab.dns.queries("dual.test")
    assert {q.type for q in first} == {"A", "AAAA"}
    assert all(q.source == "127.0.0.1" and q.server == "127.0.0.1:53" for q in first)
    assert all(q.action == "answer" and q.rcode == "NOERROR" for q in first)
    assert [q.action for q in lab.dns.queries("tc.test", transport="udp")] == ["truncate"] * 2
    assert [q.action for q in lab.dns.queries("stray-only.test")] == ["drop"] * 2

    # The same server through dnspython's resolver, as a second client.
    by_dnspython = lab.call(
        dnspython_cases,
        server,
        {
            "slow-aaaa": ["dual.test", "AAAA"],
            "a": ["dual.test", "A"],
            "ttl": ["ttl.test", "A"],
            "nodata": ["nodata.test", "A"],
            "nx": ["nx.test", "A"],
            "servfail": ["sf.test", "A"],
            "truncated": ["tc.test", "A"],
            "cname": ["c1.test", "A"],
        },
    )
    assert by_dnspython == {
        "slow-aaaa": ["::1"],
        "a": ["127.0.0.1"],
        "ttl": ["192.0.2.11", "ttl=1234"],
        "nodata": "NoAnswer",
        "nx": "NXDOMAIN",
        "servfail": "NoNameservers",
        "truncated": ["192.0.2.4", "192.0.2.5"],
        "cname": ["192.0.2.6"],
    }
    assert ("A", "tcp") in asked(lab, "tc.test")[4:]


def test_the_example_slow_aaaa_and_a_blackholed_ipv6_path(network_lab: Any) -> None:
    """The lab's own example: ``dual.test`` answers A at once and AAAA (``::1``) 0.3 s
    later, 127.0.0.1:P serves HTTP and [::1]:P is blackholed. The engine connects to
    127.0.0.1 without waiting for AAAA; the standard library waits for both answers,
    then for its whole timeout on ::1, and only then tries 127.0.0.1."""
    lab = network_lab(
        dns={"dual.test": {"AAAA": Reply("::1", delay=0.3), "A": "127.0.0.1"}},
        hosts="127.0.0.1 localhost\n192.0.2.50 other.test\n",
        http=["127.0.0.1"],
        blackhole=["::1"],
    )
    seen = lab.call(race_probe, "dual.test", lab.port)
    engine, stock = seen["engine"], seen["stock"]
    assert engine["remote"] == "127.0.0.1"
    assert engine["attempts"] == ["127.0.0.1"]
    assert engine["elapsed"] < 1.0
    assert stock["remote"] == "127.0.0.1"
    assert stock["elapsed"] >= 0.3 + 1.0  # the AAAA answer, then the ::1 timeout
    assert lab.blackholes["::1"].port == lab.http["127.0.0.1"].port == lab.port
    assert lab.dns is not None
    assert {q.type for q in lab.dns.queries("dual.test")} == {"A", "AAAA"}


def test_https_and_svcb_records(network_lab: Any) -> None:
    """HTTPS records in ServiceMode (every SvcParam of RFC 9460 that matters here, two
    priorities) and AliasMode, and SVCB, as dnspython parses them."""
    lab = network_lab(
        dns={
            "svc.test": {
                "HTTPS": [
                    svcb(
                        1,
                        ".",
                        mandatory=["alpn", "port"],
                        alpn=["h2", "h3"],
                        no_default_alpn=True,
                        port=8443,
                        ipv4hint=["127.0.0.1", "192.0.2.1"],
                        ipv6hint="::1",
                        ech=ECH,
                    ),
                    svcb(2, "backup.svc.test.", alpn="http/1.1"),
                ],
                "A": "127.0.0.1",
            },
            "alias.test": {"HTTPS": svcb(0, "svc.test.")},
            "_8443._wss.svc.test": {"SVCB": svcb(1, "svc.test.", alpn="h2", port=8443)},
        },
    )
    assert lab.dns is not None
    service = lab.call(https_records, lab.dns.host, "svc.test")
    assert service == [
        {
            "priority": 1,
            "target": ".",
            "alpn": ["h2", "h3"],
            "port": 8443,
            "ipv4hint": ["127.0.0.1", "192.0.2.1"],
            "ipv6hint": ["::1"],
            "ech": ECH,
            "mandatory": ["alpn", "port"],
            "no-default-alpn": True,
        },
        {
            "priority": 2,
            "target": "backup.svc.test.",
            "alpn": ["http/1.1"],
            "no-default-alpn": False,
        },
    ]
    alias = lab.call(https_records, lab.dns.host, "alias.test")
    assert alias == [{"priority": 0, "target": "svc.test.", "no-default-alpn": False}]
    assert [q.type for q in lab.dns.queries("svc.test")] == ["HTTPS"]


def test_search_list_and_ndots(network_lab: Any) -> None:
    """Rows 38-42 (``search a.example b.example``), and ndots:2 from RES_OPTIONS."""
    lab = network_lab(
        dns={
            "host.a.example": "192.0.2.1",
            "ref.a.example": REFUSED,
            "sf.a.example": SERVFAIL,
            "sf.b.example": "192.0.2.5",
            "x.y.b.example": "192.0.2.9",
            "x.y": "192.0.2.10",
        },
        search=["a.example", "b.example"],
    )
    cases = [["host", "4"], ["nx1", "4"], ["nx2.z", "4"], ["ref", "4"], ["sf", "4"]]
    host, nx1, nx2, ref, sf = lab.call(gai_in_order, cases)
    assert lab.dns is not None

    def names(prefix: str) -> list[str]:
        # In order, each name once (glibc asks each name once per attempt).
        queried = [(q.name or "").lower() for q in lab.dns.queries()]
        return list(dict.fromkeys(name for name in queried if name.startswith(prefix)))

    assert addresses(host) == ["192.0.2.1"]
    assert names("host") == ["host.a.example."]
    assert error(nx1) == socket.EAI_NONAME
    assert names("nx1") == ["nx1.a.example.", "nx1.b.example.", "nx1."]
    assert error(nx2) == socket.EAI_NONAME
    assert names("nx2") == ["nx2.z.", "nx2.z.a.example.", "nx2.z.b.example."]
    assert error(ref) == socket.EAI_NONAME  # REFUSED stops the search
    assert names("ref") == ["ref.a.example.", "ref."]
    assert addresses(sf) == ["192.0.2.5"]  # SERVFAIL does not
    assert names("sf") == ["sf.a.example.", "sf.b.example."]

    # ndots:2: a name with one dot is searched first.
    lab.dns.clear()
    (ndots,) = lab.call(gai_in_order, [["x.y", "4"]], env={"RES_OPTIONS": "ndots:2"})
    assert addresses(ndots) == ["192.0.2.9"]
    assert names("x.y") == ["x.y.a.example.", "x.y.b.example."]


def test_dead_first_nameserver(network_lab: Any) -> None:
    """Rows 34, 36, 37: the first nameserver silent (the answer after its 1 s), or
    answering SERVFAIL (the next at once), or with nothing listening (at once)."""
    lab = network_lab(
        dns=[
            DNSConfig(host="127.0.0.2", default=DROP, names={"sf-first.test": SERVFAIL}),
            DNSConfig(
                host="127.0.0.3",
                names={"ok.test": ["192.0.2.1", "2001:db8::1"], "sf-first.test": "192.0.2.2"},
            ),
        ],
        options="timeout:1",
    )
    dead, alive = lab.dns_servers
    seen = lab.call(gai_cases, {"ok": ["ok.test", "U"], "sf-first": ["sf-first.test", "U"]})
    assert sorted(addresses(seen["ok"])) == ["192.0.2.1", "2001:db8::1"]
    assert 0.9 <= seen["ok"]["elapsed"] < 3.0
    assert {q.type for q in dead.queries("ok.test")} == {"A", "AAAA"}
    assert all(q.action == "drop" for q in dead.queries("ok.test"))
    assert {q.type for q in alive.queries("ok.test")} == {"A", "AAAA"}
    assert addresses(seen["sf-first"]) == ["192.0.2.2"]
    assert seen["sf-first"]["elapsed"] < 0.9

    # Nothing at all on the first address: the kernel refuses, glibc moves on at once.
    lab.ns.write_etc("resolv.conf", "nameserver 127.0.0.4\nnameserver 127.0.0.3\n")
    alive.clear()
    seen = lab.call(gai_cases, {"ok": ["ok.test", "U"]})
    assert sorted(addresses(seen["ok"])) == ["192.0.2.1", "2001:db8::1"]
    assert seen["ok"]["elapsed"] < 0.9
    assert {q.type for q in alive.queries("ok.test")} == {"A", "AAAA"}


def test_ipv6_only_behind_nat64(network_lab: Any) -> None:
    """An IPv6-only namespace whose DNS server does DNS64: ipv4only.arpa gives the
    well-known prefix's two addresses, an IPv4-only name a synthesised AAAA, and since
    that address is on ``lo`` with the server on it, connections really go through."""
    server_v4 = "192.0.2.10"
    synthesised = nat64_address(server_v4)
    assert synthesised == "64:ff9b::c000:20a"
    lab = network_lab(dns={"v4only.test": server_v4}, dns64=True, ipv4=False, http=[synthesised])
    seen = lab.call(nat64_probe, "v4only.test", lab.port)
    assert sorted(addresses(seen["ipv4only"])) == ["64:ff9b::c000:aa", "64:ff9b::c000:ab"]
    assert addresses(seen["name"]) == [synthesised]
    assert seen["ipv4"] == 101  # ENETUNREACH: no IPv4 at all
    assert seen["engine_reply"].startswith("HTTP/1.1 200")
    assert seen["engine_remote"] == synthesised
    assert seen["stdlib_remote"] == synthesised
    assert lab.http[synthesised].request_count == 1
    assert lab.dns is not None
    assert lab.dns.host == "::1"
    assert {q.type for q in lab.dns.queries("ipv4only.arpa")} == {"AAAA"}


# --------------------------------------------------------------------------- hygiene


def test_namespace_is_removed_on_every_path(netns: Any) -> None:
    """A namespace, its /etc/netns folder, work folder and processes go away when the
    block raises; addresses and sockets made inside stay inside; calls report errors."""
    require_lab()
    seen: dict[str, Any] = {}

    def failing_test() -> None:
        with Namespace(hosts="192.0.2.1 inside.test\n", addresses=["192.0.2.1"]) as ns:
            seen.update(name=ns.name, workdir=ns.workdir, sleeper=ns.spawn(["sleep", "60"]))
            assert ns.name in namespaces()
            assert (ns.etc_dir / "hosts").read_text() == "192.0.2.1 inside.test\n"
            # What runs inside sees the namespace's hosts file and addresses.
            inside = ns.python(
                "import socket; print(socket.gethostbyname('inside.test'));"
                "socket.socket().bind(('192.0.2.1', 0))"
            )
            assert inside.check().stdout.strip() == "192.0.2.1"
            # A socket made by run_inside lives inside; this thread is still outside.
            bound = ns.run_inside(lambda: socket.create_server(("192.0.2.1", 0)))
            with bound, socket.socket() as outside:
                with pytest.raises(OSError, match="Cannot assign requested address"):
                    outside.bind(("192.0.2.1", 0))
            raise RuntimeError("the test failed")

    with pytest.raises(RuntimeError, match="the test failed"):
        failing_test()
    assert seen["sleeper"].poll() is not None
    assert seen["name"] not in namespaces()
    assert not (lab_module.NETNS_ETC_DIR / seen["name"]).exists()
    assert not seen["workdir"].exists()

    ns = netns()
    device = ns.add_interface()
    ns.add_address("2001:db8:1::2/64", dev=device)
    ns.add_address("10.9.0.2/24", dev=device)
    shown = ns.ip("-br", "address", "show", "dev", device)
    assert "2001:db8:1::2/64" in shown
    assert "10.9.0.2/24" in shown
    with pytest.raises(LabCallError, match="KeyError") as raised:
        ns.call(fail_inside)
    assert "raised inside" in raised.value.remote_traceback
    echoed = ns.call(echo, 1, "two", three=(3,))
    assert echoed.pop("pid") != os.getpid()
    assert echoed == {"args": [1, "two"], "kwargs": {"three": [3]}}


CRASHING_TEST = """
import json, time
from connectbyname.testing.lab import Lab
lab = Lab(dns={"x.test": "192.0.2.1"}, http=["127.0.0.1"]).open()
sleeper = lab.spawn(["sleep", "60"])
pids = [lab.dns.process.pid, sleeper.pid]
print(json.dumps({"name": lab.name, "workdir": str(lab.ns.workdir), "pids": pids}), flush=True)
time.sleep(60)
"""


def _gone(pid: int, timeout: float = 5.0) -> bool:
    """Whether process ``pid`` ends (or is a zombie) within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            return True
        if state in ("Z", "X"):
            return True
        time.sleep(0.02)
    return False


def test_a_killed_test_leaves_nothing_behind() -> None:
    """A process killed (SIGKILL) in the middle of a lab: its DNS server exits by itself,
    and the next sweep removes the namespace, its folders and what still ran inside;
    a namespace whose maker still runs is left alone."""
    require_lab()
    crashing = subprocess.Popen([sys.executable, "-c", CRASHING_TEST], stdout=subprocess.PIPE)
    try:
        assert crashing.stdout is not None
        made = json.loads(crashing.stdout.readline())
    finally:
        crashing.kill()
        crashing.wait()
        if crashing.stdout is not None:
            crashing.stdout.close()
    dns_pid, sleeper_pid = made["pids"]
    assert _gone(dns_pid)  # its standard input closed
    assert made["name"] in namespaces()
    assert not _gone(sleeper_pid, timeout=0)

    live = f"{lab_module.PREFIX}-{os.getpid()}-99999"
    subprocess.run(["ip", "netns", "add", live], check=True)
    try:
        removed = lab_module.sweep_stale()
        assert made["name"] in removed
        assert all(name.startswith(f"{lab_module.PREFIX}-") for name in removed)
        assert live in namespaces()
    finally:
        subprocess.run(["ip", "netns", "delete", live], capture_output=True, check=False)
    assert made["name"] not in namespaces()
    assert not (lab_module.NETNS_ETC_DIR / made["name"]).exists()
    assert not Path(made["workdir"]).exists()
    assert _gone(sleeper_pid)


def test_unavailable_has_a_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without ``ip`` on the PATH the lab says so (and the fixtures skip on it)."""
    monkeypatch.setenv("PATH", "/nonexistent")
    reason = lab_module.unavailable_reason()
    with pytest.raises(LabUnavailable) as raised:
        Namespace().open()
    if os.geteuid() == 0:
        assert "iproute2" in str(reason)
    assert raised.value.reason == reason


def test_fixture_skips_or_fails_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(plugin.LAB_REQUIRED_VARIABLE, raising=False)
    with pytest.raises(pytest.skip.Exception, match="network lab unavailable: why"):
        plugin._lab_unavailable("why")
    monkeypatch.setenv(plugin.LAB_REQUIRED_VARIABLE, "1")
    with pytest.raises(pytest.fail.Exception, match="required"):
        plugin._lab_unavailable("why")


def test_dns_server_without_dnspython_says_how_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from connectbyname.testing import dnsserver

    monkeypatch.setitem(sys.modules, "dns.message", None)
    with pytest.raises(ImportError, match=r"pip install 'connectbyname\[dns\]'"):
        dnsserver.require_dnspython()
