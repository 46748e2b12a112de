"""The ``connectbyname`` command: connect a TCP socket by host name and show how.

``connectbyname NODENAME SERVICENAME`` resolves NODENAME, races its addresses (RFC
8305) and connects to SERVICENAME, as the library's `connect_by_name` does, after the
sample program of Windows' WSAConnectByName. As ``ping`` and ``curl -v`` do, it prints
what happens as it happens: each lookup (what it asked, what it answered, how long it
took) and each attempt (when it started, how it ended, how long it took), one line each
with the time since the start, flushed at once. At the end it prints the local and
remote addresses and a timeline of every attempt. ``--json`` prints one JSON object at
the end instead, ``--json-events`` one JSON object per event (JSON Lines).

Results go to standard output; why a run failed goes to standard error. Exit status:
0 connected, 1 failed to connect, 2 usage error (an invalid option included), 130
interrupted (Ctrl-C).

The console script enters at `connectbyname.demo.command`, which hands every command
line but ``demo ...`` to `main`. This module imports nothing above the core: not the
demo, not ``connectbyname.testing``, not an adapter.
"""

from __future__ import annotations

import argparse
import dataclasses
import enum
import errno
import json
import math
import os
import re
import socket
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from ._errors import ConnectByNameError, InvalidParameterError, NameResolutionError
from ._events import (
    AttemptFinished,
    AttemptStarted,
    ConnectFinished,
    ConnectStarted,
    EventListener,
    LookupFinished,
    LookupStarted,
)
from ._info import Attempt, Candidate, Connection, Outcome, format_address
from ._parse import (
    DEFAULT_ATTEMPT_DELAY,
    MIN_ATTEMPT_DELAY,
    Target,
    check_call,
    check_options,
    parse_target,
)
from ._policy import PUBLIC_ONLY
from ._resolve import Resolver
from ._sync import connect_by_name

EXIT_CONNECTED, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

#: The tool's timeout when ``--timeout`` is not given, in seconds. A diagnostic tool
#: should end on its own, and soon: a TCP handshake that has not finished in 10 s has
#: lost its SYN (or the answer) three times over (Linux resends it after 1, 3 and 7 s),
#: so the path is broken and waiting longer shows nothing more; and 10 s still lets a
#: name be answered by a second DNS server when the first is down (glibc gives each
#: server 5 s). curl's connect timeout (300 s) and the kernel's own (about 2 minutes)
#: are made for transfers, not for looking.
DEFAULT_TIMEOUT = 10.0

_BAR = 24  # the width of the timeline's race column
_MIN_SPAN = 0.001  # the shortest time the race column stands for: 1 ms
_PROG = "connectbyname"

#: What an attempt's bar is drawn with, and the mark for one too short to draw.
_BAR_CHAR, _MARK = "=", "*"

#: The outcome of an attempt still running when the run was interrupted (not an
#: `Outcome`: the engine never reports one).
INTERRUPTED = "interrupted"

_FAMILY_WORDS = {socket.AF_INET: "IPv4", socket.AF_INET6: "IPv6"}
_FAMILY_FLAGS = {socket.AF_INET: "-4", socket.AF_INET6: "-6"}


# --------------------------------------------------------------------------- options

_DESCRIPTION = """\
Resolve NODENAME, race its addresses (RFC 8305: a new attempt every --attempt-delay
seconds, or at once when one fails) and connect a TCP socket to SERVICENAME, within
one timeout for the whole call, name resolution included. Every lookup and attempt is
printed as it happens, with the time since the start; then the local and remote
addresses and a timeline of the attempts. 'connectbyname demo' runs the offline demo."""

_EPILOG = f"""\
output:
  Results go to standard output, one line per event, flushed at once; why a run
  failed goes to standard error. The timeline's header gives its scale, from the
  call's start to its end (|0 ... 252 ms|): each '{_BAR_CHAR}' is 1/{_BAR} of it, and \
'{_MARK}'
  marks an attempt too short to draw.

exit status:
  0 connected, 1 failed to connect, 2 usage error, 130 interrupted (Ctrl-C)

examples:
  connectbyname example.com https
  connectbyname example.com 443 -6 --timeout 3
  connectbyname dual.test 8080 --resolve dual.test=::1,127.0.0.1 --json-events"""


