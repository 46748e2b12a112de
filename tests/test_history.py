"""Connection history (RFC 8305 section 4) and separate lookups (section 3), pure and on
real sockets."""

from __future__ import annotations

import functools
import pathlib
import socket
import threading
import time
from typing import Any

import pytest

from connectbyname import (
    Attempt,
    ConnectionHistory,
    Outcome,
    TimedOutError,
    connect_by_name,
)
from connectbyname.testing import Blackhole, StaticResolver, no_fd_leak

V6 = ("::1", 80, 0, 0)
V4 = ("127.0.0.1", 80)


def attempt(address: tuple[object, ...], outcome: Outcome, start: float = 0.0) -> Attempt:
    family = socket.AF_INET6 if len(address) == 4 else socket.AF_INET
    return Attempt(address, family, start, 0.25, outcome)  # type: ignore[arg-type]


def test_the_winner_goes_first_and_the_loser_last() -> None:
    history = ConnectionHistory(ttl=60)
    history.record(
        "Example.test",
        80,
        [attempt(V6, Outcome.ABANDONED), attempt(V4, Outcome.CONNECTED, 0.25)],
        now=0,
    )
    assert history.hints("example.test", 80, now=1) == (V4, frozenset({V6}))
    assert history.hints("example.test", 443, now=1) == (None, frozenset())


def test_memories_expire() -> None:
    history = ConnectionHistory(ttl=60)
    history.record(
        "a.test", 80, [attempt(V6, Outcome.ABANDONED), attempt(V4, Outcome.CONNECTED, 0.25)], now=0
    )
    assert history.hints("a.test", 80, now=59.9)[0] == V4
    assert history.hints("a.test", 80, now=60.1) == (None, frozenset())


def test_a_failure_of_the_remembered_address_forgets_it_at_once() -> None:
    history = ConnectionHistory()
    history.record("a.test", 80, [attempt(V4, Outcome.CONNECTED)], now=0)
    history.record("a.test", 80, [attempt(V4, Outcome.REFUSED)], now=1)
    assert history.hints("a.test", 80, now=2)[0] is None


def test_only_losers_with_a_head_start_are_demoted() -> None:
    history = ConnectionHistory()
    # v4 won while v6, started after it, was still connecting: v6 is not to blame.
    history.record(
        "a.test",
        80,
        [attempt(V4, Outcome.CONNECTED, 0.0), attempt(V6, Outcome.ABANDONED, 0.1)],
        now=0,
    )
    assert history.hints("a.test", 80, now=1) == (V4, frozenset())


def test_the_memory_is_bounded() -> None:
    history = ConnectionHistory(max_entries=3)
    for port in range(10):
        history.record("a.test", port, [attempt(V4, Outcome.CONNECTED)], now=0)
    kept = [port for port in range(10) if history.hints("a.test", port, now=1)[0]]
    assert kept == [7, 8, 9]


def test_the_memory_is_thread_safe() -> None:
    history = ConnectionHistory(max_entries=50)
    errors: list[BaseException] = []

    def work(seed: int) -> None:
        try:
            for i in range(500):
                port = (seed * 7 + i) % 80
                history.record(
                    "a.test",
                    port,
                    [attempt(V6, Outcome.TIMED_OUT), attempt(V4, Outcome.CONNECTED, 0.3)],
                    now=i,
                )
                winner, demoted = history.hints("a.test", port, now=i)
                assert winner in (None, V4)
                assert demoted <= {V6}
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(history._entries) <= 50


def test_bad_history_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="max_entries"):
        ConnectionHistory(max_entries=0)


# -- on real sockets --------------------------------------------------------------------


def test_the_second_connection_to_a_blackholed_ipv6_host_goes_straight_to_ipv4() -> None:
    history = ConnectionHistory()
    with socket.create_server(("127.0.0.1", 0)) as server, no_fd_leak():
        port = server.getsockname()[1]
        with Blackhole("::1", port):
            resolver = StaticResolver({"broken6.test": ["::1", "127.0.0.1"]})
            # An attempt delay of 1 s, so that not paying it shows on a loaded machine.
            call = functools.partial(
                connect_by_name, "broken6.test", port, resolver=resolver, attempt_delay=1
            )
            with call(history=history) as first:
                assert first.elapsed >= 1
            with call(history=history) as second:
                assert second.remote_address == ("127.0.0.1", port)
                assert [a.outcome for a in second.attempts] == [Outcome.CONNECTED]
                assert second.attempts[0].history == "moved first: it connected last time"
                assert second.elapsed < 0.6
            with call(history=False) as third:
                assert third.elapsed >= 1


