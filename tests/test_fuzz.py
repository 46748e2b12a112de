"""Fuzzing the engine's parameters and its resolver's answers.

Hypothesis draws every parameter of `connect_by_name`, `connect_socket_by_name` and
`aconnect_by_name` (asyncio and trio) from values of any type, good and bad: the node
and service names, the timeout, the delays, the family, the source address, the
socket options, the history, the policy, the listener, and unknown keywords; and a
resolver whose answers take any shape (lists of arbitrary tuples and objects,
malformed addresses and ports, non-lists), which may sleep briefly first, or raise
anything, ``BaseException`` subclasses included, or answer through the engine's
native protocols (``start_lookup``, ``alookup``) with pairs of any shape. The only
exceptions allowed out are the documented ones (`connectbyname.ConnectByNameError`
and its subclasses) and `TypeError` for an unknown keyword; every example must leave
no descriptor open and no thread behind (idle lookup threads excepted), and the whole
run no `ResourceWarning` nor "exception ignored".

Nothing leaves the machine: the resolvers answer loopback literals or garbage; the
literal node names drawn are loopback addresses or invalid (filtered with
`ipaddress`); the ports are the test's own (served or refused on loopback) or out of
range; and while the fuzz runs, `socket.getaddrinfo` itself (what ``resolver=None``
uses) only converts numeric addresses, so no name ever reaches the system's resolver.
The policies and listeners drawn raise `Exception` subclasses only: one raising an
interruption (``KeyboardInterrupt``) is the caller's own, and propagates as it should.

Profiles (Hypothesis settings, chosen by ``CBN_FUZZ_PROFILE``):

- ``ci`` (the default): derandomized (a fixed seed), a budget of examples that runs
  in a few seconds;
- ``long``: 20 times the examples, random (a new seed every run), for a run by hand:
  ``CBN_FUZZ_PROFILE=long .venv/bin/pytest tests/test_fuzz.py``. ``CBN_FUZZ_LONG=1``
  selects it too.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import errno
import gc
import ipaddress
import math
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.strategies import DrawFn, composite

from connectbyname import (
    PUBLIC_ONLY,
    AddressPolicy,
    ConnectByNameError,
    ConnectionHistory,
    EventListener,
    _resolve,
    aconnect_by_name,
    connect_by_name,
    connect_socket_by_name,
)
from connectbyname._resolve import Lookup
from connectbyname.testing import open_fds, refused_port

settings.register_profile(
    "connectbyname-fuzz-ci",
    max_examples=250,
    derandomize=True,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "connectbyname-fuzz-long",
    max_examples=5_000,
    derandomize=False,
    database=None,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = os.environ.get("CBN_FUZZ_PROFILE") or (
    "long" if os.environ.get("CBN_FUZZ_LONG") else "ci"
)
FUZZ = settings.get_profile(f"connectbyname-fuzz-{PROFILE}")
#: The async examples cost an event loop each: a smaller share of the budget.
FUZZ_ASYNC = settings(FUZZ, max_examples=max(1, FUZZ.max_examples * 2 // 5))

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800 if PROFILE == "long" else 120)]

LOOPBACK_LITERALS = [
    "127.0.0.1",
    "127.0.0.9",
    "127.255.255.254",
    "::1",
    "[::1]",
    "0:0:0:0:0:0:0:1",
    "::ffff:127.0.0.1",
    "::1%lo",
    "::1%1",
]
NAMES = ["name.test", "other.test.", "Bücher.test", "xn--bcher-kva.test", "localhost", "a" * 64]


class Ports:
    """The ports of the world: ``served`` (127.0.0.1, listening) and ``refused``
    (bound on 127.0.0.1 and ::1, not listening)."""

    served: int
    refused: int


PORTS = Ports()


# --------------------------------------------------------------------------- strategies

any_scalar = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=8),
    st.binary(max_size=8),
)
garbage = st.recursive(
    any_scalar,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=3), inner, max_size=2),
    ),
    max_leaves=6,
)


def is_allowed_literal(text: str) -> bool:
    """Whether ``text`` is no IP literal, or a loopback one (what may be dialled)."""
    bare = text[1:-1] if text[:1] == "[" and text[-1:] == "]" else text
    bare = bare.partition("%")[0]
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        # Not for ipaddress; socket.inet_aton's shorthands ("127.1", "0x7f.1") are
        # names to the engine: they go to the fuzz resolver, never to the system.
        return True
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped.is_loopback
    return address.is_loopback


def mostly(valid: st.SearchStrategy[Any], invalid: st.SearchStrategy[Any]) -> Any:
    """``valid`` nine times in ten, else ``invalid``: with a dozen parameters, each bad
    now and then, a fair share of the calls gets past the checks."""
    return st.integers(0, 9).flatmap(lambda n: invalid if n == 9 else valid)


nodenames = mostly(
    st.sampled_from(LOOPBACK_LITERALS + NAMES),
    st.one_of(
        st.text(max_size=30).filter(is_allowed_literal),
        st.text(alphabet="0123456789abcdef.:[]%x", max_size=24).filter(is_allowed_literal),
        st.binary(max_size=12).filter(lambda b: is_allowed_literal(b.decode("latin-1"))),
        garbage.filter(lambda v: not isinstance(v, str | bytes)),
    ),
)


@composite
def servicenames(draw: DrawFn) -> Any:
    port = getattr(PORTS, draw(st.sampled_from(["served", "served", "refused"])))
    return draw(
        mostly(
            st.sampled_from([port, str(port), str(port).encode()]),
            st.one_of(
                st.sampled_from([0, -1, 65536, 2**40, "0", "99999", "", " 80", "no-such"]),
                st.sampled_from(["nosuchservice", "x" * 65, "http\n", "ß", b"\xff"]),
                garbage.filter(lambda v: not isinstance(v, int | str | bytes)),
            ),
        )
    )


bad_seconds = st.one_of(
    st.sampled_from([0, 0.0, -1, -(2**1100), math.nan, -math.inf, True, "1", b"1"]),
    st.floats(allow_nan=True, allow_infinity=True),
    garbage,
)
timeouts = mostly(
    st.one_of(
        st.none(),
        st.floats(min_value=0.001, max_value=0.05),
        st.sampled_from([1e10, 2**1100, 1.7e308, math.inf, 10, 1]),
    ),
    bad_seconds,
)
attempt_delays = mostly(
    st.one_of(st.none(), st.floats(0.01, 0.5), st.sampled_from([0.01, 1, 1e10])),
    st.one_of(st.sampled_from([0.009, 2**1100, math.inf]), bad_seconds),
)
resolution_delays = mostly(
    st.one_of(st.floats(0, 0.1), st.sampled_from([0, 1e10])),
    st.one_of(st.sampled_from([2**1100, math.inf, None]), bad_seconds),
)
families = mostly(
    st.sampled_from([socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6, 0, 2, 10]),
    st.one_of(st.sampled_from([socket.AF_UNIX, 3, -1, 2**40, 2.0, True, "2", None]), garbage),
)
source_addresses = mostly(
    st.sampled_from([None, None, ("127.0.0.1", 0), ("", 0), ("::1", 0), ["127.0.0.1", 0]]),
    st.one_of(
        st.sampled_from(
            [
                ("[::1]", 0),
                ("127.0.0.1", -1),
                ("127.0.0.1", 65536),
                ("127.0.0.1", True),
                ("localhost", 0),
                ("192.0.2.1", 0),  # not this host's: bind() fails, nothing is sent
                ("127.0.0.1",),
                "127.0.0.1",
            ]
        ),
        st.tuples(st.text(max_size=6), st.integers(-5, 70000)),
        garbage,
    ),
)
# Levels and options that change nothing about where a connection goes.
OPTION_NAMES = [
    (socket.SOL_SOCKET, socket.SO_KEEPALIVE),
    (socket.SOL_SOCKET, socket.SO_REUSEADDR),
    (socket.SOL_SOCKET, socket.SO_RCVBUF),
    (socket.SOL_SOCKET, socket.SO_SNDBUF),
    (socket.SOL_SOCKET, socket.SO_LINGER),
    (socket.IPPROTO_TCP, socket.TCP_NODELAY),
    (socket.SOL_SOCKET, 12345),  # unknown to the kernel
    (socket.IPPROTO_TCP, 54321),
]
option_values = mostly(
    st.one_of(st.sampled_from([0, 1, 4096, True]), st.binary(min_size=8, max_size=8)),
    st.one_of(
        st.integers(-(2**31), 2**31 - 1),
        st.sampled_from([2**31, -(2**31) - 1, 2**40, 1.0, "1", None]),
        st.binary(max_size=12),
    ),
)
one_option = mostly(
    st.tuples(st.sampled_from(OPTION_NAMES), option_values).map(lambda t: (*t[0], t[1])),
    st.one_of(
        st.tuples(st.sampled_from(OPTION_NAMES), st.none(), st.integers(-1, 16)).map(
            lambda t: (*t[0], t[1], t[2])
        ),
        st.tuples(st.sampled_from([2**40, -1, 1.0, "1"]), st.integers(0, 9), st.integers(0, 1)),
        garbage,
    ),
)
socket_options = mostly(
    st.one_of(
        st.just(()),
        st.none(),
        st.lists(one_option, max_size=3),
        st.lists(one_option, max_size=3).map(tuple),
    ),
    garbage,
)


class Raising(EventListener):
    """A listener whose every method raises."""

    def __init__(self, error: type[Exception]) -> None:
        self.error = error
        self.events: list[object] = []

    def __getattribute__(self, name: str) -> Any:
        if name.endswith(("_started", "_finished")):

            def told(event: object) -> None:
                raise object.__getattribute__(self, "error")(name)

            return told
        return object.__getattribute__(self, name)


class Recording(EventListener):
    def __init__(self) -> None:
        self.events: list[object] = []

    def __getattribute__(self, name: str) -> Any:
        if name.endswith(("_started", "_finished")):
            return object.__getattribute__(self, "events").append
        return object.__getattribute__(self, name)


listeners = mostly(
    st.one_of(
        st.none(),
        st.builds(Recording),
        st.sampled_from([ValueError, ZeroDivisionError, RuntimeError]).map(Raising),
    ),
    garbage,
)


class NamePolicy(AddressPolicy):
    """An AddressPolicy whose name and port rules answer ``verdict``: a reason, None,
    garbage, or an exception to raise."""

    def __init__(self, verdict: Any) -> None:
        super().__init__()
        self.verdict = verdict

    def _answer(self) -> Any:
        if isinstance(self.verdict, type) and issubclass(self.verdict, Exception):
            raise self.verdict("from the policy")
        return self.verdict

    def check_name(self, name: str) -> str | None:
        return self._answer()  # type: ignore[no-any-return]

    def check_port(self, port: int) -> str | None:
        return self._answer()  # type: ignore[no-any-return]


def address_policy(verdict: Any) -> Callable[[str], Any]:
    def policy(host: str) -> Any:
        if isinstance(verdict, type) and issubclass(verdict, Exception):
            raise verdict("from the policy")
        return verdict

    return policy


verdicts = st.one_of(
    st.none(),
    st.none(),
    st.just("refused by the fuzz"),
    st.sampled_from([ValueError, KeyError, ZeroDivisionError]),
    garbage,
)
policies = mostly(
    st.one_of(
        st.none(),
        st.just(PUBLIC_ONLY),
        st.builds(AddressPolicy, default_allow=st.booleans()),
        verdicts.map(address_policy),
        verdicts.map(NamePolicy),
    ),
    garbage,
)
histories = mostly(
    st.one_of(st.sampled_from([True, False, None]), st.builds(ConnectionHistory)),
    garbage,
)


class Custom(BaseException):
    """A resolver's own BaseException."""


