"""Checks every parameter of a call before anything touches the network.

Bad input fails here, at once, with `InvalidParameterError` (or `NameResolutionError`
for a service name the services database does not know): never later, deep inside a
socket call or a resolver thread. What comes out is checked once and immutable:

- a `Target`: where to connect (the name or literal, the port);
- an `Options`: the engine's settings (`EngineOptions`), which an adapter checks once
  when it is built and then passes to every connect;
- a `CallOptions`: what a client gives per connection (timeout, source address,
  socket options).
"""

from __future__ import annotations

import contextlib
import functools
import math
import socket
import ssl
import weakref
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Final, TypedDict

import idna

from ._errors import InvalidParameterError, NameResolutionError
from ._events import EventListener
from ._history import DEFAULT_HISTORY, ConnectionHistory
from ._info import Candidate
from ._policy import Policy
from ._resolve import Resolver

#: RFC 8305 section 5: the recommended Connection Attempt Delay.
DEFAULT_ATTEMPT_DELAY: Final = 0.25
#: RFC 8305 section 3: the recommended Resolution Delay.
DEFAULT_RESOLUTION_DELAY: Final = 0.05
#: RFC 8305 section 8: the Connection Attempt Delay "MUST NOT" go below 10 ms.
MIN_ATTEMPT_DELAY: Final = 0.01

#: Used when the services database is missing (slim containers ship without
#: /etc/services), so that the names every HTTP client passes keep working.
FALLBACK_SERVICES = {"http": 80, "https": 443, "ws": 80, "wss": 443, "http-alt": 8080}

#: A socket option as ``setsockopt`` takes it: ``(level, option, int or bytes)``, or
#: ``(level, option, None, length)`` (httpcore's form for an option without a value).
SocketOption = tuple[int, int, int | bytes] | tuple[int, int, None, int]

_C_INT = range(-(2**31), 2**31)


class EngineOptions(TypedDict, total=False):
    """The engine's options, which every adapter takes next to its client's own
    arguments (see `connect_by_name` for what each means)."""

    attempt_delay: float | None
    family: int
    resolver: Resolver | None
    resolution_delay: float
    history: ConnectionHistory | bool
    policy: Policy | None
    listener: EventListener | None


#: The names of `EngineOptions`.
ENGINE_OPTIONS: tuple[str, ...] = tuple(EngineOptions.__annotations__)


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: ``host`` is the ASCII name to resolve, or the literal's text;
    ``nodename`` and ``servicename`` are what the caller gave, for error messages."""

    host: str
    port: int
    #: For an IP literal, the one candidate address, so no resolver is ever asked.
    literal: Candidate | None
    nodename: object
    servicename: object


@dataclass(frozen=True, slots=True)
class Options:
    """The engine's settings, checked (see `check_options`)."""

    attempt_delay: float | None = DEFAULT_ATTEMPT_DELAY
    family: socket.AddressFamily = socket.AF_UNSPEC
    resolver: Resolver | None = None
    resolution_delay: float = DEFAULT_RESOLUTION_DELAY
    history: ConnectionHistory | None = DEFAULT_HISTORY
    policy: Policy | None = None
    listener: EventListener | None = None


@dataclass(frozen=True, slots=True)
class TLSOptions:
    """TLS for every attempt (checked, see `check_call`): the connection is made when
    a handshake completes (Happy Eyeballs v3 section 6.1)."""

    context: ssl.SSLContext
    #: The name sent as SNI and checked against the certificate.
    server_hostname: str | None
    #: A client's own checks after the handshake (urllib3's ``assert_fingerprint``, a
    #: hostname it matches itself): raising fails verification, which ends the call.
    check: Callable[[ssl.SSLSocket], None] | None = None

    def __post_init__(self) -> None:
        # The race wraps each attempt's socket with it and needs an ssl.SSLSocket back
        # (another library's context, or a mock, would take the socket and leak it).
        if not isinstance(self.context, ssl.SSLContext):
            raise TypeError(f"an ssl.SSLContext is needed, not {type(self.context).__name__}")