class _Parser(argparse.ArgumentParser):
    """argparse, taking negative numbers for values.

    argparse reads "-1" as an option as soon as the parser has an option that looks
    like a negative number (here -4 and -6), and "-45" as -4 followed by "5": then
    ``--timeout -1`` fails with "expected one argument" and ``localhost -1`` with an
    unknown option, never reaching the range checks. So an argument that is a number
    is a value, unless it is exactly one of the options.
    """

    def _parse_optional(self, arg_string: str) -> Any:
        if arg_string not in self._option_string_actions and _is_number(arg_string):
            return None  # a value (what argparse returns for a positional)
        return super()._parse_optional(arg_string)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _parser() -> argparse.ArgumentParser:
    from . import __version__  # at call time: the package imports its modules first

    parser = _Parser(
        prog=_PROG,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        # No abbreviations: one that works today would break when an option is added.
        allow_abbrev=False,
    )
    parser.add_argument("nodename", metavar="NODENAME", help="host name or IP address")
    parser.add_argument(
        "servicename", metavar="SERVICENAME", help="port number or service name (http, https, ...)"
    )
    parser.add_argument(
        "--timeout",
        type=_timeout,
        default=DEFAULT_TIMEOUT,
        metavar="S|none",
        help="seconds for the whole call, name resolution included; 'none': no limit "
        f"(default: {DEFAULT_TIMEOUT:g}, longer than any working handshake, "
        "short enough not to hang)",
    )
    parser.add_argument(
        "--attempt-delay",
        type=_attempt_delay,
        default=DEFAULT_ATTEMPT_DELAY,
        metavar="S|none",
        help="seconds before the next address is tried while the last one is still "
        f"connecting, at least {MIN_ATTEMPT_DELAY:g} (RFC 8305); 'none': one address at "
        f"a time (default: {DEFAULT_ATTEMPT_DELAY:g})",
    )
    family = parser.add_mutually_exclusive_group()
    family.add_argument(
        "-4",
        dest="family",
        action="store_const",
        const=socket.AF_INET,
        default=socket.AF_UNSPEC,
        help="IPv4 addresses only",
    )
    family.add_argument(
        "-6", dest="family", action="store_const", const=socket.AF_INET6, help="IPv6 addresses only"
    )
    parser.add_argument(
        "--resolve",
        action="append",
        default=[],
        metavar="NAME=ADDR[,ADDR...]",
        help="answer NAME with these addresses instead of asking the "
        "system; other names are still asked (as curl's --resolve; repeatable)",
    )
    parser.add_argument(
        "--public-only",
        action="store_true",
        help="refuse what a server fetching user-given URLs should not reach (the "
        "PUBLIC_ONLY policy): loopback, private, link-local and other special-purpose "
        "addresses, cloud metadata and special-use names (.localhost, .internal, ...), "
        "single-label names such as 'intranet', and the Fetch Standard's bad ports "
        "(22, 25, 110, ...)",
    )
    output = parser.add_mutually_exclusive_group()
    output.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        help="no line per event: only the parameters, the result and the timeline",
    )
    output.add_argument(
        "--json", action="store_true", help="print one JSON object at the end, nothing before"
    )
    output.add_argument(
        "--json-events",
        action="store_true",
        help="print one JSON object per event as it happens (JSON Lines); the last, "
        "connect_finished, holds the result",
    )
    parser.add_argument("--version", action="version", version=f"{_PROG} {__version__}")
    return parser


def _seconds_or_none(text: str) -> float | None:
    if text.strip().lower() == "none":
        return None
    return float(text)  # a ValueError becomes the option's message


def _timeout(text: str) -> float | None:
    """``--timeout``: checked by the engine's rule (`check_call`), said in the CLI's words."""
    try:
        timeout = _seconds_or_none(text)
        check_call(timeout)
    except (ValueError, InvalidParameterError):
        raise argparse.ArgumentTypeError(
            f"must be a number of seconds more than 0, or 'none' for no limit; not {text!r}"
        ) from None
    return timeout


