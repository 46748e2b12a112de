"""connectbyname injected into urllib3, requests and httpx for a whole pytest session
(loaded in the "injected" mode only). ``CBN_CONFORMANCE_INJECT`` names which of the
three (comma-separated; default all).

- urllib3: `connectbyname.adapters.urllib3.inject_into_urllib3` at configure time, so
  urllib3's own connection classes (and through them every pool, ``PoolManager`` and
  ``ProxyManager``) connect through the engine.
- requests: ``requests.sessions.HTTPAdapter``, the name ``Session.__init__`` calls for
  its two default mounts (and nothing else in requests), becomes
  `ConnectByNameAdapter`. So every ``Session`` (and ``requests.get`` & co., which
  make one) mounts the adapter for ``http://`` and ``https://``; code that builds
  ``requests.adapters.HTTPAdapter`` itself, or a subclass, gets exactly what it asked
  for (with urllib3 injected too, its connections still go through the engine).
- httpx: ``httpx._client.HTTPTransport`` / ``AsyncHTTPTransport``, the names that
  ``Client``/``AsyncClient`` call in ``_init_transport`` (the default transport) and
  ``_init_proxy_transport`` (one per proxy, from ``proxy=`` or the environment) and
  use for nothing else, become factories building `ConnectByNameTransport` /
  `AsyncConnectByNameTransport` with the same arguments. A transport the test builds
  itself (``transport=``, ``mounts=``) is left alone. ``uds`` (never passed by the
  clients in httpx 0.28, but a subclass could): the stock transport is built, since
  a Unix socket has no name to connect by.

Each patch first checks that the name still is what it replaces, and stops the run if
not (a new release moved it). Suites put stock classes back themselves (urllib3's
``http_version`` fixture resets both pools' ``ConnectionCls`` after every HTTP/2
test), so before each test every injection that is no longer in place is made again,
and the terminal summary says how often. It also counts the engine calls made through
the adapters, the proof that the injection took effect; run.py fails an injected run
that made none.
"""

from __future__ import annotations

import functools
import importlib
import inspect
import json
import os
from collections.abc import Callable
from typing import Any

import pytest

_ALL = ("urllib3", "requests", "httpx")
_undo: list[Callable[[], None]] = []
_injected: list[str] = []
#: name -> a check that puts the injection back if it is gone (True if it had to).
_keep: dict[str, Callable[[], bool]] = {}
_reinjected: dict[str, int] = {}


def _replace(owner: Any, name: str, expected: object, new: object) -> Callable[[], bool]:
    current = getattr(owner, name)
    if current is not expected:
        raise pytest.UsageError(
            f"conformance injection: {owner.__name__}.{name} is {current!r}, not "
            f"{expected!r}; the client changed where it builds its transport: update "
            "cbn_inject.py"
        )
    setattr(owner, name, new)
    _undo.append(lambda: setattr(owner, name, current))

    def keep() -> bool:
        if getattr(owner, name) is new:
            return False
        setattr(owner, name, new)
        return True

    return keep


def _inject_urllib3() -> Callable[[], bool]:
    from urllib3.connection import HTTPConnection

    from connectbyname.adapters import urllib3 as adapter

    adapter.inject_into_urllib3()
    _undo.append(adapter.extract_from_urllib3)

    def keep() -> bool:
        # Injection replaces urllib3's own connection methods, which no suite resets
        # (they reset the pools' ConnectionCls, which injection leaves alone).
        if HTTPConnection._new_conn is adapter._new_conn:
            return False
        adapter.inject_into_urllib3()
        return True

    return keep


def _inject_requests() -> Callable[[], bool]:
    import requests.adapters
    import requests.sessions

    from connectbyname.adapters.requests import ConnectByNameAdapter

    return _replace(
        requests.sessions, "HTTPAdapter", requests.adapters.HTTPAdapter, ConnectByNameAdapter
    )


