"""Loopback only: the second belt of the conformance runs (the first is the network
namespace run.py puts every suite in), loaded in both modes.

- A connect (``socket.socket.connect`` / ``connect_ex``, which every client, asyncio and
  trio reach in the end) to an address outside 127.0.0.0/8 and ``::1`` fails at once
  with ``ENETUNREACH``, as the kernel does without a route; ``connect_ex`` returns the
  code, as it would. Unspecified addresses (``0.0.0.0``, ``::``) mean this host and pass.
  It is put back before each test (pytest-socket, in urllib3's test requirements,
  restores the ``connect`` it saw at import after every test).
- Tarpits: the suites' "never answers" addresses are pointed at a loopback blackhole,
  `BLACKHOLE_HOST`: for each port asked, a listening socket with a backlog of 0 whose one
  queue slot is taken, so the kernel drops further SYNs and connect() hangs until the
  caller's timeout, as with the routed-but-silent addresses the suites name. Patched:

  * urllib3 ``test.TARPIT_HOST`` (``"240.0.0.0"``), before any test module copies it with
    ``from .. import TARPIT_HOST``, and those copies too;
  * requests ``tests.test_requests.TARPIT`` (``"http://10.255.255.1"``);
  * httpx has no constant (``tests/test_timeouts.py::test_connect_timeout`` writes
    ``http://10.255.255.1/`` in the test), so a connect to 10.255.255.1 or 240.0.0.0 is
    redirected to the blackhole on the same port.

  The terminal summary names every constant patched: a release that renames one shows
  up there as a missing name (its tests then get a quick ENETUNREACH instead of a hang).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import sys
import threading
from typing import Any

import pytest

#: The loopback address the tarpits are pointed at (nothing else listens there).
BLACKHOLE_HOST = "127.0.0.240"
#: Addresses the suites use as "routed, never answers"; connects to them go to the
#: blackhole on the same port.
TARPIT_ADDRESSES = frozenset({"10.255.255.1", "240.0.0.0"})
#: Module constants naming a tarpit: (attribute, value upstream, value here).
TARPIT_CONSTANTS = (
    # urllib3: test/__init__.py
    ("TARPIT_HOST", "240.0.0.0", BLACKHOLE_HOST),
    # requests: tests/test_requests.py
    ("TARPIT", "http://10.255.255.1", f"http://{BLACKHOLE_HOST}"),
)

_real_connect = socket.socket.connect
_real_connect_ex = socket.socket.connect_ex
# Tests patch socket.getaddrinfo and socket.socket; the blackholes use the real ones.
_real_getaddrinfo = socket.getaddrinfo
_real_socket = socket.socket


class _Blocked(Exception):
    pass


class _Blackholes:
    """One full listening socket per port on `BLACKHOLE_HOST`, made on first use."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sockets: dict[int, tuple[socket.socket, socket.socket]] = {}

    def ensure(self, port: int) -> None:
        with self._lock:
            if port in self._sockets or not 0 < port < 65536:
                return
            listener = _real_socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                listener.bind((BLACKHOLE_HOST, port))
                listener.listen(0)
                filler = _real_socket(socket.AF_INET, socket.SOCK_STREAM)
                filler.settimeout(5)
                _real_connect(filler, (BLACKHOLE_HOST, port))  # takes the one slot
            except BaseException:
                listener.close()
                raise
            self._sockets[port] = (listener, filler)

    def close(self) -> None:
        with self._lock:
            for listener, filler in self._sockets.values():
                filler.close()
                listener.close()
            self._sockets.clear()


_blackholes = _Blackholes()


