"""httpcore network backends on the connect-by-name engine, and their streams.

httpcore asks its network backend for a stream (``connect_tcp``) and then reads,
writes, upgrades it to TLS (``start_tls``) and asks it things (``get_extra_info``).
The backends here make every connection with the engine; the streams carry it. One
stream class per kind of I/O (a blocking socket; an event loop's stream, anyio's on
asyncio and trio's own on trio, as stock httpx uses there), and one table
(`translate`) turns what the I/O raises into httpcore's errors, as httpcore's own
backends do with ``map_exceptions``.
"""

from __future__ import annotations

import contextvars
import dataclasses
import itertools
import math
import select
import socket
import ssl
import sys
import time
from collections.abc import Iterable
from typing import Any, NamedTuple

try:
    import anyio
    import anyio.abc
    import anyio.lowlevel
    import anyio.streams.tls
    import httpcore
    import httpx
except ModuleNotFoundError as exc:
    from . import missing_client

    missing_client(exc, "httpx")

from connectbyname import (
    AddressDeniedError,
    Attempt,
    ConnectByNameError,
    ConnectionInfo,
    PolicyDenial,
    TimedOutError,
)
from connectbyname._async import aconnect
from connectbyname._errors import handshake_error
from connectbyname._events import OBSERVERS, EventListener, TLSStep
from connectbyname._info import Connection
from connectbyname._parse import Options, TLSOptions
from connectbyname._sync import connect

# With the adapter, not at the first TLS connection: it must know the ssl module the
# adapter knows (a program may import ssl anew later, as urllib3's own tests do).
from connectbyname._tlsstream import TLSSocketStream

# The get_extra_info() key under which our streams hand out their _Made. Asked through
# get_extra_info, it also reaches through httpcore's wrappers (the stream of a CONNECT
# or an Upgrade response delegates get_extra_info to ours).
CONNECTION_KEY = "connectbyname_connection"

# httpcore's spelling of a socket option.
SocketOption = (
    tuple[int, int, int] | tuple[int, int, bytes | bytearray] | tuple[int, int, None, int]
)

_ENGINE_ERROR = "_connectbyname_error"


class ConnectByNameAddressDeniedError(PolicyDenial, httpx.TransportError):
    """The engine's address policy refused every address of the host (or the name or
    port); ``__cause__`` is the `connectbyname.AddressDeniedError`, whose ``attempts``
    this error offers too. Not a connect error: ``retries=`` does not retry it, since
    the same name would be refused again. httpcore and httpx let it through as it is."""

    @property
    def attempts(self) -> tuple[Attempt, ...]:  # type: ignore[override]
        cause = self.__cause__
        return cause.attempts if isinstance(cause, ConnectByNameError) else ()


# --------------------------------------------------------------------------- errors


class _Operation(NamedTuple):
    """httpcore's errors for one kind of operation: on a timeout, on anything else."""

    timeout: type[Exception]
    failure: type[Exception]


READ = _Operation(httpcore.ReadTimeout, httpcore.ReadError)
WRITE = _Operation(httpcore.WriteTimeout, httpcore.WriteError)
CONNECT = _Operation(httpcore.ConnectTimeout, httpcore.ConnectError)


class _Raises(NamedTuple):
    """What an I/O library raises: on a timeout, and on a broken connection."""

    timeouts: tuple[type[BaseException], ...]
    failures: tuple[type[BaseException], ...]


SOCKET_ERRORS = _Raises((TimeoutError,), (OSError,))
ANYIO_ERRORS = _Raises(
    (TimeoutError,), (OSError, anyio.BrokenResourceError, anyio.ClosedResourceError)
)


def translate(exc: BaseException, operation: _Operation, raises: _Raises) -> BaseException:
    """The one error table: httpcore's error for what ``operation`` raised, or ``exc``
    itself when it is none of the library's (a cancellation, a bug)."""
    if isinstance(exc, raises.timeouts):
        return operation.timeout(exc)
    if isinstance(exc, raises.failures):
        return operation.failure(reason_of(exc))
    return exc