def _attempt_delay(text: str) -> float | None:
    """``--attempt-delay``: checked by the engine's rule (`check_options`), said in the
    CLI's words: one message for every value out of range."""
    try:
        delay = _seconds_or_none(text)
        check_options(attempt_delay=delay)
    except (ValueError, InvalidParameterError):
        raise argparse.ArgumentTypeError(
            f"must be at least {MIN_ATTEMPT_DELAY:g} s (RFC 8305) and finite, or 'none' "
            f"for one address at a time; not {text!r}"
        ) from None
    return delay


def _attach_values(arguments: Sequence[str]) -> list[str]:
    """``--timeout -4`` as ``--timeout=-4``: "-4" alone is the IPv4 option, but after an
    option that takes a value it is that value (and then the range check speaks)."""
    out: list[str] = []
    items = iter(arguments)
    for item in items:
        if item == "--":
            out.append(item)
            out.extend(items)
            break
        if item in ("--timeout", "--attempt-delay"):
            value = next(items, None)
            if value is not None and value.startswith("-") and _is_number(value):
                out.append(f"{item}={value}")
                continue
            out.append(item)
            if value is not None:
                out.append(value)
            continue
        out.append(item)
    return out


def _check_target(args: argparse.Namespace, parser: argparse.ArgumentParser) -> str | int:
    """Check NODENAME and SERVICENAME with the engine's rules (`parse_target`) before
    anything is printed, and return the service to connect to. A signed number is
    passed as a number, so that "-1" meets the same range check as "70000" rather than
    being looked up as a service name."""
    text: str = args.servicename
    service: str | int = int(text) if re.fullmatch(r"[+-]?[0-9]+", text) else text
    try:
        target: Target | None = parse_target(args.nodename, service)
    except InvalidParameterError as exc:
        parser.error(_cli_words(exc.strerror or str(exc)))
    except NameResolutionError:
        target = None  # an unknown service name: a failure to connect, told by the call
    literal = None if target is None else target.literal
    if literal is not None and args.family not in (socket.AF_UNSPEC, literal.family):
        parser.error(
            f"{args.nodename} is an {_FAMILY_WORDS[literal.family]} address, but "
            f"{_FAMILY_FLAGS[args.family]} asks for {_FAMILY_WORDS[args.family]} only"
        )
    return service


def _cli_words(message: str) -> str:
    """An engine message about the arguments, naming them as the usage line does."""
    message = re.sub(r"\bnodename\b", "NODENAME", message)
    return re.sub(r"\bservicename\b", "SERVICENAME", message)


def _resolver(entries: list[str], parser: argparse.ArgumentParser) -> Resolver:
    """A resolver answering each ``NAME=ADDR[,ADDR...]`` from the table (as curl's
    ``--resolve`` does) and every other name with the system's."""
    table: dict[str, list[tuple[socket.AddressFamily, str]]] = {}
    for entry in entries:
        name, sep, addresses = entry.partition("=")
        if not sep or not name or not addresses:
            parser.error(f"--resolve wants NAME=ADDR[,ADDR...], not {entry!r}")
        literals = []
        for text in addresses.split(","):
            address = text.strip().removeprefix("[").removesuffix("]")
            family = socket.AF_INET6 if ":" in address else socket.AF_INET
            try:
                socket.inet_pton(family, address.partition("%")[0])
            except OSError:
                parser.error(f"--resolve: {text!r} is not an IP address")
            literals.append((family, address))
        table[name.lower().rstrip(".")] = literals

    def resolve(host: str, port: int, family: int = 0, *rest: object) -> list[Any]:
        literals = table.get(host.lower().rstrip("."))
        if literals is None:
            return socket.getaddrinfo(host, port, family, *rest)  # type: ignore[arg-type]
        return [
            (
                fam,
                socket.SOCK_STREAM,
                socket.IPPROTO_TCP,
                "",
                (a, port) if fam == socket.AF_INET else (a, port, 0, 0),
            )
            for fam, a in literals
            if family in (socket.AF_UNSPEC, fam)
        ]

    return resolve


# --------------------------------------------------------------------------- output


