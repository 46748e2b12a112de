"""HTTPS clients for the TLS benchmarks, run inside the lab by ``bench/measure.py``.

The same clients as the demo's (``connectbyname.demo``: urllib3, requests, httpx sync
and async on asyncio and trio, stock or adapted, ``retries=False`` for urllib3, no
environment proxies), given the lab's certificate authority as a user with a private
CA gives it to each: ``ca_certs=`` (urllib3), ``verify=`` a file (requests), ``verify=``
an ``ssl.SSLContext`` (httpx). urllib3 also comes injected (``inject_into_urllib3``, then
urllib3's own ``PoolManager``), the other place where the engine races TLS handshakes
for urllib3. The engine row pairs ``socket.create_connection`` and
``SSLContext.wrap_socket`` with ``connect_by_name(ssl_context=...)``.

Every client is made before its request is timed, and closed after.
"""

from __future__ import annotations

import socket
import ssl
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from connectbyname import connect_by_name, connection_info
from connectbyname.demo._demo import ATTEMPT_DELAY, READ_TIMEOUT, run_async

ENGINE = "engine"
SYNC = ("urllib3", "urllib3-injected", "requests", "httpx")
ASYNC = ("httpx-asyncio", "httpx-trio")
CLIENTS = (*SYNC, *ASYNC)
LABELS = {
    ENGINE: "engine: connect_by_name(ssl_context=) vs create_connection + wrap_socket",
    "urllib3": "urllib3",
    "urllib3-injected": "urllib3, inject_into_urllib3()",
    "requests": "requests",
    "httpx": "httpx",
    "httpx-asyncio": "httpx async (asyncio)",
    "httpx-trio": "httpx async (trio)",
}
RUNNERS = {"httpx-asyncio": "asyncio", "httpx-trio": "trio"}
_CLOSE = {"Connection": "close"}


@dataclass
class Outcome:
    """One request (or, for the engine, one TLS connect): the seconds it took, the
    status (None if it raised), the error's description, the peer an adapted
    connection reached."""

    seconds: float
    status: int | None
    error: str = ""
    remote: str | None = None


def describe(error: BaseException) -> str:
    """``TypeName: first line`` of an error, short."""
    text = str(error).splitlines()[0] if str(error) else ""
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(error).__name__}: {text}" if text else type(error).__name__


def _remote(response: object) -> str | None:
    try:
        return connection_info(response).remote_address[0]
    except LookupError:
        return None  # a stock client's response


def context(ca_file: str) -> ssl.SSLContext:
    """What a user builds to trust a private CA: ``ssl.create_default_context``."""
    return ssl.create_default_context(cafile=ca_file)


class _Urllib3:
    def __init__(self, adapted: bool, injected: bool, timeout: float, ca_file: str) -> None:
        import urllib3

        from connectbyname.adapters import urllib3 as cbn_urllib3

        options: dict[str, Any] = {
            "timeout": urllib3.Timeout(connect=timeout, read=READ_TIMEOUT),
            "retries": False,
            "ca_certs": ca_file,
        }
        self._injected = adapted and injected
        if adapted and not injected:
            self._pool: urllib3.PoolManager = cbn_urllib3.PoolManager(
                attempt_delay=ATTEMPT_DELAY, **options
            )
        else:
            if self._injected:
                cbn_urllib3.inject_into_urllib3(attempt_delay=ATTEMPT_DELAY)
            self._pool = urllib3.PoolManager(**options)

    def get(self, url: str, close: bool = False) -> tuple[int, str | None]:
        response = self._pool.request("GET", url, headers=_CLOSE if close else None)
        return response.status, _remote(response)

    def close(self) -> None:
        self._pool.clear()
        if self._injected:
            from connectbyname.adapters import urllib3 as cbn_urllib3

            cbn_urllib3.extract_from_urllib3()


class _Requests:
    def __init__(self, adapted: bool, timeout: float, ca_file: str) -> None:
        import requests

        from connectbyname.adapters import requests as cbn_requests

        self._session = (
            cbn_requests.Session(attempt_delay=ATTEMPT_DELAY) if adapted else requests.Session()
        )
        self._session.trust_env = False
        self._session.verify = ca_file
        self._timeout = (timeout, READ_TIMEOUT)

    def get(self, url: str, close: bool = False) -> tuple[int, str | None]:
        headers = _CLOSE if close else None
        response = self._session.get(url, headers=headers, timeout=self._timeout)
        return response.status_code, _remote(response)

    def close(self) -> None:
        self._session.close()


