"""The command-line tool: run as a subprocess as a user would (``python -m connectbyname``
goes through `connectbyname.demo.command` to `_cli.main`) and in-process through
`main`, against real loopback servers, refused ports and blackholes."""

from __future__ import annotations

import contextlib
import json
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

import connectbyname
from connectbyname import Attempt, Outcome
from connectbyname._cli import (
    DEFAULT_TIMEOUT,
    EXIT_CONNECTED,
    EXIT_FAILED,
    EXIT_INTERRUPTED,
    EXIT_USAGE,
    Row,
    _Listener,
    main,
    print_timeline,
    timeline,
)
from connectbyname.testing import Blackhole, DualStack, refused_port

COMMAND = [sys.executable, "-m", "connectbyname"]

# A line of the live output: the time since the start, then what happened.
LIVE = re.compile(r"^  +\+\d+\.\d{3}s  \S")


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*COMMAND, *args], capture_output=True, text=True, timeout=timeout, check=False
    )


@contextlib.contextmanager
def started(*args: str) -> Iterator[subprocess.Popen[str]]:
    """The tool running in a subprocess, its output readable as it comes."""
    process = subprocess.Popen(
        [*COMMAND, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        bufsize=1,
    )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=30)


def read_until(process: subprocess.Popen[str], needle: str, limit: float = 30) -> list[str]:
    """Read the process's stdout line by line until a line holds ``needle``."""
    assert process.stdout is not None
    lines: list[str] = []
    # A watchdog: readline() has no timeout of its own.
    timer = threading.Timer(limit, process.kill)
    timer.start()
    try:
        while True:
            line = process.stdout.readline()
            if not line:
                raise AssertionError(f"{needle!r} never came; the output was {lines!r}")
            lines.append(line)
            if needle in line:
                return lines
    finally:
        timer.cancel()


def live_lines(out: str) -> list[str]:
    return [line.strip() for line in out.splitlines() if LIVE.match(line)]


def timeline_rows(out: str) -> list[str]:
    """The timeline's rows (not its header, notes or legend)."""
    lines = out.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:2] == ["start", "duration"])
    return [line for line in lines[header + 1 :] if re.match(r"^ +\+\d", line)]


# --------------------------------------------------------------------------- connected


def test_races_past_a_blackhole_printing_each_event_as_it_happens(
    blackholed_v6: DualStack,
) -> None:
    port = str(blackholed_v6.port)
    result = run("dual.test", port, "--resolve", "dual.test=::1,127.0.0.1")
    assert result.returncode == EXIT_CONNECTED, result.stderr
    assert result.stderr == ""
    out = result.stdout
    assert "nodename:       dual.test" in out
    assert f"servicename:    {port}" in out
    assert f"timeout:        {DEFAULT_TIMEOUT:g}s" in out
    assert "attempt delay:  0.25s" in out
    assert f"remote address: 127.0.0.1:{port}" in out
    assert "local address:  127.0.0.1:" in out
    live = [line.split(maxsplit=1)[1] for line in live_lines(out)]
    assert "resolved dual.test (AAAA) in" in next(x for x in live if "(AAAA) in" in x)
    assert live.index(f"trying [::1]:{port}") < live.index(f"trying 127.0.0.1:{port}")
    connected = next(i for i, x in enumerate(live) if x.startswith(f"127.0.0.1:{port} connected"))
    abandoned = next(i for i, x in enumerate(live) if x.startswith(f"[::1]:{port} abandoned"))
    assert live.index(f"trying 127.0.0.1:{port}") < connected < abandoned
    rows = timeline_rows(out)
    assert f"[::1]:{port}" in rows[0]
    assert "abandoned" in rows[0]
    assert "=" in rows[0]  # some 250 ms: a bar
    assert f"127.0.0.1:{port}" in rows[1]
    assert "connected" in rows[1]
    # The live lines come before the summary and the timeline.
    assert out.index("trying [::1]") < out.index("connected in") < out.index("duration")


