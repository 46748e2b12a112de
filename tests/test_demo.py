"""``connectbyname demo`` run as a subprocess, as a user runs it."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time

import pytest

# label, time, outcome, remote address, attempts (see _demo._table)
ROW = re.compile(
    r"^(?P<label>\S.*?)\s{2,}(?P<time>[\d.]+)s\s{2,}(?P<outcome>HTTP \d+|\S.*?)\s{2,}"
    r"(?P<remote>\S+(?: \*)?)\s{2,}(?P<attempts>.*)$"
)
MISSING = re.compile(r"^(?P<label>\S.*?)\s{2,}-\s{2,}not available\s")


def run_demo(*args: str, limit: float = 30.0) -> tuple[subprocess.CompletedProcess[str], float]:
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-m", "connectbyname", "demo", *args],
        capture_output=True,
        text=True,
        timeout=limit,
        env={**os.environ, "PYTHONWARNINGS": "error"},
        check=False,
    )
    return result, time.monotonic() - started


def rows(output: str) -> dict[str, dict[str, str]]:
    found = {}
    for line in output.splitlines():
        match = ROW.match(line)
        if match and match["label"] != "client":
            found[match["label"]] = match.groupdict()
    return found


def adapted_rows(table: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
    return {label: row for label, row in table.items() if label.endswith("+ connectbyname")}


def test_blackholed_ipv6_adapters_connect_to_ipv4_quickly() -> None:
    result, took = run_demo("--timeout", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    output = result.stdout
    table = rows(output)
    adapted = adapted_rows(table)
    # urllib3 and requests adapters exist; rows of missing adapters say so visibly.
    missing = [m["label"] for m in map(MISSING.match, output.splitlines()) if m]
    assert "urllib3 + connectbyname" in adapted
    assert "socket + connectbyname" in adapted  # the engine alone: always there
    assert len(adapted) + len(missing) == 6
    for label, row in adapted.items():
        assert row["outcome"] == "HTTP 200", label
        assert row["remote"].startswith("127.0.0.1:"), label
        assert float(row["time"]) < 1.0, label
        assert "abandoned" in row["attempts"], label
        assert row["attempts"].endswith("connected"), label
    # The stock sync clients really waited the connect timeout on the blackhole.
    for label in ("socket", "urllib3", "requests", "httpx"):
        assert float(table[label]["time"]) >= 1.9, label
        assert table[label]["remote"].startswith("127.0.0.1:"), label
    assert "The engine's timeline" in output
    assert re.search(r"\[::1\]:\d+\s+abandoned", output)
    assert took < 20


def test_slow_dns_scenario() -> None:
    result, _ = run_demo("--scenario", "slow-dns", "--timeout", "2")
    assert result.returncode == 0, result.stdout + result.stderr
    adapted = adapted_rows(rows(result.stdout))
    assert adapted
    for label, row in adapted.items():
        assert row["remote"].startswith("127.0.0.1:"), label


@pytest.mark.parametrize("args", [["--scenario", "nope"], ["--timeout", "-1"]])
def test_usage_errors_exit_2(args: list[str]) -> None:
    result, _ = run_demo(*args)
    assert result.returncode == 2
