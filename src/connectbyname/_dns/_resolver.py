"""The engine's own resolver, run by the race loop: no thread, and the call's timeout
holds by construction.

A `Resolution` is one call's name lookup. It answers from the hosts file as glibc's
``files`` module does, else from the cache, else asks the nameservers of resolv.conf
on glibc's schedule (`_config.schedule`) and walks the search list as glibc does
(`_config.SearchWalk`). It opens its sockets through the race's `Net` (so they are in
a table from before their descriptors exist), the race watches them with its poller
and tells the resolution when one is ready or its timer is due, and the resolution
finishes one `Lookup` per family, as the lookup threads do, so the planner cannot tell
the two apart.

Queries: a random ID per packet, UDP sockets ``connect()``-ed to the nameserver (a
random source port each, and the kernel drops datagrams from anyone else, as for
glibc), EDNS0 (1232 bytes) as glibc sends it (with ``options edns0``) and on every
HTTPS query, the answer matched to its question, TCP to the same server when the
answer is truncated. AAAA and A (and HTTPS when asked for) go out
together on one socket, as glibc's A and AAAA do (`Exchange.share`); a query that
moves on to the next server goes on a socket of its own. Where this differs from glibc,
on purpose:

- answers are cached for their TTL (`_cache`), negative ones per RFC 2308;
- each record type keeps its own schedule: when A answers and AAAA does not, glibc
  waits three timeouts before returning A, and fails when AAAA answers but A does not;
  here each family's answer goes to the race as soon as it is there (RFC 8305), and
  the other's failure is that family's alone;
- glibc switches a thread to one query at a time after such a timeout, for good; this
  resolver never does, and ignores ``options single-request`` and
  ``single-request-reopen`` too (glibc then asks A first, and a failed A ends the
  lookup without AAAA being asked);
- glibc waits without limit for an answer over TCP (after a truncated answer, or with
  ``options use-vc``); here the server's turn ends as over UDP.
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import socket
import struct
from collections.abc import Callable, Iterator
from ipaddress import IPv6Network
from typing import NamedTuple

from .._errors import NameResolutionError
from .._info import Candidate
from .._plan import Endpoints
from .._resolve import Lookup
from . import _config, _sort, _wire
from ._cache import TTLCache

# What a race's socket layer offers a resolution (see _race.Net).
_NewSocket = Callable[[dict[int, socket.socket], int, socket.AddressFamily, int], socket.socket]

_READABLE = 1
_WRITABLE = 4

#: How long a negative answer without an SOA is kept (RFC 2308 says the SOA decides;
#: some servers send none).
NEGATIVE_TTL_WITHOUT_SOA = 5.0


# A named tuple rather than a frozen dataclass: one is made per answer, and a frozen
# dataclass built with keywords costs several times as much.
class Reply(NamedTuple):
    """What one question came to, as the cache keeps it: the addresses (or services)
    and how long they hold, or a failure kind (`_config.Outcome`) and rcode (with the
    addresses a failed reply carried anyway, which count only if the name is answered
    by the other family's reply, as in glibc)."""

    outcome: _config.Outcome
    rcode: int
    addresses: tuple[str, ...] = ()
    services: tuple[_wire.Service, ...] = ()
    ttl: float = 0.0
    #: The HTTPS records' owner name (the name asked, or the end of its CNAME chain):
    #: what a ServiceMode target of "." stands for.
    owner: str = ""


_CACHE: TTLCache[Reply] = TTLCache()

# `_config.Outcome`'s members that every query meets, as globals: on Python 3.11
# reading an enum's member through its class goes through the metaclass's
# ``__getattr__`` hook, several times the cost of a global (see `_info.CONNECTED`).
_SUCCESS = _config.Outcome.SUCCESS
_NODATA = _config.Outcome.NODATA
_NXDOMAIN = _config.Outcome.NXDOMAIN
_OTHER = _config.Outcome.OTHER
_TIMEOUT = _config.Outcome.TIMEOUT
_CONNREFUSED = _config.Outcome.CONNREFUSED


def clear_cache() -> None:
    """Forget every answer the engine's resolver keeps."""
    _CACHE.clear()


# Message IDs: random 16-bit numbers from the system's CSPRNG, drawn 256 at a time
# (one system call per 256 queries, not one per query). next() on the iterator is one
# C call, so two threads never take the same one; a child process draws its own.
_IDS: list[Iterator[tuple[int]]] = [iter(())]


def _new_ident() -> int:
    for (ident,) in _IDS[0]:
        return ident
    _IDS[0] = struct.iter_unpack(">H", os.urandom(512))
    return _new_ident()


def _forget_idents() -> None:
    _IDS[0] = iter(())


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_idents)


# The schedules in use, by configuration and offset: the configuration is one object
# until its files change, so its schedules are worked out once, not per query.
_SCHEDULES: dict[tuple[int, int], tuple[_config.ResolvConf, tuple[tuple[int, float], ...]]] = {}


def _schedule(conf: _config.ResolvConf, offset: int) -> tuple[tuple[int, float], ...]:
    found = _SCHEDULES.get((id(conf), offset))
    if found is not None and found[0] is conf:
        return found[1]
    if len(_SCHEDULES) >= 64:
        _SCHEDULES.clear()
    sends = tuple(_config.schedule(conf, offset))
    _SCHEDULES[id(conf), offset] = (conf, sends)
    return sends


