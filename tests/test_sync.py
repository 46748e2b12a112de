"""The sync driver on real loopback sockets: races, timeouts, errors, no leaks."""

from __future__ import annotations

import contextlib
import errno
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from connectbyname import (
    Connection,
    HostUnreachableError,
    InvalidParameterError,
    NameResolutionError,
    NotASocketError,
    Outcome,
    RefusedError,
    TimedOutError,
    _sync,
    connect_by_name,
    connect_socket_by_name,
)
from connectbyname.testing import (
    Blackhole,
    StaticResolver,
    no_fd_leak,
    patch_getaddrinfo,
    refused_port,
)

# Generous bounds: they must hold on a loaded 2-core machine.
SLACK = 0.5


@contextlib.contextmanager
def listener(host: str, port: int = 0) -> Iterator[socket.socket]:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as sock:
        sock.bind((host, port))
        sock.listen(16)
        yield sock


@contextlib.contextmanager
def v4_served_v6_blackholed() -> Iterator[int]:
    """A port P served on 127.0.0.1 and blackholed on [::1]."""
    for _ in range(50):
        with listener("127.0.0.1") as served:
            port = served.getsockname()[1]
            try:
                hole = Blackhole("::1", port)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue
                raise
            with hole:
                yield port
            return
    raise RuntimeError("no port free on both families")


@pytest.fixture
def no_leak() -> Iterator[None]:
    with no_fd_leak():
        yield


def dual(name: str = "dual.test") -> StaticResolver:
    return StaticResolver({name: ["::1", "127.0.0.1"]})


@pytest.mark.usefixtures("no_leak")
def test_blackholed_ipv6_falls_back_to_ipv4_after_the_attempt_delay() -> None:
    with v4_served_v6_blackholed() as port:
        with connect_by_name("dual.test", port, timeout=5, resolver=dual()) as conn:
            assert conn.remote_address == ("127.0.0.1", port)
            assert conn.local_address[0] == "127.0.0.1"
            assert conn.local_address == conn.socket.getsockname()
            assert conn.family == socket.AF_INET
            assert [a.outcome for a in conn.attempts] == [Outcome.ABANDONED, Outcome.CONNECTED]
            assert conn.attempts[0].address == ("::1", port, 0, 0)
            assert 0.25 <= conn.attempts[1].start < 0.25 + SLACK
            assert conn.elapsed < 0.25 + SLACK
            # Connected, blocking and without a timeout, as the docs promise.
            assert conn.socket.getblocking()
            assert conn.socket.gettimeout() is None
        assert conn.socket.fileno() == -1


@pytest.mark.usefixtures("no_leak")
def test_refused_ipv6_falls_back_at_once() -> None:
    with listener("127.0.0.1") as served:
        port = served.getsockname()[1]
        with (
            refused_port("::1", port),
            connect_by_name("dual.test", port, resolver=dual(), attempt_delay=2) as conn,
        ):
            assert conn.remote_address == ("127.0.0.1", port)
            assert [a.outcome for a in conn.attempts] == [Outcome.REFUSED, Outcome.CONNECTED]
            assert conn.attempts[1].start < 1.0  # not after the attempt delay (2 s)