def _ip(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(host.partition("%")[0])
    except ValueError:
        return None


def _local(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    return ip.is_loopback or ip.is_unspecified


def _route(sock: socket.socket, address: Any) -> Any:
    """The address to really connect to, or `_Blocked` raised."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not isinstance(address, tuple):
        return address
    host = address[0]
    if isinstance(host, bytes):
        host = host.decode("ascii", "replace")
    if not isinstance(host, str) or host == "":
        return address
    ip = _ip(host)
    if ip is None:
        # A name: connect() resolves it itself; it may go only where loopback does.
        try:
            infos = _real_getaddrinfo(host, address[1], sock.family, socket.SOCK_STREAM)
        except (OSError, UnicodeError):
            return address  # connect() fails on it the same way
        answers = [_ip(str(info[4][0])) for info in infos]
        if all(answer is not None and _local(answer) for answer in answers):
            return address
        raise _Blocked
    mapped = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) else None
    v4 = str(mapped if mapped is not None else ip)
    if v4 in TARPIT_ADDRESSES:
        _blackholes.ensure(address[1])
        target = BLACKHOLE_HOST if mapped is None else f"::ffff:{BLACKHOLE_HOST}"
        return (target, *address[1:])
    if v4 == BLACKHOLE_HOST:
        _blackholes.ensure(address[1])
        return address
    if _local(ip):
        return address
    raise _Blocked


def _connect(self: socket.socket, address: Any, /) -> None:
    try:
        address = _route(self, address)
    except _Blocked:
        raise OSError(errno.ENETUNREACH, os.strerror(errno.ENETUNREACH)) from None
    _real_connect(self, address)


def _connect_ex(self: socket.socket, address: Any, /) -> int:
    try:
        address = _route(self, address)
    except _Blocked:
        return errno.ENETUNREACH
    return _real_connect_ex(self, address)


def _patch_tarpit_constants(rootdir: str) -> list[str]:
    """Point every tarpit constant held by a module under ``rootdir`` at the blackhole;
    returns the ``module.attribute`` names patched now."""
    patched = []
    for name, module in list(sys.modules.items()):
        path = getattr(module, "__file__", None)
        if not isinstance(path, str) or not path.startswith(rootdir):
            continue
        for attribute, upstream, ours in TARPIT_CONSTANTS:
            if getattr(module, attribute, None) == upstream:
                setattr(module, attribute, ours)
                patched.append(f"{name}.{attribute}")
    return patched


#: What was patched, for the terminal summary.
_patched: list[str] = []


def _install() -> None:
    socket.socket.connect = _connect  # type: ignore[method-assign,assignment]
    socket.socket.connect_ex = _connect_ex  # type: ignore[method-assign,assignment]
    # pytest-socket (in urllib3's test requirements) puts back the connect it saw at
    # import after every test, even when not asked to restrict anything: have it put
    # back ours.
    pytest_socket = sys.modules.get("pytest_socket")
    if pytest_socket is not None and hasattr(pytest_socket, "_true_connect"):
        pytest_socket._true_connect = _connect  # type: ignore[attr-defined]


def pytest_configure(config: pytest.Config) -> None:
    _install()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    # Whatever a previous test or plugin did to socket.socket, each test starts guarded.
    _install()
    return (yield)


def pytest_plugin_registered(plugin: object, manager: pytest.PytestPluginManager) -> None:
    # A conftest was loaded, so its package is imported (urllib3's ``test``, which holds
    # TARPIT_HOST): patch it before any test module copies the constant.
    path = getattr(plugin, "__file__", None)
    if isinstance(path, str) and os.path.basename(path) == "conftest.py":
        _patched.extend(_patch_tarpit_constants(os.path.dirname(os.path.dirname(path))))


def pytest_collection_finish(session: pytest.Session) -> None:
    # Modules that define a tarpit themselves (requests' test_requests.py), and copies
    # made at import (``from .. import TARPIT_HOST``): module globals that the tests
    # read when they run.
    _patched.extend(_patch_tarpit_constants(str(session.config.rootpath)))


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    patched = ", ".join(_patched) or "none"
    terminalreporter.write_line(f"conformance isolation: tarpit constants patched: {patched}")


def pytest_report_header(config: pytest.Config) -> str:
    return f"conformance isolation: loopback only; tarpits -> blackhole {BLACKHOLE_HOST}"


def pytest_unconfigure(config: pytest.Config) -> None:
    socket.socket.connect = _real_connect  # type: ignore[method-assign]
    socket.socket.connect_ex = _real_connect_ex  # type: ignore[method-assign]
    _blackholes.close()
