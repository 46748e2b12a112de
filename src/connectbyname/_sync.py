"""The synchronous driver: the race loop (``_race``) waited for with ``select.poll``, in
the caller's thread. It decides nothing: it waits until the race loop's next time, or
until a watched descriptor turns ready, and hands back what happened.

The descriptors are watched with ``select.poll`` itself rather than through a
``selectors`` selector: on loopback a whole connect takes some 30 microseconds, and the
selector's bookkeeping (key objects, a descriptor map, one more layer per call) cost
several of them. poll needs no descriptor of its own (epoll does), so a call's
footprint stays at its attempt sockets. Where poll is missing, a ``selectors`` selector
stands in behind the same methods (`_SelectorPoll`).
"""

from __future__ import annotations

import _socket
import _thread
import contextlib
import errno
import itertools
import select
import selectors
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterable

from ._errors import InvalidParameterError, NotASocketError
from ._events import OBSERVERS, EventListener
from ._history import ConnectionHistory
from ._info import Address, Connection
from ._observe import observed_race
from ._parse import (
    DEFAULT_ATTEMPT_DELAY,
    DEFAULT_RESOLUTION_DELAY,
    CallOptions,
    Options,
    SocketOption,
    Target,
    TLSOptions,
    check_adapter_call,
    check_connect,
)
from ._policy import Policy
from ._race import NET, READABLE, WRITABLE, Events, Net, race
from ._resolve import Lookup, Resolver, start_lookup

#: The longest single wait: poll() takes milliseconds in a C int, and a far deadline
#: (a timeout of years) is reached by waiting again.
MAX_WAIT = 86_400.0