def test_quiet_leaves_out_the_live_lines(blackholed_v6: DualStack, capsys: Any) -> None:
    port = str(blackholed_v6.port)
    status = main(["dual.test", port, "--resolve", "dual.test=::1,127.0.0.1", "-q"])
    out, err = capsys.readouterr()
    assert status == EXIT_CONNECTED, err
    assert live_lines(out) == []
    assert f"remote address: 127.0.0.1:{port}" in out
    assert len(timeline_rows(out)) == 2


def test_timeout_none_and_attempt_delay_none(blackholed_v6: DualStack, capsys: Any) -> None:
    # One address at a time and no limit: the blackholed [::1] would hang for minutes,
    # so -4 leaves it out.
    port = str(blackholed_v6.port)
    argv = ["dual.test", port, "--resolve", "dual.test=::1,127.0.0.1"]
    status = main([*argv, "-4", "--timeout", "none", "--attempt-delay", "NONE"])
    out, err = capsys.readouterr()
    assert status == EXIT_CONNECTED, err
    assert "timeout:        none" in out
    assert "attempt delay:  none" in out
    assert "family:         IPv4 only" in out
    assert "[::1]" not in out


# --------------------------------------------------------------------------- failed


def test_refused_exits_1_with_the_error_on_stderr_and_the_race_on_stdout(capsys: Any) -> None:
    with refused_port("127.0.0.1") as port:
        status = main(["127.0.0.1", str(port)])
    out, err = capsys.readouterr()
    assert status == EXIT_FAILED
    # stderr: one line, the error named with its code, and its message.
    assert err.count("\n") == 1
    assert err.startswith("connectbyname: RefusedError (ECONNREFUSED 111): cannot connect to")
    assert "Error" not in out
    assert "failed after" in out
    assert f"trying 127.0.0.1:{port}" in out
    (row,) = timeline_rows(out)
    assert "refused" in row
    # A refusal on loopback takes well under a millisecond, drawn as a mark; on a loaded
    # machine it may take longer (and the mark or bar on that scale is the timeline's, see
    # test_timeline_*): what is drawn follows what is reported.
    duration = re.search(r" (\d+(?:\.\d+)?) ms ", row)
    assert duration is not None, row
    if float(duration[1]) < 1:
        assert "*" in row
        assert "=" not in row
    else:
        assert ("*" in row) != ("=" in row)


def test_public_only_refuses_bad_ports_before_connecting(capsys: Any) -> None:
    # Port 22 is one of the Fetch Standard's bad ports: refused before any lookup
    # or connect (nothing listens there anyway, and nothing is tried).
    status = main(["127.0.0.1", "22", "--public-only"])
    out, err = capsys.readouterr()
    assert status == EXIT_FAILED
    assert err.startswith("connectbyname: AddressDeniedError (EACCES 13): ")
    assert "port 22: a bad port (Fetch Standard)" in err
    assert "policy:         public addresses only" in out
    assert live_lines(out) == []


def test_public_only_denied_rows_keep_their_reasons_off_the_row(capsys: Any) -> None:
    argv = ["dual.test", "8080", "--public-only", "--resolve", "dual.test=::1,127.0.0.1"]
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == EXIT_FAILED
    assert "AddressDeniedError (EACCES 13)" in err
    assert any("[::1]:8080 denied: loopback" in line for line in live_lines(out))
    lines = out.splitlines()
    header = next(line for line in lines if "duration" in line)
    rows = timeline_rows(out)
    assert len(rows) == 2
    for row in rows:
        assert "denied" in row
        assert len(row) == len(header)  # the reason does not stretch the row
        assert row.endswith("|" + " " * 24 + "|")  # never started: no bar, no mark
        reason = lines[lines.index(row) + 1]
        assert reason.strip().startswith("loopback")
        assert reason.startswith(" " * 20)


