"""Checks every parameter of a call before anything touches the network.

Bad input fails here, at once, with `InvalidParameterError` (or `NameResolutionError`
for a service name the services database does not know): never later, deep inside a
socket call or a resolver thread.
"""

from __future__ import annotations

import functools
import ipaddress
import math
import socket
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TypedDict

import idna

from ._errors import InvalidParameterError, NameResolutionError
from ._history import DEFAULT_HISTORY, ConnectionHistory
from ._info import Address
from ._policy import Policy
from ._resolve import Resolver

#: RFC 8305 section 8: the Connection Attempt Delay "MUST NOT" go below 10 ms.
MIN_ATTEMPT_DELAY = 0.01

#: Used when the services database is missing (slim containers ship without
#: /etc/services), so that the names every HTTP client passes keep working.
FALLBACK_SERVICES = {"http": 80, "https": 443, "ws": 80, "wss": 443, "http-alt": 8080}

SocketOption = tuple[int, int, int | bytes]
_Invalid = Callable[[str], InvalidParameterError]


class EngineOptions(TypedDict, total=False):
    """The engine's options that every adapter takes next to its client's own arguments
    (see `connect_by_name` for what each means)."""

    attempt_delay: float | None
    family: int
    resolver: Resolver | None
    resolution_delay: float
    history: ConnectionHistory | bool
    policy: Policy | None


#: The names of `EngineOptions`.
ENGINE_OPTIONS: tuple[str, ...] = tuple(EngineOptions.__annotations__)


def check_engine_options(options: Mapping[str, object]) -> None:
    """Refuse unknown names (`TypeError`) and bad values (`InvalidParameterError`) at
    once, so an adapter fails where it is built, not at its first request."""
    unknown = sorted(set(options) - set(ENGINE_OPTIONS))
    if unknown:
        raise TypeError(f"unknown engine option(s): {', '.join(unknown)}")
    parse_options(
        None,
        None,
        timeout=None,
        attempt_delay=options.get("attempt_delay", 0.25),
        family=options.get("family", socket.AF_UNSPEC),
        source_address=None,
        socket_options=(),
        resolution_delay=options.get("resolution_delay", 0.05),
        history=options.get("history", True),
        policy=options.get("policy"),
        resolver=options.get("resolver"),
    )


@dataclass(frozen=True, slots=True)
class Target:
    """Where to connect: ``host`` is the ASCII name to resolve, or the literal's text."""

    host: str
    port: int
    #: For an IP literal, the one candidate address, so no resolver is ever asked.
    literal: tuple[socket.AddressFamily, Address] | None


@dataclass(frozen=True, slots=True)
class Options:
    """The call's validated options (see `connect_by_name`)."""

    timeout: float | None
    attempt_delay: float | None
    family: socket.AddressFamily
    source_address: tuple[str, int] | None
    source_family: socket.AddressFamily | None
    socket_options: tuple[SocketOption, ...]
    resolution_delay: float = 0.05
    history: ConnectionHistory | None = None
    policy: Policy | None = None


def _invalid(message: str, nodename: object, servicename: object) -> InvalidParameterError:
    return InvalidParameterError(message, nodename=nodename, servicename=servicename)


def parse_target(nodename: object, servicename: object) -> Target:
    """Validate ``nodename`` and ``servicename`` and turn them into a `Target`."""
    port = parse_service(nodename, servicename)
    if isinstance(nodename, bytes):
        # The ANSI form of the Windows call: bytes must be plain ASCII.
        try:
            nodename = nodename.decode("ascii")
        except UnicodeDecodeError:
            raise _invalid("nodename bytes must be ASCII", nodename, servicename) from None
    if not isinstance(nodename, str):
        raise _invalid(
            f"nodename must be a str, not {type(nodename).__name__}", nodename, servicename
        )
    if not nodename:
        raise _invalid("nodename must not be empty", nodename, servicename)
    if not nodename.isprintable() or " " in nodename:
        raise _invalid(
            "nodename must not contain spaces or control characters", nodename, servicename
        )
    literal = _parse_literal(nodename, port, servicename)
    if literal is not None:
        return Target(literal[1][0], port, literal)
    return Target(_encode_name(nodename, servicename), port, None)


