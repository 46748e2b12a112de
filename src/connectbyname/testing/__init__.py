"""connectbyname.testing: broken networks on loopback, for your own tests.

What this project's tests, demo and benchmarks use, offered to yours: a host name that
resolves to a blackholed IPv6 address and a working IPv4 one, refused addresses, a slow
AAAA answer, every address dead, real HTTP(S) servers and proxies, all on 127.0.0.1
and ::1 only, with the standard library alone. With pytest, the fixtures in
`connectbyname.testing.plugin` are loaded automatically (a ``pytest11`` entry point):
see ``dual_stack_host``.

- `Blackhole`: a port where ``connect()`` hangs, like a broken IPv6 path.
- `refused_port`: a port where ``connect()`` fails at once with ``ECONNREFUSED``.
- `HTTPServer`: a threaded HTTP/1.1 (optionally TLS) server with a few routes.
- `ProxyServer`: an HTTP proxy (forwarding and ``CONNECT``) that reaches loopback only.
- `dual_stack`: one port number that works on one family and is broken on the other.
- `StaticResolver` and `patch_getaddrinfo`: names mapped to loopback literals, for the
  whole process (so stock clients see them too), never asking the system.
- `open_fds` and `no_fd_leak`: file-descriptor leak checks.

Beyond loopback, `connectbyname.testing.lab` (imported on its own: Linux, root and
iproute2) makes a network namespace per test with a scripted DNS server
(`connectbyname.testing.dnsserver`, on dnspython), its own resolv.conf and hosts file,
and servers, so code meets the system's real resolver; the ``network_lab`` fixture
builds one from a short description.
"""

from ._loopback import (
    HANDSHAKE_FAILURE_ALERT,
    HELLO_BODY,
    AddrInfoList,
    Blackhole,
    DualStack,
    GetAddrInfo,
    Handshake,
    HTTPServer,
    ProxyRequest,
    ProxyServer,
    ResolverCall,
    ScenarioKind,
    StaticResolver,
    blackholed_everywhere,
    dual_stack,
    localhost_fallback,
    no_fd_leak,
    open_fds,
    patch_getaddrinfo,
    refused_port,
)

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
