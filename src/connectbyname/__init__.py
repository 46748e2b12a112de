"""connectbyname: connect a TCP socket by host name, the way WSAConnectByName does,
racing the host's addresses as RFC 8305 (Happy Eyeballs v2) describes, with one timeout
for the whole call and the local and remote addresses reported."""

from ._async import AsyncConnection, aconnect_by_name
from ._errors import (
    AddressDeniedError,
    CertificateError,
    ConnectByNameError,
    HostUnreachableError,
    InvalidParameterError,
    NameResolutionError,
    NotASocketError,
    OutOfResourcesError,
    PolicyDenial,
    RefusedError,
    TimedOutError,
    TLSError,
)
from ._events import (
    AttemptFinished,
    AttemptStarted,
    ConnectFinished,
    ConnectionAcquired,
    ConnectionReleased,
    ConnectStarted,
    EventListener,
    LookupFinished,
    LookupStarted,
    TLSFinished,
    TLSStarted,
)
from ._history import DEFAULT_HISTORY, ConnectionHistory
from ._info import (
    Address,
    Attempt,
    Candidate,
    Connection,
    ConnectionInfo,
    Outcome,
    connection_info,
    format_address,
)
from ._parse import DEFAULT_ATTEMPT_DELAY, DEFAULT_RESOLUTION_DELAY, EngineOptions
from ._policy import (
    BAD_PORTS,
    PUBLIC_ONLY,
    SPECIAL_HOSTS,
    SPECIAL_NETWORKS,
    AddressPolicy,
    Policy,
    embedded_ipv4s,
)
from ._resolve import Resolver
from ._sync import connect_by_name, connect_socket_by_name

__version__ = "0.1.0"

__all__ = [
    "BAD_PORTS",
    "DEFAULT_ATTEMPT_DELAY",
    "DEFAULT_HISTORY",
    "DEFAULT_RESOLUTION_DELAY",
    "PUBLIC_ONLY",
    "SPECIAL_HOSTS",
    "SPECIAL_NETWORKS",
    "Address",
    "AddressDeniedError",
    "AddressPolicy",
    "AsyncConnection",
    "Attempt",
    "AttemptFinished",
    "AttemptStarted",
    "Candidate",
    "CertificateError",
    "ConnectByNameError",
    "ConnectFinished",
    "ConnectStarted",
    "Connection",
    "ConnectionAcquired",
    "ConnectionHistory",
    "ConnectionInfo",
    "ConnectionReleased",
    "EngineOptions",
    "EventListener",
    "HostUnreachableError",
    "InvalidParameterError",
    "LookupFinished",
    "LookupStarted",
    "NameResolutionError",
    "NotASocketError",
    "OutOfResourcesError",
    "Outcome",
    "Policy",
    "PolicyDenial",
    "RefusedError",
    "Resolver",
    "TLSError",
    "TLSFinished",
    "TLSStarted",
    "TimedOutError",
    "aconnect_by_name",
    "connect_by_name",
    "connect_socket_by_name",
    "connection_info",
    "embedded_ipv4s",
    "format_address",
]
