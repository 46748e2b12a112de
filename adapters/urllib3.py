"""urllib3 with the connect-by-name engine: drop-in connections, pools and managers.

Every connection these classes open goes through `connectbyname.connect_by_name`: the
host's addresses are raced (RFC 8305), and urllib3's *connect* timeout bounds name
resolution and all attempts together (stock urllib3 spends it once per address). What
is left of it stays on the socket, so the TLS handshake and a proxy's ``CONNECT`` are
bounded as well; the read timeout then applies as usual.

The engine's options (`connectbyname.EngineOptions`: ``attempt_delay``, ``family``,
``resolver``, ``resolution_delay``, ``history``, ``policy``) sit next to every normal
urllib3 argument. ``source_address`` and ``socket_options`` (with urllib3's default
``TCP_NODELAY``) apply to every attempt socket.

Every response carries its connection's `connectbyname.ConnectionInfo`: read it with
`connectbyname.connection_info`. Engine failures are raised as subclasses of urllib3's
own `~urllib3.exceptions.ConnectTimeoutError`, `~urllib3.exceptions.NameResolutionError`
and `~urllib3.exceptions.NewConnectionError`, so ``Retry`` and requests treat them
exactly as stock failures; the engine's error is their ``__cause__``. An address the
``policy`` refuses raises `ConnectByNameAddressDeniedError`, which is deliberately not
a connect error: ``Retry`` does not retry it, since the answer would be the same.

HTTP/2 (``urllib3.http2``) is not supported: while it is injected, opening an HTTPS
connection raises `NotImplementedError` instead of speaking HTTP/1.1 over a connection
that negotiated h2.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import socket
import sys
from collections.abc import Callable
from typing import Any, Final, Unpack

from urllib3 import connection as _connection
from urllib3 import connectionpool as _connectionpool
from urllib3 import exceptions as _exceptions
from urllib3 import poolmanager as _poolmanager
from urllib3.response import HTTPResponse
from urllib3.util import ssl_ as _ssl
from urllib3.util.timeout import Timeout

from connectbyname import (
    AddressDeniedError,
    Attempt,
    ConnectByNameError,
    ConnectionInfo,
    EngineOptions,
    NameResolutionError,
    PolicyDenial,
    TimedOutError,
    connect_by_name,
)
from connectbyname._info import INFO_KEY
from connectbyname._parse import ENGINE_OPTIONS, options_from

__all__ = [
    "ConnectByNameAddressDeniedError",
    "ConnectByNameConnectTimeoutError",
    "ConnectByNameNameResolutionError",
    "ConnectByNameNewConnectionError",
    "HTTPConnection",
    "HTTPConnectionPool",
    "HTTPSConnection",
    "HTTPSConnectionPool",
    "PoolManager",
    "ProxyManager",
    "extract_from_urllib3",
    "inject_into_urllib3",
    "proxy_from_url",
]

# A socket timeout of 0 would make the socket non-blocking: when the connect used up
# (nearly) all of the budget, the handshake still gets this long before it times out.
_MIN_REST = 0.001


# --------------------------------------------------------------------------- errors


class _EngineFailure:
    """What the three error classes share: the engine's record of the attempts."""

    __cause__: BaseException | None

    @property
    def attempts(self) -> tuple[Attempt, ...]:
        """Every attempt the failed connect made (empty if the cause was lost, e.g.
        by pickling)."""
        cause = self.__cause__
        return cause.attempts if isinstance(cause, ConnectByNameError) else ()


class ConnectByNameConnectTimeoutError(_EngineFailure, _exceptions.ConnectTimeoutError):
    """The connect timeout ran out (resolution included) before any address connected;
    the cause is a `connectbyname.TimedOutError`."""


class ConnectByNameNameResolutionError(_EngineFailure, _exceptions.NameResolutionError):
    """The host name could not be resolved; the cause is a
    `connectbyname.NameResolutionError`."""


class ConnectByNameNewConnectionError(_EngineFailure, _exceptions.NewConnectionError):
    """No address could be connected (all refused or unreachable, no descriptors left,
    or an engine option is invalid); the cause is the `connectbyname.ConnectByNameError`."""