RAISED: list[Callable[[], BaseException]] = [
    lambda: socket.gaierror(socket.EAI_NONAME, "Name or service not known"),
    lambda: socket.gaierror(socket.EAI_AGAIN, "Temporary failure"),
    lambda: socket.gaierror(12345, "odd"),
    lambda: OSError(errno.ECONNRESET, "reset"),
    lambda: ValueError("bad"),
    lambda: TypeError("bad"),
    RecursionError,
    MemoryError,
    StopIteration,
    KeyboardInterrupt,
    lambda: SystemExit(3),
    asyncio.CancelledError,
    GeneratorExit,
    lambda: Custom("custom"),
]

hosts_v4 = st.sampled_from(["127.0.0.1", "127.0.0.2", "127.1", "localhost", "", "vm", "1.1"])
hosts_v6 = st.sampled_from(["::1", "::FFFF:127.0.0.1", "0::1", "::1%lo", "localhost", "", "x"])


DEFECTS = ["kind", "family", "socktype", "port", "host", "flowinfo", "scope", "shape"]


@composite
def entries(draw: DrawFn) -> Any:
    """One getaddrinfo entry: well formed (with a loopback address and one of the
    world's ports), or with one defect."""
    defect = draw(mostly(st.none(), st.sampled_from(DEFECTS)))
    kind = draw(st.sampled_from(["v4", "v6"]))
    right = socket.AF_INET if kind == "v4" else socket.AF_INET6
    family: Any = right
    if defect == "family":
        family = draw(st.sampled_from([right ^ 8, 0, 1, 2.0, "2", None, 2**70]))
    socktype: Any = draw(st.sampled_from([socket.SOCK_STREAM, 0]))
    if defect == "socktype":
        socktype = draw(st.sampled_from([socket.SOCK_DGRAM, True, "1", None]))
    port: Any = getattr(PORTS, draw(st.sampled_from(["served", "served", "refused"])))
    if defect == "port":
        port = draw(st.sampled_from([0, -1, 65536, 2**70, "80", True, 1.5, None]))
    if kind == "v4":
        host = draw(st.sampled_from(["127.0.0.1", "127.0.0.2"]))
        if defect == "host":
            host = draw(hosts_v4)
        sockaddr: Any = (host, port)
    else:
        host = draw(st.sampled_from(["::1", "::FFFF:127.0.0.1", "0::1"]))
        if defect == "host":
            host = draw(hosts_v6)
        flow: Any = 0
        if defect == "flowinfo":
            flow = draw(st.sampled_from([-1, 2**20, 2**20 - 1, 0.0, None]))
        scope: Any = 0
        if defect == "scope":
            scope = draw(st.sampled_from([1, -1, 2**32, "lo"]))
        sockaddr = (host, port, flow, scope)
    if defect == "kind":
        sockaddr = draw(garbage)
    entry: Any = (family, socktype, socket.IPPROTO_TCP, "", sockaddr)
    if defect == "shape":
        entry = draw(st.sampled_from([entry[:4], (*entry, "x"), entry[4], None]))
    elif draw(st.booleans()):
        entry = list(entry)
    return entry


