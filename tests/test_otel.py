"""connectbyname.otel: a ``connect`` span per connect, child of the current span.

Spans are collected with the OpenTelemetry SDK's in-memory exporter; the HTTP spans
come from OpenTelemetry's own instrumentations of requests, urllib3 and httpx (tests
that need one skip where it is not installed: the ``otel`` extra's floor is tested
with the API and SDK alone). Loopback only.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

import anyio
import httpx
import pytest
import requests
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF
from opentelemetry.trace import SpanContext, SpanKind, StatusCode

import connectbyname
from connectbyname import otel
from connectbyname._events import OBSERVERS, TLSFinished
from connectbyname.adapters import requests as cbn_requests
from connectbyname.adapters import urllib3 as cbn_urllib3
from connectbyname.adapters.httpx import AsyncConnectByNameTransport, ConnectByNameTransport
from connectbyname.testing import Blackhole, HTTPServer, StaticResolver

NAME = "example.test"


class Traces:
    """The SDK's in-memory exporter, and what the tests ask of what it holds."""

    def __init__(self, provider: TracerProvider, exporter: InMemorySpanExporter) -> None:
        self.provider = provider
        self.exporter = exporter
        self.tracer = provider.get_tracer("tests")

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.exporter.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def one(self, name: str) -> ReadableSpan:
        (span,) = self.spans(name)
        return span

    def http_span(self) -> ReadableSpan:
        """The one span an HTTP instrumentation made (CLIENT, not ours)."""
        (span,) = [
            s
            for s in self.spans()
            if s.kind is SpanKind.CLIENT and s.name not in ("connect", "tls")
        ]
        return span


@pytest.fixture
def traces() -> Iterator[Traces]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    otel.instrument(provider)
    try:
        yield Traces(provider, exporter)
    finally:
        otel.uninstrument()
        provider.shutdown()
    assert not OBSERVERS


@pytest.fixture
def tls_server(server_ssl_context: ssl.SSLContext) -> Iterator[HTTPServer]:
    with HTTPServer("127.0.0.1", ssl_context=server_ssl_context) as server:
        yield server


def child_of(span: ReadableSpan, parent: ReadableSpan) -> bool:
    assert span.parent is not None, f"{span.name} has no parent"
    # The SDK leaves ReadableSpan.context unannotated.
    context: SpanContext = span.context
    parent_context: SpanContext = parent.context
    return (
        span.parent.span_id == parent_context.span_id
        and context.trace_id == parent_context.trace_id
    )


def events(span: ReadableSpan, name: str) -> list[Mapping[str, Any]]:
    return [dict(e.attributes or {}) for e in span.events if e.name == name]


def check_connected(span: ReadableSpan, host: str, port: int, peer: str = "127.0.0.1") -> None:
    """A ``connect`` span that connected to ``peer`` port ``port``."""
    assert span.kind is SpanKind.CLIENT
    assert span.status.status_code is StatusCode.UNSET
    attributes = dict(span.attributes or {})
    assert attributes["server.address"] == host
    assert attributes["server.port"] == port
    assert attributes["network.peer.address"] == peer
    assert attributes["network.peer.port"] == port
    assert attributes["network.local.address"] == peer
    assert isinstance(attributes["network.local.port"], int)
    assert attributes["network.type"] == ("ipv6" if ":" in peer else "ipv4")
    assert attributes["network.transport"] == "tcp"
    (*_, last) = events(span, "attempt")
    assert last["connectbyname.outcome"] == "connected"
    assert last["network.peer.address"] == peer
    assert last["connectbyname.duration"] >= 0


def check_failed(span: ReadableSpan, error: str) -> None:
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description
    assert dict(span.attributes or {})["error.type"] == error
    (exception,) = events(span, "exception")
    assert exception["exception.type"].rpartition(".")[2] == error.rpartition(".")[2]


# --------------------------------------------------------------------------- the engine


