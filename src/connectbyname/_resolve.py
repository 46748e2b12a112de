"""Name resolution under a deadline: the lookup strategy and the lookup threads.

``getaddrinfo`` cannot be interrupted: a resolver that hangs holds its thread until the
system gives up, which may be minutes. So a lookup with a deadline runs on a thread of
its own, and the caller waits for it only until the deadline; an abandoned lookup
finishes (or hangs) on its own without holding up the caller or the interpreter's exit.

The threads (`_Pool`) follow three rules, each learnt from a way a pool can fail:

- **No caller waits for another's lookup.** A lookup gets an idle thread or a new one,
  never a place in a queue behind lookups that may hang. A bounded queue would let one
  hung resolver stall every later lookup in the process.
- **Nothing runs for nobody.** A lookup whose caller gave up before a thread took it is
  dropped unrun.
- **No resolver can break the pool.** Whatever a resolver raises (``BaseException``
  included: a resolver bridging to an event loop may raise ``CancelledError``) fails
  that lookup only.

Idle threads exit after `IDLE_SECONDS`. `MAX_THREADS` bounds the threads only as a last
guard against a resolver that hangs for ever under load: past it, a lookup fails at
once with ``EAI_AGAIN`` rather than wait.

Rejected: a fixed pool with a queue (what ``concurrent.futures`` does). It is smaller,
but a few hung lookups then delay everyone else's, and a queued job runs even after its
caller left.
"""

from __future__ import annotations

import collections
import contextlib
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ._errors import NameResolutionError
from ._info import Address, Candidate

if TYPE_CHECKING:
    from ._parse import Options, Target

#: A callable with `socket.getaddrinfo`'s signature.
Resolver = Callable[..., Sequence[tuple[Any, ...]]]

MAX_THREADS = 512
IDLE_SECONDS = 5.0
HOSTS_PATH = "/etc/hosts"
NSSWITCH_PATH = "/etc/nsswitch.conf"

#: How often the hosts file and nsswitch.conf are checked for changes, in seconds.
FILE_CHECK_INTERVAL = 1.0

_FileKey = tuple[int, int, int]
_hosts: tuple[_FileKey, dict[str, frozenset[int]]] | None = None
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


def _hosts_families() -> dict[str, frozenset[int]]:
    """The names in the hosts file (lower case, as written: glibc compares a trailing
    dot too) with the families of their lines; re-read when the file changes."""
    global _hosts  # noqa: PLW0603
    key = _file_key(HOSTS_PATH)
    if key is None:
        return {}
    cached = _hosts
    if cached is None or cached[0] != key:
        names: dict[str, set[int]] = {}
        try:
            with open(HOSTS_PATH, encoding="utf-8", errors="replace") as hosts:
                for line in hosts:
                    fields = line.partition("#")[0].split()
                    if len(fields) < 2:
                        continue
                    family = _literal_family(fields[0])
                    if family is None:
                        continue
                    for name in fields[1:]:
                        names.setdefault(name.lower(), set()).add(family)
        except OSError:
            return {}
        cached = _hosts = (key, {n: frozenset(f) for n, f in names.items()})
    return cached[1]


def _literal_family(text: str) -> int | None:
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            socket.inet_pton(family, text.partition("%")[0])
        except (OSError, ValueError):
            continue
        return family
    return None


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


def is_system_resolver(resolver: object) -> bool:
    """Whether ``resolver`` is the standard library's `socket.getaddrinfo` (and not a
    stand-in patched over it)."""
    return (
        getattr(resolver, "__module__", None) == "socket"
        and getattr(resolver, "__qualname__", None) == "getaddrinfo"
    )


def cannot_hang(resolver: Resolver, name: str, family: socket.AddressFamily) -> bool:
    """Whether a lookup of ``name`` for ``family`` is answered from the hosts file
    alone, so that it cannot hang and needs no thread: the system's resolver, the hosts
    file asked first, and a line for ``name`` of the family asked for (any family for
    ``AF_UNSPEC``).

    Anything less reaches DNS: glibc's hosts module answers "not found" for a family
    the file has no line for (an IPv6 lookup of a name listed for IPv4 only), and
    compares names as written, so ``localhost.`` is not ``localhost``. Such a lookup
    runs on a thread like any other, so the timeout holds and an event loop never
    blocks. A hosts-file answer costs a few microseconds, where handing it to a thread
    and back costs tens; ``localhost`` and the names of local services are the common
    case.
    """
    if not is_system_resolver(resolver):
        return False
    families = _hosts_families().get(name.lower())
    if families is None or not _hosts_file_first():
        return False
    return family == socket.AF_UNSPEC or family in families


