"""Name resolution under a deadline.

``getaddrinfo`` cannot be interrupted: a resolver that hangs holds its thread until the
system gives up, which may be minutes. So a lookup with a deadline runs on a small pool
of daemon threads, and the caller waits for it only until the deadline; an abandoned
lookup finishes (or hangs) on its own without holding up the caller or the
interpreter's exit. The pool never grows beyond `MAX_THREADS` threads: past that, new
lookups queue, and their wait still counts against their caller's deadline. Idle
threads exit after `IDLE_SECONDS`. A lookup without a deadline runs in the caller's
thread, and so does one the system answers from its hosts file (`cannot_hang`); an IP
literal never reaches this module at all.

A resolver that can run lookups without a thread each (`NativeResolver`, such as
`connectbyname.dns.DNSResolver`) starts them itself: `start_lookup` hands over to it.
"""

from __future__ import annotations

import os
import queue
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from ._errors import NameResolutionError
from ._info import Address

#: A callable with `socket.getaddrinfo`'s signature.
Resolver = Callable[..., Sequence[tuple[Any, ...]]]
#: One address to try, with the family of the socket that reaches it.
Candidate = tuple[socket.AddressFamily, Address]

MAX_THREADS = 16
IDLE_SECONDS = 5.0
HOSTS_PATH = "/etc/hosts"
NSSWITCH_PATH = "/etc/nsswitch.conf"

#: How often the hosts file and nsswitch.conf are checked for changes, in seconds.
FILE_CHECK_INTERVAL = 1.0

_FileKey = tuple[int, int, int]
_hosts: tuple[_FileKey, frozenset[str]] | None = None
_nsswitch: tuple[_FileKey, bool] | None = None
_file_keys: dict[str, tuple[float, _FileKey | None]] = {}


def _file_key(path: str) -> _FileKey | None:
    """The file's identity and version, from a stat at most `FILE_CHECK_INTERVAL` old:
    a stat per call would cost more than some whole lookups it decides about."""
    now = time.monotonic()
    checked = _file_keys.get(path)
    if checked is not None and now - checked[0] < FILE_CHECK_INTERVAL:
        return checked[1]
    try:
        stat = os.stat(path)
    except OSError:
        key = None
    else:
        key = stat.st_mtime_ns, stat.st_size, stat.st_ino
    _file_keys[path] = (now, key)
    return key


def _hosts_names() -> frozenset[str]:
    """The names in the hosts file, lower case, without a trailing dot (re-read when
    the file changes)."""
    global _hosts  # noqa: PLW0603
    key = _file_key(HOSTS_PATH)
    if key is None:
        return frozenset()
    cached = _hosts
    if cached is None or cached[0] != key:
        names: set[str] = set()
        try:
            with open(HOSTS_PATH, encoding="utf-8", errors="replace") as hosts:
                for line in hosts:
                    names.update(n.lower().rstrip(".") for n in line.partition("#")[0].split()[1:])
        except OSError:
            return frozenset()
        cached = _hosts = (key, frozenset(names))
    return cached[1]


def _hosts_file_first() -> bool:
    """Whether the name service switch asks the hosts file before anything else
    (``hosts: files ...``); without the file, glibc asks DNS first."""
    global _nsswitch  # noqa: PLW0603
    key = _file_key(NSSWITCH_PATH)
    if key is None:
        return False
    cached = _nsswitch
    if cached is None or cached[0] != key:
        first = False
        try:
            with open(NSSWITCH_PATH, encoding="utf-8", errors="replace") as nsswitch:
                for line in nsswitch:
                    words = line.partition("#")[0].split()
                    if words and words[0] == "hosts:":
                        first = words[1:2] == ["files"]
                        break
        except OSError:
            return False
        cached = _nsswitch = (key, first)
    return cached[1]


def in_hosts_file(name: str) -> bool:
    """Whether ``name`` is answered locally: ``localhost`` (RFC 6761) or a name in the
    hosts file.

    Such names are looked up in one combined call, never per family: with the usual
    ``hosts: files dns``, an IPv6-only lookup of a name the hosts file lists only for
    IPv4 falls through to DNS, which would both send a query the system would not have
    sent and let DNS answer for a name the hosts file was meant to decide.
    """
    name = name.lower().rstrip(".")
    if name == "localhost" or name.endswith(".localhost"):
        return True
    return name in _hosts_names()


