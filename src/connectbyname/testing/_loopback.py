"""Loopback-only network fixtures for the tests, the offline demo and the benchmarks.

Everything here talks to 127.0.0.1 and ::1 only and uses nothing but the standard
library, so it works on a machine without network access and without the test
dependencies installed.

- :class:`Blackhole`: a port where ``connect()`` hangs, like a broken IPv6 path.
- :func:`refused_port`: a port where ``connect()`` fails at once with ECONNREFUSED.
- :class:`HTTPServer`: a threaded HTTP/1.1 (optionally TLS) server with a few routes.
- :class:`ProxyServer`: an HTTP proxy (absolute-URI forwarding and CONNECT tunnels)
  that counts what it handled and only ever connects to loopback addresses.
- :func:`dual_stack`: one port number that works on one address family and is
  blackholed or refused on the other.
- :class:`StaticResolver` and :func:`patch_getaddrinfo`: a fake ``getaddrinfo`` that
  maps names to loopback literals without ever asking the system resolver.
- :func:`open_fds` and :func:`no_fd_leak`: file-descriptor leak checks.

Besides the standard library it uses only `connectbyname._resolve`, for getaddrinfo's port rules.
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import errno
import gc
import http.client
import http.server
import os
import select
import selectors
import socket
import socketserver
import ssl
import struct
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Literal, NamedTuple, Protocol, Self, TypeAlias
from urllib.parse import parse_qs, urlsplit

from .._resolve import getaddrinfo_port

__all__ = [
    "HANDSHAKE_FAILURE_ALERT",
    "HELLO_BODY",
    "AddrInfoList",
    "Blackhole",
    "DualStack",
    "GetAddrInfo",
    "HTTPServer",
    "Handshake",
    "ProxyRequest",
    "ProxyServer",
    "ResolverCall",
    "ScenarioKind",
    "StaticResolver",
    "blackholed_everywhere",
    "dual_stack",
    "localhost_fallback",
    "no_fd_leak",
    "open_fds",
    "patch_getaddrinfo",
    "refused_port",
]

#: The element type of ``socket.getaddrinfo``'s result, spelled as typeshed does so
#: that a :class:`StaticResolver` can stand in for ``socket.getaddrinfo``.
AddrInfoList: TypeAlias = list[
    tuple[Literal[socket.AddressFamily.AF_INET], socket.SocketKind, int, str, tuple[str, int]]
    | tuple[
        Literal[socket.AddressFamily.AF_INET6],
        socket.SocketKind,
        int,
        str,
        tuple[str, int, int, int] | tuple[int, bytes],
    ]
]


class GetAddrInfo(Protocol):
    """Anything callable like :func:`socket.getaddrinfo`."""

    def __call__(  # noqa: PLR0917 (socket.getaddrinfo's signature)
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> AddrInfoList: ...


# Captured at import so that code here can tell whether patch_getaddrinfo() is active.
_SYSTEM_GETADDRINFO: Callable[..., Any] = socket.getaddrinfo

_IO_TIMEOUT = 10.0  # upper bound for handshakes and upstream connects in the servers

#: How a server answers a new connection (see `HTTPServer`).
Handshake: TypeAlias = Literal["normal", "mute", "alert", "reset"]
#: A TLS record: a fatal (2) handshake_failure (40) alert, TLS 1.2 framing.
HANDSHAKE_FAILURE_ALERT = bytes([0x15, 0x03, 0x03, 0x00, 0x02, 0x02, 0x28])


def _family_of(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def _format_address(address: Any) -> str:
    """``ip:port`` for IPv4, ``[ip]:port`` for IPv6."""
    return f"{_url_host(str(address[0]))}:{address[1]}"


def _wait_connected(sock: socket.socket, timeout: float) -> bool:
    """Whether a non-blocking connect() on ``sock`` finished (either way) within ``timeout``."""
    _, writable, _ = select.select([], [sock], [], timeout)
    return bool(writable)


# --------------------------------------------------------------------------- blackhole


class Blackhole:
    """A TCP port on ``host`` where ``connect()`` hangs instead of failing.

    It is a listening socket (backlog 0) whose accept queue is already full of
    "filler" connections that are never accepted. The kernel then drops further
    SYNs, so a connecting client keeps retransmitting its SYN and neither succeeds
    nor fails until its own timeout: the behaviour of a broken IPv6 path.

    ``port=0`` picks a free port. Use as a context manager (or call :meth:`close`);
    closing it makes later connects fail with ECONNREFUSED.

    Attributes: ``host``, ``port``, ``address`` (the sockaddr tuple for ``connect()``),
    ``fillers`` (how many queue slots had to be filled).
    """

    # Generous: on a loaded box the first filler's handshake may take a while.
    _FILLER_TIMEOUT = 5.0
    # A probe that has not completed within max(_PROBE_TIMEOUT, _PROBE_FACTOR times
    # the first filler's handshake time) is taken as dropped: adapting to the
    # measured latency keeps a slow (loaded) box from passing for a full queue.
    _PROBE_TIMEOUT = 0.1
    _PROBE_FACTOR = 20
    _MAX_FILLERS = 16

    def __init__(self, host: str, port: int = 0) -> None:
        self.host = host
        family = _family_of(host)
        self._fillers: list[socket.socket] = []
        self._listener = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._listener.bind((host, port))
            self._listener.listen(0)
            self.address: tuple[Any, ...] = self._listener.getsockname()
            self.port: int = self.address[1]
            self._fill(family)
        except BaseException:
            self.close()
            raise

    def _fill(self, family: socket.AddressFamily) -> None:
        # How many connections "backlog 0" admits is up to the kernel (Linux admits
        # one), so keep adding fillers until a probe connect does not complete.
        timeout = self._FILLER_TIMEOUT
        while len(self._fillers) < self._MAX_FILLERS:
            probe = socket.socket(family, socket.SOCK_STREAM)
            probe.setblocking(False)
            started = time.monotonic()
            probe.connect_ex(self.address)
            if not _wait_connected(probe, timeout):
                # Dropped SYN: the queue is full. Closing a half-open client socket
                # sends nothing, so the listener's state is unchanged.
                probe.close()
                return
            if not self._fillers:
                elapsed = time.monotonic() - started
                timeout = max(self._PROBE_TIMEOUT, self._PROBE_FACTOR * elapsed)
            error = probe.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            self._fillers.append(probe)
            if error:
                raise OSError(error, f"blackhole filler connect failed: {os.strerror(error)}")
        raise RuntimeError(f"could not fill the accept queue of {self.address!r}")

    @property
    def fillers(self) -> int:
        return len(self._fillers)

    def close(self) -> None:
        """Close the listener and the fillers. Idempotent."""
        for sock in self._fillers:
            sock.close()
        self._fillers.clear()
        self._listener.close()

    def __enter__(self) -> Blackhole:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Blackhole({_format_address(self.address)})"


@contextlib.contextmanager
def refused_port(host: str, port: int = 0) -> Iterator[int]:
    """Yield a port on ``host`` where ``connect()`` fails at once with ECONNREFUSED.

    A socket is bound (not listening) to the port for the duration, so nothing
    else can take the port in the meantime.
    """
    with socket.socket(_family_of(host), socket.SOCK_STREAM) as sock:
        sock.bind((host, port))
        yield sock.getsockname()[1]


# --------------------------------------------------------------------------- fd checks


def _fd_table() -> dict[int, str]:
    fd_dir = "/proc/self/fd" if os.path.isdir("/proc/self/fd") else "/dev/fd"
    table = {}
    for name in os.listdir(fd_dir):
        try:
            table[int(name)] = os.readlink(os.path.join(fd_dir, name))
        except OSError:
            # The descriptor listdir() itself used, already closed again.
            continue
    return table


def open_fds() -> int:
    """The number of file descriptors this process has open."""
    return len(_fd_table())


@contextlib.contextmanager
def no_fd_leak(settle: float = 1.0) -> Iterator[None]:
    """Fail with AssertionError if the block leaves new file descriptors open.

    After the block it runs the garbage collector and waits up to ``settle``
    seconds, because server threads close their side of a connection shortly
    after the client does. Descriptors that existed before and were closed in
    the block are fine.
    """
    before = _fd_table()
    yield
    deadline = time.monotonic() + settle
    while True:
        gc.collect()
        leaked = {fd: target for fd, target in _fd_table().items() if before.get(fd) != target}
        if not leaked or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    if leaked:
        listing = ", ".join(f"{fd} -> {target}" for fd, target in sorted(leaked.items()))
        raise AssertionError(f"file descriptors leaked: {listing}")


# --------------------------------------------------------------------------- servers


class _Server(http.server.ThreadingHTTPServer):
    """ThreadingHTTPServer that tracks its connections so it can close them all.

    The stock server does not join daemon threads, and keep-alive connections keep
    their handler threads blocked in ``readline()`` forever; here :meth:`close_all`
    shuts every tracked socket down (which wakes those reads) and joins the threads.
    TLS is done in the connection's thread, so a slow client cannot stall ``accept()``.
    """

    daemon_threads = True
    # The stock 5 would drop SYNs when a test opens many connections at once,
    # turning into 1 s retransmission stalls.
    request_queue_size = 128
    #: The HTTPServer or ProxyServer running this server.
    owner: Any = None

    def __init__(
        self,
        host: str,
        port: int,
        handler: type[http.server.BaseHTTPRequestHandler],
        ssl_context: ssl.SSLContext | None,
        *,
        handshake: Handshake = "normal",
        handshake_delay: float = 0.0,
    ) -> None:
        # Must be set before TCPServer.__init__ creates the socket.
        self.address_family = _family_of(host)
        self.ssl_context = ssl_context
        self.handshake = handshake
        self.handshake_delay = handshake_delay
        self.closing = threading.Event()
        self.lock = threading.Lock()
        self.connection_count = 0
        self.request_count = 0
        self.connection_numbers: dict[socket.socket, int] = {}
        self._live: set[socket.socket] = set()
        self._conn_threads: list[threading.Thread] = []
        super().__init__((host, port), handler)

    def server_bind(self) -> None:
        # http.server.HTTPServer.server_bind calls socket.getfqdn(), a reverse DNS
        # lookup: skip it.
        socketserver.TCPServer.server_bind(self)
        self.server_name = str(self.server_address[0])
        self.server_port = int(self.server_address[1])

    def track(self, sock: socket.socket) -> None:
        with self.lock:
            self._live.add(sock)
        if self.closing.is_set():
            # close_all() may have run before the socket was tracked.
            _shutdown_quietly(sock)

    def untrack(self, sock: socket.socket) -> None:
        with self.lock:
            self._live.discard(sock)
            self.connection_numbers.pop(sock, None)

    def process_request(self, request: Any, client_address: Any) -> None:
        with self.lock:
            self.connection_count += 1
            number = self.connection_count
            self._conn_threads = [t for t in self._conn_threads if t.is_alive()]
            thread = threading.Thread(
                target=self._serve_connection,
                args=(request, client_address, number),
                name=f"loopback-conn-{number}",
                daemon=True,
            )
            self._conn_threads.append(thread)
        self.track(request)
        thread.start()

    def _serve_connection(self, sock: socket.socket, client_address: Any, number: int) -> None:
        conn = sock
        try:
            if self.handshake == "mute":
                self.closing.wait()  # TCP connected; never a word, until close_all()
                return
            if self.handshake in ("alert", "reset"):
                sock.settimeout(_IO_TIMEOUT)
                sock.recv(65536)  # the ClientHello
                if self.handshake == "alert":
                    sock.sendall(HANDSHAKE_FAILURE_ALERT)
                else:  # closed with a reset (SO_LINGER 0), as an SNI filter does
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    sock.close()  # now, before the shutdown below would send a FIN
                return
            if self.handshake_delay:
                self.closing.wait(self.handshake_delay)
            if self.ssl_context is not None:
                sock.settimeout(_IO_TIMEOUT)
                conn = self.ssl_context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                )
                # wrap_socket() detached ``sock``; track the TLS socket before the
                # handshake so that close_all() can interrupt it.
                self.untrack(sock)
                self.track(conn)
                conn.do_handshake()
                conn.settimeout(None)
            with self.lock:
                self.connection_numbers[conn] = number
            handler: Callable[..., object] = self.RequestHandlerClass
            handler(conn, client_address, self)
        except Exception:
            # Clients that hang up mid-request, failed TLS handshakes, close_all():
            # all expected here, and stderr noise would hide real test failures.
            pass
        finally:
            self.untrack(sock)
            self.untrack(conn)
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_WR)
            conn.close()

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # see _serve_connection

    def close_all(self, timeout: float = 5.0) -> None:
        """Wake and close every connection, then join the connection threads."""
        self.closing.set()
        with self.lock:
            live = list(self._live)
            threads = list(self._conn_threads)
        for sock in live:
            _shutdown_quietly(sock)
        deadline = time.monotonic() + timeout
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))


def _shutdown_quietly(sock: socket.socket) -> None:
    # socket.socket.shutdown, not SSLSocket.shutdown: the latter also drops the TLS
    # state under the feet of the thread still using the socket.
    with contextlib.suppress(OSError):
        socket.socket.shutdown(sock, socket.SHUT_RDWR)


class _ServerRunner:
    """Runs a :class:`_Server` in a thread; shared by HTTPServer and ProxyServer."""

    def __init__(
        self,
        host: str,
        port: int,
        handler: type[http.server.BaseHTTPRequestHandler],
        ssl_context: ssl.SSLContext | None,
        *,
        handshake: Handshake = "normal",
        handshake_delay: float = 0.0,
    ) -> None:
        self._server = _Server(
            host, port, handler, ssl_context, handshake=handshake, handshake_delay=handshake_delay
        )
        self._server.owner = self
        self._closed = False
        self.host = host
        self.port: int = self._server.server_address[1]
        scheme = "https" if ssl_context is not None else "http"
        self.url = f"{scheme}://{_url_host(host)}:{self.port}"
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-{self.port}",
            daemon=True,
        )
        self._thread.start()

    @property
    def connection_count(self) -> int:
        """TCP connections accepted so far (including failed TLS handshakes)."""
        with self._server.lock:
            return self._server.connection_count

    def close(self) -> None:
        """Stop serving, close every connection and join all threads. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._thread.join()
        self._server.close_all()
        self._server.server_close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url})"


