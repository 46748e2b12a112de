"""urllib3 with the connect-by-name engine: injection, drop-in pools and managers.

Every connection goes through the engine: the host's addresses are raced (RFC 8305),
and urllib3's *connect* timeout bounds name resolution and all attempts together
(stock urllib3 spends it once per address). What is left of it bounds the TLS
handshake and a proxy's ``CONNECT``; the read timeout then applies as usual.

Two ways in:

- `inject_into_urllib3` gives urllib3's own connection classes the engine, for the
  whole process: every pool, manager and library built on urllib3 (requests,
  botocore, ...) gains it, their connection classes stay urllib3's own (and their
  subclasses get it too, unless they make their connection themselves, as urllib3's
  SOCKS support does). `extract_from_urllib3` undoes it exactly.
- `PoolManager`, `ProxyManager`, `HTTPConnectionPool`, `HTTPSConnectionPool` (and
  `HTTPConnection`, `HTTPSConnection`): drop-ins with the engine's options
  (`connectbyname.EngineOptions`) next to urllib3's arguments, for one part of a
  program only.

What stays stock, on purpose: urllib3's exceptions, exactly (the engine's failure is
the ``__cause__`` of urllib3's ``ConnectTimeoutError``, ``NameResolutionError`` or
``NewConnectionError``, with its ``attempts``), so ``Retry`` and ``except`` clauses
behave as before; a replaced ``urllib3.util.connection.create_connection`` (a program
that makes its connections itself is left to do so), and ``allowed_gai_family`` (and
``HAS_IPV6``), which still choose IPv4 only. An address the engine's ``policy`` refuses
raises `ConnectByNameAddressDeniedError`, deliberately not a connect error: ``Retry``
does not retry it, since the answer would be the same.

Every response carries its connection's `connectbyname.ConnectionInfo`: read it with
`connectbyname.connection_info`. HTTP/2 (``urllib3.http2``, injected): urllib3's own
pools speak it through the engine once `inject_into_urllib3` is called too; a drop-in
pool's `HTTPSConnection` speaks HTTP/1.1 only, and raises `NotImplementedError` rather
than speak it over a connection that negotiated h2.

Events: an engine ``listener`` (given to a drop-in class or to `inject_into_urllib3`)
is also told the TLS handshake of an HTTPS connection (``tls_started`` once the socket
is connected, or the proxy's tunnel is, ``tls_finished`` when the handshake is over),
and its pool's use of each connection: ``connection_acquired`` (a new connection once
connected, a kept-alive one when the pool hands it out) and ``connection_released``
(back to the pool, or closed: by the server's ``Connection: close`` as soon as its
response arrives, or after an error). Without a listener none of this is made.

urllib3's private API is touched in one place, the section "urllib3 private API"
below, and checked when this module is imported.
"""

from __future__ import annotations

import collections
import dataclasses
import difflib
import functools
import http.client
import importlib.metadata
import socket
import ssl
import sys
import time
import types
from collections.abc import Callable
from typing import Any, Final, Unpack

try:
    from urllib3 import connection as _connection
    from urllib3 import connectionpool as _connectionpool
    from urllib3 import exceptions as _exceptions
    from urllib3 import poolmanager as _poolmanager
    from urllib3.response import HTTPResponse
    from urllib3.util import connection as _util_connection
    from urllib3.util import ssl_ as _ssl
    from urllib3.util.retry import Retry
    from urllib3.util.timeout import Timeout
except ModuleNotFoundError as exc:
    from . import missing_client

    missing_client(exc, "urllib3")

from connectbyname import (
    AddressDeniedError,
    Attempt,
    CertificateError,
    ConnectByNameError,
    ConnectionInfo,
    EngineOptions,
    NameResolutionError,
    PolicyDenial,
    TimedOutError,
    TLSError,
)
from connectbyname._errors import handshake_error
from connectbyname._events import (
    OBSERVERS,
    ConnectionAcquired,
    ConnectionReleased,
    EventListener,
    TLSStep,
    tell,
)
from connectbyname._info import INFO_KEY, Connection
from connectbyname._parse import (
    DEFAULT_OPTIONS,
    ENGINE_OPTIONS,
    Options,
    TLSOptions,
    options_from,
)
from connectbyname._sync import connect

__all__ = [
    "ConnectByNameAddressDeniedError",
    "HTTPConnection",
    "HTTPConnectionPool",
    "HTTPSConnection",
    "HTTPSConnectionPool",
    "PoolKeywords",
    "PoolManager",
    "ProxyManager",
    "extract_from_urllib3",
    "inject_into_urllib3",
    "proxy_from_url",
]

