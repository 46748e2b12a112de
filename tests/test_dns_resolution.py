"""`connectbyname._dns._resolver.Resolution` on the cases that need no nameserver (the
rest is in ``test_dns_differential``, against glibc in network namespaces)."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from connectbyname._dns import _config
from connectbyname._dns._resolver import Resolution

U = (socket.AF_INET6, socket.AF_INET)
V4 = (socket.AF_INET,)
V6 = (socket.AF_INET6,)


def system(hosts: str = "127.0.0.1 localhost\n") -> _config.SystemConfig:
    return _config.SystemConfig(
        _config.parse_resolv_conf("nameserver 127.0.0.1\n", {}, "host"),
        _config.parse_hosts(hosts),
        _config.parse_nsswitch("hosts: files dns\n"),
        _config.parse_host_conf("multi on\n"),
        _config.parse_gai_conf(None),
    )


def no_socket(*args: Any) -> socket.socket:
    raise AssertionError("no query is sent")


def resolve(name: str, families: tuple[socket.AddressFamily, ...]) -> dict[int, Any]:
    """What each family's lookup says: its addresses, or its EAI code."""
    resolution = Resolution(system(), name, 80, families, no_socket)
    resolution.start(0.0)
    assert not resolution.pending()
    results: dict[int, Any] = {}
    for family, lookup in resolution.lookups.items():
        assert lookup.done()
        if lookup.error is not None:
            results[family] = lookup.error.errno
        else:
            results[family] = [candidate.address[0] for candidate in lookup.candidates]
    return results


@pytest.mark.parametrize(
    ("name", "address"),
    [("127.1", "127.0.0.1"), ("0x7f.1", "127.0.0.1"), ("123", "0.0.0.123"), ("010.1", "8.0.0.1")],
)
def test_inet_aton_forms_are_ipv4_addresses(name: str, address: str) -> None:
    """glibc's getaddrinfo reads ``inet_aton`` forms as IPv4 addresses, before any
    source; AF_INET6 gets EAI_ADDRFAMILY (glibc notes §1, table row 56)."""
    assert resolve(name, V4) == {socket.AF_INET: [address]}
    assert resolve(name, V6) == {socket.AF_INET6: socket.EAI_ADDRFAMILY}
    both = resolve(name, U)
    assert both[socket.AF_INET] == [address]
    assert both[socket.AF_INET6] == socket.EAI_ADDRFAMILY


@pytest.mark.parametrize("name", ["1.2.3.4.5", "999.1.1.1", "1..2"])
def test_digits_and_dots_are_no_name_for_ipv4(name: str) -> None:
    """AF_INET: a name of digits and dots that is no IPv4 address is EAI_NONAME with
    no query (``__nss_hostname_digits_dots``, row 55); other families ask DNS."""
    assert resolve(name, V4) == {socket.AF_INET: socket.EAI_NONAME}
    if _config.check_name(name):
        with pytest.raises(AssertionError, match="no query is sent"):
            resolve(name, U)


def test_the_hosts_file_takes_names_dns_would_refuse() -> None:
    """glibc checks a name (``res_hnok``) in its dns module only: a hosts line for
    ``-dash.test`` answers; without one, the name is EAI_NONAME with no query."""
    resolution = Resolution(system("10.0.0.11 -dash.test\n"), "-dash.test", 80, V4, no_socket)
    resolution.start(0.0)
    assert [c.address[0] for c in resolution.lookups[socket.AF_INET].candidates] == ["10.0.0.11"]
    assert resolve("-dash.test", U) == {
        socket.AF_INET6: socket.EAI_NONAME,
        socket.AF_INET: socket.EAI_NONAME,
    }
