"""pytest fixtures for broken networks on loopback (loaded by pytest automatically once
connectbyname is installed: a ``pytest11`` entry point).

``dual_stack_host`` makes, for one test, a host name that your code (and any stock
client: the name is put into ``socket.getaddrinfo`` for the process) resolves to
``::1`` and ``127.0.0.1``, with an HTTP server on one of them and the other broken::

    def test_my_client_survives_a_broken_ipv6_path(dual_stack_host):
        host = dual_stack_host("blackholed-v6")   # [::1]:P drops SYNs, 127.0.0.1:P serves
        response = my_client.get(host.url("/"), timeout=3)
        assert response.status_code == 200

The kinds: ``"blackholed-v6"`` (a connect to the IPv6 address hangs, as through a
firewall that drops), ``"refused-v6"`` (it is refused at once), ``"slow-aaaa"`` (IPv6
refused, and the IPv6 answer 0.3 s later than the IPv4 one: what a slow or lossy
resolver does), ``"all-dead"`` (every address blackholed: only a timeout ends a
connect), and ``"blackholed-v4"``, ``"refused-v4"`` (IPv4 broken, IPv6 serving).
Everything is torn down after the test.

``network_lab`` goes further (Linux, as root): a network namespace of the test's own
with a scripted DNS server, its own resolv.conf and hosts file, HTTP servers and
blackholes, where code runs against the system's real resolver::

    from connectbyname.testing.dnsserver import Reply

    def probe(port):                      # runs inside the namespace
        import requests
        return requests.get(f"http://dual.test:{port}/", timeout=3).status_code

    def test_slow_aaaa(network_lab):
        lab = network_lab(
            dns={"dual.test": {"AAAA": Reply("::1", delay=0.3), "A": "127.0.0.1"}},
            http=["127.0.0.1"], blackhole=["::1"],
        )
        assert lab.call(probe, lab.port) == 200

See `connectbyname.testing.lab.Lab` for the description's keys. Where no namespace can be
made (not root, no ``ip``), the test is skipped, or fails if the environment variable
``CONNECTBYNAME_LAB_REQUIRED`` is set (for CI, where it must run). ``netns`` gives bare
`connectbyname.testing.lab.Namespace` objects the same way.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, NoReturn

import pytest

from ._loopback import (
    AddrInfoList,
    HTTPServer,
    StaticResolver,
    blackholed_everywhere,
    dual_stack,
    patch_getaddrinfo,
)

if TYPE_CHECKING:  # the lab is imported by the fixtures that use it, not with the plugin
    from .lab import Lab, Namespace

HostKind = Literal[
    "blackholed-v6", "refused-v6", "slow-aaaa", "all-dead", "blackholed-v4", "refused-v4"
]

#: How late the AAAA answer of a ``"slow-aaaa"`` host comes, in seconds.
SLOW_AAAA_SECONDS = 0.3

_names = itertools.count(1)


@dataclass(frozen=True)
class LabHost:
    """A host name made for one test: ``name`` resolves to ``addresses`` (IPv6 first),
    both on ``port``; ``server`` serves HTTP on the working one (``None`` for
    ``"all-dead"``)."""

    kind: HostKind
    name: str
    port: int
    addresses: tuple[str, ...]
    server: HTTPServer | None

    def url(self, path: str = "/") -> str:
        """``http://name:port/path``."""
        return f"http://{self.name}:{self.port}{path}"


@pytest.fixture
def dual_stack_host() -> Iterator[Callable[[HostKind], LabHost]]:
    """A factory of `LabHost` names, each resolvable process-wide until the test ends."""
    with contextlib.ExitStack() as stack:
        resolvers: dict[str, StaticResolver] = {}
        previous = socket.getaddrinfo

        def resolve(  # noqa: PLR0917 (socket.getaddrinfo's signature)
            host: bytes | str | None,
            port: bytes | str | int | None,
            family: int = 0,
            type: int = 0,
            proto: int = 0,
            flags: int = 0,
        ) -> AddrInfoList:
            name = host.decode() if isinstance(host, bytes) else host
            resolver = resolvers.get(str(name).lower().rstrip("."))
            if resolver is None:
                return previous(host, port, family, type, proto, flags)
            return resolver(host, port, family, type, proto, flags)

        stack.enter_context(patch_getaddrinfo(resolve))

        def make(kind: HostKind) -> LabHost:
            name = f"host{next(_names)}.{kind}.connectbyname.test"
            server: HTTPServer | None = None
            if kind == "all-dead":
                port = stack.enter_context(blackholed_everywhere())
            else:
                broken = "refused-v6" if kind == "slow-aaaa" else kind
                pair = stack.enter_context(dual_stack(broken))
                port, server = pair.port, pair.server
            delays = {socket.AF_INET6: SLOW_AAAA_SECONDS, 0: SLOW_AAAA_SECONDS}
            resolver = StaticResolver(
                {name: ["::1", "127.0.0.1"]}, delays=delays if kind == "slow-aaaa" else None
            )
            stack.callback(resolver.release)
            resolvers[name] = resolver
            return LabHost(kind, name, port, ("::1", "127.0.0.1"), server)

        yield make


#: Set (to anything but "" or "0") to fail instead of skip where no lab can be made.
LAB_REQUIRED_VARIABLE = "CONNECTBYNAME_LAB_REQUIRED"


def _lab_unavailable(reason: str) -> NoReturn:
    if os.environ.get(LAB_REQUIRED_VARIABLE, "") not in ("", "0"):
        pytest.fail(f"the network lab is required ({LAB_REQUIRED_VARIABLE}) but: {reason}")
    pytest.skip(f"network lab unavailable: {reason}")


@pytest.fixture
def network_lab() -> Iterator[Callable[..., Lab]]:
    """A factory of `connectbyname.testing.lab.Lab` objects (a network namespace with DNS
    server, resolver files and servers), each torn down after the test: call it with
    `Lab`'s arguments. Skips the test where no namespace can be made."""
    from . import lab as lab_module

    with contextlib.ExitStack() as stack:

        def make(*args: Any, **kwargs: Any) -> Lab:
            try:
                return stack.enter_context(lab_module.Lab(*args, **kwargs))
            except lab_module.LabUnavailable as exc:
                _lab_unavailable(exc.reason)

        yield make


@pytest.fixture
def netns() -> Iterator[Callable[..., Namespace]]:
    """A factory of bare `connectbyname.testing.lab.Namespace` objects (call it with
    `Namespace`'s arguments), each removed after the test; skips like ``network_lab``."""
    from . import lab as lab_module

    with contextlib.ExitStack() as stack:

        def make(**kwargs: Any) -> Namespace:
            try:
                return stack.enter_context(lab_module.Namespace(**kwargs))
            except lab_module.LabUnavailable as exc:
                _lab_unavailable(exc.reason)

        yield make
