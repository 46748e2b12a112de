"""httpx with the connect-by-name engine: transports for `httpx.Client` and `httpx.AsyncClient`.

::

    client = httpx.Client(transport=ConnectByNameTransport(attempt_delay=0.1))
    response = client.get("https://example.test/", timeout=httpx.Timeout(10, connect=3))
    connectbyname.connection_info(response).remote_address

    async with httpx.AsyncClient(transport=AsyncConnectByNameTransport(http2=True)) as client:
        response = await client.get("https://example.test/")

The transports take `httpx.HTTPTransport`'s arguments (but ``uds``: a Unix socket has
no name to connect by) and the engine's options. Every connection, to the server or to
a proxy, is made by `connect_by_name` (sync) or `aconnect_by_name`'s race (async, on
asyncio and trio), through httpcore's public network-backend interface; on trio the
connection then runs on trio's own streams, as stock httpx's do there.

- Timeouts: httpx's connect timeout bounds name resolution, every attempt and the TLS
  handshake together (the handshake gets what is left); read, write and pool timeouts
  are unchanged.
- Errors: a failed connect raises httpx's own `httpx.ConnectTimeout` or
  `httpx.ConnectError` (``retries=`` retries them as in stock httpx), whose cause is
  httpcore's error, whose cause is the engine's: ``exc.__cause__.__cause__`` is the
  `ConnectByNameError`, with its ``attempts``. An address the ``policy`` refuses
  (redirect targets included) raises `ConnectByNameAddressDeniedError`, not retried.
- Proxies: ``proxy=`` (HTTP, HTTPS, or SOCKS with ``socksio``), or with ``trust_env``
  the environment's (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``, ``NO_PROXY``, read
  by `urllib.request.getproxies` when the transport is made). A client given a
  ``transport=`` ignores environment proxies itself, so the transport honours them.
- `connectbyname.connection_info` works on every response, also after the body was
  read and the client closed.
- Events: an engine ``listener`` is also told each connection's TLS handshake
  (``tls_started``, ``tls_finished``) and its use by a request: ``connection_acquired``
  (new or reused) once httpcore's pool gave the request a connection and the
  response's headers arrived (the pool has no public hook before that), and
  ``connection_released`` when the response is closed (``kept``: the connection
  stayed open for another request).
"""

from __future__ import annotations

import ssl
from collections.abc import AsyncIterator, Iterable, Iterator
from types import TracebackType
from typing import Any, Unpack, cast

try:
    import httpcore
    import httpx
except ModuleNotFoundError as exc:
    from . import missing_client

    missing_client(exc, "httpx")

from connectbyname import EngineOptions
from connectbyname._events import (
    ConnectionAcquired,
    ConnectionReleased,
    EventListener,
    tell,
)
from connectbyname._info import INFO_KEY, ConnectionInfo
from connectbyname._parse import options_from

from ._httpx_pool import (
    build_pool,
    check_private_api,
    environment_proxies,
    environment_route,
    install_pool,
)
from ._httpx_streams import (
    CONNECTION_KEY,
    TLS_NEXT,
    AsyncBackend,
    ConnectByNameAddressDeniedError,
    Made,
    SocketOption,
    SyncBackend,
    restore_cause,
)

__all__ = [
    "AsyncConnectByNameTransport",
    "ConnectByNameAddressDeniedError",
    "ConnectByNameTransport",
]

check_private_api()

#: httpx's own default (``httpx._config.DEFAULT_LIMITS``, which httpx does not export).
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def _attach_info(response: httpx.Response, listener: EventListener | None) -> httpx.Response:
    """Put the connection's info on the response; with a listener, tell it that the
    request acquired the connection, and that it releases it when the response closes."""
    stream = response.extensions.get("network_stream")
    if stream is not None:
        made = stream.get_extra_info(CONNECTION_KEY)
        if isinstance(made, Made):
            info = response.extensions[INFO_KEY] = made.response_info()
            if listener is not None:
                tell(listener, "connection_acquired", ConnectionAcquired(info, info.reused))
                release = _Release(listener, info, made)
                if isinstance(response.stream, httpx.AsyncByteStream):
                    response.stream = _AsyncReleasing(response.stream, release)
                else:
                    response.stream = _Releasing(response.stream, release)
    return response


class _Release:
    """Tells ``connection_released`` once, when the response is closed."""

    __slots__ = ("info", "listener", "made", "told")

    def __init__(self, listener: EventListener, info: ConnectionInfo, made: Made) -> None:
        self.listener, self.info, self.made, self.told = listener, info, made, False

    def __call__(self) -> None:
        if not self.told:
            self.told = True
            released = ConnectionReleased(self.info, kept=not self.made.closed)
            tell(self.listener, "connection_released", released)


class _Releasing(httpx.SyncByteStream):
    """A response's stream that tells the release when closed (httpcore's pool takes the
    connection back as it closes)."""

    def __init__(self, stream: Any, release: _Release) -> None:
        self._stream = stream
        self._release = release

    def __iter__(self) -> Iterator[bytes]:
        yield from self._stream

    def close(self) -> None:
        try:
            self._stream.close()
        finally:
            self._release()


class _AsyncReleasing(httpx.AsyncByteStream):
    """`_Releasing` for async responses."""

    def __init__(self, stream: httpx.AsyncByteStream, release: _Release) -> None:
        self._stream = stream
        self._release = release

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self._stream:
            yield chunk

    async def aclose(self) -> None:
        try:
            await self._stream.aclose()
        finally:
            self._release()