# (PolicyDenial declares attempts; _EngineFailure gives it as a read-only property.)
class ConnectByNameAddressDeniedError(  # type: ignore[override]
    _EngineFailure, _exceptions.HTTPError, PolicyDenial
):
    """The address policy refused every address of the host; the cause is a
    `connectbyname.AddressDeniedError`. Not an `OSError` nor a connect error, so
    urllib3 neither retries it nor wraps it in ``MaxRetryError``. A
    `connectbyname.PolicyDenial`, as every client's refusal is."""


def _urllib3_error(error: ConnectByNameError, conn: HTTPConnection) -> Exception:
    """The urllib3 exception to raise (``from error``) for an engine failure: the only
    place engine errors are translated, with stock urllib3's messages."""
    if isinstance(error, AddressDeniedError):
        return ConnectByNameAddressDeniedError(
            f"Connection to {conn.host} refused by the address policy: {error.strerror}"
        )
    if isinstance(error, TimedOutError):
        return ConnectByNameConnectTimeoutError(
            conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
        )
    if isinstance(error, NameResolutionError):
        # The resolver's own gaierror when there is one: the message stock urllib3 gives.
        cause = error.__cause__
        if not isinstance(cause, socket.gaierror):
            cause = socket.gaierror(error.errno, error.strerror)
        return ConnectByNameNameResolutionError(conn.host, conn, cause)
    return ConnectByNameNewConnectionError(
        conn, f"Failed to establish a new connection: {error.strerror}"
    )


# --------------------------------------------------------------------------- connections
#
# urllib3 private API, all of it in this section: the override of `_new_conn` (called
# by HTTPConnection.connect and HTTPSConnection.connect) and the `_dns_host` attribute
# (the host with its trailing dot, for resolution). tests/test_urllib3.py has a test
# that fails loudly if either changes.


class HTTPConnection(_connection.HTTPConnection):
    """urllib3's `~urllib3.connection.HTTPConnection`, connecting through the engine.

    Takes urllib3's arguments plus the engine's options (`connectbyname.EngineOptions`,
    kept in ``engine_options``). ``timeout`` at connect time is the whole budget for
    resolution and attempts.
    """

    def __init__(self, host: str, port: int | None = None, **kwargs: Any) -> None:
        engine_options: dict[str, Any] = {
            name: kwargs.pop(name) for name in ENGINE_OPTIONS if name in kwargs
        }
        super().__init__(host, port, **kwargs)
        self.engine_options: EngineOptions = engine_options  # type: ignore[assignment]
        self._connectbyname_info: ConnectionInfo | None = None

    def _new_conn(self) -> socket.socket:
        timeout = Timeout.resolve_default_timeout(self.timeout)
        try:
            # _dns_host keeps a trailing dot (a fully qualified name for the resolver);
            # self.host, used for Host and SNI, drops it.
            connection = connect_by_name(
                self._dns_host,
                self.port,
                timeout=timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
                **self.engine_options,
            )
        except ConnectByNameError as exc:
            raise _urllib3_error(exc, self) from exc
        try:
            sys.audit("http.client.connect", self, self.host, self.port)
            if timeout is not None:
                # The rest of the budget bounds the TLS handshake and a proxy's CONNECT.
                connection.socket.settimeout(max(timeout - connection.elapsed, _MIN_REST))
        except BaseException:
            connection.close()
            raise
        # With a proxy the socket goes to the proxy, whether it forwards or tunnels.
        self._connectbyname_info = ConnectionInfo.of(connection, via_proxy=self.proxy is not None)
        return connection.socket

    def connect(self) -> None:
        super().connect()
        # Back to what stock urllib3 leaves on a new socket: the request is sent under
        # the connect timeout, and urlopen then switches to the read timeout.
        if self.sock is not None:
            self.sock.settimeout(Timeout.resolve_default_timeout(self.timeout))

    def getresponse(self) -> HTTPResponse:  # type: ignore[override]  # as urllib3's
        info = self._connectbyname_info
        if info is not None and not info.reused:
            # Whatever comes next on this socket comes over a kept-alive connection.
            self._connectbyname_info = dataclasses.replace(info, reused=True)
        # Read info first: http.client closes the connection here on "Connection: close".
        response = super().getresponse()
        if info is not None:
            setattr(response, INFO_KEY, info)
        return response


