"""`connectbyname.dns.DNSResolver` against a real DNS server on 127.0.0.1.

`DNSServer` below is a small UDP DNS server on dnspython, started by each test on
loopback: it answers A and AAAA from a table with TTLs, can delay or drop the answers
of one record type, and counts the queries it received. No query ever leaves the
machine: every resolver here is given that server, and nothing else, as nameserver.
"""

from __future__ import annotations

import collections
import heapq
import select
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import anyio
import pytest

pytest.importorskip("dns.message")

import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset

import connectbyname.dns
from connectbyname import (
    NameResolutionError,
    TimedOutError,
    aconnect_by_name,
    connect_by_name,
)
from connectbyname.dns import DNSResolver
from connectbyname.testing import HTTPServer

ZONE = "example.test."
NAME = "www.example.test"
NEGATIVE_TTL = 1  # the SOA minimum: how long "no such name" may be cached


class DNSServer:
    """A UDP DNS server on ``host`` (loopback), answering from ``records``:
    ``{name: {"A": [...], "AAAA": [...], "CNAME": target}}`` with ``ttl``.

    ``drop`` holds record types whose queries get no answer; ``delay`` maps record types
    to seconds their answers are held back. ``queries`` counts (name, type) received.
    """

    def __init__(
        self, records: dict[str, dict[str, object]], *, ttl: int = 60, host: str = "127.0.0.1"
    ) -> None:
        self.records = {dns.name.from_text(n): r for n, r in records.items()}
        self.ttl = ttl
        self.drop: set[str] = set()
        self.delay: dict[str, float] = {}
        self.queries: collections.Counter[tuple[str, str]] = collections.Counter()
        self._lock = threading.Lock()
        self._sock = socket.socket(
            socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM
        )
        self._sock.bind((host, 0))
        self.host = host
        self.port: int = self._sock.getsockname()[1]
        self._stop_r, self._stop_w = socket.socketpair()
        self._thread = threading.Thread(target=self._serve, name="test-dns-server", daemon=True)
        self._thread.start()

    def count(self, rdtype: str, name: str = NAME) -> int:
        with self._lock:
            return self.queries[(name.lower().rstrip(".") + ".", rdtype)]

    def total(self) -> int:
        with self._lock:
            return sum(self.queries.values())

    def close(self) -> None:
        self._stop_w.send(b"x")
        self._thread.join()
        for sock in (self._sock, self._stop_r, self._stop_w):
            sock.close()

    def __enter__(self) -> DNSServer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _serve(self) -> None:
        pending: list[tuple[float, int, bytes, tuple[Any, ...]]] = []  # (due, seq, wire, client)
        seq = 0
        while True:
            wait = max(0.0, pending[0][0] - time.monotonic()) if pending else None
            readable, _, _ = select.select([self._sock, self._stop_r], [], [], wait)
            if self._stop_r in readable:
                return
            if self._sock in readable:
                data, client = self._sock.recvfrom(4096)
                reply = self._answer(data)
                if reply is not None:
                    due = time.monotonic() + reply[1]
                    heapq.heappush(pending, (due, seq := seq + 1, reply[0], client))
            while pending and pending[0][0] <= time.monotonic():
                _, _, wire, client = heapq.heappop(pending)
                self._sock.sendto(wire, client)

    def _answer(self, data: bytes) -> tuple[bytes, float] | None:
        query = dns.message.from_wire(data)
        question = query.question[0]
        rdtype = dns.rdatatype.to_text(question.rdtype)
        with self._lock:
            self.queries[(question.name.to_text().lower(), rdtype)] += 1
        if rdtype in self.drop:
            return None
        response = dns.message.make_response(query)
        name = question.name
        for _ in range(8):
            entry = self.records.get(name)
            if entry is None or "CNAME" not in entry:
                break
            target = dns.name.from_text(str(entry["CNAME"]))
            response.answer.append(
                dns.rrset.from_text(name, self.ttl, "IN", "CNAME", target.to_text())
            )
            name = target
        entry = self.records.get(name)
        addresses = entry.get(rdtype) if entry is not None else None
        if addresses:
            assert isinstance(addresses, list)
            response.answer.append(dns.rrset.from_text(name, self.ttl, "IN", rdtype, *addresses))
        else:
            if entry is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            soa = f"ns.{ZONE} hostmaster.{ZONE} 1 60 60 60 {NEGATIVE_TTL}"
            response.authority.append(dns.rrset.from_text(ZONE, NEGATIVE_TTL, "IN", "SOA", soa))
        return response.to_wire(), self.delay.get(rdtype, 0.0)