@composite
def resolvers(draw: DrawFn) -> Any:
    """A resolver (or something passed as one) and what it does when called."""
    shape = draw(
        mostly(
            st.just("answers"), st.sampled_from(["raises", "non-list", "not callable", "native"])
        )
    )
    if shape == "not callable":
        return draw(st.sampled_from([5, "resolver", b"", object()]))
    sleep = draw(st.sampled_from([0.0] * 6 + [0.001, 0.005, 0.02]))
    if shape == "raises":
        make = draw(st.sampled_from(RAISED))
        answer: Any = None
    elif shape == "non-list":
        make = None
        answer = draw(st.one_of(garbage, st.just(iter([]))))
    else:
        make = None
        answer = draw(st.lists(entries(), min_size=1, max_size=4))
        if draw(st.booleans()):
            answer = tuple(answer)

    def resolver(*args: Any, **kwargs: Any) -> Any:
        if sleep:
            time.sleep(sleep)
        if make is not None:
            raise make()
        return answer

    if shape == "native":
        # The engine's own protocols (as connectbyname.dns has): (family, address)
        # pairs, taken from the entries drawn, or anything else.
        pairs = [e[::4] if isinstance(e, tuple | list) and len(e) == 5 else e for e in answer]
        return Native(draw(mostly(st.just(pairs), garbage)), resolver)
    return resolver