class _Httpx:
    def __init__(self, adapted: bool, timeout: float, ca_file: str) -> None:
        import httpx

        from connectbyname.adapters.httpx import ConnectByNameTransport

        verify = context(ca_file)
        self._client = httpx.Client(
            transport=ConnectByNameTransport(verify=verify, attempt_delay=ATTEMPT_DELAY)
            if adapted
            else None,
            verify=verify,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=timeout),
            trust_env=False,
        )

    def get(self, url: str, close: bool = False) -> tuple[int, str | None]:
        response = self._client.get(url, headers=_CLOSE if close else None)
        return response.status_code, _remote(response)

    def close(self) -> None:
        self._client.close()


class _HttpxAsync:
    """Make it inside the event loop that uses it."""

    def __init__(self, adapted: bool, timeout: float, ca_file: str) -> None:
        import httpx

        from connectbyname.adapters.httpx import AsyncConnectByNameTransport

        verify = context(ca_file)
        self._client = httpx.AsyncClient(
            transport=AsyncConnectByNameTransport(verify=verify, attempt_delay=ATTEMPT_DELAY)
            if adapted
            else None,
            verify=verify,
            timeout=httpx.Timeout(READ_TIMEOUT, connect=timeout),
            trust_env=False,
        )

    async def get(self, url: str, close: bool = False) -> tuple[int, str | None]:
        response = await self._client.get(url, headers=_CLOSE if close else None)
        return response.status_code, _remote(response)

    async def aclose(self) -> None:
        await self._client.aclose()


class _Engine:
    """A TLS connect to the URL's host and port, closed at once: the engine's
    ``connect_by_name(ssl_context=)`` (adapted) or ``socket.create_connection`` then
    ``wrap_socket`` (stock), each with the connect timeout on the whole of it; the
    "status" is 0 (no HTTP)."""

    def __init__(self, adapted: bool, timeout: float, ca_file: str) -> None:
        self._adapted, self._timeout = adapted, timeout
        self._context = context(ca_file)

    def get(self, url: str, close: bool = True) -> tuple[int, str | None]:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port or 443
        if self._adapted:
            made = connect_by_name(
                host,
                port,
                timeout=self._timeout,
                attempt_delay=ATTEMPT_DELAY,
                ssl_context=self._context,
            )
            made.close()
            return 0, made.remote_address[0]
        # create_connection's timeout stays on the socket, so it bounds the handshake.
        with self._context.wrap_socket(
            socket.create_connection((host, port), timeout=self._timeout),
            server_hostname=host,
        ):
            return 0, None

    def close(self) -> None:
        pass


def open_sync(key: str, adapted: bool, timeout: float, ca_file: str) -> Any:
    """A new client for ``key`` (or the engine's stand-in), stock or adapted."""
    if key == ENGINE:
        return _Engine(adapted, timeout, ca_file)
    if key in ("urllib3", "urllib3-injected"):
        return _Urllib3(adapted, key == "urllib3-injected", timeout, ca_file)
    if key == "requests":
        return _Requests(adapted, timeout, ca_file)
    return _Httpx(adapted, timeout, ca_file)


def fetch(key: str, adapted: bool, url: str, timeout: float, ca_file: str) -> Outcome:
    """GET ``url`` once with a new client (its set-up untimed), timed to the response
    or to the error."""
    if key in RUNNERS:

        async def run() -> Outcome:
            client = _HttpxAsync(adapted, timeout, ca_file)
            started = time.perf_counter()
            try:
                status, remote = await client.get(url)
            except Exception as exc:
                return Outcome(time.perf_counter() - started, None, describe(exc))
            finally:
                await client.aclose()
            return Outcome(time.perf_counter() - started, status, "", remote)

        outcome: Outcome = run_async(RUNNERS[key], run)
        return outcome
    client = open_sync(key, adapted, timeout, ca_file)
    started = time.perf_counter()
    try:
        try:
            status, remote = client.get(url)
        except Exception as exc:
            return Outcome(time.perf_counter() - started, None, describe(exc))
        return Outcome(time.perf_counter() - started, status, "", remote)
    finally:
        client.close()


def rate(
    key: str, adapted: bool, url: Callable[[], str], count: int, *, timeout: float, ca_file: str
) -> tuple[float, list[int]]:
    """``count`` sequential GETs of ``url()`` (one URL for the whole batch) with one
    client, a new connection each (``Connection: close``): the seconds they took and
    their statuses. For the engine, ``count`` TLS connects."""
    target = url()
    if key in RUNNERS:

        async def run() -> tuple[float, list[int]]:
            client = _HttpxAsync(adapted, timeout, ca_file)
            try:
                started = time.perf_counter()
                statuses = [(await client.get(target, close=True))[0] for _ in range(count)]
                return time.perf_counter() - started, statuses
            finally:
                await client.aclose()

        result: tuple[float, list[int]] = run_async(RUNNERS[key], run)
        return result
    client = open_sync(key, adapted, timeout, ca_file)
    try:
        started = time.perf_counter()
        statuses = [client.get(target, close=True)[0] for _ in range(count)]
        return time.perf_counter() - started, statuses
    finally:
        client.close()
