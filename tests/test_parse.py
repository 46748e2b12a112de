"""Parameter checking: every bad input is refused at once with a documented error."""

from __future__ import annotations

import errno
import math
import pickle
import socket
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connectbyname import (
    ConnectByNameError,
    InvalidParameterError,
    NameResolutionError,
    TimedOutError,
    _parse,
    connect_by_name,
)
from connectbyname._parse import (
    ATTEMPT_DELAY_RULE,
    FALLBACK_SERVICES,
    check_call,
    check_options,
    options_from,
    parse_target,
)


def options(**overrides: Any) -> Any:
    """The call's options and the engine's, checked as connect_by_name checks them."""
    call = {
        k: overrides.pop(k)
        for k in ("timeout", "source_address", "socket_options")
        if k in overrides
    }
    engine = check_options(**overrides)
    checked = check_call(
        call.get("timeout"), call.get("source_address"), call.get("socket_options", ())
    )
    return engine if not call else checked


@pytest.mark.parametrize(
    ("nodename", "host", "literal"),
    [
        ("127.0.0.1", "127.0.0.1", (socket.AF_INET, ("127.0.0.1", 80))),
        ("::1", "::1", (socket.AF_INET6, ("::1", 80, 0, 0))),
        ("[::1]", "::1", (socket.AF_INET6, ("::1", 80, 0, 0))),
        (
            "[::FFFF:127.0.0.1]",
            "::ffff:127.0.0.1",
            (socket.AF_INET6, ("::ffff:127.0.0.1", 80, 0, 0)),
        ),
        ("fe80::1%1", "fe80::1", (socket.AF_INET6, ("fe80::1", 80, 0, 1))),
        ("example.test", "example.test", None),
        ("Example.TEST.", "Example.TEST.", None),
        ("bücher.test", "xn--bcher-kva.test", None),
        ("faß.test", "xn--fa-hia.test", None),  # UTS 46 non-transitional: ß is kept
        (b"example.test", "example.test", None),
        ("my_host", "my_host", None),
        ("127.1", "127.1", None),  # not a strict literal: the resolver decides
    ],
)
def test_nodenames(nodename: str | bytes, host: str, literal: object) -> None:
    target = parse_target(nodename, 80)
    assert target.host == host
    assert target.literal == literal
    assert target.port == 80


def test_link_local_scope_by_interface_name() -> None:
    name = socket.if_indextoname(1)
    target = parse_target(f"fe80::1%{name}", "80")
    assert target.literal == (socket.AF_INET6, ("fe80::1", 80, 0, 1))


@pytest.mark.parametrize(
    "nodename",
    [
        None,
        "",
        b"\xff",
        "a b",
        "a\r\nb",
        "a\x00b",
        "x" * 64 + ".test",
        ".".join(["a" * 60] * 5),
        "a..b",
        "xn--zz.test\u00e9",
        "[127.0.0.1]",
        "[::1",
        "fe80::1%no-such-interface0",
        "1:2:3",
        80,
        ("localhost", 80),
    ],
)
def test_bad_nodenames_are_invalid_parameters(nodename: object) -> None:
    with pytest.raises(InvalidParameterError) as info:
        parse_target(nodename, 80)
    assert info.value.errno == errno.EINVAL
    assert isinstance(info.value, ValueError)


@pytest.mark.parametrize(
    ("servicename", "port"),
    [(443, 443), ("8080", 8080), (b"22", 22), ("http", 80), ("HTTPS", 443), ("65535", 65535)],
)
def test_services(servicename: object, port: int) -> None:
    assert parse_target("example.test", servicename).port == port


@pytest.mark.parametrize(
    "servicename", [None, 0, -1, 65536, "0", "70000", "", " 80", "8 0", True, 80.0, "a\x00", [80]]
)
def test_bad_services_are_invalid_parameters(servicename: object) -> None:
    with pytest.raises(InvalidParameterError):
        parse_target("example.test", servicename)


def test_unknown_service_is_a_resolution_error() -> None:
    with pytest.raises(NameResolutionError) as info:
        parse_target("example.test", "no-such-service")
    assert info.value.errno == socket.EAI_SERVICE


def test_services_fall_back_when_the_database_is_missing(monkeypatch: pytest.MonkeyPatch) -> None:
    from connectbyname import _parse

    def missing(name: str, proto: str) -> int:
        raise OSError("service not found")

    _parse._services_database.cache_clear()
    monkeypatch.setattr(socket, "getservbyname", missing)
    try:
        assert parse_target("example.test", "https").port == 443
        assert parse_target("example.test", "http").port == FALLBACK_SERVICES["http"]
        with pytest.raises(NameResolutionError):
            parse_target("example.test", "ssh")
    finally:
        _parse._services_database.cache_clear()