def test_a_connect_is_a_span_with_lookups_and_attempts(
    traces: Traces, http_server: HTTPServer, fake_dns: Callable[..., StaticResolver]
) -> None:
    fake_dns({NAME: ["::1", "127.0.0.1"]})  # nothing on [::1]:P: refused, then IPv4
    with (
        traces.tracer.start_as_current_span("parent"),
        connectbyname.connect_by_name(NAME, http_server.port, timeout=5),
    ):
        pass
    parent, connect = traces.one("parent"), traces.one("connect")
    assert child_of(connect, parent)
    check_connected(connect, NAME, http_server.port)
    lookups = events(connect, "lookup")
    assert [lookup["connectbyname.record_type"] for lookup in lookups] == ["AAAA", "A"]
    assert [list(lookup["connectbyname.answers"]) for lookup in lookups] == [
        ["::1"],
        ["127.0.0.1"],
    ]
    assert all(lookup["dns.question.name"] == NAME for lookup in lookups)
    assert all(lookup["connectbyname.duration"] >= 0 for lookup in lookups)
    attempts = events(connect, "attempt")
    assert [(a["network.peer.address"], a["connectbyname.outcome"]) for a in attempts] == [
        ("::1", "refused"),
        ("127.0.0.1", "connected"),
    ]
    assert attempts[0]["network.type"] == "ipv6"
    assert attempts[0]["error.type"] == "ConnectionRefusedError"
    assert [a["connectbyname.attempt"] for a in attempts] == [0, 1]


def test_an_ipv6_connect(traces: Traces, http_server_v6: HTTPServer) -> None:
    with connectbyname.connect_by_name("::1", http_server_v6.port, timeout=5):
        pass
    connect = traces.one("connect")
    check_connected(connect, "::1", http_server_v6.port, peer="::1")
    assert connect.parent is None  # no current span: a root


def test_a_refused_connect_sets_the_status_and_records_the_error(traces: Traces) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with pytest.raises(connectbyname.RefusedError):
        connectbyname.connect_by_name("127.0.0.1", port, timeout=5)
    connect = traces.one("connect")
    check_failed(connect, "connectbyname.RefusedError")
    ((attempt),) = events(connect, "attempt")
    assert attempt["connectbyname.outcome"] == "refused"
    assert "network.local.address" not in (connect.attributes or {})


def test_a_timed_out_connect_sets_the_status_and_records_the_error(traces: Traces) -> None:
    with Blackhole("127.0.0.1") as hole, pytest.raises(connectbyname.TimedOutError):
        connectbyname.connect_by_name("127.0.0.1", hole.port, timeout=0.3)
    connect = traces.one("connect")
    check_failed(connect, "connectbyname.TimedOutError")
    ((attempt),) = events(connect, "attempt")
    assert attempt["connectbyname.outcome"] == "timed out"


def test_a_failed_lookup_is_an_event_with_its_error(
    traces: Traces, fake_dns: Callable[..., StaticResolver]
) -> None:
    fake_dns({})
    with pytest.raises(connectbyname.NameResolutionError):
        connectbyname.connect_by_name(NAME, 80, timeout=5)
    connect = traces.one("connect")
    check_failed(connect, "connectbyname.NameResolutionError")
    lookups = events(connect, "lookup")
    assert lookups
    assert all(lookup["error.type"] == "connectbyname.NameResolutionError" for lookup in lookups)
    assert all("connectbyname.answers" not in lookup for lookup in lookups)


def test_a_call_that_raises_without_finishing_still_ends_its_span(
    traces: Traces, http_server: HTTPServer
) -> None:
    # A socket option the system refuses: the race raises out of the attempt.
    with pytest.raises(connectbyname.InvalidParameterError):
        connectbyname.connect_by_name(
            "127.0.0.1", http_server.port, socket_options=[(socket.SOL_SOCKET, 0x7FFF, 1)]
        )
    check_failed(traces.one("connect"), "connectbyname.InvalidParameterError")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_cancelled_async_connect_ends_its_span_with_the_cancellation(
    traces: Traces, backend: str
) -> None:
    async def main() -> None:
        with Blackhole("127.0.0.1") as hole, anyio.move_on_after(0.2):
            await connectbyname.aconnect_by_name("127.0.0.1", hole.port, timeout=10)

    anyio.run(main, backend=backend)
    connect = traces.one("connect")
    assert connect.status.status_code is StatusCode.ERROR
    (exception,) = events(connect, "exception")
    assert exception["exception.type"].rpartition(".")[2] in ("CancelledError", "Cancelled")


