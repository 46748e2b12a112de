"""Injection reaches libraries that bring their own urllib3 connection classes:
botocore's are subclasses of urllib3's HTTPConnection, and race once injected."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest

from connectbyname.adapters import urllib3 as cbn_urllib3
from connectbyname.testing.plugin import LabHost

botocore_session = pytest.importorskip("botocore.session")
botocore_config = pytest.importorskip("botocore.config")
botocore_exceptions = pytest.importorskip("botocore.exceptions")
botocore_parsers = pytest.importorskip("botocore.parsers")

# botocore before 1.35 calls datetime.utcnow(), deprecated from Python 3.12 on.
pytestmark = pytest.mark.filterwarnings(
    "ignore:datetime.datetime.utcnow:DeprecationWarning:botocore"
)


@pytest.fixture
def injected() -> Iterator[None]:
    cbn_urllib3.inject_into_urllib3()
    try:
        yield
    finally:
        cbn_urllib3.extract_from_urllib3()


def time_a_request(host: LabHost) -> float:
    """Seconds for an S3 call to the host to come back (any HTTP answer will do: the
    loopback server is no S3, and botocore's complaint about its reply is an answer)."""
    session = botocore_session.get_session()
    client = session.create_client(
        "s3",
        region_name="us-east-1",
        endpoint_url=f"http://{host.name}:{host.port}",
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=botocore_config.Config(
            connect_timeout=2, read_timeout=5, retries={"max_attempts": 1}
        ),
    )
    started = time.monotonic()
    try:
        client.list_buckets()
    except (
        botocore_exceptions.BotoCoreError,
        botocore_exceptions.ClientError,
        botocore_parsers.ResponseParserError,
    ) as exc:  # botocore cannot parse the loopback server's body
        assert "Connect" not in type(exc).__name__, exc  # noqa: PT017
    took = time.monotonic() - started
    client.close()
    return took


def test_stock_botocore_spends_its_connect_timeout_on_a_dead_ipv6_address(
    dual_stack_host: Callable[[str], LabHost],
) -> None:
    host = dual_stack_host("blackholed-v6")
    assert time_a_request(host) >= 2.0
    assert host.server is not None
    assert host.server.request_count >= 1  # it got there (botocore may ask twice)


@pytest.mark.usefixtures("injected")
def test_injected_botocore_races_and_keeps_its_own_connection_class(
    dual_stack_host: Callable[[str], LabHost],
) -> None:
    AWSHTTPConnection = pytest.importorskip("botocore.awsrequest").AWSHTTPConnection

    host = dual_stack_host("blackholed-v6")
    assert time_a_request(host) < 1.5  # a quarter of a second, with room for load
    assert host.server is not None
    assert host.server.request_count >= 1  # it got there (botocore may ask twice)
    assert AWSHTTPConnection._new_conn is cbn_urllib3._new_conn  # inherited, not replaced