# --------------------------------------------------------------------------- HTTP server

HELLO_BODY = b"hello from connectbyname\n"


class _HTTPHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._route(head=False)

    def do_HEAD(self) -> None:
        self._route(head=True)

    def do_POST(self) -> None:
        self._echo_body()

    def do_PUT(self) -> None:
        self._echo_body()

    def _start(self) -> dict[str, list[str]]:
        with self.server.lock:
            self.server.request_count += 1
        query = parse_qs(urlsplit(self.path).query)
        if "delay" in query:
            try:
                delay = min(max(float(query["delay"][0]), 0.0), 60.0)
            except ValueError:
                delay = 0.0
            # An Event rather than sleep(): closing the server cuts the delay short.
            self.server.closing.wait(delay)
        return query

    def _common_headers(self) -> None:
        self.send_header("X-Client-Address", _format_address(self.client_address))
        number = self.server.connection_numbers.get(self.request, 0)
        self.send_header("X-Connection-Number", str(number))

    def _send(
        self,
        status: int,
        body: bytes,
        *,
        head: bool = False,
        content_type: str = "text/plain",
        headers: Sequence[tuple[str, str]] = (),
    ) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self._common_headers()
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def _route(self, *, head: bool) -> None:
        query = self._start()
        path = urlsplit(self.path).path
        if path == "/":
            self._send(200, HELLO_BODY, head=head)
        elif path == "/echo-host":
            self._send(200, (self.headers.get("Host") or "").encode("latin-1"), head=head)
        elif path == "/redirect":
            if "to" not in query:
                self._send(400, b"missing ?to=\n", head=head)
            else:
                self._send(302, b"", head=head, headers=[("Location", query["to"][0])])
        elif path == "/stream":
            self._stream(query, head=head)
        elif path.startswith("/bytes/"):
            self._bytes(path.removeprefix("/bytes/"), head=head)
        else:
            self._send(404, b"not found\n", head=head)

    def _stream(self, query: dict[str, list[str]], *, head: bool) -> None:
        try:
            chunks = int(query.get("chunks", ["5"])[0])
        except ValueError:
            chunks = 5
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Transfer-Encoding", "chunked")
        self._common_headers()
        self.end_headers()
        if head:
            return
        for i in range(chunks):
            data = b"chunk %d\n" % i
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.write(b"0\r\n\r\n")

    def _bytes(self, count: str, *, head: bool) -> None:
        if not count.isdigit() or int(count) > 1 << 30:
            self._send(400, b"bad byte count\n", head=head)
            return
        remaining = int(count)
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(remaining))
        self._common_headers()
        self.end_headers()
        if head:
            return
        block = b"x" * 65536
        while remaining:
            piece = block[: min(remaining, len(block))]
            self.wfile.write(piece)
            remaining -= len(piece)

    def _echo_body(self) -> None:
        self._start()
        if "chunked" in (self.headers.get("Transfer-Encoding") or "").lower():
            body = _read_chunked(self.rfile)
        else:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        content_type = self.headers.get("Content-Type") or "application/octet-stream"
        self._send(200, body, content_type=content_type)


