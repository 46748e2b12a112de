"""The command-line tool, after WSAConnectByName's sample program: print the parameters,
connect, print the addresses and what happened to every address tried."""

from __future__ import annotations

import argparse
import json
import socket
import sys
from collections.abc import Sequence
from typing import Any

from ._errors import ConnectByNameError, InvalidParameterError
from ._info import Attempt, Connection, format_address
from ._policy import PUBLIC_ONLY
from ._resolve import Resolver
from ._sync import connect_by_name

EXIT_CONNECTED, EXIT_FAILED, EXIT_USAGE = 0, 1, 2
_BAR = 24


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connectbyname",
        description="Resolve NODENAME, race its addresses (RFC 8305) and connect a TCP "
        "socket to SERVICENAME; print the local and remote addresses and every attempt. "
        "'connectbyname demo' runs the offline demo.",
    )
    parser.add_argument("nodename", help="host name or IP address")
    parser.add_argument("servicename", help="port number or service name (http, https, ...)")
    parser.add_argument(
        "--timeout",
        type=float,
        default=None,
        metavar="S",
        help="seconds for the whole call, resolution included (default: none)",
    )
    parser.add_argument(
        "--attempt-delay",
        type=_delay,
        default=0.25,
        metavar="S",
        help="seconds before the next address is tried; 'none': one at a time (default: 0.25)",
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
        metavar="NAME=ADDR[,ADDR]",
        help="answer NAME with these addresses instead of asking the system (repeatable)",
    )
    parser.add_argument(
        "--public-only",
        action="store_true",
        help="refuse loopback, private, link-local and other special "
        "addresses (the PUBLIC_ONLY address policy)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    return parser


def _delay(text: str) -> float | None:
    return None if text.lower() == "none" else float(text)


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


def main(argv: Sequence[str] | None = None) -> int:
    """Run the tool; returns the exit status (0 connected, 1 failed, 2 usage error)."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:
        return EXIT_CONNECTED if exc.code == 0 else EXIT_USAGE
    resolver = _resolver(args.resolve, parser) if args.resolve else None
    if not args.json:
        delay = "none" if args.attempt_delay is None else f"{args.attempt_delay}s"
        timeout = "none" if args.timeout is None else f"{args.timeout}s"
        print(f"nodename:       {args.nodename}")
        print(f"servicename:    {args.servicename}")
        print(f"timeout:        {timeout}")
        print(f"attempt delay:  {delay}")
    try:
        connection = connect_by_name(
            args.nodename,
            args.servicename,
            timeout=args.timeout,
            attempt_delay=args.attempt_delay,
            family=args.family,
            resolver=resolver,
            policy=PUBLIC_ONLY if args.public_only else None,
        )
    except ConnectByNameError as exc:
        code = EXIT_USAGE if isinstance(exc, InvalidParameterError) else EXIT_FAILED
        if args.json:
            print(json.dumps(_json(args, None, exc)))
        else:
            print(f"failed:         {_error_name(exc)}: {exc.strerror}")
            print_timeline(exc.attempts, None)
        return code
    with connection:
        if args.json:
            print(json.dumps(_json(args, connection, None)))
        else:
            print(f"connected in    {connection.elapsed:.3f}s")
            print(f"local address:  {format_address(connection.local_address)}")
            print(f"remote address: {format_address(connection.remote_address)}")
            print_timeline(connection.attempts, connection.elapsed)
    return EXIT_CONNECTED


def _error_name(exc: ConnectByNameError) -> str:
    code = exc.errno
    symbol = {v: k for k, v in vars(socket).items() if k.startswith("EAI_")}.get(code)
    if symbol is None and code is not None and code > 0:
        import errno

        symbol = errno.errorcode.get(code)
    return f"{type(exc).__name__} ({symbol or 'errno'} {code})"


def print_timeline(attempts: Sequence[Attempt], elapsed: float | None) -> None:
    if not attempts:
        return
    end = max([elapsed or 0.0] + [a.start + a.duration for a in attempts]) or 1e-9
    width = max(len(format_address(a.address)) for a in attempts)
    print()
    print(f"  {'start':>8}  {'duration':>8}  {'address':<{width}}  {'outcome':<10}  race")
    for attempt in attempts:
        first = int(attempt.start / end * _BAR)
        last = max(first + 1, round((attempt.start + attempt.duration) / end * _BAR))
        bar = " " * first + "=" * (last - first)
        print(
            f"  {f'+{attempt.start:.3f}s':>8}  {f'{attempt.duration:.3f}s':>8}  "
            f"{format_address(attempt.address):<{width}}  {attempt.outcome:<10}  "
            f"|{bar:<{_BAR}}|" + (f"  {attempt.reason}" if attempt.reason else "")
        )


def _json(
    args: argparse.Namespace, connection: Connection | None, error: ConnectByNameError | None
) -> dict[str, object]:
    attempts = connection.attempts if connection else error.attempts if error else ()
    result: dict[str, object] = {
        "nodename": args.nodename,
        "servicename": args.servicename,
        "connected": connection is not None,
        "attempts": [
            {
                "address": format_address(a.address),
                "family": a.family.name,
                "start": round(a.start, 6),
                "duration": round(a.duration, 6),
                "outcome": str(a.outcome),
                "error": None if a.error is None else str(a.error),
                "reason": a.reason,
            }
            for a in attempts
        ],
    }
    if connection is not None:
        result["local_address"] = format_address(connection.local_address)
        result["remote_address"] = format_address(connection.remote_address)
        result["elapsed"] = round(connection.elapsed, 6)
    if error is not None:
        result["error"] = {
            "type": type(error).__name__,
            "errno": error.errno,
            "message": error.strerror,
        }
    return result
