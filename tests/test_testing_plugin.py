"""connectbyname.testing's pytest plugin, as a user's test suite meets it."""

from __future__ import annotations

import socket
import time
from collections.abc import Callable

import pytest
import urllib3

from connectbyname import TimedOutError, connect_by_name
from connectbyname.adapters import urllib3 as cbn_urllib3
from connectbyname.testing.plugin import LabHost

pytest_plugins = ["pytester"]


def test_the_plugin_is_registered_for_every_pytest_run(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(
        """
        import urllib3

        def test_a_users_own_test(dual_stack_host):
            host = dual_stack_host("refused-v6")
            response = urllib3.request("GET", host.url("/"), timeout=3, retries=False)
            assert response.status == 200
        """
    )
    result = pytester.runpytest_subprocess("-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_a_blackholed_ipv6_host_costs_stock_urllib3_its_timeout_and_the_adapter_a_delay(
    dual_stack_host: Callable[[str], LabHost],
) -> None:
    host = dual_stack_host("blackholed-v6")
    assert socket.getaddrinfo(host.name, host.port, socket.AF_INET6)[0][4][0] == "::1"
    started = time.monotonic()
    stock = urllib3.PoolManager().request("GET", host.url("/"), timeout=1.0, retries=False)
    stock_took = time.monotonic() - started
    started = time.monotonic()
    adapted = cbn_urllib3.PoolManager().request("GET", host.url("/"), timeout=1.0)
    adapted_took = time.monotonic() - started
    assert stock.status == adapted.status == 200
    assert stock_took >= 1.0  # the whole connect timeout, on the dead address
    assert adapted_took < 0.9  # a quarter of a second, with room for a loaded machine


def test_every_kind_of_host_behaves_as_named(dual_stack_host: Callable[[str], LabHost]) -> None:
    for kind in ("blackholed-v6", "refused-v6", "blackholed-v4", "refused-v4", "slow-aaaa"):
        host = dual_stack_host(kind)
        with connect_by_name(host.name, host.port, timeout=5, history=False) as conn:
            working = "127.0.0.1" if kind.endswith("v6") or kind == "slow-aaaa" else "::1"
            assert conn.remote_address[0] == working, kind
    dead = dual_stack_host("all-dead")
    with pytest.raises(TimedOutError):
        connect_by_name(dead.name, dead.port, timeout=0.3, history=False)
    slow = dual_stack_host("slow-aaaa")
    started = time.monotonic()
    socket.getaddrinfo(slow.name, slow.port, socket.AF_INET6)
    assert time.monotonic() - started >= 0.3