def _read_chunked(rfile: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        size = int(rfile.readline(1024).split(b";")[0].strip() or b"0", 16)
        if size == 0:
            # Skip trailers up to the blank line.
            while rfile.readline(65537) not in (b"\r\n", b"\n", b""):
                pass
            return b"".join(parts)
        parts.append(_read_exact(rfile, size))
        rfile.readline(1024)


def _read_exact(rfile: Any, size: int) -> bytes:
    # Loops because an unbuffered (raw) file may return short reads.
    parts: list[bytes] = []
    while size:
        data = rfile.read(size)
        if not data:
            raise ConnectionError("connection closed mid-body")
        parts.append(data)
        size -= len(data)
    return b"".join(parts)


class HTTPServer(_ServerRunner):
    """A threaded HTTP/1.1 server on ``host:port`` (``port=0``: a free one), TLS if
    ``ssl_context`` is given. It serves from construction until :meth:`close`.

    Routes (GET and HEAD):

    - ``/``: 200 ``text/plain`` ``hello from connectbyname\\n``
    - ``/echo-host``: the request's Host header as the body
    - ``/redirect?to=URL``: 302 to URL
    - ``/stream``: 200, chunked, ``?chunks=N`` chunks (default 5) of ``chunk I\\n``
    - ``/bytes/N``: N bytes of ``x``
    - anything else: 404

    POST and PUT to any path echo the request body. ``?delay=SECONDS`` on any
    request waits that long (at most 60 s, cut short by :meth:`close`) first.

    ``handshake`` breaks every connection on purpose: ``"mute"`` accepts TCP and then
    never sends or reads a byte (a middlebox, a half-broken load balancer: a TLS
    ClientHello goes unanswered), ``"alert"`` answers the ClientHello with a fatal
    ``handshake_failure`` alert and closes, ``"reset"`` answers it with a TCP reset (an
    SNI filter). ``handshake_delay`` waits that many seconds
    after accepting before the TLS handshake (or the first request) is served.

    Every response carries ``X-Client-Address`` (the peer as ``ip:port``, IPv6 as
    ``[ip]:port``) and ``X-Connection-Number`` (1 for the first accepted
    connection, 2 for the next...), and keep-alive works.

    Attributes: ``host``, ``port``, ``url`` (``http://127.0.0.1:PORT``,
    ``https://[::1]:PORT``...), ``request_count``, ``connection_count``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        ssl_context: ssl.SSLContext | None = None,
        *,
        handshake: Handshake = "normal",
        handshake_delay: float = 0.0,
    ) -> None:
        super().__init__(
            host,
            port,
            _HTTPHandler,
            ssl_context,
            handshake=handshake,
            handshake_delay=handshake_delay,
        )

    @property
    def request_count(self) -> int:
        """HTTP requests received so far."""
        with self._server.lock:
            return self._server.request_count


# --------------------------------------------------------------------------- proxy

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)


class ProxyRequest(NamedTuple):
    """One request a :class:`ProxyServer` received."""

    method: str
    #: ``host:port`` for CONNECT, the absolute URI otherwise.
    target: str
    headers: tuple[tuple[str, str], ...]


class _ProxyHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Unbuffered, so that no bytes of a CONNECT tunnel sit in a read buffer when
    # the relay takes over the raw socket.
    rbufsize = 0
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    @property
    def _owner(self) -> ProxyServer:
        owner: ProxyServer = self.server.owner
        return owner

    def _reply(self, status: int, text: str, headers: Sequence[tuple[str, str]] = ()) -> None:
        body = text.encode() + b"\n"
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _authorized(self) -> bool:
        expected = self._owner.auth
        if expected is None:
            return True
        token = base64.b64encode(f"{expected[0]}:{expected[1]}".encode()).decode()
        if self.headers.get("Proxy-Authorization") == f"Basic {token}":
            return True
        self._reply(
            407,
            "proxy authentication required",
            [("Proxy-Authenticate", 'Basic realm="connectbyname-loopback"')],
        )
        return False

    def _open_upstream(self, host: str, port: int) -> socket.socket | None:
        """Connect to host:port (loopback addresses only) or reply 502 and return None."""
        try:
            addresses = self._owner.resolve(host, port)
        except (OSError, UnicodeError) as exc:
            self._reply(502, f"cannot resolve {host!r}: {exc}")
            return None
        if not addresses:
            self._reply(502, f"refusing {host!r}: not a loopback address")
            return None
        problem: OSError | None = None
        for family, sockaddr in addresses:
            upstream = socket.socket(family, socket.SOCK_STREAM)
            try:
                upstream.settimeout(_IO_TIMEOUT)
                upstream.connect(sockaddr)
                upstream.settimeout(None)
            except OSError as exc:
                upstream.close()
                problem = exc
                continue
            self.server.track(upstream)
            return upstream
        self._reply(502, f"cannot connect to {host}:{port}: {problem}")
        return None

    def _record(self, counter: str) -> None:
        record = ProxyRequest(self.command, self.path, tuple(self.headers.items()))
        owner = self._owner
        with self.server.lock:
            owner.requests.append(record)
            setattr(owner, counter, getattr(owner, counter) + 1)

    def do_CONNECT(self) -> None:
        self._record("connect_requests")
        if not self._authorized():
            return
        host, _, port = self.path.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not host or not port.isdigit():
            self.close_connection = True
            self._reply(400, f"bad CONNECT target {self.path!r}")
            return
        upstream = self._open_upstream(host, int(port))
        if upstream is None:
            return
        self.close_connection = True  # the connection belongs to the tunnel now
        try:
            self.send_response(200, "Connection established")
            self.end_headers()
            _relay(self.connection, upstream, self.server.closing)
        finally:
            self.server.untrack(upstream)
            upstream.close()

    def _forward(self) -> None:
        self._record("forwarded_requests")
        if not self._authorized():
            return
        url = urlsplit(self.path)
        if url.scheme != "http" or not url.hostname:
            self.close_connection = True
            self._reply(400, f"this is a proxy; need an http:// absolute URI, got {self.path!r}")
            return
        if self.headers.get("Transfer-Encoding"):
            self.close_connection = True
            self._reply(501, "chunked request bodies are not supported")
            return
        body = _read_exact(self.rfile, int(self.headers.get("Content-Length") or 0))
        upstream = self._open_upstream(url.hostname, url.port or 80)
        if upstream is None:
            return
        try:
            self._exchange(upstream, url.path or "/", url.query, url.netloc, body)
        finally:
            self.server.untrack(upstream)
            upstream.close()

    def _exchange(
        self, upstream: socket.socket, path: str, query: str, netloc: str, body: bytes
    ) -> None:
        target = f"{path}?{query}" if query else path
        skip = _HOP_BY_HOP | _connection_tokens(self.headers.get_all("Connection") or [])
        lines = [f"{self.command} {target} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in self.headers.items() if k.lower() not in skip]
        if self.headers.get("Host") is None:
            lines.append(f"Host: {netloc}")
        # One upstream connection per request keeps the proxy simple; the client's
        # connection to the proxy still stays alive.
        lines.append("Connection: close")
        upstream.sendall("\r\n".join(lines).encode("latin-1") + b"\r\n\r\n" + body)
        response = http.client.HTTPResponse(upstream, method=self.command)
        try:
            response.begin()
            skip = (
                _HOP_BY_HOP
                | _connection_tokens(response.headers.get_all("Connection") or [])
                | {"content-length"}
            )
            self.send_response_only(response.status, response.reason)
            for name, value in response.headers.items():
                if name.lower() not in skip:
                    self.send_header(name, value)
            self.send_header("X-Proxied-By", "connectbyname-loopback")
            no_body = self.command == "HEAD" or response.status in (204, 304)
            if no_body or response.length is not None:
                length = response.headers.get("Content-Length")
                if length is not None:
                    self.send_header("Content-Length", length)
                self.end_headers()
                while not no_body and (data := response.read(65536)):
                    self.wfile.write(data)
            else:
                self.send_header("Transfer-Encoding", "chunked")
                self.end_headers()
                while data := response.read1(65536):
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
                self.wfile.write(b"0\r\n\r\n")
        finally:
            response.close()

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _forward


def _connection_tokens(values: Sequence[str]) -> frozenset[str]:
    return frozenset(t.strip().lower() for v in values for t in v.split(",") if t.strip())


def _relay(a: socket.socket, b: socket.socket, closing: threading.Event) -> None:
    """Copy bytes both ways until both directions are closed (or one side fails)."""
    peer = {a: b, b: a}
    with selectors.DefaultSelector() as selector:
        selector.register(a, selectors.EVENT_READ)
        selector.register(b, selectors.EVENT_READ)
        open_directions = 2
        while open_directions and not closing.is_set():
            for key, _ in selector.select(0.25):
                src = a if key.fileobj is a else b
                try:
                    data = src.recv(65536)
                    if data:
                        peer[src].sendall(data)
                        continue
                except OSError:
                    return  # reset: give up on both directions
                selector.unregister(src)
                open_directions -= 1
                with contextlib.suppress(OSError):
                    peer[src].shutdown(socket.SHUT_WR)


class ProxyServer(_ServerRunner):
    """A threaded HTTP proxy on ``host:port`` that records what it handled.

    It forwards ``http://`` absolute-URI requests (any method; request bodies need a
    Content-Length) and tunnels ``CONNECT host:port``. It only ever connects to
    loopback addresses: anything else gets a 502. Names are resolved with
    ``resolver`` if given, else with ``socket.getaddrinfo`` while
    :func:`patch_getaddrinfo` is active, else only IP literals and ``localhost``
    are accepted; the system resolver is never asked.

    ``auth=("user", "password")`` requires Basic proxy authentication (407 without).

    Attributes: ``host``, ``port``, ``url``, ``connection_count`` (client
    connections accepted), ``connect_requests`` and ``forwarded_requests`` (requests
    received of each kind, rejected ones included), ``requests`` (a list of
    :class:`ProxyRequest`, oldest first). Forwarded responses carry
    ``X-Proxied-By: connectbyname-loopback``.
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        auth: tuple[str, str] | None = None,
        resolver: GetAddrInfo | None = None,
    ) -> None:
        self.auth = auth
        self.requests: list[ProxyRequest] = []
        self.connect_requests = 0
        self.forwarded_requests = 0
        self._resolver = resolver
        super().__init__(host, port, _ProxyHandler, None)

    def resolve(self, host: str, port: int) -> list[tuple[socket.AddressFamily, Any]]:
        """The loopback addresses among ``host``'s addresses, as (family, sockaddr)."""
        getaddrinfo: Callable[..., Any] | None = self._resolver
        if getaddrinfo is None:
            getaddrinfo = socket.getaddrinfo
            if getaddrinfo is _SYSTEM_GETADDRINFO:
                getaddrinfo = _LITERALS_AND_LOCALHOST
        infos = getaddrinfo(host, port, 0, socket.SOCK_STREAM)
        result = []
        for family, _, _, _, sockaddr in infos:
            ip = str(sockaddr[0]).partition("%")[0]
            if _is_loopback(ip):
                result.append((family, sockaddr))
        return result