class HTTPSConnection(HTTPConnection, _connection.HTTPSConnection):
    """urllib3's `~urllib3.connection.HTTPSConnection`, connecting through the engine.

    The certificate is checked against the host *name* (and SNI sends it), never
    against the address that won the race.
    """

    def connect(self) -> None:
        if "h2" in getattr(_ssl, "ALPN_PROTOCOLS", ()):
            raise NotImplementedError(
                "connectbyname speaks HTTP/1.1 only: call urllib3.http2.extract_from_urllib3() "
                "(ALPN would offer h2, which this connection cannot speak)"
            )
        super().connect()


# --------------------------------------------------------------------------- pools


class HTTPConnectionPool(_connectionpool.HTTPConnectionPool):
    """urllib3's `~urllib3.HTTPConnectionPool` with `HTTPConnection`: the engine options
    are keyword arguments next to urllib3's and reach every connection."""

    ConnectionCls = HTTPConnection


class HTTPSConnectionPool(_connectionpool.HTTPSConnectionPool):
    """urllib3's `~urllib3.HTTPSConnectionPool` with `HTTPSConnection`: the engine
    options are keyword arguments next to urllib3's and reach every connection."""

    ConnectionCls = HTTPSConnection


_POOL_CLASSES: Final = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}

# An engine option absent from a request context (urllib3 deletes keys overridden with
# None) uses the connection's default: a key of its own, distinct from None.
_ABSENT: Final = object()


class _ByIdentity:
    """A pool-key stand-in for an unhashable resolver: equal only to itself, and it
    keeps the resolver alive, so its id cannot be reused while the key exists."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _hashable(value: object) -> object:
    try:
        hash(value)
    except TypeError:
        return _ByIdentity(value)
    return value


@functools.cache
def _key_class(base: type[Any]) -> Any:
    """urllib3's pool-key namedtuple with a field per engine option added."""
    fields = (*base._fields, *(f"key_{name}" for name in ENGINE_OPTIONS))
    return collections.namedtuple(base.__name__, fields)


def _engine_pool_key(
    base_key_fn: Callable[[dict[str, Any]], tuple[Any, ...]], request_context: dict[str, Any]
) -> tuple[Any, ...]:
    """urllib3's pool key for the context without the engine options, extended by
    them: urllib3's key function builds a fixed namedtuple and rejects unknown keys."""
    if _ENGINE_NAMES.isdisjoint(request_context):
        # The common case, on every request: no engine option in the context.
        base = base_key_fn(request_context)
        engine: tuple[object, ...] = _ALL_ABSENT
    else:
        context = request_context.copy()
        engine = tuple([context.pop(name, _ABSENT) for name in ENGINE_OPTIONS])
        try:
            hash(engine)
        except TypeError:
            engine = tuple(map(_hashable, engine))
        base = base_key_fn(context)
    key: tuple[Any, ...] = _key_class(type(base))._make((*base, *engine))
    return key


_ENGINE_NAMES: Final = frozenset(ENGINE_OPTIONS)
_ALL_ABSENT: Final = (_ABSENT,) * len(ENGINE_OPTIONS)


def _use_engine(manager: _poolmanager.PoolManager) -> None:
    # Instance attributes replaced, never the module-level dicts urllib3 shares with
    # every other PoolManager in the process.
    manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
    key_fns: dict[str, Any] = {
        scheme: functools.partial(_engine_pool_key, key_fn)
        for scheme, key_fn in manager.key_fn_by_scheme.items()
    }
    manager.key_fn_by_scheme = key_fns