class _Output:
    """Standard output and error, one flushed line at a time (a reader piped to us sees
    each event when it happens). A reader that goes away (``| head -1``) ends the
    output quietly; the run goes on to its end and exit status."""

    def __init__(self) -> None:
        self.closed = False

    def line(self, text: str = "") -> None:
        if self.closed:
            return
        try:
            print(text, flush=True)
        except BrokenPipeError:
            self.closed = True
            # Else the interpreter's own flush at exit fails again, and says so.
            try:
                devnull = os.open(os.devnull, os.O_WRONLY)
                os.dup2(devnull, sys.stdout.fileno())
                os.close(devnull)
            except (OSError, ValueError):  # no descriptor (a test's captured stdout)
                pass

    def error(self, text: str) -> None:
        print(f"{_PROG}: {text}", file=sys.stderr, flush=True)


def _duration(seconds: float) -> str:
    """A duration for people: in ms below 1 s, with as many digits as mean something."""
    if seconds < 0.001:
        return f"{seconds * 1000:.2f} ms"
    if seconds < 0.1:
        return f"{seconds * 1000:.1f} ms"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    return f"{seconds:.3f} s"


def _offset(seconds: float) -> str:
    return f"+{seconds:.3f}s"


def _error_name(exc: OSError) -> str:
    """The error's class and code: ``RefusedError (ECONNREFUSED 111)``."""
    code = exc.errno
    symbol = None
    if isinstance(exc, NameResolutionError):
        symbol = {v: k for k, v in vars(socket).items() if k.startswith("EAI_")}.get(code)
    if symbol is None and code is not None and code > 0:
        symbol = errno.errorcode.get(code)
    return f"{type(exc).__name__} ({symbol or 'errno'} {code})"


def _error_text(exc: OSError) -> str:
    return exc.strerror or str(exc)


# --------------------------------------------------------------------------- timeline


class Row(NamedTuple):
    """One line of the timeline: an attempt as the engine recorded it, or one still
    running when the run was interrupted."""

    address: str
    start: float
    #: ``None``: never started (skipped or denied).
    duration: float | None
    outcome: str
    #: Printed on lines of their own under the row: a skipped or denied address's
    #: reason, a failed attempt's error, what the connection history did.
    notes: tuple[str, ...] = ()

    @classmethod
    def of(cls, attempt: Attempt) -> Row:
        started = attempt.outcome not in (Outcome.SKIPPED, Outcome.DENIED)
        notes = []
        if attempt.reason:
            notes.append(attempt.reason)
        if attempt.error is not None and attempt.outcome in (Outcome.FAILED, Outcome.UNREACHABLE):
            notes.append(_error_text(attempt.error))
        if attempt.history:
            notes.append(f"history: {attempt.history}")
        return cls(
            format_address(attempt.address),
            attempt.start,
            attempt.duration if started else None,
            str(attempt.outcome),
            tuple(notes),
        )


def timeline(rows: Sequence[Row], elapsed: float | None) -> list[str]:
    """The timeline table's lines: start, duration, address, outcome and a bar on a
    scale from the call's start to its end (``elapsed``, or the last attempt's end),
    given in the header. An attempt too short to draw (under one bar character or
    under 1 ms) gets a mark rather than a bar; one that never started gets neither."""
    if not rows:
        return []
    end = max([elapsed or 0.0] + [r.start + (r.duration or 0.0) for r in rows])
    span = max(end, _MIN_SPAN)
    width = max(len("address"), *(len(r.address) for r in rows))
    outcome_width = max(len("outcome"), *(len(r.outcome) for r in rows))
    scale = f"|0{_duration(span):>{_BAR - 1}}|"
    lines = [
        f"  {'start':>8}  {'duration':>8}  {'address':<{width}}  "
        f"{'outcome':<{outcome_width}}  {scale}"
    ]
    indent = " " * (2 + 8 + 2 + 8 + 2)  # the notes go under the address
    for row in rows:
        duration = "-" if row.duration is None else _duration(row.duration)
        lines.append(
            f"  {_offset(row.start):>8}  {duration:>8}  {row.address:<{width}}  "
            f"{row.outcome:<{outcome_width}}  |{_bar(row, span)}|"
        )
        lines.extend(indent + note for note in row.notes)
    if any(row.duration is not None for row in rows):
        lines.append(
            f"  (one '{_BAR_CHAR}' is {_duration(span / _BAR)}; '{_MARK}': too short to draw)"
        )
    return lines