def test_the_engine_is_told_alongside_the_calls_own_listener(
    traces: Traces, http_server: HTTPServer
) -> None:
    told: list[str] = []

    class Own(connectbyname.EventListener):
        def attempt_finished(self, event: connectbyname.AttemptFinished) -> None:
            told.append(str(event.record.outcome))

    with connectbyname.connect_by_name("127.0.0.1", http_server.port, listener=Own()):
        pass
    assert told == ["connected"]
    assert len(events(traces.one("connect"), "attempt")) == 1


def test_a_span_that_does_not_record_costs_no_events(
    http_server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from connectbyname import _race

    made: list[object] = []
    original = _race._Told.__init__

    def counting(self: Any, *args: Any) -> None:
        made.append(self)
        original(self, *args)

    monkeypatch.setattr(_race._Told, "__init__", counting)
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=ALWAYS_OFF)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    instrumentations: tuple[Callable[[], None], ...] = (
        lambda: otel.instrument(provider),
        lambda: otel.instrument(trace.NoOpTracerProvider()),
        # No global provider set: the proxy's spans do not record either.
        otel.instrument,
    )
    for instrumented in instrumentations:
        instrumented()
        try:
            with connectbyname.connect_by_name("127.0.0.1", http_server.port, timeout=5):
                pass

            async def main() -> None:
                connection = await connectbyname.aconnect_by_name(
                    "127.0.0.1", http_server.port, timeout=5
                )
                await connection.aclose()

            anyio.run(main)
        finally:
            otel.uninstrument()
    assert made == []
    assert exporter.get_finished_spans() == ()


def test_a_global_provider_set_after_instrument_is_used(http_server: HTTPServer) -> None:
    # In a process of its own: the global provider can be set once per process.
    import subprocess
    import sys
    import textwrap

    program = textwrap.dedent(f"""
        import connectbyname
        from connectbyname import otel
        from opentelemetry import trace
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor
        from opentelemetry.sdk.trace.export.in_memory_span_exporter import (
            InMemorySpanExporter,
        )

        otel.instrument()  # no provider set yet
        connectbyname.connect_by_name("127.0.0.1", {http_server.port}).close()
        exporter = InMemorySpanExporter()
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        connectbyname.connect_by_name("127.0.0.1", {http_server.port}).close()
        print([span.name for span in exporter.get_finished_spans()])
    """)
    result = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "['connect']"


def test_uninstrument_stops_and_instrument_again_replaces(
    traces: Traces, http_server: HTTPServer
) -> None:
    assert otel.is_instrumented()
    otel.instrument(traces.provider)  # again: one observer still
    assert len(OBSERVERS) == 1
    otel.uninstrument()
    assert not otel.is_instrumented()
    with connectbyname.connect_by_name("127.0.0.1", http_server.port):
        pass
    assert traces.spans() == []


