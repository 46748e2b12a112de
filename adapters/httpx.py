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
"""

from __future__ import annotations

import dataclasses
import itertools
import math
import select
import socket
import ssl
import sys
import time
import urllib.request
from collections.abc import Iterable
from types import TracebackType
from typing import Any, Unpack, cast

import anyio
import anyio.abc
import anyio.streams.tls
import httpcore
import httpx

from connectbyname import (
    AddressDeniedError,
    ConnectByNameError,
    ConnectionInfo,
    EngineOptions,
    TimedOutError,
    connect_by_name,
)
from connectbyname._async import aconnect_socket
from connectbyname._info import INFO_KEY, Address
from connectbyname._parse import check_engine_options

__all__ = [
    "AsyncConnectByNameTransport",
    "ConnectByNameAddressDeniedError",
    "ConnectByNameTransport",
]

#: httpx's own default (``httpx._config.DEFAULT_LIMITS``, which httpx does not export).
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)

# The get_extra_info() key under which our streams hand out their _Connection. Asked
# through get_extra_info, it also reaches through httpcore's wrappers (the stream of a
# CONNECT or an Upgrade response delegates get_extra_info to ours).
_CONNECTION_KEY = "connectbyname_connection"

# httpcore's spelling of a socket option; the engine takes (level, option, int | bytes)
# and refuses the others as an invalid parameter.
_SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)


# --------------------------------------------------------------------------- private API


def _install_pool(transport: httpx.HTTPTransport | httpx.AsyncHTTPTransport, pool: Any) -> None:
    """PRIVATE API of httpx, the only one this module touches.

    httpx (tested: 0.28.1) has no public way to give `HTTPTransport` a network backend:
    its ``__init__`` builds an httpcore pool into ``self._pool``, and ``handle_request``,
    ``close``, ``__enter__`` and ``__exit__`` (async: their async forms) use nothing
    else. Our transports skip that ``__init__`` and put in a pool built with httpcore's
    public constructors and our ``network_backend``, so httpx's request and response
    conversion and its error mapping stay exactly stock. tests/test_httpx.py checks
    this contract and fails loudly when an httpx release changes it.
    """
    transport._pool = pool


# --------------------------------------------------------------------------- connections


class _Connection:
    """What the engine made, shared by a connection's plain and TLS streams.

    The addresses are cached here at connect time: a closed socket no longer knows them,
    and `connection_info` must work after the client is closed.
    """

    __slots__ = ("_fresh", "_reused", "_uses", "deadline")

    def __init__(self, info: ConnectionInfo, deadline: float | None) -> None:
        self._fresh = info
        self._reused = dataclasses.replace(info, reused=True)
        # next() on a count is atomic under the GIL: two threads sharing one HTTP/2
        # connection cannot both see its first use.
        self._uses = itertools.count()
        self.deadline = deadline

    @property
    def info(self) -> ConnectionInfo:
        return self._fresh

    def response_info(self) -> ConnectionInfo:
        """The info for the next response on this connection (``reused`` from the 2nd)."""
        return self._fresh if next(self._uses) == 0 else self._reused

    def tls_timeout(self, timeout: float | None, now: float) -> float | None:
        """The TLS handshake's share of the connect timeout: what is left of it."""
        if self.deadline is None:
            return timeout
        left = self.deadline - now
        if left <= 0:
            raise httpcore.ConnectTimeout("the connect timeout ran out before the TLS handshake")
        return left if timeout is None else min(timeout, left)


def _info(
    local: Address, remote: Address, attempts: Any, elapsed: float, via_proxy: bool
) -> ConnectionInfo:
    return ConnectionInfo(
        local_address=local,
        remote_address=remote,
        attempts=attempts,
        elapsed=elapsed,
        via_proxy=via_proxy,
    )


_ENGINE_ERROR = "_connectbyname_error"


class ConnectByNameAddressDeniedError(httpx.TransportError):
    """The engine's address policy refused every address of the host; ``__cause__`` is
    the `connectbyname.AddressDeniedError`. Not a connect error: ``retries=`` does not
    retry it, since the same name would be refused again."""