def _is_loopback(ip: str) -> bool:
    try:
        packed = socket.inet_pton(socket.AF_INET, ip)
    except OSError:
        pass
    else:
        return packed[0] == 127
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except OSError:
        return False
    # ::1, or an IPv4-mapped 127.x.y.z.
    return packed == bytes(15) + b"\x01" or packed[:13] == bytes(10) + b"\xff\xff\x7f"


# --------------------------------------------------------------------------- resolver


class ResolverCall(NamedTuple):
    """One name lookup seen by a :class:`StaticResolver`."""

    host: str | None
    port: bytes | str | int | None
    family: int


class _Address(NamedTuple):
    family: socket.AddressFamily
    ip: str
    scope_id: int


def _parse_literal(text: str) -> _Address | None:
    """``text`` as an IP address (IPv6 may carry ``%scope``), or None if it is a name."""
    try:
        return _Address(socket.AF_INET, socket.inet_ntop(socket.AF_INET, _pton4(text)), 0)
    except OSError:
        pass
    ip, _, scope = text.partition("%")
    try:
        packed = socket.inet_pton(socket.AF_INET6, ip)
    except OSError:
        return None
    scope_id = 0
    if scope:
        try:
            scope_id = int(scope) if scope.isdigit() else socket.if_nametoindex(scope)
        except OSError:
            return None
    return _Address(socket.AF_INET6, socket.inet_ntop(socket.AF_INET6, packed), scope_id)


