"""The engine's own resolver in the lab: HTTPS records and NAT64 through a real DNS
server, as the system's resolver would see the same configuration."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from connectbyname._dns._wire import EDNS_PAYLOAD
from connectbyname.testing.lab import DNSConfig, Reply, nat64_address, svcb

# A network-specific NAT64 prefix (RFC 6052): unlike the well-known 64:ff9b::/96, it may
# carry any IPv4 address, so the documentation addresses below can be written in it.
PREFIX = "2001:db8:6464::/96"

#: `connect_https`'s resolution delay where the HTTPS record must be seen to be followed
#: (or skipped): the answer is waited for, and the test is about its content.
RECORD_WAIT = 2.0


def connect_https(
    name: str, port: int, timeout: float, resolution_delay: float | None = None
) -> dict[str, Any]:
    """Inside: a connect that will carry HTTPS (so the HTTPS record is asked for).

    A test of what a record says passes a ``resolution_delay`` of seconds
    (`RECORD_WAIT`): the race then waits that long for the HTTPS answer once an address
    has come, where 50 ms is not always enough for the lab's server on a loaded machine
    (it answers each query in turn); with every answer in, the race starts at once."""
    import dataclasses
    import threading
    import time

    from connectbyname._parse import DEFAULT_OPTIONS
    from connectbyname._sync import connect

    options = DEFAULT_OPTIONS
    if resolution_delay is not None:
        options = dataclasses.replace(options, resolution_delay=resolution_delay)
    threads = threading.active_count()
    started = time.monotonic()
    with connect(name, port, options, timeout=timeout, https=True) as conn:
        return {
            "took": time.monotonic() - started,
            "remote": list(conn.remote_address),
            "attempts": [[list(a.address), str(a.outcome)] for a in conn.attempts],
            "threads": threading.active_count() - threads,
        }


def test_https_hints_on_time_start_the_race_while_a_and_aaaa_are_late(network_lab: Any) -> None:
    lab = network_lab(
        dns={
            "late.test": {
                "AAAA": Reply("::1", delay=2.0),
                "A": Reply("127.0.0.1", delay=2.0),
                "HTTPS": svcb(1, ".", alpn=["h2", "http/1.1"], ipv4hint="127.0.0.1"),
            }
        },
        hosts="127.0.0.1 localhost\n",
        http=["127.0.0.1"],
        port=443,
    )
    seen = lab.call(connect_https, "late.test", lab.port, 3.0)
    assert seen["remote"] == ["127.0.0.1", 443]
    assert seen["took"] < 1.2  # the hint, not the answers 2 s late (a loaded margin)
    assert seen["threads"] == 0  # no lookup thread
    types = {q.type for q in lab.dns.queries("late.test")}
    assert types == {"A", "AAAA", "HTTPS"}


def test_an_https_record_port_is_honoured(network_lab: Any) -> None:
    # The record points 443 at the lab's port: the connection goes there.
    lab = network_lab(hosts="127.0.0.1 localhost\n", http=["127.0.0.1"])
    lab.close()  # only for its port: a second lab with the record naming it
    port = lab.port
    lab = network_lab(
        dns={"moved.test": {"A": "127.0.0.1", "HTTPS": svcb(1, ".", port=port)}},
        hosts="127.0.0.1 localhost\n",
        http=["127.0.0.1"],
        port=port,
    )
    seen = lab.call(connect_https, "moved.test", 443, 3.0, RECORD_WAIT)
    assert seen["remote"] == ["127.0.0.1", port]


def test_a_mandatory_key_this_client_cannot_use_skips_the_record(network_lab: Any) -> None:
    lab = network_lab(
        dns={
            "ech.test": {
                "A": Reply("127.0.0.1", delay=0.1),
                # ipv4hint to a dead address: used, the connect would fail or hang.
                "HTTPS": svcb(
                    1,
                    ".",
                    ipv4hint="127.0.0.9",
                    ech="AEn+DQBFKwAgACABWIHUGj4u+PIggYXcR5JF0gYk3dCRioBW8uJq9H4mKAAIAAEAAQABAANAEnB1YmxpYy50bHMtZWNoLmRldgAA",
                    mandatory=["ech"],
                ),
            }
        },
        hosts="127.0.0.1 localhost\n",
        http=["127.0.0.1"],
        port=443,
    )
    seen = lab.call(connect_https, "ech.test", lab.port, 3.0, RECORD_WAIT)
    assert [a[0][0] for a in seen["attempts"]] == ["127.0.0.1"]


def connect_plain(host: str, port: int, timeout: float) -> dict[str, Any]:
    import connectbyname

    with connectbyname.connect_by_name(host, port, timeout=timeout, history=False) as conn:
        return {
            "remote": list(conn.remote_address),
            "family": int(conn.family),
            "attempts": [[list(a.address), str(a.outcome)] for a in conn.attempts],
        }


def ipv6_only_with_a_route(lab: Any) -> None:
    """A global IPv6 address and a default route on a second interface: the host then
    counts as IPv6-only (no IPv4 route at all), as on a NAT64 network."""
    dev = lab.ns.add_interface()
    lab.ns.add_address("2001:db8:64::2/64", dev)
    lab.ns.ip("-6", "route", "add", "default", "dev", dev)


def dns64(names: dict[str, Any], dns64: bool | list[str] = True) -> DNSConfig:
    return DNSConfig(names=names, host="::1", dns64=dns64, nat64_prefix=PREFIX)


def test_nat64_an_ipv4_literal_on_an_ipv6_only_network(network_lab: Any) -> None:
    server_v4 = "192.0.2.10"
    synthesised = nat64_address(server_v4, PREFIX)
    lab = network_lab(dns=dns64({}), ipv4=False, http=[synthesised])
    ipv6_only_with_a_route(lab)
    seen = lab.call(connect_plain, server_v4, lab.port, 3.0)
    assert seen["remote"] == [synthesised, lab.port, 0, 0]
    assert seen["family"] == socket.AF_INET6
    assert {q.type for q in lab.dns.queries("ipv4only.arpa")} == {"AAAA"}
    assert lab.http[synthesised].request_count == 0  # a TCP connect, no request
    # Asked once: the prefix is kept for the answer's TTL (a second call asks nothing).


def test_nat64_an_ipv4_only_name_without_dns64(network_lab: Any) -> None:
    server_v4 = "192.0.2.11"
    synthesised = nat64_address(server_v4, PREFIX)
    # DNS64 for the prefix discovery only: the name's AAAA is NODATA, its A the only
    # answer, and the engine writes it in the prefix itself.
    lab = network_lab(
        dns=dns64({"v4only.test": server_v4}, ["ipv4only.arpa"]), ipv4=False, http=[synthesised]
    )
    ipv6_only_with_a_route(lab)
    seen = lab.call(connect_plain, "v4only.test", lab.port, 3.0)
    assert seen["remote"] == [synthesised, lab.port, 0, 0]


def test_a_record_whose_alpn_set_names_no_tcp_protocol_is_skipped(network_lab: Any) -> None:
    lab = network_lab(
        dns={
            "quic.test": {
                "A": Reply("127.0.0.1", delay=0.1),
                # h3 only: QUIC's endpoint. Used, its hint to a dead address would be tried.
                "HTTPS": svcb(1, ".", alpn=["h3"], no_default_alpn=True, ipv4hint="127.0.0.9"),
            }
        },
        hosts="127.0.0.1 localhost\n",
        http=["127.0.0.1"],
        port=443,
    )
    seen = lab.call(connect_https, "quic.test", lab.port, 3.0, RECORD_WAIT)
    assert [a[0][0] for a in seen["attempts"]] == ["127.0.0.1"]


# -- AliasMode and service targets (RFC 9460 sections 2.4.2, 2.5, 3) ---------------------


def https_lab(network_lab: Any, names: dict[str, Any]) -> Any:
    return network_lab(
        dns=names, hosts="127.0.0.1 localhost\n", http=["127.0.0.1", "127.0.0.2"], port=443
    )


def test_an_alias_mode_record_is_followed_to_its_targets_service(network_lab: Any) -> None:
    # The apex case: the name has an HTTPS alias and no address of its own; the alias
    # target's ServiceMode record names the port.
    lab = network_lab(hosts="127.0.0.1 localhost\n", http=["127.0.0.2"])
    lab.close()  # only for its port
    port = lab.port
    lab = network_lab(
        dns={
            "apex.test": {"HTTPS": svcb(0, "cdn.test.")},
            "cdn.test": {"A": "127.0.0.2", "HTTPS": svcb(1, ".", port=port)},
        },
        hosts="127.0.0.1 localhost\n",
        http=["127.0.0.2"],
        port=port,
    )
    seen = lab.call(connect_https, "apex.test", 443, 3.0)
    assert seen["remote"] == ["127.0.0.2", port]
    assert seen["threads"] == 0
    assert {q.type for q in lab.dns.queries("cdn.test")} == {"HTTPS", "A", "AAAA"}


def test_an_alias_target_without_a_service_record_is_the_endpoint(network_lab: Any) -> None:
    lab = https_lab(
        network_lab,
        {"apex.test": {"HTTPS": svcb(0, "plain.test.")}, "plain.test": {"A": "127.0.0.2"}},
    )
    seen = lab.call(connect_https, "apex.test", 443, 3.0)
    assert seen["remote"] == ["127.0.0.2", 443]


def test_the_alias_target_comes_before_the_names_own_addresses(network_lab: Any) -> None:
    lab = https_lab(
        network_lab,
        {
            "both.test": {"A": "127.0.0.1", "HTTPS": svcb(0, "cdn.test.")},
            "cdn.test": {"A": "127.0.0.2", "HTTPS": svcb(1, ".")},
        },
    )
    seen = lab.call(connect_https, "both.test", 443, 3.0, RECORD_WAIT)
    assert seen["remote"] == ["127.0.0.2", 443]
    assert len(seen["attempts"]) == 1


@pytest.mark.parametrize(
    "records",
    [
        # AliasMode "." says there is no service (RFC 9460 section 2.5.1).
        {"none.test": {"A": "127.0.0.1", "HTTPS": svcb(0, ".")}},
        # A loop is a failed SVCB resolution (section 3): the name's own addresses.
        {
            "none.test": {"A": "127.0.0.1", "HTTPS": svcb(0, "loop.test.")},
            "loop.test": {"A": "127.0.0.2", "HTTPS": svcb(0, "none.test.")},
        },
    ],
    ids=["dot", "loop"],
)
def test_an_alias_chain_that_ends_in_nothing_falls_back_to_the_names_addresses(
    network_lab: Any, records: dict[str, Any]
) -> None:
    lab = https_lab(network_lab, records)
    seen = lab.call(connect_https, "none.test", 443, 3.0)
    assert seen["remote"] == ["127.0.0.1", 443]
    assert len(lab.dns.queries("none.test", "HTTPS")) == 1  # the loop is not gone round


def test_a_service_target_without_hints_is_waited_for(network_lab: Any) -> None:
    # The name has no address; its service's target is the only way in, and its
    # lookups end after the name's own (200 ms later).
    lab = https_lab(
        network_lab,
        {
            "svc.test": {"HTTPS": svcb(1, "real.test.")},
            "real.test": {"A": Reply("127.0.0.2", delay=0.2)},
        },
    )
    seen = lab.call(connect_https, "svc.test", 443, 3.0)
    assert seen["remote"] == ["127.0.0.2", 443]


def test_a_names_queries_go_out_on_one_socket_as_glibcs_do(network_lab: Any) -> None:
    # One socket (one source port) for AAAA, A and HTTPS; the answers are told apart by
    # their IDs, and the one that comes late (AAAA here) still finds its query.
    lab = network_lab(
        dns={"one.test": {"AAAA": Reply("::1", delay=0.1), "A": "127.0.0.1"}},
        hosts="127.0.0.1 localhost\n",
        http=["127.0.0.1"],
        port=443,
    )
    seen = lab.call(connect_https, "one.test", lab.port, 3.0)
    assert seen["remote"] == ["127.0.0.1", 443]
    queries = lab.dns.queries("one.test")
    assert sorted(q.type for q in queries) == ["A", "AAAA", "HTTPS"]
    assert len({q.source_port for q in queries}) == 1


def resolve_both_ways(port: int) -> None:
    """Inside: glibc's getaddrinfo for glibc.test; the engine, asking the HTTPS record
    too, for engine.test."""
    from connectbyname._parse import DEFAULT_OPTIONS
    from connectbyname._sync import connect

    socket.getaddrinfo("glibc.test", port, type=socket.SOCK_STREAM)
    connect("engine.test", port, DEFAULT_OPTIONS, timeout=3.0, https=True).close()


@pytest.mark.parametrize("options", ["", "edns0"])
def test_edns0_goes_on_address_queries_as_glibcs_and_on_every_https_query(
    network_lab: Any, options: str
) -> None:
    # Some gateways lose queries that carry an OPT record: the engine's A and AAAA
    # queries carry one exactly when glibc's do, so that it resolves wherever glibc does.
    names = {name: {"AAAA": "::1", "A": "127.0.0.1"} for name in ("glibc.test", "engine.test")}
    lab = network_lab(
        dns=names, options=options, hosts="127.0.0.1 localhost\n", http=["127.0.0.1"], port=443
    )
    lab.call(resolve_both_ways, lab.port)
    glibc = {q.type: q.edns for q in lab.dns.queries("glibc.test")}
    engine = {q.type: q.edns for q in lab.dns.queries("engine.test")}
    assert set(glibc) == {"A", "AAAA"}
    assert set(engine) == {"A", "AAAA", "HTTPS"}
    sent = options == "edns0"
    assert {t: e is not None for t, e in glibc.items()} == {"A": sent, "AAAA": sent}
    assert {t: e is not None for t, e in engine.items()} == {"A": sent, "AAAA": sent, "HTTPS": True}
    assert engine["HTTPS"] == EDNS_PAYLOAD


def interrupt_at_every_point(name: str, port: int, https: bool) -> dict[str, Any]:
    """Inside: the connect by name through the engine's own resolver (configuration
    read afresh, the server asked, the kernel probed for source addresses; the HTTPS
    record asked for if ``https``), interrupted at every point (`tests.everypoint`)."""
    import dataclasses

    import connectbyname
    from connectbyname._dns import _config, _resolver, _sort
    from connectbyname._parse import DEFAULT_OPTIONS
    from connectbyname._sync import connect
    from tests.everypoint import interrupt_at_every_point

    options = dataclasses.replace(DEFAULT_OPTIONS, history=None)

    def afresh() -> None:
        _resolver.clear_cache()
        _config._LOADERS.clear()
        _config._DEFAULT_LOADER.clear()
        _sort.kernel_source.clear()

    def run() -> connectbyname.Connection:
        if https:
            return connect(name, port, options, timeout=3, https=True)
        return connectbyname.connect_by_name(name, port, timeout=3, history=False)

    return interrupt_at_every_point(run, before=afresh)


@pytest.mark.parametrize("case", ["both families", "search, TCP, HTTPS, refused"])
def test_an_interruption_at_any_point_of_a_connect_by_name_leaks_nothing(
    network_lab: Any, case: str
) -> None:
    if case == "both families":
        name, https = "every.test", False
        lab = network_lab(
            dns={"every.test": {"AAAA": "::1", "A": "127.0.0.1"}},
            hosts="127.0.0.1 localhost\n",
            http=["::1", "127.0.0.1"],
        )
    else:
        # "www" through the search list (www.a.test does not exist), its AAAA answer
        # truncated (asked again over TCP), its HTTPS record read, ::1 refused.
        name, https = "www", True
        lab = network_lab(
            dns={
                "www.a.test": {t: Reply(rcode="NXDOMAIN") for t in ("AAAA", "A", "HTTPS")},
                "www.b.test": {
                    "AAAA": Reply("::1", truncate=True),
                    "A": "127.0.0.1",
                    "HTTPS": svcb(1, ".", alpn="h2"),
                },
            },
            resolv_conf="nameserver 127.0.0.1\nsearch a.test b.test\n",
            hosts="127.0.0.1 localhost\n",
            http=["127.0.0.1"],
            port=443,
        )
    seen = lab.call(interrupt_at_every_point, name, lab.port, https, timeout=300)
    # The whole path was walked: configuration, queries, answers, probes, connect.
    assert seen["points"] > 1000
    assert seen["leaks"] == []
    assert seen["warned"] == []
    assert seen["failed"] == []


def connect_https_counting_descriptors(name: str, port: int, times: int) -> list[dict[str, Any]]:
    """Inside: `connect_https` ``times`` times, each with the descriptors it left open
    once closed."""
    import os

    results = []
    for _ in range(times):
        before = set(os.listdir("/proc/self/fd"))
        seen = connect_https(name, port, 3.0)
        seen["left_open"] = sorted(set(os.listdir("/proc/self/fd")) - before)
        results.append(seen)
    return results


def test_a_search_step_left_with_its_https_query_running_closes_it(network_lab: Any) -> None:
    # "www" is asked as www.a.test first (NXDOMAIN at once, its HTTPS answer 1.5 s
    # late), then as www.b.test: the first name's HTTPS query is dropped with it. The
    # second call has www.a.test's NXDOMAIN in its cache, and moves on from it at once.
    nxdomain_late = Reply(rcode="NXDOMAIN", delay=1.5)
    lab = network_lab(
        dns={
            "www.a.test": {"AAAA": Reply(rcode="NXDOMAIN"), "A": Reply(rcode="NXDOMAIN")},
            "_8443._https.www.a.test": {"HTTPS": nxdomain_late},
            "www.b.test": {"A": "127.0.0.1"},
        },
        resolv_conf="nameserver 127.0.0.1\nsearch a.test b.test\n",
        hosts="127.0.0.1 localhost\n",
        http=["127.0.0.1"],
        port=8443,
    )
    first, second = lab.call(connect_https_counting_descriptors, "www", 8443, 2)
    for seen in (first, second):
        assert seen["remote"] == ["127.0.0.1", 8443]
        assert seen["took"] < 1.0  # not held up by the first name's HTTPS query (1.5 s)
        assert seen["left_open"] == []
    # www.a.test's A once (then cached), www.b.test's twice (TTL 60 s: cached too).
    assert [q.name for q in lab.dns.queries(type="A")] == ["www.a.test.", "www.b.test."]
    assert len(lab.dns.queries("_8443._https.www.a.test")) == 2


def test_an_alias_chain_drops_the_lookups_it_leaves_behind(network_lab: Any) -> None:
    # apex -> mid -> end: mid's A (late) was asked ahead and is dropped when mid turns out
    # to be an alias too; end's queries take socket-table keys of their own.
    lab = https_lab(
        network_lab,
        {
            "apex.test": {"HTTPS": svcb(0, "mid.test.")},
            "mid.test": {"A": Reply("127.0.0.1", delay=1.5), "HTTPS": svcb(0, "end.test.")},
            "end.test": {"A": "127.0.0.2", "HTTPS": svcb(1, ".")},
        },
    )
    (seen,) = lab.call(connect_https_counting_descriptors, "apex.test", 443, 1)
    assert seen["remote"] == ["127.0.0.2", 443]
    assert seen["took"] < 1.0  # not held up by mid.test's late A (1.5 s)
    assert seen["left_open"] == []
    assert {q.type for q in lab.dns.queries("end.test")} == {"HTTPS", "A", "AAAA"}


def resolve_timed(name: str, timeout: float) -> dict[str, Any]:
    """Inside: a connect by name that is to fail resolving; its error and time."""
    import time

    import connectbyname

    started = time.monotonic()
    try:
        connectbyname.connect_by_name(name, 80, timeout=timeout, history=False)
    except connectbyname.ConnectByNameError as exc:
        return {"error": type(exc).__name__, "errno": exc.errno, "took": time.monotonic() - started}
    raise AssertionError("connected")


@pytest.mark.parametrize("timeout", [0.001, 5.0])
def test_a_nameserver_nobody_listens_at_fails_every_query_at_once(
    network_lab: Any, timeout: float
) -> None:
    # Nothing on 127.0.0.1:53: each query's ICMP "port unreachable" comes back at once,
    # on the socket the name's queries share; every one of them fails the server then,
    # not at the end of its 2 s turn (even within a 1 ms budget, as urllib3's suite asks).
    lab = network_lab(
        resolv_conf="nameserver 127.0.0.1\noptions timeout:2 attempts:1\n",
        hosts="127.0.0.1 localhost\n",
    )
    seen = lab.call(resolve_timed, "nowhere.invalid", timeout)
    assert seen["error"] == "NameResolutionError"
    assert seen["errno"] == socket.EAI_AGAIN
    assert seen["took"] < 1.0