def _bar(row: Row, span: float) -> str:
    if row.duration is None:
        return " " * _BAR
    first = min(_BAR - 1, int(row.start / span * _BAR))
    last = min(_BAR, round((row.start + row.duration) / span * _BAR))
    if row.duration < _MIN_SPAN or last - first < 1:
        return " " * first + _MARK + " " * (_BAR - first - 1)
    return " " * first + _BAR_CHAR * (last - first) + " " * (_BAR - last)


def print_timeline(attempts: Sequence[Attempt], elapsed: float | None) -> None:
    """Print the timeline of ``attempts`` (after an empty line), for a call that took
    ``elapsed`` seconds (``None``: until the last attempt's end)."""
    lines = timeline([Row.of(a) for a in attempts], elapsed)
    if lines:
        print()
        for line in lines:
            print(line)


# --------------------------------------------------------------------------- events


class _Listener(EventListener):
    """Records every event (the attempts so far, for an interruption) and, unless
    ``render`` is None, prints each as it happens."""

    def __init__(self, out: _Output, render: Callable[[str, object], str | None] | None) -> None:
        self._out = out
        self._render = render
        self.start = time.monotonic()
        self.started: dict[int, AttemptStarted] = {}
        self.finished: dict[int, Attempt] = {}
        self.elapsed: float | None = None  # the call's, once it finished

    def _tell(self, kind: str, event: object) -> None:
        if self._render is not None:
            text = self._render(kind, event)
            if text is not None:
                self._out.line(text)

    def connect_started(self, event: ConnectStarted) -> None:
        self.start = time.monotonic()
        self._tell("connect_started", event)

    def lookup_started(self, event: LookupStarted) -> None:
        self._tell("lookup_started", event)

    def lookup_finished(self, event: LookupFinished) -> None:
        self._tell("lookup_finished", event)

    def attempt_started(self, event: AttemptStarted) -> None:
        self.started[event.attempt] = event
        self._tell("attempt_started", event)

    def attempt_finished(self, event: AttemptFinished) -> None:
        self.finished[event.attempt] = event.record
        self._tell("attempt_finished", event)

    def connect_finished(self, event: ConnectFinished) -> None:
        self.elapsed = event.elapsed
        self._tell("connect_finished", event)

    def so_far(self) -> list[Attempt | AttemptStarted]:
        """The attempts so far, in the order they started: a record for each that
        ended, the start event for each still running."""
        return [
            self.finished.get(number) or self.started[number]
            for number in sorted(self.started.keys() | self.finished.keys())
        ]


def _row_so_far(item: Attempt | AttemptStarted, now: float) -> Row:
    """A timeline row for an attempt so far; one still running ends, interrupted, at ``now``."""
    if isinstance(item, Attempt):
        return Row.of(item)
    return Row(format_address(item.address), item.elapsed, now - item.elapsed, INTERRUPTED)


def _json_so_far(item: Attempt | AttemptStarted, now: float) -> object:
    """An attempt so far as JSON, as in ``attempts``; one still running is interrupted."""
    if isinstance(item, Attempt):
        return _jsonable(item)
    running = Attempt(item.address, item.family, item.elapsed, now - item.elapsed, Outcome.FAILED)
    record = _jsonable(running)
    assert isinstance(record, dict)
    record["outcome"] = INTERRUPTED
    return record