def _pton4(text: str) -> bytes:
    # inet_pton, not inet_aton: only the dotted-quad form, no "127.1" shorthands.
    return socket.inet_pton(socket.AF_INET, text)


def _normalize_name(host: str) -> str:
    return host.lower().removesuffix(".")


_SERVICE_FALLBACK = {"http": 80, "https": 443}


class StaticResolver:
    """A stand-in for :func:`socket.getaddrinfo` answering from a fixed table.

    ``mapping`` maps names (case-insensitive, trailing dot ignored) to IP literals,
    returned in the given order; an IPv6 literal may carry a zone, e.g.
    ``fe80::1%lo`` (the interface name is turned into its index). IP literals
    passed as the host are returned as themselves, like getaddrinfo does.

    Names not in the table go to ``fallback`` (a getaddrinfo-like callable) if
    given, else fail with ``gaierror(EAI_NONAME)``. The system resolver is never
    asked. :func:`localhost_fallback` answers ``localhost``.

    Deviations from the real thing, on purpose: addresses come back in table order
    (no RFC 6724 sorting); ``type=0`` returns SOCK_STREAM entries only; the flags
    AI_ADDRCONFIG, AI_V4MAPPED and AI_ALL are ignored; IPv4 shorthands like
    ``127.1`` are names, not literals. Non-ASCII names match only as written: put
    the ``xn--`` form in the table if the code under test encodes names.

    Knobs (attributes, may be changed while in use):

    - ``delay``: seconds every name lookup takes; ``delays`` overrides it per
      requested ``family`` argument (``socket.AF_INET``, ``socket.AF_INET6``, or
      ``0`` for AF_UNSPEC queries).
    - ``hang``: name lookups block until :meth:`release` (or ``hang_timeout``
      seconds, then ``gaierror(EAI_AGAIN)``).

    ``calls`` lists a :class:`ResolverCall` per call (unless ``record_calls`` is
    false), except AI_NUMERICHOST probes (which cannot be name lookups);
    :meth:`wait_for_calls` waits for them.
    Using the resolver as a context manager releases it on exit.
    """

    def __init__(
        self,
        mapping: Mapping[str, str | Sequence[str]] | None = None,
        *,
        delay: float = 0.0,
        delays: Mapping[int, float] | None = None,
        hang: bool = False,
        hang_timeout: float = 30.0,
        fallback: GetAddrInfo | None = None,
        record_calls: bool = True,
    ) -> None:
        self._table: dict[str, list[_Address]] = {}
        for name, addresses in (mapping or {}).items():
            self.set_addresses(name, addresses)
        self.delay = delay
        self.delays: dict[int, float] = dict(delays or {})
        self.hang = hang
        self.hang_timeout = hang_timeout
        self.fallback = fallback
        self.record_calls = record_calls
        self.calls: list[ResolverCall] = []
        self._released = threading.Event()
        self._calls_changed = threading.Condition()

    def set_addresses(self, name: str, addresses: str | Sequence[str]) -> None:
        """Map ``name`` to ``addresses`` (IP literals), replacing any previous entry."""
        if isinstance(addresses, str):
            addresses = [addresses]
        parsed = []
        for text in addresses:
            address = _parse_literal(text)
            if address is None:
                raise ValueError(f"not an IP literal: {text!r}")
            parsed.append(address)
        self._table[_normalize_name(name)] = parsed

    def release(self) -> None:
        """Let every hanging lookup (now and later) go on."""
        self._released.set()

    def wait_for_calls(self, count: int = 1, timeout: float = 5.0) -> bool:
        """Wait until ``calls`` has at least ``count`` entries; whether it got there."""
        with self._calls_changed:
            return self._calls_changed.wait_for(lambda: len(self.calls) >= count, timeout)

    def __enter__(self) -> StaticResolver:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def __call__(  # noqa: PLR0917 (socket.getaddrinfo's signature)
        self,
        host: bytes | str | None,
        port: bytes | str | int | None,
        family: int = 0,
        type: int = 0,
        proto: int = 0,
        flags: int = 0,
    ) -> AddrInfoList:
        if isinstance(host, bytes):
            host = host.decode("ascii")
        if self.record_calls and not flags & socket.AI_NUMERICHOST:
            with self._calls_changed:
                self.calls.append(ResolverCall(host, port, family))
                self._calls_changed.notify_all()
        if family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6):
            raise socket.gaierror(socket.EAI_FAMILY, "ai_family not supported")
        kind, protocol = _socket_kind(type)
        port_number = getaddrinfo_port(port, kind, flags, _SERVICE_FALLBACK)

        if host is None:
            # Like getaddrinfo: the loopback addresses, or wildcards for a server.
            wildcard = flags & socket.AI_PASSIVE
            texts = ["0.0.0.0", "::"] if wildcard else ["::1", "127.0.0.1"]
            addresses = [a for a in map(_parse_literal, texts) if a is not None]
        elif (literal := _parse_literal(host)) is not None:
            if family not in (socket.AF_UNSPEC, literal.family):
                raise socket.gaierror(
                    socket.EAI_ADDRFAMILY, "Address family for hostname not supported"
                )
            addresses = [literal]
        elif flags & socket.AI_NUMERICHOST:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        else:
            self._stall(family)
            table_entry = self._table.get(_normalize_name(host))
            if table_entry is None:
                if self.fallback is None:
                    raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
                return self.fallback(host, port, family, type, proto, flags)
            addresses = table_entry

        canonname = host if host is not None and flags & socket.AI_CANONNAME else ""
        result: AddrInfoList = []
        for address in addresses:
            if family not in (socket.AF_UNSPEC, address.family):
                continue
            name = canonname if not result else ""
            if address.family == socket.AF_INET6:
                sockaddr6 = (address.ip, port_number, 0, address.scope_id)
                result.append((socket.AF_INET6, kind, protocol, name, sockaddr6))
            else:
                result.append((socket.AF_INET, kind, protocol, name, (address.ip, port_number)))
        if not result:
            # What glibc says for a name without addresses in the requested family.
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return result

    def _stall(self, family: int) -> None:
        delay = self.delays.get(family, self.delay)
        if delay > 0:
            time.sleep(delay)
        if self.hang and not self._released.wait(self.hang_timeout):
            raise socket.gaierror(socket.EAI_AGAIN, "Temporary failure in name resolution")