class Native:
    """A resolver with the engine's native protocols, answering ``candidates``."""

    def __init__(self, candidates: Any, fallback: Callable[..., Any]) -> None:
        self.candidates = candidates
        self.fallback = fallback

    def start_lookup(self, host: str, port: int, family: socket.AddressFamily) -> Lookup:
        lookup = Lookup(family)
        lookup.finish(self.candidates, None)
        return lookup

    async def alookup(self, host: str, port: int, family: socket.AddressFamily) -> Any:
        return self.candidates

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fallback(*args, **kwargs)


extra_keywords = mostly(
    st.just({}),
    st.dictionaries(
        st.sampled_from(["timeoutt", "retries", "host", "proxy"]), garbage, min_size=1, max_size=2
    ),
)


@composite
def calls(draw: DrawFn, *, supplied_socket: bool = False) -> dict[str, Any]:
    """Keyword arguments for a call, every one drawn (or left out)."""
    call: dict[str, Any] = {"nodename": draw(nodenames), "servicename": draw(servicenames())}
    resolver = draw(mostly(resolvers(), st.none()))
    options: dict[str, Any] = {
        "timeout": timeouts,
        "attempt_delay": attempt_delays,
        "resolution_delay": resolution_delays,
        "socket_options": socket_options,
        "history": histories,
        "policy": policies,
        "listener": listeners,
    }
    if not supplied_socket:
        options["family"] = families
        options["source_address"] = source_addresses
    for name, strategy in options.items():
        if draw(st.integers(0, 2)) == 0:  # one time in three: the default
            call[name] = draw(strategy)
    call["resolver"] = resolver
    call.update(draw(extra_keywords))
    return call


