"""Shared fixtures: loopback servers, TLS material, proxies and a fake resolver.

Everything listens on and connects to 127.0.0.1 / ::1 only. The building blocks
live in ``connectbyname.testing`` (standard library only, also used by the
offline demo and the benchmarks); this file wraps them as pytest fixtures.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
import trustme
from hypothesis import settings

from connectbyname import DEFAULT_HISTORY
from connectbyname.testing import (
    DualStack,
    HTTPServer,
    ProxyServer,
    StaticResolver,
    dual_stack,
    localhost_fallback,
    no_fd_leak,
    patch_getaddrinfo,
)
from connectbyname.testing._loopback import _fd_table

# Every hypothesis test is derandomized (a fixed seed, no example database), so that a
# run is the same run everywhere and CI cannot fail on an example nobody saw before;
# CBN_HYPOTHESIS=random explores, by hand (tests/test_fuzz.py has a longer profile).
settings.register_profile("connectbyname", derandomize=True, database=None)
settings.register_profile("connectbyname-random", derandomize=False)
settings.load_profile(
    "connectbyname-random" if os.environ.get("CBN_HYPOTHESIS") == "random" else "connectbyname"
)

# Every name and address the test certificate is valid for.
CERT_IDENTITIES = ("localhost", "example.test", "*.example.test", "127.0.0.1", "::1")


@pytest.fixture(autouse=True)
def fresh_history() -> Iterator[None]:
    """Each test starts with an empty process-wide connection history, so what one test
    taught the engine about a name never reorders another test's attempts."""
    DEFAULT_HISTORY.clear()
    yield
    DEFAULT_HISTORY.clear()


# --------------------------------------------------------------------------- leaks


#: Threads that outlive a test by design: the lookup pool's idle threads (they exit
#: after IDLE_SECONDS), and trio's and asyncio's own worker-thread caches.
_LASTING_THREADS = ("connectbyname-resolver", "Trio thread", "asyncio_", "ThreadPoolExecutor")