def test_each_thread_s_connect_is_a_child_of_its_own_span(
    traces: Traces, http_server: HTTPServer
) -> None:
    barrier = threading.Barrier(4)

    def work(number: int) -> None:
        with traces.tracer.start_as_current_span(f"thread {number}"):
            barrier.wait(5)
            for _ in range(3):
                with connectbyname.connect_by_name("127.0.0.1", http_server.port, timeout=5):
                    pass

    threads = [threading.Thread(target=work, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    check_children(traces, [f"thread {n}" for n in range(4)], 3)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_each_task_s_connect_is_a_child_of_its_own_span(
    traces: Traces, http_server: HTTPServer, backend: str
) -> None:
    async def work(number: int) -> None:
        with traces.tracer.start_as_current_span(f"task {number}"):
            for _ in range(3):
                connection = await connectbyname.aconnect_by_name(
                    "localhost", http_server.port, timeout=5
                )
                await connection.aclose()
                await anyio.sleep(0)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for number in range(4):
                group.start_soon(work, number)

    anyio.run(main, backend=backend)
    check_children(traces, [f"task {n}" for n in range(4)], 3)


def check_children(traces: Traces, parents: Sequence[str], each: int) -> None:
    connects = traces.spans("connect")
    assert len(connects) == len(parents) * each
    for name in parents:
        parent = traces.one(name)
        assert sum(child_of(c, parent) for c in connects) == each


def test_a_handshake_inside_the_call_is_an_event_of_the_connect_span(traces: Traces) -> None:
    # The engine does not do TLS yet; when it does, the handshake is told between the
    # attempts and connect_finished, and lands on the connect span.
    listener = otel._installed[0].connect("example.test", 443)
    assert listener is not None
    listener.tls_finished(
        TLSFinished("example.test", ("192.0.2.1", 443), 0.02, 0.01, "TLSv1.3", "h2", None)
    )
    listener.connect_finished(connectbyname.ConnectFinished(0.03, None, None))
    (tls,) = events(traces.one("connect"), "tls")
    assert tls["tls.protocol.version"] == "1.3"
    assert tls["tls.next_protocol"] == "h2"
    assert tls["tls.established"] is True
    assert tls["server.address"] == "example.test"


# --------------------------------------------------------------------------- instrumentations


@contextlib.contextmanager
def instrumented(name: str, traces: Traces) -> Iterator[None]:
    """OpenTelemetry's own instrumentation ``name`` (requests, urllib3, httpx), on."""
    module = pytest.importorskip(f"opentelemetry.instrumentation.{name}")
    instrumentor = {
        "requests": "RequestsInstrumentor",
        "urllib3": "URLLib3Instrumentor",
        "httpx": "HTTPXClientInstrumentor",
    }[name]
    instance = getattr(module, instrumentor)()
    instance.instrument(tracer_provider=traces.provider)
    try:
        yield
    finally:
        instance.uninstrument()


def check_under_http_span(traces: Traces, host: str, port: int, tls: bool = False) -> None:
    http = traces.http_span()
    connect = traces.one("connect")
    assert child_of(connect, http)
    check_connected(connect, host, port)
    assert events(connect, "attempt")
    if tls:
        # Raced in the call: an event of the connect span, not a span of its own.
        assert traces.spans("tls") == []
        (attributes,) = events(connect, "tls")
        assert attributes["server.address"] == host
        assert attributes["network.peer.address"] == "127.0.0.1"
        assert attributes["network.peer.port"] == port
        assert attributes["tls.protocol.name"] == "tls"
        assert attributes["tls.protocol.version"] in ("1.2", "1.3")
        assert attributes["tls.next_protocol"] == "http/1.1"
        assert attributes["tls.established"] is True
    else:
        assert traces.spans("tls") == []


def test_under_the_requests_instrumentation(traces: Traces, http_server: HTTPServer) -> None:
    with instrumented("requests", traces), cbn_requests.Session() as session:
        assert session.get(f"http://localhost:{http_server.port}/").status_code == 200
    check_under_http_span(traces, "localhost", http_server.port)


def test_under_the_requests_instrumentation_over_https(
    traces: Traces, tls_server: HTTPServer, ca_bundle_path: str
) -> None:
    with instrumented("requests", traces), cbn_requests.Session() as session:
        url = f"https://localhost:{tls_server.port}/"
        assert session.get(url, verify=ca_bundle_path).status_code == 200
    check_under_http_span(traces, "localhost", tls_server.port, tls=True)


def test_a_refused_request_under_the_requests_instrumentation(traces: Traces) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
    with instrumented("requests", traces), cbn_requests.Session() as session:
        with pytest.raises(requests.ConnectionError):
            session.get(f"http://127.0.0.1:{port}/", timeout=5)
    http, connect = traces.http_span(), traces.one("connect")
    assert child_of(connect, http)
    check_failed(connect, "connectbyname.RefusedError")
    assert http.status.status_code is StatusCode.ERROR


def test_a_failed_handshake_under_the_requests_instrumentation(
    traces: Traces, tls_server: HTTPServer
) -> None:
    # Verified against the default bundle, which does not hold the test CA.
    with (
        instrumented("requests", traces),
        cbn_requests.Session() as session,
        pytest.raises(requests.exceptions.SSLError),
    ):
        session.get(f"https://localhost:{tls_server.port}/")
    # Raced in the call: the verification failure ends the connect span.
    assert traces.spans("tls") == []
    connect = traces.one("connect")
    assert child_of(connect, traces.http_span())
    check_failed(connect, "connectbyname.CertificateError")
    (handshake,) = events(connect, "tls")
    assert handshake["tls.established"] is False
    assert "SSLCertVerificationError" in str(handshake["error.type"])


@pytest.mark.parametrize("injected", [False, True], ids=["drop-in", "injected"])
def test_under_the_urllib3_instrumentation(
    traces: Traces, http_server: HTTPServer, injected: bool
) -> None:
    import urllib3

    with instrumented("urllib3", traces):
        if injected:
            cbn_urllib3.inject_into_urllib3()
            manager: urllib3.PoolManager = urllib3.PoolManager()
        else:
            manager = cbn_urllib3.PoolManager()
        try:
            response = manager.request("GET", f"http://localhost:{http_server.port}/")
            assert response.status == 200
        finally:
            manager.clear()
            cbn_urllib3.extract_from_urllib3()
    check_under_http_span(traces, "localhost", http_server.port)


def test_a_timed_out_request_under_the_urllib3_instrumentation(traces: Traces) -> None:
    import urllib3

    with (
        instrumented("urllib3", traces),
        Blackhole("127.0.0.1") as hole,
        cbn_urllib3.PoolManager(retries=False, timeout=0.3) as manager,
        pytest.raises(urllib3.exceptions.ConnectTimeoutError),
    ):
        manager.request("GET", f"http://127.0.0.1:{hole.port}/")
    connect = traces.one("connect")
    assert child_of(connect, traces.http_span())
    check_failed(connect, "connectbyname.TimedOutError")


@pytest.mark.parametrize("mode", ["sync", "asyncio", "trio"])
def test_under_the_httpx_instrumentation(
    traces: Traces, tls_server: HTTPServer, client_ssl_context: ssl.SSLContext, mode: str
) -> None:
    url = f"https://localhost:{tls_server.port}/"
    with instrumented("httpx", traces):
        if mode == "sync":
            with httpx.Client(transport=ConnectByNameTransport(verify=client_ssl_context)) as c:
                assert c.get(url).status_code == 200
        else:

            async def main() -> None:
                transport = AsyncConnectByNameTransport(verify=client_ssl_context)
                async with httpx.AsyncClient(transport=transport) as client:
                    assert (await client.get(url)).status_code == 200

            anyio.run(main, backend=mode)
    check_under_http_span(traces, "localhost", tls_server.port, tls=True)


@pytest.mark.parametrize("mode", ["sync", "asyncio", "trio"])
def test_a_timed_out_request_under_the_httpx_instrumentation(traces: Traces, mode: str) -> None:
    def get(url: str) -> None:
        if mode == "sync":
            with httpx.Client(transport=ConnectByNameTransport(), timeout=0.3) as client:
                client.get(url)
            return

        async def main() -> None:
            transport = AsyncConnectByNameTransport()
            async with httpx.AsyncClient(transport=transport, timeout=0.3) as client:
                await client.get(url)

        anyio.run(main, backend=mode)

    with instrumented("httpx", traces), Blackhole("127.0.0.1") as hole:
        with pytest.raises(httpx.ConnectTimeout):
            get(f"http://127.0.0.1:{hole.port}/")
    connect = traces.one("connect")
    assert child_of(connect, traces.http_span())
    check_failed(connect, "connectbyname.TimedOutError")


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_concurrent_httpx_requests_each_under_their_own_http_span(
    traces: Traces, http_server: HTTPServer, backend: str
) -> None:
    async def main() -> None:
        transport = AsyncConnectByNameTransport()
        async with httpx.AsyncClient(transport=transport) as client, anyio.create_task_group() as g:
            for number in range(4):
                # Each on a connection of its own (different host names).
                host = "localhost" if number % 2 else "127.0.0.1"
                g.start_soon(client.get, f"http://{host}:{http_server.port}/?n={number}")

    with instrumented("httpx", traces):
        anyio.run(main, backend=backend)
    connects = traces.spans("connect")
    https = [s for s in traces.spans() if s.name not in ("connect", "tls")]
    assert len(https) == 4
    # Every connect is a child of one of the HTTP spans, never of another's context.
    assert connects
    for connect in connects:
        assert sum(child_of(connect, http) for http in https) == 1