@dataclass(frozen=True, slots=True)
class CallOptions:
    """What a client gives per connection, checked (see `check_call`)."""

    timeout: float | None = None
    source_address: tuple[str, int] | None = None
    #: The family of ``source_address``'s host (``None``: no host, any family).
    source_family: socket.AddressFamily | None = None
    socket_options: tuple[SocketOption, ...] = ()
    #: Whether the connection will carry HTTPS: the HTTPS record is then asked for
    #: (its address hints, port and ALPN; RFC 9460), with the name's A and AAAA.
    https: bool = False
    #: TLS on every attempt, or ``None``.
    tls: TLSOptions | None = None


DEFAULT_OPTIONS: Final = Options()
#: The port whose TLS connections ask for the name's HTTPS record (RFC 9460: the
#: https scheme's default port) when the caller does not say the scheme.
HTTPS_PORT: Final = 443
NO_CALL_OPTIONS: Final = CallOptions()


def describe(target: Target) -> str:
    """The target's host for messages: as the caller wrote it, with the name asked for
    in parentheses when that differs (an IDNA-encoded Unicode name)."""
    given = target.nodename
    if isinstance(given, bytes):
        given = given.decode("ascii", "replace")
    if given == target.host or not isinstance(given, str) or target.literal is not None:
        return target.host
    return f"{given} ({target.host})"


def _invalid(message: str, nodename: object, servicename: object) -> InvalidParameterError:
    return InvalidParameterError(message, nodename=nodename, servicename=servicename)


# ---------------------------------------------------------------------------- target


def parse_target(nodename: object, servicename: object) -> Target:
    """Validate ``nodename`` and ``servicename`` and turn them into a `Target`."""
    # Most programs connect to a handful of places: their targets are remembered. The
    # key holds strings and ints only, so it keeps nothing of the caller's alive.
    key = (nodename, servicename, type(servicename))
    try:
        return _targets[key]
    except (KeyError, TypeError):
        pass
    target = _parse_target(nodename, servicename)
    # A scope is looked up again on every call: interfaces come and go.
    literal = target.literal
    if type(nodename) is str and (literal is None or literal.address[3:] in ((), (0,))):
        if len(_targets) >= _TARGETS_SIZE:
            del _targets[next(iter(_targets))]  # the oldest
        _targets[key] = target
    return target


_TARGETS_SIZE = 256
_targets: dict[tuple[object, object, type], Target] = {}


def _parse_target(nodename: object, servicename: object) -> Target:
    port = parse_service(nodename, servicename)
    if isinstance(nodename, bytes):
        # The ANSI form of the Windows call: bytes must be plain ASCII.
        try:
            name = nodename.decode("ascii")
        except UnicodeDecodeError:
            raise _invalid("nodename bytes must be ASCII", nodename, servicename) from None
    elif isinstance(nodename, str):
        name = nodename
    else:
        raise _invalid(
            f"nodename must be a str, not {type(nodename).__name__}", nodename, servicename
        )
    if not name:
        raise _invalid("nodename must not be empty", nodename, servicename)
    if not name.isprintable() or " " in name:
        raise _invalid(
            "nodename must not contain spaces or control characters", nodename, servicename
        )
    literal = _parse_literal(name, port, nodename, servicename)
    if literal is not None:
        return Target(literal.address[0], port, literal, nodename, servicename)
    return Target(_encode_name(name, nodename, servicename), port, None, nodename, servicename)


def _parse_literal(text: str, port: int, nodename: object, servicename: object) -> Candidate | None:
    # inet_pton, not ipaddress: as strict (dotted quads only, no leading zeros) and
    # several times faster on a path every call of a literal takes.
    bracketed = text[0] == "[" and text[-1] == "]"
    if bracketed:
        text = text[1:-1]
    elif ":" not in text:
        try:
            socket.inet_pton(socket.AF_INET, text)
        except OSError:
            return None  # "127.1" and the like are names: the resolver decides
        return Candidate(socket.AF_INET, (text, port))
    host, _, scope = text.partition("%")
    try:
        packed = socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        raise _invalid(f"{text!r} is not a valid IPv6 address", nodename, servicename) from None
    scope_id = _scope_id(scope, nodename, servicename) if scope else 0
    return Candidate(
        socket.AF_INET6, (socket.inet_ntop(socket.AF_INET6, packed), port, 0, scope_id)
    )