def test_no_address_of_the_family_asked_for_says_which(capsys: Any) -> None:
    status = main(["v6only.test", "8080", "-4", "--resolve", "v6only.test=::1"])
    out, err = capsys.readouterr()
    assert status == EXIT_FAILED
    assert err.startswith("connectbyname: NameResolutionError (EAI_NONAME ")
    assert err.endswith("(-4: IPv4 addresses only)\n")
    (line,) = [line for line in live_lines(out) if "failed after" in line]
    assert "resolving v6only.test (A) failed after" in line


def test_the_default_timeout_ends_a_race_against_a_blackhole_and_lines_come_live() -> None:
    with Blackhole("127.0.0.1") as blackhole, started("127.0.0.1", str(blackhole.port)) as process:
        began = time.monotonic()
        lines = read_until(process, f"trying 127.0.0.1:{blackhole.port}")
        # Printed while the attempt still hangs, long before the end.
        assert process.poll() is None
        assert LIVE.match(lines[-1])
        out, err = process.communicate(timeout=DEFAULT_TIMEOUT + 50)
        took = time.monotonic() - began
    assert process.returncode == EXIT_FAILED
    assert DEFAULT_TIMEOUT - 0.5 < took < DEFAULT_TIMEOUT + 50
    assert err.startswith("connectbyname: TimedOutError (ETIMEDOUT 110): ")
    assert err.count("\n") == 1
    seconds = float(re.search(r"failed after +(\d+\.\d+)s", out)[1])  # type: ignore[index]
    assert DEFAULT_TIMEOUT - 0.1 < seconds < DEFAULT_TIMEOUT + 5
    (row,) = timeline_rows(out)
    assert "timed out" in row
    assert "=" * 20 in row  # nearly the whole span
    assert re.search(r"\b(9|10)\.\d{3} s\b", row)


# --------------------------------------------------------------------------- Ctrl-C


def test_ctrl_c_exits_130_with_one_line_and_the_attempts_so_far() -> None:
    with Blackhole("127.0.0.1") as blackhole, started("127.0.0.1", str(blackhole.port)) as process:
        read_until(process, f"trying 127.0.0.1:{blackhole.port}")
        time.sleep(0.2)
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == EXIT_INTERRUPTED
    assert re.fullmatch(r"connectbyname: interrupted after \d+\.\d{3}s\n", err), err
    assert "Traceback" not in out + err
    (row,) = timeline_rows(out)
    assert f"127.0.0.1:{blackhole.port}" in row
    assert "interrupted" in row


def test_ctrl_c_with_json_events_ends_the_lines_with_an_interrupted_event() -> None:
    with (
        Blackhole("127.0.0.1") as blackhole,
        started("127.0.0.1", str(blackhole.port), "--json-events") as process,
    ):
        lines = read_until(process, '"attempt_started"')
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=30)
    assert process.returncode == EXIT_INTERRUPTED
    assert err.startswith("connectbyname: interrupted after ")
    assert err.count("\n") == 1
    events = [json.loads(line) for line in [*lines, *out.splitlines()]]
    assert [e["event"] for e in events] == ["connect_started", "attempt_started", "interrupted"]
    assert events[-1]["elapsed"] >= events[1]["elapsed"]