def reason_of(exc: BaseException) -> BaseException:
    """What broke: trio raises a bare BrokenResourceError from the error that broke the
    stream (a failed certificate check, a reset), which is the one to say."""
    return exc.__cause__ if not str(exc) and exc.__cause__ is not None else exc


def engine_error(error: ConnectByNameError) -> Exception:
    """The error a backend raises for the engine's, the only place it is translated:
    httpcore's own ``ConnectTimeout``/``ConnectError``, which httpx maps and
    ``retries=`` retries as its own, or `ConnectByNameAddressDeniedError` for a policy
    refusal, which both let through untouched. httpcore's pool re-raises
    ``from None``, which drops the cause, so the error also keeps the engine's under
    ``_ENGINE_ERROR`` for `restore_cause`."""
    failure: Exception
    if isinstance(error, AddressDeniedError):
        failure = ConnectByNameAddressDeniedError(str(error))
    elif (handshake := handshake_error(error)) is not None:
        # The verification error, or the handshake's: as httpcore's own start_tls says.
        failure = httpcore.ConnectError(handshake)
    elif isinstance(error, TimedOutError):
        failure = httpcore.ConnectTimeout(str(error))
    else:
        failure = httpcore.ConnectError(str(error))
    setattr(failure, _ENGINE_ERROR, error)
    return failure


def restore_cause(exc: BaseException) -> ConnectByNameError | None:
    """Put the engine's error back as the cause of httpx's error's cause (httpcore's),
    and return it."""
    for failure in (exc, exc.__cause__):
        error = getattr(failure, _ENGINE_ERROR, None)
        if failure is not None and error is not None:
            failure.__cause__ = error
            return error  # type: ignore[no-any-return]
    return None


# --------------------------------------------------------------------------- connections


class Made:
    """What the engine made, shared by a connection's plain and TLS streams: its
    information (cached, for `connection_info` after the client is closed), the rest
    of its connect budget, the engine's listener, and whether it was closed."""

    __slots__ = ("_began", "_fresh", "_reused", "_uses", "closed", "connection", "listener")

    def __init__(
        self,
        connection: Connection,
        via_proxy: bool,
        listener: EventListener | None = None,
        began: float | None = None,
    ) -> None:
        self.connection = connection
        self._fresh = ConnectionInfo.of(connection, via_proxy=via_proxy)
        # Made at the second response: most connections carry one (Connection: close).
        self._reused: ConnectionInfo | None = None
        # next() on a count is atomic under the GIL: two threads sharing one HTTP/2
        # connection cannot both see its first use.
        self._uses = itertools.count()
        self.listener = listener
        self.closed = False
        # When the call began, on its clock (taken by the backend just before it, when
        # someone listens): for the TLS events' elapsed.
        self._began = began

    def tls_step(self, server_name: str | None) -> TLSStep | None:
        """The events of this connection's TLS handshake, beginning now (``None``
        when nobody listens)."""
        if self.listener is None and not OBSERVERS:
            return None
        connection = self.connection
        began = self._began
        elapsed = connection.elapsed if began is None else connection.clock() - began
        return TLSStep.begin(
            self.listener, server_name, self._fresh.remote_address, elapsed, connection.clock
        )

    @property
    def info(self) -> ConnectionInfo:
        return self._fresh

    def tls_done(self, ssl_object: Any) -> None:
        """A handshake made after the connect (a proxy's tunnel) completed: the info
        says its TLS version and ALPN protocol from now on."""
        self._fresh = self._fresh.with_tls(ssl_object)
        self._reused = None

    def response_info(self) -> ConnectionInfo:
        """The info for the next response on this connection (``reused`` from the 2nd)."""
        if next(self._uses) == 0:
            return self._fresh
        reused = self._reused
        if reused is None:
            # Two threads on one HTTP/2 connection may both make it: the same value.
            reused = self._reused = dataclasses.replace(self._fresh, reused=True)
        return reused

    def tls_timeout(self, timeout: float | None) -> float | None:
        """The TLS handshake's share of the connect timeout: what is left of it."""
        left = self.connection.time_left()
        if left is None:
            return timeout
        if left <= 0:
            raise httpcore.ConnectTimeout("the connect timeout ran out before the TLS handshake")
        return left if timeout is None else min(timeout, left)


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