@pytest.mark.parametrize(
    "overrides",
    [
        {"timeout": -1},
        {"timeout": 0},  # the one rule: a timeout is more than 0, or None
        {"timeout": 0.0},
        {"timeout": math.nan},
        {"timeout": "1"},
        {"timeout": True},
        {"attempt_delay": 0.005},
        {"attempt_delay": 0},
        {"attempt_delay": math.inf},
        {"attempt_delay": math.nan},
        {"attempt_delay": 2**1100},  # beyond a float: infinite, so not finite
        {"resolution_delay": math.inf},
        {"resolution_delay": -0.1},
        {"family": socket.AF_UNIX},
        {"family": 99},
        {"family": 2.0},
        {"family": True},
        {"source_address": "127.0.0.1"},
        {"source_address": ("localhost", 0)},
        {"source_address": ("127.0.0.1", 70000)},
        {"socket_options": [(1, 2)]},
        {"socket_options": "nodelay"},
        {"socket_options": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1.5)]},
        {"socket_options": [(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1.0)]},
        {"socket_options": [(2**40, 1, 1)]},
        {"socket_options": [(1, 9, 2**40)]},
        {"socket_options": [(1, 2**31, 1)]},
        {"socket_options": [(1, 9, None)]},
        {"socket_options": [(1, 9, 1, 4)]},
        {"history": 1},
        {"resolver": "getaddrinfo"},
        {"policy": 42},
    ],
)
def test_bad_options_are_invalid_parameters(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidParameterError):
        options(**overrides)


def test_option_values() -> None:
    assert options(timeout=math.inf).timeout is None
    assert options(timeout=2**1100).timeout is None  # beyond a float: no limit
    assert options(timeout=1e10).timeout == 1e10
    assert options(timeout=3).timeout == 3.0
    assert options(attempt_delay=None).attempt_delay is None
    assert options(attempt_delay=1e10).attempt_delay == 1e10
    assert options(source_address=("::1", 0)).source_family == socket.AF_INET6
    assert options(source_address=("[::1]", 0)).source_address == ("::1", 0)
    assert options(source_address=("127.0.0.1", 0)).source_family == socket.AF_INET
    assert options(source_address=("", 5000)).source_family is None
    nodelay = (socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    assert options(socket_options=[list(nodelay)]).socket_options == (nodelay,)
    assert options(socket_options=[(6, 1, True)]).socket_options == (nodelay,)
    assert options(socket_options=[(6, 1, None, 4)]).socket_options == ((6, 1, None, 4),)
    assert options(socket_options=[(1, 25, bytearray(b"lo"))]).socket_options == ((1, 25, b"lo"),)


def test_the_attempt_delay_rule_has_one_message() -> None:
    for bad in (0, 0.005, math.inf):
        with pytest.raises(InvalidParameterError) as info:
            check_options(attempt_delay=bad)
        assert info.value.strerror == ATTEMPT_DELAY_RULE


def test_default_options_are_one_shared_object() -> None:
    assert check_options() is check_options(attempt_delay=0.25, history=True)
    assert check_call(None) is check_call(None, None, ())


def test_unknown_engine_options_are_a_type_error_naming_the_known_ones() -> None:
    with pytest.raises(TypeError, match=r"unknown engine option.*atempt_delay.*attempt_delay"):
        options_from({"atempt_delay": 1})


def test_targets_are_remembered_without_a_bool_passing_for_a_port() -> None:
    target = parse_target("example.test", 80)
    assert parse_target("example.test", 80) is target
    with pytest.raises(InvalidParameterError):
        parse_target("example.test", True)  # True == 1 and hashes like it
    assert parse_target("example.test", 1).port == 1


def test_a_scoped_literal_is_not_remembered() -> None:
    # Interface indexes change as interfaces come and go: look the scope up each time.
    _parse._targets.clear()
    parse_target("::1", 80)
    assert len(_parse._targets) == 1
    parse_target("fe80::1%1", 80)
    assert len(_parse._targets) == 1


def test_remembered_targets_are_bounded_oldest_first() -> None:
    _parse._targets.clear()
    for n in range(_parse._TARGETS_SIZE + 10):
        parse_target(f"host{n}.test", 80)
    assert len(_parse._targets) == _parse._TARGETS_SIZE
    assert ("host0.test", 80, int) not in _parse._targets
    assert (f"host{_parse._TARGETS_SIZE + 9}.test", 80, int) in _parse._targets


def test_connect_refuses_bad_input_before_any_resolution() -> None:
    calls: list[object] = []

    def resolver(*args: object) -> list[Any]:
        calls.append(args)
        return []

    bad_inputs: list[dict[str, object]] = [{"nodename": None}, {"servicename": 0}, {"timeout": -1}]
    for bad in bad_inputs:
        kwargs: dict[str, Any] = {"nodename": "example.test", "servicename": 80}
        kwargs.update(bad)
        with pytest.raises(InvalidParameterError):
            connect_by_name(
                kwargs.pop("nodename"), kwargs.pop("servicename"), resolver=resolver, **kwargs
            )
    assert calls == []


def test_errors_pickle_with_their_details() -> None:
    error = TimedOutError("timed out", nodename="example.test", servicename=80)
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is TimedOutError
    assert (copy.errno, copy.strerror, copy.nodename) == (
        errno.ETIMEDOUT,
        "timed out",
        "example.test",
    )


anything = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=300),
    st.binary(max_size=300),
    st.lists(st.integers(), max_size=3),
)


@settings(max_examples=400, deadline=None)
@given(nodename=anything, servicename=anything, timeout=anything, delay=anything)
def test_hostile_input_gets_only_documented_errors(
    nodename: object, servicename: object, timeout: object, delay: object
) -> None:
    error: ConnectByNameError | None = None
    try:
        parse_target(nodename, servicename)
        check_call(timeout)
        check_options(attempt_delay=delay)
    except ConnectByNameError as exc:
        error = exc
    if error is not None:
        assert isinstance(error, InvalidParameterError | NameResolutionError)
        assert error.strerror