def test_ctrl_c_with_json_prints_the_object_with_the_attempt_so_far(
    capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # In-process: --json prints nothing before the end, so the test learns that the
    # attempt started from the tool's own listener, then sends the real signal.
    attempt_started = threading.Event()
    original = _Listener.attempt_started

    def observed(self: _Listener, event: Any) -> None:
        original(self, event)
        attempt_started.set()

    monkeypatch.setattr(_Listener, "attempt_started", observed)
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def interrupt() -> None:
        if attempt_started.wait(30):
            time.sleep(0.1)
            signal.pthread_kill(main_thread, signal.SIGINT)

    with Blackhole("127.0.0.1") as blackhole:
        sender = threading.Thread(target=interrupt)
        sender.start()
        try:
            status = main(["127.0.0.1", str(blackhole.port), "--json", "--timeout", "30"])
        finally:
            sender.join()
    out, err = capsys.readouterr()
    assert status == EXIT_INTERRUPTED
    assert err.startswith("connectbyname: interrupted after ")
    report = json.loads(out)
    assert report["connected"] is False
    assert report["error"]["type"] == "KeyboardInterrupt"
    (attempt,) = report["attempts"]
    assert attempt["address"] == f"127.0.0.1:{blackhole.port}"
    assert attempt["outcome"] == "interrupted"
    assert attempt["duration"] > 0


# --------------------------------------------------------------------------- JSON


def test_json_prints_one_object(blackholed_v6: DualStack, capsys: Any) -> None:
    port = blackholed_v6.port
    status = main(["dual.test", str(port), "--resolve", "dual.test=::1,127.0.0.1", "--json"])
    out, err = capsys.readouterr()
    assert status == EXIT_CONNECTED, err
    report = json.loads(out)
    assert report["connected"] is True
    assert report["remote_address"] == f"127.0.0.1:{port}"
    assert report["timeout"] == DEFAULT_TIMEOUT
    assert [a["outcome"] for a in report["attempts"]] == ["abandoned", "connected"]
    assert report["attempts"][0]["address"] == f"[::1]:{port}"
    assert report["attempts"][0]["family"] == "AF_INET6"
    assert report["error"] is None


def test_json_failure_exits_1_with_the_error_as_an_object() -> None:
    with refused_port("127.0.0.1") as port:
        result = run("127.0.0.1", str(port), "--json")
    assert result.returncode == EXIT_FAILED
    assert "RefusedError (ECONNREFUSED 111)" in result.stderr
    report = json.loads(result.stdout)
    assert report["connected"] is False
    assert report["error"]["type"] == "RefusedError"
    assert report["error"]["errno"] == 111
    (attempt,) = report["attempts"]
    assert attempt["outcome"] == "refused"
    assert attempt["address"] == f"127.0.0.1:{port}"
    assert attempt["error"]["type"] == "ConnectionRefusedError"
    assert attempt["error"]["errno"] == 111


def test_json_events_one_object_per_event(blackholed_v6: DualStack, capsys: Any) -> None:
    port = blackholed_v6.port
    argv = ["dual.test", str(port), "--resolve", "dual.test=::1,127.0.0.1", "--json-events"]
    status = main(argv)
    out, err = capsys.readouterr()
    assert status == EXIT_CONNECTED, err
    events = [json.loads(line) for line in out.splitlines()]
    kinds = [e["event"] for e in events]
    assert kinds[0] == "connect_started"
    assert kinds[-1] == "connect_finished"
    assert kinds.count("lookup_started") == kinds.count("lookup_finished") == 2
    assert kinds.count("attempt_started") == kinds.count("attempt_finished") == 2
    assert all(isinstance(e["elapsed"], float) for e in events)
    assert [e["elapsed"] for e in events] == sorted(e["elapsed"] for e in events)
    answers = {e["record"]: e["candidates"] for e in events if e["event"] == "lookup_finished"}
    assert answers == {"AAAA": [f"[::1]:{port}"], "A": [f"127.0.0.1:{port}"]}
    started_ = [e["address"] for e in events if e["event"] == "attempt_started"]
    assert started_ == [f"[::1]:{port}", f"127.0.0.1:{port}"]
    outcomes = {
        e["record"]["address"]: e["record"]["outcome"]
        for e in events
        if e["event"] == "attempt_finished"
    }
    assert outcomes == {f"[::1]:{port}": "abandoned", f"127.0.0.1:{port}": "connected"}
    finished = events[-1]
    assert finished["error"] is None
    assert finished["info"]["remote_address"] == f"127.0.0.1:{port}"


def test_json_events_give_errors_as_objects(capsys: Any) -> None:
    with refused_port("127.0.0.1") as port:
        status = main(["127.0.0.1", str(port), "--json-events"])
    out, _ = capsys.readouterr()
    assert status == EXIT_FAILED
    events = [json.loads(line) for line in out.splitlines()]
    finished = next(e for e in events if e["event"] == "attempt_finished")
    assert finished["record"]["error"] == {
        "type": "ConnectionRefusedError",
        "errno": 111,
        "message": "Connection refused",
    }
    assert events[-1]["event"] == "connect_finished"
    assert events[-1]["info"] is None
    assert events[-1]["error"]["type"] == "RefusedError"


def test_a_reader_that_goes_away_ends_the_output_quietly() -> None:
    # `connectbyname ... --json-events | head -1`: the rest of the output is dropped,
    # with no traceback, and the run still ends with its own status.
    with Blackhole("127.0.0.1") as blackhole:
        process = subprocess.Popen(
            [*COMMAND, "127.0.0.1", str(blackhole.port), "--json-events", "--timeout", "1"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        json.loads(process.stdout.readline())
        process.stdout.close()
        _, err = process.communicate(timeout=30)
    assert process.returncode == EXIT_FAILED
    assert err.startswith("connectbyname: TimedOutError")
    assert err.count("\n") == 1


# --------------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["localhost", "-1"], "port -1 is out of range (1 to 65535)"),
        (["localhost", "-45"], "port -45 is out of range (1 to 65535)"),
        (["localhost", "70000"], "port 70000 is out of range (1 to 65535)"),
        (["localhost", "0"], "port 0 is out of range (1 to 65535)"),
        (["", "80"], "NODENAME must not be empty"),
        (["127.0.0.1", "80", "-6"], "127.0.0.1 is an IPv4 address, but -6 asks for IPv6 only"),
        (["::1", "80", "-4"], "::1 is an IPv6 address, but -4 asks for IPv4 only"),
        (["localhost", "80", "--resolve", "oops"], "--resolve wants NAME=ADDR"),
        (["localhost", "80", "--resolve", "a=b"], "--resolve: 'b' is not an IP address"),
    ]
    + [
        (
            ["localhost", "80", "--timeout", value],
            "argument --timeout: must be a number of seconds more than 0, or 'none' for "
            f"no limit; not {value!r}",
        )
        for value in ("-1", "0", "-4", "-0.5", "nan", "soon")
    ]
    + [
        (
            ["localhost", "80", "--attempt-delay", value],
            "argument --attempt-delay: must be at least 0.01 s (RFC 8305) and finite, or "
            f"'none' for one address at a time; not {value!r}",
        )
        for value in ("-1", "0", "0.001", "-6", "inf")
    ],
)
def test_usage_errors_exit_2_in_the_tools_words(argv: list[str], message: str, capsys: Any) -> None:
    assert main(argv) == EXIT_USAGE
    out, err = capsys.readouterr()
    assert out == ""
    assert f"connectbyname: error: {message}" in err
    assert err.startswith("usage: connectbyname ")
    for python_words in ("attempt_delay", "AF_INET", "nodename", "servicename", "None"):
        assert python_words not in err.replace("'none'", "")


def test_usage_errors_exit_2_from_the_command() -> None:
    for args in ((), ("localhost",), ("localhost", "80", "--bogus"), ("localhost", "-1")):
        result = run(*args)
        assert result.returncode == EXIT_USAGE, args
        assert result.stdout == ""
        assert "connectbyname: error: " in result.stderr
        assert "Traceback" not in result.stderr


def test_option_values_may_be_negative_numbers_after_the_option(capsys: Any) -> None:
    # "-4" alone is the IPv4 option; after --timeout it is the timeout's value.
    assert main(["localhost", "80", "--timeout", "-4"]) == EXIT_USAGE
    assert "argument --timeout: must be a number of seconds" in capsys.readouterr().err
    assert main(["localhost", "80", "--timeout=-6"]) == EXIT_USAGE
    assert "argument --timeout: must be a number of seconds" in capsys.readouterr().err


def test_version_and_help() -> None:
    result = run("--version")
    assert result.returncode == 0
    assert result.stdout == f"connectbyname {connectbyname.__version__}\n"
    result = run("--help")
    assert result.returncode == 0
    assert "exit status:" in result.stdout
    assert "--json-events" in result.stdout
    assert f"default: {DEFAULT_TIMEOUT:g}" in result.stdout
    assert "bad ports" in result.stdout
    assert "single-label" in result.stdout


# --------------------------------------------------------------------------- timeline


def attempt(
    address: str, start: float, duration: float, outcome: Outcome, reason: str | None = None
) -> Attempt:
    host, _, port = address.rpartition(":")
    if host.startswith("["):
        return Attempt(
            (host[1:-1], int(port), 0, 0), socket.AF_INET6, start, duration, outcome, None, reason
        )
    return Attempt((host, int(port)), socket.AF_INET, start, duration, outcome, None, reason)


def bars(lines: list[str]) -> list[str]:
    return [line.rsplit("|", 2)[1] for line in lines if line.lstrip().startswith("+")]


def test_timeline_scale_bars_and_marks() -> None:
    attempts = [
        attempt("[::1]:80", 0.0004, 0.251, Outcome.ABANDONED),
        attempt("127.0.0.1:80", 0.2514, 0.0002, Outcome.CONNECTED),
    ]
    lines = timeline([Row.of(a) for a in attempts], 0.2516)
    header = lines[0]
    assert header.split()[:4] == ["start", "duration", "address", "outcome"]
    assert header.endswith("|0" + " " * 17 + "252 ms|")
    long, short = bars(lines)
    assert long == "=" * 24
    assert short == " " * 23 + "*"  # 0.2 ms: a mark where it happened
    assert "251 ms" in lines[1]
    assert "0.20 ms" in lines[2]
    assert lines[-1] == "  (one '=' is 10.5 ms; '*': too short to draw)"


def test_timeline_of_sub_millisecond_attempts_draws_no_bars() -> None:
    attempts = [
        attempt("[::1]:80", 0.00001, 0.00003, Outcome.REFUSED),
        attempt("127.0.0.1:80", 0.00005, 0.00004, Outcome.CONNECTED),
    ]
    lines = timeline([Row.of(a) for a in attempts], 0.0001)
    # The scale is at least 1 ms: microseconds of noise make no bars.
    assert lines[0].endswith("1.0 ms|")
    assert bars(lines) == ["*" + " " * 23, " *" + " " * 22]


def test_timeline_of_long_attempts_in_seconds() -> None:
    attempts = [
        attempt("[2001:db8::1]:443", 0.0, 10.0, Outcome.TIMED_OUT),
        attempt("192.0.2.1:443", 1.0, 9.0, Outcome.TIMED_OUT),
    ]
    lines = timeline([Row.of(a) for a in attempts], 10.0)
    assert lines[0].endswith("10.000 s|")
    assert "10.000 s" in lines[1]
    assert bars(lines) == ["=" * 24, "  " + "=" * 22]


def test_timeline_puts_long_reasons_on_their_own_lines() -> None:
    reason = "cloud metadata service (Amazon EC2): " + "x" * 100
    attempts = [
        attempt("169.254.169.254:80", 0.001, 0.0, Outcome.DENIED, reason),
        attempt("[fe80::1]:80", 0.001, 0.0, Outcome.SKIPPED, "another family than asked"),
    ]
    lines = timeline([Row.of(a) for a in attempts], 0.002)
    assert len(lines) == 5  # header, two rows with a note each, no legend: nothing drawn
    assert lines[1].split()[1:4] == ["-", "169.254.169.254:80", "denied"]
    assert len(lines[1]) == len(lines[0])
    assert lines[2] == " " * 22 + reason
    assert lines[4] == " " * 22 + "another family than asked"
    assert bars(lines) == [" " * 24, " " * 24]


def test_print_timeline_is_the_demos_way_in(capsys: Any) -> None:
    attempts = [attempt("127.0.0.1:80", 0.0, 0.0001, Outcome.CONNECTED)]
    print_timeline(attempts, 0.0001)
    out = capsys.readouterr().out
    assert out.splitlines()[1:] == timeline([Row.of(a) for a in attempts], 0.0001)
    assert out.startswith("\n")