def _text_event(kind: str, event: object) -> str | None:
    """The live line for an event (None: the event gets none)."""
    if isinstance(event, LookupStarted):
        text = f"resolving {event.host} ({event.record})"
    elif isinstance(event, LookupFinished):
        asked = f"{event.host} ({event.record})"
        took = _duration(event.duration)
        if event.error is not None:
            text = (
                f"resolving {asked} failed after {took}: "
                f"{_error_name(event.error)}: {_error_text(event.error)}"
            )
        else:
            answers = ", ".join(format_address(c.address) for c in event.candidates)
            text = f"resolved {asked} in {took}: {answers or 'no addresses'}"
    elif isinstance(event, AttemptStarted):
        text = f"trying {format_address(event.address)}"
    elif isinstance(event, AttemptFinished):
        record = event.record
        address = format_address(record.address)
        if record.outcome in (Outcome.SKIPPED, Outcome.DENIED):
            text = f"{address} {record.outcome}" + (f": {record.reason}" if record.reason else "")
        else:
            text = f"{address} {record.outcome} after {_duration(record.duration)}"
            if record.error is not None and record.outcome in (
                Outcome.FAILED,
                Outcome.UNREACHABLE,
            ):
                text += f": {_error_text(record.error)}"
    else:
        return None  # the start and the end: the header and the summary tell them
    return f"  {_offset(getattr(event, 'elapsed', 0.0)):>8}  {text}"


def _json_event(kind: str, event: object) -> str:
    """The JSON line for an event: its type, ``elapsed``, then its fields."""
    fields = _jsonable(event)
    assert isinstance(fields, dict)
    return json.dumps({"event": kind, "elapsed": fields.pop("elapsed", 0.0), **fields})


def _dumps(value: object) -> str:
    return json.dumps(_jsonable(value), allow_nan=False)


def _jsonable(value: object) -> object:
    """``value`` as JSON: addresses as ``"[::1]:80"`` (`format_address`), families by
    name (``"AF_INET6"``), outcomes as strings, errors as ``{type, errno, message}``,
    records and events as objects, seconds rounded to the microsecond."""
    if isinstance(value, enum.StrEnum):
        return str(value)
    if isinstance(value, enum.Enum):
        return value.name
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        return round(value, 6) if math.isfinite(value) else None
    if isinstance(value, Candidate):
        return format_address(value.address)
    if isinstance(value, Attempt):
        return {name: _jsonable(item) for name, item in value._asdict().items()}
    if isinstance(value, OSError):
        return {"type": type(value).__name__, "errno": value.errno, "message": _error_text(value)}
    if _is_address(value):
        return format_address(value)  # type: ignore[arg-type]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _jsonable(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Iterable):
        return [_jsonable(item) for item in value]
    return str(value)


def _is_address(value: object) -> bool:
    return (
        isinstance(value, tuple)
        and len(value) in (2, 4)
        and isinstance(value[0], str)
        and all(isinstance(item, int) for item in value[1:])
    )


