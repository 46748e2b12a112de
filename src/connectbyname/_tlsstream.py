"""An established TLS connection as an anyio stream, on asyncio and on trio.

The race makes each attempt's TLS handshake itself, on a non-blocking `ssl.SSLSocket`
(see ``_race``), so the winner comes out with its handshake done. anyio's
``TLSStream`` cannot take that over: it makes its own handshake over memory BIOs. This
stream reads and writes the winner's `ssl.SSLSocket` directly, waiting on its
descriptor in the event loop (``anyio.wait_readable`` and ``wait_writable``) whenever
TLS asks for more.

Imported only for a call that asks for TLS: anyio is not a dependency of the package.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.abc
import anyio.lowlevel
from anyio.streams.tls import TLSAttribute

_EOF = (ssl.SSLZeroReturnError, ssl.SSLEOFError)


class TLSSocketStream(anyio.abc.SocketStream):
    """An anyio `~anyio.abc.SocketStream` over a connected `ssl.SSLSocket` whose
    handshake is complete. Besides the socket attributes it offers anyio's
    `~anyio.streams.tls.TLSAttribute` ones, ``ssl_object`` being the `ssl.SSLSocket`
    (it has the `ssl.SSLObject` methods). ``send_eof`` is not supported (TLS has no
    half-close), as with anyio's own TLS streams; closing does not wait for the peer's
    close_notify (anyio's ``standard_compatible=False``, as HTTPS clients do)."""

    def __init__(self, sock: ssl.SSLSocket) -> None:
        sock.setblocking(False)
        self._sock = sock
        # As the handshake ended: OpenSSL forgets the version once the peer closes.
        self._version = sock.version()
        self._alpn = sock.selected_alpn_protocol()
        self._receiving = False
        self._sending = False

    @property
    def _raw_socket(self) -> ssl.SSLSocket:
        return self._sock

    async def receive(self, max_bytes: int = 65536) -> bytes:
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self._receiving:
            raise anyio.BusyResourceError("receiving from")
        self._receiving = True
        try:
            while True:
                self._check_open()
                try:
                    data = self._sock.recv(max_bytes)
                except ssl.SSLWantReadError:
                    await anyio.wait_readable(self._sock)
                except ssl.SSLWantWriteError:
                    await anyio.wait_writable(self._sock)
                except _EOF:
                    raise anyio.EndOfStream from None
                except OSError as exc:
                    raise anyio.BrokenResourceError from exc
                else:
                    if not data:
                        raise anyio.EndOfStream
                    await anyio.lowlevel.cancel_shielded_checkpoint()
                    return data
        finally:
            self._receiving = False

    async def send(self, item: bytes) -> None:
        await anyio.lowlevel.checkpoint_if_cancelled()
        if self._sending:
            raise anyio.BusyResourceError("sending to")
        self._sending = True
        try:
            view = memoryview(item)
            while view:
                self._check_open()
                try:
                    view = view[self._sock.send(view) :]
                except ssl.SSLWantWriteError:
                    await anyio.wait_writable(self._sock)
                except ssl.SSLWantReadError:
                    await anyio.wait_readable(self._sock)
                except OSError as exc:
                    raise anyio.BrokenResourceError from exc
        finally:
            self._sending = False
        await anyio.lowlevel.cancel_shielded_checkpoint()

    async def send_eof(self) -> None:
        raise NotImplementedError("TLS has no half-close: send_eof() is not supported")

    async def aclose(self) -> None:
        if self._sock.fileno() >= 0:
            # Wakes (with ClosedResourceError) a task waiting on the descriptor, before
            # it is closed and its number can be reused.
            anyio.notify_closing(self._sock)
            self._sock.close()
        await anyio.lowlevel.checkpoint()

    def _check_open(self) -> None:
        if self._sock.fileno() < 0:
            raise anyio.ClosedResourceError

    @property
    def extra_attributes(self) -> Mapping[Any, Callable[[], Any]]:
        sock = self._sock
        return {
            **super().extra_attributes,
            TLSAttribute.alpn_protocol: lambda: self._alpn,
            TLSAttribute.cipher: sock.cipher,
            TLSAttribute.peer_certificate: lambda: sock.getpeercert(False),
            TLSAttribute.peer_certificate_binary: lambda: sock.getpeercert(True),
            TLSAttribute.server_side: lambda: sock.server_side,
            TLSAttribute.shared_ciphers: sock.shared_ciphers,
            TLSAttribute.ssl_object: lambda: sock,
            TLSAttribute.standard_compatible: lambda: False,
            TLSAttribute.tls_version: lambda: self._version,
        }