def in_hosts_file(name: str) -> bool:
    """Whether the hosts file lists ``name`` (as glibc compares it).

    Such names are looked up in one combined call, never per family: with the usual
    ``hosts: files dns``, an IPv6-only lookup of a name the hosts file lists only for
    IPv4 falls through to DNS, which would both send a query the system would not have
    sent and let DNS answer for a name the hosts file was meant to decide.
    """
    return name.lower() in _hosts_families()


def lookup_families(target: Target, options: Options) -> tuple[socket.AddressFamily, ...]:
    """The lookups a call makes (RFC 8305 section 3): none for a literal; AAAA and A
    separately when both families are wanted, except for names the system answers
    from its hosts file (see `in_hosts_file`); else one."""
    if target.literal is not None:
        return ()
    if options.family != socket.AF_UNSPEC:
        return (options.family,)
    resolver = options.resolver
    if (resolver is None or is_system_resolver(resolver)) and in_hosts_file(target.host):
        return (socket.AF_UNSPEC,)
    return (socket.AF_INET6, socket.AF_INET)


class Lookup:
    """One name lookup, running or finished: its `candidates` or its `error`.

    Thread-safe: a lookup thread finishes it while the caller may abandon it."""

    __slots__ = (
        "_abandoned",
        "_callbacks",
        "_done",
        "_error",
        "_lock",
        "_result",
        "family",
        "target",
    )

    def __init__(self, family: socket.AddressFamily, target: str = "") -> None:
        self.family = family
        #: The HTTPS record's target name this lookup is for (``""``: the call's name).
        self.target = target
        self._done = False
        self._abandoned = False
        self._lock = threading.Lock()
        self._callbacks: list[Callable[[Lookup], object]] = []
        self._result: list[Candidate] = []
        self._error: NameResolutionError | None = None

    def done(self) -> bool:
        # Under the lock: seeing done means seeing the result written before it.
        with self._lock:
            return self._done

    @property
    def abandoned(self) -> bool:
        """Whether the caller gave up on this lookup (see `abandon`)."""
        return self._abandoned

    def abandon(self) -> None:
        """The caller no longer wants the answer: a lookup not yet started is never
        run, and no done-callback is called any more."""
        with self._lock:
            self._abandoned = True
            self._callbacks = []

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
        would tie the error to the caller's frames, and the lookup thread to both."""
        return self._error

    def add_done_callback(self, callback: Callable[[Lookup], object]) -> None:
        """Call ``callback(lookup)`` once finished (from the resolving thread, or now)."""
        with self._lock:
            if not self._done:
                self._callbacks.append(callback)
                return
        callback(self)

    def finish(self, result: list[Candidate], error: NameResolutionError | None) -> None:
        """Record the answer (or the error) and call the done-callbacks."""
        with self._lock:
            self._result, self._error = result, error
            self._done = True
            callbacks, self._callbacks = self._callbacks, []
        for callback in callbacks:
            callback(self)

    def run(self, resolver: Resolver, host: str, port: int) -> None:
        """Resolve in this thread and finish the lookup, whatever the resolver does."""
        try:
            answers = resolver(host, port, self.family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            result = candidates_from(answers, self.family, host)
        except BaseException as exc:  # even CancelledError: see the module's docstring
            self.finish([], resolution_error(exc, host, port))
        else:
            self.finish(result, None)


def resolution_error(exc: BaseException, host: str, port: int) -> NameResolutionError:
    """A resolver's own failure as a resolution failure: the caller gets the documented
    error, with the resolver's exception as its cause."""
    if isinstance(exc, NameResolutionError):
        return exc
    if isinstance(exc, socket.gaierror):
        code = exc.errno
        reason = exc.strerror or str(exc)
    else:
        code = socket.EAI_FAIL
        reason = (
            f"the resolver raised {type(exc).__name__}: {exc}"
            if str(exc)
            else (f"the resolver raised {type(exc).__name__}")
        )
    error = NameResolutionError(
        f"cannot resolve {host!r}: {reason}", nodename=host, servicename=port, errno=code
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
    for, duplicates dropped, order kept (the system sorted it per RFC 6724).

    A resolver is a callable of the caller's, not the system: every address it returns
    must be an IP literal of its family with a port, or the lookup fails with
    ``EAI_FAIL``. A host name in its place would otherwise be resolved again by
    ``connect()`` itself, outside the timeout and past the address policy."""
    if not isinstance(answers, list | tuple):
        raise _bad_answer(host, f"resolver returned {type(answers).__name__}, not a list")
    seen: set[Address] = set()
    result: list[Candidate] = []
    for answer in answers:
        if not (isinstance(answer, tuple | list) and len(answer) == 5):
            raise _bad_answer(host, f"resolver returned {answer!r:.80}, not a getaddrinfo 5-tuple")
        fam, kind, _proto, _canon, sockaddr = answer
        if kind not in (socket.SOCK_STREAM, 0) or fam not in (socket.AF_INET, socket.AF_INET6):
            continue
        if family not in (socket.AF_UNSPEC, fam):
            continue
        address = checked_address(fam, sockaddr)
        if address is None:
            raise _bad_answer(host, f"resolver returned the malformed address {sockaddr!r:.80}")
        if address not in seen:
            seen.add(address)
            result.append(Candidate(socket.AddressFamily(fam), address))
    if not result:
        raise NameResolutionError(
            f"{host!r} has no address{'' if family == socket.AF_UNSPEC else ' of that family'}",
            nodename=host,
            errno=socket.EAI_NONAME,
        )
    return result


def checked_candidates(
    candidates: object, family: socket.AddressFamily, host: str
) -> list[Candidate]:
    """A native resolver's candidates (see `NativeResolver`), held to the rules of
    `candidates_from`: ``(family, address)`` pairs of IP literals with a port, else
    the lookup fails with ``EAI_FAIL``."""
    if not isinstance(candidates, list | tuple):
        raise _bad_answer(host, f"resolver returned {type(candidates).__name__}, not a list")
    return candidates_from(
        [
            (c[0], socket.SOCK_STREAM, socket.IPPROTO_TCP, "", c[1])
            if isinstance(c, tuple) and len(c) == 2
            else c
            for c in candidates
        ],
        family,
        host,
    )


def _bad_answer(host: str, message: str) -> NameResolutionError:
    return NameResolutionError(message, nodename=host, errno=socket.EAI_FAIL)


def checked_address(family: int, sockaddr: object) -> Address | None:
    """``sockaddr`` as a socket address of ``family`` with its host in canonical form
    (``inet_ntop``), or ``None`` unless it is an IP literal of that family with a port
    of 1 to 65535 (and, for IPv6, a flow label and scope id in range)."""
    size = 2 if family == socket.AF_INET else 4
    if not (isinstance(sockaddr, tuple | list) and len(sockaddr) == size):
        return None
    host, port = sockaddr[0], sockaddr[1]
    if not isinstance(host, str) or type(port) is not int or not 0 < port <= 65535:
        return None
    bare, _, scope = host.partition("%")
    try:
        text = socket.inet_ntop(family, socket.inet_pton(family, bare))
    except (OSError, ValueError):  # ValueError: an embedded NUL
        return None
    if family == socket.AF_INET:
        return (text, port) if not scope else None
    flowinfo, scope_id = sockaddr[2], sockaddr[3]
    if type(flowinfo) is not int or type(scope_id) is not int:
        return None
    if not (0 <= flowinfo < 2**20 and 0 <= scope_id < 2**32):
        return None
    return (text, port, flowinfo, scope_id)


# -------------------------------------------------------------------------- threads


_Job = tuple[Lookup, Resolver, str, int]
# A new thread's start, as its submitter and the thread itself settle it (_Pool.submit).
_UNCOUNTED, _STARTING, _RUNNING, _GIVEN_UP = object(), object(), object(), object()


class _Pool:
    """Lookup threads: see the module's docstring for their rules.

    Invariant, under the lock: every job in ``_jobs`` has an idle thread that will take
    it (``_idle`` counts them); a new thread is handed its first job directly."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._jobs: collections.deque[_Job] = collections.deque()
        self._threads = 0
        self._idle = 0

    def submit(self, lookup: Lookup, resolver: Resolver, host: str, port: int) -> bool:
        """Run the lookup on a thread; ``False`` if no thread could be had."""
        job = (lookup, resolver, host, port)
        # A new thread is handed its first job directly: nothing to take back if it
        # does not start. Whether it started is not always known here (an interruption
        # inside Thread.start may come before or after the thread began), so this
        # function and the thread settle its count between them, under the lock:
        # whoever comes second corrects it (see _work).
        # The job travels in this list too, which the thread empties: its Thread
        # object's arguments must not keep the lookup (and its caller) alive.
        start: list[Any] = [_UNCOUNTED, job]
        try:
            with self._lock:
                if self._idle > len(self._jobs):
                    self._jobs.append(job)
                    self._ready.notify()
                    return True
                if self._threads >= MAX_THREADS:
                    return False
                self._threads += 1
                start[0] = _STARTING
            threading.Thread(
                target=self._work, args=(start,), name="connectbyname-resolver", daemon=True
            ).start()
        except BaseException as exc:
            with self._lock:
                if start[0] is _STARTING:
                    start[0] = _GIVEN_UP  # counted again if it begins after all
                    self._threads -= 1
            if not isinstance(exc, Exception) or exc.__context__ is not None:
                # An interruption (KeyboardInterrupt) is the caller's, not ours; so is
                # the RuntimeError that Thread.start may turn one into (python/cpython
                # issue 78667: its wait for the new thread is not interruption-safe).
                raise
            return start[0] is _RUNNING  # no thread could be started
        return True

    def _work(self, start: list[Any]) -> None:
        with self._lock:
            if start[0] is _GIVEN_UP:
                self._threads += 1
            start[0] = _RUNNING
            job: _Job = start.pop()
        while True:
            lookup = job[0]
            if not lookup.abandoned:
                # Lookup.run catches the resolver's errors; this, a done-callback's: the
                # thread must go on.
                with contextlib.suppress(BaseException):
                    lookup.run(*job[1:])
            # An idle thread must not keep the last lookup (and its caller) alive.
            del lookup, job
            with self._lock:
                self._idle += 1
                while not self._jobs:
                    if not self._ready.wait(IDLE_SECONDS) and not self._jobs:
                        self._idle -= 1
                        self._threads -= 1
                        return
                self._idle -= 1
                job = self._jobs.popleft()

    def threads(self) -> int:
        """How many lookup threads exist now (busy or idle)."""
        with self._lock:
            return self._threads


_pool = _Pool()


def _reset_after_fork() -> None:
    # The child has none of the parent's threads: start from an empty pool.
    global _pool  # noqa: PLW0603
    _pool = _Pool()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_reset_after_fork)


def start_lookup(resolver: Resolver, host: str, port: int, family: socket.AddressFamily) -> Lookup:
    """Start resolving on a lookup thread (or in a `NativeResolver`'s own way); the
    caller waits on the `Lookup` as long as it likes, and abandons it when it leaves."""
    if isinstance(resolver, NativeResolver):
        lookup = Lookup(family)
        try:
            theirs = resolver.start_lookup(host, port, family)
            # Its answer is checked as any resolver's is, on its way to our lookup.
            theirs.add_done_callback(lambda done: _finish_checked(lookup, done, host, port))
        except Exception as exc:
            lookup.finish([], resolution_error(exc, host, port))
        return lookup
    lookup = Lookup(family)
    if not _pool.submit(lookup, resolver, host, port):
        lookup.finish(
            [],
            NameResolutionError(
                f"cannot resolve {host!r}: {MAX_THREADS} lookups are in progress already "
                "(is the resolver hanging?)",
                nodename=host,
                servicename=port,
                errno=socket.EAI_AGAIN,
            ),
        )
    return lookup


def _finish_checked(lookup: Lookup, done: Lookup, host: str, port: int) -> None:
    """Finish ``lookup`` with ``done``'s outcome, its candidates checked."""
    if done.error is not None:
        lookup.finish([], done.error)
        return
    try:
        candidates = checked_candidates(done.candidates, lookup.family, host)
    except Exception as exc:
        lookup.finish([], resolution_error(exc, host, port))
    else:
        lookup.finish(candidates, None)


def resolve_here(resolver: Resolver, host: str, port: int, family: socket.AddressFamily) -> Lookup:
    """Resolve in the calling thread (no deadline to honour, or nothing that can hang)."""
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
