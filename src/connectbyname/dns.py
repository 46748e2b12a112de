"""A DNS stub resolver of connectbyname's own, on dnspython (the ``dns`` extra).

`DNSResolver` asks the nameservers it is given (and no others: it never reads
``/etc/resolv.conf`` or ``/etc/hosts``) for AAAA and A records itself. It plugs into
``resolver=`` of every call, and the engines use its fast paths:

- the sync engine (and the async one on a plain resolver) calls `DNSResolver.start_lookup`,
  which sends the query over UDP and completes the lookup from ONE I/O thread per
  resolver, shared by all its lookups (no thread per lookup);
- the async engine awaits `DNSResolver.alookup`, which queries through dnspython's async
  support on asyncio or trio, in the event loop: no thread at all.

Answers are cached for their TTL, negative ones per the zone's SOA (RFC 2308).

This module needs dnspython (``pip install connectbyname[dns]``); ``import connectbyname``
does not.
"""

from __future__ import annotations

import contextlib
import ipaddress
import selectors
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import idna

# Everything a lookup uses is imported here, not on first use: the first call's timeout
# is for the network. dnspython's async query module (which brings its sync one, its
# QUIC and zone-transfer code) and its A and AAAA record classes take 30 ms to import
# on an idle 2-core machine, and a test whose first async lookup imported them started
# its first attempt 0.19 to 0.34 s late on a loaded CI machine.
try:
    import dns.asyncbackend
    import dns.asyncquery
    import dns.exception
    import dns.flags
    import dns.message
    import dns.name
    import dns.rcode
    import dns.rdatatype
    import dns.rdtypes.IN.A
    import dns.rdtypes.IN.AAAA
except ImportError as exc:  # pragma: no cover (depends on the installation)
    raise ImportError(
        "connectbyname.dns needs dnspython: pip install 'connectbyname[dns]'"
    ) from exc

from ._dns._cache import TTLCache
from ._errors import NameResolutionError
from ._info import Candidate
from ._resolve import Lookup, candidates_from, getaddrinfo_port

__all__ = ["DNSResolver"]

#: How long the I/O thread waits for work before it exits.
IDLE_SECONDS = 5.0
#: The I/O thread's name, as `threading.enumerate` shows it.
THREAD_NAME = "connectbyname-dns"
#: How long an answer without an SOA record saying otherwise ("no such name", "no
#: record of that type") is cached.
NEGATIVE_TTL_WITHOUT_SOA = 5.0

_AAAA = dns.rdatatype.AAAA
_A = dns.rdatatype.A
_RDTYPES: dict[int, tuple[dns.rdatatype.RdataType, ...]] = {
    socket.AF_INET6: (_AAAA,),
    socket.AF_INET: (_A,),
    socket.AF_UNSPEC: (_AAAA, _A),
}
_LOCALHOST = {_AAAA: ("::1",), _A: ("127.0.0.1",)}
# The UDP payload offered with EDNS (the DNS Flag Day 2020 value): large enough for
# address answers, small enough to avoid IP fragmentation.
_PAYLOAD = 1232
_TRIES = 3

AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, tuple[Any, ...]]


@dataclass(frozen=True, slots=True)
class _Answer:
    """The outcome of one question: ``addresses``, or an ``EAI_*`` ``errno`` and why."""

    addresses: tuple[str, ...] = ()
    errno: int = 0
    reason: str = ""


class _Job:
    """One `Lookup` waiting for the answers to one or two questions."""

    __slots__ = ("answers", "host", "lock", "lookup", "port", "rdtypes")

    def __init__(self, lookup: Lookup, host: str, port: int) -> None:
        self.lookup = lookup
        self.host = host
        self.port = port
        self.rdtypes = _RDTYPES[lookup.family]
        self.answers: dict[int, _Answer] = {}
        self.lock = threading.Lock()

    def deliver(self, rdtype: int, answer: _Answer) -> None:
        with self.lock:
            self.answers[rdtype] = answer
            if len(self.answers) < len(self.rdtypes):
                return
        try:
            result = _candidates(self.host, self.port, self.rdtypes, self.answers)
        except NameResolutionError as exc:
            self.lookup.finish([], exc)
        else:
            self.lookup.finish(result, None)