def _scope_id(scope: str, nodename: object, servicename: object) -> int:
    if scope.isascii() and scope.isdigit():
        scope_id = int(scope)
        if scope_id < 2**32:
            return scope_id
        raise _invalid(f"scope id {scope} is out of range", nodename, servicename)
    try:
        return socket.if_nametoindex(scope)
    except (OSError, ValueError):
        raise _invalid(f"no network interface named {scope!r}", nodename, servicename) from None


def _encode_name(name: str, nodename: object, servicename: object) -> str:
    """Return the name as DNS wants it: ASCII labels, IDNA-encoded per UTS 46 if needed."""
    bare = name[:-1] if name.endswith(".") else name
    if bare.isascii():
        # ASCII names pass through untouched: /etc/hosts and many networks use names
        # (underscores, for one) that strict IDNA would refuse.
        ascii_name = bare
    else:
        try:
            ascii_name = idna.encode(bare, uts46=True, transitional=False).decode("ascii")
        except (idna.IDNAError, UnicodeError) as exc:
            raise _invalid(
                f"{name!r} cannot be encoded as IDNA: {exc}", nodename, servicename
            ) from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or any(not 0 < len(label) <= 63 for label in labels):
        raise _invalid(
            f"{name!r} is not a valid host name (at most 253 bytes, labels of 1 to 63)",
            nodename,
            servicename,
        )
    # The trailing dot means "fully qualified" to the resolver: keep it.
    return ascii_name + "." if name.endswith(".") else ascii_name


def parse_service(nodename: object, servicename: object) -> int:
    """Return the port for a port number (int or digits) or a service name."""
    service = servicename
    if isinstance(service, bytes):
        try:
            service = service.decode("ascii")
        except UnicodeDecodeError:
            raise _invalid("servicename bytes must be ASCII", nodename, servicename) from None
    if isinstance(service, int) and not isinstance(service, bool):
        port = service
    elif isinstance(service, str) and service.isascii() and service.isdigit():
        if len(service) > 5:
            raise _invalid(f"port {service} is out of range (1 to 65535)", nodename, servicename)
        port = int(service)
    elif isinstance(service, str):
        if (
            not service
            or len(service) > 64
            or not service.isascii()
            or not service.isprintable()
            or any(c.isspace() for c in service)
        ):
            raise _invalid(f"{service!r} is not a service name", nodename, servicename)
        return _lookup_service(service, nodename)
    else:
        raise _invalid(
            f"servicename must be a port (int or str), not {type(service).__name__}",
            nodename,
            servicename,
        )
    if not 0 < port <= 65535:
        raise _invalid(f"port {port} is out of range (1 to 65535)", nodename, servicename)
    return port


def _lookup_service(name: str, nodename: object) -> int:
    port = _services_database(name.lower())
    if port is None:
        raise NameResolutionError(
            f"unknown service {name!r}",
            nodename=nodename,
            servicename=name,
            errno=socket.EAI_SERVICE,
        )
    return port


@functools.lru_cache(maxsize=64)
def _services_database(name: str) -> int | None:
    try:
        return socket.getservbyname(name, "tcp")
    except OSError:
        return FALLBACK_SERVICES.get(name)


# ---------------------------------------------------------------------------- options

_Invalid = Callable[[str], InvalidParameterError]