@pytest.mark.usefixtures("no_leak")
def test_where_poll_is_missing_a_selectors_selector_races_the_same(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[_sync._SelectorPoll] = []

    def selector_poll() -> _sync._SelectorPoll:
        made.append(_sync._SelectorPoll())
        return made[-1]

    monkeypatch.setattr(_sync, "_new_poll", selector_poll)
    # The A answer comes while the IPv6 attempt is in flight: the wait covers both
    # an attempt socket and the lookup signal.
    resolver = StaticResolver({"dual.test": ["::1", "127.0.0.1"]}, delays={socket.AF_INET: 0.1})
    with v4_served_v6_blackholed() as port:
        with connect_by_name("dual.test", port, timeout=5, resolver=resolver) as conn:
            assert conn.remote_address == ("127.0.0.1", port)
            assert [a.outcome for a in conn.attempts] == [Outcome.ABANDONED, Outcome.CONNECTED]
            assert 0.25 <= conn.attempts[1].start < 0.25 + SLACK
    assert len(made) == 1


def test_a_connect_over_inside_connect_is_reported_without_polling(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # On loopback the handshake (or the reset) is over when connect() returns; the
    # driver asks again instead of waiting on poll, and gets the same outcome.
    polled: list[object] = []

    class CountingPoll(_sync._SelectorPoll):
        def poll(self, milliseconds: float | None = None) -> list[tuple[int, int]]:
            polled.append(milliseconds)
            return super().poll(milliseconds)

    monkeypatch.setattr(_sync, "_new_poll", CountingPoll)
    with listener("127.0.0.1") as served, no_fd_leak():
        port = served.getsockname()[1]
        with connect_by_name("127.0.0.1", port, timeout=5) as conn:
            assert [a.outcome for a in conn.attempts] == [Outcome.CONNECTED]
            assert conn.socket.getpeername() == ("127.0.0.1", port)
        with refused_port("::1", port), pytest.raises(HostUnreachableError) as info:
            connect_by_name("::1", port, timeout=5)
        assert [a.outcome for a in info.value.attempts] == [Outcome.REFUSED]
    assert polled == []


def local_lookup_files(tmp_path: Any, monkeypatch: pytest.MonkeyPatch, first: str | None) -> None:
    """A hosts file listing pinned.test, and an nsswitch.conf asking ``first`` first
    (``None``: no nsswitch.conf, where glibc asks DNS first)."""
    from connectbyname import _resolve

    hosts, nsswitch = tmp_path / "hosts", tmp_path / f"nsswitch-{first}.conf"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 pinned.test\n")
    if first is not None:
        other = "dns" if first == "files" else "files"
        nsswitch.write_text(f"passwd: files\nhosts:   {first} {other}  # comment\n")
    monkeypatch.setattr(_resolve, "HOSTS_PATH", str(hosts))
    monkeypatch.setattr(_resolve, "NSSWITCH_PATH", str(nsswitch))


@pytest.mark.parametrize(
    ("name", "first", "inline"),
    [
        ("pinned.test", "files", True),
        ("PINNED.test.", "files", False),  # glibc compares the dot too: DNS is asked
        ("pinned.test", "dns", False),  # the system would ask DNS first: it could hang
        ("pinned.test", None, False),  # no nsswitch.conf: glibc asks DNS first
        ("other.test", "files", False),  # not in the hosts file
    ],
)
def test_a_lookup_the_hosts_file_answers_runs_inline_even_with_a_deadline(
    name: str, first: str | None, inline: bool, tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectbyname import _resolve

    local_lookup_files(tmp_path, monkeypatch, first)
    threads: list[threading.Thread] = []

    def system(host: str, port: int, family: int = 0, *rest: object) -> list[Any]:
        # Stands in for the system resolver (which is what the rule is about), so that
        # nothing leaves the machine.
        threads.append(threading.current_thread())
        if family == socket.AF_INET6:
            raise socket.gaierror(socket.EAI_NONAME, "no AAAA")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", system)
    monkeypatch.setattr(_resolve, "is_system_resolver", lambda resolver: resolver is system)
    with listener("127.0.0.1") as served:
        port = served.getsockname()[1]
        connect_by_name(name, port, timeout=2, history=False).close()
    assert threads
    assert all((thread is threading.current_thread()) is inline for thread in threads)


def test_only_the_standard_getaddrinfo_is_the_system_resolver() -> None:
    from connectbyname._resolve import is_system_resolver

    assert is_system_resolver(socket.getaddrinfo)
    assert not is_system_resolver(StaticResolver())
    assert not is_system_resolver(lambda *args: [])


@pytest.mark.usefixtures("no_leak")
def test_three_blackholes_then_a_good_address_within_one_second() -> None:
    with v4_served_v6_blackholed() as port, contextlib.ExitStack() as stack:
        for host in ("127.0.0.2", "127.0.0.3"):
            stack.enter_context(Blackhole(host, port))
        resolver = StaticResolver({"many.test": ["::1", "127.0.0.2", "127.0.0.3", "127.0.0.1"]})
        with connect_by_name("many.test", port, timeout=1, resolver=resolver) as conn:
            assert conn.remote_address == ("127.0.0.1", port)
            outcomes = [a.outcome for a in conn.attempts]
            assert outcomes == [Outcome.ABANDONED] * 3 + [Outcome.CONNECTED]
            assert [a.address[0] for a in conn.attempts] == [
                "::1",
                "127.0.0.2",
                "127.0.0.3",
                "127.0.0.1",
            ]


@pytest.mark.usefixtures("no_leak")
def test_all_blackholed_times_out_well_before_one_second() -> None:
    with Blackhole("127.0.0.2") as one, Blackhole("::1", 0) as _:
        resolver = StaticResolver({"dead.test": ["127.0.0.2", "127.0.0.3"]})
        with Blackhole("127.0.0.3", one.port):
            started = time.monotonic()
            with pytest.raises(TimedOutError) as info:
                connect_by_name("dead.test", one.port, timeout=0.5, resolver=resolver)
            took = time.monotonic() - started
    assert 0.5 <= took < 0.95
    error = info.value
    assert isinstance(error, TimeoutError)
    assert error.errno == errno.ETIMEDOUT
    assert [a.outcome for a in error.attempts] == [Outcome.TIMED_OUT] * 2
    assert f"127.0.0.2:{one.port} timed out" in str(error)


@pytest.mark.usefixtures("no_leak")
def test_a_hung_resolver_times_out() -> None:
    resolver = StaticResolver({"hang.test": ["127.0.0.1"]}, hang=True)
    started = time.monotonic()
    try:
        with pytest.raises(TimedOutError) as info:
            connect_by_name("hang.test", 80, timeout=0.3, resolver=resolver)
    finally:
        resolver.release()
    assert time.monotonic() - started < 0.3 + SLACK
    assert "resolving the name" in str(info.value)
    assert info.value.attempts == ()


def test_resolver_threads_stay_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from connectbyname import _resolve

    monkeypatch.setattr(_resolve, "MAX_THREADS", 8)
    # A pool of its own: other tests' idle lookup threads must not count here.
    monkeypatch.setattr(_resolve, "_pool", _resolve._Pool())
    resolver = StaticResolver({"hang.test": ["127.0.0.1"]}, hang=True)
    try:
        for _ in range(4):  # two lookups each (AAAA and A), both hung
            with pytest.raises(TimedOutError):
                connect_by_name("hang.test", 80, timeout=0.01, resolver=resolver)
        # Past the bound, a lookup fails at once rather than wait behind hung ones.
        with pytest.raises(NameResolutionError) as info:
            connect_by_name("hang.test", 80, timeout=5, resolver=resolver)
        assert info.value.errno == socket.EAI_AGAIN
        assert "8 lookups are in progress" in str(info.value)
        assert _resolve._pool.threads() == 8
    finally:
        resolver.release()


@pytest.mark.usefixtures("no_leak")
def test_every_address_refused_is_refused() -> None:
    with refused_port("127.0.0.1") as port, refused_port("::1", port):
        with pytest.raises(RefusedError) as info:
            connect_by_name("dual.test", port, timeout=2, resolver=dual())
    error = info.value
    assert isinstance(error, HostUnreachableError)  # as WSAConnectByName reports it
    assert isinstance(error, ConnectionRefusedError)
    assert error.errno == errno.ECONNREFUSED
    assert [a.outcome for a in error.attempts] == [Outcome.REFUSED, Outcome.REFUSED]
    assert f"[::1]:{port} refused" in str(error)
    assert isinstance(error.__cause__, ExceptionGroup)
    assert all(isinstance(e, ConnectionRefusedError | OSError) for e in error.__cause__.exceptions)


def test_unknown_name_is_a_resolution_error() -> None:
    with pytest.raises(NameResolutionError) as info:
        connect_by_name("nowhere.test", 80, timeout=1, resolver=StaticResolver({}))
    assert info.value.errno == socket.EAI_NONAME
    assert isinstance(info.value.__cause__, socket.gaierror)


def test_a_resolver_that_raises_is_a_resolution_error() -> None:
    def broken(*args: object) -> list[Any]:
        raise RuntimeError("resolver bug")

    for timeout in (None, 1.0):
        with pytest.raises(NameResolutionError) as info:
            connect_by_name("broken.test", 80, timeout=timeout, resolver=broken)
        assert isinstance(info.value.__cause__, RuntimeError)


def test_literals_never_reach_the_resolver_nor_start_a_thread() -> None:
    resolver = StaticResolver({})
    threads = threading.active_count()
    with listener("::1") as served:
        port = served.getsockname()[1]
        for literal in ("::1", "[::1]"):
            with connect_by_name(literal, port, timeout=1, resolver=resolver) as conn:
                assert conn.remote_address == ("::1", port, 0, 0)
    assert resolver.calls == []
    assert threading.active_count() == threads


def test_names_reach_the_resolver_encoded_with_the_service_port() -> None:
    resolver = StaticResolver({"xn--bcher-kva.test.": ["127.0.0.1"], "svc.test": ["127.0.0.1"]})
    with refused_port("127.0.0.1") as port:
        with pytest.raises(HostUnreachableError):
            connect_by_name("Bücher.test.", port, resolver=resolver)
    # An IPv4-only name asked for IPv6 only: the resolver has nothing to give.
    with pytest.raises(NameResolutionError):
        connect_by_name("svc.test", "http", resolver=resolver, family=socket.AF_INET6)
    # Both families are looked up separately (RFC 8305 section 3), one when asked for one.
    assert sorted((c.host, c.port, c.family) for c in resolver.calls) == [
        ("svc.test", 80, socket.AF_INET6),
        ("xn--bcher-kva.test.", port, socket.AF_INET),
        ("xn--bcher-kva.test.", port, socket.AF_INET6),
    ]


def test_family_limits_the_candidates() -> None:
    with v4_served_v6_blackholed() as port:
        with connect_by_name("dual.test", port, family=socket.AF_INET, resolver=dual()) as conn:
            assert [a.address[0] for a in conn.attempts] == ["127.0.0.1"]
        with pytest.raises(InvalidParameterError):
            connect_by_name("::1", port, family=socket.AF_INET)


def test_source_address_and_socket_options_apply_to_every_attempt() -> None:
    nodelay = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    with v4_served_v6_blackholed() as port:
        with connect_by_name(
            "dual.test",
            port,
            resolver=dual(),
            source_address=("127.0.0.1", 0),
            socket_options=[nodelay],
            attempt_delay=2,
        ) as conn:
            assert conn.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
            skipped, connected = conn.attempts
            assert skipped.outcome is Outcome.SKIPPED
            assert skipped.reason == "the source address is of the other family"
            assert connected.outcome is Outcome.CONNECTED
            assert conn.attempts[1].start < 1.0  # a skip costs no attempt delay (2 s)


def test_attempt_delay_none_tries_one_address_at_a_time() -> None:
    with v4_served_v6_blackholed() as port, pytest.raises(TimedOutError) as info:
        connect_by_name("dual.test", port, attempt_delay=None, timeout=0.4, resolver=dual())
    assert [a.address[0] for a in info.value.attempts] == ["::1"]


def test_a_race_is_logged_at_debug_and_a_plain_connect_is_not(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="connectbyname")
    with refused_port("::1") as port, listener("127.0.0.1", port):
        connect_by_name("dual.test", port, resolver=dual()).close()
        messages = [r.getMessage() for r in caplog.records if r.name == "connectbyname"]
        assert len(messages) == 1  # one record per call
        assert f"[::1]:{port} refused" in messages[0]
        assert f"127.0.0.1:{port} connected" in messages[0]
        caplog.clear()
        # One attempt that connected is a plain connect: nothing to say, as stock says
        # nothing (urllib3's own test of its debug log compares every record).
        connect_by_name("127.0.0.1", port).close()
    assert not [r for r in caplog.records if r.name == "connectbyname"]


def test_keyboard_interrupt_mid_race_closes_every_attempt_socket() -> None:
    def interrupt(signum: int, frame: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGALRM, interrupt)
    try:
        with no_fd_leak(), contextlib.ExitStack() as stack:
            hole = stack.enter_context(Blackhole("127.0.0.2"))
            hosts = ["127.0.0.2", "127.0.0.3", "127.0.0.4"]
            for host in hosts[1:]:
                stack.enter_context(Blackhole(host, hole.port))
            resolver = StaticResolver({"dead.test": hosts})
            signal.setitimer(signal.ITIMER_REAL, 0.6)
            with pytest.raises(KeyboardInterrupt):
                connect_by_name("dead.test", hole.port, timeout=5, resolver=resolver)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def test_out_of_descriptors_is_out_of_resources() -> None:
    # In a child process, so the lowered limit touches nothing else.
    code = """
import resource, socket, errno, os
from connectbyname import connect_by_name, OutOfResourcesError
server = socket.create_server(("127.0.0.1", 0))
port = server.getsockname()[1]
lowest_free = os.dup(0)
os.close(lowest_free)
used = lowest_free  # every descriptor below it is open: the next socket() has no room
resource.setrlimit(resource.RLIMIT_NOFILE, (used, used + 64))
try:
    connect_by_name("127.0.0.1", port, timeout=2)
except OutOfResourcesError as exc:
    print("OutOfResourcesError", errno.errorcode[exc.errno], exc.attempts[0].outcome)
resource.setrlimit(resource.RLIMIT_NOFILE, (used + 64, used + 64))
with connect_by_name("127.0.0.1", port, timeout=2) as conn:
    print("then connected", conn.remote_address == ("127.0.0.1", port))
"""
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    assert result.stdout.split("\n")[:2] == [
        "OutOfResourcesError EMFILE failed",
        "then connected True",
    ]


# -- connect_socket_by_name: the WSAConnectByName form ---------------------------------


def test_socket_form_with_an_ipv4_socket() -> None:
    with v4_served_v6_blackholed() as port, no_fd_leak():
        with socket.socket(socket.AF_INET) as sock:
            sock.settimeout(3)
            local, remote = connect_socket_by_name(sock, "dual.test", port, resolver=dual())
            assert remote == ("127.0.0.1", port) == sock.getpeername()
            assert local == sock.getsockname()
            assert sock.gettimeout() == 3  # the Python-level timeout survives


def test_socket_form_with_a_dual_stack_socket_reaches_ipv4_as_mapped() -> None:
    with listener("127.0.0.1") as served, no_fd_leak():
        port = served.getsockname()[1]
        resolver = StaticResolver({"v4.test": ["127.0.0.1"]})
        with socket.socket(socket.AF_INET6) as sock:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
            local, remote = connect_socket_by_name(sock, "v4.test", port, resolver=resolver)
            assert remote == ("127.0.0.1", port)
            assert local[0] == "127.0.0.1"
            assert sock.getpeername()[:2] == ("::ffff:127.0.0.1", port)
            assert sock.getblocking()


def test_socket_form_with_a_v6only_socket_reaches_only_ipv6() -> None:
    with v4_served_v6_blackholed() as port, socket.socket(socket.AF_INET6) as sock:
        sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        with pytest.raises(TimedOutError) as info:
            connect_socket_by_name(sock, "dual.test", port, resolver=dual(), timeout=0.3)
        assert [a.address[0] for a in info.value.attempts] == ["::1"]


def test_socket_form_refuses_unusable_sockets() -> None:
    with pytest.raises(NotASocketError):
        connect_socket_by_name("not a socket", "localhost", 80)  # type: ignore[arg-type]
    closed = socket.socket()
    closed.close()
    with pytest.raises(NotASocketError):
        connect_socket_by_name(closed, "localhost", 80)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(InvalidParameterError, match="stream"):
            connect_socket_by_name(udp, "localhost", 80)
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))
        with pytest.raises(InvalidParameterError, match="bound"):
            connect_socket_by_name(bound, "localhost", 80)
    with listener("127.0.0.1") as served, socket.create_connection(served.getsockname()) as c:
        with pytest.raises(InvalidParameterError, match=r"bound|connected"):
            connect_socket_by_name(c, "localhost", 80)


def test_connection_is_a_context_manager_that_closes() -> None:
    with listener("127.0.0.1") as served:
        conn = connect_by_name("127.0.0.1", served.getsockname()[1])
        assert isinstance(conn, Connection)
        with conn:
            assert conn.socket.fileno() >= 0
        assert conn.socket.fileno() == -1


def test_the_system_resolvers_order_is_kept_a_resolver_of_the_callers_is_sorted() -> None:
    # RFC 6724's default table puts ::1 before an IPv4-mapped address; the system's
    # getaddrinfo sorted by it already, with the host's gai.conf, which may say
    # otherwise: its order stands. A resolver of the caller's is sorted (RFC 8305 4).
    answer = ["::ffff:127.0.0.1", "::1"]
    seen = {}
    with refused_port("::1") as port:
        for via in ("system", "caller"):
            resolver = StaticResolver({"order.test": answer})
            options: dict[str, Any] = {"family": socket.AF_INET6, "timeout": 2}
            with contextlib.ExitStack() as stack:
                if via == "system":
                    stack.enter_context(patch_getaddrinfo(resolver))
                else:
                    options["resolver"] = resolver
                with pytest.raises(RefusedError) as caught:
                    connect_by_name("order.test", port, **options)
            seen[via] = [a.address[0] for a in caught.value.attempts]
    assert seen == {"system": answer, "caller": ["::1", "::ffff:127.0.0.1"]}