@pytest.fixture(autouse=True)
def nothing_outlives_the_test(request: pytest.FixtureRequest) -> Iterator[None]:
    """Every test: the descriptors and threads it started are gone when it ends (after
    its own fixtures' teardown, which runs first: this fixture is set up first).

    Fast when nothing is left: one read of the descriptor table; else the garbage
    collector runs and the servers' threads get up to 2 s to finish closing."""
    fds = _fd_table()
    threads = set(threading.enumerate())
    yield
    if _fd_table() == fds and set(threading.enumerate()) <= threads:
        return
    deadline = time.monotonic() + 2.0
    while True:
        gc.collect()
        leaked = {fd: t for fd, t in _fd_table().items() if fds.get(fd) != t}
        alive = [
            t
            for t in set(threading.enumerate()) - threads
            if t.is_alive() and not t.name.startswith(_LASTING_THREADS)
        ]
        if (not leaked and not alive) or time.monotonic() >= deadline:
            break
        time.sleep(0.02)
    problems = []
    if leaked:
        problems.append(
            "file descriptors left open: "
            + ", ".join(f"{fd} -> {t}" for fd, t in sorted(leaked.items()))
        )
    if alive:
        problems.append("threads left running: " + ", ".join(sorted(t.name for t in alive)))
    if problems:
        pytest.fail(f"{request.node.nodeid}: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def assert_no_fd_leak() -> Iterator[None]:
    """Fail the test at teardown if it left new file descriptors open.

    Put it FIRST in the test's argument list: fixtures are torn down in reverse
    order, so the check then runs after the other fixtures (servers...) closed.
    """
    with no_fd_leak():
        yield


# --------------------------------------------------------------------------- TLS


@pytest.fixture(scope="session")
def ca() -> trustme.CA:
    """A throwaway certificate authority."""
    return trustme.CA()


@pytest.fixture(scope="session")
def server_cert(ca: trustme.CA) -> trustme.LeafCert:
    return ca.issue_cert(*CERT_IDENTITIES)


@pytest.fixture(scope="session")
def server_ssl_context(server_cert: trustme.LeafCert) -> ssl.SSLContext:
    """Server-side context with a cert for CERT_IDENTITIES; ALPN offers http/1.1 only."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_cert.configure_cert(context)
    # The servers speak HTTP/1.1 only; clients that offer h2 must fall back.
    context.set_alpn_protocols(["http/1.1"])
    return context


@pytest.fixture
def client_ssl_context(ca: trustme.CA) -> ssl.SSLContext:
    """A fresh verifying client context that trusts ``ca`` (and nothing else)."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="session")
def ca_bundle_path(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Path of a PEM file holding the CA certificate, e.g. for requests' ``verify=``."""
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


# --------------------------------------------------------------------------- servers


@pytest.fixture
def http_server() -> Iterator[HTTPServer]:
    """An HTTPServer on 127.0.0.1 (fresh per test, so its counters start at 0)."""
    with HTTPServer("127.0.0.1") as server:
        yield server


@pytest.fixture
def http_server_v6() -> Iterator[HTTPServer]:
    """An HTTPServer on ::1."""
    with HTTPServer("::1") as server:
        yield server


@pytest.fixture
def https_server(server_ssl_context: ssl.SSLContext) -> Iterator[HTTPServer]:
    """An HTTPS HTTPServer on 127.0.0.1 with a cert for CERT_IDENTITIES."""
    with HTTPServer("127.0.0.1", ssl_context=server_ssl_context) as server:
        yield server


@pytest.fixture
def https_server_v6(server_ssl_context: ssl.SSLContext) -> Iterator[HTTPServer]:
    """An HTTPS HTTPServer on ::1 with a cert for CERT_IDENTITIES."""
    with HTTPServer("::1", ssl_context=server_ssl_context) as server:
        yield server


@pytest.fixture
def blackholed_v6() -> Iterator[DualStack]:
    """HTTP on 127.0.0.1:P, a Blackhole on [::1]:P (connects there hang)."""
    with dual_stack("blackholed-v6") as scenario:
        yield scenario


@pytest.fixture
def refused_v6() -> Iterator[DualStack]:
    """HTTP on 127.0.0.1:P, nothing listening on [::1]:P (connects there are refused)."""
    with dual_stack("refused-v6") as scenario:
        yield scenario


# --------------------------------------------------------------------------- resolver


@pytest.fixture
def fake_dns() -> Iterator[Callable[..., StaticResolver]]:
    """Factory: ``fake_dns(mapping, **StaticResolver options) -> StaticResolver``.

    The resolver replaces ``socket.getaddrinfo`` process-wide until the end of the
    test, with ``fallback=localhost_fallback`` unless another fallback is given, so
    "localhost" keeps working. Calling the factory again stacks another patch.
    """
    with contextlib.ExitStack() as stack:

        def make(
            mapping: Mapping[str, str | Sequence[str]] | None = None, **options: Any
        ) -> StaticResolver:
            options.setdefault("fallback", localhost_fallback)
            resolver = StaticResolver(mapping, **options)
            stack.enter_context(patch_getaddrinfo(resolver))
            return resolver

        yield make


# --------------------------------------------------------------------------- proxies


@pytest.fixture
def proxy_server() -> Iterator[ProxyServer]:
    """An in-process HTTP proxy on 127.0.0.1 (forwarding and CONNECT) that counts
    what it handled: ``connect_requests``, ``forwarded_requests``, ``requests``.

    Names in requests are resolved through ``socket.getaddrinfo``, so ``fake_dns``
    names work; it refuses to connect anywhere but loopback.
    """
    with ProxyServer("127.0.0.1") as proxy:
        yield proxy


@dataclasses.dataclass
class ProxyPy:
    """A running proxy.py subprocess."""

    port: int
    url: str
    log_path: Path

    def access_log(self) -> list[str]:
        """proxy.py's access-log lines so far.

        proxy.py writes a line when a client connection closes, from another
        process: poll for it, do not expect it at once.
        """
        text = self.log_path.read_text(errors="replace")
        return [line for line in text.splitlines() if "server.access_log" in line]

    def wait_for_log(self, needle: str, timeout: float = 5.0) -> bool:
        """Wait until an access-log line contains ``needle``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(needle in line for line in self.access_log()):
                return True
            time.sleep(0.02)
        return False


@pytest.fixture(scope="session")
def proxypy_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyPy]:
    """A third-party proxy (proxy.py) on 127.0.0.1, shared by the session.

    For interoperability checks only: it resolves names with the system resolver
    in its own process, so give it IP literals (or "localhost"), never test names.
    Prefer ``proxy_server`` to assert that traffic went through a proxy.
    """
    home = tmp_path_factory.mktemp("proxypy")
    port_file, log_path = home / "port", home / "proxy.log"
    command = [
        sys.executable,
        "-m",
        "proxy",
        "--hostname",
        "127.0.0.1",
        "--port",
        "0",
        "--port-file",
        str(port_file),
        "--num-workers",
        "1",
        "--num-acceptors",
        "1",
        "--data-dir",
        str(home / "data"),
        "--log-file",
        str(log_path),
        "--log-level",
        "INFO",
    ]
    # HOME: proxy.py creates ~/.proxy regardless of --data-dir.
    env = {**os.environ, "HOME": str(home)}
    with (home / "stderr").open("wb") as stderr:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=home,
        )
    try:
        port = _wait_for_proxypy(process, port_file)
        yield ProxyPy(port, f"http://127.0.0.1:{port}", log_path)
    finally:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_for_proxypy(process: subprocess.Popen[bytes], port_file: Path) -> int:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"proxy.py exited with {process.returncode}")
        text = port_file.read_text().strip() if port_file.exists() else ""
        if text.isdigit():
            try:
                socket.create_connection(("127.0.0.1", int(text)), timeout=1).close()
            except OSError:
                pass
            else:
                return int(text)
        time.sleep(0.02)
    raise RuntimeError("proxy.py did not start listening within 15 s")