# --------------------------------------------------------------------------- the world


_getaddrinfo = socket.getaddrinfo


def no_names(  # noqa: PLR0917 (socket.getaddrinfo's signature)
    host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0
) -> Any:
    """``socket.getaddrinfo`` for numeric hosts only: no name reaches the system."""
    return _getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)


def other_threads() -> list[threading.Thread]:
    """The threads that are not lookup threads (which may outlive a call, idle)."""
    return [t for t in threading.enumerate() if t.name != "connectbyname-resolver"]


@pytest.fixture
def world(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[warnings.WarningMessage]]:
    """The ports, getaddrinfo for numbers only, a lookup pool of the fuzz's own (its
    threads end with it), and records of ResourceWarnings and unraisable exceptions
    (checked at the end, after a collection)."""
    unraisable: list[Any] = []
    monkeypatch.setattr(sys, "unraisablehook", unraisable.append)
    OUTCOMES.clear()
    monkeypatch.setattr(socket, "getaddrinfo", no_names)
    pool = _resolve._Pool()
    monkeypatch.setattr(_resolve, "_pool", pool)
    with contextlib.ExitStack() as stack:
        served = stack.enter_context(socket.create_server(("127.0.0.1", 0), backlog=1024))
        served.setblocking(False)
        PORTS.served = served.getsockname()[1]
        PORTS.refused = stack.enter_context(refused_port("127.0.0.1"))
        with contextlib.suppress(OSError):  # the same number on ::1, when free
            stack.enter_context(refused_port("::1", PORTS.refused))
        caught = stack.enter_context(warnings.catch_warnings(record=True))
        warnings.simplefilter("always")
        stack.callback(drain, served)
        yield caught
        drain(served)
        gc.collect()
    # The pool's idle threads, told to exit now (the resolvers drawn sleep 20 ms at most).
    monkeypatch.setattr(_resolve, "IDLE_SECONDS", 0.01)
    with pool._lock:
        pool._ready.notify_all()
    deadline = time.monotonic() + 5
    while pool.threads() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert pool.threads() == 0
    print(dict(OUTCOMES))
    # The examples reached every part of the engine: connected, and failed each way.
    assert {"connected", "InvalidParameterError", "NameResolutionError"} <= set(OUTCOMES)
    leftovers = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert not leftovers, leftovers[:5]
    assert not unraisable, [repr(u.exc_value) for u in unraisable[:5]]