def _parse_literal(
    text: str, port: int, servicename: object
) -> tuple[socket.AddressFamily, Address] | None:
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
        return socket.AF_INET, (text, port)
    host, _, scope = text.partition("%")
    try:
        packed = socket.inet_pton(socket.AF_INET6, host)
    except OSError:
        raise _invalid(f"{text!r} is not a valid IPv6 address", text, servicename) from None
    scope_id = _scope_id(scope, text, servicename) if scope else 0
    return socket.AF_INET6, (socket.inet_ntop(socket.AF_INET6, packed), port, 0, scope_id)


def _scope_id(scope: str, nodename: str, servicename: object) -> int:
    if scope.isascii() and scope.isdigit():
        return int(scope)
    try:
        return socket.if_nametoindex(scope)
    except OSError:
        raise _invalid(f"no network interface named {scope!r}", nodename, servicename) from None


def _encode_name(name: str, servicename: object) -> str:
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
                f"{name!r} cannot be encoded as IDNA: {exc}", name, servicename
            ) from None
    labels = ascii_name.split(".")
    if len(ascii_name) > 253 or any(not 0 < len(label) <= 63 for label in labels):
        raise _invalid(
            f"{name!r} is not a valid host name (at most 253 bytes, labels of 1 to 63)",
            name,
            servicename,
        )
    # The trailing dot means "fully qualified" to the resolver: keep it.
    return ascii_name + "." if name.endswith(".") else ascii_name