def _extra_info(info: str, made: Made, sock: socket.socket | None, ssl_object: Any) -> Any:
    """``get_extra_info`` of every stream here."""
    if info == CONNECTION_KEY:
        return made
    if info == "ssl_object":
        return ssl_object
    if info == "client_addr":
        return made.info.local_address
    if info == "server_addr":
        return made.info.remote_address
    if info == "socket":
        return sock
    if info == "is_readable":
        return _is_readable(sock)
    return None


def _engine_arguments(
    local_address: str | None, socket_options: Iterable[SocketOption] | None
) -> dict[str, Any]:
    return {
        "source_address": None if local_address is None else (local_address, 0),
        "socket_options": socket_options,
    }


# --------------------------------------------------------------------------- sync


class SyncStream(httpcore.NetworkStream):
    def __init__(self, sock: socket.socket, made: Made) -> None:
        self._sock = sock
        self._made = made

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            self._sock.settimeout(timeout)
            return self._sock.recv(max_bytes)
        except Exception as exc:
            error = translate(exc, READ, SOCKET_ERRORS)
            if error is exc:
                raise
            raise error from exc

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            # As httpcore's own: the write timeout bounds each send, not the buffer.
            while buffer:
                self._sock.settimeout(timeout)
                buffer = buffer[self._sock.send(buffer) :]
        except Exception as exc:
            error = translate(exc, WRITE, SOCKET_ERRORS)
            if error is exc:
                raise
            raise error from exc

    def close(self) -> None:
        self._made.closed = True
        self._sock.close()

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        step = self._made.tls_step(server_hostname)
        try:
            if isinstance(self._sock, ssl.SSLSocket):
                # An SSLSocket cannot be wrapped again (HTTPS through an HTTPS proxy).
                raise httpcore.ConnectError(
                    "TLS inside TLS (HTTPS through an HTTPS proxy) is not supported by "
                    "the sync transport; use an http:// proxy URL"
                )
            # settimeout() on the socket bounds the whole handshake, not each read.
            self._sock.settimeout(self._made.tls_timeout(timeout))
            tls = ssl_context.wrap_socket(self._sock, server_hostname=server_hostname)
        except BaseException as exc:
            if step is not None:
                step.failed(exc)
            self.close()
            error = translate(exc, CONNECT, SOCKET_ERRORS)
            if error is exc:
                raise
            raise error from exc
        if step is not None:
            step.finished(tls.version(), tls.selected_alpn_protocol())
        self._made.tls_done(tls)
        return SyncStream(tls, self._made)

    def get_extra_info(self, info: str) -> Any:
        # The SSLSocket has the SSLObject's methods (selected_alpn_protocol,
        # getpeercert, version...); its inner object is private.
        ssl_object = self._sock if isinstance(self._sock, ssl.SSLSocket) else None
        return _extra_info(info, self._made, self._sock, ssl_object)


#: Whether the connection httpcore is about to ask for will carry TLS from the start
#: (an https:// origin, no proxy): set by the transport around each request, read by
#: ``connect_tcp`` in the same thread or task (httpcore connects in the request's).
TLS_NEXT: contextvars.ContextVar[bool] = contextvars.ContextVar("connectbyname_tls_next")


class _Connect(NamedTuple):
    """A ``connect_tcp`` call, kept until its first use says how to make it."""

    host: str
    port: int
    timeout: float | None
    arguments: dict[str, Any]