def _socket_kind(type: int) -> tuple[socket.SocketKind, int]:
    if type in (0, socket.SOCK_STREAM):
        return socket.SOCK_STREAM, socket.IPPROTO_TCP
    if type == socket.SOCK_DGRAM:
        return socket.SOCK_DGRAM, socket.IPPROTO_UDP
    raise socket.gaierror(socket.EAI_SOCKTYPE, "ai_socktype not supported")


def localhost_fallback(  # noqa: PLR0917 (socket.getaddrinfo's signature)
    host: bytes | str | None,
    port: bytes | str | int | None,
    family: int = 0,
    type: int = 0,
    proto: int = 0,
    flags: int = 0,
) -> AddrInfoList:
    """A :class:`StaticResolver` ``fallback`` that answers ``localhost`` with 127.0.0.1.

    It never asks the system resolver: with ``hosts: files dns`` an AAAA lookup of
    ``localhost`` that /etc/hosts cannot answer goes to the (non-loopback) DNS
    server. Every other name fails with ``gaierror(EAI_NONAME)``.
    """
    return _LOCALHOST(host, port, family, type, proto, flags)


_LOCALHOST = StaticResolver({"localhost": ["127.0.0.1"]}, record_calls=False)
_LITERALS_AND_LOCALHOST = _LOCALHOST