def check_options(
    *,
    attempt_delay: object = DEFAULT_ATTEMPT_DELAY,
    family: object = socket.AF_UNSPEC,
    resolver: object = None,
    resolution_delay: object = DEFAULT_RESOLUTION_DELAY,
    history: object = True,
    policy: object = None,
    listener: object = None,
    nodename: object = None,
    servicename: object = None,
) -> Options:
    """Check the engine's options (see `connect_by_name` for each) into an `Options`."""
    # The common call passes nothing of its own: no check, no new object; nor does one
    # that passes the same listener as the call before (the options made then).
    if (
        attempt_delay == DEFAULT_ATTEMPT_DELAY
        and type(attempt_delay) is float
        and family == socket.AF_UNSPEC
        and type(family) in (int, socket.AddressFamily)
        and resolver is None
        and resolution_delay == DEFAULT_RESOLUTION_DELAY
        and type(resolution_delay) is float
        and history is True
        and policy is None
    ):
        if listener is None:
            return DEFAULT_OPTIONS
        last = _listener_options
        if last is not None and last[0]() is listener:
            return last[1]
        if isinstance(listener, EventListener):
            return _remember_listener_options(listener)

    def invalid(message: str) -> InvalidParameterError:
        return _invalid(message, nodename, servicename)

    delay = _seconds("attempt_delay", attempt_delay, invalid, rule=ATTEMPT_DELAY_RULE)
    if delay is not None and not MIN_ATTEMPT_DELAY <= delay < math.inf:
        raise invalid(ATTEMPT_DELAY_RULE)
    if (
        not isinstance(family, int)
        or isinstance(family, bool)
        or family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6)
    ):
        raise invalid("family must be AF_UNSPEC, AF_INET or AF_INET6")
    checked_delay = _seconds("resolution_delay", resolution_delay, invalid, allow_zero=True)
    if checked_delay is None or checked_delay == math.inf:
        raise invalid("resolution_delay must be a finite number of seconds, 0 or more")
    if history is True:
        checked_history: ConnectionHistory | None = DEFAULT_HISTORY
    elif history is False or history is None:
        checked_history = None
    elif isinstance(history, ConnectionHistory):
        checked_history = history
    else:
        raise invalid("history must be True, False or a ConnectionHistory")
    if resolver is not None and not callable(resolver):
        raise invalid("resolver must be None or a callable like socket.getaddrinfo")
    if policy is not None and not callable(policy):
        raise invalid("policy must be None or a callable such as an AddressPolicy")
    if listener is not None and not isinstance(listener, EventListener):
        raise invalid("listener must be None or an EventListener")
    return Options(
        delay,
        socket.AddressFamily(family),
        resolver,
        checked_delay,
        checked_history,
        policy,
        listener,
    )


def _remember_listener_options(listener: EventListener) -> Options:
    """The default options with ``listener``, remembered for the next call."""
    global _listener_options  # noqa: PLW0603 (one tuple, replaced in one step)
    options = Options(listener=listener)
    with contextlib.suppress(TypeError):  # not weakly referenceable: not remembered
        _listener_options = (weakref.ref(listener), options)
    return options


#: The options of the last call that gave a listener and nothing else: a weak reference
#: to the listener (the cache must not keep it alive) and the options.
_listener_options: tuple[weakref.ref[EventListener], Options] | None = None


#: The rule for ``attempt_delay``, in the words every message uses.
ATTEMPT_DELAY_RULE: Final = (
    f"attempt_delay must be at least {MIN_ATTEMPT_DELAY} seconds (RFC 8305) and finite, "
    "or None for one address at a time"
)


def options_from(options: Mapping[str, object]) -> Options:
    """`check_options` for the engine options an adapter was given by name: unknown
    names are a `TypeError` (as for any function), bad values `InvalidParameterError`,
    both at once, so an adapter fails where it is built, not at its first request."""
    unknown = sorted(set(options) - set(ENGINE_OPTIONS))
    if unknown:
        raise TypeError(
            f"unknown engine option(s): {', '.join(unknown)} "
            f"(the engine's options are {', '.join(ENGINE_OPTIONS)})"
        )
    return check_options(**options)