class SyncBackend(httpcore.NetworkBackend):
    def __init__(self, options: Options, via_proxy: bool) -> None:
        self._options = options
        self._via_proxy = via_proxy

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.NetworkStream:
        asked = _Connect(host, port, timeout, _engine_arguments(local_address, socket_options))
        if not self._via_proxy and TLS_NEXT.get(False):
            return PendingTLSStream(self, asked)
        return self.open(asked)

    def open(self, asked: _Connect, tls: TLSOptions | None = None) -> SyncStream:
        """Make the connection, over TLS with ``tls`` (each attempt's handshake raced)."""
        listener = self._options.listener
        began = time.monotonic() if listener is not None or OBSERVERS else None
        try:
            conn = connect(
                asked.host,
                asked.port,
                self._options,
                timeout=asked.timeout,
                # An https:// origin itself: its HTTPS record too.
                https=tls is not None,
                tls=tls,
                **asked.arguments,
            )
        except ConnectByNameError as exc:
            raise engine_error(exc) from exc
        try:
            # As httpcore's own backends: requests go out at once, not after Nagle's delay.
            conn.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return SyncStream(conn.socket, Made(conn, self._via_proxy, listener, began))
        except BaseException:
            conn.close()
            raise

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds)


class PendingTLSStream(httpcore.NetworkStream):
    """What ``connect_tcp`` returns for an https:// origin: nothing connected yet.

    httpcore calls ``start_tls`` right after ``connect_tcp``, with the context (its ALPN
    set) and the server name: only then can every attempt run its own handshake, so
    the connection is made there, the first attempt to complete its handshake winning
    (Happy Eyeballs v3). ``retries=`` still covers it: httpcore retries ``connect_tcp``
    and ``start_tls`` together. Any other first use makes a plain connection, as
    ``connect_tcp`` would have.

    Rejected: connecting over TCP in ``connect_tcp`` (the stock order), which ends the
    race before TLS and so cannot race past an address that takes TCP and never
    answers TLS; and guessing TLS from the port."""

    def __init__(self, backend: SyncBackend, asked: _Connect) -> None:
        self._backend = backend
        self._asked = asked
        self._stream: SyncStream | None = None

    def _opened(self) -> SyncStream:
        if self._stream is None:
            self._stream = self._backend.open(self._asked)
        return self._stream

    def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        if self._stream is not None:
            return self._stream.start_tls(ssl_context, server_hostname, timeout)
        return self._backend.open(self._asked, TLSOptions(ssl_context, server_hostname))

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._opened().read(max_bytes, timeout)

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._opened().write(buffer, timeout)

    def close(self) -> None:
        if self._stream is not None:
            self._stream.close()

    def get_extra_info(self, info: str) -> Any:
        return None if self._stream is None else self._stream.get_extra_info(info)


# --------------------------------------------------------------------------- async


class _EventLoopIO:
    """How an event loop library reads, writes, times out and starts TLS: anyio's
    (on asyncio) or trio's own."""

    raises: _Raises

    def deadline(self, timeout: float | None) -> Any:
        """A cancel scope that ends what it holds after ``timeout`` seconds: the
        caller raises `TimeoutError` when the ``with`` falls through. Not the
        libraries' ``fail_after``: that is a ``@contextmanager``, whose ``__enter__``,
        interrupted after its generator yielded, leaves the scope open on the task for
        good (CPython's gh-74174); trio protects its CancelScope's ``__enter__`` and
        ``__exit__`` from KeyboardInterrupt."""
        raise NotImplementedError

    async def receive(self, stream: Any, max_bytes: int) -> bytes:
        raise NotImplementedError

    async def send(self, stream: Any, data: bytes) -> None:
        raise NotImplementedError

    async def start_tls(
        self, stream: Any, context: ssl.SSLContext, hostname: str | None, timeout: float | None
    ) -> Any:
        raise NotImplementedError

    async def aclose_forcefully(self, stream: Any) -> None:
        raise NotImplementedError

    def ssl_object(self, stream: Any) -> Any:
        raise NotImplementedError

    async def astream(self, sock: socket.socket) -> Any:
        """The library's stream over a connected socket."""
        raise NotImplementedError