def test_a_wrong_memory_costs_at_most_one_attempt_delay() -> None:
    history = ConnectionHistory()
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as v6_server:
        port = v6_server.getsockname()[1]
        resolver = StaticResolver({"moved.test": ["::1", "127.0.0.1"]})
        # The engine's clock is time.monotonic().
        history.record(
            "moved.test", port, [attempt(("127.0.0.1", port), Outcome.CONNECTED)], time.monotonic()
        )
        # The remembered IPv4 address now hangs; IPv6 works.
        with Blackhole("127.0.0.1", port):
            with connect_by_name(
                "moved.test", port, resolver=resolver, history=history, timeout=3
            ) as conn:
                assert conn.remote_address[0] == "::1"
                assert 0.25 <= conn.elapsed < 0.25 + 1.0  # one attempt delay, generous
        winner, demoted = history.hints("moved.test", port, time.monotonic())
        assert winner == ("::1", port, 0, 0)
        assert ("127.0.0.1", port) in demoted


def test_a_late_aaaa_answer_does_not_delay_the_ipv4_connection() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server, no_fd_leak():
        port = server.getsockname()[1]
        resolver = StaticResolver(
            {"slow6.test": ["::1", "127.0.0.1"]}, delays={socket.AF_INET6: 1.0}
        )
        with connect_by_name(
            "slow6.test", port, resolver=resolver, history=False, timeout=3
        ) as conn:
            assert conn.remote_address == ("127.0.0.1", port)
            # Started after the resolution delay (50 ms), not after the AAAA answer (1 s);
            # the margin is for a loaded machine.
            assert 0.05 <= conn.attempts[0].start < 0.7
            assert conn.elapsed < 1.0


def test_an_aaaa_answer_within_the_resolution_delay_goes_first() -> None:
    with socket.create_server(("::1", 0), family=socket.AF_INET6) as server:
        port = server.getsockname()[1]
        resolver = StaticResolver(
            {"fast6.test": ["::1", "127.0.0.1"]}, delays={socket.AF_INET6: 0.02}
        )
        with connect_by_name("fast6.test", port, resolver=resolver, history=False) as conn:
            assert conn.remote_address[0] == "::1"
            assert [a.address[0] for a in conn.attempts] == ["::1"]


def test_a_hung_aaaa_lookup_costs_only_the_resolution_delay_and_the_timeout_holds() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        resolver = StaticResolver(
            {"hang6.test": ["::1", "127.0.0.1"]}, delays={socket.AF_INET6: 30}
        )
        with connect_by_name(
            "hang6.test", port, resolver=resolver, history=False, timeout=2
        ) as conn:
            assert conn.elapsed < 1.5  # the resolution delay (50 ms), with a loaded margin
        with Blackhole("127.0.0.1", 0) as hole:
            resolver.set_addresses("hang6.test", ["::1", "127.0.0.1"])
            with pytest.raises(TimedOutError):
                connect_by_name(
                    "hang6.test", hole.port, resolver=resolver, history=False, timeout=0.4
                )


def test_hosts_file_names_keep_one_combined_lookup(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    from connectbyname import _resolve

    hosts = tmp_path / "hosts"
    hosts.write_text("127.0.0.1 localhost\n127.0.0.1 pinned.test # comment\n")
    monkeypatch.setattr(_resolve, "HOSTS_PATH", str(hosts))
    calls: list[tuple[str, int]] = []

    def system(host: str, port: int, family: int = 0, *rest: object) -> list[Any]:
        # Stands in for the system resolver, so nothing leaves the machine.
        calls.append((host, family))
        if family == socket.AF_INET6:
            raise socket.gaierror(socket.EAI_NONAME, "no AAAA")
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]

    monkeypatch.setattr(socket, "getaddrinfo", system)
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        for name in ("localhost", "pinned.test", "other.test"):
            connect_by_name(name, port, timeout=2, history=False).close()
    assert calls[:2] == [("localhost", socket.AF_UNSPEC), ("pinned.test", socket.AF_UNSPEC)]
    assert sorted(calls[2:]) == [("other.test", socket.AF_INET), ("other.test", socket.AF_INET6)]


def test_link_local_answers_keep_their_scope_id() -> None:
    from connectbyname import AddressDeniedError

    # Vetted and denied, never connected: the record shows the address as resolved.
    resolver = StaticResolver({"ll.test": ["fe80::1%lo"]})
    with pytest.raises(AddressDeniedError) as caught:
        connect_by_name(
            "ll.test", 80, resolver=resolver, history=False, policy=lambda host: "not here"
        )
    (attempt,) = caught.value.attempts
    assert attempt.address == ("fe80::1", 80, 0, socket.if_nametoindex("lo"))
    assert attempt.outcome is Outcome.DENIED
