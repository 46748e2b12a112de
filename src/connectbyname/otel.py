"""OpenTelemetry tracing for every connect of the process.

::

    import connectbyname.otel

    connectbyname.otel.instrument()      # the global tracer provider; or tracer_provider=

From then on every connect, by the engine's functions or any adapter, sync or async,
is a span named ``connect`` (kind ``CLIENT``), a child of the span current where the
connect is made: under OpenTelemetry's own instrumentations of requests, urllib3 and
httpx, a child of their HTTP span. `uninstrument` stops it.

The ``connect`` span, after the semantic conventions:

- attributes: ``server.address`` and ``server.port`` (the name and port asked for,
  set when the span starts, so samplers see them); once connected,
  ``network.peer.address``, ``network.peer.port``, ``network.local.address``,
  ``network.local.port``, ``network.type`` (``"ipv4"``, ``"ipv6"``) and
  ``network.transport`` (``"tcp"``);
- one event ``lookup`` per name lookup: ``dns.question.name``,
  ``connectbyname.record_type`` (``"AAAA"``, ``"A"``, ``"AAAA+A"``), the answers
  (``connectbyname.answers``, addresses) or the error (``error.type``,
  ``connectbyname.error``), and ``connectbyname.duration`` (seconds);
- one event ``attempt`` per address tried (or skipped, or refused by the policy):
  ``network.peer.address``, ``network.peer.port``, ``network.type``,
  ``connectbyname.attempt`` (its number), ``connectbyname.outcome`` (``"connected"``,
  ``"refused"``, ``"timed out"``, ...), ``connectbyname.duration``, and the error or
  the reason when there is one;
- on failure, status ``ERROR`` with the error's message, the exception recorded
  (``record_exception``) and ``error.type``; a call cancelled or interrupted ends its
  span the same way.

A TLS handshake raced in the call (HTTPS through the adapters, or ``ssl_context``) is
an event ``tls`` of the ``connect`` span, one per attempt that connected over TCP:
``server.address`` (the name sent and checked), ``network.peer.address`` and
``network.peer.port``, ``tls.protocol.name``, ``tls.protocol.version``,
``tls.next_protocol`` (ALPN), ``tls.established``, and the error as for ``connect``.
A handshake an adapter does after the connect (inside a proxy's tunnel) is a span of
its own, ``tls`` (kind ``INTERNAL``), next to ``connect`` under the same parent, with
the same attributes.

Cost: every call asks the tracer for a span (but a no-op tracer's: it never records);
a span that does not record (a sampler dropped it, or no provider is set yet) makes
the call run exactly as without tracing, with no event made. The span is started,
never made current: nothing runs inside a connect that could be its child, and no
context is attached or detached.

Needs ``opentelemetry-api`` only (the ``otel`` extra); the SDK, or any other
implementation, is the application's choice.
"""

from __future__ import annotations

import socket
import threading
from typing import Any

try:
    from opentelemetry import trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode, TracerProvider
except ModuleNotFoundError as exc:  # pragma: no cover (the plain-install test runs it)
    if (exc.name or "").partition(".")[0] != "opentelemetry":
        raise
    raise ModuleNotFoundError(
        "connectbyname.otel needs opentelemetry-api: pip install 'connectbyname[otel]'",
        name=exc.name,
    ) from exc

import connectbyname

from . import __version__
from ._events import (
    AttemptFinished,
    CallListener,
    ConnectFinished,
    LookupFinished,
    Observer,
    TLSFinished,
    observe,
    unobserve,
)
from ._info import Address, Outcome

__all__ = ["instrument", "is_instrumented", "uninstrument"]

#: The instrumentation scope's name: what the spans say made them.
SCOPE = "connectbyname"

_lock = threading.Lock()
_installed: list[_Tracing] = []


def instrument(tracer_provider: TracerProvider | None = None) -> None:
    """Trace every connect of the process with ``tracer_provider``'s tracer (``None``:
    the global provider, as it is when each span starts). Calling it again replaces
    the provider."""
    tracer = trace.get_tracer(SCOPE, __version__, tracer_provider)
    with _lock:
        for old in _installed:
            unobserve(old)
        _installed[:] = [_Tracing(tracer)]
        observe(_installed[0])


def uninstrument() -> None:
    """Stop tracing connects (a connect under way still ends its span)."""
    with _lock:
        for old in _installed:
            unobserve(old)
        _installed.clear()


def is_instrumented() -> bool:
    """Whether `instrument` is in force."""
    return bool(_installed)


# --------------------------------------------------------------------------- spans


def _network_type(address: Address) -> str:
    # Addresses come as the socket module writes them: four items for IPv6 (a mapped
    # IPv4 address is written as IPv4 already).
    return "ipv6" if len(address) == 4 or ":" in address[0] else "ipv4"


def _type_name(error: BaseException) -> str:
    """``error.type``: the error's class, fully qualified (connectbyname's errors by
    their public name, built-in ones by their bare name)."""
    cls = type(error)
    module = cls.__module__
    if module == "builtins":
        return cls.__qualname__
    if module.startswith("connectbyname.") and getattr(connectbyname, cls.__name__, None) is cls:
        module = "connectbyname"
    return f"{module}.{cls.__qualname__}"


