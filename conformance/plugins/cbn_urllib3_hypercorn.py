"""What urllib3's test servers need from its Hypercorn fork, on PyPI's Hypercorn (loaded
for urllib3's suite, in both modes).

urllib3's lock file takes Hypercorn from a git branch of its own ("urllib3-changes"),
which PyPI does not have and this harness cannot fetch. Its dummy servers rely on two
things the fork adds to the ASGI scope:

- ``scope["extensions"]["tls"]``, with ``alpn_protocol`` (the protocol ALPN chose) and
  ``client_cert_name`` (the client certificate's subject as ``key=value, ...``):
  dummyserver/app.py's ``/alpn_protocol`` and ``/certificate`` answer 500 without it.
- ``scope["extensions"]["_transport"]`` on a ``CONNECT`` request: the client's stream,
  which dummyserver/asgi_proxy.py's ``ProxyApp`` pipes to the upstream server itself.
  For that, Hypercorn must stop reading the connection once the ``CONNECT`` is parsed,
  or it eats the tunnelled bytes (the client's TLS handshake ends in an EOF); it reads
  again (and then closes) when the app is done.

Written against Hypercorn 0.18.0's trio server (``TCPServer.run``/``.stream``,
``TaskGroup.spawn_app``); run.py pins that version, and a missing name stops the run.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

_server: contextvars.ContextVar[Any] = contextvars.ContextVar("cbn_hypercorn_server")


def _subject(cert: dict[str, Any]) -> str:
    return ", ".join(f"{key}={value}" for rdn in cert.get("subject", ()) for key, value in rdn)


class _Gate:
    """The server's stream as Hypercorn's reader sees it: while a tunnel is open,
    reading waits for the tunnel to end, then reads end-of-stream."""

    def __init__(self, stream: Any) -> None:
        self._stream = stream
        self.tunnel: Any = None  # a trio.Event while a CONNECT is served

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.tunnel is not None:
            await self.tunnel.wait()
            return b""
        data: bytes = await self._stream.receive_some(max_bytes)
        return data


def _patch() -> None:
    import trio
    from hypercorn.trio import task_group, tcp_server

    server_class = tcp_server.TCPServer
    group_class = task_group.TaskGroup
    for owner, name in ((server_class, "run"), (group_class, "spawn_app")):
        if not callable(getattr(owner, name, None)):
            raise pytest.UsageError(
                f"cbn_urllib3_hypercorn: Hypercorn has no {owner.__name__}.{name}; "
                "this shim needs updating for the installed Hypercorn"
            )
    original_run = server_class.run
    original_spawn_app = group_class.spawn_app

    async def run(self: Any) -> None:
        self.stream = _Gate(self.stream)
        token = _server.set(self)
        try:
            await original_run(self)
        finally:
            _server.reset(token)

    async def spawn_app(
        self: Any,
        app: Any,
        config: Any,
        scope: dict[str, Any],
        send: Callable[[Any], Awaitable[None]],
    ) -> Any:
        server = _server.get(None)
        if server is not None and scope.get("type") == "http":
            gate: _Gate = server.stream
            stream = gate._stream
            extensions = scope.setdefault("extensions", {})
            if isinstance(stream, trio.SSLStream):
                extensions["tls"] = {
                    "alpn_protocol": stream.selected_alpn_protocol(),
                    "client_cert_name": _subject(stream.getpeercert() or {}),
                }
            if scope.get("method") == "CONNECT":
                extensions["_transport"] = stream
                tunnel = gate.tunnel = trio.Event()
                app_send = send

                async def send(message: Any) -> None:
                    try:
                        await app_send(message)
                    finally:
                        if message is None:  # the app is done: read again
                            tunnel.set()

        return await original_spawn_app(self, app, config, scope, send)

    server_class.run = run
    group_class.spawn_app = spawn_app


def pytest_configure(config: pytest.Config) -> None:
    _patch()