class PoolManager(_poolmanager.PoolManager):
    """urllib3's `~urllib3.PoolManager` whose pools connect through the engine.

    The engine's options (`connectbyname.EngineOptions`) are keyword arguments next to
    urllib3's; they apply to every pool, may also be given per call in ``pool_kwargs``,
    and are part of the pool key. Unknown or invalid ones are refused here, at once.
    """

    def __init__(self, num_pools: int = 10, headers: Any = None, **connection_pool_kw: Any) -> None:
        options_from({k: v for k, v in connection_pool_kw.items() if k in ENGINE_OPTIONS})
        super().__init__(num_pools, headers, **connection_pool_kw)
        _use_engine(self)


class ProxyManager(_poolmanager.ProxyManager):
    """urllib3's `~urllib3.ProxyManager` whose connections to the proxy go through the
    engine; HTTPS targets are tunnelled with ``CONNECT`` as stock. Responses' connection
    info gives the proxy's address, with ``via_proxy`` true."""

    def __init__(  # noqa: PLR0917 (urllib3's positional parameters)
        self,
        proxy_url: str,
        num_pools: int = 10,
        headers: Any = None,
        proxy_headers: Any = None,
        proxy_ssl_context: Any = None,
        use_forwarding_for_https: bool = False,
        proxy_assert_hostname: Any = None,
        proxy_assert_fingerprint: str | None = None,
        **connection_pool_kw: Any,
    ) -> None:
        options_from({k: v for k, v in connection_pool_kw.items() if k in ENGINE_OPTIONS})
        super().__init__(
            proxy_url,
            num_pools,
            headers,
            proxy_headers,
            proxy_ssl_context,
            use_forwarding_for_https,
            proxy_assert_hostname,
            proxy_assert_fingerprint,
            **connection_pool_kw,
        )
        _use_engine(self)


def proxy_from_url(url: str, **kw: Any) -> ProxyManager:
    """Like `urllib3.proxy_from_url`, returning this module's `ProxyManager`."""
    return ProxyManager(proxy_url=url, **kw)


# --------------------------------------------------------------------------- injection

_injected_options: dict[str, Any] = {}


class _InjectedHTTPConnection(HTTPConnection):
    # Stock pools pass no engine options: those of inject_into_urllib3() apply.
    def __init__(self, host: str, port: int | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, **{**_injected_options, **kwargs})


class _InjectedHTTPSConnection(HTTPSConnection):
    def __init__(self, host: str, port: int | None = None, **kwargs: Any) -> None:
        super().__init__(host, port, **{**_injected_options, **kwargs})


_MISSING: Final = object()
# (pool class, what its own __dict__ held) for each patched class while injected.
_saved: list[tuple[type[Any], object]] = []


def inject_into_urllib3(**engine_options: Unpack[EngineOptions]) -> None:
    """Make every urllib3 pool in the process connect through the engine.

    It sets the ``ConnectionCls`` of urllib3's `~urllib3.HTTPConnectionPool` and
    `~urllib3.HTTPSConnectionPool`, so requests and every other library built on
    urllib3 gain the engine (with these options) without code changes. Pool classes
    with a connection class of their own (SOCKS, for one) are left alone. Calling it
    again changes the options; `extract_from_urllib3` undoes it.
    """
    options_from(engine_options)
    _injected_options.clear()
    _injected_options.update(engine_options)
    targets = (
        (_connectionpool.HTTPConnectionPool, _InjectedHTTPConnection),
        (_connectionpool.HTTPSConnectionPool, _InjectedHTTPSConnection),
    )
    if not _saved:
        _saved.extend((pool, vars(pool).get("ConnectionCls", _MISSING)) for pool, _ in targets)
    for pool, connection_class in targets:
        pool.ConnectionCls = connection_class


def extract_from_urllib3() -> None:
    """Undo `inject_into_urllib3`: urllib3's pools get back exactly the connection
    classes they had. Does nothing if not injected."""
    while _saved:
        pool, original = _saved.pop()
        if original is _MISSING:
            del pool.ConnectionCls
        else:
            pool.ConnectionCls = original
    _injected_options.clear()