class Exchange:
    """One question, asked of the nameservers on glibc's schedule."""

    __slots__ = (
        "_conf",
        "_deadline",
        "_failure",
        "_group",
        "_ident",
        "_key",
        "_message",
        "_new_socket",
        "_own_key",
        "_rcode",
        "_schedule",
        "_sockets",
        "_step",
        "_tcp",
        "name",
        "reply",
        "rtype",
    )

    def __init__(
        self,
        name: str,
        rtype: int,
        conf: _config.ResolvConf,
        *,
        sockets: dict[int, socket.socket],
        key: int,
        new_socket: _NewSocket,
        offset: int = 0,
    ) -> None:
        self.name = name
        self.rtype = rtype
        self._conf = conf
        self._schedule = _schedule(conf, offset)
        self._sockets = sockets
        self._key = self._own_key = key
        self._group: list[Exchange] | None = None
        self._new_socket = new_socket
        self._step = -1
        self._deadline = 0.0
        self._ident = 0
        self._message = b""
        self._tcp: _TCPState | None = None
        # How the exchange ends if no server answers: with no send at all (attempts:0)
        # it is as if every server refused at once.
        self._failure = _TIMEOUT if self._schedule else _CONNREFUSED
        self._rcode = _wire.NOERROR
        self.reply: Reply | None = None

    # The socket of this exchange, if any, is sockets[key]: its own (own_key), or,
    # for the first send, one it shares with the exchanges of its group.

    def share(self, group: list[Exchange], key: int) -> None:
        """Send the first query on one UDP socket with the rest of ``group`` (under
        ``key``), as glibc sends A and AAAA: one socket, one source port, the answers
        told apart by their IDs. Call before `start`; ``group`` holds every member."""
        self._group = group
        self._key = key

    def start(self, now: float) -> None:
        cached = _CACHE.get((self.name.lower(), self.rtype), now)
        if cached is not None:
            self.reply = cached
            return
        self._next_server(now)

    def deadline(self) -> float | None:
        return None if self.reply is not None else self._deadline

    def wants(self) -> tuple[int, int] | None:
        """The descriptor to watch and for what, while the exchange goes on."""
        sock = self._sockets.get(self._key)
        if self.reply is not None or sock is None:
            return None
        if self._tcp is not None and not self._tcp.connected:
            return sock.fileno(), _WRITABLE
        return sock.fileno(), _READABLE

    def on_time(self, now: float, discard: Callable[[socket.socket], None]) -> None:
        if self.reply is None and now >= self._deadline:
            self._next_server(now, discard)

    def on_ready(self, now: float, discard: Callable[[socket.socket], None]) -> None:
        receive([self], now, discard)

    def _on_message(
        self, data: bytes, now: float, discard: Callable[[socket.socket], None]
    ) -> None:
        if len(data) < 12:
            self._next_server(now, discard)
            return
        try:
            message = _wire.parse_response(data)
        except _wire.WireError:
            return  # not an answer to anything: keep waiting, as glibc does
        if not _wire.matches(message, self._ident, self.name, self.rtype):
            return
        if message.tc and self._tcp is None and not _fails_server(message):
            # As glibc (an error or lame reply fails the server, truncated or not):
            # this server again over TCP, then the others left in this pass,
            # over TCP too, and no further pass (_config.tcp_fallback).
            count = len(self._conf.nameservers)
            self._schedule = self._schedule[: (self._step // count + 1) * count]
            self._switch_to_tcp(now, discard)
            return
        self._answered(message, now, discard)

    def _answered(
        self, message: _wire.Message, now: float, discard: Callable[[socket.socket], None]
    ) -> None:
        rcode = message.rcode
        if self._tcp is None and _fails_server(message):
            # This server failed: the next one is asked at once. (Over TCP, glibc's
            # send_vc takes such a reply as the answer.)
            self._rcode = rcode
            self._failure = (
                _config.Outcome.SERVFAIL
                if rcode in (_wire.SERVFAIL, _wire.NOERROR)
                else _config.Outcome.REFUSED
            )
            self._next_server(now, discard)
            return
        self._finish(_reply(message, self.name, self.rtype), now, discard, cache=True)

    def _next_server(
        self, now: float, discard: Callable[[socket.socket], None] | None = None
    ) -> None:
        if self._step >= 0:
            self._close(discard)
        while True:
            self._step += 1
            if self._step >= len(self._schedule):
                outcome = self._failure
                self._finish(Reply(outcome, self._rcode), now, discard, cache=False)
                return
            index, wait = self._schedule[self._step]
            server = self._conf.nameservers[index]
            if self._conf.use_vc or self._tcp is not None:
                # options use-vc, or after a truncated answer: over TCP, one pass over
                # the servers (the schedule's); glibc waits without limit, here a
                # server's turn lasts as long as over UDP.
                self._new_query()
                self._deadline = now + _config.server_timeout(self._conf, index)
                self._switch_to_tcp(now, discard)
                return
            if self._send_udp(server, now, discard):
                self._deadline = now + wait
                return
            self._failure = _config.Outcome.CONNREFUSED  # no route, or refused at once

    def _new_query(self) -> None:
        self._ident = _new_ident()
        # EDNS0 as glibc sends it: only with options edns0, since some gateways drop
        # or garble a query that carries an OPT record (Go's resolver, which always
        # sends one, met it: golang/go#65197, #67925), and where the system's resolver
        # works the engine's must too. The HTTPS query always: glibc asks none, its
        # answer (hints, ECH configurations) may well pass 512 octets, and if a
        # gateway loses it only the service is lost, not the name.
        edns = self._conf.edns0 or self.rtype == _wire.HTTPS
        self._message = _wire.build_query(
            self.name,
            self.rtype,
            ident=self._ident,
            edns_payload=_wire.EDNS_PAYLOAD if edns else None,
            ad=self._conf.trust_ad,
        )

    def _send_udp(
        self,
        server: _config.Nameserver,
        now: float,
        discard: Callable[[socket.socket], None] | None,
    ) -> bool:
        family = socket.AF_INET6 if ":" in server.address else socket.AF_INET
        self._new_query()
        # A socket already under this key is the group's, made by a member for this
        # same server a moment ago (the group's first sends all go to one server).
        sock = self._sockets.get(self._key)
        try:
            if sock is None:
                sock = self._new_socket(self._sockets, self._key, family, socket.SOCK_DGRAM)
                sock.connect(server.sockaddr)
            sock.send(self._message)
        except OSError:
            if sock is not None:
                # On the group's socket the error may be an earlier send's (the ICMP
                # "port unreachable" of a member's query, which on loopback comes back
                # at once and waits for the next call on the socket): the server is out
                # for every query on it, as for an error on receive.
                for other in self._group or ():
                    if other is not self and other.reply is None and other._on(sock):
                        other._server_out(now, discard)
            self._close(None)
            return False
        return True

    def _on(self, sock: socket.socket) -> bool:
        """Whether this exchange waits on ``sock``."""
        return self._sockets.get(self._key) is sock

    def _server_out(self, now: float, discard: Callable[[socket.socket], None] | None) -> None:
        """Its socket failed (an ICMP error, as glibc takes ECONNREFUSED): the next
        server at once."""
        self._failure = _config.Outcome.CONNREFUSED
        self._next_server(now, discard)

    def _switch_to_tcp(self, now: float, discard: Callable[[socket.socket], None] | None) -> None:
        index = self._schedule[self._step][0]
        server = self._conf.nameservers[index]
        self._close(discard)
        family = socket.AF_INET6 if ":" in server.address else socket.AF_INET
        try:
            sock = self._new_socket(self._sockets, self._key, family, socket.SOCK_STREAM)
            code = sock.connect_ex(server.sockaddr)
        except OSError:
            self._close(discard)
            self._next_server(now, discard)
            return
        self._tcp = _TCPState(_wire.build_tcp(self._message))
        if code == 0:
            self._tcp.connected = True
        elif code not in (errno.EINPROGRESS, errno.EWOULDBLOCK, errno.EAGAIN):
            self._next_server(now, discard)

    def _on_tcp(
        self, now: float, sock: socket.socket, discard: Callable[[socket.socket], None]
    ) -> None:
        tcp = self._tcp
        assert tcp is not None
        try:
            if not tcp.connected:
                code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if code:
                    raise OSError(code, "connect failed")
                tcp.connected = True
            while tcp.outgoing:
                sent = sock.send(tcp.outgoing)
                tcp.outgoing = tcp.outgoing[sent:]
            while True:
                chunk = sock.recv(65537)
                if not chunk:
                    raise OSError(errno.ECONNRESET, "closed")
                tcp.incoming += chunk
                if len(tcp.incoming) >= 2:
                    size = int.from_bytes(tcp.incoming[:2], "big")
                    if len(tcp.incoming) >= 2 + size:
                        data = bytes(tcp.incoming[2 : 2 + size])
                        break
        except BlockingIOError:
            return
        except OSError:
            self._next_server(now, discard)
            return
        try:
            message = _wire.parse_response(data)
        except _wire.WireError:
            self._next_server(now, discard)
            return
        if not _wire.matches(message, self._ident, self.name, self.rtype):
            self._next_server(now, discard)
            return
        self._answered(message, now, discard)

    def _finish(
        self,
        reply: Reply,
        now: float,
        discard: Callable[[socket.socket], None] | None,
        *,
        cache: bool,
    ) -> None:
        self._close(discard)
        self.reply = reply
        if cache:
            _CACHE.put((self.name.lower(), self.rtype), reply, reply.ttl, now)

    def _close(self, discard: Callable[[socket.socket], None] | None) -> None:
        # Leaves the socket it used: closed, unless another member of its group still
        # waits on it. Whatever it sends next goes on a socket of its own.
        key = self._key
        self._key = self._own_key
        sock = self._sockets.get(key)
        if sock is None:
            return
        if self._group is not None and any(
            other._key == key and other.reply is None for other in self._group if other is not self
        ):
            return
        if discard is None:
            sock.close()
        else:
            discard(sock)
        del self._sockets[key]

    def close(self, discard: Callable[[socket.socket], None]) -> None:
        self._close(discard)


def receive(users: list[Exchange], now: float, discard: Callable[[socket.socket], None]) -> None:
    """Read what came on the socket ``users`` wait on (one socket: an exchange's own,
    or its group's), each datagram to the exchange whose ID it carries."""
    first = users[0]
    sock = first._sockets.get(first._key)
    if sock is None:
        return
    if first._tcp is not None:
        if first.reply is None:
            first._on_tcp(now, sock, discard)
        return
    while True:
        waiting = [u for u in users if u.reply is None and u._on(sock)]
        if not waiting:
            return  # answered, or moved on to another server or to TCP
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            return
        except OSError:  # ICMP port unreachable, or the like: this server is out
            for user in waiting:
                user._server_out(now, discard)
            return
        # The ID first, as glibc (a datagram too short for a header fails the server
        # for every query on the socket, as glibc's send_dg fails both).
        ident = data[0] << 8 | data[1] if len(data) >= 12 else -1
        for user in waiting:
            if ident < 0 or ident == user._ident:
                user._on_message(data, now, discard)


class _AForAAAA(Exchange):
    """glibc's ``no-aaaa`` for an IPv6 lookup alone (``__res_handle_no_aaaa``): an A
    query in place of the AAAA one, of whose reply only the rcode counts (the records
    are dropped: an answer is NODATA, NXDOMAIN stays NXDOMAIN, a server's failure its
    failure). Its own reply is cached as the A answer it is."""

    __slots__ = ()

    def __init__(
        self,
        name: str,
        rtype: int,
        conf: _config.ResolvConf,
        *,
        sockets: dict[int, socket.socket],
        key: int,
        new_socket: _NewSocket,
        offset: int = 0,
    ) -> None:
        super().__init__(
            name, _wire.A, conf, sockets=sockets, key=key, new_socket=new_socket, offset=offset
        )

    def start(self, now: float) -> None:
        super().start(now)
        self._drop_records()

    def _finish(
        self,
        reply: Reply,
        now: float,
        discard: Callable[[socket.socket], None] | None,
        *,
        cache: bool,
    ) -> None:
        super()._finish(reply, now, discard, cache=cache)
        self._drop_records()

    def _drop_records(self) -> None:
        reply = self.reply
        if reply is not None and reply.outcome is _SUCCESS:
            self.reply = Reply(_NODATA, reply.rcode, ttl=reply.ttl)


class _TCPState:
    __slots__ = ("connected", "incoming", "outgoing")

    def __init__(self, outgoing: bytes) -> None:
        self.connected = False
        self.outgoing = outgoing
        self.incoming = bytearray()


#: A reply that fails its server, by rcode, and what it makes of the exchange when every
#: server fails so (a "lame" NOERROR reply leaves a timeout's mark: see _config.Outcome).
_SERVER_FAILURE = {
    _wire.SERVFAIL: _config.Outcome.SERVFAIL,
    _wire.REFUSED: _config.Outcome.REFUSED,
    _wire.NOTIMP: _config.Outcome.REFUSED,
}


def _fails_server(message: _wire.Message) -> bool:
    """A reply that ends this server's turn (``send_dg``): SERVFAIL, NOTIMP, REFUSED, or
    a lame one."""
    return message.rcode in (_wire.SERVFAIL, _wire.NOTIMP, _wire.REFUSED) or _is_lame(message)


def _is_lame(message: _wire.Message) -> bool:
    """glibc's "lame" reply: no answer, not authoritative, no recursion available and
    nothing in the additional section (an EDNS OPT record aside)."""
    return (
        message.rcode == _wire.NOERROR
        and not message.answers
        and not message.aa
        and not message.ra
        and not [r for r in message.additional if r.rtype != _wire.OPT]
    )


def _reply(message: _wire.Message, name: str, rtype: int) -> Reply:
    """What a reply that ended the exchange says, with how long it may be kept."""
    latent: tuple[str, ...] = ()
    if rtype == _wire.HTTPS:
        found = _wire.services(message, name)
        # As for addresses: only a NOERROR reply answers.
        if (found.services or found.aliases) and message.rcode == _wire.NOERROR:
            return Reply(
                _SUCCESS,
                message.rcode,
                services=found.services or found.aliases,
                ttl=found.ttl or 0,
                owner=found.owner,
            )
    else:
        answer = _wire.addresses(message, name, rtype)
        if answer.addresses and message.rcode == _wire.NOERROR:
            return Reply(
                _SUCCESS,
                message.rcode,
                addresses=answer.addresses,
                ttl=answer.ttl or 0,
            )
        # Only a NOERROR reply answers (glibc's __res_context_query). The records of
        # another (an NXDOMAIN with records...) are kept: when the other family's
        # reply answers, glibc takes them too (gaih_getanswer reads both buffers).
        latent = answer.addresses
    if message.answers and message.rcode == _wire.NOERROR:
        # Records, but none of this type for the name: glibc's "success" for the walk
        # (either reply NOERROR with answers), with no address from this one.
        outcome = _SUCCESS
    elif message.rcode == _wire.NXDOMAIN:
        outcome = _NXDOMAIN
    elif message.rcode == _wire.NOERROR:
        outcome = _NODATA
    else:
        outcome = _OTHER
    ttl = _wire.negative_ttl(message)
    return Reply(
        outcome,
        message.rcode,
        addresses=latent,
        ttl=NEGATIVE_TTL_WITHOUT_SOA if ttl is None else ttl,
    )


_RTYPE = {socket.AF_INET6: _wire.AAAA, socket.AF_INET: _wire.A}

#: How many AliasMode records are followed (RFC 9460 section 3 asks for a limit).
MAX_ALIASES = 4
#: The SvcParamKeys this client can honour; a record that makes another mandatory is
#: skipped (RFC 9460 section 8). ``ech`` is not among them: Python's ssl cannot use it.
SUPPORTED_KEYS = frozenset(
    {
        _wire.KEY_MANDATORY,
        _wire.KEY_ALPN,
        _wire.KEY_NO_DEFAULT_ALPN,
        _wire.KEY_PORT,
        _wire.KEY_IPV4HINT,
        _wire.KEY_IPV6HINT,
    }
)


#: The protocols of an https:// connection over TCP and TLS (RFC 9460 section 7.1.2).
TCP_ALPNS = frozenset({"http/1.1", "h2"})


def _usable(record: _wire.Service) -> bool:
    """Whether a record is for this client: no mandatory key it cannot honour, and
    an ALPN set (its ``alpn``, with "http/1.1" unless ``no-default-alpn``) that names a
    protocol it speaks over TCP (HEv3 section 6.2: an ``h3``-only endpoint is QUIC's)."""
    if not all(key in SUPPORTED_KEYS for key in record.mandatory):
        return False
    if record.no_default_alpn:
        return not TCP_ALPNS.isdisjoint(record.alpn)
    return True


#: The service an alias target with no usable ServiceMode record offers: its own
#: addresses, no parameters.
_NO_PARAMETERS = _wire.Service(1, ".")


def _unprefixed(name: str, port: int) -> str:
    """``name`` without the port prefix `_https_name` puts on it (if any)."""
    prefix = f"_{port}._https."
    return name[len(prefix) :] if port != 443 and name.lower().startswith(prefix) else name


#: The socket-table key of the socket the name's own queries share (see `Exchange.share`).
_SHARED_KEY = -1


#: A name glibc takes for a malformed IPv4 address (AF_INET): digits and dots, a digit
#: first, no dot last.
_DIGITS_DOTS = re.compile(r"[0-9][0-9.]*(?<!\.)", re.ASCII)
_ADDRESS_TYPES = (_wire.AAAA, _wire.A)


class Resolution:
    """One call's lookup of ``host`` on the engine's own resolver: a `Lookup` per
    family in ``lookups`` (AAAA and A, or the one family asked for), finished as the
    answers come; and, with ``https``, the HTTPS records in ``services``.

    The race drives it: `watch` (what to wait for), `timer` (until when), `on_ready`
    and `on_time` (something happened), `close` (on every way out)."""

    __slots__ = (
        "_alias",
        "_config",
        "_done_order",
        "_every",
        "_exchanges",
        "_host",
        "_new_socket",
        "_port",
        "_registered",
        "_service_depth",
        "_sockets",
        "_stale",
        "_target_keys",
        "_targets",
        "_timer",
        "_walk",
        "https",
        "lookups",
        "services",
        "target_lookups",
    )

    def __init__(
        self,
        config: _config.SystemConfig,
        host: str,
        port: int,
        families: tuple[socket.AddressFamily, ...],
        new_socket: _NewSocket,
        *,
        https: bool = False,
    ) -> None:
        self._config = config
        self._host = host
        self._port = port
        self._new_socket = new_socket
        self.lookups = {family: Lookup(family) for family in families}
        self.https = https
        #: The HTTPS records' endpoints, once known (``()``: none, or not asked).
        self.services: tuple[Endpoints, ...] | None = None if https else ()
        #: The A/AAAA lookups of the HTTPS records' target names, as they start.
        self.target_lookups: list[Lookup] = []
        self._targets: dict[tuple[str, int], Exchange] = {}
        # Socket-table keys of the target names' exchanges: after the name's own, and
        # never one twice (an exchange dropped from _targets may still hold its key).
        self._target_keys = itertools.count(16)
        self._service_depth = 0
        #: The HTTPS exchange at an AliasMode record's target, while it runs.
        self._alias: Exchange | None = None
        self._sockets: dict[int, socket.socket] = {}
        self._exchanges: dict[int, Exchange] = {}
        self._done_order: list[int] = []
        self._registered: set[int] = set()
        self._walk: _config.SearchWalk | None = None
        # The exchanges (_exchanges' and _targets'), and whether what they wait for
        # may have changed since `watch` and `timer` last looked: the race asks both
        # on every turn, and most turns are about an attempt, not the resolution.
        self._every: list[Exchange] = []
        self._stale = True
        self._timer: float | None = None

    def start(self, now: float) -> None:
        """Answer from the hosts file if it lists the name, else start asking."""
        self._stale = True
        host, families = self._host, tuple(self.lookups)
        if self._numeric(host, families):
            return
        # nsswitch.conf is "files dns" (else the system's getaddrinfo answers): the
        # hosts file first, per family as glibc's files module does (one lookup of both
        # families for AF_UNSPEC: a name listed for IPv4 only gets no AAAA query).
        family = families[0] if len(families) == 1 else socket.AF_UNSPEC
        found = self._config.lookup_hosts(host, family)
        if found is not None:
            self._answer_from_hosts(found)
            return
        # Only the dns module checks the name (res_hnok): the files module takes any.
        if not _config.check_name(host):
            self._fail_all(socket.EAI_NONAME, "not a valid host name")
            return
        walk = self._walk = _config.SearchWalk(host, self._config.resolv)
        name = walk.first()
        if name is None:
            self._walk_failed(walk)
            return
        self._ask(name, now)

    def _numeric(self, host: str, families: tuple[socket.AddressFamily, ...]) -> bool:
        """glibc's answers for IPv4 numbers-and-dots, before any source: an
        ``inet_aton`` form (``127.1``, ``0x7f.1``, ``123``) is that IPv4 address
        (EAI_ADDRFAMILY for AF_INET6); for AF_INET alone, another name of digits and
        dots not ending in a dot (``1.2.3.4.5``) is EAI_NONAME with no query
        (``__nss_hostname_digits_dots``). Whether it answered."""
        packed = _config.inet_aton_exact(host)
        if packed is not None:
            address = socket.inet_ntoa(packed)
            for family, lookup in self.lookups.items():
                if family == socket.AF_INET:
                    lookup.finish([_candidate(family, address, self._port)], None)
                else:
                    lookup.finish([], self._error(socket.EAI_ADDRFAMILY, "an IPv4 address"))
        elif families == (socket.AF_INET,) and _DIGITS_DOTS.fullmatch(host):
            self._fail_all(socket.EAI_NONAME, "not a valid IPv4 address")
        else:
            return False
        self.services = ()
        return True

    def _answer_from_hosts(self, addresses: tuple[str, ...]) -> None:
        for family, lookup in self.lookups.items():
            mine = [a for a in addresses if (":" in a) == (family == socket.AF_INET6)]
            if mine:
                lookup.finish([_candidate(family, a, self._port) for a in mine], None)
            else:
                lookup.finish([], self._error(socket.EAI_NODATA, "no address of that family"))
        self.services = ()

    def _ask(
        self, name: str, now: float, discard: Callable[[socket.socket], None] | None = None
    ) -> None:
        resolv = self._config.resolv
        types = [_RTYPE[f] for f, lookup in self.lookups.items() if not lookup.done()]
        if resolv.no_aaaa and _wire.AAAA in types and _wire.A in types:
            # glibc's no-aaaa, both families: only A is asked, and the IPv6 lookup ends
            # with the walk, without an address (alone, it asks A: see _AForAAAA).
            types.remove(_wire.AAAA)
        if self.https and self.services is None and self._alias is None:
            types.append(_wire.HTTPS)
        self._done_order = []
        # options rotate: the first server asked moves on by one per name, as glibc's
        # per-process offset (one per send of A and AAAA together).
        offset = _config.next_rotate_offset(resolv)
        group: list[Exchange] = []
        for number, rtype in enumerate(types):
            qname = _https_name(name, self._port) if rtype == _wire.HTTPS else name
            kind = _AForAAAA if rtype == _wire.AAAA and resolv.no_aaaa else Exchange
            exchange = kind(
                qname,
                rtype,
                resolv,
                sockets=self._sockets,
                key=number,
                new_socket=self._new_socket,
                offset=offset,
            )
            exchange.share(group, _SHARED_KEY)
            group.append(exchange)
            self._exchanges[rtype] = exchange
            self._every.append(exchange)
            exchange.start(now)
        self._advance(now, discard)

    # -- what the race calls -------------------------------------------------------

    def watch(self, register: Callable[[int, int], None]) -> None:
        """Register every descriptor the resolution waits on that is not registered."""
        if not self._stale:
            return
        self._stale = False
        for exchange in self._every:
            wanted = exchange.wants()
            if wanted is not None and wanted[0] not in self._registered:
                self._registered.add(wanted[0])
                register(*wanted)
        self._timer = self._earliest()

    def owns(self, fd: int) -> bool:
        return fd in self._registered

    def timer(self) -> float | None:
        return self._earliest() if self._stale else self._timer

    def _earliest(self) -> float | None:
        deadlines = [d for e in self._every if (d := e.deadline()) is not None]
        return min(deadlines) if deadlines else None

    def on_ready(self, fd: int, now: float, discard: Callable[[socket.socket], None]) -> None:
        self._stale = True
        self._registered.discard(fd)
        users = [e for e in self._every if (wanted := e.wants()) is not None and wanted[0] == fd]
        if users:
            receive(users, now, self._discarding(discard))
        self._advance(now, discard)

    def on_time(self, now: float, discard: Callable[[socket.socket], None]) -> None:
        timer = self.timer()
        if timer is None or now < timer:
            return  # no exchange is due (each acts only at its deadline)
        self._stale = True
        for exchange in self._every:
            exchange.on_time(now, self._discarding(discard))
        self._advance(now, discard)

    def pending(self) -> bool:
        """Whether anything is still being asked."""
        return any(e.reply is None for e in self._every)

    def close(self, discard: Callable[[socket.socket], None]) -> None:
        """Close every socket (the race's cleanup: also on an interruption)."""
        self._stale = True
        for exchange in self._every:
            exchange.close(self._discarding(discard))
        for lookup in self.target_lookups:
            lookup.abandon()
        while self._sockets:
            key = next(iter(self._sockets))
            discard(self._sockets[key])
            del self._sockets[key]

    # -- deciding ------------------------------------------------------------------

    def _discarding(
        self, discard: Callable[[socket.socket], None]
    ) -> Callable[[socket.socket], None]:
        def forget(sock: socket.socket) -> None:
            self._registered.discard(sock.fileno())
            discard(sock)

        return forget

    def _advance(self, now: float, discard: Callable[[socket.socket], None] | None) -> None:
        # The HTTPS chain first: it goes on after the name's own lookups ended.
        alias = self._alias
        if alias is not None and alias.reply is not None:
            self._alias = None
            self._on_services(alias.reply, now, alias.name, discard)
        exchanges = self._exchanges
        https = exchanges.get(_wire.HTTPS)
        if https is not None and https.reply is not None and self.services is None:
            del exchanges[_wire.HTTPS]  # answered: the walk's next name asks no more
            self._on_services(https.reply, now, https.name, discard)
        self._finish_targets()
        if not exchanges:
            return
        for rtype, exchange in exchanges.items():
            if exchange.reply is not None and rtype not in self._done_order:
                self._done_order.append(rtype)
        address_types = [t for t in self._done_order if t in _ADDRESS_TYPES]
        replies = [exchanges[t].reply for t in address_types]
        if any(r is not None and r.outcome is _SUCCESS for r in replies):
            # This name is the one (glibc: either reply with answers); each family's
            # answer goes to the race as it comes.
            for family, lookup in self.lookups.items():
                found = exchanges.get(_RTYPE[family])  # None: not asked (no-aaaa)
                reply = None if found is None else found.reply
                if lookup.done() or (found is not None and reply is None):
                    continue
                if reply is not None and reply.addresses:
                    lookup.finish(
                        [_candidate(family, a, self._port) for a in reply.addresses], None
                    )
                else:
                    lookup.finish([], self._no_address())
            if not self.pending() and self.services is None:
                self.services = ()
            return
        if any(e.reply is None for t, e in exchanges.items() if t in _ADDRESS_TYPES):
            return  # still waiting for an address type at this name
        outcome = _combined(replies)
        if outcome is _NODATA and _wire.HTTPS in exchanges:
            # The name is there without addresses: its HTTPS record may be an alias
            # (RFC 9460 section 2.4.2; the usual case at a zone's apex) or name
            # another target. It decides before the walk moves on.
            return
        walk = self._walk
        assert walk is not None
        following = walk.next(outcome)
        # An exchange still running (HTTPS) is closed with its name: its socket must not
        # stay in the table for the next name's queries. (No discard: the resolution's
        # start, whose sockets nothing watches yet.)
        closing = None if discard is None else self._discarding(discard)
        for exchange in exchanges.values():
            exchange._close(closing)
        self._exchanges = {}
        self._every = list(self._targets.values())
        self._done_order = []
        if following is None:
            self._walk_failed(walk)
            return
        self._ask(following, now, discard)

    def _on_services(
        self,
        reply: Reply,
        now: float,
        asked: str,
        discard: Callable[[socket.socket], None] | None,
    ) -> None:
        """The HTTPS answer for ``asked`` (RFC 9460 section 3, as Happy Eyeballs v3
        uses it): an AliasMode record sends the query on to its target (a few times at
        most), whose A/AAAA are asked at once too; ServiceMode records, those this
        client can use, become endpoints: their address hints now, and their target's
        A/AAAA when they come. An alias target with no usable ServiceMode record is
        the endpoint itself (its A/AAAA, no parameters)."""
        # The name a ServiceMode target of "." stands for: the records' owner (the
        # name asked, or the end of its CNAME chain), without a port prefix (RFC 9460
        # section 9.1: "_8080._https.example.com" stands for example.com).
        owner = _unprefixed(reply.owner or asked, self._port).rstrip(".")
        records = [r for r in reply.services if _usable(r)]
        aliases = [r for r in records if r.priority == 0]
        if aliases:
            target = aliases[0].target
            key = (target, _wire.HTTPS)
            if target == "." or self._service_depth >= MAX_ALIASES or key in self._targets:
                # "." is "no service here" (RFC 9460 section 2.5.1); a chain too long or
                # looping is a failed SVCB resolution (section 3): the name's own
                # addresses, with no service.
                self._drop_targets("", discard)
                self.services = ()
                return
            self._service_depth += 1
            exchange = Exchange(
                target,
                _wire.HTTPS,
                self._config.resolv,
                sockets=self._sockets,
                key=next(self._target_keys),
                new_socket=self._new_socket,
            )
            self._targets[key] = exchange
            self._every.append(exchange)
            self._alias = exchange
            name = self._endpoint_name(target)
            self._drop_targets(name, discard)
            if name:
                self._start_targets(name, now)
            exchange.start(now)
            return
        endpoints = []
        for record in sorted((r for r in records if r.priority), key=lambda r: r.priority):
            target = self._endpoint_name(owner if record.target == "." else record.target)
            port = record.port or self._port
            hints = [_candidate(socket.AF_INET6, a, port) for a in record.ipv6hint]
            hints += [_candidate(socket.AF_INET, a, port) for a in record.ipv4hint]
            endpoints.append(Endpoints(target, record, hints))
        if not endpoints and self._service_depth:
            # The alias target has no ServiceMode record this client can use: its own
            # addresses are the service (RFC 9460 section 2.4.2).
            endpoints.append(Endpoints(self._endpoint_name(owner), _NO_PARAMETERS, []))
        self._drop_targets([e.target for e in endpoints], discard)
        for endpoint in endpoints:
            if endpoint.target:
                self._start_targets(endpoint.target, now)
        self.services = tuple(endpoints)

    def _endpoint_name(self, name: str) -> str:
        """A target name as the planner knows it: ``""`` for the call's own name."""
        name = name.rstrip(".")
        return "" if name.lower() == self._host.rstrip(".").lower() else name

    def _drop_targets(
        self, keep: str | list[str], discard: Callable[[socket.socket], None] | None
    ) -> None:
        """Stop the A/AAAA lookups of alias targets the chain has left behind."""
        wanted = {keep} if isinstance(keep, str) else set(keep)
        for lookup in [lookup for lookup in self.target_lookups if lookup.target not in wanted]:
            self.target_lookups.remove(lookup)
            exchange = self._targets.pop((lookup.target, _RTYPE[lookup.family]), None)
            if exchange is not None:
                self._every.remove(exchange)
                exchange._close(None if discard is None else self._discarding(discard))
            lookup.abandon()

    def _start_targets(self, target: str, now: float) -> None:
        for family, rtype in ((socket.AF_INET6, _wire.AAAA), (socket.AF_INET, _wire.A)):
            if (target, rtype) in self._targets or family not in self.lookups:
                continue
            exchange = Exchange(
                target,
                rtype,
                self._config.resolv,
                sockets=self._sockets,
                key=next(self._target_keys),
                new_socket=self._new_socket,
            )
            self._targets[(target, rtype)] = exchange
            self._every.append(exchange)
            self.target_lookups.append(Lookup(family, target))
            exchange.start(now)

    def _finish_targets(self) -> None:
        if self.services is None:
            return  # an alias target's, prefetched: its port is the service's
        for lookup in self.target_lookups:
            exchange = self._targets.get((lookup.target, _RTYPE[lookup.family]))
            if lookup.done() or exchange is None or exchange.reply is None:
                continue
            reply, port = exchange.reply, self._port
            for endpoints in self.services or ():
                if endpoints.target == lookup.target and endpoints.service.port:
                    port = endpoints.service.port
            lookup.finish([_candidate(lookup.family, a, port) for a in reply.addresses], None)

    def _walk_failed(self, walk: _config.SearchWalk) -> None:
        """The search walk ended without an answer: its error, for the family asked
        (AF_INET alone maps it as glibc's gethostbyname2_r does)."""
        families = tuple(self.lookups)
        self._fail_all(walk.error(families[0] if len(families) == 1 else socket.AF_UNSPEC), "")

    def _no_address(self) -> NameResolutionError:
        """A family without an address at the name the walk stopped at (a reply had
        records, none an address of this name: only a CNAME, another owner...). glibc
        says EAI_NONAME (``gaih_getanswer``: NOTFOUND; AF_INET6's ``getanswer_r``:
        NO_RECOVERY), and EAI_NODATA for AF_INET alone (``try_simple_gethostbyname``
        maps that NO_RECOVERY so)."""
        alone_v4 = tuple(self.lookups) == (socket.AF_INET,)
        code = socket.EAI_NODATA if alone_v4 else socket.EAI_NONAME
        return self._error(code, "no address of that family")

    def _fail_all(self, code: int, reason: str) -> None:
        for lookup in self.lookups.values():
            if not lookup.done():
                lookup.finish([], self._error(code, reason))
        if self.services is None and self._alias is None:
            self.services = ()

    def _error(self, code: int, reason: str) -> NameResolutionError:
        text = reason or _gai_strerror(code)
        return NameResolutionError(
            f"cannot resolve {self._host!r}: {text}",
            nodename=self._host,
            servicename=self._port,
            errno=code,
        )


def _combined(replies: list[Reply | None]) -> _config.Outcome:
    """What a name's replies (in the order they came) say, as glibc's
    ``__res_context_query`` reads its two answer buffers."""
    answered = [
        r
        for r in replies
        if r is not None
        and r.outcome in (_config.Outcome.NXDOMAIN, _config.Outcome.NODATA, _config.Outcome.OTHER)
    ]
    if not answered:
        # No server answered either question: both went the same way (glibc asks
        # both on one socket), or the first to end tells.
        failures = [r.outcome for r in replies if r is not None]
        return failures[0] if failures else _config.Outcome.TIMEOUT
    first = answered[0]
    rcode = first.rcode if first.rcode != _wire.NOERROR or len(answered) == 1 else answered[1].rcode
    if rcode == _wire.NXDOMAIN:
        return _config.Outcome.NXDOMAIN
    if rcode == _wire.NOERROR:
        return _config.Outcome.NODATA
    if rcode == _wire.SERVFAIL:  # an answer: over TCP
        return _config.Outcome.SERVFAIL_ANSWER
    return _config.Outcome.OTHER


def _https_name(name: str, port: int) -> str:
    """RFC 9460 section 9.1: the HTTPS query for another port than 443 is
    ``_PORT._https.NAME``."""
    return name if port == 443 else f"_{port}._https.{name}"


def _candidate(family: socket.AddressFamily, address: str, port: int) -> Candidate:
    if family == socket.AF_INET6:
        return Candidate(family, (address, port, 0, 0))
    return Candidate(family, (address, port))


def _gai_strerror(code: int) -> str:
    return {
        socket.EAI_NONAME: "Name or service not known",
        socket.EAI_AGAIN: "Temporary failure in name resolution",
        socket.EAI_NODATA: "No address associated with hostname",
    }.get(code, f"resolution failed (EAI {code})")


# ---------------------------------------------------------------------------- NAT64

#: The name whose AAAA answer tells a NAT64's prefix (RFC 7050).
IPV4ONLY_ARPA = "ipv4only.arpa."
#: How long a discovered prefix (or its absence) is kept when the answer gives no TTL.
NAT64_TTL = 300.0


class Nat64:
    """The network's NAT64 prefixes, as RFC 7050 discovers them, kept for the answer's
    TTL: process-wide, since the network is."""

    def __init__(self) -> None:
        self._prefixes: tuple[IPv6Network, ...] = ()
        self._until = 0.0

    def known(self, now: float) -> tuple[IPv6Network, ...] | None:
        """The prefixes (empty: the network has none), or ``None`` if not known now."""
        return self._prefixes if now < self._until else None

    def learn(self, reply: Reply, now: float) -> None:
        self._prefixes = tuple(_sort.discover_prefixes(reply.addresses))
        self._until = now + (reply.ttl or NAT64_TTL)

    def forget(self) -> None:
        self._until = 0.0


NAT64 = Nat64()


def synthesized(candidate: Candidate, prefixes: tuple[IPv6Network, ...]) -> Candidate | None:
    """``candidate`` (IPv4) written in the network's first NAT64 prefix (RFC 6052), or
    ``None`` when that address may not be reached that way (loopback, link-local, ...;
    see `_sort.may_synthesize`)."""
    for prefix in prefixes:
        ipv4 = candidate.address[0]
        if _sort.may_synthesize(prefix, ipv4):
            return Candidate(
                socket.AF_INET6, (_sort.synthesize(prefix, ipv4), candidate.address[1], 0, 0)
            )
    return None


class Discovery:
    """One call's NAT64 prefix discovery: the AAAA query for ``ipv4only.arpa`` on the
    race's sockets, like a `Resolution`'s (and driven the same way)."""

    __slots__ = ("_exchange", "_registered", "_sockets")

    def __init__(self, config: _config.SystemConfig, new_socket: _NewSocket, now: float) -> None:
        self._sockets: dict[int, socket.socket] = {}
        self._registered: set[int] = set()
        self._exchange = Exchange(
            IPV4ONLY_ARPA,
            _wire.AAAA,
            config.resolv,
            sockets=self._sockets,
            key=0,
            new_socket=new_socket,
        )
        self._exchange.start(now)
        self._learn(now)

    def done(self) -> bool:
        return self._exchange.reply is not None

    def _learn(self, now: float) -> None:
        if self._exchange.reply is not None:
            NAT64.learn(self._exchange.reply, now)

    def watch(self, register: Callable[[int, int], None]) -> None:
        wanted = self._exchange.wants()
        if wanted is not None and wanted[0] not in self._registered:
            self._registered.add(wanted[0])
            register(*wanted)

    def owns(self, fd: int) -> bool:
        return fd in self._registered

    def timer(self) -> float | None:
        return self._exchange.deadline()

    def on_ready(self, fd: int, now: float, discard: Callable[[socket.socket], None]) -> None:
        self._registered.discard(fd)
        self._exchange.on_ready(now, discard)
        self._learn(now)

    def on_time(self, now: float, discard: Callable[[socket.socket], None]) -> None:
        self._exchange.on_time(now, discard)
        self._learn(now)

    def close(self, discard: Callable[[socket.socket], None]) -> None:
        self._exchange.close(discard)
        while self._sockets:
            key = next(iter(self._sockets))
            discard(self._sockets[key])
            del self._sockets[key]