class _AnyioIO(_EventLoopIO):
    raises = ANYIO_ERRORS

    def deadline(self, timeout: float | None) -> Any:
        return anyio.CancelScope(
            deadline=math.inf if timeout is None else anyio.current_time() + timeout
        )

    async def receive(self, stream: Any, max_bytes: int) -> bytes:
        try:
            data: bytes = await stream.receive(max_bytes)
        except anyio.EndOfStream:
            return b""
        return data

    async def send(self, stream: Any, data: bytes) -> None:
        await stream.send(data)

    async def start_tls(
        self, stream: Any, context: ssl.SSLContext, hostname: str | None, timeout: float | None
    ) -> Any:
        with self.deadline(timeout):
            return await anyio.streams.tls.TLSStream.wrap(
                stream, ssl_context=context, hostname=hostname, standard_compatible=False
            )
        raise TimeoutError

    async def aclose_forcefully(self, stream: Any) -> None:
        await anyio.aclose_forcefully(stream)

    def ssl_object(self, stream: Any) -> Any:
        return stream.extra(anyio.streams.tls.TLSAttribute.ssl_object, None)

    async def astream(self, sock: socket.socket) -> Any:
        return await anyio.abc.SocketStream.from_socket(sock)


class _TrioIO(_EventLoopIO):
    """trio's own streams, as httpcore's trio backend (which stock httpx uses there)
    has them: anyio's add a layer to every read and write."""

    def __init__(self) -> None:
        import trio

        self._trio = trio
        self.raises = _Raises(
            (TimeoutError,), (OSError, trio.BrokenResourceError, trio.ClosedResourceError)
        )

    def deadline(self, timeout: float | None) -> Any:
        trio = self._trio
        return trio.CancelScope(
            deadline=math.inf if timeout is None else trio.current_time() + timeout
        )

    async def receive(self, stream: Any, max_bytes: int) -> bytes:
        data: bytes = await stream.receive_some(max_bytes)
        return data

    async def send(self, stream: Any, data: bytes) -> None:
        await stream.send_all(data)

    async def start_tls(
        self, stream: Any, context: ssl.SSLContext, hostname: str | None, timeout: float | None
    ) -> Any:
        trio = self._trio
        # https_compatible: no close_notify expected, as anyio's standard_compatible=False.
        tls = trio.SSLStream(stream, context, server_hostname=hostname, https_compatible=True)
        with self.deadline(timeout):
            await tls.do_handshake()
            return tls
        raise TimeoutError

    async def aclose_forcefully(self, stream: Any) -> None:
        await self._trio.aclose_forcefully(stream)

    def ssl_object(self, stream: Any) -> Any:
        # trio's SSLStream offers the SSLObject's methods (selected_alpn_protocol,
        # getpeercert, version, ...) itself; the SSLObject is private to it.
        return stream if isinstance(stream, self._trio.SSLStream) else None

    async def astream(self, sock: socket.socket) -> Any:
        trio = self._trio
        return trio.SocketStream(trio.socket.from_stdlib_socket(sock))


_ANYIO_IO = _AnyioIO()


def _event_loop_io() -> _EventLoopIO:
    """trio's I/O inside a trio run, else anyio's (an asyncio program never imports
    trio). ``current_trio_token`` exists in every trio release; it raises outside a
    run."""
    trio = sys.modules.get("trio")
    if trio is not None:
        try:
            trio.lowlevel.current_trio_token()
        except RuntimeError:
            pass
        else:
            return _TrioIO()
    return _ANYIO_IO


class AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, io: _EventLoopIO, stream: Any, sock: socket.socket, made: Made) -> None:
        self._io = io
        self._stream = stream
        self._socket = sock  # the socket under it all
        self._made = made

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        io = self._io
        try:
            with io.deadline(timeout):
                return await io.receive(self._stream, max_bytes)
            raise TimeoutError
        except Exception as exc:
            error = translate(exc, READ, io.raises)
            if error is exc:
                raise
            raise error from exc

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        io = self._io
        try:
            with io.deadline(timeout):
                await io.send(self._stream, buffer)
                return
            raise TimeoutError
        except Exception as exc:
            error = translate(exc, WRITE, io.raises)
            if error is exc:
                raise
            raise error from exc

    async def aclose(self) -> None:
        self._made.closed = True
        await self._stream.aclose()

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        io = self._io
        step = self._made.tls_step(server_hostname)
        try:
            budget = self._made.tls_timeout(timeout)
            tls = await io.start_tls(self._stream, ssl_context, server_hostname, budget)
        except BaseException as exc:
            if step is not None:
                step.failed(reason_of(exc))
            self._made.closed = True
            # Forcefully: also when the handshake was cancelled, the socket is closed
            # before the cancellation goes on.
            await io.aclose_forcefully(self._stream)
            error = translate(exc, CONNECT, io.raises)
            if isinstance(exc, anyio.EndOfStream):
                error = CONNECT.failure(exc)
            if error is exc:
                raise
            raise error from exc
        tls_object = io.ssl_object(tls)
        if step is not None:
            step.finished(tls_object.version(), tls_object.selected_alpn_protocol())
        self._made.tls_done(tls_object)
        return AsyncStream(io, tls, self._socket, self._made)

    def get_extra_info(self, info: str) -> Any:
        return _extra_info(info, self._made, self._socket, self._io.ssl_object(self._stream))


class AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, options: Options, via_proxy: bool) -> None:
        self._options = options
        self._via_proxy = via_proxy

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[SocketOption] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        asked = _Connect(host, port, timeout, _engine_arguments(local_address, socket_options))
        if not self._via_proxy and TLS_NEXT.get(False):
            await anyio.lowlevel.checkpoint()  # a connect is a checkpoint, as stock
            return AsyncPendingTLSStream(self, asked)
        return await self.open(asked)

    async def open(self, asked: _Connect, tls: TLSOptions | None = None) -> AsyncStream:
        """`SyncBackend.open` in the event loop."""
        listener = self._options.listener
        # The async engine's clock: the event loop's.
        began = anyio.current_time() if listener is not None or OBSERVERS else None
        try:
            conn = await aconnect(
                asked.host,
                asked.port,
                self._options,
                timeout=asked.timeout,
                # An https:// origin itself: its HTTPS record too.
                https=tls is not None,
                tls=tls,
                **asked.arguments,
            )
        except ConnectByNameError as exc:
            raise engine_error(exc) from exc
        try:
            io: _EventLoopIO
            if isinstance(conn.socket, ssl.SSLSocket):
                # Its handshake is done: an anyio stream over the SSLSocket itself,
                # on trio as well (anyio's trio backend waits on it there).
                io, stream = _ANYIO_IO, TLSSocketStream(conn.socket)
            else:
                io = _event_loop_io()
                stream = await io.astream(conn.socket)
            made = Made(conn, self._via_proxy, listener, began)
            return AsyncStream(io, stream, conn.socket, made)
        except BaseException:
            conn.close()
            raise

    async def sleep(self, seconds: float) -> None:
        await anyio.sleep(seconds)


class AsyncPendingTLSStream(httpcore.AsyncNetworkStream):
    """`PendingTLSStream` for the async backend."""

    def __init__(self, backend: AsyncBackend, asked: _Connect) -> None:
        self._backend = backend
        self._asked = asked
        self._stream: AsyncStream | None = None

    async def _opened(self) -> AsyncStream:
        if self._stream is None:
            self._stream = await self._backend.open(self._asked)
        return self._stream

    async def start_tls(
        self,
        ssl_context: ssl.SSLContext,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.AsyncNetworkStream:
        if self._stream is not None:
            return await self._stream.start_tls(ssl_context, server_hostname, timeout)
        return await self._backend.open(self._asked, TLSOptions(ssl_context, server_hostname))

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await (await self._opened()).read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await (await self._opened()).write(buffer, timeout)

    async def aclose(self) -> None:
        if self._stream is not None:
            await self._stream.aclose()

    def get_extra_info(self, info: str) -> Any:
        return None if self._stream is None else self._stream.get_extra_info(info)