class _Query:
    """One question in flight on the I/O thread, and the jobs waiting for its answer."""

    __slots__ = (
        "deadline",
        "failed",
        "key",
        "message",
        "next_send",
        "rdtype",
        "sends",
        "sockets",
        "waiters",
        "wire",
    )

    def __init__(self, key: tuple[str, int], qname: dns.name.Name, rdtype: int) -> None:
        self.key = key
        self.rdtype = rdtype
        self.message = _make_query(qname, rdtype)
        self.wire = self.message.to_wire()
        self.waiters: list[_Job] = []
        self.sockets: dict[int, socket.socket] = {}
        self.failed: set[str] = set()
        self.sends = 0
        self.next_send = 0.0
        self.deadline = 0.0


class DNSResolver:
    """A DNS stub resolver that asks ``nameservers`` (IP literals, tried in turn, on
    ``port``) for AAAA and A records, for use as ``resolver=`` in any call.

    Names are taken as fully qualified: there is no search list, and neither
    ``/etc/hosts`` nor ``/etc/resolv.conf`` is read. ``localhost`` and names under it
    are answered with ``::1`` and ``127.0.0.1`` without a query (RFC 6761), and an IP
    literal is returned as itself.

    A lookup gives up after ``timeout`` seconds, having sent its query up to three
    times (more with more nameservers, rotating through them, evenly spread over
    ``timeout``); a call's own timeout, when shorter, ends the wait sooner. With
    ``cache``, answers are kept for their TTL, at most a day (at most
    ``max_cache_entries`` of them); a "no such name" or "no such record" answer for the
    SOA's negative TTL (RFC 2308), at most ``max_negative_ttl`` seconds. A SERVFAIL or
    REFUSED answer moves to the next nameserver at once. Truncated answers are used as
    far as they go (there is no TCP fallback).

    The resolver is thread-safe and may be shared. Its I/O thread starts with the
    first lookup and exits after `IDLE_SECONDS` without one; `close` (or leaving a
    ``with`` block) stops it at once, failing the lookups in flight, and the resolver
    stays usable afterwards.

    Calling it like `socket.getaddrinfo` blocks until the answer; it raises
    `socket.gaierror` with ``EAI_NONAME`` when the name or its records do not exist,
    and ``EAI_AGAIN`` when no nameserver answered in time.
    """

    def __init__(
        self,
        nameservers: Sequence[str],
        *,
        port: int = 53,
        timeout: float = 5.0,
        cache: bool = True,
        max_cache_entries: int = 1024,
        max_negative_ttl: float = 60.0,
    ) -> None:
        if isinstance(nameservers, str):
            raise TypeError("nameservers must be a sequence of IP addresses, not one string")
        servers: list[str] = []
        for server in nameservers:
            try:
                servers.append(str(ipaddress.ip_address(server)))
            except ValueError:
                raise ValueError(f"nameserver {server!r} is not an IP address") from None
        if not servers:
            raise ValueError("at least one nameserver is needed")
        if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
            raise ValueError("port must be an integer from 1 to 65535")
        if not timeout > 0:
            raise ValueError("timeout must be a positive number of seconds")
        if max_cache_entries < 0 or max_negative_ttl < 0:
            raise ValueError("max_cache_entries and max_negative_ttl must not be negative")
        self.nameservers: tuple[str, ...] = tuple(servers)
        self.port = port
        self.timeout = float(timeout)
        self.max_negative_ttl = float(max_negative_ttl)
        self._cache = TTLCache[_Answer](max_cache_entries if cache else 0)
        self._tries = max(_TRIES, len(servers))
        self._lock = threading.Lock()
        self._loop: _Loop | None = None

    def __repr__(self) -> str:
        return f"DNSResolver({list(self.nameservers)!r}, port={self.port})"

    # ------------------------------------------------------------------ public API

    def start_lookup(self, host: str, port: int, family: socket.AddressFamily) -> Lookup:
        """Start looking ``host`` up (AAAA for ``AF_INET6``, A for ``AF_INET``, both for
        ``AF_UNSPEC``) and return the `Lookup` at once, never blocking: a cached or
        local answer finishes it now; else the I/O thread finishes it, within
        ``timeout``."""
        lookup = Lookup(family)
        try:
            local = self._local_answer(host, port, family)
            if local is not None:
                lookup.finish(local, None)
                return lookup
            qname = _qname(host)
        except NameResolutionError as exc:
            lookup.finish([], exc)
            return lookup
        job = _Job(lookup, host, port)
        now = time.monotonic()
        missing = []
        for rdtype in job.rdtypes:
            cached = self._cache.get(_key(qname, rdtype), now)
            if cached is None:
                missing.append(rdtype)
            else:
                job.answers[rdtype] = cached
        if not missing:
            try:
                lookup.finish(_candidates(host, port, job.rdtypes, job.answers), None)
            except NameResolutionError as exc:
                lookup.finish([], exc)
            return lookup
        with self._lock:
            loop = self._loop
            # Not alive with a loop set: this is a forked child, without the parent's
            # thread (whose sockets it must leave alone).
            if loop is None or not loop.thread.is_alive():
                loop = self._loop = _Loop(self)
                loop.thread.start()
            for rdtype in missing:
                key = _key(qname, rdtype)
                query = loop.queries.get(key)
                if query is None:
                    # Lookups of the same name and type share one query in flight.
                    query = loop.queries[key] = _Query(key, qname, rdtype)
                    loop.inbox.append(query)
                query.waiters.append(job)
        loop.wake()
        return lookup

    async def alookup(self, host: str, port: int, family: socket.AddressFamily) -> list[Candidate]:
        """Look ``host`` up in the running event loop (asyncio or trio), without a
        thread: the candidates, IPv6 first, or `NameResolutionError`. Both families of
        ``AF_UNSPEC`` are asked concurrently (this needs anyio). Cancelling it closes
        its sockets."""
        local = self._local_answer(host, port, family)
        if local is not None:
            return local
        qname = _qname(host)
        rdtypes = _RDTYPES[family]
        answers: dict[int, _Answer] = {}
        missing = []
        now = time.monotonic()
        for rdtype in rdtypes:
            cached = self._cache.get(_key(qname, rdtype), now)
            if cached is None:
                missing.append(rdtype)
            else:
                answers[rdtype] = cached
        if len(missing) == 1:
            answers[missing[0]] = await self._aquery(qname, missing[0])
        elif missing:
            import anyio

            async def ask(rdtype: int) -> None:
                answers[rdtype] = await self._aquery(qname, rdtype)

            async with anyio.create_task_group() as group:
                for rdtype in missing:
                    group.start_soon(ask, rdtype)
        return _candidates(host, port, rdtypes, answers)

    def __call__(  # noqa: PLR0917 (socket.getaddrinfo's signature)
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> list[AddrInfo]:
        """Answer like `socket.getaddrinfo`, from DNS (blocking; see the class)."""
        if isinstance(host, bytes):
            host = host.decode("ascii", "replace")
        if host is None or flags & socket.AI_NUMERICHOST or _is_literal(host):
            # No name to look up: the system call answers without asking anyone.
            answers = socket.getaddrinfo(host, port, family, type, proto, flags)
            return [
                (fam, kind, protocol, canon, addr) for fam, kind, protocol, canon, addr in answers
            ]
        if family not in _RDTYPES:
            raise socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")
        kinds = _kinds(type, proto)
        number = getaddrinfo_port(port, kinds[0][0], flags)
        lookup = self.start_lookup(host, number, socket.AddressFamily(family))
        # The I/O thread finishes every lookup within the timeout; the margin covers
        # a thread that was slow to be scheduled.
        if not lookup.wait(self.timeout + 5.0):
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")
        if lookup.error is not None:
            raise socket.gaierror(lookup.error.errno, lookup.error.strerror)
        return [
            (fam, kind, protocol, "", address)
            for fam, address in lookup.candidates
            for kind, protocol in kinds
        ]

    def clear_cache(self) -> None:
        """Forget every cached answer."""
        self._cache.clear()

    def close(self) -> None:
        """Stop the I/O thread now and close its sockets; lookups still in flight fail
        with ``EAI_AGAIN``. The resolver can still be used: a new lookup starts a new
        thread."""
        with self._lock:
            loop, self._loop = self._loop, None
            if loop is None:
                return
            loop.stopping = True
        loop.wake()
        if loop.thread is not threading.current_thread():
            loop.thread.join()

    def __enter__(self) -> DNSResolver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ internals

    def _local_answer(
        self, host: str, port: int, family: socket.AddressFamily
    ) -> list[Candidate] | None:
        """The answer that needs no query (an IP literal, localhost), else ``None``."""
        if family not in _RDTYPES:
            raise NameResolutionError(
                f"family {family!r} is not supported",
                nodename=host,
                servicename=port,
                errno=socket.EAI_FAMILY,
            )
        if _is_literal(host):
            try:
                answers = socket.getaddrinfo(
                    host, port, family, socket.SOCK_STREAM, 0, socket.AI_NUMERICHOST
                )
            except socket.gaierror as exc:
                raise NameResolutionError(
                    f"cannot resolve {host!r}: {exc}",
                    nodename=host,
                    servicename=port,
                    errno=exc.errno,
                ) from exc
            return candidates_from(answers, family, host)
        name = host.lower().rstrip(".")
        if name == "localhost" or name.endswith(".localhost"):
            return _candidates(
                host, port, _RDTYPES[family], {t: _Answer(a) for t, a in _LOCALHOST.items()}
            )
        return None

    def _interpret(self, response: dns.message.Message) -> tuple[_Answer | None, float | None]:
        """A response's answer and how long to cache it (``None``: not at all), or
        ``(None, None)`` when the server failed and another should be asked."""
        rcode = response.rcode()
        if rcode not in (dns.rcode.NOERROR, dns.rcode.NXDOMAIN):
            return None, None
        if not isinstance(response, dns.message.QueryMessage):  # not a QUERY answer
            return _Answer(errno=socket.EAI_FAIL, reason="not a query response"), None
        try:
            chain = response.resolve_chaining()
        except dns.exception.DNSException as exc:
            return _Answer(errno=socket.EAI_FAIL, reason=f"bad answer: {exc}"), None
        truncated = bool(response.flags & dns.flags.TC)
        if chain.answer is not None and len(chain.answer) > 0:
            addresses = tuple(rdata.to_text() for rdata in chain.answer)
            return _Answer(addresses), None if truncated else float(chain.minimum_ttl)
        if truncated:
            return _Answer(errno=socket.EAI_AGAIN, reason="truncated answer"), None
        has_soa = any(rrset.rdtype == dns.rdatatype.SOA for rrset in response.authority)
        ttl = float(chain.minimum_ttl) if has_soa else NEGATIVE_TTL_WITHOUT_SOA
        reason = "no such name" if rcode == dns.rcode.NXDOMAIN else "no record of that type"
        return _Answer(errno=socket.EAI_NONAME, reason=reason), min(ttl, self.max_negative_ttl)

    def _server(self, attempt: int, failed: set[str]) -> str | None:
        """The nameserver for the ``attempt``-th send, skipping those that failed."""
        count = len(self.nameservers)
        for step in range(count):
            server = self.nameservers[(attempt + step) % count]
            if server not in failed:
                return server
        return None

    async def _aquery(self, qname: dns.name.Name, rdtype: int) -> _Answer:
        # Not dnspython's default backend: it is fixed by the first call, and the next
        # call may run on another event loop library.
        backend = dns.asyncbackend.get_backend(dns.asyncbackend.sniff())
        message = _make_query(qname, rdtype)
        per_try = self.timeout / self._tries
        failed: set[str] = set()
        outcome = _Answer(errno=socket.EAI_AGAIN, reason="no nameserver answered in time")
        for attempt in range(self._tries):
            server = self._server(attempt, failed)
            if server is None:
                break
            try:
                # ignore_errors: a datagram that is not the answer (junk, another ID,
                # another question), even from the server's address, is skipped and
                # the wait goes on, as the I/O thread does (RFC 5452); without it,
                # one stray datagram ended the try at once, and three the lookup.
                response = await dns.asyncquery.udp(
                    message,
                    server,
                    timeout=per_try,
                    port=self.port,
                    ignore_unexpected=True,
                    ignore_errors=True,
                    backend=backend,
                )
            except (dns.exception.DNSException, OSError):
                # Timeout or an unreachable server: like a loss.
                continue
            answer, ttl = self._interpret(response)
            if answer is None:
                failed.add(server)
                outcome = _Answer(errno=socket.EAI_AGAIN, reason="nameserver failure")
                continue
            if ttl is not None:
                self._cache.put(_key(qname, rdtype), answer, ttl, time.monotonic())
            return answer
        return outcome


class _Loop:
    """The I/O thread of one resolver: a selector over the sockets of every query in
    flight, and a socket pair that wakes it for new queries or `DNSResolver.close`.

    ``queries`` and ``inbox`` belong to the resolver's lock; everything else to the
    thread."""

    def __init__(self, resolver: DNSResolver) -> None:
        self.resolver = resolver
        self.queries: dict[tuple[str, int], _Query] = {}
        self.inbox: list[_Query] = []
        self.stopping = False
        self.selector = selectors.DefaultSelector()
        try:
            self._wake_r, self._wake_w = socket.socketpair()
        except BaseException:
            self.selector.close()
            raise
        for end in (self._wake_r, self._wake_w):
            end.setblocking(False)
        self.selector.register(self._wake_r, selectors.EVENT_READ, None)
        self.thread = threading.Thread(target=self._run, name=THREAD_NAME, daemon=True)

    def wake(self) -> None:
        with contextlib.suppress(OSError):  # full (a wake-up is pending) or closed
            self._wake_w.send(b"\0")

    def _run(self) -> None:
        resolver = self.resolver
        active: list[_Query] = []
        idle_since = time.monotonic()
        try:
            while True:
                with resolver._lock:
                    if self.stopping:
                        break  # the inbox is failed below
                    new, self.inbox = self.inbox, []
                    if not new and not active and time.monotonic() - idle_since >= IDLE_SECONDS:
                        # Under the lock: a lookup started from now on makes a new loop.
                        if resolver._loop is self:
                            resolver._loop = None
                        break
                now = time.monotonic()
                for query in new:
                    query.deadline = now + resolver.timeout
                    query.next_send = now
                active.extend(new)
                for query in list(active):
                    if now >= query.deadline:
                        active.remove(query)
                        reason = "no nameserver answered in time"
                        self._finish(query, _Answer(errno=socket.EAI_AGAIN, reason=reason), None)
                    elif now >= query.next_send:
                        self._send(query, now, active)
                busy = bool(active or new)
                if active:
                    wake_at = min(min(q.next_send, q.deadline) for q in active)
                    wait = max(0.0, wake_at - now)
                else:
                    wait = max(0.0, IDLE_SECONDS - (now - idle_since))
                for key, _ in self.selector.select(wait):
                    if key.data is None:
                        with contextlib.suppress(OSError):
                            while self._wake_r.recv(512):
                                pass
                    elif key.data in active and self._receive(key.data, key.fileobj):
                        active.remove(key.data)
                if busy:
                    idle_since = time.monotonic()
        finally:
            with resolver._lock:
                if resolver._loop is self:
                    resolver._loop = None
                left = active + self.inbox
                self.inbox = []
            for query in left:
                self._finish(query, _Answer(errno=socket.EAI_AGAIN, reason="resolver closed"), None)
            self.selector.close()
            self._wake_r.close()
            self._wake_w.close()

    def _send(self, query: _Query, now: float, active: list[_Query]) -> None:
        resolver = self.resolver
        server = resolver._server(query.sends, query.failed)
        query.sends += 1
        query.next_send = (
            now + resolver.timeout / resolver._tries
            if query.sends < resolver._tries
            else query.deadline
        )
        if server is None:
            return
        family = socket.AF_INET6 if ":" in server else socket.AF_INET
        sock = query.sockets.get(family)
        if sock is None:
            try:
                # A socket per query: a random source port for each, as RFC 5452 asks.
                sock = query.sockets[family] = socket.socket(family, socket.SOCK_DGRAM)
                sock.setblocking(False)
                self.selector.register(sock, selectors.EVENT_READ, query)
            except OSError as exc:  # out of descriptors, say
                active.remove(query)
                answer = _Answer(errno=socket.EAI_AGAIN, reason=f"cannot open a socket: {exc}")
                self._finish(query, answer, None)
                return
        with contextlib.suppress(OSError):
            # A failed send is a lost datagram: the next one is already scheduled.
            sock.sendto(query.wire, (server, resolver.port))

    def _receive(self, query: _Query, sock: Any) -> bool:
        """Read what arrived for ``query``; whether that finished it."""
        resolver = self.resolver
        while True:
            try:
                data, source = sock.recvfrom(65535)
            except OSError:  # nothing more to read (or an ICMP error): keep waiting
                return False
            server = _ip(source[0])
            if server not in resolver.nameservers or source[1] != resolver.port:
                continue  # not from a server we asked: ignore it, as RFC 5452 says
            try:
                response = dns.message.from_wire(data)
            except Exception:  # dnspython raises several kinds for malformed messages
                continue
            if not query.message.is_response(response):
                continue
            answer, ttl = resolver._interpret(response)
            if answer is not None:
                self._finish(query, answer, ttl)
                return True
            query.failed.add(server)
            if resolver._server(query.sends, query.failed) is None:
                failure = _Answer(errno=socket.EAI_AGAIN, reason="nameserver failure")
                self._finish(query, failure, None)
                return True
            query.next_send = time.monotonic()  # ask the next server now
            return False

    def _finish(self, query: _Query, answer: _Answer, ttl: float | None) -> None:
        resolver = self.resolver
        if ttl is not None:
            # Cached before the query leaves the table: a lookup in between finds
            # one or the other, never neither.
            resolver._cache.put(query.key, answer, ttl, time.monotonic())
        with resolver._lock:
            if self.queries.get(query.key) is query:
                del self.queries[query.key]
            waiters, query.waiters = query.waiters, []
        for sock in query.sockets.values():
            with contextlib.suppress(KeyError, ValueError):
                self.selector.unregister(sock)
            sock.close()
        query.sockets.clear()
        for job in waiters:
            # A lookup's done-callback that raises must not end the thread that all
            # the other lookups depend on.
            with contextlib.suppress(Exception):
                job.deliver(query.rdtype, answer)


# ---------------------------------------------------------------------- helpers


def _make_query(qname: dns.name.Name, rdtype: int) -> dns.message.QueryMessage:
    return dns.message.make_query(
        qname, dns.rdatatype.RdataType.make(rdtype), use_edns=0, payload=_PAYLOAD
    )


def _key(qname: dns.name.Name, rdtype: int) -> tuple[str, int]:
    return qname.to_text().lower(), rdtype


def _ip(text: str) -> str:
    try:
        return str(ipaddress.ip_address(text.partition("%")[0]))
    except ValueError:
        return text


def _is_literal(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return False
    return "%" not in host or address.version == 6


def _qname(host: str) -> dns.name.Name:
    """``host`` as an absolute DNS name; Unicode names are IDNA-encoded (UTS 46)."""
    try:
        if not host.isascii():
            host = idna.encode(host, uts46=True).decode("ascii")
        if not host.strip("."):
            raise ValueError("empty name")
        return dns.name.from_text(host)
    except (ValueError, idna.IDNAError, dns.exception.DNSException) as exc:
        raise NameResolutionError(
            f"{host!r} is not a valid DNS name: {exc}", nodename=host, errno=socket.EAI_NONAME
        ) from exc


def _candidates(
    host: str, port: int, rdtypes: Sequence[int], answers: dict[int, _Answer]
) -> list[Candidate]:
    """The candidates of the answers, in ``rdtypes`` order; if there are none, the
    error: a failure to get an answer outranks an answer that there is nothing."""
    result: list[Candidate] = []
    for rdtype in rdtypes:
        for address in answers[rdtype].addresses:
            if rdtype == _AAAA:
                result.append(Candidate(socket.AF_INET6, (address, port, 0, 0)))
            else:
                result.append(Candidate(socket.AF_INET, (address, port)))
    if result:
        return result
    failures = [answers[t] for t in rdtypes]
    worst = next((a for a in failures if a.errno != socket.EAI_NONAME), failures[0])
    raise NameResolutionError(
        f"cannot resolve {host!r}: {worst.reason}",
        nodename=host,
        servicename=port,
        errno=worst.errno,
    )


def _kinds(kind: int, proto: int) -> list[tuple[socket.SocketKind, int]]:
    if kind == 0:
        kinds = [(socket.SOCK_STREAM, socket.IPPROTO_TCP), (socket.SOCK_DGRAM, socket.IPPROTO_UDP)]
    elif kind == socket.SOCK_STREAM:
        kinds = [(socket.SOCK_STREAM, socket.IPPROTO_TCP)]
    elif kind == socket.SOCK_DGRAM:
        kinds = [(socket.SOCK_DGRAM, socket.IPPROTO_UDP)]
    else:
        raise socket.gaierror(socket.EAI_SOCKTYPE, "ai_socktype not supported")
    if proto:
        kinds = [(k, p) for k, p in kinds if p == proto]
        if not kinds:
            raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
    return kinds