@contextlib.contextmanager
def patch_getaddrinfo(resolver: GetAddrInfo) -> Iterator[GetAddrInfo]:
    """Replace ``socket.getaddrinfo`` process-wide with ``resolver`` for the block.

    Stock urllib3, requests, httpx/httpcore, asyncio, anyio and trio all look the
    function up at call time, so they see the resolver's names. The previous
    function is restored on exit (so patches nest), and a :class:`StaticResolver`
    is released, so no thread stays blocked in a hanging lookup.
    """
    previous = socket.getaddrinfo
    socket.getaddrinfo = resolver
    try:
        yield resolver
    finally:
        socket.getaddrinfo = previous
        if isinstance(resolver, StaticResolver):
            resolver.release()


# --------------------------------------------------------------------------- scenarios

#: Which family works and how the other one is broken.
ScenarioKind: TypeAlias = Literal[
    "blackholed-v6", "refused-v6", "mute-v6", "blackholed-v4", "refused-v4", "mute-v4"
]


@dataclasses.dataclass(frozen=True)
class DualStack:
    """One port number, served on one loopback address and broken on the other.

    ``addresses`` is ``["::1", "127.0.0.1"]`` (IPv6 first, as RFC 6724 sorts
    them), ready for a :class:`StaticResolver` table.
    """

    kind: ScenarioKind
    port: int
    server: HTTPServer
    #: The Blackhole on the broken address, or None when it refuses instead.
    blackhole: Blackhole | None
    working_host: str
    broken_host: str
    #: For ``"mute-*"``: the server on the broken address, which accepts TCP and then
    #: never answers (``handshake="mute"``).
    mute: HTTPServer | None = None

    @property
    def addresses(self) -> list[str]:
        return ["::1", "127.0.0.1"]

    def url(self, name: str, path: str = "/") -> str:
        """The URL of ``path`` on this scenario's port under host name ``name``."""
        scheme = self.server.url.partition(":")[0]
        return f"{scheme}://{_url_host(name)}:{self.port}{path}"