def drain(server: socket.socket) -> None:
    with contextlib.suppress(BlockingIOError):
        while True:
            server.accept()[0].close()


@contextlib.contextmanager
def leaves_nothing() -> Iterator[None]:
    """The example must leave no descriptor and no thread (lookup threads excepted)."""
    fds, threads = open_fds(), set(other_threads())
    yield
    assert open_fds() == fds, "a descriptor was left open"
    assert set(other_threads()) <= threads, "a thread was left behind"


def outcome_allowed(exc: BaseException, call: dict[str, Any]) -> bool:
    """Whether ``exc`` may come out of a call made with ``call``."""
    OUTCOMES[type(exc).__name__] += 1
    if isinstance(exc, ConnectByNameError):
        return True
    unknown = set(call) - KNOWN_KEYWORDS
    return isinstance(exc, TypeError) and bool(unknown) and "keyword" in str(exc)


#: What the examples of the current test ended with (checked for variety).
OUTCOMES: collections.Counter[str] = collections.Counter()

KNOWN_KEYWORDS = {
    "nodename",
    "servicename",
    "timeout",
    "attempt_delay",
    "family",
    "source_address",
    "socket_options",
    "resolver",
    "resolution_delay",
    "history",
    "policy",
    "listener",
}


def split(call: dict[str, Any]) -> tuple[tuple[Any, Any], dict[str, Any]]:
    rest = dict(call)
    return (rest.pop("nodename"), rest.pop("servicename")), rest


# --------------------------------------------------------------------------- the fuzz


def test_fuzz_connect_by_name(world: object) -> None:
    @FUZZ
    @given(call=calls())
    def fuzz(call: dict[str, Any]) -> None:
        args, keywords = split(call)
        with leaves_nothing():
            try:
                connect_by_name(*args, **keywords).close()
                OUTCOMES["connected"] += 1
            except BaseException as exc:
                if not outcome_allowed(exc, call):
                    raise

    fuzz()


def test_fuzz_connect_socket_by_name(world: object) -> None:
    @FUZZ
    @given(call=calls(supplied_socket=True), family=st.sampled_from([4, 6, 46]))
    def fuzz(call: dict[str, Any], family: int) -> None:
        args, keywords = split(call)
        with leaves_nothing():
            sock = socket.socket(socket.AF_INET if family == 4 else socket.AF_INET6)
            with sock:
                if family == 46:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
                try:
                    connect_socket_by_name(sock, *args, **keywords)
                    OUTCOMES["connected"] += 1
                except BaseException as exc:
                    if not outcome_allowed(exc, call):
                        raise

    fuzz()


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_fuzz_aconnect_by_name(world: object, backend: str) -> None:
    @FUZZ_ASYNC
    @given(call=calls())
    def fuzz(call: dict[str, Any]) -> None:
        args, keywords = split(call)

        async def main() -> None:
            connection = await aconnect_by_name(*args, **keywords)
            await connection.aclose()
            OUTCOMES["connected"] += 1

        with leaves_nothing():
            try:
                anyio.run(main, backend=backend)
            except BaseException as exc:
                if not outcome_allowed(exc, call):
                    raise

    fuzz()
