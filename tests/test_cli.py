"""The command-line tool, run as a subprocess like a user would."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from connectbyname.testing import Blackhole


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "connectbyname", *args],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_connects_and_prints_the_addresses_and_the_race() -> None:
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        with Blackhole("::1", port):
            result = run(
                "dual.test", str(port), "--timeout", "5", "--resolve", "dual.test=::1,127.0.0.1"
            )
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "nodename:       dual.test" in out
    assert f"servicename:    {port}" in out
    assert f"remote address: 127.0.0.1:{port}" in out
    assert "local address:  127.0.0.1:" in out
    lines = [line for line in out.splitlines() if line.strip().startswith("+")]
    assert f"[::1]:{port}" in lines[0]
    assert "abandoned" in lines[0]
    assert f"127.0.0.1:{port}" in lines[1]
    assert "connected" in lines[1]
    assert "|" in lines[1]


def test_json_output_and_failure_exit_status() -> None:
    with socket.socket() as bound:
        bound.bind(("127.0.0.1", 0))  # bound, not listening: refused
        port = bound.getsockname()[1]
        result = run("127.0.0.1", str(port), "--json")
    assert result.returncode == 1
    report = json.loads(result.stdout)
    assert report["connected"] is False
    assert report["error"]["type"] == "RefusedError"
    assert report["attempts"][0]["outcome"] == "refused"
    assert report["attempts"][0]["address"] == f"127.0.0.1:{port}"


def test_errors_are_named_with_their_code() -> None:
    result = run("127.0.0.1", "80", "--public-only")
    assert result.returncode == 1
    assert "failed:         AddressDeniedError (EACCES 13)" in result.stdout
    assert "denied" in result.stdout


def test_usage_errors_exit_2() -> None:
    assert run().returncode == 2
    assert run("localhost", "99999").returncode == 2
    assert run("localhost", "80", "--attempt-delay", "0.001").returncode == 2
    assert run("localhost", "80", "--resolve", "oops").returncode == 2