@contextlib.contextmanager
def blackholed_everywhere() -> Iterator[int]:
    """One port number P blackholed on both 127.0.0.1 and [::1]: every address dead."""
    for _ in range(50):
        with Blackhole("127.0.0.1") as v4:
            try:
                v6 = Blackhole("::1", v4.port)
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue  # the same number is taken on the other family: retry
                raise
            with v6:
                yield v4.port
            return
    raise RuntimeError("no port free on both 127.0.0.1 and ::1")


@contextlib.contextmanager
def dual_stack(
    kind: ScenarioKind = "blackholed-v6", ssl_context: ssl.SSLContext | None = None
) -> Iterator[DualStack]:
    """An :class:`HTTPServer` on one loopback address and a broken port with the
    same number on the other, e.g. for ``"blackholed-v6"``: the server on
    127.0.0.1:P and a :class:`Blackhole` on [::1]:P; for ``"mute-v6"``, a server on
    [::1]:P that accepts TCP and never answers (``HTTPServer(handshake="mute")``).
    """
    broken_family, how = kind.split("-")[1], kind.split("-")[0]
    working_host, broken_host = (
        ("127.0.0.1", "::1") if broken_family == "v6" else ("::1", "127.0.0.1")
    )
    for _ in range(50):
        with contextlib.ExitStack() as stack:
            server = stack.enter_context(HTTPServer(working_host, ssl_context=ssl_context))
            blackhole: Blackhole | None = None
            mute: HTTPServer | None = None
            try:
                if how == "blackholed":
                    blackhole = stack.enter_context(Blackhole(broken_host, server.port))
                elif how == "mute":
                    mute = stack.enter_context(
                        HTTPServer(broken_host, server.port, ssl_context, handshake="mute")
                    )
                else:
                    stack.enter_context(refused_port(broken_host, server.port))
            except OSError as exc:
                if exc.errno == errno.EADDRINUSE:
                    continue  # the same number is taken on the other family: retry
                raise
            yield DualStack(kind, server.port, server, blackhole, working_host, broken_host, mute)
            return
    raise RuntimeError(f"no port free on both {working_host} and {broken_host}")