def _connect_error(error: ConnectByNameError) -> Exception:
    """The error a backend raises for the engine's, the only place it is translated:
    httpcore's own ``ConnectTimeout``/``ConnectError``, which httpx maps and
    ``retries=`` retries as its own, or `ConnectByNameAddressDeniedError`, which both
    let through untouched. httpcore's pool re-raises ``from None``, which drops the
    cause, so the error also keeps the engine's under ``_ENGINE_ERROR`` for
    `_restore_cause`."""
    failure: Exception
    if isinstance(error, AddressDeniedError):
        failure = ConnectByNameAddressDeniedError(str(error))
    elif isinstance(error, TimedOutError):
        failure = httpcore.ConnectTimeout(str(error))
    else:
        failure = httpcore.ConnectError(str(error))
    setattr(failure, _ENGINE_ERROR, error)
    return failure


def _restore_cause(exc: httpx.TransportError) -> None:
    """Put the engine's error back as the cause of httpx's error (ours) or of its cause
    (httpcore's)."""
    for failure in (exc, exc.__cause__):
        error = getattr(failure, _ENGINE_ERROR, None)
        if failure is not None and error is not None:
            failure.__cause__ = error
            return


def _is_readable(sock: socket.socket | None) -> bool:
    """Whether a read would not block (data, or the peer closed): httpcore asks before
    reusing a kept-alive connection. A socket already closed counts as readable."""
    if sock is None or sock.fileno() < 0:
        return True
    if not hasattr(select, "poll"):  # Windows
        return bool(select.select([sock], [], [], 0)[0])
    poller = select.poll()
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(0))


# --------------------------------------------------------------------------- sync


class _SyncStream(httpcore.NetworkStream):
    def __init__(self, sock: socket.socket, connection: _Connection) -> None:
        self._sock = sock
        self._connection = connection

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._sock.settimeout(timeout)
            return self._sock.recv(max_bytes)
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.ReadError(exc) from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            # As httpcore's own: the write timeout bounds each send, not the buffer.
            while buffer:
                self._sock.settimeout(timeout)
                buffer = buffer[self._sock.send(buffer) :]
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(exc) from exc
        except OSError as exc:
            raise httpcore.WriteError(exc) from exc

    def close(self) -> None:
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        try:
            if isinstance(self._sock, ssl.SSLSocket):
                # An SSLSocket cannot be wrapped again (HTTPS through an HTTPS proxy).
                raise httpcore.ConnectError(
                    "TLS inside TLS (HTTPS through an HTTPS proxy) is not supported by "
                    "the sync transport; use an http:// proxy URL"
                )
            # settimeout() on the socket bounds the whole handshake, not each read.
            self._sock.settimeout(self._connection.tls_timeout(timeout, time.monotonic()))
            tls = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except BaseException as exc:
            self.close()
            if isinstance(exc, TimeoutError):
                raise httpcore.ConnectTimeout(exc) from exc
            if isinstance(exc, OSError):
                raise httpcore.ConnectError(exc) from exc
            raise
        return _SyncStream(tls, self._connection)

    def get_extra_info(self, info: str) -> Any:
        if info == _CONNECTION_KEY:
            return self._connection
        if info == "ssl_object":
            # The SSLSocket has the SSLObject's methods (selected_alpn_protocol,
            # getpeercert, version...); its inner object is private.
            return self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        if info == "client_addr":
            return self._connection.info.local_address
        if info == "server_addr":
            return self._connection.info.remote_address
        if info == "socket":
            return self._sock
        if info == "is_readable":
            return _is_readable(self._sock)
        return None