#: The urllib3 releases this adapter was tested with (see the README's version table).
TESTED = "urllib3 2.2.0 to 2.8.0"

# A socket timeout of 0 would make the socket non-blocking: when the connect used up
# (nearly) all of the budget, the handshake still gets this long before it times out.
_MIN_REST = 0.001


class ConnectByNameAddressDeniedError(PolicyDenial, _exceptions.HTTPError):
    """The address policy refused every address of the host (or the name or port);
    the cause is a `connectbyname.AddressDeniedError`. Not an `OSError` nor a connect
    error, so urllib3 neither retries it nor wraps it in ``MaxRetryError``."""

    @property
    def attempts(self) -> tuple[Attempt, ...]:  # type: ignore[override]
        """The attempts of the refused call (empty if the cause was lost, e.g. by
        pickling)."""
        cause = self.__cause__
        return cause.attempts if isinstance(cause, ConnectByNameError) else ()


def _urllib3_error(error: ConnectByNameError, conn: _connection.HTTPConnection) -> Exception:
    """The urllib3 exception to raise (``from error``) for an engine failure: the only
    place engine errors are translated, to stock urllib3's classes and messages."""
    if isinstance(error, AddressDeniedError):
        return ConnectByNameAddressDeniedError(
            f"Connection to {conn.host} refused by the address policy: {error.strerror}"
        )
    if isinstance(error, TimedOutError):
        return _exceptions.ConnectTimeoutError(
            conn, f"Connection to {conn.host} timed out. (connect timeout={conn.timeout})"
        )
    if isinstance(error, NameResolutionError):
        # The resolver's own gaierror when there is one: the message stock urllib3 gives.
        cause = error.__cause__
        if not isinstance(cause, socket.gaierror):
            cause = socket.gaierror(error.errno, error.strerror)
        return _exceptions.NameResolutionError(conn.host, conn, cause)
    return _exceptions.NewConnectionError(
        conn, f"Failed to establish a new connection: {error.strerror}"
    )


# --------------------------------------------------------------------------- urllib3 private API
#
# All of urllib3's private API this adapter touches: HTTPConnection._new_conn (called by
# HTTPConnection.connect and HTTPSConnection.connect to make the socket, overridden by
# SOCKSConnection) and the _dns_host attribute (the host with its trailing dot, for
# resolution); for the events of a listener only, HTTPConnectionPool._get_conn and
# _put_conn (where urlopen takes a connection from its pool and puts it back, the
# latter also from HTTPResponse.release_conn), and http.client's _tunnel_host (the
# origin behind a CONNECT tunnel, the TLS server name). For TLS in the race, the chain
# HTTPSConnection.connect -> _ssl_wrap_socket_and_match_hostname -> ssl_wrap_socket
# (public) -> util.ssl_._ssl_wrap_socket_impl, which is replaced when this module is
# imported (`_wrap_socket_impl`: it makes our _PendingTLS connections and hands every
# other socket to urllib3's own, unchanged). _check_private_api() checks them all when
# this module is imported.

_STOCK_NEW_CONN: Final = _connection.HTTPConnection._new_conn
_STOCK_HTTPS_CLASS: Final = _connection.HTTPSConnection
_STOCK_CONNECT: Final = (_connection.HTTPConnection.connect, _connection.HTTPSConnection.connect)
_STOCK_GETRESPONSE: Final = _connection.HTTPConnection.getresponse
_STOCK_CLOSE: Final = _connection.HTTPConnection.close
_STOCK_GET_CONN: Final = _connectionpool.HTTPConnectionPool._get_conn
_STOCK_PUT_CONN: Final = _connectionpool.HTTPConnectionPool._put_conn
_STOCK_WRAP_IMPL: Final = _ssl._ssl_wrap_socket_impl

#: (function, the names its code must use), for _check_private_api.
_PRIVATE_USES: Final = (
    (_STOCK_NEW_CONN, ("create_connection", "_dns_host")),
    (_connectionpool.HTTPConnectionPool.urlopen, ("_get_conn", "_put_conn")),
    (HTTPResponse.release_conn, ("_put_conn",)),
    (http.client.HTTPConnection.set_tunnel, ("_tunnel_host",)),
    (_STOCK_CONNECT[1], ("_new_conn", "_ssl_wrap_socket_and_match_hostname")),
    (_connection._ssl_wrap_socket_and_match_hostname, ("ssl_wrap_socket",)),
    (_ssl.ssl_wrap_socket, ("_ssl_wrap_socket_impl",)),
)


