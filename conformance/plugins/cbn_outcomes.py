"""Record each test's outcome, one JSON line per test, to the file named by
``CBN_CONFORMANCE_OUTCOMES`` (loaded in both modes).

A line is written as soon as a test's teardown is over, so a run that is killed keeps
what it had. Outcomes: ``passed``, ``failed``, ``skipped``, ``xfailed``, ``xpassed``,
``error`` (setup or teardown failed, or the file did not collect). ``reason`` is one
line: the exception's message for a failure, the reason for a skip.
"""

from __future__ import annotations

import json
import os
from typing import IO, Any

import pytest

_MAX_REASON = 300


def _one_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    line = lines[0] if lines else ""
    return line if len(line) <= _MAX_REASON else line[: _MAX_REASON - 3] + "..."


def _reason(report: pytest.TestReport | pytest.CollectReport) -> str:
    longrepr = report.longrepr
    if longrepr is None:
        return ""
    if isinstance(longrepr, tuple):  # a skip: (path, line, reason)
        return _one_line(str(longrepr[2]).removeprefix("Skipped: "))
    crash = getattr(longrepr, "reprcrash", None)
    message = getattr(crash, "message", None)
    if isinstance(message, str) and message.strip():
        return _one_line(message)
    text = str(longrepr)
    # With --tb=native the exception line is the last one.
    lines = [line for line in text.splitlines() if line.strip()]
    return _one_line(lines[-1] if lines else text)


class _Recorder:
    def __init__(self, out: IO[str]) -> None:
        self._out = out
        self._current: dict[str, dict[str, Any]] = {}

    def _write(self, record: dict[str, Any]) -> None:
        self._out.write(json.dumps(record) + "\n")
        self._out.flush()

    @pytest.hookimpl(trylast=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        record = self._current.setdefault(
            report.nodeid, {"id": report.nodeid, "outcome": None, "reason": "", "duration": 0.0}
        )
        record["duration"] += report.duration
        xfail = hasattr(report, "wasxfail")
        if report.when == "call":
            if report.passed:
                record["outcome"] = "xpassed" if xfail else "passed"
            elif report.skipped:
                record["outcome"] = "xfailed" if xfail else "skipped"
                record["reason"] = _one_line(str(report.wasxfail)) if xfail else _reason(report)
            else:
                record["outcome"] = "failed"
                record["reason"] = _reason(report)
        elif report.failed:  # setup or teardown
            if record["outcome"] not in ("failed", "error"):
                record["outcome"] = "error"
                record["reason"] = f"{report.when}: {_reason(report)}"
        elif report.skipped:  # setup: a skip mark, or pytest.skip() in a fixture
            record["outcome"] = "xfailed" if xfail else "skipped"
            record["reason"] = _one_line(str(report.wasxfail)) if xfail else _reason(report)
        if report.when == "teardown":
            del self._current[report.nodeid]
            self._write(record)

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed:
            self._write({"id": report.nodeid, "outcome": "error", "reason": _reason(report)})

    def pytest_sessionfinish(self, session: pytest.Session, exitstatus: int) -> None:
        for record in self._current.values():  # tests cut short (a teardown never ran)
            self._write(record)
        self._write({"session_finished": int(exitstatus)})


def pytest_configure(config: pytest.Config) -> None:
    path = os.environ.get("CBN_CONFORMANCE_OUTCOMES")
    if path and not hasattr(config, "workerinput"):  # the controller only, under xdist
        out = open(path, "a", encoding="utf-8")  # noqa: SIM115 (closed at unconfigure)
        config.stash[_out_key] = out
        config.pluginmanager.register(_Recorder(out), "cbn_outcomes_recorder")


_out_key = pytest.StashKey[IO[str]]()


def pytest_unconfigure(config: pytest.Config) -> None:
    out = config.stash.get(_out_key, None)
    if out is not None:
        out.close()