def parse_service(nodename: object, servicename: object) -> int:
    """Return the port for a port number (int or digits) or a service name."""
    if isinstance(servicename, bytes):
        try:
            servicename = servicename.decode("ascii")
        except UnicodeDecodeError:
            raise _invalid("servicename bytes must be ASCII", nodename, servicename) from None
    if isinstance(servicename, int) and not isinstance(servicename, bool):
        port = servicename
    elif isinstance(servicename, str) and servicename.isascii() and servicename.isdigit():
        port = int(servicename)
    elif isinstance(servicename, str):
        if not servicename or len(servicename) > 64 or not servicename.isprintable():
            raise _invalid(f"{servicename!r} is not a service name", nodename, servicename)
        if any(c.isspace() for c in servicename) or not servicename.isascii():
            raise _invalid(f"{servicename!r} is not a service name", nodename, servicename)
        return _lookup_service(servicename, nodename)
    else:
        raise _invalid(
            f"servicename must be a port (int or str), not {type(servicename).__name__}",
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


def prepare(  # noqa: PLR0917 (connect_by_name's parameters, passed on as they came)
    nodename: object,
    servicename: object,
    timeout: object,
    attempt_delay: object,
    family: object,
    source_address: object,
    socket_options: object,
    resolution_delay: object,
    history: object,
    policy: object,
    resolver: object,
) -> tuple[Target, Options]:
    """`parse_target` and `parse_options` for one call; the answers for valid calls
    are remembered."""
    if type(socket_options) is list:
        # urllib3 passes a list of tuples: as a tuple, the call can be remembered.
        socket_options = tuple(socket_options)
    # The types are part of the key: True == 1 and False == 0, but a bool is no number.
    key = (
        nodename,
        servicename,
        timeout,
        attempt_delay,
        family,
        source_address,
        socket_options,
        resolution_delay,
        history,
        policy,
        resolver,
        type(servicename),
        type(timeout),
        type(attempt_delay),
        type(family),
        type(resolution_delay),
        type(history),
        None if source_address is None else _source_types(source_address),
    )
    try:
        return _calls[key]
    except KeyError:
        cacheable = True
    except TypeError:  # something unhashable: check it, and don't remember it
        cacheable = False
    target = parse_target(nodename, servicename)
    options = parse_options(
        nodename,
        servicename,
        timeout=timeout,
        attempt_delay=attempt_delay,
        family=family,
        source_address=source_address,
        socket_options=socket_options,
        resolution_delay=resolution_delay,
        history=history,
        policy=policy,
        resolver=resolver,
    )
    # A scope is looked up again on every call: interfaces come and go.
    scoped = target.literal is not None and target.literal[1][3:] not in ((), (0,))
    if cacheable and not scoped:
        if len(_calls) >= _CALLS_CACHE_SIZE:
            _calls.clear()
        _calls[key] = target, options
    return target, options


def _source_types(source_address: object) -> object:
    if type(source_address) is tuple and len(source_address) == 2:
        return type(source_address[1])
    return type(source_address)


# Checking a call's parameters costs a good part of a loopback connect's own time; most
# programs connect to a handful of places with a handful of option sets, so the answers
# for valid calls are remembered. Everything in the key is compared by value (or by
# identity, for resolvers, policies and histories), so a remembered answer is always
# the answer the checks would give again.
_CALLS_CACHE_SIZE = 256
_calls: dict[tuple[object, ...], tuple[Target, Options]] = {}


def parse_options(
    nodename: object,
    servicename: object,
    *,
    timeout: object,
    attempt_delay: object,
    family: object,
    source_address: object,
    socket_options: object,
    resolution_delay: object = 0.05,
    history: object = False,
    policy: object = None,
    resolver: object = None,
) -> Options:
    """Validate the keyword options of a call (see `connect_by_name` for each)."""

    def invalid(message: str) -> InvalidParameterError:
        return _invalid(message, nodename, servicename)

    checked_timeout = _seconds("timeout", timeout, invalid, allow_zero=True)
    if checked_timeout == math.inf:
        checked_timeout = None
    delay = _seconds("attempt_delay", attempt_delay, invalid, allow_zero=False)
    if delay is not None and not MIN_ATTEMPT_DELAY <= delay < math.inf:
        raise invalid(f"attempt_delay must be at least {MIN_ATTEMPT_DELAY}s and finite")
    if family not in (socket.AF_UNSPEC, socket.AF_INET, socket.AF_INET6) or isinstance(
        family, bool
    ):
        raise invalid("family must be AF_UNSPEC, AF_INET or AF_INET6")
    source, source_family = _source(source_address, invalid)
    checked_delay = _seconds("resolution_delay", resolution_delay, invalid, allow_zero=True)
    if checked_delay is None or checked_delay == math.inf:
        raise invalid("resolution_delay must be a finite number of seconds")
    if history is True:
        history = DEFAULT_HISTORY
    elif history is False or history is None:
        history = None
    elif not isinstance(history, ConnectionHistory):
        raise invalid("history must be True, False or a ConnectionHistory")
    if resolver is not None and not callable(resolver):
        raise invalid("resolver must be None or a callable like socket.getaddrinfo")
    if policy is not None and not callable(policy):
        raise invalid("policy must be None or a callable such as an AddressPolicy")
    return Options(
        timeout=checked_timeout,
        attempt_delay=delay,
        family=socket.AddressFamily(family),  # type: ignore[arg-type]
        source_address=source,
        source_family=source_family,
        socket_options=_socket_options(socket_options, invalid),
        resolution_delay=checked_delay,
        history=history,
        policy=policy,
    )


def _seconds(name: str, value: object, invalid: _Invalid, *, allow_zero: bool) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise invalid(f"{name} must be a number of seconds or None, not {type(value).__name__}")
    seconds = float(value)
    if math.isnan(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        raise invalid(f"{name} must be a positive number of seconds, not {value!r}")
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
    try:
        address = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        raise invalid(f"source_address host {host!r} must be an IP address") from None
    family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
    return (str(address), port), family


def _socket_options(value: object, invalid: _Invalid) -> tuple[SocketOption, ...]:
    if value is None:
        return ()
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise invalid("socket_options must be a sequence of (level, option, value) tuples")
    options: list[SocketOption] = []
    for item in value:
        if not (
            isinstance(item, tuple | list)
            and len(item) == 3
            # Ints, as setsockopt() takes them (a bool is one there too).
            and all(isinstance(part, int) for part in item[:2])
            and isinstance(item[2], int | bytes)
        ):
            raise invalid(f"socket option {item!r} is not a (level, option, value) tuple")
        options.append((item[0], item[1], item[2]))
    return tuple(options)