def _check_private_api() -> None:
    for function, names in _PRIVATE_USES:
        missing = [name for name in names if name not in function.__code__.co_names]
        if missing:
            version = importlib.metadata.version("urllib3")
            raise ImportError(
                f"connectbyname.adapters.urllib3 works with {TESTED}; with urllib3 "
                f"{version}, {function.__qualname__} no longer uses {', '.join(missing)}, "
                "which this adapter relies on. Install a tested urllib3, or a newer "
                "connectbyname."
            )


_check_private_api()


def _stock_create_connection() -> bool:
    """Whether ``urllib3.util.connection.create_connection`` is urllib3's own: a
    program (or test) that replaced it makes its connections itself."""
    create = _util_connection.create_connection
    return (
        getattr(create, "__module__", None) == "urllib3.util.connection"
        and getattr(create, "__qualname__", None) == "create_connection"
    )


def _new_conn(self: _connection.HTTPConnection) -> socket.socket:
    """``HTTPConnection._new_conn`` on the engine: the options are the connection's own
    (drop-in classes) or those of `inject_into_urllib3`.

    For HTTPS straight to the server (no proxy), inside urllib3's own
    ``HTTPSConnection.connect``, it connects nothing yet: it returns a `_PendingTLS`,
    and the connection is made when urllib3 wraps it in TLS, with urllib3's context."""
    if not _stock_create_connection():
        return _STOCK_NEW_CONN(self)
    options: Options = getattr(self, "_connectbyname_options", None) or _injected[0]
    if _util_connection.allowed_gai_family() == socket.AF_INET and options.family == 0:
        # urllib3's own switch to IPv4 only (HAS_IPV6, or a patched allowed_gai_family).
        options = dataclasses.replace(options, family=socket.AF_INET)
    if (
        getattr(self, "_connectbyname_tls_next", False)
        and self.proxy is None
        # PRIVATE API of http.client (see above): a tunnel set without urllib3's proxy.
        and getattr(self, "_tunnel_host", None) is None
        # A subclass's own _new_conn (calling this one) wants the socket itself.
        and getattr(type(self), "_new_conn", None) is _new_conn
    ):
        return _PendingTLS(self, options)  # type: ignore[return-value]
    return _connect_plain(self, options)


def _connect_plain(self: Any, options: Options) -> socket.socket:
    """Connect over TCP: the socket urllib3's ``_new_conn`` returns."""
    timeout = Timeout.resolve_default_timeout(self.timeout)
    # For the TLS events: when the call began, on the engine's clock (time.monotonic).
    began = (
        time.monotonic()
        if isinstance(self, _connection.HTTPSConnection)
        and (options.listener is not None or OBSERVERS)
        else None
    )
    made: Connection | None = None
    try:
        # _dns_host keeps a trailing dot (a fully qualified name for the resolver);
        # self.host, used for Host and SNI, drops it.
        made = connect(
            self._dns_host,
            self.port,
            options,
            timeout=timeout,
            source_address=self.source_address,
            socket_options=self.socket_options,
            # HTTPS to the server itself (not a proxy's tunnel): its HTTPS record too.
            https=isinstance(self, _STOCK_HTTPS_CLASS) and self.proxy is None,
        )
        _connected(self, made)
        if began is not None:
            # The handshake follows (after a proxy's CONNECT, when tunnelling).
            self._connectbyname_tls = TLSStep.begin(
                options.listener,
                _server_name(self),
                made.remote_address,
                made.clock() - began,
                made.clock,
            )
    except ConnectByNameError as exc:
        raise _urllib3_error(exc, self) from exc
    except BaseException:
        # Until urllib3 holds the socket (returned), it is this call's to close: an
        # error here, or an interruption (Ctrl-C) at any point after the connect.
        if made is not None:
            made.close()
        raise
    return made.socket


def _connected(conn: Any, made: Connection) -> None:
    """What urllib3's ``_new_conn`` does once connected, and the connection's info (the
    caller closes ``made`` if this raises)."""
    sys.audit("http.client.connect", conn, conn.host, conn.port)
    # The rest of the budget bounds the TLS handshake and a proxy's CONNECT.
    left = made.time_left()
    made.socket.settimeout(None if left is None else max(left, _MIN_REST))
    # With a proxy the socket goes to the proxy, whether it forwards or tunnels.
    conn._connectbyname_info = ConnectionInfo.of(made, via_proxy=conn.proxy is not None)


