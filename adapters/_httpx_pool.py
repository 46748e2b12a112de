"""httpx's private plumbing, fenced off: the one place this adapter touches httpx's
private API, and what httpx's transports do that has to be done again for ours.

httpx (tested: 0.28, 0.29) has no public way to give `httpx.HTTPTransport` a network backend:
its ``__init__`` builds an httpcore pool into ``self._pool``, and ``handle_request``,
``close``, ``__enter__`` and ``__exit__`` (async: their async forms) use nothing else.
Our transports skip that ``__init__`` and put in a pool built with httpcore's public
constructors and our network backend (`install_pool`), so httpx's request and response
conversion and its error mapping stay exactly stock. `check_private_api` checks that
contract when the adapter is imported, and fails with the versions tested rather than
mid-request.

Also here: the pool httpx would build (`build_pool`), and the environment's proxies,
which a client given ``transport=`` no longer routes itself (`environment_proxies`,
`environment_route`).
"""

from __future__ import annotations

import importlib.metadata
import urllib.request
from typing import Any

try:
    import httpcore
    import httpx
except ModuleNotFoundError as exc:
    from . import missing_client

    missing_client(exc, "httpx")

#: The httpx releases this adapter was tested with (see the README's version table).
TESTED = "httpx 0.28.0 to 0.29.0"

_USES_POOL = {
    httpx.HTTPTransport: ("handle_request", "close", "__enter__", "__exit__"),
    httpx.AsyncHTTPTransport: ("handle_async_request", "aclose", "__aenter__", "__aexit__"),
}


def check_private_api() -> None:
    """Fail at import, naming the versions tested, if httpx's transports no longer keep
    their httpcore pool in ``_pool`` and use nothing else of themselves."""
    for cls, methods in _USES_POOL.items():
        for name in methods:
            code = getattr(getattr(cls, name), "__code__", None)
            if code is None or "_pool" not in code.co_names:
                version = importlib.metadata.version("httpx")
                raise ImportError(
                    f"connectbyname.adapters.httpx works with {TESTED}; httpx {version}'s "
                    f"{cls.__name__}.{name} no longer uses the private _pool this adapter "
                    "replaces. Install a tested httpx, or a newer connectbyname."
                )


def install_pool(transport: httpx.HTTPTransport | httpx.AsyncHTTPTransport, pool: Any) -> None:
    """PRIVATE API of httpx: the transport's httpcore pool (see the module's docstring)."""
    transport._pool = pool


def build_pool(
    proxy: httpx.Proxy | None,
    backend: httpcore.NetworkBackend | httpcore.AsyncNetworkBackend,
    settings: dict[str, Any],
    classes: tuple[type[Any], type[Any], type[Any]],
) -> Any:
    """The httpcore pool `httpx.HTTPTransport.__init__` would build, with ``backend``."""
    pool, http_proxy, socks_proxy = classes
    limits: httpx.Limits = settings["limits"]
    common = {
        "ssl_context": settings["ssl_context"],
        "max_connections": limits.max_connections,
        "max_keepalive_connections": limits.max_keepalive_connections,
        "keepalive_expiry": limits.keepalive_expiry,
        "http1": settings["http1"],
        "http2": settings["http2"],
        "retries": settings["retries"],
        "network_backend": backend,
    }
    tcp = {"local_address": settings["local_address"], "socket_options": settings["socket_options"]}
    if proxy is None:
        return pool(**common, **tcp)
    url = httpcore.URL(
        scheme=proxy.url.raw_scheme,
        host=proxy.url.raw_host,
        port=proxy.url.port,
        target=proxy.url.raw_path,
    )
    if proxy.url.scheme in ("http", "https"):
        return http_proxy(
            proxy_url=url,
            proxy_auth=proxy.raw_auth,
            proxy_headers=proxy.headers.raw,
            proxy_ssl_context=proxy.ssl_context,
            **common,
            **tcp,
        )
    # Proxy() accepts no other schemes than these.
    return socks_proxy(proxy_url=url, proxy_auth=proxy.raw_auth, **common)


def environment_proxies(trust_env: bool) -> dict[str, str]:
    """The environment's proxies by scheme (``http``, ``https``, ``all``, and ``no``)."""
    if not trust_env:
        return {}
    found = urllib.request.getproxies()
    proxies = {
        scheme: url if "://" in url else f"http://{url}"
        for scheme, url in found.items()
        if scheme in ("http", "https", "all") and url
    }
    if proxies and found.get("no"):
        proxies["no"] = found["no"]
    return proxies


def environment_route(url: httpx.URL, proxies: dict[str, str], routes: dict[str, Any]) -> Any:
    """The proxy transport for ``url`` per the environment, or ``None`` to go direct."""
    scheme = url.scheme if url.scheme in routes else "all"
    route = routes.get(scheme)
    if route is None:
        return None
    if urllib.request.proxy_bypass_environment(url.host, proxies):  # type: ignore[attr-defined]
        return None
    return route