def _configure(
    transport: ConnectByNameTransport | AsyncConnectByNameTransport,
    arguments: dict[str, Any],
    engine_options: EngineOptions,
) -> None:
    """Set up a transport from its ``__init__`` arguments (``HTTPTransport``'s, and the
    engine's): its pool, and one proxy transport per environment proxy."""
    # Bad options fail here, when the transport is made, not at the first request.
    options = options_from(engine_options)
    trust_env, proxy = arguments["trust_env"], arguments["proxy"]
    ssl_context = httpx.create_ssl_context(
        verify=arguments["verify"], cert=arguments["cert"], trust_env=trust_env
    )
    settings = {**arguments, "ssl_context": ssl_context}
    checked = httpx.Proxy(proxy) if isinstance(proxy, str | httpx.URL) else proxy
    classes: tuple[type[Any], type[Any], type[Any]]
    if isinstance(transport, ConnectByNameTransport):
        backend: Any = SyncBackend(options, via_proxy=checked is not None)
        classes = (httpcore.ConnectionPool, httpcore.HTTPProxy, httpcore.SOCKSProxy)
    else:
        backend = AsyncBackend(options, via_proxy=checked is not None)
        classes = (httpcore.AsyncConnectionPool, httpcore.AsyncHTTPProxy, httpcore.AsyncSOCKSProxy)
    install_pool(transport, build_pool(checked, backend, settings, classes))
    transport._listener = options.listener
    transport._proxies = environment_proxies(trust_env and proxy is None)
    # The SSL context made above goes to the proxy transports as it is, so it is made
    # (and the CA bundle read) once.
    transport._routes = {
        scheme: type(transport)(
            **{**arguments, "verify": ssl_context, "cert": None, "proxy": url},
            **engine_options,
        )
        for scheme, url in transport._proxies.items()
        if scheme != "no"
    }


class _Arguments:
    """The constructor both transports share: `httpx.HTTPTransport`'s arguments (all but
    ``uds``) and the engine's options."""

    _proxies: dict[str, str]
    _routes: dict[str, Any]
    _listener: EventListener | None

    def __init__(  # noqa: PLR0917 (httpx.HTTPTransport's positional parameters)
        self,
        verify: ssl.SSLContext | str | bool = True,
        cert: Any = None,
        trust_env: bool = True,
        http1: bool = True,
        http2: bool = False,
        limits: httpx.Limits = DEFAULT_LIMITS,
        proxy: httpx.Proxy | httpx.URL | str | None = None,
        local_address: str | None = None,
        retries: int = 0,
        socket_options: Iterable[SocketOption] | None = None,
        **engine_options: Unpack[EngineOptions],
    ) -> None:
        # httpx.HTTPTransport.__init__ is not called: it would build a pool (and an SSL
        # context) only to have it replaced; see _httpx_pool.
        arguments = {
            "verify": verify,
            "cert": cert,
            "trust_env": trust_env,
            "http1": http1,
            "http2": http2,
            "limits": limits,
            "proxy": proxy,
            "local_address": local_address,
            "retries": retries,
            "socket_options": socket_options,
        }
        _configure(cast(Any, self), arguments, engine_options)


class ConnectByNameTransport(_Arguments, httpx.HTTPTransport):
    """`httpx.HTTPTransport` connecting through `connectbyname.connect_by_name`.

    Takes `httpx.HTTPTransport`'s arguments (all but ``uds``) and the engine's options
    (`connectbyname.EngineOptions`: ``attempt_delay``, ``family``, ``resolver``,
    ``resolution_delay``, ``history``, ``policy``). ``local_address`` and
    ``socket_options`` apply to every attempt socket. Use it as
    ``httpx.Client(transport=ConnectByNameTransport(...))``; see the module's docstring
    for timeouts, errors and proxies.
    """

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if self._routes:
            route = environment_route(request.url, self._proxies, self._routes)
            if route is not None:
                return route.handle_request(request)  # type: ignore[no-any-return]
        token = TLS_NEXT.set(request.url.scheme == "https")
        try:
            response = super().handle_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, ConnectByNameAddressDeniedError) as exc:
            restore_cause(exc)
            raise
        finally:
            TLS_NEXT.reset(token)
        return _attach_info(response, self._listener)

    def close(self) -> None:
        try:
            super().close()
        finally:
            for route in self._routes.values():
                route.close()

    def __exit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        try:
            super().__exit__(exc_type, exc_value, traceback)
        finally:
            for route in self._routes.values():
                route.close()


class AsyncConnectByNameTransport(_Arguments, httpx.AsyncHTTPTransport):
    """`httpx.AsyncHTTPTransport` connecting through `connectbyname.aconnect_by_name`,
    on asyncio and trio; its arguments are those of `ConnectByNameTransport`."""

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self._routes:
            route = environment_route(request.url, self._proxies, self._routes)
            if route is not None:
                return await route.handle_async_request(request)  # type: ignore[no-any-return]
        token = TLS_NEXT.set(request.url.scheme == "https")
        try:
            response = await super().handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, ConnectByNameAddressDeniedError) as exc:
            restore_cause(exc)
            raise
        finally:
            TLS_NEXT.reset(token)
        return _attach_info(response, self._listener)

    async def aclose(self) -> None:
        try:
            await super().aclose()
        finally:
            for route in self._routes.values():
                await route.aclose()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None = None,
        exc_value: BaseException | None = None,
        traceback: TracebackType | None = None,
    ) -> None:
        try:
            await super().__aexit__(exc_type, exc_value, traceback)
        finally:
            for route in self._routes.values():
                await route.aclose()