RECORDS: dict[str, dict[str, object]] = {
    NAME: {"AAAA": ["::1"], "A": ["127.0.0.1"]},
    "v4only.example.test": {"A": ["127.0.0.1"]},
    "alias.example.test": {"CNAME": NAME},
}


@pytest.fixture
def dns_server() -> Iterator[DNSServer]:
    with DNSServer(RECORDS) as server:
        yield server


@pytest.fixture
def resolver(dns_server: DNSServer) -> Iterator[DNSResolver]:
    with DNSResolver([dns_server.host], port=dns_server.port, timeout=2.0) as resolver:
        yield resolver


def threads_named(name: str) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == name]


# --------------------------------------------------------------------------- the resolver


def test_both_families_answered(
    assert_no_fd_leak: None, dns_server: DNSServer, resolver: DNSResolver
) -> None:
    lookup = resolver.start_lookup(NAME, 80, socket.AF_UNSPEC)
    assert lookup.wait(2)
    assert lookup.error is None
    assert lookup.candidates == [
        (socket.AF_INET6, ("::1", 80, 0, 0)),
        (socket.AF_INET, ("127.0.0.1", 80)),
    ]
    assert dns_server.count("AAAA") == 1
    assert dns_server.count("A") == 1
    # getaddrinfo's form: per family, and both socket types when none is given.
    assert resolver("alias.example.test", "80", socket.AF_INET, socket.SOCK_STREAM) == [
        (socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", ("127.0.0.1", 80))
    ]
    kinds = {entry[1] for entry in resolver(NAME, 80, socket.AF_INET6)}
    assert kinds == {socket.SOCK_STREAM, socket.SOCK_DGRAM}
    # Literals and localhost are answered without a query.
    before = dns_server.total()
    assert resolver("::1", 80, socket.AF_INET6, socket.SOCK_STREAM)[0][4] == ("::1", 80, 0, 0)
    assert resolver("localhost", 80, socket.AF_INET, socket.SOCK_STREAM)[0][4] == (
        "127.0.0.1",
        80,
    )
    assert dns_server.total() == before


def test_connects_with_the_engine(
    assert_no_fd_leak: None, resolver: DNSResolver, http_server_v6: HTTPServer
) -> None:
    with connect_by_name(
        NAME, http_server_v6.port, timeout=5, resolver=resolver, history=False
    ) as conn:
        assert conn.remote_address == ("::1", http_server_v6.port, 0, 0)
        assert conn.attempts[0].start < 0.5


def test_nxdomain_and_nodata(
    assert_no_fd_leak: None, dns_server: DNSServer, resolver: DNSResolver
) -> None:
    with pytest.raises(NameResolutionError) as caught:
        connect_by_name("nowhere.example.test", 80, timeout=2, resolver=resolver, history=False)
    assert caught.value.errno == socket.EAI_NONAME
    with pytest.raises(socket.gaierror) as gai:
        resolver("nowhere.example.test", 80)
    assert gai.value.errno == socket.EAI_NONAME
    with pytest.raises(socket.gaierror) as gai:
        resolver("v4only.example.test", 80, socket.AF_INET6)
    assert gai.value.errno == socket.EAI_NONAME
    # The negative answers were cached (for the SOA minimum, 1 s): no new query.
    assert dns_server.count("AAAA", "nowhere.example.test") == 1
    assert dns_server.count("AAAA", "v4only.example.test") == 1


def test_cache_hit_within_ttl_and_expiry(assert_no_fd_leak: None) -> None:
    with (
        DNSServer(RECORDS, ttl=1) as server,
        DNSResolver([server.host], port=server.port, timeout=2) as resolver,
    ):
        assert resolver(NAME, 80, socket.AF_INET)[0][4] == ("127.0.0.1", 80)
        assert resolver(NAME, 80, socket.AF_INET)[0][4] == ("127.0.0.1", 80)
        lookup = resolver.start_lookup(NAME, 80, socket.AF_INET)
        assert lookup.done()  # from the cache, at once
        assert server.count("A") == 1
        time.sleep(1.1)
        assert resolver(NAME, 80, socket.AF_INET)[0][4] == ("127.0.0.1", 80)
        assert server.count("A") == 2


def test_cache_keeps_an_answer_a_day_at_most(
    assert_no_fd_leak: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = time.monotonic
    with (
        DNSServer(RECORDS, ttl=3 * 86_400) as server,
        DNSResolver([server.host], port=server.port, timeout=2) as resolver,
    ):
        assert resolver(NAME, 80, socket.AF_INET)[0][4] == ("127.0.0.1", 80)
        # The clock moves on (the resolver's I/O thread sees it move too).
        monkeypatch.setattr(time, "monotonic", lambda: real() + 86_000)
        assert resolver(NAME, 80, socket.AF_INET)[0][4] == ("127.0.0.1", 80)
        assert server.count("A") == 1
        monkeypatch.setattr(time, "monotonic", lambda: real() + 86_401)
        assert resolver(NAME, 80, socket.AF_INET)[0][4] == ("127.0.0.1", 80)
        assert server.count("A") == 2


def test_retransmits_then_eai_again(assert_no_fd_leak: None, dns_server: DNSServer) -> None:
    dns_server.drop = {"A"}
    with DNSResolver([dns_server.host], port=dns_server.port, timeout=0.6) as resolver:
        started = time.monotonic()
        with pytest.raises(socket.gaierror) as caught:
            resolver(NAME, 80, socket.AF_INET)
        elapsed = time.monotonic() - started
    assert caught.value.errno == socket.EAI_AGAIN
    assert 0.55 <= elapsed < 1.2
    assert dns_server.count("A") == 3  # the query and two retransmissions


def test_no_thread_per_lookup(assert_no_fd_leak: None) -> None:
    names = [f"h{i}.example.test" for i in range(50)]
    records: dict[str, dict[str, object]] = {n: {"A": ["127.0.0.1"]} for n in names}
    with DNSServer(records) as server:
        server.delay = {"A": 0.3}
        before = set(threading.enumerate())
        with DNSResolver([server.host], port=server.port) as resolver:
            lookups = [resolver.start_lookup(n, 80, socket.AF_INET) for n in names]
            time.sleep(0.1)
            assert not any(lookup.done() for lookup in lookups)  # all 50 in flight...
            new = set(threading.enumerate()) - before
            assert [t.name for t in new] == [connectbyname.dns.THREAD_NAME]  # ...on one thread
            assert all(lookup.wait(2) for lookup in lookups)
            assert all(
                lookup.candidates == [(socket.AF_INET, ("127.0.0.1", 80))] for lookup in lookups
            )
            assert server.total() == 50
        assert not threads_named(connectbyname.dns.THREAD_NAME)  # close() ended it


def test_io_thread_exits_when_idle(
    assert_no_fd_leak: None, monkeypatch: pytest.MonkeyPatch, resolver: DNSResolver
) -> None:
    monkeypatch.setattr(connectbyname.dns, "IDLE_SECONDS", 0.2)
    resolver(NAME, 80, socket.AF_INET)
    assert threads_named(connectbyname.dns.THREAD_NAME)
    deadline = time.monotonic() + 2
    while threads_named(connectbyname.dns.THREAD_NAME) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not threads_named(connectbyname.dns.THREAD_NAME)
    resolver.clear_cache()
    assert resolver(NAME, 80, socket.AF_INET)[0][4] == ("127.0.0.1", 80)  # a new thread


def test_close_fails_lookups_in_flight(assert_no_fd_leak: None, dns_server: DNSServer) -> None:
    dns_server.drop = {"A", "AAAA"}
    resolver = DNSResolver([dns_server.host], port=dns_server.port, timeout=5)
    lookup = resolver.start_lookup(NAME, 80, socket.AF_UNSPEC)
    resolver.close()
    assert lookup.done()
    assert lookup.error is not None
    assert lookup.error.errno == socket.EAI_AGAIN


def test_only_ip_literals_as_nameservers() -> None:
    with pytest.raises(ValueError, match="not an IP address"):
        DNSResolver(["dns.example.test"])
    with pytest.raises(ValueError, match="at least one"):
        DNSResolver([])


# --------------------------------------------------------------------------- sync engine


#: Run in a fresh interpreter: which of dnspython's modules a first lookup (sync, then
#: async, of two names: neither from the cache) imports.
FIRST_LOOKUP = """
import asyncio, socket, sys
from connectbyname.dns import DNSResolver
before = set(sys.modules)
with DNSResolver(["127.0.0.1"], port=int(sys.argv[1])) as resolver:
    resolver(sys.argv[2], 80, socket.AF_UNSPEC)
    asyncio.run(resolver.alookup(sys.argv[3], 80, socket.AF_UNSPEC))
print(" ".join(sorted(m for m in set(sys.modules) - before if m.startswith("dns."))))
"""


def test_a_first_lookup_imports_nothing_inside_its_timeout(dns_server: DNSServer) -> None:
    # A module imported on first use is paid for out of the first call's timeout (what
    # that cost on CI: the comment on connectbyname/dns.py's imports).
    done = subprocess.run(
        [sys.executable, "-c", FIRST_LOOKUP, str(dns_server.port), NAME, "v4only.example.test"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert dns_server.count("A") == 1
    assert dns_server.count("A", "v4only.example.test") == 1
    # dnspython's event loop glue, chosen by the loop that runs (trio's needs trio).
    assert set(done.stdout.split()) <= {"dns._asyncio_backend"}, done.stdout


def test_aaaa_dropped_connects_on_ipv4(
    assert_no_fd_leak: None, dns_server: DNSServer, resolver: DNSResolver, http_server: HTTPServer
) -> None:
    dns_server.drop = {"AAAA"}
    started = time.monotonic()
    with connect_by_name(
        NAME, http_server.port, timeout=3, resolver=resolver, history=False
    ) as conn:
        assert conn.remote_address == ("127.0.0.1", http_server.port)
        # IPv4 waited only the resolution delay (50 ms) for the AAAA answer, not the
        # resolver's 2 s (the margin is for a loaded machine).
        assert 0.04 <= conn.attempts[0].start < 1.0
        assert len(conn.attempts) == 1
    assert time.monotonic() - started < 1.5


def test_aaaa_delayed_first_attempt_at_resolution_delay(
    assert_no_fd_leak: None, dns_server: DNSServer, resolver: DNSResolver, http_server: HTTPServer
) -> None:
    # The AAAA answer 1 s late: the first attempt starts at the resolution delay (50 ms;
    # the margin is for a loaded machine) and the call does not wait for the answer.
    dns_server.delay = {"AAAA": 1.0}
    with connect_by_name(
        NAME, http_server.port, timeout=3, resolver=resolver, history=False
    ) as conn:
        assert conn.remote_address == ("127.0.0.1", http_server.port)
        assert 0.04 <= conn.attempts[0].start < 0.7
        assert conn.elapsed < 1.0


def test_timeout_honoured_when_nothing_answers(
    assert_no_fd_leak: None, dns_server: DNSServer, resolver: DNSResolver
) -> None:
    dns_server.drop = {"A", "AAAA"}
    before = set(threading.enumerate())
    started = time.monotonic()
    with pytest.raises(TimedOutError):
        connect_by_name(NAME, 80, timeout=0.4, resolver=resolver, history=False)
    assert 0.35 <= time.monotonic() - started < 0.7
    new = set(threading.enumerate()) - before
    assert [t.name for t in new] == [connectbyname.dns.THREAD_NAME]  # not the resolver pool


# --------------------------------------------------------------------------- async engine


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.mark.anyio
async def test_async_aaaa_delayed_without_any_thread(
    assert_no_fd_leak: None, dns_server: DNSServer, resolver: DNSResolver, http_server: HTTPServer
) -> None:
    dns_server.delay = {"AAAA": 1.0}  # as in test_aaaa_delayed_first_attempt_at_resolution_delay
    before = set(threading.enumerate())
    async with await aconnect_by_name(
        NAME, http_server.port, timeout=3, resolver=resolver, history=False
    ) as conn:
        assert conn.remote_address == ("127.0.0.1", http_server.port)
        assert 0.04 <= conn.attempts[0].start < 0.7
        assert conn.elapsed < 1.0
    # No resolver pool thread, no I/O thread, no executor thread: nothing new at all but
    # the HTTP server's connection thread and trio's own (anyio's test runner runs trio
    # in guest mode, which waits for I/O in a thread of trio's thread cache).
    new = {t.name for t in set(threading.enumerate()) - before}
    assert not {n for n in new if not n.startswith(("loopback-conn-", "Trio thread"))}
    assert not threads_named(connectbyname.dns.THREAD_NAME)
    assert dns_server.count("A") == 1


@pytest.mark.anyio
async def test_async_both_families_and_errors(
    assert_no_fd_leak: None,
    dns_server: DNSServer,
    resolver: DNSResolver,
    http_server_v6: HTTPServer,
) -> None:
    async with await aconnect_by_name(
        "alias.example.test", http_server_v6.port, timeout=2, resolver=resolver, history=False
    ) as conn:
        assert conn.remote_address == ("::1", http_server_v6.port, 0, 0)
    assert await resolver.alookup(NAME, 80, socket.AF_UNSPEC) == [
        (socket.AF_INET6, ("::1", 80, 0, 0)),
        (socket.AF_INET, ("127.0.0.1", 80)),
    ]
    assert dns_server.count("AAAA") == 1  # the second lookup came from the cache
    with pytest.raises(NameResolutionError) as caught:
        await aconnect_by_name(
            "nowhere.example.test", 80, timeout=2, resolver=resolver, history=False
        )
    assert caught.value.errno == socket.EAI_NONAME
    assert not threads_named(connectbyname.dns.THREAD_NAME)


@pytest.mark.anyio
async def test_async_timeout_and_cancellation(
    assert_no_fd_leak: None, dns_server: DNSServer, resolver: DNSResolver
) -> None:
    dns_server.drop = {"A", "AAAA"}
    started = anyio.current_time()
    with pytest.raises(TimedOutError):
        await aconnect_by_name(NAME, 80, timeout=0.3, resolver=resolver, history=False)
    assert anyio.current_time() - started < 0.6
    with anyio.move_on_after(0.2) as scope:
        await aconnect_by_name(NAME, 80, timeout=5, resolver=resolver, history=False)
    assert scope.cancelled_caught
    assert anyio.current_time() - started < 1.2
    # The lookups were cancelled with the call: their sockets are closed now (checked
    # by assert_no_fd_leak before the resolver's own 2 s timeout could run out).