class _SyncBackend(httpcore.NetworkBackend):
    def __init__(self, engine: dict[str, Any], via_proxy: bool) -> None:
        self._engine = engine
        self._via_proxy = via_proxy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        started = time.monotonic()
        try:
            conn = connect_by_name(
                host,
                port,
                timeout=timeout,
                source_address=None if local_address is None else (local_address, 0),
                socket_options=cast(Any, socket_options),
                **self._engine,
            )
        except ConnectByNameError as exc:
            raise _connect_error(exc) from exc
        # As httpcore's own backends: requests go out at once, not after Nagle's delay.
        conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        info = _info(
            conn.local_address,
            conn.remote_address,
            conn.attempts,
            conn.elapsed,
            self._via_proxy,
        )
        deadline = None if timeout is None else started + timeout
        return _SyncStream(conn.socket, _Connection(info, deadline))

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


# --------------------------------------------------------------------------- async


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: anyio.abc.ByteStream, connection: _Connection) -> None:
        self._stream = stream
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            with anyio.fail_after(timeout):
                return await self._stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        except TimeoutError as exc:
            raise httpcore.ReadTimeout(exc) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise httpcore.ReadError(exc) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        try:
            with anyio.fail_after(timeout):
                await self._stream.send(buffer)
        except TimeoutError as exc:
            raise httpcore.WriteTimeout(exc) from exc
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError) as exc:
            raise httpcore.WriteError(exc) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        try:
            budget = self._connection.tls_timeout(timeout, anyio.current_time())
            with anyio.fail_after(budget):
                tls = await anyio.streams.tls.TLSStream.wrap(
                    self._stream,
                    ssl_context=ssl_context,
                    hostname=server_hostname,
                    standard_compatible=False,
                )
        except BaseException as exc:
            # Forcefully: also when the handshake was cancelled, the socket is closed
            # before the cancellation goes on.
            await anyio.aclose_forcefully(self._stream)
            if isinstance(exc, TimeoutError):
                raise httpcore.ConnectTimeout(exc) from exc
            if isinstance(exc, anyio.BrokenResourceError | anyio.EndOfStream | OSError):
                raise httpcore.ConnectError(exc) from exc
            raise
        return _AsyncStream(tls, self._connection)

    def get_extra_info(self, info: str) -> Any:
        if info == _CONNECTION_KEY:
            return self._connection
        if info == "ssl_object":
            return self._stream.extra(anyio.streams.tls.TLSAttribute.ssl_object, None)
        if info == "client_addr":
            return self._connection.info.local_address
        if info == "server_addr":
            return self._connection.info.remote_address
        if info == "socket":
            return self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None)
        if info == "is_readable":
            return _is_readable(self._stream.extra(anyio.abc.SocketAttribute.raw_socket, None))
        return None


class _TrioStream(httpcore.AsyncNetworkStream):
    """The async stream on trio, on trio's own streams as in httpcore's trio backend
    (which stock httpx uses there): anyio's add a layer to every read and write."""

    def __init__(self, stream: Any, sock: socket.socket, connection: _Connection) -> None:
        import trio

        self._trio = trio
        self._stream = stream  # a trio.SocketStream, or a trio.SSLStream over one
        self._socket = sock  # the socket under it all, which trio's socket wraps
        self._connection = connection

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        trio = self._trio
        try:
            with trio.fail_after(math.inf if timeout is None else timeout):
                data: bytes = await self._stream.receive_some(max_bytes)
                return data
        except trio.TooSlowError as exc:
            raise httpcore.ReadTimeout(exc) from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise httpcore.ReadError(_reason(exc)) from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        trio = self._trio
        try:
            with trio.fail_after(math.inf if timeout is None else timeout):
                await self._stream.send_all(buffer)
        except trio.TooSlowError as exc:
            raise httpcore.WriteTimeout(exc) from exc
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise httpcore.WriteError(_reason(exc)) from exc

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        trio = self._trio
        try:
            budget = self._connection.tls_timeout(timeout, trio.current_time())
            # https_compatible: no close_notify expected, as anyio's standard_compatible=False.
            tls = trio.SSLStream(
                self._stream, ssl_context, server_hostname=server_hostname, https_compatible=True
            )
            with trio.fail_after(math.inf if budget is None else budget):
                await tls.do_handshake()
        except BaseException as exc:
            # Forcefully: also when the handshake was cancelled, the socket is closed
            # before the cancellation goes on.
            await trio.aclose_forcefully(self._stream)
            if isinstance(exc, trio.TooSlowError):
                raise httpcore.ConnectTimeout(exc) from exc
            if isinstance(exc, trio.BrokenResourceError | OSError):
                raise httpcore.ConnectError(_reason(exc)) from exc
            raise
        return _TrioStream(tls, self._socket, self._connection)

    def get_extra_info(self, info: str) -> Any:
        if info == _CONNECTION_KEY:
            return self._connection
        if info == "ssl_object":
            # trio's SSLStream offers the SSLObject's methods (selected_alpn_protocol,
            # getpeercert, version, ...) itself.
            return self._stream if isinstance(self._stream, self._trio.SSLStream) else None
        if info == "client_addr":
            return self._connection.info.local_address
        if info == "server_addr":
            return self._connection.info.remote_address
        if info == "socket":
            return self._socket
        if info == "is_readable":
            return _is_readable(self._socket)
        return None