class _SelectorPoll:
    """``select.poll``'s interface over a ``selectors`` selector, for systems without
    poll: descriptors in, ``(descriptor, event mask)`` pairs out."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()

    def register(self, fd: int, mask: int) -> None:
        events = selectors.EVENT_WRITE if mask & WRITABLE else selectors.EVENT_READ
        self._selector.register(fd, events)

    def unregister(self, fd: int) -> None:
        self._selector.unregister(fd)

    def poll(self, milliseconds: float | None = None) -> list[tuple[int, int]]:
        timeout = None if milliseconds is None else milliseconds / 1000
        return [
            (key.fd, WRITABLE if events & selectors.EVENT_WRITE else READABLE)
            for key, events in self._selector.select(timeout)
        ]

    def close(self) -> None:
        self._selector.close()


_new_poll: Callable[[], select.poll | _SelectorPoll] = getattr(select, "poll", _SelectorPoll)
#: socketpair() in C where it is (POSIX); socket.py's stand-in elsewhere.
_SOCKETPAIR: Callable[[], tuple[_socket.socket, _socket.socket]] = getattr(
    _socket, "socketpair", socket.socketpair
)


class PollPoller:
    """The sync driver's `Poller`: one ``select.poll`` set, made at the first wait
    that needs it (a connect over inside connect() needs none).

    Lookup threads wake the wait through `notify`: a bare lock used as a flag while no
    descriptor is watched (cheaper), and a socket pair, made only then, while some are.
    """

    may_block = True

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._poll: select.poll | _SelectorPoll | None = None
        self._watched: set[int] = set()
        self._lock = threading.Lock()
        # Set by a lookup thread when its lookup finishes: a bare lock, held while not
        # set. Not a threading.Event: its wait() and set() run Python-level Condition
        # code, which an interruption (Ctrl-C) can leave with the condition's lock held
        # for good (Condition.__enter__ interrupted after it acquired), and every later
        # set(), in a lookup thread, then waits for ever.
        self._woken: _thread.LockType | None = None
        # The wake-up pair, once made: a list that holds it (see _open_pair).
        self._pairs: list[tuple[_socket.socket, _socket.socket]] = []
        self._pair: tuple[_socket.socket, _socket.socket] | None = None
        self._pair_fd = -1

    def register(self, fd: int, events: int) -> None:
        if self._poll is None:
            self._poll = _new_poll()
        self._poll.register(fd, events)
        self._watched.add(fd)

    def discard(self, sock: socket.socket) -> None:
        fd = sock.fileno()
        if fd in self._watched:
            self._watched.discard(fd)
            assert self._poll is not None
            # Not registered after all if an interruption came between the two steps
            # of register(): the socket must close all the same.
            with contextlib.suppress(KeyError):
                self._poll.unregister(fd)
        sock.close()

    def start_lookup(
        self, resolver: Resolver, host: str, port: int, family: socket.AddressFamily
    ) -> Lookup:
        if self._woken is None:
            woken = _thread.allocate_lock()
            woken.acquire()
            self._woken = woken
        lookup = start_lookup(resolver, host, port, family)
        lookup.add_done_callback(self._notify)
        return lookup

    def _notify(self, _lookup: object) -> None:
        # From a lookup thread. Under the lock: the driver may be closing the pair.
        woken = self._woken
        if woken is not None:
            with contextlib.suppress(RuntimeError):  # set already
                woken.release()
        with self._lock:
            if self._pair is not None:
                with contextlib.suppress(OSError):
                    self._pair[1].send(b"\0")

    def wait(self, until: float | None) -> Events:
        """Wait until ``until`` (clock time; ``None``: no limit) or until something is
        ready; returns the ready descriptors, which are no longer watched."""
        wait = None if until is None else max(0.0, until - self._clock())
        if wait is None or wait > MAX_WAIT:
            wait = MAX_WAIT
        # The flag is cleared only by the wait: the race loop looks at every lookup
        # after each wait, so a wake-up for one it has seen already costs nothing, and
        # one cleared before it was seen would be lost.
        woken = self._woken
        if woken is not None:
            if not self._watched:
                woken.acquire(True, wait)  # set: cleared, in the same C call
                return []
            if self._pair is None:
                self._open_pair()
        poll = self._poll
        if poll is None:  # nothing to watch, no lookup: just the time to pass
            time.sleep(wait)
            return []
        # poll rounds its milliseconds up, so it never wakes before the time.
        ready = poll.poll(wait * 1000)
        if woken is not None:
            woken.acquire(False)  # cleared
        events: Events = []
        for fd, mask in ready:
            if fd == self._pair_fd:
                self._drain()
                continue
            # In this order: an interruption between the two leaves a registration
            # no longer watched, which close() drops, never a watched descriptor
            # that is not registered.
            self._watched.discard(fd)
            poll.unregister(fd)
            events.append((fd, mask))
        return events

    def _open_pair(self) -> None:
        # A call's return value is, for a moment, only on the caller's stack, and an
        # interruption there (Ctrl-C, a signal handler raising) drops it unclosed. So
        # the pair is made by the C-level socketpair called from C (list.extend over
        # starmap): it is in self._pairs before any bytecode runs, where close() finds
        # it whatever happens next. (The pair's ends are _socket.socket objects.)
        with self._lock:
            self._pairs.extend(itertools.starmap(_SOCKETPAIR, ((),)))
            pair = self._pair = self._pairs[0]
            for end in pair:
                end.setblocking(False)
            if self._woken is not None and not self._woken.locked():
                pair[1].send(b"\0")  # a lookup finished before the pair existed
        self._pair_fd = pair[0].fileno()
        assert self._poll is not None
        self._poll.register(self._pair_fd, READABLE)

    def _drain(self) -> None:
        if self._pair is not None:
            with contextlib.suppress(OSError):
                while self._pair[0].recv(64):
                    pass

    def close(self) -> None:
        # The pair is forgotten only once closed: an interruption half-way leaves it
        # to the next close() (the race's cleanup calls it again). Without a pair no
        # lookup thread can be sending on one, and the lock is not taken: an
        # interruption landing as a `with` block hands the lock back (after its last
        # line, before __exit__) would leave it held, and the second close() waiting
        # for ever.
        if self._pairs:
            with self._lock:
                for pair in self._pairs:
                    for end in pair:
                        end.close()
                self._pairs.clear()
                self._pair = None
        if isinstance(self._poll, _SelectorPoll):
            self._poll.close()
        self._poll = None


def drive(
    target: Target,
    options: Options,
    call: CallOptions,
    *,
    clock: Callable[[], float] = time.monotonic,
    poller: PollPoller | None = None,
    net: Net = NET,
    into: socket.socket | None = None,
    dual_stack: bool = False,
) -> Connection:
    """Run the race loop to its end, waiting in this thread (with a clock, a poller and
    a socket layer of the caller's, for tests)."""
    if poller is None:
        poller = PollPoller(clock)
    # Observers (connectbyname.otel) are asked only when there are some.
    loop = (observed_race if OBSERVERS else race)(
        target, options, call, poller, clock, net=net, into=into, dual_stack=dual_stack
    )
    try:
        until = next(loop)
        while True:
            until = loop.send(poller.wait(until))
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
    except BaseException:
        loop.close()  # an interruption during a wait: the race closes its sockets
        raise


def connect_by_name(
    nodename: str | bytes,
    servicename: str | bytes | int,
    *,
    timeout: float | None = None,
    attempt_delay: float | None = DEFAULT_ATTEMPT_DELAY,
    family: int = socket.AF_UNSPEC,
    source_address: tuple[str, int] | None = None,
    socket_options: Iterable[SocketOption] | None = (),
    resolver: Resolver | None = None,
    resolution_delay: float = DEFAULT_RESOLUTION_DELAY,
    history: ConnectionHistory | bool = True,
    policy: Policy | None = None,
    listener: EventListener | None = None,
    ssl_context: ssl.SSLContext | None = None,
    server_hostname: str | None = None,
) -> Connection:
    """Resolve ``nodename`` and connect a TCP socket to it, racing its addresses.

    ``nodename`` is a host name (Unicode names are IDNA-encoded per UTS 46) or an IPv4
    or IPv6 literal (``"::1"``, ``"[::1]"``, ``"fe80::1%eth0"``); a literal never reaches
    the resolver. ``servicename`` is a port (``443`` or ``"443"``) or a service name
    (``"https"``). ``timeout`` bounds the whole call, name resolution included: a
    number of seconds more than 0, or ``None`` for no limit of our own. A new attempt
    starts every ``attempt_delay`` seconds (at least 0.01), or at once when one fails;
    ``None`` tries one address at a time. ``family`` limits the addresses to
    ``AF_INET`` or ``AF_INET6``. ``source_address`` (an IP literal and a port, as
    urllib3 takes it) and ``socket_options`` (``(level, option, value)`` tuples) apply
    to every attempt socket before it connects; an address of the other family than
    ``source_address`` is skipped. ``resolver`` replaces `socket.getaddrinfo` and is
    called with its signature; without ``family``, IPv6 and IPv4 are looked up
    separately and the race starts with whichever answers first, waiting up to
    ``resolution_delay`` seconds for IPv6 when IPv4 answers first (RFC 8305 section 3).
    ``history`` remembers per host and port which address won and which lost
    (``True``: the process-wide `ConnectionHistory`; ``False``: none; or one of your
    own). ``policy`` (such as `PUBLIC_ONLY` or an `AddressPolicy`) vets every address
    immediately before its attempt (and, for an `AddressPolicy`, the name and the port
    before anything is looked up).

    With ``ssl_context``, every attempt runs its own TLS handshake once TCP connects,
    and the first to complete it wins (Happy Eyeballs v3): an address that takes TCP
    and never answers TLS is raced past like one that never answers TCP. The
    connection's socket is then the `ssl.SSLSocket`. ``server_hostname`` is the name
    sent (SNI) and checked against the certificate; by default ``nodename`` itself
    (its IDNA form), never the address that won. A certificate that fails
    verification ends the call with `CertificateError` at once, whatever the other
    addresses would have said. On port 443, the name's HTTPS record (RFC 9460) is asked
    for with its addresses: its address hints, port and ALPN join the race.

    Returns a `Connection`. Raises `InvalidParameterError`, `NameResolutionError`,
    `TimedOutError`, `HostUnreachableError` (`RefusedError` when every address refused,
    `TLSError` when one at least failed its TLS handshake), `CertificateError`,
    `AddressDeniedError` or `OutOfResourcesError`.
    """
    target, options, call = check_connect(
        nodename,
        servicename,
        timeout=timeout,
        attempt_delay=attempt_delay,
        family=family,
        source_address=source_address,
        socket_options=socket_options,
        resolver=resolver,
        resolution_delay=resolution_delay,
        history=history,
        policy=policy,
        listener=listener,
        ssl_context=ssl_context,
        server_hostname=server_hostname,
    )
    # drive(), written out: the connection must reach the caller with no call in between
    # that an interruption (Ctrl-C) could follow; a Python-level call returning it, as
    # drive() would, is such a point, and the connection would be dropped unclosed.
    poller = PollPoller(time.monotonic)
    loop = (observed_race if OBSERVERS else race)(target, options, call, poller, time.monotonic)
    try:
        until = next(loop)
        while True:
            until = loop.send(poller.wait(until))
    except StopIteration as finished:
        return finished.value  # type: ignore[no-any-return]
    except BaseException:
        loop.close()
        raise


def connect(
    nodename: object,
    servicename: object,
    options: Options,
    *,
    timeout: object = None,
    source_address: object = None,
    socket_options: object = (),
    https: bool = False,
    tls: TLSOptions | None = None,
) -> Connection:
    """`connect_by_name` with the engine's options checked already (`options_from`),
    as an adapter keeps them; ``https``: the connection will carry HTTPS; ``tls``: each
    attempt's TLS handshake, with the client's settings (see ``TLSOptions``)."""
    target, call = check_adapter_call(
        nodename,
        servicename,
        timeout=timeout,
        source_address=source_address,
        socket_options=socket_options,
        https=https,
        tls=tls,
    )
    return drive(target, options, call)


def connect_socket_by_name(
    sock: socket.socket,
    nodename: str | bytes,
    servicename: str | bytes | int,
    *,
    timeout: float | None = None,
    attempt_delay: float | None = DEFAULT_ATTEMPT_DELAY,
    socket_options: Iterable[SocketOption] | None = (),
    resolver: Resolver | None = None,
    resolution_delay: float = DEFAULT_RESOLUTION_DELAY,
    history: ConnectionHistory | bool = True,
    policy: Policy | None = None,
    listener: EventListener | None = None,
) -> tuple[Address, Address]:
    """Connect the caller's socket by name: the form of Windows' ``WSAConnectByName``.

    ``sock`` must be an unbound, unconnected TCP stream socket. Its family bounds the
    addresses tried: an ``AF_INET6`` socket with ``IPV6_V6ONLY`` off reaches IPv4
    addresses as IPv4-mapped ones. The race runs on fresh sockets, and the winner's
    descriptor is moved onto ``sock`` with ``os.dup2`` (POSIX only), so on return
    ``sock`` is connected. Options set on ``sock`` before the call are not carried over
    (as with ``WSAConnectByName``): pass them as ``socket_options``, or set them again;
    only ``sock``'s Python-level timeout is kept. The other parameters and the errors
    are those of `connect_by_name`; a closed object or non-socket raises
    `NotASocketError`, and a bound, connected or non-stream socket raises
    `InvalidParameterError`.

    Returns ``(local_address, remote_address)``, IPv4-mapped addresses written as IPv4.
    """
    checked, family, dual_stack = _check_supplied_socket(sock, nodename, servicename)
    target, options, call = check_connect(
        nodename,
        servicename,
        timeout=timeout,
        attempt_delay=attempt_delay,
        family=family,
        source_address=None,
        socket_options=socket_options,
        resolver=resolver,
        resolution_delay=resolution_delay,
        history=history,
        policy=policy,
        listener=listener,
    )
    # The winner is moved onto sock inside the race: no socket of ours ever leaves it.
    connection = drive(target, options, call, into=checked, dual_stack=dual_stack)
    # The new descriptor comes blocking; give it back the timeout sock's owner set.
    checked.settimeout(checked.gettimeout())
    return connection.local_address, connection.remote_address


def _check_supplied_socket(
    sock: object, nodename: object, servicename: object
) -> tuple[socket.socket, socket.AddressFamily, bool]:
    """Check the socket of `connect_socket_by_name`: returns it, the family of the
    addresses it can reach (``AF_UNSPEC``: both) and whether it is dual-stack."""

    def invalid(message: str) -> InvalidParameterError:
        return InvalidParameterError(message, nodename=nodename, servicename=servicename)

    if not isinstance(sock, socket.socket):
        raise NotASocketError(
            f"sock must be a socket.socket, not {type(sock).__name__}",
            nodename=nodename,
            servicename=servicename,
        )
    try:
        if sock.fileno() < 0:
            raise OSError(errno.EBADF, "closed")
        kind = sock.getsockopt(socket.SOL_SOCKET, socket.SO_TYPE)
    except OSError as exc:
        raise NotASocketError(
            f"sock is not an open socket ({exc.strerror or exc})",
            nodename=nodename,
            servicename=servicename,
        ) from exc
    if kind != socket.SOCK_STREAM or sock.proto not in (0, socket.IPPROTO_TCP):
        raise invalid("sock must be a TCP stream socket (SOCK_STREAM)")
    if sock.family not in (socket.AF_INET, socket.AF_INET6):
        raise invalid("sock must be an AF_INET or AF_INET6 socket")
    if sock.getsockname()[1] != 0:
        raise invalid("sock must not be bound")
    try:
        sock.getpeername()
    except OSError:
        pass
    else:
        raise invalid("sock must not be connected")
    if sock.family == socket.AF_INET:
        return sock, socket.AF_INET, False
    if sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY):
        return sock, socket.AF_INET6, False
    return sock, socket.AF_UNSPEC, True