def is_system_resolver(resolver: object) -> bool:
    """Whether ``resolver`` is the standard library's `socket.getaddrinfo` (and not a
    stand-in patched over it)."""
    return (
        getattr(resolver, "__module__", None) == "socket"
        and getattr(resolver, "__qualname__", None) == "getaddrinfo"
    )


def cannot_hang(resolver: Resolver, name: str) -> bool:
    """Whether a combined lookup of ``name`` with ``resolver`` is answered from the
    hosts file alone, so that it cannot hang and needs no thread to be abandoned on:
    the system's resolver, a name in the hosts file, and the hosts file asked first.

    Such a lookup costs a few microseconds, where handing it to a thread and back
    costs tens; ``localhost`` and the names of local services are the common case.
    """
    return (
        is_system_resolver(resolver)
        and name.lower().rstrip(".") in _hosts_names()
        and _hosts_file_first()
    )


class Lookup:
    """One name lookup, running or finished: its `candidates` or its `error`."""

    __slots__ = ("_callbacks", "_done", "_error", "_lock", "_result", "family")

    def __init__(self, family: socket.AddressFamily) -> None:
        self.family = family
        self._done = False
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Lookup], object]] = []
        self._result: list[Candidate] = []
        self._error: NameResolutionError | None = None

    def done(self) -> bool:
        # Under the lock: seeing done means seeing the result written before it.
        with self._lock:
            return self._done

    def wait(self, timeout: float | None) -> bool:
        """Wait up to ``timeout`` seconds; return whether the lookup has finished."""
        # An Event only for those who wait: the drivers take callbacks instead.
        finished = threading.Event()
        self.add_done_callback(lambda _: finished.set())
        return finished.wait(timeout)

    @property
    def candidates(self) -> list[Candidate]:
        """The candidates, in the resolver's order (empty until done, or if it failed)."""
        return self._result

    @property
    def error(self) -> NameResolutionError | None:
        """Why the lookup failed, or ``None``. Handed over, never raised here: a raise
        would tie the error to the caller's frames, and the pool's thread to both."""
        return self._error

    def add_done_callback(self, callback: Callable[[Lookup], object]) -> None:
        """Call ``callback(lookup)`` once finished (from the resolving thread, or now)."""
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    def _finish(self, result: list[Candidate], error: NameResolutionError | None) -> None:
        with self._lock:
            self._result, self._error = result, error
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def run(self, resolver: Resolver, host: str, port: int) -> None:
        try:
            answers = resolver(host, port, self.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            result = candidates_from(answers, self.family, host)
        except Exception as exc:
            self._finish([], resolution_error(exc, host, port))
        else:
            self._finish(result, None)


def resolution_error(exc: Exception, host: str, port: int) -> NameResolutionError:
    """A resolver's own failure as a resolution failure: the caller gets the documented
    error, with the resolver's exception as its cause."""
    if isinstance(exc, NameResolutionError):
        return exc
    code = exc.errno if isinstance(exc, socket.gaierror) else socket.EAI_FAIL
    error = NameResolutionError(
        f"cannot resolve {host!r}: {exc}", nodename=host, servicename=port, errno=code
    )
    error.__cause__ = exc
    return error


@runtime_checkable
class NativeResolver(Protocol):
    """A resolver that runs its lookups itself, without a thread per lookup: `start_lookup`
    leaves them to its ``start_lookup`` method, which must not block."""

    def start_lookup(self, host: str, port: int, family: socket.AddressFamily) -> Lookup: ...


@runtime_checkable
class AsyncNativeResolver(Protocol):
    """A resolver with a coroutine of its own for the async engine, which awaits it in
    the call's task group instead of using a thread. It returns the candidates or raises
    `NameResolutionError`; cancelling it must leave nothing behind."""

    async def alookup(
        self, host: str, port: int, family: socket.AddressFamily
    ) -> list[Candidate]: ...


def candidates_from(answers: object, family: socket.AddressFamily, host: str) -> list[Candidate]:
    """Turn a getaddrinfo answer into candidates: stream sockets of the families asked
    for, duplicates dropped, order kept (the system sorted it per RFC 6724)."""
    if not isinstance(answers, list | tuple):
        raise NameResolutionError(
            f"resolver returned {type(answers).__name__}, not a list",
            nodename=host,
            errno=socket.EAI_FAIL,
        )
    seen: set[Address] = set()
    result: list[Candidate] = []
    for answer in answers:
        if not (isinstance(answer, tuple | list) and len(answer) == 5):
            raise NameResolutionError(
                f"resolver returned {answer!r}, not a getaddrinfo 5-tuple",
                nodename=host,
                errno=socket.EAI_FAIL,
            )
        fam, kind, _proto, _canon, sockaddr = answer
        if kind not in (socket.SOCK_STREAM, 0) or fam not in (socket.AF_INET, socket.AF_INET6):
            continue
        if family not in (socket.AF_UNSPEC, fam):
            continue
        address = _address(fam, sockaddr, host)
        if address not in seen:
            seen.add(address)
            result.append((socket.AddressFamily(fam), address))
    if not result:
        raise NameResolutionError(
            f"{host!r} has no address{'' if family == socket.AF_UNSPEC else ' of that family'}",
            nodename=host,
            errno=socket.EAI_NONAME,
        )
    return result


def _address(family: int, sockaddr: object, host: str) -> Address:
    if (
        isinstance(sockaddr, tuple)
        and len(sockaddr) == (2 if family == socket.AF_INET else 4)
        and isinstance(sockaddr[0], str)
        and all(isinstance(part, int) for part in sockaddr[1:])
    ):
        return sockaddr
    raise NameResolutionError(
        f"resolver returned the malformed address {sockaddr!r}",
        nodename=host,
        errno=socket.EAI_FAIL,
    )


class _Pool:
    """Daemon threads that run lookups; at most `MAX_THREADS` of them.

    Invariant, under the lock: the threads waiting for a job number ``_idle`` plus the
    jobs queued for them; ``_waiting`` counts jobs queued with no thread to take them.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._jobs: queue.SimpleQueue[Callable[[], None]] = queue.SimpleQueue()
        self._threads = 0
        self._idle = 0
        self._waiting = 0

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.put(job)
            if self._idle:
                self._idle -= 1
            elif self._threads < MAX_THREADS:
                self._threads += 1
                threading.Thread(
                    target=self._work, name="connectbyname-resolver", daemon=True
                ).start()
            else:
                self._waiting += 1

    def _work(self) -> None:
        while True:
            try:
                job = self._jobs.get(timeout=IDLE_SECONDS)
            except queue.Empty:
                with self._lock:
                    if self._jobs.empty():
                        self._idle -= 1
                        self._threads -= 1
                        return
                continue
            job()
            del job  # an idle thread must not keep the last lookup (and its caller) alive
            with self._lock:
                if self._waiting:
                    self._waiting -= 1
                else:
                    self._idle += 1


_pool = _Pool()


def _reset_after_fork() -> None:
    # The child has none of the parent's threads: start from an empty pool.
    global _pool  # noqa: PLW0603
    _pool = _Pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def start_lookup(resolver: Resolver, host: str, port: int, family: socket.AddressFamily) -> Lookup:
    """Start resolving on the pool (or in a `NativeResolver`'s own way); the caller
    waits on the `Lookup` as long as it likes."""
    if isinstance(resolver, NativeResolver):
        try:
            return resolver.start_lookup(host, port, family)
        except Exception as exc:
            lookup = Lookup(family)
            lookup._finish([], resolution_error(exc, host, port))
            return lookup
    lookup = Lookup(family)
    _pool.submit(lambda: lookup.run(resolver, host, port))
    return lookup


def resolve_here(resolver: Resolver, host: str, port: int, family: socket.AddressFamily) -> Lookup:
    """Resolve in the calling thread (no deadline to honour)."""
    lookup = Lookup(family)
    lookup.run(resolver, host, port)
    return lookup


def getaddrinfo_port(
    port: bytes | str | int | None,
    kind: socket.SocketKind,
    flags: int,
    fallback: Mapping[str, int] | None = None,
) -> int:
    """The port a getaddrinfo stand-in answers for ``port``, as getaddrinfo does: digits,
    or a service name from the services database (then ``fallback``); ``gaierror``
    otherwise. For resolvers with getaddrinfo's signature (tests, `connectbyname.dns`)."""
    if port is None:
        return 0
    if isinstance(port, bytes):
        port = port.decode("ascii", "replace")
    if isinstance(port, str):
        if port.isascii() and port.isdigit():
            port = int(port)
        elif flags & socket.AI_NUMERICSERV:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        else:
            try:  # /etc/services: a local file, no query
                return socket.getservbyname(port, "udp" if kind == socket.SOCK_DGRAM else "tcp")
            except OSError:
                pass
            if fallback and port in fallback:
                return fallback[port]
            raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
    if not 0 <= port <= 65535:
        raise socket.gaierror(socket.EAI_SERVICE, "Servname not supported for ai_socktype")
    return port