def _reason(exc: BaseException) -> BaseException:
    """What to say for ``exc``: trio raises a bare BrokenResourceError from the error
    that broke the stream (a failed certificate check, a reset)."""
    return exc.__cause__ if not str(exc) and exc.__cause__ is not None else exc


def _running_trio() -> Any | None:
    """The trio module when called inside a trio run, else ``None`` (on asyncio, trio
    may be imported, httpcore does when it can, or not installed at all)."""
    trio = sys.modules.get("trio")
    if trio is None:
        return None
    try:  # not trio.lowlevel.in_trio_run(): that is trio 0.29's, and trio>=0.26 is declared
        trio.lowlevel.current_trio_token()
    except RuntimeError:
        return None
    return trio


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, engine: dict[str, Any], via_proxy: bool) -> None:
        self._engine = engine
        self._via_proxy = via_proxy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[_SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        started = anyio.current_time()
        try:
            conn = await aconnect_socket(
                host,
                port,
                timeout=timeout,
                source_address=None if local_address is None else (local_address, 0),
                socket_options=cast(Any, socket_options),
                **self._engine,
            )
        except ConnectByNameError as exc:
            raise _connect_error(exc) from exc
        info = _info(
            conn.local_address,
            conn.remote_address,
            conn.attempts,
            conn.elapsed,
            self._via_proxy,
        )
        deadline = None if timeout is None else started + timeout
        connection = _Connection(info, deadline)
        try:
            trio = _running_trio()
            if trio is not None:
                stream = trio.SocketStream(trio.socket.from_stdlib_socket(conn.socket))
                return _TrioStream(stream, conn.socket, connection)
            return _AsyncStream(await anyio.abc.SocketStream.from_socket(conn.socket), connection)
        except BaseException:
            conn.close()
            raise

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


# --------------------------------------------------------------------------- transports


def _build_pool(
    proxy: httpx.Proxy | None,
    backend: httpcore.NetworkBackend | httpcore.AsyncNetworkBackend,
    settings: dict[str, Any],
    classes: tuple[type[Any], type[Any], type[Any]],
) -> Any:
    """The httpcore pool `httpx.HTTPTransport.__init__` would build, with ``backend``."""
    pool, http_proxy, socks_proxy = classes
    limits: httpx.Limits = settings["limits"]
    common = {
        "ssl_context": settings["ssl_context"],
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": settings["http1"],
        "http2": settings["http2"],
        "retries": settings["retries"],
        "network_backend": backend,
    }
    tcp = {"local_address": settings["local_address"], "socket_options": settings["socket_options"]}
    if proxy is None:
        return pool(**common, **tcp)
    url = httpcore.URL(
        scheme=proxy.url.raw_scheme,
        host=proxy.url.raw_host,
        port=proxy.url.port,
        target=proxy.url.raw_path,
    )
    if proxy.url.scheme in ("http", "https"):
        return http_proxy(
            proxy_url=url,
            proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw,
            proxy_ssl_context=proxy.ssl_context,
            **common,
            **tcp,
        )
    # Proxy() accepts no other schemes than these.
    return socks_proxy(proxy_url=url, proxy_auth=proxy.raw_auth, **common)


def _environment_proxies(trust_env: bool) -> dict[str, str]:
    """The environment's proxies by scheme (``http``, ``https``, ``all``, and ``no``)."""
    if not trust_env:
        return {}
    found = urllib.request.getproxies()
    proxies = {
        scheme: url if "://" in url else f"http://{url}"
        for scheme, url in found.items()
        if scheme in ("http", "https", "all") and url
    }
    if proxies and found.get("no"):
        proxies["no"] = found["no"]
    return proxies


def _environment_route(
    url: httpx.URL, proxies: dict[str, str], routes: dict[str, Any]
) -> Any | None:
    """The proxy transport for ``url`` per the environment, or ``None`` to go direct."""
    scheme = url.scheme if url.scheme in routes else "all"
    route = routes.get(scheme)
    if route is None:
        return None
    if urllib.request.proxy_bypass_environment(url.host, proxies):  # type: ignore[attr-defined]
        return None
    return route


def _attach_info(response: httpx.Response) -> httpx.Response:
    stream = response.extensions.get("network_stream")
    if stream is not None:
        connection = stream.get_extra_info(_CONNECTION_KEY)
        if isinstance(connection, _Connection):
            response.extensions[INFO_KEY] = connection.response_info()
    return response


def _configure(
    transport: ConnectByNameTransport | AsyncConnectByNameTransport,
    arguments: dict[str, Any],
    engine_options: EngineOptions,
) -> None:
    """Set up a transport from its ``__init__`` arguments (``HTTPTransport``'s, and the
    engine's): its pool, and one proxy transport per environment proxy."""
    # Bad options fail here, when the transport is made, not at the first request.
    check_engine_options(engine_options)
    engine: dict[str, Any] = dict(engine_options)
    trust_env, proxy = arguments["trust_env"], arguments["proxy"]
    ssl_context = httpx.create_ssl_context(
        verify=arguments["verify"], cert=arguments["cert"], trust_env=trust_env
    )
    settings = {**arguments, "ssl_context": ssl_context}
    checked = httpx.Proxy(proxy) if isinstance(proxy, str | httpx.URL) else proxy
    classes: tuple[type[Any], type[Any], type[Any]]
    if isinstance(transport, ConnectByNameTransport):
        backend: Any = _SyncBackend(engine, via_proxy=checked is not None)
        classes = (httpcore.ConnectionPool, httpcore.HTTPProxy, httpcore.SOCKSProxy)
    else:
        backend = _AsyncBackend(engine, via_proxy=checked is not None)
        classes = (httpcore.AsyncConnectionPool, httpcore.AsyncHTTPProxy, httpcore.AsyncSOCKSProxy)
    _install_pool(transport, _build_pool(checked, backend, settings, classes))
    transport._proxies = _environment_proxies(trust_env and proxy is None)
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
        socket_options: Iterable[_SocketOption] | None = None,
        **engine_options: Unpack[EngineOptions],
    ) -> None:
        # httpx.HTTPTransport.__init__ is not called: it would build a pool (and an SSL
        # context) only to have it replaced; see _install_pool.
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
            route = _environment_route(request.url, self._proxies, self._routes)
            if route is not None:
                return route.handle_request(request)  # type: ignore[no-any-return]
        try:
            response = super().handle_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, ConnectByNameAddressDeniedError) as exc:
            _restore_cause(exc)
            raise
        return _attach_info(response)

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
            route = _environment_route(request.url, self._proxies, self._routes)
            if route is not None:
                return await route.handle_async_request(request)  # type: ignore[no-any-return]
        try:
            response = await super().handle_async_request(request)
        except (httpx.ConnectError, httpx.ConnectTimeout, ConnectByNameAddressDeniedError) as exc:
            _restore_cause(exc)
            raise
        return _attach_info(response)

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