def _inject_httpx() -> Callable[[], bool]:
    import httpx
    import httpx._client

    from connectbyname.adapters.httpx import (
        AsyncConnectByNameTransport,
        ConnectByNameTransport,
    )

    def sync_transport(**kwargs: Any) -> httpx.BaseTransport:
        if kwargs.get("uds") is not None:
            return httpx.HTTPTransport(**kwargs)
        kwargs.pop("uds", None)
        transport: httpx.BaseTransport = ConnectByNameTransport(**kwargs)
        return transport

    def async_transport(**kwargs: Any) -> httpx.AsyncBaseTransport:
        if kwargs.get("uds") is not None:
            return httpx.AsyncHTTPTransport(**kwargs)
        kwargs.pop("uds", None)
        transport: httpx.AsyncBaseTransport = AsyncConnectByNameTransport(**kwargs)
        return transport

    keep_sync = _replace(httpx._client, "HTTPTransport", httpx.HTTPTransport, sync_transport)
    keep_async = _replace(
        httpx._client, "AsyncHTTPTransport", httpx.AsyncHTTPTransport, async_transport
    )
    return lambda: keep_sync() | keep_async()


_INJECT = {"urllib3": _inject_urllib3, "requests": _inject_requests, "httpx": _inject_httpx}

#: Engine calls made through each adapter module.
_engine_calls: dict[str, int] = {}
#: The engine entry points the adapters call, by adapter module (best effort: a name
#: an adapter no longer uses is not counted).
_ENGINE_ENTRY_POINTS = {
    "connectbyname.adapters.urllib3": ("connect",),
    "connectbyname.adapters._httpx_streams": ("connect", "aconnect"),
}


def _counted(function: Any, key: str) -> Any:
    if inspect.iscoroutinefunction(function):

        async def acounted(*args: Any, **kwargs: Any) -> Any:
            _engine_calls[key] += 1
            return await function(*args, **kwargs)

        return functools.wraps(function)(acounted)

    def counted(*args: Any, **kwargs: Any) -> Any:
        _engine_calls[key] += 1
        return function(*args, **kwargs)

    return functools.wraps(function)(counted)


def _count_engine_calls() -> None:
    for module_name, names in _ENGINE_ENTRY_POINTS.items():
        module = importlib.import_module(module_name)
        for name in names:
            function = getattr(module, name, None)
            if function is None:
                continue
            key = f"{module_name.rsplit('.', 1)[1]}.{name}"
            _engine_calls[key] = 0
            setattr(module, name, _counted(function, key))
            _undo.append(functools.partial(setattr, module, name, function))


def pytest_configure(config: pytest.Config) -> None:
    names = [n.strip() for n in os.environ.get("CBN_CONFORMANCE_INJECT", ",".join(_ALL)).split(",")]
    for name in names:
        if name not in _INJECT:
            raise pytest.UsageError(f"CBN_CONFORMANCE_INJECT: unknown client {name!r}")
        _keep[name] = _INJECT[name]()
        _reinjected[name] = 0
        _injected.append(name)
    _count_engine_calls()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> Any:
    for name, keep in _keep.items():
        if keep():
            _reinjected[name] += 1
    return (yield)


def pytest_report_header(config: pytest.Config) -> str:
    import connectbyname

    where = os.path.dirname(connectbyname.__file__ or "?")
    return f"conformance: connectbyname injected into {', '.join(_injected)} (from {where})"


def pytest_terminal_summary(terminalreporter: Any, config: pytest.Config) -> None:
    counts = ", ".join(f"{key} {count}" for key, count in sorted(_engine_calls.items()))
    again = ", ".join(f"{name} {count}" for name, count in _reinjected.items())
    terminalreporter.write_line(f"conformance: engine calls through the adapters: {counts}")
    terminalreporter.write_line(f"conformance: injections made again before a test: {again}")
    out = os.environ.get("CBN_CONFORMANCE_OUTCOMES")
    if out and not hasattr(config, "workerinput"):
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps({"engine_calls": _engine_calls, "reinjected": _reinjected}) + "\n")


def pytest_unconfigure(config: pytest.Config) -> None:
    while _undo:
        _undo.pop()()
    _injected.clear()
    _keep.clear()