# --------------------------------------------------------------------------- the run


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool with ``argv`` (default: ``sys.argv[1:]``); returns the exit status:
    0 connected, 1 failed to connect, 2 usage error, 130 interrupted."""
    arguments = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        args = parser.parse_args(_attach_values(arguments))
        service = _check_target(args, parser)
        resolver = _resolver(args.resolve, parser) if args.resolve else None
    except SystemExit as exc:  # --help, --version, or a usage error (told on stderr)
        return EXIT_CONNECTED if exc.code in (0, None) else EXIT_USAGE
    return _Run(args, service, resolver).run()


class _Run:
    """One run of the tool: the call, with what it prints before, during and after."""

    def __init__(
        self, args: argparse.Namespace, service: str | int, resolver: Resolver | None
    ) -> None:
        self.args = args
        self.service = service
        self.resolver = resolver
        self.out = _Output()
        self.text = not (args.json or args.json_events)
        render: Callable[[str, object], str | None] | None = None
        if args.json_events:
            render = _json_event
        elif self.text and not args.quiet:
            render = _text_event
        self.listener = _Listener(self.out, render)

    def run(self) -> int:
        try:
            if self.text:
                self._header()
            return self._connect()
        except KeyboardInterrupt:
            return self._interrupted()

    def _header(self) -> None:
        args, line = self.args, self.out.line
        line(f"nodename:       {args.nodename}")
        line(f"servicename:    {args.servicename}")
        line(f"timeout:        {_seconds(args.timeout)}")
        line(f"attempt delay:  {_seconds(args.attempt_delay)}")
        if args.family != socket.AF_UNSPEC:
            line(f"family:         {_FAMILY_WORDS[args.family]} only")
        for entry in args.resolve:
            line(f"resolve:        {entry}")
        if args.public_only:
            line("policy:         public addresses only")

    def _connect(self) -> int:
        args = self.args
        self.listener.start = time.monotonic()
        try:
            connection = connect_by_name(
                args.nodename,
                self.service,
                timeout=args.timeout,
                attempt_delay=args.attempt_delay,
                family=args.family,
                resolver=self.resolver,
                policy=PUBLIC_ONLY if args.public_only else None,
                listener=self.listener,
            )
        except InvalidParameterError as exc:
            # What the checks before the call could not see; argparse's form.
            self.out.error(f"error: {_cli_words(exc.strerror or str(exc))}")
            return EXIT_USAGE
        except ConnectByNameError as exc:
            self._failed(exc)
            return EXIT_FAILED
        with connection:
            self._connected(connection)
        return EXIT_CONNECTED

    def _connected(self, connection: Connection) -> None:
        if self.args.json:
            self.out.line(
                _dumps(self._summary(connection.attempts, connection.elapsed, connection))
            )
        elif self.text:
            line = self.out.line
            line(f"connected in    {connection.elapsed:.3f}s")
            line(f"local address:  {format_address(connection.local_address)}")
            line(f"remote address: {format_address(connection.remote_address)}")
            self._timeline([Row.of(a) for a in connection.attempts], connection.elapsed)

    def _failed(self, exc: ConnectByNameError) -> None:
        elapsed = self.listener.elapsed
        if elapsed is None:
            elapsed = time.monotonic() - self.listener.start
        message = f"{_error_name(exc)}: {_error_text(exc)}"
        if isinstance(exc, NameResolutionError) and self.args.family != socket.AF_UNSPEC:
            # The engine says "no address of that family": say which, and why.
            family = self.args.family
            message += f" ({_FAMILY_FLAGS[family]}: {_FAMILY_WORDS[family]} addresses only)"
        self.out.error(message)
        if self.args.json:
            summary = self._summary(exc.attempts, elapsed, None)
            summary["error"] = _jsonable(exc)
            self.out.line(_dumps(summary))
        elif self.text:
            self.out.line(f"failed after    {elapsed:.3f}s")
            self._timeline([Row.of(a) for a in exc.attempts], elapsed)

    def _interrupted(self) -> int:
        elapsed = time.monotonic() - self.listener.start
        so_far = self.listener.so_far()
        message = f"interrupted after {elapsed:.3f}s"
        self.out.error(message)
        if self.args.json:
            summary = self._summary((), elapsed, None)
            summary["attempts"] = [_json_so_far(item, elapsed) for item in so_far]
            summary["error"] = {"type": "KeyboardInterrupt", "errno": None, "message": message}
            self.out.line(_dumps(summary))
        elif self.args.json_events:
            self.out.line(_dumps({"event": "interrupted", "elapsed": elapsed}))
        else:  # the line on stderr says it; the timeline shows where
            self._timeline([_row_so_far(item, elapsed) for item in so_far], elapsed)
        return EXIT_INTERRUPTED

    def _timeline(self, rows: Sequence[Row], elapsed: float | None) -> None:
        lines = timeline(rows, elapsed)
        if lines:
            self.out.line()
            for line in lines:
                self.out.line(line)

    def _summary(
        self, attempts: Iterable[Attempt], elapsed: float, connection: Connection | None
    ) -> dict[str, object]:
        """The ``--json`` object: what was asked, what happened, the attempts."""
        args = self.args
        summary: dict[str, object] = {
            "nodename": args.nodename,
            "servicename": args.servicename,
            "timeout": args.timeout,
            "attempt_delay": args.attempt_delay,
            "connected": connection is not None,
            "elapsed": elapsed,
            "attempts": list(attempts),
        }
        if connection is not None:
            summary["local_address"] = connection.local_address
            summary["remote_address"] = connection.remote_address
        summary["error"] = None
        return summary


def _seconds(value: float | None) -> str:
    return "none" if value is None else f"{value:g}s"