class _PendingTLS:
    """What `_new_conn` returns for HTTPS straight to the server: nothing connected yet.

    urllib3's ``HTTPSConnection.connect`` builds its TLS context (certificates, client
    certificate, versions, ALPN) and hands the socket to ``ssl_wrap_socket``, which ends
    in ``_ssl_wrap_socket_impl``: there (`_wrap_socket_impl`) the engine makes the
    connection, every attempt running its own handshake with that context, the first to
    complete winning (Happy Eyeballs v3). urllib3 then checks ``assert_fingerprint`` or
    ``assert_hostname`` on the winner as it would on its own socket: a failure there
    ends the call, as a verification failure in the race does.

    Rejected: building urllib3's context again here (its rules change between
    releases: every ``ssl_`` option would be a copy to keep true), and connecting over
    TCP first (the race would end before TLS, with no way past an address that takes
    TCP and never answers TLS)."""

    __slots__ = ("_conn", "_options")

    def __init__(self, conn: Any, options: Options) -> None:
        self._conn = conn
        self._options = options

    def handshake(self, context: ssl.SSLContext, server_hostname: str | None) -> ssl.SSLSocket:
        """Connect, racing the handshakes; the winner, as urllib3's wrap would return."""
        conn = self._conn
        made: Connection | None = None
        try:
            made = connect(
                conn._dns_host,
                conn.port,
                self._options,
                timeout=Timeout.resolve_default_timeout(conn.timeout),
                source_address=conn.source_address,
                socket_options=conn.socket_options,
                https=True,
                tls=TLSOptions(context, server_hostname),
            )
            _connected(conn, made)
        except (CertificateError, TLSError) as exc:
            # What urllib3's own handshake would have raised (and reports as its SSLError):
            # the certificate's verification error, or the handshake's.
            raise (handshake_error(exc) or ssl.SSLError(exc.errno, exc.strerror)) from exc
        except TimedOutError as exc:
            if any(a.tcp is not None for a in exc.attempts):
                # The time ran out in a handshake: urllib3 reports its own handshake's
                # timeout as a read timeout (ReadTimeoutError), from the socket's.
                raise TimeoutError(exc.errno, exc.strerror) from exc
            raise _urllib3_error(exc, conn) from exc
        except ConnectByNameError as exc:
            raise _urllib3_error(exc, conn) from exc
        except BaseException:
            if made is not None:  # as in _connect_plain
                made.close()
            raise
        assert isinstance(made.socket, ssl.SSLSocket)
        return made.socket

    def connect_plain(self) -> socket.socket:
        """Connect over TCP only, as `_new_conn` does for plain HTTP."""
        sock = _connect_plain(self._conn, self._options)
        self._conn.sock = sock  # urllib3 closes its connection's socket on an error
        return sock

    def close(self) -> None:
        """Nothing to close: urllib3 closes what it was given on an error."""

    def settimeout(self, timeout: float | None) -> None:
        """Nothing to set: the engine applies the connect budget."""


def _wrap_socket_impl(
    sock: Any, ssl_context: ssl.SSLContext, tls_in_tls: bool, server_hostname: str | None = None
) -> Any:
    """urllib3's ``_ssl_wrap_socket_impl``, which makes our `_PendingTLS` connections."""
    if isinstance(sock, _PendingTLS):
        if isinstance(ssl_context, ssl.SSLContext):
            return sock.handshake(ssl_context, server_hostname)
        # Another TLS library's context (urllib3.contrib.pyopenssl) wraps only a
        # connected socket, itself: TCP is raced, and the handshake is its own.
        sock = sock.connect_plain()
    return _STOCK_WRAP_IMPL(sock, ssl_context, tls_in_tls, server_hostname)


# PRIVATE API of urllib3 (see above): for drop-in classes too, so replaced for good.
_ssl._ssl_wrap_socket_impl = _wrap_socket_impl


def _server_name(conn: Any) -> str:
    """The name the TLS handshake sends and checks, as urllib3 works it out."""
    name: str | None = conn.server_hostname
    if name is None:
        # PRIVATE API of http.client (see above): the origin behind a CONNECT tunnel.
        # (urllib3's proxy_is_tunneling reads the same, but only from 2.3 on.)
        name = str(getattr(conn, "_tunnel_host", None) or conn.host)
    return name.rstrip(".")


def _listener_of(conn: Any) -> EventListener | None:
    """The listener of a connection's engine options (its own, or the injected)."""
    options: Options = getattr(conn, "_connectbyname_options", None) or _injected[0]
    return options.listener


def _acquired(conn: Any, listener: EventListener, info: ConnectionInfo, reused: bool) -> None:
    # Held: the info told, for the release (getresponse marks the connection's own
    # info reused, for the next request, before this one is over).
    conn._connectbyname_held = info
    tell(listener, "connection_acquired", ConnectionAcquired(info, reused))


