"""TLS in the race (Happy Eyeballs v3 section 6.1): each attempt's handshake runs in the
race, and the first to complete it wins. Real TLS servers on loopback (trustme), each
broken the way a real one is: mute after TCP, a fatal alert, a slow handshake, a
certificate of the wrong authority. Driven through the sync engine and the async one on
asyncio and trio.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import anyio
import pytest
import trustme
from anyio.streams.tls import TLSAttribute

from connectbyname import (
    AttemptFinished,
    CertificateError,
    EventListener,
    HostUnreachableError,
    InvalidParameterError,
    Outcome,
    RefusedError,
    TimedOutError,
    TLSError,
    TLSFinished,
    TLSStarted,
    aconnect_by_name,
    connect_by_name,
)
from connectbyname.testing import HELLO_BODY, HTTPServer, StaticResolver, dual_stack

NAME = "example.test"
ADDRESSES = ["::1", "127.0.0.1"]  # the IPv6 address (the broken one) is tried first
DELAY = 0.25  # the engine's default attempt delay


@dataclass
class Made:
    """What a connect gave, whichever driver made it."""

    attempts: tuple[Any, ...]
    elapsed: float
    remote_address: tuple[Any, ...]
    tls_version: str | None
    alpn: str | None
    body: bytes


Connect = Callable[..., Made]

_REQUEST = b"GET / HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n"


def _read_all(receive: Callable[[], bytes]) -> bytes:
    data = b""
    while True:
        chunk = receive()
        if not chunk:
            return data
        data += chunk


def _sync_connect(port: int, **kwargs: Any) -> Made:
    kwargs.setdefault("resolver", StaticResolver({NAME: ADDRESSES}))
    with connect_by_name(NAME, port, **kwargs) as conn:
        assert isinstance(conn.socket, ssl.SSLSocket)
        conn.socket.sendall(_REQUEST)
        body = _read_all(lambda: conn.socket.recv(65536))
        return Made(
            conn.attempts, conn.elapsed, conn.remote_address, conn.tls_version, conn.alpn, body
        )


def _async_connect(backend: str) -> Connect:
    def connect(port: int, **kwargs: Any) -> Made:
        kwargs.setdefault("resolver", StaticResolver({NAME: ADDRESSES}))

        async def main() -> Made:
            async with await aconnect_by_name(NAME, port, **kwargs) as conn:
                stream = conn.stream
                await stream.send(_REQUEST)
                body = b""
                with contextlib.suppress(anyio.EndOfStream):
                    while True:
                        body += await stream.receive()
                # The stream says the same as the connection.
                assert stream.extra(TLSAttribute.tls_version) == conn.tls_version
                assert stream.extra(TLSAttribute.alpn_protocol) == conn.alpn
                return Made(
                    conn.attempts,
                    conn.elapsed,
                    conn.remote_address,
                    conn.tls_version,
                    conn.alpn,
                    body,
                )

        return anyio.run(main, backend=backend)

    return connect


@pytest.fixture(params=["sync", "asyncio", "trio"])
def connect(request: pytest.FixtureRequest) -> Connect:
    """Connect to ``NAME`` (``::1`` first, then ``127.0.0.1``) on a port, over TLS, and
    fetch ``/``: through the sync engine or the async one."""
    if request.param == "sync":
        return _sync_connect
    return _async_connect(request.param)


@pytest.fixture
def server_context(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    context.set_alpn_protocols(["h2", "http/1.1"])
    return context


@contextlib.contextmanager
def pair(
    broken: HTTPServer | None, working_context: ssl.SSLContext | None
) -> Iterator[tuple[int, HTTPServer | None]]:
    """``yield port, server``: a working HTTPS server on 127.0.0.1 on ``broken``'s
    port (``None``: none)."""
    assert broken is not None
    with broken:
        if working_context is None:
            yield broken.port, None
            return
        with HTTPServer("127.0.0.1", broken.port, working_context) as server:
            yield broken.port, server


def _broken_v6(context: ssl.SSLContext, **kwargs: Any) -> HTTPServer:
    """A server on [::1] on a port also free on 127.0.0.1 (closed again here)."""
    for _ in range(50):
        server = HTTPServer("::1", 0, context, **kwargs)
        try:
            socket.create_server(("127.0.0.1", server.port)).close()
        except OSError:
            server.close()
            continue
        return server
    raise RuntimeError("no port free on both ::1 and 127.0.0.1")


# --------------------------------------------------------------------------- winners


def test_an_address_mute_after_tcp_is_raced_past(
    assert_no_fd_leak: None,
    connect: Connect,
    server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    with dual_stack("mute-v6", ssl_context=server_context) as scenario:
        made = connect(scenario.port, timeout=10, ssl_context=client_ssl_context)
        assert scenario.mute is not None
        assert scenario.mute.connection_count == 1  # TCP did connect there
    assert made.body.endswith(HELLO_BODY)
    assert made.remote_address[0] == "127.0.0.1"
    first, second = made.attempts
    assert first.address[0] == "::1"
    assert first.outcome is Outcome.ABANDONED
    assert first.tcp is not None  # TCP connected: it was TLS that never came
    assert "in TLS" in str(first)
    assert second.outcome is Outcome.CONNECTED
    # The next attempt was not held back by the first's TCP connecting: it started one
    # attempt delay after the first (a loaded machine may start it later, not earlier).
    assert second.start - first.start >= DELAY * 0.9
    assert second.start - first.start < 2.0
    assert made.tls_version in ("TLSv1.2", "TLSv1.3")


def test_an_alert_fails_the_attempt_and_the_next_starts_at_once(
    assert_no_fd_leak: None,
    connect: Connect,
    server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    with pair(_broken_v6(server_context, handshake="alert"), server_context) as (port, _):
        made = connect(port, timeout=10, ssl_context=client_ssl_context)
    first, second = made.attempts
    assert first.outcome is Outcome.FAILED
    assert first.tcp is not None
    assert isinstance(first.error, ssl.SSLError)
    assert "HANDSHAKE_FAILURE" in str(first.error).upper()
    assert second.outcome is Outcome.CONNECTED
    # A failure starts the next attempt without waiting out the attempt delay.
    assert second.start - first.start < DELAY
    assert made.body.endswith(HELLO_BODY)


def test_a_slow_handshake_still_completes_when_it_is_the_only_address(
    assert_no_fd_leak: None,
    connect: Connect,
    server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    with HTTPServer("127.0.0.1", 0, server_context, handshake_delay=0.5) as server:
        made = connect(
            server.port,
            timeout=10,
            ssl_context=client_ssl_context,
            resolver=StaticResolver({NAME: ["127.0.0.1"]}),
        )
    (only,) = made.attempts
    assert only.outcome is Outcome.CONNECTED
    assert only.tcp is not None
    assert only.duration - only.tcp >= 0.4  # the handshake waited for the server
    assert made.body.endswith(HELLO_BODY)


def test_a_slow_handshake_loses_to_a_prompt_one(
    assert_no_fd_leak: None,
    connect: Connect,
    server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    slow = _broken_v6(server_context, handshake_delay=5.0)
    with pair(slow, server_context) as (port, _):
        made = connect(port, timeout=10, ssl_context=client_ssl_context)
    first, second = made.attempts
    assert (first.outcome, second.outcome) == (Outcome.ABANDONED, Outcome.CONNECTED)
    assert made.remote_address[0] == "127.0.0.1"
    assert made.elapsed < 4.0  # not the slow server's 5 s


def test_alpn_and_version_are_reported(
    connect: Connect, server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    client_ssl_context.set_alpn_protocols(["h2", "http/1.1"])
    with HTTPServer("127.0.0.1", 0, server_context) as server:
        made = connect(
            server.port,
            timeout=10,
            ssl_context=client_ssl_context,
            resolver=StaticResolver({NAME: ["127.0.0.1"]}),
        )
    assert made.alpn == "h2"  # the server offers it first
    assert made.tls_version in ("TLSv1.2", "TLSv1.3")


def test_client_certificates_are_sent(
    connect: Connect, ca: trustme.CA, server_cert: trustme.LeafCert
) -> None:
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(server_context)
    server_context.verify_mode = ssl.CERT_REQUIRED
    ca.configure_trust(server_context)
    client_context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(client_context)
    ca.issue_cert("client@example.test").configure_cert(client_context)
    with HTTPServer("127.0.0.1", 0, server_context) as server:
        made = connect(
            server.port,
            timeout=10,
            ssl_context=client_context,
            resolver=StaticResolver({NAME: ["127.0.0.1"]}),
        )
    assert made.body.endswith(HELLO_BODY)


# --------------------------------------------------------------------------- failures


def test_a_certificate_that_fails_verification_ends_the_call(
    assert_no_fd_leak: None,
    connect: Connect,
    server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert(NAME, "::1").configure_cert(other)
    with pair(_broken_v6(other), server_context) as (port, good):
        with pytest.raises(CertificateError) as caught:
            connect(port, timeout=10, ssl_context=client_ssl_context)
        assert good is not None
        assert good.connection_count == 0  # never raced past to the good certificate
    error = caught.value
    assert error.errno == errno.EACCES
    assert isinstance(error.__cause__, ssl.SSLCertVerificationError)
    (attempt,) = error.attempts
    assert attempt.outcome is Outcome.FAILED
    assert attempt.tcp is not None
    assert "example.test" in str(error)


def test_a_certificate_failing_after_the_next_attempt_started_still_ends_the_call(
    connect: Connect, server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert(NAME, "::1").configure_cert(other)
    # The forged certificate comes late: the good address is already being tried, and
    # its handshake also takes time, so the bad one's verdict arrives first.
    bad = _broken_v6(other, handshake_delay=0.4)
    slow_good = HTTPServer("127.0.0.1", bad.port, server_context, handshake_delay=1.5)
    with bad, slow_good, pytest.raises(CertificateError) as caught:
        connect(bad.port, timeout=10, ssl_context=client_ssl_context)
    outcomes = [a.outcome for a in caught.value.attempts]
    assert outcomes == [Outcome.FAILED, Outcome.ABANDONED]


def test_a_wrong_name_fails_verification(
    connect: Connect, server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    with HTTPServer("127.0.0.1", 0, server_context) as server, pytest.raises(CertificateError):
        connect(
            server.port,
            timeout=10,
            ssl_context=client_ssl_context,
            server_hostname="not-in-the-certificate.test",
            resolver=StaticResolver({NAME: ["127.0.0.1"]}),
        )


def test_every_address_failing_in_tls_is_a_tls_error(
    assert_no_fd_leak: None,
    connect: Connect,
    server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    with pair(_broken_v6(server_context, handshake="alert"), None) as (port, _):
        with HTTPServer("127.0.0.1", port, server_context, handshake="alert"):
            with pytest.raises(TLSError) as caught:
                connect(port, timeout=10, ssl_context=client_ssl_context)
    error = caught.value
    assert isinstance(error, HostUnreachableError)
    assert not isinstance(error, RefusedError)
    assert error.errno == errno.ECONNABORTED
    assert [a.outcome for a in error.attempts] == [Outcome.FAILED, Outcome.FAILED]
    assert all(a.tcp is not None for a in error.attempts)


def test_the_timeout_bounds_the_handshakes(
    assert_no_fd_leak: None,
    connect: Connect,
    server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    with pair(_broken_v6(server_context, handshake="mute"), None) as (port, _):
        with HTTPServer("127.0.0.1", port, server_context, handshake="mute"):
            with pytest.raises(TimedOutError) as caught:
                connect(port, timeout=0.6, ssl_context=client_ssl_context)
    attempts = caught.value.attempts
    assert [a.outcome for a in attempts] == [Outcome.TIMED_OUT, Outcome.TIMED_OUT]
    assert all(a.tcp is not None for a in attempts)


def test_invalid_tls_parameters_fail_at_once(client_ssl_context: ssl.SSLContext) -> None:
    with pytest.raises(InvalidParameterError, match=r"ssl_context must be an ssl\.SSLContext"):
        connect_by_name(NAME, 443, ssl_context=object())  # type: ignore[arg-type]
    with pytest.raises(InvalidParameterError, match="server_hostname needs an ssl_context"):
        connect_by_name(NAME, 443, server_hostname=NAME)
    with pytest.raises(InvalidParameterError, match="server_hostname must be"):
        connect_by_name(NAME, 443, ssl_context=client_ssl_context, server_hostname="")


# --------------------------------------------------------------------------- a client's check


def _connect_checked(
    port: int, context: ssl.SSLContext, check: Callable[[ssl.SSLSocket], None]
) -> Any:
    from connectbyname._parse import TLSOptions, options_from
    from connectbyname._sync import connect

    options = options_from({"resolver": StaticResolver({NAME: ["127.0.0.1"]})})
    tls = TLSOptions(context, NAME, check)
    return connect(NAME, port, options, timeout=10, tls=tls)


def test_a_clients_own_check_failing_ends_the_call(
    assert_no_fd_leak: None, server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    class Mismatch(ValueError):
        pass

    def check(sock: ssl.SSLSocket) -> None:
        assert sock.getpeercert(binary_form=True)
        raise Mismatch("fingerprint mismatch")

    with HTTPServer("127.0.0.1", 0, server_context) as server:
        with pytest.raises(CertificateError, match="fingerprint mismatch") as caught:
            _connect_checked(server.port, client_ssl_context, check)
    assert isinstance(caught.value.__cause__, Mismatch)


def test_a_clients_check_passing_lets_the_connection_through(
    server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    seen: list[str | None] = []
    with HTTPServer("127.0.0.1", 0, server_context) as server:
        conn = _connect_checked(server.port, client_ssl_context, lambda s: seen.append(s.version()))
        conn.close()
    assert seen == [conn.tls_version]


def test_an_interruption_during_the_handshakes_closes_every_socket(
    assert_no_fd_leak: None, server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    def interrupt(sock: ssl.SSLSocket) -> None:
        raise KeyboardInterrupt

    with HTTPServer("127.0.0.1", 0, server_context) as server:
        with pytest.raises(KeyboardInterrupt):
            _connect_checked(server.port, client_ssl_context, interrupt)


def test_an_interruption_just_after_the_wrap_closes_the_socket_ssl_made(
    assert_no_fd_leak: None, https_server: HTTPServer, client_ssl_context: ssl.SSLContext
) -> None:
    """Ctrl-C right after ``wrap_socket`` returned, before the attempt table took its
    socket (a window no frame of ssl's covers): the socket it made is closed, not left
    to the garbage collector by way of the traceback."""
    import inspect
    import sys
    import types

    from connectbyname import _race

    code = _race._tcp_connected.__code__
    lines, first = inspect.getsourcelines(_race._tcp_connected)
    after_wrap = first + next(
        i for i, line in enumerate(lines) if "if isinstance(wrapped, ssl.SSLSocket)" in line
    )
    reached: list[int] = []

    def local(frame: types.FrameType, event: str, arg: object) -> Any:
        if event == "line" and frame.f_lineno == after_wrap:
            reached.append(after_wrap)
            raise KeyboardInterrupt  # the trace function raising raises in the frame
        return local

    def tracer(frame: types.FrameType, event: str, arg: object) -> Any:
        return local if frame.f_code is code else None

    sys.settrace(tracer)
    try:
        with pytest.raises(KeyboardInterrupt) as caught:
            connect_by_name(
                "127.0.0.1", https_server.port, timeout=5, ssl_context=client_ssl_context
            )
    finally:
        sys.settrace(None)
    assert reached == [after_wrap]
    tb = caught.value.__traceback__
    while tb is not None and tb.tb_frame.f_code is not code:
        tb = tb.tb_next
    assert tb is not None
    made = tb.tb_frame.f_locals["wrapped"]
    assert isinstance(made, ssl.SSLSocket)
    assert made.fileno() == -1  # closed


# --------------------------------------------------------------------------- events


class _Recorder(EventListener):
    def __init__(self) -> None:
        self.told: list[tuple[str, Any]] = []

    def tls_started(self, event: TLSStarted) -> None:
        self.told.append(("tls_started", event))

    def tls_finished(self, event: TLSFinished) -> None:
        self.told.append(("tls_finished", event))

    def attempt_finished(self, event: AttemptFinished) -> None:
        self.told.append(("attempt_finished", event))


def test_each_attempts_handshake_is_told(
    connect: Connect, server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    recorder = _Recorder()
    with dual_stack("mute-v6", ssl_context=server_context) as scenario:
        connect(scenario.port, timeout=10, ssl_context=client_ssl_context, listener=recorder)
    told = [
        (name, (event.record if isinstance(event, AttemptFinished) else event).address[0])
        for name, event in recorder.told
    ]
    assert told == [
        ("tls_started", "::1"),
        ("tls_started", "127.0.0.1"),
        ("tls_finished", "127.0.0.1"),
        ("attempt_finished", "127.0.0.1"),
        ("tls_finished", "::1"),
        ("attempt_finished", "::1"),
    ]
    events = [event for _, event in recorder.told]
    assert all(e.server_name == NAME for e in events if not isinstance(e, AttemptFinished))
    won, lost = events[2], events[4]
    assert won.error is None
    assert won.version in ("TLSv1.2", "TLSv1.3")
    assert isinstance(lost.error, ConnectionAbortedError)
    assert lost.version is None
    assert lost.duration >= DELAY * 0.9  # it ran from the first's TCP until the win


def test_a_failed_handshake_is_told_with_its_error(
    server_context: ssl.SSLContext, client_ssl_context: ssl.SSLContext
) -> None:
    recorder = _Recorder()
    other = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    trustme.CA().issue_cert(NAME, "127.0.0.1").configure_cert(other)
    with HTTPServer("127.0.0.1", 0, other) as server, pytest.raises(CertificateError):
        _sync_connect(
            server.port,
            timeout=10,
            ssl_context=client_ssl_context,
            listener=recorder,
            resolver=StaticResolver({NAME: ["127.0.0.1"]}),
        )
    names = [name for name, _ in recorder.told]
    assert names == ["tls_started", "tls_finished", "attempt_finished"]
    assert isinstance(recorder.told[1][1].error, ssl.SSLCertVerificationError)


def test_a_context_that_returns_no_ssl_socket_is_refused_without_a_leak(
    assert_no_fd_leak: None, https_server: HTTPServer
) -> None:
    from unittest import mock

    class Stand:
        def __init__(self, sock: socket.socket, **_: object) -> None:
            self.sock = sock

        def close(self) -> None:
            self.sock.close()

    context = mock.create_autospec(ssl.SSLContext)
    context.wrap_socket = Stand
    with pytest.raises(InvalidParameterError, match=r"not an ssl\.SSLSocket"):
        connect_by_name("127.0.0.1", https_server.port, timeout=5, ssl_context=context)


def test_a_reset_answering_the_client_hello_is_a_tls_failure(
    assert_no_fd_leak: None,
    connect: Connect,
    server_context: ssl.SSLContext,
    client_ssl_context: ssl.SSLContext,
) -> None:
    with pair(_broken_v6(server_context, handshake="reset"), None) as (port, _):
        with HTTPServer("127.0.0.1", port, server_context, handshake="reset"):
            with pytest.raises(TLSError) as caught:
                connect(port, timeout=10, ssl_context=client_ssl_context)
    assert not isinstance(caught.value, RefusedError)
    assert [a.outcome for a in caught.value.attempts] == [Outcome.FAILED, Outcome.FAILED]
    assert all(a.tcp is not None for a in caught.value.attempts)


@pytest.mark.parametrize("name", ["a..b", ".leading", "x" * 64 + ".test", "bad\x00name"])
def test_a_server_hostname_ssl_would_refuse_is_refused_before_any_io(
    name: str, client_ssl_context: ssl.SSLContext
) -> None:
    resolver = StaticResolver({NAME: ["127.0.0.1"]})
    with pytest.raises(InvalidParameterError, match="server_hostname"):
        connect_by_name(
            NAME, 443, ssl_context=client_ssl_context, server_hostname=name, resolver=resolver
        )
    assert resolver.calls == []
