"""The error hierarchy: one class per way a call can fail, all of them `OSError`.

Each maps to one of WSAConnectByName's documented errors and carries the matching
``errno``, so code that inspects ``errno`` (or catches `OSError`, `TimeoutError` or
`ValueError`) keeps working.
"""

from __future__ import annotations

import errno as _errno
import socket
from collections.abc import Iterable
from typing import Any, ClassVar

from ._info import Attempt


class ConnectByNameError(OSError):
    """Base class of every error this library raises.

    ``attempts`` holds the record of every attempt the call made (possibly none);
    ``nodename`` and ``servicename`` are what the caller asked for. When attempts
    failed, ``__cause__`` is an `ExceptionGroup` of their errors.
    """

    default_errno: ClassVar[int] = 0

    def __init__(
        self,
        message: str,
        *,
        nodename: object = None,
        servicename: object = None,
        attempts: Iterable[Attempt] = (),
        errno: int | None = None,
    ) -> None:
        super().__init__(self.default_errno if errno is None else errno, message)
        self.nodename = nodename
        self.servicename = servicename
        self.attempts: tuple[Attempt, ...] = tuple(attempts)

    def __reduce__(self) -> tuple[Any, ...]:
        # OSError pickles as cls(errno, strerror), which does not fit our signature.
        return (_rebuild, (type(self), self.strerror, self.errno), self.__dict__)


def _rebuild(cls: type[ConnectByNameError], message: str, errno: int) -> ConnectByNameError:
    return cls(message, errno=errno)


class InvalidParameterError(ConnectByNameError, ValueError):
    """A parameter is missing, of the wrong type or out of range (``EINVAL``, WSAEINVAL)."""

    default_errno = _errno.EINVAL


class NotASocketError(ConnectByNameError):
    """The supplied socket is closed or not a socket (``ENOTSOCK``, WSAENOTSOCK)."""

    default_errno = _errno.ENOTSOCK


class NameResolutionError(ConnectByNameError):
    """The name or the service could not be resolved; ``errno`` is the resolver's
    ``EAI_*`` code, and ``__cause__`` the resolver's own error."""

    default_errno = socket.EAI_NONAME


class HostUnreachableError(ConnectByNameError):
    """Every address was tried (or skipped) and none connected (``EHOSTUNREACH``,
    WSAEHOSTUNREACH)."""

    default_errno = _errno.EHOSTUNREACH


class RefusedError(HostUnreachableError, ConnectionRefusedError):
    """Every address tried refused the connection (``ECONNREFUSED``): the host is up,
    nothing listens on that port. A `HostUnreachableError` too, as WSAConnectByName
    reports it."""

    default_errno = _errno.ECONNREFUSED


class TLSError(HostUnreachableError):
    """Every address was tried and none completed its TLS handshake, at least one
    having failed in TLS (``ECONNABORTED``); ``__cause__`` holds the handshakes' errors.
    A `HostUnreachableError` too: the host could not be reached over TLS."""

    default_errno = _errno.ECONNABORTED


class CertificateError(ConnectByNameError):
    """The server's certificate failed verification (``EACCES``): the call ends at
    once, whatever the other addresses might say, so that racing can never become a
    way around a verification failure; ``__cause__`` is the ``ssl`` error (an
    ``ssl.SSLCertVerificationError``) or the client's own check's error."""

    default_errno = _errno.EACCES


class TimedOutError(ConnectByNameError, TimeoutError):
    """The call's timeout ran out before a connection was made (``ETIMEDOUT``,
    WSAETIMEDOUT); it bounds name resolution and every attempt together."""

    default_errno = _errno.ETIMEDOUT


class OutOfResourcesError(ConnectByNameError):
    """No socket could be made: out of descriptors or buffers (``EMFILE``, ``ENFILE``,
    ``ENOBUFS`` or ``ENOMEM``, WSAENOBUFS)."""

    default_errno = _errno.ENOBUFS


class PolicyDenial(Exception):
    """What every refusal by the address policy is, whichever client raised it: the
    engine's `AddressDeniedError` and each adapter's ``ConnectByNameAddressDeniedError``.
    Catch it to handle a refusal the same way across clients. Its ``attempts`` are the
    call's attempt records (the denied addresses among them)."""

    attempts: tuple[Attempt, ...]


class AddressDeniedError(ConnectByNameError, PermissionError, PolicyDenial):
    """The address policy refused every address the name resolved to, or the name or
    port itself (``EACCES``).

    Not a connect error to retry: the same name will be refused again."""

    default_errno = _errno.EACCES


def handshake_error(error: ConnectByNameError) -> OSError | None:
    """What a client's own TLS handshake would have raised, for a call that failed in
    TLS: a fresh copy of the verification error (`CertificateError`) or of the first
    failed handshake's error (`TLSError`), for an adapter to raise as its client would
    (``None`` for any other error, or a `TLSError` whose every failure was in TCP).

    A copy, so that raising it (and chaining it to ``error``) changes nothing that the
    call's records and listeners already hold."""
    found: BaseException | None = None
    if isinstance(error, CertificateError):
        found = error.__cause__
    elif isinstance(error, TLSError):
        found = next((a.error for a in error.attempts if a.tcp is not None and a.error), None)
    if not isinstance(found, OSError):
        return None
    copy = type(found)(*found.args)
    for name in ("reason", "library", "verify_code", "verify_message"):
        if hasattr(found, name):
            setattr(copy, name, getattr(found, name))
    return copy