def _released(conn: Any, kept: bool) -> None:
    """Tell a held connection's listener that the request is done with it."""
    info: ConnectionInfo = conn._connectbyname_held
    conn._connectbyname_held = None
    listener = _listener_of(conn)
    if listener is not None:
        tell(listener, "connection_released", ConnectionReleased(info, kept))


def _connect_then_reset(stock: Callable[[Any], None], *, tls: bool) -> Callable[[Any], None]:
    """``connect`` as urllib3's, then the socket's timeout back to what stock urllib3
    leaves on a new socket: the request is sent under the connect timeout, and urlopen
    then switches to the read timeout.

    With ``tls``, for the drop-in `HTTPSConnection` only: while ``urllib3.http2`` is
    injected, urllib3's own pools use its HTTP/2 connection class (which injection
    gives the engine like any other), but a drop-in pool's connection speaks HTTP/1.1
    and would get h2 from ALPN: it refuses, at once, instead."""

    @functools.wraps(stock)
    def connect_and_reset(self: Any) -> None:
        if (
            tls
            and isinstance(self, HTTPSConnection)
            and "h2" in getattr(_ssl, "ALPN_PROTOCOLS", ())
        ):
            raise NotImplementedError(
                "connectbyname's drop-in HTTPSConnection speaks HTTP/1.1 only: with "
                "urllib3.http2 injected, use inject_into_urllib3() (urllib3's own pools "
                "then speak HTTP/2 through the engine), or urllib3.http2.extract_from_urllib3()"
            )
        # Only inside urllib3's own HTTPSConnection.connect does the TLS wrap follow
        # _new_conn at once (a subclass's connect may use the socket otherwise).
        self._connectbyname_tls_next = tls
        try:
            stock(self)
        except BaseException as exc:
            if tls:
                _tls_finished(self, exc)
            raise
        finally:
            self._connectbyname_tls_next = False
        if tls:
            _tls_finished(self, None)
        info = getattr(self, "_connectbyname_info", None)
        if tls and info is not None and _injected_now[0]:
            _give_info(self)
        if tls and info is not None and info.tls_version is None and self.sock is not None:
            # A handshake made after the connect (a proxy's tunnel): its TLS, too.
            info = self._connectbyname_info = info.with_tls(self.sock)
        if self.sock is not None and info is not None:
            self.sock.settimeout(Timeout.resolve_default_timeout(self.timeout))
            listener = _listener_of(self)
            if listener is not None:
                _acquired(self, listener, info, reused=False)

    return connect_and_reset


def _tls_finished(conn: Any, error: BaseException | None) -> None:
    """Tell the end of the handshake that `_new_conn` told the start of, if it did."""
    step: TLSStep | None = getattr(conn, "_connectbyname_tls", None)
    if step is None:
        return
    conn._connectbyname_tls = None
    if error is not None:
        step.failed(error)
    else:
        sock = conn.sock
        step.finished(sock.version(), sock.selected_alpn_protocol())


def _close(self: Any) -> None:
    """``close`` as urllib3's; a connection in a request's hands is released, closed."""
    try:
        _STOCK_CLOSE(self)
    finally:
        if getattr(self, "_connectbyname_held", None) is not None:
            _released(self, kept=False)


def _get_conn(self: Any, timeout: float | None = None) -> Any:
    """``HTTPConnectionPool._get_conn`` as urllib3's, telling the listener of a
    kept-alive connection that it is acquired (a new one is, once connected)."""
    conn: Any = _STOCK_GET_CONN(self, timeout)
    info = _info_now(conn)
    if conn.sock is not None and info is not None:
        listener = _listener_of(conn)
        if listener is not None:
            _acquired(conn, listener, info, reused=True)
    return conn


def _put_conn(self: Any, conn: Any) -> None:
    """``HTTPConnectionPool._put_conn`` as urllib3's, telling the listener first (a
    connection back in the pool may be handed out at once, in another thread)."""
    if conn is not None and getattr(conn, "_connectbyname_held", None) is not None:
        # Kept unless closed already or the pool will close it (closed or full).
        pool = self.pool
        _released(conn, kept=conn.sock is not None and pool is not None and not pool.full())
    _STOCK_PUT_CONN(self, conn)


def _info_now(conn: Any) -> ConnectionInfo | None:
    """The connection's info for what it carries now: ``reused`` once a response came
    over it. That one is made only then: most connections carry one response
    (``Connection: close``), and a frozen dataclass's copy is not cheap."""
    info: ConnectionInfo | None = getattr(conn, "_connectbyname_info", None)
    if info is not None and not info.reused:
        answered: object = getattr(conn, "_connectbyname_answered", None)
        if answered is info:
            info = dataclasses.replace(info, reused=True)
            conn._connectbyname_info = info
    return info