def check_call(
    timeout: object,
    source_address: object = None,
    socket_options: object = (),
    *,
    https: bool = False,
    tls: TLSOptions | None = None,
    nodename: object = None,
    servicename: object = None,
) -> CallOptions:
    """Check what a client gives per connection into a `CallOptions`."""
    plain = source_address is None and not https and tls is None
    if plain and (socket_options == () or socket_options is None):
        if timeout is None:
            return NO_CALL_OPTIONS
        if type(timeout) is float and 0 < timeout < math.inf:
            return _plain_call(timeout, ())

    def invalid(message: str) -> InvalidParameterError:
        return _invalid(message, nodename, servicename)

    checked = _seconds("timeout", timeout, invalid)
    source, source_family = _source(source_address, invalid)
    seconds = None if checked == math.inf else checked
    options = _socket_options(socket_options, invalid)
    if plain:
        return _plain_call(seconds, options)
    return CallOptions(seconds, source, source_family, options, https, tls)


def _plain_call(timeout: float | None, socket_options: tuple[SocketOption, ...]) -> CallOptions:
    """The options of a call with these (checked) ``timeout`` and ``socket_options`` and
    nothing else: the last call's, when they are equal, else new ones, remembered for
    the next call. Clients pass the same ones call after call (urllib3 its
    ``TCP_NODELAY``), and a frozen dataclass costs about as much to build as the checks
    themselves."""
    global _plain_options  # noqa: PLW0603 (one object, replaced in one step)
    last = _plain_options
    if last.timeout == timeout and last.socket_options == socket_options:
        return last
    _plain_options = CallOptions(timeout, socket_options=socket_options)
    return _plain_options


#: The options of the last call that gave a timeout and socket options only (numbers
#: and bytes: the cache holds nothing alive).
_plain_options: CallOptions = NO_CALL_OPTIONS


def check_tls(
    ssl_context: object,
    server_hostname: object,
    *,
    host: str,
    nodename: object = None,
    servicename: object = None,
) -> TLSOptions | None:
    """``ssl_context`` and ``server_hostname`` (``None``: the name connected to, as
    given; never the address that wins) checked into a `TLSOptions`."""
    if ssl_context is None:
        if server_hostname is not None:
            raise _invalid("server_hostname needs an ssl_context", nodename, servicename)
        return None
    if not isinstance(ssl_context, ssl.SSLContext):
        raise _invalid(
            f"ssl_context must be an ssl.SSLContext, not {type(ssl_context).__name__}",
            nodename,
            servicename,
        )
    if server_hostname is None:
        server_hostname = host.rstrip(".")
    elif not isinstance(server_hostname, str) or not server_hostname:
        raise _invalid("server_hostname must be a non-empty str", nodename, servicename)
    try:
        # What ssl does with it (SSLContext._encode_hostname), checked before any I/O.
        if "\x00" in server_hostname:
            raise UnicodeError("a NUL character")
        server_hostname.encode("idna")
    except UnicodeError as exc:
        raise _invalid(
            f"server_hostname {server_hostname!r} is not a valid name: {exc}",
            nodename,
            servicename,
        ) from None
    return TLSOptions(ssl_context, server_hostname)


def check_connect(
    nodename: object,
    servicename: object,
    *,
    timeout: object,
    attempt_delay: object,
    family: object,
    source_address: object,
    socket_options: object,
    resolver: object,
    resolution_delay: object,
    history: object,
    policy: object,
    listener: object,
    ssl_context: object = None,
    server_hostname: object = None,
) -> tuple[Target, Options, CallOptions]:
    """The arguments of the public entry points (`connect_by_name` and its async and
    supplied-socket forms), checked in one place: the target, the engine's options and
    the call's. With TLS on port 443, the name's HTTPS record is asked for too."""
    target = parse_target(nodename, servicename)
    options = check_options(
        attempt_delay=attempt_delay,
        family=family,
        resolver=resolver,
        resolution_delay=resolution_delay,
        history=history,
        policy=policy,
        listener=listener,
        nodename=nodename,
        servicename=servicename,
    )
    tls = None
    if ssl_context is not None or server_hostname is not None:
        tls = check_tls(
            ssl_context,
            server_hostname,
            host=target.host,
            nodename=nodename,
            servicename=servicename,
        )
    call = check_call(
        timeout,
        source_address,
        socket_options,
        https=tls is not None and target.port == HTTPS_PORT,
        tls=tls,
        nodename=nodename,
        servicename=servicename,
    )
    return target, options, call


