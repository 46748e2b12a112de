"""requests with the connect-by-name engine: a transport adapter and a ready `Session`.

::

    session = connectbyname.adapters.requests.Session(attempt_delay=0.1)
    response = session.get("https://example.test/", timeout=(3, 10))
    connectbyname.connection_info(response).remote_address

The connect part of requests' ``timeout`` (the first of ``(connect, read)``, or the
single number) bounds name resolution and every attempt together; the read timeout is
unchanged. Proxies, explicit or from the environment (``trust_env``), are reached
through the engine too, and HTTPS through a proxy is tunnelled with ``CONNECT`` as
stock requests does; SOCKS proxies are left to urllib3's SOCKS support, which makes its
own connection. Failures surface as requests' own ``ConnectTimeout`` and
``ConnectionError``, where stock requests raises them; an address refused by the
engine's ``policy`` (redirect targets included: each new connection is vetted) raises
`ConnectByNameAddressDeniedError`, a `requests.RequestException` that is not a
``ConnectionError``, so code that retries connection errors does not retry it.
"""

from __future__ import annotations

from typing import Any, Unpack

import requests
from requests.adapters import (
    DEFAULT_POOLBLOCK,
    DEFAULT_POOLSIZE,
    DEFAULT_RETRIES,
    HTTPAdapter,
)
from urllib3.util.retry import Retry

from connectbyname import Attempt, EngineOptions, PolicyDenial
from connectbyname._parse import options_from

from .urllib3 import ConnectByNameAddressDeniedError as _Urllib3AddressDenied
from .urllib3 import PoolManager, proxy_from_url

__all__ = ["ConnectByNameAdapter", "ConnectByNameAddressDeniedError", "Session"]


class ConnectByNameAddressDeniedError(requests.RequestException, PolicyDenial):
    """The engine's address policy refused every address of the host; ``__cause__`` is
    urllib3's error, whose cause is the `connectbyname.AddressDeniedError`. A
    `connectbyname.PolicyDenial`, as every client's refusal is."""

    @property
    def attempts(self) -> tuple[Attempt, ...]:  # type: ignore[override]
        """Every attempt the refused connect made (empty if the cause was lost)."""
        cause = self.__cause__
        return cause.attempts if isinstance(cause, _Urllib3AddressDenied) else ()


class ConnectByNameAdapter(HTTPAdapter):
    """requests' `~requests.adapters.HTTPAdapter`, connecting through the engine.

    Takes every ``HTTPAdapter`` argument plus the engine's options
    (`connectbyname.EngineOptions`, kept in ``engine_options``). Mount it on a session for
    ``http://`` and ``https://``, or use `Session`. It pickles like ``HTTPAdapter`` (a
    ``resolver`` or ``policy`` must then be picklable, e.g. a module-level function).
    """

    # What pickling keeps: HTTPAdapter's list plus the engine options.
    __attrs__ = [*HTTPAdapter.__attrs__, "engine_options"]  # noqa: RUF012

    def __init__(
        self,
        pool_connections: int = DEFAULT_POOLSIZE,
        pool_maxsize: int = DEFAULT_POOLSIZE,
        max_retries: int | Retry = DEFAULT_RETRIES,
        pool_block: bool = DEFAULT_POOLBLOCK,
        **engine_options: Unpack[EngineOptions],
    ) -> None:
        options_from(engine_options)
        # Before HTTPAdapter.__init__, which builds the pool manager from them.
        self.engine_options = engine_options
        super().__init__(pool_connections, pool_maxsize, max_retries, pool_block)

    def send(self, request: Any, *args: Any, **kwargs: Any) -> requests.Response:
        try:
            return super().send(request, *args, **kwargs)
        except _Urllib3AddressDenied as exc:
            raise ConnectByNameAddressDeniedError(exc, request=request) from exc

    def init_poolmanager(
        self,
        connections: int,
        maxsize: int,
        block: bool = DEFAULT_POOLBLOCK,
        **pool_kwargs: Any,
    ) -> None:
        # As HTTPAdapter.init_poolmanager (these three are what __setstate__ rebuilds
        # from), with the engine's PoolManager.
        self._pool_connections = connections
        self._pool_maxsize = maxsize
        self._pool_block = block
        self.poolmanager = PoolManager(
            num_pools=connections,
            maxsize=maxsize,
            block=block,
            **{**self.engine_options, **pool_kwargs},
        )

    def proxy_manager_for(self, proxy: str, **proxy_kwargs: Any) -> Any:
        if proxy in self.proxy_manager or proxy.lower().startswith("socks"):
            return super().proxy_manager_for(proxy, **proxy_kwargs)
        manager = self.proxy_manager[proxy] = proxy_from_url(
            proxy,
            proxy_headers=self.proxy_headers(proxy),
            num_pools=self._pool_connections,
            maxsize=self._pool_maxsize,
            block=self._pool_block,
            **{**self.engine_options, **proxy_kwargs},
        )
        return manager


class Session(requests.Session):
    """A `requests.Session` with a `ConnectByNameAdapter` mounted for ``http://`` and
    ``https://``, built with these engine options."""

    def __init__(self, **engine_options: Unpack[EngineOptions]) -> None:
        super().__init__()
        # One adapter per prefix, as requests.Session mounts its own.
        for prefix in ("https://", "http://"):
            self.mount(prefix, ConnectByNameAdapter(**engine_options))