def _with_info(stock: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A ``getresponse`` as ``stock``, with the connection's info on the response."""

    @functools.wraps(stock)
    def getresponse(self: Any) -> Any:
        info = _info_now(self)
        if info is not None and not info.reused:
            # Whatever comes next on this socket comes over a kept-alive connection.
            self._connectbyname_answered = info
        # Read info first: http.client closes the connection here on "Connection: close".
        response = stock(self)
        if info is not None:
            setattr(response, INFO_KEY, info)
        return response

    return getresponse


_getresponse: Final = _with_info(_STOCK_GETRESPONSE)

# urllib3.http2's connection class (imported only by urllib3.http2.inject_into_urllib3,
# possibly after ours) has a getresponse of its own: given the info too, when its first
# connection is made. (class, urllib3's method, ours), for extract_from_urllib3.
_late_patches: list[tuple[type[Any], Callable[..., Any], Callable[..., Any]]] = []


def _give_info(conn: Any) -> None:
    for cls in type(conn).__mro__:
        # urllib3.http2 is a module up to 2.2, a package with .connection from 2.3.
        if cls.__module__.startswith("urllib3.http2") and "getresponse" in vars(cls):
            stock = vars(cls)["getresponse"]
            if not any(ours is stock for _, _, ours in _late_patches):
                ours = _with_info(stock)
                cls.getresponse = ours  # type: ignore[attr-defined]
                _late_patches.append((cls, stock, ours))
            return


_HTTP_CONNECT: Final = _connect_then_reset(_STOCK_CONNECT[0], tls=False)
_HTTPS_CONNECT: Final = _connect_then_reset(_STOCK_CONNECT[1], tls=True)


# --------------------------------------------------------------------------- injection

# The options of inject_into_urllib3(), in a list so that _new_conn reads them at call
# time; DEFAULT_OPTIONS while not injected (only drop-in classes then reach _new_conn).
_injected: list[Options] = [DEFAULT_OPTIONS]
_injected_now: list[bool] = [False]
# (class, method name, urllib3's own method, ours) for every method injection replaces.
_PATCHES: Final = (
    (_connection.HTTPConnection, "_new_conn", _STOCK_NEW_CONN, _new_conn),
    (_connection.HTTPConnection, "connect", _STOCK_CONNECT[0], _HTTP_CONNECT),
    (_connection.HTTPSConnection, "connect", _STOCK_CONNECT[1], _HTTPS_CONNECT),
    (_connection.HTTPConnection, "getresponse", _STOCK_GETRESPONSE, _getresponse),
)
# The same, for the pool events: only while the injected options have a listener.
_EVENT_PATCHES: Final[tuple[tuple[type[Any], str, Callable[..., Any], Callable[..., Any]], ...]] = (
    (_connection.HTTPConnection, "close", _STOCK_CLOSE, _close),
    (_connectionpool.HTTPConnectionPool, "_get_conn", _STOCK_GET_CONN, _get_conn),
    (_connectionpool.HTTPConnectionPool, "_put_conn", _STOCK_PUT_CONN, _put_conn),
)


def inject_into_urllib3(**engine_options: Unpack[EngineOptions]) -> None:
    """Give urllib3's own ``HTTPConnection`` and ``HTTPSConnection`` the engine, with
    these options, for every pool in the process.

    Every library built on urllib3 (requests, botocore, ...) gains it without code
    changes, and so do subclasses of urllib3's connection classes, unless they make
    their socket themselves (urllib3's SOCKS support does, and keeps working as
    before). Calling it again changes the options; `extract_from_urllib3` undoes it.
    """
    _injected[0] = options = options_from(engine_options)
    _injected_now[0] = True
    for cls, name, _, ours in _PATCHES:
        setattr(cls, name, ours)
    # A listener's pool events need urllib3's pools and close() too; without one they
    # stay urllib3's own, at no cost.
    for cls, name, stock, ours in _EVENT_PATCHES:
        setattr(cls, name, ours if options.listener is not None else stock)


def extract_from_urllib3() -> None:
    """Undo `inject_into_urllib3`: urllib3's connection and pool classes get back
    exactly their own methods. Does nothing if not injected."""
    for cls, name, stock, ours in (*_PATCHES, *_EVENT_PATCHES):
        if vars(cls).get(name) is ours:
            setattr(cls, name, stock)
    for cls, stock, ours in _late_patches:
        if vars(cls).get("getresponse") is ours:
            cls.getresponse = stock
    _late_patches.clear()
    _injected_now[0] = False
    _injected[0] = DEFAULT_OPTIONS


# --------------------------------------------------------------------------- drop-ins


class HTTPConnection(_connection.HTTPConnection):
    """urllib3's `~urllib3.connection.HTTPConnection`, connecting through the engine.

    Takes urllib3's arguments plus the engine's options (`connectbyname.EngineOptions`);
    ``timeout`` at connect time is the whole budget for resolution and attempts.
    """

    def __init__(self, host: str, port: int | None = None, **kwargs: Any) -> None:
        options = kwargs.pop("connectbyname_options", None)
        engine = {name: kwargs.pop(name) for name in ENGINE_OPTIONS if name in kwargs}
        super().__init__(host, port, **kwargs)
        if engine:
            options = options_from({**_as_dict(options), **engine})
        self._connectbyname_options: Options = options or DEFAULT_OPTIONS
        self._connectbyname_info: ConnectionInfo | None = None

    _new_conn = _new_conn
    connect = _HTTP_CONNECT
    getresponse = _getresponse
    close = _close


class HTTPSConnection(HTTPConnection, _connection.HTTPSConnection):
    """urllib3's `~urllib3.connection.HTTPSConnection`, connecting through the engine.

    The certificate is checked against the host *name* (and SNI sends it), never
    against the address that won the race.
    """

    connect = _HTTPS_CONNECT


def _as_dict(options: Options | None) -> dict[str, Any]:
    if options is None:
        return {}
    return {name: getattr(options, name) for name in ENGINE_OPTIONS}


def _tell_pool_events(pool: _connectionpool.HTTPConnectionPool) -> None:
    """Give a drop-in pool whose connections have a listener the methods that tell it
    of their use; a pool without one keeps urllib3's, at no cost per request."""
    given = pool.conn_kw.get(_OPTIONS_KEY)
    listener = pool.conn_kw.get("listener", getattr(given, "listener", None))
    if listener is not None:
        # Bound to this pool only (urllib3's methods stay on the class).
        pool._get_conn = types.MethodType(_get_conn, pool)  # type: ignore[method-assign]
        pool._put_conn = types.MethodType(_put_conn, pool)  # type: ignore[method-assign]


class HTTPConnectionPool(_connectionpool.HTTPConnectionPool):
    """urllib3's `~urllib3.HTTPConnectionPool` with `HTTPConnection`: the engine options
    are keyword arguments next to urllib3's and reach every connection."""

    ConnectionCls = HTTPConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tell_pool_events(self)


class HTTPSConnectionPool(_connectionpool.HTTPSConnectionPool):
    """urllib3's `~urllib3.HTTPSConnectionPool` with `HTTPSConnection`: the engine
    options are keyword arguments next to urllib3's and reach every connection."""

    ConnectionCls = HTTPSConnection

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        _tell_pool_events(self)


_POOL_CLASSES: Final = {"http": HTTPConnectionPool, "https": HTTPSConnectionPool}
_OPTIONS_KEY: Final = "connectbyname_options"


@functools.cache
def _key_class(base: type[Any]) -> Any:
    """urllib3's pool-key namedtuple with a field for the engine's options added."""
    return collections.namedtuple(base.__name__, (*base._fields, f"key_{_OPTIONS_KEY}"))


class _ByIdentity:
    """A pool-key stand-in for options that cannot be hashed (an unhashable resolver):
    equal only to itself, and it keeps them alive, so their id cannot be reused while
    the key exists."""

    __slots__ = ("obj",)

    def __init__(self, obj: object) -> None:
        self.obj = obj

    def __eq__(self, other: object) -> bool:
        return isinstance(other, _ByIdentity) and other.obj is self.obj

    def __hash__(self) -> int:
        return id(self.obj)


def _engine_pool_key(
    base_key_fn: Callable[[dict[str, Any]], tuple[Any, ...]], request_context: dict[str, Any]
) -> tuple[Any, ...]:
    """urllib3's pool key for the context without the engine options, extended by them:
    urllib3's key function builds a fixed namedtuple and rejects unknown keys."""
    options = request_context.get(_OPTIONS_KEY)
    if _ENGINE_NAMES.isdisjoint(request_context):
        # The common case, on every request: no engine option of the request's own.
        context = request_context
        if options is not None:
            context = request_context.copy()
            del context[_OPTIONS_KEY]
    else:
        context = request_context.copy()
        engine = {name: context.pop(name) for name in ENGINE_OPTIONS if name in context}
        options = options_from({**_as_dict(context.pop(_OPTIONS_KEY, None)), **engine})
        # The request's options become the pool's (urllib3 passes the context on).
        for name in ENGINE_OPTIONS:
            request_context.pop(name, None)
        request_context[_OPTIONS_KEY] = options
    base = base_key_fn(context)
    try:
        hash(options)
    except TypeError:
        options = _ByIdentity(options)
    key: tuple[Any, ...] = _key_class(type(base))._make((*base, options))
    return key


_ENGINE_NAMES: Final = frozenset(ENGINE_OPTIONS)
#: What urllib3's pools take as keyword arguments (its pool key's fields).
_URLLIB3_POOL_ARGUMENTS: Final = frozenset(
    name.removeprefix("key_") for name in _poolmanager.PoolKey._fields
)


def _checked_pool_arguments(connection_pool_kw: dict[str, Any]) -> None:
    """Refuse, when the manager is built, a keyword that neither urllib3's pools nor the
    engine take (stock urllib3 accepts it and fails at the first request)."""
    for name in connection_pool_kw:
        if name in _URLLIB3_POOL_ARGUMENTS or name in _ENGINE_NAMES or name == _OPTIONS_KEY:
            continue
        close = difflib.get_close_matches(name, (*_URLLIB3_POOL_ARGUMENTS, *ENGINE_OPTIONS), 1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise TypeError(f"unexpected keyword argument {name!r}{hint}")


def _use_engine(manager: _poolmanager.PoolManager, engine_options: dict[str, Any]) -> None:
    _checked_pool_arguments(manager.connection_pool_kw)
    # Options checked already (an adapter's, passed as connectbyname_options) are kept.
    given: Options | None = manager.connection_pool_kw.get(_OPTIONS_KEY)
    if engine_options or given is None:
        given = options_from({**_as_dict(given), **engine_options})
    manager.connection_pool_kw[_OPTIONS_KEY] = given
    # Instance attributes replaced, never the module-level dicts urllib3 shares with
    # every other PoolManager in the process.
    manager.pool_classes_by_scheme = dict(_POOL_CLASSES)
    key_fns: dict[str, Any] = {
        scheme: functools.partial(_engine_pool_key, key_fn)
        for scheme, key_fn in manager.key_fn_by_scheme.items()
    }
    manager.key_fn_by_scheme = key_fns


class PoolKeywords(EngineOptions, total=False):
    """What `PoolManager` takes as keywords: the engine's options and urllib3's pool
    keywords (the fields of ``urllib3.poolmanager.PoolKey``), typed, so that a type
    checker catches ``attempt_delay="x"`` as it does for the other adapters."""

    timeout: Timeout | float | int | None
    retries: Retry | bool | int | None
    block: bool | None
    maxsize: int | None
    source_address: tuple[str, int] | None
    socket_options: Any
    key_file: str | None
    key_password: str | None
    cert_file: str | None
    cert_reqs: int | str | None
    ca_certs: str | None
    ca_cert_data: str | bytes | None
    ca_cert_dir: str | None
    ssl_version: int | str | None
    ssl_minimum_version: ssl.TLSVersion | None
    ssl_maximum_version: ssl.TLSVersion | None
    ssl_context: ssl.SSLContext | None
    assert_hostname: bool | str | None
    assert_fingerprint: str | None
    server_hostname: str | None
    blocksize: int | None


class PoolManager(_poolmanager.PoolManager):
    """urllib3's `~urllib3.PoolManager` whose pools connect through the engine.

    The engine's options (`connectbyname.EngineOptions`) are keyword arguments next to
    urllib3's; they apply to every pool, may also be given per call in ``pool_kwargs``,
    and are part of the pool key. Unknown keywords and invalid options are refused
    here, at once.
    """

    def __init__(
        self,
        num_pools: int = 10,
        headers: Any = None,
        **connection_pool_kw: Any,
    ) -> None:
        engine = {
            name: connection_pool_kw.pop(name)
            for name in ENGINE_OPTIONS
            if name in connection_pool_kw
        }
        super().__init__(num_pools, headers, **connection_pool_kw)
        _use_engine(self, engine)


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
        engine = {
            name: connection_pool_kw.pop(name)
            for name in ENGINE_OPTIONS
            if name in connection_pool_kw
        }
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
        _use_engine(self, engine)


def proxy_from_url(url: str, **kw: Any) -> ProxyManager:
    """Like `urllib3.proxy_from_url`, returning this module's `ProxyManager`."""
    return ProxyManager(proxy_url=url, **kw)