def _error_attributes(error: BaseException) -> dict[str, Any]:
    return {"error.type": _type_name(error), "connectbyname.error": str(error)}


def _fail(span: Span, error: BaseException) -> None:
    span.set_status(Status(StatusCode.ERROR, str(error) or type(error).__qualname__))
    span.set_attribute("error.type", _type_name(error))
    span.record_exception(error)


def _tls_attributes(event: TLSFinished) -> dict[str, Any]:
    attributes: dict[str, Any] = {
        "tls.protocol.name": "tls",
        "tls.established": event.error is None,
        "connectbyname.duration": event.duration,
    }
    version = event.version
    if version is not None:
        # "TLSv1.3" -> "1.3", as the conventions write it.
        attributes["tls.protocol.version"] = version.removeprefix("TLSv")
    if event.alpn_protocol is not None:
        attributes["tls.next_protocol"] = event.alpn_protocol
    return attributes


class _Tracing(Observer):
    """The observer `instrument` installs: a span per call and per TLS handshake."""

    def __init__(self, tracer: trace.Tracer) -> None:
        self._tracer = tracer
        # A no-op tracer (a NoOpTracerProvider's, or the SDK's with OTEL_SDK_DISABLED)
        # never records: no span is asked for. (A proxy tracer, the global provider's
        # before one is set, may start recording later: it is asked every time.)
        self._never = isinstance(tracer, trace.NoOpTracer)

    def connect(self, host: str, port: int) -> CallListener | None:
        if self._never:
            return None
        span = self._tracer.start_span(
            "connect",
            kind=SpanKind.CLIENT,
            attributes={"server.address": host, "server.port": port},
        )
        if not span.is_recording():
            return None
        return _ConnectSpan(span, self)

    def tls(self, server_name: str | None, address: Address | None) -> CallListener | None:
        if self._never:
            return None
        attributes: dict[str, Any] = {}
        if server_name is not None:
            attributes["server.address"] = server_name
        if address is not None:
            attributes["network.peer.address"] = address[0]
            attributes["network.peer.port"] = address[1]
        span = self._tracer.start_span("tls", kind=SpanKind.INTERNAL, attributes=attributes)
        if not span.is_recording():
            return None
        return _TLSSpan(span, self)


class _Spanned(CallListener):
    """A listener that owns one span and ends it exactly once."""

    def __init__(self, span: Span, observer: _Tracing) -> None:
        self.span = span
        self.log_as = observer
        self.ended = False

    def end(self, error: BaseException | None = None) -> None:
        if self.ended:
            return
        self.ended = True
        try:
            if error is not None:
                _fail(self.span, error)
        finally:
            self.span.end()

    def call_abandoned(self, error: BaseException) -> None:
        # A generator closed by a cancellation or an interruption sees GeneratorExit,
        # raised while that was being handled: the span records that.
        if isinstance(error, GeneratorExit) and error.__context__ is not None:
            error = error.__context__
        self.end(error)


class _ConnectSpan(_Spanned):
    def lookup_finished(self, event: LookupFinished) -> None:
        attributes: dict[str, Any] = {
            "dns.question.name": event.host,
            "connectbyname.record_type": event.record,
            "connectbyname.duration": event.duration,
        }
        if event.error is not None:
            attributes.update(_error_attributes(event.error))
        else:
            attributes["connectbyname.answers"] = [c.address[0] for c in event.candidates]
        self.span.add_event("lookup", attributes)

    def attempt_finished(self, event: AttemptFinished) -> None:
        record = event.record
        attributes: dict[str, Any] = {
            "network.peer.address": record.address[0],
            "network.peer.port": record.address[1],
            "network.type": "ipv6" if record.family == socket.AF_INET6 else "ipv4",
            "connectbyname.attempt": event.attempt,
            "connectbyname.outcome": str(record.outcome),
            "connectbyname.duration": record.duration,
        }
        if record.error is not None and record.outcome is not Outcome.CONNECTED:
            attributes.update(_error_attributes(record.error))
        if record.reason is not None:
            attributes["connectbyname.reason"] = record.reason
        if record.history is not None:
            attributes["connectbyname.history"] = record.history
        self.span.add_event("attempt", attributes)

    def tls_finished(self, event: TLSFinished) -> None:
        # A handshake inside the call: one per attempt that connected over TCP.
        attributes = _tls_attributes(event)
        if event.server_name is not None:
            attributes["server.address"] = event.server_name
        if event.address is not None:
            attributes["network.peer.address"] = event.address[0]
            attributes["network.peer.port"] = event.address[1]
        if event.error is not None:
            attributes.update(_error_attributes(event.error))
        self.span.add_event("tls", attributes)

    def connect_finished(self, event: ConnectFinished) -> None:
        info = event.info
        if info is not None:
            remote, local = info.remote_address, info.local_address
            self.span.set_attributes(
                {
                    "network.peer.address": remote[0],
                    "network.peer.port": remote[1],
                    "network.local.address": local[0],
                    "network.local.port": local[1],
                    "network.type": _network_type(remote),
                    "network.transport": "tcp",
                }
            )
        self.end(event.error)


class _TLSSpan(_Spanned):
    def tls_finished(self, event: TLSFinished) -> None:
        self.span.set_attributes(_tls_attributes(event))
        self.end(event.error)