def check_adapter_call(
    nodename: object,
    servicename: object,
    *,
    timeout: object,
    source_address: object,
    socket_options: object,
    https: bool,
    tls: TLSOptions | None,
) -> tuple[Target, CallOptions]:
    """The target and the call's options of an adapter's connect (`_sync.connect`,
    `_async.aconnect`), whose engine options were checked when it was built."""
    target = parse_target(nodename, servicename)
    call = check_call(
        timeout,
        source_address,
        socket_options,
        https=https,
        tls=tls,
        nodename=nodename,
        servicename=servicename,
    )
    return target, call


def _seconds(
    name: str, value: object, invalid: _Invalid, *, allow_zero: bool = False, rule: str = ""
) -> float | None:
    """A number of seconds: a positive int or float (0 too with ``allow_zero``),
    ``math.inf`` for one too large to be a float, or ``None``. ``rule`` replaces the
    message for a number out of range."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    try:
        seconds = float(value)
    except OverflowError:  # an int beyond any float: as good as no limit
        seconds = math.inf if value > 0 else -math.inf
    if not (seconds > 0 or (seconds == 0 and allow_zero)):  # NaN fails both
        bound = "0 or more" if allow_zero else "more than 0"
        raise invalid(
            rule or f"{name} must be a number of seconds, {bound}, or None; not {value!r}"
        )
    return seconds


def _source(
    value: object, invalid: _Invalid
) -> tuple[tuple[str, int] | None, socket.AddressFamily | None]:
    if value is None:
        return None, None
    if not (
        isinstance(value, tuple | list)
        and len(value) == 2
        and isinstance(value[0], str)
        and isinstance(value[1], int)
        and not isinstance(value[1], bool)
        and 0 <= value[1] <= 65535
    ):
        raise invalid("source_address must be a (host, port) pair, port 0 to 65535")
    host, port = value[0], value[1]
    if not host:
        # No host only pins the port, which fits either family.
        return (host, port), None
    bare = host[1:-1] if host[:1] == "[" and host[-1:] == "]" else host
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            packed = socket.inet_pton(family, bare)
        except (OSError, ValueError):
            continue
        return (socket.inet_ntop(family, packed), port), family
    raise invalid(f"source_address host {host!r} must be an IP address")


def _socket_options(value: object, invalid: _Invalid) -> tuple[SocketOption, ...]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise invalid("socket_options must be a sequence of (level, option, value) tuples")
    options: list[SocketOption] = []
    for item in value:
        if not isinstance(item, tuple | list) or len(item) not in (3, 4):
            raise invalid(f"socket option {item!r} is not a (level, option, value) tuple")
        level, option, setting = item[0], item[1], item[2]
        # Ints that fit a C int, as setsockopt() takes them (a bool is one there too).
        if not (isinstance(level, int) and level in _C_INT and isinstance(option, int)):
            raise invalid(f"socket option {item!r}: level and option must be ints")
        if option not in _C_INT:
            raise invalid(f"socket option {item!r}: level and option must be ints")
        if len(item) == 4:
            length = item[3]
            if setting is not None or not isinstance(length, int) or not 0 <= length < 2**31:
                raise invalid(f"socket option {item!r} is not a (level, option, None, length)")
            options.append((level, option, None, length))
        elif isinstance(setting, int) and setting in _C_INT:
            options.append((level, option, int(setting)))
        elif isinstance(setting, bytes | bytearray):
            options.append((level, option, bytes(setting)))
        else:
            raise invalid(f"socket option {item!r}: the value must be an int (a C int) or bytes")
    return tuple(options)
